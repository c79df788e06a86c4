/*
 * The lab supervisor, `keel lab supervise --dir DIR`: keeps the daemons of every lab host
 * that should be up running.
 *
 * `keel lab up` starts it in the background (a session of its own, output to DIR/lab.log)
 * and records its pid and start time. Every 100 ms it reaps its children, re-reads the
 * record, and for each host whose state is "up" checks each daemon the lab starts
 * (vmkernel alone when the lab's daemons are vmkernel's user worlds, which vmkernel
 * restarts itself; else every one of kc_lab_daemons[]): a daemon that is not running is
 * started in the host's namespace. A daemon that died is
 * restarted after a backoff (100 ms, doubled per quick death up to 5 s, back to 100 ms
 * once it ran for 10 s); each death and start is logged to DIR/lab.log with the reason.
 * The record is read again just before a restart, so a host that `host-kill` marked
 * killed before killing it is never brought back. Daemons already running when the
 * supervisor starts are adopted (found through /proc). The supervisor never writes the
 * record; it exits on SIGTERM, or when the record is gone (the lab was removed).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/time.h"
#include "mgmt-api/keel/lab.h"

#define TICK_NS	       (100 * 1000 * 1000ull)
#define BACKOFF_MIN_NS (100 * 1000 * 1000ull)
#define BACKOFF_MAX_NS (5000 * 1000 * 1000ull)
#define STABLE_NS      (10000 * 1000 * 1000ull)
#define MAX_DAEMONS    4

void kc_lab_log(const struct kc_lab *lab, const char *fmt, ...)
{
	char path[PATH_MAX], line[1024], when[64];
	va_list ap;
	int fd, n;

	snprintf(path, sizeof(path), "%s/lab.log", lab->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	kb_time_fmt(kb_wall_ns(), when, sizeof(when));
	n = snprintf(line, sizeof(line), "%s keel-lab[%d]: ", when, (int)getpid());
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	close(fd);
}

bool kc_lab_supervisor_alive(const struct kc_lab *lab)
{
	return lab->sup_pid > 0 && kc_lab_pid_start(lab->sup_pid) == lab->sup_start &&
	       kc_lab_cmdline_has(lab->sup_pid, "supervise", false) &&
	       kc_lab_cmdline_has(lab->sup_pid, lab->dir, false);
}

int kc_lab_supervisor_start(struct kc_lab *lab, struct kb_errmsg *err)
{
	char self[PATH_MAX], log[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	struct timespec ts = {0, 1000 * 1000};
	pid_t pid;

	if (n <= 0) {
		kb_errmsg_setf(err, "cannot find the keel binary: %s", strerror(errno));
		return -errno;
	}
	self[n] = '\0';
	snprintf(log, sizeof(log), "%s/lab.log", lab->dir);
	pid = fork();
	if (pid < 0) {
		int rc = -errno;

		kb_errmsg_setf(err, "fork: %s", kb_strerror(rc));
		return rc;
	}
	if (pid == 0) {
		char *argv[] = {self, "lab", "supervise", "--dir", lab->dir, NULL};
		int fd;

		setsid();
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		closefrom(3);
		execv(self, argv);
		_exit(127);
	}
	lab->sup_pid = pid;
	/* The start time is read once the child is visible in /proc. */
	for (int i = 0; i < 1000 && !(lab->sup_start = kc_lab_pid_start(pid)); i++)
		nanosleep(&ts, NULL);
	return 0;
}

struct sup_daemon {
	pid_t pid;
	uint64_t started_ns; /* when it was started or adopted */
	uint64_t retry_ns;   /* when a dead daemon may start again; 0: at once */
	uint64_t backoff_ns;
};

static struct sup_daemon state[KC_LAB_MAX_HOSTS + 1][MAX_DAEMONS];
static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void exit_reason(int status, char *out, size_t size)
{
	if (WIFEXITED(status))
		snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, size, "ended");
}

/* Reaps children; a daemon of ours that ended is logged and its slot cleared. */
static void reap(const struct kc_lab *lab, uint64_t now)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int k = 1; k <= lab->nhosts; k++) {
			for (int d = 0; d < kc_lab_ndaemons; d++) {
				struct sup_daemon *s = &state[k][d];
				char why[96];

				if (s->pid != pid)
					continue;
				exit_reason(status, why, sizeof(why));
				kc_lab_log(lab, "host%d: %s (pid %d) %s", k, kc_lab_daemons[d].name,
					   (int)pid, why);
				s->pid = 0;
				s->backoff_ns = now - s->started_ns > STABLE_NS || !s->backoff_ns
						    ? BACKOFF_MIN_NS
						    : s->backoff_ns * 2;
				if (s->backoff_ns > BACKOFF_MAX_NS)
					s->backoff_ns = BACKOFF_MAX_NS;
				s->retry_ns = now + s->backoff_ns;
			}
		}
	}
}

