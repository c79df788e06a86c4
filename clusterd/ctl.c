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
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "clusterd/hbclock.h"
#include "lib/buf.h"
#include "lib/ctlserver.h"
#include "lib/heap.h"

#define REQ_MAX (CD_AUTH_BLOB_MAX + (64u << 10)) /* auth_set carries the store */

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
	Keel__Cluster__ClusterVmStatus *vs = NULL, **vp = NULL;
	Keel__Cluster__Ft *fts = NULL;
	char **after = NULL; /* CD_RESTART_AFTER_MAX per VM */
	unsigned nv;
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
		hs[i].raft_role = cd_node_role_of(d, h->id);
		cd_hbnet_ages(d, h->id, &hs[i].net_hb_age_ms, &hs[i].ds_hb_age_ms);
		hs[i].n_vms = cd_state_n_vms_owned(s, h->id);
		hs[i].last_change_ms = h->last_change_ms;
		hs[i].maintenance = h->maintenance;
		hs[i].clock_known = cd_hbnet_clock(d, h->id, &hs[i].clock_offset_us);
		hs[i].clock_warn = hs[i].clock_known &&
				   (hs[i].clock_offset_us > CD_CLOCK_WARN_MS * 1000ll ||
				    hs[i].clock_offset_us < -CD_CLOCK_WARN_MS * 1000ll);
		hp[i] = &hs[i];
	}
	st.isolated = cd_hbnet_isolated(d, &st.leader_contact_age_ms);
	st.clock_offset_warn_ms = CD_CLOCK_WARN_MS;
	st.failure_timeout_ms = s->config.set ? s->config.failure_timeout_ms : 0;
	st.isolation_response = s->config.set ? s->config.isolation_response : 0;
	st.ha_enabled = s->config.set && !s->config.ha_disabled;
	st.admission_failures = s->config.set ? s->config.admission_failures : 0;
	st.admission_percent = s->config.set ? s->config.admission_percent : 0;
	st.n_hosts = n;
	st.hosts = hp;
	nv = cd_state_n_vms(s);
	if (nv) {
		vs = kb_calloc(nv, sizeof(*vs));
		vp = kb_calloc(nv, sizeof(*vp));
		fts = kb_calloc(nv, sizeof(*fts));
		after = kb_calloc((size_t)nv * CD_RESTART_AFTER_MAX, sizeof(*after));
		if (!vs || !vp || !after || !fts)
			nv = 0;
	}
	for (unsigned i = 0; i < nv; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, i);
		const struct cd_host *o = cd_state_host(s, vm->owner);

		keel__cluster__cluster_vm_status__init(&vs[i]);
		vs[i].uuid = (char *)vm->uuid;
		vs[i].name = (char *)vm->name;
		vs[i].owner = vm->owner;
		vs[i].owner_name = (char *)(o ? o->name : "");
		vs[i].epoch = vm->epoch;
		vs[i].desired_power = vm->desired_power;
		vs[i].vmx_path = (char *)vm->vmx_path;
		vs[i].mem_mib = vm->mem_mib;
		vs[i].cpu_mhz = vm->cpu_mhz;
		vs[i].priority = vm->priority;
		vs[i].n_restart_after = vm->n_restart_after;
		vs[i].restart_after = after + (size_t)i * CD_RESTART_AFTER_MAX;
		for (unsigned j = 0; j < vm->n_restart_after; j++)
			vs[i].restart_after[j] = (char *)vm->restart_after[j];
		{
			const struct cd_op *op = cd_state_op_for_vm(s, vm->uuid);
			const struct cd_host *to = op ? cd_state_host(s, op->destination) : NULL;

			if (op && op->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE) {
				vs[i].migration = op->id;
				vs[i].migrating_to = op->destination;
				vs[i].migrating_to_name = (char *)(to ? to->name : "");
			}
		}
		if (CD_FT_ON(vm) || vm->ft.generation) {
			const struct cd_host *sec = cd_state_host(s, vm->ft.secondary);

			cd__ft_to_pb(&vm->ft, &fts[i]);
			vs[i].ft = &fts[i];
			vs[i].ft_secondary_name = (char *)(sec ? sec->name : "");
		}
		vp[i] = &vs[i];
	}
	st.n_vms = nv;
	st.vms = vp;
	rp.status = &st;
	send_reply(c, &rp, false);
	kb_free(hs);
	kb_free(hp);
	kb_free(vs);
	kb_free(vp);
	kb_free(fts);
	kb_free(after);
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

