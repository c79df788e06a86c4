/*
 * keel, the operator's CLI: the datastore, host and network commands.
 *
 * Each test runs build/bin/keel as a child process with --socket pointing at a fake
 * vmkernel (tests/unit/keel_cli_helpers.c) and checks what reached the fake (the argument
 * -> request mapping), stdout (tables, one valid JSON object under --json), stderr and the
 * exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/keel_cli_helpers.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

/* ---- datastore, host, network ------------------------------------------------------------ */

static void test_datastore_commands(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__DatastoreInfo a = KEEL__VMK__DATASTORE_INFO__INIT,
				 b = KEEL__VMK__DATASTORE_INFO__INIT;
	Keel__Vmk__DatastoreInfo *dss[2] = {&a, &b};
	char cwd[512], want[700];

	a.name = "local";
	a.path = "/var/lib/keel/datastores/local";
	a.capacity = 100ull << 30;
	a.free = 25ull << 30;
	a.vms = 3;
	b.name = "shared";
	b.path = "/mnt/nfs";
	b.shared = true;
	b.capacity = 2ull << 40;
	b.free = 1536ull << 30;
	rp.datastores = dss;
	rp.n_datastores = 2;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST, &rp);
	assert_int_equal(KEEL("datastore", "list"), 0);
	assert_string_equal(
	    kc_run.out,
	    "NAME    PATH                            SHARED  CAPACITY     FREE  USED%  VMS\n"
	    "local   /var/lib/keel/datastores/local  no       100 GiB   25 GiB    75%    3\n"
	    "shared  /mnt/nfs                        yes        2 TiB  1.5 TiB    25%    0\n");
	assert_int_equal(KEEL("datastore", "list", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"datastores\":[{\"name\":\"local\",\"path\":\"/var/lib/keel/"
			       "datastores/local\",\"shared\":false,\"capacity\":107374182400,");

	assert_int_equal(KEEL("datastore", "add", "ds9", "store", "--shared"), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/store", cwd);
	const Keel__Vmk__VmkRequest *rq = kc_req_at(2);
	assert_int_equal(rq->req_case, KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD);
	assert_string_equal(rq->datastore_add->name, "ds9");
	assert_string_equal(rq->datastore_add->path, want);
	assert_true(rq->datastore_add->shared);
	assert_has(kc_run.out, "Added shared datastore ds9 at ");

	assert_int_equal(KEEL("datastore", "remove", "ds9"), 0);
	assert_int_equal(kc_req_at(3)->req_case, KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_REMOVE);
	assert_string_equal(kc_req_at(3)->datastore_remove->name, "ds9");
	assert_string_equal(kc_run.out, "Removed datastore ds9.\n");
}

static void test_host_info_and_log(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__HostInfo h = KEEL__VMK__HOST_INFO__INIT;
	char *lines[2] = {"I vmkernel: started", "W vm web01:\tvmx exited"};

	h.hostname = "esx-01";
	h.version = "0.1.0";
	h.cpus = 8;
	h.cpu_mhz = 2400;
	h.mem_bytes = 32ull << 30;
	h.cpu_reserved_mhz = 1500;
	h.cpu_reservable_mhz = 17280;
	h.mem_reserved_bytes = 1536ull << 20;
	h.mem_reservable_bytes = 30ull << 30;
	h.vms_registered = 3;
	h.vms_powered_on = 1;
	h.uptime_ms = 90061000;
	h.cgroup_version = "v1";
	h.state_dir = "/var/lib/keel";
	h.cpu_used_mhz = 12.5;
	h.mem_used_bytes = 300ull << 20;
	rp.host = &h;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO, &rp);
	assert_int_equal(KEEL("host", "info"), 0);
	assert_has(kc_run.out, "Hostname:          esx-01\n");
	assert_has(kc_run.out, "CPU:               8 x 2400 MHz = 19200 MHz\n");
	assert_has(kc_run.out, "  reserved:        1500 MHz of 17280 MHz reservable\n");
	assert_has(kc_run.out, "  used:            12.5 MHz\n");
	assert_has(kc_run.out, "Memory:            32 GiB\n");
	assert_has(kc_run.out, "  reserved:        1.5 GiB of 30 GiB reservable\n");
	assert_has(kc_run.out, "  used:            300 MiB\n");
	assert_has(kc_run.out, "VMs:               3 registered, 1 powered on\n");
	assert_has(kc_run.out, "Uptime:            1d 01h\n");
	assert_int_equal(KEEL("host", "info", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"host\":{\"hostname\":\"esx-01\"");
	assert_has(kc_run.out, "\"mem_bytes\":34359738368");
	assert_has(kc_run.out, "\"cpu_used_mhz\":12.5");

	rp.host = NULL;
	rp.log_lines = lines;
	rp.n_log_lines = 2;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_LOG, &rp);
	assert_int_equal(KEEL("host", "log", "--lines", "2"), 0);
	assert_int_equal(kc_req_at(2)->log->lines, 2);
	assert_string_equal(kc_run.out, "I vmkernel: started\nW vm web01: vmx exited\n");
	assert_int_equal(KEEL("host", "log"), 0);
	assert_int_equal(kc_req_at(3)->log->lines, 100);
	assert_int_equal(KEEL("host", "log", "--json"), 0);
	assert_has(kc_run.out,
		   "\"log_lines\":[\"I vmkernel: started\",\"W vm web01:\\tvmx exited\"]");
}

