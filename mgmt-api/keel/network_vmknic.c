/*
 * `keel network vmknic ...` and `keel network netstack ...`: the host's own IPv4 interfaces
 * (VMkernel adapters vmkN, what `esxcli network ip interface` manages on ESXi) and the
 * TCP/IP stacks they live in.
 *
 * An adapter is a port on a portgroup with an address, an optional gateway, an MTU, a MAC
 * and service tags (Management, VMotion, FaultToleranceLogging, Provisioning, vSAN,
 * Replication). The CLI checks the shape of its arguments (numbers, a netmask, a MAC);
 * vmkernel checks everything else and answers with the reason.
 *
 * Adapters also work through hostd's API (--server): list reads GetHostConfig; add,
 * remove, set, set-ip, set-mtu and tag add|remove are ChangeVmknic tasks followed to their
 * end (task.c), whose error is vmkernel's text. ChangeVmknic carries the adapter as it
 * should be: set, set-ip, set-mtu and the tag commands read the adapter first and send it
 * with their change applied (hostd then makes only the requests for what differs). The API
 * carries no gateway and no MAC: --gateway and --mac with --server are usage errors, and a
 * changed address keeps the adapter's gateway. Netstacks are local only.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "mgmt-api/keel/keel.h"

/* Sends req; prints the reply (--json) or the line done. */
static int simple(struct kc_ctx *ctx, Keel__Vmk__VmkRequest *req, const char *done)
{
	Keel__Vmk__VmkReply *rp;
	int rc = kc_rpc(ctx, req, &rp);
	char clean[512];

	if (rc)
		return rc;
	if (ctx->json)
		kc_reply_json(rp, 0);
	else
		printf("%s\n", kc_clean(done, clean, sizeof(clean)));
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

/* Joins n strings with sep into out ("-" when there are none). */
static char *join(char **s, size_t n, const char *sep, char *out, size_t size)
{
	size_t o = 0;

	snprintf(out, size, "-");
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", i ? sep : "", s[i]);
	return out;
}

enum { O_PORTGROUP = 1, O_IP, O_NETMASK, O_GATEWAY, O_NETSTACK, O_MTU, O_MAC, O_TAG, O_NO_TAGS };

/* The address of --ip (A.B.C.D/N, or A.B.C.D with --netmask) as "A.B.C.D/N" into out. */
static int ip_arg(struct kc_ctx *ctx, const struct kc_call *call, char *out, size_t size)
{
	const char *ip = kc_opt(call, O_IP), *mask = kc_opt(call, O_NETMASK);
	struct in_addr a, m;
	uint32_t bits;
	int prefix;

	if (!ip)
		return kc_usage(ctx, call, "an adapter needs --ip A.B.C.D/PREFIX");
	if (!mask) {
		if (!strchr(ip, '/'))
			return kc_usage(ctx, call, "--ip '%s' has no /PREFIX (or give --netmask)",
					ip);
		snprintf(out, size, "%s", ip);
		return KC_EXIT_OK;
	}
	if (strchr(ip, '/'))
		return kc_usage(ctx, call, "give the prefix in --ip or --netmask, not both");
	if (inet_pton(AF_INET, ip, &a) != 1)
		return kc_usage(ctx, call, "bad --ip '%s': want A.B.C.D", ip);
	if (inet_pton(AF_INET, mask, &m) != 1)
		return kc_usage(ctx, call, "bad --netmask '%s': want A.B.C.D", mask);
	bits = ntohl(m.s_addr);
	prefix = __builtin_popcount(bits);
	if (bits != (prefix ? ~0u << (32 - prefix) : 0) || prefix == 0)
		return kc_usage(ctx, call, "bad --netmask '%s': not a contiguous mask", mask);
	snprintf(out, size, "%s/%d", ip, prefix);
	return KC_EXIT_OK;
}

/* ---- adapters through hostd's API ----------------------------------------------------------- */

#define API_TAGS_MAX 16 /* hostd's limit of tags on one adapter */

static int api_config(struct kc_ctx *ctx, const struct kc_call *call, Keel__Vim__HostConfig **hc)
{
	Keel__Vim__HostConfigRequest rq = KEEL__VIM__HOST_CONFIG_REQUEST__INIT;

	return kc_api_call(ctx, call, "GetHostConfig", &rq.base,
			   &keel__vim__host_config__descriptor, (ProtobufCMessage **)hc);
}

static int api_list(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "PORTGROUP", "NETSTACK", "IPV4", "MTU", "TAGS"};
	Keel__Vim__HostConfig *hc;
	struct kc_table t;
	int rc = api_config(ctx, call, &hc);

	if (rc)
		return rc;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "vmknics");
		for (size_t i = 0; i < hc->n_vmknics; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &hc->vmknics[i]->base, NULL);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		keel__vim__host_config__free_unpacked(hc, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 6, heads, "llllrl");
	for (size_t i = 0; i < hc->n_vmknics; i++) {
		const Keel__Vim__Vmknic *v = hc->vmknics[i];
		char mtu[16], tags[256];

		snprintf(mtu, sizeof(mtu), "%" PRIu32, v->mtu);
		join(v->tags, v->n_tags, ",", tags, sizeof(tags));
		kc_table_add(&t, (const char *const[]){v->name, v->portgroup, v->netstack,
						       v->ipv4[0] ? v->ipv4 : "-", mtu, tags});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	keel__vim__host_config__free_unpacked(hc, NULL);
	return rc;
}

