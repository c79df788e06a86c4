/*
 * Helpers shared by the tests of vmkernel in a cluster (see vmk_cluster_helpers.h): the
 * fake clusterd's thread and its answers, and a real vmkernel started, asked and stopped.
 *
 * The fake's state is one lock-protected block: the test's thread sets answers and reads
 * what was received, the fake's thread serves one connection at a time (a client that
 * hangs it is the test's own choice, VC_HANG, ended by the client closing).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.pb-c.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/vmk_cluster_helpers.h"
#include "tests/unit/vmm_helpers.h"

/* ---- the fake clusterd -------------------------------------------------------------- */

static struct {
	pthread_mutex_t mu;
	pthread_t th;
	bool running;
	int listen_fd, stop[2];
	char path[PATH_MAX];
	struct vc_answer ans[VC_OPS], dflt; /* per op; any other request */
	struct vc_req last[VC_OPS], last_any;
	int count[VC_OPS], count_any;
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* Keeps what a VM request carried; returns its answer. Called with fk.mu held. */
static struct vc_answer record(const Keel__Cluster__ClusterRequest *rq)
{
	struct vc_req r = {.op = rq->vm->op, .wanted_only = rq->vm->wanted_only};

	snprintf(r.uuid, sizeof(r.uuid), "%s", or_empty(rq->vm->uuid));
	snprintf(r.name, sizeof(r.name), "%s", or_empty(rq->vm->name));
	snprintf(r.vmx_path, sizeof(r.vmx_path), "%s", or_empty(rq->vm->vmx_path));
	fk.last_any = r;
	fk.count_any++;
	if (r.op <= 0 || r.op >= VC_OPS)
		return fk.dflt;
	fk.last[r.op] = r;
	fk.count[r.op]++;
	return fk.ans[r.op];
}

static void serve(int fd)
{
	struct kb_buf in;
	struct vc_answer a;

	kb_buf_init(&in, 1 << 20);
	if (kb_frame_recv(fd, &in, 1 << 20) == 0) {
		Keel__Cluster__ClusterRequest *rq =
		    keel__cluster__cluster_request__unpack(NULL, in.len, in.data);
		pthread_mutex_lock(&fk.mu);
		if (rq != NULL && rq->req_case == KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM)
			a = record(rq);
		else
			a = fk.dflt;
		pthread_mutex_unlock(&fk.mu);
		if (rq != NULL)
			keel__cluster__cluster_request__free_unpacked(rq, NULL);
		if (a.mode == VC_HANG) {
			char c;
			while (read(fd, &c, 1) > 0)
				;
		} else if (a.mode == VC_GARBAGE) {
			kb_frame_send(fd, "\x0a\xff\xff", 3);
		} else {
			Keel__Cluster__ClusterReply rp = KEEL__CLUSTER__CLUSTER_REPLY__INIT;
			Keel__Cluster__ClusterVmReply vr = KEEL__CLUSTER__CLUSTER_VM_REPLY__INIT;
			rp.code = a.code;
			rp.error = (char *)or_empty(a.error);
			vr.member = a.member;
			vr.owner = a.owner;
			vr.epoch = a.epoch;
			vr.host_id = a.host_id;
			vr.owner_name = (char *)or_empty(a.owner_name);
			vr.placed = a.placed;
			vr.placement = (char *)or_empty(a.placement);
			rp.vm = &vr;
			kb_frame_send_pb(fd, &rp.base);
		}
	}
	kb_buf_close(&in);
	close(fd);
}

static void *fake_main(void *arg)
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
			serve(fd);
	}
}

int vc_fake_start(const char *path)
{
	if (fk.running)
		return -1;
	snprintf(fk.path, sizeof(fk.path), "%s", path);
	if (pipe2(fk.stop, O_CLOEXEC) < 0)
		return -1;
	fk.listen_fd = kb_unix_listen(path, 16);
	if (fk.listen_fd < 0)
		goto err_pipe;
	if (pthread_create(&fk.th, NULL, fake_main, NULL) != 0)
		goto err_listen;
	fk.running = true;
	return 0;

err_listen:
	close(fk.listen_fd);
	unlink(fk.path);
err_pipe:
	close(fk.stop[0]);
	close(fk.stop[1]);
	return -1;
}

