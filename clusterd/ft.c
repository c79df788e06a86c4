/*
 * This host's FT driver (docs/ft.md, "The cluster's part"): every TICK_MS it compares what
 * the replicated state says about each FT VM with the FT sessions of the local vmkernel and
 * acts, on a worker, through vmkernel's requests (kernel/vm/ft.c) and the cluster's
 * (ClusterVmRequest OP_FT_*, answered by the leader in ft_leader.c).
 *
 * As the VM's owner (the primary's host):
 *   STARTING at generation G, the secondary's host H chosen by the leader: a pairing driver
 *     (one worker per VM) waits for the VM to run here, ends a stale FT session of the vmx,
 *     asks H over the join port (STEP_FT_PREPARE, mutual TLS; the key travels only there)
 *     to start the secondary, starts the primary (VmkVmFtStart) and follows it until it is
 *     protected: OP_FT_PROTECTED(G); a failure ends the session and is OP_FT_LOST(G, why);
 *   PROTECTED, but the VM does not run here (its vmx crashed, or fenced itself when this
 *     host's heartbeat stalled) for DOWN_MS: OP_FT_FAILOVER — the secondary resumes it, as
 *     the reconciler does not restart a protected VM from its disks (that would forget
 *     output already released);
 *   PROTECTED with a test failover under way: the vmx is powered off, fenced (no ABORT,
 *     held output dropped), so the secondary sees the stream end and takes over;
 *   PROTECTED at G and the vmx says the stream is lost, for DOWN_MS: OP_FT_LOST(G) —
 *     held output stays held until the cluster has committed that this side goes on alone;
 *   not paired (NEEDS_SECONDARY, NOT_PROTECTED) while the vmx still has an FT session:
 *     VmkVmFtStop, which releases its held output. Safe: the commit that left the pairing
 *     spent its generation, so no takeover of it can ever be granted;
 *   the VM resumed here by a failover (its epoch is ft.failover_epoch) while this host
 *     holds its secondary: VmkVmFtTakeover(epoch). Any other owner change to a host holding
 *     a secondary ends the secondary (VmkVmFtStop) and the reconciler powers the VM on
 *     from its disks: only a failover may resume from a checkpoint.
 * As the secondary's host:
 *   PROTECTED at G, this host the secondary, the vmx says the primary's stream is lost:
 *     OP_FT_TAKEOVER(G), every tick until the leader decides (it refuses while the
 *     primary's host is alive);
 *   a secondary the state no longer names (FT off, another secondary, the VM gone):
 *     VmkVmFtStop.
 * Elsewhere: a vmx here that still runs the VM as an FT primary while the cluster names
 * another owner (the secondary took over) is powered off, fenced (its output was held).
 *
 * The secondary's side of a pairing (STEP_FT_PREPARE) is ft_prepare.c; what both share is
 * ft_int.h.
 *
 * Threads: the state is read on the loop; workers get copies.
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

#include "clusterd/apply.h"
#include "clusterd/daemon.h"
#include "clusterd/ft_int.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"

#define TICK_MS		50
#define RUN_WAIT_MS	60000	/* a pairing waits this long for the VM to run here */
#define PROTECT_MS	(5 * 60 * 1000) /* ...and this long for the first checkpoint */
#define REPEAT_MS	500	/* the same report is not sent more often */
#define TAKEOVER_REPEAT_MS 40	/* ...but a takeover is asked again at once */
#define IDLE_TICKS	40	/* no FT VM: the monitor runs every 2 s */
#define DOWN_MS		1000	/* a protected primary down this long here fails over */

uint64_t cd__ft_mono_ms(void)
{
	return kb_now_ns() / 1000000u;
}

void cd__ft_maybe_free(struct cd_ftd *f)
{
	if (f->stopping && f->n_busy == 0 && f->timer_closed)
		kb_free(f);
}

