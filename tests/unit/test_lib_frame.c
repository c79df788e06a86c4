/*
 * Tests for lib/frame: blocking round trips over a socketpair (empty, small, protobuf and
 * a multi-megabyte frame), partial writes on a non-blocking socket, every way a stream
 * can end or lie about a length, and the incremental decoder fed a byte at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "vmk.pb-c.h"

static int setup_pair(void **state)
{
	int *sv = malloc(2 * sizeof(int));

	if (!sv || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	*state = sv;
	return 0;
}

static int teardown_pair(void **state)
{
	int *sv = *state;

	kb_heap_fail_reset();
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(sv);
	return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void write_raw(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void test_roundtrip_small(void **state)
{
	int *sv = *state;
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_frame_send(sv[0], "hello", 5), 0);
	assert_int_equal(kb_frame_send(sv[0], NULL, 0), 0);
	assert_int_equal(kb_frame_send(sv[0], "x", 1), 0);
	assert_int_equal(kb_frame_recv(sv[1], &b, 64), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "hello", 5);
	assert_int_equal(kb_frame_recv(sv[1], &b, 64), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(kb_frame_recv(sv[1], &b, 1), 0); /* length == max is allowed */
	assert_int_equal(b.len, 1);
	/* Clean end of stream between frames. */
	close(sv[0]);
	sv[0] = -1;
	assert_int_equal(kb_frame_recv(sv[1], &b, 64), -EPIPE);
	assert_int_equal(b.len, 0);
	kb_buf_close(&b);
}

static void test_wire_format(void **state)
{
	int *sv = *state;
	uint8_t got[7];

	assert_int_equal(kb_frame_send(sv[0], "abc", 3), 0);
	assert_int_equal(read(sv[1], got, sizeof(got)), 7);
	assert_memory_equal(got, "\0\0\0\3abc", 7);
}

struct sender {
	int fd;
	const uint8_t *p;
	size_t len;
	int rc;
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;

	s->rc = kb_frame_send(s->fd, s->p, s->len);
	return NULL;
}

static void test_large_frame(void **state)
{
	int *sv = *state;
	size_t len = 3u << 20;
	uint8_t *data = malloc(len);
	struct sender s = {.fd = sv[0], .p = data, .len = len, .rc = 1};
	struct kb_buf b;
	pthread_t t;

	assert_non_null(data);
	fill(data, len, 7);
	kb_buf_init(&b, 0);
	assert_int_equal(pthread_create(&t, NULL, send_thread, &s), 0);
	assert_int_equal(kb_frame_recv(sv[1], &b, KB_FRAME_MAX_DEFAULT), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, data, len);
	kb_buf_close(&b);
	free(data);
}

struct slow_reader {
	int fd;
	struct kb_buf got;
};

static void *slow_read_thread(void *arg)
{
	struct slow_reader *r = arg;
	uint8_t chunk[997];
	ssize_t n;
	int i = 0;

	while ((n = read(r->fd, chunk, sizeof(chunk))) > 0) {
		if (kb_buf_append(&r->got, chunk, (size_t)n))
			break;
		if (++i % 64 == 0)
			usleep(1000);
	}
	return NULL;
}

static void test_partial_writes_nonblocking(void **state)
{
	int *sv = *state;
	size_t len = 1u << 20;
	uint8_t *data = malloc(len);
	struct slow_reader r = {.fd = sv[1]};
	int sndbuf = 4096;
	const uint8_t *payload;
	struct kb_frame_decoder d;
	size_t plen;
	pthread_t t;

	assert_non_null(data);
	fill(data, len, 99);
	kb_buf_init(&r.got, 0);
	/* A small send buffer on a non-blocking socket forces short writes and EAGAIN. */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(pthread_create(&t, NULL, slow_read_thread, &r), 0);
	assert_int_equal(kb_frame_send(sv[0], data, len), 0);
	assert_int_equal(kb_frame_send(sv[0], "tail", 4), 0);
	close(sv[0]);
	sv[0] = -1;
	assert_int_equal(pthread_join(t, NULL), 0);

	kb_frame_decoder_init(&d, len);
	assert_int_equal(kb_frame_feed(&d, r.got.data, r.got.len), 0);
	assert_int_equal(kb_frame_next(&d, &payload, &plen), 1);
	assert_int_equal(plen, len);
	assert_memory_equal(payload, data, len);
	assert_int_equal(kb_frame_next(&d, &payload, &plen), 1);
	assert_int_equal(plen, 4);
	assert_memory_equal(payload, "tail", 4);
	assert_int_equal(kb_frame_next(&d, &payload, &plen), 0);
	kb_frame_decoder_close(&d);
	kb_buf_close(&r.got);
	free(data);
}