static void fixed_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
		       size_t size)
{
	(void)c;
	(void)task;
	kc_clean((const char *)arg, done, size);
}

static int api_change(struct kc_ctx *ctx, const struct kc_call *call, Keel__Vim__Vmknic *nic,
		      bool remove, const char *done)
{
	Keel__Vim__VmknicChange rq = KEEL__VIM__VMKNIC_CHANGE__INIT;

	rq.vmknic = nic;
	rq.remove = remove;
	return kc_task_run(ctx, call, "ChangeVmknic", &rq.base, fixed_text, (void *)done);
}

/* What a set, set-ip, set-mtu or tag command changes on an existing adapter. */
struct nic_edit {
	const char *ip; /* "A.B.C.D/N", or NULL: kept */
	uint32_t mtu;	/* 0: kept */
	bool set_tags;	/* the tags become tags[0..n_tags) */
	char **tags;
	size_t n_tags;
	const char *tag_add, *tag_remove;
};

/* Reads the adapter name, applies e and sends it as a ChangeVmknic. */
static int api_edit(struct kc_ctx *ctx, const struct kc_call *call, const char *name,
		    const struct nic_edit *e, const char *done)
{
	Keel__Vim__Vmknic want = KEEL__VIM__VMKNIC__INIT;
	const Keel__Vim__Vmknic *cur = NULL;
	char *tags[API_TAGS_MAX + 1], clean[256];
	Keel__Vim__HostConfig *hc;
	size_t n = 0;
	int rc = api_config(ctx, call, &hc);

	if (rc)
		return rc;
	for (size_t i = 0; i < hc->n_vmknics; i++)
		if (strcmp(hc->vmknics[i]->name, name) == 0)
			cur = hc->vmknics[i];
	if (!cur) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND, "no VMkernel adapter %s on %s",
			     kc_clean(name, clean, sizeof(clean)), hc->host);
		goto out;
	}
	want = *cur;
	if (e->ip)
		want.ipv4 = (char *)e->ip;
	if (e->mtu)
		want.mtu = e->mtu;
	if (e->set_tags) {
		want.tags = e->tags;
		want.n_tags = e->n_tags;
	}
	if (e->tag_remove) {
		for (size_t i = 0; i < cur->n_tags; i++)
			if (strcasecmp(cur->tags[i], e->tag_remove) != 0)
				tags[n++] = cur->tags[i];
		if (n == cur->n_tags) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND, "%s has no tag %s",
				     kc_clean(name, clean, sizeof(clean)), e->tag_remove);
			goto out;
		}
		want.tags = tags;
		want.n_tags = n;
	}
	if (e->tag_add) {
		bool had = false;

		for (size_t i = 0; i < cur->n_tags && n < API_TAGS_MAX; i++) {
			had = had || strcasecmp(cur->tags[i], e->tag_add) == 0;
			tags[n++] = cur->tags[i];
		}
		if (!had)
			tags[n++] = (char *)e->tag_add;
		want.tags = tags;
		want.n_tags = n;
	}
	rc = api_change(ctx, call, &want, false, done);
