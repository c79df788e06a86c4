/*
 * The change feed: the versioned object cache and WaitForUpdates (vim_feed.h,
 * docs/hostd.md "Change feed").
 *
 * The cache holds every object once, keyed by id, on a list in version order (a change
 * moves the object to the tail with the next version). A removed object stays as a
 * tombstone (its id and the version of its removal) so a client resuming from an older
 * version learns of the removal; at most HD_FEED_TOMBSTONES_MAX are kept, and dropping
 * one raises `compacted`, the oldest version a client may resume from. So "everything
 * after version c" is the walk of the list's tail with versions above c: each changed
 * object once, in its latest state (intermediate states are skipped, as a client that
 * comes back wants).
 *
 * A stream keeps only its cursor (the last version the client has). It is sent what lies
 * past the cursor whenever something changes; when hd_call_send refuses (-ENOBUFS, the
 * call's queue holds HD_CALL_SENDQ_MAX bytes) it stops and goes on from its cursor on the
 * drain callback. A client that stops reading therefore costs at most its call's queue.
 * A cursor that cannot be resumed (below `compacted`, or above the feed's version: another
 * hostd's) starts the stream over: an Update with no object and `removed` set ("forget
 * every object"), then every live object.
 *
 * Failure modes: out of memory while packing an object skips that change (the next poll
 * retries it); a gather that fails changes nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "hostagent/vim_feed.h"
#include "hostagent/vim_tasks.h"
#include "lib/heap.h"
#include "lib/list.h"
#include "lib/time.h"

#define BUCKETS 8192 /* hash buckets for the objects' ids */

struct obj {
	struct kb_list link; /* f->objs, by version */
	struct obj *hnext;   /* hash chain */
	int kind;	     /* Keel__Vim__Update__ObjectCase */
	uint64_t version;    /* of its last change (its removal for a tombstone) */
	uint64_t seen;	     /* the last poll that saw it */
	bool removed;
	bool finished;	/* a finished task */
	uint8_t *bytes; /* the object packed with version 0; NULL for a tombstone */
	size_t len;
	char id[];
};

struct stream {
	struct kb_list link; /* f->streams */
	struct hd_feed *f;
	struct hd_call *call;
	uint64_t cursor;   /* the last version the client was sent */
	uint64_t reset_at; /* the feed's version when the stream last started over */
	bool reset;	   /* owes the client a reset marker */
	bool blocked;	   /* waiting for the drain callback */
	bool logged;	   /* its first block was logged */
	char peer[64];
};

struct hd_feed {
	struct hd_vim *v;
	struct hd_tasks *tasks;
	uint64_t version;   /* the last version given */
	uint64_t compacted; /* resuming below this is not possible */
	uint64_t gen;	    /* poll generation */
	size_t ntombs, nfinished;
	struct kb_list objs;
	struct obj *hash[BUCKETS];
	struct kb_list streams;
	size_t nstreams;
	uv_timer_t *timer; /* the poller, while a stream is open */
	struct watch *watch; /* vmkernel's files, while a stream is open */
	bool gathering;
	bool again; /* a kick came during a gather: gather once more */
};

/* Kicks: vmkernel rewrites <state>/inventory.conf (rename) when VMs are added or removed
 * and makes or removes <state>/run/<uuid>.pid when a vmx starts or ends, whoever asked
 * (the API, keel on the host, the cluster, the guest itself). A change of either polls at
 * once and once more KICK_AGAIN_MS later (the power state may be set just after the file),
 * so such changes reach the feed in milliseconds instead of up to HD_FEED_POLL_MS. */
#define KICK_DELAY_MS 2
#define KICK_AGAIN_MS 60
struct watch {
	struct hd_feed *f;
	uv_fs_event_t dir, run;
	bool dir_on, run_on;
	uv_timer_t kick;
	unsigned pending; /* polls the kick still owes */
	int open;	  /* handles not yet closed */
};

static const ProtobufCMessageDescriptor *const descs[] = {
    [KEEL__VIM__UPDATE__OBJECT_HOST] = &keel__vim__host_object__descriptor,
    [KEEL__VIM__UPDATE__OBJECT_VM] = &keel__vim__vm_object__descriptor,
    [KEEL__VIM__UPDATE__OBJECT_DATASTORE] = &keel__vim__datastore_object__descriptor,
    [KEEL__VIM__UPDATE__OBJECT_NETWORK] = &keel__vim__network_object__descriptor,
    [KEEL__VIM__UPDATE__OBJECT_CLUSTER] = &keel__vim__cluster_object__descriptor,
    [KEEL__VIM__UPDATE__OBJECT_TASK] = &keel__vim__task__descriptor,
};

