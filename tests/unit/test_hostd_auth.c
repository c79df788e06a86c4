/*
 * Tests for hostagent/auth.h: password hashing (yescrypt, the SHA-512 fallback) and the
 * rules; users and their names; the privilege table, system and custom roles; permission
 * resolution (inheritance, propagate false, user over group, group union, NoAccess, most
 * specific wins); sessions with an injected clock (expiry, refresh, logout, limits, list,
 * terminate); the login rate limiter (lockout, sliding window, reset on success, bounded
 * memory); Login as a whole; the text format (round trip, a file with mode 0600, malformed
 * inputs refused with their line) and out-of-memory on the constructors and the decoder.
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

/* A path from the root to a VM under cluster-1/host-1, and a sibling VM. */
static const char *const vm_a[] = {"root", "cluster-1", "host-1", "vm-a"};
static const char *const vm_b[] = {"root", "cluster-1", "host-1", "vm-b"};
static const char *const host1[] = {"root", "cluster-1", "host-1"};
static const char *const cluster1[] = {"root", "cluster-1"};

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

/* ---- privileges and roles --------------------------------------------------------------- */

static void test_privilege_table(void **state)
{
	size_t n = hostd_auth_priv_count();

	assert_int_equal(n, 24);
	for (size_t i = 0; i < n; i++) {
		const char *name = hostd_auth_priv_name(i);

		assert_int_equal(hostd_auth_priv_lookup(name), (int)i);
		assert_non_null(strchr(name, '.'));
	}
	assert_null(hostd_auth_priv_name(n));
	assert_int_equal(hostd_auth_priv_lookup("VirtualMachine.Interact.PowerOn") >= 0, 1);
	assert_int_equal(hostd_auth_priv_lookup("Host.Config.Maintenance") >= 0, 1);
	assert_int_equal(hostd_auth_priv_lookup("VirtualMachine.Fly"), -1);
	assert_int_equal(hostd_auth_priv_lookup("system.read"), -1);
}

static void test_system_roles(void **state)
{
	struct hostd_auth_db *db = new_db();
	const struct hostd_auth_role *admin = hostd_auth_role_get(db, "Admin");
	const struct hostd_auth_role *ro = hostd_auth_role_get(db, "ReadOnly");
	const struct hostd_auth_role *na = hostd_auth_role_get(db, "NoAccess");
	static const char *const privs[] = {"System.Read"};
	struct kb_errmsg err;

	assert_non_null(admin);
	assert_non_null(ro);
	assert_non_null(na);
	assert_true(admin->system && ro->system && na->system);
	assert_int_equal(__builtin_popcountll(admin->privs), hostd_auth_priv_count());
	assert_int_equal(ro->privs, (1u << hostd_auth_priv_lookup("System.Anonymous")) |
					(1u << hostd_auth_priv_lookup("System.View")) |
					(1u << hostd_auth_priv_lookup("System.Read")));
	assert_int_equal(na->privs, 0);
	assert_int_equal(hostd_auth_role_set(db, "Admin", privs, 1, &err), HOSTD_AUTH_EBUILTIN);
	assert_int_equal(hostd_auth_role_set(db, "NoAccess", privs, 1, &err), HOSTD_AUTH_EBUILTIN);
	assert_int_equal(hostd_auth_role_remove(db, "ReadOnly", &err), HOSTD_AUTH_EBUILTIN);
	assert_int_equal(hostd_auth_role_count(db), 3);
	hostd_auth_db_destroy(db);
}

static void test_custom_roles(void **state)
{
	static const char *const unknown[] = {"VirtualMachine.Interact.PowerOn",
					      "VirtualMachine.Fly"};
	static const char *const poweron[] = {"VirtualMachine.Interact.PowerOn"};
	struct hostd_auth_db *db = new_db();
	const struct hostd_auth_role *r;
	struct kb_errmsg err;

	assert_int_equal(hostd_auth_role_set(db, "Pilot", unknown, 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "VirtualMachine.Fly"));
	assert_null(hostd_auth_role_get(db, "Pilot"));
	assert_int_equal(hostd_auth_role_set(db, "bad role", poweron, 1, &err), -EINVAL);

	add_operator(db);
	r = hostd_auth_role_get(db, "Operator");
	assert_non_null(r);
	assert_false(r->system);
	/* The two named privileges and the three every role holds. */
	assert_int_equal(__builtin_popcountll(r->privs), 5);
	assert_true(r->privs & (1ull << hostd_auth_priv_lookup("System.Read")));
	assert_true(r->privs &
		    (1ull << hostd_auth_priv_lookup("VirtualMachine.Interact.PowerOff")));
	/* Replacing narrows it. */
	assert_int_equal(hostd_auth_role_set(db, "Operator", poweron, 1, &err), 0);
	r = hostd_auth_role_get(db, "Operator");
	assert_int_equal(__builtin_popcountll(r->privs), 4);
	assert_int_equal(hostd_auth_role_count(db), 4);

	/* A role in use stays. */
	add_user(db, "alice", NULL, 0);
	set_perm(db, "alice", false, "Operator", "host-1", true);
	assert_true(hostd_auth_check(db, "alice", host1, 3, "VirtualMachine.Interact.PowerOn"));
	assert_false(hostd_auth_check(db, "alice", host1, 3, "VirtualMachine.Interact.PowerOff"));
	assert_int_equal(hostd_auth_role_remove(db, "Operator", &err), KB_ESTATE);
	assert_int_equal(hostd_auth_perm_remove(db, "alice", false, "host-1", &err), 0);
	assert_int_equal(hostd_auth_role_remove(db, "Operator", &err), 0);
	assert_int_equal(hostd_auth_role_remove(db, "Operator", &err), KB_ENOTFOUND);
	assert_int_equal(hostd_auth_role_count(db), 3);
	hostd_auth_db_destroy(db);
}

