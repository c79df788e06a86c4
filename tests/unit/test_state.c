/*
 * The VM state module on real KVM: a running payload saved and restored into a new VM
 * continues exactly where it was (registers and memory), and corrupted, truncated or
 * mismatched states are refused with a clear error, leaving a VM that still boots.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/vmm/dev/testdev.h"
#include "kernel/vmm/state.h"
#include "kernel/vmm/vmm.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"

#define MEM (64ull << 20)

static uint64_t mem_u64(struct vmm_vm *vm, uint64_t gpa)
{
	uint64_t v;
	assert_int_equal(vmm_mem_read(&vm->mem, gpa, &v, sizeof(v)), 0);
	return v;
}

/* Runs the counter payload for a while and saves it to path; returns r12 at the save. */
static uint64_t run_and_save(const char *path, struct kvm_regs *regs_out)
{
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kb_errmsg err = {{0}};

	assert_int_equal(vmm_vm_start(vm), 0);
	kb_sleep_ns(40 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(vm), 0);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, regs_out), 0);
	assert_true(regs_out->r12 > 1000);
	assert_int_equal(vmm_state_save_file(vm, path, &err), 0);
	assert_int_equal(vm->state, VMM_STATE_PAUSED); /* save leaves a paused VM paused */
	vmm_vm_stop(vm, VMM_STOP_POWEROFF, "saved");
	vmm_vm_destroy(vm);
	return regs_out->r12;
}

static void test_round_trip_continues_the_guest(void **state)
{
	NEED_KVM();
	char path[512];
	struct kvm_regs saved, now;
	struct kb_errmsg err = {{0}};

	snprintf(path, sizeof(path), "%s/rt.vmss", th_tmpdir());
	uint64_t c = run_and_save(path, &saved);

	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	assert_int_equal(vmm_state_restore_file(vm, path, &err), 0);
	assert_int_equal(vm->state, VMM_STATE_PAUSED);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &now), 0);
	assert_int_equal(now.rip, saved.rip);
	assert_int_equal(now.rsp, saved.rsp);
	assert_int_equal(now.r12, saved.r12);
	assert_int_equal(now.r13, saved.r13);
	assert_int_equal(now.rflags, saved.rflags);
	uint64_t m0 = mem_u64(vm, 0x8000);
	assert_true(m0 == c || m0 == c - 1);

	assert_int_equal(vmm_vm_resume(vm), 0);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(vm), 0);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &now), 0);
	assert_true(now.r12 > c); /* continued, not restarted */
	assert_true(now.r13 == 3 * now.r12 || now.r13 == 3 * (now.r12 - 1));
	m0 = mem_u64(vm, 0x8000);
	uint64_t m1 = mem_u64(vm, 0x8008);
	assert_true(m1 == 3 * m0 || m1 == 3 * (m0 - 1));
	/* The restored guest never reported its start again: the report log came back too. */
	uint32_t r[4];
	assert_int_equal(vmm_testdev_reports(vm->testdev, r, 4), 1);
	assert_int_equal(r[0], 0xc0c0);
	vmm_vm_destroy(vm);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *p = malloc((size_t)st.st_size);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Loads a bad state into a fresh VM, expects code, then checks the VM boots normally. */
static void expect_refused(const char *path, int code, const char *what)
{
	struct vmm_vm *vm = th_payload_vm("counter", MEM, 1);
	struct kb_errmsg err = {{0}};
	uint32_t r[2];

	int rv = vmm_state_restore_file(vm, path, &err);
	if (rv != code)
		fail_msg("%s: got %d (%s), want %d", what, rv, err.msg, code);
	assert_true(strlen(err.msg) > 0);
	assert_int_equal(vm->state, VMM_STATE_CREATED);
	assert_int_equal(mem_u64(vm, 0x8000), 0);
	assert_int_equal(vmm_vm_start(vm), 0);
	kb_sleep_ns(20 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_testdev_reports(vm->testdev, r, 2), 1);
	assert_int_equal(r[0], 0xc0c0);
	assert_true(mem_u64(vm, 0x8000) > 0);
	vmm_vm_destroy(vm);
}

