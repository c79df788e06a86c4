/*
 * VMkernel adapters: the host's own IPv4 interfaces (vmk0, vmk1, ...), each a port of a
 * portgroup and living in one netstack.
 *
 * An adapter is a veth pair. One end, "vmkp" + the adapter's number, is a port of the
 * portgroup's bridge (vmk__port_attach: the vSwitch's MTU, the portgroup's VLAN, up) and
 * stays in vmkernel's namespace; the other end is created straight into the netstack's
 * namespace under the adapter's name, with its MAC and MTU, then gets its address, is
 * brought up and, with a gateway, carries the netstack's default route. Applying is
 * idempotent: a pair that is whole is kept and corrected, half a pair is deleted and made
 * again. One default gateway per netstack: a second adapter of the netstack may only name
 * the same gateway.
 *
 * Order of a change: checks; a copy of the configuration with the change; the kernel made
 * to match the new record; the copy saved and swapped in. When a step fails the kernel is
 * put back as the old record says (or the new pair deleted), so memory, file and kernel
 * agree. Tags change only the configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>

#include "kernel/net/net_internal.h"

#define ADDRS_MAX 16

/* Sets the IPv4 addresses of ifindex to exactly v's. */
static int apply_addr(struct vmk_net *net, struct vmk__stack *st, const struct vmk__vmknic *v,
		      int ifindex, struct kb_errmsg *err)
{
	uint32_t ips[ADDRS_MAX];
	uint8_t prefixes[ADDRS_MAX];
	char a[16];
	bool have = false;
	size_t i, n;
	int rv;

	rv = vmk__addr_list(st->nl, ifindex, ips, prefixes, ADDRS_MAX, &n);
	for (i = 0; rv == 0 && i < n && i < ADDRS_MAX; i++) {
		if (ips[i] == v->ip && prefixes[i] == v->prefix) {
			have = true;
			continue;
		}
		rv = vmk__addr_del(st->nl, ifindex, ips[i], prefixes[i]);
		if (rv == -EADDRNOTAVAIL)
			rv = 0;
	}
	if (rv == 0 && !have)
		rv = vmk__addr_add(st->nl, ifindex, v->ip, v->prefix);
	if (rv < 0)
		vmk__net_errf(net, err, rv, "setting address %s/%u on %s",
			      vmk__ipv4_format(v->ip, a), v->prefix, v->name);
	return rv;
}

/* Makes the veth pair of v exist whole; its vmkN end into *vl. */
static int ensure_pair(struct vmk_net *net, struct vmk__stack *st, const struct vmk__vmknic *v,
		       const char *port, struct vmk__link *vl, struct kb_errmsg *err)
{
	struct vmk__link pl;
	bool have_p, have_v;
	int rv;

	have_p = vmk__link_get(net->nl, port, 0, &pl) == 0;
	have_v = vmk__link_get(st->nl, v->name, 0, vl) == 0;
	if ((have_p && strcmp(pl.kind, "veth") != 0) || (have_v && strcmp(vl->kind, "veth") != 0)) {
		kb_errmsg_setf(err, "interface %s exists and is not a veth",
			       have_v && strcmp(vl->kind, "veth") != 0 ? v->name : port);
		return KB_EEXIST;
	}
	if (have_p && have_v)
		return 0;
	if (have_p)
		(void)vmk__link_delete(net->nl, pl.ifindex);
	if (have_v)
		(void)vmk__link_delete(st->nl, vl->ifindex);
	rv = vmk__link_veth_create(net->nl, port, v->name, st->nsfd, v->mac, v->mtu);
	if (rv < 0) {
		vmk__net_errf(net, err, rv, "creating veth pair %s/%s", port, v->name);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: created %s (netstack %s) and its port %s", v->name,
	       v->netstack, port);
	rv = vmk__link_get(st->nl, v->name, 0, vl);
	if (rv < 0)
		vmk__net_errf(net, err, rv, "looking up %s in netstack %s", v->name, v->netstack);
	return rv;
}

