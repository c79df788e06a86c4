/*
 * Tests for hostagent/auth_cfg.h, the user database in the config store: where the
 * database comes from at start (every row of the table in docs/hostd-auth.md), the 64 KiB
 * limit, and the store's own check of etc/keel/auth.db (kernel/cfg) against hostd's
 * encoder: what hostd writes passes, what would lock root out does not.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hostagent/auth.h"
#include "hostagent/auth_cfg.h"
#include "kernel/cfg/cfg.h"
#include "lib/buf.h"
#include "lib/err.h"

static char hash1[HOSTD_AUTH_HASH_MAX];
/* Two valid databases (root only; root and alice) and a damaged one. */
static struct kb_buf root_only, with_alice;
static const char damaged[] = "keel-auth 1\nuser root not-a-hash - -\n"
			      "perm user root Admin root propagate\n";

static void encode(struct hostd_auth_db *db, struct kb_buf *out)
{
	kb_buf_init(out, 0);
	assert_int_equal(hostd_auth_db_encode(db, out), 0);
}

static int setup(void **state)
{
	struct hostd_auth_user_spec alice = {.name = "alice", .description = "from ops"};
	struct hostd_auth_db *db;
	struct kb_errmsg err;

	(void)state;
	if (hostd_auth_password_hash("password1", hash1, &err) != 0)
		return -1;
	if (hostd_auth_db_create(&db) != 0 || hostd_auth_db_bootstrap(db, "password1", &err) != 0)
		return -1;
	encode(db, &root_only);
	alice.hash = hash1;
	if (hostd_auth_user_add(db, &alice, &err) != 0)
		return -1;
	encode(db, &with_alice);
	hostd_auth_db_destroy(db);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kb_buf_close(&root_only);
	kb_buf_close(&with_alice);
	return 0;
}

/* ---- hd_auth_cfg_choose --------------------------------------------------------------- */

enum { NONE, ROOT, ALICE, DAMAGED };
#define UNREACHABLE (-EHOSTUNREACH)

static void set_text(int which, const void **p, size_t *len)
{
	*p = which == ROOT    ? (const void *)root_only.data
	     : which == ALICE ? (const void *)with_alice.data
			      : (const void *)damaged;
	*len = which == ROOT ? root_only.len : which == ALICE ? with_alice.len : strlen(damaged);
}

/* Runs choose: store (NONE: not found, or UNREACHABLE), copy (NONE: missing), pending;
 * checks the outcome: want_rv, and when 0 want_from and whether alice is in the db (-1: no
 * database, bootstrap). */
static void choose(int store, int copy, bool pending, int want_rv, enum hd_auth_cfg_from want_from,
		   int want_alice)
{
	struct hd_auth_cfg_found in = {0};
	struct hostd_auth_db *db = (void *)1;
	enum hd_auth_cfg_from from = HD_AUTH_FROM_NEW_STORE_BAD + 1;
	char store_error[KB_ERRMSG_SIZE];
	struct kb_errmsg err = {{0}};
	int rv;

	if (store == UNREACHABLE)
		in.store_rv = UNREACHABLE;
	else if (store == NONE)
		in.store_rv = KB_ENOTFOUND;
	else
		set_text(store, &in.store, &in.store_len);
	if (copy == NONE)
		in.copy_rv = -ENOENT;
	else if (copy == -EACCES)
		in.copy_rv = -EACCES;
	else
		set_text(copy, &in.copy, &in.copy_len);
	in.pending = pending;
	rv = hd_auth_cfg_choose(&in, &db, &from, store_error, &err);
	assert_int_equal(rv, want_rv);
	if (rv) {
		assert_null(db);
		assert_true(err.msg[0] != '\0');
		return;
	}
	assert_int_equal(from, want_from);
	if (want_alice < 0) {
		assert_null(db);
	} else {
		assert_non_null(db);
		assert_non_null(hostd_auth_user_get(db, "root"));
		assert_int_equal(hostd_auth_user_get(db, "alice") != NULL, want_alice);
		hostd_auth_db_destroy(db);
	}
	if (store == DAMAGED)
		assert_non_null(strstr(store_error, "line 2"));
	else
		assert_string_equal(store_error, "");
}

static void test_choose_store_answers(void **state)
{
	(void)state;
	/* the store's wins over a different copy */
	choose(ALICE, ROOT, false, 0, HD_AUTH_FROM_STORE, 1);
	choose(ROOT, ALICE, false, 0, HD_AUTH_FROM_STORE, 0);
	choose(ALICE, NONE, false, 0, HD_AUTH_FROM_STORE, 1);
	/* an unreadable copy does not matter when the store has a good one */
	choose(ALICE, -EACCES, false, 0, HD_AUTH_FROM_STORE, 1);
	/* changes made while vmkernel was away: the copy is newer */
	choose(ROOT, ALICE, true, 0, HD_AUTH_FROM_COPY_PENDING, 1);
	choose(NONE, ALICE, true, 0, HD_AUTH_FROM_COPY_PENDING, 1);
	/* a host from before the store */
	choose(NONE, ALICE, false, 0, HD_AUTH_FROM_COPY_TAKEN_IN, 1);
	/* first start */
	choose(NONE, NONE, false, 0, HD_AUTH_FROM_NEW, -1);
	choose(NONE, NONE, true, 0, HD_AUTH_FROM_NEW, -1);
}

