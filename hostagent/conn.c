/*
 * One client connection of hostd: TCP on libuv, TLS through memory BIOs, one nghttp2
 * server session.
 *
 * Happy path: accept; bytes read from TCP go into the read BIO; the TLS handshake runs
 * (ALPN h2); decrypted bytes go to nghttp2_session_mem_recv, whose callbacks build calls
 * (call.c); what nghttp2 wants to send is encrypted with SSL_write into the write BIO and
 * handed to uv_write. Nothing blocks: the BIOs are memory, and nghttp2 only produces while
 * fewer than HD_WRITE_HIGH bytes wait in libuv (a client that does not read stops getting
 * data, and we stop reading it until the backlog drains).
 *
 * Failure modes: a failed handshake, a TLS error, a peer close or a read error close the
 * connection at once; an HTTP/2 protocol error makes nghttp2 queue GOAWAY, which is flushed
 * before the close; too many RST_STREAMs (rapid reset) get GOAWAY(ENHANCE_YOUR_CALM); an idle
 * connection (no call, no byte for idle_timeout_ms) gets GOAWAY(NO_ERROR). Each ends in
 * finalize(): calls are cancelled, handles closed, and on the last close callback the
 * session, the SSL object, the calls and the connection are freed.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <openssl/err.h>

#include "hostagent/files.h"
#include "hostagent/internal.h"
#include "lib/heap.h"
#include "lib/time.h"

struct write_req {
	uv_write_t req;
	struct hd_conn *conn;
	size_t len;
	char data[];
};

static void finalize(struct hd_conn *c);
static void linger(struct hd_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(out, size, "?");
	}
}

static const char *ssl_reason(char *buf, size_t size)
{
	unsigned long err = ERR_get_error();

	ERR_clear_error();
	if (!err)
		return "connection closed";
	ERR_error_string_n(err, buf, size);
	return buf;
}

/* ---- output ------------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct hd_conn *c = w->conn;

	c->write_pending -= w->len;
	kb_free(w);
	if (c->finalizing)
		return;
	if (status < 0) {
		kb_log(c->srv->log, KB_LOG_DEBUG, "%s: write: %s", c->peer_text,
		       uv_strerror(status));
		finalize(c);
		return;
	}
	if (c->closing && c->tls_closed) {
		if (c->write_pending == 0)
			linger(c);
		return;
	}
	if (!c->reading && c->write_pending < HD_WRITE_HIGH / 2) {
		c->reading = true;
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	}
	hd__conn_flush(c);
}

/* Hands what TLS produced to libuv. 0 or -ENOMEM. */
static int drain_wbio(struct hd_conn *c)
{
	size_t pending;

	while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
		struct write_req *w = kb_malloc(sizeof(*w) + pending);
		uv_buf_t buf;
		int n, rv;

		if (!w)
			return -ENOMEM;
		n = BIO_read(c->wbio, w->data, (int)pending);
		if (n <= 0) {
			kb_free(w);
			return -EIO;
		}
		w->conn = c;
		w->len = (size_t)n;
		buf = uv_buf_init(w->data, (unsigned)n);
		rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
		if (rv < 0) {
			kb_free(w);
			return rv;
		}
		c->write_pending += w->len;
	}
	return 0;
}

void hd__conn_flush(struct hd_conn *c)
{
	if (c->finalizing || c->busy)
		return;
	if (c->h2) {
		c->busy++;
		while (c->write_pending + BIO_ctrl_pending(c->wbio) < HD_WRITE_HIGH) {
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(c->h2, &data);

			if (n < 0) {
				c->busy--;
				kb_log(c->srv->log, KB_LOG_DEBUG, "%s: nghttp2: %s", c->peer_text,
				       nghttp2_strerror((int)n));
				finalize(c);
				return;
			}
			if (n == 0)
				break;
			if (SSL_write(c->ssl, data, (int)n) != (int)n) {
				c->busy--;
				finalize(c);
				return;
			}
			if (BIO_ctrl_pending(c->wbio) >= (64u << 10) && drain_wbio(c) < 0) {
				c->busy--;
				finalize(c);
				return;
			}
		}
		c->busy--;
	}
	if (c->closing && !c->tls_closed && !(c->h2 && nghttp2_session_want_write(c->h2))) {
		/* GOAWAY is out: close_notify follows it, then FIN once written. */
		c->tls_closed = true;
		if (c->handshake_done)
			SSL_shutdown(c->ssl);
	}
	if (drain_wbio(c) < 0) {
		finalize(c);
		return;
	}
	if (c->tls_closed) {
		if (c->write_pending == 0)
			linger(c);
		return;
	}
	if (c->h2 && !c->closing && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2)) {
		hd__conn_close(c, NGHTTP2_NO_ERROR, "session ended");
		return;
	}
	if (c->h2 && !c->closing)
		hd__conn_run_drains(c);
}

