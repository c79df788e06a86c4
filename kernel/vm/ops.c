/*
 * Inventory operations on VMs: create, register, unregister, destroy, reconfigure, and
 * the VmInfo every reply carries. A .vmx or a spec that fails its checks changes nothing:
 * create removes what it made, reconfigure leaves file and memory as they were.
 *
 * In a cluster (kernel/core/cluster.h): a VM created or registered here is registered with
 * clusterd (OP_REGISTER) before the request returns; a refusal (or no answer) undoes the
 * local create or register and fails with clusterd's message. Unregister and destroy tell
 * clusterd afterwards (OP_UNREGISTER); a failure to tell it is logged, as the VM is gone
 * here already. Requests from clusterd's own reconciler (from_cluster) are not echoed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/core/cluster.h"
#include "kernel/core/subsys.h"
#include "kernel/vm/vm.h"
#include "lib/heap.h"
#include "lib/time.h"

static int make_disk(const char *path, uint64_t size_mib, struct kb_errmsg *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	int rv = 0;

	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "creating disk %s: %s", path, kb_strerror(rv));
		return rv;
	}
	if (ftruncate(fd, (off_t)(size_mib << 20)) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "sizing disk %s: %s", path, kb_strerror(rv));
	}
	close(fd);
	return rv;
}

/* Removes the files of a VM directory we know how to have made, then the directory. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	rmdir(dir);
}

/* Takes a VM just added (vm->busy set, so nothing else started on it) off the list. */
static void unlist(struct vmk_host *h, struct vmk_vm *vm)
{
	pthread_mutex_lock(&h->lock);
	kb_list_del(&vm->link);
	int rv = vmk__inventory_save(h);
	pthread_mutex_unlock(&h->lock);
	if (rv < 0)
		kb_log(h->log, KB_LOG_WARN, "saving the inventory: %s", kb_strerror(rv));
}

/* OP_REGISTER for a VM just added with vm->busy = "register". 0 (busy cleared), or the
 * refusal: the VM is off the list again and stays busy (final), err says why. */
