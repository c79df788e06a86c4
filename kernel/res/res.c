/*
 * The resource module's life and its VM groups: vmk_res_init() reads the host's capacity,
 * picks the cgroup version (cgroup_v1.c, cgroup_v2.c) and has it create the Keel parent
 * group; the vm_* calls make, fill, read and remove one group per VM, <parent>/<uuid>, in
 * every hierarchy used, the same way for both versions except for the files written.
 *
 * Failure modes: init fails when the host's memory cannot be read, when no usable cgroup
 * layout is found (KB_ENOTSUP) or when cgroupfs is not writable (-EACCES, -EROFS); it
 * then frees what it allocated and removes the parent levels it created. vm_create
 * removes a group it created if writing the settings fails; a group that already existed
 * is kept, since a running vmx may be in it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kernel/res/res_internal.h"
#include "lib/heap.h"

#define NAME_MAX_LEN   64
#define PARENT_MAX_LEN 256

void vmk_res_config_init(struct vmk_res_config *cfg)
{
	static const struct vmk_res_reserve reserve = VMK_RES_RESERVE_DEFAULT;

	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = VMK_RES_CGROUP_AUTO;
	cfg->cgroup_root = "/sys/fs/cgroup";
	cfg->parent = "keel/vms";
	cfg->proc_root = "/proc";
	cfg->sys_root = "/sys";
	cfg->reserve = reserve;
	cfg->cfs_period_us = 100000;
	cfg->mem_overhead_mib = 32;
	cfg->rmdir_timeout_ms = 1000;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* A group name: 1..max characters of [A-Za-z0-9._-], not starting with '.'. */
static bool valid_name(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len == 0 || len > max || s[0] == '.')
		return false;
	for (i = 0; i < len; i++) {
		if (!name_char(s[i]))
			return false;
	}
	return true;
}

static int check_uuid(const char *uuid, struct kb_errmsg *err)
{
	if (uuid != NULL && valid_name(uuid, strlen(uuid), NAME_MAX_LEN))
		return 0;
	vmk__res_seterr(err, "VM uuid \"%.80s\" cannot name a cgroup", uuid ? uuid : "(null)");
	return KB_ECONFIG;
}

/* The parent: one or more valid names joined by '/'. */
static bool valid_parent(const char *p)
{
	size_t len;

	if (p == NULL || strlen(p) > PARENT_MAX_LEN)
		return false;
	do {
		len = strcspn(p, "/");
		if (!valid_name(p, len, NAME_MAX_LEN))
			return false;
		p += len;
	} while (*p++ == '/');
	return true;
}

static int check_config(const struct vmk_res_config *cfg, struct kb_errmsg *err)
{
	if ((unsigned)cfg->mode > VMK_RES_CGROUP_NONE) {
		vmk__res_seterr(err, "unknown cgroup mode %d", (int)cfg->mode);
		return KB_ECONFIG;
	}
	if (!valid_parent(cfg->parent)) {
		vmk__res_seterr(err,
				"cgroup parent \"%.80s\" must be relative names of [A-Za-z0-9._-]",
				cfg->parent ? cfg->parent : "(null)");
		return KB_ECONFIG;
	}
	if (cfg->reserve.cpu_percent > 100 || cfg->reserve.mem_percent > 100) {
		vmk__res_seterr(err, "host reserve percentages must be 0..100");
		return KB_ECONFIG;
	}
	if (cfg->cfs_period_us < 1000 || cfg->cfs_period_us > 1000000) {
		vmk__res_seterr(err, "CFS period %" PRIu32 " us out of range 1000..1000000",
				cfg->cfs_period_us);
		return KB_ECONFIG;
	}
	return 0;
}

/* AUTO: the unified hierarchy announces itself with cgroup.controllers at its root; a v1
 * layout has a cpu hierarchy directory (alone or co-mounted as cpu,cpuacct). */
static enum vmk_res_cgroup_mode detect(const char *root)
{
	char path[4096];

