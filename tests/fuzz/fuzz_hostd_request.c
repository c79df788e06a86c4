/*
 * Fuzz target: hostd's request decoding path (hostagent/wire.h and the method table): the
 * first input byte picks a keel.vim.Vim method, the next ones how the body is split into
 * DATA-frame-sized pieces, and the rest is the request body as a client would send it. The
 * incremental decoder must never hold more than one message's payload beyond the limit, and
 * every message it delivers is unpacked as the method's input: one that unpacks must pack
 * and unpack again to the same bytes. grpc-message encoding is checked on the same input:
 * decoding what was encoded gives back the text (cut as hd_wire_pct_encode cuts it).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostagent/grpc.h"
#include "hostagent/wire.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limit: the length check is exercised without 4 MiB inputs. */
#define MSG_MAX 4096

struct ctx {
	const struct hd_method *m;
};

/* Whether m or a message inside it keeps an unknown field numbered 0. protobuf-c refuses a
 * field number 0 written in one byte but takes it written as a longer varint (80 00 ...)
 * and keeps it as an unknown field, which it then packs in one byte: such a message does not
 * round-trip. hostd never packs a request again (it reads the fields it knows), so these are
 * left out of the round-trip check. */
static bool has_field_zero(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t j = 0; j < n; j++)
				if (v[j] && has_field_zero(v[j]))
					return true;
		} else {
			const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);

			if (sub && has_field_zero(sub))
				return true;
		}
	}
	return false;
}

static int on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct ctx *c = arg;
	ProtobufCMessage *a, *b;
	uint8_t *p1, *p2;
	size_t n1, n2;

	if (len > MSG_MAX)
		abort(); /* the decoder let a message past its limit */
	a = protobuf_c_message_unpack(c->m->input, NULL, len, msg);
	if (!a)
		return 0;
	if (has_field_zero(a)) {
		protobuf_c_message_free_unpacked(a, NULL);
		return 0;
	}
	n1 = protobuf_c_message_get_packed_size(a);
	p1 = malloc(n1 ? n1 : 1);
	protobuf_c_message_pack(a, p1);
	b = protobuf_c_message_unpack(c->m->input, NULL, n1, p1);
	if (!b)
		abort(); /* what we packed does not unpack */
	n2 = protobuf_c_message_get_packed_size(b);
	p2 = malloc(n2 ? n2 : 1);
	protobuf_c_message_pack(b, p2);
	if (n1 != n2 || memcmp(p1, p2, n1) != 0)
		abort(); /* packing is not stable */
	free(p1);
	free(p2);
	protobuf_c_message_free_unpacked(a, NULL);
	protobuf_c_message_free_unpacked(b, NULL);
	return 0;
}

static void pct_roundtrip(const uint8_t *data, size_t size)
{
	char text[HD_WIRE_TEXT_MAX + 1], enc[3 * HD_WIRE_TEXT_MAX + 1], dec[HD_WIRE_TEXT_MAX + 1];
	size_t n = 0;

	while (n < size && n < HD_WIRE_TEXT_MAX && data[n])
		n++;
	memcpy(text, data, n);
	text[n] = '\0';
	hd_wire_pct_encode(enc, sizeof(enc), text);
	for (const char *p = enc; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			abort(); /* a byte a trailer may not carry */
	hd_wire_pct_decode(dec, sizeof(dec), enc);
	if (strcmp(dec, text) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hd_wire_dec d;
	struct ctx c;
	size_t off = 2, piece;

	if (size < 2)
		return 0;
	c.m = &hd_vim_methods[data[0] % hd_vim_methods_count];
	piece = (size_t)data[1] + 1;
	hd_wire_dec_init(&d, MSG_MAX);
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;
		int rv = hd_wire_feed(&d, data + off, n, on_msg, &c);

		if (hd_wire_dec_buffered(&d) > MSG_MAX + HD_WIRE_PREFIX)
			abort(); /* buffering past one message */
		if (rv) {
			if (hd_wire_feed(&d, "", 0, on_msg, &c) != rv)
				abort(); /* errors are sticky */
			break;
		}
		off += n;
	}
	hd_wire_dec_close(&d);
	pct_roundtrip(data, size);
	return 0;
}
