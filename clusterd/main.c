/*
 * clusterd — the cluster daemon of a Keel host: a libraft node on the host's management
 * adapter (vmk0) holding the replicated cluster state, and the local control socket
 * DIR/clusterd.sock that `keel cluster` uses.
 *
 * It runs inside the host's network namespace (started like vmkernel, with
 * `nsenter --net=...`), so vmk0's address is local. Start-up: logger, node id and data
 * directory (DIR/raft), control socket, then the node finds vmk0 and starts Raft when the
 * directory was bootstrapped before (otherwise it waits for `keel cluster create`).
 * SIGTERM/SIGINT close Raft cleanly; after SIGKILL the next start recovers from the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <dirent.h>

#include "clusterd/ca.h"
#include "clusterd/daemon.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: clusterd --state-dir DIR [options]\n"
		"The Keel cluster daemon: the replicated cluster state on Raft.\n"
		"\n"
		"  --state-dir DIR     the host's state directory (as vmkernel's); Raft data in\n"
		"                      DIR/raft, control socket DIR/clusterd.sock\n"
		"  --port PORT         Raft port on vmk0's address (default 7000)\n"
		"  --host-name NAME    this host's name in the cluster (default: hostname)\n"
		"  --log-level LEVEL   error, warn, info (default), debug, trace\n"
		"  -h, --help          this help\n");
}

static struct cd_daemon daemon_;
static uv_signal_t sigterm, sigint;

static void on_node_closed(struct cd_daemon *d)
{
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int sig)
{
	kb_log(daemon_.log, KB_LOG_INFO, "signal %d: clusterd stops", sig);
	uv_signal_stop(&sigterm);
	uv_signal_stop(&sigint);
	cd_ctl_stop(&daemon_);
	cd_node_close(&daemon_, on_node_closed);
}

static void close_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* The host name as a valid cluster name: other characters become '-'. */
static void default_name(char *out, size_t size)
{
	char h[256] = "host";

	if (gethostname(h, sizeof(h) - 1) < 0 || h[0] == '\0')
		snprintf(h, sizeof(h), "host");
	h[sizeof(h) - 1] = '\0';
	snprintf(out, size, "%s", h);
	for (char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			*p = '-';
}

/* After leaving: the Raft data and the membership files go, so the next start waits
 * for a create or join again. The node id stays. */
static void wipe_membership(const char *state)
{
	static const char *const files[] = {"clusterd.bootstrapped", CD_HOST_CERT_FILE, "host.key",
					    "ca.crt", "ca.key", CD_CLUSTER_KEY_FILE};
	char path[PATH_MAX + 64];
	struct dirent *de;
	DIR *dir;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%.4000s/%s", state, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%.4000s/raft", state);
	dir = opendir(path);
	while (dir && (de = readdir(dir))) {
		char f[PATH_MAX + 600];

		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%.4000s/raft/%s", state, de->d_name);
		unlink(f);
	}
	if (dir)
		closedir(dir);
	kb_info("membership files and Raft data removed from %s", state);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 's'},
	    {"port", required_argument, NULL, 'p'},
	    {"host-name", required_argument, NULL, 'n'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *state = NULL;
	int level = KB_LOG_INFO, c, rv;
	unsigned long port = CD_DEFAULT_PORT;
	struct kb_errmsg err = {{0}};
	uv_loop_t loop;
	char *end, lock[PATH_MAX];
	int fd;

	default_name(daemon_.hostname, sizeof(daemon_.hostname));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'p':
			errno = 0;
			port = strtoul(optarg, &end, 10);
			if (errno || *end || port == 0 || port > 65535) {
				fprintf(stderr, "clusterd: bad --port '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (strlen(optarg) == 0 || strlen(optarg) > CD_NAME_MAX) {
				fprintf(stderr, "clusterd: bad --host-name '%s'\n", optarg);
				return 2;
			}
			snprintf(daemon_.hostname, sizeof(daemon_.hostname), "%s", optarg);
			break;
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "clusterd: bad --log-level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !state) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	kb_log_init(&kb_log_default, "clusterd", level, STDERR_FILENO);
	/* One clusterd per state directory: the lock lives as long as the process. */
	snprintf(lock, sizeof(lock), "%.4000s/clusterd.lock", state);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		kb_error("%s: %s (another clusterd on this state directory?)", lock,
			 strerror(errno));
		return 1;
	}

	/* Blocking work (join exchanges, forwarded VM operations, datastore reads, the
	 * reconciler's vmkernel calls) runs on libuv's pool: more than its default 4, so an
	 * HA restart of many VMs (each power-on asks the leader) is not queued behind it. */
	setenv("UV_THREADPOOL_SIZE", "64", 0);
	uv_loop_init(&loop);
	rv = cd_node_init(&daemon_, &loop, &kb_log_default, state, (uint16_t)port, &err);
	if (rv == 0)
		rv = cd_ctl_start(&daemon_, &err);
	if (rv) {
		kb_error("%s", err.msg);
		return 1;
	}
	uv_signal_init(&loop, &sigterm);
	uv_signal_init(&loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	kb_info("clusterd ready: node %llu, state %s, socket %s", (unsigned long long)daemon_.id,
		state, daemon_.socket_path);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (daemon_.fatal)
		return 1;

	uv_walk(&loop, close_handle, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		kb_warn("event loop still busy at exit");
	cd_fsm_close(&daemon_.fsm);
	cd_proposer_free(&daemon_);
	cd_ca_destroy(daemon_.ca);
	if (daemon_.wipe_on_exit)
		wipe_membership(state);
	if (daemon_.reexec) {
		kb_info("clusterd restarts");
		close(fd); /* the lock: the new image takes it again */
		if (daemon_.ctl_handed_over) {
			/* set only now: no other thread runs (getenv elsewhere is not safe
			 * against a setenv) */
			char v[16];

			snprintf(v, sizeof(v), "%d", daemon_.ctl_fd);
			setenv(CD_CTL_FD_ENV, v, 1);
		}
		execv("/proc/self/exe", argv);
		kb_error("re-exec: %s", strerror(errno));
		return 1;
	}
	kb_info("clusterd stopped");
	return 0;
}
