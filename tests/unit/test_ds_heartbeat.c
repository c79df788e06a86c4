/*
 * Tests for kernel/ds/heartbeat.h: writers follow the registry (a record on each shared
 * datastore, none on local ones; started by an add, stopped by a remove and by closing the
 * set), the record names the host and its counter advances at the configured rate without
 * drifting, a stopped writer's counter stays put, a new set continues the counter, a
 * record removed under a running writer is recreated without going backwards, and a
 * datastore whose record cannot be written is retried every interval, reported in the
 * status, logged rate-limited and recovers. Everything happens under a fresh directory in
 * /tmp (records written with O_DSYNC: tmpfs refuses O_DIRECT).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ha/hb.h"
#include "kernel/ds/datastore.h"
#include "kernel/ds/heartbeat.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "lib/log.h"
#include "lib/time.h"

#define HOST	 0x1234abcd5678ef01ull
#define INTERVAL 20 /* ms: fast beats keep the tests short */

static char top[PATH_MAX], state[PATH_MAX], shared[PATH_MAX], logpath[PATH_MAX];
static struct vmk_ds_registry reg;
static struct kb_logger lg;
static int log_fd = -1;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **unused)
{
	struct kb_errmsg e = {{0}};
	char tmpl[] = "/tmp/keel-dshb-XXXXXX";

	if (mkdtemp(tmpl) == NULL || realpath(tmpl, top) == NULL)
		return -1;
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(shared, sizeof(shared), "%s/shared", top);
	snprintf(logpath, sizeof(logpath), "%s/test.log", top);
	if (mkdir(state, 0700) < 0 || mkdir(shared, 0755) < 0)
		return -1;
	log_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return -1;
	kb_log_init(&lg, "test", KB_LOG_DEBUG, log_fd);
	return vmk_ds_registry_init(&reg, state, &e);
}

