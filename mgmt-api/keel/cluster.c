/*
 * `keel cluster create NAME` and `keel cluster status`: the cluster daemon of this host.
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
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

#define KC_DEFAULT_CLUSTER_SOCKET "/var/lib/keel/clusterd.sock"
#define REPLY_MAX		  (16u << 20)

enum {
	O_CSOCK = 1,
	O_TOKEN,
	O_TTL,
	O_SINCE,
	O_LIMIT,
	O_COUNT,
	O_WINDOW,
	O_FTIMEOUT,
	O_ISORESP,
	O_HA,
	O_ADM_FAIL,
	O_ADM_PCT,
	O_ADM_OFF,
};

static const struct kc_opt cluster_opts[] = {
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

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

static const struct kc_opt config_opts[] = {
    {"failure-timeout", "MS", "declare a silent host failed after MS (100..600000)", O_FTIMEOUT,
     false},
    {"isolation-response", "R", "power-off, shutdown or leave-powered-on", O_ISORESP, false},
    {"ha", "on|off", "restart the VMs of failed hosts on other hosts (default on)", O_HA, false},
    {"admission-failures", "N", "admission control: keep room for N host failures (1..31)",
     O_ADM_FAIL, false},
    {"admission-percent", "P", "admission control: keep P% of CPU and memory free (1..100)",
     O_ADM_PCT, false},
    {"admission-off", NULL, "no admission control", O_ADM_OFF, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt bench_opts[] = {
    {"count", "N", "commands to commit (default 10000)", O_COUNT, false},
    {"window", "W", "proposals in flight (default 64)", O_WINDOW, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt events_opts[] = {
    {"since", "SEQ", "only events after this sequence number", O_SINCE, false},
    {"limit", "N", "at most the N most recent events", O_LIMIT, false},
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

static const char *isolation_name(int r)
{
	static const char *const names[] = {"-", "power-off", "shutdown", "leave-powered-on"};

	return r >= 0 && r < 4 ? names[r] : "?";
}

static const char *power_name(int p)
{
	static const char *const names[] = {"-", "off", "on", "suspended"};

	return p >= 0 && p < 4 ? names[p] : "?";
}

static void age_text(int64_t ms, char *out, size_t size)
{
	if (ms < 0)
		snprintf(out, size, "-");
	else if (ms < 10000)
		snprintf(out, size, "%" PRId64 "ms", ms);
	else
		snprintf(out, size, "%" PRId64 "s", ms / 1000);
}

static const char *priority_name(int p)
{
	static const char *const names[] = {"-",      "disabled", "low",    "medium",
					    "high",   "lowest",	  "highest"};

	return p >= 0 && p < 7 ? names[p] : "?";
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
	kc_json_bool(&j, "isolated", s->isolated);
	kc_json_u64(&j, "failure_timeout_ms", s->failure_timeout_ms);
	kc_json_str(&j, "isolation_response", isolation_name(s->isolation_response));
	kc_json_bool(&j, "ha_enabled", s->ha_enabled);
	kc_json_u64(&j, "admission_failures", s->admission_failures);
	kc_json_u64(&j, "admission_percent", s->admission_percent);
	kc_json_i64(&j, "leader_contact_age_ms", s->leader_contact_age_ms);
	kc_json_u64(&j, "clock_offset_warn_ms", s->clock_offset_warn_ms);
	kc_json_arr_begin(&j, "hosts");
	for (size_t i = 0; i < s->n_hosts; i++) {
		const Keel__Cluster__ClusterHostStatus *h = s->hosts[i];

		kc_json_obj_begin(&j, NULL);
		kc_json_u64(&j, "id", h->id);
		kc_json_str(&j, "name", h->name);
		kc_json_str(&j, "vmk0", h->vmk0);
		kc_json_str(&j, "state", host_state(h->state));
		kc_json_str(&j, "role", raft_role(h->role));
		kc_json_str(&j, "raft_role", raft_role(h->raft_role));
		kc_json_i64(&j, "net_hb_age_ms", h->net_hb_age_ms);
		kc_json_i64(&j, "ds_hb_age_ms", h->ds_hb_age_ms);
		kc_json_u64(&j, "vms", h->n_vms);
		kc_json_u64(&j, "last_change_ms", h->last_change_ms);
		kc_json_bool(&j, "maintenance", h->maintenance);
		if (h->clock_known)
			kc_json_double(&j, "clock_offset_ms", (double)h->clock_offset_us / 1000);
		else
			kc_json_null(&j, "clock_offset_ms");
		kc_json_bool(&j, "clock_warn", h->clock_warn);
		kc_json_obj_end(&j);
	}
	kc_json_arr_end(&j);
	kc_json_arr_begin(&j, "vms");
	for (size_t i = 0; i < s->n_vms; i++) {
		const Keel__Cluster__ClusterVmStatus *v = s->vms[i];

		kc_json_obj_begin(&j, NULL);
		kc_json_str(&j, "uuid", v->uuid);
		kc_json_str(&j, "name", v->name);
		kc_json_u64(&j, "owner", v->owner);
		kc_json_str(&j, "owner_name", v->owner_name);
		kc_json_u64(&j, "epoch", v->epoch);
		kc_json_str(&j, "desired_power", power_name(v->desired_power));
		kc_json_str(&j, "vmx_path", v->vmx_path);
		kc_json_u64(&j, "mem_mib", v->mem_mib);
		kc_json_u64(&j, "cpu_mhz", v->cpu_mhz);
		kc_json_str(&j, "restart_priority", priority_name(v->priority));
		kc_json_arr_begin(&j, "restart_after");
		for (size_t k = 0; k < v->n_restart_after; k++)
			kc_json_str(&j, NULL, v->restart_after[k]);
		kc_json_arr_end(&j);
		if (v->migration) {
			kc_json_obj_begin(&j, "migration");
			kc_json_u64(&j, "operation", v->migration);
			kc_json_u64(&j, "to", v->migrating_to);
			kc_json_str(&j, "to_name", v->migrating_to_name);
			kc_json_obj_end(&j);
		} else {
			kc_json_null(&j, "migration");
		}
		kc_json_obj_end(&j);
	}
	kc_json_arr_end(&j);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

static int status_print(struct kc_ctx *ctx, const Keel__Cluster__ClusterStatus *s)
{
	static const char *const heads[] = {"NAME", "ID",     "VMK0",  "STATE",
					    "ROLE", "NET-HB", "DS-HB", "VMS"};
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
	if (s->failure_timeout_ms) {
		char adm[64] = "no admission control";

		if (s->admission_failures)
			snprintf(adm, sizeof(adm), "admission: tolerate %u host failure%s",
				 s->admission_failures, s->admission_failures == 1 ? "" : "s");
		else if (s->admission_percent)
			snprintf(adm, sizeof(adm), "admission: keep %u%% free", s->admission_percent);
		kc_kv(stdout, "Settings", "failure timeout %u ms, isolation response %s",
		      s->failure_timeout_ms, isolation_name(s->isolation_response));
		kc_kv(stdout, "HA", "%s, %s", s->ha_enabled ? "on" : "off", adm);
	}
	if (s->isolated)
		kc_kv(stdout, "Isolation", "ISOLATED: no leader heard for %" PRId64 " ms",
		      s->leader_contact_age_ms);
	if (s->n_hosts == 0)
		return KC_EXIT_OK;
	printf("\n");
	kc_table_init(&t, 8, heads, "lrllllrr");
	for (size_t i = 0; i < s->n_hosts; i++) {
		const Keel__Cluster__ClusterHostStatus *h = s->hosts[i];
		char id[24], net[24], ds[24], vms[16];
		const char *row[8];

		snprintf(id, sizeof(id), "%" PRIu64, h->id);
		age_text(h->net_hb_age_ms, net, sizeof(net));
		age_text(h->ds_hb_age_ms, ds, sizeof(ds));
		snprintf(vms, sizeof(vms), "%u", h->n_vms);
		row[0] = h->name;
		row[1] = id;
		row[2] = h->vmk0;
		row[3] = h->maintenance ? "maintenance" : host_state(h->state);
		row[4] = raft_role(h->raft_role ? h->raft_role : h->role);
		row[5] = net;
		row[6] = ds;
		row[7] = vms;
		kc_table_add(&t, row);
	}
	int rv = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	for (size_t i = 0; rv == 0 && i < s->n_hosts; i++)
		if (s->hosts[i]->clock_warn)
			printf("WARNING: the clock of %s is off by %+.1f ms (more than %u ms; "
			       "docs/ntp.md)\n",
			       s->hosts[i]->name, (double)s->hosts[i]->clock_offset_us / 1000,
			       s->clock_offset_warn_ms);
	if (rv || s->n_vms == 0)
		return rv;
	printf("\n");
	{
		static const char *const vheads[] = {"VM", "UUID", "OWNER", "EPOCH", "DESIRED"};
		struct kc_table vt;

		kc_table_init(&vt, 5, vheads, "lllrl");
		for (size_t i = 0; i < s->n_vms; i++) {
			const Keel__Cluster__ClusterVmStatus *v = s->vms[i];
			char epoch[24];
			const char *row[5];

			snprintf(epoch, sizeof(epoch), "%" PRIu64, v->epoch);
			row[0] = v->name;
			row[1] = v->uuid;
			row[2] = v->owner_name;
			row[3] = epoch;
			row[4] = power_name(v->desired_power);
			kc_table_add(&vt, row);
		}
		rv = kc_table_print(&vt, ctx, stdout);
		kc_table_close(&vt);
	}
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

/* Whether to go through hostd's API: KC_EXIT_OK and *api, or a usage
 * error for --cluster-socket, which has no meaning there. */
