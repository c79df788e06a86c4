/*
 * keel, the operator's CLI: the vm commands and the console (tail, follow, stdin
 * forwarding, raw tty and the escape).
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

/* ---- vm ------------------------------------------------------------------------------- */

static void test_vm_create_maps_every_flag(void **state)
{
	char kernel[600], cwd[512];
	struct kc_canned_vm v;

	kc_canned_vm(&v, "web01", "poweredOff", 512);
	kc_reply_one_vm(KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE, &v);
	assert_int_equal(KEEL("vm", "create", "web01", "--memory", "2G", "--vcpus", "4", "--kind",
			      "linux", "--kernel", "bzImage", "--initrd", "/boot/initrd.img",
			      "--cmdline", "console=ttyS0 quiet", "--disk", "1024", "--disk",
			      "64:ro", "--nic", "VM Network", "--nic=lan:52:54:00:AB:cd:01",
			      "--datastore", "ds2", "--cpu-shares", "2000", "--cpu-reservation",
			      "1000", "--cpu-limit", "3000", "--mem-reservation", "256",
			      "--mem-limit", "1G"),
			 0);
	assert_int_equal(kc_fake.nreqs, 1);
	const Keel__Vmk__VmkRequest *rq = kc_req_at(0);
	assert_int_equal(rq->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE);
	const Keel__Vmk__VmSpec *s = rq->vm_create->spec;
	assert_non_null(s);
	assert_string_equal(s->name, "web01");
	assert_int_equal(s->memsize_mib, 2048);
	assert_int_equal(s->numvcpus, 4);
	assert_string_equal(s->guest_kind, "linux");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(kernel, sizeof(kernel), "%s/bzImage", cwd);
	assert_string_equal(s->kernel, kernel);
	assert_string_equal(s->initrd, "/boot/initrd.img");
	assert_string_equal(s->cmdline, "console=ttyS0 quiet");
	assert_int_equal(s->n_disks, 2);
	assert_int_equal(s->disks[0]->size_mib, 1024);
	assert_false(s->disks[0]->read_only);
	assert_int_equal(s->disks[1]->size_mib, 64);
	assert_true(s->disks[1]->read_only);
	assert_int_equal(s->n_nics, 2);
	assert_string_equal(s->nics[0]->portgroup, "VM Network");
	assert_string_equal(s->nics[0]->mac, "");
	assert_string_equal(s->nics[1]->portgroup, "lan");
	assert_string_equal(s->nics[1]->mac, "52:54:00:AB:cd:01");
	assert_string_equal(s->datastore, "ds2");
	assert_non_null(s->resources);
	assert_string_equal(s->resources->cpu_shares, "2000");
	assert_int_equal(s->resources->cpu_reservation_mhz, 1000);
	assert_int_equal(s->resources->cpu_limit_mhz, 3000);
	assert_int_equal(s->resources->mem_reservation_mib, 256);
	assert_int_equal(s->resources->mem_limit_mib, 1024);
	assert_has(kc_run.out, "Created VM web01 (uuid 564d1c2a-0000-4000-8000-000000000001)");
	assert_has(kc_run.out, "/data/ds1/web01/web01.vmx");
}

static void test_vm_create_defaults_send_nothing_extra(void **state)
{
	assert_int_equal(KEEL("vm", "create", "tiny"), 0);
	const Keel__Vmk__VmSpec *s = kc_req_at(0)->vm_create->spec;
	assert_string_equal(s->name, "tiny");
	assert_int_equal(s->memsize_mib, 0);
	assert_int_equal(s->numvcpus, 0);
	assert_string_equal(s->guest_kind, "");
	assert_int_equal(s->n_disks, 0);
	assert_int_equal(s->n_nics, 0);
	assert_null(s->resources);
	assert_string_equal(s->datastore, "");
	/* a reply without the VM still reads well */
	assert_string_equal(kc_run.out, "Created VM tiny.\n");

	/* one resource option brings the resources message, only that field set */
	assert_int_equal(KEEL("vm", "create", "t2", "--cpu-shares", "low"), 0);
	s = kc_req_at(1)->vm_create->spec;
	assert_non_null(s->resources);
	assert_string_equal(s->resources->cpu_shares, "low");
	assert_int_equal(s->resources->mem_limit_mib, 0);
}

