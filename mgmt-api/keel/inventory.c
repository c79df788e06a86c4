/*
 * `keel inventory` and `keel session`: read-only views through hostd's API (--server).
 *
 * inventory calls RetrieveInventory and prints the cluster (if any), then the hosts, VMs,
 * datastores and networks as tables; with --json one object: "ok", "code", then every
 * field of the Inventory under its proto name (cluster null outside a cluster, lists
 * always present). session calls CurrentSession and shows the user, when the session was
 * made, its idle timeout and the privileges on the root entity (never the token).
 */
#include <inttypes.h>
#include <time.h>

#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

static int print_hosts(struct kc_ctx *ctx, const Keel__Vim__Inventory *inv)
{
	static const char *const heads[] = {"ID",   "NAME", "STATE",	  "ROLE",
					    "VMK0", "API",  "MAINTENANCE"};
	struct kc_table t;

	kc_table_init(&t, 7, heads, "lllllll");
	for (size_t i = 0; i < inv->n_hosts; i++) {
		const Keel__Vim__HostObject *h = inv->hosts[i];
		const char *row[] = {h->id,
				     h->name,
				     h->state,
				     h->raft_role[0] ? h->raft_role : "-",
				     h->vmk0[0] ? h->vmk0 : "-",
				     h->api_address[0] ? h->api_address : "-",
				     h->maintenance ? "yes" : "no"};
		kc_table_add(&t, row);
	}
	printf("Hosts:\n");
	{
		int rv = kc_table_print(&t, ctx, stdout);

		kc_table_close(&t);
		return rv;
	}
}

static int print_vms(struct kc_ctx *ctx, const Keel__Vim__Inventory *inv)
{
	static const char *const heads[] = {"ID",      "NAME",	"HOST",	  "POWER",
					    "DESIRED", "VCPUS", "MEMORY", "DATASTORE"};
	struct kc_table t;

	kc_table_init(&t, 8, heads, "lllllrrl");
	for (size_t i = 0; i < inv->n_vms; i++) {
		const Keel__Vim__VmObject *v = inv->vms[i];
		char vcpus[16], mem[32];
		const char *row[8];

		snprintf(vcpus, sizeof(vcpus), "%" PRIu32, v->vcpus);
		kc_fmt_bytes(v->memory_mib << 20, mem, sizeof(mem));
		row[0] = v->id;
		row[1] = v->name;
		row[2] = v->host;
		row[3] = v->power_state[0] ? kc_fmt_power_state(v->power_state) : "-";
		row[4] = v->desired_power[0] ? kc_fmt_power_state(v->desired_power) : "-";
		row[5] = vcpus;
		row[6] = v->memory_mib ? mem : "-";
		row[7] = v->datastore[0] ? v->datastore : "-";
		kc_table_add(&t, row);
	}
	printf("\nVMs:\n");
	{
		int rv = kc_table_print(&t, ctx, stdout);

		kc_table_close(&t);
		return rv;
	}
}

static int print_datastores(struct kc_ctx *ctx, const Keel__Vim__Inventory *inv)
{
	static const char *const heads[] = {"ID",	"NAME", "HOST", "SHARED",
					    "CAPACITY", "FREE", "PATH"};
	struct kc_table t;

	kc_table_init(&t, 7, heads, "llllrrl");
	for (size_t i = 0; i < inv->n_datastores; i++) {
		const Keel__Vim__DatastoreObject *d = inv->datastores[i];
		char cap[32], fr[32];
		const char *row[] = {d->id,
				     d->name,
				     d->host[0] ? d->host : "-",
				     d->shared ? "yes" : "no",
				     kc_fmt_bytes(d->capacity, cap, sizeof(cap)),
				     kc_fmt_bytes(d->free, fr, sizeof(fr)),
				     d->path};
		kc_table_add(&t, row);
	}
	printf("\nDatastores:\n");
	{
		int rv = kc_table_print(&t, ctx, stdout);

		kc_table_close(&t);
		return rv;
	}
}