/* The version field of an object message (tasks have none: NULL). */
static uint64_t *version_of(int kind, ProtobufCMessage *m)
{
	switch (kind) {
	case KEEL__VIM__UPDATE__OBJECT_HOST:
		return &((Keel__Vim__HostObject *)m)->version;
	case KEEL__VIM__UPDATE__OBJECT_VM:
		return &((Keel__Vim__VmObject *)m)->version;
	case KEEL__VIM__UPDATE__OBJECT_DATASTORE:
		return &((Keel__Vim__DatastoreObject *)m)->version;
	case KEEL__VIM__UPDATE__OBJECT_NETWORK:
		return &((Keel__Vim__NetworkObject *)m)->version;
	case KEEL__VIM__UPDATE__OBJECT_CLUSTER:
		return &((Keel__Vim__ClusterObject *)m)->version;
	default:
		return NULL;
	}
}

/* The id field (the first field of every object message). */
static char **id_of(int kind, ProtobufCMessage *m)
{
	switch (kind) {
	case KEEL__VIM__UPDATE__OBJECT_HOST:
		return &((Keel__Vim__HostObject *)m)->id;
	case KEEL__VIM__UPDATE__OBJECT_VM:
		return &((Keel__Vim__VmObject *)m)->id;
	case KEEL__VIM__UPDATE__OBJECT_DATASTORE:
		return &((Keel__Vim__DatastoreObject *)m)->id;
	case KEEL__VIM__UPDATE__OBJECT_NETWORK:
		return &((Keel__Vim__NetworkObject *)m)->id;
	case KEEL__VIM__UPDATE__OBJECT_CLUSTER:
		return &((Keel__Vim__ClusterObject *)m)->id;
	default:
		return &((Keel__Vim__Task *)m)->id;
	}
}

static void set_object(Keel__Vim__Update *u, int kind, ProtobufCMessage *m)
{
	u->object_case = kind;
	switch (kind) {
	case KEEL__VIM__UPDATE__OBJECT_HOST:
		u->host = (Keel__Vim__HostObject *)m;
		break;
	case KEEL__VIM__UPDATE__OBJECT_VM:
		u->vm = (Keel__Vim__VmObject *)m;
		break;
	case KEEL__VIM__UPDATE__OBJECT_DATASTORE:
		u->datastore = (Keel__Vim__DatastoreObject *)m;
		break;
	case KEEL__VIM__UPDATE__OBJECT_NETWORK:
		u->network = (Keel__Vim__NetworkObject *)m;
		break;
	case KEEL__VIM__UPDATE__OBJECT_CLUSTER:
		u->cluster = (Keel__Vim__ClusterObject *)m;
		break;
	default:
		u->task = (Keel__Vim__Task *)m;
		break;
	}
}

static size_t bucket(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h & (BUCKETS - 1);
}

static struct obj *lookup(struct hd_feed *f, const char *id)
{
	for (struct obj *o = f->hash[bucket(id)]; o; o = o->hnext)
		if (strcmp(o->id, id) == 0)
			return o;
	return NULL;
}

static void obj_free(struct hd_feed *f, struct obj *o)
{
	struct obj **pp = &f->hash[bucket(o->id)];

	while (*pp != o)
		pp = &(*pp)->hnext;
	*pp = o->hnext;
	kb_list_del(&o->link);
	kb_free(o->bytes);
	kb_free(o);
}

/* Gives o the next version and moves it to the tail. */
static void bump(struct hd_feed *f, struct obj *o)
{
	o->version = ++f->version;
	kb_list_del(&o->link);
	kb_list_add_tail(&f->objs, &o->link);
}

/* Drops the oldest tombstone; a client behind it can no longer resume. */
static void drop_oldest_tombstone(struct hd_feed *f)
{
	for (struct kb_list *l = f->objs.next; l != &f->objs; l = l->next) {
		struct obj *o = kb_list_entry(l, struct obj, link);

		if (o->removed) {
			if (o->version > f->compacted)
				f->compacted = o->version;
			f->ntombs--;
			obj_free(f, o);
			return;
		}
	}
}

