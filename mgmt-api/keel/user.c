/*
 * `keel user list|add|passwd|remove` through hostd's API (--server): ListUsers and
 * ChangeUser (proto/vim.proto, hostagent/vim_users.c).
 *
 * ChangeUser both creates and changes a user, so add and passwd look the name up first:
 * add refuses a user that exists (ALREADY_EXISTS, exit 1) and passwd one that does not
 * (NOT_FOUND, exit 1) instead of quietly doing the other thing. Passwords come from
 * --password-file (its first line) or, on a terminal, a prompt without echo, asked twice;
 * never from the command line or the environment. A new password ends the user's
 * sessions (hostd does it). Changes need Authorization.ModifyUsers on the root entity: a
 * user without it gets hostd's PERMISSION_DENIED (exit 1, "code" 7 under --json).
 */
#include <errno.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_PWFILE = 1, O_DESC, O_GROUP };

#define PW_MAX 1024

/* {"ok":true,"code":0,"user":NAME,"action":ACTION} or the text line. */
static void done(struct kc_ctx *ctx, const char *name, const char *action, const char *text)
{
	char clean[256];

	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "user", name);
		kc_json_str(&j, "action", action);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return;
	}
	printf("%s %s\n", text, kc_clean(name, clean, sizeof(clean)));
}

/* Whether user name exists: KC_EXIT_OK and *exists, or the failure reported. */
static int user_exists(struct kc_ctx *ctx, const struct kc_call *call, const char *name,
		       bool *exists)
{
	Keel__Vim__Empty rq = KEEL__VIM__EMPTY__INIT;
	Keel__Vim__UserList *ul;
	ProtobufCMessage *m;
	int rc;

	*exists = false;
	rc = kc_api_call(ctx, call, "ListUsers", &rq.base, &keel__vim__user_list__descriptor, &m);
	if (rc)
		return rc;
	ul = (Keel__Vim__UserList *)m;
	for (size_t i = 0; i < ul->n_users; i++)
		if (strcmp(ul->users[i]->name, name) == 0)
			*exists = true;
	protobuf_c_message_free_unpacked(m, NULL);
	return KC_EXIT_OK;
}

static int change(struct kc_ctx *ctx, const struct kc_call *call, Keel__Vim__UserChange *rq)
{
	ProtobufCMessage *m;
	int rc;

	rc = kc_api_call(ctx, call, "ChangeUser", &rq->base, &keel__vim__empty__descriptor, &m);
	if (rc == KC_EXIT_OK)
		protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "DESCRIPTION", "GROUPS"};
	Keel__Vim__Empty rq = KEEL__VIM__EMPTY__INIT;
	Keel__Vim__UserList *ul;
	ProtobufCMessage *m;
	struct kc_table t;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rc = kc_api_call(ctx, call, "ListUsers", &rq.base, &keel__vim__user_list__descriptor, &m);
	if (rc)
		return rc;
	ul = (Keel__Vim__UserList *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 3, heads, "lll");
	for (size_t i = 0; i < ul->n_users; i++) {
		const Keel__Vim__User *u = ul->users[i];
		char groups[1024] = "";
		const char *row[3];
		size_t n = 0;

		for (size_t g = 0; g < u->n_groups && n < sizeof(groups); g++)
			n += (size_t)snprintf(groups + n, sizeof(groups) - n, "%s%s", g ? "," : "",
					      u->groups[g]);
		row[0] = u->name;
		row[1] = u->description[0] ? u->description : "-";
		row[2] = groups[0] ? groups : "-";
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int add_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__UserChange rq = KEEL__VIM__USER_CHANGE__INIT;
	const char *name = call->pos[0];
	char *groups[KC_MAX_OPTS];
	char pw[PW_MAX];
	bool exists;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rq.n_groups = 0;
	for (int i = 0; i < call->nopts; i++)
		if (call->opts[i].id == O_GROUP)
			groups[rq.n_groups++] = (char *)call->opts[i].val;
	rc = user_exists(ctx, call, name, &exists);
	if (rc)
		return rc;
	if (exists)
		return kc_fail(ctx, KC_EXIT_FAILED, KL_ALREADY_EXISTS,
			       "user %s already exists (keel user passwd changes its password)",
			       name);
	rc = kc_read_new_password(ctx, call, kc_opt(call, O_PWFILE), name, pw, sizeof(pw));
	if (rc)
		return rc;
	rq.name = (char *)name;
	rq.password = pw;
	rq.description = (char *)(kc_opt(call, O_DESC) ? kc_opt(call, O_DESC) : "");
	rq.groups = groups;
	rc = change(ctx, call, &rq);
	explicit_bzero(pw, sizeof(pw));
	if (rc == KC_EXIT_OK)
		done(ctx, name, "added", "Added user");
	return rc;
}

