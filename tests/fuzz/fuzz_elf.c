/*
 * Fuzz target: the guest image loader (kernel/vmm/boot_kguest.c) on arbitrary ELF files:
 * every input is refused with a message or loads; nothing is written outside guest RAM.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernel/vmm/vmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kb_logger quiet;
	char path[] = "/tmp/keel-fuzz-elf-XXXXXX";
	struct vmm_config cfg = {.mem_size = 16 << 20, .nr_vcpus = 1, .cmdline = ""};
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm = NULL;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	kb_log_init(&quiet, "fuzz", KB_LOG_ERROR, -1);
	if (write(fd, data, size) == (ssize_t)size) {
		cfg.kernel = path;
		if (vmm_vm_create(&cfg, &quiet, &vm, &err) == 0)
			vmm_vm_destroy(vm);
		else if (err.msg[0] == '\0')
			abort();
	}
	close(fd);
	unlink(path);
	return 0;
}
