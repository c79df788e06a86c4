/*
 * Tests for host monitoring (kernel/vm/stats.c, stats_parse.c): the parsers of schedstat,
 * cgroup cpu.stat and /proc/PID/io (keyed files), /proc/PID/stat, statm, /proc/net/dev and
 * /proc/locks against real-looking texts and malformed ones; the rate math (counter
 * resets, zero intervals); vCPU thread names; and the collector end to end on a host with
 * no VMs: a thread that spins shows as CPU used of the vmkernel world, a process holding
 * clusterd.lock shows as the clusterd world, the kept sample makes the second request's
 * rates cover the time between the two, and bad requests are refused with nothing sampled.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/vm/stats.h"
#include "lib/list.h"
#include "lib/time.h"

/* ---- parsers ------------------------------------------------------------------------------ */

static void test_schedstat(void **state)
{
	uint64_t run = 1, wait = 1;

	(void)state;
	assert_int_equal(vmk_stats_parse_schedstat("123456789 987654 42\n", &run, &wait), 0);
	assert_int_equal(run, 123456789);
	assert_int_equal(wait, 987654);
	assert_int_equal(vmk_stats_parse_schedstat("0 0 0", &run, &wait), 0);
	assert_int_equal(run, 0);
	/* Malformed: too few fields, letters, a sign, trailing garbage, overflow. */
	run = 7;
	assert_int_equal(vmk_stats_parse_schedstat("12 34\n", &run, &wait), -EINVAL);
	assert_int_equal(vmk_stats_parse_schedstat("12 x 3\n", &run, &wait), -EINVAL);
	assert_int_equal(vmk_stats_parse_schedstat("-1 2 3\n", &run, &wait), -EINVAL);
	assert_int_equal(vmk_stats_parse_schedstat("1 2 3 4\n", &run, &wait), -EINVAL);
	assert_int_equal(vmk_stats_parse_schedstat("99999999999999999999 2 3", &run, &wait),
			 -EINVAL);
	assert_int_equal(vmk_stats_parse_schedstat("", &run, &wait), -EINVAL);
	assert_int_equal(run, 7); /* untouched on error */
}

