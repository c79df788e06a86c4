/*
 * Tests for user-world restart back-off (kernel/world/backoff.c): 1 s doubling to the 60 s
 * cap, no overflow for long series, and a stable run (a minute) starting a new series.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernel/world/world.h"

static void test_doubling(void **state)
{
	const struct vmk_world_backoff b = VMK_WORLD_BACKOFF_DEFAULT;
	static const uint64_t want[] = {0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};

	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(vmk_world_backoff_delay(&b, i), want[i]);
	assert_int_equal(vmk_world_backoff_delay(&b, 1000), 60000);
	assert_int_equal(vmk_world_backoff_delay(&b, ~0u), 60000);
}

static void test_custom(void **state)
{
	const struct vmk_world_backoff b = {.min_ms = 300, .max_ms = 1000, .stable_ms = 5000};

	assert_int_equal(vmk_world_backoff_delay(&b, 1), 300);
	assert_int_equal(vmk_world_backoff_delay(&b, 2), 600);
	assert_int_equal(vmk_world_backoff_delay(&b, 3), 1000);
}

static void test_series(void **state)
{
	const struct vmk_world_backoff b = VMK_WORLD_BACKOFF_DEFAULT;
	unsigned f = 0;

	/* quick crashes: the series grows */
	f = vmk_world_backoff_next(&b, f, 10);
	assert_int_equal(f, 1);
	f = vmk_world_backoff_next(&b, f, 10);
	f = vmk_world_backoff_next(&b, f, 59999);
	assert_int_equal(f, 3);
	assert_int_equal(vmk_world_backoff_delay(&b, f), 4000);
	/* a stable minute forgets it: the next crash waits the first delay again */
	f = vmk_world_backoff_next(&b, f, 60000);
	assert_int_equal(f, 1);
	assert_int_equal(vmk_world_backoff_delay(&b, f), 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_doubling),
	    cmocka_unit_test(test_custom),
	    cmocka_unit_test(test_series),
	};

	return cmocka_run_group_tests_name("world_backoff", tests, NULL, NULL);
}
