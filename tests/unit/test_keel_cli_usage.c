/*
 * keel, the operator's CLI: help at every level, usage errors, transport failures and
 * error replies with their exit codes.
 *
 * Each test runs build/bin/keel as a child process with --socket pointing at a fake
 * vmkernel (tests/unit/keel_cli_helpers.c) and checks what reached the fake (the argument
 * -> request mapping), stdout (tables, one valid JSON object under --json), stderr and the
 * exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/keel_cli_helpers.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

/* ---- help and usage ------------------------------------------------------------------ */

static void test_help_at_every_level(void **state)
{
	static const char *const paths[][4] = {
	    {NULL},
	    {"vm"},
	    {"vm", "create"},
	    {"vm", "list"},
	    {"vm", "info"},
	    {"vm", "power-on"},
	    {"vm", "power-off"},
	    {"vm", "reset"},
	    {"vm", "suspend"},
	    {"vm", "resume"},
	    {"vm", "destroy"},
	    {"vm", "unregister"},
	    {"vm", "register"},
	    {"vm", "reconfigure"},
	    {"vm", "console"},
	    {"datastore"},
	    {"datastore", "list"},
	    {"datastore", "add"},
	    {"datastore", "remove"},
	    {"host"},
	    {"host", "info"},
	    {"host", "log"},
	    {"network"},
	    {"network", "vswitch"},
	    {"network", "vswitch", "list"},
	    {"network", "vswitch", "add"},
	    {"network", "vswitch", "remove"},
	    {"network", "uplink"},
	    {"network", "uplink", "add"},
	    {"network", "uplink", "remove"},
	    {"network", "portgroup"},
	    {"network", "portgroup", "list"},
	    {"network", "portgroup", "add"},
	    {"network", "portgroup", "remove"},
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *args[8];
		char usage[128] = "Usage: keel";
		int n = 0;

		for (int k = 0; k < 4 && paths[i][k]; k++) {
			args[n++] = paths[i][k];
			strcat(usage, " ");
			strcat(usage, paths[i][k]);
		}
		args[n++] = "--help";
		args[n] = NULL;
		assert_int_equal(kc_run_keel(args), 0);
		if (strncmp(kc_run.out, usage, strlen(usage)) != 0)
			fail_msg("'%s --help' printed:\n%s", usage + 7, kc_run.out);
		assert_string_equal(kc_run.err, "");
		assert_has(kc_run.out, "--json");
	}
	assert_int_equal(kc_fake.nreqs, 0);
}

static void test_help_forms(void **state)
{
	char first[sizeof(kc_run.out)];

	assert_int_equal(KEEL("--help"), 0);
	assert_has(kc_run.out, "Exit codes:");
	assert_has(kc_run.out, "3  cannot reach vmkernel");
	assert_has(kc_run.out, "KEEL_SOCKET");
	assert_int_equal(KEEL("vm", "create", "--help"), 0);
	assert_has(kc_run.out, "--disk SIZE_MIB[:ro]");
	assert_has(kc_run.out, "--cpu-shares low|normal|high|N");
	strcpy(first, kc_run.out);
	assert_int_equal(KEEL("help", "vm", "create"), 0);
	assert_string_equal(kc_run.out, first);
	assert_int_equal(KEEL("vm", "create", "-h"), 0);
	assert_string_equal(kc_run.out, first);
	/* --help wins over missing arguments */
	assert_int_equal(KEEL("vm", "info", "--help"), 0);
	assert_has(kc_run.out, "Usage: keel vm info VM");
	assert_int_equal(kc_fake.nreqs, 0);
}

