/*
 * Heartbeat datagrams (hbwire.h): packed Heartbeat followed by its HMAC-SHA256.
 *
 * Happy path: encode checks the fields, packs into the caller's buffer and appends the
 * MAC; decode checks the length, verifies the MAC in constant time before any parsing,
 * unpacks through the Keel heap and checks the fields. Failure modes: a datagram that is
 * too short or long, does not verify, does not parse or carries an invalid field is
 * refused with its own code; nothing is kept or logged here.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clusterd/codec.h"
#include "clusterd/hbwire.h"

_Static_assert(CD_HB_MAC_SIZE == 32, "HMAC-SHA256 is 32 bytes");

/* MAC of data[0..n) under key into mac. 0 or -EIO. */
static int mac_compute(const uint8_t *key, const uint8_t *data, size_t n,
		       uint8_t mac[CD_HB_MAC_SIZE], struct kb_errmsg *e)
{
	unsigned int mac_len = 0;

	if (HMAC(EVP_sha256(), key, CD_HB_KEY_SIZE, data, n, mac, &mac_len) == NULL ||
	    mac_len != CD_HB_MAC_SIZE) {
		kb_errmsg_setf(e, "heartbeat: HMAC-SHA256 failed");
		return -EIO;
	}
	return 0;
}

/* The field rules shared by both directions; bad is the code for a bad value (KB_EPROTO
 * when decoding, -EINVAL when encoding). */
static int check_fields(const Keel__Cluster__Heartbeat *hb, int bad, struct kb_errmsg *e)
{
	if (hb->kind != KEEL__CLUSTER__HEARTBEAT__KIND__KIND_BEAT &&
	    hb->kind != KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK) {
		kb_errmsg_setf(e, "heartbeat: kind %d is neither BEAT nor ACK", (int)hb->kind);
		return bad;
	}
	if (hb->from == 0) {
		kb_errmsg_setf(e, "heartbeat: sender host id 0");
		return bad;
	}
	if (hb->seq == 0) {
		kb_errmsg_setf(e, "heartbeat from %llu: seq 0", (unsigned long long)hb->from);
		return bad;
	}
	if (hb->kind == KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK && hb->term == 0) {
		kb_errmsg_setf(e, "heartbeat ack from %llu: term 0", (unsigned long long)hb->from);
		return bad;
	}
	if (hb->clock_offset_us < -CD_HB_CLOCK_MAX_US || hb->clock_offset_us > CD_HB_CLOCK_MAX_US) {
		kb_errmsg_setf(e, "heartbeat from %llu: clock offset out of range",
			       (unsigned long long)hb->from);
		return bad;
	}
	if (hb->n_peers > CD_HB_PEERS_MAX) {
		kb_errmsg_setf(e, "heartbeat from %llu: %zu peers exceed %u",
			       (unsigned long long)hb->from, hb->n_peers, CD_HB_PEERS_MAX);
		return KB_ETOOBIG;
	}
	for (size_t i = 0; i < hb->n_peers; i++) {
		const Keel__Cluster__HeartbeatPeer *pr = hb->peers[i];

		if (pr == NULL || pr->host == 0 || pr->net_age_ms < -1 || pr->ds_age_ms < -1 ||
		    pr->state < KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED ||
		    pr->state > KEEL__CLUSTER__HOST_STATE__HOST_LEFT ||
		    pr->clock_offset_us < -CD_HB_CLOCK_MAX_US ||
		    pr->clock_offset_us > CD_HB_CLOCK_MAX_US) {
			kb_errmsg_setf(e, "heartbeat from %llu: peer %zu is invalid",
				       (unsigned long long)hb->from, i);
			return bad;
		}
	}
	return 0;
}

int cd_hb_encode(const Keel__Cluster__Heartbeat *hb, const uint8_t key[CD_HB_KEY_SIZE],
		 uint8_t *out, size_t cap, size_t *len, struct kb_errmsg *e)
{
	size_t n, limit = cap < CD_HB_DATAGRAM_MAX ? cap : CD_HB_DATAGRAM_MAX;
	int rv;

	*len = 0;
	rv = check_fields(hb, -EINVAL, e);
	if (rv != 0)
		return rv;
	n = keel__cluster__heartbeat__get_packed_size(hb);
	if (n > limit || limit - n < CD_HB_MAC_SIZE) {
		kb_errmsg_setf(e, "heartbeat of %zu bytes and its MAC exceed %zu", n, limit);
		return KB_ETOOBIG;
	}
	if (keel__cluster__heartbeat__pack(hb, out) != n) {
		kb_errmsg_setf(e, "heartbeat: packed size changed while packing");
		return -EIO;
	}
	rv = mac_compute(key, out, n, out + n, e);
	if (rv != 0)
		return rv;
	*len = n + CD_HB_MAC_SIZE;
	return 0;
}

int cd_hb_decode(const uint8_t *p, size_t len, const uint8_t key[CD_HB_KEY_SIZE],
		 const char *cluster_id, Keel__Cluster__Heartbeat **out, struct kb_errmsg *e)
{
	uint8_t mac[CD_HB_MAC_SIZE];
	Keel__Cluster__Heartbeat *hb;
	size_t n;
	int rv;

	*out = NULL;
	if (len <= CD_HB_MAC_SIZE) {
		kb_errmsg_setf(e, "heartbeat datagram of %zu bytes is too short", len);
		return KB_ETRUNCATED;
	}
	if (len > CD_HB_DATAGRAM_MAX) {
		kb_errmsg_setf(e, "heartbeat datagram of %zu bytes exceeds %u", len,
			       CD_HB_DATAGRAM_MAX);
		return KB_ETOOBIG;
	}
	n = len - CD_HB_MAC_SIZE;
	rv = mac_compute(key, p, n, mac, e);
	if (rv != 0)
		return rv;
	rv = CRYPTO_memcmp(mac, p + n, CD_HB_MAC_SIZE);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (rv != 0) {
		kb_errmsg_setf(e, "heartbeat datagram does not verify with the cluster key");
		return -EKEYREJECTED;
	}
	hb = keel__cluster__heartbeat__unpack(&cd__pb_allocator, n, p);
	if (hb == NULL) {
		if (cd__pb_was_oom(&keel__cluster__heartbeat__descriptor, p, n)) {
			kb_errmsg_setf(e, "heartbeat: out of memory");
			return -ENOMEM;
		}
		kb_errmsg_setf(e, "heartbeat datagram is malformed");
		return KB_EPROTO;
	}
	rv = check_fields(hb, KB_EPROTO, e);
	if (rv == 0 && strcmp(hb->cluster_id, cluster_id) != 0) {
		kb_errmsg_setf(e, "heartbeat from %llu is for another cluster",
			       (unsigned long long)hb->from);
		rv = KB_EPROTO;
	}
	if (rv != 0) {
		cd_hb_free(hb);
		return rv;
	}
	*out = hb;
	return 0;
}

void cd_hb_free(Keel__Cluster__Heartbeat *hb)
{
	if (hb != NULL)
		keel__cluster__heartbeat__free_unpacked(hb, &cd__pb_allocator);
}

bool cd_hb_seq_accept(struct cd_hb_seq *s, uint64_t seq)
{
	if (seq <= s->last)
		return false;
	s->last = seq;
	return true;
}
