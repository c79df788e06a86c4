/*
 * Heartbeat writers for the shared datastores (see heartbeat.h).
 *
 * Happy path: vmk_ds_hb_sync() starts one thread per shared datastore; the thread opens
 * its record (ha_hb_writer_open, which continues the counter from disk and writes the
 * first beat), then beats at start + k * interval on CLOCK_MONOTONIC until asked to stop,
 * and closes the record.
 *
 * Failure modes: a failed open or beat is counted, logged (the first at once, then at
 * most once per VMK_DS_HB_LOG_EVERY_MS with the number of failures since), and retried at
 * the next deadline after closing the file, so a datastore that comes back (remounted,
 * record removed by hand) gets a fresh file; the counter continues from the highest value
 * written. A write slower than the interval skips the deadlines it overran (counted as
 * late and logged, rate-limited). Recovery is logged once.
 *
 * Lifetime: a writer is shared by the set and its thread, each holding a reference; the
 * last to drop it frees it, so a thread left behind in a write that never returns can
 * still finish safely after the set has forgotten it.
 */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ha/hb.h"
#include "kernel/ds/heartbeat.h"
#include "lib/heap.h"
#include "lib/time.h"

struct vmk_ds_hb {
	struct kb_list link; /* in set->writers */
	struct vmk_ds_hb_config cfg;
	pthread_t thread;
	atomic_bool stop;
	atomic_int refs; /* the set's and the thread's */

	pthread_mutex_t lock; /* guards st, exited */
	pthread_cond_t cond;  /* signalled when exited is set; CLOCK_MONOTONIC */
	bool exited;
	struct vmk_ds_hb_status st;

	/* the thread's own */
	struct ha_hb_writer w;
	bool open;
	uint64_t high;		 /* highest counter written, across reopens */
	uint64_t fail_run;	 /* failed attempts since the last success */
	uint64_t fails_unlogged; /* failures since the last line about them */
	uint64_t late_unlogged;
	uint64_t last_fail_log; /* kb_now_ns() of the last line about failures; 0: none */
	uint64_t last_late_log;
	bool rt_refused; /* the real-time policy was not allowed */
};

void vmk_ds_hb_config_init(struct vmk_ds_hb_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->interval_ms = HA_HB_INTERVAL_MS;
}

static void put_ref(struct vmk_ds_hb *b)
{
	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	kb_free(b);
}

static bool log_due(uint64_t *last, uint64_t now)
{
	if (*last != 0 && now - *last < VMK_DS_HB_LOG_EVERY_MS * KB_NSEC_PER_MSEC)
		return false;
	*last = now;
	return true;
}

