/*
 * `keel network vswitch|uplink|portgroup ...`: the host's virtual networking for VMs
 * (`keel network vmknic|netstack ...` are in network_vmknic.c).
 *
 * A vSwitch is a Linux bridge; uplinks are physical NICs attached to it; a portgroup is a
 * named set of ports on a vSwitch with an optional VLAN id, and a VM NIC is a tap on a
 * portgroup. Each command is one request; vmkernel checks names (an unknown vSwitch or NIC,
 * a vSwitch still carrying portgroups) and answers with an error otherwise.
 *
 * Portgroups also work through hostd's API (--server): list reads GetHostConfig (no ports
 * there), add and remove are ChangePortgroup tasks followed to their end (task.c), whose
 * error is vmkernel's text. vSwitches and uplinks are local only.
 */
#include <inttypes.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

/* Joins n strings with ", " into out ("-" when there are none). */
static char *join(char **s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	snprintf(out, size, "-");
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", i ? ", " : "", s[i]);
	return out;
}

/* Sends req; on success prints the reply (--json, showing the parts in always) or, in
 * text, the line done. Frees the reply. */
static int simple(struct kc_ctx *ctx, Keel__Vmk__VmkRequest *req, const char *done)
{
	Keel__Vmk__VmkReply *rp;
	int rc = kc_rpc(ctx, req, &rp);

	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, 0);
	} else {
		char clean[512];

		printf("%s\n", kc_clean(done, clean, sizeof(clean)));
	}
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static int vswitch_list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "MTU", "UPLINKS"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVSwitchList list = KEEL__VMK__VMK_VSWITCH_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_LIST;
	req.vswitch_list = &list;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VSWITCHES);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 3, heads, "lrl");
	for (size_t i = 0; i < rp->n_vswitches; i++) {
		const Keel__Vmk__VSwitchInfo *vs = rp->vswitches[i];
		char mtu[16], up[1024];

		snprintf(mtu, sizeof(mtu), "%" PRIu32, vs->mtu);
		join(vs->uplinks, vs->n_uplinks, up, sizeof(up));
		kc_table_add(&t, (const char *const[]){vs->name, mtu, up});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

enum { O_MTU = 1, O_VSWITCH, O_VLAN };

static const struct kc_opt vswitch_add_opts[] = {
    {"mtu", "N", "MTU of the vSwitch (68-65535; default 1500)", O_MTU, false},
    {NULL, NULL, NULL, 0, false},
};

static int vswitch_add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVSwitchAdd add = KEEL__VMK__VMK_VSWITCH_ADD__INIT;
	const char *mtu = kc_opt(call, O_MTU);
	char done[512];

	if (mtu && kc_parse_u32(mtu, 68, 65535, &add.mtu))
		return kc_usage(ctx, call, "bad --mtu '%s': want 68 to 65535", mtu);
	add.name = (char *)call->pos[0];
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_ADD;
	req.vswitch_add = &add;
	snprintf(done, sizeof(done), "Added vSwitch %s.", add.name);
	return simple(ctx, &req, done);
}

static int vswitch_remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVSwitchRemove rm = KEEL__VMK__VMK_VSWITCH_REMOVE__INIT;
	char done[512];

	rm.name = (char *)call->pos[0];
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_REMOVE;
	req.vswitch_remove = &rm;
	snprintf(done, sizeof(done), "Removed vSwitch %s.", rm.name);
	return simple(ctx, &req, done);
}

static int uplink_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkUplinkAdd add = KEEL__VMK__VMK_UPLINK_ADD__INIT;
	Keel__Vmk__VmkUplinkRemove rm = KEEL__VMK__VMK_UPLINK_REMOVE__INIT;
	bool adding = strcmp(call->cmd->name, "add") == 0;
	char done[512];

	if (adding) {
		add.vswitch = (char *)call->pos[0];
		add.nic = (char *)call->pos[1];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_UPLINK_ADD;
		req.uplink_add = &add;
	} else {
		rm.vswitch = (char *)call->pos[0];
		rm.nic = (char *)call->pos[1];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_UPLINK_REMOVE;
		req.uplink_remove = &rm;
	}
	snprintf(done, sizeof(done), "%s uplink %s %s vSwitch %s.", adding ? "Added" : "Removed",
		 call->pos[1], adding ? "to" : "from", call->pos[0]);
	return simple(ctx, &req, done);
}

