/*
 * The host's advanced settings, etc/keel/advanced.conf in the config store: one
 * "Key = value" per line, '#' starts a comment line, blank lines are ignored. Known keys
 * only, each at most once, so a typo is refused instead of silently doing nothing:
 *
 *   Misc.LogLevel = error|warn|info|debug|trace   vmkernel's log level (instead of
 *                                                 --log-level while it is set)
 *
 * The parser is strict and bounded (the file is at most VMK_CFG_FILE_MAX bytes, a line at
 * most 1024): a NUL, a control character, a line without '=', an unknown or repeated key
 * or a bad value fails with the line number. The store checks the file with it before a
 * put or an import takes effect, so a bad file is never stored.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kernel/cfg/cfg.h"

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
	if (kn == strlen("Misc.LogLevel") && memcmp(key, "Misc.LogLevel", kn) == 0) {
		int level = -1;
		if (vn < sizeof(v)) {
			memcpy(v, val, vn);
			v[vn] = '\0';
			level = kb_log_level_parse(v);
		}
		if (level < 0) {
			kb_errmsg_setf(err,
				       "line %u: Misc.LogLevel must be error, warn, info, debug "
				       "or trace",
				       no);
			return KB_ECONFIG;
		}
		if (out->log_level >= 0) {
			kb_errmsg_setf(err, "line %u: Misc.LogLevel is set twice", no);
			return KB_ECONFIG;
		}
		out->log_level = level;
		return 0;
	}
	kb_errmsg_setf(err, "line %u: unknown setting \"%.*s\" (known: Misc.LogLevel)", no,
		       (int)(kn > 64 ? 64 : kn), key);
	return KB_ECONFIG;
}

int vmk_cfg_advanced_parse(const void *text, size_t len, struct vmk_cfg_advanced *out,
			   struct kb_errmsg *err)
{
	const char *p = text, *end = p + len;
	unsigned no = 0;

	out->log_level = -1;
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

int vmk_cfg_contents_check(const char *path, const void *data, size_t len, struct kb_errmsg *err)
{
	struct vmk_cfg_advanced adv;
	int rv;

	if (strcmp(path, VMK_CFG_ADVANCED) != 0)
		return 0;
	rv = vmk_cfg_advanced_parse(data, len, &adv, err);
	if (rv < 0)
		kb_errmsg_wrapf(err, "%s", path);
	return rv;
}
