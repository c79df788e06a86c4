/*
 * The cluster through the Vim API (hostagent/vim_cluster.h).
 *
 * Happy path: on the loop, authorize and pack one ClusterRequest; on a worker, connect to
 * DIR/clusterd.sock, send it as one frame and read one ClusterReply (lib/frame.h); on the
 * loop, map the reply to the Vim message. Reads (status, events, join token) answer the
 * call then. The four operations (create, join, leave, remove-host) answer at once with a
 * Task (hostagent/vim_tasks.h) and end it when clusterd answers: success with the
 * cluster's id, or error with clusterd's message.
 *
 * An operation missing what it needs (a name; an address and a token; a host) is
 * INVALID_ARGUMENT once the caller is authorized, and no task is made.
 *
 * Failure modes: no clusterd, or no reply within the timeout (a join waits for the other
 * host, so operations get longer): UNAVAILABLE, or the task fails saying so. A reply with
 * a code: FAILED_PRECONDITION with clusterd's text. A client gone before the reply: the
 * reply is dropped (an operation still runs to its end and its task records it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_cluster.h"
#include "hostagent/vim_tasks.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "vim.pb-c.h"

#define REPLY_MAX      (64u << 20)
#define READ_TIMEOUT_S 10  /* status, events, join token */
#define OP_TIMEOUT_S   120 /* create, join, leave, remove-host */

static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

struct cdreq;
typedef void (*answer_cb)(struct cdreq *r);

struct cdreq {
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call; /* reads: NULL once the client went away */
	struct hd_task *task; /* operations: our reference */
	answer_cb answer;     /* reads: maps rp into the call's reply */
	unsigned timeout_s;
	struct kb_buf packed;		 /* the ClusterRequest */
	Keel__Cluster__ClusterReply *rp; /* NULL: clusterd did not answer */
	char error[KB_ERRMSG_SIZE];
};

/* ---- the worker: one request, one reply ---------------------------------------------------- */

