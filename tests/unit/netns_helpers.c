/*
 * Private network namespaces for the kernel/net tests (see netns_helpers.h).
 */
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/netns_helpers.h"

static int orig_ns = -1;
static ino_t orig_ns_ino;
static bool ns_ready;

static ino_t netns_ino(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

bool th_netns_init(const char *prog)
{
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	orig_ns_ino = netns_ino();
	/* A private mount namespace, so each test can mount the sysfs of its network
	 * namespace on /sys (and bind mount netstacks) without touching the machine's. */
	ns_ready = orig_ns >= 0 && orig_ns_ino != 0 && unshare(CLONE_NEWNS) == 0 &&
		   mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (ns_ready) {
		/* Probe: can this process make network namespaces at all? */
		pid_t pid = fork();
		int status = 1;

		if (pid == 0)
			_exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
		ns_ready = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
			   WEXITSTATUS(status) == 0;
	}
	if (!ns_ready)
		fprintf(stderr, "%s: no private network namespaces (need root): skipping\n", prog);
	return ns_ready;
}

bool th_netns_ready(void)
{
	return ns_ready;
}

int th_netns_enter(bool *entered)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	*entered = true;
	if (netns_ino() == orig_ns_ino)
		return -1; /* never run in the original namespace */
	return 0;
}

int th_netns_leave(void)
{
	return setns(orig_ns, CLONE_NEWNET) < 0 ? -1 : 0;
}

void th_netns_need(void)
{
	if (!ns_ready)
		skip();
	assert_true(netns_ino() != orig_ns_ino);
}
