/*
 * Tests for hostagent/auth.h, users and passwords: password hashing (yescrypt, the SHA-512
 * fallback) and the rules; users and their names; the bootstrap of root; sessions with an
 * injected clock (expiry, refresh, logout, limits, list, terminate); the login rate
 * limiter (lockout, sliding window, reset on success, bounded memory); Login as a whole.
 * Roles, privileges and permissions are in test_hostd_auth_privs.c, the text format and
 * out-of-memory in test_hostd_auth_store.c.
 */
#include <crypt.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "hostagent/auth.h"
#include "hostagent/auth_int.h"

#define SEC 1000000000ull

/* One real hash made once ("password1"), so most tests need not spend a hash per user. */
static char hash1[HOSTD_AUTH_HASH_MAX];

static int setup_hash(void **state)
{
	struct kb_errmsg err;

	return hostd_auth_password_hash("password1", hash1, &err);
}

static struct hostd_auth_db *new_db(void)
{
	struct hostd_auth_db *db;

	assert_int_equal(hostd_auth_db_create(&db), 0);
	return db;
}

static void add_user(struct hostd_auth_db *db, const char *name, const char *const *groups,
		     size_t ngroups)
{
	struct hostd_auth_user_spec spec = {
	    .name = name, .hash = hash1, .groups = groups, .ngroups = ngroups};
	struct kb_errmsg err;
	int rv = hostd_auth_user_add(db, &spec, &err);

	if (rv)
		fail_msg("adding %s: %s", name, err.msg);
}

/* A path from the root to a VM under cluster-1/host-1. */
static const char *const vm_a[] = {"root", "cluster-1", "host-1", "vm-a"};

/* ---- passwords -------------------------------------------------------------------------- */

static void test_hash_yescrypt(void **state)
{
	char h2[HOSTD_AUTH_HASH_MAX];
	struct kb_errmsg err;

	assert_int_equal(strncmp(hash1, "$y$", 3), 0);
	assert_true(hostd_auth_password_verify(hash1, "password1"));
	assert_false(hostd_auth_password_verify(hash1, "password2"));
	assert_false(hostd_auth_password_verify(hash1, "Password1"));
	/* A fresh salt every time. */
	assert_int_equal(hostd_auth_password_hash("password1", h2, &err), 0);
	assert_string_not_equal(h2, hash1);
	assert_true(hostd_auth_password_verify(h2, "password1"));
	/* A malformed stored hash never verifies. */
	assert_false(hostd_auth_password_verify("", "password1"));
	assert_false(hostd_auth_password_verify("*0", "password1"));
	assert_false(hostd_auth_password_verify("$y$j9T$", "password1"));
}

static void test_hash_sha512(void **state)
{
	char h[HOSTD_AUTH_HASH_MAX];

	assert_int_equal(hostd__password_hash_prefix("$6$", "password1", h), 0);
	assert_int_equal(strncmp(h, "$6$", 3), 0);
	assert_true(hostd_auth_password_verify(h, "password1"));
	assert_false(hostd_auth_password_verify(h, "password12"));
	assert_int_equal(hostd__password_hash_prefix("$nope$", "password1", h), -EINVAL);
}

static void test_dummy_setting_costs_a_hash(void **state)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;

	/* Unknown users are checked against this setting; libcrypt must accept it, or the
	 * check would return at once and tell that the user does not exist. */
	assert_non_null(cd);
	h = crypt_rn("whatever1", hostd__dummy_setting, cd, sizeof(*cd));
	assert_non_null(h);
	assert_int_equal(strncmp(h, "$y$", 3), 0);
	free(cd);
}