/* VmkVmFtStatus: role and phase ("" when the vmx runs no FT, or there is no vmx). */
void cd__ft_status(const char *sock, const char *uuid, char *role, size_t rsize, char *phase,
		      size_t psize, char *error, size_t esize)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtStatus st = KEEL__VMK__VMK_VM_FT_STATUS__INIT;
	Keel__Vmk__VmkReply *rp;

	role[0] = phase[0] = '\0';
	if (error)
		error[0] = '\0';
	st.vm = (char *)uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS;
	rq.vm_ft_status = &st;
	rp = cd_vmk_ask(sock, &rq);
	if (rp && rp->code == 0 && rp->ft) {
		snprintf(role, rsize, "%s", rp->ft->role ? rp->ft->role : "");
		snprintf(phase, psize, "%s", rp->ft->phase ? rp->ft->phase : "");
		if (error && rp->ft->error)
			snprintf(error, esize, "%s", rp->ft->error);
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* An FT session the vmx still has (primary side): anything but off. */
bool cd__ft_active_phase(const char *phase)
{
	return phase[0] && strcmp(phase, "off") != 0 && strcmp(phase, "stopped") != 0;
}

int cd__ft_stop(const char *sock, const char *uuid, char *error, size_t esize)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtStop st = KEEL__VMK__VMK_VM_FT_STOP__INIT;
	Keel__Vmk__VmkReply *rp;
	int rv;

	st.vm = (char *)uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STOP;
	rq.vm_ft_stop = &st;
	rp = cd_vmk_ask(sock, &rq);
	rv = !rp ? -EIO : rp->code;
	if (rv && error)
		cd_vmk_errtext(error, esize, rp, "FT stop");
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return rv;
}

/* ---- the pairing (owner) ---------------------------------------------------------------- */

static bool runs_here(const char *sock, const char *uuid)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	bool on = false;

	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &list;
	rp = cd_vmk_ask(sock, &rq);
	for (size_t k = 0; rp && rp->code == 0 && k < rp->n_vms; k++)
		if (strcmp(rp->vms[k]->uuid, uuid) == 0)
			on = strcmp(rp->vms[k]->power_state, "poweredOn") == 0;
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return on;
}

