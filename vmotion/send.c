/*
 * The source of a live migration (docs/vmotion.md, "The source"): pre-copy with dirty
 * logging, convergence and vCPU throttling, the switchover, the commit.
 *
 * Threads: the control thread only starts, queries and decides (vmo_source_*); one
 * controller thread opens the streams (in the requested network namespace), computes
 * each round's page set and runs the switchover; one sender thread per stream sends the
 * pages of its own chunks (page / 256 % count == its index) of that set. A round is a
 * generation number under the lock: the controller publishes a bitmap, every sender
 * walks its chunks, and the controller waits for all of them before it touches the
 * bitmap again, so a page's copies on one stream are always in order. Stream 0 carries the
 * state and the control records, written by the controller only while the senders idle.
 *
 * Until the commit nothing here changes the guest for good: on any error or a cancel the
 * destination gets ABORT (when it can still be told), dirty logging and throttling end,
 * and a paused guest resumes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel/vmm/state.h"
#include "lib/buf.h"
#include "lib/crc.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmotion/vmotion.h"
#include "vmotion/wire.h"

#define DEFAULT_DOWNTIME_MS 5
#define DEFAULT_MAX_ROUNDS  30
#define CONNECT_TIMEOUT_MS  5000
#define SEND_TIMEOUT_MS	    5000 /* a stream that takes nothing this long is broken */
#define CANCEL_GRACE_MS	    1000 /* a cancel ends a stuck migration by shutting its streams */
#define READY_TIMEOUT_MS    30000
#define SYNC_TIMEOUT_MS	    30000 /* the destination applies what it was sent */
#define RESUMED_TIMEOUT_MS  2000
#define COMMIT_WAIT_MS	    4000
#define STATE_MAX	    (64u << 20)
#define STATE_CHUNK	    (1u << 20)
#define THROTTLE_FIRST	    20
#define THROTTLE_STEP	    10
#define THROTTLE_MAX	    99
#define BW_GUESS	    (500ull << 20) /* bytes/s until a round has measured it */
#define BW_MIN_SAMPLE	    (4ull << 20)   /* a round this big measures the bandwidth */
/* The share of the downtime target the last pages may take: the rest is for what every
 * switchover does whatever the guest (the disks' flush, the state, READY, the commit, GO and
 * RESUMED), 1-2 ms on this machine. */
#define LAST_PAGES_PCT	    40
#define LAST_INLINE_PAGES   2048	   /* a smaller last round is sent without wake-ups */

struct sender {
	struct vmo_source *s;
	uint32_t index;
	struct vmo_conn *conn;
	pthread_t thread;
	bool running;
	uint64_t pages_total; /* PAGES and ZERO pages sent on this stream */
	uint64_t data_pages, zero_pages;
};

struct vmo_source {
	struct vmm_vm *vm;
	int *disk_fds;
	int nr_disks;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	struct vmm_mig_status st;
	bool used;
	bool cancel;	/* also read without the lock by the senders (atomic) */
	int decision;	/* 0 none, 1 commit, -1 do not commit */
	uint64_t epoch; /* with decision 1 */
	uint32_t gen;	/* round generation the senders work on */
	uint32_t done;	/* senders finished with gen */
	bool quit;	/* senders exit */
	int sender_rv;	/* first sender error */
	char sender_err[KB_ERRMSG_SIZE];
	bool thread_running;

	/* controller thread only (and the senders read the work while a round runs) */
	pthread_t thread;
	struct vmm_mig_out rq;
	char endpoints[VMM_MIG_MAX_ENDPOINTS][64];
	char netns[256];
	struct vmo_params params;
	struct sender snd[VMO_MAX_STREAMS];
	uint32_t count;
	uint64_t pages;	   /* guest RAM in pages */
	uint64_t *work;	   /* the round's pages, one bit per memfd page */
	uint64_t *fetched; /* the next round's pages being fetched */
	bool skip_zero;	   /* the full pass: zero pages are not sent at all */
	bool final;	   /* senders end their work with FINAL */
	uint32_t round;
	uint64_t sync_seq;
	uint64_t t_start, t_pause;
	bool paused_by_us;
};

static void set_phase(struct vmo_source *s, enum vmm_mig_phase p)
{
	pthread_mutex_lock(&s->lock);
	s->st.phase = p;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	vmm_vm_notify(s->vm);
}

static bool cancelled(struct vmo_source *s)
{
	return __atomic_load_n(&s->cancel, __ATOMIC_RELAXED);
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < VMO_PAGE_SIZE / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}

/* ---- senders ---------------------------------------------------------------------------- */

/* Sends the run [first, first + n) as data or as zero. */
static int flush_run(struct sender *sd, uint64_t first, uint32_t n, bool zero,
		     struct kb_errmsg *err)
{
	struct vmm_mem *m = &sd->s->vm->mem;
	int rv;