static void test_password_rules(void **state)
{
	char h[HOSTD_AUTH_HASH_MAX], longpw[HOSTD_AUTH_PASSWORD_MAX + 2];
	struct kb_errmsg err;

	assert_int_equal(hostd_auth_password_check_rules("1234567", &err), HOSTD_AUTH_EPASSWORD);
	assert_non_null(strstr(err.msg, "8 to 128"));
	assert_int_equal(hostd_auth_password_check_rules("", &err), HOSTD_AUTH_EPASSWORD);
	assert_int_equal(hostd_auth_password_check_rules(NULL, &err), HOSTD_AUTH_EPASSWORD);
	assert_int_equal(hostd_auth_password_check_rules("12345678", &err), 0);
	memset(longpw, 'x', sizeof(longpw));
	longpw[HOSTD_AUTH_PASSWORD_MAX] = 0;
	assert_int_equal(hostd_auth_password_check_rules(longpw, &err), 0);
	longpw[HOSTD_AUTH_PASSWORD_MAX] = 'x';
	longpw[HOSTD_AUTH_PASSWORD_MAX + 1] = 0;
	assert_int_equal(hostd_auth_password_check_rules(longpw, &err), HOSTD_AUTH_EPASSWORD);
	assert_int_equal(hostd_auth_password_hash("short", h, &err), HOSTD_AUTH_EPASSWORD);
	assert_int_equal(hostd_auth_password_hash(longpw, h, &err), HOSTD_AUTH_EPASSWORD);
}


/* ---- users ------------------------------------------------------------------------------ */

static void test_names(void **state)
{
	static const char *const good[] = {
	    "a", "root", "_svc", "bob.smith", "a-b_c.d9", "abcdefghijklmnopqrstuvwxyz012345"};
	static const char *const bad[] = {
	    "", "Root", "9lives", "-x", ".x", "a b", "a/b", "abcdefghijklmnopqrstuvwxyz0123456",
	    "é"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!hostd_auth_name_valid(good[i]))
			fail_msg("'%s' should be valid", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hostd_auth_name_valid(bad[i]))
			fail_msg("'%s' should be invalid", bad[i]);
	assert_true(hostd_auth_entity_valid("root"));
	assert_true(hostd_auth_entity_valid("cluster-7"));
	assert_true(hostd_auth_entity_valid("vm-0f8e4a2c-1b2d-4c5e-9f00-123456789abc"));
	assert_true(hostd_auth_entity_valid("ds-local.1"));
	assert_false(hostd_auth_entity_valid("vm-"));
	assert_false(hostd_auth_entity_valid("folder-1"));
	assert_false(hostd_auth_entity_valid("host-1 2"));
	assert_false(hostd_auth_entity_valid("Root"));
	assert_true(hostd_auth_role_name_valid("VmOperator"));
	assert_false(hostd_auth_role_name_valid("1st"));
	assert_false(hostd_auth_role_name_valid("a role"));
}

static void test_user_add(void **state)
{
	struct hostd_auth_db *db = new_db();
	static const char *const groups[] = {"ops", "dev"};
	static const char *const dup_groups[] = {"ops", "ops"};
	static const char *const bad_groups[] = {"Ops"};
	struct hostd_auth_user_spec spec = {.name = "alice", .hash = hash1};
	const struct hostd_auth_user *u;
	struct kb_errmsg err;

	spec.name = "Alice";
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), -EINVAL);
	spec.name = "alice";
	spec.groups = bad_groups;
	spec.ngroups = 1;
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), -EINVAL);
	spec.groups = dup_groups;
	spec.ngroups = 2;
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), -EINVAL);
	spec.groups = groups;
	spec.description = "line\nbreak";
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), -EINVAL);
	spec.description = NULL;
	spec.hash = "not a hash";
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), -EINVAL);
	spec.hash = hash1;
	assert_int_equal(hostd_auth_user_count(db), 0);
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), 0);
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), KB_EEXIST);
	u = hostd_auth_user_get(db, "alice");
	assert_non_null(u);
	assert_string_equal(u->description, "");
	assert_int_equal(u->ngroups, 2);
	assert_string_equal(u->groups[1], "dev");

	assert_int_equal(hostd_auth_user_update(db, "alice", "Alice A.", true, NULL, 0, &err), 0);
	u = hostd_auth_user_get(db, "alice");
	assert_string_equal(u->description, "Alice A.");
	assert_int_equal(u->ngroups, 0);
	assert_int_equal(hostd_auth_user_update(db, "nobody", "x", false, NULL, 0, &err),
			 KB_ENOTFOUND);
	assert_int_equal(hostd_auth_user_remove(db, "alice", &err), 0);
	assert_null(hostd_auth_user_get(db, "alice"));
	assert_int_equal(hostd_auth_user_remove(db, "alice", &err), KB_ENOTFOUND);
	hostd_auth_db_destroy(db);
}

