/*
 * Shared between the two files of vMotion's vmkernel part; nothing outside
 * kernel/vm/migrate*.c includes this.
 *
 *   migrate.c      the destination (MigrateIn, MigrateCommit), status and cancel on either
 *                  side, and the helpers declared below
 *   migrate_out.c  the source (MigrateOut)
 */
#ifndef VMK_MIGRATE_INT_H
#define VMK_MIGRATE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/vm/vm.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

#define COMMIT_CALL_MS 10000 /* VmxMigrateCommit: GO, then at most 2 s for RESUMED */
#define STOP_MS	       10000 /* a vmx that must end */
#define ID_SIZE	       16
#define KEY_SIZE       32
#define STREAMS_MAX    16
#define TAG	       "VMotion"

/* Copies the vmx's figures and phase into vm->mig. vm->lock held. */
void vmk__migrate_note(struct vmk_vm *vm, const Keel__Vmk__VmxMigrateReply *mr);
/* Ends the migration record with phase and, when code < 0, the error. vm->lock held. */
void vmk__migrate_finish(struct vmk_vm *vm, const char *phase, int code, const char *error);
/* Fills info from vm->mig (strings allocated). vm->lock held. */
void vmk__migrate_fill(struct vmk_vm *vm, Keel__Vmk__VmkMigrateInfo *info);
/* Sends rq to the VM's vmx on a connection of its own, for a deferred reply. The
 * descriptor, or an error. */
int vmk__migrate_deferred_send(struct vmk_vm *vm, Keel__Vmk__VmxRequest *rq, struct kb_errmsg *err);
/* Waits for the deferred reply on fd, for as long as the vmx lives. 0 and *out (freed with
 * keel__vmk__vmx_reply__free_unpacked, also on the vmx's error code, which is returned),
 * or an error saying why there is no reply. vm->lock not held. */
int vmk__migrate_deferred_wait(struct vmk_vm *vm, int fd, Keel__Vmk__VmxReply **out,
			       struct kb_errmsg *err);
/* One VmxMigrateCommit{commit, epoch} to the VM's vmx; its figures noted. vm->lock not
 * held. */
int vmk__migrate_vmx_commit(struct vmk_vm *vm, bool commit, uint64_t epoch, int timeout_ms,
			    struct kb_errmsg *err);

#endif
