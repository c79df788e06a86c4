/*
 * Tests for hostagent/auth.h, roles, privileges and permissions: the privilege table,
 * system and custom roles, and permission resolution (inheritance, propagate false, user
 * over group, group union, NoAccess, most specific wins) with the permission rules.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	};

	return cmocka_run_group_tests(tests, setup_hash, NULL);
}
