/*
 * The FT primary (docs/ft.md, "The primary"): protects the running VM with checkpoints.
 *
 * One controller thread per FT session:
 *   1. connect the one stream to the secondary (FT hello, in the given netns);
 *   2. sync while the guest runs: dirty logging on, the disk-write log on (the output hook,
 *      which passes frames through for now), every data page of guest memory, every
 *      non-zero 1 MiB of every disk, then rounds of dirtied pages and the logged writes
 *      until a round is small; SYNC/SYNCED after each;
 *   3. epochs: every epoch_ms the vCPUs pause; the dirtied pages are copied into a staging
 *      buffer, the VM state without memory is saved, the epoch's disk writes and held frames
 *      are taken, and the vCPUs resume (that pause is all the guest notices); then CKPT,
 *      PAGES, DISK, STATE and CKPT_END go out and the secondary's ACK releases the epoch's
 *      frames to their taps, in order. From the first checkpoint on every transmitted frame
 *      is held until its epoch is acknowledged.
 *   4. A stream that breaks, an ACK that does not come within ACK_TIMEOUT_MS or an ABORT
 *      from the secondary: phase "lost". Checkpoints stop, frames stay held (at most
 *      HOLD_MAX bytes; more are dropped and counted) and the guest runs on; only
 *      ft_primary_stop (the cluster decided this side keeps the VM) releases them.
 *
 * The output hook runs on vCPU threads under the device's lock; it only copies into
 * buffers under out_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ft/ft.h"
#include "kernel/vmm/state.h"
#include "lib/buf.h"
#include "lib/crc.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmotion/wire.h"

#define CONNECT_TIMEOUT_MS 5000
#define SEND_TIMEOUT_MS	   5000
#define ACK_TIMEOUT_MS	   3000 /* an epoch not acknowledged this long: lost */
#define SYNC_TIMEOUT_MS	   30000
#define SYNC_ROUNDS_MAX	   20
#define SYNC_SMALL_PAGES   2048		    /* a dirty round this small ends the sync */
#define HOLD_MAX	   (32u << 20)	    /* bytes of frames held at most */
#define OUTPUT_EPOCH_NS	   (2ull * 1000000) /* the shortest epoch when output waits */
#define DLOG_MAX	   (256u << 20)	    /* bytes of disk writes logged at most */
#define DISK_CHUNK	   (1u << 20)
#define STATE_CHUNK	   (1u << 20)
#define PAGE		   VMO_PAGE_SIZE

/* A growable byte log: held frames ([u32 fd][u32 len][bytes]) or disk writes ([u32 disk]
 * [u32 len][u64 offset][bytes]). */
struct blog {
	uint8_t *p;
	size_t len, cap;
};

struct ft_primary {
	struct vmm_vm *vm;
	int nr_disks;
	int disk_fds[VMO_DISK_MAX];
	uint64_t disk_size[VMO_DISK_MAX];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	struct vmm_ft_status st;
	bool active;	     /* a session's thread runs or ended without ft_primary_stop */
	bool stop_req;	     /* the thread ends its session */
	bool vanish;	     /* the vmx ends: no ABORT, held output dropped (the cluster decides) */
	bool output_waiting; /* a frame is held: end the epoch early */
	bool thread_running;

	/* output: under out_lock (vCPU threads in the hooks) */
	pthread_mutex_t out_lock;
	bool hold;	     /* frames are held, not written */
	bool log_disks;	     /* disk writes are logged */
	bool dlog_overflow;  /* the disk log hit DLOG_MAX */
	struct blog frames;  /* frames of the running epoch */
	struct blog dlog;    /* disk writes since the last take */
	uint64_t held_bytes; /* in frames and acked-pending */
	uint64_t dropped;
	struct vmm_out_hook hook;

	/* controller thread only */
	pthread_t thread;
	struct vmm_ft_start rq;
	char endpoint[64];
	char netns[256];
	struct vmo_params params;
	struct vmo_conn *conn;
	uint64_t pages;
	uint64_t *work;
	struct blog staged;	 /* the checkpoint's page data */
	struct blog ckpt_frames; /* frames of the epoch being acknowledged */
	struct blog ckpt_dlog;	 /* disk writes of the epoch being sent */
	struct kb_buf state;
	uint64_t ckpt;
};

/* ---- logs ------------------------------------------------------------------------------- */

