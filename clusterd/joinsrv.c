/*
 * The join port: TLS 1.3 on vmk0, Raft port + 1 (docs/clusterd.md, "Joining").
 *
 * One thread accepts connections and serves them one at a time with blocking TLS (joins
 * and member requests are rare); every request is handed to the loop thread, which owns
 * the Raft node and the state, and the thread waits for the reply. Steps:
 *
 *   HELLO        anyone: the cluster's CA certificate, name and id (the joining host pins
 *                the CA with its token's fingerprint and checks our certificate with it)
 *   JOIN         anyone holding a valid token: the leader checks the token, issues the
 *                host's certificate from its CSR, commits HostJoin (which spends the token
 *                and adds the host in one command) and answers with the certificate, the
 *                CA key, the cluster key and the members
 *   TOKEN, LEAVE, REMOVE_HOST, VM, CONFIG, MAINTENANCE, AUTH_SET
 *                members only: the client's certificate must chain to the cluster CA; the
 *                host id in it is who asks
 *
 * A follower answers JOIN and member steps with a redirect to the leader's join port.
 * Refusals are logged with the peer's address. A frame that does not decode ends the
 * connection after an error reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#include "clusterd/ca.h"
#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "clusterd/tls.h"
#include "clusterd/token.h"
#include "lib/heap.h"
#include "lib/time.h"

#define REQ_MAX		  (64u << 10)
#define REQ_MAX_MEMBER	  (CD_AUTH_BLOB_MAX + (64u << 10)) /* AUTH_SET carries the store */
#define REQS_PER_CONN	  8
#define HOST_CERT_DAYS	  3650
#define TOKEN_TTL_DEFAULT 3600

struct cd_job {
	struct cd_daemon *d;
	Keel__Cluster__JoinRequest *rq;
	uint64_t peer_id; /* host id of a verified member certificate; 0: none */
	char peer_ip[INET_ADDRSTRLEN];
	struct kb_buf out; /* the packed JoinReply */
	bool done, abandoned;
	struct cd_job *next;
	char *cert_pem; /* JOIN: issued before the proposal, sent only if it commits */
	char token[CD_TOKEN_TEXT_SIZE];
	uint64_t token_expires_s;
	uint64_t target; /* LEAVE / REMOVE_HOST: the host */
};

struct cd_joinsrv {
	struct cd_daemon *d;
	int lfd, wake[2];
	pthread_t thread;
	bool thread_on;
	SSL_CTX *ctx;
	char ca_pem[CD_PEM_MAX + 1];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cd_job *queue; /* thread -> loop, guarded by mu */
	bool stopping;	      /* guarded by mu */
	uv_async_t async;
};

/* ---- replies ------------------------------------------------------------------------ */

static void job_free(struct cd_job *j)
{
	if (j->rq)
		keel__cluster__join_request__free_unpacked(j->rq, NULL);
	kb_buf_close(&j->out);
	kb_free(j->cert_pem);
	OPENSSL_cleanse(j->token, sizeof(j->token));
	kb_free(j);
}

/* Ends a job with reply rp: packs it and wakes the thread (or frees an abandoned job). */
static void job_finish(struct cd_job *j, Keel__Cluster__JoinReply *rp)
{
	struct cd_joinsrv *s = j->d->jsrv;
	size_t n = keel__cluster__join_reply__get_packed_size(rp);
	bool free_it;

	if (!s) {
		/* The port stopped: its thread abandoned every job (Raft cancels at close). */
		job_free(j);
		return;
	}

	if (kb_buf_reserve(&j->out, n) == 0) {
		keel__cluster__join_reply__pack(rp, j->out.data);
		j->out.len = n;
	}
	pthread_mutex_lock(&s->mu);
	j->done = true;
	free_it = j->abandoned;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (free_it)
		job_free(j);
}

static const char *step_name(const struct cd_job *j)
{
	static const char *const names[] = {"request", "hello",	 "join",	"token",
					    "leave",   "remove-host", "vm",	"config",
					    "maintenance", "auth-set", "vm-ha"};

	if (!j->rq || j->rq->step >= sizeof(names) / sizeof(names[0]))
		return "request";
	return names[j->rq->step];
}

static void job_error(struct cd_job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_error(struct cd_job *j, int code, const char *fmt, ...)
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
	job_finish(j, &rp);
}

