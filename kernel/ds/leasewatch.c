/*
 * The background lease watcher (see leasewatch.h).
 *
 * Happy path: a pass copies the watched datastore paths under the lock, then, for each, lists
 * .keel-hb/ and reads every record with the lock released; each result is applied under
 * the lock to the record's observer, found again by (path, host id), so a datastore that
 * left during the pass simply drops the result.
 *
 * Failure modes: see the header. Reads that fail are counted and fed as nothing; a hole
 * longer than the gap restarts an observer (logged, rate-limited); a datastore whose
 * directory cannot be listed is logged once per failure run.
 *
 * Lifetime: the watcher is shared by its creator and its thread, each holding a reference;
 * the last to drop it frees it, so a thread left behind in a read that never returns can
 * still finish safely after vmk_ds_lw_destroy().
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernel/ds/leasewatch.h"
#include "lib/heap.h"
#include "lib/list.h"
#include "lib/time.h"

#define LOG_EVERY_NS (10000 * KB_NSEC_PER_MSEC) /* at most one line about gaps per this */

struct lw_host {
	struct kb_list link; /* in lw_ds.hosts */
	uint64_t id;
	struct ha_lease_observer obs;
	uint64_t since_ns;
	uint64_t last_read_ns;
	uint64_t last_ok_ns; /* last successful read; 0: none since since_ns */
	uint64_t reads, failures;
};

struct lw_ds {
	struct kb_list link; /* in vmk_ds_lw.dss */
	char path[VMK_DS_PATH_MAX + 1];
	struct kb_list hosts; /* struct lw_host */
	size_t n_hosts;
	bool list_failing; /* the last listing failed (logged once per run) */
};

struct vmk_ds_lw {
	struct vmk_ds_lw_config cfg;
	pthread_mutex_t lock; /* guards dss, their hosts and last_gap_log */
	struct kb_list dss;   /* struct lw_ds */
	uint64_t last_gap_log;

	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_int refs;       /* the creator's and, once started, the thread's */
	pthread_mutex_t xlock; /* guards exited */
	pthread_cond_t cond;   /* signalled when exited is set; CLOCK_MONOTONIC */
	bool exited;
};

void vmk_ds_lw_config_init(struct vmk_ds_lw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->interval_ms = VMK_DS_LW_INTERVAL_MS;
	cfg->lease_ms = HA_LEASE_MS;
	cfg->gap_ms = VMK_DS_LW_GAP_MS;
}

static uint64_t now_ns(const struct vmk_ds_lw *lw)
{
	return lw->cfg.clock ? lw->cfg.clock(lw->cfg.clock_arg) : kb_now_ns();
}

static int read_record(const struct vmk_ds_lw *lw, const char *path, struct ha_hb_record *rec)
{
	return lw->cfg.read ? lw->cfg.read(lw->cfg.read_arg, path, rec)
			    : ha_hb_read(path, rec, NULL);
}

static void ds_free(struct lw_ds *d)
{
	while (!kb_list_empty(&d->hosts)) {
		struct kb_list *n = d->hosts.next;
		kb_list_del(n);
		kb_free(kb_list_entry(n, struct lw_host, link));
	}
	kb_free(d);
}

static void put_ref(struct vmk_ds_lw *lw)
{
	if (atomic_fetch_sub(&lw->refs, 1) != 1)
		return;
	while (!kb_list_empty(&lw->dss)) {
		struct kb_list *n = lw->dss.next;
		kb_list_del(n);
		ds_free(kb_list_entry(n, struct lw_ds, link));
	}
	pthread_cond_destroy(&lw->cond);
	pthread_mutex_destroy(&lw->xlock);
	pthread_mutex_destroy(&lw->lock);
	kb_free(lw);
}

int vmk_ds_lw_create(const struct vmk_ds_lw_config *cfg, struct vmk_ds_lw **out)
{
	struct vmk_ds_lw *lw;
	pthread_condattr_t ca;

	if (cfg->log == NULL || cfg->interval_ms == 0 || cfg->lease_ms == 0 || cfg->gap_ms == 0)
		return -EINVAL;
	lw = kb_calloc(1, sizeof(*lw));
	if (lw == NULL)
		return -ENOMEM;
	lw->cfg = *cfg;
	kb_list_init(&lw->dss);
	atomic_init(&lw->stop, false);
	atomic_init(&lw->refs, 1);
	pthread_mutex_init(&lw->lock, NULL);
	pthread_mutex_init(&lw->xlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lw->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = lw;
	return 0;
}

/* ---- the watched datastores ---------------------------------------------------------- */

static struct lw_ds *ds_find(struct vmk_ds_lw *lw, const char *path)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &lw->dss)
	{
		struct lw_ds *d = kb_list_entry(pos, struct lw_ds, link);
		if (strcmp(d->path, path) == 0)
			return d;
	}
	return NULL;
}

