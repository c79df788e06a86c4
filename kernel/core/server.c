/*
 * The control server: a Unix stream socket on the loop thread. Frames (lib/frame.h) are
 * decoded incrementally; each request runs on libuv's thread pool (power operations take
 * milliseconds to seconds) and its reply is written back from the loop. One request per
 * client is in flight at a time, so replies come back in order. A frame that is too large
 * or does not decode gets an error reply and the connection is closed.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/core/server.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"

#define REQ_MAX (256u << 10)

struct client {
	uv_pipe_t pipe;
	struct vmk_host *host;
	struct kb_frame_decoder dec;
	bool busy; /* a request is on the thread pool or its reply is being written */
	bool eof;  /* the peer is gone: close once not busy */
	bool closing;
};

struct job {
	uv_work_t work;
	struct client *c;
	Keel__Vmk__VmkRequest *rq;
	struct kb_buf reply;
	bool close_after;
};

struct write_req {
	uv_write_t w;
	struct kb_buf data;
	struct client *c;
	bool close_after;
};

static uv_pipe_t server;

static void on_client_closed(uv_handle_t *h)
{
	struct client *c = h->data;

	kb_frame_decoder_close(&c->dec);
	kb_free(c);
}

static void client_close(struct client *c)
{
	if (!c->closing) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->pipe, on_client_closed);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char chunk[64 << 10];
	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void pump(struct client *c);

static void on_written(uv_write_t *w, int status)
{
	struct write_req *wr = (struct write_req *)w;
	struct client *c = wr->c;

	kb_buf_close(&wr->data);
	bool close_after = wr->close_after || status < 0 || c->eof;
	kb_free(wr);
	c->busy = false;
	if (close_after) {
		client_close(c);
		return;
	}
	pump(c);
}

static void send_reply(struct client *c, struct kb_buf *data, bool close_after)
{
	struct write_req *wr = kb_calloc(1, sizeof(*wr));
	uv_buf_t b;

	if (wr == NULL) {
		kb_buf_close(data);
		client_close(c);
		return;
	}
	wr->data = *data;
	wr->c = c;
	wr->close_after = close_after;
	b = uv_buf_init((char *)wr->data.data, (unsigned)wr->data.len);
	if (uv_write(&wr->w, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
		kb_buf_close(&wr->data);
		kb_free(wr);
		client_close(c);
	}
}

static void error_reply(struct kb_buf *out, int code, const char *msg)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	size_t n;

	rp.code = code;
	rp.error = (char *)msg;
	n = keel__vmk__vmk_reply__get_packed_size(&rp);
	kb_buf_init(out, 0);
	if (kb_buf_put_u32be(out, (uint32_t)n) == 0 && kb_buf_reserve(out, n) == 0) {
		keel__vmk__vmk_reply__pack(&rp, out->data + out->len);
		out->len += n;
	}
}

static void work_cb(uv_work_t *w)
{
	struct job *j = w->data;

	vmk_dispatch(j->c->host, j->rq, &j->reply);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct client *c = j->c;

	keel__vmk__vmk_request__free_unpacked(j->rq, NULL);
	if (c->eof || c->closing) {
		kb_buf_close(&j->reply);
		c->busy = false;
		client_close(c);
	} else {
		send_reply(c, &j->reply, false);
	}
	kb_free(j);
}

/* Starts the next complete request, if any and none is in flight. */
static void pump(struct client *c)
{
	const uint8_t *p;
	size_t len;
	int rv;

	if (c->busy || c->closing)
		return;
	rv = kb_frame_next(&c->dec, &p, &len);
	if (rv == 0)
		return;
	if (rv < 0) {
		struct kb_buf out;
		error_reply(&out, rv, "control frame exceeds the size limit");
		c->busy = true;
		send_reply(c, &out, true);
		return;
	}
	Keel__Vmk__VmkRequest *rq = keel__vmk__vmk_request__unpack(NULL, len, p);
	if (rq == NULL) {
		struct kb_buf out;
		error_reply(&out, KB_EPROTO, "control message is not a valid VmkRequest");
		c->busy = true;
		send_reply(c, &out, true);
		return;
	}
	struct job *j = kb_calloc(1, sizeof(*j));
	if (j == NULL) {
		keel__vmk__vmk_request__free_unpacked(rq, NULL);
		client_close(c);
		return;
	}
	j->c = c;
	j->rq = rq;
	j->work.data = j;
	c->busy = true;
	if (uv_queue_work(c->host->loop, &j->work, work_cb, after_work_cb) < 0) {
		keel__vmk__vmk_request__free_unpacked(rq, NULL);
		kb_free(j);
		client_close(c);
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct client *c = s->data;

	if (n < 0) {
		uv_read_stop(s);
		c->eof = true;
		if (!c->busy)
			client_close(c);
		return;
	}
	if (n == 0)
		return;
	if (kb_frame_feed(&c->dec, buf->base, (size_t)n) < 0) {
		struct kb_buf out;
		if (c->busy) {
			client_close(c);
			return;
		}
		error_reply(&out, KB_ETOOBIG, "control frame exceeds the size limit");
		c->busy = true;
		send_reply(c, &out, true);
		return;
	}
	pump(c);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct vmk_host *h = s->data;
	struct client *c;

	if (status < 0)
		return;
	c = kb_calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->host = h;
	kb_frame_decoder_init(&c->dec, REQ_MAX);
	uv_pipe_init(h->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(s, (uv_stream_t *)&c->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
		client_close(c);
}

int vmk_server_start(struct vmk_host *h, struct kb_errmsg *err)
{
	int rv;

	unlink(h->socket_path);
	uv_pipe_init(h->loop, &server, 0);
	server.data = h;
	rv = uv_pipe_bind(&server, h->socket_path);
	if (rv == 0) {
		chmod(h->socket_path, 0600);
		rv = uv_listen((uv_stream_t *)&server, 64, on_connection);
	}
	if (rv < 0) {
		kb_errmsg_setf(err, "control socket %s: %s", h->socket_path, uv_strerror(rv));
		uv_close((uv_handle_t *)&server, NULL);
		return rv;
	}
	return 0;
}

void vmk_server_stop(struct vmk_host *h)
{
	if (!uv_is_closing((uv_handle_t *)&server))
		uv_close((uv_handle_t *)&server, NULL);
	unlink(h->socket_path);
}
