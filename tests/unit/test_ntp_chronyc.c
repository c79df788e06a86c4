/*
 * Tests for the parsers of `chronyc -n -c` output (kernel/ntp/chronyc.c), on lines taken
 * from chrony 4.3: tracking synchronised and not, the offset's sign; sources synchronised,
 * unreachable (never received), several lines, blank lines; refusals of every field
 * (count, reference id, stratum, numbers, mode, state, reach, last rx, over-long lines,
 * too many sources) that leave the output untouched; vmntpd's status file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/ntp/ntp.h"

#define SYNCED                                                                 \
	"7F000001,127.0.0.1,9,1795268879.168842876,-0.000001398,-0.000000301," \
	"0.000003485,-0.425,-0.005,2.948,0.000004968,0.000001137,1.0,Normal\n"
#define UNSYNCED                                                                   \
	"00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000," \
	"0.000,1.000000000,1.000000000,0.0,Not synchronised\n"

static void test_tracking(void **state)
{
	struct kb_errmsg e = {{0}};
	struct ntp_tracking t;

	assert_int_equal(ntp_tracking_parse(SYNCED, &t, &e), 0);
	assert_string_equal(t.ref_id, "7F000001");
	assert_string_equal(t.ref_name, "127.0.0.1");
	assert_int_equal(t.stratum, 9);
	assert_true(t.synced);
	assert_string_equal(t.leap, "Normal");
	/* "System time" -0.000001398: the clock is 1398 ns fast, i.e. ahead */
	assert_int_equal(t.offset_ns, 1398);
	assert_true(t.freq_ppm < -0.424 && t.freq_ppm > -0.426);
	assert_true(t.update_interval_s > 0.99 && t.update_interval_s < 1.01);

	assert_int_equal(ntp_tracking_parse(UNSYNCED, &t, &e), 0);
	assert_false(t.synced);
	assert_int_equal(t.stratum, 0);
	assert_string_equal(t.ref_name, "");
	assert_string_equal(t.leap, "Not synchronised");

	/* a reference but leap "Not synchronised" is not synced */
	assert_int_equal(ntp_tracking_parse("7F000001,127.0.0.1,9,1.0,0.5,0,0,0,0,0,0,0,0,"
					    "Not synchronised",
					    &t, &e),
			 0);
	assert_false(t.synced);
	assert_int_equal(t.offset_ns, -500000000);
	(void)state;
}

static void test_tracking_bad(void **state)
{
	static const char *const bad[] = {
	    "",
	    "7F000001,127.0.0.1,9",
	    "7F00000,127.0.0.1,9,1,0,0,0,0,0,0,0,0,0,Normal",
	    "7F00000G,127.0.0.1,9,1,0,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,17,1,0,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,-1,1,0,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,9,x,0,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,9,1,0,0,0,0,0,0,0,0,,Normal",
	    "7F000001,127.0.0.1,9,1,nan,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,9,1,inf,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,9,1,0,0,0,0,0,0,0,0,0,",
	    "7F000001,127.0.0.1,9,1,0,0,0,0,0,0,0,0,0,Normal,extra",
	    "7F000001,127.0.0 1,9,1,0,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,9,1,1e10,0,0,0,0,0,0,0,0,Normal",
	    "7F000001,127.0.0.1,9,1,0,0,0,0,0,0,0,0,0,Nor\x01mal",
	};
	struct kb_errmsg e = {{0}};
	struct ntp_tracking t = {.stratum = 77};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		if (ntp_tracking_parse(bad[i], &t, &e) != KB_EPROTO)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(strstr(e.msg, "tracking"));
		assert_int_equal(t.stratum, 77);
	}
	char lng[2000];

	memset(lng, '1', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	assert_int_equal(ntp_tracking_parse(lng, &t, &e), KB_EPROTO);
	(void)state;
}

