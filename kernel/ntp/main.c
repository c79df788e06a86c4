/*
 * vmntpd — keeps the host's time service in line with etc/keel/ntp.conf (docs/ntp.md).
 *
 * Start-up: state dir and lock (one vmntpd per state dir: an flock on DIR/vmntpd.lock),
 * the last configuration that worked (DIR/vmntpd.conf, so chrony follows the servers
 * before vmkernel answers), then the loop.
 *
 * The loop: every --poll-ms (2 s) it asks vmkernel (DIR/vmkernel.sock, proto/vmk.proto
 * cfg_get) for etc/keel/ntp.conf; a new generation that parses is applied:
 *   - where the host may set the clock (CAP_SYS_TIME, a system chronyd answering on
 *     /run/chrony/chronyd.sock, and no --private), mode "system" writes chrony's sources
 *     to /etc/chrony/sources.d/keel.sources and runs `chronyc reload sources`;
 *   - otherwise (mode "private", a lab host, no right to set the clock) it runs a private
 *     `chronyd -x -d -f DIR/ntp/chronyd.conf` as its child: it never touches the clock,
 *     its command socket, pid and drift files are in DIR/ntp (owned by _chrony, 0750). A
 *     new configuration restarts it; one that died is started again at the next tick.
 * Every second it reads `chronyc -n -c tracking` and `sources`, judges the state (synced,
 * starting, unreachable: no source answered for UNREACH_GRACE_MS, unsynchronised) and
 * rewrites DIR/vmntpd.status, which `keel host ntp show` and clusterd read. Every change of
 * state is an event (kept in the status file, the last EVENTS) and a log line.
 *
 * A file that does not parse, or a vmkernel that does not answer, leaves what is in force
 * as it is and says why; a removed ntp.conf stops the private chronyd (and removes
 * keel.sources in system mode). SIGTERM/SIGINT stop vmntpd and its private chronyd.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/ntp/ntp.h"
#include "lib/file.h"
#include "lib/frame.h"
#include "lib/log.h"
#include "lib/time.h"
#include "vmk.pb-c.h"

#define CACHE_FILE	 "vmntpd.conf"
#define REPLY_MAX	 (1u << 20)
#define EVENTS		 16
#define EVENT_MAX	 300
#define UNREACH_GRACE_MS 8000 /* no source answered this long after a start: unreachable */
#define TEST_OFFSET_MAX	 3600000

struct event {
	uint64_t time_ns;
	int level;
	char text[EVENT_MAX];
};

struct vmntpd {
	char state_dir[PATH_MAX];
	char vmk_socket[PATH_MAX];
	char ntp_dir[PATH_MAX];
	struct kb_logger *log;
	unsigned poll_ms;
	bool private_only;
	bool as_root;	  /* the private chronyd keeps root's ids (private_dir()) */
	bool warned_user; /* said once */
	int64_t test_offset_ms;

	bool have_conf;
	struct ntp_conf conf;
	uint64_t generation;
	char conf_error[KB_ERRMSG_SIZE];
	char vmk_error[KB_ERRMSG_SIZE];

	int mode; /* in force */
	char mode_reason[160];
	char chrony_socket[PATH_MAX];
	pid_t chronyd;
	uint64_t applied_ms; /* monotonic, when chrony got the servers */
	char apply_error[KB_ERRMSG_SIZE];

	const char *state;
	struct ntp_tracking tr;
	bool have_tr;
	struct ntp_source src[NTP_SOURCES_MAX];
	size_t n_src;
	char chrony_error[KB_ERRMSG_SIZE];

	struct event events[EVENTS];
	unsigned ev_head;
};

