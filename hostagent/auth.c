/*
 * The auth database's lifecycle, the name rules, the error table and Login, which ties
 * the rate limiter, the password check and the session table together.
 *
 * Login never tells the client more than "incorrect user name or password" or "too many
 * failed logins"; the precise reason goes to the caller's log through enum hostd_auth_fail.
 */
#include <errno.h>
#include <string.h>

#include "lib/heap.h"
#include "hostagent/auth_int.h"

#define NCODES (HOSTD_AUTH_ELAST - HOSTD_AUTH_EBASE)

static const char *const messages[NCODES] = {
    [HOSTD_AUTH_EDENIED - HOSTD_AUTH_EBASE] = "incorrect user name or password",
    [HOSTD_AUTH_ELOCKED - HOSTD_AUTH_EBASE] = "too many failed logins from this address",
    [HOSTD_AUTH_ESESSION - HOSTD_AUTH_EBASE] = "no such session, or it expired",
    [HOSTD_AUTH_ELIMIT - HOSTD_AUTH_EBASE] = "too many sessions",
    [HOSTD_AUTH_EPASSWORD - HOSTD_AUTH_EBASE] = "password does not meet the rules",
    [HOSTD_AUTH_EBUILTIN - HOSTD_AUTH_EBASE] = "built-in object cannot be changed",
};

_Static_assert(NCODES == 6, "every HOSTD_AUTH_E* code needs a message");

const char *hostd_auth_strerror(int code)
{
	if (code >= HOSTD_AUTH_EBASE && code < HOSTD_AUTH_ELAST)
		return messages[code - HOSTD_AUTH_EBASE];
	return kb_strerror(code);
}

const char *hostd_auth_fail_name(enum hostd_auth_fail why)
{
	switch (why) {
	case HOSTD_AUTH_FAIL_NONE:
		return "none";
	case HOSTD_AUTH_FAIL_NO_USER:
		return "no such user";
	case HOSTD_AUTH_FAIL_BAD_PASSWORD:
		return "wrong password";
	case HOSTD_AUTH_FAIL_BAD_INPUT:
		return "user name or password outside the rules";
	case HOSTD_AUTH_FAIL_LOCKED_OUT:
		return "source locked out after repeated failures";
	case HOSTD_AUTH_FAIL_SESSIONS:
		return "no session could be opened";
	}
	return "unknown";
}

int hostd__grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	p = kb_realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* ---- names ------------------------------------------------------------------------------ */

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_alpha(char c)
{
	return is_lower(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool hostd_auth_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > HOSTD_AUTH_NAME_MAX || !(is_lower(name[0]) || name[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];

		if (!(is_lower(c) || is_digit(c) || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

bool hostd_auth_role_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > HOSTD_AUTH_ROLE_NAME_MAX || !is_alpha(name[0]))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];

		if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

bool hostd_auth_entity_valid(const char *id)
{
	static const char *const kinds[] = {"cluster-", "host-", "vm-", "ds-", "net-"};
	size_t n = strlen(id);

	if (strcmp(id, HOSTD_AUTH_ROOT_ENTITY) == 0)
		return true;
	if (n > HOSTD_AUTH_ENTITY_MAX)
		return false;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t kl = strlen(kinds[k]);

		if (strncmp(id, kinds[k], kl) != 0)
			continue;
		if (n == kl)
			return false;
		for (size_t i = kl; i < n; i++) {
			char c = id[i];

			if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == ':' ||
			      c == '-'))
				return false;
		}
		return true;
	}
	return false;
}

