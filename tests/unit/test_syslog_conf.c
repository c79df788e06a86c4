/*
 * Tests for vmsyslogd's configuration (kernel/syslog/conf.c): remote URLs (schemes,
 * default ports, IPv4, names, bracketed IPv6, canonical form) and their refusals (bad
 * scheme, host, port, trailing bytes); syslog.conf lines (comments, blanks, spaces,
 * duplicates, unknown keys, limits) with "line N" in every error; render → parse round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/syslog/vsl.h"

static void test_url_good(void **state)
{
	static const struct {
		const char *in, *url, *host;
		enum vsl_proto proto;
		unsigned port;
	} good[] = {
	    {"udp://127.0.0.1", "udp://127.0.0.1:514", "127.0.0.1", VSL_UDP, 514},
	    {"tcp://loghost", "tcp://loghost:601", "loghost", VSL_TCP, 601},
	    {"tls://198.18.0.9", "tls://198.18.0.9:6514", "198.18.0.9", VSL_TLS, 6514},
	    {"tls://log-1.example.org:10514", "tls://log-1.example.org:10514", "log-1.example.org",
	     VSL_TLS, 10514},
	    {"udp://[::1]:5514", "udp://[::1]:5514", "::1", VSL_UDP, 5514},
	    {"tcp://[fe80::1]", "tcp://[fe80::1]:601", "fe80::1", VSL_TCP, 601},
	    {"udp://h:1", "udp://h:1", "h", VSL_UDP, 1},
	    {"udp://h:65535", "udp://h:65535", "h", VSL_UDP, 65535},
	};
	struct kb_errmsg err = {{0}};
	struct vsl_remote_cfg r;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(vsl_url_parse(good[i].in, &r, &err), 0);
		assert_string_equal(r.url, good[i].url);
		assert_string_equal(r.host, good[i].host);
		assert_int_equal(r.proto, good[i].proto);
		assert_int_equal(r.port, good[i].port);
	}
}

static void test_url_bad(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"http://127.0.0.1:514", "want udp://, tcp:// or tls://"},
	    {"UDP://127.0.0.1", "want udp://"},
	    {"127.0.0.1:514", "want udp://"},
	    {"udp://", "no host"},
	    {"udp://:514", "no host"},
	    {"udp://127.0.0.1:0", "port must be a number 1..65535"},
	    {"udp://127.0.0.1:65536", "port must be a number 1..65535"},
	    {"udp://127.0.0.1:99999999999", "port must be a number 1..65535"},
	    {"udp://127.0.0.1:", "port must be a number 1..65535"},
	    {"udp://127.0.0.1:-1", "port must be a number 1..65535"},
	    {"udp://127.0.0.1:51x", "unexpected 'x'"},
	    {"udp://127.0.0.1:514/path", "unexpected '/path'"},
	    {"udp://user@127.0.0.1", "unexpected '@127.0.0.1'"},
	    {"tcp://bad_host", "bad host"},
	    {"tcp://-lead.example", "bad host"},
	    {"tcp://trail-.example", "bad host"},
	    {"tcp://a..b", "bad host"},
	    {"tls://[::1", "'[' without ']'"},
	    {"tls://[not-v6]:6514", "is not an IPv6 address"},
	    {"tls://[::1]x", "unexpected 'x'"},
	};
	struct kb_errmsg err;
	struct vsl_remote_cfg r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(vsl_url_parse(bad[i].in, &r, &err), KB_ECONFIG);
		if (strstr(err.msg, bad[i].why) == NULL)
			fail_msg("%s: '%s' does not say '%s'", bad[i].in, err.msg, bad[i].why);
	}
	/* A 64-byte label is too long; 63 is fine. */
	char url[128] = "tcp://";
	memset(url + 6, 'a', 64);
	assert_int_equal(vsl_url_parse(url, &r, &err), KB_ECONFIG);
	url[6 + 63] = '\0';
	assert_int_equal(vsl_url_parse(url, &r, &err), 0);
	/* Past the URL limit. */
	char longurl[VSL_URL_MAX + 10] = "tcp://";
	memset(longurl + 6, 'a', sizeof(longurl) - 7);
	longurl[sizeof(longurl) - 1] = '\0';
	assert_int_equal(vsl_url_parse(longurl, &r, &err), KB_ECONFIG);
}

static int parse(const char *text, struct vsl_conf *c, struct kb_errmsg *err)
{
	memset(err, 0, sizeof(*err));
	return vsl_conf_parse(text, strlen(text), c, err);
}

