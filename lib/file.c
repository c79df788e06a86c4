/*
 * Atomic replacement and bounded reading of small files (see file.h).
 *
 * Happy path, writing: unlink a stale "<path>.tmp", create it exclusively without following
 * links, write, fsync, close, rename over path, fsync the directory. Reading: open without
 * following a final symlink and without blocking, fstat, refuse anything but a regular file
 * of at most max bytes, then read to the end, never more than max + 1 bytes.
 *
 * Failure modes: any error before the rename removes the temporary file and leaves path
 * as it was; a failed directory fsync is reported although the new file is in place. A
 * failed read leaves the caller's buffer at its previous length.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/file.h"

#define READ_STEP 4096 /* growth of the buffer when a file is larger than fstat said */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* fsync of the directory holding path, so that a rename into it is durable. */
static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int kb_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct kb_errmsg *err)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		kb_errmsg_setf(err, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	if (unlink(tmp) < 0 && errno != ENOENT) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rc));
		return rc;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rc));
		return rc;
	}
	rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		kb_errmsg_setf(err, "%s: write: %s", tmp, kb_strerror(rc));
		goto unlink_tmp;
	}
	rc = fsync_parent(path);
	if (rc) {
		kb_errmsg_setf(err, "%s: fsync of the directory: %s", path, kb_strerror(rc));
		rc = KB_ENOTSYNCED;
	}
	return rc;

unlink_tmp:
	unlink(tmp);
	return rc;
}

/* Makes room for n more bytes in out, with a message on failure. */
static int grow(struct kb_buf *out, size_t n, const char *path, struct kb_errmsg *err)
{
	int rc = kb_buf_reserve(out, n);

	if (rc == -ENOMEM)
		kb_errmsg_setf(err, "%s: out of memory", path);
	else if (rc)
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
	return rc;
}

int kb_file_read_small(const char *path, size_t max, struct kb_buf *out, struct kb_errmsg *err)
{
	size_t start = out->len, got = 0;
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", path,
			       rc == -ELOOP ? "is a symbolic link" : kb_strerror(rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = KB_ECONFIG;
		kb_errmsg_setf(err, "%s: not a regular file", path);
		goto close_fd;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		rc = KB_ETOOBIG;
		kb_errmsg_setf(err, "%s: file is %lld bytes, at most %zu allowed", path,
			       (long long)st.st_size, max);
		goto close_fd;
	}
	/* Room for the whole file and one byte more, to notice a file that grew. */
	rc = grow(out, (size_t)st.st_size + 1, path, err);
	if (rc)
		goto close_fd;
	for (;;) {
		size_t room = out->cap - out->len;
		ssize_t k;

		if (room == 0) {
			rc = grow(out, READ_STEP < max + 1 - got ? READ_STEP : max + 1 - got, path,
				  err);
			if (rc)
				goto restore_len;
			room = out->cap - out->len;
		}
		if (room > max + 1 - got)
			room = max + 1 - got;
		k = read(fd, out->data + out->len, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			kb_errmsg_setf(err, "%s: read: %s", path, kb_strerror(rc));
			goto restore_len;
		}
		if (k == 0)
			break;
		out->len += (size_t)k;
		got += (size_t)k;
		if (got > max) {
			rc = KB_ETOOBIG;
			kb_errmsg_setf(err, "%s: file grew past %zu bytes while being read", path,
				       max);
			goto restore_len;
		}
	}
	goto close_fd;

restore_len:
	out->len = start;
close_fd:
	close(fd);
	return rc;
}
