/*
 * virtio-blk without KVM: requests through rings in guest memory of a VM built by hand
 * (reads, writes, flush, GET_ID, errors, indirect tables, read-only images), interrupts,
 * dirty pages, and save/restore with refusals of bad records.
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

/* ---- virtio-blk ----------------------------------------------------------------------- */

static void test_blk_write_then_read(void **state)
{
	struct vt_blkfx f;
	uint8_t buf[8192];
	uint32_t ulen;

	vt_blk_setup(&f, false, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX);
	/* Device configuration: capacity and seg_max. */
	assert_int_equal(vt_mr(f.vm, f.d.device + 0, 8), (1 << 20) / 512);
	assert_int_equal(vt_mr(f.vm, f.d.device + 12, 4), VIRTIO_BLK_SEG_MAX);
	uint64_t host = vt_drv_host_features(&f.d);
	assert_true(host & VIRTIO_F_VERSION_1);
	assert_true(host & VIRTIO_F_INDIRECT_DESC);
	assert_true(host & VIRTIO_BLK_F_FLUSH);
	assert_false(host & VIRTIO_BLK_F_RO);

	for (unsigned i = 0; i < sizeof(buf); i++)
		vt_ram(f.vm, DATA_GPA)[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_OUT, 8, DATA_GPA, 8192, false, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1);
	assert_int_equal(pread(f.img_fd, buf, sizeof(buf), 8 * 512), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, vt_ram(f.vm, DATA_GPA), sizeof(buf));

	/* INTx: ISR bit 0 and the GSI raised; reading the ISR lowers it. */
	struct vmm_pci_func *fn = f.vm->pci->slots[1];
	assert_true(fn->intx_out);
	assert_int_equal(f.vm->pci->gsi_refs[5], 1);
	assert_true(vt_pci_rd(f.vm, 1, VMM_PCI_STATUS, 2) & VMM_PCI_STATUS_INTX);
	assert_int_equal(vt_mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);
	assert_false(fn->intx_out);
	assert_int_equal(f.vm->pci->gsi_refs[5], 0);
	assert_int_equal(vt_mr(f.vm, f.d.isr, 1), 0);

	/* Read back into another buffer: the data, and the pages written, dirty. */
	vt_dirty_clear(f.vm);
	memset(vt_ram(f.vm, DATA2_GPA), 0, sizeof(buf));
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_IN, 8, DATA2_GPA, 8192, true, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 8192 + 1);
	assert_memory_equal(vt_ram(f.vm, DATA2_GPA), vt_ram(f.vm, DATA_GPA), sizeof(buf));
	assert_true(vt_page_dirty(f.vm, DATA2_GPA));
	assert_true(vt_page_dirty(f.vm, DATA2_GPA + 4096));
	assert_true(vt_page_dirty(f.vm, STATUS_GPA));
	assert_true(vt_page_dirty(f.vm, f.g.used));
	assert_false(vt_page_dirty(f.vm, DATA_GPA));
	assert_int_equal(vt_dirty_count(f.vm), 4); /* data x2, status, used */

	/* INTx disabled in the command register: the line stays low. */
	vt_pci_wr(f.vm, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM | VMM_PCI_CMD_INTX_DISABLE, 2);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1);
	assert_false(fn->intx_out);
	vt_pci_wr(f.vm, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM, 2);
	assert_true(fn->intx_out);
	assert_int_equal(vt_mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);

	/* GET_ID: the image's file name. */
	memset(vt_ram(f.vm, DATA_GPA), 0xaa, 64);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 64, true, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 21);
	assert_memory_equal(vt_ram(f.vm, DATA_GPA), strrchr(f.img, '/') + 1,
			    strlen(strrchr(f.img, '/') + 1));
	assert_int_equal(vt_ram(f.vm, DATA_GPA)[20], 0xaa);

	/* Past the end, a partial sector, an unknown type. */
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_IN, 2047, DATA_GPA, 1024, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_OUT, 2047, DATA_GPA, 512, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 100, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_OUT, ~0ull, DATA_GPA, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_do(&f.g, 77, 0, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vt_drv_status(&f.d) & VIRTIO_S_NEEDS_RESET, 0);
	vt_blk_teardown(&f);
}

static void test_blk_readonly_and_indirect(void **state)
{
	struct vt_blkfx f;
	uint32_t id, len;

	vt_blk_setup(&f, true, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_RO);
	assert_true(vt_drv_host_features(&f.d) & VIRTIO_BLK_F_RO);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
			 VIRTIO_BLK_S_OK);

	/* A read through an indirect table of four descriptors, data split in two. */
	assert_int_equal(pwrite(f.img_fd, "0123456789abcdef", 16, 512), 16);
	uint8_t hdr[16] = {0};
	uint64_t sector = 1;
	memcpy(&hdr[8], &sector, 8);
	memcpy(vt_ram(f.vm, HDR_GPA), hdr, 16);
	struct vmm_vring_desc t[4] = {
	    {HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1},
	    {DATA_GPA, 8, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 2},
	    {DATA2_GPA, 504, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 3},
	    {STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0},
	};
	memcpy(vt_ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	vt_gq_desc(&f.g, 5, INDIRECT_GPA, sizeof(t), VMM_VRING_DESC_F_INDIRECT, 0);
	vt_gq_put(&f.g, 5);
	vt_gq_kick(&f.g);
	assert_true(vt_gq_get(&f.g, &id, &len));
	assert_int_equal(id, 5);
	assert_int_equal(len, 513);
	assert_int_equal(*vt_ram(f.vm, STATUS_GPA), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ram(f.vm, DATA_GPA), "01234567", 8);
	assert_memory_equal(vt_ram(f.vm, DATA2_GPA), "89abcdef", 8);
	vt_blk_teardown(&f);
}

