/*
 * kernel/net — VM networking of a Keel host: vSwitches, uplinks, portgroups and the tap
 * ports of VM NICs (DESIGN.md section 2).
 *
 * A vSwitch is a Linux bridge of the same name with an MTU and uplinks (existing
 * interfaces, "vmnicN" on real machines, enslaved to the bridge). A portgroup is a named
 * set of ports on one vSwitch with an optional VLAN id (2..4094, 0 = none). A VM NIC is a
 * port: a persistent tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, the flags vmx opens
 * it with) named from the VM's uuid and the NIC's index, attached to its portgroup's
 * bridge and up. With a VLAN the bridge filters VLANs: the tap's untagged PVID is the
 * portgroup's VLAN and the uplinks carry it tagged.
 *
 * The configuration (vSwitches, uplinks, portgroups, ports) lives in the host's config
 * store as etc/keel/network.conf (format in docs/networking.md; kept in config.kar): every
 * change is a put into the store, and a change the store refuses is undone in the kernel.
 * After each change <state dir>/network.conf is rewritten atomically as a derived copy for
 * the processes that read it (stack_socket.h); it is not the source of truth. Without a
 * store (unit tests) the file is the configuration. vmk_net_init() reads the store's copy
 * (a store without one takes <state dir>/network.conf in once; on first start it creates
 * vSwitch0 with the portgroup "VM Network") and applies it to the kernel idempotently:
 * existing bridges are reused, taps still held by a running vmx (carrier up) are kept,
 * ports whose tap is gone or unused are dropped. When etc/keel/network.conf is replaced in
 * the store behind kernel/net's back (keel host config put or restore), the new contents
 * apply at the next start and changes are refused until then (KB_ESTATE).
 *
 * Threads: a struct vmk_net is used by one thread at a time (vmkernel's main loop). Calls
 * are synchronous rtnetlink exchanges and ioctls that finish in microseconds to
 * milliseconds. Errors: 0 or a negative code (-errno from the kernel, KB_E* from
 * lib/err.h); err, when not NULL, gets the message with context. A failed call changes
 * nothing, neither the kernel's interfaces nor the configuration.
 *
 * VMkernel adapters (vmkN) are the host's own IPv4 interfaces: a veth pair per adapter, one
 * end ("vmkpN") a port of its portgroup's bridge, the other ("vmkN") in the adapter's
 * netstack with its address, MTU, MAC and default route. A netstack is a network
 * namespace: defaultTcpipStack is the namespace vmkernel runs in; the others are
 * namespaces owned by this host, kept alive by bind mounts at <state dir>/netns/<name>.
 * Adapters carry service tags (Management, VMotion, ...) that other components look up
 * with kernel/net/stack_socket.h.
 */
#ifndef VMK_NET_H
#define VMK_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/log.h"
#include "vmk.pb-c.h"

#define VMK_NET_IFNAME_MAX	  16 /* Linux interface names: 1..15 characters + NUL */
#define VMK_NET_PG_NAME_MAX	  64 /* portgroup names: 1..63 characters + NUL */
#define VMK_NET_UUID_MAX	  64 /* VM uuids: 8..63 characters + NUL */
#define VMK_NET_MTU_MIN		  1280
#define VMK_NET_MTU_MAX		  9000
#define VMK_NET_MTU_DEFAULT	  1500
#define VMK_NET_VLAN_MAX	  4094
#define VMK_NET_NIC_INDEX_MAX	  9999
#define VMK_NET_UPLINKS_MAX	  16 /* per vSwitch */
#define VMK_NET_VSWITCHES_MAX	  64
#define VMK_NET_PORTGROUPS_MAX	  512
#define VMK_NET_PORTS_MAX	  4096
#define VMK_NET_DEFAULT_VSWITCH	  "vSwitch0"
#define VMK_NET_DEFAULT_PORTGROUP "VM Network"
#define VMK_NET_CONF_FILE	  "network.conf"
#define VMK_NET_NETSTACK_MAX	  32 /* netstack names: 1..31 characters + NUL */
#define VMK_NET_NETSTACKS_MAX	  16 /* besides defaultTcpipStack */
#define VMK_NET_VMKNICS_MAX	  64
#define VMK_NET_VMKNIC_INDEX_MAX  9999 /* vmk0 .. vmk9999 */
#define VMK_NET_DEFAULT_NETSTACK  "defaultTcpipStack"
#define VMK_NET_NETNS_DIR	  "netns" /* <state dir>/netns/<netstack> */