static void test_sources(void **state)
{
	static const char text[] =
	    "^,*,127.0.0.1,8,0,77,0,-0.000000013,-0.000000314,0.000002519\n"
	    "\n"
	    "^,?,127.0.0.2,0,0,0,4294967295,0.000000000,0.000000000,0.000000000\n"
	    "=,+,198.18.0.2,3,-6,377,12,0.001,0.002,0.5\r\n"
	    "#,x,PPS,0,4,1,3,0,0,0";
	struct ntp_source s[4];
	struct kb_errmsg e = {{0}};
	size_t n = 0;

	assert_int_equal(ntp_sources_parse(text, strlen(text), s, 4, &n, &e), 0);
	assert_int_equal(n, 4);
	assert_int_equal(s[0].mode, '^');
	assert_int_equal(s[0].state, '*');
	assert_string_equal(ntp_source_state_name(s[0].state), "synced");
	assert_string_equal(s[0].name, "127.0.0.1");
	assert_int_equal(s[0].stratum, 8);
	assert_int_equal(s[0].reach, 077);
	assert_int_equal(s[0].last_rx_s, 0);
	assert_string_equal(ntp_source_state_name(s[1].state), "unreachable");
	assert_int_equal(s[1].reach, 0);
	assert_int_equal(s[1].last_rx_s, -1);
	assert_int_equal(s[2].mode, '=');
	assert_int_equal(s[2].poll, -6);
	assert_int_equal(s[2].reach, 0377);
	assert_int_equal(s[2].last_rx_s, 12);
	assert_string_equal(ntp_source_state_name(s[3].state), "falseticker");
	assert_string_equal(ntp_source_state_name('~'), "too variable");
	assert_string_equal(ntp_source_state_name('-'), "not combined");

	/* no sources at all */
	assert_int_equal(ntp_sources_parse("", 0, s, 4, &n, &e), 0);
	assert_int_equal(n, 0);
	/* more than max */
	n = 99;
	assert_int_equal(ntp_sources_parse(text, strlen(text), s, 3, &n, &e), KB_ETOOBIG);
	assert_int_equal(n, 99);
	(void)state;
}

static void test_sources_bad(void **state)
{
	static const char *const bad[] = {
	    "^,*,127.0.0.1,8,0,77,0,0,0",    "^,*,127.0.0.1,8,0,77,0,0,0,0,0",
	    "!,*,127.0.0.1,8,0,77,0,0,0,0",  "^^,*,127.0.0.1,8,0,77,0,0,0,0",
	    "^,!,127.0.0.1,8,0,77,0,0,0,0",  "^,*,,8,0,77,0,0,0,0",
	    "^,*,127.0.0.1,17,0,77,0,0,0,0", "^,*,127.0.0.1,8,0.5,77,0,0,0,0",
	    "^,*,127.0.0.1,8,0,78,0,0,0,0",  "^,*,127.0.0.1,8,0,400,0,0,0,0",
	    "^,*,127.0.0.1,8,0,77,-1,0,0,0", "^,*,127.0.0.1,8,0,77,4294967296,0,0,0",
	    "^,*,127.0.0.1,8,0,77,0,x,0,0",  "^,*,127.0.0.1,8,0,77,0,0,0,",
	};
	struct ntp_source s[2] = {{.stratum = 5}};
	struct kb_errmsg e = {{0}};
	size_t n = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[200];

		/* the bad line second: the error names line 2 */
		snprintf(text, sizeof(text), "^,*,10.0.0.1,2,6,377,5,0,0,0\n%s\n", bad[i]);
		e.msg[0] = '\0';
		if (ntp_sources_parse(text, strlen(text), s, 2, &n, &e) != KB_EPROTO)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(strstr(e.msg, "sources line 2"));
		assert_int_equal(n, 42);
	}
	assert_int_equal(ntp_sources_parse("^,*,a,1,1,1,1,0,0\0,0", 20, s, 2, &n, &e), KB_EPROTO);
	(void)state;
}

static void test_status_read(void **state)
{
	char dir[] = "/tmp/test_ntp_XXXXXX", path[64];
	struct ntp_status_brief b;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(ntp_status_read(dir, &b), -ENOENT);
	snprintf(path, sizeof(path), "%s/%s", dir, NTP_STATUS_FILE);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "time_ns = 1795268879000000000\nstate = synced\nsynced = 1\n"
		   "offset_ns = -900000000\nevent = 1 info x\n");
	fclose(f);
	assert_int_equal(ntp_status_read(dir, &b), 0);
	assert_true(b.synced);
	assert_int_equal(b.offset_ns, -900000000);
	assert_int_equal(b.time_ns, 1795268879000000000ull);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "time_ns = 5\nsynced = 0\n");
	fclose(f);
	assert_int_equal(ntp_status_read(dir, &b), KB_EPROTO);
	unlink(path);
	rmdir(dir);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tracking),	cmocka_unit_test(test_tracking_bad),
	    cmocka_unit_test(test_sources),	cmocka_unit_test(test_sources_bad),
	    cmocka_unit_test(test_status_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
