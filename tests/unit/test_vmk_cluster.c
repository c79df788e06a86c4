/*
 * vmkernel in a cluster (kernel/core/cluster.h, kernel/vm/owner.c; docs/vmkernel.md "In a
 * cluster"), against a fake clusterd (tests/unit/vmk_cluster_helpers.h): a thread serving
 * <state>/clusterd.sock that records each ClusterVmRequest and answers per operation as the
 * test set it (a reply, no answer, or garbage).
 *
 * First the client alone: no clusterd (no socket, a stale socket) is standalone; a reply
 * with member false too; member replies, refusals, garbage and a clusterd that does not
 * answer. Then a real vmkernel (build/bin/vmkernel in a network namespace of its own, state
 * in a temp dir, a shared datastore) running real kguest VMs: standalone power-on is
 * unfenced; a refused register leaves no VM; a refused power-on starts nothing; an accepted
 * one starts the vmx with --fence-* and holds the lock at (uuid, H, E); power-off releases it
 * and tells clusterd, an isolation (fence) power-off does not tell it; a vmx that fences
 * itself (vmkernel frozen) is recorded as fenced; a clusterd that hangs fails the power-on
 * after 5 s. The VM tests skip without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ha/hb.h"
#include "ha/lock.h"
#include "kernel/core/cluster.h"
#include "kernel/vm/vm.h"
#include "lib/err.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/vmk_cluster_helpers.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

/* ---- the client alone -------------------------------------------------------------- */

static void test_client_no_clusterd(void **unused)
{
	struct vmk_cluster_vm cv;
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/none.sock", th_tmpdir());
	cv.member = true;
	assert_int_equal(
	    vmk_cluster_call(path, 500, VMK_CLUSTER_POWER_ON, "u", "n", NULL, NULL, &cv, &e), 0);
	assert_false(cv.member);

	/* a socket file nobody listens on any more: connection refused, standalone too */
	snprintf(path, sizeof(path), "%s/stale.sock", th_tmpdir());
	int fd = kb_unix_listen(path, 1);
	assert_true(fd >= 0);
	close(fd);
	cv.member = true;
	assert_int_equal(
	    vmk_cluster_call(path, 500, VMK_CLUSTER_POWER_ON, "u", "n", NULL, NULL, &cv, &e), 0);
	assert_false(cv.member);
	unlink(path);
}

static void test_client_replies(void **unused)
{
	struct vmk_cluster_vm cv;
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/client.sock", th_tmpdir());
	vc_fake_reset(NULL);
	assert_int_equal(vc_fake_start(path), 0);

	/* not a member: standalone */
	assert_int_equal(
	    vmk_cluster_call(path, 1000, VMK_CLUSTER_POWER_ON, "u1", "n1", NULL, NULL, &cv, &e), 0);
	assert_false(cv.member);

	/* a member's answer, and what the request carried */
	vc_fake_set(
	    VMK_CLUSTER_REGISTER,
	    (struct vc_answer){
		.member = true, .owner = 0x42, .epoch = 1, .host_id = 0x42, .owner_name = "esx1"});
	assert_int_equal(vmk_cluster_call(path, 1000, VMK_CLUSTER_REGISTER, "u2", "web",
					  "/ds/web/web.vmx", NULL, &cv, &e),
			 0);
	assert_true(cv.member);
	assert_int_equal(cv.owner, 0x42);
	assert_int_equal(cv.epoch, 1);
	assert_int_equal(cv.host_id, 0x42);
	assert_string_equal(cv.owner_name, "esx1");
	struct vc_req r = vc_fake_last(0);
	assert_int_equal(r.op, VMK_CLUSTER_REGISTER);
	assert_string_equal(r.uuid, "u2");
	assert_string_equal(r.name, "web");
	assert_string_equal(r.vmx_path, "/ds/web/web.vmx");

	/* a refusal: its code and message */
	vc_fake_set(VMK_CLUSTER_POWER_ON, (struct vc_answer){.code = KB_ESTATE,
							     .error = "VM is owned by host esx2",
							     .member = true});
	assert_int_equal(
	    vmk_cluster_call(path, 1000, VMK_CLUSTER_POWER_ON, "u2", "web", NULL, NULL, &cv, &e),
	    KB_ESTATE);
	assert_string_equal(e.msg, "VM is owned by host esx2");

	/* garbage */
	vc_fake_set(VMK_CLUSTER_POWER_OFF, (struct vc_answer){.mode = VC_GARBAGE});
	assert_int_equal(
	    vmk_cluster_call(path, 1000, VMK_CLUSTER_POWER_OFF, "u2", "web", NULL, NULL, &cv, &e),
	    KB_EPROTO);

	/* no answer: a timeout, never standalone */
	vc_fake_set(VMK_CLUSTER_SUSPEND, (struct vc_answer){.mode = VC_HANG});
	uint64_t t0 = kb_now_ns();
	assert_int_equal(
	    vmk_cluster_call(path, 300, VMK_CLUSTER_SUSPEND, "u2", "web", NULL, NULL, &cv, &e),
	    KB_ETIMEOUT);
	uint64_t ms = (kb_now_ns() - t0) / KB_NSEC_PER_MSEC;
	assert_true(ms >= 290 && ms < 2000);
	assert_non_null(strstr(e.msg, "clusterd did not answer"));
	vc_fake_stop();
	vc_fake_reset(NULL);
}