static void tombstone(struct hd_feed *f, struct obj *o)
{
	if (o->finished)
		f->nfinished--;
	o->removed = true;
	o->finished = false;
	kb_free(o->bytes);
	o->bytes = NULL;
	o->len = 0;
	bump(f, o);
	f->ntombs++;
}

/* Keeps at most HD_FEED_TOMBSTONES_MAX tombstones (after a walk of the list: this frees). */
static void trim_tombstones(struct hd_feed *f)
{
	while (f->ntombs > HD_FEED_TOMBSTONES_MAX)
		drop_oldest_tombstone(f);
}

/*
 * Records the object m (its version field is ignored) and sets that field to the cached
 * version. True when it changed. m's id must be set.
 */
static bool upsert(struct hd_feed *f, int kind, ProtobufCMessage *m, bool finished)
{
	uint64_t *vp = version_of(kind, m);
	const char *id = *id_of(kind, m);
	struct obj *o;
	uint8_t *b;
	size_t len;

	if (!id || !id[0])
		return false;
	if (vp)
		*vp = 0;
	len = protobuf_c_message_get_packed_size(m);
	b = kb_malloc(len ? len : 1);
	o = lookup(f, id);
	if (!b) { /* skipped: the next poll tries again */
		if (vp && o && !o->removed)
			*vp = o->version;
		return false;
	}
	protobuf_c_message_pack(m, b);
	if (o && !o->removed && o->kind == kind && o->len == len && memcmp(o->bytes, b, len) == 0) {
		kb_free(b);
		o->seen = f->gen;
		if (vp)
			*vp = o->version;
		return false;
	}
	if (!o) {
		size_t n = strlen(id);

		o = kb_calloc(1, sizeof(*o) + n + 1);
		if (!o) {
			kb_free(b);
			return false;
		}
		memcpy(o->id, id, n + 1);
		kb_list_init(&o->link);
		o->hnext = f->hash[bucket(id)];
		f->hash[bucket(id)] = o;
	} else if (o->removed) {
		f->ntombs--;
	}
	if (o->finished)
		f->nfinished--;
	kb_free(o->bytes);
	o->bytes = b;
	o->len = len;
	o->kind = kind;
	o->removed = false;
	o->finished = finished;
	o->seen = f->gen;
	if (finished)
		f->nfinished++;
	bump(f, o);
	if (vp)
		*vp = o->version;
	return true;
}

/* ---- streams ------------------------------------------------------------------------------- */

/* Sends o as an Update. 0, or what hd_call_send returned. */
static int send_obj(struct stream *s, const struct obj *o)
{
	Keel__Vim__Update u = KEEL__VIM__UPDATE__INIT;
	ProtobufCMessage *m;
	uint64_t *vp;
	int rv;

	u.version = o->version;
	u.removed = o->removed;
	if (o->removed) {
		/* only the id: a zeroed message of the kind with its id set */
		union {
			Keel__Vim__HostObject h;
			Keel__Vim__VmObject vm;
			Keel__Vim__DatastoreObject d;
			Keel__Vim__NetworkObject n;
			Keel__Vim__ClusterObject c;
			Keel__Vim__Task t;
		} x;

		protobuf_c_message_init(descs[o->kind], &x);
		m = (ProtobufCMessage *)&x;
		*id_of(o->kind, m) = (char *)o->id;
		if ((vp = version_of(o->kind, m)))
			*vp = o->version;
		set_object(&u, o->kind, m);
		return hd_call_send(s->call, &u.base);
	}
	m = protobuf_c_message_unpack(descs[o->kind], NULL, o->len, o->bytes);
	if (!m)
		return -ENOMEM;
	if ((vp = version_of(o->kind, m)))
		*vp = o->version;
	set_object(&u, o->kind, m);
	rv = hd_call_send(s->call, &u.base);
	protobuf_c_message_free_unpacked(m, NULL);
	return rv;
}

static void blocked(struct stream *s)
{
	s->blocked = true;
	if (!s->logged) {
		s->logged = true;
		kb_log(s->f->v->log, KB_LOG_INFO,
		       "WaitForUpdates from %s: the client is not reading; paused at version "
		       "%" PRIu64,
		       s->peer, s->cursor);
	}
}