out:
	keel__vim__host_config__free_unpacked(hc, NULL);
	return rc;
}

/* The options the API cannot carry are usage errors with --server. */
static int api_refuse_local_only(struct kc_ctx *ctx, const struct kc_call *call)
{
	if (kc_opt(call, O_GATEWAY))
		return kc_usage(ctx, call,
				"--gateway is not available through hostd's API: run keel on the "
				"host (a changed address keeps the adapter's gateway)");
	if (kc_opt(call, O_MAC))
		return kc_usage(ctx, call,
				"--mac is not available through hostd's API: hostd generates it");
	return KC_EXIT_OK;
}

static int no_wait_local(struct kc_ctx *ctx, const struct kc_call *call)
{
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	return KC_EXIT_OK;
}

static int vmknic_list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "PORTGROUP", "NETSTACK", "IPV4", "GATEWAY",
					    "MAC",  "MTU",	 "STATE",    "TAGS"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicList list = KEEL__VMK__VMK_VMKNIC_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	if (kc_api_wanted(ctx))
		return api_list(ctx, call);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_LIST;
	req.vmknic_list = &list;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VMKNICS);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 9, heads, "llllllrll");
	for (size_t i = 0; i < rp->n_vmknics; i++) {
		const Keel__Vmk__VmknicInfo *v = rp->vmknics[i];
		char ip[64], mtu[16], tags[256];

		snprintf(ip, sizeof(ip), "%s/%" PRIu32, v->ipv4, v->prefix);
		snprintf(mtu, sizeof(mtu), "%" PRIu32, v->mtu);
		join(v->tags, v->n_tags, ",", tags, sizeof(tags));
		kc_table_add(&t, (const char *const[]){v->name, v->portgroup, v->netstack, ip,
						       v->gateway[0] ? v->gateway : "-", v->mac,
						       mtu, v->state, tags});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

static const struct kc_opt vmknic_add_opts[] = {
    {"portgroup", "PG", "the portgroup it is a port of (required)", O_PORTGROUP, false},
    {"ip", "A.B.C.D/N", "its IPv4 address and prefix (required)", O_IP, false},
    {"netmask", "A.B.C.D", "the netmask, when --ip has no /N", O_NETMASK, false},
    {"gateway", "A.B.C.D", "default gateway of its netstack (default: none)", O_GATEWAY, false},
    {"netstack", "NS", "its netstack (default: defaultTcpipStack)", O_NETSTACK, false},
    {"mtu", "N", "MTU, 1280-9000, at most the vSwitch's (default 1500)", O_MTU, false},
    {"mac", "MAC", "MAC address (default: generated, 02:xx:xx:xx:xx:xx)", O_MAC, false},
    {"tag", "TAG",
     "service tag: Management, VMotion, FaultToleranceLogging, Provisioning, vSAN, "
     "Replication",
     O_TAG, true},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static int vmknic_add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicAdd add = KEEL__VMK__VMK_VMKNIC_ADD__INIT;
	const char *pg = kc_opt(call, O_PORTGROUP), *mtu = kc_opt(call, O_MTU);
	const char *mac = kc_opt(call, O_MAC);
	char ip[64], done[512], *tags[KC_MAX_OPTS];
	size_t n_tags = 0;
	int rc;

	if (!pg || !pg[0])
		return kc_usage(ctx, call, "an adapter needs --portgroup PG");
	rc = ip_arg(ctx, call, ip, sizeof(ip));
	if (rc)
		return rc;
	if (mtu && kc_parse_u32(mtu, 1280, 9000, &add.mtu))
		return kc_usage(ctx, call, "bad --mtu '%s': want 1280 to 9000", mtu);
	if (mac && !kc_valid_mac(mac))
		return kc_usage(ctx, call, "bad --mac '%s': want xx:xx:xx:xx:xx:xx", mac);
	for (int i = 0; i < call->nopts; i++)
		if (call->opts[i].id == O_TAG)
			tags[n_tags++] = (char *)call->opts[i].val;
	add.name = (char *)call->pos[0];
	add.portgroup = (char *)pg;
	add.ipv4 = ip;
	add.gateway = (char *)(kc_opt(call, O_GATEWAY) ? kc_opt(call, O_GATEWAY) : "");
	add.netstack = (char *)(kc_opt(call, O_NETSTACK) ? kc_opt(call, O_NETSTACK) : "");
	add.mac = (char *)(mac ? mac : "");
	add.tags = tags;
	add.n_tags = n_tags;
	snprintf(done, sizeof(done), "Added VMkernel adapter %s (%s) on portgroup %s.", add.name,
		 ip, pg);
	if (kc_api_wanted(ctx)) {
		Keel__Vim__Vmknic nic = KEEL__VIM__VMKNIC__INIT;

		rc = api_refuse_local_only(ctx, call);
		if (rc)
			return rc;
		if (n_tags > API_TAGS_MAX)
			return kc_usage(ctx, call, "at most %d tags through hostd's API",
					API_TAGS_MAX);
		nic.name = add.name;
		nic.portgroup = add.portgroup;
		nic.netstack = add.netstack;
		nic.ipv4 = add.ipv4;
		nic.mtu = add.mtu;
		nic.tags = tags;
		nic.n_tags = n_tags;
		return api_change(ctx, call, &nic, false, done);
	}
	rc = no_wait_local(ctx, call);
	if (rc)
		return rc;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_ADD;
	req.vmknic_add = &add;
	return simple(ctx, &req, done);
}

static int vmknic_remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicRemove rm = KEEL__VMK__VMK_VMKNIC_REMOVE__INIT;
	char done[512];

	int rc;

	rm.name = (char *)call->pos[0];
	snprintf(done, sizeof(done), "Removed VMkernel adapter %s.", rm.name);
	if (kc_api_wanted(ctx)) {
		Keel__Vim__Vmknic nic = KEEL__VIM__VMKNIC__INIT;

		nic.name = rm.name;
		return api_change(ctx, call, &nic, true, done);
	}
	rc = no_wait_local(ctx, call);
	if (rc)
		return rc;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_REMOVE;
	req.vmknic_remove = &rm;
	return simple(ctx, &req, done);
}

