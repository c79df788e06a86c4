/*
 * Names and numbers of kernel/net: the checks every API call and the network.conf parser
 * apply to vSwitch, uplink and tap names, portgroup names, VM uuids, MTUs and VLAN ids, and
 * the deterministic tap name of a VM NIC.
 *
 * Interface names are what Linux accepts and a little stricter (1..15 characters of
 * [A-Za-z0-9_.-], starting with a letter), so they never need quoting in a shell and never
 * collide with "." or "..". Portgroup names allow spaces ("VM Network") but no '"' or '\',
 * which keeps network.conf free of escapes.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kernel/net/net_internal.h"

static bool is_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == '-';
}

/* Whether name has the shape of a port's tap: kt + 8 hex digits + n + digits. */
static bool is_tap_name(const char *name)
{
	size_t i, len = strlen(name);

	if (len < 12 || strncmp(name, VMK__TAP_PREFIX, 2) != 0 || name[10] != 'n')
		return false;
	for (i = 2; i < 10; i++)
		if (!isxdigit((unsigned char)name[i]))
			return false;
	for (i = 11; i < len; i++)
		if (!isdigit((unsigned char)name[i]))
			return false;
	return true;
}

int vmk__check_ifname(const char *name, const char *what, struct kb_errmsg *err)
{
	size_t i, len = strnlen(name, VMK_NET_IFNAME_MAX);

	if (len == 0 || len >= VMK_NET_IFNAME_MAX) {
		kb_errmsg_setf(err, "%s \"%.40s\": must be 1 to %d characters", what, name,
			       VMK_NET_IFNAME_MAX - 1);
		return KB_ECONFIG;
	}
	if (!isalpha((unsigned char)name[0])) {
		kb_errmsg_setf(err, "%s \"%s\": must start with a letter", what, name);
		return KB_ECONFIG;
	}
	for (i = 0; i < len; i++) {
		if (!is_name_char(name[i])) {
			kb_errmsg_setf(
			    err, "%s \"%s\": only letters, digits, '_', '.' and '-' are allowed",
			    what, name);
			return KB_ECONFIG;
		}
	}
	if (strcmp(what, "vSwitch name") == 0 && is_tap_name(name)) {
		kb_errmsg_setf(err,
			       "%s \"%s\": names of the form kt<8 hex>n<index> are VM NIC ports",
			       what, name);
		return KB_ECONFIG;
	}
	return 0;
}

int vmk__check_pg_name(const char *name, struct kb_errmsg *err)
{
	size_t i, len = strnlen(name, VMK_NET_PG_NAME_MAX);

	if (len == 0 || len >= VMK_NET_PG_NAME_MAX) {
		kb_errmsg_setf(err, "portgroup name \"%.40s\": must be 1 to %d characters", name,
			       VMK_NET_PG_NAME_MAX - 1);
		return KB_ECONFIG;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') {
			kb_errmsg_setf(err,
				       "portgroup name: character %zu is not allowed "
				       "(printable ASCII without '\"' and '\\')",
				       i + 1);
			return KB_ECONFIG;
		}
	}
	if (name[0] == ' ' || name[len - 1] == ' ') {
		kb_errmsg_setf(err, "portgroup name \"%s\": leading or trailing space", name);
		return KB_ECONFIG;
	}
	return 0;
}

int vmk__check_uuid(const char *uuid, struct kb_errmsg *err)
{
	size_t i, hex = 0, len = strnlen(uuid, VMK_NET_UUID_MAX);

	if (len == 0 || len >= VMK_NET_UUID_MAX) {
		kb_errmsg_setf(err, "VM uuid: must be 1 to %d characters", VMK_NET_UUID_MAX - 1);
		return KB_ECONFIG;
	}
	for (i = 0; i < len; i++) {
		if (isxdigit((unsigned char)uuid[i]))
			hex++;
		else if (uuid[i] != '-' && uuid[i] != ' ')
			break;
	}
	if (i < len || hex < 8) {
		kb_errmsg_setf(err,
			       "VM uuid \"%.63s\": hex digits, '-' and ' ' only, at least 8 digits",
			       uuid);
		return KB_ECONFIG;
	}
	return 0;
}