/* A re-adopted vmx's (H, E, lock) from its command line. */
static void test_owner_from_cmdline(void **unused)
{
	/* (adjacent literals: "\0" followed by a digit would be an octal escape) */
	static const char cmd[] = "/b/vmx\0--name\0web\0--fence-hb\0/ds/.keel-hb/00000000000000aa\0"
				  "--fence-host\0"
				  "170\0--fence-lock\0/ds/web/.lock\0--fence-vm\0u1\0"
				  "--fence-epoch\0"
				  "12\0";
	struct vmk_vm vm;

	memset(&vm, 0, sizeof(vm));
	vmk__owner_from_cmdline(&vm, cmd, sizeof(cmd) - 1);
	assert_true(vm.own.fenced);
	assert_int_equal(vm.own.host, 170);
	assert_int_equal(vm.own.epoch, 12);
	assert_string_equal(vm.own.lock, "/ds/web/.lock");
	assert_string_equal(vm.own.hb, "/ds/.keel-hb/00000000000000aa");

	static const char plain[] = "/b/vmx\0--name\0web\0--ctl\0/run/u.ctl\0";
	vmk__owner_from_cmdline(&vm, plain, sizeof(plain) - 1);
	assert_false(vm.own.fenced);
	assert_int_equal(vm.own.host, 0);
}

/* ---- a real vmkernel --------------------------------------------------------------- */

#define RQ(field, CASE, type, ...)                                        \
	({                                                                \
		Keel__Vmk__VmkRequest rq_ = KEEL__VMK__VMK_REQUEST__INIT; \
		type m_ = __VA_ARGS__;                                    \
		rq_.req_case = KEEL__VMK__VMK_REQUEST__REQ_##CASE;        \
		rq_.field = &m_;                                          \
		Keel__Vmk__VmkReply *rp_ = vc_rpc(&rq_);                  \
		assert_non_null(rp_);                                     \
		rp_;                                                      \
	})

static Keel__Vmk__VmkReply *vm_register(const char *path, bool from_cluster)
{
	return RQ(vm_register, VM_REGISTER, Keel__Vmk__VmkVmRegister,
		  {PROTOBUF_C_MESSAGE_INIT(&keel__vmk__vmk_vm_register__descriptor), (char *)path,
		   from_cluster});
}

static Keel__Vmk__VmkReply *vm_unregister(const char *name, bool from_cluster)
{
	return RQ(vm_unregister, VM_UNREGISTER, Keel__Vmk__VmkVmUnregister,
		  {PROTOBUF_C_MESSAGE_INIT(&keel__vmk__vmk_vm_unregister__descriptor), (char *)name,
		   from_cluster});
}

