/*
 * Helpers shared by the VMM tests (see vmm_helpers.h).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/vmm_helpers.h"

static const char *build_dir(void)
{
	const char *b = getenv("BUILD");
	return b && *b ? b : "build";
}

const char *th_guest_path(const char *file)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/guest/%s", build_dir(), file);
	return path;
}

const char *th_bin_path(const char *file)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/bin/%s", build_dir(), file);
	return path;
}

bool th_have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

struct vmm_vm *th_payload_vm(const char *name, uint64_t mem, int vcpus)
{
	static char path[4096];
	struct vmm_config cfg = {
	    .mem_size = mem,
	    .nr_vcpus = vcpus,
	    .kind = VMM_GUEST_KGUEST,
	    .test_port = true,
	    .cmdline = "",
	};
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm = NULL;

	snprintf(path, sizeof(path), "%s/guest/payload_%s.elf", build_dir(), name);
	cfg.kernel = path;
	int rv = vmm_vm_create(&cfg, NULL, &vm, &err);
	if (rv != 0)
		fail_msg("creating a VM for %s: %s", name, err.msg);
	return vm;
}

static char tmpdir[256];

static void rm_tmpdir(void)
{
	char cmd[300];
	if (tmpdir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
}

const char *th_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/keel-test-XXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			fail_msg("mkdtemp failed");
		atexit(rm_tmpdir);
	}
	return tmpdir;
}
