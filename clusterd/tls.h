/*
 * Blocking TLS 1.3 connections of clusterd's join port (docs/clusterd.md, "Joining"):
 * contexts built from the host's files, connects with a deadline, and frames
 * (lib/frame.h's format: a 4-byte big-endian length, then the payload) over TLS.
 *
 * Every function blocks: they run on the join thread (server side) or on a libuv worker
 * (client side), never on the loop thread. Sockets carry send and receive timeouts so a
 * silent peer cannot hold a thread: CD_TLS_IO_TIMEOUT_MS per read or write.
 */
#ifndef CD_TLS_H
#define CD_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/err.h"

#define CD_TLS_IO_TIMEOUT_MS 5000
#define CD_TLS_FRAME_MAX     (256u << 10)

/* The server context: certificate DIR/host.crt with key DIR/host.key, clients verified
 * against DIR/ca.crt when they present a certificate (members), allowed without one
 * (joining hosts). NULL with e set on failure. */
SSL_CTX *cd_tls_server_ctx(const char *state_dir, struct kb_errmsg *e);

/* A client context. ca_pem NULL: the server is not verified during the handshake (a
 * joining host pins the CA afterwards); otherwise only that CA is trusted. state_dir not
 * NULL: present DIR/host.crt and DIR/host.key (member requests). */
SSL_CTX *cd_tls_client_ctx(const char *ca_pem, const char *state_dir, struct kb_errmsg *e);

/* Connects to "A.B.C.D:port" within timeout_ms and completes the TLS handshake. The
 * socket has CD_TLS_IO_TIMEOUT_MS I/O timeouts. Returns the SSL (free with
 * cd_tls_close()) or NULL with e set. */
SSL *cd_tls_connect(SSL_CTX *ctx, const char *addr, unsigned timeout_ms, struct kb_errmsg *e);

/* Closes the connection (shutdown, socket, SSL object). NULL is allowed. */
void cd_tls_close(SSL *ssl);

/* One frame each way. recv: 0, -EPIPE (closed between frames), KB_ETRUNCATED,
 * KB_ETOOBIG (over max), or -EIO with e set. send: 0 or -EIO. */
int cd_tls_send(SSL *ssl, const void *p, size_t len, struct kb_errmsg *e);
int cd_tls_recv(SSL *ssl, struct kb_buf *out, size_t max, struct kb_errmsg *e);

/* The peer's certificate as PEM text (kb_malloc'ed, NUL-terminated; caller kb_free()s),
 * or NULL when the peer sent none. */
char *cd_tls_peer_cert_pem(SSL *ssl);

/* Reads a whole small file into a NUL-terminated kb_malloc'ed string; NULL with e set. */
char *cd_read_text(const char *path, size_t max, struct kb_errmsg *e);

#endif
