/*
 * The join port's steps (joinsrv.c, docs/clusterd.md, "Joining"), on the loop thread:
 * HELLO and JOIN for anyone, the member steps (TOKEN, LEAVE, REMOVE_HOST, VM, CONFIG,
 * MAINTENANCE, AUTH_SET, VM_HA, DRS) for hosts whose certificate chains to the cluster CA,
 * and MIGRATE_PREPARE from host to host.
 *
 * Happy path: cd__joinsrv_process() picks the step; a follower redirects JOIN and member
 * steps to the leader; the leader checks the request, commits its command or hands it to
 * the module that runs it (vmops, maintenance, DRS, migrate), and the job ends with the
 * reply when that is done. Failure modes: every refusal ends the job with a code and a
 * message, logged with the peer's address; a proposal that fails answers KB_ESTATE.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "clusterd/ca.h"
#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "clusterd/joinsrv_int.h"
#include "clusterd/tls.h"
#include "clusterd/token.h"
#include "lib/heap.h"
#include "lib/time.h"

#define HOST_CERT_DAYS	  3650
#define TOKEN_TTL_DEFAULT 3600

/* ---- replies ------------------------------------------------------------------------ */

static const char *step_name(const struct cd_job *j)
{
	static const char *const names[] = {"request",	   "hello",	  "join", "token",
					    "leave",	   "remove-host", "vm",	  "config",
					    "maintenance", "auth-set",	  "vm-ha"};

	if (!j->rq || j->rq->step >= sizeof(names) / sizeof(names[0]))
		return "request";
	return names[j->rq->step];
}

void cd__job_error(struct cd_job *j, int code, const char *fmt, ...)
{
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
	char msg[KB_ERRMSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kb_log(j->d->log, KB_LOG_WARN, "join port: refused %s from %s: %s", step_name(j),
	       j->peer_ip, msg);
	rp.code = code;
	rp.error = msg;
	cd__job_finish(j, &rp);
}

/* Not the leader: redirect to it, or say there is none. Returns true when answered. */
static bool redirect(struct cd_job *j)
{
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
	char addr[64];

	if (cd_node_is_ready_leader(j->d))
		return false;
	if (cd_node_leader_join_addr(j->d, addr, sizeof(addr))) {
		cd__job_error(j, KB_ESTATE, "the cluster has no leader right now; try again");
		return true;
	}
	rp.code = KB_ESTATE;
	rp.error = "not the leader";
	rp.redirect = addr;
	cd__job_finish(j, &rp);
	return true;
}

/* ---- HELLO ---------------------------------------------------------------------------- */

static void do_hello(struct cd_job *j)
{
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
	const struct cd_state *s = cd_fsm_state(&j->d->fsm);

	if (!s->config.set) {
		cd__job_error(j, KB_ESTATE, "this host is not in a cluster yet");
		return;
	}
	rp.ca_cert = j->d->jsrv->ca_pem;
	rp.cluster_name = (char *)s->config.name;
	rp.cluster_id = (char *)s->config.cluster_id;
	cd__job_finish(j, &rp);
}

/* ---- JOIN ----------------------------------------------------------------------------- */

static void members_reply(struct cd_job *j, Keel__Cluster__JoinReply *rp)
{
	const struct cd_state *s = cd_fsm_state(&j->d->fsm);
	unsigned n = cd_state_n_hosts(s);
	Keel__Cluster__Host *hs = kb_calloc(n ? n : 1, sizeof(*hs));
	Keel__Cluster__Host **hp = kb_calloc(n ? n : 1, sizeof(*hp));
	char path[PATH_MAX + 16], *ca_key;
	struct kb_errmsg e = {{0}};

	snprintf(path, sizeof(path), "%.4000s/%s", j->d->state_dir, CD_CA_KEY_FILE);
	ca_key = cd_read_text(path, CD_PEM_MAX, &e);
	if (!hs || !hp || !ca_key) {
		kb_free(hs);
		kb_free(hp);
		kb_free(ca_key);
		cd__job_error(j, -ENOMEM, "cannot answer: %s", ca_key ? "out of memory" : e.msg);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cd_host *h = cd_state_host_at(s, i);

		keel__cluster__host__init(&hs[i]);
		hs[i].id = h->id;
		hs[i].name = (char *)h->name;
		hs[i].vmk0 = (char *)h->vmk0;
		hs[i].vmk1 = (char *)h->vmk1;
		hs[i].vmk2 = (char *)h->vmk2;
		hs[i].state = h->state;
		hs[i].role = h->role;
		hp[i] = &hs[i];
	}
	rp->ca_cert = j->d->jsrv->ca_pem;
	rp->cluster_name = (char *)s->config.name;
	rp->cluster_id = (char *)s->config.cluster_id;
	rp->host_cert = j->cert_pem;
	rp->ca_key.data = (uint8_t *)ca_key;
	rp->ca_key.len = strlen(ca_key);
	rp->cluster_key.data = j->d->cluster_key;
	rp->cluster_key.len = CD_CLUSTER_KEY_SIZE;
	rp->n_members = n;
	rp->members = hp;
	cd__job_finish(j, rp);
	OPENSSL_cleanse(ca_key, strlen(ca_key));
	kb_free(ca_key);
	kb_free(hs);
	kb_free(hp);
}

/* Ends j with the refusal when its command was not applied; false when it was. */
static bool job_refused(struct cd_job *j, int status, int code, const char *reason)
{
	if (status) {
		cd__job_error(j, KB_ESTATE, "the proposal failed: %s", raft_strerror(status));
		return true;
	}
	if (code) {
		cd__job_error(j, code, "%s", reason ? reason : "refused");
		return true;
	}
	return false;
}

static void on_join_applied(struct cd_daemon *d, void *arg, int status, int rcode,
			    const char *reason)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	if (job_refused(j, status, rcode, reason))
		return;
	kb_log(j->d->log, KB_LOG_INFO, "host %s (%" PRIu64 ") joined from %s", j->rq->host->name,
	       j->rq->host->id, j->peer_ip);
	members_reply(j, &rp);
}