static struct lw_host *host_find(struct lw_ds *d, uint64_t id)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &d->hosts)
	{
		struct lw_host *h = kb_list_entry(pos, struct lw_host, link);
		if (h->id == id)
			return h;
	}
	return NULL;
}

static bool shared_in(const struct vmk_ds_registry *reg, const char *path)
{
	for (size_t i = 0; i < vmk_ds_count(reg); i++) {
		const struct vmk_ds *ds = vmk_ds_at(reg, i);
		if (ds->shared && strcmp(ds->path, path) == 0)
			return true;
	}
	return false;
}

int vmk_ds_lw_sync(struct vmk_ds_lw *lw, const struct vmk_ds_registry *reg)
{
	struct kb_list *pos, *next;
	int rv = 0;

	pthread_mutex_lock(&lw->lock);
	for (pos = lw->dss.next; pos != &lw->dss; pos = next) {
		struct lw_ds *d = kb_list_entry(pos, struct lw_ds, link);
		next = pos->next;
		if (!shared_in(reg, d->path)) {
			kb_list_del(pos);
			kb_log(lw->cfg.log, KB_LOG_INFO, "lease watch: %s no longer watched",
			       d->path);
			ds_free(d);
		}
	}
	for (size_t i = 0; i < vmk_ds_count(reg); i++) {
		const struct vmk_ds *ds = vmk_ds_at(reg, i);
		struct lw_ds *d;

		if (!ds->shared || ds_find(lw, ds->path) != NULL)
			continue;
		d = kb_calloc(1, sizeof(*d));
		if (d == NULL) {
			rv = -ENOMEM;
			continue;
		}
		snprintf(d->path, sizeof(d->path), "%s", ds->path);
		kb_list_init(&d->hosts);
		kb_list_add_tail(&lw->dss, &d->link);
		kb_log(lw->cfg.log, KB_LOG_INFO,
		       "lease watch: heartbeat records on %s (datastore %s) watched every %" PRIu32
		       " ms",
		       ds->path, ds->name, lw->cfg.interval_ms);
	}
	pthread_mutex_unlock(&lw->lock);
	return rv;
}

/* ---- one pass ------------------------------------------------------------------------ */

/* A record's host id from its file name: exactly 16 lower-case hex digits, non-zero. */
static bool parse_id(const char *name, uint64_t *id)
{
	uint64_t v = 0;
	int i;

	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];
		if (i >= 16 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		v = (v << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	if (i != 16 || v == 0)
		return false;
	*id = v;
	return true;
}

struct target {
	uint64_t id;
	bool listed;
};

static bool has_target(const struct target *t, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].id == id)
			return true;
	return false;
}

/* The records to read on path: those listed in .keel-hb/ (up to the limit), then those
 * already known. Returns the count; *out is the caller's (kb_free). *list_err: 0 or the
 * listing's error. */
static size_t targets(struct vmk_ds_lw *lw, const char *path, struct target **out, int *list_err)
{
	char dir[HA_HB_PATH_MAX];
	struct target *t = NULL;
	size_t n = 0, cap = 0;
	struct lw_ds *d;
	DIR *dp = NULL;

	*list_err = 0;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", path, HA_HB_DIR) >= sizeof(dir))
		*list_err = -ENAMETOOLONG;
	else if ((dp = opendir(dir)) == NULL)
		*list_err = -errno;
	for (struct dirent *de; dp != NULL && (de = readdir(dp)) != NULL;) {
		uint64_t id;

		if (!parse_id(de->d_name, &id) || id == lw->cfg.host_id || has_target(t, n, id))
			continue;
		if (n >= VMK_DS_LW_HOSTS_MAX)
			break;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			struct target *nt = kb_realloc(t, ncap * sizeof(*t));
			if (nt == NULL)
				break; /* the rest stay unknown this pass */
			t = nt;
			cap = ncap;
		}
		t[n++] = (struct target){.id = id, .listed = true};
	}
	if (dp != NULL)
		closedir(dp);

	pthread_mutex_lock(&lw->lock);
	d = ds_find(lw, path);
	if (d != NULL) {
		struct kb_list *pos;
		kb_list_for_each(pos, &d->hosts)
		{
			uint64_t id = kb_list_entry(pos, struct lw_host, link)->id;
			if (has_target(t, n, id))
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				struct target *nt = kb_realloc(t, ncap * sizeof(*t));
				if (nt == NULL)
					break; /* not read this pass: its next read sees a gap */
				t = nt;
				cap = ncap;
			}
			t[n++] = (struct target){.id = id, .listed = false};
		}
		if (*list_err != 0 && !d->list_failing)
			kb_log(lw->cfg.log, KB_LOG_WARN, "lease watch: %s: %s", dir,
			       kb_strerror(*list_err));
		else if (*list_err == 0 && d->list_failing)
			kb_log(lw->cfg.log, KB_LOG_INFO, "lease watch: %s readable again", dir);
		d->list_failing = *list_err != 0;
	}
	pthread_mutex_unlock(&lw->lock);
	*out = t;
	return n;
}

