/*
 * Tests for VMkernel adapters, netstacks and tagged sockets (kernel/net), each in a
 * private network namespace.
 *
 * As in test_net.c, main() moves the process into a private mount namespace once (the
 * netstack bind mounts land there) and every test unshares a fresh network namespace with
 * a temporary state dir; teardown unmounts the netstacks the test made, returns to the
 * original namespace, and everything made inside disappears with it. Without the rights to
 * make namespaces the tests skip; nothing ever runs in the machine's own namespace.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "kernel/net/net_internal.h"
#include "kernel/net/stack_socket.h"
#include "lib/heap.h"
#include "tests/unit/netns_helpers.h"

struct fx {
	char dir[64];
	bool in_ns, net_open, dir_made;
	struct vmk_net net;
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
	snprintf(f->dir, sizeof(f->dir), "/tmp/keel-vmknic-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->dir_made = true;
	return 0;
}

/* Unmounts and removes every namespace file under <dir>/netns, then the files. */
static void remove_state(const char *dir)
{
	char path[256];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/netns", dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/netns/%s", dir, e->d_name);
		umount2(path, MNT_DETACH);
		unlink(path);
	}
	if (d)
		closedir(d);
	snprintf(path, sizeof(path), "%s/netns", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/network.conf", dir);
	unlink(path);
	rmdir(dir);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->net_open)
		vmk_net_close(&f->net);
	if (f->dir_made)
		remove_state(f->dir);
	if (f->in_ns && th_netns_leave() < 0)
		return -1;
	free(f);
	return 0;
}

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