	if (n == 0)
		return 0;
	if (zero) {
		rv = vmo_send_zero(sd->conn, first, n, err);
		sd->zero_pages += n;
	} else {
		rv = vmo_send_pages(sd->conn, first, n, m->base + first * VMO_PAGE_SIZE, err);
		sd->data_pages += n;
	}
	sd->pages_total += n;
	return rv;
}

/* Sends this stream's pages of the round's bitmap: runs of data pages as PAGES, runs of
 * zero pages as ZERO (or nothing in the full pass). */
static int send_round(struct sender *sd, struct kb_errmsg *err)
{
	struct vmo_source *s = sd->s;
	uint64_t chunks = (s->pages + VMO_PAGES_MAX - 1) / VMO_PAGES_MAX;
	uint64_t before = sd->pages_total;
	int rv = 0;

	for (uint64_t c = sd->index; c < chunks && rv == 0; c += s->count) {
		uint64_t p0 = c * VMO_PAGES_MAX;
		uint64_t end = p0 + VMO_PAGES_MAX < s->pages ? p0 + VMO_PAGES_MAX : s->pages;
		uint64_t run = 0;
		uint32_t n = 0;
		bool run_zero = false;

		if (cancelled(s))
			return KB_ECANCELED;
		/* 256 pages = 4 words of the bitmap */
		if ((s->work[p0 / 64] | s->work[p0 / 64 + 1] | s->work[p0 / 64 + 2] |
		     s->work[p0 / 64 + 3]) == 0)
			continue;
		for (uint64_t pg = p0; pg < end && rv == 0; pg++) {
			bool dirty = (s->work[pg / 64] >> (pg % 64)) & 1;
			bool zero = dirty && page_is_zero(s->vm->mem.base + pg * VMO_PAGE_SIZE);
			bool skip = !dirty || (zero && s->skip_zero);
			if (n > 0 && (skip || zero != run_zero)) {
				rv = flush_run(sd, run, n, run_zero, err);
				n = 0;
			}
			if (skip)
				continue;
			if (n == 0) {
				run = pg;
				run_zero = zero;
			}
			n++;
		}
		if (rv == 0)
			rv = flush_run(sd, run, n, run_zero, err);
	}
	if (rv == 0 && !s->skip_zero)
		rv = vmo_send_round(sd->conn, s->round, sd->pages_total - before, err);
	if (rv == 0 && s->final)
		rv = vmo_send_final(sd->conn, sd->pages_total, err);
	return rv;
}

static void *sender_thread(void *arg)
{
	struct sender *sd = arg;
	struct vmo_source *s = sd->s;
	uint32_t seen = 0;
	char name[16];

	snprintf(name, sizeof(name), "vmo-send%u", sd->index);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->quit && s->gen == seen)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->quit)
			break;
		seen = s->gen;
		pthread_mutex_unlock(&s->lock);
		struct kb_errmsg err = {{0}};
		int rv = send_round(sd, &err);
		pthread_mutex_lock(&s->lock);
		if (rv < 0 && s->sender_rv == 0) {
			s->sender_rv = rv;
			const char *m = err.msg[0] ? err.msg : kb_strerror(rv);
			if (strncmp(m, "stream ", 7) == 0)
				snprintf(s->sender_err, sizeof(s->sender_err), "%s", m);
			else
				snprintf(s->sender_err, sizeof(s->sender_err), "stream %u: %s",
					 sd->index, m);
		}
		s->done++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Runs one round over s->work on every stream; returns the first sender's error. */
static int run_round(struct vmo_source *s, struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&s->lock);
	s->done = 0;
	s->gen++;
	pthread_cond_broadcast(&s->cond);
	while (s->done < s->count)
		pthread_cond_wait(&s->cond, &s->lock);
	rv = s->sender_rv;
	if (rv < 0)
		kb_errmsg_setf(err, "%s", s->sender_err);
	pthread_mutex_unlock(&s->lock);
	return rv;
}

static uint64_t bytes_sent(struct vmo_source *s)
{
	uint64_t b = 0;

	for (uint32_t i = 0; i < s->count; i++)
		b += vmo_conn_bytes_sent(s->snd[i].conn);
	return b;
}

static void update_counters(struct vmo_source *s)
{
	uint64_t data = 0, zero = 0, bytes = bytes_sent(s);

	for (uint32_t i = 0; i < s->count; i++) {
		data += s->snd[i].data_pages;
		zero += s->snd[i].zero_pages;
	}
	pthread_mutex_lock(&s->lock);
	s->st.pages_sent = data;
	s->st.zero_pages = zero;
	s->st.bytes_sent = bytes;
	s->st.round = s->round;
	pthread_mutex_unlock(&s->lock);
}

