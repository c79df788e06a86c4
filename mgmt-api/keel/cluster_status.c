/*
 * `keel cluster status`, `keel cluster events` and `keel cluster config`: the cluster as
 * this host's clusterd sees it, its event log, and its cluster-wide settings (failure
 * timeout, isolation response, HA, admission control).
 *
 * One ClusterRequest to clusterd's socket each (kc_cluster_call, cluster.c); status and
 * events also work through hostd's API (--server, cluster_api.c). config without options
 * prints the status; with options it commits the settings on the leader and prints the
 * status after them. Output: a summary and tables, or --json.
 *
 * Failure modes as in cluster.c: clusterd unreachable, a reply that does not decode, a
 * refusal with clusterd's text; usage errors (a bad number, an unknown word) before
 * anything is sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "lib/time.h"
#include "mgmt-api/keel/cluster_int.h"
#include "mgmt-api/keel/keel.h"

static const struct kc_opt cluster_opts[] = {
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

static const struct kc_opt events_opts[] = {
    {"since", "SEQ", "only events after this sequence number", O_SINCE, false},
    {"limit", "N", "at most the N most recent events", O_LIMIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

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
	static const char *const names[] = {"-",    "disabled", "low",	  "medium",
					    "high", "lowest",	"highest"};

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
		if (v->ft) {
			static const char *const words[] = {"not protected", "needs secondary",
							    "starting", "protected"};

			kc_json_obj_begin(&j, "ft");
			kc_json_str(&j, "state",
				    v->ft->state >= 0 && v->ft->state < 4 ? words[v->ft->state] : "?");
			kc_json_u64(&j, "secondary", v->ft->secondary);
			kc_json_str(&j, "secondary_name",
				    v->ft_secondary_name ? v->ft_secondary_name : "");
			kc_json_u64(&j, "generation", v->ft->generation);
			kc_json_u64(&j, "failovers", v->ft->failovers);
			kc_json_u64(&j, "since_ms", v->ft->since_ms);
			kc_json_obj_end(&j);
		} else {
			kc_json_null(&j, "ft");
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
			snprintf(adm, sizeof(adm), "admission: keep %u%% free",
				 s->admission_percent);
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

int kc_cluster_run_request(struct kc_ctx *ctx, const struct kc_call *call,
			   const Keel__Cluster__ClusterRequest *rq)
{
	Keel__Cluster__ClusterReply *rp;
	int rc = kc_cluster_call(ctx, call, rq, &rp);

	if (rc)
		return rc;
	if (!rp->status)
		rc = kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "clusterd's reply carries no status");
	else
		rc = status_print(ctx, rp->status);
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rc;
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest st = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	bool api;
	int rc = kc_cluster_through_api(ctx, call, &api);

	if (rc)
		return rc;
	if (api)
		return kc_cluster_api_status(ctx, call);

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &st;
	return kc_cluster_run_request(ctx, call, &rq);
}

static const char *event_kind(int k)
{
	static const char *const names[] = {"-",	 "config",	 "host-added", "host-state",
					    "host-role", "host-removed", "vm",	       "note",
					    "ha",	 "migration",	 "ft"};

	return k >= 0 && k < 11 ? names[k] : "?";
}

static int events_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t since, limit;
	bool api;
	int rc;

	rc = kc_cluster_parse_u64_opt(ctx, kc_opt(call, O_SINCE), "--since", UINT64_MAX, &since);
	if (rc == 0)
		rc = kc_cluster_parse_u64_opt(ctx, kc_opt(call, O_LIMIT), "--limit", 1u << 20,
					      &limit);
	if (rc == 0)
		rc = kc_cluster_through_api(ctx, call, &api);
	if (rc)
		return rc;
	if (api)
		return kc_cluster_api_events(ctx, call, since, (uint32_t)limit);
	er.since = since;
	er.max = (uint32_t)limit;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	rc = kc_cluster_call(ctx, call, &rq, &rp);
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
	int rc = kc_cluster_parse_u64_opt(ctx, kc_opt(call, O_FTIMEOUT), "--failure-timeout",
					  600000, &ft);

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
		return kc_usage(
		    ctx, call, "one of --admission-failures, --admission-percent, --admission-off");
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
	return kc_cluster_run_request(ctx, call, &rq);
}

const struct kc_cmd kc_cluster_config_cmd = {
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

const struct kc_cmd kc_cluster_events_cmd = {
    .name = "events",
    .summary = "The cluster's event log: hosts added, state and role changes, VMs, notes.",
    .detail = "The same on every host (it is part of the replicated state); the most recent\n"
	      "1024 are kept.\n",
    .opts = events_opts,
    .run = events_run,
    .api = true,
};

const struct kc_cmd kc_cluster_status_cmd = {
    .name = "status",
    .summary = "Show the cluster as this host sees it: leader, this node, hosts, indexes.",
    .opts = cluster_opts,
    .run = status_run,
    .api = true,
};
