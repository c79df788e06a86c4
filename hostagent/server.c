/*
 * hostd's API server: certificate and TLS context, listeners, the connection set and its
 * limits, and the orderly stop (server.h).
 *
 * Failure modes: a certificate that cannot be loaded or made fails hd_server_create; an
 * address in use fails hd_server_listen; connections past max_conns or max_conns_per_ip
 * are accepted and closed at once (logged); everything else is per connection (conn.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostagent/internal.h"
#include "lib/heap.h"

#define CERT_CHECK_MS 5000 /* how often to look for a new certificate */

void hd_server_config_defaults(struct hd_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log = &kb_log_default;
	cfg->methods = hd_vim_methods;
	cfg->nmethods = hd_vim_methods_count;
	cfg->max_conns = HD_MAX_CONNS;
	cfg->max_conns_per_ip = HD_MAX_CONNS_PER_IP;
	cfg->idle_timeout_ms = HD_IDLE_TIMEOUT_MS;
	cfg->handshake_timeout_ms = HD_HANDSHAKE_TIMEOUT_MS;
	cfg->reset_max = HD_RESET_MAX;
}

/* The host joined (or left) a cluster, or its certificate was renewed: new connections
 * get the new identity; open ones keep theirs (each SSL holds its context). */
static void on_cert_timer(uv_timer_t *t)
{
	struct hd_server *s = t->data;
	struct hd_tls_identity id;
	struct kb_errmsg e = {{0}};
	SSL_CTX *ctx;

	if (s->closing || hd_tls_identity_load(s->cfg.state_dir, &id, &e) < 0)
		return;
	if (id.clustered == s->id.clustered && strcmp(id.thumbprint, s->id.thumbprint) == 0)
		return;
	ctx = hd_tls_server_ctx(&id, NULL, &e);
	if (!ctx) {
		kb_log(s->log, KB_LOG_WARN, "new certificate %s not usable: %s", id.crt, e.msg);
		return;
	}
	SSL_CTX_free(s->ctx);
	s->ctx = ctx;
	s->id = id;
	kb_log(s->log, KB_LOG_INFO, "certificate now %s (%s), SHA-256 thumbprint %s", id.crt,
	       id.clustered ? "cluster" : "self-signed", id.thumbprint);
}

int hd_server_create(uv_loop_t *loop, const struct hd_server_config *cfg, struct hd_server **out,
		     struct kb_errmsg *e)
{
	struct hd_server *s = kb_calloc(1, sizeof(*s));
	int rv;

	if (!s) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	s->loop = loop;
	s->cfg = *cfg;
	s->log = cfg->log ? cfg->log : &kb_log_default;
	kb_list_init(&s->conns);
	rv = hd_tls_identity_load(cfg->state_dir, &s->id, e);
	if (rv < 0)
		goto err_free;
	s->ctx = hd_tls_server_ctx(&s->id, NULL, e);
	if (!s->ctx) {
		rv = -EIO;
		goto err_free;
	}
	kb_log(s->log, KB_LOG_INFO, "certificate %s (%s), SHA-256 thumbprint %s", s->id.crt,
	       s->id.clustered ? "cluster" : "self-signed", s->id.thumbprint);
	uv_timer_init(loop, &s->cert_timer);
	s->cert_timer.data = s;
	s->handles_open++;
	uv_timer_start(&s->cert_timer, on_cert_timer, CERT_CHECK_MS, CERT_CHECK_MS);
	*out = s;
	return 0;
err_free:
	kb_free(s);
	return rv;
}

const char *hd_server_thumbprint(const struct hd_server *s)
{
	return s->id.thumbprint;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct hd_server *s = listener->data;

	if (status < 0) {
		kb_log(s->log, KB_LOG_WARN, "accept: %s", uv_strerror(status));
		return;
	}
	hd__conn_accept(s, listener);
}

/* Parses "A.B.C.D:PORT" or "[v6]:PORT". */
static int parse_addr(const char *text, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon;
	char *end;
	unsigned long port;
	size_t hl;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - text - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, hl);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - text);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, hl);
	}
	host[hl] = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] == '\0' || port > 65535)
		return -EINVAL;
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -EINVAL;
}

static void on_listener_closed(uv_handle_t *h);

int hd_server_listen(struct hd_server *s, const char *addr, struct kb_errmsg *e)
{
	struct sockaddr_storage ss;
	uv_tcp_t *t;
	int rv;

	if (s->nlisteners == HD_MAX_LISTENERS) {
		kb_errmsg_setf(e, "more than %d listen addresses", HD_MAX_LISTENERS);
		return KB_ETOOBIG;
	}
	memset(&ss, 0, sizeof(ss));
	if (parse_addr(addr, &ss) < 0) {
		kb_errmsg_setf(e, "bad listen address '%s' (want A.B.C.D:PORT or [V6]:PORT)", addr);
		return -EINVAL;
	}
	t = kb_calloc(1, sizeof(*t));
	if (!t) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	uv_tcp_init(s->loop, t);
	t->data = s;
	s->handles_open++;
	s->listeners[s->nlisteners++] = t;
	rv = uv_tcp_bind(t, (const struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)t, 511, on_connection);
	if (rv < 0) {
		kb_errmsg_setf(e, "listen on %s: %s", addr, uv_strerror(rv));
		s->listeners[--s->nlisteners] = NULL;
		uv_close((uv_handle_t *)t, on_listener_closed);
		return rv;
	}
	kb_log(s->log, KB_LOG_INFO, "listening on %s", addr);
	return 0;
}

static void maybe_closed(struct hd_server *s)
{
	if (!s->closing || s->handles_open > 0 || s->nconns > 0)
		return;
	SSL_CTX_free(s->ctx);
	if (s->closed_cb)
		s->closed_cb(s, s->closed_arg);
	kb_free(s);
}

static void on_cert_timer_closed(uv_handle_t *h)
{
	struct hd_server *s = h->data;

	s->handles_open--;
	maybe_closed(s);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct hd_server *s = h->data;

	kb_free(h);
	s->handles_open--;
	maybe_closed(s);
}

void hd__server_conn_gone(struct hd_server *s, struct hd_conn *c)
{
	kb_list_del(&c->link);
	s->nconns--;
	kb_log(s->log, KB_LOG_DEBUG, "%s: connection closed (%u open)", c->peer_text, s->nconns);
	maybe_closed(s);
}

void hd_server_close(struct hd_server *s, hd_server_closed_cb cb, void *arg)
{
	struct kb_list *pos, *tmp;

	s->closing = true;
	s->closed_cb = cb;
	s->closed_arg = arg;
	uv_close((uv_handle_t *)&s->cert_timer, on_cert_timer_closed);
	for (unsigned i = 0; i < s->nlisteners; i++)
		uv_close((uv_handle_t *)s->listeners[i], on_listener_closed);
	s->nlisteners = 0;
	/* hd__conn_close may finalize a connection, never free it here: freeing waits for
	 * the handles' close callbacks. */
	kb_list_for_each_safe(pos, tmp, &s->conns) hd__conn_close(
	    kb_list_entry(pos, struct hd_conn, link), NGHTTP2_NO_ERROR, "server stopping");
	maybe_closed(s); /* nothing was open */
}