static struct vmntpd g;
static struct kb_logger logger;
static volatile sig_atomic_t stop_sig;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vmntpd --state-dir DIR [options]\n"
	    "Keeps chrony in line with the config store's etc/keel/ntp.conf\n"
	    "(`keel host ntp set`) and reports its state in DIR/vmntpd.status.\n"
	    "\n"
	    "  --state-dir DIR       the host's state dir: vmkernel's socket DIR/vmkernel.sock;\n"
	    "                        a private chronyd lives in DIR/ntp\n"
	    "  --private             never use the system's chronyd (lab hosts)\n"
	    "  --poll-ms MS          how often to ask for the configuration (default 2000)\n"
	    "  --test-offset-ms MS   test only: add MS to the clock offset reported\n"
	    "  --log-level LEVEL     error, warn, info (default), debug, trace (to stderr)\n"
	    "  -h, --help            this help\n");
}

static uint64_t mono_ms(void)
{
	return kb_now_ns() / 1000000;
}

static void event(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(int level, const char *fmt, ...)
{
	struct event *e = &g.events[g.ev_head++ % EVENTS];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	e->time_ns = kb_wall_ns();
	e->level = level;
	kb_log(g.log, level, "%s", e->text);
}

static void servers_text(const struct ntp_conf *c, char *out, size_t size)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < c->n_servers && n + 1 < size; i++) {
		char s[NTP_HOST_MAX + 16];

		ntp_server_fmt(&c->servers[i], s, sizeof(s));
		n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "", s);
	}
}

/* ---- the configuration from vmkernel ---------------------------------------------------- */

/* cfg_get of ntp.conf. 0 with text and *gen; KB_ENOTFOUND: no file; else err is set. */
static int fetch(struct kb_buf *text, uint64_t *gen, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet gq = KEEL__VMK__VMK_CFG_GET__INIT;
	Keel__Vmk__VmkReply *rp;
	struct pollfd p;
	struct kb_buf in;
	int fd, rv;

	gq.path = NTP_CONF_PATH;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
	req.cfg_get = &gq;
	fd = kb_unix_connect(g.vmk_socket);
	if (fd < 0) {
		kb_errmsg_setf(err, "cannot reach vmkernel at %s: %s", g.vmk_socket,
			       kb_strerror(fd));
		return fd;
	}
	kb_buf_init(&in, REPLY_MAX);
	rv = kb_frame_send_pb(fd, &req.base);
	p.fd = fd;
	p.events = POLLIN;
	if (rv == 0 && poll(&p, 1, 5000) <= 0)
		rv = KB_ETIMEOUT;
	if (rv == 0)
		rv = kb_frame_recv(fd, &in, REPLY_MAX);
	close(fd);
	if (rv) {
		kb_errmsg_setf(err, "asking vmkernel for %s: %s", NTP_CONF_PATH, kb_strerror(rv));
		goto out;
	}
	rp = keel__vmk__vmk_reply__unpack(NULL, in.len, in.data);
	if (rp == NULL) {
		rv = KB_EPROTO;
		kb_errmsg_setf(err, "vmkernel's reply does not decode");
		goto out;
	}
	rv = rp->code;
	if (rv == 0) {
		*gen = rp->n_cfg_files ? rp->cfg_files[0]->generation : 1;
		if (kb_buf_append(text, rp->cfg_data.data, rp->cfg_data.len) < 0)
			rv = -ENOMEM;
	} else if (rv != KB_ENOTFOUND) {
		kb_errmsg_setf(err, "vmkernel: %s", rp->error ? rp->error : "error");
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
out:
	kb_buf_close(&in);
	return rv;
}

/* ---- chrony ----------------------------------------------------------------------------- */

static bool may_set_clock(char *why, size_t size)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct caps[2] = {{0}};
	struct stat st;

	if (g.private_only) {
		snprintf(why, size, "vmntpd runs with --private");
		return false;
	}
	if (syscall(SYS_capget, &h, caps) != 0 || !(caps[0].effective & (1u << CAP_SYS_TIME))) {
		snprintf(why, size, "the host may not set the clock (no CAP_SYS_TIME)");
		return false;
	}
	if (stat(NTP_SYSTEM_SOCK, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(why, size, "no system chronyd answers at %s", NTP_SYSTEM_SOCK);
		return false;
	}
	why[0] = '\0';
	return true;
}

static void chronyd_stop(void)
{
	int status;

	if (g.chronyd <= 0)
		return;
	kill(g.chronyd, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(g.chronyd, &status, WNOHANG) == g.chronyd) {
			g.chronyd = 0;
			return;
		}
		kb_sleep_ns(20 * 1000000ull);
	}
	kill(g.chronyd, SIGKILL);
	waitpid(g.chronyd, &status, 0);
	g.chronyd = 0;
}

