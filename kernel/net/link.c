/*
 * Interfaces over rtnetlink: look one up, create a bridge, delete, enslave or release,
 * bring up, set the MTU, turn on bridge VLAN filtering, and add, remove and list the
 * VLANs of a bridge port.
 *
 * Each function is one request answered by an acknowledgement (or a reply), and returns 0
 * or the kernel's -errno; the kernel's extended-ack text stays in nl->ext_msg for the
 * caller's message. Interface requests use RTM_NEWLINK without NLM_F_CREATE on an existing
 * index, as ip-link(8) does; VLAN requests use the AF_BRIDGE family with IFLA_AF_SPEC /
 * IFLA_BRIDGE_VLAN_INFO, as bridge-vlan(8) does.
 */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>

#include "kernel/net/net_internal.h"

#ifndef RTEXT_FILTER_SKIP_STATS
#define RTEXT_FILTER_SKIP_STATS (1 << 3)
#endif

static struct ifinfomsg *link_msg(struct vmk__nlmsg *m, uint16_t type, uint16_t flags,
				  uint8_t family, int ifindex)
{
	struct ifinfomsg *ifi;

	vmk__nlmsg_init(m, type, flags);
	ifi = vmk__nlmsg_reserve(m, sizeof(*ifi));
	if (ifi) {
		ifi->ifi_family = family;
		ifi->ifi_index = ifindex;
	}
	return ifi;
}

static void parse_bridge_data(const struct nlattr *data, struct vmk__link *out)
{
	const struct nlattr *tb[IFLA_BR_MAX + 1];

	if (!data || vmk__nl_parse(tb, IFLA_BR_MAX, vmk__nla_data(data), vmk__nla_len(data)) < 0)
		return;
	out->vlan_filtering = vmk__nla_u8(tb[IFLA_BR_VLAN_FILTERING], 0) != 0;
	out->default_pvid = vmk__nla_u16(tb[IFLA_BR_VLAN_DEFAULT_PVID], 0);
}

static int link_parse(const struct nlmsghdr *h, void *arg)
{
	struct vmk__link *out = arg;
	const struct nlattr *tb[IFLA_MAX + 1], *li[IFLA_INFO_MAX + 1];
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	int rv;

	if (h->nlmsg_type != RTM_NEWLINK)
		return 0;
	rv = vmk__nl_parse_msg(tb, IFLA_MAX, h, sizeof(*ifi));
	if (rv < 0)
		return rv;
	memset(out, 0, sizeof(*out));
	out->ifindex = ifi->ifi_index;
	out->flags = ifi->ifi_flags;
	out->master = (int)vmk__nla_u32(tb[IFLA_MASTER], 0);
	out->mtu = vmk__nla_u32(tb[IFLA_MTU], 0);
	out->carrier = vmk__nla_u8(tb[IFLA_CARRIER], 0) != 0;
	vmk__nla_str(tb[IFLA_IFNAME], out->name, sizeof(out->name));
	if (tb[IFLA_ADDRESS] && vmk__nla_len(tb[IFLA_ADDRESS]) == sizeof(out->mac))
		memcpy(out->mac, vmk__nla_data(tb[IFLA_ADDRESS]), sizeof(out->mac));
	if (tb[IFLA_LINKINFO] && vmk__nl_parse(li, IFLA_INFO_MAX, vmk__nla_data(tb[IFLA_LINKINFO]),
					       vmk__nla_len(tb[IFLA_LINKINFO])) == 0) {
		vmk__nla_str(li[IFLA_INFO_KIND], out->kind, sizeof(out->kind));
		if (strcmp(out->kind, "bridge") == 0)
			parse_bridge_data(li[IFLA_INFO_DATA], out);
	}
	return 0;
}

