/*
 * MigrateVm through the Vim API: vMotion of a running VM as a Task (docs/vmotion.md).
 *
 * Happy path, each step's blocking part on a worker and its decision on the loop:
 *   1. clusterd's status names the VM (id, uuid or name), its owner and the destination
 *      (to_host: "host-<id>" or a name; empty: the cluster picks);
 *   2. the caller's Resource.HotMigrate is checked on {"root", "host-<owner>",
 *      "vm-<uuid>"}, a MigrateVm task is made and returned, and started;
 *   3. ClusterVmRequest OP_MIGRATE_BEGIN to this host's clusterd (the leader commits the
 *      migration; the source host drives it);
 *   4. every POLL_MS clusterd's status again until the VM's migration is no longer in
 *      flight; while this host is the source, vmkernel's VmkVmMigrateStatus sets the
 *      task's progress (bytes sent against the VM's memory, 95% at the switchover);
 *   5. the VM owned by the destination: success, result "vm-<uuid>"; anything else: error
 *      with the reason the migration's end event gives ("...; it runs where it ran").
 *
 * Failure modes: an unknown VM or host (NOT_FOUND, only to a caller with System.Read on
 * the root), not in a cluster (FAILED_PRECONDITION); after the task exists, everything
 * ends in the task's error.
 *
 * Cancel (CancelTask of the running task, through the task's cancel hook): the next step
 * takes the migration back instead of polling. When this host is the source and its
 * vmkernel reports the switchover under way (phase switchover, ready or committed), it is
 * too late: FAILED_PRECONDITION. Otherwise ClusterVmRequest OP_MIGRATE_ABORT{op, "cancelled
 * by USER (task-N)"} to this host's clusterd, which any member may send (a follower's
 * forwards it to the leader): the answer names the VM's owner after the abort. Still the
 * source: the abort won (the source's vmx can no longer commit; the destination's clusterd
 * ends its incoming vmx, which ends the source's stream, and the guest keeps running on
 * the source), and on the source host vmkernel's VmkVmMigrateCancel also ends the stream
 * at once and waits until the guest runs alone again; the task ends CANCELLED ("cancelled
 * by USER") and CancelTask answers with it. The destination: the switchover came first,
 * FAILED_PRECONDITION and the task goes on to its success. A cancel that fails (clusterd
 * not answering) is answered with its error and the migration goes on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_tasks.h"
#include "hostagent/vim_vm.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define REPLY_MAX     (64u << 20)
#define ASK_TIMEOUT_S 10
#define POLL_MS	      250
#define WAIT_MAX_MS   (3600u * 1000u)
#define SEEN_WAIT_MS  5000 /* for this host's replica to show the migration */
#define NAME_LEN      128

enum { S_LOOKUP, S_BEGIN, S_POLL, S_REPORT };

struct mig {
	struct hd_vim *v;
	struct hd_call *call; /* until answered */
	uv_work_t work;
	uv_timer_t timer;
	struct hd_task *task;
	int stage;
	char user[HOSTD_AUTH_NAME_MAX + 1];
	char vm_arg[NAME_LEN + 1], to_arg[NAME_LEN + 1];
	/* the lookup */
	char uuid[40], name[NAME_LEN], dst_name[NAME_LEN];
	uint64_t owner, dst, self, since, mem_mib;
	/* the migration */
	uint64_t op_id, started_ms, epoch;
	uint32_t progress;
	bool ended, success, seen; /* seen: this host's replica showed the migration */
	bool busy;		   /* a step runs on a worker */
	/* a cancel (CancelTask): asked, and its outcome from the step */
	struct hd_call *ccall; /* the CancelTask call, until answered */
	bool cancel_req, cancel_done;
	bool cancel_step; /* the step queued is the cancel (set on the loop when queued) */
	char cancel_by[HOSTD_AUTH_NAME_MAX + 1];
	enum hd_status cancel_status;
	char cancel_error[KB_ERRMSG_SIZE];
	/* the last step's outcome */
	enum hd_status status; /* HD_OK, or the error's (before the task exists) */
	char error[KB_ERRMSG_SIZE];
};

static void step_done(uv_work_t *w, int status);

static void mig_free_cb(uv_handle_t *h)
{
	struct mig *g = h->data;

	if (g->task)
		hd_task_release(g->task);
	kb_free(g);
}

