/*
 * `keel host info` and `keel host log`: the host's capacity and usage, and vmkernel's log.
 *
 * info shows CPU (count, MHz each, the total, what powered-on VMs have reserved out of
 * what admission control can hand out, and their recent usage), memory likewise in binary
 * units, VM counts, uptime, the cgroup version resources are mapped to, and the state
 * directory. log prints the last lines of vmkernel's in-memory log.
 *
 * Through hostd's API only (--server): `config show` prints GetHostConfig (the host's
 * VMkernel adapters, portgroups, datastores and maintenance flag); `maintenance
 * enter|exit [HOST]` is a SetMaintenance task followed to its end (task.c). In a cluster
 * clusterd keeps the flag (and HA and placement honour it); a host in no cluster keeps it
 * in its state directory.
 */
#include <inttypes.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

/* ---- through hostd's API ------------------------------------------------------------------ */

static char *join(char **s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	snprintf(out, size, "-");
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", i ? "," : "", s[i]);
	return out;
}

static int config_show_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const nic_heads[] = {"VMKNIC", "PORTGROUP", "NETSTACK",
						"IPV4",	  "MTU",       "TAGS"};
	static const char *const pg_heads[] = {"PORTGROUP", "VSWITCH", "VLAN"};
	static const char *const ds_heads[] = {"DATASTORE", "PATH", "SHARED", "CAPACITY", "FREE"};
	Keel__Vim__HostConfigRequest rq = KEEL__VIM__HOST_CONFIG_REQUEST__INIT;
	Keel__Vim__HostConfig *hc;
	ProtobufCMessage *m;
	struct kc_table t;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rq.host = (char *)(call->npos ? call->pos[0] : "");
	rc = kc_api_call(ctx, call, "GetHostConfig", &rq.base, &keel__vim__host_config__descriptor,
			 &m);
	if (rc)
		return rc;
	hc = (Keel__Vim__HostConfig *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
		goto out;
	}
	kc_kv(stdout, "Host", "%s", hc->host);
	kc_kv(stdout, "Maintenance", "%s", hc->maintenance ? "yes" : "no");
	printf("\n");
	kc_table_init(&t, 6, nic_heads, "llllrl");
	for (size_t i = 0; i < hc->n_vmknics; i++) {
		const Keel__Vim__Vmknic *v = hc->vmknics[i];
		char mtu[16], tags[256];

		snprintf(mtu, sizeof(mtu), "%" PRIu32, v->mtu);
		kc_table_add(&t, (const char *const[]){
				     v->name, v->portgroup, v->netstack, v->ipv4[0] ? v->ipv4 : "-",
				     mtu, join(v->tags, v->n_tags, tags, sizeof(tags))});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	printf("\n");
	kc_table_init(&t, 3, pg_heads, "llr");
	for (size_t i = 0; i < hc->n_portgroups; i++) {
		const Keel__Vim__NetworkObject *pg = hc->portgroups[i];
		char vlan[16] = "-";

		if (pg->vlan)
			snprintf(vlan, sizeof(vlan), "%" PRIu32, pg->vlan);
		kc_table_add(&t, (const char *const[]){pg->portgroup, pg->vswitch, vlan});
	}
	if (rc == KC_EXIT_OK)
		rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	printf("\n");
	kc_table_init(&t, 5, ds_heads, "lllrr");
	for (size_t i = 0; i < hc->n_datastores; i++) {
		const Keel__Vim__DatastoreObject *ds = hc->datastores[i];
		char cap[32], free_[32];

		kc_table_add(&t,
			     (const char *const[]){ds->name, ds->path, ds->shared ? "yes" : "no",
						   kc_fmt_bytes(ds->capacity, cap, sizeof(cap)),
						   kc_fmt_bytes(ds->free, free_, sizeof(free_))});
	}
	if (rc == KC_EXIT_OK)
		rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
out:
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static void fixed_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
		       size_t size)
{
	(void)c;
	(void)task;
	kc_clean((const char *)arg, done, size);
}

static int maintenance_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__MaintenanceRequest rq = KEEL__VIM__MAINTENANCE_REQUEST__INIT;
	bool enter = strcmp(call->cmd->name, "enter") == 0;
	const char *host = call->npos ? call->pos[0] : "";
	char done[512];

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rq.host = (char *)host;
	rq.enter = enter;
	snprintf(done, sizeof(done), "Host %s %s maintenance mode.", host[0] ? host : "(this host)",
		 enter ? "entered" : "left");
	return kc_task_run(ctx, call, "SetMaintenance", &rq.base, fixed_text, done);
}

/* ---- through vmkernel's socket ----------------------------------------------------------- */

static void print_host(const Keel__Vmk__HostInfo *h)
{
	char a[32], b[32], c[32];
	uint64_t total_mhz = (uint64_t)h->cpus * h->cpu_mhz;

	kc_kv(stdout, "Hostname", "%s", h->hostname);
	kc_kv(stdout, "Version", "%s", h->version);
	kc_kv(stdout, "Uptime", "%s", kc_fmt_duration_ms(h->uptime_ms, a, sizeof(a)));
	kc_kv(stdout, "CPU", "%" PRIu32 " x %s = %s", h->cpus, kc_fmt_mhz(h->cpu_mhz, a, sizeof(a)),
	      kc_fmt_mhz((double)total_mhz, b, sizeof(b)));
	kc_kv(stdout, "  reserved", "%s of %s reservable",
	      kc_fmt_mhz(h->cpu_reserved_mhz, a, sizeof(a)),
	      kc_fmt_mhz(h->cpu_reservable_mhz, b, sizeof(b)));
	kc_kv(stdout, "  used", "%s", kc_fmt_mhz(h->cpu_used_mhz, a, sizeof(a)));
	kc_kv(stdout, "Memory", "%s", kc_fmt_bytes(h->mem_bytes, a, sizeof(a)));
	kc_kv(stdout, "  reserved", "%s of %s reservable",
	      kc_fmt_bytes(h->mem_reserved_bytes, a, sizeof(a)),
	      kc_fmt_bytes(h->mem_reservable_bytes, b, sizeof(b)));
	kc_kv(stdout, "  used", "%s", kc_fmt_bytes(h->mem_used_bytes, c, sizeof(c)));
	kc_kv(stdout, "VMs", "%" PRIu32 " registered, %" PRIu32 " powered on", h->vms_registered,
	      h->vms_powered_on);
	kc_kv(stdout, "cgroups", "%s", h->cgroup_version[0] ? h->cgroup_version : "-");
	kc_kv(stdout, "State directory", "%s", h->state_dir);
}

