/*
 * HA settings through the Vim API (docs/ha-settings.md): GetHaConfig, SetHaConfig, SetVmHa.
 *
 * Happy path: on the loop, authorize; on a worker, one or more framed ClusterRequests to
 * DIR/clusterd.sock (hd_backend_call); on the loop, the reply. GetHaConfig reads the status
 * (System.Read on the root). SetHaConfig (Host.Inventory.ManageCluster on the root) sends a
 * ClusterConfigSet, the same request as `keel cluster config`, then reads the status until
 * this host has applied the change (at most CHANGE_WAIT_MS) and answers with it. SetVmHa
 * first reads the status to find the VM (by "vm-<uuid>", uuid or name) and its owner, then
 * checks VirtualMachine.Config.Settings on {"root", "host-<owner>", "vm-<uuid>"} on the
 * loop, then sends ClusterVmHa (clusterd resolves the restart-after names and the leader
 * commits VmSetHa) and answers with the VM's settings as this host then sees them. VM
 * monitoring lives in the VM's .vmx on its owner (kernel/vm/monitor.c): SetVmHa changes it
 * with VmkVmGet + VmkVmMonitor to DIR/vmkernel.sock when this host owns the VM, and refuses
 * with FAILED_PRECONDITION naming the owner otherwise; answers carry the monitoring of the
 * VMs this host runs (one VmkVmList).
 *
 * Failure modes: no clusterd or no answer: UNAVAILABLE; clusterd refuses (an unknown VM,
 * the VM after itself, more than 16 dependencies, no cluster): FAILED_PRECONDITION with its
 * text (NOT_FOUND for an unknown VM); a bad priority word or admission values:
 * INVALID_ARGUMENT. A lookup that fails is reported only after the caller proved a session,
 * and an unknown VM only to a caller with System.Read on the root.
 *
 * Threads: handlers and answers on the loop; clusterd is asked on libuv's workers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "vmk.pb-c.h"
#include "hostagent/vim.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vim.pb-c.h"

#define REPLY_MAX      (64u << 20)
#define ASK_TIMEOUT_S  10
#define CHANGE_WAIT_MS 3000 /* until this host applied the committed change */
#define AFTER_MAX      16
#define NAME_MAX_      128

enum { K_GET, K_SET_CFG, K_SET_VM };

struct hareq {
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call; /* NULL once the client went away */
	int kind, stage;
	/* SetHaConfig */
	Keel__Cluster__ClusterConfigSet cs;
	/* SetVmHa: the request (copied) and the VM found */
	char vm[NAME_MAX_ + 1];
	int priority; /* 0: unchanged */
	bool set_after;
	size_t n_after;
	char after[AFTER_MAX][NAME_MAX_ + 1];
	int monitoring; /* 0: unchanged, 1: on, 2: off */
	uint32_t mon_timeout_s, mon_max_resets; /* 0: unchanged */
	char uuid[40];
	uint64_t owner;
	char owner_name[NAME_MAX_ + 1];
	Keel__Vmk__VmkReply *vl; /* this host's VMs (their monitoring), or NULL */
	/* the outcome */
	Keel__Cluster__ClusterReply *st; /* the last status read */
	enum hd_status status;		 /* HD_OK, or the error's */
	char error[KB_ERRMSG_SIZE];
};

static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

/* RestartPriority <-> words. */
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

/* ---- the worker ---------------------------------------------------------------------------- */

