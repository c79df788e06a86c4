/*
 * What a user world may do: capability names, the system call groups of worlds.conf and
 * the seccomp filter built from a world's allow-list.
 *
 * The filter is compiled with libseccomp in vmkernel (where allocating is fine) and
 * exported as a classic BPF program; the forked child installs it with one prctl, the
 * last step before execve, so the daemon runs under it from its first instruction.
 * Default action: KILL_PROCESS. A daemon that reaches a call outside its list is either
 * broken or being abused, and a kill is loud: the supervisor sees SIGSYS, logs it as the
 * world's exit and restarts the world with back-off, where ERRNO(EPERM) would let it go on
 * in a state nobody tested. `seccomp = errno` in worlds.conf selects EPERM for a world
 * whose list is being worked out.
 *
 * The groups (documented in docs/worlds.md): @basic is what any daemon needs (memory,
 * reading files, time, signals, threads, polling, process basics), @file changes files,
 * @net is sockets, @aio the kernel AIO that libraft probes and uses (and io_uring), @proc
 * starting programs and entering namespaces, @ids changing user and group ids and
 * capabilities (vmntpd's chronyd drops from root to _chrony). Every call that hostd, clusterd, vmsyslogd
 * and keel-snmpd were seen to make under `strace -f` in the api_host, cluster_single,
 * host_syslog and host_snmp tests is in the groups the built-in set gives them; so is
 * every call of vmntpd with its private chronyd and chronyc, following a chronyd.
 */
#include <errno.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/world/world.h"
#include "lib/heap.h"

static const char *const cap_names[] = {
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
};
#define NCAPS ((int)(sizeof(cap_names) / sizeof(cap_names[0])))

