/*
 * Users and their passwords.
 *
 * Passwords are hashed with crypt(3) from libxcrypt: yescrypt ("$y$", its default cost)
 * with a salt libcrypt draws from the kernel, or SHA-512 crypt ("$6$") where yescrypt is
 * missing. Verification hashes the candidate with the stored setting and compares the two
 * strings in constant time; an unknown user costs the same hash against a fixed dummy
 * setting, so the time taken does not tell which names exist. The crypt_data scratch
 * space (about 32 KiB) comes from the heap, not the stack, so callers on small thread
 * stacks are safe.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lib/heap.h"
#include "hostagent/auth_int.h"

/* A yescrypt setting (default cost) with a fixed salt: the cost of a real check, spent
 * for unknown users. */
const char hostd__dummy_setting[] = "$y$j9T$TCqb.3vCa.dgO8GAA7sEC/";

int hostd_auth_password_check_rules(const char *password, struct kb_errmsg *err)
{
	size_t n = password ? strlen(password) : 0;

	if (n < HOSTD_AUTH_PASSWORD_MIN || n > HOSTD_AUTH_PASSWORD_MAX) {
		if (err)
			kb_errmsg_setf(err, "a password has %d to %d bytes",
				       HOSTD_AUTH_PASSWORD_MIN, HOSTD_AUTH_PASSWORD_MAX);
		return HOSTD_AUTH_EPASSWORD;
	}
	return 0;
}

/* crypt_rn into out; 0, -ENOMEM or -EIO (libcrypt refused: its failure tokens start
 * with '*'). */
static int do_crypt(const char *password, const char *setting, char out[HOSTD_AUTH_HASH_MAX])
{
	struct crypt_data *cd = kb_calloc(1, sizeof(*cd));
	const char *h;
	int rv = 0;

	if (!cd)
		return -ENOMEM;
	h = crypt_rn(password, setting, cd, sizeof(*cd));
	if (!h || h[0] == '*' || strlen(h) >= HOSTD_AUTH_HASH_MAX)
		rv = -EIO;
	else
		strcpy(out, h);
	explicit_bzero(cd, sizeof(*cd));
	kb_free(cd);
	return rv;
}

int hostd__password_hash_prefix(const char *prefix, const char *password,
				char out[HOSTD_AUTH_HASH_MAX])
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (!crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof(setting)))
		return errno == ENOMEM ? -ENOMEM : errno == EINVAL ? -EINVAL : -EIO;
	return do_crypt(password, setting, out);
}

int hostd_auth_password_hash(const char *password, char out[HOSTD_AUTH_HASH_MAX],
			     struct kb_errmsg *err)
{
	int rv = hostd_auth_password_check_rules(password, err);

	if (rv)
		return rv;
	rv = hostd__password_hash_prefix("$y$", password, out);
	if (rv == -EINVAL)
		rv = hostd__password_hash_prefix("$6$", password, out);
	if (rv && err)
		kb_errmsg_setf(err, "hashing the password: %s", kb_strerror(rv));
	return rv;
}

bool hostd__hash_valid(const char *hash)
{
	size_t n = strlen(hash);

	if (n < 4 || n >= HOSTD_AUTH_HASH_MAX || hash[0] != '$')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = hash[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '/' || c == '$' || c == '=' || c == ','))
			return false;
	}
	return true;
}

bool hostd_auth_password_verify(const char *hash, const char *password)
{
	char got[HOSTD_AUTH_HASH_MAX];
	size_t n = strlen(hash);
	bool ok;

	if (!hostd__hash_valid(hash) || hostd_auth_password_check_rules(password, NULL) != 0)
		return false;
	if (do_crypt(password, hash, got) != 0)
		return false;
	/* The lengths follow from the stored setting alone; only the bytes are secret. */
	ok = strlen(got) == n && CRYPTO_memcmp(got, hash, n) == 0;
	explicit_bzero(got, sizeof(got));
	return ok;
}

/* ---- users ------------------------------------------------------------------------------ */

static int user_find(const struct hostd_auth_db *db, const char *name)
{
	for (size_t i = 0; i < db->nusers; i++)
		if (strcmp(db->users[i].name, name) == 0)
			return (int)i;
	return -1;
}

void hostd__user_free(struct hostd_auth_user *u)
{
	for (size_t i = 0; i < u->ngroups; i++)
		kb_free(u->groups[i]);
	kb_free(u->groups);
	kb_free(u->description);
	u->groups = NULL;
	u->ngroups = 0;
	u->description = NULL;
}

