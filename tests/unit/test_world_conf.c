/*
 * Tests for user-world definitions (kernel/world/conf.c, filter.c's names): a full world
 * with {dir} and {bin} substituted, defaults, the built-in set (clusterd's list carries
 * the kernel AIO calls libraft probes), capability and system call names and groups, and
 * refusals with the line number and nothing kept; OOM while parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <cmocka.h>

#include "kernel/world/world.h"
#include "lib/heap.h"

static int parse(const char *text, struct vmk_world_defs *d, struct kb_errmsg *err)
{
	return vmk_world_defs_parse(text, strlen(text), "worlds.conf", "/var/lib/keel",
				    "/opt/keel/bin", d, err);
}

static void test_full(void **state)
{
	static const char text[] = "# a comment\n"
				   "\n"
				   "[vmsyslogd]\n"
				   "exec = {bin}/vmsyslogd --state-dir {dir}  --poll-ms 500\n"
				   "  cpu_limit_mhz = 250 \n"
				   "mem_limit_mib=64\n"
				   "caps = net_bind_service CAP_NET_RAW\n"
				   "syscalls = @basic read\n"
				   "syscalls = @net\n"
				   "seccomp = errno\n"
				   "private_tmp = yes\n"
				   "read_only = /usr {dir}/etc\n"
				   "stop_grace_ms = 1500\n"
				   "[b-2]\n"
				   "exec = /bin/true\n"
				   "seccomp = off\n";
	struct kb_errmsg err = {{0}};
	struct vmk_world_defs d;

	assert_int_equal(parse(text, &d, &err), 0);
	assert_int_equal(d.n, 2);
	const struct vmk_world_def *w = &d.w[0];
	assert_string_equal(w->name, "vmsyslogd");
	assert_int_equal(w->argc, 5);
	assert_string_equal(w->argv[0], "/opt/keel/bin/vmsyslogd");
	assert_string_equal(w->argv[2], "/var/lib/keel");
	assert_string_equal(w->argv[4], "500");
	assert_null(w->argv[5]);
	assert_int_equal(w->cpu_limit_mhz, 250);
	assert_int_equal(w->mem_limit_mib, 64);
	assert_true(w->caps == ((1ull << 10) | (1ull << 13)));
	assert_int_equal(w->seccomp, VMK_WORLD_SECCOMP_ERRNO);
	assert_true(vmk_world_syscall_allowed(w, SYS_read));
	assert_true(vmk_world_syscall_allowed(w, SYS_socket));
	assert_true(vmk_world_syscall_allowed(w, SYS_execve));
	assert_false(vmk_world_syscall_allowed(w, SYS_ptrace));
	assert_false(vmk_world_syscall_allowed(w, SYS_mount));
	assert_false(vmk_world_syscall_allowed(w, SYS_io_setup));
	for (int i = 1; i < w->nsyscalls; i++)
		assert_true(w->syscalls[i - 1] < w->syscalls[i]); /* sorted, unique */
	assert_true(w->private_tmp);
	assert_int_equal(w->nro, 2);
	assert_string_equal(w->read_only[1], "/var/lib/keel/etc");
	assert_int_equal(w->stop_grace_ms, 1500);
	w = &d.w[1];
	assert_string_equal(w->name, "b-2");
	assert_int_equal(w->seccomp, VMK_WORLD_SECCOMP_OFF);
	assert_int_equal(w->caps, 0);
	assert_int_equal(w->cpu_limit_mhz, 0);
	assert_int_equal(w->stop_grace_ms, 5000);
	assert_false(w->private_tmp);
	vmk_world_defs_free(&d);
	assert_int_equal(d.n, 0);
}

static void test_default_set(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_world_defs d;
	bool seen_clusterd = false;

	assert_int_equal(vmk_world_defs_load("default", "/s", "/b", &d, &err), 0);
	assert_true(d.n >= 4);
	for (int i = 0; i < d.n; i++) {
		const struct vmk_world_def *w = &d.w[i];
		assert_int_equal(w->seccomp, VMK_WORLD_SECCOMP_KILL);
		assert_true(w->nsyscalls > 100);
		assert_false(vmk_world_syscall_allowed(w, SYS_ptrace));
		assert_false(vmk_world_syscall_allowed(w, SYS_init_module));
		if (strcmp(w->name, "clusterd") == 0) {
			seen_clusterd = true;
			assert_string_equal(w->argv[0], "/b/clusterd");
			assert_true(vmk_world_syscall_allowed(w, SYS_io_setup));
			assert_true(vmk_world_syscall_allowed(w, SYS_io_submit));
			assert_true(vmk_world_syscall_allowed(w, SYS_io_getevents));
			assert_true(vmk_world_syscall_allowed(w, SYS_io_destroy));
		} else {
			assert_false(vmk_world_syscall_allowed(w, SYS_io_setup));
		}
	}
	assert_true(seen_clusterd);
	vmk_world_defs_free(&d);
}

static void test_names(void **state)
{
	assert_int_equal(vmk_world_cap_parse("sys_admin"), 21);
	assert_int_equal(vmk_world_cap_parse("CAP_SYS_ADMIN"), 21);
	assert_int_equal(vmk_world_cap_parse("chown"), 0);
	assert_int_equal(vmk_world_cap_parse("checkpoint_restore"), 40);
	assert_int_equal(vmk_world_cap_parse("sys_admins"), -22);
	assert_string_equal(vmk_world_cap_name(12), "net_admin");
	assert_null(vmk_world_cap_name(41));
	assert_true(vmk_world_name_valid("hostd"));
	assert_true(vmk_world_name_valid("keel-snmpd_2"));
	assert_false(vmk_world_name_valid(""));
	assert_false(vmk_world_name_valid("-x"));
	assert_false(vmk_world_name_valid("a/b"));
	assert_false(vmk_world_name_valid(".."));
	assert_false(vmk_world_name_valid("abcdefghijklmnopqrstuvwxyz0123456"));
}