static int through_api(struct kc_ctx *ctx, const struct kc_call *call, bool *api)
{
	*api = kc_api_wanted(ctx);
	if (*api && kc_has(call, O_CSOCK))
		return kc_usage(ctx, call,
				"--cluster-socket does not apply through hostd's API (--server)");
	return KC_EXIT_OK;
}

/* Whether an operation goes through hostd's API: as through_api, and --no-wait, which only
 * means something there, is a usage error locally. */
static int op_through_api(struct kc_ctx *ctx, const struct kc_call *call, bool *api)
{
	int rc = through_api(ctx, call, api);

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
	return run_request(ctx, call, &rq);
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest st = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	bool api;
	int rc = through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return kc_cluster_api_status(ctx, call);

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &st;
	return run_request(ctx, call, &rq);
}

static int parse_u64_opt(struct kc_ctx *ctx, const char *v, const char *what, uint64_t max,
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
	int rc = parse_u64_opt(ctx, kc_opt(call, O_TTL), "--ttl", 30 * 24 * 3600, &ttl);

	if (rc == 0)
		rc = through_api(ctx, call, &api);
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
	return run_request(ctx, call, &rq);
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

static const char *event_kind(int k)
{
	static const char *const names[] = {"-",	 "config",	 "host-added", "host-state",
					    "host-role", "host-removed", "vm",	       "note",
					    "ha",	 "migration"};

	return k >= 0 && k < 10 ? names[k] : "?";
}

static int events_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t since, limit;
	bool api;
	int rc;

	rc = parse_u64_opt(ctx, kc_opt(call, O_SINCE), "--since", UINT64_MAX, &since);
	if (rc == 0)
		rc = parse_u64_opt(ctx, kc_opt(call, O_LIMIT), "--limit", 1u << 20, &limit);
	if (rc == 0)
		rc = through_api(ctx, call, &api);
	if (rc)
		return rc;
	if (api)
		return kc_cluster_api_events(ctx, call, since, (uint32_t)limit);
	er.since = since;
	er.max = (uint32_t)limit;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	rc = call_clusterd(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "events");
		for (size_t i = 0; i < rp->n_events; i++) {
			const Keel__Cluster__Event *e = rp->events[i];

			kc_json_obj_begin(&j, NULL);
			kc_json_u64(&j, "seq", e->seq);
			kc_json_u64(&j, "at_ms", e->at_ms);
			kc_json_str(&j, "kind", event_kind(e->kind));
			kc_json_u64(&j, "host", e->host);
			kc_json_str(&j, "vm", e->vm);
			kc_json_str(&j, "message", e->message);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		for (size_t i = 0; i < rp->n_events; i++) {
			const Keel__Cluster__Event *e = rp->events[i];
			char when[64];

			kb_time_fmt(e->at_ms * 1000000ull, when, sizeof(when));
			printf("%6" PRIu64 "  %s  %-12s  %s\n", e->seq, when, event_kind(e->kind),
			       e->message);
		}
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return KC_EXIT_OK;
}

static int config_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterConfigSet cs = KEEL__CLUSTER__CLUSTER_CONFIG_SET__INIT;
	Keel__Cluster__ClusterStatusRequest st = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	const char *resp = kc_opt(call, O_ISORESP);
	uint64_t ft;
	int rc = parse_u64_opt(ctx, kc_opt(call, O_FTIMEOUT), "--failure-timeout", 600000, &ft);

	if (rc)
		return rc;
	if (ft && ft < 100)
		return kc_usage(ctx, call, "--failure-timeout is 100..600000 ms");
	if (resp) {
		int r;

		for (r = 1; r < 4 && strcmp(resp, isolation_name(r)) != 0; r++)
			;
		if (r == 4)
			return kc_usage(ctx, call,
					"--isolation-response: power-off, shutdown or "
					"leave-powered-on");
		cs.isolation_response = (Keel__Cluster__IsolationResponse)r;
	}
	cs.failure_timeout_ms = (uint32_t)ft;
	if (kc_has(call, O_HA)) {
		const char *v = kc_opt(call, O_HA);

		if (strcmp(v, "on") == 0)
			cs.ha = KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_ON;
		else if (strcmp(v, "off") == 0)
			cs.ha = KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__HA_OFF;
		else
			return kc_usage(ctx, call, "--ha: on or off");
	}
	if ((kc_has(call, O_ADM_FAIL) + kc_has(call, O_ADM_PCT) + kc_has(call, O_ADM_OFF)) > 1)
		return kc_usage(ctx, call,
				"one of --admission-failures, --admission-percent, --admission-off");
	if (kc_has(call, O_ADM_FAIL)) {
		uint32_t v;

		if (kc_parse_u32(kc_opt(call, O_ADM_FAIL), 1, 31, &v))
			return kc_usage(ctx, call, "--admission-failures: 1..31 hosts");
		cs.admission_set = true;
		cs.admission_failures = v;
	} else if (kc_has(call, O_ADM_PCT)) {
		uint32_t v;

		if (kc_parse_u32(kc_opt(call, O_ADM_PCT), 1, 100, &v))
			return kc_usage(ctx, call, "--admission-percent: 1..100");
		cs.admission_set = true;
		cs.admission_percent = v;
	} else if (kc_has(call, O_ADM_OFF)) {
		cs.admission_set = true;
	}
	if (ft || resp || cs.ha || cs.admission_set) {
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_CONFIG_SET;
		rq.config_set = &cs;
	} else {
		rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
		rq.status = &st;
	}
	return run_request(ctx, call, &rq);
}

