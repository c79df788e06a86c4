/*
 * Tests for lib/heap: the fault injection schedule (n successes, then count failures,
 * then normal again), that every allocating wrapper counts, and that a failed realloc
 * keeps the old block.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/heap.h"

static int teardown(void **state)
{
	kb_heap_fail_reset();
	return 0;
}

static void test_plain(void **state)
{
	char *s = kb_strdup("hello");
	int *z = kb_calloc(4, sizeof(int));
	char *p = kb_malloc(8);

	assert_non_null(s);
	assert_string_equal(s, "hello");
	assert_non_null(z);
	assert_int_equal(z[0] | z[1] | z[2] | z[3], 0);
	assert_non_null(p);
	p = kb_realloc(p, 4096);
	assert_non_null(p);
	kb_free(p);
	kb_free(z);
	kb_free(s);
	kb_free(NULL);
}

static void test_fail_first(void **state)
{
	void *p;

	kb_heap_fail_after(0, 1);
	assert_null(kb_malloc(16));
	p = kb_malloc(16);
	assert_non_null(p);
	kb_free(p);
}

static void test_schedule(void **state)
{
	void *ok[4];

	kb_heap_fail_after(2, 2);
	ok[0] = kb_malloc(1);
	ok[1] = kb_calloc(1, 1);
	assert_non_null(ok[0]);
	assert_non_null(ok[1]);
	assert_null(kb_strdup("x"));
	assert_null(kb_realloc(NULL, 10));
	ok[2] = kb_malloc(1);
	ok[3] = kb_malloc(1);
	assert_non_null(ok[2]);
	assert_non_null(ok[3]);
	for (int i = 0; i < 4; i++)
		kb_free(ok[i]);
}

static void test_fail_all_until_reset(void **state)
{
	void *p;

	kb_heap_fail_after(1, -1);
	p = kb_malloc(1);
	assert_non_null(p);
	for (int i = 0; i < 100; i++)
		assert_null(kb_malloc(1));
	kb_heap_fail_reset();
	kb_free(p);
	p = kb_malloc(1);
	assert_non_null(p);
	kb_free(p);
}

static void test_count_zero_is_off(void **state)
{
	void *p;

	kb_heap_fail_after(0, 0);
	p = kb_malloc(1);
	assert_non_null(p);
	kb_free(p);
}

static void test_realloc_failure_keeps_block(void **state)
{
	char *p = kb_strdup("keep me");
	char *q;

	assert_non_null(p);
	kb_heap_fail_after(0, 1);
	q = kb_realloc(p, 1 << 20);
	assert_null(q);
	assert_string_equal(p, "keep me");
	q = kb_realloc(p, 1 << 20);
	assert_non_null(q);
	assert_string_equal(q, "keep me");
	kb_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_plain, teardown),
	    cmocka_unit_test_teardown(test_fail_first, teardown),
	    cmocka_unit_test_teardown(test_schedule, teardown),
	    cmocka_unit_test_teardown(test_fail_all_until_reset, teardown),
	    cmocka_unit_test_teardown(test_count_zero_is_off, teardown),
	    cmocka_unit_test_teardown(test_realloc_failure_keeps_block, teardown),
	};

	return cmocka_run_group_tests_name("lib_heap", tests, NULL, NULL);
}
