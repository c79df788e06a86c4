/*
 * vmkernel — the host's kernel service layer: owns the host's datastores, VMs, resources
 * and VM networking, supervises one vmx per powered-on VM, and serves the local control
 * socket that `keel` and the host's daemons use.
 *
 * Start-up: state dir and lock (one vmkernel per state dir), log, datastores, resources,
 * networking (re-applied from its saved configuration), the VM inventory, re-adoption of
 * VMs whose vmx still runs, then the control socket. SIGTERM/SIGINT stop vmkernel and
 * leave the VMs running: the next vmkernel re-adopts them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/core/core.h"
#include "kernel/core/server.h"
#include "kernel/vm/monitor.h"
#include "kernel/vm/vm.h"
#include "kernel/world/world.h"
#include "lib/log.h"
#include "lib/time.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmkernel [options]\n"
		"The Keel host's kernel service layer: datastores, VMs, resources, VM networking.\n"
		"\n"
		"  --state-dir DIR     host state (default /var/lib/keel); the control socket is\n"
		"                      DIR/vmkernel.sock, the log DIR/vmkernel.log\n"
		"  --vmx PATH          the vmx binary (default: beside vmkernel)\n"
		"  --kguest PATH       the default kguest image (default: ../guest/kguest.elf)\n"
		"  --log-level LEVEL   error, warn, info (default), debug, trace\n"
		"  --log-stderr        log to stderr as well as the log file\n"
		"  --worlds FILE|default\n"
		"                      start and supervise the host's service daemons as user\n"
		"                      worlds, defined in FILE or the built-in set\n"
		"                      (docs/worlds.md); default: none\n"
		"  -h, --help          this help\n");
}

static struct vmk_host host;

static void on_signal(uv_signal_t *s, int sig)
{
	kb_log(host.log, KB_LOG_INFO, "signal %d: vmkernel stops; running VMs keep running", sig);
	uv_stop(s->loop);
}

static void close_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_wake(uv_async_t *a)
{
	vmk__supervise_run_queue(a->data);
}

static int default_paths(const char *argv0)
{
	char self[PATH_MAX], dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		snprintf(self, sizeof(self), "%s", argv0);
	else
		self[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", self);
	char *d = dirname(dir);
	if (host.vmx_bin[0] == '\0')
		snprintf(host.vmx_bin, sizeof(host.vmx_bin), "%s/vmx", d);
	if (host.kguest[0] == '\0')
		snprintf(host.kguest, sizeof(host.kguest), "%s/../guest/kguest.elf", d);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 's'},
	    {"vmx", required_argument, NULL, 'x'},
	    {"kguest", required_argument, NULL, 'k'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"log-stderr", no_argument, NULL, 'e'},
	    {"worlds", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *state = "/var/lib/keel";
	const char *worlds_file = NULL;
	struct vmk_worlds *worlds = NULL;
	struct vmk_world_defs *wdefs = NULL;
	int level = KB_LOG_INFO, c, rv;
	bool to_stderr = false;
	struct kb_errmsg err = {{0}};
	struct vmk_monitor *monitor = NULL;
	uv_loop_t loop;
	uv_signal_t sigterm, sigint;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'x':
			snprintf(host.vmx_bin, sizeof(host.vmx_bin), "%s", optarg);
			break;
		case 'k':
			snprintf(host.kguest, sizeof(host.kguest), "%s", optarg);
			break;
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "vmkernel: bad --log-level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'e':
			to_stderr = true;
			break;
		case 'w':
			worlds_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	default_paths(argv[0]);

	if (worlds_file != NULL) {
		/* checked before anything starts: a bad definition stops vmkernel here */
		char bin[PATH_MAX], dir[PATH_MAX], cwd[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", bin, sizeof(bin) - 1);
		bin[n > 0 ? n : 0] = '\0';
		if (state[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
			snprintf(dir, sizeof(dir), "%s", state);
		else
			snprintf(dir, sizeof(dir), "%s/%s", cwd, state);
		wdefs = calloc(1, sizeof(*wdefs));
		rv = wdefs ? vmk_world_defs_load(worlds_file, dir, dirname(bin), wdefs, &err)
			   : -ENOMEM;
		if (rv < 0) {
			fprintf(stderr, "vmkernel: --worlds: %s\n", wdefs ? err.msg : "no memory");
			return 2;
		}
	}
	rv = vmk_core_init(&host, state, level, to_stderr, &err);
	if (rv < 0) {
		fprintf(stderr, "vmkernel: %s\n", err.msg);
		return 1;
	}
	/* Requests run on libuv's pool; a power-on blocks its thread while the vmx starts
	 * (and the cluster is asked), and an HA restart powers on dozens at once. */
	setenv("UV_THREADPOOL_SIZE", "64", 0);
	uv_loop_init(&loop);
	host.loop = &loop;
	uv_async_init(&loop, &host.wake, on_wake);
	host.wake.data = &host;
	uv_signal_init(&loop, &sigterm);
	uv_signal_init(&loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);

	vmk_vm_adopt_all(&host);
	rv = vmk_server_start(&host, &err);
	if (rv < 0) {
		kb_log(host.log, KB_LOG_ERROR, "%s", err.msg);
		fprintf(stderr, "vmkernel: %s\n", err.msg);
		return 1;
	}
	kb_log(host.log, KB_LOG_INFO, "vmkernel ready: state %s, socket %s", host.state_dir,
	       host.socket_path);
	vmk__supervise_run_queue(&host);
	if (vmk_monitor_start(&host, &monitor, &err) < 0)
		kb_log(host.log, KB_LOG_ERROR, "%s: VMs are not monitored", err.msg);
	if (wdefs != NULL) {
		struct vmk_worlds_config wc = {.state_dir = host.state_dir,
					       .host_id = host.host_id,
					       .log = host.log,
					       .backoff = VMK_WORLD_BACKOFF_DEFAULT};
		if (vmk_worlds_start(&wc, wdefs, &worlds, &err) < 0) {
			kb_log(host.log, KB_LOG_ERROR, "%s: no user worlds", err.msg);
			vmk_world_defs_free(wdefs);
		}
		vmk_worlds_set_current(worlds);
		free(wdefs);
	}
	uv_run(&loop, UV_RUN_DEFAULT);

	vmk_monitor_stop(monitor);
	vmk_server_stop(&host);
	vmk_worlds_set_current(NULL);
	vmk_worlds_stop(worlds);
	vmk__supervise_stop_all(&host);
	uv_walk(&loop, close_handle, NULL);
	uv_run(&loop, UV_RUN_DEFAULT); /* let the closes finish */
	if (uv_loop_close(&loop) != 0)
		kb_log(host.log, KB_LOG_WARN, "event loop still busy at exit");
	vmk_core_close(&host);
	return 0;
}
