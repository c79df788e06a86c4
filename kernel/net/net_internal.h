/*
 * Shared declarations of the files of kernel/net (not for other components).
 *
 * The configuration (struct vmk__net_conf) is plain data: arrays of fixed-size records that
 * reference each other by name. Every change works on a copy (vmk__conf_clone), is applied
 * to the kernel, then put into the config store as etc/keel/network.conf (the state dir's
 * network.conf is a copy written after it) and swapped in by vmk__net_commit(); on a failure
 * the copy is dropped and the kernel change undone, so memory, store and kernel never
 * disagree for long.
 */
#ifndef VMK_NET_INTERNAL_H
#define VMK_NET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/net/net.h"
#include "kernel/net/netlink.h"
#include "lib/buf.h"
#include "lib/err.h"

#define VMK__CONF_VERSION  1
#define VMK__CONF_SIZE_MAX (1u << 20) /* bytes of network.conf */
#define VMK__CONF_LINE_MAX 512
#define VMK__TAP_PREFIX	   "kt"
/* The bridge\'s default VLAN: untagged on uplinks, the VLAN of ports without one. */
#define VMK__VLAN_UNTAGGED 1

struct vmk__vswitch {
	char name[VMK_NET_IFNAME_MAX];
	uint32_t mtu;
	unsigned n_uplinks;
	char uplinks[VMK_NET_UPLINKS_MAX][VMK_NET_IFNAME_MAX];
};

struct vmk__portgroup {
	char name[VMK_NET_PG_NAME_MAX];
	char vswitch[VMK_NET_IFNAME_MAX];
	uint16_t vlan; /* 0: none */
};

struct vmk__port {
	char tap[VMK_NET_IFNAME_MAX];
	char portgroup[VMK_NET_PG_NAME_MAX];
	char vm_uuid[VMK_NET_UUID_MAX];
	uint32_t nic;
};

/* Service tags of VMkernel adapters, bit i = vmk__tag_names[i]. */
enum {
	VMK__TAG_MANAGEMENT = 1u << 0,
	VMK__TAG_VMOTION = 1u << 1,
	VMK__TAG_FT_LOGGING = 1u << 2,
	VMK__TAG_PROVISIONING = 1u << 3,
	VMK__TAG_VSAN = 1u << 4,
	VMK__TAG_REPLICATION = 1u << 5,
	VMK__TAG_COUNT = 6,
};
extern const char *const vmk__tag_names[VMK__TAG_COUNT];

#define VMK__VMKNIC_PORT_PREFIX "vmkp" /* bridge-side end: "vmkp" + the adapter's number */

struct vmk__netstack {
	char name[VMK_NET_NETSTACK_MAX];
};

struct vmk__vmknic {
	char name[VMK_NET_IFNAME_MAX];
	char portgroup[VMK_NET_PG_NAME_MAX];
	char netstack[VMK_NET_NETSTACK_MAX];
	uint32_t ip;	  /* network byte order */
	uint32_t gateway; /* network byte order; 0: none */
	uint8_t prefix;
	uint32_t mtu;
	uint8_t mac[6];
	uint32_t tags; /* VMK__TAG_* */
};

struct vmk__net_conf {
	struct vmk__netstack *netstacks;
	size_t n_netstacks;
	struct vmk__vmknic *vmknics;
	size_t n_vmknics;
	struct vmk__vswitch *vswitches;
	size_t n_vswitches;
	struct vmk__portgroup *portgroups;
	size_t n_portgroups;
	struct vmk__port *ports;
	size_t n_ports;
};

/* ---- config.c: the configuration and network.conf ------------------------------------ */

/* An empty configuration, or the first-start default (vSwitch0, "VM Network"). NULL on
 * allocation failure. Freed with vmk__conf_free(). */
struct vmk__net_conf *vmk__conf_new(void);
int vmk__conf_default(struct vmk__net_conf **out);
void vmk__conf_free(struct vmk__net_conf *c);
/* A deep copy. 0 or -ENOMEM. */
int vmk__conf_clone(const struct vmk__net_conf *c, struct vmk__net_conf **out);

/* Parses the text of network.conf (untrusted: sizes and references are checked). 0,
 * KB_ECONFIG with "line N: ..." in err, KB_ETOOBIG, -ENOMEM. */
