/*
 * The VM methods: a Task at once, the operation on a worker (see hostagent/vim_vm.h).
 *
 * Happy path of a method on an existing VM (PowerOnVm, ...): on the loop, the session is
 * checked; on a worker, vmkernel's VmList names the VM (by name, uuid or "vm-<uuid>"); on
 * the loop again, the privilege is checked on {"root", "host-<id>", "vm-<uuid>"}, a task is
 * made and returned to the client, and, when no other operation on the same VM is under
 * way, started: one vmkernel request on a worker, whose reply ends the task. Operations on
 * one VM run one at a time in the order they came; the later ones stay queued (and may be
 * cancelled) meanwhile.
 *
 * CreateVm and RegisterVm check their privilege on the root at once and need no lookup.
 * MigrateVm is in vim_migrate.c.
 *
 * PowerOnVm in a cluster may be placed on another host (docs/drs.md, "Initial placement"):
 * vmkernel starts nothing here and says where; the task succeeds at once with the words
 * "VM a placed on host3 by DRS (...): host3 powers it on" as its result (the cluster's
 * status shows who owns a VM, not whether its vmx runs yet, so there is nothing to follow).
 *
 * Failure modes, all in the task's error: the VM is not on this host (with the owner's
 * name when clusterd's registry knows it: "VM x is on host h2: call that host's API");
 * vmkernel refuses (its text); vmkernel does not answer. The lookup's failure is checked
 * against the privilege on {"root", "host-<id>"} first, so a caller without rights learns
 * nothing about VMs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_tasks.h"
#include "hostagent/vim_vm.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/list.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define REPLY_MAX     (64u << 20)
#define VMK_TIMEOUT_S 300 /* a vmkernel request that takes longer is given up */

enum op_kind {
	OP_CREATE,
	OP_REGISTER,
	OP_UNREGISTER,
	OP_DESTROY,
	OP_RECONFIGURE,
	OP_POWER_ON,
	OP_POWER_OFF,
	OP_RESET,
	OP_SUSPEND,
	OP_RESUME,
};

static const struct {
	const char *kind;
	const char *priv;
} ops[] = {
    [OP_CREATE] = {"CreateVm", "VirtualMachine.Inventory.Create"},
    [OP_REGISTER] = {"RegisterVm", "VirtualMachine.Inventory.Register"},
    [OP_UNREGISTER] = {"UnregisterVm", "VirtualMachine.Inventory.Unregister"},
    [OP_DESTROY] = {"DestroyVm", "VirtualMachine.Inventory.Delete"},
    [OP_RECONFIGURE] = {"ReconfigureVm", "VirtualMachine.Config.Settings"},
    [OP_POWER_ON] = {"PowerOnVm", "VirtualMachine.Interact.PowerOn"},
    [OP_POWER_OFF] = {"PowerOffVm", "VirtualMachine.Interact.PowerOff"},
    [OP_RESET] = {"ResetVm", "VirtualMachine.Interact.Reset"},
    [OP_SUSPEND] = {"SuspendVm", "VirtualMachine.Interact.Suspend"},
    [OP_RESUME] = {"ResumeVm", "VirtualMachine.Interact.PowerOn"},
};

/* One operation, from the call to the end of its task. */
struct vmop {
	struct kb_list link; /* in `active` while it has a task and has not ended */
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call; /* until answered; NULL once the client went away */
	enum op_kind kind;
	char user[HOSTD_AUTH_NAME_MAX + 1];
	char vm[256];		  /* as the client named it */
	char uuid[64], name[256]; /* after the lookup; uuid "" = not here */
	char elsewhere[256];	  /* the owner's name when another host has it */
	char vmx_path[4096];	  /* RegisterVm */
	Keel__Vim__VmSpec *spec;  /* CreateVm, ReconfigureVm: our copy */
	struct hd_task *task;	  /* held */
	int code;		  /* of the lookup or the operation */
	char error[KB_ERRMSG_SIZE];
	char result[256];
};

