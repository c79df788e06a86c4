/*
 * Privileges, roles, permissions and the effective-privilege check.
 *
 * The privilege table below is the whole vocabulary: a custom role naming anything else is
 * refused, and a set of privileges is a bit mask indexed by table position (so the table
 * holds at most 64 entries, and its order is part of nothing persistent: the file stores
 * names). The system roles are Admin (everything), ReadOnly (System.Anonymous, System.View,
 * System.Read) and NoAccess (nothing); every other role also holds those three, as in
 * vSphere.
 *
 * The check walks the entity path from the entity up to the root; the first entity where a
 * permission applies decides alone (see hostd_auth_privileges in auth.h). Permissions are
 * scanned linearly: at most HOSTD_AUTH_PERMS_MAX of them, a path of a few entities.
 */
#include <errno.h>
#include <string.h>

#include "hostagent/auth_int.h"

struct priv_def {
	const char *name;
	const char *what;
};

/* The privileges, with what each allows. Documented in docs/hostd-auth.md; keep both in
 * step. */
static const struct priv_def privs[] = {
    {"System.Anonymous", "reach the API at all (implied by every role but NoAccess)"},
    {"System.View", "see that an entity exists"},
    {"System.Read", "read an entity's properties"},
    {"Sessions.TerminateSession", "list and end other users' sessions"},
    {"VirtualMachine.Inventory.Create", "create a VM"},
    {"VirtualMachine.Inventory.Register", "register an existing VM"},
    {"VirtualMachine.Inventory.Unregister", "unregister a VM, keeping its files"},
    {"VirtualMachine.Inventory.Delete", "destroy a VM and its files"},
    {"VirtualMachine.Config.Settings", "reconfigure a VM"},
    {"VirtualMachine.Interact.PowerOn", "power on or resume a VM"},
    {"VirtualMachine.Interact.PowerOff", "power off a VM"},
    {"VirtualMachine.Interact.Reset", "reset a VM"},
    {"VirtualMachine.Interact.Suspend", "suspend a VM"},
    {"VirtualMachine.Interact.ConsoleInteract", "use a VM's console"},
    {"Resource.HotMigrate", "migrate a running VM"},
    {"Host.Config.Network", "configure host networking (vmknics)"},
    {"Host.Config.Storage", "configure datastores"},
    {"Host.Config.Maintenance", "enter and leave maintenance mode"},
    {"Host.Inventory.ManageCluster", "create, join and leave clusters"},
    {"Datastore.Browse", "list and download datastore files"},
    {"Datastore.FileManagement", "upload, change and delete datastore files"},
    {"Authorization.ModifyRoles", "create, change and remove roles"},
    {"Authorization.ModifyPermissions", "set and remove permissions"},
    {"Authorization.ModifyUsers", "add, change and remove users"},
};

#define NPRIVS (sizeof(privs) / sizeof(privs[0]))
_Static_assert(NPRIVS <= 64, "a privilege set is a 64-bit mask");

size_t hostd_auth_priv_count(void)
{
	return NPRIVS;
}

const char *hostd_auth_priv_name(size_t i)
{
	return i < NPRIVS ? privs[i].name : NULL;
}

int hostd_auth_priv_lookup(const char *name)
{
	for (size_t i = 0; i < NPRIVS; i++)
		if (strcmp(privs[i].name, name) == 0)
			return (int)i;
	return -1;
}

hostd_auth_privset hostd__privs_all(void)
{
	return NPRIVS == 64 ? ~(hostd_auth_privset)0 : ((hostd_auth_privset)1 << NPRIVS) - 1;
}

hostd_auth_privset hostd__privs_implied(void)
{
	/* The first three entries of the table. */
	return 0x7;
}

int hostd__privs_parse(const char *const *names, size_t n, hostd_auth_privset *out,
		       struct kb_errmsg *err)
{
	hostd_auth_privset set = 0;

	for (size_t i = 0; i < n; i++) {
		int p = hostd_auth_priv_lookup(names[i]);

		if (p < 0) {
			kb_errmsg_setf(err, "unknown privilege '%.64s'", names[i]);
			return -EINVAL;
		}
		set |= (hostd_auth_privset)1 << p;
	}
	*out = set;
	return 0;
}

/* ---- roles ------------------------------------------------------------------------------ */

