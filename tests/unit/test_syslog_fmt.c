/*
 * Tests for vmsyslogd's messages (kernel/syslog/fmt.c): Keel log lines taken apart
 * (time, level → severity, pid, message; other shapes whole), the RFC 5424 header fields
 * (PRI, VERSION, NILVALUE, lengths, non-printable bytes), MSG cut on a UTF-8 boundary and
 * cleaned of control characters, structured-data escaping, octet-counting frames.
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

/* The formatted message as a NUL-terminated string (caller frees). */
static char *fmt(const struct vsl_msg_fields *f, size_t max)
{
	struct kb_buf b;
	char *s;

	kb_buf_init(&b, 0);
	assert_int_equal(vsl_format(f, max, &b), 0);
	s = malloc(b.len + 1);
	memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	kb_buf_close(&b);
	return s;
}

static void test_line_parse(void **state)
{
	const char *l = "2026-11-21T13:28:17.123Z WARN vmkernel[4242]: datastore ds1: slow write";
	struct vsl_line p;

	vsl_line_parse(l, strlen(l), &p);
	assert_int_equal(p.severity, 4);
	assert_string_equal(p.stamp, "2026-11-21T13:28:17.123Z");
	assert_string_equal(p.procid, "4242");
	assert_int_equal(p.msg_len, strlen("datastore ds1: slow write"));
	assert_memory_equal(p.msg, "datastore ds1: slow write", p.msg_len);

	static const struct {
		const char *tag;
		int sev;
	} levels[] = {{"ERROR", 3}, {"WARN", 4}, {"INFO", 6}, {"DEBUG", 7}, {"TRACE", 7}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "2026-01-02T03:04:05.006Z %s hostd[1]: x",
			 levels[i].tag);
		vsl_line_parse(line, strlen(line), &p);
		assert_int_equal(p.severity, levels[i].sev);
	}
}

static void test_line_other_shapes(void **state)
{
	static const char *const others[] = {
	    "plain output of a vmx",
	    "2026-11-21 13:28:17 INFO vmkernel[1]: not RFC 3339",
	    "2026-11-21T13:28:17.123Z NOTICE vmkernel[1]: unknown level",
	    "2026-11-21T13:28:17.123Z INFO vmkernel[1] no colon",
	    "2026-11-21T13:28:17.123Z INFO",
	    "",
	};
	struct vsl_line p;

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		vsl_line_parse(others[i], strlen(others[i]), &p);
		assert_int_equal(p.severity, 5);
		assert_string_equal(p.stamp, "");
		assert_string_equal(p.procid, "");
		assert_ptr_equal(p.msg, others[i]);
		assert_int_equal(p.msg_len, strlen(others[i]));
	}
	/* An ident without a numeric pid keeps the message but has no PROCID. */
	const char *l = "2026-11-21T13:28:17.123Z INFO vmx[abc]: hello";
	vsl_line_parse(l, strlen(l), &p);
	assert_int_equal(p.severity, 6);
	assert_string_equal(p.procid, "");
	assert_memory_equal(p.msg, "hello", 5);
}

static void test_format_fields(void **state)
{
	struct vsl_msg_fields f = {.facility = VSL_FACILITY,
				   .severity = 3,
				   .stamp = "2026-11-21T13:28:17.123Z",
				   .hostname = "esx1",
				   .app = "vmkernel",
				   .procid = "4242",
				   .msg = "disk full",
				   .msg_len = 9};
	char *s = fmt(&f, VSL_MSG_MAX);

	/* PRI = 3 * 8 + 3 = 27; MSGID and SD are NILVALUE. */
	assert_string_equal(s, "<27>1 2026-11-21T13:28:17.123Z esx1 vmkernel 4242 - - disk full");
	free(s);

	/* Empty and NULL fields are "-"; no message means no trailing space. */
	struct vsl_msg_fields g = {
	    .facility = 23, .severity = 7, .stamp = "2026-01-01T00:00:00.000Z"};
	s = fmt(&g, VSL_MSG_MAX);
	assert_string_equal(s, "<191>1 2026-01-01T00:00:00.000Z - - - - -");
	free(s);

	/* A stamp that is not ours is replaced by the current time in the same shape. */
	g.stamp = "yesterday";
	s = fmt(&g, VSL_MSG_MAX);
	assert_int_equal(strlen(s), strlen("<191>1 2026-01-01T00:00:00.000Z - - - - -"));
	assert_true(s[11] == '-' && s[17] == 'T' && s[30] == 'Z');
	free(s);
}

