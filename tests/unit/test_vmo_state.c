/*
 * The vmx pieces a live migration stands on, on real KVM: dirty logging (vCPU writes from
 * KVM's log and the VMM's own writes from its bitmap, each reported once), the VM state
 * without memory to and from a memory buffer (a second VM holding a copy of the pages
 * continues the guest exactly), its refusals, and vCPU throttling (kicks while the guest
 * keeps running and pausing still works), and the MAC announcement a destination sends.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/vmm/dev/virtio/net/net.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/state.h"
#include "kernel/vmm/vmm.h"
#include "lib/buf.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"

#define MEM	    (64ull << 20)
#define COUNTER_GPA 0x8000ull
#define VMM_GPA	    0x300000ull /* a page only the VMM writes in these tests */

static uint64_t mem_u64(struct vmm_vm *vm, uint64_t gpa)
{
	uint64_t v;
	assert_int_equal(vmm_mem_read(&vm->mem, gpa, &v, sizeof(v)), 0);
	return v;
}

static bool bit(const uint64_t *b, uint64_t page)
{
	return (b[page / 64] >> (page % 64)) & 1;
}

static void test_dirty_log_sees_vcpu_and_vmm_writes(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kb_errmsg err = {{0}};
	uint64_t *b = kb_calloc(vm->mem.dirty_words, sizeof(uint64_t));
	uint64_t v = 42;

	assert_non_null(b);
	assert_int_equal(vmm_vm_start(vm), 0);
	assert_int_equal(vmm_mem_log_dirty(vm, true, &err), 0);
	kb_sleep_ns(20 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_mem_write(&vm->mem, VMM_GPA, &v, sizeof(v)), 0);
	assert_int_equal(vmm_mem_fetch_dirty(vm, b, &err), 0);
	assert_true(bit(b, COUNTER_GPA / 4096)); /* the guest's store, from KVM */
	assert_true(bit(b, VMM_GPA / 4096));	 /* the VMM's write, from its bitmap */
	assert_false(bit(b, 0x200000 / 4096));	 /* untouched */

	/* Fetched once: with the guest paused nothing is dirty any more. */
	assert_int_equal(vmm_vm_pause(vm), 0);
	memset(b, 0, vm->mem.dirty_words * sizeof(uint64_t));
	assert_int_equal(vmm_mem_fetch_dirty(vm, b, &err), 0);
	assert_int_equal(vmm_mem_fetch_dirty(vm, b, &err), 0);
	memset(b, 0, vm->mem.dirty_words * sizeof(uint64_t));
	assert_int_equal(vmm_mem_fetch_dirty(vm, b, &err), 0);
	for (uint64_t w = 0; w < vm->mem.dirty_words; w++)
		assert_int_equal(b[w], 0);
	assert_int_equal(vmm_mem_log_dirty(vm, false, &err), 0);
	assert_int_equal(vmm_vm_resume(vm), 0);
	kb_free(b);
	vmm_vm_destroy(vm);
}

/* A running counter, paused, its state without memory in buf; returns the VM. */
static struct vmm_vm *paused_counter(struct kb_buf *buf, struct kvm_regs *regs)
{
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kb_errmsg err = {{0}};

	assert_int_equal(vmm_vm_start(vm), 0);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(vm), 0);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, regs), 0);
	assert_true(regs->r12 > 1000);
	kb_buf_init(buf, 64u << 20);
	if (vmm_state_save_buf(vm, buf, VMM_STATE_NO_MEMORY, &err) != 0)
		fail_msg("save: %s", err.msg);
	assert_true(buf->len > 1000 && buf->len < (1u << 20)); /* no pages in it */
	return vm;
}

static void test_state_without_memory_continues_the_guest(void **state)
{
	NEED_KVM();
	struct kb_buf buf;
	struct kvm_regs saved, now;
	struct kb_errmsg err = {{0}};
	struct vmm_vm *src = paused_counter(&buf, &saved);
	struct vmm_vm *dst = th_payload_vm("counter", MEM, 1);

	/* the pages travel separately: copy them, then load the state over them */
	memcpy(dst->mem.base, src->mem.base, MEM);
	if (vmm_state_load_buf(dst, buf.data, buf.len, VMM_STATE_NO_MEMORY, &err) != 0)
		fail_msg("load: %s", err.msg);
	assert_int_equal(dst->state, VMM_STATE_PAUSED);
	assert_int_equal(memcmp(dst->mem.base, src->mem.base, MEM), 0); /* memory kept */
	assert_int_equal(ioctl(dst->vcpus[0].fd, KVM_GET_REGS, &now), 0);
	assert_int_equal(now.rip, saved.rip);
	assert_int_equal(now.r12, saved.r12);
	vmm_vm_destroy(src);

	assert_int_equal(vmm_vm_resume(dst), 0);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(dst), 0);
	assert_int_equal(ioctl(dst->vcpus[0].fd, KVM_GET_REGS, &now), 0);
	assert_true(now.r12 > saved.r12); /* continued, not restarted */
	uint64_t m0 = mem_u64(dst, COUNTER_GPA), m1 = mem_u64(dst, COUNTER_GPA + 8);
	assert_true(m1 == 3 * m0 || m1 == 3 * (m0 - 1));
	kb_buf_close(&buf);
	vmm_vm_destroy(dst);
}