/* Answers a CancelTask still waiting: with the task when it was cancelled, else with why
 * not (status) and the text. */
static void answer_cancel(struct mig *g, enum hd_status status, const char *text)
{
	struct hd_call *call = g->ccall;
	Keel__Vim__Task m;

	if (!call)
		return;
	g->ccall = NULL;
	g->cancel_req = false;
	hd_call_on_cancel(call, NULL, NULL);
	if (g->task && g->task->state == HD_TASK_CANCELLED) {
		hd_task_to_pb(g->task, &m);
		hd_call_reply(call, &m.base);
	} else if (status != HD_OK) {
		hd_call_error(call, status, "%s", text);
	} else {
		hd_call_error(call, HD_FAILED_PRECONDITION, "%s is %s: it cannot be cancelled",
			      g->task ? g->task->id : "the task",
			      g->task ? hd_task_state_name(g->task->state) : "gone");
	}
}

static void mig_free(struct mig *g)
{
	answer_cancel(g, HD_OK, NULL);
	if (g->task)
		hd_task_on_cancel(g->task, NULL, NULL);
	uv_close((uv_handle_t *)&g->timer, mig_free_cb);
}

static void set_error(struct mig *g, enum hd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct mig *g, enum hd_status st, const char *fmt, ...)
{
	va_list ap;

	g->status = st;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
}

/* ---- workers -------------------------------------------------------------------------------- */

static Keel__Cluster__ClusterReply *ask_cd(struct mig *g, const Keel__Cluster__ClusterRequest *rq)
{
	Keel__Cluster__ClusterReply *rp;
	size_t len = 0;
	uint8_t *b = hd_backend_call(g->v->cd_sock, &rq->base, ASK_TIMEOUT_S, REPLY_MAX, &len);

	if (!b) {
		set_error(g, HD_UNAVAILABLE, "clusterd at %s does not answer", g->v->cd_sock);
		return NULL;
	}
	rp = keel__cluster__cluster_reply__unpack(NULL, len, b);
	kb_free(b);
	if (!rp) {
		set_error(g, HD_UNAVAILABLE, "clusterd: a reply that does not decode");
		return NULL;
	}
	if (rp->code) {
		set_error(g, rp->code == KB_ENOTFOUND ? HD_NOT_FOUND : HD_FAILED_PRECONDITION, "%s",
			  rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return NULL;
	}
	return rp;
}

static Keel__Cluster__ClusterReply *ask_status(struct mig *g)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rp = ask_cd(g, &rq);
	if (rp && (!rp->status || !rp->status->name || !rp->status->name[0])) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		set_error(g, HD_FAILED_PRECONDITION, "this host is not in a cluster: a VM migrates "
						     "between the hosts of one cluster");
		return NULL;
	}
	return rp;
}

static const Keel__Cluster__ClusterVmStatus *status_vm(const Keel__Cluster__ClusterStatus *s,
						       const char *text)
{
	const Keel__Cluster__ClusterVmStatus *byname = NULL;

	if (strncmp(text, "vm-", 3) == 0 && strlen(text) == 39)
		text += 3;
	for (size_t i = 0; i < s->n_vms; i++) {
		if (strcmp(s->vms[i]->uuid, text) == 0)
			return s->vms[i];
		if (!byname && strcmp(s->vms[i]->name, text) == 0)
			byname = s->vms[i];
	}
	return byname;
}

