/*
 * Ports of VM NICs: one persistent tap per NIC, on its portgroup's bridge.
 *
 * The tap is created with TUNSETIFF (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, the flags vmx
 * opens it with) and made persistent with TUNSETPERSIST, so it outlives the creating file
 * descriptor and vmx can attach to it by name; vmx sets the virtio-net header size itself.
 * Its name comes from the VM's uuid and the NIC index (vmk_net_port_name), so a VM's NIC
 * has the same tap across power cycles and vmkernel restarts. A tap that already exists
 * (left from before a restart, or held by a running vmx) is reused. Removing deletes the
 * tap with RTM_DELLINK, which also works while a vmx holds it.
 *
 * Order of a create: tap, attach (MTU, bridge, VLAN, up), save; a failure deletes a tap
 * this call created. A remove deletes the tap, then saves; when the save fails the port
 * stays listed and its next create makes the tap again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

#include "kernel/net/net_internal.h"

int vmk__tap_create(const char *name)
{
	struct ifreq ifr;
	int fd, rv = 0;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* Whether two uuids have the same hex digits (case and separators aside). */
static bool uuid_same(const char *a, const char *b)
{
	for (;;) {
		while (*a == '-' || *a == ' ')
			a++;
		while (*b == '-' || *b == ' ')
			b++;
		if (!*a || !*b)
			return !*a && !*b;
		if ((*a | 0x20) != (*b | 0x20))
			return false;
		a++;
		b++;
	}
}

int vmk_net_port_create(struct vmk_net *net, const char *portgroup, const char *vm_uuid,
			uint32_t nic_index, char out_tap_name[VMK_NET_IFNAME_MAX],
			struct kb_errmsg *err)
{
	struct vmk__port port = {{0}};
	const struct vmk__portgroup *pg;
	const struct vmk__port *cur;
	struct vmk__net_conf *next = NULL;
	struct kb_errmsg scratch;
	struct vmk__link l;
	bool created = false;
	int rv;

	err = err ? err : &scratch;
	out_tap_name[0] = '\0';
	rv = vmk_net_port_name(vm_uuid, nic_index, port.tap, err);
	if (rv < 0)
		return rv;
	pg = vmk__conf_portgroup(net->conf, portgroup);
	if (!pg) {
		kb_errmsg_setf(err, "no portgroup named \"%.63s\"", portgroup);
		return KB_ENOTFOUND;
	}
	cur = vmk__conf_port(net->conf, port.tap);
	if (cur && (!uuid_same(cur->vm_uuid, vm_uuid) || cur->nic != nic_index)) {
		kb_errmsg_setf(err, "tap %s is already NIC %u of VM %s", port.tap, cur->nic,
			       cur->vm_uuid);
		return KB_EEXIST;
	}
	if (cur && strcmp(cur->portgroup, portgroup) != 0) {
		kb_errmsg_setf(err, "NIC %u of VM %s already has port %s on portgroup \"%s\"",
			       nic_index, vm_uuid, port.tap, cur->portgroup);
		return KB_EEXIST;
	}
	rv = vmk__link_get(net->nl, port.tap, 0, &l);
	if (rv == KB_ENOTFOUND) {
		rv = vmk__tap_create(port.tap);
		if (rv < 0) {
			vmk__net_errf(net, err, rv, "creating tap %s", port.tap);
			return rv;
		}
		created = true;
	} else if (rv < 0) {
		vmk__net_errf(net, err, rv, "looking up tap %s", port.tap);
		return rv;
	} else if (strcmp(l.kind, "tun") != 0) {
		kb_errmsg_setf(err, "interface %s exists and is not a tap", port.tap);
		return KB_EEXIST;
	}
	rv = vmk__port_attach(net, net->conf, pg, port.tap, err);
	if (rv < 0)
		goto err_tap;
	if (!cur) {
		snprintf(port.portgroup, sizeof(port.portgroup), "%s", portgroup);
		snprintf(port.vm_uuid, sizeof(port.vm_uuid), "%s", vm_uuid);
		port.nic = nic_index;
		rv = vmk__conf_clone(net->conf, &next);
		if (rv < 0)
			goto err_tap;
		rv = vmk__conf_add_port(next, &port);
		if (rv < 0) {
			kb_errmsg_setf(err, "adding port %s: %s (at most %d)", port.tap,
				       kb_strerror(rv), VMK_NET_PORTS_MAX);
			vmk__conf_free(next);
			goto err_tap;
		}
		rv = vmk__net_commit(net, next, err);
		if (rv < 0)
			goto err_tap;
		kb_log(net->log, KB_LOG_INFO, "network: port %s for NIC %u of VM %s on \"%s\"",
		       port.tap, nic_index, vm_uuid, portgroup);
	}
	snprintf(out_tap_name, VMK_NET_IFNAME_MAX, "%s", port.tap);
	return 0;

err_tap:
	if (created && vmk__link_get(net->nl, port.tap, 0, &l) == 0)
		(void)vmk__link_delete(net->nl, l.ifindex);
	return rv;
}

int vmk_net_port_remove(struct vmk_net *net, const char *tap_name, struct kb_errmsg *err)
{
	struct vmk__net_conf *next;
	struct kb_errmsg scratch;
	struct vmk__link l;
	int rv;

	err = err ? err : &scratch;
	if (!vmk__conf_port(net->conf, tap_name)) {
		kb_errmsg_setf(err, "no port named \"%.40s\"", tap_name);
		return KB_ENOTFOUND;
	}
	rv = vmk__conf_clone(net->conf, &next);
	if (rv < 0)
		return rv;
	vmk__conf_del_port(next, tap_name);
	rv = vmk__link_get(net->nl, tap_name, 0, &l);
	if (rv == 0 && strcmp(l.kind, "tun") == 0)
		rv = vmk__link_delete(net->nl, l.ifindex);
	else if (rv == 0)
		kb_log(net->log, KB_LOG_WARN, "network: %s is no longer a tap; left in place",
		       tap_name);
	if (rv < 0 && rv != KB_ENOTFOUND && rv != -ENODEV) {
		vmk__net_errf(net, err, rv, "deleting tap %s", tap_name);
		vmk__conf_free(next);
		return rv;
	}
	rv = vmk__net_commit(net, next, err);
	if (rv < 0)
		return rv;
	kb_log(net->log, KB_LOG_INFO, "network: removed port %s", tap_name);
	return 0;
}

int vmk_net_port_remove_vm(struct vmk_net *net, const char *vm_uuid, struct kb_errmsg *err)
{
	char tap[VMK_NET_IFNAME_MAX];
	size_t i = 0;
	int rv;

	while (i < net->conf->n_ports) {
		if (!uuid_same(net->conf->ports[i].vm_uuid, vm_uuid)) {
			i++;
			continue;
		}
		/* Removing rewrites the array: start over from the same index. */
		snprintf(tap, sizeof(tap), "%s", net->conf->ports[i].tap);
		rv = vmk_net_port_remove(net, tap, err);
		if (rv < 0)
			return rv;
	}
	return 0;
}