static void expect_ok(Keel__Vmk__VmkReply *rp)
{
	if (rp->code != 0)
		fail_msg("vmkernel: %d %s", rp->code, rp->error);
}

/* expect_ok, then frees the reply. */
static void ok(Keel__Vmk__VmkReply *rp)
{
	expect_ok(rp);
	vc_done(rp);
}

/* The VM's power state, "" when it is not registered. */
static void vm_state(const char *name, char *power, size_t size, char *event, size_t esize,
		     uint32_t *pid)
{
	Keel__Vmk__VmkReply *rp = vc_vm_get(name);

	snprintf(power, size, "%s", rp->code == 0 && rp->n_vms ? rp->vms[0]->power_state : "");
	if (event)
		snprintf(event, esize, "%s",
			 rp->code == 0 && rp->n_vms ? rp->vms[0]->last_event : "");
	if (pid)
		*pid = rp->code == 0 && rp->n_vms ? rp->vms[0]->pid : 0;
	vc_done(rp);
}

/* The vmx's command line, arguments joined by spaces. */
static void cmdline_of(uint32_t pid, char *out, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, out, size - 1);
	close(fd);
	assert_true(n > 0);
	for (ssize_t i = 0; i < n; i++)
		if (out[i] == '\0')
			out[i] = ' ';
	out[n] = '\0';
}

static int vmk_setup(void **unused)
{
	if (vc_vmk_setup("vmkcl") < 0)
		return -1;
	/* the heartbeat record the vmx will fence on */
	char hb[HA_HB_PATH_MAX];
	struct ha_hb_record rec;
	ha_hb_path(vc_vmk.shared, vc_vmk.host_id, hb);
	for (int i = 0; i < 100 && ha_hb_read(hb, &rec, NULL) < 0; i++)
		kb_sleep_ns(20 * KB_NSEC_PER_MSEC);
	return 0;
}

static int vmk_teardown(void **unused)
{
	vc_vmk_teardown();
	return 0;
}

static void lock_path(const char *vm, char *out, size_t size)
{
	snprintf(out, size, "%s/%s/.lock", vc_vmk.shared, vm);
}

/* No clusterd: exactly as before, no lock, no fencing. */
static void test_vmk_standalone(void **unused)
{
	char power[32], cmd[8192], lk[PATH_MAX];
	uint32_t pid;

	NEED_KVM();
	ok(vc_vm_create("solo", "shared1"));
	ok(vc_vm_create("solo2", "")); /* kept for later: created standalone */
	ok(vc_vm_power_on("solo", false));
	vm_state("solo", power, sizeof(power), NULL, 0, &pid);
	assert_string_equal(power, "poweredOn");
	cmdline_of(pid, cmd, sizeof(cmd));
	assert_null(strstr(cmd, "--fence"));
	lock_path("solo", lk, sizeof(lk));
	assert_int_not_equal(access(lk, F_OK), 0);
	Keel__Vmk__VmkReply *rp = vc_vm_power_off("solo", false);
	expect_ok(rp);
	vc_done(rp);
}

