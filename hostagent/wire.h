/*
 * The gRPC message framing hostd speaks inside HTTP/2 DATA frames (docs/hostd.md,
 * "Framing"), and the percent-encoding of grpc-message.
 *
 * Wire format of one message (gRPC "Length-Prefixed-Message"):
 *
 *     +------------+------------------------+-----------------------+
 *     | flag (1 B) | length (4 B, big-end.) | length bytes: payload |
 *     +------------+------------------------+-----------------------+
 *
 * flag 0: the payload is the serialized protobuf; 1: it is compressed with the stream's
 * grpc-encoding (hostd supports none: KB_ENOTSUP); anything else is malformed. A request
 * body is a sequence of such messages split arbitrarily across DATA frames, so the decoder
 * is incremental: it keeps at most one partial message, whose declared length is checked
 * against the limit before any payload byte is buffered.
 *
 * Pure functions on caller memory: any thread.
 */
#ifndef HD_WIRE_H
#define HD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "lib/buf.h"

#define HD_WIRE_PREFIX	 5
#define HD_WIRE_MSG_MAX	 (4u << 20) /* largest message accepted or sent */
#define HD_WIRE_TEXT_MAX 1024	    /* grpc-message is cut to this many bytes before encoding */

/* Writes the 5-byte prefix of an uncompressed message of len bytes. */
void hd_wire_prefix(uint8_t out[HD_WIRE_PREFIX], uint32_t len);

/* Appends one framed message (prefix + packed m) to out. 0, KB_ETOOBIG (m packs to more
 * than max bytes, or out's limit), -ENOMEM. out is unchanged on failure. */
int hd_wire_put(struct kb_buf *out, const ProtobufCMessage *m, size_t max);

/* Called for each complete message. msg is borrowed until the callback returns. Returns 0
 * to go on, or a negative code that stops hd_wire_feed(), which returns it. */
typedef int (*hd_wire_msg_cb)(void *arg, const uint8_t *msg, size_t len);

/* The incremental decoder. Between messages it holds no payload. */
struct hd_wire_dec {
	uint8_t hdr[HD_WIRE_PREFIX];
	size_t hdr_len;	   /* prefix bytes received of the current message */
	uint32_t need;	   /* payload length of the current message */
	struct kb_buf msg; /* its payload so far */
	size_t max;	   /* largest payload accepted */
	unsigned count;	   /* complete messages delivered */
	int err;	   /* first error; sticky */
};

void hd_wire_dec_init(struct hd_wire_dec *d, size_t max);
void hd_wire_dec_close(struct hd_wire_dec *d);

/* Feeds n bytes (borrowed). Returns 0, KB_ETOOBIG (a declared length over max),
 * KB_ENOTSUP (compressed flag), KB_EPROTO (flag neither 0 nor 1), -ENOMEM, or the
 * callback's error. After an error every later call returns it again. */
int hd_wire_feed(struct hd_wire_dec *d, const void *p, size_t n, hd_wire_msg_cb cb, void *arg);

/* True when the input so far ends on a message boundary. */
bool hd_wire_dec_at_boundary(const struct hd_wire_dec *d);

/* Bytes the decoder holds now (for the connection's buffering budget). */
size_t hd_wire_dec_buffered(const struct hd_wire_dec *d);

/* Percent-encodes text for the grpc-message trailer: bytes outside 0x20..0x7e and '%'
 * become "%XX" (upper-case hex). At most HD_WIRE_TEXT_MAX input bytes are encoded; out is
 * always NUL-terminated (size >= 1) and never holds a partial escape. Returns strlen(out). */
size_t hd_wire_pct_encode(char *out, size_t size, const char *text);

/* The inverse, for tests and clients: invalid escapes are copied as they are. Returns
 * strlen(out). */
size_t hd_wire_pct_decode(char *out, size_t size, const char *text);

#endif
