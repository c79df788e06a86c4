/*
 * The auth database as text: the encoder and the strict decoder (both pure, so the bytes
 * can be replicated as they are), and saving and loading a local file.
 *
 * Format, version 1. Lines end with '\n' (the last one too); fields are separated by one
 * space; nothing else (no blank lines, no comments, no trailing spaces):
 *
 *   keel-auth 1
 *   user <name> <hash> <groups> <description>
 *   role <name> <privileges>
 *   perm <user|group> <principal> <role> <entity> <propagate|nopropagate>
 *
 *   <name>, <principal>  user or group name: 1..32 of [a-z0-9_.-], first [a-z_]
 *   <hash>               crypt(3) hash ("$y$..." or "$6$..."), never a password
 *   <groups>             group names joined by ',', or '-' for none
 *   <description>        '-' for empty, else the bytes with every byte outside
 *                        0x21..0x7e and every '%' written %XX (hex); a lone '-' is %2D
 *   <privileges>         privilege names joined by ',' (custom roles only: the system
 *                        roles Admin, ReadOnly and NoAccess are built in, never written)
 *   <role>               a system role or one defined on an earlier line
 *   <entity>             "root", "cluster-<id>", "host-<id>", "vm-<id>", "ds-<id>", "net-<id>"
 *
 * The encoder writes the header, then users, roles and permissions, each in the
 * database's order. The decoder refuses the whole input, naming the line, for anything
 * else: an unknown record or version, a wrong field count, a name, hash, privilege or
 * entity outside the rules, a duplicate, a reference to a user or role not defined
 * above, and a file without the user root holding Admin (propagating) on the root entity.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/file.h"
#include "lib/heap.h"
#include "hostagent/auth_int.h"

#define HEADER	   "keel-auth 1"
#define LINE_MAX_B 8192
#define FIELDS_MAX 8

/* ---- encoding --------------------------------------------------------------------------- */

static int put_str(struct kb_buf *b, const char *s)
{
	return kb_buf_append(b, s, strlen(s));
}

static int put_desc(struct kb_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rv = 0;

	if (!*s)
		return put_str(b, "-");
	if (strcmp(s, "-") == 0)
		return put_str(b, "%2D");
	for (const unsigned char *p = (const unsigned char *)s; *p && !rv; p++) {
		if (*p > 0x20 && *p < 0x7f && *p != '%') {
			rv = kb_buf_put_u8(b, *p);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

			rv = kb_buf_append(b, e, 3);
		}
	}
	return rv;
}

static int put_user(struct kb_buf *b, const struct hostd_auth_user *u)
{
	int rv = 0;

	rv = rv ?: put_str(b, "user ");
	rv = rv ?: put_str(b, u->name);
	rv = rv ?: put_str(b, " ");
	rv = rv ?: put_str(b, u->hash);
	rv = rv ?: put_str(b, " ");
	if (!u->ngroups)
		rv = rv ?: put_str(b, "-");
	for (size_t g = 0; g < u->ngroups; g++) {
		if (g)
			rv = rv ?: put_str(b, ",");
		rv = rv ?: put_str(b, u->groups[g]);
	}
	rv = rv ?: put_str(b, " ");
	rv = rv ?: put_desc(b, u->description);
	return rv ?: put_str(b, "\n");
}

static int put_role(struct kb_buf *b, const struct hostd_auth_role *r)
{
	bool first = true;
	int rv = 0;

	rv = rv ?: put_str(b, "role ");
	rv = rv ?: put_str(b, r->name);
	rv = rv ?: put_str(b, " ");
	for (size_t i = 0; i < hostd_auth_priv_count(); i++) {
		if (!(r->privs & ((hostd_auth_privset)1 << i)))
			continue;
		if (!first)
			rv = rv ?: put_str(b, ",");
		rv = rv ?: put_str(b, hostd_auth_priv_name(i));
		first = false;
	}
	return rv ?: put_str(b, "\n");
}

