/*
 * The Raft FSM over clusterd's replicated state.
 *
 * apply: decode the batch, reserve everything the batch could need (results, inserts),
 * then apply each command; once reservation succeeded nothing can fail half-way, so an
 * entry is applied exactly once or (on RAFT_NOMEM) not at all and retried by libraft.
 * snapshot: encode the state. restore: decode into a fresh state and swap it in only when
 * the whole snapshot is valid.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clusterd/apply.h"
#include "clusterd/codec.h"
#include "clusterd/fsm.h"
#include "clusterd/snapshot.h"
#include "lib/heap.h"

int cd_fsm_init(struct cd_fsm *f)
{
	memset(f, 0, sizeof(*f));
	cd_state_init(&f->state);
	f->raft.version = 2; /* snapshot_finalize NULL: libraft frees snapshot buffers */
	f->raft.data = f;
	f->raft.apply = cd_fsm_apply;
	f->raft.snapshot = cd_fsm_snapshot;
	f->raft.restore = cd_fsm_restore;
	return 0;
}

void cd_fsm_close(struct cd_fsm *f)
{
	cd_state_close(&f->state);
	kb_free(f->result.cmds);
	memset(f, 0, sizeof(*f));
}

const struct cd_state *cd_fsm_state(const struct cd_fsm *f)
{
	return &f->state;
}

static void set_reason(char *dst, const char *src)
{
	snprintf(dst, CD_REASON_MAX, "%s", src);
}

static int reserve_results(struct cd_fsm *f, unsigned n)
{
	struct cd_cmd_result *p;

	if (n <= f->cap_cmds)
		return 0;
	p = kb_realloc(f->result.cmds, (size_t)n * sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	f->result.cmds = p;
	f->cap_cmds = n;
	return 0;
}

int cd_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct cd_fsm *f = fsm->data;
	struct cd_result *res = &f->result;
	Keel__Cluster__CommandBatch *b;
	struct kb_errmsg e = {{0}};
	unsigned hosts = 0, vms = 0, ops = 0;
	int rv;

	*result = NULL;
	rv = cd_batch_decode(buf->base, buf->len, &b, &e);
	if (rv == -ENOMEM)
		return RAFT_NOMEM;
	res->n = 0;
	res->n_applied = 0;
	res->status = rv;
	res->reason[0] = '\0';
	if (rv != 0) {
		set_reason(res->reason, e.msg);
		*result = res;
		return 0;
	}
	for (size_t i = 0; i < b->n_commands; i++)
		cd__command_inserts(b->commands[i], &hosts, &vms, &ops);
	if (reserve_results(f, (unsigned)b->n_commands) ||
	    cd__state_reserve(&f->state, hosts, vms, ops)) {
		cd_batch_free(b);
		return RAFT_NOMEM;
	}
	for (size_t i = 0; i < b->n_commands; i++) {
		struct cd_cmd_result *c = &res->cmds[i];

		e.msg[0] = '\0';
		c->code = cd__command_apply(&f->state, b->commands[i], &e);
		set_reason(c->reason, c->code ? e.msg : "");
		res->n_applied += c->code == 0;
	}
	res->n = (unsigned)b->n_commands;
	cd_batch_free(b);
	*result = res;
	return 0;
}

int cd_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cd_fsm *f = fsm->data;
	struct kb_errmsg e = {{0}};
	struct raft_buffer *b;
	int rv;

	b = raft_malloc(sizeof(*b));
	if (b == NULL)
		return RAFT_NOMEM;
	rv = cd_snapshot_encode(&f->state, b, &e);
	if (rv != 0) {
		raft_free(b);
		return rv == -ENOMEM ? RAFT_NOMEM : RAFT_TOOBIG;
	}
	*bufs = b;
	*n_bufs = 1;
	return 0;
}

int cd_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct cd_fsm *f = fsm->data;
	struct kb_errmsg e = {{0}};
	struct cd_state fresh;
	int rv;

	cd_state_init(&fresh);
	rv = cd_snapshot_decode(buf->base, buf->len, &fresh, &e);
	if (rv != 0)
		return rv == -ENOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
	cd__state_swap(&f->state, &fresh);
	cd_state_close(&fresh);
	raft_free(buf->base);
	return 0;
}

unsigned cd_fsm_snapshot_threshold(const struct cd_fsm *f)
{
	/* Rough encoded sizes of a host, a VM and an operation, and of an average entry
	 * (a batch of a few small commands). */
	const uint64_t host_bytes = 96, vm_bytes = 192, op_bytes = 80, entry_bytes = 128;
	uint64_t state = 64 + f->state.n_hosts * host_bytes + f->state.n_vms * vm_bytes +
			 f->state.n_ops * op_bytes;
	uint64_t n = 4 * state / entry_bytes;

	if (n < CD_SNAPSHOT_THRESHOLD_MIN)
		return CD_SNAPSHOT_THRESHOLD_MIN;
	if (n > CD_SNAPSHOT_THRESHOLD_MAX)
		return CD_SNAPSHOT_THRESHOLD_MAX;
	return (unsigned)n;
}

int cd_propose(struct raft *r, struct raft_apply *req, Keel__Cluster__Command *const *cmds,
	       unsigned n, raft_apply_cb cb, struct kb_errmsg *e)
{
	struct raft_buffer buf;
	int rv;

	rv = cd_batch_encode(cmds, n, &buf, e);
	if (rv != 0) {
		kb_errmsg_wrapf(e, "propose");
		return rv;
	}
	rv = raft_apply(r, req, &buf, 1, cb);
	if (rv != 0) {
		/* Ownership passes to libraft only on success. */
		raft_free(buf.base);
		kb_errmsg_setf(e, "propose: %s", raft_strerror(rv));
		return rv;
	}
	return 0;
}
