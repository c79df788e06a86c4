/*
 * `keel cluster`: the cluster daemon of this host. This file holds the command tree, the
 * call to clusterd and the subcommands that change who is in the cluster (create,
 * join-token, join, leave, remove-host) and bench-commit; status, events and config are in
 * cluster_status.c, ha in cluster_ha.c, rule and drs in cluster_drs.c.
 *
 * These talk to clusterd's control socket, not vmkernel's: --cluster-socket PATH, else
 * clusterd.sock beside the vmkernel socket given with --socket or $KEEL_SOCKET, else
 * $KEEL_CLUSTER_SOCKET, else /var/lib/keel/clusterd.sock. One connection per call: a
 * ClusterRequest frame out, a ClusterReply frame back (proto/cluster.proto, lib/frame.h).
 *
 * status, events and join-token also work through hostd's API (--server, cluster_api.c);
 * so do create, join, leave and remove-host, which hostd runs as Tasks: keel follows the
 * task to its end (task.c) and prints one line saying what happened, or with --no-wait
 * the task's id. --cluster-socket is a usage error there, --no-wait one without it.
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
#include "mgmt-api/keel/cluster_int.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

#define KC_DEFAULT_CLUSTER_SOCKET "/var/lib/keel/clusterd.sock"
#define REPLY_MAX		  (16u << 20)

/* create, leave, remove-host: also a task through hostd's API. */
static const struct kc_opt op_opts[] = {
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt join_opts[] = {
    {"token", "TOKEN", "the join token (from `keel cluster join-token` on a member)", O_TOKEN,
     false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt token_opts[] = {
    {"ttl", "SECONDS", "how long the token is valid (default 3600, at most 30 days)", O_TTL, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt bench_opts[] = {
    {"count", "N", "commands to commit (default 10000)", O_COUNT, false},
    {"window", "W", "proposals in flight (default 64)", O_WINDOW, false},
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

int kc_cluster_call(struct kc_ctx *ctx, const struct kc_call *call,
		    const Keel__Cluster__ClusterRequest *rq, Keel__Cluster__ClusterReply **out)
{
	return call_clusterd(ctx, call, rq, out);
}

/* Whether to go through hostd's API: KC_EXIT_OK and *api, or a usage
 * error for --cluster-socket, which has no meaning there. */
int kc_cluster_through_api(struct kc_ctx *ctx, const struct kc_call *call, bool *api)
{
	*api = kc_api_wanted(ctx);
	if (*api && kc_has(call, O_CSOCK))
		return kc_usage(ctx, call,
				"--cluster-socket does not apply through hostd's API (--server)");
	return KC_EXIT_OK;
}

/* Whether an operation goes through hostd's API: as kc_cluster_through_api, and --no-wait,
 * which only means something there, is a usage error locally. */
static int op_through_api(struct kc_ctx *ctx, const struct kc_call *call, bool *api)
{
	int rc = kc_cluster_through_api(ctx, call, api);

	if (rc == KC_EXIT_OK && !*api && kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	return rc;
}

/* ---- create, join, leave, remove-host through hostd's API: a Task each ------------------ */

struct op_text {
	const char *verb;    /* "Created", "Joined" */
	const char *address; /* join: the member asked, as given */
};

/* "Created cluster demo (cluster-U)." / "Joined cluster demo (cluster-U) through ADDR.", the
 * name from ClusterGetStatus; the task's result alone when that cannot be asked. */
static void cluster_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
			 size_t size)
{
	Keel__Vim__ClusterStatusRequest rq = KEEL__VIM__CLUSTER_STATUS_REQUEST__INIT;
	const struct op_text *ot = arg;
	const Keel__Vim__ClusterStatus *s = NULL;
	ProtobufCMessage *m = NULL;
	struct kl_status st;
	char name[128], id[128], addr[300], through[320] = "";

	if (kl_client_call(c, "ClusterGetStatus", &rq.base, &keel__vim__cluster_status__descriptor,
			   &m, &st) == 0)
		s = (const Keel__Vim__ClusterStatus *)m;
	if (ot->address)
		snprintf(through, sizeof(through), " through %s",
			 kc_clean(ot->address, addr, sizeof(addr)));
	kc_clean(task->result[0] || !s || !s->cluster ? task->result : s->cluster->id, id,
		 sizeof(id));
	if (s && s->cluster && s->cluster->name[0])
		snprintf(done, size, "%s cluster %s (%s)%s.", ot->verb,
			 kc_clean(s->cluster->name, name, sizeof(name)), id, through);
	else
		snprintf(done, size, "%s cluster %s%s.", ot->verb, id[0] ? id : "(unknown)",
			 through);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

/* The outcome line made before the call. */
static void fixed_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
		       size_t size)
{
	(void)c;
	(void)task;
	snprintf(done, size, "%s", (const char *)arg);
}

static int api_create(struct kc_ctx *ctx, const struct kc_call *call, const char *name)
{
	Keel__Vim__ClusterCreateRequest rq = KEEL__VIM__CLUSTER_CREATE_REQUEST__INIT;
	struct op_text ot = {.verb = "Created"};

	rq.name = (char *)name;
	return kc_task_run(ctx, call, "ClusterCreate", &rq.base, cluster_text, &ot);
}

static int api_join(struct kc_ctx *ctx, const struct kc_call *call, const char *address,
		    const char *token)
{
	Keel__Vim__ClusterJoinRequest rq = KEEL__VIM__CLUSTER_JOIN_REQUEST__INIT;
	struct op_text ot = {.verb = "Joined", .address = address};

	rq.address = (char *)address;
	rq.token = (char *)token;
	return kc_task_run(ctx, call, "ClusterJoin", &rq.base, cluster_text, &ot);
}

static int api_leave(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__ClusterLeaveRequest rq = KEEL__VIM__CLUSTER_LEAVE_REQUEST__INIT;
	char text[] = "this host left the cluster."; /* as the local command says */

	return kc_task_run(ctx, call, "ClusterLeave", &rq.base, fixed_text, text);
}

static int api_remove_host(struct kc_ctx *ctx, const struct kc_call *call, const char *host)
{
	Keel__Vim__RemoveHostRequest rq = KEEL__VIM__REMOVE_HOST_REQUEST__INIT;
	char text[320], h[256];

	rq.host = (char *)host;
	snprintf(text, sizeof(text), "host %s removed from the cluster.",
		 kc_clean(host, h, sizeof(h)));
	return kc_task_run(ctx, call, "ClusterRemoveHost", &rq.base, fixed_text, text);
}

static int create_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterCreate cr = KEEL__CLUSTER__CLUSTER_CREATE__INIT;
	bool api;
	int rc = op_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return api_create(ctx, call, call->pos[0]);
	cr.name = (char *)call->pos[0];
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CREATE;
	rq.create = &cr;
	return kc_cluster_run_request(ctx, call, &rq);
}

int kc_cluster_parse_u64_opt(struct kc_ctx *ctx, const char *v, const char *what, uint64_t max,
			     uint64_t *out)
{
	char *end;

	errno = 0;
	*out = v ? strtoull(v, &end, 10) : 0;
	if (v && (errno || *end || *out > max))
		return kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "bad %s '%s'", what, v);
	return KC_EXIT_OK;
}

static int token_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterJoinTokenRequest jt = KEEL__CLUSTER__CLUSTER_JOIN_TOKEN_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t ttl;
	bool api;
	int rc = kc_cluster_parse_u64_opt(ctx, kc_opt(call, O_TTL), "--ttl", 30 * 24 * 3600, &ttl);

	if (rc == 0)
		rc = kc_cluster_through_api(ctx, call, &api);
	if (rc)
		return rc;
	if (api)
		return kc_cluster_api_token(ctx, call, (uint32_t)ttl);
	jt.ttl_s = (uint32_t)ttl;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_JOIN_TOKEN;
	rq.join_token = &jt;
	rc = call_clusterd(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "token", rp->token);
		kc_json_u64(&j, "expires_s", rp->token_expires_s);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("%s\n", rp->token);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return KC_EXIT_OK;
}

static int join_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterJoin j = KEEL__CLUSTER__CLUSTER_JOIN__INIT;
	bool api;
	int rc;

	j.address = (char *)call->pos[0];
	j.token = (char *)kc_opt(call, O_TOKEN);
	if (!j.token || !j.token[0])
		return kc_usage(ctx, call, "--token is required");
	rc = op_through_api(ctx, call, &api);
	if (rc)
		return rc;
	if (api)
		return api_join(ctx, call, j.address, j.token);
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_JOIN;
	rq.join = &j;
	return kc_cluster_run_request(ctx, call, &rq);
}

static int simple_run(struct kc_ctx *ctx, const struct kc_call *call,
		      Keel__Cluster__ClusterRequest *rq, const char *done)
{
	Keel__Cluster__ClusterReply *rp;
	int rc = call_clusterd(ctx, call, rq, &rp);

	if (rc)
		return rc;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "message", done);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("%s.\n", done);
	}
	return KC_EXIT_OK;
}

