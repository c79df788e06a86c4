/*
 * The client side of the join port (docs/clusterd.md, "Joining"): joining a cluster, and
 * member requests (join-token, leave, remove-host, settings, VM operations, maintenance
 * mode, the auth store, VMs' HA settings) forwarded to the leader. Each runs on a
 * libuv worker thread with blocking TLS (clusterd/tls.h); the result comes back to the
 * loop, which starts Raft after a join and reports to the control client.
 *
 * Join, step by step: parse the token (it must carry the CA fingerprint); make this host's
 * key and CSR; connect to the member without trusting it yet; HELLO gives the CA
 * certificate, which must match the token's fingerprint, and the member's own certificate
 * must chain to that CA; only then is the token sent (JOIN). A follower redirects to the
 * leader, which is checked the same way. The reply's host certificate must name this
 * host's id and name; the CA, the CA key, the certificate and the cluster key are written
 * before Raft starts, so a crash leaves either no membership or a whole one.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "clusterd/ca.h"
#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "clusterd/tls.h"
#include "clusterd/token.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/time.h"

#define CONNECT_TIMEOUT_MS 3000
#define HOPS_MAX	   5
#define RETRY_FOR_MS	   8000
#define REPLY_MAX	   (256u << 10)

struct cli_op {
	uv_work_t work;
	struct cd_daemon *d;
	int step;
	char address[64];
	char token[CD_TOKEN_TEXT_SIZE];
	uint32_t ttl_s;
	char host[CD_NAME_MAX + 24];
	/* this host, copied for the worker */
	char state_dir[PATH_MAX];
	char hostname[CD_NAME_MAX + 1];
	char vmk0[32];
	uint64_t id;
	struct cd_client_result res;
	/* STEP_VM: the request and what came back; not the daemon's single client op */
	int vm_op;
	char vm_uuid[CD_UUID_LEN + 1];
	char vm_name[CD_NAME_MAX + 1];
	char vm_path[CD_PATH_MAX + 1];
	uint64_t vm_mem_mib;
	uint32_t vm_cpu_mhz;
	char vm_error[256]; /* OP_START_FAILED, OP_MIGRATE_ABORT */
	uint64_t vm_op_id, vm_destination; /* the OP_MIGRATE_* requests */
	bool vm_wanted_only;
	uint64_t vm_ft_generation;
	bool vm_answered;
	uint64_t vm_owner, vm_epoch, vm_host;
	uint64_t vm_index; /* the leader's commit index with its answer */
	char vm_owner_name[CD_NAME_MAX + 1];
	char vm_placement[256]; /* what placement decided (OP_PLACE, OP_POWER_ON), or "" */
	bool vm_placed;		/* the VM was given to vm_owner powered on */
	bool vm_has_op; /* the operation in flight on the VM, as the leader answered */
	struct cd_op vm_inflight;
	cd_vmop_cb vm_cb;
	void *vm_arg;
	/* STEP_CONFIG */
	struct cd_cfg_change cfg;
	/* STEP_MAINTENANCE (host, enter) and STEP_AUTH_SET: not the daemon's single client op */
	bool enter;
	uint64_t auth_expect;
	uint8_t *auth_blob; /* kb_malloc'ed copy */
	size_t auth_len;
	bool auth_answered;
	uint64_t auth_version, auth_host, auth_at_ms;
	cd_member_cb m_cb;
	void *m_arg;
	/* STEP_VM_HA: the ClusterVmHa, packed (kb_malloc'ed); STEP_DRS: the ClusterRuleRequest
	 * (drs_rule) or the ClusterConfigSet, packed the same way */
	uint8_t *vmha;
	size_t vmha_len;
	bool drs_rule;
};

static bool detached_step(int step)
{
	return step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM ||
	       step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_MAINTENANCE ||
	       step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_AUTH_SET ||
	       step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM_HA ||
	       step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_DRS;
}

static void fail(struct cli_op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct cli_op *op, int code, const char *fmt, ...)
{
	va_list ap;

	op->res.code = code;
	va_start(ap, fmt);
	vsnprintf(op->res.error, sizeof(op->res.error), fmt, ap);
	va_end(ap);
}