/* Not the leader: redirect to it, or say there is none. Returns true when answered. */
static bool redirect(struct cd_job *j)
{
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
	char addr[64];

	if (cd_node_is_ready_leader(j->d))
		return false;
	if (cd_node_leader_join_addr(j->d, addr, sizeof(addr))) {
		job_error(j, KB_ESTATE, "the cluster has no leader right now; try again");
		return true;
	}
	rp.code = KB_ESTATE;
	rp.error = "not the leader";
	rp.redirect = addr;
	job_finish(j, &rp);
	return true;
}

/* ---- HELLO ---------------------------------------------------------------------------- */

static void do_hello(struct cd_job *j)
{
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
	const struct cd_state *s = cd_fsm_state(&j->d->fsm);

	if (!s->config.set) {
		job_error(j, KB_ESTATE, "this host is not in a cluster yet");
		return;
	}
	rp.ca_cert = j->d->jsrv->ca_pem;
	rp.cluster_name = (char *)s->config.name;
	rp.cluster_id = (char *)s->config.cluster_id;
	job_finish(j, &rp);
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
		job_error(j, -ENOMEM, "cannot answer: %s", ca_key ? "out of memory" : e.msg);
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
	job_finish(j, rp);
	OPENSSL_cleanse(ca_key, strlen(ca_key));
	kb_free(ca_key);
	kb_free(hs);
	kb_free(hp);
}

/* Ends j with the refusal when its command was not applied; false when it was. */
static bool job_refused(struct cd_job *j, int status, int code, const char *reason)
{
	if (status) {
		job_error(j, KB_ESTATE, "the proposal failed: %s", raft_strerror(status));
		return true;
	}
	if (code) {
		job_error(j, code, "%s", reason ? reason : "refused");
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

static int ip_of(const char *addr, char ip[INET_ADDRSTRLEN])
{
	const char *colon = strrchr(addr, ':');
	struct in_addr a;

	if (!colon || colon == addr || (size_t)(colon - addr) >= INET_ADDRSTRLEN)
		return -EINVAL;
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	return inet_pton(AF_INET, ip, &a) == 1 ? 0 : -EINVAL;
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
		job_error(j, -EINVAL, "a join needs the token, a CSR and the host's record");
		return;
	}
	if (ip_of(rq->host->vmk0, ip) || strcmp(ip, j->peer_ip) != 0) {
		job_error(j, -EPERM, "vmk0 address %s is not the address the request came from",
			  rq->host->vmk0);
		return;
	}
	rv = cd_token_parse(rq->token, strlen(rq->token), &t, &e);
	if (rv) {
		job_error(j, rv, "%s", e.msg);
		return;
	}
	jt = cd_state_token(s, t.id);
	rec = jt ? &jt->rec : NULL;
	rv = cd_token_check(rec, &t, now_s, &e);
	if (rv) {
		cd_token_clear(&t);
		job_error(j, rv, "%s", e.msg);
		return;
	}
	SHA256(t.secret, sizeof(t.secret), hash);
	cd_token_clear(&t);
	rv = cd_ca_issue_host(d->ca, rq->host->name, rq->host->id, ip, rq->csr, HOST_CERT_DAYS,
			      &j->cert_pem, &e);
	if (rv) {
		job_error(j, rv, "certificate: %s", e.msg);
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
		job_error(j, KB_ESTATE, "%s", e.msg);
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
	job_finish(j, &rp);
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
		job_error(j, rv, "%s", e.msg);
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
		job_error(j, KB_ESTATE, "%s", e.msg);
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
	job_finish(j, &rp);
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
		job_error(j, KB_ENOTFOUND, "no such host in the cluster");
		return;
	}
	j->target = h->id;
	owned = cd_state_n_vms_owned(s, h->id);
	if (owned) {
		job_error(j, KB_ESTATE, "host %s owns %u VM%s: move or unregister them first",
			  h->name, owned, owned == 1 ? "" : "s");
		return;
	}
	if (!leave && h->state == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED) {
		job_error(j, KB_ESTATE,
			  "host %s is connected: run `keel cluster leave` on it instead", h->name);
		return;
	}
	if (h->id == d->id) {
		/* The leader leaves: hand leadership to another voter first; the client retries
		 * and the new leader removes this host. */
		struct raft_transfer *t = kb_calloc(1, sizeof(*t));

		if (!t || raft_transfer(&d->raft, t, 0, on_transfer) != 0) {
			kb_free(t);
			job_error(j, KB_ESTATE, "this host leads and no other voter can take over");
			return;
		}
		kb_log(d->log, KB_LOG_INFO, "leaving: leadership is being transferred");
		job_error(j, -EAGAIN, "leadership is moving to another host; try again");
		return;
	}
	hr.id = h->id;
	hr.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE;
	c.host_remove = &hr;
	rv = cd_submit(d, &c, on_remove_applied, j, &e);
	if (rv)
		job_error(j, KB_ESTATE, "%s", e.msg);
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
	job_finish(j, &rp);
}

static void do_vm(struct cd_job *j)
{
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!j->rq->vm) {
		job_error(j, -EINVAL, "a VM request needs its operation");
		return;
	}
	rv = cd_vmop_leader(j->d, j->peer_id, j->rq->vm, on_vm_done, j, &e);
	if (rv)
		job_error(j, rv, "%s", e.msg);
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
	job_finish(j, &rp);
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
		job_error(j, -EINVAL, "no settings to change");
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
	cfg.ha_disabled = cs->ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_OFF    ? true
			  : cs->ha == KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON ? false
											  : s->config.ha_disabled;
	cfg.admission_failures =
	    cs->admission_set ? cs->admission_failures : s->config.admission_failures;
	cfg.admission_percent = cs->admission_set ? cs->admission_percent : s->config.admission_percent;
	sc.config = &cfg;
	sc.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	c.set_config = &sc;
	rv = cd_submit(j->d, &c, on_config_applied, j, &e);
	if (rv)
		job_error(j, KB_ESTATE, "%s", e.msg);
}

