/*
 * The destination of a live migration (docs/vmotion.md, "The destination"), in a vmx
 * started with --incoming: the VM is created (same memory, vCPUs and devices) with its
 * memory cleared and is never started until GO.
 *
 * Threads: the controller accepts the streams after VmxMigrateIn (every hello checked by
 * the wire), then one receiver thread per stream writes pages straight into guest memory.
 * Stream 0 also carries the state (after its FINAL) and the control records. Once every
 * stream has sent FINAL with the count of pages it carried and the state has arrived whole
 * (STATE_END: length and CRC-32C), the controller loads it (checked before anything is
 * applied) and sends READY. GO(E) from the source — or VmxMigrateCommit when the source is
 * gone — takes the VM's lock at E when fencing is configured, resumes the guest, announces
 * the NICs and answers RESUMED.
 *
 * Anything wrong before GO (ABORT, a broken or malformed stream, a bad state, a hello that
 * does not prove the key) ends the vmx: stop reason "migration-failed", nothing ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ha/lock.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/state.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/buf.h"
#include "lib/crc.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmotion/vmotion.h"
#include "vmotion/wire.h"

#define ACCEPT_TIMEOUT_MS 30000
#define COMMIT_WAIT_MS	  4000
#define STATE_MAX	  (64u << 20)

struct receiver {
	struct vmo_dest *d;
	uint32_t index;
	struct vmo_conn *conn;
	pthread_t thread;
	bool running;
	uint64_t pages; /* PAGES and ZERO pages received */
	uint64_t data_pages, zero_pages;
	bool final;
};

struct vmo_dest {
	struct vmm_vm *vm;
	int fds[VMO_MAX_STREAMS];
	int nr_fds;
	struct vmm_fence_config fcfg;
	bool fence_on;
	char hb_path[4096], lock_path[4096], vm_uuid[HA_LOCK_UUID_MAX];
	struct vmm_fence *fence;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	struct vmm_mig_status st;
	bool started;
	bool failed;
	uint32_t finals;
	bool state_done;
	int go; /* 0 none, 1 GO, -1 not committed */
	uint64_t go_epoch;
	bool go_from_ctl;

	pthread_t thread;
	bool thread_running;
	struct vmo_params params;
	struct receiver rcv[VMO_MAX_STREAMS];
	uint32_t count;
	struct kb_buf state; /* stream 0's receiver only, until state_done */
	uint64_t t_start;
};

static void set_phase(struct vmo_dest *d, enum vmm_mig_phase p)
{
	pthread_mutex_lock(&d->lock);
	d->st.phase = p;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	vmm_vm_notify(d->vm);
}

