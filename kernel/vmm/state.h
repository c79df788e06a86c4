/*
 * The VM state module (state.c): saves and restores everything a suspend, a migration
 * or an FT checkpoint must carry. Format: docs/vm-state.md and the top of state.c.
 */
#ifndef VMM_STATE_H
#define VMM_STATE_H

#include "kernel/vmm/vmm.h"

/* Writes the whole state of a paused (or never started) VM to fd, sequentially (fd may be
 * a pipe or socket). The VM stays paused. 0 or a negative code with err set. */
int vmm_state_save(struct vmm_vm *vm, int fd, struct kb_errmsg *err);
/* Reads a state written by vmm_state_save into a VM created with the same memory size,
 * vCPU count and devices that has not run since. Every section is checked (sizes, checksums,
 * versions) before it is applied; on error the VM is returned to its freshly loaded state
 * and err says what was wrong. On success the VM is paused, ready to resume. */
int vmm_state_load(struct vmm_vm *vm, int fd, struct kb_errmsg *err);

/* Flags of the buffer variants. VMM_STATE_NO_MEMORY: the memory section is written empty
 * (no records) and, on load, must be empty and guest memory is kept as it is — for a
 * migration, whose pages travel separately. The format is unchanged. */
#define VMM_STATE_NO_MEMORY 1u

/* vmm_state_save into a memory buffer: appends the state to out. */
int vmm_state_save_buf(struct vmm_vm *vm, struct kb_buf *out, unsigned flags,
		       struct kb_errmsg *err);
/* vmm_state_load from len bytes at p (borrowed); the bytes must end with the end section. */
int vmm_state_load_buf(struct vmm_vm *vm, const void *p, size_t len, unsigned flags,
		       struct kb_errmsg *err);

/* File wrappers: save writes path.tmp, fsyncs and renames; the VM is paused around it
 * and resumed after if it was running. */
int vmm_state_save_file(struct vmm_vm *vm, const char *path, struct kb_errmsg *err);
int vmm_state_restore_file(struct vmm_vm *vm, const char *path, struct kb_errmsg *err);

#endif