/* The newest migration event of the VM after g->since whose text holds what, or "". */
static void find_event(struct mig *g, const char *what, char *out, size_t size)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	out[0] = '\0';
	er.since = g->since;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	rp = ask_cd(g, &rq);
	if (!rp)
		return;
	for (size_t i = 0; i < rp->n_events; i++) {
		const Keel__Cluster__Event *ev = rp->events[i];

		if (ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION && ev->vm &&
		    strcmp(ev->vm, g->uuid) == 0 && ev->message && strstr(ev->message, what))
			snprintf(out, size, "%s", ev->message);
		if (g->stage == S_LOOKUP && ev->seq > g->since)
			g->since = ev->seq;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void lookup(struct mig *g)
{
	Keel__Cluster__ClusterReply *rp = ask_status(g);
	const Keel__Cluster__ClusterVmStatus *vm;
	char unused[8];

	if (!rp)
		return;
	vm = status_vm(rp->status, g->vm_arg);
	if (!vm) {
		set_error(g, HD_NOT_FOUND, "no such VM in the cluster: %s", g->vm_arg);
		goto out;
	}
	snprintf(g->uuid, sizeof(g->uuid), "%s", vm->uuid);
	snprintf(g->name, sizeof(g->name), "%s", vm->name);
	g->owner = vm->owner;
	g->mem_mib = vm->mem_mib;
	g->self = rp->status->node_id;
	if (g->to_arg[0]) {
		uint64_t id = strncmp(g->to_arg, "host-", 5) == 0 ? strtoull(g->to_arg + 5, NULL, 10) : 0;

		for (size_t i = 0; i < rp->status->n_hosts; i++) {
			const Keel__Cluster__ClusterHostStatus *h = rp->status->hosts[i];

			if (strcmp(h->name, g->to_arg) == 0 || (id && h->id == id)) {
				g->dst = h->id;
				snprintf(g->dst_name, sizeof(g->dst_name), "%s", h->name);
			}
		}
		if (!g->dst) {
			set_error(g, HD_NOT_FOUND, "no such host in the cluster: %s", g->to_arg);
			goto out;
		}
	}
	/* remember where the events stand, so the outcome is read from newer ones only */
	find_event(g, "\x01", unused, sizeof(unused));
out:
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void begin(struct mig *g)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN;
	vr.uuid = g->uuid;
	vr.destination = g->dst;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rp = ask_cd(g, &rq);
	if (!rp)
		return;
	if (!rp->vm || !rp->vm->op)
		set_error(g, HD_FAILED_PRECONDITION, "clusterd began no migration of VM %s", g->name);
	else {
		g->op_id = rp->vm->op->id;
		g->dst = rp->vm->op->destination;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

/* Progress from this host's vmkernel, when it is the source. */
static void local_progress(struct mig *g)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMigrateStatus ms = KEEL__VMK__VMK_VM_MIGRATE_STATUS__INIT;
	Keel__Vmk__VmkReply *rp;
	size_t len = 0;
	uint8_t *b;

	ms.vm = g->uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_STATUS;
	rq.vm_migrate_status = &ms;
	b = hd_backend_call(g->v->vmk_sock, &rq.base, ASK_TIMEOUT_S, REPLY_MAX, &len);
	if (!b)
		return;
	rp = keel__vmk__vmk_reply__unpack(NULL, len, b);
	kb_free(b);
	if (rp && rp->code == 0 && rp->migrate && rp->migrate->phase) {
		const Keel__Vmk__VmkMigrateInfo *f = rp->migrate;
		uint64_t mem = g->mem_mib ? g->mem_mib << 20 : 1;
		uint64_t pct = f->bytes_sent * 90 / mem;

		if (strcmp(f->phase, "switchover") == 0 || strcmp(f->phase, "ready") == 0)
			pct = 95;
		g->progress = (uint32_t)(pct > 95 ? 95 : pct);
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void poll_once(struct mig *g)
{
	Keel__Cluster__ClusterReply *rp = ask_status(g);
	const Keel__Cluster__ClusterVmStatus *vm;

	if (!rp)
		return; /* asked again at the next poll */
	vm = status_vm(rp->status, g->uuid);
	for (size_t i = 0; i < rp->status->n_hosts; i++)
		if (rp->status->hosts[i]->id == g->dst)
			snprintf(g->dst_name, sizeof(g->dst_name), "%s", rp->status->hosts[i]->name);
	if (!(vm && vm->migration == g->op_id) && !g->seen && vm && vm->owner != g->dst &&
	    kb_now_ns() / 1000000u - g->started_ms < SEEN_WAIT_MS) {
		/* this host's replica may apply the migration's start after the leader did */
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return;
	}
	if (vm && vm->migration == g->op_id) {
		bool here = vm->owner == g->self;

		g->seen = true;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		if (here)
			local_progress(g);
		return;
	}
	g->ended = true;
	g->epoch = vm ? vm->epoch : 0;
	{
		char why[300], where[160] = "";

		/* only a switchover ends a migration without an end event: an owner change by
		 * HA (which may even pick the destination) ends it with one */
		find_event(g, " ended", why, sizeof(why));
		g->success = vm && vm->owner == g->dst && !why[0];
		if (vm)
			snprintf(where, sizeof(where), "; it runs on %s (epoch %" PRIu64 ")",
				 vm->owner_name, vm->epoch);
		if (!g->success)
			set_error(g, HD_FAILED_PRECONDITION, "VM %s was not migrated: %s%s", g->name,
				  why[0] ? why : "the migration ended without a switchover", where);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void set_cancel_error(struct mig *g, enum hd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_cancel_error(struct mig *g, enum hd_status st, const char *fmt, ...)
{
	va_list ap;

	g->cancel_status = st;
	va_start(ap, fmt);
	vsnprintf(g->cancel_error, sizeof(g->cancel_error), fmt, ap);
	va_end(ap);
}

/* This host's vmkernel's phase of the VM's migration into phase ("" when it has none). */
static void local_phase(struct mig *g, char *phase, size_t size)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMigrateStatus ms = KEEL__VMK__VMK_VM_MIGRATE_STATUS__INIT;
	Keel__Vmk__VmkReply *rp;
	size_t len = 0;
	uint8_t *b;

	phase[0] = '\0';
	ms.vm = g->uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_STATUS;
	rq.vm_migrate_status = &ms;
	b = hd_backend_call(g->v->vmk_sock, &rq.base, ASK_TIMEOUT_S, REPLY_MAX, &len);
	if (!b)
		return;
	rp = keel__vmk__vmk_reply__unpack(NULL, len, b);
	kb_free(b);
	if (rp && rp->code == 0 && rp->migrate && rp->migrate->phase)
		snprintf(phase, size, "%s", rp->migrate->phase);
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* On the source host: ends the source's side at once (the guest keeps running there);
 * vmkernel answers once the migration's thread put everything back. A migration that
 * ended already is refused, which is as good. */
static void local_cancel(struct mig *g, const char *reason)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMigrateCancel mc = KEEL__VMK__VMK_VM_MIGRATE_CANCEL__INIT;
	Keel__Vmk__VmkReply *rp;
	size_t len = 0;
	uint8_t *b;

	mc.vm = g->uuid;
	mc.reason = (char *)reason;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_CANCEL;
	rq.vm_migrate_cancel = &mc;
	b = hd_backend_call(g->v->vmk_sock, &rq.base, ASK_TIMEOUT_S, REPLY_MAX, &len);
	if (!b)
		return;
	rp = keel__vmk__vmk_reply__unpack(NULL, len, b);
	kb_free(b);
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* Takes the migration back (see the file's top): cancel_done, or cancel_status and
 * cancel_error saying why not. */
static void cancel_once(struct mig *g)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	bool source = g->owner == g->self;
	char phase[32], reason[HOSTD_AUTH_NAME_MAX + 64];

	g->cancel_status = HD_OK;
	g->cancel_done = false;
	if (source) {
		local_phase(g, phase, sizeof(phase));
		if (strcmp(phase, "switchover") == 0 || strcmp(phase, "ready") == 0 ||
		    strcmp(phase, "committed") == 0) {
			set_cancel_error(g, HD_FAILED_PRECONDITION,
					 "the switchover of VM %s to %s has begun (phase %s): the "
					 "migration can no longer be cancelled",
					 g->name, g->dst_name[0] ? g->dst_name : "its destination",
					 phase);
			return;
		}
	}
	snprintf(reason, sizeof(reason), "cancelled by %s (%s)", g->cancel_by, g->task->id);
	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_ABORT;
	vr.uuid = g->uuid;
	vr.op_id = g->op_id;
	vr.error = reason;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rp = ask_cd(g, &rq);
	if (!rp) {
		set_cancel_error(g, g->status == HD_NOT_FOUND ? HD_FAILED_PRECONDITION : g->status,
				 "the migration of VM %s could not be aborted: %s", g->name, g->error);
		g->status = HD_OK;
		return;
	}
	if (!rp->vm) {
		set_cancel_error(g, HD_UNAVAILABLE, "clusterd's answer to the abort names no VM");
	} else if (rp->vm->op && rp->vm->op->id == g->op_id) {
		set_cancel_error(g, HD_UNAVAILABLE,
				 "the abort of migration %" PRIu64 " is not applied yet: try again",
				 g->op_id);
	} else if (rp->vm->owner == g->dst) {
		set_cancel_error(g, HD_FAILED_PRECONDITION,
				 "VM %s switched over to %s first (epoch %" PRIu64 "): the migration "
				 "can no longer be cancelled",
				 g->name, g->dst_name[0] ? g->dst_name : "its destination",
				 rp->vm->epoch);
	} else if (rp->vm->owner != g->owner) {
		set_cancel_error(g, HD_FAILED_PRECONDITION,
				 "the migration of VM %s ended meanwhile: it runs on %s", g->name,
				 rp->vm->owner_name && rp->vm->owner_name[0] ? rp->vm->owner_name
									      : "another host");
	} else {
		g->cancel_done = true;
		g->epoch = rp->vm->epoch;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	if (g->cancel_done && source)
		local_cancel(g, reason);
}

static void step_work(uv_work_t *w)
{
	struct mig *g = w->data;

	g->status = HD_OK;
	switch (g->stage) {
	case S_LOOKUP:
		lookup(g);
		break;
	case S_BEGIN:
		begin(g);
		break;
	case S_POLL:
		if (g->cancel_step)
			cancel_once(g);
		else
			poll_once(g);
		break;
	default:
		break;
	}
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void cancelled(struct hd_call *call, void *arg)
{
	struct mig *g = arg;

	(void)call;
	g->call = NULL;
}

static void queue_step(struct mig *g)
{
	g->work.data = g;
	g->busy = true;
	g->cancel_step = g->stage == S_POLL && g->cancel_req;
	if (uv_queue_work(g->v->loop, &g->work, step_work, step_done) != 0)
		step_done(&g->work, UV_EAGAIN);
}

static void cancel_call_gone(struct hd_call *call, void *arg)
{
	struct mig *g = arg;

	(void)call;
	g->ccall = NULL; /* the cancel still happens: the client asked for it */
}

/* The task's cancel hook (CancelTask while it runs): the next step aborts. */
static void cancel_asked(struct hd_task *task, struct hd_call *call, const char *by, void *arg)
{
	struct mig *g = arg;

	if (g->ccall || g->cancel_req) {
		hd_call_error(call, HD_FAILED_PRECONDITION, "%s is being cancelled already",
			      task->id);
		return;
	}
	g->ccall = call;
	g->cancel_req = true;
	snprintf(g->cancel_by, sizeof(g->cancel_by), "%s", by && by[0] ? by : "a user");
	hd_call_on_cancel(call, cancel_call_gone, g);
	if (!g->busy && g->stage == S_POLL) {
		uv_timer_stop(&g->timer);
		queue_step(g);
	}
}

static void on_timer(uv_timer_t *t)
{
	queue_step(t->data);
}

static void fail_task(struct mig *g)
{
	hd_task_fail(hd_vim_tasks(g->v), g->task, "%s", g->error);
	mig_free(g);
}

/* The VM is found: the privilege on it, the task, the answer. */
static void found(struct mig *g)
{
	char host[32], vm[48], target[48];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, vm};
	struct hd_tasks *t = hd_vim_tasks(g->v);
	const char *user;
	Keel__Vim__Task m;

	snprintf(host, sizeof(host), "host-%" PRIu64, g->owner);
	snprintf(vm, sizeof(vm), "vm-%.40s", g->uuid);
	snprintf(target, sizeof(target), "vm-%.40s", g->uuid);
	hd_call_on_cancel(g->call, NULL, NULL);
	user = hd_vim_authorize(g->call, path, 3, "Resource.HotMigrate");
	if (!user) {
		mig_free(g);
		return;
	}
	if (!t || hd_tasks_add(t, "MigrateVm", target, user, &g->task) != 0) {
		hd_call_error(g->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		mig_free(g);
		return;
	}
	g->task->privilege = "Resource.HotMigrate";
	hd_task_on_cancel(g->task, cancel_asked, g);
	hd_task_to_pb(g->task, &m);
	hd_call_reply(g->call, &m.base);
	g->call = NULL;
	hd_task_start(t, g->task);
	g->started_ms = kb_now_ns() / 1000000u;
	g->stage = S_BEGIN;
	queue_step(g);
}

static void step_done(uv_work_t *w, int status)
{
	struct mig *g = w->data;
	struct hd_tasks *t = hd_vim_tasks(g->v);
	static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

	g->busy = false;
	if (status && g->status == HD_OK)
		set_error(g, HD_UNAVAILABLE, "hostd is busy");
	switch (g->stage) {
	case S_LOOKUP:
		if (!g->call) {
			mig_free(g);
			return;
		}
		if (g->status != HD_OK) {
			hd_call_on_cancel(g->call, NULL, NULL);
			/* what exists is told only to those who may read the inventory */
			if (g->status == HD_NOT_FOUND &&
			    !hd_vim_authorize(g->call, root_path, 1, "System.Read")) {
				mig_free(g);
				return;
			}
			hd_call_error(g->call, g->status, "%s", g->error);
			mig_free(g);
			return;
		}
		found(g);
		return;
	case S_BEGIN:
		if (g->status != HD_OK) {
			fail_task(g);
			return;
		}
		kb_log(g->v->log, KB_LOG_INFO, "%s: migrating VM %s (operation %" PRIu64 ")",
		       g->task->id, g->name, g->op_id);
		g->stage = S_POLL;
		if (g->cancel_req)
			queue_step(g);
		else
			uv_timer_start(&g->timer, on_timer, POLL_MS, 0);
		return;
	default:
		break;
	}
	/* S_POLL */
	if (g->cancel_step) {
		g->cancel_step = false;
		g->cancel_req = false;
		if (status) {
			set_cancel_error(g, HD_UNAVAILABLE, "hostd is busy: try again");
		} else if (g->cancel_done) {
			kb_log(g->v->log, KB_LOG_INFO,
			       "%s: migration %" PRIu64 " of VM %s cancelled by %s; it runs on the "
			       "source (epoch %" PRIu64 ")",
			       g->task->id, g->op_id, g->name, g->cancel_by, g->epoch);
			hd_task_cancel_running(t, g->task, g->cancel_by);
			mig_free(g); /* answers the CancelTask with the task */
			return;
		}
		kb_log(g->v->log, KB_LOG_INFO, "%s: cancel by %s refused: %s", g->task->id,
		       g->cancel_by, g->cancel_error);
		answer_cancel(g, g->cancel_status, g->cancel_error);
		uv_timer_start(&g->timer, on_timer, status ? POLL_MS : 0, 0);
		return;
	}
	if (!g->ended && g->cancel_req) {
		queue_step(g); /* a cancel came while this poll ran: it goes next */
		return;
	}
	if (!g->ended) {
		if (g->progress > g->task->progress)
			hd_task_progress(t, g->task, g->progress);
		if (kb_now_ns() / 1000000u - g->started_ms > WAIT_MAX_MS) {
			set_error(g, HD_DEADLINE_EXCEEDED,
				  "migration %" PRIu64 " of VM %s still runs after an hour; the cluster "
				  "status shows it",
				  g->op_id, g->name);
			fail_task(g);
			return;
		}
		uv_timer_start(&g->timer, on_timer, POLL_MS, 0);
		return;
	}
	if (!g->success) {
		fail_task(g);
		return;
	}
	{
		char result[64];

		snprintf(result, sizeof(result), "vm-%.40s", g->uuid);
		kb_log(g->v->log, KB_LOG_INFO, "%s: VM %s migrated to %s at epoch %" PRIu64,
		       g->task->id, g->name, g->dst_name, g->epoch);
		hd_task_succeed(t, g->task, result);
	}
	mig_free(g);
}

void hd_vim_migrate_vm(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__MigrateVmRequest *rq = (const Keel__Vim__MigrateVmRequest *)req;
	static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};
	struct mig *g;

	/* a session first; the privilege is checked on the VM once it is found */
	if (!hd_vim_authorize(call, root_path, 1, NULL))
		return;
	if (!rq->vm || !rq->vm[0] || strlen(rq->vm) > NAME_LEN ||
	    (rq->to_host && strlen(rq->to_host) > NAME_LEN)) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "the VM is required (id, uuid or name; to_host: a host name or id)");
		return;
	}
	g = kb_calloc(1, sizeof(*g));
	if (!g) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	g->v = hd_call_server_data(call);
	g->call = call;
	snprintf(g->vm_arg, sizeof(g->vm_arg), "%s", rq->vm);
	snprintf(g->to_arg, sizeof(g->to_arg), "%s", rq->to_host ? rq->to_host : "");
	uv_timer_init(g->v->loop, &g->timer);
	g->timer.data = g;
	hd_call_on_cancel(call, cancelled, g);
	g->stage = S_LOOKUP;
	queue_step(g);
}
