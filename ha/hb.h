/*
 * Host heartbeat records on shared datastores: a host's lease on every VM it owns.
 *
 * Each host keeps one small file per shared datastore, <datastore>/.keel-hb/<host-id>
 * (host id as 16 lower-case hex digits), and rewrites it every ~250 ms with a growing
 * counter. The write is synchronous and bypasses the client's cache: O_DIRECT | O_DSYNC
 * where the filesystem supports O_DIRECT, O_DSYNC alone otherwise, so a reader on another
 * host (NFS included) sees the new counter as soon as the write returns. The record is
 * rewritten in place, one 512-byte block, never renamed: readers keep reading the same
 * file and a torn write is caught by the CRC.
 *
 * On-disk format (512 bytes, integers little-endian):
 *   0   u32  magic  "KHB1" (0x3142484b)
 *   4   u16  version, 1
 *   6   u16  record size, 512
 *   8   u64  host id (non-zero)
 *   16  u64  counter (non-zero, grows by one per beat)
 *   24  ...  reserved, zero
 *   508 u32  CRC-32C (kb_crc32c from 0) of bytes 0..507
 *
 * Failure modes: a record that fails any check (short, wrong magic, version or size,
 * non-zero reserved bytes, zero host id or counter, CRC mismatch) is an error, never a
 * value; an observer treats such a read as "no change seen" (see ha/lease.h).
 *
 * Nothing here keeps global state; a writer is used by one thread at a time.
 */
#ifndef HA_HB_H
#define HA_HB_H

#include <stdint.h>

#include "lib/err.h"

#define HA_HB_MAGIC	  0x3142484bu /* "KHB1" on disk */
#define HA_HB_VERSION	  1
#define HA_HB_RECORD_SIZE 512
#define HA_HB_DIR	  ".keel-hb"
#define HA_HB_INTERVAL_MS 250 /* a beat every ~250 ms */
#define HA_HB_PATH_MAX	  4096

/* Options for the synchronous I/O of ha/ (writers and readers). */
#define HA_IO_NO_DIRECT 0x1u /* never use O_DIRECT (tests; filesystems known to lie) */

enum ha_io_mode {
	HA_IO_DIRECT = 1, /* O_DIRECT | O_DSYNC */
	HA_IO_DSYNC,	  /* O_DSYNC, through the page cache */
};

struct ha_hb_record {
	uint64_t host_id;
	uint64_t counter;
};

/* Encodes rec into out (HA_HB_RECORD_SIZE bytes). */
void ha_hb_encode(const struct ha_hb_record *rec, uint8_t out[HA_HB_RECORD_SIZE]);

/* Decodes and validates len bytes at p (untrusted). Returns 0 and fills rec, or:
 * KB_ETRUNCATED (fewer than HA_HB_RECORD_SIZE bytes), KB_EPROTO (wrong magic, size field,
 * non-zero reserved bytes, zero host id or counter), KB_EVERSION, KB_ECHECKSUM (a torn or
 * damaged record). rec is untouched on error. */
int ha_hb_decode(const uint8_t *p, size_t len, struct ha_hb_record *rec);

/* Formats the path of host_id's record on datastore (a directory) into out. Returns 0 or
 * -ENAMETOOLONG. */
int ha_hb_path(const char *datastore, uint64_t host_id, char out[HA_HB_PATH_MAX]);

/* Reads the record at path with O_DIRECT where possible (a stale page cache must not hide
 * a stopped writer) and validates it. Returns 0, a decode error above, -ENOENT, or -errno;
 * err (may be NULL) then names the path and the reason. */
int ha_hb_read(const char *path, struct ha_hb_record *rec, struct kb_errmsg *err);

struct ha_hb_writer {
	int fd;
	enum ha_io_mode io;	 /* how the record is written; may fall back to HA_IO_DSYNC */
	struct ha_hb_record rec; /* last record written */
	char path[HA_HB_PATH_MAX];
};

/* Opens (creating <datastore>/.keel-hb and the file when missing) host_id's record on
 * datastore for writing and writes a first beat. The counter continues from the record
 * already on disk when it is valid and names host_id, so it never goes backwards across
 * restarts; it starts at 1 otherwise. opts: 0 or HA_IO_NO_DIRECT. Returns 0, -EINVAL for a
 * zero host id, or -errno; err (required) names the path. Caller closes with
 * ha_hb_writer_close(), on success only. */
int ha_hb_writer_open(struct ha_hb_writer *w, const char *datastore, uint64_t host_id,
		      unsigned opts, struct kb_errmsg *err);

/* Writes the next counter value, synchronously. Blocks for one synchronous write: call it
 * from a thread that may block, every HA_HB_INTERVAL_MS. Returns 0 or -errno (the counter
 * still moves on, so the next beat writes a higher value). */
int ha_hb_writer_beat(struct ha_hb_writer *w, struct kb_errmsg *err);

/* Closes the file; the record stays on disk and stops advancing. */
void ha_hb_writer_close(struct ha_hb_writer *w);

#endif