/* bind (kept visible under a private /tmp), restart = always and the @ids group. */
static void test_bind_restart_ids(void **state)
{
	static const char text[] = "[w]\n"
				   "exec = /bin/w\n"
				   "syscalls = @basic @ids\n"
				   "private_tmp = yes\n"
				   "bind = {dir} /srv/shared\n"
				   "restart = always\n"
				   "[v]\n"
				   "exec = /bin/v\n"
				   "seccomp = off\n"
				   "restart = on-failure\n";
	struct kb_errmsg err = {{0}};
	struct vmk_world_defs d;

	assert_int_equal(parse(text, &d, &err), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.w[0].nbind, 2);
	assert_string_equal(d.w[0].bind[0], "/var/lib/keel");
	assert_string_equal(d.w[0].bind[1], "/srv/shared");
	assert_true(d.w[0].restart_always);
	assert_false(d.w[1].restart_always);
	assert_int_equal(d.w[1].nbind, 0);
	vmk_world_defs_free(&d);
}

static void test_bad(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"exec = /bin/true\n", "line 1: \"exec\" before the first [world]"},
	    {"[a b]\n", "line 1: bad world name"},
	    {"[a]\nexec=/bin/true\nseccomp=off\n[a]\n", "line 4: world a is defined twice"},
	    {"[a]\nexec = bin/true\nseccomp=off\n", "line 2: the program \"bin/true\" is not an "
						    "absolute path"},
	    {"[a]\nexec=/bin/true\nexec=/bin/false\n", "line 3: exec is given twice"},
	    {"[a]\nexec=/x\ncaps = sys_everything\n", "line 3: unknown capability"},
	    {"[a]\nexec=/x\nsyscalls = @basic frobnicate\n", "line 3: unknown system call "
							     "\"frobnicate\""},
	    {"[a]\nexec=/x\nsyscalls = @all\n", "line 3: unknown system call group"},
	    {"[a]\nexec=/x\nseccomp = maybe\n", "line 3: seccomp is kill, errno or off"},
	    {"[a]\nexec=/x\nmem_limit_mib = 4\n", "line 3: bad mem_limit_mib"},
	    {"[a]\nexec=/x\ncpu_limit_mhz = -1\n", "line 3: bad cpu_limit_mhz"},
	    {"[a]\nexec=/x\ncpu_limit_mhz = 12abc\n", "line 3: bad cpu_limit_mhz"},
	    {"[a]\nexec=/x\nprivate_tmp = sometimes\n", "line 3: want yes or no"},
	    {"[a]\nexec=/x\nread_only = usr\n", "line 3: read-only path \"usr\" is not absolute"},
	    {"[a]\nexec=/x\ncolour = blue\n", "line 3: unknown setting \"colour\""},
	    {"[a]\nexec=/x\njust words\n", "line 3: want key = value"},
	    {"[a]\nexec=/x\nrestart = sometimes\n", "line 3: restart is on-failure or always"},
	    {"[a]\nexec=/x\nbind = tmp/x\n", "line 3: bound path \"tmp/x\" is not absolute"},
	    {"[a]\nexec=/x\nseccomp=off\nbind = /srv\n", "bind needs private_tmp = yes"},
	    {"[a]\nseccomp = off\n", "world a has no exec"},
	    {"[a]\nexec = /x\n", "world a has no syscalls"},
	};
	struct vmk_world_defs d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kb_errmsg err = {{0}};
		assert_int_equal(parse(bad[i].text, &d, &err), KB_ECONFIG);
		if (strstr(err.msg, bad[i].why) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].why);
		assert_int_equal(d.n, 0);
	}
}

static void test_limits(void **state)
{
	char text[8192];
	struct kb_errmsg err = {{0}};
	struct vmk_world_defs d;
	size_t o = 0;

	/* 17 worlds: one too many */
	for (int i = 0; i < 17; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "[w%d]\nexec=/x\nseccomp=off\n",
				      i);
	assert_int_equal(parse(text, &d, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 49: too many worlds"));
	/* a NUL inside a line is not text */
	assert_int_equal(vmk_world_defs_parse("[a]\nexec=/x\0y\n", 14, "f", "/", "/", &d, &err),
			 KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 2: line too long or not text"));
	/* an unreadable file */
	assert_int_equal(vmk_world_defs_load("/nonexistent/worlds.conf", "/", "/", &d, &err), -2);
	assert_non_null(strstr(err.msg, "/nonexistent/worlds.conf"));
}

static void test_oom(void **state)
{
	static const char text[] = "[a]\nexec = /x {dir} {bin}\nseccomp=off\nread_only=/usr\n";
	struct vmk_world_defs d;
	int ok = 0;

	for (int n = 0; n < 8; n++) {
		struct kb_errmsg err = {{0}};
		kb_heap_fail_after(n, 1);
		int rv = parse(text, &d, &err);
		kb_heap_fail_reset();
		if (rv == 0) {
			ok++;
			assert_int_equal(d.n, 1);
			vmk_world_defs_free(&d);
		} else {
			assert_int_equal(rv, -12);
			assert_int_equal(d.n, 0);
		}
	}
	assert_true(ok > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full),   cmocka_unit_test(test_default_set),
	    cmocka_unit_test(test_names),  cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_limits), cmocka_unit_test(test_oom),
	    cmocka_unit_test(test_bind_restart_ids),
	};

	return cmocka_run_group_tests_name("world_conf", tests, NULL, NULL);
}
