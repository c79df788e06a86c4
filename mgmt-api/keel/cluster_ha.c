/*
 * `keel cluster ha status|set|vm`: the cluster's HA settings (docs/ha-settings.md).
 *
 * status: HA on or off, admission control, and a table of the cluster's VMs with their
 * restart priority, restart-after VMs and VM monitoring (monitoring is a .vmx setting that
 * vmkernel reports for the VMs registered on this host, hostd likewise; "-" for the others). set: the cluster-wide switches, the same ClusterConfigSet as `keel cluster config`.
 * vm: one VM's priority and restart-after list (ClusterVmHa) and its VM monitoring (VmkVmGet
 * + VmkVmMonitor to this host's vmkernel, so only for a VM this host runs; through the API
 * the owner's hostd does the same), then its settings as this host sees them once applied.
 *
 * Locally these talk to clusterd's socket (kc_cluster_call); with --server to hostd's API
 * (GetHaConfig, SetHaConfig, SetVmHa). Both answers are turned into one view and printed the
 * same way. Failure modes as in cluster.c: unreachable, a reply that does not decode, a
 * refusal with clusterd's (or hostd's) text; usage errors before anything is sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"

#define AFTER_MAX     16
#define APPLY_WAIT_MS 3000

enum {
	O_CSOCK = 1, /* the same id as in cluster.c: kc_cluster_call reads it */
	O_ENABLE,
	O_DISABLE,
	O_ADM_FAIL,
	O_ADM_PCT,
	O_ADM_OFF,
	O_PRIORITY,
	O_AFTER,
	O_NO_AFTER,
	O_MONITORING,
	O_MON_TIMEOUT,
	O_MON_RESETS,
};

/* VM monitoring as the VM's owner reports it */
struct mon_view {
	bool enabled;
	uint32_t timeout_s, max_resets, resets_last_hour;
	char state[64];
};

/* ---- one view of the settings, from clusterd or from the API -------------------------------- */

struct vm_view {
	char name[128], uuid[40], host[128];
	int priority; /* RestartPriority */
	size_t n_after;
	char after[AFTER_MAX][40];	     /* uuids */
	bool has_mon;			     /* known only on the VM's owner */
	struct mon_view mon;
};

struct ha_view {
	bool enabled;
	uint32_t adm_failures, adm_percent;
	size_t n_vms;
	struct vm_view *vms;
	Keel__Vmk__VmkReply *local; /* vmkernel's VM list, for monitoring (or NULL) */
};

static const struct {
	const char *word;
	int value;
} prios[] = {
    {"disabled", KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED},
    {"lowest", KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOWEST},
    {"low", KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW},
    {"medium", KEEL__CLUSTER__RESTART_PRIORITY__RESTART_MEDIUM},
    {"high", KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH},
    {"highest", KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST},
};

static const char *prio_word(int p)
{
	for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++)
		if (prios[i].value == p)
			return prios[i].word;
	return "medium";
}

static int prio_value(const char *w)
{
	for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++)
		if (strcmp(prios[i].word, w) == 0)
			return prios[i].value;
	return 0;
}

static void view_close(struct ha_view *v)
{
	free(v->vms);
	if (v->local)
		kc_reply_free(v->local);
	memset(v, 0, sizeof(*v));
}

static const struct vm_view *view_vm(const struct ha_view *v, const char *text)
{
	if (strncmp(text, "vm-", 3) == 0 && strlen(text) == 39)
		text += 3;
	for (size_t i = 0; i < v->n_vms; i++)
		if (strcmp(v->vms[i].uuid, text) == 0)
			return &v->vms[i];
	for (size_t i = 0; i < v->n_vms; i++)
		if (strcmp(v->vms[i].name, text) == 0)
			return &v->vms[i];
	return NULL;
}

