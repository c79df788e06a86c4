/*
 * hostd's authentication and authorization: users, roles, permissions, sessions and the
 * login rate limiter. A pure library: no sockets, no event loop, no clock of its own (every
 * call that needs time takes the monotonic time in nanoseconds from the caller), so tests
 * drive it with an injected clock and hostd calls it from its loop.
 *
 * Happy path: hostd loads the database (hostd_auth_db_load) or, at first start, makes one
 * with a root user (hostd_auth_db_bootstrap); Login is hostd_auth_login, which checks the
 * source's rate limit, verifies the password and opens a session whose token the client
 * sends on every call; each call looks the token up (hostd_auth_session_lookup, which
 * refreshes its idle timer) and asks hostd_auth_check whether the user holds a privilege on
 * the entity it touches. Changes to users, roles and permissions are saved with
 * hostd_auth_db_save; the encoder and decoder are pure so the same bytes can later travel
 * through the cluster.
 *
 * Failure modes: a wrong or unknown user name and a wrong password are the same outcome
 * to the client (HOSTD_AUTH_EDENIED) and differ only in the reason given for the log; a
 * source with too many failures is refused before its password is even looked at
 * (HOSTD_AUTH_ELOCKED); an expired or unknown token is HOSTD_AUTH_ESESSION; a malformed
 * database file is refused whole, naming the line. Passwords are never stored, logged or
 * put in an error message.
 *
 * Threads: a database, a session table and a rate limiter each belong to one thread (the
 * hostd loop); nothing here locks. Hashing and verifying a password take tens of
 * milliseconds by design: the functions that take a password block that long, and
 * hostd_auth_password_hash/hostd_auth_password_verify are thread-safe so hostd can run
 * them on its thread pool instead.
 *
 * Privileges, the entity tree and the file format are described in docs/hostd-auth.md.
 */
#ifndef HOSTD_AUTH_H
#define HOSTD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Outcomes of this library, below every KB_E* code. hostd_auth_strerror() names them
 * (and falls back to kb_strerror for the rest). */
enum {
	HOSTD_AUTH_EBASE = -11000,
	HOSTD_AUTH_EDENIED = HOSTD_AUTH_EBASE, /* incorrect user name or password */
	HOSTD_AUTH_ELOCKED,		       /* too many failed logins from this source */
	HOSTD_AUTH_ESESSION,		       /* no such session, or it expired */
	HOSTD_AUTH_ELIMIT,		       /* too many sessions */
	HOSTD_AUTH_EPASSWORD,		       /* password does not meet the rules */
	HOSTD_AUTH_EBUILTIN,		       /* built-in user, role or permission */
	HOSTD_AUTH_ELAST
};

const char *hostd_auth_strerror(int code);

/* Limits. Names: users and groups 1..32 chars [a-z_][a-z0-9_.-]*; roles 1..64 chars
 * [A-Za-z][A-Za-z0-9_.-]*; entity ids: see hostd_auth_entity_valid. */
#define HOSTD_AUTH_NAME_MAX	   32
#define HOSTD_AUTH_ROLE_NAME_MAX   64
#define HOSTD_AUTH_ENTITY_MAX	   128
#define HOSTD_AUTH_DESC_MAX	   256
#define HOSTD_AUTH_GROUPS_MAX	   32
#define HOSTD_AUTH_PASSWORD_MIN	   8
#define HOSTD_AUTH_PASSWORD_MAX	   128
#define HOSTD_AUTH_HASH_MAX	   192 /* bytes of a stored hash, NUL included */
#define HOSTD_AUTH_USERS_MAX	   1024
#define HOSTD_AUTH_ROLES_MAX	   256 /* system roles included */
#define HOSTD_AUTH_PERMS_MAX	   8192
#define HOSTD_AUTH_FILE_MAX	   (4u << 20)
#define HOSTD_AUTH_SOURCE_MAX	   64 /* bytes of a login source (an address), NUL included */
#define HOSTD_AUTH_TOKEN_LEN	   64 /* hex digits of a session token (32 random bytes) */
#define HOSTD_AUTH_SESSION_KEY_LEN 16 /* hex digits of a session's public key */

/* The name of the built-in user and of the root entity. */
#define HOSTD_AUTH_ROOT_USER   "root"
#define HOSTD_AUTH_ROOT_ENTITY "root"

/* ---- passwords (thread-safe, no database) ----------------------------------------------- */

