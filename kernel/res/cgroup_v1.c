/*
 * cgroup v1: separate hierarchies for cpu, cpuacct and memory, each mounted under the
 * cgroup root (<root>/cpu, <root>/cpuacct, <root>/memory, or cpu and cpuacct co-mounted
 * as <root>/cpu,cpuacct). A VM has a group <parent>/<uuid> in each distinct hierarchy.
 *
 * Files written (docs/resources.md): cpu.shares for the shares; cpu.cfs_period_us and
 * cpu.cfs_quota_us for the CPU limit (quota -1 first, so a new period never conflicts
 * with an old quota); memory.limit_in_bytes for the memory limit plus overhead;
 * memory.soft_limit_in_bytes for the reservation, a hint that reclaim takes memory from
 * groups above their soft limit first. Usage comes from cpuacct.usage and
 * memory.usage_in_bytes. v1 has no memory floor and no CPU floor: reservations are
 * guaranteed by admission control.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kernel/res/res_internal.h"

static const struct {
	const char *name;   /* the controller */
	const char *marker; /* a file every group of its hierarchy has */
} controllers[VMK_RES_NCONTROLLERS] = {
    [VMK_RES_CPU] = {"cpu", "cpu.shares"},
    [VMK_RES_CPUACCT] = {"cpuacct", "cpuacct.usage"},
    [VMK_RES_MEMORY] = {"memory", "memory.limit_in_bytes"},
};

/* Where controller c's hierarchy is mounted under root. */
static int find_mount(const char *root, enum vmk_res_controller c, char *buf, size_t size)
{
	const char *const names[] = {controllers[c].name, "cpu,cpuacct", "cpuacct,cpu"};
	unsigned i, n = c == VMK_RES_MEMORY ? 1 : 3;
	char marker[4096];
	int rc;

	for (i = 0; i < n; i++) {
		rc = vmk__res_path(buf, size, "%s/%s", root, names[i]);
		if (rc < 0)
			return rc;
		if (vmk__res_path(marker, sizeof(marker), "%s/%s", buf, controllers[c].marker) ==
			0 &&
		    vmk__res_exists(marker))
			return 0;
	}
	return KB_ENOTSUP;
}

static int v1_prepare(struct vmk_res *res, const struct vmk_res_config *cfg, struct kb_errmsg *err)
{
	unsigned made[VMK_RES_NCONTROLLERS] = {0};
	char mount[4096], self[4096], base[8192];
	unsigned i;
	int c, rc;

	for (c = 0; c < VMK_RES_NCONTROLLERS; c++) {
		rc = find_mount(cfg->cgroup_root, (enum vmk_res_controller)c, mount, sizeof(mount));
		if (rc < 0) {
			vmk__res_seterr(err, "no %s hierarchy under %s", controllers[c].name,
					cfg->cgroup_root);
			return rc;
		}
		self[0] = '\0';
		if (cfg->delegated) {
			rc = vmk__res_self_cgroup(cfg->proc_root, controllers[c].name, self,
						  sizeof(self), err);
			if (rc < 0)
				return rc;
			if (strcmp(self, "/") == 0)
				self[0] = '\0';
		}
		rc = vmk__res_path(base, sizeof(base), "%s%s", mount, self);
		if (rc == 0)
			rc = vmk__res_add_base(res, (enum vmk_res_controller)c, base);
		if (rc < 0) {
			vmk__res_seterr(err, "cgroup %s: %s", base, kb_strerror(rc));
			return rc;
		}
	}
	for (i = 0; i < res->ndirs; i++) {
		rc = vmk__res_make_parent(res, res->base[i], res->parent, NULL, 0, &res->dir[i],
					  &made[i], err);
		if (rc < 0)
			goto unmake;
	}
	return 0;

unmake:
	/* Leave no level this call made in the hierarchies done before. */
	while (i-- > 0)
		vmk__res_unmake_parent(res, res->dir[i], made[i]);
	return rc;
}

static int v1_apply(const struct vmk_res *res, const char *uuid, const struct vmk__res_values *v,
		    struct kb_errmsg *err)
{
	char cpu[4096], mem[4096];
	int rc;

	rc = vmk_res_vm_dir(res, uuid, VMK_RES_CPU, cpu, sizeof(cpu));
	if (rc == 0)
		rc = vmk_res_vm_dir(res, uuid, VMK_RES_MEMORY, mem, sizeof(mem));
	if (rc < 0) {
		vmk__res_seterr(err, "cgroup path too long");
		return rc;
	}
	rc = vmk__res_write(res, cpu, "cpu.shares", err, "%" PRIu32 "\n", v->v1_shares);
	if (rc == 0)
		rc = vmk__res_write(res, cpu, "cpu.cfs_quota_us", err, "-1\n");
	if (rc == 0)
		rc = vmk__res_write(res, cpu, "cpu.cfs_period_us", err, "%" PRIu32 "\n",
				    v->period_us);
	if (rc == 0 && v->quota_us != -1)
		rc =
		    vmk__res_write(res, cpu, "cpu.cfs_quota_us", err, "%" PRId64 "\n", v->quota_us);
	if (rc == 0)
		rc = vmk__res_write(res, mem, "memory.limit_in_bytes", err, "%" PRIu64 "\n",
				    v->mem_max_bytes);
	if (rc == 0)
		rc = vmk__res_write(res, mem, "memory.soft_limit_in_bytes", err, "%" PRIu64 "\n",
				    v->mem_min_bytes);
	return rc;
}

static int v1_usage(const struct vmk_res *res, const char *uuid, uint64_t *cpu_ns,
		    uint64_t *mem_bytes, struct kb_errmsg *err)
{
	char acct[4096], mem[4096];
	int rc;

	rc = vmk_res_vm_dir(res, uuid, VMK_RES_CPUACCT, acct, sizeof(acct));
	if (rc == 0)
		rc = vmk_res_vm_dir(res, uuid, VMK_RES_MEMORY, mem, sizeof(mem));
	if (rc < 0) {
		vmk__res_seterr(err, "cgroup path too long");
		return rc;
	}
	rc = vmk__res_read_u64(acct, "cpuacct.usage", uuid, cpu_ns, err);
	if (rc == 0)
		rc = vmk__res_read_u64(mem, "memory.usage_in_bytes", uuid, mem_bytes, err);
	return rc;
}

const struct vmk__res_ops vmk__res_v1_ops = {
    .name = "v1",
    .prepare = v1_prepare,
    .apply = v1_apply,
    .usage = v1_usage,
};
