/*
 * VM monitoring: a VM whose guest heartbeat stops while its vmx runs is reset, at most
 * vmMonitoring.maxResets times an hour (HA's VM monitoring, as in vSphere).
 *
 * One thread per vmkernel wakes every VMK_MON_PERIOD_MS. Under the host lock it notes the
 * powered-on VMs with monitoring enabled and no operation in progress, then asks each
 * one's vmx for its stats (heartbeat sequence and the time since the guest's last beat, by
 * the vmx's own clock) without holding any lock. A VM is judged only when
 *   - its guest has sent at least one heartbeat (a guest without the agent is never reset),
 *   - the timeout has passed since its power-on and since the monitor's last reset of it
 *     (the grace that lets a reset guest boot and beat again), and
 *   - the last heartbeat is older than the timeout.
 * Then it is reset through vmk_vm_reset(), the operator's own path; the reset is logged
 * and recorded in the VM's last event. Past maxResets in the last hour the VM is left
 * running and the log says so once per hour.
 *
 * Failure modes: a vmx that does not answer (ending, hung control thread) is skipped this
 * round; a reset that fails is logged and counted (so a broken VM is not reset forever).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernel/vm/monitor.h"
#include "kernel/vm/vm.h"
#include "lib/heap.h"
#include "lib/time.h"

#define VMK_MON_PERIOD_MS 500
#define VMK_MON_CALL_MS	  1000
#define HOUR_NS		  (3600ull * KB_NSEC_PER_SEC)

struct vmk_monitor {
	struct vmk_host *host;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool running;
};

struct target {
	char uuid[VMK_UUID_LEN + 1];
	char ctl[PATH_MAX];
};

uint32_t vmk_vm_monitor_timeout_s(const struct vmk_vmx *cfg)
{
	return cfg->monitor.timeout_s ? cfg->monitor.timeout_s : VMK_VMX_MON_TIMEOUT_S;
}

uint32_t vmk_vm_monitor_max_resets(const struct vmk_vmx *cfg)
{
	return cfg->monitor.max_resets ? cfg->monitor.max_resets : VMK_VMX_MON_RESETS;
}

/* Resets in the hour before now (vm->lock held). */
static uint32_t resets_last_hour(const struct vmk_vm *vm, uint64_t now)
{
	uint32_t n = 0;

	for (size_t i = 0; i < VMK_VMX_MON_RESETS_MAX; i++)
		if (vm->mon.resets_ns[i] && now - vm->mon.resets_ns[i] < HOUR_NS)
			n++;
	return n;
}

static const char *state_name(const struct vmk_vm *vm, uint64_t now)
{
	uint64_t grace = (uint64_t)vmk_vm_monitor_timeout_s(&vm->cfg) * KB_NSEC_PER_SEC;

	if (!vm->cfg.monitor.enabled)
		return "off";
	if (vm->power != VMK_POWERED_ON)
		return "off";
	if (resets_last_hour(vm, now) >= vmk_vm_monitor_max_resets(&vm->cfg))
		return "reset limit reached";
	if (now - vm->powered_on_ns < grace ||
	    (vm->mon.last_reset_ns && now - vm->mon.last_reset_ns < grace))
		return "grace after power-on or reset";
	if (vm->mon.seq == 0)
		return "waiting for the first heartbeat";
	return "watching";
}

void vmk_vm_monitor_info(struct vmk_vm *vm, Keel__Vmk__VmMonitorInfo *out)
{
	uint64_t now = kb_now_ns();

	keel__vmk__vm_monitor_info__init(out);
	out->enabled = vm->cfg.monitor.enabled;
	out->timeout_s = vmk_vm_monitor_timeout_s(&vm->cfg);
	out->max_resets = vmk_vm_monitor_max_resets(&vm->cfg);
	out->resets_last_hour = resets_last_hour(vm, now);
	out->heartbeat_seq = vm->mon.seq;
	out->heartbeat_age_ms = vm->mon.seq ? (int64_t)vm->mon.age_ms : -1;
	out->state = (char *)state_name(vm, now);
}

int vmk_vm_monitor_set(struct vmk_vm *vm, bool enabled, uint32_t timeout_s, uint32_t max_resets,
		       struct kb_errmsg *err)
{
	struct vmk_vmx next;
	struct kb_buf text;
	int rv;

	if (timeout_s > VMK_VMX_MON_TIMEOUT_MAX) {
		kb_errmsg_setf(err, "monitoring timeout %u s: at most %u", timeout_s,
			       VMK_VMX_MON_TIMEOUT_MAX);
		return KB_ECONFIG;
	}
	if (max_resets > VMK_VMX_MON_RESETS_MAX) {
		kb_errmsg_setf(err, "monitoring max resets %u: at most %u per hour", max_resets,
			       VMK_VMX_MON_RESETS_MAX);
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&vm->lock);
	/* A copy made through the file format, so a failure changes nothing. */
	kb_buf_init(&text, 0);
	rv = vmk_vmx_format(&vm->cfg, &text);
	rv = rv ?: vmk_vmx_parse(&next, text.data, text.len, err);
	kb_buf_close(&text);
	if (rv == 0) {
		next.monitor.enabled = enabled;
		next.monitor.timeout_s = timeout_s;
		next.monitor.max_resets = max_resets;
		rv = vmk_vmx_save(&next, vm->vmx_path, err);
		if (rv == 0) {
			vmk_vmx_close(&vm->cfg);
			vm->cfg = next;
			kb_log(vm->host->log, KB_LOG_INFO,
			       "VM %s: monitoring %s (timeout %u s, at most %u resets an hour)",
			       vm->cfg.name, enabled ? "on" : "off", vmk_vm_monitor_timeout_s(&next),
			       vmk_vm_monitor_max_resets(&next));
		} else {
			vmk_vmx_close(&next);
		}
	}
	pthread_mutex_unlock(&vm->lock);
	return rv;
}

