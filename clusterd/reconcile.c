/*
 * The reconciler (docs/clusterd.md, "VMs through the cluster"): every second, on every
 * member, the replicated state's VMs owned by this host are made real through the local
 * vmkernel, and what vmkernel has that the cluster does not know is reported.
 *
 *   owned here, not registered in vmkernel        register its .vmx (from_cluster)
 *   owned here, desired on, powered off here      power on (vmkernel asks the cluster
 *                                                 for the epoch, takes the lock, fences)
 *   registered here, owned by another host,
 *     powered off here                            unregister here (from_cluster)
 *   registered here, unknown to the cluster       register it in the cluster (adoption:
 *                                                 VMs made before the host joined)
 *
 * A host in maintenance mode powers its VMs off the way the isolation response does
 * (fenced: the lock is released, the cluster still wants them on) and powers nothing on,
 * so the leader's HA engine moves them to other hosts (docs/ha.md).
 *
 * Runs every PERIOD_MS, and within TICK_MS when what this host owns changes (an HA
 * restart or another owner change committed), so a new owner starts its VMs at once.
 * Power-ons run in parallel, up to PARALLEL at a time, each on its own vmkernel
 * connection (vmkernel serves them on its pool).
 *
 * Nothing runs while this host is isolated: the isolation response has powered its VMs
 * off and they must stay off until the cluster is heard again. A VM whose action failed
 * is left alone for RETRY_MS, so a broken VM does not flood the log. The snapshot of the
 * state is taken on the loop thread; vmkernel is called on a worker (blocking socket).
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clusterd/daemon.h"
#include "ha/lock.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmk.pb-c.h"

#define PERIOD_MS 1000
#define TICK_MS	  50
#define RETRY_MS  10000
#define PARALLEL  32
#define BACKOFF_MAX 64
#define REFUSED_MAX 64
#define STARTED_MAX 256
#define EVAC_MAX    64 /* VMs being evacuated by vMotion (maintenance mode) */
#define EVAC_AT_ONCE 8 /* migrations begun at a time */

struct rvm { /* a VM of the state, as the worker sees it */
	char uuid[CD_UUID_LEN + 1];
	char name[CD_NAME_MAX + 1];
	char path[CD_PATH_MAX + 1];
	uint64_t owner;
	uint64_t epoch;
	int desired;
	bool migrating; /* a migration of it is in flight */
	bool ft_hold;	/* protected by FT: if it stops here, its secondary resumes it (ft.c) */
};

/* Maintenance mode moves the VMs off by vMotion first (docs/vmotion.md); a VM whose
 * migration could not begin or ended without a switchover is powered off fenced instead,
 * so HA restarts it elsewhere. */
struct evac {
	char uuid[CD_UUID_LEN + 1];
	bool begun;  /* a migration was asked for */
	bool failed; /* ...and did not move it: power it off instead */
};

struct adopt {
	char uuid[CD_UUID_LEN + 1];
	char name[CD_NAME_MAX + 1];
	char path[CD_PATH_MAX + 1];
};

struct refused { /* a power-on vmkernel refused: told to the leader (OP_START_FAILED) */
	char uuid[CD_UUID_LEN + 1];
	char why[256];
};

struct backoff {
	char uuid[CD_UUID_LEN + 1];
	uint64_t until_ms;
};

struct cd_reconciler {
	struct cd_daemon *d;
	uv_timer_t timer;
	uv_work_t work;
	bool busy, stopping;
	uint64_t self;
	bool maintenance; /* this host is in maintenance mode */
	uint64_t sig;	  /* what this host owns, hashed: a change runs at once */
	uint64_t last_ms; /* the last run */
	char sock[PATH_MAX + 32];
	struct rvm *vms;
	unsigned n_vms;
	struct adopt *adopt;
	unsigned n_adopt, cap_adopt;
	struct backoff backoff[BACKOFF_MAX];
	struct refused refused[REFUSED_MAX]; /* this run's, sent from done() */
	unsigned n_refused;
	char started[STARTED_MAX][CD_UUID_LEN + 1]; /* powered on this run: OP_STARTED */
	unsigned n_started;
	unsigned n_backoff;
	bool vmk_down_logged;
	struct evac evac[EVAC_MAX]; /* loop thread only */
	unsigned n_evac;
	char evac_req[EVAC_AT_ONCE][CD_UUID_LEN + 1]; /* this run's: begun from done() */
	unsigned n_evac_req;
	char evac_failed[EVAC_MAX][CD_UUID_LEN + 1]; /* copied for the worker */
	unsigned n_evac_failed, n_evac_inflight;
};

