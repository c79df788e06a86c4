/*
 * Netstacks: the TCP/IP stacks VMkernel adapters live in, each a network namespace
 * (netns.c). defaultTcpipStack is vmkernel's own namespace and always exists; every other
 * netstack is configured (a `netstack` record of network.conf) and owns the namespace
 * bound at <state dir>/netns/<name>. Adding makes the namespace with its loopback up;
 * removing is refused while adapters use the netstack, and unmounts the namespace.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/net/net_internal.h"

int vmk__netstack_apply(struct vmk_net *net, const struct vmk__netstack *ns, struct kb_errmsg *err)
{
	char path[4096];
	bool created;
	int rv;

	rv = vmk__netns_path(net->netns_dir, ns->name, path, sizeof(path));
	if (rv == 0)
		rv = vmk__netns_ensure(path, &created);
	if (rv < 0) {
		kb_errmsg_setf(err, "netstack %s: making namespace %s: %s", ns->name, path,
			       kb_strerror(rv));
		return rv;
	}
	if (created)
		kb_log(net->log, KB_LOG_INFO, "network: netstack %s: created namespace %s",
		       ns->name, path);
	return 0;
}

int vmk_net_netstack_add(struct vmk_net *net, const char *name, struct kb_errmsg *err)
{
	struct vmk__netstack ns = {{0}};
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	char path[4096];
	int rv;

	err = err ? err : &scratch;
	rv = vmk__check_netstack_name(name, err);
	if (rv < 0)
		return rv;
	if (vmk__netstack_is_default(name) || vmk__conf_netstack(net->conf, name)) {
		kb_errmsg_setf(err, "netstack %s already exists", name);
		return KB_EEXIST;
	}
	snprintf(ns.name, sizeof(ns.name), "%s", name);
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	rv = vmk__conf_add_netstack(next, &ns);
	if (rv < 0) {
		kb_errmsg_setf(err, "adding netstack %s: %s (at most %d)", name, kb_strerror(rv),
			       VMK_NET_NETSTACKS_MAX);
		vmk__conf_free(next);
		return rv;
	}
	rv = vmk__netstack_apply(net, &ns, err);
	if (rv < 0) {
		vmk__conf_free(next);
		goto err_ns;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0)
		goto err_ns;
	kb_log(net->log, KB_LOG_INFO, "network: added netstack %s", name);
	return 0;

err_ns:
	if (vmk__netns_path(net->netns_dir, name, path, sizeof(path)) == 0)
		(void)vmk__netns_remove(path);
	return rv;
}

int vmk_net_netstack_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	char path[4096];
	size_t i;
	int rv;

	err = err ? err : &scratch;
	if (vmk__netstack_is_default(name)) {
		kb_errmsg_setf(err, "netstack %s is vmkernel's own and cannot be removed",
			       VMK_NET_DEFAULT_NETSTACK);
		return KB_ESTATE;
	}
	if (!vmk__conf_netstack(net->conf, name)) {
		kb_errmsg_setf(err, "no netstack named \"%.40s\"", name);
		return KB_ENOTFOUND;
	}
	for (i = 0; i < net->conf->n_vmknics; i++) {
		if (strcmp(net->conf->vmknics[i].netstack, name) == 0) {
			kb_errmsg_setf(err, "netstack %s is in use by VMkernel adapter %s", name,
				       net->conf->vmknics[i].name);
			return KB_ESTATE;
		}
	}
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vmk__conf_del_netstack(next, name);
	rv = vmk__net_commit(net, next, err);
	if (rv < 0)
		return rv;
	if (vmk__netns_path(net->netns_dir, name, path, sizeof(path)) == 0 &&
	    (rv = vmk__netns_remove(path)) < 0)
		kb_log(net->log, KB_LOG_WARN, "network: netstack %s: removing %s: %s", name, path,
		       kb_strerror(rv));
	kb_log(net->log, KB_LOG_INFO, "network: removed netstack %s", name);
	return 0;
}
