/*
 * keel, the operator's CLI: `keel vm ft` through clusterd's socket (enable, disable,
 * status, failover, restart-secondary), its usage errors and its failures.
 *
 * Each test runs build/bin/keel as a child process with --socket pointing at the fake
 * vmkernel of tests/unit/keel_cli_helpers.c, and a fake clusterd serving clusterd.sock
 * beside it (found there as keel finds it). The fake clusterd plays a script: the VM
 * web01's record before the request, then one step further at every status read after
 * the ClusterVmRequest came, so a wait sees the states a real cluster goes through (the
 * replica still behind, needs secondary, starting, protected). The tests check the
 * request that reached clusterd, what keel printed and its exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.pb-c.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/keel_cli_helpers.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

#define U_WEB "564d1c2a-0000-4000-8000-000000000001"
#define U_DB  "564d1c2a-0000-4000-8000-000000000002"
#define U_OFF "564d1c2a-0000-4000-8000-000000000003"

/* ---- a fake clusterd -------------------------------------------------------------------- */

/* web01 as the cluster shows it at one step of the script. */
struct step {
	uint64_t owner, epoch;
	bool ft; /* the ft message present */
	int state;
	uint64_t secondary, generation;
	uint32_t failovers;
};

#define MAX_STEPS 8
/* how long ago the FT states changed: 3h 04m 30s, shown as "3h 04m" however slow the run */
#define AGE_MS ((3 * 3600 + 4 * 60 + 30) * 1000ull)

static struct {
	pthread_mutex_t mu;
	pthread_t th;
	int fd, stop[2];
	char path[600];
	bool not_member;
	struct step steps[MAX_STEPS];
	int nsteps, at;
	bool asked;			   /* the ClusterVmRequest came */
	int reply_code;			   /* for the ClusterVmRequest */
	const char *reply_error;	   /* with reply_code */
	uint64_t reply_owner, reply_epoch; /* the ClusterVmReply */
	const char *event;		   /* an FT event of web01 made by the request */
	/* what came */
	int nvm, nstatus;
	int op;
	char uuid[64];
	uint64_t destination;
} fc;

static void step(int i, uint64_t owner, uint64_t epoch, bool ft, int state, uint64_t secondary,
		 uint64_t generation)
{
	fc.steps[i] = (struct step){owner, epoch, ft, state, secondary, generation, 0};
	if (i >= fc.nsteps)
		fc.nsteps = i + 1;
}

static void answer_status(Keel__Cluster__ClusterReply *rp, Keel__Cluster__ClusterStatus *s,
			  const struct step *w)
{
	static Keel__Cluster__ClusterHostStatus h[3];
	static Keel__Cluster__ClusterHostStatus *hp[3];
	static Keel__Cluster__ClusterVmStatus v[3];
	static Keel__Cluster__ClusterVmStatus *vp[3];
	static Keel__Cluster__Ft ft[2];
	static const char *const hname[] = {"host1", "host2", "host3"};
	static const char *const vname[] = {"web01", "db01", "plain"};
	static const char *const vuuid[] = {U_WEB, U_DB, U_OFF};

	for (int i = 0; i < 3; i++) {
		keel__cluster__cluster_host_status__init(&h[i]);
		h[i].id = (uint64_t)i + 1;
		h[i].name = (char *)hname[i];
		hp[i] = &h[i];
		keel__cluster__cluster_vm_status__init(&v[i]);
		v[i].uuid = (char *)vuuid[i];
		v[i].name = (char *)vname[i];
		v[i].epoch = 2;
		v[i].owner = 2;
		v[i].owner_name = "host2";
		vp[i] = &v[i];
	}
	keel__cluster__ft__init(&ft[0]);
	keel__cluster__ft__init(&ft[1]);
	v[0].owner = w->owner;
	v[0].owner_name = (char *)hname[w->owner - 1];
	v[0].epoch = w->epoch;
	if (w->ft) {
		ft[0].state = w->state;
		ft[0].secondary = w->secondary;
		ft[0].generation = w->generation;
		ft[0].failovers = w->failovers;
		ft[0].since_ms = kb_wall_ns() / KB_NSEC_PER_MSEC - AGE_MS;
		v[0].ft = &ft[0];
		v[0].ft_secondary_name = w->secondary ? (char *)hname[w->secondary - 1] : "";
	}
	/* db01: FT starting, its secondary on host3; plain: FT never on */
	ft[1].state = KEEL__CLUSTER__FT_STATE__FT_STARTING;
	ft[1].secondary = 3;
	ft[1].generation = 2;
	ft[1].failovers = 1;
	ft[1].since_ms = kb_wall_ns() / KB_NSEC_PER_MSEC - AGE_MS;
	v[1].ft = &ft[1];
	v[1].ft_secondary_name = "host3";
	s->name = fc.not_member ? "" : "lab";
	s->node_id = 1;
	s->hosts = hp;
	s->n_hosts = 3;
	s->vms = vp;
	s->n_vms = 3;
	rp->status = s;
}

