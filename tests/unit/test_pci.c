/*
 * The PCI host bridge without KVM: configuration cycles on 0xCF8/0xCFC, a function's
 * configuration space and capabilities, BAR and GSI assignment, and MSI-X, driven through
 * the port and MMIO buses of a VM built by hand exactly as a guest driver would.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/dev/pci_internal.h"
#include "kernel/vmm/dev/virtio/blk/blk.h"
#include "kernel/vmm/dev/virtio/net/net.h"
#include "kernel/vmm/dev/virtio/transport.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "tests/unit/virtio_helpers.h"

/* ---- PCI ------------------------------------------------------------------------------ */

static void test_pci_host_bridge_and_absent_slots(void **state)
{
	struct vmm_vm *vm = vt_vm_new();
	uint32_t a = 0x80000000u, v;

	assert_int_equal(vt_pci_rd(vm, 0, VMM_PCI_VENDOR_ID, 4), 0x0d578086);
	assert_int_equal(vt_pci_rd(vm, 0, VMM_PCI_DEVICE_ID, 2), 0x0d57);
	assert_int_equal(vt_pci_rd(vm, 0, 0x0b, 1), 0x06); /* class: bridge */
	assert_int_equal(vt_pci_rd(vm, 0, 0x0a, 1), 0x00); /* subclass: host */
	assert_int_equal(vt_pci_rd(vm, 0, VMM_PCI_INT_PIN, 1), 0);
	assert_int_equal(vt_pci_rd(vm, 1, 0, 4), 0xffffffff); /* empty slot */
	assert_int_equal(vt_pci_rd(vm, 31, 0, 2), 0xffff);

	/* The address latch reads back (Linux's type-1 probe). */
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	v = 0;
	vmm_bus_read(&vm->pio, 0xcf8, &v, 4);
	assert_int_equal(v, 0x80000000u);
	/* Enable bit clear, another bus, another function: all ones. */
	a = 0x00000000u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	a = 0x80010000u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	a = 0x80000100u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	/* A byte write to 0xCFB does not change the latch. */
	a = 0x80000000u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	uint8_t one = 1;
	vmm_bus_write(&vm->pio, 0xcfb, &one, 1);
	vmm_bus_read(&vm->pio, 0xcf8, &v, 4);
	assert_int_equal(v, 0x80000000u);
	/* The bridge's read-only registers stay. */
	vt_pci_wr(vm, 0, VMM_PCI_VENDOR_ID, 0x12345678, 4);
	assert_int_equal(vt_pci_rd(vm, 0, VMM_PCI_VENDOR_ID, 4), 0x0d578086);
	vt_vm_free(vm);
}

