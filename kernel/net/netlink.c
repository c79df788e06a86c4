/*
 * The rtnetlink client of kernel/net: message building, one request/answer exchange, and
 * bounds-checked attribute parsing (netlink.h has the contract).
 *
 * Every request carries a fresh sequence number; answers with another sequence number
 * (left over from an earlier, failed exchange) are skipped. A non-dump request asks for an
 * acknowledgement, so every call ends on NLMSG_ERROR (0 or -errno) or, for a dump, on
 * NLMSG_DONE. The socket sets NETLINK_CAP_ACK (errors do not echo the request) and
 * NETLINK_EXT_ACK (errors carry the kernel's message).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel/net/netlink.h"
#include "lib/err.h"
#include "lib/heap.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

int vmk__nl_open(struct vmk__nl *nl)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	int one = 1, rv;

	memset(nl, 0, sizeof(*nl));
	nl->rbuf = kb_malloc(VMK__NL_RECV_SIZE);
	if (!nl->rbuf)
		return -ENOMEM;
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl->fd < 0) {
		rv = -errno;
		goto err_buf;
	}
	/* Both options are optional: older kernels answer without them. */
	(void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rv = -errno;
		goto err_sock;
	}
	nl->seq = 1;
	return 0;

err_sock:
	close(nl->fd);
err_buf:
	kb_free(nl->rbuf);
	nl->rbuf = NULL;
	nl->fd = -1;
	return rv;
}

void vmk__nl_close(struct vmk__nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
	kb_free(nl->rbuf);
	nl->rbuf = NULL;
}

void vmk__nlmsg_init(struct vmk__nlmsg *m, uint16_t type, uint16_t flags)
{
	memset(m, 0, sizeof(*m));
	m->u.hdr.nlmsg_len = NLMSG_HDRLEN;
	m->u.hdr.nlmsg_type = type;
	m->u.hdr.nlmsg_flags = flags | NLM_F_REQUEST;
}

void *vmk__nlmsg_reserve(struct vmk__nlmsg *m, size_t len)
{
	size_t off = NLMSG_ALIGN(m->u.hdr.nlmsg_len);
	uint8_t *p;

	if (m->overflow || off + NLMSG_ALIGN(len) > sizeof(m->u.buf)) {
		m->overflow = true;
		return NULL;
	}
	p = m->u.buf + off;
	memset(p, 0, NLMSG_ALIGN(len));
	m->u.hdr.nlmsg_len = off + NLMSG_ALIGN(len);
	return p;
}

void vmk__nlmsg_put(struct vmk__nlmsg *m, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a;

	if (len > UINT16_MAX - NLA_HDRLEN) {
		m->overflow = true;
		return;
	}
	a = vmk__nlmsg_reserve(m, NLA_HDRLEN + len);
	if (!a)
		return;
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	if (len)
		memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
}

void vmk__nlmsg_put_u8(struct vmk__nlmsg *m, uint16_t type, uint8_t v)
{
	vmk__nlmsg_put(m, type, &v, sizeof(v));
}

void vmk__nlmsg_put_u16(struct vmk__nlmsg *m, uint16_t type, uint16_t v)
{
	vmk__nlmsg_put(m, type, &v, sizeof(v));
}

void vmk__nlmsg_put_u32(struct vmk__nlmsg *m, uint16_t type, uint32_t v)
{
	vmk__nlmsg_put(m, type, &v, sizeof(v));
}

void vmk__nlmsg_put_str(struct vmk__nlmsg *m, uint16_t type, const char *s)
{
	vmk__nlmsg_put(m, type, s, strlen(s) + 1);
}

void vmk__nlmsg_nest_begin(struct vmk__nlmsg *m, uint16_t type)
{
	size_t off = NLMSG_ALIGN(m->u.hdr.nlmsg_len);

	if (m->depth == VMK__NL_NEST_MAX) {
		m->overflow = true;
		return;
	}
	vmk__nlmsg_put(m, type | NLA_F_NESTED, NULL, 0);
	m->nest[m->depth++] = off;
}

void vmk__nlmsg_nest_end(struct vmk__nlmsg *m)
{
	struct nlattr *a;
	size_t off;

	if (m->depth == 0) {
		m->overflow = true;
		return;
	}
	off = m->nest[--m->depth];
	if (m->overflow)
		return;
	a = (struct nlattr *)(m->u.buf + off);
	a->nla_len = m->u.hdr.nlmsg_len - off;
}

/* The kernel's extended-ack message of an error answer, if any. */
static void read_ext_ack(struct vmk__nl *nl, const struct nlmsghdr *h)
{
	const struct nlmsgerr *e = NLMSG_DATA(h);
	const struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	size_t off, len = h->nlmsg_len;

	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	off = NLMSG_HDRLEN + sizeof(*e);
	if (!(h->nlmsg_flags & NLM_F_CAPPED))
		off += NLMSG_ALIGN(e->msg.nlmsg_len) - sizeof(e->msg);
	if (off > len)
		return;
	if (vmk__nl_parse(tb, NLMSGERR_ATTR_MAX, (const uint8_t *)h + off, len - off) < 0)
		return;
	vmk__nla_str(tb[NLMSGERR_ATTR_MSG], nl->ext_msg, sizeof(nl->ext_msg));
}

