/*
 * Tests for kernel/net on real interfaces, each in a private network namespace.
 *
 * main() moves the process into a private mount namespace once; every test then unshares
 * a fresh network namespace, mounts a sysfs of its own on /sys (so /sys/class/net shows
 * that namespace) and a temporary state dir; teardown unmounts, returns to the original
 * namespace and the test's namespace disappears with every bridge, veth and tap in it.
 * When namespaces cannot be made (not root), the tests skip; nothing ever runs in the
 * machine's own network namespace. Uplinks are veth pairs; frames cross the datapath
 * between a packet socket on the veth peer and the tap opened the way vmx opens it.
 *
 * "test_net drive STATE_DIR CMD ARGS..." runs one library call for the integration test
 * tests/integration/vmk_net.sh (inside the namespace it made with ip netns).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_bridge.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/veth.h>
#include <cmocka.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"
#include "tests/unit/netns_helpers.h"

#define ETH_TEST 0x88b5 /* IEEE local experimental ethertype */

static const char uuid_a[] = "0f3c2a51-9a7e-4b6f-8d1e-2c4b5a6f7e80";
static const char uuid_b[] = "9b1d7c44-1e2f-4a3b-9c8d-7e6f5a4b3c2d";

struct fx {
	char dir[64];
	char conf[96];
	bool mounted, in_ns, net_open, dir_made;
	struct vmk_net net;
	struct vmk__nl nl;
	struct kb_errmsg err;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	if (!th_netns_ready())
		return 0;
	if (th_netns_enter(&f->in_ns) < 0)
		return -1;
	if (mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		return -1;
	f->mounted = true;
	snprintf(f->dir, sizeof(f->dir), "/tmp/keel-net-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->dir_made = true;
	snprintf(f->conf, sizeof(f->conf), "%s/network.conf", f->dir);
	if (vmk__nl_open(&f->nl) < 0)
		return -1;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char path[160];

	if (f->net_open)
		vmk_net_close(&f->net);
	if (f->nl.rbuf)
		vmk__nl_close(&f->nl);
	if (f->mounted)
		umount2("/sys", MNT_DETACH);
	if (f->in_ns && th_netns_leave() < 0)
		return -1;
	if (f->dir_made) {
		snprintf(path, sizeof(path), "%s.tmp", f->conf);
		rmdir(path);
		unlink(f->conf);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

/* The fixture, or a skip when namespaces are not available. */
static struct fx *fx_get(void **state)
{
	struct fx *f = *state;

	th_netns_need();
	return f;
}

static void net_init(struct fx *f)
{
	if (vmk_net_init(f->dir, &f->net, &f->err) < 0)
		fail_msg("vmk_net_init: %s", f->err.msg);
	f->net_open = true;
}

static void net_reopen(struct fx *f)
{
	vmk_net_close(&f->net);
	f->net_open = false;
	net_init(f);
}

#define OK(call)                                                       \
	do {                                                           \
		int rv_ = (call);                                      \
		if (rv_ < 0)                                           \
			fail_msg("%s: %d %s", #call, rv_, f->err.msg); \
	} while (0)

/* ---- looking at the kernel -------------------------------------------------------- */

/* The first line of /sys/class/net/<name>/<attr>, or "" when it does not exist. */
static const char *sys_attr(const char *name, const char *attr)
{
	static char buf[128];
	char path[256];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", name, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static bool link_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

/* The bridge name is a port of, "" for none. */
static const char *master_of(const char *name)
{
	static char buf[PATH_MAX];
	char path[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/master", name);
	n = readlink(path, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
}

static unsigned long sys_num(const char *name, const char *attr)
{
	return strtoul(sys_attr(name, attr), NULL, 0);
}

static void veth_add(struct fx *f, const char *a, const char *b)
{
	struct vmk__nlmsg m;
	struct ifinfomsg *ifi;

	vmk__nlmsg_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	vmk__nlmsg_reserve(&m, sizeof(struct ifinfomsg));
	vmk__nlmsg_put_str(&m, IFLA_IFNAME, a);
	vmk__nlmsg_nest_begin(&m, IFLA_LINKINFO);
	vmk__nlmsg_put_str(&m, IFLA_INFO_KIND, "veth");
	vmk__nlmsg_nest_begin(&m, IFLA_INFO_DATA);
	vmk__nlmsg_nest_begin(&m, VETH_INFO_PEER);
	ifi = vmk__nlmsg_reserve(&m, sizeof(*ifi));
	assert_non_null(ifi);
	vmk__nlmsg_put_str(&m, IFLA_IFNAME, b);
	vmk__nlmsg_nest_end(&m);
	vmk__nlmsg_nest_end(&m);
	vmk__nlmsg_nest_end(&m);
	assert_int_equal(vmk__nl_call(&f->nl, &m, NULL, NULL), 0);
	assert_int_equal(vmk__link_set_up(&f->nl, (int)if_nametoindex(b)), 0);
}

static bool has_vlan(struct fx *f, const char *name, uint16_t vid, uint16_t *flags)
{
	struct vmk__vlan v[64];
	size_t n, i;

	assert_int_equal(vmk__link_vlans(&f->nl, (int)if_nametoindex(name), v, 64, &n), 0);
	for (i = 0; i < n && i < 64; i++) {
		if (v[i].vid == vid) {
			if (flags)
				*flags = v[i].flags;
			return true;
		}
	}
	return false;
}

/* Whether this kernel filters VLANs on bridges (CONFIG_BRIDGE_VLAN_FILTERING). */
static bool vlan_supported(struct fx *f)
{
	struct vmk__link l;
	int rv;

	assert_int_equal(vmk__link_bridge_create(&f->nl, "kvprobe"), 0);
	assert_int_equal(vmk__link_get(&f->nl, "kvprobe", 0, &l), 0);
	rv = vmk__link_bridge_vlan_filtering(&f->nl, l.ifindex, true);
	assert_int_equal(vmk__link_delete(&f->nl, l.ifindex), 0);
	assert_true(rv == 0 || rv == -EOPNOTSUPP);
	return rv == 0;
}

/* ---- frames ------------------------------------------------------------------------ */

/* Opens tap name as vmx does. */
static int tap_open(const char *name)
{
	struct ifreq ifr;
	int fd, hdr = 12;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	assert_int_equal(ioctl(fd, TUNSETVNETHDRSZ, &hdr), 0);
	return fd;
}

static int pkt_open(const char *ifname)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));

	assert_true(fd >= 0);
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	assert_int_equal(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return fd;
}

/* Builds a broadcast test frame carrying tag (and an 802.1Q header when vlan != 0). */
static size_t make_frame(uint8_t *buf, uint16_t vlan, const char *tag)
{
	static const uint8_t src[6] = {0x02, 0x4b, 0x45, 0x00, 0x00, 0x10};
	size_t off = 12;

	memset(buf, 0xff, 6);
	memcpy(buf + 6, src, 6);
	if (vlan) {
		buf[off++] = 0x81;
		buf[off++] = 0x00;
		buf[off++] = (uint8_t)(vlan >> 8);
		buf[off++] = (uint8_t)vlan;
	}
	buf[off++] = ETH_TEST >> 8;
	buf[off++] = ETH_TEST & 0xff;
	memset(buf + off, 0, 46);
	snprintf((char *)buf + off, 46, "%s", tag);
	return off + 46;
}

/* Waits up to ms for a frame carrying tag on fd (skip bytes of header first). */
static bool frame_seen(int fd, size_t skip, const char *tag, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	uint8_t buf[2048];

	while (poll(&p, 1, ms) == 1) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < (ssize_t)(skip + 14))
			continue;
		if (buf[skip + 12] == (ETH_TEST >> 8) && buf[skip + 13] == (ETH_TEST & 0xff) &&
		    strncmp((char *)buf + skip + 14, tag, strlen(tag)) == 0)
			return true;
	}
	return false;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_first_start(void **state)
{
	struct fx *f = fx_get(state);
	Keel__Vmk__VSwitchInfo **vs;
	Keel__Vmk__PortgroupInfo **pg;
	struct stat st;
	size_t n;

	assert_int_equal(stat(f->conf, &st), -1);
	net_init(f);
	assert_int_equal(stat(f->conf, &st), 0);
	assert_true(link_exists("vSwitch0"));
	assert_int_equal(stat("/sys/class/net/vSwitch0/bridge", &st), 0);
	assert_true(sys_num("vSwitch0", "flags") & IFF_UP);
	assert_int_equal(sys_num("vSwitch0", "mtu"), 1500);
	OK(vmk_net_vswitch_list(&f->net, &vs, &n, &f->err));
	assert_int_equal(n, 1);
	assert_string_equal(vs[0]->name, "vSwitch0");
	assert_int_equal(vs[0]->mtu, 1500);
	assert_int_equal(vs[0]->n_uplinks, 0);
	vmk_net_vswitch_list_free(vs, n);
	OK(vmk_net_portgroup_list(&f->net, &pg, &n, &f->err));
	assert_int_equal(n, 1);
	assert_string_equal(pg[0]->name, "VM Network");
	assert_string_equal(pg[0]->vswitch, "vSwitch0");
	assert_int_equal(pg[0]->vlan, 0);
	vmk_net_portgroup_list_free(pg, n);
}

static void test_vswitch_add_remove(void **state)
{
	struct fx *f = fx_get(state);
	struct stat st;

	net_init(f);
	OK(vmk_net_vswitch_add(&f->net, "vSwitch1", 9000, &f->err));
	assert_int_equal(stat("/sys/class/net/vSwitch1/bridge", &st), 0);
	assert_int_equal(sys_num("vSwitch1", "mtu"), 9000);
	assert_true(sys_num("vSwitch1", "flags") & IFF_UP);
	assert_int_equal(vmk_net_vswitch_add(&f->net, "vSwitch1", 0, &f->err), KB_EEXIST);
	/* Bad names and MTUs change nothing. */
	assert_int_equal(vmk_net_vswitch_add(&f->net, "vSwitch-too-long", 0, &f->err), KB_ECONFIG);
	assert_non_null(strstr(f->err.msg, "1 to 15 characters"));
	assert_int_equal(vmk_net_vswitch_add(&f->net, "v s", 0, &f->err), KB_ECONFIG);
	assert_int_equal(vmk_net_vswitch_add(&f->net, "vSwitch2", 100, &f->err), KB_ECONFIG);
	assert_false(link_exists("vSwitch2"));
	/* A name taken by an interface that is not a bridge. */
	veth_add(f, "vethA", "vethB");
	assert_int_equal(vmk_net_vswitch_add(&f->net, "vethA", 0, &f->err), KB_EEXIST);
	assert_non_null(strstr(f->err.msg, "not a bridge"));
	/* A bridge left behind (e.g. by a crash before saving) is adopted. */
	assert_int_equal(vmk__link_bridge_create(&f->nl, "vSwitch3"), 0);
	OK(vmk_net_vswitch_add(&f->net, "vSwitch3", 1500, &f->err));
	/* Removal: refused while a portgroup uses it. */
	OK(vmk_net_portgroup_add(&f->net, "PG1", "vSwitch1", 0, &f->err));
	assert_int_equal(vmk_net_vswitch_remove(&f->net, "vSwitch1", &f->err), KB_ESTATE);
	assert_non_null(strstr(f->err.msg, "PG1"));
	assert_true(link_exists("vSwitch1"));
	OK(vmk_net_portgroup_remove(&f->net, "PG1", &f->err));
	OK(vmk_net_vswitch_remove(&f->net, "vSwitch1", &f->err));
	assert_false(link_exists("vSwitch1"));
	assert_int_equal(vmk_net_vswitch_remove(&f->net, "vSwitch1", &f->err), KB_ENOTFOUND);
	OK(vmk_net_vswitch_remove(&f->net, "vSwitch3", &f->err));
	assert_false(link_exists("vSwitch3"));
	/* The default portgroup holds vSwitch0. */
	assert_int_equal(vmk_net_vswitch_remove(&f->net, "vSwitch0", &f->err), KB_ESTATE);
}

static void test_uplinks(void **state)
{
	struct fx *f = fx_get(state);
	uint8_t tapname[VMK_NET_IFNAME_MAX];

	net_init(f);
	veth_add(f, "up0", "up0p");
	veth_add(f, "up1", "up1p");
	OK(vmk_net_vswitch_add(&f->net, "vSwitch1", 1500, &f->err));
	OK(vmk_net_uplink_add(&f->net, "vSwitch0", "up0", &f->err));
	assert_string_equal(master_of("up0"), "vSwitch0");
	assert_true(sys_num("up0", "flags") & IFF_UP);
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch0", "up0", &f->err), KB_EEXIST);
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch1", "up0", &f->err), KB_EEXIST);
	assert_non_null(strstr(f->err.msg, "already an uplink of vSwitch vSwitch0"));
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch0", "nosuch0", &f->err), KB_ENOTFOUND);
	assert_non_null(strstr(f->err.msg, "nosuch0: no such interface"));
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitchX", "up1", &f->err), KB_ENOTFOUND);
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch0", "vSwitch1", &f->err), KB_ESTATE);
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch0", "lo", &f->err), KB_ESTATE);
	/* A VM NIC's tap, and a port of a bridge that is not ours. */
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_a, 0, (char *)tapname, &f->err));
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch1", (char *)tapname, &f->err),
			 KB_ESTATE);
	assert_int_equal(vmk__link_bridge_create(&f->nl, "other"), 0);
	assert_int_equal(
	    vmk__link_set_master(&f->nl, (int)if_nametoindex("up1"), (int)if_nametoindex("other")),
	    0);
	assert_int_equal(vmk_net_uplink_add(&f->net, "vSwitch1", "up1", &f->err), KB_ESTATE);
	assert_non_null(strstr(f->err.msg, "port of bridge other"));
	assert_string_equal(master_of("up1"), "other");
	/* Removal releases the interface and leaves it up. */
	OK(vmk_net_uplink_remove(&f->net, "vSwitch0", "up0", &f->err));
	assert_string_equal(master_of("up0"), "");
	assert_true(sys_num("up0", "flags") & IFF_UP);
	assert_int_equal(vmk_net_uplink_remove(&f->net, "vSwitch0", "up0", &f->err), KB_ENOTFOUND);
	/* Deleting a vSwitch releases its uplinks. */
	OK(vmk_net_uplink_add(&f->net, "vSwitch1", "up0", &f->err));
	assert_string_equal(master_of("up0"), "vSwitch1");
	OK(vmk_net_vswitch_remove(&f->net, "vSwitch1", &f->err));
	assert_true(link_exists("up0"));
	assert_string_equal(master_of("up0"), "");
}

static void test_port_tap(void **state)
{
	struct fx *f = fx_get(state);
	char tap[VMK_NET_IFNAME_MAX], tap2[VMK_NET_IFNAME_MAX], want[VMK_NET_IFNAME_MAX];
	Keel__Vmk__PortgroupInfo **pg;
	size_t n;
	int fd;

	net_init(f);
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_a, 1, tap, &f->err));
	OK(vmk_net_port_name(uuid_a, 1, want, &f->err));
	assert_string_equal(tap, want);
	assert_true(strlen(tap) <= 15);
	assert_true(link_exists(tap));
	assert_string_equal(master_of(tap), "vSwitch0");
	assert_true(sys_num(tap, "flags") & IFF_UP);
	/* Persistent tap, no packet info, virtio-net header: what vmx asks for. */
	assert_int_equal(sys_num(tap, "tun_flags"),
			 IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_PERSIST);
	fd = tap_open(tap);
	close(fd);
	assert_true(link_exists(tap)); /* persistent: survives its file descriptor */

