/*
 * keel-snmpd — the host's SNMP subagent: serves KEEL-MIB to snmpd over AgentX and sends
 * its notifications (docs/snmp.md).
 *
 * Start-up: state dir and lock (one keel-snmpd per state dir: an flock on
 * DIR/keel-snmpd.lock), the configuration (etc/keel/snmp.conf from vmkernel on
 * DIR/vmkernel.sock, else the last one that worked, DIR/keel-snmpd.conf), the AgentX
 * session (--agentx-socket, else the configuration's agentx_socket), then the loop.
 *
 * The loop (main thread): net-snmp's requests and alarms (AgentX pings, reconnection),
 * and, whenever the poll thread has a new snapshot, the notifications the step calls for
 * (when SNMP is enabled), a new table of MIB instances, and the status file
 * DIR/keel-snmpd.status that `keel host snmp show` reads. The poll thread asks vmkernel and
 * clusterd every --poll-ms (1 s) and the config store every 2 s; a daemon that does not
 * answer leaves the previous values served and is counted as a poll error. SIGTERM and
 * SIGINT stop it (exit 0); bad options exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "kernel/snmp/daemon.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/time.h"

#define CACHE_FILE	"keel-snmpd.conf"
#define STATUS_FILE	"keel-snmpd.status"
#define EVENTS_MAX	32
#define CONF_EVERY_NS	(2 * KB_NSEC_PER_SEC)
#define STATUS_EVERY_NS KB_NSEC_PER_SEC

struct event {
	uint64_t time_ns;
	int level;
	char text[300];
};

static struct {
	char state_dir[PATH_MAX];
	char vmk_socket[PATH_MAX + 32];
	char cd_socket[PATH_MAX + 32];
	char agentx[KSNMP_PATH_MAX];
	bool agentx_from_option;
	uint64_t poll_ms;
	uint64_t started_ns;
	struct kb_logger *log;

	pthread_mutex_t mu; /* guards everything below */
	struct ksnmp_conf conf;
	bool conf_found;
	uint64_t conf_generation;
	char conf_error[KB_ERRMSG_SIZE];
	struct ksnmp_snapshot *pending; /* handed from the poll thread to the main thread */
	char poll_error[KB_ERRMSG_SIZE];
	uint64_t last_poll_ns;
	struct ksnmp_counters counters;
	struct event events[EVENTS_MAX];
	unsigned ev_head;
} D;

static struct kb_logger logger;
static volatile sig_atomic_t stopping;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: keel-snmpd --state-dir DIR [options]\n"
	    "The host's SNMP subagent: serves KEEL-MIB (host, VMs, cluster, HA) to snmpd over\n"
	    "AgentX and sends its notifications (host failed, HA restart, FT failover, VM\n"
	    "migrated, VM power changed), as configured in the config store's\n"
	    "etc/keel/snmp.conf (`keel host snmp enable`).\n"
	    "\n"
	    "  --state-dir DIR        the host's state dir: vmkernel's socket DIR/vmkernel.sock,\n"
	    "                         clusterd's DIR/clusterd.sock; writes DIR/keel-snmpd.status\n"
	    "  --agentx-socket PATH   snmpd's AgentX socket (default: snmp.conf's agentx_socket,\n"
	    "                         else /var/agentx/master)\n"
	    "  --poll-ms MS           how often to ask vmkernel and clusterd (default 1000)\n"
	    "  --ping-s S             AgentX ping and reconnect interval (default 1, 1..60)\n"
	    "  --log-level LEVEL      error, warn, info (default), debug, trace (to stderr)\n"
	    "  -h, --help             this help\n");
}