/* A chronyd left by an earlier vmntpd (its pid file in DIR/ntp) is ended. */
static void stale_chronyd_stop(void)
{
	char path[PATH_MAX + 32], cmd[PATH_MAX], conf[PATH_MAX + 32];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/chronyd.pid", g.ntp_dir);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 1)
		return;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	snprintf(conf, sizeof(conf), "%s/chronyd.conf", g.ntp_dir);
	f = fopen(path, "re");
	if (!f)
		return;
	size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	cmd[n] = '\0';
	if (strstr(cmd, "chronyd") && strstr(cmd, conf)) {
		kb_log(g.log, KB_LOG_INFO, "ending chronyd %d left by an earlier vmntpd", pid);
		kill(pid, SIGTERM);
		for (int i = 0; i < 50 && kill(pid, 0) == 0; i++)
			kb_sleep_ns(20 * 1000000ull);
	}
}

/* Whether user pw can reach dir (every directory above it searchable): a child takes its
 * ids and tries. chronyd opens its socket and files after dropping to _chrony. */
static bool reachable_as(const struct passwd *pw, const char *dir)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			_exit(2);
		_exit(access(dir, X_OK) == 0 ? 0 : 1);
	}
	if (pid < 0)
		return false;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* DIR/ntp, owned by the user chronyd runs as (it refuses a socket directory it does not
 * own), mode 0750. chronyd drops to _chrony; where _chrony cannot reach DIR/ntp (a state
 * dir of mode 0700) it keeps root's ids instead: with -x it still never sets the clock. */
static int private_dir(struct kb_errmsg *e)
{
	struct passwd *pw = getpwnam("_chrony");

	if (mkdir(g.ntp_dir, 0750) < 0 && errno != EEXIST) {
		kb_errmsg_setf(e, "%s: %s", g.ntp_dir, strerror(errno));
		return -errno;
	}
	g.as_root = false;
	if (getuid() == 0 && (!pw || !reachable_as(pw, g.state_dir))) {
		g.as_root = true;
		pw = NULL;
		if (chown(g.ntp_dir, 0, 0) < 0) {
			kb_errmsg_setf(e, "%s: chown root: %s", g.ntp_dir, strerror(errno));
			return -errno;
		}
		if (!g.warned_user)
			kb_log(g.log, KB_LOG_WARN,
			       "%s cannot be reached by user _chrony: the "
			       "private chronyd runs as root",
			       g.state_dir);
		g.warned_user = true;
	}
	if (pw && chown(g.ntp_dir, pw->pw_uid, pw->pw_gid) < 0) {
		kb_errmsg_setf(e, "%s: chown _chrony: %s", g.ntp_dir, strerror(errno));
		return -errno;
	}
	chmod(g.ntp_dir, 0750);
	return 0;
}

static int chronyd_start(struct kb_errmsg *e)
{
	char conf[PATH_MAX + 32], logp[PATH_MAX + 32];
	const char *user = g.as_root ? "root" : "_chrony";
	pid_t pid;
	int fd;

	snprintf(conf, sizeof(conf), "%s/chronyd.conf", g.ntp_dir);
	snprintf(logp, sizeof(logp), "%s/chronyd.log", g.ntp_dir);
	stale_chronyd_stop();
	fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		kb_errmsg_setf(e, "%s: %s", logp, strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int rv = -errno;

		close(fd);
		kb_errmsg_setf(e, "fork: %s", strerror(-rv));
		return rv;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		if (nul >= 0)
			dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execlp("chronyd", "chronyd", "-x", "-d", "-u", user, "-f", conf, (char *)NULL);
		dprintf(2, "vmntpd: cannot run chronyd: %s\n", strerror(errno));
		_exit(127);
	}
	close(fd);
	g.chronyd = pid;
	kb_log(g.log, KB_LOG_INFO, "private chronyd started (pid %d, %s)", (int)pid, conf);
	return 0;
}