static int put_perm(struct kb_buf *b, const struct hostd_auth_perm *p)
{
	int rv = 0;

	rv = rv ?: put_str(b, p->group ? "perm group " : "perm user ");
	rv = rv ?: put_str(b, p->principal);
	rv = rv ?: put_str(b, " ");
	rv = rv ?: put_str(b, p->role);
	rv = rv ?: put_str(b, " ");
	rv = rv ?: put_str(b, p->entity);
	return rv ?: put_str(b, p->propagate ? " propagate\n" : " nopropagate\n");
}

int hostd_auth_db_encode(const struct hostd_auth_db *db, struct kb_buf *out)
{
	size_t start = out->len;
	int rv = put_str(out, HEADER "\n");

	for (size_t i = 0; i < db->nusers && !rv; i++)
		rv = put_user(out, &db->users[i]);
	for (size_t i = 0; i < db->nroles && !rv; i++)
		if (!db->roles[i].system)
			rv = put_role(out, &db->roles[i]);
	for (size_t i = 0; i < db->nperms && !rv; i++)
		rv = put_perm(out, &db->perms[i]);
	if (rv)
		out->len = start;
	return rv;
}

/* ---- decoding --------------------------------------------------------------------------- */

/* Splits line (modified in place) at single spaces into at most FIELDS_MAX fields.
 * Returns the count, or -1 for an empty field (two spaces, a leading or trailing one) or
 * too many fields. */
