/*
 * Listing vSwitches and portgroups as the protobuf messages of vmkernel's replies
 * (VSwitchInfo, PortgroupInfo in proto/vmk.proto).
 *
 * Every string is a copy made with kb_strdup, so the lists stay valid after the
 * configuration changes; each list is freed with its own _free function, which also
 * takes the half-built list of a failed call.
 */
#include <errno.h>
#include <string.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"

void vmk_net_vswitch_list_free(Keel__Vmk__VSwitchInfo **list, size_t n)
{
	size_t i, j;

	if (!list)
		return;
	for (i = 0; i < n; i++) {
		Keel__Vmk__VSwitchInfo *m = list[i];

		if (!m)
			continue;
		kb_free(m->name);
		for (j = 0; m->uplinks && j < m->n_uplinks; j++)
			kb_free(m->uplinks[j]);
		kb_free(m->uplinks);
		kb_free(m);
	}
	kb_free(list);
}

/* Fills m (already initialized) from vs. */
static int vswitch_info(Keel__Vmk__VSwitchInfo *m, const struct vmk__vswitch *vs)
{
	size_t j;

	m->name = kb_strdup(vs->name);
	m->mtu = vs->mtu;
	if (!m->name)
		return -ENOMEM;
	if (vs->n_uplinks == 0)
		return 0;
	m->uplinks = kb_calloc(vs->n_uplinks, sizeof(*m->uplinks));
	if (!m->uplinks)
		return -ENOMEM;
	m->n_uplinks = vs->n_uplinks;
	for (j = 0; j < vs->n_uplinks; j++)
		if (!(m->uplinks[j] = kb_strdup(vs->uplinks[j])))
			return -ENOMEM;
	return 0;
}

int vmk_net_vswitch_list(struct vmk_net *net, Keel__Vmk__VSwitchInfo ***out, size_t *n_out,
			 struct kb_errmsg *err)
{
	const struct vmk__net_conf *c = net->conf;
	Keel__Vmk__VSwitchInfo **list;
	size_t i;

	*out = NULL;
	*n_out = 0;
	if (c->n_vswitches == 0)
		return 0;
	list = kb_calloc(c->n_vswitches, sizeof(*list));
	if (!list)
		goto err_mem;
	for (i = 0; i < c->n_vswitches; i++) {
		list[i] = kb_malloc(sizeof(*list[i]));
		if (!list[i])
			goto err_list;
		keel__vmk__vswitch_info__init(list[i]);
		list[i]->name = NULL;
		if (vswitch_info(list[i], &c->vswitches[i]) < 0)
			goto err_list;
	}
	*out = list;
	*n_out = c->n_vswitches;
	return 0;

err_list:
	vmk_net_vswitch_list_free(list, c->n_vswitches);
err_mem:
	if (err)
		kb_errmsg_setf(err, "listing vSwitches: out of memory");
	return -ENOMEM;
}

void vmk_net_portgroup_list_free(Keel__Vmk__PortgroupInfo **list, size_t n)
{
	size_t i, j;

	if (!list)
		return;
	for (i = 0; i < n; i++) {
		Keel__Vmk__PortgroupInfo *m = list[i];

		if (!m)
			continue;
		kb_free(m->name);
		kb_free(m->vswitch);
		for (j = 0; m->ports && j < m->n_ports; j++)
			kb_free(m->ports[j]);
		kb_free(m->ports);
		kb_free(m);
	}
	kb_free(list);
}

/* Fills m (already initialized) from pg and the ports of c on it. */
static int portgroup_info(Keel__Vmk__PortgroupInfo *m, const struct vmk__net_conf *c,
			  const struct vmk__portgroup *pg)
{
	size_t i, n = 0;

	m->name = kb_strdup(pg->name);
	m->vswitch = kb_strdup(pg->vswitch);
	m->vlan = pg->vlan;
	if (!m->name || !m->vswitch)
		return -ENOMEM;
	for (i = 0; i < c->n_ports; i++)
		n += strcmp(c->ports[i].portgroup, pg->name) == 0;
	if (n == 0)
		return 0;
	m->ports = kb_calloc(n, sizeof(*m->ports));
	if (!m->ports)
		return -ENOMEM;
	for (i = 0; i < c->n_ports; i++) {
		if (strcmp(c->ports[i].portgroup, pg->name) != 0)
			continue;
		if (!(m->ports[m->n_ports] = kb_strdup(c->ports[i].tap)))
			return -ENOMEM;
		m->n_ports++;
	}
	return 0;
}

int vmk_net_portgroup_list(struct vmk_net *net, Keel__Vmk__PortgroupInfo ***out, size_t *n_out,
			   struct kb_errmsg *err)
{
	const struct vmk__net_conf *c = net->conf;
	Keel__Vmk__PortgroupInfo **list;
	size_t i;

	*out = NULL;
	*n_out = 0;
	if (c->n_portgroups == 0)
		return 0;
	list = kb_calloc(c->n_portgroups, sizeof(*list));
	if (!list)
		goto err_mem;
	for (i = 0; i < c->n_portgroups; i++) {
		list[i] = kb_malloc(sizeof(*list[i]));
		if (!list[i])
			goto err_list;
		keel__vmk__portgroup_info__init(list[i]);
		list[i]->name = NULL;
		list[i]->vswitch = NULL;
		if (portgroup_info(list[i], c, &c->portgroups[i]) < 0)
			goto err_list;
	}
	*out = list;
	*n_out = c->n_portgroups;
	return 0;

err_list:
	vmk_net_portgroup_list_free(list, c->n_portgroups);
err_mem:
	if (err)
		kb_errmsg_setf(err, "listing portgroups: out of memory");
	return -ENOMEM;
}