/* Handles one answer message. Sets *done at the end of the exchange. */
static int handle_answer(struct vmk__nl *nl, const struct nlmsghdr *h, vmk__nl_cb cb, void *arg,
			 int rv, bool *done)
{
	if (h->nlmsg_type == NLMSG_DONE) {
		*done = true;
		/* A failed dump puts its error code after the header. */
		if (rv == 0 && h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
			int e;

			memcpy(&e, NLMSG_DATA(h), sizeof(e));
			if (e < 0)
				rv = e;
		}
		return rv;
	}
	if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(h);

		*done = true;
		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int)))
			return rv ? rv : KB_EPROTO;
		if (e->error < 0)
			read_ext_ack(nl, h);
		return rv ? rv : (e->error > 0 ? KB_EPROTO : e->error);
	}
	if (cb && rv == 0)
		rv = cb(h, arg);
	return rv;
}

int vmk__nl_call(struct vmk__nl *nl, struct vmk__nlmsg *m, vmk__nl_cb cb, void *arg)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	uint32_t seq;
	bool done = false;
	int rv = 0;

	nl->ext_msg[0] = '\0';
	if (m->overflow || m->depth != 0)
		return -EMSGSIZE;
	if ((m->u.hdr.nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) /* EXCL shares a bit with DUMP */
		m->u.hdr.nlmsg_flags |= NLM_F_ACK;
	seq = nl->seq++;
	m->u.hdr.nlmsg_seq = seq;
	while (sendto(nl->fd, m->u.buf, m->u.hdr.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) <
	       0) {
		if (errno != EINTR)
			return -errno;
	}
	while (!done) {
		struct sockaddr_nl from;
		struct iovec iov = {.iov_base = nl->rbuf, .iov_len = VMK__NL_RECV_SIZE};
		struct msghdr mh = {.msg_name = &from,
				    .msg_namelen = sizeof(from),
				    .msg_iov = &iov,
				    .msg_iovlen = 1};
		const struct nlmsghdr *h;
		ssize_t n = recvmsg(nl->fd, &mh, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (mh.msg_flags & MSG_TRUNC)
			return KB_EPROTO;
		if (from.nl_pid != 0)
			continue; /* not from the kernel */
		size_t left = (size_t)n;
		for (h = (const struct nlmsghdr *)nl->rbuf; NLMSG_OK(h, left);
		     h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_seq != seq)
				continue;
			rv = handle_answer(nl, h, cb, arg, rv, &done);
			if (done)
				break;
		}
		if (!done && left != 0)
			return KB_EPROTO;
	}
	return rv;
}

int vmk__nl_parse(const struct nlattr **tb, unsigned max, const void *data, size_t len)
{
	const uint8_t *p = data;

	memset(tb, 0, (max + 1) * sizeof(*tb));
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)p;
		size_t step;
		unsigned type = a->nla_type & NLA_TYPE_MASK;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			return KB_EPROTO;
		if (type <= max)
			tb[type] = a;
		step = NLA_ALIGN(a->nla_len);
		if (step >= len)
			return 0;
		p += step;
		len -= step;
	}
	return 0;
}

int vmk__nl_parse_msg(const struct nlattr **tb, unsigned max, const struct nlmsghdr *h,
		      size_t hdr_len)
{
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(hdr_len);

	if (h->nlmsg_len < off)
		return KB_EPROTO;
	return vmk__nl_parse(tb, max, (const uint8_t *)h + off, h->nlmsg_len - off);
}

uint8_t vmk__nla_u8(const struct nlattr *a, uint8_t def)
{
	if (!a || vmk__nla_len(a) < sizeof(uint8_t))
		return def;
	return *(const uint8_t *)vmk__nla_data(a);
}

uint16_t vmk__nla_u16(const struct nlattr *a, uint16_t def)
{
	uint16_t v;

	if (!a || vmk__nla_len(a) < sizeof(v))
		return def;
	memcpy(&v, vmk__nla_data(a), sizeof(v));
	return v;
}

uint32_t vmk__nla_u32(const struct nlattr *a, uint32_t def)
{
	uint32_t v;

	if (!a || vmk__nla_len(a) < sizeof(v))
		return def;
	memcpy(&v, vmk__nla_data(a), sizeof(v));
	return v;
}

void vmk__nla_str(const struct nlattr *a, char *out, size_t size)
{
	size_t n;

	if (size == 0)
		return;
	out[0] = '\0';
	if (!a)
		return;
	n = strnlen(vmk__nla_data(a), vmk__nla_len(a));
	if (n >= size)
		n = size - 1;
	memcpy(out, vmk__nla_data(a), n);
	out[n] = '\0';
}