	/* Listed with its portgroup. */
	OK(vmk_net_portgroup_list(&f->net, &pg, &n, &f->err));
	assert_int_equal(pg[0]->n_ports, 1);
	assert_string_equal(pg[0]->ports[0], tap);
	vmk_net_portgroup_list_free(pg, n);

	/* Creating it again is a no-op; on another portgroup it is refused. */
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_a, 1, tap2, &f->err));
	assert_string_equal(tap, tap2);
	OK(vmk_net_portgroup_add(&f->net, "Other", "vSwitch0", 0, &f->err));
	assert_int_equal(vmk_net_port_create(&f->net, "Other", uuid_a, 1, tap2, &f->err),
			 KB_EEXIST);
	assert_int_equal(vmk_net_port_create(&f->net, "Nope", uuid_a, 2, tap2, &f->err),
			 KB_ENOTFOUND);
	assert_int_equal(vmk_net_port_create(&f->net, "VM Network", "bad uuid", 2, tap2, &f->err),
			 KB_ECONFIG);
	assert_int_equal(vmk_net_port_create(&f->net, "VM Network", uuid_a, 10000, tap2, &f->err),
			 KB_ECONFIG);
	/* A tap deleted behind our back comes back on the next create. */
	assert_int_equal(vmk__link_delete(&f->nl, (int)if_nametoindex(tap)), 0);
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_a, 1, tap2, &f->err));
	assert_string_equal(master_of(tap), "vSwitch0");

	/* Removal, one port or all of a VM. */
	OK(vmk_net_port_create(&f->net, "Other", uuid_a, 2, tap2, &f->err));
	OK(vmk_net_port_create(&f->net, "Other", uuid_b, 0, want, &f->err));
	OK(vmk_net_port_remove(&f->net, tap, &f->err));
	assert_false(link_exists(tap));
	assert_int_equal(vmk_net_port_remove(&f->net, tap, &f->err), KB_ENOTFOUND);
	OK(vmk_net_port_remove_vm(&f->net, "0F3C2A51-9A7E-4B6F-8D1E-2C4B5A6F7E80", &f->err));
	assert_false(link_exists(tap2));
	assert_true(link_exists(want));
	assert_int_equal(vmk_net_portgroup_remove(&f->net, "Other", &f->err), KB_ESTATE);
	assert_non_null(strstr(f->err.msg, want));
	OK(vmk_net_port_remove_vm(&f->net, uuid_b, &f->err));
	OK(vmk_net_port_remove_vm(&f->net, uuid_b, &f->err));
	OK(vmk_net_portgroup_remove(&f->net, "Other", &f->err));
	assert_int_equal(vmk_net_portgroup_remove(&f->net, "Other", &f->err), KB_ENOTFOUND);
}

