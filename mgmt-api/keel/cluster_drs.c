/*
 * `keel cluster rule add|list|remove` and `keel cluster drs status|recommend|apply|set`:
 * placement rules and DRS-style balancing (docs/drs.md, "In the cluster").
 *
 * All of them talk to clusterd's control socket (kc_cluster_call). list, status and
 * recommend are answered from this host's replica (the placement modules are deterministic,
 * so every host computes the same); add, remove and set are committed by the leader and
 * must run there (clusterd names the leader otherwise). apply begins the recommended
 * migrations through ClusterVmRequest OP_MIGRATE_BEGIN, --parallel at a time, and follows
 * them in the cluster's status until each one ended (unless --no-wait).
 *
 * With --server (or $KEEL_SERVER) every command goes to hostd's API instead
 * (cluster_drs_api.c: docs/hostd.md, "Placement rules and DRS"): the options are checked
 * here for both paths, and the API's answers are printed by the same printers, so the text
 * and --json are the same either way.
 *
 * Failure modes as in cluster.c: clusterd unreachable, a reply that does not decode, a
 * refusal with clusterd's text; usage errors before anything is sent (--cluster-socket
 * with --server is one).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "lib/time.h"
#include "mgmt-api/keel/cluster_int.h"
#include "mgmt-api/keel/keel.h"

#define APPLY_PARALLEL_DEFAULT 2
#define APPLY_PARALLEL_MAX     16
#define APPLY_WAIT_S_DEFAULT   600
#define APPLY_POLL_MS	       250

/* --cluster-socket is O_CSOCK (cluster_int.h), as kc_cluster_call reads it. */
enum {
	O_KIND = O_ADM_OFF + 1,
	O_MUST,
	O_SHOULD,
	O_VM,
	O_HOST,
	O_AUTOMATION,
	O_THRESHOLD,
	O_INTERVAL,
	O_HOLD,
	O_MAX_MOVES,
	O_ALL,
	O_NO_WAIT,
	O_PARALLEL,
	O_WAIT,
	O_REPLACE,
};

static const struct {
	const char *word;
	int value;
} kinds[] = {
    {"affinity", KEEL__CLUSTER__RULE_KIND__RULE_AFFINITY},
    {"anti-affinity", KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY},
    {"host-affinity", KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY},
    {"host-anti-affinity", KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY},
};

static const struct {
	const char *word;
	int value;
} automations[] = {
    {"manual", KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL},
    {"partially", KEEL__CLUSTER__DRS_AUTOMATION__DRS_PARTIAL},
    {"fully", KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL},
};

const char *kc_drs_kind_word(int k)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].value == k)
			return kinds[i].word;
	return "?";
}

const char *kc_drs_automation_word(int a)
{
	for (size_t i = 0; i < sizeof(automations) / sizeof(automations[0]); i++)
		if (automations[i].value == a)
			return automations[i].word;
	return "?";
}

int kc_drs_kind_value(const char *word)
{
	for (size_t i = 0; word && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].word, word) == 0)
			return kinds[i].value;
	return 0;
}

int kc_drs_automation_value(const char *word)
{
	for (size_t i = 0; word && i < sizeof(automations) / sizeof(automations[0]); i++)
		if (strcmp(automations[i].word, word) == 0)
			return automations[i].value;
	return 0;
}

static double target_of(uint32_t threshold)
{
	static const double t[] = {0.30, 0.20, 0.10, 0.05, 0.02};

	return threshold >= 1 && threshold <= 5 ? t[threshold - 1] : 0;
}

/* One request whose answer carries a ClusterDrsStatus. */
static int drs_call(struct kc_ctx *ctx, const struct kc_call *call,
		    Keel__Cluster__ClusterRequest *rq, Keel__Cluster__ClusterReply **out)
{
	int rc = kc_cluster_call(ctx, call, rq, out);

	if (rc)
		return rc;
	if (!(*out)->drs) {
		keel__cluster__cluster_reply__free_unpacked(*out, NULL);
		*out = NULL;
		return kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "clusterd's answer has no DRS view");
	}
	return KC_EXIT_OK;
}

