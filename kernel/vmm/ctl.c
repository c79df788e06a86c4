/*
 * The control loop of vmx: one thread, poll(2) over the control socket and up to
 * CTL_CLIENTS clients, the VM's notify eventfd and a signalfd. Each client's requests are
 * handled one at a time, in order; each gets exactly one reply with a code (0 or a
 * negative Keel error) and an error text. A malformed request (bad frame, undecodable
 * protobuf, no operation set) gets an error reply when possible and the connection is
 * closed; the VM is never touched by it.
 *
 * VmxMigrateOut and VmxMigrateIn start work on the migration's own threads and their
 * reply is deferred: the client's next request is not read until the migration reaches a
 * phase that answers it (source: ready or an end; destination: resumed or an end), which
 * the loop checks whenever the VM's notify eventfd fires. Other clients are served
 * meanwhile (VmxMigrateStatus, VmxMigrateCancel, VmxMigrateCommit on any connection).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel/vmm/ctl.h"
#include "kernel/vmm/dev/agent.h"
#include "kernel/vmm/state.h"
#include "kernel/vmm/stats.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmk.pb-c.h"

#define CTL_FRAME_MAX	(64u << 10)
#define AGENT_LINES_MAX 256
#define CTL_CLIENTS	4

enum ctl_pending {
	CTL_PEND_NONE,
	CTL_PEND_OUT, /* VmxMigrateOut: answered at ready, committed, aborted or failed */
	CTL_PEND_IN,  /* VmxMigrateIn: answered at resumed, aborted or failed */
};

struct ctl_client {
	int fd;
	enum ctl_pending pending;
	uint64_t t0; /* when the deferred request arrived */
};

/* Fills the migrate part of a reply from a status snapshot. */
static void fill_migrate(const struct vmm_mig_status *ms, Keel__Vmk__VmxMigrateReply *mr)
{
	mr->phase = (char *)vmm_mig_phase_name(ms->phase);
	mr->round = ms->round;
	mr->bytes_sent = ms->bytes_sent;
	mr->pages_sent = ms->pages_sent;
	mr->zero_pages = ms->zero_pages;
	mr->dirty_rate = ms->dirty_rate;
	mr->bandwidth = ms->bandwidth;
	mr->est_downtime_us = ms->est_downtime_us;
	mr->throttle_pct = ms->throttle_pct;
	mr->downtime_us = ms->downtime_us;
	mr->total_us = ms->total_us;
	mr->streams = ms->streams;
	mr->error_code = ms->code;
	mr->error = (char *)ms->error;
}

static int need_mig(struct vmm_vm *vm, struct kb_errmsg *err)
{
	if (vm->mig_ops == NULL) {
		kb_errmsg_setf(err, "this vmx cannot migrate");
		return KB_ENOTSUP;
	}
	return 0;
}

static int copy_bytes(uint8_t *out, size_t size, ProtobufCBinaryData in, const char *what,
		      struct kb_errmsg *err)
{
	if (in.len != size) {
		kb_errmsg_setf(err, "migration %s must be %zu bytes, not %zu", what, size, in.len);
		return KB_ECONFIG;
	}
	memcpy(out, in.data, size);
	return 0;
}

static int migrate_out(struct vmm_vm *vm, const Keel__Vmk__VmxMigrateOut *m, struct kb_errmsg *err)
{
	struct vmm_mig_out o = {0};
	int rv = need_mig(vm, err);

	rv = rv ?: copy_bytes(o.id, sizeof(o.id), m->id, "id", err);
	rv = rv ?: copy_bytes(o.key, sizeof(o.key), m->key, "key", err);
	if (rv < 0)
		return rv;
	if (m->n_endpoints < 1 || m->n_endpoints > VMM_MIG_MAX_ENDPOINTS) {
		kb_errmsg_setf(err, "a migration needs 1..%d endpoints, not %zu",
			       VMM_MIG_MAX_ENDPOINTS, m->n_endpoints);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < m->n_endpoints; i++)
		o.endpoints[i] = m->endpoints[i];
	o.nr_endpoints = (int)m->n_endpoints;
	o.streams_per_endpoint = m->streams_per_endpoint;
	o.encrypt = m->encrypt;
	o.downtime_ms = m->downtime_ms;
	o.max_rounds = m->max_rounds;
	o.netns = m->netns != NULL && m->netns[0] != '\0' ? m->netns : NULL;
	return vm->mig_ops->out(vm->mig_arg, &o, err);
}