/* Checks the password rules: 8..128 bytes. 0 or HOSTD_AUTH_EPASSWORD (err says why). */
int hostd_auth_password_check_rules(const char *password, struct kb_errmsg *err);

/* Hashes password with yescrypt ("$y$"), or SHA-512 crypt ("$6$") where libcrypt has no
 * yescrypt, with a fresh random salt, into out (HOSTD_AUTH_HASH_MAX bytes). Checks the
 * rules first. 0, HOSTD_AUTH_EPASSWORD, -ENOMEM, or -EIO when libcrypt fails. */
int hostd_auth_password_hash(const char *password, char out[HOSTD_AUTH_HASH_MAX],
			     struct kb_errmsg *err);

/* True when password hashes to hash; the hashes are compared in constant time. A hash
 * libcrypt cannot use, or a password outside the rules, gives false. */
bool hostd_auth_password_verify(const char *hash, const char *password);

/* ---- privileges ------------------------------------------------------------------------- */

/* Privileges are a fixed table (docs/hostd-auth.md lists it); a set of them is a bit mask
 * indexed by table position. */
typedef uint64_t hostd_auth_privset;

size_t hostd_auth_priv_count(void);
/* The i-th privilege's name ("VirtualMachine.Interact.PowerOn"), or NULL past the end. */
const char *hostd_auth_priv_name(size_t i);
/* The table position of name, or -1 when no privilege has that name. */
int hostd_auth_priv_lookup(const char *name);

/* ---- the database ----------------------------------------------------------------------- */

struct hostd_auth_db;

/* A user as the database holds it; borrowed from the database until its next change. */
struct hostd_auth_user {
	char name[HOSTD_AUTH_NAME_MAX + 1];
	char *description; /* never NULL */
	char **groups;
	size_t ngroups;
	char hash[HOSTD_AUTH_HASH_MAX];
};

/* A role; the three system roles (Admin, ReadOnly, NoAccess) always exist and cannot be
 * changed. Custom roles always hold System.Anonymous, System.View and System.Read, as in
 * vSphere. */
struct hostd_auth_role {
	char name[HOSTD_AUTH_ROLE_NAME_MAX + 1];
	hostd_auth_privset privs;
	bool system;
};

/* A permission: a principal (user, or group when group is true) holds a role on an entity
 * and, when propagate is true, on everything below it. One per (principal, group, entity). */
struct hostd_auth_perm {
	char principal[HOSTD_AUTH_NAME_MAX + 1];
	bool group;
	char role[HOSTD_AUTH_ROLE_NAME_MAX + 1];
	char entity[HOSTD_AUTH_ENTITY_MAX + 1];
	bool propagate;
};

/* Makes an empty database holding only the system roles. 0 or -ENOMEM; the caller frees
 * it with hostd_auth_db_destroy. */
int hostd_auth_db_create(struct hostd_auth_db **out);
void hostd_auth_db_destroy(struct hostd_auth_db *db);

/* First start: adds the user "root" with root_password and gives it Admin on the root
 * entity, propagating. Blocks for one hash. 0, HOSTD_AUTH_EPASSWORD, KB_EEXIST when root
 * already exists, -ENOMEM, -EIO. */
int hostd_auth_db_bootstrap(struct hostd_auth_db *db, const char *root_password,
			    struct kb_errmsg *err);

/* Bumped by every change; hostd saves (or replicates) when it moved. */
uint64_t hostd_auth_db_generation(const struct hostd_auth_db *db);

/* True when name follows the user/group rules, the role rules, or is an entity id:
 * "root", "cluster-<id>", "host-<id>", "vm-<id>", "ds-<id>", "net-<id>" with <id> of 1 or
 * more of [A-Za-z0-9_.:-], HOSTD_AUTH_ENTITY_MAX in all. */
bool hostd_auth_name_valid(const char *name);
bool hostd_auth_role_name_valid(const char *name);
bool hostd_auth_entity_valid(const char *id);

/* ---- users ------------------------------------------------------------------------------ */

struct hostd_auth_user_spec {
	const char *name;
	const char *password;	 /* hashed here, blocking; or NULL and hash set */
	const char *hash;	 /* an already made hash (from hostd_auth_password_hash) */
	const char *description; /* NULL: "" */
	const char *const *groups;
	size_t ngroups;
};

/* Adds a user. Arguments are borrowed. 0, -EINVAL (bad name, group, description or hash:
 * err says which), HOSTD_AUTH_EPASSWORD, KB_EEXIST, KB_ETOOBIG (HOSTD_AUTH_USERS_MAX),
 * -ENOMEM, -EIO. */