#define OK(call)                                                       \
	do {                                                           \
		int rv_ = (call);                                      \
		if (rv_ < 0)                                           \
			fail_msg("%s: %d %s", #call, rv_, f->err.msg); \
	} while (0)

static int add(struct fx *f, const char *name, const char *ns, const char *ip, const char *gw,
	       const char *tag)
{
	const char *tags[1] = {tag};
	struct vmk_net_vmknic_args a = {
	    .name = name,
	    .portgroup = VMK_NET_DEFAULT_PORTGROUP,
	    .netstack = ns,
	    .ipv4 = ip,
	    .gateway = gw,
	    .tags = tags,
	    .n_tags = tag ? 1 : 0,
	};

	return vmk_net_vmknic_add(&f->net, &a, &f->err);
}

/* The link name in netstack ns ("" = default): 0 and *l, or an error. */
static int link_in(struct fx *f, const char *ns, const char *name, struct vmk__link *l)
{
	struct vmk__stack st;
	int rv = vmk__stack_open(&f->net, ns, false, &st, &f->err);

	if (rv < 0)
		return rv;
	rv = vmk__link_get(st.nl, name, 0, l);
	vmk__stack_close(&st);
	return rv;
}

static bool has_addr(struct fx *f, const char *ns, const char *name, const char *ip, int prefix)
{
	struct vmk__stack st;
	struct vmk__link l;
	uint32_t ips[8], want;
	uint8_t prefixes[8];
	size_t n = 0, i;
	bool found = false;

	assert_int_equal(vmk__stack_open(&f->net, ns, false, &st, &f->err), 0);
	assert_int_equal(vmk__link_get(st.nl, name, 0, &l), 0);
	assert_int_equal(vmk__addr_list(st.nl, l.ifindex, ips, prefixes, 8, &n), 0);
	inet_pton(AF_INET, ip, &want);
	for (i = 0; i < n && i < 8; i++)
		found |= ips[i] == want && prefixes[i] == prefix;
	vmk__stack_close(&st);
	return found && n == 1;
}

static void test_add_remove(void **state)
{
	struct fx *f = fx_get(state);
	Keel__Vmk__VmknicInfo **list;
	Keel__Vmk__NetstackInfo **stacks;
	struct vmk__link l, br;
	char path[128];
	size_t n;

	net_init(f);
	OK(add(f, "vmk0", NULL, "198.18.0.11/24", NULL, "Management"));
	OK(add(f, "vmk1", "vmotion", "198.18.0.12/24", "198.18.0.1", "VMotion"));
	/* vmk0 in this namespace, vmk1 in the vmotion netstack, both ends on vSwitch0 */
	assert_int_equal(link_in(f, NULL, "vmk0", &l), 0);
	assert_string_equal(l.kind, "veth");
	assert_int_equal(link_in(f, NULL, "vmk1", &l), KB_ENOTFOUND);
	assert_int_equal(link_in(f, "vmotion", "vmk1", &l), 0);
	assert_true(l.flags & IFF_UP);
	assert_int_equal(l.mac[0], 0x02);
	assert_int_equal(vmk__link_get(f->net.nl, "vSwitch0", 0, &br), 0);
	assert_int_equal(vmk__link_get(f->net.nl, "vmkp1", 0, &l), 0);
	assert_int_equal(l.master, br.ifindex);
	assert_true(has_addr(f, NULL, "vmk0", "198.18.0.11", 24));
	assert_true(has_addr(f, "vmotion", "vmk1", "198.18.0.12", 24));
	assert_int_equal(link_in(f, "vmotion", "lo", &l), 0);
	assert_true(l.flags & IFF_UP);
	snprintf(path, sizeof(path), "%s/netns/vmotion", f->dir);
	assert_int_equal(access(path, F_OK), 0);

	OK(vmk_net_vmknic_list(&f->net, &list, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(list[1]->name, "vmk1");
	assert_string_equal(list[1]->netstack, "vmotion");
	assert_string_equal(list[1]->gateway, "198.18.0.1");
	assert_string_equal(list[1]->netmask, "255.255.255.0");
	assert_string_equal(list[1]->state, "up");
	assert_int_equal(list[1]->n_tags, 1);
	assert_string_equal(list[1]->tags[0], "VMotion");
	vmk_net_vmknic_list_free(list, n);
	OK(vmk_net_netstack_list(&f->net, &stacks, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(stacks[0]->name, VMK_NET_DEFAULT_NETSTACK);
	assert_string_equal(stacks[1]->name, "vmotion");
	assert_int_equal(stacks[1]->n_vmknics, 1);
	vmk_net_netstack_list_free(stacks, n);

	assert_int_equal(vmk_net_netstack_remove(&f->net, "vmotion", &f->err), KB_ESTATE);
	assert_int_equal(vmk_net_portgroup_remove(&f->net, VMK_NET_DEFAULT_PORTGROUP, &f->err),
			 KB_ESTATE);
	OK(vmk_net_vmknic_remove(&f->net, "vmk1", &f->err));
	OK(vmk_net_vmknic_remove(&f->net, "vmk0", &f->err));
	assert_int_equal(vmk__link_get(f->net.nl, "vmkp1", 0, &l), KB_ENOTFOUND);
	assert_int_equal(vmk__link_get(f->net.nl, "vmk0", 0, &l), KB_ENOTFOUND);
	OK(vmk_net_netstack_remove(&f->net, "vmotion", &f->err));
	assert_int_equal(access(path, F_OK), -1);
}

static void test_refusals(void **state)
{
	struct fx *f = fx_get(state);
	struct vmk__link l;

	net_init(f);
	OK(add(f, "vmk0", NULL, "198.18.0.11/24", NULL, "Management"));
	assert_int_equal(add(f, "vmk01", NULL, "198.18.0.12/24", NULL, NULL), KB_ECONFIG);
	assert_int_equal(add(f, "eth0", NULL, "198.18.0.12/24", NULL, NULL), KB_ECONFIG);
	assert_int_equal(add(f, "vmk0", NULL, "198.18.0.12/24", NULL, NULL), KB_EEXIST);
	assert_int_equal(add(f, "vmk1", NULL, "198.18.0.11/24", NULL, NULL), KB_EEXIST);
	assert_int_equal(add(f, "vmk1", NULL, "198.18.0.0/24", NULL, NULL), KB_ECONFIG);
	assert_int_equal(add(f, "vmk1", NULL, "198.18.0.12", NULL, NULL), KB_ECONFIG);
	assert_int_equal(add(f, "vmk1", NULL, "198.18.0.12/33", NULL, NULL), KB_ECONFIG);
	assert_int_equal(add(f, "vmk1", NULL, "198.18.0.12/24", "198.19.0.1", NULL), KB_ECONFIG);
	assert_int_equal(add(f, "vmk1", NULL, "198.18.0.12/24", NULL, "Bogus"), KB_ECONFIG);
	assert_int_equal(add(f, "vmk1", "custom", "198.18.0.12/24", NULL, NULL), KB_ENOTFOUND);
	assert_non_null(strstr(f->err.msg, "no netstack named"));
	/* a refused add leaves nothing behind */
	assert_int_equal(vmk__link_get(f->net.nl, "vmkp1", 0, &l), KB_ENOTFOUND);
	assert_int_equal(vmk_net_netstack_remove(&f->net, VMK_NET_DEFAULT_NETSTACK, &f->err),
			 KB_ESTATE);
	OK(vmk_net_netstack_add(&f->net, "custom", &f->err));
	assert_int_equal(vmk_net_netstack_add(&f->net, "custom", &f->err), KB_EEXIST);
	assert_int_equal(vmk_net_netstack_add(&f->net, "1bad", &f->err), KB_ECONFIG);
	OK(add(f, "vmk1", "custom", "198.18.0.11/24", NULL, NULL)); /* same address, other stack */
	assert_int_equal(vmk_net_vmknic_set_mtu(&f->net, "vmk1", 9000, &f->err), KB_ECONFIG);
	/* a vSwitch's MTU may not go below its adapters' */
	assert_int_equal(vmk_net_vswitch_set_mtu(&f->net, "vSwitch0", 1400, &f->err), KB_ESTATE);
	OK(vmk_net_vmknic_set_mtu(&f->net, "vmk0", 1300, &f->err));
	OK(vmk_net_vmknic_set_mtu(&f->net, "vmk1", 1300, &f->err));
	OK(vmk_net_vswitch_set_mtu(&f->net, "vSwitch0", 1400, &f->err));
	assert_int_equal(vmk_net_vmknic_set_mtu(&f->net, "vmk1", 1500, &f->err), KB_ECONFIG);
	assert_int_equal(link_in(f, "custom", "vmk1", &l), 0);
	assert_int_equal(l.mtu, 1300);
	assert_int_equal(vmk__link_get(f->net.nl, "vmkp1", 0, &l), 0);
	assert_int_equal(l.mtu, 1400);
}

static void test_set_ip_and_reload(void **state)
{
	struct fx *f = fx_get(state);
	struct vmk__link l0, l1, l;
	FILE *fp;
	char path[128], text[2048];
	size_t n;

	net_init(f);
	OK(add(f, "vmk0", NULL, "198.18.0.11/24", NULL, "Management"));
	OK(add(f, "vmk1", "provisioning", "198.18.1.12/24", NULL, "Provisioning"));
	OK(vmk_net_vmknic_set_ip(&f->net, "vmk1", "198.18.1.13/25", "198.18.1.1", &f->err));
	assert_true(has_addr(f, "provisioning", "vmk1", "198.18.1.13", 25));
	OK(vmk_net_vmknic_tag(&f->net, "vmk1", "vmotion", true, &f->err));
	OK(vmk_net_vmknic_tag(&f->net, "vmk1", "Provisioning", false, &f->err));
	snprintf(path, sizeof(path), "%s/network.conf", f->dir);
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	assert_non_null(strstr(text, "netstack \"provisioning\"\n"));
	assert_non_null(strstr(text, "vmknic \"vmk1\" portgroup \"VM Network\" netstack "
				     "\"provisioning\" ip 198.18.1.13/25 gateway 198.18.1.1 mtu "
				     "1500 mac 02:"));
	assert_non_null(strstr(text, " tags VMotion\n"));

	/* A restart keeps the interfaces (same ifindex) and adds nothing. */
	assert_int_equal(link_in(f, NULL, "vmk0", &l0), 0);
	assert_int_equal(link_in(f, "provisioning", "vmk1", &l1), 0);
	vmk_net_close(&f->net);
	f->net_open = false;
	net_init(f);
	assert_int_equal(link_in(f, NULL, "vmk0", &l), 0);
	assert_int_equal(l.ifindex, l0.ifindex);
	assert_int_equal(link_in(f, "provisioning", "vmk1", &l), 0);
	assert_int_equal(l.ifindex, l1.ifindex);
	assert_true(has_addr(f, "provisioning", "vmk1", "198.18.1.13", 25));

	/* Half a pair gone: the next start makes it again. */
	assert_int_equal(vmk__link_delete(f->net.nl, l0.ifindex), 0);
	vmk_net_close(&f->net);
	f->net_open = false;
	net_init(f);
	assert_true(has_addr(f, NULL, "vmk0", "198.18.0.11", 24));
	assert_int_equal(vmk__link_get(f->net.nl, "vmkp0", 0, &l), 0);
}

static void test_config_records(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
	    {"netstack \"defaultTcpipStack\"\n", "listed twice"},
	    {"netstack \"vmotion\"\nnetstack \"vmotion\"\n", "listed twice"},
	    {"vmknic \"vmk1\" portgroup \"VM Network\" netstack \"nope\" ip 198.18.0.1/24 gateway "
	     "none mtu 1500 mac 02:00:00:00:00:01 tags -\n",
	     "unknown netstack"},
	    {"vmknic \"vmk1\" portgroup \"VM Network\" netstack \"defaultTcpipStack\" ip "
	     "198.18.0.1/24 gateway none mtu 1500 mac 03:00:00:00:00:01 tags -\n",
	     "multicast"},
	    {"vmknic \"vmk1\" portgroup \"VM Network\" netstack \"defaultTcpipStack\" ip "
	     "198.18.0.1/24 gateway 10.0.0.1 mtu 1500 mac 02:00:00:00:00:01 tags -\n",
	     "outside"},
	    {"vmknic \"vmk1\" portgroup \"VM Network\" netstack \"defaultTcpipStack\" ip "
	     "198.18.0.1/24 gateway none mtu 1500 mac 02:00:00:00:00:01 tags VMotion,VMotion\n",
	     "twice"},
	    {"vmknic \"vmk1\" portgroup \"VM Network\"\n", "fields"},
	};
	const char *head = "version 1\nvswitch \"vSwitch0\" mtu 1500\n"
			   "portgroup \"VM Network\" vswitch \"vSwitch0\" vlan 0\n";
	struct vmk__net_conf *c;
	struct kb_errmsg err;
	struct kb_buf b;
	char text[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", head, bad[i].text);
		assert_int_equal(vmk__conf_parse(text, strlen(text), &c, &err), KB_ECONFIG);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("case %zu: %s", i, err.msg);
	}
	snprintf(text, sizeof(text),
		 "%snetstack \"vmotion\"\nvmknic \"vmk1\" portgroup \"VM Network\" netstack "
		 "\"vmotion\" ip 198.18.2.11/24 gateway 198.18.2.1 mtu 9000 mac "
		 "02:5e:10:aa:bb:cc tags Management,VMotion\n",
		 head);
	assert_int_equal(vmk__conf_parse(text, strlen(text), &c, &err), 0);
	assert_int_equal(c->n_vmknics, 1);
	assert_int_equal(c->vmknics[0].tags, VMK__TAG_MANAGEMENT | VMK__TAG_VMOTION);
	kb_buf_init(&b, 1 << 16);
	assert_int_equal(vmk__conf_format(c, &b), 0);
	assert_non_null(memmem(b.data, b.len, text + strlen(head) - 1, 10));
	assert_non_null(memmem(b.data, b.len, "tags Management,VMotion\n", 24));
	kb_buf_close(&b);
	vmk__conf_free(c);
}

/* Accepts one connection on lfd and returns the peer's address as text. */
static void accept_from(int lfd, char out[16])
{
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	int fd = accept(lfd, (struct sockaddr *)&peer, &len);

	assert_true(fd >= 0);
	inet_ntop(AF_INET, &peer.sin_addr, out, 16);
	close(fd);
}

static void test_tagged_socket(void **state)
{
	struct fx *f = fx_get(state);
	struct sockaddr_in lb, cb, mb;
	struct vmk_net_tagged t;
	char from[16];
	int lfd, cfd, mfd;

	net_init(f);
	OK(add(f, "vmk0", NULL, "198.18.0.11/24", NULL, "Management"));
	OK(add(f, "vmk1", "vmotion", "198.18.0.12/24", NULL, "VMotion"));
	OK(add(f, "vmk2", "vmotion", "198.18.0.13/24", NULL, "Replication"));

	OK(vmk_net_tagged_lookup(f->dir, "vmotion", &t, &f->err));
	assert_string_equal(t.vmknic, "vmk1");
	assert_string_equal(t.netstack, "vmotion");
	assert_int_equal(vmk_net_tagged_lookup(f->dir, "vSAN", &t, &f->err), KB_ENOTFOUND);
	assert_int_equal(vmk_net_tagged_lookup(f->dir, "Bogus", &t, &f->err), KB_ECONFIG);

	/* A listener on vmk2 (Replication) and a client on vmk1 (VMotion): the same
	 * netstack. */
	lfd = vmk_net_tagged_socket(f->dir, "Replication", SOCK_STREAM, 7100, &lb, &f->err);
	assert_true(lfd >= 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(ntohs(lb.sin_port), 7100);
	cfd = vmk_net_tagged_socket(f->dir, "VMotion", SOCK_STREAM, 0, &cb, &f->err);
	assert_true(cfd >= 0);
	assert_int_not_equal(cb.sin_port, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&lb, sizeof(lb)), 0);
	accept_from(lfd, from);
	assert_string_equal(from, "198.18.0.12");
	close(cfd);
	close(lfd);
	/* The listener's netstack is not this thread's namespace. */
	assert_int_equal(access("/proc/self/net/dev", F_OK), 0);

	/* Across the bridge: vmk1 (vmotion) to a listener on vmk0 (defaultTcpipStack). */
	mfd = vmk_net_tagged_socket(f->dir, "Management", SOCK_STREAM, 7200, &mb, &f->err);
	assert_true(mfd >= 0);
	assert_int_equal(listen(mfd, 4), 0);
	cfd = vmk_net_tagged_socket(f->dir, "VMotion", SOCK_STREAM, 0, &cb, &f->err);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&mb, sizeof(mb)), 0);
	accept_from(mfd, from);
	assert_string_equal(from, "198.18.0.12");
	close(cfd);
	close(mfd);

	/* A netstack whose namespace is gone is reported. */
	OK(vmk_net_vmknic_remove(&f->net, "vmk1", &f->err));
	OK(vmk_net_vmknic_remove(&f->net, "vmk2", &f->err));
	OK(vmk_net_netstack_remove(&f->net, "vmotion", &f->err));
	assert_int_equal(vmk_net_tagged_socket(f->dir, "VMotion", SOCK_STREAM, 0, NULL, &f->err),
			 KB_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_add_remove, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_set_ip_and_reload, fx_setup, fx_teardown),
	    cmocka_unit_test(test_config_records),
	    cmocka_unit_test_setup_teardown(test_tagged_socket, fx_setup, fx_teardown),
	};

	kb_log_init(&kb_log_default, "test_net_vmknic", KB_LOG_WARN, 2);
	th_netns_init("test_net_vmknic");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
