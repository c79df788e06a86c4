/*
 * The life of a host's networking: vmk_net_init() loads network.conf (or makes the
 * first-start default: vSwitch0 with the portgroup "VM Network", no uplink) and applies it
 * to the kernel; vmk_net_close() forgets it and leaves the kernel's interfaces alone.
 *
 * Applying is idempotent and forgiving: bridges that exist are reused, each object is
 * applied on its own, and one that fails (an uplink that is gone, a VLAN the kernel cannot
 * filter) is logged and stays configured for the operator to fix. Ports are runtime
 * records: a tap still held by a vmx (carrier up) is kept and re-attached; a tap that is
 * gone, or that no vmx holds any more (its VM stopped while vmkernel was away), is deleted
 * and its port dropped; the VM gets a new one at its next power-on. Netstacks get their
 * namespace back when it is gone (after a reboot), and VMkernel adapters their veth pair,
 * address and route (vmknic.c), before the ports.
 *
 * vmk_net_close() leaves netstack namespaces and adapters in place, like bridges.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"

void vmk__net_errf(struct vmk_net *net, struct kb_errmsg *err, int rv, const char *fmt, ...)
{
	char what[KB_ERRMSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (net->nl->ext_msg[0])
		kb_errmsg_setf(err, "%s: %s (%s)", what, kb_strerror(rv), net->nl->ext_msg);
	else
		kb_errmsg_setf(err, "%s: %s", what, kb_strerror(rv));
}

int vmk__net_commit(struct vmk_net *net, struct vmk__net_conf *next, struct kb_errmsg *err)
{
	int rv = vmk__conf_save(net->conf_path, next, err);

	if (rv < 0) {
		vmk__conf_free(next);
		return rv;
	}
	vmk__conf_free(net->conf);
	net->conf = next;
	return 0;
}

/* Checks the port of a tap that survived a restart: 1 to keep it, 0 to drop it. */
static int port_alive(struct vmk_net *net, const struct vmk__port *p)
{
	struct vmk__link l;
	int rv = vmk__link_get(net->nl, p->tap, 0, &l);

	if (rv < 0 || strcmp(l.kind, "tun") != 0)
		return 0;
	if (l.carrier)
		return 1;
	rv = vmk__link_delete(net->nl, l.ifindex);
	if (rv < 0)
		kb_log(net->log, KB_LOG_WARN, "network: deleting unused tap %s: %s", p->tap,
		       kb_strerror(rv));
	return 0;
}

/* Applies every object of net->conf; failures are logged. Drops dead ports. */
static int apply_all(struct vmk_net *net, struct kb_errmsg *err)
{
	struct vmk__net_conf *c = net->conf, *next = NULL;
	struct kb_errmsg e;
	size_t i, j;
	int rv, ifindex;

	for (i = 0; i < c->n_vswitches; i++) {
		const struct vmk__vswitch *vs = &c->vswitches[i];

		if (vmk__bridge_apply(net, vs, &ifindex, &e) < 0) {
			kb_log(net->log, KB_LOG_WARN, "network: vSwitch %s: %s", vs->name, e.msg);
			continue;
		}
		for (j = 0; j < vs->n_uplinks; j++)
			if (vmk__uplink_apply(net, c, vs, vs->uplinks[j], &e) < 0)
				kb_log(net->log, KB_LOG_WARN, "network: vSwitch %s: %s", vs->name,
				       e.msg);
	}
	for (i = 0; i < c->n_portgroups; i++)
		if (vmk__portgroup_apply(net, c, &c->portgroups[i], &e) < 0)
			kb_log(net->log, KB_LOG_WARN, "network: portgroup \"%s\": %s",
			       c->portgroups[i].name, e.msg);
	for (i = 0; i < c->n_netstacks; i++)
		if (vmk__netstack_apply(net, &c->netstacks[i], &e) < 0)
			kb_log(net->log, KB_LOG_WARN, "network: %s", e.msg);
	for (i = 0; i < c->n_vmknics; i++)
		if (vmk__vmknic_apply(net, c, &c->vmknics[i], &e) < 0)
			kb_log(net->log, KB_LOG_WARN, "network: %s: %s", c->vmknics[i].name, e.msg);
	for (i = 0; i < c->n_ports; i++) {
		const struct vmk__port *p = &c->ports[i];

		if (port_alive(net, p)) {
			if (vmk__port_attach(net, c, vmk__conf_portgroup(c, p->portgroup), p->tap,
					     &e) < 0)
				kb_log(net->log, KB_LOG_WARN, "network: port %s: %s", p->tap,
				       e.msg);
			continue;
		}
		kb_log(net->log, KB_LOG_INFO,
		       "network: dropped port %s (NIC %u of VM %s is not running)", p->tap, p->nic,
		       p->vm_uuid);
		if (!next && (rv = vmk__conf_clone(c, &next)) < 0)
			return rv;
		vmk__conf_del_port(next, p->tap);
	}
	return next ? vmk__net_commit(net, next, err) : 0;
}

int vmk_net_init(const char *state_dir, struct vmk_net *net, struct kb_errmsg *err)
{
	struct vmk__net_conf *first = NULL;
	struct kb_errmsg scratch;
	size_t len;
	int rv;

	err = err ? err : &scratch;
	err->msg[0] = '\0';
	memset(net, 0, sizeof(*net));
	net->log = &kb_log_default;
	len = strlen(state_dir) + sizeof("/" VMK_NET_CONF_FILE);
	net->conf_path = kb_malloc(len);
	net->netns_dir = kb_malloc(len);
	net->nl = kb_calloc(1, sizeof(*net->nl));
	if (!net->conf_path || !net->netns_dir || !net->nl) {
		rv = -ENOMEM;
		goto err_mem;
	}
	snprintf(net->conf_path, len, "%s/" VMK_NET_CONF_FILE, state_dir);
	snprintf(net->netns_dir, len, "%s/" VMK_NET_NETNS_DIR, state_dir);
	rv = vmk__nl_open(net->nl);
	if (rv < 0) {
		kb_errmsg_setf(err, "opening an rtnetlink socket: %s", kb_strerror(rv));
		goto err_mem;
	}
	rv = vmk__conf_load(net->conf_path, &net->conf, err);
	if (rv == -ENOENT) {
		rv = vmk__conf_default(&net->conf);
		if (rv == 0)
			rv = vmk__conf_clone(net->conf, &first);
		if (rv == 0)
			rv = vmk__net_commit(net, first, err);
		if (rv == 0)
			kb_log(net->log, KB_LOG_INFO, "network: first start: created %s",
			       net->conf_path);
	}
	if (rv < 0)
		goto err_nl;
	rv = apply_all(net, err);
	if (rv < 0)
		goto err_nl;
	return 0;

err_nl:
	vmk__conf_free(net->conf);
	vmk__nl_close(net->nl);
err_mem:
	if (rv == -ENOMEM && !err->msg[0])
		kb_errmsg_setf(err, "network: out of memory");
	kb_errmsg_wrapf(err, "network");
	kb_free(net->nl);
	kb_free(net->conf_path);
	kb_free(net->netns_dir);
	memset(net, 0, sizeof(*net));
	return rv;
}

void vmk_net_close(struct vmk_net *net)
{
	if (net->nl)
		vmk__nl_close(net->nl);
	kb_free(net->nl);
	vmk__conf_free(net->conf);
	kb_free(net->conf_path);
	kb_free(net->netns_dir);
	memset(net, 0, sizeof(*net));
}
