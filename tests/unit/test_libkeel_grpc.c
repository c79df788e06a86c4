/*
 * Tests for mgmt-api/libkeel/grpc_parse.h, libkeel's reading of gRPC responses: the
 * message prefix, unary bodies (empty, cut inside the prefix or the message, compressed,
 * bad flag, trailing bytes, over the limit), header and trailer lines as libcurl delivers
 * them (status line, content-type, grpc-status, grpc-message percent-decoded — also
 * round-tripped through hostd's encoder), the HTTP-to-gRPC mapping, and thumbprints.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hostagent/wire.h"
#include "mgmt-api/libkeel/grpc_parse.h"

static void test_prefix(void **state)
{
	uint8_t p[KL__PREFIX_LEN];
	uint32_t n = 0;

	kl__grpc_prefix(p, 0x01020304);
	assert_memory_equal(p, "\x00\x01\x02\x03\x04", 5);
	assert_int_equal(kl__grpc_body_announced(p, 4, &n), -EAGAIN);
	assert_int_equal(kl__grpc_body_announced(p, 5, &n), 0);
	assert_int_equal(n, 0x01020304);
}

static void test_body(void **state)
{
	uint8_t b[16] = {0, 0, 0, 0, 3, 'a', 'b', 'c', 'x'};
	const uint8_t *msg;
	size_t len;
	char err[128];

	assert_int_equal(kl__grpc_body_parse(b, 8, 100, &msg, &len, err, sizeof(err)), 0);
	assert_ptr_equal(msg, b + 5);
	assert_int_equal(len, 3);
	/* an empty message is a message */
	b[4] = 0;
	assert_int_equal(kl__grpc_body_parse(b, 5, 100, &msg, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 0);
	b[4] = 3;
	assert_int_equal(kl__grpc_body_parse(b, 0, 100, &msg, &len, err, sizeof(err)), -ENODATA);
	for (size_t cut = 1; cut < 8; cut++) {
		assert_int_equal(kl__grpc_body_parse(b, cut, 100, &msg, &len, err, sizeof(err)),
				 -EBADMSG);
		assert_null(msg);
	}
	assert_int_equal(kl__grpc_body_parse(b, 9, 100, &msg, &len, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "after its message"));
	assert_int_equal(kl__grpc_body_parse(b, 8, 2, &msg, &len, err, sizeof(err)), -EMSGSIZE);
	b[0] = 1;
	assert_int_equal(kl__grpc_body_parse(b, 8, 100, &msg, &len, err, sizeof(err)), -ENOTSUP);
	b[0] = 7;
	assert_int_equal(kl__grpc_body_parse(b, 8, 100, &msg, &len, err, sizeof(err)), -EBADMSG);
	/* the limit is checked on the prefix, before the bytes are there */
	kl__grpc_prefix(b, KL__MSG_MAX + 1);
	assert_int_equal(kl__grpc_body_parse(b, 5, KL__MSG_MAX, &msg, &len, err, sizeof(err)),
			 -EMSGSIZE);
}

static void test_percent(void **state)
{
	char out[64];

	assert_int_equal(kl__grpc_percent_decode("a%20b%25c", 9, out, sizeof(out)), 5);
	assert_string_equal(out, "a b%c");
	/* a '%' without two hex digits stays as it is */
	kl__grpc_percent_decode("100%", 4, out, sizeof(out));
	assert_string_equal(out, "100%");
	kl__grpc_percent_decode("%zz%4", 5, out, sizeof(out));
	assert_string_equal(out, "%zz%4");
	kl__grpc_percent_decode("%C3%A9t%c3%a9", 13, out, sizeof(out));
	assert_string_equal(out, "\xc3\xa9t\xc3\xa9");
	/* cut to the buffer */
	assert_int_equal(kl__grpc_percent_decode("abcdef", 6, out, 4), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(kl__grpc_percent_decode("abc", 3, out, 0), 0);
}

static void test_percent_round_trip(void **state)
{
	const char *texts[] = {"plain", "100% sure", "line\nbreak\ttab", "caf\xc3\xa9 \x01\x7f",
			       ""};
	char enc[256], dec[256];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		size_t n = hd_wire_pct_encode(enc, sizeof(enc), texts[i]);

		kl__grpc_percent_decode(enc, n, dec, sizeof(dec));
		assert_string_equal(dec, texts[i]);
	}
}

static void feed(struct kl__grpc_resp *r, const char *line)
{
	kl__grpc_resp_line(r, line, strlen(line));
}

