/*
 * The virtio-pci transport without KVM: feature negotiation and device status, queue
 * configuration, malformed descriptor chains ending in DEVICE_NEEDS_RESET, and device
 * creation failures (bad backends, allocation failures, no host bridge).
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

static void test_features_and_status(void **state)
{
	struct vt_blkfx f;

	vt_blk_setup(&f, false, VIRTIO_F_VERSION_1);
	/* Without VERSION_1, or with a bit not offered, FEATURES_OK does not stick. */
	assert_false(vt_drv_init(&f.d, VIRTIO_BLK_F_FLUSH));
	assert_false(vt_drv_init(&f.d, VIRTIO_F_VERSION_1 | (1ull << 40)));
	assert_false(vt_drv_init(&f.d, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_RO)); /* not read-only */
	/* DRIVER_OK without FEATURES_OK is dropped too. */
	vt_mw(f.vm, f.d.common + 0x14, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_DRIVER_OK,
	      1);
	assert_int_equal(vt_drv_status(&f.d), VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	assert_true(vt_drv_init(&f.d, VIRTIO_F_VERSION_1));
	/* Features are fixed after FEATURES_OK. */
	vt_mw(f.vm, f.d.common + 0x08, 0, 4);
	vt_mw(f.vm, f.d.common + 0x0c, 0xffffffff, 4);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x0c, 4), 0);
	/* Queue sizes: powers of two up to the maximum, else ignored. */
	vt_mw(f.vm, f.d.common + 0x16, 0, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x18, 2), VIRTIO_BLK_QUEUE_SIZE);
	vt_mw(f.vm, f.d.common + 0x18, 12, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x18, 2), VIRTIO_BLK_QUEUE_SIZE);
	vt_mw(f.vm, f.d.common + 0x18, 512, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x18, 2), VIRTIO_BLK_QUEUE_SIZE);
	vt_mw(f.vm, f.d.common + 0x18, 8, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x18, 2), 8);
	/* A queue that does not exist reads as size 0 and ignores writes. */
	vt_mw(f.vm, f.d.common + 0x16, 3, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x18, 2), 0);
	vt_mw(f.vm, f.d.common + 0x1c, 1, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x1c, 2), 0);
	/* Vectors past the MSI-X table read back as NO_VECTOR. */
	vt_mw(f.vm, f.d.common + 0x10, 7, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x10, 2), 0xffff);
	vt_mw(f.vm, f.d.common + 0x10, 1, 2);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x10, 2), 1);
	vt_blk_teardown(&f);
}

