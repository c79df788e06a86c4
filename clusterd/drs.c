/*
 * Placement rules and DRS-style balancing in the cluster (docs/drs.md, "In the cluster").
 *
 * The pure modules ha/place.h and ha/drs.h decide; this file feeds them the replicated
 * state and acts on the answers:
 *   - the model: hosts, VMs and rules of the state as a struct ha_cluster (host ids as
 *     they are, VM i of the state as id i + 1, rule i as id i + 1);
 *   - the control requests: rules listed from this host's replica and set or removed
 *     through the leader (RuleSet, RuleRemove); DRS status and recommendations computed on
 *     this host's replica (the modules are deterministic, so every host computes the same);
 *     DRS settings changed through the leader (SetConfig with the new settings);
 *   - the leader's pass: every DRS interval, on the ready leader, when every host of the
 *     cluster is connected and no migration is in flight, fully automated DRS begins the
 *     recommended migrations (partially automated: the fixes of mandatory rules only), each
 *     with an event, through the same OP_MIGRATE_BEGIN as `keel vm migrate`;
 *   - the rule check of a migration with a chosen destination (cd_drs_check_move).
 *
 * Failure modes: a request on a host that does not lead is refused with the leader's address
 * (the join port does not carry these requests yet); a refused migration is logged and the
 * next pass tries again; out of memory fails the request or skips the pass.
 * Loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "ha/drs.h"
#include "ha/place.h"
#include "lib/heap.h"
#include "lib/time.h"

#define PASS_MIGRATIONS_MAX 8 /* migrations one pass begins: the rest wait for the next */
#define DRS_TICK_MS 1000

#define POWER_ON  KEEL__CLUSTER__POWER_STATE__POWER_ON
#define CONNECTED KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED
#define HOST_LEFT KEEL__CLUSTER__HOST_STATE__HOST_LEFT

static struct {
	bool started;
	uv_timer_t timer;
	uint64_t last_pass_ns; /* monotonic; 0: none in this leadership */
	uint64_t last_pass_ms; /* wall clock of the last pass, for status */
	char last_pass[200];
	bool was_leader;
} drs;

/* ---- the model ------------------------------------------------------------------------- */

static unsigned vm_index(const struct cd_state *s, const char *uuid)
{
	return (unsigned)(cd_state_vm(s, uuid) - cd_state_vm_at(s, 0));
}

void cd__drs_model_free(struct cd_drs_model *m)
{
	kb_free(m->hosts);
	kb_free(m->vms);
	kb_free(m->rules);
	kb_free(m->members);
	memset(m, 0, sizeof(*m));
}

int cd__drs_model_build(const struct cd_state *s, struct cd_drs_model *m, struct kb_errmsg *e)
{
	unsigned nh = cd_state_n_hosts(s), nv = cd_state_n_vms(s), nr = cd_state_n_rules(s);
	size_t members = 0, k = 0;

	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < nr; i++)
		members += cd_state_rule_at(s, i)->n_vms + cd_state_rule_at(s, i)->n_hosts;
	m->hosts = kb_calloc(nh ? nh : 1, sizeof(*m->hosts));
	m->vms = kb_calloc(nv ? nv : 1, sizeof(*m->vms));
	m->rules = kb_calloc(nr ? nr : 1, sizeof(*m->rules));
	m->members = kb_calloc(members ? members : 1, sizeof(*m->members));
	if (!m->hosts || !m->vms || !m->rules || !m->members) {
		cd__drs_model_free(m);
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nh; i++) {
		const struct cd_host *h = cd_state_host_at(s, i);

		m->hosts[i].id = h->id;
		m->hosts[i].name = h->name;
		m->hosts[i].cpu_mhz = h->cpu_mhz;
		m->hosts[i].mem_mib = h->mem_mib;
		m->hosts[i].usable = h->state == CONNECTED && !h->maintenance;
	}
	for (unsigned i = 0; i < nv; i++) {
		const struct cd_vm *v = cd_state_vm_at(s, i);

		/* The registry knows a VM's memory size and CPU reservation: they stand for its
		 * demand as well. */
		m->vms[i].id = i + 1;
		m->vms[i].host = cd_state_host(s, v->owner) ? v->owner : 0;
		m->vms[i].powered_on = v->desired_power == POWER_ON;
		m->vms[i].cpu_mhz = v->cpu_mhz;
		m->vms[i].mem_mib = v->mem_mib;
		m->vms[i].cpu_res_mhz = v->cpu_mhz;
		m->vms[i].mem_res_mib = v->mem_mib;
		m->vms[i].mem_size_mib = v->mem_mib;
		/* a VM with FT on stays where it is: held for good (docs/ft.md) */
		m->vms[i].last_moved_ms = CD_FT_ON(v) ? UINT64_MAX : v->last_moved_ms;
	}
	for (unsigned i = 0; i < nr; i++) {
		const struct cd_rule *r = cd_state_rule_at(s, i);
		struct ha_rule *hr = &m->rules[i];

		hr->id = i + 1;
		hr->kind = r->kind; /* the proto's values are ha/place.h's */
		hr->mandatory = r->mandatory;
		hr->vms = &m->members[k];
		for (unsigned j = 0; j < r->n_vms; j++)
			m->members[k++] = vm_index(s, r->vms[j]) + 1;
		hr->n_vms = r->n_vms;
		if (r->n_hosts) {
			hr->hosts = &m->members[k];
			for (unsigned j = 0; j < r->n_hosts; j++)
				m->members[k++] = r->hosts[j];
			hr->n_hosts = r->n_hosts;
		}
	}
	m->c.hosts = m->hosts;
	m->c.n_hosts = nh;
	m->c.vms = m->vms;
	m->c.n_vms = nv;
	m->c.rules = m->rules;
	m->c.n_rules = nr;
	return 0;
}

