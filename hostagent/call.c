/*
 * One gRPC call on one HTTP/2 stream: request validation and decoding, the dispatch to the
 * method's handler, and the response (grpc.h's hd_call_* API).
 *
 * Happy path: headers (POST, :path /keel.vim.Vim/<Method>, content-type application/grpc)
 * → DATA decoded by the length-prefix decoder into exactly one message, unpacked with the
 * method's input descriptor → at END_STREAM the handler runs → it queues messages and a
 * status; the response is HEADERS(:status 200), DATA, then trailers (grpc-status,
 * grpc-message), or a single trailers-only HEADERS when there is no message.
 *
 * Refusals, each answered as soon as it is known and before any handler runs: not POST →
 * HTTP 405; not application/grpc → HTTP 415; unknown service or method → UNIMPLEMENTED;
 * compressed message → UNIMPLEMENTED; a message over HD_WIRE_MSG_MAX or past the
 * connection's buffering budget → RESOURCE_EXHAUSTED; a bad prefix, a body that does not
 * decode, no message or more than one → INVALID_ARGUMENT. An answer given before the
 * client ended its request is followed by RST_STREAM(NO_ERROR) so it stops sending
 * (RFC 9113 section 8.1).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hostagent/files.h"
#include "hostagent/internal.h"
#include "lib/err.h"
#include "lib/heap.h"

#define SERVICE_PREFIX "/keel.vim.Vim/"

struct hd_call *hd__call_create(struct hd_conn *c, int32_t stream_id)
{
	struct hd_call *call = kb_calloc(1, sizeof(*call));

	if (!call)
		return NULL;
	call->conn = c;
	call->stream_id = stream_id;
	hd_wire_dec_init(&call->dec, HD_WIRE_MSG_MAX);
	kb_buf_init(&call->sendq, 0);
	kb_list_add_tail(&c->calls, &call->link);
	c->ncalls++;
	return call;
}

void hd__call_free(struct hd_call *call)
{
	struct hd_conn *c = call->conn;

	kb_list_del(&call->link);
	c->ncalls--;
	c->buffered -= call->dec_accounted;
	hd_wire_dec_close(&call->dec);
	if (call->req)
		protobuf_c_message_free_unpacked(call->req, NULL);
	for (unsigned i = 0; i < call->nhdrs; i++) {
		kb_free(call->hdrs[i].name);
		kb_free(call->hdrs[i].value);
	}
	kb_free(call->hdrs);
	kb_buf_close(&call->sendq);
	kb_free(call->text);
	kb_free(call);
}

void hd__call_cancel(struct hd_call *call)
{
	hd_cancel_cb cb = call->cancel_cb;

	if (call->cancelled)
		return;
	call->cancelled = true;
	call->drain_cb = NULL;
	call->cancel_cb = NULL;
	if (cb && call->dispatched && !call->completed)
		cb(call, call->cancel_arg);
}

/* ---- request ---------------------------------------------------------------------- */