int hostd_auth_user_add(struct hostd_auth_db *db, const struct hostd_auth_user_spec *spec,
			struct kb_errmsg *err);
/* Replaces the password (blocking for one hash). 0, KB_ENOTFOUND, HOSTD_AUTH_EPASSWORD,
 * -ENOMEM, -EIO. Open sessions are not touched: see hostd_auth_session_drop_user. */
int hostd_auth_user_set_password(struct hostd_auth_db *db, const char *name, const char *password,
				 struct kb_errmsg *err);
/* Replaces the password with an already made hash (from hostd_auth_password_hash, e.g. on
 * a worker thread), without blocking. 0, KB_ENOTFOUND, -EINVAL (not a hash this library
 * accepts). Open sessions are not touched. */
int hostd_auth_user_set_hash(struct hostd_auth_db *db, const char *name, const char *hash,
			     struct kb_errmsg *err);
/* Replaces the description when it is not NULL, and the groups (ngroups of them,
 * borrowed; none when ngroups is 0) when set_groups is true. On error nothing changes.
 * 0, KB_ENOTFOUND, -EINVAL, -ENOMEM. */
int hostd_auth_user_update(struct hostd_auth_db *db, const char *name, const char *description,
			   bool set_groups, const char *const *groups, size_t ngroups,
			   struct kb_errmsg *err);
/* Removes a user and its user permissions. 0, KB_ENOTFOUND, HOSTD_AUTH_EBUILTIN (root). */
int hostd_auth_user_remove(struct hostd_auth_db *db, const char *name, struct kb_errmsg *err);
/* The user, or NULL. Borrowed until the next change of the database. */
const struct hostd_auth_user *hostd_auth_user_get(const struct hostd_auth_db *db, const char *name);
size_t hostd_auth_user_count(const struct hostd_auth_db *db);
const struct hostd_auth_user *hostd_auth_user_at(const struct hostd_auth_db *db, size_t i);

/* Why a login failed, for the log (never shown to the client, never with the password). */
enum hostd_auth_fail {
	HOSTD_AUTH_FAIL_NONE = 0,
	HOSTD_AUTH_FAIL_NO_USER,      /* no user by that name */
	HOSTD_AUTH_FAIL_BAD_PASSWORD, /* the password did not match */
	HOSTD_AUTH_FAIL_BAD_INPUT,    /* user name or password outside the rules */
	HOSTD_AUTH_FAIL_LOCKED_OUT,   /* the source is locked out */
	HOSTD_AUTH_FAIL_SESSIONS,     /* credentials fine, but no session could be opened */
};
const char *hostd_auth_fail_name(enum hostd_auth_fail why);

/* Checks user's password (blocking for one hash, also for an unknown user, so timing does
 * not tell which users exist). 0 or HOSTD_AUTH_EDENIED; why (may be NULL) says which. */
int hostd_auth_user_verify(const struct hostd_auth_db *db, const char *user, const char *password,
			   enum hostd_auth_fail *why);

/* ---- roles ------------------------------------------------------------------------------ */

/* Creates or replaces a custom role from privilege names (borrowed). 0, -EINVAL (bad name
 * or an unknown privilege: err names it), HOSTD_AUTH_EBUILTIN (a system role's name),
 * KB_ETOOBIG, -ENOMEM. */
int hostd_auth_role_set(struct hostd_auth_db *db, const char *name, const char *const *privs,
			size_t nprivs, struct kb_errmsg *err);
/* Removes a custom role. 0, KB_ENOTFOUND, HOSTD_AUTH_EBUILTIN, KB_ESTATE (a permission
 * uses it). */
int hostd_auth_role_remove(struct hostd_auth_db *db, const char *name, struct kb_errmsg *err);
const struct hostd_auth_role *hostd_auth_role_get(const struct hostd_auth_db *db, const char *name);
size_t hostd_auth_role_count(const struct hostd_auth_db *db);
const struct hostd_auth_role *hostd_auth_role_at(const struct hostd_auth_db *db, size_t i);

/* ---- permissions ------------------------------------------------------------------------ */

/* Creates or replaces the permission of (p->principal, p->group, p->entity). The role must
 * exist, a user principal must exist (a group need not: groups are names on users), the
 * entity id must be valid. The root user's Admin on the root entity cannot be changed.
 * 0, -EINVAL, KB_ENOTFOUND, HOSTD_AUTH_EBUILTIN, KB_ETOOBIG, -ENOMEM. */
