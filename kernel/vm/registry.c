/*
 * The VM registry: the VMs registered on this host, found by name or uuid, and the
 * inventory file that lists them across restarts (as ESXi's vmInventory).
 *
 * inventory.conf: a comment line, then one absolute path of a registered .vmx per line;
 * replaced atomically (lib/file.h: tmp, fsync, rename, fsync of the state dir) on every
 * change. At load, a VM whose .vmx is missing or invalid is logged and left out (its line
 * is dropped at the next save). A VM whose directory holds <name>.vmss is suspended; pid
 * records of running vmx are checked afterwards (supervise.c). A VM registered for an
 * incoming migration (migrate.c) is listed only once its guest runs here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernel/core/subsys.h"
#include "kernel/vm/vm.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"

const char *vmk_power_name(enum vmk_power p)
{
	switch (p) {
	case VMK_POWERED_OFF:
		return "poweredOff";
	case VMK_POWERED_ON:
		return "poweredOn";
	case VMK_SUSPENDED:
		return "suspended";
	case VMK_INCOMING:
		return "incoming";
	}
	return "unknown";
}

void vmk_vm_ctl_path(const struct vmk_vm *vm, char *out, size_t size)
{
	snprintf(out, size, "%s/%s.ctl", vm->host->run_dir, vm->cfg.uuid);
}

void vmk_vm_console_path(const struct vmk_vm *vm, char *out, size_t size)
{
	snprintf(out, size, "%s/%s.con", vm->host->run_dir, vm->cfg.uuid);
}

void vmk_vm_pidfile_path(const struct vmk_vm *vm, char *out, size_t size)
{
	snprintf(out, size, "%s/%s.pid", vm->host->run_dir, vm->cfg.uuid);
}

void vmk_vm_file_path(const struct vmk_vm *vm, const char *suffix, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", vm->dir, suffix);
}

struct vmk_vm *vmk__vm_alloc(struct vmk_host *h)
{
	struct vmk_vm *vm = kb_calloc(1, sizeof(*vm));

	if (vm == NULL)
		return NULL;
	vm->host = h;
	vm->pidfd = -1;
	vmk_vmx_init(&vm->cfg);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	kb_list_init(&vm->link);
	kb_list_init(&vm->watch_link);
	return vm;
}

void vmk__vm_free(struct vmk_vm *vm)
{
	if (vm == NULL)
		return;
	vmk_vmx_close(&vm->cfg);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	kb_free(vm);
}

static struct vmk_vm *find_locked(struct vmk_host *h, const char *key)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);
		if (strcmp(vm->cfg.name, key) == 0 || strcmp(vm->cfg.uuid, key) == 0)
			return vm;
	}
	return NULL;
}

struct vmk_vm *vmk_vm_find(struct vmk_host *h, const char *key)
{
	struct vmk_vm *vm;

	if (key == NULL || key[0] == '\0')
		return NULL;
	pthread_mutex_lock(&h->lock);
	vm = find_locked(h, key);
	pthread_mutex_unlock(&h->lock);
	return vm;
}

int vmk__inventory_save(struct vmk_host *h)
{
	static const char head[] = "# Keel VM inventory: one registered .vmx per line\n";
	struct kb_errmsg err = {{0}}; /* callers report the code only */
	char path[PATH_MAX];
	struct kb_list *pos;
	struct kb_buf b;
	int rv;

	snprintf(path, sizeof(path), "%s/inventory.conf", h->state_dir);
	kb_buf_init(&b, 0);
	rv = kb_buf_append(&b, head, sizeof(head) - 1);
	kb_list_for_each(pos, &h->vms)
	{
		const struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);
		const char *vmx = vm->vmx_path;
		if (vm->transient)
			continue; /* not ours (yet): an incoming migration may still fail */
		if (rv == 0)
			rv = kb_buf_append(&b, vmx, strlen(vmx));
		if (rv == 0)
			rv = kb_buf_put_u8(&b, '\n');
	}
	if (rv == 0)
		rv = kb_file_write_atomic(path, b.data, b.len, 0644, &err);
	kb_buf_close(&b);
	return rv;
}

/* Fills vm from the .vmx at path (dir, datastore, power state from a .vmss). */
int vmk__vm_load(struct vmk_vm *vm, const char *path, struct kb_errmsg *err)
{
	char vmss[PATH_MAX];
	int rv;

	rv = vmk_vmx_load(&vm->cfg, path, err);
	if (rv < 0)
		return rv;
	snprintf(vm->vmx_path, sizeof(vm->vmx_path), "%s", path);
	snprintf(vm->dir, sizeof(vm->dir), "%s", path);
	char *slash = strrchr(vm->dir, '/');
	if (slash != NULL)
		*slash = '\0';
	rv = vmk_subsys_ds_of(vm->host, vm->dir, vm->datastore, sizeof(vm->datastore), err);
	if (rv < 0)
		return rv;
	snprintf(vmss, sizeof(vmss), "%s/%s.vmss", vm->dir, vm->cfg.name);
	vm->power = access(vmss, F_OK) == 0 ? VMK_SUSPENDED : VMK_POWERED_OFF;
	snprintf(vm->last_event, sizeof(vm->last_event), "registered");
	return 0;
}

int vmk__vm_add(struct vmk_host *h, struct vmk_vm *vm, struct kb_errmsg *err)
{
	struct kb_list *pos;
	int rv;

	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *o = kb_list_entry(pos, struct vmk_vm, link);
		if (strcmp(o->cfg.name, vm->cfg.name) == 0 ||
		    strcmp(o->cfg.uuid, vm->cfg.uuid) == 0 ||
		    strcmp(o->vmx_path, vm->vmx_path) == 0) {
			kb_errmsg_setf(err, "a VM named %s (uuid %s) is already registered",
				       o->cfg.name, o->cfg.uuid);
			pthread_mutex_unlock(&h->lock);
			return KB_EEXIST;
		}
	}
	kb_list_add_tail(&h->vms, &vm->link);
	rv = vmk__inventory_save(h);
	if (rv < 0) {
		kb_list_del(&vm->link);
		kb_errmsg_setf(err, "saving the inventory: %s", kb_strerror(rv));
	}
	pthread_mutex_unlock(&h->lock);
	return rv;
}

int vmk_vm_inventory_load(struct vmk_host *h)
{
	char path[PATH_MAX], line[PATH_MAX + 2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/inventory.conf", h->state_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (line[0] != '/')
			continue; /* comments and blank lines */
		struct kb_errmsg err = {{0}};
		struct vmk_vm *vm = vmk__vm_alloc(h);
		if (vm == NULL) {
			fclose(f);
			return -ENOMEM;
		}
		if (vmk__vm_load(vm, line, &err) < 0 || find_locked(h, vm->cfg.name) != NULL) {
			kb_log(h->log, KB_LOG_WARN, "inventory: leaving out %s: %s", line,
			       err.msg[0] ? err.msg : "a VM of that name is already registered");
			vmk__vm_free(vm);
			continue;
		}
		kb_list_add_tail(&h->vms, &vm->link);
	}
	fclose(f);
	return 0;
}

void vmk__vm_unlist(struct vmk_host *h, struct vmk_vm *vm)
{
	int rv;

	pthread_mutex_lock(&h->lock);
	kb_list_del(&vm->link);
	kb_list_init(&vm->link);
	rv = vmk__inventory_save(h);
	pthread_mutex_unlock(&h->lock);
	if (rv < 0)
		kb_log(h->log, KB_LOG_WARN, "saving the inventory: %s", kb_strerror(rv));
}
