/*
 * Tests for kernel/vm/vmxfile: parsing every known key, format/parse round trips with kept
 * keys in order, each refusal of a malformed or hostile file with its line and key, files
 * (symlinks, FIFOs, size limits, atomic save), VmSpec conversions both ways and through the
 * wire, reconfigure changing only what it is given, and out-of-memory at every allocation.
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

static const char full_vmx[] = "# A VM with everything\n"
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

static void parse_ok(struct vmk_vmx *vmx, const char *text)
{
	struct kb_errmsg err = {{0}};
	int rc = vmk_vmx_parse(vmx, text, strlen(text), &err);

	if (rc != 0)
		fail_msg("parse failed (%d): %s", rc, err.msg);
}

static void assert_vmx_equal(const struct vmk_vmx *a, const struct vmk_vmx *b)
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
static char *format_str(const struct vmk_vmx *vmx)
{
	struct kb_buf b;
	char *s;

	kb_buf_init(&b, 0);
	assert_int_equal(vmk_vmx_format(vmx, &b), 0);
	assert_int_equal(kb_buf_put_u8(&b, 0), 0);
	s = (char *)b.data;
	return s;
}

/* ---- parsing --------------------------------------------------------------------------- */

static void test_parse_full(void **state)
{
	struct vmk_vmx v;

	parse_ok(&v, full_vmx);
	assert_string_equal(v.name, "web-01");
	assert_string_equal(v.uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
	assert_int_equal(v.memsize_mib, 512);
	assert_int_equal(v.numvcpus, 2);
	assert_int_equal(v.guest_kind, VMK_GUEST_LINUX);
	assert_string_equal(v.kernel, "/var/lib/keel/images/vmlinuz");
	assert_string_equal(v.initrd, "initrd.img");
	assert_string_equal(v.cmdline, "console=ttyS0 msg=\"hi\" path=C:\\x");
	assert_string_equal(v.res.cpu_shares, "high");
	assert_int_equal(v.res.cpu_min_mhz, 500);
	assert_int_equal(v.res.cpu_max_mhz, 2000);
	assert_int_equal(v.res.mem_min_mib, 256);
	assert_int_equal(v.res.mem_max_mib, 512);
	assert_true(v.disks[0].present);
	assert_false(v.disks[0].read_only);
	assert_string_equal(v.disks[0].file, "web-01.img");
	assert_false(v.disks[1].present);
	assert_string_equal(v.disks[1].file, "");
	assert_true(v.disks[2].present);
	assert_true(v.disks[2].read_only);
	assert_string_equal(v.disks[2].file, "/srv/iso/tools.img");
	assert_true(v.nics[0].present);
	assert_string_equal(v.nics[0].portgroup, "VM Network");
	assert_string_equal(v.nics[0].mac, "02:4b:00:11:22:33");
	assert_false(v.nics[3].present);
	assert_string_equal(v.nics[3].portgroup, "backup");
	assert_int_equal(v.n_extra, 6);
	assert_string_equal(v.extra[0].key, ".encoding");
	assert_string_equal(v.extra[1].key, "annotation");
	assert_string_equal(v.extra[1].value, "first kept key");
	assert_string_equal(v.extra[2].key, "disk0.mode");
	assert_string_equal(v.extra[3].key, "ethernet0.virtualDev");
	assert_string_equal(v.extra[4].key, "tools.syncTime");
	assert_string_equal(v.extra[5].value, "caf\xc3\xa9");
	assert_int_equal(vmk_vmx_cpu_shares(&v), 4000);
	vmk_vmx_close(&v);
}

static void test_parse_minimal_and_case(void **state)
{
	struct vmk_vmx v;

	/* Keys are case-insensitive as in ESXi; no config.version means version 1. */
	parse_ok(&v,
		 "DISPLAYNAME = \"a\"\nMemSize=\"4\"\nnumVCPUs =\"64\"\nGuest.Kind= \"kguest\"\n");
	assert_string_equal(v.name, "a");
	assert_int_equal(v.memsize_mib, 4);
	assert_int_equal(v.numvcpus, 64);
	assert_int_equal(v.guest_kind, VMK_GUEST_KGUEST);
	assert_string_equal(v.uuid, "");
	assert_int_equal(v.n_extra, 0);
	assert_int_equal(vmk_vmx_cpu_shares(&v), 64000);
	vmk_vmx_close(&v);

	parse_ok(&v, "displayName = \"b\"\nmemsize = \"1048576\"\nnumvcpus = \"1\"\n"
		     "guest.kind = \"kguest\"\nsched.cpu.shares = \"1234\"\n"
		     "sched.mem.min = \"1048576\"\nsched.cpu.max = \"0\"\n");
	assert_int_equal(v.memsize_mib, 1048576);
	assert_int_equal(vmk_vmx_cpu_shares(&v), 1234);
	vmk_vmx_close(&v);

	parse_ok(&v, "displayName = \"c\"\nmemsize = \"8\"\nnumvcpus = \"1\"\n"
		     "guest.kind = \"kguest\"\nsched.cpu.shares = \"low\"\n");
	assert_int_equal(vmk_vmx_cpu_shares(&v), 500);
	vmk_vmx_close(&v);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
	struct vmk_vmx a, b;
	char *t1, *t2;

	parse_ok(&a, full_vmx);
	t1 = format_str(&a);
	parse_ok(&b, t1);
	assert_vmx_equal(&a, &b);
	t2 = format_str(&b);
	assert_string_equal(t1, t2); /* formatting is stable */

	/* Known keys in canonical spelling, kept keys after them in file order. */
	assert_true(strncmp(t1, "config.version = \"1\"\ndisplayName = \"web-01\"\n", 42) == 0);
	assert_non_null(strstr(t1, "ethernet0.portgroup = \"VM Network\"\n"));
	assert_null(strstr(t1, "networkName"));
	assert_non_null(
	    strstr(t1, "guest.cmdline = \"console=ttyS0 msg=\\\"hi\\\" path=C:\\\\x\"\n"));
	assert_non_null(strstr(t1, "disk2.readOnly = \"TRUE\"\n"));
	assert_null(strstr(t1, "disk0.readOnly"));
	assert_non_null(strstr(t1, "ethernet3.present = \"FALSE\"\n"));
	assert_null(strstr(t1, "disk1."));
	{
		const char *k[] = {".encoding",	     "annotation",
				   "disk0.mode",     "ethernet0.virtualDev",
				   "tools.syncTime", "x.unicode"};
		const char *prev = strstr(t1, "ethernet3.portgroup");
		for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
			const char *at = strstr(t1, k[i]);
			assert_non_null(at);
			assert_true(at > prev);
			prev = at;
		}
	}
	kb_free(t1);
	kb_free(t2);
	vmk_vmx_close(&a);
	vmk_vmx_close(&b);
}

