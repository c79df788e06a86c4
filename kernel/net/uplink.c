/*
 * Uplinks: existing interfaces ("vmnicN" on real machines, veth ends in tests) enslaved to
 * a vSwitch's bridge.
 *
 * An uplink gets the vSwitch's MTU, joins the bridge, comes up and carries the VLANs of the
 * vSwitch's portgroups as tagged members (untagged traffic stays in the bridge's default
 * VLAN, the one of portgroups without a VLAN). Bridges, taps, loopback and ports of another
 * bridge are refused. An interface is an uplink of at most one vSwitch. Removing releases
 * the interface from the bridge and leaves it up. When saving the new configuration fails,
 * the kernel change is undone.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "kernel/net/net_internal.h"

/* Whether l may be an uplink of the bridge br; sets err when not. */
static int uplink_allowed(struct vmk_net *net, const struct vmk__link *l, int br,
			  struct kb_errmsg *err)
{
	struct vmk__link m;

	if (strcmp(l->kind, "bridge") == 0 || strcmp(l->kind, "tun") == 0 ||
	    (l->flags & IFF_LOOPBACK)) {
		kb_errmsg_setf(err, "%s is a %s and cannot be an uplink", l->name,
			       (l->flags & IFF_LOOPBACK) ? "loopback" : l->kind);
		return KB_ESTATE;
	}
	if (l->master && l->master != br) {
		if (vmk__link_get(net->nl, NULL, l->master, &m) < 0)
			snprintf(m.name, sizeof(m.name), "#%d", l->master);
		kb_errmsg_setf(err, "%s is already a port of bridge %s", l->name, m.name);
		return KB_ESTATE;
	}
	return 0;
}

int vmk__uplink_apply(struct vmk_net *net, const struct vmk__net_conf *conf,
		      const struct vmk__vswitch *vs, const char *nic, struct kb_errmsg *err)
{
	struct vmk__link br, l;
	size_t i;
	int rv;

	rv = vmk__link_get(net->nl, vs->name, 0, &br);
	if (rv < 0) {
		vmk__net_errf(net, err, rv, "looking up bridge %s", vs->name);
		return rv;
	}
	rv = vmk__link_get(net->nl, nic, 0, &l);
	if (rv < 0) {
		if (rv == KB_ENOTFOUND)
			kb_errmsg_setf(err, "uplink %s: no such interface", nic);
		else
			vmk__net_errf(net, err, rv, "uplink %s", nic);
		return rv;
	}
	rv = uplink_allowed(net, &l, br.ifindex, err);
	if (rv < 0)
		return rv;
	if (l.mtu != vs->mtu && (rv = vmk__link_set_mtu(net->nl, l.ifindex, vs->mtu)) < 0) {
		vmk__net_errf(net, err, rv, "setting MTU %u on uplink %s", vs->mtu, nic);
		return rv;
	}
	if (l.master != br.ifindex &&
	    (rv = vmk__link_set_master(net->nl, l.ifindex, br.ifindex)) < 0) {
		vmk__net_errf(net, err, rv, "adding uplink %s to bridge %s", nic, vs->name);
		goto err_mtu;
	}
	if (!(l.flags & IFF_UP) && (rv = vmk__link_set_up(net->nl, l.ifindex)) < 0) {
		vmk__net_errf(net, err, rv, "bringing uplink %s up", nic);
		goto err_master;
	}
	for (i = 0; i < conf->n_portgroups; i++) {
		const struct vmk__portgroup *pg = &conf->portgroups[i];

		if (pg->vlan == 0 || strcmp(pg->vswitch, vs->name) != 0)
			continue;
		rv = vmk__link_vlan_add(net->nl, l.ifindex, pg->vlan, 0);
		if (rv < 0) {
			vmk__net_errf(net, err, rv, "adding VLAN %u to uplink %s", pg->vlan, nic);
			goto err_master;
		}
	}
	return 0;

err_master:
	if (l.master != br.ifindex)
		(void)vmk__link_set_master(net->nl, l.ifindex, l.master);
err_mtu:
	if (l.mtu != vs->mtu)
		(void)vmk__link_set_mtu(net->nl, l.ifindex, l.mtu);
	return rv;
}