/* Records the first failure; the controller ends the migration. */
static void fail(struct vmo_dest *d, int code, const char *msg)
{
	pthread_mutex_lock(&d->lock);
	if (!d->failed && d->st.phase != VMM_MIG_RESUMED) {
		d->failed = true;
		d->st.code = code;
		snprintf(d->st.error, sizeof(d->st.error), "%s", msg);
	}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* ---- receivers -------------------------------------------------------------------------- */

static int zero_pages(struct vmo_dest *d, uint64_t first, uint32_t count)
{
	return vmm_mem_zero(&d->vm->mem, first * VMO_PAGE_SIZE, (uint64_t)count * VMO_PAGE_SIZE);
}

/* Writes whole pages into guest memory (vmm_mem_put: small pages through the page cache,
 * which takes fresh pages without clearing them first). */
static int write_pages(struct vmo_dest *d, uint64_t first, const uint8_t *data, uint32_t count,
		       struct kb_errmsg *err)
{
	int rv = vmm_mem_put(&d->vm->mem, first * VMO_PAGE_SIZE, data,
			     (size_t)count * VMO_PAGE_SIZE);

	if (rv < 0)
		kb_errmsg_setf(err, "writing %u pages at page %llu: %s", count,
			       (unsigned long long)first, kb_strerror(rv));
	return rv;
}

/* Handles one record; returns 1 when the stream is done (after GO), 0 to go on. */
static int handle(struct receiver *r, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	struct vmo_dest *d = r->d;

	switch (rec->type) {
	case VMO_PAGES:
	case VMO_ZERO:
		if (r->final) {
			kb_errmsg_setf(err, "pages after FINAL");
			return KB_EPROTO;
		}
		if (rec->type == VMO_PAGES) {
			int rv = write_pages(d, rec->u.pages.first, rec->u.pages.data,
					     rec->u.pages.count, err);
			if (rv < 0)
				return rv;
			r->data_pages += rec->u.pages.count;
		} else {
			zero_pages(d, rec->u.pages.first, rec->u.pages.count);
			r->zero_pages += rec->u.pages.count;
		}
		r->pages += rec->u.pages.count;
		return 0;
	case VMO_ROUND:
		if (r->final) {
			kb_errmsg_setf(err, "ROUND after FINAL");
			return KB_EPROTO;
		}
		pthread_mutex_lock(&d->lock);
		if (rec->u.round.round > d->st.round)
			d->st.round = rec->u.round.round;
		pthread_mutex_unlock(&d->lock);
		return 0;
	case VMO_SYNC:
		/* everything before it is in guest memory: say so on the same stream */
		return vmo_send_sync(r->conn, VMO_SYNCED, rec->u.sync_seq, err);
	case VMO_FINAL:
		if (r->final || rec->u.final_pages != r->pages) {
			kb_errmsg_setf(err, "FINAL counts %llu pages, %llu arrived%s",
				       (unsigned long long)rec->u.final_pages,
				       (unsigned long long)r->pages, r->final ? " (twice)" : "");
			return KB_EPROTO;
		}
		r->final = true;
		pthread_mutex_lock(&d->lock);
		d->finals++;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		return 0;
	case VMO_STATE:
		if (r->index != 0 || !r->final || d->state_done) {
			kb_errmsg_setf(err, "state out of place");
			return KB_EPROTO;
		}
		if (kb_buf_append(&d->state, rec->u.state.data, rec->u.state.len) < 0) {
			kb_errmsg_setf(err, "the state exceeds %u MiB", STATE_MAX >> 20);
			return KB_ETOOBIG;
		}
		return 0;
	case VMO_STATE_END:
		if (r->index != 0 || !r->final || d->state_done) {
			kb_errmsg_setf(err, "STATE_END out of place");
			return KB_EPROTO;
		}
		if (rec->u.state_end.length != d->state.len ||
		    rec->u.state_end.crc != kb_crc32c(0, d->state.data, d->state.len)) {
			kb_errmsg_setf(err,
				       "the state (%zu bytes) does not match its end record "
				       "(%llu bytes, CRC %08x)",
				       d->state.len, (unsigned long long)rec->u.state_end.length,
				       rec->u.state_end.crc);
			return KB_ECHECKSUM;
		}
		pthread_mutex_lock(&d->lock);
		d->state_done = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		return 0;
	case VMO_GO:
		pthread_mutex_lock(&d->lock);
		bool ready = r->index == 0 && d->st.phase == VMM_MIG_READY && d->go == 0;
		if (ready) {
			d->go = 1;
			d->go_epoch = rec->u.go_epoch;
			pthread_cond_broadcast(&d->cond);
		}
		pthread_mutex_unlock(&d->lock);
		if (!ready) {
			kb_errmsg_setf(err, "GO out of place");
			return KB_EPROTO;
		}
		return 1;
	case VMO_ABORT:
		kb_errmsg_setf(err, "the source aborted: %s (%s)", rec->u.abort.text,
			       kb_strerror(rec->u.abort.code));
		return rec->u.abort.code < 0 ? rec->u.abort.code : KB_ECANCELED;
	default:
		kb_errmsg_setf(err, "record type %d from the source", rec->type);
		return KB_EPROTO;
	}
}

static void *receiver_thread(void *arg)
{
	struct receiver *r = arg;
	struct vmo_dest *d = r->d;
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	char name[16];
	int rv;

	snprintf(name, sizeof(name), "vmo-recv%u", r->index);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		rv = vmo_recv(r->conn, &rec, &err);
		bool lost = rv == KB_ETRUNCATED || (rv < 0 && rv > KB_EBASE); /* peer gone */
		if (rv == 0)
			rv = handle(r, &rec, &err);
		if (rv == 1)
			break; /* GO: the controller reads nothing more */
		if (rv < 0) {
			pthread_mutex_lock(&d->lock);
			bool over = d->go != 0 || d->failed;
			bool ready = d->st.phase == VMM_MIG_READY;
			pthread_mutex_unlock(&d->lock);
			if (!over && ready && lost) {
				/* The commit may have happened: only VmxMigrateCommit decides now. */
				kb_log(d->vm->log, KB_LOG_WARN,
				       "incoming migration: stream %u lost while ready (%s); waiting "
				       "for VmxMigrateCommit",
				       r->index, err.msg);
			} else if (!over) {
				if (strncmp(err.msg, "stream ", 7) != 0)
					kb_errmsg_wrapf(&err, "stream %u", r->index);
				fail(d, rv, err.msg);
			}
			break;
		}
	}
	return NULL;
}