/* Applies one read attempt of tg's record on path, returned at t (rc, rec), under the lock. */
static void apply(struct vmk_ds_lw *lw, const char *path, const struct target *tg, int rc,
		  const struct ha_hb_record *rec, uint64_t t)
{
	const uint64_t gap = (uint64_t)lw->cfg.gap_ms * KB_NSEC_PER_MSEC;
	const uint64_t forget = (uint64_t)VMK_DS_LW_FORGET_MS * KB_NSEC_PER_MSEC;
	bool ok = rc == 0 && rec->host_id == tg->id;
	struct lw_ds *d = ds_find(lw, path);
	struct lw_host *h;

	if (d == NULL)
		return; /* no longer watched */
	h = host_find(d, tg->id);
	if (h == NULL) {
		if (!tg->listed || d->n_hosts >= VMK_DS_LW_HOSTS_MAX ||
		    (h = kb_calloc(1, sizeof(*h))) == NULL)
			return;
		h->id = tg->id;
		kb_list_add_tail(&d->hosts, &h->link);
		d->n_hosts++;
		ha_lease_observer_init(&h->obs, lw->cfg.lease_ms, t);
		h->since_ns = t;
		kb_log(lw->cfg.log, KB_LOG_INFO, "lease watch: %s: host %016" PRIx64 " watched",
		       path, tg->id);
	} else if (t - h->last_read_ns > gap) {
		/* A hole in the history: what happened in it is unknown, start over. */
		if (lw->last_gap_log == 0 || t - lw->last_gap_log >= LOG_EVERY_NS) {
			lw->last_gap_log = t;
			kb_log(lw->cfg.log, KB_LOG_WARN,
			       "lease watch: %s: host %016" PRIx64 " not read for %" PRIu64
			       " ms: its observation starts over",
			       path, tg->id, (uint64_t)((t - h->last_read_ns) / KB_NSEC_PER_MSEC));
		}
		ha_lease_observer_init(&h->obs, lw->cfg.lease_ms, t);
		h->since_ns = t;
		h->last_ok_ns = 0;
		h->reads = h->failures = 0;
	}
	h->last_read_ns = t;
	if (ok) {
		ha_lease_observe(&h->obs, rec->counter, t);
		h->last_ok_ns = t;
		h->reads++;
		return;
	}
	h->failures++;
	if (!tg->listed && t - (h->last_ok_ns ? h->last_ok_ns : h->since_ns) >= forget) {
		kb_log(lw->cfg.log, KB_LOG_INFO,
		       "lease watch: %s: host %016" PRIx64 " has had no record for %d s: forgotten",
		       path, tg->id, VMK_DS_LW_FORGET_MS / 1000);
		kb_list_del(&h->link);
		d->n_hosts--;
		kb_free(h);
	}
}

size_t vmk_ds_lw_poll(struct vmk_ds_lw *lw)
{
	char(*paths)[VMK_DS_PATH_MAX + 1] = NULL;
	size_t n = 0, attempts = 0;
	struct kb_list *pos;

	pthread_mutex_lock(&lw->lock);
	for (pos = lw->dss.next; pos != &lw->dss; pos = pos->next)
		n++;
	if (n > 0)
		paths = kb_calloc(n, sizeof(*paths));
	for (size_t i = 0; paths != NULL && i < n; i++) {
		pos = i == 0 ? lw->dss.next : pos->next;
		memcpy(paths[i], kb_list_entry(pos, struct lw_ds, link)->path, sizeof(*paths));
	}
	pthread_mutex_unlock(&lw->lock);
	if (paths == NULL)
		return 0; /* nothing watched, or no memory: the next pass tries again */

	for (size_t i = 0; i < n && !atomic_load(&lw->stop); i++) {
		struct target *t = NULL;
		int list_err;
		size_t nt = targets(lw, paths[i], &t, &list_err);

		for (size_t j = 0; j < nt && !atomic_load(&lw->stop); j++) {
			char path[HA_HB_PATH_MAX];
			struct ha_hb_record rec = {0};
			int rc = ha_hb_path(paths[i], t[j].id, path);

			if (rc == 0)
				rc = read_record(lw, path, &rec);
			uint64_t now = now_ns(lw); /* when the read returned */
			pthread_mutex_lock(&lw->lock);
			apply(lw, paths[i], &t[j], rc, &rec, now);
			pthread_mutex_unlock(&lw->lock);
			attempts++;
		}
		kb_free(t);
	}
	kb_free(paths);
	return attempts;
}

