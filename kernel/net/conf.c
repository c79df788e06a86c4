/*
 * The in-memory networking configuration: arrays of vSwitch, portgroup, port, netstack and
 * VMkernel adapter records, with copy, lookup, append and remove. The records reference
 * each other by name; the callers (bridge.c, portgroup.c, tap.c, vmknic.c, netstack.c and
 * the parser) keep the references valid.
 *
 * Arrays grow one record at a time and never past the VMK_NET_*_MAX limits (KB_ETOOBIG),
 * so a configuration is always small enough to copy for every change.
 */
#include <errno.h>
#include <string.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"

struct vmk__net_conf *vmk__conf_new(void)
{
	return kb_calloc(1, sizeof(struct vmk__net_conf));
}

void vmk__conf_free(struct vmk__net_conf *c)
{
	if (!c)
		return;
	kb_free(c->vswitches);
	kb_free(c->portgroups);
	kb_free(c->ports);
	kb_free(c->netstacks);
	kb_free(c->vmknics);
	kb_free(c);
}

int vmk__conf_default(struct vmk__net_conf **out)
{
	struct vmk__vswitch vs = {.name = VMK_NET_DEFAULT_VSWITCH, .mtu = VMK_NET_MTU_DEFAULT};
	struct vmk__portgroup pg = {.name = VMK_NET_DEFAULT_PORTGROUP,
				    .vswitch = VMK_NET_DEFAULT_VSWITCH};
	struct vmk__net_conf *c = vmk__conf_new();
	int rv;

	if (!c)
		return -ENOMEM;
	rv = vmk__conf_add_vswitch(c, &vs);
	if (rv == 0)
		rv = vmk__conf_add_portgroup(c, &pg);
	if (rv < 0) {
		vmk__conf_free(c);
		return rv;
	}
	*out = c;
	return 0;
}

static int dup_array(void **dst, const void *src, size_t n, size_t size)
{
	*dst = NULL;
	if (n == 0)
		return 0;
	*dst = kb_malloc(n * size);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n * size);
	return 0;
}

int vmk__conf_clone(const struct vmk__net_conf *c, struct vmk__net_conf **out)
{
	struct vmk__net_conf *n = vmk__conf_new();

	if (!n)
		return -ENOMEM;
	if (dup_array((void **)&n->vswitches, c->vswitches, c->n_vswitches, sizeof(*c->vswitches)) <
		0 ||
	    dup_array((void **)&n->portgroups, c->portgroups, c->n_portgroups,
		      sizeof(*c->portgroups)) < 0 ||
	    dup_array((void **)&n->ports, c->ports, c->n_ports, sizeof(*c->ports)) < 0 ||
	    dup_array((void **)&n->netstacks, c->netstacks, c->n_netstacks, sizeof(*c->netstacks)) <
		0 ||
	    dup_array((void **)&n->vmknics, c->vmknics, c->n_vmknics, sizeof(*c->vmknics)) < 0) {
		vmk__conf_free(n);
		return -ENOMEM;
	}
	n->n_vswitches = c->n_vswitches;
	n->n_portgroups = c->n_portgroups;
	n->n_ports = c->n_ports;
	n->n_netstacks = c->n_netstacks;
	n->n_vmknics = c->n_vmknics;
	*out = n;
	return 0;
}

struct vmk__vswitch *vmk__conf_vswitch(const struct vmk__net_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_vswitches; i++)
		if (strcmp(c->vswitches[i].name, name) == 0)
			return &c->vswitches[i];
	return NULL;
}

struct vmk__portgroup *vmk__conf_portgroup(const struct vmk__net_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_portgroups; i++)
		if (strcmp(c->portgroups[i].name, name) == 0)
			return &c->portgroups[i];
	return NULL;
}

struct vmk__port *vmk__conf_port(const struct vmk__net_conf *c, const char *tap)
{
	size_t i;

	for (i = 0; i < c->n_ports; i++)
		if (strcmp(c->ports[i].tap, tap) == 0)
			return &c->ports[i];
	return NULL;
}

struct vmk__netstack *vmk__conf_netstack(const struct vmk__net_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_netstacks; i++)
		if (strcmp(c->netstacks[i].name, name) == 0)
			return &c->netstacks[i];
	return NULL;
}