static enum ha_drs_automation automation_of(int a)
{
	return a == KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL	 ? HA_DRS_FULL
	       : a == KEEL__CLUSTER__DRS_AUTOMATION__DRS_PARTIAL ? HA_DRS_PARTIAL
								 : HA_DRS_MANUAL;
}

static void drs_config(const struct cd_state *s, uint64_t now_ms, struct ha_drs_config *cfg)
{
	struct cd_drs_settings st;

	cd_state_drs_settings(s, &st);
	ha_drs_config_init(cfg);
	cfg->threshold = st.threshold;
	cfg->automation = automation_of(st.automation);
	cfg->hold_ms = (uint64_t)st.hold_s * 1000;
	cfg->max_moves = st.max_moves;
	cfg->now_ms = now_ms;
}

void cd__drs_anti_groups(const struct cd_state *s, uint32_t *groups)
{
	for (unsigned i = cd_state_n_rules(s); i-- > 0;) {
		const struct cd_rule *r = cd_state_rule_at(s, i);

		if (!r->mandatory || r->kind != KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY)
			continue;
		/* Backwards, so the first rule naming a VM wins. */
		for (unsigned j = 0; j < r->n_vms; j++)
			groups[vm_index(s, r->vms[j])] = i + 1;
	}
}

void cd__drs_explain(const struct cd_state *s, struct kb_errmsg *e)
{
	char out[KB_ERRMSG_SIZE];
	const char *p = e->msg;
	size_t o = 0;

	while (*p && o + 1 < sizeof(out)) {
		const char *num = NULL, *name = NULL;
		unsigned long long v = 0;
		char *end = NULL;

		if (strncmp(p, "VM ", 3) == 0 && p[3] >= '0' && p[3] <= '9')
			num = p + 3;
		else if (strncmp(p, "rule ", 5) == 0 && p[5] >= '0' && p[5] <= '9')
			num = p + 5;
		if (num) {
			v = strtoull(num, &end, 10);
			if (num == p + 3 && v >= 1 && v <= cd_state_n_vms(s))
				name = cd_state_vm_at(s, (unsigned)(v - 1))->name;
			else if (num == p + 5 && v >= 1 && v <= cd_state_n_rules(s))
				name = cd_state_rule_at(s, (unsigned)(v - 1))->name;
		}
		if (name) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%.*s%s", (int)(num - p), p,
					      name);
			p = end;
		} else {
			out[o++] = *p++;
		}
		if (o >= sizeof(out))
			o = sizeof(out) - 1;
	}
	out[o] = '\0';
	kb_errmsg_setf(e, "%s", out);
}

/* ---- rule checks ------------------------------------------------------------------------ */

static bool counted(const struct cd_state *s, const struct cd_vm *v)
{
	return v->desired_power == POWER_ON && cd_state_host(s, v->owner) != NULL;
}

static bool in_group(const struct cd_rule *r, uint64_t host)
{
	for (unsigned i = 0; i < r->n_hosts; i++)
		if (r->hosts[i] == host)
			return true;
	return false;
}

/* Rule r's violation (its counted VMs out of place, as ha/place.h counts it), with VM moving
 * (or NULL) on host `to`. */
