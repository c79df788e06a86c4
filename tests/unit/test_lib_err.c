/*
 * Tests for lib/err: a distinct message for every KB_E* code, -errno names, unknown
 * codes, per-thread buffers, and error message wrapping with truncation.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/err.h"

static void test_every_code_named(void **state)
{
	for (int c = KB_EBASE; c < KB_ELAST; c++) {
		const char *m = kb_strerror(c);

		assert_non_null(m);
		assert_true(strlen(m) > 5);
		assert_null(strstr(m, "unknown"));
		for (int d = KB_EBASE; d < c; d++)
			assert_string_not_equal(m, kb_strerror(d));
	}
	assert_string_equal(kb_strerror(KB_ETRUNCATED), "input ended early");
	assert_string_equal(kb_strerror(0), "success");
}

static void test_errno(void **state)
{
	assert_string_equal(kb_strerror(-ENOENT), "No such file or directory");
	assert_string_equal(kb_strerror(-ENOMEM), "Cannot allocate memory");
	assert_string_equal(kb_strerror(-EPIPE), "Broken pipe");
	/* Past the highest errno glibc names, still a message with the number. */
	assert_non_null(strstr(kb_strerror(-4000), "4000"));
}

static void test_unknown(void **state)
{
	char want[64];
	snprintf(want, sizeof(want), "unknown error %d", KB_ELAST);
	assert_string_equal(kb_strerror(KB_ELAST), want);
	assert_string_equal(kb_strerror(-20000), "unknown error -20000");
	assert_string_equal(kb_strerror(7), "unknown error 7");
}

static void *strerror_thread(void *arg)
{
	const char *m = kb_strerror(-29999);

	*(const char **)arg = m;
	return (void *)(uintptr_t)(strcmp(m, "unknown error -29999") == 0);
}

static void test_thread_buffers(void **state)
{
	const char *mine = kb_strerror(-30000);
	const char *theirs = NULL;
	void *ok = NULL;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, strerror_thread, &theirs), 0);
	assert_int_equal(pthread_join(t, &ok), 0);
	assert_true(ok);
	/* The other thread's call used its own buffer and left ours alone. */
	assert_ptr_not_equal(mine, theirs);
	assert_string_equal(mine, "unknown error -30000");
}

static void test_setf_wrapf(void **state)
{
	struct kb_errmsg e;

	kb_errmsg_setf(&e, "open %s: %s", "/x", kb_strerror(-ENOENT));
	assert_string_equal(e.msg, "open /x: No such file or directory");
	kb_errmsg_wrapf(&e, "load config");
	kb_errmsg_wrapf(&e, "vm %d", 7);
	assert_string_equal(e.msg, "vm 7: load config: open /x: No such file or directory");

	kb_errmsg_setf(&e, "%s", "");
	kb_errmsg_wrapf(&e, "only context");
	assert_string_equal(e.msg, "only context");

	/* The arguments may name the message itself. */
	kb_errmsg_setf(&e, "abc");
	kb_errmsg_setf(&e, "%s%s", e.msg, e.msg);
	assert_string_equal(e.msg, "abcabc");
	kb_errmsg_wrapf(&e, "[%s]", e.msg);
	assert_string_equal(e.msg, "[abcabc]: abcabc");
}

static void test_truncation(void **state)
{
	char big[2 * KB_ERRMSG_SIZE];
	struct kb_errmsg e;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kb_errmsg_setf(&e, "%s", big);
	assert_int_equal(strlen(e.msg), KB_ERRMSG_SIZE - 1);

	/* Wrapping a full message keeps the context and cuts the tail. */
	kb_errmsg_wrapf(&e, "ctx");
	assert_int_equal(strlen(e.msg), KB_ERRMSG_SIZE - 1);
	assert_memory_equal(e.msg, "ctx: xxx", 8);

	/* Context longer than the buffer: only the context, cut. */
	kb_errmsg_setf(&e, "inner");
	kb_errmsg_wrapf(&e, "%s", big);
	assert_int_equal(strlen(e.msg), KB_ERRMSG_SIZE - 1);
	assert_null(strstr(e.msg, "inner"));

	/* Context that leaves room for part of the previous message. */
	kb_errmsg_setf(&e, "inner message");
	kb_errmsg_wrapf(&e, "%.*s", KB_ERRMSG_SIZE - 10, big);
	assert_int_equal(strlen(e.msg), KB_ERRMSG_SIZE - 1);
	assert_string_equal(e.msg + KB_ERRMSG_SIZE - 10, ": inner m");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_named), cmocka_unit_test(test_errno),
	    cmocka_unit_test(test_unknown),	     cmocka_unit_test(test_thread_buffers),
	    cmocka_unit_test(test_setf_wrapf),	     cmocka_unit_test(test_truncation),
	};

	return cmocka_run_group_tests_name("lib_err", tests, NULL, NULL);
}
