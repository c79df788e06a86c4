/*
 * hostd's users, roles and permissions in vmkernel's config store (hostagent/auth_cfg.h,
 * docs/hostd-auth.md "Where the database lives").
 *
 * At start (blocking, before the loop): etc/keel/auth.db is read from the store, DIR/auth.db
 * and DIR/auth.pending from the state dir, and hd_auth_cfg_choose picks the database.
 *
 * Then, on the loop: puts wait in a queue in the order of their changes and go to
 * vmkernel one at a time on the thread pool. `latest` is the text of the last put asked
 * for (what the live database is), `stored` the last text the store took. vmkernel not
 * answering leaves the queue's changes live and marks the store pending: every
 * HD_AUTH_CFG_RETRY_MS the live database is put again (and a database bootstrapped while
 * vmkernel was away gives way to one the store turns out to hold). vmkernel refusing a put
 * sends the live database back to `stored` (or to the last text that must be kept) and
 * refuses that put and every one queued behind it.
 *
 * One per process: hostd has one struct hd_vim, and struct hd_vim has no room for this
 * state, so it lives here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostagent/auth_cfg.h"
#include "hostagent/auth_sync.h"
#include "hostagent/vim.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "vmk.pb-c.h"

#define CALL_TIMEOUT_S	5
#define START_TIMEOUT_S 3
#define REPLY_MAX	(1u << 20)

/* ---- the pure parts ---------------------------------------------------------------------- */

int hd_auth_cfg_size_check(size_t len, struct kb_errmsg *e)
{
	if (len <= HD_AUTH_CFG_MAX)
		return 0;
	kb_errmsg_setf(e,
		       "the user database would exceed 64 KiB (%zu bytes; the config store "
		       "keeps at most %u bytes of %s)",
		       len, HD_AUTH_CFG_MAX, HD_AUTH_CFG_PATH);
	return KB_ETOOBIG;
}

bool hd_auth_cfg_from_needs_put(enum hd_auth_cfg_from from)
{
	return from != HD_AUTH_FROM_STORE && from != HD_AUTH_FROM_COPY;
}

const char *hd_auth_cfg_from_name(enum hd_auth_cfg_from from)
{
	switch (from) {
	case HD_AUTH_FROM_STORE:
		return "the config store";
	case HD_AUTH_FROM_COPY:
		return "the copy (vmkernel does not answer)";
	case HD_AUTH_FROM_COPY_PENDING:
		return "the copy (changes the store has not taken)";
	case HD_AUTH_FROM_COPY_TAKEN_IN:
		return "the copy (taken into the config store)";
	case HD_AUTH_FROM_COPY_STORE_BAD:
		return "the copy (the store's does not decode)";
	case HD_AUTH_FROM_NEW:
		return "a new database";
	case HD_AUTH_FROM_NEW_STORE_BAD:
		return "a new database (the store's does not decode)";
	}
	return "?";
}

static int decode_copy(const struct hd_auth_cfg_found *in, struct hostd_auth_db **db,
		       struct kb_errmsg *e)
{
	return hostd_auth_db_decode(in->copy, in->copy_len, db, e);
}

int hd_auth_cfg_choose(const struct hd_auth_cfg_found *in, struct hostd_auth_db **db,
		       enum hd_auth_cfg_from *from, char *store_error, struct kb_errmsg *e)
{
	struct kb_errmsg se = {{0}};
	bool answered = in->store_rv == 0 || in->store_rv == KB_ENOTFOUND;
	bool copy = in->copy_rv == 0;
	int rv;