static int migrate_in(struct vmm_vm *vm, const Keel__Vmk__VmxMigrateIn *m, struct kb_errmsg *err)
{
	struct vmm_mig_in in = {0};
	int rv = need_mig(vm, err);

	rv = rv ?: copy_bytes(in.id, sizeof(in.id), m->id, "id", err);
	rv = rv ?: copy_bytes(in.key, sizeof(in.key), m->key, "key", err);
	if (rv < 0)
		return rv;
	in.count = m->count;
	in.encrypt = m->encrypt;
	return vm->mig_ops->in(vm->mig_arg, &in, err);
}

/* A reset rewrites guest memory behind the dirty log: a migration under way cannot carry
 * it, so it is cancelled first (the guest stays here). */
static void end_migration(struct vmm_vm *vm)
{
	struct kb_errmsg err = {{0}};

	if (vm->mig_ops != NULL && vm->mig_ops->cancel(vm->mig_arg, &err) == 0)
		kb_log(vm->log, KB_LOG_WARN, "guest reset: the migration under way is cancelled");
}

/* ---- FT ---------------------------------------------------------------------------------- */

static void fill_ft(const struct vmm_ft_status *fs, Keel__Vmk__VmxFtReply *fr)
{
	fr->role = (char *)(fs->primary ? "primary" : fs->secondary ? "secondary" : "");
	fr->phase = (char *)vmm_ft_phase_name(fs->phase);
	fr->checkpoint = fs->checkpoint;
	fr->epoch_ms = fs->epoch_ms;
	fr->last_pause_us = fs->last_pause_us;
	fr->max_pause_us = fs->max_pause_us;
	fr->last_ckpt_bytes = fs->last_ckpt_bytes;
	fr->lag_us = fs->lag_us;
	fr->held_frames = fs->held_frames;
	fr->dropped_frames = fs->dropped_frames;
	fr->sync_bytes = fs->sync_bytes;
	fr->bytes = fs->bytes;
	fr->error_code = fs->code;
	fr->error = (char *)fs->error;
}

static int copy_id_key(const ProtobufCBinaryData *id, const ProtobufCBinaryData *key,
		       uint8_t *id_out, uint8_t *key_out, struct kb_errmsg *err)
{
	if (id->len != VMM_MIG_ID_SIZE || key->len != VMM_MIG_KEY_SIZE) {
		kb_errmsg_setf(err, "FT needs a %d-byte id and a %d-byte key", VMM_MIG_ID_SIZE,
			       VMM_MIG_KEY_SIZE);
		return KB_ECONFIG;
	}
	memcpy(id_out, id->data, VMM_MIG_ID_SIZE);
	memcpy(key_out, key->data, VMM_MIG_KEY_SIZE);
	return 0;
}

