/*
 * Tests for kernel/vm/vmxfile and VmSpec: conversions both ways and through the wire, each
 * refusal of a bad spec, out-of-memory at every allocation, and reconfigure changing only
 * what it is given.
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
	vx_assert_uuid_v4(v.uuid);
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

	vx_parse_ok(&v, vx_full_vmx);
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
	vx_assert_vmx_equal(&v, &back);
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

	vx_parse_ok(&v, vx_full_vmx);
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

	vx_parse_ok(&v, vx_full_vmx);
	vx_parse_ok(&before, vx_full_vmx);
	extra = v.extra;

	/* An empty spec changes nothing. */
	spec_init(&s);
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), 0);
	vx_assert_vmx_equal(&v, &before);

	/* Only the given fields change. */
	s.spec.memsize_mib = 1024;
	s.res.mem_limit_mib = 768;
	s.spec.resources = &s.res;
	assert_int_equal(vmk_vmx_apply_reconfigure(&v, &s.spec, &err), 0);
	assert_int_equal(v.memsize_mib, 1024);
	assert_int_equal(v.res.mem_max_mib, 768);
	before.memsize_mib = 1024;
	before.res.mem_max_mib = 768;
	vx_assert_vmx_equal(&v, &before);
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
	t1 = vx_format_str(&v);
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
	t2 = vx_format_str(&v);
	assert_string_equal(t1, t2);
	kb_free(t1);
	kb_free(t2);
	vmk_vmx_close(&v);
	vmk_vmx_close(&before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_spec),	cmocka_unit_test(test_from_spec_reject),
	    cmocka_unit_test(test_to_spec),	cmocka_unit_test(test_spec_oom),
	    cmocka_unit_test(test_reconfigure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
