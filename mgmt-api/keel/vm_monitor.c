/*
 * `keel vm monitor VM [--on|--off] [--heartbeat-timeout S] [--max-resets N]`: VM monitoring of one VM
 * on this host (kernel/vm/monitor.c). With no option it shows the settings and the state;
 * with options it changes them (the rest stay as they are) and shows the result. The
 * settings are the VM's vmMonitoring.* keys, so they travel with its .vmx.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

enum { O_ON = 1, O_OFF, O_TIMEOUT, O_MAX_RESETS };

static int get_vm(struct kc_ctx *ctx, const char *name, Keel__Vmk__VmkReply **rp)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;

	get.vm = (char *)name;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	req.vm_get = &get;
	return kc_rpc(ctx, &req, rp);
}

static void show(const Keel__Vmk__VmInfo *vm)
{
	const Keel__Vmk__VmMonitorInfo *m = vm->monitor;
	char name[256];

	kc_clean(vm->name, name, sizeof(name));
	if (m == NULL) {
		printf("VM %s: no monitoring information\n", name);
		return;
	}
	printf("VM %s: monitoring %s\n", name, m->enabled ? "on" : "off");
	printf("  heartbeat timeout   %" PRIu32 " s\n", m->timeout_s);
	printf("  max resets an hour  %" PRIu32 " (used %" PRIu32 ")\n", m->max_resets,
	       m->resets_last_hour);
	printf("  state               %s\n", m->state ? m->state : "");
	if (m->heartbeat_age_ms >= 0)
		printf("  last heartbeat      seq %" PRIu64 ", %.1f s ago\n", m->heartbeat_seq,
		       (double)m->heartbeat_age_ms / 1000.0);
	else
		printf("  last heartbeat      none seen\n");
}

static int monitor_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMonitor mon = KEEL__VMK__VMK_VM_MONITOR__INIT;
	Keel__Vmk__VmkReply *rp;
	const Keel__Vmk__VmMonitorInfo *cur;
	uint32_t v;
	int rc;

	if (kc_has(call, O_ON) && kc_has(call, O_OFF))
		return kc_usage(ctx, call, "--on and --off together");
	rc = get_vm(ctx, call->pos[0], &rp);
	if (rc)
		return rc;
	if (!kc_has(call, O_ON) && !kc_has(call, O_OFF) && !kc_has(call, O_TIMEOUT) &&
	    !kc_has(call, O_MAX_RESETS)) {
		if (ctx->json)
			kc_reply_json(rp, KC_R_VMS);
		else if (rp->n_vms)
			show(rp->vms[0]);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	cur = rp->n_vms ? rp->vms[0]->monitor : NULL;
	mon.vm = (char *)call->pos[0];
	mon.enabled = cur && cur->enabled;
	/* keep what is set: the effective values are the defaults when unset, which the
	 * request's 0 also means */
	mon.timeout_s = cur ? cur->timeout_s : 0;
	mon.max_resets = cur ? cur->max_resets : 0;
	kc_reply_free(rp);
	if (kc_has(call, O_ON))
		mon.enabled = true;
	if (kc_has(call, O_OFF))
		mon.enabled = false;
	if (kc_has(call, O_TIMEOUT)) {
		if (kc_parse_u32(kc_opt(call, O_TIMEOUT), 1, 86400, &v))
			return kc_usage(ctx, call, "--heartbeat-timeout: seconds, 1..86400");
		mon.timeout_s = v;
	}
	if (kc_has(call, O_MAX_RESETS)) {
		if (kc_parse_u32(kc_opt(call, O_MAX_RESETS), 1, 100, &v))
			return kc_usage(ctx, call, "--max-resets: 1..100");
		mon.max_resets = v;
	}
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MONITOR;
	req.vm_monitor = &mon;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json)
		kc_reply_json(rp, KC_R_VMS);
	else if (rp->n_vms)
		show(rp->vms[0]);
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static const struct kc_opt monitor_opts[] = {
    {"on", NULL, "turn monitoring on", O_ON, false},
    {"off", NULL, "turn monitoring off", O_OFF, false},
    {"heartbeat-timeout", "SECONDS", "heartbeat silence before a reset (default 30)", O_TIMEOUT, false},
    {"max-resets", "N", "resets allowed per hour (default 3)", O_MAX_RESETS, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_vm_monitor_cmd = {
    .name = "monitor",
    .args = "VM",
    .summary = "Show or set VM monitoring: reset the VM when its guest heartbeat stops.",
    .detail = "With no option, shows the settings and what the monitor sees. The guest must\n"
	      "send heartbeats (kguest's agent does) before it can be judged; a reset VM gets the\n"
	      "timeout again as grace before it is judged anew. Past the hourly limit the VM is\n"
	      "left running and vmkernel's log says so.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = monitor_opts,
    .run = monitor_run,
};
