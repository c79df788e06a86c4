/*
 * cgroupfs file helpers for kernel/res: one write(2) per value (cgroupfs parses each
 * write on its own), small reads, directories made and removed with the retries cgroupfs
 * needs, and this process's own cgroup from /proc/self/cgroup.
 *
 * The same code runs against a fake tree of plain directories in the unit tests
 * (res->plain_dirs): files are then created when written, and removing a group removes
 * its files first, while a subdirectory keeps it busy as it does in cgroupfs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernel/res/res_internal.h"
#include "lib/heap.h"

void vmk__res_seterr(struct kb_errmsg *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

int vmk__res_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

bool vmk__res_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int vmk__res_write(const struct vmk_res *res, const char *dir, const char *file,
		   struct kb_errmsg *err, const char *fmt, ...)
{
	int flags = O_WRONLY | O_TRUNC | O_CLOEXEC | (res->plain_dirs ? O_CREAT : 0);
	char path[4096], text[64];
	va_list ap;
	ssize_t n;
	int fd, rc;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	rc = vmk__res_path(path, sizeof(path), "%s/%s", dir, file);
	if (rc < 0) {
		vmk__res_seterr(err, "path too long: %s/%s", dir, file);
		return rc;
	}
	fd = open(path, flags, 0644);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	n = write(fd, text, strlen(text));
	rc = n < 0 ? -errno : (size_t)n == strlen(text) ? 0 : -EIO;
	close(fd);
	if (rc == 0)
		return 0;
fail:
	vmk__res_seterr(err, "cannot write %.*s to %s: %s", (int)strcspn(text, "\n"), text, path,
			kb_strerror(rc));
	return rc;
}

ssize_t vmk__res_read(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len + 1 < size) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

int vmk__res_read_all(const char *path, size_t max, char **out)
{
	size_t cap = 4096, len = 0;
	char *buf, *grown;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = kb_malloc(cap);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto close_fd;
	}
	for (;;) {
		if (len + 1 == cap) {
			if (cap >= max) {
				rc = -EFBIG;
				goto free_buf;
			}
			grown = kb_realloc(buf, cap * 2);
			if (grown == NULL) {
				rc = -ENOMEM;
				goto free_buf;
			}
			buf = grown;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto free_buf;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
	return 0;

free_buf:
	kb_free(buf);
close_fd:
	close(fd);
	return rc;
}

int vmk__res_read_u64(const char *dir, const char *file, const char *uuid, uint64_t *v,
		      struct kb_errmsg *err)
{
	char path[4096], text[64], *end;
	ssize_t n;
	int rc;

	rc = vmk__res_path(path, sizeof(path), "%s/%s", dir, file);
	if (rc < 0) {
		vmk__res_seterr(err, "path too long: %s/%s", dir, file);
		return rc;
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
	errno = 0;
	*v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\0' && *end != '\n')) {
		vmk__res_seterr(err, "%s does not hold a number", path);
		return KB_EPROTO;
	}
	return 0;
}

int vmk__res_mkdir(const char *path)
{
	if (mkdir(path, 0755) == 0)
		return 0;
	return errno == EEXIST ? 1 : -errno;
}

int vmk__res_has_subdir(const char *path)
{
	char entry[4096];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	d = opendir(path);
	if (d == NULL)
		return -errno;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = vmk__res_path(entry, sizeof(entry), "%s/%s", path, de->d_name);
		if (rc == 0 && lstat(entry, &st) < 0)
			rc = -errno;
		else if (rc == 0 && S_ISDIR(st.st_mode))
			rc = 1;
	}
	closedir(d);
	return rc;
}

/* Plain directories only: a subdirectory makes the directory busy, as a child group does
 * in cgroupfs; otherwise its regular files are removed. */
static int empty_plain_dir(const char *path)
{
	char file[4096];
	struct dirent *de;
	DIR *d;
	int rc;

	rc = vmk__res_has_subdir(path);
	if (rc != 0)
		return rc > 0 ? -EBUSY : rc;
	d = opendir(path);
	if (d == NULL)
		return -errno;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = vmk__res_path(file, sizeof(file), "%s/%s", path, de->d_name);
		if (rc == 0 && unlink(file) < 0)
			rc = -errno;
	}
	closedir(d);
	return rc;
}

int vmk__res_rmdir(const struct vmk_res *res, const char *path, uint32_t timeout_ms)
{
	const struct timespec step = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
	uint32_t waited = 0;
	int rc;

	for (;;) {
		rc = 0;
		if (res->plain_dirs && vmk__res_exists(path))
			rc = empty_plain_dir(path);
		if (rc == 0)
			rc = rmdir(path) == 0 ? 0 : -errno;
		if (rc == -ENOENT)
			return 0;
		/* A group whose last task has just been reaped can stay busy for a moment. */
		if (rc != -EBUSY || waited >= timeout_ms)
			return rc;
		nanosleep(&step, NULL);
		waited += 10;
	}
}