	if (vmk__res_path(path, sizeof(path), "%s/cgroup.controllers", root) == 0 &&
	    vmk__res_exists(path))
		return VMK_RES_CGROUP_V2;
	if (vmk__res_path(path, sizeof(path), "%s/cpu/cpu.shares", root) == 0 &&
	    vmk__res_exists(path))
		return VMK_RES_CGROUP_V1;
	if (vmk__res_path(path, sizeof(path), "%s/cpu,cpuacct/cpu.shares", root) == 0 &&
	    vmk__res_exists(path))
		return VMK_RES_CGROUP_V1;
	return VMK_RES_CGROUP_NONE;
}

int vmk_res_init(struct vmk_res *res, const struct vmk_res_config *config, struct kb_errmsg *err)
{
	struct vmk_res_config defaults, copy = *config, *cfg = &copy;
	enum vmk_res_cgroup_mode mode = cfg->mode;
	int rc;

	memset(res, 0, sizeof(*res));
	vmk_res_config_init(&defaults);
	if (cfg->cgroup_root == NULL)
		cfg->cgroup_root = defaults.cgroup_root;
	if (cfg->proc_root == NULL)
		cfg->proc_root = defaults.proc_root;
	if (cfg->sys_root == NULL)
		cfg->sys_root = defaults.sys_root;
	rc = check_config(cfg, err);
	if (rc < 0)
		return rc;
	res->log = cfg->log != NULL ? cfg->log : &kb_log_default;
	res->plain_dirs = cfg->plain_dirs;
	res->period_us = cfg->cfs_period_us;
	res->mem_overhead_mib = cfg->mem_overhead_mib;
	res->rmdir_timeout_ms = cfg->rmdir_timeout_ms;
	rc = vmk_res_capacity_probe(cfg->proc_root, cfg->sys_root, cfg->cpu_mhz, &cfg->reserve,
				    &res->cap, err);
	if (rc < 0)
		goto fail;
	if (mode == VMK_RES_CGROUP_AUTO) {
		mode = detect(cfg->cgroup_root);
		if (mode == VMK_RES_CGROUP_NONE) {
			vmk__res_seterr(
			    err, "no cgroup v2 or v1 (cpu, cpuacct, memory) hierarchy under %s",
			    cfg->cgroup_root);
			rc = KB_ENOTSUP;
			goto fail;
		}
	}
	res->mode = mode;
	if (mode != VMK_RES_CGROUP_NONE) {
		res->ops = mode == VMK_RES_CGROUP_V1 ? &vmk__res_v1_ops : &vmk__res_v2_ops;
		res->parent = kb_strdup(cfg->parent);
		if (res->parent == NULL) {
			vmk__res_seterr(err, "out of memory");
			rc = -ENOMEM;
			goto fail;
		}
		rc = res->ops->prepare(res, cfg, err);
		if (rc < 0) {
			kb_errmsg_wrapf(err, "cgroup %s", res->ops->name);
			goto fail;
		}
	}
	kb_log(res->log, KB_LOG_INFO,
	       "resources: cgroup %s%s%s; host %" PRIu32 " CPUs x %" PRIu32 " MHz (%s), %" PRIu64
	       " MiB; reservable %" PRIu64 " MHz, %" PRIu64 " MiB",
	       vmk_res_cgroup_version(res), res->ndirs ? " at " : "", res->ndirs ? res->dir[0] : "",
	       res->cap.cpus, res->cap.cpu_mhz, res->cap.cpu_mhz_source, res->cap.mem_total_mib,
	       res->cap.cpu_reservable_mhz, res->cap.mem_reservable_mib);
	return 0;

fail:
	vmk_res_close(res);
	return rc;
}

void vmk_res_close(struct vmk_res *res)
{
	unsigned i;

	for (i = 0; i < VMK_RES_NCONTROLLERS; i++) {
		kb_free(res->base[i]);
		kb_free(res->dir[i]);
	}
	kb_free(res->parent);
	memset(res, 0, sizeof(*res));
}