int vmk__conf_parse(const char *text, size_t len, struct vmk__net_conf **out,
		    struct kb_errmsg *err);
/* Formats c as network.conf text into out. 0, -ENOMEM. */
int vmk__conf_format(const struct vmk__net_conf *c, struct kb_buf *out);
/* Reads path. -ENOENT when it does not exist; else as vmk__conf_parse or -errno. */
int vmk__conf_load(const char *path, struct vmk__net_conf **out, struct kb_errmsg *err);
/* Writes path atomically: path.tmp, fsync, rename, fsync of the directory. 0 or -errno. */
int vmk__conf_save(const char *path, const struct vmk__net_conf *c, struct kb_errmsg *err);

struct vmk__vswitch *vmk__conf_vswitch(const struct vmk__net_conf *c, const char *name);
struct vmk__portgroup *vmk__conf_portgroup(const struct vmk__net_conf *c, const char *name);
struct vmk__port *vmk__conf_port(const struct vmk__net_conf *c, const char *tap);
/* Appends a record (copied). 0, -ENOMEM, KB_ETOOBIG past the VMK_NET_*_MAX limits. */
int vmk__conf_add_vswitch(struct vmk__net_conf *c, const struct vmk__vswitch *vs);
int vmk__conf_add_portgroup(struct vmk__net_conf *c, const struct vmk__portgroup *pg);
int vmk__conf_add_port(struct vmk__net_conf *c, const struct vmk__port *p);
/* Removes a record by name (no-op when absent). */
void vmk__conf_del_vswitch(struct vmk__net_conf *c, const char *name);
void vmk__conf_del_portgroup(struct vmk__net_conf *c, const char *name);
void vmk__conf_del_port(struct vmk__net_conf *c, const char *tap);
/* Whether another portgroup than except on vSwitch vswitch uses vlan. */
bool vmk__conf_vlan_used(const struct vmk__net_conf *c, const char *vswitch, uint16_t vlan,
			 const char *except);

struct vmk__netstack *vmk__conf_netstack(const struct vmk__net_conf *c, const char *name);
struct vmk__vmknic *vmk__conf_vmknic(const struct vmk__net_conf *c, const char *name);
int vmk__conf_add_netstack(struct vmk__net_conf *c, const struct vmk__netstack *ns);
int vmk__conf_add_vmknic(struct vmk__net_conf *c, const struct vmk__vmknic *v);
void vmk__conf_del_netstack(struct vmk__net_conf *c, const char *name);
void vmk__conf_del_vmknic(struct vmk__net_conf *c, const char *name);

/* Validators: 0, or KB_ECONFIG with a message naming what (e.g. "vSwitch name"). */
int vmk__check_ifname(const char *name, const char *what, struct kb_errmsg *err);
int vmk__check_pg_name(const char *name, struct kb_errmsg *err);
int vmk__check_uuid(const char *uuid, struct kb_errmsg *err);
int vmk__check_mtu(uint32_t mtu, struct kb_errmsg *err);
int vmk__check_vlan(uint32_t vlan, struct kb_errmsg *err);
/* "vmk" + 0..9999 without leading zeros. */
int vmk__check_vmknic_name(const char *name, struct kb_errmsg *err);
/* 1..31 of [A-Za-z0-9_.-], starting with a letter. */
int vmk__check_netstack_name(const char *name, struct kb_errmsg *err);

/* ---- addr.c: addresses, MACs and tags as text ---------------------------------------- */

/* "A.B.C.D/N" (N 1..32; a host address, not the network or broadcast address of a
 * prefix below 31). ip in network byte order. KB_ECONFIG. */
