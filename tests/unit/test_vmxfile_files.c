/*
 * Tests for kernel/vm/vmxfile on disk: load and atomic save, and refusals of symlinks,
 * FIFOs and files past the size limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/vm/vmxfile.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "tests/unit/vmxfile_helpers.h"

/* ---- files ---------------------------------------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	strcpy(tmpdir, "/tmp/keel-test-vmx-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_load_save(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx a, b;
	char path[128], tmp[140], other[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/web-01.vmx", tmpdir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	vx_parse_ok(&a, vx_full_vmx);
	assert_int_equal(vmk_vmx_save(&a, path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(access(tmp, F_OK), -1); /* no temporary left */
	assert_int_equal(vmk_vmx_load(&b, path, &err), 0);
	vx_assert_vmx_equal(&a, &b);
	vmk_vmx_close(&b);

	/* Saving over an existing file replaces it; a stale tmp file is replaced too. */
	write_file(tmp, "junk", 4);
	a.memsize_mib = 1024;
	assert_int_equal(vmk_vmx_save(&a, path, &err), 0);
	assert_int_equal(vmk_vmx_load(&b, path, &err), 0);
	assert_int_equal(b.memsize_mib, 1024);
	vmk_vmx_close(&b);

	/* An invalid config is not written: the file stays as it was. */
	a.memsize_mib = 3;
	assert_int_equal(vmk_vmx_save(&a, path, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "web-01.vmx: memsize: 3 is out of range"));
	assert_int_equal(vmk_vmx_load(&b, path, &err), 0);
	assert_int_equal(b.memsize_mib, 1024);
	vmk_vmx_close(&b);
	a.memsize_mib = 512;

	/* A write that cannot happen (the tmp name is a directory) leaves the file alone. */
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_true(vmk_vmx_save(&a, path, &err) < 0);
	assert_non_null(strstr(err.msg, ".tmp"));
	assert_int_equal(rmdir(tmp), 0);
	assert_int_equal(vmk_vmx_load(&b, path, &err), 0);
	assert_int_equal(b.memsize_mib, 1024);
	vmk_vmx_close(&b);

	/* A bad file names the path and the line. */
	snprintf(other, sizeof(other), "%s/bad.vmx", tmpdir);
	write_file(other, HEAD "memsize = \"6\"\n", strlen(HEAD "memsize = \"6\"\n"));
	memset(&b, 0x5a, sizeof(b));
	assert_int_equal(vmk_vmx_load(&b, other, &err), KB_EPROTO);
	assert_string_equal(err.msg + strlen(tmpdir),
			    "/bad.vmx: line 5: memsize: duplicate key (first on line 2)");
	assert_int_equal(((uint8_t *)&b)[0], 0x5a);
	vmk_vmx_close(&a);
}

static void test_load_refusals(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx v;
	char path[128], link[128];
	char *big;
	int fd;

	/* Missing. */
	snprintf(path, sizeof(path), "%s/none.vmx", tmpdir);
	assert_int_equal(vmk_vmx_load(&v, path, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "none.vmx"));

	/* A symlink, even to a good file. */
	snprintf(path, sizeof(path), "%s/good.vmx", tmpdir);
	write_file(path, HEAD, strlen(HEAD));
	assert_int_equal(vmk_vmx_load(&v, path, &err), 0);
	vmk_vmx_close(&v);
	snprintf(link, sizeof(link), "%s/link.vmx", tmpdir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(vmk_vmx_load(&v, link, &err), -ELOOP);
	assert_non_null(strstr(err.msg, "link.vmx: is a symbolic link"));

	/* A directory and a FIFO (which must not block the open). */
	assert_int_equal(vmk_vmx_load(&v, tmpdir, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "not a regular file"));
	snprintf(path, sizeof(path), "%s/fifo.vmx", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(vmk_vmx_load(&v, path, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "fifo.vmx: not a regular file"));

	/* Too large, checked before reading. */
	snprintf(path, sizeof(path), "%s/big.vmx", tmpdir);
	big = calloc(1, VMK_VMX_FILE_MAX + 1);
	memset(big, '#', VMK_VMX_FILE_MAX);
	big[VMK_VMX_FILE_MAX] = '\n';
	write_file(path, big, VMK_VMX_FILE_MAX + 1);
	assert_int_equal(vmk_vmx_load(&v, path, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "big.vmx: file is 65537 bytes, at most 65536 allowed"));
	/* A sparse file of exactly the limit, all NUL bytes: one line, too long. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, VMK_VMX_FILE_MAX), 0);
	close(fd);
	assert_int_equal(vmk_vmx_load(&v, path, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "big.vmx: line 1: line longer than 8192 bytes"));
	/* NUL bytes in short lines. */
	write_file(path, HEAD "\0\0\n", strlen(HEAD) + 3);
	assert_int_equal(vmk_vmx_load(&v, path, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "big.vmx: line 5: NUL byte"));
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_save, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_load_refusals, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