/* A member whose clusterd refuses the register: the VM is not left registered. */
static void test_vmk_register_refused(void **unused)
{
	char power[32], dir[PATH_MAX], vmx[PATH_MAX];

	vc_fake_reset(NULL);
	assert_int_equal(vc_fake_start(vc_vmk.cl_sock), 0);
	vc_fake_set(VMK_CLUSTER_REGISTER,
		    (struct vc_answer){.code = KB_EEXIST,
				       .member = true,
				       .error = "VM path is registered to host esx2"});
	Keel__Vmk__VmkReply *rp = vc_vm_create("web", "shared1");
	assert_int_equal(rp->code, KB_EEXIST);
	assert_has(rp->error, "VM path is registered to host esx2");
	vc_done(rp);
	vm_state("web", power, sizeof(power), NULL, 0, NULL);
	assert_string_equal(power, "");
	snprintf(dir, sizeof(dir), "%s/web", vc_vmk.shared);
	assert_int_not_equal(access(dir, F_OK), 0);
	struct vc_req r = vc_fake_last(0);
	assert_int_equal(r.op, VMK_CLUSTER_REGISTER);
	assert_string_equal(r.name, "web");
	assert_non_null(strstr(r.vmx_path, "/shared/web/web.vmx"));
	assert_true(r.vmx_path[0] == '/');

	/* register of an existing .vmx: refused, not registered; its files stay */
	snprintf(vmx, sizeof(vmx), "%s/datastore1/solo2/solo2.vmx", vc_vmk.state);
	vc_fake_set(VMK_CLUSTER_UNREGISTER, (struct vc_answer){.member = true});
	rp = vm_unregister("solo2", false);
	expect_ok(rp);
	vc_done(rp);
	assert_int_equal(vc_fake_last(0).op, VMK_CLUSTER_UNREGISTER);
	rp = vm_register(vmx, false);
	assert_int_equal(rp->code, KB_EEXIST);
	vc_done(rp);
	vm_state("solo2", power, sizeof(power), NULL, 0, NULL);
	assert_string_equal(power, "");
	assert_int_equal(access(vmx, F_OK), 0);

	/* asked by the cluster: registered, and nothing is sent back */
	int regs = vc_fake_count(VMK_CLUSTER_REGISTER),
	    unregs = vc_fake_count(VMK_CLUSTER_UNREGISTER);
	rp = vm_register(vmx, true);
	expect_ok(rp);
	vc_done(rp);
	rp = vm_unregister("solo2", true);
	expect_ok(rp);
	vc_done(rp);
	assert_int_equal(vc_fake_count(VMK_CLUSTER_REGISTER), regs);
	assert_int_equal(vc_fake_count(VMK_CLUSTER_UNREGISTER), unregs);
}

static void accept_register(void)
{
	vc_fake_set(VMK_CLUSTER_REGISTER, (struct vc_answer){.member = true,
							     .owner = vc_vmk.host_id,
							     .epoch = 1,
							     .host_id = vc_vmk.host_id});
}

static void accept_power_on(uint64_t epoch)
{
	vc_fake_set(VMK_CLUSTER_POWER_ON, (struct vc_answer){.member = true,
							     .owner = vc_vmk.host_id,
							     .epoch = epoch,
							     .host_id = vc_vmk.host_id});
}

/* Refused power-on: nothing starts. */
static void test_vmk_power_on_refused(void **unused)
{
	char power[32], lk[PATH_MAX];

	accept_register();
	Keel__Vmk__VmkReply *rp = vc_vm_create("web", "shared1");
	expect_ok(rp);
	vc_done(rp);
	vc_fake_set(VMK_CLUSTER_POWER_ON, (struct vc_answer){.code = KB_ESTATE,
							     .member = true,
							     .error = "VM is owned by host esx2"});
	rp = vc_vm_power_on("web", false);
	assert_int_equal(rp->code, KB_ESTATE);
	assert_has(rp->error, "VM is owned by host esx2");
	vc_done(rp);
	vm_state("web", power, sizeof(power), NULL, 0, NULL);
	assert_string_equal(power, "poweredOff");
	lock_path("web", lk, sizeof(lk));
	assert_int_not_equal(access(lk, F_OK), 0);
}

/* Accepted on a shared datastore: fenced vmx, lock held at (uuid, H, E); power-off
 * releases it and tells clusterd; an isolation power-off does not tell it. */
