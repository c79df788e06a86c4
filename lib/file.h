/*
 * Small files on local disk: configuration, inventories and records that a daemon reads
 * whole and rewrites whole.
 *
 * Writing replaces a file atomically: a reader (or a restart after a crash) sees either
 * the old contents or the new ones, never a mix. Reading treats the file as untrusted: it
 * refuses symbolic links and anything that is not a regular file without blocking on it,
 * and never reads more than a caller-given limit, so the bytes can go straight to a
 * checked decoder.
 *
 * Every message set in err starts with the path it is about. Both functions block and
 * belong off an event loop; they keep no state and may be called from any thread.
 */
#ifndef KB_FILE_H
#define KB_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Replaces the file at path with len bytes of data (borrowed):
 *   1. a stale "<path>.tmp" is unlinked;
 *   2. "<path>.tmp" is created with O_CREAT | O_EXCL | O_NOFOLLOW and mode (less the
 *      umask), written whole (restarting on EINTR and short writes), fsynced and closed;
 *   3. it is renamed over path;
 *   4. the directory holding path is fsynced, so the rename survives a crash.
 * The file at path is never opened, so a symbolic link there is replaced by the new file,
 * not followed. "<path>.tmp" is never followed either: a symbolic link by that name is
 * removed in step 1.
 *
 * Returns 0, or -errno: -ENAMETOOLONG when "<path>.tmp" does not fit PATH_MAX, else the
 * error of the step that failed. On an error in steps 1-3 path is unchanged and no
 * "<path>.tmp" this call made is left behind (one that could not be unlinked in step 1,
 * such as a directory, stays). When only step 4 fails the new contents are in place but
 * may not survive a crash: the return value is then KB_ENOTSYNCED, so a caller that can
 * live with that tells it from a failed write.
 *
 * err (required) is set on error: "<path>: path too long", "<path>.tmp: <reason>" (steps
 * 1-2 before writing), "<path>.tmp: write: <reason>" (writing, fsync, close, rename) or
 * "<path>: fsync of the directory: <reason>". */
int kb_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct kb_errmsg *err);

/* Reads the whole file at path and appends its bytes to out, which the caller has set up
 * with kb_buf_init() and frees with kb_buf_close() on success and on error alike. The
 * file is opened with O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, so a symbolic link as the last
 * component is refused and a FIFO or a device does not block the open.
 *
 * Returns 0, or:
 *   -ELOOP        path is a symbolic link ("<path>: is a symbolic link");
 *   KB_ECONFIG    path is not a regular file (a directory, FIFO, socket or device:
 *                 "<path>: not a regular file"); nothing is read from it;
 *   KB_ETOOBIG    the file holds more than max bytes ("<path>: file is N bytes, at most
 *                 MAX allowed"; checked with fstat before reading), or grew past max
 *                 while being read ("<path>: file grew past MAX bytes while being read");
 *                 also when out's own limit is reached ("<path>: <reason>");
 *   -ENOMEM       out could not grow ("<path>: out of memory");
 *   -errno        open, fstat or read failed ("<path>: <reason>", "<path>: read:
 *                 <reason>"); -ENOENT when the file does not exist.
 * On error out keeps its previous length (its storage may have grown). err (required) is
 * set on error only. At most max + 1 bytes are read; max must be below SIZE_MAX. */
int kb_file_read_small(const char *path, size_t max, struct kb_buf *out, struct kb_errmsg *err);

#endif