/* One request and its reply on ssl. NULL with op's result set on failure. */
static Keel__Cluster__JoinReply *exchange(struct cli_op *op, SSL *ssl,
					  const Keel__Cluster__JoinRequest *rq, const char *addr)
{
	size_t n = keel__cluster__join_request__get_packed_size(rq);
	uint8_t *p = kb_malloc(n ? n : 1);
	struct kb_errmsg e = {{0}};
	Keel__Cluster__JoinReply *rp;
	struct kb_buf in;
	int rv;

	if (!p) {
		fail(op, -ENOMEM, "out of memory");
		return NULL;
	}
	keel__cluster__join_request__pack(rq, p);
	rv = cd_tls_send(ssl, p, n, &e);
	OPENSSL_cleanse(p, n);
	kb_free(p);
	if (rv) {
		fail(op, -EIO, "%s: %s", addr, e.msg);
		return NULL;
	}
	kb_buf_init(&in, 0);
	rv = cd_tls_recv(ssl, &in, REPLY_MAX, &e);
	if (rv) {
		kb_buf_close(&in);
		fail(op, -EIO, "%s: %s", addr, rv == -EPIPE ? "connection closed" : e.msg);
		return NULL;
	}
	rp = keel__cluster__join_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	if (!rp)
		fail(op, KB_EPROTO, "%s: the reply is not a JoinReply", addr);
	return rp;
}

/* ---- join ------------------------------------------------------------------------------ */

static int write_file(struct cli_op *op, const char *name, const void *p, size_t n, mode_t mode)
{
	char path[PATH_MAX + 16];
	struct kb_errmsg e = {{0}};
	int rv;

	snprintf(path, sizeof(path), "%.4000s/%s", op->state_dir, name);
	rv = kb_file_write_atomic(path, p, n, mode, &e);
	if (rv && rv != KB_ENOTSYNCED) {
		fail(op, rv, "%s", e.msg);
		return rv;
	}
	return 0;
}

/* Checks and keeps what a successful JOIN brought. */
static void join_accept(struct cli_op *op, const Keel__Cluster__JoinReply *rp)
{
	struct kb_errmsg e = {{0}};
	int rv;

	if (!rp->host_cert || !rp->ca_cert || rp->ca_key.len == 0 ||
	    rp->cluster_key.len != CD_CLUSTER_KEY_SIZE) {
		fail(op, KB_EPROTO, "the leader's answer lacks the certificate or keys");
		return;
	}
	rv = cd_ca_verify_host_cert(rp->ca_cert, rp->host_cert, op->id, op->hostname, 0, NULL,
				    &e);
	if (rv) {
		fail(op, rv, "the certificate issued to this host: %s", e.msg);
		return;
	}
	if (write_file(op, CD_CA_CERT_FILE, rp->ca_cert, strlen(rp->ca_cert), 0644) ||
	    write_file(op, CD_CA_KEY_FILE, rp->ca_key.data, rp->ca_key.len, 0600) ||
	    write_file(op, CD_CLUSTER_KEY_FILE, rp->cluster_key.data, rp->cluster_key.len,
		       0600) ||
	    write_file(op, CD_HOST_CERT_FILE, rp->host_cert, strlen(rp->host_cert), 0644))
		return;
	snprintf(op->res.error, sizeof(op->res.error), "%s", rp->cluster_name);
}

