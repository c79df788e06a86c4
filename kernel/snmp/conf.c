/*
 * keel-snmpd's configuration: etc/keel/snmp.conf (parser and writer) and the snmpd drop-in
 * written from it (docs/snmp.md). keel uses the same code, so `keel host snmp enable`
 * refuses what the daemon would refuse before anything is written.
 *
 * snmp.conf is untrusted text: every line is checked and a file with one bad line is
 * refused as a whole with "line N: ..." in the error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/snmp/ksnmp.h"

void ksnmp_conf_defaults(struct ksnmp_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->community, sizeof(c->community), "public");
	snprintf(c->agentx_socket, sizeof(c->agentx_socket), "%s", KSNMP_AGENTX_DEFAULT);
	snprintf(c->dropin, sizeof(c->dropin), "%s", KSNMP_DROPIN_DEFAULT);
}

int ksnmp_community_check(const char *s, struct kb_errmsg *err)
{
	size_t n = strlen(s);

	if (n == 0 || n > KSNMP_COMMUNITY_MAX) {
		kb_errmsg_setf(err, "a community is 1 to %d characters", KSNMP_COMMUNITY_MAX);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch >= 127 || ch == '#' || ch == '"' || ch == '\'' || ch == '\\') {
			kb_errmsg_setf(err, "a community is printable ASCII without spaces, '#', "
					    "quotes or backslashes");
			return KB_ECONFIG;
		}
	}
	return 0;
}

int ksnmp_path_check(const char *what, const char *s, struct kb_errmsg *err)
{
	if (s[0] != '/') {
		kb_errmsg_setf(err, "%s '%s' must be an absolute path", what, s);
		return KB_ECONFIG;
	}
	if (strlen(s) >= KSNMP_PATH_MAX) {
		kb_errmsg_setf(err, "%s is longer than %d bytes", what, KSNMP_PATH_MAX - 1);
		return KB_ECONFIG;
	}
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 127) {
			kb_errmsg_setf(err, "%s must not hold spaces or control characters", what);
			return KB_ECONFIG;
		}
	}
	return 0;
}

int ksnmp_sink_parse(const char *s, struct ksnmp_sink *out, struct kb_errmsg *err)
{
	const char *colon = strrchr(s, ':');
	size_t hlen = colon ? (size_t)(colon - s) : strlen(s);

	memset(out, 0, sizeof(*out));
	if (hlen == 0) {
		kb_errmsg_setf(err, "trap sink '%s': no host", s);
		return KB_ECONFIG;
	}
	if (hlen > KSNMP_HOST_MAX) {
		kb_errmsg_setf(err, "trap sink '%s': the host is longer than %d bytes", s,
			       KSNMP_HOST_MAX);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < hlen; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_')) {
			kb_errmsg_setf(err,
				       "trap sink '%s': the host must be a name or an IPv4 "
				       "address",
				       s);
			return KB_ECONFIG;
		}
	}
	memcpy(out->host, s, hlen);
	out->port = KSNMP_TRAP_PORT;
	if (colon) {
		char *end;
		errno = 0;
		unsigned long p = strtoul(colon + 1, &end, 10);
		if (colon[1] < '0' || colon[1] > '9' || *end || errno || p == 0 || p > 65535) {
			kb_errmsg_setf(err, "trap sink '%s': the port must be a number 1..65535",
				       s);
			return KB_ECONFIG;
		}
		out->port = (uint16_t)p;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int ksnmp_conf_parse(const void *text, size_t len, struct ksnmp_conf *out, struct kb_errmsg *err)
{
	const char *p = text, *end = p + len;
	struct kb_errmsg why = {{0}};
	unsigned seen = 0; /* bit per single-valued key */
	char line[2048];
	int lineno = 0;

	ksnmp_conf_defaults(out);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *key, *val, *eq;
		int bit = -1;

		lineno++;
		if (n >= sizeof(line)) {
			kb_errmsg_setf(err, "line %d: longer than %zu bytes", lineno,
				       sizeof(line) - 1);
			return KB_ECONFIG;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl ? nl + 1 : end;
		if (strlen(line) != n) {
			kb_errmsg_setf(err, "line %d: holds a NUL byte", lineno);
			return KB_ECONFIG;
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			kb_errmsg_setf(err, "line %d: want 'key = value'", lineno);
			return KB_ECONFIG;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		if (strcmp(key, "enabled") == 0) {
			bit = 0;
			if (strcmp(val, "yes") == 0)
				out->enabled = true;
			else if (strcmp(val, "no") == 0)
				out->enabled = false;
			else {
				kb_errmsg_setf(err, "line %d: enabled: want yes or no", lineno);
				return KB_ECONFIG;
			}
		} else if (strcmp(key, "community") == 0) {
			bit = 1;
			if (ksnmp_community_check(val, &why)) {
				kb_errmsg_setf(err, "line %d: community: %s", lineno, why.msg);
				return KB_ECONFIG;
			}
			snprintf(out->community, sizeof(out->community), "%s", val);
		} else if (strcmp(key, "trap_sink") == 0) {
			if (out->n_sinks == KSNMP_SINKS_MAX) {
				kb_errmsg_setf(err, "line %d: at most %d trap sinks", lineno,
					       KSNMP_SINKS_MAX);
				return KB_ECONFIG;
			}
			if (ksnmp_sink_parse(val, &out->sinks[out->n_sinks], &why)) {
				kb_errmsg_setf(err, "line %d: %s", lineno, why.msg);
				return KB_ECONFIG;
			}
			for (size_t i = 0; i < out->n_sinks; i++) {
				if (strcmp(out->sinks[i].host, out->sinks[out->n_sinks].host) ==
					0 &&
				    out->sinks[i].port == out->sinks[out->n_sinks].port) {
					kb_errmsg_setf(err,
						       "line %d: trap sink '%s' is given twice",
						       lineno, val);
					return KB_ECONFIG;
				}
			}
			out->n_sinks++;
		} else if (strcmp(key, "agentx_socket") == 0 || strcmp(key, "dropin") == 0) {
			bool ax = key[0] == 'a';
			bit = ax ? 2 : 3;
			if (ksnmp_path_check(key, val, &why)) {
				kb_errmsg_setf(err, "line %d: %s", lineno, why.msg);
				return KB_ECONFIG;
			}
			snprintf(ax ? out->agentx_socket : out->dropin, KSNMP_PATH_MAX, "%s", val);
		} else {
			kb_errmsg_setf(err, "line %d: unknown key '%s'", lineno, key);
			return KB_ECONFIG;
		}
		if (bit >= 0) {
			if (seen & (1u << bit)) {
				kb_errmsg_setf(err, "line %d: %s is given twice", lineno, key);
				return KB_ECONFIG;
			}
			seen |= 1u << bit;
		}
	}
	return 0;
}

