/*
 * FT as vmx uses it (docs/ft.md): the primary side (primary.c) protects the running VM
 * with checkpoints sent to a secondary; the secondary side (secondary.c) receives them in a
 * vmx started with --ft-secondary and takes over when told. main.c creates them and routes
 * the control socket's VmxFt* requests (struct vmm_ft_ops in kernel/vmm/vmm.h) to them;
 * every call below is made on the control thread, the work runs on FT's own threads.
 */
#ifndef FT_FT_H
#define FT_FT_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/vmm/fence.h"
#include "kernel/vmm/vmm.h"
#include "lib/err.h"

#define FT_EPOCH_MS_DEFAULT 20
#define FT_EPOCH_MS_MAX	    1000

/* ---- the primary (primary.c) ---------------------------------------------------------- */

struct ft_primary;

/* disks: the paths of the VM's disk images in virtio-blk order (borrowed for the call),
 * read for the initial copy. */
int ft_primary_create(struct vmm_vm *vm, const char *const *disks, int nr_disks,
		      struct ft_primary **out, struct kb_errmsg *err);
/* Ends FT (held output is released: the VM stays here), joins the threads, frees. */
void ft_primary_destroy(struct ft_primary *p);
/* Starts protecting the running VM (KB_ESTATE when FT is under way or the VM is not
 * running). Returns once the stream is open; the sync and the checkpoints go on. */
int ft_primary_start(struct ft_primary *p, const struct vmm_ft_start *rq, struct kb_errmsg *err);
void ft_primary_status(struct ft_primary *p, struct vmm_ft_status *st);
/* FT ends here; the output held so far goes out and the VM runs on unprotected. */
int ft_primary_stop(struct ft_primary *p, struct kb_errmsg *err);

/* ---- the secondary (secondary.c) ------------------------------------------------------ */

struct ft_secondary;

/* A secondary for vm (created, never started). listen_fd: a listening TCP socket (owned by
 * the secondary in every case). disks: its disk copies in virtio-blk order (opened for
 * writing here). fence: the fence options (copied; the epoch is the takeover's) or NULL. */
int ft_secondary_create(struct vmm_vm *vm, int listen_fd, const char *const *disks,
			int nr_disks, const struct vmm_fence_config *fence,
			struct ft_secondary **out, struct kb_errmsg *err);
void ft_secondary_destroy(struct ft_secondary *s);
/* Starts accepting the primary's stream (KB_ESTATE after the first call). */
int ft_secondary_in(struct ft_secondary *s, const struct vmm_ft_in *rq, struct kb_errmsg *err);
void ft_secondary_status(struct ft_secondary *s, struct vmm_ft_status *st);
/* Resumes the guest from the last applied checkpoint, owning it at epoch (KB_ESTATE
 * before the first checkpoint or after a failure). Blocks until the guest runs. */
int ft_secondary_takeover(struct ft_secondary *s, uint64_t epoch, struct kb_errmsg *err);
/* Ends FT: the vmx exits without running the guest (VMM_STOP_MIGRATION_FAILED). */
int ft_secondary_stop(struct ft_secondary *s, struct kb_errmsg *err);
bool ft_secondary_running(struct ft_secondary *s);

#endif
