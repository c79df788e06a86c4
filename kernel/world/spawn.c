/*
 * Starting one user world: fork, then in the child, in this order: a new session, stdin
 * from /dev/null and stdout/stderr to the world's log, every other descriptor closed; wait
 * until the parent has moved it into its cgroup; its own mount namespace when it asks for
 * one (mounts made private, a tmpfs on /tmp with the host's state dir and the program's
 * directory bound back when they lie under /tmp, read-only binds); the capability bounding set and the ambient set
 * cleared but for the capabilities it keeps, which become its permitted and effective set;
 * PR_SET_NO_NEW_PRIVS; the seccomp filter; execve.
 *
 * vmkernel has threads, so between fork and exec the child makes system calls only (no
 * allocation, no locks). A step that fails ends the child with a distinct exit code
 * (120 + step, exec 127) that the supervisor reports as the world's exit, so a world that
 * cannot be confined never runs unconfined.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/world/world.h"

enum {
	EXIT_GATE = 120,
	EXIT_MOUNTS = 121,
	EXIT_CAPS = 122,
	EXIT_NNP = 123,
	EXIT_SECCOMP = 124,
	EXIT_EXEC = 127,
};

/* mkdir -p inside the child: no allocation. */
static int mkdirs(const char *path)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int under_tmp(const char *path)
{
	return strncmp(path, "/tmp/", 5) == 0;
}

/* Binds directory fd (opened before /tmp was covered) back at path. */
static int bind_back(int fd, const char *path)
{
	/* "/proc/self/fd/N" without snprintf (not async-signal-safe) */
	char num[16], src[64];
	int i = (int)sizeof(num) - 1, k = fd;

	num[i] = '\0';
	do {
		num[--i] = (char)('0' + k % 10);
		k /= 10;
	} while (k && i > 0);
	strcpy(src, "/proc/self/fd/");
	strcat(src, num + i);
	if (mkdirs(path) < 0 || mount(src, path, NULL, MS_BIND, NULL) < 0)
		return -1;
	close(fd);
	return 0;
}

static int child_mounts(const struct vmk_world_def *def, const char *state_dir)
{
	/* what must stay visible under a private /tmp: the host's state dir and the
	 * program's own directory (a build tree under /tmp) */
	char bin[PATH_MAX];
	const char *keep_path[2] = {state_dir, NULL};
	int keep[2] = {-1, -1};
	char *slash;

	if (!def->private_tmp && def->nro == 0)
		return 0;
	if (unshare(CLONE_NEWNS) < 0)
		return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	if (def->private_tmp) {
		if (strlen(def->argv[0]) < sizeof(bin)) {
			strcpy(bin, def->argv[0]);
			slash = strrchr(bin, '/');
			if (slash && slash != bin) {
				*slash = '\0';
				if (under_tmp(bin) && !(under_tmp(state_dir) &&
							strncmp(bin, state_dir, strlen(state_dir)) == 0))
					keep_path[1] = bin;
			}
		}
		for (int i = 0; i < 2; i++) {
			if (!keep_path[i] || !under_tmp(keep_path[i]))
				continue;
			keep[i] = open(keep_path[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (keep[i] < 0)
				return -1;
		}
		if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m") < 0)
			return -1;
		for (int i = 0; i < 2; i++)
			if (keep[i] >= 0 && bind_back(keep[i], keep_path[i]) < 0)
				return -1;
	}
	for (int i = 0; i < def->nro; i++) {
		const char *p = def->read_only[i];
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL) < 0)
			return -1;
	}
	return 0;
}

static int child_caps(uint64_t keep)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];

	for (int c = 0; c < 64; c++) {
		if (keep & (1ull << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)keep;
	data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
	return (int)syscall(SYS_capset, &hdr, data);
}

static void child(const struct vmk_world_def *def, const struct sock_fprog *filter,
		  const char *state_dir, int logfd, int nullfd, int gate)
{
	sigset_t none;
	char go;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < 32; s++)
		signal(s, SIG_DFL);
	setsid();
	dup2(nullfd, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	if (gate != 3) {
		dup2(gate, 3);
		gate = 3;
	}
	syscall(SYS_close_range, 4, ~0u, 0);
	if (read(gate, &go, 1) != 1)
		_exit(EXIT_GATE); /* the parent gave up on us */
	close(gate);
	if (chdir("/") < 0 || child_mounts(def, state_dir) < 0)
		_exit(EXIT_MOUNTS);
	if (child_caps(def->caps) < 0)
		_exit(EXIT_CAPS);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(EXIT_NNP);
	if (filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter, 0, 0) < 0)
		_exit(EXIT_SECCOMP);
	execv(def->argv[0], def->argv);
	_exit(EXIT_EXEC);
}

int vmk__world_start(const struct vmk_world_def *def, const struct sock_fprog *filter,
		     const char *state_dir, int logfd,
		     int (*attach)(void *arg, pid_t pid, struct kb_errmsg *err), void *arg,
		     pid_t *pid_out, int *pidfd_out, struct kb_errmsg *err)
{
	int gate[2], nullfd, pidfd, rv;
	pid_t pid;

	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0 || pipe2(gate, O_CLOEXEC) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "preparing world %s: %s", def->name, kb_strerror(rv));
		if (nullfd >= 0)
			close(nullfd);
		return rv;
	}
	pid = fork();
	if (pid < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "fork: %s", kb_strerror(rv));
		goto out_gate;
	}
	if (pid == 0) {
		close(gate[1]);
		child(def, filter, state_dir, logfd, nullfd, gate[0]);
	}
	rv = attach ? attach(arg, pid, err) : 0;
	if (rv < 0)
		goto out_kill;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "pidfd_open: %s", kb_strerror(rv));
		goto out_kill;
	}
	if (write(gate[1], "g", 1) != 1) {
		/* only if the child already died: its pidfd reports that */
	}
	*pid_out = pid;
	*pidfd_out = pidfd;
	rv = 0;
	goto out_gate;
out_kill:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
out_gate:
	close(gate[0]);
	close(gate[1]);
	close(nullfd);
	return rv;
}
