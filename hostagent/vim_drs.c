/*
 * Placement rules and DRS through the Vim API (docs/hostd.md, "Placement rules and DRS"):
 * the same requests as `keel cluster rule` and `keel cluster drs`, to this host's clusterd.
 *
 * Happy path: on the loop, authorize (System.Read on the root to read,
 * Host.Inventory.ManageCluster to change) and check the request; on a worker, framed
 * ClusterRequests to DIR/clusterd.sock (hd_backend_call); on the loop, the answer.
 *   ListClusterRules      ClusterRuleRequest{OP_LIST}, answered from this host's replica;
 *   AddClusterRule        ClusterRuleRequest{OP_SET} (VMs as "vm-<uuid>", uuids or names;
 *                         hosts as "host-<id>", names or ids), committed by the leader (a
 *                         follower's clusterd forwards it); then the list until this host's
 *                         replica shows the rule (at most CHANGE_WAIT_MS), as the answer;
 *   RemoveClusterRule     ClusterRuleRequest{OP_REMOVE}, then the list without it;
 *   GetDrsStatus          ClusterDrsRequest OP_STATUS (settings, imbalance, rules) and
 *                         OP_RECOMMEND (the recommendations in order);
 *   SetDrsConfig          ClusterConfigSet's drs_* fields, then the status once this host
 *                         shows the new settings;
 *   ApplyDrsRecommendations  a Task, in vim_drs_apply.c, which asks clusterd through the
 *                         helpers here (vim_drs_int.h).
 *
 * Failure modes: no clusterd or no answer: UNAVAILABLE; clusterd's refusals keep its text,
 * with the status its code means: an unknown VM, host or rule NOT_FOUND, a rule name in use
 * ALREADY_EXISTS, a malformed rule or setting INVALID_ARGUMENT, anything else (not in a
 * cluster, no leader) FAILED_PRECONDITION. Requests hostd can check itself (kind words,
 * ranges, counts) are INVALID_ARGUMENT before anything is sent, and change nothing.
 *
 * Threads: handlers and answers on the loop; clusterd is asked on libuv's workers, one step
 * at a time per request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_drs.h"
#include "hostagent/vim_drs_int.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vim.pb-c.h"

#define REPLY_MAX      (64u << 20)
#define ASK_TIMEOUT_S  10
#define CHANGE_WAIT_MS 3000 /* until this host's replica shows a committed change */
#define RULE_VMS_MAX   64   /* as clusterd's rules (docs/drs.md) */
#define RULE_HOSTS_MAX 64
#define RULE_NAME_MAX  63

static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

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

static const char *kind_word(int k)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].value == k)
			return kinds[i].word;
	return "";
}

static const char *automation_word(int a)
{
	for (size_t i = 0; i < sizeof(automations) / sizeof(automations[0]); i++)
		if (automations[i].value == a)
			return automations[i].word;
	return "";
}

/* "vm-<uuid>" -> the uuid clusterd takes; anything else as it is. */
const char *hd__drs_vm_text(const char *t)
{
	return strncmp(t, "vm-", 3) == 0 && strlen(t) == 39 ? t + 3 : t;
}

/* ---- asking clusterd (workers) --------------------------------------------------------------- */

void hd__drs_set_error(struct asker *a, enum hd_status st, const char *fmt, ...)
{
	va_list ap;

	a->status = st;
	va_start(ap, fmt);
	vsnprintf(a->error, sizeof(a->error), fmt, ap);
	va_end(ap);
}

static enum hd_status status_of_code(int code)
{
	switch (code) {
	case KB_ENOTFOUND:
		return HD_NOT_FOUND;
	case KB_EEXIST:
		return HD_ALREADY_EXISTS;
	case -EINVAL:
	case KB_ETOOBIG:
		return HD_INVALID_ARGUMENT;
	default:
		return HD_FAILED_PRECONDITION;
	}
}