static int leave_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterLeave l = KEEL__CLUSTER__CLUSTER_LEAVE__INIT;
	bool api;
	int rc = op_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return api_leave(ctx, call);
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_LEAVE;
	rq.leave = &l;
	return simple_run(ctx, call, &rq, "this host left the cluster");
}

static int remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterRemoveHost r = KEEL__CLUSTER__CLUSTER_REMOVE_HOST__INIT;
	char done[128];
	bool api;
	int rc = op_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return api_remove_host(ctx, call, call->pos[0]);
	r.host = (char *)call->pos[0];
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_REMOVE_HOST;
	rq.remove_host = &r;
	snprintf(done, sizeof(done), "host %s removed from the cluster", call->pos[0]);
	return simple_run(ctx, call, &rq, done);
}

static int bench_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterBenchCommit bc = KEEL__CLUSTER__CLUSTER_BENCH_COMMIT__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t count, window;
	int rc;

	rc = kc_cluster_parse_u64_opt(ctx, kc_opt(call, O_COUNT), "--count", 1000000, &count);
	if (rc == 0)
		rc = kc_cluster_parse_u64_opt(ctx, kc_opt(call, O_WINDOW), "--window", 65536,
					      &window);
	if (rc)
		return rc;
	bc.count = count ? (uint32_t)count : 10000;
	bc.window = window ? (uint32_t)window : 64;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_BENCH_COMMIT;
	rq.bench_commit = &bc;
	rc = call_clusterd(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (!rp->bench) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "the reply carries no result");
	}
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_u64(&j, "count", rp->bench->count);
		kc_json_double(&j, "p50_ms", rp->bench->p50_ms);
		kc_json_double(&j, "p99_ms", rp->bench->p99_ms);
		kc_json_double(&j, "max_ms", rp->bench->max_ms);
		kc_json_double(&j, "ops_s", rp->bench->ops_s);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("%u commands: p50 %.3f ms, p99 %.3f ms, max %.3f ms, %.0f commands/s\n",
		       rp->bench->count, rp->bench->p50_ms, rp->bench->p99_ms, rp->bench->max_ms,
		       rp->bench->ops_s);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return KC_EXIT_OK;
}