/* VmxFt*: answered at once; fs/fr carry the status after the request. */
static int ft_request(struct vmm_vm *vm, const Keel__Vmk__VmxRequest *rq, Keel__Vmk__VmxReply *rp,
		      Keel__Vmk__VmxFtReply *fr, struct vmm_ft_status *fs, struct kb_errmsg *err)
{
	int rv = 0;

	if (vm->ft_ops == NULL) {
		kb_errmsg_setf(err, "this vmx has no FT");
		return KB_ENOTSUP;
	}
	switch (rq->req_case) {
	case KEEL__VMK__VMX_REQUEST__REQ_FT_START: {
		const Keel__Vmk__VmxFtStart *m = rq->ft_start;
		struct vmm_ft_start fst = {.endpoint = m->endpoint,
					   .encrypt = m->encrypt,
					   .epoch_ms = m->epoch_ms,
					   .netns = m->netns && m->netns[0] ? m->netns : NULL};
		rv = copy_id_key(&m->id, &m->key, fst.id, fst.key, err);
		rv = rv ?: vm->ft_ops->start(vm->ft_arg, &fst, err);
		explicit_bzero(fst.key, sizeof(fst.key));
		break;
	}
	case KEEL__VMK__VMX_REQUEST__REQ_FT_IN: {
		struct vmm_ft_in fin = {.encrypt = rq->ft_in->encrypt};
		rv = copy_id_key(&rq->ft_in->id, &rq->ft_in->key, fin.id, fin.key, err);
		rv = rv ?: vm->ft_ops->in(vm->ft_arg, &fin, err);
		explicit_bzero(fin.key, sizeof(fin.key));
		break;
	}
	case KEEL__VMK__VMX_REQUEST__REQ_FT_STATUS:
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_FT_STOP:
		rv = vm->ft_ops->stop(vm->ft_arg, err);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_FT_TAKEOVER:
		rv = vm->ft_ops->takeover(vm->ft_arg, rq->ft_takeover->epoch, err);
		break;
	default:
		return KB_EPROTO;
	}
	vm->ft_ops->status(vm->ft_arg, fs);
	fill_ft(fs, fr);
	rp->ft = fr;
	return rv;
}

static int do_request(struct vmm_vm *vm, const Keel__Vmk__VmxRequest *rq, Keel__Vmk__VmxReply *rp,
		      Keel__Vmk__VmxStatsReply *st, Keel__Vmk__VmxStatusReply *ss,
		      Keel__Vmk__VmxVcpuStats *vs, Keel__Vmk__VmxVcpuStats **vsp, char **lines,
		      Keel__Vmk__VmxMigrateReply *mr, struct vmm_mig_status *ms,
		      Keel__Vmk__VmxFtReply *fr, struct vmm_ft_status *fs,
		      enum ctl_pending *pending, struct kb_errmsg *err)
{
	int rv = 0;