static void test_format_limits(void **state)
{
	struct vmk_vmx v;
	struct kb_buf b;
	char *big = malloc(VMK_VMX_LINE_MAX);
	char *text;
	size_t len = 0;

	/* A file of eight long kept keys is under 64 KiB; formatting it grows past the limit
	 * (the parser accepts `k="v"`, the formatter writes `k = "v"`), so format refuses. */
	text = malloc(VMK_VMX_FILE_MAX);
	memset(big, 'x', VMK_VMX_LINE_MAX - 16);
	big[VMK_VMX_LINE_MAX - 16] = 0;
	len += (size_t)sprintf(text + len, "displayName=\"v\"\nmemsize=\"4\"\nnumvcpus=\"1\"\n"
					   "guest.kind=\"kguest\"\n");
	for (int i = 0; i < 8; i++)
		len += (size_t)sprintf(text + len, "k%d=\"%s\"\n", i, big);
	assert_true(len <= VMK_VMX_FILE_MAX);
	assert_int_equal(vmk_vmx_parse(&v, text, len, &(struct kb_errmsg){{0}}), 0);
	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_append(&b, "keep", 4), 0);
	assert_int_equal(vmk_vmx_format(&v, &b), KB_ETOOBIG);
	assert_int_equal(b.len, 4); /* unchanged on error */
	kb_buf_close(&b);

	/* A buffer limit is honoured the same way. */
	kb_buf_init(&b, 64);
	assert_int_equal(vmk_vmx_format(&v, &b), KB_ETOOBIG);
	assert_int_equal(b.len, 0);
	kb_buf_close(&b);
	vmk_vmx_close(&v);
	free(big);
	free(text);
}

/* ---- refusals ------------------------------------------------------------------------- */

#define HEAD "displayName = \"v\"\nmemsize = \"64\"\nnumvcpus = \"1\"\nguest.kind = \"kguest\"\n"

struct bad_case {
	const char *text;
	int code;
	const char *msg; /* substring of the error message */
};

