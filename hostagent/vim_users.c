/*
 * Users, roles and permissions through the Vim API (hostagent/vim_users.h).
 *
 * Happy path of a change: authorize on the root entity, check the request, apply it to the
 * database on the loop (a new password is hashed on a worker first and applied when the
 * hash comes back), encode the database on the loop, put the text into vmkernel's config
 * store as etc/keel/auth.db (hostagent/auth_cfg.h), write the copy DIR/auth.db on a worker,
 * answer Empty. Failure modes: the library's refusals become gRPC statuses with its message
 * (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION for root, its Admin on
 * the root entity and the system roles, or a role still in use); a database that would
 * exceed the store's 64 KiB per file is refused (RESOURCE_EXHAUSTED) and the change undone;
 * so is a put that vmkernel refuses (its reason); a change made while vmkernel does not
 * answer is kept, written to the copy with DIR/auth.pending, answered OK and put into the
 * store when vmkernel answers; a client that goes away while its password is being hashed
 * changes nothing; a change applied but whose copy cannot be written answers INTERNAL
 * saying so.
 *
 * In a cluster the encoded database is pushed to the cluster (hostagent/auth_sync.h) after
 * the store took it, and the copy written only once the cluster took it; when another host
 * changed the users first, the cluster's database replaces this one (and is put into the
 * store) and the call is answered ABORTED ("retry").
 *
 * Writes of the copy happen on workers in any order; each carries a sequence number taken
 * on the loop when its text was encoded, and a writer that finds a newer one already on
 * disk skips its (older) text, so the file always ends with the newest database.
 * DIR/auth.version (the cluster version the text holds) is written after DIR/auth.db.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "hostagent/auth_cfg.h"
#include "hostagent/auth_sync.h"
#include "hostagent/vim.h"
#include "hostagent/vim_users.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "vim.pb-c.h"

static const char *const root_path[] = {HOSTD_AUTH_ROOT_ENTITY};

/* ---- errors ------------------------------------------------------------------------------ */

static enum hd_status status_of(int rv)
{
	switch (rv) {
	case -EINVAL:
	case HOSTD_AUTH_EPASSWORD:
		return HD_INVALID_ARGUMENT;
	case KB_ENOTFOUND:
		return HD_NOT_FOUND;
	case KB_EEXIST:
		return HD_ALREADY_EXISTS;
	case HOSTD_AUTH_EBUILTIN:
	case KB_ESTATE:
		return HD_FAILED_PRECONDITION;
	case KB_ETOOBIG:
	case -ENOMEM:
		return HD_RESOURCE_EXHAUSTED;
	default:
		return HD_INTERNAL;
	}
}

static void refuse(struct hd_call *call, int rv, const struct kb_errmsg *e)
{
	hd_call_error(call, status_of(rv), "%s", e->msg[0] ? e->msg : hostd_auth_strerror(rv));
}

/* ---- a change in flight ---------------------------------------------------------------- */

struct job {
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call;		 /* NULL once the client went away */
	const Keel__Vim__UserChange *rq; /* borrowed with the call */
	char actor[HOSTD_AUTH_NAME_MAX + 1];
	char password[HOSTD_AUTH_PASSWORD_MAX + 1];
	char hash[HOSTD_AUTH_HASH_MAX];
	bool creating;
	int rv;
	struct kb_buf text; /* the encoded database */
	uint64_t generation;
	char version[64]; /* DIR/auth.version's text */
	char version_path[PATH_MAX + 32];
	char pending_path[PATH_MAX + 32];
	bool queued; /* vmkernel did not take the text: DIR/auth.pending says the copy is newer */
	struct kb_errmsg e;
};

static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t saved_generation; /* under save_lock: the newest generation written */
static uint64_t save_seq;	  /* loop thread: the last sequence number given out */

static void job_cancel(struct hd_call *call, void *arg)
{
	struct job *j = arg;

	(void)call;
	j->call = NULL;
}

