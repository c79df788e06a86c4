/*
 * Tests of the vMotion stream's hello (vmotion/wire.h): every way a hello is refused (key,
 * id, count, index, magic, version, flags, FT against vMotion, a plain client when
 * encryption is required, a reply that does not prove the key, a silent or vanished peer),
 * by the server alone and end to end, and the hello's timeout cleared once it is done.
 */
#include "tests/unit/vmo_test.h"

/* Writes hello raw to a server conn's hello; returns its code and the status it answered
 * with (1 when it did not answer). */
static int server_refuses(const uint8_t *hello, size_t n, const struct vmo_params *p, int *status,
			  struct kb_errmsg *err)
{
	struct vmo_conn *c = NULL;
	uint8_t reply[VMO_REPLY_SIZE];
	uint32_t index = 99;
	int sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	write_all(sv[0], hello, n);
	if (n < VMO_HELLO_SIZE)
		shutdown(sv[0], SHUT_WR);
	memset(err, 0, sizeof(*err));
	rc = vmo_server_hello(sv[1], p, &c, &index, err);
	assert_null(c);
	assert_int_equal(index, 99);
	if (recv(sv[0], reply, sizeof(reply), MSG_DONTWAIT) == (ssize_t)sizeof(reply)) {
		uint8_t in[18 + 88 + 32], mac[32];

		memcpy(in, "keel-vmotion-reply", 18);
		memcpy(in + 18, hello, 88);
		memcpy(in + 18 + 88, reply, 32);
		hmac256(p->key, 32, in, sizeof(in), mac);
		assert_memory_equal(reply + 32, mac, 32); /* a refusal is signed too */
		*status = (int32_t)get32(reply + 12);
	} else {
		*status = 1;
	}
	close(sv[0]);
	close(sv[1]); /* the caller's to close after a refusal */
	return rc;
}

static void expect_refusal(const uint8_t *hello, size_t n, const struct vmo_params *p, int code,
			   bool answered, const char *words)
{
	struct kb_errmsg err;
	int status, rc;

	rc = server_refuses(hello, n, p, &status, &err);
	if (rc != code || strstr(err.msg, words) == NULL)
		fail_msg("expected %d '%s', got %d '%s'", code, words, rc, err.msg);
	assert_int_equal(status, answered ? code : 1);
}

static void test_hello_refused_by_server(void **state)
{
	struct vmo_params p = params(4, true), other = p;
	uint8_t h[VMO_HELLO_SIZE];

	make_hello(h, &p, 1, 1, 2, 4); /* the valid one, as a check of the helper */
	{
		uint32_t index = 0;
		bool enc = false;
		struct kb_errmsg err = {{0}};

		assert_int_equal(vmo_hello_check(h, &p, &index, &enc, &err), 0);
		assert_int_equal(index, 2);
		assert_true(enc);
	}
	other.key[5] ^= 1;
	make_hello(h, &other, 1, 1, 2, 4);
	expect_refusal(h, sizeof(h), &p, KB_ECHECKSUM, true, "does not prove the migration key");
	other = p;
	other.id[15] ^= 0x80;
	make_hello(h, &other, 1, 1, 2, 4);
	expect_refusal(h, sizeof(h), &p, KB_ENOTFOUND, true, "another migration id");
	make_hello(h, &p, 1, 1, 2, 3);
	expect_refusal(h, sizeof(h), &p, KB_EPROTO, true, "claims 3 streams; this migration has 4");
	make_hello(h, &p, 1, 1, 4, 4);
	expect_refusal(h, sizeof(h), &p, KB_EPROTO, true, "stream 4 of 4");
	make_hello(h, &p, 2, 1, 0, 4);
	expect_refusal(h, sizeof(h), &p, KB_EVERSION, true, "version 2");
	make_hello(h, &p, 1, 5, 0, 4);
	expect_refusal(h, sizeof(h), &p, KB_EPROTO, true, "unknown flags 0x5");
	/* FT and vMotion streams never reach each other's decoder */
	make_hello(h, &p, 1, 3, 0, 4);
	expect_refusal(h, sizeof(h), &p, KB_EPROTO, true, "an FT hello to a vMotion endpoint");
	p.ft = true;
	make_hello(h, &p, 1, 1, 0, 4);
	expect_refusal(h, sizeof(h), &p, KB_EPROTO, true, "a vMotion hello to an FT endpoint");
	p.ft = false;
	make_hello(h, &p, 1, 0, 1, 4);
	expect_refusal(h, sizeof(h), &p, KB_ENOTSUP, true, "requires encryption");
	/* the same plain hello is fine when encryption is not required */
	p.encrypt = false;
	{
		uint32_t index = 0;
		bool enc = true;
		struct kb_errmsg err = {{0}};

		assert_int_equal(vmo_hello_check(h, &p, &index, &enc, &err), 0);
		assert_false(enc);
	}
	p.encrypt = true;
	make_hello(h, &p, 1, 1, 0, 4);
	h[3] ^= 0x20;
	expect_refusal(h, sizeof(h), &p, KB_EPROTO, false, "wrong magic");
	make_hello(h, &p, 1, 1, 0, 4);
	expect_refusal(h, 40, &p, KB_ETRUNCATED, false, "after 40 of the hello's 88 bytes");
	expect_refusal(h, 0, &p, KB_ETRUNCATED, false, "after 0 of");
	/* a MAC that does not cover the bytes: one byte of the id changed after signing */
	make_hello(h, &p, 1, 1, 0, 4);
	h[20] ^= 1;
	expect_refusal(h, sizeof(h), &p, KB_ECHECKSUM, true, "MAC mismatch");
	/* bad parameters are the caller's error */
	p.count = 0;
	expect_refusal(h, sizeof(h), &p, -EINVAL, false, "1..16 streams");
}

