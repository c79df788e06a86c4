/*
 * vmx's self-fencing on real KVM (kernel/vmm/fence.c, DESIGN.md §4): a guest runs while
 * its host's heartbeat record advances and its lock names (host, epoch); it stops for good
 * (exit status 3) within the lease time of the record's last advance, and at once when
 * another host takes the lock at a higher epoch; a guest whose lock or record is not its
 * own never starts.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ha/hb.h"
#include "ha/lock.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"

#define UUID "4f6c1c2e-8a1d-4b0e-9d55-1f2a3b4c5d6e"

static char ds[512], hb[HA_HB_PATH_MAX], lockp[600];
static struct ha_hb_writer w;
static pthread_t beater;
static volatile bool beating;
static volatile uint64_t last_beat_ns;

static void *beat_thread(void *arg)
{
	while (beating) {
		struct kb_errmsg e = {{0}};
		if (ha_hb_writer_beat(&w, &e) == 0)
			last_beat_ns = kb_now_ns();
		kb_sleep_ns(100 * KB_NSEC_PER_MSEC);
	}
	return NULL;
}

static enum ha_lease_state expired(void *arg, uint64_t host)
{
	return HA_LEASE_EXPIRED;
}

static int setup(void **state)
{
	struct kb_errmsg e = {{0}};

	if (!th_have_kvm())
		return 0;
	snprintf(ds, sizeof(ds), "%s/ds", th_tmpdir());
	mkdir(ds, 0755);
	snprintf(lockp, sizeof(lockp), "%s/.lock", ds);
	if (ha_hb_writer_open(&w, ds, 1, 0, &e) != 0)
		fail_msg("%s", e.msg);
	snprintf(hb, sizeof(hb), "%s", w.path);
	return 0;
}

static pid_t spawn_vmx(uint64_t host, uint64_t epoch)
{
	char h[32], ep[32];
	pid_t pid;

	snprintf(h, sizeof(h), "%llu", (unsigned long long)host);
	snprintf(ep, sizeof(ep), "%llu", (unsigned long long)epoch);
	pid = fork();
	if (pid == 0) {
		execl(th_bin_path("vmx"), "vmx", "--kernel", th_guest_path("payload_counter.elf"),
		      "--mem", "64M", "--test-port", "--log-level", "error", "--fence-hb", hb,
		      "--fence-host", h, "--fence-lock", lockp, "--fence-vm", UUID, "--fence-epoch",
		      ep, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Waits up to ms for pid to exit; returns its status or -1. */
static int wait_exit(pid_t pid, int ms)
{
	int st;

	for (int i = 0; i < ms / 5; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		kb_sleep_ns(5 * KB_NSEC_PER_MSEC);
	}
	return -1;
}

static void start_beating(void)
{
	beating = true;
	assert_int_equal(pthread_create(&beater, NULL, beat_thread, NULL), 0);
}

static void stop_beating(void)
{
	beating = false;
	pthread_join(beater, NULL);
}

static void test_fences_within_the_lease_when_the_host_stops_beating(void **state)
{
	NEED_KVM();
	struct kb_errmsg e = {{0}};

	assert_int_equal(ha_lock_acquire(lockp, UUID, 1, 1, expired, NULL, 0, NULL, &e), 0);
	start_beating();
	pid_t pid = spawn_vmx(1, 1);
	assert_int_equal(wait_exit(pid, 1500), -1); /* runs while the host beats */
	stop_beating();
	uint64_t last = last_beat_ns;
	int st = wait_exit(pid, 3000);
	uint64_t gone = kb_now_ns();
	assert_true(st != -1);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	uint64_t ms = (gone - last) / KB_NSEC_PER_MSEC;
	print_message("fenced %llu ms after the last beat\n", (unsigned long long)ms);
	assert_true(ms >= 500);  /* lease 1000 - margin 400, less a read interval's slack */
	assert_true(ms < 1000);  /* before any observer may call the lease expired */
	assert_int_equal(ha_lock_release(lockp, UUID, 1, 1, 0, &e), 0);
}

static void test_fences_when_another_host_takes_the_lock(void **state)
{
	NEED_KVM();
	struct kb_errmsg e = {{0}};

	assert_int_equal(ha_lock_acquire(lockp, UUID, 1, 2, expired, NULL, 0, NULL, &e), 0);
	start_beating();
	pid_t pid = spawn_vmx(1, 2);
	assert_int_equal(wait_exit(pid, 600), -1);
	/* host 2 takes over at epoch 3 (as after an expiry it observed) */
	uint64_t t0 = kb_now_ns();
	assert_int_equal(ha_lock_acquire(lockp, UUID, 2, 3, expired, NULL, 0, NULL, &e), 0);
	int st = wait_exit(pid, 2000);
	uint64_t ms = (kb_now_ns() - t0) / KB_NSEC_PER_MSEC;
	stop_beating();
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	print_message("fenced %llu ms after the lock moved\n", (unsigned long long)ms);
	assert_true(ms < 400); /* one read interval (250 ms) and some */
}

static void test_never_starts_without_its_lock_or_record(void **state)
{
	NEED_KVM();
	int st;

	start_beating();
	/* the lock names host 2 at epoch 3 (left by the previous test) */
	st = wait_exit(spawn_vmx(1, 3), 3000);
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	/* a record that is not this host's */
	st = wait_exit(spawn_vmx(7, 3), 3000);
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	stop_beating();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fences_within_the_lease_when_the_host_stops_beating),
		cmocka_unit_test(test_fences_when_another_host_takes_the_lock),
		cmocka_unit_test(test_never_starts_without_its_lock_or_record),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