/* Each malformed ring ends in DEVICE_NEEDS_RESET with nothing written; a reset recovers. */
static void expect_needs_reset(struct vt_blkfx *f, int line)
{
	if (!(vt_drv_status(&f->d) & VIRTIO_S_NEEDS_RESET))
		fail_msg("case at line %d: device did not ask for a reset", line);
	assert_int_equal(vt_gq_used_idx(&f->g), f->g.last_used);
	assert_int_equal(vt_mr(f->vm, f->d.isr, 1), VIRTIO_ISR_CONFIG);
	/* Notifications are ignored until the reset. */
	vt_gq_kick(&f->g);
	assert_int_equal(vt_gq_used_idx(&f->g), f->g.last_used);
	assert_true(vt_drv_init(&f->d, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(vt_drv_status(&f->d) & VIRTIO_S_NEEDS_RESET, 0);
	vt_gq_setup(&f->d, &f->g, 0, 16, Q0_BASE);
	vt_drv_ok(&f->d);
	assert_int_equal(vt_blk_do(&f->g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(vt_mr(f->vm, f->d.isr, 1), VIRTIO_ISR_QUEUE);
}

static void chain_and_kick(struct vt_blkfx *f, uint16_t head)
{
	vt_dirty_clear(f->vm);
	vt_gq_put(&f->g, head);
	vt_gq_kick(&f->g);
	assert_int_equal(vt_dirty_count(f->vm), 0);
}

static void test_malformed_chains(void **state)
{
	struct vt_blkfx f;

	vt_blk_setup(&f, false, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);

	/* A buffer outside guest RAM. */
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.g, 1, RAM_SIZE + 4096, 512, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE,
		   2);
	vt_gq_desc(&f.g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* A buffer crossing the end of RAM, and one whose end wraps around. */
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.g, 1, RAM_SIZE - 256, 512, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 2);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.g, 1, ~0ull - 100, 0xffffffff, VMM_VRING_DESC_F_WRITE | VMM_VRING_DESC_F_NEXT,
		   2);
	vt_gq_desc(&f.g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* A loop: 0 -> 1 -> 0. */
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.g, 1, STATUS_GPA, 1, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* next out of range, head out of range. */
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 16);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	chain_and_kick(&f, 16);
	expect_needs_reset(&f, __LINE__);

	/* A chain as long as the queue is fine... (16 descriptors, 15 of them 1-byte writes) */
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	for (uint16_t i = 1; i < 16; i++)
		vt_gq_desc(&f.g, i, STATUS_GPA + i, 1,
			   VMM_VRING_DESC_F_WRITE | (i < 15 ? VMM_VRING_DESC_F_NEXT : 0), i + 1);
	memset(vt_ram(f.vm, HDR_GPA), 0, 16);
	*(uint32_t *)vt_ram(f.vm, HDR_GPA) = VIRTIO_BLK_T_FLUSH;
	vt_gq_put(&f.g, 0);
	vt_gq_kick(&f.g);
	uint32_t id, len;
	assert_true(vt_gq_get(&f.g, &id, &len));
	assert_int_equal(vt_drv_status(&f.d) & VIRTIO_S_NEEDS_RESET, 0);
	assert_int_equal(vt_mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);

	/* ... an avail index more than a queue ahead is not. */
	uint16_t bogus = f.g.next_avail + 17;
	*(uint16_t *)vt_ram(f.vm, f.g.avail + 2) = bogus;
	vt_gq_kick(&f.g);
	expect_needs_reset(&f, __LINE__);

	/* Readable after writable. */
	vt_gq_desc(&f.g, 0, STATUS_GPA, 1, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 1);
	vt_gq_desc(&f.g, 1, HDR_GPA, 16, 0, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* Indirect: nested, with NEXT, bad size, outside RAM, loop inside the table, and
	 * longer than VMM_VQ_MAX_SEGS. */
	struct vmm_vring_desc t[2] = {
	    {HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1},
	    {INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0},
	};
	memcpy(vt_ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	vt_gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	vt_gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT | VMM_VRING_DESC_F_NEXT, 1);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	vt_gq_desc(&f.g, 0, INDIRECT_GPA, 33, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	vt_gq_desc(&f.g, 0, RAM_SIZE - 16, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	t[1] = (struct vmm_vring_desc){STATUS_GPA, 1,
				       VMM_VRING_DESC_F_WRITE | VMM_VRING_DESC_F_NEXT, 0};
	memcpy(vt_ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	vt_gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	vt_gq_desc(&f.g, 0, INDIRECT_GPA, 16 * (VMM_VQ_MAX_SEGS + 1), VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* Indirect descriptors the driver did not negotiate. */
	assert_true(vt_drv_init(&f.d, VIRTIO_F_VERSION_1));
	vt_gq_setup(&f.d, &f.g, 0, 16, Q0_BASE);
	vt_drv_ok(&f.d);
	t[1] = (struct vmm_vring_desc){STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0};
	memcpy(vt_ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	vt_gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* Rings outside RAM or misaligned when the queue is enabled. */
	assert_true(vt_drv_init(&f.d, VIRTIO_F_VERSION_1));
	vt_gq_setup_at(&f.d, &f.g, 0, 16, RAM_SIZE - 128, Q0_BASE + 0x1000, Q0_BASE + 0x2000);
	assert_true(vt_drv_status(&f.d) & VIRTIO_S_NEEDS_RESET);
	assert_int_equal(vt_mr(f.vm, f.d.common + 0x1c, 2), 0);
	assert_true(vt_drv_init(&f.d, VIRTIO_F_VERSION_1));
	vt_gq_setup_at(&f.d, &f.g, 0, 16, Q0_BASE + 8, Q0_BASE + 0x1000, Q0_BASE + 0x2000);
	assert_true(vt_drv_status(&f.d) & VIRTIO_S_NEEDS_RESET);

	/* A chain without a status byte is returned unused; the device goes on. */
	assert_true(vt_drv_init(&f.d, VIRTIO_F_VERSION_1));
	vt_gq_setup(&f.d, &f.g, 0, 16, Q0_BASE);
	vt_drv_ok(&f.d);
	vt_gq_desc(&f.g, 0, HDR_GPA, 16, 0, 0);
	vt_gq_put(&f.g, 0);
	vt_gq_kick(&f.g);
	assert_true(vt_gq_get(&f.g, &id, &len));
	assert_int_equal(len, 0);
	assert_int_equal(vt_drv_status(&f.d) & VIRTIO_S_NEEDS_RESET, 0);
	/* A short header is an I/O error. */
	vt_gq_desc(&f.g, 0, HDR_GPA, 8, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.g, 1, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	vt_gq_put(&f.g, 0);
	vt_gq_kick(&f.g);
	assert_true(vt_gq_get(&f.g, &id, &len));
	assert_int_equal(*vt_ram(f.vm, STATUS_GPA), VIRTIO_BLK_S_IOERR);
	vt_blk_teardown(&f);
}

static void test_create_errors(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm = vt_vm_new();
	char *img;
	int rv;

	assert_int_equal(vmm_virtio_blk_create(vm, "/nonexistent/disk.img", false, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/disk.img"));
	img = vt_temp_image(100);
	assert_int_equal(vmm_virtio_blk_create(vm, img, false, &err), KB_ECONFIG);
	unlink(img);
	assert_int_equal(vmm_virtio_net_create(vm, "", vt_test_mac, &err), KB_ECONFIG);
	assert_int_equal(
	    vmm_virtio_net_create(vm, "a-name-far-too-long-for-linux", vt_test_mac, &err),
	    KB_ECONFIG);
	assert_int_equal(vmm_pci_init(vm), KB_ESTATE);

	/* Allocation failures: each step fails cleanly, then creation succeeds. */
	img = vt_temp_image(1 << 20);
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = vmm_virtio_blk_create(vm, img, false, &err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_true(n < 10);
	}
	unlink(img);
	vt_vm_free(vm);

	/* The same for a network device (the backend fd is closed on every failure). */
	vm = vt_vm_new();
	assert_int_equal(vmm__event_init(vm), 0);
	for (int n = 0;; n++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
		kb_heap_fail_after(n, 1);
		rv = vmm__virtio_net_create_fd(vm, sv[0], vt_test_mac, NULL, &err);
		kb_heap_fail_reset();
		close(sv[1]);
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_true(n < 10);
	}
	vt_vm_free(vm);

	/* No bridge: devices refuse. */
	vm = calloc(1, sizeof(*vm));
	kb_list_init(&vm->devs);
	assert_int_equal(vmm_virtio_blk_create(vm, "/dev/null", false, &err), KB_ESTATE);
	free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_features_and_status),
	    cmocka_unit_test(test_malformed_chains),
	    cmocka_unit_test(test_create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