static int view(struct kc_ctx *ctx, const struct kc_call *call, int drs_op,
		Keel__Cluster__ClusterReply **out)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRuleRequest rr = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__INIT;
	Keel__Cluster__ClusterDrsRequest dr = KEEL__CLUSTER__CLUSTER_DRS_REQUEST__INIT;

	if (drs_op) {
		dr.op = drs_op;
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_DRS;
		rq.drs = &dr;
	} else {
		rr.op = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_LIST;
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_RULE;
		rq.rule = &rr;
	}
	return drs_call(ctx, call, &rq, out);
}

static void json_head(struct kc_json *j)
{
	kc_json_init(j, stdout);
	kc_json_obj_begin(j, NULL);
	kc_json_bool(j, "ok", true);
	kc_json_i64(j, "code", 0);
}

static void json_tail(struct kc_json *j)
{
	kc_json_obj_end(j);
	kc_json_finish(j);
}

/* "a, b, c" of n strings, cut to size. */
static void join(char *const *v, size_t n, char *out, size_t size)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && off < size; i++)
		off += (size_t)snprintf(out + off, size - off, "%s%s", i ? ", " : "", v[i]);
	if (n == 0)
		snprintf(out, size, "-");
}

/* ---- rules --------------------------------------------------------------------------------- */

int kc_drs_print_rules(struct kc_ctx *ctx, const Keel__Cluster__ClusterDrsStatus *st)
{
	static const char *const heads[] = {"NAME", "KIND", "MUST", "VMS", "HOSTS", "OUT OF PLACE"};
	struct kc_table t;
	int rc;

	if (ctx->json) {
		struct kc_json j;

		json_head(&j);
		kc_json_arr_begin(&j, "rules");
		for (size_t i = 0; i < st->n_rules; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &st->rules[i]->base, "kind");
			kc_json_str(&j, "kind", kc_drs_kind_word(st->rules[i]->kind));
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		json_tail(&j);
		return KC_EXIT_OK;
	}
	if (st->n_rules == 0) {
		printf("No rules.\n");
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 6, heads, "lllllr");
	for (size_t i = 0; i < st->n_rules; i++) {
		const Keel__Cluster__RuleView *r = st->rules[i];
		char vms[1024], hosts[512], out[16];
		const char *row[6];

		join(r->vms, r->n_vms, vms, sizeof(vms));
		join(r->hosts, r->n_hosts, hosts, sizeof(hosts));
		snprintf(out, sizeof(out), "%u", r->violation);
		row[0] = r->name;
		row[1] = kc_drs_kind_word(r->kind);
		row[2] = r->mandatory ? "must" : "should";
		row[3] = vms;
		row[4] = hosts;
		row[5] = out;
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	return rc;
}

static int rule_list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterReply *rp;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return kc_drs_api_rules(ctx, call);
	rc = view(ctx, call, 0, &rp);
	if (rc)
		return rc;
	rc = kc_drs_print_rules(ctx, rp->drs);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rc;
}

/* Sends a change and, on success, prints the rules as this host holds them. */
static int change_then_list(struct kc_ctx *ctx, const struct kc_call *call,
			    Keel__Cluster__ClusterRequest *rq)
{
	Keel__Cluster__ClusterReply *rp;
	int rc = kc_cluster_call(ctx, call, rq, &rp);

	if (rc)
		return rc;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rule_list_run(ctx, call);
}

static int rule_add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRuleRequest rr = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__INIT;
	char *vms[KC_MAX_OPTS], *hosts[KC_MAX_OPTS];
	const char *kind = kc_opt(call, O_KIND);
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (!kind)
		return kc_usage(ctx, call,
				"--kind is required: affinity, anti-affinity, host-affinity or "
				"host-anti-affinity");
	rr.kind = kc_drs_kind_value(kind);
	if (!rr.kind)
		return kc_usage(ctx, call,
				"--kind %s: affinity, anti-affinity, host-affinity or "
				"host-anti-affinity",
				kind);
	if (kc_has(call, O_MUST) && kc_has(call, O_SHOULD))
		return kc_usage(ctx, call, "--must or --should, not both");
	for (int i = 0; i < call->nopts; i++) {
		if (call->opts[i].id == O_VM)
			vms[rr.n_vms++] = (char *)call->opts[i].val;
		else if (call->opts[i].id == O_HOST)
			hosts[rr.n_hosts++] = (char *)call->opts[i].val;
	}
	if (rr.kind == KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY ||
	    rr.kind == KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY) {
		if (rr.n_vms < 1 || rr.n_hosts < 1)
			return kc_usage(ctx, call,
					"a host rule needs at least one --vm and one --host");
	} else {
		if (rr.n_vms < 2)
			return kc_usage(ctx, call, "a VM-VM rule needs at least two --vm");
		if (rr.n_hosts)
			return kc_usage(ctx, call,
					"--host is for host-affinity and host-anti-affinity");
	}
	rr.op = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_SET;
	rr.name = (char *)call->pos[0];
	rr.mandatory = kc_has(call, O_MUST);
	rr.replace = kc_has(call, O_REPLACE);
	rr.vms = vms;
	rr.hosts = hosts;
	if (api)
		return kc_drs_api_rule_add(ctx, call, &rr);
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_RULE;
	rq.rule = &rr;
	return change_then_list(ctx, call, &rq);
}

