/*
 * User worlds (kernel/world): the host's service daemons (hostd, clusterd, the SNMP
 * subagent, the syslog forwarder, ...) started and supervised by vmkernel, each confined
 * the same way: its own cgroup with CPU and memory limits, only the capabilities it keeps,
 * no new privileges, a seccomp allow-list of system calls, an optional private mount
 * namespace, and stdout/stderr appended to <state dir>/<name>.log.
 *
 * Happy path: vmkernel parses the definitions (conf.c: a worlds.conf file, or the built-in
 * "default" set), compiles each world's seccomp filter (filter.c), and once it is ready
 * starts the supervisor (supervise.c), which starts every world in file order on its own
 * thread and watches each through a pidfd. A world that dies (a signal, or a non-zero exit)
 * is restarted after a back-off (backoff.c: 1 s doubling to 60 s, back to 1 s after a
 * minute of stable running), with a log line and the world's last event for each start,
 * exit and restart. A world that exits 0 by itself stays down (unless it asks for
 * `restart = always`). A world dies with vmkernel, also when vmkernel is killed. At vmkernel's exit the
 * worlds stop in reverse order: SIGTERM, then SIGKILL after the grace time.
 *
 * Failure modes: a definition that does not parse is refused whole with KB_ECONFIG and a
 * message naming the file, line and problem; a world that cannot be started (exec fails,
 * its cgroup cannot be made) counts as a crash and is retried with back-off; a world that
 * makes a system call outside its list is killed by the kernel (SIGSYS) and restarted.
 * Without usable cgroups the worlds run unconfined in CPU and memory, with a warning.
 *
 * The file format, the syscall groups and the confinement steps are in docs/worlds.md.
 */
#ifndef VMK_WORLD_WORLD_H
#define VMK_WORLD_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "lib/log.h"

#define VMK_WORLD_MAX	   16  /* worlds in one definition set */
#define VMK_WORLD_NAME_MAX 32  /* including the NUL: [A-Za-z0-9][A-Za-z0-9_-]{0,30} */
#define VMK_WORLD_ARGV_MAX 24  /* arguments, the program included */
#define VMK_WORLD_PATHS	   8   /* read-only paths */
#define VMK_WORLD_SYSCALLS 400 /* names in one allow-list, groups expanded */

/* What a world does with a system call outside its list. */
enum vmk_world_seccomp {
	VMK_WORLD_SECCOMP_KILL = 0, /* default: the kernel kills the process (SIGSYS) */
	VMK_WORLD_SECCOMP_ERRNO,    /* the call fails with EPERM */
	VMK_WORLD_SECCOMP_OFF,	    /* no filter (debugging only) */
};

/* One world's definition, as parsed (strings owned by the struct, freed with
 * vmk_world_defs_free()). */
struct vmk_world_def {
	char name[VMK_WORLD_NAME_MAX];
	int argc;
	char *argv[VMK_WORLD_ARGV_MAX + 1]; /* NULL-terminated, {dir} and {bin} substituted */
	uint32_t cpu_limit_mhz;		    /* 0: unlimited */
	uint32_t mem_limit_mib;		    /* 0: unlimited */
	uint64_t caps;			    /* capabilities kept (bit = CAP_*) */
	enum vmk_world_seccomp seccomp;
	int nsyscalls; /* allowed system call numbers, groups expanded, sorted, unique */
	int syscalls[VMK_WORLD_SYSCALLS];
	bool private_tmp;		  /* own mount namespace with a tmpfs on /tmp */
	int nro;			  /* read-only paths (own mount namespace) */
	char *read_only[VMK_WORLD_PATHS]; /* owned */
	int nbind;			  /* paths kept visible under a private /tmp */
	char *bind[VMK_WORLD_PATHS];	  /* owned; directories or files */
	uint32_t stop_grace_ms;		  /* SIGTERM to SIGKILL, default 5000 */
	bool restart_always;		  /* an exit 0 of its own is restarted too */
};

struct vmk_world_defs {
	int n;
	struct vmk_world_def w[VMK_WORLD_MAX];
};

/* ---- definitions (conf.c) ---------------------------------------------------------------- */

/* Parses a worlds.conf text (size bytes, need not be NUL-terminated) into defs, with
 * "{dir}" replaced by state_dir and "{bin}" by bin_dir in every argument and path. where
 * names the source in messages. 0, or KB_ECONFIG with err naming the line (defs left
 * empty), -ENOMEM. The caller frees defs with vmk_world_defs_free() on success. */
int vmk_world_defs_parse(const char *text, size_t size, const char *where, const char *state_dir,
			 const char *bin_dir, struct vmk_world_defs *defs, struct kb_errmsg *err);
/* Reads and parses file path; "default" means the built-in set (vmk_world_default_conf).
 * 0, KB_ECONFIG, -ENOMEM or -errno (the file cannot be read), with err set. */
int vmk_world_defs_load(const char *path, const char *state_dir, const char *bin_dir,
			struct vmk_world_defs *defs, struct kb_errmsg *err);
void vmk_world_defs_free(struct vmk_world_defs *defs);
/* The built-in definitions (text in worlds.conf format). Static. */
const char *vmk_world_default_conf(void);

/* Whether name is a valid world name. */
bool vmk_world_name_valid(const char *name);
/* The capability named name ("net_admin" or "CAP_NET_ADMIN", any case): its number, or
 * -EINVAL. */
int vmk_world_cap_parse(const char *name);
/* The name of capability number cap ("net_admin"), or NULL. Static. */
const char *vmk_world_cap_name(int cap);
/* Adds the system calls of token (a name like "read", or a group like "@net") to def's
 * list, keeping it sorted and unique. 0, KB_ECONFIG (unknown name or group; err says
 * which) or KB_ETOOBIG (the list is full). */