static void test_portgroup_rules(void **state)
{
	struct fx *f = fx_get(state);

	net_init(f);
	assert_int_equal(vmk_net_portgroup_add(&f->net, "PG", "vSwitchX", 0, &f->err),
			 KB_ENOTFOUND);
	assert_int_equal(vmk_net_portgroup_add(&f->net, "VM Network", "vSwitch0", 0, &f->err),
			 KB_EEXIST);
	assert_int_equal(vmk_net_portgroup_add(&f->net, "bad\"name", "vSwitch0", 0, &f->err),
			 KB_ECONFIG);
	assert_int_equal(vmk_net_portgroup_add(&f->net, "PG", "vSwitch0", 4095, &f->err),
			 KB_ECONFIG);
	assert_int_equal(vmk_net_portgroup_add(&f->net, "PG", "vSwitch0", 1, &f->err), KB_ECONFIG);
	assert_int_equal(vmk_net_portgroup_find(&f->net, "PG", &f->err), KB_ENOTFOUND);
	OK(vmk_net_portgroup_add(&f->net, "PG", "vSwitch0", 0, &f->err));
	OK(vmk_net_portgroup_find(&f->net, "PG", &f->err));
}

static void test_mtu(void **state)
{
	struct fx *f = fx_get(state);
	char tap[VMK_NET_IFNAME_MAX];

	net_init(f);
	veth_add(f, "up0", "up0p");
	OK(vmk_net_vswitch_add(&f->net, "vSwitch1", 9000, &f->err));
	OK(vmk_net_uplink_add(&f->net, "vSwitch1", "up0", &f->err));
	OK(vmk_net_portgroup_add(&f->net, "Jumbo", "vSwitch1", 0, &f->err));
	OK(vmk_net_port_create(&f->net, "Jumbo", uuid_a, 0, tap, &f->err));
	assert_int_equal(sys_num("vSwitch1", "mtu"), 9000);
	assert_int_equal(sys_num("up0", "mtu"), 9000);
	assert_int_equal(sys_num(tap, "mtu"), 9000);
	OK(vmk_net_vswitch_set_mtu(&f->net, "vSwitch1", 1500, &f->err));
	assert_int_equal(sys_num("vSwitch1", "mtu"), 1500);
	assert_int_equal(sys_num("up0", "mtu"), 1500);
	assert_int_equal(sys_num(tap, "mtu"), 1500);
	assert_int_equal(vmk_net_vswitch_set_mtu(&f->net, "vSwitch1", 100, &f->err), KB_ECONFIG);
	assert_int_equal(vmk_net_vswitch_set_mtu(&f->net, "nope", 1500, &f->err), KB_ENOTFOUND);
	/* The kernel's own words travel with its errors (extended ack). */
	assert_int_equal(vmk__link_set_mtu(&f->nl, (int)if_nametoindex("up0"), 70000), -EINVAL);
	assert_true(f->nl.ext_msg[0] != '\0');
	/* The MTU is saved. */
	OK(vmk_net_vswitch_set_mtu(&f->net, "vSwitch1", 4000, &f->err));
	net_reopen(f);
	assert_int_equal(vmk__conf_vswitch(f->net.conf, "vSwitch1")->mtu, 4000);
}

