/*
 * The VM: creation in the order KVM wants (VM, irqchip and PIT, memory, vCPUs, devices,
 * guest image), and the run control every other part uses — start, pause, resume, stop,
 * reset.
 *
 * Run control is one mutex and one condition variable. pause() returns only when every
 * started vCPU is parked outside KVM_RUN, so the state module, migration and FT see a
 * stable VM. stop() is final: vCPU threads leave their loops and the control loop ends
 * the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"
#include "lib/time.h"

const char *vmm_state_name(enum vmm_state s)
{
	switch (s) {
	case VMM_STATE_CREATED:
		return "created";
	case VMM_STATE_RUNNING:
		return "running";
	case VMM_STATE_PAUSED:
		return "paused";
	case VMM_STATE_STOPPED:
		return "stopped";
	}
	return "unknown";
}

const char *vmm_stop_reason_name(enum vmm_stop_reason r)
{
	switch (r) {
	case VMM_STOP_NONE:
		return "none";
	case VMM_STOP_POWEROFF:
		return "poweroff";
	case VMM_STOP_SHUTDOWN:
		return "shutdown";
	case VMM_STOP_TEST_EXIT:
		return "test-exit";
	case VMM_STOP_ERROR:
		return "error";
	case VMM_STOP_FENCED:
		return "fenced";
	case VMM_STOP_MIGRATED:
		return "migrated";
	case VMM_STOP_MIGRATION_FAILED:
		return "migration-failed";
	}
	return "unknown";
}

const char *vmm_ft_phase_name(enum vmm_ft_phase p)
{
	switch (p) {
	case VMM_FT_OFF:
		return "off";
	case VMM_FT_CONNECTING:
		return "connecting";
	case VMM_FT_SYNCING:
		return "syncing";
	case VMM_FT_PROTECTED:
		return "protected";
	case VMM_FT_LOST:
		return "lost";
	case VMM_FT_FAILED:
		return "failed";
	case VMM_FT_RUNNING:
		return "running";
	}
	return "unknown";
}

const char *vmm_mig_phase_name(enum vmm_mig_phase p)
{
	switch (p) {
	case VMM_MIG_NONE:
		return "none";
	case VMM_MIG_CONNECTING:
		return "connecting";
	case VMM_MIG_PRECOPY:
		return "precopy";
	case VMM_MIG_SWITCHOVER:
		return "switchover";
	case VMM_MIG_READY:
		return "ready";
	case VMM_MIG_COMMITTED:
		return "committed";
	case VMM_MIG_ABORTED:
		return "aborted";
	case VMM_MIG_FAILED:
		return "failed";
	case VMM_MIG_WAITING:
		return "waiting";
	case VMM_MIG_RECEIVING:
		return "receiving";
	case VMM_MIG_RESUMED:
		return "resumed";
	}
	return "unknown";
}

void vmm_vm_notify(struct vmm_vm *vm)
{
	vmm__notify(vm);
}

void vmm__notify(struct vmm_vm *vm)
{
	uint64_t one = 1;

	if (vm->notify_fd >= 0 && write(vm->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kb_log(vm->log, KB_LOG_WARN, "notify: %s", kb_strerror(-errno));
}

static int create_kvm(struct vmm_vm *vm, struct kb_errmsg *err)
{
	int rv;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "opening /dev/kvm: %s", kb_strerror(rv));
		return rv;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		kb_errmsg_setf(err, "/dev/kvm speaks an unsupported API version");
		return KB_EKVM;
	}
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size <= 0) {
		kb_errmsg_setf(err, "KVM_GET_VCPU_MMAP_SIZE failed");
		return KB_EKVM;
	}
	static const struct {
		int cap;
		const char *name;
	} need[] = {
	    {KVM_CAP_IRQCHIP, "in-kernel irqchip"},
	    {KVM_CAP_PIT2, "in-kernel PIT"},
	    {KVM_CAP_USER_MEMORY, "user memory"},
	    {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"},
	    {KVM_CAP_XSAVE, "XSAVE state"},
	    {KVM_CAP_VCPU_EVENTS, "vCPU events"},
	    {KVM_CAP_ADJUST_CLOCK, "KVM clock control"},
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			kb_errmsg_setf(err, "KVM lacks %s", need[i].name);
			return KB_EKVM;
		}
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_CREATE_VM: %s", kb_strerror(rv));
		return rv;
	}
	/* Needed on Intel VMX; harmless elsewhere. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	uint64_t idmap = 0xfffbc000ull;
	(void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_CREATE_IRQCHIP: %s", kb_strerror(rv));
		return rv;
	}
	struct kvm_pit_config pit = {.flags = 0};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_CREATE_PIT2: %s", kb_strerror(rv));
		return rv;
	}
	return 0;
}

int vmm__load_guest(struct vmm_vm *vm, struct kb_errmsg *err)
{
	if (vm->cfg.kind == VMM_GUEST_LINUX)
		return vmm__boot_linux(vm, err);
	return vmm__boot_kguest(vm, err);
}

int vmm_vm_create(const struct vmm_config *cfg, struct kb_logger *log, struct vmm_vm **out,
		  struct kb_errmsg *err)
{
	struct vmm_vm *vm;
	int rv;

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > VMM_MAX_VCPUS) {
		kb_errmsg_setf(err, "vCPU count %d is outside 1..%d", cfg->nr_vcpus, VMM_MAX_VCPUS);
		return KB_ECONFIG;
	}
	if (cfg->kernel == NULL) {
		kb_errmsg_setf(err, "no guest image given");
		return KB_ECONFIG;
	}
	vm = kb_calloc(1, sizeof(*vm));
	if (vm == NULL)
		return -ENOMEM;
	vm->log = log ? log : &kb_log_default;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->epfd = vm->ev_wake = vm->notify_fd = -1;
	vm->nr_vcpus = cfg->nr_vcpus;
	for (int i = 0; i < VMM_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	kb_list_init(&vm->devs);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->mem.memfd = -1;

	vm->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->notify_fd < 0) {
		rv = -errno;
		goto fail;
	}
	rv = create_kvm(vm, err);
	if (rv < 0)
		goto fail;
	rv = vmm__mem_init(&vm->mem, cfg->mem_size, cfg->large_pages, err);
	if (rv < 0)
		goto fail;
	if (vm->mem.large)
		kb_log(vm->log, KB_LOG_INFO, "guest memory: %llu MiB in 2 MiB pages from the host's pool",
		       (unsigned long long)(cfg->mem_size >> 20));
	else if (cfg->large_pages) /* a host without a pool, or a full one: not an error */
		kb_log(vm->log, KB_LOG_INFO, "guest memory: %llu MiB in 4 KiB pages: %s",
		       (unsigned long long)(cfg->mem_size >> 20), vm->mem.small_why);
	rv = vmm__mem_register(&vm->mem, vm->vm_fd, 0, err);
	if (rv < 0)
		goto fail;
	rv = vmm__cpuid_init(vm, err);
	if (rv < 0)
		goto fail;
	rv = vmm__event_init(vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "starting the event thread: %s", kb_strerror(rv));
		goto fail;
	}
	for (int i = 0; i < vm->nr_vcpus; i++) {
		rv = vmm__vcpu_create(vm, i, err);
		if (rv < 0)
			goto fail;
	}
	int khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	vm->tsc_khz = khz > 0 ? (uint64_t)khz : 0;

	rv = vmm__uart_create(vm, err);
	if (rv < 0)
		goto fail;
	rv = vmm__agent_create(vm, err);
	if (rv < 0)
		goto fail;
	rv = vmm__reset_ports_create(vm, err);
	if (rv < 0)
		goto fail;
	if (cfg->test_port) {
		rv = vmm__testdev_create(vm, err);
		if (rv < 0)
			goto fail;
	}
	rv = vmm_pci_init(vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "PCI host bridge: %s", kb_strerror(rv));
		goto fail;
	}
	rv = vmm__load_guest(vm, err);
	if (rv < 0)
		goto fail;
	vm->state = VMM_STATE_CREATED;
	*out = vm;
	return 0;