int vmk_world_syscalls_add(struct vmk_world_def *def, const char *token, struct kb_errmsg *err);
/* Whether def's list allows system call number nr. */
bool vmk_world_syscall_allowed(const struct vmk_world_def *def, int nr);

/* ---- back-off (backoff.c) ----------------------------------------------------------------- */

struct vmk_world_backoff {
	uint64_t min_ms;    /* first delay, default 1000 */
	uint64_t max_ms;    /* cap, default 60000 */
	uint64_t stable_ms; /* a run this long forgets earlier crashes, default 60000 */
};
#define VMK_WORLD_BACKOFF_DEFAULT  \
	{                          \
		1000, 60000, 60000 \
	}

/* The delay before restart number `failures` (1 for the first crash of a series):
 * min_ms doubled failures-1 times, at most max_ms. 0 for failures 0. */
uint64_t vmk_world_backoff_delay(const struct vmk_world_backoff *b, unsigned failures);
/* The crash count after a run of ran_ms that ended in a crash: 1 if the run was stable
 * (at least stable_ms), else failures + 1. */
unsigned vmk_world_backoff_next(const struct vmk_world_backoff *b, unsigned failures,
				uint64_t ran_ms);

/* ---- seccomp filters (filter.c) ----------------------------------------------------------- */

struct sock_fprog;
/* Compiles def's allow-list with libseccomp into a classic BPF program for
 * prctl(PR_SET_SECCOMP) in the child (which may not allocate). *out: caller frees with
 * vmk_world_filter_free(). 0 (a NULL *out when def->seccomp is OFF), -ENOMEM or -errno
 * from libseccomp, with err set. Any thread. */
int vmk_world_filter_build(const struct vmk_world_def *def, struct sock_fprog **out,
			   struct kb_errmsg *err);
void vmk_world_filter_free(struct sock_fprog *prog);

/* ---- the supervisor (supervise.c, spawn.c) ------------------------------------------------ */

struct vmk_res;
struct vmk_worlds;

/* One world's state as vmk_worlds_list() reports it. */
struct vmk_world_status {
	char name[VMK_WORLD_NAME_MAX];
	char state[16]; /* starting, running, backoff, stopping, stopped, exited */
	pid_t pid;	/* 0 when not running */
	unsigned restarts;
	uint64_t uptime_ms;  /* of the running process */
	uint64_t backoff_ms; /* until the next start, in state backoff */
	uint64_t cpu_ns;     /* from its cgroup (0 without one) */
	uint64_t mem_bytes;
	char cgroup[256];    /* the memory group's directory, or "" */
	char last_exit[128]; /* "exit 3", "signal 9 (Killed)", or "" */
	char last_event[256];
	char argv0[256];
	uint64_t caps;
	int nsyscalls;
	enum vmk_world_seccomp seccomp;
	bool private_mounts;
};

struct vmk_worlds_config {
	const char *state_dir; /* the host's state dir (logs go there) */
	uint64_t host_id;      /* names the cgroup parent keel/host-<id>/worlds */
	struct kb_logger *log; /* borrowed */
	struct vmk_world_backoff backoff;
	const char *cgroup_root; /* NULL: /sys/fs/cgroup */
};

/* Takes ownership of defs (its contents; *defs is left empty) on success: compiles the
 * filters, sets up the worlds' cgroup parent and starts the supervisor thread, which starts
 * every world. 0, or -ENOMEM / -errno / KB_ECONFIG with err set (nothing started). Called
 * once, from the main thread. */
int vmk_worlds_start(const struct vmk_worlds_config *cfg, struct vmk_world_defs *defs,
		     struct vmk_worlds **out, struct kb_errmsg *err);
/* Stops every world in reverse order (SIGTERM, then SIGKILL after its grace time), ends
 * the thread and frees w. NULL is ignored. Main thread. */
void vmk_worlds_stop(struct vmk_worlds *w);
/* A snapshot of every world. *out: caller frees with kb_free(). 0 or -ENOMEM. Any thread. */
int vmk_worlds_list(struct vmk_worlds *w, struct vmk_world_status **out, size_t *n);
/* Restarts world name now (a running one gets SIGTERM first; one waiting in back-off or
 * stopped starts at once). 0, KB_ENOTFOUND, KB_ESTATE (vmkernel is stopping). Any thread. */
int vmk_worlds_restart(struct vmk_worlds *w, const char *name, struct kb_errmsg *err);

/* The process-wide supervisor that the control requests use (NULL when worlds are off).
 * set_current waits until no request uses the previous one: call it with NULL before
 * vmk_worlds_stop(). acquire returns it (maybe NULL) and must be paired with release; the
 * supervisor is not stopped in between. Any thread. */
void vmk_worlds_set_current(struct vmk_worlds *w);
struct vmk_worlds *vmk_worlds_acquire(void);
void vmk_worlds_release(void);

/* spawn.c: forks the world's process: a new session, output to logfd, its cgroup joined
 * (attach is called in the parent before the child continues), then confinement and exec.
 * 0 and *pid / *pidfd, or -errno with err set (an exec failure shows as exit 127). */
int vmk__world_start(const struct vmk_world_def *def, const struct sock_fprog *filter,
		     const char *state_dir, int logfd,
		     int (*attach)(void *arg, pid_t pid, struct kb_errmsg *err), void *arg,
		     pid_t *pid, int *pidfd, struct kb_errmsg *err);

#endif