static void test_format_header_cleaning(void **state)
{
	char app[100];
	struct vsl_msg_fields f = {.facility = VSL_FACILITY,
				   .severity = 6,
				   .stamp = "2026-11-21T13:28:17.123Z",
				   .hostname = "my host\x01",
				   .app = app,
				   .msg = "x",
				   .msg_len = 1};

	/* APP-NAME is cut at 48 bytes; spaces and non-ASCII bytes become '_'. */
	memset(app, 'a', sizeof(app));
	app[sizeof(app) - 1] = '\0';
	memcpy(app, "vmx-web 1\xc3\xa9", 11);
	char *s = fmt(&f, VSL_MSG_MAX);
	char want[200];
	snprintf(want, sizeof(want),
		 "<30>1 2026-11-21T13:28:17.123Z my_host_ vmx-web_1__%.*s - - - x", 48 - 11,
		 app + 11);
	assert_string_equal(s, want);
	free(s);
}

static void test_format_msg(void **state)
{
	const char msg[] = "tab\there\r\nbell\a del\x7f ok";
	struct vsl_msg_fields f = {.severity = 6,
				   .stamp = "2026-11-21T13:28:17.123Z",
				   .msg = msg,
				   .msg_len = sizeof(msg) - 1};
	char *s = fmt(&f, VSL_MSG_MAX);

	assert_string_equal(s, "<6>1 2026-11-21T13:28:17.123Z - - - - - tab\there  bell  del  ok");
	free(s);

	/* Cut at max, never inside a UTF-8 sequence: "é" is 2 bytes. */
	const char *head = "<6>1 2026-11-21T13:28:17.123Z - - - - - ";
	const char utf[] = "ab\xc3\xa9z";
	f.msg = utf;
	f.msg_len = sizeof(utf) - 1;
	s = fmt(&f, strlen(head) + 3); /* room for "ab" and half of é */
	assert_string_equal(s + strlen(head), "ab");
	free(s);
	s = fmt(&f, strlen(head) + 4);
	assert_string_equal(s + strlen(head), "ab\xc3\xa9");
	free(s);
}

static void test_utf8_cut(void **state)
{
	const char s[] = "a\xe2\x82\xac"; /* a € */

	assert_int_equal(vsl_utf8_cut(s, 4), 4);
	assert_int_equal(vsl_utf8_cut(s, 3), 1);
	assert_int_equal(vsl_utf8_cut(s, 2), 1);
	assert_int_equal(vsl_utf8_cut(s, 1), 1);
	assert_int_equal(vsl_utf8_cut(s, 0), 0);
	assert_int_equal(vsl_utf8_cut("\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(vsl_utf8_cut("\xf0\x9f\x98\x80", 3), 0);
}

static void test_sd_escaping(void **state)
{
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_append(&b, "[origin", 7), 0);
	assert_int_equal(vsl_sd_param(&b, "software", "say \"hi\" \\ [x]"), 0);
	assert_int_equal(kb_buf_append(&b, "]", 2), 0);
	assert_string_equal((char *)b.data, "[origin software=\"say \\\"hi\\\" \\\\ [x\\]\"]");
	kb_buf_close(&b);
}

static void test_octet_framing(void **state)
{
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(vsl_frame_octets("<6>1 - - - - - -", 16, &b), 0);
	assert_int_equal(b.len, 3 + 16);
	assert_memory_equal(b.data, "16 <6>1 - - - - - -", b.len);
	kb_buf_reset(&b);
	/* The length counts bytes, not characters. */
	assert_int_equal(vsl_frame_octets("\xc3\xa9", 2, &b), 0);
	assert_memory_equal(b.data, "2 \xc3\xa9", 4);
	kb_buf_reset(&b);
	assert_int_equal(vsl_frame_octets("", 0, &b), 0);
	assert_memory_equal(b.data, "0 ", 2);
	kb_buf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_parse),	  cmocka_unit_test(test_line_other_shapes),
	    cmocka_unit_test(test_format_fields), cmocka_unit_test(test_format_header_cleaning),
	    cmocka_unit_test(test_format_msg),	  cmocka_unit_test(test_utf8_cut),
	    cmocka_unit_test(test_sd_escaping),	  cmocka_unit_test(test_octet_framing),
	};

	return cmocka_run_group_tests_name("syslog_fmt", tests, NULL, NULL);
}
