/*
 * Byte buffers: a growable writer with a hard size limit, and a bounds-checked reader for
 * untrusted bytes. Integers are little-endian unless the function name says "be".
 */
#ifndef KB_BUF_H
#define KB_BUF_H

#include <stddef.h>
#include <stdint.h>

struct kb_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t limit; /* append fails with KB_ETOOBIG past this many bytes; 0: SIZE_MAX */
};

void kb_buf_init(struct kb_buf *b, size_t limit);
/* Frees the storage; the buffer may be reused after kb_buf_init(). */
void kb_buf_close(struct kb_buf *b);
/* Makes room for n more bytes. 0, -ENOMEM or KB_ETOOBIG. */
int kb_buf_reserve(struct kb_buf *b, size_t n);
int kb_buf_append(struct kb_buf *b, const void *p, size_t n);
int kb_buf_put_u8(struct kb_buf *b, uint8_t v);
int kb_buf_put_u16(struct kb_buf *b, uint16_t v);
int kb_buf_put_u32(struct kb_buf *b, uint32_t v);
int kb_buf_put_u64(struct kb_buf *b, uint64_t v);
int kb_buf_put_u32be(struct kb_buf *b, uint32_t v);
/* Appends n zero bytes and returns a pointer to them through out (valid until the next
 * append). 0, -ENOMEM or KB_ETOOBIG. */
int kb_buf_put_zero(struct kb_buf *b, size_t n, void **out);
/* Drops the first n bytes (n <= len). */
void kb_buf_consume(struct kb_buf *b, size_t n);
static inline void kb_buf_reset(struct kb_buf *b)
{
	b->len = 0;
}

/*
 * Reader over borrowed bytes. The first failing read sets err (KB_ETRUNCATED) and every
 * later read fails too, so a decoder can read a whole record and check err once.
 */
struct kb_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;
};

void kb_rd_init(struct kb_reader *r, const void *p, size_t len);
uint8_t kb_rd_u8(struct kb_reader *r);
uint16_t kb_rd_u16(struct kb_reader *r);
uint32_t kb_rd_u32(struct kb_reader *r);
uint64_t kb_rd_u64(struct kb_reader *r);
uint32_t kb_rd_u32be(struct kb_reader *r);
/* Returns a pointer to the next n bytes and advances, or NULL (sets err). */
const void *kb_rd_bytes(struct kb_reader *r, size_t n);
/* Copies n bytes into out (zero-fills out on failure). Returns r->err. */
int kb_rd_copy(struct kb_reader *r, void *out, size_t n);
static inline size_t kb_rd_left(const struct kb_reader *r)
{
	return r->len - r->off;
}

#endif