static const struct bad_case bad_cases[] = {
    /* syntax */
    {HEAD "memsize\n", KB_EPROTO, "line 5: memsize: expected '='"},
    {HEAD "memsize = 64\n", KB_EPROTO, "line 5: memsize: value must be in double quotes"},
    {HEAD "a = \"x\n", KB_EPROTO, "line 5: a: unterminated quoted value"},
    {HEAD "a = \"x\" y\n", KB_EPROTO, "line 5: a: unexpected text after the closing quote"},
    {HEAD "a = \"x\"\"\n", KB_EPROTO, "line 5: a: unexpected text"},
    {HEAD "a = \"x\\n\"\n", KB_EPROTO, "line 5: a: bad escape"},
    {HEAD "a = \"x\\\"\n", KB_EPROTO, "line 5: a: unterminated"},
    {HEAD "a = \"x\ty\"\n", KB_EPROTO, "line 5: a: control character 0x09"},
    {HEAD "a = \"x\x7f\"\n", KB_EPROTO, "line 5: a: control character 0x7f"},
    {HEAD "a = \"x\ry\"\n", KB_EPROTO, "line 5: a: control character 0x0d"},
    {HEAD "a = \"\xc3\x28\"\n", KB_EPROTO, "line 5: a: value is not valid UTF-8"},
    {HEAD "a = \"\xed\xa0\x80\"\n", KB_EPROTO, "not valid UTF-8"}, /* a surrogate */
    {HEAD "a = \"\xe0\x80\xaf\"\n", KB_EPROTO, "not valid UTF-8"}, /* overlong */
    {HEAD "= \"x\"\n", KB_EPROTO, "line 5: expected a key"},
    {HEAD "a/b = \"x\"\n", KB_EPROTO, "line 5: a: invalid character in key"},
    {HEAD "a b = \"x\"\n", KB_EPROTO, "line 5: a: expected '='"},
    {HEAD "\"a\" = \"x\"\n", KB_EPROTO, "line 5: expected a key"},
    /* duplicates, also across spelling and case */
    {HEAD "memsize = \"64\"\n", KB_EPROTO, "line 5: memsize: duplicate key (first on line 2)"},
    {HEAD "MEMSIZE = \"64\"\n", KB_EPROTO, "line 5: MEMSIZE: duplicate key"},
    {HEAD "foo = \"1\"\nFoo = \"2\"\n", KB_EPROTO, "line 6: Foo: duplicate key"},
    {HEAD "ethernet0.portgroup = \"a\"\nethernet0.networkName = \"b\"\n", KB_EPROTO,
     "line 6: ethernet0.networkName: duplicate key (first on line 5)"},
    /* versions */
    {"config.version = \"2\"\n" HEAD, KB_EVERSION, "line 1: config.version: unsupported version"},
    /* numbers */
    {HEAD "sched.mem.min = \"abc\"\n", KB_ECONFIG,
     "line 5: sched.mem.min: \"abc\" is not a decimal number"},
    {"displayName = \"v\"\nmemsize = \"2\"\n", KB_ECONFIG,
     "line 2: memsize: 2 is out of range (4..1048576)"},
    {"displayName = \"v\"\nmemsize = \"1048578\"\n", KB_ECONFIG,
     "line 2: memsize: 1048578 is out of range"},
    {"displayName = \"v\"\nmemsize = \"65\"\n", KB_ECONFIG,
     "line 2: memsize: 65 is not a multiple of 2"},
    {"displayName = \"v\"\nmemsize = \"064\"\n", KB_ECONFIG,
     "line 2: memsize: \"064\" is not a decimal number"},
    {"displayName = \"v\"\nmemsize = \"-64\"\n", KB_ECONFIG, "not a decimal number"},
    {"displayName = \"v\"\nmemsize = \" 64\"\n", KB_ECONFIG, "not a decimal number"},
    {"displayName = \"v\"\nmemsize = \"4294967296\"\n", KB_ECONFIG, "not a decimal number"},
    {"displayName = \"v\"\nmemsize = \"\"\n", KB_ECONFIG,
     "line 2: memsize: \"\" is not a decimal number"},
    {"numvcpus = \"0\"\n", KB_ECONFIG, "line 1: numvcpus: 0 is out of range (1..64)"},
    {"numvcpus = \"65\"\n", KB_ECONFIG, "line 1: numvcpus: 65 is out of range (1..64)"},
    {HEAD "sched.cpu.min = \"10000001\"\n", KB_ECONFIG,
     "line 5: sched.cpu.min: 10000001 is out of range"},
    {HEAD "sched.cpu.shares = \"0\"\n", KB_ECONFIG,
     "line 5: sched.cpu.shares: \"0\": expected low, normal, high"},
    {HEAD "sched.cpu.shares = \"1000001\"\n", KB_ECONFIG, "sched.cpu.shares"},
    {HEAD "sched.cpu.shares = \"medium\"\n", KB_ECONFIG, "sched.cpu.shares: \"medium\""},
    /* names, uuid, kind, booleans */
    {"displayName = \"..\"\n", KB_ECONFIG, "line 1: displayName: \"..\" is not a valid name"},
    {"displayName = \".\"\n", KB_ECONFIG, "line 1: displayName: \".\" is not a valid name"},
    {"displayName = \"a/b\"\n", KB_ECONFIG, "line 1: displayName: \"a/b\" is not a valid name"},
    {"displayName = \"a b\"\n", KB_ECONFIG, "is not a valid name"},
    {"displayName = \"\"\n", KB_ECONFIG, "line 1: displayName: \"\" is not a valid name"},
    {"displayName = \"0123456789012345678901234567890123456789012345678901234567890123\"\n",
     KB_ECONFIG, "line 1: displayName: value is 64 bytes, at most 63 allowed"},
    {HEAD "uuid = \"0f8fad5b-d9cb-469f-a165-70867728950\"\n", KB_ECONFIG,
     "line 5: uuid: \"0f8fad5b"},
    {HEAD "uuid = \"0f8fad5bd9cb-469f-a165-70867728950e0\"\n", KB_ECONFIG, "is not a uuid"},
    {HEAD "uuid = \"0f8fad5b-d9cb-469f-a165-70867728950g\"\n", KB_ECONFIG, "is not a uuid"},
    {"guest.kind = \"windows\"\n", KB_ECONFIG,
     "line 1: guest.kind: \"windows\": expected \"kguest\" or \"linux\""},
    {HEAD "disk0.present = \"yes\"\n", KB_ECONFIG,
     "line 5: disk0.present: \"yes\": expected TRUE or FALSE"},
    /* paths */
    {HEAD "disk0.fileName = \"../etc/shadow\"\n", KB_ECONFIG,
     "line 5: disk0.fileName: \"../etc/shadow\": a relative file name may not contain \"/\""},
    {HEAD "disk0.fileName = \"..\"\n", KB_ECONFIG,
     "line 5: disk0.fileName: \"..\": \".\" and \"..\" are not allowed"},
    {HEAD "disk0.fileName = \".\"\n", KB_ECONFIG, "\".\" and \"..\" are not allowed"},
    {HEAD "disk1.fileName = \"/srv/vms/../../etc/shadow\"\n", KB_ECONFIG,
     "line 5: disk1.fileName: \"/srv/vms/../../etc/shadow\": \".\" and \"..\""},
    {HEAD "disk1.fileName = \"/srv/..\"\n", KB_ECONFIG, "are not allowed"},
    {HEAD "disk7.fileName = \"sub/dir.img\"\n", KB_ECONFIG,
     "line 5: disk7.fileName: \"sub/dir.img\": a relative"},
    {HEAD "guest.kernel = \"../vmlinuz\"\n", KB_ECONFIG, "line 5: guest.kernel"},
    {HEAD "guest.initrd = \"/boot/../x\"\n", KB_ECONFIG, "line 5: guest.initrd"},
    {HEAD "disk8.fileName = \"a.img\"\n", KB_ECONFIG,
     "line 5: disk8.fileName: index out of range (0..7)"},
    {HEAD "disk00.fileName = \"a.img\"\n", KB_ECONFIG, "line 5: disk00.fileName: bad index"},
    {HEAD "ethernet12.present = \"TRUE\"\n", KB_ECONFIG,
     "line 5: ethernet12.present: index out of range"},
    /* MACs */
    {HEAD "ethernet0.address = \"02:4b:00:11:22\"\n", KB_ECONFIG,
     "line 5: ethernet0.address: \"02:4b:00:11:22\" is not a MAC address"},
    {HEAD "ethernet0.address = \"02-4b-00-11-22-33\"\n", KB_ECONFIG, "is not a MAC address"},
    {HEAD "ethernet0.address = \"02:4b:00:11:22:3g\"\n", KB_ECONFIG, "is not a MAC address"},
    {HEAD "ethernet0.address = \"02:4b:00:11:22:33:\"\n", KB_ECONFIG, "is not a MAC address"},
    {HEAD "ethernet0.address = \"01:00:5e:00:00:01\"\n", KB_ECONFIG,
     "line 5: ethernet0.address: \"01:00:5e:00:00:01\" is a multicast address"},
    {HEAD "ethernet0.address = \"00:00:00:00:00:00\"\n", KB_ECONFIG, "is the zero address"},
    {HEAD "ethernet0.portgroup = \" lead\"\n", KB_ECONFIG,
     "line 5: ethernet0.portgroup: \" lead\": leading or trailing space"},
    {HEAD "ethernet0.portgroup = \"caf\xc3\xa9\"\n", KB_ECONFIG,
     "portgroup names are printable ASCII"},
    /* rules between keys, reported at the line of the key concerned */
    {"memsize = \"64\"\nnumvcpus = \"1\"\nguest.kind = \"kguest\"\n", KB_ECONFIG,
     "displayName: missing"},
    {"displayName = \"v\"\nnumvcpus = \"1\"\nguest.kind = \"kguest\"\n", KB_ECONFIG,
     "memsize: missing"},
    {"displayName = \"v\"\nmemsize = \"64\"\nguest.kind = \"kguest\"\n", KB_ECONFIG,
     "numvcpus: missing"},
    {"displayName = \"v\"\nmemsize = \"64\"\nnumvcpus = \"1\"\n", KB_ECONFIG,
     "guest.kind: missing"},
    {"displayName = \"v\"\nmemsize = \"64\"\nnumvcpus = \"1\"\nguest.kind = \"linux\"\n",
     KB_ECONFIG, "guest.kernel: missing (required when guest.kind is \"linux\")"},
    {HEAD "sched.mem.min = \"128\"\n", KB_ECONFIG,
     "line 5: sched.mem.min: reservation 128 MiB exceeds memsize 64 MiB"},
    {HEAD "sched.mem.min = \"32\"\nsched.mem.max = \"16\"\n", KB_ECONFIG,
     "line 6: sched.mem.max: limit 16 MiB is below the reservation 32 MiB"},
    {HEAD "sched.cpu.max = \"100\"\nsched.cpu.min = \"200\"\n", KB_ECONFIG,
     "line 5: sched.cpu.max: limit 100 MHz is below the reservation 200 MHz"},
    {HEAD "disk3.present = \"TRUE\"\n", KB_ECONFIG, "disk3.fileName: missing (disk is present)"},
    {HEAD "disk0.fileName = \"a.img\"\ndisk4.fileName = \"a.img\"\n", KB_ECONFIG,
     "line 6: disk4.fileName: \"a.img\" is already disk0.fileName"},
    {HEAD "ethernet1.present = \"TRUE\"\n", KB_ECONFIG,
     "ethernet1.portgroup: missing (NIC is present)"},
    {HEAD "ethernet0.address = \"02:4b:00:00:00:01\"\nethernet5.address = \"02:4B:00:00:00:01\"\n",
     KB_ECONFIG, "line 6: ethernet5.address: 02:4b:00:00:00:01 is already ethernet0.address"},
};

