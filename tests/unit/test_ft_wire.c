/*
 * Tests for the FT mode of vmotion/wire.h (docs/ft.md, "The stream"): a primary and a
 * secondary conn over a socketpair, encrypted and plain, round-trip every record the
 * primary sends (CKPT, DISK, PAGES, ZERO, STATE, SYNC, CKPT_END, ABORT) and every one the
 * secondary sends (ACK, SYNCED, ABORT); the secondary refuses the vMotion-only records
 * (READY, GO, FINAL, ROUND, STATE_END) and the primary refuses what only a secondary's
 * peer sends; a vMotion destination refuses DISK, CKPT and CKPT_END and a vMotion source
 * refuses ACK; a hello with the FT flag is refused by a migration server and one without
 * it by an FT server; the typed senders refuse bad arguments and a vMotion conn (-EINVAL,
 * nothing sent).
 */
#include <errno.h>
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

#include <cmocka.h>

#include "lib/crc.h"
#include "lib/err.h"
#include "vmotion/wire.h"

#define GUEST_PAGES 4096u

static struct vmo_params params(bool ft, bool encrypt)
{
	struct vmo_params p = {
	    .count = 1, .encrypt = encrypt, .ft = ft, .guest_pages = GUEST_PAGES};

	for (int i = 0; i < VMO_KEY_SIZE; i++)
		p.key[i] = (uint8_t)(0x30 + i);
	for (int i = 0; i < VMO_ID_SIZE; i++)
		p.id[i] = (uint8_t)(0x70 + i);
	return p;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

struct hello_job {
	int fd;
	struct vmo_params p;
	uint32_t index;
	bool server;
	struct vmo_conn *conn;
	struct kb_errmsg err;
	int rc;
};

static void *hello_thread(void *arg)
{
	struct hello_job *j = arg;

	if (j->server)
		j->rc = vmo_server_hello(j->fd, &j->p, &j->conn, &j->index, &j->err);
	else
		j->rc = vmo_client_hello(j->fd, &j->p, j->index, &j->conn, &j->err);
	return NULL;
}

/* The primary (client) and the secondary (server) of one stream. */
struct pair {
	struct vmo_conn *pri, *sec;
};

/* Runs both hellos; 0 when both succeeded, else the client's and server's codes. */
static void hellos(bool cli_ft, bool srv_ft, bool encrypt, struct hello_job *cj,
		   struct hello_job *sj)
{
	int sv[2];
	pthread_t ct, st;