static int split(char *line, char **f)
{
	int n = 0;

	for (char *p = line;;) {
		char *sp = strchr(p, ' ');

		if (n == FIELDS_MAX)
			return -1;
		f[n++] = p;
		if (!sp)
			break;
		*sp = 0;
		p = sp + 1;
	}
	for (int i = 0; i < n; i++)
		if (!*f[i])
			return -1;
	return n;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a description field into out (HOSTD_AUTH_DESC_MAX + 1 bytes). 0 or -1. */
static int get_desc(const char *f, char *out)
{
	size_t n = 0;

	if (strcmp(f, "-") == 0) {
		out[0] = 0;
		return 0;
	}
	for (const char *p = f; *p; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

			if (lo < 0)
				return -1;
			c = hi << 4 | lo;
			if (c == 0)
				return -1;
			p += 2;
		} else if (c <= 0x20 || c >= 0x7f) {
			return -1;
		}
		if (n == HOSTD_AUTH_DESC_MAX)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = 0;
	return hostd__desc_valid(out) ? 0 : -1;
}

/* Splits s (modified) at ',' into list (cap entries). Returns the count or -1. */
static int split_list(char *s, char **list, int cap)
{
	int n = 0;

	for (char *p = s;;) {
		char *c = strchr(p, ',');

		if (n == cap)
			return -1;
		list[n++] = p;
		if (!c)
			break;
		*c = 0;
		p = c + 1;
	}
	for (int i = 0; i < n; i++)
		if (!*list[i])
			return -1;
	return n;
}

static int line_user(struct hostd_auth_db *db, char **f, int nf, struct kb_errmsg *err)
{
	char desc[HOSTD_AUTH_DESC_MAX + 1];
	char *groups[HOSTD_AUTH_GROUPS_MAX];
	int ng = 0;
	struct hostd_auth_user_spec spec = {.name = f[1], .hash = f[2], .description = desc};

	if (nf != 5) {
		kb_errmsg_setf(err, "user: expected 4 fields, found %d", nf - 1);
		return KB_EPROTO;
	}
	if (!hostd__hash_valid(f[2])) {
		kb_errmsg_setf(err, "user %.32s: malformed hash", f[1]);
		return KB_EPROTO;
	}
	if (strcmp(f[3], "-") != 0) {
		ng = split_list(f[3], groups, HOSTD_AUTH_GROUPS_MAX);
		if (ng < 0) {
			kb_errmsg_setf(err, "user %.32s: malformed groups", f[1]);
			return KB_EPROTO;
		}
	}
	if (get_desc(f[4], desc) != 0) {
		kb_errmsg_setf(err, "user %.32s: malformed description", f[1]);
		return KB_EPROTO;
	}
	spec.groups = (const char *const *)groups;
	spec.ngroups = (size_t)ng;
	return hostd_auth_user_add(db, &spec, err);
}

static int line_role(struct hostd_auth_db *db, char **f, int nf, struct kb_errmsg *err)
{
	char *names[64];
	int n;

	if (nf != 3) {
		kb_errmsg_setf(err, "role: expected 2 fields, found %d", nf - 1);
		return KB_EPROTO;
	}
	if (hostd__role_find(db, f[1]) >= 0) {
		kb_errmsg_setf(err, "role %.64s defined twice (or a system role)", f[1]);
		return KB_EPROTO;
	}
	n = split_list(f[2], names, 64);
	if (n < 0) {
		kb_errmsg_setf(err, "role %.64s: malformed privilege list", f[1]);
		return KB_EPROTO;
	}
	return hostd_auth_role_set(db, f[1], (const char *const *)names, (size_t)n, err);
}

static int line_perm(struct hostd_auth_db *db, char **f, int nf, struct kb_errmsg *err)
{
	struct hostd_auth_perm p = {0};

	if (nf != 6) {
		kb_errmsg_setf(err, "perm: expected 5 fields, found %d", nf - 1);
		return KB_EPROTO;
	}
	if (strcmp(f[1], "user") != 0 && strcmp(f[1], "group") != 0) {
		kb_errmsg_setf(err, "perm: principal kind is user or group");
		return KB_EPROTO;
	}
	if (strcmp(f[5], "propagate") != 0 && strcmp(f[5], "nopropagate") != 0) {
		kb_errmsg_setf(err, "perm: last field is propagate or nopropagate");
		return KB_EPROTO;
	}
	if (strlen(f[2]) > HOSTD_AUTH_NAME_MAX || strlen(f[3]) > HOSTD_AUTH_ROLE_NAME_MAX ||
	    strlen(f[4]) > HOSTD_AUTH_ENTITY_MAX) {
		kb_errmsg_setf(err, "perm: a field is too long");
		return KB_EPROTO;
	}
	p.group = f[1][0] == 'g';
	strcpy(p.principal, f[2]);
	strcpy(p.role, f[3]);
	strcpy(p.entity, f[4]);
	p.propagate = f[5][0] == 'p';
	for (size_t i = 0; i < db->nperms; i++) {
		const struct hostd_auth_perm *q = &db->perms[i];

		if (q->group == p.group && strcmp(q->principal, p.principal) == 0 &&
		    strcmp(q->entity, p.entity) == 0) {
			kb_errmsg_setf(err, "perm: defined twice");
			return KB_EPROTO;
		}
	}
	return hostd_auth_perm_set(db, &p, err);
}

static int decode_line(struct hostd_auth_db *db, char *line, struct kb_errmsg *err)
{
	char *f[FIELDS_MAX];
	int nf = split(line, f);

	if (nf < 0) {
		kb_errmsg_setf(err, "empty field or too many fields");
		return KB_EPROTO;
	}
	if (strcmp(f[0], "user") == 0)
		return line_user(db, f, nf, err);
	if (strcmp(f[0], "role") == 0)
		return line_role(db, f, nf, err);
	if (strcmp(f[0], "perm") == 0)
		return line_perm(db, f, nf, err);
	kb_errmsg_setf(err, "unknown record '%.16s'", f[0]);
	return KB_EPROTO;
}

/* The root user and its Admin on the root entity must be there. */
static int check_root(const struct hostd_auth_db *db, struct kb_errmsg *err)
{
	if (!hostd_auth_user_get(db, HOSTD_AUTH_ROOT_USER)) {
		kb_errmsg_setf(err, "no user root");
		return KB_EPROTO;
	}
	for (size_t i = 0; i < db->nperms; i++) {
		const struct hostd_auth_perm *p = &db->perms[i];

		if (!p->group && strcmp(p->principal, HOSTD_AUTH_ROOT_USER) == 0 &&
		    strcmp(p->entity, HOSTD_AUTH_ROOT_ENTITY) == 0 && p->propagate &&
		    strcmp(p->role, "Admin") == 0)
			return 0;
	}
	kb_errmsg_setf(err, "user root lacks Admin (propagating) on the root entity");
	return KB_EPROTO;
}

int hostd_auth_db_decode(const void *data, size_t len, struct hostd_auth_db **out,
			 struct kb_errmsg *err)
{
	const char *p = data, *end = p + len;
	struct hostd_auth_db *db;
	char *line;
	unsigned lineno = 0;
	int rv;

	if (len > HOSTD_AUTH_FILE_MAX) {
		kb_errmsg_setf(err, "%zu bytes, at most %u allowed", len, HOSTD_AUTH_FILE_MAX);
		return KB_ETOOBIG;
	}
	line = kb_malloc(LINE_MAX_B + 1);
	if (!line)
		goto err_nomem;
	rv = hostd_auth_db_create(&db);
	if (rv)
		goto err_line_nomem;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		lineno++;
		if (!nl) {
			kb_errmsg_setf(err, "line %u: no newline at the end", lineno);
			rv = KB_EPROTO;
			goto err_db;
		}
		n = (size_t)(nl - p);
		if (n > LINE_MAX_B) {
			kb_errmsg_setf(err, "line %u: longer than %d bytes", lineno, LINE_MAX_B);
			rv = KB_EPROTO;
			goto err_db;
		}
		memcpy(line, p, n);
		line[n] = 0;
		p = nl + 1;
		if (strlen(line) != n) {
			kb_errmsg_setf(err, "line %u: NUL byte", lineno);
			rv = KB_EPROTO;
			goto err_db;
		}
		if (lineno == 1) {
			if (strncmp(line, "keel-auth ", 10) != 0) {
				kb_errmsg_setf(err, "line 1: not a keel-auth file");
				rv = KB_EPROTO;
				goto err_db;
			}
			if (strcmp(line, HEADER) != 0) {
				kb_errmsg_setf(err, "line 1: unsupported version '%.16s'",
					       line + 10);
				rv = KB_EVERSION;
				goto err_db;
			}
			continue;
		}
		rv = decode_line(db, line, err);
		if (rv) {
			/* Anything the record layer refused is malformed input here. */
			if (rv != -ENOMEM)
				rv = KB_EPROTO;
			kb_errmsg_wrapf(err, "line %u", lineno);
			goto err_db;
		}
	}
	if (lineno == 0) {
		kb_errmsg_setf(err, "empty");
		rv = KB_EPROTO;
		goto err_db;
	}
	rv = check_root(db, err);
	if (rv)
		goto err_db;
	explicit_bzero(line, LINE_MAX_B + 1);
	kb_free(line);
	db->generation = 0;
	*out = db;
	return 0;

err_db:
	hostd_auth_db_destroy(db);
	explicit_bzero(line, LINE_MAX_B + 1);
	kb_free(line);
	return rv;
err_line_nomem:
	kb_free(line);
err_nomem:
	kb_errmsg_setf(err, "out of memory");
	return -ENOMEM;
}

/* ---- files ------------------------------------------------------------------------------ */

int hostd_auth_db_save(const struct hostd_auth_db *db, const char *path, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, HOSTD_AUTH_FILE_MAX);
	rv = hostd_auth_db_encode(db, &b);
	if (rv) {
		kb_errmsg_setf(err, "%s: encoding: %s", path, kb_strerror(rv));
		goto out;
	}
	rv = kb_file_write_atomic(path, b.data, b.len, 0600, err);
out:
	kb_buf_close(&b);
	return rv;
}

int hostd_auth_db_load(const char *path, struct hostd_auth_db **out, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, 0);
	rv = kb_file_read_small(path, HOSTD_AUTH_FILE_MAX, &b, err);
	if (rv)
		goto out;
	rv = hostd_auth_db_decode(b.data, b.len, out, err);
	if (rv)
		kb_errmsg_wrapf(err, "%s", path);
out:
	kb_buf_close(&b);
	return rv;
}
