/*
 * The host's id: one non-zero 64-bit number per state dir, shared by vmkernel (its
 * datastore heartbeat records, ha/hb.h) and clusterd (its Raft node id).
 *
 * On disk: <state dir>/clusterd.id, the id in decimal and a newline ("<decimal>\n"), mode
 * 0600. The name predates vmkernel's use of it and is kept so existing hosts keep their id.
 *
 * The file is made once and never rewritten. Creation is race-free between processes (and
 * threads): each creator writes and fsyncs a temporary file of its own, then link()s it to
 * the final name, which fails with EEXIST for everyone but the first; the others read and
 * return the winner's id. A reader therefore never sees a partly written file.
 */
#ifndef KB_NODEID_H
#define KB_NODEID_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

#define KB_NODE_ID_FILE "clusterd.id"

/* Reads <state_dir>/clusterd.id into *id, or makes it with a random non-zero id when it
 * does not exist yet; *created (may be NULL) says whether this call made it. Every caller
 * on one state dir gets the same id, even when several create the file at once.
 *
 * Creation: "<state_dir>/clusterd.id.<pid>.<random hex>" is created exclusively (mode 0600,
 * without following links), written, fsynced and closed, link()ed to clusterd.id, and
 * unlinked; the winner then fsyncs state_dir. EEXIST from link() means another creator won:
 * its file is read instead.
 *
 * Returns 0, or: KB_ECONFIG when the file does not hold one non-zero decimal u64 and a
 * newline ("<path>: not a node id"); -ELOOP for a symbolic link; KB_ETOOBIG; -errno from
 * getrandom, open, write, fsync, link or the directory fsync. err (required) then names
 * the path. On error *id is untouched. Blocks on the file system; any thread. */
int kb_node_id_get(const char *state_dir, uint64_t *id, bool *created, struct kb_errmsg *err);

/* kb_node_id_get() for callers that do not care whether the file was made. */
int kb_node_id(const char *state_dir, uint64_t *id, struct kb_errmsg *err);

#endif