static int rule_remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRuleRequest rr = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__INIT;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return kc_drs_api_rule_remove(ctx, call, call->pos[0]);
	rr.op = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_REMOVE;
	rr.name = (char *)call->pos[0];
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_RULE;
	rq.rule = &rr;
	return change_then_list(ctx, call, &rq);
}

/* ---- drs status and set --------------------------------------------------------------------- */

int kc_drs_print_status(struct kc_ctx *ctx, const Keel__Cluster__ClusterDrsStatus *st)
{
	const Keel__Cluster__DrsSettings *s = st->settings;
	char held[1024];

	if (!s)
		return kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "clusterd's answer has no settings");
	if (ctx->json) {
		struct kc_json j;

		json_head(&j);
		kc_json_str(&j, "automation", kc_drs_automation_word(s->automation));
		kc_json_u64(&j, "threshold", s->threshold);
		kc_json_u64(&j, "interval_s", s->interval_s);
		kc_json_u64(&j, "hold_s", s->hold_s);
		kc_json_u64(&j, "max_moves", s->max_moves);
		kc_message_json_fields(&j, &st->base, "settings");
		json_tail(&j);
		return KC_EXIT_OK;
	}
	join(st->held_vms, st->n_held_vms, held, sizeof(held));
	kc_kv(stdout, "Automation", "%s", kc_drs_automation_word(s->automation));
	kc_kv(stdout, "Threshold", "%u (target imbalance %.2f)", s->threshold,
	      target_of(s->threshold));
	kc_kv(stdout, "Interval", "%u s", s->interval_s);
	kc_kv(stdout, "Hold time", "%u s", s->hold_s);
	kc_kv(stdout, "Moves a pass", "%u", s->max_moves);
	kc_kv(stdout, "Imbalance", "%.4f (%s)", st->imbalance,
	      st->balanced ? "within the target" : "above the target");
	kc_kv(stdout, "Hosts", "%u", st->hosts);
	kc_kv(stdout, "VMs", "%u running, %u held", st->vms, st->held);
	kc_kv(stdout, "Held VMs", "%s", held);
	kc_kv(stdout, "Violated rules", "%u mandatory, %u preferential", st->mandatory_violated,
	      st->preferential_violated);
	if (st->overcommitted)
		kc_kv(stdout, "Overcommitted", "%u hosts", st->overcommitted);
	if (st->leader)
		kc_kv(stdout, "Last pass", "%s", st->last_pass_ms ? st->last_pass : "none yet");
	else
		kc_kv(stdout, "Last pass", "known on the leader");
	for (size_t i = 0; i < st->n_rules; i++)
		if (st->rules[i]->violation)
			printf("  rule %s (%s, %s): %u VMs out of place\n", st->rules[i]->name,
			       kc_drs_kind_word(st->rules[i]->kind),
			       st->rules[i]->mandatory ? "must" : "should",
			       st->rules[i]->violation);
	return KC_EXIT_OK;
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterReply *rp;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return kc_drs_api_status(ctx, call, false);
	rc = view(ctx, call, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_STATUS, &rp);
	if (rc)
		return rc;
	rc = kc_drs_print_status(ctx, rp->drs);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rc;
}

