/*
 * Blocking TLS 1.3 for clusterd's join port: see clusterd/tls.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "clusterd/tls.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/time.h"

/* The first OpenSSL error of this thread's queue, or fallback; clears the queue. */
static const char *ssl_reason(const char *fallback, char *buf, size_t size)
{
	unsigned long err = ERR_get_error();

	ERR_clear_error();
	if (!err)
		return fallback;
	ERR_error_string_n(err, buf, size);
	return buf;
}

static SSL_CTX *ctx_new(const SSL_METHOD *m, struct kb_errmsg *e)
{
	SSL_CTX *ctx = SSL_CTX_new(m);

	if (!ctx) {
		kb_errmsg_setf(e, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

static int use_host_identity(SSL_CTX *ctx, const char *dir, struct kb_errmsg *e)
{
	char crt[4200], key[4200], why[256];

	snprintf(crt, sizeof(crt), "%.4000s/host.crt", dir);
	snprintf(key, sizeof(key), "%.4000s/host.key", dir);
	if (SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		kb_errmsg_setf(e, "host certificate %s: %s", crt,
			       ssl_reason("cannot load", why, sizeof(why)));
		return KB_ECONFIG;
	}
	return 0;
}

static int trust_pem(SSL_CTX *ctx, const char *ca_pem, struct kb_errmsg *e)
{
	BIO *bio = BIO_new_mem_buf(ca_pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int rv = 0;

	if (!x || X509_STORE_add_cert(store, x) != 1) {
		kb_errmsg_setf(e, "the cluster CA certificate does not load");
		rv = KB_EPROTO;
	}
	X509_free(x);
	BIO_free(bio);
	return rv;
}

SSL_CTX *cd_tls_server_ctx(const char *state_dir, struct kb_errmsg *e)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), e);
	char path[4200], *ca;

	if (!ctx)
		return NULL;
	if (use_host_identity(ctx, state_dir, e))
		goto fail;
	snprintf(path, sizeof(path), "%.4000s/ca.crt", state_dir);
	ca = cd_read_text(path, 16384, e);
	if (!ca)
		goto fail;
	if (trust_pem(ctx, ca, e)) {
		kb_free(ca);
		goto fail;
	}
	kb_free(ca);
	/* Members present their certificate; a joining host has none yet. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *cd_tls_client_ctx(const char *ca_pem, const char *state_dir, struct kb_errmsg *e)
{
	SSL_CTX *ctx = ctx_new(TLS_client_method(), e);

	if (!ctx)
		return NULL;
	if (state_dir && use_host_identity(ctx, state_dir, e))
		goto fail;
	if (ca_pem) {
		if (trust_pem(ctx, ca_pem, e))
			goto fail;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
	char ip[32];
	unsigned port;
	const char *colon = strrchr(addr, ':');

	if (!colon || (size_t)(colon - addr) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	if (sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

static void set_timeouts(int fd)
{
	struct timeval tv = {CD_TLS_IO_TIMEOUT_MS / 1000, (CD_TLS_IO_TIMEOUT_MS % 1000) * 1000};
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

SSL *cd_tls_connect(SSL_CTX *ctx, const char *addr, unsigned timeout_ms, struct kb_errmsg *e)
{
	struct sockaddr_in sa;
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int fd, err = 0, flags;
	char why[256];
	SSL *ssl;

	if (parse_addr(addr, &sa)) {
		kb_errmsg_setf(e, "'%s' is not A.B.C.D:port", addr);
		return NULL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		kb_errmsg_setf(e, "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		kb_errmsg_setf(e, "connect %s: %s", addr, strerror(errno));
		close(fd);
		return NULL;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, (int)timeout_ms) != 1) {
		kb_errmsg_setf(e, "connect %s: timed out", addr);
		close(fd);
		return NULL;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		kb_errmsg_setf(e, "connect %s: %s", addr, strerror(err));
		close(fd);
		return NULL;
	}
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	set_timeouts(fd);
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		kb_errmsg_setf(e, "SSL_new failed");
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);

		if (v != X509_V_OK)
			kb_errmsg_setf(e, "TLS with %s: %s", addr, X509_verify_cert_error_string(v));
		else
			kb_errmsg_setf(e, "TLS with %s: %s", addr,
				       ssl_reason("handshake failed", why, sizeof(why)));
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	return ssl;
}

void cd_tls_close(SSL *ssl)
{
	int fd;

	if (!ssl)
		return;
	fd = SSL_get_fd(ssl);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
}

static int io_all(SSL *ssl, void *p, size_t n, bool wr, struct kb_errmsg *e)
{
	size_t done = 0;

	while (done < n) {
		size_t got = 0;
		int ok = wr ? SSL_write_ex(ssl, (uint8_t *)p + done, n - done, &got)
			    : SSL_read_ex(ssl, (uint8_t *)p + done, n - done, &got);

		if (ok != 1) {
			int err = SSL_get_error(ssl, 0);

			ERR_clear_error();
			if (!wr && done == 0 && err == SSL_ERROR_ZERO_RETURN)
				return -EPIPE;
			kb_errmsg_setf(e, "TLS %s: %s", wr ? "write" : "read",
				       err == SSL_ERROR_ZERO_RETURN ? "connection closed"
				       : errno == EAGAIN	    ? "timed out"
								    : "connection failed");
			return done ? KB_ETRUNCATED : -EIO;
		}
		done += got;
	}
	return 0;
}

int cd_tls_send(SSL *ssl, const void *p, size_t len, struct kb_errmsg *e)
{
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			  (uint8_t)len};

	if (io_all(ssl, hdr, 4, true, e) || io_all(ssl, (void *)p, len, true, e))
		return -EIO;
	return 0;
}

int cd_tls_recv(SSL *ssl, struct kb_buf *out, size_t max, struct kb_errmsg *e)
{
	uint8_t hdr[4];
	size_t len;
	int rv;

	out->len = 0;
	rv = io_all(ssl, hdr, 4, false, e);
	if (rv)
		return rv;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len > max) {
		kb_errmsg_setf(e, "frame of %zu bytes exceeds %zu", len, max);
		return KB_ETOOBIG;
	}
	rv = kb_buf_reserve(out, len);
	if (rv) {
		kb_errmsg_setf(e, "out of memory");
		return rv;
	}
	rv = io_all(ssl, out->data, len, false, e);
	if (rv)
		return rv == -EPIPE ? KB_ETRUNCATED : rv;
	out->len = len;
	return 0;
}

char *cd_tls_peer_cert_pem(SSL *ssl)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	BIO *bio;
	char *data, *out = NULL;
	long n;

	if (!x)
		return NULL;
	bio = BIO_new(BIO_s_mem());
	if (bio && PEM_write_bio_X509(bio, x) == 1) {
		n = BIO_get_mem_data(bio, &data);
		out = kb_malloc((size_t)n + 1);
		if (out) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
		}
	}
	BIO_free(bio);
	X509_free(x);
	return out;
}

char *cd_read_text(const char *path, size_t max, struct kb_errmsg *e)
{
	struct kb_buf b;
	char *s;

	kb_buf_init(&b, 0);
	if (kb_file_read_small(path, max, &b, e)) {
		kb_buf_close(&b);
		return NULL;
	}
	s = kb_malloc(b.len + 1);
	if (s) {
		memcpy(s, b.data, b.len);
		s[b.len] = '\0';
	} else {
		kb_errmsg_setf(e, "out of memory");
	}
	kb_buf_close(&b);
	return s;
}