static void test_conf_good(void **state)
{
	struct kb_errmsg err;
	struct vsl_conf c;

	assert_int_equal(parse("", &c, &err), 0);
	assert_int_equal(c.n_remotes, 0);
	assert_int_equal(c.buffer_lines, VSL_BUFFER_DEFAULT);
	assert_string_equal(c.ca, "");

	assert_int_equal(parse("# remote syslog\n\n  remote =   tls://198.18.0.9:6514  \r\n"
			       "remote=udp://127.0.0.1\n\tca = /etc/keel/ca.pem\n"
			       "buffer_lines = 250\n# end",
			       &c, &err),
			 0);
	assert_int_equal(c.n_remotes, 2);
	assert_string_equal(c.remotes[0].url, "tls://198.18.0.9:6514");
	assert_string_equal(c.remotes[1].url, "udp://127.0.0.1:514");
	assert_string_equal(c.ca, "/etc/keel/ca.pem");
	assert_int_equal(c.buffer_lines, 250);

	assert_int_equal(parse("buffer_lines = 1\n", &c, &err), 0);
	assert_int_equal(c.buffer_lines, 1);
	assert_int_equal(parse("buffer_lines = 1000000\n", &c, &err), 0);
	assert_int_equal(c.buffer_lines, VSL_BUFFER_MAX);
}

static void test_conf_bad(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"remote = ftp://x\n", "line 1: remote 'ftp://x'"},
	    {"\n\nremote = udp://x:0\n", "line 3: remote 'udp://x:0': the port"},
	    {"remote udp://x\n", "line 1: want 'key = value'"},
	    {"remotes = udp://x\n", "line 1: unknown key 'remotes'"},
	    {"remote = udp://x\nremote = udp://x:514\n",
	     "line 2: remote udp://x:514 is named twice"},
	    {"ca = relative/ca.pem\n", "line 1: ca 'relative/ca.pem': must be an absolute path"},
	    {"ca = /a\nca = /b\n", "line 2: ca is set twice"},
	    {"buffer_lines = 0\n", "line 1: buffer_lines '0': want a number of lines 1..1000000"},
	    {"buffer_lines = 1000001\n", "line 1: buffer_lines '1000001'"},
	    {"buffer_lines = 10k\n", "line 1: buffer_lines '10k'"},
	    {"buffer_lines = -5\n", "line 1: buffer_lines '-5'"},
	    {"buffer_lines =\n", "line 1: buffer_lines ''"},
	    {"buffer_lines = 99999999999999999999\n", "line 1: buffer_lines"},
	    {"buffer_lines = 5\nbuffer_lines = 6\n", "line 2: buffer_lines is set twice"},
	    {"ca = /x\x01y\n", "line 1: control character"},
	};
	struct kb_errmsg err;
	struct vsl_conf c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i].text, &c, &err), KB_ECONFIG);
		if (strstr(err.msg, bad[i].why) == NULL)
			fail_msg("%s: '%s' does not say '%s'", bad[i].text, err.msg, bad[i].why);
	}
	/* More than VSL_REMOTES_MAX remotes. */
	char text[2048] = "";
	for (int i = 0; i <= VSL_REMOTES_MAX; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "remote = udp://h%d\n",
			 i);
	assert_int_equal(parse(text, &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 9: more than 8 remotes"));
	/* A NUL byte and an overlong line. */
	assert_int_equal(vsl_conf_parse("remote = udp://x\0y\n", 19, &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "NUL"));
	char big[1100];
	memset(big, '#', sizeof(big));
	assert_int_equal(vsl_conf_parse(big, sizeof(big), &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 1: longer than"));
}

static void test_render_round_trip(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vsl_conf c, back;
	struct kb_buf b;

	memset(&c, 0, sizeof(c));
	assert_int_equal(vsl_url_parse("tls://[::1]:6514", &c.remotes[0], &err), 0);
	assert_int_equal(vsl_url_parse("udp://10.0.0.1", &c.remotes[1], &err), 0);
	c.n_remotes = 2;
	strcpy(c.ca, "/etc/keel/ca dir/ca.pem");
	c.buffer_lines = 77;
	kb_buf_init(&b, 0);
	assert_int_equal(vsl_conf_render(&c, &b), 0);
	assert_int_equal(vsl_conf_parse(b.data, b.len, &back, &err), 0);
	assert_int_equal(back.n_remotes, 2);
	assert_string_equal(back.remotes[0].url, "tls://[::1]:6514");
	assert_string_equal(back.remotes[1].url, "udp://10.0.0.1:514");
	assert_string_equal(back.ca, c.ca);
	assert_int_equal(back.buffer_lines, 77);
	kb_buf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_good),	      cmocka_unit_test(test_url_bad),
	    cmocka_unit_test(test_conf_good),	      cmocka_unit_test(test_conf_bad),
	    cmocka_unit_test(test_render_round_trip),
	};

	return cmocka_run_group_tests_name("syslog_conf", tests, NULL, NULL);
}
