/*
 * keel, the operator's CLI: `keel cluster rule ...` and `keel cluster drs ...` with --server
 * (or $KEEL_SERVER), up to the point where hostd would be asked.
 *
 * Each test runs build/bin/keel as a child process (tests/unit/keel_cli_helpers.c) with a
 * server on a loopback port nothing listens on and a config directory without a cached
 * session. A bad command line must be refused as a usage error (exit 2) before anything
 * is sent — so never with "not logged in", which is the first thing the API path says; a
 * good one must take the API path (exit 1, "not logged in to URL"), including with the
 * server from $KEEL_SERVER, which commands without an API path ignore; --local keeps the
 * local path. The lab test tests/integration/drs_api_cli.sh covers the calls themselves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/keel_cli_helpers.h"
#include "tests/unit/vmm_helpers.h"

#define SRV "https://127.0.0.1:9"

static int group_setup(void **state)
{
	char cfg[700];

	snprintf(cfg, sizeof(cfg), "%s/drs-api-config", th_tmpdir());
	if (mkdir(cfg, 0700) != 0 && errno != EEXIST)
		return -1;
	setenv("KEEL_CONFIG_DIR", cfg, 1);
	unsetenv("KEEL_SERVER");
	return kc_group_setup(state);
}

/* keel --server SRV ARGS...: usage error naming what, nothing sent */
static void usage(const char *what, const char *const *args)
{
	const char *argv[24] = {"--server", SRV};
	int n = 2;

	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (kc_run_keel(argv) != 2)
		fail_msg("%s %s: exit %d, not 2: %s", args[0], args[1], kc_run.rc, kc_run.err);
	assert_has(kc_run.err, what);
	assert_hasnt(kc_run.err, "not logged in");
}

#define USAGE(what, ...) usage(what, (const char *const[]){__VA_ARGS__, NULL})

static void test_usage_errors_before_the_api(void **state)
{
	(void)state;
	USAGE("--cluster-socket does not apply through hostd's API", "cluster", "rule", "list",
	      "--cluster-socket", "/nonexistent/clusterd.sock");
	USAGE("--cluster-socket does not apply through hostd's API", "cluster", "drs", "apply",
	      "--all", "--cluster-socket", "/nonexistent/clusterd.sock");
	USAGE("--threshold: 1 (conservative) .. 5", "cluster", "drs", "set", "--threshold", "9");
	USAGE("--threshold: 1 (conservative) .. 5", "cluster", "drs", "set", "--threshold", "0");
	USAGE("--automation sometimes: manual, partially or fully", "cluster", "drs", "set",
	      "--automation", "sometimes");
	USAGE("--interval: 10 s .. 1 h", "cluster", "drs", "set", "--interval", "5");
	USAGE("--max-moves: 1..4096", "cluster", "drs", "set", "--max-moves", "5000");
	USAGE("nothing to change", "cluster", "drs", "set");
	USAGE("--kind sideways: affinity", "cluster", "rule", "add", "r1", "--kind", "sideways",
	      "--vm", "a", "--vm", "b");
	USAGE("--kind is required", "cluster", "rule", "add", "r1", "--vm", "a", "--vm", "b");
	USAGE("a VM-VM rule needs at least two --vm", "cluster", "rule", "add", "r1", "--kind",
	      "anti-affinity", "--vm", "a");
	USAGE("a host rule needs at least one --vm and one --host", "cluster", "rule", "add", "r1",
	      "--kind", "host-affinity", "--vm", "a");
	USAGE("--must or --should, not both", "cluster", "rule", "add", "r1", "--kind", "affinity",
	      "--must", "--should", "--vm", "a", "--vm", "b");
	USAGE("give the VMs to move, or --all", "cluster", "drs", "apply");
	USAGE("give the VMs to move, or --all", "cluster", "drs", "apply", "--all", "vm1");
	USAGE("--parallel: 1..16", "cluster", "drs", "apply", "--all", "--parallel", "17");
	USAGE("--wait: 1..86400 seconds", "cluster", "drs", "apply", "--all", "--wait", "0");
}

static void test_every_command_takes_the_api_path(void **state)
{
	static const char *const cmds[][12] = {
	    {"cluster", "rule", "list"},
	    {"cluster", "rule", "add", "r1", "--kind", "anti-affinity", "--must", "--vm", "a",
	     "--vm", "b"},
	    {"cluster", "rule", "remove", "r1"},
	    {"cluster", "drs", "status"},
	    {"cluster", "drs", "recommend"},
	    {"cluster", "drs", "set", "--threshold", "4", "--hold", "0"},
	    {"cluster", "drs", "apply", "--all"},
	    {"cluster", "drs", "apply", "vm1", "--no-wait"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *argv[16] = {"--server", SRV};
		int n = 2;

		for (int k = 0; cmds[i][k]; k++)
			argv[n++] = cmds[i][k];
		argv[n] = NULL;
		if (kc_run_keel(argv) != 1)
			fail_msg("%s %s: exit %d, not 1: %s", cmds[i][1], cmds[i][2], kc_run.rc,
				 kc_run.err);
		assert_has(kc_run.err, "not logged in to " SRV);
		/* --json: the error object, on stdout */
		argv[n++] = "--json";
		argv[n] = NULL;
		assert_int_equal(kc_run_keel(argv), 1);
		kc_assert_one_json_object(kc_run.out);
		assert_has(kc_run.out, "\"ok\":false");
	}
}

static void test_server_from_the_environment_and_local(void **state)
{
	(void)state;
	/* $KEEL_SERVER is used by commands with an API path only */
	setenv("KEEL_SERVER", SRV, 1);
	assert_int_equal(KEEL("cluster", "drs", "status"), 1);
	assert_has(kc_run.err, "not logged in to " SRV);
	/* --local: clusterd's socket, which is not there */
	assert_int_equal(KEEL("--local", "cluster", "drs", "status", "--cluster-socket",
			      "/nonexistent/clusterd.sock"),
			 3);
	assert_hasnt(kc_run.err, "not logged in");
	assert_has(kc_run.err, "/nonexistent/clusterd.sock");
	unsetenv("KEEL_SERVER");
}

#define T(f) cmocka_unit_test_setup(f, kc_test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_usage_errors_before_the_api),
	    T(test_every_command_takes_the_api_path),
	    T(test_server_from_the_environment_and_local),
	};

	return cmocka_run_group_tests(tests, group_setup, kc_group_teardown);
}