static void test_reject(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct kb_errmsg err = {{0}};
		struct vmk_vmx v;
		int rc;

		memset(&v, 0xa5, sizeof(v));
		rc = vmk_vmx_parse(&v, c->text, strlen(c->text), &err);
		if (rc != c->code || strstr(err.msg, c->msg) == NULL)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err.msg, c->code,
				 c->msg);
		for (size_t k = 0; k < sizeof(v); k++) /* the output is not touched */
			assert_int_equal(((uint8_t *)&v)[k], 0xa5);
	}
}

static void test_reject_hostile_sizes(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx v;
	char *text = malloc(VMK_VMX_FILE_MAX * 2);
	size_t len;

	/* A file larger than the limit, whatever it holds. */
	memset(text, '#', VMK_VMX_FILE_MAX + 1);
	assert_int_equal(vmk_vmx_parse(&v, text, VMK_VMX_FILE_MAX + 1, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "file is 65537 bytes, at most 65536 allowed"));

	/* A line longer than the limit, even a comment. */
	len = (size_t)sprintf(text, HEAD);
	memset(text + len, '#', VMK_VMX_LINE_MAX + 1);
	len += VMK_VMX_LINE_MAX + 1;
	assert_int_equal(vmk_vmx_parse(&v, text, len, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "line 5: line longer than 8192 bytes"));

	/* NUL bytes, in a value or alone. */
	len = (size_t)sprintf(text, HEAD "annotation = \"a");
	text[len++] = 0;
	len += (size_t)sprintf(text + len, "b\"\n");
	assert_int_equal(vmk_vmx_parse(&v, text, len, &err), KB_EPROTO);
	assert_string_equal(err.msg, "line 5: NUL byte");
	assert_int_equal(vmk_vmx_parse(&v, "\0", 1, &err), KB_EPROTO);
	assert_string_equal(err.msg, "line 1: NUL byte");

	/* Too many keys, and a key that is too long. */
	len = (size_t)sprintf(text, HEAD);
	for (int i = 0; i < VMK_VMX_KEYS_MAX; i++)
		len += (size_t)sprintf(text + len, "k%d=\"\"\n", i);
	assert_true(len <= VMK_VMX_FILE_MAX);
	assert_int_equal(vmk_vmx_parse(&v, text, len, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "line 1025: k1020: more than 1024 keys"));
	memset(text, 'k', VMK_VMX_KEY_MAX + 1);
	strcpy(text + VMK_VMX_KEY_MAX + 1, " = \"\"\n");
	assert_int_equal(vmk_vmx_parse(&v, text, strlen(text), &err), KB_ETOOBIG);
	assert_string_equal(err.msg, "line 1: key longer than 128 bytes");

	/* The longest command line fits in a line even when every byte needs an escape. */
	len = (size_t)sprintf(text, HEAD "guest.cmdline = \"");
	for (int i = 0; i < VMK_VMX_CMDLINE_MAX; i++) {
		text[len++] = '\\';
		text[len++] = '"';
	}
	len += (size_t)sprintf(text + len, "\"\n");
	assert_int_equal(vmk_vmx_parse(&v, text, len, &err), 0);
	assert_int_equal(strlen(v.cmdline), VMK_VMX_CMDLINE_MAX);
	vmk_vmx_close(&v);
	len = (size_t)sprintf(text, HEAD "guest.cmdline = \"");
	memset(text + len, 'a', VMK_VMX_CMDLINE_MAX + 1);
	len += VMK_VMX_CMDLINE_MAX + 1;
	len += (size_t)sprintf(text + len, "\"\n");
	assert_int_equal(vmk_vmx_parse(&v, text, len, &err), KB_ECONFIG);
	assert_string_equal(err.msg,
			    "line 5: guest.cmdline: value is 2048 bytes, at most 2047 allowed");
	free(text);
}