static const struct kc_opt vmknic_set_ip_opts[] = {
    {"ip", "A.B.C.D/N", "the new IPv4 address and prefix (required)", O_IP, false},
    {"netmask", "A.B.C.D", "the netmask, when --ip has no /N", O_NETMASK, false},
    {"gateway", "A.B.C.D", "default gateway of its netstack (default: none)", O_GATEWAY, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt no_wait_opts[] = {
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static int vmknic_set_ip_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicSetIp set = KEEL__VMK__VMK_VMKNIC_SET_IP__INIT;
	char ip[64], done[512];
	int rc = ip_arg(ctx, call, ip, sizeof(ip));

	if (rc)
		return rc;
	set.name = (char *)call->pos[0];
	set.ipv4 = ip;
	set.gateway = (char *)(kc_opt(call, O_GATEWAY) ? kc_opt(call, O_GATEWAY) : "");
	snprintf(done, sizeof(done), "Set the address of %s to %s.", set.name, ip);
	if (kc_api_wanted(ctx)) {
		struct nic_edit e = {.ip = ip};

		rc = api_refuse_local_only(ctx, call);
		return rc ? rc : api_edit(ctx, call, set.name, &e, done);
	}
	rc = no_wait_local(ctx, call);
	if (rc)
		return rc;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_SET_IP;
	req.vmknic_set_ip = &set;
	return simple(ctx, &req, done);
}

static int vmknic_set_mtu_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicSetMtu set = KEEL__VMK__VMK_VMKNIC_SET_MTU__INIT;
	char done[512];

	if (kc_parse_u32(call->pos[1], 1280, 9000, &set.mtu))
		return kc_usage(ctx, call, "bad MTU '%s': want 1280 to 9000", call->pos[1]);
	set.name = (char *)call->pos[0];
	snprintf(done, sizeof(done), "Set the MTU of %s to %" PRIu32 ".", set.name, set.mtu);
	if (kc_api_wanted(ctx)) {
		struct nic_edit e = {.mtu = set.mtu};

		return api_edit(ctx, call, set.name, &e, done);
	}
	if (no_wait_local(ctx, call))
		return KC_EXIT_USAGE;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_SET_MTU;
	req.vmknic_set_mtu = &set;
	return simple(ctx, &req, done);
}

static int vmknic_tag_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicTagAdd add = KEEL__VMK__VMK_VMKNIC_TAG_ADD__INIT;
	Keel__Vmk__VmkVmknicTagRemove rm = KEEL__VMK__VMK_VMKNIC_TAG_REMOVE__INIT;
	bool adding = strcmp(call->cmd->name, "add") == 0;
	char done[512];

	if (adding) {
		add.name = (char *)call->pos[0];
		add.tag = (char *)call->pos[1];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_TAG_ADD;
		req.vmknic_tag_add = &add;
	} else {
		rm.name = (char *)call->pos[0];
		rm.tag = (char *)call->pos[1];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_TAG_REMOVE;
		req.vmknic_tag_remove = &rm;
	}
	snprintf(done, sizeof(done), "%s tag %s %s %s.", adding ? "Added" : "Removed", call->pos[1],
		 adding ? "to" : "from", call->pos[0]);
	if (kc_api_wanted(ctx)) {
		struct nic_edit e = {.tag_add = adding ? call->pos[1] : NULL,
				     .tag_remove = adding ? NULL : call->pos[1]};

		return api_edit(ctx, call, call->pos[0], &e, done);
	}
	if (no_wait_local(ctx, call))
		return KC_EXIT_USAGE;
	return simple(ctx, &req, done);
}

