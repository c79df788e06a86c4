/*
 * `keel cluster create NAME` and `keel cluster status`: the cluster daemon of this host.
 *
 * These talk to clusterd's control socket, not vmkernel's: --cluster-socket PATH, else
 * clusterd.sock beside the vmkernel socket given with --socket or $KEEL_SOCKET, else
 * $KEEL_CLUSTER_SOCKET, else /var/lib/keel/clusterd.sock. One connection per call: a
 * ClusterRequest frame out, a ClusterReply frame back (proto/cluster.proto, lib/frame.h).
 *
 * Failure modes, as exit codes: socket missing or no reply in time -> KC_EXIT_UNREACHABLE;
 * a reply that does not decode -> KC_EXIT_PROTO; clusterd refused (code != 0) ->
 * KC_EXIT_FAILED with its message.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "mgmt-api/keel/keel.h"

#define KC_DEFAULT_CLUSTER_SOCKET "/var/lib/keel/clusterd.sock"
#define REPLY_MAX		  (16u << 20)

enum { O_CSOCK = 1 };

static const struct kc_opt cluster_opts[] = {
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static void socket_path(const struct kc_ctx *ctx, const struct kc_call *call, char *out,
			size_t size)
{
	const char *v = kc_opt(call, O_CSOCK), *env = getenv("KEEL_CLUSTER_SOCKET");
	char dir[PATH_MAX];

	if (v) {
		snprintf(out, size, "%s", v);
	} else if (strcmp(ctx->socket, KC_DEFAULT_SOCKET) != 0) {
		snprintf(dir, sizeof(dir), "%s", ctx->socket);
		snprintf(out, size, "%s/clusterd.sock", dirname(dir));
	} else if (env && env[0]) {
		snprintf(out, size, "%s", env);
	} else {
		snprintf(out, size, "%s", KC_DEFAULT_CLUSTER_SOCKET);
	}
}

/* Sends rq and waits for the reply. KC_EXIT_OK and *out (caller frees), or reports the
 * failure and returns its exit code. */
static int call_clusterd(struct kc_ctx *ctx, const struct kc_call *call,
			 const Keel__Cluster__ClusterRequest *rq, Keel__Cluster__ClusterReply **out)
{
	Keel__Cluster__ClusterReply *rp;
	char path[PATH_MAX];
	struct pollfd pfd;
	struct kb_buf in;
	int fd, rc, ex;

	*out = NULL;
	socket_path(ctx, call, path, sizeof(path));
	fd = kb_unix_connect(path);
	if (fd < 0)
		return kc_fail(ctx, KC_EXIT_UNREACHABLE, fd,
			       "cannot reach clusterd at %s: %s (is clusterd running?)", path,
			       strerror(-fd));
	kb_buf_init(&in, REPLY_MAX);
	rc = kb_frame_send_pb(fd, &rq->base);
	if (rc) {
		ex = kc_fail(ctx, KC_EXIT_UNREACHABLE, rc, "cannot send to clusterd at %s: %s",
			     path, kb_strerror(rc));
		goto close;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	do {
		uint64_t t = ctx->timeout_ms;

		rc = poll(&pfd, 1, t == 0 ? -1 : t > INT32_MAX ? INT32_MAX : (int)t);
	} while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		ex = kc_fail(ctx, KC_EXIT_UNREACHABLE, rc < 0 ? -errno : -ETIMEDOUT,
			     "clusterd at %s did not answer in time", path);
		goto close;
	}
	rc = kb_frame_recv(fd, &in, REPLY_MAX);
	if (rc) {
		ex = kc_fail(ctx, KC_EXIT_PROTO, rc, "bad reply from clusterd at %s: %s", path,
			     kb_strerror(rc));
		goto close;
	}
	rp = keel__cluster__cluster_reply__unpack(NULL, in.len, in.data);
	if (!rp) {
		ex = kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO,
			     "bad reply from clusterd at %s: not a ClusterReply", path);
		goto close;
	}
	if (rp->code) {
		ex = kc_fail(ctx, KC_EXIT_FAILED, rp->code, "%s",
			     rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		goto close;
	}
	*out = rp;
	ex = KC_EXIT_OK;
close:
	kb_buf_close(&in);
	close(fd);
	return ex;
}

static const char *host_state(int s)
{
	static const char *const names[] = {"-",      "connected", "unreachable", "partitioned",
					    "failed", "isolated",  "maintenance", "left"};

	return s >= 0 && s < 8 ? names[s] : "?";
}

static const char *raft_role(int r)
{
	static const char *const names[] = {"-", "voter", "standby", "spare"};

	return r >= 0 && r < 4 ? names[r] : "?";
}