static void test_parse_oom(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx v;
	int rc, fails = 0;

	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rc = vmk_vmx_parse(&v, full_vmx, strlen(full_vmx), &err);
		kb_heap_fail_reset();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_non_null(strstr(err.msg, "out of memory"));
		fails++;
	}
	assert_true(fails > 6); /* the parser state and every kept key */
	vmk_vmx_close(&v);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Seeded mutations of a good file: whatever the parser accepts formats and parses back to
 * the same configuration; whatever it refuses comes with a message and an untouched
 * output. Run under `make asan` this also checks memory safety on hostile input. */
static void test_mutations(void **state)
{
	static const char alphabet[] = "\"\\=\n\r\t #.0123456789:-_aZ\x7f\x80\xc3\xff";
	const uint64_t seed = 0x6b65656c766d78ull;
	size_t base = strlen(full_vmx), accepted = 0;
	char *buf = malloc(base + 64);
	uint64_t rng = seed;

	print_message("seed %#llx\n", (unsigned long long)seed);
	for (int iter = 0; iter < 20000; iter++) {
		struct kb_errmsg err = {{0}};
		struct vmk_vmx v, back;
		size_t len = base;
		int rc, edits = 1 + (int)(rng_next(&rng) % 4);

		memcpy(buf, full_vmx, base);
		for (int e = 0; e < edits && len > 1; e++) {
			size_t at = (size_t)(rng_next(&rng) % len);
			char c = alphabet[rng_next(&rng) % (sizeof(alphabet) - 1)];
			switch (rng_next(&rng) % 4) {
			case 0: /* replace */
				buf[at] = c;
				break;
			case 1: /* insert */
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = c;
				len++;
				break;
			case 2: /* delete */
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
				break;
			default: /* truncate */
				len = at + 1;
				break;
			}
		}
		memset(&v, 0xa5, sizeof(v));
		rc = vmk_vmx_parse(&v, buf, len, &err);
		if (rc != 0) {
			assert_true(rc == KB_EPROTO || rc == KB_ECONFIG || rc == KB_EVERSION ||
				    rc == KB_ETOOBIG);
			assert_true(err.msg[0] != 0);
			assert_int_equal(((uint8_t *)&v)[sizeof(v) / 2], 0xa5);
			continue;
		}
		accepted++;
		{
			char *text = format_str(&v);
			parse_ok(&back, text);
			assert_vmx_equal(&v, &back);
			kb_free(text);
		}
		vmk_vmx_close(&back);
		vmk_vmx_close(&v);
	}
	print_message("%zu of 20000 mutated files accepted\n", accepted);
	assert_true(accepted > 100); /* many mutations land in comments or kept values */
	free(buf);
}

/* ---- validate, complete, identifiers -------------------------------------------------- */