int vmk__check_mtu(uint32_t mtu, struct kb_errmsg *err)
{
	if (mtu < VMK_NET_MTU_MIN || mtu > VMK_NET_MTU_MAX) {
		kb_errmsg_setf(err, "MTU %u: must be %d to %d", mtu, VMK_NET_MTU_MIN,
			       VMK_NET_MTU_MAX);
		return KB_ECONFIG;
	}
	return 0;
}

int vmk__check_vlan(uint32_t vlan, struct kb_errmsg *err)
{
	if (vlan == VMK__VLAN_UNTAGGED) {
		kb_errmsg_setf(err,
			       "VLAN id 1 carries the vSwitch's untagged traffic (portgroups "
			       "without a VLAN): use 0 for it, or 2 to %d",
			       VMK_NET_VLAN_MAX);
		return KB_ECONFIG;
	}
	if (vlan > VMK_NET_VLAN_MAX) {
		kb_errmsg_setf(
		    err, "VLAN id %u: must be 0 (none) or 2 to %d%s", vlan, VMK_NET_VLAN_MAX,
		    vlan == 4095 ? " (4095, all VLANs to the guest, is not supported)" : "");
		return KB_ECONFIG;
	}
	return 0;
}

int vmk_net_port_name(const char *vm_uuid, uint32_t nic_index, char out[VMK_NET_IFNAME_MAX],
		      struct kb_errmsg *err)
{
	uint32_t h = 2166136261u; /* FNV-1a, 32 bits */
	const char *p;
	int rv;

	out[0] = '\0';
	rv = vmk__check_uuid(vm_uuid, err);
	if (rv < 0)
		return rv;
	if (nic_index > VMK_NET_NIC_INDEX_MAX) {
		kb_errmsg_setf(err, "NIC index %u: must be 0 to %d", nic_index,
			       VMK_NET_NIC_INDEX_MAX);
		return KB_ECONFIG;
	}
	for (p = vm_uuid; *p; p++) {
		if (!isxdigit((unsigned char)*p))
			continue;
		h ^= (uint8_t)tolower((unsigned char)*p);
		h *= 16777619u;
	}
	snprintf(out, VMK_NET_IFNAME_MAX, VMK__TAP_PREFIX "%08xn%u", h, nic_index);
	return 0;
}

int vmk__check_vmknic_name(const char *name, struct kb_errmsg *err)
{
	size_t i, len = strnlen(name, VMK_NET_IFNAME_MAX);

	if (len < 4 || len > 7 || strncmp(name, "vmk", 3) != 0 || (len > 4 && name[3] == '0'))
		goto bad;
	for (i = 3; i < len; i++)
		if (!isdigit((unsigned char)name[i]))
			goto bad;
	if (name[len] == '\0')
		return 0;
bad:
	kb_errmsg_setf(err, "VMkernel adapter name \"%.40s\": must be vmk0 to vmk%d", name,
		       VMK_NET_VMKNIC_INDEX_MAX);
	return KB_ECONFIG;
}

int vmk__check_netstack_name(const char *name, struct kb_errmsg *err)
{
	size_t i, len = strnlen(name, VMK_NET_NETSTACK_MAX);

	if (len == 0 || len >= VMK_NET_NETSTACK_MAX || !isalpha((unsigned char)name[0]))
		goto bad;
	for (i = 0; i < len; i++)
		if (!is_name_char(name[i]))
			goto bad;
	return 0;
bad:
	kb_errmsg_setf(err,
		       "netstack name \"%.40s\": 1 to %d letters, digits, '_', '.' or '-', "
		       "starting with a letter",
		       name, VMK_NET_NETSTACK_MAX - 1);
	return KB_ECONFIG;
}