static void test_blk_save_restore(void **state)
{
	struct vt_blkfx f;
	struct kb_buf pci_rec, blk_rec, pci2, blk2;
	uint32_t blk_id = VMM_DEV_ID(VMM_DEV_VIRTIO_BLK, 0), pci_id = VMM_DEV_ID(VMM_DEV_PCI, 0);
	struct kb_errmsg err = {{0}};

	vt_blk_setup(&f, false, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_FLUSH);
	vt_pci_wr(f.vm, 1, f.d.msix + 2, VMM_PCI_MSIX_CTRL_MASK, 2); /* a writable bit */
	vt_mw(f.vm, f.d.bar0 + VIRTIO_MSIX_TABLE_OFF + 8, 0x55, 4);
	memcpy(vt_ram(f.vm, DATA_GPA), "saved-and-restored", 18);
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    vt_blk_do(&f.g, VIRTIO_BLK_T_OUT, (uint64_t)i, DATA_GPA, 512, false, NULL),
		    VIRTIO_BLK_S_OK);
	/* Leave the ISR set (INTx asserted) across the save. */
	vt_save_dev(f.vm, pci_id, &pci_rec);
	vt_save_dev(f.vm, blk_id, &blk_rec);

	/* A fresh VM on the same image with a copy of guest memory. */
	struct vmm_vm *vm2 = vt_vm_new();
	assert_int_equal(vmm_virtio_blk_create(vm2, f.img, false, &err), 0);
	memcpy(vm2->mem.base, f.vm->mem.base, RAM_SIZE);
	assert_int_equal(vt_restore_dev(vm2, pci_id, pci_rec.data, pci_rec.len), 0);
	assert_int_equal(vt_restore_dev(vm2, blk_id, blk_rec.data, blk_rec.len), 0);
	vt_save_dev(vm2, pci_id, &pci2);
	vt_save_dev(vm2, blk_id, &blk2);
	assert_int_equal(pci2.len, pci_rec.len);
	assert_memory_equal(pci2.data, pci_rec.data, pci_rec.len);
	assert_int_equal(blk2.len, blk_rec.len);
	assert_memory_equal(blk2.data, blk_rec.data, blk_rec.len);
	assert_true(vm2->pci->slots[1]->intx_out); /* the line is driven again */

	/* Both VMs carry on identically from here. */
	struct vt_drv d2 = f.d;
	struct vt_gq g2 = f.g;
	d2.vm = vm2;
	g2.d = &d2;
	assert_int_equal(vt_mr(vm2, d2.common + 0x14, 1), vt_drv_status(&f.d));
	assert_int_equal(vt_pci_rd(vm2, 1, f.d.msix + 2, 2), vt_pci_rd(f.vm, 1, f.d.msix + 2, 2));
	assert_int_equal(vt_blk_do(&f.g, VIRTIO_BLK_T_IN, 3, DATA2_GPA, 512, true, NULL), 0);
	assert_int_equal(vt_blk_do(&g2, VIRTIO_BLK_T_IN, 3, DATA2_GPA, 512, true, NULL), 0);
	assert_int_equal(vt_gq_used_idx(&g2), 6);
	assert_memory_equal(vt_ram(vm2, 0), vt_ram(f.vm, 0), RAM_SIZE);
	assert_memory_equal(vt_ram(vm2, DATA2_GPA), "saved-and-restored", 18);

	/* Bad records change nothing. */
	vt_check_truncations(vm2, blk_id, &blk_rec);
	vt_check_truncations(vm2, pci_id, &pci_rec);
	vt_check_corruptions(vm2, blk_id, &blk_rec);
	vt_check_corruptions(vm2, pci_id, &pci_rec);

	/* Specific refusals: a queue size that is not a power of two, rings outside RAM,
	 * another disk size. Offsets: header 8, transport fields 24, queue 0 at 32. */
	uint8_t *copy = malloc(blk_rec.len);
	memcpy(copy, blk_rec.data, blk_rec.len);
	copy[32] = 12;
	assert_int_equal(vt_restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EPROTO);
	memcpy(copy, blk_rec.data, blk_rec.len);
	uint64_t far = RAM_SIZE;
	memcpy(&copy[32 + 10], &far, 8);
	assert_int_equal(vt_restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EPROTO);
	memcpy(copy, blk_rec.data, blk_rec.len);
	copy[blk_rec.len - 9] ^= 1;
	assert_int_equal(vt_restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EPROTO);
	memcpy(copy, blk_rec.data, blk_rec.len);
	copy[4] = 2; /* version */
	assert_int_equal(vt_restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EVERSION);
	free(copy);

	/* Reset returns both to power-on state. */
	vt_find_dev(vm2, pci_id)->ops->reset(vm2->pci);
	vt_find_dev(vm2, blk_id)->ops->reset(vt_find_dev(vm2, blk_id)->opaque);
	assert_int_equal(vt_mr(vm2, d2.common + 0x14, 1), 0xff); /* decoding off after reset */
	assert_int_equal(vt_pci_rd(vm2, 1, VMM_PCI_COMMAND, 2), 0);
	vt_pci_wr(vm2, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM, 2);
	assert_int_equal(vt_mr(vm2, d2.common + 0x14, 1), 0);
	assert_false(vm2->pci->slots[1]->intx_out);
	assert_int_equal(vm2->pci->gsi_refs[5], 0);

	kb_buf_close(&pci_rec);
	kb_buf_close(&blk_rec);
	kb_buf_close(&pci2);
	kb_buf_close(&blk2);
	vt_vm_free(vm2);
	vt_blk_teardown(&f);
}

/* ---- virtio-net ----------------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blk_write_then_read),
	    cmocka_unit_test(test_blk_readonly_and_indirect),
	    cmocka_unit_test(test_blk_save_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