static void set_error(struct hareq *r, enum hd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct hareq *r, enum hd_status st, const char *fmt, ...)
{
	va_list ap;

	r->status = st;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* One request to clusterd: its reply (caller frees), or NULL with r's error set. */
static Keel__Cluster__ClusterReply *ask(struct hareq *r, const Keel__Cluster__ClusterRequest *rq)
{
	Keel__Cluster__ClusterReply *rp;
	size_t len = 0;
	uint8_t *b = hd_backend_call(r->v->cd_sock, &rq->base, ASK_TIMEOUT_S, REPLY_MAX, &len);

	if (!b) {
		set_error(r, HD_UNAVAILABLE, "clusterd at %s does not answer", r->v->cd_sock);
		return NULL;
	}
	rp = keel__cluster__cluster_reply__unpack(NULL, len, b);
	kb_free(b);
	if (!rp) {
		set_error(r, HD_UNAVAILABLE, "clusterd at %s: a reply that does not decode",
			  r->v->cd_sock);
		return NULL;
	}
	if (rp->code) {
		set_error(r, rp->code == KB_ENOTFOUND ? HD_NOT_FOUND : HD_FAILED_PRECONDITION,
			  "clusterd: %s",
			  rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return NULL;
	}
	return rp;
}

/* Reads the status into r->st (replacing the last one). false with r's error set. */
static bool read_status(struct hareq *r)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rp = ask(r, &rq);
	if (!rp)
		return false;
	if (!rp->status || !rp->status->name || !rp->status->name[0]) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		set_error(r, HD_FAILED_PRECONDITION, "this host is not in a cluster");
		return false;
	}
	if (r->st)
		keel__cluster__cluster_reply__free_unpacked(r->st, NULL);
	r->st = rp;
	return true;
}

/* The VM named by text ("vm-<uuid>", uuid or name) in status st, or NULL. */
static const Keel__Cluster__ClusterVmStatus *status_vm(const Keel__Cluster__ClusterStatus *st,
						       const char *text)
{
	const Keel__Cluster__ClusterVmStatus *byname = NULL;

	if (strncmp(text, "vm-", 3) == 0 && strlen(text) == 3 + 36)
		text += 3;
	for (size_t i = 0; i < st->n_vms; i++) {
		if (strcmp(st->vms[i]->uuid, text) == 0)
			return st->vms[i];
		if (!byname && strcmp(st->vms[i]->name, text) == 0)
			byname = st->vms[i];
	}
	return byname;
}

static bool cfg_applied(const struct hareq *r)
{
	const Keel__Cluster__ClusterStatus *s = r->st->status;

	if (r->cs.ha &&
	    s->ha_enabled != (r->cs.ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON))
		return false;
	return !r->cs.admission_set || (s->admission_failures == r->cs.admission_failures &&
					s->admission_percent == r->cs.admission_percent);
}

/* Whether this host's status shows the VM with the settings asked for. */
static bool vm_applied(const struct hareq *r)
{
	const Keel__Cluster__ClusterVmStatus *vm = status_vm(r->st->status, r->uuid);

	if (!vm)
		return true; /* gone meanwhile: nothing to wait for */
	if (r->priority && (int)vm->priority != r->priority)
		return false;
	if (!r->set_after)
		return true;
	if (vm->n_restart_after != r->n_after)
		return false;
	for (size_t i = 0; i < r->n_after; i++) {
		const Keel__Cluster__ClusterVmStatus *d = status_vm(r->st->status, r->after[i]);

		if (!d || strcmp(vm->restart_after[i], d->uuid) != 0)
			return false;
	}
	return true;
}

/* One request to vmkernel: its reply (caller frees), or NULL with r's error set. */
static Keel__Vmk__VmkReply *ask_vmk(struct hareq *r, const Keel__Vmk__VmkRequest *rq)
{
	Keel__Vmk__VmkReply *rp;
	size_t len = 0;
	uint8_t *b = hd_backend_call(r->v->vmk_sock, &rq->base, ASK_TIMEOUT_S, REPLY_MAX, &len);

	if (!b) {
		set_error(r, HD_UNAVAILABLE, "vmkernel at %s does not answer", r->v->vmk_sock);
		return NULL;
	}
	rp = keel__vmk__vmk_reply__unpack(NULL, len, b);
	kb_free(b);
	if (!rp) {
		set_error(r, HD_UNAVAILABLE, "vmkernel at %s: a reply that does not decode",
			  r->v->vmk_sock);
		return NULL;
	}
	if (rp->code) {
		set_error(r, rp->code == KB_ENOTFOUND ? HD_NOT_FOUND : HD_FAILED_PRECONDITION,
			  "vmkernel: %s",
			  rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		return NULL;
	}
	return rp;
}

/* Reads this host's VMs into r->vl for their monitoring; without vmkernel the answer simply
 * has none. */
static void read_local_vms(struct hareq *r)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList l = KEEL__VMK__VMK_VM_LIST__INIT;
	enum hd_status st = r->status;
	char error[sizeof(r->error)];

	memcpy(error, r->error, sizeof(error));
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &l;
	if (r->vl)
		keel__vmk__vmk_reply__free_unpacked(r->vl, NULL);
	r->vl = ask_vmk(r, &rq);
	r->status = st;
	memcpy(r->error, error, sizeof(error));
}

