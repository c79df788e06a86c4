/*
 * FT through the Vim API (docs/ft.md, "The API"): EnableVmFt, DisableVmFt, FailoverVmFt and
 * RestartVmFtSecondary as Tasks, and GetVmFt.
 *
 * Happy path of the four Tasks, each step's blocking part on a worker and its decision on
 * the loop (as MigrateVm, vim_migrate.c):
 *   1. clusterd's status names the VM (id, uuid or name), its owner, its FT as it stands
 *      (state, generation, secondary, epoch) and, for EnableVmFt and RestartVmFtSecondary,
 *      the secondary's host asked for (secondary_host: "host-<id>" or a name; "": the
 *      cluster's choice); the cluster's event sequence is noted;
 *   2. VirtualMachine.Config.Settings is checked on {"root", "host-<owner>", "vm-<uuid>"},
 *      the task is made, returned and started;
 *   3. ClusterVmRequest OP_FT_ENABLE, OP_FT_DISABLE, OP_FT_FAILOVER or
 *      OP_FT_RESTART_SECONDARY to this host's clusterd (any member may send them; a
 *      follower's forwards them to the leader, which commits a VmSetFt);
 *   4. every POLL_MS clusterd's status again, until the outcome:
 *        EnableVmFt            protected at a generation above the one of step 1;
 *        DisableVmFt           not protected;
 *        FailoverVmFt          owned by the secondary's host of step 1 at a higher epoch;
 *        RestartVmFtSecondary  protected at a generation above the one of step 1.
 *      While it waits, the task's result reads the VM's FT state ("needs secondary",
 *      "starting: secondary on host3") and its progress follows it (10% needs secondary,
 *      40% starting); on success the result is the state reached ("protected: secondary
 *      on host3", "not protected", "runs on host3 (epoch 7)").
 *
 * Failure modes: an unknown VM or host (NOT_FOUND, only to a caller with System.Read on
 * the root), not in a cluster (FAILED_PRECONDITION "this host is not in a cluster"),
 * clusterd not answering (UNAVAILABLE); after the task exists, everything ends in the
 * task's error: clusterd's refusal at once with its text (FT on already, not protected,
 * the secondary's host not connected, the VM's own host named as secondary), FT turned
 * off by someone else while EnableVmFt or RestartVmFtSecondary waits, another owner than
 * the secondary's host after a failover, and no outcome after WAIT_MAX_MS (300 s): the
 * error then carries the VM's latest FT event (why no secondary could be made); FT stays
 * as the cluster has it.
 *
 * Cancel (CancelTask of a running task, through the task's cancel hook): only EnableVmFt
 * while the VM is not protected yet can be taken back: the next step reads the status and,
 * still not protected, sends OP_FT_DISABLE ("FT off"); the task ends CANCELLED and
 * CancelTask answers with it. Every other case is FAILED_PRECONDITION saying why (the
 * other kinds are never cancellable: DisableVmFt or RestartVmFtSecondary taken back would
 * leave FT in a state nobody asked for, and a failover is one committed step).
 *
 * GetVmFt: clusterd's status (the VM's FT; a VM whose FT was never on reads "not
 * protected"), and when FT is on, this host's vmkernel's VmkVmFtStatus: when it answers
 * role "primary" for the VM, the primary vmx's figures (figures true).
 *
 * Threads: handlers, hooks and answers on the loop; clusterd and vmkernel are asked on
 * libuv's workers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_ft.h"
#include "hostagent/vim_tasks.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define REPLY_MAX     (64u << 20)
#define ASK_TIMEOUT_S 10
#define POLL_MS	      250
#define WAIT_MAX_MS   (300u * 1000u)
#define NAME_LEN      128
#define TEXT_LEN      256

#define FT_OFF	 KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define FT_NEEDS KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define FT_START KEEL__CLUSTER__FT_STATE__FT_STARTING
#define FT_PROT	 KEEL__CLUSTER__FT_STATE__FT_PROTECTED

enum { K_ENABLE, K_DISABLE, K_FAILOVER, K_RESTART, K_GET };
enum { S_LOOKUP, S_ASK, S_POLL };

static const char *const kind_names[] = {"EnableVmFt", "DisableVmFt", "FailoverVmFt",
					 "RestartVmFtSecondary", "GetVmFt"};

/* What the VM's FT looks like in one status. */
struct ftview {
	int state;
	uint64_t generation, secondary, owner, epoch, since_ms;
	uint32_t failovers;
	char secondary_name[NAME_LEN], owner_name[NAME_LEN];
};

