/*
 * Replication of the auth store through clusterd (hostagent/auth_sync.h,
 * docs/hostd-auth.md "Replication").
 *
 * One operation at a time runs on the thread pool: a push (ClusterAuthSet of a text) or a
 * read (ClusterAuthGet, and the strict decode of what came back). Pushes wait in a queue
 * in the order their changes were applied; each is sent with expect_version = the version
 * applied when it is sent, so a queued change follows the one before it, and a change
 * from another host in between makes it stale. While pushes wait, a read never replaces
 * the database (the pushes would be lost unseen): it is the failed push that brings the
 * cluster's store in.
 *
 * Identity of a store: (version, host, at_ms). A store whose identity is not the one this
 * host applied last replaces the local database, whether its version is higher or lower
 * (a host that left one cluster and joined another must take the new cluster's users).
 *
 * Failure modes: clusterd unreachable (the change stays local and is pushed again when
 * the cluster is back and still holds what this host applied last), a stale push (every
 * queued change is dropped and its caller told -ESTALE once the cluster's store is
 * applied), a store that does not decode (logged once as an error; the local database
 * stays).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "hostagent/auth_cfg.h"
#include "hostagent/auth_sync.h"
#include "hostagent/vim.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/time.h"

#define GET_TIMEOUT_S 5
#define SET_TIMEOUT_S 20 /* clusterd retries a forward to the leader for 8 s */
#define REPLY_MAX     (2u << 20)

struct ident {
	uint64_t version, host, at_ms;
};

struct push {
	struct push *next;
	uint8_t *text;
	size_t len;
	hd_auth_push_cb cb; /* NULL: this host's own store (first push, or a change made while
			     * clusterd could not be reached) */
	void *arg;
};

struct hd_auth_sync {
	struct hd_vim *v;
	uv_timer_t timer;
	bool busy;     /* an operation is on the thread pool */
	bool stopping; /* hd_auth_sync_stop ran: free when the operation ends */
	bool timer_closed;
	int member; /* -1: not known yet, 0: in no cluster, 1: a member */
	bool dirty; /* local changes the cluster has not seen */
	struct ident applied;
	struct ident bad; /* a store that did not decode (logged once) */
	struct push *head, **tail;
	struct push *aborted; /* answered -ESTALE once the cluster's store is applied */
};

struct op {
	uv_work_t work;
	struct hd_auth_sync *s;
	char sock[PATH_MAX + 32];
	struct push *p; /* NULL: a read */
	uint64_t expect;
	/* results */
	bool answered; /* clusterd replied */
	int code;
	char error[256];
	bool member, have_auth;
	struct ident got;
	struct hostd_auth_db *db; /* a read: the decoded store */
	int decode_rv;
	char decode_error[KB_ERRMSG_SIZE];
};

static bool same(const struct ident *a, const struct ident *b)
{
	return a->version == b->version && a->host == b->host && a->at_ms == b->at_ms;
}

void hd_auth_sync_version_text(struct hd_vim *v, char *out, size_t size)
{
	const struct ident *a = v->sync ? &v->sync->applied : &(struct ident){0, 0, 0};

	snprintf(out, size, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a->version, a->host, a->at_ms);
}

static void push_free(struct push *p)
{
	if (p)
		kb_free(p->text);
	kb_free(p);
}

/* ---- the worker ------------------------------------------------------------------------- */

static Keel__Cluster__ClusterReply *call(struct op *op, const Keel__Cluster__ClusterRequest *rq,
					 unsigned timeout_s)
{
	size_t len = 0;
	uint8_t *bytes = hd_backend_call(op->sock, &rq->base, timeout_s, REPLY_MAX, &len);
	Keel__Cluster__ClusterReply *rp;

	if (!bytes) {
		snprintf(op->error, sizeof(op->error), "clusterd at %s does not answer", op->sock);
		return NULL;
	}
	rp = keel__cluster__cluster_reply__unpack(NULL, len, bytes);
	kb_free(bytes);
	if (!rp)
		snprintf(op->error, sizeof(op->error), "clusterd's reply does not decode");
	return rp;
}

