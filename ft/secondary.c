/*
 * The FT secondary (docs/ft.md, "The secondary"): a vmx started with --ft-secondary holds a
 * copy of the primary's guest, never running its vCPUs until it takes over.
 *
 * VmxFtIn starts the receiver thread: it accepts the primary's one stream (30 s at most;
 * the FT hello, id and key), then feeds every record to the stage (ft/ckpt.h) — the sync
 * goes straight into guest memory and the disk copies, each checkpoint is applied whole or
 * not at all — answering SYNC with SYNCED and each applied checkpoint with ACK.
 *
 *   - The first applied checkpoint: phase "protected".
 *   - The stream breaks, or a record is refused (answered with ABORT): with a checkpoint
 *     applied, phase "lost": the last checkpoint stays whole and ready for a takeover; with
 *     none, phase "failed" and the vmx stops (exit 5) — there is nothing to take over.
 *   - An ABORT from the primary: the vmx stops (exit 5). The primary sends none when FT
 *     stops there (the stream just ends, as above); the secondary's host ends it when
 *     the cluster no longer names it.
 *
 * VmxFtTakeover(epoch): the receiver is stopped (the stream shut down), the last applied
 * checkpoint's state is loaded, the VM's lock taken at epoch and fencing started (as a
 * migration's GO), the vCPUs resume and each NIC announces its MAC. Phase "running".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/ckpt.h"
#include "ft/ft.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/state.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmotion/wire.h"

#define ACCEPT_TIMEOUT_MS 30000
#define SILENCE_MS	  400 /* protected: no record for this long is a lost primary */

struct ft_secondary {
	struct vmm_vm *vm;
	int listen_fd;
	struct ft_target target;
	struct ft_stage *stage;
	struct vmm_fence_config fcfg;
	bool fence_on;
	char hb_path[4096], lock_path[4096], vm_uuid[64];
	struct vmm_fence *fence;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	struct vmm_ft_status st;
	bool started;
	bool thread_running;
	bool stop_req;

	/* receiver thread */
	pthread_t thread;
	struct vmo_params params;
	struct vmo_conn *conn;
};

static void set_phase(struct ft_secondary *s, enum vmm_ft_phase ph, int code, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	s->st.phase = ph;
	if (code) {
		s->st.code = code;
		snprintf(s->st.error, sizeof(s->st.error), "%s", msg ? msg : kb_strerror(code));
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	vmm_vm_notify(s->vm);
}

static int accept_one(struct ft_secondary *s, struct kb_errmsg *err)
{
	struct pollfd pf = {.fd = s->listen_fd, .events = POLLIN};
	uint32_t index;
	int fd, rv;

	rv = poll(&pf, 1, ACCEPT_TIMEOUT_MS);
	if (rv == 0) {
		kb_errmsg_setf(err, "no FT stream from the primary in %d s",
			       ACCEPT_TIMEOUT_MS / 1000);
		return KB_ETIMEOUT;
	}
	if (rv < 0 || (pf.revents & POLLIN) == 0) {
		rv = rv < 0 ? -errno : KB_ECANCELED;
		kb_errmsg_setf(err, "waiting for the FT stream: %s", kb_strerror(rv));
		return rv;
	}
	fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "accepting the FT stream: %s", kb_strerror(rv));
		return rv;
	}
	rv = vmo_server_hello(fd, &s->params, &s->conn, &index, err);
	if (rv < 0) {
		close(fd);
		kb_errmsg_wrapf(err, "the FT stream's hello");
	}
	return rv;
}

static void stats_to_status(struct ft_secondary *s)
{
	struct ft_stage_stats ss;

	ft_stage_stats(s->stage, &ss);
	pthread_mutex_lock(&s->lock);
	s->st.checkpoint = ss.applied;
	s->st.sync_bytes = (ss.sync_pages << 12) + ss.sync_disk_bytes;
	s->st.last_ckpt_bytes = (ss.last_pages << 12) + ss.last_disk_bytes + ss.last_state_len;
	s->st.last_pause_us = ss.last_apply_ns / 1000; /* how long the apply held the copy */
	if (s->conn)
		s->st.bytes = vmo_conn_bytes_received(s->conn) + vmo_conn_bytes_sent(s->conn);
	pthread_mutex_unlock(&s->lock);
}

