/*
 * Shared within ha/: little-endian field access for the on-disk records and the
 * synchronous file I/O both records use. Not part of the library's interface.
 */
#ifndef HA_INTERNAL_H
#define HA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "ha/hb.h"

/* Alignment of every buffer handed to O_DIRECT I/O: covers 512-byte and 4 KiB devices. */
#define HA__IO_ALIGN 4096

static inline void ha__put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void ha__put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void ha__put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t ha__le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ha__le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t ha__le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* True when bytes [from, to) of p are all zero. */
static inline int ha__zero(const uint8_t *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Opens path for synchronous writing with flags (O_RDWR or O_WRONLY, plus O_CREAT etc.):
 * O_DIRECT | O_DSYNC unless opts has HA_IO_NO_DIRECT or the filesystem refuses O_DIRECT
 * (EINVAL at open), else O_DSYNC alone. *io says which. Returns the fd or -errno. */
int ha__sync_open(const char *path, int flags, mode_t mode, unsigned opts, enum ha_io_mode *io);

/* Writes len bytes (buf aligned to HA__IO_ALIGN, len a multiple of 512) at off, whole,
 * restarting on EINTR and short writes. When the device refuses the O_DIRECT transfer
 * (EINVAL: e.g. a 4 KiB logical block size), clears O_DIRECT on fd, sets *io to
 * HA_IO_DSYNC and writes again. Returns 0 or -errno. */
int ha__sync_pwrite(int fd, const void *buf, size_t len, off_t off, enum ha_io_mode *io);

/* Reads up to len bytes from offset 0 of path into buf (aligned to HA__IO_ALIGN, len a
 * multiple of 512), bypassing the page cache with O_DIRECT where the filesystem allows it.
 * Refuses a symbolic link as the last component. Returns the number of bytes read (less
 * than len at end of file) or -errno. */
ssize_t ha__direct_read(const char *path, void *buf, size_t len, unsigned opts);

#endif