static void work(uv_work_t *w)
{
	struct op *op = w->data;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterAuthGet get = KEEL__CLUSTER__CLUSTER_AUTH_GET__INIT;
	Keel__Cluster__ClusterAuthSet set = KEEL__CLUSTER__CLUSTER_AUTH_SET__INIT;
	Keel__Cluster__ClusterReply *rp;
	struct kb_errmsg e = {{0}};

	if (op->p) {
		set.expect_version = op->expect;
		set.blob.data = op->p->text;
		set.blob.len = op->p->len;
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_AUTH_SET;
		rq.auth_set = &set;
	} else {
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_AUTH_GET;
		rq.auth_get = &get;
	}
	rp = call(op, &rq, op->p ? SET_TIMEOUT_S : GET_TIMEOUT_S);
	if (!rp)
		return;
	op->answered = true;
	op->code = rp->code;
	snprintf(op->error, sizeof(op->error), "%s", rp->error ? rp->error : "");
	op->member = rp->member;
	if (rp->auth) {
		op->have_auth = true;
		op->got.version = rp->auth->version;
		op->got.host = rp->auth->host;
		op->got.at_ms = rp->auth->at_ms;
		if (!op->p) {
			/* Untrusted bytes: the strict decoder, off the loop. */
			op->decode_rv = hostd_auth_db_decode(rp->auth->blob.data,
							     rp->auth->blob.len, &op->db, &e);
			snprintf(op->decode_error, sizeof(op->decode_error), "%s", e.msg);
		}
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void kick(struct hd_auth_sync *s);
static void after(uv_work_t *w, int status);

static int start_op(struct hd_auth_sync *s, struct push *p, uint64_t expect)
{
	struct op *op = kb_calloc(1, sizeof(*op));

	if (!op)
		return -ENOMEM;
	op->s = s;
	op->p = p;
	op->expect = expect;
	op->work.data = op;
	snprintf(op->sock, sizeof(op->sock), "%s", s->v->cd_sock);
	if (uv_queue_work(s->v->loop, &op->work, work, after) != 0) {
		kb_free(op);
		return -EAGAIN;
	}
	s->busy = true;
	return 0;
}

/* Pushes this host's database as it is now (no caller waits). */
static void push_own(struct hd_auth_sync *s, uint64_t expect)
{
	struct push *p = kb_calloc(1, sizeof(*p));
	struct kb_buf b;

	kb_buf_init(&b, 0);
	if (!p || hostd_auth_db_encode(s->v->db, &b) != 0) {
		kb_free(p);
		kb_buf_close(&b);
		return;
	}
	p->text = b.data; /* taken from b */
	p->len = b.len;
	if (start_op(s, p, expect) != 0) {
		push_free(p);
		return;
	}
	s->dirty = false; /* the text holds every local change */
}

static void answer_aborted(struct hd_auth_sync *s)
{
	while (s->aborted) {
		struct push *p = s->aborted;

		s->aborted = p->next;
		if (p->cb)
			p->cb(s->v, p->arg, -ESTALE);
		push_free(p);
	}
}

/* The cluster's store replaces the local database. */
static void adopt(struct hd_auth_sync *s, struct op *op)
{
	struct hd_vim *v = s->v;
	bool first = s->applied.version == 0;
	size_t before = hostd_auth_user_count(v->db);

	if (op->decode_rv) {
		if (!same(&s->bad, &op->got))
			kb_log(v->log, KB_LOG_ERROR,
			       "the cluster's users and permissions (version %" PRIu64
			       ", from host %" PRIu64 ") do not decode, keeping the local ones: %s",
			       op->got.version, op->got.host, op->decode_error);
		s->bad = op->got;
		return;
	}
	hd_vim_auth_db_replace(v, op->db);
	op->db = NULL;
	s->applied = op->got;
	s->dirty = false;
	if (first)
		kb_log(v->log, KB_LOG_WARN,
		       "this host's users were replaced by the cluster's (version %" PRIu64
		       ", %zu users; %zu local users before)",
		       op->got.version, hostd_auth_user_count(v->db), before);
	else
		kb_log(v->log, KB_LOG_INFO,
		       "users and permissions: applied version %" PRIu64 " from host %" PRIu64,
		       op->got.version, op->got.host);
	hd_vim_users_save(v);
}

/* Whether two databases encode to the same text. */
static bool same_text(const struct hostd_auth_db *a, const struct hostd_auth_db *b)
{
	struct kb_buf x, y;
	bool eq;

	kb_buf_init(&x, 0);
	kb_buf_init(&y, 0);
	eq = hostd_auth_db_encode(a, &x) == 0 && hostd_auth_db_encode(b, &y) == 0 &&
	     x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
	kb_buf_close(&x);
	kb_buf_close(&y);
	return eq;
}

static void read_done(struct hd_auth_sync *s, struct op *op)
{
	if (!op->answered || op->code) {
		if (op->answered)
			kb_log(s->v->log, KB_LOG_DEBUG, "users and permissions: %s", op->error);
		return;
	}
	s->member = op->member;
	if (!op->member || s->head || hd_auth_cfg_busy(s->v))
		return; /* in no cluster; or local changes (or their puts) go first */
	if (!op->have_auth) {
		kb_log(s->v->log, KB_LOG_INFO,
		       "the cluster has no users yet: offering this host's");
		push_own(s, 0);
	} else if (!same(&op->got, &s->applied)) {
		adopt(s, op);
	} else if (s->dirty) {
		s->dirty = false;
		/* A hostd that starts offers what it holds; when the cluster holds the same, a
		 * push would only make every host write the same database again. */
		if (op->decode_rv == 0 && op->db && same_text(op->db, s->v->db))
			return;
		kb_log(s->v->log, KB_LOG_INFO, "users and permissions: pushing local changes");
		push_own(s, s->applied.version);
	}
}

static void push_done(struct hd_auth_sync *s, struct op *op)
{
	struct push *p = op->p;

	if (op->answered && op->code == 0 && op->have_auth) {
		s->applied = op->got;
		if (p->cb)
			p->cb(s->v, p->arg, 0);
		else
			hd_vim_users_save(s->v); /* the version file follows the store */
		push_free(p);
		return;
	}
	if (op->answered && op->code == -ESTALE) {
		kb_log(s->v->log, KB_LOG_WARN,
		       "users and permissions changed on another host at the same time: %s",
		       op->error);
		/* This change and every one queued after it are gone; they are answered once
		 * the cluster's store is applied. */
		p->next = s->head;
		s->head = NULL;
		s->tail = &s->head;
		s->aborted = p;
		if (start_op(s, NULL, 0) != 0)
			answer_aborted(s);
		return;
	}
	/* clusterd could not be reached or refused otherwise: the change stays local. */
	kb_log(s->v->log, KB_LOG_WARN, "users and permissions not replicated yet: %s",
	       op->error[0] ? op->error : "no answer");
	s->dirty = true;
	if (p->cb)
		p->cb(s->v, p->arg, 0);
	push_free(p);
}

static void after(uv_work_t *w, int status)
{
	struct op *op = w->data;
	struct hd_auth_sync *s = op->s;

	(void)status;
	s->busy = false;
	if (s->stopping) {
		/* hostd is stopping: the caller's call is gone; it frees what it holds. */
		if (op->p && op->p->cb)
			op->p->cb(s->v, op->p->arg, -ECANCELED);
		push_free(op->p);
		if (s->timer_closed)
			kb_free(s);
	} else if (op->p) {
		push_done(s, op);
	} else {
		read_done(s, op);
		answer_aborted(s);
	}
	if (op->db)
		hostd_auth_db_destroy(op->db);
	kb_free(op);
}

static void kick(struct hd_auth_sync *s)
{
	struct push *p;

	if (s->busy || s->stopping || !s->head)
		return;
	p = s->head;
	s->head = p->next;
	if (!s->head)
		s->tail = &s->head;
	p->next = NULL;
	if (start_op(s, p, s->applied.version) != 0) {
		/* No worker now: the change stays local, pushed again later. */
		s->dirty = true;
		if (p->cb)
			p->cb(s->v, p->arg, 0);
		push_free(p);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct hd_auth_sync *s = t->data;

	if (s->busy)
		return;
	if (s->head) {
		kick(s);
		return;
	}
	start_op(s, NULL, 0);
}

/* ---- the API ------------------------------------------------------------------------------ */

static void load_version(struct hd_auth_sync *s)
{
	char path[PATH_MAX + 32];
	struct kb_errmsg e = {{0}};
	struct kb_buf b;
	char text[96];
	unsigned long long ver, host, at;

	snprintf(path, sizeof(path), "%.4000s/%s", s->v->state_dir, HD_AUTH_VERSION_FILE);
	kb_buf_init(&b, 0);
	if (kb_file_read_small(path, 95, &b, &e) == 0) {
		memcpy(text, b.data, b.len);
		text[b.len] = '\0';
		if (sscanf(text, "%llu %llu %llu", &ver, &host, &at) == 3) {
			s->applied.version = ver;
			s->applied.host = host;
			s->applied.at_ms = at;
		} else {
			kb_log(s->v->log, KB_LOG_WARN, "%s is not valid: ignored", path);
		}
	}
	kb_buf_close(&b);
}

int hd_auth_sync_start(struct hd_vim *v)
{
	struct hd_auth_sync *s = kb_calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->v = v;
	s->member = -1;
	s->tail = &s->head;
	load_version(s);
	/* Changes made before the first answer from clusterd are offered to the cluster. */
	s->dirty = true;
	uv_timer_init(v->loop, &s->timer);
	s->timer.data = s;
	uv_timer_start(&s->timer, on_tick, 200, HD_AUTH_SYNC_TICK_MS);
	uv_unref((uv_handle_t *)&s->timer);
	v->sync = s;
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct hd_auth_sync *s = h->data;

	s->timer_closed = true;
	if (!s->busy)
		kb_free(s);
}

void hd_auth_sync_stop(struct hd_vim *v)
{
	struct hd_auth_sync *s = v->sync;

	if (!s)
		return;
	v->sync = NULL;
	s->stopping = true;
	while (s->head) {
		struct push *p = s->head;

		s->head = p->next;
		if (p->cb)
			p->cb(v, p->arg, -ECANCELED);
		push_free(p);
	}
	while (s->aborted) {
		struct push *p = s->aborted;

		s->aborted = p->next;
		if (p->cb)
			p->cb(v, p->arg, -ECANCELED);
		push_free(p);
	}
	uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

int hd_auth_sync_push(struct hd_vim *v, const void *text, size_t len, hd_auth_push_cb cb, void *arg)
{
	struct hd_auth_sync *s = v->sync;
	struct push *p;

	if (!s || s->member != 1) {
		if (s)
			s->dirty = true;
		return 1;
	}
	p = kb_calloc(1, sizeof(*p));
	if (p)
		p->text = kb_malloc(len ? len : 1);
	if (!p || !p->text) {
		kb_free(p);
		return -ENOMEM;
	}
	memcpy(p->text, text, len);
	p->len = len;
	p->cb = cb;
	p->arg = arg;
	*s->tail = p;
	s->tail = &p->next;
	kick(s);
	return 0;
}