int hd__call_header(struct hd_call *call, const uint8_t *name, size_t nlen, const uint8_t *value,
		    size_t vlen)
{
	const char *n = (const char *)name, *v = (const char *)value;

	/* RFC 9113 6.5.2's accounting: name + value + 32 per field. */
	call->hdr_bytes += nlen + vlen + 32;
	if (call->hdr_bytes > HD_HEADER_LIST_MAX)
		return KB_ETOOBIG;
	if (n[0] == ':') {
		if (strcmp(n, ":method") == 0)
			call->is_post = strcmp(v, "POST") == 0;
		else if (strcmp(n, ":path") == 0)
			snprintf(call->path, sizeof(call->path), "%s",
				 vlen < sizeof(call->path) ? v : "/(too long)");
		/* File requests (files.c) read the method and the whole path as headers. */
		if (strcmp(n, ":method") != 0 && strcmp(n, ":path") != 0)
			return 0;
	}
	if (call->nhdrs == call->hdrs_cap) {
		unsigned cap = call->hdrs_cap ? 2 * call->hdrs_cap : 8;
		struct hd_header *h = kb_realloc(call->hdrs, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		call->hdrs = h;
		call->hdrs_cap = cap;
	}
	call->hdrs[call->nhdrs].name = kb_strdup(n);
	call->hdrs[call->nhdrs].value = kb_strdup(v);
	if (!call->hdrs[call->nhdrs].name || !call->hdrs[call->nhdrs].value) {
		kb_free(call->hdrs[call->nhdrs].name);
		kb_free(call->hdrs[call->nhdrs].value);
		return -ENOMEM;
	}
	call->nhdrs++;
	return 0;
}

/* An HTTP-level refusal: status only, no gRPC. */
static void http_refuse(struct hd_call *call, const char *status)
{
	const nghttp2_nv nva[] = {
	    {(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE},
	};

	call->completed = true;
	call->headers_sent = true;
	call->early = true;
	kb_log(call->conn->srv->log, KB_LOG_DEBUG, "%s: %s: HTTP %s", call->conn->peer_text,
	       call->path, status);
	nghttp2_submit_response(call->conn->h2, call->stream_id, nva, 1, NULL);
}

static bool grpc_content_type(const char *ct)
{
	static const char base[] = "application/grpc";
	size_t n = sizeof(base) - 1;

	if (!ct || strncmp(ct, base, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || strncmp(ct + n, "+proto", 6) == 0;
}

void hd__call_headers_done(struct hd_call *call)
{
	const char *name;

	if (call->completed)
		return;
	if (hd__file_is_request(call)) {
		hd__file_headers_done(call);
		return;
	}
	if (!call->is_post) {
		http_refuse(call, "405");
		return;
	}
	if (!grpc_content_type(hd_call_header(call, "content-type"))) {
		http_refuse(call, "415");
		return;
	}
	call->early = true; /* until the request is complete */
	if (strncmp(call->path, SERVICE_PREFIX, sizeof(SERVICE_PREFIX) - 1) != 0) {
		hd_call_error(call, HD_UNIMPLEMENTED, "unknown service: %s", call->path);
		return;
	}
	name = call->path + sizeof(SERVICE_PREFIX) - 1;
	call->method =
	    hd_method_find(call->conn->srv->cfg.methods, call->conn->srv->cfg.nmethods, name);
	if (!call->method)
		hd_call_error(call, HD_UNIMPLEMENTED, "unknown method: %s", call->path);
}

static int on_message(void *arg, const uint8_t *msg, size_t len)
{
	struct hd_call *call = arg;

	if (call->req) {
		call->fail_status = HD_INVALID_ARGUMENT;
		snprintf(call->fail_text, sizeof(call->fail_text),
			 "%s takes exactly one request message", call->method->name);
		return KB_EPROTO;
	}
	call->req = protobuf_c_message_unpack(call->method->input, NULL, len, msg);
	if (!call->req) {
		call->fail_status = HD_INVALID_ARGUMENT;
		snprintf(call->fail_text, sizeof(call->fail_text), "request does not decode as %s",
			 call->method->input->name);
		return KB_EPROTO;
	}
	return 0;
}

/* Keeps conn->buffered equal to what the calls' decoders hold. */
static void account(struct hd_call *call)
{
	size_t now = hd_wire_dec_buffered(&call->dec);

	call->conn->buffered = call->conn->buffered - call->dec_accounted + now;
	call->dec_accounted = now;
}

void hd__call_data(struct hd_call *call, const uint8_t *p, size_t n)
{
	struct hd_conn *c = call->conn;
	int rv;

	if (call->completed || call->cancelled || !call->method)
		return; /* answered already: the rest of the body is dropped */
	if (c->buffered + n > HD_CONN_BUFFER_MAX) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED,
			      "connection buffers more than %u request bytes", HD_CONN_BUFFER_MAX);
		return;
	}
	rv = hd_wire_feed(&call->dec, p, n, on_message, call);
	account(call);
	switch (rv) {
	case 0:
		return;
	case KB_ETOOBIG:
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "request message larger than %u bytes",
			      HD_WIRE_MSG_MAX);
		break;
	case KB_ENOTSUP:
		hd_call_error(call, HD_UNIMPLEMENTED, "compressed messages are not supported");
		break;
	case -ENOMEM:
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		break;
	default:
		if (call->fail_status)
			hd_call_error(call, call->fail_status, "%s", call->fail_text);
		else
			hd_call_error(call, HD_INVALID_ARGUMENT, "malformed message prefix");
		break;
	}
	hd_wire_dec_close(&call->dec);
	hd_wire_dec_init(&call->dec, HD_WIRE_MSG_MAX);
	account(call);
}

void hd__call_end_of_request(struct hd_call *call)
{
	const struct hd_method *m = call->method;

	call->early = false;
	if (hd__file_owns(call)) {
		hd__file_end_of_request(call);
		return;
	}
	if (call->completed || call->cancelled || !m)
		return;
	if (!hd_wire_dec_at_boundary(&call->dec)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "request ended inside a message");
		return;
	}
	if (!call->req) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "%s needs a request message", m->name);
		return;
	}
	call->dispatched = true;
	if (!m->handler) {
		hd_call_error(call, HD_UNIMPLEMENTED, "%s is not implemented yet", m->name);
		return;
	}
	/* We are inside nghttp2_session_mem_recv: nothing the handler does can free the
	 * call before it returns (flushes wait for the outer loop). */
	m->handler(call, call->req);
	if (!call->completed && !call->cancel_cb) {
		kb_log(call->conn->srv->log, KB_LOG_ERROR,
		       "handler of %s returned without an answer or a cancel callback", m->name);
		hd_call_error(call, HD_INTERNAL, "%s: handler error", m->name);
	}
}

