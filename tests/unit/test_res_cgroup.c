/*
 * Tests for kernel/res against fake hosts: a /proc and /sys with chosen cpuinfo, meminfo
 * and cpufreq files (host capacity), and fake cgroup trees of plain directories in the
 * layouts of cgroup v1 (separate and co-mounted hierarchies) and v2, checking the exact
 * contents of every file written, attach, usage, removal (busy groups included), the
 * rollback of a failed create, delegation under the process's own cgroup, the NONE mode,
 * configuration errors and out-of-memory at init.
 */
#include <errno.h>
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

#include "kernel/res/res.h"
#include "lib/heap.h"

#define UUID "564d0a1b-2c3d-4e5f-8091-a2b3c4d5e6f7"

/* Errors only: the init lines would clutter the test output. */
static struct kb_logger quiet;

struct fixture {
	char top[64];	/* the temporary directory */
	char cg[128];	/* top/cg: the fake cgroup root */
	char proc[128]; /* top/proc */
	char sys[128];	/* top/sys */
	struct vmk_res res;
	bool inited;
	struct kb_errmsg err;
};

static void put(const char *top, const char *rel, const char *text)
{
	char path[512];
	char *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	for (slash = strchr(path + strlen(top) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The file's contents without the trailing newline, or "<missing>". */
static const char *get(const char *top, const char *rel)
{
	static char buf[1024];
	char path[512];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	f = fopen(path, "r");
	if (f == NULL)
		return "<missing>";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return buf;
}

static bool exists(const char *top, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	return stat(path, &st) == 0;
}

static void unlink_in(const char *top, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	assert_int_equal(unlink(path), 0);
}

static void rmdir_in(const char *top, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	assert_int_equal(rmdir(path), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* A host with 2 CPUs at 2596 MHz (cpuinfo only) and 8 GiB. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->top, sizeof(f->top), "/tmp/keel-res-XXXXXX");
	if (mkdtemp(f->top) == NULL)
		return -1;
	snprintf(f->cg, sizeof(f->cg), "%s/cg", f->top);
	snprintf(f->proc, sizeof(f->proc), "%s/proc", f->top);
	snprintf(f->sys, sizeof(f->sys), "%s/sys", f->top);
	mkdir(f->cg, 0755);
	put(f->top, "proc/meminfo", "MemTotal:        8388608 kB\nMemFree:         1234 kB\n");
	put(f->top, "proc/cpuinfo",
	    "processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2596.146\n\n"
	    "processor\t: 1\nmodel name\t: Test CPU\ncpu MHz\t\t: 2596.146\n\n");
	put(f->top, "sys/devices/system/cpu/online", "0-1\n");
	put(f->top, "proc/self/cgroup", "4:memory:/\n3:cpuacct:/\n2:cpu:/\n0::/\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	kb_heap_fail_reset();
	if (f->inited)
		vmk_res_close(&f->res);
	nftw(f->top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void v1_tree(struct fixture *f)
{
	put(f->top, "cg/cpu/cpu.shares", "1024\n");
	put(f->top, "cg/cpuacct/cpuacct.usage", "0\n");
	put(f->top, "cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
}

static void v2_tree(struct fixture *f)
{
	put(f->top, "cg/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	put(f->top, "cg/cgroup.subtree_control", "\n");
}

static void config(struct fixture *f, struct vmk_res_config *cfg)
{
	vmk_res_config_init(cfg);
	cfg->cgroup_root = f->cg;
	cfg->proc_root = f->proc;
	cfg->sys_root = f->sys;
	cfg->parent = "keel-test/vms";
	cfg->plain_dirs = true;
	cfg->rmdir_timeout_ms = 30;
	cfg->log = &quiet;
}

static int init(struct fixture *f, const struct vmk_res_config *cfg)
{
	int rc;

	if (f->inited)
		vmk_res_close(&f->res);
	rc = vmk_res_init(&f->res, cfg, &f->err);
	f->inited = rc == 0;
	return rc;
}

static void init_ok(struct fixture *f)
{
	struct vmk_res_config cfg;

	config(f, &cfg);
	assert_int_equal(init(f, &cfg), 0);
}

/* High shares on 2 vCPUs, CPU limit 1000 MHz, memory 2048 MiB reserving 512, limit 1024. */
static const struct vmk_res_settings web = {
    .shares_level = VMK_RES_SHARES_HIGH,
    .cpu_reservation_mhz = 500,
    .cpu_limit_mhz = 1000,
    .mem_reservation_mib = 512,
    .mem_limit_mib = 1024,
};

/* ---- host capacity ---- */

static void test_capacity_cpuinfo(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_capacity cap;

	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 0, NULL, &cap, &f->err), 0);
	assert_int_equal(cap.cpus, 2);
	assert_int_equal(cap.cpu_mhz, 2596);
	assert_string_equal(cap.cpu_mhz_source, "cpuinfo cpu MHz");
	assert_int_equal(cap.cpu_total_mhz, 5192);
	assert_int_equal(cap.mem_total_bytes, 8ull << 30);
	assert_int_equal(cap.mem_total_mib, 8192);
	assert_int_equal(cap.cpu_reservable_mhz, 4672);
	assert_int_equal(cap.mem_reservable_mib, 7526);
}

static void test_capacity_mhz_sources(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_capacity cap;

	put(f->top, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3400000\n");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 0, NULL, &cap, &f->err), 0);
	assert_int_equal(cap.cpu_mhz, 3400);
	assert_string_equal(cap.cpu_mhz_source, "cpufreq cpuinfo_max_freq");
	put(f->top, "sys/devices/system/cpu/cpu0/cpufreq/base_frequency", "2100499\n");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 0, NULL, &cap, &f->err), 0);
	assert_int_equal(cap.cpu_mhz, 2100);
	assert_string_equal(cap.cpu_mhz_source, "cpufreq base_frequency");
	assert_int_equal(cap.cpu_total_mhz, 4200);
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 1800, NULL, &cap, &f->err), 0);
	assert_int_equal(cap.cpu_mhz, 1800);
	assert_string_equal(cap.cpu_mhz_source, "configured");

	/* No cpufreq, no "cpu MHz" (as on arm64): the default. */
	put(f->top, "sys/devices/system/cpu/cpu0/cpufreq/base_frequency", "garbage\n");
	put(f->top, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "0\n");
	put(f->top, "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 50.00\n\n");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 0, NULL, &cap, &f->err), 0);
	assert_int_equal(cap.cpu_mhz, VMK_RES_DEFAULT_CPU_MHZ);
	assert_string_equal(cap.cpu_mhz_source, "default");
	assert_int_equal(cap.cpus, 2); /* still from sys/.../online */
}

static void test_capacity_cpu_count(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_reserve none = {0};
	struct vmk_res_capacity cap;

	put(f->top, "sys/devices/system/cpu/online", "0-3,6,8-9\n");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 1000, &none, &cap, &f->err), 0);
	assert_int_equal(cap.cpus, 7);
	assert_int_equal(cap.cpu_reservable_mhz, 7000);
	assert_int_equal(cap.mem_reservable_mib, 8192);

	/* A malformed or missing online list: count cpuinfo's processors. */
	put(f->top, "sys/devices/system/cpu/online", "0-\n");
	put(f->top, "proc/cpuinfo", "processor\t: 0\n\nprocessor\t: 1\n\nprocessor\t: 2\n\n");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 1000, &none, &cap, &f->err), 0);
	assert_int_equal(cap.cpus, 3);
	unlink_in(f->top, "sys/devices/system/cpu/online");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 1000, &none, &cap, &f->err), 0);
	assert_int_equal(cap.cpus, 3);
}