/* ---- the controller --------------------------------------------------------------------- */

/* Accepts and checks one stream's connection. */
static int accept_stream(struct vmo_dest *d, struct kb_errmsg *err)
{
	struct pollfd p[VMO_MAX_STREAMS];
	struct vmo_conn *conn = NULL;
	uint32_t index;
	int rv, fd = -1, one = 1;

	for (int i = 0; i < d->nr_fds; i++)
		p[i] = (struct pollfd){.fd = d->fds[i], .events = POLLIN};
	/* in slices, so a vmx that is ending does not wait for the timeout */
	for (int waited = 0; waited < ACCEPT_TIMEOUT_MS; waited += 100) {
		rv = poll(p, (nfds_t)d->nr_fds, 100);
		pthread_mutex_lock(&d->lock);
		bool failed = d->failed;
		pthread_mutex_unlock(&d->lock);
		if (rv != 0 || failed)
			break;
	}
	pthread_mutex_lock(&d->lock);
	bool ending = d->failed;
	pthread_mutex_unlock(&d->lock);
	if (ending) {
		kb_errmsg_setf(err, "the vmx is ending");
		return KB_ECANCELED;
	}
	if (rv == 0) {
		kb_errmsg_setf(err, "no stream connected in %d s", ACCEPT_TIMEOUT_MS / 1000);
		return KB_ETIMEOUT;
	}
	if (rv < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "poll: %s", kb_strerror(rv));
		return rv;
	}
	for (int i = 0; i < d->nr_fds && fd < 0; i++) {
		if (p[i].revents & POLLIN)
			fd = accept4(d->fds[i], NULL, NULL, SOCK_CLOEXEC);
	}
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "accept: %s", kb_strerror(rv));
		return rv;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rv = vmo_server_hello(fd, &d->params, &conn, &index, err);
	if (rv < 0) {
		close(fd);
		kb_errmsg_wrapf(err, "refused a stream");
		return rv;
	}
	if (d->rcv[index].conn != NULL) {
		vmo_conn_free(conn);
		kb_errmsg_setf(err, "stream %u connected twice", index);
		return KB_EPROTO;
	}
	d->rcv[index].conn = conn;
	return 0;
}

/* The cluster committed this host at a higher epoch: the source's hold at its lower epoch
 * no longer counts (it stopped, or stops at its next lock read). */
/* Takes the VM's lock at the commit's epoch (over a lower one: the cluster committed this
 * host) and starts fencing with that epoch. */
static int claim(struct vmo_dest *d, uint64_t epoch, struct kb_errmsg *err)
{
	if (!d->fence_on)
		return 0;
	return vmm_fence_claim(d->vm, &d->fcfg, epoch, &d->fence, err);
}

