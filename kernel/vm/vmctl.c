/*
 * vmkernel's client of one vmx's control socket (proto/vmk.proto, Vmx* messages): one
 * request, one reply, with a receive timeout so a hung vmx cannot hang vmkernel.
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "kernel/vm/vm.h"
#include "lib/frame.h"

#define REPLY_MAX (1u << 20)

int vmk_vmx_call(const char *ctl_path, Keel__Vmk__VmxRequest *rq, Keel__Vmk__VmxReply **out,
		 int timeout_ms, struct kb_errmsg *err)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	struct kb_buf in;
	int fd, rv;

	*out = NULL;
	fd = kb_unix_connect(ctl_path);
	if (fd < 0) {
		kb_errmsg_setf(err, "cannot reach the VM's vmx at %s: %s", ctl_path,
			       kb_strerror(fd));
		return fd;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	kb_buf_init(&in, REPLY_MAX);
	rv = kb_frame_send_pb(fd, &rq->base);
	rv = rv ?: kb_frame_recv(fd, &in, REPLY_MAX);
	close(fd);
	if (rv < 0) {
		if (rv == -EAGAIN || rv == -EWOULDBLOCK)
			rv = KB_ETIMEOUT;
		kb_errmsg_setf(err, "vmx did not answer: %s", kb_strerror(rv));
		kb_buf_close(&in);
		return rv;
	}
	*out = keel__vmk__vmx_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	if (*out == NULL) {
		kb_errmsg_setf(err, "vmx sent an undecodable reply");
		return KB_EPROTO;
	}
	if ((*out)->code != 0) {
		rv = (*out)->code;
		kb_errmsg_setf(err, "%s", (*out)->error);
		return rv;
	}
	return 0;
}