static void test_user_verify_and_password_change(void **state)
{
	struct hostd_auth_db *db = new_db();
	enum hostd_auth_fail why;
	struct kb_errmsg err;

	add_user(db, "alice", NULL, 0);
	assert_int_equal(hostd_auth_user_verify(db, "alice", "password1", &why), 0);
	assert_int_equal(why, HOSTD_AUTH_FAIL_NONE);
	assert_int_equal(hostd_auth_user_verify(db, "alice", "password2", &why),
			 HOSTD_AUTH_EDENIED);
	assert_int_equal(why, HOSTD_AUTH_FAIL_BAD_PASSWORD);
	assert_int_equal(hostd_auth_user_verify(db, "bob", "password1", &why), HOSTD_AUTH_EDENIED);
	assert_int_equal(why, HOSTD_AUTH_FAIL_NO_USER);
	assert_int_equal(hostd_auth_user_verify(db, "alice", "short", &why), HOSTD_AUTH_EDENIED);
	assert_int_equal(why, HOSTD_AUTH_FAIL_BAD_INPUT);

	assert_int_equal(hostd_auth_user_set_password(db, "alice", "short", &err),
			 HOSTD_AUTH_EPASSWORD);
	assert_int_equal(hostd_auth_user_set_password(db, "alice", "new-password", &err), 0);
	assert_int_equal(hostd_auth_user_verify(db, "alice", "password1", &why),
			 HOSTD_AUTH_EDENIED);
	assert_int_equal(hostd_auth_user_verify(db, "alice", "new-password", &why), 0);

	/* A hash made elsewhere (hostd hashes on a worker) replaces the password at once. */
	{
		char hash[HOSTD_AUTH_HASH_MAX];

		assert_int_equal(hostd_auth_password_hash("third-password", hash, &err), 0);
		assert_int_equal(hostd_auth_user_set_hash(db, "bob", hash, &err), KB_ENOTFOUND);
		assert_int_equal(hostd_auth_user_set_hash(db, "alice", "not-a-hash", &err), -EINVAL);
		assert_int_equal(hostd_auth_user_verify(db, "alice", "new-password", &why), 0);
		assert_int_equal(hostd_auth_user_set_hash(db, "alice", hash, &err), 0);
		assert_int_equal(hostd_auth_user_verify(db, "alice", "third-password", &why), 0);
		assert_int_equal(hostd_auth_user_verify(db, "alice", "new-password", &why),
				 HOSTD_AUTH_EDENIED);
	}
	hostd_auth_db_destroy(db);
}

