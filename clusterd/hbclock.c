/*
 * Reading this host's clock offset from vmntpd's status file (clusterd/hbclock.h,
 * docs/ntp.md). The file is `key = value` lines; only synced, offset_ns and time_ns are
 * used here. A missing, partial or stale file means "unknown", never an error: a host
 * without vmntpd simply reports no offset.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/hbclock.h"
#include "clusterd/hbwire.h"

bool cd_clock_read(const char *state_dir, uint64_t now_wall_ns, int64_t *offset_us)
{
	char path[PATH_MAX + 32], line[512];
	bool synced = false, have_off = false, have_time = false;
	long long off = 0;
	unsigned long long t = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/vmntpd.status", state_dir);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		int yes;

		if (sscanf(line, "offset_ns = %lld", &off) == 1)
			have_off = true;
		else if (sscanf(line, "time_ns = %llu", &t) == 1)
			have_time = true;
		else if (sscanf(line, "synced = %d", &yes) == 1)
			synced = yes == 1;
	}
	fclose(f);
	if (!synced || !have_off || !have_time)
		return false;
	int64_t age_ms = ((int64_t)now_wall_ns - (int64_t)t) / 1000000;

	if (age_ms > CD_CLOCK_STALE_MS || age_ms < -CD_CLOCK_STALE_MS)
		return false;
	off /= 1000;
	if (off > CD_HB_CLOCK_MAX_US)
		off = CD_HB_CLOCK_MAX_US;
	if (off < -CD_HB_CLOCK_MAX_US)
		off = -CD_HB_CLOCK_MAX_US;
	*offset_us = off;
	return true;
}