/* Changes the VM's monitoring on this host: what is not asked for stays. */
static bool set_monitoring(struct hareq *r)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;
	Keel__Vmk__VmkVmMonitor mon = KEEL__VMK__VMK_VM_MONITOR__INIT;
	Keel__Vmk__VmkReply *rp;
	const Keel__Vmk__VmMonitorInfo *cur;

	if (r->owner != r->st->status->node_id) {
		set_error(r, HD_FAILED_PRECONDITION,
			  "VM %s runs on %s (host-%" PRIu64 ") and its monitoring lives in its .vmx "
			  "there: change it through that host's API",
			  r->vm, r->owner_name[0] ? r->owner_name : "another host", r->owner);
		return false;
	}
	get.vm = r->uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	rq.vm_get = &get;
	rp = ask_vmk(r, &rq);
	if (!rp)
		return false;
	cur = rp->n_vms ? rp->vms[0]->monitor : NULL;
	mon.vm = r->uuid;
	mon.enabled = r->monitoring ? r->monitoring == 1 : cur && cur->enabled;
	mon.timeout_s = r->mon_timeout_s ? r->mon_timeout_s : cur ? cur->timeout_s : 0;
	mon.max_resets = r->mon_max_resets ? r->mon_max_resets : cur ? cur->max_resets : 0;
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MONITOR;
	rq.vm_monitor = &mon;
	rp = ask_vmk(r, &rq);
	if (!rp)
		return false;
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return true;
}

/* Reads the status until done(r) or CHANGE_WAIT_MS passed. */
static void wait_applied(struct hareq *r, bool (*done)(const struct hareq *r))
{
	uint64_t until = kb_now_ns() + CHANGE_WAIT_MS * 1000000ull;

	while (read_status(r) && !done(r) && kb_now_ns() < until)
		kb_sleep_ns(50 * 1000000ull);
}

static void ha_work(uv_work_t *w)
{
	struct hareq *r = w->data;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmHa vh = KEEL__CLUSTER__CLUSTER_VM_HA__INIT;
	Keel__Cluster__ClusterReply *rp;
	const Keel__Cluster__ClusterVmStatus *vm;
	char *after[AFTER_MAX];

	switch (r->kind) {
	case K_GET:
		if (read_status(r))
			read_local_vms(r);
		return;
	case K_SET_CFG:
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CONFIG_SET;
		rq.config_set = &r->cs;
		rp = ask(r, &rq);
		if (!rp)
			return;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		wait_applied(r, cfg_applied);
		return;
	default:
		break;
	}
	if (r->stage == 0) {
		if (!read_status(r))
			return;
		vm = status_vm(r->st->status, r->vm);
		if (!vm) {
			set_error(r, HD_NOT_FOUND, "no such VM in the cluster: %s", r->vm);
			return;
		}
		snprintf(r->uuid, sizeof(r->uuid), "%s", vm->uuid);
		r->owner = vm->owner;
		snprintf(r->owner_name, sizeof(r->owner_name), "%s",
			 vm->owner_name ? vm->owner_name : "");
		return;
	}
	if ((r->monitoring || r->mon_timeout_s || r->mon_max_resets) && !set_monitoring(r))
		return;
	if (!r->priority && !r->set_after) {
		read_local_vms(r);
		return;
	}
	for (size_t i = 0; i < r->n_after; i++) {
		/* clusterd takes names and uuids; "vm-<uuid>" is the API's id */
		const char *a = r->after[i];

		after[i] = (char *)(strncmp(a, "vm-", 3) == 0 && strlen(a) == 39 ? a + 3 : a);
	}
	vh.vm = r->uuid;
	vh.set_priority = r->priority != 0;
	vh.priority = r->priority;
	vh.set_after = r->set_after;
	vh.n_restart_after = r->set_after ? r->n_after : 0;
	vh.restart_after = after;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM_HA;
	rq.vm_ha = &vh;
	rp = ask(r, &rq);
	if (!rp)
		return;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	wait_applied(r, vm_applied);
	read_local_vms(r);
}