static int view_from_status(struct ha_view *v, const Keel__Cluster__ClusterStatus *s)
{
	memset(v, 0, sizeof(*v));
	v->enabled = s->ha_enabled;
	v->adm_failures = s->admission_failures;
	v->adm_percent = s->admission_percent;
	v->vms = calloc(s->n_vms ? s->n_vms : 1, sizeof(*v->vms));
	if (!v->vms)
		return -ENOMEM;
	v->n_vms = s->n_vms;
	for (size_t i = 0; i < s->n_vms; i++) {
		const Keel__Cluster__ClusterVmStatus *m = s->vms[i];
		struct vm_view *o = &v->vms[i];

		snprintf(o->name, sizeof(o->name), "%s", m->name);
		snprintf(o->uuid, sizeof(o->uuid), "%s", m->uuid);
		snprintf(o->host, sizeof(o->host), "%s",
			 m->owner_name && m->owner_name[0] ? m->owner_name : "-");
		o->priority = m->priority;
		for (size_t j = 0; j < m->n_restart_after && j < AFTER_MAX; j++)
			snprintf(o->after[o->n_after++], sizeof(o->after[0]), "%s",
				 m->restart_after[j]);
	}
	return 0;
}

static int view_from_api(struct ha_view *v, const Keel__Vim__HaConfig *c)
{
	memset(v, 0, sizeof(*v));
	v->enabled = c->enabled;
	v->adm_failures = c->admission_failures;
	v->adm_percent = c->admission_percent;
	v->vms = calloc(c->n_vms ? c->n_vms : 1, sizeof(*v->vms));
	if (!v->vms)
		return -ENOMEM;
	v->n_vms = c->n_vms;
	for (size_t i = 0; i < c->n_vms; i++) {
		const Keel__Vim__VmHaObject *m = c->vms[i];
		struct vm_view *o = &v->vms[i];

		snprintf(o->name, sizeof(o->name), "%s", m->name);
		snprintf(o->uuid, sizeof(o->uuid), "%s",
			 strncmp(m->vm, "vm-", 3) == 0 ? m->vm + 3 : m->vm);
		snprintf(o->host, sizeof(o->host), "%s", m->host[0] ? m->host : "-");
		o->priority = prio_value(m->priority);
		for (size_t j = 0; j < m->n_restart_after && j < AFTER_MAX; j++)
			snprintf(o->after[o->n_after++], sizeof(o->after[0]), "%s",
				 strncmp(m->restart_after[j], "vm-", 3) == 0
				     ? m->restart_after[j] + 3
				     : m->restart_after[j]);
		if (m->monitoring) {
			o->has_mon = true;
			o->mon.enabled = m->monitoring->enabled;
			o->mon.timeout_s = m->monitoring->heartbeat_timeout_s;
			o->mon.max_resets = m->monitoring->max_resets;
			o->mon.resets_last_hour = m->monitoring->resets_last_hour;
			snprintf(o->mon.state, sizeof(o->mon.state), "%s",
				 m->monitoring->state ? m->monitoring->state : "");
		}
	}
	return 0;
}

/* Monitoring of the VMs vmkernel of this host knows; quietly nothing when it cannot be
 * asked (another host's view is "-" anyway). */
static void view_add_monitoring(struct kc_ctx *ctx, struct ha_view *v)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	int code = 0;
	struct kb_errmsg e = {{0}};

	if (access(ctx->socket, F_OK) != 0)
		return;
	if (!ctx->tr && kc_transport_local_create(ctx->socket, 5000, &ctx->tr) != 0)
		return;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	req.vm_list = &list;
	if (ctx->tr->call(ctx->tr, &req, &rp, &code, &e) != 0 || !rp)
		return;
	if (rp->code) {
		kc_reply_free(rp);
		return;
	}
	v->local = rp;
	for (size_t i = 0; i < rp->n_vms; i++) {
		const Keel__Vmk__VmMonitorInfo *mi = rp->vms[i]->monitor;

		for (size_t k = 0; mi && k < v->n_vms; k++) {
			struct vm_view *o = &v->vms[k];

			if (strcmp(rp->vms[i]->uuid, o->uuid) != 0)
				continue;
			o->has_mon = true;
			o->mon.enabled = mi->enabled;
			o->mon.timeout_s = mi->timeout_s;
			o->mon.max_resets = mi->max_resets;
			o->mon.resets_last_hour = mi->resets_last_hour;
			snprintf(o->mon.state, sizeof(o->mon.state), "%s", mi->state ? mi->state : "");
		}
	}
}

