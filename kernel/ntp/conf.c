/*
 * ntp.conf (docs/ntp.md): the servers and the mode of the host's time service, and
 * chrony's configuration made from them. Used by vmntpd, by `keel host ntp set` (so a bad
 * server is refused before anything is written) and by the unit tests.
 *
 * A file that does not parse is refused as a whole with the line and the reason.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/ntp/ntp.h"

#define LINE_MAX_LEN 512

/* printf onto the end of b: 0 or -ENOMEM (KB_ETOOBIG past b's limit). */
static int buf_printf(struct kb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_printf(struct kb_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -EINVAL;
	return kb_buf_append(b, tmp, (size_t)n);
}

const char *ntp_mode_name(int mode)
{
	return mode == NTP_MODE_PRIVATE ? "private" : "system";
}

static bool host_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > NTP_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return false;
	}
	return h[0] != '-' && h[0] != '.';
}

int ntp_server_parse(const char *s, struct ntp_server *out, struct kb_errmsg *e)
{
	struct ntp_server v = {{0}};
	const char *port = NULL;
	char host[NTP_HOST_MAX + 2];
	size_t hl;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		struct in6_addr a6;

		if (!end || (size_t)(end - s - 1) > NTP_HOST_MAX)
			goto bad_host;
		hl = (size_t)(end - s - 1);
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			goto bad_host;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			goto bad_host;
	} else {
		const char *colon = strchr(s, ':');

		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (hl > NTP_HOST_MAX)
			goto bad_host;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (!host_ok(host))
			goto bad_host;
		if (colon)
			port = colon + 1;
	}
	memcpy(v.host, host, hl + 1);
	if (port) {
		char *endp;
		long p;

		errno = 0;
		p = isdigit((unsigned char)port[0]) ? strtol(port, &endp, 10) : 0;
		if (errno || p < 1 || p > 65535 || *endp != '\0') {
			kb_errmsg_setf(e, "server '%s': the port must be a number 1..65535", s);
			return KB_ECONFIG;
		}
		v.port = (uint16_t)p;
	}
	*out = v;
	return 0;
bad_host:
	kb_errmsg_setf(e,
		       "server '%s': not HOST[:PORT] (a DNS name, an IPv4 address or an IPv6 "
		       "address in [])",
		       s);
	return KB_ECONFIG;
}

void ntp_server_fmt(const struct ntp_server *s, char *out, size_t size)
{
	bool v6 = strchr(s->host, ':') != NULL;

	if (s->port)
		snprintf(out, size, v6 ? "[%s]:%u" : "%s:%u", s->host, s->port);
	else
		snprintf(out, size, v6 ? "[%s]" : "%s", s->host);
}

