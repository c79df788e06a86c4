/*
 * vmkernel's power-on that the cluster places on another host (docs/drs.md, "Initial
 * placement"; kernel/vm/owner.c), against a fake clusterd that answers OP_POWER_ON as the
 * leader does after giving the VM away: KB_ESTATE with `placed`, the new owner and the
 * placement's words.
 *
 * A real vmkernel (build/bin/vmkernel in a network namespace of its own, state in a temp
 * dir, a shared datastore): an operator's power-on succeeds with VmkReply.placed_on,
 * placed_on_id and placement, starts nothing (the VM stays off, no lock, its last event is
 * the placement); the owner's reconciler's power-on (reconcile) gets the refusal naming
 * the other host, as before; without the placement's words or the owner's name the reply
 * still names the host; a refusal without `placed` is an error with no placement; every
 * other reply carries no placement. No vmx is ever started, so no /dev/kvm is needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.pb-c.h"
#include "ha/lock.h"
#include "kernel/core/cluster.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

#define OTHER_HOST 0x77u /* the host placement chose */

/* ---- the fake clusterd: one answer for OP_POWER_ON, acceptance for the rest ---------- */

struct answer {
	int32_t code;
	const char *error;
	uint64_t owner;
	const char *owner_name;
	bool placed;
	const char *placement;
};

static struct {
	pthread_mutex_t mu;
	pthread_t th;
	bool running;
	int listen_fd, stop[2];
	char path[PATH_MAX];
	struct answer power_on;
	int n_power_on;	       /* OP_POWER_ON requests received */
	bool last_wanted_only; /* of the last one */
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t host_id;

static void fk_serve(int fd)
{
	struct kb_buf in;
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	Keel__Cluster__ClusterVmReply vr = KEEL__CLUSTER__CLUSTER_VM_REPLY__INIT;

	kb_buf_init(&in, 1 << 20);
	if (kb_frame_recv(fd, &in, 1 << 20) == 0) {
		Keel__Cluster__ClusterRequest *rq =
		    keel__cluster__cluster_request__unpack(NULL, in.len, in.data);

		vr.member = true;
		vr.owner = host_id;
		vr.epoch = 1;
		vr.host_id = host_id;
		vr.owner_name = "esx1";
		rp.error = "";
		pthread_mutex_lock(&fk.mu);
		if (rq != NULL && rq->req_case == KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM &&
		    rq->vm->op == KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_POWER_ON) {
			const struct answer *a = &fk.power_on;

			fk.n_power_on++;
			fk.last_wanted_only = rq->vm->wanted_only;
			rp.code = a->code;
			rp.error = (char *)(a->error ? a->error : "");
			vr.owner = a->owner;
			vr.epoch = 2;
			vr.owner_name = (char *)(a->owner_name ? a->owner_name : "");
			vr.placed = a->placed;
			vr.placement = (char *)(a->placement ? a->placement : "");
		}
		pthread_mutex_unlock(&fk.mu);
		if (rq != NULL)
			keel__cluster__cluster_request__free_unpacked(rq, NULL);
		rp.vm = &vr;
		kb_frame_send_pb(fd, &rp.base);
	}
	kb_buf_close(&in);
	close(fd);
}

static void *fk_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = fk.listen_fd, .events = POLLIN},
				      {.fd = fk.stop[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			return NULL;
		int fd = accept4(fk.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			fk_serve(fd);
	}
}

static int fk_start(const char *path)
{
	snprintf(fk.path, sizeof(fk.path), "%s", path);
	if (pipe2(fk.stop, O_CLOEXEC) < 0)
		return -1;
	fk.listen_fd = kb_unix_listen(path, 16);
	if (fk.listen_fd < 0 || pthread_create(&fk.th, NULL, fk_main, NULL) != 0)
		return -1;
	fk.running = true;
	return 0;
}

static void fk_stop(void)
{
	if (!fk.running)
		return;
	(void)!write(fk.stop[1], "x", 1);
	pthread_join(fk.th, NULL);
	close(fk.listen_fd);
	close(fk.stop[0]);
	close(fk.stop[1]);
	unlink(fk.path);
	fk.running = false;
}

static void fk_answer(struct answer a)
{
	pthread_mutex_lock(&fk.mu);
	fk.power_on = a;
	pthread_mutex_unlock(&fk.mu);
}

static int fk_power_ons(bool *wanted_only)
{
	pthread_mutex_lock(&fk.mu);
	int n = fk.n_power_on;
	if (wanted_only)
		*wanted_only = fk.last_wanted_only;
	pthread_mutex_unlock(&fk.mu);
	return n;
}

/* ---- a real vmkernel --------------------------------------------------------------- */

static char top[PATH_MAX], state[PATH_MAX], shared[PATH_MAX], vmk_sock[PATH_MAX];
static pid_t vmk_pid;

static Keel__Vmk__VmkReply *rpc(Keel__Vmk__VmkRequest *rq)
{
	struct kb_buf in;
	int fd = kb_unix_connect(vmk_sock);
	Keel__Vmk__VmkReply *rp = NULL;

	if (fd < 0)
		return NULL;
	kb_buf_init(&in, 1 << 22);
	if (kb_frame_send_pb(fd, &rq->base) == 0 && kb_frame_recv(fd, &in, 1 << 22) == 0)
		rp = keel__vmk__vmk_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	close(fd);
	return rp;
}

static void done(Keel__Vmk__VmkReply *rp)
{
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static Keel__Vmk__VmkReply *power_on(const char *name, bool reconcile)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmPowerOn on = KEEL__VMK__VMK_VM_POWER_ON__INIT;

	on.vm = (char *)name;
	on.reconcile = reconcile;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON;
	rq.vm_power_on = &on;
	Keel__Vmk__VmkReply *rp = rpc(&rq);
	assert_non_null(rp);
	return rp;
}

static Keel__Vmk__VmkReply *vm_get(const char *name)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;

	get.vm = (char *)name;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	rq.vm_get = &get;
	Keel__Vmk__VmkReply *rp = rpc(&rq);
	assert_non_null(rp);
	return rp;
}