	memset(cj, 0, sizeof(*cj));
	memset(sj, 0, sizeof(*sj));
	cj->p = params(cli_ft, encrypt);
	sj->p = params(srv_ft, encrypt);
	sj->server = true;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cj->fd = sv[0];
	sj->fd = sv[1];
	assert_int_equal(pthread_create(&st, NULL, hello_thread, sj), 0);
	assert_int_equal(pthread_create(&ct, NULL, hello_thread, cj), 0);
	assert_int_equal(pthread_join(ct, NULL), 0);
	assert_int_equal(pthread_join(st, NULL), 0);
}

static void pair_open(struct pair *pr, bool ft, bool encrypt)
{
	struct hello_job cj, sj;

	hellos(ft, ft, encrypt, &cj, &sj);
	if (cj.rc != 0 || sj.rc != 0)
		fail_msg("hello: client %d (%s), server %d (%s)", cj.rc, cj.err.msg, sj.rc,
			 sj.err.msg);
	pr->pri = cj.conn;
	pr->sec = sj.conn;
}

static void pair_close(struct pair *pr)
{
	vmo_conn_free(pr->pri);
	vmo_conn_free(pr->sec);
}

static void send_ok(int rc, const struct kb_errmsg *err)
{
	if (rc != 0)
		fail_msg("send: %d %s", rc, err->msg);
}

static void recv_ok(struct vmo_conn *c, struct vmo_rec *rec, enum vmo_type type)
{
	struct kb_errmsg err = {{0}};
	int rc = vmo_recv(c, rec, &err);

	if (rc != 0)
		fail_msg("recv: %d %s", rc, err.msg);
	assert_int_equal(rec->type, type);
}

static void recv_refused(struct vmo_conn *c, int code, const char *what)
{
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	int rc = vmo_recv(c, &rec, &err);

	if (rc != code)
		fail_msg("%s: recv %d (%s), want %d", what, rc, err.msg, code);
	assert_true(err.msg[0] != '\0');
	/* the direction stays failed */
	assert_int_equal(vmo_recv(c, &rec, &err), KB_ESTATE);
}

/* ---- round trips ---- */

struct send_job {
	struct vmo_conn *c;
	const uint8_t *pages, *disk, *state;
	size_t state_len;
	struct kb_errmsg err;
	int rc;
};

/* Every record the primary sends, in the order roundtrip() expects them. */
static void *primary_sends(void *arg)
{
	struct send_job *j = arg;
	struct kb_errmsg *err = &j->err;
	struct vmo_conn *c = j->c;
	int rc;

	if ((rc = vmo_send_disk(c, 0, 0, j->disk, 512, err)) ||
	    (rc = vmo_send_sync(c, VMO_SYNC, 12, err)) ||
	    (rc = vmo_send_ckpt(c, VMO_CKPT, 0x1122334455667788ull, err)) ||
	    (rc =
		 vmo_send_disk(c, VMO_DISK_MAX - 1, 1ull << 40, j->disk, VMO_DISK_DATA_MAX, err)) ||
	    (rc = vmo_send_pages(c, GUEST_PAGES - 3, 3, j->pages, err)) ||
	    (rc = vmo_send_zero(c, 100, 1000, err)) ||
	    (rc =
		 vmo_send(c, VMO_STATE, &(struct iovec){(void *)j->state, j->state_len}, 1, err)) ||
	    (rc = vmo_send_ckpt_end(c, 0x1122334455667788ull, 1003, VMO_DISK_DATA_MAX, j->state_len,
				    kb_crc32c(0, j->state, j->state_len), err)) ||
	    (rc = vmo_send_abort(c, KB_ECANCELED, "ft stopped", err)))
		j->rc = rc;
	return NULL;
}

static void roundtrip(bool encrypt)
{
	static uint8_t pages[3 * VMO_PAGE_SIZE], disk[VMO_DISK_DATA_MAX], state[5000];
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;
	struct send_job job;
	pthread_t t;

	fill(pages, sizeof(pages), 1);
	fill(disk, sizeof(disk), 2);
	fill(state, sizeof(state), 3);
	pair_open(&pr, true, encrypt);

	/* primary -> secondary, from a thread: a 1 MiB record does not fit the socket */
	job = (struct send_job){
	    .c = pr.pri, .pages = pages, .disk = disk, .state = state, .state_len = sizeof(state)};
	assert_int_equal(pthread_create(&t, NULL, primary_sends, &job), 0);

	recv_ok(pr.sec, &rec, VMO_DISK);
	assert_int_equal(rec.u.disk.index, 0);
	assert_int_equal(rec.u.disk.offset, 0);
	assert_int_equal(rec.u.disk.len, 512);
	assert_memory_equal(rec.u.disk.data, disk, 512);
	recv_ok(pr.sec, &rec, VMO_SYNC);
	assert_int_equal(rec.u.sync_seq, 12);
	recv_ok(pr.sec, &rec, VMO_CKPT);
	assert_int_equal(rec.u.ckpt, 0x1122334455667788ull);
	recv_ok(pr.sec, &rec, VMO_DISK);
	assert_int_equal(rec.u.disk.index, VMO_DISK_MAX - 1);
	assert_int_equal(rec.u.disk.offset, 1ull << 40);
	assert_int_equal(rec.u.disk.len, VMO_DISK_DATA_MAX);
	assert_memory_equal(rec.u.disk.data, disk, VMO_DISK_DATA_MAX);
	recv_ok(pr.sec, &rec, VMO_PAGES);
	assert_int_equal(rec.u.pages.first, GUEST_PAGES - 3);
	assert_int_equal(rec.u.pages.count, 3);
	assert_memory_equal(rec.u.pages.data, pages, sizeof(pages));
	recv_ok(pr.sec, &rec, VMO_ZERO);
	assert_int_equal(rec.u.pages.first, 100);
	assert_int_equal(rec.u.pages.count, 1000);
	recv_ok(pr.sec, &rec, VMO_STATE);
	assert_int_equal(rec.u.state.len, sizeof(state));
	assert_memory_equal(rec.u.state.data, state, sizeof(state));
	recv_ok(pr.sec, &rec, VMO_CKPT_END);
	assert_int_equal(rec.u.ckpt_end.ckpt, 0x1122334455667788ull);
	assert_int_equal(rec.u.ckpt_end.pages, 1003);
	assert_int_equal(rec.u.ckpt_end.disk_bytes, VMO_DISK_DATA_MAX);
	assert_int_equal(rec.u.ckpt_end.state_len, sizeof(state));
	assert_int_equal(rec.u.ckpt_end.state_crc, kb_crc32c(0, state, sizeof(state)));
	recv_ok(pr.sec, &rec, VMO_ABORT);
	assert_int_equal(rec.u.abort.code, KB_ECANCELED);
	assert_string_equal(rec.u.abort.text, "ft stopped");
	assert_int_equal(pthread_join(t, NULL), 0);
	if (job.rc != 0)
		fail_msg("primary's sends: %d %s", job.rc, job.err.msg);

	/* secondary -> primary */
	send_ok(vmo_send_ckpt(pr.sec, VMO_ACK, 0x1122334455667788ull, &err), &err);
	send_ok(vmo_send_sync(pr.sec, VMO_SYNCED, 12, &err), &err);
	send_ok(vmo_send_abort(pr.sec, KB_EPROTO, "bad checkpoint", &err), &err);
	recv_ok(pr.pri, &rec, VMO_ACK);
	assert_int_equal(rec.u.ckpt, 0x1122334455667788ull);
	recv_ok(pr.pri, &rec, VMO_SYNCED);
	assert_int_equal(rec.u.sync_seq, 12);
	recv_ok(pr.pri, &rec, VMO_ABORT);
	assert_int_equal(rec.u.abort.code, KB_EPROTO);
	pair_close(&pr);
}

static void test_roundtrip_encrypted(void **state)
{
	(void)state;
	roundtrip(true);
}

static void test_roundtrip_plain(void **state)
{
	(void)state;
	roundtrip(false);
}

/* ---- which side may send what ---- */

static void test_secondary_refuses_vmotion_records(void **state)
{
	(void)state;
	static const enum vmo_type types[] = {VMO_READY,     VMO_GO,	  VMO_FINAL, VMO_ROUND,
					      VMO_STATE_END, VMO_RESUMED, VMO_ACK,   VMO_SYNCED};
	uint8_t p[16] = {0};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct kb_errmsg err = {{0}};
		struct pair pr;
		size_t len = types[i] == VMO_READY || types[i] == VMO_RESUMED	  ? 0
			     : types[i] == VMO_ROUND || types[i] == VMO_STATE_END ? 16
										  : 8;

		pair_open(&pr, true, true);
		/* each is well formed: only the FT mode refuses it */
		send_ok(vmo_send(pr.pri, types[i], &(struct iovec){p, len}, 1, &err), &err);
		recv_refused(pr.sec, KB_EPROTO, "a vMotion record at the secondary");
		pair_close(&pr);
	}
}

