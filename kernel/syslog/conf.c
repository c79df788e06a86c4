/*
 * syslog.conf: vmsyslogd's configuration, a file of vmkernel's config store
 * (etc/keel/syslog.conf), written by `keel host syslog set` or `keel host config put`.
 *
 *     # comments and blank lines are ignored
 *     remote = tls://198.18.0.9:6514     (repeatable, at most VSL_REMOTES_MAX)
 *     remote = udp://127.0.0.1:514
 *     ca = /etc/keel/syslog-ca.pem       (CA that signs the tls:// servers' certificates)
 *     buffer_lines = 10000               (messages kept per remote while it is away)
 *
 * The text is untrusted: every line is checked and the first mistake refuses the whole
 * file ("line 3: remote 'tcp://x:0': port must be 1..65535"). The same parser checks
 * `keel host syslog set`'s options before anything is written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "kernel/syslog/vsl.h"

const char *vsl_proto_name(enum vsl_proto p)
{
	return p == VSL_UDP ? "udp" : p == VSL_TCP ? "tcp" : "tls";
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

/* A DNS name: labels of [A-Za-z0-9-] of 1..63 bytes, not starting or ending with '-'. */
static bool host_name_valid(const char *h, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > VSL_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!host_char(h[i]))
			return false;
		if (h[i] == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (label == 0 && h[i] == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return h[n - 1] != '-';
}

int vsl_url_parse(const char *url, struct vsl_remote_cfg *out, struct kb_errmsg *err)
{
	static const struct {
		const char *scheme;
		enum vsl_proto proto;
		uint16_t port;
	} schemes[] = {{"udp://", VSL_UDP, VSL_PORT_UDP},
		       {"tcp://", VSL_TCP, VSL_PORT_TCP},
		       {"tls://", VSL_TLS, VSL_PORT_TLS}};
	const char *p = NULL, *host, *end;
	size_t hlen;
	bool v6 = false;

	memset(out, 0, sizeof(*out));
	if (strlen(url) >= VSL_URL_MAX - 8) {
		kb_errmsg_setf(err, "remote URL longer than %d bytes", VSL_URL_MAX - 9);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncmp(url, schemes[i].scheme, 6) == 0) {
			p = url + 6;
			out->proto = schemes[i].proto;
			out->port = schemes[i].port;
		}
	}
	if (p == NULL) {
		kb_errmsg_setf(err, "remote '%s': want udp://, tcp:// or tls:// HOST[:PORT]", url);
		return KB_ECONFIG;
	}
	host = p;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end == NULL) {
			kb_errmsg_setf(err, "remote '%s': '[' without ']'", url);
			return KB_ECONFIG;
		}
		host = p + 1;
		hlen = (size_t)(end - host);
		p = end + 1;
		v6 = true;
	} else {
		hlen = strcspn(p, ":/?#@");
		p += hlen;
	}
	if (hlen == 0) {
		kb_errmsg_setf(err, "remote '%s': no host", url);
		return KB_ECONFIG;
	}
	if (hlen > VSL_HOST_MAX) {
		kb_errmsg_setf(err, "remote '%s': host longer than %d bytes", url, VSL_HOST_MAX);
		return KB_ECONFIG;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (v6) {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, out->host, &a6) != 1) {
			kb_errmsg_setf(err, "remote '%s': '%s' is not an IPv6 address", url,
				       out->host);
			return KB_ECONFIG;
		}
	} else if (!host_name_valid(out->host, hlen)) {
		kb_errmsg_setf(err,
			       "remote '%s': bad host '%.*s' (a name or IPv4 address; IPv6 in [])",
			       url, (int)hlen, host);
		return KB_ECONFIG;
	}
	if (*p == ':') {
		char *e;
		p++;
		if (*p < '0' || *p > '9') {
			kb_errmsg_setf(err, "remote '%s': the port must be a number 1..65535", url);
			return KB_ECONFIG;
		}
		errno = 0;
		unsigned long port = strtoul(p, &e, 10);
		if (errno || e == p || port == 0 || port > 65535 || e - p > 5) {
			kb_errmsg_setf(err, "remote '%s': the port must be a number 1..65535", url);
			return KB_ECONFIG;
		}
		out->port = (uint16_t)port;
		p = e;
	}
	if (*p != '\0') {
		kb_errmsg_setf(err, "remote '%s': unexpected '%s' after the host and port", url, p);
		return KB_ECONFIG;
	}
	snprintf(out->url, sizeof(out->url), v6 ? "%s://[%s]:%u" : "%s://%s:%u",
		 vsl_proto_name(out->proto), out->host, out->port);
	return 0;
}

int vsl_conf_check_ca(const char *path, struct kb_errmsg *err)
{
	size_t n = strlen(path);

	if (path[0] != '/') {
		kb_errmsg_setf(err, "ca '%s': must be an absolute path", path);
		return KB_ECONFIG;
	}
	if (n >= VSL_CA_MAX) {
		kb_errmsg_setf(err, "ca: path longer than %d bytes", VSL_CA_MAX - 1);
		return KB_ECONFIG;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f) {
			kb_errmsg_setf(err, "ca: control character in the path");
			return KB_ECONFIG;
		}
	return 0;
}