void vc_fake_stop(void)
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

void vc_fake_reset(const struct vc_answer *dflt)
{
	const struct vc_answer zero = {0};

	pthread_mutex_lock(&fk.mu);
	fk.dflt = dflt ? *dflt : zero;
	for (int op = 0; op < VC_OPS; op++)
		fk.ans[op] = fk.dflt;
	memset(fk.last, 0, sizeof(fk.last));
	memset(&fk.last_any, 0, sizeof(fk.last_any));
	memset(fk.count, 0, sizeof(fk.count));
	fk.count_any = 0;
	pthread_mutex_unlock(&fk.mu);
}

void vc_fake_set(int op, struct vc_answer a)
{
	assert_true(op > 0 && op < VC_OPS);
	pthread_mutex_lock(&fk.mu);
	fk.ans[op] = a;
	pthread_mutex_unlock(&fk.mu);
}

int vc_fake_count(int op)
{
	int n = 0;

	pthread_mutex_lock(&fk.mu);
	if (op == 0)
		n = fk.count_any;
	else if (op > 0 && op < VC_OPS)
		n = fk.count[op];
	pthread_mutex_unlock(&fk.mu);
	return n;
}

struct vc_req vc_fake_last(int op)
{
	struct vc_req r;
	int n;

	assert_true(op >= 0 && op < VC_OPS);
	pthread_mutex_lock(&fk.mu);
	n = op == 0 ? fk.count_any : fk.count[op];
	r = op == 0 ? fk.last_any : fk.last[op];
	pthread_mutex_unlock(&fk.mu);
	assert_true(n > 0);
	return r;
}

/* ---- a real vmkernel ---------------------------------------------------------------- */

struct vc_vmk vc_vmk;

Keel__Vmk__VmkReply *vc_rpc(Keel__Vmk__VmkRequest *rq)
{
	struct kb_buf in;
	int fd = kb_unix_connect(vc_vmk.sock);
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

void vc_done(Keel__Vmk__VmkReply *rp)
{
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* vc_rpc, failing the test when there is no reply. */
static Keel__Vmk__VmkReply *must(Keel__Vmk__VmkRequest *rq)
{
	Keel__Vmk__VmkReply *rp = vc_rpc(rq);

	assert_non_null(rp);
	return rp;
}

Keel__Vmk__VmkReply *vc_vm_create(const char *name, const char *ds)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmCreate cr = KEEL__VMK__VMK_VM_CREATE__INIT;
	Keel__Vmk__VmSpec spec = KEEL__VMK__VM_SPEC__INIT;

	spec.name = (char *)name;
	spec.memsize_mib = 64;
	spec.numvcpus = 1;
	spec.cmdline = "counter_ms=100";
	spec.datastore = (char *)ds;
	cr.spec = &spec;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE;
	rq.vm_create = &cr;
	return must(&rq);
}

Keel__Vmk__VmkReply *vc_vm_get(const char *name)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;

	get.vm = (char *)name;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	rq.vm_get = &get;
	return must(&rq);
}

Keel__Vmk__VmkReply *vc_vm_power_on(const char *name, bool reconcile)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmPowerOn on = KEEL__VMK__VMK_VM_POWER_ON__INIT;

	on.vm = (char *)name;
	on.reconcile = reconcile;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON;
	rq.vm_power_on = &on;
	return must(&rq);
}

/* VmPowerOff: vc_rpc's reply, NULL when there is none. */
static Keel__Vmk__VmkReply *power_off(const char *name, bool fence)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmPowerOff off = KEEL__VMK__VMK_VM_POWER_OFF__INIT;

	off.vm = (char *)name;
	off.fence = fence;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF;
	rq.vm_power_off = &off;
	return vc_rpc(&rq);
}

