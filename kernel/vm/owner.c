/*
 * The cluster's side of power operations (DESIGN.md section 4, "One owner at a time";
 * docs/vmkernel.md "In a cluster").
 *
 * Power-on asks clusterd (kernel/core/cluster.h) OP_POWER_ON before anything starts. No
 * clusterd, or a host in no cluster: standalone, nothing more. A refusal ("VM is owned by
 * host X") fails the power-on. Placed: the cluster gave the VM to another host, whose
 * reconciler powers it on (docs/drs.md, "Initial placement"); nothing starts here, and an
 * operator's power-on succeeds saying where (the reconciler's own is refused, as before).
 * Accepted: the reply names this host H at epoch E. On a shared datastore vmkernel then
 * takes <vm dir>/.lock for (uuid, H, E) with ha_lock_acquire(), observing the holder's
 * lease itself when another host holds it at a lower epoch, and the vmx is started with
 * --fence-* so it stops its guest the moment the host's heartbeat record on that
 * datastore stops advancing or the lock moves. On a local datastore there is no shared
 * heartbeat and no lock: the registry alone.
 *
 * Lease observation: the holder's record <datastore>/.keel-hb/<holder> is read every
 * OBSERVE_READ_MS; any change of its counter between these reads is an advance (alive, at
 * once), and only a counter that stays unchanged (or unreadable) for HA_LEASE_MS +
 * OBSERVE_MARGIN_MS by our own monotonic clock is an expired lease. The watch starts from
 * the lease watcher's observation of that record (kernel/ds/leasewatch.h), which vmkernel
 * keeps for every host on its shared datastores: its counter, the time of its last change
 * and whether it was ever read. If our first read returns the same counter, the time since
 * that change counts, so a holder that stopped a lease ago is expired at once and one that
 * stopped recently is waited on for the remainder; a different counter is a change at the
 * time of our read. A holder the watcher does not know, or whose last read by the watcher
 * is more than its gap (VMK_DS_LW_GAP_MS) before our first read returns, is watched from
 * scratch. This blocks the worker for up to ~1.25 s.
 *
 * Release: after the vmx is gone (operator power-off, isolation power-off, suspend, or a
 * vmx that ended on its own other than by fencing), the lock is written released at (H,
 * E). A fenced vmx's lock is left alone: it may already name another host.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/hb.h"
#include "ha/lease.h"
#include "ha/lock.h"
#include "kernel/core/cluster.h"
#include "kernel/core/subsys.h"
#include "kernel/ds/leasewatch.h"
#include "kernel/vm/vm.h"
#include "lib/heap.h"
#include "lib/time.h"

#define OBSERVE_READ_MS	  50
#define OBSERVE_MARGIN_MS HA_HB_INTERVAL_MS

struct observe_arg {
	struct vmk_vm *vm;
	const char *ds_path;
};

/* ha_lease_lookup_cb: watches host_id's record until it advances or the lease (plus our
 * margin) passes without a change, starting from the lease watcher's observation when our
 * first read follows the watcher's last one by no more than its gap. */
static enum ha_lease_state observe_lease(void *arg, uint64_t host_id)
{
	const uint64_t gap = (uint64_t)VMK_DS_LW_GAP_MS * KB_NSEC_PER_MSEC;
	struct observe_arg *a = arg;
	struct ha_lease_observer o;
	struct vmk_ds_lw_view v;
	struct ha_hb_record rec;
	char path[HA_HB_PATH_MAX];
	bool seen = false, watched, first_read = true;
	uint64_t first = 0, start = kb_now_ns();