static void test_vmk_power_on_fenced(void **unused)
{
	char power[32], event[256], cmd[8192], want[PATH_MAX + 64], lk[PATH_MAX],
	    hb[HA_HB_PATH_MAX];
	struct ha_lock lock;
	uint32_t pid;

	NEED_KVM();
	accept_power_on(7);
	Keel__Vmk__VmkReply *rp = vc_vm_power_on("web", false);
	expect_ok(rp);
	char uuid[64];
	snprintf(uuid, sizeof(uuid), "%s", rp->vms[0]->uuid);
	vc_done(rp);
	assert_string_equal(vc_fake_last(0).uuid, uuid);
	vm_state("web", power, sizeof(power), event, sizeof(event), &pid);
	assert_string_equal(power, "poweredOn");
	assert_has(event, "epoch 7");
	cmdline_of(pid, cmd, sizeof(cmd));
	lock_path("web", lk, sizeof(lk));
	ha_hb_path(vc_vmk.shared, vc_vmk.host_id, hb);
	snprintf(want, sizeof(want), "--fence-hb %s ", hb);
	assert_has(cmd, want);
	snprintf(want, sizeof(want), "--fence-host %" PRIu64 " ", vc_vmk.host_id);
	assert_has(cmd, want);
	snprintf(want, sizeof(want), "--fence-lock %s ", lk);
	assert_has(cmd, want);
	snprintf(want, sizeof(want), "--fence-vm %s ", uuid);
	assert_has(cmd, want);
	assert_has(cmd, "--fence-epoch 7");
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_string_equal(lock.vm_uuid, uuid);
	assert_int_equal(lock.host_id, vc_vmk.host_id);
	assert_int_equal(lock.epoch, 7);
	assert_int_equal(lock.state, HA_LOCK_HELD);

	/* operator power-off: released at 7, clusterd told */
	int offs = vc_fake_count(VMK_CLUSTER_POWER_OFF);
	rp = vc_vm_power_off("web", false);
	expect_ok(rp);
	vc_done(rp);
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.epoch, 7);
	assert_int_equal(lock.state, HA_LOCK_RELEASED);
	assert_int_equal(vc_fake_count(VMK_CLUSTER_POWER_OFF), offs + 1);
	assert_int_equal(vc_fake_last(0).op, VMK_CLUSTER_POWER_OFF);

	/* isolation power-off (fence): released, clusterd not told */
	accept_power_on(8);
	ok(vc_vm_power_on("web", false));
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.epoch, 8);
	assert_int_equal(lock.state, HA_LOCK_HELD);
	rp = vc_vm_power_off("web", true);
	expect_ok(rp);
	vc_done(rp);
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.epoch, 8);
	assert_int_equal(lock.state, HA_LOCK_RELEASED);
	assert_int_equal(vc_fake_count(VMK_CLUSTER_POWER_OFF), offs + 1);
	vm_state("web", power, sizeof(power), event, sizeof(event), NULL);
	assert_has(event, "isolation");

	/* suspend: released, clusterd told; resume takes it again at the new epoch */
	accept_power_on(9);
	ok(vc_vm_power_on("web", false));
	vc_fake_set(VMK_CLUSTER_SUSPEND, (struct vc_answer){.member = true});
	ok(RQ(vm_suspend, VM_SUSPEND, Keel__Vmk__VmkVmSuspend,
	      {PROTOBUF_C_MESSAGE_INIT(&keel__vmk__vmk_vm_suspend__descriptor), "web"}));
	assert_int_equal(vc_fake_last(0).op, VMK_CLUSTER_SUSPEND);
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.epoch, 9);
	assert_int_equal(lock.state, HA_LOCK_RELEASED);
	ok(RQ(vm_resume, VM_RESUME, Keel__Vmk__VmkVmResume,
	      {PROTOBUF_C_MESSAGE_INIT(&keel__vmk__vmk_vm_resume__descriptor), "web"}));
	assert_int_equal(vc_fake_last(0).op, VMK_CLUSTER_POWER_ON);
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.epoch, 9);
	assert_int_equal(lock.state, HA_LOCK_HELD);
	ok(vc_vm_power_off("web", true));
}

/* A local datastore in a cluster: registry only, no lock, no fencing. */
static void test_vmk_local_datastore(void **unused)
{
	char power[32], event[256], cmd[8192];
	uint32_t pid;

	NEED_KVM();
	accept_register();
	accept_power_on(3);
	Keel__Vmk__VmkReply *rp = vc_vm_create("loc", "datastore1");
	expect_ok(rp);
	vc_done(rp);
	ok(vc_vm_power_on("loc", false));
	vm_state("loc", power, sizeof(power), event, sizeof(event), &pid);
	assert_string_equal(power, "poweredOn");
	assert_has(event, "not fenced");
	cmdline_of(pid, cmd, sizeof(cmd));
	assert_null(strstr(cmd, "--fence"));
	ok(vc_vm_power_off("loc", false));
}

