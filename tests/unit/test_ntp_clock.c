/*
 * Tests for clock offsets in cluster health (clusterd/hbclock.c, the clock fields of
 * clusterd/hbwire.c): a host's offset read from vmntpd's status file (synchronised and
 * fresh only; stale, unsynchronised, partial and missing files give "unknown"; clamped
 * to a day); the heartbeat's clock fields carried through encode and decode, and offsets
 * past a day refused by both, in the beat and in a peer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clusterd/hbclock.h"
#include "clusterd/hbwire.h"

#define NOW 1795268879000000000ull

static char dir[] = "/tmp/test_ntp_clock_XXXXXX";

static void put(const char *text)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/vmntpd.status", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_read(void **state)
{
	int64_t us = 42;
	char text[256];

	assert_non_null(mkdtemp(dir));
	assert_false(cd_clock_read(dir, NOW, &us));
	assert_int_equal(us, 42);

	snprintf(text, sizeof(text), "time_ns = %llu\nsynced = 1\noffset_ns = 900123456\n",
		 (unsigned long long)NOW - 2000000000ull);
	put(text);
	assert_true(cd_clock_read(dir, NOW, &us));
	assert_int_equal(us, 900123);

	/* negative */
	snprintf(text, sizeof(text), "synced = 1\noffset_ns = -1500\ntime_ns = %llu\n",
		 (unsigned long long)NOW);
	put(text);
	assert_true(cd_clock_read(dir, NOW, &us));
	assert_int_equal(us, -1);

	/* stale: older than CD_CLOCK_STALE_MS, or as far in the future */
	us = 42;
	snprintf(text, sizeof(text), "time_ns = %llu\nsynced = 1\noffset_ns = 5\n",
		 (unsigned long long)NOW - (CD_CLOCK_STALE_MS + 1) * 1000000ull);
	put(text);
	assert_false(cd_clock_read(dir, NOW, &us));
	snprintf(text, sizeof(text), "time_ns = %llu\nsynced = 1\noffset_ns = 5\n",
		 (unsigned long long)NOW + (CD_CLOCK_STALE_MS + 1) * 1000000ull);
	put(text);
	assert_false(cd_clock_read(dir, NOW, &us));

	/* not synchronised; no offset; no time */
	snprintf(text, sizeof(text), "time_ns = %llu\nsynced = 0\noffset_ns = 5\n",
		 (unsigned long long)NOW);
	put(text);
	assert_false(cd_clock_read(dir, NOW, &us));
	snprintf(text, sizeof(text), "time_ns = %llu\nsynced = 1\n", (unsigned long long)NOW);
	put(text);
	assert_false(cd_clock_read(dir, NOW, &us));
	put("synced = 1\noffset_ns = 5\n");
	assert_false(cd_clock_read(dir, NOW, &us));
	assert_int_equal(us, 42);

	/* clamped to a day */
	snprintf(text, sizeof(text),
		 "time_ns = %llu\nsynced = 1\noffset_ns = -9000000000000000000\n",
		 (unsigned long long)NOW);
	put(text);
	assert_true(cd_clock_read(dir, NOW, &us));
	assert_int_equal(us, -CD_HB_CLOCK_MAX_US);

	char path[64];

	snprintf(path, sizeof(path), "%s/vmntpd.status", dir);
	unlink(path);
	rmdir(dir);
	(void)state;
}

static const uint8_t key[CD_HB_KEY_SIZE] = {1, 2, 3};

static void test_wire(void **state)
{
	Keel__Cluster__Heartbeat hb = KEEL__CLUSTER__HEARTBEAT__INIT, *out = NULL;
	Keel__Cluster__HeartbeatPeer p = KEEL__CLUSTER__HEARTBEAT_PEER__INIT, *pp[1] = {&p};
	struct kb_errmsg e = {{0}};
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	size_t len = 0;

	hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK;
	hb.cluster_id = "c";
	hb.from = 7;
	hb.seq = 1;
	hb.term = 3;
	hb.clock_known = true;
	hb.clock_offset_us = -CD_HB_CLOCK_MAX_US;
	p.host = 9;
	p.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	p.clock_known = true;
	p.clock_offset_us = 900000;
	hb.n_peers = 1;
	hb.peers = pp;
	assert_int_equal(cd_hb_encode(&hb, key, buf, sizeof(buf), &len, &e), 0);
	assert_int_equal(cd_hb_decode(buf, len, key, "c", &out, &e), 0);
	assert_true(out->clock_known);
	assert_int_equal(out->clock_offset_us, -CD_HB_CLOCK_MAX_US);
	assert_true(out->peers[0]->clock_known);
	assert_int_equal(out->peers[0]->clock_offset_us, 900000);
	cd_hb_free(out);

	/* past a day: refused by the encoder, in the beat and in a peer */
	hb.clock_offset_us = -CD_HB_CLOCK_MAX_US - 1;
	assert_int_equal(cd_hb_encode(&hb, key, buf, sizeof(buf), &len, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "clock offset"));
	hb.clock_offset_us = 0;
	p.clock_offset_us = CD_HB_CLOCK_MAX_US + 1;
	assert_int_equal(cd_hb_encode(&hb, key, buf, sizeof(buf), &len, &e), -EINVAL);
	(void)state;
}

/* The decoder refuses what the encoder would: correctly signed datagrams packed by hand
 * with an offset one past a day, in the beat and in a peer. */
static void test_decode_refuses(void **state)
{
	Keel__Cluster__Heartbeat hb = KEEL__CLUSTER__HEARTBEAT__INIT, *out = NULL;
	Keel__Cluster__HeartbeatPeer p = KEEL__CLUSTER__HEARTBEAT_PEER__INIT, *pp[1] = {&p};
	struct kb_errmsg e = {{0}};
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	unsigned mac_len = 0;
	size_t n;

	hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK;
	hb.cluster_id = "c";
	hb.from = 7;
	hb.seq = 1;
	hb.term = 3;
	p.host = 9;
	p.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	hb.n_peers = 1;
	hb.peers = pp;
	for (int round = 0; round < 3; round++) {
		hb.clock_offset_us = round == 0 ? CD_HB_CLOCK_MAX_US + 1 : 0;
		p.clock_offset_us = round == 1 ? -CD_HB_CLOCK_MAX_US - 1 : 0;
		n = keel__cluster__heartbeat__pack(&hb, buf);
		HMAC(EVP_sha256(), key, CD_HB_KEY_SIZE, buf, n, buf + n, &mac_len);
		assert_int_equal(mac_len, CD_HB_MAC_SIZE);
		if (round < 2) {
			assert_int_equal(cd_hb_decode(buf, n + mac_len, key, "c", &out, &e),
					 KB_EPROTO);
			assert_null(out);
		} else {
			assert_int_equal(cd_hb_decode(buf, n + mac_len, key, "c", &out, &e), 0);
			cd_hb_free(out);
			out = NULL;
		}
	}
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_wire),
	    cmocka_unit_test(test_decode_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