/* One request to clusterd: its reply (caller frees), or NULL with a's error set. */
Keel__Cluster__ClusterReply *hd__drs_ask(struct asker *a, const Keel__Cluster__ClusterRequest *rq)
{
	Keel__Cluster__ClusterReply *rp;
	size_t len = 0;
	uint8_t *b = hd_backend_call(a->v->cd_sock, &rq->base, ASK_TIMEOUT_S, REPLY_MAX, &len);

	if (!b) {
		hd__drs_set_error(a, HD_UNAVAILABLE, "clusterd at %s does not answer",
				  a->v->cd_sock);
		return NULL;
	}
	rp = keel__cluster__cluster_reply__unpack(NULL, len, b);
	kb_free(b);
	if (!rp) {
		hd__drs_set_error(a, HD_UNAVAILABLE, "clusterd at %s: a reply that does not decode",
				  a->v->cd_sock);
		return NULL;
	}
	if (rp->code) {
		hd__drs_set_error(a, status_of_code(rp->code), "clusterd: %s",
				  rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return NULL;
	}
	return rp;
}

/* A rule list (drs_op 0) or a DRS view: the reply, which carries drs, or NULL. */
Keel__Cluster__ClusterReply *hd__drs_ask_view(struct asker *a, int drs_op)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRuleRequest rr = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__INIT;
	Keel__Cluster__ClusterDrsRequest dr = KEEL__CLUSTER__CLUSTER_DRS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	if (drs_op) {
		dr.op = drs_op;
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_DRS;
		rq.drs = &dr;
	} else {
		rr.op = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_LIST;
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_RULE;
		rq.rule = &rr;
	}
	rp = hd__drs_ask(a, &rq);
	if (rp && (!rp->drs || (drs_op == KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_STATUS &&
				!rp->drs->settings))) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		hd__drs_set_error(a, HD_UNAVAILABLE, "clusterd's answer has no DRS view");
		return NULL;
	}
	return rp;
}

/* ---- rules, status, settings ---------------------------------------------------------------- */

enum { K_LIST, K_ADD, K_REMOVE, K_STATUS, K_SET };

struct drsreq {
	struct asker a;
	uv_work_t work;
	struct hd_call *call; /* NULL once the client went away */
	int kind;
	/* AddClusterRule, RemoveClusterRule (copied) */
	char name[RULE_NAME_MAX + 1];
	int rule_kind;
	bool mandatory, replace;
	size_t n_vms, n_hosts;
	char vms[RULE_VMS_MAX][NAME_LEN + 1];
	char hosts[RULE_HOSTS_MAX][NAME_LEN + 1];
	/* SetDrsConfig */
	Keel__Cluster__ClusterConfigSet cs;
	/* the answer's material */
	Keel__Cluster__ClusterReply *view; /* rules, or the status */
	Keel__Cluster__ClusterReply *recs; /* GetDrsStatus, SetDrsConfig: the recommendations */
};

static const Keel__Cluster__RuleView *find_rule(const Keel__Cluster__ClusterDrsStatus *st,
						const char *name)
{
	for (size_t i = 0; i < st->n_rules; i++)
		if (strcmp(st->rules[i]->name, name) == 0)
			return st->rules[i];
	return NULL;
}

static bool settings_applied(const struct drsreq *r)
{
	const Keel__Cluster__DrsSettings *s = r->view->drs->settings;
	const Keel__Cluster__ClusterConfigSet *cs = &r->cs;

	return (!cs->drs_automation || (int)s->automation == (int)cs->drs_automation) &&
	       (!cs->drs_threshold || s->threshold == cs->drs_threshold) &&
	       (!cs->drs_interval_s || s->interval_s == cs->drs_interval_s) &&
	       (!cs->drs_hold_set || s->hold_s == cs->drs_hold_s) &&
	       (!cs->drs_max_moves || s->max_moves == cs->drs_max_moves);
}

/* Reads the view (drs_op as hd__drs_ask_view) into r->view until done(r) or CHANGE_WAIT_MS. */
static bool read_until(struct drsreq *r, int drs_op, bool (*done)(const struct drsreq *r))
{
	uint64_t until = kb_now_ns() + CHANGE_WAIT_MS * 1000000ull;

	for (;;) {
		if (r->view)
			keel__cluster__cluster_reply__free_unpacked(r->view, NULL);
		r->view = hd__drs_ask_view(&r->a, drs_op);
		if (!r->view)
			return false;
		if (!done || done(r) || kb_now_ns() >= until)
			return true;
		kb_sleep_ns(50 * 1000000ull);
	}
}