/* vmkernel frozen: its heartbeat stops, the vmx fences itself (status 3); vmkernel records
 * it and leaves the lock alone. */
static void test_vmk_fenced_exit(void **unused)
{
	char power[32], event[256], lk[PATH_MAX];
	struct ha_lock lock;

	NEED_KVM();
	accept_power_on(14);
	Keel__Vmk__VmkReply *rp = vc_vm_power_on("web", false);
	expect_ok(rp);
	vc_done(rp);
	kill(vc_vmk.pid, SIGSTOP);
	kb_sleep_ns(1200 * KB_NSEC_PER_MSEC);
	kill(vc_vmk.pid, SIGCONT);
	for (int i = 0; i < 100; i++) {
		vm_state("web", power, sizeof(power), event, sizeof(event), NULL);
		if (strcmp(power, "poweredOff") == 0)
			break;
		kb_sleep_ns(50 * KB_NSEC_PER_MSEC);
	}
	assert_string_equal(power, "poweredOff");
	assert_has(event, "fenced: lost its lease or its lock moved");
	lock_path("web", lk, sizeof(lk));
	kb_sleep_ns(100 * KB_NSEC_PER_MSEC);
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.epoch, 14);
	assert_int_equal(lock.state, HA_LOCK_HELD);
}

#define OTHER 0x999ull

static volatile bool beating;

static void *beat_main(void *arg)
{
	struct ha_hb_writer *w = arg;
	struct kb_errmsg e = {{0}};

	while (beating) {
		ha_hb_writer_beat(w, &e);
		kb_sleep_ns(50 * KB_NSEC_PER_MSEC);
	}
	return NULL;
}

/* Writes (uuid, OTHER, epoch, held) over the lock at path. */
static void other_holds(const char *path, const char *uuid, uint64_t epoch)
{
	struct ha_lock cur,
	    lk = {.host_id = OTHER, .epoch = epoch, .state = HA_LOCK_HELD, .seq = 1};

	if (ha_lock_read(path, &cur, NULL) == 0)
		lk.seq = cur.seq + 1;
	snprintf(lk.vm_uuid, sizeof(lk.vm_uuid), "%s", uuid);
	assert_int_equal(ha_lock_write(path, &lk, 0, NULL), 0);
}

/* Another host holds the lock at a lower epoch: taken once its lease is observed expired
 * (its record does not move for the lease time and a margin), refused while it moves. */
static void test_vmk_lock_holder(void **unused)
{
	char lk[PATH_MAX], uuid[64];
	struct ha_hb_writer w;
	struct kb_errmsg e = {{0}};
	struct ha_lock lock;
	pthread_t th;

	NEED_KVM();
	Keel__Vmk__VmkReply *rp = vc_vm_get("web");
	expect_ok(rp);
	snprintf(uuid, sizeof(uuid), "%s", rp->vms[0]->uuid);
	vc_done(rp);
	lock_path("web", lk, sizeof(lk));

	/* a stopped holder: one beat, then nothing */
	assert_int_equal(ha_hb_writer_open(&w, vc_vmk.shared, OTHER, 0, &e), 0);
	ha_hb_writer_close(&w);
	other_holds(lk, uuid, 10);
	accept_power_on(11);
	uint64_t t0 = kb_now_ns();
	ok(vc_vm_power_on("web", false));
	uint64_t ms = (kb_now_ns() - t0) / KB_NSEC_PER_MSEC;
	assert_true(ms >= HA_LEASE_MS);
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.host_id, vc_vmk.host_id);
	assert_int_equal(lock.epoch, 11);
	assert_int_equal(lock.state, HA_LOCK_HELD);
	ok(vc_vm_power_off("web", true));

	/* a live holder: refused, and nothing starts */
	assert_int_equal(ha_hb_writer_open(&w, vc_vmk.shared, OTHER, 0, &e), 0);
	beating = true;
	assert_int_equal(pthread_create(&th, NULL, beat_main, &w), 0);
	other_holds(lk, uuid, 12);
	accept_power_on(13);
	rp = vc_vm_power_on("web", false);
	beating = false;
	pthread_join(th, NULL);
	ha_hb_writer_close(&w);
	assert_int_equal(rp->code, KB_ESTATE);
	assert_has(rp->error, "lock");
	vc_done(rp);
	char power[32];
	vm_state("web", power, sizeof(power), NULL, 0, NULL);
	assert_string_equal(power, "poweredOff");
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.host_id, OTHER);
	assert_int_equal(lock.epoch, 12);
}