void vmk__res_unmake_parent(const struct vmk_res *res, const char *dir, unsigned made)
{
	char path[4096];
	char *slash;

	if (vmk__res_path(path, sizeof(path), "%s", dir) < 0)
		return;
	while (made-- > 0) {
		vmk__res_rmdir(res, path, 0);
		slash = strrchr(path, '/');
		if (slash == NULL)
			return;
		*slash = '\0';
	}
}

int vmk__res_make_parent(const struct vmk_res *res, const char *base, const char *parent,
			 const char *subtree, uint64_t min_bytes, char **out, unsigned *made,
			 struct kb_errmsg *err)
{
	char path[4096];
	size_t len, at;
	int rc;

	*made = 0;
	rc = vmk__res_path(path, sizeof(path), "%s/%s", base, parent);
	if (rc < 0) {
		vmk__res_seterr(err, "path too long: %s/%s", base, parent);
		return rc;
	}
	len = strlen(path);
	at = strlen(base) + 1;
	/* Cut path after each level of parent in turn: base/keel, then base/keel/vms. Once
	 * a level is new, so are all below it: made counts the deepest levels. */
	while (at <= len) {
		at += strcspn(path + at, "/");
		path[at] = '\0';
		rc = vmk__res_mkdir(path);
		if (rc < 0) {
			vmk__res_seterr(err, "cannot create cgroup %s: %s", path, kb_strerror(rc));
			goto unmake;
		}
		*made += rc == 0;
		if (subtree != NULL) {
			rc = vmk__res_write(res, path, "cgroup.subtree_control", err, "%s\n",
					    subtree);
			if (rc < 0)
				goto unmake;
		}
		if (min_bytes != 0) {
			rc = vmk__res_write(res, path, "memory.min", err, "%" PRIu64 "\n",
					    min_bytes);
			if (rc < 0)
				goto unmake;
		}
		if (at < len)
			path[at] = '/';
		at++;
	}
	*out = kb_strdup(path);
	if (*out == NULL) {
		vmk__res_seterr(err, "out of memory");
		rc = -ENOMEM;
		goto unmake;
	}
	return 0;

unmake:
	/* path ends at the deepest level reached. */
	vmk__res_unmake_parent(res, path, *made);
	*made = 0;
	return rc;
}

int vmk__res_self_cgroup(const char *proc_root, const char *controller, char *buf, size_t size,
			 struct kb_errmsg *err)
{
	char path[4096], *text = NULL, *line, *save = NULL, *ctrls, *cg, *tok, *save2;
	bool match;
	int rc;

	rc = vmk__res_path(path, sizeof(path), "%s/self/cgroup", proc_root);
	if (rc == 0)
		rc = vmk__res_read_all(path, 1 << 20, &text);
	if (rc < 0) {
		vmk__res_seterr(err, "cannot read %s: %s", path, kb_strerror(rc));
		return rc;
	}
	rc = KB_ENOTFOUND;
	/* Lines are "hierarchy-id:controller,controller:/path"; v2's is "0::/path". */
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		ctrls = strchr(line, ':');
		cg = ctrls != NULL ? strchr(ctrls + 1, ':') : NULL;
		if (cg == NULL)
			continue;
		*ctrls++ = '\0';
		*cg++ = '\0';
		if (controller == NULL) {
			match = strcmp(line, "0") == 0 && *ctrls == '\0';
		} else {
			match = false;
			for (tok = strtok_r(ctrls, ",", &save2); tok != NULL && !match;
			     tok = strtok_r(NULL, ",", &save2))
				match = strcmp(tok, controller) == 0;
		}
		if (match) {
			rc = vmk__res_path(buf, size, "%s", cg);
			break;
		}
	}
	kb_free(text);
	if (rc == KB_ENOTFOUND)
		vmk__res_seterr(err, "%s names no cgroup for %s", path,
				controller != NULL ? controller : "the unified hierarchy");
	else if (rc < 0)
		vmk__res_seterr(err, "cgroup path in %s too long", path);
	return rc;
}

int vmk__res_add_base(struct vmk_res *res, enum vmk_res_controller c, const char *base)
{
	struct stat st, other;
	unsigned i;

	if (stat(base, &st) < 0)
		return -errno;
	for (i = 0; i < res->ndirs; i++) {
		if (stat(res->base[i], &other) == 0 && other.st_dev == st.st_dev &&
		    other.st_ino == st.st_ino) {
			res->dir_of[c] = i;
			return 0;
		}
	}
	res->base[res->ndirs] = kb_strdup(base);
	if (res->base[res->ndirs] == NULL)
		return -ENOMEM;
	res->dir_of[c] = res->ndirs++;
	return 0;
}