int vmk__ipv4_prefix_parse(const char *s, uint32_t *ip, uint8_t *prefix, struct kb_errmsg *err);
/* "A.B.C.D" (not 0.0.0.0). KB_ECONFIG. */
int vmk__ipv4_parse(const char *s, uint32_t *ip, const char *what, struct kb_errmsg *err);
/* Dotted quad of ip (network byte order) into out[16]. */
char *vmk__ipv4_format(uint32_t ip, char out[16]);
/* The netmask of a prefix, network byte order. */
uint32_t vmk__prefix_mask(uint8_t prefix);
/* "xx:xx:xx:xx:xx:xx", unicast. KB_ECONFIG. */
int vmk__mac_parse(const char *s, uint8_t mac[6], struct kb_errmsg *err);
char *vmk__mac_format(const uint8_t mac[6], char out[18]);
/* A random locally administered unicast MAC 02:xx:xx:xx:xx:xx. 0 or -errno. */
int vmk__mac_generate(uint8_t mac[6]);
/* A tag name (any case) to its VMK__TAG_* bit. KB_ECONFIG. */
int vmk__tag_parse(const char *s, uint32_t *bit, struct kb_errmsg *err);
/* The bridge-side interface name of adapter name ("vmk3" -> "vmkp3"). */
void vmk__vmknic_port_name(const char *name, char out[VMK_NET_IFNAME_MAX]);

/* ---- link.c: interfaces over rtnetlink ----------------------------------------------- */

struct vmk__link {
	int ifindex;
	int master; /* ifindex of the bridge it is a port of; 0: none */
	uint32_t mtu;
	uint32_t flags; /* IFF_* */
	bool carrier;
	char name[VMK_NET_IFNAME_MAX];
	char kind[16];	       /* IFLA_INFO_KIND: "bridge", "tun", "veth"; "" for hardware */
	uint8_t mac[6];	       /* IFLA_ADDRESS */
	bool vlan_filtering;   /* bridges */
	uint16_t default_pvid; /* bridges; 0 when the kernel does not report it */
};

struct vmk__vlan {
	uint16_t vid;
	uint16_t flags; /* BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED */
};

/* Looks an interface up by name (ifindex 0) or by index. 0, KB_ENOTFOUND, -errno. */
int vmk__link_get(struct vmk__nl *nl, const char *name, int ifindex, struct vmk__link *out);
int vmk__link_bridge_create(struct vmk__nl *nl, const char *name);
int vmk__link_delete(struct vmk__nl *nl, int ifindex);
/* master 0 releases the interface from its bridge. */
int vmk__link_set_master(struct vmk__nl *nl, int ifindex, int master);
int vmk__link_set_up(struct vmk__nl *nl, int ifindex);
int vmk__link_set_mtu(struct vmk__nl *nl, int ifindex, uint32_t mtu);
int vmk__link_bridge_vlan_filtering(struct vmk__nl *nl, int br_ifindex, bool on);
/* Adds or removes VLAN vid on a bridge port; flags as in struct bridge_vlan_info. */
int vmk__link_vlan_add(struct vmk__nl *nl, int ifindex, uint16_t vid, uint16_t flags);
int vmk__link_vlan_del(struct vmk__nl *nl, int ifindex, uint16_t vid);
/* The VLANs of bridge port ifindex (at most max; *n may exceed max to tell). */
int vmk__link_vlans(struct vmk__nl *nl, int ifindex, struct vmk__vlan *out, size_t max, size_t *n);

/* ---- link_ip.c: veth pairs, moving, MACs, IPv4 addresses and routes ---------------- */

/* Creates the veth pair name <-> peer; the peer goes into the namespace peer_nsfd (-1: this
 * one) with its MAC and MTU. 0 or -errno (-EEXIST). */
int vmk__link_veth_create(struct vmk__nl *nl, const char *name, const char *peer, int peer_nsfd,
			  const uint8_t mac[6], uint32_t mtu);
int vmk__link_set_mac(struct vmk__nl *nl, int ifindex, const uint8_t mac[6]);
/* The IPv4 addresses (network byte order) and prefixes of ifindex, at most max. */
int vmk__addr_list(struct vmk__nl *nl, int ifindex, uint32_t *ips, uint8_t *prefixes, size_t max,
		   size_t *n);
int vmk__addr_add(struct vmk__nl *nl, int ifindex, uint32_t ip, uint8_t prefix);
int vmk__addr_del(struct vmk__nl *nl, int ifindex, uint32_t ip, uint8_t prefix);
/* Sets (replaces) the default route of the namespace via gw on ifindex, or deletes the
 * default route through ifindex (gw 0; -ESRCH when there is none). */
int vmk__route_default(struct vmk__nl *nl, int ifindex, uint32_t gw);