/* ---- portgroups through hostd's API ------------------------------------------------------ */

static int pg_api_list(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "VSWITCH", "VLAN", "ID"};
	Keel__Vim__HostConfigRequest rq = KEEL__VIM__HOST_CONFIG_REQUEST__INIT;
	Keel__Vim__HostConfig *hc;
	ProtobufCMessage *m;
	struct kc_table t;
	int rc;

	rc = kc_api_call(ctx, call, "GetHostConfig", &rq.base, &keel__vim__host_config__descriptor,
			 &m);
	if (rc)
		return rc;
	hc = (Keel__Vim__HostConfig *)m;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "portgroups");
		for (size_t i = 0; i < hc->n_portgroups; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &hc->portgroups[i]->base, NULL);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 4, heads, "llrl");
	for (size_t i = 0; i < hc->n_portgroups; i++) {
		const Keel__Vim__NetworkObject *pg = hc->portgroups[i];
		char vlan[16] = "-";

		if (pg->vlan)
			snprintf(vlan, sizeof(vlan), "%" PRIu32, pg->vlan);
		kc_table_add(&t, (const char *const[]){pg->portgroup, pg->vswitch, vlan, pg->id});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
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

static int pg_api_change(struct kc_ctx *ctx, const struct kc_call *call,
			 Keel__Vim__PortgroupChange *rq, const char *done)
{
	return kc_task_run(ctx, call, "ChangePortgroup", &rq->base, fixed_text, (void *)done);
}

static int portgroup_list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "VSWITCH", "VLAN", "PORTS"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPortgroupList list = KEEL__VMK__VMK_PORTGROUP_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	if (kc_api_wanted(ctx))
		return pg_api_list(ctx, call);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST;
	req.portgroup_list = &list;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_PORTGROUPS);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 4, heads, "llrl");
	for (size_t i = 0; i < rp->n_portgroups; i++) {
		const Keel__Vmk__PortgroupInfo *pg = rp->portgroups[i];
		char vlan[16] = "-", ports[1024];

		if (pg->vlan)
			snprintf(vlan, sizeof(vlan), "%" PRIu32, pg->vlan);
		join(pg->ports, pg->n_ports, ports, sizeof(ports));
		kc_table_add(&t, (const char *const[]){pg->name, pg->vswitch, vlan, ports});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

static const struct kc_opt portgroup_add_opts[] = {
    {"vswitch", "VS", "the vSwitch it belongs to (required)", O_VSWITCH, false},
    {"vlan", "N", "VLAN id (1-4094; default: none)", O_VLAN, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt portgroup_remove_opts[] = {
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static int portgroup_add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPortgroupAdd add = KEEL__VMK__VMK_PORTGROUP_ADD__INIT;
	const char *vs = kc_opt(call, O_VSWITCH), *vlan = kc_opt(call, O_VLAN);
	char done[512];

	if (!vs || vs[0] == '\0')
		return kc_usage(ctx, call, "a portgroup needs --vswitch VS");
	if (vlan && kc_parse_u32(vlan, 1, 4094, &add.vlan))
		return kc_usage(ctx, call, "bad --vlan '%s': want 1 to 4094", vlan);
	add.name = (char *)call->pos[0];
	add.vswitch = (char *)vs;
	snprintf(done, sizeof(done), "Added portgroup %s on vSwitch %s.", add.name, vs);
	if (kc_api_wanted(ctx)) {
		Keel__Vim__PortgroupChange rq = KEEL__VIM__PORTGROUP_CHANGE__INIT;

		rq.name = add.name;
		rq.vswitch = add.vswitch;
		rq.vlan = add.vlan;
		return pg_api_change(ctx, call, &rq, done);
	}
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_ADD;
	req.portgroup_add = &add;
	return simple(ctx, &req, done);
}

static int portgroup_remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPortgroupRemove rm = KEEL__VMK__VMK_PORTGROUP_REMOVE__INIT;
	char done[512];

	rm.name = (char *)call->pos[0];
	snprintf(done, sizeof(done), "Removed portgroup %s.", rm.name);
	if (kc_api_wanted(ctx)) {
		Keel__Vim__PortgroupChange rq = KEEL__VIM__PORTGROUP_CHANGE__INIT;

		rq.name = rm.name;
		rq.remove = true;
		return pg_api_change(ctx, call, &rq, done);
	}
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_REMOVE;
	req.portgroup_remove = &rm;
	return simple(ctx, &req, done);
}

static const struct kc_cmd vswitch_list = {
    .name = "list",
    .summary = "List vSwitches with their MTU and uplinks.",
    .run = vswitch_list_run,
};
static const struct kc_cmd vswitch_add = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a vSwitch (a Linux bridge named NAME).",
    .min_pos = 1,
    .max_pos = 1,
    .opts = vswitch_add_opts,
    .run = vswitch_add_run,
};
static const struct kc_cmd vswitch_remove = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a vSwitch that has no portgroups.",
    .min_pos = 1,
    .max_pos = 1,
    .run = vswitch_remove_run,
};
static const struct kc_cmd uplink_add = {
    .name = "add",
    .args = "VSWITCH NIC",
    .summary = "Attach a physical NIC to a vSwitch.",
    .min_pos = 2,
    .max_pos = 2,
    .run = uplink_run,
};
static const struct kc_cmd uplink_remove = {
    .name = "remove",
    .args = "VSWITCH NIC",
    .summary = "Detach a physical NIC from a vSwitch.",
    .min_pos = 2,
    .max_pos = 2,
    .run = uplink_run,
};
static const struct kc_cmd portgroup_list = {
    .name = "list",
    .summary = "List portgroups with their vSwitch, VLAN and ports.",
    .run = portgroup_list_run,
    .api = true,
};
static const struct kc_cmd portgroup_add = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a portgroup on a vSwitch.",
    .min_pos = 1,
    .max_pos = 1,
    .opts = portgroup_add_opts,
    .run = portgroup_add_run,
    .api = true,
};
static const struct kc_cmd portgroup_remove = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a portgroup no VM NIC uses.",
    .min_pos = 1,
    .max_pos = 1,
    .opts = portgroup_remove_opts,
    .run = portgroup_remove_run,
    .api = true,
};