#define VMK_NET_CFG_PATH "etc/keel/network.conf" /* in the config store */

struct vmk__net_conf;
struct vmk__nl;
struct vmk_cfg;

/* The networking of one host. Caller-allocated; the fields but log are private. */
struct vmk_net {
	struct kb_logger *log; /* kb_log_default after init; the caller may replace it */
	char *conf_path;
	struct vmk__net_conf *conf;
	struct vmk__nl *nl;
	char *netns_dir;       /* <state dir>/netns */
	struct vmk_cfg *store; /* borrowed; NULL: network.conf is the configuration */
};

/* Reads the configuration (the host's config store, else <state_dir>/network.conf; see
 * vmk_net_init_store(); the default configuration when there is none) and applies it to
 * the kernel. An object that cannot be applied (an uplink that no longer exists, a VLAN
 * the kernel cannot filter) is logged as a warning and stays configured. Returns 0; -ENOMEM; -errno for the state dir or the netlink socket;
 * KB_ECONFIG / KB_ETOOBIG for a malformed file, which is left untouched. On failure net
 * needs no vmk_net_close(). */
int vmk_net_init(const char *state_dir, struct vmk_net *net, struct kb_errmsg *err);
/* vmk_net_init() with the configuration kept in store (borrowed, outlives net; NULL: in
 * <state_dir>/network.conf only). vmk_net_init() passes the host's store
 * (kernel/cfg/ctl.h) when it is open. At start the store's etc/keel/network.conf is applied;
 * a store without it takes <state_dir>/network.conf in (logged) or the first-start
 * default. Either way <state_dir>/network.conf is then rewritten from the store. */
int vmk_net_init_store(const char *state_dir, struct vmk_cfg *store, struct vmk_net *net,
		       struct kb_errmsg *err);

/* Checks the text of a network.conf (the config store's contents check of
 * etc/keel/network.conf). 0, or KB_ECONFIG / KB_ETOOBIG with "line N: ..." in err. */
int vmk_net_conf_check(const void *text, size_t len, struct kb_errmsg *err);

/* Frees net. Bridges and taps stay in the kernel, so running VMs keep their network while
 * vmkernel restarts. */
void vmk_net_close(struct vmk_net *net);

/* Adds a vSwitch: creates (or reuses) the bridge name, sets its MTU (0: 1500; else
 * 1280..9000) and brings it up. name: 1..15 of [A-Za-z0-9_.-], starting with a letter.
 * KB_ECONFIG for a bad name or MTU, KB_EEXIST when the vSwitch exists or name is a
 * non-bridge interface, KB_ETOOBIG past VMK_NET_VSWITCHES_MAX. */
int vmk_net_vswitch_add(struct vmk_net *net, const char *name, uint32_t mtu, struct kb_errmsg *err);

/* Removes a vSwitch and deletes its bridge (its uplinks are released). KB_ENOTFOUND;
 * KB_ESTATE while portgroups use it. */
int vmk_net_vswitch_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err);

/* Sets the MTU of a vSwitch, its uplinks and its ports. KB_ENOTFOUND, KB_ECONFIG. */
int vmk_net_vswitch_set_mtu(struct vmk_net *net, const char *name, uint32_t mtu,
			    struct kb_errmsg *err);

/* Lists the vSwitches in configuration order as VSwitchInfo messages (name, uplinks,
 * mtu) for VmkReply.vswitches. *out is an array of *n_out messages, NULL when empty;
 * caller frees with vmk_net_vswitch_list_free(). 0 or -ENOMEM. */
int vmk_net_vswitch_list(struct vmk_net *net, Keel__Vmk__VSwitchInfo ***out, size_t *n_out,
			 struct kb_errmsg *err);
void vmk_net_vswitch_list_free(Keel__Vmk__VSwitchInfo **list, size_t n);