int vmk__link_get(struct vmk__nl *nl, const char *name, int ifindex, struct vmk__link *out)
{
	struct vmk__nlmsg m;
	int rv;

	link_msg(&m, RTM_GETLINK, 0, AF_UNSPEC, ifindex);
	if (ifindex == 0)
		vmk__nlmsg_put_str(&m, IFLA_IFNAME, name);
	vmk__nlmsg_put_u32(&m, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(out, 0, sizeof(*out));
	rv = vmk__nl_call(nl, &m, link_parse, out);
	if (rv == -ENODEV)
		return KB_ENOTFOUND;
	if (rv == 0 && out->ifindex == 0)
		return KB_EPROTO;
	return rv;
}

int vmk__link_bridge_create(struct vmk__nl *nl, const char *name)
{
	struct vmk__nlmsg m;

	link_msg(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
	vmk__nlmsg_put_str(&m, IFLA_IFNAME, name);
	vmk__nlmsg_nest_begin(&m, IFLA_LINKINFO);
	vmk__nlmsg_put_str(&m, IFLA_INFO_KIND, "bridge");
	vmk__nlmsg_nest_end(&m);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_delete(struct vmk__nl *nl, int ifindex)
{
	struct vmk__nlmsg m;

	link_msg(&m, RTM_DELLINK, 0, AF_UNSPEC, ifindex);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_set_master(struct vmk__nl *nl, int ifindex, int master)
{
	struct vmk__nlmsg m;

	link_msg(&m, RTM_NEWLINK, 0, AF_UNSPEC, ifindex);
	vmk__nlmsg_put_u32(&m, IFLA_MASTER, (uint32_t)master);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_set_up(struct vmk__nl *nl, int ifindex)
{
	struct vmk__nlmsg m;
	struct ifinfomsg *ifi = link_msg(&m, RTM_NEWLINK, 0, AF_UNSPEC, ifindex);

	if (ifi) {
		ifi->ifi_flags = IFF_UP;
		ifi->ifi_change = IFF_UP;
	}
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_set_mtu(struct vmk__nl *nl, int ifindex, uint32_t mtu)
{
	struct vmk__nlmsg m;

	link_msg(&m, RTM_NEWLINK, 0, AF_UNSPEC, ifindex);
	vmk__nlmsg_put_u32(&m, IFLA_MTU, mtu);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_bridge_vlan_filtering(struct vmk__nl *nl, int br_ifindex, bool on)
{
	struct vmk__nlmsg m;

	link_msg(&m, RTM_NEWLINK, 0, AF_UNSPEC, br_ifindex);
	vmk__nlmsg_nest_begin(&m, IFLA_LINKINFO);
	vmk__nlmsg_put_str(&m, IFLA_INFO_KIND, "bridge");
	vmk__nlmsg_nest_begin(&m, IFLA_INFO_DATA);
	vmk__nlmsg_put_u8(&m, IFLA_BR_VLAN_FILTERING, on ? 1 : 0);
	vmk__nlmsg_nest_end(&m);
	vmk__nlmsg_nest_end(&m);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

static int vlan_request(struct vmk__nl *nl, uint16_t type, int ifindex, uint16_t vid,
			uint16_t flags)
{
	struct bridge_vlan_info vi = {.flags = flags, .vid = vid};
	struct vmk__nlmsg m;

	link_msg(&m, type, 0, AF_BRIDGE, ifindex);
	vmk__nlmsg_nest_begin(&m, IFLA_AF_SPEC);
	vmk__nlmsg_put(&m, IFLA_BRIDGE_VLAN_INFO, &vi, sizeof(vi));
	vmk__nlmsg_nest_end(&m);
	return vmk__nl_call(nl, &m, NULL, NULL);
}

int vmk__link_vlan_add(struct vmk__nl *nl, int ifindex, uint16_t vid, uint16_t flags)
{
	return vlan_request(nl, RTM_SETLINK, ifindex, vid, flags);
}

int vmk__link_vlan_del(struct vmk__nl *nl, int ifindex, uint16_t vid)
{
	return vlan_request(nl, RTM_DELLINK, ifindex, vid, 0);
}

struct vlan_dump {
	int ifindex;
	struct vmk__vlan *out;
	size_t max, n;
};

static int vlan_parse(const struct nlmsghdr *h, void *arg)
{
	struct vlan_dump *d = arg;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	const struct nlattr *tb[IFLA_MAX + 1];
	const uint8_t *p;
	size_t left;
	int rv;

	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) ||
	    ifi->ifi_index != d->ifindex)
		return 0;
	rv = vmk__nl_parse_msg(tb, IFLA_MAX, h, sizeof(*ifi));
	if (rv < 0 || !tb[IFLA_AF_SPEC])
		return rv;
	/* IFLA_AF_SPEC holds one IFLA_BRIDGE_VLAN_INFO per VLAN, among other attributes. */
	p = vmk__nla_data(tb[IFLA_AF_SPEC]);
	left = vmk__nla_len(tb[IFLA_AF_SPEC]);
	while (left >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)p;
		struct bridge_vlan_info vi;
		size_t step;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > left)
			return KB_EPROTO;
		if ((a->nla_type & NLA_TYPE_MASK) == IFLA_BRIDGE_VLAN_INFO &&
		    vmk__nla_len(a) >= sizeof(vi)) {
			memcpy(&vi, vmk__nla_data(a), sizeof(vi));
			if (d->n < d->max) {
				d->out[d->n].vid = vi.vid;
				d->out[d->n].flags = vi.flags;
			}
			d->n++;
		}
		step = NLA_ALIGN(a->nla_len);
		if (step >= left)
			break;
		p += step;
		left -= step;
	}
	return 0;
}

int vmk__link_vlans(struct vmk__nl *nl, int ifindex, struct vmk__vlan *out, size_t max, size_t *n)
{
	struct vlan_dump d = {.ifindex = ifindex, .out = out, .max = max};
	struct vmk__nlmsg m;
	int rv;

	link_msg(&m, RTM_GETLINK, NLM_F_DUMP, AF_BRIDGE, 0);
	vmk__nlmsg_put_u32(&m, IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN);
	rv = vmk__nl_call(nl, &m, vlan_parse, &d);
	*n = d.n;
	return rv;
}
