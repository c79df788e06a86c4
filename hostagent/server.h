/*
 * hostd's API server: TLS listeners on a libuv loop, one HTTP/2 session per connection,
 * gRPC calls dispatched to a method table (grpc.h). docs/hostd.md describes the design.
 *
 * Lifecycle: hd_server_create() loads the certificate (making the self-signed one when the
 * host is not in a cluster) and the TLS context; hd_server_listen() opens a listener (any
 * number of times); hd_server_close() stops listening, cancels every call, sends GOAWAY,
 * closes every connection and then frees the server. All on the loop thread.
 */
#ifndef HD_SERVER_H
#define HD_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "hostagent/grpc.h"
#include "lib/err.h"
#include "lib/log.h"

/* Limits (docs/hostd.md, "Limits"). */
#define HD_MAX_STREAMS		128		/* SETTINGS_MAX_CONCURRENT_STREAMS */
#define HD_HEADER_LIST_MAX	(16u << 10)	/* SETTINGS_MAX_HEADER_LIST_SIZE, enforced */
#define HD_MAX_CONNS		1024		/* connections in all */
#define HD_MAX_CONNS_PER_IP	32		/* connections from one source address */
#define HD_CONN_BUFFER_MAX	(16u << 20)	/* request bytes buffered per connection */
#define HD_IDLE_TIMEOUT_MS	(5 * 60 * 1000) /* no call and no byte for this long: GOAWAY */
#define HD_HANDSHAKE_TIMEOUT_MS 10000		/* TLS handshake must end within this */
#define HD_RESET_WINDOW_MS	10000		/* RST_STREAM counted over this window ... */
#define HD_RESET_MAX		500		/* ... past this many: GOAWAY and close */
#define HD_MAX_LISTENERS	8
#define HD_DEFAULT_PORT		8443

struct hd_server;

struct hd_server_config {
	const char *state_dir;		 /* certificate files (tls.h); borrowed until close */
	struct kb_logger *log;		 /* borrowed until close; NULL: kb_log_default */
	void *data;			 /* for handlers: hd_call_server_data() */
	const struct hd_method *methods; /* the table, borrowed until close */
	size_t nmethods;
	unsigned max_conns;
	unsigned max_conns_per_ip;
	unsigned idle_timeout_ms;
	unsigned handshake_timeout_ms;
	unsigned reset_max; /* RST_STREAMs per HD_RESET_WINDOW_MS tolerated */
};

/* Fills cfg with the defaults above, the keel.vim.Vim method table and the default log. */
void hd_server_config_defaults(struct hd_server_config *cfg);

/* Creates the server (no listener yet). The config is copied. 0, or a negative code with
 * e set: certificate or key unusable, -ENOMEM. */
int hd_server_create(uv_loop_t *loop, const struct hd_server_config *cfg, struct hd_server **out,
		     struct kb_errmsg *e);

/* The SHA-256 thumbprint of the certificate in use ("AB:CD:..."). */
const char *hd_server_thumbprint(const struct hd_server *s);

/* Listens on "A.B.C.D:PORT" or "[v6]:PORT". 0, or -EINVAL (bad address), -EADDRINUSE and
 * other -errno, KB_ETOOBIG (more than HD_MAX_LISTENERS), with e set. */
int hd_server_listen(struct hd_server *s, const char *addr, struct kb_errmsg *e);

/* Called once everything is closed, just before the server is freed. */
typedef void (*hd_server_closed_cb)(struct hd_server *s, void *arg);

/* Stops the server: listeners close, calls are cancelled (their cancel callbacks run),
 * connections get GOAWAY and close. s is freed after cb returns; it must not be used once
 * this is called. */
void hd_server_close(struct hd_server *s, hd_server_closed_cb cb, void *arg);

#endif
