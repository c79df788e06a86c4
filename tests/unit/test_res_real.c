/*
 * kernel/res against this machine's real cgroup filesystem (v1 or v2, as detected): a
 * test parent group keel-test-<pid>/vms under this process's own cgroups, one VM group
 * with shares, a CPU limit and memory settings read back from the kernel's files, a
 * forked child moved into it (cgroup.procs, tasks, /proc/<pid>/cgroup), its CPU time and
 * memory seen in the usage figures, the CPU limit seen throttling it, a busy group that
 * refuses removal, and everything removed at the end, also when a check fails. Skips,
 * saying why, only when cgroupfs is missing or not writable.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/res/res.h"

/* The child burns this much CPU time once it is in the group. */
#define CHILD_CPU_NS (150ull * 1000 * 1000)
#define CHILD_MEM    (16u << 20)

static struct kb_logger quiet;

struct real {
	struct vmk_res res;
	bool inited;
	char parent[64];
	char uuid[64];
	pid_t child;
	int go[2];   /* parent -> child: start working */
	int done[2]; /* child -> parent: finished */
	char skip_reason[512];
};

static struct real R = {.child = -1, .go = {-1, -1}, .done = {-1, -1}};

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The child: waits for the go byte, touches CHILD_MEM, burns CHILD_CPU_NS of CPU time,
 * reports, and sleeps until killed. Never returns into cmocka. */
