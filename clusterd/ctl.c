/*
 * clusterd's control socket, DIR/clusterd.sock (mode 0600): keel's way in.
 *
 * Frames (lib/frame.h) carry one ClusterRequest each and get one ClusterReply
 * (proto/cluster.proto). Requests run on the loop thread: none of them blocks. status is
 * answered at once from the node and the replicated state; create answers when its batch
 * was applied (or failed), from the node's callback. One request per client is in flight
 * at a time, so replies come back in order. A frame that is too large or does not decode
 * gets an error reply and the connection is closed.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clusterd/daemon.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/list.h"

#define REQ_MAX (64u << 10)

struct client {
	struct kb_list link;
	uv_pipe_t pipe;
	struct cd_daemon *d;
	struct kb_frame_decoder dec;
	bool busy; /* a request is being served or its reply written */
	bool eof;  /* the peer is gone: close once not busy */
	bool closing;
};

struct write_req {
	uv_write_t w;
	struct kb_buf data;
	struct client *c;
	bool close_after;
};

static uv_pipe_t server;
static struct kb_list clients = KB_LIST_INIT(clients);

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
		kb_list_del(&c->link);
		cd_node_create_forget(c->d, c);
		uv_close((uv_handle_t *)&c->pipe, on_client_closed);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 << 10];

	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void pump(struct client *c);

static void on_written(uv_write_t *w, int status)
{
	struct write_req *wr = (struct write_req *)w;
	struct client *c = wr->c;
	bool close_after = wr->close_after || status < 0 || c->eof;

	kb_buf_close(&wr->data);
	kb_free(wr);
	c->busy = false;
	if (close_after) {
		client_close(c);
		return;
	}
	pump(c);
}