static unsigned rule_violation(const struct cd_state *s, const struct cd_rule *r,
			       const struct cd_vm *moving, uint64_t to)
{
	uint64_t where[CD_RULE_VMS_MAX];
	unsigned n = 0, out = 0, best = 0, distinct = 0;

	for (unsigned i = 0; i < r->n_vms; i++) {
		const struct cd_vm *v = cd_state_vm(s, r->vms[i]);

		if (v && counted(s, v))
			where[n++] = v == moving ? to : v->owner;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned same = 0;
		bool first = true;

		switch (r->kind) {
		case KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY:
			out += !in_group(r, where[i]);
			break;
		case KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY:
			out += in_group(r, where[i]);
			break;
		default:
			for (unsigned j = 0; j < n; j++) {
				same += where[j] == where[i];
				if (j < i && where[j] == where[i])
					first = false;
			}
			best = same > best ? same : best;
			distinct += first;
			break;
		}
	}
	if (r->kind == KEEL__CLUSTER__RULE_KIND__RULE_AFFINITY)
		return n - best;
	if (r->kind == KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY)
		return n - distinct;
	return out;
}

static const char *rule_words(const struct cd_rule *r)
{
	return ha_rule_str((enum ha_rule_kind)r->kind, r->mandatory);
}

int cd_drs_check_move(const struct cd_state *s, const struct cd_vm *vm, uint64_t to,
		      struct kb_errmsg *e)
{
	for (unsigned i = 0; i < cd_state_n_rules(s); i++) {
		const struct cd_rule *r = cd_state_rule_at(s, i);
		bool member = false;

		if (!r->mandatory)
			continue;
		for (unsigned j = 0; j < r->n_vms && !member; j++)
			member = strcmp(r->vms[j], vm->uuid) == 0;
		if (!member)
			continue;
		if (rule_violation(s, r, vm, to) > rule_violation(s, r, NULL, 0)) {
			const struct cd_host *h = cd_state_host(s, to);

			kb_errmsg_setf(e, "moving VM %s to %s would break rule %s (%s)", vm->name,
				       h ? h->name : "?", r->name, rule_words(r));
			return -EPERM; /* a verdict: not retried like KB_ESTATE */
		}
	}
	return 0;
}

/* ---- views for the control socket ------------------------------------------------------- */

static char *str_dup(const char *s)
{
	return kb_strdup(s ? s : "");
}

static const char *host_name(const struct cd_state *s, uint64_t id)
{
	const struct cd_host *h = cd_state_host(s, id);

	return h ? h->name : "?";
}

static Keel__Cluster__DrsSettings *settings_pb(const struct cd_state *s)
{
	Keel__Cluster__DrsSettings *p = kb_calloc(1, sizeof(*p));
	struct cd_drs_settings st;

	if (!p)
		return NULL;
	keel__cluster__drs_settings__init(p);
	cd_state_drs_settings(s, &st);
	p->automation = st.automation;
	p->threshold = st.threshold;
	p->interval_s = st.interval_s;
	p->hold_s = st.hold_s;
	p->max_moves = st.max_moves;
	return p;
}

static Keel__Cluster__RuleView *rule_view(const struct cd_state *s, const struct cd_rule *r)
{
	Keel__Cluster__RuleView *v = kb_calloc(1, sizeof(*v));
	bool ok;

	if (!v)
		return NULL;
	keel__cluster__rule_view__init(v);
	v->name = str_dup(r->name);
	v->kind = r->kind;
	v->mandatory = r->mandatory;
	v->vms = kb_calloc(r->n_vms ? r->n_vms : 1, sizeof(char *));
	v->vm_uuids = kb_calloc(r->n_vms ? r->n_vms : 1, sizeof(char *));
	v->hosts = kb_calloc(r->n_hosts ? r->n_hosts : 1, sizeof(char *));
	ok = v->name && v->vms && v->vm_uuids && v->hosts;
	for (unsigned i = 0; ok && i < r->n_vms; i++) {
		const struct cd_vm *vm = cd_state_vm(s, r->vms[i]);

		v->vms[i] = str_dup(vm ? vm->name : "?");
		v->n_vms = i + 1;
		v->vm_uuids[i] = str_dup(r->vms[i]);
		v->n_vm_uuids = i + 1;
		ok = v->vms[i] && v->vm_uuids[i];
	}
	for (unsigned i = 0; ok && i < r->n_hosts; i++) {
		v->hosts[i] = str_dup(host_name(s, r->hosts[i]));
		v->n_hosts = i + 1;
		ok = v->hosts[i] != NULL;
	}
	v->violation = rule_violation(s, r, NULL, 0);
	if (!ok) {
		keel__cluster__rule_view__free_unpacked(v, &cd__pb_allocator);
		return NULL;
	}
	return v;
}