static int set_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterConfigSet cs = KEEL__CLUSTER__CLUSTER_CONFIG_SET__INIT;
	Keel__Cluster__ClusterReply *rp;
	const char *a = kc_opt(call, O_AUTOMATION);
	uint64_t ms;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (a) {
		cs.drs_automation = kc_drs_automation_value(a);
		if (!cs.drs_automation)
			return kc_usage(ctx, call, "--automation %s: manual, partially or fully",
					a);
	}
	if (kc_has(call, O_THRESHOLD) &&
	    kc_parse_u32(kc_opt(call, O_THRESHOLD), 1, 5, &cs.drs_threshold))
		return kc_usage(ctx, call, "--threshold: 1 (conservative) .. 5 (aggressive)");
	if (kc_has(call, O_INTERVAL)) {
		if (kc_parse_seconds(kc_opt(call, O_INTERVAL), &ms) || ms % 1000 || ms < 10000 ||
		    ms > 3600000)
			return kc_usage(ctx, call, "--interval: 10 s .. 1 h, in whole seconds");
		cs.drs_interval_s = (uint32_t)(ms / 1000);
	}
	if (kc_has(call, O_HOLD)) {
		if (kc_parse_seconds(kc_opt(call, O_HOLD), &ms) || ms % 1000 || ms > 86400000)
			return kc_usage(ctx, call, "--hold: 0 .. 24 h, in whole seconds");
		cs.drs_hold_set = true;
		cs.drs_hold_s = (uint32_t)(ms / 1000);
	}
	if (kc_has(call, O_MAX_MOVES) &&
	    kc_parse_u32(kc_opt(call, O_MAX_MOVES), 1, 4096, &cs.drs_max_moves))
		return kc_usage(ctx, call, "--max-moves: 1..4096");
	if (!cs.drs_automation && !cs.drs_threshold && !cs.drs_interval_s && !cs.drs_hold_set &&
	    !cs.drs_max_moves)
		return kc_usage(ctx, call,
				"nothing to change: --automation, --threshold, --interval, --hold "
				"or --max-moves");
	if (api)
		return kc_drs_api_set(ctx, call, &cs);
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CONFIG_SET;
	rq.config_set = &cs;
	rc = kc_cluster_call(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return status_run(ctx, call);
}

/* ---- recommend -------------------------------------------------------------------------------- */

static void rec_json(struct kc_json *j, const Keel__Cluster__DrsRecommendation *r)
{
	kc_json_obj_begin(j, NULL);
	kc_message_json_fields(j, &r->base, NULL);
	kc_json_obj_end(j);
}

int kc_drs_print_recs(struct kc_ctx *ctx, const Keel__Cluster__ClusterDrsStatus *st)
{
	static const char *const heads[] = {"VM",   "FROM",   "TO",	   "REASON",
					    "RULE", "MEMORY", "IMBALANCE", "AUTO"};
	struct kc_table t;
	int rc;

	if (ctx->json) {
		struct kc_json j;

		json_head(&j);
		kc_json_double(&j, "imbalance", st->imbalance);
		kc_json_double(&j, "target", st->target);
		kc_json_arr_begin(&j, "recommendations");
		for (size_t i = 0; i < st->n_recommendations; i++)
			rec_json(&j, st->recommendations[i]);
		kc_json_arr_end(&j);
		json_tail(&j);
		return KC_EXIT_OK;
	}
	printf("Imbalance %.4f, target %.2f: %zu recommendations\n", st->imbalance, st->target,
	       st->n_recommendations);
	if (st->n_recommendations == 0)
		return KC_EXIT_OK;
	kc_table_init(&t, 8, heads, "lllllrll");
	for (size_t i = 0; i < st->n_recommendations; i++) {
		const Keel__Cluster__DrsRecommendation *r = st->recommendations[i];
		char mem[32], imb[48];
		const char *row[8];

		kc_fmt_bytes(r->bytes, mem, sizeof(mem));
		snprintf(imb, sizeof(imb), "%.4f -> %.4f", r->imbalance_before, r->imbalance_after);
		row[0] = r->vm_name;
		row[1] = r->from_name;
		row[2] = r->to_name;
		row[3] = r->reason;
		row[4] = r->rule[0] ? r->rule : "-";
		row[5] = mem;
		row[6] = imb;
		row[7] = r->automatic ? "yes" : "no";
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	return rc;
}

static int recommend_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterReply *rp;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return kc_drs_api_status(ctx, call, true);
	rc = view(ctx, call, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_RECOMMEND, &rp);
	if (rc)
		return rc;
	rc = kc_drs_print_recs(ctx, rp->drs);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rc;
}

