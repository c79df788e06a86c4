/*
 * Tests for clusterd/hbwire.h: BEAT and ACK round trips; every byte of a datagram changed
 * in turn, every truncation, a trailing byte, another key and another cluster refused;
 * the size limits to the byte (a signed datagram of exactly CD_HB_DATAGRAM_MAX accepted,
 * one byte more refused); field checks on correctly signed messages; the encoder's limits;
 * the replay rule; out of memory while decoding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clusterd/hbwire.h"
#include "lib/err.h"
#include "lib/heap.h"

#define CLUSTER "6f1c2a9e-2d4b-4c1e-9a57-0b3f5e7d8c21"
#define OTHER	"6f1c2a9e-2d4b-4c1e-9a57-0b3f5e7d8c22"

static const uint8_t key[CD_HB_KEY_SIZE] = {
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};

static Keel__Cluster__HeartbeatPeer peer_store[CD_HB_PEERS_MAX + 1];
static Keel__Cluster__HeartbeatPeer *peer_ptrs[CD_HB_PEERS_MAX + 1];

static Keel__Cluster__Heartbeat beat(void)
{
	Keel__Cluster__Heartbeat hb = KEEL__CLUSTER__HEARTBEAT__INIT;

	hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_BEAT;
	hb.cluster_id = (char *)CLUSTER;
	hb.from = 0x9abcdef012345678ull;
	hb.seq = 1700000000123456789ull;
	hb.isolated = true;
	hb.running_vms = 17;
	return hb;
}

/* An ACK with n peers; worst: values that take the most bytes. */
static Keel__Cluster__Heartbeat ack(size_t n, bool worst)
{
	Keel__Cluster__Heartbeat hb = KEEL__CLUSTER__HEARTBEAT__INIT;

	hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK;
	hb.cluster_id = (char *)CLUSTER;
	hb.from = 42;
	hb.seq = 1700000000987654321ull;
	hb.echo_seq = 1700000000123456789ull;
	hb.term = 7;
	for (size_t i = 0; i < n; i++) {
		Keel__Cluster__HeartbeatPeer p = KEEL__CLUSTER__HEARTBEAT_PEER__INIT;

		p.host = worst ? UINT64_MAX - i : 0x8000000000000000ull + i * 0x10001;
		p.net_age_ms = worst ? -1 : (int64_t)(i * 7 % 2000);
		p.ds_age_ms = worst ? -1 : (int64_t)(i * 13 % 2000);
		p.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED + (int)(i % 7);
		peer_store[i] = p;
		peer_ptrs[i] = &peer_store[i];
	}
	hb.n_peers = n;
	hb.peers = n ? peer_ptrs : NULL;
	return hb;
}

static size_t encode_ok(const Keel__Cluster__Heartbeat *hb, uint8_t *out, size_t cap)
{
	struct kb_errmsg err = {{0}};
	size_t len = 0;

	if (cd_hb_encode(hb, key, out, cap, &len, &err) != 0)
		fail_msg("encode: %s", err.msg);
	return len;
}

static int decode(const uint8_t *p, size_t len, const uint8_t *k, const char *cluster,
		  Keel__Cluster__Heartbeat **out)
{
	struct kb_errmsg err = {{0}};
	int rv = cd_hb_decode(p, len, k, cluster, out, &err);

	if (rv != 0) {
		assert_null(*out);
		assert_true(err.msg[0] != '\0');
	}
	return rv;
}

/* Appends a correct MAC to raw bytes, as a key holder that skips the encoder would. */
static size_t sign(uint8_t *buf, size_t n)
{
	unsigned int mlen = 0;

	assert_non_null(HMAC(EVP_sha256(), key, sizeof(key), buf, n, buf + n, &mlen));
	assert_int_equal(mlen, CD_HB_MAC_SIZE);
	return n + CD_HB_MAC_SIZE;
}

/* Packs hb without the encoder's checks and signs it. */
static size_t pack_sign(const Keel__Cluster__Heartbeat *hb, uint8_t *buf)
{
	size_t n = keel__cluster__heartbeat__pack(hb, buf);

	return sign(buf, n);
}

static void test_round_trip_beat(void **state)
{
	Keel__Cluster__Heartbeat hb = beat(), *got = NULL;
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	size_t len = encode_ok(&hb, buf, sizeof(buf));

	(void)state;
	assert_int_equal(len, keel__cluster__heartbeat__get_packed_size(&hb) + CD_HB_MAC_SIZE);
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	assert_int_equal(got->kind, KEEL__CLUSTER__HEARTBEAT__KIND__KIND_BEAT);
	assert_string_equal(got->cluster_id, CLUSTER);
	assert_true(got->from == hb.from);
	assert_true(got->seq == hb.seq);
	assert_true(got->isolated);
	assert_int_equal(got->running_vms, 17);
	assert_int_equal(got->n_peers, 0);
	cd_hb_free(got);
	cd_hb_free(NULL);
}

