/*
 * `keel host info` and `keel host log`: the host's capacity and usage, and vmkernel's log.
 *
 * info shows CPU (count, MHz each, the total, what powered-on VMs have reserved out of
 * what admission control can hand out, and their recent usage), memory likewise in binary
 * units, VM counts, uptime, the cgroup version resources are mapped to, and the state
 * directory. log prints the last lines of vmkernel's in-memory log.
 */
#include <inttypes.h>

#include "mgmt-api/keel/keel.h"

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

static const struct kc_cmd *const host_subs[] = {&info_cmd, &log_cmd, NULL};

const struct kc_cmd kc_host_cmd = {
    .name = "host",
    .summary = "This host: capacity, usage and log.",
    .subs = host_subs,
};
