/*
 * The proposer: commands submitted by any part of clusterd are batched into Raft entries
 * (docs/clusterd.md, "Batches"). Each command is packed when submitted and queued; once
 * per loop iteration (a uv_check handle) the queue is cut into entries of at most
 * BATCH_MAX commands and BATCH_BYTES bytes, with at most WINDOW entries in flight, so a
 * burst of commands costs a few entries instead of one each. When an entry is applied,
 * each command's callback gets its own result (commands of a batch are applied or refused
 * one by one: a refusal does not touch its neighbours).
 *
 * The entry is a CommandBatch written directly from the packed commands (field 1: format
 * version; field 2: each command), followed by the filler that makes its length a
 * multiple of 8 (see "Entry padding" in docs/clusterd.md).
 */
#include <errno.h>
#include <string.h>

#include "clusterd/daemon.h"
#include "lib/heap.h"

#define BATCH_MAX   256		/* commands per entry (the FSM takes up to 1024) */
#define BATCH_BYTES (256u << 10) /* bytes per entry (the FSM takes up to 1 MiB) */
#define WINDOW	    32		/* entries in flight */
#define FILLER_TAG  ((15u << 3) | 2u)

struct qcmd {
	uint8_t *bytes;
	size_t len;
	cd_cmd_cb cb;
	void *arg;
};

struct entry {
	struct raft_apply req;
	struct cd_proposer *p;
	unsigned n;
	struct qcmd cmds[];
};

struct cd_proposer {
	struct cd_daemon *d;
	uv_check_t check;
	bool checking, closed;
	struct qcmd *q;
	unsigned head, n, cap; /* ring */
	unsigned inflight;
	uint64_t entries, commands; /* proposed so far */
};