static const char *reason_word(enum ha_drs_reason r)
{
	return ha_drs_reason_str(r);
}

static int add_recs(const struct cd_state *s, const struct cd_drs_model *m,
		    Keel__Cluster__ClusterDrsStatus *st, struct kb_errmsg *e)
{
	struct ha_drs_config cfg;
	struct ha_drs_rec *recs;
	size_t n = 0;
	int rv;

	drs_config(s, cd_now_ms(), &cfg);
	recs = kb_calloc(cfg.max_moves, sizeof(*recs));
	if (!recs) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	rv = ha_drs_recommend(&m->c, &cfg, recs, cfg.max_moves, &n, e);
	if (rv == 0) {
		st->recommendations = kb_calloc(n ? n : 1, sizeof(*st->recommendations));
		if (!st->recommendations)
			rv = -ENOMEM;
	}
	for (size_t i = 0; rv == 0 && i < n; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, (unsigned)(recs[i].vm - 1));
		Keel__Cluster__DrsRecommendation *p = kb_calloc(1, sizeof(*p));

		if (!p) {
			rv = -ENOMEM;
			break;
		}
		keel__cluster__drs_recommendation__init(p);
		st->recommendations[st->n_recommendations++] = p;
		p->vm = str_dup(vm->uuid);
		p->vm_name = str_dup(vm->name);
		p->from = recs[i].from;
		p->from_name = str_dup(host_name(s, recs[i].from));
		p->to = recs[i].to;
		p->to_name = str_dup(host_name(s, recs[i].to));
		p->reason = str_dup(reason_word(recs[i].reason));
		p->priority = recs[i].priority;
		p->rule = str_dup(recs[i].rule ? cd_state_rule_at(s, recs[i].rule - 1)->name : "");
		p->bytes = recs[i].bytes;
		p->imbalance_before = recs[i].imbalance_before;
		p->imbalance_after = recs[i].imbalance_after;
		/* What the leader's pass applies under the automation level in force. */
		p->automatic =
		    cfg.automation == HA_DRS_FULL ||
		    (cfg.automation == HA_DRS_PARTIAL && recs[i].reason == HA_DRS_FIX_MANDATORY);
		if (!p->vm || !p->vm_name || !p->from_name || !p->to_name || !p->reason || !p->rule)
			rv = -ENOMEM;
	}
	if (rv == -ENOMEM)
		kb_errmsg_setf(e, "out of memory");
	kb_free(recs);
	return rv;
}

int cd_drs_view(struct cd_daemon *d, int op, Keel__Cluster__ClusterDrsStatus **out,
		struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__ClusterDrsStatus *st;
	struct cd_drs_model m;
	struct ha_drs_config cfg;
	struct ha_drs_status hs;
	unsigned nr = cd_state_n_rules(s);
	int rv = 0;

	*out = NULL;
	if (d->phase != CD_PHASE_RUNNING || !d->ca || !s->config.set) {
		kb_errmsg_setf(e, "this host is not in a cluster");
		return KB_ESTATE;
	}
	st = kb_calloc(1, sizeof(*st));
	if (!st) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	keel__cluster__cluster_drs_status__init(st);
	st->settings = settings_pb(s);
	st->rules = kb_calloc(nr ? nr : 1, sizeof(*st->rules));
	st->last_pass = str_dup(drs.last_pass);
	if (!st->settings || !st->rules || !st->last_pass) {
		rv = -ENOMEM;
		kb_errmsg_setf(e, "out of memory");
		goto out;
	}
	st->leader = cd_node_is_ready_leader(d);
	st->last_pass_ms = st->leader ? drs.last_pass_ms : 0;
	for (unsigned i = 0; i < nr; i++) {
		st->rules[i] = rule_view(s, cd_state_rule_at(s, i));
		if (!st->rules[i]) {
			rv = -ENOMEM;
			kb_errmsg_setf(e, "out of memory");
			goto out;
		}
		st->n_rules = i + 1;
	}
	if (op == KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_UNSPECIFIED)
		goto out; /* the rule list */
	if ((rv = cd__drs_model_build(s, &m, e)))
		goto out;
	drs_config(s, cd_now_ms(), &cfg);
	rv = ha_drs_status(&m.c, &cfg, &hs, e);
	if (rv == 0) {
		st->imbalance = hs.imbalance;
		st->target = hs.target;
		st->balanced = hs.balanced;
		st->hosts = hs.hosts;
		st->vms = hs.vms;
		st->held = hs.held;
		st->overcommitted = hs.overcommitted;
		st->mandatory_violated = hs.mandatory_violated;
		st->preferential_violated = hs.preferential_violated;
		st->held_vms = kb_calloc(hs.held ? hs.held : 1, sizeof(char *));
		if (!st->held_vms)
			rv = -ENOMEM;
		for (unsigned i = 0; rv == 0 && i < cd_state_n_vms(s) && st->n_held_vms < hs.held;
		     i++) {
			const struct cd_vm *v = cd_state_vm_at(s, i);

			if (!counted(s, v) || !v->last_moved_ms ||
			    !(cfg.now_ms < v->last_moved_ms ||
			      cfg.now_ms - v->last_moved_ms < cfg.hold_ms))
				continue;
			st->held_vms[st->n_held_vms] = str_dup(v->name);
			if (!st->held_vms[st->n_held_vms++])
				rv = -ENOMEM;
		}
		if (rv == -ENOMEM)
			kb_errmsg_setf(e, "out of memory");
	}
	if (rv == 0 && op == KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_RECOMMEND)
		rv = add_recs(s, &m, st, e);
	cd__drs_model_free(&m);
out:
	if (rv) {
		keel__cluster__cluster_drs_status__free_unpacked(st, &cd__pb_allocator);
		return rv;
	}
	*out = st;
	return 0;
}

