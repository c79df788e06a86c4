/*
 * Power operations: power on (and resume from a suspended state), power off, reset and
 * suspend. Each marks the VM busy for its duration so operations on one VM never
 * overlap; operations on different VMs run in parallel on the thread pool.
 *
 * Power on: admission control, the VM's cgroup, a tap per NIC on its portgroup, then one
 * vmx in its own session, placed in the cgroup before it runs; powered on once its
 * control socket answers. Any failure undoes what was done and leaves the VM as it was.
 * In a cluster (owner.c): power-on asks clusterd first and, on a shared datastore, takes
 * the VM's lock and starts the vmx fenced (or starts nothing and says where, when the
 * cluster placed the VM on another host, which powers it on); power-off and suspend
 * release the lock once the vmx is gone and tell clusterd (an isolation power-off,
 * `fence`, does not tell it).
 * Suspend: pause, save the whole VM state to <name>.vmss in the VM directory, end the
 * vmx; a failed save resumes the VM, which keeps running.
 * A migration's destination (migrate.c) starts its vmx the same way, in incoming mode.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/core/cluster.h"
#include "kernel/core/subsys.h"
#include "kernel/vm/vm.h"
#include "kernel/vm/world.h"
#include "lib/time.h"

#define READY_MS 5000
#define STOP_MS	 10000
#define SAVE_MS	 120000

int vmk__vm_claim(struct vmk_vm *vm, const char *op, struct kb_errmsg *err)
{
	if (vm->busy != NULL) {
		kb_errmsg_setf(err, "VM %s is busy: %s in progress", vm->cfg.name, vm->busy);
		return KB_ESTATE;
	}
	vm->busy = op;
	return 0;
}

/* Claims a powered-on VM for op. vm->lock held. */
static int claim_on(struct vmk_vm *vm, const char *op, struct kb_errmsg *err)
{
	int rv = vmk__vm_claim(vm, op, err);

	if (rv == 0 && vm->power != VMK_POWERED_ON) {
		kb_errmsg_setf(err, "VM %s is not powered on", vm->cfg.name);
		vm->busy = NULL;
		rv = KB_ESTATE;
	}
	return rv;
}

static int ctl_simple(struct vmk_vm *vm, Keel__Vmk__VmxRequest__ReqCase what, int timeout_ms,
		      const char *path, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxPowerOff off = KEEL__VMK__VMX_POWER_OFF__INIT;
	Keel__Vmk__VmxReset rst = KEEL__VMK__VMX_RESET__INIT;
	Keel__Vmk__VmxPause pause = KEEL__VMK__VMX_PAUSE__INIT;
	Keel__Vmk__VmxResume resume = KEEL__VMK__VMX_RESUME__INIT;
	Keel__Vmk__VmxSave save = KEEL__VMK__VMX_SAVE__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	char ctl[PATH_MAX];
	int rv;

	rq.req_case = what;
	rq.power_off = &off; /* the oneof shares storage; set the right member below */
	switch (what) {
	case KEEL__VMK__VMX_REQUEST__REQ_RESET:
		rq.reset = &rst;
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_PAUSE:
		rq.pause = &pause;
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_RESUME:
		rq.resume = &resume;
		break;
	case KEEL__VMK__VMX_REQUEST__REQ_SAVE:
		save.path = (char *)path;
		rq.save = &save;
		break;
	default:
		break;
	}
	vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
	rv = vmk_vmx_call(ctl, &rq, &rp, timeout_ms, err);
	if (rp != NULL)
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	return rv;
}