static bool same_server(const struct ntp_server *a, const struct ntp_server *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

/* Adds s to c unless it is there or c is full. */
static int add_server(struct ntp_conf *c, const struct ntp_server *s, const char *text,
		      struct kb_errmsg *e)
{
	for (size_t i = 0; i < c->n_servers; i++) {
		if (same_server(&c->servers[i], s)) {
			kb_errmsg_setf(e, "server '%s' is given twice", text);
			return KB_ECONFIG;
		}
	}
	if (c->n_servers == NTP_SERVERS_MAX) {
		kb_errmsg_setf(e, "at most %d servers", NTP_SERVERS_MAX);
		return KB_ECONFIG;
	}
	c->servers[c->n_servers++] = *s;
	return 0;
}

int ntp_servers_parse_list(const char *list, struct ntp_conf *c, struct kb_errmsg *e)
{
	struct ntp_conf v = *c;
	const char *p = list;

	v.n_servers = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[NTP_HOST_MAX + 16];
		struct ntp_server s;
		int rv;

		if (n == 0) {
			kb_errmsg_setf(e, "servers '%s': an empty item", list);
			return KB_ECONFIG;
		}
		if (n >= sizeof(item)) {
			kb_errmsg_setf(e, "servers '%s': an item is too long", list);
			return KB_ECONFIG;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		rv = ntp_server_parse(item, &s, e);
		if (rv == 0)
			rv = add_server(&v, &s, item, e);
		if (rv)
			return rv;
		if (!comma)
			break;
		p = comma + 1;
	}
	*c = v;
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static int parse_line(char *line, unsigned no, struct ntp_conf *v, bool *seen_mode, bool *seen_poll,
		      struct kb_errmsg *e)
{
	char *eq = strchr(line, '=');
	char *key, *val;
	int rv;

	if (!eq) {
		kb_errmsg_setf(e, "line %u: not 'key = value'", no);
		return KB_ECONFIG;
	}
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	if (strcmp(key, "server") == 0) {
		struct ntp_server s;

		rv = ntp_server_parse(val, &s, e);
		if (rv == 0)
			rv = add_server(v, &s, val, e);
		if (rv)
			kb_errmsg_wrapf(e, "line %u", no);
		return rv;
	}
	if (strcmp(key, "mode") == 0) {
		if (*seen_mode)
			goto twice;
		*seen_mode = true;
		if (strcmp(val, "system") == 0)
			v->mode = NTP_MODE_SYSTEM;
		else if (strcmp(val, "private") == 0)
			v->mode = NTP_MODE_PRIVATE;
		else {
			kb_errmsg_setf(e, "line %u: mode '%s': must be system or private", no, val);
			return KB_ECONFIG;
		}
		return 0;
	}
	if (strcmp(key, "poll") == 0) {
		char *endp;
		long p;

		if (*seen_poll)
			goto twice;
		*seen_poll = true;
		errno = 0;
		p = strtol(val, &endp, 10);
		if (errno || endp == val || *endp != '\0' || p < NTP_POLL_MIN || p > NTP_POLL_MAX) {
			kb_errmsg_setf(e, "line %u: poll '%s': must be a number %d..%d", no, val,
				       NTP_POLL_MIN, NTP_POLL_MAX);
			return KB_ECONFIG;
		}
		v->poll_set = true;
		v->poll = (int)p;
		return 0;
	}
	kb_errmsg_setf(e, "line %u: unknown key '%s'", no, key);
	return KB_ECONFIG;
twice:
	kb_errmsg_setf(e, "line %u: '%s' is given twice", no, key);
	return KB_ECONFIG;
}

int ntp_conf_parse(const char *text, size_t len, struct ntp_conf *out, struct kb_errmsg *e)
{
	struct ntp_conf v = {.mode = NTP_MODE_SYSTEM};
	bool seen_mode = false, seen_poll = false;
	char line[LINE_MAX_LEN];
	unsigned no = 0;
	size_t i = 0;

	if (len > NTP_CONF_MAX) {
		kb_errmsg_setf(e, "ntp.conf is %zu bytes, at most %d", len, NTP_CONF_MAX);
		return KB_ETOOBIG;
	}
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		char *l;
		int rv;

		no++;
		if (n >= sizeof(line)) {
			kb_errmsg_setf(e, "line %u: longer than %d bytes", no, LINE_MAX_LEN - 1);
			return KB_ECONFIG;
		}
		if (memchr(text + i, '\0', n)) {
			kb_errmsg_setf(e, "line %u: a NUL byte", no);
			return KB_ECONFIG;
		}
		memcpy(line, text + i, n);
		line[n] = '\0';
		i += n + 1;
		l = trim(line);
		if (l[0] == '\0' || l[0] == '#')
			continue;
		rv = parse_line(l, no, &v, &seen_mode, &seen_poll, e);
		if (rv)
			return rv;
	}
	if (v.n_servers == 0) {
		kb_errmsg_setf(e, "no server");
		return KB_ECONFIG;
	}
	*out = v;
	return 0;
}

int ntp_conf_write(const struct ntp_conf *c, struct kb_buf *out)
{
	char s[NTP_HOST_MAX + 16];
	int rv = 0;

	rv = buf_printf(out, "# vmntpd: the host's NTP servers (docs/ntp.md)\n");
	for (size_t i = 0; rv >= 0 && i < c->n_servers; i++) {
		ntp_server_fmt(&c->servers[i], s, sizeof(s));
		rv = buf_printf(out, "server = %s\n", s);
	}
	if (rv >= 0)
		rv = buf_printf(out, "mode = %s\n", ntp_mode_name(c->mode));
	if (rv >= 0 && c->poll_set)
		rv = buf_printf(out, "poll = %d\n", c->poll);
	return rv < 0 ? rv : 0;
}

int ntp_chrony_sources(const struct ntp_conf *c, struct kb_buf *out)
{
	int rv = 0;

	for (size_t i = 0; rv >= 0 && i < c->n_servers; i++) {
		const struct ntp_server *s = &c->servers[i];

		rv = buf_printf(out, "server %s", s->host);
		if (rv >= 0 && s->port)
			rv = buf_printf(out, " port %u", s->port);
		if (rv >= 0)
			rv = buf_printf(out, " iburst");
		if (rv >= 0 && c->poll_set)
			rv = buf_printf(out, " minpoll %d maxpoll %d", c->poll, c->poll);
		if (rv >= 0)
			rv = buf_printf(out, "\n");
	}
	return rv < 0 ? rv : 0;
}

int ntp_chrony_private_conf(const struct ntp_conf *c, const char *dir, struct kb_buf *out)
{
	int rv = buf_printf(out,
			    "# made by vmntpd from etc/keel/ntp.conf (docs/ntp.md)\n"
			    "port 0\n"
			    "cmdport 0\n"
			    "bindcmdaddress %s/%s\n"
			    "pidfile %s/chronyd.pid\n"
			    "driftfile %s/chronyd.drift\n",
			    dir, NTP_SOCK_NAME, dir, dir);

	if (rv < 0)
		return rv;
	return ntp_chrony_sources(c, out);
}
