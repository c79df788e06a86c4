/*
 * Helpers shared by the VMM tests: paths of built guests, and VMs running payloads.
 */
#ifndef TEST_VMM_HELPERS_H
#define TEST_VMM_HELPERS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/vmm/vmm.h"

/* "$BUILD/guest/<file>" (BUILD defaults to "build"); static buffer. */
const char *th_guest_path(const char *file);
/* "$BUILD/bin/<file>"; static buffer. */
const char *th_bin_path(const char *file);
/* True when /dev/kvm can be opened. */
bool th_have_kvm(void);
/* In a cmocka test: skips it, saying why, when /dev/kvm cannot be opened. */
#define NEED_KVM()                                                          \
	do {                                                                \
		if (!th_have_kvm()) {                                       \
			print_message("SKIP: /dev/kvm cannot be opened\n"); \
			skip();                                             \
		}                                                           \
	} while (0)
/* Creates a VM running payload_<name>.elf with the test port; asserts on failure. */
struct vmm_vm *th_payload_vm(const char *name, uint64_t mem, int vcpus);
/* A fresh private temp directory (static buffer), removed at exit. */
const char *th_tmpdir(void);

#endif