static void test_vm_list_table(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct kc_canned_vm a, b;
	Keel__Vmk__VmInfo *vms[2];

	kc_canned_vm(&a, "web01", "poweredOn", 512);
	kc_canned_vm(&b, "database-server", "poweredOff", 2048);
	vms[0] = &a.info;
	vms[1] = &b.info;
	rp.vms = vms;
	rp.n_vms = 2;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_LIST, &rp);
	assert_int_equal(KEEL("vm", "list"), 0);
	assert_int_equal(kc_req_at(0)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_LIST);
	assert_string_equal(
	    kc_run.out, "NAME             STATE         MEMORY  VCPUS  DATASTORE   PID  UPTIME\n"
			"web01            powered on   512 MiB      2  ds1        4242  1h 02m\n"
			"database-server  powered off    2 GiB      2  ds1           -       -\n");

	/* an empty list is the header only */
	kc_fake_reset();
	assert_int_equal(KEEL("vm", "list"), 0);
	assert_string_equal(kc_run.out, "NAME  STATE  MEMORY  VCPUS  DATASTORE  PID  UPTIME\n");
}

static void test_vm_list_json_escapes(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct kc_canned_vm a;
	Keel__Vmk__VmInfo *vms[1] = {&a.info};

	kc_canned_vm(&a, "we\"b\\01\n\x01\xc3\xa9\x1b[31m", "poweredOn", 512);
	rp.vms = vms;
	rp.n_vms = 1;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_LIST, &rp);
	assert_int_equal(KEEL("vm", "list", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "{\"ok\":true,\"code\":0,\"vms\":[{\"name\":");
	assert_has(kc_run.out, "\"name\":\"we\\\"b\\\\01\\n\\u0001\xc3\xa9\\u001b[31m\"");
	assert_has(kc_run.out, "\"power_state\":\"poweredOn\"");
	assert_has(kc_run.out, "\"pid\":4242");
	assert_has(kc_run.out, "\"memsize_mib\":512");
	assert_has(kc_run.out,
		   "\"disks\":[{\"file\":\"disk0.img\",\"size_mib\":1024,\"read_only\":false}]");
	assert_has(kc_run.out, "\"mac\":\"52:54:00:12:34:56\"");
	assert_has(kc_run.out, "\"cpu_shares\":\"high\"");
	assert_hasnt(kc_run.out, "\"datastores\"");

	/* the table shows control characters as '?' */
	assert_int_equal(KEEL("vm", "list"), 0);
	assert_has(kc_run.out, "we\"b\\01??\xc3\xa9?[31m");
	assert_hasnt(kc_run.out, "\x1b");

	/* an empty list is still a list */
	kc_fake_reset();
	assert_int_equal(KEEL("vm", "list", "--json"), 0);
	assert_string_equal(kc_run.out, "{\"ok\":true,\"code\":0,\"vms\":[]}\n");
}