static int receive(struct vmo_dest *d, struct kb_errmsg *err)
{
	int rv = 0;

	set_phase(d, VMM_MIG_WAITING);
	for (uint32_t i = 0; i < d->count && rv == 0; i++)
		rv = accept_stream(d, err);
	if (rv < 0)
		return rv;
	set_phase(d, VMM_MIG_RECEIVING);
	kb_log(d->vm->log, KB_LOG_INFO, "incoming migration: %u stream(s) accepted", d->count);
	for (uint32_t i = 0; i < d->count; i++) {
		d->rcv[i].d = d;
		d->rcv[i].index = i;
		rv = -pthread_create(&d->rcv[i].thread, NULL, receiver_thread, &d->rcv[i]);
		if (rv < 0) {
			kb_errmsg_setf(err, "starting a receiver thread: %s", kb_strerror(rv));
			return rv;
		}
		d->rcv[i].running = true;
	}
	pthread_mutex_lock(&d->lock);
	while (!d->failed && !(d->finals == d->count && d->state_done))
		pthread_cond_wait(&d->cond, &d->lock);
	bool failed = d->failed;
	pthread_mutex_unlock(&d->lock);
	if (failed)
		return KB_ECANCELED; /* the message is in st */

	uint64_t data = 0, zero = 0, bytes = 0;
	for (uint32_t i = 0; i < d->count; i++) {
		data += d->rcv[i].data_pages;
		zero += d->rcv[i].zero_pages;
		bytes += vmo_conn_bytes_received(d->rcv[i].conn);
	}
	pthread_mutex_lock(&d->lock);
	d->st.pages_sent = data;
	d->st.zero_pages = zero;
	d->st.bytes_sent = bytes;
	pthread_mutex_unlock(&d->lock);

	uint64_t t0 = kb_now_ns();
	rv = vmm_state_load_buf(d->vm, d->state.data, d->state.len, VMM_STATE_NO_MEMORY, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "loading the state");
		return rv;
	}
	kb_log(d->vm->log, KB_LOG_DEBUG, "incoming migration: state loaded in %llu us",
	       (unsigned long long)((kb_now_ns() - t0) / 1000));
	/* READY in our phase before it goes out: GO may follow at once */
	set_phase(d, VMM_MIG_READY);
	rv = vmo_send_empty(d->rcv[0].conn, VMO_READY, err);
	if (rv < 0)
		return rv;
	kb_log(d->vm->log, KB_LOG_INFO,
	       "incoming migration: %llu pages and %zu bytes of state loaded; ready",
	       (unsigned long long)data, d->state.len);

	pthread_mutex_lock(&d->lock);
	while (!d->failed && d->go == 0)
		pthread_cond_wait(&d->cond, &d->lock);
	failed = d->failed;
	int go = d->go;
	uint64_t epoch = d->go_epoch;
	bool from_ctl = d->go_from_ctl;
	pthread_mutex_unlock(&d->lock);
	if (failed)
		return KB_ECANCELED;
	if (go < 0) {
		kb_errmsg_setf(err, "not committed");
		return KB_ECANCELED;
	}
	rv = claim(d, epoch, err);
	rv = rv ?: vmm_vm_resume(d->vm);
	if (rv < 0) {
		if (err->msg[0] == '\0')
			kb_errmsg_setf(err, "resuming the guest: %s", kb_strerror(rv));
		return rv;
	}
	int nics = vmm_virtio_net_announce(d->vm);
	struct kb_errmsg e2 = {{0}};
	if (!from_ctl && vmo_send_empty(d->rcv[0].conn, VMO_RESUMED, &e2) < 0)
		kb_log(d->vm->log, KB_LOG_WARN, "RESUMED not sent: %s", e2.msg);
	pthread_mutex_lock(&d->lock);
	d->st.total_us = (kb_now_ns() - d->t_start) / 1000;
	pthread_mutex_unlock(&d->lock);
	set_phase(d, VMM_MIG_RESUMED);
	kb_log(d->vm->log, KB_LOG_INFO,
	       "incoming migration: the guest runs here at epoch %llu (GO from %s; %d NIC(s) "
	       "announced)",
	       (unsigned long long)epoch, from_ctl ? "the control socket" : "the source", nics);
	return 0;
}