static int teardown(void **unused)
{
	vmk_ds_registry_close(&reg);
	close(log_fd);
	return nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void set_open(struct vmk_ds_hb_set *set)
{
	struct vmk_ds_hb_config cfg;

	vmk_ds_hb_config_init(&cfg);
	assert_int_equal(cfg.interval_ms, HA_HB_INTERVAL_MS);
	cfg.host_id = HOST;
	cfg.log = &lg;
	cfg.interval_ms = INTERVAL;
	cfg.io_opts = HA_IO_NO_DIRECT;
	assert_int_equal(vmk_ds_hb_set_init(set, &cfg), 0);
}

static void sync_ok(struct vmk_ds_hb_set *set)
{
	struct kb_errmsg e = {{0}};

	assert_int_equal(vmk_ds_hb_sync(set, &reg, &e), 0);
}

/* The record of HOST on datastore dir, or 0 when it cannot be read. */
static uint64_t counter_on(const char *dir)
{
	char path[HA_HB_PATH_MAX];
	struct ha_hb_record rec;

	assert_int_equal(ha_hb_path(dir, HOST, path), 0);
	if (ha_hb_read(path, &rec, NULL) < 0)
		return 0;
	assert_true(rec.host_id == HOST);
	return rec.counter;
}

/* Waits up to 2 s for the record on dir to reach at least min. */
static uint64_t wait_counter(const char *dir, uint64_t min)
{
	uint64_t c = 0;

	for (int i = 0; i < 200; i++) {
		c = counter_on(dir);
		if (c >= min)
			return c;
		kb_sleep_ns(10 * KB_NSEC_PER_MSEC);
	}
	fail_msg("counter on %s at %llu, wanted %llu", dir, (unsigned long long)c,
		 (unsigned long long)min);
	return 0;
}

static size_t log_count(const char *needle)
{
	char line[2048];
	size_t n = 0;
	FILE *f = fopen(logpath, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

static void test_follows_registry(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_hb_set set;
	struct vmk_ds_hb_status *st;
	char local_hb[PATH_MAX];
	uint64_t c1, c2;
	size_t n;

	set_open(&set);
	sync_ok(&set); /* only the local datastore1: no writer */
	assert_int_equal(vmk_ds_hb_status(&set, &st, &n), 0);
	assert_int_equal(n, 0);
	assert_null(st);

	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
	sync_ok(&set);
	c1 = wait_counter(shared, 3);
	snprintf(local_hb, sizeof(local_hb), "%s/datastore1/%s", state, HA_HB_DIR);
	assert_int_equal(access(local_hb, F_OK), -1);

	/* The writer records a beat in its status once the write has returned, so the file
	 * may show a counter a moment before the status does. */
	for (int i = 0;; i++) {
		assert_int_equal(vmk_ds_hb_status(&set, &st, &n), 0);
		assert_int_equal(n, 1);
		if (st[0].counter >= c1 || i == 100)
			break;
		kb_free(st);
		kb_sleep_ns(10 * KB_NSEC_PER_MSEC);
	}
	assert_string_equal(st[0].name, "s1");
	assert_string_equal(st[0].path, shared);
	assert_true(st[0].counter >= c1);
	assert_int_equal(st[0].last_err, 0);
	assert_true(st[0].beats > 0 && st[0].failures == 0);
	kb_free(st);
	sync_ok(&set); /* nothing changed: the writer keeps going */
	wait_counter(shared, c1 + 3);

	assert_int_equal(vmk_ds_remove(&reg, "s1", 0, &e), 0);
	sync_ok(&set); /* returns once the writer has stopped */
	c1 = counter_on(shared);
	kb_sleep_ns(5 * INTERVAL * KB_NSEC_PER_MSEC);
	c2 = counter_on(shared);
	assert_true(c1 == c2);
	assert_int_equal(vmk_ds_hb_status(&set, &st, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(log_count("datastore s1: heartbeat stopped at counter"), 1);

	/* added again: continues from the record on disk */
	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
	sync_ok(&set);
	wait_counter(shared, c2 + 1);
	vmk_ds_hb_set_close(&set);
	c1 = counter_on(shared);
	kb_sleep_ns(5 * INTERVAL * KB_NSEC_PER_MSEC);
	assert_true(counter_on(shared) == c1);

	/* a new set (vmkernel restarted) continues too */
	set_open(&set);
	sync_ok(&set);
	wait_counter(shared, c1 + 2);
	vmk_ds_hb_set_close(&set);
}

/* Deadlines skipped so far by the set's one writer (a write slower than an interval). */
static uint64_t late_of(struct vmk_ds_hb_set *set)
{
	struct vmk_ds_hb_status *st = NULL;
	size_t n = 0;
	uint64_t late;

	assert_int_equal(vmk_ds_hb_status(set, &st, &n), 0);
	assert_int_equal(n, 1);
	late = st[0].late;
	kb_free(st);
	return late;
}

static void test_rate_does_not_drift(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_hb_set set;
	uint64_t c0, c1, t0, t1, l0, l1;
	double beats, want;

	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
	set_open(&set);
	sync_ok(&set);
	c0 = wait_counter(shared, 2);
	l0 = late_of(&set);
	t0 = kb_now_ns();
	kb_sleep_ns(1000 * KB_NSEC_PER_MSEC);
	c1 = counter_on(shared);
	l1 = late_of(&set);
	t1 = kb_now_ns();
	vmk_ds_hb_set_close(&set);
	/* Absolute deadlines: every interval either beats or, when a synchronous write ran
	 * over (a loaded machine), is counted as skipped; neither drifts nor bursts. 50
	 * intervals a second, give or take the reads' own timing. */
	beats = (double)(c1 - c0) + (double)(l1 - l0);
	want = (double)(t1 - t0) / (INTERVAL * KB_NSEC_PER_MSEC);
	if (beats < want - 3 || beats > want + 2)
		fail_msg("%.0f beats and skipped deadlines in %.0f intervals", beats, want);
	if ((double)(c1 - c0) < want / 2)
		fail_msg("only %llu beats in %.0f intervals", (unsigned long long)(c1 - c0), want);
}

static void test_record_removed(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_hb_set set;
	char path[HA_HB_PATH_MAX];
	uint64_t c;

	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
	set_open(&set);
	sync_ok(&set);
	c = wait_counter(shared, 5);
	assert_int_equal(ha_hb_path(shared, HOST, path), 0);
	assert_int_equal(unlink(path), 0);
	wait_counter(shared, c + 2); /* recreated, and not from 1 */
	vmk_ds_hb_set_close(&set);
	assert_int_equal(log_count("was removed or replaced: reopening"), 1);
}

static void test_failure_and_recovery(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_hb_set set;
	struct vmk_ds_hb_status *st;
	char hbdir[PATH_MAX];
	size_t n;
	int fd;

	/* a file where the record directory should be: every open fails */
	snprintf(hbdir, sizeof(hbdir), "%s/%s", shared, HA_HB_DIR);
	fd = open(hbdir, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
	set_open(&set);
	sync_ok(&set); /* the thread starts; the failure is its own */
	kb_sleep_ns(10 * INTERVAL * KB_NSEC_PER_MSEC);
	assert_int_equal(vmk_ds_hb_status(&set, &st, &n), 0);
	assert_int_equal(n, 1);
	assert_true(st[0].failures >= 5); /* retried every interval */
	assert_true(st[0].beats == 0 && st[0].counter == 0);
	assert_int_equal(st[0].last_err, -ENOTDIR);
	assert_non_null(strstr(st[0].last_error, hbdir));
	kb_free(st);
	assert_int_equal(log_count("datastore s1: heartbeat failed"), 1); /* rate-limited */

	assert_int_equal(unlink(hbdir), 0);
	wait_counter(shared, 2);
	assert_int_equal(vmk_ds_hb_status(&set, &st, &n), 0);
	assert_int_equal(st[0].last_err, 0);
	kb_free(st);
	assert_int_equal(log_count("datastore s1: heartbeat recovered after"), 1);
	vmk_ds_hb_set_close(&set);
}

static void test_bad_config(void **unused)
{
	struct vmk_ds_hb_config cfg;
	struct vmk_ds_hb_set set;

	vmk_ds_hb_config_init(&cfg);
	cfg.log = &lg;
	assert_int_equal(vmk_ds_hb_set_init(&set, &cfg), -EINVAL); /* host id 0 */
	cfg.host_id = HOST;
	cfg.interval_ms = 0;
	assert_int_equal(vmk_ds_hb_set_init(&set, &cfg), -EINVAL);
	cfg.interval_ms = INTERVAL;
	cfg.log = NULL;
	assert_int_equal(vmk_ds_hb_set_init(&set, &cfg), -EINVAL);
}

static void test_oom(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_hb_set set;
	struct vmk_ds_hb_status *st;
	size_t n;

	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
	set_open(&set);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_hb_sync(&set, &reg, &e), -ENOMEM);
	kb_heap_fail_reset();
	assert_non_null(strstr(e.msg, "s1"));
	assert_int_equal(vmk_ds_hb_status(&set, &st, &n), 0);
	assert_int_equal(n, 0);
	sync_ok(&set); /* the next sync starts it */
	wait_counter(shared, 1);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_hb_status(&set, &st, &n), -ENOMEM);
	kb_heap_fail_reset();
	vmk_ds_hb_set_close(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_follows_registry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rate_does_not_drift, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_record_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failure_and_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
