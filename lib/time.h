/*
 * Time. Monotonic time for every timeout and interval (never the wall clock), wall time
 * for log stamps only.
 */
#ifndef KB_TIME_H
#define KB_TIME_H

#include <stdint.h>

#define KB_NSEC_PER_USEC 1000ull
#define KB_NSEC_PER_MSEC 1000000ull
#define KB_NSEC_PER_SEC	 1000000000ull

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t kb_now_ns(void);
/* CLOCK_REALTIME in nanoseconds. */
uint64_t kb_wall_ns(void);
/* Sleeps ns nanoseconds, restarting on EINTR. */
void kb_sleep_ns(uint64_t ns);
/* Formats wall time ns as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 25 bytes). */
void kb_time_fmt(uint64_t wall_ns, char *out, unsigned out_size);

#endif
