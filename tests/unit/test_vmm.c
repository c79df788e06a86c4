/*
 * VMM tests on real KVM with tiny payloads (tests/payloads): entry in 64-bit mode, the
 * drop to CPL3 and port I/O from there, several vCPUs, pause/resume, and a hostile ELF.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/dev/testdev.h"
#include "kernel/vmm/vmm.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"

static void test_report_from_cpl0_and_cpl3(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("report", 64 << 20, 1);
	uint32_t r[16];

	assert_int_equal(vmm_vm_start(vm), 0);
	assert_int_equal(vmm_vm_wait_stopped(vm, 5 * KB_NSEC_PER_SEC), 0);
	assert_int_equal(vm->stop_reason, VMM_STOP_TEST_EXIT);
	assert_int_equal(vm->test_exit_code, 7);
	assert_int_equal(vmm_testdev_reports(vm->testdev, r, 16), 6);
	assert_int_equal(r[0], 1);
	assert_int_equal(r[1], 2);
	assert_int_equal(r[2], 3);
	assert_int_equal(r[3], 0);			     /* vCPU index */
	assert_int_equal(r[4], (uint32_t)KGUEST_BOOT_MAGIC); /* boot info reached */
	assert_int_equal(r[5], 0xc93);			     /* from CPL3 */
	assert_true(vm->vcpus[0].exits[VMM_EXIT_IO] >= 7);
	vmm_vm_destroy(vm);
}

static void test_four_vcpus_rendezvous(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("smp", 64 << 20, 4);
	uint32_t r[4];

	assert_int_equal(vmm_vm_start(vm), 0);
	assert_int_equal(vmm_vm_wait_stopped(vm, 10 * KB_NSEC_PER_SEC), 0);
	assert_int_equal(vm->stop_reason, VMM_STOP_TEST_EXIT);
	assert_int_equal(vm->test_exit_code, 0);
	assert_int_equal(vmm_testdev_reports(vm->testdev, r, 4), 1);
	assert_int_equal(r[0], 4);
	vmm_vm_destroy(vm);
}

static uint64_t counter(struct vmm_vm *vm)
{
	uint64_t v;
	assert_int_equal(vmm_mem_read(&vm->mem, 0x8000, &v, sizeof(v)), 0);
	return v;
}

static void test_pause_stops_the_guest_and_resume_continues(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("counter", 64 << 20, 1);

	assert_int_equal(vmm_vm_start(vm), 0);
	kb_sleep_ns(50 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_pause(vm), 0);
	assert_int_equal(vm->state, VMM_STATE_PAUSED);
	uint64_t c1 = counter(vm);
	assert_true(c1 > 1000);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_true(counter(vm) == c1);
	assert_int_equal(vmm_vm_resume(vm), 0);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_true(counter(vm) > c1);
	vmm_vm_stop(vm, VMM_STOP_POWEROFF, "test done");
	vmm_vm_destroy(vm);
}

