/*
 * The snapshot format of clusterd's replicated state.
 *
 * A snapshot is one buffer: a 24-byte header, then the State message of
 * proto/cluster.proto. Header, all integers little-endian:
 *
 *   offset 0   4 bytes  magic "KCST"
 *   offset 4   u32      format version (CD_SNAPSHOT_VERSION)
 *   offset 8   u64      payload length in bytes (at most CD_SNAPSHOT_MAX_BYTES)
 *   offset 16  u32      CRC-32C of the payload
 *   offset 20  u32      CRC-32C of bytes 0..19
 *
 * The payload lists hosts by id, VMs by uuid, operations by id, join token records by id
 * and events oldest first, so equal states give byte-identical snapshots (the
 * deterministic tests compare them).
 */
#ifndef CD_SNAPSHOT_H
#define CD_SNAPSHOT_H

#include <stddef.h>

#include "clusterd/state.h"
#include "lib/err.h"

#define CD_SNAPSHOT_MAGIC	"KCST"
#define CD_SNAPSHOT_VERSION	1
#define CD_SNAPSHOT_HEADER_SIZE 24
#define CD_SNAPSHOT_MAX_BYTES	(192u << 20)

struct raft_buffer;

/* Serialises the whole state into a buffer from raft_malloc(): on success out->base is the
 * caller's, to free with raft_free() (or to hand to libraft). -ENOMEM or KB_ETOOBIG;
 * nothing allocated on failure. */
int cd_snapshot_encode(const struct cd_state *s, struct raft_buffer *out, struct kb_errmsg *e);

/* Decodes and validates a snapshot into out, an initialised empty state that is the
 * caller's on success (close it with cd_state_close()). Checks the size limit, header,
 * version, both checksums, every field, and the invariants of cd__state_check(). Errors:
 * KB_ETRUNCATED, KB_ETOOBIG, KB_EPROTO, KB_EVERSION, KB_ECHECKSUM, -ENOMEM; out is left
 * empty. The input is borrowed. */
int cd_snapshot_decode(const void *data, size_t len, struct cd_state *out, struct kb_errmsg *e);

#endif
