/*
 * `keel host ntp set|show|sync-status`: the host's NTP servers (docs/ntp.md).
 *
 * set writes etc/keel/ntp.conf into vmkernel's config store (cfg_put on vmkernel's
 * socket) after checking the servers with vmntpd's own parser (kernel/ntp/conf.c), so a
 * bad server or port is refused before anything changes; --clear removes the file.
 * vmntpd notices the new generation within its poll interval and hands the servers to
 * chrony (the system's chronyd, or its private one).
 *
 * show prints the configuration from the store and vmntpd's status file
 * (vmntpd.status beside vmkernel's socket): the state (synced, starting, unreachable,
 * unsynchronised), the chronyd used and the recent events. A vmntpd that does not run is
 * shown as such; the configuration is still printed and the exit code is 0.
 *
 * sync-status asks chrony itself (`chronyc -n -c tracking` and `sources` on the socket
 * vmntpd uses, or --chrony-socket): reference, stratum, offset, frequency, leap status
 * and each source's state. Exit 0 when chrony answered, 1 when it did not.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/ntp/ntp.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "mgmt-api/keel/keel.h"

enum { O_PRIVATE = 1, O_POLL, O_CLEAR, O_CSOCK };

/* The state dir: the directory of vmkernel's socket. */
static void state_dir(const struct kc_ctx *ctx, char *out, size_t size)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", ctx->socket);
	snprintf(out, size, "%s", dirname(dir));
}

/* ntp.conf from the store: KC_EXIT_OK with *found, its text in b and generation; or the
 * failure reported. */
static int get_conf(struct kc_ctx *ctx, bool *found, struct kb_buf *b, uint64_t *generation)
{
	return kc_store_get(ctx, NTP_CONF_PATH, found, b, generation);
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

/* ---- set ------------------------------------------------------------------------------- */

static int set_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgPut p = KEEL__VMK__VMK_CFG_PUT__INIT;
	Keel__Vmk__VmkCfgDelete del = KEEL__VMK__VMK_CFG_DELETE__INIT;
	struct ntp_conf conf = {.mode = NTP_MODE_SYSTEM};
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmkReply *rp;
	const char *poll = kc_opt(call, O_POLL);
	bool clear = kc_has(call, O_CLEAR);
	char servers[2048];
	struct kb_buf text;
	int rc;

	kb_buf_init(&text, 0);
	if (clear && (call->npos || poll || kc_has(call, O_PRIVATE)))
		return kc_usage(ctx, call, "--clear takes no servers and no other option");
	if (!clear && call->npos != 1)
		return kc_usage(ctx, call, "give the servers (SERVER[,SERVER...]), or --clear");
	if (!clear) {
		if (ntp_servers_parse_list(call->pos[0], &conf, &err))
			return kc_usage(ctx, call, "%s", err.msg);
		if (kc_has(call, O_PRIVATE))
			conf.mode = NTP_MODE_PRIVATE;
		if (poll) {
			char *end;
			long v;

			errno = 0;
			v = strtol(poll, &end, 10);
			if (errno || end == poll || *end || v < NTP_POLL_MIN || v > NTP_POLL_MAX)
				return kc_usage(ctx, call, "--poll: a number %d..%d (log2 seconds)",
						NTP_POLL_MIN, NTP_POLL_MAX);
			conf.poll_set = true;
			conf.poll = (int)v;
		}
		/* what is written must read back the same with the daemon's parser */
		struct ntp_conf back;

		if (ntp_conf_write(&conf, &text) < 0) {
			kb_buf_close(&text);
			return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
		}
		if (ntp_conf_parse((const char *)text.data, text.len, &back, &err)) {
			kb_buf_close(&text);
			return kc_usage(ctx, call, "%s", err.msg);
		}
		p.path = NTP_CONF_PATH;
		p.data.data = text.data;
		p.data.len = text.len;
		p.mode = 0644;
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT;
		req.cfg_put = &p;
	} else {
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
				printf("No NTP servers are configured.\n");
			}
			return KC_EXIT_OK;
		}
		del.path = NTP_CONF_PATH;
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_DELETE;
		req.cfg_delete = &del;
	}
	rc = kc_rpc(ctx, &req, &rp);
	kb_buf_close(&text);
	if (rc)
		return rc;
	const Keel__Vmk__CfgStatus *st = rp->cfg_status;
	bool saved = st != NULL && !st->dirty;

	if (st != NULL && !saved)
		fprintf(stderr,
			"keel: warning: the change is kept in memory but could not be saved (%s)\n",
			st->last_save_error);
	servers_text(&conf, servers, sizeof(servers));
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_bool(&j, "changed", true);
		kc_json_bool(&j, "saved", saved);
		kc_json_u64(&j, "generation", st ? st->generation : 0);
		kc_json_arr_begin(&j, "servers");
		for (size_t i = 0; i < conf.n_servers; i++) {
			char s[NTP_HOST_MAX + 16];

			ntp_server_fmt(&conf.servers[i], s, sizeof(s));
			kc_json_str(&j, NULL, s);
		}
		kc_json_arr_end(&j);
		if (!clear)
			kc_json_str(&j, "mode", ntp_mode_name(conf.mode));
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else if (clear) {
		printf("NTP servers removed (%s); chrony is left as it is.\n", NTP_CONF_PATH);
	} else {
		printf("NTP servers %s (mode %s); %s generation %" PRIu64 "%s.\n", servers,
		       ntp_mode_name(conf.mode), NTP_CONF_PATH, st ? st->generation : 0,
		       saved ? "" : " (NOT saved)");
	}
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------------------ */

