/*
 * The user-world supervisor: one thread that starts the worlds, watches their pidfds,
 * restarts crashed ones after their back-off, serves restart requests and, at vmkernel's
 * exit, stops them in reverse order.
 *
 * A world's life: starting (forked, being confined) -> running; on its exit: a requested
 * stop or restart ends in stopped (and starts again at once for a restart); an exit 0 of
 * its own ends in exited (not restarted; with restart = always it goes to backoff like a
 * crash); anything else is a crash: backoff, then a new start. Every start, exit and restart is one log line in vmkernel's log and the world's
 * last_event.
 *
 * Cgroups: a vmk_res of its own with the parent keel/host-<id>/worlds, one group per world
 * named after it (memory limit, CPU quota), made before each start and the child placed in
 * it before it execs. Groups stay after the world stops (vmkernel's VMs do the same), so a
 * restarted world keeps its limits; they are re-written at every start.
 *
 * Locking: w->lock guards the worlds' fields; the thread drops it while it polls or waits
 * for a world to stop, so list and restart requests never wait for a world.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/filter.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/res/res.h"
#include "kernel/world/world.h"
#include "lib/heap.h"
#include "lib/time.h"

enum wstate { W_STARTING, W_RUNNING, W_BACKOFF, W_STOPPING, W_STOPPED, W_EXITED };

static const char *const state_names[] = {"starting", "running", "backoff",
					  "stopping", "stopped", "exited"};

struct world {
	struct vmk_world_def def;
	struct sock_fprog *filter;
	enum wstate st;
	pid_t pid;
	int pidfd;
	uint64_t started_ns;
	uint64_t next_start_ns; /* W_BACKOFF */
	unsigned restarts, failures;
	bool restart_req, stop_req, has_group;
	char last_exit[128], last_event[256];
};

struct vmk_worlds {
	pthread_mutex_t lock;
	pthread_t thread;
	int wake_fd;
	bool stopping;
	char state_dir[PATH_MAX];
	struct kb_logger *log;
	struct vmk_world_backoff backoff;
	struct vmk_res res;
	bool res_ok;
	int n;
	struct world w[VMK_WORLD_MAX];
};

/* The supervisor the control requests see; the lock keeps it alive while one uses it. */
static struct vmk_worlds *current;
static pthread_rwlock_t current_lock = PTHREAD_RWLOCK_INITIALIZER;

void vmk_worlds_set_current(struct vmk_worlds *w)
{
	pthread_rwlock_wrlock(&current_lock);
	current = w;
	pthread_rwlock_unlock(&current_lock);
}

struct vmk_worlds *vmk_worlds_acquire(void)
{
	pthread_rwlock_rdlock(&current_lock);
	return current;
}

void vmk_worlds_release(void)
{
	pthread_rwlock_unlock(&current_lock);
}

static void wake(struct vmk_worlds *w)
{
	uint64_t one = 1;
	if (write(w->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread wakes anyway */
	}
}

/* Sets the world's last event and logs it. Called with w->lock held. */
__attribute__((format(printf, 4, 5))) static void event(struct vmk_worlds *w, struct world *x,
							int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->last_event, sizeof(x->last_event), fmt, ap);
	va_end(ap);
	kb_log(w->log, level, "world %s: %s", x->def.name, x->last_event);
}

struct attach_arg {
	struct vmk_worlds *w;
	struct world *x;
};

static int attach_group(void *arg, pid_t pid, struct kb_errmsg *err)
{
	struct attach_arg *a = arg;

	if (!a->x->has_group)
		return 0;
	return vmk_res_vm_attach(&a->w->res, a->x->def.name, pid, err);
}