/* The rule as it was set (a replaced one shows its new form). */
static bool rule_shown(const struct drsreq *r)
{
	const Keel__Cluster__RuleView *v = find_rule(r->view->drs, r->name);

	return v && (int)v->kind == r->rule_kind && v->mandatory == r->mandatory &&
	       v->n_vm_uuids == r->n_vms && v->n_hosts == r->n_hosts;
}

static bool rule_gone(const struct drsreq *r)
{
	return !find_rule(r->view->drs, r->name);
}

static void rule_change(struct drsreq *r)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRuleRequest rr = KEEL__CLUSTER__CLUSTER_RULE_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	char *vms[RULE_VMS_MAX], *hosts[RULE_HOSTS_MAX];

	for (size_t i = 0; i < r->n_vms; i++)
		vms[i] = (char *)hd__drs_vm_text(r->vms[i]);
	for (size_t i = 0; i < r->n_hosts; i++) {
		/* clusterd takes names and decimal ids; "host-<id>" is the API's id */
		const char *h = r->hosts[i];

		hosts[i] =
		    (char *)(strncmp(h, "host-", 5) == 0 && h[5] >= '0' && h[5] <= '9' ? h + 5 : h);
	}
	rr.op = r->kind == K_ADD ? KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_SET
				 : KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_REMOVE;
	rr.name = r->name;
	if (r->kind == K_ADD) {
		rr.kind = r->rule_kind;
		rr.mandatory = r->mandatory;
		rr.replace = r->replace;
		rr.n_vms = r->n_vms;
		rr.vms = vms;
		rr.n_hosts = r->n_hosts;
		rr.hosts = hosts;
	}
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_RULE;
	rq.rule = &rr;
	rp = hd__drs_ask(&r->a, &rq);
	if (!rp)
		return;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	read_until(r, 0, r->kind == K_ADD ? rule_shown : rule_gone);
}

static void drs_work(uv_work_t *w)
{
	struct drsreq *r = w->data;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	switch (r->kind) {
	case K_LIST:
		read_until(r, 0, NULL);
		return;
	case K_ADD:
	case K_REMOVE:
		rule_change(r);
		return;
	case K_SET:
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CONFIG_SET;
		rq.config_set = &r->cs;
		rp = hd__drs_ask(&r->a, &rq);
		if (!rp)
			return;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		if (!read_until(r, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_STATUS,
				settings_applied))
			return;
		break;
	default:
		if (!read_until(r, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_STATUS, NULL))
			return;
		break;
	}
	r->recs = hd__drs_ask_view(&r->a, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_RECOMMEND);
}

/* ---- answers (loop) ------------------------------------------------------------------------ */

/* A ClusterRule of the answer; its strings point into v, ids into room (freed by the
 * caller with kb_free; NULL when out of memory, with o's lists empty). */
static char *rule_to_pb(const Keel__Cluster__RuleView *v, Keel__Vim__ClusterRule *o)
{
	size_t n = v->n_vm_uuids;
	char *room = kb_calloc(n ? n : 1, 48 + sizeof(char *));
	char **ids = room ? (char **)(void *)(room + (n ? n : 1) * 48) : NULL;

	keel__vim__cluster_rule__init(o);
	o->name = v->name;
	o->kind = (char *)kind_word(v->kind);
	o->mandatory = v->mandatory;
	o->violation = v->violation;
	o->n_hosts = v->n_hosts;
	o->hosts = v->hosts;
	o->n_vm_names = v->n_vms;
	o->vm_names = v->vms;
	if (!room)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		snprintf(room + i * 48, 48, "vm-%.40s", v->vm_uuids[i]);
		ids[i] = room + i * 48;
	}
	o->n_vms = n;
	o->vms = ids;
	return room;
}

/* The rules of st into out (rules, pointers and rooms allocated; freed by rules_free). */
struct rules_pb {
	size_t n;
	Keel__Vim__ClusterRule *m;
	Keel__Vim__ClusterRule **mp;
	char **room;
};