static void test_round_trip_ack(void **state)
{
	Keel__Cluster__Heartbeat hb = ack(5, false), *got = NULL;
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	size_t len = encode_ok(&hb, buf, sizeof(buf));

	(void)state;
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	assert_int_equal(got->kind, KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK);
	assert_true(got->echo_seq == hb.echo_seq);
	assert_true(got->term == 7);
	assert_int_equal(got->n_peers, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_true(got->peers[i]->host == peer_store[i].host);
		assert_true(got->peers[i]->net_age_ms == peer_store[i].net_age_ms);
		assert_true(got->peers[i]->ds_age_ms == peer_store[i].ds_age_ms);
		assert_int_equal(got->peers[i]->state, peer_store[i].state);
	}
	cd_hb_free(got);

	/* ages of -1 (unknown) pass */
	peer_store[2].net_age_ms = -1;
	peer_store[3].ds_age_ms = -1;
	len = encode_ok(&hb, buf, sizeof(buf));
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	assert_true(got->peers[2]->net_age_ms == -1);
	assert_true(got->peers[3]->ds_age_ms == -1);
	cd_hb_free(got);
}

static void test_every_byte_changed(void **state)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	Keel__Cluster__Heartbeat hb = ack(3, false), *got = NULL;
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	size_t len = encode_ok(&hb, buf, sizeof(buf));
	unsigned tried = 0;

	(void)state;
	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			buf[i] ^= masks[m];
			assert_int_equal(decode(buf, len, key, CLUSTER, &got), -EKEYREJECTED);
			buf[i] ^= masks[m];
			tried++;
		}
	}
	assert_int_equal(tried, len * 3);
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	cd_hb_free(got);
}

static void test_truncated_and_trailing(void **state)
{
	Keel__Cluster__Heartbeat hb = beat(), *got = NULL;
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	size_t len = encode_ok(&hb, buf, sizeof(buf) - 1);

	(void)state;
	for (size_t n = 0; n < len; n++)
		assert_int_equal(decode(buf, n, key, CLUSTER, &got),
				 n <= CD_HB_MAC_SIZE ? KB_ETRUNCATED : -EKEYREJECTED);
	buf[len] = 0;
	assert_int_equal(decode(buf, len + 1, key, CLUSTER, &got), -EKEYREJECTED);
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	cd_hb_free(got);
}

static void test_wrong_key_and_cluster(void **state)
{
	Keel__Cluster__Heartbeat hb = beat(), *got = NULL;
	uint8_t buf[CD_HB_DATAGRAM_MAX], other[CD_HB_KEY_SIZE];
	size_t len = encode_ok(&hb, buf, sizeof(buf));

	(void)state;
	for (size_t i = 0; i < sizeof(other); i++) {
		memcpy(other, key, sizeof(other));
		other[i] ^= 0x01;
		assert_int_equal(decode(buf, len, other, CLUSTER, &got), -EKEYREJECTED);
	}
	/* correctly signed, but for another cluster (or none) */
	assert_int_equal(decode(buf, len, key, OTHER, &got), KB_EPROTO);
	assert_int_equal(decode(buf, len, key, "", &got), KB_EPROTO);
	hb.cluster_id = (char *)"";
	len = encode_ok(&hb, buf, sizeof(buf));
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), KB_EPROTO);
}

/* A signed BEAT padded with an unknown field (15, length-delimited) to total bytes. */
static size_t padded(uint8_t *buf, size_t total)
{
	Keel__Cluster__Heartbeat hb = beat();
	size_t n = keel__cluster__heartbeat__pack(&hb, buf);
	size_t body = total - CD_HB_MAC_SIZE - n - 3; /* tag + 2-byte length */

	assert_true(body >= 128 && body < 16384);
	buf[n++] = (15 << 3) | 2;
	buf[n++] = 0x80 | (body & 0x7f);
	buf[n++] = (uint8_t)(body >> 7);
	memset(buf + n, 'x', body);
	return sign(buf, n + body);
}

static void test_size_limits(void **state)
{
	static uint8_t buf[CD_HB_DATAGRAM_MAX + 64];
	Keel__Cluster__Heartbeat hb, *got = NULL;
	struct kb_errmsg err = {{0}};
	size_t len = 0, exact;

	(void)state;
	/* decode: exactly the maximum passes, one more byte is refused before the MAC */
	assert_int_equal(padded(buf, CD_HB_DATAGRAM_MAX), CD_HB_DATAGRAM_MAX);
	assert_int_equal(decode(buf, CD_HB_DATAGRAM_MAX, key, CLUSTER, &got), 0);
	cd_hb_free(got);
	assert_int_equal(padded(buf, CD_HB_DATAGRAM_MAX + 1), CD_HB_DATAGRAM_MAX + 1);
	assert_int_equal(decode(buf, CD_HB_DATAGRAM_MAX + 1, key, CLUSTER, &got), KB_ETOOBIG);

	/* encode: the caller's capacity to the byte */
	hb = ack(4, false);
	exact = keel__cluster__heartbeat__get_packed_size(&hb) + CD_HB_MAC_SIZE;
	assert_int_equal(cd_hb_encode(&hb, key, buf, exact - 1, &len, &err), KB_ETOOBIG);
	assert_int_equal(len, 0);
	assert_int_equal(encode_ok(&hb, buf, exact), exact);

	/* 256 peers with realistic values fit; 257 never; 256 of the widest values do not
	 * fit in a datagram (37 bytes each) */
	hb = ack(CD_HB_PEERS_MAX, false);
	len = encode_ok(&hb, buf, sizeof(buf));
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	assert_int_equal(got->n_peers, CD_HB_PEERS_MAX);
	cd_hb_free(got);
	hb = ack(CD_HB_PEERS_MAX + 1, false);
	assert_int_equal(cd_hb_encode(&hb, key, buf, sizeof(buf), &len, &err), KB_ETOOBIG);
	hb = ack(CD_HB_PEERS_MAX, true);
	assert_true(keel__cluster__heartbeat__get_packed_size(&hb) > CD_HB_DATAGRAM_MAX);
	assert_int_equal(cd_hb_encode(&hb, key, buf, sizeof(buf), &len, &err), KB_ETOOBIG);

	/* 257 peers, correctly signed by a key holder, refused by the decoder */
	hb = ack(CD_HB_PEERS_MAX + 1, false);
	assert_true(keel__cluster__heartbeat__get_packed_size(&hb) + CD_HB_MAC_SIZE <=
		    CD_HB_DATAGRAM_MAX);
	len = pack_sign(&hb, buf);
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), KB_ETOOBIG);
}

