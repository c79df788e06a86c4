/*
 * Tests for hostagent/auth.h, the store: the text format (round trip, a file with mode
 * 0600, malformed inputs refused with their line) and out-of-memory on the constructors and
 * the decoder.
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

static void set_perm(struct hostd_auth_db *db, const char *principal, bool group, const char *role,
		     const char *entity, bool propagate)
{
	struct hostd_auth_perm p = {.group = group, .propagate = propagate};
	struct kb_errmsg err;
	int rv;

	snprintf(p.principal, sizeof(p.principal), "%s", principal);
	snprintf(p.role, sizeof(p.role), "%s", role);
	snprintf(p.entity, sizeof(p.entity), "%s", entity);
	rv = hostd_auth_perm_set(db, &p, &err);
	if (rv)
		fail_msg("permission %s %s %s: %s", principal, role, entity, err.msg);
}

/* The custom role used by several tests. */
static void add_operator(struct hostd_auth_db *db)
{
	static const char *const privs[] = {"VirtualMachine.Interact.PowerOn",
					    "VirtualMachine.Interact.PowerOff"};
	struct kb_errmsg err;

	assert_int_equal(hostd_auth_role_set(db, "Operator", privs, 2, &err), 0);
}

/* ---- persistence ------------------------------------------------------------------------ */

static struct hostd_auth_db *sample_db(void)
{
	static const char *const groups[] = {"ops", "storage-admins"};
	struct hostd_auth_db *db = new_db();
	struct hostd_auth_user_spec spec = {
	    .name = "root", .hash = hash1, .description = "Administrator"};
	struct kb_errmsg err;

	assert_int_equal(hostd_auth_user_add(db, &spec, &err), 0);
	set_perm(db, "root", false, "Admin", "root", true);
	spec.name = "alice";
	spec.description = "Alice 100% \"ops\" team \xc3\xa9";
	spec.groups = groups;
	spec.ngroups = 2;
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), 0);
	spec.name = "dash";
	spec.description = "-";
	spec.ngroups = 0;
	assert_int_equal(hostd_auth_user_add(db, &spec, &err), 0);
	add_operator(db);
	set_perm(db, "alice", false, "Operator", "vm-0f8e4a2c-1b2d", false);
	set_perm(db, "ops", true, "ReadOnly", "cluster-1", true);
	set_perm(db, "dash", false, "NoAccess", "ds-local.1", true);
	return db;
}