/* ---- printing ------------------------------------------------------------------------------ */

static void admission_text(const struct ha_view *v, char *out, size_t size)
{
	if (v->adm_failures)
		snprintf(out, size, "tolerate %" PRIu32 " host failure%s", v->adm_failures,
			 v->adm_failures == 1 ? "" : "s");
	else if (v->adm_percent)
		snprintf(out, size, "keep %" PRIu32 "%% of CPU and memory free", v->adm_percent);
	else
		snprintf(out, size, "off");
}

static void after_text(const struct ha_view *v, const struct vm_view *m, char *out, size_t size)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < m->n_after && off < size; i++) {
		const struct vm_view *d = view_vm(v, m->after[i]);

		off += (size_t)snprintf(out + off, size - off, "%s%s", i ? "," : "",
					d ? d->name : m->after[i]);
	}
	if (!out[0])
		snprintf(out, size, "-");
}

static void monitor_text(const struct vm_view *m, char *out, size_t size)
{
	if (!m->has_mon)
		snprintf(out, size, "-");
	else if (!m->mon.enabled)
		snprintf(out, size, "off");
	else
		snprintf(out, size, "on (%" PRIu32 " s, %" PRIu32 "/h)", m->mon.timeout_s,
			 m->mon.max_resets);
}

static void vm_json(struct kc_json *j, const struct ha_view *v, const struct vm_view *m)
{
	kc_json_obj_begin(j, NULL);
	kc_json_str(j, "name", m->name);
	kc_json_str(j, "uuid", m->uuid);
	kc_json_str(j, "host", m->host);
	kc_json_str(j, "priority", prio_word(m->priority));
	kc_json_arr_begin(j, "restart_after");
	for (size_t i = 0; i < m->n_after; i++) {
		const struct vm_view *d = view_vm(v, m->after[i]);

		kc_json_str(j, NULL, d ? d->name : m->after[i]);
	}
	kc_json_arr_end(j);
	if (m->has_mon) {
		kc_json_obj_begin(j, "monitoring");
		kc_json_bool(j, "enabled", m->mon.enabled);
		kc_json_u64(j, "timeout_s", m->mon.timeout_s);
		kc_json_u64(j, "max_resets", m->mon.max_resets);
		kc_json_u64(j, "resets_last_hour", m->mon.resets_last_hour);
		kc_json_str(j, "state", m->mon.state);
		kc_json_obj_end(j);
	} else {
		kc_json_null(j, "monitoring");
	}
	kc_json_obj_end(j);
}

/* The whole view, or only the VM only (not NULL). */
static int view_print(struct kc_ctx *ctx, const struct ha_view *v, const struct vm_view *only)
{
	static const char *const heads[] = {"NAME", "HOST", "PRIORITY", "RESTART AFTER",
					    "MONITORING"};
	char adm[96], after[1200], mon[64];
	struct kc_table t;
	int rc;

	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		if (only) {
			kc_json_arr_begin(&j, "vms");
			vm_json(&j, v, only);
			kc_json_arr_end(&j);
		} else {
			kc_json_bool(&j, "ha_enabled", v->enabled);
			kc_json_u64(&j, "admission_failures", v->adm_failures);
			kc_json_u64(&j, "admission_percent", v->adm_percent);
			kc_json_arr_begin(&j, "vms");
			for (size_t i = 0; i < v->n_vms; i++)
				vm_json(&j, v, &v->vms[i]);
			kc_json_arr_end(&j);
		}
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return KC_EXIT_OK;
	}
	if (only) {
		after_text(v, only, after, sizeof(after));
		monitor_text(only, mon, sizeof(mon));
		printf("VM %s: restart priority %s, restart after %s, monitoring %s\n",
		       kc_clean(only->name, adm, sizeof(adm)), prio_word(only->priority),
		       strcmp(after, "-") ? after : "none", mon);
		return KC_EXIT_OK;
	}
	admission_text(v, adm, sizeof(adm));
	kc_kv(stdout, "HA", "%s", v->enabled ? "on" : "off");
	kc_kv(stdout, "Admission", "%s", adm);
	if (v->n_vms == 0)
		return KC_EXIT_OK;
	printf("\n");
	kc_table_init(&t, 5, heads, "lllll");
	for (size_t i = 0; i < v->n_vms; i++) {
		const struct vm_view *m = &v->vms[i];
		const char *row[5];

		after_text(v, m, after, sizeof(after));
		monitor_text(m, mon, sizeof(mon));
		row[0] = m->name;
		row[1] = m->host;
		row[2] = prio_word(m->priority);
		row[3] = after;
		row[4] = mon;
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	return rc;
}