static const struct kc_cmd bench_cmd = {
    .name = "bench-commit",
    .summary = "Measure commit latency and throughput on the leader (adds note events).",
    .detail = "Run against the leader's clusterd. Each command is one Raft entry holding one\n"
	      "EventAdd, timed from proposal to apply on the leader.\n",
    .opts = bench_opts,
    .run = bench_run,
};

static const struct kc_cmd token_cmd = {
    .name = "join-token",
    .summary = "Print a single-use, expiring token another host joins with.",
    .detail = "The token carries the cluster CA's fingerprint, which the joining host pins.\n"
	      "Any member can ask; the leader issues it. Keep it secret until used.\n",
    .opts = token_opts,
    .run = token_run,
    .api = true,
};

static const struct kc_cmd join_cmd = {
    .name = "join",
    .args = "ADDR --token TOKEN",
    .summary = "Join this host to the cluster of the member at ADDR.",
    .detail = "ADDR: a member's vmk0 address (A.B.C.D, or A.B.C.D:PORT of its join port,\n"
	      "default 7001). The host proves the token over TLS, gets a certificate from the\n"
	      "cluster CA and is added to Raft by the leader (spare, then standby or voter).\n"
	      "Through hostd's API (--server) the host joining is the server's, ADDR is reached\n"
	      "from it, and the join is a task (--no-wait: print its id). The server's\n"
	      "certificate then becomes one the cluster CA signed: log in to it again with\n"
	      "--ca-file (the CA, ca.crt in a member's state directory) or its new thumbprint.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = join_opts,
    .run = join_run,
    .api = true,
};

