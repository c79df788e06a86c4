/*
 * The PC's reset path that Linux tries first when it has no ACPI: the keyboard
 * controller's pulse command (0xFE written to port 0x64) asks the control thread for a
 * reset, as the agent channel does. Reads are not claimed (they see all ones: no keyboard
 * controller). No state. (0xCF9's reset control byte sits inside the PCI bridge's
 * configuration ports.)
 */
#include "kernel/vmm/vmm_internal.h"

#define PORT_KBC_CMD 0x64

static void kbc_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	if (*(const uint8_t *)data == 0xfe)
		vmm_vm_request_reset(opaque);
}

static const struct vmm_io_ops kbc_ops = {.write = kbc_write};

int vmm__reset_ports_create(struct vmm_vm *vm, struct kb_errmsg *err)
{
	int rv = vmm_bus_add(&vm->pio, PORT_KBC_CMD, 1, &kbc_ops, vm);

	if (rv < 0)
		kb_errmsg_setf(err, "reset ports: %s", kb_strerror(rv));
	return rv;
}