void cd_drs_view_free(Keel__Cluster__ClusterDrsStatus *st)
{
	if (st)
		keel__cluster__cluster_drs_status__free_unpacked(st, &cd__pb_allocator);
}

/* ---- changes through the leader ----------------------------------------------------------- */

struct change {
	cd_member_cb cb;
	void *arg;
};

static void on_change_applied(struct cd_daemon *d, void *arg, int status, int code,
			      const char *reason)
{
	struct change *ch = arg;

	if (status)
		ch->cb(d, ch->arg, KB_ESTATE, "the change was not committed (leader changed)",
		       NULL);
	else
		ch->cb(d, ch->arg, code, code ? reason : NULL, NULL);
	kb_free(ch);
}

static int submit(struct cd_daemon *d, const Keel__Cluster__Command *c, cd_member_cb cb, void *arg,
		  struct kb_errmsg *e)
{
	struct change *ch = kb_calloc(1, sizeof(*ch));
	int rv;

	if (!ch) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	ch->cb = cb;
	ch->arg = arg;
	rv = cd_submit(d, c, on_change_applied, ch, e);
	if (rv)
		kb_free(ch);
	return rv;
}

/* Changes are committed by the leader: 0 on it; 1 on a follower (the caller forwards the
 * request over the join port, STEP_DRS); an error outside a cluster. */
static int need_leader(struct cd_daemon *d, struct kb_errmsg *e)
{
	if (d->phase != CD_PHASE_RUNNING || !d->ca) {
		kb_errmsg_setf(e, "this host is not in a cluster");
		return KB_ESTATE;
	}
	return cd_node_is_ready_leader(d) ? 0 : 1;
}

/* A VM by uuid ("vm-" prefix allowed) or by its name, which must be unique. */
static int find_vm(const struct cd_state *s, const char *text, const struct cd_vm **out,
		   struct kb_errmsg *e)
{
	const struct cd_vm *found = NULL;

	if (strncmp(text, "vm-", 3) == 0 && strlen(text) == CD_UUID_LEN + 3)
		text += 3;
	if ((found = cd_state_vm(s, text)) != NULL) {
		*out = found;
		return 0;
	}
	for (unsigned i = 0; i < cd_state_n_vms(s); i++) {
		const struct cd_vm *v = cd_state_vm_at(s, i);

		if (strcmp(v->name, text) != 0)
			continue;
		if (found) {
			kb_errmsg_setf(e, "more than one VM is named %s: give its uuid", text);
			return -EINVAL;
		}
		found = v;
	}
	if (!found) {
		kb_errmsg_setf(e, "no VM %s in the cluster", text);
		return KB_ENOTFOUND;
	}
	*out = found;
	return 0;
}

static int find_host(const struct cd_state *s, const char *text, uint64_t *id, struct kb_errmsg *e)
{
	const struct cd_host *h = cd_state_host_by_name(s, text);
	char *end;

	if (!h && text[0] >= '0' && text[0] <= '9') {
		unsigned long long v = strtoull(text, &end, 10);

		if (*end == '\0')
			h = cd_state_host(s, v);
	}
	if (!h || h->state == HOST_LEFT) {
		kb_errmsg_setf(e, "no host %s in the cluster", text);
		return KB_ENOTFOUND;
	}
	*id = h->id;
	return 0;
}