/* ---- streams ---------------------------------------------------------------------------- */

static void set_timeout(int fd, int opt, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	(void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static int open_stream(struct vmo_source *s, uint32_t index, struct kb_errmsg *err)
{
	const char *ep = s->endpoints[index / (s->count / (uint32_t)s->rq.nr_endpoints)];
	int fd, rv;

	rv = vmo_dial(ep, CONNECT_TIMEOUT_MS, SEND_TIMEOUT_MS, &fd, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "connecting stream %u", index);
		return rv;
	}
	rv = vmo_client_hello(fd, &s->params, index, &s->snd[index].conn, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "stream %u to %s", index, ep);
		close(fd);
	}
	return rv;
}

/* ---- the controller --------------------------------------------------------------------- */

static uint64_t popcount_bits(const uint64_t *b, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(b[i]);
	return n;
}

/* The full pass's set: every page of guest RAM that was ever taken (vmm_mem_next_data). */
static void data_extents(struct vmo_source *s)
{
	struct vmm_mem *m = &s->vm->mem;
	uint64_t off = 0, data, hole;

	memset(s->work, 0, m->dirty_words * sizeof(uint64_t));
	while (off < m->size) {
		if (vmm_mem_next_data(m, off, &data, &hole) < 0) {
			data = off; /* cannot tell: every page from here on */
			hole = m->size;
		}
		if (data >= m->size)
			break;
		uint64_t end = (hole + VMO_PAGE_SIZE - 1) / VMO_PAGE_SIZE;
		for (uint64_t pg = data / VMO_PAGE_SIZE; pg < end && pg < s->pages; pg++)
			s->work[pg / 64] |= 1ull << (pg % 64);
		off = hole;
	}
}

static int send_state(struct vmo_source *s, struct kb_errmsg *err)
{
	struct vmo_conn *c = s->snd[0].conn;
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, STATE_MAX);
	rv = vmm_state_save_buf(s->vm, &b, VMM_STATE_NO_MEMORY, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "saving the VM state");
		goto out;
	}
	for (size_t off = 0; off < b.len && rv == 0; off += STATE_CHUNK) {
		size_t n = b.len - off < STATE_CHUNK ? b.len - off : STATE_CHUNK;
		struct iovec iov = {.iov_base = b.data + off, .iov_len = n};
		rv = vmo_send(c, VMO_STATE, &iov, 1, err);
	}
	if (rv == 0)
		rv = vmo_send_state_end(c, b.len, kb_crc32c(0, b.data, b.len), err);
out:
	kb_buf_close(&b);
	return rv;
}

/* Reads stream 0 until a record of type want; ABORT or anything else is an error. */
static int expect_on(struct vmo_source *s, uint32_t i, enum vmo_type want, unsigned timeout_ms,
		     struct vmo_rec *rec, struct kb_errmsg *err)
{
	int rv;

	set_timeout(vmo_conn_fd(s->snd[i].conn), SO_RCVTIMEO, timeout_ms);
	rv = vmo_recv(s->snd[i].conn, rec, err);
	if (rv == -EAGAIN || rv == -EWOULDBLOCK) {
		kb_errmsg_setf(err, "no answer from the destination in %u ms", timeout_ms);
		return KB_ETIMEOUT;
	}
	if (rv < 0)
		return rv;
	if (rec->type == VMO_ABORT) {
		kb_errmsg_setf(err, "the destination aborted: %s (%s)", rec->u.abort.text,
			       kb_strerror(rec->u.abort.code));
		return rec->u.abort.code < 0 ? rec->u.abort.code : KB_ECANCELED;
	}
	if (rec->type != want) {
		kb_errmsg_setf(err, "the destination sent record type %d, expected %d", rec->type,
			       want);
		return KB_EPROTO;
	}
	return 0;
}

static int expect(struct vmo_source *s, enum vmo_type want, unsigned timeout_ms,
		  struct kb_errmsg *err)
{
	struct vmo_rec rec;

	return expect_on(s, 0, want, timeout_ms, &rec, err);
}

/* Waits until the destination has applied everything sent so far on every stream: a SYNC
 * down each stream, its SYNCED back. What sits in socket buffers is not yet moved, so the
 * dirty set and the bandwidth are measured after this, and the switchover never waits
 * for a backlog to drain. */
