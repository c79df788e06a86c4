/*
 * `keel cluster rule list|add|remove` and `keel cluster drs status|recommend|set|apply`
 * through hostd's API (--server); the local path through clusterd is cluster_drs.c
 * (docs/drs.md, docs/hostd.md "Placement rules and DRS").
 *
 * cluster_drs.c checks the options and builds clusterd's request; here it becomes the API's
 * (ListClusterRules, AddClusterRule, RemoveClusterRule, GetDrsStatus, SetDrsConfig), and the
 * answer is turned back into clusterd's ClusterDrsStatus — "vm-<uuid>" into the uuid,
 * "host-<id>" into the id, kind and automation words into their values — and printed by
 * cluster_drs.c's printers, so text and --json are those of the local path. Lists and the
 * status are computed on the replica of the host answering; changes are committed by the
 * leader (a follower's clusterd passes them on), so any host's hostd takes them.
 *
 * apply: GetDrsStatus, the moves chosen as locally (a VM named without a recommendation is
 * refused before anything starts), then one ApplyDrsRecommendations Task (the VMs named, or
 * every recommendation with --all) followed with its progress (task.c); at its end each
 * move's outcome is where the inventory says the VM runs, with the reason the task's error
 * gives for a VM not moved. --no-wait prints the task id (--json: the Task).
 *
 * Failure modes: every API failure is reported as api.c does (hostd's message and its
 * gRPC code: an unknown VM or rule NOT_FOUND, a missing privilege PERMISSION_DENIED, ...),
 * exit 1; a task that failed prints its error on stderr beside the moves' table, exit 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "lib/heap.h"
#include "mgmt-api/keel/cluster_int.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

/* A ClusterDrsStatus made from an API answer; its strings are borrowed from the answer. */
struct view {
	Keel__Cluster__ClusterDrsStatus st;
	Keel__Cluster__DrsSettings settings;
	Keel__Cluster__RuleView *rules, **rulep;
	char ***uuids; /* per rule: its VMs' uuids */
	Keel__Cluster__DrsRecommendation *recs, **recp;
};

/* "vm-<uuid>" -> the uuid; anything else as it is. */
static char *vm_uuid(char *id)
{
	return strncmp(id, "vm-", 3) == 0 ? id + 3 : id;
}

/* "host-<id>" -> the id; 0 for anything else. */
static uint64_t host_id(const char *id)
{
	char *end;
	uint64_t v;

	if (strncmp(id, "host-", 5) != 0 || id[5] < '0' || id[5] > '9')
		return 0;
	errno = 0;
	v = strtoull(id + 5, &end, 10);
	return errno || *end ? 0 : v;
}

static void view_close(struct view *v)
{
	for (size_t i = 0; v->uuids && i < v->st.n_rules; i++)
		kb_free(v->uuids[i]);
	kb_free(v->uuids);
	kb_free(v->rules);
	kb_free(v->rulep);
	kb_free(v->recs);
	kb_free(v->recp);
	memset(v, 0, sizeof(*v));
}

static int view_rules(struct view *v, Keel__Vim__ClusterRule **rules, size_t n)
{
	v->rules = kb_calloc(n ? n : 1, sizeof(*v->rules));
	v->rulep = kb_calloc(n ? n : 1, sizeof(*v->rulep));
	v->uuids = kb_calloc(n ? n : 1, sizeof(*v->uuids));
	if (!v->rules || !v->rulep || !v->uuids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Keel__Vim__ClusterRule *r = rules[i];
		Keel__Cluster__RuleView *o = &v->rules[i];

		keel__cluster__rule_view__init(o);
		v->rulep[i] = o;
		v->st.n_rules = i + 1;
		v->uuids[i] = kb_calloc(r->n_vms ? r->n_vms : 1, sizeof(char *));
		if (!v->uuids[i])
			return -ENOMEM;
		for (size_t k = 0; k < r->n_vms; k++)
			v->uuids[i][k] = vm_uuid(r->vms[k]);
		o->name = r->name;
		o->kind = kc_drs_kind_value(r->kind);
		o->mandatory = r->mandatory;
		o->n_vms = r->n_vm_names;
		o->vms = r->vm_names;
		o->n_vm_uuids = r->n_vms;
		o->vm_uuids = v->uuids[i];
		o->n_hosts = r->n_hosts;
		o->hosts = r->hosts;
		o->violation = r->violation;
	}
	v->st.rules = v->rulep;
	return 0;
}