static int rule_set(struct cd_daemon *d, const Keel__Cluster__ClusterRuleRequest *rq,
		    cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__RuleSet rs = KEEL__CLUSTER__RULE_SET__INIT;
	Keel__Cluster__Rule r = KEEL__CLUSTER__RULE__INIT;
	char *uuids[CD_RULE_VMS_MAX];
	uint64_t hosts[CD_RULE_HOSTS_MAX];
	struct cd_rule check;
	int rv;

	if (rq->n_vms > CD_RULE_VMS_MAX || rq->n_hosts > CD_RULE_HOSTS_MAX) {
		kb_errmsg_setf(e, "a rule names at most %d VMs and %d hosts", CD_RULE_VMS_MAX,
			       CD_RULE_HOSTS_MAX);
		return KB_ETOOBIG;
	}
	for (size_t i = 0; i < rq->n_vms; i++) {
		const struct cd_vm *vm;

		if ((rv = find_vm(s, rq->vms[i] ? rq->vms[i] : "", &vm, e)))
			return rv;
		uuids[i] = (char *)vm->uuid;
	}
	for (size_t i = 0; i < rq->n_hosts; i++)
		if ((rv = find_host(s, rq->hosts[i] ? rq->hosts[i] : "", &hosts[i], e)))
			return rv;
	r.name = rq->name;
	r.kind = rq->kind;
	r.mandatory = rq->mandatory;
	r.n_vms = rq->n_vms;
	r.vms = uuids;
	r.n_hosts = rq->n_hosts;
	r.hosts = hosts;
	/* The command's own checks, so a bad rule is refused before it is proposed. */
	if ((rv = cd__rule_from_pb(&r, &check, e)))
		return rv;
	if (cd_state_rule(s, check.name) && !rq->replace) {
		kb_errmsg_setf(e, "a rule named %s exists already (replace it with --replace)",
			       check.name);
		return KB_EEXIST;
	}
	if (!cd_state_rule(s, check.name) && cd_state_n_rules(s) >= CD_RULES_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d rules", CD_RULES_MAX);
		return KB_ETOOBIG;
	}
	rs.rule = &r;
	rs.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_RULE_SET;
	c.rule_set = &rs;
	kb_log(d->log, KB_LOG_INFO, "rule %s: %zu VMs %s", check.name, rq->n_vms,
	       rule_words(&check));
	return submit(d, &c, cb, arg, e);
}

int cd_drs_rule_request(struct cd_daemon *d, const Keel__Cluster__ClusterRuleRequest *rq,
			cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__RuleRemove rr = KEEL__CLUSTER__RULE_REMOVE__INIT;
	int rv;

	if (rq->op != KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_SET &&
	    rq->op != KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_REMOVE) {
		kb_errmsg_setf(e, "unknown rule request");
		return -EINVAL;
	}
	if ((rv = cd__check_name(rq->name, "rule name", e)))
		return rv;
	if ((rv = need_leader(d, e)))
		return rv < 0 ? rv : cd__forward_drs(d, rq, NULL, cb, arg, e);
	if (rq->op == KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_SET)
		return rule_set(d, rq, cb, arg, e);
	if (!cd_state_rule(cd_fsm_state(&d->fsm), rq->name)) {
		kb_errmsg_setf(e, "no rule named %s", rq->name);
		return KB_ENOTFOUND;
	}
	rr.name = rq->name;
	rr.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_RULE_REMOVE;
	c.rule_remove = &rr;
	kb_log(d->log, KB_LOG_INFO, "rule %s: remove", rq->name);
	return submit(d, &c, cb, arg, e);
}

bool cd_drs_config_wanted(const Keel__Cluster__ClusterConfigSet *cs)
{
	return cs->drs_automation || cs->drs_threshold || cs->drs_interval_s || cs->drs_hold_set ||
	       cs->drs_max_moves;
}