static void test_pci_function_config_space(void **state)
{
	struct vmm_vm *vm = vt_vm_new();
	struct kb_errmsg err = {{0}};
	uint32_t bar;

	assert_int_equal(vmm_virtio_blk_create(vm, vt_temp_image(1 << 20), false, &err), 0);
	unlink(vt_temp_image(0)); /* the static name: the image stays open */

	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(vt_pci_rd(vm, 1, 0, 4), 0x10421af4);
	/* 1- and 2-byte reads at every byte offset of the dword */
	assert_int_equal(vt_pci_rd(vm, 1, 1, 1), 0x1a);
	assert_int_equal(vt_pci_rd(vm, 1, 3, 1), 0x10);
	assert_int_equal(vt_pci_rd(vm, 1, 1, 2), 0x421a);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_REVISION, 1), 1);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_REVISION, 4) >> 8, 0x010000);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_SUBSYS_VENDOR, 2), 0x1af4);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_SUBSYS_ID, 2), 0x1100);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_INT_PIN, 1), 1);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_INT_LINE, 1), 5);
	assert_true(vt_pci_rd(vm, 1, VMM_PCI_STATUS, 2) & VMM_PCI_STATUS_CAP_LIST);

	/* BAR 0: the assigned address; sizing; writes of other addresses ignored. */
	bar = vt_pci_rd(vm, 1, VMM_PCI_BAR0, 4);
	assert_int_equal(bar, (uint32_t)VMM_PCI_MMIO_BASE);
	vt_pci_wr(vm, 1, VMM_PCI_BAR0, 0xffffffff, 4);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_BAR0, 4), (uint32_t) ~(VIRTIO_BAR_SIZE - 1));
	vt_pci_wr(vm, 1, VMM_PCI_BAR0, bar, 4);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_BAR0, 4), bar);
	vt_pci_wr(vm, 1, VMM_PCI_BAR0, 0xd0000000, 4);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_BAR0, 4), bar);
	for (unsigned i = 1; i < 6; i++) {
		vt_pci_wr(vm, 1, VMM_PCI_BAR0 + 4 * i, 0xffffffff, 4);
		assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_BAR0 + 4 * i, 4), 0);
	}
	vt_pci_wr(vm, 1, VMM_PCI_ROM, 0xfffff800, 4);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_ROM, 4), 0);

	/* Command: only the defined bits stick; status and ids are read-only. */
	vt_pci_wr(vm, 1, VMM_PCI_COMMAND, 0xffff, 2);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_COMMAND, 2), 0x0547);
	vt_pci_wr(vm, 1, VMM_PCI_STATUS, 0xffff, 2);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_STATUS, 2), VMM_PCI_STATUS_CAP_LIST);
	vt_pci_wr(vm, 1, VMM_PCI_INT_LINE, 11, 1);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_INT_LINE, 1), 11);
	vt_pci_wr(vm, 1, VMM_PCI_INT_PIN, 3, 1);
	assert_int_equal(vt_pci_rd(vm, 1, VMM_PCI_INT_PIN, 1), 1);

	/* With memory decoding off the BAR reads as all ones and ignores writes. */
	vt_pci_wr(vm, 1, VMM_PCI_COMMAND, 0, 2);
	assert_int_equal(vt_mr(vm, bar + VIRTIO_COMMON_OFF + 0x12, 2), 0xffff);
	vt_pci_wr(vm, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM, 2);
	assert_int_equal(vt_mr(vm, bar + VIRTIO_COMMON_OFF + 0x12, 2), 1); /* num_queues */

	/* Capabilities: MSI-X and the five virtio structures. */
	struct vt_drv d;
	vt_drv_probe(&d, vm, 1);
	assert_int_equal(d.common, bar + VIRTIO_COMMON_OFF);
	assert_int_equal(d.isr, bar + VIRTIO_ISR_OFF);
	assert_int_equal(d.device, bar + VIRTIO_DEVICE_OFF);
	assert_int_equal(d.notify, bar + VIRTIO_NOTIFY_OFF);
	assert_int_equal(d.mult, VIRTIO_NOTIFY_MULT);
	assert_int_equal(d.msix, 0x40); /* the layout docs/virtio.md gives */
	assert_int_equal(d.window, 0x90);
	assert_int_equal(vt_pci_rd(vm, 1, d.msix + 2, 2), 1); /* 2 vectors */
	assert_int_equal(vt_pci_rd(vm, 1, d.msix + 4, 4), VIRTIO_MSIX_TABLE_OFF);
	assert_int_equal(vt_pci_rd(vm, 1, d.msix + 8, 4), VIRTIO_MSIX_PBA_OFF);

	/* The configuration access window reads the common configuration. */
	vt_pci_wr(vm, 1, d.window + 4, 0, 1);
	vt_pci_wr(vm, 1, d.window + 8, VIRTIO_COMMON_OFF + 0x12, 4);
	vt_pci_wr(vm, 1, d.window + 12, 2, 4);
	assert_int_equal(vt_pci_rd(vm, 1, d.window + 16, 2), 1);
	/* ... and writes through it (queue_select = 5, read back directly). */
	vt_pci_wr(vm, 1, d.window + 8, VIRTIO_COMMON_OFF + 0x16, 4);
	vt_pci_wr(vm, 1, d.window + 16, 5, 2);
	assert_int_equal(vt_mr(vm, d.common + 0x16, 2), 5);
	vt_vm_free(vm);
}