/* Sends the stream everything past its cursor, until the queue is full. */
static void pump(struct stream *s)
{
	struct hd_feed *f = s->f;
	struct kb_list *l;
	int rv;

	if (s->blocked)
		return;
	if (s->cursor > f->version || (s->cursor && s->cursor < f->compacted)) {
		s->reset = true;
		s->cursor = 0;
		s->reset_at = f->version;
	}
	if (s->reset) {
		Keel__Vim__Update u = KEEL__VIM__UPDATE__INIT;

		u.version = 0; /* a client resumes from the last version it got: from scratch */
		u.removed = true;
		rv = hd_call_send(s->call, &u.base);
		if (rv == -ENOBUFS) {
			blocked(s);
			return;
		}
		s->reset = false;
	}
	/* back from the tail to the first object past the cursor, then forward */
	for (l = f->objs.prev; l != &f->objs; l = l->prev)
		if (kb_list_entry(l, struct obj, link)->version <= s->cursor)
			break;
	for (l = l->next; l != &f->objs; l = l->next) {
		const struct obj *o = kb_list_entry(l, struct obj, link);

		/* a removal from before the stream started over is news to nobody */
		if (!(o->removed && o->version <= s->reset_at)) {
			rv = send_obj(s, o);
			if (rv == -ENOBUFS) {
				blocked(s);
				return;
			}
			if (rv < 0)
				kb_log(f->v->log, KB_LOG_WARN, "WaitForUpdates: %s not sent: %s",
				       o->id, kb_strerror(rv));
		}
		s->cursor = o->version;
	}
	s->cursor = f->version;
}

static void pump_all(struct hd_feed *f)
{
	for (struct kb_list *l = f->streams.next; l != &f->streams; l = l->next)
		pump(kb_list_entry(l, struct stream, link));
}

/* ---- sources: the poller and the task observer --------------------------------------------- */

static void gather(struct hd_feed *f);

static void polled(struct hd_vim *v, struct hd_inv_result *r, void *arg)
{
	struct hd_feed *f = arg;

	(void)v;
	f->gathering = false;
	if (r->inv)
		hd_feed_apply(f, r->inv, r->cluster_ok);
	if (f->again && f->timer) {
		f->again = false;
		gather(f);
	}
}

static void gather(struct hd_feed *f)
{
	if (f->gathering) {
		f->again = true;
		return;
	}
	f->gathering = hd_inv_gather(f->v, polled, f) == 0;
}

static void on_poll(uv_timer_t *t)
{
	struct hd_feed *f = t->data;

	if (!f->gathering)
		gather(f);
}

static void on_kick(uv_timer_t *t)
{
	struct watch *w = t->data;

	gather(w->f);
	if (w->pending > 1) {
		w->pending = 0;
		uv_timer_start(&w->kick, on_kick, KICK_AGAIN_MS, 0);
	} else {
		w->pending = 0;
	}
}

static void on_fs(uv_fs_event_t *h, const char *name, int events, int status)
{
	struct watch *w = h->data;
	size_t n = name ? strlen(name) : 0;

	(void)events;
	if (status < 0 || name == NULL)
		return;
	if (h == &w->dir ? strcmp(name, "inventory.conf") != 0
			 : (n < 5 || strcmp(name + n - 4, ".pid") != 0))
		return;
	if (w->pending == 0)
		uv_timer_start(&w->kick, on_kick, KICK_DELAY_MS, 0);
	w->pending = 2;
}

static void watch_closed(uv_handle_t *h)
{
	struct watch *w = h->data;

	if (--w->open == 0)
		kb_free(w);
}

static void watch_start(struct hd_feed *f)
{
	struct watch *w;
	char path[PATH_MAX + 8];
	int rv;

	if (f->watch || !f->v->state_dir[0])
		return;
	w = kb_calloc(1, sizeof(*w));
	if (!w)
		return; /* the poller alone */
	w->f = f;
	uv_timer_init(f->v->loop, &w->kick);
	w->kick.data = w;
	w->open = 1;
	uv_fs_event_init(f->v->loop, &w->dir);
	w->dir.data = w;
	w->open++;
	rv = uv_fs_event_start(&w->dir, on_fs, f->v->state_dir, 0);
	w->dir_on = rv == 0;
	uv_fs_event_init(f->v->loop, &w->run);
	w->run.data = w;
	w->open++;
	snprintf(path, sizeof(path), "%s/run", f->v->state_dir);
	rv = uv_fs_event_start(&w->run, on_fs, path, 0);
	w->run_on = rv == 0;
	if (!w->dir_on || !w->run_on)
		kb_log(f->v->log, KB_LOG_DEBUG,
		       "WaitForUpdates: not watching %s%s: changes arrive with the %d ms poll",
		       f->v->state_dir, w->run_on ? "" : "/run", HD_FEED_POLL_MS);
	f->watch = w;
}