/* ---- getting the view ------------------------------------------------------------------------ */

static int local_view(struct kc_ctx *ctx, const struct kc_call *call, struct ha_view *v)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest st = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	int rc;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &st;
	rc = kc_cluster_call(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (!rp->status || !rp->status->name || !rp->status->name[0]) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE, "this host is not in a cluster");
	}
	rc = view_from_status(v, rp->status);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	if (rc)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "out of memory");
	view_add_monitoring(ctx, v);
	return KC_EXIT_OK;
}

static int api_view_from(struct kc_ctx *ctx, ProtobufCMessage *m, struct ha_view *v)
{
	int rc = view_from_api(v, (const Keel__Vim__HaConfig *)m);

	protobuf_c_message_free_unpacked(m, NULL);
	return rc ? kc_fail(ctx, KC_EXIT_FAILED, rc, "out of memory") : KC_EXIT_OK;
}

static int api_view(struct kc_ctx *ctx, const struct kc_call *call, struct ha_view *v)
{
	Keel__Vim__HaConfigRequest rq = KEEL__VIM__HA_CONFIG_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc =
	    kc_api_call(ctx, call, "GetHaConfig", &rq.base, &keel__vim__ha_config__descriptor, &m);

	return rc ? rc : api_view_from(ctx, m, v);
}

static int get_view(struct kc_ctx *ctx, const struct kc_call *call, struct ha_view *v)
{
	if (kc_api_wanted(ctx)) {
		if (kc_has(call, O_CSOCK))
			return kc_usage(ctx, call,
					"--cluster-socket does not apply through hostd's API "
					"(--server)");
		return api_view(ctx, call, v);
	}
	return local_view(ctx, call, v);
}

/* ---- status ---------------------------------------------------------------------------------- */

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	struct ha_view v;
	int rc = get_view(ctx, call, &v);

	if (rc)
		return rc;
	rc = view_print(ctx, &v, NULL);
	view_close(&v);
	return rc;
}

/* ---- set -------------------------------------------------------------------------------------- */