static void test_network_commands(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__VSwitchInfo vs = KEEL__VMK__VSWITCH_INFO__INIT;
	Keel__Vmk__VSwitchInfo *vss[1] = {&vs};
	Keel__Vmk__PortgroupInfo pg = KEEL__VMK__PORTGROUP_INFO__INIT;
	Keel__Vmk__PortgroupInfo *pgs[1] = {&pg};
	char *uplinks[2] = {"eth0", "eth1"}, *ports[1] = {"tap-web01-0"};

	vs.name = "vSwitch0";
	vs.mtu = 1500;
	vs.uplinks = uplinks;
	vs.n_uplinks = 2;
	rp.vswitches = vss;
	rp.n_vswitches = 1;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_LIST, &rp);
	assert_int_equal(KEEL("network", "vswitch", "list"), 0);
	assert_string_equal(kc_run.out, "NAME       MTU  UPLINKS\n"
					"vSwitch0  1500  eth0, eth1\n");

	rp.n_vswitches = 0;
	pg.name = "VM Network";
	pg.vswitch = "vSwitch0";
	pg.vlan = 42;
	pg.ports = ports;
	pg.n_ports = 1;
	rp.portgroups = pgs;
	rp.n_portgroups = 1;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST, &rp);
	assert_int_equal(KEEL("network", "portgroup", "list"), 0);
	assert_string_equal(kc_run.out, "NAME        VSWITCH   VLAN  PORTS\n"
					"VM Network  vSwitch0    42  tap-web01-0\n");
	assert_int_equal(KEEL("network", "portgroup", "list", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"portgroups\":[{\"name\":\"VM Network\",\"vswitch\":\"vSwitch0\","
			       "\"vlan\":42,\"ports\":[\"tap-web01-0\"]}]");

	assert_int_equal(KEEL("network", "vswitch", "add", "vSwitch1", "--mtu", "9000"), 0);
	assert_int_equal(kc_req_at(3)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_ADD);
	assert_string_equal(kc_req_at(3)->vswitch_add->name, "vSwitch1");
	assert_int_equal(kc_req_at(3)->vswitch_add->mtu, 9000);
	assert_string_equal(kc_run.out, "Added vSwitch vSwitch1.\n");

	assert_int_equal(KEEL("network", "uplink", "add", "vSwitch1", "eth2"), 0);
	assert_int_equal(kc_req_at(4)->req_case, KEEL__VMK__VMK_REQUEST__REQ_UPLINK_ADD);
	assert_string_equal(kc_req_at(4)->uplink_add->vswitch, "vSwitch1");
	assert_string_equal(kc_req_at(4)->uplink_add->nic, "eth2");
	assert_int_equal(KEEL("network", "uplink", "remove", "vSwitch1", "eth2"), 0);
	assert_int_equal(kc_req_at(5)->req_case, KEEL__VMK__VMK_REQUEST__REQ_UPLINK_REMOVE);
	assert_string_equal(kc_req_at(5)->uplink_remove->nic, "eth2");
	assert_string_equal(kc_run.out, "Removed uplink eth2 from vSwitch vSwitch1.\n");

	assert_int_equal(KEEL("network", "portgroup", "add", "DMZ", "--vswitch", "vSwitch1",
			      "--vlan", "7", "--json"),
			 0);
	assert_int_equal(kc_req_at(6)->req_case, KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_ADD);
	assert_string_equal(kc_req_at(6)->portgroup_add->name, "DMZ");
	assert_string_equal(kc_req_at(6)->portgroup_add->vswitch, "vSwitch1");
	assert_int_equal(kc_req_at(6)->portgroup_add->vlan, 7);
	assert_string_equal(kc_run.out, "{\"ok\":true,\"code\":0}\n");

	assert_int_equal(KEEL("network", "portgroup", "remove", "DMZ"), 0);
	assert_string_equal(kc_req_at(7)->portgroup_remove->name, "DMZ");
	assert_int_equal(KEEL("network", "vswitch", "remove", "vSwitch1"), 0);
	assert_string_equal(kc_req_at(8)->vswitch_remove->name, "vSwitch1");
	assert_int_equal(kc_fake.undecodable, 0);
}

#define T(f) cmocka_unit_test_setup(f, kc_test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_datastore_commands),
	    T(test_host_info_and_log),
	    T(test_network_commands),
	};

	return cmocka_run_group_tests(tests, kc_group_setup, kc_group_teardown);
}