static void join_work(uv_work_t *w)
{
	struct cli_op *op = w->data;
	Keel__Cluster__JoinRequest rq = KEEL__CLUSTER__JOIN_REQUEST__INIT;
	Keel__Cluster__Host host = KEEL__CLUSTER__HOST__INIT;
	Keel__Cluster__Capacity cap = KEEL__CLUSTER__CAPACITY__INIT;
	char addr[64], cluster_id[64] = "";
	struct kb_errmsg e = {{0}};
	struct cd_token t;
	char *csr = NULL;
	int rv;

	rv = cd_token_parse(op->token, strlen(op->token), &t, &e);
	if (rv) {
		fail(op, rv, "join token: %s", e.msg);
		return;
	}
	if (!t.has_ca_fingerprint) {
		cd_token_clear(&t);
		fail(op, KB_EPROTO, "join token carries no CA fingerprint: nothing to pin");
		return;
	}
	rv = cd_host_key_create(op->state_dir, op->hostname, &csr, &e);
	if (rv && rv != KB_ENOTSYNCED) {
		cd_token_clear(&t);
		fail(op, rv, "host key: %s", e.msg);
		return;
	}
	cd_host_capacity(&cap.cpu_mhz, &cap.mem_mib);
	host.id = op->id;
	host.name = op->hostname;
	host.vmk0 = op->vmk0;
	host.vmk1 = "";
	host.vmk2 = "";
	host.capacity = &cap;
	snprintf(addr, sizeof(addr), "%s", op->address);
	for (int hop = 0; hop < HOPS_MAX; hop++) {
		SSL_CTX *ctx = cd_tls_client_ctx(NULL, NULL, &e);
		Keel__Cluster__JoinReply *rp;
		SSL *ssl;
		char *peer;

		if (!ctx) {
			fail(op, KB_ESTATE, "%s", e.msg);
			break;
		}
		ssl = cd_tls_connect(ctx, addr, CONNECT_TIMEOUT_MS, &e);
		SSL_CTX_free(ctx);
		if (!ssl) {
			fail(op, -ECONNREFUSED, "%s", e.msg);
			break;
		}
		/* HELLO: pin the CA, then check that this member's certificate chains to it. */
		rq.step = KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_HELLO;
		rp = exchange(op, ssl, &rq, addr);
		if (!rp) {
			cd_tls_close(ssl);
			break;
		}
		if (rp->code || !rp->ca_cert) {
			fail(op, rp->code ? rp->code : KB_EPROTO, "%s: %s", addr,
			     rp->error && *rp->error ? rp->error : "no CA certificate");
			keel__cluster__join_reply__free_unpacked(rp, NULL);
			cd_tls_close(ssl);
			break;
		}
		rv = cd_token_fingerprint_check(&t, rp->ca_cert, &e);
		peer = rv ? NULL : cd_tls_peer_cert_pem(ssl);
		if (rv == 0 && (!peer || cd_ca_verify_host_cert(rp->ca_cert, peer, 0, NULL, 0, NULL,
							       &e) != 0))
			rv = -EKEYREJECTED;
		kb_free(peer);
		if (rv == 0 && cluster_id[0] && strcmp(cluster_id, rp->cluster_id) != 0) {
			kb_errmsg_setf(&e, "redirected to another cluster");
			rv = -EKEYREJECTED;
		}
		if (rv) {
			fail(op, rv, "%s is not a member of the token's cluster: %s", addr, e.msg);
			keel__cluster__join_reply__free_unpacked(rp, NULL);
			cd_tls_close(ssl);
			break;
		}
		snprintf(cluster_id, sizeof(cluster_id), "%s", rp->cluster_id);
		keel__cluster__join_reply__free_unpacked(rp, NULL);

		rq.step = KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_JOIN;
		rq.token = op->token;
		rq.csr = csr;
		rq.host = &host;
		rp = exchange(op, ssl, &rq, addr);
		rq.token = NULL;
		cd_tls_close(ssl);
		if (!rp)
			break;
		if (rp->redirect && *rp->redirect) {
			snprintf(addr, sizeof(addr), "%s", rp->redirect);
			keel__cluster__join_reply__free_unpacked(rp, NULL);
			fail(op, KB_ESTATE, "too many redirects");
			continue;
		}
		if (rp->code) {
			fail(op, rp->code, "%s", rp->error ? rp->error : "refused");
		} else {
			op->res.code = 0;
			join_accept(op, rp);
		}
		keel__cluster__join_reply__free_unpacked(rp, NULL);
		break;
	}
	cd_token_clear(&t);
	kb_free(csr);
}

static void join_done(uv_work_t *w, int status)
{
	struct cli_op *op = w->data;
	struct cd_daemon *d = op->d;
	struct kb_errmsg e = {{0}};
	char name[KB_ERRMSG_SIZE];

	d->client_busy = false;
	if (op->res.code == 0 && d->phase == CD_PHASE_UNBOOTSTRAPPED) {
		snprintf(name, sizeof(name), "%s", op->res.error);
		op->res.error[0] = '\0';
		if (cd_node_joined(d, &e)) {
			op->res.code = KB_ESTATE;
			snprintf(op->res.error, sizeof(op->res.error), "joined, but %s", e.msg);
		} else {
			kb_log(d->log, KB_LOG_INFO, "joined cluster %s through %s", name,
			       op->address);
			op->res.joined = true;
		}
	} else if (op->res.code) {
		kb_log(d->log, KB_LOG_WARN, "join through %s failed: %s", op->address,
		       op->res.error);
	}
	if (d->client_cb)
		d->client_cb(d, d->client_arg, &op->res);
	d->client_cb = NULL;
	OPENSSL_cleanse(op->token, sizeof(op->token));
	kb_free(op);
	(void)status;
}

static struct cli_op *op_new(struct cd_daemon *d, cd_client_cb cb, void *arg,
			     struct kb_errmsg *e)
{
	struct cli_op *op;

	if (d->client_busy) {
		kb_errmsg_setf(e, "another cluster operation is in progress");
		return NULL;
	}
	op = kb_calloc(1, sizeof(*op));
	if (!op) {
		kb_errmsg_setf(e, "out of memory");
		return NULL;
	}
	op->d = d;
	op->work.data = op;
	op->id = d->id;
	snprintf(op->state_dir, sizeof(op->state_dir), "%s", d->state_dir);
	snprintf(op->hostname, sizeof(op->hostname), "%s", d->hostname);
	snprintf(op->vmk0, sizeof(op->vmk0), "%s", d->address);
	d->client_cb = cb;
	d->client_arg = arg;
	return op;
}