	switch (rq->req_case) {
	case KEEL__VMK__VMX_REQUEST__REQ_POWER_ON:
		rv = vmm_vm_resume(vm);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_POWER_OFF:
		vmm_vm_stop(vm, VMM_STOP_POWEROFF, "powered off by request");
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_RESET:
		end_migration(vm);
		rv = vmm_vm_reset(vm);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_PAUSE:
		rv = vmm_vm_pause(vm);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_RESUME:
		rv = vmm_vm_resume(vm);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_SAVE:
		if (rq->save->path == NULL || rq->save->path[0] == '\0') {
			kb_errmsg_setf(err, "save: no path given");
			return KB_ECONFIG;
		}
		rv = vmm_state_save_file(vm, rq->save->path, err);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_RESTORE:
		if (rq->restore->path == NULL || rq->restore->path[0] == '\0') {
			kb_errmsg_setf(err, "restore: no path given");
			return KB_ECONFIG;
		}
		rv = vmm_state_restore_file(vm, rq->restore->path, err);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_STATS: {
		struct vmm_stats s;
		vmm_stats_get(vm, &s);
		st->mem_size = s.mem_size;
		st->mem_touched = s.mem_touched;
		st->mem_large_pages = vm->mem.large;
		st->vmm_rss = s.vmm_rss;
		st->heartbeat_seq = s.heartbeat_seq;
		st->heartbeat_age_ms = s.heartbeat_age_ms;
		for (int i = 0; i < vm->nr_vcpus; i++) {
			struct vmm_vcpu *c = &vm->vcpus[i];
			keel__vmk__vmx_vcpu_stats__init(&vs[i]);
			vs[i].id = (uint32_t)i;
			vs[i].run_ns = c->run_ns;
			vs[i].exits_io = c->exits[VMM_EXIT_IO];
			vs[i].exits_mmio = c->exits[VMM_EXIT_MMIO];
			vs[i].exits_hlt = c->exits[VMM_EXIT_HLT];
			vs[i].exits_intr = c->exits[VMM_EXIT_INTR];
			vs[i].exits_shutdown = c->exits[VMM_EXIT_SHUTDOWN];
			vs[i].exits_other = c->exits[VMM_EXIT_OTHER];
			vsp[i] = &vs[i];
		}
		st->n_vcpus = (size_t)vm->nr_vcpus;
		st->vcpus = vsp;
		rp->stats = st;
		break;
	}
	case KEEL__VMK__VMX_REQUEST__REQ_STATUS:
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_AGENT_SEND:
		if (rq->agent_send->line == NULL || strchr(rq->agent_send->line, '\n') != NULL ||
		    strlen(rq->agent_send->line) > 255) {
			kb_errmsg_setf(err, "agent line must be one line of at most 255 bytes");
			return KB_ECONFIG;
		}
		rv = vmm_agent_send(vm->agent, rq->agent_send->line);
		if (rv < 0)
			kb_errmsg_setf(err, "the guest is not reading its agent channel");
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_AGENT_RECV:
		rp->n_agent_lines = (size_t)vmm_agent_take_lines(vm->agent, lines, AGENT_LINES_MAX);
		rp->agent_lines = lines;
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_OUT:
		rv = migrate_out(vm, rq->migrate_out, err);
		if (rv == 0)
			*pending = CTL_PEND_OUT;
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_IN:
		rv = migrate_in(vm, rq->migrate_in, err);
		if (rv == 0)
			*pending = CTL_PEND_IN;
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_STATUS:
		rv = need_mig(vm, err);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_COMMIT:
		rv = need_mig(vm, err);
		rv = rv
			 ?: vm->mig_ops->commit(vm->mig_arg, rq->migrate_commit->commit,
						rq->migrate_commit->epoch, err);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_CANCEL:
		rv = need_mig(vm, err);
		rv = rv ?: vm->mig_ops->cancel(vm->mig_arg, err);
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_FT_START:
	case KEEL__VMK__VMX_REQUEST__REQ_FT_IN:
	case KEEL__VMK__VMX_REQUEST__REQ_FT_STATUS:
	case KEEL__VMK__VMX_REQUEST__REQ_FT_STOP:
	case KEEL__VMK__VMX_REQUEST__REQ_FT_TAKEOVER:
		rv = ft_request(vm, rq, rp, fr, fs, err);
		break;
	default:
		kb_errmsg_setf(err, "request names no operation");
		return KB_EPROTO;
	}
	if (rq->req_case >= KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_OUT &&
	    rq->req_case <= KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_CANCEL && vm->mig_ops != NULL &&
	    *pending == CTL_PEND_NONE) {
		vm->mig_ops->status(vm->mig_arg, ms);
		fill_migrate(ms, mr);
		rp->migrate = mr;
	}
	if (rv < 0 && err->msg[0] == '\0')
		kb_errmsg_setf(err, "%s", kb_strerror(rv));
	return rv;
}

/* Sends a reply with the VM's status; false when the client is gone. */
static bool send_reply(struct vmm_vm *vm, int fd, Keel__Vmk__VmxReply *rp, int rv,
		       struct kb_errmsg *err, uint64_t t0)
{
	Keel__Vmk__VmxStatusReply ss = KEEL__VMK__VMX_STATUS_REPLY__INIT;

