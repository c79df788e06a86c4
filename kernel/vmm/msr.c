/*
 * Model-specific registers: the power-on values the VMM sets, and the list the state
 * module saves and restores (an allow-list, as Firecracker keeps, filtered by what KVM
 * reports; never IA32_ARCH_CAPABILITIES, which KVM lists but refuses to set).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

static const uint32_t allow[] =
    {
	0x10,			       /* TSC */
	0x11,	    0x12,	       /* legacy kvm-clock wall clock, system time */
	0x1b,			       /* APIC base */
	0x3b,			       /* TSC adjust */
	0x48,			       /* SPEC_CTRL */
	0x174,	    0x175,	0x176, /* SYSENTER CS/ESP/EIP */
	0x1a0,			       /* MISC_ENABLE */
	0x200,	    0x201,	0x202,	    0x203,	0x204,	    0x205,
	0x206,	    0x207, /* variable MTRRs */
	0x208,	    0x209,	0x20a,	    0x20b,	0x20c,	    0x20d,
	0x20e,	    0x20f,	0x250,	    0x258,	0x259, /* fixed MTRRs */
	0x268,	    0x269,	0x26a,	    0x26b,	0x26c,	    0x26d,
	0x26e,	    0x26f,	0x277,				    /* PAT */
	0x2ff,							    /* MTRR default type */
	0x6e0,							    /* TSC deadline */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,		    /* STAR LSTAR CSTAR SFMASK */
	0xc0000102,						    /* KERNEL_GS_BASE */
	0xc0000103,						    /* TSC_AUX */
	0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04, /* KVM paravirt */
};

int vmm__msr_list(struct vmm_vm *vm, uint32_t *out, int max)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	struct kvm_msr_list *list;
	int n = 0;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	list = kb_calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (list == NULL)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		int rv = -errno;
		kb_free(list);
		return rv;
	}
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]) && n < max; i++) {
		for (uint32_t j = 0; j < list->nmsrs; j++) {
			if (list->indices[j] == allow[i]) {
				out[n++] = allow[i];
				break;
			}
		}
	}
	kb_free(list);
	return n;
}

int vmm__msr_setup(struct vmm_vcpu *vcpu, struct kb_errmsg *err)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} init[] = {
	    {0x174, 0},
	    {0x175, 0},
	    {0x176, 0},
	    {0xc0000081, 0},
	    {0xc0000082, 0},
	    {0xc0000083, 0},
	    {0xc0000084, 0},
	    {0xc0000102, 0},
	    {0x10, 0},
	    {0x1a0, 1},			    /* fast strings */
	    {0x277, 0x0007040600070406ull}, /* PAT power-on value */
	    {0x2ff, (1u << 11) | 6},	    /* MTRRs on, default write-back */
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[sizeof(init) / sizeof(init[0])];
	} m;
	int n = (int)(sizeof(init) / sizeof(init[0]));

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		m.e[i].index = init[i].index;
		m.e[i].data = init[i].value;
	}
	int rc = ioctl(vcpu->fd, KVM_SET_MSRS, &m);
	if (rc < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "KVM_SET_MSRS on vCPU %d: %s", vcpu->id, kb_strerror(rc));
		return rc;
	}
	if (rc != n) {
		kb_errmsg_setf(err, "KVM_SET_MSRS on vCPU %d: MSR 0x%x refused", vcpu->id,
			       init[rc].index);
		return KB_EKVM;
	}
	return 0;
}