/* Operations with a task on a VM, queued or running, oldest first (loop thread only). */
static struct kb_list active = KB_LIST_INIT(active);

static void op_free(struct vmop *op)
{
	if (op->task)
		hd_task_release(op->task);
	if (op->spec)
		keel__vim__vm_spec__free_unpacked(op->spec, NULL);
	kb_free(op);
}

static void op_cancel(struct hd_call *call, void *arg)
{
	struct vmop *op = arg;

	(void)call;
	op->call = NULL;
}

/* ---- the backends (worker threads) ------------------------------------------------------- */

/* vmkernel's reply, or NULL with op->code and op->error set. */
static Keel__Vmk__VmkReply *vmk(struct vmop *op, Keel__Vmk__VmkRequest *rq)
{
	size_t len = 0;
	uint8_t *p = hd_backend_call(op->v->vmk_sock, &rq->base, VMK_TIMEOUT_S, REPLY_MAX, &len);
	Keel__Vmk__VmkReply *rp = p ? keel__vmk__vmk_reply__unpack(NULL, len, p) : NULL;

	kb_free(p);
	if (!rp) {
		op->code = -EIO;
		snprintf(op->error, sizeof(op->error), "vmkernel at %s does not answer",
			 op->v->vmk_sock);
	}
	return rp;
}

static bool names(const char *key, const char *name, const char *uuid)
{
	return strcmp(key, name) == 0 || strcmp(key, uuid) == 0 ||
	       (strncmp(key, "vm-", 3) == 0 && strcmp(key + 3, uuid) == 0);
}