/* Frames cross uplink -> bridge -> tap and tap -> bridge -> uplink. */
static void test_datapath(void **state)
{
	struct fx *f = fx_get(state);
	char tap[VMK_NET_IFNAME_MAX];
	uint8_t frame[128], out[160] = {0};
	size_t len;
	int tfd, pfd;

	net_init(f);
	veth_add(f, "up0", "up0p");
	OK(vmk_net_uplink_add(&f->net, "vSwitch0", "up0", &f->err));
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_a, 0, tap, &f->err));
	tfd = tap_open(tap);
	pfd = pkt_open("up0p");

	len = make_frame(frame, 0, "keel-in");
	assert_int_equal(write(pfd, frame, len), (ssize_t)len);
	assert_true(frame_seen(tfd, 12, "keel-in", 2000));

	len = make_frame(out + 12, 0, "keel-out"); /* after a zeroed virtio-net header */
	out[6 + 12] = 0x04;			   /* another source MAC than the frame above */
	assert_int_equal(write(tfd, out, len + 12), (ssize_t)(len + 12));
	assert_true(frame_seen(pfd, 0, "keel-out", 2000));
	close(pfd);
	close(tfd);
}

static void test_vlan(void **state)
{
	struct fx *f = fx_get(state);
	char tap_v[VMK_NET_IFNAME_MAX], tap_u[VMK_NET_IFNAME_MAX];
	uint8_t frame[128];
	uint16_t flags;
	size_t len;
	int fv, fu, pfd;

	if (!vlan_supported(f))
		skip(); /* test_vlan_unsupported covers these kernels */
	net_init(f);
	veth_add(f, "up0", "up0p");
	OK(vmk_net_uplink_add(&f->net, "vSwitch0", "up0", &f->err));
	OK(vmk_net_portgroup_add(&f->net, "VLAN 100", "vSwitch0", 100, &f->err));
	assert_string_equal(sys_attr("vSwitch0", "bridge/vlan_filtering"), "1");
	assert_true(has_vlan(f, "up0", 100, &flags));
	assert_int_equal(flags & (BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED), 0);
	assert_true(has_vlan(f, "up0", 1, &flags)); /* untagged portgroups keep VLAN 1 */

	OK(vmk_net_port_create(&f->net, "VLAN 100", uuid_a, 0, tap_v, &f->err));
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_b, 0, tap_u, &f->err));
	assert_true(has_vlan(f, tap_v, 100, &flags));
	assert_int_equal(flags & (BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED),
			 BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED);
	assert_false(has_vlan(f, tap_v, 1, NULL));
	assert_true(has_vlan(f, tap_u, 1, NULL));
	assert_false(has_vlan(f, tap_u, 100, NULL));

	/* A frame tagged 100 on the uplink reaches the VLAN port untagged, and only it; an
	 * untagged frame reaches only the other port. */
	fv = tap_open(tap_v);
	fu = tap_open(tap_u);
	pfd = pkt_open("up0p");
	len = make_frame(frame, 100, "keel-v100");
	assert_int_equal(write(pfd, frame, len), (ssize_t)len);
	assert_true(frame_seen(fv, 12, "keel-v100", 2000));
	assert_false(frame_seen(fu, 12, "keel-v100", 300));
	len = make_frame(frame, 0, "keel-untagged");
	assert_int_equal(write(pfd, frame, len), (ssize_t)len);
	assert_true(frame_seen(fu, 12, "keel-untagged", 2000));
	assert_false(frame_seen(fv, 12, "keel-untagged", 300));
	close(pfd);

	/* Re-applied after a restart with the taps held; an uplink added later gets the
	 * VLAN; the VLAN leaves the uplinks with its last portgroup. */
	net_reopen(f);
	assert_true(has_vlan(f, tap_v, 100, NULL));
	veth_add(f, "up1", "up1p");
	OK(vmk_net_uplink_add(&f->net, "vSwitch0", "up1", &f->err));
	assert_true(has_vlan(f, "up1", 100, NULL));
	close(fv);
	close(fu);
	OK(vmk_net_port_remove(&f->net, tap_v, &f->err));
	OK(vmk_net_portgroup_remove(&f->net, "VLAN 100", &f->err));
	assert_false(has_vlan(f, "up0", 100, NULL));
	assert_false(has_vlan(f, "up1", 100, NULL));
}