static void test_capacity_meminfo_errors(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_capacity cap;

	put(f->top, "proc/meminfo", "MemFree:  1234 kB\n");
	assert_int_equal(vmk_res_capacity_probe(f->proc, f->sys, 0, NULL, &cap, &f->err),
			 KB_EPROTO);
	assert_non_null(strstr(f->err.msg, "no MemTotal line"));
	assert_int_equal(
	    vmk_res_capacity_probe("/nonexistent-proc", f->sys, 0, NULL, &cap, &f->err), -ENOENT);
	assert_non_null(strstr(f->err.msg, "/nonexistent-proc/meminfo"));
}

/* ---- cgroup v1 ---- */

static void test_v1_init_layout(void **state)
{
	struct fixture *f = *state;
	char dir[512];

	v1_tree(f);
	init_ok(f);
	assert_string_equal(vmk_res_cgroup_version(&f->res), "v1");
	assert_int_equal(f->res.ndirs, 3);
	assert_true(exists(f->top, "cg/cpu/keel-test/vms"));
	assert_true(exists(f->top, "cg/cpuacct/keel-test/vms"));
	assert_true(exists(f->top, "cg/memory/keel-test/vms"));
	assert_int_equal(vmk_res_vm_dir(&f->res, UUID, VMK_RES_MEMORY, dir, sizeof(dir)), 0);
	assert_string_equal(dir + strlen(f->cg), "/memory/keel-test/vms/" UUID);
	assert_int_equal(
	    vmk_res_vm_dir(&f->res, UUID, (enum vmk_res_controller)9, dir, sizeof(dir)),
	    KB_ECONFIG);
	assert_int_equal(vmk_res_host_capacity(&f->res)->cpu_mhz, 2596);
	assert_int_equal(vmk_res_host_capacity(&f->res)->mem_reservable_mib, 7526);
}