static void test_keyed(void **state)
{
	static const char cpu_stat[] = "usage_usec 5000123\nuser_usec 4000000\n"
				       "system_usec 1000123\nnr_periods 0\nnr_throttled 0\n"
				       "throttled_usec 0\n";
	static const char io[] = "rchar: 4096\nwchar: 81920\nsyscr: 12\nsyscw: 340\n"
				 "read_bytes: 0\nwrite_bytes: 1048576\ncancelled_write_bytes: 0\n";
	uint64_t v = 0;

	(void)state;
	assert_int_equal(vmk_stats_parse_keyed(cpu_stat, "usage_usec", &v), 0);
	assert_int_equal(v, 5000123);
	assert_int_equal(vmk_stats_parse_keyed(cpu_stat, "system_usec", &v), 0);
	assert_int_equal(v, 1000123);
	assert_int_equal(vmk_stats_parse_keyed(io, "write_bytes", &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(vmk_stats_parse_keyed(io, "syscw", &v), 0);
	assert_int_equal(v, 340);
	/* A key that only prefixes another is not it. */
	assert_int_equal(vmk_stats_parse_keyed(io, "write", &v), -ENOENT);
	assert_int_equal(vmk_stats_parse_keyed(io, "bytes", &v), -ENOENT);
	assert_int_equal(vmk_stats_parse_keyed(cpu_stat, "nr_bursts", &v), -ENOENT);
	assert_int_equal(vmk_stats_parse_keyed("usage_usec abc\n", "usage_usec", &v), -EINVAL);
	assert_int_equal(vmk_stats_parse_keyed("usage_usec 12 13\n", "usage_usec", &v), -EINVAL);
	assert_int_equal(vmk_stats_parse_keyed("usage_usec 12", "usage_usec", &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(vmk_stats_parse_keyed("", "x", &v), -ENOENT);
	assert_int_equal(vmk_stats_parse_keyed("a 1", "", &v), -EINVAL);
}

static void test_u64_statm_start(void **state)
{
	/* comm with spaces and parentheses: fields count from the last ')'. */
	static const char stat[] =
	    "4242 (vmx (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 50 20 0 0 20 0 6 0 "
	    "987654 123456789 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
	uint64_t v = 0;

	(void)state;
	assert_int_equal(vmk_stats_parse_u64("1234567\n", &v), 0);
	assert_int_equal(v, 1234567);
	assert_int_equal(vmk_stats_parse_u64(" 0 \n", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vmk_stats_parse_u64("12 13\n", &v), -EINVAL);
	assert_int_equal(vmk_stats_parse_u64("\n", &v), -EINVAL);
	assert_int_equal(vmk_stats_parse_u64("max\n", &v), -EINVAL);

	assert_int_equal(vmk_stats_parse_statm_rss("4000 321 100 10 0 500 0\n", &v), 0);
	assert_int_equal(v, 321);
	assert_int_equal(vmk_stats_parse_statm_rss("4000\n", &v), -EINVAL);

	assert_int_equal(vmk_stats_parse_start(stat, &v), 0);
	assert_int_equal(v, 987654);
	assert_int_equal(vmk_stats_parse_start("4242 (vmx) S 1 2 3\n", &v), -EINVAL);
	assert_int_equal(vmk_stats_parse_start("no parentheses at all", &v), -EINVAL);
}

static void test_netdev(void **state)
{
	static const char dev[] =
	    "Inter-|   Receive                                                |  Transmit\n"
	    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
	    "errs drop fifo colls carrier compressed\n"
	    "    lo:    1000      10    0    0    0     0          0         0     1000      10 "
	    "   0    0    0     0       0          0\n"
	    "kvtap12:  64000     500    0    0    0     0          0         0   128000    1000 "
	    "   0    0    0     0       0          0\n"
	    "kvtap1: 7 1 0 0 0 0 0 0 9 2 0 0 0 0 0 0\n";
	struct vmk_stats_netdev d = {0};

	(void)state;
	assert_int_equal(vmk_stats_parse_netdev(dev, "kvtap12", &d), 0);
	assert_int_equal(d.rx_bytes, 64000);
	assert_int_equal(d.rx_packets, 500);
	assert_int_equal(d.tx_bytes, 128000);
	assert_int_equal(d.tx_packets, 1000);
	/* A name that prefixes another is matched exactly. */
	assert_int_equal(vmk_stats_parse_netdev(dev, "kvtap1", &d), 0);
	assert_int_equal(d.rx_bytes, 7);
	assert_int_equal(d.tx_packets, 2);
	assert_int_equal(vmk_stats_parse_netdev(dev, "kvtap", &d), -ENOENT);
	assert_int_equal(vmk_stats_parse_netdev(dev, "", &d), -ENOENT);
	assert_int_equal(vmk_stats_parse_netdev("eth0: 1 2 3\n", "eth0", &d), -EINVAL);
}

static void test_lock_holder(void **state)
{
	static const char locks[] = "1: POSIX  ADVISORY  WRITE 900 fd:01:555 0 EOF\n"
				    "2: FLOCK  ADVISORY  WRITE 1234 fd:01:777 0 EOF\n"
				    "2: -> FLOCK  ADVISORY  WRITE 5678 fd:01:777 0 EOF\n"
				    "3: FLOCK  ADVISORY  WRITE 4321 103:02:777 0 EOF\n";
	pid_t pid = 0;

	(void)state;
	assert_int_equal(vmk_stats_parse_lock_holder(locks, 0xfd, 1, 777, &pid), 0);
	assert_int_equal(pid, 1234); /* the holder, not the waiter */
	assert_int_equal(vmk_stats_parse_lock_holder(locks, 0x103, 2, 777, &pid), 0);
	assert_int_equal(pid, 4321);
	assert_int_equal(vmk_stats_parse_lock_holder(locks, 0xfd, 1, 555, &pid), 0);
	assert_int_equal(pid, 900);
	assert_int_equal(vmk_stats_parse_lock_holder(locks, 0xfd, 1, 778, &pid), -ENOENT);
	assert_int_equal(vmk_stats_parse_lock_holder("", 0xfd, 1, 777, &pid), -ENOENT);
}

static void test_rates(void **state)
{
	uint32_t id = 99;

	(void)state;
	/* 500 events over half a second: 1000/s. */
	assert_true(fabs(vmk_stats_rate(1000, 1500, KB_NSEC_PER_SEC / 2) - 1000.0) < 1e-9);
	/* 250 ms of run time over one second: 25 % of a CPU; 2 s over 1 s: two CPUs. */
	assert_true(fabs(vmk_stats_pct(0, 250 * KB_NSEC_PER_MSEC, KB_NSEC_PER_SEC) - 25.0) < 1e-9);
	assert_true(fabs(vmk_stats_pct(KB_NSEC_PER_SEC, 3 * KB_NSEC_PER_SEC, KB_NSEC_PER_SEC) -
			 200.0) < 1e-9);
	/* A counter that went back (reset, a new tap) and a zero interval give 0. */
	assert_true(vmk_stats_rate(1500, 1000, KB_NSEC_PER_SEC) == 0);
	assert_true(vmk_stats_pct(1500, 1000, KB_NSEC_PER_SEC) == 0);
	assert_true(vmk_stats_rate(1, 2, 0) == 0);
	assert_true(vmk_stats_rate(5, 5, KB_NSEC_PER_SEC) == 0);

	assert_true(vmk_stats_vcpu_thread("vcpu0\n", &id));
	assert_int_equal(id, 0);
	assert_true(vmk_stats_vcpu_thread("vcpu17", &id));
	assert_int_equal(id, 17);
	assert_false(vmk_stats_vcpu_thread("vcpu", &id));
	assert_false(vmk_stats_vcpu_thread("vcpux", &id));
	assert_false(vmk_stats_vcpu_thread("vmx", &id));
	assert_false(vmk_stats_vcpu_thread("vcpu1a", &id));
}

/* ---- the collector on a host without VMs ---------------------------------------------------- */

struct fixture {
	struct vmk_host h;
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/keel-top-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->h.state_dir, sizeof(f->h.state_dir), "%s", f->dir);
	snprintf(f->h.run_dir, sizeof(f->h.run_dir), "%s", f->dir);
	pthread_mutex_init(&f->h.lock, NULL);
	kb_list_init(&f->h.vms);
	kb_list_init(&f->h.watch_q);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/clusterd.lock", f->dir);
	unlink(path);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->h.lock);
	free(f);
	return 0;
}

static atomic_bool spin_stop;

static void *spin(void *arg)
{
	volatile uint64_t x = 0;

	(void)arg;
	while (!atomic_load(&spin_stop))
		x++;
	return NULL;
}

static const Keel__Vmk__PerfWorld *world(const Keel__Vmk__PerfSample *s, const char *name)
{
	for (size_t i = 0; i < s->n_worlds; i++)
		if (strcmp(s->worlds[i]->name, name) == 0)
			return s->worlds[i];
	return NULL;
}

static void test_collector(void **state)
{
	struct fixture *f = *state;
	Keel__Vmk__VmkPerf rq = KEEL__VMK__VMK_PERF__INIT;
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct kb_errmsg err = {{0}};
	const Keel__Vmk__PerfWorld *w;
	char path[128];
	int pipefd[2], fd;
	pthread_t t;
	pid_t child;
	char c;

	/* A process holding clusterd.lock, as clusterd does. */
	snprintf(path, sizeof(path), "%s/clusterd.lock", f->dir);
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(pipefd[0], &c, 1), 1);

	atomic_store(&spin_stop, false);
	assert_int_equal(pthread_create(&t, NULL, spin, NULL), 0);
	rq.window_ms = 300;
	assert_int_equal(vmk_stats_perf(&f->h, &rq, &rp, &err), 0);
	assert_non_null(rp.perf);
	assert_true(rp.perf->cpus >= 1);
	assert_true(rp.perf->mem_bytes > 0);
	assert_true(rp.perf->interval_ms >= 250);
	w = world(rp.perf, "vmkernel");
	assert_non_null(w);
	assert_string_equal(w->kind, "system");
	assert_int_equal(w->pid, (uint32_t)getpid());
	assert_true(w->threads >= 2);
	assert_true(w->rss_bytes > 0);
	/* The spinning thread ran (or waited to run) for most of the window: on a loaded host
	 * the time splits between used and ready, never vanishes. */
	assert_true(w->cpu_used_pct + w->cpu_ready_pct > 50);
	assert_true(w->cpu_used_pct > 0);
	w = world(rp.perf, "clusterd");
	assert_non_null(w);
	assert_int_equal(w->pid, (uint32_t)child);
	assert_true(w->cpu_used_pct < 50); /* it sleeps */
	assert_null(world(rp.perf, "vmsyslogd"));
	vmk_stats_reply_free(&rp);
	assert_null(rp.perf);

	/* The second request uses the kept sample: its interval is the time in between, not
	 * a new window. */
	kb_sleep_ns(600 * KB_NSEC_PER_MSEC);
	rq.window_ms = 5000;
	uint64_t t0 = kb_now_ns();
	assert_int_equal(vmk_stats_perf(&f->h, &rq, &rp, &err), 0);
	assert_true(kb_now_ns() - t0 < 4000 * KB_NSEC_PER_MSEC);
	assert_true(rp.perf->interval_ms >= 550);
	w = world(rp.perf, "vmkernel");
	assert_non_null(w);
	assert_true(w->cpu_used_pct + w->cpu_ready_pct > 50);
	vmk_stats_reply_free(&rp);

	atomic_store(&spin_stop, true);
	pthread_join(t, NULL);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void test_refusals(void **state)
{
	struct fixture *f = *state;
	Keel__Vmk__VmkPerf rq = KEEL__VMK__VMK_PERF__INIT;
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct kb_errmsg err = {{0}};

	rq.window_ms = 50;
	assert_int_equal(vmk_stats_perf(&f->h, &rq, &rp, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "window 50 ms"));
	assert_null(rp.perf);
	rq.window_ms = 5001;
	assert_int_equal(vmk_stats_perf(&f->h, &rq, &rp, &err), KB_ECONFIG);
	rq.window_ms = 0;
	rq.vm = "web1";
	memset(&err, 0, sizeof(err));
	assert_int_equal(vmk_stats_perf(&f->h, &rq, &rp, &err), KB_ENOTFOUND);
	assert_string_equal(err.msg, "no VM named web1");
	assert_null(rp.perf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schedstat),
	    cmocka_unit_test(test_keyed),
	    cmocka_unit_test(test_u64_statm_start),
	    cmocka_unit_test(test_netdev),
	    cmocka_unit_test(test_lock_holder),
	    cmocka_unit_test(test_rates),
	    cmocka_unit_test_setup_teardown(test_collector, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};

	return cmocka_run_group_tests_name("top_stats", tests, NULL, NULL);
}