static int print_networks(struct kc_ctx *ctx, const Keel__Vim__Inventory *inv)
{
	static const char *const heads[] = {"ID", "PORTGROUP", "VSWITCH", "VLAN", "HOST"};
	struct kc_table t;

	kc_table_init(&t, 5, heads, "lllrl");
	for (size_t i = 0; i < inv->n_networks; i++) {
		const Keel__Vim__NetworkObject *n = inv->networks[i];
		char vlan[16];
		const char *row[5];

		snprintf(vlan, sizeof(vlan), "%" PRIu32, n->vlan);
		row[0] = n->id;
		row[1] = n->portgroup;
		row[2] = n->vswitch;
		row[3] = vlan;
		row[4] = n->host[0] ? n->host : "-";
		kc_table_add(&t, row);
	}
	printf("\nNetworks:\n");
	{
		int rv = kc_table_print(&t, ctx, stdout);

		kc_table_close(&t);
		return rv;
	}
}

static int inventory_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__RetrieveInventoryRequest rq = KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
	Keel__Vim__Inventory *inv;
	ProtobufCMessage *m;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rc = kc_api_call(ctx, call, "RetrieveInventory", &rq.base,
			 &keel__vim__inventory__descriptor, &m);
	if (rc)
		return rc;
	inv = (Keel__Vim__Inventory *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
	} else {
		if (inv->cluster) {
			kc_kv(stdout, "Cluster", "%s (%s)", inv->cluster->name, inv->cluster->id);
			kc_kv(stdout, "Leader", "%s",
			      inv->cluster->leader[0] ? inv->cluster->leader : "-");
			printf("\n");
		}
		rc = print_hosts(ctx, inv);
		if (!rc)
			rc = print_vms(ctx, inv);
		if (!rc)
			rc = print_datastores(ctx, inv);
		if (!rc)
			rc = print_networks(ctx, inv);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int session_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__CurrentSessionRequest rq = KEEL__VIM__CURRENT_SESSION_REQUEST__INIT;
	char url[KC_URL_MAX], when[64];
	Keel__Vim__Session *s;
	ProtobufCMessage *m;
	struct tm tm;
	time_t t;
	int rc;

	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	rc =
	    kc_api_call(ctx, call, "CurrentSession", &rq.base, &keel__vim__session__descriptor, &m);
	if (rc)
		return rc;
	s = (Keel__Vim__Session *)m;
	if (ctx->json) {
		kc_api_json(m, "token");
	} else {
		t = (time_t)(s->created_ms / 1000);
		if (!gmtime_r(&t, &tm) ||
		    !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm))
			snprintf(when, sizeof(when), "-");
		kc_kv(stdout, "Server", "%s", url);
		kc_kv(stdout, "User", "%s", s->user);
		kc_kv(stdout, "Created", "%s", when);
		kc_kv(stdout, "Idle timeout", "%" PRIu64 " min", (s->idle_timeout_s + 59) / 60);
		kc_kv(stdout, "Privileges", "%zu on the root entity", s->n_privileges_root);
		for (size_t i = 0; i < s->n_privileges_root; i++)
			kc_kv(stdout, "", "%s", s->privileges_root[i]);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return KC_EXIT_OK;
}

const struct kc_cmd kc_inventory_cmd = {
    .name = "inventory",
    .summary = "List the hosts, VMs, datastores and networks hostd knows (needs --server).",
    .detail = "Calls RetrieveInventory with the session of 'keel login'. In a cluster the\n"
	      "answer covers every host; a VM on another host shows its desired power only.\n"
	      "\n"
	      "Example:\n"
	      "  keel --server https://198.18.0.1:8443 inventory --json\n",
    .run = inventory_run,
    .api = true,
};

const struct kc_cmd kc_session_cmd = {
    .name = "session",
    .summary = "Show the cached session with hostd (needs --server): user, privileges.",
    .run = session_run,
    .api = true,
};