/* ---- netns.c: the namespaces of netstacks --------------------------------------------- */

/* A netlink socket in a netstack: net->nl for defaultTcpipStack, else a socket opened in
 * the netstack's namespace (which it keeps). */
struct vmk__stack {
	struct vmk__nl *nl; /* net->nl or &own */
	struct vmk__nl own;
	int nsfd; /* the namespace; -1 for defaultTcpipStack */
};

/* Whether name is defaultTcpipStack (or empty). */
bool vmk__netstack_is_default(const char *name);
/* The namespace file of netstack name under dir, into out. */
int vmk__netns_path(const char *dir, const char *name, char *out, size_t size);
/* Opens the namespace file path (O_RDONLY) and checks that it is a network namespace.
 * -ENOENT, KB_ENOTFOUND (a file that is not a mounted namespace), -errno. */
int vmk__netns_open(const char *path, int *fd);
/* Makes a network namespace bound at path (made if missing), or keeps the one there; then
 * brings its loopback up. *created tells which. 0 or -errno. */
int vmk__netns_ensure(const char *path, bool *created);
/* Unmounts and removes path. 0 or -errno (a path that is not there is 0). */
int vmk__netns_remove(const char *path);
/* Runs fn(arg) on a new thread inside the namespace nsfd and returns its result. */
int vmk__netns_call(int nsfd, int (*fn)(void *arg), void *arg);
/* Opens the netlink socket of netstack name (ensuring its namespace when ensure).
 * Closed with vmk__stack_close(). */
int vmk__stack_open(struct vmk_net *net, const char *name, bool ensure, struct vmk__stack *st,
		    struct kb_errmsg *err);
void vmk__stack_close(struct vmk__stack *st);

/* ---- bridge.c, portgroup.c, tap.c: applying the configuration ------------------------ */

/* Sets err to "<what>: <kb_strerror(rv)>" plus the kernel's extended-ack message. */
void vmk__net_errf(struct vmk_net *net, struct kb_errmsg *err, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Saves next as the configuration and swaps it in (takes ownership of next, also on
 * failure). 0, -errno, or the store's KB_ESTATE (network.conf replaced in the store: it
 * applies at the next start), KB_ECONFIG or KB_ETOOBIG. */
int vmk__net_commit(struct vmk_net *net, struct vmk__net_conf *next, struct kb_errmsg *err);

/* Creates or reuses the bridge of vs, sets its MTU and brings it up; its ifindex goes to
 * *ifindex. */
int vmk__bridge_apply(struct vmk_net *net, const struct vmk__vswitch *vs, int *ifindex,
		      struct kb_errmsg *err);
/* Enslaves uplink nic to the bridge of vs with the VLANs of conf's portgroups on it. */
int vmk__uplink_apply(struct vmk_net *net, const struct vmk__net_conf *conf,
		      const struct vmk__vswitch *vs, const char *nic, struct kb_errmsg *err);
/* Turns on VLAN filtering on the bridge of pg and adds pg's VLAN to the uplinks. */
int vmk__portgroup_apply(struct vmk_net *net, const struct vmk__net_conf *conf,
			 const struct vmk__portgroup *pg, struct kb_errmsg *err);
/* Attaches interface ifname as a port of pg: MTU, bridge, VLAN, up. */
int vmk__port_attach(struct vmk_net *net, const struct vmk__net_conf *conf,
		     const struct vmk__portgroup *pg, const char *ifname, struct kb_errmsg *err);
/* Creates the persistent tap name (or reuses it when it exists). 0 or -errno. */
int vmk__tap_create(const char *name);

/* ---- vmknic.c, netstack.c ------------------------------------------------------------- */

/* Makes the kernel match adapter v of conf: the veth pair (re-created when half of it is
 * gone), MAC, MTU, address, default route, up, and the bridge port. */
int vmk__vmknic_apply(struct vmk_net *net, const struct vmk__net_conf *conf,
		      const struct vmk__vmknic *v, struct kb_errmsg *err);
/* Ensures the namespace of a configured netstack. */
int vmk__netstack_apply(struct vmk_net *net, const struct vmk__netstack *ns, struct kb_errmsg *err);

#endif