static int info_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkHostInfo hi = KEEL__VMK__VMK_HOST_INFO__INIT;
	Keel__Vmk__VmkReply *rp;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO;
	req.host_info = &hi;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json)
		kc_reply_json(rp, KC_R_HOST);
	else if (!rp->host)
		rc = kc_fail(ctx, KC_EXIT_PROTO, 0, "vmkernel's reply carries no host information");
	else
		print_host(rp->host);
	kc_reply_free(rp);
	return rc;
}

enum { O_LINES = 1 };

static const struct kc_opt log_opts[] = {
    {"lines", "N", "how many of the last lines to show (default 100)", O_LINES, false},
    {NULL, NULL, NULL, 0, false},
};

static int log_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkLog log = KEEL__VMK__VMK_LOG__INIT;
	const char *v = kc_opt(call, O_LINES);
	Keel__Vmk__VmkReply *rp;
	char line[4096];
	int rc;

	log.lines = 100;
	if (v && kc_parse_u32(v, 1, 1000000, &log.lines))
		return kc_usage(ctx, call, "bad --lines '%s': want a number from 1 to 1000000", v);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_LOG;
	req.log = &log;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_LOG);
	} else {
		for (size_t i = 0; i < rp->n_log_lines; i++)
			printf("%s\n", kc_clean(rp->log_lines[i], line, sizeof(line)));
	}
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static const struct kc_cmd info_cmd = {
    .name = "info",
    .summary = "Show the host's capacity and usage (CPU in MHz, memory in GiB).",
    .run = info_run,
};

static const struct kc_cmd log_cmd = {
    .name = "log",
    .summary = "Show the last lines of vmkernel's log.",
    .opts = log_opts,
    .run = log_run,
};

static const struct kc_cmd config_show_cmd = {
    .name = "show",
    .args = "[HOST]",
    .summary = "Show the host's VMkernel adapters, portgroups, datastores and maintenance flag "
	       "(needs --server).",
    .detail = "HOST is this host's name or id (host-N), or nothing; another host's\n"
	      "configuration is asked of that host's own hostd.\n",
    .max_pos = 1,
    .run = config_show_run,
    .api = true,
};

extern const struct kc_cmd kc_host_config_list_cmd, kc_host_config_get_cmd, kc_host_config_put_cmd,
    kc_host_config_delete_cmd, kc_host_config_backup_cmd, kc_host_config_restore_cmd,
    kc_host_config_status_cmd; /* host_config.c: the config store */
static const struct kc_cmd *const config_subs[] = {&config_show_cmd,
						   &kc_host_config_list_cmd,
						   &kc_host_config_get_cmd,
						   &kc_host_config_put_cmd,
						   &kc_host_config_delete_cmd,
						   &kc_host_config_backup_cmd,
						   &kc_host_config_restore_cmd,
						   &kc_host_config_status_cmd,
						   NULL};

static const struct kc_cmd config_cmd = {
    .name = "config",
    .summary = "The host's config store, and its configuration through hostd's API.",
    .subs = config_subs,
};

static const struct kc_opt maintenance_opts[] = {
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

#define MAINTENANCE_DETAIL                                                                    \
	"HOST is a host's name or id (host-N); nothing means the host --server names. In a\n" \
	"cluster the flag is the cluster's (HA and placement leave a host in maintenance\n"   \
	"alone) and any member may be named; a host in no cluster keeps it itself.\n"

static const struct kc_cmd maintenance_enter_cmd = {
    .name = "enter",
    .args = "[HOST]",
    .summary = "Put a host in maintenance mode (needs --server).",
    .detail = MAINTENANCE_DETAIL,
    .max_pos = 1,
    .opts = maintenance_opts,
    .run = maintenance_run,
    .api = true,
};

static const struct kc_cmd maintenance_exit_cmd = {
    .name = "exit",
    .args = "[HOST]",
    .summary = "Take a host out of maintenance mode (needs --server).",
    .detail = MAINTENANCE_DETAIL,
    .max_pos = 1,
    .opts = maintenance_opts,
    .run = maintenance_run,
    .api = true,
};

static const struct kc_cmd *const maintenance_subs[] = {&maintenance_enter_cmd,
							&maintenance_exit_cmd, NULL};

static const struct kc_cmd maintenance_cmd = {
    .name = "maintenance",
    .summary = "Maintenance mode through hostd's API.",
    .subs = maintenance_subs,
};

static const struct kc_cmd *const host_subs[] = {
    &info_cmd,		 &log_cmd,	   &config_cmd,	      &maintenance_cmd,
    &kc_host_syslog_cmd, &kc_host_ntp_cmd, &kc_host_snmp_cmd, &kc_host_top_cmd,
    &kc_host_worlds_cmd, NULL};

const struct kc_cmd kc_host_cmd = {
    .name = "host",
    .summary = "This host: capacity, usage, log, configuration and maintenance mode.",
    .subs = host_subs,
};