/* ---- nghttp2 callbacks --------------------------------------------------------------- */

static struct hd_call *stream_call(nghttp2_session *h2, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h2, id);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *arg)
{
	struct hd_conn *c = arg;
	struct hd_call *call;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (c->closing)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	call = hd__call_create(c, f->hd.stream_id);
	if (!call)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, call);
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
		     const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
	struct hd_call *call;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* request trailers are ignored */
	call = stream_call(h2, f->hd.stream_id);
	if (!call)
		return 0;
	if (hd__call_header(call, name, nlen, value, vlen) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static void count_reset(struct hd_conn *c)
{
	uint64_t now = uv_now(c->srv->loop);

	if (now - c->reset_window_start > HD_RESET_WINDOW_MS) {
		c->reset_window_start = now;
		c->resets = 0;
	}
	if (++c->resets > c->srv->cfg.reset_max && !c->closing) {
		kb_log(c->srv->log, KB_LOG_WARN, "%s: %u stream resets within %u ms: closing",
		       c->peer_text, c->resets, HD_RESET_WINDOW_MS);
		hd__conn_close(c, NGHTTP2_ENHANCE_YOUR_CALM, "too many stream resets");
	}
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *arg)
{
	struct hd_conn *c = arg;
	struct hd_call *call;

	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		call = stream_call(h2, f->hd.stream_id);
		if (!call)
			return 0;
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
			hd__call_headers_done(call);
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
			hd__call_end_of_request(call);
		break;
	case NGHTTP2_DATA:
		call = stream_call(h2, f->hd.stream_id);
		if (call && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
			hd__call_end_of_request(call);
		break;
	case NGHTTP2_RST_STREAM:
		count_reset(c);
		break;
	default:
		break;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *arg)
{
	struct hd_call *call = stream_call(h2, id);

	/* The window is given back by hand (no automatic WINDOW_UPDATE): at once for gRPC,
	 * whose decoder has its own budget; by files.c once an upload's bytes are written. */
	if (call && hd__file_owns(call)) {
		hd__file_data(call, data, len);
		return 0;
	}
	nghttp2_session_consume(h2, id, len);
	if (call)
		hd__call_data(call, data, len);
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *arg)
{
	struct hd_call *call;

	/* gRPC ends with HEADERS (trailers); a file answer may end with DATA. */
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		call = stream_call(h2, f->hd.stream_id);
		if (call)
			hd__call_end_sent(call);
	}
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *arg)
{
	struct hd_call *call = stream_call(h2, id);

	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	if (!call->completed)
		hd__call_cancel(call);
	hd__call_free(call);
	return 0;
}

static int on_error(nghttp2_session *h2, int code, const char *msg, size_t len, void *arg)
{
	struct hd_conn *c = arg;

	kb_log(c->srv->log, KB_LOG_DEBUG, "%s: HTTP/2: %.*s", c->peer_text, (int)len, msg);
	return 0;
}

static int start_session(struct hd_conn *c)
{
	const nghttp2_settings_entry settings[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, HD_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HD_HEADER_LIST_MAX},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
	};
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	int rv;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		return -ENOMEM;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
	/* nghttp2's own rapid-reset limit (a token bucket) on top of our count. */
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 100);
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	rv = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0)
		return -ENOMEM;
	rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings,
				     sizeof(settings) / sizeof(settings[0]));
	if (rv == 0)
		rv = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 4u << 20);
	return rv == 0 ? 0 : -ENOMEM;
}

/* ---- input ------------------------------------------------------------------------- */

static void arm_idle(struct hd_conn *c);
static void on_timer(uv_timer_t *t);