static void pair_work(uv_work_t *w)
{
	struct pair *g = w->data;
	struct cd_ftd *f = g->f;
	Keel__Cluster__JoinRequest jr = KEEL__CLUSTER__JOIN_REQUEST__INIT;
	Keel__Cluster__FtPrepare fp = KEEL__CLUSTER__FT_PREPARE__INIT;
	Keel__Cluster__JoinReply *jp = NULL;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtStart fs = KEEL__VMK__VMK_VM_FT_START__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kb_errmsg e = {{0}};
	uint8_t key[KEY_SIZE], id[ID_SIZE];
	char role[16], phase[32], err[200];
	uint64_t be, until;
	int rv;

	until = cd__ft_mono_ms() + RUN_WAIT_MS;
	while (!runs_here(f->vmk_sock, g->uuid)) {
		if (g->cancel || cd__ft_mono_ms() > until) {
			g->code = g->cancel ? KB_ECANCELED : KB_ETIMEOUT;
			snprintf(g->error, sizeof(g->error), "the VM does not run on its host");
			return;
		}
		kb_sleep_ns(250 * KB_NSEC_PER_MSEC);
	}
	/* A session left from an earlier pairing: its generation is spent, its end is safe. */
	cd__ft_status(f->vmk_sock, g->uuid, role, sizeof(role), phase, sizeof(phase), NULL, 0);
	if (strcmp(role, "primary") == 0 && cd__ft_active_phase(phase))
		(void)cd__ft_stop(f->vmk_sock, g->uuid, NULL, 0);
	if (RAND_bytes(key, sizeof(key)) != 1) {
		g->code = -EIO;
		snprintf(g->error, sizeof(g->error), "no random bytes for the FT key");
		return;
	}
	be = htobe64(g->gen);
	memcpy(id, &be, 8);
	if (RAND_bytes(id + 8, 8) != 1)
		memset(id + 8, 0, 8);
	fp.uuid = g->uuid;
	fp.generation = g->gen;
	fp.id.data = id;
	fp.id.len = sizeof(id);
	fp.key.data = key;
	fp.key.len = sizeof(key);
	fp.encrypt = true;
	jr.step = KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_FT_PREPARE;
	jr.ft = &fp;
	rv = cd__peer_call(f->state_dir, g->sec_addr, g->secondary, &jr, &jp, &e);
	if (rv == 0 && jp->code) {
		rv = jp->code;
		snprintf(e.msg, sizeof(e.msg), "%s", jp->error && jp->error[0] ? jp->error : "refused");
	} else if (rv == 0 && jp->n_endpoints == 0) {
		rv = KB_EPROTO;
		snprintf(e.msg, sizeof(e.msg), "it named no endpoint");
	}
	if (rv) {
		g->code = rv;
		snprintf(g->error, sizeof(g->error), "the secondary's host did not start it: %s",
			 e.msg);
		goto out;
	}
	fs.vm = g->uuid;
	fs.endpoint = jp->endpoints[0];
	fs.id.data = id;
	fs.id.len = sizeof(id);
	fs.key.data = key;
	fs.key.len = sizeof(key);
	fs.encrypt = true;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_START;
	rq.vm_ft_start = &fs;
	rp = cd_vmk_ask(f->vmk_sock, &rq);
	if (!rp || rp->code) {
		g->code = rp ? rp->code : -EIO;
		cd_vmk_errtext(g->error, sizeof(g->error), rp, "FT start");
		if (rp)
			keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		goto out;
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	until = cd__ft_mono_ms() + PROTECT_MS;
	for (;;) {
		cd__ft_status(f->vmk_sock, g->uuid, role, sizeof(role), phase, sizeof(phase), err,
			  sizeof(err));
		if (strcmp(phase, "protected") == 0)
			break;
		if (g->cancel || cd__ft_mono_ms() > until || !cd__ft_active_phase(phase) ||
		    strcmp(phase, "failed") == 0 || strcmp(phase, "lost") == 0) {
			g->code = g->cancel ? KB_ECANCELED : cd__ft_mono_ms() > until ? KB_ETIMEOUT : -EIO;
			snprintf(g->error, sizeof(g->error), "%s",
				 err[0]		   ? err
				 : g->cancel	   ? "FT changed meanwhile"
				 : phase[0]	   ? phase
						   : "the VM's vmx ended");
			/* nothing was acknowledged: no output is held, the end is safe */
			(void)cd__ft_stop(f->vmk_sock, g->uuid, NULL, 0);
			break;
		}
		kb_sleep_ns(100 * KB_NSEC_PER_MSEC);
	}
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (jp)
		keel__cluster__join_reply__free_unpacked(jp, NULL);
}

static void on_reported(struct cd_daemon *d, void *arg, int code, const char *error,
			const Keel__Cluster__ClusterVmReply *rp)
{
	(void)arg;
	(void)rp;
	if (code && code != -ESTALE && code != -EBUSY)
		kb_log(d->log, KB_LOG_WARN, "FT: telling the cluster: %s", error ? error : "refused");
}

static void report(struct cd_ftd *f, int op, const char *uuid, uint64_t gen, const char *error)
{
	Keel__Cluster__ClusterVmRequest rq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	struct kb_errmsg e = {{0}};

	rq.op = op;
	rq.uuid = (char *)uuid;
	rq.ft_generation = gen;
	rq.error = (char *)(error ? error : "");
	if (cd_node_vm_request(f->d, &rq, on_reported, NULL, &e))
		kb_log(f->d->log, KB_LOG_WARN, "FT: VM %s: %s", uuid, e.msg);
}

/* The same report is sent at most every REPEAT_MS. */
static bool repeat_ok(struct cd_ftd *f, int op, const char *uuid, uint64_t gen)
{
	uint64_t now = cd__ft_mono_ms();
	unsigned k = 0;

	for (unsigned i = 0; i < f->n_sent; i++) {
		struct sent *s = &f->sent[i];

		if (s->op == op && s->gen == gen && strcmp(s->uuid, uuid) == 0 &&
		    now - s->at_ms < (op == KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_TAKEOVER
					  ? TAKEOVER_REPEAT_MS
					  : REPEAT_MS))
			return false;
	}
	for (unsigned i = 0; i < f->n_sent; i++)
		if (now - f->sent[i].at_ms < REPEAT_MS)
			f->sent[k++] = f->sent[i];
	f->n_sent = k;
	if (f->n_sent < MON_MAX) {
		struct sent *s = &f->sent[f->n_sent++];

		snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
		s->op = op;
		s->gen = gen;
		s->at_ms = now;
	}
	return true;
}

static void pair_done(uv_work_t *w, int status)
{
	struct pair *g = w->data;
	struct cd_ftd *f = g->f;

	g->busy = false;
	f->n_busy--;
	if (status && !g->code) {
		g->code = KB_ECANCELED;
		snprintf(g->error, sizeof(g->error), "clusterd is stopping");
	}
	if (f->stopping) {
		g->used = false;
		cd__ft_maybe_free(f);
		return;
	}
	if (g->code == 0) {
		kb_log(f->d->log, KB_LOG_INFO, "FT: VM %s protected", g->name);
		report(f, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_PROTECTED, g->uuid, g->gen,
		       NULL);
	} else if (g->code != KB_ECANCELED) {
		kb_log(f->d->log, KB_LOG_WARN, "FT: VM %s: the secondary did not start: %s", g->name,
		       g->error);
		report(f, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_LOST, g->uuid, g->gen,
		       g->error);
	}
	/* the slot stays for this generation: a pairing is driven once */
}

static struct pair *pair_of(struct cd_ftd *f, const char *uuid)
{
	for (unsigned i = 0; i < PAIRS_MAX; i++)
		if (f->pairs[i].used && strcmp(f->pairs[i].uuid, uuid) == 0)
			return &f->pairs[i];
	return NULL;
}

static void pair_start(struct cd_ftd *f, const struct cd_state *s, const struct cd_vm *vm)
{
	const struct cd_host *h = cd_state_host(s, vm->ft.secondary);
	struct pair *g = pair_of(f, vm->uuid);
	char ip[32] = "";
	unsigned port = 0;

	if (g && (g->busy || g->gen == vm->ft.generation))
		return;
	if (!h || sscanf(h->vmk0, "%31[0-9.]:%u", ip, &port) != 2)
		return;
	if (!g)
		for (unsigned i = 0; i < PAIRS_MAX && !g; i++)
			if (!f->pairs[i].used)
				g = &f->pairs[i];
	if (!g)
		return; /* full: next tick */
	memset(g, 0, sizeof(*g));
	g->f = f;
	g->used = true;
	snprintf(g->uuid, sizeof(g->uuid), "%s", vm->uuid);
	snprintf(g->name, sizeof(g->name), "%s", vm->name);
	g->gen = vm->ft.generation;
	g->secondary = h->id;
	snprintf(g->sec_addr, sizeof(g->sec_addr), "%s:%u", ip, port + CD_JOIN_PORT_OFFSET);
	g->work.data = g;
	if (uv_queue_work(f->d->loop, &g->work, pair_work, pair_done) != 0) {
		g->used = false;
		return;
	}
	g->busy = true;
	f->n_busy++;
	f->pairs_started++;
	kb_log(f->d->log, KB_LOG_INFO, "FT: VM %s: starting its secondary on %s", vm->name,
	       h->name);
}

/* ---- the monitor (worker) ------------------------------------------------------------------ */

static void vm_power_off_fenced(const char *sock, const char *uuid)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmPowerOff pf = KEEL__VMK__VMK_VM_POWER_OFF__INIT;
	Keel__Vmk__VmkReply *rp;

	pf.vm = (char *)uuid;
	pf.fence = true;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF;
	rq.vm_power_off = &pf;
	rp = cd_vmk_ask(sock, &rq);
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static int takeover(const char *sock, const char *uuid, uint64_t epoch, char *error, size_t esize)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtTakeover tk = KEEL__VMK__VMK_VM_FT_TAKEOVER__INIT;
	Keel__Vmk__VmkReply *rp;
	int rv;

	tk.vm = (char *)uuid;
	tk.epoch = epoch;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_TAKEOVER;
	rq.vm_ft_takeover = &tk;
	rp = cd_vmk_ask(sock, &rq);
	rv = !rp ? -EIO : rp->code;
	if (rv)
		cd_vmk_errtext(error, esize, rp, "FT takeover");
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return rv;
}