static const struct kc_opt vmknic_set_opts[] = {
    {"ip", "A.B.C.D/N", "the new IPv4 address and prefix", O_IP, false},
    {"netmask", "A.B.C.D", "the netmask, when --ip has no /N", O_NETMASK, false},
    {"mtu", "N", "the new MTU, 1280-9000, at most the vSwitch's", O_MTU, false},
    {"tag", "TAG", "the adapter's service tags become those given (repeat it)", O_TAG, true},
    {"no-tags", NULL, "remove every service tag", O_NO_TAGS, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

/* `set`: several changes of one adapter in one ChangeVmknic (through the API only). */
static int vmknic_set_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *mtu = kc_opt(call, O_MTU);
	struct nic_edit e = {0};
	char ip[64], done[512], *tags[API_TAGS_MAX];
	int rc;

	if (!kc_api_wanted(ctx))
		return kc_usage(ctx, call,
				"'%s' works through hostd's API only (--server); on the host use "
				"set-ip, set-mtu and tag",
				call->path);
	if (kc_opt(call, O_IP)) {
		rc = ip_arg(ctx, call, ip, sizeof(ip));
		if (rc)
			return rc;
		e.ip = ip;
	} else if (kc_opt(call, O_NETMASK)) {
		return kc_usage(ctx, call, "--netmask goes with --ip");
	}
	if (mtu && kc_parse_u32(mtu, 1280, 9000, &e.mtu))
		return kc_usage(ctx, call, "bad --mtu '%s': want 1280 to 9000", mtu);
	for (int i = 0; i < call->nopts; i++) {
		if (call->opts[i].id != O_TAG)
			continue;
		if (e.n_tags == API_TAGS_MAX)
			return kc_usage(ctx, call, "at most %d tags", API_TAGS_MAX);
		tags[e.n_tags++] = (char *)call->opts[i].val;
	}
	if (e.n_tags && kc_has(call, O_NO_TAGS))
		return kc_usage(ctx, call, "give --tag or --no-tags, not both");
	e.set_tags = e.n_tags || kc_has(call, O_NO_TAGS);
	e.tags = tags;
	if (!e.ip && !e.mtu && !e.set_tags)
		return kc_usage(ctx, call,
				"nothing to change: give --ip, --mtu, --tag or --no-tags");
	snprintf(done, sizeof(done), "Changed VMkernel adapter %s.", call->pos[0]);
	return api_edit(ctx, call, call->pos[0], &e, done);
}

static int netstack_list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "STATE", "VMKNICS", "NAMESPACE"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkNetstackList list = KEEL__VMK__VMK_NETSTACK_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_LIST;
	req.netstack_list = &list;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_NETSTACKS);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 4, heads, "llll");
	for (size_t i = 0; i < rp->n_netstacks; i++) {
		const Keel__Vmk__NetstackInfo *ns = rp->netstacks[i];
		char nics[1024];

		join(ns->vmknics, ns->n_vmknics, ", ", nics, sizeof(nics));
		kc_table_add(&t, (const char *const[]){ns->name, ns->state, nics,
						       ns->netns[0] ? ns->netns : "(vmkernel's)"});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

static int netstack_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkNetstackAdd add = KEEL__VMK__VMK_NETSTACK_ADD__INIT;
	Keel__Vmk__VmkNetstackRemove rm = KEEL__VMK__VMK_NETSTACK_REMOVE__INIT;
	bool adding = strcmp(call->cmd->name, "add") == 0;
	char done[512];

	if (adding) {
		add.name = (char *)call->pos[0];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_ADD;
		req.netstack_add = &add;
	} else {
		rm.name = (char *)call->pos[0];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_REMOVE;
		req.netstack_remove = &rm;
	}
	snprintf(done, sizeof(done), "%s netstack %s.", adding ? "Added" : "Removed", call->pos[0]);
	return simple(ctx, &req, done);
}