static void test_bootstrap_root(void **state)
{
	struct hostd_auth_db *db = new_db();
	struct kb_errmsg err;
	uint64_t gen;

	assert_int_equal(hostd_auth_db_bootstrap(db, "short", &err), HOSTD_AUTH_EPASSWORD);
	assert_null(hostd_auth_user_get(db, "root"));
	assert_int_equal(hostd_auth_db_bootstrap(db, "root-password", &err), 0);
	assert_int_equal(strncmp(hostd_auth_user_get(db, "root")->hash, "$y$", 3), 0);
	assert_int_equal(hostd_auth_user_verify(db, "root", "root-password", NULL), 0);
	for (size_t i = 0; i < hostd_auth_priv_count(); i++)
		assert_true(hostd_auth_check(db, "root", vm_a, 4, hostd_auth_priv_name(i)));
	assert_int_equal(hostd_auth_db_bootstrap(db, "root-password", &err), KB_EEXIST);
	gen = hostd_auth_db_generation(db);
	/* root and its Admin on the root entity stay. */
	assert_int_equal(hostd_auth_user_remove(db, "root", &err), HOSTD_AUTH_EBUILTIN);
	assert_int_equal(hostd_auth_perm_remove(db, "root", false, "root", &err),
			 HOSTD_AUTH_EBUILTIN);
	{
		struct hostd_auth_perm p = {
		    .principal = "root", .role = "NoAccess", .entity = "root", .propagate = true};

		assert_int_equal(hostd_auth_perm_set(db, &p, &err), HOSTD_AUTH_EBUILTIN);
	}
	assert_int_equal(hostd_auth_db_generation(db), gen);
	assert_true(hostd_auth_check(db, "root", vm_a, 4, "Authorization.ModifyUsers"));
	hostd_auth_db_destroy(db);
}


/* ---- sessions --------------------------------------------------------------------------- */