static void *receiver(void *arg)
{
	struct ft_secondary *s = arg;
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	bool aborted = false;
	int rv;

	pthread_setname_np(pthread_self(), "ft-secondary");
	rv = accept_one(s, &err);
	if (rv == 0) {
		set_phase(s, VMM_FT_SYNCING, 0, NULL);
		kb_log(s->vm->log, KB_LOG_INFO, "FT: the primary's stream is open; syncing");
	}
	while (rv == 0) {
		rv = vmo_recv(s->conn, &rec, &err);
		if (rv < 0)
			break;
		if (rec.type == VMO_ABORT) {
			kb_errmsg_setf(&err, "the primary ended FT: %s", rec.u.abort.text);
			rv = rec.u.abort.code < 0 ? rec.u.abort.code : KB_ECANCELED;
			aborted = true; /* FT is over on purpose: nothing to take over */
			break;
		}
		rv = ft_stage_feed(s->stage, &rec, &err);
		if (rv == FT_FEED_SYNC) {
			rv = vmo_send_sync(s->conn, VMO_SYNCED, rec.u.sync_seq, &err);
		} else if (rv == FT_FEED_APPLIED) {
			uint64_t applied = rec.u.ckpt_end.ckpt;
			rv = vmo_send_ckpt(s->conn, VMO_ACK, applied, &err);
			stats_to_status(s);
			if (applied == 1) {
				/* checkpoints come every epoch from now on: a silence longer
				 * than SILENCE_MS is a primary gone (a dead host sends nothing) */
				struct timeval tv = {.tv_sec = SILENCE_MS / 1000,
						     .tv_usec = (SILENCE_MS % 1000) * 1000};
				(void)setsockopt(vmo_conn_fd(s->conn), SOL_SOCKET, SO_RCVTIMEO, &tv,
						 sizeof(tv));
				set_phase(s, VMM_FT_PROTECTED, 0, NULL);
				kb_log(s->vm->log, KB_LOG_INFO,
				       "FT: checkpoint 1 applied; protected");
			}
		} else if (rv < 0) {
			struct kb_errmsg e2 = {{0}};
			(void)vmo_send_abort(s->conn, rv, err.msg, &e2);
		}
	}
	stats_to_status(s);
	pthread_mutex_lock(&s->lock);
	bool stop = s->stop_req;
	pthread_mutex_unlock(&s->lock);
	struct ft_stage_stats ss;
	ft_stage_stats(s->stage, &ss);
	if (stop) {
		/* a takeover or a stop shut the stream: they set the phase */
	} else if (!aborted && ss.applied > 0) {
		kb_log(
		    s->vm->log, KB_LOG_WARN,
		    "FT: the primary's stream ended (%s); checkpoint %llu is ready for a takeover",
		    err.msg, (unsigned long long)ss.applied);
		set_phase(s, VMM_FT_LOST, rv, err.msg);
	} else {
		kb_log(s->vm->log, KB_LOG_WARN, "FT secondary ends: %s", err.msg);
		set_phase(s, VMM_FT_FAILED, rv, err.msg);
		vmm_vm_stop(s->vm, VMM_STOP_MIGRATION_FAILED, err.msg);
	}
	pthread_mutex_lock(&s->lock);
	s->thread_running = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int ft_secondary_create(struct vmm_vm *vm, int listen_fd, const char *const *disks, int nr_disks,
			const struct vmm_fence_config *fence, struct ft_secondary **out,
			struct kb_errmsg *err)
{
	struct ft_secondary *s;
	int rv;

	*out = NULL;
	if (nr_disks < 0 || nr_disks > (int)VMO_DISK_MAX) {
		close(listen_fd);
		kb_errmsg_setf(err, "FT: at most %u disks", VMO_DISK_MAX);
		return KB_ECONFIG;
	}
	s = kb_calloc(1, sizeof(*s));
	if (s == NULL) {
		close(listen_fd);
		return -ENOMEM;
	}
	s->vm = vm;
	s->listen_fd = listen_fd;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->st.secondary = true;
	s->st.phase = VMM_FT_CONNECTING;
	s->target.mem = vm->mem.base;
	s->target.pages = vm->mem.size / VMO_PAGE_SIZE;
	s->target.vmem = &vm->mem;
	s->target.nr_disks = (uint32_t)nr_disks;
	for (int i = 0; i < (int)VMO_DISK_MAX; i++)
		s->target.disk_fds[i] = -1;
	for (int i = 0; i < nr_disks; i++) {
		struct stat sb;
		s->target.disk_fds[i] = open(disks[i], O_WRONLY | O_CLOEXEC);
		if (s->target.disk_fds[i] < 0 || fstat(s->target.disk_fds[i], &sb) < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "FT: opening the disk copy %s: %s", disks[i],
				       kb_strerror(rv));
			ft_secondary_destroy(s);
			return rv;
		}
		s->target.disk_size[i] = (uint64_t)sb.st_size;
	}
	rv = ft_stage_create(&s->target, &s->stage);
	if (rv < 0) {
		kb_errmsg_setf(err, "FT: the checkpoint stage: %s", kb_strerror(rv));
		ft_secondary_destroy(s);
		return rv;
	}
	if (fence != NULL && (fence->hb_path != NULL || fence->lock_path != NULL)) {
		s->fcfg = *fence;
		s->fence_on = true;
		snprintf(s->hb_path, sizeof(s->hb_path), "%s",
			 fence->hb_path ? fence->hb_path : "");
		snprintf(s->lock_path, sizeof(s->lock_path), "%s",
			 fence->lock_path ? fence->lock_path : "");
		snprintf(s->vm_uuid, sizeof(s->vm_uuid), "%s",
			 fence->vm_uuid ? fence->vm_uuid : "");
		s->fcfg.hb_path = fence->hb_path ? s->hb_path : NULL;
		s->fcfg.lock_path = fence->lock_path ? s->lock_path : NULL;
		s->fcfg.vm_uuid = s->vm_uuid;
	}
	*out = s;
	return 0;
}