static void test_vm_info(void **state)
{
	struct kc_canned_vm v;

	kc_canned_vm(&v, "web01", "poweredOn", 512);
	v.info.last_event = "powered on by keel";
	kc_reply_one_vm(KEEL__VMK__VMK_REQUEST__REQ_VM_GET, &v);
	assert_int_equal(KEEL("vm", "info", "web01"), 0);
	assert_string_equal(kc_req_at(0)->vm_get->vm, "web01");
	assert_has(kc_run.out, "Name:              web01\n");
	assert_has(kc_run.out, "State:             powered on\n");
	assert_has(kc_run.out, "Last event:        powered on by keel\n");
	assert_has(kc_run.out, "vmx PID:           4242\n");
	assert_has(kc_run.out, "Uptime:            1h 02m\n");
	assert_has(kc_run.out, "Memory:            512 MiB\n");
	assert_has(kc_run.out, "Disks:             disk0.img  1 GiB\n");
	assert_has(kc_run.out, "NICs:              VM Network  52:54:00:12:34:56\n");
	assert_has(kc_run.out, "CPU shares:        high\n");
	assert_has(kc_run.out, "CPU reservation:   500 MHz\n");
	assert_has(kc_run.out, "CPU limit:         unlimited\n");

	assert_int_equal(KEEL("vm", "info", "web01", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"vmx_path\":\"/data/ds1/web01/web01.vmx\"");
	assert_has(kc_run.out, "\"powered_on_ms\":3723000");
}

static void test_vm_power_ops_map_to_requests(void **state)
{
	static const struct {
		const char *verb;
		Keel__Vmk__VmkRequest__ReqCase c;
		const char *out;
	} ops[] = {
	    {"power-on", KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON,
	     "Powered on VM web01 (vmx pid 4242).\n"},
	    {"power-off", KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF, "Powered off VM web01.\n"},
	    {"reset", KEEL__VMK__VMK_REQUEST__REQ_VM_RESET, "Reset VM web01.\n"},
	    {"suspend", KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND, "Suspended VM web01.\n"},
	    {"resume", KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME, "Resumed VM web01.\n"},
	    {"destroy", KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY, "Destroyed VM web01.\n"},
	    {"unregister", KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER, "Unregistered VM web01.\n"},
	};
	struct kc_canned_vm v;

	kc_canned_vm(&v, "web01", "poweredOn", 512);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		kc_reply_one_vm(ops[i].c, &v);
		assert_int_equal(KEEL("vm", ops[i].verb, "web01"), 0);
		const Keel__Vmk__VmkRequest *rq = kc_req_at((int)i);
		assert_int_equal(rq->req_case, ops[i].c);
		/* every one of these messages is {string vm = 1;} */
		assert_string_equal(rq->vm_power_on->vm, "web01");
		assert_string_equal(kc_run.out, ops[i].out);
	}
	assert_int_equal(KEEL("vm", "suspend", "web01", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"vms\":[{\"name\":\"web01\"");
}

static void test_vm_register_sends_absolute_path(void **state)
{
	char cwd[512], want[700];

	assert_int_equal(KEEL("vm", "register", "vms/web01/web01.vmx"), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/vms/web01/web01.vmx", cwd);
	assert_int_equal(kc_req_at(0)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER);
	assert_string_equal(kc_req_at(0)->vm_register->vmx_path, want);
	assert_int_equal(KEEL("vm", "register", "/data/x.vmx"), 0);
	assert_string_equal(kc_req_at(1)->vm_register->vmx_path, "/data/x.vmx");
}

static void test_vm_reconfigure_sends_only_changes(void **state)
{
	assert_int_equal(KEEL("vm", "reconfigure", "web01", "--memory", "1024", "--mem-limit",
			      "768", "--nic", "lan"),
			 0);
	const Keel__Vmk__VmkRequest *rq = kc_req_at(0);
	assert_int_equal(rq->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_RECONFIGURE);
	assert_string_equal(rq->vm_reconfigure->vm, "web01");
	const Keel__Vmk__VmSpec *s = rq->vm_reconfigure->spec;
	assert_int_equal(s->memsize_mib, 1024);
	assert_int_equal(s->numvcpus, 0);
	assert_string_equal(s->name, "");
	assert_int_equal(s->n_disks, 0);
	assert_int_equal(s->n_nics, 1);
	assert_non_null(s->resources);
	assert_int_equal(s->resources->mem_limit_mib, 768);
	assert_string_equal(s->resources->cpu_shares, "");
	assert_string_equal(kc_run.out, "Reconfigured VM web01.\n");
}

/* ---- console -------------------------------------------------------------------------- */

static void set_console_reply(const char *tail, bool with_socket)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct kc_canned_vm v;
	Keel__Vmk__VmInfo *vms[1] = {&v.info};

	kc_canned_vm(&v, "web01", "poweredOn", 512);
	if (!with_socket)
		v.info.console_socket = "";
	rp.vms = vms;
	rp.n_vms = 1;
	rp.console_tail.data = (uint8_t *)tail;
	rp.console_tail.len = strlen(tail);
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE, &rp);
	kc_canned_vm(&v, "web01", "poweredOn", 512);
	kc_reply_one_vm(KEEL__VMK__VMK_REQUEST__REQ_VM_GET, &v);
}

static void test_console_tail_and_no_follow(void **state)
{
	set_console_reply("counter 41\r\ncounter 42\r\n", true);
	assert_int_equal(KEEL("vm", "console", "web01", "--no-follow", "--tail", "100"), 0);
	assert_string_equal(kc_run.out, "counter 41\r\ncounter 42\r\n");
	assert_int_equal(kc_fake.nreqs, 1);
	assert_int_equal(kc_req_at(0)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE);
	assert_string_equal(kc_req_at(0)->vm_console->vm, "web01");
	assert_int_equal(kc_req_at(0)->vm_console->tail_bytes, 100);

	/* a tail that filled --tail was cut inside a line: that part line is left out */
	set_console_reply("er 41\r\ncounter 42\r\n", true);
	assert_int_equal(KEEL("vm", "console", "web01", "--no-follow", "--tail", "19"), 0);
	assert_string_equal(kc_run.out, "counter 42\r\n");

	/* --json: the tail as a string, invalid UTF-8 replaced, nothing followed */
	set_console_reply("tick\n\xff\xfe", true);
	assert_int_equal(KEEL("vm", "console", "web01", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"console_tail\":\"tick\\n\\ufffd\\ufffd\"");
	assert_int_equal(kc_fake.con_in_len, 0);
}

static void test_console_follows_and_forwards_stdin(void **state)
{
	struct kc_run_opts o = {.in = "ping\n"};

	set_console_reply("counter 42\r\n", true);
	assert_int_equal(kc_run_keel_opts(&o, (const char *const[]){"vm", "console", "web01",
								    "--follow-for", "10", NULL}),
			 0);
	/* the console closed after its echo: keel ended there, not at --follow-for */
	assert_true(kc_run.ms < 5000);
	assert_true(strncmp(kc_run.out, "counter 42\r\n", 12) == 0);
	assert_has(kc_run.out, "guest says hi\r\n");
	assert_has(kc_run.out, "echo:ping\n");
	assert_int_equal(kc_fake.con_in_len, 5);
	assert_memory_equal(kc_fake.con_in, "ping\n", 5);

	/* no socket in the console reply: keel asks vm_get for it */
	kc_fake_reset();
	set_console_reply("", false);
	assert_int_equal(
	    kc_run_keel_opts(&o, (const char *const[]){"vm", "console", "web01", NULL}), 0);
	assert_int_equal(kc_fake.nreqs, 2);
	assert_int_equal(kc_req_at(1)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_GET);
	assert_has(kc_run.out, "echo:ping\n");
}

static void test_console_of_a_powered_off_vm(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct kc_canned_vm v;
	Keel__Vmk__VmInfo *vms[1] = {&v.info};

	kc_canned_vm(&v, "web01", "poweredOff", 512);
	rp.vms = vms;
	rp.n_vms = 1;
	rp.console_tail.data = (uint8_t *)"last words\n";
	rp.console_tail.len = 11;
	kc_fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE, &rp);
	assert_int_equal(KEEL("vm", "console", "web01"), 1);
	assert_string_equal(kc_run.out, "last words\n");
	assert_has(kc_run.err, "keel: VM web01 is powered off: it has no live console");
	assert_int_equal(kc_fake.con_in_len, 0);
	assert_int_equal(KEEL("vm", "console", "web01", "--no-follow"), 0);
}