Keel__Vmk__VmkReply *vc_vm_power_off(const char *name, bool fence)
{
	Keel__Vmk__VmkReply *rp = power_off(name, fence);

	assert_non_null(rp);
	return rp;
}

int vc_vmk_start(void)
{
	char vmk[PATH_MAX], logp[PATH_MAX + 32];

	snprintf(logp, sizeof(logp), "%s/vmkernel.stderr", vc_vmk.top);
	if (realpath(th_bin_path("vmkernel"), vmk) == NULL)
		return -1;
	vc_vmk.pid = fork();
	if (vc_vmk.pid < 0)
		return -1;
	if (vc_vmk.pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* its bridges and taps in a network namespace of its own */
		if (unshare(CLONE_NEWNET) < 0)
			_exit(125);
		execl(vmk, vmk, "--state-dir", vc_vmk.state, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 400; i++) {
		int fd = kb_unix_connect(vc_vmk.sock);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(vc_vmk.pid, NULL, WNOHANG) == vc_vmk.pid) {
			vc_vmk.pid = 0;
			return -1;
		}
		kb_sleep_ns(25 * KB_NSEC_PER_MSEC);
	}
	return -1;
}

int vc_vmk_setup(const char *tag)
{
	char tmpl[PATH_MAX], idp[PATH_MAX + 32];

	memset(&vc_vmk, 0, sizeof(vc_vmk));
	snprintf(tmpl, sizeof(tmpl), "/tmp/keel-%s-XXXXXX", tag);
	if (mkdtemp(tmpl) == NULL || realpath(tmpl, vc_vmk.top) == NULL)
		return -1;
	snprintf(vc_vmk.state, sizeof(vc_vmk.state), "%s/state", vc_vmk.top);
	snprintf(vc_vmk.shared, sizeof(vc_vmk.shared), "%s/shared", vc_vmk.top);
	snprintf(vc_vmk.sock, sizeof(vc_vmk.sock), "%s/vmkernel.sock", vc_vmk.state);
	snprintf(vc_vmk.cl_sock, sizeof(vc_vmk.cl_sock), "%s/clusterd.sock", vc_vmk.state);
	if (mkdir(vc_vmk.state, 0700) < 0 || mkdir(vc_vmk.shared, 0755) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	if (vc_vmk_start() < 0)
		return -1;
	snprintf(idp, sizeof(idp), "%s/clusterd.id", vc_vmk.state);
	FILE *f = fopen(idp, "r");
	if (f == NULL)
		return -1;
	int got = fscanf(f, "%" SCNu64, &vc_vmk.host_id);
	fclose(f);
	if (got != 1)
		return -1;

	Keel__Vmk__VmkDatastoreAdd add = KEEL__VMK__VMK_DATASTORE_ADD__INIT;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	add.name = "shared1";
	add.path = vc_vmk.shared;
	add.shared = true;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD;
	rq.datastore_add = &add;
	Keel__Vmk__VmkReply *rp = vc_rpc(&rq);
	if (rp == NULL)
		return -1;
	int code = rp->code;
	vc_done(rp);
	return code == 0 ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void vc_vmk_teardown(void)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList l = KEEL__VMK__VMK_VM_LIST__INIT;

	vc_fake_stop();
	if (vc_vmk.pid > 0) {
		kill(vc_vmk.pid, SIGCONT); /* a test may have left it frozen */
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
		rq.vm_list = &l;
		Keel__Vmk__VmkReply *rp = vc_rpc(&rq);
		for (size_t i = 0; rp != NULL && i < rp->n_vms; i++) {
			if (strcmp(rp->vms[i]->power_state, "poweredOn") != 0)
				continue;
			Keel__Vmk__VmkReply *off = power_off(rp->vms[i]->name, true);
			if (off != NULL)
				vc_done(off);
		}
		if (rp != NULL)
			vc_done(rp);
		kill(vc_vmk.pid, SIGTERM);
		waitpid(vc_vmk.pid, NULL, 0);
		vc_vmk.pid = 0;
	}
	if (vc_vmk.top[0] != '\0' && getenv("KEEL_KEEP") == NULL)
		nftw(vc_vmk.top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