const struct vmk_res_capacity *vmk_res_host_capacity(const struct vmk_res *res)
{
	return &res->cap;
}

const char *vmk_res_cgroup_version(const struct vmk_res *res)
{
	return res->ops != NULL ? res->ops->name : "none";
}

int vmk_res_vm_dir(const struct vmk_res *res, const char *uuid, enum vmk_res_controller c,
		   char *buf, size_t size)
{
	if (check_uuid(uuid, NULL) < 0 || (unsigned)c >= VMK_RES_NCONTROLLERS)
		return KB_ECONFIG;
	if (res->ops == NULL)
		return KB_ENOTSUP;
	return vmk__res_path(buf, size, "%s/%s", res->dir[res->dir_of[c]], uuid);
}

/* The group directory of uuid in hierarchy i. */
static int group_dir(const struct vmk_res *res, unsigned i, const char *uuid, char *buf,
		     size_t size, struct kb_errmsg *err)
{
	int rc = vmk__res_path(buf, size, "%s/%s", res->dir[i], uuid);

	if (rc < 0)
		vmk__res_seterr(err, "path too long: %s/%s", res->dir[i], uuid);
	return rc;
}

int vmk_res_vm_create(const struct vmk_res *res, const char *uuid, const struct vmk_res_settings *s,
		      uint32_t mem_mib, uint32_t vcpus, struct kb_errmsg *err)
{
	bool made[VMK_RES_NCONTROLLERS] = {false};
	struct vmk__res_values v;
	char path[4096];
	unsigned i;
	int rc;

	rc = check_uuid(uuid, err);
	if (rc < 0)
		return rc;
	rc = vmk_res_settings_check(s, mem_mib, vcpus, res->cap.cpu_mhz, err);
	if (rc < 0)
		return rc;
	if (res->ops == NULL)
		return 0;

	v.v1_shares = vmk_res_v1_cpu_shares(vmk_res_shares(s, vcpus));
	v.v2_weight = vmk_res_v2_cpu_weight(vmk_res_shares(s, vcpus));
	v.period_us = res->period_us;
	v.quota_us = vmk_res_cfs_quota_us(s->cpu_limit_mhz, res->cap.cpu_mhz, vcpus, v.period_us);
	v.mem_max_bytes = vmk_res_mem_max_bytes(s->mem_limit_mib, mem_mib, res->mem_overhead_mib);
	v.mem_min_bytes = (uint64_t)s->mem_reservation_mib << 20;

	for (i = 0; i < res->ndirs; i++) {
		rc = group_dir(res, i, uuid, path, sizeof(path), err);
		if (rc < 0)
			goto remove_made;
		rc = vmk__res_mkdir(path);
		if (rc < 0) {
			vmk__res_seterr(err, "cannot create cgroup %s: %s", path, kb_strerror(rc));
			goto remove_made;
		}
		made[i] = rc == 0;
	}
	rc = res->ops->apply(res, uuid, &v, err);
	if (rc < 0)
		goto remove_made;
	kb_log(res->log, KB_LOG_DEBUG,
	       "resources: VM %s: shares %" PRIu32 ", quota %" PRId64 "/%" PRIu32
	       " us, memory max %" PRIu64 " min %" PRIu64 " bytes",
	       uuid, vmk_res_shares(s, vcpus), v.quota_us, v.period_us, v.mem_max_bytes,
	       v.mem_min_bytes);
	return 0;

remove_made:
	for (i = 0; i < res->ndirs; i++) {
		if (made[i] && group_dir(res, i, uuid, path, sizeof(path), NULL) == 0)
			vmk__res_rmdir(res, path, 0);
	}
	kb_errmsg_wrapf(err, "VM %s", uuid);
	return rc;
}

