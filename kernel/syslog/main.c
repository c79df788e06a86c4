/*
 * vmsyslogd — forwards the host's logs to remote syslog servers (docs/syslog.md).
 *
 * Start-up: state dir and lock (one vmsyslogd per state dir: an flock on
 * DIR/vmsyslogd.lock), the last configuration that worked (DIR/vmsyslogd.conf, so remotes
 * are served before vmkernel answers), the places read by the last run (DIR/vmsyslogd.pos,
 * saved every 5 s and at stop, so lines written while vmsyslogd was down are sent), the
 * files to follow (vmkernel.log, hostd.log, clusterd.log in DIR and every registered VM's
 * vmx.log, from DIR/inventory.conf), the control socket DIR/vmsyslogd.sock, then the loop.
 *
 * The loop: inotify events and a 1 s timer read new lines (tail.c), which are formatted
 * (fmt.c) and queued for every remote (remote.c). Every --poll-ms (2 s) a thread-pool job
 * asks vmkernel (DIR/vmkernel.sock, proto/vmk.proto cfg_get) for etc/keel/syslog.conf; a
 * new generation is parsed and applied: remotes whose URL stays keep their queue and
 * counters, new ones start, removed ones stop. A file that does not parse, or a vmkernel
 * that does not answer, leaves the configuration in force as it is and says why in the
 * status and the events. SIGTERM/SIGINT stop the daemon; queued messages are lost then.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/syslog/daemon.h"
#include "lib/file.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmk.pb-c.h"

#define CACHE_FILE	"vmsyslogd.conf"
#define PLACES_FILE	"vmsyslogd.pos"
#define PLACES_EVERY_NS (5 * KB_NSEC_PER_SEC) /* how often the places read are saved */
#define REPLY_MAX	(1u << 20)

static struct vsl_daemon daemon_state;
static struct kb_logger logger;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmsyslogd --state-dir DIR [options]\n"
		"Forwards vmkernel's, the daemons' and the VMs' logs to remote syslog servers\n"
		"(RFC 5424 over UDP, TCP or TLS), as configured in the config store's\n"
		"etc/keel/syslog.conf (`keel host syslog set`).\n"
		"\n"
		"  --state-dir DIR     the host's state dir: vmkernel's socket DIR/vmkernel.sock,\n"
		"                      the logs DIR/*.log; serves DIR/vmsyslogd.sock\n"
		"  --hostname NAME     HOSTNAME of the messages (default: the host's name)\n"
		"  --poll-ms MS        how often to ask for the configuration (default 2000)\n"
		"  --log-level LEVEL   error, warn, info (default), debug, trace (to stderr)\n"
		"  -h, --help          this help\n");
}