#define assert_has(hay, needle)                                               \
	do {                                                                  \
		if (!strstr((hay), (needle)))                                 \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

/* Nothing started: the VM is off here and its lock was never taken. */
static void assert_nothing_started(const char *name)
{
	char lk[PATH_MAX];
	Keel__Vmk__VmkReply *rp = vm_get(name);

	assert_int_equal(rp->code, 0);
	assert_int_equal(rp->n_vms, 1);
	assert_string_equal(rp->vms[0]->power_state, "poweredOff");
	assert_int_equal(rp->vms[0]->pid, 0);
	assert_string_equal(rp->placed_on, ""); /* only a power-on's reply says where */
	assert_int_equal(rp->placed_on_id, 0);
	assert_string_equal(rp->placement, "");
	done(rp);
	snprintf(lk, sizeof(lk), "%s/%s/%s", shared, name, HA_LOCK_NAME);
	assert_int_not_equal(access(lk, F_OK), 0);
}

static void create(const char *name)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmCreate cr = KEEL__VMK__VMK_VM_CREATE__INIT;
	Keel__Vmk__VmSpec spec = KEEL__VMK__VM_SPEC__INIT;

	spec.name = (char *)name;
	spec.memsize_mib = 64;
	spec.numvcpus = 1;
	spec.cmdline = "counter_ms=100";
	spec.datastore = "shared1";
	cr.spec = &spec;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE;
	rq.vm_create = &cr;
	Keel__Vmk__VmkReply *rp = rpc(&rq);
	assert_non_null(rp);
	if (rp->code != 0)
		fail_msg("create %s: %d %s", name, rp->code, rp->error);
	done(rp);
}

/* An operator's power-on placed elsewhere: success, where, and nothing started here. */
static void test_placed_succeeds(void **unused)
{
	const char *words = "VM pl1 placed on esx3 by DRS (fully automated; registered on esx1)";
	bool wanted_only = true;

	create("pl1");
	fk_answer((struct answer){.code = KB_ESTATE,
				  .error = "VM pl1 placed on esx3 by DRS (fully automated; "
					   "registered on esx1): esx3 powers it on",
				  .owner = OTHER_HOST,
				  .owner_name = "esx3",
				  .placed = true,
				  .placement = words});
	int n = fk_power_ons(NULL);
	Keel__Vmk__VmkReply *rp = power_on("pl1", false);
	if (rp->code != 0)
		fail_msg("placed power-on: %d %s", rp->code, rp->error);
	assert_int_equal(fk_power_ons(&wanted_only), n + 1);
	assert_false(wanted_only);
	assert_string_equal(rp->placed_on, "esx3");
	assert_int_equal(rp->placed_on_id, OTHER_HOST);
	assert_string_equal(rp->placement, words);
	assert_int_equal(rp->n_vms, 1);
	assert_string_equal(rp->vms[0]->name, "pl1");
	assert_string_equal(rp->vms[0]->power_state, "poweredOff");
	assert_string_equal(rp->vms[0]->last_event,
			    "VM pl1 placed on esx3 by DRS (fully automated; registered on esx1): "
			    "esx3 powers it on");
	done(rp);
	assert_nothing_started("pl1");
}