static uint64_t mono_ms(void)
{
	return kb_now_ns() / 1000000u;
}

static bool backed_off(struct cd_reconciler *r, const char *uuid)
{
	uint64_t now = mono_ms();

	for (unsigned i = 0; i < r->n_backoff; i++)
		if (strcmp(r->backoff[i].uuid, uuid) == 0 && r->backoff[i].until_ms > now)
			return true;
	return false;
}

static void back_off(struct cd_reconciler *r, const char *uuid)
{
	unsigned i;

	for (i = 0; i < r->n_backoff && strcmp(r->backoff[i].uuid, uuid) != 0; i++)
		;
	if (i == r->n_backoff) {
		if (r->n_backoff == BACKOFF_MAX)
			i = 0; /* full: reuse the oldest slot */
		else
			r->n_backoff++;
	}
	snprintf(r->backoff[i].uuid, sizeof(r->backoff[i].uuid), "%s", uuid);
	r->backoff[i].until_ms = mono_ms() + RETRY_MS;
}

static bool evac_failed(const struct cd_reconciler *r, const char *uuid)
{
	for (unsigned i = 0; i < r->n_evac_failed; i++)
		if (strcmp(r->evac_failed[i], uuid) == 0)
			return true;
	return false;
}

/* ---- the worker ------------------------------------------------------------------------ */

Keel__Vmk__VmkReply *cd_vmk_call(int fd, const Keel__Vmk__VmkRequest *rq)
{
	struct kb_buf in;
	Keel__Vmk__VmkReply *rp = NULL;

	if (kb_frame_send_pb(fd, &rq->base))
		return NULL;
	kb_buf_init(&in, 0);
	if (kb_frame_recv(fd, &in, 16u << 20) == 0)
		rp = keel__vmk__vmk_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	return rp;
}

Keel__Vmk__VmkReply *cd_vmk_ask(const char *sock, const Keel__Vmk__VmkRequest *rq)
{
	Keel__Vmk__VmkReply *rp;
	int fd = kb_unix_connect(sock);

	if (fd < 0)
		return NULL;
	rp = cd_vmk_call(fd, rq);
	close(fd);
	return rp;
}