static void test_usage_errors_exit_2(void **state)
{
	static const struct {
		const char *args[12];
		const char *err;
	} cases[] = {
	    {{NULL}, "'keel' needs a command"},
	    {{"vm", NULL}, "'keel vm' needs a command"},
	    {{"bogus", NULL}, "unknown command 'bogus'"},
	    {{"vm", "bogus", NULL}, "unknown command 'bogus' for 'keel vm'"},
	    {{"vm", "info", NULL}, "missing argument: VM"},
	    {{"vm", "info", "a", "b", NULL}, "unexpected argument 'b'"},
	    {{"vm", "list", "--bogus", NULL}, "unknown option '--bogus'"},
	    {{"vm", "create", "x", "--memory", NULL}, "option --memory needs a value"},
	    {{"vm", "create", "x", "--memory", "12Q", NULL}, "bad --memory '12Q'"},
	    {{"vm", "create", "x", "--memory", "-5", NULL}, "bad --memory '-5'"},
	    {{"vm", "create", "x", "--vcpus", "0", NULL}, "bad --vcpus '0'"},
	    {{"vm", "create", "x", "--vcpus", "2", "--vcpus", "3", NULL}, "given twice"},
	    {{"vm", "create", "x", "--kind", "windows", NULL}, "bad --kind 'windows'"},
	    {{"vm", "create", "x", "--kind", "linux", NULL}, "a linux guest needs --kernel"},
	    {{"vm", "create", "x", "--disk", "0", NULL}, "bad --disk '0'"},
	    {{"vm", "create", "x", "--disk", "10:rx", NULL}, "bad --disk '10:rx'"},
	    {{"vm", "create", "x", "--nic", "pg:52:54:00:zz:00:01", NULL}, "bad MAC address"},
	    {{"vm", "create", "x", "--nic", ":52:54:00:00:00:01", NULL}, "bad --nic"},
	    {{"vm", "create", "x", "--cpu-shares", "huge", NULL}, "bad --cpu-shares 'huge'"},
	    {{"vm", "create", "x", "--cpu-shares", "0", NULL}, "bad --cpu-shares '0'"},
	    {{"vm", "reconfigure", "x", NULL}, "nothing to change"},
	    {{"vm", "reconfigure", "x", "--datastore", "d", NULL}, "unknown option '--datastore'"},
	    {{"vm", "console", "x", "--follow-for", "soon", NULL}, "bad --follow-for 'soon'"},
	    {{"vm", "list", "--json=yes", NULL}, "option --json takes no value"},
	    {{"vm", "list", "--timeout", "x", NULL}, "bad --timeout 'x'"},
	    {{"datastore", "add", "ds", NULL}, "missing argument: NAME PATH"},
	    {{"host", "log", "--lines", "0", NULL}, "bad --lines '0'"},
	    {{"network", "portgroup", "add", "pg", NULL}, "needs --vswitch"},
	    {{"network", "portgroup", "add", "pg", "--vswitch", "vs", "--vlan", "4095", NULL},
	     "bad --vlan '4095'"},
	    {{"network", "vswitch", "add", "vs", "--mtu", "10", NULL}, "bad --mtu '10'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (kc_run_keel(cases[i].args) != 2)
			fail_msg("case %zu: exit %d, stderr:\n%s", i, kc_run.rc, kc_run.err);
		assert_has(kc_run.err, cases[i].err);
		assert_true(strncmp(kc_run.err, "keel: ", 6) == 0);
	}
	assert_int_equal(kc_fake.nreqs, 0);
	assert_int_equal(kc_fake.undecodable, 0);

	/* under --json, the mistake is also a JSON object */
	assert_int_equal(KEEL("--json", "vm", "info"), 2);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"ok\":false");
	assert_has(kc_run.out, "\"exit_code\":2");
}

/* ---- transport failures --------------------------------------------------------------- */