/* ---- apply ------------------------------------------------------------------------------------ */

static bool named(const struct kc_call *call, const Keel__Cluster__DrsRecommendation *r)
{
	for (int i = 0; i < call->npos; i++) {
		const char *p = call->pos[i];

		if (strncmp(p, "vm-", 3) == 0 && strlen(p) == 39)
			p += 3;
		if (strcmp(p, r->vm) == 0 || strcmp(p, r->vm_name) == 0)
			return true;
	}
	return false;
}

static void begin(struct kc_ctx *ctx, const struct kc_call *call, struct kc_drs_move *m)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	bool json = ctx->json;

	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN;
	vr.uuid = m->rec->vm;
	vr.destination = m->rec->to;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	/* A refusal is this move's result, not the command's failure: no error object. */
	ctx->json = false;
	if (kc_cluster_call(ctx, call, &rq, &rp) == KC_EXIT_OK) {
		m->begun = true;
		snprintf(m->result, sizeof(m->result), "begun");
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	} else {
		m->done = true;
		snprintf(m->result, sizeof(m->result), "not begun (see above)");
	}
	ctx->json = json;
}

/* Follows the begun moves in the cluster's status until each migration ended. */
static int wait_moves(struct kc_ctx *ctx, const struct kc_call *call, struct kc_drs_move *mv,
		      size_t n, uint64_t until_ns)
{
	for (;;) {
		Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
		Keel__Cluster__ClusterStatusRequest sr =
		    KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
		Keel__Cluster__ClusterReply *rp;
		size_t left = 0;
		int rc;

		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
		rq.status = &sr;
		rc = kc_cluster_call(ctx, call, &rq, &rp);
		if (rc)
			return rc;
		for (size_t i = 0; i < n; i++) {
			if (!mv[i].begun || mv[i].done)
				continue;
			for (size_t k = 0; rp->status && k < rp->status->n_vms; k++) {
				const Keel__Cluster__ClusterVmStatus *v = rp->status->vms[k];

				if (strcmp(v->uuid, mv[i].rec->vm) != 0 || v->migration)
					continue;
				mv[i].done = true;
				mv[i].owner = v->owner;
				snprintf(mv[i].result, sizeof(mv[i].result), "%s",
					 v->owner == mv[i].rec->to
					     ? "moved"
					     : "failed (keel cluster events tells why)");
			}
			left += !mv[i].done;
		}
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		if (left == 0)
			return KC_EXIT_OK;
		if (kb_now_ns() > until_ns) {
			for (size_t i = 0; i < n; i++)
				if (mv[i].begun && !mv[i].done)
					snprintf(mv[i].result, sizeof(mv[i].result),
						 "still migrating");
			return KC_EXIT_OK;
		}
		kb_sleep_ns(APPLY_POLL_MS * 1000000ull);
	}
}

int kc_drs_print_moves(struct kc_ctx *ctx, const struct kc_drs_move *mv, size_t n)
{
	static const char *const heads[] = {"VM", "FROM", "TO", "REASON", "RESULT"};
	bool failed = false;
	struct kc_table t;
	int rc;

	for (size_t i = 0; i < n; i++)
		failed |= strcmp(mv[i].result, "moved") != 0 && strcmp(mv[i].result, "begun") != 0;
	if (ctx->json) {
		struct kc_json j;

		json_head(&j);
		kc_json_arr_begin(&j, "moves");
		for (size_t i = 0; i < n; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &mv[i].rec->base, NULL);
			kc_json_bool(&j, "begun", mv[i].begun);
			kc_json_str(&j, "result", mv[i].result);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		json_tail(&j);
		return failed ? KC_EXIT_FAILED : KC_EXIT_OK;
	}
	if (n == 0) {
		printf("Nothing to apply.\n");
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 5, heads, "lllll");
	for (size_t i = 0; i < n; i++) {
		const char *row[5] = {mv[i].rec->vm_name, mv[i].rec->from_name, mv[i].rec->to_name,
				      mv[i].rec->reason, mv[i].result};

		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	return rc ? rc : failed ? KC_EXIT_FAILED : KC_EXIT_OK;
}

int kc_drs_select(struct kc_ctx *ctx, const struct kc_call *call,
		  const Keel__Cluster__ClusterDrsStatus *st, bool all, struct kc_drs_move *mv,
		  size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < st->n_recommendations; i++)
		if (all || named(call, st->recommendations[i]))
			mv[(*n)++].rec = st->recommendations[i];
	for (int i = 0; i < call->npos; i++) {
		bool found = false;

		for (size_t k = 0; k < *n && !found; k++) {
			const char *p = call->pos[i];

			if (strncmp(p, "vm-", 3) == 0 && strlen(p) == 39)
				p += 3;
			found = strcmp(mv[k].rec->vm, p) == 0 || strcmp(mv[k].rec->vm_name, p) == 0;
		}
		if (!found)
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "DRS recommends no move of VM %s", call->pos[i]);
	}
	return KC_EXIT_OK;
}