int hostd__role_find(const struct hostd_auth_db *db, const char *name)
{
	for (size_t i = 0; i < db->nroles; i++)
		if (strcmp(db->roles[i].name, name) == 0)
			return (int)i;
	return -1;
}

int hostd_auth_role_set(struct hostd_auth_db *db, const char *name, const char *const *names,
			size_t nprivs, struct kb_errmsg *err)
{
	hostd_auth_privset set;
	int i, rv;

	if (!hostd_auth_role_name_valid(name)) {
		kb_errmsg_setf(err, "invalid role name");
		return -EINVAL;
	}
	rv = hostd__privs_parse(names, nprivs, &set, err);
	if (rv)
		return rv;
	set |= hostd__privs_implied();
	i = hostd__role_find(db, name);
	if (i >= 0 && db->roles[i].system) {
		kb_errmsg_setf(err, "role %s: a system role cannot be changed", name);
		return HOSTD_AUTH_EBUILTIN;
	}
	if (i < 0) {
		if (db->nroles >= HOSTD_AUTH_ROLES_MAX) {
			kb_errmsg_setf(err, "role %s: at most %d roles", name,
				       HOSTD_AUTH_ROLES_MAX);
			return KB_ETOOBIG;
		}
		rv = hostd__grow((void **)&db->roles, &db->roles_cap, db->nroles,
				 sizeof(*db->roles));
		if (rv) {
			kb_errmsg_setf(err, "role %s: out of memory", name);
			return rv;
		}
		i = (int)db->nroles++;
		memset(&db->roles[i], 0, sizeof(db->roles[i]));
		strcpy(db->roles[i].name, name);
	}
	db->roles[i].privs = set;
	db->generation++;
	return 0;
}

int hostd_auth_role_remove(struct hostd_auth_db *db, const char *name, struct kb_errmsg *err)
{
	int i = hostd__role_find(db, name);
	size_t used = 0;

	if (i < 0) {
		kb_errmsg_setf(err, "role %.64s: no such role", name);
		return KB_ENOTFOUND;
	}
	if (db->roles[i].system) {
		kb_errmsg_setf(err, "role %s: a system role cannot be removed", name);
		return HOSTD_AUTH_EBUILTIN;
	}
	for (size_t p = 0; p < db->nperms; p++)
		used += strcmp(db->perms[p].role, name) == 0;
	if (used) {
		kb_errmsg_setf(err, "role %s: used by %zu permission%s", name, used,
			       used == 1 ? "" : "s");
		return KB_ESTATE;
	}
	memmove(&db->roles[i], &db->roles[i + 1], (db->nroles - i - 1) * sizeof(db->roles[0]));
	db->nroles--;
	db->generation++;
	return 0;
}

const struct hostd_auth_role *hostd_auth_role_get(const struct hostd_auth_db *db, const char *name)
{
	int i = hostd__role_find(db, name);

	return i < 0 ? NULL : &db->roles[i];
}

size_t hostd_auth_role_count(const struct hostd_auth_db *db)
{
	return db->nroles;
}

const struct hostd_auth_role *hostd_auth_role_at(const struct hostd_auth_db *db, size_t i)
{
	return i < db->nroles ? &db->roles[i] : NULL;
}

/* ---- permissions ------------------------------------------------------------------------ */

static int perm_find(const struct hostd_auth_db *db, const char *principal, bool group,
		     const char *entity)
{
	for (size_t i = 0; i < db->nperms; i++) {
		const struct hostd_auth_perm *p = &db->perms[i];

		if (p->group == group && strcmp(p->principal, principal) == 0 &&
		    strcmp(p->entity, entity) == 0)
			return (int)i;
	}
	return -1;
}

static bool perm_builtin(const char *principal, bool group, const char *entity)
{
	return !group && strcmp(principal, HOSTD_AUTH_ROOT_USER) == 0 &&
	       strcmp(entity, HOSTD_AUTH_ROOT_ENTITY) == 0;
}

int hostd_auth_perm_set(struct hostd_auth_db *db, const struct hostd_auth_perm *p,
			struct kb_errmsg *err)
{
	int i, rv;

