/*
 * Listing VMkernel adapters and netstacks as the protobuf messages of vmkernel's replies
 * (VmknicInfo, NetstackInfo in proto/vmk.proto).
 *
 * An adapter's state comes from the kernel at the time of the call: "up" when its vmkN
 * interface exists in its netstack and is up, "down" when it is down, "missing" when it or
 * its netstack's namespace is gone. Strings are kb_strdup copies; each list is freed with
 * its own _free function, which also takes the half-built list of a failed call.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"

void vmk_net_vmknic_list_free(Keel__Vmk__VmknicInfo **list, size_t n)
{
	size_t i, j;

	if (!list)
		return;
	for (i = 0; i < n; i++) {
		Keel__Vmk__VmknicInfo *m = list[i];

		if (!m)
			continue;
		kb_free(m->name);
		kb_free(m->portgroup);
		kb_free(m->netstack);
		kb_free(m->ipv4);
		kb_free(m->netmask);
		kb_free(m->gateway);
		kb_free(m->mac);
		kb_free(m->state);
		kb_free(m->port);
		for (j = 0; m->tags && j < m->n_tags; j++)
			kb_free(m->tags[j]);
		kb_free(m->tags);
		kb_free(m);
	}
	kb_free(list);
}

static const char *vmknic_state(struct vmk_net *net, const struct vmk__vmknic *v)
{
	struct kb_errmsg ignored;
	struct vmk__stack st;
	struct vmk__link l;
	const char *state = "missing";

	if (vmk__stack_open(net, v->netstack, false, &st, &ignored) < 0)
		return state;
	if (vmk__link_get(st.nl, v->name, 0, &l) == 0)
		state = (l.flags & IFF_UP) ? "up" : "down";
	vmk__stack_close(&st);
	return state;
}

static int vmknic_info(struct vmk_net *net, Keel__Vmk__VmknicInfo *m, const struct vmk__vmknic *v)
{
	char a[16], mask[16], gw[16] = "", mac[18], port[VMK_NET_IFNAME_MAX];
	unsigned i;

	vmk__vmknic_port_name(v->name, port);
	if (v->gateway)
		vmk__ipv4_format(v->gateway, gw);
	m->name = kb_strdup(v->name);
	m->portgroup = kb_strdup(v->portgroup);
	m->netstack = kb_strdup(v->netstack);
	m->ipv4 = kb_strdup(vmk__ipv4_format(v->ip, a));
	m->prefix = v->prefix;
	m->netmask = kb_strdup(vmk__ipv4_format(vmk__prefix_mask(v->prefix), mask));
	m->gateway = kb_strdup(gw);
	m->mtu = v->mtu;
	m->mac = kb_strdup(vmk__mac_format(v->mac, mac));
	m->state = kb_strdup(vmknic_state(net, v));
	m->port = kb_strdup(port);
	if (!m->name || !m->portgroup || !m->netstack || !m->ipv4 || !m->netmask || !m->gateway ||
	    !m->mac || !m->state || !m->port)
		return -ENOMEM;
	if (!v->tags)
		return 0;
	m->tags = kb_calloc(VMK__TAG_COUNT, sizeof(*m->tags));
	if (!m->tags)
		return -ENOMEM;
	for (i = 0; i < VMK__TAG_COUNT; i++) {
		if (!(v->tags & (1u << i)))
			continue;
		if (!(m->tags[m->n_tags] = kb_strdup(vmk__tag_names[i])))
			return -ENOMEM;
		m->n_tags++;
	}
	return 0;
}

int vmk_net_vmknic_list(struct vmk_net *net, Keel__Vmk__VmknicInfo ***out, size_t *n_out,
			struct kb_errmsg *err)
{
	const struct vmk__net_conf *c = net->conf;
	Keel__Vmk__VmknicInfo **list;
	size_t i;

	*out = NULL;
	*n_out = 0;
	if (c->n_vmknics == 0)
		return 0;
	list = kb_calloc(c->n_vmknics, sizeof(*list));
	if (!list)
		goto err_mem;
	for (i = 0; i < c->n_vmknics; i++) {
		list[i] = kb_malloc(sizeof(*list[i]));
		if (!list[i])
			goto err_list;
		keel__vmk__vmknic_info__init(list[i]);
		list[i]->name = list[i]->portgroup = list[i]->netstack = NULL;
		list[i]->ipv4 = list[i]->netmask = list[i]->gateway = NULL;
		list[i]->mac = list[i]->state = list[i]->port = NULL;
		if (vmknic_info(net, list[i], &c->vmknics[i]) < 0)
			goto err_list;
	}
	*out = list;
	*n_out = c->n_vmknics;
	return 0;

err_list:
	vmk_net_vmknic_list_free(list, c->n_vmknics);
err_mem:
	if (err)
		kb_errmsg_setf(err, "listing VMkernel adapters: out of memory");
	return -ENOMEM;
}

void vmk_net_netstack_list_free(Keel__Vmk__NetstackInfo **list, size_t n)
{
	size_t i, j;

	if (!list)
		return;
	for (i = 0; i < n; i++) {
		Keel__Vmk__NetstackInfo *m = list[i];

		if (!m)
			continue;
		kb_free(m->name);
		kb_free(m->netns);
		kb_free(m->state);
		for (j = 0; m->vmknics && j < m->n_vmknics; j++)
			kb_free(m->vmknics[j]);
		kb_free(m->vmknics);
		kb_free(m);
	}
	kb_free(list);
}

static int netstack_info(struct vmk_net *net, Keel__Vmk__NetstackInfo *m, const char *name)
{
	const struct vmk__net_conf *c = net->conf;
	char path[4096] = "";
	const char *state = "ok";
	size_t i, n = 0;
	int fd;

	if (!vmk__netstack_is_default(name)) {
		if (vmk__netns_path(net->netns_dir, name, path, sizeof(path)) < 0 ||
		    vmk__netns_open(path, &fd) < 0)
			state = "missing";
		else
			close(fd);
	}
	m->name = kb_strdup(name);
	m->netns = kb_strdup(path);
	m->state = kb_strdup(state);
	if (!m->name || !m->netns || !m->state)
		return -ENOMEM;
	for (i = 0; i < c->n_vmknics; i++)
		n += strcmp(c->vmknics[i].netstack, name) == 0;
	if (n == 0)
		return 0;
	m->vmknics = kb_calloc(n, sizeof(*m->vmknics));
	if (!m->vmknics)
		return -ENOMEM;
	for (i = 0; i < c->n_vmknics; i++) {
		if (strcmp(c->vmknics[i].netstack, name) != 0)
			continue;
		if (!(m->vmknics[m->n_vmknics] = kb_strdup(c->vmknics[i].name)))
			return -ENOMEM;
		m->n_vmknics++;
	}
	return 0;
}

int vmk_net_netstack_list(struct vmk_net *net, Keel__Vmk__NetstackInfo ***out, size_t *n_out,
			  struct kb_errmsg *err)
{
	const struct vmk__net_conf *c = net->conf;
	Keel__Vmk__NetstackInfo **list;
	size_t i, n = c->n_netstacks + 1;

	*out = NULL;
	*n_out = 0;
	list = kb_calloc(n, sizeof(*list));
	if (!list)
		goto err_mem;
	for (i = 0; i < n; i++) {
		list[i] = kb_malloc(sizeof(*list[i]));
		if (!list[i])
			goto err_list;
		keel__vmk__netstack_info__init(list[i]);
		list[i]->name = list[i]->netns = list[i]->state = NULL;
		if (netstack_info(net, list[i],
				  i == 0 ? VMK_NET_DEFAULT_NETSTACK : c->netstacks[i - 1].name) < 0)
			goto err_list;
	}
	*out = list;
	*n_out = n;
	return 0;

err_list:
	vmk_net_netstack_list_free(list, n);
err_mem:
	if (err)
		kb_errmsg_setf(err, "listing netstacks: out of memory");
	return -ENOMEM;
}
