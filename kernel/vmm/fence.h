/*
 * Self-fencing of one vmx (fence.c): the guest runs only while its host's lease is alive
 * and its VM's lock names (this host, this epoch) — DESIGN.md §4, docs/leases.md.
 */
#ifndef VMM_FENCE_H
#define VMM_FENCE_H

#include <stdint.h>

#include "kernel/vmm/vmm.h"

struct vmm_fence_config {
	const char *hb_path;   /* this host's heartbeat record on a shared datastore */
	const char *lock_path; /* the VM's lock file, or NULL */
	const char *vm_uuid;   /* required with lock_path */
	uint64_t host_id;
	uint64_t epoch;
	uint32_t lease_ms;     /* 0: HA_LEASE_MS */
	uint32_t margin_ms;    /* 0: HA_SELF_FENCE_MARGIN_MS */
	uint32_t read_ms;      /* 0: HA_HB_INTERVAL_MS */
};

struct vmm_fence;

/* Checks that the guest may run now (the record reads, the lock holds) and starts the
 * fence thread, which stops the VM (VMM_STOP_FENCED) the moment it may not. cfg's strings
 * are borrowed for the fence's life. 0, or KB_EFENCED / -errno with err saying why. */
int vmm_fence_start(struct vmm_vm *vm, const struct vmm_fence_config *cfg,
		    struct vmm_fence **out, struct kb_errmsg *err);
/* For a VM that starts running here because the cluster committed this host as its owner
 * at epoch (a migration's GO, an FT takeover): takes the VM's lock at that epoch over a
 * lower one (cfg->lock_path, when set) and starts fencing at it (cfg->hb_path, when set).
 * cfg->epoch becomes epoch. 0, or the error of either with err saying which. */
int vmm_fence_claim(struct vmm_vm *vm, struct vmm_fence_config *cfg, uint64_t epoch,
		    struct vmm_fence **out, struct kb_errmsg *err);
/* Stops the thread and frees the fence. */
void vmm_fence_stop(struct vmm_fence *f);

#endif