	pthread_mutex_lock(&vm->lock);
	ss.state = (char *)vmm_state_name(vm->state);
	ss.stop_reason = (char *)vmm_stop_reason_name(vm->stop_reason);
	ss.stop_message = vm->stop_msg;
	ss.test_exit_code = vm->test_exit_code;
	pthread_mutex_unlock(&vm->lock);
	rp->status = &ss;
	rp->code = rv;
	rp->error = err->msg;
	rp->elapsed_ns = kb_now_ns() - t0;
	if (rv < 0)
		kb_log(vm->log, KB_LOG_WARN, "control request failed: %s", err->msg);
	return kb_frame_send_pb(fd, &rp->base) == 0;
}

/* Answers a deferred migration request once its phase says so. Returns false when the
 * client must be closed. */
static bool answer_pending(struct vmm_vm *vm, struct ctl_client *c)
{
	Keel__Vmk__VmxReply rp = KEEL__VMK__VMX_REPLY__INIT;
	Keel__Vmk__VmxMigrateReply mr = KEEL__VMK__VMX_MIGRATE_REPLY__INIT;
	struct vmm_mig_status ms;
	struct kb_errmsg err = {{0}};
	int rv = 0;

	memset(&ms, 0, sizeof(ms));
	vm->mig_ops->status(vm->mig_arg, &ms);
	switch (ms.phase) {
	case VMM_MIG_READY:
		if (c->pending != CTL_PEND_OUT)
			return true;
		break;
	case VMM_MIG_RESUMED:
		if (c->pending != CTL_PEND_IN)
			return true;
		break;
	case VMM_MIG_COMMITTED:
	case VMM_MIG_ABORTED:
	case VMM_MIG_FAILED:
		rv = ms.code < 0 ? ms.code : KB_ECANCELED;
		if (ms.phase == VMM_MIG_COMMITTED)
			rv = 0;
		else
			kb_errmsg_setf(&err, "migration %s: %s", vmm_mig_phase_name(ms.phase),
				       ms.error[0] ? ms.error : kb_strerror(rv));
		break;
	default:
		return true;
	}
	fill_migrate(&ms, &mr);
	rp.migrate = &mr;
	c->pending = CTL_PEND_NONE;
	return send_reply(vm, c->fd, &rp, rv, &err, c->t0);
}

/* Serves one frame from a client. Returns false when the client must be closed. */
static bool serve(struct vmm_vm *vm, struct ctl_client *c)
{
	int fd = c->fd;
	Keel__Vmk__VmxReply rp = KEEL__VMK__VMX_REPLY__INIT;
	Keel__Vmk__VmxStatsReply st = KEEL__VMK__VMX_STATS_REPLY__INIT;
	Keel__Vmk__VmxStatusReply ss = KEEL__VMK__VMX_STATUS_REPLY__INIT;
	Keel__Vmk__VmxMigrateReply mr = KEEL__VMK__VMX_MIGRATE_REPLY__INIT;
	Keel__Vmk__VmxFtReply fr = KEEL__VMK__VMX_FT_REPLY__INIT;
	struct vmm_mig_status ms;
	struct vmm_ft_status fs;
	enum ctl_pending pending = CTL_PEND_NONE;
	Keel__Vmk__VmxVcpuStats vs[VMM_MAX_VCPUS];
	Keel__Vmk__VmxVcpuStats *vsp[VMM_MAX_VCPUS];
	char *lines[AGENT_LINES_MAX];
	struct kb_errmsg err = {{0}};
	struct kb_buf in;
	bool keep = true;
	int rv;

	kb_buf_init(&in, CTL_FRAME_MAX);
	rv = kb_frame_recv(fd, &in, CTL_FRAME_MAX);
	if (rv == -EPIPE) {
		kb_buf_close(&in);
		return false;
	}
	uint64_t t0 = kb_now_ns();
	Keel__Vmk__VmxRequest *rq = NULL;
	if (rv < 0) {
		kb_errmsg_setf(&err, "bad control frame: %s", kb_strerror(rv));
		keep = false;
	} else {
		rq = keel__vmk__vmx_request__unpack(NULL, in.len, in.data);
		if (rq == NULL) {
			rv = KB_EPROTO;
			kb_errmsg_setf(&err, "control message is not a valid VmxRequest");
			keep = false;
		} else {
			memset(&ms, 0, sizeof(ms));
			memset(&fs, 0, sizeof(fs));
			rv = do_request(vm, rq, &rp, &st, &ss, vs, vsp, lines, &mr, &ms, &fr, &fs,
					&pending, &err);
		}
	}
	if (pending != CTL_PEND_NONE) {
		c->pending = pending;
		c->t0 = t0;
	} else if (!send_reply(vm, fd, &rp, rv, &err, t0)) {
		keep = false;
	}
	for (size_t i = 0; i < rp.n_agent_lines; i++)
		kb_free(lines[i]);
	if (rq != NULL)
		keel__vmk__vmx_request__free_unpacked(rq, NULL);
	kb_buf_close(&in);
	return keep;
}