/* Checks one daemon of an "up" host; starts it when it is not running and may start. */
static void check(struct kc_lab *lab, int k, int d, uint64_t now)
{
	const struct kc_lab_daemon *dm = &kc_lab_daemons[d];
	struct sup_daemon *s = &state[k][d];
	struct kb_errmsg err = {{0}};
	struct kc_lab fresh;
	pid_t pid;

	if (s->pid > 0 && (kc_lab_pid_start(s->pid) || kill(s->pid, 0) == 0))
		return;	  /* running, or a zombie its parent is about to reap */
	if (s->pid > 0) { /* an adopted daemon (not our child) is gone */
		kc_lab_log(lab, "host%d: %s (pid %d) is gone", k, dm->name, (int)s->pid);
		s->pid = 0;
		s->backoff_ns = BACKOFF_MIN_NS;
		s->retry_ns = now + s->backoff_ns;
	}
	if (now < s->retry_ns)
		return;
	pid = kc_lab_daemon_pid(lab, k, dm->name);
	if (pid > 0) { /* started by someone else, or running since before we started */
		s->pid = pid;
		s->started_ns = now;
		return;
	}
	/* The host may have been killed on purpose since the last look. */
	if (kc_lab_load(lab->dir, &fresh, &err) || k > fresh.nhosts ||
	    fresh.hosts[k].state != KC_LAB_HOST_UP)
		return;
	pid = kc_lab_daemon_start(lab, k, dm, &err);
	if (pid < 0) {
		kc_lab_log(lab, "host%d: cannot start %s: %s", k, dm->name, err.msg);
		s->backoff_ns = s->backoff_ns ? s->backoff_ns * 2 : BACKOFF_MIN_NS;
		if (s->backoff_ns > BACKOFF_MAX_NS)
			s->backoff_ns = BACKOFF_MAX_NS;
		s->retry_ns = now + s->backoff_ns;
		return;
	}
	s->pid = pid;
	s->started_ns = now;
	kc_lab_log(lab, "host%d: %s started (pid %d)", k, dm->name, (int)pid);
}

static int supervise_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	struct kb_errmsg err = {{0}};
	static struct kc_lab lab;
	struct sigaction sa;
	char dir[PATH_MAX];
	int rc;

	rc = kc_lab_dir_arg(ctx, call, 1, dir, sizeof(dir));
	if (rc)
		return rc;
	rc = kc_lab_load(dir, &lab, &err);
	if (rc)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s", err.msg);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	kc_lab_log(&lab, "supervisor started (pid %d) for %d hosts", (int)getpid(), lab.nhosts);
	while (!stopping) {
		uint64_t now = kb_now_ns();

		reap(&lab, now);
		rc = kc_lab_load(dir, &lab, &err);
		if (rc == -ENOENT)
			break;
		if (rc == 0) {
			for (int k = 1; k <= lab.nhosts && !stopping; k++) {
				if (lab.hosts[k].state != KC_LAB_HOST_UP)
					continue;
				for (int d = 0;
				     d < kc_lab_ndaemons_started(&lab) && d < MAX_DAEMONS; d++)
					check(&lab, k, d, now);
			}
		}
		kb_sleep_ns(TICK_NS);
	}
	kc_lab_log(&lab, "supervisor stops; the hosts' daemons keep running");
	return KC_EXIT_OK;
}

static const struct kc_opt supervise_opts[] = {
    {"dir", "DIR", "the lab's directory (default " KC_LAB_DEFAULT_DIR ")", 1, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_lab_supervise_cmd = {
    .name = "supervise",
    .summary = "Run the lab supervisor in the foreground (keel lab up starts it).",
    .detail = "Starts the daemons of every host that is up and restarts any that dies,\n"
	      "with backoff; logs to DIR/lab.log. Hosts stopped with host-kill are left\n"
	      "alone. Ends on SIGTERM or when the lab is removed.\n",
    .opts = supervise_opts,
    .run = supervise_run,
};
