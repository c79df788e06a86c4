/*
 * `keel host snmp enable|disable|show`: the SNMP subagent keel-snmpd (docs/snmp.md).
 *
 * enable writes etc/keel/snmp.conf into vmkernel's config store (cfg_put on vmkernel's
 * socket) with enabled = yes, and the snmpd drop-in (AgentX master, the read-only
 * community on the Keel subtree, the trap sinks) to the configuration's dropin path.
 * Options not given keep their value from the stored file, so enabling again after a
 * disable loses nothing. Every option is checked with keel-snmpd's own parser
 * (kernel/snmp/conf.c) and the drop-in's directory must exist before anything is written;
 * a mistake is a usage error (exit 2) that changes nothing.
 *
 * disable keeps the file with enabled = no (community and sinks stay for the next enable)
 * and removes the drop-in. snmpd reads drop-ins when it starts or reloads.
 *
 * show prints the stored configuration, whether the drop-in is in place, and keel-snmpd's
 * status file (keel-snmpd.status beside vmkernel's socket, or --status-file): connected to
 * the AgentX master or not, reconnections, the last poll, notifications sent, events. A
 * keel-snmpd that does not run is shown as such; the exit code is still 0.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernel/snmp/ksnmp.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"

enum { O_COMMUNITY = 1, O_SINK, O_AGENTX, O_DROPIN, O_STATUS, O_NO_SINKS };

#define STATUS_MAX  (64u << 10)
#define SNMPD_GROUP "Debian-snmp" /* the group Debian's snmpd runs as */

/* snmp.conf from the store: KC_EXIT_OK with *found and the parsed file (parse error in
 * perr, text in text), or the failure reported. */
static int get_conf(struct kc_ctx *ctx, bool *found, struct kb_buf *text, uint64_t *generation)
{
	return kc_store_get(ctx, KSNMP_CONF_PATH, found, text, generation);
}

/* Writes conf to the store. KC_EXIT_OK with *generation and *saved, or the failure reported. */
static int put_conf(struct kc_ctx *ctx, const struct ksnmp_conf *conf, uint64_t *generation,
		    bool *saved)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgPut p = KEEL__VMK__VMK_CFG_PUT__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kb_buf text;
	int rc;

	kb_buf_init(&text, 0);
	if (ksnmp_conf_render(conf, &text) < 0) {
		kb_buf_close(&text);
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
	}
	p.path = KSNMP_CONF_PATH;
	p.data.data = text.data;
	p.data.len = text.len;
	p.mode = 0644;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT;
	req.cfg_put = &p;
	rc = kc_rpc(ctx, &req, &rp);
	kb_buf_close(&text);
	if (rc)
		return rc;
	const Keel__Vmk__CfgStatus *st = rp->cfg_status;
	*saved = st != NULL && !st->dirty;
	*generation = st ? st->generation : 0;
	if (st != NULL && !*saved)
		fprintf(stderr,
			"keel: warning: the change is kept in memory but could not be saved (%s)\n",
			st->last_save_error);
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

/* The stored configuration (defaults when there is none). A stored file that does not
 * parse is reported: KC_EXIT_FAILED. */
static int load(struct kc_ctx *ctx, struct ksnmp_conf *conf, bool *found, uint64_t *generation)
{
	struct kb_errmsg err = {{0}};
	struct kb_buf text;
	int rc;

	kb_buf_init(&text, 0);
	rc = get_conf(ctx, found, &text, generation);
	ksnmp_conf_defaults(conf);
	if (rc == KC_EXIT_OK && *found && ksnmp_conf_parse(text.data, text.len, conf, &err))
		rc = kc_fail(ctx, KC_EXIT_FAILED, KB_ECONFIG,
			     "%s in the config store does not parse: %s (keel host config can "
			     "replace it)",
			     KSNMP_CONF_PATH, err.msg);
	kb_buf_close(&text);
	return rc;
}

