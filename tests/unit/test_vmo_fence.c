/*
 * A live migration with fencing (docs/vmotion.md, "The destination"): the source runs
 * fenced at epoch 1 on host 1; the destination, started with the fence options of host 2,
 * takes the VM's lock at the commit's epoch 2 over host 1's lower one, runs the guest and
 * fences with epoch 2 from then on — so a later owner at epoch 3 stops it. The source
 * exits as migrated (status 4), never as fenced.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ha/hb.h"
#include "ha/lock.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"

#define UUID "6d2b7a10-0c3e-4f55-8a77-2e9c1b0d4f31"
#define ID   "4b45454c464e4345000000000000000a"

static char ds[512], lockp[600], dir[512];
static struct ha_hb_writer w1, w2;
static pthread_t beater;
static volatile bool beating;

static void *beat_thread(void *arg)
{
	while (beating) {
		struct kb_errmsg e = {{0}};
		(void)ha_hb_writer_beat(&w1, &e);
		(void)ha_hb_writer_beat(&w2, &e);
		kb_sleep_ns(100 * KB_NSEC_PER_MSEC);
	}
	return NULL;
}

static enum ha_lease_state expired(void *arg, uint64_t host)
{
	return HA_LEASE_EXPIRED;
}

static pid_t spawn_vmx(const char *name, uint64_t host, const char *hb, const char *incoming)
{
	char h[32], sock[600], log[600];
	pid_t pid;

	snprintf(h, sizeof(h), "%llu", (unsigned long long)host);
	snprintf(sock, sizeof(sock), "%s/%s.sock", dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		if (incoming != NULL)
			execl(th_bin_path("vmx"), "vmx", "--kernel",
			      th_guest_path("payload_counter.elf"), "--mem", "64M", "--test-port",
			      "--ctl", sock, "--fence-hb", hb, "--fence-host", h, "--fence-lock",
			      lockp, "--fence-vm", UUID, "--incoming", incoming, (char *)NULL);
		else
			execl(th_bin_path("vmx"), "vmx", "--kernel",
			      th_guest_path("payload_counter.elf"), "--mem", "64M", "--test-port",
			      "--ctl", sock, "--fence-hb", hb, "--fence-host", h, "--fence-lock",
			      lockp, "--fence-vm", UUID, "--fence-epoch", "1", (char *)NULL);
		_exit(127);
	}
	char cmd[1400];
	snprintf(cmd, sizeof(cmd), "%s %s status >/dev/null 2>&1", th_bin_path("vmxctl"), sock);
	for (int i = 0; i < 200 && system(cmd) != 0; i++)
		kb_sleep_ns(20 * KB_NSEC_PER_MSEC);
	return pid;
}

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

static void test_destination_takes_the_lock_at_the_commit_epoch(void **state)
{
	NEED_KVM();
	struct kb_errmsg e = {{0}};
	struct ha_lock lk;
	char cmd[2000], key[600];
	int port = 20000 + (int)(getpid() % 20000);

	snprintf(dir, sizeof(dir), "%s", th_tmpdir());
	snprintf(ds, sizeof(ds), "%s/ds", dir);
	mkdir(ds, 0755);
	snprintf(lockp, sizeof(lockp), "%s/.lock", ds);
	snprintf(key, sizeof(key), "%s/key", dir);
	FILE *f = fopen(key, "w");
	assert_non_null(f);
	fputs("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", f);
	fclose(f);
	if (ha_hb_writer_open(&w1, ds, 1, 0, &e) != 0 || ha_hb_writer_open(&w2, ds, 2, 0, &e) != 0)
		fail_msg("%s", e.msg);
	beating = true;
	assert_int_equal(pthread_create(&beater, NULL, beat_thread, NULL), 0);
	assert_int_equal(ha_lock_acquire(lockp, UUID, 1, 1, expired, NULL, 0, NULL, &e), 0);

	char inc[64];
	snprintf(inc, sizeof(inc), "127.0.0.1:%d", port);
	pid_t src = spawn_vmx("src", 1, w1.path, NULL);
	pid_t dst = spawn_vmx("dst", 2, w2.path, inc);
	assert_int_equal(wait_exit(src, 100), -1);
	assert_int_equal(wait_exit(dst, 100), -1);
	/* the destination has not touched the lock: it is not the owner yet */
	assert_int_equal(ha_lock_read(lockp, &lk, &e), 0);
	assert_int_equal(lk.host_id, 1);

	snprintf(cmd, sizeof(cmd),
		 "%s migrate-in %s/dst.sock --key-file %s --id %s --streams 1 "
		 ">%s/in.out 2>&1 &",
		 th_bin_path("vmxctl"), dir, key, ID, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
		 "%s migrate %s/src.sock --to %s --key-file %s --id %s "
		 "--commit 2 >%s/out.out 2>&1",
		 th_bin_path("vmxctl"), dir, inc, key, ID, dir);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "cat %s/out.out %s/src.log %s/dst.log", dir, dir, dir);
		(void)system(cmd);
		fail_msg("the migration failed");
	}
	int st = wait_exit(src, 5000);
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 4); /* migrated, not fenced */
	assert_int_equal(ha_lock_read(lockp, &lk, &e), 0);
	assert_int_equal(lk.host_id, 2);
	assert_int_equal(lk.epoch, 2);
	assert_int_equal(lk.state, HA_LOCK_HELD);
	assert_int_equal(wait_exit(dst, 600), -1); /* the guest runs there */

	/* a later owner at epoch 3: the destination fences with its epoch 2 */
	assert_int_equal(ha_lock_acquire(lockp, UUID, 3, 3, expired, NULL, 0, NULL, &e), 0);
	st = wait_exit(dst, 3000);
	beating = false;
	pthread_join(beater, NULL);
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_destination_takes_the_lock_at_the_commit_epoch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