/* ---- MAINTENANCE and AUTH_SET --------------------------------------------------------------- */

static void on_member_done(struct cd_daemon *d, void *arg, int code, const char *error,
			   const Keel__Cluster__AuthDb *auth)
{
	struct cd_job *j = arg;
	Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;

	(void)d;
	if (code) {
		job_error(j, code, "%s", error ? error : "refused");
		return;
	}
	rp.auth = (Keel__Cluster__AuthDb *)auth;
	job_finish(j, &rp);
}

static void do_maintenance(struct cd_job *j)
{
	const Keel__Cluster__ClusterMaintenance *m = j->rq->maintenance;
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!m) {
		job_error(j, -EINVAL, "a maintenance request needs its host and direction");
		return;
	}
	if (m->host && strlen(m->host) > CD_NAME_MAX) {
		job_error(j, -EINVAL, "host name too long");
		return;
	}
	rv = cd_maint_leader(j->d, j->peer_id, m->host, m->enter, on_member_done, j, &e);
	if (rv)
		job_error(j, rv, "%s", e.msg);
}

static void do_auth_set(struct cd_job *j)
{
	const Keel__Cluster__ClusterAuthSet *a = j->rq->auth_set;
	struct kb_errmsg e = {{0}};
	int rv;

	if (redirect(j))
		return;
	if (!a) {
		job_error(j, -EINVAL, "an auth-set request needs the store");
		return;
	}
	rv = cd_auth_set_leader(j->d, j->peer_id, a->expect_version, a->blob.data, a->blob.len,
				on_member_done, j, &e);
	if (rv)
		job_error(j, rv, "%s", e.msg);
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
		job_error(j, -EINVAL, "a VM HA request needs its VM");
		return;
	}
	rv = cd_vm_ha_leader(j->d, h, on_member_done, j, &e);
	if (rv)
		job_error(j, rv, "%s", e.msg);
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
		job_error(j, rv, "%s", e.msg);
}

/* ---- the loop side ------------------------------------------------------------------------ */

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
	job_finish(j, &rp);
}

static void do_migrate_prepare(struct cd_job *j)
{
	struct kb_errmsg e = {{0}};
	int rv = cd_migrate_prepare(j->d, j->peer_id, j->rq->migrate, on_prepared, j, &e);

	if (rv)
		job_error(j, rv, "%s", e.msg);
}