static int set_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterConfigSet cs = KEEL__CLUSTER__CLUSTER_CONFIG_SET__INIT;
	struct ha_view v;
	int rc;

	if (kc_has(call, O_ENABLE) && kc_has(call, O_DISABLE))
		return kc_usage(ctx, call, "--enable or --disable, not both");
	if ((kc_has(call, O_ADM_FAIL) + kc_has(call, O_ADM_PCT) + kc_has(call, O_ADM_OFF)) > 1)
		return kc_usage(
		    ctx, call, "one of --admission-failures, --admission-percent, --admission-off");
	if (kc_has(call, O_ENABLE))
		cs.ha = KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON;
	if (kc_has(call, O_DISABLE))
		cs.ha = KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_OFF;
	if (kc_has(call, O_ADM_FAIL)) {
		if (kc_parse_u32(kc_opt(call, O_ADM_FAIL), 1, 31, &cs.admission_failures))
			return kc_usage(ctx, call, "--admission-failures: 1..31 hosts");
		cs.admission_set = true;
	} else if (kc_has(call, O_ADM_PCT)) {
		if (kc_parse_u32(kc_opt(call, O_ADM_PCT), 1, 100, &cs.admission_percent))
			return kc_usage(ctx, call, "--admission-percent: 1..100");
		cs.admission_set = true;
	} else if (kc_has(call, O_ADM_OFF)) {
		cs.admission_set = true;
	}
	if (!cs.ha && !cs.admission_set)
		return kc_usage(
		    ctx, call, "nothing to change: --enable, --disable or an --admission-* option");
	if (kc_api_wanted(ctx)) {
		Keel__Vim__HaConfigChange ch = KEEL__VIM__HA_CONFIG_CHANGE__INIT;
		ProtobufCMessage *m;

		if (kc_has(call, O_CSOCK))
			return kc_usage(ctx, call,
					"--cluster-socket does not apply through hostd's API "
					"(--server)");
		ch.ha = cs.ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON	? "on"
			: cs.ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_OFF ? "off"
											: "";
		ch.admission_set = cs.admission_set;
		ch.admission_failures = cs.admission_failures;
		ch.admission_percent = cs.admission_percent;
		rc = kc_api_call(ctx, call, "SetHaConfig", &ch.base,
				 &keel__vim__ha_config__descriptor, &m);
		if (rc == 0)
			rc = api_view_from(ctx, m, &v);
	} else {
		Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
		Keel__Cluster__ClusterReply *rp;

		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CONFIG_SET;
		rq.config_set = &cs;
		rc = kc_cluster_call(ctx, call, &rq, &rp);
		if (rc)
			return rc;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		/* Committed by the leader; this host applies it a moment later. */
		for (uint64_t until = kb_now_ns() + APPLY_WAIT_MS * 1000000ull;;) {
			rc = local_view(ctx, call, &v);
			if (rc)
				return rc;
			if ((!cs.ha ||
			     v.enabled ==
				 (cs.ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON)) &&
			    (!cs.admission_set || (v.adm_failures == cs.admission_failures &&
						   v.adm_percent == cs.admission_percent)))
				break;
			if (kb_now_ns() > until)
				break;
			view_close(&v);
			kb_sleep_ns(50 * 1000000ull);
		}
	}
	if (rc)
		return rc;
	rc = view_print(ctx, &v, NULL);
	view_close(&v);
	return rc;
}

/* ---- vm -------------------------------------------------------------------------------------- */

/* Whether view v shows the VM with the settings asked for. */
static bool vm_applied(const struct ha_view *v, const char *uuid, int prio, bool set_after,
		       const char *const *after, size_t n_after)
{
	const struct vm_view *m = view_vm(v, uuid);

	if (!m)
		return true;
	if (prio && m->priority != prio)
		return false;
	if (!set_after)
		return true;
	if (m->n_after != n_after)
		return false;
	for (size_t i = 0; i < n_after; i++) {
		const struct vm_view *d = view_vm(v, after[i]);

		if (!d || strcmp(d->uuid, m->after[i]) != 0)
			return false;
	}
	return true;
}

/* Changes VM monitoring through this host's vmkernel: what is not given stays. */
static int local_monitoring(struct kc_ctx *ctx, const char *name, int on, uint32_t timeout_s,
			    uint32_t max_resets)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;
	Keel__Vmk__VmkVmMonitor mon = KEEL__VMK__VMK_VM_MONITOR__INIT;
	Keel__Vmk__VmkReply *rp;
	const Keel__Vmk__VmMonitorInfo *cur;
	int rc;

	get.vm = (char *)name;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	req.vm_get = &get;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	cur = rp->n_vms ? rp->vms[0]->monitor : NULL;
	mon.vm = (char *)name;
	mon.enabled = on ? on == 1 : cur && cur->enabled;
	mon.timeout_s = timeout_s ? timeout_s : cur ? cur->timeout_s : 0;
	mon.max_resets = max_resets ? max_resets : cur ? cur->max_resets : 0;
	kc_reply_free(rp);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MONITOR;
	req.vm_monitor = &mon;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	kc_reply_free(rp);
	return 0;
}