/* ---- join-token, join, leave, remove-host ---------------------------------------------- */

/* After a join the reply waits (up to JOIN_WAIT_MS) until this node has applied its own
 * record, so the status it carries shows the cluster. One join runs at a time. */
#define JOIN_WAIT_MS 5000
static struct {
	bool on;
	uv_timer_t timer;
	struct cd_daemon *d;
	struct kb_ctlclient *c;
	uint64_t deadline;
} join_wait;

static void on_join_wait(uv_timer_t *t)
{
	struct cd_daemon *d = join_wait.d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);

	if (join_wait.c && !cd_state_host(s, d->id) && uv_now(d->loop) < join_wait.deadline)
		return;
	uv_timer_stop(t);
	join_wait.on = false;
	if (join_wait.c)
		status_reply(d, join_wait.c);
	join_wait.c = NULL;
}

static void on_client_done(struct cd_daemon *d, void *arg, const struct cd_client_result *r)
{
	struct kb_ctlclient *c = arg;
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;

	if (r->code == 0 && r->joined) {
		if (!join_wait.d) {
			uv_timer_init(d->loop, &join_wait.timer);
			join_wait.d = d;
		}
		join_wait.on = true;
		join_wait.c = c;
		join_wait.deadline = uv_now(d->loop) + JOIN_WAIT_MS;
		uv_timer_start(&join_wait.timer, on_join_wait, 50, 50);
		return;
	}
	if (r->code) {
		error_reply(c, r->code, r->error, false);
		return;
	}
	if (r->token[0]) {
		rp.token = (char *)r->token;
		rp.token_expires_s = r->token_expires_s;
		send_reply(c, &rp, false);
		return;
	}
	status_reply(d, c);
}

static void on_bench_done(struct cd_daemon *d, void *arg, const struct cd_bench_result *r)
{
	struct kb_ctlclient *c = arg;
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	Keel__Cluster__BenchResult br = KEEL__CLUSTER__BENCH_RESULT__INIT;

	(void)d;
	if (r->failed) {
		error_reply(c, KB_ESTATE, "proposals failed (leadership lost?)", false);
		return;
	}
	br.count = r->count;
	br.p50_ms = r->p50_ms;
	br.p99_ms = r->p99_ms;
	br.max_ms = r->max_ms;
	br.ops_s = r->ops_s;
	rp.bench = &br;
	send_reply(c, &rp, false);
}

/* ---- VM operations (from vmkernel) ------------------------------------------------------ */

/* A request waiting for the cluster; its client may go away meanwhile. */
struct waiter {
	struct kb_ctlclient *c; /* NULL once the client is gone */
	struct waiter *next;
};
static struct waiter *waiters;

static struct waiter *waiter_new(struct kb_ctlclient *c)
{
	struct waiter *w = kb_calloc(1, sizeof(*w));

	if (w) {
		w->c = c;
		w->next = waiters;
		waiters = w;
	}
	return w;
}