/* True when the record at w->path is no longer the file w writes (removed or replaced). */
static bool record_moved(const struct ha_hb_writer *w)
{
	struct stat a, b;

	if (fstat(w->fd, &a) < 0 || stat(w->path, &b) < 0)
		return true;
	return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

/* One attempt: open the record if needed, else write the next beat. */
static int attempt(struct vmk_ds_hb *b, struct kb_errmsg *e)
{
	int rc;

	if (b->open && record_moved(&b->w)) {
		kb_log(b->cfg.log, KB_LOG_WARN,
		       "datastore %s: heartbeat record %s was removed or replaced: reopening",
		       b->st.name, b->w.path);
		ha_hb_writer_close(&b->w);
		b->open = false;
	}
	if (b->open)
		return ha_hb_writer_beat(&b->w, e);
	rc = ha_hb_writer_open(&b->w, b->st.path, b->cfg.host_id, b->cfg.io_opts, e);
	if (rc < 0)
		return rc;
	b->open = true;
	if (b->w.rec.counter <= b->high) {
		/* the record on disk was lost or damaged: go on from what this writer wrote */
		b->w.rec.counter = b->high;
		rc = ha_hb_writer_beat(&b->w, e);
	}
	if (rc == 0 && b->st.beats == 0)
		kb_log(b->cfg.log, KB_LOG_INFO,
		       "datastore %s: heartbeat record %s, host %016" PRIx64 ", counter %" PRIu64
		       " (%s)",
		       b->st.name, b->w.path, b->cfg.host_id, b->w.rec.counter,
		       b->w.io == HA_IO_DIRECT ? "O_DIRECT|O_DSYNC" : "O_DSYNC");
	return rc;
}

static void record_result(struct vmk_ds_hb *b, int rc, const struct kb_errmsg *e)
{
	uint64_t now = kb_now_ns();

	pthread_mutex_lock(&b->lock);
	if (rc == 0) {
		b->high = b->w.rec.counter;
		b->st.counter = b->w.rec.counter;
		b->st.beats++;
		b->st.last_err = 0;
	} else {
		b->st.failures++;
		b->st.last_err = rc;
		snprintf(b->st.last_error, sizeof(b->st.last_error), "%s", e->msg);
	}
	pthread_mutex_unlock(&b->lock);

	if (rc == 0) {
		if (b->fail_run > 0)
			kb_log(b->cfg.log, KB_LOG_INFO,
			       "datastore %s: heartbeat recovered after %" PRIu64
			       " failed attempt%s, counter %" PRIu64,
			       b->st.name, b->fail_run, b->fail_run == 1 ? "" : "s",
			       b->w.rec.counter);
		b->fail_run = 0;
		b->fails_unlogged = 0;
		b->last_fail_log = 0;
		return;
	}
	if (b->open) {
		/* reopen at the next deadline: the file may have gone with its mount */
		ha_hb_writer_close(&b->w);
		b->open = false;
	}
	b->fail_run++;
	b->fails_unlogged++;
	if (log_due(&b->last_fail_log, now)) {
		kb_log(b->cfg.log, KB_LOG_WARN,
		       "datastore %s: heartbeat failed (%" PRIu64 " time%s since the last report), "
		       "retrying every %" PRIu32 " ms: %s",
		       b->st.name, b->fails_unlogged, b->fails_unlogged == 1 ? "" : "s",
		       b->cfg.interval_ms, e->msg);
		b->fails_unlogged = 0;
	}
}

static void sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
	    .tv_sec = (time_t)(deadline_ns / KB_NSEC_PER_SEC),
	    .tv_nsec = (long)(deadline_ns % KB_NSEC_PER_SEC),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *beat_main(void *arg)
{
	struct vmk_ds_hb *b = arg;
	const uint64_t interval = (uint64_t)b->cfg.interval_ms * KB_NSEC_PER_MSEC;
	uint64_t next = kb_now_ns();
	struct sched_param sp = {.sched_priority = 10};

	/* A beat that waits for a CPU is a lease that looks stopped: this host's vmx fence
	 * themselves after 600 ms without one. A real-time policy keeps a busy machine from
	 * starving the writer (it sleeps between beats, so it takes next to nothing); where
	 * that is not allowed the thread keeps the default policy. */
	if (pthread_setschedparam(pthread_self(), SCHED_RR, &sp) != 0)
		b->rt_refused = true;

	while (!atomic_load(&b->stop)) {
		struct kb_errmsg e = {{0}};
		int rc = attempt(b, &e);
		uint64_t now = kb_now_ns(), skipped = 0;

		record_result(b, rc, &e);
		next += interval;
		if (next <= now) {
			skipped = (now - next) / interval + 1;
			next += skipped * interval;
			pthread_mutex_lock(&b->lock);
			b->st.late += skipped;
			pthread_mutex_unlock(&b->lock);
			b->late_unlogged += skipped;
			if (log_due(&b->last_late_log, now)) {
				kb_log(b->cfg.log, KB_LOG_WARN,
				       "datastore %s: heartbeat write slower than %" PRIu32
				       " ms: %" PRIu64 " beat%s skipped",
				       b->st.name, b->cfg.interval_ms, b->late_unlogged,
				       b->late_unlogged == 1 ? "" : "s");
				b->late_unlogged = 0;
			}
		}
		if (!atomic_load(&b->stop))
			sleep_until(next);
	}
	if (b->open)
		ha_hb_writer_close(&b->w);
	kb_log(b->cfg.log, KB_LOG_INFO, "datastore %s: heartbeat stopped at counter %" PRIu64,
	       b->st.name, b->high);
	pthread_mutex_lock(&b->lock);
	b->exited = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	put_ref(b);
	return NULL;
}

static int writer_start(struct vmk_ds_hb_set *set, const struct vmk_ds *ds, struct kb_errmsg *err)
{
	struct vmk_ds_hb *b = kb_calloc(1, sizeof(*b));
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (b == NULL) {
		kb_errmsg_setf(err, "datastore %s: heartbeat: out of memory", ds->name);
		return -ENOMEM;
	}
	b->cfg = set->cfg;
	b->w.fd = -1;
	snprintf(b->st.name, sizeof(b->st.name), "%s", ds->name);
	snprintf(b->st.path, sizeof(b->st.path), "%s", ds->path);
	atomic_init(&b->stop, false);
	atomic_init(&b->refs, 2);
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);

	/* The thread takes no signals: they belong to the loop thread's handlers. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&b->thread, NULL, beat_main, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		kb_errmsg_setf(err, "datastore %s: heartbeat thread: %s", ds->name,
			       kb_strerror(rc));
		atomic_store(&b->refs, 1);
		put_ref(b);
		return rc;
	}
	kb_list_add_tail(&set->writers, &b->link);
	return 0;
}

/* Waits for a writer asked to stop, until deadline_ns, and drops the set's reference. */
static void writer_reap(struct vmk_ds_hb *b, uint64_t deadline_ns)
{
	struct timespec ts = {
	    .tv_sec = (time_t)(deadline_ns / KB_NSEC_PER_SEC),
	    .tv_nsec = (long)(deadline_ns % KB_NSEC_PER_SEC),
	};
	bool exited;

	pthread_mutex_lock(&b->lock);
	while (!b->exited && pthread_cond_timedwait(&b->cond, &b->lock, &ts) != ETIMEDOUT)
		;
	exited = b->exited;
	pthread_mutex_unlock(&b->lock);
	if (exited) {
		pthread_join(b->thread, NULL);
	} else {
		kb_log(b->cfg.log, KB_LOG_WARN,
		       "datastore %s: heartbeat writer stuck in I/O for %d ms: left to finish",
		       b->st.name, VMK_DS_HB_STOP_WAIT_MS);
		pthread_detach(b->thread);
	}
	put_ref(b);
}

/* Asks every writer on stopping (a list of unlinked writers) to stop, then reaps them. */
static void writers_stop(struct kb_list *stopping)
{
	uint64_t deadline = kb_now_ns() + VMK_DS_HB_STOP_WAIT_MS * KB_NSEC_PER_MSEC;
	struct kb_list *pos;

	for (pos = stopping->next; pos != stopping; pos = pos->next)
		atomic_store(&kb_list_entry(pos, struct vmk_ds_hb, link)->stop, true);
	while (!kb_list_empty(stopping)) {
		struct vmk_ds_hb *b = kb_list_entry(stopping->next, struct vmk_ds_hb, link);
		kb_list_del(&b->link);
		writer_reap(b, deadline);
	}
}

int vmk_ds_hb_set_init(struct vmk_ds_hb_set *set, const struct vmk_ds_hb_config *cfg)
{
	if (cfg->host_id == 0 || cfg->interval_ms == 0 || cfg->log == NULL)
		return -EINVAL;
	set->cfg = *cfg;
	pthread_mutex_init(&set->lock, NULL);
	kb_list_init(&set->writers);
	return 0;
}

void vmk_ds_hb_set_close(struct vmk_ds_hb_set *set)
{
	struct kb_list stopping;

	kb_list_init(&stopping);
	pthread_mutex_lock(&set->lock);
	while (!kb_list_empty(&set->writers)) {
		struct kb_list *n = set->writers.next;
		kb_list_del(n);
		kb_list_add_tail(&stopping, n);
	}
	pthread_mutex_unlock(&set->lock);
	writers_stop(&stopping);
	pthread_mutex_destroy(&set->lock);
}

static const struct vmk_ds_hb *find(const struct vmk_ds_hb_set *set, const struct vmk_ds *ds)
{
	const struct kb_list *pos;

	for (pos = set->writers.next; pos != &set->writers; pos = pos->next) {
		const struct vmk_ds_hb *b = kb_list_entry(pos, struct vmk_ds_hb, link);
		if (strcmp(b->st.name, ds->name) == 0 && strcmp(b->st.path, ds->path) == 0)
			return b;
	}
	return NULL;
}

/* True when reg holds a shared datastore with b's name and path. */
static bool wanted(const struct vmk_ds_hb *b, const struct vmk_ds_registry *reg)
{
	const struct vmk_ds *ds = vmk_ds_lookup(reg, b->st.name);

	return ds != NULL && ds->shared && strcmp(ds->path, b->st.path) == 0;
}

int vmk_ds_hb_sync(struct vmk_ds_hb_set *set, const struct vmk_ds_registry *reg,
		   struct kb_errmsg *err)
{
	struct kb_list stopping, *pos, *next;
	int rv = 0;

	kb_list_init(&stopping);
	pthread_mutex_lock(&set->lock);
	for (pos = set->writers.next; pos != &set->writers; pos = next) {
		next = pos->next;
		if (!wanted(kb_list_entry(pos, struct vmk_ds_hb, link), reg)) {
			kb_list_del(pos);
			kb_list_add_tail(&stopping, pos);
		}
	}
	pthread_mutex_unlock(&set->lock);
	writers_stop(&stopping);

	for (size_t i = 0; i < vmk_ds_count(reg); i++) {
		const struct vmk_ds *ds = vmk_ds_at(reg, i);
		int rc;

		if (!ds->shared)
			continue;
		pthread_mutex_lock(&set->lock);
		rc = find(set, ds) ? 0 : writer_start(set, ds, err);
		pthread_mutex_unlock(&set->lock);
		if (rc < 0 && rv == 0)
			rv = rc;
	}
	return rv;
}

int vmk_ds_hb_status(struct vmk_ds_hb_set *set, struct vmk_ds_hb_status **out, size_t *n)
{
	struct vmk_ds_hb_status *st = NULL;
	struct kb_list *pos;
	size_t count = 0, i = 0;

	pthread_mutex_lock(&set->lock);
	for (pos = set->writers.next; pos != &set->writers; pos = pos->next)
		count++;
	if (count > 0) {
		st = kb_calloc(count, sizeof(*st));
		if (st == NULL) {
			pthread_mutex_unlock(&set->lock);
			return -ENOMEM;
		}
	}
	for (pos = set->writers.next; pos != &set->writers; pos = pos->next) {
		struct vmk_ds_hb *b = kb_list_entry(pos, struct vmk_ds_hb, link);
		pthread_mutex_lock(&b->lock);
		st[i++] = b->st;
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_unlock(&set->lock);
	*out = st;
	*n = count;
	return 0;
}