static size_t varint_len(size_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_varint(uint8_t *p, size_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static void kick(struct cd_proposer *p);

static void finish_entry(struct entry *en, int status, const struct cd_result *res)
{
	struct cd_proposer *p = en->p;

	for (unsigned i = 0; i < en->n; i++) {
		struct qcmd *c = &en->cmds[i];
		int code = 0;
		const char *reason = NULL;

		if (status == 0 && res) {
			if (res->status) {
				code = res->status;
				reason = res->reason;
			} else if (i < res->n) {
				code = res->cmds[i].code;
				reason = code ? res->cmds[i].reason : NULL;
			}
		}
		if (c->cb)
			c->cb(p->d, c->arg, status, code, reason);
		kb_free(c->bytes);
	}
	kb_free(en);
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
	struct entry *en = req->data;
	struct cd_proposer *p = en->p;

	p->inflight--;
	finish_entry(en, status, result);
	if (!p->closed)
		kick(p);
}

/* Takes up to BATCH_MAX queued commands into one entry and proposes it. */
static void propose_one(struct cd_proposer *p)
{
	struct cd_daemon *d = p->d;
	struct raft_buffer buf;
	struct entry *en;
	unsigned n = 0;
	size_t len = 2, pad; /* field 1: tag and version 1 */
	uint8_t *w;
	int rv;

	while (n < p->n && n < BATCH_MAX) {
		struct qcmd *c = &p->q[(p->head + n) % p->cap];
		size_t more = 1 + varint_len(c->len) + c->len;

		if (n && len + more > BATCH_BYTES)
			break;
		len += more;
		n++;
	}
	en = kb_calloc(1, sizeof(*en) + n * sizeof(en->cmds[0]));
	pad = (8 - len % 8) % 8;
	if (pad == 1)
		pad = 9; /* a filler takes at least 2 bytes */
	buf.len = len + pad;
	buf.base = en ? raft_malloc(buf.len) : NULL;
	if (!en || !buf.base) {
		kb_free(en);
		return; /* out of memory: the queue stays, the next kick tries again */
	}
	en->p = p;
	en->n = n;
	w = buf.base;
	*w++ = 0x08;
	*w++ = CD_FORMAT_VERSION;
	for (unsigned i = 0; i < n; i++) {
		struct qcmd *c = &p->q[p->head];

		en->cmds[i] = *c;
		*w++ = 0x12;
		w = put_varint(w, c->len);
		memcpy(w, c->bytes, c->len);
		w += c->len;
		p->head = (p->head + 1) % p->cap;
		p->n--;
	}
	if (pad) {
		memset(w, 0, pad);
		w[0] = FILLER_TAG;
		w[1] = (uint8_t)(pad - 2);
	}
	en->req.data = en;
	rv = d->phase == CD_PHASE_RUNNING ? raft_apply(&d->raft, &en->req, &buf, 1, on_applied)
					  : RAFT_NOTLEADER;
	if (rv) {
		raft_free(buf.base);
		finish_entry(en, rv, NULL);
		return;
	}
	p->inflight++;
	p->entries++;
	p->commands += n;
}

static void on_check(uv_check_t *h)
{
	struct cd_proposer *p = h->data;

	while (p->n && p->inflight < WINDOW && !p->closed) {
		unsigned before = p->n;

		propose_one(p);
		if (p->n == before)
			break; /* out of memory */
	}
	if (p->n == 0 || p->inflight >= WINDOW) {
		uv_check_stop(&p->check);
		p->checking = false;
	}
}

static void kick(struct cd_proposer *p)
{
	if (p->n && !p->checking && !p->closed) {
		uv_check_start(&p->check, on_check);
		p->checking = true;
	}
}

int cd_submit(struct cd_daemon *d, const Keel__Cluster__Command *cmd, cd_cmd_cb cb, void *arg,
	      struct kb_errmsg *e)
{
	struct cd_proposer *p = d->prop;
	struct qcmd c = {0};

	if (!p || p->closed || d->phase != CD_PHASE_RUNNING) {
		kb_errmsg_setf(e, "Raft is not running");
		return KB_ESTATE;
	}
	if (p->n == p->cap) {
		unsigned cap = p->cap ? 2 * p->cap : 64;
		struct qcmd *q = kb_calloc(cap, sizeof(*q));

		if (!q) {
			kb_errmsg_setf(e, "out of memory");
			return -ENOMEM;
		}
		for (unsigned i = 0; i < p->n; i++)
			q[i] = p->q[(p->head + i) % p->cap];
		kb_free(p->q);
		p->q = q;
		p->head = 0;
		p->cap = cap;
	}
	c.len = keel__cluster__command__get_packed_size(cmd);
	c.bytes = kb_malloc(c.len ? c.len : 1);
	if (!c.bytes) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	keel__cluster__command__pack(cmd, c.bytes);
	c.cb = cb;
	c.arg = arg;
	p->q[(p->head + p->n) % p->cap] = c;
	p->n++;
	kick(p);
	return 0;
}

int cd_proposer_init(struct cd_daemon *d)
{
	struct cd_proposer *p = kb_calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->d = d;
	uv_check_init(d->loop, &p->check);
	p->check.data = p;
	d->prop = p;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	(void)h; /* p outlives the loop: cd_proposer_free() */
}

void cd_proposer_free(struct cd_daemon *d)
{
	kb_free(d->prop);
	d->prop = NULL;
}

void cd_proposer_close(struct cd_daemon *d)
{
	struct cd_proposer *p = d->prop;

	if (!p)
		return;
	p->closed = true;
	/* Commands never proposed fail now; entries in flight end at raft_close, with
	 * RAFT_CANCELED, and still find p: it is freed after the loop has ended. */
	while (p->n) {
		struct qcmd c = p->q[p->head];

		p->head = (p->head + 1) % p->cap;
		p->n--;
		if (c.cb)
			c.cb(d, c.arg, RAFT_CANCELED, 0, NULL);
		kb_free(c.bytes);
	}
	kb_free(p->q);
	p->q = NULL;
	p->cap = 0;
	uv_close((uv_handle_t *)&p->check, on_closed);
}

void cd_proposer_stats(struct cd_daemon *d, uint64_t *entries, uint64_t *commands)
{
	*entries = d->prop ? d->prop->entries : 0;
	*commands = d->prop ? d->prop->commands : 0;
}