static int check_groups(const char *const *groups, size_t n, struct kb_errmsg *err)
{
	if (n > HOSTD_AUTH_GROUPS_MAX) {
		kb_errmsg_setf(err, "at most %d groups", HOSTD_AUTH_GROUPS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!hostd_auth_name_valid(groups[i])) {
			kb_errmsg_setf(err, "invalid group name");
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(groups[i], groups[j]) == 0) {
				kb_errmsg_setf(err, "group %s named twice", groups[i]);
				return -EINVAL;
			}
	}
	return 0;
}

/* Copies groups into a new array in *out. 0 or -ENOMEM. */
static int dup_groups(const char *const *groups, size_t n, char ***out)
{
	char **g = NULL;
	size_t i;

	if (n) {
		g = kb_calloc(n, sizeof(*g));
		if (!g)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		g[i] = kb_strdup(groups[i]);
		if (!g[i])
			goto err_strings;
	}
	*out = g;
	return 0;

err_strings:
	while (i-- > 0)
		kb_free(g[i]);
	kb_free(g);
	return -ENOMEM;
}

int hostd_auth_user_add(struct hostd_auth_db *db, const struct hostd_auth_user_spec *spec,
			struct kb_errmsg *err)
{
	const char *desc = spec->description ? spec->description : "";
	struct hostd_auth_user u = {0};
	int rv;

	if (!spec->name || !hostd_auth_name_valid(spec->name)) {
		kb_errmsg_setf(err,
			       "invalid user name (1 to %d of [a-z0-9_.-], not starting "
			       "with a digit, '.' or '-')",
			       HOSTD_AUTH_NAME_MAX);
		return -EINVAL;
	}
	if (!hostd__desc_valid(desc)) {
		kb_errmsg_setf(err, "user %s: invalid description", spec->name);
		return -EINVAL;
	}
	rv = check_groups(spec->groups, spec->ngroups, err);
	if (rv)
		goto err;
	if (user_find(db, spec->name) >= 0) {
		kb_errmsg_setf(err, "user %s exists", spec->name);
		return KB_EEXIST;
	}
	if (db->nusers >= HOSTD_AUTH_USERS_MAX) {
		kb_errmsg_setf(err, "user %s: at most %d users", spec->name, HOSTD_AUTH_USERS_MAX);
		return KB_ETOOBIG;
	}
	if (spec->password) {
		rv = hostd_auth_password_hash(spec->password, u.hash, err);
		if (rv)
			goto err;
	} else if (spec->hash && hostd__hash_valid(spec->hash)) {
		strcpy(u.hash, spec->hash);
	} else {
		kb_errmsg_setf(err, "no password or an invalid hash");
		rv = -EINVAL;
		goto err;
	}
	strcpy(u.name, spec->name);
	rv = hostd__grow((void **)&db->users, &db->users_cap, db->nusers, sizeof(*db->users));
	if (rv)
		goto err_nomem;
	u.description = kb_strdup(desc);
	if (!u.description)
		goto err_nomem;
	rv = dup_groups(spec->groups, spec->ngroups, &u.groups);
	if (rv)
		goto err_desc;
	u.ngroups = spec->ngroups;
	db->users[db->nusers++] = u;
	db->generation++;
	return 0;

err_desc:
	kb_free(u.description);
err_nomem:
	rv = -ENOMEM;
	kb_errmsg_setf(err, "out of memory");
err:
	kb_errmsg_wrapf(err, "user %s", spec->name);
	return rv;
}

int hostd_auth_user_set_password(struct hostd_auth_db *db, const char *name, const char *password,
				 struct kb_errmsg *err)
{
	char hash[HOSTD_AUTH_HASH_MAX];
	int i = user_find(db, name);
	int rv;

	if (i < 0) {
		kb_errmsg_setf(err, "user %.32s: no such user", name);
		return KB_ENOTFOUND;
	}
	rv = hostd_auth_password_hash(password, hash, err);
	if (rv) {
		kb_errmsg_wrapf(err, "user %s", name);
		return rv;
	}
	strcpy(db->users[i].hash, hash);
	db->generation++;
	return 0;
}

int hostd_auth_user_set_hash(struct hostd_auth_db *db, const char *name, const char *hash,
			     struct kb_errmsg *err)
{
	int i = user_find(db, name);

