/*
 * vMotion, vmkernel's part, the source side (docs/vmotion.md "vmkernel's part"): MigrateOut.
 * The destination and the requests of either side are in migrate.c, with the helpers both
 * sides use (migrate_int.h).
 *
 * Source (MigrateOut, blocking on a thread-pool thread): the VM powered on here and not
 * busy; VmxMigrateOut's deferred reply comes at "ready" or with the failure (the guest keeps
 * running). At "ready", in a cluster, OP_MIGRATE_COMMIT: the switchover happened iff the
 * answer names the destination as owner at the source's epoch + 1. An error or any doubt
 * asks OP_MIGRATE_ABORT and decides from that answer, asking again for as long as clusterd
 * does not answer (the guest stays paused: never guess). Standalone (op id 0, no cluster):
 * committed at epoch 0. Then VmxMigrateCommit{commit, epoch}. Committed: the vmx ends with
 * status 4, the lock is left alone (the destination's at the higher epoch), taps and cgroup
 * go and the VM leaves this host's inventory without a word to the cluster. Not committed:
 * the vmx resumed the guest; the reply is the error.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernel/core/cluster.h"
#include "kernel/net/stack_socket.h"
#include "kernel/vm/migrate_int.h"
#include "kernel/vm/vm.h"
#include "lib/time.h"

#define RETRY_MS 500 /* clusterd did not answer: ask again after this */
#define BUSY_OUT "migration"

/* Whether clusterd's answer says the switchover happened: the destination (any other
 * host when not known) owns the VM at the source's epoch + 1. */
static bool switched(const struct vmk_vm *vm, const struct vmk_cluster_vm *cv, uint64_t dest,
		     uint64_t src_epoch)
{
	bool owner =
	    dest != 0 ? cv->owner == dest : cv->owner != 0 && cv->owner != vm->host->host_id;
	return owner && (src_epoch == 0 || cv->epoch == src_epoch + 1);
}

/* At "ready": whether the switchover is committed, and at which epoch (docs/vmotion.md,
 * "The cluster's part"). Asks clusterd; never returns on a guess. */
static bool decide(struct vmk_vm *vm, uint64_t op_id, uint64_t dest, uint64_t src_epoch,
		   uint64_t *epoch, char *why, size_t why_size)
{
	struct vmk_host *h = vm->host;
	struct vmk_cluster_mig m = {.op_id = op_id};
	struct vmk_cluster_vm cv;
	struct kb_errmsg err = {{0}};
	uint64_t t0 = kb_now_ns(), logged = 0;
	int rv;

	*epoch = 0;
	if (op_id == 0) {
		snprintf(why, why_size, "standalone: no cluster operation");
		return true;
	}
	rv = vmk_cluster_migrate(h, VMK_CLUSTER_MIGRATE_COMMIT, vm->cfg.uuid, &m, &cv, &err);
	if (rv == 0 && !cv.member) {
		snprintf(why, why_size, "standalone: this host is in no cluster");
		return true;
	}
	if (rv == 0 && switched(vm, &cv, dest, src_epoch)) {
		*epoch = cv.epoch;
		snprintf(why, why_size, "committed by the cluster");
		return true;
	}
	if (rv < 0)
		snprintf(why, why_size, "the commit failed: %s", err.msg);
	else
		snprintf(why, why_size,
			 "the commit's answer names owner %016" PRIx64 " at epoch %" PRIu64,
			 cv.owner, cv.epoch);
	kb_log(h->log, KB_LOG_WARN, "VM %s: migration %" PRIu64 ": %s; asking for an abort",
	       vm->cfg.name, op_id, why);
	m.error = why;
	for (;;) {
		rv = vmk_cluster_migrate(h, VMK_CLUSTER_MIGRATE_ABORT, vm->cfg.uuid, &m, &cv, &err);
		if (rv == 0 && cv.member) {
			if (switched(vm, &cv, dest, src_epoch)) {
				*epoch = cv.epoch;
				snprintf(why, why_size,
					 "committed by the cluster (its switchover "
					 "came before the abort)");
				return true;
			}
			return false; /* why: the commit's failure */
		}
		uint64_t now = kb_now_ns();
		if (now - logged >= 10 * KB_NSEC_PER_SEC) {
			logged = now;
			kb_log(h->log, KB_LOG_WARN,
			       "VM %s: migration %" PRIu64
			       ": no outcome from clusterd after %.0f s "
			       "(%s); the guest stays paused until it answers",
			       vm->cfg.name, op_id, (double)(now - t0) / 1e9,
			       rv < 0 ? err.msg : "it says this host is in no cluster");
		}
		kb_sleep_ns((uint64_t)RETRY_MS * KB_NSEC_PER_MSEC);
	}
}

/* The netstack namespace the source's streams leave from: the first VMotion adapter's
 * ("" for defaultTcpipStack, or when none). */