int vmk_ds_lw_lookup(struct vmk_ds_lw *lw, const char *ds_path, uint64_t host_id,
		     struct vmk_ds_lw_view *out)
{
	const uint64_t gap = (uint64_t)lw->cfg.gap_ms * KB_NSEC_PER_MSEC;
	struct lw_host *h = NULL;
	struct lw_ds *d;
	int rv;

	pthread_mutex_lock(&lw->lock);
	d = ds_find(lw, ds_path);
	if (d != NULL)
		h = host_find(d, host_id);
	if (h == NULL) {
		rv = KB_ENOTFOUND;
	} else {
		uint64_t now = now_ns(lw);
		out->obs = h->obs;
		out->since_ns = h->since_ns;
		out->last_read_ns = h->last_read_ns;
		out->reads = h->reads;
		out->failures = h->failures;
		rv = now > h->last_read_ns && now - h->last_read_ns > gap ? KB_ETIMEOUT : 0;
	}
	pthread_mutex_unlock(&lw->lock);
	return rv;
}

/* ---- the thread ---------------------------------------------------------------------- */

static void sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
	    .tv_sec = (time_t)(deadline_ns / KB_NSEC_PER_SEC),
	    .tv_nsec = (long)(deadline_ns % KB_NSEC_PER_SEC),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *watch_main(void *arg)
{
	struct vmk_ds_lw *lw = arg;
	const uint64_t interval = (uint64_t)lw->cfg.interval_ms * KB_NSEC_PER_MSEC;
	uint64_t next = kb_now_ns();

	while (!atomic_load(&lw->stop)) {
		vmk_ds_lw_poll(lw);
		uint64_t now = kb_now_ns();
		next += interval;
		if (next <= now)
			next += ((now - next) / interval + 1) * interval;
		if (!atomic_load(&lw->stop))
			sleep_until(next);
	}
	pthread_mutex_lock(&lw->xlock);
	lw->exited = true;
	pthread_cond_broadcast(&lw->cond);
	pthread_mutex_unlock(&lw->xlock);
	put_ref(lw);
	return NULL;
}

int vmk_ds_lw_start(struct vmk_ds_lw *lw)
{
	sigset_t all, old;
	int rc;

	if (lw->started)
		return -EALREADY;
	atomic_fetch_add(&lw->refs, 1);
	/* The thread takes no signals: they belong to the loop thread's handlers. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&lw->thread, NULL, watch_main, lw);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		atomic_fetch_sub(&lw->refs, 1);
		return rc;
	}
	lw->started = true;
	return 0;
}

void vmk_ds_lw_destroy(struct vmk_ds_lw *lw)
{
	uint64_t deadline = kb_now_ns() + VMK_DS_LW_STOP_WAIT_MS * KB_NSEC_PER_MSEC;
	struct timespec ts = {
	    .tv_sec = (time_t)(deadline / KB_NSEC_PER_SEC),
	    .tv_nsec = (long)(deadline % KB_NSEC_PER_SEC),
	};
	bool exited;

	if (lw == NULL)
		return;
	atomic_store(&lw->stop, true);
	if (lw->started) {
		pthread_mutex_lock(&lw->xlock);
		while (!lw->exited &&
		       pthread_cond_timedwait(&lw->cond, &lw->xlock, &ts) != ETIMEDOUT)
			;
		exited = lw->exited;
		pthread_mutex_unlock(&lw->xlock);
		if (exited) {
			pthread_join(lw->thread, NULL);
		} else {
			kb_log(lw->cfg.log, KB_LOG_WARN,
			       "lease watch: thread stuck in I/O for %d ms: left to finish",
			       VMK_DS_LW_STOP_WAIT_MS);
			pthread_detach(lw->thread);
		}
	}
	put_ref(lw);
}