	*db = NULL;
	if (store_error)
		store_error[0] = '\0';
	if (in->copy_rv && in->copy_rv != -ENOENT && !(answered && in->store_rv == 0)) {
		kb_errmsg_setf(e, "auth.db cannot be read (%s)", kb_strerror(in->copy_rv));
		return in->copy_rv;
	}
	/* Changes made while vmkernel was away: the copy is newer than the store. */
	if (answered && copy && in->pending) {
		*from = HD_AUTH_FROM_COPY_PENDING;
		return decode_copy(in, db, e);
	}
	if (in->store_rv == 0) {
		rv = hostd_auth_db_decode(in->store, in->store_len, db, &se);
		if (rv == 0) {
			*from = HD_AUTH_FROM_STORE;
			return 0;
		}
		if (store_error)
			snprintf(store_error, KB_ERRMSG_SIZE, "%s", se.msg);
		if (copy && hostd_auth_db_decode(in->copy, in->copy_len, db, &se) == 0) {
			*from = HD_AUTH_FROM_COPY_STORE_BAD;
			return 0;
		}
		/* Never a host nobody can log in to: a new root. */
		*from = HD_AUTH_FROM_NEW_STORE_BAD;
		return 0;
	}
	if (!copy) {
		*from = HD_AUTH_FROM_NEW;
		return 0;
	}
	*from = answered ? HD_AUTH_FROM_COPY_TAKEN_IN : HD_AUTH_FROM_COPY;
	return decode_copy(in, db, e);
}

/* ---- vmkernel's socket (blocking) -------------------------------------------------------- */

/* One request: 0 with *out (caller frees), or -EHOSTUNREACH when vmkernel does not
 * answer (e says so). */
static int ask(const char *sock, Keel__Vmk__VmkRequest *rq, unsigned timeout_s,
	       Keel__Vmk__VmkReply **out, struct kb_errmsg *e)
{
	size_t len = 0;
	uint8_t *bytes = hd_backend_call(sock, &rq->base, timeout_s, REPLY_MAX, &len);

	if (bytes)
		*out = keel__vmk__vmk_reply__unpack(NULL, len, bytes);
	kb_free(bytes);
	if (!bytes || !*out) {
		kb_errmsg_setf(e, "the config store: vmkernel does not answer (%s)", sock);
		return -EHOSTUNREACH;
	}
	return 0;
}

/* The store's etc/keel/auth.db into out: 0, KB_ENOTFOUND, -EHOSTUNREACH, or vmkernel's
 * refusal (e set). */
static int store_get(const char *sock, unsigned timeout_s, struct kb_buf *out, struct kb_errmsg *e)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	int rv;

	g.path = HD_AUTH_CFG_PATH;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
	rq.cfg_get = &g;
	rv = ask(sock, &rq, timeout_s, &rp, e);
	if (rv)
		return rv;
	rv = rp->code;
	if (rv)
		kb_errmsg_setf(e, "the config store: %s", rp->error ? rp->error : "refused");
	else if (kb_buf_append(out, rp->cfg_data.data, rp->cfg_data.len) != 0)
		rv = -ENOMEM;
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return rv;
}

static int store_put(const char *sock, const void *text, size_t len, struct kb_errmsg *e)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgPut put = KEEL__VMK__VMK_CFG_PUT__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	int rv;

	put.path = HD_AUTH_CFG_PATH;
	put.data.data = (uint8_t *)text;
	put.data.len = len;
	put.mode = HD_AUTH_CFG_MODE;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT;
	rq.cfg_put = &put;
	rv = ask(sock, &rq, CALL_TIMEOUT_S, &rp, e);
	if (rv)
		return rv;
	rv = rp->code;
	if (rv)
		kb_errmsg_setf(e, "the config store refused %s: %s", HD_AUTH_CFG_PATH,
			       rp->error ? rp->error : "no reason given");
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return rv;
}

/* ---- state ------------------------------------------------------------------------------- */

struct item {
	struct item *next;
	struct kb_buf text;
	bool keep;
	hd_auth_cfg_cb cb;
	void *arg;
};

struct op {
	uv_work_t work;
	char sock[PATH_MAX + 32];
	struct item *it;    /* a put; NULL: the retry of a pending store, or a watch */
	bool watch;	    /* a look at the store's file (not pending, nothing queued) */
	struct kb_buf text; /* the retry's text; the watch's: the last text stored */
	bool fresh;	    /* the retry: take the store's database when it has one */
	int rv;
	struct kb_errmsg e;
	struct hostd_auth_db *found; /* the store's database (the retry when fresh; the watch) */
	struct kb_buf found_text;
	bool replaced; /* the watch: the store's text is not the one stored */
	char decode_error[KB_ERRMSG_SIZE];
};