static void test_v1_create_writes_files(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_settings plain = {0};

	v1_tree(f);
	init_ok(f);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_string_equal(get(f->top, "cg/cpu/keel-test/vms/" UUID "/cpu.shares"), "4096");
	assert_string_equal(get(f->top, "cg/cpu/keel-test/vms/" UUID "/cpu.cfs_period_us"),
			    "100000");
	assert_string_equal(get(f->top, "cg/cpu/keel-test/vms/" UUID "/cpu.cfs_quota_us"), "38520");
	assert_string_equal(get(f->top, "cg/memory/keel-test/vms/" UUID "/memory.limit_in_bytes"),
			    "1124073472");
	assert_string_equal(
	    get(f->top, "cg/memory/keel-test/vms/" UUID "/memory.soft_limit_in_bytes"),
	    "536870912");
	assert_true(exists(f->top, "cg/cpuacct/keel-test/vms/" UUID));

	/* Reconfigure the existing group: normal shares, no limits. */
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &plain, 2048, 2, &f->err), 0);
	assert_string_equal(get(f->top, "cg/cpu/keel-test/vms/" UUID "/cpu.shares"), "2048");
	assert_string_equal(get(f->top, "cg/cpu/keel-test/vms/" UUID "/cpu.cfs_quota_us"), "-1");
	assert_string_equal(get(f->top, "cg/memory/keel-test/vms/" UUID "/memory.limit_in_bytes"),
			    "2214592512");
	assert_string_equal(
	    get(f->top, "cg/memory/keel-test/vms/" UUID "/memory.soft_limit_in_bytes"), "0");
}

static void test_v1_attach_usage(void **state)
{
	struct fixture *f = *state;
	uint64_t cpu_ns = 0, mem = 0;

	v1_tree(f);
	init_ok(f);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_int_equal(vmk_res_vm_attach(&f->res, UUID, 4242, &f->err), 0);
	assert_string_equal(get(f->top, "cg/cpu/keel-test/vms/" UUID "/cgroup.procs"), "4242");
	assert_string_equal(get(f->top, "cg/cpuacct/keel-test/vms/" UUID "/cgroup.procs"), "4242");
	assert_string_equal(get(f->top, "cg/memory/keel-test/vms/" UUID "/cgroup.procs"), "4242");
	assert_int_equal(vmk_res_vm_attach(&f->res, UUID, 0, &f->err), -ESRCH);
	assert_int_equal(vmk_res_vm_attach(&f->res, "no-such-vm", 4242, &f->err), -ENOENT);
	assert_non_null(strstr(f->err.msg, "VM no-such-vm: cannot write 4242 to "));

	put(f->top, "cg/cpuacct/keel-test/vms/" UUID "/cpuacct.usage", "123456789\n");
	put(f->top, "cg/memory/keel-test/vms/" UUID "/memory.usage_in_bytes", "5242880\n");
	assert_int_equal(vmk_res_vm_usage(&f->res, UUID, &cpu_ns, &mem, &f->err), 0);
	assert_int_equal(cpu_ns, 123456789);
	assert_int_equal(mem, 5242880);
	assert_int_equal(vmk_res_vm_usage(&f->res, "no-such-vm", &cpu_ns, &mem, &f->err),
			 KB_ENOTFOUND);
	assert_non_null(strstr(f->err.msg, "VM no-such-vm has no resource group"));
	put(f->top, "cg/cpuacct/keel-test/vms/" UUID "/cpuacct.usage", "lots\n");
	assert_int_equal(vmk_res_vm_usage(&f->res, UUID, &cpu_ns, &mem, &f->err), KB_EPROTO);
}