static int sync_streams(struct vmo_source *s, struct kb_errmsg *err)
{
	struct vmo_rec rec;
	uint64_t seq = ++s->sync_seq;
	int rv = 0;

	for (uint32_t i = 0; i < s->count && rv == 0; i++)
		rv = vmo_send_sync(s->snd[i].conn, VMO_SYNC, seq, err);
	for (uint32_t i = 0; i < s->count && rv == 0; i++) {
		rv = expect_on(s, i, VMO_SYNCED, SYNC_TIMEOUT_MS, &rec, err);
		if (rv == 0 && rec.u.sync_seq != seq) {
			kb_errmsg_setf(err, "stream %u: SYNCED %llu, expected %llu", i,
				       (unsigned long long)rec.u.sync_seq, (unsigned long long)seq);
			rv = KB_EPROTO;
		}
	}
	if (rv < 0)
		kb_errmsg_wrapf(err, "waiting for the destination to apply round %u", s->round);
	return rv;
}

/* Pre-copy: the full pass, then rounds until the rest fits the downtime target. */
static int precopy(struct vmo_source *s, struct kb_errmsg *err)
{
	uint64_t words = s->vm->mem.dirty_words;
	uint64_t bw = 0, last_fetch, t0, b0;
	uint32_t downtime_ms = s->rq.downtime_ms, max_rounds = s->rq.max_rounds;
	int slow = 0, pct = 0, rv;

	data_extents(s);
	s->skip_zero = true;
	last_fetch = t0 = kb_now_ns();
	b0 = bytes_sent(s);
	rv = run_round(s, err);
	rv = rv ?: sync_streams(s, err);
	s->skip_zero = false;
	for (;;) {
		uint64_t now = kb_now_ns(), b1 = bytes_sent(s);
		update_counters(s);
		if (rv < 0)
			return rv;
		if (cancelled(s)) {
			kb_errmsg_setf(err, "cancelled");
			return KB_ECANCELED;
		}
		if (b1 - b0 >= BW_MIN_SAMPLE && now > t0)
			bw = (b1 - b0) * KB_NSEC_PER_SEC / (now - t0);
		uint64_t use_bw = bw ? bw : BW_GUESS;

		memset(s->work, 0, words * sizeof(uint64_t));
		rv = vmm_mem_fetch_dirty(s->vm, s->work, err);
		if (rv < 0)
			return rv;
		uint64_t fetch_at = kb_now_ns();
		uint64_t dirty = popcount_bits(s->work, words) * VMO_PAGE_SIZE;
		uint64_t rate =
		    fetch_at > last_fetch ? dirty * KB_NSEC_PER_SEC / (fetch_at - last_fetch) : 0;
		last_fetch = fetch_at;
		uint64_t est_us = dirty * 1000000ull / use_bw;
		pthread_mutex_lock(&s->lock);
		s->st.bandwidth = use_bw;
		s->st.dirty_rate = rate;
		s->st.est_downtime_us = est_us;
		pthread_mutex_unlock(&s->lock);
		kb_log(s->vm->log, KB_LOG_DEBUG,
		       "migration round %u: %llu KiB dirty at %llu MiB/s, link %llu MiB/s, "
		       "estimated downtime %llu us",
		       s->round, (unsigned long long)(dirty >> 10),
		       (unsigned long long)(rate >> 20), (unsigned long long)(use_bw >> 20),
		       (unsigned long long)est_us);
		if (est_us <= (uint64_t)downtime_ms * 10 * LAST_PAGES_PCT)
			return 0;
		if (s->round >= max_rounds) {
			kb_log(s->vm->log, KB_LOG_INFO,
			       "migration: %u rounds without converging; switching over", s->round);
			return 0;
		}
		/* Throttle when the guest out-dirties the link two rounds running. */
		slow = rate > use_bw ? slow + 1 : 0;
		if (slow >= 2 && pct < THROTTLE_MAX) {
			pct = pct == 0 ? THROTTLE_FIRST : pct + THROTTLE_STEP;
			if (pct > THROTTLE_MAX)
				pct = THROTTLE_MAX;
			if (vmm_vm_set_throttle(s->vm, pct) == 0) {
				pthread_mutex_lock(&s->lock);
				s->st.throttle_pct = (uint32_t)pct;
				pthread_mutex_unlock(&s->lock);
				kb_log(s->vm->log, KB_LOG_INFO, "migration: throttling vCPUs %d%%",
				       pct);
			}
		}
		s->round++;
		t0 = kb_now_ns();
		b0 = bytes_sent(s);
		rv = run_round(s, err);
		rv = rv ?: sync_streams(s, err);
	}
}

/* Flushes the disks (on its own thread during the switchover's last round). */
struct flusher {
	struct vmo_source *s;
	pthread_t thread;
	int rv;
	char msg[200];
};

static void *flush_thread(void *arg)
{
	struct flusher *f = arg;

	for (int i = 0; i < f->s->nr_disks && f->rv == 0; i++) {
		if (fdatasync(f->s->disk_fds[i]) < 0) {
			f->rv = -errno;
			snprintf(f->msg, sizeof(f->msg), "flushing disk %d: %s", i,
				 kb_strerror(f->rv));
		}
	}
	return NULL;
}