static void test_choose_damaged(void **state)
{
	(void)state;
	/* the store's does not decode: the last good copy, else a new root */
	choose(DAMAGED, ALICE, false, 0, HD_AUTH_FROM_COPY_STORE_BAD, 1);
	choose(DAMAGED, NONE, false, 0, HD_AUTH_FROM_NEW_STORE_BAD, -1);
	choose(DAMAGED, DAMAGED, false, 0, HD_AUTH_FROM_NEW_STORE_BAD, -1);
	/* the only database there is does not decode, or cannot be read: hostd does not start */
	choose(NONE, DAMAGED, false, KB_EPROTO, 0, 0);
	choose(UNREACHABLE, DAMAGED, false, KB_EPROTO, 0, 0);
	choose(NONE, -EACCES, false, -EACCES, 0, 0);
	choose(UNREACHABLE, -EACCES, false, -EACCES, 0, 0);
}

static void test_choose_unreachable(void **state)
{
	(void)state;
	choose(UNREACHABLE, ALICE, false, 0, HD_AUTH_FROM_COPY, 1);
	/* pending or not, vmkernel must answer before the copy goes anywhere */
	choose(UNREACHABLE, ALICE, true, 0, HD_AUTH_FROM_COPY, 1);
	choose(UNREACHABLE, NONE, false, 0, HD_AUTH_FROM_NEW, -1);
}

static void test_needs_put(void **state)
{
	(void)state;
	assert_false(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_STORE));
	assert_false(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_COPY));
	assert_true(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_COPY_PENDING));
	assert_true(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_COPY_TAKEN_IN));
	assert_true(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_COPY_STORE_BAD));
	assert_true(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_NEW));
	assert_true(hd_auth_cfg_from_needs_put(HD_AUTH_FROM_NEW_STORE_BAD));
	for (int f = HD_AUTH_FROM_STORE; f <= HD_AUTH_FROM_NEW_STORE_BAD; f++)
		assert_string_not_equal(hd_auth_cfg_from_name(f), "?");
}

/* ---- the 64 KiB limit ------------------------------------------------------------------- */

static void test_size(void **state)
{
	struct kb_errmsg err = {{0}};

	(void)state;
	assert_int_equal(HD_AUTH_CFG_MAX, VMK_CFG_FILE_MAX);
	assert_int_equal(hd_auth_cfg_size_check(0, &err), 0);
	assert_int_equal(hd_auth_cfg_size_check(VMK_CFG_FILE_MAX, &err), 0);
	assert_string_equal(err.msg, "");
	assert_int_equal(hd_auth_cfg_size_check(VMK_CFG_FILE_MAX + 1, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "the user database would exceed 64 KiB"));
}

/* ---- the store's check of etc/keel/auth.db ------------------------------------------------ */

static int store_check(const void *p, size_t len)
{
	struct kb_errmsg err = {{0}};
	int rv = vmk_cfg_contents_check(VMK_CFG_AUTH, p, len, &err);

	if (rv)
		assert_non_null(strstr(err.msg, VMK_CFG_AUTH));
	return rv;
}

static void test_store_check(void **state)
{
	static const char *const bad[] = {
	    "",
	    "garbage\n",
	    "keel-auth 2\nuser root x - -\nperm user root Admin root propagate\n",
	    /* no final newline */
	    "keel-auth 1\nuser root x - -\nperm user root Admin root propagate",
	    /* a control byte, a non-ASCII byte (a NUL below) */
	    "keel-auth 1\nuser root x - \x01\nperm user root Admin root propagate\n",
	    "keel-auth 1\nuser root x - \xc3\xa9\nperm user root Admin root propagate\n",
	    /* root gone, or its Admin gone */
	    "keel-auth 1\nuser alice x - -\nperm user root Admin root propagate\n",
	    "keel-auth 1\nuser root x - -\nperm user root ReadOnly root propagate\n",
	    "keel-auth 1\nuser root x - -\nperm user root Admin root nopropagate\n",
	    "keel-auth 1\nuser root x - -\n",
	};

	(void)state;
	/* what hostd writes */
	assert_int_equal(store_check(root_only.data, root_only.len), 0);
	assert_int_equal(store_check(with_alice.data, with_alice.len), 0);
	/* structurally sound, strictly refused by hostd (which then keeps its copy) */
	assert_int_equal(store_check(damaged, strlen(damaged)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (store_check(bad[i], strlen(bad[i])) != KB_ECONFIG)
			fail_msg("case %zu was accepted", i);
	}
	{
		static const char nul[] = "keel-auth 1\nuser root x - -\n"
					  "perm user root Admin root propagate\n\0\n";

		assert_int_equal(store_check(nul, sizeof(nul) - 1), KB_ECONFIG);
	}
	/* other files are not checked by it */
	assert_int_equal(vmk_cfg_contents_check("etc/keel/site.conf", "garbage", 7, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_choose_store_answers),
	    cmocka_unit_test(test_choose_damaged),
	    cmocka_unit_test(test_choose_unreachable),
	    cmocka_unit_test(test_needs_put),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_store_check),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
