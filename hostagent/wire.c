/*
 * gRPC length-prefixed message framing and grpc-message percent-encoding: see wire.h.
 *
 * The decoder is the only code that reads request bodies: it checks each declared length
 * against its limit before reserving the payload buffer, so a peer cannot make it allocate
 * more than max bytes, and it reports the first violation and stays failed.
 */
#include <errno.h>
#include <string.h>

#include "hostagent/wire.h"
#include "lib/err.h"

void hd_wire_prefix(uint8_t out[HD_WIRE_PREFIX], uint32_t len)
{
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

int hd_wire_put(struct kb_buf *out, const ProtobufCMessage *m, size_t max)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	size_t old = out->len;
	void *dst;
	int rv;

	if (len > max || len > UINT32_MAX)
		return KB_ETOOBIG;
	rv = kb_buf_put_zero(out, HD_WIRE_PREFIX + len, &dst);
	if (rv < 0)
		return rv;
	hd_wire_prefix(dst, (uint32_t)len);
	if (protobuf_c_message_pack(m, (uint8_t *)dst + HD_WIRE_PREFIX) != len) {
		out->len = old;
		return KB_EPROTO;
	}
	return 0;
}

void hd_wire_dec_init(struct hd_wire_dec *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	kb_buf_init(&d->msg, max);
	d->max = max;
}

void hd_wire_dec_close(struct hd_wire_dec *d)
{
	kb_buf_close(&d->msg);
}

bool hd_wire_dec_at_boundary(const struct hd_wire_dec *d)
{
	return d->err == 0 && d->hdr_len == 0;
}

size_t hd_wire_dec_buffered(const struct hd_wire_dec *d)
{
	return d->msg.cap;
}

/* The prefix is complete: check it. */
static int start_message(struct hd_wire_dec *d)
{
	uint32_t len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 |
		       (uint32_t)d->hdr[3] << 8 | d->hdr[4];

	if (d->hdr[0] == 1)
		return KB_ENOTSUP;
	if (d->hdr[0] != 0)
		return KB_EPROTO;
	if (len > d->max)
		return KB_ETOOBIG;
	/* The buffer grows with the bytes that arrive, not with the declared length: a
	 * peer's memory cost is what it actually sends. */
	d->need = len;
	kb_buf_reset(&d->msg);
	return 0;
}

static int deliver(struct hd_wire_dec *d, hd_wire_msg_cb cb, void *arg)
{
	int rv;

	d->hdr_len = 0;
	d->count++;
	rv = cb(arg, d->msg.data, d->msg.len);
	/* Between messages no payload is held. */
	kb_buf_close(&d->msg);
	kb_buf_init(&d->msg, d->max);
	return rv;
}

int hd_wire_feed(struct hd_wire_dec *d, const void *p, size_t n, hd_wire_msg_cb cb, void *arg)
{
	const uint8_t *in = p;
	size_t take;
	int rv;

	while (d->err == 0 && n > 0) {
		if (d->hdr_len < HD_WIRE_PREFIX) {
			take = HD_WIRE_PREFIX - d->hdr_len;
			take = take < n ? take : n;
			memcpy(d->hdr + d->hdr_len, in, take);
			d->hdr_len += take;
			in += take;
			n -= take;
			if (d->hdr_len < HD_WIRE_PREFIX)
				break;
			rv = start_message(d);
			if (rv < 0) {
				d->err = rv;
				break;
			}
			if (d->need == 0) {
				rv = deliver(d, cb, arg);
				if (rv < 0)
					d->err = rv;
			}
			continue;
		}
		take = d->need - d->msg.len;
		take = take < n ? take : n;
		rv = kb_buf_append(&d->msg, in, take);
		if (rv < 0) {
			d->err = rv;
			break;
		}
		in += take;
		n -= take;
		if (d->msg.len == d->need) {
			rv = deliver(d, cb, arg);
			if (rv < 0)
				d->err = rv;
		}
	}
	return d->err;
}

size_t hd_wire_pct_encode(char *out, size_t size, const char *text)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; text[i] && i < HD_WIRE_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c >= 0x20 && c <= 0x7e && c != '%') {
			if (o + 1 >= size)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= size)
				break;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
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

size_t hd_wire_pct_decode(char *out, size_t size, const char *text)
{
	size_t o = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; text[i] && o + 1 < size; i++) {
		int hi, lo;

		if (text[i] == '%' && (hi = hexval(text[i + 1])) >= 0 &&
		    (lo = hexval(text[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = text[i];
		}
	}
	out[o] = '\0';
	return o;
}
