/*
 * vmx's control socket under bad input: undecodable frames, over-long lengths, truncated
 * frames, requests naming no operation or carrying bad arguments. Each gets a clear error
 * (or the connection is closed) and the VM keeps running untouched.
 */
#include <errno.h>
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

#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

static char sock[512];
static pid_t vmx_pid;

static int connect_vmx(void)
{
	for (int i = 0; i < 200; i++) {
		int fd = kb_unix_connect(sock);
		if (fd >= 0)
			return fd;
		kb_sleep_ns(10 * KB_NSEC_PER_MSEC);
	}
	fail_msg("cannot connect to %s", sock);
	return -1;
}

static Keel__Vmk__VmxReply *roundtrip_raw(int fd, const void *p, size_t n)
{
	struct kb_buf in;

	assert_int_equal(kb_frame_send(fd, p, n), 0);
	kb_buf_init(&in, 1 << 20);
	assert_int_equal(kb_frame_recv(fd, &in, 1 << 20), 0);
	Keel__Vmk__VmxReply *rp = keel__vmk__vmx_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	assert_non_null(rp);
	return rp;
}

static Keel__Vmk__VmxReply *roundtrip(int fd, Keel__Vmk__VmxRequest *rq)
{
	uint8_t buf[4096];
	size_t n = keel__vmk__vmx_request__pack(rq, buf);
	return roundtrip_raw(fd, buf, n);
}

static void assert_running(void)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxStatus st = KEEL__VMK__VMX_STATUS__INIT;
	int fd = connect_vmx();

	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_STATUS;
	rq.status = &st;
	Keel__Vmk__VmxReply *rp = roundtrip(fd, &rq);
	assert_int_equal(rp->code, 0);
	assert_string_equal(rp->status->state, "running");
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	close(fd);
}

static int setup(void **state)
{
	if (!th_have_kvm())
		return 0;
	snprintf(sock, sizeof(sock), "%s/ctl.sock", th_tmpdir());
	vmx_pid = fork();
	if (vmx_pid == 0) {
		execl(th_bin_path("vmx"), "vmx", "--kernel", th_guest_path("payload_counter.elf"),
		      "--mem", "64M", "--ctl", sock, "--test-port", "--log-level", "error",
		      (char *)NULL);
		_exit(127);
	}
	return vmx_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	if (vmx_pid > 0) {
		kill(vmx_pid, SIGKILL);
		waitpid(vmx_pid, NULL, 0);
	}
	return 0;
}

static void test_garbage_frame_gets_an_error_and_close(void **state)
{
	NEED_KVM();
	int fd = connect_vmx();
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34};
	struct kb_buf in;

	Keel__Vmk__VmxReply *rp = roundtrip_raw(fd, junk, sizeof(junk));
	assert_int_equal(rp->code, KB_EPROTO);
	assert_non_null(strstr(rp->error, "VmxRequest"));
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	kb_buf_init(&in, 1024);
	assert_int_equal(kb_frame_recv(fd, &in, 1024), -EPIPE); /* closed by vmx */
	kb_buf_close(&in);
	close(fd);
	assert_running();
}

static void test_overlong_and_truncated_frames(void **state)
{
	NEED_KVM();
	int fd = connect_vmx();
	uint8_t hdr[4] = {0x7f, 0xff, 0xff, 0xff};
	struct kb_buf in;

	/* a length far over the limit: an error reply or a close, never a crash */
	assert_int_equal(send(fd, hdr, 4, MSG_NOSIGNAL), 4);
	kb_buf_init(&in, 1 << 20);
	int rv = kb_frame_recv(fd, &in, 1 << 20);
	if (rv == 0) {
		Keel__Vmk__VmxReply *rp = keel__vmk__vmx_reply__unpack(NULL, in.len, in.data);
		assert_non_null(rp);
		assert_true(rp->code < 0);
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	}
	close(fd);
	assert_running();

	/* a frame that announces 100 bytes and ends after 10 */
	fd = connect_vmx();
	uint8_t part[14] = {0, 0, 0, 100};
	assert_int_equal(send(fd, part, sizeof(part), MSG_NOSIGNAL), (ssize_t)sizeof(part));
	close(fd);
	kb_buf_close(&in);
	assert_running();
}

static void test_bad_requests_get_clear_errors(void **state)
{
	NEED_KVM();
	int fd = connect_vmx();
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxSave save = KEEL__VMK__VMX_SAVE__INIT;
	Keel__Vmk__VmxAgentSend as = KEEL__VMK__VMX_AGENT_SEND__INIT;
	Keel__Vmk__VmxRestore rs = KEEL__VMK__VMX_RESTORE__INIT;

	/* no operation */
	Keel__Vmk__VmxReply *rp = roundtrip(fd, &rq);
	assert_int_equal(rp->code, KB_EPROTO);
	assert_non_null(strstr(rp->error, "no operation"));
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	close(fd);

	fd = connect_vmx();
	save.path = "";
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_SAVE;
	rq.save = &save;
	rp = roundtrip(fd, &rq);
	assert_int_equal(rp->code, KB_ECONFIG);
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);

	as.line = "two\nlines";
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_AGENT_SEND;
	rq.agent_send = &as;
	rp = roundtrip(fd, &rq);
	assert_int_equal(rp->code, KB_ECONFIG);
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);

	/* restore into a running VM is refused */
	rs.path = "/nonexistent";
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_RESTORE;
	rq.restore = &rs;
	rp = roundtrip(fd, &rq);
	assert_true(rp->code < 0);
	assert_true(strlen(rp->error) > 0);
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);

	/* save to a directory that does not exist: error, VM keeps running */
	save.path = "/nonexistent/dir/state";
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_SAVE;
	rq.save = &save;
	rp = roundtrip(fd, &rq);
	assert_int_equal(rp->code, -ENOENT);
	assert_non_null(strstr(rp->error, "/nonexistent/dir/state"));
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	close(fd);
	assert_running();
}

static void test_power_off_ends_vmx_cleanly(void **state)
{
	NEED_KVM();
	int fd = connect_vmx(), status;
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxPowerOff off = KEEL__VMK__VMX_POWER_OFF__INIT;

	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_POWER_OFF;
	rq.power_off = &off;
	Keel__Vmk__VmxReply *rp = roundtrip(fd, &rq);
	assert_int_equal(rp->code, 0);
	assert_string_equal(rp->status->state, "stopped");
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	close(fd);
	assert_int_equal(waitpid(vmx_pid, &status, 0), vmx_pid);
	vmx_pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(sock, F_OK), -1); /* socket removed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_garbage_frame_gets_an_error_and_close),
	    cmocka_unit_test(test_overlong_and_truncated_frames),
	    cmocka_unit_test(test_bad_requests_get_clear_errors),
	    cmocka_unit_test(test_power_off_ends_vmx_cleanly),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
