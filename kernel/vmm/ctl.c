/*
 * The control loop of vmx: one thread, poll(2) over the control socket and its client,
 * the VM's notify eventfd and a signalfd. Requests are handled one at a time, in order;
 * each gets exactly one reply with a code (0 or a negative Keel error) and an error text.
 * A malformed request (bad frame, undecodable protobuf, no operation set) gets an error
 * reply when possible and the connection is closed; the VM is never touched by it.
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

static int do_request(struct vmm_vm *vm, const Keel__Vmk__VmxRequest *rq, Keel__Vmk__VmxReply *rp,
		      Keel__Vmk__VmxStatsReply *st, Keel__Vmk__VmxStatusReply *ss,
		      Keel__Vmk__VmxVcpuStats *vs, Keel__Vmk__VmxVcpuStats **vsp, char **lines,
		      struct kb_errmsg *err)
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
	default:
		kb_errmsg_setf(err, "request names no operation");
		return KB_EPROTO;
	}
	if (rv < 0 && err->msg[0] == '\0')
		kb_errmsg_setf(err, "%s", kb_strerror(rv));
	return rv;
}

/* Serves one frame from client fd. Returns false when the client must be closed. */
static bool serve(struct vmm_vm *vm, int fd)
{
	Keel__Vmk__VmxReply rp = KEEL__VMK__VMX_REPLY__INIT;
	Keel__Vmk__VmxStatsReply st = KEEL__VMK__VMX_STATS_REPLY__INIT;
	Keel__Vmk__VmxStatusReply ss = KEEL__VMK__VMX_STATUS_REPLY__INIT;
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
			rv = do_request(vm, rq, &rp, &st, &ss, vs, vsp, lines, &err);
		}
	}
	pthread_mutex_lock(&vm->lock);
	ss.state = (char *)vmm_state_name(vm->state);
	ss.stop_reason = (char *)vmm_stop_reason_name(vm->stop_reason);
	ss.stop_message = vm->stop_msg;
	ss.test_exit_code = vm->test_exit_code;
	pthread_mutex_unlock(&vm->lock);
	rp.status = &ss;
	rp.code = rv;
	rp.error = err.msg;
	rp.elapsed_ns = kb_now_ns() - t0;
	if (rv < 0)
		kb_log(vm->log, KB_LOG_WARN, "control request failed: %s", err.msg);
	if (kb_frame_send_pb(fd, &rp.base) < 0)
		keep = false;
	for (size_t i = 0; i < rp.n_agent_lines; i++)
		kb_free(lines[i]);
	if (rq != NULL)
		keel__vmk__vmx_request__free_unpacked(rq, NULL);
	kb_buf_close(&in);
	return keep;
}

int vmm_ctl_run(struct vmm_vm *vm, int listen_fd)
{
	sigset_t mask;
	int sfd, client = -1;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return -errno;

	for (;;) {
		struct pollfd p[4] = {
		    {.fd = vm->notify_fd, .events = POLLIN},
		    {.fd = sfd, .events = POLLIN},
		    {.fd = client >= 0 ? -1 : listen_fd, .events = POLLIN},
		    {.fd = client, .events = POLLIN},
		};
		pthread_mutex_lock(&vm->lock);
		bool stopped = vm->state == VMM_STATE_STOPPED;
		bool reset = vm->reset_req;
		pthread_mutex_unlock(&vm->lock);
		if (stopped)
			break;
		if (reset) {
			vmm_vm_reset(vm);
			continue;
		}
		if (poll(p, 4, -1) < 0) {
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
		if (p[2].revents & POLLIN)
			client = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (client >= 0 && (p[3].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (!serve(vm, client)) {
				close(client);
				client = -1;
			}
		}
	}
	if (client >= 0)
		close(client);
	close(sfd);
	return 0;
}