static const struct kc_cmd vmknic_list = {
    .name = "list",
    .summary = "List VMkernel adapters with their netstack, address, MAC, MTU, state, tags.",
    .run = vmknic_list_run,
    .api = true,
};
static const struct kc_cmd vmknic_add = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a VMkernel adapter (NAME is vmk0, vmk1, ...).",
    .detail = "Examples:\n"
	      "  keel network vmknic add vmk0 --portgroup \"Management Network\" \\\n"
	      "      --ip 198.18.0.11/24 --tag Management\n"
	      "  keel network vmknic add vmk1 --portgroup vMotion --netstack vmotion \\\n"
	      "      --ip 198.18.2.11 --netmask 255.255.255.0 --tag VMotion\n"
	      "The netstacks vmotion and provisioning are created on first use; other\n"
	      "netstacks are added with 'keel network netstack add'.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = vmknic_add_opts,
    .run = vmknic_add_run,
    .api = true,
};
static const struct kc_cmd vmknic_remove = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a VMkernel adapter.",
    .min_pos = 1,
    .max_pos = 1,
    .opts = no_wait_opts,
    .run = vmknic_remove_run,
    .api = true,
};
static const struct kc_cmd vmknic_set = {
    .name = "set",
    .args = "NAME",
    .summary = "Change a VMkernel adapter's address, MTU and tags at once (needs --server).",
    .detail = "Example:\n"
	      "  keel --server https://198.18.0.1:8443 network vmknic set vmk1 \\\n"
	      "      --ip 198.18.2.12/24 --mtu 9000 --tag VMotion --tag Provisioning\n"
	      "What is not given is kept; --tag replaces the whole set of tags. hostd makes\n"
	      "only the changes that differ from the adapter as it is.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = vmknic_set_opts,
    .run = vmknic_set_run,
    .api = true,
};
static const struct kc_cmd vmknic_set_ip = {
    .name = "set-ip",
    .args = "NAME",
    .summary = "Set the address and gateway of a VMkernel adapter.",
    .min_pos = 1,
    .max_pos = 1,
    .opts = vmknic_set_ip_opts,
    .run = vmknic_set_ip_run,
    .api = true,
};
static const struct kc_cmd vmknic_set_mtu = {
    .name = "set-mtu",
    .args = "NAME MTU",
    .summary = "Set the MTU of a VMkernel adapter (at most its vSwitch's).",
    .min_pos = 2,
    .max_pos = 2,
    .opts = no_wait_opts,
    .run = vmknic_set_mtu_run,
    .api = true,
};
static const struct kc_cmd vmknic_tag_add = {
    .name = "add",
    .args = "NAME TAG",
    .summary = "Add a service tag to a VMkernel adapter.",
    .min_pos = 2,
    .max_pos = 2,
    .opts = no_wait_opts,
    .run = vmknic_tag_run,
    .api = true,
};
static const struct kc_cmd vmknic_tag_remove = {
    .name = "remove",
    .args = "NAME TAG",
    .summary = "Remove a service tag from a VMkernel adapter.",
    .min_pos = 2,
    .max_pos = 2,
    .opts = no_wait_opts,
    .run = vmknic_tag_run,
    .api = true,
};
static const struct kc_cmd *const vmknic_tag_subs[] = {&vmknic_tag_add, &vmknic_tag_remove, NULL};
static const struct kc_cmd vmknic_tag = {
    .name = "tag",
    .summary = "Service tags: Management, VMotion, FaultToleranceLogging, Provisioning, "
	       "vSAN, Replication.",
    .subs = vmknic_tag_subs,
};
static const struct kc_cmd netstack_list = {
    .name = "list",
    .summary = "List netstacks with their adapters.",
    .run = netstack_list_run,
};
static const struct kc_cmd netstack_add = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a netstack (a network namespace of this host).",
    .min_pos = 1,
    .max_pos = 1,
    .run = netstack_run,
};
static const struct kc_cmd netstack_remove = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a netstack no VMkernel adapter uses.",
    .min_pos = 1,
    .max_pos = 1,
    .run = netstack_run,
};

static const struct kc_cmd *const vmknic_subs[] = {
    &vmknic_list,   &vmknic_add,     &vmknic_remove, &vmknic_set,
    &vmknic_set_ip, &vmknic_set_mtu, &vmknic_tag,    NULL};
static const struct kc_cmd *const netstack_subs[] = {&netstack_list, &netstack_add,
						     &netstack_remove, NULL};

const struct kc_cmd kc_network_vmknic_cmd = {
    .name = "vmknic",
    .summary = "VMkernel adapters (vmkN): the host's own IPv4 interfaces.",
    .subs = vmknic_subs,
};
const struct kc_cmd kc_network_netstack_cmd = {
    .name = "netstack",
    .summary = "Netstacks: the TCP/IP stacks VMkernel adapters live in.",
    .subs = netstack_subs,
};