static void *controller(void *arg)
{
	struct vmo_dest *d = arg;
	struct kb_errmsg err = {{0}};
	int rv;

	pthread_setname_np(pthread_self(), "vmo-dest");
	rv = receive(d, &err);
	if (rv < 0) {
		pthread_mutex_lock(&d->lock);
		if (!d->failed) {
			d->failed = true;
			d->st.code = rv;
			snprintf(d->st.error, sizeof(d->st.error), "%s", err.msg);
		}
		char msg[300];
		snprintf(msg, sizeof(msg), "incoming migration failed: %s", d->st.error);
		d->st.phase = rv == KB_ECANCELED && d->go < 0 ? VMM_MIG_ABORTED : VMM_MIG_FAILED;
		d->st.total_us = (kb_now_ns() - d->t_start) / 1000;
		pthread_mutex_unlock(&d->lock);
		struct kb_errmsg e2 = {{0}};
		if (d->rcv[0].conn != NULL)
			(void)vmo_send_abort(d->rcv[0].conn, rv, msg, &e2);
		for (uint32_t i = 0; i < d->count; i++) {
			if (d->rcv[i].conn != NULL)
				vmo_conn_shutdown(d->rcv[i].conn);
		}
		kb_log(d->vm->log, KB_LOG_ERROR, "%s; the guest never ran here", msg);
		vmm_vm_stop(d->vm, VMM_STOP_MIGRATION_FAILED, msg);
	}
	return NULL;
}

/* ---- the control thread's calls --------------------------------------------------------- */

int vmo_dest_create(struct vmm_vm *vm, const int *listen_fds, int nr_fds,
		    const struct vmm_fence_config *fence, struct vmo_dest **out,
		    struct kb_errmsg *err)
{
	struct vmo_dest *d;
	int rv;

	if (nr_fds < 1 || nr_fds > VMO_MAX_STREAMS) {
		kb_errmsg_setf(err, "an incoming migration needs 1..%d listening sockets",
			       VMO_MAX_STREAMS);
		rv = KB_ECONFIG;
		goto err_fds;
	}
	d = kb_calloc(1, sizeof(*d));
	if (d == NULL) {
		rv = -ENOMEM;
		goto err_fds;
	}
	d->vm = vm;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	memcpy(d->fds, listen_fds, (size_t)nr_fds * sizeof(int));
	d->nr_fds = nr_fds;
	kb_buf_init(&d->state, STATE_MAX);
	if (fence != NULL && (fence->hb_path != NULL || fence->lock_path != NULL)) {
		d->fcfg = *fence;
		d->fence_on = true;
		snprintf(d->hb_path, sizeof(d->hb_path), "%s",
			 fence->hb_path ? fence->hb_path : "");
		snprintf(d->lock_path, sizeof(d->lock_path), "%s",
			 fence->lock_path ? fence->lock_path : "");
		snprintf(d->vm_uuid, sizeof(d->vm_uuid), "%s",
			 fence->vm_uuid ? fence->vm_uuid : "");
		d->fcfg.hb_path = fence->hb_path ? d->hb_path : NULL;
		d->fcfg.lock_path = fence->lock_path ? d->lock_path : NULL;
		d->fcfg.vm_uuid = d->vm_uuid;
		if (d->fcfg.lock_path != NULL && (d->vm_uuid[0] == '\0' || d->fcfg.host_id == 0)) {
			kb_errmsg_setf(err, "the VM's lock needs --fence-vm and --fence-host");
			vmo_dest_destroy(d);
			return KB_ECONFIG;
		}
	}
	/* Pages the source does not send are zero: start from nothing. */
	rv = vmm__mem_discard(&vm->mem);
	if (rv < 0) {
		kb_errmsg_setf(err, "clearing guest memory: %s", kb_strerror(rv));
		vmo_dest_destroy(d);
		return rv;
	}
	*out = d;
	return 0;

err_fds:
	for (int i = 0; i < nr_fds; i++)
		close(listen_fds[i]);
	return rv;
}

void vmo_dest_destroy(struct vmo_dest *d)
{
	if (d == NULL)
		return;
	if (d->thread_running) {
		fail(d, KB_ECANCELED, "the vmx is ending");
		pthread_join(d->thread, NULL);
	}
	for (uint32_t i = 0; i < VMO_MAX_STREAMS; i++) {
		if (d->rcv[i].conn != NULL)
			vmo_conn_shutdown(d->rcv[i].conn);
	}
	for (uint32_t i = 0; i < VMO_MAX_STREAMS; i++) {
		if (d->rcv[i].running)
			pthread_join(d->rcv[i].thread, NULL);
		vmo_conn_free(d->rcv[i].conn);
	}
	vmm_fence_stop(d->fence);
	for (int i = 0; i < d->nr_fds; i++)
		close(d->fds[i]);
	kb_buf_close(&d->state);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	kb_free(d);
}

