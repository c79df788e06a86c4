/*
 * `keel datastore list|add|remove`: the directories where VMs live.
 *
 * list shows each datastore's path, whether it is shared between hosts, capacity, free
 * space and how many VMs are registered on it. add names a directory of this host (made
 * absolute here, since vmkernel does not share our working directory); --shared marks one
 * that other hosts mount too. remove forgets a datastore; vmkernel refuses while VMs are
 * registered on it.
 *
 * Through hostd's API (--server): list reads GetHostConfig (no VM counts there); add and
 * remove are ChangeDatastore tasks, followed to their end (task.c), whose error is
 * vmkernel's text. add's PATH must then be absolute: it names a directory on the host, not
 * here.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

/* ---- through hostd's API ------------------------------------------------------------------ */

static void used_pct(uint64_t capacity, uint64_t free_, char *out, size_t size)
{
	snprintf(out, size, "-");
	if (capacity > 0 && free_ <= capacity)
		snprintf(out, size, "%.0f%%",
			 100.0 * (double)(capacity - free_) / (double)capacity);
}

static int api_list(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "PATH", "SHARED", "CAPACITY", "FREE", "USED%"};
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
		kc_json_arr_begin(&j, "datastores");
		for (size_t i = 0; i < hc->n_datastores; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &hc->datastores[i]->base, NULL);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 6, heads, "lllrrr");
	for (size_t i = 0; i < hc->n_datastores; i++) {
		const Keel__Vim__DatastoreObject *ds = hc->datastores[i];
		char cap[32], free_[32], used[16];

		kc_fmt_bytes(ds->capacity, cap, sizeof(cap));
		kc_fmt_bytes(ds->free, free_, sizeof(free_));
		used_pct(ds->capacity, ds->free, used, sizeof(used));
		kc_table_add(&t,
			     (const char *const[]){ds->name, ds->path, ds->shared ? "yes" : "no",
						   cap, free_, used});
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
	snprintf(done, size, "%s", (const char *)arg);
}

/* add (remove false: name, path, shared) or remove (name) as a ChangeDatastore task. */
static int api_change(struct kc_ctx *ctx, const struct kc_call *call, bool remove, bool shared)
{
	Keel__Vim__DatastoreChange rq = KEEL__VIM__DATASTORE_CHANGE__INIT;
	char done[1024], name[256], path[PATH_MAX];

	rq.name = (char *)call->pos[0];
	rq.remove = remove;
	kc_clean(call->pos[0], name, sizeof(name));
	if (remove) {
		snprintf(done, sizeof(done), "Removed datastore %s.", name);
	} else {
		if (call->pos[1][0] != '/')
			return kc_usage(ctx, call,
					"through hostd's API PATH must be absolute: it names a "
					"directory on the host");
		rq.path = (char *)call->pos[1];
		rq.shared = shared;
		snprintf(done, sizeof(done), "Added %sdatastore %s at %s.", shared ? "shared " : "",
			 name, kc_clean(call->pos[1], path, sizeof(path)));
	}
	return kc_task_run(ctx, call, "ChangeDatastore", &rq.base, fixed_text, done);
}

/* ---- through vmkernel's socket ----------------------------------------------------------- */

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "PATH",  "SHARED", "CAPACITY",
					    "FREE", "USED%", "VMS"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreList list = KEEL__VMK__VMK_DATASTORE_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	if (kc_api_wanted(ctx))
		return api_list(ctx, call);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST;
	req.datastore_list = &list;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_DATASTORES);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 7, heads, "lllrrrr");
	for (size_t i = 0; i < rp->n_datastores; i++) {
		const Keel__Vmk__DatastoreInfo *ds = rp->datastores[i];
		char cap[32], free_[32], used[16], vms[16];

		kc_fmt_bytes(ds->capacity, cap, sizeof(cap));
		kc_fmt_bytes(ds->free, free_, sizeof(free_));
		used_pct(ds->capacity, ds->free, used, sizeof(used));
		snprintf(vms, sizeof(vms), "%" PRIu32, ds->vms);
		kc_table_add(&t,
			     (const char *const[]){ds->name, ds->path, ds->shared ? "yes" : "no",
						   cap, free_, used, vms});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

enum { O_SHARED = 1 };

static const struct kc_opt add_opts[] = {
    {"shared", NULL, "the directory is shared with other hosts (e.g. an NFS mount)", O_SHARED,
     false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static int add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreAdd add = KEEL__VMK__VMK_DATASTORE_ADD__INIT;
	Keel__Vmk__VmkReply *rp;
	char path[PATH_MAX], name[256];
	int rc;

	if (call->pos[0][0] == '\0' || call->pos[1][0] == '\0')
		return kc_usage(ctx, call, "the datastore name and path must not be empty");
	if (kc_api_wanted(ctx))
		return api_change(ctx, call, false, kc_has(call, O_SHARED));
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	if (kc_abs_path(call->pos[1], path, sizeof(path)) != 0)
		return kc_usage(ctx, call, "path too long: %s", call->pos[1]);
	add.name = (char *)call->pos[0];
	add.path = path;
	add.shared = kc_has(call, O_SHARED);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD;
	req.datastore_add = &add;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json)
		kc_reply_json(rp, 0);
	else
		printf("Added %sdatastore %s at %s.\n", add.shared ? "shared " : "",
		       kc_clean(add.name, name, sizeof(name)), path);
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static const struct kc_opt remove_opts[] = {
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static int remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreRemove rm = KEEL__VMK__VMK_DATASTORE_REMOVE__INIT;
	Keel__Vmk__VmkReply *rp;
	char name[256];
	int rc;

	if (kc_api_wanted(ctx))
		return api_change(ctx, call, true, false);
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	rm.name = (char *)call->pos[0];
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_REMOVE;
	req.datastore_remove = &rm;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json)
		kc_reply_json(rp, 0);
	else
		printf("Removed datastore %s.\n", kc_clean(rm.name, name, sizeof(name)));
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List datastores with capacity, free space and VMs.",
    .run = list_run,
    .api = true,
};

static const struct kc_cmd add_cmd = {
    .name = "add",
    .args = "NAME PATH",
    .summary = "Add a directory of this host as a datastore.",
    .min_pos = 2,
    .max_pos = 2,
    .opts = add_opts,
    .run = add_run,
    .api = true,
};

static const struct kc_cmd remove_cmd = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a datastore (its files stay; no VM may be registered on it).",
    .min_pos = 1,
    .max_pos = 1,
    .opts = remove_opts,
    .run = remove_run,
    .api = true,
};

static const struct kc_cmd *const datastore_subs[] = {&list_cmd, &add_cmd, &remove_cmd, NULL};

const struct kc_cmd kc_datastore_cmd = {
    .name = "datastore",
    .summary = "Datastores: directories that hold VMs.",
    .subs = datastore_subs,
};
