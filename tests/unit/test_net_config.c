/*
 * Tests for the parts of kernel/net that touch no network interface: the checks of names
 * and numbers, the tap name of a VM NIC, the strict network.conf parser (every malformed
 * input refused with the line named), formatting round trips, atomic saving, the
 * configuration kept in a config store (commits put into it and copied to network.conf,
 * malformed puts refused, a foreign put not overwritten), the protobuf lists, and
 * allocation failures in each of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/cfg/cfg.h"
#include "kernel/net/net_internal.h"
#include "lib/heap.h"

static const char sample[] = "# comment\n"
			     "\n"
			     "version 1\n"
			     "vswitch \"vSwitch0\" mtu 1500\n"
			     "uplink \"vSwitch0\" \"vmnic0\"\n"
			     "uplink \"vSwitch0\" \"vmnic1\"\n"
			     "  vswitch \"vSwitch1\"\tmtu 9000  \n"
			     "portgroup \"VM Network\" vswitch \"vSwitch0\" vlan 0\n"
			     "portgroup \"VLAN 42\" vswitch \"vSwitch1\" vlan 42\n"
			     "port \"%s\" portgroup \"VM Network\" vm \"%s\" nic 0\n";

static const char uuid[] = "0f3c2a51-9a7e-4b6f-8d1e-2c4b5a6f7e80";

/* The sample with the right tap name for uuid. */
static char *sample_text(void)
{
	char tap[VMK_NET_IFNAME_MAX], *text;
	struct kb_errmsg err;

	assert_int_equal(vmk_net_port_name(uuid, 0, tap, &err), 0);
	text = malloc(sizeof(sample) + 64);
	assert_non_null(text);
	snprintf(text, sizeof(sample) + 64, sample, tap, uuid);
	return text;
}

