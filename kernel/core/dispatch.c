/*
 * Request dispatch: one VmkRequest in, one packed VmkReply frame out (thread-pool
 * thread). VM operations go to kernel/vm, datastore and network ones through subsys.c.
 * Every error reply carries the layer-by-layer message from the operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernel/core/core.h"
#include "kernel/core/server.h"
#include "kernel/core/subsys.h"
#include "kernel/vm/ft.h"
#include "kernel/vm/monitor.h"
#include "kernel/vm/stats.h"
#include "kernel/vm/vm.h"
#include "lib/heap.h"
#include "lib/time.h"

#define CONSOLE_TAIL_MAX (64u << 10)

struct vminfo_slot {
	Keel__Vmk__VmInfo info;
	Keel__Vmk__VmSpec *spec;
	Keel__Vmk__VmMonitorInfo mon;
	char name[64], uuid[40], ds[64], path[PATH_MAX], event[256], con[PATH_MAX],
	    conlog[PATH_MAX];
};

static void fill_info(struct vmk_vm *vm, struct vminfo_slot *s)
{
	keel__vmk__vm_info__init(&s->info);
	pthread_mutex_lock(&vm->lock);
	snprintf(s->name, sizeof(s->name), "%s", vm->cfg.name);
	snprintf(s->uuid, sizeof(s->uuid), "%s", vm->cfg.uuid);
	snprintf(s->ds, sizeof(s->ds), "%s", vm->datastore);
	snprintf(s->path, sizeof(s->path), "%s", vm->vmx_path);
	snprintf(s->event, sizeof(s->event), "%s", vm->last_event);
	vmk_vm_console_path(vm, s->con, sizeof(s->con));
	vmk_vm_file_path(vm, "console.log", s->conlog, sizeof(s->conlog));
	s->info.power_state =
	    (char *)(vm->ft != NULL && vm->power == VMK_INCOMING ? "ft-secondary"
								 : vmk_power_name(vm->power));
	s->info.pid = vm->power == VMK_POWERED_ON ? (uint32_t)vm->pid : 0;
	s->info.powered_on_ms =
	    vm->power == VMK_POWERED_ON ? (kb_now_ns() - vm->powered_on_ns) / KB_NSEC_PER_MSEC : 0;
	s->spec = NULL;
	if (vmk_vmx_to_spec(&vm->cfg, &s->spec) < 0)
		s->spec = NULL;
	vmk_vm_monitor_info(vm, &s->mon);
	pthread_mutex_unlock(&vm->lock);
	s->info.monitor = &s->mon;
	s->info.name = s->name;
	s->info.uuid = s->uuid;
	s->info.datastore = s->ds;
	s->info.vmx_path = s->path;
	s->info.last_event = s->event;
	s->info.console_socket = s->con;
	s->info.console_log = s->conlog;
	s->info.spec = s->spec;
}

static int console_tail(struct vmk_vm *vm, uint32_t want, ProtobufCBinaryData *out)
{
	char path[PATH_MAX];
	int fd;

	if (want == 0 || want > CONSOLE_TAIL_MAX)
		want = want ? CONSOLE_TAIL_MAX : 4096;
	vmk_vm_file_path(vm, "console.log", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)want ? end - (off_t)want : 0;
	out->data = kb_malloc(want);
	ssize_t n = out->data ? pread(fd, out->data, want, from) : -1;
	close(fd);
	out->len = n > 0 ? (size_t)n : 0;
	return 0;
}

static const char *vm_key(const Keel__Vmk__VmkRequest *rq)
{
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER:
		return rq->vm_unregister->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY:
		return rq->vm_destroy->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RECONFIGURE:
		return rq->vm_reconfigure->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON:
		return rq->vm_power_on->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF:
		return rq->vm_power_off->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RESET:
		return rq->vm_reset->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND:
		return rq->vm_suspend->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME:
		return rq->vm_resume->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_GET:
		return rq->vm_get->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE:
		return rq->vm_console->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MONITOR:
		return rq->vm_monitor->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_OUT:
		return rq->vm_migrate_out->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_STATUS:
		return rq->vm_migrate_status->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_CANCEL:
		return rq->vm_migrate_cancel->vm;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_COMMIT:
		return rq->vm_migrate_commit->vm;
	default:
		return NULL;
	}
}

static int pack(Keel__Vmk__VmkReply *rp, struct kb_buf *out)
{
	size_t n = keel__vmk__vmk_reply__get_packed_size(rp);
	int rv;

	kb_buf_init(out, 0);
	rv = kb_buf_put_u32be(out, (uint32_t)n);
	rv = rv ?: kb_buf_reserve(out, n);
	if (rv == 0) {
		keel__vmk__vmk_reply__pack(rp, out->data + out->len);
		out->len += n;
	}
	return rv;
}

void vmk_dispatch(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq, struct kb_buf *out)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__HostInfo hi = KEEL__VMK__HOST_INFO__INIT;
	Keel__Vmk__VmkMigrateInfo mi = KEEL__VMK__VMK_MIGRATE_INFO__INIT;
	struct kb_errmsg err = {{0}};
	struct vmk_vm_placed placed = {0};
	struct vminfo_slot *slots = NULL;
	Keel__Vmk__VmInfo **infos = NULL;
	char **log_lines = NULL, *log_text = NULL, hostname[256];
	struct vmk_vm *vm = NULL;
	uint64_t t0 = kb_now_ns();
	int rv = 0;

	const char *key = vm_key(rq);
	if (key != NULL) {
		vm = vmk_vm_find(h, key);
		if (vm == NULL) {
			kb_errmsg_setf(&err, "no VM named %s", key[0] ? key : "(empty)");
			rv = KB_ENOTFOUND;
			goto reply;
		}
	}
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE:
		rv = vmk_vm_create(h, rq->vm_create->spec, &vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER:
		rv = vmk_vm_register(h, rq->vm_register->vmx_path, rq->vm_register->from_cluster,
				     &vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER:
		rv = vmk_vm_unregister(h, vm, rq->vm_unregister->from_cluster, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY:
		rv = vmk_vm_destroy(h, vm, &err);
		vm = NULL;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RECONFIGURE:
		rv = vmk_vm_reconfigure(vm, rq->vm_reconfigure->spec, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON:
		rv = vmk_vm_power_on_as(vm, rq->vm_power_on->reconcile, &placed, &err);
		if (rv == 0 && placed.host[0]) { /* docs/drs.md, "Initial placement" */
			rp.placed_on = placed.host;
			rp.placed_on_id = placed.host_id;
			rp.placement = placed.placement;
		}
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF:
		rv = vmk_vm_power_off(vm, rq->vm_power_off->fence, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RESET:
		rv = vmk_vm_reset(vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND:
		rv = vmk_vm_suspend(vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME:
		rv = vmk_vm_resume(vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_GET:
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MONITOR:
		rv = vmk_vm_monitor_set(vm, rq->vm_monitor->enabled, rq->vm_monitor->timeout_s,
					rq->vm_monitor->max_resets, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_IN:
		rv = vmk_vm_migrate_in(h, rq->vm_migrate_in, &mi, &vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_OUT:
		rv = vmk_vm_migrate_out(vm, rq->vm_migrate_out, &mi, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_STATUS:
		rv = vmk_vm_migrate_status(vm, &mi, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_CANCEL:
		rv = vmk_vm_migrate_cancel(vm, rq->vm_migrate_cancel->reason, &mi, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_COMMIT:
		rv = vmk_vm_migrate_commit(vm, rq->vm_migrate_commit->epoch, &mi, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_SECONDARY:
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_START:
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS:
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STOP:
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_TAKEOVER:
		rv = vmk_vm_ft_handle(h, rq, &rp, &vm, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE:
		rv = console_tail(vm, rq->vm_console->tail_bytes, &rp.console_tail);
		if (rv < 0)
			kb_errmsg_setf(&err, "reading the console log: %s", kb_strerror(rv));
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_LIST: {
		size_t n = 0, i = 0;
		struct kb_list *pos;
		pthread_mutex_lock(&h->lock);
		kb_list_for_each(pos, &h->vms) n++;
		slots = kb_calloc(n ? n : 1, sizeof(*slots));
		infos = kb_calloc(n ? n : 1, sizeof(*infos));
		if (slots == NULL || infos == NULL) {
			pthread_mutex_unlock(&h->lock);
			rv = -ENOMEM;
			break;
		}
		kb_list_for_each(pos, &h->vms)
		{
			fill_info(kb_list_entry(pos, struct vmk_vm, link), &slots[i]);
			infos[i] = &slots[i].info;
			i++;
		}
		pthread_mutex_unlock(&h->lock);
		rp.vms = infos;
		rp.n_vms = n;
		break;
	}
	case KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO:
		vmk_host_info(h, &hi, hostname, sizeof(hostname));
		rp.host = &hi;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_LOG: {
		unsigned want = rq->log->lines ? rq->log->lines : 100;
		if (want > KB_LOG_RING_LINES)
			want = KB_LOG_RING_LINES;
		size_t size = (size_t)want * KB_LOG_LINE_MAX + 1;
		log_text = kb_malloc(size);
		log_lines = kb_calloc(want ? want : 1, sizeof(char *));
		if (log_text == NULL || log_lines == NULL) {
			rv = -ENOMEM;
			break;
		}
		kb_log_recent(h->log, log_text, size, want);
		size_t n = 0;
		for (char *p = log_text, *nl; *p && n < want; p = nl + 1) {
			nl = strchr(p, '\n');
			if (nl == NULL)
				break;
			*nl = '\0';
			log_lines[n++] = p;
		}
		rp.log_lines = log_lines;
		rp.n_log_lines = n;
		break;
	}
	case KEEL__VMK__VMK_REQUEST__REQ_PERF:
		rv = vmk_stats_perf(h, rq->perf, &rp, &err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ__NOT_SET:
		kb_errmsg_setf(&err, "request names no operation");
		rv = KB_EPROTO;
		break;
	default:
		rv = vmk_subsys_handle(h, rq, &rp, &err);
		break;
	}
	if (rv == 0 && vm != NULL && rp.n_vms == 0) {
		slots = kb_calloc(1, sizeof(*slots));
		infos = kb_calloc(1, sizeof(*infos));
		if (slots != NULL && infos != NULL) {
			fill_info(vm, &slots[0]);
			infos[0] = &slots[0].info;
			rp.vms = infos;
			rp.n_vms = 1;
		}
	}
reply:
	if (rv < 0 && err.msg[0] == '\0')
		kb_errmsg_setf(&err, "%s", kb_strerror(rv));
	rp.code = rv;
	rp.error = err.msg;
	rp.elapsed_ns = kb_now_ns() - t0;
	if (mi.uuid != NULL && mi.uuid[0] != '\0')
		rp.migrate = &mi; /* vm_migrate_*, also with an error once a migration began */
	if (pack(&rp, out) < 0)
		kb_log(h->log, KB_LOG_ERROR, "cannot pack a reply");
	if (slots != NULL) {
		for (size_t i = 0; i < rp.n_vms; i++)
			vmk_vmx_spec_free(slots[i].spec);
	}
	kb_free(slots);
	kb_free(infos);
	kb_free(log_lines);
	kb_free(log_text);
	kb_free(rp.console_tail.data);
	vmk_subsys_reply_free(&rp);
	vmk_stats_reply_free(&rp);
	vmk_vm_migrate_info_free(&mi);
	vmk_vm_ft_reply_free(&rp);
}