/* The last round on the controller's own thread when it is small (no wake-ups): the
 * senders idle, so their streams are free. */
static int last_round_inline(struct vmo_source *s, struct kb_errmsg *err)
{
	int rv = 0;

	for (uint32_t i = 0; i < s->count && rv == 0; i++)
		rv = send_round(&s->snd[i], err);
	return rv;
}

/* Switchover up to READY: pause, flush the disks, last pages, FINAL, the state. */
static int switchover(struct vmo_source *s, struct kb_errmsg *err)
{
	struct flusher fl = {.s = s};
	bool flushing = false;
	int rv;

	/* most of the disks' dirty data goes out while the guest still runs */
	for (int i = 0; i < s->nr_disks; i++)
		(void)fdatasync(s->disk_fds[i]);
	set_phase(s, VMM_MIG_SWITCHOVER);
	s->t_pause = kb_now_ns();
	rv = vmm_vm_pause(s->vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "pausing the VM: %s", kb_strerror(rv));
		return rv;
	}
	s->paused_by_us = true;
	uint64_t t1 = kb_now_ns();
	vmm_vm_set_throttle(s->vm, 0);
	if (s->nr_disks > 0) {
		rv = -pthread_create(&fl.thread, NULL, flush_thread, &fl);
		if (rv < 0) {
			fl.thread = pthread_self();
			flush_thread(&fl);
			rv = fl.rv;
		} else {
			flushing = true;
		}
	}
	rv = rv ?: vmm_mem_fetch_dirty(s->vm, s->work, err);
	uint64_t last = popcount_bits(s->work, s->vm->mem.dirty_words);
	s->round++;
	s->final = true;
	uint64_t t2 = kb_now_ns();
	if (rv == 0)
		rv = last < LAST_INLINE_PAGES ? last_round_inline(s, err) : run_round(s, err);
	update_counters(s);
	uint64_t t3 = kb_now_ns();
	if (flushing) {
		pthread_join(fl.thread, NULL);
		if (rv == 0 && fl.rv < 0) {
			rv = fl.rv;
			kb_errmsg_setf(err, "%s", fl.msg);
		}
	}
	uint64_t t4 = kb_now_ns();
	rv = rv ?: send_state(s, err);
	if (rv < 0)
		return rv;
	uint64_t t5 = kb_now_ns();
	kb_log(s->vm->log, KB_LOG_DEBUG,
	       "migration switchover: pause %llu us, last %llu pages %llu us, disks %llu us "
	       "more, state %llu us",
	       (unsigned long long)((t1 - s->t_pause) / 1000), (unsigned long long)last,
	       (unsigned long long)((t3 - t2) / 1000), (unsigned long long)((t4 - t3) / 1000),
	       (unsigned long long)((t5 - t4) / 1000));
	if (cancelled(s)) {
		kb_errmsg_setf(err, "cancelled");
		return KB_ECANCELED;
	}
	rv = expect(s, VMO_READY, READY_TIMEOUT_MS, err);
	if (rv < 0)
		kb_errmsg_wrapf(err, "waiting for READY");
	return rv;
}

/* Ends the migration without the commit: the guest runs here as before. */
static void give_up(struct vmo_source *s, int code, const char *why)
{
	struct kb_errmsg e2 = {{0}};

	/* The guest first: telling the destination may wait on a stalled stream (up to the
	 * send timeout), and it resumes nothing without GO anyway. */
	vmm_vm_set_throttle(s->vm, 0);
	if (vmm_mem_log_dirty(s->vm, false, &e2) < 0)
		kb_log(s->vm->log, KB_LOG_WARN, "%s", e2.msg);
	if (s->paused_by_us) {
		vmm_vm_resume(s->vm);
		s->paused_by_us = false;
	}
	if (s->count > 0 && s->snd[0].conn != NULL)
		(void)vmo_send_abort(s->snd[0].conn, code < 0 ? code : KB_ECANCELED, why, &e2);
}