static void do_join(struct cd_job *j)
{
	struct cd_daemon *d = j->d;
	const Keel__Cluster__JoinRequest *rq = j->rq;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__Host host = KEEL__CLUSTER__HOST__INIT;
	Keel__Cluster__HostJoin hj = KEEL__CLUSTER__HOST_JOIN__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	const struct cd_join_token *jt;
	const struct cd_token_record *rec;
	uint8_t hash[SHA256_DIGEST_LENGTH];
	struct kb_errmsg e = {{0}};
	char ip[INET_ADDRSTRLEN];
	struct cd_token t;
	uint64_t now_s = kb_wall_ns() / 1000000000ull;
	int rv;

	if (redirect(j))
		return;
	if (!rq->host || !rq->host->name || !rq->host->vmk0 || !rq->csr || !rq->token) {
		cd__job_error(j, -EINVAL, "a join needs the token, a CSR and the host's record");
		return;
	}
	if (cd__joinsrv_ip_of(rq->host->vmk0, ip) || strcmp(ip, j->peer_ip) != 0) {
		cd__job_error(j, -EPERM, "vmk0 address %s is not the address the request came from",
			      rq->host->vmk0);
		return;
	}
	rv = cd_token_parse(rq->token, strlen(rq->token), &t, &e);
	if (rv) {
		cd__job_error(j, rv, "%s", e.msg);
		return;
	}
	jt = cd_state_token(s, t.id);
	rec = jt ? &jt->rec : NULL;
	rv = cd_token_check(rec, &t, now_s, &e);
	if (rv) {
		cd_token_clear(&t);
		cd__job_error(j, rv, "%s", e.msg);
		return;
	}
	SHA256(t.secret, sizeof(t.secret), hash);
	cd_token_clear(&t);
	rv = cd_ca_issue_host(d->ca, rq->host->name, rq->host->id, ip, rq->csr, HOST_CERT_DAYS,
			      &j->cert_pem, &e);
	if (rv) {
		cd__job_error(j, rv, "certificate: %s", e.msg);
		return;
	}
	host.id = rq->host->id;
	host.name = rq->host->name;
	host.vmk0 = rq->host->vmk0;
	host.capacity = rq->host->capacity;
	host.vmk1 = rq->host->vmk1 ? rq->host->vmk1 : "";
	host.vmk2 = rq->host->vmk2 ? rq->host->vmk2 : "";
	host.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	host.role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE;
	host.last_change_ms = cd_now_ms();
	hj.host = &host;
	hj.token_id.data = (uint8_t *)rec->id;
	hj.token_id.len = CD_TOKEN_ID_SIZE;
	hj.secret_hash.data = hash;
	hj.secret_hash.len = sizeof(hash);
	hj.at_s = now_s;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_JOIN;
	c.host_join = &hj;
	rv = cd_submit(d, &c, on_join_applied, j, &e);
	if (rv)
		cd__job_error(j, KB_ESTATE, "%s", e.msg);
}