void vsl__event(struct vsl_daemon *d, int level, const char *fmt, ...)
{
	struct vsl_event *e;
	char text[VSL_EVENT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	kb_log(d->log, level, "%s", text);
	pthread_mutex_lock(&d->ev_mu);
	e = &d->events[d->ev_head++ % VSL_EVENTS];
	e->time_ns = kb_wall_ns();
	e->level = level;
	memcpy(e->text, text, sizeof(text));
	pthread_mutex_unlock(&d->ev_mu);
}

static void remote_event(void *arg, int level, const char *text)
{
	vsl__event(arg, level, "%s", text);
}

void vsl__send_all(struct vsl_daemon *d, const struct vsl_msg_fields *f)
{
	struct kb_buf b;

	if (d->n_remotes == 0)
		return;
	kb_buf_init(&b, 0);
	if (vsl_format(f, VSL_MSG_MAX, &b) == 0)
		for (size_t i = 0; i < d->n_remotes; i++)
			vsl_remote_push(d->remotes[i], b.data, b.len);
	kb_buf_close(&b);
}

static void on_line(void *arg, const char *app, const char *line, size_t len)
{
	struct vsl_daemon *d = arg;
	struct vsl_line l;

	vsl_line_parse(line, len, &l);
	struct vsl_msg_fields f = {.facility = VSL_FACILITY,
				   .severity = l.severity,
				   .stamp = l.stamp[0] ? l.stamp : NULL,
				   .hostname = d->hostname,
				   .app = app,
				   .procid = l.procid,
				   .msg = l.msg,
				   .msg_len = l.msg_len};
	vsl__send_all(d, &f);
}

/* ---- the files to follow ----------------------------------------------------------------- */

/* The daemons' logs and every registered VM's vmx.log (<vm dir>/vmx.log, APP-NAME
 * vmx-<name of its .vmx>). from_end: the first set of the run. */
static void files_update(struct vsl_daemon *d, bool from_end)
{
	static const char *const daemons[] = {"vmkernel", "hostd", "clusterd"};
	struct vsl_tail_spec *specs;
	char(*paths)[PATH_MAX], (*apps)[VSL_APP_MAX + 1];
	char inv[PATH_MAX], line[PATH_MAX + 2];
	size_t n = 0, max = 3 + VSL_VMS_MAX;
	struct stat st;
	FILE *f;

	snprintf(inv, sizeof(inv), "%s/inventory.conf", d->state_dir);
	uint64_t mtime = stat(inv, &st) == 0 ? (uint64_t)st.st_mtim.tv_sec * KB_NSEC_PER_SEC +
						   (uint64_t)st.st_mtim.tv_nsec + st.st_ino
					     : 1;
	if (!from_end && mtime == d->inventory_mtime_ns)
		return;
	specs = kb_calloc(max, sizeof(*specs));
	paths = kb_calloc(max, sizeof(*paths));
	apps = kb_calloc(max, sizeof(*apps));
	if (specs == NULL || paths == NULL || apps == NULL)
		goto out;
	for (size_t i = 0; i < 3; i++, n++) {
		snprintf(paths[n], PATH_MAX, "%s/%s.log", d->state_dir, daemons[i]);
		snprintf(apps[n], sizeof(apps[n]), "%s", daemons[i]);
	}
	f = fopen(inv, "re");
	while (f != NULL && n < max && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] != '/')
			continue;
		char *slash = strrchr(line, '/');
		char *dot = strrchr(slash, '.');
		if (dot == NULL || strcmp(dot, ".vmx") != 0)
			continue;
		*dot = '\0';
		snprintf(apps[n], sizeof(apps[n]), "vmx-%s", slash + 1);
		*slash = '\0';
		snprintf(paths[n], PATH_MAX, "%s/vmx.log", line);
		n++;
	}
	if (f != NULL)
		fclose(f);
	for (size_t i = 0; i < n; i++) {
		specs[i].path = paths[i];
		specs[i].app = apps[i];
	}
	if (vsl_tail_set(&d->tail, specs, n, from_end) == 0)
		d->inventory_mtime_ns = mtime;
out:
	kb_free(specs);
	kb_free(paths);
	kb_free(apps);
}

/* ---- the configuration ------------------------------------------------------------------- */

struct fetch {
	uv_work_t work;
	struct vsl_daemon *d;
	int code; /* 0: got it; KB_ENOTFOUND: no file; else an error in err */
	uint64_t generation;
	struct kb_buf text;
	struct kb_errmsg err;
};

