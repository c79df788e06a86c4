/*
 * Fuzz target: clusterd's heartbeat datagram decoder (clusterd/hbwire.c) on arbitrary bytes,
 * under a fixed key and cluster id. Each input is decoded twice:
 *   as it is: almost always refused by the MAC, which must be checked first;
 *   followed by its HMAC-SHA256 under the key: the MAC verifies, so the protobuf decoder
 *   and the field checks behind it see the input; only they may refuse it.
 * A datagram that decodes must encode (cd_hb_encode) and decode again to the same message,
 * and encoding that message again must give the same bytes.
 * Seeds: packed Heartbeats (BEAT and ACK) under this key and cluster id, with or without
 * their MAC (tests/integration/fuzz_smoke.sh writes them).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clusterd/hbwire.h"
#include "lib/err.h"

#define CLUSTER "7c9e6679-7425-40de-944b-e07fc1f90ae7"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0x00, 0x01, ..., 0x1f: fuzz_smoke.sh signs its seeds with the same key. */
static const uint8_t key[CD_HB_KEY_SIZE] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static uint8_t signed_buf[CD_HB_DATAGRAM_MAX + 1];
static uint8_t enc1[CD_HB_DATAGRAM_MAX], enc2[CD_HB_DATAGRAM_MAX];

static void __attribute__((noreturn)) fail(const char *what)
{
	fprintf(stderr, "fuzz_hbwire: %s\n", what);
	abort();
}

static void same(const Keel__Cluster__Heartbeat *a, const Keel__Cluster__Heartbeat *b)
{
	if (a->kind != b->kind)
		fail("kind changed in a round trip");
	if (a->from != b->from)
		fail("from changed in a round trip");
	if (a->seq != b->seq)
		fail("seq changed in a round trip");
	if (a->echo_seq != b->echo_seq)
		fail("echo_seq changed in a round trip");
	if (a->term != b->term)
		fail("term changed in a round trip");
	if (a->isolated != b->isolated)
		fail("isolated changed in a round trip");
	if (a->running_vms != b->running_vms)
		fail("running_vms changed in a round trip");
	if (strcmp(a->cluster_id, b->cluster_id) != 0)
		fail("cluster_id changed in a round trip");
	if (a->n_peers != b->n_peers)
		fail("the number of peers changed in a round trip");
	for (size_t i = 0; i < a->n_peers; i++) {
		const Keel__Cluster__HeartbeatPeer *p = a->peers[i], *q = b->peers[i];

		if (p->host != q->host || p->net_age_ms != q->net_age_ms ||
		    p->ds_age_ms != q->ds_age_ms || p->state != q->state)
			fail("a peer changed in a round trip");
	}
}

/* hb was accepted by cd_hb_decode(): it must encode, decode to the same message, and
 * encode again to the same bytes. */
static void round_trip(const Keel__Cluster__Heartbeat *hb)
{
	struct kb_errmsg e = {{0}};
	Keel__Cluster__Heartbeat *again = NULL;
	size_t n1 = 0, n2 = 0;
	int rv;

	if (strcmp(hb->cluster_id, CLUSTER) != 0)
		fail("accepted a heartbeat for another cluster");
	rv = cd_hb_encode(hb, key, enc1, sizeof(enc1), &n1, &e);
	if (rv != 0) {
		fprintf(stderr, "fuzz_hbwire: encode %d: %s\n", rv, e.msg);
		fail("an accepted heartbeat does not encode");
	}
	rv = cd_hb_decode(enc1, n1, key, CLUSTER, &again, &e);
	if (rv != 0 || again == NULL) {
		fprintf(stderr, "fuzz_hbwire: decode %d: %s\n", rv, e.msg);
		fail("a re-encoded heartbeat does not decode");
	}
	same(hb, again);
	rv = cd_hb_encode(again, key, enc2, sizeof(enc2), &n2, &e);
	if (rv != 0 || n2 != n1 || memcmp(enc1, enc2, n1) != 0)
		fail("encoding is not stable across a round trip");
	cd_hb_free(again);
}

/* Decodes p and checks the outcome; signed: p carries a MAC that verifies. */
static void check(const uint8_t *p, size_t n, int is_signed)
{
	static Keel__Cluster__Heartbeat unset; /* decode must overwrite *out either way */
	struct kb_errmsg e = {{0}};
	Keel__Cluster__Heartbeat *hb = &unset;
	int rv = cd_hb_decode(p, n, key, CLUSTER, &hb, &e);

	if (rv != 0) {
		if (hb != NULL)
			fail("a refused datagram left an output");
		if (e.msg[0] == '\0')
			fail("a refused datagram gave no message");
		if (rv > 0)
			fail("a refused datagram gave a positive code");
		if (is_signed && rv == -EKEYREJECTED)
			fail("a correctly signed datagram failed the MAC");
		return;
	}
	if (hb == NULL)
		fail("an accepted datagram gave no output");
	round_trip(hb);
	cd_hb_free(hb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int mac_len = 0;

	check(data, size, 0);
	/* the input as the message, signed; an empty one is too short for the MAC path */
	if (size == 0 || size > CD_HB_DATAGRAM_MAX + 1 - CD_HB_MAC_SIZE)
		return 0;
	memcpy(signed_buf, data, size);
	if (HMAC(EVP_sha256(), key, sizeof(key), data, size, signed_buf + size, &mac_len) == NULL ||
	    mac_len != CD_HB_MAC_SIZE)
		fail("HMAC-SHA256 failed");
	check(signed_buf, size + CD_HB_MAC_SIZE, 1);
	return 0;
}
