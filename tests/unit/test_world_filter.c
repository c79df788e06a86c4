/*
 * Tests for user-world seccomp filters (kernel/world/filter.c): the exported program,
 * installed in a forked child the way spawn.c does it, lets listed calls through and kills
 * the process on any other (SIGSYS), or fails it with EPERM under `seccomp = errno`; off
 * builds no program.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/world/world.h"

static void def_of(struct vmk_world_def *d, enum vmk_world_seccomp mode)
{
	struct kb_errmsg err = {{0}};

	memset(d, 0, sizeof(*d));
	strcpy(d->name, "t");
	d->seccomp = mode;
	assert_int_equal(vmk_world_syscalls_add(d, "@basic", &err), 0);
}

/* Runs a child under the filter that calls getppid, then (if forbidden) ptrace; returns
 * its wait status. */
static int run_child(const struct sock_fprog *prog, bool forbidden)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
			_exit(100);
		if (syscall(SYS_getppid) <= 0)
			_exit(101);
		if (forbidden) {
			long r = syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
			_exit(r < 0 && errno == EPERM ? 42 : 43);
		}
		_exit(7);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void test_kill(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_world_def d;
	struct sock_fprog *prog;

	def_of(&d, VMK_WORLD_SECCOMP_KILL);
	assert_int_equal(vmk_world_filter_build(&d, &prog, &err), 0);
	assert_non_null(prog);
	assert_true(prog->len > 10);
	int st = run_child(prog, false);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	st = run_child(prog, true);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	vmk_world_filter_free(prog);
}

static void test_errno(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_world_def d;
	struct sock_fprog *prog;

	def_of(&d, VMK_WORLD_SECCOMP_ERRNO);
	assert_int_equal(vmk_world_filter_build(&d, &prog, &err), 0);
	int st = run_child(prog, true);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
	vmk_world_filter_free(prog);
}

static void test_off(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_world_def d;
	struct sock_fprog *prog = (void *)1;

	def_of(&d, VMK_WORLD_SECCOMP_OFF);
	assert_int_equal(vmk_world_filter_build(&d, &prog, &err), 0);
	assert_null(prog);
}

static void test_list_full(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_world_def d;

	def_of(&d, VMK_WORLD_SECCOMP_KILL);
	int before = d.nsyscalls;
	assert_int_equal(vmk_world_syscalls_add(&d, "@basic", &err), 0);
	assert_int_equal(d.nsyscalls, before); /* no duplicates */
	d.nsyscalls = VMK_WORLD_SYSCALLS;      /* pretend it is full */
	d.syscalls[VMK_WORLD_SYSCALLS - 1] = 100000;
	assert_int_equal(vmk_world_syscalls_add(&d, "ptrace", &err), KB_ETOOBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill),
	    cmocka_unit_test(test_errno),
	    cmocka_unit_test(test_off),
	    cmocka_unit_test(test_list_full),
	};

	return cmocka_run_group_tests_name("world_filter", tests, NULL, NULL);
}