static void child_main(void)
{
	volatile uint64_t spin = 0;
	volatile char *mem;
	uint64_t start;
	size_t i;
	char c;

	close(R.go[1]);
	close(R.done[0]);
	if (read(R.go[0], &c, 1) != 1)
		_exit(1);
	mem = malloc(CHILD_MEM);
	if (mem == NULL)
		_exit(1);
	/* Through a volatile pointer, so the stores cannot be optimised away. */
	for (i = 0; i < CHILD_MEM; i += 4096)
		mem[i] = 0x5a;
	start = now_ns(CLOCK_PROCESS_CPUTIME_ID);
	while (now_ns(CLOCK_PROCESS_CPUTIME_ID) - start < CHILD_CPU_NS)
		spin++;
	if (write(R.done[1], &c, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void close_pipes(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (R.go[i] >= 0)
			close(R.go[i]);
		if (R.done[i] >= 0)
			close(R.done[i]);
		R.go[i] = R.done[i] = -1;
	}
}

static void reap_child(void)
{
	if (R.child > 0) {
		kill(R.child, SIGKILL);
		waitpid(R.child, NULL, 0);
		R.child = -1;
	}
}

static int setup(void **state)
{
	struct vmk_res_config cfg;
	struct kb_errmsg err = {{0}};
	int rc;

	snprintf(R.parent, sizeof(R.parent), "keel-test-%d/vms", (int)getpid());
	snprintf(R.uuid, sizeof(R.uuid), "res-test-%d", (int)getpid());
	vmk_res_config_init(&cfg);
	cfg.parent = R.parent;
	/* Under this process's own groups, so the child stays inside whatever limits the
	 * test runs under. */
	cfg.delegated = true;
	cfg.rmdir_timeout_ms = 200;
	cfg.log = &quiet;
	rc = vmk_res_init(&R.res, &cfg, &err);
	if (rc < 0) {
		/* In v2 this process's own group may be a leaf holding processes, which
		 * cannot enable controllers for children: use the hierarchy's root. */
		cfg.delegated = false;
		rc = vmk_res_init(&R.res, &cfg, &err);
	}
	if (rc == -EACCES || rc == -EPERM || rc == -EROFS || rc == KB_ENOTSUP || rc == -ENOENT) {
		snprintf(R.skip_reason, sizeof(R.skip_reason),
			 "cgroupfs at /sys/fs/cgroup is not usable here: %s", err.msg);
		return 0;
	}
	if (rc < 0) {
		print_error("vmk_res_init: %s (%s)\n", err.msg, kb_strerror(rc));
		return -1;
	}
	R.inited = true;
	return 0;
}

static int teardown(void **state)
{
	struct kb_errmsg err = {{0}};

	reap_child();
	close_pipes();
	if (R.inited) {
		if (vmk_res_vm_remove(&R.res, R.uuid, &err) < 0)
			print_error("cleanup: %s\n", err.msg);
		if (vmk_res_remove_parent(&R.res, &err) < 0)
			print_error("cleanup: %s\n", err.msg);
		vmk_res_close(&R.res);
		R.inited = false;
	}
	return 0;
}

#define NEED_CGROUPFS()                                             \
	do {                                                        \
		if (!R.inited) {                                    \
			print_message("SKIP: %s\n", R.skip_reason); \
			skip();                                     \
		}                                                   \
	} while (0)

static bool is_v1(void)
{
	return strcmp(vmk_res_cgroup_version(&R.res), "v1") == 0;
}

/* Contents of dir/file without the trailing newline. */
static const char *read_in(const char *dir, const char *file)
{
	static char buf[8192];
	char path[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (f == NULL)
		return "<missing>";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return buf;
}

/* True when the newline-separated list in dir/file has the number pid. */
static bool lists_pid(const char *dir, const char *file, pid_t pid)
{
	const char *p = read_in(dir, file);
	char *end;

	while (*p != '\0') {
		if (strtol(p, &end, 10) == pid && (*end == '\n' || *end == '\0'))
			return true;
		p = *end == '\n' ? end + 1 : end + (*end != '\0');
	}
	return false;
}

static unsigned count(const char *text, const char *needle)
{
	unsigned n = 0;

	for (text = strstr(text, needle); text != NULL; text = strstr(text + 1, needle))
		n++;
	return n;
}

static uint64_t stat_field(const char *dir, const char *key)
{
	const char *text = read_in(dir, "cpu.stat"), *p;
	size_t len = strlen(key);

	for (p = text; p != NULL; p = strchr(p, '\n')) {
		p += *p == '\n';
		if (strncmp(p, key, len) == 0 && p[len] == ' ')
			return strtoull(p + len + 1, NULL, 10);
	}
	return UINT64_MAX;
}

static void test_real_layout(void **state)
{
	char dir[4096];
	struct stat st;
	int c;

	NEED_CGROUPFS();
	print_message("cgroup %s, %u CPUs x %u MHz (%s)\n", vmk_res_cgroup_version(&R.res),
		      R.res.cap.cpus, R.res.cap.cpu_mhz, R.res.cap.cpu_mhz_source);
	for (c = 0; c < VMK_RES_NCONTROLLERS; c++) {
		assert_int_equal(
		    vmk_res_vm_dir(&R.res, R.uuid, (enum vmk_res_controller)c, dir, sizeof(dir)),
		    0);
		assert_non_null(strstr(dir, R.parent));
		*strrchr(dir, '/') = '\0';
		assert_int_equal(stat(dir, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	assert_int_equal(vmk_res_remove_parent(&R.res, NULL), 0);
	assert_int_equal(stat(dir, &st), -1);
}

static void test_real_vm(void **state)
{
	struct vmk_res_settings s = {
	    .shares_level = VMK_RES_SHARES_HIGH,
	    .cpu_limit_mhz = 1000,
	    .mem_reservation_mib = 64,
	    .mem_limit_mib = 256,
	};
	char cpu[4096], acct[4096], mem[4096], proc[64], expect[64], needle[256], c = 'g';
	uint64_t quota, cpu_ns = 0, mem_bytes = 0, t0, wall;
	struct kb_errmsg err = {{0}};
	struct stat st;

	NEED_CGROUPFS();
	assert_int_equal(vmk_res_vm_create(&R.res, R.uuid, &s, 512, 2, &err), 0);
	assert_int_equal(vmk_res_vm_dir(&R.res, R.uuid, VMK_RES_CPU, cpu, sizeof(cpu)), 0);
	assert_int_equal(vmk_res_vm_dir(&R.res, R.uuid, VMK_RES_CPUACCT, acct, sizeof(acct)), 0);
	assert_int_equal(vmk_res_vm_dir(&R.res, R.uuid, VMK_RES_MEMORY, mem, sizeof(mem)), 0);

	/* The kernel's view of the settings: 1000 MHz of a cpu_mhz CPU per 100 ms. */
	quota = 1000ull * 100000 / R.res.cap.cpu_mhz;
	if (is_v1()) {
		assert_string_equal(read_in(cpu, "cpu.shares"), "4096");
		assert_string_equal(read_in(cpu, "cpu.cfs_period_us"), "100000");
		snprintf(expect, sizeof(expect), "%" PRIu64, quota);
		assert_string_equal(read_in(cpu, "cpu.cfs_quota_us"), expect);
		/* 256 MiB + 32 MiB + 256/64 MiB */
		assert_string_equal(read_in(mem, "memory.limit_in_bytes"), "306184192");
		assert_string_equal(read_in(mem, "memory.soft_limit_in_bytes"), "67108864");
	} else {
		assert_string_equal(read_in(cpu, "cpu.weight"), "400");
		snprintf(expect, sizeof(expect), "%" PRIu64 " 100000", quota);
		assert_string_equal(read_in(cpu, "cpu.max"), expect);
		assert_string_equal(read_in(mem, "memory.max"), "306184192");
		assert_string_equal(read_in(mem, "memory.min"), "67108864");
	}

	/* A child, moved in before it allocates, as a vmx is. */
	assert_int_equal(pipe(R.go), 0);
	assert_int_equal(pipe(R.done), 0);
	R.child = fork();
	assert_true(R.child >= 0);
	if (R.child == 0)
		child_main();
	close(R.go[0]);
	close(R.done[1]);
	R.go[0] = R.done[1] = -1;
	assert_int_equal(vmk_res_vm_attach(&R.res, R.uuid, R.child, &err), 0);
	assert_true(lists_pid(cpu, "cgroup.procs", R.child));
	assert_true(lists_pid(mem, "cgroup.procs", R.child));
	if (is_v1()) {
		assert_true(lists_pid(acct, "cgroup.procs", R.child));
		assert_true(lists_pid(cpu, "tasks", R.child));
		assert_true(lists_pid(mem, "tasks", R.child));
	}
	/* The kernel's own account: one line per hierarchy names the group. */
	snprintf(needle, sizeof(needle), "/%s/%s", R.parent, R.uuid);
	snprintf(proc, sizeof(proc), "/proc/%d", (int)R.child);
	assert_int_equal(count(read_in(proc, "cgroup"), needle), is_v1() ? 3 : 1);

	/* Work, then read the figures. Limited to ~38% of a CPU, 150 ms of CPU time spans at
	 * least two throttled periods: over 1.8x as long on the wall clock. */
	t0 = now_ns(CLOCK_MONOTONIC);
	assert_int_equal(write(R.go[1], &c, 1), 1);
	assert_int_equal(read(R.done[0], &c, 1), 1);
	wall = now_ns(CLOCK_MONOTONIC) - t0;
	assert_int_equal(vmk_res_vm_usage(&R.res, R.uuid, &cpu_ns, &mem_bytes, &err), 0);
	print_message("child: %" PRIu64 " ms CPU in %" PRIu64 " ms, %" PRIu64 " KiB, %" PRIu64
		      " throttled periods\n",
		      cpu_ns / 1000000, wall / 1000000, mem_bytes >> 10,
		      stat_field(cpu, "nr_throttled"));
	assert_true(cpu_ns >= CHILD_CPU_NS);
	assert_true(mem_bytes >= CHILD_MEM);
	assert_true(wall * 2 >= cpu_ns * 3);
	assert_true(stat_field(cpu, "nr_throttled") >= 1);
	assert_true(stat_field(cpu, "nr_throttled") != UINT64_MAX);

	/* Busy while the child lives: refused, nothing removed. */
	assert_int_equal(vmk_res_vm_remove(&R.res, R.uuid, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "still has processes"));
	assert_int_equal(stat(mem, &st), 0);
	assert_int_equal(vmk_res_remove_parent(&R.res, &err), -EBUSY);

	reap_child();
	assert_int_equal(vmk_res_vm_remove(&R.res, R.uuid, &err), 0);
	assert_int_equal(stat(cpu, &st), -1);
	assert_int_equal(stat(acct, &st), -1);
	assert_int_equal(stat(mem, &st), -1);
	assert_int_equal(vmk_res_vm_usage(&R.res, R.uuid, &cpu_ns, &mem_bytes, &err), KB_ENOTFOUND);
	assert_int_equal(vmk_res_remove_parent(&R.res, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_real_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_real_vm, setup, teardown),
	};

	kb_log_init(&quiet, "test_res_real", KB_LOG_ERROR, 2);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
