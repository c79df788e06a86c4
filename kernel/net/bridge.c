/*
 * vSwitches: a vSwitch is a Linux bridge of the same name with an MTU.
 *
 * Adding creates the bridge (or reuses a bridge of that name, e.g. one left by a vmkernel
 * that stopped before saving), sets its MTU and brings it up. Setting the MTU changes the
 * bridge, its uplinks and its ports together. A vSwitch is removed only when no portgroup
 * uses it; removing deletes the bridge, which releases its uplinks. When saving the new
 * configuration fails, the kernel change is undone.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "kernel/net/net_internal.h"

int vmk__bridge_apply(struct vmk_net *net, const struct vmk__vswitch *vs, int *ifindex,
		      struct kb_errmsg *err)
{
	struct vmk__link l;
	int rv;

	rv = vmk__link_get(net->nl, vs->name, 0, &l);
	if (rv == KB_ENOTFOUND) {
		rv = vmk__link_bridge_create(net->nl, vs->name);
		if (rv < 0) {
			vmk__net_errf(net, err, rv, "creating bridge %s", vs->name);
			return rv;
		}
		kb_log(net->log, KB_LOG_INFO, "network: created bridge %s", vs->name);
		rv = vmk__link_get(net->nl, vs->name, 0, &l);
	}
	if (rv < 0) {
		vmk__net_errf(net, err, rv, "looking up bridge %s", vs->name);
		return rv;
	}
	if (strcmp(l.kind, "bridge") != 0) {
		kb_errmsg_setf(err, "interface %s exists and is not a bridge", vs->name);
		return KB_EEXIST;
	}
	if (l.mtu != vs->mtu && (rv = vmk__link_set_mtu(net->nl, l.ifindex, vs->mtu)) < 0) {
		vmk__net_errf(net, err, rv, "setting MTU %u on bridge %s", vs->mtu, vs->name);
		return rv;
	}
	if (!(l.flags & IFF_UP) && (rv = vmk__link_set_up(net->nl, l.ifindex)) < 0) {
		vmk__net_errf(net, err, rv, "bringing bridge %s up", vs->name);
		return rv;
	}
	*ifindex = l.ifindex;
	return 0;
}

int vmk_net_vswitch_add(struct vmk_net *net, const char *name, uint32_t mtu, struct kb_errmsg *err)
{
	struct vmk__vswitch vs = {{0}};
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__link l;
	bool existed;
	int rv, ifindex;

	err = err ? err : &scratch;
	vs.mtu = mtu ? mtu : VMK_NET_MTU_DEFAULT;
	if ((rv = vmk__check_ifname(name, "vSwitch name", err)) < 0 ||
	    (rv = vmk__check_mtu(vs.mtu, err)) < 0)
		return rv;
	snprintf(vs.name, sizeof(vs.name), "%s", name);
	if (vmk__conf_vswitch(net->conf, name)) {
		kb_errmsg_setf(err, "vSwitch %s already exists", name);
		return KB_EEXIST;
	}
	existed = vmk__link_get(net->nl, name, 0, &l) == 0;
	if (existed && strcmp(l.kind, "bridge") != 0) {
		kb_errmsg_setf(err, "interface %s exists and is not a bridge", name);
		return KB_EEXIST;
	}
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	rv = vmk__conf_add_vswitch(next, &vs);
	if (rv < 0) {
		kb_errmsg_setf(err, "adding vSwitch %s: %s (at most %d)", name, kb_strerror(rv),
			       VMK_NET_VSWITCHES_MAX);
		goto err_next;
	}
	rv = vmk__bridge_apply(net, &vs, &ifindex, err);
	if (rv < 0)
		goto err_next;
	rv = vmk__net_commit(net, next, err);
	if (rv < 0 && !existed)
		(void)vmk__link_delete(net->nl, ifindex);
	if (rv == 0)
		kb_log(net->log, KB_LOG_INFO, "network: added vSwitch %s (MTU %u)", name, vs.mtu);
	return rv;

err_next:
	vmk__conf_free(next);
	return rv;
}

int vmk_net_vswitch_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__vswitch *vs;
	struct vmk__link l;
	size_t i;
	int rv;

	err = err ? err : &scratch;
	vs = vmk__conf_vswitch(net->conf, name);
	if (!vs) {
		kb_errmsg_setf(err, "no vSwitch named \"%.40s\"", name);
		return KB_ENOTFOUND;
	}
	for (i = 0; i < net->conf->n_portgroups; i++) {
		if (strcmp(net->conf->portgroups[i].vswitch, name) == 0) {
			kb_errmsg_setf(err, "vSwitch %s is in use by portgroup \"%s\"", name,
				       net->conf->portgroups[i].name);
			return KB_ESTATE;
		}
	}
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vmk__conf_del_vswitch(next, name);
	rv = vmk__link_get(net->nl, name, 0, &l);
	if (rv == 0 && strcmp(l.kind, "bridge") == 0)
		rv = vmk__link_delete(net->nl, l.ifindex);
	if (rv < 0 && rv != KB_ENOTFOUND) {
		vmk__net_errf(net, err, rv, "deleting bridge %s", name);
		vmk__conf_free(next);
		return rv;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0) {
		/* Still configured: put the bridge and its uplinks back. */
		struct kb_errmsg ignored;
		int ifindex;

		if (vmk__bridge_apply(net, vs, &ifindex, &ignored) == 0)
			for (i = 0; i < vs->n_uplinks; i++)
				(void)vmk__uplink_apply(net, net->conf, vs, vs->uplinks[i],
							&ignored);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: removed vSwitch %s", name);
	return 0;
}

