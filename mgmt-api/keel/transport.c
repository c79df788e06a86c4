/*
 * The local transport: vmkernel's control socket on this host.
 *
 * Each call opens a connection, sends the VmkRequest as one frame (lib/frame.h: 4-byte
 * big-endian length, then the message), reads one frame back and decodes it as a
 * VmkReply, then closes. One connection per call keeps a command independent of whether
 * vmkernel serves several requests on one connection.
 *
 * Failure modes, as exit codes: the socket is missing, refused or not a socket, or no
 * reply comes within the timeout -> KC_EXIT_UNREACHABLE; the connection ends without a
 * reply, a frame is truncated or too large, or the payload is not a VmkReply ->
 * KC_EXIT_PROTO. The console stream is a plain Unix stream socket named by the VM's
 * console_socket.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "mgmt-api/keel/keel.h"

/* Replies larger than this are a protocol error (a list of thousands of VMs fits). */
#define REPLY_MAX (64u << 20)

struct local_transport {
	struct kc_transport tr; /* first: the public part */
	const char *path;
	uint64_t timeout_ms;
};

void kc_reply_free(Keel__Vmk__VmkReply *reply)
{
	if (reply)
		keel__vmk__vmk_reply__free_unpacked(reply, NULL);
}

/* Waits until fd has something to read. 0, or -ETIMEDOUT / -errno. */
static int wait_readable(int fd, uint64_t timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int rc;

	if (timeout_ms == 0)
		return 0; /* the blocking read waits */
	do {
		rc = poll(&pfd, 1, timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return rc == 0 ? -ETIMEDOUT : 0;
}

static int local_call(struct kc_transport *t, const Keel__Vmk__VmkRequest *req,
		      Keel__Vmk__VmkReply **reply, int *code, struct kb_errmsg *err)
{
	struct local_transport *lt = (struct local_transport *)t;
	struct kb_buf in;
	int fd, rc;

	*reply = NULL;
	fd = kb_unix_connect(lt->path);
	*code = fd < 0 ? fd : 0;
	if (fd < 0) {
		kb_errmsg_setf(err, "cannot reach vmkernel at %s: %s (is vmkernel running?)",
			       lt->path, strerror(-fd));
		return KC_EXIT_UNREACHABLE;
	}
	kb_buf_init(&in, REPLY_MAX);
	rc = kb_frame_send_pb(fd, &req->base);
	*code = rc;
	if (rc) {
		kb_errmsg_setf(err, "cannot send the request to vmkernel at %s: %s", lt->path,
			       kb_strerror(rc));
		rc = rc == -ENOMEM ? KC_EXIT_FAILED : KC_EXIT_UNREACHABLE;
		goto close_fd;
	}
	rc = wait_readable(fd, lt->timeout_ms);
	if (rc == -ETIMEDOUT) {
		*code = rc;
		kb_errmsg_setf(err, "vmkernel at %s did not answer within %llu s (is it hung?)",
			       lt->path, (unsigned long long)(lt->timeout_ms / 1000));
		rc = KC_EXIT_UNREACHABLE;
		goto close_fd;
	}
	if (rc == 0)
		rc = kb_frame_recv(fd, &in, REPLY_MAX);
	*code = rc;
	if (rc) {
		if (rc == -EPIPE || rc == -ECONNRESET)
			kb_errmsg_setf(err, "vmkernel at %s closed the connection without a reply",
				       lt->path);
		else
			kb_errmsg_setf(err, "bad reply from vmkernel at %s: %s", lt->path,
				       kb_strerror(rc));
		rc = KC_EXIT_PROTO;
		goto close_buf;
	}
	*reply = keel__vmk__vmk_reply__unpack(NULL, in.len, in.data);
	if (!*reply) {
		*code = KB_EPROTO;
		kb_errmsg_setf(err, "bad reply from vmkernel at %s: not a VmkReply (%zu bytes)",
			       lt->path, in.len);
		rc = KC_EXIT_PROTO;
		goto close_buf;
	}
	rc = KC_EXIT_OK;
close_buf:
	kb_buf_close(&in);
close_fd:
	close(fd);
	return rc;
}

static int local_console_open(struct kc_transport *t, const Keel__Vmk__VmInfo *vm, int *fd,
			      struct kb_errmsg *err)
{
	const char *path = vm->console_socket;
	int rc;

	if (!path || path[0] != '/') {
		kb_errmsg_setf(err, "VM %s has no console socket (is it powered on?)", vm->name);
		return KC_EXIT_FAILED;
	}
	rc = kb_unix_connect(path);
	if (rc < 0) {
		kb_errmsg_setf(err, "cannot open the console of VM %s at %s: %s", vm->name, path,
			       strerror(-rc));
		return KC_EXIT_FAILED;
	}
	*fd = rc;
	return KC_EXIT_OK;
}

static void local_destroy(struct kc_transport *t)
{
	kb_free(t);
}

int kc_transport_local_create(const char *path, uint64_t timeout_ms, struct kc_transport **out)
{
	struct local_transport *lt = kb_calloc(1, sizeof(*lt));

	if (!lt)
		return -ENOMEM;
	lt->tr.kind = "local";
	lt->tr.target = path;
	lt->tr.call = local_call;
	lt->tr.console_open = local_console_open;
	lt->tr.destroy = local_destroy;
	lt->path = path;
	lt->timeout_ms = timeout_ms;
	*out = &lt->tr;
	return 0;
}