fail:
	vmm_vm_destroy(vm);
	return rv;
}

/* Tells every device the vCPUs stopped (true) or are about to run (false). */
static void devices_pause(struct vmm_vm *vm, bool paused)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		if (d->ops->pause != NULL)
			d->ops->pause(d->opaque, paused);
	}
}

int vmm_vm_start(struct vmm_vm *vm)
{
	int rv = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VMM_STATE_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		return KB_ESTATE;
	}
	bool booting =
	    vm->state == VMM_STATE_CREATED && vm->cfg.kind == VMM_GUEST_LINUX && !vm->restored;
	vm->state = VMM_STATE_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (booting) {
		struct kb_errmsg err = {{0}};
		rv = vmm__boot_linux_devices(vm, &err);
		if (rv < 0) {
			vmm_vm_stop(vm, VMM_STOP_ERROR, err.msg);
			return rv;
		}
	}
	devices_pause(vm, false);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i].run->immediate_exit = 0;
		rv = vmm__vcpu_start(&vm->vcpus[i]);
		if (rv < 0) {
			vmm_vm_stop(vm, VMM_STOP_ERROR, "could not start a vCPU thread");
			return rv;
		}
	}
	/* Return only when every thread has registered, so a pause counts them all. */
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_started < vm->nr_vcpus)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vmm_vm_pause(struct vmm_vm *vm)
{
	int started = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == VMM_STATE_PAUSED || vm->state == VMM_STATE_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	if (vm->state != VMM_STATE_RUNNING) {
		pthread_mutex_unlock(&vm->lock);
		return KB_ESTATE;
	}
	vm->pause_req = true;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started) {
			started++;
			vmm__vcpu_kick(&vm->vcpus[i]);
		}
	}
	while (vm->nr_parked + vm->nr_exited < started)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (vm->state == VMM_STATE_RUNNING)
		vm->state = VMM_STATE_PAUSED;
	int rv = vm->state == VMM_STATE_PAUSED ? 0 : KB_ESTATE;
	pthread_mutex_unlock(&vm->lock);
	if (rv == 0)
		devices_pause(vm, true); /* no device writes guest memory from here */
	return rv;
}