static void process(struct cd_job *j)
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
	    step > KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_DRS) {
		job_error(j, KB_EPROTO, "unknown step %d", step);
		return;
	}
	if (!j->peer_id) {
		job_error(j, -EPERM, "member requests need a host certificate of this cluster");
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
	else
		do_remove(j, step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_LEAVE);
}

static void on_async(uv_async_t *a)
{
	struct cd_joinsrv *s = a->data;
	struct cd_job *list, *j;

	pthread_mutex_lock(&s->mu);
	list = s->queue;
	s->queue = NULL;
	pthread_mutex_unlock(&s->mu);
	/* The queue is last-in first; requests come one at a time, so order hardly matters,
	 * but keep arrival order anyway. */
	{
		struct cd_job *rev = NULL;

		while (list) {
			j = list;
			list = j->next;
			j->next = rev;
			rev = j;
		}
		list = rev;
	}
	while (list) {
		j = list;
		list = j->next;
		if (s->d->phase != CD_PHASE_RUNNING)
			job_error(j, KB_ESTATE, "clusterd is not running Raft");
		else
			process(j);
	}
}

/* ---- the thread ------------------------------------------------------------------------- */

/* Hands j to the loop and waits for its reply. false when the server is stopping (the
 * job is then the loop's to free). */
static bool submit(struct cd_joinsrv *s, struct cd_job *j)
{
	bool ok;

	pthread_mutex_lock(&s->mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		job_free(j);
		return false;
	}
	j->next = s->queue;
	s->queue = j;
	pthread_mutex_unlock(&s->mu);
	uv_async_send(&s->async);
	pthread_mutex_lock(&s->mu);
	while (!j->done && !s->stopping)
		pthread_cond_wait(&s->cv, &s->mu);
	ok = j->done;
	if (!ok)
		j->abandoned = true;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static uint64_t peer_member_id(struct cd_joinsrv *s, SSL *ssl)
{
	char *pem = cd_tls_peer_cert_pem(ssl);
	struct kb_errmsg e = {{0}};
	uint64_t id = 0;

	if (!pem)
		return 0;
	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    cd_ca_verify_host_cert(s->ca_pem, pem, 0, NULL, 0, &id, &e) != 0)
		id = 0;
	kb_free(pem);
	return id;
}

static void serve_conn(struct cd_joinsrv *s, int fd, const char *ip)
{
	SSL *ssl = SSL_new(s->ctx);
	struct kb_errmsg e = {{0}};
	struct kb_buf in;
	uint64_t peer = 0;
	char why[256];

	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	if (SSL_accept(ssl) != 1) {
		unsigned long err = ERR_get_error();

		ERR_error_string_n(err, why, sizeof(why));
		ERR_clear_error();
		kb_log(s->d->log, KB_LOG_WARN, "join port: TLS handshake with %s failed: %s", ip,
		       err ? why : "connection closed");
		cd_tls_close(ssl);
		return;
	}
	peer = peer_member_id(s, ssl);
	kb_buf_init(&in, 0);
	for (int n = 0; n < REQS_PER_CONN; n++) {
		struct cd_job *j;
		/* Only members may send the larger frames of AUTH_SET. */
		int rv = cd_tls_recv(ssl, &in, peer ? REQ_MAX_MEMBER : REQ_MAX, &e);

		if (rv == -EPIPE)
			break;
		if (rv) {
			kb_log(s->d->log, KB_LOG_WARN, "join port: %s: %s", ip, e.msg);
			break;
		}
		j = kb_calloc(1, sizeof(*j));
		if (!j)
			break;
		j->d = s->d;
		j->peer_id = peer;
		snprintf(j->peer_ip, sizeof(j->peer_ip), "%s", ip);
		kb_buf_init(&j->out, 0);
		j->rq = keel__cluster__join_request__unpack(NULL, in.len, in.data);
		if (!j->rq) {
			Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
			size_t len;
			uint8_t *p;

			kb_log(s->d->log, KB_LOG_WARN,
			       "join port: %s sent %zu bytes that are not a JoinRequest", ip,
			       in.len);
			rp.code = KB_EPROTO;
			rp.error = "not a valid JoinRequest";
			len = keel__cluster__join_reply__get_packed_size(&rp);
			p = kb_malloc(len);
			if (p) {
				keel__cluster__join_reply__pack(&rp, p);
				cd_tls_send(ssl, p, len, &e);
				kb_free(p);
			}
			job_free(j);
			break;
		}
		if (!submit(s, j))
			break;
		rv = cd_tls_send(ssl, j->out.data, j->out.len, &e);
		job_free(j);
		if (rv)
			break;
	}
	kb_buf_close(&in);
	cd_tls_close(ssl);
}

