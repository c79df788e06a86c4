/*
 * Byte buffers.
 *
 * The writer grows by doubling, never past its limit: an append that would cross the
 * limit fails with KB_ETOOBIG and leaves the buffer as it was, as does an allocation
 * failure (-ENOMEM). The reader never reads outside its bytes: the first read past the
 * end sets err to KB_ETRUNCATED, returns zeros, and every later read fails the same way,
 * so a decoder reads a whole record and checks err once at the end.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/heap.h"

#define BUF_MIN_CAP 64

void kb_buf_init(struct kb_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
}

void kb_buf_close(struct kb_buf *b)
{
	kb_free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int kb_buf_reserve(struct kb_buf *b, size_t n)
{
	size_t limit = b->limit ? b->limit : SIZE_MAX;
	size_t need, cap;
	uint8_t *p;

	if (n > limit || b->len > limit - n)
		return KB_ETOOBIG;
	need = b->len + n;
	if (need <= b->cap)
		return 0;
	cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > limit)
		cap = limit;
	p = kb_realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int kb_buf_append(struct kb_buf *b, const void *p, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	rc = kb_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int kb_buf_put_u8(struct kb_buf *b, uint8_t v)
{
	return kb_buf_append(b, &v, 1);
}

int kb_buf_put_u16(struct kb_buf *b, uint16_t v)
{
	uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	return kb_buf_append(b, t, sizeof(t));
}

int kb_buf_put_u32(struct kb_buf *b, uint32_t v)
{
	uint8_t t[4];

	for (int i = 0; i < 4; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	return kb_buf_append(b, t, sizeof(t));
}

int kb_buf_put_u64(struct kb_buf *b, uint64_t v)
{
	uint8_t t[8];

	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	return kb_buf_append(b, t, sizeof(t));
}

int kb_buf_put_u32be(struct kb_buf *b, uint32_t v)
{
	uint8_t t[4];

	for (int i = 0; i < 4; i++)
		t[i] = (uint8_t)(v >> (24 - 8 * i));
	return kb_buf_append(b, t, sizeof(t));
}

int kb_buf_put_zero(struct kb_buf *b, size_t n, void **out)
{
	int rc = kb_buf_reserve(b, n);

	if (rc)
		return rc;
	if (n > 0)
		memset(b->data + b->len, 0, n);
	if (out)
		*out = b->data ? b->data + b->len : NULL;
	b->len += n;
	return 0;
}

void kb_buf_consume(struct kb_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void kb_rd_init(struct kb_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->off = 0;
	r->err = 0;
}

/* Advances over n bytes and returns where they start, or NULL after setting err. */
static const uint8_t *rd_take(struct kb_reader *r, size_t n)
{
	static const uint8_t empty[1];
	const uint8_t *q;

	if (r->err || n > r->len - r->off) {
		r->err = KB_ETRUNCATED;
		return NULL;
	}
	if (n == 0)
		return r->p ? r->p + r->off : empty;
	q = r->p + r->off;
	r->off += n;
	return q;
}

uint8_t kb_rd_u8(struct kb_reader *r)
{
	const uint8_t *q = rd_take(r, 1);

	return q ? q[0] : 0;
}

uint16_t kb_rd_u16(struct kb_reader *r)
{
	const uint8_t *q = rd_take(r, 2);

	return q ? (uint16_t)(q[0] | q[1] << 8) : 0;
}

uint32_t kb_rd_u32(struct kb_reader *r)
{
	const uint8_t *q = rd_take(r, 4);

	return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
		       (uint32_t)q[3] << 24
		 : 0;
}

uint64_t kb_rd_u64(struct kb_reader *r)
{
	const uint8_t *q = rd_take(r, 8);
	uint64_t v = 0;

	if (!q)
		return 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | q[i];
	return v;
}

uint32_t kb_rd_u32be(struct kb_reader *r)
{
	const uint8_t *q = rd_take(r, 4);

	return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 |
		       (uint32_t)q[3]
		 : 0;
}

const void *kb_rd_bytes(struct kb_reader *r, size_t n)
{
	return rd_take(r, n);
}

int kb_rd_copy(struct kb_reader *r, void *out, size_t n)
{
	const uint8_t *q = rd_take(r, n);

	if (n == 0)
		return r->err;
	if (q)
		memcpy(out, q, n);
	else
		memset(out, 0, n);
	return r->err;
}