static void test_guest_memory_is_a_memfd_with_a_hole(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("report", 4ull << 30, 1);

	assert_int_equal(vm->mem.nr_regions, 2);
	assert_int_equal(vm->mem.regions[0].size, KGUEST_MMIO_HOLE);
	assert_int_equal(vm->mem.regions[1].gpa, KGUEST_HIGH_RAM);
	assert_int_equal(vm->mem.regions[1].size, (4ull << 30) - KGUEST_MMIO_HOLE);
	assert_null(vmm_mem_ptr(&vm->mem, KGUEST_MMIO_HOLE, 8));
	assert_non_null(vmm_mem_ptr(&vm->mem, KGUEST_HIGH_RAM, 8));
	assert_null(vmm_mem_ptr(&vm->mem, KGUEST_MMIO_HOLE - 4, 8)); /* straddles the hole */
	/* the VMM's own writes are tracked */
	uint64_t v = 42;
	memset(vm->mem.dirty, 0, vm->mem.dirty_words * 8);
	assert_int_equal(vmm_mem_write(&vm->mem, KGUEST_HIGH_RAM + 8192, &v, 8), 0);
	uint64_t page = (KGUEST_MMIO_HOLE + 8192) / 4096;
	assert_true(vm->mem.dirty[page / 64] & (1ull << (page % 64)));
	assert_int_equal(vmm_mem_write(&vm->mem, KGUEST_MMIO_HOLE, &v, 8), KB_EGUEST);
	/* memfd: the memory can be mapped by another user */
	assert_true(vm->mem.memfd >= 0);
	vmm_vm_destroy(vm);
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void test_hostile_elf_is_refused(void **state)
{
	NEED_KVM();
	char path[512];
	struct vmm_config cfg = {.mem_size = 64 << 20, .nr_vcpus = 1, .cmdline = ""};
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm = NULL;
	uint8_t img[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/bad.elf", th_tmpdir());
	cfg.kernel = path;

	/* not an ELF at all */
	memset(img, 0x41, sizeof(img));
	write_file(path, img, sizeof(img));
	assert_int_equal(vmm_vm_create(&cfg, NULL, &vm, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "ELF"));

	/* a real payload whose segment is moved outside guest RAM */
	fd = open(th_guest_path("payload_report.elf"), O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, img, sizeof(img));
	close(fd);
	assert_true(n > 64);
	uint64_t phoff;
	memcpy(&phoff, img + 32, 8);
	uint64_t far = 1ull << 40;
	memcpy(img + phoff + 24, &far, 8); /* p_paddr of the first header */
	write_file(path, img, (size_t)n);
	err.msg[0] = '\0';
	assert_int_equal(vmm_vm_create(&cfg, NULL, &vm, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "does not fit"));

	/* missing file */
	cfg.kernel = "/nonexistent/kguest.elf";
	assert_int_equal(vmm_vm_create(&cfg, NULL, &vm, &err), -ENOENT);
	assert_null(vm);
}

static void test_bad_config_is_refused(void **state)
{
	NEED_KVM();
	struct vmm_config cfg = {.mem_size = 3 << 20, .nr_vcpus = 1, .cmdline = ""};
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm = NULL;

	cfg.kernel = th_guest_path("payload_report.elf");
	assert_int_equal(vmm_vm_create(&cfg, NULL, &vm, &err), KB_ECONFIG); /* not 2 MiB-aligned */
	cfg.mem_size = 64 << 20;
	cfg.nr_vcpus = 0;
	assert_int_equal(vmm_vm_create(&cfg, NULL, &vm, &err), KB_ECONFIG);
	cfg.nr_vcpus = VMM_MAX_VCPUS + 1;
	assert_int_equal(vmm_vm_create(&cfg, NULL, &vm, &err), KB_ECONFIG);
	assert_null(vm);
}

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* Every allocation during VM creation fails in turn: each failure is reported as an error
 * and leaves no file descriptor behind; once allocations succeed the VM runs. */
static void test_allocation_failures_during_create(void **state)
{
	NEED_KVM();
	struct vmm_config cfg = {
	    .mem_size = 64 << 20, .nr_vcpus = 2, .cmdline = "", .test_port = true};
	int fds = open_fds(), failures = 0;

	cfg.kernel = th_guest_path("payload_smp.elf");
	for (int n = 0; n < 200; n++) {
		struct kb_errmsg err = {{0}};
		struct vmm_vm *vm = NULL;
		kb_heap_fail_after(n, 1);
		int rv = vmm_vm_create(&cfg, NULL, &vm, &err);
		kb_heap_fail_reset();
		if (rv == 0) {
			assert_int_equal(vmm_vm_start(vm), 0);
			assert_int_equal(vmm_vm_wait_stopped(vm, 5 * KB_NSEC_PER_SEC), 0);
			assert_int_equal(vm->stop_reason, VMM_STOP_TEST_EXIT);
			vmm_vm_destroy(vm);
			continue;
		}
		failures++;
		assert_int_equal(rv, -ENOMEM);
		assert_null(vm);
		assert_int_equal(open_fds(), fds);
	}
	assert_true(failures >= 8); /* there are allocations to fail */
}

static void test_reset_restarts_the_guest(void **state)
{
	NEED_KVM();
	struct vmm_vm *vm = th_payload_vm("counter", 64 << 20, 1);
	uint32_t r[4];

	assert_int_equal(vmm_vm_start(vm), 0);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	assert_int_equal(vmm_vm_reset(vm), 0);
	assert_int_equal(vm->state, VMM_STATE_RUNNING);
	kb_sleep_ns(30 * KB_NSEC_PER_MSEC);
	/* the payload booted again: it reported its start a second time */
	assert_int_equal(vmm_testdev_reports(vm->testdev, r, 4), 2);
	assert_int_equal(r[1], 0xc0c0);
	assert_true(counter(vm) > 0);
	vmm_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_report_from_cpl0_and_cpl3),
	    cmocka_unit_test(test_four_vcpus_rendezvous),
	    cmocka_unit_test(test_pause_stops_the_guest_and_resume_continues),
	    cmocka_unit_test(test_guest_memory_is_a_memfd_with_a_hole),
	    cmocka_unit_test(test_hostile_elf_is_refused),
	    cmocka_unit_test(test_bad_config_is_refused),
	    cmocka_unit_test(test_allocation_failures_during_create),
	    cmocka_unit_test(test_reset_restarts_the_guest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