static void serve(int fd)
{
	Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
	Keel__Cluster__ClusterStatus s = KEEL__CLUSTER__CLUSTER_STATUS__INIT;
	Keel__Cluster__ClusterVmReply vr = KEEL__CLUSTER__CLUSTER_VM_REPLY__INIT;
	Keel__Cluster__Event ev[2], *evp[2];
	Keel__Cluster__ClusterRequest *rq;
	struct kb_buf in;

	kb_buf_init(&in, 1 << 20);
	if (kb_frame_recv(fd, &in, 1 << 20) != 0)
		goto out;
	rq = keel__cluster__cluster_request__unpack(NULL, in.len, in.data);
	if (!rq)
		goto out;
	pthread_mutex_lock(&fc.mu);
	switch (rq->req_case) {
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS:
		fc.nstatus++;
		if (fc.asked && fc.at < fc.nsteps - 1)
			fc.at++;
		answer_status(&rp, &s, &fc.steps[fc.at]);
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM:
		fc.nvm++;
		fc.op = rq->vm->op;
		snprintf(fc.uuid, sizeof(fc.uuid), "%s", rq->vm->uuid);
		fc.destination = rq->vm->destination;
		if (fc.reply_code) {
			rp.code = fc.reply_code;
			rp.error = (char *)fc.reply_error;
			break;
		}
		fc.asked = true;
		vr.member = true;
		vr.owner = fc.reply_owner;
		vr.epoch = fc.reply_epoch;
		rp.vm = &vr;
		break;
	case KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS:
		/* seq 10 before the request, 11 (fc.event) after it */
		for (int i = 0; i < 2; i++) {
			keel__cluster__event__init(&ev[i]);
			ev[i].seq = 10 + (uint64_t)i;
			ev[i].kind = KEEL__CLUSTER__EVENT_KIND__EVENT_FT;
			ev[i].vm = U_WEB;
			ev[i].message = i == 0 ? "FT: an earlier event" : (char *)fc.event;
			evp[i] = &ev[i];
		}
		rp.events = evp;
		rp.n_events = fc.asked && fc.event ? 2 : 1;
		if (rq->events->since >= 10) {
			rp.events = evp + 1;
			rp.n_events--;
		}
		break;
	default:
		rp.code = KB_ENOTSUP;
		rp.error = "not in this fake";
	}
	kb_frame_send_pb(fd, &rp.base);
	pthread_mutex_unlock(&fc.mu);
	keel__cluster__cluster_request__free_unpacked(rq, NULL);
out:
	kb_buf_close(&in);
}

static void *fc_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = fc.fd, .events = POLLIN},
				      {.fd = fc.stop[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept(fc.fd, NULL, NULL);
		if (fd < 0)
			continue;
		serve(fd);
		close(fd);
	}
}

