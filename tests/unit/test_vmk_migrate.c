/*
 * vMotion, vmkernel's part: the pieces kernel/vm/migrate.c builds on, without VMs
 * (tests/integration/vmk_migrate.sh runs the migrations themselves).
 *
 * - vmk_cluster_migrate_call() against a fake clusterd (a thread serving one Unix socket):
 *   OP_MIGRATE_COMMIT and OP_MIGRATE_ABORT carry the uuid, op id and reason; the answer's
 *   owner, epoch and operation in flight come back; no clusterd is "no cluster"; a refusal
 *   is clusterd's code and message; garbage is KB_EPROTO.
 * - vmk_net_tagged_list(): every VMotion adapter of a network.conf in configuration order,
 *   the count past the caller's room, none, an unknown tag, no file.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "cluster.pb-c.h"
#include "kernel/core/cluster.h"
#include "kernel/net/stack_socket.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/frame.h"

/* ---- a fake clusterd: one answer per connection, the request kept ------------------ */

static struct {
	pthread_t th;
	int listen_fd;
	char dir[64], path[PATH_MAX];
	bool garbage;
	Keel__Cluster__ClusterReply reply;
	Keel__Cluster__ClusterVmReply vm;
	Keel__Cluster__Operation op;
	/* the last request */
	int rq_op;
	char rq_uuid[64], rq_error[256];
	uint64_t rq_op_id;
} fk;

static void *fk_main(void *arg)
{
	(void)arg;
	int fd = accept(fk.listen_fd, NULL, NULL);
	struct kb_buf in;

	if (fd < 0)
		return NULL;
	kb_buf_init(&in, 1 << 20);
	if (kb_frame_recv(fd, &in, 1 << 20) == 0) {
		Keel__Cluster__ClusterRequest *rq =
		    keel__cluster__cluster_request__unpack(NULL, in.len, in.data);
		if (rq != NULL && rq->vm != NULL) {
			fk.rq_op = rq->vm->op;
			snprintf(fk.rq_uuid, sizeof(fk.rq_uuid), "%s", rq->vm->uuid);
			snprintf(fk.rq_error, sizeof(fk.rq_error), "%s", rq->vm->error);
			fk.rq_op_id = rq->vm->op_id;
		}
		if (rq != NULL)
			keel__cluster__cluster_request__free_unpacked(rq, NULL);
		if (fk.garbage)
			kb_frame_send(fd, "\xff\xff\xff", 3);
		else
			kb_frame_send_pb(fd, &fk.reply.base);
	}
	kb_buf_close(&in);
	close(fd);
	return NULL;
}

/* Serves one request with the answer set in fk (member, owner, epoch, op in flight). */
static void fk_start(void)
{
	fk.listen_fd = kb_unix_listen(fk.path, 4);
	assert_true(fk.listen_fd >= 0);
	assert_int_equal(pthread_create(&fk.th, NULL, fk_main, NULL), 0);
}

static void fk_join(void)
{
	pthread_join(fk.th, NULL);
	close(fk.listen_fd);
	unlink(fk.path);
}

static int setup(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof(fk));
	snprintf(fk.dir, sizeof(fk.dir), "/tmp/test_vmk_migrate-XXXXXX");
	assert_non_null(mkdtemp(fk.dir));
	snprintf(fk.path, sizeof(fk.path), "%s/clusterd.sock", fk.dir);
	keel__cluster__cluster_reply__init(&fk.reply);
	keel__cluster__cluster_vm_reply__init(&fk.vm);
	keel__cluster__operation__init(&fk.op);
	fk.reply.vm = &fk.vm;
	return 0;
}

static int teardown(void **state)
{
	char path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/network.conf", fk.dir);
	unlink(path);
	unlink(fk.path);
	rmdir(fk.dir);
	return 0;
}

static void test_commit_switched(void **state)
{
	struct vmk_cluster_mig m = {.op_id = 42};
	struct vmk_cluster_vm cv;
	struct kb_errmsg err = {{0}};

	(void)state;
	fk.vm.member = true;
	fk.vm.owner = 7;
	fk.vm.epoch = 9;
	fk.vm.host_id = 3;
	fk_start();
	assert_int_equal(vmk_cluster_migrate_call(fk.path, 2000, VMK_CLUSTER_MIGRATE_COMMIT, "u-1",
						  &m, &cv, &err),
			 0);
	fk_join();
	assert_int_equal(fk.rq_op, 9);
	assert_string_equal(fk.rq_uuid, "u-1");
	assert_int_equal(fk.rq_op_id, 42);
	assert_string_equal(fk.rq_error, "");
	assert_true(cv.member);
	assert_int_equal(cv.owner, 7);
	assert_int_equal(cv.epoch, 9);
	assert_int_equal(cv.op_id, 0); /* the switchover ended the operation */
}