static void test_vlan_unsupported(void **state)
{
	struct fx *f = fx_get(state);
	struct kb_buf before = {0};
	char *after;
	size_t len;
	int fd;

	if (vlan_supported(f))
		skip(); /* test_vlan covers these kernels */
	net_init(f);
	veth_add(f, "up0", "up0p");
	OK(vmk_net_uplink_add(&f->net, "vSwitch0", "up0", &f->err));
	kb_buf_init(&before, 0);
	assert_int_equal(vmk__conf_format(f->net.conf, &before), 0);
	assert_int_equal(vmk_net_portgroup_add(&f->net, "VLAN 100", "vSwitch0", 100, &f->err),
			 KB_ENOTSUP);
	assert_non_null(strstr(f->err.msg, "CONFIG_BRIDGE_VLAN_FILTERING"));
	/* Nothing changed: not in memory, not on disk. */
	assert_int_equal(vmk_net_portgroup_find(&f->net, "VLAN 100", &f->err), KB_ENOTFOUND);
	after = calloc(1, before.len + 16);
	fd = open(f->conf, O_RDONLY);
	assert_true(fd >= 0);
	len = (size_t)read(fd, after, before.len + 16);
	close(fd);
	assert_int_equal(len, before.len);
	assert_memory_equal(after, before.data, len);
	free(after);
	kb_buf_close(&before);
	/* Untagged portgroups still work on the same vSwitch. */
	OK(vmk_net_portgroup_add(&f->net, "Plain", "vSwitch0", 0, &f->err));

	/* A VLAN portgroup written on another kernel: a warning at start, and its ports are
	 * refused rather than attached untagged. */
	{
		struct vmk__portgroup pg = {.name = "V100", .vswitch = "vSwitch0", .vlan = 100};
		char tap[VMK_NET_IFNAME_MAX], want[VMK_NET_IFNAME_MAX];

		vmk_net_close(&f->net);
		f->net_open = false;
		{
			struct vmk__net_conf *c;

			OK(vmk__conf_load(f->conf, &c, &f->err));
			OK(vmk__conf_add_portgroup(c, &pg));
			OK(vmk__conf_save(f->conf, c, &f->err));
			vmk__conf_free(c);
		}
		net_init(f);
		assert_int_equal(vmk_net_port_create(&f->net, "V100", uuid_a, 0, tap, &f->err),
				 KB_ENOTSUP);
		OK(vmk_net_port_name(uuid_a, 0, want, &f->err));
		assert_false(link_exists(want));
		assert_int_equal(f->net.conf->n_ports, 0);
	}
}