static void test_v1_remove(void **state)
{
	struct fixture *f = *state;

	v1_tree(f);
	init_ok(f);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_int_equal(vmk_res_vm_attach(&f->res, UUID, 4242, &f->err), 0);
	/* A group with a child group stays busy: retried, then -EBUSY, nothing lost. */
	put(f->top, "cg/memory/keel-test/vms/" UUID "/child/cgroup.procs", "");
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), -EBUSY);
	assert_non_null(strstr(f->err.msg, "still has processes"));
	assert_true(exists(f->top, "cg/memory/keel-test/vms/" UUID));
	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), -EBUSY);
	assert_non_null(strstr(f->err.msg, "VM groups remain in it"));
	assert_true(exists(f->top, "cg/cpu/keel-test/vms"));

	unlink_in(f->top, "cg/memory/keel-test/vms/" UUID "/child/cgroup.procs");
	rmdir_in(f->top, "cg/memory/keel-test/vms/" UUID "/child");
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);
	assert_false(exists(f->top, "cg/cpu/keel-test/vms/" UUID));
	assert_false(exists(f->top, "cg/cpuacct/keel-test/vms/" UUID));
	assert_false(exists(f->top, "cg/memory/keel-test/vms/" UUID));
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);

	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), 0);
	assert_false(exists(f->top, "cg/cpu/keel-test"));
	assert_false(exists(f->top, "cg/cpuacct/keel-test"));
	assert_false(exists(f->top, "cg/memory/keel-test"));
	assert_string_equal(get(f->top, "cg/cpu/cpu.shares"), "1024");
}

static void test_v1_comounted(void **state)
{
	struct fixture *f = *state;
	uint64_t cpu_ns = 0, mem = 0;
	char link[256];

	/* systemd's layout: cpu,cpuacct with cpu and cpuacct as symlinks to it. */
	put(f->top, "cg/cpu,cpuacct/cpu.shares", "1024\n");
	put(f->top, "cg/cpu,cpuacct/cpuacct.usage", "0\n");
	put(f->top, "cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
	snprintf(link, sizeof(link), "%s/cpu", f->cg);
	assert_int_equal(symlink("cpu,cpuacct", link), 0);
	snprintf(link, sizeof(link), "%s/cpuacct", f->cg);
	assert_int_equal(symlink("cpu,cpuacct", link), 0);
	init_ok(f);
	assert_int_equal(f->res.ndirs, 2);
	assert_int_equal(f->res.dir_of[VMK_RES_CPU], f->res.dir_of[VMK_RES_CPUACCT]);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_int_equal(vmk_res_vm_attach(&f->res, UUID, 77, &f->err), 0);
	assert_string_equal(get(f->top, "cg/cpu,cpuacct/keel-test/vms/" UUID "/cgroup.procs"),
			    "77");
	assert_string_equal(get(f->top, "cg/cpu,cpuacct/keel-test/vms/" UUID "/cpu.shares"),
			    "4096");
	put(f->top, "cg/cpu,cpuacct/keel-test/vms/" UUID "/cpuacct.usage", "99\n");
	put(f->top, "cg/memory/keel-test/vms/" UUID "/memory.usage_in_bytes", "4096\n");
	assert_int_equal(vmk_res_vm_usage(&f->res, UUID, &cpu_ns, &mem, &f->err), 0);
	assert_int_equal(cpu_ns, 99);
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);
	assert_false(exists(f->top, "cg/cpu,cpuacct/keel-test/vms/" UUID));
	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), 0);

	/* Without the symlinks the co-mounted directory is found by its name. */
	vmk_res_close(&f->res);
	f->inited = false;
	unlink(link);
	snprintf(link, sizeof(link), "%s/cpu", f->cg);
	unlink(link);
	init_ok(f);
	assert_int_equal(f->res.ndirs, 2);
	assert_true(exists(f->top, "cg/cpu,cpuacct/keel-test/vms"));
}

