/*
 * `keel inventory` and `keel session`: read-only views through hostd's API (--server).
 *
 * inventory calls RetrieveInventory and prints the cluster (if any), then the hosts, VMs,
 * datastores and networks as tables; with --json one object: "ok", "code", then every
 * field of the Inventory under its proto name (cluster null outside a cluster, lists
 * always present). session calls CurrentSession and shows the user, when the session was
 * made, its idle timeout and the privileges on the root entity (never the token).
 *
 * `inventory watch` follows the change feed (WaitForUpdates through libkeel's kl_watch)
 * and prints each Update as it arrives as one JSON line (its fields under their proto
 * names; the object under its kind: "host", "vm", ...), flushed at once, until --count
 * updates were printed or the stream ends. --timeout does not bound it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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

enum { O_SINCE = 1, O_COUNT };

struct watch {
	uint64_t left; /* updates still to print; 0: no limit */
	bool limited;
};

static int watch_cb(const Keel__Vim__Update *u, void *arg)
{
	struct watch *w = arg;
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_message_json_fields(&j, &u->base, NULL);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
	if (ferror(stdout))
		return 1; /* nobody reads: stop */
	return w->limited && --w->left == 0;
}

static int watch_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *since_s = kc_opt(call, O_SINCE), *count_s = kc_opt(call, O_COUNT);
	struct watch w = {0};
	char url[KC_URL_MAX];
	uint64_t since = 0;
	struct kl_client *c;
	struct kl_status st;
	uint32_t count;
	char *end;
	int rc;

	if (since_s) {
		since = strtoull(since_s, &end, 10);
		if (since_s[0] < '0' || since_s[0] > '9' || *end)
			return kc_usage(ctx, call, "bad --since '%s': want a version", since_s);
	}
	if (count_s) {
		if (kc_parse_u32(count_s, 1, UINT32_MAX, &count) != 0)
			return kc_usage(ctx, call, "bad --count '%s': want 1 or more", count_s);
		w.left = count;
		w.limited = true;
	}
	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	rc = kl_watch(c, since, watch_cb, &w, &st);
	kl_client_destroy(c);
	if (rc)
		return kc_api_fail(ctx, url, true, NULL, &st);
	return KC_EXIT_OK;
}

static int inventory_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__RetrieveInventoryRequest rq = KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
	Keel__Vim__Inventory *inv;
	ProtobufCMessage *m;
	int rc;

	if (call->npos == 1) {
		if (strcmp(call->pos[0], "watch") != 0)
			return kc_usage(ctx, call, "unknown command '%s' for '%s' (watch?)",
					call->pos[0], call->path);
		return watch_run(ctx, call);
	}
	if (kc_has(call, O_SINCE) || kc_has(call, O_COUNT))
		return kc_usage(ctx, call, "--since and --count go with 'inventory watch'");
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

static const struct kc_opt inventory_opts[] = {
    {"since", "VERSION", "watch: start after this version (default 0: every object first)", O_SINCE,
     false},
    {"count", "N", "watch: stop after N updates (default: follow until interrupted)", O_COUNT,
     false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_inventory_cmd = {
    .name = "inventory",
    .args = "[watch]",
    .summary = "List the hosts, VMs, datastores and networks hostd knows (needs --server).",
    .detail = "Calls RetrieveInventory with the session of 'keel login'. In a cluster the\n"
	      "answer covers every host; a VM on another host shows its desired power only.\n"
	      "\n"
	      "inventory watch follows the change feed (WaitForUpdates): one JSON line per\n"
	      "Update as it arrives ({\"version\":N,\"removed\":false,\"vm\":{...}}), first\n"
	      "every object changed after --since, then each change. Resume with the version\n"
	      "of the last line; an Update with no object, removed true and version 0 means\n"
	      "\"forget every object\" (a reset). Ends after --count updates, or with the\n"
	      "stream.\n"
	      "\n"
	      "Examples:\n"
	      "  keel --server https://198.18.0.1:8443 inventory --json\n"
	      "  keel --server https://198.18.0.1:8443 inventory watch --since 0 --count 10\n",
    .max_pos = 1,
    .opts = inventory_opts,
    .run = inventory_run,
    .api = true,
};

const struct kc_cmd kc_session_cmd = {
    .name = "session",
    .summary = "Show the cached session with hostd (needs --server): user, privileges.",
    .run = session_run,
    .api = true,
};
