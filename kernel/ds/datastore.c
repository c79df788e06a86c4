/*
 * The datastore registry and VM directory helpers (see datastore.h).
 *
 * datastores.conf, the on-disk form (docs/datastores.md):
 *
 *     # comment lines and empty lines are ignored
 *     version 1
 *     <name> <local|shared> <absolute path, to the end of the line>
 *
 * Happy path: init reads the file (O_NOFOLLOW, a regular file of at most VMK_DS_CONF_MAX
 * bytes) through one strict parser, or creates datastore1 at first start; add resolves the
 * directory with realpath and checks it against every other datastore; add and remove
 * rewrite the file atomically (lib/file.h: tmp, fsync, rename, fsync of the state dir) and
 * only then keep the change.
 *
 * Failure modes: a malformed file is refused whole with the line number; a missing shared
 * datastore is kept (it may be mounted later) and reports its statvfs error in listings;
 * a failed save leaves both the file and the registry as they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kernel/ds/datastore.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"

#define CONF_LINE_MAX (VMK_DS_NAME_MAX + VMK_DS_PATH_MAX + 16)

bool vmk_ds_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > VMK_DS_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

/* An absolute path in normal form: no empty, "." or ".." components, no trailing "/", no
 * control characters. NULL when valid, else why not. */
static const char *path_problem(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || p[0] != '/')
		return "not an absolute path";
	if (n > VMK_DS_PATH_MAX)
		return "path too long";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return "control character in path";
	if (n == 1)
		return NULL;
	if (p[n - 1] == '/')
		return "trailing \"/\"";
	for (const char *c = p + 1;; c++) {
		size_t len = strcspn(c, "/");
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return "empty, \".\" or \"..\" component in path";
		c += len;
		if (*c == 0)
			return NULL;
	}
}

/* Copies src into dst[size], cutting it if needed (callers check lengths first). */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

/* True if p is root or below it, comparing whole components. */
static bool within(const char *root, const char *p)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return p[0] == '/';
	return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/');
}

/* The path of ds resolved now (it may have become a symlink, or be unmounted: then the
 * stored path). */
static void resolved(const struct vmk_ds *ds, char out[PATH_MAX])
{
	if (realpath(ds->path, out) == NULL)
		snprintf(out, PATH_MAX, "%s", ds->path);
}

/* ---- files ---------------------------------------------------------------------------- */

