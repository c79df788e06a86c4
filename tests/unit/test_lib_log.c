/*
 * Tests for lib/log: line format, level filtering before argument evaluation, the ring
 * of recent lines (wrap, max, small output buffers), truncation of long lines, errno
 * preservation, and whole lines from concurrent threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/log.h"

static struct kb_logger lg; /* 256 KiB: too big for a test's stack */

/* Reads what is in the pipe right now (the write end stays open). */
static size_t drain(int fd, char *out, size_t size)
{
	size_t off = 0;
	ssize_t n;

	while (off + 1 < size && (n = read(fd, out + off, size - 1 - off)) > 0)
		off += (size_t)n;
	out[off] = '\0';
	return off;
}

static void open_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
}

static void test_format(void **state)
{
	char out[2048], want[128];
	regex_t re;
	int p[2];

	open_pipe(p);
	kb_log_init(&lg, "unit", KB_LOG_INFO, p[1]);
	kb_log(&lg, KB_LOG_INFO, "hello %d", 42);
	snprintf(want, sizeof(want),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
		 "INFO unit\\[%d\\]: hello 42\n$",
		 (int)getpid());
	assert_int_equal(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
	drain(p[0], out, sizeof(out));
	assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
	regfree(&re);

	/* A trailing newline in the message does not make an empty line. */
	kb_log(&lg, KB_LOG_WARN, "ends with newline\n");
	drain(p[0], out, sizeof(out));
	assert_non_null(strstr(out, " WARN unit["));
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
	kb_log_close(&lg);
	close(p[0]);
	close(p[1]);
}

static int evaluated;

static int side_effect(void)
{
	return ++evaluated;
}

static void test_level_filter(void **state)
{
	char out[4096];
	int p[2];

	open_pipe(p);
	kb_log_init(&lg, "unit", KB_LOG_WARN, p[1]);
	evaluated = 0;
	kb_log(&lg, KB_LOG_INFO, "info %d", side_effect());
	kb_log(&lg, KB_LOG_DEBUG, "debug %d", side_effect());
	kb_log(&lg, KB_LOG_TRACE, "trace %d", side_effect());
	assert_int_equal(evaluated, 0);
	assert_int_equal(drain(p[0], out, sizeof(out)), 0);
	assert_int_equal(lg.ring_head, 0);

	kb_log(&lg, KB_LOG_WARN, "warn %d", side_effect());
	kb_log(&lg, KB_LOG_ERROR, "error %d", side_effect());
	/* Direct calls filter too, after evaluating their arguments. */
	kb_log_emit(&lg, KB_LOG_DEBUG, "direct debug");
	assert_int_equal(evaluated, 2);
	drain(p[0], out, sizeof(out));
	assert_non_null(strstr(out, " WARN unit["));
	assert_non_null(strstr(out, "]: warn 1\n"));
	assert_non_null(strstr(out, " ERROR unit["));
	assert_non_null(strstr(out, "]: error 2\n"));
	assert_null(strstr(out, "debug"));
	assert_int_equal(lg.ring_head, 2);

	lg.level = KB_LOG_TRACE;
	kb_log(&lg, KB_LOG_TRACE, "now %d", side_effect());
	drain(p[0], out, sizeof(out));
	assert_non_null(strstr(out, " TRACE unit["));
	kb_log_close(&lg);
	close(p[0]);
	close(p[1]);
}

/* Checks that out holds exactly lines first..last ("n <i>"), oldest first. */
static void check_lines(const char *out, int first, int last)
{
	const char *s = out;

	for (int i = first; i <= last; i++) {
		char want[32];
		const char *nl = strchr(s, '\n');

		assert_non_null(nl);
		snprintf(want, sizeof(want), "]: n %d", i);
		assert_true((size_t)(nl - s) > strlen(want));
		assert_memory_equal(nl - strlen(want), want, strlen(want));
		s = nl + 1;
	}
	assert_int_equal(*s, '\0');
}

static void test_ring(void **state)
{
	static char out[KB_LOG_RING_LINES * KB_LOG_LINE_MAX];
	size_t n, line;

	kb_log_init(&lg, "ring", KB_LOG_INFO, -1);
	assert_int_equal(kb_log_recent(&lg, out, sizeof(out), 10), 0);
	assert_string_equal(out, "");
	for (int i = 0; i < 300; i++)
		kb_log(&lg, KB_LOG_INFO, "n %d", i);
	assert_int_equal(lg.ring_head, 300);

	n = kb_log_recent(&lg, out, sizeof(out), 3);
	assert_int_equal(n, strlen(out));
	check_lines(out, 297, 299);

	/* Asking for more than the ring holds gives the ring, oldest first. */
	kb_log_recent(&lg, out, sizeof(out), 1000);
	check_lines(out, 300 - KB_LOG_RING_LINES, 299);

	/* A small buffer keeps the newest whole lines that fit. */
	line = strlen(lg.ring[299 % KB_LOG_RING_LINES]) + 1;
	n = kb_log_recent(&lg, out, 2 * line + 1 + line / 2, 100);
	assert_int_equal(n, 2 * line);
	check_lines(out, 298, 299);
	assert_int_equal(kb_log_recent(&lg, out, line, 100), 0);
	assert_string_equal(out, "");
	kb_log_close(&lg);
}

static void test_long_line(void **state)
{
	char *big = malloc(5000), out[4 * KB_LOG_LINE_MAX];
	size_t n;
	int p[2];

	assert_non_null(big);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	open_pipe(p);
	kb_log_init(&lg, "unit", KB_LOG_INFO, p[1]);
	kb_log(&lg, KB_LOG_INFO, "%s", big);
	n = drain(p[0], out, sizeof(out));
	assert_int_equal(n, KB_LOG_LINE_MAX);
	assert_int_equal(out[n - 1], '\n');
	assert_int_equal(out[n - 2], 'x');
	assert_int_equal(strlen(lg.ring[0]), KB_LOG_LINE_MAX - 1);
	kb_log_close(&lg);
	close(p[0]);
	close(p[1]);
	free(big);
}

static void test_errno_kept(void **state)
{
	char out[256];

	kb_log_init(&lg, "unit", KB_LOG_INFO, -1);
	errno = ENOENT;
	kb_log(&lg, KB_LOG_ERROR, "open: %m");
	assert_int_equal(errno, ENOENT);
	kb_log_recent(&lg, out, sizeof(out), 1);
	assert_non_null(strstr(out, "open: No such file or directory\n"));
	kb_log_close(&lg);
}

static void test_levels_and_default(void **state)
{
	int saved_fd = kb_log_default.fd;
	char out[512];

	assert_int_equal(kb_log_level_parse("error"), KB_LOG_ERROR);
	assert_int_equal(kb_log_level_parse("warn"), KB_LOG_WARN);
	assert_int_equal(kb_log_level_parse("info"), KB_LOG_INFO);
	assert_int_equal(kb_log_level_parse("DEBUG"), KB_LOG_DEBUG);
	assert_int_equal(kb_log_level_parse("trace"), KB_LOG_TRACE);
	assert_int_equal(kb_log_level_parse("loud"), -EINVAL);
	assert_int_equal(kb_log_level_parse(""), -EINVAL);
	for (int l = KB_LOG_ERROR; l <= KB_LOG_TRACE; l++)
		assert_int_equal(kb_log_level_parse(kb_log_level_name(l)), l);

	assert_int_equal(kb_log_default.level, KB_LOG_INFO);
	assert_int_equal(kb_log_default.fd, 2);
	assert_string_equal(kb_log_default.ident, "keel");
	kb_log_default.fd = -1; /* keep the test output clean */
	evaluated = 0;
	kb_debug("hidden %d", side_effect());
	kb_info("shown %d", side_effect());
	assert_int_equal(evaluated, 1);
	kb_log_recent(&kb_log_default, out, sizeof(out), 5);
	assert_non_null(strstr(out, " INFO keel["));
	assert_non_null(strstr(out, "]: shown 1\n"));
	assert_null(strstr(out, "hidden"));
	kb_log_default.fd = saved_fd;
}

#define THREADS	   4
#define PER_THREAD 500

static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < PER_THREAD; i++)
		kb_log(&lg, KB_LOG_INFO, "t%d seq %d pad %0*d", id, i, 40 * id, 0);
	return NULL;
}