/* Where another host owns the VM, from clusterd's registry (nothing when not in one). */
static void lookup_cluster(struct vmop *op)
{
	Keel__Cluster__ClusterRequest crq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest cst = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp = NULL;
	size_t len = 0;
	uint8_t *p;

	crq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	crq.status = &cst;
	p = hd_backend_call(op->v->cd_sock, &crq.base, VMK_TIMEOUT_S, REPLY_MAX, &len);
	if (p)
		rp = keel__cluster__cluster_reply__unpack(NULL, len, p);
	kb_free(p);
	if (!rp)
		return;
	for (size_t i = 0; rp->code == 0 && rp->status && i < rp->status->n_vms; i++) {
		const Keel__Cluster__ClusterVmStatus *r = rp->status->vms[i];
		const char *owner = r->owner_name;

		if (!names(op->vm, r->name, r->uuid) || r->owner == op->v->host_id)
			continue;
		for (size_t k = 0; (!owner || !owner[0]) && k < rp->status->n_hosts; k++)
			if (rp->status->hosts[k]->id == r->owner)
				owner = rp->status->hosts[k]->name;
		if (owner && owner[0])
			snprintf(op->elsewhere, sizeof(op->elsewhere), "%s", owner);
		else
			snprintf(op->elsewhere, sizeof(op->elsewhere), "host-%" PRIu64, r->owner);
		break;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void lookup_work(uv_work_t *w)
{
	struct vmop *op = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList vl = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;

	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &vl;
	rp = vmk(op, &rq);
	if (!rp)
		return;
	for (size_t i = 0; i < rp->n_vms; i++) {
		const Keel__Vmk__VmInfo *l = rp->vms[i];

		if (names(op->vm, l->name, l->uuid)) {
			snprintf(op->uuid, sizeof(op->uuid), "%s", l->uuid);
			snprintf(op->name, sizeof(op->name), "%s", l->name);
			break;
		}
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	if (!op->uuid[0])
		lookup_cluster(op);
}

/* Builds vmkernel's spec from the API's (strings borrowed from s). */
static void to_vmk_spec(const Keel__Vim__VmSpec *s, Keel__Vmk__VmSpec *out,
			Keel__Vmk__DiskSpec *disks, Keel__Vmk__DiskSpec **dp,
			Keel__Vmk__NicSpec *nics, Keel__Vmk__NicSpec **np)
{
	keel__vmk__vm_spec__init(out);
	out->name = s->name;
	out->numvcpus = s->vcpus;
	out->memsize_mib = (uint32_t)s->memory_mib;
	out->guest_kind = s->guest_kind;
	out->cmdline = s->cmdline;
	out->datastore = s->datastore;
	for (size_t i = 0; i < s->n_disks_mib; i++) {
		keel__vmk__disk_spec__init(&disks[i]);
		disks[i].size_mib = s->disks_mib[i];
		dp[i] = &disks[i];
	}
	out->n_disks = s->n_disks_mib;
	out->disks = dp;
	for (size_t i = 0; i < s->n_nics; i++) {
		keel__vmk__nic_spec__init(&nics[i]);
		nics[i].portgroup = s->nics[i];
		np[i] = &nics[i];
	}
	out->n_nics = s->n_nics;
	out->nics = np;
}

#define SPEC_LIST_MAX 16 /* disks and NICs of an API spec (checked on the loop) */

static void run_work(uv_work_t *w)
{
	struct vmop *op = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmCreate cr = KEEL__VMK__VMK_VM_CREATE__INIT;
	Keel__Vmk__VmkVmRegister rg = KEEL__VMK__VMK_VM_REGISTER__INIT;
	Keel__Vmk__VmkVmUnregister ur = KEEL__VMK__VMK_VM_UNREGISTER__INIT;
	Keel__Vmk__VmkVmDestroy de = KEEL__VMK__VMK_VM_DESTROY__INIT;
	Keel__Vmk__VmkVmReconfigure rc = KEEL__VMK__VMK_VM_RECONFIGURE__INIT;
	Keel__Vmk__VmkVmPowerOn on = KEEL__VMK__VMK_VM_POWER_ON__INIT;
	Keel__Vmk__VmkVmPowerOff off = KEEL__VMK__VMK_VM_POWER_OFF__INIT;
	Keel__Vmk__VmkVmReset rs = KEEL__VMK__VMK_VM_RESET__INIT;
	Keel__Vmk__VmkVmSuspend su = KEEL__VMK__VMK_VM_SUSPEND__INIT;
	Keel__Vmk__VmkVmResume re = KEEL__VMK__VMK_VM_RESUME__INIT;
	Keel__Vmk__VmSpec spec;
	Keel__Vmk__DiskSpec disks[SPEC_LIST_MAX], *dp[SPEC_LIST_MAX];
	Keel__Vmk__NicSpec nics[SPEC_LIST_MAX], *np[SPEC_LIST_MAX];
	Keel__Vmk__VmkReply *rp;

	if (op->spec)
		to_vmk_spec(op->spec, &spec, disks, dp, nics, np);
	switch (op->kind) {
	case OP_CREATE:
		cr.spec = &spec;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE;
		rq.vm_create = &cr;
		break;
	case OP_REGISTER:
		rg.vmx_path = op->vmx_path;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER;
		rq.vm_register = &rg;
		break;
	case OP_UNREGISTER:
		ur.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER;
		rq.vm_unregister = &ur;
		break;
	case OP_DESTROY:
		de.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY;
		rq.vm_destroy = &de;
		break;
	case OP_RECONFIGURE:
		rc.vm = op->uuid;
		rc.spec = &spec;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_RECONFIGURE;
		rq.vm_reconfigure = &rc;
		break;
	case OP_POWER_ON:
		on.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON;
		rq.vm_power_on = &on;
		break;
	case OP_POWER_OFF:
		off.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF;
		rq.vm_power_off = &off;
		break;
	case OP_RESET:
		rs.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_RESET;
		rq.vm_reset = &rs;
		break;
	case OP_SUSPEND:
		su.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND;
		rq.vm_suspend = &su;
		break;
	case OP_RESUME:
		re.vm = op->uuid;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME;
		rq.vm_resume = &re;
		break;
	}
	rp = vmk(op, &rq);
	if (!rp)
		return;
	op->code = rp->code;
	if (rp->code) {
		snprintf(op->error, sizeof(op->error), "%s",
			 rp->error && rp->error[0] ? rp->error : "vmkernel refused");
	} else if (op->kind == OP_POWER_ON && rp->placed_on && rp->placed_on[0]) {
		/* the cluster placed it on another host, whose reconciler powers it on */
		snprintf(op->result, sizeof(op->result), "%s: %s powers it on",
			 rp->placement && rp->placement[0] ? rp->placement
							   : "placed by the cluster",
			 rp->placed_on);
	} else if (rp->n_vms > 0) {
		const Keel__Vmk__VmInfo *l = rp->vms[0];

		if (op->kind >= OP_POWER_ON)
			snprintf(op->result, sizeof(op->result), "%s", l->power_state);
		else
			snprintf(op->result, sizeof(op->result), "vm-%s", l->uuid);
	} else if (op->uuid[0]) {
		snprintf(op->result, sizeof(op->result), "vm-%s", op->uuid);
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* ---- the loop: tasks and their order ------------------------------------------------------- */

static void run(struct vmop *op);

/* Starts the oldest queued operation on uuid, when none is running on it. */
static void run_next(const char *uuid)
{
	struct kb_list *pos, *tmp;

	kb_list_for_each(pos, &active)
	{
		struct vmop *op = kb_list_entry(pos, struct vmop, link);

		if (strcmp(op->uuid, uuid) == 0 && op->task->state == HD_TASK_RUNNING)
			return;
	}
	kb_list_for_each_safe(pos, tmp, &active)
	{
		struct vmop *op = kb_list_entry(pos, struct vmop, link);

		if (strcmp(op->uuid, uuid) != 0)
			continue;
		kb_list_del(&op->link);
		if (op->task->state != HD_TASK_QUEUED) { /* cancelled while it waited */
			op_free(op);
			continue;
		}
		run(op);
		return;
	}
}

static void run_done(uv_work_t *w, int status)
{
	struct vmop *op = w->data;
	struct hd_tasks *t = hd_vim_tasks(op->v);
	char uuid[sizeof(op->uuid)];

	if (status)
		hd_task_fail(t, op->task, "the operation could not run (%s)", uv_strerror(status));
	else if (op->code)
		hd_task_fail(t, op->task, "%s", op->error);
	else
		hd_task_succeed(t, op->task, op->result);
	kb_log(op->v->log, op->code ? KB_LOG_WARN : KB_LOG_INFO, "%s %s (%s) by %s: %s%s%s",
	       op->task->id, op->task->kind, op->task->target, op->user,
	       hd_task_state_name(op->task->state), op->code ? ": " : "",
	       op->code ? op->error : "");
	snprintf(uuid, sizeof(uuid), "%s", op->uuid);
	if (!kb_list_empty(&op->link))
		kb_list_del(&op->link);
	op_free(op);
	if (uuid[0])
		run_next(uuid);
}

/* Starts a queued operation: its task runs, the request goes to a worker. */
static void run(struct vmop *op)
{
	struct hd_tasks *t = hd_vim_tasks(op->v);
	int rv;

	kb_list_init(&op->link);
	if (op->uuid[0])
		kb_list_add_tail(&active, &op->link);
	hd_task_start(t, op->task);
	op->code = 0;
	op->work.data = op;
	rv = uv_queue_work(op->v->loop, &op->work, run_work, run_done);
	if (rv)
		run_done(&op->work, rv);
}

/* Makes the task and answers the call with it; NULL after answering an error. The call
 * is no longer op's afterwards. */
static struct hd_task *task_answer(struct vmop *op, const char *target)
{
	struct hd_tasks *t = hd_vim_tasks(op->v);
	Keel__Vim__Task m;

	if (!t || hd_tasks_add(t, ops[op->kind].kind, target, op->user, &op->task) != 0) {
		hd_call_error(op->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		op->call = NULL;
		return NULL;
	}
	op->task->privilege = ops[op->kind].priv;
	hd_task_to_pb(op->task, &m);
	hd_call_reply(op->call, &m.base);
	op->call = NULL;
	return op->task;
}

/* Queues op behind the operations on the same VM, or starts it. */
static void enqueue(struct vmop *op)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &active)
	{
		struct vmop *o = kb_list_entry(pos, struct vmop, link);

		if (strcmp(o->uuid, op->uuid) == 0) {
			kb_list_add_tail(&active, &op->link);
			return;
		}
	}
	run(op);
}

static void lookup_done(uv_work_t *w, int status)
{
	struct vmop *op = w->data;
	struct hd_vim *v = op->v;
	struct hd_tasks *t;
	char host[40], vmid[80];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, vmid};

	if (!op->call) {
		op_free(op);
		return;
	}
	hd_call_on_cancel(op->call, NULL, NULL);
	snprintf(host, sizeof(host), "host-%" PRIu64, v->host_id);
	snprintf(vmid, sizeof(vmid), "vm-%s", op->uuid);
	if (status && !op->code) {
		op->code = -EIO;
		snprintf(op->error, sizeof(op->error), "the lookup could not run");
	}
	if (!hd_vim_authorize(op->call, path, op->uuid[0] ? 3 : 2, ops[op->kind].priv)) {
		op_free(op);
		return;
	}
	if (!task_answer(op, op->uuid[0] ? vmid : op->vm)) {
		op_free(op);
		return;
	}
	t = hd_vim_tasks(v);
	if (op->code || !op->uuid[0]) {
		if (op->code)
			hd_task_fail(t, op->task, "looking up VM %s: %s", op->vm, op->error);
		else if (op->elsewhere[0])
			hd_task_fail(t, op->task, "VM %s is on host %s: call that host's API",
				     op->vm, op->elsewhere);
		else
			hd_task_fail(t, op->task, "VM %s is not found on this host", op->vm);
		op_free(op);
		return;
	}
	enqueue(op);
}

/* ---- handlers ------------------------------------------------------------------------------ */

static struct vmop *op_new(struct hd_call *call, enum op_kind kind, const char *user)
{
	struct vmop *op = kb_calloc(1, sizeof(*op));

	if (!op) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	kb_list_init(&op->link);
	op->v = hd_call_server_data(call);
	op->call = call;
	op->kind = kind;
	snprintf(op->user, sizeof(op->user), "%s", user);
	return op;
}

/* Our own copy of a spec borrowed from a request; NULL when out of memory. */
static Keel__Vim__VmSpec *spec_copy(const Keel__Vim__VmSpec *s)
{
	size_t n = keel__vim__vm_spec__get_packed_size(s);
	uint8_t *buf = kb_malloc(n ? n : 1);
	Keel__Vim__VmSpec *c = NULL;

	if (buf) {
		keel__vim__vm_spec__pack(s, buf);
		c = keel__vim__vm_spec__unpack(NULL, n, buf);
		kb_free(buf);
	}
	return c;
}

/* A method on an existing VM: the session now, the lookup on a worker. */
static void vm_method(struct hd_call *call, enum op_kind kind, const char *vm,
		      const Keel__Vim__VmSpec *spec)
{
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	const char *user = hd_vim_authorize(call, root, 1, NULL);
	struct vmop *op;

	if (!user)
		return;
	if (!vm || !vm[0] || strlen(vm) >= sizeof(op->vm)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "name the VM (its id, uuid or name)");
		return;
	}
	op = op_new(call, kind, user);
	if (!op)
		return;
	snprintf(op->vm, sizeof(op->vm), "%s", vm);
	if (spec && !(op->spec = spec_copy(spec))) {
		op_free(op);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	op->work.data = op;
	hd_call_on_cancel(call, op_cancel, op);
	if (uv_queue_work(op->v->loop, &op->work, lookup_work, lookup_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		op_free(op);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
	}
}

static void vmref_method(struct hd_call *call, const ProtobufCMessage *req, enum op_kind kind)
{
	vm_method(call, kind, ((const Keel__Vim__VmRef *)req)->vm, NULL);
}

void hd_vim_unregister_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_UNREGISTER);
}

void hd_vim_destroy_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_DESTROY);
}