static void test_abort_in_flight(void **state)
{
	struct vmk_cluster_mig m = {.op_id = 42, .error = "the commit failed: no leader"};
	struct vmk_cluster_vm cv;
	struct kb_errmsg err = {{0}};

	(void)state;
	fk.vm.member = true;
	fk.vm.owner = 3;
	fk.vm.epoch = 8;
	fk.op.id = 42;
	fk.op.destination = 7;
	fk.vm.op = &fk.op;
	fk_start();
	assert_int_equal(vmk_cluster_migrate_call(fk.path, 2000, VMK_CLUSTER_MIGRATE_ABORT, "u-1",
						  &m, &cv, &err),
			 0);
	fk_join();
	assert_int_equal(fk.rq_op, 10);
	assert_int_equal(fk.rq_op_id, 42);
	assert_string_equal(fk.rq_error, "the commit failed: no leader");
	assert_int_equal(cv.owner, 3);
	assert_int_equal(cv.epoch, 8);
	assert_int_equal(cv.op_id, 42);
	assert_int_equal(cv.op_destination, 7);
}

static void test_refused_and_garbage(void **state)
{
	struct vmk_cluster_mig m = {.op_id = 5};
	struct vmk_cluster_vm cv;
	struct kb_errmsg err = {{0}};

	(void)state;
	fk.reply.code = KB_ENOTFOUND;
	fk.reply.error = "migration 5 of VM web1 is not in flight";
	fk_start();
	assert_int_equal(vmk_cluster_migrate_call(fk.path, 2000, VMK_CLUSTER_MIGRATE_COMMIT, "u-1",
						  &m, &cv, &err),
			 KB_ENOTFOUND);
	fk_join();
	assert_string_equal(err.msg, "migration 5 of VM web1 is not in flight");
	assert_false(cv.member);

	fk.garbage = true;
	fk_start();
	assert_int_equal(vmk_cluster_migrate_call(fk.path, 2000, VMK_CLUSTER_MIGRATE_ABORT, "u-1",
						  &m, &cv, &err),
			 KB_EPROTO);
	fk_join();
}

static void test_no_clusterd(void **state)
{
	struct vmk_cluster_mig m = {.op_id = 5};
	struct vmk_cluster_vm cv = {.member = true};
	struct kb_errmsg err = {{0}};

	(void)state;
	assert_int_equal(vmk_cluster_migrate_call(fk.path, 2000, VMK_CLUSTER_MIGRATE_COMMIT, "u-1",
						  &m, &cv, &err),
			 0);
	assert_false(cv.member);
}

/* ---- VMotion adapters ---------------------------------------------------------------- */

static void write_conf(const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/network.conf", fk.dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char conf[] =
    "version 1\n"
    "vswitch \"vSwitch0\" mtu 1500\n"
    "portgroup \"PG\" vswitch \"vSwitch0\" vlan 0\n"
    "netstack \"vmotion\"\n"
    "vmknic \"vmk0\" portgroup \"PG\" netstack \"defaultTcpipStack\" ip 198.18.0.11/24 "
    "gateway none mtu 1500 mac 02:7e:cd:da:bd:ef tags Management\n"
    "vmknic \"vmk1\" portgroup \"PG\" netstack \"vmotion\" ip 198.18.2.11/24 gateway none mtu "
    "1500 mac 02:eb:82:b6:0f:c2 tags VMotion,Provisioning\n"
    "vmknic \"vmk2\" portgroup \"PG\" netstack \"defaultTcpipStack\" ip 198.18.3.11/24 gateway "
    "none mtu 1500 mac 02:eb:82:b6:0f:c3 tags VMotion\n";

static void test_tagged_list(void **state)
{
	struct vmk_net_tagged t[4];
	struct kb_errmsg err = {{0}};
	char a[INET_ADDRSTRLEN];
	size_t n = 99;

	(void)state;
	assert_int_equal(vmk_net_tagged_list(fk.dir, "VMotion", t, 4, &n, &err), -ENOENT);
	assert_int_equal(n, 0);
	write_conf(conf);
	assert_int_equal(vmk_net_tagged_list(fk.dir, "vmotion", t, 4, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(t[0].vmknic, "vmk1");
	assert_string_equal(t[0].netstack, "vmotion");
	inet_ntop(AF_INET, &t[0].addr.sin_addr, a, sizeof(a));
	assert_string_equal(a, "198.18.2.11");
	assert_int_equal(t[0].prefix, 24);
	assert_string_equal(t[1].vmknic, "vmk2");
	assert_string_equal(t[1].netstack, "defaultTcpipStack");
	/* room for one: the first, and the count of all */
	memset(t, 0, sizeof(t));
	assert_int_equal(vmk_net_tagged_list(fk.dir, "VMotion", t, 1, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(t[0].vmknic, "vmk1");
	assert_string_equal(t[1].vmknic, "");
	assert_int_equal(vmk_net_tagged_list(fk.dir, "vSAN", t, 4, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(vmk_net_tagged_list(fk.dir, "Bogus", t, 4, &n, &err), KB_ECONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_switched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_and_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_clusterd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tagged_list, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
