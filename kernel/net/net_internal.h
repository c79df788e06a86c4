/*
 * Shared declarations of the files of kernel/net (not for other components).
 *
 * The configuration (struct vmk__net_conf) is plain data: arrays of fixed-size records that
 * reference each other by name. Every change works on a copy (vmk__conf_clone), is applied
 * to the kernel, then saved and swapped in by vmk__net_commit(); on a failure the copy is
 * dropped and the kernel change undone, so memory, file and kernel never disagree for long.
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

struct vmk__net_conf {
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

/* Validators: 0, or KB_ECONFIG with a message naming what (e.g. "vSwitch name"). */
int vmk__check_ifname(const char *name, const char *what, struct kb_errmsg *err);
int vmk__check_pg_name(const char *name, struct kb_errmsg *err);
int vmk__check_uuid(const char *uuid, struct kb_errmsg *err);
int vmk__check_mtu(uint32_t mtu, struct kb_errmsg *err);
int vmk__check_vlan(uint32_t vlan, struct kb_errmsg *err);

/* ---- link.c: interfaces over rtnetlink ----------------------------------------------- */

struct vmk__link {
	int ifindex;
	int master; /* ifindex of the bridge it is a port of; 0: none */
	uint32_t mtu;
	uint32_t flags; /* IFF_* */
	bool carrier;
	char name[VMK_NET_IFNAME_MAX];
	char kind[16];	       /* IFLA_INFO_KIND: "bridge", "tun", "veth"; "" for hardware */
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

/* ---- bridge.c, portgroup.c, tap.c: applying the configuration ------------------------ */

/* Sets err to "<what>: <kb_strerror(rv)>" plus the kernel's extended-ack message. */
void vmk__net_errf(struct vmk_net *net, struct kb_errmsg *err, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Saves next as the configuration and swaps it in (takes ownership of next, also on
 * failure). 0 or -errno. */
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

#endif