int vmk__vmknic_apply(struct vmk_net *net, const struct vmk__net_conf *conf,
		      const struct vmk__vmknic *v, struct kb_errmsg *err)
{
	const struct vmk__portgroup *pg = vmk__conf_portgroup(conf, v->portgroup);
	char port[VMK_NET_IFNAME_MAX], a[16];
	struct vmk__stack st;
	struct vmk__link vl;
	int rv;

	if (!pg) {
		kb_errmsg_setf(err, "no portgroup named \"%.63s\"", v->portgroup);
		return KB_ENOTFOUND;
	}
	vmk__vmknic_port_name(v->name, port);
	rv = vmk__stack_open(net, v->netstack, true, &st, err);
	if (rv < 0)
		return rv;
	rv = ensure_pair(net, &st, v, port, &vl, err);
	if (rv < 0)
		goto out;
	rv = vmk__port_attach(net, conf, pg, port, err);
	if (rv < 0)
		goto out;
	if (memcmp(vl.mac, v->mac, sizeof(v->mac)) != 0 &&
	    (rv = vmk__link_set_mac(st.nl, vl.ifindex, v->mac)) < 0) {
		vmk__net_errf(net, err, rv, "setting the MAC of %s", v->name);
		goto out;
	}
	if (vl.mtu != v->mtu && (rv = vmk__link_set_mtu(st.nl, vl.ifindex, v->mtu)) < 0) {
		vmk__net_errf(net, err, rv, "setting MTU %u on %s", v->mtu, v->name);
		goto out;
	}
	if (!(vl.flags & IFF_UP) && (rv = vmk__link_set_up(st.nl, vl.ifindex)) < 0) {
		vmk__net_errf(net, err, rv, "bringing %s up", v->name);
		goto out;
	}
	rv = apply_addr(net, &st, v, vl.ifindex, err);
	if (rv < 0)
		goto out;
	rv = vmk__route_default(st.nl, vl.ifindex, v->gateway);
	if (rv == -ESRCH && !v->gateway)
		rv = 0;
	if (rv < 0)
		vmk__net_errf(net, err, rv, "default route via %s on %s",
			      vmk__ipv4_format(v->gateway, a), v->name);
out:
	vmk__stack_close(&st);
	return rv;
}

/* Deletes the veth pair of v (either end may be gone already). */
static void delete_pair(struct vmk_net *net, const struct vmk__vmknic *v)
{
	char port[VMK_NET_IFNAME_MAX];
	struct kb_errmsg ignored;
	struct vmk__stack st;
	struct vmk__link l;

	vmk__vmknic_port_name(v->name, port);
	if (vmk__link_get(net->nl, port, 0, &l) == 0 && strcmp(l.kind, "veth") == 0)
		(void)vmk__link_delete(net->nl, l.ifindex);
	if (vmk__stack_open(net, v->netstack, false, &st, &ignored) < 0)
		return;
	if (vmk__link_get(st.nl, v->name, 0, &l) == 0 && strcmp(l.kind, "veth") == 0)
		(void)vmk__link_delete(st.nl, l.ifindex);
	vmk__stack_close(&st);
}

/* Checks v against the other adapters of c: MAC, address and gateway of its netstack. */
static int check_peers(const struct vmk__net_conf *c, const struct vmk__vmknic *v,
		       struct kb_errmsg *err)
{
	char a[16], b[16], m[18];
	size_t i;

	for (i = 0; i < c->n_vmknics; i++) {
		const struct vmk__vmknic *o = &c->vmknics[i];

		if (strcmp(o->name, v->name) == 0)
			continue;
		if (memcmp(o->mac, v->mac, sizeof(v->mac)) == 0) {
			kb_errmsg_setf(err, "MAC %s is already the MAC of %s",
				       vmk__mac_format(v->mac, m), o->name);
			return KB_EEXIST;
		}
		if (strcmp(o->netstack, v->netstack) != 0)
			continue;
		if (o->ip == v->ip) {
			kb_errmsg_setf(err, "address %s is already %s's in netstack %s",
				       vmk__ipv4_format(v->ip, a), o->name, v->netstack);
			return KB_EEXIST;
		}
		if (v->gateway && o->gateway && o->gateway != v->gateway) {
			kb_errmsg_setf(err,
				       "netstack %s already has the default gateway %s (via %s); "
				       "it cannot also have %s",
				       v->netstack, vmk__ipv4_format(o->gateway, a), o->name,
				       vmk__ipv4_format(v->gateway, b));
			return KB_EEXIST;
		}
	}
	return 0;
}

/* Parses ipv4 and gateway into v. */
static int parse_ip(struct vmk__vmknic *v, const char *ipv4, const char *gateway,
		    struct kb_errmsg *err)
{
	uint32_t mask;
	char a[16];
	int rv;

	rv = vmk__ipv4_prefix_parse(ipv4, &v->ip, &v->prefix, err);
	if (rv < 0)
		return rv;
	v->gateway = 0;
	if (!gateway || !gateway[0])
		return 0;
	rv = vmk__ipv4_parse(gateway, &v->gateway, "gateway", err);
	if (rv < 0)
		return rv;
	mask = vmk__prefix_mask(v->prefix);
	if ((v->gateway & mask) != (v->ip & mask) || v->gateway == v->ip) {
		kb_errmsg_setf(err, "gateway %s is not another address of %s/%u", gateway,
			       vmk__ipv4_format(v->ip & mask, a), v->prefix);
		return KB_ECONFIG;
	}
	return 0;
}

