/*
 * rtnetlink requests for VMkernel adapters: veth pairs (one end created straight into
 * another namespace, as `ip link add A type veth peer name B netns N` does), MAC
 * addresses, IPv4 addresses (RTM_NEWADDR / RTM_DELADDR / an RTM_GETADDR dump) and the
 * default route of a namespace (RTM_NEWROUTE with NLM_F_REPLACE / RTM_DELROUTE).
 *
 * Each call works in the namespace of the socket it is given; the caller picks the socket
 * of the adapter's netstack (netns.c). Results are 0 or the kernel's -errno.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/veth.h>

#include "kernel/net/net_internal.h"

int vmk__link_veth_create(struct vmk__nl *nl, const char *name, const char *peer, int peer_nsfd,
			  const uint8_t mac[6], uint32_t mtu)
{
	struct vmk__nlmsg m;

	vmk__nlmsg_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	vmk__nlmsg_reserve(&m, sizeof(struct ifinfomsg));
	vmk__nlmsg_put_str(&m, IFLA_IFNAME, name);
	vmk__nlmsg_nest_begin(&m, IFLA_LINKINFO);
	vmk__nlmsg_put_str(&m, IFLA_INFO_KIND, "veth");
	vmk__nlmsg_nest_begin(&m, IFLA_INFO_DATA);
	vmk__nlmsg_nest_begin(&m, VETH_INFO_PEER);
	vmk__nlmsg_reserve(&m, sizeof(struct ifinfomsg));
	vmk__nlmsg_put_str(&m, IFLA_IFNAME, peer);
	if (peer_nsfd >= 0)
		vmk__nlmsg_put_u32(&m, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
	vmk__nlmsg_put(&m, IFLA_ADDRESS, mac, 6);
	vmk__nlmsg_put_u32(&m, IFLA_MTU, mtu);
	vmk__nlmsg_nest_end(&m);
	vmk__nlmsg_nest_end(&m);
	vmk__nlmsg_nest_end(&m);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_set_mac(struct vmk__nl *nl, int ifindex, const uint8_t mac[6])
{
	struct vmk__nlmsg m;
	struct ifinfomsg *ifi;

	vmk__nlmsg_init(&m, RTM_NEWLINK, 0);
	ifi = vmk__nlmsg_reserve(&m, sizeof(*ifi));
	if (ifi)
		ifi->ifi_index = ifindex;
	vmk__nlmsg_put(&m, IFLA_ADDRESS, mac, 6);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

struct addr_dump {
	int ifindex;
	uint32_t *ips;
	uint8_t *prefixes;
	size_t max, n;
};

static int addr_parse(const struct nlmsghdr *h, void *arg)
{
	struct addr_dump *d = arg;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	const struct nlattr *tb[IFA_MAX + 1];
	const struct nlattr *a;
	int rv;

	if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) ||
	    ifa->ifa_family != AF_INET || (int)ifa->ifa_index != d->ifindex)
		return 0;
	rv = vmk__nl_parse_msg(tb, IFA_MAX, h, sizeof(*ifa));
	if (rv < 0)
		return rv;
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a || vmk__nla_len(a) != 4)
		return 0;
	if (d->n < d->max) {
		memcpy(&d->ips[d->n], vmk__nla_data(a), 4);
		d->prefixes[d->n] = ifa->ifa_prefixlen;
	}
	d->n++;
	return 0;
}

int vmk__addr_list(struct vmk__nl *nl, int ifindex, uint32_t *ips, uint8_t *prefixes, size_t max,
		   size_t *n)
{
	struct addr_dump d = {.ifindex = ifindex, .ips = ips, .prefixes = prefixes, .max = max};
	struct vmk__nlmsg m;
	struct ifaddrmsg *ifa;
	int rv;

	vmk__nlmsg_init(&m, RTM_GETADDR, NLM_F_DUMP);
	ifa = vmk__nlmsg_reserve(&m, sizeof(*ifa));
	if (ifa)
		ifa->ifa_family = AF_INET;
	rv = vmk__nl_call(nl, &m, addr_parse, &d);
	*n = d.n;
	return rv;
}

static int addr_request(struct vmk__nl *nl, uint16_t type, uint16_t flags, int ifindex, uint32_t ip,
			uint8_t prefix)
{
	struct vmk__nlmsg m;
	struct ifaddrmsg *ifa;

	vmk__nlmsg_init(&m, type, flags);
	ifa = vmk__nlmsg_reserve(&m, sizeof(*ifa));
	if (ifa) {
		ifa->ifa_family = AF_INET;
		ifa->ifa_prefixlen = prefix;
		ifa->ifa_index = (uint32_t)ifindex;
		ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	}
	vmk__nlmsg_put(&m, IFA_LOCAL, &ip, 4);
	vmk__nlmsg_put(&m, IFA_ADDRESS, &ip, 4);
	if (type == RTM_NEWADDR && prefix < 31) {
		uint32_t brd = ip | ~vmk__prefix_mask(prefix);

		vmk__nlmsg_put(&m, IFA_BROADCAST, &brd, 4);
	}
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__addr_add(struct vmk__nl *nl, int ifindex, uint32_t ip, uint8_t prefix)
{
	return addr_request(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, ip, prefix);
}

int vmk__addr_del(struct vmk__nl *nl, int ifindex, uint32_t ip, uint8_t prefix)
{
	return addr_request(nl, RTM_DELADDR, 0, ifindex, ip, prefix);
}

int vmk__route_default(struct vmk__nl *nl, int ifindex, uint32_t gw)
{
	struct vmk__nlmsg m;
	struct rtmsg *rt;

	vmk__nlmsg_init(&m, gw ? RTM_NEWROUTE : RTM_DELROUTE,
			gw ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	rt = vmk__nlmsg_reserve(&m, sizeof(*rt));
	if (rt) {
		rt->rtm_family = AF_INET;
		rt->rtm_table = RT_TABLE_MAIN;
		rt->rtm_protocol = RTPROT_STATIC;
		rt->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_NOWHERE;
		rt->rtm_type = gw ? RTN_UNICAST : RTN_UNSPEC;
	}
	if (gw)
		vmk__nlmsg_put(&m, RTA_GATEWAY, &gw, 4);
	vmk__nlmsg_put_u32(&m, RTA_OIF, (uint32_t)ifindex);
	return vmk__nl_call(nl, &m, NULL, NULL);
}
