/*
 * Tests for hd_vim_auth_db_replace (hostagent/vim.h): the database the cluster replicates
 * replaces hostd's live one; the sessions of users it no longer holds, and of users whose
 * password hash changed, end; the others stay open. And the decoder's verdict that guards
 * it: a cluster store that does not decode leaves nothing to swap in.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hostagent/auth.h"
#include "hostagent/vim.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"

#define SEC 1000000000ull

static char hash1[HOSTD_AUTH_HASH_MAX], hash2[HOSTD_AUTH_HASH_MAX];

static int setup_hashes(void **state)
{
	struct kb_errmsg err;

	(void)state;
	if (hostd_auth_password_hash("password1", hash1, &err))
		return -1;
	return hostd_auth_password_hash("password2", hash2, &err);
}

/* A database with root and the users named (each with hash). */
static struct hostd_auth_db *db_with(const char *const *names, const char *const *hashes, size_t n)
{
	struct hostd_auth_db *db;
	struct kb_errmsg err;

	assert_int_equal(hostd_auth_db_create(&db), 0);
	assert_int_equal(hostd_auth_db_bootstrap(db, "root-password", &err), 0);
	for (size_t i = 0; i < n; i++) {
		struct hostd_auth_user_spec spec = {.name = names[i], .hash = hashes[i]};

		assert_int_equal(hostd_auth_user_add(db, &spec, &err), 0);
	}
	return db;
}

static bool open_session(struct hostd_auth_sessions *s, const char *token)
{
	return hostd_auth_session_lookup(s, token, 2 * SEC, NULL) == 0;
}

static void test_replace_drops_gone_and_changed_users(void **state)
{
	static const char *const before[] = {"alice", "bob", "carol"};
	static const char *const after[] = {"alice", "bob", "dave"};
	const char *before_h[] = {hash1, hash1, hash1};
	const char *after_h[] = {hash1, hash2, hash1};
	char ta[HOSTD_AUTH_TOKEN_LEN + 1], tb[HOSTD_AUTH_TOKEN_LEN + 1],
	    tc[HOSTD_AUTH_TOKEN_LEN + 1], tr[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hd_vim v;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.log = &kb_log_default;
	v.db = db_with(before, before_h, 3);
	assert_int_equal(hostd_auth_sessions_create(&v.sessions, NULL), 0);
	assert_int_equal(
	    hostd_auth_session_open(v.sessions, "alice", "198.18.0.9", SEC, 1, ta, NULL), 0);
	assert_int_equal(hostd_auth_session_open(v.sessions, "bob", "198.18.0.9", SEC, 1, tb, NULL),
			 0);
	assert_int_equal(
	    hostd_auth_session_open(v.sessions, "carol", "198.18.0.9", SEC, 1, tc, NULL), 0);
	assert_int_equal(
	    hostd_auth_session_open(v.sessions, "root", "198.18.0.9", SEC, 1, tr, NULL), 0);

	/* The cluster's database: carol removed, bob's password changed, dave added, and
	 * root's hash is another one (bootstrapped with a new salt): root's session ends too. */
	hd_vim_auth_db_replace(&v, db_with(after, after_h, 3));
	assert_non_null(hostd_auth_user_get(v.db, "dave"));
	assert_null(hostd_auth_user_get(v.db, "carol"));
	assert_true(open_session(v.sessions, ta));
	assert_false(open_session(v.sessions, tb));
	assert_false(open_session(v.sessions, tc));
	assert_false(open_session(v.sessions, tr));
	assert_true(hostd_auth_user_verify(v.db, "bob", "password2", NULL) == 0);

	hostd_auth_sessions_destroy(v.sessions);
	hostd_auth_db_destroy(v.db);
}

static void test_replace_with_the_same_store_keeps_sessions(void **state)
{
	static const char *const names[] = {"alice"};
	const char *hashes[] = {hash1};
	char ta[HOSTD_AUTH_TOKEN_LEN + 1], tr[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hostd_auth_db *copy;
	struct kb_errmsg err;
	struct kb_buf text;
	struct hd_vim v;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.log = &kb_log_default;
	v.db = db_with(names, hashes, 1);
	assert_int_equal(hostd_auth_sessions_create(&v.sessions, NULL), 0);
	assert_int_equal(
	    hostd_auth_session_open(v.sessions, "alice", "198.18.0.9", SEC, 1, ta, NULL), 0);
	assert_int_equal(
	    hostd_auth_session_open(v.sessions, "root", "198.18.0.9", SEC, 1, tr, NULL), 0);
	/* The store as it travels: encoded, decoded by the strict decoder. */
	kb_buf_init(&text, 0);
	assert_int_equal(hostd_auth_db_encode(v.db, &text), 0);
	assert_int_equal(hostd_auth_db_decode(text.data, text.len, &copy, &err), 0);
	hd_vim_auth_db_replace(&v, copy);
	assert_true(open_session(v.sessions, ta));
	assert_true(open_session(v.sessions, tr));
	/* A damaged store is refused whole: nothing to swap in. */
	text.data[0] = 'X';
	copy = NULL;
	assert_int_equal(hostd_auth_db_decode(text.data, text.len, &copy, &err), KB_EPROTO);
	assert_null(copy);
	kb_buf_close(&text);
	hostd_auth_sessions_destroy(v.sessions);
	hostd_auth_db_destroy(v.db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_replace_drops_gone_and_changed_users),
	    cmocka_unit_test(test_replace_with_the_same_store_keeps_sessions),
	};

	return cmocka_run_group_tests(tests, setup_hashes, NULL);
}