static const struct kc_cmd config_cmd = {
    .name = "config",
    .summary = "Show or change the cluster-wide settings: failure timeout, isolation response, HA.",
    .detail = "Without options: the status. The failure timeout (default 1000 ms) is how long a\n"
	      "host may be silent on the network and on the datastores before it is failed;\n"
	      "a host that hears no leader for as long is isolated and applies the isolation\n"
	      "response to its VMs: power-off (default; locks released), shutdown (today the\n"
	      "same as power-off), leave-powered-on (locks stay held).\n"
	      "HA (on by default) restarts the VMs of a failed host on the others, and the\n"
	      "released VMs of an isolated or maintenance host (docs/ha.md). Admission control\n"
	      "refuses a power-on that would leave too little room: for N host failures, or\n"
	      "a percentage of CPU and memory kept free.\n",
    .opts = config_opts,
    .run = config_run,
};

static int bench_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterBenchCommit bc = KEEL__CLUSTER__CLUSTER_BENCH_COMMIT__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t count, window;
	int rc;

	rc = parse_u64_opt(ctx, kc_opt(call, O_COUNT), "--count", 1000000, &count);
	if (rc == 0)
		rc = parse_u64_opt(ctx, kc_opt(call, O_WINDOW), "--window", 65536, &window);
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

