/*
 * cgroup v2: one unified hierarchy at the cgroup root. A VM has one group <parent>/<uuid>
 * holding all controllers; the cpu and memory controllers are enabled in
 * cgroup.subtree_control of the base (the root, or this process's own group when
 * delegated) and of each parent level.
 *
 * Files written (docs/resources.md): cpu.weight for the shares; cpu.max ("quota period",
 * or "max period") for the CPU limit; memory.max for the memory limit plus overhead;
 * memory.min for the memory reservation, a hard protection from reclaim. memory.min
 * protects a group only as far as its ancestors are protected, so each parent level gets
 * memory.min = the host's reservable memory, the most admission control lets VMs reserve.
 * Usage comes from cpu.stat (usage_usec) and memory.current.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/res/res_internal.h"

#define CONTROLLERS "+cpu +memory"

/* True when the whitespace-separated list text has word. */
static bool has_word(const char *text, const char *word)
{
	size_t len = strlen(word), n;

	while (*text != '\0') {
		text += strspn(text, " \t\n");
		n = strcspn(text, " \t\n");
		if (n == len && strncmp(text, word, len) == 0)
			return true;
		text += n;
	}
	return false;
}

static int v2_prepare(struct vmk_res *res, const struct vmk_res_config *cfg, struct kb_errmsg *err)
{
	char self[4096], base[8192], path[8192], text[512];
	unsigned made;
	ssize_t n;
	int rc, c;

	self[0] = '\0';
	if (cfg->delegated) {
		rc = vmk__res_self_cgroup(cfg->proc_root, NULL, self, sizeof(self), err);
		if (rc < 0)
			return rc;
		if (strcmp(self, "/") == 0)
			self[0] = '\0';
	}
	rc = vmk__res_path(base, sizeof(base), "%s%s", cfg->cgroup_root, self);
	if (rc == 0)
		rc = vmk__res_path(path, sizeof(path), "%s/cgroup.controllers", base);
	if (rc < 0) {
		vmk__res_seterr(err, "path too long: %s%s", cfg->cgroup_root, self);
		return rc;
	}
	n = vmk__res_read(path, text, sizeof(text));
	if (n < 0) {
		vmk__res_seterr(err, "cannot read %s: %s", path, kb_strerror((int)n));
		return (int)n;
	}
	if (!has_word(text, "cpu") || !has_word(text, "memory")) {
		vmk__res_seterr(err, "%s lacks the %s controller", path,
				has_word(text, "cpu") ? "memory" : "cpu");
		return KB_ENOTSUP;
	}
	for (c = 0; c < VMK_RES_NCONTROLLERS; c++) {
		rc = vmk__res_add_base(res, (enum vmk_res_controller)c, base);
		if (rc < 0) {
			vmk__res_seterr(err, "cgroup %s: %s", base, kb_strerror(rc));
			return rc;
		}
	}
	/* A delegated base with processes in it cannot enable controllers for its children
	 * (no internal processes); if they are already enabled there is nothing to do. */
	rc = vmk__res_path(path, sizeof(path), "%s/cgroup.subtree_control", base);
	n = rc == 0 ? vmk__res_read(path, text, sizeof(text)) : -1;
	if (n < 0 || !has_word(text, "cpu") || !has_word(text, "memory")) {
		rc = vmk__res_write(res, base, "cgroup.subtree_control", err, CONTROLLERS "\n");
		if (rc < 0)
			return rc;
	}
	return vmk__res_make_parent(res, base, res->parent, CONTROLLERS,
				    res->cap.mem_reservable_mib << 20, &res->dir[0], &made, err);
}

static int v2_apply(const struct vmk_res *res, const char *uuid, const struct vmk__res_values *v,
		    struct kb_errmsg *err)
{
	char dir[4096];
	int rc;

	rc = vmk_res_vm_dir(res, uuid, VMK_RES_CPU, dir, sizeof(dir));
	if (rc < 0) {
		vmk__res_seterr(err, "cgroup path too long");
		return rc;
	}
	rc = vmk__res_write(res, dir, "cpu.weight", err, "%" PRIu32 "\n", v->v2_weight);
	if (rc == 0 && v->quota_us == -1)
		rc = vmk__res_write(res, dir, "cpu.max", err, "max %" PRIu32 "\n", v->period_us);
	else if (rc == 0)
		rc = vmk__res_write(res, dir, "cpu.max", err, "%" PRId64 " %" PRIu32 "\n",
				    v->quota_us, v->period_us);
	if (rc == 0)
		rc = vmk__res_write(res, dir, "memory.min", err, "%" PRIu64 "\n", v->mem_min_bytes);
	if (rc == 0)
		rc = vmk__res_write(res, dir, "memory.max", err, "%" PRIu64 "\n", v->mem_max_bytes);
	return rc;
}

/* usage_usec from cpu.stat ("usage_usec 1234\nuser_usec ...\n"). */
static int read_usage_usec(const char *dir, const char *uuid, uint64_t *usec, struct kb_errmsg *err)
{
	char path[4096], text[1024], *p, *end;
	ssize_t n;

	if (vmk__res_path(path, sizeof(path), "%s/cpu.stat", dir) < 0) {
		vmk__res_seterr(err, "path too long: %s/cpu.stat", dir);
		return -ENAMETOOLONG;
	}
	n = vmk__res_read(path, text, sizeof(text));
	if (n == -ENOENT && !vmk__res_exists(dir)) {
		vmk__res_seterr(err, "VM %s has no resource group (%s)", uuid, dir);
		return KB_ENOTFOUND;
	}
	if (n < 0) {
		vmk__res_seterr(err, "cannot read %s: %s", path, kb_strerror((int)n));
		return (int)n;
	}
	p = strstr(text, "usage_usec ");
	if (p == NULL || (p != text && p[-1] != '\n')) {
		vmk__res_seterr(err, "%s has no usage_usec line", path);
		return KB_EPROTO;
	}
	*usec = strtoull(p + 11, &end, 10);
	if (end == p + 11) {
		vmk__res_seterr(err, "%s has no usage_usec number", path);
		return KB_EPROTO;
	}
	return 0;
}

static int v2_usage(const struct vmk_res *res, const char *uuid, uint64_t *cpu_ns,
		    uint64_t *mem_bytes, struct kb_errmsg *err)
{
	char dir[4096];
	uint64_t usec = 0;
	int rc;

	rc = vmk_res_vm_dir(res, uuid, VMK_RES_CPU, dir, sizeof(dir));
	if (rc < 0) {
		vmk__res_seterr(err, "cgroup path too long");
		return rc;
	}
	rc = read_usage_usec(dir, uuid, &usec, err);
	if (rc < 0)
		return rc;
	*cpu_ns = usec * 1000;
	return vmk__res_read_u64(dir, "memory.current", uuid, mem_bytes, err);
}

const struct vmk__res_ops vmk__res_v2_ops = {
    .name = "v2",
    .prepare = v2_prepare,
    .apply = v2_apply,
    .usage = v2_usage,
};