int cd_node_join(struct cd_daemon *d, const char *address, const char *token, cd_client_cb cb,
		 void *arg, struct kb_errmsg *e)
{
	struct cli_op *op;
	char ip[32];
	unsigned port = d->port + CD_JOIN_PORT_OFFSET;

	if (d->phase == CD_PHASE_FIND_VMK0) {
		kb_errmsg_setf(e, "vmk0 (the Management adapter) is not up yet");
		return KB_ESTATE;
	}
	if (d->phase != CD_PHASE_UNBOOTSTRAPPED) {
		const struct cd_state *s = cd_fsm_state(&d->fsm);

		kb_errmsg_setf(e, "this host is already in cluster %s",
			       s->config.set ? s->config.name : "(being formed)");
		return KB_ESTATE;
	}
	if (strlen(token) > CD_TOKEN_TEXT_MAX) {
		kb_errmsg_setf(e, "join token: too long");
		return KB_EPROTO;
	}
	if (sscanf(address, "%31[0-9.]:%u", ip, &port) < 1 || port == 0 || port > 65535) {
		kb_errmsg_setf(e, "'%s' is not A.B.C.D[:port]", address);
		return KB_EPROTO;
	}
	op = op_new(d, cb, arg, e);
	if (!op)
		return KB_ESTATE;
	snprintf(op->address, sizeof(op->address), "%s:%u", ip, port);
	snprintf(op->token, sizeof(op->token), "%s", token);
	d->client_busy = true;
	uv_queue_work(d->loop, &op->work, join_work, join_done);
	return 0;
}

/* ---- member requests -------------------------------------------------------------------- */

static void member_work(uv_work_t *w)
{
	struct cli_op *op = w->data;
	Keel__Cluster__JoinRequest rq = KEEL__CLUSTER__JOIN_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vmrq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterConfigSet cfgrq = KEEL__CLUSTER__CLUSTER_CONFIG_SET__INIT;
	Keel__Cluster__ClusterMaintenance mrq = KEEL__CLUSTER__CLUSTER_MAINTENANCE__INIT;
	Keel__Cluster__ClusterAuthSet arq = KEEL__CLUSTER__CLUSTER_AUTH_SET__INIT;
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX + 16], addr[64], *ca;
	/* a VM operation's vmkernel gives up after 5 s: stop retrying before that */
	uint64_t deadline = kb_now_ns() + (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM
						   ? 4000
						   : RETRY_FOR_MS) *
						  1000000ull;
	SSL_CTX *ctx;
	int hops = 0;

	snprintf(path, sizeof(path), "%.4000s/%s", op->state_dir, CD_CA_CERT_FILE);
	ca = cd_read_text(path, CD_PEM_MAX, &e);
	ctx = ca ? cd_tls_client_ctx(ca, op->state_dir, &e) : NULL;
	kb_free(ca);
	if (!ctx) {
		fail(op, KB_ECONFIG, "%s", e.msg);
		return;
	}
	rq.step = op->step;
	rq.ttl_s = op->ttl_s;
	rq.remove_host = op->host;
	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_CONFIG) {
		cfgrq.failure_timeout_ms = op->cfg.failure_timeout_ms;
		cfgrq.isolation_response = op->cfg.isolation;
		cfgrq.ha = op->cfg.ha;
		cfgrq.admission_set = op->cfg.admission_set;
		cfgrq.admission_failures = op->cfg.admission_failures;
		cfgrq.admission_percent = op->cfg.admission_percent;
		rq.config_set = &cfgrq;
	}
	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_MAINTENANCE) {
		mrq.host = op->host;
		mrq.enter = op->enter;
		rq.maintenance = &mrq;
	}
	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_AUTH_SET) {
		arq.expect_version = op->auth_expect;
		arq.blob.data = op->auth_blob;
		arq.blob.len = op->auth_len;
		rq.auth_set = &arq;
	}
	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM_HA) {
		rq.vm_ha = keel__cluster__cluster_vm_ha__unpack(NULL, op->vmha_len, op->vmha);
		if (!rq.vm_ha) {
			fail(op, -ENOMEM, "out of memory");
			SSL_CTX_free(ctx);
			return;
		}
	}
	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_DRS) {
		bool ok;

		if (op->drs_rule) {
			rq.rule = keel__cluster__cluster_rule_request__unpack(NULL, op->vmha_len,
									      op->vmha);
			ok = rq.rule != NULL;
		} else {
			rq.drs_config_set = keel__cluster__cluster_config_set__unpack(
			    NULL, op->vmha_len, op->vmha);
			ok = rq.drs_config_set != NULL;
		}
		if (!ok) {
			fail(op, -ENOMEM, "out of memory");
			SSL_CTX_free(ctx);
			return;
		}
	}
	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM) {
		vmrq.op = op->vm_op;
		vmrq.uuid = op->vm_uuid;
		vmrq.name = op->vm_name;
		vmrq.vmx_path = op->vm_path;
		vmrq.mem_mib = op->vm_mem_mib;
		vmrq.cpu_mhz = op->vm_cpu_mhz;
		vmrq.error = op->vm_error;
		vmrq.op_id = op->vm_op_id;
		vmrq.destination = op->vm_destination;
		vmrq.wanted_only = op->vm_wanted_only;
		vmrq.ft_generation = op->vm_ft_generation;
		rq.vm = &vmrq;
	}
	snprintf(addr, sizeof(addr), "%s", op->address);
	for (;;) {
		Keel__Cluster__JoinReply *rp;
		SSL *ssl = cd_tls_connect(ctx, addr, CONNECT_TIMEOUT_MS, &e);
		bool retry = false;

		if (!ssl) {
			fail(op, -ECONNREFUSED, "%s", e.msg);
			retry = true;
			snprintf(addr, sizeof(addr), "%s", op->address);
		} else {
			rp = exchange(op, ssl, &rq, addr);
			cd_tls_close(ssl);
			if (!rp)
				break;
			if (rp->redirect && *rp->redirect && hops++ < HOPS_MAX) {
				snprintf(addr, sizeof(addr), "%s", rp->redirect);
				keel__cluster__join_reply__free_unpacked(rp, NULL);
				continue;
			}
			if (rp->vm) {
				op->vm_answered = true;
				op->vm_owner = rp->vm->owner;
				op->vm_epoch = rp->vm->epoch;
				op->vm_host = rp->vm->host_id;
				snprintf(op->vm_owner_name, sizeof(op->vm_owner_name), "%s",
					 rp->vm->owner_name ? rp->vm->owner_name : "");
				snprintf(op->vm_placement, sizeof(op->vm_placement), "%s",
					 rp->vm->placement ? rp->vm->placement : "");
				op->vm_placed = rp->vm->placed;
				op->vm_index = rp->vm->commit_index;
				if (rp->vm->op) {
					struct kb_errmsg ignore = {{0}};

					op->vm_has_op = cd__op_from_pb(rp->vm->op, &op->vm_inflight,
								       &ignore) == 0;
				}
			}
			if (rp->auth) {
				op->auth_answered = true;
				op->auth_version = rp->auth->version;
				op->auth_host = rp->auth->host;
				op->auth_at_ms = rp->auth->at_ms;
			}
			if (rp->code) {
				fail(op, rp->code, "%s", rp->error ? rp->error : "refused");
				/* No leader yet, or leadership moving: wait and ask again. */
				retry = rp->code == -EAGAIN ||
					(rp->code == KB_ESTATE && !(rp->redirect && *rp->redirect));
			} else {
				op->res.code = 0;
				op->res.error[0] = '\0';
				if (rp->token)
					snprintf(op->res.token, sizeof(op->res.token), "%s",
						 rp->token);
				op->res.token_expires_s = rp->token_expires_s;
			}
			keel__cluster__join_reply__free_unpacked(rp, NULL);
		}
		if (!retry || kb_now_ns() > deadline)
			break;
		hops = 0;
		kb_sleep_ns(300 * 1000000ull);
	}
	if (rq.vm_ha)
		keel__cluster__cluster_vm_ha__free_unpacked(rq.vm_ha, NULL);
	if (rq.rule)
		keel__cluster__cluster_rule_request__free_unpacked(rq.rule, NULL);
	if (rq.drs_config_set)
		keel__cluster__cluster_config_set__free_unpacked(rq.drs_config_set, NULL);
	SSL_CTX_free(ctx);
}