int cd_drs_config_set(struct cd_daemon *d, const Keel__Cluster__ClusterConfigSet *cs,
		      cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__SetConfig sc = KEEL__CLUSTER__SET_CONFIG__INIT;
	Keel__Cluster__ClusterConfig cfg = KEEL__CLUSTER__CLUSTER_CONFIG__INIT;
	Keel__Cluster__DrsSettings ds = KEEL__CLUSTER__DRS_SETTINGS__INIT;
	struct cd_drs_settings cur, check;
	int rv;

	if (cs->failure_timeout_ms || cs->isolation_response || cs->ha || cs->admission_set) {
		kb_errmsg_setf(e, "DRS settings are changed on their own, not with HA or "
				  "liveness settings");
		return -EINVAL;
	}
	if ((rv = need_leader(d, e)))
		return rv < 0 ? rv : cd__forward_drs(d, NULL, cs, cb, arg, e);
	cd_state_drs_settings(s, &cur);
	ds.automation =
	    cs->drs_automation ? cs->drs_automation : (Keel__Cluster__DrsAutomation)cur.automation;
	ds.threshold = cs->drs_threshold ? cs->drs_threshold : cur.threshold;
	ds.interval_s = cs->drs_interval_s ? cs->drs_interval_s : cur.interval_s;
	ds.hold_s = cs->drs_hold_set ? cs->drs_hold_s : cur.hold_s;
	ds.max_moves = cs->drs_max_moves ? cs->drs_max_moves : cur.max_moves;
	if ((rv = cd__drs_from_pb(&ds, &check, e)))
		return rv;
	cfg.name = (char *)s->config.name;
	cfg.cluster_id = (char *)s->config.cluster_id;
	cfg.format_version = s->config.format_version;
	cfg.failure_timeout_ms = s->config.failure_timeout_ms;
	cfg.isolation_response = s->config.isolation_response;
	cfg.ha_disabled = s->config.ha_disabled;
	cfg.admission_failures = s->config.admission_failures;
	cfg.admission_percent = s->config.admission_percent;
	cfg.drs = &ds;
	sc.config = &cfg;
	sc.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	c.set_config = &sc;
	kb_log(d->log, KB_LOG_INFO,
	       "DRS settings: %s, threshold %u, every %u s, hold %u s, %u moves",
	       ha_drs_automation_str(automation_of(ds.automation)), ds.threshold, ds.interval_s,
	       ds.hold_s, ds.max_moves);
	return submit(d, &c, cb, arg, e);
}

/* ---- the leader's pass -------------------------------------------------------------------- */

struct move {
	char uuid[CD_UUID_LEN + 1];
	uint64_t from;
	char text[CD_EVENT_MSG_MAX + 1];
};

static void on_event_applied(struct cd_daemon *d, void *arg, int status, int code,
			     const char *reason)
{
	(void)d;
	(void)arg;
	(void)status;
	(void)code;
	(void)reason;
}

static void on_move_begun(struct cd_daemon *d, void *arg, int code, const char *error,
			  const Keel__Cluster__ClusterVmReply *rp)
{
	struct move *mv = arg;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__EventAdd ea = KEEL__CLUSTER__EVENT_ADD__INIT;
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	struct kb_errmsg e = {{0}};

	(void)rp;
	if (code) {
		kb_log(d->log, KB_LOG_WARN, "DRS: VM %s not moved: %s", mv->uuid,
		       error ? error : "refused");
		kb_free(mv);
		return;
	}
	kb_log(d->log, KB_LOG_INFO, "%s", mv->text);
	ev.at_ms = cd_now_ms();
	ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION;
	ev.host = mv->from;
	ev.vm = mv->uuid;
	ev.message = mv->text;
	ea.event = &ev;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
	c.event_add = &ea;
	if (cd_submit(d, &c, on_event_applied, NULL, &e))
		kb_log(d->log, KB_LOG_WARN, "DRS: event not recorded: %s", e.msg);
	kb_free(mv);
}

/* Why the pass does not run now (NULL: it may). */
static const char *blocked(const struct cd_state *s, char *buf, size_t size)
{
	for (unsigned i = 0; i < cd_state_n_hosts(s); i++) {
		const struct cd_host *h = cd_state_host_at(s, i);

		if (h->state != CONNECTED && h->state != HOST_LEFT &&
		    h->state != KEEL__CLUSTER__HOST_STATE__HOST_MAINTENANCE) {
			snprintf(buf, size, "waiting: host %s is not connected", h->name);
			return buf;
		}
	}
	for (unsigned i = 0; i < cd_state_n_ops(s); i++) {
		if (cd_state_op_at(s, i)->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE) {
			snprintf(buf, size, "waiting: a migration is in flight");
			return buf;
		}
	}
	return NULL;
}