static int rules_fill(const Keel__Cluster__ClusterDrsStatus *st, struct rules_pb *out)
{
	size_t n = st->n_rules;

	out->n = 0;
	out->m = kb_calloc(n ? n : 1, sizeof(*out->m));
	out->mp = kb_calloc(n ? n : 1, sizeof(*out->mp));
	out->room = kb_calloc(n ? n : 1, sizeof(*out->room));
	if (!out->m || !out->mp || !out->room)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		out->room[i] = rule_to_pb(st->rules[i], &out->m[i]);
		out->mp[i] = &out->m[i];
		out->n++;
		if (!out->room[i])
			return -ENOMEM;
	}
	return 0;
}

static void rules_free(struct rules_pb *r)
{
	for (size_t i = 0; r->room && i < r->n; i++)
		kb_free(r->room[i]);
	kb_free(r->room);
	kb_free(r->m);
	kb_free(r->mp);
}

static void answer_rules(struct drsreq *r)
{
	Keel__Vim__ClusterRuleList l = KEEL__VIM__CLUSTER_RULE_LIST__INIT;
	struct rules_pb rb;

	if (rules_fill(r->view->drs, &rb) != 0) {
		hd_call_error(r->call, HD_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		l.n_rules = rb.n;
		l.rules = rb.mp;
		hd_call_reply(r->call, &l.base);
	}
	rules_free(&rb);
}

static void answer_status(struct drsreq *r)
{
	const Keel__Cluster__ClusterDrsStatus *st = r->view->drs;
	const Keel__Cluster__ClusterDrsStatus *rs = r->recs->drs;
	const Keel__Cluster__DrsSettings *s = st->settings;
	Keel__Vim__DrsStatus m = KEEL__VIM__DRS_STATUS__INIT;
	Keel__Vim__DrsConfig c = KEEL__VIM__DRS_CONFIG__INIT;
	size_t n = rs->n_recommendations;
	Keel__Vim__DrsRecommendationObject *rec = kb_calloc(n ? n : 1, sizeof(*rec));
	Keel__Vim__DrsRecommendationObject **recp = kb_calloc(n ? n : 1, sizeof(*recp));
	char(*ids)[3][48] = kb_calloc(n ? n : 1, sizeof(*ids));
	struct rules_pb rb;

	if (rules_fill(st, &rb) != 0 || !rec || !recp || !ids) {
		hd_call_error(r->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	c.automation = (char *)automation_word(s->automation);
	c.threshold = s->threshold;
	c.interval_s = s->interval_s;
	c.hold_s = s->hold_s;
	c.max_moves = s->max_moves;
	m.config = &c;
	/* the figures of the newer of the two views, with its recommendations */
	m.imbalance = rs->imbalance;
	m.target = rs->target;
	m.balanced = rs->balanced;
	m.hosts = st->hosts;
	m.vms = st->vms;
	m.held = st->held;
	m.overcommitted = st->overcommitted;
	m.mandatory_violated = st->mandatory_violated;
	m.preferential_violated = st->preferential_violated;
	m.n_held_vms = st->n_held_vms;
	m.held_vms = st->held_vms;
	m.n_rules = rb.n;
	m.rules = rb.mp;
	for (size_t i = 0; i < n; i++) {
		const Keel__Cluster__DrsRecommendation *x = rs->recommendations[i];
		Keel__Vim__DrsRecommendationObject *o = &rec[i];

		keel__vim__drs_recommendation_object__init(o);
		snprintf(ids[i][0], sizeof(ids[i][0]), "vm-%.40s", x->vm);
		snprintf(ids[i][1], sizeof(ids[i][1]), "host-%" PRIu64, x->from);
		snprintf(ids[i][2], sizeof(ids[i][2]), "host-%" PRIu64, x->to);
		o->vm = ids[i][0];
		o->vm_name = x->vm_name;
		o->from_host = ids[i][1];
		o->from_name = x->from_name;
		o->to_host = ids[i][2];
		o->to_name = x->to_name;
		o->reason = x->reason;
		o->priority = x->priority;
		o->rule = x->rule;
		o->bytes = x->bytes;
		o->imbalance_before = x->imbalance_before;
		o->imbalance_after = x->imbalance_after;
		o->automatic = x->automatic;
		recp[i] = o;
	}
	m.n_recommendations = n;
	m.recommendations = recp;
	m.last_pass_ms = st->last_pass_ms;
	m.last_pass = st->last_pass;
	m.leader = st->leader;
	hd_call_reply(r->call, &m.base);
out:
	rules_free(&rb);
	kb_free(rec);
	kb_free(recp);
	kb_free(ids);
}

static void drsreq_free(struct drsreq *r)
{
	if (r->view)
		keel__cluster__cluster_reply__free_unpacked(r->view, NULL);
	if (r->recs)
		keel__cluster__cluster_reply__free_unpacked(r->recs, NULL);
	kb_free(r);
}

static void gone(struct hd_call *call, void *arg)
{
	struct drsreq *r = arg;

	(void)call;
	r->call = NULL;
}

static void drs_done(uv_work_t *w, int status)
{
	struct drsreq *r = w->data;

	if (!r->call)
		goto out;
	hd_call_on_cancel(r->call, NULL, NULL);
	if (status) {
		hd_call_error(r->call, HD_UNAVAILABLE, "clusterd could not be asked");
		goto out;
	}
	if (r->a.status != HD_OK) {
		hd_call_error(r->call, r->a.status, "%s", r->a.error);
		goto out;
	}
	if (r->kind == K_STATUS || r->kind == K_SET) {
		if (!r->view || !r->recs) {
			hd_call_error(r->call, HD_UNAVAILABLE, "clusterd gave no DRS status");
			goto out;
		}
		if (r->kind == K_SET)
			kb_log(r->a.v->log, KB_LOG_INFO,
			       "DRS settings changed through the API: %s, "
			       "threshold %u, every %u s, hold %u s, at most %u moves a pass",
			       automation_word(r->view->drs->settings->automation),
			       r->view->drs->settings->threshold,
			       r->view->drs->settings->interval_s, r->view->drs->settings->hold_s,
			       r->view->drs->settings->max_moves);
		answer_status(r);
		goto out;
	}
	if (!r->view) {
		hd_call_error(r->call, HD_UNAVAILABLE, "clusterd gave no rule list");
		goto out;
	}
	if (r->kind != K_LIST)
		kb_log(r->a.v->log, KB_LOG_INFO, "rule %s %s through the API", r->name,
		       r->kind == K_ADD ? "set" : "removed");
	answer_rules(r);
out:
	drsreq_free(r);
}

/* Authorizes privilege on the root, refuses an invalid request (invalid: why, else NULL),
 * then runs r on a worker. Takes r. */
static void start(struct hd_call *call, struct drsreq *r, const char *privilege,
		  const char *invalid)
{
	if (!hd_vim_authorize(call, root_path, 1, privilege)) {
		drsreq_free(r);
		return;
	}
	if (invalid) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "%s", invalid);
		drsreq_free(r);
		return;
	}
	r->call = call;
	r->a.v = hd_call_server_data(call);
	r->work.data = r;
	hd_call_on_cancel(call, gone, r);
	if (uv_queue_work(r->a.v->loop, &r->work, drs_work, drs_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
		drsreq_free(r);
	}
}

static struct drsreq *drsreq_new(struct hd_call *call, int kind)
{
	struct drsreq *r = kb_calloc(1, sizeof(*r));

	if (!r) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	r->kind = kind;
	keel__cluster__cluster_config_set__init(&r->cs);
	return r;
}

/* A rule name as clusterd takes it: [A-Za-z0-9._-], 1..63 characters. */
static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > RULE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void hd_vim_list_cluster_rules(struct hd_call *call, const ProtobufCMessage *req)
{
	struct drsreq *r = drsreq_new(call, K_LIST);

	(void)req;
	if (r)
		start(call, r, "System.Read", NULL);
}

void hd_vim_add_cluster_rule(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__AddClusterRuleRequest *rq = (const Keel__Vim__AddClusterRuleRequest *)req;
	const Keel__Vim__ClusterRule *x = rq->rule;
	struct drsreq *r = drsreq_new(call, K_ADD);
	const char *invalid = NULL;
	bool host_rule;

	if (!r)
		return;
	if (!x) {
		invalid =
		    "the rule is required: name, kind, mandatory, vms (and hosts for host rules)";
		goto go;
	}
	if (!name_ok(x->name)) {
		invalid = "the rule's name: 1..63 characters of A-Z a-z 0-9 . _ -";
		goto go;
	}
	snprintf(r->name, sizeof(r->name), "%s", x->name);
	for (size_t i = 0; x->kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].word, x->kind) == 0)
			r->rule_kind = kinds[i].value;
	if (!r->rule_kind) {
		invalid = "the rule's kind: affinity, anti-affinity, host-affinity or "
			  "host-anti-affinity";
		goto go;
	}
	host_rule = r->rule_kind == KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY ||
		    r->rule_kind == KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY;
	if (x->n_vms > RULE_VMS_MAX || x->n_hosts > RULE_HOSTS_MAX) {
		invalid = "a rule names at most 64 VMs and 64 hosts";
		goto go;
	}
	if (host_rule && (x->n_vms < 1 || x->n_hosts < 1)) {
		invalid = "a host rule needs at least one VM and one host";
		goto go;
	}
	if (!host_rule && (x->n_vms < 2 || x->n_hosts)) {
		invalid = "a VM-VM rule needs at least two VMs and no hosts";
		goto go;
	}
	for (size_t i = 0; i < x->n_vms; i++) {
		if (!x->vms[i][0] || strlen(x->vms[i]) > NAME_LEN) {
			invalid = "a VM of the rule is empty or too long";
			goto go;
		}
		snprintf(r->vms[i], sizeof(r->vms[i]), "%s", x->vms[i]);
	}
	for (size_t i = 0; i < x->n_hosts; i++) {
		if (!x->hosts[i][0] || strlen(x->hosts[i]) > NAME_LEN) {
			invalid = "a host of the rule is empty or too long";
			goto go;
		}
		snprintf(r->hosts[i], sizeof(r->hosts[i]), "%s", x->hosts[i]);
	}
	r->n_vms = x->n_vms;
	r->n_hosts = x->n_hosts;
	r->mandatory = x->mandatory;
	r->replace = rq->replace;
go:
	start(call, r, MANAGE, invalid);
}

