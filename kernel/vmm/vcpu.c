/*
 * vCPU threads: each runs KVM_RUN in a loop and dispatches its exits to the port-I/O and
 * MMIO buses, as kvmtool's kvm-cpu.c does.
 *
 * Pausing: vmm_vm_pause() sets pause_req, then sets run->immediate_exit and signals each
 * thread with SIG_KICK so KVM_RUN returns EINTR at once (also when the signal lands just
 * before entry). A thread that sees pause_req parks on vm->cond until resume clears it.
 * An exit the VMM cannot handle stops the VM with reason "error" and a message naming the
 * exit, never the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/time.h"

#define SIG_KICK	     SIGUSR1
#define VMM_THROTTLE_SLOT_NS (10 * KB_NSEC_PER_MSEC)

static void kick_handler(int sig)
{
	(void)sig;
}

int vmm__vcpu_create(struct vmm_vm *vm, int id, struct kb_errmsg *err)
{
	struct vmm_vcpu *vcpu = &vm->vcpus[id];
	int rv;

	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_CREATE_VCPU %d: %s", id, kb_strerror(rv));
		return rv;
	}
	vcpu->run =
	    mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		rv = -errno;
		vcpu->run = NULL;
		kb_errmsg_setf(err, "mapping vCPU %d run area: %s", id, kb_strerror(rv));
		goto err_close;
	}
	rv = vmm__cpuid_set(vcpu, err);
	if (rv < 0)
		goto err_unmap;
	rv = vmm__msr_setup(vcpu, err);
	if (rv < 0)
		goto err_unmap;
	return 0;

err_unmap:
	munmap(vcpu->run, (size_t)vm->vcpu_mmap_size);
	vcpu->run = NULL;
err_close:
	close(vcpu->fd);
	vcpu->fd = -1;
	return rv;
}

void vmm__vcpu_close(struct vmm_vcpu *vcpu)
{
	if (vcpu->run != NULL)
		munmap(vcpu->run, (size_t)vcpu->vm->vcpu_mmap_size);
	vcpu->run = NULL;
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->fd = -1;
}

void vmm__vcpu_kick(struct vmm_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (vcpu->started)
		pthread_kill(vcpu->self, SIG_KICK);
}

static void handle_io(struct vmm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			vmm_bus_write(&vcpu->vm->pio, run->io.port, data, run->io.size);
		else
			vmm_bus_read(&vcpu->vm->pio, run->io.port, data, run->io.size);
		data += run->io.size;
	}
}

static void handle_mmio(struct vmm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return;
	if (run->mmio.is_write)
		vmm_bus_write(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
	else
		vmm_bus_read(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
}

/* Returns false when the VM must stop. */
static bool handle_exit(struct vmm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vmm_vm *vm = vcpu->vm;
	char msg[200];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu->exits[VMM_EXIT_IO]++;
		handle_io(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		vcpu->exits[VMM_EXIT_MMIO]++;
		handle_mmio(vcpu);
		return true;
	case KVM_EXIT_HLT:
		vcpu->exits[VMM_EXIT_HLT]++;
		return true;
	case KVM_EXIT_INTR:
		vcpu->exits[VMM_EXIT_INTR]++;
		return true;
	case KVM_EXIT_SHUTDOWN:
		vcpu->exits[VMM_EXIT_SHUTDOWN]++;
		{
			struct kvm_regs r = {0};
			struct kvm_sregs sr = {0};
			(void)ioctl(vcpu->fd, KVM_GET_REGS, &r);
			(void)ioctl(vcpu->fd, KVM_GET_SREGS, &sr);
			snprintf(
			    msg, sizeof(msg),
			    "vCPU %d: triple fault (shutdown) at rip 0x%llx rsp 0x%llx rflags 0x%llx cs 0x%x "
			    "cr0 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx",
			    vcpu->id, (unsigned long long)r.rip, (unsigned long long)r.rsp,
			    (unsigned long long)r.rflags, sr.cs.selector,
			    (unsigned long long)sr.cr0, (unsigned long long)sr.cr3,
			    (unsigned long long)sr.cr4, (unsigned long long)sr.efer);
		}
		vmm_vm_stop(vm, VMM_STOP_SHUTDOWN, msg);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vcpu->exits[VMM_EXIT_OTHER]++;
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
			vmm_vm_request_reset(vm);
			return true;
		}
		vmm_vm_stop(vm, VMM_STOP_POWEROFF, "guest system event: power off");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg), "vCPU %d: entry failed, reason 0x%llx", vcpu->id,
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "vCPU %d: KVM internal error, suberror %u", vcpu->id,
			 run->internal.suberror);
		break;
	default:
		snprintf(msg, sizeof(msg), "vCPU %d: unhandled exit reason %u", vcpu->id,
			 run->exit_reason);
		break;
	}
	vcpu->exits[VMM_EXIT_OTHER]++;
	vmm_vm_stop(vm, VMM_STOP_ERROR, msg);
	return false;
}