static void stop_receiver(struct ft_secondary *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop_req = true;
	bool started = s->started;
	pthread_mutex_unlock(&s->lock);
	if (!started)
		return;
	if (s->conn != NULL)
		vmo_conn_shutdown(s->conn);
	shutdown(s->listen_fd, SHUT_RDWR); /* a receiver still in accept */
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	s->started = false;
	pthread_mutex_unlock(&s->lock);
}

void ft_secondary_destroy(struct ft_secondary *s)
{
	if (s == NULL)
		return;
	stop_receiver(s);
	vmm_fence_stop(s->fence);
	vmo_conn_free(s->conn);
	ft_stage_destroy(s->stage);
	for (int i = 0; i < (int)VMO_DISK_MAX; i++) {
		if (s->target.disk_fds[i] >= 0)
			close(s->target.disk_fds[i]);
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	explicit_bzero(&s->params, sizeof(s->params));
	kb_free(s);
}

int ft_secondary_in(struct ft_secondary *s, const struct vmm_ft_in *rq, struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&s->lock);
	bool busy = s->started || s->st.phase != VMM_FT_CONNECTING;
	pthread_mutex_unlock(&s->lock);
	if (busy) {
		kb_errmsg_setf(err, "this secondary already takes a stream (phase %s)",
			       vmm_ft_phase_name(s->st.phase));
		return KB_ESTATE;
	}
	s->params = (struct vmo_params){
	    .count = 1, .encrypt = rq->encrypt, .ft = true, .guest_pages = s->target.pages};
	memcpy(s->params.key, rq->key, VMO_KEY_SIZE);
	memcpy(s->params.id, rq->id, VMO_ID_SIZE);
	pthread_mutex_lock(&s->lock);
	s->started = true;
	s->thread_running = true;
	s->stop_req = false;
	pthread_mutex_unlock(&s->lock);
	rv = -pthread_create(&s->thread, NULL, receiver, s);
	if (rv < 0) {
		pthread_mutex_lock(&s->lock);
		s->started = false;
		s->thread_running = false;
		pthread_mutex_unlock(&s->lock);
		kb_errmsg_setf(err, "starting the FT receiver: %s", kb_strerror(rv));
		return rv;
	}
	kb_log(s->vm->log, KB_LOG_INFO, "FT secondary: waiting for the primary's stream (%s)",
	       rq->encrypt ? "encrypted" : "plain");
	return 0;
}