static void event(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(int level, const char *fmt, ...)
{
	struct event *e;
	char text[sizeof(e->text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	kb_log(D.log, level, "%s", text);
	pthread_mutex_lock(&D.mu);
	e = &D.events[D.ev_head++ % EVENTS_MAX];
	e->time_ns = kb_wall_ns();
	e->level = level;
	memcpy(e->text, text, sizeof(text));
	pthread_mutex_unlock(&D.mu);
}

static void agent_event(void *arg, int level, const char *text)
{
	event(level, "%s", text);
}

/* ---- configuration ------------------------------------------------------------------------ */

/* Applies snmp.conf text (poll thread or start-up). */
static void conf_apply(const void *text, size_t len, uint64_t generation, bool from_cache)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf c;
	int rv = ksnmp_conf_parse(text, len, &c, &err);

	pthread_mutex_lock(&D.mu);
	if (rv) {
		bool news = strcmp(D.conf_error, err.msg) != 0;
		snprintf(D.conf_error, sizeof(D.conf_error), "%s", err.msg);
		D.conf_generation = generation;
		pthread_mutex_unlock(&D.mu);
		if (news)
			event(KB_LOG_ERROR,
			      "%s (generation %" PRIu64 ") refused: %s; the configuration in "
			      "force stays as it was",
			      KSNMP_CONF_PATH, generation, err.msg);
		return;
	}
	bool changed = !D.conf_found || memcmp(&c, &D.conf, sizeof(c)) != 0;
	bool ax_differs =
	    !D.agentx_from_option && D.agentx[0] && strcmp(c.agentx_socket, D.agentx) != 0;
	D.conf = c;
	D.conf_found = true;
	D.conf_generation = generation;
	D.conf_error[0] = '\0';
	pthread_mutex_unlock(&D.mu);
	if (!changed)
		return;
	event(KB_LOG_INFO, "%s%s generation %" PRIu64 " in force: SNMP %s, %zu trap sink%s",
	      from_cache ? "the last configuration that worked, " : "", KSNMP_CONF_PATH, generation,
	      c.enabled ? "enabled" : "disabled", c.n_sinks, c.n_sinks == 1 ? "" : "s");
	if (ax_differs)
		event(KB_LOG_WARN,
		      "agentx_socket is now %s; keel-snmpd goes on with %s until it is "
		      "restarted",
		      c.agentx_socket, D.agentx);
	if (!from_cache) {
		char path[PATH_MAX + 32];
		struct kb_errmsg werr = {{0}};
		snprintf(path, sizeof(path), "%s/%s", D.state_dir, CACHE_FILE);
		if (kb_file_write_atomic(path, text, len, 0600, &werr) < 0 && werr.msg[0])
			kb_log(D.log, KB_LOG_WARN, "keeping the configuration: %s", werr.msg);
	}
}

static void conf_fetch(void)
{
	struct kb_errmsg err = {{0}};
	uint64_t generation;
	struct kb_buf b;
	bool found;
	int rv;

	kb_buf_init(&b, 1u << 20);
	rv = ksnmp__fetch_conf(D.vmk_socket, &found, &b, &generation, &err);
	if (rv == 0 && found) {
		pthread_mutex_lock(&D.mu);
		bool same = D.conf_found && generation == D.conf_generation && !D.conf_error[0];
		pthread_mutex_unlock(&D.mu);
		if (!same)
			conf_apply(b.data, b.len, generation, false);
	} else if (rv == 0) {
		pthread_mutex_lock(&D.mu);
		bool had = D.conf_found;
		struct ksnmp_conf def;
		ksnmp_conf_defaults(&def);
		if (had) {
			/* the file was removed: SNMP is off, the socket stays what it is */
			snprintf(def.agentx_socket, sizeof(def.agentx_socket), "%s",
				 D.conf.agentx_socket);
		}
		D.conf = def;
		D.conf_found = false;
		D.conf_generation = 0;
		D.conf_error[0] = '\0';
		pthread_mutex_unlock(&D.mu);
		if (had)
			event(KB_LOG_INFO, "%s removed: SNMP disabled", KSNMP_CONF_PATH);
	} else {
		pthread_mutex_lock(&D.mu);
		bool news = strcmp(D.conf_error, err.msg) != 0;
		snprintf(D.conf_error, sizeof(D.conf_error), "%s", err.msg);
		pthread_mutex_unlock(&D.mu);
		if (news)
			event(KB_LOG_WARN, "%s; the configuration in force stays as it was",
			      err.msg);
	}
	kb_buf_close(&b);
}

/* ---- the poll thread ------------------------------------------------------------------- */

static void *poll_thread(void *arg)
{
	uint64_t since = KSNMP_EVENTS_UNSEEN, last_conf = 0;
	char last_err[KB_ERRMSG_SIZE] = "";

	while (!stopping) {
		uint64_t t0 = kb_now_ns();
		struct ksnmp_snapshot *s = kb_calloc(1, sizeof(*s));
		struct kb_errmsg err = {{0}};
		int rv;

		if (t0 - last_conf >= CONF_EVERY_NS || last_conf == 0) {
			last_conf = t0;
			conf_fetch();
		}
		if (s == NULL) {
			kb_sleep_ns(D.poll_ms * KB_NSEC_PER_MSEC);
			continue;
		}
		rv = ksnmp__poll_vmk(D.vmk_socket, s, &err);
		if (rv == 0)
			rv = ksnmp__poll_cluster(D.cd_socket, s, &since, &err);
		pthread_mutex_lock(&D.mu);
		D.counters.polls++;
		D.last_poll_ns = kb_wall_ns();
		if (rv) {
			D.counters.poll_errors++;
			snprintf(D.poll_error, sizeof(D.poll_error), "%s", err.msg);
			ksnmp_snapshot_close(s);
			kb_free(s);
		} else {
			D.poll_error[0] = '\0';
			if (D.pending) {
				/* the main thread has not taken the last one: keep its events */
				struct ksnmp_snapshot *old = D.pending;
				if (old->n_events && s->n_events == 0) {
					s->events = old->events;
					s->n_events = old->n_events;
					old->events = NULL;
					old->n_events = 0;
				}
				ksnmp_snapshot_close(old);
				kb_free(old);
			}
			D.pending = s;
		}
		pthread_mutex_unlock(&D.mu);
		if (rv && strcmp(last_err, err.msg) != 0)
			event(KB_LOG_WARN, "poll: %s; the last values stay served", err.msg);
		else if (rv == 0 && last_err[0])
			event(KB_LOG_INFO, "poll works again");
		snprintf(last_err, sizeof(last_err), "%s", rv ? err.msg : "");
		uint64_t spent = kb_now_ns() - t0, want = D.poll_ms * KB_NSEC_PER_MSEC;
		for (uint64_t left = spent < want ? want - spent : 0; left > 0 && !stopping;) {
			uint64_t step =
			    left > 100 * KB_NSEC_PER_MSEC ? 100 * KB_NSEC_PER_MSEC : left;
			kb_sleep_ns(step);
			left -= step;
		}
	}
	return NULL;
}

/* ---- status file ------------------------------------------------------------------------ */

static void write_status(void)
{
	struct ksnmp_agent_status a;
	struct kb_errmsg err = {{0}};
	char path[PATH_MAX + 32];
	struct kb_buf b;
	char line[1024];

	ksnmp__agent_status(&a);
	kb_buf_init(&b, 0);
	pthread_mutex_lock(&D.mu);
#define L(...)                                                      \
	do {                                                        \
		int n_ = snprintf(line, sizeof(line), __VA_ARGS__); \
		if (n_ > 0)                                         \
			kb_buf_append(&b, line, strlen(line));      \
	} while (0)
	L("# keel-snmpd status (docs/snmp.md)\n");
	L("pid = %d\n", (int)getpid());
	L("started_ns = %" PRIu64 "\n", D.started_ns);
	L("updated_ns = %" PRIu64 "\n", kb_wall_ns());
	L("agentx_socket = %s\n", D.agentx);
	L("connected = %s\n", a.connected ? "yes" : "no");
	L("connected_since_ns = %" PRIu64 "\n", a.connected ? a.connected_since_ns : 0);
	L("lost_ns = %" PRIu64 "\n", a.lost_ns);
	L("connects = %" PRIu64 "\n", a.connects);
	L("reconnects = %" PRIu64 "\n", a.reconnects);
	L("requests = %" PRIu64 "\n", a.requests);
	L("traps_sent = %" PRIu64 "\n", D.counters.traps_sent);
	L("enabled = %s\n", D.conf.enabled ? "yes" : "no");
	L("config_generation = %" PRIu64 "\n", D.conf_generation);
	L("config_error = %s\n", D.conf_error);
	L("last_poll_ns = %" PRIu64 "\n", D.last_poll_ns);
	L("polls = %" PRIu64 "\n", D.counters.polls);
	L("poll_errors = %" PRIu64 "\n", D.counters.poll_errors);
	L("poll_error = %s\n", D.poll_error);
	unsigned first = D.ev_head > EVENTS_MAX ? D.ev_head - EVENTS_MAX : 0;
	for (unsigned i = first; i < D.ev_head; i++) {
		const struct event *e = &D.events[i % EVENTS_MAX];
		L("event = %" PRIu64 " %s %s\n", e->time_ns, kb_log_level_name(e->level), e->text);
	}
#undef L
	pthread_mutex_unlock(&D.mu);
	snprintf(path, sizeof(path), "%s/%s", D.state_dir, STATUS_FILE);
	if (kb_file_write_atomic(path, b.data, b.len, 0644, &err) < 0 && err.msg[0])
		kb_log(D.log, KB_LOG_WARN, "status: %s", err.msg);
	kb_buf_close(&b);
}

/* ---- main --------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
	stopping = 1;
}

static int take_lock(const char *dir)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/keel-snmpd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rv = -errno;
		fprintf(stderr, "keel-snmpd: %s: %s\n", path,
			rv == -EWOULDBLOCK ? "another keel-snmpd runs for this state dir"
					   : strerror(-rv));
		if (fd >= 0)
			close(fd);
		return rv;
	}
	return fd;
}

/* Main thread: takes the poll thread's snapshot, sends the notifications of the step,
 * builds the new table. */
static void take_snapshot(struct ksnmp_snapshot **prev, struct ksnmp_table *served)
{
	struct ksnmp_notice *notices = NULL;
	struct ksnmp_counters counters;
	struct ksnmp_snapshot *s;
	struct ksnmp_table t;
	size_t n = 0;
	bool enabled;

	pthread_mutex_lock(&D.mu);
	s = D.pending;
	D.pending = NULL;
	enabled = D.conf.enabled;
	pthread_mutex_unlock(&D.mu);
	if (s == NULL)
		return;
	if (ksnmp_notices(*prev, s, &notices, &n) < 0)
		kb_log(D.log, KB_LOG_WARN, "notifications: out of memory");
	for (size_t i = 0; i < n; i++) {
		bool sent = false;
		if (notices[i].kind == KSNMP_N_HA_RESTART) {
			pthread_mutex_lock(&D.mu);
			D.counters.ha_events++;
			pthread_mutex_unlock(&D.mu);
		} else if (notices[i].kind == KSNMP_N_VM_MIGRATED) {
			pthread_mutex_lock(&D.mu);
			D.counters.migrations++;
			pthread_mutex_unlock(&D.mu);
		}
		if (enabled)
			sent = ksnmp__agent_notify(
			    &notices[i],
			    ksnmp_ticks_from_ms((kb_wall_ns() - D.started_ns) / KB_NSEC_PER_MSEC));
		if (sent) {
			pthread_mutex_lock(&D.mu);
			D.counters.traps_sent++;
			pthread_mutex_unlock(&D.mu);
		}
		event(KB_LOG_INFO, "%s: %s%s", ksnmp_notice_name(notices[i].kind),
		      notices[i].message,
		      sent	? ""
		      : enabled ? " (not sent: no AgentX master)"
				: " (SNMP disabled)");
	}
	kb_free(notices);

	pthread_mutex_lock(&D.mu);
	counters = D.counters;
	pthread_mutex_unlock(&D.mu);
	{
		struct ksnmp_agent_status a;
		ksnmp__agent_status(&a);
		counters.reconnects = a.reconnects;
	}
	ksnmp_table_init(&t);
	if (ksnmp_mib_build(s, &counters, &t) == 0) {
		ksnmp_table_close(served);
		*served = t;
	} else {
		ksnmp_table_close(&t);
		kb_log(D.log, KB_LOG_WARN, "building the MIB table failed; the last stays served");
	}
	if (*prev) {
		ksnmp_snapshot_close(*prev);
		kb_free(*prev);
	}
	*prev = s;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"agentx-socket", required_argument, NULL, 'x'},
	    {"poll-ms", required_argument, NULL, 'p'},
	    {"ping-s", required_argument, NULL, 'P'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct ksnmp_table served;
	struct ksnmp_snapshot *prev = NULL;
	struct kb_errmsg err = {{0}};
	const char *dir = NULL;
	int level = KB_LOG_INFO, opt, rv, lock_fd, ping_s = 1;
	char path[PATH_MAX + 32];
	pthread_t thread;
	struct kb_buf b;

	D.poll_ms = 1000;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'x':
			if (ksnmp_path_check("--agentx-socket", optarg, &err)) {
				fprintf(stderr, "keel-snmpd: %s\n", err.msg);
				return 2;
			}
			snprintf(D.agentx, sizeof(D.agentx), "%s", optarg);
			D.agentx_from_option = true;
			break;
		case 'p':
		case 'P': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			bool poll = opt == 'p';
			if (*optarg == '\0' || *end || v < (poll ? 100 : 1) ||
			    v > (poll ? 600000 : 60)) {
				fprintf(stderr, "keel-snmpd: %s\n",
					poll ? "--poll-ms: want 100..600000"
					     : "--ping-s: want 1..60");
				return 2;
			}
			if (poll)
				D.poll_ms = v;
			else
				ping_s = (int)v;
			break;
		}
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "keel-snmpd: bad --log-level '%s'\n", optarg);
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
		fprintf(stderr, "keel-snmpd: %s\n",
			dir == NULL ? "--state-dir DIR is required" : "unexpected arguments");
		usage(stderr);
		return 2;
	}
	if (realpath(dir, D.state_dir) == NULL) {
		fprintf(stderr, "keel-snmpd: --state-dir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	lock_fd = take_lock(D.state_dir);
	if (lock_fd < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	kb_log_init(&logger, "keel-snmpd", level, 2);
	D.log = &logger;
	pthread_mutex_init(&D.mu, NULL);
	D.started_ns = kb_wall_ns();
	ksnmp_conf_defaults(&D.conf);
	snprintf(D.vmk_socket, sizeof(D.vmk_socket), "%s/vmkernel.sock", D.state_dir);
	snprintf(D.cd_socket, sizeof(D.cd_socket), "%s/clusterd.sock", D.state_dir);

	/* the configuration: the store, else the last one that worked */
	conf_fetch();
	if (!D.conf_found) {
		kb_buf_init(&b, 0);
		snprintf(path, sizeof(path), "%s/%s", D.state_dir, CACHE_FILE);
		if (D.conf_error[0] && kb_file_read_small(path, 64u << 10, &b, &err) == 0)
			conf_apply(b.data, b.len, 0, true);
		kb_buf_close(&b);
	}
	if (!D.agentx_from_option)
		snprintf(D.agentx, sizeof(D.agentx), "%s", D.conf.agentx_socket);

	ksnmp_table_init(&served);
	rv = ksnmp__agent_start(D.agentx, ping_s, &served, agent_event, NULL, D.log);
	if (rv) {
		kb_log(D.log, KB_LOG_ERROR, "net-snmp's agent library did not start: %s",
		       kb_strerror(rv));
		return 1;
	}
	{
		struct ksnmp_agent_status a;
		ksnmp__agent_status(&a);
		if (!a.connected)
			event(KB_LOG_WARN,
			      "AgentX master at %s cannot be reached (is snmpd running with "
			      "`master agentx`?); trying every %d s",
			      D.agentx, ping_s);
	}
	rv = pthread_create(&thread, NULL, poll_thread, NULL);
	if (rv) {
		kb_log(D.log, KB_LOG_ERROR, "poll thread: %s", strerror(rv));
		return 1;
	}
	kb_log(D.log, KB_LOG_INFO, "keel-snmpd ready: AgentX %s, polling every %" PRIu64 " ms",
	       D.agentx, D.poll_ms);

	uint64_t last_status = 0;
	while (!stopping) {
		ksnmp__agent_run(100);
		take_snapshot(&prev, &served);
		if (kb_now_ns() - last_status >= STATUS_EVERY_NS) {
			last_status = kb_now_ns();
			write_status();
		}
	}
	kb_log(D.log, KB_LOG_INFO, "keel-snmpd stops");
	pthread_join(thread, NULL);
	ksnmp__agent_stop();
	ksnmp_table_close(&served);
	if (prev) {
		ksnmp_snapshot_close(prev);
		kb_free(prev);
	}
	if (D.pending) {
		ksnmp_snapshot_close(D.pending);
		kb_free(D.pending);
	}
	snprintf(path, sizeof(path), "%s/%s", D.state_dir, STATUS_FILE);
	unlink(path);
	close(lock_fd);
	return 0;
}
