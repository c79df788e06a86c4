/*
 * Synchronous, cache-bypassing file I/O for the heartbeat record and the VM lock file.
 *
 * Happy path: open with O_DIRECT | O_DSYNC and move whole aligned blocks. Filesystems that
 * refuse O_DIRECT at open (EINVAL: some FUSE and older tmpfs) get O_DSYNC alone; devices
 * that refuse the transfer size (EINVAL on a 512-byte O_DIRECT transfer to a 4 KiB-sector
 * device) get O_DIRECT cleared on the open file and the operation repeated.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ha/ha_internal.h"

int ha__sync_open(const char *path, int flags, mode_t mode, unsigned opts, enum ha_io_mode *io)
{
	int fd = -1;

	flags |= O_CLOEXEC | O_NOFOLLOW | O_DSYNC;
	if (!(opts & HA_IO_NO_DIRECT)) {
		fd = open(path, flags | O_DIRECT, mode);
		if (fd >= 0) {
			*io = HA_IO_DIRECT;
			return fd;
		}
		if (errno != EINVAL)
			return -errno;
	}
	fd = open(path, flags, mode);
	if (fd < 0)
		return -errno;
	*io = HA_IO_DSYNC;
	return fd;
}

static int drop_direct(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_DIRECT))
		return -EINVAL;
	if (fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return -errno;
	return 0;
}

int ha__sync_pwrite(int fd, const void *buf, size_t len, off_t off, enum ha_io_mode *io)
{
	const uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t k = pwrite(fd, p + done, len - done, off + (off_t)done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EINVAL && *io == HA_IO_DIRECT && done == 0) {
			int rc = drop_direct(fd);
			if (rc < 0)
				return rc;
			*io = HA_IO_DSYNC;
			continue;
		}
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		done += (size_t)k;
	}
	return 0;
}

ssize_t ha__direct_read(const char *path, void *buf, size_t len, unsigned opts)
{
	enum ha_io_mode io = HA_IO_DSYNC;
	uint8_t *p = buf;
	size_t done = 0;
	struct stat st;
	ssize_t rc;
	int fd = -1;

	if (!(opts & HA_IO_NO_DIRECT)) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_DIRECT);
		if (fd >= 0)
			io = HA_IO_DIRECT;
		else if (errno != EINVAL)
			return -errno;
	}
	if (fd < 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			return -errno;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	while (done < len) {
		ssize_t k = pread(fd, p + done, len - done, (off_t)done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EINVAL && io == HA_IO_DIRECT && done == 0) {
			rc = drop_direct(fd);
			if (rc < 0)
				goto out;
			io = HA_IO_DSYNC;
			continue;
		}
		if (k < 0) {
			rc = -errno;
			goto out;
		}
		done += (size_t)k;
		if (k == 0 || done < len)
			break; /* end of file: a regular file reads short only there */
	}
	rc = (ssize_t)done;
out:
	close(fd);
	return rc;
}