static void on_leave_timer(uv_timer_t *t)
{
	struct cd_daemon *d = t->data;

	uv_close((uv_handle_t *)t, NULL);
	kb_log(d->log, KB_LOG_INFO, "left the cluster: clusterd restarts without it");
	uv_kill(getpid(), SIGTERM);
}

static void vm_answer(struct cli_op *op)
{
	Keel__Cluster__ClusterVmReply rp = KEEL__CLUSTER__CLUSTER_VM_REPLY__INIT;
	Keel__Cluster__Operation pop = KEEL__CLUSTER__OPERATION__INIT;

	rp.member = true;
	rp.owner = op->vm_owner;
	rp.epoch = op->vm_epoch;
	rp.host_id = op->vm_answered ? op->vm_host : op->id;
	rp.owner_name = op->vm_owner_name;
	rp.placement = op->vm_placement;
	rp.placed = op->vm_placed;
	if (op->vm_has_op) {
		pop.id = op->vm_inflight.id;
		pop.kind = op->vm_inflight.kind;
		pop.vm = op->vm_inflight.vm;
		pop.source = op->vm_inflight.source;
		pop.destination = op->vm_inflight.destination;
		pop.epoch = op->vm_inflight.epoch;
		pop.phase = op->vm_inflight.phase;
		pop.started_at_ms = op->vm_inflight.started_at_ms;
		rp.op = &pop;
	}
	if (op->vm_cb)
		op->vm_cb(op->d, op->vm_arg, op->res.code, op->res.code ? op->res.error : NULL,
			  &rp);
	kb_free(op);
}