static int fsync_dir(const char *dir)
{
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* ---- the file format ------------------------------------------------------------------ */

static int format_conf(const struct vmk_ds *ds, size_t n, struct kb_buf *b)
{
	static const char head[] = "# Keel datastores: <name> <local|shared> <path>. "
				   "Written by vmkernel; see docs/datastores.md.\nversion 1\n";
	int rc = kb_buf_append(b, head, sizeof(head) - 1);

	for (size_t i = 0; rc == 0 && i < n; i++) {
		char line[CONF_LINE_MAX + 2];
		int k = snprintf(line, sizeof(line), "%s %s %s\n", ds[i].name,
				 ds[i].shared ? "shared" : "local", ds[i].path);
		rc = kb_buf_append(b, line, (size_t)k);
	}
	return rc;
}

static int conf_bad(struct kb_errmsg *err, const char *file, unsigned line, int code,
		    const char *why)
{
	kb_errmsg_setf(err, "%s: line %u: %s", file, line, why);
	return code;
}

/* Checks a new record against ds[0..n): same name, same directory, or one inside the
 * other. nd_real: the new directory resolved, with the others resolved now (add); NULL to
 * compare the stored paths (loading the file). KB_EEXIST or KB_ECONFIG with why set. */
static int conflicts(const struct vmk_ds *ds, size_t n, const struct vmk_ds *nd,
		     const char *nd_real, char *why, size_t size)
{
	const char *mine = nd_real ? nd_real : nd->path;
	char real[PATH_MAX];

	for (size_t i = 0; i < n; i++) {
		if (strcmp(ds[i].name, nd->name) == 0) {
			snprintf(why, size, "datastore \"%s\" exists already", nd->name);
			return KB_EEXIST;
		}
		if (nd_real)
			resolved(&ds[i], real);
		else
			snprintf(real, sizeof(real), "%s", ds[i].path);
		if (strcmp(real, mine) == 0) {
			snprintf(why, size, "%.1023s is datastore \"%s\" already", mine,
				 ds[i].name);
			return KB_EEXIST;
		}
		if (within(real, mine) || within(mine, real)) {
			snprintf(why, size, "%.1023s overlaps datastore \"%s\" (%.1023s)", mine,
				 ds[i].name, real);
			return KB_ECONFIG;
		}
	}
	return 0;
}

static int parse_conf(struct vmk_ds_registry *reg, const char *s, size_t len, struct kb_errmsg *err)
{
	const char *end = s + len, *file = reg->conf_path;
	struct vmk_ds *ds = NULL;
	bool have_version = false;
	unsigned line = 0;
	size_t n = 0;
	int rc = 0;

	if (len > VMK_DS_CONF_MAX) {
		kb_errmsg_setf(err, "%s: larger than %d bytes", file, VMK_DS_CONF_MAX);
		return KB_ETOOBIG;
	}
	ds = kb_calloc(VMK_DS_MAX, sizeof(*ds));
	if (ds == NULL) {
		kb_errmsg_setf(err, "%s: out of memory", file);
		return -ENOMEM;
	}
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t ln = nl ? (size_t)(nl - s) : (size_t)(end - s);
		char buf[CONF_LINE_MAX + 1], why[2 * VMK_DS_PATH_MAX + 256];
		char *name, *kind, *path, *sp;
		const char *problem;

		line++;
		if (ln > CONF_LINE_MAX) {
			rc = conf_bad(err, file, line, KB_ETOOBIG, "line too long");
			goto free_ds;
		}
		if (memchr(s, 0, ln) != NULL) {
			rc = conf_bad(err, file, line, KB_EPROTO, "NUL byte");
			goto free_ds;
		}
		memcpy(buf, s, ln);
		buf[ln] = 0;
		s += ln + (nl != NULL);
		if (ln == 0 || buf[0] == '#')
			continue;
		if (!have_version) {
			if (strncmp(buf, "version ", 8) != 0) {
				rc = conf_bad(err, file, line, KB_EPROTO,
					      "expected \"version 1\" before the first datastore");
				goto free_ds;
			}
			if (strcmp(buf + 8, "1") != 0) {
				rc = conf_bad(err, file, line, KB_EVERSION,
					      "unsupported version (this host reads 1)");
				goto free_ds;
			}
			have_version = true;
			continue;
		}
		name = buf;
		sp = strchr(name, ' ');
		kind = sp ? sp + 1 : NULL;
		sp = kind ? strchr(kind, ' ') : NULL;
		path = sp ? sp + 1 : NULL;
		if (path == NULL) {
			rc = conf_bad(err, file, line, KB_EPROTO,
				      "expected \"<name> <local|shared> <path>\"");
			goto free_ds;
		}
		kind[-1] = 0;
		path[-1] = 0;
		if (!vmk_ds_name_valid(name)) {
			rc = conf_bad(err, file, line, KB_ECONFIG, "invalid datastore name");
			goto free_ds;
		}
		if (strcmp(kind, "local") != 0 && strcmp(kind, "shared") != 0) {
			rc = conf_bad(err, file, line, KB_EPROTO,
				      "expected \"local\" or \"shared\"");
			goto free_ds;
		}
		problem = path_problem(path);
		if (problem) {
			rc = conf_bad(err, file, line, KB_ECONFIG, problem);
			goto free_ds;
		}
		if (n == VMK_DS_MAX) {
			rc = conf_bad(err, file, line, KB_ETOOBIG, "too many datastores");
			goto free_ds;
		}
		copy_str(ds[n].name, sizeof(ds[n].name), name);
		copy_str(ds[n].path, sizeof(ds[n].path), path);
		ds[n].shared = kind[0] == 's';
		rc = conflicts(ds, n, &ds[n], NULL, why, sizeof(why));
		if (rc) {
			rc = conf_bad(err, file, line, rc == KB_EEXIST ? KB_EPROTO : rc, why);
			goto free_ds;
		}
		n++;
	}
	if (!have_version) {
		kb_errmsg_setf(err, "%s: no \"version 1\" line", file);
		rc = KB_EPROTO;
		goto free_ds;
	}
	reg->ds = ds;
	reg->n = n;
	return 0;

free_ds:
	kb_free(ds);
	return rc;
}

