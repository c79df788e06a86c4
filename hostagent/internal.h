/*
 * Internals shared by hostagent's files: the server, a connection (TLS over memory BIOs and
 * one nghttp2 server session) and a call (one HTTP/2 stream). Not for handlers: they see
 * grpc.h only.
 *
 * Object graph: hd_server owns its connections (list conns); a connection owns its calls
 * (list calls), each bound to one HTTP/2 stream through the stream's user data. A call is
 * freed when its stream closes (nghttp2's on_stream_close) or, for the streams still open
 * when the connection goes, when the connection is freed — never earlier, so nghttp2
 * never holds a dangling pointer.
 */
#ifndef HD_INTERNAL_H
#define HD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "hostagent/grpc.h"
#include "hostagent/server.h"
#include "hostagent/tls.h"
#include "hostagent/wire.h"
#include "lib/buf.h"
#include "lib/list.h"
#include "lib/log.h"

#define HD_WRITE_HIGH	  (1u << 20) /* TLS bytes handed to libuv before we stop producing */
#define HD_CLOSE_GRACE_MS 2000	     /* time to flush GOAWAY before a hard close */

struct hd_server {
	uv_loop_t *loop;
	struct hd_server_config cfg;
	struct kb_logger *log;
	struct hd_tls_identity id;
	SSL_CTX *ctx;	       /* for new connections; open ones keep a reference to theirs */
	uv_timer_t cert_timer; /* looks for a new certificate (joining a cluster) */
	uv_tcp_t *listeners[HD_MAX_LISTENERS];
	unsigned nlisteners;
	unsigned handles_open; /* listeners not yet closed */
	struct kb_list conns;
	unsigned nconns;
	bool closing;
	hd_server_closed_cb closed_cb;
	void *closed_arg;
	char rbuf[65536]; /* read buffer of every connection: reads are consumed at once */
};

struct hd_conn {
	struct kb_list link; /* in server->conns */
	struct hd_server *srv;
	uv_tcp_t tcp;
	uv_timer_t timer; /* handshake, idle, then close deadline */
	uv_shutdown_t shutdown_req;
	unsigned handles_open;
	SSL *ssl; /* owns rbio and wbio */
	BIO *rbio, *wbio;
	nghttp2_session *h2;
	struct sockaddr_storage peer;
	char peer_text[64];
	bool handshake_done;
	bool cert_failed; /* the client's certificate did not verify */
	bool closing;	  /* GOAWAY sent or being sent; no new work */
	bool tls_closed;  /* close_notify queued (or no TLS to close) */
	bool lingering;	  /* all written, FIN sent, input dropped until the peer closes */
	bool finalizing;  /* handles closing */
	bool reading;
	int busy; /* inside nghttp2_session_mem_recv/mem_send */
	size_t write_pending;
	struct kb_list calls;
	unsigned ncalls;
	size_t buffered; /* request bytes held by the calls' decoders */
	unsigned resets;
	uint64_t reset_window_start;
};

struct hd_header {
	char *name, *value;
};

struct hd_call {
	struct kb_list link; /* in conn->calls */
	struct hd_conn *conn;
	int32_t stream_id;
	/* The request as received. */
	struct hd_header *hdrs;
	unsigned nhdrs, hdrs_cap;
	size_t hdr_bytes;
	bool is_post;
	char path[160];
	const struct hd_method *method;
	struct hd_wire_dec dec;
	size_t dec_accounted; /* part of conn->buffered that is this decoder's */
	ProtobufCMessage *req;
	enum hd_status fail_status; /* set by the message callback when it refuses */
	char fail_text[200];
	/* State. */
	bool dispatched;    /* the handler was called */
	bool completed;	    /* a status was given */
	bool cancelled;	    /* the client went away first */
	bool headers_sent;  /* the response HEADERS were submitted */
	bool early;	    /* answered before the request ended: RST(NO_ERROR) after */
	bool drain_wanted;  /* hd_call_send refused: call drain_cb when there is room */
	bool drain_pending; /* ... and there is room now */
	enum hd_status status;
	char *text; /* grpc-message, percent-encoded */
	/* The response. */
	struct kb_buf sendq;
	size_t sendq_off;
	hd_cancel_cb cancel_cb;
	void *cancel_arg;
	hd_drain_cb drain_cb;
	void *drain_arg;
};

/* conn.c */
void hd__conn_accept(struct hd_server *s, uv_stream_t *listener);
/* Produces and writes what nghttp2 has to send; a no-op inside nghttp2 callbacks (the
 * outer loop picks the new frames up). May free calls of this connection. */
void hd__conn_flush(struct hd_conn *c);
/* Sends GOAWAY (error_code), cancels every call and closes once written (or after
 * HD_CLOSE_GRACE_MS). */
void hd__conn_close(struct hd_conn *c, uint32_t error_code, const char *why);

/* server.c */
void hd__server_conn_gone(struct hd_server *s, struct hd_conn *c);

/* call.c */
struct hd_call *hd__call_create(struct hd_conn *c, int32_t stream_id);
void hd__call_free(struct hd_call *call);
int hd__call_header(struct hd_call *call, const uint8_t *name, size_t nlen, const uint8_t *value,
		    size_t vlen);
void hd__call_headers_done(struct hd_call *call);
void hd__call_data(struct hd_call *call, const uint8_t *p, size_t n);
void hd__call_end_of_request(struct hd_call *call);
/* The client went away: cancel callback (once), no more output. Does not free. */
void hd__call_cancel(struct hd_call *call);
/* Our HEADERS with END_STREAM went out on the call's stream. */
void hd__call_end_sent(struct hd_call *call);
/* Runs the drain callbacks that became due; called outside nghttp2. */
void hd__conn_run_drains(struct hd_conn *c);

#endif