void hd__call_end_sent(struct hd_call *call)
{
	nghttp2_session *h2 = call->conn->h2;

	/* The client has not finished sending, and never needs to: tell it to stop. */
	if (call->early && !nghttp2_session_get_stream_remote_close(h2, call->stream_id))
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_NO_ERROR);
}

/* ---- response ------------------------------------------------------------------- */

static ssize_t read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct hd_call *call = src->ptr;
	size_t avail, n;

	if (!call || call->cancelled)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	avail = call->sendq.len - call->sendq_off;
	n = avail < length ? avail : length;
	memcpy(buf, call->sendq.data + call->sendq_off, n);
	call->sendq_off += n;
	if (call->sendq_off == call->sendq.len) {
		kb_buf_reset(&call->sendq);
		call->sendq_off = 0;
	} else if (call->sendq_off >= (64u << 10) && call->sendq_off * 2 >= call->sendq.len) {
		kb_buf_consume(&call->sendq, call->sendq_off);
		call->sendq_off = 0;
	}
	if (call->drain_wanted && call->sendq.len - call->sendq_off < HD_CALL_SENDQ_MAX / 2) {
		call->drain_wanted = false;
		call->drain_pending = true;
	}
	if (n == 0 && !call->completed)
		return NGHTTP2_ERR_DEFERRED;
	if (call->completed && call->sendq.len == call->sendq_off) {
		char status[12];
		nghttp2_nv nva[2] = {
		    {(uint8_t *)"grpc-status", (uint8_t *)status, 11, 0, NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)"grpc-message", (uint8_t *)call->text, 12, 0, NGHTTP2_NV_FLAG_NONE},
		};

		nva[0].valuelen = (size_t)snprintf(status, sizeof(status), "%d", call->status);
		nva[1].valuelen = call->text ? strlen(call->text) : 0;
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(h2, id, nva, call->text ? 2 : 1) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static int submit_headers(struct hd_call *call, bool trailers_only)
{
	char status[12];
	nghttp2_nv nva[4] = {
	    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
	     NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"grpc-status", (uint8_t *)status, 11, 0, NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"grpc-message", (uint8_t *)call->text, 12, 0, NGHTTP2_NV_FLAG_NONE},
	};
	nghttp2_data_provider prd = {.source = {.ptr = call}, .read_callback = read_body};
	size_t n = 2;

	if (trailers_only) {
		nva[2].valuelen = (size_t)snprintf(status, sizeof(status), "%d", call->status);
		nva[3].valuelen = call->text ? strlen(call->text) : 0;
		n = call->text ? 4 : 3;
	}
	call->headers_sent = true;
	return nghttp2_submit_response(call->conn->h2, call->stream_id, nva, n,
				       trailers_only ? NULL : &prd) == 0
		   ? 0
		   : -ENOMEM;
}

/* Queues one framed message. bounded: refuse past HD_CALL_SENDQ_MAX. */
static int queue_message(struct hd_call *call, const ProtobufCMessage *msg, bool bounded)
{
	size_t pending = call->sendq.len - call->sendq_off;
	size_t size = protobuf_c_message_get_packed_size(msg) + HD_WIRE_PREFIX;
	int rv;

	if (bounded && pending > 0 && pending + size > HD_CALL_SENDQ_MAX) {
		call->drain_wanted = true;
		return -ENOBUFS;
	}
	rv = hd_wire_put(&call->sendq, msg, HD_WIRE_MSG_MAX);
	if (rv < 0)
		return rv;
	if (!call->headers_sent)
		return submit_headers(call, false);
	nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	return 0;
}

