/*
 * virtio-net without KVM: TX and RX through rings in guest memory of a VM built by hand,
 * with a socketpair as the backend (stalls, drops, pause), start at DRIVER_OK, and
 * save/restore with refusals of bad records.
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

/* ---- virtio-net ----------------------------------------------------------------------- */

struct netfx {
	struct vmm_vm *vm;
	struct vmm_virtio_net *n;
	int peer; /* the host side of the backend */
	struct vt_drv d;
	struct vt_gq rx, tx;
};

static void net_setup(struct netfx *f, bool start)
{
	struct kb_errmsg err = {{0}};
	int sv[2];

	f->vm = vt_vm_new();
	assert_int_equal(vmm__event_init(f->vm), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	f->peer = sv[1];
	assert_int_equal(vmm__virtio_net_create_fd(f->vm, sv[0], vt_test_mac, &f->n, &err), 0);
	vt_drv_probe(&f->d, f->vm, 1);
	assert_int_equal(vt_pci_rd(f->vm, 1, VMM_PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(vt_pci_rd(f->vm, 1, 0x0b, 1), 0x02);
	if (!start)
		return;
	assert_true(
	    vt_drv_init(&f->d, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS));
	vt_gq_setup(&f->d, &f->rx, VIRTIO_NET_RXQ, 16, Q0_BASE);
	vt_gq_setup(&f->d, &f->tx, VIRTIO_NET_TXQ, 16, Q1_BASE);
	vt_drv_ok(&f->d);
}

static void net_teardown(struct netfx *f)
{
	close(f->peer);
	vt_vm_free(f->vm);
}

/* Posts RX buffer i (2 KiB at DATA_GPA + i * 2 KiB) as descriptor i. */
static void post_rx(struct netfx *f, uint16_t i, uint32_t len)
{
	vt_gq_desc(&f->rx, i, DATA_GPA + 2048ull * i, len, VMM_VRING_DESC_F_WRITE, 0);
	vt_gq_put(&f->rx, i);
}

static bool wait_used(struct vt_gq *g, uint16_t idx)
{
	uint64_t end = kb_now_ns() + 2 * KB_NSEC_PER_SEC;

	while (vt_gq_used_idx(g) != idx) {
		if (kb_now_ns() > end)
			return false;
		usleep(1000);
	}
	return true;
}

static void send_frame(int fd, const char *payload, size_t len)
{
	uint8_t pkt[12 + 14 + 256] = {0};

	pkt[2] = 0x77; /* a header field the device must not pass on */
	memset(pkt + 12, 0xff, 6);
	memcpy(pkt + 12 + 6, vt_test_mac, 6);
	memcpy(pkt + 12 + 14, payload, len);
	assert_int_equal(send(fd, pkt, 12 + 14 + len, 0), (ssize_t)(12 + 14 + len));
}

static void test_net_tx_rx(void **state)
{
	struct netfx f;
	uint8_t buf[2048];
	uint32_t id, len;

	net_setup(&f, true);
	for (int i = 0; i < 6; i++)
		assert_int_equal(vt_mr(f.vm, f.d.device + (uint64_t)i, 1), vt_test_mac[i]);
	assert_int_equal(vt_mr(f.vm, f.d.device + 6, 2), VIRTIO_NET_S_LINK_UP);

	/* TX: header (guest's, ignored) + frame split across two buffers. */
	memset(vt_ram(f.vm, HDR_GPA), 0x33, 12);
	memcpy(vt_ram(f.vm, DATA_GPA), "\x01\x02\x03\x04\x05\x06\x52\x54\x00\x12\x34\x56\x08\x00",
	       14);
	memcpy(vt_ram(f.vm, DATA_GPA + 14), "hello, wire", 11);
	vt_gq_desc(&f.tx, 0, HDR_GPA, 12, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.tx, 1, DATA_GPA, 25, 0, 0);
	vt_gq_put(&f.tx, 0);
	vt_gq_kick(&f.tx);
	assert_true(vt_gq_get(&f.tx, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	ssize_t n = recv(f.peer, buf, sizeof(buf), 0);
	assert_int_equal(n, 12 + 25);
	assert_memory_equal(buf, (uint8_t[12]){0}, 12);
	assert_memory_equal(buf + 12, vt_ram(f.vm, DATA_GPA), 25);
	/* A frame without a full header and Ethernet header is dropped, still returned. */
	vt_gq_desc(&f.tx, 0, HDR_GPA, 20, 0, 0);
	vt_gq_put(&f.tx, 0);
	vt_gq_kick(&f.tx);
	assert_true(vt_gq_get(&f.tx, &id, &len));
	assert_int_equal(recv(f.peer, buf, sizeof(buf), 0), -1);
	assert_int_equal(f.n->tx_frames, 1);
	assert_int_equal(f.n->tx_dropped, 1);

	/* RX on the event thread into a posted buffer: fresh header, frame, dirty pages. */
	vt_dirty_clear(f.vm);
	post_rx(&f, 0, 2048);
	vt_gq_kick(&f.rx);
	send_frame(f.peer, "ping", 4);
	assert_true(wait_used(&f.rx, 1));
	assert_true(vt_gq_get(&f.rx, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 12 + 14 + 4);
	uint8_t want_hdr[12] = {0};
	want_hdr[10] = 1; /* num_buffers */
	assert_memory_equal(vt_ram(f.vm, DATA_GPA), want_hdr, 12);
	assert_memory_equal(vt_ram(f.vm, DATA_GPA + 12 + 14), "ping", 4);
	assert_true(vt_page_dirty(f.vm, DATA_GPA));
	assert_true(vt_page_dirty(f.vm, f.rx.used));
	assert_int_equal(vt_dirty_count(f.vm), 2);

	/* No buffer posted: the frame waits in the backend until the guest posts one and
	 * notifies; the delivery happens on the notifying thread. */
	send_frame(f.peer, "late", 4);
	usleep(20000);
	assert_int_equal(vt_gq_used_idx(&f.rx), 1);
	assert_true(f.n->rx_stalled);
	post_rx(&f, 1, 2048);
	vt_gq_kick(&f.rx);
	assert_int_equal(vt_gq_used_idx(&f.rx), 2);
	assert_true(vt_gq_get(&f.rx, &id, &len));
	assert_int_equal(id, 1);
	assert_memory_equal(vt_ram(f.vm, DATA_GPA + 2048 + 26), "late", 4);

	/* A buffer too small for the frame is kept; the frame is dropped. */
	post_rx(&f, 2, 30);
	vt_gq_kick(&f.rx);
	send_frame(f.peer, "0123456789", 10);
	send_frame(f.peer, "ok", 2);
	assert_true(wait_used(&f.rx, 3));
	assert_true(vt_gq_get(&f.rx, &id, &len));
	assert_int_equal(id, 2);
	assert_int_equal(len, 28);
	assert_int_equal(f.n->rx_dropped, 1);

	/* Paused: nothing is written into guest memory until unpaused. */
	struct vmm_dev *dev = vt_find_dev(f.vm, VMM_DEV_ID(VMM_DEV_VIRTIO_NET, 0));
	dev->ops->pause(dev->opaque, true);
	post_rx(&f, 3, 2048);
	vt_gq_kick(&f.rx);
	vt_dirty_clear(f.vm);
	send_frame(f.peer, "held", 4);
	usleep(20000);
	assert_int_equal(vt_gq_used_idx(&f.rx), 3);
	assert_int_equal(vt_dirty_count(f.vm), 0);
	dev->ops->pause(dev->opaque, false);
	assert_int_equal(vt_gq_used_idx(&f.rx), 4);
	assert_memory_equal(vt_ram(f.vm, DATA_GPA + 3 * 2048 + 26), "held", 4);

	/* INTx carried the notifications; the ISR says so. */
	assert_int_equal(vt_mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);
	/* A malformed RX chain sets NEEDS_RESET; frames stay in the backend. */
	vt_gq_desc(&f.rx, 4, RAM_SIZE, 2048, VMM_VRING_DESC_F_WRITE, 0);
	vt_gq_put(&f.rx, 4);
	vt_gq_kick(&f.rx);
	send_frame(f.peer, "lost", 4);
	usleep(20000);
	assert_true(vt_drv_status(&f.d) & VIRTIO_S_NEEDS_RESET);
	net_teardown(&f);
}

static void test_net_start_and_save_restore(void **state)
{
	struct netfx f;
	struct kb_buf rec, rec2;
	uint32_t id = VMM_DEV_ID(VMM_DEV_VIRTIO_NET, 0), used_id, len;
	uint8_t *mem = malloc(RAM_SIZE);
	uint8_t buf[256];

	net_setup(&f, false);
	/* Buffers and frames made available before DRIVER_OK move at DRIVER_OK. */
	assert_true(vt_drv_init(&f.d, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC));
	vt_gq_setup(&f.d, &f.rx, VIRTIO_NET_RXQ, 16, Q0_BASE);
	vt_gq_setup(&f.d, &f.tx, VIRTIO_NET_TXQ, 16, Q1_BASE);
	post_rx(&f, 0, 2048);
	post_rx(&f, 1, 2048);
	vt_gq_kick(&f.rx);
	send_frame(f.peer, "early", 5);
	usleep(20000);
	assert_int_equal(vt_gq_used_idx(&f.rx), 0);
	vt_drv_ok(&f.d);
	assert_int_equal(vt_gq_used_idx(&f.rx), 1);

	/* Save with one RX buffer still posted (the event thread runs one VM per process:
	 * the first VM goes before the second comes). */
	struct vmm_dev *dev = vt_find_dev(f.vm, id);
	dev->ops->pause(dev->opaque, true);
	vt_save_dev(f.vm, id, &rec);
	memcpy(mem, f.vm->mem.base, RAM_SIZE);
	struct netfx g = f;
	net_teardown(&f);

	/* A fresh device on a new backend with the same memory. */
	net_setup(&f, false);
	memcpy(f.vm->mem.base, mem, RAM_SIZE);
	f.rx.d = f.tx.d = &f.d;
	f.rx.next_avail = g.rx.next_avail;
	f.rx.last_used = g.rx.last_used;
	dev = vt_find_dev(f.vm, id);
	dev->ops->pause(dev->opaque, true);
	assert_int_equal(vt_restore_dev(f.vm, id, rec.data, rec.len), 0);
	vt_save_dev(f.vm, id, &rec2);
	assert_int_equal(rec2.len, rec.len);
	assert_memory_equal(rec2.data, rec.data, rec.len);
	assert_int_equal(vt_drv_status(&f.d), VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER |
						  VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK);

	/* Restored while paused: a frame waits until the core unpauses the device. */
	send_frame(f.peer, "after", 5);
	usleep(20000);
	assert_int_equal(vt_gq_used_idx(&f.rx), 1);
	dev->ops->pause(dev->opaque, false);
	assert_int_equal(vt_gq_used_idx(&f.rx), 2);
	assert_true(vt_gq_get(&f.rx, &used_id, &len));
	assert_true(vt_gq_get(&f.rx, &used_id, &len));
	assert_int_equal(used_id, 1);
	assert_memory_equal(vt_ram(f.vm, DATA_GPA + 2048 + 26), "after", 5);
	/* TX goes on where the saved ring left off. */
	memcpy(vt_ram(f.vm, DATA_GPA + 8192),
	       "\x01\x02\x03\x04\x05\x06\x52\x54\x00\x12\x34\x56\x08\x00", 14);
	vt_gq_desc(&f.tx, 0, HDR_GPA, 12, VMM_VRING_DESC_F_NEXT, 1);
	vt_gq_desc(&f.tx, 1, DATA_GPA + 8192, 14, 0, 0);
	vt_gq_put(&f.tx, 0);
	vt_gq_kick(&f.tx);
	assert_true(vt_gq_get(&f.tx, &used_id, &len));
	assert_int_equal(recv(f.peer, buf, sizeof(buf), 0), 26);

	/* Bad records change nothing: truncations, flipped bytes, another MAC. */
	vt_check_truncations(f.vm, id, &rec);
	vt_check_corruptions(f.vm, id, &rec);
	uint8_t *copy = malloc(rec.len);
	memcpy(copy, rec.data, rec.len);
	copy[rec.len - 3] ^= 1; /* last MAC byte */
	assert_int_equal(vt_restore_dev(f.vm, id, copy, rec.len), KB_EPROTO);
	free(copy);

	kb_buf_close(&rec);
	kb_buf_close(&rec2);
	free(mem);
	net_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_net_tx_rx),
	    cmocka_unit_test(test_net_start_and_save_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