static void test_primary_refuses_primary_records(void **state)
{
	(void)state;
	static const enum vmo_type types[] = {VMO_READY, VMO_RESUMED, VMO_CKPT, VMO_PAGES,
					      VMO_DISK};
	static uint8_t p[16 + 512];

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct kb_errmsg err = {{0}};
		struct pair pr;
		size_t len = types[i] == VMO_READY || types[i] == VMO_RESUMED ? 0
			     : types[i] == VMO_CKPT			      ? 8
			     : types[i] == VMO_DISK			      ? 16 + 512
									      : 16 + 4096;
		static uint8_t pg[16 + 4096];

		memset(pg, 0, sizeof(pg));
		pg[8] = 1; /* one page */
		pair_open(&pr, true, false);
		send_ok(vmo_send(pr.sec, types[i],
				 &(struct iovec){types[i] == VMO_PAGES ? pg : p, len}, 1, &err),
			&err);
		recv_refused(pr.pri, KB_EPROTO, "a record from the secondary");
		pair_close(&pr);
	}
}

static void test_vmotion_refuses_ft_records(void **state)
{
	(void)state;
	static const enum vmo_type types[] = {VMO_DISK, VMO_CKPT, VMO_CKPT_END};
	static uint8_t p[16 + 512];

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct kb_errmsg err = {{0}};
		struct pair pr;
		size_t len = types[i] == VMO_DISK ? 16 + 512 : types[i] == VMO_CKPT ? 8 : 40;

		pair_open(&pr, false, true);
		send_ok(vmo_send(pr.pri, types[i], &(struct iovec){p, len}, 1, &err), &err);
		recv_refused(pr.sec, KB_EPROTO, "an FT record at a vMotion destination");
		pair_close(&pr);
	}
	/* and a vMotion source refuses ACK */
	{
		struct kb_errmsg err = {{0}};
		struct pair pr;

		pair_open(&pr, false, true);
		send_ok(vmo_send(pr.sec, VMO_ACK, &(struct iovec){p, 8}, 1, &err), &err);
		recv_refused(pr.pri, KB_EPROTO, "ACK at a vMotion source");
		pair_close(&pr);
	}
}