static int apply_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const Keel__Cluster__ClusterDrsStatus *st;
	Keel__Cluster__ClusterReply *rp;
	uint32_t parallel = APPLY_PARALLEL_DEFAULT, wait_s = APPLY_WAIT_S_DEFAULT;
	struct kc_drs_move *mv;
	size_t n = 0;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (kc_has(call, O_ALL) == (call->npos > 0))
		return kc_usage(ctx, call, "give the VMs to move, or --all");
	if (kc_has(call, O_PARALLEL) &&
	    kc_parse_u32(kc_opt(call, O_PARALLEL), 1, APPLY_PARALLEL_MAX, &parallel))
		return kc_usage(ctx, call, "--parallel: 1..%d", APPLY_PARALLEL_MAX);
	if (kc_has(call, O_WAIT) && kc_parse_u32(kc_opt(call, O_WAIT), 1, 86400, &wait_s))
		return kc_usage(ctx, call, "--wait: 1..86400 seconds");
	if (api)
		return kc_drs_api_apply(ctx, call, kc_has(call, O_ALL), parallel, wait_s,
					kc_has(call, O_NO_WAIT));
	rc = view(ctx, call, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_RECOMMEND, &rp);
	if (rc)
		return rc;
	st = rp->drs;
	mv = calloc(st->n_recommendations ? st->n_recommendations : 1, sizeof(*mv));
	if (!mv) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
	}
	rc = kc_drs_select(ctx, call, st, kc_has(call, O_ALL), mv, &n);
	/* In the recommended order, a few at a time: each assumes the earlier ones. */
	for (size_t i = 0; rc == KC_EXIT_OK && i < n; i += parallel) {
		size_t wave = n - i < parallel ? n - i : parallel;

		for (size_t k = 0; k < wave; k++)
			begin(ctx, call, &mv[i + k]);
		if (kc_has(call, O_NO_WAIT)) {
			for (size_t k = i + wave; k < n; k++)
				snprintf(mv[k].result, sizeof(mv[k].result),
					 "not begun (--no-wait)");
			break;
		}
		rc = wait_moves(ctx, call, &mv[i], wave,
				kb_now_ns() + (uint64_t)wait_s * 1000000000ull);
	}
	if (rc == 0)
		rc = kc_drs_print_moves(ctx, mv, n);
	free(mv);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rc;
}

/* ---- the commands ------------------------------------------------------------------------------ */