static void test_v1_refusals_change_nothing(void **state)
{
	static const char *const bad[] = {
	    "",
	    "../etc",
	    ".hidden",
	    "a/b",
	    "white space",
	    "0123456789012345678901234567890123456789012345678901234567890123x"};
	struct vmk_res_settings s = {.mem_reservation_mib = 4096};
	struct fixture *f = *state;
	unsigned i;

	v1_tree(f);
	init_ok(f);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &s, 2048, 2, &f->err), KB_ECONFIG);
	assert_string_equal(f->err.msg,
			    "memory reservation 4096 MiB exceeds the VM's memory size 2048 MiB");
	assert_false(exists(f->top, "cg/cpu/keel-test/vms/" UUID));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vmk_res_vm_create(&f->res, bad[i], &web, 2048, 2, &f->err),
				 KB_ECONFIG);
		assert_non_null(strstr(f->err.msg, "cannot name a cgroup"));
	}
	assert_int_equal(vmk_res_vm_create(&f->res, NULL, &web, 2048, 2, &f->err), KB_ECONFIG);
	assert_int_equal(vmk_res_vm_remove(&f->res, "..", &f->err), KB_ECONFIG);
	assert_int_equal(vmk_res_vm_attach(&f->res, "a/b", 1, &f->err), KB_ECONFIG);
	assert_true(exists(f->top, "cg/cpu/keel-test/vms"));
}

static void test_v1_failed_create_rolls_back(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_config cfg;
	char dir[256];

	/* Not plain directories: files must exist, as in cgroupfs, so writing fails. */
	v1_tree(f);
	config(f, &cfg);
	cfg.plain_dirs = false;
	assert_int_equal(init(f, &cfg), 0);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), -ENOENT);
	assert_non_null(strstr(f->err.msg, "VM " UUID ": cannot write 4096 to "));
	assert_non_null(strstr(f->err.msg, "/cpu.shares: No such file or directory"));
	assert_false(exists(f->top, "cg/cpu/keel-test/vms/" UUID));
	assert_false(exists(f->top, "cg/cpuacct/keel-test/vms/" UUID));
	assert_false(exists(f->top, "cg/memory/keel-test/vms/" UUID));

	/* A group that was there before (a running VM's) is kept. */
	snprintf(dir, sizeof(dir), "%s/cpu/keel-test/vms/" UUID, f->cg);
	assert_int_equal(mkdir(dir, 0755), 0);
	put(f->top, "cg/cpu/keel-test/vms/" UUID "/cpu.shares", "1024\n");
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), -ENOENT);
	assert_non_null(strstr(f->err.msg, "cpu.cfs_quota_us"));
	assert_true(exists(f->top, "cg/cpu/keel-test/vms/" UUID));
	assert_false(exists(f->top, "cg/memory/keel-test/vms/" UUID));
}