static void source_netns(struct vmk_host *h, char *out, size_t size)
{
	struct vmk_net_tagged t;

	out[0] = '\0';
	if (vmk_net_tagged_lookup(h->state_dir, TAG, &t, NULL) == 0 &&
	    strcmp(t.netstack, "defaultTcpipStack") != 0)
		snprintf(out, size, "%s/netns/%s", h->state_dir, t.netstack);
}

int vmk_vm_migrate_out(struct vmk_vm *vm, const Keel__Vmk__VmkVmMigrateOut *rq,
		       Keel__Vmk__VmkMigrateInfo *info, struct kb_errmsg *err)
{
	struct vmk_host *h = vm->host;
	Keel__Vmk__VmxRequest vrq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxMigrateOut out = KEEL__VMK__VMX_MIGRATE_OUT__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	char netns[PATH_MAX], why[KB_ERRMSG_SIZE];
	uint32_t per = rq->streams_per_endpoint ? rq->streams_per_endpoint : 1;
	uint64_t src_epoch, epoch = 0;
	int rv, fd;

	if (rq->id.len != ID_SIZE || rq->key.len != KEY_SIZE) {
		kb_errmsg_setf(err,
			       "the migration id must be %d bytes and its key %d (not %zu, %zu)",
			       ID_SIZE, KEY_SIZE, rq->id.len, rq->key.len);
		return KB_ECONFIG;
	}
	if (rq->n_endpoints < 1 || rq->n_endpoints > VMK_MIG_MAX_ENDPOINTS || per > STREAMS_MAX ||
	    rq->n_endpoints * per > STREAMS_MAX) {
		kb_errmsg_setf(err,
			       "a migration needs 1..%d endpoints and at most %d streams "
			       "(%zu endpoints x %u)",
			       VMK_MIG_MAX_ENDPOINTS, STREAMS_MAX, rq->n_endpoints, per);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < rq->n_endpoints; i++) {
		const char *e = rq->endpoints[i];
		if (e == NULL || e[0] == '\0' || strlen(e) >= sizeof(vm->mig.endpoints[0]) ||
		    strchr(e, ':') == NULL) {
			kb_errmsg_setf(err, "endpoint \"%s\" is not IP:PORT", e ? e : "");
			return KB_ECONFIG;
		}
	}

	pthread_mutex_lock(&vm->lock);
	rv = vmk__vm_claim(vm, BUSY_OUT, err);
	if (rv == 0 && vm->power != VMK_POWERED_ON) {
		kb_errmsg_setf(err, "VM %s is not powered on", vm->cfg.name);
		vm->busy = NULL;
		rv = KB_ESTATE;
	}
	if (rv == 0 && rq->op_id == 0 && vm->own.host != 0) {
		kb_errmsg_setf(err,
			       "VM %s runs through the cluster (owner at epoch %" PRIu64
			       "): its migration needs the cluster's operation",
			       vm->cfg.name, vm->own.epoch);
		vm->busy = NULL;
		rv = KB_ESTATE;
	}
	if (rv < 0) {
		pthread_mutex_unlock(&vm->lock);
		return rv;
	}
	src_epoch = vm->own.host != 0 ? vm->own.epoch : 0;
	memset(&vm->mig, 0, sizeof(vm->mig));
	vm->mig.active = true;
	vm->mig.t0_ns = kb_now_ns();
	snprintf(vm->mig.phase, sizeof(vm->mig.phase), "starting");
	for (size_t i = 0; i < rq->n_endpoints; i++)
		snprintf(vm->mig.endpoints[i], sizeof(vm->mig.endpoints[i]), "%s",
			 rq->endpoints[i]);
	vm->mig.nr_endpoints = (int)rq->n_endpoints;
	pthread_mutex_unlock(&vm->lock);
	kb_log(h->log, KB_LOG_INFO, "VM %s: migrating to %s (operation %" PRIu64 ")", vm->cfg.name,
	       rq->endpoints[0], rq->op_id);

	source_netns(h, netns, sizeof(netns));
	out.id = rq->id;
	out.key = rq->key;
	out.endpoints = rq->endpoints;
	out.n_endpoints = rq->n_endpoints;
	out.streams_per_endpoint = per;
	out.encrypt = rq->encrypt;
	out.downtime_ms = rq->downtime_ms;
	out.netns = netns;
	vrq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_OUT;
	vrq.migrate_out = &out;
	fd = vmk__migrate_deferred_send(vm, &vrq, err);
	rv = fd < 0 ? fd : vmk__migrate_deferred_wait(vm, fd, &rp, err);
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&vm->lock);
	if (rp != NULL)
		vmk__migrate_note(vm, rp->migrate);
	bool ready = rv == 0 && strcmp(vm->mig.phase, "ready") == 0;
	pthread_mutex_unlock(&vm->lock);
	if (rp != NULL)
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	if (rv == 0 && !ready) {
		kb_errmsg_setf(err, "vmx answered in phase %s", vm->mig.phase);
		rv = KB_EPROTO;
	}
	if (rv < 0) {
		kb_errmsg_wrapf(err, "migration of VM %s failed", vm->cfg.name);
		pthread_mutex_lock(&vm->lock);
		bool cancelled = rv == KB_ECANCELED && vm->power == VMK_POWERED_ON;
		vmk__migrate_finish(vm, cancelled ? "aborted" : "failed", rv, err->msg);
		if (vm->power == VMK_POWERED_ON) {
			snprintf(vm->last_event, sizeof(vm->last_event),
				 "%s; it runs here as before", err->msg);
			kb_errmsg_setf(err, "%s", vm->last_event);
		}
		vm->busy = NULL;
		vmk__migrate_fill(vm, info);
		pthread_mutex_unlock(&vm->lock);
		kb_log(h->log, KB_LOG_WARN, "VM %s: %s", vm->cfg.name, err->msg);
		return rv;
	}

	/* "ready": the destination holds the whole VM, waiting for GO. */
	uint64_t t_ready = kb_now_ns();
	bool commit = decide(vm, rq->op_id, rq->destination, src_epoch, &epoch, why, sizeof(why));
	uint64_t t_decided = kb_now_ns();
	pthread_mutex_lock(&vm->lock);
	vm->mig.epoch = commit ? epoch : 0;
	if (commit)
		vm->expect_exit = true; /* the vmx ends with status 4: no crash */
	pthread_mutex_unlock(&vm->lock);
	struct kb_errmsg e2 = {{0}};
	rv = vmk__migrate_vmx_commit(vm, commit, epoch, COMMIT_CALL_MS, &e2);
	uint64_t t_committed = kb_now_ns();
	if (!commit) {
		if (rv < 0)
			kb_log(h->log, KB_LOG_ERROR,
			       "VM %s: telling its vmx the migration is not committed: %s",
			       vm->cfg.name, e2.msg);
		kb_errmsg_setf(err, "migration of VM %s not committed: %s; it runs here as before",
			       vm->cfg.name, why);
		pthread_mutex_lock(&vm->lock);
		vmk__migrate_finish(vm, "aborted", KB_ECANCELED, err->msg);
		snprintf(vm->last_event, sizeof(vm->last_event), "%s", err->msg);
		vm->busy = NULL;
		vmk__migrate_fill(vm, info);
		pthread_mutex_unlock(&vm->lock);
		kb_log(h->log, KB_LOG_WARN, "VM %s: %s", vm->cfg.name, err->msg);
		return KB_ECANCELED;
	}
	if (rv < 0)
		kb_log(h->log, KB_LOG_WARN,
		       "VM %s: the commit to its vmx: %s (the VM is the "
		       "destination's now)",
		       vm->cfg.name, e2.msg);

	/* Committed: the guest is the destination's. The vmx ends (status 4); the lock is the
	 * destination's at the higher epoch, so it is not released here. */
	char event[256];
	pthread_mutex_lock(&vm->lock);
	if (vmk__vmx_wait_exit(vm, STOP_MS) < 0 && vm->pid > 0) {
		kb_log(h->log, KB_LOG_WARN,
		       "VM %s: vmx did not end after the switchover; killing it", vm->cfg.name);
		kill(vm->pid, SIGKILL);
		vmk__vmx_wait_exit(vm, STOP_MS);
	}
	if (vm->exit_code != 4 && vm->exit_code != INT_MIN) /* INT_MIN: re-adopted, unknown */
		kb_log(h->log, KB_LOG_WARN,
		       "VM %s: vmx ended with status %d after the switchover, not 4", vm->cfg.name,
		       vm->exit_code);
	snprintf(event, sizeof(event),
		 "migrated to %s at epoch %" PRIu64 ": downtime %.1f ms, total %.0f ms, %.1f MiB",
		 vm->mig.endpoints[0], epoch, (double)vm->mig.fig.downtime_us / 1e3,
		 vm->mig.fig.total_us ? (double)vm->mig.fig.total_us / 1e3
				      : (double)(kb_now_ns() - vm->mig.t0_ns) / 1e6,
		 (double)vm->mig.fig.bytes_sent / (1024.0 * 1024.0));
	memset(&vm->own, 0, sizeof(vm->own));
	vmk__vm_release(vm, VMK_POWERED_OFF, event);
	vmk__migrate_finish(vm, "done", 0, NULL);
	vmk__migrate_fill(vm, info);
	/* busy stays: the VM leaves this host's list now (the cluster is not told: its
	 * registry names the destination already, or there is no cluster) */
	pthread_mutex_unlock(&vm->lock);
	vmk__vm_unlist(h, vm);
	kb_log(h->log, KB_LOG_INFO,
	       "VM %s: %s (%s; at \"ready\" the decision took %.1f ms, the vmx's commit %.1f ms)",
	       vm->cfg.name, event, why, (double)(t_decided - t_ready) / 1e6,
	       (double)(t_committed - t_decided) / 1e6);
	return 0;
}