static void *controller(void *arg)
{
	struct vmo_source *s = arg;
	struct kb_errmsg err = {{0}};
	enum vmm_mig_phase end = VMM_MIG_FAILED;
	int rv = 0;

	pthread_setname_np(pthread_self(), "vmo-source");
	if (s->netns[0] != '\0')
		rv = vmo_enter_netns(s->netns, &err);
	for (uint32_t i = 0; rv == 0 && i < s->count; i++)
		rv = open_stream(s, i, &err);
	rv = rv ?: vmm_mem_log_dirty(s->vm, true, &err);
	for (uint32_t i = 0; rv == 0 && i < s->count; i++) {
		s->snd[i].s = s;
		s->snd[i].index = i;
		rv = -pthread_create(&s->snd[i].thread, NULL, sender_thread, &s->snd[i]);
		if (rv == 0)
			s->snd[i].running = true;
		else
			kb_errmsg_setf(&err, "starting a sender thread: %s", kb_strerror(rv));
	}
	if (rv == 0) {
		set_phase(s, VMM_MIG_PRECOPY);
		kb_log(s->vm->log, KB_LOG_INFO, "migration: %u stream(s) open, pre-copy", s->count);
		rv = precopy(s, &err);
	}
	rv = rv ?: switchover(s, &err);
	if (rv == 0) {
		update_counters(s);
		set_phase(s, VMM_MIG_READY);
		kb_log(s->vm->log, KB_LOG_INFO,
		       "migration: destination ready after %llu ms (%u rounds, %llu MiB sent); "
		       "waiting for the commit",
		       (unsigned long long)((kb_now_ns() - s->t_start) / KB_NSEC_PER_MSEC),
		       s->round, (unsigned long long)(s->st.bytes_sent >> 20));
		pthread_mutex_lock(&s->lock);
		while (s->decision == 0 && !s->cancel)
			pthread_cond_wait(&s->cond, &s->lock);
		int decision = s->cancel ? -1 : s->decision;
		uint64_t epoch = s->epoch;
		pthread_mutex_unlock(&s->lock);
		if (decision > 0) {
			/* Committed: this guest never runs again, whatever happens next (and a
			 * fence seeing the destination's lock finds it stopped already). */
			vmm_vm_stop(s->vm, VMM_STOP_MIGRATED, "migrated");
			rv = vmo_send_go(s->snd[0].conn, epoch, &err);
			rv = rv ?: expect(s, VMO_RESUMED, RESUMED_TIMEOUT_MS, &err);
			uint64_t down = kb_now_ns() - s->t_pause;
			pthread_mutex_lock(&s->lock);
			if (rv == 0)
				s->st.downtime_us = down / 1000;
			s->st.total_us = (kb_now_ns() - s->t_start) / 1000;
			pthread_mutex_unlock(&s->lock);
			if (rv == 0)
				kb_log(
				    s->vm->log, KB_LOG_INFO,
				    "migration committed at epoch %llu: downtime %llu.%03llu ms, "
				    "total %llu ms",
				    (unsigned long long)epoch,
				    (unsigned long long)(down / KB_NSEC_PER_MSEC),
				    (unsigned long long)(down / 1000 % 1000),
				    (unsigned long long)((kb_now_ns() - s->t_start) /
							 KB_NSEC_PER_MSEC));
			else
				kb_log(s->vm->log, KB_LOG_WARN,
				       "migration committed at epoch %llu; no RESUMED from the "
				       "destination: %s",
				       (unsigned long long)epoch, err.msg);
			set_phase(s, VMM_MIG_COMMITTED);
			goto out;
		}
		rv = KB_ECANCELED;
		kb_errmsg_setf(&err, "%s", s->cancel ? "cancelled" : "not committed");
		end = VMM_MIG_ABORTED;
	} else if (rv == KB_ECANCELED || cancelled(s)) {
		end = VMM_MIG_ABORTED;
		rv = KB_ECANCELED;
		kb_errmsg_setf(&err, "cancelled");
	}
	give_up(s, rv, err.msg);
	pthread_mutex_lock(&s->lock);
	s->st.code = rv;
	snprintf(s->st.error, sizeof(s->st.error), "%s", err.msg);
	s->st.total_us = (kb_now_ns() - s->t_start) / 1000;
	pthread_mutex_unlock(&s->lock);
	kb_log(s->vm->log, end == VMM_MIG_ABORTED ? KB_LOG_INFO : KB_LOG_ERROR,
	       "migration %s: %s; the guest keeps running here",
	       end == VMM_MIG_ABORTED ? "aborted" : "failed", err.msg);
	set_phase(s, end);
out:
	/* The senders are idle between rounds: end them, close the streams. */
	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (uint32_t i = 0; i < s->count; i++) {
		struct vmo_conn *c;

		if (s->snd[i].running)
			pthread_join(s->snd[i].thread, NULL);
		s->snd[i].running = false;
		/* taken out under the lock: vmo_source_cancel may be shutting it down */
		pthread_mutex_lock(&s->lock);
		c = s->snd[i].conn;
		s->snd[i].conn = NULL;
		pthread_mutex_unlock(&s->lock);
		vmo_conn_free(c);
	}
	vmm_vm_notify(s->vm);
	return NULL;
}

/* ---- the control thread's calls --------------------------------------------------------- */