int vmk_res_vm_attach(const struct vmk_res *res, const char *uuid, pid_t pid, struct kb_errmsg *err)
{
	char path[4096];
	unsigned i;
	int rc;

	rc = check_uuid(uuid, err);
	if (rc < 0 || res->ops == NULL)
		return rc;
	if (pid <= 0) {
		vmk__res_seterr(err, "VM %s: invalid pid %d", uuid, (int)pid);
		return -ESRCH;
	}
	for (i = 0; i < res->ndirs; i++) {
		rc = group_dir(res, i, uuid, path, sizeof(path), err);
		if (rc < 0)
			return rc;
		rc = vmk__res_write(res, path, "cgroup.procs", err, "%d\n", (int)pid);
		if (rc == -ESRCH)
			vmk__res_seterr(err, "process %d does not exist", (int)pid);
		if (rc < 0) {
			kb_errmsg_wrapf(err, "VM %s", uuid);
			return rc;
		}
	}
	return 0;
}

int vmk_res_vm_remove(const struct vmk_res *res, const char *uuid, struct kb_errmsg *err)
{
	char path[4096];
	unsigned i;
	int rc, first = 0;

	rc = check_uuid(uuid, err);
	if (rc < 0 || res->ops == NULL)
		return rc;
	/* Every hierarchy is tried even after one fails, so as little as possible stays;
	 * once one has stayed busy for the whole timeout, the others are not waited for. */
	for (i = 0; i < res->ndirs; i++) {
		rc = group_dir(res, i, uuid, path, sizeof(path), err);
		if (rc == 0)
			rc = vmk__res_rmdir(res, path, first == -EBUSY ? 0 : res->rmdir_timeout_ms);
		if (rc < 0 && first == 0) {
			first = rc;
			vmk__res_seterr(err, "VM %s: cannot remove cgroup %s: %s", uuid, path,
					rc == -EBUSY ? "it still has processes" : kb_strerror(rc));
		}
	}
	if (first == 0)
		kb_log(res->log, KB_LOG_DEBUG, "resources: VM %s: cgroups removed", uuid);
	return first;
}

int vmk_res_vm_usage(const struct vmk_res *res, const char *uuid, uint64_t *cpu_ns,
		     uint64_t *mem_bytes, struct kb_errmsg *err)
{
	int rc;

	rc = check_uuid(uuid, err);
	if (rc < 0)
		return rc;
	if (res->ops == NULL) {
		vmk__res_seterr(err, "VM %s: no usage figures without cgroups", uuid);
		return KB_ENOTSUP;
	}
	return res->ops->usage(res, uuid, cpu_ns, mem_bytes, err);
}

int vmk_res_remove_parent(const struct vmk_res *res, struct kb_errmsg *err)
{
	char path[4096];
	unsigned i;
	size_t cut;
	int rc;

	/* Nothing is removed while any hierarchy still holds a VM group. */
	for (i = 0; i < res->ndirs; i++) {
		rc = vmk__res_has_subdir(res->dir[i]);
		if (rc > 0 || (rc < 0 && rc != -ENOENT)) {
			rc = rc > 0 ? -EBUSY : rc;
			vmk__res_seterr(err, "cannot remove cgroup %s: %s", res->dir[i],
					rc == -EBUSY ? "VM groups remain in it" : kb_strerror(rc));
			return rc;
		}
	}
	for (i = 0; i < res->ndirs; i++) {
		rc = vmk__res_path(path, sizeof(path), "%s", res->dir[i]);
		if (rc < 0)
			return rc;
		/* Deepest level first: base/keel/vms, then base/keel. */
		for (;;) {
			rc = vmk__res_rmdir(res, path, 0);
			if (rc < 0) {
				vmk__res_seterr(err, "cannot remove cgroup %s: %s", path,
						kb_strerror(rc));
				return rc;
			}
			cut = strlen(path);
			while (cut > 0 && path[cut] != '/')
				cut--;
			if (cut <= strlen(res->base[i]))
				break;
			path[cut] = '\0';
		}
	}
	return 0;
}