static void test_missing_socket_exit_3(void **state)
{
	char missing[600], stale[600], want[700];
	struct kc_run_opts o = {.no_socket = true};
	int fd;

	snprintf(missing, sizeof(missing), "%s/nothing-here.sock", th_tmpdir());
	assert_int_equal(KEEL("--socket", missing, "vm", "list"), 3);
	snprintf(want, sizeof(want), "keel: cannot reach vmkernel at %s: ", missing);
	assert_has(kc_run.err, want);
	assert_has(kc_run.err, "(is vmkernel running?)");
	assert_string_equal(kc_run.out, "");

	/* a socket file nobody listens on any more */
	snprintf(stale, sizeof(stale), "%s/stale.sock", th_tmpdir());
	fd = kb_unix_listen(stale, 1);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(KEEL("--socket", stale, "host", "info"), 3);
	assert_has(kc_run.err, "Connection refused (is vmkernel running?)");

	assert_int_equal(KEEL("vm", "list", "--json", "--socket", missing), 3);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"ok\":false");
	assert_has(kc_run.out, "\"exit_code\":3");
	assert_has(kc_run.out, "cannot reach vmkernel");

	/* $KEEL_SOCKET names the socket when --socket is absent */
	o.env_sock = missing;
	assert_int_equal(kc_run_keel_opts(&o, (const char *const[]){"vm", "list", NULL}), 3);
	assert_has(kc_run.err, missing);
	o.env_sock = kc_sock_path;
	assert_int_equal(kc_run_keel_opts(&o, (const char *const[]){"vm", "list", NULL}), 0);
	/* --socket wins over $KEEL_SOCKET */
	o.env_sock = missing;
	assert_int_equal(
	    kc_run_keel_opts(
		&o, (const char *const[]){"vm", "list", "--local", "--socket", kc_sock_path, NULL}),
	    0);
	assert_int_equal(kc_fake.nreqs, 2);
}

static void test_protocol_errors_exit_4(void **state)
{
	kc_fake_set_mode(FAKE_GARBAGE);
	assert_int_equal(KEEL("vm", "list"), 4);
	assert_has(kc_run.err, "keel: bad reply from vmkernel at ");
	assert_has(kc_run.err, "not a VmkReply");

	kc_fake_set_mode(FAKE_CLOSE);
	assert_int_equal(KEEL("host", "info", "--json"), 4);
	assert_has(kc_run.err, "closed the connection without a reply");
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"exit_code\":4");
}

static void test_no_answer_times_out_exit_3(void **state)
{
	kc_fake_set_mode(FAKE_HANG);
	assert_int_equal(KEEL("vm", "list", "--timeout", "0.3"), 3);
	assert_has(kc_run.err, "did not answer within");
	assert_true(kc_run.ms >= 300);
}

static void test_error_reply_exit_1(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;

	rp.code = KB_ENOTFOUND;
	rp.error = "no VM named 'ghost'";
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON, &rp);
	assert_int_equal(KEEL("vm", "power-on", "ghost"), 1);
	assert_string_equal(kc_run.err, "keel: no VM named 'ghost'\n");
	assert_string_equal(kc_run.out, "");

	assert_int_equal(KEEL("vm", "power-on", "ghost", "--json"), 1);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"ok\":false");
	assert_has(kc_run.out, "\"error\":\"no VM named 'ghost'\"");
	assert_has(kc_run.out, "\"exit_code\":1");
	char code[64];
	snprintf(code, sizeof(code), "\"code\":%d", KB_ENOTFOUND);
	assert_has(kc_run.out, code);

	/* no text: the code's own message */
	rp.error = "";
	rp.code = KB_ESTATE;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY, &rp);
	assert_int_equal(KEEL("vm", "destroy", "web01"), 1);
	char want[200];
	snprintf(want, sizeof(want), "keel: %s\n", kb_strerror(KB_ESTATE));
	assert_string_equal(kc_run.err, want);
}

#define T(f) cmocka_unit_test_setup(f, kc_test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_help_at_every_level),    T(test_help_forms),
	    T(test_usage_errors_exit_2),    T(test_missing_socket_exit_3),
	    T(test_protocol_errors_exit_4), T(test_no_answer_times_out_exit_3),
	    T(test_error_reply_exit_1),
	};

	return cmocka_run_group_tests(tests, kc_group_setup, kc_group_teardown);
}
