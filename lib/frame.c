/*
 * Length-prefixed framing (wire format in lib/frame.h).
 *
 * Blocking side: kb_frame_send() writes header and payload with one gather call and
 * keeps going after partial writes, EINTR and, on a non-blocking fd, EAGAIN (it waits
 * in poll). Sockets are written with MSG_NOSIGNAL, so a vanished peer is -EPIPE rather
 * than a signal. kb_frame_recv() checks the announced length against the caller's limit
 * before it allocates anything, so a hostile peer cannot make the receiver allocate more
 * than max bytes.
 *
 * Non-blocking side: the decoder appends whatever bytes arrive and hands out whole frames
 * in place. Frames already handed out stay at the front of the buffer until the next
 * feed, which drops them with one move, so a read holding many small frames costs one
 * copy, not one per frame.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/frame.h"
#include "lib/heap.h"

#define FRAME_HDR 4

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Waits until fd is ready for events. 0 or -errno. */
static int wait_fd(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	if (pfd.revents & POLLNVAL)
		return -EBADF;
	return 0; /* errors and hangups are reported by the next read or write */
}

/* Writes every byte of iov (modified in place). 0 or -errno. */
static int send_iov(int fd, struct iovec *iov, int cnt)
{
	bool is_sock = true;
	ssize_t n;
	int rc;

	while (cnt > 0) {
		if (is_sock) {
			struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};

			n = sendmsg(fd, &mh, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				is_sock = false; /* a pipe or file: plain writes */
				continue;
			}
		} else {
			n = writev(fd, iov, cnt);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			rc = wait_fd(fd, POLLOUT);
			if (rc)
				return rc;
			continue;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Reads up to n bytes, stopping early only at end of stream; *got says how many.
 * 0 or -errno. */
static int read_full(int fd, void *p, size_t n, size_t *got)
{
	size_t off = 0;
	ssize_t r;
	int rc;

	while (off < n) {
		r = read(fd, (uint8_t *)p + off, n - off);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = wait_fd(fd, POLLIN);
		if (rc)
			return rc;
	}
	*got = off;
	return 0;
}

int kb_frame_send(int fd, const void *p, size_t len)
{
	uint8_t hdr[FRAME_HDR];
	struct iovec iov[2];

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	put_be32(hdr, (uint32_t)len);
	iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
	iov[1] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
	return send_iov(fd, iov, 2);
}

int kb_frame_send_pb(int fd, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	struct iovec iov;
	uint8_t *frame;
	int rc;

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	frame = kb_malloc(FRAME_HDR + len);
	if (!frame)
		return -ENOMEM;
	put_be32(frame, (uint32_t)len);
	protobuf_c_message_pack(msg, frame + FRAME_HDR);
	iov = (struct iovec){.iov_base = frame, .iov_len = FRAME_HDR + len};
	rc = send_iov(fd, &iov, 1);
	kb_free(frame);
	return rc;
}

int kb_frame_recv(int fd, struct kb_buf *out, size_t max)
{
	uint8_t hdr[FRAME_HDR];
	size_t len, got;
	int rc;

	kb_buf_reset(out);
	rc = read_full(fd, hdr, sizeof(hdr), &got);
	if (rc)
		return rc;
	if (got == 0)
		return -EPIPE;
	if (got < sizeof(hdr))
		return KB_ETRUNCATED;
	len = get_be32(hdr);
	if (len > max)
		return KB_ETOOBIG;
	rc = kb_buf_reserve(out, len);
	if (rc)
		return rc;
	rc = read_full(fd, out->data + out->len, len, &got);
	if (rc)
		return rc;
	if (got < len)
		return KB_ETRUNCATED;
	out->len = len;
	return 0;
}

void kb_frame_decoder_init(struct kb_frame_decoder *d, size_t max)
{
	kb_buf_init(&d->in, 0);
	d->max = max;
	d->taken = 0;
}

void kb_frame_decoder_close(struct kb_frame_decoder *d)
{
	kb_buf_close(&d->in);
	d->taken = 0;
}

/* KB_ETOOBIG if the next frame announces more than max, else 0. */
static int check_next_len(const struct kb_frame_decoder *d)
{
	if (d->in.len - d->taken >= FRAME_HDR && get_be32(d->in.data + d->taken) > d->max)
		return KB_ETOOBIG;
	return 0;
}

int kb_frame_feed(struct kb_frame_decoder *d, const void *p, size_t n)
{
	int rc;

	if (d->taken) {
		kb_buf_consume(&d->in, d->taken);
		d->taken = 0;
	}
	rc = check_next_len(d);
	if (rc)
		return rc;
	/* A caller that drains with kb_frame_next holds less than one frame here. */
	if (d->in.len > FRAME_HDR && d->in.len - FRAME_HDR > d->max)
		return KB_ETOOBIG;
	rc = kb_buf_append(&d->in, p, n);
	if (rc)
		return rc;
	return check_next_len(d);
}

int kb_frame_next(struct kb_frame_decoder *d, const uint8_t **payload, size_t *len)
{
	size_t left = d->in.len - d->taken;
	uint32_t flen;

	if (left < FRAME_HDR) {
		if (left == 0)
			d->in.len = d->taken = 0; /* everything handed out: rewind for free */
		return 0;
	}
	flen = get_be32(d->in.data + d->taken);
	if (flen > d->max)
		return KB_ETOOBIG;
	if (left - FRAME_HDR < flen)
		return 0;
	*payload = d->in.data + d->taken + FRAME_HDR;
	*len = flen;
	d->taken += FRAME_HDR + flen;
	return 1;
}