static void waiter_free(struct waiter *w)
{
	for (struct waiter **p = &waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	kb_free(w);
}

static void on_vm_done(struct cd_daemon *d, void *arg, int code, const char *error,
		       const Keel__Cluster__ClusterVmReply *vr)
{
	struct waiter *w = arg;
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;

	(void)d;
	if (w->c) {
		rp.code = code;
		rp.error = (char *)(error ? error : "");
		rp.vm = (Keel__Cluster__ClusterVmReply *)vr;
		send_reply(w->c, &rp, false);
	}
	waiter_free(w);
}

static void vm_request(struct cd_daemon *d, struct kb_ctlclient *c,
		       const Keel__Cluster__ClusterVmRequest *rq)
{
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	Keel__Cluster__ClusterVmReply vr = KEEL__CLUSTER__CLUSTER_VM_REPLY__INIT;
	struct kb_errmsg e = {{0}};
	struct waiter *w;
	int rv;

	if (d->phase != CD_PHASE_RUNNING || !d->ca) {
		/* In no cluster: vmkernel goes on by itself. */
		vr.member = false;
		vr.host_id = d->id;
		vr.owner_name = "";
		rp.vm = &vr;
		send_reply(c, &rp, false);
		return;
	}
	w = waiter_new(c);
	if (!w) {
		error_reply(c, -ENOMEM, "out of memory", false);
		return;
	}
	rv = cd_node_vm_request(d, rq, on_vm_done, w, &e);
	if (rv) {
		waiter_free(w);
		error_reply(c, rv, e.msg, false);
	}
}

/* ---- maintenance and the auth store ------------------------------------------------------- */

static void on_member_done(struct cd_daemon *d, void *arg, int code, const char *error,
			   const Keel__Cluster__AuthDb *auth)
{
	struct waiter *w = arg;
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;

	(void)d;
	if (w->c) {
		/* Committed through the leader; this host may apply it a moment later, so the
		 * reply carries no status (maintenance) or only the new version (auth_set). */
		if (code) {
			error_reply(w->c, code, error ? error : "refused", false);
		} else {
			rp.auth = (Keel__Cluster__AuthDb *)auth;
			rp.member = true;
			send_reply(w->c, &rp, false);
		}
	}
	waiter_free(w);
}

static void maintenance_request(struct cd_daemon *d, struct kb_ctlclient *c,
				const Keel__Cluster__ClusterMaintenance *rq)
{
	struct kb_errmsg e = {{0}};
	struct waiter *w = waiter_new(c);
	int rv;

	if (!w) {
		error_reply(c, -ENOMEM, "out of memory", false);
		return;
	}
	kb_log(d->log, KB_LOG_INFO, "request: host %s %s maintenance mode",
	       rq->host && rq->host[0] ? rq->host : "(this host)", rq->enter ? "enters" : "leaves");
	rv = cd_node_maintenance(d, rq->host, rq->enter, on_member_done, w, &e);
	if (rv) {
		waiter_free(w);
		error_reply(c, rv, e.msg, false);
	}
}

static void vm_ha_request(struct cd_daemon *d, struct kb_ctlclient *c,
			  const Keel__Cluster__ClusterVmHa *rq)
{
	struct kb_errmsg e = {{0}};
	struct waiter *w = waiter_new(c);
	int rv;

	if (!w) {
		error_reply(c, -ENOMEM, "out of memory", false);
		return;
	}
	kb_log(d->log, KB_LOG_INFO, "request: HA settings of VM %s", rq->vm ? rq->vm : "");
	rv = cd_node_vm_ha(d, rq, on_member_done, w, &e);
	if (rv) {
		waiter_free(w);
		error_reply(c, rv, e.msg, false);
	}
}

/* Rules and DRS (drs.c): views from this host's replica, changes through the leader. */
static void drs_view_reply(struct cd_daemon *d, struct kb_ctlclient *c, int op)
{
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	struct kb_errmsg e = {{0}};
	int rv = cd_drs_view(d, op, &rp.drs, &e);

	if (rv) {
		error_reply(c, rv, e.msg, false);
		return;
	}
	rp.member = true;
	send_reply(c, &rp, false);
	cd_drs_view_free(rp.drs);
}

static void drs_change(struct cd_daemon *d, struct kb_ctlclient *c,
		       const Keel__Cluster__ClusterRuleRequest *rule,
		       const Keel__Cluster__ClusterConfigSet *cs)
{
	struct kb_errmsg e = {{0}};
	struct waiter *w = waiter_new(c);
	int rv;

	if (!w) {
		error_reply(c, -ENOMEM, "out of memory", false);
		return;
	}
	rv = rule ? cd_drs_rule_request(d, rule, on_member_done, w, &e)
		  : cd_drs_config_set(d, cs, on_member_done, w, &e);
	if (rv) {
		waiter_free(w);
		error_reply(c, rv, e.msg, false);
	}
}

/* The local replica's store: any member answers from its own FSM. */
static void auth_get_reply(struct cd_daemon *d, struct kb_ctlclient *c)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	Keel__Cluster__AuthDb a = KEEL__CLUSTER__AUTH_DB__INIT;

	rp.member = d->phase == CD_PHASE_RUNNING && d->ca;
	if (rp.member && s->auth.version) {
		a.version = s->auth.version;
		a.blob.data = s->auth.blob;
		a.blob.len = s->auth.len;
		a.host = s->auth.host;
		a.at_ms = s->auth.at_ms;
		rp.auth = &a;
	}
	send_reply(c, &rp, false);
}

