/*
 * `keel datastore list|add|remove`: the directories where VMs live.
 *
 * list shows each datastore's path, whether it is shared between hosts, capacity, free
 * space and how many VMs are registered on it. add names a directory of this host (made
 * absolute here, since vmkernel does not share our working directory); --shared marks one
 * that other hosts mount too. remove forgets a datastore; vmkernel refuses while VMs are
 * registered on it.
 */
#include <inttypes.h>
#include <limits.h>

#include "mgmt-api/keel/keel.h"

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "PATH",  "SHARED", "CAPACITY",
					    "FREE", "USED%", "VMS"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreList list = KEEL__VMK__VMK_DATASTORE_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

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
		char cap[32], free_[32], used[16] = "-", vms[16];

		kc_fmt_bytes(ds->capacity, cap, sizeof(cap));
		kc_fmt_bytes(ds->free, free_, sizeof(free_));
		if (ds->capacity > 0 && ds->free <= ds->capacity)
			snprintf(used, sizeof(used), "%.0f%%",
				 100.0 * (double)(ds->capacity - ds->free) / (double)ds->capacity);
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

static int remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreRemove rm = KEEL__VMK__VMK_DATASTORE_REMOVE__INIT;
	Keel__Vmk__VmkReply *rp;
	char name[256];
	int rc;

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
};

static const struct kc_cmd add_cmd = {
    .name = "add",
    .args = "NAME PATH",
    .summary = "Add a directory of this host as a datastore.",
    .min_pos = 2,
    .max_pos = 2,
    .opts = add_opts,
    .run = add_run,
};

static const struct kc_cmd remove_cmd = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a datastore (its files stay; no VM may be registered on it).",
    .min_pos = 1,
    .max_pos = 1,
    .run = remove_run,
};

static const struct kc_cmd *const datastore_subs[] = {&list_cmd, &add_cmd, &remove_cmd, NULL};

const struct kc_cmd kc_datastore_cmd = {
    .name = "datastore",
    .summary = "Datastores: directories that hold VMs.",
    .subs = datastore_subs,
};