/* ---- TOKEN ------------------------------------------------------------------------------ */

static void on_token_applied(struct cd_daemon *d, void *arg, int status, int rcode,
			     const char *reason)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	if (job_refused(j, status, rcode, reason))
		return;
	kb_log(j->d->log, KB_LOG_INFO, "join token issued for host %" PRIu64 ", expires %" PRIu64,
	       j->peer_id, j->token_expires_s);
	rp.token = j->token;
	rp.token_expires_s = j->token_expires_s;
	cd__job_finish(j, &rp);
}

static void do_token(struct cd_job *j)
{
	struct cd_daemon *d = j->d;
	Keel__Cluster__JoinTokenRecord tr = KEEL__CLUSTER__JOIN_TOKEN_RECORD__INIT;
	Keel__Cluster__TokenAdd ta = KEEL__CLUSTER__TOKEN_ADD__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	struct cd_token_record rec;
	uint8_t fp[CD_FINGERPRINT_SIZE];
	struct kb_errmsg e = {{0}};
	uint64_t now_s = kb_wall_ns() / 1000000000ull;
	uint32_t ttl = j->rq->ttl_s ? j->rq->ttl_s : TOKEN_TTL_DEFAULT;
	int rv;

	if (redirect(j))
		return;
	cd_ca_fingerprint(d->ca, fp);
	rv = cd_token_issue(ttl, now_s, fp, j->token, &rec, &e);
	if (rv) {
		cd__job_error(j, rv, "%s", e.msg);
		return;
	}
	j->token_expires_s = rec.expires_s;
	tr.id.data = rec.id;
	tr.id.len = sizeof(rec.id);
	tr.expires_s = rec.expires_s;
	tr.secret_hash.data = rec.secret_hash;
	tr.secret_hash.len = sizeof(rec.secret_hash);
	ta.token = &tr;
	ta.at_s = now_s;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_TOKEN_ADD;
	c.token_add = &ta;
	rv = cd_submit(d, &c, on_token_applied, j, &e);
	if (rv)
		cd__job_error(j, KB_ESTATE, "%s", e.msg);
}

/* ---- LEAVE and REMOVE_HOST ---------------------------------------------------------------- */

static void on_remove_applied(struct cd_daemon *d, void *arg, int status, int rcode,
			      const char *reason)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	if (job_refused(j, status, rcode, reason))
		return;
	kb_log(j->d->log, KB_LOG_INFO,
	       "host %" PRIu64 " removed from the cluster (asked by %" PRIu64 ")", j->target,
	       j->peer_id);
	cd__job_finish(j, &rp);
}

static void on_transfer(struct raft_transfer *req)
{
	kb_free(req);
}