static int cluster_register(struct vmk_host *h, struct vmk_vm *vm, struct kb_errmsg *err)
{
	struct vmk_cluster_vm cv;
	struct vmk_cluster_res res = {vm->cfg.memsize_mib, vm->cfg.res.cpu_min_mhz};
	int rv = vmk_cluster_vm(h, VMK_CLUSTER_REGISTER, vm->cfg.uuid, vm->cfg.name, vm->vmx_path,
				&res, &cv, err);

	if (rv < 0) {
		unlist(h, vm);
		kb_errmsg_wrapf(err, "the cluster refused VM %s", vm->cfg.name);
		kb_log(h->log, KB_LOG_WARN, "%s; not registered here either", err->msg);
		return rv;
	}
	if (cv.member)
		kb_log(h->log, KB_LOG_INFO, "VM %s registered with the cluster (owner %016llx)",
		       vm->cfg.name, (unsigned long long)cv.owner);
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static void cluster_unregister(struct vmk_host *h, struct vmk_vm *vm)
{
	struct vmk_cluster_vm cv;
	struct kb_errmsg e = {{0}};

	if (vmk_cluster_vm(h, VMK_CLUSTER_UNREGISTER, vm->cfg.uuid, vm->cfg.name, NULL, NULL, &cv,
			   &e) <
	    0)
		kb_log(h->log, KB_LOG_WARN, "VM %s: telling the cluster of its removal: %s",
		       vm->cfg.name, e.msg);
}

int vmk_vm_create(struct vmk_host *h, const Keel__Vmk__VmSpec *spec, struct vmk_vm **out,
		  struct kb_errmsg *err)
{
	struct vmk_vm *vm;
	char path[PATH_MAX];
	int rv;

	if (spec == NULL) {
		kb_errmsg_setf(err, "create: no VM spec given");
		return KB_ECONFIG;
	}
	/* New disks without a file name are named after the VM: <name>.img, <name>_1.img... */
	Keel__Vmk__VmSpec named = *spec;
	Keel__Vmk__DiskSpec disks[VMK_VMX_DISKS], *dptr[VMK_VMX_DISKS];
	char dnames[VMK_VMX_DISKS][VMK_VMX_NAME_MAX + 16];
	if (spec->n_disks > VMK_VMX_DISKS) {
		kb_errmsg_setf(err, "at most %d disks", VMK_VMX_DISKS);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < spec->n_disks; i++) {
		disks[i] = *spec->disks[i];
		if ((disks[i].file == NULL || disks[i].file[0] == '\0') && spec->name != NULL) {
			if (i == 0)
				snprintf(dnames[i], sizeof(dnames[i]), "%.63s.img", spec->name);
			else
				snprintf(dnames[i], sizeof(dnames[i]), "%.63s_%zu.img", spec->name,
					 i);
			disks[i].file = dnames[i];
		}
		dptr[i] = &disks[i];
	}
	named.disks = dptr;
	spec = &named;
	vm = vmk__vm_alloc(h);
	if (vm == NULL)
		return -ENOMEM;
	rv = vmk_vmx_from_spec(&vm->cfg, spec, err);
	if (rv < 0)
		goto fail_free;
	if (vmk_vm_find(h, vm->cfg.name) != NULL) {
		kb_errmsg_setf(err, "a VM named %s is already registered", vm->cfg.name);
		rv = KB_EEXIST;
		goto fail_free;
	}
	for (size_t i = 0; i < spec->n_disks; i++) {
		if (spec->disks[i]->file == NULL || spec->disks[i]->file[0] == '\0') {
			kb_errmsg_setf(err, "disk %zu has no file name", i);
			rv = KB_ECONFIG;
			goto fail_free;
		}
	}
	rv = vmk_subsys_vm_dir(h, spec->datastore, vm->cfg.name, vm->dir, sizeof(vm->dir),
			       vm->datastore, sizeof(vm->datastore), err);
	if (rv < 0)
		goto fail_free;
	if (mkdir(vm->dir, 0750) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "creating %s: %s", vm->dir,
			       rv == -EEXIST ? "the directory exists already" : kb_strerror(rv));
		goto fail_free;
	}
	for (size_t i = 0; i < spec->n_disks; i++) {
		const char *f = spec->disks[i]->file;
		if (f[0] == '/')
			snprintf(path, sizeof(path), "%s", f);
		else
			snprintf(path, sizeof(path), "%s/%s", vm->dir, f);
		if (access(path, F_OK) == 0 && spec->disks[i]->size_mib == 0)
			continue; /* an existing image */
		rv = make_disk(path, spec->disks[i]->size_mib ? spec->disks[i]->size_mib : 64, err);
		if (rv < 0)
			goto fail_dir;
	}
	snprintf(vm->vmx_path, sizeof(vm->vmx_path), "%s/%s.vmx", vm->dir, vm->cfg.name);
	rv = vmk_vmx_save(&vm->cfg, vm->vmx_path, err);
	if (rv < 0)
		goto fail_dir;
	vm->power = VMK_POWERED_OFF;
	snprintf(vm->last_event, sizeof(vm->last_event), "created");
	vm->busy = "register";
	rv = vmk__vm_add(h, vm, err);
	if (rv < 0)
		goto fail_dir;
	kb_log(h->log, KB_LOG_INFO, "VM %s created on %s (uuid %s)", vm->cfg.name, vm->datastore,
	       vm->cfg.uuid);
	rv = cluster_register(h, vm, err);
	if (rv < 0) {
		/* off the list but never freed: a request may hold a pointer to it */
		remove_dir(vm->dir);
		return rv;
	}
	*out = vm;
	return 0;

fail_dir:
	remove_dir(vm->dir);
fail_free:
	vmk__vm_free(vm);
	return rv;
}

int vmk_vm_register(struct vmk_host *h, const char *vmx_path, bool from_cluster,
		    struct vmk_vm **out, struct kb_errmsg *err)
{
	struct vmk_vm *vm;
	char real[PATH_MAX];
	int rv;

	if (vmx_path == NULL || realpath(vmx_path, real) == NULL) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", vmx_path ? vmx_path : "(no path)", kb_strerror(rv));
		return rv;
	}
	vm = vmk__vm_alloc(h);
	if (vm == NULL)
		return -ENOMEM;
	rv = vmk__vm_load(vm, real, err);
	if (rv == 0) {
		bool changed = false;
		rv = vmk_vmx_complete(&vm->cfg, &changed);
		if (rv == 0 && changed)
			rv = vmk_vmx_save(&vm->cfg, vm->vmx_path, err);
	}
	vm->busy = from_cluster ? NULL : "register";
	rv = rv ?: vmk__vm_add(h, vm, err);
	if (rv < 0) {
		vmk__vm_free(vm);
		return rv;
	}
	kb_log(h->log, KB_LOG_INFO, "VM %s registered from %s%s", vm->cfg.name, real,
	       from_cluster ? " (asked by the cluster)" : "");
	if (!from_cluster) {
		rv = cluster_register(h, vm, err);
		if (rv < 0)
			return rv; /* off the list, files untouched */
	}
	*out = vm;
	return 0;
}