/* ---- a fake vmkernel: VmkVmFtStatus only ------------------------------------------------- */

static struct {
	pthread_t th;
	int fd;
	char dir[600], path[700];
	bool figures; /* answer with a primary's figures */
	int nreqs;    /* VmkVmFtStatus requests */
	char vm[64];  /* the last one's vm */
} fv;

static void vmk_serve(int fd)
{
	struct kb_buf in;

	kb_buf_init(&in, 1 << 20);
	while (kb_frame_recv(fd, &in, 1 << 20) == 0) {
		Keel__Vmk__VmkRequest *rq = keel__vmk__vmk_request__unpack(NULL, in.len, in.data);
		Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
		Keel__Vmk__VmkFtInfo f = KEEL__VMK__VMK_FT_INFO__INIT;

		pthread_mutex_lock(&fc.mu);
		if (rq && rq->req_case == KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS) {
			fv.nreqs++;
			snprintf(fv.vm, sizeof(fv.vm), "%s", rq->vm_ft_status->vm);
			if (fv.figures) {
				f.vm = "web01";
				f.uuid = U_WEB;
				f.role = "primary";
				f.phase = "protected";
				f.checkpoint = 6123;
				f.epoch_ms = 20;
				f.lag_us = 1900;
				f.last_pause_us = 400;
				f.max_pause_us = 4000;
				f.last_ckpt_bytes = 81920;
				f.held_frames = 2;
				f.bytes = 1 << 20;
				rp.ft = &f;
			}
		} else {
			rp.code = KB_ENOTSUP;
			rp.error = "not in this fake";
		}
		pthread_mutex_unlock(&fc.mu);
		if (rq)
			keel__vmk__vmk_request__free_unpacked(rq, NULL);
		if (kb_frame_send_pb(fd, &rp.base) != 0)
			break;
		kb_buf_reset(&in);
	}
	kb_buf_close(&in);
}

static void *fv_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = fv.fd, .events = POLLIN},
				      {.fd = fc.stop[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept(fv.fd, NULL, NULL);
		if (fd < 0)
			continue;
		vmk_serve(fd);
		close(fd);
	}
}