static void do_remove(struct cd_job *j, bool leave)
{
	struct cd_daemon *d = j->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__HostRemove hr = KEEL__CLUSTER__HOST_REMOVE__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	const struct cd_host *h;
	struct kb_errmsg e = {{0}};
	unsigned owned;
	int rv;

	if (redirect(j))
		return;
	if (leave) {
		h = cd_state_host(s, j->peer_id);
	} else {
		char *end;
		uint64_t id = strtoull(j->rq->remove_host ? j->rq->remove_host : "", &end, 10);

		h = (*end == '\0' && id) ? cd_state_host(s, id) : NULL;
		if (!h)
			h = cd_state_host_by_name(s, j->rq->remove_host ? j->rq->remove_host : "");
	}
	if (!h) {
		cd__job_error(j, KB_ENOTFOUND, "no such host in the cluster");
		return;
	}
	j->target = h->id;
	owned = cd_state_n_vms_owned(s, h->id);
	if (owned) {
		cd__job_error(j, KB_ESTATE, "host %s owns %u VM%s: move or unregister them first",
			      h->name, owned, owned == 1 ? "" : "s");
		return;
	}
	if (!leave && h->state == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED) {
		cd__job_error(j, KB_ESTATE,
			      "host %s is connected: run `keel cluster leave` on it instead",
			      h->name);
		return;
	}
	if (h->id == d->id) {
		/* The leader leaves: hand leadership to another voter first; the client retries
		 * and the new leader removes this host. */
		struct raft_transfer *t = kb_calloc(1, sizeof(*t));

		if (!t || raft_transfer(&d->raft, t, 0, on_transfer) != 0) {
			kb_free(t);
			cd__job_error(j, KB_ESTATE,
				      "this host leads and no other voter can take over");
			return;
		}
		kb_log(d->log, KB_LOG_INFO, "leaving: leadership is being transferred");
		cd__job_error(j, -EAGAIN, "leadership is moving to another host; try again");
		return;
	}
	hr.id = h->id;
	hr.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE;
	c.host_remove = &hr;
	rv = cd_submit(d, &c, on_remove_applied, j, &e);
	if (rv)
		cd__job_error(j, KB_ESTATE, "%s", e.msg);
}

/* ---- VM ------------------------------------------------------------------------------------ */

static void on_vm_done(struct cd_daemon *d, void *arg, int code, const char *error,
		       const Keel__Cluster__ClusterVmReply *vr)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	rp.code = code;
	rp.error = (char *)(error ? error : "");
	rp.vm = (Keel__Cluster__ClusterVmReply *)vr;
	cd__job_finish(j, &rp);
}

static void do_vm(struct cd_job *j)
{
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!j->rq->vm) {
		cd__job_error(j, -EINVAL, "a VM request needs its operation");
		return;
	}
	rv = cd_vmop_leader(j->d, j->peer_id, j->rq->vm, on_vm_done, j, &e);
	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

/* ---- CONFIG -------------------------------------------------------------------------------- */

static void on_config_applied(struct cd_daemon *d, void *arg, int status, int rcode,
			      const char *reason)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	if (job_refused(j, status, rcode, reason))
		return;
	kb_log(j->d->log, KB_LOG_INFO, "cluster settings changed by host %" PRIu64, j->peer_id);
	cd__job_finish(j, &rp);
}

static void do_config(struct cd_job *j)
{
	const struct cd_state *s = cd_fsm_state(&j->d->fsm);
	const Keel__Cluster__ClusterConfigSet *cs = j->rq->config_set;
	Keel__Cluster__ClusterConfig cfg = KEEL__CLUSTER__CLUSTER_CONFIG__INIT;
	Keel__Cluster__SetConfig sc = KEEL__CLUSTER__SET_CONFIG__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!cs || !s->config.set) {
		cd__job_error(j, -EINVAL, "no settings to change");
		return;
	}
	cfg.name = (char *)s->config.name;
	cfg.cluster_id = (char *)s->config.cluster_id;
	cfg.format_version = s->config.format_version;
	cfg.failure_timeout_ms =
	    cs->failure_timeout_ms ? cs->failure_timeout_ms : s->config.failure_timeout_ms;
	cfg.isolation_response =
	    cs->isolation_response ? cs->isolation_response
				   : (Keel__Cluster__IsolationResponse)s->config.isolation_response;
	cfg.ha_disabled = cs->ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_OFF ? true
			  : cs->ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON
			      ? false
			      : s->config.ha_disabled;
	cfg.admission_failures =
	    cs->admission_set ? cs->admission_failures : s->config.admission_failures;
	cfg.admission_percent =
	    cs->admission_set ? cs->admission_percent : s->config.admission_percent;
	sc.config = &cfg;
	sc.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	c.set_config = &sc;
	rv = cd_submit(j->d, &c, on_config_applied, j, &e);
	if (rv)
		cd__job_error(j, KB_ESTATE, "%s", e.msg);
}

/* ---- MAINTENANCE and AUTH_SET --------------------------------------------------------------- */