static int appendf(struct kb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(struct kb_buf *b, const char *fmt, ...)
{
	char tmp[2200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENOMEM;
	return kb_buf_append(b, tmp, (size_t)n) < 0 ? -ENOMEM : 0;
}

int ksnmp_conf_render(const struct ksnmp_conf *c, struct kb_buf *out)
{
	int rv = appendf(out,
			 "# keel-snmpd: SNMP subagent (docs/snmp.md)\n"
			 "enabled = %s\ncommunity = %s\n",
			 c->enabled ? "yes" : "no", c->community);
	for (size_t i = 0; rv == 0 && i < c->n_sinks; i++)
		rv = appendf(out, "trap_sink = %s:%u\n", c->sinks[i].host, c->sinks[i].port);
	if (rv == 0)
		rv = appendf(out, "agentx_socket = %s\ndropin = %s\n", c->agentx_socket, c->dropin);
	return rv;
}

int ksnmp_dropin_render(const struct ksnmp_conf *c, struct kb_buf *out)
{
	int rv = appendf(out,
			 "# Written by `keel host snmp enable` from the host's %s\n"
			 "# (docs/snmp.md). Changes here are overwritten.\n"
			 "master agentx\n"
			 "agentXSocket %s\n"
			 "agentXPerms 0660 0770\n"
			 "view keelView included .1.3.6.1.2.1.1\n"
			 "view keelView included .1.3.6.1.4.1.%u\n"
			 "rocommunity %s default -V keelView\n",
			 KSNMP_CONF_PATH, c->agentx_socket, KSNMP_ENTERPRISE, c->community);
	if (rv == 0 && c->n_sinks)
		rv = appendf(out, "trapcommunity %s\n", c->community);
	for (size_t i = 0; rv == 0 && i < c->n_sinks; i++)
		rv = appendf(out, "trap2sink %s:%u %s\n", c->sinks[i].host, c->sinks[i].port,
			     c->community);
	return rv;
}