static void test_lines(void **state)
{
	struct kl__grpc_resp r;

	kl__grpc_resp_init(&r);
	feed(&r, "HTTP/2 200 \r\n");
	assert_int_equal(r.http_status, 200);
	feed(&r, "content-type: application/grpc\r\n");
	assert_true(r.grpc_content);
	feed(&r, "\r\n");
	assert_false(r.have_status);
	/* trailers come through the same callback */
	feed(&r, "GRPC-Status: 16\r\n");
	feed(&r, "grpc-message:  incorrect%20user%0Aname \r\n");
	assert_true(r.have_status);
	assert_int_equal(r.grpc_status, 16);
	assert_string_equal(r.grpc_message, "incorrect user\nname");

	/* a new status line starts over */
	feed(&r, "HTTP/2 415\r\n");
	assert_int_equal(r.http_status, 415);
	assert_false(r.have_status);
	assert_false(r.grpc_content);
	assert_string_equal(r.grpc_message, "");

	feed(&r, "content-type: application/grpc+proto\r\n");
	assert_true(r.grpc_content);
	feed(&r, "content-type: application/grpc;charset=x\r\n");
	assert_true(r.grpc_content);
	feed(&r, "content-type: application/grpcx\r\n");
	assert_false(r.grpc_content);
	feed(&r, "content-type: text/html\r\n");
	assert_false(r.grpc_content);

	feed(&r, "grpc-status: 0\r\n");
	assert_int_equal(r.grpc_status, 0);
	feed(&r, "grpc-status: x1\r\n");
	assert_int_equal(r.grpc_status, -1);
	feed(&r, "grpc-status: 123\r\n");
	assert_int_equal(r.grpc_status, -1);
	feed(&r, "grpc-status:\r\n");
	assert_int_equal(r.grpc_status, -1);
	/* other headers, and names that only start alike, are ignored */
	feed(&r, "grpc-status-details-bin: AAAA\r\n");
	feed(&r, "grpc-messagex: no\r\n");
	assert_string_equal(r.grpc_message, "");
}

static void test_http_map(void **state)
{
	assert_int_equal(kl__grpc_status_from_http(400), 13);
	assert_int_equal(kl__grpc_status_from_http(401), 16);
	assert_int_equal(kl__grpc_status_from_http(403), 7);
	assert_int_equal(kl__grpc_status_from_http(404), 12);
	assert_int_equal(kl__grpc_status_from_http(503), 14);
	assert_int_equal(kl__grpc_status_from_http(415), 2);
}

static void test_thumbprint(void **state)
{
	const char *colons = "D8:C4:3A:B9:E1:A9:92:0A:FB:43:25:34:4E:D4:7E:37:94:50:8D:89:6B:8B:"
			     "C5:88:86:9E:CF:6B:47:4E:20:12";
	const char *bare = "d8c43ab9e1a9920afb4325344ed47e3794508d896b8bc588869ecf6b474e2012";
	uint8_t a[KL__SHA256_LEN], b[KL__SHA256_LEN];
	char s[KL__THUMBPRINT_STR];

	assert_int_equal(kl__thumbprint_parse(colons, a), 0);
	assert_int_equal(kl__thumbprint_parse(bare, b), 0);
	assert_memory_equal(a, b, sizeof(a));
	kl__thumbprint_format(a, s);
	assert_string_equal(s, colons);
	assert_int_equal(kl__thumbprint_parse("", a), -EINVAL);
	assert_int_equal(kl__thumbprint_parse("d8c4", a), -EINVAL);
	/* 64 digits with a bad one; colons in the wrong places */
	assert_int_equal(kl__thumbprint_parse(
			     "g8c43ab9e1a9920afb4325344ed47e3794508d896b8bc588869ecf6b474e2012", a),
			 -EINVAL);
	assert_int_equal(
	    kl__thumbprint_parse("D8C:4:3A:B9:E1:A9:92:0A:FB:43:25:34:4E:D4:7E:37:94:50:"
				 "8D:89:6B:8B:C5:88:86:9E:CF:6B:47:4E:20:12",
				 a),
	    -EINVAL);
	assert_int_equal(kl__thumbprint_parse("D8:C4:3A:B9:E1:A9:92:0A:FB:43:25:34:4E:D4:7E:37:94:"
					      "50:8D:89:6B:8B:C5:88:86:9E:CF:6B:47:4E:20:1",
					      a),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix),     cmocka_unit_test(test_body),
	    cmocka_unit_test(test_percent),    cmocka_unit_test(test_percent_round_trip),
	    cmocka_unit_test(test_lines),      cmocka_unit_test(test_http_map),
	    cmocka_unit_test(test_thumbprint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