/* Makes or updates the world's group. Without cgroups the world runs unlimited. */
static int make_group(struct vmk_worlds *w, struct world *x, struct kb_errmsg *err)
{
	const struct vmk_res_capacity *cap = vmk_res_host_capacity(&w->res);
	struct vmk_res_settings s = {0};
	uint32_t mem = x->def.mem_limit_mib;

	x->has_group = false;
	if (!w->res_ok || w->res.mode == VMK_RES_CGROUP_NONE)
		return 0;
	s.shares_level = VMK_RES_SHARES_NORMAL;
	s.cpu_limit_mhz = x->def.cpu_limit_mhz;
	s.mem_limit_mib = mem;
	if (mem == 0)
		mem = cap->mem_total_mib ? (uint32_t)cap->mem_total_mib : 1u << 20;
	int rv = vmk_res_vm_create(&w->res, x->def.name, &s, mem, cap->cpus ? cap->cpus : 1, err);
	if (rv == 0)
		x->has_group = true;
	return rv;
}

/* Starts world x. Called with w->lock held (fork is quick). */
static void start(struct vmk_worlds *w, struct world *x, const char *why)
{
	struct attach_arg a = {w, x};
	struct kb_errmsg err = {{0}};
	char log_path[PATH_MAX + 64];
	int logfd, rv;

	x->st = W_STARTING;
	snprintf(log_path, sizeof(log_path), "%s/%s.log", w->state_dir, x->def.name);
	logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0) {
		rv = -errno;
		kb_errmsg_setf(&err, "opening %s: %s", log_path, kb_strerror(rv));
		goto failed;
	}
	rv = make_group(w, x, &err);
	if (rv < 0) {
		close(logfd);
		kb_errmsg_wrapf(&err, "its cgroup");
		goto failed;
	}
	rv = vmk__world_start(&x->def, x->filter, w->state_dir, logfd, attach_group, &a, &x->pid,
			      &x->pidfd, &err);
	close(logfd);
	if (rv < 0)
		goto failed;
	x->st = W_RUNNING;
	x->started_ns = kb_now_ns();
	event(w, x, KB_LOG_INFO, "%s (pid %d%s)", why, (int)x->pid,
	      x->has_group ? ", in its cgroup" : ", no cgroup");
	return;
failed:
	x->failures = vmk_world_backoff_next(&w->backoff, x->failures, 0);
	x->st = W_BACKOFF;
	uint64_t d = vmk_world_backoff_delay(&w->backoff, x->failures);
	x->next_start_ns = kb_now_ns() + d * KB_NSEC_PER_MSEC;
	event(w, x, KB_LOG_ERROR, "cannot start: %s; next try in %" PRIu64 " ms", err.msg, d);
}

static void describe_exit(const siginfo_t *si, char *out, size_t size)
{
	if (si->si_code == CLD_EXITED) {
		static const char *const why[] = {"the parent gave up", "mount setup failed",
						  "capabilities could not be dropped",
						  "no_new_privs failed", "seccomp filter refused"};
		int c = si->si_status;
		if (c >= 120 && c <= 124)
			snprintf(out, size, "exit %d (%s)", c, why[c - 120]);
		else if (c == 127)
			snprintf(out, size, "exit 127 (exec failed)");
		else
			snprintf(out, size, "exit %d", c);
	} else {
		snprintf(out, size, "signal %d (%s)%s", si->si_status, strsignal(si->si_status),
			 si->si_status == SIGSYS ? ": a system call outside its seccomp list" : "");
	}
}