static void job_free(struct job *j)
{
	OPENSSL_cleanse(j->password, sizeof(j->password));
	OPENSSL_cleanse(j->hash, sizeof(j->hash));
	kb_buf_close(&j->text);
	kb_free(j);
}

static struct job *job_new(struct hd_call *call, const char *actor)
{
	struct job *j = kb_calloc(1, sizeof(*j));

	if (!j) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	j->v = hd_call_server_data(call);
	j->call = call;
	j->work.data = j;
	snprintf(j->actor, sizeof(j->actor), "%s", actor);
	kb_buf_init(&j->text, HOSTD_AUTH_FILE_MAX);
	return j;
}

static void save_work(uv_work_t *w)
{
	struct job *j = w->data;

	pthread_mutex_lock(&save_lock);
	if (j->generation > saved_generation) {
		j->rv =
		    kb_file_write_atomic(j->v->auth_path, j->text.data, j->text.len, 0600, &j->e);
		if (j->rv == KB_ENOTSYNCED)
			j->rv = 0;
		if (j->rv == 0)
			saved_generation = j->generation;
		if (j->rv == 0 && j->version[0]) {
			j->rv = kb_file_write_atomic(j->version_path, j->version,
						     strlen(j->version), 0600, &j->e);
			if (j->rv == KB_ENOTSYNCED)
				j->rv = 0;
		}
		if (j->rv == 0 && j->queued) {
			static const char note[] =
			    "auth.db holds changes the config store has not taken yet\n";

			j->rv = kb_file_write_atomic(j->pending_path, note, sizeof(note) - 1, 0600,
						     &j->e);
			if (j->rv == KB_ENOTSYNCED)
				j->rv = 0;
		} else if (j->rv == 0) {
			unlink(j->pending_path);
		}
	}
	pthread_mutex_unlock(&save_lock);
}

static void save_done(uv_work_t *w, int status)
{
	struct job *j = w->data;

	if (status && !j->rv) {
		j->rv = -ECANCELED;
		kb_errmsg_setf(&j->e, "the write was cancelled");
	}
	if (j->rv)
		kb_log(j->v->log, KB_LOG_ERROR, "%s: %s", j->v->auth_path, j->e.msg);
	else if (j->queued && j->call)
		kb_log(j->v->log, KB_LOG_WARN,
		       "change by %s kept in %s: vmkernel does not answer; it goes into the "
		       "config store when vmkernel answers",
		       j->actor, j->v->auth_path);
	if (j->call) {
		hd_call_on_cancel(j->call, NULL, NULL);
		if (j->rv) {
			hd_call_error(j->call, HD_INTERNAL,
				      "changed, but the copy of the user database could not be "
				      "written: %s",
				      j->e.msg);
		} else {
			Keel__Vim__Empty rp = KEEL__VIM__EMPTY__INIT;

			hd_call_reply(j->call, &rp.base);
		}
	}
	job_free(j);
}

/* Queues the write of j->text (encoded at sequence j->generation); save_done answers. */
static void save_queue(struct job *j)
{
	struct hd_vim *v = j->v;

	hd_auth_sync_version_text(v, j->version, sizeof(j->version));
	snprintf(j->version_path, sizeof(j->version_path), "%.4000s/%s", v->state_dir,
		 HD_AUTH_VERSION_FILE);
	snprintf(j->pending_path, sizeof(j->pending_path), "%.4000s/%s", v->state_dir,
		 HD_AUTH_PENDING_FILE);
	j->queued = j->queued || hd_auth_cfg_pending(v);
	if (j->call)
		hd_call_on_cancel(j->call, job_cancel, j);
	if (uv_queue_work(v->loop, &j->work, save_work, save_done) == 0)
		return;
	/* No worker: write from here rather than lose the change. */
	save_work(&j->work);
	save_done(&j->work, 0);
}