void cd_vmk_errtext(char *buf, size_t size, const Keel__Vmk__VmkReply *rp, const char *what)
{
	if (!rp)
		snprintf(buf, size, "%s: vmkernel did not answer", what);
	else
		snprintf(buf, size, "%s", rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
}

/* One action; logs its outcome; false when it failed, with why (when not NULL) holding
 * vmkernel's refusal if it was one that is not a passing state ("" otherwise). */
static bool act_why(struct cd_reconciler *r, int fd, Keel__Vmk__VmkRequest *rq, const char *what,
		    const char *name, char *why, size_t size)
{
	Keel__Vmk__VmkReply *rp = cd_vmk_call(fd, rq);
	bool ok = rp && rp->code == 0;

	/* A VM vmkernel no longer has needs no unregister (it left with a migration). */
	if (rp && rp->code == KB_ENOTFOUND &&
	    rq->req_case == KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER) {
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		return true;
	}

	if (why) {
		why[0] = '\0';
		if (rp && rp->code && rp->code != KB_ESTATE)
			snprintf(why, size, "%s", rp->error && rp->error[0] ? rp->error : "refused");
	}

	kb_log(r->d->log, ok ? KB_LOG_INFO : KB_LOG_WARN, "reconcile: %s VM %s%s%s", what, name,
	       ok ? "" : ": ", ok ? "" : rp && rp->error ? rp->error : "vmkernel did not answer");
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return ok;
}

static bool act(struct cd_reconciler *r, int fd, Keel__Vmk__VmkRequest *rq, const char *what,
		const char *name)
{
	return act_why(r, fd, rq, what, name, NULL, 0);
}

static void note_refused(struct cd_reconciler *r, const char *uuid, const char *why)
{
	struct refused *x;

	if (!why[0] || r->n_refused >= REFUSED_MAX)
		return;
	x = &r->refused[r->n_refused++];
	snprintf(x->uuid, sizeof(x->uuid), "%s", uuid);
	snprintf(x->why, sizeof(x->why), "%s", why);
}

static const struct rvm *state_vm(const struct cd_reconciler *r, const char *uuid)
{
	for (unsigned i = 0; i < r->n_vms; i++)
		if (strcmp(r->vms[i].uuid, uuid) == 0)
			return &r->vms[i];
	return NULL;
}

/* Parallel power-ons: each thread takes the next VM and asks vmkernel on its own
 * connection; failures are backed off after all threads end (back_off is not shared). */
struct pon_run {
	struct cd_reconciler *r;
	const struct rvm **v;
	bool *failed; /* else started */
	char (*why)[256]; /* vmkernel's refusal, "" when none worth telling the leader */
	unsigned n;
	atomic_uint next;
};

static void *pon_thread(void *arg)
{
	struct pon_run *p = arg;
	int fd = -1;

	for (;;) {
		unsigned i = atomic_fetch_add(&p->next, 1);
		Keel__Vmk__VmkReply *rp;
		bool ok;
		Keel__Vmk__VmkRequest on = KEEL__VMK__VMK_REQUEST__INIT;
		Keel__Vmk__VmkVmPowerOn po = KEEL__VMK__VMK_VM_POWER_ON__INIT;

		if (i >= p->n)
			break;
		if (fd < 0)
			fd = kb_unix_connect(p->r->sock);
		po.vm = (char *)p->v[i]->uuid;
		po.reconcile = true; /* this pass's view may be older than a power-off */
		on.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON;
		on.vm_power_on = &po;
		rp = fd >= 0 ? cd_vmk_call(fd, &on) : NULL;
		ok = rp && rp->code == 0;
		kb_log(p->r->d->log, ok ? KB_LOG_INFO : KB_LOG_WARN,
		       "reconcile: powered on (desired on) VM %s%s%s", p->v[i]->name, ok ? "" : ": ",
		       ok ? "" : rp && rp->error ? rp->error : "vmkernel did not answer");
		if (!ok) {
			p->failed[i] = true;
			/* vmkernel refused it here (not a passing state such as another
			 * operation in progress): the leader may place it elsewhere */
			if (rp && rp->code != KB_ESTATE)
				snprintf(p->why[i], sizeof(p->why[i]), "%s",
					 rp->error && rp->error[0] ? rp->error : "refused");
			if (fd >= 0)
				close(fd); /* a failed exchange may leave the stream out of step */
			fd = -1;
		}
		if (rp)
			keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void power_on_all(struct cd_reconciler *r, const struct rvm **v, unsigned n)
{
	struct pon_run p = {.r = r, .v = v, .n = n};
	pthread_t th[PARALLEL];
	unsigned nt = 0;
	sigset_t all, old;

	if (n == 0)
		return;
	p.failed = kb_calloc(n, sizeof(*p.failed));
	p.why = kb_calloc(n, sizeof(*p.why));
	if (!p.failed || !p.why) {
		kb_free(p.failed);
		kb_free(p.why);
		return;
	}
	atomic_init(&p.next, 0);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; n > 1 && nt < PARALLEL && nt < n; nt++)
		if (pthread_create(&th[nt], NULL, pon_thread, &p))
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pon_thread(&p); /* this thread works too (and alone when threads cannot start) */
	for (unsigned i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = 0; i < n; i++) {
		if (!p.failed[i]) {
			if (r->n_started < STARTED_MAX)
				snprintf(r->started[r->n_started++], sizeof(r->started[0]), "%s",
					 v[i]->uuid);
			continue;
		}
		back_off(r, v[i]->uuid);
		note_refused(r, v[i]->uuid, p.why[i]);
	}
	kb_free(p.failed);
	kb_free(p.why);
}

/* A host in maintenance mode lets go of a VM the cluster wants on: powered on here, it is
 * powered off fenced (its lock released, the cluster still wanting it on), so HA restarts
 * it elsewhere; already off here but its lock still ours (its vmx ended by fencing, which
 * leaves the lock alone), the lock is released, as no vmx for it runs here. */
static void maintenance_let_go(struct cd_reconciler *r, int fd, const struct rvm *v,
			       const Keel__Vmk__VmInfo *local)
{
	if (strcmp(local->power_state, "poweredOn") == 0) {
		Keel__Vmk__VmkRequest off = KEEL__VMK__VMK_REQUEST__INIT;
		Keel__Vmk__VmkVmPowerOff pf = KEEL__VMK__VMK_VM_POWER_OFF__INIT;

		pf.vm = (char *)v->uuid;
		pf.fence = true;
		off.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF;
		off.vm_power_off = &pf;
		act(r, fd, &off, "powered off for maintenance mode", v->name);
	} else if (strcmp(local->power_state, "poweredOff") == 0) {
		char dir[CD_PATH_MAX + 1], path[CD_PATH_MAX + 16];
		struct ha_lock lk;
		struct kb_errmsg e = {{0}};

		snprintf(dir, sizeof(dir), "%s", v->path);
		snprintf(path, sizeof(path), "%s/%s", dirname(dir), HA_LOCK_NAME);
		if (ha_lock_read(path, &lk, NULL) == 0 && lk.state == HA_LOCK_HELD &&
		    lk.host_id == r->self && lk.epoch == v->epoch) {
			if (ha_lock_release(path, v->uuid, r->self, v->epoch, 0, &e) == 0)
				kb_log(r->d->log, KB_LOG_INFO,
				       "reconcile: VM %s is off here: lock released for maintenance "
				       "mode",
				       v->name);
			else
				kb_log(r->d->log, KB_LOG_WARN, "reconcile: VM %s: %s", v->name, e.msg);
		}
	}
}

static void work(uv_work_t *w)
{
	struct cd_reconciler *r = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	const struct rvm **pon = kb_calloc(r->n_vms ? r->n_vms : 1, sizeof(*pon));
	unsigned n_pon = 0;
	int fd = kb_unix_connect(r->sock);

	r->n_adopt = 0;
	r->n_refused = 0;
	r->n_started = 0;
	if (fd < 0 || !pon) {
		if (fd >= 0)
			close(fd);
		kb_free(pon);
		return;
	}
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &list;
	rp = cd_vmk_call(fd, &rq);
	if (!rp || rp->code) {
		if (rp)
			keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		close(fd);
		kb_free(pon);
		return;
	}
	/* Owned here: registered and, when wanted, running. */
	for (unsigned i = 0; i < r->n_vms; i++) {
		const struct rvm *v = &r->vms[i];
		const Keel__Vmk__VmInfo *local = NULL;

		if (v->owner != r->self)
			continue;
		for (size_t k = 0; k < rp->n_vms; k++)
			if (strcmp(rp->vms[k]->uuid, v->uuid) == 0)
				local = rp->vms[k];
		/* Maintenance mode goes first, whatever failed before: it must not wait. A
		 * running VM is moved by vMotion; one that could not be is let go (powered off
		 * fenced, restarted elsewhere by HA). */
		if (r->maintenance && local && v->desired == KEEL__CLUSTER__POWER_STATE__POWER_ON) {
			if (strcmp(local->power_state, "poweredOn") == 0 && !evac_failed(r, v->uuid)) {
				if (!v->migrating && r->n_evac_req + r->n_evac_inflight < EVAC_AT_ONCE)
					snprintf(r->evac_req[r->n_evac_req++], CD_UUID_LEN + 1, "%s",
						 v->uuid);
				continue;
			}
			maintenance_let_go(r, fd, v, local);
			continue;
		}
		if (backed_off(r, v->uuid))
			continue;
		if (!local) {
			Keel__Vmk__VmkRequest reg = KEEL__VMK__VMK_REQUEST__INIT;
			Keel__Vmk__VmkVmRegister rr = KEEL__VMK__VMK_VM_REGISTER__INIT;

			rr.vmx_path = (char *)v->path;
			rr.from_cluster = true;
			reg.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER;
			reg.vm_register = &rr;
			char why[256];

			if (!act_why(r, fd, &reg, "registered (the cluster names this host its owner)",
				     v->name, why, sizeof(why))) {
				back_off(r, v->uuid);
				if (v->desired == KEEL__CLUSTER__POWER_STATE__POWER_ON)
					note_refused(r, v->uuid, why);
				continue;
			}
		}
		if (!r->maintenance && v->desired == KEEL__CLUSTER__POWER_STATE__POWER_ON &&
		    !v->ft_hold && (!local || strcmp(local->power_state, "poweredOff") == 0) &&
		    n_pon < r->n_vms)
			pon[n_pon++] = v;
	}
	power_on_all(r, pon, n_pon);
	/* Here but not ours: let go of what is stopped; report what the cluster lacks. */
	for (size_t k = 0; k < rp->n_vms; k++) {
		const Keel__Vmk__VmInfo *local = rp->vms[k];
		const struct rvm *v = state_vm(r, local->uuid);

		if (backed_off(r, local->uuid))
			continue;
		if (v && v->owner != r->self && strcmp(local->power_state, "poweredOff") == 0) {
			Keel__Vmk__VmkRequest un = KEEL__VMK__VMK_REQUEST__INIT;
			Keel__Vmk__VmkVmUnregister ur = KEEL__VMK__VMK_VM_UNREGISTER__INIT;

			ur.vm = local->uuid;
			ur.from_cluster = true;
			un.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER;
			un.vm_unregister = &ur;
			if (!act(r, fd, &un, "unregistered here (another host owns it)",
				 local->name))
				back_off(r, local->uuid);
		} else if (!v && local->vmx_path && local->vmx_path[0]) {
			struct adopt *a;

			if (r->n_adopt == r->cap_adopt) {
				unsigned cap = r->cap_adopt ? 2 * r->cap_adopt : 16;

				a = kb_realloc(r->adopt, cap * sizeof(*a));
				if (!a)
					break;
				r->adopt = a;
				r->cap_adopt = cap;
			}
			a = &r->adopt[r->n_adopt++];
			snprintf(a->uuid, sizeof(a->uuid), "%s", local->uuid);
			snprintf(a->name, sizeof(a->name), "%s", local->name);
			snprintf(a->path, sizeof(a->path), "%s", local->vmx_path);
		}
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	close(fd);
	kb_free(pon);
}

/* ---- the loop side ------------------------------------------------------------------------ */

static void on_adopted(struct cd_daemon *d, void *arg, int code, const char *error,
		       const Keel__Cluster__ClusterVmReply *rp)
{
	struct cd_reconciler *r = d->rec;
	char *uuid = arg;

	(void)rp;
	if (code) {
		kb_log(d->log, KB_LOG_WARN, "reconcile: VM %s cannot join the cluster's registry: %s",
		       uuid, error);
		if (r)
			back_off(r, uuid);
	} else {
		kb_log(d->log, KB_LOG_INFO, "reconcile: VM %s registered in the cluster", uuid);
	}
	kb_free(uuid);
}

static void on_told(struct cd_daemon *d, void *arg, int code, const char *error,
		    const Keel__Cluster__ClusterVmReply *rp)
{
	(void)rp;
	if (code)
		kb_log(d->log, KB_LOG_WARN, "reconcile: telling the cluster about VM %s: %s",
		       (char *)arg, error);
	kb_free(arg);
}

static struct evac *evac_find(struct cd_reconciler *r, const char *uuid)
{
	for (unsigned i = 0; i < r->n_evac; i++)
		if (strcmp(r->evac[i].uuid, uuid) == 0)
			return &r->evac[i];
	return NULL;
}

struct evac_arg {
	struct cd_reconciler *r;
	char uuid[CD_UUID_LEN + 1];
};

static void on_evac_begun(struct cd_daemon *d, void *arg, int code, const char *error,
			  const Keel__Cluster__ClusterVmReply *rp)
{
	struct evac_arg *a = arg;
	struct evac *ev = d->rec == a->r ? evac_find(a->r, a->uuid) : NULL;

	(void)rp;
	if (code) {
		kb_log(d->log, KB_LOG_WARN,
		       "reconcile: maintenance mode: VM %s cannot be migrated (%s): powering it "
		       "off for HA to restart elsewhere",
		       a->uuid, error ? error : "refused");
		if (ev)
			ev->failed = true;
	} else {
		kb_log(d->log, KB_LOG_INFO, "reconcile: maintenance mode: migrating VM %s away",
		       a->uuid);
	}
	kb_free(a);
}

/* Asks the cluster to move VM uuid off this host (the cluster picks where). */
static void evac_begin(struct cd_reconciler *r, const char *uuid)
{
	Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	struct kb_errmsg e = {{0}};
	struct evac *ev = evac_find(r, uuid);
	struct evac_arg *a;

	if (!ev) {
		if (r->n_evac == EVAC_MAX)
			return;
		size_t n = strnlen(uuid, CD_UUID_LEN);

		ev = &r->evac[r->n_evac++];
		memset(ev, 0, sizeof(*ev));
		memcpy(ev->uuid, uuid, n); /* uuid may be r->evac_req[]: not one buffer */
	}
	if (ev->begun || ev->failed)
		return;
	a = kb_calloc(1, sizeof(*a));
	if (!a)
		return;
	a->r = r;
	snprintf(a->uuid, sizeof(a->uuid), "%s", uuid);
	ev->begun = true;
	rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN;
	rq.uuid = (char *)uuid;
	if (cd_node_vm_request(r->d, &rq, on_evac_begun, a, &e)) {
		kb_log(r->d->log, KB_LOG_WARN, "reconcile: VM %s: %s", uuid, e.msg);
		ev->failed = true;
		kb_free(a);
	}
}

/* The evacuations as the state now shows them: a begun one whose migration is no longer
 * in flight either moved the VM (forgotten) or did not (failed: powered off instead). Out
 * of maintenance mode everything is forgotten. */
static void evac_update(struct cd_reconciler *r, const struct cd_state *s, bool maintenance)
{
	unsigned k = 0;

	r->n_evac_inflight = 0;
	for (unsigned i = 0; i < r->n_evac; i++) {
		struct evac *ev = &r->evac[i];
		const struct cd_vm *vm = cd_state_vm(s, ev->uuid);
		const struct cd_op *op = vm ? cd_state_op_for_vm(s, ev->uuid) : NULL;

		if (!maintenance || !vm || vm->owner != r->d->id)
			continue; /* moved, gone, or maintenance over */
		if (ev->begun && !ev->failed && op)
			r->n_evac_inflight++;
		else if (ev->begun && !op && !ev->failed)
			ev->failed = true; /* ended without a switchover */
		r->evac[k++] = *ev;
	}
	r->n_evac = k;
	r->n_evac_failed = 0;
	for (unsigned i = 0; i < r->n_evac; i++)
		if (r->evac[i].failed) /* two fields of r: memcpy, not one buffer */
			memcpy(r->evac_failed[r->n_evac_failed++], r->evac[i].uuid,
			       sizeof(r->evac[i].uuid));
}

static void done(uv_work_t *w, int status)
{
	struct cd_reconciler *r = w->data;
	struct cd_daemon *d = r->d;

	r->busy = false;
	if (r->stopping) {
		kb_free(r->vms);
		kb_free(r->adopt);
		kb_free(r);
		return;
	}
	for (unsigned i = 0; status == 0 && i < r->n_refused; i++) {
		Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
		struct kb_errmsg e = {{0}};
		char *uuid = kb_strdup(r->refused[i].uuid);

		if (!uuid)
			break;
		rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_START_FAILED;
		rq.uuid = r->refused[i].uuid;
		rq.error = r->refused[i].why;
		if (cd_node_vm_request(d, &rq, on_told, uuid, &e)) {
			kb_free(uuid);
			kb_log(d->log, KB_LOG_WARN, "reconcile: VM %s: %s", r->refused[i].uuid, e.msg);
		}
	}
	r->n_refused = 0;
	for (unsigned i = 0; status == 0 && i < r->n_started; i++) {
		Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
		struct kb_errmsg e = {{0}};
		char *uuid = kb_strdup(r->started[i]);

		if (!uuid)
			break;
		rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_STARTED;
		rq.uuid = r->started[i];
		if (cd_node_vm_request(d, &rq, on_told, uuid, &e)) {
			kb_free(uuid);
			kb_log(d->log, KB_LOG_WARN, "reconcile: VM %s: %s", r->started[i], e.msg);
		}
	}
	r->n_started = 0;
	for (unsigned i = 0; status == 0 && i < r->n_evac_req; i++)
		evac_begin(r, r->evac_req[i]);
	r->n_evac_req = 0;
	for (unsigned i = 0; status == 0 && i < r->n_adopt; i++) {
		Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
		struct kb_errmsg e = {{0}};
		char *uuid = kb_strdup(r->adopt[i].uuid);

		if (!uuid)
			break;
		rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_REGISTER;
		rq.uuid = r->adopt[i].uuid;
		rq.name = r->adopt[i].name;
		rq.vmx_path = r->adopt[i].path;
		back_off(r, r->adopt[i].uuid); /* one attempt per RETRY_MS */
		if (cd_node_vm_request(d, &rq, on_adopted, uuid, &e)) {
			kb_free(uuid);
			kb_log(d->log, KB_LOG_WARN, "reconcile: VM %s: %s", r->adopt[i].name, e.msg);
		}
	}
}

static void on_tick(uv_timer_t *t)
{
	struct cd_reconciler *r = t->data;
	struct cd_daemon *d = r->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	int64_t age;
	unsigned n;
	struct rvm *v;

	const struct cd_host *self;
	uint64_t sig = 1469598103934665603ull, now = mono_ms();

	if (r->busy || d->phase != CD_PHASE_RUNNING || !s->config.set ||
	    !(self = cd_state_host(s, d->id)) || cd_hbnet_isolated(d, &age))
		return;
	/* what this host owns (and its maintenance flag), hashed: run at once on a change */
	n = cd_state_n_vms(s);
	for (unsigned i = 0; i < n; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, i);

		if (vm->owner != d->id)
			continue;
		for (const char *c = vm->uuid; *c; c++)
			sig = (sig ^ (uint8_t)*c) * 1099511628211ull;
		sig = (sig ^ vm->epoch) * 1099511628211ull;
		sig = (sig ^ (uint64_t)vm->desired_power) * 1099511628211ull;
	}
	sig = (sig ^ (uint64_t)self->maintenance) * 1099511628211ull;
	if (sig == r->sig && now - r->last_ms < PERIOD_MS)
		return;
	r->sig = sig;
	r->last_ms = now;
	r->maintenance = self->maintenance;
	v = kb_realloc(r->vms, (n ? n : 1) * sizeof(*v));
	if (!v)
		return;
	r->vms = v;
	r->n_vms = n;
	for (unsigned i = 0; i < n; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, i);

		snprintf(v[i].uuid, sizeof(v[i].uuid), "%s", vm->uuid);
		snprintf(v[i].name, sizeof(v[i].name), "%s", vm->name);
		snprintf(v[i].path, sizeof(v[i].path), "%s", vm->vmx_path);
		v[i].owner = vm->owner;
		v[i].epoch = vm->epoch;
		v[i].desired = vm->desired_power;
		v[i].migrating = cd_state_op_for_vm(s, vm->uuid) != NULL;
		v[i].ft_hold = vm->ft.state == KEEL__CLUSTER__FT_STATE__FT_PROTECTED;
	}
	evac_update(r, s, self->maintenance);
	r->self = d->id;
	r->work.data = r;
	if (uv_queue_work(d->loop, &r->work, work, done) == 0)
		r->busy = true;
}

int cd_reconcile_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_reconciler *r;

	if (d->rec)
		return 0;
	r = kb_calloc(1, sizeof(*r));
	if (!r) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	r->d = d;
	snprintf(r->sock, sizeof(r->sock), "%.4000s/vmkernel.sock", d->state_dir);
	uv_timer_init(d->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, on_tick, TICK_MS, TICK_MS);
	d->rec = r;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct cd_reconciler *r = h->data;

	if (r->busy)
		return; /* the worker's done() frees it */
	kb_free(r->vms);
	kb_free(r->adopt);
	kb_free(r);
}

void cd_reconcile_stop(struct cd_daemon *d)
{
	struct cd_reconciler *r = d->rec;

	if (!r)
		return;
	d->rec = NULL;
	r->stopping = true;
	uv_close((uv_handle_t *)&r->timer, on_closed);
}
