/*
 * `keel host syslog set|show|test`: remote syslog forwarding (docs/syslog.md).
 *
 * set writes etc/keel/syslog.conf into vmkernel's config store (cfg_put on vmkernel's
 * socket) after checking every option with vmsyslogd's own parser (kernel/syslog/conf.c),
 * so a bad URL, port or size is refused before anything changes; --clear removes the file
 * (forwarding off). vmsyslogd notices the new generation within its poll interval.
 *
 * show prints the configuration from the store and what vmsyslogd reports on its control
 * socket (proto/syslog.proto): each remote's state, counters and last error, the files it
 * follows and its recent events. A vmsyslogd that does not run is shown as such; the
 * configuration is still printed and the exit code is 0.
 *
 * test asks vmsyslogd to queue one test message for every remote, then watches each
 * remote's sent count for up to --wait seconds: exit 0 when every remote sent it, 1 when
 * one did not (its state and last error are printed).
 *
 * vmsyslogd's socket: --syslog-socket PATH, else vmsyslogd.sock beside vmkernel's socket.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/syslog/vsl.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "syslog.pb-c.h"

#define REPLY_MAX (4u << 20)

enum { O_REMOTE = 1, O_CA, O_BUFFER, O_CLEAR, O_SSOCK, O_WAIT, O_TEXT };

static void syslog_socket(const struct kc_ctx *ctx, const struct kc_call *call, char *out,
			  size_t size)
{
	const char *v = kc_opt(call, O_SSOCK);
	char dir[PATH_MAX];

	if (v) {
		snprintf(out, size, "%s", v);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", ctx->socket);
	snprintf(out, size, "%s/vmsyslogd.sock", dirname(dir));
}

/* One request to vmsyslogd. 0 and *out (caller frees), or a negative code with err set. */
static int call_vsl(struct kc_ctx *ctx, const char *path, const Keel__Syslog__SyslogRequest *rq,
		    Keel__Syslog__SyslogReply **out, char *err, size_t size)
{
	Keel__Syslog__SyslogReply *rp;
	struct pollfd p;
	struct kb_buf in;
	int fd, rv;
	uint64_t t = ctx->timeout_ms ? ctx->timeout_ms : 10000;

	*out = NULL;
	fd = kb_unix_connect(path);
	if (fd < 0) {
		snprintf(err, size, "cannot reach vmsyslogd at %s: %s (is vmsyslogd running?)",
			 path, strerror(-fd));
		return fd;
	}
	kb_buf_init(&in, REPLY_MAX);
	rv = kb_frame_send_pb(fd, &rq->base);
	p.fd = fd;
	p.events = POLLIN;
	if (rv == 0 && poll(&p, 1, t > INT32_MAX ? INT32_MAX : (int)t) <= 0)
		rv = KB_ETIMEOUT;
	if (rv == 0)
		rv = kb_frame_recv(fd, &in, REPLY_MAX);
	close(fd);
	if (rv) {
		snprintf(err, size, "vmsyslogd at %s: %s", path, kb_strerror(rv));
		kb_buf_close(&in);
		return rv;
	}
	rp = keel__syslog__syslog_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	if (rp == NULL) {
		snprintf(err, size, "vmsyslogd at %s: the reply does not decode", path);
		return KB_EPROTO;
	}
	if (rp->code != 0) {
		snprintf(err, size, "vmsyslogd: %s", rp->error ? rp->error : kb_strerror(rp->code));
		rv = rp->code;
		keel__syslog__syslog_reply__free_unpacked(rp, NULL);
		return rv;
	}
	*out = rp;
	return 0;
}

static Keel__Syslog__SyslogReply *status_of(struct kc_ctx *ctx, const char *path, char *err,
					    size_t size)
{
	Keel__Syslog__SyslogRequest rq = KEEL__SYSLOG__SYSLOG_REQUEST__INIT;
	Keel__Syslog__SyslogStatusRequest s = KEEL__SYSLOG__SYSLOG_STATUS_REQUEST__INIT;
	Keel__Syslog__SyslogReply *rp;

	rq.req_case = KEEL__SYSLOG__SYSLOG_REQUEST__REQ_STATUS;
	rq.status = &s;
	return call_vsl(ctx, path, &rq, &rp, err, size) == 0 ? rp : NULL;
}