static void test_pci_bar_and_gsi_assignment(void **state)
{
	struct vmm_vm *vm = vt_vm_new();
	struct kb_errmsg err = {{0}};
	struct vmm_pci_route routes[8];
	static const uint32_t gsis[] = {5, 9, 10, 11, 5, 9};
	char *img = vt_temp_image(4096);

	for (int i = 0; i < 6; i++)
		assert_int_equal(vmm_virtio_blk_create(vm, img, true, &err), 0);
	unlink(img);
	assert_int_equal(vmm_pci_routes(vm->pci, routes, 8), 6);
	for (unsigned s = 1; s <= 6; s++) {
		uint32_t bar = vt_pci_rd(vm, s, VMM_PCI_BAR0, 4);
		assert_int_equal(bar, VMM_PCI_MMIO_BASE + (s - 1) * VIRTIO_BAR_SIZE);
		assert_int_equal(vt_pci_rd(vm, s, VMM_PCI_INT_LINE, 1), gsis[s - 1]);
		assert_int_equal(routes[s - 1].slot, s);
		assert_int_equal(routes[s - 1].pin, 1);
		assert_int_equal(routes[s - 1].gsi, gsis[s - 1]);
	}
	/* Device ids are per type instance numbers. */
	vt_find_dev(vm, VMM_DEV_ID(VMM_DEV_VIRTIO_BLK, 5));
	vt_find_dev(vm, VMM_DEV_ID(VMM_DEV_PCI, 0));
	vt_vm_free(vm);
}

static void test_msix(void **state)
{
	struct vt_blkfx f;
	struct vmm_pci_func *fn;

	vt_blk_setup(&f, false, VIRTIO_F_VERSION_1);
	fn = f.vm->pci->slots[1];
	uint64_t table = f.d.bar0 + VIRTIO_MSIX_TABLE_OFF, pba = f.d.bar0 + VIRTIO_MSIX_PBA_OFF;

	/* Entries start masked; only the mask bit of vector control sticks. */
	assert_int_equal(vt_mr(f.vm, table + 12, 4), 1);
	vt_mw(f.vm, table + 0, 0xfee00003, 4);
	vt_mw(f.vm, table + 8, 0x4041, 4);
	vt_mw(f.vm, table + 16, 0xfee00000ull, 8);
	vt_mw(f.vm, table + 24, 0x4042ull | (1ull << 32), 8);
	assert_int_equal(vt_mr(f.vm, table + 0, 4), 0xfee00000);
	assert_int_equal(vt_mr(f.vm, table + 8, 4), 0x4041);
	assert_int_equal(vt_mr(f.vm, table + 24, 4), 0x4042);
	vt_mw(f.vm, table + 28, 0xfffffffe, 4);
	assert_int_equal(vt_mr(f.vm, table + 28, 4), 0);

	/* Enable MSI-X with the function masked; route queue 0 to vector 1. */
	vt_pci_wr(f.vm, 1, f.d.msix + 2, VMM_PCI_MSIX_CTRL_ENABLE | VMM_PCI_MSIX_CTRL_MASK, 2);
	assert_int_equal(vt_pci_rd(f.vm, 1, f.d.msix + 2, 2),
			 VMM_PCI_MSIX_CTRL_ENABLE | VMM_PCI_MSIX_CTRL_MASK | 1);
	vt_mw(f.vm, f.d.common + 0x16, 0, 2);
	vt_mw(f.vm, f.d.common + 0x1a, 1, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x1a, 2), 1);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
			 VIRTIO_BLK_S_OK);
	/* No ISR, no INTx with MSI-X on: the vector is pending while masked. */
	assert_false(fn->intx_out);
	assert_int_equal(vt_mr(f.vm, f.d.isr, 1), 0);
	assert_int_equal(vt_mr(f.vm, pba, 8), 2);
	/* Unmasking the function sends it (the irqchip refuses here: vm_fd is -1). */
	vt_pci_wr(f.vm, 1, f.d.msix + 2, VMM_PCI_MSIX_CTRL_ENABLE, 2);
	assert_int_equal(vt_mr(f.vm, pba, 8), 0);
	/* A masked vector pends; unmasking it sends it. */
	vt_mw(f.vm, table + 28, 1, 4);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(vt_mr(f.vm, pba, 4), 2);
	vt_mw(f.vm, table + 28, 0, 4);
	assert_int_equal(vt_mr(f.vm, pba, 4), 0);
	/* The PBA is read-only. */
	vt_mw(f.vm, pba, 0xff, 4);
	assert_int_equal(vt_mr(f.vm, pba, 4), 0);
	/* A queue without a vector signals nothing. */
	vt_mw(f.vm, f.d.common + 0x1a, 0xffff, 2);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(vt_mr(f.vm, pba, 4), 0);
	vt_blk_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pci_host_bridge_and_absent_slots),
	    cmocka_unit_test(test_pci_function_config_space),
	    cmocka_unit_test(test_pci_bar_and_gsi_assignment),
	    cmocka_unit_test(test_msix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
