/*
 * Reading and writing network.conf.
 *
 * Reading refuses files larger than 1 MiB before reading them and hands the bytes to the
 * strict parser (config.c). Writing replaces the file atomically with kb_file_write_atomic()
 * (lib/file.h): "<path>.tmp" is written in full, fsynced and renamed over the file, and the
 * directory is then fsynced so the rename itself is durable. A failed write removes the
 * temporary file and leaves the old file in place; once the rename is done the save counts
 * as done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/net/net_internal.h"
#include "lib/file.h"
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

int vmk__conf_save(const char *path, const struct vmk__net_conf *c, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, VMK__CONF_SIZE_MAX);
	rv = vmk__conf_format(c, &b);
	if (rv < 0) {
		kb_errmsg_setf(err, "formatting %s: %s", path, kb_strerror(rv));
		goto close_buf;
	}
	rv = kb_file_write_atomic(path, b.data, b.len, 0644, err);
	/* The new file is in place; a failed directory sync only weakens durability. */
	if (rv == KB_ENOTSYNCED)
		rv = 0;
close_buf:
	kb_buf_close(&b);
	return rv;
}
