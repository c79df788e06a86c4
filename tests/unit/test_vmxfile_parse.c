/*
 * Tests for kernel/vm/vmxfile parsing and formatting: every known key, format/parse round
 * trips with kept keys in order, each refusal of a malformed or hostile file with its line
 * and key, mutated files, and out-of-memory at every allocation of a parse.
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

/* ---- parsing --------------------------------------------------------------------------- */

static void test_parse_full(void **state)
{
	struct vmk_vmx v;

	vx_parse_ok(&v, vx_full_vmx);
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
	vx_parse_ok(
	    &v, "DISPLAYNAME = \"a\"\nMemSize=\"4\"\nnumVCPUs =\"64\"\nGuest.Kind= \"kguest\"\n");
	assert_string_equal(v.name, "a");
	assert_int_equal(v.memsize_mib, 4);
	assert_int_equal(v.numvcpus, 64);
	assert_int_equal(v.guest_kind, VMK_GUEST_KGUEST);
	assert_string_equal(v.uuid, "");
	assert_int_equal(v.n_extra, 0);
	assert_int_equal(vmk_vmx_cpu_shares(&v), 64000);
	vmk_vmx_close(&v);

	vx_parse_ok(&v, "displayName = \"b\"\nmemsize = \"1048576\"\nnumvcpus = \"1\"\n"
			"guest.kind = \"kguest\"\nsched.cpu.shares = \"1234\"\n"
			"sched.mem.min = \"1048576\"\nsched.cpu.max = \"0\"\n");
	assert_int_equal(v.memsize_mib, 1048576);
	assert_int_equal(vmk_vmx_cpu_shares(&v), 1234);
	vmk_vmx_close(&v);

	vx_parse_ok(&v, "displayName = \"c\"\nmemsize = \"8\"\nnumvcpus = \"1\"\n"
			"guest.kind = \"kguest\"\nsched.cpu.shares = \"low\"\n");
	assert_int_equal(vmk_vmx_cpu_shares(&v), 500);
	vmk_vmx_close(&v);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
	struct vmk_vmx a, b;
	char *t1, *t2;

	vx_parse_ok(&a, vx_full_vmx);
	t1 = vx_format_str(&a);
	vx_parse_ok(&b, t1);
	vx_assert_vmx_equal(&a, &b);
	t2 = vx_format_str(&b);
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
		rc = vmk_vmx_parse(&v, vx_full_vmx, strlen(vx_full_vmx), &err);
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
	size_t base = strlen(vx_full_vmx), accepted = 0;
	char *buf = malloc(base + 64);
	uint64_t rng = seed;

	print_message("seed %#llx\n", (unsigned long long)seed);
	for (int iter = 0; iter < 20000; iter++) {
		struct kb_errmsg err = {{0}};
		struct vmk_vmx v, back;
		size_t len = base;
		int rc, edits = 1 + (int)(rng_next(&rng) % 4);

		memcpy(buf, vx_full_vmx, base);
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
			char *text = vx_format_str(&v);
			vx_parse_ok(&back, text);
			vx_assert_vmx_equal(&v, &back);
			kb_free(text);
		}
		vmk_vmx_close(&back);
		vmk_vmx_close(&v);
	}
	print_message("%zu of 20000 mutated files accepted\n", accepted);
	assert_true(accepted > 100); /* many mutations land in comments or kept values */
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_full), cmocka_unit_test(test_parse_minimal_and_case),
	    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_format_limits),
	    cmocka_unit_test(test_reject),     cmocka_unit_test(test_reject_hostile_sizes),
	    cmocka_unit_test(test_parse_oom),  cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