static int remove_from_registry(struct vmk_host *h, struct vmk_vm *vm, const char *op,
				struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&h->lock);
	pthread_mutex_lock(&vm->lock);
	if (vm->power == VMK_POWERED_ON || vm->busy != NULL) {
		kb_errmsg_setf(err, "cannot %s VM %s: it is %s", op, vm->cfg.name,
			       vm->busy ? vm->busy : "powered on");
		pthread_mutex_unlock(&vm->lock);
		pthread_mutex_unlock(&h->lock);
		return KB_ESTATE;
	}
	vm->busy = op; /* final: no operation can start on it any more */
	pthread_mutex_unlock(&vm->lock);
	kb_list_del(&vm->link);
	rv = vmk__inventory_save(h);
	pthread_mutex_unlock(&h->lock);
	if (rv < 0)
		kb_log(h->log, KB_LOG_WARN, "saving the inventory: %s", kb_strerror(rv));
	return 0;
}

int vmk_vm_unregister(struct vmk_host *h, struct vmk_vm *vm, bool from_cluster,
		      struct kb_errmsg *err)
{
	int rv = remove_from_registry(h, vm, "unregister", err);

	if (rv < 0)
		return rv;
	kb_log(h->log, KB_LOG_INFO, "VM %s unregistered (files kept in %s)%s", vm->cfg.name,
	       vm->dir, from_cluster ? " (asked by the cluster)" : "");
	if (!from_cluster)
		cluster_unregister(h, vm);
	/* VMs are never freed while the daemon runs: a request may still hold a pointer. */
	return 0;
}

int vmk_vm_destroy(struct vmk_host *h, struct vmk_vm *vm, struct kb_errmsg *err)
{
	int rv = remove_from_registry(h, vm, "destroy", err);

	if (rv < 0)
		return rv;
	remove_dir(vm->dir);
	kb_log(h->log, KB_LOG_INFO, "VM %s destroyed (%s removed)", vm->cfg.name, vm->dir);
	cluster_unregister(h, vm);
	return 0;
}

int vmk_vm_reconfigure(struct vmk_vm *vm, const Keel__Vmk__VmSpec *spec, struct kb_errmsg *err)
{
	struct vmk_vmx next;
	struct kb_buf text;
	int rv;

	if (spec == NULL) {
		kb_errmsg_setf(err, "reconfigure: no VM spec given");
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->power != VMK_POWERED_OFF || vm->busy != NULL) {
		kb_errmsg_setf(err, "VM %s can be reconfigured only when powered off (it is %s)",
			       vm->cfg.name, vm->busy ? vm->busy : vmk_power_name(vm->power));
		pthread_mutex_unlock(&vm->lock);
		return KB_ESTATE;
	}
	if (spec->name != NULL && spec->name[0] != '\0' && strcmp(spec->name, vm->cfg.name) != 0) {
		kb_errmsg_setf(err, "renaming a VM is not supported");
		pthread_mutex_unlock(&vm->lock);
		return KB_ENOTSUP;
	}
	/* Work on a copy made through the file format, so a failure changes nothing. */
	kb_buf_init(&text, 0);
	rv = vmk_vmx_format(&vm->cfg, &text);
	rv = rv ?: vmk_vmx_parse(&next, text.data, text.len, err);
	kb_buf_close(&text);
	if (rv == 0) {
		rv = vmk_vmx_apply_reconfigure(&next, spec, err);
		rv = rv ?: vmk_vmx_save(&next, vm->vmx_path, err);
		if (rv == 0) {
			vmk_vmx_close(&vm->cfg);
			vm->cfg = next;
			snprintf(vm->last_event, sizeof(vm->last_event), "reconfigured");
			kb_log(vm->host->log, KB_LOG_INFO, "VM %s reconfigured", vm->cfg.name);
		} else {
			vmk_vmx_close(&next);
		}
	}
	pthread_mutex_unlock(&vm->lock);
	return rv;
}