/* Puts g.conf in force with chrony. */
static void apply(void)
{
	struct kb_errmsg e = {{0}};
	char why[160], servers[1024];
	struct kb_buf b;
	int mode, rv = 0;

	g.apply_error[0] = '\0';
	servers_text(&g.conf, servers, sizeof(servers));
	mode = g.conf.mode;
	why[0] = '\0';
	if (mode == NTP_MODE_SYSTEM && !may_set_clock(why, sizeof(why)))
		mode = NTP_MODE_PRIVATE;
	else if (g.conf.mode == NTP_MODE_PRIVATE)
		snprintf(why, sizeof(why), "the configuration asks for it");
	kb_buf_init(&b, 0);
	if (mode == NTP_MODE_SYSTEM) {
		const char *argv[] = {"reload", "sources", NULL};
		struct kb_buf out;

		chronyd_stop();
		rv = ntp_chrony_sources(&g.conf, &b);
		if (rv == 0)
			rv = kb_file_write_atomic(NTP_SYSTEM_SOURCES, b.data, b.len, 0644, &e);
		kb_buf_init(&out, 1u << 16);
		if (rv == 0 || rv == KB_ENOTSYNCED)
			rv = ntp_chronyc(NULL, argv, &out, &e);
		kb_buf_close(&out);
		snprintf(g.chrony_socket, sizeof(g.chrony_socket), "%s", NTP_SYSTEM_SOCK);
	} else {
		char conf[PATH_MAX + 32];

		chronyd_stop();
		snprintf(conf, sizeof(conf), "%s/chronyd.conf", g.ntp_dir);
		rv = private_dir(&e);
		if (rv == 0)
			rv = ntp_chrony_private_conf(&g.conf, g.ntp_dir, &b);
		if (rv == 0)
			rv = kb_file_write_atomic(conf, b.data, b.len, 0644, &e);
		if (rv == 0 || rv == KB_ENOTSYNCED)
			rv = chronyd_start(&e);
		snprintf(g.chrony_socket, sizeof(g.chrony_socket), "%s/%s", g.ntp_dir,
			 NTP_SOCK_NAME);
	}
	kb_buf_close(&b);
	g.mode = mode;
	snprintf(g.mode_reason, sizeof(g.mode_reason), "%s", why);
	g.applied_ms = mono_ms();
	g.state = "starting";
	if (rv && rv != KB_ENOTSYNCED) {
		snprintf(g.apply_error, sizeof(g.apply_error), "%s", e.msg);
		event(KB_LOG_ERROR, "ntp: cannot hand the servers %s to chrony: %s", servers,
		      e.msg);
	} else {
		event(KB_LOG_INFO, "ntp: servers %s in force (%s chronyd%s%s)", servers,
		      ntp_mode_name(mode), why[0] ? ": " : "", why);
	}
}

static void unapply(void)
{
	struct kb_buf out;
	const char *argv[] = {"reload", "sources", NULL};
	struct kb_errmsg e = {{0}};

	chronyd_stop();
	if (g.mode == NTP_MODE_SYSTEM && g.chrony_socket[0] && unlink(NTP_SYSTEM_SOURCES) == 0) {
		kb_buf_init(&out, 1u << 16);
		ntp_chronyc(NULL, argv, &out, &e);
		kb_buf_close(&out);
	}
	g.chrony_socket[0] = '\0';
	g.state = "no configuration";
	g.have_tr = false;
	g.n_src = 0;
	event(KB_LOG_INFO, "ntp: no servers configured; chrony left alone");
}

static bool same_conf(const struct ntp_conf *a, const struct ntp_conf *b)
{
	if (a->n_servers != b->n_servers || a->mode != b->mode || a->poll_set != b->poll_set ||
	    (a->poll_set && a->poll != b->poll))
		return false;
	for (size_t i = 0; i < a->n_servers; i++)
		if (strcmp(a->servers[i].host, b->servers[i].host) != 0 ||
		    a->servers[i].port != b->servers[i].port)
			return false;
	return true;
}

