/*
 * Migrations this host takes part in (docs/vmotion.md, "The cluster's part").
 *
 * Source. Every TICK_MS the migrator looks for migration operations in the replicated
 * state whose source is this host and starts driving each once, on a worker:
 *   1. a fresh 32-byte key and the 16-byte migration id (the operation id and its epoch);
 *   2. STEP_MIGRATE_PREPARE to the destination's join port (mutual TLS, the server's
 *      certificate checked to be the destination's): the destination starts its incoming
 *      vmx and answers with the endpoints it listens on;
 *   3. VmkVmMigrateOut to this host's vmkernel, which runs the migration and commits the
 *      switchover through clusterd (OP_MIGRATE_COMMIT), blocking until it ended.
 * When a step fails, the migration is aborted (OP_MIGRATE_ABORT with the reason), again
 * each second while the operation is still in flight and the leader does not take it.
 *
 * Destination. STEP_MIGRATE_PREPARE (joinsrv_steps.c) lands in cd_migrate_prepare: the operation
 * must be in this host's replica (waited for up to PREPARE_WAIT_MS), name the calling host
 * as source and this host as destination; vmkernel's VmkVmMigrateIn starts the incoming
 * vmx. From then on the migrator watches it: once the operation is no longer in flight, a
 * VM the cluster now names this host's at the switchover's epoch whose vmx still waits for
 * the source's GO (the source died after the commit) is given the commit
 * (VmkVmMigrateCommit), and one whose migration was aborted is cancelled
 * (VmkVmMigrateCancel). Each after GRACE_MS, so the normal path goes first.
 *
 * Threads: the state is read on the loop; join-port calls and vmkernel calls run on
 * libuv's workers with copies of what they need.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "clusterd/daemon.h"
#include "kernel/cfg/cfg.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"

#define TICK_MS		100
#define MIG_MAX		64   /* migrations this host takes part in at once */
#define PREPARE_WAIT_MS 3000 /* the destination waits this long for the operation */
#define GRACE_MS	1500 /* the destination's watchdog lets the normal path go first */
#define ABORT_EVERY_MS	1000
#define KEY_SIZE	32
#define ID_SIZE		16
#define ENDPOINTS_MAX	16
#define STREAMS_DEFAULT 2 /* per VMotion adapter: one core rarely fills a 10 GbE link sealed */
#define ENDPOINT_LEN	48

enum { ROLE_FREE, ROLE_SOURCE, ROLE_DEST };
enum { DST_NONE, DST_COMMIT, DST_CANCEL };

struct mig {
	struct cd_migrator *m;
	uv_work_t work;
	int role;
	bool busy;	/* a worker runs for it */
	uint64_t op_id;
	char uuid[CD_UUID_LEN + 1];
	char name[CD_NAME_MAX + 1];
	uint64_t dst;	/* destination host */
	char dst_name[CD_NAME_MAX + 1];
	uint64_t epoch; /* the switchover's epoch (the operation's + 1) */
	/* source */
	bool finished;	/* the driver ended */
	int code;	/* its outcome */
	char error[256];
	uint64_t abort_at_ms; /* when to (re)send the abort */
	char dst_addr[64];    /* the destination's join port */
	char report[160];     /* after a switchover: its figures, for an event */
	/* destination */
	uint64_t gone_ms; /* when the operation was first seen ended (0: not yet) */
	int action;	  /* DST_* for the worker */
	bool settled;	  /* the worker saw the VM no longer incoming */
};

struct prep {
	struct prep *next;
	struct cd_migrator *m;
	uv_work_t work;
	uint64_t peer, op_id, deadline_ms;
	char uuid[CD_UUID_LEN + 1];
	uint8_t id[ID_SIZE], key[KEY_SIZE];
	uint32_t streams;
	bool encrypt;
	cd_migrate_prepared_cb cb;
	void *arg;
	/* the worker's input and output */
	char vmx_path[CD_PATH_MAX + 1];
	uint64_t epoch;
	struct mig *slot;
	int code;
	char error[256];
	size_t n_endpoints;
	char endpoints[ENDPOINTS_MAX][ENDPOINT_LEN];
};

struct cd_migrator {
	struct cd_daemon *d;
	uv_timer_t timer;
	bool stopping, timer_closed;
	unsigned n_busy; /* workers in flight (mig and prep) */
	char vmk_sock[PATH_MAX];
	char state_dir[PATH_MAX];
	struct prep *waiting; /* prepares waiting for their operation to reach the replica */
	struct mig slots[MIG_MAX];
};