static void cd_work(uv_work_t *w)
{
	struct cdreq *r = w->data;
	struct timeval tv = {.tv_sec = r->timeout_s};
	struct kb_buf in;
	int fd = kb_unix_connect(r->v->cd_sock);
	int rv;

	if (fd < 0) {
		snprintf(r->error, sizeof(r->error), "clusterd at %s does not answer: %s",
			 r->v->cd_sock, kb_strerror(fd));
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	kb_buf_init(&in, 0);
	rv = kb_frame_send(fd, r->packed.data, r->packed.len);
	if (rv == 0)
		rv = kb_frame_recv(fd, &in, REPLY_MAX);
	if (rv == 0) {
		r->rp = keel__cluster__cluster_reply__unpack(NULL, in.len, in.data);
		if (!r->rp)
			rv = KB_EPROTO;
	}
	if (rv)
		snprintf(r->error, sizeof(r->error), "clusterd at %s: %s", r->v->cd_sock,
			 rv == -EAGAIN || rv == -EWOULDBLOCK ? "no answer in time"
							     : kb_strerror(rv));
	kb_buf_close(&in);
	close(fd);
}

static void cdreq_free(struct cdreq *r)
{
	if (r->rp)
		keel__cluster__cluster_reply__free_unpacked(r->rp, NULL);
	if (r->task)
		hd_task_release(r->task);
	kb_buf_close(&r->packed);
	kb_free(r);
}

static void cd_cancel(struct hd_call *call, void *arg)
{
	struct cdreq *r = arg;

	(void)call;
	r->call = NULL;
}

static struct cdreq *cdreq_new(struct hd_call *call, const Keel__Cluster__ClusterRequest *rq,
			       unsigned timeout_s)
{
	struct cdreq *r = kb_calloc(1, sizeof(*r));
	size_t n = keel__cluster__cluster_request__get_packed_size(rq);

	if (!r)
		goto nomem;
	kb_buf_init(&r->packed, 0);
	if (kb_buf_reserve(&r->packed, n) != 0)
		goto nomem;
	keel__cluster__cluster_request__pack(rq, r->packed.data);
	r->packed.len = n;
	r->v = hd_call_server_data(call);
	r->timeout_s = timeout_s;
	r->work.data = r;
	return r;
nomem:
	if (r)
		cdreq_free(r);
	hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
	return NULL;
}

/* ---- reads ------------------------------------------------------------------------------- */

static void read_done(uv_work_t *w, int status)
{
	struct cdreq *r = w->data;

	if (!r->call)
		goto out;
	hd_call_on_cancel(r->call, NULL, NULL);
	if (status || !r->rp)
		hd_call_error(r->call, HD_UNAVAILABLE, "%s",
			      r->error[0] ? r->error : "clusterd could not be asked");
	else if (r->rp->code)
		hd_call_error(r->call, HD_FAILED_PRECONDITION, "clusterd: %s",
			      r->rp->error && r->rp->error[0] ? r->rp->error
							      : kb_strerror(r->rp->code));
	else
		r->answer(r);
out:
	cdreq_free(r);
}

/* Authorizes, then asks clusterd on a worker and answers with answer(). */
static void cd_read(struct hd_call *call, const Keel__Cluster__ClusterRequest *rq,
		    const char *privilege, answer_cb answer)
{
	struct hd_vim *v = hd_call_server_data(call);
	struct cdreq *r;

	if (!hd_vim_authorize(call, root_path, 1, privilege))
		return;
	r = cdreq_new(call, rq, READ_TIMEOUT_S);
	if (!r)
		return;
	r->call = call;
	r->answer = answer;
	hd_call_on_cancel(call, cd_cancel, r);
	if (uv_queue_work(v->loop, &r->work, cd_work, read_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		cdreq_free(r);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
	}
}

static const char *host_state(int s)
{
	static const char *const names[] = {"",	      "connected", "unreachable", "partitioned",
					    "failed", "isolated",  "maintenance", "left"};

	return s >= 0 && s < 8 ? names[s] : "";
}

static const char *raft_role(int r)
{
	static const char *const names[] = {"", "voter", "standby", "spare"};

	return r >= 0 && r < 4 ? names[r] : "";
}

static const char *isolation_word(int i)
{
	return i == 3 ? "leave-powered-on" : i == 2 ? "shutdown" : "power-off";
}

static void answer_status(struct cdreq *r)
{
	const Keel__Cluster__ClusterStatus *cs = r->rp->status;
	Keel__Vim__ClusterStatus st = KEEL__VIM__CLUSTER_STATUS__INIT;
	Keel__Vim__ClusterObject co = KEEL__VIM__CLUSTER_OBJECT__INIT;
	size_t nh = cs && cs->name && cs->name[0] ? cs->n_hosts : 0;
	Keel__Vim__HostObject *ho = kb_calloc(nh ? nh : 1, sizeof(*ho));
	Keel__Vim__HostObject **hp = kb_calloc(nh ? nh : 1, sizeof(*hp));
	char(*ids)[32] = kb_calloc(nh + 1, sizeof(*ids)); /* the hosts', then the leader's */

	if (!ho || !hp || !ids) {
		hd_call_error(r->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	if (cs && cs->name && cs->name[0]) {
		char *leader = ids[nh];
		char cid[80];

		for (size_t i = 0; i < nh; i++) {
			const Keel__Cluster__ClusterHostStatus *h = cs->hosts[i];

			keel__vim__host_object__init(&ho[i]);
			snprintf(ids[i], sizeof(ids[i]), "host-%" PRIu64, h->id);
			ho[i].id = ids[i];
			ho[i].name = h->name;
			ho[i].state = (char *)host_state(h->state);
			ho[i].raft_role = (char *)raft_role(h->raft_role);
			ho[i].vmk0 = h->vmk0;
			ho[i].maintenance =
			    h->maintenance || h->state == KEEL__CLUSTER__HOST_STATE__HOST_MAINTENANCE;
			hp[i] = &ho[i];
		}
		snprintf(cid, sizeof(cid), "cluster-%.64s", cs->cluster_id ? cs->cluster_id : "");
		if (cs->leader_id)
			snprintf(leader, 32, "host-%" PRIu64, cs->leader_id);
		co.id = cid;
		co.name = cs->name;
		co.leader = leader;
		co.failure_timeout_ms = cs->failure_timeout_ms;
		co.isolation_response = (char *)isolation_word(cs->isolation_response);
		st.cluster = &co;
		st.n_hosts = nh;
		st.hosts = hp;
		st.isolated = cs->isolated;
		hd_call_reply(r->call, &st.base);
		goto out;
	}
	st.isolated = cs && cs->isolated;
	hd_call_reply(r->call, &st.base);
out:
	kb_free(ho);
	kb_free(hp);
	kb_free(ids);
}

void hd_vim_cluster_get_status(struct hd_call *call, const ProtobufCMessage *req)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest st = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;

	(void)req;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &st;
	cd_read(call, &rq, "System.Read", answer_status);
}

static const char *event_kind(int k)
{
	static const char *const names[] = {
	    "",		 "cluster-config", "host-added", "host-state",
	    "host-role", "host-removed",   "vm",	 "note",
	    "ha",	 "migration",	   "ft"};

	return k >= 0 && k < 11 ? names[k] : "";
}

static void answer_events(struct cdreq *r)
{
	Keel__Vim__EventList el = KEEL__VIM__EVENT_LIST__INIT;
	size_t n = r->rp->n_events;
	Keel__Vim__Event *ev = kb_calloc(n ? n : 1, sizeof(*ev));
	Keel__Vim__Event **ep = kb_calloc(n ? n : 1, sizeof(*ep));
	char(*hosts)[32] = kb_calloc(n ? n : 1, sizeof(*hosts));
	char(*vms)[80] = kb_calloc(n ? n : 1, sizeof(*vms));

	if (!ev || !ep || !hosts || !vms) {
		hd_call_error(r->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const Keel__Cluster__Event *e = r->rp->events[i];

		keel__vim__event__init(&ev[i]);
		ev[i].seq = e->seq;
		ev[i].at_ms = e->at_ms;
		ev[i].kind = (char *)event_kind(e->kind);
		if (e->host)
			snprintf(hosts[i], sizeof(hosts[i]), "host-%" PRIu64, e->host);
		ev[i].host = hosts[i];
		if (e->vm && e->vm[0])
			snprintf(vms[i], sizeof(vms[i]), "vm-%.64s", e->vm);
		ev[i].vm = vms[i];
		ev[i].message = e->message;
		ep[i] = &ev[i];
	}
	el.n_events = n;
	el.events = ep;
	hd_call_reply(r->call, &el.base);
out:
	kb_free(ev);
	kb_free(ep);
	kb_free(hosts);
	kb_free(vms);
}

void hd_vim_cluster_events(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__EventsRequest *er = (const Keel__Vim__EventsRequest *)req;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest ev = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;

	ev.since = er->since;
	ev.max = er->max;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &ev;
	cd_read(call, &rq, "System.Read", answer_events);
}

static void answer_token(struct cdreq *r)
{
	Keel__Vim__JoinTokenReply rp = KEEL__VIM__JOIN_TOKEN_REPLY__INIT;

	rp.token = r->rp->token ? r->rp->token : "";
	rp.expires_s = r->rp->token_expires_s;
	hd_call_reply(r->call, &rp.base);
}

void hd_vim_cluster_join_token(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__JoinTokenRequest *tr = (const Keel__Vim__JoinTokenRequest *)req;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterJoinTokenRequest jt = KEEL__CLUSTER__CLUSTER_JOIN_TOKEN_REQUEST__INIT;

	jt.ttl_s = tr->ttl_s;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_JOIN_TOKEN;
	rq.join_token = &jt;
	cd_read(call, &rq, "Host.Inventory.ManageCluster", answer_token);
}

/* ---- operations: a Task each ----------------------------------------------------------------- */

static void op_done(uv_work_t *w, int status)
{
	struct cdreq *r = w->data;
	struct hd_tasks *t = hd_vim_tasks(r->v);
	const Keel__Cluster__ClusterStatus *cs = r->rp ? r->rp->status : NULL;

	if (!t)
		goto out;
	if (status || !r->rp) {
		hd_task_fail(t, r->task, "%s",
			     r->error[0] ? r->error : "clusterd could not be asked");
	} else if (r->rp->code) {
		hd_task_fail(t, r->task, "clusterd: %s",
			     r->rp->error && r->rp->error[0] ? r->rp->error
							     : kb_strerror(r->rp->code));
	} else if (cs && cs->cluster_id && cs->cluster_id[0]) {
		char result[128];

		snprintf(result, sizeof(result), "cluster-%s", cs->cluster_id);
		hd_task_succeed(t, r->task, result);
	} else {
		hd_task_succeed(t, r->task, NULL);
	}
	kb_log(r->v->log, KB_LOG_INFO, "%s %s of %s: %s%s%s", r->task->id, r->task->kind,
	       r->task->user, hd_task_state_name(r->task->state), r->task->error[0] ? ": " : "",
	       r->task->error);
out:
	cdreq_free(r);
}

/* Authorizes, records a task, answers it, then runs rq against clusterd on a worker. An
 * authorized request that is not valid (invalid: why, else NULL) is INVALID_ARGUMENT. */
static void cd_op(struct hd_call *call, const char *kind, const char *target,
		  const Keel__Cluster__ClusterRequest *rq, const char *invalid)
{
	static const char privilege[] = "Host.Inventory.ManageCluster";
	struct hd_vim *v = hd_call_server_data(call);
	const char *user = hd_vim_authorize(call, root_path, 1, privilege);
	struct hd_tasks *t;
	Keel__Vim__Task tp = KEEL__VIM__TASK__INIT;
	struct cdreq *r;
	bool queued;

	if (!user)
		return;
	if (invalid) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "%s", invalid);
		return;
	}
	t = hd_vim_tasks(v);
	if (!t) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	r = cdreq_new(call, rq, OP_TIMEOUT_S);
	if (!r)
		return;
	if (hd_tasks_add(t, kind, target, user, &r->task) != 0) {
		cdreq_free(r);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	r->task->privilege = privilege;
	/* Started at once: clusterd's operations cannot be taken back once asked for. */
	hd_task_start(t, r->task);
	queued = uv_queue_work(v->loop, &r->work, cd_work, op_done) == 0;
	if (!queued)
		hd_task_fail(t, r->task, "no worker to run it");
	kb_log(v->log, KB_LOG_INFO, "%s %s on %s by %s", r->task->id, kind, target, user);
	hd_task_to_pb(r->task, &tp);
	hd_call_reply(call, &tp.base);
	if (!queued)
		cdreq_free(r);
}

static void self_target(struct hd_vim *v, char *out, size_t size)
{
	snprintf(out, size, "host-%" PRIu64, v->host_id);
}

void hd_vim_cluster_create(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__ClusterCreateRequest *cr = (const Keel__Vim__ClusterCreateRequest *)req;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterCreate c = KEEL__CLUSTER__CLUSTER_CREATE__INIT;
	char target[32];

	self_target(hd_call_server_data(call), target, sizeof(target));
	c.name = cr->name;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CREATE;
	rq.create = &c;
	cd_op(call, "ClusterCreate", target, &rq,
	      cr->name && cr->name[0] ? NULL : "the cluster's name is required");
}

void hd_vim_cluster_join(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__ClusterJoinRequest *jr = (const Keel__Vim__ClusterJoinRequest *)req;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterJoin j = KEEL__CLUSTER__CLUSTER_JOIN__INIT;
	char target[32];

	self_target(hd_call_server_data(call), target, sizeof(target));
	j.address = jr->address;
	j.token = jr->token;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_JOIN;
	rq.join = &j;
	cd_op(call, "ClusterJoin", target, &rq,
	      jr->address && jr->address[0] && jr->token && jr->token[0]
		  ? NULL
		  : "the address of a member and a join token are required");
}

void hd_vim_cluster_leave(struct hd_call *call, const ProtobufCMessage *req)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterLeave l = KEEL__CLUSTER__CLUSTER_LEAVE__INIT;
	char target[32];

	(void)req;
	self_target(hd_call_server_data(call), target, sizeof(target));
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_LEAVE;
	rq.leave = &l;
	cd_op(call, "ClusterLeave", target, &rq, NULL);
}

static bool all_digits(const char *s)
{
	return s[0] && strspn(s, "0123456789") == strlen(s);
}

void hd_vim_cluster_remove_host(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__RemoveHostRequest *hr = (const Keel__Vim__RemoveHostRequest *)req;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRemoveHost rh = KEEL__CLUSTER__CLUSTER_REMOVE_HOST__INIT;
	const char *host = hr->host ? hr->host : "";
	char target[HOSTD_AUTH_ENTITY_MAX + 1];

	/* clusterd takes a name or a decimal id; the API's ids are "host-<id>" (a name that
	 * merely starts with "host-" is passed on as it is). The task's target is the API's
	 * id for an id, else the name. */
	if (strncmp(host, "host-", 5) == 0 && all_digits(host + 5))
		host += 5;
	if (all_digits(host))
		snprintf(target, sizeof(target), "host-%s", host);
	else
		snprintf(target, sizeof(target), "%s", host);
	rh.host = (char *)host;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_REMOVE_HOST;
	rq.remove_host = &rh;
	cd_op(call, "ClusterRemoveHost", target, &rq,
	      host[0] ? NULL : "the host to remove is required");
}
