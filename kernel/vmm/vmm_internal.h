/*
 * Functions shared by the core files of vmx (vm.c, vcpu.c, mem.c, event.c, boot, state).
 * Devices use vmm.h only.
 */
#ifndef VMM_INTERNAL_H
#define VMM_INTERNAL_H

#include "kernel/vmm/vmm.h"

/* mem.c */
int vmm__mem_init(struct vmm_mem *m, uint64_t size, bool large, struct kb_errmsg *err);
int vmm__mem_register(struct vmm_mem *m, int vm_fd, uint32_t flags, struct kb_errmsg *err);
/* Returns every page of guest RAM to the host (contents read back as zero). */
int vmm__mem_discard(struct vmm_mem *m);
void vmm__mem_close(struct vmm_mem *m);

/* event.c */
int vmm__event_init(struct vmm_vm *vm);
void vmm__event_close(struct vmm_vm *vm);

/* cpuid.c, msr.c */
int vmm__cpuid_init(struct vmm_vm *vm, struct kb_errmsg *err);
int vmm__cpuid_set(struct vmm_vcpu *vcpu, struct kb_errmsg *err);
int vmm__msr_setup(struct vmm_vcpu *vcpu, struct kb_errmsg *err);
/* The MSRs the state module saves: the allow-list filtered by what KVM reports. */
int vmm__msr_list(struct vmm_vm *vm, uint32_t *out, int max);

/* vcpu.c */
int vmm__vcpu_create(struct vmm_vm *vm, int id, struct kb_errmsg *err);
void vmm__vcpu_close(struct vmm_vcpu *vcpu);
int vmm__vcpu_start(struct vmm_vcpu *vcpu);
/* Forces the vCPU out of KVM_RUN (immediate_exit + signal). */
void vmm__vcpu_kick(struct vmm_vcpu *vcpu);

/* boot_kguest.c, boot_linux.c: load the image and set every vCPU's entry state. */
int vmm__boot_kguest(struct vmm_vm *vm, struct kb_errmsg *err);
int vmm__boot_linux(struct vmm_vm *vm, struct kb_errmsg *err);
/* Rewrites what depends on the devices (the MP table's PCI routes) before first start. */
int vmm__boot_linux_devices(struct vmm_vm *vm, struct kb_errmsg *err);
/* Loads the configured guest (either kind). */
int vmm__load_guest(struct vmm_vm *vm, struct kb_errmsg *err);

/* Reads a whole file of at most max bytes; caller frees *out with kb_free. */
int vmm__read_file(const char *path, uint64_t max, uint8_t **out, uint64_t *len,
		   struct kb_errmsg *err);

/* Core devices. */
int vmm__uart_create(struct vmm_vm *vm, struct kb_errmsg *err);
int vmm__agent_create(struct vmm_vm *vm, struct kb_errmsg *err);
int vmm__testdev_create(struct vmm_vm *vm, struct kb_errmsg *err);
int vmm__reset_ports_create(struct vmm_vm *vm, struct kb_errmsg *err);

/* Wakes whoever waits on vm->notify_fd (the control loop). */
void vmm__notify(struct vmm_vm *vm);

#endif