int vmk_world_cap_parse(const char *name)
{
	if (strncasecmp(name, "cap_", 4) == 0)
		name += 4;
	for (int i = 0; i < NCAPS; i++)
		if (strcasecmp(name, cap_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *vmk_world_cap_name(int cap)
{
	return cap >= 0 && cap < NCAPS ? cap_names[cap] : NULL;
}

struct group {
	const char *name;
	const char *calls; /* blank-separated */
};

static const struct group groups[] = {
    {"@basic",
     "read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 close "
     "close_range lseek fstat stat lstat newfstatat statx fstatfs statfs open openat openat2 "
     "access faccessat faccessat2 readlink readlinkat getdents getdents64 fcntl ioctl dup dup2 "
     "dup3 pipe pipe2 mmap munmap mprotect mremap madvise brk mlock mlock2 munlock mincore "
     "msync membarrier rt_sigaction rt_sigprocmask rt_sigreturn rt_sigtimedwait rt_sigsuspend "
     "rt_sigpending rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack kill tgkill tkill getpid "
     "gettid getppid getuid geteuid getgid getegid getgroups getresuid getresgid getpgrp "
     "getpgid getsid setsid setpgid umask uname sysinfo getrlimit setrlimit prlimit64 "
     "getrusage times clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time "
     "futex futex_waitv set_robust_list get_robust_list set_tid_address rseq arch_prctl prctl "
     "clone clone3 exit exit_group wait4 waitid sched_yield sched_getaffinity "
     "sched_setaffinity sched_getparam sched_getscheduler getpriority setpriority ioprio_get "
     "getrandom poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait "
     "epoll_pwait epoll_pwait2 eventfd eventfd2 timerfd_create timerfd_settime "
     "timerfd_gettime signalfd signalfd4 getcwd chdir fchdir execve execveat restart_syscall "
     "alarm setitimer getitimer pidfd_open pidfd_send_signal inotify_init inotify_init1 "
     "inotify_add_watch inotify_rm_watch fadvise64 capget memfd_create"},
    {"@file",
     "mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat symlink "
     "symlinkat chmod fchmod fchmodat chown fchown fchownat lchown truncate ftruncate fsync "
     "fdatasync sync syncfs sync_file_range fallocate utimensat futimesat utime utimes flock "
     "copy_file_range sendfile splice tee fsetxattr fgetxattr getxattr lgetxattr listxattr "
     "flistxattr creat"},
    {"@net",
     "socket socketpair bind listen accept accept4 connect getsockname getpeername setsockopt "
     "getsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown"},
    {"@aio", "io_setup io_destroy io_submit io_getevents io_pgetevents io_cancel io_uring_setup "
	     "io_uring_enter io_uring_register"},
    {"@proc", "fork vfork setns unshare"},
    {"@ids", "setuid setgid setgroups setresuid setresgid setreuid setregid setfsuid setfsgid "
	     "capset"},
};

bool vmk_world_syscall_allowed(const struct vmk_world_def *def, int nr)
{
	int lo = 0, hi = def->nsyscalls - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (def->syscalls[mid] == nr)
			return true;
		if (def->syscalls[mid] < nr)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

static int add_nr(struct vmk_world_def *def, int nr)
{
	int i;

	if (vmk_world_syscall_allowed(def, nr))
		return 0;
	if (def->nsyscalls == VMK_WORLD_SYSCALLS)
		return KB_ETOOBIG;
	for (i = def->nsyscalls; i > 0 && def->syscalls[i - 1] > nr; i--)
		def->syscalls[i] = def->syscalls[i - 1];
	def->syscalls[i] = nr;
	def->nsyscalls++;
	return 0;
}

static int add_name(struct vmk_world_def *def, const char *name, bool in_group,
		    struct kb_errmsg *err)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR || nr < 0) {
		/* a group may name calls this architecture lacks; a name given alone may not */
		if (in_group)
			return 0;
		kb_errmsg_setf(err, "unknown system call \"%.40s\"", name);
		return KB_ECONFIG;
	}
	if (add_nr(def, nr) < 0) {
		kb_errmsg_setf(err, "more than %d system calls", VMK_WORLD_SYSCALLS);
		return KB_ETOOBIG;
	}
	return 0;
}

int vmk_world_syscalls_add(struct vmk_world_def *def, const char *token, struct kb_errmsg *err)
{
	if (token[0] != '@')
		return add_name(def, token, false, err);
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		const char *p = groups[g].calls;
		if (strcmp(token, groups[g].name) != 0)
			continue;
		while (*p) {
			char name[64];
			size_t n = strcspn(p, " ");
			int rv;
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			memcpy(name, p, n);
			name[n] = '\0';
			rv = add_name(def, name, true, err);
			if (rv < 0)
				return rv;
			p += n;
			while (*p == ' ')
				p++;
		}
		return 0;
	}
	kb_errmsg_setf(err, "unknown system call group \"%.40s\" (@basic @file @net @aio @proc)",
		       token);
	return KB_ECONFIG;
}

int vmk_world_filter_build(const struct vmk_world_def *def, struct sock_fprog **out,
			   struct kb_errmsg *err)
{
	uint32_t deflt =
	    def->seccomp == VMK_WORLD_SECCOMP_ERRNO ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS;
	struct sock_fprog *prog = NULL;
	scmp_filter_ctx ctx;
	int rv, fd = -1;
	off_t len;

	*out = NULL;
	if (def->seccomp == VMK_WORLD_SECCOMP_OFF)
		return 0;
	ctx = seccomp_init(deflt);
	if (ctx == NULL) {
		kb_errmsg_setf(err, "world %s: seccomp_init failed", def->name);
		return -ENOMEM;
	}
	/* the child sets PR_SET_NO_NEW_PRIVS itself, before the filter */
	rv = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	for (int i = 0; rv == 0 && i < def->nsyscalls; i++)
		rv = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, def->syscalls[i], 0);
	if (rv < 0) {
		kb_errmsg_setf(err, "world %s: building its filter: %s", def->name,
			       kb_strerror(rv));
		goto out;
	}
	fd = memfd_create("world-filter", MFD_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "world %s: memfd: %s", def->name, kb_strerror(rv));
		goto out;
	}
	rv = seccomp_export_bpf(ctx, fd);
	if (rv < 0) {
		kb_errmsg_setf(err, "world %s: exporting its filter: %s", def->name,
			       kb_strerror(rv));
		goto out;
	}
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0 || len > (1 << 20)) {
		kb_errmsg_setf(err, "world %s: exported filter has %lld bytes", def->name,
			       (long long)len);
		rv = KB_EPROTO;
		goto out;
	}
	prog = kb_malloc(sizeof(*prog) + (size_t)len);
	if (prog == NULL) {
		rv = -ENOMEM;
		kb_errmsg_setf(err, "world %s: out of memory", def->name);
		goto out;
	}
	prog->filter = (struct sock_filter *)(prog + 1);
	prog->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	if (pread(fd, prog->filter, (size_t)len, 0) != len) {
		rv = -EIO;
		kb_errmsg_setf(err, "world %s: reading its filter back", def->name);
		kb_free(prog);
		prog = NULL;
		goto out;
	}
	*out = prog;
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return rv;
}

void vmk_world_filter_free(struct sock_fprog *prog)
{
	kb_free(prog);
}