static uint64_t mono_ms(void)
{
	return kb_now_ns() / 1000000u;
}

static void maybe_free(struct cd_migrator *m)
{
	if (m->stopping && m->n_busy == 0 && m->timer_closed)
		kb_free(m);
}

static struct mig *slot_of(struct cd_migrator *m, uint64_t op_id, int role)
{
	for (unsigned i = 0; i < MIG_MAX; i++)
		if (m->slots[i].role == role && m->slots[i].op_id == op_id)
			return &m->slots[i];
	return NULL;
}

static struct mig *slot_new(struct cd_migrator *m)
{
	for (unsigned i = 0; i < MIG_MAX; i++)
		if (m->slots[i].role == ROLE_FREE) {
			memset(&m->slots[i], 0, sizeof(m->slots[i]));
			m->slots[i].m = m;
			return &m->slots[i];
		}
	return NULL;
}

/* ---- source ----------------------------------------------------------------------------- */

/* This host's vMotion settings (etc/keel/advanced.conf through vmkernel; docs/vmotion.md):
 * streams per VMotion adapter and whether the streams are sealed. A file that cannot be
 * read or parsed leaves the defaults, with a warning: it never stops a migration. */
static void source_settings(struct cd_migrator *m, uint32_t *streams, bool *encrypt)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	struct vmk_cfg_advanced adv = {.log_level = -1, .migrate_encrypt = -1};
	struct kb_errmsg e = {{0}};
	Keel__Vmk__VmkReply *rp;

	*streams = STREAMS_DEFAULT;
	*encrypt = true;
	g.path = (char *)VMK_CFG_ADVANCED;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
	rq.cfg_get = &g;
	rp = cd_vmk_ask(m->vmk_sock, &rq);
	if (rp && rp->code == 0 &&
	    vmk_cfg_advanced_parse(rp->cfg_data.data, rp->cfg_data.len, &adv, &e) < 0)
		kb_log(m->d->log, KB_LOG_WARN, "migration settings: %s: %s (using the defaults)",
		       VMK_CFG_ADVANCED, e.msg);
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	if (adv.migrate_streams > 0)
		*streams = (uint32_t)adv.migrate_streams;
	if (adv.migrate_encrypt >= 0)
		*encrypt = adv.migrate_encrypt != 0;
}