/* The value of key in vmntpd's status text (the first one), or "". */
static const char *status_value(const char *text, const char *key, char *out, size_t size)
{
	size_t kl = strlen(key);

	out[0] = '\0';
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) == 0 && strncmp(l + kl, " = ", 3) == 0) {
			const char *v = l + kl + 3;
			size_t n = strcspn(v, "\n");

			if (n >= size)
				n = size - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			break;
		}
	}
	return out;
}

static int read_status(const struct kc_ctx *ctx, struct kb_buf *b, char *err, size_t size)
{
	struct kb_errmsg e = {{0}};
	char dir[PATH_MAX], path[PATH_MAX + 32];
	int rv;

	state_dir(ctx, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, NTP_STATUS_FILE);
	rv = kb_file_read_small(path, NTP_STATUS_MAX, b, &e);
	if (rv == 0)
		rv = kb_buf_append(b, "", 1);
	if (rv)
		snprintf(err, size, "%s", rv == -ENOENT ? "no status: is vmntpd running?" : e.msg);
	return rv;
}

static int show_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const keys[] = {
	    "state",	    "mode",	      "mode_reason",   "servers",      "reference",
	    "stratum",	    "offset_ns",      "chrony_socket", "chronyd_pid",  "config_generation",
	    "config_error", "vmkernel_error", "apply_error",   "chrony_error", "time_ns"};
	struct kb_errmsg perr = {{0}};
	char serr[512] = "", v[1024], servers[2048];
	struct ntp_conf conf;
	uint64_t generation;
	struct kb_buf text, st;
	bool found, have_st;
	int rc, prc = 0;

	(void)call;
	kb_buf_init(&text, 0);
	kb_buf_init(&st, 0);
	rc = get_conf(ctx, &found, &text, &generation);
	if (rc)
		goto out;
	if (found)
		prc = ntp_conf_parse((const char *)text.data, text.len, &conf, &perr);
	have_st = read_status(ctx, &st, serr, sizeof(serr)) == 0;
	const char *s = have_st ? (const char *)st.data : "";
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
			kc_json_str(&j, "path", NTP_CONF_PATH);
			kc_json_u64(&j, "generation", generation);
			kc_json_strn(&j, "text", text.data, text.len);
			if (prc) {
				kc_json_str(&j, "error", perr.msg);
			} else {
				kc_json_arr_begin(&j, "servers");
				for (size_t i = 0; i < conf.n_servers; i++) {
					char sv[NTP_HOST_MAX + 16];

					ntp_server_fmt(&conf.servers[i], sv, sizeof(sv));
					kc_json_str(&j, NULL, sv);
				}
				kc_json_arr_end(&j);
				kc_json_str(&j, "mode", ntp_mode_name(conf.mode));
				if (conf.poll_set)
					kc_json_i64(&j, "poll", conf.poll);
			}
			kc_json_obj_end(&j);
		}
		if (!have_st) {
			kc_json_null(&j, "daemon");
			kc_json_str(&j, "daemon_error", serr);
		} else {
			kc_json_obj_begin(&j, "daemon");
			for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
				kc_json_str(&j, keys[i], status_value(s, keys[i], v, sizeof(v)));
			kc_json_bool(&j, "synced",
				     strcmp(status_value(s, "synced", v, sizeof(v)), "1") == 0);
			kc_json_arr_begin(&j, "events");
			for (const char *l = s; l && *l;
			     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
				if (strncmp(l, "event = ", 8) == 0)
					kc_json_strn(&j, NULL, l + 8, strcspn(l + 8, "\n"));
			kc_json_arr_end(&j);
			kc_json_obj_end(&j);
		}
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		goto out;
	}
	if (!found) {
		kc_kv(stdout, "Configuration", "none (%s missing)", NTP_CONF_PATH);
	} else if (prc) {
		kc_kv(stdout, "Configuration", "%s generation %" PRIu64 " is INVALID: %s",
		      NTP_CONF_PATH, generation, perr.msg);
	} else {
		servers_text(&conf, servers, sizeof(servers));
		kc_kv(stdout, "Configuration", "%s generation %" PRIu64, NTP_CONF_PATH, generation);
		kc_kv(stdout, "Servers", "%s", servers);
		kc_kv(stdout, "Mode", "%s", ntp_mode_name(conf.mode));
		if (conf.poll_set)
			kc_kv(stdout, "Poll", "2^%d s", conf.poll);
	}
	printf("\n");
	if (!have_st) {
		kc_kv(stdout, "vmntpd", "%s", serr);
		goto out;
	}
	kc_kv(stdout, "State", "%s", status_value(s, "state", v, sizeof(v)));
	if (strcmp(status_value(s, "synced", v, sizeof(v)), "1") == 0) {
		char ref[300], strat[16];

		status_value(s, "reference", ref, sizeof(ref));
		status_value(s, "stratum", strat, sizeof(strat));
		kc_kv(stdout, "Reference", "%s, stratum %s", ref, strat);
		kc_kv(stdout, "Offset", "%+.6f s",
		      (double)strtoll(status_value(s, "offset_ns", v, sizeof(v)), NULL, 10) / 1e9);
	}
	char reason[300];

	status_value(s, "mode_reason", reason, sizeof(reason));
	kc_kv(stdout, "chronyd", "%s%s%s (socket %s)", status_value(s, "mode", v, sizeof(v)),
	      reason[0] ? ": " : "", reason,
	      status_value(s, "chrony_socket", servers, sizeof(servers)));
	static const char *const errs[] = {"config_error", "vmkernel_error", "apply_error",
					   "chrony_error"};
	for (size_t i = 0; i < 4; i++)
		if (status_value(s, errs[i], v, sizeof(v))[0])
			kc_kv(stdout, errs[i], "%s", v);
	printf("\nEvents:\n");
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "event = ", 8) != 0)
			continue;
		char *end;
		uint64_t ns = strtoull(l + 8, &end, 10);
		time_t t = (time_t)(ns / 1000000000u);
		struct tm tm;
		char ts[32] = "-";

		if (gmtime_r(&t, &tm))
			strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("  %s %.*s\n", ts, (int)strcspn(end + 1, "\n"), end + 1);
	}