/* Parks while a pause is requested. Returns false when the VM has stopped. */
static bool park(struct vmm_vcpu *vcpu)
{
	struct vmm_vm *vm = vcpu->vm;
	bool go;

	pthread_mutex_lock(&vm->lock);
	while (vm->pause_req && vm->state != VMM_STATE_STOPPED) {
		vm->nr_parked++;
		pthread_cond_broadcast(&vm->cond);
		pthread_cond_wait(&vm->cond, &vm->lock);
		vm->nr_parked--;
	}
	go = vm->state != VMM_STATE_STOPPED;
	pthread_mutex_unlock(&vm->lock);
	return go;
}

/* A throttle kick: clear the kick's immediate_exit (a pause or stop that raced with it
 * is seen by park(), which runs next) and stay out of the guest for the throttle's share
 * of the 10 ms slot. */
static void throttle(struct vmm_vcpu *vcpu)
{
	struct vmm_vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->lock);
	if (!vm->pause_req && vm->state == VMM_STATE_RUNNING)
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->lock);
	int pct = __atomic_load_n(&vm->throttle_pct, __ATOMIC_RELAXED);
	if (pct > 0)
		kb_sleep_ns((uint64_t)pct * VMM_THROTTLE_SLOT_NS / 100);
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *vcpu = arg;
	struct vmm_vm *vm = vcpu->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%d", vcpu->id);
	pthread_setname_np(pthread_self(), name);

	/* Register before the first run check: from here on a stop or a pause that does not
	 * find this thread parked signals it, so it can never be left running in the guest. */
	pthread_mutex_lock(&vm->lock);
	vcpu->self = pthread_self();
	vcpu->started = true;
	vm->nr_started++;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);

	while (park(vcpu)) {
		uint64_t t0 = kb_now_ns();
		int rc = ioctl(vcpu->fd, KVM_RUN, 0);
		vcpu->run_ns += kb_now_ns() - t0;
		if (__atomic_exchange_n(&vcpu->throttle_kick, 0, __ATOMIC_SEQ_CST))
			throttle(vcpu);
		if (rc < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu->exits[VMM_EXIT_INTR]++;
				continue;
			}
			char msg[128];
			snprintf(msg, sizeof(msg), "vCPU %d: KVM_RUN: %s", vcpu->id,
				 kb_strerror(-errno));
			vmm_vm_stop(vm, VMM_STOP_ERROR, msg);
			break;
		}
		if (!handle_exit(vcpu))
			break;
	}
	pthread_mutex_lock(&vm->lock);
	vm->nr_exited++;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static void install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIG_KICK, &sa, NULL);
}

int vmm__vcpu_start(struct vmm_vcpu *vcpu)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int rv;

	/* Kicks are sent with pthread_kill to one thread, so no mask games are needed. */
	pthread_once(&once, install_kick_handler);
	rv = -pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (rv == 0)
		vcpu->created = true;
	return rv;
}

/* The throttle ticker: every 10 ms, kicks every running vCPU out of the guest. */
static void *throttle_thread(void *arg)
{
	struct vmm_vm *vm = arg;

	pthread_setname_np(pthread_self(), "throttle");
	while (__atomic_load_n(&vm->throttle_pct, __ATOMIC_RELAXED) > 0) {
		kb_sleep_ns(VMM_THROTTLE_SLOT_NS);
		pthread_mutex_lock(&vm->lock);
		if (vm->state == VMM_STATE_RUNNING && !vm->pause_req) {
			for (int i = 0; i < vm->nr_vcpus; i++) {
				struct vmm_vcpu *c = &vm->vcpus[i];
				if (!c->started)
					continue;
				/* kick first: a vCPU that sees immediate_exit before the
				 * flag spins only until the flag lands */
				vmm__vcpu_kick(c);
				__atomic_store_n(&c->throttle_kick, 1, __ATOMIC_SEQ_CST);
			}
		}
		pthread_mutex_unlock(&vm->lock);
	}
	return NULL;
}

int vmm_vm_set_throttle(struct vmm_vm *vm, int pct)
{
	int rv = 0;

	if (pct < 0 || pct > 99)
		return KB_ECONFIG;
	__atomic_store_n(&vm->throttle_pct, pct, __ATOMIC_SEQ_CST);
	if (pct > 0 && !vm->throttle_running) {
		rv = -pthread_create(&vm->throttle_thread, NULL, throttle_thread, vm);
		if (rv == 0)
			vm->throttle_running = true;
		else
			__atomic_store_n(&vm->throttle_pct, 0, __ATOMIC_SEQ_CST);
	} else if (pct == 0 && vm->throttle_running) {
		pthread_join(vm->throttle_thread, NULL);
		vm->throttle_running = false;
	}
	return rv;
}