static const struct kc_cmd leave_cmd = {
    .name = "leave",
    .summary = "Take this host out of its cluster (it must own no VMs).",
    .detail = "The leader removes the host from the state and from Raft; clusterd then\n"
	      "forgets the cluster (Raft data, certificates) and waits for a create or join.\n"
	      "Through hostd's API (--server) the server's host leaves, as a task (--no-wait:\n"
	      "print its id); its hostd goes back to its self-signed certificate.\n",
    .opts = op_opts,
    .run = leave_run,
    .api = true,
};

static const struct kc_cmd remove_cmd = {
    .name = "remove-host",
    .args = "HOST",
    .summary = "Remove a dead host (name or id) from the cluster.",
    .detail = "For a host that cannot leave by itself: it must not be connected and must own\n"
	      "no VMs. Through hostd's API (--server) a task (--no-wait: print its id); HOST\n"
	      "may also be the API's id, host-<id>.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = op_opts,
    .run = remove_run,
    .api = true,
};

static const struct kc_cmd create_cmd = {
    .name = "create",
    .args = "NAME",
    .summary = "Create a cluster with this host as its first member and leader.",
    .detail = "NAME: letters, digits, '.', '_' and '-', 1 to 63 characters. The host must not\n"
	      "be in a cluster yet. Answers once the cluster's configuration and this host are\n"
	      "committed, with the status.\n"
	      "Through hostd's API (--server) the server's host creates it, as a task\n"
	      "(--no-wait: print its id), and one line names the cluster and its id. The\n"
	      "server's certificate then becomes one the cluster CA signed: log in to it\n"
	      "again with --ca-file (the CA, ca.crt in its state directory) or its new\n"
	      "thumbprint.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = op_opts,
    .run = create_run,
    .api = true,
};

static const struct kc_cmd *const cluster_subs[] = {&create_cmd,
						    &kc_cluster_status_cmd,
						    &token_cmd,
						    &join_cmd,
						    &leave_cmd,
						    &remove_cmd,
						    &kc_cluster_events_cmd,
						    &kc_cluster_config_cmd,
						    &bench_cmd,
						    &kc_cluster_ha_cmd,
						    &kc_cluster_rule_cmd,
						    &kc_cluster_drs_cmd,
						    NULL};

const struct kc_cmd kc_cluster_cmd = {
    .name = "cluster",
    .summary = "The cluster this host belongs to (through clusterd).",
    .detail = "clusterd's socket: --cluster-socket, else clusterd.sock beside --socket,\n"
	      "else $KEEL_CLUSTER_SOCKET, else " KC_DEFAULT_CLUSTER_SOCKET ".\n"
	      "status, events, join-token, create, join, leave, remove-host and ha also\n"
	      "work through hostd's API (--server URL).\n",
    .subs = cluster_subs,
};