static void test_reload(void **state)
{
	struct fx *f = fx_get(state);
	char tap_held[VMK_NET_IFNAME_MAX], tap_idle[VMK_NET_IFNAME_MAX];
	unsigned br_index, held_index;
	struct kb_buf b1 = {0}, b2 = {0};
	int fd;

	net_init(f);
	veth_add(f, "up0", "up0p");
	OK(vmk_net_vswitch_add(&f->net, "vSwitch1", 9000, &f->err));
	OK(vmk_net_uplink_add(&f->net, "vSwitch1", "up0", &f->err));
	OK(vmk_net_portgroup_add(&f->net, "Prod", "vSwitch1", 0, &f->err));
	OK(vmk_net_port_create(&f->net, "Prod", uuid_a, 0, tap_held, &f->err));
	OK(vmk_net_port_create(&f->net, "VM Network", uuid_b, 0, tap_idle, &f->err));
	fd = tap_open(tap_held); /* a running vmx */
	br_index = if_nametoindex("vSwitch1");
	held_index = if_nametoindex(tap_held);
	kb_buf_init(&b1, 0);
	assert_int_equal(vmk__conf_format(f->net.conf, &b1), 0);

	/* Restart: the bridge and the held tap are reused; the idle tap (its VM stopped
	 * while vmkernel was away) is deleted and its port dropped. */
	net_reopen(f);
	assert_int_equal(if_nametoindex("vSwitch1"), br_index);
	assert_int_equal(if_nametoindex(tap_held), held_index);
	assert_string_equal(master_of(tap_held), "vSwitch1");
	assert_false(link_exists(tap_idle));
	assert_null(vmk__conf_port(f->net.conf, tap_idle));
	assert_non_null(vmk__conf_port(f->net.conf, tap_held));
	assert_non_null(vmk__conf_vswitch(f->net.conf, "vSwitch1"));
	assert_string_equal(vmk__conf_vswitch(f->net.conf, "vSwitch1")->uplinks[0], "up0");

	/* A second restart changes nothing at all. */
	vmk_net_close(&f->net);
	f->net_open = false;
	kb_buf_reset(&b1);
	{
		struct vmk__net_conf *c;

		assert_int_equal(vmk__conf_load(f->conf, &c, &f->err), 0);
		assert_int_equal(vmk__conf_format(c, &b1), 0);
		vmk__conf_free(c);
	}
	net_init(f);
	kb_buf_init(&b2, 0);
	assert_int_equal(vmk__conf_format(f->net.conf, &b2), 0);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	assert_int_equal(if_nametoindex("vSwitch1"), br_index);
	assert_int_equal(if_nametoindex(tap_held), held_index);

	/* What the kernel lost comes back: a bridge deleted by hand is re-created with
	 * its MTU and uplink, and the held tap re-attached. */
	assert_int_equal(vmk__link_delete(&f->nl, (int)br_index), 0);
	assert_string_equal(master_of("up0"), "");
	net_reopen(f);
	assert_int_equal(sys_num("vSwitch1", "mtu"), 9000);
	assert_string_equal(master_of("up0"), "vSwitch1");
	assert_string_equal(master_of(tap_held), "vSwitch1");

	/* An uplink that disappeared is a warning, not a failure. */
	assert_int_equal(vmk__link_delete(&f->nl, (int)if_nametoindex("up0")), 0);
	net_reopen(f);
	assert_true(link_exists("vSwitch1"));
	close(fd);
	kb_buf_close(&b1);
	kb_buf_close(&b2);
}

