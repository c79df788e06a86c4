/*
 * hostd — the API daemon of a Keel host: keel.vim.Vim as gRPC over HTTP/2 over TLS
 * (docs/hostd.md).
 *
 * Start-up: logger, certificate (the cluster's DIR/host.crt, or the self-signed
 * DIR/hostd.crt made once), its SHA-256 thumbprint logged and printed, listeners, then the
 * loop. SIGTERM/SIGINT stop it cleanly: listeners close, calls are cancelled, connections
 * get GOAWAY. `hostd --thumbprint` prints the thumbprint and exits.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostagent/server.h"
#include "hostagent/vim.h"
#include "hostagent/tls.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hostd --state-dir DIR [options]\n"
		"The Keel host API daemon: keel.vim.Vim over gRPC (HTTP/2, TLS).\n"
		"\n"
		"  --state-dir DIR     the host's state directory: certificate DIR/host.crt when\n"
		"                      in a cluster, else the self-signed DIR/hostd.crt\n"
		"  --listen ADDR:PORT  listen address, repeatable (default 0.0.0.0:%d)\n"
		"  --thumbprint        print the certificate's SHA-256 thumbprint and exit\n"
		"  --root-password-file FILE\n"
		"                      root's password for a new user database (DIR/auth.db);\n"
		"                      without it a random one is written to DIR/root-password\n"
		"  --session-idle-timeout SECONDS\n"
		"                      end sessions idle that long (1..604800; default 1800)\n"
		"  --log-level LEVEL   error, warn, info (default), debug, trace\n"
		"  -h, --help          this help\n",
		HD_DEFAULT_PORT);
}

static uv_signal_t sigterm, sigint;
static struct hd_server *server;
static struct hd_vim vim;

static void on_server_closed(struct hd_server *s, void *arg)
{
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	hd_vim_close(&vim);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	kb_info("signal %d: hostd stops", signum);
	uv_signal_stop(&sigterm);
	uv_signal_stop(&sigint);
	hd_server_close(server, on_server_closed, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'L'},
	    {"root-password-file", required_argument, NULL, 'R'},
	    {"thumbprint", no_argument, NULL, 't'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"session-idle-timeout", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *listen[HD_MAX_LISTENERS];
	unsigned nlisten = 0;
	struct hd_server_config cfg;
	struct kb_errmsg err = {{0}};
	char defaddr[32];
	int level = KB_LOG_INFO, c, rv;
	bool thumb = false;
	const char *rootpw = NULL;
	unsigned long idle_s = 0;
	char *end;
	uv_loop_t loop;

	hd_server_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			cfg.state_dir = optarg;
			break;
		case 'L':
			if (nlisten == HD_MAX_LISTENERS) {
				fprintf(stderr, "hostd: at most %d --listen\n", HD_MAX_LISTENERS);
				return 2;
			}
			listen[nlisten++] = optarg;
			break;
		case 't':
			thumb = true;
			break;
		case 'R':
			rootpw = optarg;
			break;
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "hostd: bad --log-level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'i':
			errno = 0;
			idle_s = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || idle_s < 1 ||
			    idle_s > 604800) {
				fprintf(stderr,
					"hostd: bad --session-idle-timeout '%s': seconds, 1..604800\n",
					optarg);
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
	if (!cfg.state_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	kb_log_init(&kb_log_default, "hostd", level, 2);
	if (thumb) {
		struct hd_tls_identity id;

		if (hd_tls_identity_load(cfg.state_dir, &id, &err) < 0) {
			fprintf(stderr, "hostd: %s\n", err.msg);
			return 1;
		}
		printf("%s\n", id.thumbprint);
		return 0;
	}
	if (nlisten == 0) {
		snprintf(defaddr, sizeof(defaddr), "0.0.0.0:%d", HD_DEFAULT_PORT);
		listen[nlisten++] = defaddr;
	}
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	rv = hd_vim_init(&vim, &loop, &kb_log_default, cfg.state_dir, rootpw, &err);
	if (rv < 0) {
		kb_error("cannot start: %s", err.msg);
		return 1;
	}
	if (idle_s && hd_vim_session_idle_set(&vim, (unsigned)idle_s) < 0) {
		kb_error("cannot start: out of memory");
		return 1;
	}
	if (idle_s)
		kb_info("sessions expire after %lu s idle", idle_s);
	cfg.data = &vim;
	rv = hd_server_create(&loop, &cfg, &server, &err);
	if (rv < 0) {
		kb_error("cannot start: %s", err.msg);
		return 1;
	}
	printf("thumbprint %s\n", hd_server_thumbprint(server));
	fflush(stdout);
	for (unsigned i = 0; i < nlisten; i++) {
		rv = hd_server_listen(server, listen[i], &err);
		if (rv < 0) {
			kb_error("cannot start: %s", err.msg);
			return 1;
		}
	}
	uv_signal_init(&loop, &sigterm);
	uv_signal_init(&loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	kb_info("hostd ready");
	uv_run(&loop, UV_RUN_DEFAULT);
	rv = uv_loop_close(&loop);
	if (rv < 0)
		kb_warn("loop closed with handles open: %s", uv_strerror(rv));
	kb_info("hostd stopped");
	return 0;
}