/* The cluster's answer to the push of j's change. */
static void pushed(struct hd_vim *v, void *arg, int rv)
{
	struct job *j = arg;

	if (rv == -ECANCELED) {
		job_free(j);
		return;
	}
	if (rv == -ESTALE) {
		kb_log(v->log, KB_LOG_WARN,
		       "change by %s dropped: the users changed on another host at the same time",
		       j->actor);
		if (j->call) {
			hd_call_on_cancel(j->call, NULL, NULL);
			hd_call_error(j->call, HD_ABORTED,
				      "the users changed on another host at the same time; retry");
		}
		job_free(j);
		return;
	}
	save_queue(j);
}

/* The store's answer to the put of j's change: replicates it in a cluster, then writes the
 * copy and answers. */
static void stored(struct hd_vim *v, void *arg, int rv, const char *msg)
{
	struct job *j = arg;

	if (rv == -ECANCELED) {
		job_free(j);
		return;
	}
	if (rv < 0) {
		kb_log(v->log, KB_LOG_WARN, "change by %s refused: %s", j->actor, msg);
		if (j->call) {
			hd_call_on_cancel(j->call, NULL, NULL);
			kb_errmsg_setf(&j->e, "%s", msg);
			refuse(j->call, rv, &j->e);
		}
		job_free(j);
		return;
	}
	j->queued = rv == HD_AUTH_CFG_QUEUED;
	rv = hd_auth_sync_push(v, j->text.data, j->text.len, pushed, j);
	if (rv == 0)
		return;
	save_queue(j);
}

/* The change is applied: checks its size, puts it into the config store, replicates it in
 * a cluster, writes the copy and answers the call (j->call may be NULL already), then
 * frees j. */
static void save_and_answer(struct job *j)
{
	struct hd_vim *v = j->v;
	int rv;

	j->rv = 0;
	j->e.msg[0] = '\0';
	j->generation = ++save_seq;
	if (hostd_auth_db_encode(v->db, &j->text) == 0) {
		rv = hd_auth_cfg_size_check(j->text.len, &j->e);
		if (rv == 0) {
			if (j->call)
				hd_call_on_cancel(j->call, job_cancel, j);
			rv = hd_auth_cfg_put(v, j->text.data, j->text.len, false, stored, j);
			if (rv == 0)
				return;
			kb_errmsg_setf(&j->e, "out of memory");
		}
		/* Refused before the store saw it: the change is undone. */
		if (hd_auth_cfg_undo(v) != 0)
			kb_log(v->log, KB_LOG_ERROR, "by %s: %s, and it could not be undone",
			       j->actor, j->e.msg);
		else
			kb_log(v->log, KB_LOG_WARN, "change by %s refused and undone: %s", j->actor,
			       j->e.msg);
		if (j->call) {
			hd_call_on_cancel(j->call, NULL, NULL);
			refuse(j->call, rv, &j->e);
		}
		job_free(j);
		return;
	}
	/* No memory for the text: write from here rather than lose the change. */
	pthread_mutex_lock(&save_lock);
	j->rv = hostd_auth_db_save(v->db, v->auth_path, &j->e);
	if (j->rv == KB_ENOTSYNCED)
		j->rv = 0;
	if (j->rv == 0 && j->generation > saved_generation)
		saved_generation = j->generation;
	pthread_mutex_unlock(&save_lock);
	save_done(&j->work, 0);
}

/* The store's answer to a put of hd_vim_users_save: the copy follows. */
static void saved(struct hd_vim *v, void *arg, int rv, const char *msg)
{
	struct job *j = arg;

	(void)v;
	(void)msg;
	if (rv < 0) { /* -ECANCELED too: hostd stops */
		job_free(j);
		return;
	}
	j->queued = rv == HD_AUTH_CFG_QUEUED;
	save_queue(j);
}

void hd_vim_users_save(struct hd_vim *v)
{
	struct job *j = kb_calloc(1, sizeof(*j));

	if (!j) {
		kb_log(v->log, KB_LOG_ERROR, "%s: not written: out of memory", v->auth_path);
		return;
	}
	j->v = v;
	j->work.data = j;
	kb_buf_init(&j->text, HOSTD_AUTH_FILE_MAX);
	j->generation = ++save_seq;
	if (hostd_auth_db_encode(v->db, &j->text) != 0 ||
	    hd_auth_cfg_put(v, j->text.data, j->text.len, true, saved, j) != 0) {
		kb_log(v->log, KB_LOG_ERROR, "%s: not written: out of memory", v->auth_path);
		job_free(j);
	}
}