static void test_corrupt_and_truncated_states_are_refused(void **state)
{
	NEED_KVM();
	char good[512], bad[512];
	struct kvm_regs regs;
	size_t len;

	snprintf(good, sizeof(good), "%s/good.vmss", th_tmpdir());
	snprintf(bad, sizeof(bad), "%s/bad.vmss", th_tmpdir());
	run_and_save(good, &regs);
	uint8_t *img = slurp(good, &len);
	uint8_t *mut = malloc(len);
	assert_non_null(mut);
	assert_true(len > 16 * 1024);

	/* bad magic */
	memcpy(mut, img, len);
	mut[0] ^= 0xff;
	spit(bad, mut, len);
	expect_refused(bad, KB_EPROTO, "magic");
	/* header field changed: checksum */
	memcpy(mut, img, len);
	mut[17] ^= 0x01;
	spit(bad, mut, len);
	expect_refused(bad, KB_ECHECKSUM, "header");
	/* a byte inside the first (VM) section */
	memcpy(mut, img, len);
	mut[40 + 16 + 100] ^= 0x10;
	spit(bad, mut, len);
	expect_refused(bad, KB_ECHECKSUM, "VM section");
	/* a byte in guest memory (last page of data before the end records) */
	memcpy(mut, img, len);
	mut[len - 200] ^= 0x01;
	spit(bad, mut, len);
	expect_refused(bad, KB_ECHECKSUM, "memory");
	/* truncations: inside the header, a section, memory, the end */
	size_t cuts[] = {20, 40 + 8, 3000, len / 2, len - 30, len - 1};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		spit(bad, img, cuts[i]);
		expect_refused(bad, KB_ETRUNCATED, "truncated");
	}
	/* an empty file */
	spit(bad, img, 0);
	expect_refused(bad, KB_ETRUNCATED, "empty");
	/* a huge section length */
	memcpy(mut, img, len);
	uint64_t huge = 1ull << 40;
	memcpy(mut + 40 + 8, &huge, 8);
	spit(bad, mut, len);
	expect_refused(bad, KB_ETOOBIG, "section length");
	free(mut);
	free(img);
}

static void test_mismatched_vm_is_refused(void **state)
{
	NEED_KVM();
	char path[512];
	struct kvm_regs regs;
	struct kb_errmsg err = {{0}};

	snprintf(path, sizeof(path), "%s/mm.vmss", th_tmpdir());
	run_and_save(path, &regs);
	struct vmm_vm *vm = th_payload_vm("counter", 2 * MEM, 1);
	assert_int_equal(vmm_state_restore_file(vm, path, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "MiB"));
	vmm_vm_destroy(vm);

	vm = th_payload_vm("counter", MEM, 1);
	assert_int_equal(vmm_vm_start(vm), 0);
	err.msg[0] = '\0';
	assert_int_equal(vmm_state_restore_file(vm, path, &err), KB_ESTATE);
	vmm_vm_destroy(vm);
}

static void test_save_skips_zero_pages(void **state)
{
	NEED_KVM();
	char path[512];
	struct stat st;
	struct kvm_regs regs;

	snprintf(path, sizeof(path), "%s/small.vmss", th_tmpdir());
	run_and_save(path, &regs);
	assert_int_equal(stat(path, &st), 0);
	/* 64 MiB of guest memory of which a few pages were ever written */
	assert_true(st.st_size < 512 * 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_continues_the_guest),
	    cmocka_unit_test(test_corrupt_and_truncated_states_are_refused),
	    cmocka_unit_test(test_mismatched_vm_is_refused),
	    cmocka_unit_test(test_save_skips_zero_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