static void test_field_checks(void **state)
{
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	Keel__Cluster__Heartbeat hb, *got = NULL;
	struct kb_errmsg err = {{0}};
	size_t len;
	struct {
		const char *what;
		int field;
	} cases[] = {
	    {"kind unspecified", 0}, {"kind 3", 1},
	    {"from 0", 2},	     {"seq 0", 3},
	    {"ack term 0", 4},	     {"peer host 0", 5},
	    {"peer state 0", 6},     {"peer state 8", 7},
	    {"peer net age -2", 8},  {"peer ds age -2", 9},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hb = ack(2, false);
		switch (cases[i].field) {
		case 0:
			hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_UNSPECIFIED;
			break;
		case 1:
			hb.kind = 3;
			break;
		case 2:
			hb.from = 0;
			break;
		case 3:
			hb.seq = 0;
			break;
		case 4:
			hb.term = 0;
			break;
		case 5:
			peer_store[1].host = 0;
			break;
		case 6:
			peer_store[1].state = KEEL__CLUSTER__HOST_STATE__HOST_STATE_UNSPECIFIED;
			break;
		case 7:
			peer_store[1].state = KEEL__CLUSTER__HOST_STATE__HOST_LEFT + 1;
			break;
		case 8:
			peer_store[0].net_age_ms = -2;
			break;
		case 9:
			peer_store[0].ds_age_ms = -2;
			break;
		}
		len = pack_sign(&hb, buf);
		if (decode(buf, len, key, CLUSTER, &got) != KB_EPROTO)
			fail_msg("%s: accepted", cases[i].what);
		if (cd_hb_encode(&hb, key, buf, sizeof(buf), &len, &err) != -EINVAL)
			fail_msg("%s: encoded", cases[i].what);
	}
	/* a BEAT needs no term */
	hb = beat();
	hb.term = 0;
	len = encode_ok(&hb, buf, sizeof(buf));
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), 0);
	cd_hb_free(got);

	/* signed bytes that are no protobuf message */
	memset(buf, 0xff, 16);
	len = sign(buf, 16);
	assert_int_equal(decode(buf, len, key, CLUSTER, &got), KB_EPROTO);
}

static void test_replay_rule(void **state)
{
	struct cd_hb_seq s = {0};

	(void)state;
	assert_false(cd_hb_seq_accept(&s, 0));
	assert_true(cd_hb_seq_accept(&s, 1000));
	assert_false(cd_hb_seq_accept(&s, 1000)); /* duplicate */
	assert_false(cd_hb_seq_accept(&s, 999));  /* older */
	assert_true(cd_hb_seq_accept(&s, 1001));
	assert_true(cd_hb_seq_accept(&s, 5000)); /* gaps are fine */
	assert_false(cd_hb_seq_accept(&s, 1002));
	assert_true(s.last == 5000);
	assert_true(cd_hb_seq_accept(&s, UINT64_MAX));
	assert_false(cd_hb_seq_accept(&s, UINT64_MAX));
}

static void test_decode_oom(void **state)
{
	Keel__Cluster__Heartbeat hb = ack(8, false), *got = NULL;
	uint8_t buf[CD_HB_DATAGRAM_MAX];
	size_t len = encode_ok(&hb, buf, sizeof(buf));
	int n, rv;

	(void)state;
	for (n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = decode(buf, len, key, CLUSTER, &got);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
	}
	assert_true(n > 0);
	assert_int_equal(got->n_peers, 8);
	cd_hb_free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_beat),
	    cmocka_unit_test(test_round_trip_ack),
	    cmocka_unit_test(test_every_byte_changed),
	    cmocka_unit_test(test_truncated_and_trailing),
	    cmocka_unit_test(test_wrong_key_and_cluster),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_field_checks),
	    cmocka_unit_test(test_replay_rule),
	    cmocka_unit_test(test_decode_oom),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