/* The MTU of the vSwitch of portgroup pg in c (0 when unknown). */
static uint32_t vswitch_mtu(const struct vmk__net_conf *c, const char *pg)
{
	const struct vmk__portgroup *p = vmk__conf_portgroup(c, pg);
	const struct vmk__vswitch *vs = p ? vmk__conf_vswitch(c, p->vswitch) : NULL;

	return vs ? vs->mtu : 0;
}

static int check_mtu(const struct vmk__net_conf *c, const struct vmk__vmknic *v,
		     struct kb_errmsg *err)
{
	uint32_t max = vswitch_mtu(c, v->portgroup);
	int rv = vmk__check_mtu(v->mtu, err);

	if (rv == 0 && max && v->mtu > max) {
		kb_errmsg_setf(err, "MTU %u of %s is larger than the vSwitch's (%u)", v->mtu,
			       v->name, max);
		rv = KB_ECONFIG;
	}
	return rv;
}

/* Fills v from a, after the checks that need no kernel. */
static int vmknic_from_args(struct vmk_net *net, const struct vmk_net_vmknic_args *a,
			    struct vmk__vmknic *v, struct kb_errmsg *err)
{
	const char *ns =
	    vmk__netstack_is_default(a->netstack) ? VMK_NET_DEFAULT_NETSTACK : a->netstack;
	size_t i;
	int rv;

	memset(v, 0, sizeof(*v));
	if ((rv = vmk__check_vmknic_name(a->name ? a->name : "", err)) < 0 ||
	    (rv = vmk__check_netstack_name(ns, err)) < 0)
		return rv;
	if (!a->portgroup || !vmk__conf_portgroup(net->conf, a->portgroup)) {
		kb_errmsg_setf(err, "no portgroup named \"%.63s\"",
			       a->portgroup ? a->portgroup : "");
		return KB_ENOTFOUND;
	}
	snprintf(v->name, sizeof(v->name), "%s", a->name);
	snprintf(v->portgroup, sizeof(v->portgroup), "%s", a->portgroup);
	snprintf(v->netstack, sizeof(v->netstack), "%s", ns);
	v->mtu = a->mtu ? a->mtu : VMK_NET_MTU_DEFAULT;
	if ((rv = parse_ip(v, a->ipv4, a->gateway, err)) < 0 ||
	    (rv = check_mtu(net->conf, v, err)) < 0)
		return rv;
	if (a->mac && a->mac[0])
		rv = vmk__mac_parse(a->mac, v->mac, err);
	else if ((rv = vmk__mac_generate(v->mac)) < 0)
		kb_errmsg_setf(err, "generating a MAC: %s", kb_strerror(rv));
	for (i = 0; rv == 0 && i < a->n_tags; i++) {
		uint32_t bit;

		rv = vmk__tag_parse(a->tags[i], &bit, err);
		v->tags |= bit;
	}
	return rv;
}

int vmk_net_vmknic_add(struct vmk_net *net, const struct vmk_net_vmknic_args *a,
		       struct kb_errmsg *err)
{
	struct vmk__netstack ns = {{0}};
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__vmknic v;
	char ip[16];
	bool new_ns = false;
	int rv;

	err = err ? err : &scratch;
	rv = vmknic_from_args(net, a, &v, err);
	if (rv < 0)
		return rv;
	if (vmk__conf_vmknic(net->conf, v.name)) {
		kb_errmsg_setf(err, "VMkernel adapter %s already exists", v.name);
		return KB_EEXIST;
	}
	if (!vmk__netstack_is_default(v.netstack) && !vmk__conf_netstack(net->conf, v.netstack)) {
		if (strcmp(v.netstack, "vmotion") != 0 && strcmp(v.netstack, "provisioning") != 0) {
			kb_errmsg_setf(err, "no netstack named \"%s\" (add it first)", v.netstack);
			return KB_ENOTFOUND;
		}
		new_ns = true; /* the system netstacks come on first use */
		snprintf(ns.name, sizeof(ns.name), "%s", v.netstack);
	}
	rv = check_peers(net->conf, &v, err);
	if (rv < 0)
		return rv;
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	if (new_ns)
		rv = vmk__conf_add_netstack(next, &ns);
	if (rv == 0)
		rv = vmk__conf_add_vmknic(next, &v);
	if (rv < 0) {
		kb_errmsg_setf(err, "adding %s: %s (at most %d adapters, %d netstacks)", v.name,
			       kb_strerror(rv), VMK_NET_VMKNICS_MAX, VMK_NET_NETSTACKS_MAX);
		vmk__conf_free(next);
		return rv;
	}
	rv = vmk__vmknic_apply(net, next, &v, err);
	if (rv < 0) {
		vmk__conf_free(next);
		goto err_kernel;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0)
		goto err_kernel;
	kb_log(net->log, KB_LOG_INFO, "network: added %s %s/%u on \"%s\" in netstack %s", v.name,
	       vmk__ipv4_format(v.ip, ip), v.prefix, v.portgroup, v.netstack);
	return 0;

err_kernel:
	delete_pair(net, &v);
	if (new_ns) {
		char path[4096];

		if (vmk__netns_path(net->netns_dir, ns.name, path, sizeof(path)) == 0)
			(void)vmk__netns_remove(path);
	}
	return rv;
}

