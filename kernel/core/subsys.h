/*
 * The seams between vmkernel's core and its subsystems (subsys.c): datastores
 * (kernel/ds), resources (kernel/res) and VM networking (kernel/net). The VM code calls
 * only these, so each subsystem's API stays its own.
 */
#ifndef VMK_SUBSYS_H
#define VMK_SUBSYS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kernel/core/host.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

struct vmk_vm;

int vmk_subsys_init(struct vmk_host *h, struct kb_errmsg *err);
void vmk_subsys_close(struct vmk_host *h);

/* subsys_ds.c */
int vmk_subsys_ds_init(struct vmk_host *h, struct kb_errmsg *err);
void vmk_subsys_ds_close(struct vmk_host *h);
int vmk_subsys_ds_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq,
			 Keel__Vmk__VmkReply *reply, struct kb_errmsg *err);
void vmk_subsys_ds_reply_free(Keel__Vmk__VmkReply *reply);
/* A copy of the heartbeat writers' status (kernel/ds/heartbeat.h); the caller frees *out
 * with kb_free(). 0 or -ENOMEM. Any thread. */
struct vmk_ds_hb_status;
int vmk_subsys_ds_hb_status(struct vmk_host *h, struct vmk_ds_hb_status **out, size_t *n);

/* The datastore holding dir, into out. KB_ENOTFOUND when none does. */
int vmk_subsys_ds_of(struct vmk_host *h, const char *dir, char *out, size_t size,
		     struct kb_errmsg *err);
/* Whether datastore name is shared (marked `shared` in datastores.conf) and, if path is
 * not NULL, its directory. KB_ENOTFOUND when no datastore has that name. Any thread. */
int vmk_subsys_ds_shared(struct vmk_host *h, const char *name, bool *shared, char *path,
			 size_t size);
/* The host's lease watcher (kernel/ds/leasewatch.h): vmk_ds_lw_lookup() on the watcher
 * that follows the host's registry, KB_ENOTFOUND when it is not running. Any thread. */
struct vmk_ds_lw_view;
int vmk_subsys_ds_lease_view(struct vmk_host *h, const char *ds_path, uint64_t host_id,
			     struct vmk_ds_lw_view *out);
/* Where a new VM's directory goes on datastore ds_name ("" or NULL: the default). */
int vmk_subsys_vm_dir(struct vmk_host *h, const char *ds_name, const char *vm_name, char *dir,
		      size_t dir_size, char *ds_out, size_t ds_size, struct kb_errmsg *err);

/* Admission control for powering vm on, against the VMs already powered on. */
int vmk_subsys_admit(struct vmk_vm *vm, struct kb_errmsg *err);
/* The VM's cgroup: made before its vmx starts, the vmx placed in it, removed after. */
int vmk_subsys_res_create(struct vmk_vm *vm, struct kb_errmsg *err);
int vmk_subsys_res_attach(struct vmk_vm *vm, pid_t pid, struct kb_errmsg *err);
void vmk_subsys_res_remove(struct vmk_vm *vm);
/* Taps for the VM's NICs on their portgroups (names into vm->taps), and their removal. */
int vmk_subsys_ports_create(struct vmk_vm *vm, struct kb_errmsg *err);
void vmk_subsys_ports_remove(struct vmk_vm *vm);

/* Datastore and network requests; fill reply (strings allocated with kb_ and freed by
 * vmk_subsys_reply_free). */
int vmk_subsys_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq,
		      Keel__Vmk__VmkReply *reply, struct kb_errmsg *err);
void vmk_subsys_reply_free(Keel__Vmk__VmkReply *reply);
/* Host figures from the resource module. */
void vmk_subsys_host_info(struct vmk_host *h, Keel__Vmk__HostInfo *out);

#endif