bool hostd__desc_valid(const char *s)
{
	size_t n = strlen(s);

	if (n > HOSTD_AUTH_DESC_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* ---- the database ----------------------------------------------------------------------- */

static const char *const readonly_names[] = {"System.Anonymous", "System.View", "System.Read"};

int hostd_auth_db_create(struct hostd_auth_db **out)
{
	struct hostd_auth_db *db = kb_calloc(1, sizeof(*db));

	if (!db)
		return -ENOMEM;
	db->roles_cap = 8;
	db->roles = kb_calloc(db->roles_cap, sizeof(*db->roles));
	if (!db->roles)
		goto err_db;
	strcpy(db->roles[0].name, "Admin");
	db->roles[0].privs = hostd__privs_all();
	strcpy(db->roles[1].name, "ReadOnly");
	if (hostd__privs_parse(readonly_names, 3, &db->roles[1].privs, NULL) != 0)
		goto err_roles; /* cannot happen: the names are in the table */
	strcpy(db->roles[2].name, "NoAccess");
	db->roles[2].privs = 0;
	for (int i = 0; i < 3; i++)
		db->roles[i].system = true;
	db->nroles = 3;
	*out = db;
	return 0;

err_roles:
	kb_free(db->roles);
err_db:
	kb_free(db);
	return -ENOMEM;
}

void hostd_auth_db_destroy(struct hostd_auth_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nusers; i++)
		hostd__user_free(&db->users[i]);
	kb_free(db->users);
	kb_free(db->roles);
	kb_free(db->perms);
	kb_free(db);
}

uint64_t hostd_auth_db_generation(const struct hostd_auth_db *db)
{
	return db->generation;
}

int hostd_auth_db_bootstrap(struct hostd_auth_db *db, const char *root_password,
			    struct kb_errmsg *err)
{
	struct hostd_auth_user_spec spec = {
	    .name = HOSTD_AUTH_ROOT_USER,
	    .password = root_password,
	    .description = "Administrator",
	};
	struct hostd_auth_perm p = {
	    .principal = HOSTD_AUTH_ROOT_USER,
	    .role = "Admin",
	    .entity = HOSTD_AUTH_ROOT_ENTITY,
	    .propagate = true,
	};
	int rv;

	rv = hostd_auth_user_add(db, &spec, err);
	if (rv)
		goto err;
	rv = hostd_auth_perm_set(db, &p, err);
	if (rv)
		goto err_user;
	return 0;

err_user:
	/* Not through hostd_auth_user_remove, which refuses root. */
	hostd__user_free(&db->users[--db->nusers]);
err:
	kb_errmsg_wrapf(err, "creating the root user");
	return rv;
}

/* ---- login ------------------------------------------------------------------------------ */

int hostd_auth_login(const struct hostd_auth_db *db, struct hostd_auth_sessions *s,
		     struct hostd_auth_ratelimit *rl, const struct hostd_auth_login_req *req,
		     char token[HOSTD_AUTH_TOKEN_LEN + 1], struct hostd_auth_session_info *info,
		     enum hostd_auth_fail *why, struct kb_errmsg *err)
{
	const char *source = req->source ? req->source : "";
	enum hostd_auth_fail reason;
	uint64_t retry = 0;
	int rv;

	if (rl && hostd_auth_ratelimit_check(rl, source, req->now_ns, &retry) != 0) {
		reason = HOSTD_AUTH_FAIL_LOCKED_OUT;
		kb_errmsg_setf(err, "%s: try again in %llu s",
			       hostd_auth_strerror(HOSTD_AUTH_ELOCKED),
			       (unsigned long long)((retry + 999999999) / 1000000000));
		rv = HOSTD_AUTH_ELOCKED;
		goto fail;
	}
	rv = hostd_auth_user_verify(db, req->user ? req->user : "",
				    req->password ? req->password : "", &reason);
	if (rv) {
		if (rl)
			hostd_auth_ratelimit_fail(rl, source, req->now_ns);
		kb_errmsg_setf(err, "%s", hostd_auth_strerror(rv));
		goto fail;
	}
	rv = hostd_auth_session_open(s, req->user, source, req->now_ns, req->wall_ms, token, info);
	if (rv) {
		reason = HOSTD_AUTH_FAIL_SESSIONS;
		kb_errmsg_setf(err, "opening a session: %s", hostd_auth_strerror(rv));
		goto fail;
	}
	if (rl)
		hostd_auth_ratelimit_success(rl, source);
	if (why)
		*why = HOSTD_AUTH_FAIL_NONE;
	return 0;

fail:
	if (why)
		*why = reason;
	return rv;
}
