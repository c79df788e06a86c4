/*
 * Boot of Linux guests: PVH entry (uncompressed vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY
 * note) and the 64-bit boot protocol (bzImage), with an initramfs and a command line.
 */
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"

int vmm__boot_linux(struct vmm_vm *vm, struct kb_errmsg *err)
{
	kb_errmsg_setf(err, "Linux guests are not supported by this vmx yet");
	return KB_ENOTSUP;
}