/* World x's process has exited: reap it and decide what comes next. Lock held. */
static void on_exit_(struct vmk_worlds *w, struct world *x)
{
	siginfo_t si;
	uint64_t ran_ms;

	memset(&si, 0, sizeof(si));
	/* what the world left behind in its process group goes with it (the unreaped leader
	 * still holds the group id) */
	kill(-x->pid, SIGKILL);
	if (waitid(P_PID, (id_t)x->pid, &si, WEXITED | WNOHANG) < 0) {
		/* reaped by someone else: the pidfd says it is gone, the status is lost */
		snprintf(x->last_exit, sizeof(x->last_exit), "gone (status unknown)");
		si.si_code = CLD_KILLED;
	} else if (si.si_pid == 0) {
		return; /* not yet reapable */
	} else {
		describe_exit(&si, x->last_exit, sizeof(x->last_exit));
	}
	close(x->pidfd);
	x->pidfd = -1;
	ran_ms = (kb_now_ns() - x->started_ns) / KB_NSEC_PER_MSEC;
	x->pid = 0;
	if (x->stop_req || w->stopping) {
		x->stop_req = false;
		x->st = W_STOPPED;
		event(w, x, KB_LOG_INFO, "stopped on request (%s)", x->last_exit);
		return;
	}
	if (x->restart_req) {
		x->restart_req = false;
		x->restarts++;
		x->failures = 0;
		event(w, x, KB_LOG_INFO, "exited for a restart (%s)", x->last_exit);
		start(w, x, "restarted on request");
		return;
	}
	if (si.si_code == CLD_EXITED && si.si_status == 0 && !x->def.restart_always) {
		x->st = W_EXITED;
		event(w, x, KB_LOG_WARN, "exited 0 after %" PRIu64 " ms; not restarted", ran_ms);
		return;
	}
	x->failures = vmk_world_backoff_next(&w->backoff, x->failures, ran_ms);
	uint64_t d = vmk_world_backoff_delay(&w->backoff, x->failures);
	x->st = W_BACKOFF;
	x->next_start_ns = kb_now_ns() + d * KB_NSEC_PER_MSEC;
	if (si.si_code == CLD_EXITED && si.si_status == 0)
		event(w, x, KB_LOG_WARN,
		      "exited 0 after %" PRIu64 " ms; restart in %" PRIu64 " ms (restart = always)",
		      ran_ms, d);
	else
		event(w, x, KB_LOG_ERROR,
		      "crashed: %s after %" PRIu64 " ms; restart in %" PRIu64 " ms", x->last_exit,
		      ran_ms, d);
}

/* Stops x (SIGTERM, then SIGKILL after its grace time). Lock held; dropped while waiting. */
static void stop_one(struct vmk_worlds *w, struct world *x)
{
	uint64_t deadline;
	bool killed = false;

	if (x->st != W_RUNNING && x->st != W_STOPPING) {
		if (x->st == W_BACKOFF)
			x->st = W_STOPPED;
		return;
	}
	x->stop_req = true;
	x->st = W_STOPPING;
	kill(-x->pid, SIGTERM); /* its process group: the world is a session leader */
	deadline = kb_now_ns() + (uint64_t)x->def.stop_grace_ms * KB_NSEC_PER_MSEC;
	while (x->pidfd >= 0) {
		struct pollfd p = {.fd = x->pidfd, .events = POLLIN};
		uint64_t now = kb_now_ns();
		int left = killed	    ? -1
			   : now < deadline ? (int)((deadline - now) / KB_NSEC_PER_MSEC) + 1
					    : 0;

		pthread_mutex_unlock(&w->lock);
		int r = poll(&p, 1, left);
		pthread_mutex_lock(&w->lock);
		if (r == 0) {
			kb_log(w->log, KB_LOG_WARN,
			       "world %s: no exit %" PRIu32 " ms after SIGTERM: "
			       "SIGKILL",
			       x->def.name, x->def.stop_grace_ms);
			kill(-x->pid, SIGKILL);
			killed = true;
			continue;
		}
		if (r > 0)
			on_exit_(w, x);
	}
}