static void json_conf(struct kc_json *j, const char *key, const struct ksnmp_conf *c)
{
	char s[KSNMP_HOST_MAX + 16];

	kc_json_obj_begin(j, key);
	kc_json_str(j, "path", KSNMP_CONF_PATH);
	kc_json_bool(j, "enabled", c->enabled);
	kc_json_str(j, "community", c->community);
	kc_json_arr_begin(j, "trap_sinks");
	for (size_t i = 0; i < c->n_sinks; i++) {
		snprintf(s, sizeof(s), "%s:%u", c->sinks[i].host, c->sinks[i].port);
		kc_json_str(j, NULL, s);
	}
	kc_json_arr_end(j);
	kc_json_str(j, "agentx_socket", c->agentx_socket);
	kc_json_str(j, "dropin", c->dropin);
	kc_json_obj_end(j);
}

/* ---- enable / disable --------------------------------------------------------------------- */

static int enable_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	struct kb_errmsg err = {{0}};
	struct ksnmp_conf conf;
	const char *v;
	char abs[PATH_MAX], dir[PATH_MAX];
	uint64_t generation;
	bool found, saved;
	struct kb_buf drop;
	int rc;

	if (kc_has(call, O_SINK) && kc_has(call, O_NO_SINKS))
		return kc_usage(ctx, call, "--no-trap-sinks takes no --trap-sink");
	/* check the options before asking anything */
	if ((v = kc_opt(call, O_COMMUNITY)) && ksnmp_community_check(v, &err))
		return kc_usage(ctx, call, "--community: %s", err.msg);
	struct ksnmp_conf given;
	ksnmp_conf_defaults(&given);
	for (int i = 0; i < call->nopts; i++) {
		if (call->opts[i].id != O_SINK)
			continue;
		if (given.n_sinks == KSNMP_SINKS_MAX)
			return kc_usage(ctx, call, "at most %d trap sinks", KSNMP_SINKS_MAX);
		if (ksnmp_sink_parse(call->opts[i].val, &given.sinks[given.n_sinks], &err))
			return kc_usage(ctx, call, "--trap-sink: %s", err.msg);
		for (size_t j = 0; j < given.n_sinks; j++)
			if (strcmp(given.sinks[j].host, given.sinks[given.n_sinks].host) == 0 &&
			    given.sinks[j].port == given.sinks[given.n_sinks].port)
				return kc_usage(ctx, call, "--trap-sink %s is given twice",
						call->opts[i].val);
		given.n_sinks++;
	}
	for (int id = O_AGENTX; id <= O_DROPIN; id++) {
		v = kc_opt(call, id);
		if (v == NULL)
			continue;
		const char *what = id == O_AGENTX ? "--agentx-socket" : "--dropin";
		rc = kc_abs_path(v, abs, sizeof(abs));
		if (rc)
			return kc_usage(ctx, call, "%s %s: %s", what, v, kb_strerror(rc));
		if (ksnmp_path_check(what, abs, &err))
			return kc_usage(ctx, call, "%s", err.msg);
		snprintf(id == O_AGENTX ? given.agentx_socket : given.dropin, KSNMP_PATH_MAX, "%s",
			 abs);
	}

	rc = load(ctx, &conf, &found, &generation);
	if (rc)
		return rc;
	conf.enabled = true;
	if ((v = kc_opt(call, O_COMMUNITY)))
		snprintf(conf.community, sizeof(conf.community), "%s", v);
	if (kc_has(call, O_SINK) || kc_has(call, O_NO_SINKS)) {
		conf.n_sinks = given.n_sinks;
		memcpy(conf.sinks, given.sinks, sizeof(conf.sinks));
	}
	if (kc_has(call, O_AGENTX))
		snprintf(conf.agentx_socket, sizeof(conf.agentx_socket), "%s", given.agentx_socket);
	if (kc_has(call, O_DROPIN))
		snprintf(conf.dropin, sizeof(conf.dropin), "%s", given.dropin);

	/* the drop-in's directory must be there: nothing is written otherwise */
	struct stat st;
	snprintf(dir, sizeof(dir), "%s", conf.dropin);
	if (stat(dirname(dir), &st) != 0 || !S_ISDIR(st.st_mode))
		return kc_usage(ctx, call,
				"the drop-in's directory %s does not exist (is snmpd installed? "
				"--dropin PATH writes it elsewhere)",
				dir);
	if (access(dir, W_OK) != 0)
		return kc_usage(ctx, call, "cannot write the drop-in into %s: %s", dir,
				strerror(errno));

	kb_buf_init(&drop, 0);
	if (ksnmp_dropin_render(&conf, &drop) < 0) {
		kb_buf_close(&drop);
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
	}
	/* it holds the community: readable by root and snmpd's group only (Debian's snmpd
	 * reads its configuration again as Debian-snmp on a reload) */
	rc = kb_file_write_atomic(conf.dropin, drop.data, drop.len, 0640, &err);
	kb_buf_close(&drop);
	if (rc < 0 && rc != KB_ENOTSYNCED)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "writing the snmpd drop-in: %s", err.msg);
	const struct group *grp = getgrnam(SNMPD_GROUP);
	if (grp != NULL && chown(conf.dropin, (uid_t)-1, grp->gr_gid) != 0)
		fprintf(stderr, "keel: warning: %s: cannot give it to group %s: %s\n", conf.dropin,
			SNMPD_GROUP, strerror(errno));
	rc = put_conf(ctx, &conf, &generation, &saved);
	if (rc)
		return rc;
	if (strcmp(conf.community, "public") == 0)
		fprintf(
		    stderr,
		    "keel: warning: Debian's snmpd.conf gives the community 'public' its own view "
		    "(systemonly) before the drop-ins are read, so KEEL-MIB stays hidden from it; "
		    "choose another --community\n");
	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_bool(&j, "saved", saved);
		kc_json_u64(&j, "generation", generation);
		json_conf(&j, "config", &conf);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("SNMP enabled: community %s, %zu trap sink%s; %s generation %" PRIu64
		       "%s.\nsnmpd drop-in written to %s: reload or restart snmpd to apply it.\n",
		       conf.community, conf.n_sinks, conf.n_sinks == 1 ? "" : "s", KSNMP_CONF_PATH,
		       generation, saved ? "" : " (NOT saved)", conf.dropin);
	}
	return KC_EXIT_OK;
}

