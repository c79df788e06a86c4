/*
 * Internals shared by the files of hostd's auth library (auth*.c); not for other
 * components, which use hostagent/auth.h.
 */
#ifndef HOSTD_AUTH_INT_H
#define HOSTD_AUTH_INT_H

#include "hostagent/auth.h"

struct hostd_auth_db {
	struct hostd_auth_user *users; /* in insertion order */
	size_t nusers, users_cap;
	struct hostd_auth_role *roles; /* the system roles first */
	size_t nroles, roles_cap;
	struct hostd_auth_perm *perms; /* in insertion order */
	size_t nperms, perms_cap;
	uint64_t generation;
};

/* The privileges every role but NoAccess holds. */
hostd_auth_privset hostd__privs_implied(void);
/* All privileges (Admin). */
hostd_auth_privset hostd__privs_all(void);

/* Hashes password with a fresh salt for the crypt prefix ("$y$", "$6$"); no rules check.
 * 0, -EINVAL (prefix unsupported), -ENOMEM, -EIO. */
int hostd__password_hash_prefix(const char *prefix, const char *password,
				char out[HOSTD_AUTH_HASH_MAX]);
/* The setting hashed against when the user does not exist. */
extern const char hostd__dummy_setting[];
/* True when hash has the shape of a crypt hash this library accepts. */
bool hostd__hash_valid(const char *hash);
/* True when s is a description this library accepts (no control characters). */
bool hostd__desc_valid(const char *s);

/* Grows *arr (of elem-sized entries, *cap of them) to hold one more than n. 0 or -ENOMEM. */
int hostd__grow(void **arr, size_t *cap, size_t n, size_t elem);

/* Frees a user's strings (not the struct). */
void hostd__user_free(struct hostd_auth_user *u);
/* Index of the role named name, or -1. */
int hostd__role_find(const struct hostd_auth_db *db, const char *name);
/* Privilege set from names; -EINVAL naming the first unknown one in err. */
int hostd__privs_parse(const char *const *names, size_t n, hostd_auth_privset *out,
		       struct kb_errmsg *err);

#endif