	if (ha_hb_path(a->ds_path, host_id, path) < 0)
		return HA_LEASE_ALIVE; /* cannot watch it: never call it expired */
	ha_lease_observer_init(&o, HA_LEASE_MS + OBSERVE_MARGIN_MS, start);
	watched = vmk_subsys_ds_lease_view(a->vm->host, a->ds_path, host_id, &v) == 0;
	for (;;) {
		int rc = ha_hb_read(path, &rec, NULL);
		uint64_t now = kb_now_ns(); /* a change is stamped when the read returned */

		if (first_read) {
			first_read = false;
			watched = watched && now >= v.last_read_ns && now - v.last_read_ns <= gap;
			if (watched) {
				/* Same clock (kb_now_ns), same rules; only the lease time is ours. */
				o.counter = v.obs.counter;
				o.seen = v.obs.seen;
				o.last_change_ns = v.obs.last_change_ns;
			}
		}
		if (rc == 0 && rec.host_id == host_id) {
			if (seen && rec.counter != first) {
				kb_log(a->vm->host->log, KB_LOG_INFO,
				       "VM %s: lock holder %016" PRIx64
				       " is alive (its counter moved)",
				       a->vm->cfg.name, host_id);
				return HA_LEASE_ALIVE;
			}
			if (!seen)
				first = rec.counter;
			seen = true;
			ha_lease_observe(&o, rec.counter, now);
		}
		if (ha_lease_state(&o, now) == HA_LEASE_EXPIRED) {
			kb_log(a->vm->host->log, KB_LOG_INFO,
			       "VM %s: lock holder %016" PRIx64 "'s lease expired (no change of %s "
			       "for %" PRIu64 " ms, %s; waited %" PRIu64 " ms)",
			       a->vm->cfg.name, host_id, path,
			       (uint64_t)(ha_lease_age_ns(&o, now) / KB_NSEC_PER_MSEC),
			       watched ? "watched in the background" : "watched from scratch",
			       (uint64_t)((now - start) / KB_NSEC_PER_MSEC));
			return HA_LEASE_EXPIRED;
		}
		kb_sleep_ns((uint64_t)OBSERVE_READ_MS * KB_NSEC_PER_MSEC);
	}
}

int vmk__owner_power_on(struct vmk_vm *vm, struct vmk_vm_owner *own, bool wanted_only,
			struct vmk_vm_placed *placed, struct kb_errmsg *err)
{
	struct vmk_host *h = vm->host;
	struct vmk_cluster_vm cv;
	struct vmk_cluster_res res;
	char ds_path[PATH_MAX];
	bool shared = false;
	int rv;

	memset(own, 0, sizeof(*own));
	pthread_mutex_lock(&vm->lock);
	res.mem_mib = vm->cfg.memsize_mib;
	res.cpu_mhz = vm->cfg.res.cpu_min_mhz;
	pthread_mutex_unlock(&vm->lock);
	rv = vmk_cluster_vm(h, wanted_only ? VMK_CLUSTER_POWER_ON_WANTED : VMK_CLUSTER_POWER_ON,
			    vm->cfg.uuid, vm->cfg.name, NULL, &res, &cv, err);
	if (rv < 0 && cv.placed && cv.owner != 0 && cv.owner != h->host_id) {
		/* placement gave it to another host (docs/drs.md, "Initial placement"): that
		 * host's reconciler powers it on; nothing starts here */
		const char *to = cv.owner_name[0] ? cv.owner_name : "another host";

		if (placed != NULL && !wanted_only) {
			/* an operator's power-on: done, once the cluster committed where */
			placed->host_id = cv.owner;
			if (cv.owner_name[0])
				snprintf(placed->host, sizeof(placed->host), "%s", cv.owner_name);
			else
				snprintf(placed->host, sizeof(placed->host), "host-%" PRIu64,
					 cv.owner);
			if (cv.placement[0])
				snprintf(placed->placement, sizeof(placed->placement), "%s",
					 cv.placement);
			else
				snprintf(placed->placement, sizeof(placed->placement),
					 "VM %s placed on %s by the cluster", vm->cfg.name,
					 placed->host);
			err->msg[0] = '\0'; /* the cluster's refusal is the success here */
			return 0;
		}
		if (cv.placement[0])
			kb_errmsg_setf(err, "%s: %s powers it on", cv.placement, to);
		else
			kb_errmsg_setf(err, "placed on %s: %s powers it on", to, to);
		return KB_ESTATE;
	}
	if (rv < 0)
		return rv;
	if (!cv.member)
		return 0; /* standalone */
	uint64_t host = cv.host_id ? cv.host_id : h->host_id;
	if (host != h->host_id) {
		kb_errmsg_setf(err,
			       "clusterd names this host %016" PRIx64
			       ", vmkernel's id is %016" PRIx64 " (clusterd.id)",
			       host, h->host_id);
		return KB_ECONFIG;
	}
	if (cv.owner != 0 && cv.owner != host) {
		kb_errmsg_setf(err, "VM is owned by host %s (%016" PRIx64 ")",
			       cv.owner_name[0] ? cv.owner_name : "?", cv.owner);
		return KB_ESTATE;
	}
	if (cv.epoch == 0) {
		kb_errmsg_setf(err, "clusterd gave no ownership epoch");
		return KB_EPROTO;
	}
	own->host = host;
	own->epoch = cv.epoch;
	rv = vmk_subsys_ds_shared(h, vm->datastore, &shared, ds_path, sizeof(ds_path));
	if (rv < 0 || !shared)
		return 0; /* a local datastore: no shared heartbeat, no lock */