int hostd_auth_perm_set(struct hostd_auth_db *db, const struct hostd_auth_perm *p,
			struct kb_errmsg *err);
/* 0, KB_ENOTFOUND, HOSTD_AUTH_EBUILTIN. */
int hostd_auth_perm_remove(struct hostd_auth_db *db, const char *principal, bool group,
			   const char *entity, struct kb_errmsg *err);
size_t hostd_auth_perm_count(const struct hostd_auth_db *db);
const struct hostd_auth_perm *hostd_auth_perm_at(const struct hostd_auth_db *db, size_t i);

/*
 * The privileges user holds on the entity at the end of path (entity ids from "root"
 * down: {"root", "cluster-1", "host-2", "vm-…"}; n >= 1, path[0] must be "root"). Walking
 * from the entity up to the root, the first entity with a permission that applies decides
 * alone: on the entity itself every permission applies, above it only propagating ones. At
 * that entity a permission of the user wins over those of its groups; without one, the
 * privileges of all its groups' permissions there are united. No permission anywhere: no
 * privileges. So NoAccess on a more specific entity denies whatever is granted above.
 * An unknown user or a bad path gets the empty set.
 */
hostd_auth_privset hostd_auth_privileges(const struct hostd_auth_db *db, const char *user,
					 const char *const *path, size_t n);
/* True when hostd_auth_privileges() holds the privilege named priv (false for unknown
 * names). */
bool hostd_auth_check(const struct hostd_auth_db *db, const char *user, const char *const *path,
		      size_t n, const char *priv);

/* ---- persistence ------------------------------------------------------------------------ */

/* Appends the database as text (format in docs/hostd-auth.md and auth_store.c) to out.
 * Pure: the same database gives the same bytes. 0, -ENOMEM, KB_ETOOBIG (out's limit). */
int hostd_auth_db_encode(const struct hostd_auth_db *db, struct kb_buf *out);
/* Builds a database from len bytes (borrowed, untrusted). Strict: any malformed or
 * inconsistent line refuses the whole input with "line N: reason" in err. 0, KB_EPROTO,
 * KB_EVERSION, KB_ETOOBIG, -ENOMEM; *out is set on success only and freed with
 * hostd_auth_db_destroy. */
int hostd_auth_db_decode(const void *data, size_t len, struct hostd_auth_db **out,
			 struct kb_errmsg *err);
/* Encodes and writes path atomically with mode 0600 (kb_file_write_atomic). Blocking. */
int hostd_auth_db_save(const struct hostd_auth_db *db, const char *path, struct kb_errmsg *err);
/* Reads path (at most HOSTD_AUTH_FILE_MAX bytes) and decodes it. Blocking. -ENOENT when
 * there is no file (first start). err starts with the path. */
int hostd_auth_db_load(const char *path, struct hostd_auth_db **out, struct kb_errmsg *err);

/* ---- sessions --------------------------------------------------------------------------- */

struct hostd_auth_sessions;

struct hostd_auth_sessions_config {
	uint64_t idle_timeout_ns; /* 0: 30 minutes */
	unsigned max_per_user;	  /* 0: 64 */
	unsigned max_total;	  /* 0: 1024 */
};

/* What may be shown about a session: everything but its token. key is a public random id
 * for listing and terminating. */
struct hostd_auth_session_info {
	char key[HOSTD_AUTH_SESSION_KEY_LEN + 1];
	char user[HOSTD_AUTH_NAME_MAX + 1];
	char source[HOSTD_AUTH_SOURCE_MAX];
	uint64_t created_ns;   /* monotonic */
	uint64_t last_used_ns; /* monotonic */
	uint64_t created_wall_ms;
	uint64_t idle_timeout_ns;
};

/* cfg (borrowed, may be NULL for defaults). 0 or -ENOMEM; freed with
 * hostd_auth_sessions_destroy. */
int hostd_auth_sessions_create(struct hostd_auth_sessions **out,
			       const struct hostd_auth_sessions_config *cfg);
void hostd_auth_sessions_destroy(struct hostd_auth_sessions *s);

/* Opens a session for user (not checked here: call after authenticating) coming from
 * source (an address, truncated to fit). Expired sessions are dropped first. Writes the
 * NUL-terminated token into token and, when info is not NULL, its description. 0,
 * HOSTD_AUTH_ELIMIT (the user's or the total limit), -ENOMEM, -EIO (no randomness). */