/* A relayed answer waits until this node has applied as far as the leader had committed
 * when it answered (read-your-writes: a `vm create` and then a `vm migrate` on this host, which
 * reads this node's state, see the VM), polled every 5 ms, for 2 s at most. */
#define APPLIED_WAIT_MS 2000

struct applied_wait {
	uv_timer_t timer;
	struct cli_op *op;
	uint64_t until_ms;
};

static void applied_wait_free(uv_handle_t *h)
{
	kb_free(h->data);
}

static void on_applied_wait(uv_timer_t *t)
{
	struct applied_wait *w = t->data;
	struct cli_op *op = w->op;

	if (raft_last_applied(&op->d->raft) < op->vm_index && uv_now(op->d->loop) < w->until_ms)
		return;
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, applied_wait_free);
	vm_answer(op);
}

static void vm_done(struct cli_op *op)
{
	struct applied_wait *w;

	if (op->res.code == 0 && op->vm_index > raft_last_applied(&op->d->raft) &&
	    (w = kb_calloc(1, sizeof(*w))) != NULL) {
		w->op = op;
		w->until_ms = uv_now(op->d->loop) + APPLIED_WAIT_MS;
		uv_timer_init(op->d->loop, &w->timer);
		w->timer.data = w;
		uv_timer_start(&w->timer, on_applied_wait, 5, 5);
		return;
	}
	vm_answer(op);
}

/* The end of a forwarded maintenance or auth-store request. */
static void fwd_done(struct cli_op *op)
{
	Keel__Cluster__AuthDb a = KEEL__CLUSTER__AUTH_DB__INIT;
	bool with_auth = op->res.code == 0 && op->auth_answered;

	a.version = op->auth_version;
	a.host = op->auth_host;
	a.at_ms = op->auth_at_ms;
	if (op->res.code)
		kb_log(op->d->log, KB_LOG_WARN, "forwarded request failed: %s", op->res.error);
	op->m_cb(op->d, op->m_arg, op->res.code, op->res.code ? op->res.error : NULL,
		 with_auth ? &a : NULL);
	kb_free(op->auth_blob);
	kb_free(op->vmha);
	kb_free(op);
}

static void member_done(uv_work_t *w, int status)
{
	struct cli_op *op = w->data;
	struct cd_daemon *d = op->d;

	if (op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM) {
		vm_done(op);
		return;
	}
	if (detached_step(op->step)) {
		fwd_done(op);
		return;
	}

	d->client_busy = false;
	if (op->res.code)
		kb_log(d->log, KB_LOG_WARN, "cluster request failed: %s", op->res.error);
	if (op->res.code == 0 && op->step == KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_LEAVE) {
		/* Out of the cluster: stop, wipe the membership, start again unbootstrapped. */
		d->wipe_on_exit = true;
		d->reexec = true;
		cd_ctl_hand_over(d); /* a request from now on waits for the new image */
		uv_timer_init(d->loop, &d->leave_timer);
		d->leave_timer.data = d;
		uv_timer_start(&d->leave_timer, on_leave_timer, 300, 0);
	}
	if (d->client_cb)
		d->client_cb(d, d->client_arg, &op->res);
	d->client_cb = NULL;
	kb_free(op);
	(void)status;
}

static int member_request(struct cd_daemon *d, int step, uint32_t ttl_s, const char *host,
			  const struct cd_cfg_change *cfg, cd_client_cb cb, void *arg,
			  struct kb_errmsg *e)
{
	struct cli_op *op;
	char ip[32];
	unsigned port;

	if (d->phase != CD_PHASE_RUNNING || !d->ca) {
		kb_errmsg_setf(e, "this host is not in a cluster");
		return KB_ESTATE;
	}
	if (ttl_s > CD_TOKEN_TTL_MAX) {
		kb_errmsg_setf(e, "a token lives at most %u s", CD_TOKEN_TTL_MAX);
		return -EINVAL;
	}
	op = op_new(d, cb, arg, e);
	if (!op)
		return KB_ESTATE;
	op->step = step;
	op->ttl_s = ttl_s;
	if (cfg)
		op->cfg = *cfg;
	snprintf(op->host, sizeof(op->host), "%s", host ? host : "");
	/* Ask the leader when known, else this host's own port, which redirects. */
	if (cd_node_leader_join_addr(d, op->address, sizeof(op->address))) {
		sscanf(d->address, "%31[0-9.]:%u", ip, &port);
		snprintf(op->address, sizeof(op->address), "%s:%u", ip,
			 port + CD_JOIN_PORT_OFFSET);
	}
	d->client_busy = true;
	uv_queue_work(d->loop, &op->work, member_work, member_done);
	return 0;
}