/* The k-th interface that carries the MTU of vs: the bridge, its uplinks, the ports of
 * its portgroups, then the bridge-side ends of its VMkernel adapters (into buf); NULL past
 * the end. */
static const char *mtu_member(const struct vmk__net_conf *c, const struct vmk__vswitch *vs,
			      size_t k, char buf[VMK_NET_IFNAME_MAX])
{
	size_t i;

	if (k == 0)
		return vs->name;
	k--;
	if (k < vs->n_uplinks)
		return vs->uplinks[k];
	k -= vs->n_uplinks;
	for (i = 0; i < c->n_ports; i++) {
		const struct vmk__portgroup *pg = vmk__conf_portgroup(c, c->ports[i].portgroup);

		if (pg && strcmp(pg->vswitch, vs->name) == 0 && k-- == 0)
			return c->ports[i].tap;
	}
	for (i = 0; i < c->n_vmknics; i++) {
		const struct vmk__portgroup *pg = vmk__conf_portgroup(c, c->vmknics[i].portgroup);

		if (pg && strcmp(pg->vswitch, vs->name) == 0 && k-- == 0) {
			vmk__vmknic_port_name(c->vmknics[i].name, buf);
			return buf;
		}
	}
	return NULL;
}

/* Sets mtu on every member of vs that exists; on a failure the members already changed
 * get old back. */
static int set_mtu_all(struct vmk_net *net, const struct vmk__vswitch *vs, uint32_t mtu,
		       uint32_t old, struct kb_errmsg *err)
{
	char buf[VMK_NET_IFNAME_MAX];
	const char *name;
	struct vmk__link l;
	size_t k, j;
	int rv;

	for (k = 0; (name = mtu_member(net->conf, vs, k, buf)); k++) {
		rv = vmk__link_get(net->nl, name, 0, &l);
		if (rv == KB_ENOTFOUND && k > 0)
			continue; /* a missing uplink or port gets the MTU when it comes back */
		if (rv == 0 && l.mtu != mtu)
			rv = vmk__link_set_mtu(net->nl, l.ifindex, mtu);
		if (rv < 0) {
			vmk__net_errf(net, err, rv, "setting MTU %u on %s", mtu, name);
			goto err_undo;
		}
	}
	return 0;

err_undo:
	for (j = 0; j < k; j++) {
		name = mtu_member(net->conf, vs, j, buf);
		if (vmk__link_get(net->nl, name, 0, &l) == 0)
			(void)vmk__link_set_mtu(net->nl, l.ifindex, old);
	}
	return rv;
}

int vmk_net_vswitch_set_mtu(struct vmk_net *net, const char *name, uint32_t mtu,
			    struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__vswitch *vs;
	uint32_t old;
	int rv;

	err = err ? err : &scratch;
	rv = vmk__check_mtu(mtu, err);
	if (rv < 0)
		return rv;
	vs = vmk__conf_vswitch(net->conf, name);
	if (!vs) {
		kb_errmsg_setf(err, "no vSwitch named \"%.40s\"", name);
		return KB_ENOTFOUND;
	}
	for (size_t i = 0; i < net->conf->n_vmknics; i++) {
		const struct vmk__vmknic *v = &net->conf->vmknics[i];
		const struct vmk__portgroup *pg = vmk__conf_portgroup(net->conf, v->portgroup);

		if (pg && strcmp(pg->vswitch, name) == 0 && v->mtu > mtu) {
			kb_errmsg_setf(err,
				       "MTU %u is below the MTU of VMkernel adapter %s (%u); "
				       "lower that first",
				       mtu, v->name, v->mtu);
			return KB_ESTATE;
		}
	}
	old = vs->mtu;
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vmk__conf_vswitch(next, name)->mtu = mtu;
	rv = set_mtu_all(net, vs, mtu, old, err);
	if (rv < 0) {
		vmk__conf_free(next);
		return rv;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0) {
		struct kb_errmsg ignored;

		(void)set_mtu_all(net, vmk__conf_vswitch(net->conf, name), old, mtu, &ignored);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: vSwitch %s MTU %u", name, mtu);
	return 0;
}