	if (i < 0) {
		kb_errmsg_setf(err, "user %.32s: no such user", name);
		return KB_ENOTFOUND;
	}
	if (!hash || !hostd__hash_valid(hash)) {
		kb_errmsg_setf(err, "user %s: not a valid password hash", name);
		return -EINVAL;
	}
	snprintf(db->users[i].hash, sizeof(db->users[i].hash), "%s", hash);
	db->generation++;
	return 0;
}

int hostd_auth_user_update(struct hostd_auth_db *db, const char *name, const char *description,
			   bool set_groups, const char *const *groups, size_t ngroups,
			   struct kb_errmsg *err)
{
	int i = user_find(db, name);
	struct hostd_auth_user *u;
	char *desc = NULL, **g = NULL;
	int rv;

	if (i < 0) {
		kb_errmsg_setf(err, "user %.32s: no such user", name);
		return KB_ENOTFOUND;
	}
	u = &db->users[i];
	if (description && !hostd__desc_valid(description)) {
		kb_errmsg_setf(err, "user %s: invalid description", name);
		return -EINVAL;
	}
	if (set_groups) {
		rv = check_groups(groups, ngroups, err);
		if (rv) {
			kb_errmsg_wrapf(err, "user %s", name);
			return rv;
		}
		if (dup_groups(groups, ngroups, &g) != 0)
			goto err_nomem;
	}
	if (description) {
		desc = kb_strdup(description);
		if (!desc)
			goto err_groups;
	}
	if (set_groups) {
		char *old_desc = u->description;

		u->description = NULL;
		hostd__user_free(u);
		u->description = old_desc;
		u->groups = g;
		u->ngroups = ngroups;
	}
	if (desc) {
		kb_free(u->description);
		u->description = desc;
	}
	db->generation++;
	return 0;

err_groups:
	for (size_t k = 0; set_groups && k < ngroups; k++)
		kb_free(g[k]);
	kb_free(g);
err_nomem:
	kb_errmsg_setf(err, "user %s: out of memory", name);
	return -ENOMEM;
}

int hostd_auth_user_remove(struct hostd_auth_db *db, const char *name, struct kb_errmsg *err)
{
	int i = user_find(db, name);
	size_t w = 0;

	if (i < 0) {
		kb_errmsg_setf(err, "user %.32s: no such user", name);
		return KB_ENOTFOUND;
	}
	if (strcmp(name, HOSTD_AUTH_ROOT_USER) == 0) {
		kb_errmsg_setf(err, "user root cannot be removed");
		return HOSTD_AUTH_EBUILTIN;
	}
	for (size_t p = 0; p < db->nperms; p++) {
		if (!db->perms[p].group && strcmp(db->perms[p].principal, name) == 0)
			continue;
		db->perms[w++] = db->perms[p];
	}
	db->nperms = w;
	hostd__user_free(&db->users[i]);
	memmove(&db->users[i], &db->users[i + 1], (db->nusers - i - 1) * sizeof(db->users[0]));
	db->nusers--;
	db->generation++;
	return 0;
}

const struct hostd_auth_user *hostd_auth_user_get(const struct hostd_auth_db *db, const char *name)
{
	int i = user_find(db, name);

	return i < 0 ? NULL : &db->users[i];
}

size_t hostd_auth_user_count(const struct hostd_auth_db *db)
{
	return db->nusers;
}

const struct hostd_auth_user *hostd_auth_user_at(const struct hostd_auth_db *db, size_t i)
{
	return i < db->nusers ? &db->users[i] : NULL;
}

int hostd_auth_user_verify(const struct hostd_auth_db *db, const char *user, const char *password,
			   enum hostd_auth_fail *why)
{
	const struct hostd_auth_user *u = NULL;
	enum hostd_auth_fail reason = HOSTD_AUTH_FAIL_NONE;

	if (!hostd_auth_name_valid(user) || hostd_auth_password_check_rules(password, NULL))
		reason = HOSTD_AUTH_FAIL_BAD_INPUT;
	else if (!(u = hostd_auth_user_get(db, user)))
		reason = HOSTD_AUTH_FAIL_NO_USER;
	if (!u) {
		/* Spend the time a real check takes. */
		hostd_auth_password_verify(hostd__dummy_setting, "not-a-password");
	} else if (!hostd_auth_password_verify(u->hash, password)) {
		reason = HOSTD_AUTH_FAIL_BAD_PASSWORD;
	}
	if (why)
		*why = reason;
	return reason == HOSTD_AUTH_FAIL_NONE ? 0 : HOSTD_AUTH_EDENIED;
}