int vmo_source_create(struct vmm_vm *vm, const char *const *disks, int nr_disks,
		      struct vmo_source **out, struct kb_errmsg *err)
{
	struct vmo_source *s = kb_calloc(1, sizeof(*s));
	int rv;

	if (s == NULL)
		return -ENOMEM;
	s->vm = vm;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->pages = vm->mem.size / VMO_PAGE_SIZE;
	s->disk_fds = kb_calloc(nr_disks > 0 ? (size_t)nr_disks : 1, sizeof(int));
	s->work = kb_calloc(vm->mem.dirty_words + 4, sizeof(uint64_t));
	if (s->disk_fds == NULL || s->work == NULL) {
		vmo_source_destroy(s);
		return -ENOMEM;
	}
	for (int i = 0; i < nr_disks; i++) {
		s->disk_fds[i] = open(disks[i], O_RDONLY | O_CLOEXEC);
		if (s->disk_fds[i] < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "opening disk %s: %s", disks[i], kb_strerror(rv));
			vmo_source_destroy(s);
			return rv;
		}
		s->nr_disks++;
	}
	*out = s;
	return 0;
}

void vmo_source_destroy(struct vmo_source *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	bool running = s->thread_running;
	pthread_mutex_unlock(&s->lock);
	if (running) {
		struct kb_errmsg e = {{0}};
		(void)vmo_source_cancel(s, &e);
		pthread_join(s->thread, NULL);
	}
	for (int i = 0; i < s->nr_disks; i++)
		close(s->disk_fds[i]);
	kb_free(s->disk_fds);
	kb_free(s->work);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	kb_free(s);
}

static bool ended(enum vmm_mig_phase p)
{
	return p == VMM_MIG_NONE || p == VMM_MIG_ABORTED || p == VMM_MIG_FAILED;
}

int vmo_source_out(struct vmo_source *s, const struct vmm_mig_out *rq, struct kb_errmsg *err)
{
	uint32_t spe = rq->streams_per_endpoint ? rq->streams_per_endpoint : 1;

	if (rq->nr_endpoints < 1 || rq->nr_endpoints > VMM_MIG_MAX_ENDPOINTS ||
	    spe > VMO_MAX_STREAMS || (uint32_t)rq->nr_endpoints * spe > VMO_MAX_STREAMS) {
		kb_errmsg_setf(err, "a migration uses 1..%d streams in all", VMO_MAX_STREAMS);
		return KB_ECONFIG;
	}
	for (int i = 0; i < rq->nr_endpoints; i++) {
		if (strlen(rq->endpoints[i]) >= sizeof(s->endpoints[0])) {
			kb_errmsg_setf(err, "endpoint '%s' is too long", rq->endpoints[i]);
			return KB_ECONFIG;
		}
		int rv = vmo_endpoint_check(rq->endpoints[i], err);
		if (rv < 0)
			return rv;
	}
	if (rq->netns != NULL && strlen(rq->netns) >= sizeof(s->netns)) {
		kb_errmsg_setf(err, "network namespace path too long");
		return KB_ECONFIG;
	}
	if (rq->downtime_ms > 60000 || rq->max_rounds > 1000) {
		kb_errmsg_setf(err,
			       "downtime (at most 60000 ms) or rounds (at most 1000) too large");
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&s->vm->lock);
	bool running = s->vm->state == VMM_STATE_RUNNING;
	pthread_mutex_unlock(&s->vm->lock);
	if (!running) {
		kb_errmsg_setf(err, "only a running VM can migrate");
		return KB_ESTATE;
	}
	pthread_mutex_lock(&s->lock);
	if (!ended(s->st.phase)) {
		pthread_mutex_unlock(&s->lock);
		kb_errmsg_setf(err, "a migration is under way (phase %s)",
			       vmm_mig_phase_name(s->st.phase));
		return KB_ESTATE;
	}
	bool joined = !s->thread_running;
	pthread_mutex_unlock(&s->lock);
	if (!joined) {
		pthread_join(s->thread, NULL);
		s->thread_running = false;
	}
	/* a fresh migration */
	s->rq = *rq;
	s->rq.streams_per_endpoint = spe;
	if (s->rq.downtime_ms == 0)
		s->rq.downtime_ms = DEFAULT_DOWNTIME_MS;
	if (s->rq.max_rounds == 0)
		s->rq.max_rounds = DEFAULT_MAX_ROUNDS;
	for (int i = 0; i < rq->nr_endpoints; i++) {
		snprintf(s->endpoints[i], sizeof(s->endpoints[i]), "%s", rq->endpoints[i]);
		s->rq.endpoints[i] = s->endpoints[i];
	}
	snprintf(s->netns, sizeof(s->netns), "%s", rq->netns ? rq->netns : "");
	s->rq.netns = NULL;
	s->count = (uint32_t)rq->nr_endpoints * spe;
	memset(&s->params, 0, sizeof(s->params));
	memcpy(s->params.key, rq->key, VMO_KEY_SIZE);
	memcpy(s->params.id, rq->id, VMO_ID_SIZE);
	s->params.count = s->count;
	s->params.encrypt = rq->encrypt;
	s->params.guest_pages = s->pages;
	memset(s->snd, 0, sizeof(s->snd));
	memset(&s->st, 0, sizeof(s->st));
	s->st.phase = VMM_MIG_CONNECTING;
	s->st.streams = s->count;
	s->cancel = false;
	s->decision = 0;
	s->gen = s->done = 0;
	s->quit = false;
	s->sender_rv = 0;
	s->skip_zero = s->final = false;
	s->round = 0;
	s->paused_by_us = false;
	s->used = true;
	s->t_start = kb_now_ns();
	int rv = -pthread_create(&s->thread, NULL, controller, s);
	if (rv < 0) {
		s->st.phase = VMM_MIG_FAILED;
		kb_errmsg_setf(err, "starting the migration thread: %s", kb_strerror(rv));
		return rv;
	}
	s->thread_running = true;
	kb_log(s->vm->log, KB_LOG_INFO,
	       "migration out to %s%s: %u stream(s), %s, downtime target %u ms", s->endpoints[0],
	       rq->nr_endpoints > 1 ? " and more" : "", s->count,
	       rq->encrypt ? "encrypted" : "not encrypted", s->rq.downtime_ms);
	return 0;
}