/* syslog.conf from the store: KC_EXIT_OK with *found, its text in b and generation; or the
 * failure reported. */
static int get_conf(struct kc_ctx *ctx, bool *found, struct kb_buf *b, uint64_t *generation)
{
	return kc_store_get(ctx, VSL_CONF_PATH, found, b, generation);
}

static char *fmt_time(uint64_t ns, char *out, size_t size)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (ns == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(out, size, "-");
	else
		strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

/* ---- set ------------------------------------------------------------------------------- */

static int set_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgPut p = KEEL__VMK__VMK_CFG_PUT__INIT;
	Keel__Vmk__VmkCfgDelete del = KEEL__VMK__VMK_CFG_DELETE__INIT;
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmkReply *rp;
	struct vsl_conf conf;
	const char *ca = kc_opt(call, O_CA), *buf = kc_opt(call, O_BUFFER);
	bool clear = kc_has(call, O_CLEAR);
	struct kb_buf text;
	int rc;

	memset(&conf, 0, sizeof(conf));
	conf.buffer_lines = VSL_BUFFER_DEFAULT;
	if (clear && (kc_has(call, O_REMOTE) || ca || buf))
		return kc_usage(ctx, call, "--clear takes no other option");
	if (!clear && !kc_has(call, O_REMOTE))
		return kc_usage(ctx, call, "give at least one --remote URL, or --clear");
	for (int i = 0; i < call->nopts; i++) {
		if (call->opts[i].id != O_REMOTE)
			continue;
		if (conf.n_remotes == VSL_REMOTES_MAX)
			return kc_usage(ctx, call, "at most %d remotes", VSL_REMOTES_MAX);
		if (vsl_url_parse(call->opts[i].val, &conf.remotes[conf.n_remotes], &err))
			return kc_usage(ctx, call, "%s", err.msg);
		for (size_t j = 0; j < conf.n_remotes; j++)
			if (strcmp(conf.remotes[j].url, conf.remotes[conf.n_remotes].url) == 0)
				return kc_usage(ctx, call, "remote %s is given twice",
						conf.remotes[j].url);
		conf.n_remotes++;
	}
	if (ca) {
		char abs[PATH_MAX];
		rc = kc_abs_path(ca, abs, sizeof(abs));
		if (rc == 0)
			rc = vsl_conf_check_ca(abs, &err);
		if (rc)
			return kc_usage(ctx, call, "--ca %s: %s", ca,
					err.msg[0] ? err.msg : kb_strerror(rc));
		if (access(abs, R_OK) != 0)
			return kc_usage(ctx, call, "--ca %s: %s", ca, strerror(errno));
		snprintf(conf.ca, sizeof(conf.ca), "%s", abs);
	}
	if (buf && vsl_conf_parse_buffer(buf, &conf.buffer_lines, &err))
		return kc_usage(ctx, call, "--buffer-lines: %s", err.msg);

	if (clear) {
		del.path = VSL_CONF_PATH;
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_DELETE;
		req.cfg_delete = &del;
	} else {
		kb_buf_init(&text, 0);
		if (vsl_conf_render(&conf, &text) < 0) {
			kb_buf_close(&text);
			return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
		}
		p.path = VSL_CONF_PATH;
		p.data.data = text.data;
		p.data.len = text.len;
		p.mode = 0644;
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT;
		req.cfg_put = &p;
	}
	if (clear) {
		bool found;
		uint64_t gen;
		struct kb_buf old;
		kb_buf_init(&old, 0);
		rc = get_conf(ctx, &found, &old, &gen);
		kb_buf_close(&old);
		if (rc)
			return rc;
		if (!found) {
			if (ctx->json) {
				struct kc_json j;
				kc_json_init(&j, stdout);
				kc_json_obj_begin(&j, NULL);
				kc_json_bool(&j, "ok", true);
				kc_json_i64(&j, "code", 0);
				kc_json_bool(&j, "changed", false);
				kc_json_obj_end(&j);
				kc_json_finish(&j);
			} else {
				printf("Remote syslog is already off.\n");
			}
			return KC_EXIT_OK;
		}
	}
	rc = kc_rpc(ctx, &req, &rp);
	if (!clear)
		kb_buf_close(&text);
	if (rc)
		return rc;
	const Keel__Vmk__CfgStatus *st = rp->cfg_status;
	bool saved = st != NULL && !st->dirty;
	if (st != NULL && !saved)
		fprintf(stderr,
			"keel: warning: the change is kept in memory but could not be saved (%s)\n",
			st->last_save_error);
	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_bool(&j, "changed", true);
		kc_json_bool(&j, "saved", saved);
		kc_json_u64(&j, "generation", st ? st->generation : 0);
		kc_json_arr_begin(&j, "remotes");
		for (size_t i = 0; i < conf.n_remotes; i++)
			kc_json_str(&j, NULL, conf.remotes[i].url);
		kc_json_arr_end(&j);
		kc_json_str(&j, "ca", conf.ca);
		kc_json_u64(&j, "buffer_lines", clear ? 0 : conf.buffer_lines);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else if (clear) {
		printf("Remote syslog off (%s removed).\n", VSL_CONF_PATH);
	} else {
		printf("Remote syslog: %zu remote%s", conf.n_remotes,
		       conf.n_remotes == 1 ? "" : "s");
		for (size_t i = 0; i < conf.n_remotes; i++)
			printf("%s%s", i ? ", " : " (", conf.remotes[i].url);
		printf("), buffer %u lines per remote; %s generation %" PRIu64 "%s.\n",
		       conf.buffer_lines, VSL_CONF_PATH, st ? st->generation : 0,
		       saved ? "" : " (NOT saved)");
	}
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------------------ */

static void json_status(struct kc_json *j, const Keel__Syslog__SyslogStatus *st)
{
	kc_json_obj_begin(j, "daemon");
	kc_message_json_fields(j, &st->base, NULL);
	kc_json_obj_end(j);
}

static int show_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Syslog__SyslogReply *rp;
	struct kb_errmsg perr = {{0}};
	char path[PATH_MAX], derr[1024] = "", clean[1024], a[64];
	struct vsl_conf conf;
	uint64_t generation;
	struct kb_buf text;
	bool found;
	int rc, prc = 0;

	kb_buf_init(&text, 0);
	rc = get_conf(ctx, &found, &text, &generation);
	if (rc) {
		kb_buf_close(&text);
		return rc;
	}
	if (found)
		prc = vsl_conf_parse(text.data, text.len, &conf, &perr);
	syslog_socket(ctx, call, path, sizeof(path));
	rp = status_of(ctx, path, derr, sizeof(derr));
	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		if (!found) {
			kc_json_null(&j, "config");
		} else {
			kc_json_obj_begin(&j, "config");
			kc_json_str(&j, "path", VSL_CONF_PATH);
			kc_json_u64(&j, "generation", generation);
			kc_json_strn(&j, "text", text.data, text.len);
			if (prc) {
				kc_json_str(&j, "error", perr.msg);
			} else {
				kc_json_arr_begin(&j, "remotes");
				for (size_t i = 0; i < conf.n_remotes; i++)
					kc_json_str(&j, NULL, conf.remotes[i].url);
				kc_json_arr_end(&j);
				kc_json_str(&j, "ca", conf.ca);
				kc_json_u64(&j, "buffer_lines", conf.buffer_lines);
			}
			kc_json_obj_end(&j);
		}
		if (rp && rp->status)
			json_status(&j, rp->status);
		else
			kc_json_null(&j, "daemon");
		if (derr[0])
			kc_json_str(&j, "daemon_error", derr);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		goto out;
	}
	if (!found) {
		kc_kv(stdout, "Configuration", "none: remote syslog is off (%s missing)",
		      VSL_CONF_PATH);
	} else if (prc) {
		kc_kv(stdout, "Configuration", "%s generation %" PRIu64 " is INVALID: %s",
		      VSL_CONF_PATH, generation, perr.msg);
	} else {
		kc_kv(stdout, "Configuration", "%s generation %" PRIu64, VSL_CONF_PATH, generation);
		for (size_t i = 0; i < conf.n_remotes; i++)
			kc_kv(stdout, "Remote", "%s", conf.remotes[i].url);
		kc_kv(stdout, "CA", "%s", conf.ca[0] ? conf.ca : "- (the system's trust store)");
		kc_kv(stdout, "Buffer", "%u lines per remote", conf.buffer_lines);
	}
	printf("\n");
	if (rp == NULL || rp->status == NULL) {
		kc_kv(stdout, "vmsyslogd", "not running? %s", derr);
		goto out;
	}
	const Keel__Syslog__SyslogStatus *st = rp->status;
	kc_kv(stdout, "vmsyslogd", "running since %s, hostname %s",
	      fmt_time(st->started_ns, a, sizeof(a)), st->hostname);
	kc_kv(stdout, "In force", "generation %" PRIu64 "%s%s", st->config_generation,
	      st->config_error[0] ? "; last read REFUSED: " : "", st->config_error);
	kc_kv(stdout, "Lines read", "%" PRIu64 " from %zu files", st->lines, st->n_files);
	if (st->n_remotes) {
		static const char *const heads[] = {"REMOTE",	"STATE",   "SENT",
						    "BUFFERED", "DROPPED", "LAST ERROR"};
		struct kc_table t;
		printf("\n");
		kc_table_init(&t, 6, heads, "llrrrl");
		for (size_t i = 0; i < st->n_remotes; i++) {
			const Keel__Syslog__SyslogRemote *r = st->remotes[i];
			char sent[32], bufd[48], drop[32], state[64], le[600];
			snprintf(sent, sizeof(sent), "%" PRIu64, r->sent);
			snprintf(bufd, sizeof(bufd), "%" PRIu32 "/%" PRIu32, r->buffered,
				 r->buffer_lines);
			snprintf(drop, sizeof(drop), "%" PRIu64, r->dropped);
			if (r->retry_in_ms)
				snprintf(state, sizeof(state), "%s (retry in %.1f s)", r->state,
					 (double)r->retry_in_ms / 1000);
			else
				snprintf(state, sizeof(state), "%s", r->state);
			if (r->last_error[0])
				snprintf(le, sizeof(le), "%s: %s",
					 fmt_time(r->last_error_ns, a, sizeof(a)), r->last_error);
			else
				snprintf(le, sizeof(le), "-");
			kc_table_add(&t,
				     (const char *const[]){r->url, state, sent, bufd, drop, le});
		}
		rc = kc_table_print(&t, ctx, stdout);
		kc_table_close(&t);
	}
	if (st->n_events) {
		printf("\nEvents:\n");
		for (size_t i = 0; i < st->n_events; i++)
			printf("  %s %-5s %s\n", fmt_time(st->events[i]->time_ns, a, sizeof(a)),
			       st->events[i]->level,
			       kc_clean(st->events[i]->text, clean, sizeof(clean)));
	}