static bool contains(const struct kb_buf *b, const char *s)
{
	return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

static void test_persist_round_trip(void **state)
{
	struct hostd_auth_db *db = sample_db(), *db2;
	struct kb_buf a, b;
	struct kb_errmsg err;
	const struct hostd_auth_user *u;
	char path[] = "/tmp/keel-auth-XXXXXX";
	char file[64];
	struct stat st;

	kb_buf_init(&a, 0);
	kb_buf_init(&b, 0);
	assert_int_equal(hostd_auth_db_encode(db, &a), 0);
	/* The hash is there, the password is not. */
	assert_non_null(memmem(a.data, a.len, hash1, strlen(hash1)));
	assert_null(memmem(a.data, a.len, "password1", 9));
	assert_int_equal(memcmp(a.data, "keel-auth 1\nuser root ", 22), 0);
	assert_true(contains(&a, " Alice%20100%25%20\"ops\"%20team%20%C3%A9\n"));
	assert_true(contains(&a, " %2D\n"));
	assert_true(contains(&a, "\nperm group ops ReadOnly cluster-1 propagate\n"));
	assert_true(contains(&a, "\nperm user alice Operator vm-0f8e4a2c-1b2d nopropagate\n"));
	assert_true(contains(&a,
			     "\nrole Operator System.Anonymous,System.View,System.Read,"
			     "VirtualMachine.Interact.PowerOn,VirtualMachine.Interact.PowerOff\n"));
	assert_false(contains(&a, "\nrole Admin"));

	if (hostd_auth_db_decode(a.data, a.len, &db2, &err) != 0)
		fail_msg("decode: %s", err.msg);
	assert_int_equal(hostd_auth_db_encode(db2, &b), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	u = hostd_auth_user_get(db2, "alice");
	assert_non_null(u);
	assert_string_equal(u->description, "Alice 100% \"ops\" team \xc3\xa9");
	assert_string_equal(u->groups[1], "storage-admins");
	assert_string_equal(hostd_auth_user_get(db2, "dash")->description, "-");
	assert_int_equal(hostd_auth_user_verify(db2, "alice", "password1", NULL), 0);
	assert_int_equal(hostd_auth_role_get(db2, "Operator")->privs,
			 hostd_auth_role_get(db, "Operator")->privs);
	assert_false(hostd_auth_perm_at(db2, 1)->propagate);
	hostd_auth_db_destroy(db2);

	/* Through a file, mode 0600. */
	assert_non_null(mkdtemp(path));
	snprintf(file, sizeof(file), "%s/auth.db", path);
	assert_int_equal(hostd_auth_db_load(file, &db2, &err), -ENOENT);
	assert_int_equal(hostd_auth_db_save(db, file, &err), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	if (hostd_auth_db_load(file, &db2, &err) != 0)
		fail_msg("load: %s", err.msg);
	kb_buf_reset(&b);
	assert_int_equal(hostd_auth_db_encode(db2, &b), 0);
	assert_memory_equal(a.data, b.data, a.len);
	hostd_auth_db_destroy(db2);
	unlink(file);
	rmdir(path);

	kb_buf_close(&a);
	kb_buf_close(&b);
	hostd_auth_db_destroy(db);
}

#define H	 "$6$salt$abcdefghijklmnop"
#define ROOT	 "user root " H " - -\n"
#define ROOTPERM "perm user root Admin root propagate\n"

struct bad_case {
	const char *text;
	const char *expect; /* substring of the error message */
};

static void test_persist_malformed(void **state)
{
	static const struct bad_case cases[] = {
	    {"", "empty"},
	    {"keel-auth 2\n" ROOT ROOTPERM, "line 1: unsupported version"},
	    {"keel auth 1\n" ROOT ROOTPERM, "line 1: not a keel-auth file"},
	    {"keel-auth 1\n" ROOT ROOTPERM "usr bob " H " - -\n", "line 4: unknown record"},
	    {"keel-auth 1\n" ROOT "user bob " H " -\n" ROOTPERM, "line 3: user: expected 4"},
	    {"keel-auth 1\n" ROOT "user Bob " H " - -\n" ROOTPERM, "line 3: invalid user name"},
	    {"keel-auth 1\n" ROOT "user bob password1 - -\n" ROOTPERM,
	     "line 3: user bob: malformed hash"},
	    {"keel-auth 1\n" ROOT "user bob " H " ops,,dev -\n" ROOTPERM,
	     "line 3: user bob: malformed groups"},
	    {"keel-auth 1\n" ROOT "user bob " H " - a%2\n" ROOTPERM,
	     "line 3: user bob: malformed description"},
	    {"keel-auth 1\n" ROOT "user bob " H " - a%0Ab\n" ROOTPERM,
	     "line 3: user bob: malformed description"},
	    {"keel-auth 1\n" ROOT "user root " H " - -\n" ROOTPERM, "line 3: user root exists"},
	    {"keel-auth 1\n" ROOT "role Pilot VirtualMachine.Fly\n" ROOTPERM,
	     "line 3: unknown privilege 'VirtualMachine.Fly'"},
	    {"keel-auth 1\n" ROOT "role Admin System.Read\n" ROOTPERM,
	     "line 3: role Admin defined twice"},
	    {"keel-auth 1\n" ROOT "role Op System.Read,\n" ROOTPERM,
	     "line 3: role Op: malformed privilege list"},
	    {"keel-auth 1\n" ROOT ROOTPERM "perm user root Operator host-1 propagate\n",
	     "line 4: permission: no role Operator"},
	    {"keel-auth 1\n" ROOT "perm user bob Admin host-1 propagate\n" ROOTPERM "user bob " H
	     " - -\n",
	     "line 3: permission: no user bob"},
	    {"keel-auth 1\n" ROOT ROOTPERM "perm user root Admin folder-1 propagate\n",
	     "line 4: permission: invalid entity"},
	    {"keel-auth 1\n" ROOT ROOTPERM "perm team x Admin host-1 propagate\n",
	     "line 4: perm: principal kind"},
	    {"keel-auth 1\n" ROOT ROOTPERM "perm group x Admin host-1 yes\n",
	     "line 4: perm: last field"},
	    {"keel-auth 1\n" ROOT ROOTPERM ROOTPERM, "line 4: perm: defined twice"},
	    {"keel-auth 1\n" ROOT ROOTPERM "perm group x  Admin host-1 propagate\n",
	     "line 4: empty field"},
	    {"keel-auth 1\n" ROOT ROOTPERM "\n", "line 4: empty field"},
	    {"keel-auth 1\n" ROOT ROOTPERM "perm group x Admin host-1 propagate \n",
	     "line 4: empty field"},
	    {"keel-auth 1\n" ROOT "perm user root Admin root propagate", "line 3: no newline"},
	    {"keel-auth 1\n" ROOT, "lacks Admin"},
	    {"keel-auth 1\n"
	     "user alice " H " - -\n",
	     "no user root"},
	    {"keel-auth 1\n" ROOT "perm user root Admin root nopropagate\n", "lacks Admin"},
	};
	struct hostd_auth_db *db = (void *)1;
	struct kb_errmsg err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rv;

		err.msg[0] = 0;
		rv = hostd_auth_db_decode(cases[i].text, strlen(cases[i].text), &db, &err);
		if (rv == 0)
			fail_msg("case %zu accepted", i);
		if (rv != KB_EPROTO && rv != KB_EVERSION)
			fail_msg("case %zu: %d (%s)", i, rv, err.msg);
		if (!strstr(err.msg, cases[i].expect))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].expect);
		assert_ptr_equal(db, (void *)1);
	}
	/* A NUL byte inside a line, and the sane version of the same file. */
	{
		static const char nul[] = "keel-auth 1\n" ROOT ROOTPERM "user a\0b " H " - -\n";
		static const char good[] = "keel-auth 1\n" ROOT ROOTPERM;

		assert_int_equal(hostd_auth_db_decode(nul, sizeof(nul) - 1, &db, &err), KB_EPROTO);
		assert_non_null(strstr(err.msg, "line 4: NUL"));
		assert_int_equal(hostd_auth_db_decode(good, sizeof(good) - 1, &db, &err), 0);
		assert_int_equal(hostd_auth_user_count(db), 1);
		hostd_auth_db_destroy(db);
	}
}

