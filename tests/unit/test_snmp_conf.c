/*
 * Tests for keel-snmpd's configuration (kernel/snmp/conf.c): snmp.conf defaults, every key,
 * comments and spaces; refusals with "line N" (unknown key, key twice, bad enabled, bad
 * community, bad or repeated trap sink, too many sinks, relative paths, a line without
 * '='); trap sinks (default port, bounds, names and IPv4 only); render -> parse round
 * trip; the snmpd drop-in's lines.
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

#include "kernel/snmp/ksnmp.h"

static int parse(const char *text, struct ksnmp_conf *c, struct kb_errmsg *err)
{
	return ksnmp_conf_parse(text, strlen(text), c, err);
}

static void test_defaults(void **state)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c;

	assert_int_equal(parse("", &c, &err), 0);
	assert_false(c.enabled);
	assert_string_equal(c.community, "public");
	assert_int_equal(c.n_sinks, 0);
	assert_string_equal(c.agentx_socket, "/var/agentx/master");
	assert_string_equal(c.dropin, "/etc/snmp/snmpd.conf.d/keel.conf");
	assert_int_equal(parse("# only a comment\n\n   \n", &c, &err), 0);
}

static void test_all_keys(void **state)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c;
	const char *text = "# keel-snmpd\n"
			   "enabled = yes\n"
			   "  community=monitor  \n"
			   "trap_sink = 198.18.0.9\n"
			   "trap_sink = nms.example.org:10162\r\n"
			   "agentx_socket = /run/agentx/master\n"
			   "dropin = /tmp/x/keel.conf"; /* no final newline */

	assert_int_equal(parse(text, &c, &err), 0);
	assert_true(c.enabled);
	assert_string_equal(c.community, "monitor");
	assert_int_equal(c.n_sinks, 2);
	assert_string_equal(c.sinks[0].host, "198.18.0.9");
	assert_int_equal(c.sinks[0].port, 162);
	assert_string_equal(c.sinks[1].host, "nms.example.org");
	assert_int_equal(c.sinks[1].port, 10162);
	assert_string_equal(c.agentx_socket, "/run/agentx/master");
	assert_string_equal(c.dropin, "/tmp/x/keel.conf");
	assert_int_equal(parse("enabled = no\n", &c, &err), 0);
	assert_false(c.enabled);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"colour = blue\n", "line 1: unknown key 'colour'"},
	    {"enabled = yes\nenabled = no\n", "line 2: enabled is given twice"},
	    {"enabled = true\n", "line 1: enabled: want yes or no"},
	    {"enabled = yes\n\ncommunity = a b\n", "line 3: community: a community is printable"},
	    {"community = \n", "line 1: community: a community is 1 to 64"},
	    {"community = x#y\n", "line 1: community: a community is printable"},
	    {"trap_sink = 127.0.0.1:0\n", "line 1: trap sink '127.0.0.1:0': the port must be"},
	    {"trap_sink = 127.0.0.1:65536\n", "the port must be a number 1..65535"},
	    {"trap_sink = 127.0.0.1:16x\n", "the port must be a number 1..65535"},
	    {"trap_sink = 127.0.0.1:\n", "the port must be a number 1..65535"},
	    {"trap_sink = :162\n", "no host"},
	    {"trap_sink = [::1]:162\n", "the host must be a name or an IPv4 address"},
	    {"trap_sink = h:162\ntrap_sink = h\n", "line 2: trap sink 'h' is given twice"},
	    {"agentx_socket = var/agentx\n",
	     "line 1: agentx_socket 'var/agentx' must be an absolute"},
	    {"dropin = /a b\n", "line 1: dropin must not hold spaces"},
	    {"just words\n", "line 1: want 'key = value'"},
	};
	struct ksnmp_conf c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kb_errmsg err = {{0}};
		assert_int_equal(parse(bad[i].text, &c, &err), KB_ECONFIG);
		if (strstr(err.msg, bad[i].why) == NULL)
			fail_msg("'%s': got '%s', want '%s'", bad[i].text, err.msg, bad[i].why);
	}
}

static void test_sink_limit(void **state)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c;
	char text[1024] = "";

	for (int i = 0; i < KSNMP_SINKS_MAX; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "trap_sink = h%d\n", i);
	assert_int_equal(parse(text, &c, &err), 0);
	assert_int_equal(c.n_sinks, KSNMP_SINKS_MAX);
	strcat(text, "trap_sink = one-more\n");
	assert_int_equal(parse(text, &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 9: at most 8 trap sinks"));
}

static void test_nul_and_long(void **state)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c;
	char line[3000];

	assert_int_equal(ksnmp_conf_parse("enabled = yes\0x\n", 16, &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "NUL"));
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(parse(line, &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 1: longer than"));
}

static void test_round_trip(void **state)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c, back;
	struct kb_buf b;

	ksnmp_conf_defaults(&c);
	c.enabled = true;
	snprintf(c.community, sizeof(c.community), "ro-Community_1");
	assert_int_equal(ksnmp_sink_parse("127.0.0.1:1162", &c.sinks[0], &err), 0);
	assert_int_equal(ksnmp_sink_parse("nms", &c.sinks[1], &err), 0);
	c.n_sinks = 2;
	snprintf(c.agentx_socket, sizeof(c.agentx_socket), "/tmp/ax.sock");
	kb_buf_init(&b, 0);
	assert_int_equal(ksnmp_conf_render(&c, &b), 0);
	assert_int_equal(ksnmp_conf_parse(b.data, b.len, &back, &err), 0);
	assert_memory_equal(&c, &back, sizeof(c));
	kb_buf_close(&b);
}

static void test_dropin(void **state)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c;
	struct kb_buf b;
	char *text;

	ksnmp_conf_defaults(&c);
	snprintf(c.community, sizeof(c.community), "keelro");
	kb_buf_init(&b, 0);
	assert_int_equal(ksnmp_dropin_render(&c, &b), 0);
	assert_int_equal(kb_buf_append(&b, "", 1), 0);
	text = (char *)b.data;
	assert_non_null(strstr(text, "\nmaster agentx\n"));
	assert_non_null(strstr(text, "\nagentXSocket /var/agentx/master\n"));
	assert_non_null(strstr(text, "\nview keelView included .1.3.6.1.4.1.99999\n"));
	assert_non_null(strstr(text, "\nrocommunity keelro default -V keelView\n"));
	assert_null(strstr(text, "trap2sink")); /* no sinks */
	assert_null(strstr(text, "trapcommunity"));
	kb_buf_close(&b);

	assert_int_equal(ksnmp_sink_parse("127.0.0.1:1162", &c.sinks[c.n_sinks++], &err), 0);
	assert_int_equal(ksnmp_sink_parse("nms", &c.sinks[c.n_sinks++], &err), 0);
	kb_buf_init(&b, 0);
	assert_int_equal(ksnmp_dropin_render(&c, &b), 0);
	assert_int_equal(kb_buf_append(&b, "", 1), 0);
	text = (char *)b.data;
	assert_non_null(strstr(text, "\ntrapcommunity keelro\n"));
	assert_non_null(strstr(text, "\ntrap2sink 127.0.0.1:1162 keelro\n"));
	assert_non_null(strstr(text, "\ntrap2sink nms:162 keelro\n"));
	kb_buf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	 cmocka_unit_test(test_all_keys),
	    cmocka_unit_test(test_refusals),	 cmocka_unit_test(test_sink_limit),
	    cmocka_unit_test(test_nul_and_long), cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_dropin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