out:
	kb_buf_close(&text);
	kb_buf_close(&st);
	return rc;
}

/* ---- sync-status ----------------------------------------------------------------------- */

static int sync_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *trk[] = {"tracking", NULL}, *srcs[] = {"sources", NULL};
	struct ntp_source src[NTP_SOURCES_MAX];
	struct kb_errmsg e = {{0}};
	struct ntp_tracking tr;
	char sock[PATH_MAX + 32], serr[512], dir[PATH_MAX];
	struct kb_buf out, st;
	size_t n = 0;
	bool reachable = false;
	int rv;

	if (kc_opt(call, O_CSOCK)) {
		snprintf(sock, sizeof(sock), "%s", kc_opt(call, O_CSOCK));
	} else {
		kb_buf_init(&st, 0);
		sock[0] = '\0';
		if (read_status(ctx, &st, serr, sizeof(serr)) == 0)
			status_value((const char *)st.data, "chrony_socket", sock, sizeof(sock));
		kb_buf_close(&st);
		if (!sock[0]) {
			state_dir(ctx, dir, sizeof(dir));
			snprintf(sock, sizeof(sock), "%s/%s/%s", dir, NTP_DIR, NTP_SOCK_NAME);
		}
	}
	kb_buf_init(&out, 1u << 20);
	rv = ntp_chronyc(sock, trk, &out, &e);
	if (rv == 0 && kb_buf_append(&out, "", 1) < 0)
		rv = -ENOMEM;
	if (rv == 0)
		rv = ntp_tracking_parse((const char *)out.data, &tr, &e);
	if (rv == 0) {
		out.len = 0;
		rv = ntp_chronyc(sock, srcs, &out, &e);
		if (rv == 0)
			rv = ntp_sources_parse((const char *)out.data, out.len, src,
					       NTP_SOURCES_MAX, &n, &e);
	}
	kb_buf_close(&out);
	if (rv)
		return kc_fail(ctx, KC_EXIT_FAILED, rv, "chrony at %s: %s", sock,
			       e.msg[0] ? e.msg : kb_strerror(rv));
	for (size_t i = 0; i < n; i++)
		reachable |= src[i].reach != 0;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "socket", sock);
		kc_json_bool(&j, "synced", tr.synced);
		kc_json_bool(&j, "reachable", reachable);
		kc_json_str(&j, "ref_id", tr.ref_id);
		kc_json_str(&j, "reference", tr.ref_name);
		kc_json_u64(&j, "stratum", tr.stratum);
		kc_json_double(&j, "offset_s", (double)tr.offset_ns / 1e9);
		kc_json_double(&j, "last_offset_s", tr.last_offset_s);
		kc_json_double(&j, "rms_offset_s", tr.rms_offset_s);
		kc_json_double(&j, "frequency_ppm", tr.freq_ppm);
		kc_json_double(&j, "skew_ppm", tr.skew_ppm);
		kc_json_double(&j, "root_delay_s", tr.root_delay_s);
		kc_json_double(&j, "root_dispersion_s", tr.root_disp_s);
		kc_json_str(&j, "leap", tr.leap);
		kc_json_arr_begin(&j, "sources");
		for (size_t i = 0; i < n; i++) {
			char c[2] = {src[i].mode, 0}, s[2] = {src[i].state, 0};

			kc_json_obj_begin(&j, NULL);
			kc_json_str(&j, "name", src[i].name);
			kc_json_str(&j, "mode", c);
			kc_json_str(&j, "state", ntp_source_state_name(src[i].state));
			kc_json_str(&j, "state_char", s);
			kc_json_u64(&j, "stratum", src[i].stratum);
			kc_json_i64(&j, "poll", src[i].poll);
			kc_json_u64(&j, "reach", src[i].reach);
			kc_json_bool(&j, "reachable", src[i].reach != 0);
			kc_json_i64(&j, "last_rx_s", src[i].last_rx_s);
			kc_json_double(&j, "offset_s", src[i].offset_s);
			kc_json_double(&j, "error_s", src[i].error_s);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return KC_EXIT_OK;
	}
	kc_kv(stdout, "Synchronised", "%s", tr.synced ? "yes" : "NO");
	if (tr.synced) {
		kc_kv(stdout, "Reference", "%s (%s)", tr.ref_name, tr.ref_id);
		kc_kv(stdout, "Stratum", "%u", tr.stratum);
		kc_kv(stdout, "Offset", "%+.9f s (the clock is %s)", (double)tr.offset_ns / 1e9,
		      tr.offset_ns > 0 ? "ahead" : "behind");
	}
	kc_kv(stdout, "Frequency", "%.3f ppm (skew %.3f ppm)", tr.freq_ppm, tr.skew_ppm);
	kc_kv(stdout, "Leap status", "%s", tr.leap);
	if (!reachable)
		kc_kv(stdout, "Sources", "%s",
		      n ? "no reachable source: no server has answered" : "none");
	if (n) {
		static const char *const heads[] = {"SOURCE", "STATE",	 "STRATUM",
						    "REACH",  "LAST RX", "OFFSET"};
		struct kc_table t;

		printf("\n");
		kc_table_init(&t, 6, heads, "llrrrr");
		for (size_t i = 0; i < n; i++) {
			char st_s[8], reach[8], rx[24], off[32];
			const char *cells[6] = {
			    src[i].name, ntp_source_state_name(src[i].state), st_s, reach, rx, off};

			snprintf(st_s, sizeof(st_s), "%u", src[i].stratum);
			snprintf(reach, sizeof(reach), "%03o", src[i].reach);
			if (src[i].last_rx_s < 0)
				snprintf(rx, sizeof(rx), "never");
			else
				snprintf(rx, sizeof(rx), "%" PRId64 " s", src[i].last_rx_s);
			if (src[i].reach)
				snprintf(off, sizeof(off), "%+.6f s", src[i].offset_s);
			else
				snprintf(off, sizeof(off), "-");
			kc_table_add(&t, cells);
		}
		kc_table_print(&t, ctx, stdout);
		kc_table_close(&t);
	}
	return KC_EXIT_OK;
}