static void *thread_main(void *arg)
{
	struct cd_joinsrv *s = arg;

	for (;;) {
		struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		char ip[INET_ADDRSTRLEN] = "?";
		int fd;
		bool stop;

		pthread_mutex_lock(&s->mu);
		stop = s->stopping;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			continue;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
		{
			struct timeval tv = {CD_TLS_IO_TIMEOUT_MS / 1000, 0};

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		serve_conn(s, fd, ip);
	}
	return NULL;
}

/* ---- start and stop --------------------------------------------------------------------- */

static int listen_on(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct sockaddr_in sa;
	char ip[INET_ADDRSTRLEN];
	int fd, one = 1;

	if (ip_of(d->address, ip)) {
		kb_errmsg_setf(e, "bad vmk0 address %s", d->address);
		return -EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)(d->port + CD_JOIN_PORT_OFFSET));
	inet_pton(AF_INET, ip, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0)
		goto fail;
	return fd;
fail:
	kb_errmsg_setf(e, "join port %s:%u: %s", ip, d->port + CD_JOIN_PORT_OFFSET,
		       strerror(errno));
	if (fd >= 0)
		close(fd);
	return -errno;
}

int cd_joinsrv_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_joinsrv *s;
	char path[PATH_MAX + 16], *ca;
	int rv;

	if (d->jsrv)
		return 0;
	s = kb_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = d;
	s->lfd = s->wake[0] = s->wake[1] = -1;
	snprintf(path, sizeof(path), "%.4000s/%s", d->state_dir, CD_CA_CERT_FILE);
	ca = cd_read_text(path, CD_PEM_MAX, e);
	if (!ca) {
		kb_free(s);
		return -ENOENT;
	}
	snprintf(s->ca_pem, sizeof(s->ca_pem), "%s", ca);
	kb_free(ca);
	s->ctx = cd_tls_server_ctx(d->state_dir, e);
	if (!s->ctx) {
		kb_free(s);
		return KB_ECONFIG;
	}
	rv = listen_on(d, e);
	if (rv < 0) {
		SSL_CTX_free(s->ctx);
		kb_free(s);
		return rv;
	}
	s->lfd = rv;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rv = -errno;
		kb_errmsg_setf(e, "pipe: %s", strerror(errno));
		close(s->lfd);
		SSL_CTX_free(s->ctx);
		kb_free(s);
		return rv;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	uv_async_init(d->loop, &s->async, on_async);
	s->async.data = s;
	d->jsrv = s;
	if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
		kb_errmsg_setf(e, "cannot start the join port thread");
		cd_joinsrv_stop(d);
		return -EAGAIN;
	}
	s->thread_on = true;
	kb_log(d->log, KB_LOG_INFO, "join port (TLS) listening on port %u of vmk0",
	       d->port + CD_JOIN_PORT_OFFSET);
	return 0;
}

static void on_async_closed(uv_handle_t *h)
{
	struct cd_joinsrv *s = h->data;

	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	SSL_CTX_free(s->ctx);
	kb_free(s);
}

void cd_joinsrv_stop(struct cd_daemon *d)
{
	struct cd_joinsrv *s = d->jsrv;
	struct cd_job *list;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	list = s->queue;
	s->queue = NULL;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (write(s->wake[1], "x", 1) < 0) {
		/* the pipe is non-blocking and empty: cannot fail in practice */
	}
	if (s->thread_on)
		pthread_join(s->thread, NULL);
	/* Jobs queued but never seen by the loop: the thread abandoned them. */
	while (list) {
		struct cd_job *j = list;

		list = j->next;
		job_free(j);
	}
	close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	d->jsrv = NULL;
	/* Jobs still inside Raft hold s through j->d->jsrv: keep s alive until the handle
	 * closes, after which their callbacks (RAFT_CANCELED at raft_close) must not touch it. */
	uv_close((uv_handle_t *)&s->async, on_async_closed);
}