static void auth_set_request(struct cd_daemon *d, struct kb_ctlclient *c,
			     const Keel__Cluster__ClusterAuthSet *rq)
{
	struct kb_errmsg e = {{0}};
	struct waiter *w = waiter_new(c);
	int rv;

	if (!w) {
		error_reply(c, -ENOMEM, "out of memory", false);
		return;
	}
	rv = cd_node_auth_set(d, rq->expect_version, rq->blob.data, rq->blob.len, on_member_done,
			      w, &e);
	if (rv) {
		waiter_free(w);
		error_reply(c, rv, e.msg, false);
	}
}

/* ---- events ------------------------------------------------------------------------------ */

static void events_reply(struct cd_daemon *d, struct kb_ctlclient *c,
			 const Keel__Cluster__ClusterEventsRequest *rq)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	unsigned first = cd_state_events_since(s, rq->since), last = cd_state_n_events(s), n;
	Keel__Cluster__Event *ev, **ep;

	if (rq->max && last - first > rq->max)
		first = last - rq->max;
	n = last - first;
	ev = kb_calloc(n ? n : 1, sizeof(*ev));
	ep = kb_calloc(n ? n : 1, sizeof(*ep));
	if (!ev || !ep) {
		kb_free(ev);
		kb_free(ep);
		error_reply(c, -ENOMEM, "out of memory", false);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cd_event *e = cd_state_event_at(s, first + i);

		keel__cluster__event__init(&ev[i]);
		ev[i].seq = e->seq;
		ev[i].at_ms = e->at_ms;
		ev[i].kind = e->kind;
		ev[i].host = e->host;
		ev[i].vm = (char *)e->vm;
		ev[i].message = (char *)e->message;
		ep[i] = &ev[i];
	}
	rp.n_events = n;
	rp.events = ep;
	send_reply(c, &rp, false);
	kb_free(ev);
	kb_free(ep);
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
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_JOIN_TOKEN:
		rv = cd_node_member_request(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_TOKEN,
					    rq->join_token->ttl_s, NULL, on_client_done, c, &e);
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_JOIN:
		kb_log(d->log, KB_LOG_INFO, "request: join through %s", rq->join->address);
		rv = cd_node_join(d, rq->join->address, rq->join->token, on_client_done, c, &e);
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_LEAVE:
		kb_log(d->log, KB_LOG_INFO, "request: leave the cluster");
		rv = cd_node_member_request(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_LEAVE, 0,
					    NULL, on_client_done, c, &e);
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_REMOVE_HOST:
		kb_log(d->log, KB_LOG_INFO, "request: remove host %s", rq->remove_host->host);
		rv = cd_node_member_request(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_REMOVE_HOST,
					    0, rq->remove_host->host, on_client_done, c, &e);
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS:
		events_reply(d, c, rq->events);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CONFIG_SET:
		kb_log(d->log, KB_LOG_INFO, "request: cluster settings");
		if (cd_drs_config_wanted(rq->config_set)) {
			drs_change(d, c, NULL, rq->config_set);
			return;
		}
		{
			const Keel__Cluster__ClusterConfigSet *cs = rq->config_set;
			struct cd_cfg_change ch = {
			    .failure_timeout_ms = cs->failure_timeout_ms,
			    .isolation = cs->isolation_response,
			    .ha = cs->ha,
			    .admission_set = cs->admission_set,
			    .admission_failures = cs->admission_failures,
			    .admission_percent = cs->admission_percent,
			};
			rv = cd_node_config_set(d, &ch, on_client_done, c, &e);
		}
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM:
		vm_request(d, c, rq->vm);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_MAINTENANCE:
		maintenance_request(d, c, rq->maintenance);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM_HA:
		vm_ha_request(d, c, rq->vm_ha);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_RULE:
		if (rq->rule->op == KEEL__CLUSTER__CLUSTER_RULE_REQUEST__OP__OP_LIST)
			drs_view_reply(d, c,
				       KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_UNSPECIFIED);
		else
			drs_change(d, c, rq->rule, NULL);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_DRS:
		if (rq->drs->op != KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_STATUS &&
		    rq->drs->op != KEEL__CLUSTER__CLUSTER_DRS_REQUEST__OP__OP_RECOMMEND) {
			error_reply(c, -EINVAL, "unknown DRS request", false);
			return;
		}
		drs_view_reply(d, c, rq->drs->op);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_AUTH_GET:
		auth_get_reply(d, c);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_AUTH_SET:
		auth_set_request(d, c, rq->auth_set);
		return;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_BENCH_COMMIT:
		rv = cd_bench_start(d, rq->bench_commit->count, rq->bench_commit->window,
				    on_bench_done, c, &e);
		break;
	default:
		error_reply(c, KB_ENOTSUP, "unknown ClusterRequest", false);
		return;
	}
	if (rv)
		error_reply(c, rv, e.msg, false);
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
	cd_bench_forget(arg, c);
	if (join_wait.c == c)
		join_wait.c = NULL;
	for (struct waiter *w = waiters; w; w = w->next)
		if (w->c == c)
			w->c = NULL;
}

