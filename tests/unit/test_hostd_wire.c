/*
 * Tests for hostagent/wire.h: the gRPC length prefix (encode, decode), the limits checked
 * before payload is buffered, messages split across DATA frames at every byte boundary
 * and several in one frame, sticky errors, and grpc-message percent-encoding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hostagent/wire.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "vim.pb-c.h"

struct got {
	unsigned n;
	size_t len[8];
	uint8_t data[8][64];
	int fail_at; /* callback returns an error on this message (1-based), 0: never */
};

static int collect(void *arg, const uint8_t *msg, size_t len)
{
	struct got *g = arg;

	if (g->n < 8) {
		g->len[g->n] = len;
		if (len)
			memcpy(g->data[g->n], msg, len < 64 ? len : 64);
	}
	g->n++;
	if (g->fail_at && g->n == (unsigned)g->fail_at)
		return KB_EPROTO;
	return 0;
}

static void test_prefix(void **state)
{
	uint8_t p[5];

	hd_wire_prefix(p, 0x01020304);
	assert_memory_equal(p, "\x00\x01\x02\x03\x04", 5);
	hd_wire_prefix(p, 0);
	assert_memory_equal(p, "\x00\x00\x00\x00\x00", 5);
}

static void test_put_roundtrip(void **state)
{
	Keel__Vim__LoginRequest in = KEEL__VIM__LOGIN_REQUEST__INIT, *out;
	struct hd_wire_dec d;
	struct kb_buf b;
	struct got g = {0};
	size_t len;

	in.user = "root";
	in.password = "secret";
	len = protobuf_c_message_get_packed_size(&in.base);
	kb_buf_init(&b, 0);
	assert_int_equal(hd_wire_put(&b, &in.base, HD_WIRE_MSG_MAX), 0);
	assert_int_equal(b.len, 5 + len);
	assert_int_equal(b.data[4], len);
	/* Too big for the given maximum: nothing appended. */
	assert_int_equal(hd_wire_put(&b, &in.base, len - 1), KB_ETOOBIG);
	assert_int_equal(b.len, 5 + len);

	hd_wire_dec_init(&d, HD_WIRE_MSG_MAX);
	assert_int_equal(hd_wire_feed(&d, b.data, b.len, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_true(hd_wire_dec_at_boundary(&d));
	out = keel__vim__login_request__unpack(NULL, g.len[0], g.data[0]);
	assert_non_null(out);
	assert_string_equal(out->user, "root");
	assert_string_equal(out->password, "secret");
	keel__vim__login_request__free_unpacked(out, NULL);
	hd_wire_dec_close(&d);
	kb_buf_close(&b);
}

/* Three messages (one empty) in one buffer, fed at every split point in two pieces and
 * byte by byte: the same messages come out. */
static void test_split_everywhere(void **state)
{
	const uint8_t in[] = {0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 'x', 'y'};
	struct hd_wire_dec d;

	for (size_t cut = 0; cut <= sizeof(in); cut++) {
		struct got g = {0};

		hd_wire_dec_init(&d, 16);
		assert_int_equal(hd_wire_feed(&d, in, cut, collect, &g), 0);
		assert_int_equal(hd_wire_feed(&d, in + cut, sizeof(in) - cut, collect, &g), 0);
		assert_int_equal(g.n, 3);
		assert_int_equal(g.len[0], 3);
		assert_memory_equal(g.data[0], "abc", 3);
		assert_int_equal(g.len[1], 0);
		assert_int_equal(g.len[2], 2);
		assert_memory_equal(g.data[2], "xy", 2);
		assert_true(hd_wire_dec_at_boundary(&d));
		hd_wire_dec_close(&d);
	}
	{
		struct got g = {0};

		hd_wire_dec_init(&d, 16);
		for (size_t i = 0; i < sizeof(in); i++) {
			assert_int_equal(hd_wire_feed(&d, in + i, 1, collect, &g), 0);
			assert_int_equal(hd_wire_dec_at_boundary(&d),
					 i + 1 == 8 || i + 1 == 13 || i + 1 == sizeof(in));
		}
		assert_int_equal(g.n, 3);
		hd_wire_dec_close(&d);
	}
}

static void test_limits(void **state)
{
	const uint8_t at_max[] = {0, 0, 0, 0, 4, 1, 2, 3, 4};
	const uint8_t over[] = {0, 0, 0, 0, 5};
	const uint8_t huge[] = {0, 0xff, 0xff, 0xff, 0xff};
	struct hd_wire_dec d;
	struct got g = {0};

	hd_wire_dec_init(&d, 4);
	assert_int_equal(hd_wire_feed(&d, at_max, sizeof(at_max), collect, &g), 0);
	assert_int_equal(g.n, 1);
	/* Refused on the prefix alone, before any payload: nothing is buffered. */
	assert_int_equal(hd_wire_feed(&d, over, sizeof(over), collect, &g), KB_ETOOBIG);
	assert_int_equal(hd_wire_dec_buffered(&d), 0);
	/* Sticky. */
	assert_int_equal(hd_wire_feed(&d, at_max, sizeof(at_max), collect, &g), KB_ETOOBIG);
	assert_int_equal(g.n, 1);
	assert_false(hd_wire_dec_at_boundary(&d));
	hd_wire_dec_close(&d);

	hd_wire_dec_init(&d, HD_WIRE_MSG_MAX);
	assert_int_equal(hd_wire_feed(&d, huge, sizeof(huge), collect, &g), KB_ETOOBIG);
	hd_wire_dec_close(&d);
}

/* The buffer grows with what arrives, not with what the prefix claims. */
static void test_buffer_follows_bytes(void **state)
{
	const uint8_t claim[] = {0, 0, 0x40, 0, 0, 'a', 'b'}; /* 4 MiB declared, 2 sent */
	struct hd_wire_dec d;
	struct got g = {0};

	hd_wire_dec_init(&d, HD_WIRE_MSG_MAX);
	assert_int_equal(hd_wire_feed(&d, claim, sizeof(claim), collect, &g), 0);
	assert_true(hd_wire_dec_buffered(&d) < 4096);
	assert_false(hd_wire_dec_at_boundary(&d));
	hd_wire_dec_close(&d);
}

static void test_flags(void **state)
{
	const uint8_t compressed[] = {1, 0, 0, 0, 1, 'z'};
	const uint8_t bad[] = {2, 0, 0, 0, 0};
	struct hd_wire_dec d;
	struct got g = {0};

	hd_wire_dec_init(&d, 16);
	assert_int_equal(hd_wire_feed(&d, compressed, sizeof(compressed), collect, &g), KB_ENOTSUP);
	hd_wire_dec_close(&d);
	hd_wire_dec_init(&d, 16);
	assert_int_equal(hd_wire_feed(&d, bad, sizeof(bad), collect, &g), KB_EPROTO);
	hd_wire_dec_close(&d);
	assert_int_equal(g.n, 0);
}

static void test_callback_stops(void **state)
{
	const uint8_t two[] = {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 1, 'b'};
	struct hd_wire_dec d;
	struct got g = {.fail_at = 1};

	hd_wire_dec_init(&d, 16);
	assert_int_equal(hd_wire_feed(&d, two, sizeof(two), collect, &g), KB_EPROTO);
	assert_int_equal(g.n, 1);
	hd_wire_dec_close(&d);
}

static void test_oom(void **state)
{
	const uint8_t in[] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
	struct hd_wire_dec d;
	struct got g = {0};

	hd_wire_dec_init(&d, 16);
	kb_heap_fail_after(0, 1);
	assert_int_equal(hd_wire_feed(&d, in, sizeof(in), collect, &g), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(g.n, 0);
	hd_wire_dec_close(&d);
}

static void test_percent(void **state)
{
	char out[3 * HD_WIRE_TEXT_MAX + 1], back[HD_WIRE_TEXT_MAX + 1], big[2 * HD_WIRE_TEXT_MAX];
	char small[8];

	hd_wire_pct_encode(out, sizeof(out), "plain text: ok!");
	assert_string_equal(out, "plain text: ok!");
	hd_wire_pct_encode(out, sizeof(out), "50% done\n\tv\xc3\xa9rifi\xc3\xa9");
	assert_string_equal(out, "50%25 done%0A%09v%C3%A9rifi%C3%A9");
	hd_wire_pct_decode(back, sizeof(back), out);
	assert_string_equal(back, "50% done\n\tv\xc3\xa9rifi\xc3\xa9");
	/* Bad escapes decode as they are. */
	hd_wire_pct_decode(back, sizeof(back), "%zz%4");
	assert_string_equal(back, "%zz%4");
	/* Never a partial escape when out is short. */
	assert_int_equal(hd_wire_pct_encode(small, sizeof(small), "ab%%"), 5);
	assert_string_equal(small, "ab%25");
	/* Input is cut at HD_WIRE_TEXT_MAX bytes. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(hd_wire_pct_encode(out, sizeof(out), big), HD_WIRE_TEXT_MAX);
	assert_int_equal(hd_wire_pct_encode(out, 1, "abc"), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix),
	    cmocka_unit_test(test_put_roundtrip),
	    cmocka_unit_test(test_split_everywhere),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_buffer_follows_bytes),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_callback_stops),
	    cmocka_unit_test(test_oom),
	    cmocka_unit_test(test_percent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