int vmo_dest_in(struct vmo_dest *d, const struct vmm_mig_in *rq, struct kb_errmsg *err)
{
	int rv;

	if (rq->count < 1 || rq->count > VMO_MAX_STREAMS) {
		kb_errmsg_setf(err, "a migration has 1..%d streams, not %u", VMO_MAX_STREAMS,
			       rq->count);
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&d->lock);
	if (d->started) {
		pthread_mutex_unlock(&d->lock);
		kb_errmsg_setf(err, "this vmx has already accepted its migration");
		return KB_ESTATE;
	}
	d->started = true;
	pthread_mutex_unlock(&d->lock);
	memcpy(d->params.key, rq->key, VMO_KEY_SIZE);
	memcpy(d->params.id, rq->id, VMO_ID_SIZE);
	d->params.count = rq->count;
	d->params.encrypt = rq->encrypt;
	d->params.guest_pages = d->vm->mem.size / VMO_PAGE_SIZE;
	d->count = rq->count;
	d->st.streams = rq->count;
	d->st.phase = VMM_MIG_WAITING;
	d->t_start = kb_now_ns();
	rv = -pthread_create(&d->thread, NULL, controller, d);
	if (rv < 0) {
		kb_errmsg_setf(err, "starting the migration thread: %s", kb_strerror(rv));
		return rv;
	}
	d->thread_running = true;
	kb_log(d->vm->log, KB_LOG_INFO, "incoming migration: waiting for %u stream(s)%s", rq->count,
	       rq->encrypt ? ", encrypted" : "");
	return 0;
}

void vmo_dest_status(struct vmo_dest *d, struct vmm_mig_status *st)
{
	uint64_t bytes = 0;

	pthread_mutex_lock(&d->lock);
	*st = d->st;
	bool live = d->st.phase == VMM_MIG_RECEIVING;
	if (d->st.phase == VMM_MIG_WAITING || live)
		st->total_us = (kb_now_ns() - d->t_start) / 1000;
	pthread_mutex_unlock(&d->lock);
	if (live) {
		for (uint32_t i = 0; i < d->count; i++)
			bytes += d->rcv[i].conn ? vmo_conn_bytes_received(d->rcv[i].conn) : 0;
		st->bytes_sent = bytes;
	}
}

int vmo_dest_commit(struct vmo_dest *d, bool commit, uint64_t epoch, struct kb_errmsg *err)
{
	uint64_t deadline = kb_now_ns() + COMMIT_WAIT_MS * KB_NSEC_PER_MSEC;
	int rv = 0;

	pthread_mutex_lock(&d->lock);
	if (d->st.phase != VMM_MIG_READY || d->go != 0) {
		kb_errmsg_setf(err, "no incoming migration is waiting for the commit (phase %s)",
			       vmm_mig_phase_name(d->st.phase));
		pthread_mutex_unlock(&d->lock);
		return KB_ESTATE;
	}
	d->go = commit ? 1 : -1;
	d->go_epoch = epoch;
	d->go_from_ctl = true;
	pthread_cond_broadcast(&d->cond);
	while (d->st.phase == VMM_MIG_READY && kb_now_ns() < deadline) {
		pthread_mutex_unlock(&d->lock);
		kb_sleep_ns(KB_NSEC_PER_MSEC);
		pthread_mutex_lock(&d->lock);
	}
	if (commit && d->st.phase != VMM_MIG_RESUMED) {
		kb_errmsg_setf(err, "the guest did not resume here: %s", d->st.error);
		rv = d->st.code < 0 ? d->st.code : KB_ESTATE;
	}
	pthread_mutex_unlock(&d->lock);
	return rv;
}

enum vmm_mig_phase vmo_dest_phase(struct vmo_dest *d)
{
	pthread_mutex_lock(&d->lock);
	enum vmm_mig_phase p = d->st.phase;
	pthread_mutex_unlock(&d->lock);
	return p;
}