/* Collects the VMs to look at this round; *out freed by the caller. */
static size_t collect(struct vmk_host *h, struct target **out)
{
	struct target *t = NULL;
	size_t n = 0, cap = 0;
	struct kb_list *pos;

	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);

		pthread_mutex_lock(&vm->lock);
		if (vm->power == VMK_POWERED_ON && vm->cfg.monitor.enabled && !vm->busy) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct target *nt = kb_realloc(t, nc * sizeof(*t));

				if (nt == NULL) {
					pthread_mutex_unlock(&vm->lock);
					break;
				}
				t = nt;
				cap = nc;
			}
			snprintf(t[n].uuid, sizeof(t[n].uuid), "%s", vm->cfg.uuid);
			vmk_vm_ctl_path(vm, t[n].ctl, sizeof(t[n].ctl));
			n++;
		}
		pthread_mutex_unlock(&vm->lock);
	}
	pthread_mutex_unlock(&h->lock);
	*out = t;
	return n;
}

static void judge(struct vmk_host *h, const struct target *t)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxStats stats = KEEL__VMK__VMX_STATS__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	struct kb_errmsg err = {0};
	struct vmk_vm *vm;
	uint64_t now, grace, seq, age;
	uint32_t used, max, timeout;
	bool due;

	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_STATS;
	rq.stats = &stats;
	if (vmk_vmx_call(t->ctl, &rq, &rp, VMK_MON_CALL_MS, &err) < 0 || rp->stats == NULL) {
		if (rp)
			keel__vmk__vmx_reply__free_unpacked(rp, NULL);
		return; /* ending, or busy: next round */
	}
	seq = rp->stats->heartbeat_seq;
	age = rp->stats->heartbeat_age_ms;
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);

	vm = vmk_vm_find(h, t->uuid);
	if (vm == NULL)
		return;
	now = kb_now_ns();
	pthread_mutex_lock(&vm->lock);
	if (vm->power != VMK_POWERED_ON || !vm->cfg.monitor.enabled || vm->busy) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->mon.seq = seq;
	vm->mon.age_ms = age;
	timeout = vmk_vm_monitor_timeout_s(&vm->cfg);
	max = vmk_vm_monitor_max_resets(&vm->cfg);
	grace = (uint64_t)timeout * KB_NSEC_PER_SEC;
	due = seq != 0 && age >= (uint64_t)timeout * 1000 && now - vm->powered_on_ns >= grace &&
	      (vm->mon.last_reset_ns == 0 || now - vm->mon.last_reset_ns >= grace);
	if (!due) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	used = resets_last_hour(vm, now);
	if (used >= max) {
		if (vm->mon.limit_logged_ns == 0 || now - vm->mon.limit_logged_ns >= HOUR_NS) {
			vm->mon.limit_logged_ns = now;
			snprintf(vm->last_event, sizeof(vm->last_event),
				 "VM monitoring: guest heartbeat silent for %" PRIu64
				 " s; not reset (%u resets in the last hour, the limit)",
				 age / 1000, used);
			kb_log(h->log, KB_LOG_WARN, "VM %s: %s", vm->cfg.name, vm->last_event);
		}
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->mon.resets_ns[vm->mon.next_reset++ % VMK_VMX_MON_RESETS_MAX] = now;
	vm->mon.last_reset_ns = now;
	pthread_mutex_unlock(&vm->lock);

	kb_log(h->log, KB_LOG_WARN,
	       "VM %s: VM monitoring: guest heartbeat silent for %" PRIu64
	       " s (timeout %u s); resetting (reset %u of %u this hour)",
	       t->uuid, age / 1000, timeout, used + 1, max);
	if (vmk_vm_reset(vm, &err) < 0) {
		kb_log(h->log, KB_LOG_ERROR, "VM %s: VM monitoring: reset failed: %s", t->uuid,
		       err.msg);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	vm->mon.seq = 0;
	snprintf(vm->last_event, sizeof(vm->last_event),
		 "reset by VM monitoring: guest heartbeat silent for %" PRIu64
		 " s (reset %u of %u this hour)",
		 age / 1000, used + 1, max);
	pthread_mutex_unlock(&vm->lock);
}

static void *monitor_main(void *arg)
{
	struct vmk_monitor *m = arg;
	struct timespec ts;

	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		struct target *t = NULL;
		size_t n;

		pthread_mutex_unlock(&m->lock);
		n = collect(m->host, &t);
		for (size_t i = 0; i < n; i++)
			judge(m->host, &t[i]);
		kb_free(t);
		pthread_mutex_lock(&m->lock);
		if (m->stop)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += VMK_MON_PERIOD_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&m->cond, &m->lock, &ts);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int vmk_monitor_start(struct vmk_host *h, struct vmk_monitor **out, struct kb_errmsg *err)
{
	struct vmk_monitor *m = kb_calloc(1, sizeof(*m));
	pthread_condattr_t ca;
	sigset_t all, old;
	int rv;

	if (m == NULL) {
		kb_errmsg_setf(err, "VM monitoring: out of memory");
		return -ENOMEM;
	}
	m->host = h;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);

	/* The thread takes no signals: they belong to the loop thread's handlers. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rv = -pthread_create(&m->thread, NULL, monitor_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv < 0) {
		kb_errmsg_setf(err, "VM monitoring thread: %s", kb_strerror(rv));
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->lock);
		kb_free(m);
		return rv;
	}
	m->running = true;
	*out = m;
	return 0;
}

void vmk_monitor_stop(struct vmk_monitor *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (m->running)
		pthread_join(m->thread, NULL);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	kb_free(m);
}