static void test_bad_config_file(void **state)
{
	struct fx *f = fx_get(state);
	static const char text[] =
	    "version 1\nvswitch \"vSwitch7\" mtu 1500\nvswitch \"x y\" mtu 1\n";
	struct stat st;
	int fd;

	fd = open(f->conf, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(vmk_net_init(f->dir, &f->net, &f->err), KB_ECONFIG);
	assert_non_null(strstr(f->err.msg, "network.conf: line 3"));
	/* Nothing applied, nothing rewritten. */
	assert_false(link_exists("vSwitch7"));
	assert_false(link_exists("vSwitch0"));
	assert_int_equal(stat(f->conf, &st), 0);
	assert_int_equal(st.st_size, sizeof(text) - 1);
}

/* When the configuration cannot be saved, every operation fails and leaves the kernel as
 * it was. */
static void test_save_failure(void **state)
{
	struct fx *f = fx_get(state);
	char tmp[160], tap[VMK_NET_IFNAME_MAX], want[VMK_NET_IFNAME_MAX];

	net_init(f);
	veth_add(f, "up0", "up0p");
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->conf);
	assert_int_equal(mkdir(tmp, 0700), 0); /* the temporary file cannot be created */

	assert_true(vmk_net_vswitch_add(&f->net, "vSwitch1", 0, &f->err) < 0);
	assert_false(link_exists("vSwitch1"));
	assert_true(vmk_net_uplink_add(&f->net, "vSwitch0", "up0", &f->err) < 0);
	assert_string_equal(master_of("up0"), "");
	assert_true(vmk_net_port_create(&f->net, "VM Network", uuid_a, 0, tap, &f->err) < 0);
	OK(vmk_net_port_name(uuid_a, 0, want, &f->err));
	assert_false(link_exists(want));
	assert_true(vmk_net_vswitch_set_mtu(&f->net, "vSwitch0", 9000, &f->err) < 0);
	assert_int_equal(sys_num("vSwitch0", "mtu"), 1500);
	assert_true(vmk_net_portgroup_add(&f->net, "PG", "vSwitch0", 0, &f->err) < 0);
	assert_int_equal(vmk_net_portgroup_find(&f->net, "PG", &f->err), KB_ENOTFOUND);

	assert_int_equal(rmdir(tmp), 0);
	OK(vmk_net_vswitch_add(&f->net, "vSwitch1", 0, &f->err));
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_true(vmk_net_vswitch_remove(&f->net, "vSwitch1", &f->err) < 0);
	assert_true(link_exists("vSwitch1")); /* put back */
	assert_int_equal(rmdir(tmp), 0);
}