/* Packs rp as one frame and writes it; the client stays busy until it is written. */
static void send_reply(struct client *c, const Keel__Cluster__ClusterReply *rp, bool close_after)
{
	size_t n = keel__cluster__cluster_reply__get_packed_size(rp);
	struct write_req *wr;
	uv_buf_t b;

	if (c->closing)
		return;
	wr = kb_calloc(1, sizeof(*wr));
	if (!wr) {
		client_close(c);
		return;
	}
	kb_buf_init(&wr->data, 0);
	if (kb_buf_put_u32be(&wr->data, (uint32_t)n) || kb_buf_reserve(&wr->data, n)) {
		kb_buf_close(&wr->data);
		kb_free(wr);
		client_close(c);
		return;
	}
	keel__cluster__cluster_reply__pack(rp, wr->data.data + wr->data.len);
	wr->data.len += n;
	wr->c = c;
	wr->close_after = close_after;
	b = uv_buf_init((char *)wr->data.data, (unsigned)wr->data.len);
	if (uv_write(&wr->w, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
		kb_buf_close(&wr->data);
		kb_free(wr);
		client_close(c);
	}
}

static void error_reply(struct client *c, int code, const char *msg, bool close_after)
{
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;

	rp.code = code;
	rp.error = (char *)msg;
	send_reply(c, &rp, close_after);
}

/* ---- status --------------------------------------------------------------------------- */

static void status_reply(struct client *c)
{
	struct cd_daemon *d = c->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	Keel__Cluster__ClusterStatus st = KEEL__CLUSTER__CLUSTER_STATUS__INIT;
	unsigned n = cd_state_n_hosts(s);
	Keel__Cluster__ClusterHostStatus *hs = NULL, **hp = NULL;
	const char *laddr = NULL;
	raft_id leader = 0;

	if (n) {
		hs = kb_calloc(n, sizeof(*hs));
		hp = kb_calloc(n, sizeof(*hp));
		if (!hs || !hp) {
			kb_free(hs);
			kb_free(hp);
			error_reply(c, -ENOMEM, "out of memory", false);
			return;
		}
	}
	st.name = (char *)(s->config.set ? s->config.name : "");
	st.cluster_id = (char *)(s->config.set ? s->config.cluster_id : "");
	st.node_id = d->id;
	st.node_address = d->address;
	st.node_state = (char *)cd_node_state_name(d);
	if (d->phase == CD_PHASE_RUNNING) {
		raft_leader(&d->raft, &leader, &laddr);
		st.leader_id = leader;
		st.leader_address = (char *)(laddr ? laddr : "");
		st.node_role = cd_node_role_of(d, d->id);
		st.commit_index = d->raft.commit_index;
		st.applied_index = raft_last_applied(&d->raft);
	} else {
		st.leader_address = "";
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cd_host *h = cd_state_host_at(s, i);

		keel__cluster__cluster_host_status__init(&hs[i]);
		hs[i].id = h->id;
		hs[i].name = (char *)h->name;
		hs[i].vmk0 = (char *)h->vmk0;
		hs[i].state = h->state;
		hs[i].role = h->role;
		hp[i] = &hs[i];
	}
	st.n_hosts = n;
	st.hosts = hp;
	rp.status = &st;
	send_reply(c, &rp, false);
	kb_free(hs);
	kb_free(hp);
}

/* ---- create --------------------------------------------------------------------------- */

static void on_created(struct cd_daemon *d, void *arg, int code, const char *error)
{
	struct client *c = arg;

	if (code) {
		error_reply(c, code, error, false);
		return;
	}
	status_reply(c);
}

static void serve(struct client *c, const Keel__Cluster__ClusterRequest *rq)
{
	struct kb_errmsg e = {{0}};
	int rv;

	switch (rq->req_case) {
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS:
		status_reply(c);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CREATE:
		kb_log(c->d->log, KB_LOG_INFO, "request: create %s", rq->create->name);
		rv = cd_node_create(c->d, rq->create->name, on_created, c, &e);
		if (rv)
			error_reply(c, rv, e.msg, false);
		return;
	default:
		error_reply(c, KB_ENOTSUP, "unknown ClusterRequest", false);
		return;
	}
}

/* Starts the next complete request, if any and none is in flight. */
static void pump(struct client *c)
{
	Keel__Cluster__ClusterRequest *rq;
	const uint8_t *p;
	size_t len;
	int rv;

	if (c->busy || c->closing)
		return;
	rv = kb_frame_next(&c->dec, &p, &len);
	if (rv == 0)
		return;
	c->busy = true;
	if (rv < 0) {
		error_reply(c, rv, "control frame exceeds the size limit", true);
		return;
	}
	rq = keel__cluster__cluster_request__unpack(NULL, len, p);
	if (!rq) {
		error_reply(c, KB_EPROTO, "control message is not a valid ClusterRequest", true);
		return;
	}
	serve(c, rq);
	keel__cluster__cluster_request__free_unpacked(rq, NULL);
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
		if (c->busy) {
			client_close(c);
			return;
		}
		c->busy = true;
		error_reply(c, KB_ETOOBIG, "control frame exceeds the size limit", true);
		return;
	}
	pump(c);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct cd_daemon *d = s->data;
	struct client *c;

	if (status < 0)
		return;
	c = kb_calloc(1, sizeof(*c));
	if (!c)
		return;
	c->d = d;
	kb_frame_decoder_init(&c->dec, REQ_MAX);
	kb_list_add_tail(&clients, &c->link);
	uv_pipe_init(d->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(s, (uv_stream_t *)&c->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
		client_close(c);
}

int cd_ctl_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	int rv;

	unlink(d->socket_path);
	uv_pipe_init(d->loop, &server, 0);
	server.data = d;
	rv = uv_pipe_bind(&server, d->socket_path);
	if (rv == 0) {
		chmod(d->socket_path, 0600);
		rv = uv_listen((uv_stream_t *)&server, 64, on_connection);
	}
	if (rv < 0) {
		kb_errmsg_setf(e, "control socket %s: %s", d->socket_path, uv_strerror(rv));
		uv_close((uv_handle_t *)&server, NULL);
		return rv;
	}
	return 0;
}

void cd_ctl_stop(struct cd_daemon *d)
{
	while (!kb_list_empty(&clients))
		client_close(kb_list_entry(clients.next, struct client, link));
	if (!uv_is_closing((uv_handle_t *)&server))
		uv_close((uv_handle_t *)&server, NULL);
	unlink(d->socket_path);
}
