/*
 * clusterd's control socket, DIR/clusterd.sock (mode 0600): keel's way in, served by
 * lib/ctlserver.c on the loop thread.
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

#include "clusterd/daemon.h"
#include "lib/buf.h"
#include "lib/ctlserver.h"
#include "lib/heap.h"

#define REQ_MAX (64u << 10)

static struct kb_ctlserver server;

/* Appends rp, packed, to out. 0, -ENOMEM or KB_ETOOBIG. */
static int pack_reply(const Keel__Cluster__ClusterReply *rp, struct kb_buf *out)
{
	size_t n = keel__cluster__cluster_reply__get_packed_size(rp);
	int rv = kb_buf_reserve(out, n);

	if (rv)
		return rv;
	keel__cluster__cluster_reply__pack(rp, out->data + out->len);
	out->len += n;
	return 0;
}

static int pack_error(void *arg, int code, const char *msg, struct kb_buf *out)
{
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;

	rp.code = code;
	rp.error = (char *)msg;
	return pack_reply(&rp, out);
}

/* Packs rp as one frame and hands it to the server, which ends the request in flight. */
static void send_reply(struct kb_ctlclient *c, const Keel__Cluster__ClusterReply *rp,
		       bool close_after)
{
	struct kb_buf b;

	kb_buf_init(&b, 0);
	if (pack_reply(rp, &b))
		kb_ctlclient_close(c);
	else
		kb_ctlclient_reply(c, b.data, b.len, close_after);
	kb_buf_close(&b);
}

static void error_reply(struct kb_ctlclient *c, int code, const char *msg, bool close_after)
{
	kb_ctlclient_error(c, code, msg, close_after);
}

/* ---- status --------------------------------------------------------------------------- */

static void status_reply(struct cd_daemon *d, struct kb_ctlclient *c)
{
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
	struct kb_ctlclient *c = arg;

	if (code) {
		error_reply(c, code, error, false);
		return;
	}
	status_reply(d, c);
}

static void serve(struct cd_daemon *d, struct kb_ctlclient *c,
		  const Keel__Cluster__ClusterRequest *rq)
{
	struct kb_errmsg e = {{0}};
	int rv;

	switch (rq->req_case) {
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS:
		status_reply(d, c);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CREATE:
		kb_log(d->log, KB_LOG_INFO, "request: create %s", rq->create->name);
		rv = cd_node_create(d, rq->create->name, on_created, c, &e);
		if (rv)
			error_reply(c, rv, e.msg, false);
		return;
	default:
		error_reply(c, KB_ENOTSUP, "unknown ClusterRequest", false);
		return;
	}
}

static void on_request(void *arg, struct kb_ctlclient *c, const uint8_t *msg, size_t len)
{
	struct cd_daemon *d = arg;
	Keel__Cluster__ClusterRequest *rq = keel__cluster__cluster_request__unpack(NULL, len, msg);

	if (!rq) {
		error_reply(c, KB_EPROTO, "control message is not a valid ClusterRequest", true);
		return;
	}
	serve(d, c, rq);
	keel__cluster__cluster_request__free_unpacked(rq, NULL);
}

/* A create still waiting on the node must not call back into a closed client. */
static void on_close(void *arg, struct kb_ctlclient *c)
{
	cd_node_create_forget(arg, c);
}

int cd_ctl_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	static const struct kb_ctlserver_cbs cbs = {
	    .request = on_request,
	    .error = pack_error,
	    .close = on_close,
	};

	return kb_ctlserver_start(&server, d->loop, d->socket_path, REQ_MAX, &cbs, d, e);
}

void cd_ctl_stop(struct cd_daemon *d)
{
	kb_ctlserver_stop(&server);
}