static int vm_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *mw = kc_opt(call, O_MONITORING);
	uint32_t mon_timeout = 0, mon_resets = 0;
	int mon_on = 0; /* 0: unchanged, 1: on, 2: off */
	bool mon_set;
	const char *name = call->pos[0], *after[AFTER_MAX];
	const char *pw = kc_opt(call, O_PRIORITY);
	bool set_after = kc_has(call, O_AFTER) || kc_has(call, O_NO_AFTER);
	const struct vm_view *m;
	char uuid[40];
	struct ha_view v;
	size_t n_after = 0;
	int prio = 0, rc;

	if (pw && !(prio = prio_value(pw)))
		return kc_usage(ctx, call,
				"--priority: disabled, lowest, low, medium, high or highest");
	if (kc_has(call, O_AFTER) && kc_has(call, O_NO_AFTER))
		return kc_usage(ctx, call, "--restart-after or --no-restart-after, not both");
	for (int i = 0; i < call->nopts; i++) {
		if (call->opts[i].id != O_AFTER)
			continue;
		if (n_after == AFTER_MAX)
			return kc_usage(ctx, call, "at most %d --restart-after VMs", AFTER_MAX);
		after[n_after++] = call->opts[i].val;
	}
	if (mw && strcmp(mw, "on") == 0)
		mon_on = 1;
	else if (mw && strcmp(mw, "off") == 0)
		mon_on = 2;
	else if (mw)
		return kc_usage(ctx, call, "--monitoring: on or off");
	if (kc_has(call, O_MON_TIMEOUT) &&
	    kc_parse_u32(kc_opt(call, O_MON_TIMEOUT), 1, 86400, &mon_timeout))
		return kc_usage(ctx, call, "--heartbeat-timeout: seconds, 1..86400");
	if (kc_has(call, O_MON_RESETS) &&
	    kc_parse_u32(kc_opt(call, O_MON_RESETS), 1, 100, &mon_resets))
		return kc_usage(ctx, call, "--max-resets: 1..100");
	mon_set = mon_on || mon_timeout || mon_resets;
	if (kc_api_wanted(ctx) && (prio || set_after || mon_set)) {
		Keel__Vim__VmHaChange ch = KEEL__VIM__VM_HA_CHANGE__INIT;
		ProtobufCMessage *reply;

		if (kc_has(call, O_CSOCK))
			return kc_usage(ctx, call,
					"--cluster-socket does not apply through hostd's API "
					"(--server)");
		ch.vm = (char *)name;
		ch.priority = (char *)(pw ? pw : "");
		ch.set_restart_after = set_after;
		ch.n_restart_after = n_after;
		ch.restart_after = (char **)after;
		ch.monitoring = (char *)(mon_on == 1 ? "on" : mon_on == 2 ? "off" : "");
		ch.heartbeat_timeout_s = mon_timeout;
		ch.max_resets = mon_resets;
		rc = kc_api_call(ctx, call, "SetVmHa", &ch.base,
				 &keel__vim__vm_ha_object__descriptor, &reply);
		if (rc)
			return rc;
		protobuf_c_message_free_unpacked(reply, NULL);
	} else if (prio || set_after) {
		Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
		Keel__Cluster__ClusterVmHa vh = KEEL__CLUSTER__CLUSTER_VM_HA__INIT;
		Keel__Cluster__ClusterReply *rp;

		vh.vm = (char *)name;
		vh.set_priority = prio != 0;
		vh.priority = prio;
		vh.set_after = set_after;
		vh.n_restart_after = n_after;
		vh.restart_after = (char **)after;
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM_HA;
		rq.vm_ha = &vh;
		rc = kc_cluster_call(ctx, call, &rq, &rp);
		if (rc)
			return rc;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	}
	if (!kc_api_wanted(ctx) && mon_set) {
		/* the settings live in the VM's .vmx on its owner: only that host can change them */
		rc = get_view(ctx, call, &v);
		if (rc)
			return rc;
		m = view_vm(&v, name);
		if (!m) {
			view_close(&v);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "no such VM in the cluster: %s", name);
		}
		if (!m->has_mon) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				     "VM %s runs on %s, not on this host: its monitoring lives in "
				     "its .vmx there; run this on that host or through its API",
				     name, m->host);
			view_close(&v);
			return rc;
		}
		snprintf(uuid, sizeof(uuid), "%s", m->uuid);
		view_close(&v);
		rc = local_monitoring(ctx, uuid, mon_on, mon_timeout, mon_resets);
		if (rc)
			return rc;
	}
	/* The settings as this host sees them, once it applied the change. */
	for (uint64_t until = kb_now_ns() + APPLY_WAIT_MS * 1000000ull;;) {
		rc = get_view(ctx, call, &v);
		if (rc)
			return rc;
		m = view_vm(&v, name);
		if (!m) {
			view_close(&v);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "no such VM in the cluster: %s", name);
		}
		snprintf(uuid, sizeof(uuid), "%s", m->uuid);
		if (!(prio || set_after) || kc_api_wanted(ctx) ||
		    vm_applied(&v, uuid, prio, set_after, after, n_after) || kb_now_ns() > until)
			break;
		view_close(&v);
		kb_sleep_ns(50 * 1000000ull);
	}
	rc = view_print(ctx, &v, m);
	view_close(&v);
	return rc;
}

