/*
 * ApplyDrsRecommendations through the Vim API (docs/hostd.md, "Placement rules and DRS"):
 * the same as `keel cluster drs apply`, to this host's clusterd.
 *
 * Happy path: on the loop, authorize (Host.Inventory.ManageCluster on the root), check the
 * request and answer at once with a Task "ApplyDrsRecommendations" on "root"; on a worker,
 * the current recommendations (all, or those of the VMs named; a VM named without one
 * fails the task) from clusterd (ClusterDrsRequest OP_RECOMMEND); then they are begun in
 * order with OP_MIGRATE_BEGIN, `parallel` at a time, each group followed in the cluster's
 * status until every migration of it ended; success when every VM moved.
 *
 * Failure modes: a request hostd can check itself (parallel, the VMs named) is
 * INVALID_ARGUMENT before a task exists, and changes nothing. Once a task exists,
 * everything ends in the task's error: no clusterd, a refusal of the plan, a VM not moved
 * (with why), or migrations still running after an hour.
 *
 * Threads: handlers and answers on the loop; clusterd is asked on libuv's workers, one step
 * at a time, through vim_drs.c's helpers (vim_drs_int.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_drs.h"
#include "hostagent/vim_drs_int.h"
#include "hostagent/vim_tasks.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vim.pb-c.h"

#define APPLY_PARALLEL_DEFAULT 2
#define APPLY_PARALLEL_MAX     16
#define APPLY_VMS_MAX	       256
#define APPLY_POLL_MS	       250
#define APPLY_WAIT_MS	       (3600u * 1000u)
#define SEEN_WAIT_MS	       5000 /* for this host's replica to show a begun migration */

static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

/* ---- ApplyDrsRecommendations: a task -------------------------------------------------------- */

enum { A_PLAN, A_RUN };

struct move {
	char uuid[40], name[NAME_LEN], to_name[NAME_LEN];
	uint64_t to;
	bool begun, seen, done, moved;
	uint64_t begun_ms;
	char why[200]; /* not moved: why */
};

struct apply {
	struct asker a;
	uv_work_t work;
	uv_timer_t timer;
	struct hd_task *task;
	int stage;
	uint32_t parallel;
	size_t n_named;
	char named[APPLY_VMS_MAX][NAME_LEN + 1];
	size_t n, next; /* moves, and the first not yet begun */
	struct move *mv;
	uint64_t started_ms;
	bool finished; /* the worker found every move ended */
};

static void apply_closed(uv_handle_t *h)
{
	struct apply *p = h->data;

	if (p->task)
		hd_task_release(p->task);
	kb_free(p->mv);
	kb_free(p);
}

static void apply_free(struct apply *p)
{
	uv_close((uv_handle_t *)&p->timer, apply_closed);
}

static bool is_named(const struct apply *p, const Keel__Cluster__DrsRecommendation *x)
{
	for (size_t i = 0; i < p->n_named; i++) {
		const char *t = hd__drs_vm_text(p->named[i]);

		if (strcmp(t, x->vm) == 0 || strcmp(t, x->vm_name) == 0)
			return true;
	}
	return false;
}