int cd_ctl_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	static const struct kb_ctlserver_cbs cbs = {
	    .request = on_request,
	    .error = pack_error,
	    .close = on_close,
	};

	int rv = cd_drs_start(d, e);
	const char *env = getenv(CD_CTL_FD_ENV);
	int fd = -1;

	if (rv)
		return rv;
	if (env) { /* the listening socket of the image before a re-exec */
		char *end;
		long v = strtol(env, &end, 10);
		if (*env && !*end && v >= 3 && v < INT_MAX)
			fd = (int)v;
		unsetenv(CD_CTL_FD_ENV);
		return kb_ctlserver_adopt(&server, d->loop, d->socket_path, fd, REQ_MAX, &cbs, d, e);
	}
	return kb_ctlserver_start(&server, d->loop, d->socket_path, REQ_MAX, &cbs, d, e);
}

void cd_ctl_hand_over(struct cd_daemon *d)
{
	int fd = kb_ctlserver_hand_over(&server);

	if (fd >= 0) {
		d->ctl_fd = fd;
		d->ctl_handed_over = true;
	}
}

void cd_ctl_stop(struct cd_daemon *d)
{
	if (join_wait.d) {
		uv_timer_stop(&join_wait.timer);
		join_wait.c = NULL;
	}
	kb_ctlserver_stop(&server);
	cd_drs_stop(d);
}