int cd_node_member_request(struct cd_daemon *d, int step, uint32_t ttl_s, const char *host,
			   cd_client_cb cb, void *arg, struct kb_errmsg *e)
{
	return member_request(d, step, ttl_s, host, NULL, cb, arg, e);
}

int cd_node_config_set(struct cd_daemon *d, const struct cd_cfg_change *c, cd_client_cb cb,
		       void *arg, struct kb_errmsg *e)
{
	if (c->failure_timeout_ms && (c->failure_timeout_ms < 100 || c->failure_timeout_ms > 600000)) {
		kb_errmsg_setf(e, "the failure timeout is 100..600000 ms");
		return -EINVAL;
	}
	if (c->admission_set &&
	    (c->admission_failures > CD_ADMISSION_FAILURES_MAX || c->admission_percent > 100 ||
	     (c->admission_failures && c->admission_percent))) {
		kb_errmsg_setf(e, "admission control: host failures 0..%d or a percentage 0..100, "
				  "not both",
			       CD_ADMISSION_FAILURES_MAX);
		return -EINVAL;
	}
	return member_request(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_CONFIG, 0, NULL, c, cb,
			      arg, e);
}

/* ---- VM operations ---------------------------------------------------------------------- */

int cd_node_vm_request(struct cd_daemon *d, const Keel__Cluster__ClusterVmRequest *rq,
		       cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	struct cli_op *op;
	char ip[32];
	unsigned port;

	if (d->phase != CD_PHASE_RUNNING || !d->ca) {
		kb_errmsg_setf(e, "this host is not in a cluster");
		return KB_ESTATE;
	}
	if (cd_node_is_ready_leader(d))
		return cd_vmop_leader(d, d->id, rq, cb, arg, e);
	op = kb_calloc(1, sizeof(*op));
	if (!op) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	op->d = d;
	op->work.data = op;
	op->id = d->id;
	op->step = KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM;
	op->vm_op = rq->op;
	snprintf(op->vm_uuid, sizeof(op->vm_uuid), "%s", rq->uuid ? rq->uuid : "");
	snprintf(op->vm_name, sizeof(op->vm_name), "%s", rq->name ? rq->name : "");
	snprintf(op->vm_path, sizeof(op->vm_path), "%s", rq->vmx_path ? rq->vmx_path : "");
	op->vm_mem_mib = rq->mem_mib;
	op->vm_cpu_mhz = rq->cpu_mhz;
	snprintf(op->vm_error, sizeof(op->vm_error), "%s", rq->error ? rq->error : "");
	op->vm_op_id = rq->op_id;
	op->vm_destination = rq->destination;
	op->vm_wanted_only = rq->wanted_only;
	op->vm_ft_generation = rq->ft_generation;
	op->vm_cb = cb;
	op->vm_arg = arg;
	snprintf(op->state_dir, sizeof(op->state_dir), "%s", d->state_dir);
	if (cd_node_leader_join_addr(d, op->address, sizeof(op->address))) {
		sscanf(d->address, "%31[0-9.]:%u", ip, &port);
		snprintf(op->address, sizeof(op->address), "%s:%u", ip,
			 port + CD_JOIN_PORT_OFFSET);
	}
	uv_queue_work(d->loop, &op->work, member_work, member_done);
	return 0;
}

/* ---- maintenance and the auth store ------------------------------------------------------- */

/* Queues a forwarded request; blob and vmha (packed ClusterVmHa) are copied. */
static int forward(struct cd_daemon *d, int step, const char *host, bool enter, uint64_t expect,
		   const void *blob, size_t len, const void *vmha, size_t vmha_len, bool drs_rule,
		   cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	struct cli_op *op = kb_calloc(1, sizeof(*op));
	char ip[32];
	unsigned port;

	if (op && len) {
		op->auth_blob = kb_malloc(len);
		if (!op->auth_blob) {
			kb_free(op);
			op = NULL;
		}
	}
	if (op && vmha) {
		op->vmha = kb_malloc(vmha_len ? vmha_len : 1);
		if (!op->vmha) {
			kb_free(op->auth_blob);
			kb_free(op);
			op = NULL;
		}
	}
	if (!op) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	if (len)
		memcpy(op->auth_blob, blob, len);
	if (vmha && vmha_len)
		memcpy(op->vmha, vmha, vmha_len);
	op->vmha_len = vmha_len;
	op->drs_rule = drs_rule;
	op->auth_len = len;
	op->auth_expect = expect;
	op->d = d;
	op->work.data = op;
	op->id = d->id;
	op->step = step;
	op->enter = enter;
	snprintf(op->host, sizeof(op->host), "%s", host ? host : "");
	op->m_cb = cb;
	op->m_arg = arg;
	snprintf(op->state_dir, sizeof(op->state_dir), "%s", d->state_dir);
	if (cd_node_leader_join_addr(d, op->address, sizeof(op->address))) {
		sscanf(d->address, "%31[0-9.]:%u", ip, &port);
		snprintf(op->address, sizeof(op->address), "%s:%u", ip,
			 port + CD_JOIN_PORT_OFFSET);
	}
	uv_queue_work(d->loop, &op->work, member_work, member_done);
	return 0;
}

