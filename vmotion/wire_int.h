/*
 * Internals shared by the files of the vMotion stream (not for other components): the conn
 * (vmotion/wire.c: the hello, the keys, sending and receiving records) and the records
 * (vmotion/records.c: decoding and the typed senders).
 */
#ifndef VMOTION_WIRE_INT_H
#define VMOTION_WIRE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "lib/err.h"
#include "vmotion/wire.h"

#define VMO__SALT_SIZE 4

/* One direction of a conn: its cipher (key set once), IV salt and sequence number. */
struct dir {
	EVP_CIPHER_CTX *ctx;
	uint8_t salt[VMO__SALT_SIZE];
	uint64_t seq;
	bool failed;
};

struct vmo_conn {
	int fd;
	uint32_t index, count;
	uint64_t guest_pages;
	bool encrypt;
	bool client;
	bool ft;
	struct dir tx, rx; /* tx: under tx_lock; rx: receiver thread only */
	pthread_mutex_t tx_lock;
	uint8_t *sbuf, *rbuf;
	/* receive order (server side): nothing but state and control after FINAL */
	bool final_seen, state_end_seen;
	uint64_t state_bytes;
	_Atomic uint64_t sent, received;
	atomic_bool shut;
};

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* The name of a record type, "unknown" for others. */
const char *vmo__type_name(int type);
/* Page range rules shared by the decoder (bad = KB_EPROTO) and the typed senders
 * (bad = -EINVAL): below guest_pages, on this stream, and inside one chunk for PAGES, and
 * for ZERO when other streams exist (the next chunk is then another stream's). */
int vmo__check_pages(int type, uint64_t first, uint32_t n, uint32_t index, uint32_t count,
		     uint64_t guest_pages, int bad, struct kb_errmsg *err);
/* "stream I: TYPE record: WHAT" in err; KB_EPROTO. */
int vmo__bad_field(int type, uint32_t index, const char *what, struct kb_errmsg *err);

#endif