static void *thread_main(void *arg)
{
	struct vmk_worlds *w = arg;
	struct pollfd pfd[VMK_WORLD_MAX + 1];
	struct world *who[VMK_WORLD_MAX + 1];

	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < w->n; i++)
		start(w, &w->w[i], "started");
	while (!w->stopping) {
		int np = 1, timeout = -1;
		uint64_t now = kb_now_ns();

		pfd[0] = (struct pollfd){.fd = w->wake_fd, .events = POLLIN};
		for (int i = 0; i < w->n; i++) {
			struct world *x = &w->w[i];
			if (x->pidfd >= 0) {
				pfd[np] = (struct pollfd){.fd = x->pidfd, .events = POLLIN};
				who[np++] = x;
			} else if (x->st == W_BACKOFF) {
				uint64_t ms = x->next_start_ns > now
						  ? (x->next_start_ns - now) / KB_NSEC_PER_MSEC + 1
						  : 0;
				if (timeout < 0 || ms < (uint64_t)timeout)
					timeout = (int)ms;
			}
		}
		pthread_mutex_unlock(&w->lock);
		int r = poll(pfd, (nfds_t)np, timeout);
		pthread_mutex_lock(&w->lock);
		if (r < 0 && errno != EINTR)
			kb_log(w->log, KB_LOG_ERROR, "worlds: poll: %s", strerror(errno));
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			uint64_t v;
			if (read(w->wake_fd, &v, sizeof(v)) < 0) {
				/* nothing pending after all */
			}
		}
		for (int i = 1; r > 0 && i < np; i++)
			if (pfd[i].revents && who[i]->pidfd >= 0)
				on_exit_(w, who[i]);
		if (w->stopping)
			break;
		now = kb_now_ns();
		for (int i = 0; i < w->n; i++) {
			struct world *x = &w->w[i];
			if (x->restart_req && x->st == W_RUNNING) {
				x->st = W_STOPPING;
				kill(-x->pid, SIGTERM);
				event(w, x, KB_LOG_INFO, "restart requested: SIGTERM to pid %d",
				      (int)x->pid);
			} else if (x->restart_req && x->pidfd < 0) {
				x->restart_req = false;
				x->restarts++;
				x->failures = 0;
				start(w, x, "restarted on request");
			} else if (x->st == W_BACKOFF && x->next_start_ns <= now) {
				x->restarts++;
				char why[64];
				snprintf(why, sizeof(why), "restarted after %s (restart %u)",
					 strcmp(x->last_exit, "exit 0") == 0 ? "its exit"
									     : "a crash",
					 x->restarts);
				start(w, x, why);
			}
		}
	}
	for (int i = w->n - 1; i >= 0; i--)
		stop_one(w, &w->w[i]);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int res_setup(struct vmk_worlds *w, const struct vmk_worlds_config *cfg)
{
	struct vmk_res_config rc;
	struct kb_errmsg err = {{0}};
	char parent[64];
	int rv;

	vmk_res_config_init(&rc);
	rc.log = cfg->log;
	rc.mem_overhead_mib = 0;
	if (cfg->cgroup_root)
		rc.cgroup_root = cfg->cgroup_root;
	snprintf(parent, sizeof(parent), "keel/host-%016" PRIx64 "/worlds", cfg->host_id);
	rc.parent = parent;
	rv = vmk_res_init(&w->res, &rc, &err);
	if (rv < 0) {
		kb_log(cfg->log, KB_LOG_WARN,
		       "worlds: cgroups unusable (%s): no CPU or memory "
		       "limits",
		       err.msg);
		rc.mode = VMK_RES_CGROUP_NONE;
		err.msg[0] = '\0';
		rv = vmk_res_init(&w->res, &rc, &err);
	}
	w->res_ok = rv == 0;
	return 0;
}

int vmk_worlds_start(const struct vmk_worlds_config *cfg, struct vmk_world_defs *defs,
		     struct vmk_worlds **out, struct kb_errmsg *err)
{
	struct vmk_worlds *w;
	int rv, i;

	w = kb_calloc(1, sizeof(*w));
	if (w == NULL) {
		kb_errmsg_setf(err, "worlds: out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < defs->n; i++) {
		rv = vmk_world_filter_build(&defs->w[i], &w->w[i].filter, err);
		if (rv < 0)
			goto out_filters;
	}
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake_fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "worlds: eventfd: %s", kb_strerror(rv));
		goto out_filters;
	}
	pthread_mutex_init(&w->lock, NULL);
	snprintf(w->state_dir, sizeof(w->state_dir), "%s", cfg->state_dir);
	w->log = cfg->log;
	w->backoff = cfg->backoff;
	res_setup(w, cfg);
	w->n = defs->n;
	for (i = 0; i < defs->n; i++) {
		w->w[i].def = defs->w[i];
		w->w[i].pidfd = -1;
		w->w[i].st = W_STOPPED;
	}
	rv = pthread_create(&w->thread, NULL, thread_main, w);
	if (rv != 0) {
		rv = -rv;
		kb_errmsg_setf(err, "worlds: thread: %s", kb_strerror(rv));
		for (i = 0; i < defs->n; i++)
			memset(&w->w[i].def, 0, sizeof(w->w[i].def)); /* still the caller's */
		close(w->wake_fd);
		if (w->res_ok)
			vmk_res_close(&w->res);
		goto out_filters;
	}
	memset(defs, 0, sizeof(*defs)); /* the strings are ours now */
	kb_log(cfg->log, KB_LOG_INFO, "worlds: supervising %d user worlds (cgroups %s)", w->n,
	       w->res_ok ? vmk_res_cgroup_version(&w->res) : "none");
	*out = w;
	return 0;