/* ---- users ------------------------------------------------------------------------------- */

void hd_vim_list_users(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	Keel__Vim__UserList rp = KEEL__VIM__USER_LIST__INIT;
	size_t n = hostd_auth_user_count(v->db);
	Keel__Vim__User *us, **up;

	(void)req;
	if (!hd_vim_authorize(call, root_path, 1, "System.Read"))
		return;
	us = kb_calloc(n ? n : 1, sizeof(*us));
	up = kb_calloc(n ? n : 1, sizeof(*up));
	if (!us || !up) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct hostd_auth_user *u = hostd_auth_user_at(v->db, i);

		keel__vim__user__init(&us[i]);
		us[i].name = (char *)u->name;
		us[i].description = u->description;
		us[i].n_groups = u->ngroups;
		us[i].groups = u->groups;
		up[i] = &us[i];
	}
	rp.n_users = n;
	rp.users = up;
	hd_call_reply(call, &rp.base);
out:
	kb_free(us);
	kb_free(up);
}

/* On the loop, with the password's hash made (or none): adds or updates the user. */
static void user_apply(struct job *j)
{
	struct hd_vim *v = j->v;
	const Keel__Vim__UserChange *rq = j->rq;
	const char *desc = rq->description && rq->description[0] ? rq->description : NULL;
	bool exists = hostd_auth_user_get(v->db, rq->name) != NULL;
	size_t dropped = 0;
	int rv;

	if (j->creating) {
		struct hostd_auth_user_spec spec = {
		    .name = rq->name,
		    .hash = j->hash,
		    .description = desc,
		    .groups = (const char *const *)rq->groups,
		    .ngroups = rq->n_groups,
		};

		rv = hostd_auth_user_add(v->db, &spec, &j->e);
	} else if (!exists) {
		kb_errmsg_setf(&j->e, "user %s: no such user", rq->name);
		rv = KB_ENOTFOUND;
	} else {
		rv = 0;
		if (desc || rq->n_groups)
			rv = hostd_auth_user_update(v->db, rq->name, desc, rq->n_groups > 0,
						    (const char *const *)rq->groups, rq->n_groups,
						    &j->e);
		if (rv == 0 && j->hash[0]) {
			rv = hostd_auth_user_set_hash(v->db, rq->name, j->hash, &j->e);
			if (rv == 0)
				dropped = hostd_auth_session_drop_user(v->sessions, rq->name);
		}
	}
	if (rv) {
		hd_call_on_cancel(j->call, NULL, NULL);
		refuse(j->call, rv, &j->e);
		job_free(j);
		return;
	}
	kb_log(v->log, KB_LOG_INFO, "user %s %s by %s%s (%zu session%s ended)", rq->name,
	       j->creating ? "added" : "changed", j->actor,
	       j->hash[0] && !j->creating ? ", password changed" : "", dropped,
	       dropped == 1 ? "" : "s");
	save_and_answer(j);
}

static void hash_work(uv_work_t *w)
{
	struct job *j = w->data;

	j->rv = hostd_auth_password_hash(j->password, j->hash, &j->e);
	OPENSSL_cleanse(j->password, sizeof(j->password));
}

static void hash_done(uv_work_t *w, int status)
{
	struct job *j = w->data;

	if (!j->call) {
		kb_log(j->v->log, KB_LOG_INFO,
		       "change of user %s by %s dropped: the client went away", j->rq->name,
		       j->actor);
		job_free(j);
		return;
	}
	if (status || j->rv) {
		hd_call_on_cancel(j->call, NULL, NULL);
		if (status)
			hd_call_error(j->call, HD_UNAVAILABLE, "the password could not be hashed");
		else
			refuse(j->call, j->rv, &j->e);
		job_free(j);
		return;
	}
	user_apply(j);
}