static int build_argv(struct vmk_vm *vm, const char *restore, bool incoming, char **argv, int max,
		      char store[][PATH_MAX + 64])
{
	const struct vmk_vmx *c = &vm->cfg;
	struct vmk_host *h = vm->host;
	int n = 0, s = 0;

#define ARG(str)  (argv[n++] = (char *)(str))
#define ARGF(...) (snprintf(store[s], sizeof(store[0]), __VA_ARGS__), argv[n++] = store[s++])
	ARG(h->vmx_bin);
	ARG("--name");
	ARG(c->name);
	ARG("--kind");
	ARG(c->guest_kind == VMK_GUEST_LINUX ? "linux" : "kguest");
	ARG("--kernel");
	ARG(c->kernel[0] ? c->kernel : h->kguest);
	if (c->initrd[0]) {
		ARG("--initrd");
		ARG(c->initrd);
	}
	ARG("--cmdline");
	ARG(c->cmdline);
	ARG("--mem");
	ARGF("%uM", c->memsize_mib);
	ARG("--vcpus");
	ARGF("%u", c->numvcpus);
	if (__atomic_load_n(&h->large_pages, __ATOMIC_RELAXED))
		ARG("--large-pages"); /* vmx falls back to 4 KiB pages when the pool is short */
	for (int i = 0; i < VMK_VMX_DISKS && n < max - 24; i++) {
		const struct vmk_vmx_disk *d = &c->disks[i];
		if (!d->present)
			continue;
		ARG("--disk");
		if (d->file[0] == '/')
			ARGF("%s%s", d->file, d->read_only ? ",ro" : "");
		else
			ARGF("%s/%s%s", vm->dir, d->file, d->read_only ? ",ro" : "");
	}
	for (int i = 0, t = 0; i < VMK_VMX_NICS && n < max - 24; i++) {
		const struct vmk_vmx_nic *e = &c->nics[i];
		if (!e->present)
			continue;
		ARG("--net");
		ARGF("%s,mac=%s", vm->taps[t++], e->mac);
	}
	ARG("--ctl");
	ARGF("%s/%s.ctl", h->run_dir, c->uuid);
	ARG("--console-sock");
	ARGF("%s/%s.con", h->run_dir, c->uuid);
	ARG("--console-log");
	ARGF("%s/console.log", vm->dir);
	if (restore != NULL) {
		ARG("--restore");
		ARG(restore);
	}
	for (int i = 0; incoming && i < vm->nr_inherit_fds && n < max - 24; i++) {
		/* docs/vmotion.md: the destination's listening sockets; docs/ft.md: the secondary's */
		ARG(vm->inherit_ft ? "--ft-secondary-fd" : "--incoming-fd");
		ARGF("%d", vm->inherit_fds[i]);
	}
	if (vm->own.fenced) { /* DESIGN.md section 4: the guest runs only while it may */
		ARG("--fence-hb");
		ARG(vm->own.hb);
		ARG("--fence-host");
		ARGF("%llu", (unsigned long long)vm->own.host);
		ARG("--fence-lock");
		ARG(vm->own.lock);
		ARG("--fence-vm");
		ARG(c->uuid);
		ARG("--fence-epoch");
		ARGF("%llu", (unsigned long long)vm->own.epoch);
	}
	argv[n] = NULL;
	return n;
#undef ARG
#undef ARGF
}

static int attach_cb(void *arg, pid_t pid, struct kb_errmsg *err)
{
	struct vmk_vm *vm = arg;
	return vmk_subsys_res_attach(vm, pid, err);
}

int vmk__vm_start(struct vmk_vm *vm, const char *restore, bool incoming, struct kb_errmsg *err)
{
	char *argv[128];
	static __thread char store[60][PATH_MAX + 64];
	struct vmk_world_hooks hooks = {.attach = attach_cb, .arg = vm};
	int rv;

	rv = vmk_subsys_admit(vm, err);
	if (rv < 0)
		return rv;
	rv = vmk_subsys_res_create(vm, err);
	if (rv < 0)
		return rv;
	rv = vmk_subsys_ports_create(vm, err);
	if (rv < 0)
		goto undo_res;
	build_argv(vm, restore, incoming, argv, 128, store);
	vm->exited = false;
	vm->expect_exit = false;
	rv = vmk__world_spawn(vm, argv, &hooks, err);
	if (rv < 0)
		goto undo_ports;
	rv = vmk__vmx_wait_ready(vm, READY_MS, err);
	if (rv < 0) {
		syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
		close(vm->pidfd);
		vm->pidfd = -1;
		waitpid(vm->pid, NULL, 0);
		vm->pid = 0;
		goto undo_ports;
	}
	pthread_mutex_lock(&vm->lock);
	if (incoming) {
		/* its pid record says so: a vmkernel started meanwhile ends it (supervise.c);
		 * migrate.c rewrites it once the guest runs here */
		vm->power = VMK_INCOMING;
	} else {
		vm->power = VMK_POWERED_ON;
		vm->powered_on_ns = kb_now_ns();
	}
	pthread_mutex_unlock(&vm->lock);
	if (vmk__pidfile_write(vm) < 0)
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: cannot write its pid record",
		       vm->cfg.name);
	vmk__supervise_watch(vm);
	return 0;

undo_ports:
	vmk_subsys_ports_remove(vm);
undo_res:
	vmk_subsys_res_remove(vm);
	return rv;
}