void hd_vim_remove_cluster_rule(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__RemoveClusterRuleRequest *rq =
	    (const Keel__Vim__RemoveClusterRuleRequest *)req;
	struct drsreq *r = drsreq_new(call, K_REMOVE);
	const char *invalid = NULL;

	if (!r)
		return;
	if (!name_ok(rq->name))
		invalid = "the rule's name: 1..63 characters of A-Z a-z 0-9 . _ -";
	else
		snprintf(r->name, sizeof(r->name), "%s", rq->name);
	start(call, r, MANAGE, invalid);
}

void hd_vim_get_drs_status(struct hd_call *call, const ProtobufCMessage *req)
{
	struct drsreq *r = drsreq_new(call, K_STATUS);

	(void)req;
	if (r)
		start(call, r, "System.Read", NULL);
}

void hd_vim_set_drs_config(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__DrsConfigChange *c = (const Keel__Vim__DrsConfigChange *)req;
	struct drsreq *r = drsreq_new(call, K_SET);
	const char *invalid = NULL;

	if (!r)
		return;
	if (c->automation && c->automation[0]) {
		for (size_t i = 0; i < sizeof(automations) / sizeof(automations[0]); i++)
			if (strcmp(automations[i].word, c->automation) == 0)
				r->cs.drs_automation = automations[i].value;
		if (!r->cs.drs_automation)
			invalid = "automation: manual, partially, fully or \"\" (unchanged)";
	}
	if (c->threshold > 5)
		invalid = "threshold: 1 (conservative) .. 5 (aggressive); 0: unchanged";
	if (c->interval_s && (c->interval_s < 10 || c->interval_s > 3600))
		invalid = "interval_s: 10..3600; 0: unchanged";
	if (c->hold_set && c->hold_s > 86400)
		invalid = "hold_s: 0..86400 (with hold_set)";
	if (c->max_moves > 4096)
		invalid = "max_moves: 1..4096; 0: unchanged";
	r->cs.drs_threshold = c->threshold;
	r->cs.drs_interval_s = c->interval_s;
	r->cs.drs_hold_set = c->hold_set;
	r->cs.drs_hold_s = c->hold_set ? c->hold_s : 0;
	r->cs.drs_max_moves = c->max_moves;
	if (!invalid && !r->cs.drs_automation && !c->threshold && !c->interval_s && !c->hold_set &&
	    !c->max_moves)
		invalid = "nothing to change: automation, threshold, interval_s, hold_set or "
			  "max_moves";
	start(call, r, MANAGE, invalid);
}
