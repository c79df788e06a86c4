/*
 * Reading and writing network.conf.
 *
 * Reading refuses files larger than 1 MiB before reading them and hands the bytes to the
 * strict parser (config.c). Writing goes to "<path>.tmp", which is written in full,
 * fsynced and renamed over the file; the directory is then fsynced so the rename itself is
 * durable. A failed write removes the temporary file and leaves the old file in place;
 * once the rename is done the save counts as done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"

int vmk__conf_load(const char *path, struct vmk__net_conf **out, struct kb_errmsg *err)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rv));
		return rv;
	}
	if (fstat(fd, &st) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rv));
		goto err_fd;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > VMK__CONF_SIZE_MAX) {
		rv = S_ISREG(st.st_mode) ? KB_ETOOBIG : KB_ECONFIG;
		kb_errmsg_setf(err, "%s: not a regular file of at most %u bytes", path,
			       VMK__CONF_SIZE_MAX);
		goto err_fd;
	}
	/* One byte more than the limit tells a file that grew since fstat(). */
	text = kb_malloc(VMK__CONF_SIZE_MAX + 1);
	if (!text) {
		rv = -ENOMEM;
		goto err_fd;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, VMK__CONF_SIZE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "reading %s: %s", path, kb_strerror(rv));
			goto err_text;
		}
		if (n == 0 || len + (size_t)n > VMK__CONF_SIZE_MAX) {
			len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	rv = vmk__conf_parse(text, len, out, err);
	if (rv < 0)
		kb_errmsg_wrapf(err, "%s", path);

err_text:
	kb_free(text);
err_fd:
	close(fd);
	return rv;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync of the directory holding path. */
static int sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rv = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

int vmk__conf_save(const char *path, const struct vmk__net_conf *c, struct kb_errmsg *err)
{
	char tmp[PATH_MAX];
	struct kb_buf b;
	int fd, rv;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		kb_errmsg_setf(err, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	kb_buf_init(&b, VMK__CONF_SIZE_MAX);
	rv = vmk__conf_format(c, &b);
	if (rv < 0) {
		kb_errmsg_setf(err, "formatting %s: %s", path, kb_strerror(rv));
		goto err_buf;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "creating %s: %s", tmp, kb_strerror(rv));
		goto err_buf;
	}
	rv = write_all(fd, b.data, b.len);
	if (rv == 0 && fsync(fd) < 0)
		rv = -errno;
	if (close(fd) < 0 && rv == 0)
		rv = -errno;
	if (rv < 0) {
		kb_errmsg_setf(err, "writing %s: %s", tmp, kb_strerror(rv));
		goto err_tmp;
	}
	if (rename(tmp, path) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "renaming %s to %s: %s", tmp, path, kb_strerror(rv));
		goto err_tmp;
	}
	/* The new file is in place; a failed directory sync only weakens durability. */
	(void)sync_dir(path);
	kb_buf_close(&b);
	return 0;

err_tmp:
	unlink(tmp);
err_buf:
	kb_buf_close(&b);
	return rv;
}
