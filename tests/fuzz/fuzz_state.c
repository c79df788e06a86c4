/*
 * Fuzz target: the VM state loader (kernel/vmm/state_load.c) on arbitrary streams. One
 * VM, created once; a failed load must leave it loadable again; a successful one (the
 * unmutated seed) is followed by a new VM.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernel/vmm/state.h"
#include "kernel/vmm/vmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmm_vm *vm;

static void make_vm(void)
{
	const char *b = getenv("BUILD");
	static char path[512];
	struct vmm_config cfg = {
	    .mem_size = 64 << 20, .nr_vcpus = 1, .cmdline = "", .test_port = true};
	struct kb_errmsg err = {{0}};
	static struct kb_logger quiet;

	kb_log_init(&quiet, "fuzz", KB_LOG_ERROR, -1);
	snprintf(path, sizeof(path), "%s/guest/payload_counter.elf", b && *b ? b : "build");
	cfg.kernel = path;
	if (vmm_vm_create(&cfg, &quiet, &vm, &err) != 0) {
		fprintf(stderr, "fuzz_state: %s\n", err.msg);
		exit(2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kb_errmsg err = {{0}};
	char path[] = "/tmp/keel-fuzz-state-XXXXXX";
	int fd = mkstemp(path), rv;

	if (fd < 0)
		return 0;
	unlink(path);
	if (write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return 0;
	}
	if (vm == NULL)
		make_vm();
	if ((rv = vmm_state_load(vm, fd, &err)) == 0) {
		vmm_vm_destroy(vm);
		vm = NULL;
	} else if (err.msg[0] == '\0') {
		fprintf(stderr, "fuzz_state: a refused state gave no message (%d: %s)\n", rv,
			kb_strerror(rv));
		abort();
	}
	close(fd);
	return 0;
}
