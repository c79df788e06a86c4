/*
 * The client of clusterd's control socket (contract in cluster.h). Every step that could
 * wait on clusterd — connect (a full backlog), send, and each byte of the reply — runs
 * against one deadline on a non-blocking socket, so a hung clusterd costs the caller at
 * most the timeout, and is reported as such.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "kernel/core/cluster.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/time.h"

const char *vmk_cluster_op_name(enum vmk_cluster_op op)
{
	switch (op) {
	case VMK_CLUSTER_REGISTER:
		return "register";
	case VMK_CLUSTER_UNREGISTER:
		return "unregister";
	case VMK_CLUSTER_POWER_ON:
	case VMK_CLUSTER_POWER_ON_WANTED:
		return "power-on";
	case VMK_CLUSTER_POWER_OFF:
		return "power-off";
	case VMK_CLUSTER_SUSPEND:
		return "suspend";
	case VMK_CLUSTER_MIGRATE_COMMIT:
		return "migration commit";
	case VMK_CLUSTER_MIGRATE_ABORT:
		return "migration abort";
	}
	return "?";
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = kb_now_ns();

	return now >= deadline ? 0
			       : (int)((deadline - now + KB_NSEC_PER_MSEC - 1) / KB_NSEC_PER_MSEC);
}

/* Connects before the deadline. 0 and *fd, -ENOENT / -ECONNREFUSED (no clusterd),
 * KB_ETIMEOUT, or -errno. */
static int connect_by(const char *path, uint64_t deadline, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s, rv;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	for (;;) {
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		rv = -errno;
		if (rv == -EINTR)
			continue;
		if (rv != -EAGAIN) { /* a Unix socket's full backlog is EAGAIN: try again */
			close(s);
			return rv;
		}
		if (remaining_ms(deadline) == 0) {
			close(s);
			return KB_ETIMEOUT;
		}
		kb_sleep_ns(5 * KB_NSEC_PER_MSEC);
	}
	*fd = s;
	return 0;
}

/* Reads exactly n bytes before the deadline. 0, -EPIPE (end of stream), KB_ETIMEOUT or
 * -errno. */
