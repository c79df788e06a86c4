/*
 * Length-prefixed framing over stream sockets, used by every control socket.
 *
 * Wire format: each frame is a 4-byte big-endian payload length followed by the payload
 * (one serialized protobuf message). A length above the receiver's limit is a protocol
 * error and the receiver closes the connection; so is a stream that ends inside a frame.
 */
#ifndef KB_FRAME_H
#define KB_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "lib/buf.h"

#define KB_FRAME_MAX_DEFAULT (4u << 20)

/* Blocking send of one frame; restarts on EINTR and partial writes. 0 or -errno. */
int kb_frame_send(int fd, const void *p, size_t len);
/* Packs a protobuf message and sends it as one frame. 0, -ENOMEM or -errno. */
int kb_frame_send_pb(int fd, const ProtobufCMessage *msg);
/* Blocking receive of one frame into out (reset first). 0; -EPIPE on a clean end of
 * stream between frames; KB_ETRUNCATED on an end inside a frame; KB_ETOOBIG when the
 * length exceeds max; -errno on socket errors. */
int kb_frame_recv(int fd, struct kb_buf *out, size_t max);

/* Incremental decoder for non-blocking loops: feed bytes as they arrive, then take whole
 * frames with kb_frame_next until it returns 0. */
struct kb_frame_decoder {
	struct kb_buf in;
	size_t max;
	size_t taken; /* bytes at the front of in already handed out, dropped on the next feed */
};

void kb_frame_decoder_init(struct kb_frame_decoder *d, size_t max);
void kb_frame_decoder_close(struct kb_frame_decoder *d);
/* 0, -ENOMEM, or KB_ETOOBIG if buffered data exceeds what one frame may need (the next
 * frame announces more than max, or the caller keeps feeding without taking frames). */
int kb_frame_feed(struct kb_frame_decoder *d, const void *p, size_t n);
/* 1 and a frame (borrowed until the next call) when one is complete; 0 when more bytes
 * are needed; KB_ETOOBIG when the announced length exceeds max. */
int kb_frame_next(struct kb_frame_decoder *d, const uint8_t **payload, size_t *len);

/* Unix stream sockets (SOCK_CLOEXEC). listen unlinks a stale path first. fd or -errno. */
int kb_unix_listen(const char *path, int backlog);
int kb_unix_connect(const char *path);

#endif