static void test_threads(void **state)
{
	static char out[THREADS * PER_THREAD * 256];
	int next[THREADS] = {0};
	pthread_t t[THREADS];
	size_t n;
	int p[2];

	/* The default 64 KiB pipe is too small for every line: grow it so writers never block. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 1 << 20) >= (int)sizeof(out) / 2);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	kb_log_init(&lg, "mt", KB_LOG_INFO, p[1]);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	n = drain(p[0], out, sizeof(out));
	assert_true(n < sizeof(out) - 1);

	/* Every line is whole, and each thread's lines arrive in its order. */
	for (char *s = out, *nl; (nl = strchr(s, '\n')); s = nl + 1) {
		const char *m = strstr(s, "]: t");
		int id, seq, len;

		*nl = '\0';
		assert_non_null(m);
		assert_int_equal(sscanf(m, "]: t%d seq %d pad %n", &id, &seq, &len), 2);
		assert_in_range(id, 0, THREADS - 1);
		assert_int_equal(seq, next[id]);
		assert_int_equal(strlen(m + len), (size_t)(id ? 40 * id : 1));
		next[id]++;
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(next[i], PER_THREAD);
	assert_int_equal(lg.ring_head, THREADS * PER_THREAD);
	kb_log_close(&lg);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),     cmocka_unit_test(test_level_filter),
	    cmocka_unit_test(test_ring),       cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_errno_kept), cmocka_unit_test(test_levels_and_default),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests_name("lib_log", tests, NULL, NULL);
}