static void test_truncated(void **state)
{
	int *sv = *state;
	struct kb_buf b;
	int pair[2];

	kb_buf_init(&b, 0);
	/* Header promises 100 bytes, the stream ends after 10. */
	write_raw(sv[0],
		  "\0\0\0\x64"
		  "0123456789",
		  14);
	shutdown(sv[0], SHUT_WR);
	assert_int_equal(kb_frame_recv(sv[1], &b, 1000), KB_ETRUNCATED);
	assert_int_equal(b.len, 0);

	/* The stream ends inside the header. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	write_raw(pair[0], "\0\0", 2);
	close(pair[0]);
	assert_int_equal(kb_frame_recv(pair[1], &b, 1000), KB_ETRUNCATED);
	close(pair[1]);
	kb_buf_close(&b);
}

static void test_too_big(void **state)
{
	int *sv = *state;
	struct kb_buf b;

	kb_buf_init(&b, 0);
	write_raw(sv[0], "\xff\xff\xff\xff", 4);
	/* Rejected before any allocation: with every allocation failing it is still
	 * KB_ETOOBIG, not -ENOMEM. */
	kb_heap_fail_after(0, -1);
	assert_int_equal(kb_frame_recv(sv[1], &b, KB_FRAME_MAX_DEFAULT), KB_ETOOBIG);
	kb_heap_fail_reset();
	assert_null(b.data);

	write_raw(sv[0], "\0\0\0\x11", 4);
	assert_int_equal(kb_frame_recv(sv[1], &b, 16), KB_ETOOBIG);
	kb_buf_close(&b);
}

static void test_recv_enomem(void **state)
{
	int *sv = *state;
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_frame_send(sv[0], "12345678", 8), 0);
	kb_heap_fail_after(0, 1);
	assert_int_equal(kb_frame_recv(sv[1], &b, 16), -ENOMEM);
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	kb_buf_close(&b);
}

static void test_socket_errors(void **state)
{
	int *sv = *state;
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_frame_recv(-1, &b, 16), -EBADF);
	assert_int_equal(kb_frame_send(-1, "x", 1), -EBADF);
	/* A vanished peer is -EPIPE, not a SIGPIPE that kills the process. */
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(kb_frame_send(sv[0], "x", 1), -EPIPE);
	kb_buf_close(&b);
}

static void test_over_pipe(void **state)
{
	struct kb_buf b;
	int p[2];

	/* Not a socket: the plain write path. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	kb_buf_init(&b, 0);
	assert_int_equal(kb_frame_send(p[1], "piped", 5), 0);
	close(p[1]);
	assert_int_equal(kb_frame_recv(p[0], &b, 16), 0);
	assert_memory_equal(b.data, "piped", 5);
	assert_int_equal(kb_frame_recv(p[0], &b, 16), -EPIPE);
	close(p[0]);
	kb_buf_close(&b);
}

static void test_protobuf(void **state)
{
	int *sv = *state;
	Keel__Vmk__VmxRequest req = KEEL__VMK__VMX_REQUEST__INIT, *got;
	Keel__Vmk__VmxAgentSend send = KEEL__VMK__VMX_AGENT_SEND__INIT;
	Keel__Vmk__VmxSave save = KEEL__VMK__VMX_SAVE__INIT;
	struct kb_buf b;

	kb_buf_init(&b, 0);
	send.line = "hello guest";
	req.req_case = KEEL__VMK__VMX_REQUEST__REQ_AGENT_SEND;
	req.agent_send = &send;
	assert_int_equal(kb_frame_send_pb(sv[0], &req.base), 0);
	save.path = "/var/lib/keel/vm1.state";
	req.req_case = KEEL__VMK__VMX_REQUEST__REQ_SAVE;
	req.save = &save;
	assert_int_equal(kb_frame_send_pb(sv[0], &req.base), 0);

	assert_int_equal(kb_frame_recv(sv[1], &b, KB_FRAME_MAX_DEFAULT), 0);
	got = keel__vmk__vmx_request__unpack(NULL, b.len, b.data);
	assert_non_null(got);
	assert_int_equal(got->req_case, KEEL__VMK__VMX_REQUEST__REQ_AGENT_SEND);
	assert_string_equal(got->agent_send->line, "hello guest");
	keel__vmk__vmx_request__free_unpacked(got, NULL);

	assert_int_equal(kb_frame_recv(sv[1], &b, KB_FRAME_MAX_DEFAULT), 0);
	got = keel__vmk__vmx_request__unpack(NULL, b.len, b.data);
	assert_non_null(got);
	assert_int_equal(got->req_case, KEEL__VMK__VMX_REQUEST__REQ_SAVE);
	assert_string_equal(got->save->path, "/var/lib/keel/vm1.state");
	keel__vmk__vmx_request__free_unpacked(got, NULL);
	kb_buf_close(&b);
}

static void test_protobuf_enomem(void **state)
{
	int *sv = *state;
	Keel__Vmk__VmxRequest req = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxPowerOn on = KEEL__VMK__VMX_POWER_ON__INIT;
	char c;

	req.req_case = KEEL__VMK__VMX_REQUEST__REQ_POWER_ON;
	req.power_on = &on;
	kb_heap_fail_after(0, 1);
	assert_int_equal(kb_frame_send_pb(sv[0], &req.base), -ENOMEM);
	/* Nothing reached the wire. */
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_roundtrip_small, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_wire_format, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_large_frame, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_partial_writes_nonblocking, setup_pair,
					    teardown_pair),
	    cmocka_unit_test_setup_teardown(test_truncated, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_too_big, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_recv_enomem, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_socket_errors, setup_pair, teardown_pair),
	    cmocka_unit_test(test_over_pipe),
	    cmocka_unit_test_setup_teardown(test_protobuf, setup_pair, teardown_pair),
	    cmocka_unit_test_setup_teardown(test_protobuf_enomem, setup_pair, teardown_pair),
	};

	return cmocka_run_group_tests_name("lib_frame", tests, NULL, NULL);
}