struct ftop {
	struct hd_vim *v;
	struct hd_call *call; /* until answered */
	uv_work_t work;
	uv_timer_t timer;
	struct hd_task *task;
	int kind, stage;
	char vm_arg[NAME_LEN + 1], host_arg[NAME_LEN + 1];
	/* the lookup */
	char uuid[40], name[NAME_LEN];
	uint64_t self, dst, since; /* dst: the secondary's host asked for (0: any) */
	char dst_name[NAME_LEN];
	struct ftview before; /* step 1 */
	/* the poll */
	struct ftview now;
	uint64_t started_ms;
	bool ended, success;
	char result[TEXT_LEN];
	uint32_t progress;
	bool busy; /* a step runs on a worker */
	/* a cancel (EnableVmFt only) */
	struct hd_call *ccall; /* the CancelTask call, until answered */
	bool cancel_req, cancel_done, cancel_step;
	char cancel_by[HOSTD_AUTH_NAME_MAX + 1];
	enum hd_status cancel_status;
	char cancel_error[KB_ERRMSG_SIZE];
	/* GetVmFt: the primary's figures */
	Keel__Vmk__VmkReply *figures;
	/* the last step's outcome */
	enum hd_status status; /* HD_OK, or the error's */
	char error[KB_ERRMSG_SIZE];
};

static void step_done(uv_work_t *w, int status);

static const char *state_word(int state)
{
	switch (state) {
	case FT_NEEDS:
		return "needs secondary";
	case FT_START:
		return "starting";
	case FT_PROT:
		return "protected";
	default:
		return "not protected";
	}
}

static void ftop_free_cb(uv_handle_t *h)
{
	struct ftop *g = h->data;

	if (g->task)
		hd_task_release(g->task);
	if (g->figures)
		keel__vmk__vmk_reply__free_unpacked(g->figures, NULL);
	kb_free(g);
}

/* Answers a CancelTask still waiting: with the task when it was cancelled, else with why
 * not (status) and the text. */
static void answer_cancel(struct ftop *g, enum hd_status status, const char *text)
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

static void ftop_free(struct ftop *g)
{
	answer_cancel(g, HD_OK, NULL);
	if (g->task)
		hd_task_on_cancel(g->task, NULL, NULL);
	uv_close((uv_handle_t *)&g->timer, ftop_free_cb);
}

static void set_error(struct ftop *g, enum hd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct ftop *g, enum hd_status st, const char *fmt, ...)
{
	va_list ap;

	g->status = st;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
}

static void set_cancel_error(struct ftop *g, enum hd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_cancel_error(struct ftop *g, enum hd_status st, const char *fmt, ...)
{
	va_list ap;

	g->cancel_status = st;
	va_start(ap, fmt);
	vsnprintf(g->cancel_error, sizeof(g->cancel_error), fmt, ap);
	va_end(ap);
}

/* ---- workers -------------------------------------------------------------------------------- */

/* One request to clusterd: its reply (caller frees), or NULL with g's error set (a refusal
 * keeps clusterd's text: NOT_FOUND for KB_ENOTFOUND, else FAILED_PRECONDITION). */
static Keel__Cluster__ClusterReply *ask_cd(struct ftop *g, const Keel__Cluster__ClusterRequest *rq)
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

static Keel__Cluster__ClusterReply *ask_status(struct ftop *g)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rp = ask_cd(g, &rq);
	if (rp && (!rp->status || !rp->status->name || !rp->status->name[0])) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		set_error(g, HD_FAILED_PRECONDITION,
			  "this host is not in a cluster: FT pairs hosts of one cluster");
		return NULL;
	}
	return rp;
}

/* The VM named by text ("vm-<uuid>", uuid or name) in status s, or NULL. */
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