static void test_validate_struct(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx v;

	parse_ok(&v, full_vmx);
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

static void assert_uuid_v4(const char *u)
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

static void test_generators(void **state)
{
	char a[37], b[37];
	uint8_t m1[6], m2[6];

	vmk_uuid_generate(a);
	vmk_uuid_generate(b);
	assert_uuid_v4(a);
	assert_uuid_v4(b);
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

	parse_ok(&v, HEAD "ethernet0.present = \"TRUE\"\nethernet0.portgroup = \"pg\"\n"
			  "ethernet1.present = \"TRUE\"\nethernet1.portgroup = \"pg\"\n"
			  "ethernet1.address = \"02:4b:01:02:03:04\"\n"
			  "ethernet2.portgroup = \"pg\"\n");
	assert_int_equal(vmk_vmx_complete(&v, &changed), 0);
	assert_true(changed);
	assert_uuid_v4(v.uuid);
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
	parse_ok(&a, full_vmx);
	assert_int_equal(vmk_vmx_save(&a, path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(access(tmp, F_OK), -1); /* no temporary left */
	assert_int_equal(vmk_vmx_load(&b, path, &err), 0);
	assert_vmx_equal(&a, &b);
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

/* ---- VmSpec --------------------------------------------------------------------------- */

struct spec_store {
	Keel__Vmk__VmSpec spec;
	Keel__Vmk__Resources res;
	Keel__Vmk__DiskSpec disk[10];
	Keel__Vmk__DiskSpec *disks[10];
	Keel__Vmk__NicSpec nic[10];
	Keel__Vmk__NicSpec *nics[10];
};

static void spec_init(struct spec_store *s)
{
	static const Keel__Vmk__VmSpec si = KEEL__VMK__VM_SPEC__INIT;
	static const Keel__Vmk__Resources ri = KEEL__VMK__RESOURCES__INIT;
	static const Keel__Vmk__DiskSpec di = KEEL__VMK__DISK_SPEC__INIT;
	static const Keel__Vmk__NicSpec ni = KEEL__VMK__NIC_SPEC__INIT;

	s->spec = si;
	s->res = ri;
	for (int i = 0; i < 10; i++) {
		s->disk[i] = di;
		s->disks[i] = &s->disk[i];
		s->nic[i] = ni;
		s->nics[i] = &s->nic[i];
	}
	s->spec.disks = s->disks;
	s->spec.nics = s->nics;
}

static void test_from_spec(void **state)
{
	struct kb_errmsg err = {{0}};
	struct spec_store s;
	struct vmk_vmx v;

	/* Defaults: 256 MiB, 1 vCPU, kguest; uuid generated. */
	spec_init(&s);
	s.spec.name = (char *)"tiny";
	assert_int_equal(vmk_vmx_from_spec(&v, &s.spec, &err), 0);
	assert_string_equal(v.name, "tiny");
	assert_int_equal(v.memsize_mib, VMK_VMX_DEFAULT_MEMSIZE);
	assert_int_equal(v.numvcpus, 1);
	assert_int_equal(v.guest_kind, VMK_GUEST_KGUEST);
	assert_uuid_v4(v.uuid);
	assert_false(v.disks[0].present);
	assert_false(v.nics[0].present);
	vmk_vmx_close(&v);

	/* Everything given. */
	s.spec.name = (char *)"db";
	s.spec.memsize_mib = 2048;
	s.spec.numvcpus = 4;
	s.spec.guest_kind = (char *)"linux";
	s.spec.kernel = (char *)"/images/bzImage";
	s.spec.initrd = (char *)"/images/initrd";
	s.spec.cmdline = (char *)"console=ttyS0";
	s.spec.datastore = (char *)"ignored";
	s.spec.n_disks = 2;
	s.disk[0].file = (char *)"db.img";
	s.disk[0].size_mib = 1024;
	s.disk[1].file = (char *)"/shared/iso/tools.img";
	s.disk[1].read_only = true;
	s.spec.n_nics = 2;
	s.nic[0].portgroup = (char *)"VM Network";
	s.nic[1].portgroup = (char *)"storage";
	s.nic[1].mac = (char *)"02:4B:AA:BB:CC:DD";
	s.res.cpu_shares = (char *)"High";
	s.res.cpu_reservation_mhz = 1000;
	s.res.cpu_limit_mhz = 3000;
	s.res.mem_reservation_mib = 1024;
	s.res.mem_limit_mib = 2048;
	s.spec.resources = &s.res;
	assert_int_equal(vmk_vmx_from_spec(&v, &s.spec, &err), 0);
	assert_int_equal(v.memsize_mib, 2048);
	assert_int_equal(v.numvcpus, 4);
	assert_int_equal(v.guest_kind, VMK_GUEST_LINUX);
	assert_string_equal(v.kernel, "/images/bzImage");
	assert_string_equal(v.initrd, "/images/initrd");
	assert_string_equal(v.cmdline, "console=ttyS0");
	assert_true(v.disks[0].present);
	assert_string_equal(v.disks[0].file, "db.img");
	assert_false(v.disks[0].read_only);
	assert_true(v.disks[1].present);
	assert_true(v.disks[1].read_only);
	assert_false(v.disks[2].present);
	assert_true(v.nics[0].present);
	assert_string_equal(v.nics[0].portgroup, "VM Network");
	assert_true(strncmp(v.nics[0].mac, "02:4b:", 6) == 0); /* generated */
	assert_string_equal(v.nics[1].mac, "02:4b:aa:bb:cc:dd");
	assert_string_equal(v.res.cpu_shares, "high");
	assert_int_equal(v.res.cpu_min_mhz, 1000);
	assert_int_equal(v.res.cpu_max_mhz, 3000);
	assert_int_equal(v.res.mem_min_mib, 1024);
	assert_int_equal(v.res.mem_max_mib, 2048);
	assert_int_equal(vmk_vmx_cpu_shares(&v), 8000);
	vmk_vmx_close(&v);
}

struct spec_bad {
	void (*apply)(struct spec_store *s);
	int code;
	const char *msg;
};

static void sb_name(struct spec_store *s)
{
	s->spec.name = (char *)"../etc";
}
static void sb_noname(struct spec_store *s)
{
	s->spec.name = (char *)"";
}
static void sb_mem(struct spec_store *s)
{
	s->spec.memsize_mib = 4097;
}
static void sb_vcpus(struct spec_store *s)
{
	s->spec.numvcpus = 1000;
}
static void sb_kind(struct spec_store *s)
{
	s->spec.guest_kind = (char *)"bsd";
}
static void sb_linux(struct spec_store *s)
{
	s->spec.guest_kind = (char *)"linux";
}
static void sb_cmdline(struct spec_store *s)
{
	s->spec.cmdline = (char *)"a\nb";
}
static void sb_disks(struct spec_store *s)
{
	s->spec.n_disks = 9;
	for (int i = 0; i < 9; i++)
		s->disk[i].file = (char *)"x.img";
}
static void sb_disk_path(struct spec_store *s)
{
	s->spec.n_disks = 2;
	s->disk[0].file = (char *)"a.img";
	s->disk[1].file = (char *)"/vmfs/../../etc/passwd";
}
static void sb_disk_empty(struct spec_store *s)
{
	s->spec.n_disks = 1;
}
static void sb_disk_dup(struct spec_store *s)
{
	s->spec.n_disks = 2;
	s->disk[0].file = (char *)"a.img";
	s->disk[1].file = (char *)"a.img";
}
static void sb_nics(struct spec_store *s)
{
	s->spec.n_nics = 9;
	for (int i = 0; i < 9; i++)
		s->nic[i].portgroup = (char *)"pg";
}
static void sb_nic_pg(struct spec_store *s)
{
	s->spec.n_nics = 1;
}
static void sb_nic_mac(struct spec_store *s)
{
	s->spec.n_nics = 1;
	s->nic[0].portgroup = (char *)"pg";
	s->nic[0].mac = (char *)"03:00:00:00:00:01";
}
static void sb_nic_dup(struct spec_store *s)
{
	s->spec.n_nics = 2;
	s->nic[0].portgroup = (char *)"pg";
	s->nic[0].mac = (char *)"02:00:00:00:00:01";
	s->nic[1].portgroup = (char *)"pg";
	s->nic[1].mac = (char *)"02:00:00:00:00:01";
}
static void sb_shares(struct spec_store *s)
{
	s->res.cpu_shares = (char *)"lots";
	s->spec.resources = &s->res;
}
static void sb_memres(struct spec_store *s)
{
	s->res.mem_reservation_mib = 512;
	s->spec.resources = &s->res;
}
static void sb_cpulim(struct spec_store *s)
{
	s->res.cpu_reservation_mhz = 500;
	s->res.cpu_limit_mhz = 100;
	s->spec.resources = &s->res;
}
static void sb_long(struct spec_store *s)
{
	static char kernel[2000];
	memset(kernel, 'k', sizeof(kernel) - 1);
	kernel[0] = '/';
	s->spec.kernel = kernel;
}

static const struct spec_bad spec_bads[] = {
    {sb_name, KB_ECONFIG, "displayName: \"../etc\" is not a valid name"},
    {sb_noname, KB_ECONFIG, "displayName: missing"},
    {sb_mem, KB_ECONFIG, "memsize: 4097 is not a multiple of 2"},
    {sb_vcpus, KB_ECONFIG, "numvcpus: 1000 is out of range (1..64)"},
    {sb_kind, KB_ECONFIG, "guest.kind: \"bsd\": expected \"kguest\" or \"linux\""},
    {sb_linux, KB_ECONFIG, "guest.kernel: missing"},
    {sb_cmdline, KB_ECONFIG, "guest.cmdline: control character 0x0a in value"},
    {sb_disks, KB_ECONFIG, "disks: 9 given, at most 8"},
    {sb_disk_path, KB_ECONFIG,
     "disk1.fileName: \"/vmfs/../../etc/passwd\": \".\" and \"..\" are not allowed"},
    {sb_disk_empty, KB_ECONFIG, "disk0.fileName: missing"},
    {sb_disk_dup, KB_ECONFIG, "disk1.fileName: \"a.img\" is already disk0.fileName"},
    {sb_nics, KB_ECONFIG, "nics: 9 given, at most 8"},
    {sb_nic_pg, KB_ECONFIG, "ethernet0.portgroup: missing"},
    {sb_nic_mac, KB_ECONFIG, "ethernet0.address: \"03:00:00:00:00:01\" is a multicast address"},
    {sb_nic_dup, KB_ECONFIG, "ethernet1.address: 02:00:00:00:00:01 is already ethernet0.address"},
    {sb_shares, KB_ECONFIG, "sched.cpu.shares: \"lots\": expected low, normal, high"},
    {sb_memres, KB_ECONFIG, "sched.mem.min: reservation 512 MiB exceeds memsize 256 MiB"},
    {sb_cpulim, KB_ECONFIG, "sched.cpu.max: limit 100 MHz is below the reservation 500 MHz"},
    {sb_long, KB_ECONFIG, "guest.kernel: value is 1999 bytes, at most 1023 allowed"},
};

static void test_from_spec_reject(void **state)
{
	for (size_t i = 0; i < sizeof(spec_bads) / sizeof(spec_bads[0]); i++) {
		struct kb_errmsg err = {{0}};
		struct spec_store s;
		struct vmk_vmx v;
		int rc;

		spec_init(&s);
		s.spec.name = (char *)"v";
		spec_bads[i].apply(&s);
		memset(&v, 0xa5, sizeof(v));
		rc = vmk_vmx_from_spec(&v, &s.spec, &err);
		if (rc != spec_bads[i].code || strstr(err.msg, spec_bads[i].msg) == NULL)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err.msg,
				 spec_bads[i].code, spec_bads[i].msg);
		for (size_t k = 0; k < sizeof(v); k++)
			assert_int_equal(((uint8_t *)&v)[k], 0xa5);
	}
}

static void test_to_spec(void **state)
{
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmSpec *spec, *wire;
	struct vmk_vmx v, back;
	uint8_t *buf;
	size_t len;

	parse_ok(&v, full_vmx);
	assert_int_equal(vmk_vmx_to_spec(&v, &spec), 0);
	assert_string_equal(spec->name, "web-01");
	assert_int_equal(spec->memsize_mib, 512);
	assert_int_equal(spec->numvcpus, 2);
	assert_string_equal(spec->guest_kind, "linux");
	assert_string_equal(spec->kernel, "/var/lib/keel/images/vmlinuz");
	assert_string_equal(spec->initrd, "initrd.img");
	assert_string_equal(spec->cmdline, "console=ttyS0 msg=\"hi\" path=C:\\x");
	assert_string_equal(spec->datastore, "");
	assert_int_equal(spec->n_disks, 2); /* present ones, in slot order */
	assert_string_equal(spec->disks[0]->file, "web-01.img");
	assert_false(spec->disks[0]->read_only);
	assert_string_equal(spec->disks[1]->file, "/srv/iso/tools.img");
	assert_true(spec->disks[1]->read_only);
	assert_int_equal(spec->n_nics, 1);
	assert_string_equal(spec->nics[0]->portgroup, "VM Network");
	assert_string_equal(spec->nics[0]->mac, "02:4b:00:11:22:33");
	assert_non_null(spec->resources);
	assert_string_equal(spec->resources->cpu_shares, "high");
	assert_int_equal(spec->resources->cpu_reservation_mhz, 500);
	assert_int_equal(spec->resources->cpu_limit_mhz, 2000);
	assert_int_equal(spec->resources->mem_reservation_mib, 256);
	assert_int_equal(spec->resources->mem_limit_mib, 512);

	/* Through the wire and back into a new VM: the same settings (new uuid). */
	len = keel__vmk__vm_spec__get_packed_size(spec);
	buf = malloc(len);
	assert_int_equal(keel__vmk__vm_spec__pack(spec, buf), len);
	wire = keel__vmk__vm_spec__unpack(NULL, len, buf);
	assert_non_null(wire);
	assert_int_equal(vmk_vmx_from_spec(&back, wire, &err), 0);
	assert_string_not_equal(back.uuid, v.uuid);
	strcpy(back.uuid, v.uuid);
	/* Slots are renumbered (disk2 becomes disk1) and non-present slots and kept keys are
	 * not part of a spec. */
	assert_string_equal(back.disks[1].file, v.disks[2].file);
	assert_true(back.disks[1].read_only);
	v.disks[1] = v.disks[2];
	memset(&v.disks[2], 0, sizeof(v.disks[2]));
	memset(&v.nics[3], 0, sizeof(v.nics[3]));
	vmk_vmx_close(&v);
	assert_vmx_equal(&v, &back);
	keel__vmk__vm_spec__free_unpacked(wire, NULL);
	free(buf);
	vmk_vmx_spec_free(spec);
	vmk_vmx_spec_free(NULL);
	vmk_vmx_close(&back);
}

static void test_spec_oom(void **state)
{
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmSpec *spec = NULL;
	struct spec_store s;
	struct vmk_vmx v, w;
	int rc, fails = 0;

	parse_ok(&v, full_vmx);
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rc = vmk_vmx_to_spec(&v, &spec);
		kb_heap_fail_reset();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		fails++;
	}
	assert_true(fails >= 14); /* spec, strings, resources, arrays, disks, NICs */
	vmk_vmx_spec_free(spec);

	spec_init(&s);
	s.spec.name = (char *)"x";
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_vmx_from_spec(&w, &s.spec, &err), -ENOMEM);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), -ENOMEM);
	kb_heap_fail_reset();
	assert_string_equal(v.name, "web-01");
	vmk_vmx_close(&v);
}