/* The recommendations to apply, in order. */
static void plan(struct apply *p)
{
	Keel__Cluster__ClusterReply *rp =
	    hd__drs_ask_view(&p->a, KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_RECOMMEND);
	const Keel__Cluster__ClusterDrsStatus *st;

	if (!rp)
		return;
	st = rp->drs;
	p->mv = kb_calloc(st->n_recommendations ? st->n_recommendations : 1, sizeof(*p->mv));
	if (!p->mv) {
		hd__drs_set_error(&p->a, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < st->n_recommendations; i++) {
		const Keel__Cluster__DrsRecommendation *x = st->recommendations[i];
		struct move *m = &p->mv[p->n];

		if (p->n_named && !is_named(p, x))
			continue;
		snprintf(m->uuid, sizeof(m->uuid), "%s", x->vm);
		snprintf(m->name, sizeof(m->name), "%s", x->vm_name);
		snprintf(m->to_name, sizeof(m->to_name), "%s", x->to_name);
		m->to = x->to;
		p->n++;
	}
	for (size_t i = 0; i < p->n_named; i++) {
		const char *t = hd__drs_vm_text(p->named[i]);
		bool found = false;

		for (size_t k = 0; k < p->n && !found; k++)
			found = strcmp(p->mv[k].uuid, t) == 0 || strcmp(p->mv[k].name, t) == 0;
		if (!found) {
			hd__drs_set_error(&p->a, HD_NOT_FOUND, "DRS recommends no move of VM %s",
					  p->named[i]);
			goto out;
		}
	}
out:
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void begin_move(struct apply *p, struct move *m)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN;
	vr.uuid = m->uuid;
	vr.destination = m->to;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rp = hd__drs_ask(&p->a, &rq);
	if (!rp) {
		/* this move's outcome, not the task's */
		m->done = true;
		snprintf(m->why, sizeof(m->why), "not begun: %s", p->a.error);
		p->a.status = HD_OK;
		return;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	m->begun = true;
	m->begun_ms = kb_now_ns() / 1000000u;
}

/* Follows the begun moves; begins the next group when this one ended. */
static void run(struct apply *p)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t now = kb_now_ns() / 1000000u;
	size_t left = 0;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rp = hd__drs_ask(&p->a, &rq);
	if (!rp) {
		p->a.status = HD_OK; /* asked again at the next poll */
		return;
	}
	for (size_t i = 0; i < p->next; i++) {
		struct move *m = &p->mv[i];

		if (!m->begun || m->done)
			continue;
		for (size_t k = 0; rp->status && k < rp->status->n_vms; k++) {
			const Keel__Cluster__ClusterVmStatus *v = rp->status->vms[k];

			if (strcmp(v->uuid, m->uuid) != 0)
				continue;
			if (v->migration) {
				m->seen = true;
				break;
			}
			if (v->owner == m->to) {
				m->done = m->moved = true;
			} else if (m->seen || now - m->begun_ms >= SEEN_WAIT_MS) {
				m->done = true;
				snprintf(m->why, sizeof(m->why),
					 "its migration ended without a switchover; it runs on %s "
					 "(the cluster's events tell why)",
					 v->owner_name);
			}
			break;
		}
		left += !m->done;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	if (left)
		return;
	if (p->next >= p->n) {
		p->finished = true;
		return;
	}
	for (uint32_t k = 0; k < p->parallel && p->next < p->n; k++)
		begin_move(p, &p->mv[p->next++]);
}

static void apply_work(uv_work_t *w)
{
	struct apply *p = w->data;

	p->a.status = HD_OK;
	if (p->stage == A_PLAN)
		plan(p);
	else
		run(p);
}

static void apply_done(uv_work_t *w, int status);

static void apply_step(struct apply *p)
{
	p->work.data = p;
	if (uv_queue_work(p->a.v->loop, &p->work, apply_work, apply_done) != 0)
		apply_done(&p->work, UV_EAGAIN);
}

static void apply_timer(uv_timer_t *t)
{
	apply_step(t->data);
}

static void apply_end(struct apply *p)
{
	struct hd_tasks *t = hd_vim_tasks(p->a.v);
	char result[256], failed[KB_ERRMSG_SIZE];
	size_t moved = 0, off = 0;

	failed[0] = '\0';
	for (size_t i = 0; i < p->n; i++) {
		if (p->mv[i].moved) {
			moved++;
			continue;
		}
		if (off < sizeof(failed))
			off += (size_t)snprintf(failed + off, sizeof(failed) - off,
						"%sVM %s was not moved to %s: %s", off ? "; " : "",
						p->mv[i].name, p->mv[i].to_name, p->mv[i].why);
	}
	kb_log(p->a.v->log, KB_LOG_INFO, "%s: DRS recommendations applied: %zu of %zu VMs moved",
	       p->task->id, moved, p->n);
	if (failed[0]) {
		hd_task_fail(t, p->task, "%zu of %zu VMs moved: %s", moved, p->n, failed);
	} else {
		if (p->n == 0)
			snprintf(result, sizeof(result), "nothing to apply");
		else
			snprintf(result, sizeof(result), "%zu VMs moved", moved);
		hd_task_succeed(t, p->task, result);
	}
	apply_free(p);
}

static void apply_done(uv_work_t *w, int status)
{
	struct apply *p = w->data;
	struct hd_tasks *t = hd_vim_tasks(p->a.v);
	size_t done = 0;

	if (status && p->a.status == HD_OK && p->stage == A_PLAN)
		hd__drs_set_error(&p->a, HD_UNAVAILABLE, "hostd is busy");
	if (p->task->state == HD_TASK_CANCELLED) { /* cancelled while queued */
		apply_free(p);
		return;
	}
	if (p->stage == A_PLAN) {
		if (p->a.status != HD_OK) {
			hd_task_fail(t, p->task, "%s", p->a.error);
			apply_free(p);
			return;
		}
		hd_task_start(t, p->task);
		kb_log(p->a.v->log, KB_LOG_INFO, "%s: applying %zu DRS recommendations",
		       p->task->id, p->n);
		p->stage = A_RUN;
		p->started_ms = kb_now_ns() / 1000000u;
		apply_step(p);
		return;
	}
	if (p->finished) {
		apply_end(p);
		return;
	}
	for (size_t i = 0; i < p->n; i++)
		done += p->mv[i].done;
	if (p->n)
		hd_task_progress(t, p->task, (uint32_t)(done * 100 / p->n));
	if (kb_now_ns() / 1000000u - p->started_ms > APPLY_WAIT_MS) {
		hd_task_fail(t, p->task,
			     "the recommended migrations still run after an hour; %zu of %zu ended "
			     "(the cluster status shows them)",
			     done, p->n);
		apply_free(p);
		return;
	}
	uv_timer_start(&p->timer, apply_timer, APPLY_POLL_MS, 0);
}

void hd_vim_apply_drs_recommendations(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__ApplyDrsRequest *rq = (const Keel__Vim__ApplyDrsRequest *)req;
	struct hd_vim *v = hd_call_server_data(call);
	struct hd_tasks *t;
	const char *user;
	struct apply *p;
	Keel__Vim__Task m;

	user = hd_vim_authorize(call, root_path, 1, MANAGE);
	if (!user)
		return;
	if (rq->parallel > APPLY_PARALLEL_MAX || rq->n_vms > APPLY_VMS_MAX) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "parallel: 1..%d (0: %d); at most %d VMs named", APPLY_PARALLEL_MAX,
			      APPLY_PARALLEL_DEFAULT, APPLY_VMS_MAX);
		return;
	}
	for (size_t i = 0; i < rq->n_vms; i++) {
		if (!rq->vms[i][0] || strlen(rq->vms[i]) > NAME_LEN) {
			hd_call_error(call, HD_INVALID_ARGUMENT,
				      "a VM named is empty or too long (ids, uuids or names)");
			return;
		}
	}
	p = kb_calloc(1, sizeof(*p));
	t = hd_vim_tasks(v);
	if (!p || !t ||
	    hd_tasks_add(t, "ApplyDrsRecommendations", HOSTD_AUTH_ROOT_ENTITY, user, &p->task) !=
		0) {
		kb_free(p);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	p->task->privilege = MANAGE;
	p->a.v = v;
	p->parallel = rq->parallel ? rq->parallel : APPLY_PARALLEL_DEFAULT;
	p->n_named = rq->n_vms;
	for (size_t i = 0; i < rq->n_vms; i++)
		snprintf(p->named[i], sizeof(p->named[i]), "%s", rq->vms[i]);
	uv_timer_init(v->loop, &p->timer);
	p->timer.data = p;
	hd_task_to_pb(p->task, &m);
	hd_call_reply(call, &m.base);
	p->stage = A_PLAN;
	apply_step(p);
}
