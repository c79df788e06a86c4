/*
 * A small rtnetlink client for kernel/net (internal to the component).
 *
 * A request is built in a fixed buffer (struct vmk__nlmsg: header, family header,
 * attributes, nested attributes), sent on an AF_NETLINK/NETLINK_ROUTE socket, and answered
 * by the kernel with an acknowledgement carrying 0 or -errno, replies for a GET, or a
 * multi-part dump ending in NLMSG_DONE. vmk__nl_call() does the whole exchange and returns
 * the kernel's error code; when the kernel adds an extended-ack message ("Error: ..." in
 * ip(8)), it is kept in nl->ext_msg for the error text.
 *
 * A message that does not fit in its buffer is never sent: the builder remembers the
 * overflow and vmk__nl_call() returns -EMSGSIZE. Replies are parsed with bounds checks
 * (vmk__nl_parse); a reply that is cut short or malformed yields KB_EPROTO.
 *
 * One socket per struct vmk_net; calls are synchronous and not thread-safe.
 */
#ifndef VMK_NET_NETLINK_H
#define VMK_NET_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define VMK__NL_MSG_SIZE   1024	 /* request buffer */
#define VMK__NL_RECV_SIZE  65536 /* receive buffer (a dump part is at most 32 KiB) */
#define VMK__NL_NEST_MAX   4
#define VMK__NL_EXTMSG_MAX 160

struct vmk__nl {
	int fd;
	uint32_t seq;
	uint8_t *rbuf;			  /* VMK__NL_RECV_SIZE bytes */
	char ext_msg[VMK__NL_EXTMSG_MAX]; /* kernel's message for the last failed call */
};

struct vmk__nlmsg {
	union {
		struct nlmsghdr hdr;
		uint8_t buf[VMK__NL_MSG_SIZE];
	} u;
	size_t nest[VMK__NL_NEST_MAX]; /* offsets of open nested attributes */
	unsigned depth;
	bool overflow;
};

/* Called for each reply message of a GET or dump; return 0 to go on, <0 to fail the call
 * (the rest of the reply is still read and dropped). */
typedef int (*vmk__nl_cb)(const struct nlmsghdr *h, void *arg);

/* Opens the socket (close-on-exec, extended acks on). 0, -errno or -ENOMEM. */
int vmk__nl_open(struct vmk__nl *nl);
void vmk__nl_close(struct vmk__nl *nl);

/* Starts a request of the given type; NLM_F_REQUEST is added to flags. */
void vmk__nlmsg_init(struct vmk__nlmsg *m, uint16_t type, uint16_t flags);
/* Appends len zeroed bytes (a family header such as struct ifinfomsg) and returns them,
 * or NULL on overflow. */
void *vmk__nlmsg_reserve(struct vmk__nlmsg *m, size_t len);
void vmk__nlmsg_put(struct vmk__nlmsg *m, uint16_t type, const void *data, size_t len);
void vmk__nlmsg_put_u8(struct vmk__nlmsg *m, uint16_t type, uint8_t v);
void vmk__nlmsg_put_u16(struct vmk__nlmsg *m, uint16_t type, uint16_t v);
void vmk__nlmsg_put_u32(struct vmk__nlmsg *m, uint16_t type, uint32_t v);
void vmk__nlmsg_put_str(struct vmk__nlmsg *m, uint16_t type, const char *s);
void vmk__nlmsg_nest_begin(struct vmk__nlmsg *m, uint16_t type);
void vmk__nlmsg_nest_end(struct vmk__nlmsg *m);

/* Sends m and reads the answer. Without cb the request asks for an acknowledgement;
 * with cb each reply message is handed to it (a dump when m has NLM_F_DUMP). Returns 0,
 * the kernel's -errno, the callback's error, -EMSGSIZE for an overflowed request, KB_EPROTO
 * for a malformed reply, or -errno of the socket calls. */
int vmk__nl_call(struct vmk__nl *nl, struct vmk__nlmsg *m, vmk__nl_cb cb, void *arg);

/* Fills tb[0..max] with the attributes in data[0..len) (later ones win; unknown types
 * above max are skipped). KB_EPROTO when an attribute runs past the end. */
int vmk__nl_parse(const struct nlattr **tb, unsigned max, const void *data, size_t len);
/* Attribute parsing of the payload of a reply that begins with a family header of size
 * hdr_len. */
int vmk__nl_parse_msg(const struct nlattr **tb, unsigned max, const struct nlmsghdr *h,
		      size_t hdr_len);

static inline const void *vmk__nla_data(const struct nlattr *a)
{
	return (const uint8_t *)a + NLA_HDRLEN;
}

static inline size_t vmk__nla_len(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

/* Typed getters: the value, or def when a is NULL or too short. */
uint8_t vmk__nla_u8(const struct nlattr *a, uint8_t def);
uint16_t vmk__nla_u16(const struct nlattr *a, uint16_t def);
uint32_t vmk__nla_u32(const struct nlattr *a, uint32_t def);
/* Copies a string attribute into out (always NUL-terminated); "" when a is NULL. */
void vmk__nla_str(const struct nlattr *a, char *out, size_t size);

#endif
