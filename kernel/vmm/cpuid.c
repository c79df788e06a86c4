/*
 * CPUID: what KVM supports, filtered to what Keel's VMM offers, with per-vCPU topology.
 * Filtered out: features the VMM does not virtualise (MONITOR/MWAIT, VMX/SVM for nested
 * guests, performance monitoring, TSC deadline timer is kept since the LAPIC is in-kernel).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

#define CPUID_MAX_ENTRIES 256

int vmm__cpuid_init(struct vmm_vm *vm, struct kb_errmsg *err)
{
	struct kvm_cpuid2 *c;
	int rv;

	c = kb_calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (c == NULL)
		return -ENOMEM;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_GET_SUPPORTED_CPUID: %s", kb_strerror(rv));
		kb_free(c);
		return rv;
	}
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ecx &= ~(1u << 3);  /* MONITOR/MWAIT */
			e->ecx &= ~(1u << 5);  /* VMX */
			e->ecx &= ~(1u << 15); /* PDCM */
			e->ecx |= 1u << 31;    /* running under a hypervisor */
			break;
		case 6:
			e->eax = e->ebx = e->ecx = e->edx = 0; /* no power management */
			break;
		case 0xa:
			e->eax = e->ebx = e->ecx = e->edx = 0; /* no PMU */
			break;
		case 0x80000001:
			e->ecx &= ~(1u << 2); /* SVM */
			break;
		default:
			break;
		}
	}
	vm->cpuid = c;
	return 0;
}

int vmm__cpuid_set(struct vmm_vcpu *vcpu, struct kb_errmsg *err)
{
	struct vmm_vm *vm = vcpu->vm;
	struct kvm_cpuid2 *c = vm->cpuid;
	size_t size = sizeof(*c) + c->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *mine = kb_malloc(size);
	int rv = 0;

	if (mine == NULL)
		return -ENOMEM;
	memcpy(mine, c, size);
	for (uint32_t i = 0; i < mine->nent; i++) {
		struct kvm_cpuid_entry2 *e = &mine->entries[i];
		if (e->function == 1) {
			e->ebx &= 0x0000ffffu;
			e->ebx |= (uint32_t)vcpu->id << 24;		 /* initial APIC id */
			e->ebx |= (uint32_t)(vm->nr_vcpus & 0xff) << 16; /* logical CPUs */
			if (vm->nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the count above is valid */
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = (uint32_t)vcpu->id; /* x2APIC id */
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, mine) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_SET_CPUID2 on vCPU %d: %s", vcpu->id, kb_strerror(rv));
	}
	kb_free(mine);
	return rv;
}