static void handshake(struct hd_conn *c)
{
	char why[256];
	int rv = SSL_do_handshake(c->ssl);

	if (rv != 1) {
		int err = SSL_get_error(c->ssl, rv);

		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			if (drain_wbio(c) < 0)
				finalize(c);
			return;
		}
		kb_log(c->srv->log, KB_LOG_DEBUG, "%s: TLS handshake failed: %s", c->peer_text,
		       ssl_reason(why, sizeof(why)));
		/* Send the alert if there is one, then close. */
		c->closing = true;
		c->tls_closed = true;
		uv_timer_start(&c->timer, on_timer, HD_CLOSE_GRACE_MS, 0);
		if (drain_wbio(c) < 0)
			finalize(c);
		else if (c->write_pending == 0)
			linger(c);
		return;
	}
	c->handshake_done = true;
	rv = start_session(c);
	if (rv < 0) {
		kb_log(c->srv->log, KB_LOG_WARN, "%s: cannot start HTTP/2: %s", c->peer_text,
		       kb_strerror(rv));
		finalize(c);
		return;
	}
	kb_log(c->srv->log, KB_LOG_DEBUG, "%s: TLS %s established%s", c->peer_text,
	       SSL_get_version(c->ssl),
	       SSL_get0_peer_certificate(c->ssl)
		   ? (c->cert_failed ? ", client certificate not verified" : ", client verified")
		   : "");
	arm_idle(c);
}

/* Decrypts what the read BIO holds and feeds it to nghttp2. */
static void feed_h2(struct hd_conn *c)
{
	uint8_t buf[16384];
	char why[256];

	while (!c->finalizing && !c->closing) {
		int n = SSL_read(c->ssl, buf, sizeof(buf));
		ssize_t rv;

		if (n <= 0) {
			int err = SSL_get_error(c->ssl, n);

			if (err == SSL_ERROR_WANT_READ)
				break;
			if (err == SSL_ERROR_ZERO_RETURN) {
				kb_log(c->srv->log, KB_LOG_DEBUG, "%s: TLS closed by peer",
				       c->peer_text);
				finalize(c);
			} else {
				kb_log(c->srv->log, KB_LOG_DEBUG, "%s: TLS: %s", c->peer_text,
				       ssl_reason(why, sizeof(why)));
				finalize(c);
			}
			return;
		}
		c->busy++;
		rv = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
		c->busy--;
		if (rv < 0) {
			/* nghttp2 has queued GOAWAY where the protocol wants one. */
			kb_log(c->srv->log, KB_LOG_INFO, "%s: HTTP/2 error: %s: closing",
			       c->peer_text, nghttp2_strerror((int)rv));
			hd__conn_close(c, NGHTTP2_PROTOCOL_ERROR, "protocol error");
			return;
		}
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct hd_conn *c = h->data;

	/* One buffer per server: each read is consumed before the next one. */
	*buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct hd_conn *c = stream->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		kb_log(c->srv->log, KB_LOG_DEBUG, "%s: %s", c->peer_text,
		       nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
		finalize(c);
		return;
	}
	if (c->closing)
		return; /* draining: input is ignored */
	if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
		finalize(c);
		return;
	}
	if (c->handshake_done)
		arm_idle(c);
	if (!c->handshake_done) {
		handshake(c);
		if (c->finalizing || !c->handshake_done)
			return;
	}
	feed_h2(c);
	if (c->finalizing)
		return;
	hd__conn_flush(c);
	if (!c->finalizing && c->write_pending >= HD_WRITE_HIGH && c->reading) {
		/* The client sends but does not read: stop reading until it does. */
		uv_read_stop(stream);
		c->reading = false;
	}
}

/* ---- timers and close ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct hd_conn *c = t->data;

	if (c->closing) {
		kb_log(c->srv->log, KB_LOG_DEBUG, "%s: close grace period over", c->peer_text);
		finalize(c);
	} else if (!c->handshake_done) {
		kb_log(c->srv->log, KB_LOG_DEBUG, "%s: TLS handshake timed out", c->peer_text);
		finalize(c);
	} else if (c->ncalls > 0) {
		arm_idle(c);
	} else {
		kb_log(c->srv->log, KB_LOG_DEBUG, "%s: idle: closing", c->peer_text);
		hd__conn_close(c, NGHTTP2_NO_ERROR, "idle");
	}
}

static void arm_idle(struct hd_conn *c)
{
	uv_timer_start(&c->timer, on_timer, c->srv->cfg.idle_timeout_ms, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct hd_conn *c = h->data;
	struct kb_list *pos, *tmp;

	if (--c->handles_open > 0)
		return;
	kb_list_for_each_safe(pos, tmp, &c->calls)
	    hd__call_free(kb_list_entry(pos, struct hd_call, link));
	if (c->h2)
		nghttp2_session_del(c->h2);
	SSL_free(c->ssl);
	hd__server_conn_gone(c->srv, c);
	kb_free(c);
}

/* Cancels the calls and closes the handles; frees on the last close callback. */
static void finalize(struct hd_conn *c)
{
	struct kb_list *pos;

	if (c->finalizing)
		return;
	c->finalizing = true;
	c->closing = true;
	kb_list_for_each(pos, &c->calls) hd__call_cancel(kb_list_entry(pos, struct hd_call, link));
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void hd__conn_close(struct hd_conn *c, uint32_t error_code, const char *why)
{
	struct kb_list *pos;

	if (c->closing)
		return;
	kb_log(c->srv->log, KB_LOG_DEBUG, "%s: closing: %s", c->peer_text, why);
	c->closing = true;
	kb_list_for_each(pos, &c->calls) hd__call_cancel(kb_list_entry(pos, struct hd_call, link));
	uv_timer_start(&c->timer, on_timer, HD_CLOSE_GRACE_MS, 0);
	if (c->h2)
		nghttp2_session_terminate_session(c->h2, error_code);
	/* Inside nghttp2 this waits for the outer flush. */
	hd__conn_flush(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct hd_conn *c = req->data;

	if (status < 0 && !c->finalizing)
		finalize(c);
}

/* Everything is written: send FIN and read (and drop) until the peer closes or the grace
 * timer fires, so that a GOAWAY is not destroyed by a reset over unread input. */
static void linger(struct hd_conn *c)
{
	if (c->finalizing || c->lingering)
		return;
	c->lingering = true;
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		finalize(c);
		return;
	}
	if (!c->reading) {
		c->reading = true;
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	}
}

/* ---- accept ------------------------------------------------------------------------ */

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct hd_conn *c = SSL_get_app_data(ssl);

	/* The certificate is optional: an unverified one is remembered and never exposed. */
	if (!ok && c)
		c->cert_failed = true;
	return 1;
}