	if (!hostd_auth_name_valid(p->principal)) {
		kb_errmsg_setf(err, "permission: invalid %s name", p->group ? "group" : "user");
		return -EINVAL;
	}
	if (!hostd_auth_entity_valid(p->entity)) {
		kb_errmsg_setf(err, "permission: invalid entity id");
		return -EINVAL;
	}
	if (!p->group && !hostd_auth_user_get(db, p->principal)) {
		kb_errmsg_setf(err, "permission: no user %s", p->principal);
		return KB_ENOTFOUND;
	}
	if (hostd__role_find(db, p->role) < 0) {
		kb_errmsg_setf(err, "permission: no role %.64s", p->role);
		return KB_ENOTFOUND;
	}
	i = perm_find(db, p->principal, p->group, p->entity);
	if (i >= 0 && perm_builtin(p->principal, p->group, p->entity) &&
	    (strcmp(p->role, "Admin") != 0 || !p->propagate)) {
		kb_errmsg_setf(err, "permission: root keeps Admin on the root entity");
		return HOSTD_AUTH_EBUILTIN;
	}
	if (i < 0) {
		if (db->nperms >= HOSTD_AUTH_PERMS_MAX) {
			kb_errmsg_setf(err, "permission: at most %d permissions",
				       HOSTD_AUTH_PERMS_MAX);
			return KB_ETOOBIG;
		}
		rv = hostd__grow((void **)&db->perms, &db->perms_cap, db->nperms,
				 sizeof(*db->perms));
		if (rv) {
			kb_errmsg_setf(err, "permission: out of memory");
			return rv;
		}
		i = (int)db->nperms++;
	}
	db->perms[i] = *p;
	db->generation++;
	return 0;
}

int hostd_auth_perm_remove(struct hostd_auth_db *db, const char *principal, bool group,
			   const char *entity, struct kb_errmsg *err)
{
	int i = perm_find(db, principal, group, entity);

	if (i < 0) {
		kb_errmsg_setf(err, "permission: none for that principal on that entity");
		return KB_ENOTFOUND;
	}
	if (perm_builtin(principal, group, entity)) {
		kb_errmsg_setf(err, "permission: root keeps Admin on the root entity");
		return HOSTD_AUTH_EBUILTIN;
	}
	memmove(&db->perms[i], &db->perms[i + 1], (db->nperms - i - 1) * sizeof(db->perms[0]));
	db->nperms--;
	db->generation++;
	return 0;
}

size_t hostd_auth_perm_count(const struct hostd_auth_db *db)
{
	return db->nperms;
}

const struct hostd_auth_perm *hostd_auth_perm_at(const struct hostd_auth_db *db, size_t i)
{
	return i < db->nperms ? &db->perms[i] : NULL;
}

/* ---- the check -------------------------------------------------------------------------- */

static bool in_groups(const struct hostd_auth_user *u, const char *group)
{
	for (size_t i = 0; i < u->ngroups; i++)
		if (strcmp(u->groups[i], group) == 0)
			return true;
	return false;
}

static hostd_auth_privset role_privs(const struct hostd_auth_db *db, const char *role)
{
	int i = hostd__role_find(db, role);

	return i < 0 ? 0 : db->roles[i].privs;
}

hostd_auth_privset hostd_auth_privileges(const struct hostd_auth_db *db, const char *user,
					 const char *const *path, size_t n)
{
	const struct hostd_auth_user *u = hostd_auth_user_get(db, user);

	if (!u || n == 0 || strcmp(path[0], HOSTD_AUTH_ROOT_ENTITY) != 0)
		return 0;
	for (size_t level = n; level-- > 0;) {
		bool own = level == n - 1;
		bool found_group = false;
		hostd_auth_privset groups = 0;

		for (size_t i = 0; i < db->nperms; i++) {
			const struct hostd_auth_perm *p = &db->perms[i];

			if ((!own && !p->propagate) || strcmp(p->entity, path[level]) != 0)
				continue;
			if (!p->group && strcmp(p->principal, u->name) == 0)
				return role_privs(db, p->role);
			if (p->group && in_groups(u, p->principal)) {
				found_group = true;
				groups |= role_privs(db, p->role);
			}
		}
		if (found_group)
			return groups;
	}
	return 0;
}

bool hostd_auth_check(const struct hostd_auth_db *db, const char *user, const char *const *path,
		      size_t n, const char *priv)
{
	int p = hostd_auth_priv_lookup(priv);

	if (p < 0)
		return false;
	return hostd_auth_privileges(db, user, path, n) & ((hostd_auth_privset)1 << p);
}