/* ---- answers on the loop ------------------------------------------------------------------- */

static void hareq_free(struct hareq *r)
{
	if (r->st)
		keel__cluster__cluster_reply__free_unpacked(r->st, NULL);
	if (r->vl)
		keel__vmk__vmk_reply__free_unpacked(r->vl, NULL);
	kb_free(r);
}

static void cancelled(struct hd_call *call, void *arg)
{
	struct hareq *r = arg;

	(void)call;
	r->call = NULL;
}

/* Fills o with vm's settings; ids: room for "vm-<uuid>" of it and its restart-after VMs,
 * host: for "host-<id>". */
static void vm_object(const struct hareq *r, const Keel__Cluster__ClusterVmStatus *vm,
		      Keel__Vim__VmHaObject *o, Keel__Vim__VmMonitoring *mon, char (*ids)[48],
		      char **idp, char *host, size_t host_size)
{
	keel__vim__vm_ha_object__init(o);
	keel__vim__vm_monitoring__init(mon);
	for (size_t i = 0; r->vl && i < r->vl->n_vms; i++) {
		const Keel__Vmk__VmInfo *l = r->vl->vms[i];

		if (!l->monitor || strcmp(l->uuid, vm->uuid) != 0 || vm->owner != r->st->status->node_id)
			continue;
		mon->enabled = l->monitor->enabled;
		mon->heartbeat_timeout_s = l->monitor->timeout_s;
		mon->max_resets = l->monitor->max_resets;
		mon->resets_last_hour = l->monitor->resets_last_hour;
		mon->state = l->monitor->state;
		o->monitoring = mon;
		break;
	}
	snprintf(ids[0], sizeof(ids[0]), "vm-%.40s", vm->uuid);
	snprintf(host, host_size, "host-%" PRIu64, vm->owner);
	o->vm = ids[0];
	o->name = vm->name;
	o->host = host;
	o->priority = (char *)prio_word(vm->priority);
	for (size_t i = 0; i < vm->n_restart_after && i < AFTER_MAX; i++) {
		snprintf(ids[1 + i], sizeof(ids[0]), "vm-%.40s", vm->restart_after[i]);
		idp[i] = ids[1 + i];
	}
	o->n_restart_after = vm->n_restart_after < AFTER_MAX ? vm->n_restart_after : AFTER_MAX;
	o->restart_after = idp;
}

struct vmslot {
	Keel__Vim__VmHaObject o;
	Keel__Vim__VmMonitoring mon;
	char ids[1 + AFTER_MAX][48];
	char *idp[AFTER_MAX];
	char host[32];
};