static void conf_text(const void *text, size_t len, uint64_t gen, bool from_cache)
{
	struct kb_errmsg e = {{0}};
	struct ntp_conf c;
	char path[PATH_MAX + 32];

	g.generation = gen;
	if (ntp_conf_parse(text, len, &c, &e)) {
		if (strcmp(g.conf_error, e.msg) != 0)
			event(KB_LOG_ERROR, "ntp: %s%s refused: %s; %s",
			      from_cache ? "the saved " : "", NTP_CONF_PATH, e.msg,
			      g.have_conf ? "the configuration in force stays"
					  : "nothing in force");
		snprintf(g.conf_error, sizeof(g.conf_error), "%s", e.msg);
		return;
	}
	g.conf_error[0] = '\0';
	if (!from_cache) {
		snprintf(path, sizeof(path), "%s/%s", g.state_dir, CACHE_FILE);
		kb_file_write_atomic(path, text, len, 0600, &e);
	}
	if (g.have_conf && same_conf(&c, &g.conf) && !g.apply_error[0])
		return;
	g.conf = c;
	g.have_conf = true;
	apply();
}

static void poll_conf(void)
{
	struct kb_errmsg e = {{0}};
	struct kb_buf text;
	uint64_t gen = 0;
	int rv;

	kb_buf_init(&text, NTP_CONF_MAX + 1);
	rv = fetch(&text, &gen, &e);
	if (rv == 0) {
		g.vmk_error[0] = '\0';
		if (gen != g.generation || g.apply_error[0])
			conf_text(text.data, text.len, gen, false);
	} else if (rv == KB_ENOTFOUND) {
		g.vmk_error[0] = '\0';
		if (g.have_conf) {
			char path[PATH_MAX + 32];

			snprintf(path, sizeof(path), "%s/%s", g.state_dir, CACHE_FILE);
			unlink(path);
			g.have_conf = false;
			unapply();
		} else if (!g.state) {
			g.state = "no configuration";
		}
		g.generation = 0;
		g.conf_error[0] = '\0';
	} else if (strcmp(g.vmk_error, e.msg) != 0) {
		snprintf(g.vmk_error, sizeof(g.vmk_error), "%s", e.msg);
		event(KB_LOG_WARN, "ntp: %s; going on with what is in force", e.msg);
	}
	kb_buf_close(&text);
}

/* ---- chrony's state ---------------------------------------------------------------------- */

