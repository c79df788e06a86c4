/*
 * The control server: lib/ctlserver.c on h->socket_path, on the loop thread. Each request
 * is decoded on the loop and runs on libuv's thread pool (power operations take
 * milliseconds to seconds); its reply is handed back to the server from the after-work
 * callback, on the loop. The server keeps one request per client in flight, so replies
 * come back in order. A frame that is too large or does not decode gets an error reply
 * and the connection is closed.
 */
#include <errno.h>
#include <string.h>

#include "kernel/core/server.h"
#include "lib/ctlserver.h"
#include "lib/heap.h"

#define REQ_MAX (256u << 10)

struct job {
	uv_work_t work;
	struct vmk_host *host;
	struct kb_ctlclient *c; /* a reference, dropped after the reply */
	Keel__Vmk__VmkRequest *rq;
	struct kb_buf reply; /* length-prefixed, as vmk_dispatch packs it */
};

static struct kb_ctlserver server;

static int pack_error(void *arg, int code, const char *msg, struct kb_buf *out)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	size_t n;
	int rv;

	rp.code = code;
	rp.error = (char *)msg;
	n = keel__vmk__vmk_reply__get_packed_size(&rp);
	rv = kb_buf_reserve(out, n);
	if (rv)
		return rv;
	keel__vmk__vmk_reply__pack(&rp, out->data + out->len);
	out->len += n;
	return 0;
}

static void work_cb(uv_work_t *w)
{
	struct job *j = w->data;

	vmk_dispatch(j->host, j->rq, &j->reply);
}

/* vmk_dispatch leaves a partial frame when it runs out of memory. */
static bool reply_complete(const struct kb_buf *b)
{
	const uint8_t *p = b->data;

	return b->len >= 4 &&
	       b->len - 4 == ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;

	keel__vmk__vmk_request__free_unpacked(j->rq, NULL);
	if (reply_complete(&j->reply))
		kb_ctlclient_reply(j->c, j->reply.data + 4, j->reply.len - 4, false);
	else
		kb_ctlclient_close(j->c);
	kb_buf_close(&j->reply);
	kb_ctlclient_unref(j->c);
	kb_free(j);
}

static void on_request(void *arg, struct kb_ctlclient *c, const uint8_t *msg, size_t len)
{
	struct vmk_host *h = arg;
	Keel__Vmk__VmkRequest *rq = keel__vmk__vmk_request__unpack(NULL, len, msg);
	struct job *j;

	if (rq == NULL) {
		kb_ctlclient_error(c, KB_EPROTO, "control message is not a valid VmkRequest", true);
		return;
	}
	j = kb_calloc(1, sizeof(*j));
	if (j == NULL) {
		keel__vmk__vmk_request__free_unpacked(rq, NULL);
		kb_ctlclient_close(c);
		return;
	}
	j->host = h;
	j->c = c;
	j->rq = rq;
	j->work.data = j;
	kb_ctlclient_ref(c);
	if (uv_queue_work(h->loop, &j->work, work_cb, after_work_cb) < 0) {
		keel__vmk__vmk_request__free_unpacked(rq, NULL);
		kb_ctlclient_close(c);
		kb_ctlclient_unref(c);
		kb_free(j);
	}
}

int vmk_server_start(struct vmk_host *h, struct kb_errmsg *err)
{
	static const struct kb_ctlserver_cbs cbs = {
	    .request = on_request,
	    .error = pack_error,
	};

	return kb_ctlserver_start(&server, h->loop, h->socket_path, REQ_MAX, &cbs, h, err);
}

void vmk_server_stop(struct vmk_host *h)
{
	kb_ctlserver_stop(&server);
}