static int blog_reserve(struct blog *b, size_t more, size_t max)
{
	if (b->len + more <= b->cap)
		return 0;
	if (b->len + more > max)
		return -ENOSPC;
	size_t cap = b->cap ? b->cap : 64 << 10;
	while (cap < b->len + more)
		cap *= 2;
	if (cap > max)
		cap = max;
	uint8_t *p = kb_realloc(b->p, cap);
	if (p == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void blog_free(struct blog *b)
{
	kb_free(b->p);
	*b = (struct blog){0};
}

static void blog_swap(struct blog *a, struct blog *b)
{
	struct blog t = *a;

	*a = *b;
	*b = t;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* ---- the output hook (vCPU threads) --------------------------------------------------- */

static size_t iov_len(const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

static void iov_copy(uint8_t *dst, const struct iovec *iov, int cnt)
{
	for (int i = 0; i < cnt; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

static bool hook_net_tx(void *arg, int fd, const struct iovec *iov, int cnt)
{
	struct ft_primary *p = arg;
	size_t n = iov_len(iov, cnt);
	bool taken = false;

	pthread_mutex_lock(&p->out_lock);
	if (p->hold) {
		taken = true; /* held or dropped: either way not written now */
		if (p->held_bytes + n + 8 > HOLD_MAX ||
		    blog_reserve(&p->frames, n + 8, HOLD_MAX) < 0) {
			p->dropped++;
		} else {
			uint8_t *q = p->frames.p + p->frames.len;
			put32(q, (uint32_t)fd);
			put32(q + 4, (uint32_t)n);
			iov_copy(q + 8, iov, cnt);
			p->frames.len += n + 8;
			p->held_bytes += n + 8;
		}
	}
	bool wake = taken && p->frames.len == n + 8; /* the epoch's first frame */
	pthread_mutex_unlock(&p->out_lock);
	if (wake) {
		/* lock order: out_lock is never taken under lock */
		pthread_mutex_lock(&p->lock);
		p->output_waiting = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return taken;
}

static void hook_blk_write(void *arg, uint32_t disk, uint64_t off, const struct iovec *iov, int cnt)
{
	struct ft_primary *p = arg;
	size_t n = iov_len(iov, cnt);

	pthread_mutex_lock(&p->out_lock);
	if (p->log_disks && !p->dlog_overflow) {
		if (blog_reserve(&p->dlog, n + 16, DLOG_MAX) < 0) {
			p->dlog_overflow = true;
		} else {
			uint8_t *q = p->dlog.p + p->dlog.len;
			put32(q, disk);
			put32(q + 4, (uint32_t)n);
			memcpy(q + 8, &off, 8);
			iov_copy(q + 16, iov, cnt);
			p->dlog.len += n + 16;
		}
	}
	pthread_mutex_unlock(&p->out_lock);
}

/* Writes held frames out in order (the secondary acknowledged their epoch, or FT ended
 * with this side keeping the VM). */
static void release(struct ft_primary *p, struct blog *b)
{
	size_t off = 0;

	while (off + 8 <= b->len) {
		int fd = (int)get32(b->p + off);
		uint32_t n = get32(b->p + off + 4);
		ssize_t rv;

		do {
			rv = write(fd, b->p + off + 8, n);
		} while (rv < 0 && errno == EINTR);
		off += 8 + n;
	}
	pthread_mutex_lock(&p->out_lock);
	p->held_bytes -= b->len <= p->held_bytes ? b->len : p->held_bytes;
	pthread_mutex_unlock(&p->out_lock);
	b->len = 0;
}

/* ---- status ----------------------------------------------------------------------------- */

static void set_phase(struct ft_primary *p, enum vmm_ft_phase ph)
{
	pthread_mutex_lock(&p->lock);
	p->st.phase = ph;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	vmm_vm_notify(p->vm);
}

static void set_error(struct ft_primary *p, enum vmm_ft_phase ph, int code, const char *msg)
{
	pthread_mutex_lock(&p->lock);
	p->st.phase = ph;
	p->st.code = code;
	snprintf(p->st.error, sizeof(p->st.error), "%s", msg);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	kb_log(p->vm->log, KB_LOG_WARN, "FT %s: %s", vmm_ft_phase_name(ph), msg);
	vmm_vm_notify(p->vm);
}

static bool stopping(struct ft_primary *p)
{
	pthread_mutex_lock(&p->lock);
	bool s = p->stop_req;
	pthread_mutex_unlock(&p->lock);
	return s;
}

/* ---- the sync ----------------------------------------------------------------------------- */

static bool page_is_zero(const uint8_t *q)
{
	const uint64_t *w = (const uint64_t *)q;

	for (size_t i = 0; i < PAGE / 8; i += 4) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	}
	return true;
}

/* Sends the pages set in bits as PAGES runs (page data from src, in memfd order; src ==
 * NULL: the guest's memory). Returns pages sent. */
static int send_bitmap(struct ft_primary *p, const uint64_t *bits, const uint8_t *src,
		       uint64_t *sent, struct kb_errmsg *err)
{
	const uint8_t *mem = p->vm->mem.base;
	uint64_t run = 0, n = 0, k = 0;
	int rv = 0;

	*sent = 0;
	for (uint64_t pg = 0; pg <= p->pages && rv == 0; pg++) {
		bool set = pg < p->pages && ((bits[pg / 64] >> (pg % 64)) & 1);
		if (pg < p->pages && (pg % 64) == 0 && bits[pg / 64] == 0 && n == 0) {
			pg += 63;
			continue;
		}
		/* runs stay inside one 256-page chunk (one stream owns a chunk) */
		if (n > 0 && (!set || pg % VMO_PAGES_MAX == 0)) {
			const uint8_t *data = src ? src + (k - n) * PAGE : mem + run * PAGE;
			rv = vmo_send_pages(p->conn, run, (uint32_t)n, data, err);
			*sent += n;
			n = 0;
		}
		if (set) {
			if (n == 0)
				run = pg;
			n++;
			k++;
		}
	}
	return rv;
}

static int sync_wait(struct ft_primary *p, uint64_t seq, struct kb_errmsg *err)
{
	struct vmo_rec rec;
	struct timeval tv = {.tv_sec = SYNC_TIMEOUT_MS / 1000};
	int rv;

	rv = vmo_send_sync(p->conn, VMO_SYNC, seq, err);
	if (rv < 0)
		return rv;
	(void)setsockopt(vmo_conn_fd(p->conn), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rv = vmo_recv(p->conn, &rec, err);
	if (rv == -EAGAIN || rv == -EWOULDBLOCK) {
		kb_errmsg_setf(err, "the secondary did not answer SYNC in %d s",
			       SYNC_TIMEOUT_MS / 1000);
		return KB_ETIMEOUT;
	}
	if (rv < 0)
		return rv;
	if (rec.type == VMO_ABORT) {
		kb_errmsg_setf(err, "the secondary aborted: %s", rec.u.abort.text);
		return rec.u.abort.code;
	}
	if (rec.type != VMO_SYNCED || rec.u.sync_seq != seq) {
		kb_errmsg_setf(err, "the secondary answered SYNC with record type %d", rec.type);
		return KB_EPROTO;
	}
	return 0;
}

/* Every non-zero 1 MiB of every disk. */
static int send_disks(struct ft_primary *p, uint64_t *bytes, struct kb_errmsg *err)
{
	uint8_t *buf = kb_malloc(DISK_CHUNK);
	int rv = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (int d = 0; d < p->nr_disks && rv == 0; d++) {
		for (uint64_t off = 0; off < p->disk_size[d] && rv == 0; off += DISK_CHUNK) {
			uint64_t want =
			    p->disk_size[d] - off < DISK_CHUNK ? p->disk_size[d] - off : DISK_CHUNK;
			ssize_t n = pread(p->disk_fds[d], buf, want, (off_t)off);
			if (n < 0) {
				rv = -errno;
				kb_errmsg_setf(err, "reading disk %d: %s", d, kb_strerror(rv));
				break;
			}
			if (n < (ssize_t)want)
				memset(buf + n, 0, want - (size_t)n);
			want &= ~511ull;
			bool zero = true;
			for (uint64_t i = 0; i < want && zero; i += 8) {
				uint64_t w;
				memcpy(&w, buf + i, 8);
				zero = w == 0;
			}
			if (zero || want == 0)
				continue;
			if (stopping(p))
				return KB_ECANCELED;
			rv = vmo_send_disk(p->conn, (uint32_t)d, off, buf, (uint32_t)want, err);
			*bytes += want;
		}
	}
	kb_free(buf);
	return rv;
}

/* Sends a disk-write log as DISK records, in order. */
static int send_dlog(struct ft_primary *p, const struct blog *b, uint64_t *bytes,
		     struct kb_errmsg *err)
{
	size_t off = 0;
	int rv = 0;

	while (off + 16 <= b->len && rv == 0) {
		uint32_t disk = get32(b->p + off), n = get32(b->p + off + 4);
		uint64_t at;
		memcpy(&at, b->p + off + 8, 8);
		const uint8_t *data = b->p + off + 16;
		for (uint32_t done = 0; done < n && rv == 0;) {
			uint32_t part = n - done > VMO_DISK_DATA_MAX ? VMO_DISK_DATA_MAX : n - done;
			rv = vmo_send_disk(p->conn, disk, at + done, data + done, part, err);
			done += part;
		}
		*bytes += n;
		off += 16 + n;
	}
	return rv;
}

/* Takes the disk-write log so far (swapped out under out_lock). */
static int take_dlog(struct ft_primary *p, struct blog *into, struct kb_errmsg *err)
{
	int rv = 0;

	into->len = 0;
	pthread_mutex_lock(&p->out_lock);
	if (p->dlog_overflow) {
		rv = KB_ETOOBIG;
		kb_errmsg_setf(err, "the guest wrote more than %u MiB to its disks in one epoch",
			       DLOG_MAX >> 20);
	} else {
		blog_swap(&p->dlog, into);
	}
	pthread_mutex_unlock(&p->out_lock);
	return rv;
}

static int sync_all(struct ft_primary *p, struct kb_errmsg *err)
{
	struct vmm_vm *vm = p->vm;
	uint64_t words = vm->mem.dirty_words, sent, total = 0, dbytes = 0, seq = 0;
	int rv;

	/* the full pass: every page of the memfd's data that is not all zero */
	memset(p->work, 0, words * sizeof(uint64_t));
	rv = vmm_mem_fetch_dirty(vm, p->work, err); /* clears what came before */
	if (rv < 0)
		return rv;
	memset(p->work, 0, words * sizeof(uint64_t));
	for (uint64_t pg = 0; pg < p->pages; pg++) {
		if (!page_is_zero(vm->mem.base + pg * PAGE))
			p->work[pg / 64] |= 1ull << (pg % 64);
	}
	rv = send_bitmap(p, p->work, NULL, &sent, err);
	total += sent;
	rv = rv ?: send_disks(p, &dbytes, err);
	rv = rv ?: sync_wait(p, ++seq, err);
	for (int round = 1; rv == 0 && round <= SYNC_ROUNDS_MAX; round++) {
		if (stopping(p))
			return KB_ECANCELED;
		memset(p->work, 0, words * sizeof(uint64_t));
		rv = vmm_mem_fetch_dirty(vm, p->work, err);
		rv = rv ?: take_dlog(p, &p->ckpt_dlog, err);
		if (rv < 0)
			break;
		uint64_t dirty = 0;
		for (uint64_t w = 0; w < words; w++)
			dirty += (uint64_t)__builtin_popcountll(p->work[w]);
		rv = send_bitmap(p, p->work, NULL, &sent, err);
		total += sent;
		rv = rv ?: send_dlog(p, &p->ckpt_dlog, &dbytes, err);
		rv = rv ?: sync_wait(p, ++seq, err);
		if (dirty < SYNC_SMALL_PAGES)
			break;
	}
	pthread_mutex_lock(&p->lock);
	p->st.sync_bytes = vmo_conn_bytes_sent(p->conn);
	pthread_mutex_unlock(&p->lock);
	if (rv == 0)
		kb_log(vm->log, KB_LOG_INFO,
		       "FT sync done: %llu pages and %llu MiB of disks sent (%llu MiB on the wire)",
		       (unsigned long long)total, (unsigned long long)(dbytes >> 20),
		       (unsigned long long)(vmo_conn_bytes_sent(p->conn) >> 20));
	return rv;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

/* At the epoch's end, with the vCPUs paused: what the checkpoint carries. */
static int collect(struct ft_primary *p, uint64_t *npages, struct kb_errmsg *err)
{
	struct vmm_vm *vm = p->vm;
	uint64_t words = vm->mem.dirty_words, n = 0;
	int rv;

	memset(p->work, 0, words * sizeof(uint64_t));
	rv = vmm_mem_fetch_dirty(vm, p->work, err);
	if (rv < 0)
		return rv;
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(p->work[w]);
	p->staged.len = 0;
	rv = blog_reserve(&p->staged, n * PAGE, (size_t)p->pages * PAGE);
	if (rv < 0) {
		kb_errmsg_setf(err, "staging %llu dirty pages: %s", (unsigned long long)n,
			       kb_strerror(rv));
		return rv;
	}
	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = p->work[w];
		while (bits) {
			uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			memcpy(p->staged.p + p->staged.len, vm->mem.base + pg * PAGE, PAGE);
			p->staged.len += PAGE;
		}
	}
	*npages = n;
	p->state.len = 0;
	rv = vmm_state_save_buf(vm, &p->state, VMM_STATE_NO_MEMORY, err);
	if (rv < 0)
		return rv;
	rv = take_dlog(p, &p->ckpt_dlog, err);
	if (rv < 0)
		return rv;
	/* the epoch's frames wait for this checkpoint's ACK */
	pthread_mutex_lock(&p->out_lock);
	blog_swap(&p->frames, &p->ckpt_frames);
	p->frames.len = 0;
	p->hold = true;
	pthread_mutex_unlock(&p->out_lock);
	return 0;
}

static int send_ckpt(struct ft_primary *p, uint64_t npages, struct kb_errmsg *err)
{
	uint64_t dbytes = 0, sent = 0;
	int rv;

	rv = vmo_send_ckpt(p->conn, VMO_CKPT, p->ckpt, err);
	rv = rv ?: send_bitmap(p, p->work, p->staged.p, &sent, err);
	rv = rv ?: send_dlog(p, &p->ckpt_dlog, &dbytes, err);
	for (size_t off = 0; rv == 0 && off < p->state.len; off += STATE_CHUNK) {
		size_t n = p->state.len - off < STATE_CHUNK ? p->state.len - off : STATE_CHUNK;
		struct iovec iov = {.iov_base = p->state.data + off, .iov_len = n};
		rv = vmo_send(p->conn, VMO_STATE, &iov, 1, err);
	}
	return rv
		   ?: vmo_send_ckpt_end(p->conn, p->ckpt, npages, dbytes, p->state.len,
					kb_crc32c(0, p->state.data, p->state.len), err);
}

static int wait_ack(struct ft_primary *p, struct kb_errmsg *err)
{
	struct vmo_rec rec;
	struct timeval tv = {.tv_sec = ACK_TIMEOUT_MS / 1000,
			     .tv_usec = (ACK_TIMEOUT_MS % 1000) * 1000};
	int rv;

	(void)setsockopt(vmo_conn_fd(p->conn), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rv = vmo_recv(p->conn, &rec, err);
	if (rv == -EAGAIN || rv == -EWOULDBLOCK) {
		kb_errmsg_setf(err, "checkpoint %llu not acknowledged in %d ms",
			       (unsigned long long)p->ckpt, ACK_TIMEOUT_MS);
		return KB_ETIMEOUT;
	}
	if (rv < 0)
		return rv;
	if (rec.type == VMO_ABORT) {
		kb_errmsg_setf(err, "the secondary aborted: %s (%s)", rec.u.abort.text,
			       kb_strerror(rec.u.abort.code));
		return rec.u.abort.code;
	}
	if (rec.type != VMO_ACK || rec.u.ckpt != p->ckpt) {
		kb_errmsg_setf(err, "the secondary answered checkpoint %llu with record type %d",
			       (unsigned long long)p->ckpt, rec.type);
		return KB_EPROTO;
	}
	return 0;
}

/* One epoch's end: pause, collect, resume, send, wait for the ACK, release. */
static int checkpoint(struct ft_primary *p, struct kb_errmsg *err)
{
	uint64_t npages = 0, t0, t1, t2;
	int rv, rv2;

	t0 = kb_now_ns();
	rv = vmm_vm_pause(p->vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "pausing the guest: %s", kb_strerror(rv));
		return rv;
	}
	p->ckpt++;
	rv = collect(p, &npages, err);
	rv2 = vmm_vm_resume(p->vm);
	t1 = kb_now_ns();
	if (rv == 0 && rv2 < 0) {
		rv = rv2;
		kb_errmsg_setf(err, "resuming the guest: %s", kb_strerror(rv2));
	}
	if (rv < 0)
		return rv;
	uint64_t b0 = vmo_conn_bytes_sent(p->conn);
	rv = send_ckpt(p, npages, err);
	rv = rv ?: wait_ack(p, err);
	if (rv < 0)
		return rv;
	t2 = kb_now_ns();
	release(p, &p->ckpt_frames);
	pthread_mutex_lock(&p->lock);
	p->st.checkpoint = p->ckpt;
	p->st.last_pause_us = (t1 - t0) / 1000;
	if (p->st.last_pause_us > p->st.max_pause_us)
		p->st.max_pause_us = p->st.last_pause_us;
	p->st.last_ckpt_bytes = vmo_conn_bytes_sent(p->conn) - b0;
	p->st.lag_us = (t2 - t0) / 1000;
	p->st.bytes = vmo_conn_bytes_sent(p->conn) + vmo_conn_bytes_received(p->conn);
	bool first = p->st.phase != VMM_FT_PROTECTED;
	p->st.phase = VMM_FT_PROTECTED;
	pthread_mutex_unlock(&p->lock);
	if (first) {
		kb_log(p->vm->log, KB_LOG_INFO,
		       "FT protected: checkpoint 1 acknowledged (pause %llu us, %llu pages)",
		       (unsigned long long)((t1 - t0) / 1000), (unsigned long long)npages);
		vmm_vm_notify(p->vm);
	}
	return 0;
}

/* ---- the controller ----------------------------------------------------------------------- */

static int connect_stream(struct ft_primary *p, struct kb_errmsg *err)
{
	int fd, rv;

	if (p->rq.netns != NULL && (rv = vmo_enter_netns(p->netns, err)) < 0)
		return rv;
	rv = vmo_dial(p->endpoint, CONNECT_TIMEOUT_MS, SEND_TIMEOUT_MS, &fd, err);
	if (rv < 0)
		return rv;
	rv = vmo_client_hello(fd, &p->params, 0, &p->conn, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "FT stream to %s", p->endpoint);
		close(fd);
	}
	return rv;
}

/* Installs or removes the output hook with the vCPUs paused. */
static int set_hook(struct ft_primary *p, bool on)
{
	int rv = vmm_vm_pause(p->vm);

	if (rv < 0)
		return rv; /* a stopped VM keeps the hook until vmx has halted it (main.c) */
	__atomic_store_n(&p->vm->out_hook, on ? &p->hook : NULL, __ATOMIC_RELEASE);
	return vmm_vm_resume(p->vm);
}

static void *controller(void *arg)
{
	struct ft_primary *p = arg;
	struct kb_errmsg err = {{0}};
	int rv;

	pthread_setname_np(pthread_self(), "ft-primary");
	rv = connect_stream(p, &err);
	if (rv == 0) {
		set_phase(p, VMM_FT_SYNCING);
		rv = vmm_mem_log_dirty(p->vm, true, &err);
	}
	if (rv == 0) {
		pthread_mutex_lock(&p->out_lock);
		p->log_disks = true;
		p->dlog.len = 0;
		p->dlog_overflow = false;
		pthread_mutex_unlock(&p->out_lock);
		rv = set_hook(p, true);
		if (rv < 0)
			kb_errmsg_setf(&err, "installing the output hook: %s", kb_strerror(rv));
	}
	rv = rv ?: sync_all(p, &err);
	if (rv < 0) {
		/* before any checkpoint nothing was held: FT simply did not start */
		set_error(p, VMM_FT_FAILED, rv, err.msg);
		goto out;
	}
	/* An epoch ends epoch_ms after the last one, or sooner when the guest has output
	 * waiting: OUTPUT_EPOCH_MS after the last one ended, so a reply waits for one short
	 * checkpoint instead of a whole epoch (adaptive epochs). */
	uint64_t last = kb_now_ns(), epoch_ns = (uint64_t)p->rq.epoch_ms * 1000000ull;
	bool first = true;
	while (rv == 0) {
		pthread_mutex_lock(&p->lock);
		for (;;) {
			uint64_t now = kb_now_ns();
			uint64_t due = last + (p->output_waiting && OUTPUT_EPOCH_NS < epoch_ns
						   ? OUTPUT_EPOCH_NS
						   : epoch_ns);
			if (p->stop_req || first || now >= due)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (due - now);
			ts.tv_sec += (time_t)(ns / KB_NSEC_PER_SEC);
			ts.tv_nsec = (long)(ns % KB_NSEC_PER_SEC);
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		}
		bool stop = p->stop_req;
		p->output_waiting = false;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		first = false;
		last = kb_now_ns();
		rv = checkpoint(p, &err);
	}
	if (rv < 0)
		set_error(p, VMM_FT_LOST, rv, err.msg); /* output stays held: the cluster decides */
out:
	/* A stop sends no ABORT: the stream just ends (end_session shuts it down), and the
	 * secondary keeps its last checkpoint ("lost") until its own host is told, as after
	 * the primary's death. (An ABORT here raced that shutdown, so the secondary sometimes
	 * stopped and sometimes did not.) */
	pthread_mutex_lock(&p->lock);
	p->thread_running = false;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- the interface ---------------------------------------------------------------------- */

int ft_primary_create(struct vmm_vm *vm, const char *const *disks, int nr_disks,
		      struct ft_primary **out, struct kb_errmsg *err)
{
	struct ft_primary *p;

	*out = NULL;
	if (nr_disks < 0 || nr_disks > (int)VMO_DISK_MAX) {
		kb_errmsg_setf(err, "FT: at most %u disks", VMO_DISK_MAX);
		return KB_ECONFIG;
	}
	p = kb_calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->vm = vm;
	p->nr_disks = nr_disks;
	for (int i = 0; i < (int)VMO_DISK_MAX; i++)
		p->disk_fds[i] = -1;
	for (int i = 0; i < nr_disks; i++) {
		struct stat sb;
		p->disk_fds[i] = open(disks[i], O_RDONLY | O_CLOEXEC);
		if (p->disk_fds[i] < 0 || fstat(p->disk_fds[i], &sb) < 0) {
			int rv = -errno;
			kb_errmsg_setf(err, "FT: opening disk %s: %s", disks[i], kb_strerror(rv));
			ft_primary_destroy(p);
			return rv;
		}
		p->disk_size[i] = (uint64_t)sb.st_size;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_mutex_init(&p->out_lock, NULL);
	p->hook =
	    (struct vmm_out_hook){.net_tx = hook_net_tx, .blk_write = hook_blk_write, .arg = p};
	p->pages = vm->mem.size / PAGE;
	p->st.primary = true;
	kb_buf_init(&p->state, 64u << 20);
	*out = p;
	return 0;
}

/* Drops held frames: they never leave. */
static void drop(struct ft_primary *p, struct blog *b)
{
	pthread_mutex_lock(&p->out_lock);
	p->held_bytes -= b->len <= p->held_bytes ? b->len : p->held_bytes;
	pthread_mutex_unlock(&p->out_lock);
	b->len = 0;
}

/* Ends a session: the thread stops, held frames go out (dropped when the vmx vanishes or
 * the VM has stopped), the hook and dirty logging end. */
static void end_session(struct ft_primary *p)
{
	pthread_mutex_lock(&p->lock);
	bool joinable = p->active, vanish = p->vanish;
	p->stop_req = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (!joinable)
		return;
	if (p->conn != NULL)
		vmo_conn_shutdown(p->conn); /* unblocks a send or an ACK wait */
	pthread_join(p->thread, NULL);
	/* With the vCPUs paused, the held frames leave (or are dropped) before the hook
	 * goes: nothing the guest sends afterwards may overtake them (a client would see a
	 * newer reply before an older one, as if the VM had gone back). */
	(void)vmm_vm_pause(p->vm);
	/* A VM that stopped (it fenced itself, or failed) releases no more output: what it
	 * holds belongs to epochs the secondary never acknowledged, and the VM that goes on,
	 * if any, is the secondary or a restart that never saw them. */
	pthread_mutex_lock(&p->vm->lock);
	bool stopped = p->vm->state == VMM_STATE_STOPPED;
	pthread_mutex_unlock(&p->vm->lock);

	pthread_mutex_lock(&p->out_lock);
	p->hold = false;
	p->log_disks = false;
	size_t held = p->frames.len + p->ckpt_frames.len;
	pthread_mutex_unlock(&p->out_lock);
	if (stopped && !vanish && held)
		kb_log(p->vm->log, KB_LOG_WARN,
		       "FT: the VM has stopped (%s): its held output (%zu bytes) is dropped, "
		       "never sent",
		       p->vm->stop_msg, held);
	if (vanish || stopped) {
		drop(p, &p->ckpt_frames);
		drop(p, &p->frames);
	} else {
		release(p, &p->ckpt_frames);
		release(p, &p->frames);
	}
	(void)set_hook(p, false); /* still paused: it stores NULL and resumes */
	struct kb_errmsg e = {{0}};
	(void)vmm_mem_log_dirty(p->vm, false, &e);
	vmo_conn_free(p->conn);
	p->conn = NULL;
	pthread_mutex_lock(&p->lock);
	p->active = false;
	pthread_mutex_unlock(&p->lock);
}

void ft_primary_destroy(struct ft_primary *p)
{
	if (p == NULL)
		return;
	/* The vmx ends (a power-off, the isolation response): the secondary is not told to
	 * give up (no ABORT) and nothing held leaves. Whether it takes over is the cluster's
	 * decision, and a frame of an epoch it never acknowledged must not have been seen. */
	pthread_mutex_lock(&p->lock);
	p->vanish = true;
	pthread_mutex_unlock(&p->lock);
	if (p->vm->out_hook == &p->hook || p->active)
		end_session(p);
	for (int i = 0; i < (int)VMO_DISK_MAX; i++) {
		if (p->disk_fds[i] >= 0)
			close(p->disk_fds[i]);
	}
	blog_free(&p->frames);
	blog_free(&p->dlog);
	blog_free(&p->staged);
	blog_free(&p->ckpt_frames);
	blog_free(&p->ckpt_dlog);
	kb_buf_close(&p->state);
	kb_free(p->work);
	explicit_bzero(&p->params, sizeof(p->params));
	explicit_bzero(&p->rq, sizeof(p->rq));
	kb_free(p);
}

int ft_primary_start(struct ft_primary *p, const struct vmm_ft_start *rq, struct kb_errmsg *err)
{
	int rv;

	if (rq->endpoint == NULL || strlen(rq->endpoint) >= sizeof(p->endpoint) ||
	    vmo_endpoint_check(rq->endpoint, err) < 0) {
		if (err->msg[0] == '\0')
			kb_errmsg_setf(err, "FT needs the secondary's IP:PORT");
		return KB_ECONFIG;
	}
	if (rq->epoch_ms > FT_EPOCH_MS_MAX) {
		kb_errmsg_setf(err, "an FT epoch is 1..%d ms", FT_EPOCH_MS_MAX);
		return KB_ECONFIG;
	}
	if (rq->netns != NULL && strlen(rq->netns) >= sizeof(p->netns)) {
		kb_errmsg_setf(err, "network namespace path too long");
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&p->vm->lock);
	bool running = p->vm->state == VMM_STATE_RUNNING;
	pthread_mutex_unlock(&p->vm->lock);
	pthread_mutex_lock(&p->lock);
	bool busy = p->active;
	bool over = p->active && !p->thread_running && p->st.phase == VMM_FT_FAILED;
	pthread_mutex_unlock(&p->lock);
	if (over) {
		end_session(p); /* failed before protecting anything: nothing is held */
		busy = false;
	}
	if (busy) {
		kb_errmsg_setf(err, "FT is already on (phase %s); stop it first",
			       vmm_ft_phase_name(p->st.phase));
		return KB_ESTATE;
	}
	if (!running) {
		kb_errmsg_setf(err, "the VM is not running");
		return KB_ESTATE;
	}
	if (p->work == NULL) {
		p->work = kb_calloc(p->vm->mem.dirty_words, sizeof(uint64_t));
		if (p->work == NULL)
			return -ENOMEM;
	}
	vmo_conn_free(p->conn);
	p->conn = NULL;
	p->rq = *rq;
	if (p->rq.epoch_ms == 0)
		p->rq.epoch_ms = FT_EPOCH_MS_DEFAULT;
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", rq->endpoint);
	p->rq.endpoint = p->endpoint;
	if (rq->netns != NULL) {
		snprintf(p->netns, sizeof(p->netns), "%s", rq->netns);
		p->rq.netns = p->netns;
	}
	p->params = (struct vmo_params){
	    .count = 1, .encrypt = rq->encrypt, .ft = true, .guest_pages = p->pages};
	memcpy(p->params.key, rq->key, VMO_KEY_SIZE);
	memcpy(p->params.id, rq->id, VMO_ID_SIZE);
	p->ckpt = 0;
	pthread_mutex_lock(&p->out_lock);
	p->hold = false;
	p->dropped = 0;
	pthread_mutex_unlock(&p->out_lock);
	pthread_mutex_lock(&p->lock);
	p->st = (struct vmm_ft_status){
	    .primary = true, .phase = VMM_FT_CONNECTING, .epoch_ms = p->rq.epoch_ms};
	p->stop_req = false;
	p->active = true;
	p->thread_running = true;
	pthread_mutex_unlock(&p->lock);
	rv = -pthread_create(&p->thread, NULL, controller, p);
	if (rv < 0) {
		pthread_mutex_lock(&p->lock);
		p->active = false;
		p->thread_running = false;
		pthread_mutex_unlock(&p->lock);
		kb_errmsg_setf(err, "starting the FT thread: %s", kb_strerror(rv));
		return rv;
	}
	kb_log(p->vm->log, KB_LOG_INFO,
	       "FT: protecting the VM with the secondary at %s (%s, %u ms epochs)", p->endpoint,
	       rq->encrypt ? "encrypted" : "plain", p->rq.epoch_ms);
	return 0;
}

void ft_primary_status(struct ft_primary *p, struct vmm_ft_status *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&p->out_lock);
	st->held_frames = 0;
	for (size_t off = 0; off + 8 <= p->frames.len; off += 8 + get32(p->frames.p + off + 4))
		st->held_frames++;
	st->dropped_frames = p->dropped;
	pthread_mutex_unlock(&p->out_lock);
}

int ft_primary_stop(struct ft_primary *p, struct kb_errmsg *err)
{
	pthread_mutex_lock(&p->lock);
	bool active = p->active;
	pthread_mutex_unlock(&p->lock);
	if (!active) {
		kb_errmsg_setf(err, "FT is not on");
		return KB_ESTATE;
	}
	end_session(p);
	pthread_mutex_lock(&p->lock);
	enum vmm_ft_phase was = p->st.phase;
	p->st.phase = VMM_FT_OFF;
	pthread_mutex_unlock(&p->lock);
	kb_log(p->vm->log, KB_LOG_INFO, "FT stopped (was %s); the VM runs unprotected",
	       vmm_ft_phase_name(was));
	return 0;
}
