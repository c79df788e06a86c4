/*
 * The lab's view of this machine: running tools (ip, mkfs.ext4, mount), looking at
 * interfaces and namespaces of the root namespace, and finding and killing the processes
 * of a lab host.
 *
 * A host's processes are found twice over, so that none escapes after a crash: by network
 * namespace (every daemon and vmx of the host runs in it) and by command line (a vmkernel
 * whose --state-dir is the host's directory, a vmx whose control socket is under the
 * host's run directory), which still finds them when the namespace file is gone.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mgmt-api/keel/lab.h"

int kc_lab_run(char *const argv[], struct kb_errmsg *err)
{
	char out[4096], *last;
	size_t n = 0;
	int pfd[2], status;
	pid_t pid;
	ssize_t r;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		int rc = -errno;

		kb_errmsg_setf(err, "%s: %s", argv[0], kb_strerror(rc));
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		int rc = -errno;

		close(pfd[0]);
		close(pfd[1]);
		kb_errmsg_setf(err, "%s: %s", argv[0], kb_strerror(rc));
		return rc;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run: %s\n", strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	while ((r = read(pfd[0], out + n, sizeof(out) - 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += (size_t)r;
		if (n == sizeof(out) - 1) /* keep the end of a long output */
			n = 0;
	}
	close(pfd[0]);
	out[n] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	last = strrchr(out, '\n');
	last = last ? last + 1 : out;
	{
		char cmd[256] = "";
		size_t o = 0;

		for (int i = 0; argv[i] && o < sizeof(cmd); i++)
			o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "%s%s", i ? " " : "",
					      argv[i]);
		kb_errmsg_setf(err, "%s: %s", cmd,
			       last[0]		     ? last
			       : WIFSIGNALED(status) ? "killed by a signal"
						     : "failed");
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

