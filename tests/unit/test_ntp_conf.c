/*
 * Tests for the time service's configuration (kernel/ntp/conf.c): servers (names, IPv4,
 * bracketed IPv6, ports) and their refusals; SERVER[,SERVER...] lists (empty items,
 * duplicates, the limit) leaving the configuration unchanged on error; ntp.conf lines
 * (comments, blanks, spaces, modes, poll, duplicates, unknown keys, no server) with
 * "line N" in every error; write -> parse round trip; chrony's configuration made from it.
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

#include "kernel/ntp/ntp.h"

static void test_server_good(void **state)
{
	static const struct {
		const char *in, *host, *fmt;
		unsigned port;
	} good[] = {
	    {"127.0.0.1", "127.0.0.1", "127.0.0.1", 0},
	    {"127.0.0.1:12323", "127.0.0.1", "127.0.0.1:12323", 12323},
	    {"ntp-1.example.org", "ntp-1.example.org", "ntp-1.example.org", 0},
	    {"198.18.0.1:1", "198.18.0.1", "198.18.0.1:1", 1},
	    {"h:65535", "h", "h:65535", 65535},
	    {"[::1]", "::1", "[::1]", 0},
	    {"[fe80::1]:123", "fe80::1", "[fe80::1]:123", 123},
	};
	struct kb_errmsg e = {{0}};
	struct ntp_server s;
	char out[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(ntp_server_parse(good[i].in, &s, &e), 0);
		assert_string_equal(s.host, good[i].host);
		assert_int_equal(s.port, good[i].port);
		ntp_server_fmt(&s, out, sizeof(out));
		assert_string_equal(out, good[i].fmt);
	}
	(void)state;
}

static void test_server_bad(void **state)
{
	static const char *const bad[] = {
	    "",	  ":123", "h:",	  "h:0",    "h:65536", "h:12a",	  "h:-1",  "h: 1", "a b",  "-h",
	    ".h", "h/x",  "[::1", "[::1]x", "[zz]",    "[::1]:0", "h:1:2", "[]",   "h:+1",
	};
	struct kb_errmsg e = {{0}};
	struct ntp_server s = {.host = "keep", .port = 7};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		assert_int_equal(ntp_server_parse(bad[i], &s, &e), KB_ECONFIG);
		assert_non_null(strstr(e.msg, "server '"));
		assert_string_equal(s.host, "keep");
		assert_int_equal(s.port, 7);
	}
	char lng[400];

	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	assert_int_equal(ntp_server_parse(lng, &s, &e), KB_ECONFIG);
	(void)state;
}

static void test_list(void **state)
{
	struct ntp_conf c = {.mode = NTP_MODE_PRIVATE};
	struct kb_errmsg e = {{0}};

	assert_int_equal(ntp_servers_parse_list("127.0.0.1:1,127.0.0.2,[::1]:3", &c, &e), 0);
	assert_int_equal(c.n_servers, 3);
	assert_string_equal(c.servers[1].host, "127.0.0.2");
	assert_int_equal(c.servers[2].port, 3);
	assert_int_equal(c.mode, NTP_MODE_PRIVATE);
	/* every refusal leaves c as it was */
	static const char *const bad[] = {"",	 ",",	    "a,",    ",a",   "a,,b",
					  "a,a", "a:1,a:1", "a,b:0", "a,b c"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ntp_servers_parse_list(bad[i], &c, &e), KB_ECONFIG);
		assert_int_equal(c.n_servers, 3);
	}
	/* the same host on two ports is two servers */
	assert_int_equal(ntp_servers_parse_list("a:1,a:2", &c, &e), 0);
	assert_int_equal(c.n_servers, 2);
	assert_int_equal(ntp_servers_parse_list("a1,a2,a3,a4,a5,a6,a7,a8", &c, &e), 0);
	assert_int_equal(c.n_servers, 8);
	assert_int_equal(ntp_servers_parse_list("a1,a2,a3,a4,a5,a6,a7,a8,a9", &c, &e), KB_ECONFIG);
	assert_non_null(strstr(e.msg, "at most 8"));
	assert_int_equal(c.n_servers, 8);
	(void)state;
}

static void test_conf_good(void **state)
{
	static const char text[] = "# comment\n"
				   "\n"
				   "  server =  127.0.0.1:12323  \n"
				   "server=ntp.example.org\r\n"
				   "\tmode = private\n"
				   "poll = -6\n";
	struct kb_errmsg e = {{0}};
	struct ntp_conf c;

	assert_int_equal(ntp_conf_parse(text, strlen(text), &c, &e), 0);
	assert_int_equal(c.n_servers, 2);
	assert_string_equal(c.servers[0].host, "127.0.0.1");
	assert_int_equal(c.servers[0].port, 12323);
	assert_string_equal(c.servers[1].host, "ntp.example.org");
	assert_int_equal(c.mode, NTP_MODE_PRIVATE);
	assert_true(c.poll_set);
	assert_int_equal(c.poll, -6);

	/* defaults: mode system, chrony's polling; no newline at the end */
	assert_int_equal(ntp_conf_parse("server = a", 10, &c, &e), 0);
	assert_int_equal(c.mode, NTP_MODE_SYSTEM);
	assert_false(c.poll_set);
	(void)state;
}