static void mon_work(uv_work_t *w)
{
	struct cd_ftd *f = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;

	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &list;
	rp = cd_vmk_ask(f->vmk_sock, &rq);
	if (!rp || rp->code) {
		if (rp)
			keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		f->n_mon = 0;
		return;
	}
	/* Local VMs the state does not make FT VMs but that hold an FT secondary. */
	for (size_t k = 0; k < rp->n_vms && f->n_mon < MON_MAX; k++) {
		const Keel__Vmk__VmInfo *l = rp->vms[k];
		bool listed = false;

		for (unsigned i = 0; i < f->n_mon && !listed; i++)
			listed = strcmp(f->mon[i].uuid, l->uuid) == 0;
		if (!listed && strcmp(l->power_state, "ft-secondary") == 0) {
			struct mvm *m = &f->mon[f->n_mon++];

			memset(m, 0, sizeof(*m));
			snprintf(m->uuid, sizeof(m->uuid), "%s", l->uuid);
			snprintf(m->name, sizeof(m->name), "%s", l->name ? l->name : l->uuid);
		}
	}
	for (unsigned i = 0; i < f->n_mon; i++) {
		struct mvm *m = &f->mon[i];
		const Keel__Vmk__VmInfo *local = NULL;
		char role[16], phase[32], err[200];

		m->ask = 0;
		m->down = m->lost = false;
		for (size_t k = 0; k < rp->n_vms; k++)
			if (strcmp(rp->vms[k]->uuid, m->uuid) == 0)
				local = rp->vms[k];
		if (m->known && m->owner && m->state == FT_PROT && !m->test &&
		    (!local || strcmp(local->power_state, "poweredOff") == 0)) {
			/* the primary's vmx is gone while its host lives (a crash, fenced by a
			 * stalled heartbeat): the reconciler holds it (a restart from the disks
			 * would forget released output); after DOWN_MS its secondary takes over */
			m->down = true;
			continue;
		}
		if (!local)
			continue;
		cd__ft_status(f->vmk_sock, m->uuid, role, sizeof(role), phase, sizeof(phase), err,
			  sizeof(err));
		/* a secondary that took over reports role "secondary", phase "running": it is
		 * a running VM now, not a secondary */
		if (strcmp(local->power_state, "ft-secondary") == 0) {
			if (m->known && m->owner && m->resume) {
				char why[256];

				if (takeover(f->vmk_sock, m->uuid, m->epoch, why, sizeof(why)) == 0) {
					kb_log(f->d->log, KB_LOG_WARN,
					       "FT: VM %s resumed here from its secondary, epoch %" PRIu64,
					       m->name, m->epoch);
				} else {
					kb_log(f->d->log, KB_LOG_WARN,
					       "FT: VM %s: the takeover failed (%s); it starts from its "
					       "disks",
					       m->name, why);
					(void)cd__ft_stop(f->vmk_sock, m->uuid, NULL, 0);
				}
			} else if (m->known && m->owner) {
				kb_log(f->d->log, KB_LOG_INFO,
				       "FT: VM %s came here by another owner change: its secondary "
				       "ends, it starts from its disks",
				       m->name);
				(void)cd__ft_stop(f->vmk_sock, m->uuid, NULL, 0);
			} else if (m->known && m->secondary &&
				   (m->state == FT_START || m->state == FT_PROT)) {
				if (m->state == FT_PROT && strcmp(phase, "lost") == 0) {
					m->ask = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_TAKEOVER;
					snprintf(m->error, sizeof(m->error), "%s", err);
				}
			} else {
				kb_log(f->d->log, KB_LOG_INFO,
				       "FT: VM %s: the cluster no longer names this host its "
				       "secondary: it ends",
				       m->name);
				(void)cd__ft_stop(f->vmk_sock, m->uuid, NULL, 0);
			}
			continue;
		}
		if (m->known && m->owner && m->test && strcmp(local->power_state, "poweredOn") == 0) {
			kb_log(f->d->log, KB_LOG_WARN,
			       "FT: VM %s: test failover: its primary here stops (output held is "
			       "dropped); the secondary takes over",
			       m->name);
			vm_power_off_fenced(f->vmk_sock, m->uuid);
			continue;
		}
		if (m->known && m->owner && m->state == FT_PROT && !m->pairing &&
		    strcmp(local->power_state, "poweredOn") == 0 &&
		    (strcmp(role, "primary") != 0 || !cd__ft_active_phase(phase))) {
			/* no session: a vmx just gone (vmkernel has not seen it exit yet: that
			 * becomes "down") or one started again; after DOWN_MS it is lost */
			m->lost = true;
			snprintf(m->error, sizeof(m->error), "the primary's vmx has no FT session");
			continue;
		}
		if (strcmp(role, "primary") != 0 || !cd__ft_active_phase(phase) || !m->known)
			continue;
		if (!m->owner) {
			/* the secondary took over: this vmx's output was held; it goes */
			kb_log(f->d->log, KB_LOG_WARN,
			       "FT: VM %s runs elsewhere now: its former primary here is powered "
			       "off",
			       m->name);
			vm_power_off_fenced(f->vmk_sock, m->uuid);
		} else if (m->state == FT_PROT && (strcmp(phase, "lost") == 0 ||
						    strcmp(phase, "failed") == 0)) {
			/* reported after DOWN_MS: a vmx that fenced itself loses its session
			 * just before it exits, and then its secondary must take over */
			m->lost = true;
			snprintf(m->error, sizeof(m->error), "%s", err[0] ? err : phase);
		} else if (m->state == FT_START && strcmp(phase, "protected") == 0 && !m->pairing) {
			m->ask = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_PROTECTED;
		} else if ((m->state == FT_NEEDS || m->state == FT_OFF) && !m->pairing &&
			   f->pairs_started == f->mon_pairs_started) {
			char why[256] = "";

			if (cd__ft_stop(f->vmk_sock, m->uuid, why, sizeof(why)) == 0)
				kb_log(f->d->log, KB_LOG_INFO,
				       "FT: VM %s: FT session ended (%s); it runs unprotected",
				       m->name, m->state == FT_OFF ? "FT is off" : "no secondary");
			else
				kb_log(f->d->log, KB_LOG_WARN, "FT: VM %s: %s", m->name, why);
		}
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* The VM has been down here (m->down), or its session lost (m->lost), for DOWN_MS: an
 * operator's power-off has committed by then, and a vmx that fenced itself has exited. */
static bool down_long(struct cd_ftd *f, const struct mvm *m)
{
	bool bad = m->down || m->lost;

	uint64_t now = cd__ft_mono_ms();
	unsigned free_slot = DOWN_MAX;

	for (unsigned i = 0; i < DOWN_MAX; i++) {
		struct down *x = &f->down[i];

		if (x->since_ms && strcmp(x->uuid, m->uuid) == 0) {
			if (!bad) {
				x->since_ms = 0;
				return false;
			}
			return now - x->since_ms >= DOWN_MS;
		}
		if (!x->since_ms && free_slot == DOWN_MAX)
			free_slot = i;
	}
	if (bad && free_slot < DOWN_MAX) {
		snprintf(f->down[free_slot].uuid, CD_UUID_LEN + 1, "%s", m->uuid);
		f->down[free_slot].since_ms = now;
	}
	return false;
}

static void mon_done(uv_work_t *w, int status)
{
	struct cd_ftd *f = w->data;

	f->mon_busy = false;
	f->n_busy--;
	if (f->stopping || status) {
		cd__ft_maybe_free(f);
		return;
	}
	for (unsigned i = 0; i < f->n_mon; i++) {
		struct mvm *m = &f->mon[i];

		bool long_enough = down_long(f, m);

		if (long_enough && m->lost &&
		    repeat_ok(f, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_LOST, m->uuid, m->gen))
			report(f, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_LOST, m->uuid, m->gen,
			       m->error);
		if (long_enough && m->down &&
		    repeat_ok(f, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER, m->uuid, m->gen)) {
			kb_log(f->d->log, KB_LOG_WARN,
			       "FT: VM %s: its primary here stopped: asking for its secondary to take "
			       "over",
			       m->name);
			report(f, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER, m->uuid, m->gen,
			       "its primary's vmx stopped");
		}
		if (m->ask && repeat_ok(f, m->ask, m->uuid, m->gen)) {
			if (m->ask == KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_TAKEOVER)
				kb_log(f->d->log, KB_LOG_WARN,
				       "FT: VM %s: the primary's stream stopped (%s): asking to take "
				       "over",
				       m->name, m->error[0] ? m->error : "lost");
			report(f, m->ask, m->uuid, m->gen, m->error);
		}
	}
}

static void mon_start(struct cd_ftd *f, const struct cd_state *s)
{
	unsigned nv = cd_state_n_vms(s);

	f->n_mon = 0;
	f->mon_pairs_started = f->pairs_started;
	for (unsigned i = 0; i < nv && f->n_mon < MON_MAX; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, i);
		struct mvm *m;
		struct pair *g;

		if (!CD_FT_ON(vm) && !vm->ft.generation)
			continue;
		m = &f->mon[f->n_mon++];
		memset(m, 0, sizeof(*m));
		snprintf(m->uuid, sizeof(m->uuid), "%s", vm->uuid);
		snprintf(m->name, sizeof(m->name), "%s", vm->name);
		m->known = true;
		m->owner = vm->owner == f->self;
		m->secondary = vm->ft.secondary == f->self;
		m->resume = m->owner && vm->ft.failover_epoch == vm->epoch && vm->ft.failovers > 0;
		m->state = vm->ft.state;
		m->test = vm->ft.test_failover;
		m->gen = vm->ft.generation;
		m->epoch = vm->epoch;
		g = pair_of(f, vm->uuid);
		m->pairing = g && g->busy;
	}
	f->mon_work.data = f;
	if (uv_queue_work(f->d->loop, &f->mon_work, mon_work, mon_done) == 0) {
		f->mon_busy = true;
		f->n_busy++;
	}
}

/* ---- the tick ---------------------------------------------------------------------------- */

static bool ft_vms(const struct cd_state *s)
{
	unsigned nv = cd_state_n_vms(s);

	for (unsigned i = 0; i < nv; i++)
		if (CD_FT_ON(cd_state_vm_at(s, i)) || cd_state_vm_at(s, i)->ft.generation)
			return true;
	return false;
}

static void on_tick(uv_timer_t *t)
{
	struct cd_ftd *f = t->data;
	const struct cd_state *s = cd_fsm_state(&f->d->fsm);
	unsigned nv = cd_state_n_vms(s);

	if (f->stopping)
		return;
	f->self = f->d->id;
	cd__ft_prep_tick(f);
	/* pairings: drive those of this host's VMs; cancel those the state left */
	for (unsigned i = 0; i < PAIRS_MAX; i++) {
		struct pair *g = &f->pairs[i];
		const struct cd_vm *vm = g->used ? cd_state_vm(s, g->uuid) : NULL;

		if (!g->used)
			continue;
		if (!vm || vm->ft.generation != g->gen || vm->owner != f->self) {
			if (g->busy)
				g->cancel = true;
			else
				g->used = false;
		}
	}
	for (unsigned i = 0; i < nv; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, i);

		if (vm->ft.state == FT_START && vm->owner == f->self)
			pair_start(f, s, vm);
	}
	/* With no FT VM in the cluster the monitor only looks for stray secondaries, now and
	 * then: it costs vmkernel a VM list each time. */
	f->idle_ticks++;
	if (!f->mon_busy && (ft_vms(s) || f->idle_ticks >= IDLE_TICKS)) {
		f->idle_ticks = 0;
		mon_start(f, s);
	}
}

int cd_ft_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_ftd *f;

	if (d->ft)
		return 0;
	f = kb_calloc(1, sizeof(*f));
	if (!f) {
		kb_errmsg_setf(e, "FT: out of memory");
		return -ENOMEM;
	}
	f->d = d;
	f->self = d->id;
	snprintf(f->vmk_sock, sizeof(f->vmk_sock), "%.4000s/vmkernel.sock", d->state_dir);
	snprintf(f->state_dir, sizeof(f->state_dir), "%s", d->state_dir);
	uv_timer_init(d->loop, &f->timer);
	f->timer.data = f;
	uv_timer_start(&f->timer, on_tick, TICK_MS, TICK_MS);
	d->ft = f;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct cd_ftd *f = h->data;

	f->timer_closed = true;
	cd__ft_maybe_free(f);
}

void cd_ft_stop(struct cd_daemon *d)
{
	struct cd_ftd *f = d->ft;

	if (!f)
		return;
	d->ft = NULL;
	f->stopping = true;
	for (unsigned i = 0; i < PAIRS_MAX; i++)
		f->pairs[i].cancel = true;
	cd__ft_prep_cancel(f);
	uv_close((uv_handle_t *)&f->timer, on_closed);
}