void ft_secondary_status(struct ft_secondary *s, struct vmm_ft_status *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	pthread_mutex_unlock(&s->lock);
}

int ft_secondary_takeover(struct ft_secondary *s, uint64_t epoch, struct kb_errmsg *err)
{
	const uint8_t *state;
	size_t len;
	int rv;

	pthread_mutex_lock(&s->lock);
	enum vmm_ft_phase ph = s->st.phase;
	uint64_t applied = s->st.checkpoint;
	pthread_mutex_unlock(&s->lock);
	if (ph == VMM_FT_RUNNING) {
		kb_errmsg_setf(err, "the guest already runs here");
		return KB_ESTATE;
	}
	if (applied == 0) {
		kb_errmsg_setf(err, "no checkpoint was applied here: nothing to take over (phase %s)",
			       vmm_ft_phase_name(ph));
		return KB_ESTATE;
	}
	stop_receiver(s);
	state = ft_stage_state(s->stage, &len);
	if (state == NULL) {
		kb_errmsg_setf(err,
			       "no checkpoint was applied here: nothing to take over (phase %s)",
			       vmm_ft_phase_name(ph));
		return KB_ESTATE;
	}
	uint64_t t0 = kb_now_ns();
	rv = vmm_state_load_buf(s->vm, state, len, VMM_STATE_NO_MEMORY, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "loading checkpoint %llu's state",
				(unsigned long long)s->st.checkpoint);
		return rv;
	}
	if (s->fence_on) {
		rv = vmm_fence_claim(s->vm, &s->fcfg, epoch, &s->fence, err);
		if (rv < 0)
			return rv;
	}
	rv = vmm_vm_resume(s->vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "resuming the guest: %s", kb_strerror(rv));
		return rv;
	}
	int nics = vmm_virtio_net_announce(s->vm);
	set_phase(s, VMM_FT_RUNNING, 0, NULL);
	kb_log(s->vm->log, KB_LOG_INFO,
	       "FT takeover: the guest runs here from checkpoint %llu at epoch %llu (%llu us; %d "
	       "NIC(s) announced)",
	       (unsigned long long)s->st.checkpoint, (unsigned long long)epoch,
	       (unsigned long long)((kb_now_ns() - t0) / 1000), nics);
	return 0;
}

int ft_secondary_stop(struct ft_secondary *s, struct kb_errmsg *err)
{
	pthread_mutex_lock(&s->lock);
	enum vmm_ft_phase ph = s->st.phase;
	pthread_mutex_unlock(&s->lock);
	if (ph == VMM_FT_RUNNING) {
		kb_errmsg_setf(err, "the guest runs here: it is no secondary any more");
		return KB_ESTATE;
	}
	stop_receiver(s);
	set_phase(s, VMM_FT_OFF, 0, NULL);
	vmm_vm_stop(s->vm, VMM_STOP_MIGRATION_FAILED, "FT secondary stopped");
	return 0;
}

bool ft_secondary_running(struct ft_secondary *s)
{
	pthread_mutex_lock(&s->lock);
	bool r = s->st.phase == VMM_FT_RUNNING;
	pthread_mutex_unlock(&s->lock);
	return r;
}
