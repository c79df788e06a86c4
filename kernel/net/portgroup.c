/*
 * Portgroups: named sets of ports on one vSwitch, with an optional VLAN id.
 *
 * Without a VLAN a port is an ordinary bridge port (in the bridge's default VLAN when the
 * bridge filters VLANs). With VLAN N the bridge filters VLANs, the uplinks carry N tagged,
 * and each port of the portgroup is an untagged member of N with N as its PVID and leaves
 * the default VLAN, so the VM sees untagged frames of its VLAN only (ESXi's virtual switch
 * tagging). Kernels built without CONFIG_BRIDGE_VLAN_FILTERING refuse VLAN portgroups with
 * KB_ENOTSUP. A portgroup is removed only when it has no ports; its VLAN leaves the uplinks
 * when no other portgroup of the vSwitch uses it.
 *
 * vmk__port_attach() is the one way an interface becomes a port: taps of VM NICs and the
 * bridge-side ends of VMkernel adapters.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <linux/if_bridge.h>

#include "kernel/net/net_internal.h"

/* Turns on VLAN filtering on bridge br unless it is on. */
static int bridge_filter_vlans(struct vmk_net *net, const struct vmk__link *br,
			       struct kb_errmsg *err)
{
	int rv;

	if (br->vlan_filtering)
		return 0;
	rv = vmk__link_bridge_vlan_filtering(net->nl, br->ifindex, true);
	if (rv == -EOPNOTSUPP) {
		kb_errmsg_setf(err,
			       "bridge %s: this kernel has no bridge VLAN filtering "
			       "(CONFIG_BRIDGE_VLAN_FILTERING)",
			       br->name);
		return KB_ENOTSUP;
	}
	if (rv < 0)
		vmk__net_errf(net, err, rv, "turning on VLAN filtering on bridge %s", br->name);
	return rv;
}

/* Removes vlan from the uplinks of vswitch unless a portgroup of c still uses it. */
static void vlan_release(struct vmk_net *net, const struct vmk__net_conf *c, const char *vswitch,
			 uint16_t vlan)
{
	const struct vmk__vswitch *vs = vmk__conf_vswitch(c, vswitch);
	struct vmk__link l;
	unsigned i;
	int rv;

	if (!vs || vlan == 0 || vmk__conf_vlan_used(c, vswitch, vlan, NULL))
		return;
	for (i = 0; i < vs->n_uplinks; i++) {
		if (vmk__link_get(net->nl, vs->uplinks[i], 0, &l) < 0)
			continue;
		rv = vmk__link_vlan_del(net->nl, l.ifindex, vlan);
		if (rv < 0 && rv != -ENOENT)
			kb_log(net->log, KB_LOG_WARN,
			       "network: removing VLAN %u from uplink %s: %s", vlan, vs->uplinks[i],
			       kb_strerror(rv));
	}
}

int vmk__portgroup_apply(struct vmk_net *net, const struct vmk__net_conf *conf,
			 const struct vmk__portgroup *pg, struct kb_errmsg *err)
{
	const struct vmk__vswitch *vs = vmk__conf_vswitch(conf, pg->vswitch);
	struct vmk__link br, l;
	unsigned i;
	int rv;

	if (pg->vlan == 0)
		return 0;
	rv = vmk__link_get(net->nl, pg->vswitch, 0, &br);
	if (rv < 0) {
		vmk__net_errf(net, err, rv, "looking up bridge %s", pg->vswitch);
		return rv;
	}
	rv = bridge_filter_vlans(net, &br, err);
	if (rv < 0)
		return rv;
	for (i = 0; vs && i < vs->n_uplinks; i++) {
		if (vmk__link_get(net->nl, vs->uplinks[i], 0, &l) < 0 || l.master != br.ifindex)
			continue; /* not there: it gets its VLANs when it is applied */
		rv = vmk__link_vlan_add(net->nl, l.ifindex, pg->vlan, 0);
		if (rv < 0) {
			vmk__net_errf(net, err, rv, "adding VLAN %u to uplink %s", pg->vlan,
				      vs->uplinks[i]);
			return rv;
		}
	}
	return 0;
}

/* Makes port l an untagged member of vlan with vlan as its PVID, and takes it out of the
 * bridge's default VLAN. */
static int port_vlan(struct vmk_net *net, struct vmk__link *br, const struct vmk__link *l,
		     uint16_t vlan, struct kb_errmsg *err)
{
	int rv;

	if ((rv = bridge_filter_vlans(net, br, err)) < 0)
		return rv;
	rv = vmk__link_vlan_add(net->nl, l->ifindex, vlan,
				BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED);
	if (rv < 0) {
		vmk__net_errf(net, err, rv, "putting port %s in VLAN %u", l->name, vlan);
		return rv;
	}
	/* Re-read: turning filtering on may have just made the default PVID known. */
	if (vmk__link_get(net->nl, NULL, br->ifindex, br) == 0 && br->default_pvid &&
	    br->default_pvid != vlan) {
		rv = vmk__link_vlan_del(net->nl, l->ifindex, br->default_pvid);
		if (rv < 0 && rv != -ENOENT) {
			vmk__net_errf(net, err, rv, "taking port %s out of VLAN %u", l->name,
				      br->default_pvid);
			return rv;
		}
	}
	return 0;
}