static void expect_load(struct kb_buf *b, size_t len, int code, const char *what)
{
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kb_errmsg err = {{0}};

	int rv = vmm_state_load_buf(vm, b->data, len, VMM_STATE_NO_MEMORY, &err);
	if (rv != code)
		fail_msg("%s: got %d (%s), want %d", what, rv, err.msg, code);
	assert_true(strlen(err.msg) > 0);
	assert_int_equal(vm->state, VMM_STATE_CREATED); /* nothing applied */
	vmm_vm_destroy(vm);
}

static void test_bad_states_without_memory_are_refused(void **state)
{
	NEED_KVM();
	struct kb_buf buf, full;
	struct kvm_regs saved;
	struct kb_errmsg err = {{0}};
	struct vmm_vm *src = paused_counter(&buf, &saved);

	/* a state with memory records is not a migration's state */
	kb_buf_init(&full, 128u << 20);
	assert_int_equal(vmm_state_save_buf(src, &full, 0, &err), 0);
	assert_true(full.len > buf.len);
	expect_load(&full, full.len, KB_EPROTO, "memory records");
	vmm_vm_destroy(src);

	expect_load(&buf, buf.len - 7, KB_ETRUNCATED, "truncated");
	buf.data[buf.len / 2] ^= 0x40;
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	assert_true(vmm_state_load_buf(vm, buf.data, buf.len, VMM_STATE_NO_MEMORY, &err) < 0);
	assert_int_equal(vm->state, VMM_STATE_CREATED);
	vmm_vm_destroy(vm);
	kb_buf_close(&buf);
	kb_buf_close(&full);
}

static void test_throttle_kicks_and_the_guest_goes_on(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kvm_regs r1, r2;

	assert_int_equal(vmm_vm_set_throttle(vm, 100), KB_ECONFIG);
	assert_int_equal(vmm_vm_start(vm), 0);
	uint64_t intr0 = vm->vcpus[0].exits[VMM_EXIT_INTR];
	assert_int_equal(vmm_vm_set_throttle(vm, 50), 0);
	kb_sleep_ns(150 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(vm), 0); /* a pause is not lost among the kicks */
	assert_true(vm->vcpus[0].exits[VMM_EXIT_INTR] >= intr0 + 3);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &r1), 0);
	assert_int_equal(vmm_vm_resume(vm), 0);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_set_throttle(vm, 0), 0);
	assert_false(vm->throttle_running);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(vm), 0);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &r2), 0);
	assert_true(r2.r12 > r1.r12); /* throttled, not stopped */
	vmm_vm_destroy(vm);
}

static void test_announce_sends_one_rarp_per_nic(void **state)
{
	NEED_KVM();
	static const uint8_t mac[2][6] = {{0x02, 0x4b, 0x45, 0x00, 0x01, 0x02},
					  {0x02, 0x4b, 0x45, 0x00, 0x01, 0x03}};
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kb_errmsg err = {{0}};
	int sv[2][2];
	uint8_t f[256];

	assert_int_equal(vmm_virtio_net_announce(vm), 0); /* no NIC, nothing sent */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv[i]), 0);
		assert_int_equal(vmm__virtio_net_create_fd(vm, sv[i][0], mac[i], NULL, &err), 0);
	}
	assert_int_equal(vmm_virtio_net_announce(vm), 2);
	for (int i = 0; i < 2; i++) {
		ssize_t n = read(sv[i][1], f, sizeof(f));
		assert_int_equal(n, VIRTIO_NET_HDR_SIZE + 60);
		const uint8_t *e = f + VIRTIO_NET_HDR_SIZE;
		static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
		assert_memory_equal(e, bcast, 6);
		assert_memory_equal(e + 6, mac[i], 6);
		assert_int_equal(e[12], 0x80); /* RARP */
		assert_int_equal(e[13], 0x35);
		assert_int_equal(e[21], 3); /* reverse request */
		assert_memory_equal(e + 22, mac[i], 6);
		assert_memory_equal(e + 32, mac[i], 6);
		assert_true(read(sv[i][1], f, sizeof(f)) < 0); /* exactly one frame */
		close(sv[i][1]);
	}
	vmm_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dirty_log_sees_vcpu_and_vmm_writes),
	    cmocka_unit_test(test_state_without_memory_continues_the_guest),
	    cmocka_unit_test(test_bad_states_without_memory_are_refused),
	    cmocka_unit_test(test_throttle_kicks_and_the_guest_goes_on),
	    cmocka_unit_test(test_announce_sends_one_rarp_per_nic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
