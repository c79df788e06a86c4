/*
 * RFC 5424 messages from the lines of Keel's logs.
 *
 * A log line "<time> <LEVEL> <ident>[<pid>]: <message>" (lib/log.h) becomes
 *
 *     <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
 *
 * with PRI = facility * 8 + severity (facility daemon; ERROR → 3 err, WARN → 4 warning,
 * INFO → 6 info, DEBUG and TRACE → 7 debug), TIMESTAMP the line's own time (RFC 3339 with
 * milliseconds, UTC), PROCID its pid, MSGID and STRUCTURED-DATA "-" and MSG the message.
 * A line of another shape (a vmx's raw output) is sent whole as MSG with severity notice,
 * the current time and PROCID "-".
 *
 * Header fields are cut to their RFC 5424 lengths (HOSTNAME 255, APP-NAME 48, PROCID 128,
 * MSGID 32) and bytes outside printable US-ASCII become '_'; control characters in MSG
 * become spaces. Over TCP and TLS each message is framed by octet counting ("LEN SP MSG",
 * RFC 6587 §3.4.1, RFC 5425 §4.3).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/syslog/vsl.h"
#include "lib/time.h"

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" exactly, as lib/time.h writes it. */
static bool stamp_valid(const char *s, size_t n)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (n != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

static int severity_of(const char *tag, size_t n)
{
	static const struct {
		const char *tag;
		int sev;
	} tags[] = {{"ERROR", 3}, {"WARN", 4}, {"INFO", 6}, {"DEBUG", 7}, {"TRACE", 7}};

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (strlen(tags[i].tag) == n && memcmp(tags[i].tag, tag, n) == 0)
			return tags[i].sev;
	return -1;
}

void vsl_line_parse(const char *line, size_t len, struct vsl_line *out)
{
	const char *p = line, *end = line + len, *sp, *lb, *rb;
	int sev;

	memset(out, 0, sizeof(*out));
	out->severity = 5;
	out->msg = line;
	out->msg_len = len;
	sp = memchr(p, ' ', len);
	if (sp == NULL || !stamp_valid(p, (size_t)(sp - p)))
		return;
	const char *lvl = sp + 1;
	sp = memchr(lvl, ' ', (size_t)(end - lvl));
	if (sp == NULL || (sev = severity_of(lvl, (size_t)(sp - lvl))) < 0)
		return;
	/* "<ident>[<pid>]: " */
	const char *ident = sp + 1;
	const char *colon = memchr(ident, ':', (size_t)(end - ident));
	if (colon == NULL || colon + 1 >= end || colon[1] != ' ')
		return;
	lb = memchr(ident, '[', (size_t)(colon - ident));
	rb = colon - 1;
	if (lb != NULL && *rb == ']' && rb - lb - 1 > 0 &&
	    rb - lb - 1 < (long)sizeof(out->procid)) {
		bool digits = true;
		for (const char *d = lb + 1; d < rb; d++)
			digits = digits && *d >= '0' && *d <= '9';
		if (digits) {
			memcpy(out->procid, lb + 1, (size_t)(rb - lb - 1));
			out->procid[rb - lb - 1] = '\0';
		}
	}
	memcpy(out->stamp, line, (size_t)(strchr(line, ' ') - line));
	out->severity = sev;
	out->msg = colon + 2;
	out->msg_len = (size_t)(end - out->msg);
}

size_t vsl_utf8_cut(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t n = len, start;

	if (n == 0)
		return 0;
	/* Walk back to the start of the last sequence; keep it only if it is whole. */
	start = n - 1;
	while (start > 0 && (b[start] & 0xC0) == 0x80 && n - start < 4)
		start--;
	uint8_t lead = b[start];
	size_t need = lead < 0x80	      ? 1
		      : (lead & 0xE0) == 0xC0 ? 2
		      : (lead & 0xF0) == 0xE0 ? 3
		      : (lead & 0xF8) == 0xF0 ? 4
					      : 1;
	return n - start >= need ? n : start;
}

/* Appends a header field: "-" when empty, else at most max printable ASCII bytes. */
static int put_field(struct kb_buf *out, const char *s, size_t max)
{
	size_t n;
	int rv;

	if (s == NULL || s[0] == '\0')
		return kb_buf_append(out, "-", 1);
	n = strnlen(s, max);
	rv = kb_buf_reserve(out, n);
	if (rv)
		return rv;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out->data[out->len++] = c >= 33 && c <= 126 ? (char)c : '_';
	}
	return 0;
}

int vsl_format(const struct vsl_msg_fields *f, size_t max, struct kb_buf *out)
{
	char head[16], stamp[VSL_STAMP_MAX];
	size_t start = out->len, room;
	int rv, n;

	n = snprintf(head, sizeof(head), "<%d>1 ", (f->facility & 23) * 8 + (f->severity & 7));
	rv = kb_buf_append(out, head, (size_t)n);
	if (f->stamp && stamp_valid(f->stamp, strlen(f->stamp))) {
		rv = rv ? rv : kb_buf_append(out, f->stamp, strlen(f->stamp));
	} else {
		kb_time_fmt(kb_wall_ns(), stamp, sizeof(stamp));
		rv = rv ? rv : kb_buf_append(out, stamp, strlen(stamp));
	}
	rv = rv ? rv : kb_buf_append(out, " ", 1);
	rv = rv ? rv : put_field(out, f->hostname, VSL_HOSTNAME_MAX);
	rv = rv ? rv : kb_buf_append(out, " ", 1);
	rv = rv ? rv : put_field(out, f->app, VSL_APP_MAX);
	rv = rv ? rv : kb_buf_append(out, " ", 1);
	rv = rv ? rv : put_field(out, f->procid, 128);
	rv = rv ? rv : kb_buf_append(out, " ", 1);
	rv = rv ? rv : put_field(out, f->msgid, 32);
	rv = rv ? rv : kb_buf_append(out, " ", 1);
	if (rv == 0 && f->sd && f->sd[0])
		rv = kb_buf_append(out, f->sd, strlen(f->sd));
	else if (rv == 0)
		rv = kb_buf_append(out, "-", 1);
	if (rv)
		return rv;
	if (f->msg_len == 0)
		return 0;
	room = out->len - start + 1 < max ? max - (out->len - start + 1) : 0;
	if (room == 0)
		return 0;
	size_t m = f->msg_len <= room ? f->msg_len : vsl_utf8_cut(f->msg, room);
	rv = kb_buf_reserve(out, m + 1);
	if (rv)
		return rv;
	out->data[out->len++] = ' ';
	for (size_t i = 0; i < m; i++) {
		unsigned char c = (unsigned char)f->msg[i];
		out->data[out->len++] = (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : (char)c;
	}
	return 0;
}

int vsl_sd_param(struct kb_buf *out, const char *name, const char *value)
{
	int rv = kb_buf_append(out, " ", 1);

	rv = rv ? rv : kb_buf_append(out, name, strlen(name));
	rv = rv ? rv : kb_buf_append(out, "=\"", 2);
	for (const char *c = value; rv == 0 && *c; c++) {
		if (*c == '"' || *c == '\\' || *c == ']')
			rv = kb_buf_append(out, "\\", 1);
		rv = rv ? rv : kb_buf_append(out, c, 1);
	}
	return rv ? rv : kb_buf_append(out, "\"", 1);
}

int vsl_frame_octets(const void *msg, size_t len, struct kb_buf *out)
{
	char head[24];
	int n = snprintf(head, sizeof(head), "%zu ", len);
	int rv = kb_buf_append(out, head, (size_t)n);

	return rv ? rv : kb_buf_append(out, msg, len);
}