static const struct kc_opt sock_opts[] = {
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt add_opts[] = {
    {"kind", "K", "affinity, anti-affinity, host-affinity or host-anti-affinity", O_KIND, false},
    {"must", NULL, "mandatory: never broken by a placement or a migration", O_MUST, false},
    {"should", NULL, "preferential (the default): kept when possible", O_SHOULD, false},
    {"vm", "VM", "a VM of the rule (name or uuid; repeat, at most 64)", O_VM, true},
    {"host", "HOST", "a host of the host group (name or id; repeat; host rules only)", O_HOST,
     true},
    {"replace", NULL, "replace the rule of that name (else an existing name is refused)", O_REPLACE,
     false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt set_opts[] = {
    {"automation", "A", "manual, partially or fully", O_AUTOMATION, false},
    {"threshold", "N", "migration threshold 1 (conservative) .. 5 (aggressive)", O_THRESHOLD,
     false},
    {"interval", "TIME", "between the leader's passes (10s .. 1h)", O_INTERVAL, false},
    {"hold", "TIME", "a VM moved this recently is not moved again (0 .. 24h)", O_HOLD, false},
    {"max-moves", "N", "migrations begun per pass (1..4096)", O_MAX_MOVES, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt apply_opts[] = {
    {"all", NULL, "apply every recommendation", O_ALL, false},
    {"parallel", "N", "migrations at a time (default 2, at most 16)", O_PARALLEL, false},
    {"no-wait", NULL, "begin the first --parallel migrations and return (API: the task id)",
     O_NO_WAIT, false},
    {"wait", "SECONDS", "longest wait for each group of migrations (default 600)", O_WAIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd rule_add_cmd = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a placement rule (--replace: replace the rule of that name).",
    .detail = "affinity keeps its VMs on one host, anti-affinity on different hosts;\n"
	      "host-affinity keeps them on the hosts given with --host, host-anti-affinity off\n"
	      "them. A --must rule is never broken by a migration or DRS; a --should rule is\n"
	      "kept when possible and fixed by DRS. Committed by the leader: run it there, or\n"
	      "on any host through hostd's API (--server), which passes it on.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = add_opts,
    .run = rule_add_run,
    .api = true,
};

static const struct kc_cmd rule_list_cmd = {
    .name = "list",
    .summary = "List the placement rules and how many of their VMs are out of place.",
    .opts = sock_opts,
    .run = rule_list_run,
    .api = true,
};

static const struct kc_cmd rule_remove_cmd = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a placement rule (on the leader, or through hostd's API).",
    .min_pos = 1,
    .max_pos = 1,
    .opts = sock_opts,
    .run = rule_remove_run,
    .api = true,
};

static const struct kc_cmd *const rule_subs[] = {&rule_add_cmd, &rule_list_cmd, &rule_remove_cmd,
						 NULL};

const struct kc_cmd kc_cluster_rule_cmd = {
    .name = "rule",
    .summary = "Placement rules: VM-VM and VM-host affinity and anti-affinity.",
    .detail = "docs/drs.md. Unregistering a VM drops it from its rules; a rule left with too\n"
	      "few VMs is removed. Through this host's clusterd, or hostd's API with --server.\n",
    .subs = rule_subs,
};

static const struct kc_cmd drs_status_cmd = {
    .name = "status",
    .summary = "Show the DRS settings, the imbalance, violated rules and held VMs.",
    .opts = sock_opts,
    .run = status_run,
    .api = true,
};

static const struct kc_cmd drs_recommend_cmd = {
    .name = "recommend",
    .summary = "List the migrations DRS recommends now, in the order to apply them.",
    .detail = "Computed on this host's copy of the cluster state. Fixes of mandatory rules\n"
	      "come first, then preferential rules, then balance (while the imbalance is above\n"
	      "the threshold's target). AUTO: the leader's pass applies it at this automation\n"
	      "level.\n",
    .opts = sock_opts,
    .run = recommend_run,
    .api = true,
};

static const struct kc_cmd drs_apply_cmd = {
    .name = "apply",
    .args = "[VM...]",
    .summary = "Begin the recommended migrations (of the VMs named, or --all).",
    .detail = "Migrations begin in the recommended order, --parallel at a time, and each group\n"
	      "is followed until it ended. Exit status 1 when a migration did not happen.\n"
	      "Through hostd's API (--server) it is one task, ApplyDrsRecommendations, followed\n"
	      "with its progress for at most --wait times the number of groups.\n",
    .min_pos = 0,
    .max_pos = KC_MAX_POS,
    .opts = apply_opts,
    .run = apply_run,
    .api = true,
};

static const struct kc_cmd drs_set_cmd = {
    .name = "set",
    .summary = "Change the DRS settings (on the leader, or through hostd's API).",
    .detail = "manual: recommendations only; partially: the leader applies the fixes of\n"
	      "mandatory rules; fully: the leader applies every recommendation, every interval.\n",
    .opts = set_opts,
    .run = set_run,
    .api = true,
};

static const struct kc_cmd *const drs_subs[] = {&drs_status_cmd, &drs_recommend_cmd, &drs_apply_cmd,
						&drs_set_cmd, NULL};

const struct kc_cmd kc_cluster_drs_cmd = {
    .name = "drs",
    .summary = "DRS-style balancing: status, recommendations, applying them, settings.",
    .detail = "docs/drs.md. Through this host's clusterd, or hostd's API with --server.\n",
    .subs = drs_subs,
};