static void test_console_follow_for_stops(void **state)
{
	set_console_reply("", true);
	pthread_mutex_lock(&kc_fake.mu);
	kc_fake.con_close_after_echo = false;
	pthread_mutex_unlock(&kc_fake.mu);
	assert_int_equal(KEEL("vm", "console", "web01", "--follow-for", "0.3"), 0);
	assert_true(kc_run.ms >= 300);
	assert_true(kc_run.ms < 5000);
	assert_string_equal(kc_run.out, "guest says hi\r\n");
}

static void test_console_tty_raw_and_escape(void **state)
{
	struct kc_run_opts o = {0};
	char err_path[600], buf[4096];
	int master = posix_openpt(O_RDWR | O_NOCTTY);

	if (master < 0) {
		print_message("SKIP: no pseudo-terminals here (%s)\n", strerror(errno));
		skip();
	}
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	o.tty = ptsname(master);
	snprintf(err_path, sizeof(err_path), "%s/stderr", th_tmpdir());
	set_console_reply("", true);
	pthread_mutex_lock(&kc_fake.mu);
	kc_fake.con_close_after_echo = false;
	pthread_mutex_unlock(&kc_fake.mu);

	/* type once keel says it is connected (the terminal is raw by then), then Ctrl-] */
	pid_t helper = fork();
	if (helper == 0) {
		/* only async-signal-safe calls: the parent has threads */
		for (int i = 0; i < 2000; i++) {
			int fd = open(err_path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

			if (fd >= 0)
				close(fd);
			buf[n > 0 ? n : 0] = '\0';
			if (strstr(buf, "Press Ctrl-] to leave"))
				break;
			usleep(5000);
		}
		(void)!write(master, "ab\003c\035zz", 7);
		_exit(0);
	}
	assert_int_equal(kc_run_keel_opts(&o, (const char *const[]){"vm", "console", "web01",
								    "--follow-for", "15", NULL}),
			 0);
	waitpid(helper, NULL, 0);
	close(master);
	assert_true(kc_run.ms < 10000); /* left on Ctrl-], not at --follow-for */
	assert_has(kc_run.err, "Connected to the console of web01");
	assert_has(kc_run.err, "Left the console of web01");
	/* raw mode: Ctrl-C reached the guest as a byte, nothing after Ctrl-] did */
	assert_int_equal(kc_fake.con_in_len, 4);
	assert_memory_equal(kc_fake.con_in, "ab\003c", 4);
}

#define T(f) cmocka_unit_test_setup(f, kc_test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_vm_create_maps_every_flag),
	    T(test_vm_create_defaults_send_nothing_extra),
	    T(test_vm_list_table),
	    T(test_vm_list_json_escapes),
	    T(test_vm_info),
	    T(test_vm_power_ops_map_to_requests),
	    T(test_vm_register_sends_absolute_path),
	    T(test_vm_reconfigure_sends_only_changes),
	    T(test_console_tail_and_no_follow),
	    T(test_console_follows_and_forwards_stdin),
	    T(test_console_of_a_powered_off_vm),
	    T(test_console_follow_for_stops),
	    T(test_console_tty_raw_and_escape),
	};

	return cmocka_run_group_tests(tests, kc_group_setup, kc_group_teardown);
}