struct cfg_state {
	struct hd_vim *v;
	uv_timer_t timer;
	bool busy, pending, fresh, stopping, timer_closed;
	struct kb_buf latest; /* the live database's text as last asked to be put */
	struct kb_buf stored; /* the last text the store took */
	struct item *head, **tail;
	char last_error[KB_ERRMSG_SIZE]; /* of the retries, logged once */
};

static struct cfg_state *st;

static void item_free(struct item *it)
{
	if (!it)
		return;
	kb_buf_close(&it->text);
	kb_free(it);
}

static int set_buf(struct kb_buf *b, const void *p, size_t len)
{
	kb_buf_reset(b);
	return kb_buf_append(b, p, len);
}

static bool buf_eq(const struct kb_buf *b, const void *p, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, p, len) == 0);
}

bool hd_auth_cfg_pending(struct hd_vim *v)
{
	(void)v;
	return st && st->pending;
}

bool hd_auth_cfg_busy(struct hd_vim *v)
{
	(void)v;
	return st && (st->busy || st->head);
}

/* ---- start --------------------------------------------------------------------------------- */

int hd_auth_cfg_load(struct hd_vim *v, struct hostd_auth_db **db, enum hd_auth_cfg_from *from,
		     struct kb_errmsg *e)
{
	char pending[PATH_MAX + 32], store_error[KB_ERRMSG_SIZE];
	struct hd_auth_cfg_found in = {0};
	struct kb_errmsg se = {{0}}, ce = {{0}};
	struct kb_buf sb, cb;
	int rv;

	kb_buf_init(&sb, HD_AUTH_CFG_MAX + 1);
	kb_buf_init(&cb, 0);
	in.store_rv = store_get(v->vmk_sock, START_TIMEOUT_S, &sb, &se);
	in.store = sb.data;
	in.store_len = sb.len;
	in.copy_rv = kb_file_read_small(v->auth_path, HOSTD_AUTH_FILE_MAX, &cb, &ce);
	in.copy = cb.data;
	in.copy_len = cb.len;
	snprintf(pending, sizeof(pending), "%.4000s/%s", v->state_dir, HD_AUTH_PENDING_FILE);
	in.pending = access(pending, F_OK) == 0;
	rv = hd_auth_cfg_choose(&in, db, from, store_error, e);
	if (rv) {
		if (in.copy_rv && in.copy_rv != -ENOENT)
			kb_errmsg_setf(e, "%s", ce.msg);
		else
			kb_errmsg_wrapf(e, "%s", v->auth_path);
		goto out;
	}
	switch (*from) {
	case HD_AUTH_FROM_STORE:
		kb_log(v->log, KB_LOG_INFO, "users and permissions: %s from the config store",
		       HD_AUTH_CFG_PATH);
		break;
	case HD_AUTH_FROM_COPY:
		kb_log(v->log, KB_LOG_WARN,
		       "%s: serving the copy %s until vmkernel answers; changes are kept and put "
		       "into the config store then",
		       se.msg, v->auth_path);
		break;
	case HD_AUTH_FROM_COPY_PENDING:
		kb_log(v->log, KB_LOG_WARN,
		       "users and permissions: %s holds changes made while vmkernel did not "
		       "answer: putting them into the config store as %s",
		       v->auth_path, HD_AUTH_CFG_PATH);
		break;
	case HD_AUTH_FROM_COPY_TAKEN_IN:
		kb_log(v->log, KB_LOG_INFO,
		       "users and permissions: took %s into the config store as %s", v->auth_path,
		       HD_AUTH_CFG_PATH);
		break;
	case HD_AUTH_FROM_COPY_STORE_BAD:
		kb_log(v->log, KB_LOG_ERROR,
		       "%s in the config store does not decode (%s): keeping %s, the last good "
		       "database, and putting it back into the store",
		       HD_AUTH_CFG_PATH, store_error, v->auth_path);
		break;
	case HD_AUTH_FROM_NEW_STORE_BAD:
		kb_log(v->log, KB_LOG_ERROR,
		       "%s in the config store does not decode (%s) and there is no %s: starting "
		       "a new user database with root",
		       HD_AUTH_CFG_PATH, store_error, v->auth_path);
		break;
	case HD_AUTH_FROM_NEW:
		if (in.store_rv != 0 && in.store_rv != KB_ENOTFOUND)
			kb_log(v->log, KB_LOG_WARN,
			       "%s: a new user database, put into the config store when vmkernel "
			       "answers",
			       se.msg);
		break;
	}
out:
	kb_buf_close(&sb);
	kb_buf_close(&cb);
	return rv;
}