static int check_open(const struct hd_call *call)
{
	if (call->cancelled)
		return -ECANCELED;
	if (call->completed)
		return KB_ESTATE;
	return 0;
}

/* Gives the call its status; the last thing done with the call (the flush may free it). */
static int complete(struct hd_call *call, enum hd_status status, const char *text, int rv)
{
	char enc[3 * HD_WIRE_TEXT_MAX + 1];

	call->completed = true;
	call->status = status;
	if (text && text[0]) {
		hd_wire_pct_encode(enc, sizeof(enc), text);
		call->text = kb_strdup(enc);
	}
	kb_log(call->conn->srv->log, KB_LOG_DEBUG, "%s: %s: status %d%s%s", call->conn->peer_text,
	       call->path, status, text ? " " : "", text ? text : "");
	if (!call->headers_sent) {
		if (submit_headers(call, true) < 0)
			nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE,
						  call->stream_id, NGHTTP2_INTERNAL_ERROR);
	} else {
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	}
	hd__conn_flush(call->conn);
	return rv;
}

int hd_call_send(struct hd_call *call, const ProtobufCMessage *msg)
{
	int rv = check_open(call);

	if (rv < 0)
		return rv;
	rv = queue_message(call, msg, true);
	if (rv < 0)
		return rv;
	hd__conn_flush(call->conn);
	return 0;
}

int hd_call_reply(struct hd_call *call, const ProtobufCMessage *msg)
{
	int rv = check_open(call);

	if (rv < 0)
		return rv;
	rv = queue_message(call, msg, false);
	if (rv == KB_ETOOBIG)
		return complete(call, HD_RESOURCE_EXHAUSTED, "reply larger than the message limit",
				rv);
	if (rv < 0)
		return complete(call, HD_INTERNAL, "out of memory", rv);
	return complete(call, HD_OK, NULL, 0);
}

int hd_call_finish(struct hd_call *call, enum hd_status status, const char *text)
{
	int rv = check_open(call);

	if (rv < 0)
		return rv;
	return complete(call, status, text, 0);
}

int hd_call_error(struct hd_call *call, enum hd_status status, const char *fmt, ...)
{
	char text[HD_WIRE_TEXT_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return hd_call_finish(call, status, text);
}

void hd_call_on_cancel(struct hd_call *call, hd_cancel_cb cb, void *arg)
{
	call->cancel_cb = cb;
	call->cancel_arg = arg;
}

void hd_call_on_drain(struct hd_call *call, hd_drain_cb cb, void *arg)
{
	call->drain_cb = cb;
	call->drain_arg = arg;
}

void hd__conn_run_drains(struct hd_conn *c)
{
	struct kb_list *pos;

again:
	kb_list_for_each(pos, &c->calls)
	{
		struct hd_call *call = kb_list_entry(pos, struct hd_call, link);

		if (call->drain_pending) {
			call->drain_pending = false;
			if (call->drain_cb && !call->completed && !call->cancelled) {
				call->drain_cb(call, call->drain_arg);
				if (c->closing)
					return;
				goto again; /* the list may have changed */
			}
		}
	}
}

/* ---- what handlers may read ----------------------------------------------------- */

const struct hd_method *hd_call_method(const struct hd_call *call)
{
	return call->method;
}

const char *hd_call_header(const struct hd_call *call, const char *name)
{
	for (unsigned i = 0; i < call->nhdrs; i++)
		if (strcmp(call->hdrs[i].name, name) == 0)
			return call->hdrs[i].value;
	return NULL;
}

const struct sockaddr_storage *hd_call_peer_addr(const struct hd_call *call)
{
	return &call->conn->peer;
}

const char *hd_call_peer(const struct hd_call *call)
{
	return call->conn->peer_text;
}

X509 *hd_call_peer_cert(const struct hd_call *call)
{
	const struct hd_conn *c = call->conn;

	if (c->cert_failed || !c->srv->id.ca[0])
		return NULL;
	return SSL_get0_peer_certificate(c->ssl);
}

void *hd_call_server_data(const struct hd_call *call)
{
	return call->conn->srv->cfg.data;
}
