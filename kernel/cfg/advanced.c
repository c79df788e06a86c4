/*
 * The host's advanced settings, etc/keel/advanced.conf in the config store: one
 * "Key = value" per line, '#' starts a comment line, blank lines are ignored. Known keys
 * only, each at most once, so a typo is refused instead of silently doing nothing:
 *
 *   Misc.LogLevel = error|warn|info|debug|trace   vmkernel's log level (instead of
 *                                                 --log-level while it is set)
 *   Migrate.Encrypt = 1|0                         vMotion streams from this host sealed
 *                                                 with AES-GCM (default 1)
 *   Migrate.StreamsPerAdapter = 1..8              vMotion streams per VMotion adapter for
 *                                                 migrations from this host (default 2)
 *   Mem.AllocGuestLargePage = 1|0                 VMs started here get 2 MiB pages from
 *                                                 the host's pool when it can hold them
 *                                                 (vmx --large-pages; default 1)
 *
 * The parser is strict and bounded (the file is at most VMK_CFG_FILE_MAX bytes, a line at
 * most 1024): a NUL, a control character, a line without '=', an unknown or repeated key
 * or a bad value fails with the line number. The store checks the file with it before a
 * put or an import takes effect, so a bad file is never stored.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/cfg/cfg.h"
#include "kernel/net/net.h"

#define LINE_MAX_BYTES 1024

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && isblank((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isblank((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static bool key_is(const char *key, size_t kn, const char *name)
{
	return kn == strlen(name) && memcmp(key, name, kn) == 0;
}

static int twice(unsigned no, const char *name, struct kb_errmsg *err)
{
	kb_errmsg_setf(err, "line %u: %s is set twice", no, name);
	return KB_ECONFIG;
}

/* 1 for 1/on/true/yes, 0 for 0/off/false/no, -1 otherwise. */
static int bool_parse(const char *v)
{
	static const char *const on[] = {"1", "on", "true", "yes"}, *const off[] = {"0", "off",
										    "false", "no"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, on[i]) == 0)
			return 1;
		if (strcasecmp(v, off[i]) == 0)
			return 0;
	}
	return -1;
}

static int parse_line(const char *line, size_t n, unsigned no, struct vmk_cfg_advanced *out,
		      struct kb_errmsg *err)
{
	const char *eq, *key, *val;
	size_t kn, vn;
	char v[64];

	trim(&line, &n);
	if (n == 0 || line[0] == '#')
		return 0;
	eq = memchr(line, '=', n);
	if (eq == NULL) {
		kb_errmsg_setf(err, "line %u: want \"Key = value\"", no);
		return KB_ECONFIG;
	}
	key = line;
	kn = (size_t)(eq - line);
	val = eq + 1;
	vn = n - kn - 1;
	trim(&key, &kn);
	trim(&val, &vn);
	if (vn >= sizeof(v)) {
		kb_errmsg_setf(err, "line %u: the value is longer than %zu bytes", no,
			       sizeof(v) - 1);
		return KB_ECONFIG;
	}
	memcpy(v, val, vn);
	v[vn] = '\0';
	if (key_is(key, kn, "Misc.LogLevel")) {
		int level = kb_log_level_parse(v);
		if (level < 0) {
			kb_errmsg_setf(err,
				       "line %u: Misc.LogLevel must be error, warn, info, debug "
				       "or trace",
				       no);
			return KB_ECONFIG;
		}
		if (out->log_level >= 0)
			return twice(no, "Misc.LogLevel", err);
		out->log_level = level;
		return 0;
	}
	if (key_is(key, kn, "Migrate.Encrypt")) {
		int on = bool_parse(v);
		if (on < 0) {
			kb_errmsg_setf(err, "line %u: Migrate.Encrypt must be 1 or 0 (on, off)",
				       no);
			return KB_ECONFIG;
		}
		if (out->migrate_encrypt >= 0)
			return twice(no, "Migrate.Encrypt", err);
		out->migrate_encrypt = on;
		return 0;
	}
	if (key_is(key, kn, "Migrate.StreamsPerAdapter")) {
		char *e = NULL;
		unsigned long streams = strtoul(v, &e, 10);
		if (!isdigit((unsigned char)v[0]) || *e != '\0' || streams < 1 ||
		    streams > VMK_CFG_MIGRATE_STREAMS_MAX) {
			kb_errmsg_setf(err, "line %u: Migrate.StreamsPerAdapter must be 1..%d", no,
				       VMK_CFG_MIGRATE_STREAMS_MAX);
			return KB_ECONFIG;
		}
		if (out->migrate_streams > 0)
			return twice(no, "Migrate.StreamsPerAdapter", err);
		out->migrate_streams = (int)streams;
		return 0;
	}
	if (key_is(key, kn, "Mem.AllocGuestLargePage")) {
		int on = bool_parse(v);
		if (on < 0) {
			kb_errmsg_setf(err,
				       "line %u: Mem.AllocGuestLargePage must be 1 or 0 (on, off)",
				       no);
			return KB_ECONFIG;
		}
		if (out->large_pages >= 0)
			return twice(no, "Mem.AllocGuestLargePage", err);
		out->large_pages = on;
		return 0;
	}
	kb_errmsg_setf(err,
		       "line %u: unknown setting \"%.*s\" (known: Misc.LogLevel, Migrate.Encrypt, "
		       "Migrate.StreamsPerAdapter, Mem.AllocGuestLargePage)",
		       no, (int)(kn > 64 ? 64 : kn), key);
	return KB_ECONFIG;
}