bool kc_lab_link_exists(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

void kc_lab_link_state(const char *name, char *out, size_t size)
{
	char path[PATH_MAX];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", name);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(out, (int)size, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

bool kc_lab_link_admin_up(const char *name)
{
	char path[PATH_MAX], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/flags", name);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoul(buf, NULL, 16) & 0x1; /* IFF_UP */
}

bool kc_lab_netns_exists(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	return access(path, F_OK) == 0;
}

uint64_t kc_lab_netns_ino(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	/* Only a mounted namespace file counts: its device is nsfs, not the tmpfs. */
	if (stat(path, &st) < 0 || st.st_size != 0)
		return 0;
	{
		struct stat dir;

		if (stat("/run/netns", &dir) == 0 && dir.st_dev == st.st_dev)
			return 0;
	}
	return st.st_ino;
}

static uint64_t pid_ns_ino(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

uint64_t kc_lab_pid_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	char state;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p || sscanf(p + 1,
			 " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			 "%*d %*d %llu",
			 &state, &start) != 2)
		return 0;
	return state == 'Z' || state == 'X' ? 0 : (uint64_t)start;
}

/* Reads pid's command line: the arguments NUL-separated, *len bytes. */
static int read_cmdline(pid_t pid, char *buf, size_t size, size_t *len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	*len = (size_t)n;
	return 0;
}

static bool args_have(const char *buf, size_t len, const char *arg, bool prefix)
{
	size_t al = strlen(arg);

	for (size_t o = 0; o < len; o += strlen(buf + o) + 1) {
		if (prefix ? strncmp(buf + o, arg, al) == 0 : strcmp(buf + o, arg) == 0)
			return true;
	}
	return false;
}

bool kc_lab_cmdline_has(pid_t pid, const char *arg, bool prefix)
{
	char buf[8192];
	size_t len;

	if (read_cmdline(pid, buf, sizeof(buf), &len))
		return false;
	return args_have(buf, len, arg, prefix);
}

/* Whether the command line's program is called name (its argv[0]'s last component). */
static bool prog_is(const char *buf, const char *name)
{
	const char *slash = strrchr(buf, '/');

	return strcmp(slash ? slash + 1 : buf, name) == 0;
}

/* Whether the command line is one of the daemons a lab host runs (plain or as worlds),
 * which name the host's state dir as an argument. */
static bool is_host_daemon(const char *buf)
{
	static const char *const names[] = {"vmkernel",	 "clusterd",   "hostd",
					    "vmsyslogd", "keel-snmpd", "vmntpd"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (prog_is(buf, names[i]))
			return true;
	return false;
}

/* The namespaces of the host's netstacks, which its vmkernel keeps as files under
 * <host dir>/netns/. */
static int netstack_inos(const char *hdir, uint64_t *inos, int max)
{
	char pattern[PATH_MAX + 16];
	struct stat st;
	int n = 0;
	glob_t g;

	snprintf(pattern, sizeof(pattern), "%s/netns/*", hdir);
	if (glob(pattern, 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc && n < max; i++)
		if (stat(g.gl_pathv[i], &st) == 0 && st.st_size == 0)
			inos[n++] = st.st_ino;
	globfree(&g);
	return n;
}

static bool in_list(uint64_t v, const uint64_t *list, int n)
{
	for (int i = 0; i < n; i++)
		if (v && list[i] == v)
			return true;
	return false;
}

int kc_lab_host_pids(const struct kc_lab *lab, int host, pid_t *pids, int max)
{
	char ns[64], hdir[PATH_MAX], run[PATH_MAX + 8], buf[8192];
	uint64_t ino, stacks[16];
	int nstacks;
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t self = getpid();
	int n = 0;

	if (!d)
		return 0;
	kc_lab_netns(lab, host, ns, sizeof(ns));
	ino = kc_lab_netns_ino(ns);
	kc_lab_host_dir(lab, host, hdir, sizeof(hdir));
	snprintf(run, sizeof(run), "%s/run/", hdir);
	nstacks = netstack_inos(hdir, stacks, 16);
	while ((e = readdir(d))) {
		size_t len;
		pid_t pid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = (pid_t)atoi(e->d_name);
		if (pid == self || pid == 1)
			continue;
		if (read_cmdline(pid, buf, sizeof(buf), &len) || len == 0)
			continue; /* kernel threads have no command line */
		if ((ino && pid_ns_ino(pid) == ino) || in_list(pid_ns_ino(pid), stacks, nstacks) ||
		    (is_host_daemon(buf) && args_have(buf, len, hdir, false)) ||
		    (prog_is(buf, "vmx") && args_have(buf, len, run, true))) {
			if (n < max)
				pids[n] = pid;
			n++;
		}
	}
	closedir(d);
	return n;
}

pid_t kc_lab_daemon_pid(const struct kc_lab *lab, int host, const char *daemon)
{
	char hdir[PATH_MAX], buf[8192];
	pid_t pids[256];
	int n = kc_lab_host_pids(lab, host, pids, 256);

	kc_lab_host_dir(lab, host, hdir, sizeof(hdir));
	for (int i = 0; i < n && i < 256; i++) {
		size_t len;

		if (read_cmdline(pids[i], buf, sizeof(buf), &len) == 0 && prog_is(buf, daemon) &&
		    args_have(buf, len, hdir, false) && kc_lab_pid_start(pids[i]))
			return pids[i];
	}
	return 0;
}

int kc_lab_host_kill_all(const struct kc_lab *lab, int host)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	pid_t pids[1024];
	int killed = 0;

	for (int round = 0; round < 100; round++) {
		int n = kc_lab_host_pids(lab, host, pids, 1024), live = 0;

		for (int i = 0; i < n && i < 1024; i++) {
			if (!kc_lab_pid_start(pids[i]))
				continue; /* a zombie waits for its parent */
			live++;
			if (kill(pids[i], SIGKILL) == 0)
				killed++;
		}
		if (live == 0)
			break;
		nanosleep(&ts, NULL);
	}
	return killed;
}

static int rmdir_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path); /* a group that still holds a process stays */
	return 0;
}

