/*
 * `keel role list|add|remove|privileges` through hostd's API (--server): ListRoles and
 * ChangeRole (proto/vim.proto, docs/hostd-auth.md "Privileges and roles").
 *
 * ChangeRole sets a role whether it exists or not, so add looks the name up first and
 * refuses one that exists (ALREADY_EXISTS, exit 1). hostd refuses unknown privilege names
 * (INVALID_ARGUMENT, naming it), the system roles (FAILED_PRECONDITION) and a role still
 * used by a permission. `privileges` prints the privilege vocabulary: the privileges of
 * the system role Admin, which holds every one.
 */
#include <string.h>

#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_PRIV = 1 };

static int list_roles(struct kc_ctx *ctx, const struct kc_call *call, Keel__Vim__RoleList **out)
{
	Keel__Vim__Empty rq = KEEL__VIM__EMPTY__INIT;

	return kc_api_call(ctx, call, "ListRoles", &rq.base, &keel__vim__role_list__descriptor,
			   (ProtobufCMessage **)out);
}

static void done(struct kc_ctx *ctx, const char *name, const char *action, const char *text)
{
	char clean[256];

	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "role", name);
		kc_json_str(&j, "action", action);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return;
	}
	printf("%s %s\n", text, kc_clean(name, clean, sizeof(clean)));
}

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "SYSTEM", "PRIVILEGES"};
	Keel__Vim__RoleList *rl;
	struct kc_table t;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rc = list_roles(ctx, call, &rl);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_api_json(&rl->base, NULL);
		keel__vim__role_list__free_unpacked(rl, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 3, heads, "lll");
	for (size_t i = 0; i < rl->n_roles; i++) {
		const Keel__Vim__Role *r = rl->roles[i];
		char privs[4096] = "";
		const char *row[3];
		size_t n = 0;

		for (size_t p = 0; p < r->n_privileges && n < sizeof(privs); p++)
			n += (size_t)snprintf(privs + n, sizeof(privs) - n, "%s%s", p ? "," : "",
					      r->privileges[p]);
		row[0] = r->name;
		row[1] = r->system ? "yes" : "no";
		row[2] = privs[0] ? privs : "-";
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	keel__vim__role_list__free_unpacked(rl, NULL);
	return rc;
}

static int privileges_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const Keel__Vim__Role *admin = NULL;
	Keel__Vim__RoleList *rl;
	char clean[256];
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rc = list_roles(ctx, call, &rl);
	if (rc)
		return rc;
	for (size_t i = 0; i < rl->n_roles; i++)
		if (rl->roles[i]->system && strcmp(rl->roles[i]->name, "Admin") == 0)
			admin = rl->roles[i];
	if (!admin) {
		keel__vim__role_list__free_unpacked(rl, NULL);
		return kc_fail(ctx, KC_EXIT_PROTO, KL_INTERNAL,
			       "hostd's ListRoles has no system role Admin to take the privileges "
			       "from");
	}
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "privileges");
		for (size_t p = 0; p < admin->n_privileges; p++)
			kc_json_str(&j, NULL, admin->privileges[p]);
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		for (size_t p = 0; p < admin->n_privileges; p++)
			printf("%s\n", kc_clean(admin->privileges[p], clean, sizeof(clean)));
	}
	keel__vim__role_list__free_unpacked(rl, NULL);
	return KC_EXIT_OK;
}

static int change(struct kc_ctx *ctx, const struct kc_call *call, Keel__Vim__RoleChange *rq)
{
	ProtobufCMessage *m;
	int rc;

	rc = kc_api_call(ctx, call, "ChangeRole", &rq->base, &keel__vim__empty__descriptor, &m);
	if (rc == KC_EXIT_OK)
		protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__RoleChange rq = KEEL__VIM__ROLE_CHANGE__INIT;
	Keel__Vim__Role role = KEEL__VIM__ROLE__INIT;
	const char *name = call->pos[0];
	char *privs[KC_MAX_OPTS];
	Keel__Vim__RoleList *rl;
	bool exists = false;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	for (int i = 0; i < call->nopts; i++)
		if (call->opts[i].id == O_PRIV)
			privs[role.n_privileges++] = (char *)call->opts[i].val;
	if (role.n_privileges == 0)
		return kc_usage(ctx, call,
				"give at least one --priv PRIVILEGE (keel role privileges "
				"lists them)");
	rc = list_roles(ctx, call, &rl);
	if (rc)
		return rc;
	for (size_t i = 0; i < rl->n_roles; i++)
		if (strcmp(rl->roles[i]->name, name) == 0)
			exists = true;
	keel__vim__role_list__free_unpacked(rl, NULL);
	if (exists)
		return kc_fail(ctx, KC_EXIT_FAILED, KL_ALREADY_EXISTS, "role %s already exists",
			       name);
	role.name = (char *)name;
	role.privileges = privs;
	rq.role = &role;
	rc = change(ctx, call, &rq);
	if (rc == KC_EXIT_OK)
		done(ctx, name, "added", "Added role");
	return rc;
}

static int remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__RoleChange rq = KEEL__VIM__ROLE_CHANGE__INIT;
	Keel__Vim__Role role = KEEL__VIM__ROLE__INIT;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	role.name = (char *)call->pos[0];
	rq.role = &role;
	rq.remove = true;
	rc = change(ctx, call, &rq);
	if (rc == KC_EXIT_OK)
		done(ctx, call->pos[0], "removed", "Removed role");
	return rc;
}

static const struct kc_opt add_opts[] = {
    {"priv", "PRIVILEGE", "a privilege the role grants (keel role privileges)", O_PRIV, true},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List the roles and their privileges (needs --server).",
    .run = list_run,
    .api = true,
};

static const struct kc_cmd add_cmd = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a custom role (needs --server and Authorization.ModifyRoles).",
    .detail =
	"NAME: 1 to 64 of [A-Za-z0-9_.-], starting with a letter. A custom role always\n"
	"holds System.Anonymous, System.View and System.Read besides the privileges\n"
	"given. A role that exists already is refused (exit 1).\n"
	"\n"
	"Example:\n"
	"  keel --server https://198.18.0.1:8443 role add Operator \\\n"
	"       --priv VirtualMachine.Interact.PowerOn --priv VirtualMachine.Interact.PowerOff\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = add_opts,
    .run = add_run,
    .api = true,
};

static const struct kc_cmd remove_cmd = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a custom role no permission uses (needs --server).",
    .min_pos = 1,
    .max_pos = 1,
    .run = remove_run,
    .api = true,
};

static const struct kc_cmd privileges_cmd = {
    .name = "privileges",
    .summary = "List the privilege names a role may hold (needs --server).",
    .run = privileges_run,
    .api = true,
};

static const struct kc_cmd *const role_subs[] = {&list_cmd, &add_cmd, &remove_cmd, &privileges_cmd,
						 NULL};

const struct kc_cmd kc_role_cmd = {
    .name = "role",
    .summary = "Roles: named sets of privileges, through hostd's API (needs --server).",
    .detail = "System roles, which cannot change: Admin (every privilege), ReadOnly (System.*)\n"
	      "and NoAccess (none).\n",
    .subs = role_subs,
};