void hd_vim_power_on_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_POWER_ON);
}

void hd_vim_power_off_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_POWER_OFF);
}

void hd_vim_reset_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_RESET);
}

void hd_vim_suspend_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_SUSPEND);
}

void hd_vim_resume_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	vmref_method(call, req, OP_RESUME);
}

/* The checks of an API spec that vmkernel cannot make (it sees only its own types). */
static const char *spec_problem(const Keel__Vim__VmSpec *s, bool create)
{
	if (!s)
		return "a spec is required";
	if (create && (!s->name || !s->name[0]))
		return "spec.name is required";
	if (s->memory_mib > (1u << 20))
		return "spec.memory_mib is at most 1048576";
	if (s->guest_kind && s->guest_kind[0] && strcmp(s->guest_kind, "kguest") != 0 &&
	    strcmp(s->guest_kind, "linux") != 0)
		return "spec.guest_kind is kguest or linux";
	if (s->n_disks_mib > SPEC_LIST_MAX || s->n_nics > SPEC_LIST_MAX)
		return "at most 16 disks and 16 NICs";
	if (!create && s->n_disks_mib)
		return "ReconfigureVm cannot change disks yet";
	if (!create && s->datastore && s->datastore[0])
		return "ReconfigureVm cannot move a VM to another datastore";
	return NULL;
}