static const struct kc_cmd *const vswitch_subs[] = {&vswitch_list, &vswitch_add, &vswitch_remove,
						    NULL};
static const struct kc_cmd *const uplink_subs[] = {&uplink_add, &uplink_remove, NULL};
static const struct kc_cmd *const portgroup_subs[] = {&portgroup_list, &portgroup_add,
						      &portgroup_remove, NULL};

static const struct kc_cmd vswitch_cmd = {
    .name = "vswitch",
    .summary = "vSwitches (Linux bridges).",
    .subs = vswitch_subs,
};
static const struct kc_cmd uplink_cmd = {
    .name = "uplink",
    .summary = "Physical NICs attached to vSwitches.",
    .subs = uplink_subs,
};
static const struct kc_cmd portgroup_cmd = {
    .name = "portgroup",
    .summary = "Portgroups: named port sets with an optional VLAN.",
    .subs = portgroup_subs,
};

static const struct kc_cmd *const network_subs[] = {
    &vswitch_cmd, &uplink_cmd, &portgroup_cmd, &kc_network_vmknic_cmd, &kc_network_netstack_cmd,
    NULL};

const struct kc_cmd kc_network_cmd = {
    .name = "network",
    .summary = "Host networking: vSwitches, uplinks, portgroups, VMkernel adapters, netstacks.",
    .subs = network_subs,
};