/* ---- reconfigure ---------------------------------------------------------------------- */

static void test_reconfigure(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx v, before;
	struct vmk_vmx_extra *extra;
	struct spec_store s;
	char *t1, *t2;

	parse_ok(&v, full_vmx);
	parse_ok(&before, full_vmx);
	extra = v.extra;

	/* An empty spec changes nothing. */
	spec_init(&s);
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), 0);
	assert_vmx_equal(&v, &before);

	/* Only the given fields change. */
	s.spec.memsize_mib = 1024;
	s.res.mem_limit_mib = 768;
	s.spec.resources = &s.res;
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), 0);
	assert_int_equal(v.memsize_mib, 1024);
	assert_int_equal(v.res.mem_max_mib, 768);
	before.memsize_mib = 1024;
	before.res.mem_max_mib = 768;
	assert_vmx_equal(&v, &before);
	assert_ptr_equal(v.extra, extra); /* kept keys untouched */

	/* A NIC list replaces the NICs; a NIC without a MAC keeps its slot's MAC. */
	spec_init(&s);
	s.spec.n_nics = 2;
	s.nic[0].portgroup = (char *)"other";
	s.nic[1].portgroup = (char *)"VM Network";
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), 0);
	assert_string_equal(v.nics[0].portgroup, "other");
	assert_string_equal(v.nics[0].mac, "02:4b:00:11:22:33");
	assert_true(v.nics[1].present);
	assert_true(strncmp(v.nics[1].mac, "02:4b:", 6) == 0);
	assert_string_not_equal(v.nics[1].mac, v.nics[0].mac);
	assert_false(v.nics[3].present);
	assert_string_equal(v.nics[3].portgroup, "");

	/* A disk list replaces the disks. */
	spec_init(&s);
	s.spec.n_disks = 1;
	s.disk[0].file = (char *)"new.img";
	s.spec.cmdline = (char *)"quiet";
	s.spec.name = (char *)"web-02";
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), 0);
	assert_string_equal(v.name, "web-02");
	assert_string_equal(v.cmdline, "quiet");
	assert_true(v.disks[0].present);
	assert_string_equal(v.disks[0].file, "new.img");
	assert_false(v.disks[2].present);
	assert_string_equal(v.disks[2].file, "");
	assert_int_equal(v.memsize_mib, 1024);
	assert_string_equal(v.kernel, "/var/lib/keel/images/vmlinuz");

	/* Errors change nothing: a bad value, and a good value that breaks a rule between
	 * keys (memsize below the reservation), and a bad list after good fields. */
	t1 = format_str(&v);
	spec_init(&s);
	s.spec.memsize_mib = 2048;
	s.spec.numvcpus = 99;
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "numvcpus: 99 is out of range (1..64)");
	spec_init(&s);
	s.spec.memsize_mib = 128;
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "sched.mem.min: reservation 256 MiB exceeds memsize 128 MiB");
	spec_init(&s);
	s.spec.name = (char *)"renamed";
	s.spec.n_disks = 1;
	s.disk[0].file = (char *)"a/../../b";
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "disk0.fileName"));
	spec_init(&s);
	s.spec.n_nics = 1;
	s.nic[0].portgroup = (char *)"pg";
	s.nic[0].mac = (char *)"nope";
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), KB_ECONFIG);
	assert_string_equal(err.msg,
			    "ethernet0.address: \"nope\" is not a MAC address (xx:xx:xx:xx:xx:xx)");
	t2 = format_str(&v);
	assert_string_equal(t1, t2);
	kb_free(t1);
	kb_free(t2);
	vmk_vmx_close(&v);
	vmk_vmx_close(&before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_full),
	    cmocka_unit_test(test_parse_minimal_and_case),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_format_limits),
	    cmocka_unit_test(test_reject),
	    cmocka_unit_test(test_reject_hostile_sizes),
	    cmocka_unit_test(test_parse_oom),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_validate_struct),
	    cmocka_unit_test(test_generators),
	    cmocka_unit_test(test_complete),
	    cmocka_unit_test(test_name_valid),
	    cmocka_unit_test_setup_teardown(test_load_save, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_load_refusals, setup_dir, teardown_dir),
	    cmocka_unit_test(test_from_spec),
	    cmocka_unit_test(test_from_spec_reject),
	    cmocka_unit_test(test_to_spec),
	    cmocka_unit_test(test_spec_oom),
	    cmocka_unit_test(test_reconfigure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