/* The reconciler's power-on (reconcile) is refused as before, naming the other host. */
static void test_placed_reconcile_refused(void **unused)
{
	bool wanted_only = false;

	Keel__Vmk__VmkReply *rp = power_on("pl1", true);
	assert_true(fk_power_ons(&wanted_only) > 0);
	assert_true(wanted_only);
	assert_int_equal(rp->code, KB_ESTATE);
	assert_has(rp->error, "cannot power on VM pl1: VM pl1 placed on esx3 by DRS (fully "
			      "automated; registered on esx1): esx3 powers it on");
	assert_string_equal(rp->placed_on, "");
	assert_string_equal(rp->placement, "");
	done(rp);
	assert_nothing_started("pl1");
}

/* Without the placement's words or the owner's name the reply still names the host. */
static void test_placed_without_words(void **unused)
{
	fk_answer((struct answer){
	    .code = KB_ESTATE, .error = "placed", .owner = OTHER_HOST, .placed = true});
	Keel__Vmk__VmkReply *rp = power_on("pl1", false);
	if (rp->code != 0)
		fail_msg("placed power-on: %d %s", rp->code, rp->error);
	assert_string_equal(rp->placed_on, "host-119");
	assert_int_equal(rp->placed_on_id, OTHER_HOST);
	assert_string_equal(rp->placement, "VM pl1 placed on host-119 by the cluster");
	done(rp);
	assert_nothing_started("pl1");
}

/* A refusal that is no placement stays an error with no placement in the reply. */
static void test_refused_not_placed(void **unused)
{
	fk_answer((struct answer){.code = KB_ESTATE,
				  .error = "VM pl1 is owned by host esx2 (epoch 3)",
				  .owner = OTHER_HOST,
				  .owner_name = "esx2"});
	Keel__Vmk__VmkReply *rp = power_on("pl1", false);
	assert_int_equal(rp->code, KB_ESTATE);
	assert_has(rp->error, "VM pl1 is owned by host esx2");
	assert_string_equal(rp->placed_on, "");
	assert_int_equal(rp->placed_on_id, 0);
	assert_string_equal(rp->placement, "");
	done(rp);
	assert_nothing_started("pl1");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **unused)
{
	char tmpl[] = "/tmp/keel-vmkpl-XXXXXX", vmk[PATH_MAX], logp[PATH_MAX + 32],
	     idp[PATH_MAX + 32], cl_sock[PATH_MAX + 32];

	if (mkdtemp(tmpl) == NULL || realpath(tmpl, top) == NULL)
		return -1;
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(shared, sizeof(shared), "%s/shared", top);
	snprintf(vmk_sock, sizeof(vmk_sock), "%s/vmkernel.sock", state);
	snprintf(cl_sock, sizeof(cl_sock), "%s/clusterd.sock", state);
	snprintf(logp, sizeof(logp), "%s/vmkernel.stderr", top);
	if (mkdir(state, 0700) < 0 || mkdir(shared, 0755) < 0 ||
	    realpath(th_bin_path("vmkernel"), vmk) == NULL)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	vmk_pid = fork();
	if (vmk_pid < 0)
		return -1;
	if (vmk_pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (unshare(CLONE_NEWNET) < 0) /* its bridges and taps, if any, stay there */
			_exit(125);
		execl(vmk, vmk, "--state-dir", state, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	int fd = -1;
	for (int i = 0; i < 400 && fd < 0; i++) {
		fd = kb_unix_connect(vmk_sock);
		if (fd < 0) {
			if (waitpid(vmk_pid, NULL, WNOHANG) == vmk_pid)
				return -1;
			kb_sleep_ns(25 * KB_NSEC_PER_MSEC);
		}
	}
	if (fd < 0)
		return -1;
	close(fd);
	snprintf(idp, sizeof(idp), "%s/clusterd.id", state);
	FILE *f = fopen(idp, "r");
	if (f == NULL)
		return -1;
	int got = fscanf(f, "%" SCNu64, &host_id);
	fclose(f);
	if (got != 1 || host_id == OTHER_HOST)
		return -1;
	if (fk_start(cl_sock) < 0)
		return -1;

	Keel__Vmk__VmkDatastoreAdd add = KEEL__VMK__VMK_DATASTORE_ADD__INIT;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	add.name = "shared1";
	add.path = shared;
	add.shared = true;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD;
	rq.datastore_add = &add;
	Keel__Vmk__VmkReply *rp = rpc(&rq);
	if (rp == NULL || rp->code != 0)
		return -1;
	done(rp);
	return 0;
}

static int teardown(void **unused)
{
	fk_stop();
	if (vmk_pid > 0) {
		kill(vmk_pid, SIGTERM);
		waitpid(vmk_pid, NULL, 0);
	}
	if (getenv("KEEL_KEEP") == NULL)
		nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_placed_succeeds),
	    cmocka_unit_test(test_placed_reconcile_refused),
	    cmocka_unit_test(test_placed_without_words),
	    cmocka_unit_test(test_refused_not_placed),
	};
	return cmocka_run_group_tests_name("vmk_placed", tests, setup, teardown);
}
