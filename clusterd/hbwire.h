/*
 * Heartbeat datagrams: the checked encoder and decoder of the UDP messages hosts and the
 * leader exchange on vmk0 every ~100 ms (DESIGN.md section 4, docs/liveness.md).
 *
 * Format of one datagram (no header, no padding):
 *
 *   bytes 0 .. n-1     a packed keel.cluster.Heartbeat (proto/cluster.proto), n >= 1
 *   bytes n .. n+31    HMAC-SHA256(cluster key, bytes 0 .. n-1)
 *
 * The whole datagram is at most CD_HB_DATAGRAM_MAX bytes; a Heartbeat carries at most
 * CD_HB_PEERS_MAX peers. The key is the cluster's 32-byte heartbeat key (JoinReply's
 * cluster_key); a datagram that does not verify with it is dropped before protobuf-c
 * sees a byte of it.
 *
 * Happy path: a host fills a Heartbeat, cd_hb_encode() packs and signs it into a caller
 * buffer; the receiver's cd_hb_decode() checks the size, the MAC (in constant time), the
 * message and its fields, then the caller applies the replay rule per sender with
 * cd_hb_seq_accept(). Failure modes: every refusal is a negative code with a reason in the
 * errmsg and no output; nothing here logs, reads a clock or keeps state.
 *
 * A bad MAC is -EKEYREJECTED, not KB_ECHECKSUM: the MAC authenticates (a wrong key, a
 * forged or a damaged datagram all look the same), and KB_ECHECKSUM in Keel means a CRC
 * found a torn or damaged write. Token and certificate checks use -EKEYREJECTED alike.
 *
 * No function keeps global state; any thread may call them.
 */
#ifndef CD_HBWIRE_H
#define CD_HBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.pb-c.h"
#include "lib/err.h"

#define CD_HB_KEY_SIZE	   32	/* the cluster's heartbeat key */
#define CD_HB_MAC_SIZE	   32	/* HMAC-SHA256 */
#define CD_HB_DATAGRAM_MAX 8192 /* whole datagram, MAC included */
#define CD_HB_PEERS_MAX	   256	/* peers in one Heartbeat */
#define CD_HB_CLOCK_MAX_US 86400000000ll /* |clock_offset_us| of a beat or a peer: 1 day */

/* Packs hb and appends its MAC under key into out (cap bytes); *len receives the datagram
 * length. hb is borrowed. The fields are checked as cd_hb_decode() checks them (but not
 * the cluster id), so a host never sends what a receiver refuses.
 * Errors: -EINVAL (a field decode would refuse), KB_ETOOBIG (more than CD_HB_PEERS_MAX
 * peers, or a datagram longer than cap or CD_HB_DATAGRAM_MAX), -EIO (OpenSSL failed);
 * e says why. On error *len is 0 and out's contents are unspecified. */
int cd_hb_encode(const Keel__Cluster__Heartbeat *hb, const uint8_t key[CD_HB_KEY_SIZE],
		 uint8_t *out, size_t cap, size_t *len, struct kb_errmsg *e);

/* Checks and decodes the datagram p (len bytes, untrusted) received for the cluster
 * cluster_id under key. In order: the length (KB_ETRUNCATED when len <= CD_HB_MAC_SIZE,
 * KB_ETOOBIG over CD_HB_DATAGRAM_MAX), the MAC compared in constant time (-EKEYREJECTED),
 * the protobuf message (KB_EPROTO; -ENOMEM), then the fields (KB_EPROTO unless noted):
 * kind BEAT or ACK; from != 0; seq != 0; cluster id equal to cluster_id; at most
 * CD_HB_PEERS_MAX peers (KB_ETOOBIG); an ACK has term != 0; every peer has host != 0,
 * ages >= -1 and a state from HOST_CONNECTED to HOST_LEFT; clock offsets of the beat and
 * of every peer within +-CD_HB_CLOCK_MAX_US.
 * On success *out is the message: the caller frees it with cd_hb_free(). On error *out is
 * NULL and e says why. The replay rule is not applied here: see cd_hb_seq_accept(). */
int cd_hb_decode(const uint8_t *p, size_t len, const uint8_t key[CD_HB_KEY_SIZE],
		 const char *cluster_id, Keel__Cluster__Heartbeat **out, struct kb_errmsg *e);

/* Frees a message from cd_hb_decode(); NULL is a no-op. */
void cd_hb_free(Keel__Cluster__Heartbeat *hb);

/* The replay rule. The receiver keeps one struct cd_hb_seq per sender (zeroed when it
 * starts watching that sender) and calls cd_hb_seq_accept() with the seq of every
 * datagram that cd_hb_decode() accepted from it: true, and the seq is remembered, when
 * seq is strictly greater than every seq accepted before; false (drop the datagram) for a
 * replayed, duplicated or reordered one. Senders start seq at their wall clock in ns and
 * add one per datagram, so it grows across restarts; seq 0 is never accepted. */
struct cd_hb_seq {
	uint64_t last; /* highest seq accepted; 0: none yet */
};

bool cd_hb_seq_accept(struct cd_hb_seq *s, uint64_t seq);

#endif