static void close_client(struct ctl_client *c)
{
	close(c->fd);
	c->fd = -1;
	c->pending = CTL_PEND_NONE;
}

/* Answers every deferred request that is due. */
static void answer_all(struct vmm_vm *vm, struct ctl_client *cl)
{
	for (int i = 0; i < CTL_CLIENTS; i++) {
		if (cl[i].fd >= 0 && cl[i].pending != CTL_PEND_NONE && !answer_pending(vm, &cl[i]))
			close_client(&cl[i]);
	}
}

int vmm_ctl_run(struct vmm_vm *vm, int listen_fd)
{
	struct ctl_client cl[CTL_CLIENTS];
	sigset_t mask;
	int sfd;

	for (int i = 0; i < CTL_CLIENTS; i++)
		cl[i] = (struct ctl_client){.fd = -1};
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return -errno;

	for (;;) {
		struct pollfd p[3 + CTL_CLIENTS];
		int free_slot = -1;
		if (vm->mig_ops != NULL)
			answer_all(vm, cl);
		for (int i = 0; i < CTL_CLIENTS; i++) {
			if (cl[i].fd < 0 && free_slot < 0)
				free_slot = i;
			/* a client waiting for a deferred reply sends nothing we read */
			p[3 + i] = (struct pollfd){
			    .fd = cl[i].pending == CTL_PEND_NONE ? cl[i].fd : -1, .events = POLLIN};
		}
		p[0] = (struct pollfd){.fd = vm->notify_fd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
		p[2] = (struct pollfd){.fd = free_slot >= 0 ? listen_fd : -1, .events = POLLIN};
		pthread_mutex_lock(&vm->lock);
		bool stopped = vm->state == VMM_STATE_STOPPED;
		bool reset = vm->reset_req;
		pthread_mutex_unlock(&vm->lock);
		if (stopped)
			break;
		if (reset) {
			end_migration(vm);
			vmm_vm_reset(vm);
			continue;
		}
		if (poll(p, 3 + CTL_CLIENTS, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & POLLIN) {
			uint64_t v;
			if (read(vm->notify_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				kb_log(vm->log, KB_LOG_INFO, "signal %u: powering off",
				       si.ssi_signo);
				vmm_vm_stop(vm, VMM_STOP_POWEROFF, "vmx terminated by signal");
			}
		}
		if (free_slot >= 0 && (p[2].revents & POLLIN))
			cl[free_slot].fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		for (int i = 0; i < CTL_CLIENTS; i++) {
			if (p[3 + i].fd >= 0 && (p[3 + i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    cl[i].fd == p[3 + i].fd && !serve(vm, &cl[i]))
				close_client(&cl[i]);
		}
	}
	for (int i = 0; i < CTL_CLIENTS; i++) {
		if (cl[i].fd >= 0)
			close(cl[i].fd);
	}
	close(sfd);
	return 0;
}