void hd_vim_change_user(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__UserChange *rq = (const Keel__Vim__UserChange *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const char *actor = hd_vim_authorize(call, root_path, 1, "Authorization.ModifyUsers");
	bool has_password = rq->password && rq->password[0];
	struct kb_errmsg e = {{0}};
	struct job *j;
	int rv;

	if (!actor)
		return;
	if (!rq->name || !rq->name[0]) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "a user name is required");
		return;
	}
	if (rq->remove) {
		rv = hostd_auth_user_remove(v->db, rq->name, &e);
		if (rv) {
			refuse(call, rv, &e);
			return;
		}
		{
			size_t n = hostd_auth_session_drop_user(v->sessions, rq->name);

			kb_log(v->log, KB_LOG_INFO, "user %s removed by %s (%zu session%s ended)",
			       rq->name, actor, n, n == 1 ? "" : "s");
		}
		j = job_new(call, actor);
		if (j)
			save_and_answer(j);
		return;
	}
	j = job_new(call, actor);
	if (!j)
		return;
	j->rq = rq;
	j->creating = hostd_auth_user_get(v->db, rq->name) == NULL;
	if (j->creating && !hostd_auth_name_valid(rq->name)) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "invalid user name (1 to %d of [a-z0-9_.-], not starting with a "
			      "digit, '.' or '-')",
			      HOSTD_AUTH_NAME_MAX);
		job_free(j);
		return;
	}
	if (j->creating && !has_password) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "user %s: a new user needs a password",
			      rq->name);
		job_free(j);
		return;
	}
	if (!has_password) {
		user_apply(j);
		return;
	}
	rv = hostd_auth_password_check_rules(rq->password, &e);
	if (rv) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "user %s: %s", rq->name, e.msg);
		job_free(j);
		return;
	}
	snprintf(j->password, sizeof(j->password), "%s", rq->password);
	hd_call_on_cancel(call, job_cancel, j);
	if (uv_queue_work(v->loop, &j->work, hash_work, hash_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		job_free(j);
		hd_call_error(call, HD_UNAVAILABLE, "cannot hash the password now");
	}
}

/* ---- roles ------------------------------------------------------------------------------- */

void hd_vim_list_roles(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	Keel__Vim__RoleList rp = KEEL__VIM__ROLE_LIST__INIT;
	size_t n = hostd_auth_role_count(v->db), np = hostd_auth_priv_count();
	Keel__Vim__Role *rs, **rpp;
	char **names;

	(void)req;
	if (!hd_vim_authorize(call, root_path, 1, "System.Read"))
		return;
	rs = kb_calloc(n ? n : 1, sizeof(*rs));
	rpp = kb_calloc(n ? n : 1, sizeof(*rpp));
	names = kb_calloc(n * np + 1, sizeof(*names));
	if (!rs || !rpp || !names) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct hostd_auth_role *r = hostd_auth_role_at(v->db, i);
		char **mine = names + i * np;
		size_t k = 0;

		for (size_t p = 0; p < np && p < 64; p++)
			if (r->privs & ((hostd_auth_privset)1 << p))
				mine[k++] = (char *)hostd_auth_priv_name(p);
		keel__vim__role__init(&rs[i]);
		rs[i].name = (char *)r->name;
		rs[i].n_privileges = k;
		rs[i].privileges = mine;
		rs[i].system = r->system;
		rpp[i] = &rs[i];
	}
	rp.n_roles = n;
	rp.roles = rpp;
	hd_call_reply(call, &rp.base);
out:
	kb_free(rs);
	kb_free(rpp);
	kb_free(names);
}