out:
	if (rp)
		keel__syslog__syslog_reply__free_unpacked(rp, NULL);
	kb_buf_close(&text);
	return rc;
}

/* ---- test ------------------------------------------------------------------------------ */

static int test_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Syslog__SyslogRequest rq = KEEL__SYSLOG__SYSLOG_REQUEST__INIT;
	Keel__Syslog__SyslogTestRequest tr = KEEL__SYSLOG__SYSLOG_TEST_REQUEST__INIT;
	Keel__Syslog__SyslogReply *before = NULL, *now = NULL;
	const char *w = kc_opt(call, O_WAIT);
	char path[PATH_MAX], err[1024];
	uint64_t wait_ms = 5000, deadline;
	bool all = false;
	size_t n;
	int rc;

	if (w && (kc_parse_seconds(w, &wait_ms) < 0 || wait_ms > 600000))
		return kc_usage(ctx, call, "bad --wait '%s': want seconds from 0 to 600", w);
	tr.text = (char *)(kc_opt(call, O_TEXT) ? kc_opt(call, O_TEXT) : "");
	if (strlen(tr.text) > 512)
		return kc_usage(ctx, call, "--text: at most 512 bytes");
	syslog_socket(ctx, call, path, sizeof(path));
	rq.req_case = KEEL__SYSLOG__SYSLOG_REQUEST__REQ_TEST;
	rq.test = &tr;
	rc = call_vsl(ctx, path, &rq, &before, err, sizeof(err));
	if (rc)
		return kc_fail(ctx,
			       rc == KB_EPROTO			    ? KC_EXIT_PROTO
			       : rc > KB_EBASE || rc == KB_ETIMEOUT ? KC_EXIT_UNREACHABLE
								    : KC_EXIT_FAILED,
			       rc, "%s", err);
	n = before->status ? before->status->n_remotes : 0;
	if (n == 0) {
		keel__syslog__syslog_reply__free_unpacked(before, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE,
			       "no remote is configured (keel host syslog set --remote URL)");
	}
	deadline = kb_now_ns() + wait_ms * KB_NSEC_PER_MSEC;
	for (;;) {
		if (now)
			keel__syslog__syslog_reply__free_unpacked(now, NULL);
		now = status_of(ctx, path, err, sizeof(err));
		if (now == NULL || now->status == NULL)
			break;
		all = true;
		for (size_t i = 0; i < n; i++) {
			const Keel__Syslog__SyslogRemote *b = before->status->remotes[i], *r = NULL;
			for (size_t k = 0; k < now->status->n_remotes; k++)
				if (strcmp(now->status->remotes[k]->url, b->url) == 0)
					r = now->status->remotes[k];
			/* Sent once everything queued before it (and it) has gone. */
			if (r == NULL || r->sent < b->sent + b->buffered + 1)
				all = false;
		}
		if (all || kb_now_ns() >= deadline)
			break;
		kb_sleep_ns(100 * KB_NSEC_PER_MSEC);
	}
	if (now == NULL || now->status == NULL) {
		keel__syslog__syslog_reply__free_unpacked(before, NULL);
		return kc_fail(ctx, KC_EXIT_UNREACHABLE, 0, "%s", err);
	}
	struct kc_json j;
	if (ctx->json) {
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", all);
		kc_json_i64(&j, "code", all ? 0 : KB_ETIMEOUT);
		kc_json_u64(&j, "test_id", before->test_id);
		kc_json_arr_begin(&j, "remotes");
	} else {
		printf("Test message %" PRIu64 ":\n", before->test_id);
	}
	for (size_t i = 0; i < n; i++) {
		const Keel__Syslog__SyslogRemote *b = before->status->remotes[i], *r = NULL;
		for (size_t k = 0; k < now->status->n_remotes; k++)
			if (strcmp(now->status->remotes[k]->url, b->url) == 0)
				r = now->status->remotes[k];
		bool sent = r != NULL && r->sent >= b->sent + b->buffered + 1;
		if (ctx->json) {
			kc_json_obj_begin(&j, NULL);
			kc_json_str(&j, "url", b->url);
			kc_json_bool(&j, "sent", sent);
			kc_json_str(&j, "state", r ? r->state : "removed");
			kc_json_str(&j, "last_error", r ? r->last_error : "");
			kc_json_obj_end(&j);
		} else if (sent) {
			printf("  %-40s sent\n", b->url);
		} else {
			char clean[KB_ERRMSG_SIZE];
			printf("  %-40s NOT sent: %s%s%s\n", b->url, r ? r->state : "removed",
			       r && r->last_error[0] ? ": " : "",
			       r ? kc_clean(r->last_error, clean, sizeof(clean)) : "");
		}
	}
	if (ctx->json) {
		kc_json_arr_end(&j);
		if (!all) {
			kc_json_str(&j, "error", "the test message was not sent to every remote");
			kc_json_i64(&j, "exit_code", KC_EXIT_FAILED);
		}
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	}
	keel__syslog__syslog_reply__free_unpacked(before, NULL);
	keel__syslog__syslog_reply__free_unpacked(now, NULL);
	fflush(stdout);
	if (!all && !ctx->json)
		fprintf(stderr,
			"keel: the test message was not sent to every remote within %.1f s\n",
			(double)wait_ms / 1000);
	return all ? KC_EXIT_OK : KC_EXIT_FAILED;
}