/* Adds the existing interface nic as an uplink of vswitch: sets its MTU to the vSwitch's,
 * enslaves it to the bridge, brings it up, and adds the VLANs of the vSwitch's portgroups
 * as tagged members. KB_ENOTFOUND (no such vSwitch or interface), KB_EEXIST (already an
 * uplink), KB_ESTATE (nic is a bridge, a tap, loopback, or a port of another bridge),
 * KB_ETOOBIG past VMK_NET_UPLINKS_MAX. */
int vmk_net_uplink_add(struct vmk_net *net, const char *vswitch, const char *nic,
		       struct kb_errmsg *err);

/* Releases the uplink nic from vswitch (the interface stays up). KB_ENOTFOUND. */
int vmk_net_uplink_remove(struct vmk_net *net, const char *vswitch, const char *nic,
			  struct kb_errmsg *err);

/* Adds a portgroup on vswitch with VLAN id vlan (0: none, else 2..4094; 1 is the bridge's
 * untagged VLAN, the one of portgroups without a VLAN). name: 1..63
 * printable ASCII characters without '"' or '\\', no leading or trailing space. A VLAN
 * turns on VLAN filtering on the bridge and adds the VLAN, tagged, to the uplinks.
 * KB_ECONFIG, KB_ENOTFOUND (vswitch), KB_EEXIST, KB_ETOOBIG, KB_ENOTSUP when the kernel has
 * no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING). */
int vmk_net_portgroup_add(struct vmk_net *net, const char *name, const char *vswitch, uint32_t vlan,
			  struct kb_errmsg *err);

/* Removes a portgroup (and its VLAN from the uplinks when no other portgroup of the
 * vSwitch uses it). KB_ENOTFOUND; KB_ESTATE while it has ports. */
int vmk_net_portgroup_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err);

/* 0 when the portgroup exists, KB_ENOTFOUND otherwise (for checking a VM's NICs). */
int vmk_net_portgroup_find(struct vmk_net *net, const char *name, struct kb_errmsg *err);

/* Lists the portgroups in configuration order as PortgroupInfo messages (name, vswitch,
 * vlan, the taps of their ports) for VmkReply.portgroups. Caller frees with
 * vmk_net_portgroup_list_free(). 0 or -ENOMEM. */
int vmk_net_portgroup_list(struct vmk_net *net, Keel__Vmk__PortgroupInfo ***out, size_t *n_out,
			   struct kb_errmsg *err);
void vmk_net_portgroup_list_free(Keel__Vmk__PortgroupInfo **list, size_t n);

/* The tap name of NIC nic_index (0..9999) of the VM vm_uuid: "kt", 8 hex digits of a
 * 32-bit FNV-1a hash of the uuid's hex digits (lower case), "n", the index; at most 15
 * characters. vm_uuid: 8..63 characters of hex digits, '-' and ' ', at least 8 hex digits.
 * 0 or KB_ECONFIG. */
int vmk_net_port_name(const char *vm_uuid, uint32_t nic_index, char out[VMK_NET_IFNAME_MAX],
		      struct kb_errmsg *err);

/* Creates the port of NIC nic_index of VM vm_uuid on portgroup: a persistent tap
 * (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) named by vmk_net_port_name(), with the vSwitch's
 * MTU, attached to the bridge (untagged member of the portgroup's VLAN) and up; its name
 * goes to out_tap_name for vmx's --net. Creating a port that exists on the same portgroup
 * returns 0 and its name (power-on after a vmkernel restart). KB_ECONFIG, KB_ENOTFOUND
 * (portgroup), KB_EEXIST (the port is on another portgroup, or the name belongs to another
 * VM or to a non-tap interface), KB_ETOOBIG, KB_ENOTSUP (a VLAN portgroup on a kernel
 * without bridge VLAN filtering: the tap is never left on the bridge untagged), -errno. */
int vmk_net_port_create(struct vmk_net *net, const char *portgroup, const char *vm_uuid,
			uint32_t nic_index, char out_tap_name[VMK_NET_IFNAME_MAX],
			struct kb_errmsg *err);

/* Deletes the tap of a port (a vmx still holding it loses its network) and forgets the
 * port. A tap already gone is not an error. KB_ENOTFOUND for an unknown port. */
int vmk_net_port_remove(struct vmk_net *net, const char *tap_name, struct kb_errmsg *err);