static void source_work(uv_work_t *w)
{
	struct mig *g = w->data;
	struct cd_migrator *m = g->m;
	Keel__Cluster__JoinRequest jr = KEEL__CLUSTER__JOIN_REQUEST__INIT;
	Keel__Cluster__MigratePrepare mp = KEEL__CLUSTER__MIGRATE_PREPARE__INIT;
	Keel__Cluster__JoinReply *jp = NULL;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMigrateOut mo = KEEL__VMK__VMK_VM_MIGRATE_OUT__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kb_errmsg e = {{0}};
	uint8_t key[KEY_SIZE], id[ID_SIZE];
	uint32_t streams;
	bool encrypt;
	uint64_t be;
	int rv;

	source_settings(m, &streams, &encrypt);
	if (RAND_bytes(key, sizeof(key)) != 1) {
		g->code = -EIO;
		snprintf(g->error, sizeof(g->error), "no random bytes for the migration key");
		return;
	}
	be = htobe64(g->op_id);
	memcpy(id, &be, 8);
	be = htobe64(g->epoch);
	memcpy(id + 8, &be, 8);
	mp.op_id = g->op_id;
	mp.uuid = g->uuid;
	mp.id.data = id;
	mp.id.len = sizeof(id);
	mp.key.data = key;
	mp.key.len = sizeof(key);
	mp.streams_per_endpoint = streams;
	mp.encrypt = encrypt;
	jr.step = KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_MIGRATE_PREPARE;
	jr.migrate = &mp;
	rv = cd__peer_call(m->state_dir, g->dst_addr, g->dst, &jr, &jp, &e);
	if (rv == 0 && jp->code) {
		rv = jp->code;
		snprintf(e.msg, sizeof(e.msg), "%s", jp->error && jp->error[0] ? jp->error : "refused");
	} else if (rv == 0 && jp->n_endpoints == 0) {
		rv = KB_EPROTO;
		snprintf(e.msg, sizeof(e.msg), "it named no endpoint");
	}
	if (rv) {
		g->code = rv;
		snprintf(g->error, sizeof(g->error), "the destination did not prepare: %s", e.msg);
		goto out;
	}
	mo.vm = g->uuid;
	mo.op_id = g->op_id;
	mo.destination = g->dst;
	mo.id.data = id;
	mo.id.len = sizeof(id);
	mo.key.data = key;
	mo.key.len = sizeof(key);
	mo.n_endpoints = jp->n_endpoints;
	mo.endpoints = jp->endpoints;
	mo.streams_per_endpoint = streams;
	mo.encrypt = encrypt;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_OUT;
	rq.vm_migrate_out = &mo;
	rp = cd_vmk_ask(m->vmk_sock, &rq);
	if (!rp || rp->code) {
		g->code = rp ? rp->code : -EIO;
		cd_vmk_errtext(g->error, sizeof(g->error), rp, "migrate out");
	} else if (rp->migrate) {
		const Keel__Vmk__VmkMigrateInfo *f = rp->migrate;

		snprintf(g->report, sizeof(g->report),
			 "VM %s migrated to %s: downtime %.1f ms, total %.2f s, %.0f MiB in %u "
			 "rounds over %u %s stream(s)",
			 g->name, g->dst_name, (double)f->downtime_us / 1000.0,
			 (double)f->total_us / 1e6, (double)f->bytes_sent / (1 << 20), f->round,
			 (unsigned)(mo.n_endpoints * streams), encrypt ? "encrypted" : "plain");
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (jp)
		keel__cluster__join_reply__free_unpacked(jp, NULL);
}

static void on_aborted(struct cd_daemon *d, void *arg, int code, const char *error,
		       const Keel__Cluster__ClusterVmReply *rp);

static void source_done(uv_work_t *w, int status)
{
	struct mig *g = w->data;
	struct cd_migrator *m = g->m;

	g->busy = false;
	g->finished = true;
	m->n_busy--;
	if (status) {
		g->code = KB_ECANCELED;
		snprintf(g->error, sizeof(g->error), "clusterd is stopping");
	}
	if (m->stopping) {
		maybe_free(m);
		return;
	}
	if (g->code)
		kb_log(m->d->log, KB_LOG_WARN, "migration of VM %s to host %016" PRIx64 " failed: %s",
		       g->name, g->dst, g->error);
	else
		kb_log(m->d->log, KB_LOG_INFO, "migration of VM %s to host %016" PRIx64 " done%s%s",
		       g->name, g->dst, g->report[0] ? ": " : "", g->report);
	if (!g->code && g->report[0]) {
		Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
		struct kb_errmsg e = {{0}};

		rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_REPORT;
		rq.uuid = g->uuid;
		rq.error = g->report;
		if (cd_node_vm_request(m->d, &rq, on_aborted, NULL, &e))
			kb_log(m->d->log, KB_LOG_WARN, "VM %s: reporting its migration: %s", g->name,
			       e.msg);
	}
	/* An operation still in flight is aborted at the next tick after a failure; after a
	 * success it is normally gone already (a late replica is given time). */
	g->abort_at_ms = mono_ms() + (g->code ? 0 : 5000);
}

static void on_aborted(struct cd_daemon *d, void *arg, int code, const char *error,
		       const Keel__Cluster__ClusterVmReply *rp)
{
	(void)arg;
	(void)rp;
	if (code)
		kb_log(d->log, KB_LOG_WARN, "telling the cluster of a migration: %s",
		       error ? error : "refused");
}

/* The driver ended and the operation is still in flight: abort it, now and then. */
static void source_abort(struct cd_migrator *m, struct mig *g, const struct cd_op *op)
{
	Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	struct kb_errmsg e = {{0}};
	uint64_t now = mono_ms();

	if (now < g->abort_at_ms)
		return;
	g->abort_at_ms = now + ABORT_EVERY_MS;
	rq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_ABORT;
	rq.uuid = (char *)op->vm;
	rq.op_id = op->id;
	rq.error = g->code ? g->error : "the source's driver ended";
	if (cd_node_vm_request(m->d, &rq, on_aborted, NULL, &e))
		kb_log(m->d->log, KB_LOG_WARN, "aborting the migration of VM %s: %s", g->name, e.msg);
}

static void source_start(struct cd_migrator *m, const struct cd_state *s, const struct cd_op *op)
{
	const struct cd_host *dst = cd_state_host(s, op->destination);
	const struct cd_vm *vm = cd_state_vm(s, op->vm);
	struct mig *g;
	char ip[32] = "";
	unsigned port = 0;

	if (!dst || !vm || sscanf(dst->vmk0, "%31[0-9.]:%u", ip, &port) != 2)
		return;
	g = slot_new(m);
	if (!g)
		return; /* full: next tick */
	g->role = ROLE_SOURCE;
	g->op_id = op->id;
	g->dst = op->destination;
	g->epoch = op->epoch + 1;
	snprintf(g->uuid, sizeof(g->uuid), "%s", op->vm);
	snprintf(g->name, sizeof(g->name), "%s", vm->name);
	snprintf(g->dst_name, sizeof(g->dst_name), "%s", dst->name);
	snprintf(g->dst_addr, sizeof(g->dst_addr), "%s:%u", ip, port + CD_JOIN_PORT_OFFSET);
	g->work.data = g;
	if (uv_queue_work(m->d->loop, &g->work, source_work, source_done) != 0) {
		g->role = ROLE_FREE;
		return;
	}
	g->busy = true;
	m->n_busy++;
	kb_log(m->d->log, KB_LOG_INFO, "migrating VM %s to %s (operation %" PRIu64 ")", vm->name,
	       dst->name, op->id);
}

/* ---- destination ------------------------------------------------------------------------ */

static void prep_work(uv_work_t *w)
{
	struct prep *p = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMigrateIn mi = KEEL__VMK__VMK_VM_MIGRATE_IN__INIT;
	Keel__Vmk__VmkReply *rp;

	mi.vmx_path = p->vmx_path;
	mi.uuid = p->uuid;
	mi.id.data = p->id;
	mi.id.len = sizeof(p->id);
	mi.key.data = p->key;
	mi.key.len = sizeof(p->key);
	mi.streams_per_endpoint = p->streams;
	mi.encrypt = p->encrypt;
	mi.epoch = p->epoch;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_IN;
	rq.vm_migrate_in = &mi;
	rp = cd_vmk_ask(p->m->vmk_sock, &rq);
	OPENSSL_cleanse(p->key, sizeof(p->key));
	if (!rp || rp->code || !rp->migrate || rp->migrate->n_endpoints == 0) {
		p->code = !rp ? -EIO : rp->code ? rp->code : KB_EPROTO;
		if (rp && !rp->code)
			snprintf(p->error, sizeof(p->error), "vmkernel named no endpoint");
		else
			cd_vmk_errtext(p->error, sizeof(p->error), rp, "migrate in");
	} else {
		for (size_t i = 0; i < rp->migrate->n_endpoints && i < ENDPOINTS_MAX; i++)
			snprintf(p->endpoints[p->n_endpoints++], ENDPOINT_LEN, "%s",
				 rp->migrate->endpoints[i]);
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void prep_done(uv_work_t *w, int status)
{
	struct prep *p = w->data;
	struct cd_migrator *m = p->m;
	char *eps[ENDPOINTS_MAX];

	m->n_busy--;
	if (status && !p->code) {
		p->code = KB_ECANCELED;
		snprintf(p->error, sizeof(p->error), "clusterd is stopping");
	}
	if (p->code) {
		p->slot->role = ROLE_FREE;
	} else {
		p->slot->busy = false;
		kb_log(m->d->log, KB_LOG_INFO, "VM %s: incoming migration ready at %s", p->slot->name,
		       p->endpoints[0]);
	}
	for (size_t i = 0; i < p->n_endpoints; i++)
		eps[i] = p->endpoints[i];
	if (!m->stopping)
		p->cb(m->d, p->arg, p->code, p->code ? p->error : NULL, eps, p->code ? 0 : p->n_endpoints);
	else
		p->cb(m->d, p->arg, KB_ECANCELED, "clusterd is stopping", NULL, 0);
	kb_free(p);
	maybe_free(m);
}

/* The operation is in the replica: check it and start vmkernel's side. 0, or an error
 * (p not consumed). */
static int prep_go(struct cd_migrator *m, struct prep *p, const struct cd_op *op,
		   struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&m->d->fsm);
	const struct cd_vm *vm = cd_state_vm(s, op->vm);
	struct mig *g;

	if (op->kind != KEEL__CLUSTER__OP_KIND__OP_MIGRATE || strcmp(op->vm, p->uuid) != 0 ||
	    op->source != p->peer || op->destination != m->d->id || !vm) {
		kb_errmsg_setf(e, "operation %" PRIu64 " is not a migration of VM %s from the "
				  "calling host to this one",
			       p->op_id, p->uuid);
		return -EPERM;
	}
	if (slot_of(m, op->id, ROLE_DEST)) {
		kb_errmsg_setf(e, "migration %" PRIu64 " is already being received", op->id);
		return KB_EEXIST;
	}
	g = slot_new(m);
	if (!g) {
		kb_errmsg_setf(e, "this host receives %d migrations already", MIG_MAX);
		return KB_ETOOBIG;
	}
	g->role = ROLE_DEST;
	g->busy = true; /* until prep_done */
	g->op_id = op->id;
	g->epoch = op->epoch + 1;
	snprintf(g->uuid, sizeof(g->uuid), "%s", op->vm);
	snprintf(g->name, sizeof(g->name), "%s", vm->name);
	snprintf(p->vmx_path, sizeof(p->vmx_path), "%s", vm->vmx_path);
	p->epoch = g->epoch;
	p->slot = g;
	p->work.data = p;
	if (uv_queue_work(m->d->loop, &p->work, prep_work, prep_done) != 0) {
		g->role = ROLE_FREE;
		kb_errmsg_setf(e, "busy");
		return -EAGAIN;
	}
	m->n_busy++;
	return 0;
}

int cd_migrate_prepare(struct cd_daemon *d, uint64_t peer, const Keel__Cluster__MigratePrepare *rq,
		       cd_migrate_prepared_cb cb, void *arg, struct kb_errmsg *e)
{
	struct cd_migrator *m = d->mig;
	const struct cd_op *op;
	struct prep *p;
	int rv;

	if (!m || m->stopping) {
		kb_errmsg_setf(e, "this host takes no migrations now");
		return KB_ESTATE;
	}
	if (!rq || !rq->uuid || rq->id.len != ID_SIZE || rq->key.len != KEY_SIZE ||
	    rq->streams_per_endpoint < 1 || rq->streams_per_endpoint > ENDPOINTS_MAX ||
	    strlen(rq->uuid) > CD_UUID_LEN) {
		kb_errmsg_setf(e, "a migration needs its operation, VM, 16-byte id, 32-byte key "
				  "and 1..16 streams per endpoint");
		return -EINVAL;
	}
	p = kb_calloc(1, sizeof(*p));
	if (!p) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	p->m = m;
	p->peer = peer;
	p->op_id = rq->op_id;
	snprintf(p->uuid, sizeof(p->uuid), "%s", rq->uuid);
	memcpy(p->id, rq->id.data, ID_SIZE);
	memcpy(p->key, rq->key.data, KEY_SIZE);
	p->streams = rq->streams_per_endpoint;
	p->encrypt = rq->encrypt;
	p->cb = cb;
	p->arg = arg;
	op = cd_state_op(cd_fsm_state(&d->fsm), rq->op_id);
	if (op) {
		rv = prep_go(m, p, op, e);
		if (rv) {
			OPENSSL_cleanse(p, sizeof(*p));
			kb_free(p);
		}
		return rv;
	}
	/* Not applied here yet: wait for it on the ticks. */
	p->deadline_ms = mono_ms() + PREPARE_WAIT_MS;
	p->next = m->waiting;
	m->waiting = p;
	return 0;
}

/* Prepares waiting for their operation: go, or give up at the deadline. */
static void prep_tick(struct cd_migrator *m, const struct cd_state *s)
{
	struct prep **pp = &m->waiting, *p;
	uint64_t now = mono_ms();

	while ((p = *pp)) {
		const struct cd_op *op = cd_state_op(s, p->op_id);
		struct kb_errmsg e = {{0}};
		int rv;

		if (!op && now < p->deadline_ms) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (!op) {
			rv = KB_ENOTFOUND;
			kb_errmsg_setf(&e, "migration %" PRIu64 " is not in flight in this host's "
					   "view of the cluster",
				       p->op_id);
		} else {
			rv = prep_go(m, p, op, &e);
		}
		if (rv) {
			p->cb(m->d, p->arg, rv, e.msg, NULL, 0);
			OPENSSL_cleanse(p, sizeof(*p));
			kb_free(p);
		}
	}
}

static void dest_work(uv_work_t *w)
{
	struct mig *g = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;
	Keel__Vmk__VmkVmMigrateCommit mc = KEEL__VMK__VMK_VM_MIGRATE_COMMIT__INIT;
	Keel__Vmk__VmkVmMigrateCancel cc = KEEL__VMK__VMK_VM_MIGRATE_CANCEL__INIT;
	Keel__Vmk__VmkReply *rp;
	bool incoming;

	get.vm = g->uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	rq.vm_get = &get;
	rp = cd_vmk_ask(g->m->vmk_sock, &rq);
	if (!rp)
		return; /* ask again later */
	incoming = rp->code == 0 && rp->n_vms && rp->vms[0]->power_state &&
		   strcmp(rp->vms[0]->power_state, "incoming") == 0;
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	if (!incoming) {
		g->settled = true;
		return;
	}
	if (g->action == DST_COMMIT) {
		mc.vm = g->uuid;
		mc.epoch = g->epoch;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_COMMIT;
		rq.vm_migrate_commit = &mc;
	} else {
		cc.vm = g->uuid;
		cc.reason = "the migration was aborted";
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_CANCEL;
		rq.vm_migrate_cancel = &cc;
	}
	rp = cd_vmk_ask(g->m->vmk_sock, &rq);
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void dest_done(uv_work_t *w, int status)
{
	struct mig *g = w->data;
	struct cd_migrator *m = g->m;

	(void)status;
	g->busy = false;
	m->n_busy--;
	if (m->stopping) {
		maybe_free(m);
		return;
	}
	if (g->settled) {
		g->role = ROLE_FREE;
		return;
	}
	kb_log(m->d->log, KB_LOG_INFO, "VM %s: incoming migration %s by this host",
	       g->name, g->action == DST_COMMIT ? "resumed (the source is gone)" : "cancelled");
}

/* A migration being received: once its operation ended, make sure the incoming vmx does
 * not wait forever. */
static void dest_watch(struct cd_migrator *m, const struct cd_state *s, struct mig *g)
{
	const struct cd_vm *vm;
	uint64_t now = mono_ms();

	if (cd_state_op(s, g->op_id)) {
		g->gone_ms = 0;
		return;
	}
	if (!g->gone_ms)
		g->gone_ms = now;
	if (now - g->gone_ms < GRACE_MS)
		return;
	vm = cd_state_vm(s, g->uuid);
	g->action = vm && vm->owner == m->d->id && vm->epoch == g->epoch ? DST_COMMIT : DST_CANCEL;
	g->gone_ms = now - GRACE_MS + ABORT_EVERY_MS; /* next look in a second */
	g->work.data = g;
	if (uv_queue_work(m->d->loop, &g->work, dest_work, dest_done) == 0) {
		g->busy = true;
		m->n_busy++;
	}
}

/* ---- the tick ---------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
	struct cd_migrator *m = t->data;
	struct cd_daemon *d = m->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);

	if (d->phase != CD_PHASE_RUNNING || !d->ca)
		return;
	prep_tick(m, s);
	for (unsigned i = 0; i < cd_state_n_ops(s); i++) {
		const struct cd_op *op = cd_state_op_at(s, i);

		if (op->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE && op->source == d->id &&
		    !slot_of(m, op->id, ROLE_SOURCE))
			source_start(m, s, op);
	}
	for (unsigned i = 0; i < MIG_MAX; i++) {
		struct mig *g = &m->slots[i];
		const struct cd_op *op;

		if (g->role == ROLE_FREE || g->busy)
			continue;
		if (g->role == ROLE_DEST) {
			dest_watch(m, s, g);
			continue;
		}
		op = cd_state_op(s, g->op_id);
		if (!op)
			g->role = ROLE_FREE; /* switched over or ended */
		else if (g->finished)
			source_abort(m, g, op);
	}
}

int cd_migrate_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_migrator *m;

	if (d->mig)
		return 0;
	m = kb_calloc(1, sizeof(*m));
	if (!m) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	m->d = d;
	snprintf(m->vmk_sock, sizeof(m->vmk_sock), "%.4000s/vmkernel.sock", d->state_dir);
	snprintf(m->state_dir, sizeof(m->state_dir), "%s", d->state_dir);
	uv_timer_init(d->loop, &m->timer);
	m->timer.data = m;
	uv_timer_start(&m->timer, on_tick, TICK_MS, TICK_MS);
	d->mig = m;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct cd_migrator *m = h->data;

	m->timer_closed = true;
	maybe_free(m);
}

void cd_migrate_stop(struct cd_daemon *d)
{
	struct cd_migrator *m = d->mig;
	struct prep *p;

	if (!m)
		return;
	d->mig = NULL;
	m->stopping = true;
	while ((p = m->waiting)) {
		m->waiting = p->next;
		p->cb(d, p->arg, KB_ECANCELED, "clusterd is stopping", NULL, 0);
		OPENSSL_cleanse(p, sizeof(*p));
		kb_free(p);
	}
	uv_close((uv_handle_t *)&m->timer, on_closed);
}
