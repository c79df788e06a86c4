/*
 * keel — the operator's command-line tool for a Keel host.
 *
 * Commands are noun-verb (`keel vm create web01`, `keel network portgroup list`); every
 * level answers --help, every command takes --json. For now keel talks to the vmkernel
 * of this host over its control socket (--local, the default; the socket is --socket,
 * else $KEEL_SOCKET, else /var/lib/keel/vmkernel.sock). Commands marked .api talk to
 * hostd's API when a server is known (--server URL or $KEEL_SERVER, with the session
 * `keel login` cached: api.c): inventory, session, login, logout and task only; vm
 * create/list and the VM operations, cluster status/events/join-token either way. An
 * explicit --server on another command is a usage error.
 *
 * main() reads global options wherever they appear, walks the command tree by name,
 * prints help for a noun (on --help, `keel help ...`, or when its verb is missing — the
 * latter is a usage error) and runs the leaf. Exit codes are enum kc_exit.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

static const struct kc_cmd *const root_subs[] = {
    &kc_vm_cmd,
    &kc_datastore_cmd,
    &kc_host_cmd,
    &kc_network_cmd,
    &kc_cluster_cmd,
    &kc_inventory_cmd,
    &kc_session_cmd,
    &kc_task_cmd,
    &kc_login_cmd,
    &kc_logout_cmd,
    &kc_user_cmd,
    &kc_role_cmd,
    &kc_perm_cmd,
    &kc_event_cmd,
    &kc_cert_cmd,
    &kc_file_cmd,
    &kc_lab_cmd,
    NULL,
};

static const struct kc_cmd root_cmd = {
    .name = "keel",
    .summary = "Manage a Keel host: its VMs, datastores and virtual networking.",
    .detail = "Examples:\n"
	      "  keel vm create web01 --memory 512 --vcpus 2 --nic \"VM Network\"\n"
	      "  keel vm power-on web01\n"
	      "  keel vm list --json\n"
	      "  keel login --server https://198.18.0.1:8443 --user root\n"
	      "  keel --server https://198.18.0.1:8443 inventory\n"
	      "  keel --server https://198.18.0.1:8443 vm power-on web01\n"
	      "\n"
	      "Exit codes:\n"
	      "  0  the operation succeeded\n"
	      "  1  the operation failed (vmkernel or hostd answered with an error, printed on\n"
	      "     stderr; also: not logged in, or the session expired)\n"
	      "  2  usage error (unknown command or option, bad or missing argument)\n"
	      "  3  cannot reach vmkernel or hostd (socket missing or refused, no reply in\n"
	      "     time, or hostd's certificate not trusted)\n"
	      "  4  protocol error (the answer could not be understood)\n"
	      "\n"
	      "Through hostd's API (--server URL): keel login, then inventory, session, task,\n"
	      "user, role, perm, event, file, host config/maintenance, datastore, network\n"
	      "portgroup/vmknic, vm create/list/power-on/power-off/reset/suspend/resume/\n"
	      "register/unregister/destroy/console and cluster status/events/join-token/\n"
	      "create/join/leave/remove-host; see 'keel login --help'.\n"
	      "\n"
	      "Environment:\n"
	      "  KEEL_SOCKET  vmkernel's control socket when --socket is not given\n"
	      "  KEEL_SERVER  hostd's URL when --server is not given\n"
	      "  KEEL_CONFIG_DIR  where sessions are cached (default ~/.keel)\n"
	      "  KEEL_PASSWORD  the password for keel login when --password-file is not given\n"
	      "  KEEL_CLUSTER_SOCKET  clusterd's control socket (see 'keel cluster --help')\n",
    .subs = root_subs,
};

static const struct kc_cmd *find_sub(const struct kc_cmd *cmd, const char *name)
{
	for (const struct kc_cmd *const *s = cmd->subs; s && *s; s++)
		if (strcmp((*s)->name, name) == 0)
			return *s;
	return NULL;
}

static void path_append(char *path, size_t size, const char *name)
{
	size_t n = strlen(path);

	snprintf(path + n, size - n, " %s", name);
}

/* `keel help [NOUN [VERB ...]]`: the help of that node. */
static int help_cmd(struct kc_ctx *ctx, int argc, char **argv, char *path, size_t size)
{
	const struct kc_cmd *cmd = &root_cmd;

	for (int i = 0; i < argc; i++) {
		const struct kc_cmd *sub = find_sub(cmd, argv[i]);

		if (!sub) {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "no command '%s' under '%s'", argv[i],
				path);
			fprintf(stderr, "Run '%s --help' for usage.\n", path);
			return KC_EXIT_USAGE;
		}
		cmd = sub;
		path_append(path, size, argv[i]);
	}
	kc_help(cmd, path, stdout);
	return KC_EXIT_OK;
}

static int run(struct kc_ctx *ctx, int argc, char **argv)
{
	const struct kc_cmd *cmd = &root_cmd;
	char path[256] = "keel";
	struct kc_call call;
	bool help;
	int i, rc;

	for (i = 1; i < argc && cmd->subs; i++) {
		const char *arg = argv[i];
		const struct kc_cmd *sub;

		rc = kc_global_opt(ctx, argc, argv, &i);
		if (rc < 0)
			return KC_EXIT_USAGE;
		if (rc > 0)
			continue;
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			kc_help(cmd, path, stdout);
			return KC_EXIT_OK;
		}
		if (cmd == &root_cmd && strcmp(arg, "help") == 0)
			return help_cmd(ctx, argc - i - 1, argv + i + 1, path, sizeof(path));
		if (arg[0] == '-') {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "unknown option '%s'", arg);
			fprintf(stderr, "Run '%s --help' for usage.\n", path);
			return KC_EXIT_USAGE;
		}
		sub = find_sub(cmd, arg);
		if (!sub) {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "unknown command '%s' for '%s'", arg,
				path);
			fprintf(stderr, "Run '%s --help' for usage.\n", path);
			return KC_EXIT_USAGE;
		}
		cmd = sub;
		path_append(path, sizeof(path), arg);
	}
	if (cmd->subs) {
		kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "'%s' needs a command", path);
		fputc('\n', stderr);
		kc_help(cmd, path, stderr);
		return KC_EXIT_USAGE;
	}
	rc = kc_args_parse(ctx, cmd, path, argc - i, argv + i, &call, &help);
	if (rc != KC_EXIT_OK)
		return rc;
	if (help) {
		kc_help(cmd, path, stdout);
		return KC_EXIT_OK;
	}
	/* An explicit --server is refused where it would be ignored; $KEEL_SERVER only
	 * applies to the commands that can use it. */
	if (ctx->server && !ctx->server_env && !ctx->local && !cmd->api)
		return kc_usage(ctx, &call, "'%s' does not work through hostd's API (--server) yet",
				path);
	return cmd->run(ctx, &call);
}

int main(int argc, char **argv)
{
	const char *env = getenv("KEEL_SOCKET"), *server = getenv("KEEL_SERVER");
	struct kc_ctx ctx = {
	    .socket = env && env[0] ? env : KC_DEFAULT_SOCKET,
	    .timeout_ms = KC_DEFAULT_TIMEOUT * 1000ull,
	    .server = server && server[0] ? server : NULL,
	    .server_env = server && server[0],
	};
	int rc;

	/* A closed pipe or console socket is an error to report, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	rc = run(&ctx, argc, argv);
	if (ctx.tr)
		ctx.tr->destroy(ctx.tr);
	if (fflush(stdout) != 0 && rc == KC_EXIT_OK)
		rc = KC_EXIT_FAILED;
	return rc;
}