static int view_init(struct view *v, Keel__Vim__ClusterRule **rules, size_t n_rules)
{
	memset(v, 0, sizeof(*v));
	keel__cluster__cluster_drs_status__init(&v->st);
	keel__cluster__drs_settings__init(&v->settings);
	return view_rules(v, rules, n_rules);
}

/* The status of d; with_recs: its recommendations too (as OP_RECOMMEND answers). */
static int view_of_status(struct view *v, Keel__Vim__DrsStatus *d, bool with_recs)
{
	size_t n = with_recs ? d->n_recommendations : 0;
	int rc = view_init(v, d->rules, d->n_rules);

	if (rc)
		return rc;
	if (d->config) {
		v->settings.automation = kc_drs_automation_value(d->config->automation);
		v->settings.threshold = d->config->threshold;
		v->settings.interval_s = d->config->interval_s;
		v->settings.hold_s = d->config->hold_s;
		v->settings.max_moves = d->config->max_moves;
		v->st.settings = &v->settings;
	}
	v->st.imbalance = d->imbalance;
	v->st.target = d->target;
	v->st.balanced = d->balanced;
	v->st.hosts = d->hosts;
	v->st.vms = d->vms;
	v->st.held = d->held;
	v->st.overcommitted = d->overcommitted;
	v->st.mandatory_violated = d->mandatory_violated;
	v->st.preferential_violated = d->preferential_violated;
	v->st.n_held_vms = d->n_held_vms;
	v->st.held_vms = d->held_vms;
	v->st.last_pass_ms = d->last_pass_ms;
	v->st.last_pass = d->last_pass;
	v->st.leader = d->leader;
	v->recs = kb_calloc(n ? n : 1, sizeof(*v->recs));
	v->recp = kb_calloc(n ? n : 1, sizeof(*v->recp));
	if (!v->recs || !v->recp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Keel__Vim__DrsRecommendationObject *r = d->recommendations[i];
		Keel__Cluster__DrsRecommendation *o = &v->recs[i];

		keel__cluster__drs_recommendation__init(o);
		o->vm = vm_uuid(r->vm);
		o->vm_name = r->vm_name;
		o->from = host_id(r->from_host);
		o->from_name = r->from_name;
		o->to = host_id(r->to_host);
		o->to_name = r->to_name;
		o->reason = r->reason;
		o->priority = r->priority;
		o->rule = r->rule;
		o->bytes = r->bytes;
		o->imbalance_before = r->imbalance_before;
		o->imbalance_after = r->imbalance_after;
		o->automatic = r->automatic;
		v->recp[i] = o;
	}
	v->st.n_recommendations = n;
	v->st.recommendations = v->recp;
	return 0;
}

/* ---- rules ------------------------------------------------------------------------------------ */