static void test_v1_failed_init_rolls_back(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_config cfg;

	/* The memory hierarchy cannot take the parent; cpu's first level was there. */
	v1_tree(f);
	put(f->top, "cg/memory/keel-test", "not a directory\n");
	put(f->top, "cg/cpu/keel-test/cpu.shares", "1024\n");
	config(f, &cfg);
	assert_int_equal(init(f, &cfg), -ENOTDIR);
	assert_non_null(strstr(f->err.msg, "cgroup v1: cannot create cgroup "));
	assert_non_null(strstr(f->err.msg, "/memory/keel-test/vms: Not a directory"));
	assert_false(exists(f->top, "cg/cpuacct/keel-test"));
	assert_false(exists(f->top, "cg/cpu/keel-test/vms"));
	assert_string_equal(get(f->top, "cg/cpu/keel-test/cpu.shares"), "1024");
}

static void test_v1_delegated(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_config cfg;
	char dir[512];

	v1_tree(f);
	put(f->top, "cg/memory/svc/keel/memory.limit_in_bytes", "1073741824\n");
	put(f->top, "proc/self/cgroup",
	    "5:pids:/svc\n4:memory:/svc/keel\n3:cpuacct:/\n2:cpu:/\n1:name=systemd:/svc\n0::/\n");
	config(f, &cfg);
	cfg.delegated = true;
	assert_int_equal(init(f, &cfg), 0);
	assert_true(exists(f->top, "cg/memory/svc/keel/keel-test/vms"));
	assert_true(exists(f->top, "cg/cpu/keel-test/vms"));
	assert_false(exists(f->top, "cg/memory/keel-test"));
	assert_int_equal(vmk_res_vm_dir(&f->res, UUID, VMK_RES_MEMORY, dir, sizeof(dir)), 0);
	assert_string_equal(dir + strlen(f->cg), "/memory/svc/keel/keel-test/vms/" UUID);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_string_equal(
	    get(f->top, "cg/memory/svc/keel/keel-test/vms/" UUID "/memory.limit_in_bytes"),
	    "1124073472");
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);
	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), 0);
	assert_false(exists(f->top, "cg/memory/svc/keel/keel-test"));
	assert_true(exists(f->top, "cg/memory/svc/keel"));
	vmk_res_close(&f->res);
	f->inited = false;

	/* No line for the memory hierarchy. */
	put(f->top, "proc/self/cgroup", "3:cpuacct:/\n2:cpu:/\n0::/\n");
	assert_int_equal(init(f, &cfg), KB_ENOTFOUND);
	assert_non_null(strstr(f->err.msg, "names no cgroup for memory"));
}

/* ---- cgroup v2 ---- */

static void test_v2_init_layout(void **state)
{
	struct fixture *f = *state;

	v2_tree(f);
	init_ok(f);
	assert_string_equal(vmk_res_cgroup_version(&f->res), "v2");
	assert_int_equal(f->res.ndirs, 1);
	assert_string_equal(get(f->top, "cg/cgroup.subtree_control"), "+cpu +memory");
	assert_string_equal(get(f->top, "cg/keel-test/cgroup.subtree_control"), "+cpu +memory");
	assert_string_equal(get(f->top, "cg/keel-test/vms/cgroup.subtree_control"), "+cpu +memory");
	/* memory.min of the parent levels: the reservable memory, 7526 MiB. */
	assert_string_equal(get(f->top, "cg/keel-test/memory.min"), "7891582976");
	assert_string_equal(get(f->top, "cg/keel-test/vms/memory.min"), "7891582976");
}