struct vmk__vmknic *vmk__conf_vmknic(const struct vmk__net_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_vmknics; i++)
		if (strcmp(c->vmknics[i].name, name) == 0)
			return &c->vmknics[i];
	return NULL;
}

/* Appends one record of size bytes to *arr holding *n records, at most max. */
static int append(void **arr, size_t *n, size_t max, const void *rec, size_t size)
{
	void *grown;

	if (*n >= max)
		return KB_ETOOBIG;
	grown = kb_realloc(*arr, (*n + 1) * size);
	if (!grown)
		return -ENOMEM;
	memcpy((char *)grown + *n * size, rec, size);
	*arr = grown;
	(*n)++;
	return 0;
}

/* Removes record i of *n records of size bytes, keeping the order. */
static void remove_at(void *arr, size_t *n, size_t i, size_t size)
{
	memmove((char *)arr + i * size, (char *)arr + (i + 1) * size, (*n - i - 1) * size);
	(*n)--;
}

int vmk__conf_add_vswitch(struct vmk__net_conf *c, const struct vmk__vswitch *vs)
{
	return append((void **)&c->vswitches, &c->n_vswitches, VMK_NET_VSWITCHES_MAX, vs,
		      sizeof(*vs));
}

int vmk__conf_add_portgroup(struct vmk__net_conf *c, const struct vmk__portgroup *pg)
{
	return append((void **)&c->portgroups, &c->n_portgroups, VMK_NET_PORTGROUPS_MAX, pg,
		      sizeof(*pg));
}

int vmk__conf_add_port(struct vmk__net_conf *c, const struct vmk__port *p)
{
	return append((void **)&c->ports, &c->n_ports, VMK_NET_PORTS_MAX, p, sizeof(*p));
}

int vmk__conf_add_netstack(struct vmk__net_conf *c, const struct vmk__netstack *ns)
{
	return append((void **)&c->netstacks, &c->n_netstacks, VMK_NET_NETSTACKS_MAX, ns,
		      sizeof(*ns));
}

int vmk__conf_add_vmknic(struct vmk__net_conf *c, const struct vmk__vmknic *v)
{
	return append((void **)&c->vmknics, &c->n_vmknics, VMK_NET_VMKNICS_MAX, v, sizeof(*v));
}

void vmk__conf_del_netstack(struct vmk__net_conf *c, const char *name)
{
	struct vmk__netstack *ns = vmk__conf_netstack(c, name);

	if (ns)
		remove_at(c->netstacks, &c->n_netstacks, (size_t)(ns - c->netstacks), sizeof(*ns));
}

void vmk__conf_del_vmknic(struct vmk__net_conf *c, const char *name)
{
	struct vmk__vmknic *v = vmk__conf_vmknic(c, name);

	if (v)
		remove_at(c->vmknics, &c->n_vmknics, (size_t)(v - c->vmknics), sizeof(*v));
}

void vmk__conf_del_vswitch(struct vmk__net_conf *c, const char *name)
{
	struct vmk__vswitch *vs = vmk__conf_vswitch(c, name);

	if (vs)
		remove_at(c->vswitches, &c->n_vswitches, (size_t)(vs - c->vswitches), sizeof(*vs));
}

void vmk__conf_del_portgroup(struct vmk__net_conf *c, const char *name)
{
	struct vmk__portgroup *pg = vmk__conf_portgroup(c, name);

	if (pg)
		remove_at(c->portgroups, &c->n_portgroups, (size_t)(pg - c->portgroups),
			  sizeof(*pg));
}

void vmk__conf_del_port(struct vmk__net_conf *c, const char *tap)
{
	struct vmk__port *p = vmk__conf_port(c, tap);

	if (p)
		remove_at(c->ports, &c->n_ports, (size_t)(p - c->ports), sizeof(*p));
}

bool vmk__conf_vlan_used(const struct vmk__net_conf *c, const char *vswitch, uint16_t vlan,
			 const char *except)
{
	size_t i;

	for (i = 0; i < c->n_portgroups; i++) {
		const struct vmk__portgroup *pg = &c->portgroups[i];

		if (pg->vlan == vlan && strcmp(pg->vswitch, vswitch) == 0 &&
		    (!except || strcmp(pg->name, except) != 0))
			return true;
	}
	return false;
}