	snprintf(own->lock, sizeof(own->lock), "%s/%s", vm->dir, HA_LOCK_NAME);
	rv = ha_hb_path(ds_path, host, own->hb);
	if (rv < 0) {
		kb_errmsg_setf(err, "heartbeat record on %s: %s", ds_path, kb_strerror(rv));
		return rv;
	}
	struct observe_arg oa = {.vm = vm, .ds_path = ds_path};
	struct ha_lock lk;
	rv = ha_lock_acquire(own->lock, vm->cfg.uuid, host, own->epoch, observe_lease, &oa, 0, &lk,
			     err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "the VM's lock");
		return rv;
	}
	own->fenced = true;
	kb_log(h->log, KB_LOG_INFO, "VM %s: lock %s held by %016" PRIx64 " at epoch %" PRIu64,
	       vm->cfg.name, own->lock, host, own->epoch);
	return 0;
}

void vmk__owner_release(struct vmk_vm *vm, const struct vmk_vm_owner *own)
{
	struct kb_errmsg e = {{0}};

	if (!own->fenced)
		return;
	int rv = ha_lock_release(own->lock, vm->cfg.uuid, own->host, own->epoch, 0, &e);
	if (rv < 0)
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: releasing its lock: %s", vm->cfg.name,
		       e.msg);
	else
		kb_log(vm->host->log, KB_LOG_INFO, "VM %s: lock released at epoch %" PRIu64,
		       vm->cfg.name, own->epoch);
}

void vmk__owner_release_orphan(struct vmk_vm *vm)
{
	struct vmk_host *h = vm->host;
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX];
	struct ha_lock lk;

	if (h->host_id == 0 || snprintf(path, sizeof(path), "%s/%s", vm->dir, HA_LOCK_NAME) >=
				   (int)sizeof(path))
		return;
	if (ha_lock_read(path, &lk, NULL) != 0 || lk.state != HA_LOCK_HELD ||
	    lk.host_id != h->host_id || strcmp(lk.vm_uuid, vm->cfg.uuid) != 0)
		return;
	if (ha_lock_release(path, vm->cfg.uuid, h->host_id, lk.epoch, 0, &e) < 0)
		kb_log(h->log, KB_LOG_WARN, "VM %s: releasing the lock its gone vmx held: %s",
		       vm->cfg.name, e.msg);
	else
		kb_log(h->log, KB_LOG_INFO,
		       "VM %s: its vmx was gone: lock released at epoch %" PRIu64
		       " (no vmx of this host runs it)",
		       vm->cfg.name, lk.epoch);
}

void vmk__owner_tell(struct vmk_vm *vm, int op)
{
	struct vmk_cluster_vm cv;
	struct kb_errmsg e = {{0}};

	if (vmk_cluster_vm(vm->host, (enum vmk_cluster_op)op, vm->cfg.uuid, vm->cfg.name, NULL, NULL,
			   &cv,
			   &e) < 0)
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: telling the cluster of the %s: %s",
		       vm->cfg.name, vmk_cluster_op_name((enum vmk_cluster_op)op), e.msg);
}

