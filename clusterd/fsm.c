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
	size_t auth = 0;
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
	for (size_t i = 0; i < b->n_commands; i++) {
		size_t a = cd__command_auth_bytes(b->commands[i]);

		cd__command_inserts(b->commands[i], &hosts, &vms, &ops);
		auth = a > auth ? a : auth;
	}
	if (reserve_results(f, (unsigned)b->n_commands) ||
	    cd__state_reserve(&f->state, hosts, vms, ops) ||
	    cd__state_auth_reserve(&f->state, auth)) {
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
			 f->state.n_ops * op_bytes + f->state.auth.len;
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

/* The raft_io wrapper. libraft calls its methods with &w->io; the inner io calls libraft's
 * callbacks with itself, and libraft finds its struct raft in io->data: both carry it. */
static struct cd_raft_io *wrapper_of(struct raft_io *io)
{
	return (struct cd_raft_io *)io;
}

static struct raft_io *inner_of(struct raft_io *io)
{
	struct cd_raft_io *w = wrapper_of(io);

	w->inner->data = io->data;
	return w->inner;
}

static int wrap_init(struct raft_io *io, raft_id id, const char *address)
{
	struct raft_io *in = inner_of(io);
	int rv = in->init(in, id, address);

	memcpy(io->errmsg, in->errmsg, sizeof(io->errmsg));
	return rv;
}

static void wrap_close_cb(struct raft_io *in)
{
	struct raft *r = in->data;
	struct cd_raft_io *w = wrapper_of(r->io);

	if (w->close != NULL)
		w->close(&w->io);
}

static void wrap_close(struct raft_io *io, raft_io_close_cb cb)
{
	struct raft_io *in = inner_of(io);

	wrapper_of(io)->close = cb;
	in->close(in, wrap_close_cb);
}

static int wrap_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
		     struct raft_snapshot **snapshot, raft_index *start_index,
		     struct raft_entry *entries[], size_t *n_entries)
{
	struct raft_io *in = inner_of(io);
	int rv = in->load(in, term, voted_for, snapshot, start_index, entries, n_entries);

	memcpy(io->errmsg, in->errmsg, sizeof(io->errmsg));
	return rv;
}

static void wrap_recv_cb(struct raft_io *in, struct raft_message *m)
{
	struct raft *r = in->data;
	struct cd_raft_io *w = wrapper_of(r->io);

	if (m->type == RAFT_IO_APPEND_ENTRIES) {
		w->ae_from = m->server_id;
		w->ae_last = m->append_entries.prev_log_index + m->append_entries.n_entries;
	}
	w->recv(&w->io, m);
	w->ae_from = 0;
}

static int wrap_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
		      raft_io_recv_cb recv)
{
	struct raft_io *in = inner_of(io);
	int rv;

	wrapper_of(io)->recv = recv;
	rv = in->start(in, msecs, tick, wrap_recv_cb);
	memcpy(io->errmsg, in->errmsg, sizeof(io->errmsg));
	return rv;
}

static int wrap_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
	struct raft_io *in = inner_of(io);
	int rv = in->bootstrap(in, conf);

	memcpy(io->errmsg, in->errmsg, sizeof(io->errmsg));
	return rv;
}

static int wrap_recover(struct raft_io *io, const struct raft_configuration *conf)
{
	struct raft_io *in = inner_of(io);
	int rv = in->recover(in, conf);

	memcpy(io->errmsg, in->errmsg, sizeof(io->errmsg));
	return rv;
}

static int wrap_set_term(struct raft_io *io, raft_term term)
{
	struct raft_io *in = inner_of(io);

	return in->set_term(in, term);
}

static int wrap_set_vote(struct raft_io *io, raft_id server_id)
{
	struct raft_io *in = inner_of(io);

	return in->set_vote(in, server_id);
}

/* libraft 0.15 answers an AppendEntries it had nothing to write for (a heartbeat, or
 * entries it already holds) with last_log_index = its last stored index, even when entries
 * after prev_log_index + n_entries come from an older term and differ from the leader's.
 * The leader caps that at its own last index and records those entries as matched: it then
 * ignores the follower's later rejections (the follower stalls until leadership changes)
 * and counts the follower towards commit quorums for entries it does not hold. The answer
 * is sent synchronously while the request is being handled, so cap it here. */
static int wrap_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
		     raft_io_send_cb cb)
{
	struct cd_raft_io *w = wrapper_of(io);
	struct raft_io *in = inner_of(io);
	struct raft_message capped;

	if (w->ae_from != 0 && m->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
	    m->server_id == w->ae_from && m->append_entries_result.rejected == 0 &&
	    m->append_entries_result.last_log_index > w->ae_last) {
		capped = *m;
		capped.append_entries_result.last_log_index = w->ae_last;
		m = &capped;
	}
	return in->send(in, req, m, cb);
}

static int wrap_append(struct raft_io *io, struct raft_io_append *req,
		       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
	struct raft_io *in = inner_of(io);

	return in->append(in, req, entries, n, cb);
}

static int wrap_truncate(struct raft_io *io, raft_index index)
{
	struct raft_io *in = inner_of(io);

	return in->truncate(in, index);
}

static int wrap_snapshot_put(struct raft_io *io, unsigned trailing,
			     struct raft_io_snapshot_put *req, const struct raft_snapshot *snapshot,
			     raft_io_snapshot_put_cb cb)
{
	struct raft_io *in = inner_of(io);

	return in->snapshot_put(in, trailing, req, snapshot, cb);
}

static int wrap_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
			     raft_io_snapshot_get_cb cb)
{
	struct raft_io *in = inner_of(io);

	return in->snapshot_get(in, req, cb);
}

static raft_time wrap_time(struct raft_io *io)
{
	struct raft_io *in = inner_of(io);

	return in->time(in);
}

static int wrap_random(struct raft_io *io, int min, int max)
{
	struct raft_io *in = inner_of(io);

	return in->random(in, min, max);
}

static int wrap_async_work(struct raft_io *io, struct raft_io_async_work *req,
			   raft_io_async_work_cb cb)
{
	struct raft_io *in = inner_of(io);

	return in->async_work(in, req, cb);
}

void cd_raft_io_wrap(struct cd_raft_io *w, struct raft_io *inner)
{
	memset(w, 0, sizeof(*w));
	w->inner = inner;
	w->io.version = inner->version;
	w->io.data = inner->data;
	w->io.impl = inner->impl;
	w->io.init = wrap_init;
	w->io.close = wrap_close;
	w->io.load = wrap_load;
	w->io.start = wrap_start;
	w->io.bootstrap = wrap_bootstrap;
	w->io.recover = wrap_recover;
	w->io.set_term = wrap_set_term;
	w->io.set_vote = wrap_set_vote;
	w->io.send = wrap_send;
	w->io.append = wrap_append;
	w->io.truncate = wrap_truncate;
	w->io.snapshot_put = wrap_snapshot_put;
	w->io.snapshot_get = wrap_snapshot_get;
	w->io.time = wrap_time;
	w->io.random = wrap_random;
	if (inner->version >= 2)
		w->io.async_work = wrap_async_work;
}