void vmo_source_status(struct vmo_source *s, struct vmm_mig_status *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	if (!ended(st->phase) && st->phase != VMM_MIG_COMMITTED)
		st->total_us = (kb_now_ns() - s->t_start) / 1000;
	pthread_mutex_unlock(&s->lock);
}

int vmo_source_commit(struct vmo_source *s, bool commit, uint64_t epoch, struct kb_errmsg *err)
{
	uint64_t deadline = kb_now_ns() + COMMIT_WAIT_MS * KB_NSEC_PER_MSEC;
	int rv = 0;

	pthread_mutex_lock(&s->lock);
	if (s->st.phase != VMM_MIG_READY || s->decision != 0) {
		kb_errmsg_setf(err, "no migration is waiting for the commit (phase %s)",
			       vmm_mig_phase_name(s->st.phase));
		pthread_mutex_unlock(&s->lock);
		return KB_ESTATE;
	}
	s->decision = commit ? 1 : -1;
	s->epoch = epoch;
	pthread_cond_broadcast(&s->cond);
	while (s->st.phase == VMM_MIG_READY && kb_now_ns() < deadline) {
		pthread_mutex_unlock(&s->lock);
		kb_sleep_ns(KB_NSEC_PER_MSEC);
		pthread_mutex_lock(&s->lock);
	}
	if (commit && s->st.phase != VMM_MIG_COMMITTED) {
		kb_errmsg_setf(err, "the commit did not complete (phase %s)",
			       vmm_mig_phase_name(s->st.phase));
		rv = KB_ESTATE;
	}
	pthread_mutex_unlock(&s->lock);
	return rv;
}

int vmo_source_cancel(struct vmo_source *s, struct kb_errmsg *err)
{
	pthread_mutex_lock(&s->lock);
	enum vmm_mig_phase p = s->st.phase;
	if (ended(p) || p == VMM_MIG_COMMITTED || s->decision > 0) {
		pthread_mutex_unlock(&s->lock);
		kb_errmsg_setf(err, "no migration to cancel (phase %s)", vmm_mig_phase_name(p));
		return KB_ESTATE;
	}
	__atomic_store_n(&s->cancel, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&s->cond);
	/* The migration thread sees the flag between records and ends the migration, telling
	 * the destination (ABORT). A sender blocked on a stalled stream (a cut network) or a
	 * controller waiting for READY does not: after CANCEL_GRACE_MS the streams are shut
	 * down, which unblocks them. */
	{
		struct timespec ts;
		int w = 0;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(CANCEL_GRACE_MS % 1000) * 1000000L;
		ts.tv_sec += CANCEL_GRACE_MS / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!ended(s->st.phase) && s->st.phase != VMM_MIG_COMMITTED && w == 0)
			w = pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	if (!ended(s->st.phase) && s->st.phase != VMM_MIG_COMMITTED)
		for (uint32_t i = 0; i < s->count; i++)
			if (s->snd[i].conn != NULL)
				vmo_conn_shutdown(s->snd[i].conn);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

bool vmo_source_used(struct vmo_source *s)
{
	pthread_mutex_lock(&s->lock);
	bool used = s->used;
	pthread_mutex_unlock(&s->lock);
	return used;
}