/* A client hello against a server thread with other parameters: codes on both sides. */
static void client_vs_server(struct vmo_params cp, struct vmo_params sp, uint32_t index, int code,
			     const char *client_words, const char *server_words)
{
	struct hello_job sj = {.p = sp, .server = true};
	struct kb_errmsg err = {{0}};
	struct vmo_conn *c = NULL;
	pthread_t st;
	int sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	sj.fd = sv[1];
	assert_int_equal(pthread_create(&st, NULL, hello_thread, &sj), 0);
	rc = vmo_client_hello(sv[0], &cp, index, &c, &err);
	assert_int_equal(pthread_join(st, NULL), 0);
	assert_null(c);
	assert_null(sj.conn);
	if (rc != code || strstr(err.msg, client_words) == NULL)
		fail_msg("client: expected %d '%s', got %d '%s'", code, client_words, rc, err.msg);
	if (sj.rc != code || strstr(sj.err.msg, server_words) == NULL)
		fail_msg("server: expected %d '%s', got %d '%s'", code, server_words, sj.rc,
			 sj.err.msg);
	close(sv[0]);
	close(sv[1]);
}

static void test_hello_refused_end_to_end(void **state)
{
	struct vmo_params p = params(4, true), q;
	struct kb_errmsg err = {{0}};
	struct vmo_conn *c = NULL;

	q = p;
	q.key[0] ^= 1;
	client_vs_server(q, p, 1, KB_ECHECKSUM,
			 "refused the hello: checksum mismatch (its reply does not prove",
			 "does not prove the migration key");
	q = p;
	q.id[0] ^= 1;
	client_vs_server(q, p, 1, KB_ENOTFOUND, "refused the hello: no such object",
			 "another migration id");
	q = p;
	q.count = 2;
	client_vs_server(q, p, 1, KB_EPROTO, "stream 1: the destination refused the hello",
			 "claims 2 streams");
	q = p;
	q.encrypt = false;
	client_vs_server(q, p, 1, KB_ENOTSUP, "refused the hello: operation not supported",
			 "requires encryption");
	/* the client refuses a bad index itself, before any I/O */
	assert_int_equal(vmo_client_hello(-1, &p, 4, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "stream 4 of 4"));
	assert_null(c);
}

/* A fake server: answers the client's hello with reply bytes made by make(). */
struct fake_server {
	int fd;
	struct vmo_params p;
	int how; /* 0 accept with a wrong MAC, 1 wrong magic, 2 version 2, 3 close, 4 silent,
		    5 a short reply */
};

static void *fake_server_thread(void *arg)
{
	struct fake_server *f = arg;
	uint8_t hello[VMO_HELLO_SIZE], reply[VMO_REPLY_SIZE], in[18 + 88 + 32];

	read_exact(f->fd, hello, sizeof(hello));
	memcpy(reply, "KEELVMO1", 8);
	put32(reply + 8, f->how == 2 ? 2 : 1);
	put32(reply + 12, 0);
	fill(reply + 16, 16, 3);
	memcpy(in, "keel-vmotion-reply", 18);
	memcpy(in + 18, hello, 88);
	memcpy(in + 18 + 88, reply, 32);
	hmac256(f->p.key, 32, in, sizeof(in), reply + 32);
	if (f->how == 0)
		reply[40] ^= 1;
	if (f->how == 1)
		reply[0] = 'X';
	if (f->how == 3) {
		shutdown(f->fd, SHUT_WR);
		return NULL;
	}
	if (f->how == 4)
		return NULL;
	write_all(f->fd, reply, f->how == 5 ? 30 : sizeof(reply));
	if (f->how == 5)
		shutdown(f->fd, SHUT_WR);
	return NULL;
}