static void pass(struct cd_daemon *d)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	struct cd_drs_model m;
	struct ha_drs_config cfg;
	struct ha_drs_rec *recs = NULL;
	struct kb_errmsg e = {{0}};
	size_t n = 0, begun = 0, waiting = 0;
	char why[128];

	drs.last_pass_ms = cd_now_ms();
	if (blocked(s, why, sizeof(why))) {
		snprintf(drs.last_pass, sizeof(drs.last_pass), "%s", why);
		return;
	}
	drs_config(s, drs.last_pass_ms, &cfg);
	if (cd__drs_model_build(s, &m, &e)) {
		snprintf(drs.last_pass, sizeof(drs.last_pass), "skipped: %s", e.msg);
		return;
	}
	recs = kb_calloc(cfg.max_moves, sizeof(*recs));
	if (!recs || ha_drs_recommend(&m.c, &cfg, recs, cfg.max_moves, &n, &e)) {
		snprintf(drs.last_pass, sizeof(drs.last_pass), "skipped: %s",
			 recs ? e.msg : "out of memory");
		goto out;
	}
	/* In order: each recommendation assumes the ones before it were applied. */
	for (size_t i = 0; i < n; i++) {
		const struct ha_drs_rec *r = &recs[i];
		const struct cd_vm *vm = cd_state_vm_at(s, (unsigned)(r->vm - 1));
		Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
		struct move *mv;
		char rule[CD_NAME_MAX + 16];

		if (cfg.automation == HA_DRS_MANUAL ||
		    (cfg.automation == HA_DRS_PARTIAL && r->reason != HA_DRS_FIX_MANDATORY) ||
		    cd_state_op_for_vm(s, vm->uuid)) {
			waiting = n - i;
			break;
		}
		if (begun == PASS_MIGRATIONS_MAX) {
			waiting = n - i; /* the next pass goes on from where this one stops */
			break;
		}
		mv = kb_calloc(1, sizeof(*mv));
		if (!mv)
			break;
		snprintf(mv->uuid, sizeof(mv->uuid), "%s", vm->uuid);
		mv->from = r->from;
		if (r->rule)
			snprintf(rule, sizeof(rule), "fix rule %s",
				 cd_state_rule_at(s, r->rule - 1)->name);
		snprintf(mv->text, sizeof(mv->text),
			 "DRS: moving VM %s from %s to %s to %s (imbalance %.2f -> %.2f)", vm->name,
			 host_name(s, r->from), host_name(s, r->to), r->rule ? rule : "balance",
			 r->imbalance_before, r->imbalance_after);
		rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN;
		rq.uuid = (char *)vm->uuid;
		rq.destination = r->to;
		if (cd_vmop_leader(d, d->id, &rq, on_move_begun, mv, &e)) {
			kb_log(d->log, KB_LOG_WARN, "DRS: VM %s not moved: %s", vm->name, e.msg);
			kb_free(mv);
			break;
		}
		begun++;
	}
	snprintf(drs.last_pass, sizeof(drs.last_pass),
		 "%zu recommendations, %zu migrations begun, %zu left for an operator", n, begun,
		 waiting);
out:
	kb_free(recs);
	cd__drs_model_free(&m);
}

static void on_tick(uv_timer_t *t)
{
	struct cd_daemon *d = t->data;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	struct cd_drs_settings st;
	uint64_t now = kb_now_ns();

	if (d->phase != CD_PHASE_RUNNING || !d->ca || !cd_node_is_ready_leader(d) ||
	    !s->config.set) {
		drs.was_leader = false;
		return;
	}
	if (!drs.was_leader) {
		/* A new leader waits a whole interval before its first pass. */
		drs.was_leader = true;
		drs.last_pass_ns = now;
		drs.last_pass[0] = '\0';
		drs.last_pass_ms = 0;
		return;
	}
	cd_state_drs_settings(s, &st);
	if (now - drs.last_pass_ns < (uint64_t)st.interval_s * 1000000000ull)
		return;
	drs.last_pass_ns = now;
	pass(d);
}

int cd_drs_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	int rv;

	if (drs.started)
		return 0;
	rv = uv_timer_init(d->loop, &drs.timer);
	if (rv) {
		kb_errmsg_setf(e, "DRS timer: %s", uv_strerror(rv));
		return rv;
	}
	drs.timer.data = d;
	uv_timer_start(&drs.timer, on_tick, DRS_TICK_MS, DRS_TICK_MS);
	drs.started = true;
	return 0;
}

void cd_drs_stop(struct cd_daemon *d)
{
	(void)d;
	if (!drs.started)
		return;
	uv_timer_stop(&drs.timer);
	uv_close((uv_handle_t *)&drs.timer, NULL);
	drs.started = false;
}