static void watch_stop(struct hd_feed *f)
{
	struct watch *w = f->watch;

	if (!w)
		return;
	f->watch = NULL;
	uv_timer_stop(&w->kick);
	uv_close((uv_handle_t *)&w->kick, watch_closed);
	uv_close((uv_handle_t *)&w->dir, watch_closed);
	uv_close((uv_handle_t *)&w->run, watch_closed);
}

static void timer_closed(uv_handle_t *h)
{
	kb_free(h);
}

static void poller_start(struct hd_feed *f)
{
	if (f->timer)
		return;
	f->timer = kb_calloc(1, sizeof(*f->timer));
	if (!f->timer)
		return; /* no live polling: tasks still flow, RetrieveInventory still updates */
	uv_timer_init(f->v->loop, f->timer);
	f->timer->data = f;
	uv_timer_start(f->timer, on_poll, 0, HD_FEED_POLL_MS);
	watch_start(f);
}

static void poller_stop(struct hd_feed *f)
{
	if (!f->timer)
		return;
	uv_timer_stop(f->timer);
	uv_close((uv_handle_t *)f->timer, timer_closed);
	f->timer = NULL;
	f->again = false;
	watch_stop(f);
}

static bool task_finished(const struct hd_task *task)
{
	return task->state == HD_TASK_SUCCESS || task->state == HD_TASK_ERROR ||
	       task->state == HD_TASK_CANCELLED;
}

/* Records a task; past HD_TASKS_KEEP finished ones the oldest is removed, as the manager
 * forgets it. */
static void record_task(struct hd_feed *f, const struct hd_task *task)
{
	Keel__Vim__Task m;

	hd_task_to_pb(task, &m);
	upsert(f, KEEL__VIM__UPDATE__OBJECT_TASK, &m.base, task_finished(task));
	while (f->nfinished > HD_TASKS_KEEP) {
		struct kb_list *l;

		for (l = f->objs.next; l != &f->objs; l = l->next)
			if (kb_list_entry(l, struct obj, link)->finished)
				break;
		if (l == &f->objs)
			break;
		tombstone(f, kb_list_entry(l, struct obj, link));
	}
	trim_tombstones(f);
}

static void on_task(const struct hd_task *task, void *arg)
{
	struct hd_feed *f = arg;

	record_task(f, task);
	pump_all(f);
}

/* ---- the feed ------------------------------------------------------------------------------ */

