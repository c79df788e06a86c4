/*
 * Tests for lib/buf: writer growth and limits, little/big-endian encoding, consume, and
 * the reader's sticky truncation on untrusted input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/heap.h"

static void test_append_grows(void **state)
{
	struct kb_buf b;
	uint8_t chunk[100];

	kb_buf_init(&b, 0);
	assert_null(b.data);
	for (int i = 0; i < 1000; i++) {
		memset(chunk, i & 0xff, sizeof(chunk));
		assert_int_equal(kb_buf_append(&b, chunk, sizeof(chunk)), 0);
	}
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(b.data[i * 100 + 99], i & 0xff);
	assert_int_equal(kb_buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 100000);
	kb_buf_close(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_limit(void **state)
{
	struct kb_buf b;
	uint8_t data[10] = {0};
	void *z;

	kb_buf_init(&b, 16);
	assert_int_equal(kb_buf_append(&b, data, 10), 0);
	assert_int_equal(kb_buf_append(&b, data, 7), KB_ETOOBIG);
	assert_int_equal(b.len, 10); /* unchanged by the failed append */
	assert_int_equal(kb_buf_put_u64(&b, 1), KB_ETOOBIG);
	assert_int_equal(kb_buf_append(&b, data, 6), 0);
	assert_int_equal(b.len, 16);
	assert_true(b.cap <= 16); /* growth is clamped to the limit */
	assert_int_equal(kb_buf_put_u8(&b, 1), KB_ETOOBIG);
	assert_int_equal(kb_buf_put_zero(&b, 1, &z), KB_ETOOBIG);
	assert_int_equal(kb_buf_reserve(&b, 0), 0);
	kb_buf_reset(&b);
	assert_int_equal(kb_buf_put_zero(&b, 16, &z), 0);
	kb_buf_close(&b);

	/* Sizes that would overflow len + n are refused, not wrapped. */
	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_put_u16(&b, 1), 0);
	assert_int_equal(kb_buf_reserve(&b, SIZE_MAX), KB_ETOOBIG);
	assert_int_equal(kb_buf_reserve(&b, SIZE_MAX - 1), KB_ETOOBIG);
	assert_int_equal(b.len, 2);
	kb_buf_close(&b);
}

static void test_encoding(void **state)
{
	static const uint8_t want[] = {
	    0xab,					    /* u8 */
	    0x34, 0x12,					    /* u16 */
	    0x78, 0x56, 0x34, 0x12,			    /* u32 */
	    0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, /* u64 */
	    0x12, 0x34, 0x56, 0x78,			    /* u32be */
	    0,	  0,	0,				    /* zero */
	};
	struct kb_buf b;
	void *z = NULL;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_put_u8(&b, 0xab), 0);
	assert_int_equal(kb_buf_put_u16(&b, 0x1234), 0);
	assert_int_equal(kb_buf_put_u32(&b, 0x12345678), 0);
	assert_int_equal(kb_buf_put_u64(&b, 0x0123456789abcdefull), 0);
	assert_int_equal(kb_buf_put_u32be(&b, 0x12345678), 0);
	assert_int_equal(kb_buf_put_zero(&b, 3, &z), 0);
	assert_ptr_equal(z, b.data + b.len - 3);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	kb_buf_close(&b);
}

static void test_consume(void **state)
{
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_append(&b, "abcdef", 6), 0);
	kb_buf_consume(&b, 2);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "cdef", 4);
	kb_buf_consume(&b, 4);
	assert_int_equal(b.len, 0);
	assert_int_equal(kb_buf_append(&b, "xy", 2), 0);
	assert_memory_equal(b.data, "xy", 2);
	kb_buf_close(&b);
}

static void test_reserve_enomem(void **state)
{
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_append(&b, "abc", 3), 0);
	kb_heap_fail_after(0, 1);
	assert_int_equal(kb_buf_reserve(&b, 1000), -ENOMEM);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "abc", 3);
	/* The failure was one-shot: the retry succeeds. */
	assert_int_equal(kb_buf_reserve(&b, 1000), 0);
	assert_true(b.cap >= 1003);
	kb_heap_fail_reset();
	kb_buf_close(&b);
}

static void test_reader(void **state)
{
	static const uint8_t in[] = {0xab, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 0xef,
				     0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0x12,
				     0x34, 0x56, 0x78, 'h',  'i',  '!'};
	struct kb_reader r;
	char s[3];

	kb_rd_init(&r, in, sizeof(in));
	assert_int_equal(kb_rd_u8(&r), 0xab);
	assert_int_equal(kb_rd_u16(&r), 0x1234);
	assert_int_equal(kb_rd_u32(&r), 0x12345678);
	assert_true(kb_rd_u64(&r) == 0x0123456789abcdefull);
	assert_int_equal(kb_rd_u32be(&r), 0x12345678);
	assert_int_equal(kb_rd_left(&r), 3);
	assert_int_equal(kb_rd_copy(&r, s, 3), 0);
	assert_memory_equal(s, "hi!", 3);
	assert_int_equal(kb_rd_left(&r), 0);
	assert_non_null(kb_rd_bytes(&r, 0));
	assert_int_equal(r.err, 0);
}

static void test_reader_truncation_sticky(void **state)
{
	static const uint8_t in[] = {1, 2, 3, 4, 5, 6};
	struct kb_reader r;
	uint8_t out[4] = {9, 9, 9, 9};

	kb_rd_init(&r, in, sizeof(in));
	assert_int_equal(kb_rd_u32(&r), 0x04030201);
	/* Two bytes left: a u32 fails, returns 0 and consumes nothing. */
	assert_int_equal(kb_rd_u32(&r), 0);
	assert_int_equal(r.err, KB_ETRUNCATED);
	assert_int_equal(kb_rd_left(&r), 2);
	/* Sticky: reads that would fit fail too. */
	assert_int_equal(kb_rd_u8(&r), 0);
	assert_int_equal(kb_rd_u16(&r), 0);
	assert_null(kb_rd_bytes(&r, 1));
	assert_null(kb_rd_bytes(&r, 0));
	assert_int_equal(kb_rd_copy(&r, out, sizeof(out)), KB_ETRUNCATED);
	assert_memory_equal(out, "\0\0\0\0", 4);
	assert_int_equal(r.err, KB_ETRUNCATED);
}

static void test_reader_huge_length(void **state)
{
	static const uint8_t in[] = {1, 2, 3};
	struct kb_reader r;

	/* A length field from the wire must not wrap the bounds check. */
	kb_rd_init(&r, in, sizeof(in));
	assert_int_equal(kb_rd_u8(&r), 1);
	assert_null(kb_rd_bytes(&r, SIZE_MAX));
	assert_int_equal(r.err, KB_ETRUNCATED);

	kb_rd_init(&r, NULL, 0);
	assert_int_equal(kb_rd_u8(&r), 0);
	assert_int_equal(r.err, KB_ETRUNCATED);
	assert_int_equal(kb_rd_u64(&r), 0);
	assert_int_equal(kb_rd_u32be(&r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_grows),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_encoding),
	    cmocka_unit_test(test_consume),
	    cmocka_unit_test(test_reserve_enomem),
	    cmocka_unit_test(test_reader),
	    cmocka_unit_test(test_reader_truncation_sticky),
	    cmocka_unit_test(test_reader_huge_length),
	};

	return cmocka_run_group_tests_name("lib_buf", tests, NULL, NULL);
}