static int passwd_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__UserChange rq = KEEL__VIM__USER_CHANGE__INIT;
	const char *name = call->pos[0];
	char pw[PW_MAX];
	bool exists;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rc = user_exists(ctx, call, name, &exists);
	if (rc)
		return rc;
	if (!exists)
		return kc_fail(ctx, KC_EXIT_FAILED, KL_NOT_FOUND, "user %s: no such user", name);
	rc = kc_read_new_password(ctx, call, kc_opt(call, O_PWFILE), name, pw, sizeof(pw));
	if (rc)
		return rc;
	if (!pw[0]) {
		explicit_bzero(pw, sizeof(pw));
		return kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "the new password is empty");
	}
	rq.name = (char *)name;
	rq.password = pw;
	rc = change(ctx, call, &rq);
	explicit_bzero(pw, sizeof(pw));
	if (rc == KC_EXIT_OK)
		done(ctx, name, "password-changed",
		     "Changed the password (sessions ended) of user");
	return rc;
}

static int remove_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__UserChange rq = KEEL__VIM__USER_CHANGE__INIT;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rq.name = (char *)call->pos[0];
	rq.remove = true;
	rc = change(ctx, call, &rq);
	if (rc == KC_EXIT_OK)
		done(ctx, call->pos[0], "removed", "Removed user");
	return rc;
}

static const struct kc_opt add_opts[] = {
    {"password-file", "FILE", "read the password from the first line of FILE (else a prompt)",
     O_PWFILE, false},
    {"description", "TEXT", "a description of the user", O_DESC, false},
    {"group", "GROUP", "a group the user belongs to", O_GROUP, true},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt passwd_opts[] = {
    {"password-file", "FILE", "read the password from the first line of FILE (else a prompt)",
     O_PWFILE, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List the users of the host (needs --server).",
    .run = list_run,
    .api = true,
};

static const struct kc_cmd add_cmd = {
    .name = "add",
    .args = "NAME",
    .summary = "Add a user (needs --server and Authorization.ModifyUsers).",
    .detail = "NAME: 1 to 32 of [a-z0-9_.-], not starting with a digit, '.' or '-'. The\n"
	      "password (8 to 128 bytes) comes from --password-file or a prompt on the\n"
	      "terminal; never from the command line. A new user has no permission: give it a\n"
	      "role with keel perm set. A user that exists already is refused (exit 1).\n"
	      "\n"
	      "Example:\n"
	      "  keel --server https://198.18.0.1:8443 user add ops1 --password-file pw \\\n"
	      "       --description \"night shift\" --group operators\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = add_opts,
    .run = add_run,
    .api = true,
};

static const struct kc_cmd passwd_cmd = {
    .name = "passwd",
    .args = "NAME",
    .summary = "Set a user's password (needs --server and Authorization.ModifyUsers).",
    .detail = "The user's open sessions end. An unknown user is refused (exit 1).\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = passwd_opts,
    .run = passwd_run,
    .api = true,
};

static const struct kc_cmd remove_cmd = {
    .name = "remove",
    .args = "NAME",
    .summary = "Remove a user and end its sessions (needs --server).",
    .detail = "root cannot be removed (exit 1).\n",
    .min_pos = 1,
    .max_pos = 1,
    .run = remove_run,
    .api = true,
};

static const struct kc_cmd *const user_subs[] = {&list_cmd, &add_cmd, &passwd_cmd, &remove_cmd,
						 NULL};

const struct kc_cmd kc_user_cmd = {
    .name = "user",
    .summary = "The host's local users, through hostd's API (needs --server).",
    .detail = "What a user may do comes from permissions (keel perm) giving it, or one of its\n"
	      "groups, a role (keel role) on an entity.\n",
    .subs = user_subs,
};