/* A malformed DISK or CKPT_END is refused by the secondary's decoder. */
static void test_secondary_refuses_malformed(void **state)
{
	(void)state;
	static uint8_t p[16 + 1024];
	struct {
		enum vmo_type type;
		size_t len;
		int byte; /* a byte set to value (-1: none) */
		uint8_t value;
	} cases[] = {
	    {VMO_DISK, 16 + 100, -1, 0}, /* data not a multiple of 512 */
	    {VMO_DISK, 16, -1, 0},	 /* no data */
	    {VMO_DISK, 16 + 512, 4, 1},	 /* reserved field */
	    {VMO_DISK, 16 + 512, 8, 1},	 /* offset 1 */
	    {VMO_DISK, 16 + 512, 0, 16}, /* disk index 16 */
	    {VMO_CKPT, 7, -1, 0},	 /* short */
	    {VMO_CKPT_END, 36, -1, 0},	 /* short */
	    {VMO_CKPT_END, 40, 36, 1},	 /* reserved field */
	    {VMO_ACK, 8, -1, 0},	 /* the secondary's record */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kb_errmsg err = {{0}};
		struct pair pr;

		memset(p, 0, sizeof(p));
		if (cases[i].byte >= 0)
			p[cases[i].byte] = cases[i].value;
		pair_open(&pr, true, i % 2 == 0);
		send_ok(vmo_send(pr.pri, cases[i].type, &(struct iovec){p, cases[i].len}, 1, &err),
			&err);
		print_message("malformed case %zu\n", i);
		recv_refused(pr.sec, KB_EPROTO, "a malformed record");
		pair_close(&pr);
	}
}

static void test_hello_mode_must_match(void **state)
{
	(void)state;
	struct hello_job cj, sj;

	/* an FT client at a migration server, and a migration client at an FT server */
	for (int ft = 0; ft < 2; ft++) {
		hellos(ft == 1, ft == 0, true, &cj, &sj);
		assert_int_equal(sj.rc, KB_EPROTO);
		assert_true(sj.err.msg[0] != '\0');
		assert_int_equal(cj.rc, KB_EPROTO);
		assert_null(cj.conn);
		assert_null(sj.conn);
		close(cj.fd);
		close(sj.fd);
	}
}

/* ---- the typed senders ---- */

static void test_typed_senders_refuse(void **state)
{
	(void)state;
	static uint8_t d[VMO_DISK_DATA_MAX + 512];
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;

	pair_open(&pr, true, true);
	assert_int_equal(vmo_send_disk(pr.pri, VMO_DISK_MAX, 0, d, 512, &err), -EINVAL);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(vmo_send_disk(pr.pri, 0, 100, d, 512, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, UINT64_MAX - 511, d, 512, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, 0, d, 0, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, 0, d, 256, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, 0, d, 513, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, 0, d, VMO_DISK_DATA_MAX + 512, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, 0, NULL, 512, &err), -EINVAL);
	assert_int_equal(vmo_send_ckpt(pr.pri, VMO_PAGES, 1, &err), -EINVAL);
	assert_int_equal(vmo_send_ckpt(pr.pri, VMO_SYNC, 1, &err), -EINVAL);
	/* nothing was sent: the next record is the first one the secondary sees */
	send_ok(vmo_send_ckpt(pr.pri, VMO_CKPT, 1, &err), &err);
	recv_ok(pr.sec, &rec, VMO_CKPT);
	assert_int_equal(rec.u.ckpt, 1);
	pair_close(&pr);

	pair_open(&pr, false, true);
	assert_int_equal(vmo_send_ckpt(pr.pri, VMO_CKPT, 1, &err), -EINVAL);
	assert_int_equal(vmo_send_ckpt(pr.sec, VMO_ACK, 1, &err), -EINVAL);
	assert_int_equal(vmo_send_disk(pr.pri, 0, 0, d, 512, &err), -EINVAL);
	assert_int_equal(vmo_send_ckpt_end(pr.pri, 1, 0, 0, 0, 0, &err), -EINVAL);
	send_ok(vmo_send_sync(pr.pri, VMO_SYNC, 3, &err), &err);
	recv_ok(pr.sec, &rec, VMO_SYNC);
	assert_int_equal(rec.u.sync_seq, 3);
	pair_close(&pr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_encrypted),
	    cmocka_unit_test(test_roundtrip_plain),
	    cmocka_unit_test(test_secondary_refuses_vmotion_records),
	    cmocka_unit_test(test_primary_refuses_primary_records),
	    cmocka_unit_test(test_vmotion_refuses_ft_records),
	    cmocka_unit_test(test_secondary_refuses_malformed),
	    cmocka_unit_test(test_hello_mode_must_match),
	    cmocka_unit_test(test_typed_senders_refuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
