/*
 * Internals shared by the files of kernel/res: the cgroup-version operations, the values
 * written into a VM's group, and the cgroupfs file helpers (fs.c).
 */
#ifndef VMK_RES_INTERNAL_H
#define VMK_RES_INTERNAL_H

#include "kernel/res/res.h"

/* What vm_create writes into a VM's group, computed once from its settings. */
struct vmk__res_values {
	uint32_t v1_shares;
	uint32_t v2_weight;
	int64_t quota_us; /* -1: no quota */
	uint32_t period_us;
	uint64_t mem_max_bytes;
	uint64_t mem_min_bytes; /* the memory reservation */
};

/* One cgroup version. Directories of VM groups are made, filled with processes and
 * removed by res.c the same way for both; these do what differs. */
struct vmk__res_ops {
	const char *name; /* "v1", "v2" */
	/* Finds the hierarchies under cfg->cgroup_root, fills res->base/dir/dir_of/ndirs
	 * and creates the parent group. */
	int (*prepare)(struct vmk_res *res, const struct vmk_res_config *cfg,
		       struct kb_errmsg *err);
	/* Writes v into the existing group of uuid. */
	int (*apply)(const struct vmk_res *res, const char *uuid, const struct vmk__res_values *v,
		     struct kb_errmsg *err);
	/* Reads the usage of the existing group of uuid. */
	int (*usage)(const struct vmk_res *res, const char *uuid, uint64_t *cpu_ns,
		     uint64_t *mem_bytes, struct kb_errmsg *err);
};

extern const struct vmk__res_ops vmk__res_v1_ops;
extern const struct vmk__res_ops vmk__res_v2_ops;

/* kb_errmsg_setf that accepts a NULL err. */
void vmk__res_seterr(struct kb_errmsg *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* snprintf into buf; -ENAMETOOLONG when it does not fit. */
int vmk__res_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when path exists (any type). */
bool vmk__res_exists(const char *path);

/* Writes the formatted text into dir/file with one write(2). The file must exist unless
 * res->plain_dirs. 0 or -errno with err naming the file and the value. */
int vmk__res_write(const struct vmk_res *res, const char *dir, const char *file,
		   struct kb_errmsg *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Reads up to size-1 bytes of path into buf, NUL-terminated. Bytes read or -errno. */
ssize_t vmk__res_read(const char *path, char *buf, size_t size);

/* Reads a whole file of at most max bytes into a kb_malloc'd NUL-terminated buffer (caller
 * frees with kb_free). 0, -ENOMEM, -EFBIG or -errno. */
int vmk__res_read_all(const char *path, size_t max, char **out);

/* Reads dir/file holding one unsigned number. 0, KB_ENOTFOUND (no such group),
 * KB_EPROTO (not a number) or -errno, with err set. */
int vmk__res_read_u64(const char *dir, const char *file, const char *uuid, uint64_t *v,
		      struct kb_errmsg *err);

/* Makes a directory: 0 when made, 1 when it existed, or -errno. */
int vmk__res_mkdir(const char *path);

/* 1 when the directory path has a subdirectory (a child group), 0 when not, or -errno. */
int vmk__res_has_subdir(const char *path);

/* Removes a group's directory, retrying for up to timeout_ms while it is busy. In
 * plain_dirs mode its regular files go first, and a subdirectory makes it busy as in
 * cgroupfs. 0 (also when it did not exist) or -errno. */
int vmk__res_rmdir(const struct vmk_res *res, const char *path, uint32_t timeout_ms);

/* Creates each level of parent under base (which must exist). When subtree is not NULL it
 * is written to each level's cgroup.subtree_control, and when min_bytes is not 0 to each
 * level's memory.min (v2). On success *out is base/parent, kb_malloc'd, and *made the
 * number of (deepest) levels this call created; on error those are removed again. */
int vmk__res_make_parent(const struct vmk_res *res, const char *base, const char *parent,
			 const char *subtree, uint64_t min_bytes, char **out, unsigned *made,
			 struct kb_errmsg *err);

/* Removes the deepest made levels of the parent directory dir, best effort. */
void vmk__res_unmake_parent(const struct vmk_res *res, const char *dir, unsigned made);

/* This process's cgroup path in the hierarchy holding controller (v1), or in the unified
 * hierarchy when controller is NULL, from <proc_root>/self/cgroup. 0, KB_ENOTFOUND or
 * -errno, with err set. */
int vmk__res_self_cgroup(const char *proc_root, const char *controller, char *buf, size_t size,
			 struct kb_errmsg *err);

/* Adds a hierarchy directory (kb_strdup of base) as used by controller c, unless a
 * directory already added is the same one (a co-mounted hierarchy such as cpu,cpuacct).
 * Sets res->dir_of[c]. 0 or -ENOMEM / -errno. */
int vmk__res_add_base(struct vmk_res *res, enum vmk_res_controller c, const char *base);

#endif