/* A vmkernel restarted under a running fenced vmx re-adopts it and recovers (H, E) from
 * its command line: the next power-off releases the lock at E. The restart must beat the
 * vmx's self-fence (600 ms without a heartbeat). */
static void test_vmk_readopt(void **unused)
{
	char power[32], event[256], lk[PATH_MAX];
	struct ha_lock lock;

	NEED_KVM();
	accept_power_on(15);
	ok(vc_vm_power_on("web", false));
	kill(vc_vmk.pid, SIGKILL);
	waitpid(vc_vmk.pid, NULL, 0);
	assert_int_equal(vc_vmk_start(), 0);
	vm_state("web", power, sizeof(power), event, sizeof(event), NULL);
	assert_string_equal(power, "poweredOn");
	assert_has(event, "re-adopted");
	int offs = vc_fake_count(VMK_CLUSTER_POWER_OFF);
	ok(vc_vm_power_off("web", false));
	lock_path("web", lk, sizeof(lk));
	assert_int_equal(ha_lock_read(lk, &lock, NULL), 0);
	assert_int_equal(lock.host_id, vc_vmk.host_id);
	assert_int_equal(lock.epoch, 15);
	assert_int_equal(lock.state, HA_LOCK_RELEASED);
	assert_int_equal(vc_fake_count(VMK_CLUSTER_POWER_OFF), offs + 1);
}

/* clusterd does not answer: the power-on fails after 5 s, and nothing starts. */
static void test_vmk_clusterd_hangs(void **unused)
{
	char power[32];

	vc_fake_set(VMK_CLUSTER_POWER_ON, (struct vc_answer){.mode = VC_HANG});
	uint64_t t0 = kb_now_ns();
	Keel__Vmk__VmkReply *rp = vc_vm_power_on("web", false);
	uint64_t ms = (kb_now_ns() - t0) / KB_NSEC_PER_MSEC;
	assert_int_equal(rp->code, KB_ETIMEOUT);
	assert_has(rp->error, "clusterd did not answer within 5 s");
	vc_done(rp);
	assert_true(ms >= 4900 && ms < 8000);
	vm_state("web", power, sizeof(power), NULL, 0, NULL);
	assert_string_equal(power, "poweredOff");
}

int main(void)
{
	const struct CMUnitTest client[] = {
	    cmocka_unit_test(test_client_no_clusterd),
	    cmocka_unit_test(test_client_replies),
	    cmocka_unit_test(test_owner_from_cmdline),
	};
	const struct CMUnitTest vmk[] = {
	    cmocka_unit_test(test_vmk_standalone),
	    cmocka_unit_test(test_vmk_register_refused),
	    cmocka_unit_test(test_vmk_power_on_refused),
	    cmocka_unit_test(test_vmk_power_on_fenced),
	    cmocka_unit_test(test_vmk_local_datastore),
	    cmocka_unit_test(test_vmk_lock_holder),
	    cmocka_unit_test(test_vmk_fenced_exit),
	    cmocka_unit_test(test_vmk_readopt),
	    cmocka_unit_test(test_vmk_clusterd_hangs),
	};
	int rv = cmocka_run_group_tests_name("vmk_cluster client", client, NULL, NULL);
	return rv |
	       cmocka_run_group_tests_name("vmk_cluster vmkernel", vmk, vmk_setup, vmk_teardown);
}