static void on_tick(uv_timer_t *t);

/* Writes DIR/auth.db when it differs from text, and removes DIR/auth.pending when the store
 * holds text. Blocking (start only). */
static int write_copy(struct hd_vim *v, const struct kb_buf *text, bool in_store,
		      struct kb_errmsg *e)
{
	char pending[PATH_MAX + 32];
	struct kb_errmsg ce = {{0}};
	struct kb_buf copy;
	int rv = 0;

	kb_buf_init(&copy, 0);
	if (kb_file_read_small(v->auth_path, HOSTD_AUTH_FILE_MAX, &copy, &ce) != 0 ||
	    !buf_eq(&copy, text->data, text->len)) {
		rv = kb_file_write_atomic(v->auth_path, text->data, text->len, 0600, e);
		if (rv == KB_ENOTSYNCED)
			rv = 0;
	}
	kb_buf_close(&copy);
	snprintf(pending, sizeof(pending), "%.4000s/%s", v->state_dir, HD_AUTH_PENDING_FILE);
	if (rv == 0 && in_store)
		unlink(pending);
	return rv;
}

static void state_free(struct cfg_state *s)
{
	kb_buf_close(&s->latest);
	kb_buf_close(&s->stored);
	kb_free(s);
}

int hd_auth_cfg_start(struct hd_vim *v, enum hd_auth_cfg_from from, struct kb_errmsg *e)
{
	struct kb_errmsg pe = {{0}};
	struct cfg_state *s = kb_calloc(1, sizeof(*s));
	int rv;

	if (!s) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	s->v = v;
	s->tail = &s->head;
	kb_buf_init(&s->latest, 0);
	kb_buf_init(&s->stored, 0);
	if (hostd_auth_db_encode(v->db, &s->latest) != 0) {
		state_free(s);
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	if (from == HD_AUTH_FROM_COPY) {
		s->pending = true; /* vmkernel did not answer */
	} else if (hd_auth_cfg_from_needs_put(from)) {
		rv = hd_auth_cfg_size_check(s->latest.len, &pe);
		if (rv == 0)
			rv = store_put(v->vmk_sock, s->latest.data, s->latest.len, &pe);
		if (rv == 0) {
			set_buf(&s->stored, s->latest.data, s->latest.len);
		} else {
			s->pending = true;
			s->fresh = from == HD_AUTH_FROM_NEW;
			if (rv != -EHOSTUNREACH) {
				kb_log(v->log, KB_LOG_ERROR, "%s: put again every %d s", pe.msg,
				       HD_AUTH_CFG_RETRY_MS / 1000);
				snprintf(s->last_error, sizeof(s->last_error), "%s", pe.msg);
			}
		}
	} else {
		set_buf(&s->stored, s->latest.data, s->latest.len);
	}
	rv = write_copy(v, &s->latest, !s->pending, e);
	if (rv) {
		state_free(s);
		return rv;
	}
	st = s;
	uv_timer_init(v->loop, &s->timer);
	s->timer.data = s;
	uv_timer_start(&s->timer, on_tick, HD_AUTH_CFG_RETRY_MS, HD_AUTH_CFG_RETRY_MS);
	uv_unref((uv_handle_t *)&s->timer);
	return 0;
}

/* ---- puts on the loop ----------------------------------------------------------------------- */

static void after(uv_work_t *w, int status);

static void work(uv_work_t *w)
{
	struct op *op = w->data;

	if (op->it) {
		op->rv = store_put(op->sock, op->it->text.data, op->it->text.len, &op->e);
		return;
	}
	if (op->watch) {
		struct kb_errmsg de = {{0}};

		op->rv = store_get(op->sock, CALL_TIMEOUT_S, &op->found_text, &op->e);
		if (op->rv || buf_eq(&op->found_text, op->text.data, op->text.len))
			return;
		op->replaced = true;
		/* Untrusted bytes (a restore, a put through the socket): the strict decoder. */
		if (hostd_auth_db_decode(op->found_text.data, op->found_text.len, &op->found,
					 &de) != 0)
			snprintf(op->decode_error, sizeof(op->decode_error), "%s", de.msg);
		return;
	}
	if (op->fresh) {
		/* Bootstrapped while vmkernel was away: a database the store holds wins. */
		struct kb_errmsg de = {{0}};
		int rv = store_get(op->sock, CALL_TIMEOUT_S, &op->found_text, &op->e);

		if (rv == -EHOSTUNREACH) {
			op->rv = rv;
			return;
		}
		if (rv == 0 && hostd_auth_db_decode(op->found_text.data, op->found_text.len,
						    &op->found, &de) == 0) {
			op->rv = 0;
			return;
		}
	}
	op->rv = store_put(op->sock, op->text.data, op->text.len, &op->e);
}

static int start_op(struct item *it, bool watch)
{
	struct op *op = kb_calloc(1, sizeof(*op));

	if (!op)
		return -ENOMEM;
	op->it = it;
	op->work.data = op;
	kb_buf_init(&op->text, 0);
	kb_buf_init(&op->found_text, HD_AUTH_CFG_MAX + 1);
	snprintf(op->sock, sizeof(op->sock), "%s", st->v->vmk_sock);
	op->watch = watch;
	if (watch) {
		if (set_buf(&op->text, st->stored.data, st->stored.len) != 0)
			goto fail;
	} else if (!it) {
		op->fresh = st->fresh;
		if (set_buf(&op->text, st->latest.data, st->latest.len) != 0)
			goto fail;
	}
	if (uv_queue_work(st->v->loop, &op->work, work, after) != 0)
		goto fail;
	st->busy = true;
	return 0;
fail:
	kb_buf_close(&op->text);
	kb_buf_close(&op->found_text);
	kb_free(op);
	return -EAGAIN;
}

static void kick(void)
{
	struct item *it;

	while (!st->busy && !st->stopping && st->head) {
		it = st->head;
		st->head = it->next;
		if (!st->head)
			st->tail = &st->head;
		it->next = NULL;
		if (start_op(it, false) == 0)
			return;
		/* No worker now: the change stays live, put by the retry. */
		st->pending = true;
		it->cb(st->v, it->arg, HD_AUTH_CFG_QUEUED, "");
		item_free(it);
	}
}

/* vmkernel refused it (with e): the live database goes back to the last text that must be
 * kept; it and every put queued behind it are refused. */
static void refused(struct item *it, int rv, const struct kb_errmsg *e)
{
	struct hd_vim *v = st->v;
	struct item *list = it, *p;
	struct kb_buf *target = &st->stored;
	struct hostd_auth_db *db = NULL;
	struct kb_errmsg de = {{0}};
	bool kept = false;

	it->next = st->head;
	st->head = NULL;
	st->tail = &st->head;
	for (p = list; p; p = p->next)
		if (p->keep) {
			target = &p->text;
			kept = true;
		}
	kb_log(v->log, KB_LOG_ERROR, "%s: the change is undone", e->msg);
	if (!buf_eq(&st->latest, target->data, target->len)) {
		if (target->len && hostd_auth_db_decode(target->data, target->len, &db, &de) == 0) {
			hd_vim_auth_db_replace(v, db);
			set_buf(&st->latest, target->data, target->len);
		} else {
			kb_log(v->log, KB_LOG_ERROR, "users and permissions: cannot undo (%s)",
			       de.msg[0] ? de.msg : "nothing stored yet");
			st->pending = true;
		}
	}
	if (kept)
		st->pending = true; /* a database adopted from the cluster: put it later */
	while (list) {
		p = list;
		list = p->next;
		if (!p->keep)
			p->cb(v, p->arg, rv < 0 ? rv : -EIO, e->msg);
		else
			p->cb(v, p->arg, HD_AUTH_CFG_QUEUED, "");
		item_free(p);
	}
}

static void put_done(struct op *op)
{
	struct item *it = op->it;
	struct hd_vim *v = st->v;

	if (op->rv == 0) {
		set_buf(&st->stored, it->text.data, it->text.len);
		it->cb(v, it->arg, HD_AUTH_CFG_STORED, "");
		item_free(it);
		return;
	}
	if (op->rv == -EHOSTUNREACH) {
		/* Kept: this change and the ones behind it, put when vmkernel answers. */
		if (!st->pending)
			kb_log(v->log, KB_LOG_WARN,
			       "%s: users and permissions are kept in %s and put into the store "
			       "when it answers",
			       op->e.msg, v->auth_path);
		st->pending = true;
		it->cb(v, it->arg, HD_AUTH_CFG_QUEUED, "");
		item_free(it);
		while (st->head) {
			struct item *p = st->head;

			st->head = p->next;
			p->cb(v, p->arg, HD_AUTH_CFG_QUEUED, "");
			item_free(p);
		}
		st->tail = &st->head;
		return;
	}
	refused(it, op->rv, &op->e);
}

static void retry_done(struct op *op)
{
	struct hd_vim *v = st->v;

	if (op->rv) {
		if (strcmp(st->last_error, op->e.msg) != 0 && op->rv != -EHOSTUNREACH)
			kb_log(v->log, KB_LOG_ERROR, "%s: put again in %d s", op->e.msg,
			       HD_AUTH_CFG_RETRY_MS / 1000);
		snprintf(st->last_error, sizeof(st->last_error), "%s", op->e.msg);
		return;
	}
	st->last_error[0] = '\0';
	if (!buf_eq(&op->text, st->latest.data, st->latest.len))
		return; /* changed meanwhile: the next tick puts the newer text */
	st->pending = false;
	st->fresh = false;
	if (op->found) {
		kb_log(v->log, KB_LOG_WARN,
		       "vmkernel answers: the config store holds %s, which replaces the database "
		       "made while it did not answer (root's password is the one it holds)",
		       HD_AUTH_CFG_PATH);
		hd_vim_auth_db_replace(v, op->found);
		op->found = NULL;
		set_buf(&st->stored, op->found_text.data, op->found_text.len);
		set_buf(&st->latest, op->found_text.data, op->found_text.len);
	} else {
		kb_log(v->log, KB_LOG_INFO,
		       "vmkernel answers: users and permissions put into the "
		       "config store as %s",
		       HD_AUTH_CFG_PATH);
		set_buf(&st->stored, op->text.data, op->text.len);
	}
	hd_vim_users_save(v); /* the copy, without DIR/auth.pending */
}

static void saved_back(struct hd_vim *v, void *arg, int rv, const char *msg)
{
	(void)arg;
	(void)msg;
	if (rv != -ECANCELED)
		hd_vim_users_save(v); /* the copy */
}

/* Puts the live database back into the store (which lost it, or holds one that does not
 * decode). */
static void put_back(void)
{
	kb_buf_reset(&st->stored); /* the store does not hold it: no shortcut */
	if (hd_auth_cfg_put(st->v, st->latest.data, st->latest.len, true, saved_back, NULL) != 0)
		st->pending = true;
}

/* The store's etc/keel/auth.db changed behind hostd's back (a restore, a put or a delete
 * through vmkernel's socket): a database that decodes replaces the live one (and goes to
 * the cluster); anything else is logged and the live database put back. */
static void watch_done(struct op *op)
{
	struct hd_vim *v = st->v;

	if (op->rv == KB_ENOTFOUND) {
		kb_log(v->log, KB_LOG_WARN,
		       "%s is gone from the config store (deleted, or a restored archive without "
		       "it): putting the live users and permissions back",
		       HD_AUTH_CFG_PATH);
		put_back();
		return;
	}
	if (op->rv || !op->replaced || st->head ||
	    !buf_eq(&st->stored, op->text.data, op->text.len))
		return; /* vmkernel away, nothing new, or changes went first */
	if (!op->found) {
		kb_log(v->log, KB_LOG_ERROR,
		       "%s was replaced in the config store by a database that does not decode "
		       "(%s): keeping the live one and putting it back",
		       HD_AUTH_CFG_PATH, op->decode_error);
		put_back();
		return;
	}
	hd_vim_auth_db_replace(v, op->found);
	op->found = NULL;
	set_buf(&st->stored, op->found_text.data, op->found_text.len);
	set_buf(&st->latest, op->found_text.data, op->found_text.len);
	kb_log(v->log, KB_LOG_WARN,
	       "%s was replaced in the config store (a restore, or a put through vmkernel's "
	       "socket): users and permissions taken from it (%zu users)",
	       HD_AUTH_CFG_PATH, hostd_auth_user_count(v->db));
	/* In a cluster the restored users go to every host, as a change would. */
	hd_auth_sync_push(v, st->latest.data, st->latest.len, NULL, NULL);
	hd_vim_users_save(v);
}

static void after(uv_work_t *w, int status)
{
	struct op *op = w->data;
	struct cfg_state *s = st;

	if (status && op->rv == 0) {
		op->rv = -EHOSTUNREACH;
		kb_errmsg_setf(&op->e, "the config store: the put was cancelled");
	}
	s->busy = false;
	if (s->stopping) {
		if (op->it)
			op->it->cb(s->v, op->it->arg, -ECANCELED, "");
		item_free(op->it);
		if (s->timer_closed)
			state_free(s);
	} else if (op->it) {
		put_done(op);
	} else if (op->watch) {
		watch_done(op);
	} else {
		retry_done(op);
	}
	if (op->found)
		hostd_auth_db_destroy(op->found);
	kb_buf_close(&op->text);
	kb_buf_close(&op->found_text);
	kb_free(op);
	if (st && !st->stopping)
		kick();
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
	if (st->busy || st->head)
		return;
	start_op(NULL, !st->pending);
}

int hd_auth_cfg_put(struct hd_vim *v, const void *text, size_t len, bool keep, hd_auth_cfg_cb cb,
		    void *arg)
{
	struct item *it = NULL;

	if (!st) {
		cb(v, arg, HD_AUTH_CFG_QUEUED, "");
		return 0;
	}
	/* The store has it already (a copy rewritten after a push to the cluster). */
	bool stored = !st->pending && !st->busy && !st->head && buf_eq(&st->stored, text, len);
	if (!stored && !st->pending) {
		/* made before latest moves, so a refusal here leaves the undo its old text */
		it = kb_calloc(1, sizeof(*it));
		if (!it)
			return -ENOMEM;
		kb_buf_init(&it->text, 0);
		if (kb_buf_append(&it->text, text, len) != 0) {
			item_free(it);
			return -ENOMEM;
		}
	}
	if (set_buf(&st->latest, text, len) != 0) {
		item_free(it);
		return -ENOMEM;
	}
	if (stored) {
		cb(v, arg, HD_AUTH_CFG_STORED, "");
		return 0;
	}
	if (st->pending) {
		/* vmkernel did not answer last: the retry puts the live database. */
		cb(v, arg, HD_AUTH_CFG_QUEUED, "");
		return 0;
	}
	it->keep = keep;
	it->cb = cb;
	it->arg = arg;
	*st->tail = it;
	st->tail = &it->next;
	kick();
	return 0;
}

int hd_auth_cfg_undo(struct hd_vim *v)
{
	struct hostd_auth_db *db;
	struct kb_errmsg e = {{0}};
	int rv;

	if (!st || !st->latest.len)
		return KB_ESTATE;
	rv = hostd_auth_db_decode(st->latest.data, st->latest.len, &db, &e);
	if (rv)
		return rv;
	hd_vim_auth_db_replace(v, db);
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct cfg_state *s = h->data;

	s->timer_closed = true;
	if (!s->busy)
		state_free(s);
}

void hd_auth_cfg_stop(struct hd_vim *v)
{
	struct cfg_state *s = st;

	if (!s)
		return;
	st = NULL;
	s->stopping = true;
	while (s->head) {
		struct item *p = s->head;

		s->head = p->next;
		p->cb(v, p->arg, -ECANCELED, "");
		item_free(p);
	}
	uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