static void test_hello_bad_replies(void **state)
{
	static const struct {
		int code;
		const char *words;
	} want[] = {
	    {KB_ECHECKSUM, "reply does not prove the migration key"},
	    {KB_EPROTO, "not a vMotion reply"},
	    {KB_EVERSION, "reply of version 2"},
	    {KB_ETRUNCATED, "without answering the hello"},
	    {KB_ETIMEOUT, "no answer to the hello within 300 ms"},
	    {KB_ETRUNCATED, "inside its reply"},
	};

	for (int how = 0; how < 6; how++) {
		struct fake_server f = {.p = params(2, true), .how = how};
		struct vmo_params p = params(2, true);
		struct kb_errmsg err = {{0}};
		struct vmo_conn *c = NULL;
		pthread_t t;
		int sv[2], rc;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		f.fd = sv[1];
		vmo_hello_timeout_set(how == 4 ? 300 : 10000);
		assert_int_equal(pthread_create(&t, NULL, fake_server_thread, &f), 0);
		rc = vmo_client_hello(sv[0], &p, 1, &c, &err);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_null(c);
		if (rc != want[how].code || strstr(err.msg, want[how].words) == NULL)
			fail_msg("case %d: expected %d '%s', got %d '%s'", how, want[how].code,
				 want[how].words, rc, err.msg);
		close(sv[0]);
		close(sv[1]);
	}
	vmo_hello_timeout_set(10000);
}

/* A silent source cannot hold the destination: the hello times out. */
static void test_hello_silent_client(void **state)
{
	struct vmo_params p = params(2, true);
	struct kb_errmsg err = {{0}};
	struct vmo_conn *c = NULL;
	uint32_t index;
	int sv[2];

	vmo_hello_timeout_set(200);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	write_all(sv[0], "KEELVMO1", 8); /* then nothing */
	assert_int_equal(vmo_server_hello(sv[1], &p, &c, &index, &err), KB_ETIMEOUT);
	assert_non_null(strstr(err.msg, "no hello within 200 ms"));
	assert_null(c);
	close(sv[0]);
	close(sv[1]);
	vmo_hello_timeout_set(10000);
}

/* After the hello the timeout is gone on both sides: a record may take longer than it. */
struct waiter {
	struct vmo_conn *c;
	struct vmo_rec rec;
	int rc;
	struct kb_errmsg err;
};

static void *waiter_thread(void *arg)
{
	struct waiter *w = arg;

	w->rc = vmo_recv(w->c, &w->rec, &w->err);
	return NULL;
}

static void test_hello_timeout_cleared(void **state)
{
	struct timespec ts = {1, 500 * 1000 * 1000};
	struct kb_errmsg err = {{0}};
	struct waiter a = {.rc = 1}, b = {.rc = 1};
	struct pair pr;
	pthread_t ta, tb;

	vmo_hello_timeout_set(1000);
	pair_open(&pr, 1, 0, true, false);
	vmo_hello_timeout_set(10000);
	a.c = pr.cli;
	b.c = pr.srv;
	assert_int_equal(pthread_create(&ta, NULL, waiter_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, waiter_thread, &b), 0);
	nanosleep(&ts, NULL);
	send_ok(vmo_send_go(pr.cli, 3, &err), &err);
	send_ok(vmo_send_empty(pr.srv, VMO_READY, &err), &err);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	if (a.rc || b.rc)
		fail_msg("client %d '%s', server %d '%s'", a.rc, a.err.msg, b.rc, b.err.msg);
	assert_int_equal(a.rec.type, VMO_READY);
	assert_int_equal(b.rec.type, VMO_GO);
	pair_close(&pr);
}

/* ---- tampering ---- */

/* A relay pair with the client's next record captured into buf. */
int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hello_refused_by_server),
	    cmocka_unit_test(test_hello_refused_end_to_end),
	    cmocka_unit_test(test_hello_bad_replies),
	    cmocka_unit_test(test_hello_silent_client),
	    cmocka_unit_test(test_hello_timeout_cleared),
	};

	return cmocka_run_group_tests_name("vmo_hello", tests, NULL, NULL);
}