/* Prints the rule list of an answer (taken) as `rule list` does. */
static int print_rule_list(struct kc_ctx *ctx, ProtobufCMessage *m)
{
	Keel__Vim__ClusterRuleList *l = (Keel__Vim__ClusterRuleList *)m;
	struct view v;
	int rc = view_init(&v, l->rules, l->n_rules);

	rc = rc ? kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory")
		: kc_drs_print_rules(ctx, &v.st);
	view_close(&v);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int kc_drs_api_rules(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__ClusterRulesRequest rq = KEEL__VIM__CLUSTER_RULES_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc = kc_api_call(ctx, call, "ListClusterRules", &rq.base,
			     &keel__vim__cluster_rule_list__descriptor, &m);

	return rc ? rc : print_rule_list(ctx, m);
}

int kc_drs_api_rule_add(struct kc_ctx *ctx, const struct kc_call *call,
			const Keel__Cluster__ClusterRuleRequest *rr)
{
	Keel__Vim__AddClusterRuleRequest rq = KEEL__VIM__ADD_CLUSTER_RULE_REQUEST__INIT;
	Keel__Vim__ClusterRule r = KEEL__VIM__CLUSTER_RULE__INIT;
	ProtobufCMessage *m;
	int rc;

	r.name = rr->name;
	r.kind = (char *)kc_drs_kind_word(rr->kind);
	r.mandatory = rr->mandatory;
	r.n_vms = rr->n_vms;
	r.vms = rr->vms;
	r.n_hosts = rr->n_hosts;
	r.hosts = rr->hosts;
	rq.rule = &r;
	rq.replace = rr->replace;
	rc = kc_api_call(ctx, call, "AddClusterRule", &rq.base,
			 &keel__vim__cluster_rule_list__descriptor, &m);
	return rc ? rc : print_rule_list(ctx, m);
}

int kc_drs_api_rule_remove(struct kc_ctx *ctx, const struct kc_call *call, const char *name)
{
	Keel__Vim__RemoveClusterRuleRequest rq = KEEL__VIM__REMOVE_CLUSTER_RULE_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc;

	rq.name = (char *)name;
	rc = kc_api_call(ctx, call, "RemoveClusterRule", &rq.base,
			 &keel__vim__cluster_rule_list__descriptor, &m);
	return rc ? rc : print_rule_list(ctx, m);
}

/* ---- status, recommend, set ------------------------------------------------------------------- */

/* Prints a DrsStatus answer (taken) as `drs status` (recommend false) or `drs recommend`. */
static int print_drs(struct kc_ctx *ctx, ProtobufCMessage *m, bool recommend)
{
	struct view v;
	int rc = view_of_status(&v, (Keel__Vim__DrsStatus *)m, recommend);

	if (rc)
		rc = kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
	else if (!v.st.settings)
		rc = kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "hostd's DrsStatus has no settings");
	else
		rc = recommend ? kc_drs_print_recs(ctx, &v.st) : kc_drs_print_status(ctx, &v.st);
	view_close(&v);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int kc_drs_api_status(struct kc_ctx *ctx, const struct kc_call *call, bool recommend)
{
	Keel__Vim__DrsStatusRequest rq = KEEL__VIM__DRS_STATUS_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc = kc_api_call(ctx, call, "GetDrsStatus", &rq.base,
			     &keel__vim__drs_status__descriptor, &m);

	return rc ? rc : print_drs(ctx, m, recommend);
}

int kc_drs_api_set(struct kc_ctx *ctx, const struct kc_call *call,
		   const Keel__Cluster__ClusterConfigSet *cs)
{
	Keel__Vim__DrsConfigChange ch = KEEL__VIM__DRS_CONFIG_CHANGE__INIT;
	ProtobufCMessage *m;
	int rc;

	ch.automation =
	    (char *)(cs->drs_automation ? kc_drs_automation_word(cs->drs_automation) : "");
	ch.threshold = cs->drs_threshold;
	ch.interval_s = cs->drs_interval_s;
	ch.hold_set = cs->drs_hold_set;
	ch.hold_s = cs->drs_hold_s;
	ch.max_moves = cs->drs_max_moves;
	rc = kc_api_call(ctx, call, "SetDrsConfig", &ch.base, &keel__vim__drs_status__descriptor,
			 &m);
	return rc ? rc : print_drs(ctx, m, false);
}

/* ---- apply ------------------------------------------------------------------------------------ */

/* The reason the task's error gives for VM name not moved to to_name ("VM a was not moved
 * to h2: why; VM b ..."), into out; false when it names none. */
static bool reason_of(const char *error, const char *name, const char *to_name, char *out,
		      size_t size)
{
	char head[600];
	const char *p, *end;

	snprintf(head, sizeof(head), "VM %s was not moved to %s: ", name, to_name);
	p = strstr(error, head);
	if (!p)
		return false;
	p += strlen(head);
	end = strstr(p, "; VM ");
	snprintf(out, size, "%.*s", (int)(end ? (size_t)(end - p) : strlen(p)), p);
	return out[0] != '\0';
}

/* Each move's outcome after the task ended: where the inventory says its VM runs. */
static void outcomes(struct kl_client *c, const Keel__Vim__Task *task, struct kc_drs_move *mv,
		     size_t n)
{
	Keel__Vim__RetrieveInventoryRequest rq = KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
	Keel__Vim__Inventory *inv = NULL;
	ProtobufCMessage *m = NULL;
	struct kl_status st;
	char why[200];

	if (kl_client_call(c, "RetrieveInventory", &rq.base, &keel__vim__inventory__descriptor, &m,
			   &st) == 0)
		inv = (Keel__Vim__Inventory *)m;
	for (size_t i = 0; i < n; i++) {
		const Keel__Cluster__DrsRecommendation *r = mv[i].rec;

		mv[i].begun = true;
		mv[i].done = true;
		for (size_t k = 0; inv && k < inv->n_vms; k++) {
			const Keel__Vim__VmObject *o = inv->vms[k];

			if (strcmp(vm_uuid(o->id), r->vm) == 0)
				mv[i].owner = host_id(o->host);
		}
		if (inv && mv[i].owner == r->to) {
			snprintf(mv[i].result, sizeof(mv[i].result), "moved");
		} else if (reason_of(task->error, r->vm_name, r->to_name, why, sizeof(why))) {
			mv[i].begun = strncmp(why, "not begun", 9) != 0;
			snprintf(mv[i].result, sizeof(mv[i].result), "%s%s",
				 mv[i].begun ? "failed: " : "", why);
		} else if (!inv && strcmp(task->state, "success") == 0) {
			snprintf(mv[i].result, sizeof(mv[i].result), "moved");
		} else {
			snprintf(mv[i].result, sizeof(mv[i].result),
				 "not moved (the task's error tells why)");
		}
	}
	if (inv)
		protobuf_c_message_free_unpacked(&inv->base, NULL);
}

int kc_drs_api_apply(struct kc_ctx *ctx, const struct kc_call *call, bool all, uint32_t parallel,
		     uint32_t wait_s, bool no_wait)
{
	Keel__Vim__DrsStatusRequest sq = KEEL__VIM__DRS_STATUS_REQUEST__INIT;
	Keel__Vim__ApplyDrsRequest aq = KEEL__VIM__APPLY_DRS_REQUEST__INIT;
	Keel__Vim__DrsStatus *d = NULL;
	Keel__Vim__Task *task = NULL;
	struct kc_drs_move *mv = NULL;
	char url[KC_URL_MAX], clean[1024];
	char **vms = NULL;
	struct kl_client *c;
	struct kl_status st;
	ProtobufCMessage *m;
	uint64_t timeout_ms;
	struct view v;
	size_t n = 0;
	int rc;

	memset(&v, 0, sizeof(v));
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	kc_api_server(ctx, call, url, sizeof(url));
	if (kl_client_call(c, "GetDrsStatus", &sq.base, &keel__vim__drs_status__descriptor, &m,
			   &st) != 0) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		goto close_client;
	}
	d = (Keel__Vim__DrsStatus *)m;
	if (view_of_status(&v, d, true) != 0 ||
	    !(mv = kb_calloc(v.st.n_recommendations ? v.st.n_recommendations : 1, sizeof(*mv))) ||
	    !(vms = kb_calloc(v.st.n_recommendations ? v.st.n_recommendations : 1, sizeof(*vms)))) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
		goto free_view;
	}
	rc = kc_drs_select(ctx, call, &v.st, all, mv, &n);
	if (rc || n == 0) {
		if (rc == KC_EXIT_OK)
			rc = kc_drs_print_moves(ctx, mv, 0);
		goto free_view;
	}
	/* --all: whatever hostd's replica recommends when the task plans; else these VMs */
	for (size_t i = 0; !all && i < n; i++)
		vms[i] = (char *)mv[i].rec->vm;
	aq.n_vms = all ? 0 : n;
	aq.vms = vms;
	aq.parallel = parallel;
	if (kl_client_call(c, "ApplyDrsRecommendations", &aq.base, &keel__vim__task__descriptor, &m,
			   &st) != 0) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		goto free_view;
	}
	task = (Keel__Vim__Task *)m;
	if (no_wait) {
		if (ctx->json)
			kc_api_json(&task->base, NULL);
		else
			printf("%s\n", task->id);
		rc = KC_EXIT_OK;
		goto free_task;
	}
	/* --wait bounds each group of moves, as locally */
	timeout_ms = ctx->timeout_ms;
	ctx->timeout_ms = (uint64_t)wait_s * 1000u * ((n + parallel - 1) / parallel);
	rc = kc_task_follow(ctx, c, url, &task);
	ctx->timeout_ms = timeout_ms;
	if (rc)
		goto free_task;
	outcomes(c, task, mv, n);
	if (strcmp(task->state, "success") != 0) {
		fflush(stdout);
		fprintf(stderr, "keel: %s (%s, %s)\n",
			kc_clean(task->error[0] ? task->error : task->state, clean, sizeof(clean)),
			task->id, task->kind);
	}
	rc = kc_drs_print_moves(ctx, mv, n);
	if (rc == KC_EXIT_OK && strcmp(task->state, "success") != 0)
		rc = KC_EXIT_FAILED;
free_task:
	keel__vim__task__free_unpacked(task, NULL);
free_view:
	kb_free(vms);
	kb_free(mv);
	view_close(&v);
	if (d)
		protobuf_c_message_free_unpacked(&d->base, NULL);
close_client:
	kl_client_destroy(c);
	return rc;
}