/* ---- the commands ---------------------------------------------------------------------- */

static const struct kc_opt set_opts[] = {
    {"private", NULL, "always run a private chronyd that never sets the clock", O_PRIVATE, false},
    {"poll", "N", "poll the servers every 2^N s, -6..10 (default: chrony's)", O_POLL, false},
    {"clear", NULL, "remove the configuration", O_CLEAR, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt sync_opts[] = {
    {"chrony-socket", "PATH", "chronyd's command socket (default: the one vmntpd uses)", O_CSOCK,
     false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd set_cmd = {
    .name = "set",
    .args = "SERVER[,SERVER...]",
    .summary = "Synchronise the host's clock with these NTP servers (or --clear).",
    .detail = "Replaces etc/keel/ntp.conf in the config store; vmntpd hands the servers to\n"
	      "chrony within about 2 s: to the system's chronyd (sources.d) where the host may\n"
	      "set the clock, else (and with --private) to a private `chronyd -x` that never\n"
	      "touches it. SERVER is HOST[:PORT] (a DNS name, an IPv4 address, or an IPv6\n"
	      "address in []); at most 8.\n"
	      "Example:\n"
	      "  keel host ntp set 198.18.0.1,198.18.0.2:1123 --private\n",
    .min_pos = 0,
    .max_pos = 1,
    .opts = set_opts,
    .run = set_run,
};

static const struct kc_cmd show_cmd = {
    .name = "show",
    .summary = "Show the NTP configuration, vmntpd's state and its recent events.",
    .detail = "States: starting, synced, unsynchronised (servers answer, none selected yet),\n"
	      "unreachable (no server answered for 8 s: the configuration stays and chrony\n"
	      "keeps trying), chrony not answering, no configuration.\n",
    .run = show_run,
};

static const struct kc_cmd sync_cmd = {
    .name = "sync-status",
    .summary = "Show chrony's synchronisation: reference, offset, frequency, sources.",
    .detail = "From `chronyc -n -c tracking` and `chronyc -n -c sources`. Exit 1 when chrony\n"
	      "does not answer.\n",
    .opts = sync_opts,
    .run = sync_run,
};

static const struct kc_cmd *const ntp_subs[] = {&set_cmd, &show_cmd, &sync_cmd, NULL};

const struct kc_cmd kc_host_ntp_cmd = {
    .name = "ntp",
    .summary = "The host's NTP servers and clock synchronisation (vmntpd, chrony).",
    .subs = ntp_subs,
};