static const char *host_name(const Keel__Cluster__ClusterStatus *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_hosts; i++)
		if (s->hosts[i]->id == id)
			return s->hosts[i]->name;
	return "";
}

static void view_of(const Keel__Cluster__ClusterStatus *s, const Keel__Cluster__ClusterVmStatus *vm,
		    struct ftview *out)
{
	const Keel__Cluster__Ft *ft = vm->ft;

	memset(out, 0, sizeof(*out));
	out->owner = vm->owner;
	out->epoch = vm->epoch;
	snprintf(out->owner_name, sizeof(out->owner_name), "%s",
		 vm->owner_name && vm->owner_name[0] ? vm->owner_name : host_name(s, vm->owner));
	if (!ft)
		return;
	out->state = ft->state;
	out->generation = ft->generation;
	out->secondary = ft->secondary;
	out->since_ms = ft->since_ms;
	out->failovers = ft->failovers;
	if (ft->secondary)
		snprintf(out->secondary_name, sizeof(out->secondary_name), "%s",
			 vm->ft_secondary_name && vm->ft_secondary_name[0]
			     ? vm->ft_secondary_name
			     : host_name(s, ft->secondary));
}

/* The newest FT event of the VM after g->since into out ("" when none); at the lookup it
 * also moves g->since to the newest event, so that later reads see newer ones only. */