static int read_by(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = read(fd, p + off, n - off);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return KB_ETIMEOUT;
		if (poll(&pf, 1, ms) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

static int exchange(int fd, const Keel__Cluster__ClusterRequest *rq, uint64_t deadline,
		    struct kb_buf *in)
{
	uint8_t hdr[4];
	uint32_t len;
	int rv;

	/* The request is a few hundred bytes into a new socket's empty buffer: it does not
	 * wait on clusterd. */
	rv = kb_frame_send_pb(fd, &rq->base);
	if (rv < 0)
		return rv;
	rv = read_by(fd, hdr, sizeof(hdr), deadline);
	if (rv < 0)
		return rv;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len > VMK_CLUSTER_REPLY_MAX)
		return KB_ETOOBIG;
	kb_buf_reset(in);
	rv = kb_buf_reserve(in, len ? len : 1);
	if (rv < 0)
		return rv;
	rv = read_by(fd, in->data, len, deadline);
	if (rv == 0)
		in->len = len;
	return rv;
}

/* One ClusterVmRequest, answered into out (contract of vmk_cluster_call()). */
static int call(const char *sock_path, int timeout_ms, Keel__Cluster__ClusterVmRequest *vrq,
		struct vmk_cluster_vm *out, struct kb_errmsg *err)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp = NULL;
	struct kb_buf in;
	int fd = -1, rv;

	memset(out, 0, sizeof(*out));
	if (timeout_ms <= 0)
		timeout_ms = VMK_CLUSTER_TIMEOUT_MS;
	uint64_t deadline = kb_now_ns() + (uint64_t)timeout_ms * KB_NSEC_PER_MSEC;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = vrq;

	rv = connect_by(sock_path, deadline, &fd);
	if (rv == -ENOENT || rv == -ECONNREFUSED)
		return 0; /* no clusterd: this host is in no cluster */
	kb_buf_init(&in, VMK_CLUSTER_REPLY_MAX);
	if (rv == 0)
		rv = exchange(fd, &rq, deadline, &in);
	if (fd >= 0)
		close(fd);
	if (rv == 0) {
		rp = keel__cluster__cluster_reply__unpack(NULL, in.len, in.data);
		if (rp == NULL)
			rv = KB_EPROTO;
	}
	kb_buf_close(&in);
	if (rv < 0) {
		if (rv == KB_ETIMEOUT && timeout_ms % 1000 == 0)
			kb_errmsg_setf(err, "clusterd did not answer within %d s (%s)",
				       timeout_ms / 1000, sock_path);
		else if (rv == KB_ETIMEOUT)
			kb_errmsg_setf(err, "clusterd did not answer within %d ms (%s)", timeout_ms,
				       sock_path);
		else if (rv == -EPIPE || rv == KB_EPROTO)
			kb_errmsg_setf(err, "clusterd (%s) %s", sock_path,
				       rv == -EPIPE ? "closed the connection without an answer"
						    : "sent an answer that does not decode");
		else
			kb_errmsg_setf(err, "asking clusterd (%s): %s", sock_path, kb_strerror(rv));
		return rv == -EPIPE ? KB_EPROTO : rv;
	}
	if (rp->code != 0) {
		rv = rp->code < 0 ? rp->code : KB_EPROTO;
		kb_errmsg_setf(err, "%s", rp->error && rp->error[0] ? rp->error : kb_strerror(rv));
		if (rp->vm != NULL && rp->vm->member && rp->vm->placed) {
			/* given to another host by placement: who, for the caller's words */
			out->owner = rp->vm->owner;
			out->epoch = rp->vm->epoch;
			out->host_id = rp->vm->host_id;
			snprintf(out->owner_name, sizeof(out->owner_name), "%s",
				 rp->vm->owner_name ? rp->vm->owner_name : "");
		}
	} else if (rp->vm != NULL && rp->vm->member) {
		out->member = true;
		out->owner = rp->vm->owner;
		out->epoch = rp->vm->epoch;
		out->host_id = rp->vm->host_id;
		snprintf(out->owner_name, sizeof(out->owner_name), "%s",
			 rp->vm->owner_name ? rp->vm->owner_name : "");
		if (rp->vm->op != NULL) {
			out->op_id = rp->vm->op->id;
			out->op_destination = rp->vm->op->destination;
		}
	}
	if (rp->vm != NULL && rp->vm->member) {
		out->placed = rp->vm->placed;
		snprintf(out->placement, sizeof(out->placement), "%s",
			 rp->vm->placement ? rp->vm->placement : "");
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return rv;
}

int vmk_cluster_call(const char *sock_path, int timeout_ms, enum vmk_cluster_op op,
		     const char *uuid, const char *name, const char *vmx_path,
		     const struct vmk_cluster_res *res, struct vmk_cluster_vm *out,
		     struct kb_errmsg *err)
{
	Keel__Cluster__ClusterVmRequest vrq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;

	vrq.op = (Keel__Cluster__ClusterVmRequest__Op)op;
	if (op == VMK_CLUSTER_POWER_ON_WANTED) {
		vrq.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_POWER_ON;
		vrq.wanted_only = true;
	}
	vrq.uuid = (char *)(uuid ? uuid : "");
	vrq.name = (char *)(name ? name : "");
	vrq.vmx_path = (char *)(vmx_path ? vmx_path : "");
	if (res) {
		vrq.mem_mib = res->mem_mib;
		vrq.cpu_mhz = res->cpu_mhz;
	}
	return call(sock_path, timeout_ms, &vrq, out, err);
}

int vmk_cluster_migrate_call(const char *sock_path, int timeout_ms, enum vmk_cluster_op op,
			     const char *uuid, const struct vmk_cluster_mig *m,
			     struct vmk_cluster_vm *out, struct kb_errmsg *err)
{
	Keel__Cluster__ClusterVmRequest vrq = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;

	vrq.op = (Keel__Cluster__ClusterVmRequest__Op)op;
	vrq.uuid = (char *)(uuid ? uuid : "");
	vrq.op_id = m->op_id;
	vrq.error = (char *)(m->error ? m->error : "");
	return call(sock_path, timeout_ms, &vrq, out, err);
}

int vmk_cluster_vm(struct vmk_host *h, enum vmk_cluster_op op, const char *uuid, const char *name,
		   const char *vmx_path, const struct vmk_cluster_res *res,
		   struct vmk_cluster_vm *out, struct kb_errmsg *err)
{
	return vmk_cluster_call(h->cluster_sock, h->cluster_timeout_ms, op, uuid, name, vmx_path,
				res, out, err);
}

int vmk_cluster_migrate(struct vmk_host *h, enum vmk_cluster_op op, const char *uuid,
			const struct vmk_cluster_mig *m, struct vmk_cluster_vm *out,
			struct kb_errmsg *err)
{
	return vmk_cluster_migrate_call(h->cluster_sock, h->cluster_timeout_ms, op, uuid, m, out,
					err);
}