static int disable_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	struct ksnmp_conf conf;
	uint64_t generation;
	bool found, saved, removed;
	int rc;

	rc = load(ctx, &conf, &found, &generation);
	if (rc)
		return rc;
	if (found && conf.enabled) {
		conf.enabled = false;
		rc = put_conf(ctx, &conf, &generation, &saved);
		if (rc)
			return rc;
	}
	removed = unlink(conf.dropin) == 0;
	if (!removed && errno != ENOENT)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno, "removing the snmpd drop-in %s: %s",
			       conf.dropin, strerror(errno));
	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_bool(&j, "dropin_removed", removed);
		kc_json_u64(&j, "generation", generation);
		json_conf(&j, "config", &conf);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("SNMP disabled%s%s%s.\n", removed ? "; snmpd drop-in " : "",
		       removed ? conf.dropin : "", removed ? " removed (reload snmpd)" : "");
	}
	return KC_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------------------- */

static void status_path(const struct kc_ctx *ctx, const struct kc_call *call, char *out,
			size_t size)
{
	const char *v = kc_opt(call, O_STATUS);
	char dir[PATH_MAX];

	if (v) {
		snprintf(out, size, "%s", v);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", ctx->socket);
	snprintf(out, size, "%s/keel-snmpd.status", dirname(dir));
}

/* The value of key in the status text (a "key = value" line), or "" when absent. */
static const char *status_get(const char *text, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	out[0] = '\0';
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n > klen + 3 && strncmp(p, key, klen) == 0 &&
		    strncmp(p + klen, " = ", 3) == 0) {
			size_t vlen = n - klen - 3;
			if (vlen >= size)
				vlen = size - 1;
			memcpy(out, p + klen + 3, vlen);
			out[vlen] = '\0';
			return out;
		}
		p = nl ? nl + 1 : NULL;
	}
	return out;
}

