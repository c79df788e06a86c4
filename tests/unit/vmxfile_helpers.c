/*
 * Helpers shared by the vmxfile tests: a file with every known key, parsing and formatting
 * that fail the test on error, and comparisons.
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

const char vx_full_vmx[] = "# A VM with everything\n"
			   "config.version = \"1\"\n"
			   ".encoding = \"UTF-8\"\n"
			   "displayName = \"web-01\"\n"
			   "uuid = \"0F8FAD5B-D9CB-469F-A165-70867728950E\"\n"
			   "memsize = \"512\"\n"
			   "numvcpus = \"2\"\n"
			   "guest.kind = \"linux\"\n"
			   "guest.kernel = \"/var/lib/keel/images/vmlinuz\"\n"
			   "guest.initrd = \"initrd.img\"\n"
			   "guest.cmdline = \"console=ttyS0 msg=\\\"hi\\\" path=C:\\\\x\"\n"
			   "annotation = \"first kept key\"\r\n"
			   "\tsched.cpu.shares = \"HIGH\"\n"
			   "sched.cpu.min = \"500\"\n"
			   "sched.cpu.max = \"2000\"\n"
			   "sched.mem.min = \"256\"\n"
			   "sched.mem.max = \"512\"\n"
			   "disk0.present = \"TRUE\"\n"
			   "disk0.fileName = \"web-01.img\"\n"
			   "disk0.mode = \"persistent\"\n"
			   "disk2.present = \"true\"\n"
			   "disk2.fileName = \"/srv/iso/tools.img\"\n"
			   "disk2.readOnly = \"TRUE\"\n"
			   "ethernet0.present = \"TRUE\"\n"
			   "ethernet0.networkName = \"VM Network\"\n"
			   "ethernet0.address = \"02:4B:00:11:22:33\"\n"
			   "ethernet0.virtualDev = \"virtio\"\n"
			   "ethernet3.present = \"FALSE\"\n"
			   "ethernet3.portgroup = \"backup\"\n"
			   "\n"
			   "tools.syncTime=\"FALSE\"\n"
			   "x.unicode = \"caf\xc3\xa9\"";

void vx_parse_ok(struct vmk_vmx *vmx, const char *text)
{
	struct kb_errmsg err = {{0}};
	int rc = vmk_vmx_parse(vmx, text, strlen(text), &err);

	if (rc != 0)
		fail_msg("parse failed (%d): %s", rc, err.msg);
}

void vx_assert_vmx_equal(const struct vmk_vmx *a, const struct vmk_vmx *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->uuid, b->uuid);
	assert_int_equal(a->memsize_mib, b->memsize_mib);
	assert_int_equal(a->numvcpus, b->numvcpus);
	assert_int_equal(a->guest_kind, b->guest_kind);
	assert_string_equal(a->kernel, b->kernel);
	assert_string_equal(a->initrd, b->initrd);
	assert_string_equal(a->cmdline, b->cmdline);
	for (int i = 0; i < VMK_VMX_DISKS; i++) {
		assert_int_equal(a->disks[i].present, b->disks[i].present);
		assert_int_equal(a->disks[i].read_only, b->disks[i].read_only);
		assert_string_equal(a->disks[i].file, b->disks[i].file);
	}
	for (int i = 0; i < VMK_VMX_NICS; i++) {
		assert_int_equal(a->nics[i].present, b->nics[i].present);
		assert_string_equal(a->nics[i].portgroup, b->nics[i].portgroup);
		assert_string_equal(a->nics[i].mac, b->nics[i].mac);
	}
	assert_string_equal(a->res.cpu_shares, b->res.cpu_shares);
	assert_int_equal(a->res.cpu_min_mhz, b->res.cpu_min_mhz);
	assert_int_equal(a->res.cpu_max_mhz, b->res.cpu_max_mhz);
	assert_int_equal(a->res.mem_min_mib, b->res.mem_min_mib);
	assert_int_equal(a->res.mem_max_mib, b->res.mem_max_mib);
	assert_int_equal(a->n_extra, b->n_extra);
	for (size_t i = 0; i < a->n_extra; i++) {
		assert_string_equal(a->extra[i].key, b->extra[i].key);
		assert_string_equal(a->extra[i].value, b->extra[i].value);
	}
}

/* Formats into a NUL-terminated heap string the caller frees with kb_free(). */
char *vx_format_str(const struct vmk_vmx *vmx)
{
	struct kb_buf b;
	char *s;

	kb_buf_init(&b, 0);
	assert_int_equal(vmk_vmx_format(vmx, &b), 0);
	assert_int_equal(kb_buf_put_u8(&b, 0), 0);
	s = (char *)b.data;
	return s;
}

void vx_assert_uuid_v4(const char *u)
{
	assert_int_equal(strlen(u), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(u[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", u[i]));
	}
	assert_int_equal(u[14], '4');
	assert_non_null(strchr("89ab", u[19]));
}