/* The host's own groups, keel/host-<id> in every hierarchy (its VMs' under vms/, its user
 * worlds' under worlds/), named after the id in its state dir's clusterd.id. */
static void host_tree_clean(const char *hdir)
{
	char path[PATH_MAX + 32], line[64], pattern[128];
	unsigned long long id = 0;
	FILE *f;
	glob_t g;

	snprintf(path, sizeof(path), "%s/clusterd.id", hdir);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "%llu", &id) != 1)
		id = 0;
	fclose(f);
	if (id == 0)
		return;
	snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/*/keel/host-%016llx", id);
	if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			nftw(g.gl_pathv[i], rmdir_entry, 8, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
		globfree(&g);
	}
	snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/keel/host-%016llx", id);
	if (access(pattern, F_OK) == 0)
		nftw(pattern, rmdir_entry, 8, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void kc_lab_host_cgroups_clean(const struct kc_lab *lab, int host)
{
	char pattern[PATH_MAX + 16];
	glob_t g;

	kc_lab_host_dir(lab, host, pattern, PATH_MAX);
	host_tree_clean(pattern);

	kc_lab_host_dir(lab, host, pattern, PATH_MAX);
	strcat(pattern, "/run/*.pid");
	if (glob(pattern, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		char uuid[64], cg[PATH_MAX];
		glob_t c;

		snprintf(uuid, sizeof(uuid), "%.*s", (int)(strlen(base) - 4), base);
		if (strchr(uuid, '*') || strchr(uuid, '?') || strchr(uuid, '['))
			continue;
		snprintf(cg, sizeof(cg), "/sys/fs/cgroup/*/keel/vms/%s", uuid);
		if (glob(cg, GLOB_ONLYDIR, NULL, &c) == 0) {
			for (size_t j = 0; j < c.gl_pathc; j++)
				rmdir(c.gl_pathv[j]);
			globfree(&c);
		}
		snprintf(cg, sizeof(cg), "/sys/fs/cgroup/keel/vms/%s", uuid);
		rmdir(cg);
	}
	globfree(&g);
}

int kc_lab_supervisor_pids(const char *dir, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char buf[8192];
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t len;
		pid_t pid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = (pid_t)atoi(e->d_name);
		if (pid == getpid() || read_cmdline(pid, buf, sizeof(buf), &len) || len == 0)
			continue;
		if (prog_is(buf, "keel") && args_have(buf, len, "supervise", false) &&
		    args_have(buf, len, dir, false) && kc_lab_pid_start(pid)) {
			if (n < max)
				pids[n] = pid;
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Undoes the escapes of /proc/self/mounts ("\\040" for a space) in place. */
static void mount_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

int kc_lab_unmount_under(const char *dir)
{
	size_t dl = strlen(dir);
	int left = 0;

	for (int pass = 0; pass < 8; pass++) {
		char line[PATH_MAX * 2 + 64], dev[PATH_MAX], mnt[PATH_MAX];
		char(*found)[PATH_MAX] = NULL;
		size_t n = 0, cap = 0;
		FILE *f = fopen("/proc/self/mounts", "re");

		if (!f)
			return -errno;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%4095s %4095s", dev, mnt) != 2)
				continue;
			mount_unescape(mnt);
			if (strncmp(mnt, dir, dl) != 0 || (mnt[dl] != '/' && mnt[dl] != '\0'))
				continue;
			if (n == cap) {
				void *p = realloc(found, (cap ? cap * 2 : 8) * sizeof(*found));

				if (!p)
					break;
				found = p;
				cap = cap ? cap * 2 : 8;
			}
			snprintf(found[n++], PATH_MAX, "%s", mnt);
		}
		fclose(f);
		/* The last mounted first: a mount on top of another, or below it. */
		for (size_t i = n; i-- > 0;)
			umount2(found[i], MNT_DETACH);
		free(found);
		left = (int)n;
		if (n == 0)
			return 0;
	}
	return left ? -EBUSY : 0;
}
