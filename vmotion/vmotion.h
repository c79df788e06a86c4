/*
 * Live migration as vmx uses it (docs/vmotion.md): the source side (send.c) migrates the
 * running VM out; the destination side (recv.c) receives one into a vmx started with
 * --incoming. main.c creates them and routes the control socket's VmxMigrate* requests
 * (struct vmm_mig_ops in kernel/vmm/vmm.h) to them; every call below is made on the
 * control thread, the work runs on the migration's own threads.
 */
#ifndef VMOTION_VMOTION_H
#define VMOTION_VMOTION_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/vmm/fence.h"
#include "kernel/vmm/vmm.h"
#include "lib/err.h"

/* ---- the source (send.c) -------------------------------------------------------------- */

struct vmo_source;

/* disks: the paths of the VM's disk images (borrowed for the call), flushed with
 * fdatasync at the switchover before the state is taken. */
int vmo_source_create(struct vmm_vm *vm, const char *const *disks, int nr_disks,
		      struct vmo_source **out, struct kb_errmsg *err);
/* Cancels a migration under way (the guest keeps running), joins its threads, frees. */
void vmo_source_destroy(struct vmo_source *s);

/* Starts a migration (KB_ESTATE when one is under way or the VM is not running). */
int vmo_source_out(struct vmo_source *s, const struct vmm_mig_out *rq, struct kb_errmsg *err);
void vmo_source_status(struct vmo_source *s, struct vmm_mig_status *st);
/* In phase READY: commit (GO(epoch), at most 2 s for RESUMED, then the VM stops as
 * "migrated") or not (ABORT; the guest resumes). Returns when the phase has moved on. */
int vmo_source_commit(struct vmo_source *s, bool commit, uint64_t epoch, struct kb_errmsg *err);
/* Before the commit: ends the migration, the guest keeps running (KB_ESTATE otherwise). */
int vmo_source_cancel(struct vmo_source *s, struct kb_errmsg *err);
/* Whether a migration was ever started here. */
bool vmo_source_used(struct vmo_source *s);

/* ---- the destination (recv.c) --------------------------------------------------------- */

struct vmo_dest;

/* A destination for vm (created, never started; its memory is cleared here). listen_fds:
 * listening TCP sockets (ownership passes to the destination in every case). fence: the
 * fence options (copied; their epoch is replaced by GO's) or NULL. */
int vmo_dest_create(struct vmm_vm *vm, const int *listen_fds, int nr_fds,
		    const struct vmm_fence_config *fence, struct vmo_dest **out,
		    struct kb_errmsg *err);
/* Stops the threads, closes the sockets, stops the fence started at GO, frees. */
void vmo_dest_destroy(struct vmo_dest *d);

/* Starts accepting the streams (KB_ESTATE after the first call). */
int vmo_dest_in(struct vmo_dest *d, const struct vmm_mig_in *rq, struct kb_errmsg *err);
void vmo_dest_status(struct vmo_dest *d, struct vmm_mig_status *st);
/* In phase READY: commit acts as GO(epoch) (the source is gone); not commit ends the
 * migration (the vmx exits, nothing ran). Returns when the phase has moved on. */
int vmo_dest_commit(struct vmo_dest *d, bool commit, uint64_t epoch, struct kb_errmsg *err);
enum vmm_mig_phase vmo_dest_phase(struct vmo_dest *d);

#endif