/* ---- permissions ------------------------------------------------------------------------ */

static void test_perm_inheritance(void **state)
{
	struct hostd_auth_db *db = new_db();

	add_user(db, "alice", NULL, 0);
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "System.Read"));
	set_perm(db, "alice", false, "ReadOnly", "root", true);
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "System.Read"));
	assert_true(hostd_auth_check(db, "alice", cluster1, 2, "System.View"));
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	/* Admin on the cluster reaches down to its VMs. */
	set_perm(db, "alice", false, "Admin", "cluster-1", true);
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	assert_true(hostd_auth_check(db, "alice", cluster1, 2, "Host.Inventory.ManageCluster"));
	/* Unknown privileges, unknown users and paths that do not start at root get nothing. */
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Fly"));
	assert_false(hostd_auth_check(db, "bob", vm_a, 4, "System.Read"));
	assert_false(hostd_auth_check(db, "alice", vm_a + 1, 3, "System.Read"));
	assert_false(hostd_auth_check(db, "alice", vm_a, 0, "System.Read"));
	hostd_auth_db_destroy(db);
}

static void test_perm_propagate_false(void **state)
{
	struct hostd_auth_db *db = new_db();

	add_user(db, "alice", NULL, 0);
	add_operator(db);
	set_perm(db, "alice", false, "ReadOnly", "root", true);
	set_perm(db, "alice", false, "Operator", "cluster-1", false);
	/* On the cluster itself... */
	assert_true(hostd_auth_check(db, "alice", cluster1, 2, "VirtualMachine.Interact.PowerOn"));
	/* ...but not below it, where root's ReadOnly applies. */
	assert_false(hostd_auth_check(db, "alice", host1, 3, "VirtualMachine.Interact.PowerOn"));
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "System.Read"));
	/* Without anything that propagates, nothing at all below. */
	assert_int_equal(hostd_auth_perm_remove(db, "alice", false, "root", NULL), 0);
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "System.Read"));
	hostd_auth_db_destroy(db);
}

static void test_perm_user_over_group(void **state)
{
	static const char *const ops[] = {"ops"};
	struct hostd_auth_db *db = new_db();

	add_user(db, "alice", ops, 1);
	add_user(db, "bob", ops, 1);
	set_perm(db, "ops", true, "Admin", "host-1", true);
	set_perm(db, "alice", false, "ReadOnly", "host-1", true);
	/* alice's own permission beats her group's on the same entity; bob has only the
	 * group's. */
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "System.Read"));
	assert_true(hostd_auth_check(db, "bob", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	/* The order the permissions were set in does not matter. */
	assert_int_equal(hostd_auth_perm_remove(db, "ops", true, "host-1", NULL), 0);
	set_perm(db, "ops", true, "Admin", "host-1", true);
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	hostd_auth_db_destroy(db);
}

static void test_perm_groups_unite(void **state)
{
	static const char *const both[] = {"ops", "storage"};
	static const char *const ds_priv[] = {"Datastore.Browse"};
	struct hostd_auth_db *db = new_db();
	struct kb_errmsg err;

	add_user(db, "alice", both, 2);
	add_operator(db);
	assert_int_equal(hostd_auth_role_set(db, "Browser", ds_priv, 1, &err), 0);
	set_perm(db, "ops", true, "Operator", "host-1", true);
	set_perm(db, "storage", true, "Browser", "host-1", true);
	set_perm(db, "nobody-has-this", true, "Admin", "host-1", true);
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "Datastore.Browse"));
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Inventory.Delete"));
	hostd_auth_db_destroy(db);
}

static void test_perm_noaccess_overrides(void **state)
{
	static const char *const ops[] = {"ops"};
	struct hostd_auth_db *db = new_db();

	add_user(db, "alice", ops, 1);
	set_perm(db, "alice", false, "Admin", "root", true);
	set_perm(db, "alice", false, "NoAccess", "vm-a", false);
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "System.Read"));
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	assert_int_equal(hostd_auth_privileges(db, "alice", vm_a, 4), 0);
	assert_true(hostd_auth_check(db, "alice", vm_b, 4, "VirtualMachine.Interact.PowerOn"));
	/* A group's NoAccess on a host also beats the user's Admin on the root. */
	set_perm(db, "ops", true, "NoAccess", "host-1", true);
	assert_false(hostd_auth_check(db, "alice", vm_b, 4, "System.Read"));
	assert_true(hostd_auth_check(db, "alice", cluster1, 2, "System.Read"));
	hostd_auth_db_destroy(db);
}