/* ---- out of memory ---------------------------------------------------------------------- */

static void test_oom(void **state)
{
	struct hostd_auth_db *db = sample_db(), *db2;
	struct hostd_auth_sessions *s;
	struct hostd_auth_ratelimit *rl;
	struct kb_buf a;
	struct kb_errmsg err;
	int rv, n;

	kb_buf_init(&a, 0);
	assert_int_equal(hostd_auth_db_encode(db, &a), 0);
	/* The decoder fails cleanly at every allocation, then succeeds. */
	for (n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = hostd_auth_db_decode(a.data, a.len, &db2, &err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
	}
	assert_true(n > 3);
	hostd_auth_db_destroy(db2);
	kb_heap_fail_after(0, 1);
	assert_int_equal(hostd_auth_sessions_create(&s, NULL), -ENOMEM);
	kb_heap_fail_after(0, 1);
	assert_int_equal(hostd_auth_ratelimit_create(&rl, NULL), -ENOMEM);
	kb_heap_fail_after(0, 1);
	assert_int_equal(hostd_auth_db_create(&db2), -ENOMEM);
	kb_heap_fail_after(1, 1);
	assert_int_equal(hostd_auth_db_create(&db2), -ENOMEM);
	kb_heap_fail_reset();
	/* A failed hash (no memory for libcrypt's scratch space) changes nothing. */
	kb_heap_fail_after(0, 1);
	assert_int_equal(hostd_auth_user_set_password(db, "alice", "another-pw", &err), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(hostd_auth_user_verify(db, "alice", "password1", NULL), 0);
	kb_buf_close(&a);
	hostd_auth_db_destroy(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_persist_round_trip),
	    cmocka_unit_test(test_persist_malformed),
	    cmocka_unit_test(test_oom),
	};

	return cmocka_run_group_tests(tests, setup_hash, NULL);
}
