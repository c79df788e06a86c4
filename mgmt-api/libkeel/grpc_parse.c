/*
 * The gRPC wire format as libkeel reads it: pure functions over bytes, tested by
 * test_libkeel_grpc. A response from an untrusted server goes through here only: every
 * length is checked against what arrived and against the 64 MiB limit before anything is
 * used, and a bad body or status line is reported, never trusted.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mgmt-api/libkeel/grpc_parse.h"

void kl__grpc_prefix(uint8_t out[KL__PREFIX_LEN], uint32_t len)
{
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

int kl__grpc_body_announced(const uint8_t *buf, size_t len, uint32_t *announced)
{
	if (len < KL__PREFIX_LEN)
		return -EAGAIN;
	*announced =
	    (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	return 0;
}

int kl__grpc_stream_next(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			 size_t *msg_len, size_t *used)
{
	uint32_t n;

	if (kl__grpc_body_announced(buf, len, &n) != 0)
		return -EAGAIN;
	if (buf[0] == 1)
		return -ENOTSUP;
	if (buf[0] != 0)
		return -EBADMSG;
	if (n > max)
		return -EMSGSIZE;
	if (len - KL__PREFIX_LEN < n)
		return -EAGAIN;
	*msg = buf + KL__PREFIX_LEN;
	*msg_len = n;
	*used = KL__PREFIX_LEN + (size_t)n;
	return 0;
}

int kl__grpc_body_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			size_t *msg_len, char *err, size_t err_size)
{
	uint32_t n;

	*msg = NULL;
	*msg_len = 0;
	if (len == 0) {
		snprintf(err, err_size, "the response carries no message");
		return -ENODATA;
	}
	if (kl__grpc_body_announced(buf, len, &n) != 0) {
		snprintf(err, err_size, "the response ends inside a message prefix (%zu bytes)",
			 len);
		return -EBADMSG;
	}
	if (buf[0] == 1) {
		snprintf(err, err_size, "the response message is compressed (not supported)");
		return -ENOTSUP;
	}
	if (buf[0] != 0) {
		snprintf(err, err_size, "bad message flag %u in the response", buf[0]);
		return -EBADMSG;
	}
	if (n > max) {
		snprintf(err, err_size, "the response message has %u bytes (at most %zu)", n, max);
		return -EMSGSIZE;
	}
	if (len - KL__PREFIX_LEN < n) {
		snprintf(err, err_size,
			 "the response ends inside its message (%zu of %u bytes arrived)",
			 len - KL__PREFIX_LEN, n);
		return -EBADMSG;
	}
	if (len - KL__PREFIX_LEN > n) {
		snprintf(err, err_size, "the response has %zu bytes after its message",
			 len - KL__PREFIX_LEN - n);
		return -EBADMSG;
	}
	*msg = buf + KL__PREFIX_LEN;
	*msg_len = n;
	return 0;
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

size_t kl__grpc_percent_decode(const char *in, size_t n, char *out, size_t out_size)
{
	size_t o = 0;

	if (out_size == 0)
		return 0;
	for (size_t i = 0; i < n && o + 1 < out_size; i++) {
		int hi, lo;

		if (in[i] == '%' && i + 2 < n && (hi = hexval(in[i + 1])) >= 0 &&
		    (lo = hexval(in[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return o;
}

void kl__grpc_resp_init(struct kl__grpc_resp *r)
{
	memset(r, 0, sizeof(*r));
}

/* Whether line[0..len) starts with "name:" (case-insensitive); *val and *vlen: the value with
 * surrounding blanks removed. */
static bool header_is(const char *line, size_t len, const char *name, const char **val,
		      size_t *vlen)
{
	size_t nl = strlen(name);

	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	line += nl + 1;
	len -= nl + 1;
	while (len && (line[0] == ' ' || line[0] == '\t'))
		line++, len--;
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*val = line;
	*vlen = len;
	return true;
}

void kl__grpc_resp_line(struct kl__grpc_resp *r, const char *line, size_t len)
{
	const char *v;
	size_t vl;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', len);
		long code = 0;

		kl__grpc_resp_init(r);
		for (size_t i = sp ? (size_t)(sp - line) + 1 : len;
		     i < len && isdigit((unsigned char)line[i]) && code < 1000; i++)
			code = code * 10 + (line[i] - '0');
		r->http_status = code;
		return;
	}
	if (header_is(line, len, "content-type", &v, &vl)) {
		static const char ct[] = "application/grpc";
		size_t cl = sizeof(ct) - 1;

		r->grpc_content = vl >= cl && strncasecmp(v, ct, cl) == 0 &&
				  (vl == cl || v[cl] == '+' || v[cl] == ';');
	} else if (header_is(line, len, "grpc-status", &v, &vl)) {
		int code = 0;

		r->have_status = true;
		if (vl == 0 || vl > 2)
			code = -1;
		for (size_t i = 0; i < vl && code >= 0; i++)
			code = isdigit((unsigned char)v[i]) ? code * 10 + (v[i] - '0') : -1;
		r->grpc_status = code;
	} else if (header_is(line, len, "grpc-message", &v, &vl)) {
		kl__grpc_percent_decode(v, vl, r->grpc_message, sizeof(r->grpc_message));
	}
}

int kl__grpc_status_from_http(long http_status)
{
	switch (http_status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

int kl__thumbprint_parse(const char *s, uint8_t out[KL__SHA256_LEN])
{
	size_t len = strlen(s);
	bool colons;

	if (len == KL__SHA256_LEN * 2)
		colons = false;
	else if (len == KL__SHA256_LEN * 3 - 1)
		colons = true;
	else
		return -EINVAL;
	for (size_t i = 0; i < KL__SHA256_LEN; i++) {
		const char *p = s + i * (colons ? 3 : 2);
		int hi = hexval(p[0]), lo = hexval(p[1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		if (colons && i + 1 < KL__SHA256_LEN && p[2] != ':')
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void kl__thumbprint_format(const uint8_t d[KL__SHA256_LEN], char out[KL__THUMBPRINT_STR])
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < KL__SHA256_LEN; i++) {
		out[i * 3] = hex[d[i] >> 4];
		out[i * 3 + 1] = hex[d[i] & 15];
		out[i * 3 + 2] = i + 1 < KL__SHA256_LEN ? ':' : '\0';
	}
}