/* ---- the commands ---------------------------------------------------------------------- */

static const struct kc_opt set_opts[] = {
    {"remote", "URL", "udp://HOST[:514], tcp://HOST[:601] or tls://HOST[:6514]", O_REMOTE, true},
    {"ca", "FILE", "CA certificate(s) that sign the tls:// servers' certificates", O_CA, false},
    {"buffer-lines", "N", "messages kept per remote while it is away (default 10000)", O_BUFFER,
     false},
    {"clear", NULL, "remove the configuration: no remote syslog", O_CLEAR, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt show_opts[] = {
    {"syslog-socket", "PATH", "vmsyslogd's control socket", O_SSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt test_opts[] = {
    {"syslog-socket", "PATH", "vmsyslogd's control socket", O_SSOCK, false},
    {"wait", "SECONDS", "how long to wait for every remote to send it (default 5)", O_WAIT, false},
    {"text", "TEXT", "added to the test message", O_TEXT, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd set_cmd = {
    .name = "set",
    .summary = "Forward the host's logs to these syslog servers (or --clear).",
    .detail = "Replaces etc/keel/syslog.conf in the config store; vmsyslogd applies it within\n"
	      "about 2 s. Messages are RFC 5424; UDP sends one datagram each (at most 2048\n"
	      "bytes), TCP and TLS use octet counting (RFC 6587, RFC 5425). A tls:// server's\n"
	      "certificate must be signed by --ca (else the system's trust store) and name\n"
	      "the host or IP address of the URL. At most 8 remotes; --buffer-lines 1..1000000.\n"
	      "Example:\n"
	      "  keel host syslog set --remote tls://198.18.0.9:6514 --ca /etc/keel/log-ca.pem \\\n"
	      "      --remote udp://127.0.0.1:514\n",
    .opts = set_opts,
    .run = set_run,
};

static const struct kc_cmd show_cmd = {
    .name = "show",
    .summary = "Show the remote syslog configuration and each remote's state.",
    .detail = "States: connecting, connected, backing off (unreachable: messages are kept\n"
	      "up to the buffer; past it they are dropped and counted), error (a name that\n"
	      "does not resolve, a CA that does not load, a TLS server not accepted: retried\n"
	      "all the same).\n",
    .opts = show_opts,
    .run = show_run,
};

static const struct kc_cmd test_cmd = {
    .name = "test",
    .summary = "Send one test message to every remote syslog server.",
    .detail = "The message has APP-NAME vmsyslogd and MSGID TEST. Exit 0 when every remote\n"
	      "sent it within --wait, 1 otherwise.\n",
    .opts = test_opts,
    .run = test_run,
};

static const struct kc_cmd *const syslog_subs[] = {&set_cmd, &show_cmd, &test_cmd, NULL};

const struct kc_cmd kc_host_syslog_cmd = {
    .name = "syslog",
    .summary = "Remote syslog forwarding (vmsyslogd).",
    .subs = syslog_subs,
};
