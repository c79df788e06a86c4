/*
 * Interrupt injection into the in-kernel irqchip (IOAPIC/PIC lines and MSIs).
 */
#include <errno.h>
#include <sys/ioctl.h>

#include "kernel/vmm/vmm.h"

int vmm_irq_line(struct vmm_vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};

	if (vm->vm_fd < 0)
		return -EBADF;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		return -errno;
	return 0;
}

int vmm_irq_msi(struct vmm_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
	    .address_lo = (uint32_t)addr,
	    .address_hi = (uint32_t)(addr >> 32),
	    .data = data,
	};

	if (vm->vm_fd < 0)
		return -EBADF;
	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		return -errno;
	return 0;
}