static void test_port_name(void **state)
{
	char a[VMK_NET_IFNAME_MAX], b[VMK_NET_IFNAME_MAX];
	struct kb_errmsg err;
	size_t i;

	assert_int_equal(vmk_net_port_name(uuid, 0, a, &err), 0);
	assert_int_equal(strlen(a), 12);
	assert_memory_equal(a, "kt", 2);
	for (i = 2; i < 10; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_equal(a + 10, "n0");
	/* Deterministic, and blind to case and separators. */
	assert_int_equal(vmk_net_port_name("0F3C2A519A7E4B6F8D1E2C4B5A6F7E80", 0, b, &err), 0);
	assert_string_equal(a, b);
	assert_int_equal(vmk_net_port_name(uuid, 9999, b, &err), 0);
	assert_int_equal(strlen(b), 15);
	assert_memory_equal(a, b, 10);
	/* Another VM, another name. */
	assert_int_equal(vmk_net_port_name("0f3c2a51-9a7e-4b6f-8d1e-2c4b5a6f7e81", 0, b, &err), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(vmk_net_port_name(uuid, 10000, b, &err), KB_ECONFIG);
	assert_string_equal(b, "");
	assert_int_equal(vmk_net_port_name("", 0, b, &err), KB_ECONFIG);
	assert_int_equal(vmk_net_port_name("abc", 0, b, &err), KB_ECONFIG);
	assert_int_equal(vmk_net_port_name("0f3c2a51;rm", 0, b, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "VM uuid"));
}

static void test_check_names(void **state)
{
	static const char *bad_if[] = {
	    "", "0abc", "-x", "a b", "br/0", "a:b", "abcdefghijklmnop", "vswitch\"", "é"};
	static const char *good_if[] = {"vSwitch0", "vmnic0",	       "a",
					"eth0.100", "abcdefghijklmno", "v_x-y"};
	static const char *bad_pg[] = {"",	 " lead", "trail ", "quo\"te", "back\\slash",
				       "tab\tx", "nl\nx"};
	static const char *good_pg[] = {"VM Network", "x", "Management Network", "VLAN-42 (prod)"};
	struct kb_errmsg err;
	char big[80];
	size_t i;

	for (i = 0; i < sizeof(bad_if) / sizeof(bad_if[0]); i++)
		assert_int_equal(vmk__check_ifname(bad_if[i], "vSwitch name", &err), KB_ECONFIG);
	for (i = 0; i < sizeof(good_if) / sizeof(good_if[0]); i++)
		assert_int_equal(vmk__check_ifname(good_if[i], "vSwitch name", &err), 0);
	/* A vSwitch may not take the shape of a VM NIC's tap. */
	assert_int_equal(vmk__check_ifname("kt0123abcdn1", "vSwitch name", &err), KB_ECONFIG);
	assert_int_equal(vmk__check_ifname("kt0123abcdn1", "uplink name", &err), 0);
	for (i = 0; i < sizeof(bad_pg) / sizeof(bad_pg[0]); i++)
		assert_int_equal(vmk__check_pg_name(bad_pg[i], &err), KB_ECONFIG);
	for (i = 0; i < sizeof(good_pg) / sizeof(good_pg[0]); i++)
		assert_int_equal(vmk__check_pg_name(good_pg[i], &err), 0);
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(vmk__check_pg_name(big, &err), KB_ECONFIG);
	big[63] = '\0';
	assert_int_equal(vmk__check_pg_name(big, &err), 0);

	assert_int_equal(vmk__check_mtu(1279, &err), KB_ECONFIG);
	assert_int_equal(vmk__check_mtu(1280, &err), 0);
	assert_int_equal(vmk__check_mtu(9000, &err), 0);
	assert_int_equal(vmk__check_mtu(9001, &err), KB_ECONFIG);
	assert_int_equal(vmk__check_vlan(0, &err), 0);
	assert_int_equal(vmk__check_vlan(1, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "untagged"));
	assert_int_equal(vmk__check_vlan(2, &err), 0);
	assert_int_equal(vmk__check_vlan(4094, &err), 0);
	assert_int_equal(vmk__check_vlan(4095, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "4095"));
}

static void test_parse_sample(void **state)
{
	char *text = sample_text();
	struct vmk__net_conf *c, *c2;
	struct kb_errmsg err;
	struct kb_buf b1, b2;

	assert_int_equal(vmk__conf_parse(text, strlen(text), &c, &err), 0);
	assert_int_equal(c->n_vswitches, 2);
	assert_string_equal(c->vswitches[0].name, "vSwitch0");
	assert_int_equal(c->vswitches[0].n_uplinks, 2);
	assert_string_equal(c->vswitches[0].uplinks[1], "vmnic1");
	assert_int_equal(c->vswitches[1].mtu, 9000);
	assert_int_equal(c->n_portgroups, 2);
	assert_string_equal(c->portgroups[1].name, "VLAN 42");
	assert_int_equal(c->portgroups[1].vlan, 42);
	assert_int_equal(c->n_ports, 1);
	assert_string_equal(c->ports[0].vm_uuid, uuid);

	/* format -> parse -> format gives the same bytes. */
	kb_buf_init(&b1, 0);
	kb_buf_init(&b2, 0);
	assert_int_equal(vmk__conf_format(c, &b1), 0);
	assert_int_equal(vmk__conf_parse((const char *)b1.data, b1.len, &c2, &err), 0);
	assert_int_equal(vmk__conf_format(c2, &b2), 0);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	kb_buf_close(&b1);
	kb_buf_close(&b2);
	vmk__conf_free(c2);
	vmk__conf_free(c);
	free(text);
}

struct bad_case {
	const char *text;
	int rv;
	const char *msg; /* a substring of the error */
};

static void test_parse_bad(void **state)
{
	static const struct bad_case cases[] = {
	    {"", KB_ECONFIG, "no \"version 1\""},
	    {"# only a comment\n", KB_ECONFIG, "no \"version 1\""},
	    {"version 1", KB_ECONFIG, "line 1: no newline"},
	    {"version 2\n", KB_EVERSION, "line 1: unsupported version 2"},
	    {"version 01\n", KB_ECONFIG, "line 1"},
	    {"vswitch \"v\" mtu 1500\n", KB_ECONFIG, "line 1: the first record"},
	    {"version 1\nversion 1\n", KB_ECONFIG, "line 2: unknown record \"version\""},
	    {"version 1\nbogus 1\n", KB_ECONFIG, "line 2: unknown record \"bogus\""},
	    {"version 1\nvswitch vSwitch0 mtu 1500\n", KB_ECONFIG, "double quotes"},
	    {"version 1\nvswitch \"vSwitch0\" mtu 1500 x\n", KB_ECONFIG, "has 5 fields"},
	    {"version 1\nvswitch \"vSwitch0\" mtu -1\n", KB_ECONFIG, "MTU"},
	    {"version 1\nvswitch \"vSwitch0\" mtu 99999999999\n", KB_ECONFIG, "MTU"},
	    {"version 1\nvswitch \"vSwitch0\" mtu 100\n", KB_ECONFIG, "MTU"},
	    {"version 1\nvswitch \"vSwitch0\" mtu \"1500\"\n", KB_ECONFIG, "MTU"},
	    {"version 1\nvswitch \"vSwitch0\" mtux 1500\n", KB_ECONFIG, "expected"},
	    {"version 1\nvswitch \"vSwitch0 mtu 1500\n", KB_ECONFIG, "unterminated"},
	    {"version 1\nvswitch \"vSwitch0\"mtu 1500\n", KB_ECONFIG, "no blank"},
	    {"version 1\nvswitch \"bad name\" mtu 1500\n", KB_ECONFIG, "vSwitch name"},
	    {"version 1\nvswitch \"abcdefghijklmnopq\" mtu 1500\n", KB_ECONFIG, "longer than"},
	    {"version 1\nvswitch \"v\" mtu 1500\nvswitch \"v\" mtu 1500\n", KB_ECONFIG,
	     "line 3: vSwitch \"v\" is listed twice"},
	    {"version 1\nuplink \"v\" \"eth0\"\n", KB_ECONFIG, "unknown vSwitch"},
	    {"version 1\nvswitch \"v\" mtu 1500\nuplink \"v\" \"e0\"\nuplink \"v\" \"e0\"\n",
	     KB_ECONFIG, "line 4: uplink \"e0\" is listed twice"},
	    {"version 1\nvswitch \"v\" mtu 1500\nuplink \"v\" \"v\"\n", KB_ECONFIG, "twice"},
	    {"version 1\nportgroup \"p\" vswitch \"v\" vlan 0\n", KB_ECONFIG, "unknown vSwitch"},
	    {"version 1\nvswitch \"v\" mtu 1500\nportgroup \"p\" vswitch \"v\" vlan 4095\n",
	     KB_ECONFIG, "VLAN id"},
	    {"version 1\nvswitch \"v\" mtu 1500\nportgroup \"p\" vswitch \"v\" vlan 1\n",
	     KB_ECONFIG, "line 3: VLAN id 1 carries"},
	    {"version 1\nvswitch \"v\" mtu 1500\nportgroup \" p\" vswitch \"v\" vlan 1\n",
	     KB_ECONFIG, "leading or trailing space"},
	    {"version 1\nvswitch \"v\" mtu 1500\nportgroup \"p\" vswitch \"v\" vlan 3\n"
	     "portgroup \"p\" vswitch \"v\" vlan 2\n",
	     KB_ECONFIG, "line 4: portgroup \"p\" is listed twice"},
	    {"version 1\nvswitch \"v\" mtu 1500\nportgroup \"p\" vswitch \"v\" vlan 0\n"
	     "port \"kt00000000n0\" portgroup \"p\" vm \"0f3c2a51-9a7e\" nic 0\n",
	     KB_ECONFIG, "should be named"},
	    {"version 1\nvswitch \"v\" mtu 1500\n"
	     "port \"kt00000000n0\" portgroup \"p\" vm \"0f3c2a51-9a7e\" nic 0\n",
	     KB_ECONFIG, "line 3"},
	    {"version 1\nvswitch \"v\" mtu 1500\r\n", KB_ECONFIG, "0x0d"},
	    {"version 1\nvswitch \"v\"\x01 mtu 1500\n", KB_ECONFIG, "0x01"},
	    {"version 1\nvswitch \"v\" mtu 1500 a b c d e f g h\n", KB_ECONFIG, "too many"},
	};
	struct vmk__net_conf *c;
	struct kb_errmsg err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err.msg[0] = '\0';
		c = NULL;
		int rv = vmk__conf_parse(cases[i].text, strlen(cases[i].text), &c, &err);
		if (rv != cases[i].rv || !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: rv %d (%s), want %d with \"%s\"", i, rv, err.msg,
				 cases[i].rv, cases[i].msg);
		assert_null(c);
	}
	/* A NUL byte inside a line. */
	assert_int_equal(vmk__conf_parse("version 1\n\0\n", 12, &c, &err), KB_ECONFIG);
}

static void test_parse_limits(void **state)
{
	struct vmk__net_conf *c;
	struct kb_errmsg err;
	char *text;
	size_t len, i;

	text = calloc(1, VMK__CONF_SIZE_MAX + 64);
	assert_non_null(text);
	/* Larger than 1 MiB. */
	memset(text, '#', VMK__CONF_SIZE_MAX + 1);
	assert_int_equal(vmk__conf_parse(text, VMK__CONF_SIZE_MAX + 1, &c, &err), KB_ETOOBIG);
	/* A line of 513 bytes. */
	len = (size_t)sprintf(text, "version 1\n#");
	memset(text + len, 'x', 512);
	text[len + 512] = '\n';
	assert_int_equal(vmk__conf_parse(text, len + 513, &c, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 2: longer than 512"));
	/* 17 uplinks on one vSwitch. */
	len = (size_t)sprintf(text, "version 1\nvswitch \"v\" mtu 1500\n");
	for (i = 0; i < VMK_NET_UPLINKS_MAX + 1; i++)
		len += (size_t)sprintf(text + len, "uplink \"v\" \"e%zu\"\n", i);
	assert_int_equal(vmk__conf_parse(text, len, &c, &err), KB_ETOOBIG);
	/* 65 vSwitches. */
	len = (size_t)sprintf(text, "version 1\n");
	for (i = 0; i < VMK_NET_VSWITCHES_MAX + 1; i++)
		len += (size_t)sprintf(text + len, "vswitch \"v%zu\" mtu 1500\n", i);
	assert_int_equal(vmk__conf_parse(text, len, &c, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "line 66"));
	free(text);
}

static void test_save_load(void **state)
{
	char dir[] = "/tmp/keel-netconf-XXXXXX", path[128], tmp[160];
	char *text = sample_text();
	struct vmk__net_conf *c, *c2;
	struct kb_errmsg err;
	struct kb_buf b1, b2;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/network.conf", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(vmk__conf_load(path, &c, &err), -ENOENT);
	assert_int_equal(vmk__conf_parse(text, strlen(text), &c, &err), 0);
	assert_int_equal(vmk__conf_save(path, c, &err), 0);
	assert_int_equal(stat(tmp, &st), -1);
	assert_int_equal(vmk__conf_load(path, &c2, &err), 0);
	kb_buf_init(&b1, 0);
	kb_buf_init(&b2, 0);
	assert_int_equal(vmk__conf_format(c, &b1), 0);
	assert_int_equal(vmk__conf_format(c2, &b2), 0);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	vmk__conf_free(c2);

	/* The temporary file cannot be created: the save fails, the old file stays. */
	assert_int_equal(mkdir(tmp, 0700), 0);
	vmk__conf_del_port(c, c->ports[0].tap);
	assert_true(vmk__conf_save(path, c, &err) < 0);
	assert_non_null(strstr(err.msg, "network.conf.tmp"));
	assert_int_equal(vmk__conf_load(path, &c2, &err), 0);
	assert_int_equal(c2->n_ports, 1);
	vmk__conf_free(c2);
	assert_int_equal(rmdir(tmp), 0);

	/* A damaged file is refused with its path and line. */
	{
		int fd = open(path, O_WRONLY | O_APPEND);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "vswitch \"x\" mtu 1\n", 18), 18);
		close(fd);
	}
	assert_int_equal(vmk__conf_load(path, &c2, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "network.conf: line 11: MTU"));

	kb_buf_close(&b1);
	kb_buf_close(&b2);
	vmk__conf_free(c);
	free(text);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* Reads path into out (set up by the caller). */
static void read_all(const char *path, struct kb_buf *out)
{
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(kb_buf_append(out, chunk, (size_t)n), 0);
	close(fd);
}

static void test_store_commit(void **state)
{
	char dir[] = "/tmp/keel-netstore-XXXXXX", path[128];
	struct vmk_cfg_config cfg = {0};
	struct vmk__net_conf *next;
	struct vmk_net net = {0};
	struct kb_buf want, have, file;
	struct kb_errmsg err;
	char *text = sample_text();
	uint64_t gen;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/network.conf", dir);
	assert_int_equal(vmk_cfg_create(&cfg, &net.store, &err), 0);
	net.log = &kb_log_default;
	net.conf_path = path;

	/* The parser is the store's contents check: a malformed file is refused, named. */
	assert_int_equal(vmk_net_conf_check(text, strlen(text), &err), 0);
	assert_int_equal(vmk_cfg_put(net.store, VMK_NET_CFG_PATH,
				     "version 1\nvswitch \"a\" mtu 1\n", 29, 0, NULL, &err),
			 KB_ECONFIG);
	assert_non_null(strstr(err.msg, "etc/keel/network.conf: line 2: MTU"));
	kb_buf_init(&have, 0);
	assert_int_equal(vmk_cfg_get(net.store, VMK_NET_CFG_PATH, &have, NULL, &err), KB_ENOTFOUND);

	/* A store that lacks the file refuses a commit (it was deleted behind net's back). */
	assert_int_equal(vmk__conf_parse(text, strlen(text), &net.conf, &err), 0);
	assert_int_equal(vmk__conf_clone(net.conf, &next), 0);
	assert_int_equal(vmk__net_commit(&net, next, &err), KB_ESTATE);
	assert_non_null(strstr(err.msg, "deleted in the config store"));

	/* With the store holding net's configuration, a commit is a put plus the copy. */
	kb_buf_init(&want, 0);
	assert_int_equal(vmk__conf_format(net.conf, &want), 0);
	assert_int_equal(
	    vmk_cfg_put(net.store, VMK_NET_CFG_PATH, want.data, want.len, 0, NULL, &err), 0);
	assert_int_equal(vmk__conf_clone(net.conf, &next), 0);
	vmk__conf_del_port(next, next->ports[0].tap);
	assert_int_equal(vmk__net_commit(&net, next, &err), 0);
	assert_int_equal(net.conf->n_ports, 0);
	want.len = 0;
	assert_int_equal(vmk__conf_format(net.conf, &want), 0);
	assert_int_equal(vmk_cfg_get(net.store, VMK_NET_CFG_PATH, &have, NULL, &err), 0);
	assert_int_equal(have.len, want.len);
	assert_memory_equal(have.data, want.data, want.len);
	kb_buf_init(&file, 0);
	read_all(path, &file);
	assert_int_equal(file.len, want.len);
	assert_memory_equal(file.data, want.data, want.len);

	/* A put through the store (a restore) is not overwritten: the commit is refused. */
	{
		static const char other[] = "version 1\nvswitch \"vSwitch9\" mtu 1500\n";
		struct vmk_cfg_status st;

		assert_int_equal(
		    vmk_cfg_put(net.store, VMK_NET_CFG_PATH, other, strlen(other), 0, NULL, &err),
		    0);
		vmk_cfg_status(net.store, &st);
		gen = st.generation;
		assert_int_equal(vmk__conf_clone(net.conf, &next), 0);
		vmk__conf_del_vswitch(next, "vSwitch1");
		assert_int_equal(vmk__net_commit(&net, next, &err), KB_ESTATE);
		assert_non_null(strstr(err.msg, "replaced in the config store"));
		assert_non_null(vmk__conf_vswitch(net.conf, "vSwitch1"));
		vmk_cfg_status(net.store, &st);
		assert_int_equal(st.generation, gen);
		have.len = 0;
		assert_int_equal(vmk_cfg_get(net.store, VMK_NET_CFG_PATH, &have, NULL, &err), 0);
		assert_int_equal(have.len, strlen(other));
		assert_memory_equal(have.data, other, have.len);
	}

	kb_buf_close(&want);
	kb_buf_close(&have);
	kb_buf_close(&file);
	vmk__conf_free(net.conf);
	vmk_cfg_destroy(net.store);
	free(text);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	(void)state;
}

static void test_lists(void **state)
{
	char *text = sample_text();
	struct vmk_net net = {0};
	Keel__Vmk__VSwitchInfo **vs;
	Keel__Vmk__PortgroupInfo **pg;
	struct kb_errmsg err;
	size_t n;

	assert_int_equal(vmk__conf_parse(text, strlen(text), &net.conf, &err), 0);
	assert_int_equal(vmk_net_vswitch_list(&net, &vs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(vs[0]->name, "vSwitch0");
	assert_int_equal(vs[0]->n_uplinks, 2);
	assert_string_equal(vs[0]->uplinks[0], "vmnic0");
	assert_int_equal(vs[1]->mtu, 9000);
	assert_int_equal(vs[1]->n_uplinks, 0);
	/* The messages pack. */
	assert_true(keel__vmk__vswitch_info__get_packed_size(vs[0]) > 0);
	vmk_net_vswitch_list_free(vs, n);
	assert_int_equal(vmk_net_portgroup_list(&net, &pg, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(pg[0]->name, "VM Network");
	assert_string_equal(pg[0]->vswitch, "vSwitch0");
	assert_int_equal(pg[0]->n_ports, 1);
	assert_int_equal(pg[1]->vlan, 42);
	assert_int_equal(pg[1]->n_ports, 0);
	vmk_net_portgroup_list_free(pg, n);
	assert_int_equal(vmk_net_portgroup_find(&net, "VLAN 42", &err), 0);
	assert_int_equal(vmk_net_portgroup_find(&net, "nope", &err), KB_ENOTFOUND);
	vmk__conf_free(net.conf);
	free(text);
}

/* Every allocation of parse, clone, format and the lists fails once in turn: each call
 * reports -ENOMEM and leaks nothing (make asan checks the leaks). */
static void test_oom(void **state)
{
	char *text = sample_text();
	struct vmk_net net = {0};
	Keel__Vmk__VSwitchInfo **vs;
	Keel__Vmk__PortgroupInfo **pg;
	struct vmk__net_conf *c;
	struct kb_errmsg err;
	struct kb_buf b;
	size_t n;
	int i, rv, fails;

	for (i = 0, fails = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk__conf_parse(text, strlen(text), &c, &err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		fails++;
	}
	assert_true(fails > 0);
	net.conf = c;
	for (i = 0;; i++) {
		struct vmk__net_conf *copy;

		kb_heap_fail_after(i, 1);
		rv = vmk__conf_clone(c, &copy);
		kb_heap_fail_reset();
		if (rv == 0) {
			vmk__conf_free(copy);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
	}
	for (i = 0;; i++) {
		kb_buf_init(&b, 0);
		kb_heap_fail_after(i, 1);
		rv = vmk__conf_format(c, &b);
		kb_heap_fail_reset();
		kb_buf_close(&b);
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
	}
	for (i = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk_net_vswitch_list(&net, &vs, &n, &err);
		kb_heap_fail_reset();
		if (rv == 0) {
			vmk_net_vswitch_list_free(vs, n);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
		assert_null(vs);
	}
	for (i = 0;; i++) {
		kb_heap_fail_after(i, 1);
		rv = vmk_net_portgroup_list(&net, &pg, &n, &err);
		kb_heap_fail_reset();
		if (rv == 0) {
			vmk_net_portgroup_list_free(pg, n);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
		assert_null(pg);
	}
	vmk__conf_free(c);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_name),	 cmocka_unit_test(test_check_names),
	    cmocka_unit_test(test_parse_sample), cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_parse_limits), cmocka_unit_test(test_save_load),
	    cmocka_unit_test(test_lists),	 cmocka_unit_test(test_store_commit),
	    cmocka_unit_test(test_oom),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