void vmk__owner_from_cmdline(struct vmk_vm *vm, const char *cmd, size_t n)
{
	struct vmk_vm_owner *own = &vm->own;
	const char *prev = NULL;

	memset(own, 0, sizeof(*own));
	for (size_t i = 0; i < n; i += strlen(cmd + i) + 1) {
		const char *a = cmd + i;
		if (prev != NULL && strcmp(prev, "--fence-host") == 0)
			own->host = strtoull(a, NULL, 0);
		else if (prev != NULL && strcmp(prev, "--fence-epoch") == 0)
			own->epoch = strtoull(a, NULL, 0);
		else if (prev != NULL && strcmp(prev, "--fence-lock") == 0)
			snprintf(own->lock, sizeof(own->lock), "%s", a);
		else if (prev != NULL && strcmp(prev, "--fence-hb") == 0)
			snprintf(own->hb, sizeof(own->hb), "%s", a);
		prev = a;
	}
	own->fenced = own->host != 0 && own->lock[0] != '\0' && own->hb[0] != '\0';
	if (!own->fenced)
		memset(own, 0, sizeof(*own));
}

/* ---- release after a vmx ended on its own ------------------------------------------ */

struct release_work {
	uv_work_t req;
	struct vmk_vm *vm;
	struct vmk_vm_owner own;
	bool release;	/* the lock is ours to release */
	bool guest_off; /* the guest powered itself off: the cluster's desired state follows */
};

static void release_work(uv_work_t *req)
{
	struct release_work *w = kb_container_of(req, struct release_work, req);
	struct vmk_vm *vm = w->vm;

	/* Only while nothing else runs the VM: a power-on since the exit handles the lock
	 * itself, and releasing under it would fence its new vmx. */
	pthread_mutex_lock(&vm->lock);
	bool idle = vm->busy == NULL && vm->power != VMK_POWERED_ON;
	if (idle)
		vm->busy = "lock release";
	pthread_mutex_unlock(&vm->lock);
	if (!idle)
		return;
	if (w->release)
		vmk__owner_release(vm, &w->own);
	if (w->guest_off) {
		/* Otherwise the cluster would still want it on and the reconciler would start
		 * it again: a guest's own power-off is the operator's intent too. */
		struct vmk_cluster_vm cv;
		struct kb_errmsg e = {{0}};

		if (vmk_cluster_vm(vm->host, VMK_CLUSTER_POWER_OFF, vm->cfg.uuid, vm->cfg.name, NULL,
				   NULL, &cv, &e) < 0)
			kb_log(vm->host->log, KB_LOG_WARN, "VM %s: the cluster was not told: %s",
			       vm->cfg.name, e.msg);
	}
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
}

static void release_done(uv_work_t *req, int status)
{
	(void)status;
	kb_free(kb_container_of(req, struct release_work, req));
}

void vmk__owner_after_exit(struct vmk_vm *vm)
{
	struct release_work *w;
	/* A fenced vmx (status 3) lost its lease or its lock: another host may be taking the
	 * lock right now, and a release (read, then write) could overwrite its record. A
	 * re-adopted vmx's status is unknown (INT_MIN): it may have been fenced too. */
	bool may_release = vm->exit_code != 3 && vm->exit_code != INT_MIN;
	/* Called for exits nobody asked for (operator and fence power-offs tell the cluster,
	 * or not, themselves). Status 0: the guest powered itself off. */
	bool guest_off = vm->exit_code == 0 && vm->own.host != 0;

	if ((!vm->own.fenced || !may_release) && !guest_off) {
		memset(&vm->own, 0, sizeof(vm->own));
		return;
	}
	w = kb_calloc(1, sizeof(*w));
	if (w != NULL) {
		w->vm = vm;
		w->own = vm->own;
		w->release = vm->own.fenced && may_release;
		w->guest_off = guest_off;
		if (uv_queue_work(vm->host->loop, &w->req, release_work, release_done) != 0) {
			kb_free(w);
			w = NULL;
		}
	}
	if (w == NULL)
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: cannot release its lock", vm->cfg.name);
	memset(&vm->own, 0, sizeof(vm->own));
}