static void answer_config(struct hareq *r)
{
	const Keel__Cluster__ClusterStatus *s = r->st->status;
	Keel__Vim__HaConfig hc = KEEL__VIM__HA_CONFIG__INIT;
	size_t n = s->n_vms;
	struct vmslot *slots = kb_calloc(n ? n : 1, sizeof(*slots));
	Keel__Vim__VmHaObject **vp = kb_calloc(n ? n : 1, sizeof(*vp));

	if (!slots || !vp) {
		hd_call_error(r->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		vm_object(r, s->vms[i], &slots[i].o, &slots[i].mon, slots[i].ids, slots[i].idp,
			  slots[i].host, sizeof(slots[i].host));
		vp[i] = &slots[i].o;
	}
	hc.enabled = s->ha_enabled;
	hc.admission_failures = s->admission_failures;
	hc.admission_percent = s->admission_percent;
	hc.n_vms = n;
	hc.vms = vp;
	hd_call_reply(r->call, &hc.base);
out:
	kb_free(slots);
	kb_free(vp);
}

static void ha_done(uv_work_t *w, int status);

/* SetVmHa after the lookup: the privilege on the VM, then the change on a worker. */
static void vm_found(struct hareq *r)
{
	char host[32], vm[48];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, vm};

	snprintf(host, sizeof(host), "host-%" PRIu64, r->owner);
	snprintf(vm, sizeof(vm), "vm-%.40s", r->uuid);
	hd_call_on_cancel(r->call, NULL, NULL);
	if (!hd_vim_authorize(r->call, path, 3, "VirtualMachine.Config.Settings")) {
		hareq_free(r);
		return;
	}
	r->stage = 1;
	hd_call_on_cancel(r->call, cancelled, r);
	if (uv_queue_work(r->v->loop, &r->work, ha_work, ha_done) != 0) {
		hd_call_on_cancel(r->call, NULL, NULL);
		hd_call_error(r->call, HD_UNAVAILABLE, "busy");
		hareq_free(r);
	}
}

static void ha_done(uv_work_t *w, int status)
{
	struct hareq *r = w->data;
	struct vmslot slot;
	const Keel__Cluster__ClusterVmStatus *vm;

	if (!r->call)
		goto out;
	if (status) {
		hd_call_on_cancel(r->call, NULL, NULL);
		hd_call_error(r->call, HD_UNAVAILABLE, "clusterd could not be asked");
		goto out;
	}
	if (r->status != HD_OK) {
		hd_call_on_cancel(r->call, NULL, NULL);
		/* An unknown VM is told only to those who may read the inventory. */
		if (r->status == HD_NOT_FOUND && r->kind == K_SET_VM && r->stage == 0 &&
		    !hd_vim_authorize(r->call, root_path, 1, "System.Read"))
			goto out;
		hd_call_error(r->call, r->status, "%s", r->error);
		goto out;
	}
	if (r->kind == K_SET_VM && r->stage == 0) {
		vm_found(r);
		return;
	}
	hd_call_on_cancel(r->call, NULL, NULL);
	if (r->kind != K_SET_VM) {
		answer_config(r);
		goto out;
	}
	vm = status_vm(r->st->status, r->uuid);
	if (!vm) {
		hd_call_error(r->call, HD_NOT_FOUND, "VM %s is gone", r->uuid);
		goto out;
	}
	vm_object(r, vm, &slot.o, &slot.mon, slot.ids, slot.idp, slot.host, sizeof(slot.host));
	hd_call_reply(r->call, &slot.o.base);
out:
	hareq_free(r);
}

/* Authorizes privilege on the root (NULL: a session only), then runs r on a worker. */
static void start(struct hd_call *call, struct hareq *r, const char *privilege, const char *invalid)
{
	if (!hd_vim_authorize(call, root_path, 1, privilege)) {
		hareq_free(r);
		return;
	}
	if (invalid) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "%s", invalid);
		hareq_free(r);
		return;
	}
	r->call = call;
	r->v = hd_call_server_data(call);
	r->work.data = r;
	hd_call_on_cancel(call, cancelled, r);
	if (uv_queue_work(r->v->loop, &r->work, ha_work, ha_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
		hareq_free(r);
	}
}

static struct hareq *hareq_new(struct hd_call *call, int kind)
{
	struct hareq *r = kb_calloc(1, sizeof(*r));