void hd_vim_change_role(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__RoleChange *rq = (const Keel__Vim__RoleChange *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const char *actor = hd_vim_authorize(call, root_path, 1, "Authorization.ModifyRoles");
	struct kb_errmsg e = {{0}};
	struct job *j;
	int rv;

	if (!actor)
		return;
	if (!rq->role || !rq->role->name || !rq->role->name[0]) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "a role name is required");
		return;
	}
	if (rq->remove)
		rv = hostd_auth_role_remove(v->db, rq->role->name, &e);
	else
		rv = hostd_auth_role_set(v->db, rq->role->name,
					 (const char *const *)rq->role->privileges,
					 rq->role->n_privileges, &e);
	if (rv) {
		refuse(call, rv, &e);
		return;
	}
	kb_log(v->log, KB_LOG_INFO, "role %s %s by %s", rq->role->name,
	       rq->remove ? "removed" : "set", actor);
	j = job_new(call, actor);
	if (j)
		save_and_answer(j);
}

/* ---- permissions ------------------------------------------------------------------------- */

void hd_vim_list_permissions(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	Keel__Vim__PermissionList rp = KEEL__VIM__PERMISSION_LIST__INIT;
	size_t n = hostd_auth_perm_count(v->db);
	Keel__Vim__Permission *ps, **pp;

	(void)req;
	if (!hd_vim_authorize(call, root_path, 1, "System.Read"))
		return;
	ps = kb_calloc(n ? n : 1, sizeof(*ps));
	pp = kb_calloc(n ? n : 1, sizeof(*pp));
	if (!ps || !pp) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct hostd_auth_perm *p = hostd_auth_perm_at(v->db, i);

		keel__vim__permission__init(&ps[i]);
		ps[i].principal = (char *)p->principal;
		ps[i].role = (char *)p->role;
		ps[i].entity = (char *)p->entity;
		ps[i].propagate = p->propagate;
		ps[i].group = p->group;
		pp[i] = &ps[i];
	}
	rp.n_permissions = n;
	rp.permissions = pp;
	hd_call_reply(call, &rp.base);
out:
	kb_free(ps);
	kb_free(pp);
}

static bool fits(const char *s, size_t max)
{
	return s && s[0] && strlen(s) <= max;
}

void hd_vim_change_permission(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__PermissionChange *rq = (const Keel__Vim__PermissionChange *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const char *actor = hd_vim_authorize(call, root_path, 1, "Authorization.ModifyPermissions");
	const Keel__Vim__Permission *p = rq->permission;
	struct hostd_auth_perm perm = {0};
	struct kb_errmsg e = {{0}};
	struct job *j;
	int rv;

	if (!actor)
		return;
	if (!p) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "a permission is required");
		return;
	}
	/* Checked before copying: a cut name would be another, valid, name. */
	if (!fits(p->principal, HOSTD_AUTH_NAME_MAX)) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "permission: a principal of 1 to %d bytes "
			      "is required",
			      HOSTD_AUTH_NAME_MAX);
		return;
	}
	if (!fits(p->entity, HOSTD_AUTH_ENTITY_MAX)) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "permission: an entity id of 1 to %d bytes is required",
			      HOSTD_AUTH_ENTITY_MAX);
		return;
	}
	if (rq->remove) {
		rv = hostd_auth_perm_remove(v->db, p->principal, p->group, p->entity, &e);
	} else if (!fits(p->role, HOSTD_AUTH_ROLE_NAME_MAX)) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "permission: a role name of 1 to %d bytes is required",
			      HOSTD_AUTH_ROLE_NAME_MAX);
		return;
	} else {
		snprintf(perm.principal, sizeof(perm.principal), "%s", p->principal);
		snprintf(perm.role, sizeof(perm.role), "%s", p->role);
		snprintf(perm.entity, sizeof(perm.entity), "%s", p->entity);
		perm.group = p->group;
		perm.propagate = p->propagate;
		rv = hostd_auth_perm_set(v->db, &perm, &e);
	}
	if (rv) {
		refuse(call, rv, &e);
		return;
	}
	kb_log(v->log, KB_LOG_INFO, "permission of %s %s on %s %s by %s",
	       p->group ? "group" : "user", p->principal, p->entity, rq->remove ? "removed" : "set",
	       actor);
	j = job_new(call, actor);
	if (j)
		save_and_answer(j);
}