static bool all_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void test_session_basic(void **state)
{
	struct hostd_auth_sessions *s;
	char t1[HOSTD_AUTH_TOKEN_LEN + 1], t2[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hostd_auth_session_info info, got;

	assert_int_equal(hostd_auth_sessions_create(&s, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "alice", "10.0.0.1", 5 * SEC, 1234, t1, &info),
			 0);
	assert_int_equal(hostd_auth_session_open(s, "bob", "10.0.0.2", 5 * SEC, 1234, t2, NULL), 0);
	assert_true(all_hex(t1, HOSTD_AUTH_TOKEN_LEN));
	assert_true(all_hex(info.key, HOSTD_AUTH_SESSION_KEY_LEN));
	assert_string_not_equal(t1, t2);
	assert_string_equal(info.user, "alice");
	assert_string_equal(info.source, "10.0.0.1");
	assert_int_equal(info.created_wall_ms, 1234);
	assert_int_equal(info.idle_timeout_ns, 30 * 60 * SEC);

	assert_int_equal(hostd_auth_session_lookup(s, t1, 6 * SEC, &got), 0);
	assert_string_equal(got.user, "alice");
	assert_string_equal(got.key, info.key);
	assert_int_equal(hostd_auth_session_lookup(s, t2, 6 * SEC, &got), 0);
	assert_string_equal(got.user, "bob");
	/* A token one digit off, a short one, an empty one. */
	t1[10] = t1[10] == '0' ? '1' : '0';
	assert_int_equal(hostd_auth_session_lookup(s, t1, 6 * SEC, NULL), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_lookup(s, "abc", 6 * SEC, NULL), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_lookup(s, "", 6 * SEC, NULL), HOSTD_AUTH_ESESSION);

	assert_int_equal(hostd_auth_session_logout(s, t2), 0);
	assert_int_equal(hostd_auth_session_lookup(s, t2, 7 * SEC, NULL), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_logout(s, t2), HOSTD_AUTH_ESESSION);
	hostd_auth_sessions_destroy(s);
}

static void test_session_expiry_and_refresh(void **state)
{
	struct hostd_auth_sessions_config cfg = {.idle_timeout_ns = 10 * SEC};
	struct hostd_auth_sessions *s;
	char t1[HOSTD_AUTH_TOKEN_LEN + 1], t2[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hostd_auth_session_info got;

	assert_int_equal(hostd_auth_sessions_create(&s, &cfg), 0);
	assert_int_equal(hostd_auth_session_open(s, "alice", "", 100 * SEC, 0, t1, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "bob", "", 100 * SEC, 0, t2, NULL), 0);
	/* Each use refreshes: alice stays alive well past 10 s after login. */
	assert_int_equal(hostd_auth_session_lookup(s, t1, 109 * SEC, NULL), 0);
	assert_int_equal(hostd_auth_session_lookup(s, t1, 118 * SEC, &got), 0);
	assert_int_equal(got.last_used_ns, 118 * SEC);
	assert_int_equal(got.created_ns, 100 * SEC);
	/* bob, never used, is gone at 110 s. */
	assert_int_equal(hostd_auth_session_lookup(s, t2, 110 * SEC, NULL), HOSTD_AUTH_ESESSION);
	/* alice: idle from 118 s; still there just before 128 s, gone at 128 s. */
	assert_int_equal(hostd_auth_session_list(s, 128 * SEC - 1, NULL, 0), 1);
	assert_int_equal(hostd_auth_session_lookup(s, t1, 128 * SEC - 1, NULL), 0);
	assert_int_equal(hostd_auth_sessions_expire(s, 138 * SEC - 2), 0);
	assert_int_equal(hostd_auth_sessions_expire(s, 138 * SEC), 1);
	assert_int_equal(hostd_auth_session_lookup(s, t1, 138 * SEC, NULL), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_list(s, 138 * SEC, NULL, 0), 0);
	hostd_auth_sessions_destroy(s);
}

static void test_session_limits(void **state)
{
	struct hostd_auth_sessions_config cfg = {
	    .idle_timeout_ns = 10 * SEC, .max_per_user = 2, .max_total = 3};
	struct hostd_auth_sessions *s;
	char t[HOSTD_AUTH_TOKEN_LEN + 1];

	assert_int_equal(hostd_auth_sessions_create(&s, &cfg), 0);
	assert_int_equal(hostd_auth_session_open(s, "alice", "", 0, 0, t, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "alice", "", 1 * SEC, 0, t, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "alice", "", 2 * SEC, 0, t, NULL),
			 HOSTD_AUTH_ELIMIT);
	assert_int_equal(hostd_auth_session_open(s, "bob", "", 2 * SEC, 0, t, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "carol", "", 2 * SEC, 0, t, NULL),
			 HOSTD_AUTH_ELIMIT);
	/* alice's first session expires at 10 s, which makes room for one. */
	assert_int_equal(hostd_auth_session_open(s, "carol", "", 10 * SEC, 0, t, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "dave", "", 10 * SEC, 0, t, NULL),
			 HOSTD_AUTH_ELIMIT);
	assert_int_equal(hostd_auth_session_drop_user(s, "carol"), 1);
	assert_int_equal(hostd_auth_session_lookup(s, t, 10 * SEC, NULL), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_open(s, "dave", "", 10 * SEC, 0, t, NULL), 0);
	hostd_auth_sessions_destroy(s);
}

static void test_session_list_terminate(void **state)
{
	struct hostd_auth_sessions *s;
	char ta[HOSTD_AUTH_TOKEN_LEN + 1], tb[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hostd_auth_session_info list[4];

	assert_int_equal(hostd_auth_sessions_create(&s, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "alice", "a", 1, 0, ta, NULL), 0);
	assert_int_equal(hostd_auth_session_open(s, "bob", "b", 2, 0, tb, NULL), 0);
	assert_int_equal(hostd_auth_session_list(s, 3, list, 1), 2);
	assert_string_equal(list[0].user, "alice");
	assert_int_equal(hostd_auth_session_list(s, 3, list, 4), 2);
	assert_string_equal(list[1].user, "bob");
	/* Listings show keys, never tokens. */
	assert_null(memmem(list, sizeof(list), ta, HOSTD_AUTH_TOKEN_LEN));
	assert_int_equal(hostd_auth_session_terminate(s, "0000000000000000"), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_terminate(s, list[0].key), 0);
	assert_int_equal(hostd_auth_session_lookup(s, ta, 4, NULL), HOSTD_AUTH_ESESSION);
	assert_int_equal(hostd_auth_session_lookup(s, tb, 4, NULL), 0);
	assert_int_equal(hostd_auth_session_terminate(s, list[0].key), HOSTD_AUTH_ESESSION);
	hostd_auth_sessions_destroy(s);
}


/* ---- rate limiting ---------------------------------------------------------------------- */

static void test_ratelimit_lockout(void **state)
{
	struct hostd_auth_ratelimit *rl;
	uint64_t retry = 0;

	assert_int_equal(hostd_auth_ratelimit_create(&rl, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.1", i * SEC, NULL), 0);
		assert_int_equal(hostd_auth_ratelimit_fail(rl, "10.0.0.1", i * SEC), 0);
	}
	assert_int_equal(hostd_auth_ratelimit_fail(rl, "10.0.0.1", 10 * SEC), 1);
	assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.1", 10 * SEC, &retry),
			 HOSTD_AUTH_ELOCKED);
	assert_int_equal(retry, 60 * SEC);
	assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.1", 69 * SEC, &retry),
			 HOSTD_AUTH_ELOCKED);
	assert_int_equal(retry, 1 * SEC);
	/* Another source is not affected. */
	assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.2", 11 * SEC, NULL), 0);
	/* After the lockout the source starts afresh: four more failures do not lock it. */
	assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.1", 70 * SEC, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(hostd_auth_ratelimit_fail(rl, "10.0.0.1", 70 * SEC), 0);
	assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.1", 70 * SEC, NULL), 0);
	/* A success forgets them. */
	hostd_auth_ratelimit_success(rl, "10.0.0.1");
	assert_int_equal(hostd_auth_ratelimit_fail(rl, "10.0.0.1", 71 * SEC), 0);
	assert_int_equal(hostd_auth_ratelimit_check(rl, "10.0.0.1", 71 * SEC, NULL), 0);
	hostd_auth_ratelimit_destroy(rl);
}

static void test_ratelimit_window_slides(void **state)
{
	struct hostd_auth_ratelimit *rl;

	assert_int_equal(hostd_auth_ratelimit_create(&rl, NULL), 0);
	/* One failure every 15 s: never five within 60 s. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(hostd_auth_ratelimit_fail(rl, "src", (uint64_t)i * 15 * SEC), 0);
	assert_int_equal(hostd_auth_ratelimit_check(rl, "src", 300 * SEC, NULL), 0);
	/* One every 14 s: the fifth lands 56 s after the first. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    hostd_auth_ratelimit_fail(rl, "src2", 1000 * SEC + (uint64_t)i * 14 * SEC), 0);
	assert_int_equal(hostd_auth_ratelimit_fail(rl, "src2", 1056 * SEC), 1);
	assert_int_equal(hostd_auth_ratelimit_check(rl, "src2", 1057 * SEC, NULL),
			 HOSTD_AUTH_ELOCKED);
	hostd_auth_ratelimit_destroy(rl);
}

static void test_ratelimit_bounded(void **state)
{
	struct hostd_auth_ratelimit_config cfg = {.max_failures = 2, .capacity = 4};
	struct hostd_auth_ratelimit *rl;
	char name[32];

	assert_int_equal(hostd_auth_ratelimit_create(&rl, &cfg), 0);
	assert_int_equal(hostd_auth_ratelimit_fail(rl, "s0", 0), 0);
	for (int i = 1; i < 100; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		hostd_auth_ratelimit_fail(rl, name, 0);
		assert_true(hostd_auth_ratelimit_size(rl) <= 4);
	}
	assert_int_equal(hostd_auth_ratelimit_size(rl), 4);
	/* s0 was forgotten: its next failure is its first again. */
	assert_int_equal(hostd_auth_ratelimit_fail(rl, "s0", 0), 0);
	/* s99 was kept: its second failure locks it. */
	assert_int_equal(hostd_auth_ratelimit_fail(rl, "s99", 0), 1);
	hostd_auth_ratelimit_destroy(rl);
}


/* ---- login ------------------------------------------------------------------------------ */

static void test_login(void **state)
{
	struct hostd_auth_db *db = new_db();
	struct hostd_auth_sessions *s;
	struct hostd_auth_ratelimit *rl;
	struct hostd_auth_login_req req = {
	    .user = "alice", .password = "password1", .source = "192.0.2.7", .now_ns = SEC};
	char token[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hostd_auth_session_info info;
	enum hostd_auth_fail why;
	struct kb_errmsg err;

	add_user(db, "alice", NULL, 0);
	assert_int_equal(hostd_auth_sessions_create(&s, NULL), 0);
	assert_int_equal(hostd_auth_ratelimit_create(&rl, NULL), 0);

	assert_int_equal(hostd_auth_login(db, s, rl, &req, token, &info, &why, &err), 0);
	assert_int_equal(why, HOSTD_AUTH_FAIL_NONE);
	assert_int_equal(hostd_auth_session_lookup(s, token, 2 * SEC, NULL), 0);
	assert_string_equal(info.source, "192.0.2.7");

	req.password = "wrong-password";
	for (int i = 0; i < 5; i++) {
		assert_int_equal(hostd_auth_login(db, s, rl, &req, token, NULL, &why, &err),
				 HOSTD_AUTH_EDENIED);
		assert_int_equal(why, HOSTD_AUTH_FAIL_BAD_PASSWORD);
		assert_null(strstr(err.msg, "wrong-password"));
		assert_string_equal(err.msg, "incorrect user name or password");
	}
	/* Locked out: even the right password is refused, with its own code. */
	req.password = "password1";
	assert_int_equal(hostd_auth_login(db, s, rl, &req, token, NULL, &why, &err),
			 HOSTD_AUTH_ELOCKED);
	assert_int_equal(why, HOSTD_AUTH_FAIL_LOCKED_OUT);
	assert_non_null(strstr(err.msg, "try again in 60 s"));
	/* Another address is not. Unknown users count as failures like wrong passwords. */
	req.source = "192.0.2.8";
	req.user = "mallory";
	assert_int_equal(hostd_auth_login(db, s, rl, &req, token, NULL, &why, &err),
			 HOSTD_AUTH_EDENIED);
	assert_int_equal(why, HOSTD_AUTH_FAIL_NO_USER);
	assert_string_equal(err.msg, "incorrect user name or password");
	/* After the lockout, the first address logs in again. */
	req.source = "192.0.2.7";
	req.user = "alice";
	req.now_ns = 62 * SEC;
	assert_int_equal(hostd_auth_login(db, s, rl, &req, token, NULL, &why, &err), 0);
	assert_int_equal(hostd_auth_session_list(s, 62 * SEC, NULL, 0), 2);

	hostd_auth_ratelimit_destroy(rl);
	hostd_auth_sessions_destroy(s);
	hostd_auth_db_destroy(db);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_yescrypt),
	    cmocka_unit_test(test_hash_sha512),
	    cmocka_unit_test(test_dummy_setting_costs_a_hash),
	    cmocka_unit_test(test_password_rules),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_user_add),
	    cmocka_unit_test(test_user_verify_and_password_change),
	    cmocka_unit_test(test_bootstrap_root),
	    cmocka_unit_test(test_session_basic),
	    cmocka_unit_test(test_session_expiry_and_refresh),
	    cmocka_unit_test(test_session_limits),
	    cmocka_unit_test(test_session_list_terminate),
	    cmocka_unit_test(test_ratelimit_lockout),
	    cmocka_unit_test(test_ratelimit_window_slides),
	    cmocka_unit_test(test_ratelimit_bounded),
	    cmocka_unit_test(test_login),
	};

	return cmocka_run_group_tests(tests, setup_hash, NULL);
}
