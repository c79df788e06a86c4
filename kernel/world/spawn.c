/*
 * Starting one user world: fork, then in the child, in this order: a new session, stdin
 * from /dev/null and stdout/stderr to the world's log, every other descriptor closed; wait
 * until the parent has moved it into its cgroup; its own mount namespace when it asks for
 * one (mounts made private, a tmpfs on /tmp with the host's state dir, the program's
 * directory and the world's bind paths bound back when they lie under /tmp, read-only
 * binds); the capability bounding set and the ambient set
 * cleared but for the capabilities it keeps, which become its permitted and effective set;
 * a parent-death signal (SIGKILL), so a world never outlives a vmkernel that is killed;
 * PR_SET_NO_NEW_PRIVS; the seccomp filter; execve, with vmkernel's environment but the
 * libuv pool size vmkernel sets for itself.
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
#include "lib/heap.h"

extern char **environ;

/* vmkernel's environment for a world, without what vmkernel sets for itself only (its
 * libuv pool size): a NULL-terminated array of borrowed strings; caller frees the array
 * with kb_free(). NULL on -ENOMEM. */
static char **world_env(void)
{
	static const char own[] = "UV_THREADPOOL_SIZE=";
	size_t n = 0, o = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = kb_calloc(n + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], own, sizeof(own) - 1) != 0)
			env[o++] = environ[i];
	return env;
}

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

/* Binds fd (a directory or file opened before /tmp was covered) back at path, making the
 * mount point first: a directory, or an empty file in its parent directory. */
static int bind_back(int fd, const char *path)
{
	/* "/proc/self/fd/N" without snprintf (not async-signal-safe) */
	char num[16], src[64], parent[4096];
	int i = (int)sizeof(num) - 1, k = fd;
	struct stat st;
	char *slash;

	num[i] = '\0';
	do {
		num[--i] = (char)('0' + k % 10);
		k /= 10;
	} while (k && i > 0);
	strcpy(src, "/proc/self/fd/");
	strcat(src, num + i);
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		if (mkdirs(path) < 0)
			return -1;
	} else {
		if (strlen(path) >= sizeof(parent))
			return -1;
		strcpy(parent, path);
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			if (mkdirs(parent) < 0)
				return -1;
		}
		k = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (k < 0)
			return -1;
		close(k);
	}
	if (mount(src, path, NULL, MS_BIND, NULL) < 0)
		return -1;
	close(fd);
	return 0;
}

/* Whether path is dir or lies below it. */
static int inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int child_mounts(const struct vmk_world_def *def, const char *state_dir)
{
	/* what must stay visible under a private /tmp: the host's state dir, the program's
	 * own directory (a build tree under /tmp) and the world's bound paths */
	enum { NKEEP = 2 + VMK_WORLD_PATHS };
	char bin[PATH_MAX];
	const char *keep_path[NKEEP] = {state_dir, NULL};
	int keep[NKEEP];
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
				if (under_tmp(bin) &&
				    !(under_tmp(state_dir) && inside(bin, state_dir)))
					keep_path[1] = bin;
			}
		}
		for (int i = 0; i < def->nbind; i++)
			if (!(under_tmp(state_dir) && inside(def->bind[i], state_dir)))
				keep_path[2 + i] = def->bind[i];
		for (int i = 0; i < NKEEP; i++) {
			keep[i] = -1;
			if (!keep_path[i] || !under_tmp(keep_path[i]))
				continue;
			keep[i] = open(keep_path[i], O_PATH | O_CLOEXEC);
			if (keep[i] < 0)
				return -1;
		}
		if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m") < 0)
			return -1;
		for (int i = 0; i < NKEEP; i++)
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
		  const char *state_dir, int logfd, int nullfd, int gate, pid_t parent, char **env)
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
	/* a world dies with vmkernel, also when vmkernel is killed (set after the capability
	 * change, which would clear it) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
		_exit(EXIT_GATE);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(EXIT_NNP);
	if (filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter, 0, 0) < 0)
		_exit(EXIT_SECCOMP);
	execve(def->argv[0], def->argv, env);
	_exit(EXIT_EXEC);
}

int vmk__world_start(const struct vmk_world_def *def, const struct sock_fprog *filter,
		     const char *state_dir, int logfd,
		     int (*attach)(void *arg, pid_t pid, struct kb_errmsg *err), void *arg,
		     pid_t *pid_out, int *pidfd_out, struct kb_errmsg *err)
{
	int gate[2], nullfd, pidfd, rv;
	pid_t pid, self = getpid();
	char **env;

	env = world_env();
	if (env == NULL) {
		kb_errmsg_setf(err, "preparing world %s: out of memory", def->name);
		return -ENOMEM;
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0 || pipe2(gate, O_CLOEXEC) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "preparing world %s: %s", def->name, kb_strerror(rv));
		if (nullfd >= 0)
			close(nullfd);
		kb_free(env);
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
		child(def, filter, state_dir, logfd, nullfd, gate[0], self, env);
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
	kb_free(env);
	return rv;
}