void hd_feed_apply(struct hd_feed *f, Keel__Vim__Inventory *inv, bool cluster_ok)
{
	bool fill_only = false;
	struct kb_list *l, *next;

	if (!cluster_ok)
		for (l = f->objs.next; l != &f->objs && !fill_only; l = l->next) {
			const struct obj *o = kb_list_entry(l, struct obj, link);

			fill_only = !o->removed && o->kind == KEEL__VIM__UPDATE__OBJECT_CLUSTER;
		}
	if (fill_only) {
		/* clusterd is restarting: keep the cache, show its versions */
		struct obj *o;

		for (size_t i = 0; i < inv->n_hosts; i++)
			inv->hosts[i]->version =
			    (o = lookup(f, inv->hosts[i]->id)) && !o->removed ? o->version : 0;
		for (size_t i = 0; i < inv->n_vms; i++)
			inv->vms[i]->version =
			    (o = lookup(f, inv->vms[i]->id)) && !o->removed ? o->version : 0;
		for (size_t i = 0; i < inv->n_datastores; i++)
			inv->datastores[i]->version =
			    (o = lookup(f, inv->datastores[i]->id)) && !o->removed ? o->version : 0;
		for (size_t i = 0; i < inv->n_networks; i++)
			inv->networks[i]->version =
			    (o = lookup(f, inv->networks[i]->id)) && !o->removed ? o->version : 0;
		inv->version = f->version;
		return;
	}
	f->gen++;
	for (size_t i = 0; i < inv->n_hosts; i++)
		upsert(f, KEEL__VIM__UPDATE__OBJECT_HOST, &inv->hosts[i]->base, false);
	for (size_t i = 0; i < inv->n_vms; i++)
		upsert(f, KEEL__VIM__UPDATE__OBJECT_VM, &inv->vms[i]->base, false);
	for (size_t i = 0; i < inv->n_datastores; i++)
		upsert(f, KEEL__VIM__UPDATE__OBJECT_DATASTORE, &inv->datastores[i]->base, false);
	for (size_t i = 0; i < inv->n_networks; i++)
		upsert(f, KEEL__VIM__UPDATE__OBJECT_NETWORK, &inv->networks[i]->base, false);
	if (inv->cluster)
		upsert(f, KEEL__VIM__UPDATE__OBJECT_CLUSTER, &inv->cluster->base, false);
	/* what the inventory no longer has is gone (tasks are not the inventory's) */
	for (l = f->objs.next; l != &f->objs; l = next) {
		struct obj *o = kb_list_entry(l, struct obj, link);

		next = l->next;
		if (!o->removed && o->kind != KEEL__VIM__UPDATE__OBJECT_TASK && o->seen != f->gen)
			tombstone(f, o);
	}
	trim_tombstones(f);
	inv->version = f->version;
	pump_all(f);
}

uint64_t hd_feed_version(const struct hd_feed *f)
{
	return f->version;
}

/* hostd has one struct hd_vim; its feed lives as long as the process (reachable from here,
 * like the task manager). */
static struct {
	struct hd_vim *v;
	struct hd_feed *f;
} hostd_feed;

struct hd_feed *hd_vim_feed(struct hd_vim *v)
{
	struct hd_feed *f;
	struct hd_tasks *t;

	if (hostd_feed.f && hostd_feed.v == v)
		return hostd_feed.f;
	t = hd_vim_tasks(v);
	f = t ? kb_calloc(1, sizeof(*f)) : NULL;
	if (!f)
		return NULL;
	f->v = v;
	f->tasks = t;
	/* versions of an earlier hostd are below this one's */
	f->version = kb_wall_ns() / 1000u;
	f->compacted = f->version;
	kb_list_init(&f->objs);
	kb_list_init(&f->streams);
	if (hd_tasks_observe(t, on_task, f) != 0) {
		kb_free(f);
		return NULL;
	}
	for (struct hd_task *task = hd_tasks_next(t, NULL); task; task = hd_tasks_next(t, task))
		record_task(f, task);
	/* an earlier feed (another struct hd_vim: tests) stays as it is */
	hostd_feed.v = v;
	hostd_feed.f = f;
	return f;
}

/* ---- WaitForUpdates ------------------------------------------------------------------------ */

static void stream_drop(struct stream *s)
{
	struct hd_feed *f = s->f;

	kb_list_del(&s->link);
	if (--f->nstreams == 0)
		poller_stop(f);
	kb_free(s);
}

static void on_cancel(struct hd_call *call, void *arg)
{
	(void)call;
	stream_drop(arg);
}

static void on_drain(struct hd_call *call, void *arg)
{
	struct stream *s = arg;

	(void)call;
	s->blocked = false;
	pump(s);
}

void hd_vim_wait_for_updates(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__WaitForUpdatesRequest *rq = (const Keel__Vim__WaitForUpdatesRequest *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	struct hd_feed *f;
	struct stream *s;

	if (!hd_vim_authorize(call, root, 1, "System.View"))
		return;
	f = hd_vim_feed(v);
	s = f ? kb_calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	s->f = f;
	s->call = call;
	s->cursor = rq->since_version;
	if (!s->cursor)
		s->reset_at = f->version; /* a new client: no removals from before */
	snprintf(s->peer, sizeof(s->peer), "%s", hd_call_peer(call) ? hd_call_peer(call) : "?");
	kb_list_add_tail(&f->streams, &s->link);
	f->nstreams++;
	hd_call_on_cancel(call, on_cancel, s);
	hd_call_on_drain(call, on_drain, s);
	poller_start(f);
	pump(s);
}
