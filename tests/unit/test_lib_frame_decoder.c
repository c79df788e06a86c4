/*
 * Tests for the incremental frame decoder in lib/frame: frames split at every byte, many
 * frames in one read, over-limit lengths, a caller that never takes frames, and -ENOMEM.
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
#include "lib/frame.h"
#include "lib/heap.h"

static int teardown(void **state)
{
	kb_heap_fail_reset();
	return 0;
}

/* Appends one frame with payload bytes (i * 7 + seed) to stream. */
static void add_frame(struct kb_buf *stream, size_t len, uint8_t seed)
{
	assert_int_equal(kb_buf_put_u32be(stream, (uint32_t)len), 0);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(kb_buf_put_u8(stream, (uint8_t)(i * 7 + seed)), 0);
}

static void check_frame(const uint8_t *p, size_t len, size_t want_len, uint8_t seed)
{
	assert_int_equal(len, want_len);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(p[i], (uint8_t)(i * 7 + seed));
}

static void test_byte_at_a_time(void **state)
{
	static const size_t sizes[] = {0, 5, 300, 1, 0, 70};
	const size_t nframes = sizeof(sizes) / sizeof(sizes[0]);
	struct kb_frame_decoder d;
	struct kb_buf stream;
	const uint8_t *p;
	size_t len, seen = 0;
	int rc;

	kb_buf_init(&stream, 0);
	for (size_t i = 0; i < nframes; i++)
		add_frame(&stream, sizes[i], (uint8_t)i);
	kb_frame_decoder_init(&d, 300);
	for (size_t off = 0; off < stream.len; off++) {
		assert_int_equal(kb_frame_feed(&d, stream.data + off, 1), 0);
		while ((rc = kb_frame_next(&d, &p, &len)) == 1) {
			assert_true(seen < nframes);
			check_frame(p, len, sizes[seen], (uint8_t)seen);
			seen++;
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(seen, nframes);
	assert_int_equal(kb_frame_next(&d, &p, &len), 0);
	kb_frame_decoder_close(&d);
	kb_buf_close(&stream);
}

static void test_many_in_one_feed(void **state)
{
	struct kb_frame_decoder d;
	struct kb_buf stream;
	const uint8_t *p;
	size_t len;

	kb_buf_init(&stream, 0);
	for (int i = 0; i < 1000; i++)
		add_frame(&stream, (size_t)(i % 13), (uint8_t)i);
	add_frame(&stream, 10, 0xaa); /* sent in two halves */
	kb_frame_decoder_init(&d, 64);
	assert_int_equal(kb_frame_feed(&d, stream.data, stream.len - 6), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(kb_frame_next(&d, &p, &len), 1);
		check_frame(p, len, (size_t)(i % 13), (uint8_t)i);
	}
	assert_int_equal(kb_frame_next(&d, &p, &len), 0);
	assert_int_equal(kb_frame_feed(&d, stream.data + stream.len - 6, 6), 0);
	/* Only the unfinished frame was kept. */
	assert_int_equal(d.in.len, 14);
	assert_int_equal(kb_frame_next(&d, &p, &len), 1);
	check_frame(p, len, 10, 0xaa);
	assert_int_equal(kb_frame_next(&d, &p, &len), 0);
	kb_frame_decoder_close(&d);
	kb_buf_close(&stream);
}

static void test_too_big(void **state)
{
	static const uint8_t hdr[] = {0, 0, 0x01, 0x01}; /* 257 */
	struct kb_frame_decoder d;
	struct kb_buf s;
	const uint8_t *p;
	size_t len;

	/* Detected as soon as the header is complete, before the payload arrives. */
	kb_frame_decoder_init(&d, 256);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kb_frame_feed(&d, hdr + i, 1), 0);
		assert_int_equal(kb_frame_next(&d, &p, &len), 0);
	}
	assert_int_equal(kb_frame_feed(&d, hdr + 3, 1), KB_ETOOBIG);
	assert_int_equal(kb_frame_next(&d, &p, &len), KB_ETOOBIG);
	kb_frame_decoder_close(&d);

	/* A limit of 256 accepts 256. */
	kb_frame_decoder_init(&d, 256);
	kb_buf_init(&s, 0);
	add_frame(&s, 256, 3);
	assert_int_equal(kb_frame_feed(&d, s.data, s.len), 0);
	assert_int_equal(kb_frame_next(&d, &p, &len), 1);
	check_frame(p, len, 256, 3);
	kb_buf_close(&s);
	kb_frame_decoder_close(&d);
}

static void test_feed_without_taking(void **state)
{
	struct kb_frame_decoder d;
	struct kb_buf stream;
	const uint8_t *p;
	size_t len;

	kb_buf_init(&stream, 0);
	add_frame(&stream, 16, 1);
	add_frame(&stream, 16, 2);
	kb_frame_decoder_init(&d, 16);
	/* One read may hold several frames... */
	assert_int_equal(kb_frame_feed(&d, stream.data, stream.len), 0);
	/* ...but buffering more than one frame's worth without taking any is refused. */
	assert_int_equal(kb_frame_feed(&d, stream.data, stream.len), KB_ETOOBIG);
	assert_int_equal(d.in.len, 40);
	assert_int_equal(kb_frame_next(&d, &p, &len), 1);
	check_frame(p, len, 16, 1);
	assert_int_equal(kb_frame_next(&d, &p, &len), 1);
	check_frame(p, len, 16, 2);
	assert_int_equal(kb_frame_next(&d, &p, &len), 0);
	assert_int_equal(kb_frame_feed(&d, stream.data, stream.len), 0);
	assert_int_equal(kb_frame_next(&d, &p, &len), 1);
	check_frame(p, len, 16, 1);
	kb_frame_decoder_close(&d);
	kb_buf_close(&stream);
}

static void test_enomem(void **state)
{
	struct kb_frame_decoder d;
	const uint8_t *p;
	size_t len;

	kb_frame_decoder_init(&d, 64);
	kb_heap_fail_after(0, 1);
	assert_int_equal(kb_frame_feed(&d, "\0\0\0\2hi", 6), -ENOMEM);
	assert_int_equal(kb_frame_next(&d, &p, &len), 0);
	/* Nothing was half-applied: feeding again works. */
	assert_int_equal(kb_frame_feed(&d, "\0\0\0\2hi", 6), 0);
	assert_int_equal(kb_frame_next(&d, &p, &len), 1);
	assert_int_equal(len, 2);
	assert_memory_equal(p, "hi", 2);
	kb_frame_decoder_close(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_byte_at_a_time),
	    cmocka_unit_test(test_many_in_one_feed),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_feed_without_taking),
	    cmocka_unit_test_teardown(test_enomem, teardown),
	};

	return cmocka_run_group_tests_name("lib_frame_decoder", tests, NULL, NULL);
}