/* Writes the file as it would be with ds[0..n). */
static int save_conf(struct vmk_ds_registry *reg, const struct vmk_ds *ds, size_t n,
		     struct kb_errmsg *err)
{
	struct kb_buf b;
	int rc;

	kb_buf_init(&b, VMK_DS_CONF_MAX);
	rc = format_conf(ds, n, &b);
	if (rc)
		kb_errmsg_setf(err, "formatting %s: %s", reg->conf_path, kb_strerror(rc));
	else if ((rc = kb_file_write_atomic(reg->conf_path, b.data, b.len, 0640, err)) != 0)
		kb_errmsg_setf(err, "writing %s: %s", reg->conf_path, kb_strerror(rc));
	kb_buf_close(&b);
	return rc;
}

/* ---- registry ------------------------------------------------------------------------- */

int vmk_ds_add(struct vmk_ds_registry *reg, const char *name, const char *path, bool shared,
	       struct kb_errmsg *err)
{
	char real[PATH_MAX], state_real[PATH_MAX], why[PATH_MAX + 128];
	struct vmk_ds nd;
	struct stat st;
	int rc;

	memset(&nd, 0, sizeof(nd));
	if (!vmk_ds_name_valid(name)) {
		kb_errmsg_setf(
		    err, "datastore name \"%.64s\": use 1..%d of A-Z a-z 0-9 . _ -, not . or ..",
		    name, VMK_DS_NAME_MAX);
		return KB_ECONFIG;
	}
	if (path[0] != '/' || strlen(path) > VMK_DS_PATH_MAX) {
		kb_errmsg_setf(err, "datastore %s: path \"%.64s\": %s", name, path,
			       path[0] != '/' ? "not an absolute path" : "too long");
		return KB_ECONFIG;
	}
	if (realpath(path, real) == NULL || stat(real, &st) < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "datastore %s: %s: %s", name, path, kb_strerror(rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		kb_errmsg_setf(err, "datastore %s: %s: not a directory", name, path);
		return -ENOTDIR;
	}
	if (path_problem(real) != NULL) {
		kb_errmsg_setf(err, "datastore %s: %s: %s", name, real, path_problem(real));
		return KB_ECONFIG;
	}
	if (realpath(reg->state_dir, state_real) != NULL && within(real, state_real)) {
		kb_errmsg_setf(err, "datastore %s: %s holds vmkernel's state dir", name, real);
		return KB_ECONFIG;
	}
	copy_str(nd.name, sizeof(nd.name), name);
	copy_str(nd.path, sizeof(nd.path), real); /* path_problem() checked its length */
	nd.shared = shared;
	rc = conflicts(reg->ds, reg->n, &nd, real, why, sizeof(why));
	if (rc) {
		kb_errmsg_setf(err, "datastore %s: %s", name, why);
		return rc;
	}
	if (reg->n == VMK_DS_MAX) {
		kb_errmsg_setf(err, "datastore %s: at most %d datastores", name, VMK_DS_MAX);
		return KB_ETOOBIG;
	}
	reg->ds[reg->n] = nd; /* the array always has room for VMK_DS_MAX */
	rc = save_conf(reg, reg->ds, reg->n + 1, err);
	if (rc) {
		kb_errmsg_wrapf(err, "datastore %s", name);
		return rc;
	}
	reg->n++;
	return 0;
}

int vmk_ds_remove(struct vmk_ds_registry *reg, const char *name, uint32_t vms,
		  struct kb_errmsg *err)
{
	struct vmk_ds *copy;
	size_t i;
	int rc;