static int new_tls(struct hd_conn *c)
{
	c->ssl = SSL_new(c->srv->ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -ENOMEM;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_cb);
	SSL_set_accept_state(c->ssl);
	return 0;
}

static void on_reject_closed(uv_handle_t *h)
{
	kb_free(h->data);
}

/* Counts live connections from the same address as ss. */
static unsigned conns_from(struct hd_server *s, const struct sockaddr_storage *ss)
{
	struct kb_list *pos;
	unsigned n = 0;

	kb_list_for_each(pos, &s->conns)
	{
		struct hd_conn *c = kb_list_entry(pos, struct hd_conn, link);

		if (c->peer.ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET &&
		    ((const struct sockaddr_in *)&c->peer)->sin_addr.s_addr ==
			((const struct sockaddr_in *)ss)->sin_addr.s_addr)
			n++;
		else if (ss->ss_family == AF_INET6 &&
			 memcmp(&((const struct sockaddr_in6 *)&c->peer)->sin6_addr,
				&((const struct sockaddr_in6 *)ss)->sin6_addr, 16) == 0)
			n++;
	}
	return n;
}

static void reject(struct hd_server *s, uv_stream_t *listener)
{
	uv_tcp_t *t = kb_malloc(sizeof(*t));

	if (!t)
		return;
	uv_tcp_init(s->loop, t);
	t->data = t;
	uv_accept(listener, (uv_stream_t *)t);
	uv_close((uv_handle_t *)t, on_reject_closed);
}

void hd__conn_accept(struct hd_server *s, uv_stream_t *listener)
{
	struct hd_conn *c;
	int len = sizeof(struct sockaddr_storage);
	unsigned from;

	if (s->closing || s->nconns >= s->cfg.max_conns) {
		if (!s->closing)
			kb_log(s->log, KB_LOG_WARN, "connection refused: %u connections open",
			       s->nconns);
		reject(s, listener);
		return;
	}
	c = kb_calloc(1, sizeof(*c));
	if (!c) {
		reject(s, listener);
		return;
	}
	c->srv = s;
	kb_list_init(&c->calls);
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_reject_closed); /* tcp.data is c */
		return;
	}
	uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
	peer_text(&c->peer, c->peer_text, sizeof(c->peer_text));
	from = conns_from(s, &c->peer);
	if (from >= s->cfg.max_conns_per_ip) {
		kb_log(s->log, KB_LOG_WARN, "%s: connection refused: %u connections from there",
		       c->peer_text, from);
		uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
		return;
	}
	if (new_tls(c) < 0) {
		kb_log(s->log, KB_LOG_WARN, "%s: connection refused: out of memory", c->peer_text);
		uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
		return;
	}
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	c->handles_open = 2;
	kb_list_add_tail(&s->conns, &c->link);
	s->nconns++;
	uv_tcp_nodelay(&c->tcp, 1);
	uv_timer_start(&c->timer, on_timer, s->cfg.handshake_timeout_ms, 0);
	c->reading = true;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	kb_log(s->log, KB_LOG_DEBUG, "%s: connected (%u open)", c->peer_text, s->nconns);
}