int vmk_vm_power_on(struct vmk_vm *vm, struct kb_errmsg *err)
{
	return vmk_vm_power_on_as(vm, false, NULL, err);
}

int vmk_vm_power_on_as(struct vmk_vm *vm, bool wanted_only, struct vmk_vm_placed *placed,
		       struct kb_errmsg *err)
{
	char vmss[PATH_MAX];
	int rv;

	if (placed != NULL)
		memset(placed, 0, sizeof(*placed));

	pthread_mutex_lock(&vm->lock);
	rv = vmk__vm_claim(vm, "power-on", err);
	if (rv == 0 && vm->power == VMK_POWERED_ON) {
		kb_errmsg_setf(err, "VM %s is already powered on", vm->cfg.name);
		vm->busy = NULL;
		rv = KB_ESTATE;
	}
	bool resume = vm->power == VMK_SUSPENDED;
	pthread_mutex_unlock(&vm->lock);
	if (rv < 0)
		return rv;

	snprintf(vmss, sizeof(vmss), "%s/%s.vmss", vm->dir, vm->cfg.name);
	uint64_t t0 = kb_now_ns();
	/* In a cluster: ownership (and, on a shared datastore, the lock) before anything. */
	struct vmk_vm_owner own;
	rv = vmk__owner_power_on(vm, &own, wanted_only, placed, err);
	if (rv == 0 && placed != NULL && placed->host[0]) {
		/* another host powers it on (docs/drs.md, "Initial placement") */
		pthread_mutex_lock(&vm->lock);
		vm->busy = NULL;
		snprintf(vm->last_event, sizeof(vm->last_event), "%s: %s powers it on",
			 placed->placement, placed->host);
		kb_log(vm->host->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, vm->last_event);
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	if (rv == 0) {
		pthread_mutex_lock(&vm->lock);
		vm->own = own;
		pthread_mutex_unlock(&vm->lock);
		rv = vmk__vm_start(vm, resume ? vmss : NULL, false, err);
		if (rv < 0) {
			vmk__owner_release(vm, &own);
			pthread_mutex_lock(&vm->lock);
			memset(&vm->own, 0, sizeof(vm->own));
			pthread_mutex_unlock(&vm->lock);
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	if (rv == 0) {
		char how[96] = "";
		if (resume)
			unlink(vmss);
		if (own.host != 0)
			snprintf(how, sizeof(how), "; owner at epoch %llu%s",
				 (unsigned long long)own.epoch,
				 own.fenced ? ", lock held, fenced"
					    : ", local datastore: not fenced");
		snprintf(vm->last_event, sizeof(vm->last_event), "%s in %.0f ms (vmx pid %d%s)",
			 resume ? "resumed" : "powered on", (double)(kb_now_ns() - t0) / 1e6,
			 (int)vm->pid, how);
		kb_log(vm->host->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, vm->last_event);
	} else {
		if (strncmp(err->msg, "cannot ", 7) != 0) /* admission already says it */
			kb_errmsg_wrapf(err, "cannot %s VM %s", resume ? "resume" : "power on",
					vm->cfg.name);
		kb_log(vm->host->log, KB_LOG_WARN, "%s", err->msg);
	}
	pthread_mutex_unlock(&vm->lock);
	return rv;
}

/* Ends the vmx, asking first; vm->lock held, expect_exit set. */
static void end_vmx(struct vmk_vm *vm)
{
	struct kb_errmsg e2 = {{0}};

	pthread_mutex_unlock(&vm->lock);
	ctl_simple(vm, KEEL__VMK__VMX_REQUEST__REQ_POWER_OFF, 5000, NULL, &e2);
	pthread_mutex_lock(&vm->lock);
	if (vmk__vmx_wait_exit(vm, STOP_MS) < 0) {
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: vmx did not stop; killing it",
		       vm->cfg.name);
		if (vm->pid > 0)
			kill(vm->pid, SIGKILL);
		vmk__vmx_wait_exit(vm, STOP_MS);
	}
}

int vmk_vm_power_off(struct vmk_vm *vm, bool fence, struct kb_errmsg *err)
{
	struct vmk_vm_owner own;
	int rv;

	pthread_mutex_lock(&vm->lock);
	rv = claim_on(vm, "power-off", err);
	pthread_mutex_unlock(&vm->lock);
	if (rv < 0)
		return rv;
	/* An operator's power-off: the cluster stops wanting the VM on before it stops here,
	 * so no reconciler's pass that sees it off restarts it (busy is held meanwhile). */
	if (!fence)
		vmk__owner_tell(vm, VMK_CLUSTER_POWER_OFF);
	pthread_mutex_lock(&vm->lock);
	vm->expect_exit = true;
	end_vmx(vm);
	own = vm->own;
	memset(&vm->own, 0, sizeof(vm->own));
	vmk__vm_release(vm, VMK_POWERED_OFF,
			fence ? "powered off for the isolation response" : "powered off by request");
	kb_log(vm->host->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, vm->last_event);
	pthread_mutex_unlock(&vm->lock);
	/* The vmx is gone: the lock may be released (busy still held, vm->lock not: it may
	 * block). */
	vmk__owner_release(vm, &own);
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vmk_vm_reset(struct vmk_vm *vm, struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&vm->lock);
	rv = claim_on(vm, "reset", err);
	pthread_mutex_unlock(&vm->lock);
	if (rv < 0)
		return rv;
	rv = ctl_simple(vm, KEEL__VMK__VMX_REQUEST__REQ_RESET, 5000, NULL, err);
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	if (rv == 0) {
		snprintf(vm->last_event, sizeof(vm->last_event), "reset by request");
		kb_log(vm->host->log, KB_LOG_INFO, "VM %s: reset", vm->cfg.name);
	}
	pthread_mutex_unlock(&vm->lock);
	return rv;
}

int vmk_vm_suspend(struct vmk_vm *vm, struct kb_errmsg *err)
{
	char vmss[PATH_MAX];
	int rv;

	pthread_mutex_lock(&vm->lock);
	rv = claim_on(vm, "suspend", err);
	pthread_mutex_unlock(&vm->lock);
	if (rv < 0)
		return rv;

	snprintf(vmss, sizeof(vmss), "%s/%s.vmss", vm->dir, vm->cfg.name);
	uint64_t t0 = kb_now_ns();
	rv = ctl_simple(vm, KEEL__VMK__VMX_REQUEST__REQ_PAUSE, 5000, NULL, err);
	rv = rv ?: ctl_simple(vm, KEEL__VMK__VMX_REQUEST__REQ_SAVE, SAVE_MS, vmss, err);
	pthread_mutex_lock(&vm->lock);
	if (rv < 0) {
		struct kb_errmsg e2 = {{0}};
		kb_errmsg_wrapf(err, "cannot suspend VM %s", vm->cfg.name);
		kb_log(vm->host->log, KB_LOG_WARN, "%s; it keeps running", err->msg);
		pthread_mutex_unlock(&vm->lock);
		ctl_simple(vm, KEEL__VMK__VMX_REQUEST__REQ_RESUME, 5000, NULL, &e2);
		pthread_mutex_lock(&vm->lock);
		vm->busy = NULL;
		pthread_mutex_unlock(&vm->lock);
		return rv;
	}
	vm->expect_exit = true;
	end_vmx(vm);
	char event[200];
	snprintf(event, sizeof(event), "suspended to %s.vmss in %.0f ms", vm->cfg.name,
		 (double)(kb_now_ns() - t0) / 1e6);
	struct vmk_vm_owner own = vm->own;
	memset(&vm->own, 0, sizeof(vm->own));
	vmk__vm_release(vm, VMK_SUSPENDED, event);
	kb_log(vm->host->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, event);
	pthread_mutex_unlock(&vm->lock);
	vmk__owner_release(vm, &own);
	vmk__owner_tell(vm, VMK_CLUSTER_SUSPEND);
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vmk_vm_resume(struct vmk_vm *vm, struct kb_errmsg *err)
{
	pthread_mutex_lock(&vm->lock);
	bool suspended = vm->power == VMK_SUSPENDED;
	pthread_mutex_unlock(&vm->lock);
	if (!suspended) {
		kb_errmsg_setf(err, "VM %s is not suspended", vm->cfg.name);
		return KB_ESTATE;
	}
	return vmk_vm_power_on(vm, err);
}

void vmk__vm_release(struct vmk_vm *vm, enum vmk_power to, const char *event)
{
	char path[PATH_MAX];

	vmk_subsys_ports_remove(vm);
	vmk_subsys_res_remove(vm);
	vmk_vm_pidfile_path(vm, path, sizeof(path));
	unlink(path);
	vm->power = to;
	vm->pid = 0;
	vm->expect_exit = false;
	snprintf(vm->last_event, sizeof(vm->last_event), "%s", event);
}
