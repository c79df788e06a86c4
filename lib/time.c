/*
 * Clocks. Timeouts and intervals use CLOCK_MONOTONIC, which never jumps; the wall clock
 * is read only to stamp log lines. Both clocks always exist on Linux, so these calls
 * cannot fail.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "lib/time.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * KB_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t kb_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t kb_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

void kb_sleep_ns(uint64_t ns)
{
	uint64_t now = kb_now_ns();
	uint64_t end = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
	struct timespec ts = {
	    .tv_sec = (time_t)(end / KB_NSEC_PER_SEC),
	    .tv_nsec = (long)(end % KB_NSEC_PER_SEC),
	};

	/* An absolute deadline makes a restart after a signal sleep only the time left. */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void kb_time_fmt(uint64_t wall_ns, char *out, unsigned out_size)
{
	time_t sec = (time_t)(wall_ns / KB_NSEC_PER_SEC);
	unsigned ms = (unsigned)(wall_ns % KB_NSEC_PER_SEC / KB_NSEC_PER_MSEC);
	struct tm tm;

	if (out_size == 0)
		return;
	if (!gmtime_r(&sec, &tm)) {
		snprintf(out, out_size, "?");
		return;
	}
	snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}