	if (!r) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	r->kind = kind;
	keel__cluster__cluster_config_set__init(&r->cs);
	return r;
}

void hd_vim_get_ha_config(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hareq *r = hareq_new(call, K_GET);

	(void)req;
	if (r)
		start(call, r, "System.Read", NULL);
}

void hd_vim_set_ha_config(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__HaConfigChange *c = (const Keel__Vim__HaConfigChange *)req;
	struct hareq *r = hareq_new(call, K_SET_CFG);
	const char *ha = c->ha ? c->ha : "", *invalid = NULL;

	if (!r)
		return;
	if (strcmp(ha, "on") == 0)
		r->cs.ha = KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON;
	else if (strcmp(ha, "off") == 0)
		r->cs.ha = KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_OFF;
	else if (ha[0])
		invalid = "ha: \"on\", \"off\" or \"\"";
	if (c->admission_set) {
		if (c->admission_failures > 31 || c->admission_percent > 100 ||
		    (c->admission_failures && c->admission_percent))
			invalid = "admission control: host failures 0..31 or a percentage 0..100, "
				  "not both";
		r->cs.admission_set = true;
		r->cs.admission_failures = c->admission_failures;
		r->cs.admission_percent = c->admission_percent;
	}
	if (!invalid && !r->cs.ha && !r->cs.admission_set)
		invalid = "nothing to change: ha or admission_set";
	start(call, r, "Host.Inventory.ManageCluster", invalid);
}

void hd_vim_set_vm_ha(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__VmHaChange *c = (const Keel__Vim__VmHaChange *)req;
	struct hareq *r = hareq_new(call, K_SET_VM);
	const char *invalid = NULL;

	if (!r)
		return;
	if (!c->vm || !c->vm[0] || strlen(c->vm) > NAME_MAX_)
		invalid = "the VM is required (id, uuid or name)";
	else
		snprintf(r->vm, sizeof(r->vm), "%s", c->vm);
	if (c->priority && c->priority[0]) {
		r->priority = prio_value(c->priority);
		if (!r->priority)
			invalid = "priority: disabled, lowest, low, medium, high or highest";
	}
	if (c->n_restart_after > AFTER_MAX)
		invalid = "at most 16 restart-after VMs";
	for (size_t i = 0; !invalid && i < c->n_restart_after; i++) {
		if (!c->restart_after[i][0] || strlen(c->restart_after[i]) > NAME_MAX_)
			invalid = "a restart-after VM is empty or too long";
		else
			snprintf(r->after[i], sizeof(r->after[i]), "%s", c->restart_after[i]);
	}
	if (!invalid && c->n_restart_after && !c->set_restart_after)
		invalid = "restart_after needs set_restart_after";
	if (c->monitoring && c->monitoring[0]) {
		if (strcmp(c->monitoring, "on") == 0)
			r->monitoring = 1;
		else if (strcmp(c->monitoring, "off") == 0)
			r->monitoring = 2;
		else
			invalid = "monitoring: \"on\", \"off\" or \"\"";
	}
	if (c->heartbeat_timeout_s > 86400)
		invalid = "heartbeat_timeout_s: 1..86400 seconds (0: unchanged)";
	if (c->max_resets > 100)
		invalid = "max_resets: 1..100 an hour (0: unchanged)";
	r->mon_timeout_s = c->heartbeat_timeout_s;
	r->mon_max_resets = c->max_resets;
	if (!invalid && !r->priority && !c->set_restart_after && !r->monitoring &&
	    !r->mon_timeout_s && !r->mon_max_resets)
		invalid = "nothing to change: priority, set_restart_after, monitoring, "
			  "heartbeat_timeout_s or max_resets";
	r->set_after = c->set_restart_after;
	r->n_after = c->set_restart_after ? c->n_restart_after : 0;
	/* The privilege is on the VM, checked once it is found: a session is enough here. */
	start(call, r, NULL, invalid);
}