static void on_member_done(struct cd_daemon *d, void *arg, int code, const char *error,
			   const Keel__Cluster__AuthDb *auth)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	if (code) {
		cd__job_error(j, code, "%s", error ? error : "refused");
		return;
	}
	rp.auth = (Keel__Cluster__AuthDb *)auth;
	cd__job_finish(j, &rp);
}

static void do_maintenance(struct cd_job *j)
{
	const Keel__Cluster__ClusterMaintenance *m = j->rq->maintenance;
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!m) {
		cd__job_error(j, -EINVAL, "a maintenance request needs its host and direction");
		return;
	}
	if (m->host && strlen(m->host) > CD_NAME_MAX) {
		cd__job_error(j, -EINVAL, "host name too long");
		return;
	}
	rv = cd_maint_leader(j->d, j->peer_id, m->host, m->enter, on_member_done, j, &e);
	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

static void do_auth_set(struct cd_job *j)
{
	const Keel__Cluster__ClusterAuthSet *a = j->rq->auth_set;
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!a) {
		cd__job_error(j, -EINVAL, "an auth-set request needs the store");
		return;
	}
	rv = cd_auth_set_leader(j->d, j->peer_id, a->expect_version, a->blob.data, a->blob.len,
				on_member_done, j, &e);
	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

/* A VM's HA settings, asked by a member host (any member may change them). */
static void do_vm_ha(struct cd_job *j)
{
	const Keel__Cluster__ClusterVmHa *h = j->rq->vm_ha;
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!h || !h->vm || !h->vm[0]) {
		cd__job_error(j, -EINVAL, "a VM HA request needs its VM");
		return;
	}
	rv = cd_vm_ha_leader(j->d, h, on_member_done, j, &e);
	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

/* A rule change or DRS settings from a follower (drs.c). */
static void do_drs(struct cd_job *j)
{
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (j->rq->rule)
		rv = cd_drs_rule_request(j->d, j->rq->rule, on_member_done, j, &e);
	else if (j->rq->drs_config_set)
		rv = cd_drs_config_set(j->d, j->rq->drs_config_set, on_member_done, j, &e);
	else {
		rv = -EINVAL;
		kb_errmsg_setf(&e, "a DRS request needs a rule or settings");
	}
	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

/* ---- MIGRATE_PREPARE: host to host, never redirected (migrate.c) ---------------------- */

static void on_prepared(struct cd_daemon *d, void *arg, int code, const char *error,
			char *const *endpoints, size_t n)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	rp.code = code;
	rp.error = (char *)(error ? error : "");
	rp.n_endpoints = n;
	rp.endpoints = (char **)endpoints;
	cd__job_finish(j, &rp);
}

static void do_migrate_prepare(struct cd_job *j)
{
	struct kb_errmsg e = {{0}};
	int rv = cd_migrate_prepare(j->d, j->peer_id, j->rq->migrate, on_prepared, j, &e);

	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

static void do_ft_prepare(struct cd_job *j)
{
	struct kb_errmsg e = {{0}};
	int rv = cd_ft_prepare(j->d, j->peer_id, j->rq->ft, on_prepared, j, &e);

	if (rv)
		cd__job_error(j, rv, "%s", e.msg);
}

/* ---- the step of a job --------------------------------------------------------------- */

void cd__joinsrv_process(struct cd_job *j)
{
	int step = j->rq->step;

	switch (step) {
	case KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_HELLO:
		do_hello(j);
		return;
	case KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_JOIN:
		do_join(j);
		return;
	default:
		break;
	}
	if (step < KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_TOKEN ||
	    step > KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_FT_PREPARE) {
		cd__job_error(j, KB_EPROTO, "unknown step %d", step);
		return;
	}
	if (!j->peer_id) {
		cd__job_error(j, -EPERM, "member requests need a host certificate of this cluster");
		return;
	}
	if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_TOKEN)
		do_token(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM)
		do_vm(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_CONFIG)
		do_config(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_MAINTENANCE)
		do_maintenance(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_AUTH_SET)
		do_auth_set(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM_HA)
		do_vm_ha(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_MIGRATE_PREPARE)
		do_migrate_prepare(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_DRS)
		do_drs(j);
	else if (step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_FT_PREPARE)
		do_ft_prepare(j);
	else
		do_remove(j, step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_LEAVE);
}
