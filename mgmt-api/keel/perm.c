/*
 * `keel perm list|set|remove` through hostd's API (--server): ListPermissions and
 * ChangePermission (proto/vim.proto, docs/hostd-auth.md "Entities and permissions").
 *
 * A permission gives a principal — a user, or with --group a group — a role on an entity
 * (an id: root, cluster-..., host-..., vm-..., ds-..., net-...; default root) and, unless
 * --no-propagate, on everything below it. Setting one again replaces it. hostd refuses an
 * unknown role (NOT_FOUND), root's Admin on the root entity (FAILED_PRECONDITION) and a
 * caller without Authorization.ModifyPermissions (PERMISSION_DENIED); all exit 1.
 */
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_ENTITY = 1, O_GROUP, O_NO_PROPAGATE };

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"PRINCIPAL", "KIND", "ROLE", "ENTITY", "PROPAGATE"};
	Keel__Vim__Empty rq = KEEL__VIM__EMPTY__INIT;
	Keel__Vim__PermissionList *pl;
	ProtobufCMessage *m;
	struct kc_table t;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rc = kc_api_call(ctx, call, "ListPermissions", &rq.base,
			 &keel__vim__permission_list__descriptor, &m);
	if (rc)
		return rc;
	pl = (Keel__Vim__PermissionList *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 5, heads, "lllll");
	for (size_t i = 0; i < pl->n_permissions; i++) {
		const Keel__Vim__Permission *p = pl->permissions[i];
		const char *row[] = {p->principal, p->group ? "group" : "user", p->role, p->entity,
				     p->propagate ? "yes" : "no"};

		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int change(struct kc_ctx *ctx, const struct kc_call *call, bool remove)
{
	Keel__Vim__PermissionChange rq = KEEL__VIM__PERMISSION_CHANGE__INIT;
	Keel__Vim__Permission p = KEEL__VIM__PERMISSION__INIT;
	const char *entity = kc_opt(call, O_ENTITY);
	char c1[128], c2[128], c3[256];
	ProtobufCMessage *m;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	if (entity && !entity[0])
		return kc_usage(ctx, call,
				"--entity needs an entity id (root, host-N, vm-UUID, ...)");
	p.principal = (char *)call->pos[0];
	p.role = remove ? "" : (char *)call->pos[1];
	p.entity = (char *)(entity ? entity : "root");
	p.group = kc_has(call, O_GROUP);
	p.propagate = !kc_has(call, O_NO_PROPAGATE);
	rq.permission = &p;
	rq.remove = remove;
	rc =
	    kc_api_call(ctx, call, "ChangePermission", &rq.base, &keel__vim__empty__descriptor, &m);
	if (rc)
		return rc;
	protobuf_c_message_free_unpacked(m, NULL);
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "action", remove ? "removed" : "set");
		kc_json_obj_begin(&j, "permission");
		kc_message_json_fields(&j, &p.base, NULL);
		kc_json_obj_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else if (remove) {
		printf("Removed the permission of %s %s on %s\n", p.group ? "group" : "user",
		       kc_clean(p.principal, c1, sizeof(c1)), kc_clean(p.entity, c3, sizeof(c3)));
	} else {
		printf("%s %s has role %s on %s%s\n", p.group ? "Group" : "User",
		       kc_clean(p.principal, c1, sizeof(c1)), kc_clean(p.role, c2, sizeof(c2)),
		       kc_clean(p.entity, c3, sizeof(c3)),
		       p.propagate ? " and everything below it" : "");
	}
	return KC_EXIT_OK;
}

static int set_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	return change(ctx, call, false);
}

static int remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	return change(ctx, call, true);
}

static const struct kc_opt set_opts[] = {
    {"entity", "ID", "the entity (default root: everything)", O_ENTITY, false},
    {"group", NULL, "PRINCIPAL is a group, not a user", O_GROUP, false},
    {"no-propagate", NULL, "on the entity only, not what is below it", O_NO_PROPAGATE, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt remove_opts[] = {
    {"entity", "ID", "the entity (default root)", O_ENTITY, false},
    {"group", NULL, "PRINCIPAL is a group, not a user", O_GROUP, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List the permissions (needs --server).",
    .run = list_run,
    .api = true,
};

static const struct kc_cmd set_cmd = {
    .name = "set",
    .args = "PRINCIPAL ROLE",
    .summary = "Give a user or group a role on an entity (needs --server).",
    .detail = "Replaces the principal's permission on that entity if it has one. The most\n"
	      "specific permission wins: NoAccess on a VM denies what Admin on root grants.\n"
	      "\n"
	      "Example:\n"
	      "  keel --server https://198.18.0.1:8443 perm set ops1 Operator --entity host-1\n",
    .min_pos = 2,
    .max_pos = 2,
    .opts = set_opts,
    .run = set_run,
    .api = true,
};

static const struct kc_cmd remove_cmd = {
    .name = "remove",
    .args = "PRINCIPAL",
    .summary = "Remove a user's or group's permission on an entity (needs --server).",
    .min_pos = 1,
    .max_pos = 1,
    .opts = remove_opts,
    .run = remove_run,
    .api = true,
};

static const struct kc_cmd *const perm_subs[] = {&list_cmd, &set_cmd, &remove_cmd, NULL};

const struct kc_cmd kc_perm_cmd = {
    .name = "perm",
    .summary = "Permissions: who holds which role where, through hostd's API (needs --server).",
    .subs = perm_subs,
};