/* The vSwitch that has nic as an uplink, or NULL. */
static struct vmk__vswitch *uplink_owner(const struct vmk__net_conf *c, const char *nic,
					 unsigned *index)
{
	size_t i;
	unsigned j;

	for (i = 0; i < c->n_vswitches; i++) {
		for (j = 0; j < c->vswitches[i].n_uplinks; j++) {
			if (strcmp(c->vswitches[i].uplinks[j], nic) == 0) {
				if (index)
					*index = j;
				return &c->vswitches[i];
			}
		}
	}
	return NULL;
}

int vmk_net_uplink_add(struct vmk_net *net, const char *vswitch, const char *nic,
		       struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct vmk__vswitch *vs, *owner;
	struct kb_errmsg scratch;
	struct vmk__link l;
	int rv;

	err = err ? err : &scratch;
	rv = vmk__check_ifname(nic, "uplink name", err);
	if (rv < 0)
		return rv;
	if (!vmk__conf_vswitch(net->conf, vswitch)) {
		kb_errmsg_setf(err, "no vSwitch named \"%.40s\"", vswitch);
		return KB_ENOTFOUND;
	}
	owner = uplink_owner(net->conf, nic, NULL);
	if (owner) {
		kb_errmsg_setf(err, "%s is already an uplink of vSwitch %s", nic, owner->name);
		return KB_EEXIST;
	}
	if (vmk__conf_vswitch(net->conf, nic)) {
		kb_errmsg_setf(err, "%s is a vSwitch and cannot be an uplink", nic);
		return KB_ESTATE;
	}
	rv = vmk__link_get(net->nl, nic, 0, &l);
	if (rv < 0) {
		if (rv == KB_ENOTFOUND)
			kb_errmsg_setf(err, "uplink %s: no such interface", nic);
		else
			vmk__net_errf(net, err, rv, "uplink %s", nic);
		return rv;
	}
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vs = vmk__conf_vswitch(next, vswitch);
	if (vs->n_uplinks == VMK_NET_UPLINKS_MAX) {
		kb_errmsg_setf(err, "vSwitch %s has %d uplinks already", vswitch,
			       VMK_NET_UPLINKS_MAX);
		rv = KB_ETOOBIG;
		goto err_next;
	}
	snprintf(vs->uplinks[vs->n_uplinks++], VMK_NET_IFNAME_MAX, "%s", nic);
	rv = vmk__uplink_apply(net, next, vs, nic, err);
	if (rv < 0)
		goto err_next;
	rv = vmk__net_commit(net, next, err);
	if (rv < 0) {
		(void)vmk__link_set_master(net->nl, l.ifindex, 0);
		(void)vmk__link_set_mtu(net->nl, l.ifindex, l.mtu);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: added uplink %s to vSwitch %s", nic, vswitch);
	return 0;

err_next:
	vmk__conf_free(next);
	return rv;
}

int vmk_net_uplink_remove(struct vmk_net *net, const char *vswitch, const char *nic,
			  struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct vmk__vswitch *vs;
	struct kb_errmsg scratch;
	struct vmk__link l, br;
	unsigned i;
	int rv;

	err = err ? err : &scratch;
	vs = uplink_owner(net->conf, nic, &i);
	if (!vs || strcmp(vs->name, vswitch) != 0) {
		kb_errmsg_setf(err, "%.40s is not an uplink of vSwitch \"%.40s\"", nic, vswitch);
		return KB_ENOTFOUND;
	}
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vs = vmk__conf_vswitch(next, vswitch);
	memmove(vs->uplinks[i], vs->uplinks[i + 1],
		(vs->n_uplinks - i - 1) * sizeof(vs->uplinks[0]));
	vs->n_uplinks--;
	if (vmk__link_get(net->nl, nic, 0, &l) == 0 &&
	    vmk__link_get(net->nl, vswitch, 0, &br) == 0 && l.master == br.ifindex) {
		rv = vmk__link_set_master(net->nl, l.ifindex, 0);
		if (rv < 0) {
			vmk__net_errf(net, err, rv, "releasing uplink %s from bridge %s", nic,
				      vswitch);
			vmk__conf_free(next);
			return rv;
		}
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0) {
		struct kb_errmsg ignored;

		(void)vmk__uplink_apply(net, net->conf, vmk__conf_vswitch(net->conf, vswitch), nic,
					&ignored);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: removed uplink %s from vSwitch %s", nic, vswitch);
	return 0;
}