/* Allocation failures in init and in the operations: -ENOMEM, nothing half done. */
static void test_oom(void **state)
{
	struct fx *f = fx_get(state);
	char tap[VMK_NET_IFNAME_MAX];
	int i, rv;

	for (i = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk_net_init(f->dir, &f->net, &f->err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
	}
	f->net_open = true;
	for (i = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk_net_port_create(&f->net, "VM Network", uuid_a, 0, tap, &f->err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_null(vmk__conf_port(f->net.conf, "x"));
		assert_int_equal(f->net.conf->n_ports, 0);
	}
	for (i = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk_net_vswitch_add(&f->net, "vSwitch1", 0, &f->err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_false(link_exists("vSwitch1"));
	}
	for (i = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk_net_port_remove_vm(&f->net, uuid_a, &f->err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
	}
	assert_int_equal(f->net.conf->n_ports, 0);
}

/* ---- the driver of tests/integration/vmk_net.sh ------------------------------------- */

static void print_state(struct vmk_net *net)
{
	Keel__Vmk__VSwitchInfo **vs;
	Keel__Vmk__PortgroupInfo **pg;
	size_t n, i, j;

	if (vmk_net_vswitch_list(net, &vs, &n, NULL) == 0) {
		for (i = 0; i < n; i++) {
			printf("vswitch %s mtu %u uplinks", vs[i]->name, vs[i]->mtu);
			for (j = 0; j < vs[i]->n_uplinks; j++)
				printf(" %s", vs[i]->uplinks[j]);
			printf("\n");
		}
		vmk_net_vswitch_list_free(vs, n);
	}
	if (vmk_net_portgroup_list(net, &pg, &n, NULL) == 0) {
		for (i = 0; i < n; i++) {
			printf("portgroup \"%s\" vswitch %s vlan %u ports", pg[i]->name,
			       pg[i]->vswitch, pg[i]->vlan);
			for (j = 0; j < pg[i]->n_ports; j++)
				printf(" %s", pg[i]->ports[j]);
			printf("\n");
		}
		vmk_net_portgroup_list_free(pg, n);
	}
}

/* Whether this process runs in a network namespace listed in /run/netns. */
static bool in_named_netns(void)
{
	struct stat self, st;
	struct dirent *d;
	char path[PATH_MAX];
	bool found = false;
	DIR *dir;

	if (stat("/proc/self/ns/net", &self) < 0 || !(dir = opendir("/run/netns")))
		return false;
	while (!found && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/run/netns/%s", d->d_name);
		found =
		    stat(path, &st) == 0 && st.st_ino == self.st_ino && st.st_dev == self.st_dev;
	}
	closedir(dir);
	return found;
}

static int drive(int argc, char **argv)
{
	char tap[VMK_NET_IFNAME_MAX];
	struct kb_errmsg err = {{0}};
	struct vmk_net net;
	const char *cmd;
	int rv = KB_ECONFIG;

	if (argc < 4) {
		fprintf(stderr, "usage: test_net drive STATE_DIR show|vswitch-add NAME MTU|"
				"vswitch-remove NAME|uplink-add VS NIC|uplink-remove VS NIC|"
				"portgroup-add NAME VS VLAN|portgroup-remove NAME|"
				"port-create PG UUID INDEX|port-remove TAP\n");
		return 2;
	}
	/* Never touch the machine's own interfaces: only run inside a namespace made with
	 * ip netns (bind-mounted under /run/netns). */
	if (!in_named_netns()) {
		fprintf(stderr, "test_net drive: run me with ip netns exec NAME\n");
		return 2;
	}
	kb_log_init(&kb_log_default, "test_net", KB_LOG_WARN, 2);
	if (vmk_net_init(argv[2], &net, &err) < 0) {
		fprintf(stderr, "init: %s\n", err.msg);
		return 1;
	}
	cmd = argv[3];
	if (strcmp(cmd, "show") == 0)
		rv = 0;
	else if (strcmp(cmd, "vswitch-add") == 0 && argc == 6)
		rv = vmk_net_vswitch_add(&net, argv[4], (uint32_t)atoi(argv[5]), &err);
	else if (strcmp(cmd, "vswitch-remove") == 0 && argc == 5)
		rv = vmk_net_vswitch_remove(&net, argv[4], &err);
	else if (strcmp(cmd, "uplink-add") == 0 && argc == 6)
		rv = vmk_net_uplink_add(&net, argv[4], argv[5], &err);
	else if (strcmp(cmd, "uplink-remove") == 0 && argc == 6)
		rv = vmk_net_uplink_remove(&net, argv[4], argv[5], &err);
	else if (strcmp(cmd, "portgroup-add") == 0 && argc == 7)
		rv = vmk_net_portgroup_add(&net, argv[4], argv[5], (uint32_t)atoi(argv[6]), &err);
	else if (strcmp(cmd, "portgroup-remove") == 0 && argc == 5)
		rv = vmk_net_portgroup_remove(&net, argv[4], &err);
	else if (strcmp(cmd, "port-create") == 0 && argc == 7) {
		rv =
		    vmk_net_port_create(&net, argv[4], argv[5], (uint32_t)atoi(argv[6]), tap, &err);
		if (rv == 0)
			printf("%s\n", tap);
	} else if (strcmp(cmd, "port-remove") == 0 && argc == 5)
		rv = vmk_net_port_remove(&net, argv[4], &err);
	else
		snprintf(err.msg, sizeof(err.msg), "unknown command or wrong arguments");
	if (rv < 0)
		fprintf(stderr, "%s: %s (%s)\n", cmd, err.msg, kb_strerror(rv));
	else if (strcmp(cmd, "show") == 0)
		print_state(&net);
	vmk_net_close(&net);
	return rv < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_start, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_vswitch_add_remove, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_uplinks, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_port_tap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_portgroup_rules, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_mtu, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_datapath, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_vlan, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_vlan_unsupported, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reload, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_config_file, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_save_failure, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_oom, fx_setup, fx_teardown),
	};

	if (argc > 1 && strcmp(argv[1], "drive") == 0)
		return drive(argc, argv);

	/* Quiet library logs: warnings and errors only. */
	kb_log_init(&kb_log_default, "test_net", KB_LOG_WARN, 2);
	th_netns_init("test_net");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