out_filters:
	for (i = 0; i < VMK_WORLD_MAX; i++)
		vmk_world_filter_free(w->w[i].filter);
	kb_free(w);
	return rv;
}

void vmk_worlds_stop(struct vmk_worlds *w)
{
	struct vmk_world_defs defs;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_mutex_unlock(&w->lock);
	wake(w);
	pthread_join(w->thread, NULL);
	kb_log(w->log, KB_LOG_INFO, "worlds: all %d stopped", w->n);
	defs.n = w->n;
	for (int i = 0; i < w->n; i++) {
		defs.w[i] = w->w[i].def;
		vmk_world_filter_free(w->w[i].filter);
	}
	vmk_world_defs_free(&defs);
	if (w->res_ok)
		vmk_res_close(&w->res);
	close(w->wake_fd);
	pthread_mutex_destroy(&w->lock);
	kb_free(w);
}

int vmk_worlds_list(struct vmk_worlds *w, struct vmk_world_status **out, size_t *n)
{
	struct vmk_world_status *s;
	uint64_t now = kb_now_ns();

	s = kb_calloc((size_t)(w->n ? w->n : 1), sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < w->n; i++) {
		const struct world *x = &w->w[i];
		struct vmk_world_status *o = &s[i];

		snprintf(o->name, sizeof(o->name), "%s", x->def.name);
		snprintf(o->state, sizeof(o->state), "%s", state_names[x->st]);
		o->pid = x->pidfd >= 0 ? x->pid : 0;
		o->restarts = x->restarts;
		o->uptime_ms = x->pidfd >= 0 ? (now - x->started_ns) / KB_NSEC_PER_MSEC : 0;
		o->backoff_ms = x->st == W_BACKOFF && x->next_start_ns > now
				    ? (x->next_start_ns - now) / KB_NSEC_PER_MSEC
				    : 0;
		snprintf(o->last_exit, sizeof(o->last_exit), "%s", x->last_exit);
		snprintf(o->last_event, sizeof(o->last_event), "%s", x->last_event);
		snprintf(o->argv0, sizeof(o->argv0), "%s", x->def.argv[0] ? x->def.argv[0] : "");
		o->caps = x->def.caps;
		o->nsyscalls = x->def.nsyscalls;
		o->seccomp = x->def.seccomp;
		o->private_mounts = x->def.private_tmp || x->def.nro > 0;
		if (x->has_group) {
			vmk_res_vm_dir(&w->res, x->def.name, VMK_RES_MEMORY, o->cgroup,
				       sizeof(o->cgroup));
			vmk_res_vm_usage(&w->res, x->def.name, &o->cpu_ns, &o->mem_bytes, NULL);
		}
	}
	*n = (size_t)w->n;
	pthread_mutex_unlock(&w->lock);
	*out = s;
	return 0;
}

int vmk_worlds_restart(struct vmk_worlds *w, const char *name, struct kb_errmsg *err)
{
	int rv = KB_ENOTFOUND;

	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		rv = KB_ESTATE;
		kb_errmsg_setf(err, "vmkernel is stopping its worlds");
		goto out;
	}
	for (int i = 0; i < w->n; i++) {
		if (strcmp(w->w[i].def.name, name) != 0)
			continue;
		w->w[i].restart_req = true;
		kb_log(w->log, KB_LOG_INFO, "world %s: restart requested", name);
		rv = 0;
		break;
	}
	if (rv == KB_ENOTFOUND)
		kb_errmsg_setf(err, "no world named \"%.40s\"", name);
out:
	pthread_mutex_unlock(&w->lock);
	if (rv == 0)
		wake(w);
	return rv;
}
