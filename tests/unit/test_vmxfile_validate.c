/*
 * Tests for kernel/vm/vmxfile: validation of a parsed struct, the generators of UUIDs and
 * MACs, completing a file with what it lacks, and VM name rules.
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

/* ---- validate, complete, identifiers -------------------------------------------------- */

static void test_validate_struct(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx v;

	vx_parse_ok(&v, vx_full_vmx);
	assert_int_equal(vmk_vmx_validate(&v, &err), 0);

	/* Values set by hand go through the same checks as the file's. */
	memset(v.name, 'x', sizeof(v.name));
	assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "displayName: value is not terminated");
	strcpy(v.name, "ok");
	strcpy(v.disks[1].file, "../../x");
	assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "disk1.fileName: \"../../x\": a relative"));
	v.disks[1].file[0] = 0;
	v.numvcpus = 65;
	assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "numvcpus: 65 is out of range (1..64)");
	v.numvcpus = 1;
	v.guest_kind = (enum vmk_guest_kind)7;
	assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "guest.kind: unknown guest kind 7");
	v.guest_kind = VMK_GUEST_KGUEST;
	strcpy(v.nics[0].mac, "ff:ff:ff:ff:ff:ff");
	assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "ethernet0.address"));
	strcpy(v.nics[0].mac, "02:4b:00:00:00:09");
	v.res.mem_min_mib = 1024;
	assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "sched.mem.min: reservation 1024 MiB exceeds memsize 512 MiB");
	v.res.mem_min_mib = 0;
	assert_int_equal(vmk_vmx_validate(&v, &err), 0);

	/* Kept keys must read back once written. */
	{
		struct vmk_vmx_extra *e = &v.extra[1];
		char *key = e->key, *value = e->value, *quotes = kb_malloc(VMK_VMX_LINE_MAX);

		e->key = (char *)"bad key";
		assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
		assert_string_equal(err.msg, "bad key: not a valid kept key");
		e->key = (char *)"MemSize";
		assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
		e->key = (char *)"";
		assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
		e->key = key;
		e->value = (char *)"two\nlines";
		assert_int_equal(vmk_vmx_validate(&v, &err), KB_ECONFIG);
		assert_string_equal(err.msg, "annotation: control character 0x0a in value");
		/* 4090 quotes fit a line as a value but not once escaped. */
		memset(quotes, '"', 4090);
		quotes[4090] = 0;
		e->value = quotes;
		assert_int_equal(vmk_vmx_validate(&v, &err), KB_ETOOBIG);
		assert_string_equal(err.msg, "annotation: line would be longer than 8192 bytes");
		quotes[4000] = 0;
		assert_int_equal(vmk_vmx_validate(&v, &err), 0);
		e->value = value;
		kb_free(quotes);
	}
	vmk_vmx_close(&v);
}

static void test_generators(void **state)
{
	char a[37], b[37];
	uint8_t m1[6], m2[6];

	vmk_uuid_generate(a);
	vmk_uuid_generate(b);
	vx_assert_uuid_v4(a);
	vx_assert_uuid_v4(b);
	assert_string_not_equal(a, b);

	assert_int_equal(vmk_mac_generate(m1), 0);
	assert_int_equal(vmk_mac_generate(m2), 0);
	assert_int_equal(m1[0], 0x02); /* locally administered, unicast */
	assert_int_equal(m1[1], 0x4b);
	assert_int_equal(m1[0] & 1, 0);
	assert_memory_not_equal(m1, m2, 6);
}

static void test_complete(void **state)
{
	struct vmk_vmx v;
	bool changed = false;
	char mac0[18];

	vx_parse_ok(&v, HEAD "ethernet0.present = \"TRUE\"\nethernet0.portgroup = \"pg\"\n"
			     "ethernet1.present = \"TRUE\"\nethernet1.portgroup = \"pg\"\n"
			     "ethernet1.address = \"02:4b:01:02:03:04\"\n"
			     "ethernet2.portgroup = \"pg\"\n");
	assert_int_equal(vmk_vmx_complete(&v, &changed), 0);
	assert_true(changed);
	vx_assert_uuid_v4(v.uuid);
	assert_int_equal(strlen(v.nics[0].mac), 17);
	assert_true(strncmp(v.nics[0].mac, "02:4b:", 6) == 0);
	assert_string_equal(v.nics[1].mac, "02:4b:01:02:03:04"); /* kept */
	assert_string_equal(v.nics[2].mac, "");			 /* not present */
	assert_int_equal(vmk_vmx_validate(&v, &(struct kb_errmsg){{0}}), 0);
	strcpy(mac0, v.nics[0].mac);
	assert_int_equal(vmk_vmx_complete(&v, &changed), 0);
	assert_false(changed);
	assert_string_equal(v.nics[0].mac, mac0);
	assert_int_equal(vmk_vmx_complete(&v, NULL), 0);
	vmk_vmx_close(&v);
}

static void test_name_valid(void **state)
{
	assert_true(vmk_vmx_name_valid("a"));
	assert_true(vmk_vmx_name_valid("Web_01.test-2"));
	assert_true(vmk_vmx_name_valid("..."));
	assert_true(
	    vmk_vmx_name_valid("012345678901234567890123456789012345678901234567890123456789012"));
	assert_false(
	    vmk_vmx_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_false(vmk_vmx_name_valid(""));
	assert_false(vmk_vmx_name_valid("."));
	assert_false(vmk_vmx_name_valid(".."));
	assert_false(vmk_vmx_name_valid("a/b"));
	assert_false(vmk_vmx_name_valid("a b"));
	assert_false(vmk_vmx_name_valid("caf\xc3\xa9"));
	assert_string_equal(vmk_guest_kind_name(VMK_GUEST_KGUEST), "kguest");
	assert_string_equal(vmk_guest_kind_name(VMK_GUEST_LINUX), "linux");
	assert_string_equal(vmk_guest_kind_name(VMK_GUEST_NONE), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_validate_struct),
	    cmocka_unit_test(test_generators),
	    cmocka_unit_test(test_complete),
	    cmocka_unit_test(test_name_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