int vmk__port_attach(struct vmk_net *net, const struct vmk__net_conf *conf,
		     const struct vmk__portgroup *pg, const char *ifname, struct kb_errmsg *err)
{
	const struct vmk__vswitch *vs = vmk__conf_vswitch(conf, pg->vswitch);
	struct vmk__link br, l;
	int rv;

	if (!vs) {
		kb_errmsg_setf(err, "portgroup \"%s\" has no vSwitch", pg->name);
		return KB_ENOTFOUND;
	}
	if ((rv = vmk__link_get(net->nl, vs->name, 0, &br)) < 0 ||
	    (rv = vmk__link_get(net->nl, ifname, 0, &l)) < 0) {
		vmk__net_errf(net, err, rv, "port %s on bridge %s", ifname, vs->name);
		return rv;
	}
	if (l.mtu != vs->mtu && (rv = vmk__link_set_mtu(net->nl, l.ifindex, vs->mtu)) < 0) {
		vmk__net_errf(net, err, rv, "setting MTU %u on port %s", vs->mtu, ifname);
		return rv;
	}
	if (l.master != br.ifindex &&
	    (rv = vmk__link_set_master(net->nl, l.ifindex, br.ifindex)) < 0) {
		vmk__net_errf(net, err, rv, "adding port %s to bridge %s", ifname, vs->name);
		return rv;
	}
	if (pg->vlan && (rv = port_vlan(net, &br, &l, pg->vlan, err)) < 0) {
		/* Never leave it forwarding in the wrong VLAN. */
		(void)vmk__link_set_master(net->nl, l.ifindex, 0);
		return rv;
	}
	if (!(l.flags & IFF_UP) && (rv = vmk__link_set_up(net->nl, l.ifindex)) < 0) {
		vmk__net_errf(net, err, rv, "bringing port %s up", ifname);
		return rv;
	}
	return 0;
}

int vmk_net_portgroup_add(struct vmk_net *net, const char *name, const char *vswitch, uint32_t vlan,
			  struct kb_errmsg *err)
{
	struct vmk__portgroup pg = {{0}};
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	int rv;

	err = err ? err : &scratch;
	if ((rv = vmk__check_pg_name(name, err)) < 0 || (rv = vmk__check_vlan(vlan, err)) < 0)
		return rv;
	if (!vmk__conf_vswitch(net->conf, vswitch)) {
		kb_errmsg_setf(err, "no vSwitch named \"%.40s\"", vswitch);
		return KB_ENOTFOUND;
	}
	if (vmk__conf_portgroup(net->conf, name)) {
		kb_errmsg_setf(err, "portgroup \"%s\" already exists", name);
		return KB_EEXIST;
	}
	snprintf(pg.name, sizeof(pg.name), "%s", name);
	snprintf(pg.vswitch, sizeof(pg.vswitch), "%s", vswitch);
	pg.vlan = (uint16_t)vlan;
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	rv = vmk__conf_add_portgroup(next, &pg);
	if (rv < 0) {
		kb_errmsg_setf(err, "adding portgroup \"%s\": %s (at most %d)", name,
			       kb_strerror(rv), VMK_NET_PORTGROUPS_MAX);
		vmk__conf_free(next);
		return rv;
	}
	rv = vmk__portgroup_apply(net, next, &pg, err);
	if (rv < 0) {
		vmk__conf_free(next);
		vlan_release(net, net->conf, vswitch, pg.vlan);
		return rv;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0) {
		vlan_release(net, net->conf, vswitch, pg.vlan);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: added portgroup \"%s\" on vSwitch %s, VLAN %u",
	       name, vswitch, vlan);
	return 0;
}

int vmk_net_portgroup_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err)
{
	struct vmk__portgroup pg;
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	const struct vmk__portgroup *cur;
	size_t i;
	int rv;

	err = err ? err : &scratch;
	cur = vmk__conf_portgroup(net->conf, name);
	if (!cur) {
		kb_errmsg_setf(err, "no portgroup named \"%.63s\"", name);
		return KB_ENOTFOUND;
	}
	for (i = 0; i < net->conf->n_ports; i++) {
		if (strcmp(net->conf->ports[i].portgroup, name) == 0) {
			kb_errmsg_setf(err,
				       "portgroup \"%s\" is in use by port %s (NIC %u of VM %s)",
				       name, net->conf->ports[i].tap, net->conf->ports[i].nic,
				       net->conf->ports[i].vm_uuid);
			return KB_ESTATE;
		}
	}
	for (i = 0; i < net->conf->n_vmknics; i++) {
		if (strcmp(net->conf->vmknics[i].portgroup, name) == 0) {
			kb_errmsg_setf(err, "portgroup \"%s\" is in use by VMkernel adapter %s",
				       name, net->conf->vmknics[i].name);
			return KB_ESTATE;
		}
	}
	pg = *cur;
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vmk__conf_del_portgroup(next, name);
	rv = vmk__net_commit(net, next, err);
	if (rv < 0)
		return rv;
	vlan_release(net, net->conf, pg.vswitch, pg.vlan);
	kb_log(net->log, KB_LOG_INFO, "network: removed portgroup \"%s\"", pg.name);
	return 0;
}

int vmk_net_portgroup_find(struct vmk_net *net, const char *name, struct kb_errmsg *err)
{
	if (vmk__conf_portgroup(net->conf, name))
		return 0;
	if (err)
		kb_errmsg_setf(err, "no portgroup named \"%.63s\"", name);
	return KB_ENOTFOUND;
}