int hostd_auth_session_open(struct hostd_auth_sessions *s, const char *user, const char *source,
			    uint64_t now_ns, uint64_t wall_ms, char token[HOSTD_AUTH_TOKEN_LEN + 1],
			    struct hostd_auth_session_info *info);
/* Finds the session of token (compared in constant time) and refreshes its idle timer.
 * 0 with *info filled (info may be NULL), or HOSTD_AUTH_ESESSION when no session has that
 * token or it was idle too long (it is then dropped). */
int hostd_auth_session_lookup(struct hostd_auth_sessions *s, const char *token, uint64_t now_ns,
			      struct hostd_auth_session_info *info);
/* Ends the session of token. 0 or HOSTD_AUTH_ESESSION. */
int hostd_auth_session_logout(struct hostd_auth_sessions *s, const char *token);
/* Ends the session with the public key (Sessions.TerminateSession). 0 or
 * HOSTD_AUTH_ESESSION. */
int hostd_auth_session_terminate(struct hostd_auth_sessions *s, const char *key);
/* Ends every session of user (removed, or its password changed). Returns how many. */
size_t hostd_auth_session_drop_user(struct hostd_auth_sessions *s, const char *user);
/* Drops sessions idle too long at now_ns (hostd calls it from a timer). Returns how many. */
size_t hostd_auth_sessions_expire(struct hostd_auth_sessions *s, uint64_t now_ns);
/* Copies up to max live sessions at now_ns into out (oldest first). Returns the number of
 * live sessions, which may exceed max. Does not refresh them. */
size_t hostd_auth_session_list(const struct hostd_auth_sessions *s, uint64_t now_ns,
			       struct hostd_auth_session_info *out, size_t max);

/* ---- login rate limiting ---------------------------------------------------------------- */

struct hostd_auth_ratelimit;

struct hostd_auth_ratelimit_config {
	unsigned max_failures; /* 0: 5 failures ... */
	uint64_t window_ns;    /* 0: ... within 60 s ... */
	uint64_t lockout_ns;   /* 0: ... lock the source out for 60 s */
	unsigned capacity;     /* 0: 4096 sources remembered, least recently seen forgotten */
};

int hostd_auth_ratelimit_create(struct hostd_auth_ratelimit **out,
				const struct hostd_auth_ratelimit_config *cfg);
void hostd_auth_ratelimit_destroy(struct hostd_auth_ratelimit *rl);
/* 0 when source may try to log in at now_ns, or HOSTD_AUTH_ELOCKED with the time left in
 * *retry_ns (may be NULL). */
int hostd_auth_ratelimit_check(struct hostd_auth_ratelimit *rl, const char *source, uint64_t now_ns,
			       uint64_t *retry_ns);
/* Counts a failure from source. Returns 1 when it locked the source out, else 0 (also when
 * no memory was left to remember it). */
int hostd_auth_ratelimit_fail(struct hostd_auth_ratelimit *rl, const char *source, uint64_t now_ns);
/* Forgets source's failures (a successful login). */
void hostd_auth_ratelimit_success(struct hostd_auth_ratelimit *rl, const char *source);
/* How many sources are remembered. */
size_t hostd_auth_ratelimit_size(const struct hostd_auth_ratelimit *rl);

/* ---- login ------------------------------------------------------------------------------ */

struct hostd_auth_login_req {
	const char *user;
	const char *password;
	const char *source; /* the client's address; "" when unknown */
	uint64_t now_ns;    /* monotonic */
	uint64_t wall_ms;   /* for the session's creation time */
};

/*
 * Login: the source's rate limit (rl may be NULL), then the password, then a new session.
 * 0 with the token and info filled; HOSTD_AUTH_ELOCKED (source locked out, nothing
 * checked); HOSTD_AUTH_EDENIED (unknown user, wrong password, or input outside the rules:
 * one failure more for the source); HOSTD_AUTH_ELIMIT, -ENOMEM, -EIO (session). err gets
 * text fit for the client; *why (may be NULL) the reason for the log. Blocks for one hash.
 */
int hostd_auth_login(const struct hostd_auth_db *db, struct hostd_auth_sessions *s,
		     struct hostd_auth_ratelimit *rl, const struct hostd_auth_login_req *req,
		     char token[HOSTD_AUTH_TOKEN_LEN + 1], struct hostd_auth_session_info *info,
		     enum hostd_auth_fail *why, struct kb_errmsg *err);

#endif