static void look(void)
{
	const char *trk[] = {"tracking", NULL}, *srcs[] = {"sources", NULL};
	struct kb_errmsg e = {{0}};
	struct kb_buf out;
	const char *was = g.state, *now;
	int status, rv;

	if (!g.have_conf)
		return;
	if (g.mode == NTP_MODE_PRIVATE && g.chronyd > 0 &&
	    waitpid(g.chronyd, &status, WNOHANG) == g.chronyd) {
		g.chronyd = 0;
		event(KB_LOG_ERROR,
		      "ntp: the private chronyd ended (%s %d; see %s/chronyd.log); "
		      "starting it again",
		      WIFEXITED(status) ? "exit" : "signal",
		      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), g.ntp_dir);
	}
	if (g.mode == NTP_MODE_PRIVATE && g.chronyd <= 0) {
		rv = chronyd_start(&e);
		if (rv)
			snprintf(g.apply_error, sizeof(g.apply_error), "%s", e.msg);
		g.applied_ms = mono_ms();
	}
	kb_buf_init(&out, 1u << 16);
	rv = ntp_chronyc(g.chrony_socket, trk, &out, &e);
	if (rv == 0 && kb_buf_append(&out, "", 1) == 0)
		rv = ntp_tracking_parse((const char *)out.data, &g.tr, &e);
	g.have_tr = rv == 0;
	if (rv == 0) {
		out.len = 0;
		rv = ntp_chronyc(g.chrony_socket, srcs, &out, &e);
		if (rv == 0)
			rv = ntp_sources_parse((const char *)out.data, out.len, g.src,
					       NTP_SOURCES_MAX, &g.n_src, &e);
	}
	kb_buf_close(&out);
	if (rv) {
		snprintf(g.chrony_error, sizeof(g.chrony_error), "%s", e.msg);
		g.have_tr = false;
		g.n_src = 0;
		now = mono_ms() - g.applied_ms < UNREACH_GRACE_MS ? "starting"
								  : "chrony not answering";
	} else {
		bool any_reach = false;

		g.chrony_error[0] = '\0';
		for (size_t i = 0; i < g.n_src; i++)
			any_reach |= g.src[i].reach != 0;
		if (g.tr.synced)
			now = "synced";
		else if (!any_reach && mono_ms() - g.applied_ms >= UNREACH_GRACE_MS)
			now = "unreachable";
		else if (!any_reach || mono_ms() - g.applied_ms < UNREACH_GRACE_MS)
			now = "starting";
		else
			now = "unsynchronised";
	}
	g.state = now;
	if (was && strcmp(was, now) == 0)
		return;
	if (strcmp(now, "synced") == 0) {
		event(KB_LOG_INFO, "ntp: synchronised to %s (stratum %u, offset %+.6f s)",
		      g.tr.ref_name, g.tr.stratum, (double)g.tr.offset_ns / 1e9);
	} else if (strcmp(now, "unreachable") == 0) {
		char servers[1024];

		servers_text(&g.conf, servers, sizeof(servers));
		event(KB_LOG_WARN,
		      "ntp: no NTP server can be reached (%s: no answer for %u s); the "
		      "configuration stays, chrony keeps trying",
		      servers, UNREACH_GRACE_MS / 1000);
	} else if (strcmp(now, "unsynchronised") == 0) {
		event(KB_LOG_WARN, "ntp: not synchronised: the servers answer but none is "
				   "selected yet");
	} else if (strcmp(now, "chrony not answering") == 0) {
		event(KB_LOG_ERROR, "ntp: chrony does not answer: %s", g.chrony_error);
	}
}

/* DIR/vmntpd.status: `key = value` lines (docs/ntp.md). */
static void write_status(void)
{
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX + 32], servers[1024];
	FILE *f;
	char *text = NULL;
	size_t len = 0;
	int64_t off = g.have_tr ? g.tr.offset_ns : 0;

	f = open_memstream(&text, &len);
	if (!f)
		return;
	servers_text(&g.conf, servers, sizeof(servers));
	fprintf(f, "time_ns = %" PRIu64 "\n", kb_wall_ns());
	fprintf(f, "pid = %d\n", (int)getpid());
	fprintf(f, "state = %s\n", g.state ? g.state : "starting");
	fprintf(f, "config_generation = %" PRIu64 "\n", g.generation);
	fprintf(f, "config_error = %s\n", g.conf_error);
	fprintf(f, "vmkernel_error = %s\n", g.vmk_error);
	fprintf(f, "servers = %s\n", g.have_conf ? servers : "");
	fprintf(f, "mode = %s\n", g.have_conf ? ntp_mode_name(g.mode) : "");
	fprintf(f, "mode_reason = %s\n", g.mode_reason);
	fprintf(f, "chrony_socket = %s\n", g.chrony_socket);
	fprintf(f, "chronyd_pid = %d\n", (int)g.chronyd);
	fprintf(f, "apply_error = %s\n", g.apply_error);
	fprintf(f, "chrony_error = %s\n", g.chrony_error);
	fprintf(f, "synced = %d\n", g.have_tr && g.tr.synced);
	if (g.have_tr && g.tr.synced) {
		fprintf(f, "reference = %s\n", g.tr.ref_name);
		fprintf(f, "stratum = %u\n", g.tr.stratum);
		fprintf(f, "offset_ns = %" PRId64 "\n", off + g.test_offset_ms * 1000000);
	}
	fprintf(f, "test_offset_ms = %" PRId64 "\n", g.test_offset_ms);
	for (unsigned i = g.ev_head > EVENTS ? g.ev_head - EVENTS : 0; i < g.ev_head; i++) {
		const struct event *ev = &g.events[i % EVENTS];

		fprintf(f, "event = %" PRIu64 " %s %s\n", ev->time_ns, kb_log_level_name(ev->level),
			ev->text);
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s", g.state_dir, NTP_STATUS_FILE);
	kb_file_write_atomic(path, text, len, 0644, &e);
	free(text);
}