static void test_v2_create_attach_usage(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_settings plain = {0};
	uint64_t cpu_ns = 0, mem = 0;

	v2_tree(f);
	init_ok(f);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/cpu.weight"), "400");
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/cpu.max"), "38520 100000");
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/memory.max"), "1124073472");
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/memory.min"), "536870912");
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &plain, 512, 1, &f->err), 0);
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/cpu.weight"), "100");
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/cpu.max"), "max 100000");
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/memory.max"),
			    "578813952"); /* 512 + 32 + 8 MiB */
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/memory.min"), "0");

	assert_int_equal(vmk_res_vm_attach(&f->res, UUID, 31337, &f->err), 0);
	assert_string_equal(get(f->top, "cg/keel-test/vms/" UUID "/cgroup.procs"), "31337");

	put(f->top, "cg/keel-test/vms/" UUID "/cpu.stat",
	    "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n");
	put(f->top, "cg/keel-test/vms/" UUID "/memory.current", "4096\n");
	assert_int_equal(vmk_res_vm_usage(&f->res, UUID, &cpu_ns, &mem, &f->err), 0);
	assert_int_equal(cpu_ns, 1500000);
	assert_int_equal(mem, 4096);
	put(f->top, "cg/keel-test/vms/" UUID "/cpu.stat", "user_usec 1000\nsystem_usec 500\n");
	assert_int_equal(vmk_res_vm_usage(&f->res, UUID, &cpu_ns, &mem, &f->err), KB_EPROTO);
	assert_int_equal(vmk_res_vm_usage(&f->res, "other", &cpu_ns, &mem, &f->err), KB_ENOTFOUND);

	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);
	assert_false(exists(f->top, "cg/keel-test/vms/" UUID));
	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), 0);
	assert_false(exists(f->top, "cg/keel-test"));
	assert_true(exists(f->top, "cg/cgroup.controllers"));
}

static void test_v2_controllers(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_config cfg;

	put(f->top, "cg/cgroup.controllers", "cpuset cpu io pids\n");
	config(f, &cfg);
	assert_int_equal(init(f, &cfg), KB_ENOTSUP);
	assert_non_null(strstr(f->err.msg, "lacks the memory controller"));
	assert_false(exists(f->top, "cg/keel-test"));

	/* Controllers already enabled at the base are not written again (a delegated base
	 * with processes could not). */
	put(f->top, "cg/cgroup.controllers", "cpu memory pids\n");
	put(f->top, "cg/cgroup.subtree_control", "memory pids cpu\n");
	assert_int_equal(init(f, &cfg), 0);
	assert_string_equal(get(f->top, "cg/cgroup.subtree_control"), "memory pids cpu");
	assert_string_equal(get(f->top, "cg/keel-test/cgroup.subtree_control"), "+cpu +memory");
}

static void test_v2_delegated(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_config cfg;

	put(f->top, "cg/cgroup.controllers", "cpu memory\n");
	put(f->top, "cg/system.slice/vmkernel.service/cgroup.controllers", "cpu memory\n");
	put(f->top, "proc/self/cgroup", "0::/system.slice/vmkernel.service\n");
	config(f, &cfg);
	cfg.delegated = true;
	cfg.parent = "vms";
	assert_int_equal(init(f, &cfg), 0);
	assert_string_equal(get(f->top, "cg/system.slice/vmkernel.service/cgroup.subtree_control"),
			    "+cpu +memory");
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_string_equal(get(f->top, "cg/system.slice/vmkernel.service/vms/" UUID "/cpu.max"),
			    "38520 100000");
	assert_false(exists(f->top, "cg/vms"));
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);
	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), 0);
	assert_false(exists(f->top, "cg/system.slice/vmkernel.service/vms"));
	assert_true(exists(f->top, "cg/system.slice/vmkernel.service"));
}

/* ---- detection, NONE, configuration, out of memory ---- */

static void test_detection(void **state)
{
	struct fixture *f = *state;
	struct vmk_res_config cfg;

	config(f, &cfg);
	assert_int_equal(init(f, &cfg), KB_ENOTSUP);
	assert_non_null(strstr(f->err.msg, "no cgroup v2 or v1 (cpu, cpuacct, memory) hierarchy"));

	/* Forced v1 on a v2 tree; a v1 tree without memory. */
	v2_tree(f);
	cfg.mode = VMK_RES_CGROUP_V1;
	assert_int_equal(init(f, &cfg), KB_ENOTSUP);
	assert_non_null(strstr(f->err.msg, "cgroup v1: no cpu hierarchy under"));
	put(f->top, "cg/cpu/cpu.shares", "1024\n");
	put(f->top, "cg/cpuacct/cpuacct.usage", "0\n");
	assert_int_equal(init(f, &cfg), KB_ENOTSUP);
	assert_non_null(strstr(f->err.msg, "no memory hierarchy"));

	/* AUTO prefers the unified hierarchy when both are present. */
	put(f->top, "cg/memory/memory.limit_in_bytes", "1\n");
	cfg.mode = VMK_RES_CGROUP_AUTO;
	assert_int_equal(init(f, &cfg), 0);
	assert_string_equal(vmk_res_cgroup_version(&f->res), "v2");
}