static const struct kc_cmd events_cmd = {
    .name = "events",
    .summary = "The cluster's event log: hosts added, state and role changes, VMs, notes.",
    .detail = "The same on every host (it is part of the replicated state); the most recent\n"
	      "1024 are kept.\n",
    .opts = events_opts,
    .run = events_run,
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

static const struct kc_cmd status_cmd = {
    .name = "status",
    .summary = "Show the cluster as this host sees it: leader, this node, hosts, indexes.",
    .opts = cluster_opts,
    .run = status_run,
    .api = true,
};

static const struct kc_cmd *const cluster_subs[] = {
    &create_cmd, &status_cmd, &token_cmd,  &join_cmd,  &leave_cmd,
    &remove_cmd, &events_cmd, &config_cmd, &bench_cmd, &kc_cluster_ha_cmd,
    &kc_cluster_rule_cmd, &kc_cluster_drs_cmd, NULL};

const struct kc_cmd kc_cluster_cmd = {
    .name = "cluster",
    .summary = "The cluster this host belongs to (through clusterd).",
    .detail = "clusterd's socket: --cluster-socket, else clusterd.sock beside --socket,\n"
	      "else $KEEL_CLUSTER_SOCKET, else " KC_DEFAULT_CLUSTER_SOCKET ".\n"
	      "status, events, join-token, create, join, leave, remove-host and ha also\n"
	      "work through hostd's API (--server URL).\n",
    .subs = cluster_subs,
};