static uint64_t status_u64(const char *text, const char *key)
{
	char v[64];
	return strtoull(status_get(text, key, v, sizeof(v)), NULL, 10);
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

static int show_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const nums[] = {"connects",	   "reconnects",       "traps_sent",
					   "polls",	   "poll_errors",      "requests",
					   "last_poll_ns", "config_generation"};
	struct ksnmp_conf conf;
	struct kb_errmsg err = {{0}};
	char path[PATH_MAX], v[KB_ERRMSG_SIZE], a[64];
	uint64_t generation;
	struct kb_buf st;
	bool found, running, dropin;
	int rc;

	rc = load(ctx, &conf, &found, &generation);
	if (rc)
		return rc;
	dropin = access(conf.dropin, F_OK) == 0;
	status_path(ctx, call, path, sizeof(path));
	kb_buf_init(&st, STATUS_MAX);
	running =
	    kb_file_read_small(path, STATUS_MAX, &st, &err) == 0 && kb_buf_append(&st, "", 1) == 0;
	/* a status file not rewritten for 10 s belongs to a keel-snmpd that is gone */
	const char *text = running ? (const char *)st.data : "";
	uint64_t updated = running ? status_u64(text, "updated_ns") : 0;
	bool stale = running && kb_wall_ns() > updated + 10 * KB_NSEC_PER_SEC;

	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_bool(&j, "stored", found);
		kc_json_u64(&j, "generation", generation);
		json_conf(&j, "config", &conf);
		kc_json_bool(&j, "dropin_present", dropin);
		if (!running) {
			kc_json_null(&j, "daemon");
			kc_json_str(&j, "daemon_error", err.msg);
		} else {
			kc_json_obj_begin(&j, "daemon");
			kc_json_bool(&j, "running", !stale);
			kc_json_bool(&j, "connected",
				     strcmp(status_get(text, "connected", v, sizeof(v)), "yes") ==
					 0);
			kc_json_str(&j, "agentx_socket",
				    status_get(text, "agentx_socket", v, sizeof(v)));
			for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
				kc_json_u64(&j, nums[i], status_u64(text, nums[i]));
			kc_json_str(&j, "poll_error", status_get(text, "poll_error", v, sizeof(v)));
			kc_json_str(&j, "config_error",
				    status_get(text, "config_error", v, sizeof(v)));
			kc_json_arr_begin(&j, "events");
			for (const char *p = strstr(text, "\nevent = "); p;
			     p = strstr(p + 1, "\nevent = ")) {
				const char *s = p + 9, *nl = strchr(s, '\n');
				kc_json_strn(&j, NULL, s, nl ? (size_t)(nl - s) : strlen(s));
			}
			kc_json_arr_end(&j);
			kc_json_obj_end(&j);
		}
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		kb_buf_close(&st);
		return KC_EXIT_OK;
	}
	if (!found)
		kc_kv(stdout, "Configuration", "none: SNMP is off (%s missing)", KSNMP_CONF_PATH);
	else
		kc_kv(stdout, "Configuration", "%s generation %" PRIu64, KSNMP_CONF_PATH,
		      generation);
	kc_kv(stdout, "SNMP", "%s", conf.enabled ? "enabled" : "disabled");
	kc_kv(stdout, "Community", "%s", conf.community);
	for (size_t i = 0; i < conf.n_sinks; i++)
		kc_kv(stdout, "Trap sink", "%s:%u", conf.sinks[i].host, conf.sinks[i].port);
	kc_kv(stdout, "AgentX socket", "%s", conf.agentx_socket);
	kc_kv(stdout, "snmpd drop-in", "%s (%s)", conf.dropin, dropin ? "present" : "absent");
	printf("\n");
	if (!running) {
		kc_kv(stdout, "keel-snmpd", "not running? %s", err.msg);
		kb_buf_close(&st);
		return KC_EXIT_OK;
	}
	kc_kv(stdout, "keel-snmpd", "%s (status of %s)", stale ? "NOT running" : "running",
	      fmt_time(updated, a, sizeof(a)));
	kc_kv(stdout, "AgentX master", "%s on %s",
	      strcmp(status_get(text, "connected", v, sizeof(v)), "yes") == 0 ? "connected"
									      : "NOT connected",
	      status_get(text, "agentx_socket", path, sizeof(path)));
	kc_kv(stdout, "Connects", "%" PRIu64 " (%" PRIu64 " reconnections)",
	      status_u64(text, "connects"), status_u64(text, "reconnects"));
	kc_kv(stdout, "Last poll", "%s (%" PRIu64 " polls, %" PRIu64 " failed)%s%s",
	      fmt_time(status_u64(text, "last_poll_ns"), a, sizeof(a)), status_u64(text, "polls"),
	      status_u64(text, "poll_errors"),
	      status_get(text, "poll_error", v, sizeof(v))[0] ? ": " : "", v);
	kc_kv(stdout, "Traps sent", "%" PRIu64, status_u64(text, "traps_sent"));
	printf("\nEvents:\n");
	for (const char *p = strstr(text, "\nevent = "); p; p = strstr(p + 1, "\nevent = ")) {
		const char *s = p + 9, *nl = strchr(s, '\n');
		char line[600], clean[600];
		uint64_t ns = strtoull(s, NULL, 10);
		const char *rest = strchr(s, ' ');
		size_t n = nl ? (size_t)(nl - (rest ? rest + 1 : s)) : strlen(rest ? rest + 1 : s);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, rest ? rest + 1 : s, n);
		line[n] = '\0';
		printf("  %s  %s\n", fmt_time(ns, a, sizeof(a)),
		       kc_clean(line, clean, sizeof(clean)));
	}
	kb_buf_close(&st);
	return KC_EXIT_OK;
}