static void status_json(const Keel__Cluster__ClusterStatus *s)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", true);
	kc_json_i64(&j, "code", 0);
	kc_json_str(&j, "name", s->name);
	kc_json_str(&j, "cluster_id", s->cluster_id);
	kc_json_u64(&j, "leader_id", s->leader_id);
	kc_json_str(&j, "leader_address", s->leader_address);
	kc_json_u64(&j, "node_id", s->node_id);
	kc_json_str(&j, "node_address", s->node_address);
	kc_json_str(&j, "node_state", s->node_state);
	kc_json_str(&j, "node_role", raft_role(s->node_role));
	kc_json_u64(&j, "commit_index", s->commit_index);
	kc_json_u64(&j, "applied_index", s->applied_index);
	kc_json_arr_begin(&j, "hosts");
	for (size_t i = 0; i < s->n_hosts; i++) {
		const Keel__Cluster__ClusterHostStatus *h = s->hosts[i];

		kc_json_obj_begin(&j, NULL);
		kc_json_u64(&j, "id", h->id);
		kc_json_str(&j, "name", h->name);
		kc_json_str(&j, "vmk0", h->vmk0);
		kc_json_str(&j, "state", host_state(h->state));
		kc_json_str(&j, "role", raft_role(h->role));
		kc_json_obj_end(&j);
	}
	kc_json_arr_end(&j);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

static int status_print(struct kc_ctx *ctx, const Keel__Cluster__ClusterStatus *s)
{
	static const char *const heads[] = {"NAME", "ID", "VMK0", "STATE", "ROLE"};
	struct kc_table t;

	if (ctx->json) {
		status_json(s);
		return KC_EXIT_OK;
	}
	kc_kv(stdout, "Cluster", "%s", s->name[0] ? s->name : "(none)");
	kc_kv(stdout, "Cluster id", "%s", s->cluster_id[0] ? s->cluster_id : "-");
	if (s->leader_id)
		kc_kv(stdout, "Leader", "%" PRIu64 " at %s", s->leader_id, s->leader_address);
	else
		kc_kv(stdout, "Leader", "none");
	kc_kv(stdout, "This node", "%" PRIu64 " at %s, %s, %s", s->node_id,
	      s->node_address[0] ? s->node_address : "-", s->node_state, raft_role(s->node_role));
	kc_kv(stdout, "Commit index", "%" PRIu64, s->commit_index);
	kc_kv(stdout, "Applied index", "%" PRIu64, s->applied_index);
	if (s->n_hosts == 0)
		return KC_EXIT_OK;
	printf("\n");
	kc_table_init(&t, 5, heads, "lrlll");
	for (size_t i = 0; i < s->n_hosts; i++) {
		const Keel__Cluster__ClusterHostStatus *h = s->hosts[i];
		char id[24];
		const char *row[5];

		snprintf(id, sizeof(id), "%" PRIu64, h->id);
		row[0] = h->name;
		row[1] = id;
		row[2] = h->vmk0;
		row[3] = host_state(h->state);
		row[4] = raft_role(h->role);
		kc_table_add(&t, row);
	}
	int rv = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	return rv;
}

static int run_request(struct kc_ctx *ctx, const struct kc_call *call,
		       const Keel__Cluster__ClusterRequest *rq)
{
	Keel__Cluster__ClusterReply *rp;
	int rc = call_clusterd(ctx, call, rq, &rp);

	if (rc)
		return rc;
	if (!rp->status)
		rc = kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "clusterd's reply carries no status");
	else
		rc = status_print(ctx, rp->status);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rc;
}

static int create_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterCreate cr = KEEL__CLUSTER__CLUSTER_CREATE__INIT;

	cr.name = (char *)call->pos[0];
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CREATE;
	rq.create = &cr;
	return run_request(ctx, call, &rq);
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest st = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &st;
	return run_request(ctx, call, &rq);
}

static const struct kc_cmd create_cmd = {
    .name = "create",
    .args = "NAME",
    .summary = "Create a cluster with this host as its first member and leader.",
    .detail = "NAME: letters, digits, '.', '_' and '-', 1 to 63 characters. The host must not\n"
	      "be in a cluster yet. Answers once the cluster's configuration and this host are\n"
	      "committed, with the status.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = cluster_opts,
    .run = create_run,
};

static const struct kc_cmd status_cmd = {
    .name = "status",
    .summary = "Show the cluster as this host sees it: leader, this node, hosts, indexes.",
    .opts = cluster_opts,
    .run = status_run,
};

static const struct kc_cmd *const cluster_subs[] = {&create_cmd, &status_cmd, NULL};

const struct kc_cmd kc_cluster_cmd = {
    .name = "cluster",
    .summary = "The cluster this host belongs to (through clusterd).",
    .detail = "clusterd's socket: --cluster-socket, else clusterd.sock beside --socket,\n"
	      "else $KEEL_CLUSTER_SOCKET, else " KC_DEFAULT_CLUSTER_SOCKET ".\n",
    .subs = cluster_subs,
};