/* ---- start-up ----------------------------------------------------------------------------- */

static int take_lock(const char *dir)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/vmntpd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rv = -errno;

		fprintf(stderr, "vmntpd: %s: %s\n", path,
			rv == -EWOULDBLOCK ? "another vmntpd runs for this state dir"
					   : strerror(-rv));
		if (fd >= 0)
			close(fd);
		return rv;
	}
	return fd;
}

static void on_signal(int sig)
{
	stop_sig = sig;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"private", no_argument, NULL, 'P'},
	    {"poll-ms", required_argument, NULL, 'p'},
	    {"test-offset-ms", required_argument, NULL, 'T'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sigaction sa = {.sa_handler = on_signal};
	struct kb_errmsg err = {{0}};
	char path[PATH_MAX + 32];
	const char *dir = NULL;
	int level = KB_LOG_INFO, opt, lock_fd;
	uint64_t next_poll = 0;
	struct kb_buf b;

	g.poll_ms = 2000;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		char *end;
		long v;

		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'P':
			g.private_only = true;
			break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || v < 100 || v > 600000) {
				fprintf(stderr, "vmntpd: --poll-ms: want 100..600000\n");
				return 2;
			}
			g.poll_ms = (unsigned)v;
			break;
		case 'T':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || v < -TEST_OFFSET_MAX ||
			    v > TEST_OFFSET_MAX) {
				fprintf(stderr, "vmntpd: --test-offset-ms: want -%d..%d\n",
					TEST_OFFSET_MAX, TEST_OFFSET_MAX);
				return 2;
			}
			g.test_offset_ms = v;
			break;
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "vmntpd: bad --log-level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (dir == NULL || optind != argc) {
		fprintf(stderr, "vmntpd: %s\n",
			dir == NULL ? "--state-dir DIR is required" : "unexpected arguments");
		usage(stderr);
		return 2;
	}
	if (realpath(dir, g.state_dir) == NULL) {
		fprintf(stderr, "vmntpd: --state-dir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	lock_fd = take_lock(g.state_dir);
	if (lock_fd < 0)
		return 1;
	kb_log_init(&logger, "vmntpd", level, 2);
	g.log = &logger;
	snprintf(g.vmk_socket, sizeof(g.vmk_socket), "%s/vmkernel.sock", g.state_dir);
	snprintf(g.ntp_dir, sizeof(g.ntp_dir), "%s/%s", g.state_dir, NTP_DIR);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (g.test_offset_ms)
		kb_log(g.log, KB_LOG_WARN,
		       "test only: %+" PRId64 " ms added to the offset reported", g.test_offset_ms);

	snprintf(path, sizeof(path), "%s/%s", g.state_dir, CACHE_FILE);
	kb_buf_init(&b, 0);
	if (kb_file_read_small(path, NTP_CONF_MAX, &b, &err) == 0)
		conf_text(b.data, b.len, 0, true);
	kb_buf_close(&b);
	kb_log(g.log, KB_LOG_INFO, "vmntpd ready: state dir %s", g.state_dir);

	while (!stop_sig) {
		uint64_t now = mono_ms();

		if (now >= next_poll) {
			poll_conf();
			next_poll = now + g.poll_ms;
		}
		look();
		write_status();
		for (int i = 0; i < 10 && !stop_sig; i++)
			kb_sleep_ns(100 * 1000000ull);
	}
	kb_log(g.log, KB_LOG_INFO, "vmntpd stopping (signal %d)", (int)stop_sig);
	chronyd_stop();
	g.state = "stopped";
	g.have_tr = false;
	write_status();
	close(lock_fd);
	return 0;
}