/* ---- the commands ------------------------------------------------------------------------- */

static const struct kc_opt enable_opts[] = {
    {"community", "C", "the read-only community (default: as stored, else public)", O_COMMUNITY,
     false},
    {"trap-sink", "HOST[:PORT]",
     "where snmpd sends the notifications (port 162); replaces the "
     "stored ones",
     O_SINK, true},
    {"no-trap-sinks", NULL, "remove the stored trap sinks", O_NO_SINKS, false},
    {"agentx-socket", "PATH", "snmpd's AgentX socket (default /var/agentx/master)", O_AGENTX,
     false},
    {"dropin", "PATH", "the snmpd drop-in to write (default /etc/snmp/snmpd.conf.d/keel.conf)",
     O_DROPIN, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt show_opts[] = {
    {"status-file", "PATH", "keel-snmpd's status file (default: beside vmkernel's socket)",
     O_STATUS, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd enable_cmd = {
    .name = "enable",
    .summary = "Serve KEEL-MIB through snmpd and send its notifications.",
    .detail = "Writes etc/keel/snmp.conf (enabled = yes) into the config store and the snmpd\n"
	      "drop-in: AgentX master on the AgentX socket, the read-only community limited\n"
	      "to the system group and the Keel subtree (1.3.6.1.4.1.99999), one trap2sink\n"
	      "per --trap-sink. Options not given keep their stored value. Reload or restart\n"
	      "snmpd afterwards. Example:\n"
	      "  keel host snmp enable --community monitor --trap-sink 198.18.0.9:162\n",
    .opts = enable_opts,
    .run = enable_run,
};

static const struct kc_cmd disable_cmd = {
    .name = "disable",
    .summary = "Stop serving KEEL-MIB: enabled = no, the snmpd drop-in removed.",
    .detail = "The community and trap sinks stay in etc/keel/snmp.conf for the next enable.\n",
    .run = disable_run,
};

static const struct kc_cmd show_cmd = {
    .name = "show",
    .summary = "Show the SNMP configuration and keel-snmpd's state.",
    .detail = "keel-snmpd's state: connected to snmpd's AgentX master or not, reconnections,\n"
	      "the last poll of vmkernel and clusterd, notifications sent, recent events.\n",
    .opts = show_opts,
    .run = show_run,
};

static const struct kc_cmd *const snmp_subs[] = {&enable_cmd, &disable_cmd, &show_cmd, NULL};

const struct kc_cmd kc_host_snmp_cmd = {
    .name = "snmp",
    .summary = "The SNMP subagent (keel-snmpd) and its snmpd drop-in.",
    .subs = snmp_subs,
};