int vmk_cfg_advanced_parse(const void *text, size_t len, struct vmk_cfg_advanced *out,
			   struct kb_errmsg *err)
{
	const char *p = text, *end = p + len;
	unsigned no = 0;

	out->log_level = -1;
	out->migrate_encrypt = -1;
	out->migrate_streams = 0;
	out->large_pages = -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch != '\n' && ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
			kb_errmsg_setf(err, "byte %zu: control character %#x", i, ch);
			return KB_ECONFIG;
		}
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int rv;

		no++;
		if (n > LINE_MAX_BYTES) {
			kb_errmsg_setf(err, "line %u: longer than %d bytes", no, LINE_MAX_BYTES);
			return KB_ECONFIG;
		}
		rv = parse_line(p, n, no, out, err);
		if (rv < 0)
			return rv;
		p += n + (nl != NULL);
	}
	return 0;
}

/* hostd's user database (its format: docs/hostd-auth.md; hostd decodes it strictly and
 * keeps its last good copy when it does not): the store checks only that it is one,
 * with root's user and root's Admin permission, so no put makes it plainly unusable. */
int vmk_cfg_auth_check(const void *data, size_t len, struct kb_errmsg *err)
{
	static const char head[] = "keel-auth 1\n";
	static const char root_perm[] = "\nperm user root Admin root propagate\n";
	const char *p = data;

	if (len < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1) != 0) {
		kb_errmsg_setf(err, "not a user database (the first line must be \"keel-auth 1\")");
		return KB_ECONFIG;
	}
	if (p[len - 1] != '\n') {
		kb_errmsg_setf(err, "not a user database (no newline at its end)");
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c != '\n' && (c < 0x20 || c > 0x7e)) {
			kb_errmsg_setf(err, "not a user database (byte 0x%02x at offset %zu)", c,
				       i);
			return KB_ECONFIG;
		}
	}
	if (!memmem(p, len, "\nuser root ", 11) ||
	    !memmem(p + sizeof(head) - 2, len - (sizeof(head) - 2), root_perm,
		    sizeof(root_perm) - 1)) {
		kb_errmsg_setf(err, "not a user database hostd can use (no user root with Admin on "
				    "the root entity); users are changed through hostd's API");
		return KB_ECONFIG;
	}
	return 0;
}

int vmk_cfg_contents_check(const char *path, const void *data, size_t len, struct kb_errmsg *err)
{
	struct vmk_cfg_advanced adv;
	int rv;

	if (strcmp(path, VMK_NET_CFG_PATH) == 0)
		rv = vmk_net_conf_check(data, len, err);
	else if (strcmp(path, VMK_CFG_ADVANCED) == 0)
		rv = vmk_cfg_advanced_parse(data, len, &adv, err);
	else if (strcmp(path, VMK_CFG_AUTH) == 0)
		rv = vmk_cfg_auth_check(data, len, err);
	else
		return 0;
	if (rv < 0)
		kb_errmsg_wrapf(err, "%s", path);
	return rv;
}