int vmk_net_vmknic_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch, ignored;
	struct vmk__vmknic v;
	const struct vmk__vmknic *cur;
	int rv;

	err = err ? err : &scratch;
	cur = vmk__conf_vmknic(net->conf, name);
	if (!cur) {
		kb_errmsg_setf(err, "no VMkernel adapter named \"%.40s\"", name);
		return KB_ENOTFOUND;
	}
	v = *cur;
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vmk__conf_del_vmknic(next, name);
	delete_pair(net, &v);
	rv = vmk__net_commit(net, next, err);
	if (rv < 0) {
		(void)vmk__vmknic_apply(net, net->conf, &v, &ignored);
		return rv;
	}
	kb_log(net->log, KB_LOG_INFO, "network: removed %s", name);
	return 0;
}

/* Applies the changed record of name in next and commits next; on a failure the kernel
 * gets the old record back. Takes ownership of next. */
static int change(struct vmk_net *net, struct vmk__net_conf *next, const char *name,
		  struct kb_errmsg *err)
{
	struct vmk__vmknic old = *vmk__conf_vmknic(net->conf, name);
	struct kb_errmsg ignored;
	int rv;

	rv = vmk__vmknic_apply(net, next, vmk__conf_vmknic(next, name), err);
	if (rv < 0) {
		vmk__conf_free(next);
		goto err_undo;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0)
		goto err_undo;
	return 0;

err_undo:
	(void)vmk__vmknic_apply(net, net->conf, &old, &ignored);
	return rv;
}

/* A copy of the configuration for changing adapter name: *v points into it. */
static int begin(struct vmk_net *net, const char *name, struct vmk__net_conf **next,
		 struct vmk__vmknic **v, struct kb_errmsg *err)
{
	int rv;

	if (!vmk__conf_vmknic(net->conf, name)) {
		kb_errmsg_setf(err, "no VMkernel adapter named \"%.40s\"", name);
		return KB_ENOTFOUND;
	}
	rv = vmk__conf_clone(net->conf, next);
	if (rv < 0)
		return rv;
	*v = vmk__conf_vmknic(*next, name);
	return 0;
}

int vmk_net_vmknic_set_ip(struct vmk_net *net, const char *name, const char *ipv4,
			  const char *gateway, struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__vmknic *v;
	int rv;

	err = err ? err : &scratch;
	rv = begin(net, name, &next, &v, err);
	if (rv < 0)
		return rv;
	if ((rv = parse_ip(v, ipv4, gateway, err)) < 0 || (rv = check_peers(next, v, err)) < 0) {
		vmk__conf_free(next);
		return rv;
	}
	rv = change(net, next, name, err);
	if (rv == 0)
		kb_log(net->log, KB_LOG_INFO, "network: %s address %s, gateway %s", name, ipv4,
		       gateway && gateway[0] ? gateway : "none");
	return rv;
}

int vmk_net_vmknic_set_mtu(struct vmk_net *net, const char *name, uint32_t mtu,
			   struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__vmknic *v;
	int rv;

	err = err ? err : &scratch;
	rv = begin(net, name, &next, &v, err);
	if (rv < 0)
		return rv;
	v->mtu = mtu;
	rv = check_mtu(next, v, err);
	if (rv < 0) {
		vmk__conf_free(next);
		return rv;
	}
	rv = change(net, next, name, err);
	if (rv == 0)
		kb_log(net->log, KB_LOG_INFO, "network: %s MTU %u", name, mtu);
	return rv;
}

int vmk_net_vmknic_tag(struct vmk_net *net, const char *name, const char *tag, bool add,
		       struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__vmknic *v;
	uint32_t bit;
	int rv;

	err = err ? err : &scratch;
	rv = vmk__tag_parse(tag, &bit, err);
	if (rv < 0)
		return rv;
	rv = begin(net, name, &next, &v, err);
	if (rv < 0)
		return rv;
	if (((v->tags & bit) != 0) == add) {
		vmk__conf_free(next);
		return 0;
	}
	v->tags = add ? v->tags | bit : v->tags & ~bit;
	rv = vmk__net_commit(net, next, err);
	if (rv == 0)
		kb_log(net->log, KB_LOG_INFO, "network: %s tag %s %s", name,
		       add ? "added" : "removed", tag);
	return rv;
}
