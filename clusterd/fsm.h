/*
 * clusterd's Raft state machine: struct raft_fsm for libraft 0.15 over the replicated
 * state (clusterd/state.h), and the helpers the daemon uses to propose commands.
 *
 * Every Raft log entry is one CommandBatch (proto/cluster.proto). apply() decodes it with
 * clusterd's checked decoder and applies its commands in order, each one independently:
 * a refused command changes nothing and does not stop the ones after it. The outcome of
 * each command comes back to the proposer as the `result` of its raft_apply callback, a
 * struct cd_result. snapshot() serialises the whole state (clusterd/snapshot.h); restore()
 * validates a snapshot completely before it replaces the state.
 *
 * Threads: everything here runs on the thread of the Raft instance's loop.
 */
#ifndef CD_FSM_H
#define CD_FSM_H

#include <raft.h>

#include "cluster.pb-c.h"
#include "clusterd/state.h"
#include "lib/err.h"

#define CD_REASON_MAX 160

/* The outcome of one command: 0 (applied) or the refusal code of cd__command_apply()
 * (-EINVAL, KB_EEXIST, KB_ENOTFOUND, KB_ESTATE, KB_ETOOBIG), with the reason. */
struct cd_cmd_result {
	int code;
	char reason[CD_REASON_MAX];
};

/* The outcome of one batch. status is 0 when the batch decoded (then cmds[0..n) say what
 * happened to each command), or the decoder's code when the whole entry was refused
 * (KB_EPROTO, KB_ETOOBIG, KB_EVERSION; reason says why; n is 0). */
struct cd_result {
	int status;
	char reason[CD_REASON_MAX];
	unsigned n;	    /* commands in the batch */
	unsigned n_applied; /* of which applied */
	struct cd_cmd_result *cmds;
};

struct cd_fsm {
	struct raft_fsm raft; /* hand &fsm->raft to raft_init() or raft_fixture_grow() */
	struct cd_state state;
	struct cd_result result; /* of the last applied entry */
	unsigned cap_cmds;
};

/* Initialises an FSM with an empty state. 0 (never fails today; int for the future). */
int cd_fsm_init(struct cd_fsm *f);
/* Frees the state and results. Call only after the Raft instance using it is closed. */
void cd_fsm_close(struct cd_fsm *f);

/* The replicated state, borrowed until the next applied entry or restored snapshot. */
const struct cd_state *cd_fsm_state(const struct cd_fsm *f);

/* The FSM callbacks (also in f->raft), exported for tests that drive the FSM without
 * Raft. apply: *result is a struct cd_result owned by the FSM and valid only until the
 * next apply on it — inside the raft_apply callback, not after. Returns 0 for every entry
 * it consumed, refused commands and undecodable batches included (all hosts must reach
 * the same verdict); RAFT_NOMEM when memory ran out before anything changed, so libraft
 * applies the entry again later. snapshot: one buffer from raft_malloc() that libraft
 * frees. restore: takes ownership of buf->base on success only; on failure (RAFT_NOMEM,
 * RAFT_MALFORMED) the state is unchanged. */
int cd_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result);
int cd_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs);
int cd_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf);

/* A snapshot threshold (in entries, for raft_set_snapshot_threshold()) sized from the
 * state: snapshots cost in proportion to the state, so a bigger state snapshots less often
 * — roughly when the log since the last snapshot holds four times the state's size —
 * within [CD_SNAPSHOT_THRESHOLD_MIN, CD_SNAPSHOT_THRESHOLD_MAX]. Call it again as the
 * state grows. */
#define CD_SNAPSHOT_THRESHOLD_MIN 1024
#define CD_SNAPSHOT_THRESHOLD_MAX 65536
unsigned cd_fsm_snapshot_threshold(const struct cd_fsm *f);

/* Encodes cmds[0..n) as one batch and submits it with raft_apply(r, req, ..., cb). The
 * commands are borrowed for the call. req is borrowed until cb, which gets the batch's
 * struct cd_result as its result (valid only inside cb) when status is 0. Errors: the
 * encoder's (KB_ETOOBIG, -ENOMEM) or raft_apply's (RAFT_NOTLEADER, ...) code, with e
 * saying which; cb is not called then and nothing is left allocated. */
int cd_propose(struct raft *r, struct raft_apply *req, Keel__Cluster__Command *const *cmds,
	       unsigned n, raft_apply_cb cb, struct kb_errmsg *e);

/* A raft_io that forwards everything to another one (raft_uv's, or raft_fixture's) and
 * works around a replication bug of libraft 0.15 (docs/clusterd.md, "libraft 0.15 and
 * stale log tails"): a follower that accepts an AppendEntries without writing anything
 * reports its whole stored log as matched, stale entries of an older term included, and the
 * leader takes them for its own. This wrapper caps such a success at the request's
 * prev_log_index + n_entries, which is what Raft says the follower may report.
 *
 * Use: cd_raft_io_wrap(&w, inner) after raft_uv_init(inner, ...), then
 * raft_init(r, &w.io, ...). w must outlive the Raft instance; closing r closes inner. */
struct cd_raft_io {
	struct raft_io io; /* first: hand &w->io to raft_init() */
	struct raft_io *inner;
	raft_io_recv_cb recv;	/* libraft's receive callback */
	raft_id ae_from;	/* sender of the AppendEntries being handled, or 0 */
	raft_index ae_last;	/* its prev_log_index + n_entries */
	raft_io_close_cb close; /* libraft's close callback */
};
void cd_raft_io_wrap(struct cd_raft_io *w, struct raft_io *inner);

#endif