static void test_mode_none(void **state)
{
	struct vmk_res_settings bad = {.cpu_limit_mhz = 10, .cpu_reservation_mhz = 20};
	struct fixture *f = *state;
	struct vmk_res_config cfg;
	uint64_t cpu_ns, mem;
	char dir[256];

	config(f, &cfg);
	cfg.mode = VMK_RES_CGROUP_NONE;
	assert_int_equal(init(f, &cfg), 0);
	assert_string_equal(vmk_res_cgroup_version(&f->res), "none");
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &bad, 2048, 2, &f->err), KB_ECONFIG);
	assert_int_equal(vmk_res_vm_attach(&f->res, UUID, 1, &f->err), 0);
	assert_int_equal(vmk_res_vm_usage(&f->res, UUID, &cpu_ns, &mem, &f->err), KB_ENOTSUP);
	assert_int_equal(vmk_res_vm_dir(&f->res, UUID, VMK_RES_CPU, dir, sizeof(dir)), KB_ENOTSUP);
	assert_int_equal(vmk_res_vm_remove(&f->res, UUID, &f->err), 0);
	assert_int_equal(vmk_res_remove_parent(&f->res, &f->err), 0);
	assert_int_equal(vmk_res_host_capacity(&f->res)->cpu_reservable_mhz, 4672);
}

static void test_config_errors(void **state)
{
	static const char *const parents[] = {"", "/abs", "../x", "a//b", "a/", "a/./b", "a b"};
	struct fixture *f = *state;
	struct vmk_res_config cfg;
	unsigned i;

	v1_tree(f);
	for (i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
		config(f, &cfg);
		cfg.parent = parents[i];
		assert_int_equal(init(f, &cfg), KB_ECONFIG);
	}
	config(f, &cfg);
	cfg.reserve.mem_percent = 101;
	assert_int_equal(init(f, &cfg), KB_ECONFIG);
	config(f, &cfg);
	cfg.cfs_period_us = 10;
	assert_int_equal(init(f, &cfg), KB_ECONFIG);
	assert_string_equal(f->err.msg, "CFS period 10 us out of range 1000..1000000");
	assert_false(exists(f->top, "cg/cpu/keel-test"));
}

static void oom_at_init(struct fixture *f)
{
	struct vmk_res_config cfg;
	int n, rc = -ENOMEM;

	config(f, &cfg);
	for (n = 0; rc == -ENOMEM && n < 100; n++) {
		kb_heap_fail_after(n, 1);
		rc = init(f, &cfg);
		kb_heap_fail_reset();
		if (rc != -ENOMEM)
			continue;
		assert_int_equal(f->res.ndirs, 0);
		assert_false(exists(f->top, "cg/keel-test"));
		assert_false(exists(f->top, "cg/cpu/keel-test"));
		assert_false(exists(f->top, "cg/cpuacct/keel-test"));
		assert_false(exists(f->top, "cg/memory/keel-test"));
	}
	assert_int_equal(rc, 0);
	assert_true(n > 2); /* some allocations were made to fail */
	assert_int_equal(vmk_res_vm_create(&f->res, UUID, &web, 2048, 2, &f->err), 0);
}

static void test_oom_v1(void **state)
{
	v1_tree(*state);
	oom_at_init(*state);
}

static void test_oom_v2(void **state)
{
	v2_tree(*state);
	oom_at_init(*state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_capacity_cpuinfo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity_mhz_sources, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity_cpu_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity_meminfo_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_init_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_create_writes_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_attach_usage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_comounted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_refusals_change_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_failed_create_rolls_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_failed_init_rolls_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v1_delegated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v2_init_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v2_create_attach_usage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v2_controllers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v2_delegated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_detection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mode_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom_v2, setup, teardown),
	};

	kb_log_init(&quiet, "test_res", KB_LOG_ERROR, 2);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