static void latest_event(struct ftop *g, char *out, size_t size)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	enum hd_status st = g->status;
	char error[sizeof(g->error)];

	out[0] = '\0';
	memcpy(error, g->error, sizeof(error));
	er.since = g->since;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	rp = ask_cd(g, &rq);
	g->status = st; /* an event that cannot be read changes no outcome */
	memcpy(g->error, error, sizeof(error));
	if (!rp)
		return;
	for (size_t i = 0; i < rp->n_events; i++) {
		const Keel__Cluster__Event *ev = rp->events[i];

		if (ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_FT && ev->vm &&
		    strcmp(ev->vm, g->uuid) == 0 && ev->message)
			snprintf(out, size, "%s", ev->message);
		if (g->stage == S_LOOKUP && ev->seq > g->since)
			g->since = ev->seq;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

/* GetVmFt: this host's vmkernel's view of the VM's FT, kept when it is the primary. */
static void local_figures(struct ftop *g)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtStatus fs = KEEL__VMK__VMK_VM_FT_STATUS__INIT;
	Keel__Vmk__VmkReply *rp;
	size_t len = 0;
	uint8_t *b;

	fs.vm = g->uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS;
	rq.vm_ft_status = &fs;
	b = hd_backend_call(g->v->vmk_sock, &rq.base, ASK_TIMEOUT_S, REPLY_MAX, &len);
	if (!b)
		return; /* the answer has no figures */
	rp = keel__vmk__vmk_reply__unpack(NULL, len, b);
	kb_free(b);
	if (rp && rp->code == 0 && rp->ft && rp->ft->role && strcmp(rp->ft->role, "primary") == 0 &&
	    (!rp->ft->uuid || !rp->ft->uuid[0] || strcmp(rp->ft->uuid, g->uuid) == 0)) {
		g->figures = rp;
		return;
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void lookup(struct ftop *g)
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
	g->self = rp->status->node_id;
	view_of(rp->status, vm, &g->before);
	if (g->host_arg[0]) {
		uint64_t id =
		    strncmp(g->host_arg, "host-", 5) == 0 ? strtoull(g->host_arg + 5, NULL, 10) : 0;

		for (size_t i = 0; i < rp->status->n_hosts; i++) {
			const Keel__Cluster__ClusterHostStatus *h = rp->status->hosts[i];

			if (strcmp(h->name, g->host_arg) == 0 || (id && h->id == id)) {
				g->dst = h->id;
				snprintf(g->dst_name, sizeof(g->dst_name), "%s", h->name);
			}
		}
		if (!g->dst) {
			set_error(g, HD_NOT_FOUND, "no such host in the cluster: %s", g->host_arg);
			goto out;
		}
	}
	if (g->kind == K_GET) {
		if (g->before.state != FT_OFF)
			local_figures(g);
	} else {
		/* remember where the events stand: a timeout's reason is read from newer ones */
		latest_event(g, unused, sizeof(unused));
	}
out:
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void ask_op(struct ftop *g)
{
	static const Keel__Cluster__ClusterVmRequest__Op ops[] = {
	    [K_ENABLE] = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_ENABLE,
	    [K_DISABLE] = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_DISABLE,
	    [K_FAILOVER] = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER,
	    [K_RESTART] = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_RESTART_SECONDARY,
	};
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	vr.op = ops[g->kind];
	vr.uuid = g->uuid;
	vr.destination = g->dst;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rp = ask_cd(g, &rq);
	if (!rp) {
		char text[sizeof(g->error)];

		snprintf(text, sizeof(text), "%s", g->error);
		set_error(g, g->status, "%s of VM %s refused: %s", kind_names[g->kind], g->name,
			  text);
		return;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

/* One status: g->now, and whether the outcome is reached (ended, success, result). */
static void poll_once(struct ftop *g)
{
	Keel__Cluster__ClusterReply *rp = ask_status(g);
	const Keel__Cluster__ClusterVmStatus *vm;
	const struct ftview *n = &g->now, *b = &g->before;
	bool moved;

	if (!rp) {
		/* asked again at the next poll, unless that has gone on for too long */
		if (kb_now_ns() / 1000000u - g->started_ms > WAIT_MAX_MS)
			g->ended = true;
		return;
	}
	vm = status_vm(rp->status, g->uuid);
	if (!vm) {
		g->ended = true;
		set_error(g, HD_NOT_FOUND, "VM %s is no longer registered in the cluster", g->name);
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return;
	}
	view_of(rp->status, vm, &g->now);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	moved = n->generation > b->generation;
	switch (g->kind) {
	case K_ENABLE:
	case K_RESTART:
		if (moved && n->state == FT_PROT) {
			g->ended = g->success = true;
			snprintf(g->result, sizeof(g->result), "protected: secondary on %s",
				 n->secondary_name[0] ? n->secondary_name : "?");
		} else if (moved && n->state == FT_OFF) {
			g->ended = true;
			set_error(g, HD_FAILED_PRECONDITION,
				  "FT of VM %s was turned off before it was protected", g->name);
		}
		break;
	case K_DISABLE:
		if (n->state == FT_OFF) {
			g->ended = g->success = true;
			snprintf(g->result, sizeof(g->result), "not protected");
		}
		break;
	default: /* K_FAILOVER */
		if (n->owner != b->owner && n->epoch > b->epoch &&
		    (!b->secondary || n->owner == b->secondary)) {
			g->ended = g->success = true;
			snprintf(g->result, sizeof(g->result), "runs on %s (epoch %" PRIu64 ")",
				 n->owner_name[0] ? n->owner_name : "?", n->epoch);
		} else if (moved) {
			g->ended = true;
			set_error(
			    g, HD_FAILED_PRECONDITION,
			    "VM %s did not fail over to its secondary: FT is %s and it runs on "
			    "%s (epoch %" PRIu64 ")",
			    g->name, state_word(n->state), n->owner_name[0] ? n->owner_name : "?",
			    n->epoch);
		}
		break;
	}
	if (!g->ended && kb_now_ns() / 1000000u - g->started_ms > WAIT_MAX_MS) {
		char why[TEXT_LEN];

		latest_event(g, why, sizeof(why));
		g->ended = true;
		set_error(
		    g, HD_DEADLINE_EXCEEDED,
		    "%s of VM %s: no outcome after %u s (FT is %s%s%s); the latest FT event: %s",
		    kind_names[g->kind], g->name, WAIT_MAX_MS / 1000, state_word(n->state),
		    n->secondary ? ", secondary on " : "", n->secondary ? n->secondary_name : "",
		    why[0] ? why : "none since the request");
		return;
	}
	if (g->ended && !g->success) {
		char why[TEXT_LEN], text[sizeof(g->error)];

		latest_event(g, why, sizeof(why));
		if (why[0]) {
			snprintf(text, sizeof(text), "%s", g->error);
			set_error(g, g->status, "%s: %s", text, why);
		}
	}
}

/* EnableVmFt taken back while the VM is not protected (see the file's top): cancel_done,
 * or cancel_status and cancel_error saying why not. */
static void cancel_once(struct ftop *g)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	g->cancel_status = HD_OK;
	g->cancel_done = false;
	poll_once(g);
	if (g->status != HD_OK && !g->ended) {
		set_cancel_error(g, g->status == HD_NOT_FOUND ? HD_FAILED_PRECONDITION : g->status,
				 "EnableVmFt of VM %s could not be cancelled: %s", g->name,
				 g->error);
		g->status = HD_OK;
		return;
	}
	if (g->ended && g->success) {
		set_cancel_error(g, HD_FAILED_PRECONDITION,
				 "VM %s is protected already: %s can no longer be cancelled "
				 "(DisableVmFt turns FT off)",
				 g->name, g->task->id);
		return;
	}
	if (g->ended) {
		set_cancel_error(g, HD_FAILED_PRECONDITION, "%s ends: %s", g->task->id, g->error);
		g->status = HD_OK;
		return;
	}
	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_DISABLE;
	vr.uuid = g->uuid;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rp = ask_cd(g, &rq);
	if (!rp) {
		set_cancel_error(g, g->status == HD_NOT_FOUND ? HD_FAILED_PRECONDITION : g->status,
				 "FT of VM %s could not be turned off: %s", g->name, g->error);
		g->status = HD_OK;
		return;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	g->cancel_done = true;
}

static void step_work(uv_work_t *w)
{
	struct ftop *g = w->data;

	g->status = HD_OK;
	switch (g->stage) {
	case S_LOOKUP:
		lookup(g);
		break;
	case S_ASK:
		ask_op(g);
		break;
	default:
		if (g->cancel_step)
			cancel_once(g);
		else
			poll_once(g);
		break;
	}
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void cancelled(struct hd_call *call, void *arg)
{
	struct ftop *g = arg;

	(void)call;
	g->call = NULL;
}

static void queue_step(struct ftop *g)
{
	g->work.data = g;
	g->busy = true;
	g->cancel_step = g->stage == S_POLL && g->cancel_req;
	if (uv_queue_work(g->v->loop, &g->work, step_work, step_done) != 0)
		step_done(&g->work, UV_EAGAIN);
}

static void cancel_call_gone(struct hd_call *call, void *arg)
{
	struct ftop *g = arg;

	(void)call;
	g->ccall = NULL; /* the cancel still happens: the client asked for it */
}

/* The task's cancel hook (CancelTask while it runs). */
static void cancel_asked(struct hd_task *task, struct hd_call *call, const char *by, void *arg)
{
	struct ftop *g = arg;

	if (g->kind != K_ENABLE) {
		hd_call_error(call, HD_FAILED_PRECONDITION,
			      "%s (%s of VM %s) cannot be cancelled: it runs until the cluster has "
			      "done it",
			      task->id, kind_names[g->kind], g->name);
		return;
	}
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

static void fail_task(struct ftop *g)
{
	kb_log(g->v->log, KB_LOG_INFO, "%s: %s of VM %s failed: %s", g->task->id,
	       kind_names[g->kind], g->name, g->error);
	hd_task_fail(hd_vim_tasks(g->v), g->task, "%s", g->error);
	ftop_free(g);
}

/* The task's result while it runs: the VM's FT state, and the progress that goes with it.
 * Observers and the change feed are told through hd_task_progress. */
static void describe(struct ftop *g)
{
	const struct ftview *n = &g->now;
	char text[TEXT_LEN];
	uint32_t pct;

	if (g->kind == K_DISABLE || g->kind == K_FAILOVER)
		return;
	if (n->generation <= g->before.generation)
		return; /* this host has not applied the change yet */
	switch (n->state) {
	case FT_START:
		snprintf(text, sizeof(text), "starting: secondary on %s",
			 n->secondary_name[0] ? n->secondary_name : "?");
		pct = 40;
		break;
	case FT_NEEDS:
		if (g->dst)
			snprintf(text, sizeof(text), "needs secondary: to be made on %s",
				 g->dst_name);
		else
			snprintf(text, sizeof(text),
				 "needs secondary: the cluster chooses its host");
		pct = 10;
		break;
	default:
		return;
	}
	if (strcmp(text, g->task->result) == 0 && pct == g->task->progress)
		return;
	snprintf(g->task->result, sizeof(g->task->result), "%s", text);
	hd_task_progress(hd_vim_tasks(g->v), g->task, pct);
}

/* The VM is found: the privilege on it, the task, the answer. */
static void found(struct ftop *g)
{
	char host[32], vm[48];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, vm};
	struct hd_tasks *t = hd_vim_tasks(g->v);
	const char *user;
	Keel__Vim__Task m;

	snprintf(host, sizeof(host), "host-%" PRIu64, g->before.owner);
	snprintf(vm, sizeof(vm), "vm-%.40s", g->uuid);
	hd_call_on_cancel(g->call, NULL, NULL);
	user = hd_vim_authorize(g->call, path, 3, "VirtualMachine.Config.Settings");
	if (!user) {
		ftop_free(g);
		return;
	}
	if (!t || hd_tasks_add(t, kind_names[g->kind], vm, user, &g->task) != 0) {
		hd_call_error(g->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		ftop_free(g);
		return;
	}
	g->task->privilege = "VirtualMachine.Config.Settings";
	hd_task_on_cancel(g->task, cancel_asked, g);
	hd_task_to_pb(g->task, &m);
	hd_call_reply(g->call, &m.base);
	g->call = NULL;
	hd_task_start(t, g->task);
	g->started_ms = kb_now_ns() / 1000000u;
	g->stage = S_ASK;
	queue_step(g);
}

/* GetVmFt's answer, on the loop. */
static void answer_get(struct ftop *g)
{
	char host[32], vm[48], primary[32], secondary[32];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, vm};
	Keel__Vim__VmFtInfo info = KEEL__VIM__VM_FT_INFO__INIT;
	const struct ftview *b = &g->before;

	snprintf(host, sizeof(host), "host-%" PRIu64, b->owner);
	snprintf(vm, sizeof(vm), "vm-%.40s", g->uuid);
	hd_call_on_cancel(g->call, NULL, NULL);
	if (!hd_vim_authorize(g->call, path, 3, "System.Read"))
		return;
	snprintf(primary, sizeof(primary), "host-%" PRIu64, b->owner);
	snprintf(secondary, sizeof(secondary), "host-%" PRIu64, b->secondary);
	info.vm = vm;
	info.name = g->name;
	info.state = (char *)state_word(b->state);
	info.primary_host = primary;
	info.secondary_host = b->secondary ? secondary : "";
	info.generation = b->generation;
	info.failovers = b->failovers;
	info.since_ms = b->since_ms;
	if (g->figures && b->state != FT_OFF) {
		const Keel__Vmk__VmkFtInfo *f = g->figures->ft;

		info.figures = true;
		info.phase = f->phase ? f->phase : "";
		info.checkpoint = f->checkpoint;
		info.epoch_ms = f->epoch_ms;
		info.lag_us = f->lag_us;
		info.last_pause_us = f->last_pause_us;
		info.max_pause_us = f->max_pause_us;
		info.last_ckpt_bytes = f->last_ckpt_bytes;
		info.held_frames = f->held_frames;
		info.bytes = f->bytes;
	}
	hd_call_reply(g->call, &info.base);
}

static void step_done(uv_work_t *w, int status)
{
	struct ftop *g = w->data;
	struct hd_tasks *t = hd_vim_tasks(g->v);
	static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

	g->busy = false;
	if (status && g->status == HD_OK)
		set_error(g, HD_UNAVAILABLE, "hostd is busy");
	switch (g->stage) {
	case S_LOOKUP:
		if (!g->call) {
			ftop_free(g);
			return;
		}
		if (g->status != HD_OK) {
			hd_call_on_cancel(g->call, NULL, NULL);
			/* what exists is told only to those who may read the inventory */
			if (g->status == HD_NOT_FOUND &&
			    !hd_vim_authorize(g->call, root_path, 1, "System.Read")) {
				ftop_free(g);
				return;
			}
			hd_call_error(g->call, g->status, "%s", g->error);
			ftop_free(g);
			return;
		}
		if (g->kind == K_GET) {
			answer_get(g);
			ftop_free(g);
			return;
		}
		found(g);
		return;
	case S_ASK:
		if (g->status != HD_OK) {
			fail_task(g);
			return;
		}
		kb_log(g->v->log, KB_LOG_INFO, "%s: %s of VM %s asked of the cluster%s%s",
		       g->task->id, kind_names[g->kind], g->name, g->dst ? " (secondary on " : "",
		       g->dst ? g->dst_name : "");
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
			       "%s: EnableVmFt of VM %s cancelled by %s: FT turned off",
			       g->task->id, g->name, g->cancel_by);
			hd_task_cancel_running(t, g->task, g->cancel_by);
			ftop_free(g); /* answers the CancelTask with the task */
			return;
		}
		kb_log(g->v->log, KB_LOG_INFO, "%s: cancel by %s refused: %s", g->task->id,
		       g->cancel_by, g->cancel_error);
		answer_cancel(g, g->cancel_status, g->cancel_error);
		/* the poll inside the cancel may have seen the outcome: the next poll ends it */
		g->ended = false;
		g->success = false;
		uv_timer_start(&g->timer, on_timer, status ? POLL_MS : 0, 0);
		return;
	}
	if (!g->ended && g->cancel_req) {
		queue_step(g); /* a cancel came while this poll ran: it goes next */
		return;
	}
	if (!g->ended) {
		describe(g);
		uv_timer_start(&g->timer, on_timer, POLL_MS, 0);
		return;
	}
	if (!g->success) {
		fail_task(g);
		return;
	}
	kb_log(g->v->log, KB_LOG_INFO, "%s: %s of VM %s done: %s", g->task->id, kind_names[g->kind],
	       g->name, g->result);
	hd_task_succeed(t, g->task, g->result);
	ftop_free(g);
}

/* Checks the session and the request, then looks the VM up on a worker. */
static void start(struct hd_call *call, int kind, const char *vm, const char *host)
{
	static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};
	struct ftop *g;

	/* a session first; the privilege is checked on the VM once it is found */
	if (!hd_vim_authorize(call, root_path, 1, NULL))
		return;
	if (!vm || !vm[0] || strlen(vm) > NAME_LEN || (host && strlen(host) > NAME_LEN)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "the VM is required (id, uuid or name%s)",
			      kind == K_ENABLE || kind == K_RESTART
				  ? "; secondary_host: a host id or name, or \"\""
				  : "");
		return;
	}
	g = kb_calloc(1, sizeof(*g));
	if (!g) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	g->v = hd_call_server_data(call);
	g->call = call;
	g->kind = kind;
	snprintf(g->vm_arg, sizeof(g->vm_arg), "%s", vm);
	snprintf(g->host_arg, sizeof(g->host_arg), "%s", host ? host : "");
	uv_timer_init(g->v->loop, &g->timer);
	g->timer.data = g;
	hd_call_on_cancel(call, cancelled, g);
	g->stage = S_LOOKUP;
	queue_step(g);
}

void hd_vim_enable_vm_ft(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__VmFtRequest *rq = (const Keel__Vim__VmFtRequest *)req;

	start(call, K_ENABLE, rq->vm, rq->secondary_host);
}

void hd_vim_disable_vm_ft(struct hd_call *call, const ProtobufCMessage *req)
{
	start(call, K_DISABLE, ((const Keel__Vim__VmRef *)req)->vm, NULL);
}

void hd_vim_failover_vm_ft(struct hd_call *call, const ProtobufCMessage *req)
{
	start(call, K_FAILOVER, ((const Keel__Vim__VmRef *)req)->vm, NULL);
}

void hd_vim_restart_vm_ft_secondary(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__VmFtRequest *rq = (const Keel__Vim__VmFtRequest *)req;

	start(call, K_RESTART, rq->vm, rq->secondary_host);
}

void hd_vim_get_vm_ft(struct hd_call *call, const ProtobufCMessage *req)
{
	start(call, K_GET, ((const Keel__Vim__VmRef *)req)->vm, NULL);
}