static void test_perm_most_specific_wins(void **state)
{
	static const char *const ops[] = {"ops"};
	struct hostd_auth_db *db = new_db();

	add_user(db, "alice", ops, 1);
	add_operator(db);
	set_perm(db, "alice", false, "ReadOnly", "root", true);
	set_perm(db, "ops", true, "Admin", "cluster-1", true);
	set_perm(db, "alice", false, "Operator", "vm-a", true);
	/* vm-a: her own Operator there, not the group's Admin above. */
	assert_true(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Interact.PowerOn"));
	assert_false(hostd_auth_check(db, "alice", vm_a, 4, "VirtualMachine.Inventory.Delete"));
	/* vm-b: the group's Admin on the cluster, more specific than her ReadOnly on root. */
	assert_true(hostd_auth_check(db, "alice", vm_b, 4, "VirtualMachine.Inventory.Delete"));
	/* Somewhere else: root's ReadOnly. */
	{
		static const char *const other[] = {"root", "cluster-2", "host-9"};

		assert_true(hostd_auth_check(db, "alice", other, 3, "System.Read"));
		assert_false(hostd_auth_check(db, "alice", other, 3, "Host.Config.Network"));
	}
	hostd_auth_db_destroy(db);
}

static void test_perm_validation(void **state)
{
	struct hostd_auth_db *db = new_db();
	struct hostd_auth_perm p = {.principal = "alice", .role = "Admin", .entity = "host-1"};
	struct kb_errmsg err;

	assert_int_equal(hostd_auth_perm_set(db, &p, &err), KB_ENOTFOUND); /* no such user */
	add_user(db, "alice", NULL, 0);
	strcpy(p.role, "Nope");
	assert_int_equal(hostd_auth_perm_set(db, &p, &err), KB_ENOTFOUND);
	strcpy(p.role, "Admin");
	strcpy(p.entity, "folder-1");
	assert_int_equal(hostd_auth_perm_set(db, &p, &err), -EINVAL);
	strcpy(p.entity, "host-1");
	assert_int_equal(hostd_auth_perm_set(db, &p, &err), 0);
	/* Setting it again replaces it. */
	strcpy(p.role, "ReadOnly");
	assert_int_equal(hostd_auth_perm_set(db, &p, &err), 0);
	assert_int_equal(hostd_auth_perm_count(db), 1);
	assert_string_equal(hostd_auth_perm_at(db, 0)->role, "ReadOnly");
	/* A group need not exist as such. */
	set_perm(db, "ops", true, "Admin", "host-1", true);
	assert_int_equal(hostd_auth_perm_count(db), 2);
	/* Removing the user takes its permissions along, not the group's. */
	assert_int_equal(hostd_auth_user_remove(db, "alice", &err), 0);
	assert_int_equal(hostd_auth_perm_count(db), 1);
	assert_true(hostd_auth_perm_at(db, 0)->group);
	assert_int_equal(hostd_auth_perm_remove(db, "alice", false, "host-1", &err), KB_ENOTFOUND);
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
	    cmocka_unit_test(test_hash_yescrypt),
	    cmocka_unit_test(test_hash_sha512),
	    cmocka_unit_test(test_dummy_setting_costs_a_hash),
	    cmocka_unit_test(test_password_rules),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_user_add),
	    cmocka_unit_test(test_user_verify_and_password_change),
	    cmocka_unit_test(test_bootstrap_root),
	    cmocka_unit_test(test_privilege_table),
	    cmocka_unit_test(test_system_roles),
	    cmocka_unit_test(test_custom_roles),
	    cmocka_unit_test(test_perm_inheritance),
	    cmocka_unit_test(test_perm_propagate_false),
	    cmocka_unit_test(test_perm_user_over_group),
	    cmocka_unit_test(test_perm_groups_unite),
	    cmocka_unit_test(test_perm_noaccess_overrides),
	    cmocka_unit_test(test_perm_most_specific_wins),
	    cmocka_unit_test(test_perm_validation),
	    cmocka_unit_test(test_session_basic),
	    cmocka_unit_test(test_session_expiry_and_refresh),
	    cmocka_unit_test(test_session_limits),
	    cmocka_unit_test(test_session_list_terminate),
	    cmocka_unit_test(test_ratelimit_lockout),
	    cmocka_unit_test(test_ratelimit_window_slides),
	    cmocka_unit_test(test_ratelimit_bounded),
	    cmocka_unit_test(test_login),
	    cmocka_unit_test(test_persist_round_trip),
	    cmocka_unit_test(test_persist_malformed),
	    cmocka_unit_test(test_oom),
	};

	return cmocka_run_group_tests(tests, setup_hash, NULL);
}