int vmm_vm_resume(struct vmm_vm *vm)
{
	bool never_started;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == VMM_STATE_RUNNING) {
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	if (vm->state != VMM_STATE_PAUSED && vm->state != VMM_STATE_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		return KB_ESTATE;
	}
	never_started = !vm->vcpus[0].created;
	if (never_started) {
		vm->state = VMM_STATE_CREATED;
		vm->pause_req = false;
		pthread_mutex_unlock(&vm->lock);
		return vmm_vm_start(vm);
	}
	pthread_mutex_unlock(&vm->lock);
	devices_pause(vm, false);
	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < vm->nr_vcpus; i++)
		__atomic_store_n(&vm->vcpus[i].run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	vm->pause_req = false;
	vm->state = VMM_STATE_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void vmm_vm_stop(struct vmm_vm *vm, enum vmm_stop_reason reason, const char *msg)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VMM_STATE_STOPPED) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->state = VMM_STATE_STOPPED;
	vm->stop_reason = reason;
	snprintf(vm->stop_msg, sizeof(vm->stop_msg), "%s", msg ? msg : "");
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run != NULL)
			vmm__vcpu_kick(&vm->vcpus[i]);
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	kb_log(vm->log,
	       reason == VMM_STOP_ERROR || reason == VMM_STOP_SHUTDOWN ? KB_LOG_ERROR : KB_LOG_INFO,
	       "VM stopped (%s)%s%s", vmm_stop_reason_name(reason), msg && *msg ? ": " : "",
	       msg ? msg : "");
	vmm__notify(vm);
}

int vmm_vm_wait_stopped(struct vmm_vm *vm, uint64_t timeout_ns)
{
	uint64_t deadline = kb_now_ns() + timeout_ns;
	int rv = 0;

	pthread_mutex_lock(&vm->lock);
	while (vm->state != VMM_STATE_STOPPED) {
		if (timeout_ns == 0) {
			pthread_cond_wait(&vm->cond, &vm->lock);
			continue;
		}
		uint64_t now = kb_now_ns();
		if (now >= deadline) {
			rv = KB_ETIMEOUT;
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t abs =
		    (uint64_t)ts.tv_sec * KB_NSEC_PER_SEC + (uint64_t)ts.tv_nsec + (deadline - now);
		ts.tv_sec = (time_t)(abs / KB_NSEC_PER_SEC);
		ts.tv_nsec = (long)(abs % KB_NSEC_PER_SEC);
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	return rv;
}

void vmm_vm_request_reset(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->reset_req = true;
	pthread_mutex_unlock(&vm->lock);
	vmm__notify(vm);
}

int vmm_vm_reset(struct vmm_vm *vm)
{
	struct kb_errmsg err = {{0}};
	struct kb_list *pos;
	int rv;

	rv = vmm_vm_pause(vm);
	if (rv < 0)
		return rv;
	pthread_mutex_lock(&vm->lock);
	vm->reset_req = false;
	pthread_mutex_unlock(&vm->lock);
	kb_list_for_each(pos, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		if (d->ops->reset != NULL)
			d->ops->reset(d->opaque);
	}
	rv = vmm__mem_discard(&vm->mem);
	if (rv == 0)
		rv = vmm__load_guest(vm, &err);
	if (rv < 0) {
		kb_log(vm->log, KB_LOG_ERROR, "reset failed: %s", err.msg);
		vmm_vm_stop(vm, VMM_STOP_ERROR, "reset failed");
		return rv;
	}
	kb_log(vm->log, KB_LOG_INFO, "VM reset");
	return vmm_vm_resume(vm);
}

void vmm_vm_halt(struct vmm_vm *vm)
{
	if (vm == NULL)
		return;
	vmm_vm_set_throttle(vm, 0);
	if (vm->vcpus[0].created) {
		vmm_vm_stop(vm, VMM_STOP_POWEROFF, "VM destroyed");
	} else {
		pthread_mutex_lock(&vm->lock);
		vm->state = VMM_STATE_STOPPED;
		pthread_mutex_unlock(&vm->lock);
	}
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].created)
			pthread_join(vm->vcpus[i].thread, NULL);
		vm->vcpus[i].created = vm->vcpus[i].started = false;
	}
	vmm__event_close(vm);
}

void vmm_vm_destroy(struct vmm_vm *vm)
{
	struct kb_list *pos, *tmp;

	if (vm == NULL)
		return;
	vmm_vm_halt(vm);
	kb_list_for_each_safe(pos, tmp, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		kb_list_del(&d->link);
		if (d->ops->destroy != NULL)
			d->ops->destroy(d->opaque);
		kb_free(d);
	}
	for (int i = 0; i < vm->nr_vcpus; i++)
		vmm__vcpu_close(&vm->vcpus[i]);
	vmm_bus_close(&vm->pio);
	vmm_bus_close(&vm->mmio);
	vmm__mem_close(&vm->mem);
	kb_free(vm->cpuid);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->notify_fd >= 0)
		close(vm->notify_fd);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	kb_free(vm);
}