/* Removes every port of VM vm_uuid (power-off, unregister). 0 when it had none. */
int vmk_net_port_remove_vm(struct vmk_net *net, const char *vm_uuid, struct kb_errmsg *err);

/* ---- VMkernel adapters and netstacks ------------------------------------------------- */

/* What vmk_net_vmknic_add() takes; strings are borrowed for the call. */
struct vmk_net_vmknic_args {
	const char *name;      /* "vmk" + 0..9999 without leading zeros */
	const char *portgroup; /* an existing portgroup */
	const char *netstack;  /* NULL or "": defaultTcpipStack */
	const char *ipv4;      /* "A.B.C.D/PREFIX", prefix 1..32 */
	const char *gateway;   /* NULL or "": none; else inside the adapter's subnet */
	uint32_t mtu;	       /* 0: 1500; else 1280..9000 and at most the vSwitch's MTU */
	const char *mac;       /* NULL or "": generated, 02:xx:xx:xx:xx:xx */
	const char *const *tags;
	size_t n_tags;
};

/* Adds a VMkernel adapter: the veth pair vmkpN (a port of the portgroup's bridge, in its
 * VLAN) and vmkN (in the netstack, with address, MTU, MAC, up, and the default route of
 * the netstack via gateway when one is given). The netstacks vmotion and provisioning are
 * created on first use; other netstacks must exist. KB_ECONFIG (a bad name, address, MAC,
 * MTU or tag), KB_ENOTFOUND (portgroup, netstack), KB_EEXIST (the name, the address in that
 * netstack, or another gateway of the netstack), KB_ETOOBIG, -errno. */
int vmk_net_vmknic_add(struct vmk_net *net, const struct vmk_net_vmknic_args *a,
		       struct kb_errmsg *err);

/* Removes an adapter and deletes its veth pair. KB_ENOTFOUND. */
int vmk_net_vmknic_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err);

/* Replaces the address ("A.B.C.D/PREFIX") and gateway (NULL or "": none) of an adapter. */
int vmk_net_vmknic_set_ip(struct vmk_net *net, const char *name, const char *ipv4,
			  const char *gateway, struct kb_errmsg *err);

/* Sets the MTU of an adapter's vmkN (1280..9000, at most its vSwitch's). */
int vmk_net_vmknic_set_mtu(struct vmk_net *net, const char *name, uint32_t mtu,
			   struct kb_errmsg *err);

/* Adds or removes a service tag (Management, VMotion, FaultToleranceLogging,
 * Provisioning, vSAN, Replication; any case). Adding a tag the adapter has, or removing one
 * it lacks, is a no-op. KB_ENOTFOUND, KB_ECONFIG. */
int vmk_net_vmknic_tag(struct vmk_net *net, const char *name, const char *tag, bool add,
		       struct kb_errmsg *err);

/* Lists the adapters in configuration order as VmknicInfo messages, with the state of
 * their interface. Caller frees with vmk_net_vmknic_list_free(). 0 or -ENOMEM. */
int vmk_net_vmknic_list(struct vmk_net *net, Keel__Vmk__VmknicInfo ***out, size_t *n_out,
			struct kb_errmsg *err);
void vmk_net_vmknic_list_free(Keel__Vmk__VmknicInfo **list, size_t n);

/* Adds a netstack: a new network namespace bound at <state dir>/netns/NAME, loopback up.
 * name: 1..31 of [A-Za-z0-9_.-], starting with a letter. KB_ECONFIG, KB_EEXIST,
 * KB_ETOOBIG, -errno. */
int vmk_net_netstack_add(struct vmk_net *net, const char *name, struct kb_errmsg *err);

/* Removes a netstack and its namespace. KB_ENOTFOUND; KB_ESTATE while adapters use it or
 * for defaultTcpipStack. */
int vmk_net_netstack_remove(struct vmk_net *net, const char *name, struct kb_errmsg *err);

/* Lists defaultTcpipStack, then the configured netstacks, as NetstackInfo messages.
 * Caller frees with vmk_net_netstack_list_free(). 0 or -ENOMEM. */
int vmk_net_netstack_list(struct vmk_net *net, Keel__Vmk__NetstackInfo ***out, size_t *n_out,
			  struct kb_errmsg *err);
void vmk_net_netstack_list_free(Keel__Vmk__NetstackInfo **list, size_t n);

#endif
