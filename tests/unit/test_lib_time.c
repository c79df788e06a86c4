/*
 * Tests for lib/time: the monotonic clock moves forward, sleeps last at least as long as
 * asked even when signals interrupt them, and wall time formats as ISO 8601 UTC.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/time.h"

static void test_monotonic(void **state)
{
	uint64_t a = kb_now_ns(), b = kb_now_ns();

	assert_true(a > 0);
	assert_true(b >= a);
	/* The wall clock is after 2020-01-01. */
	assert_true(kb_wall_ns() > 1577836800ull * KB_NSEC_PER_SEC);
}

static void test_sleep(void **state)
{
	uint64_t t0 = kb_now_ns();

	kb_sleep_ns(20 * KB_NSEC_PER_MSEC);
	assert_true(kb_now_ns() - t0 >= 20 * KB_NSEC_PER_MSEC);
	t0 = kb_now_ns();
	kb_sleep_ns(0);
	assert_true(kb_now_ns() - t0 < KB_NSEC_PER_SEC);
}

static void on_signal(int sig)
{
}

static void *interrupter(void *arg)
{
	pthread_t target = *(pthread_t *)arg;

	for (int i = 0; i < 5; i++) {
		kb_sleep_ns(5 * KB_NSEC_PER_MSEC);
		pthread_kill(target, SIGUSR1);
	}
	return NULL;
}

static void test_sleep_interrupted(void **state)
{
	struct sigaction sa = {.sa_handler = on_signal}, old;
	pthread_t self = pthread_self(), t;
	uint64_t t0;

	sigemptyset(&sa.sa_mask); /* no SA_RESTART: the sleep sees EINTR */
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	assert_int_equal(pthread_create(&t, NULL, interrupter, &self), 0);
	t0 = kb_now_ns();
	kb_sleep_ns(60 * KB_NSEC_PER_MSEC);
	assert_true(kb_now_ns() - t0 >= 60 * KB_NSEC_PER_MSEC);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

static void test_fmt(void **state)
{
	char out[32];

	kb_time_fmt(0, out, sizeof(out));
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	kb_time_fmt(1700000000123456789ull, out, sizeof(out));
	assert_string_equal(out, "2023-11-14T22:13:20.123Z");
	kb_time_fmt(951782400999999999ull, out, 25); /* leap day, exactly big enough */
	assert_string_equal(out, "2000-02-29T00:00:00.999Z");

	/* Too small: cut and terminated, never overflowed. */
	memset(out, '#', sizeof(out));
	kb_time_fmt(0, out, 11);
	assert_string_equal(out, "1970-01-01");
	assert_int_equal(out[11], '#');
	kb_time_fmt(0, out, 0);
	assert_int_equal(out[0], '1');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_monotonic),
	    cmocka_unit_test(test_sleep),
	    cmocka_unit_test(test_sleep_interrupted),
	    cmocka_unit_test(test_fmt),
	};

	return cmocka_run_group_tests_name("lib_time", tests, NULL, NULL);
}