int cd__forward(struct cd_daemon *d, int step, const char *host, bool enter, uint64_t expect,
		const void *blob, size_t len, cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	return forward(d, step, host, enter, expect, blob, len, NULL, 0, false, cb, arg, e);
}

int cd__forward_vm_ha(struct cd_daemon *d, const Keel__Cluster__ClusterVmHa *rq,
		      cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	size_t n = keel__cluster__cluster_vm_ha__get_packed_size(rq);
	uint8_t *p = kb_malloc(n ? n : 1);
	int rv;

	if (!p) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	keel__cluster__cluster_vm_ha__pack(rq, p);
	rv = forward(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM_HA, NULL, false, 0, NULL, 0, p,
		     n, false, cb, arg, e);
	kb_free(p);
	return rv;
}

int cd__forward_drs(struct cd_daemon *d, const Keel__Cluster__ClusterRuleRequest *rule,
		    const Keel__Cluster__ClusterConfigSet *cs, cd_member_cb cb, void *arg,
		    struct kb_errmsg *e)
{
	size_t n = rule ? keel__cluster__cluster_rule_request__get_packed_size(rule)
			: keel__cluster__cluster_config_set__get_packed_size(cs);
	uint8_t *p = kb_malloc(n ? n : 1);
	int rv;

	if (!p) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	if (rule)
		keel__cluster__cluster_rule_request__pack(rule, p);
	else
		keel__cluster__cluster_config_set__pack(cs, p);
	rv = forward(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_DRS, NULL, false, 0, NULL, 0, p, n,
		     rule != NULL, cb, arg, e);
	kb_free(p);
	return rv;
}

/* ---- host to host (STEP_MIGRATE_PREPARE) ------------------------------------------------- */

int cd__peer_call(const char *state_dir, const char *address, uint64_t expect_id,
		  const Keel__Cluster__JoinRequest *rq, Keel__Cluster__JoinReply **out,
		  struct kb_errmsg *e)
{
	char path[PATH_MAX + 16], *ca, *peer = NULL;
	size_t n = keel__cluster__join_request__get_packed_size(rq);
	uint8_t *p = NULL;
	struct kb_buf in;
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	int rv;

	*out = NULL;
	snprintf(path, sizeof(path), "%.4000s/%s", state_dir, CD_CA_CERT_FILE);
	ca = cd_read_text(path, CD_PEM_MAX, e);
	ctx = ca ? cd_tls_client_ctx(ca, state_dir, e) : NULL;
	if (!ctx) {
		kb_free(ca);
		return KB_ECONFIG;
	}
	kb_buf_init(&in, 0);
	ssl = cd_tls_connect(ctx, address, CONNECT_TIMEOUT_MS, e);
	if (!ssl) {
		rv = -ECONNREFUSED;
		goto out;
	}
	/* The key goes only to the host the operation names: its certificate must say so. */
	peer = cd_tls_peer_cert_pem(ssl);
	if (!peer) {
		kb_errmsg_setf(e, "%s presented no certificate", address);
		rv = -EKEYREJECTED;
		goto out;
	}
	rv = cd_ca_verify_host_cert(ca, peer, expect_id, NULL, time(NULL), NULL, e);
	if (rv) {
		kb_errmsg_wrapf(e, "%s is not host %016" PRIx64, address, expect_id);
		goto out;
	}
	p = kb_malloc(n ? n : 1);
	if (!p) {
		kb_errmsg_setf(e, "out of memory");
		rv = -ENOMEM;
		goto out;
	}
	keel__cluster__join_request__pack(rq, p);
	rv = cd_tls_send(ssl, p, n, e);
	OPENSSL_cleanse(p, n);
	if (rv) {
		kb_errmsg_wrapf(e, "%s", address);
		rv = -EIO;
		goto out;
	}
	rv = cd_tls_recv(ssl, &in, REPLY_MAX, e);
	if (rv) {
		if (rv == -EPIPE)
			kb_errmsg_setf(e, "%s: connection closed", address);
		rv = -EIO;
		goto out;
	}
	*out = keel__cluster__join_reply__unpack(NULL, in.len, in.data);
	if (!*out) {
		kb_errmsg_setf(e, "%s: the reply is not a JoinReply", address);
		rv = KB_EPROTO;
	}
out:
	kb_buf_close(&in);
	kb_free(p);
	kb_free(peer);
	kb_free(ca);
	if (ssl)
		cd_tls_close(ssl);
	SSL_CTX_free(ctx);
	return rv;
}