int vsl_conf_parse_buffer(const char *s, uint32_t *out, struct kb_errmsg *err)
{
	unsigned long long v = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 12; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (i == 0 || s[i] != '\0' || v < 1 || v > VSL_BUFFER_MAX) {
		kb_errmsg_setf(err, "buffer_lines '%s': want a number of lines 1..%u", s,
			       VSL_BUFFER_MAX);
		return KB_ECONFIG;
	}
	*out = (uint32_t)v;
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

static int parse_line(char *line, struct vsl_conf *out, bool *seen_ca, bool *seen_buf,
		      struct kb_errmsg *err)
{
	char *eq, *key, *val;
	int rv;

	line = trim(line);
	if (line[0] == '\0' || line[0] == '#')
		return 0;
	eq = strchr(line, '=');
	if (eq == NULL) {
		kb_errmsg_setf(err, "want 'key = value'");
		return KB_ECONFIG;
	}
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	for (char *c = val; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t') {
			kb_errmsg_setf(err, "control character in the value of %s", key);
			return KB_ECONFIG;
		}
	if (strcmp(key, "remote") == 0) {
		struct vsl_remote_cfg rc;
		if (out->n_remotes == VSL_REMOTES_MAX) {
			kb_errmsg_setf(err, "more than %d remotes", VSL_REMOTES_MAX);
			return KB_ECONFIG;
		}
		rv = vsl_url_parse(val, &rc, err);
		if (rv)
			return rv;
		for (size_t i = 0; i < out->n_remotes; i++)
			if (strcmp(out->remotes[i].url, rc.url) == 0) {
				kb_errmsg_setf(err, "remote %s is named twice", rc.url);
				return KB_ECONFIG;
			}
		out->remotes[out->n_remotes++] = rc;
	} else if (strcmp(key, "ca") == 0) {
		if (*seen_ca) {
			kb_errmsg_setf(err, "ca is set twice");
			return KB_ECONFIG;
		}
		rv = vsl_conf_check_ca(val, err);
		if (rv)
			return rv;
		snprintf(out->ca, sizeof(out->ca), "%s", val);
		*seen_ca = true;
	} else if (strcmp(key, "buffer_lines") == 0) {
		if (*seen_buf) {
			kb_errmsg_setf(err, "buffer_lines is set twice");
			return KB_ECONFIG;
		}
		rv = vsl_conf_parse_buffer(val, &out->buffer_lines, err);
		if (rv)
			return rv;
		*seen_buf = true;
	} else {
		kb_errmsg_setf(err, "unknown key '%.64s' (known: remote, ca, buffer_lines)", key);
		return KB_ECONFIG;
	}
	return 0;
}

int vsl_conf_parse(const void *text, size_t len, struct vsl_conf *out, struct kb_errmsg *err)
{
	const char *p = text, *end = p + len;
	bool seen_ca = false, seen_buf = false;
	char line[1024];
	unsigned lineno = 0;

	memset(out, 0, sizeof(*out));
	out->buffer_lines = VSL_BUFFER_DEFAULT;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int rv;

		lineno++;
		if (n >= sizeof(line)) {
			kb_errmsg_setf(err, "line %u: longer than %zu bytes", lineno,
				       sizeof(line) - 1);
			return KB_ECONFIG;
		}
		if (memchr(p, '\0', n) != NULL) {
			kb_errmsg_setf(err, "line %u: a NUL byte", lineno);
			return KB_ECONFIG;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		rv = parse_line(line, out, &seen_ca, &seen_buf, err);
		if (rv) {
			kb_errmsg_wrapf(err, "line %u", lineno);
			return rv;
		}
		p += n + (nl ? 1 : 0);
	}
	return 0;
}

int vsl_conf_render(const struct vsl_conf *c, struct kb_buf *out)
{
	static const char head[] = "# vmsyslogd: remote syslog (docs/syslog.md)\n";
	char line[VSL_CA_MAX + 64];
	int rv;

	rv = kb_buf_append(out, head, sizeof(head) - 1);
	for (size_t i = 0; rv == 0 && i < c->n_remotes; i++) {
		int n = snprintf(line, sizeof(line), "remote = %s\n", c->remotes[i].url);
		rv = kb_buf_append(out, line, (size_t)n);
	}
	if (rv == 0 && c->ca[0]) {
		int n = snprintf(line, sizeof(line), "ca = %s\n", c->ca);
		rv = kb_buf_append(out, line, (size_t)n);
	}
	if (rv == 0) {
		int n = snprintf(line, sizeof(line), "buffer_lines = %u\n", c->buffer_lines);
		rv = kb_buf_append(out, line, (size_t)n);
	}
	return rv;
}