/* Runs keel with --socket at the fake vmkernel (clusterd.sock is found beside it). */
static int run_ft(const char *const *args)
{
	struct kc_run_opts o = {.no_socket = true};
	const char *argv[48];
	int n = 0;

	argv[n++] = "--socket";
	argv[n++] = fv.path;
	for (int i = 0; args[i] && n < 47; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return kc_run_keel_opts(&o, argv);
}

#define FTK(...) run_ft((const char *const[]){__VA_ARGS__, NULL})

static int group_setup(void **state)
{
	char cfg[700];

	(void)state;
	snprintf(fv.dir, sizeof(fv.dir), "%s/ft", th_tmpdir());
	if (mkdir(fv.dir, 0700) != 0 && errno != EEXIST)
		return -1;
	/* no cached session can be read from the user's home */
	snprintf(cfg, sizeof(cfg), "%s/keel-config", fv.dir);
	setenv("KEEL_CONFIG_DIR", cfg, 1);
	unsetenv("KEEL_SERVER");
	unsetenv("KEEL_CLUSTER_SOCKET");
	pthread_mutex_init(&fc.mu, NULL);
	snprintf(fv.path, sizeof(fv.path), "%s/vmkernel.sock", fv.dir);
	snprintf(fc.path, sizeof(fc.path), "%s/clusterd.sock", fv.dir);
	fv.fd = kb_unix_listen(fv.path, 16);
	fc.fd = kb_unix_listen(fc.path, 16);
	if (fv.fd < 0 || fc.fd < 0 || pipe2(fc.stop, O_CLOEXEC) < 0)
		return -1;
	if (pthread_create(&fv.th, NULL, fv_main, NULL) != 0)
		return -1;
	return pthread_create(&fc.th, NULL, fc_main, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	(void)!write(fc.stop[1], "x", 1);
	pthread_join(fc.th, NULL);
	pthread_join(fv.th, NULL);
	close(fc.fd);
	close(fv.fd);
	unlink(fc.path);
	unlink(fv.path);
	rmdir(fv.dir);
	return 0;
}

static int test_setup(void **state)
{
	(void)state;
	pthread_mutex_lock(&fc.mu);
	memset((char *)&fc + offsetof(__typeof__(fc), not_member), 0,
	       sizeof(fc) - offsetof(__typeof__(fc), not_member));
	/* the default: web01 on host1 (this node), FT never on */
	step(0, 1, 4, false, 0, 0, 0);
	fc.reply_owner = 1;
	fc.reply_epoch = 4;
	fv.figures = false;
	fv.nreqs = 0;
	fv.vm[0] = '\0';
	pthread_mutex_unlock(&fc.mu);
	return 0;
}

#define FT_OFF	 KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define FT_NEEDS KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define FT_START KEEL__CLUSTER__FT_STATE__FT_STARTING
#define FT_PROT	 KEEL__CLUSTER__FT_STATE__FT_PROTECTED

/* ---- enable, restart-secondary ------------------------------------------------------------ */

static void test_enable_waits_for_protected(void **state)
{
	(void)state;
	step(1, 1, 4, true, FT_NEEDS, 0, 1);
	step(2, 1, 4, true, FT_START, 3, 2);
	step(3, 1, 4, true, FT_PROT, 3, 3);
	assert_int_equal(FTK("vm", "ft", "enable", "web01", "--secondary-host", "host3"), 0);
	assert_int_equal(fc.nvm, 1);
	assert_int_equal(fc.op, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_ENABLE);
	assert_string_equal(fc.uuid, U_WEB);
	assert_int_equal(fc.destination, 3);
	assert_has(kc_run.out, "VM web01 protected: secondary on host3 (");
	assert_int_equal(fc.at, 3); /* it waited for the last step */

	/* by id, and --json; without --secondary-host the cluster chooses (0) */
	test_setup(state);
	step(1, 1, 4, true, FT_PROT, 2, 1);
	assert_int_equal(FTK("vm", "ft", "enable", U_WEB, "--secondary-host", "2"), 0);
	assert_int_equal(fc.destination, 2);
	test_setup(state);
	step(1, 1, 4, true, FT_PROT, 2, 1);
	assert_int_equal(FTK("vm", "ft", "enable", "web01", "--json"), 0);
	assert_int_equal(fc.destination, 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"ok\":true");
	assert_has(kc_run.out, "\"vm\":\"web01\",\"uuid\":\"" U_WEB "\",\"state\":\"protected\"");
	assert_has(kc_run.out, "\"primary\":\"host1\",\"secondary\":\"host2\",\"generation\":1");
}

static void test_restart_secondary_waits_for_a_later_protection(void **state)
{
	(void)state;
	/* protected on host2 at generation 5; this host's replica still shows that after the
	 * request, then the new pairing goes through */
	step(0, 1, 4, true, FT_PROT, 2, 5);
	step(1, 1, 4, true, FT_PROT, 2, 5);
	step(2, 1, 4, true, FT_NEEDS, 0, 6);
	step(3, 1, 4, true, FT_START, 3, 7);
	step(4, 1, 4, true, FT_PROT, 3, 8);
	assert_int_equal(FTK("vm", "ft", "restart-secondary", "web01"), 0);
	assert_int_equal(fc.op, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_RESTART_SECONDARY);
	assert_int_equal(fc.destination, 0);
	assert_has(kc_run.out, "VM web01 protected: secondary on host3 (");
	assert_hasnt(kc_run.out, "host2");

	/* --no-wait: the request, one line, no wait */
	test_setup(state);
	step(0, 1, 4, true, FT_PROT, 2, 5);
	assert_int_equal(
	    FTK("vm", "ft", "restart-secondary", "web01", "--secondary-host", "host3", "--no-wait"),
	    0);
	assert_int_equal(fc.destination, 3);
	assert_string_equal(kc_run.out, "A new secondary was asked for VM web01.\n");
	assert_int_equal(fc.nstatus, 1);
}

static void test_enable_ends_when_ft_turned_off(void **state)
{
	(void)state;
	step(1, 1, 4, true, FT_NEEDS, 0, 1);
	step(2, 1, 4, true, FT_OFF, 0, 2);
	fc.event = "FT: turned off for VM web01";
	assert_int_equal(FTK("vm", "ft", "enable", "web01"), 1);
	assert_has(kc_run.err, "keel: FT was turned off for VM web01 before it was protected: FT: "
			       "turned off for VM web01");
	assert_string_equal(kc_run.out, "");
}

static void test_refusals_change_nothing(void **state)
{
	(void)state;
	/* clusterd's refusal, as it gave it */
	step(0, 1, 4, true, FT_PROT, 2, 3);
	fc.reply_code = KB_EEXIST;
	fc.reply_error = "FT is on for VM web01 already (protected)";
	assert_int_equal(FTK("vm", "ft", "enable", "web01"), 1);
	assert_has(kc_run.err, "keel: FT is on for VM web01 already (protected)\n");
	assert_int_equal(FTK("vm", "ft", "enable", "web01", "--json"), 1);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"ok\":false");
	assert_has(kc_run.out, "\"error\":\"FT is on for VM web01 already (protected)\"");

	/* a VM or host the cluster does not know: nothing asked */
	test_setup(state);
	assert_int_equal(FTK("vm", "ft", "enable", "nosuch"), 1);
	assert_has(kc_run.err, "keel: no such VM in the cluster: nosuch");
	assert_int_equal(FTK("vm", "ft", "enable", "web01", "--secondary-host", "host9"), 1);
	assert_has(kc_run.err, "no such host in the cluster for the secondary of VM web01: host9");
	assert_int_equal(FTK("vm", "ft", "failover", "nosuch"), 1);
	assert_int_equal(FTK("vm", "ft", "status", "nosuch"), 1);
	assert_has(kc_run.err, "keel: no such VM in the cluster: nosuch");
	assert_int_equal(fc.nvm, 0);

	/* this host in no cluster */
	fc.not_member = true;
	assert_int_equal(FTK("vm", "ft", "disable", "web01"), 1);
	assert_has(kc_run.err, "keel: this host is not in a cluster");
	assert_int_equal(FTK("vm", "ft", "status"), 1);
	assert_int_equal(fc.nvm, 0);
}

/* ---- disable, failover --------------------------------------------------------------------- */

static void test_disable(void **state)
{
	(void)state;
	step(0, 1, 4, true, FT_PROT, 2, 3);
	step(1, 1, 4, true, FT_PROT, 2, 3);
	step(2, 1, 4, true, FT_OFF, 0, 4);
	assert_int_equal(FTK("vm", "ft", "disable", "web01"), 0);
	assert_int_equal(fc.op, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_DISABLE);
	assert_string_equal(kc_run.out,
			    "FT turned off for VM web01: it runs on host1 unprotected.\n");
	assert_int_equal(fc.at, 2);

	/* FT never on: clusterd changes nothing, neither does keel */
	test_setup(state);
	assert_int_equal(FTK("vm", "ft", "disable", "web01"), 0);
	assert_string_equal(kc_run.out, "FT was not on for VM web01.\n");
}

static void test_failover_waits_for_the_new_owner(void **state)
{
	(void)state;
	/* protected on host1 with the secondary on host2; clusterd's answer and the first
	 * status still show host1, then host2 owns it at epoch 5 */
	step(0, 1, 4, true, FT_PROT, 2, 3);
	step(1, 1, 4, true, FT_PROT, 2, 3);
	step(2, 2, 5, true, FT_NEEDS, 0, 4);
	assert_int_equal(FTK("vm", "ft", "failover", "web01"), 0);
	assert_int_equal(fc.op, KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER);
	assert_string_equal(fc.uuid, U_WEB);
	assert_has(kc_run.out, "VM web01 failed over from host1 to host2 (test failover) in ");
	assert_has(kc_run.out, " ms\n");

	/* clusterd answered with the new owner: done at once */
	test_setup(state);
	step(0, 1, 4, true, FT_PROT, 2, 3);
	fc.reply_owner = 2;
	fc.reply_epoch = 5;
	assert_int_equal(FTK("vm", "ft", "failover", "web01", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"from\":\"host1\",\"to\":\"host2\",\"epoch\":5");
	assert_int_equal(fc.nstatus, 1);

	/* the VM went to another host instead (HA): a failure with the FT event */
	test_setup(state);
	step(0, 1, 4, true, FT_PROT, 2, 3);
	step(1, 3, 5, true, FT_NEEDS, 0, 4);
	fc.event = "FT: VM web01 runs unprotected: secondary on host2 lost: gone";
	assert_int_equal(FTK("vm", "ft", "failover", "web01"), 1);
	assert_has(kc_run.err, "VM web01 did not fail over to host2");
	assert_has(kc_run.err, "secondary on host2 lost: gone");
}

/* ---- status -------------------------------------------------------------------------------- */

static void test_status_table(void **state)
{
	(void)state;
	step(0, 1, 4, true, FT_PROT, 2, 3);
	fv.figures = true;
	assert_int_equal(FTK("vm", "ft", "status"), 0);
	/* web01's primary runs here (node 1): its figures from vmkernel; db01's on host2 */
	assert_int_equal(fv.nreqs, 1);
	assert_string_equal(fv.vm, U_WEB);
	assert_has(kc_run.out,
		   "VM     STATE      PRIMARY  SECONDARY  FAILOVERS   SINCE  PHASE      "
		   "CKPT  LAG(ms)  PAUSE(ms)  HELD\n");
	assert_has(kc_run.out,
		   "web01  protected  host1    host2              0  3h 04m  protected  "
		   "6123      1.9        0.4     2\n");
	assert_has(kc_run.out,
		   "db01   starting   host2    host3              1  3h 04m  -             "
		   "-        -          -     -\n");
	assert_hasnt(kc_run.out, "plain"); /* FT never on */

	/* no figures anywhere: the cluster's columns only */
	fv.figures = false;
	fv.nreqs = 0;
	assert_int_equal(FTK("vm", "ft", "status", "db01"), 0);
	assert_string_equal(kc_run.out, "VM    STATE     PRIMARY  SECONDARY  FAILOVERS   SINCE\n"
					"db01  starting  host2    host3              1  3h 04m\n");
	assert_int_equal(fv.nreqs, 0);

	/* a VM named that never had FT */
	assert_int_equal(FTK("vm", "ft", "status", "plain"), 0);
	assert_has(kc_run.out, "plain  not protected  host2    -                  0      -\n");
}

static void test_status_json(void **state)
{
	(void)state;
	step(0, 1, 4, true, FT_PROT, 2, 3);
	fv.figures = true;
	assert_int_equal(FTK("vm", "ft", "status", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out,
		   "{\"ok\":true,\"code\":0,\"vms\":[{\"vm\":\"web01\",\"uuid\":\"" U_WEB
		   "\",\"state\":\"protected\",\"primary\":\"host1\","
		   "\"secondary\":\"host2\",\"primary_id\":1,\"secondary_id\":2");
	assert_has(kc_run.out, "\"figures\":{\"phase\":\"protected\",\"checkpoint\":6123,"
			       "\"epoch_ms\":20,\"lag_us\":1900,\"last_pause_us\":400,"
			       "\"max_pause_us\":4000,\"last_ckpt_bytes\":81920,\"held_frames\":2,"
			       "\"bytes\":1048576}");
	/* db01: no figures object */
	assert_has(kc_run.out, "\"vm\":\"db01\"");
	assert_has(kc_run.out, "\"state\":\"starting\"");
	assert_hasnt(kc_run.out, "\"plain\"");
	/* one figures object: web01's */
	assert_null(strstr(strstr(kc_run.out, "\"figures\"") + 1, "\"figures\""));

	/* web01 without FT is left out */
	test_setup(state);
	fv.figures = false;
	fv.nreqs = 0;
	assert_int_equal(FTK("vm", "ft", "status", "--json"), 0);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"vms\":[{\"vm\":\"db01\"");
	assert_hasnt(kc_run.out, "web01");
}

/* ---- usage and reachability ------------------------------------------------------------- */

static void test_usage_and_help(void **state)
{
	static const char *const verbs[] = {"enable", "disable", "status", "failover",
					    "restart-secondary"};
	char want[80];

	(void)state;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		assert_int_equal(FTK("vm", "ft", verbs[i], "--help"), 0);
		snprintf(want, sizeof(want), "Usage: keel vm ft %s ", verbs[i]);
		assert_has(kc_run.out, want);
	}
	assert_int_equal(FTK("vm", "ft", "--help"), 0);
	assert_has(kc_run.out, "restart-secondary VM");
	assert_int_equal(FTK("vm", "--help"), 0);
	assert_has(kc_run.out, "ft ");

	assert_int_equal(FTK("vm", "ft"), 2);
	assert_int_equal(FTK("vm", "ft", "enable"), 2);
	assert_has(kc_run.err, "missing argument");
	assert_int_equal(FTK("vm", "ft", "enable", "a", "b"), 2);
	assert_int_equal(FTK("vm", "ft", "status", "--no-wait"), 2);
	assert_int_equal(FTK("vm", "ft", "disable", "web01", "--secondary-host", "host2"), 2);
	assert_int_equal(FTK("vm", "ft", "promote", "web01"), 2);
	assert_int_equal(fc.nvm + fc.nstatus, 0);

	/* --cluster-socket means nothing through the API; no session: said so, nothing sent */
	assert_int_equal(FTK("--server", "https://198.18.0.1:8443", "vm", "ft", "enable", "web01",
			     "--cluster-socket", "/x.sock"),
			 2);
	assert_has(kc_run.err, "--cluster-socket does not apply through hostd's API");
	assert_int_equal(FTK("--server", "https://198.18.0.1:8443", "vm", "ft", "status", "web01"),
			 1);
	assert_has(kc_run.err, "not logged in to https://198.18.0.1:8443");
	assert_int_equal(fc.nvm + fc.nstatus, 0);
}

static void test_no_clusterd(void **state)
{
	char sock[700];

	(void)state;
	snprintf(sock, sizeof(sock), "%s/none/clusterd.sock", th_tmpdir());
	assert_int_equal(FTK("vm", "ft", "enable", "web01", "--cluster-socket", sock), 3);
	assert_has(kc_run.err, "cannot reach clusterd at ");
	assert_has(kc_run.err, "(is clusterd running?)");
	assert_int_equal(FTK("vm", "ft", "status", "--cluster-socket", sock, "--json"), 3);
	kc_assert_one_json_object(kc_run.out);
	assert_has(kc_run.out, "\"exit_code\":3");
}

#define T(f) cmocka_unit_test_setup(f, test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_enable_waits_for_protected),
	    T(test_restart_secondary_waits_for_a_later_protection),
	    T(test_enable_ends_when_ft_turned_off),
	    T(test_refusals_change_nothing),
	    T(test_disable),
	    T(test_failover_waits_for_the_new_owner),
	    T(test_status_table),
	    T(test_status_json),
	    T(test_usage_and_help),
	    T(test_no_clusterd),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