	for (i = 0; i < reg->n; i++)
		if (strcmp(reg->ds[i].name, name) == 0)
			break;
	if (i == reg->n) {
		kb_errmsg_setf(err, "no datastore named \"%.64s\"", name);
		return KB_ENOTFOUND;
	}
	if (vms > 0) {
		kb_errmsg_setf(err, "datastore %s has %u registered VM%s: unregister %s first",
			       name, vms, vms == 1 ? "" : "s", vms == 1 ? "it" : "them");
		return KB_ESTATE;
	}
	copy = kb_malloc(VMK_DS_MAX * sizeof(*copy));
	if (copy == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	memcpy(copy, reg->ds, i * sizeof(*copy));
	memcpy(copy + i, reg->ds + i + 1, (reg->n - i - 1) * sizeof(*copy));
	rc = save_conf(reg, copy, reg->n - 1, err);
	if (rc) {
		kb_errmsg_wrapf(err, "removing datastore %s", name);
		kb_free(copy);
		return rc;
	}
	kb_free(reg->ds);
	reg->ds = copy;
	reg->n--;
	return 0;
}

static int create_default(struct vmk_ds_registry *reg, struct kb_errmsg *err)
{
	char dir[VMK_DS_PATH_MAX + 32];
	int rc;

	reg->ds = kb_calloc(VMK_DS_MAX, sizeof(*reg->ds));
	if (reg->ds == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	snprintf(dir, sizeof(dir), "%s/%s", reg->state_dir, VMK_DS_DEFAULT_NAME);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		rc = -errno;
		kb_errmsg_setf(err, "creating %s: %s", dir, kb_strerror(rc));
		goto free_ds;
	}
	rc = vmk_ds_add(reg, VMK_DS_DEFAULT_NAME, dir, false, err);
	if (rc == 0)
		return 0;
free_ds:
	kb_free(reg->ds);
	reg->ds = NULL;
	return rc;
}

int vmk_ds_registry_init(struct vmk_ds_registry *reg, const char *state_dir, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rc;

	memset(reg, 0, sizeof(*reg));
	if (strlen(state_dir) == 0 || strlen(state_dir) > VMK_DS_PATH_MAX) {
		kb_errmsg_setf(err, "state dir \"%.64s\": empty or too long", state_dir);
		return KB_ECONFIG;
	}
	snprintf(reg->state_dir, sizeof(reg->state_dir), "%s", state_dir);
	snprintf(reg->conf_path, sizeof(reg->conf_path), "%s/%s", state_dir, VMK_DS_CONF_FILE);
	kb_buf_init(&b, 0);
	rc = kb_file_read_small(reg->conf_path, VMK_DS_CONF_MAX, &b, err);
	if (rc == KB_ETOOBIG)
		kb_errmsg_setf(err, "%s: larger than %d bytes", reg->conf_path, VMK_DS_CONF_MAX);
	if (rc == -ENOENT)
		rc = create_default(reg, err);
	else if (rc == 0)
		rc = parse_conf(reg, (const char *)b.data, b.len, err);
	kb_buf_close(&b);
	return rc;
}

void vmk_ds_registry_close(struct vmk_ds_registry *reg)
{
	kb_free(reg->ds);
	reg->ds = NULL;
	reg->n = 0;
}

size_t vmk_ds_count(const struct vmk_ds_registry *reg)
{
	return reg->n;
}

const struct vmk_ds *vmk_ds_at(const struct vmk_ds_registry *reg, size_t i)
{
	return i < reg->n ? &reg->ds[i] : NULL;
}

const struct vmk_ds *vmk_ds_lookup(const struct vmk_ds_registry *reg, const char *name)
{
	for (size_t i = 0; i < reg->n; i++)
		if (strcmp(reg->ds[i].name, name) == 0)
			return &reg->ds[i];
	return NULL;
}

const struct vmk_ds *vmk_ds_default(const struct vmk_ds_registry *reg)
{
	const struct vmk_ds *ds = vmk_ds_lookup(reg, VMK_DS_DEFAULT_NAME);

	return ds ? ds : vmk_ds_at(reg, 0);
}

int vmk_ds_space(const struct vmk_ds *ds, uint64_t *capacity, uint64_t *free_bytes)
{
	struct statvfs sv;

	if (statvfs(ds->path, &sv) < 0)
		return -errno;
	*capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
	*free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

int vmk_ds_list(const struct vmk_ds_registry *reg, struct vmk_ds_info **out, size_t *n)
{
	struct vmk_ds_info *info = NULL;

	if (reg->n > 0) {
		info = kb_calloc(reg->n, sizeof(*info));
		if (info == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < reg->n; i++) {
		info[i].ds = reg->ds[i];
		info[i].space_err = vmk_ds_space(&reg->ds[i], &info[i].capacity, &info[i].free);
	}
	*out = info;
	*n = reg->n;
	return 0;
}

/* ---- paths inside datastores ---------------------------------------------------------- */

int vmk_ds_find_path(const struct vmk_ds_registry *reg, const char *path, const struct vmk_ds **ds,
		     char *rel, size_t rel_size)
{
	char real[PATH_MAX], root[PATH_MAX];

	if (realpath(path, real) == NULL)
		return -errno;
	for (size_t i = 0; i < reg->n; i++) {
		const char *rest;
		resolved(&reg->ds[i], root);
		if (!within(root, real))
			continue;
		rest = real + (strcmp(root, "/") == 0 ? 0 : strlen(root));
		while (*rest == '/')
			rest++;
		if (rel && (size_t)snprintf(rel, rel_size, "%s", rest) >= rel_size)
			return -ENAMETOOLONG;
		*ds = &reg->ds[i];
		return 0;
	}
	return KB_ENOTFOUND;
}

int vmk_ds_vm_dir(const struct vmk_ds *ds, const char *vm_name, char *out, size_t size)
{
	if (!vmk_ds_name_valid(vm_name))
		return KB_ECONFIG;
	if ((size_t)snprintf(out, size, "%s%s%s", ds->path, strcmp(ds->path, "/") ? "/" : "",
			     vm_name) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int vmk_ds_vmx_path(const struct vmk_ds *ds, const char *vm_name, char *out, size_t size)
{
	int rc = vmk_ds_vm_dir(ds, vm_name, out, size);
	size_t n;

	if (rc)
		return rc;
	n = strlen(out);
	if ((size_t)snprintf(out + n, size - n, "/%s.vmx", vm_name) >= size - n)
		return -ENAMETOOLONG;
	return 0;
}

int vmk_ds_vm_dir_create(const struct vmk_ds *ds, const char *vm_name, char *out, size_t size,
			 struct kb_errmsg *err)
{
	int rc = vmk_ds_vm_dir(ds, vm_name, out, size);

	if (rc == KB_ECONFIG) {
		kb_errmsg_setf(err,
			       "VM name \"%.64s\": use 1..%d of A-Z a-z 0-9 . _ -, not . or ..",
			       vm_name, VMK_DS_NAME_MAX);
		return rc;
	}
	if (rc) {
		kb_errmsg_setf(err, "VM directory for %s on %s: %s", vm_name, ds->name,
			       kb_strerror(rc));
		return rc;
	}
	if (mkdir(out, 0750) < 0) {
		rc = errno == EEXIST ? KB_EEXIST : -errno;
		kb_errmsg_setf(err, "%s: %s", out,
			       rc == KB_EEXIST ? "exists already" : kb_strerror(rc));
		return rc;
	}
	rc = fsync_dir(ds->path);
	if (rc) {
		kb_errmsg_setf(err, "%s: fsync: %s", ds->path, kb_strerror(rc));
		rmdir(out);
	}
	return rc;
}