/* cfg_get of syslog.conf on vmkernel's socket, at most 5 s. Runs on the thread pool. */
static void fetch_work(uv_work_t *w)
{
	struct fetch *ft = w->data;
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	Keel__Vmk__VmkReply *rp;
	struct pollfd p;
	struct kb_buf in;
	int fd, rv;

	g.path = VSL_CONF_PATH;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
	req.cfg_get = &g;
	fd = kb_unix_connect(ft->d->vmk_socket);
	if (fd < 0) {
		ft->code = fd;
		kb_errmsg_setf(&ft->err, "cannot reach vmkernel at %s: %s", ft->d->vmk_socket,
			       kb_strerror(fd));
		return;
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
		ft->code = rv;
		kb_errmsg_setf(&ft->err, "asking vmkernel for %s: %s", VSL_CONF_PATH,
			       kb_strerror(rv));
		goto out;
	}
	rp = keel__vmk__vmk_reply__unpack(NULL, in.len, in.data);
	if (rp == NULL) {
		ft->code = KB_EPROTO;
		kb_errmsg_setf(&ft->err, "vmkernel's reply does not decode");
		goto out;
	}
	ft->code = rp->code;
	if (rp->code == 0) {
		ft->generation = rp->n_cfg_files ? rp->cfg_files[0]->generation : 1;
		if (kb_buf_append(&ft->text, rp->cfg_data.data, rp->cfg_data.len) < 0)
			ft->code = -ENOMEM;
	} else if (rp->code != KB_ENOTFOUND) {
		kb_errmsg_setf(&ft->err, "vmkernel: %s", rp->error ? rp->error : "error");
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
out:
	kb_buf_close(&in);
}

static bool same_conf(const struct vsl_conf *a, const struct vsl_conf *b)
{
	if (a->n_remotes != b->n_remotes || strcmp(a->ca, b->ca) != 0 ||
	    a->buffer_lines != b->buffer_lines)
		return false;
	for (size_t i = 0; i < a->n_remotes; i++)
		if (strcmp(a->remotes[i].url, b->remotes[i].url) != 0)
			return false;
	return true;
}

/* Puts conf in force. Loop thread. */
static void apply(struct vsl_daemon *d, const struct vsl_conf *conf)
{
	struct vsl_remote *next[VSL_REMOTES_MAX] = {0};
	size_t n = 0;

	for (size_t i = 0; i < conf->n_remotes; i++) {
		struct vsl_remote *r = NULL;
		for (size_t j = 0; j < d->n_remotes; j++) {
			if (d->remotes[j] &&
			    strcmp(vsl_remote_url(d->remotes[j]), conf->remotes[i].url) == 0) {
				r = d->remotes[j];
				d->remotes[j] = NULL;
			}
		}
		if (r != NULL) {
			vsl_remote_update(r, conf->ca, conf->buffer_lines);
		} else {
			struct vsl_remote_opts o = {.ca = conf->ca,
						    .buffer_lines = conf->buffer_lines,
						    .hostname = d->hostname,
						    .event_cb = remote_event,
						    .event_arg = d};
			int rv = vsl_remote_create(&conf->remotes[i], &o, &r);
			if (rv) {
				vsl__event(d, KB_LOG_ERROR, "syslog remote %s: cannot start: %s",
					   conf->remotes[i].url, kb_strerror(rv));
				continue;
			}
		}
		next[n++] = r;
	}
	for (size_t j = 0; j < d->n_remotes; j++) {
		if (d->remotes[j] != NULL) {
			kb_log(d->log, KB_LOG_INFO, "syslog remote %s removed",
			       vsl_remote_url(d->remotes[j]));
			vsl_remote_destroy(d->remotes[j]);
		}
	}
	memcpy(d->remotes, next, sizeof(next));
	d->n_remotes = n;
	d->conf = *conf;
}

static void conf_text_apply(struct vsl_daemon *d, const void *text, size_t len, uint64_t generation,
			    bool from_cache)
{
	struct vsl_conf conf;
	struct kb_errmsg err = {{0}};
	struct kb_errmsg werr = {{0}};
	int rv = vsl_conf_parse(text, len, &conf, &err);
	char path[PATH_MAX];

	d->conf_generation = generation;
	if (rv) {
		if (strcmp(d->conf_error, err.msg) != 0)
			vsl__event(d, KB_LOG_ERROR,
				   "%s (generation %" PRIu64 ") refused: %s; the configuration in "
				   "force stays as it was",
				   VSL_CONF_PATH, generation, err.msg);
		snprintf(d->conf_error, sizeof(d->conf_error), "%s", err.msg);
		return;
	}
	d->conf_error[0] = '\0';
	if (same_conf(&conf, &d->conf) && !from_cache)
		return;
	if (from_cache) {
		vsl__event(d, KB_LOG_INFO,
			   "using the last configuration that worked (%zu remotes) "
			   "until vmkernel answers",
			   conf.n_remotes);
		apply(d, &conf);
		return;
	}
	vsl__event(d, KB_LOG_INFO, "%s generation %" PRIu64 " in force: %zu remote%s",
		   VSL_CONF_PATH, generation, conf.n_remotes, conf.n_remotes == 1 ? "" : "s");
	apply(d, &conf);
	snprintf(path, sizeof(path), "%s/%s", d->state_dir, CACHE_FILE);
	if (kb_file_write_atomic(path, text, len, 0600, &werr) < 0 && werr.msg[0])
		kb_log(d->log, KB_LOG_WARN, "keeping the configuration in %s: %s", path, werr.msg);
}

static void fetch_done(uv_work_t *w, int status)
{
	struct fetch *ft = w->data;
	struct vsl_daemon *d = ft->d;

	d->fetching = false;
	d->conf_checked_ns = kb_wall_ns();
	if (ft->code == KB_ENOTFOUND) {
		/* No syslog.conf: forwarding is off. */
		if (d->conf_generation != 0 || d->n_remotes != 0) {
			struct vsl_conf none = {.buffer_lines = VSL_BUFFER_DEFAULT};
			char path[PATH_MAX];
			apply(d, &none);
			d->conf_generation = 0;
			d->conf_error[0] = '\0';
			snprintf(path, sizeof(path), "%s/%s", d->state_dir, CACHE_FILE);
			unlink(path);
			vsl__event(d, KB_LOG_INFO, "%s removed: no remote syslog", VSL_CONF_PATH);
		}
	} else if (ft->code != 0) {
		if (strcmp(d->conf_error, ft->err.msg) != 0)
			vsl__event(d, KB_LOG_WARN, "%s; the configuration in force stays as it was",
				   ft->err.msg);
		snprintf(d->conf_error, sizeof(d->conf_error), "%s", ft->err.msg);
	} else if (ft->generation != d->conf_generation || d->conf_error[0]) {
		conf_text_apply(d, ft->text.data, ft->text.len, ft->generation, false);
	}
	kb_buf_close(&ft->text);
	kb_free(ft);
}

static void fetch_start(struct vsl_daemon *d)
{
	struct fetch *ft;

	if (d->fetching)
		return;
	ft = kb_calloc(1, sizeof(*ft));
	if (ft == NULL)
		return;
	ft->d = d;
	ft->work.data = ft;
	kb_buf_init(&ft->text, REPLY_MAX);
	if (uv_queue_work(d->loop, &ft->work, fetch_work, fetch_done) != 0) {
		kb_free(ft);
		return;
	}
	d->fetching = true;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static uv_poll_t inotify_poll;
static uv_timer_t tick;
static uv_signal_t sigterm, sigint;
static uint64_t last_fetch_ns, last_save_ns;

static void on_inotify(uv_poll_t *p, int status, int events)
{
	vsl_tail_events(&daemon_state.tail);
}

static void save_places(struct vsl_daemon *d)
{
	char path[PATH_MAX];
	int rv;

	snprintf(path, sizeof(path), "%s/%s", d->state_dir, PLACES_FILE);
	rv = vsl_tail_save(&d->tail, path);
	if (rv < 0)
		kb_log(d->log, KB_LOG_WARN, "saving the places read to %s: %s", path,
		       kb_strerror(rv));
}

static void on_tick(uv_timer_t *t)
{
	struct vsl_daemon *d = &daemon_state;

	files_update(d, false);
	vsl_tail_poll(&d->tail);
	if (kb_now_ns() - last_save_ns >= PLACES_EVERY_NS) {
		last_save_ns = kb_now_ns();
		save_places(d);
	}
	if (kb_now_ns() - last_fetch_ns >= d->poll_ms * KB_NSEC_PER_MSEC) {
		last_fetch_ns = kb_now_ns();
		fetch_start(d);
	}
}

static void on_signal(uv_signal_t *s, int sig)
{
	kb_log(daemon_state.log, KB_LOG_INFO, "signal %d: vmsyslogd stops", sig);
	uv_stop(s->loop);
}

static void close_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int take_lock(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/vmsyslogd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rv = -errno;
		fprintf(stderr, "vmsyslogd: %s: %s\n", path,
			rv == -EWOULDBLOCK ? "another vmsyslogd runs for this state dir"
					   : strerror(-rv));
		if (fd >= 0)
			close(fd);
		return rv;
	}
	return fd;
}

static void load_cache(struct vsl_daemon *d)
{
	struct kb_errmsg err = {{0}};
	char path[PATH_MAX];
	struct kb_buf b;

	snprintf(path, sizeof(path), "%s/%s", d->state_dir, CACHE_FILE);
	kb_buf_init(&b, 0);
	if (kb_file_read_small(path, 64u << 10, &b, &err) == 0)
		conf_text_apply(d, b.data, b.len, 0, true);
	kb_buf_close(&b);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"hostname", required_argument, NULL, 'H'},
	    {"poll-ms", required_argument, NULL, 'p'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct vsl_daemon *d = &daemon_state;
	struct kb_errmsg err = {{0}};
	char path[PATH_MAX];
	const char *dir = NULL;
	int level = KB_LOG_INFO, opt, rv, lock_fd;
	uv_loop_t loop;

	d->poll_ms = 2000;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'H':
			if (optarg[0] == '\0' || strlen(optarg) > VSL_HOSTNAME_MAX) {
				fprintf(stderr, "vmsyslogd: --hostname: 1 to %d bytes\n",
					VSL_HOSTNAME_MAX);
				return 2;
			}
			snprintf(d->hostname, sizeof(d->hostname), "%s", optarg);
			break;
		case 'p': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end || v < 100 || v > 600000) {
				fprintf(stderr, "vmsyslogd: --poll-ms: want 100..600000\n");
				return 2;
			}
			d->poll_ms = v;
			break;
		}
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "vmsyslogd: bad --log-level '%s'\n", optarg);
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
		fprintf(stderr, "vmsyslogd: %s\n",
			dir == NULL ? "--state-dir DIR is required" : "unexpected arguments");
		usage(stderr);
		return 2;
	}
	if (realpath(dir, d->state_dir) == NULL) {
		fprintf(stderr, "vmsyslogd: --state-dir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	lock_fd = take_lock(d->state_dir);
	if (lock_fd < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	kb_log_init(&logger, "vmsyslogd", level, 2);
	d->log = &logger;
	pthread_mutex_init(&d->ev_mu, NULL);
	d->started_ns = kb_wall_ns();
	d->conf.buffer_lines = VSL_BUFFER_DEFAULT;
	if (d->hostname[0] == '\0' && gethostname(d->hostname, sizeof(d->hostname) - 1) < 0)
		snprintf(d->hostname, sizeof(d->hostname), "-");
	snprintf(d->vmk_socket, sizeof(d->vmk_socket), "%s/vmkernel.sock", d->state_dir);
	snprintf(d->ctl_socket, sizeof(d->ctl_socket), "%s/vmsyslogd.sock", d->state_dir);

	rv = vsl_tail_init(&d->tail, on_line, d);
	if (rv) {
		kb_log(d->log, KB_LOG_ERROR, "inotify: %s", kb_strerror(rv));
		return 1;
	}
	uv_loop_init(&loop);
	d->loop = &loop;
	load_cache(d);
	snprintf(path, sizeof(path), "%s/%s", d->state_dir, PLACES_FILE);
	rv = vsl_tail_load(&d->tail, path);
	if (rv < 0)
		kb_log(d->log, KB_LOG_WARN, "%s: %s; following the logs from their end", path,
		       kb_strerror(rv));
	files_update(d, true);
	vsl_tail_poll(&d->tail);
	rv = vsl__ctl_start(d, &err);
	if (rv) {
		kb_log(d->log, KB_LOG_ERROR, "control socket: %s", err.msg);
		return 1;
	}
	uv_poll_init(&loop, &inotify_poll, d->tail.ifd);
	uv_poll_start(&inotify_poll, UV_READABLE, on_inotify);
	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, on_tick, 0, 1000);
	uv_signal_init(&loop, &sigterm);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_init(&loop, &sigint);
	uv_signal_start(&sigint, on_signal, SIGINT);
	kb_log(d->log, KB_LOG_INFO, "vmsyslogd ready: %s, hostname %s, %zu files followed",
	       d->ctl_socket, d->hostname, d->tail.n);

	uv_run(&loop, UV_RUN_DEFAULT);

	vsl__ctl_stop();
	save_places(d);
	uv_walk(&loop, close_handle, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	for (size_t i = 0; i < d->n_remotes; i++)
		vsl_remote_destroy(d->remotes[i]);
	vsl_tail_close(&d->tail);
	close(lock_fd);
	return 0;
}
