/*
 * Helpers shared by the vMotion stream's unit tests (test_vmo_wire.c, test_vmo_hello.c):
 * stream parameters, byte helpers, an independent HMAC, and pairs of conns over socketpairs
 * (optionally through a relay in the test, to capture, change and inject record bytes).
 */
#ifndef TESTS_UNIT_VMO_TEST_H
#define TESTS_UNIT_VMO_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/crc.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "vmotion/wire.h"

#define GUEST_PAGES 4096u /* 16 chunks of 256 pages */

static __attribute__((unused)) struct vmo_params params(uint32_t count, bool encrypt)
{
	struct vmo_params p = {.count = count, .encrypt = encrypt, .guest_pages = GUEST_PAGES};

	for (int i = 0; i < VMO_KEY_SIZE; i++)
		p.key[i] = (uint8_t)(0xa0 + i);
	for (int i = 0; i < VMO_ID_SIZE; i++)
		p.id[i] = (uint8_t)(0x10 + i);
	return p;
}

static __attribute__((unused)) void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static __attribute__((unused)) void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static __attribute__((unused)) void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static __attribute__((unused)) uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static __attribute__((unused)) void hmac256(const uint8_t *key, size_t klen, const uint8_t *d,
					    size_t n, uint8_t *out)
{
	unsigned int len = 0;

	assert_non_null(HMAC(EVP_sha256(), key, (int)klen, d, n, out, &len));
	assert_int_equal(len, 32);
}

static __attribute__((unused)) void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		assert_true(w > 0);
		b += w;
		n -= (size_t)w;
	}
}

static __attribute__((unused)) void read_exact(int fd, void *p, size_t n)
{
	assert_int_equal(recv(fd, p, n, MSG_WAITALL), (ssize_t)n);
}

static __attribute__((unused)) void big_buffers(int fd)
{
	int size = 4 << 20;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* ---- pairs of conns ---- */

struct hello_job {
	int fd;
	struct vmo_params p;
	uint32_t index;
	bool server;
	struct vmo_conn *conn;
	struct kb_errmsg err;
	int rc;
};

static __attribute__((unused)) void *hello_thread(void *arg)
{
	struct hello_job *j = arg;

	if (j->server)
		j->rc = vmo_server_hello(j->fd, &j->p, &j->conn, &j->index, &j->err);
	else
		j->rc = vmo_client_hello(j->fd, &j->p, j->index, &j->conn, &j->err);
	return NULL;
}

struct pair {
	struct vmo_conn *cli, *srv;
	int cli_end, srv_end; /* the relay's ends (-1 for a direct pair) */
	uint8_t hello[VMO_HELLO_SIZE], reply[VMO_REPLY_SIZE];
};

/* A client and a server conn for stream index of a migration with count streams; relay:
 * through two socketpairs whose other ends the test keeps. */
static __attribute__((unused)) void pair_open(struct pair *pr, uint32_t count, uint32_t index,
					      bool encrypt, bool relay)
{
	struct hello_job cj = {.p = params(count, encrypt), .index = index};
	struct hello_job sj = {.p = params(count, encrypt), .server = true};
	int a[2], b[2];
	pthread_t ct, st;

	memset(pr, 0, sizeof(*pr));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	cj.fd = a[0];
	if (relay) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
		sj.fd = b[0];
		pr->cli_end = a[1];
		pr->srv_end = b[1];
		big_buffers(a[1]);
		big_buffers(b[1]);
	} else {
		sj.fd = a[1];
		pr->cli_end = pr->srv_end = -1;
	}
	assert_int_equal(pthread_create(&st, NULL, hello_thread, &sj), 0);
	assert_int_equal(pthread_create(&ct, NULL, hello_thread, &cj), 0);
	if (relay) {
		read_exact(pr->cli_end, pr->hello, sizeof(pr->hello));
		write_all(pr->srv_end, pr->hello, sizeof(pr->hello));
		read_exact(pr->srv_end, pr->reply, sizeof(pr->reply));
		write_all(pr->cli_end, pr->reply, sizeof(pr->reply));
	}
	assert_int_equal(pthread_join(ct, NULL), 0);
	assert_int_equal(pthread_join(st, NULL), 0);
	if (cj.rc != 0 || sj.rc != 0)
		fail_msg("hello: client %d (%s), server %d (%s)", cj.rc, cj.err.msg, sj.rc,
			 sj.err.msg);
	assert_int_equal(sj.index, index);
	assert_int_equal(vmo_conn_index(cj.conn), index);
	assert_int_equal(vmo_conn_index(sj.conn), index);
	pr->cli = cj.conn;
	pr->srv = sj.conn;
}

static __attribute__((unused)) void pair_close(struct pair *pr)
{
	vmo_conn_free(pr->cli);
	vmo_conn_free(pr->srv);
	if (pr->cli_end >= 0)
		close(pr->cli_end);
	if (pr->srv_end >= 0)
		close(pr->srv_end);
	kb_heap_fail_reset();
}

/* Reads one whole record the client sent from the relay's client end. */
static __attribute__((unused)) size_t capture(struct pair *pr, bool encrypt, uint8_t *buf)
{
	size_t len;

	read_exact(pr->cli_end, buf, 8);
	len = get32(buf + 4) + (encrypt ? 16 : 4);
	read_exact(pr->cli_end, buf + 8, len);
	return 8 + len;
}

static __attribute__((unused)) int recv_code(struct vmo_conn *c, struct vmo_rec *rec,
					     struct kb_errmsg *err)
{
	memset(err, 0, sizeof(*err));
	return vmo_recv(c, rec, err);
}

static __attribute__((unused)) void send_ok(int rc, const struct kb_errmsg *err)
{
	if (rc != 0)
		fail_msg("send: %d %s", rc, err->msg);
}

static __attribute__((unused)) void recv_ok(struct vmo_conn *c, struct vmo_rec *rec,
					    enum vmo_type type)
{
	struct kb_errmsg err = {{0}};
	int rc = vmo_recv(c, rec, &err);

	if (rc != 0)
		fail_msg("recv: %d %s", rc, err.msg);
	assert_int_equal(rec->type, type);
}

/* ---- round trips ---- */

static __attribute__((unused)) void make_hello(uint8_t h[VMO_HELLO_SIZE],
					       const struct vmo_params *p, uint32_t version,
					       uint32_t flags, uint32_t index, uint32_t count)
{
	memcpy(h, "KEELVMO1", 8);
	put32(h + 8, version);
	put32(h + 12, flags);
	memcpy(h + 16, p->id, 16);
	put32(h + 32, index);
	put32(h + 36, count);
	fill(h + 40, 16, index + 1);
	hmac256(p->key, 32, h, 56, h + 56);
}

#endif