static void test_conf_bad(void **state)
{
	static const struct {
		const char *text, *err;
	} bad[] = {
	    {"", "no server"},
	    {"# only a comment\n", "no server"},
	    {"mode = private\n", "no server"},
	    {"server = a\nfoo = 1\n", "line 2: unknown key 'foo'"},
	    {"server = a\nserver\n", "line 2: not 'key = value'"},
	    {"server = a\nserver = a\n", "line 2"},
	    {"server = a:0\n", "line 1"},
	    {"server = a\nmode = both\n", "line 2: mode 'both'"},
	    {"server = a\nmode = system\nmode = private\n", "line 3: 'mode' is given twice"},
	    {"server = a\npoll = 11\n", "line 2: poll '11'"},
	    {"server = a\npoll = -7\n", "line 2: poll"},
	    {"server = a\npoll = 1x\n", "line 2: poll"},
	    {"server = a\npoll =\n", "line 2: poll"},
	    {"server = a\npoll = 1\npoll = 2\n", "line 3: 'poll' is given twice"},
	    {"server = 1,2,3,4,5,6,7,8,9\n", "line 1"},
	};
	struct kb_errmsg e = {{0}};
	struct ntp_conf c = {.n_servers = 5};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		assert_int_equal(ntp_conf_parse(bad[i].text, strlen(bad[i].text), &c, &e),
				 KB_ECONFIG);
		if (!strstr(e.msg, bad[i].err))
			fail_msg("'%s': error '%s' lacks '%s'", bad[i].text, e.msg, bad[i].err);
		assert_int_equal(c.n_servers, 5);
	}
	/* a NUL byte, a line too long, a file too big */
	assert_int_equal(ntp_conf_parse("server = a\0b\n", 13, &c, &e), KB_ECONFIG);
	assert_non_null(strstr(e.msg, "line 1: a NUL byte"));
	char *big = malloc(NTP_CONF_MAX + 2);

	assert_non_null(big);
	memset(big, '#', NTP_CONF_MAX + 1);
	big[NTP_CONF_MAX + 1] = '\0';
	assert_int_equal(ntp_conf_parse(big, NTP_CONF_MAX + 1, &c, &e), KB_ETOOBIG);
	memcpy(big, "server = a\n", 11);
	assert_int_equal(ntp_conf_parse(big, 600, &c, &e), KB_ECONFIG);
	assert_non_null(strstr(e.msg, "line 2: longer than"));
	free(big);
	assert_int_equal(c.n_servers, 5);
	(void)state;
}

static void test_round_trip(void **state)
{
	struct ntp_conf c = {.mode = NTP_MODE_PRIVATE, .poll_set = true, .poll = 0}, back;
	struct kb_errmsg e = {{0}};
	struct kb_buf b;

	assert_int_equal(ntp_servers_parse_list("127.0.0.1:12323,[::1],ntp.example.org", &c, &e),
			 0);
	kb_buf_init(&b, 0);
	assert_int_equal(ntp_conf_write(&c, &b), 0);
	assert_int_equal(ntp_conf_parse((const char *)b.data, b.len, &back, &e), 0);
	assert_int_equal(back.n_servers, 3);
	assert_int_equal(back.mode, NTP_MODE_PRIVATE);
	assert_true(back.poll_set);
	assert_int_equal(back.poll, 0);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(back.servers[i].host, c.servers[i].host);
		assert_int_equal(back.servers[i].port, c.servers[i].port);
	}
	kb_buf_close(&b);
	(void)state;
}

static void test_chrony_conf(void **state)
{
	struct ntp_conf c = {.mode = NTP_MODE_PRIVATE};
	struct kb_errmsg e = {{0}};
	struct kb_buf b;

	assert_int_equal(ntp_servers_parse_list("127.0.0.1:12323,ntp.example.org", &c, &e), 0);
	kb_buf_init(&b, 0);
	assert_int_equal(ntp_chrony_sources(&c, &b), 0);
	assert_int_equal(kb_buf_append(&b, "", 1), 0);
	assert_string_equal((const char *)b.data, "server 127.0.0.1 port 12323 iburst\n"
						  "server ntp.example.org iburst\n");
	b.len = 0;
	c.poll_set = true;
	c.poll = -2;
	assert_int_equal(ntp_chrony_private_conf(&c, "/var/lib/keel/ntp", &b), 0);
	assert_int_equal(kb_buf_append(&b, "", 1), 0);
	const char *t = (const char *)b.data;

	assert_non_null(strstr(t, "\nport 0\n"));
	assert_non_null(strstr(t, "\ncmdport 0\n"));
	assert_non_null(strstr(t, "\nbindcmdaddress /var/lib/keel/ntp/chronyd.sock\n"));
	assert_non_null(strstr(t, "\npidfile /var/lib/keel/ntp/chronyd.pid\n"));
	assert_non_null(strstr(t, "\ndriftfile /var/lib/keel/ntp/chronyd.drift\n"));
	assert_non_null(strstr(t, "\nserver 127.0.0.1 port 12323 iburst minpoll -2 maxpoll -2\n"));
	kb_buf_close(&b);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_server_good), cmocka_unit_test(test_server_bad),
	    cmocka_unit_test(test_list),	cmocka_unit_test(test_conf_good),
	    cmocka_unit_test(test_conf_bad),	cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_chrony_conf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