/* ---- the commands ---------------------------------------------------------------------------- */

static const struct kc_opt status_opts[] = {
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt set_opts[] = {
    {"enable", NULL, "restart the VMs of failed hosts on other hosts", O_ENABLE, false},
    {"disable", NULL, "no HA restarts", O_DISABLE, false},
    {"admission-failures", "N", "admission control: keep room for N host failures (1..31)",
     O_ADM_FAIL, false},
    {"admission-percent", "P", "admission control: keep P% of CPU and memory free (1..100)",
     O_ADM_PCT, false},
    {"admission-off", NULL, "no admission control", O_ADM_OFF, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt vm_opts[] = {
    {"priority", "P", "restart priority: disabled, lowest, low, medium, high or highest",
     O_PRIORITY, false},
    {"restart-after", "VM", "restart after this VM (name or uuid; repeat for more, at most 16)",
     O_AFTER, true},
    {"no-restart-after", NULL, "restart after no other VM", O_NO_AFTER, false},
    {"monitoring", "on|off", "VM monitoring: reset the VM when its guest heartbeat stops",
     O_MONITORING, false},
    {"heartbeat-timeout", "SECONDS", "VM monitoring: heartbeat silence before a reset (1..86400)",
     O_MON_TIMEOUT, false},
    {"max-resets", "N", "VM monitoring: resets allowed per hour (1..100)", O_MON_RESETS, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd ha_status_cmd = {
    .name = "status",
    .summary = "Show HA on/off, admission control and every VM's HA settings.",
    .detail = "MONITORING is VM monitoring (keel vm monitor) of the VMs registered on this\n"
	      "host (through the API: on the host the API belongs to); \"-\" for the others.\n",
    .opts = status_opts,
    .run = status_run,
    .api = true,
};

static const struct kc_cmd ha_set_cmd = {
    .name = "set",
    .summary = "Turn HA on or off and set admission control.",
    .detail = "The same settings as keel cluster config --ha/--admission-*. Admission control\n"
	      "refuses a power-on that would leave too little room to restart the protected\n"
	      "VMs after N host failures, or to keep P% of CPU and memory free.\n",
    .opts = set_opts,
    .run = set_run,
    .api = true,
};

static const struct kc_cmd ha_vm_cmd = {
    .name = "vm",
    .args = "VM",
    .summary = "Show or set a VM's restart priority, restart order and VM monitoring.",
    .detail = "VM: its name (unique in the cluster) or uuid. A VM with priority disabled is\n"
	      "never restarted by HA. After a host failure, higher priorities are placed first,\n"
	      "and a VM waits until each of its restart-after VMs runs. --restart-after\n"
	      "replaces the whole list; --no-restart-after empties it. VM monitoring resets a\n"
	      "VM whose guest heartbeat stops for --heartbeat-timeout seconds, at most\n"
	      "--max-resets times an hour; it is kept in the VM's .vmx, so it is changed on the\n"
	      "host that runs the VM (or through that host's API). Without options: show.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = vm_opts,
    .run = vm_run,
    .api = true,
};

static const struct kc_cmd *const ha_subs[] = {&ha_status_cmd, &ha_set_cmd, &ha_vm_cmd, NULL};

const struct kc_cmd kc_cluster_ha_cmd = {
    .name = "ha",
    .summary = "HA settings: on/off, admission control, per-VM priority and restart order.",
    .detail = "docs/ha-settings.md. Through hostd's API (--server URL) as well.\n",
    .subs = ha_subs,
};