void hd_vim_reconfigure_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__ReconfigureVmRequest *rq = (const Keel__Vim__ReconfigureVmRequest *)req;
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	const char *why;

	if (!hd_vim_authorize(call, root, 1, NULL))
		return;
	why = spec_problem(rq->spec, false);
	if (why) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "%s", why);
		return;
	}
	vm_method(call, OP_RECONFIGURE, rq->vm, rq->spec);
}

/* "" and "host-<id>" of this host are here; anything else is another host's call. */
static bool host_is_here(const struct hd_vim *v, const char *host)
{
	char self[40];

	snprintf(self, sizeof(self), "host-%" PRIu64, v->host_id);
	return !host || !host[0] || strcmp(host, self) == 0;
}

/* CreateVm and RegisterVm: authorized on the root, run at once. */
static void inventory_method(struct hd_call *call, enum op_kind kind, const char *host,
			     const Keel__Vim__VmSpec *spec, const char *vmx_path)
{
	struct hd_vim *v = hd_call_server_data(call);
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	const char *user = hd_vim_authorize(call, root, 1, ops[kind].priv);
	char self[40];
	struct vmop *op;

	if (!user)
		return;
	if (kind == OP_CREATE) {
		const char *why = spec_problem(spec, true);

		if (why) {
			hd_call_error(call, HD_INVALID_ARGUMENT, "%s", why);
			return;
		}
	} else if (!vmx_path || !vmx_path[0] || strlen(vmx_path) >= 4096) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "vmx_path is required");
		return;
	}
	op = op_new(call, kind, user);
	if (!op)
		return;
	if (spec && !(op->spec = spec_copy(spec))) {
		op_free(op);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (vmx_path)
		snprintf(op->vmx_path, sizeof(op->vmx_path), "%s", vmx_path);
	snprintf(self, sizeof(self), "host-%" PRIu64, v->host_id);
	if (!task_answer(op, self)) {
		op_free(op);
		return;
	}
	if (!host_is_here(v, host)) {
		hd_task_fail(hd_vim_tasks(v), op->task,
			     "host %s is not this host (%s): call that host's API", host, self);
		op_free(op);
		return;
	}
	run(op);
}

void hd_vim_create_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__CreateVmRequest *rq = (const Keel__Vim__CreateVmRequest *)req;

	inventory_method(call, OP_CREATE, rq->host, rq->spec, NULL);
}

void hd_vim_register_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__RegisterVmRequest *rq = (const Keel__Vim__RegisterVmRequest *)req;

	inventory_method(call, OP_REGISTER, rq->host, NULL, rq->vmx_path);
}

