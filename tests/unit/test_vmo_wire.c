/*
 * Tests for vmotion/wire.h: round trips of every record type over a socketpair, encrypted
 * and plain; the hello's and the records' bytes checked against the format in
 * docs/vmotion.md with an independent HKDF, HMAC and AES-GCM (the hello's refusals are in
 * test_vmo_hello.c); one flipped
 * byte anywhere in a record, replayed and reordered records, truncation at every byte, a
 * length over the limit (refused without reading it); the decoder's rules one by one; the
 * receive order; a sender and a receiver thread on one conn; vmo_conn_shutdown unblocking
 * a reader; a vanished peer (an error, not SIGPIPE); out of memory; and the sealed throughput of 1 MiB PAGES records (printed).
 *
 * Records are tampered with by a relay in the middle: the client's socketpair and the
 * server's socketpair both end in the test, which forwards the hello and then captures,
 * changes and injects record bytes.
 */
#include "tests/unit/vmo_test.h"

static void roundtrip(bool encrypt)
{
	static uint8_t pages[VMO_PAGES_MAX * VMO_PAGE_SIZE];
	uint8_t state[3000];
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;

	fill(pages, sizeof(pages), 7);
	fill(state, sizeof(state), 9);
	pair_open(&pr, 3, 0, encrypt, false);

	/* source -> destination: every type it may send; pages 768.. are stream 0's again */
	send_ok(vmo_send_pages(pr.cli, 0, VMO_PAGES_MAX, pages, &err), &err);
	send_ok(vmo_send_pages(pr.cli, 768 + 5, 3, pages + VMO_PAGE_SIZE, &err), &err);
	send_ok(vmo_send_zero(pr.cli, 768 + 255, 1, &err), &err);
	send_ok(vmo_send_zero(pr.cli, 1536, 256, &err), &err);
	send_ok(vmo_send_round(pr.cli, 7, 123456789012ull, &err), &err);
	send_ok(vmo_send_sync(pr.cli, VMO_SYNC, 99, &err), &err);
	send_ok(vmo_send_final(pr.cli, 0xfedcba9876543210ull, &err), &err);
	send_ok(vmo_send(pr.cli, VMO_STATE, &(struct iovec){state, 1000}, 1, &err), &err);
	send_ok(vmo_send(pr.cli, VMO_STATE, &(struct iovec){state + 1000, 2000}, 1, &err), &err);
	send_ok(vmo_send_state_end(pr.cli, sizeof(state), kb_crc32c(0, state, sizeof(state)), &err),
		&err);
	send_ok(vmo_send_go(pr.cli, 42, &err), &err);
	send_ok(vmo_send_abort(pr.cli, KB_ECANCELED, "cancelled by the operator", &err), &err);

	recv_ok(pr.srv, &rec, VMO_PAGES);
	assert_int_equal(rec.u.pages.first, 0);
	assert_int_equal(rec.u.pages.count, VMO_PAGES_MAX);
	assert_memory_equal(rec.u.pages.data, pages, sizeof(pages));
	recv_ok(pr.srv, &rec, VMO_PAGES);
	assert_int_equal(rec.u.pages.first, 773);
	assert_int_equal(rec.u.pages.count, 3);
	assert_memory_equal(rec.u.pages.data, pages + VMO_PAGE_SIZE, 3 * VMO_PAGE_SIZE);
	recv_ok(pr.srv, &rec, VMO_ZERO);
	assert_int_equal(rec.u.pages.first, 1023);
	assert_int_equal(rec.u.pages.count, 1);
	assert_null(rec.u.pages.data);
	recv_ok(pr.srv, &rec, VMO_ZERO);
	assert_int_equal(rec.u.pages.first, 1536);
	assert_int_equal(rec.u.pages.count, 256);
	recv_ok(pr.srv, &rec, VMO_ROUND);
	assert_int_equal(rec.u.round.round, 7);
	assert_int_equal(rec.u.round.pages, 123456789012ull);
	recv_ok(pr.srv, &rec, VMO_SYNC);
	assert_int_equal(rec.u.sync_seq, 99);
	recv_ok(pr.srv, &rec, VMO_FINAL);
	assert_int_equal(rec.u.final_pages, 0xfedcba9876543210ull);
	recv_ok(pr.srv, &rec, VMO_STATE);
	assert_int_equal(rec.u.state.len, 1000);
	assert_memory_equal(rec.u.state.data, state, 1000);
	recv_ok(pr.srv, &rec, VMO_STATE);
	assert_int_equal(rec.u.state.len, 2000);
	assert_memory_equal(rec.u.state.data, state + 1000, 2000);
	recv_ok(pr.srv, &rec, VMO_STATE_END);
	assert_int_equal(rec.u.state_end.length, sizeof(state));
	assert_int_equal(rec.u.state_end.crc, kb_crc32c(0, state, sizeof(state)));
	recv_ok(pr.srv, &rec, VMO_GO);
	assert_int_equal(rec.u.go_epoch, 42);
	recv_ok(pr.srv, &rec, VMO_ABORT);
	assert_int_equal(rec.u.abort.code, KB_ECANCELED);
	assert_string_equal(rec.u.abort.text, "cancelled by the operator");

	/* destination -> source */
	send_ok(vmo_send_sync(pr.srv, VMO_SYNCED, 99, &err), &err);
	send_ok(vmo_send_empty(pr.srv, VMO_READY, &err), &err);
	send_ok(vmo_send_empty(pr.srv, VMO_RESUMED, &err), &err);
	{
		char longtext[400];

		memset(longtext, 'x', sizeof(longtext) - 1);
		longtext[sizeof(longtext) - 1] = '\0';
		send_ok(vmo_send_abort(pr.srv, -EIO, longtext, &err), &err);
	}
	send_ok(vmo_send_abort(pr.srv, KB_ETIMEOUT, NULL, &err), &err);
	recv_ok(pr.cli, &rec, VMO_SYNCED);
	assert_int_equal(rec.u.sync_seq, 99);
	recv_ok(pr.cli, &rec, VMO_READY);
	recv_ok(pr.cli, &rec, VMO_RESUMED);
	recv_ok(pr.cli, &rec, VMO_ABORT);
	assert_int_equal(rec.u.abort.code, -EIO);
	assert_int_equal(strlen(rec.u.abort.text), VMO_ABORT_TEXT_MAX); /* cut */
	recv_ok(pr.cli, &rec, VMO_ABORT);
	assert_int_equal(rec.u.abort.code, KB_ETIMEOUT);
	assert_string_equal(rec.u.abort.text, "");

	assert_true(vmo_conn_bytes_sent(pr.cli) > sizeof(pages) + VMO_HELLO_SIZE);
	assert_int_equal(vmo_conn_bytes_sent(pr.cli), vmo_conn_bytes_received(pr.srv));
	assert_int_equal(vmo_conn_bytes_sent(pr.srv), vmo_conn_bytes_received(pr.cli));
	assert_true(vmo_conn_fd(pr.cli) >= 0);
	pair_close(&pr);
}

static void test_roundtrip_encrypted(void **state)
{
	roundtrip(true);
}

static void test_roundtrip_plain(void **state)
{
	roundtrip(false);
}

/* One stream: a ZERO record may span chunks (they are all this stream's). */
static void test_zero_one_stream(void **state)
{
	static uint8_t pages[100 * VMO_PAGE_SIZE];
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;

	pair_open(&pr, 1, 0, true, false);
	send_ok(vmo_send_zero(pr.cli, 100, GUEST_PAGES - 100, &err), &err);
	recv_ok(pr.srv, &rec, VMO_ZERO);
	assert_int_equal(rec.u.pages.first, 100);
	assert_int_equal(rec.u.pages.count, GUEST_PAGES - 100);
	/* PAGES never spans chunks */
	assert_int_equal(vmo_send_pages(pr.cli, 200, 100, pages, &err), -EINVAL);
	pair_close(&pr);
}

/* ---- the format, checked independently ---- */

/* RFC 5869 HKDF-SHA256 for 36 bytes, from HMAC alone. */
static void hkdf36(const uint8_t *ikm, const uint8_t *salt, size_t slen, const uint8_t *info,
		   size_t ilen, uint8_t out[36])
{
	uint8_t prk[32], t[32 + 64 + 1], t1[32], t2[32];

	hmac256(salt, slen, ikm, 32, prk);
	memcpy(t, info, ilen);
	t[ilen] = 1;
	hmac256(prk, 32, t, ilen + 1, t1);
	memcpy(t, t1, 32);
	memcpy(t + 32, info, ilen);
	t[32 + ilen] = 2;
	hmac256(prk, 32, t, 32 + ilen + 1, t2);
	memcpy(out, t1, 32);
	memcpy(out + 32, t2, 4);
}

/* Opens a captured record with the key and salt of the doc's key schedule. */
static void open_doc(const uint8_t *km, uint64_t seq, const uint8_t *rec, size_t n, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t iv[12];
	size_t len = n - 8 - 16;
	int outl;

	memcpy(iv, km + 32, 4);
	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
	assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, km, iv), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &outl, rec, 8), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, out, &outl, rec + 8, (int)len), 1);
	assert_int_equal(
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(rec + 8 + len)), 1);
	assert_int_equal(EVP_DecryptFinal_ex(ctx, out + len, &outl), 1);
	EVP_CIPHER_CTX_free(ctx);
}

static void test_wire_format(void **state)
{
	struct vmo_params p = params(4, true);
	uint8_t mac[32], in[18 + 88 + 32], salt[32], info[20], km[36], rec[64], plain[64];
	struct kb_errmsg err = {{0}};
	struct vmo_rec r;
	struct pair pr;
	size_t n;

	pair_open(&pr, 4, 3, true, true);
	/* the hello */
	assert_memory_equal(pr.hello, "KEELVMO1", 8);
	assert_int_equal(get32(pr.hello + 8), 1);
	assert_int_equal(get32(pr.hello + 12), 1); /* encrypted */
	assert_memory_equal(pr.hello + 16, p.id, 16);
	assert_int_equal(get32(pr.hello + 32), 3);
	assert_int_equal(get32(pr.hello + 36), 4);
	hmac256(p.key, 32, pr.hello, 56, mac);
	assert_memory_equal(pr.hello + 56, mac, 32);
	/* the reply */
	assert_memory_equal(pr.reply, "KEELVMO1", 8);
	assert_int_equal(get32(pr.reply + 8), 1);
	assert_int_equal(get32(pr.reply + 12), 0);
	memcpy(in, "keel-vmotion-reply", 18);
	memcpy(in + 18, pr.hello, 88);
	memcpy(in + 18 + 88, pr.reply, 32);
	hmac256(p.key, 32, in, sizeof(in), mac);
	assert_memory_equal(pr.reply + 32, mac, 32);
	assert_memory_not_equal(pr.hello + 40, pr.reply + 16, 16);

	/* client -> server: key 'c', the sequence from 0 */
	memcpy(salt, pr.hello + 40, 16);
	memcpy(salt + 16, pr.reply + 16, 16);
	memcpy(info, "keel-vmotion-1 c", 16);
	put32(info + 16, 3);
	hkdf36(p.key, salt, 32, info, 20, km);
	send_ok(vmo_send_go(pr.cli, 0x1122334455667788ull, &err), &err);
	send_ok(vmo_send_final(pr.cli, 5, &err), &err);
	n = capture(&pr, true, rec);
	assert_int_equal(n, 8 + 8 + 16);
	assert_memory_equal(rec, ((uint8_t[]){8, 0, 0, 0, 8, 0, 0, 0}), 8);
	open_doc(km, 0, rec, n, plain);
	assert_memory_equal(plain, ((uint8_t[]){0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}),
			    8);
	write_all(pr.srv_end, rec, n);
	n = capture(&pr, true, rec);
	open_doc(km, 1, rec, n, plain);
	assert_int_equal(plain[0], 5);
	write_all(pr.srv_end, rec, n);
	recv_ok(pr.srv, &r, VMO_GO);
	assert_int_equal(r.u.go_epoch, 0x1122334455667788ull);
	recv_ok(pr.srv, &r, VMO_FINAL);

	/* server -> client: key 's' */
	info[15] = 's';
	hkdf36(p.key, salt, 32, info, 20, km);
	send_ok(vmo_send_abort(pr.srv, -EIO, "disk", &err), &err);
	read_exact(pr.srv_end, rec, 8 + 12 + 16);
	assert_memory_equal(rec, ((uint8_t[]){10, 0, 0, 0, 12, 0, 0, 0}), 8);
	open_doc(km, 0, rec, 8 + 12 + 16, plain);
	assert_int_equal((int32_t)get32(plain), -EIO);
	assert_int_equal(get32(plain + 4), 4);
	assert_memory_equal(plain + 8, "disk", 4);
	pair_close(&pr);

	/* plain: the payload in clear, then CRC32C of header and payload */
	pair_open(&pr, 1, 0, false, true);
	assert_int_equal(get32(pr.hello + 12), 0);
	send_ok(vmo_send_round(pr.cli, 9, 77, &err), &err);
	n = capture(&pr, false, rec);
	assert_int_equal(n, 8 + 16 + 4);
	assert_memory_equal(rec, ((uint8_t[]){3, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 77}),
			    17);
	assert_int_equal(get32(rec + 24), kb_crc32c(0, rec, 24));
	pair_close(&pr);
}

/* ---- the hello refused ---- */

static size_t pair_with_record(struct pair *pr, bool encrypt, uint8_t *buf)
{
	static uint8_t page[VMO_PAGE_SIZE];
	struct kb_errmsg err = {{0}};

	fill(page, sizeof(page), 11);
	pair_open(pr, 2, 1, encrypt, true);
	send_ok(vmo_send_pages(pr->cli, 256 + 17, 1, page, &err), &err);
	return capture(pr, encrypt, buf);
}

static void flip_at(bool encrypt, size_t at)
{
	static uint8_t buf[8 + 16 + VMO_PAGE_SIZE + 16 + 70000];
	struct kb_errmsg err;
	struct vmo_rec rec;
	struct pair pr;
	size_t n = pair_with_record(&pr, encrypt, buf);
	int rc, want = KB_ECHECKSUM;

	assert_true(at < n);
	/* a wrong implementation times out rather than hanging */
	setsockopt(vmo_conn_fd(pr.srv), SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){10, 0},
		   sizeof(struct timeval));
	buf[at] ^= 1;
	/* enough bytes behind it that a longer length is read rather than cut short */
	memset(buf + n, 0, 70000);
	if (at == 7)
		want = KB_ETOOBIG; /* 16 MiB more */
	write_all(pr.srv_end, buf, n + (at == 7 ? 0 : 70000));
	rc = recv_code(pr.srv, &rec, &err);
	if (rc != want)
		fail_msg("%s, byte %zu flipped: expected %d, got %d '%s'",
			 encrypt ? "encrypted" : "plain", at, want, rc, err.msg);
	/* the conn stays failed */
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_ESTATE);
	pair_close(&pr);
}

static void test_flipped_bytes(void **state)
{
	size_t enc_n = 8 + 16 + VMO_PAGE_SIZE + 16, plain_n = 8 + 16 + VMO_PAGE_SIZE + 4;
	size_t picks[] = {8, 9, 12, 16, 23, 24, 25, 1000, 4095, 4119};

	for (size_t at = 0; at < 8; at++) {
		flip_at(true, at);
		flip_at(false, at);
	}
	for (size_t i = 0; i < sizeof(picks) / sizeof(picks[0]); i++) {
		flip_at(true, picks[i]);
		flip_at(false, picks[i]);
	}
	for (size_t at = enc_n - 16; at < enc_n; at++)
		flip_at(true, at);
	for (size_t at = plain_n - 4; at < plain_n; at++)
		flip_at(false, at);
}

static void test_replay_and_reorder(void **state)
{
	uint8_t r0[64], r1[64];
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;
	size_t n0, n1;

	/* replay: the same record twice */
	pair_open(&pr, 1, 0, true, true);
	send_ok(vmo_send_go(pr.cli, 1, &err), &err);
	send_ok(vmo_send_go(pr.cli, 1, &err), &err);
	n0 = capture(&pr, true, r0);
	n1 = capture(&pr, true, r1);
	assert_int_equal(n0, n1);
	assert_memory_not_equal(r0 + 8, r1 + 8, n0 - 8); /* same plaintext, other nonce */
	write_all(pr.srv_end, r0, n0);
	write_all(pr.srv_end, r0, n0);
	recv_ok(pr.srv, &rec, VMO_GO);
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_ECHECKSUM);
	assert_non_null(strstr(err.msg, "record 1 does not verify"));
	pair_close(&pr);

	/* reorder: the second record first */
	pair_open(&pr, 1, 0, true, true);
	send_ok(vmo_send_round(pr.cli, 1, 10, &err), &err);
	send_ok(vmo_send_round(pr.cli, 2, 20, &err), &err);
	n0 = capture(&pr, true, r0);
	n1 = capture(&pr, true, r1);
	write_all(pr.srv_end, r1, n1);
	write_all(pr.srv_end, r0, n0);
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_ECHECKSUM);
	pair_close(&pr);

	/* a record from another stream of the same migration (other keys) */
	{
		struct pair other;

		pair_open(&pr, 2, 0, true, true);
		pair_open(&other, 2, 1, true, true);
		send_ok(vmo_send_final(other.cli, 0, &err), &err);
		n0 = capture(&other, true, r0);
		write_all(pr.srv_end, r0, n0);
		assert_int_equal(recv_code(pr.srv, &rec, &err), KB_ECHECKSUM);
		pair_close(&other);
		pair_close(&pr);
	}
}

static void test_truncation_everywhere(void **state)
{
	for (int enc = 0; enc < 2; enc++) {
		size_t n = 8 + 8 + (enc ? 16 : 4);

		for (size_t cut = 0; cut < n; cut++) {
			struct kb_errmsg err = {{0}};
			struct vmo_rec rec;
			struct pair pr;
			uint8_t buf[64];
			int rc;

			pair_open(&pr, 1, 0, enc, true);
			send_ok(vmo_send_go(pr.cli, 77, &err), &err);
			assert_int_equal(capture(&pr, enc, buf), n);
			write_all(pr.srv_end, buf, cut);
			shutdown(pr.srv_end, SHUT_WR);
			rc = recv_code(pr.srv, &rec, &err);
			if (rc != KB_ETRUNCATED)
				fail_msg("%s cut at %zu: %d '%s'", enc ? "encrypted" : "plain", cut,
					 rc, err.msg);
			assert_non_null(strstr(err.msg, cut == 0  ? "peer closed the stream"
							: cut < 8 ? "inside a record header"
								  : "inside a record of 8 bytes"));
			pair_close(&pr);
		}
	}
}

static void test_too_big(void **state)
{
	static uint8_t big[VMO_REC_MAX + 1];
	uint8_t hdr[8 + 100] = {VMO_STATE, 0, 0, 0};
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;
	struct timeval tv = {5, 0};
	struct iovec iov[2] = {{big, VMO_REC_MAX}, {big, 1}};

	pair_open(&pr, 1, 0, true, true);
	/* the sender refuses it and the conn stays usable */
	assert_int_equal(vmo_send(pr.cli, VMO_STATE, iov, 2, &err), KB_ETOOBIG);
	assert_int_equal(vmo_send(pr.cli, VMO_STATE, iov, 1, &err), 0);
	/* the receiver refuses the length before reading the record: the 100 bytes after
	 * the header stay in the socket (a wrong implementation times out instead of hanging) */
	setsockopt(vmo_conn_fd(pr.srv), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	put32(hdr + 4, VMO_REC_MAX + 1);
	write_all(pr.srv_end, hdr, sizeof(hdr));
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "exceeds 1048640"));
	assert_int_equal(recv(vmo_conn_fd(pr.srv), hdr, sizeof(hdr), MSG_PEEK | MSG_DONTWAIT), 100);
	pair_close(&pr);

	/* the largest record passes */
	pair_open(&pr, 1, 0, false, false);
	send_ok(vmo_send_final(pr.cli, 0, &err), &err);
	send_ok(vmo_send(pr.cli, VMO_STATE, iov, 1, &err), &err);
	recv_ok(pr.srv, &rec, VMO_FINAL);
	recv_ok(pr.srv, &rec, VMO_STATE);
	assert_int_equal(rec.u.state.len, VMO_REC_MAX);
	pair_close(&pr);
}

/* ---- decoding rules ---- */

static int decode(int type, const uint8_t *p, uint32_t len, uint32_t index, uint32_t count,
		  struct vmo_rec *rec, const char *words)
{
	struct kb_errmsg err = {{0}};
	int rc = vmo_decode((enum vmo_type)type, p, len, index, count, GUEST_PAGES, rec, &err);

	if (rc != 0 && (err.msg[0] == '\0' || (words && strstr(err.msg, words) == NULL)))
		fail_msg("decode type %d: %d '%s', expected '%s'", type, rc, err.msg, words);
	return rc;
}

static void range(uint8_t *p, uint64_t first, uint32_t count)
{
	put64(p, first);
	put32(p + 8, count);
	put32(p + 12, 0);
}

static void test_decode_rules(void **state)
{
	static uint8_t p[16 + VMO_PAGES_MAX * VMO_PAGE_SIZE + 1];
	struct vmo_rec rec;

	/* PAGES: size, count, reserved, chunk, stream, guest size */
	range(p, 512, 2);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 2 * 4096, 2, 4, &rec, NULL), 0);
	assert_int_equal(rec.u.pages.first, 512);
	assert_ptr_equal(rec.u.pages.data, p + 16);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 2 * 4096 - 1, 2, 4, &rec, "16 + count * 4096"),
			 KB_EPROTO);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 2 * 4096 + 1, 2, 4, &rec, "bytes"), KB_EPROTO);
	assert_int_equal(decode(VMO_PAGES, p, 15, 2, 4, &rec, "at least 16"), KB_EPROTO);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 2 * 4096, 1, 4, &rec, "belongs to stream 2"),
			 KB_EPROTO);
	range(p, 767, 2);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 2 * 4096, 2, 4, &rec, "cross a chunk"),
			 KB_EPROTO);
	range(p, 768, 256);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 256 * 4096, 3, 4, &rec, NULL), 0);
	range(p, 768, 257);
	assert_int_equal(decode(VMO_PAGES, p, 16, 3, 4, &rec, "257 pages"), KB_EPROTO);
	range(p, 768, 0);
	assert_int_equal(decode(VMO_PAGES, p, 16, 3, 4, &rec, "0 pages"), KB_EPROTO);
	range(p, GUEST_PAGES - 1, 1);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 4096, 3, 4, &rec, NULL), 0);
	range(p, GUEST_PAGES, 1);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 4096, 0, 4, &rec, "beyond the guest's 4096"),
			 KB_EPROTO);
	range(p, UINT64_MAX - 1, 2);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 2 * 4096, 3, 4, &rec, "beyond"), KB_EPROTO);
	range(p, 0, 1);
	put32(p + 12, 1);
	assert_int_equal(decode(VMO_PAGES, p, 16 + 4096, 0, 4, &rec, "reserved"), KB_EPROTO);

	/* ZERO: exact size, one chunk with several streams, any span with one */
	range(p, 256, 256);
	assert_int_equal(decode(VMO_ZERO, p, 16, 1, 2, &rec, NULL), 0);
	assert_null(rec.u.pages.data);
	assert_int_equal(decode(VMO_ZERO, p, 17, 1, 2, &rec, "(16)"), KB_EPROTO);
	range(p, 256, 257);
	assert_int_equal(decode(VMO_ZERO, p, 16, 1, 2, &rec, "cross a chunk"), KB_EPROTO);
	assert_int_equal(decode(VMO_ZERO, p, 16, 0, 1, &rec, NULL), 0);
	range(p, 0, GUEST_PAGES);
	assert_int_equal(decode(VMO_ZERO, p, 16, 0, 1, &rec, NULL), 0);
	range(p, 1, GUEST_PAGES);
	assert_int_equal(decode(VMO_ZERO, p, 16, 0, 1, &rec, "beyond"), KB_EPROTO);
	range(p, 0, VMO_ZERO_MAX + 1);
	assert_int_equal(decode(VMO_ZERO, p, 16, 0, 1, &rec, "(1..1048576)"), KB_EPROTO);

	/* fixed sizes and reserved fields */
	memset(p, 0, 32);
	assert_int_equal(decode(VMO_ROUND, p, 16, 0, 1, &rec, NULL), 0);
	assert_int_equal(decode(VMO_ROUND, p, 15, 0, 1, &rec, "(16)"), KB_EPROTO);
	p[5] = 1;
	assert_int_equal(decode(VMO_ROUND, p, 16, 0, 1, &rec, "reserved"), KB_EPROTO);
	p[5] = 0;
	assert_int_equal(decode(VMO_FINAL, p, 8, 0, 1, &rec, NULL), 0);
	assert_int_equal(decode(VMO_FINAL, p, 9, 0, 1, &rec, "(8)"), KB_EPROTO);
	assert_int_equal(decode(VMO_GO, p, 7, 0, 1, &rec, "(8)"), KB_EPROTO);
	assert_int_equal(decode(VMO_READY, p, 0, 0, 1, &rec, NULL), 0);
	assert_int_equal(decode(VMO_READY, p, 1, 0, 1, &rec, "(0)"), KB_EPROTO);
	assert_int_equal(decode(VMO_RESUMED, p, 4, 0, 1, &rec, "(0)"), KB_EPROTO);
	assert_int_equal(decode(VMO_STATE, p, 5, 0, 2, &rec, NULL), 0);
	assert_int_equal(decode(VMO_STATE, p, 0, 0, 2, &rec, "at least 1"), KB_EPROTO);
	assert_int_equal(decode(VMO_STATE, p, 5, 1, 2, &rec, "stream 0 only"), KB_EPROTO);
	assert_int_equal(decode(VMO_STATE_END, p, 16, 0, 2, &rec, NULL), 0);
	assert_int_equal(decode(VMO_STATE_END, p, 16, 1, 2, &rec, "stream 0 only"), KB_EPROTO);
	p[15] = 1;
	assert_int_equal(decode(VMO_STATE_END, p, 16, 0, 2, &rec, "reserved"), KB_EPROTO);

	/* ABORT: negative code, text length in range and matching */
	memset(p, 0, 300);
	put32(p, (uint32_t)KB_ECANCELED);
	put32(p + 4, 3);
	memcpy(p + 8, "abc", 3);
	assert_int_equal(decode(VMO_ABORT, p, 11, 0, 1, &rec, NULL), 0);
	assert_string_equal(rec.u.abort.text, "abc");
	assert_int_equal(decode(VMO_ABORT, p, 12, 0, 1, &rec, "8 + text length"), KB_EPROTO);
	assert_int_equal(decode(VMO_ABORT, p, 7, 0, 1, &rec, "at least 8"), KB_EPROTO);
	p[9] = 0;
	assert_int_equal(decode(VMO_ABORT, p, 11, 0, 1, &rec, "NUL"), KB_EPROTO);
	put32(p + 4, 257);
	assert_int_equal(decode(VMO_ABORT, p, 8 + 257, 0, 1, &rec, "longer than 256"), KB_EPROTO);
	put32(p + 4, 256);
	memset(p + 8, 'y', 256);
	assert_int_equal(decode(VMO_ABORT, p, 8 + 256, 0, 1, &rec, NULL), 0);
	assert_int_equal(strlen(rec.u.abort.text), 256);
	put32(p, 0);
	assert_int_equal(decode(VMO_ABORT, p, 8 + 256, 0, 1, &rec, "negative"), KB_EPROTO);

	/* unknown types, bad stream parameters, oversized payloads */
	assert_int_equal(decode(0, p, 0, 0, 1, &rec, "unknown record type 0"), KB_EPROTO);
	assert_int_equal(decode(17, p, 0, 0, 1, &rec, "unknown record type 17"), KB_EPROTO);
	/* SYNC and SYNCED: exactly a sequence number */
	put32(p, 5);
	put32(p + 4, 1);
	assert_int_equal(decode(VMO_SYNC, p, 8, 0, 1, &rec, NULL), 0);
	assert_true(rec.u.sync_seq == (1ull << 32 | 5));
	assert_int_equal(decode(VMO_SYNCED, p, 9, 0, 1, &rec, "8"), KB_EPROTO);
	assert_int_equal(decode(VMO_SYNC, p, 0, 0, 1, &rec, "8"), KB_EPROTO);
	assert_int_equal(decode(VMO_GO, p, 8, 2, 2, &rec, "stream 2 of 2"), -EINVAL);
	assert_int_equal(decode(VMO_GO, p, 8, 0, 17, &rec, "stream 0 of 17"), -EINVAL);
	assert_int_equal(decode(VMO_STATE, p, VMO_REC_MAX + 1, 0, 1, &rec, "exceeds"), KB_ETOOBIG);
}

/* A record with a raw payload from the source, received by the destination. */
static void source_sends(uint32_t count, uint32_t index, int type, const uint8_t *p, size_t n,
			 int want, const char *words)
{
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;
	int rc;

	pair_open(&pr, count, index, true, false);
	send_ok(
	    vmo_send(pr.cli, (enum vmo_type)type, &(struct iovec){(void *)p, n}, n ? 1 : 0, &err),
	    &err);
	rc = recv_code(pr.srv, &rec, &err);
	if (rc != want || strstr(err.msg, words) == NULL)
		fail_msg("expected %d '%s', got %d '%s'", want, words, rc, err.msg);
	pair_close(&pr);
}

static void test_pages_refused_on_the_wire(void **state)
{
	static uint8_t p[16 + 2 * VMO_PAGE_SIZE];
	struct kb_errmsg err = {{0}};
	struct pair pr;

	range(p, 256, 2); /* stream 1 of 2 */
	source_sends(2, 0, VMO_PAGES, p, sizeof(p), KB_EPROTO, "belongs to stream 1");
	range(p, GUEST_PAGES - 1, 2);
	source_sends(2, 1, VMO_PAGES, p, sizeof(p), KB_EPROTO, "beyond the guest's 4096 pages");
	range(p, 512, 2);
	source_sends(2, 0, VMO_ZERO, p, 16, 0, "");
	range(p, 511, 2);
	source_sends(2, 1, VMO_ZERO, p, 16, KB_EPROTO, "cross a chunk");

	/* the typed senders refuse what the receiver would, and send nothing */
	pair_open(&pr, 2, 0, true, false);
	assert_int_equal(vmo_send_pages(pr.cli, 256, 1, p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "belongs to stream 1"));
	assert_int_equal(vmo_send_pages(pr.cli, GUEST_PAGES - 256, 1, p, &err), -EINVAL);
	assert_int_equal(vmo_send_pages(pr.cli, 0, 0, p, &err), -EINVAL);
	assert_int_equal(vmo_send_pages(pr.cli, 0, 257, p, &err), -EINVAL);
	assert_int_equal(vmo_send_pages(pr.cli, 200, 100, p, &err), -EINVAL);
	assert_int_equal(vmo_send_zero(pr.cli, 200, 100, &err), -EINVAL);
	assert_int_equal(vmo_send_zero(pr.cli, 0, 0, &err), -EINVAL);
	assert_int_equal(vmo_send_abort(pr.cli, 0, "x", &err), -EINVAL);
	assert_int_equal(vmo_send_empty(pr.cli, VMO_GO, &err), -EINVAL);
	assert_int_equal(vmo_send(pr.cli, (enum vmo_type)17, NULL, 0, &err), -EINVAL);
	assert_int_equal(vmo_send_sync(pr.cli, VMO_GO, 1, &err), -EINVAL);
	assert_int_equal(vmo_conn_bytes_received(pr.srv), VMO_HELLO_SIZE);
	send_ok(vmo_send_pages(pr.cli, 0, 1, p, &err), &err); /* still usable */
	pair_close(&pr);
}

static void test_receive_order(void **state)
{
	uint8_t p[16] = {0};
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	struct pair pr;

	/* the destination's records come from the destination only, and back */
	source_sends(1, 0, VMO_READY, NULL, 0, KB_EPROTO, "READY record (type 7) from the source");
	memset(p, 0, sizeof(p));
	source_sends(1, 0, VMO_SYNCED, p, 8, KB_EPROTO, "SYNCED record (type 12) from the source");
	pair_open(&pr, 1, 0, true, false);
	send_ok(vmo_send_sync(pr.srv, VMO_SYNC, 1, &err), &err);
	assert_int_equal(recv_code(pr.cli, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "SYNC record (type 11) from the destination"));
	pair_close(&pr);
	pair_open(&pr, 1, 0, true, false);
	send_ok(vmo_send_go(pr.srv, 1, &err), &err);
	assert_int_equal(recv_code(pr.cli, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "GO record (type 8) from the destination"));
	pair_close(&pr);

	/* the state before FINAL, pages after it, a second FINAL, a wrong STATE_END */
	source_sends(1, 0, VMO_STATE, p, 4, KB_EPROTO, "STATE record: before FINAL");
	pair_open(&pr, 1, 0, true, false);
	send_ok(vmo_send_final(pr.cli, 1, &err), &err);
	send_ok(vmo_send_zero(pr.cli, 0, 1, &err), &err);
	recv_ok(pr.srv, &rec, VMO_FINAL);
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "ZERO record: after FINAL"));
	pair_close(&pr);
	pair_open(&pr, 1, 0, true, false);
	send_ok(vmo_send_final(pr.cli, 1, &err), &err);
	send_ok(vmo_send_sync(pr.cli, VMO_SYNC, 3, &err), &err);
	recv_ok(pr.srv, &rec, VMO_FINAL);
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "SYNC record: after FINAL"));
	pair_close(&pr);

	pair_open(&pr, 1, 0, false, false);
	send_ok(vmo_send_final(pr.cli, 1, &err), &err);
	send_ok(vmo_send(pr.cli, VMO_STATE, &(struct iovec){p, 16}, 1, &err), &err);
	send_ok(vmo_send_state_end(pr.cli, 17, 0, &err), &err);
	recv_ok(pr.srv, &rec, VMO_FINAL);
	recv_ok(pr.srv, &rec, VMO_STATE);
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "STATE_END announces 17 bytes of state; 16 came"));
	pair_close(&pr);

	pair_open(&pr, 1, 0, true, false);
	send_ok(vmo_send_final(pr.cli, 1, &err), &err);
	send_ok(vmo_send_state_end(pr.cli, 0, 0, &err), &err);
	send_ok(vmo_send(pr.cli, VMO_STATE, &(struct iovec){p, 16}, 1, &err), &err);
	recv_ok(pr.srv, &rec, VMO_FINAL);
	recv_ok(pr.srv, &rec, VMO_STATE_END);
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "after STATE_END"));
	pair_close(&pr);

	/* a header with a flag set (authenticated, then refused) */
	pair_open(&pr, 1, 0, false, true);
	send_ok(vmo_send_go(pr.cli, 1, &err), &err);
	{
		uint8_t buf[32];
		size_t n = capture(&pr, false, buf);

		buf[1] = 0x80;
		put32(buf + n - 4, kb_crc32c(0, buf, n - 4));
		write_all(pr.srv_end, buf, n);
	}
	assert_int_equal(recv_code(pr.srv, &rec, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "flags or reserved"));
	pair_close(&pr);
}

/* ---- threads ---- */

#define THREAD_RECORDS 300

struct side {
	struct vmo_conn *c;
	bool source;
	int rc;
	struct kb_errmsg err;
};

static void *side_sender(void *arg)
{
	struct side *s = arg;
	uint8_t page[VMO_PAGE_SIZE * 4];

	for (uint32_t i = 0; i < THREAD_RECORDS && s->rc == 0; i++) {
		if (s->source) {
			memset(page, (int)(i & 0xff), sizeof(page));
			s->rc = vmo_send_pages(s->c, (i % 64) * 4, 4, page, &s->err);
		} else {
			s->rc = vmo_send_abort(s->c, -(int)(i + 1), "x", &s->err);
		}
	}
	return NULL;
}

static void *side_receiver(void *arg)
{
	struct side *s = arg;
	struct vmo_rec rec;

	for (uint32_t i = 0; i < THREAD_RECORDS && s->rc == 0; i++) {
		s->rc = vmo_recv(s->c, &rec, &s->err);
		if (s->rc)
			break;
		if (s->source ? (rec.type != VMO_ABORT || rec.u.abort.code != -(int)(i + 1))
			      : (rec.type != VMO_PAGES || rec.u.pages.first != (i % 64) * 4 ||
				 rec.u.pages.data[4 * VMO_PAGE_SIZE - 1] != (i & 0xff))) {
			s->rc = -1;
			kb_errmsg_setf(&s->err, "record %u is wrong", i);
		}
	}
	return NULL;
}

static void test_sender_and_receiver_threads(void **state)
{
	struct side s[4];
	pthread_t t[4];
	struct pair pr;

	pair_open(&pr, 1, 0, true, false);
	s[0] = (struct side){.c = pr.cli, .source = true};
	s[1] = (struct side){.c = pr.cli, .source = true};
	s[2] = (struct side){.c = pr.srv, .source = false};
	s[3] = (struct side){.c = pr.srv, .source = false};
	assert_int_equal(pthread_create(&t[0], NULL, side_sender, &s[0]), 0);
	assert_int_equal(pthread_create(&t[1], NULL, side_receiver, &s[1]), 0);
	assert_int_equal(pthread_create(&t[2], NULL, side_sender, &s[2]), 0);
	assert_int_equal(pthread_create(&t[3], NULL, side_receiver, &s[3]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (s[i].rc != 0)
			fail_msg("thread %d: %d %s", i, s[i].rc, s[i].err.msg);
	}
	assert_int_equal(vmo_conn_bytes_sent(pr.cli), vmo_conn_bytes_received(pr.srv));
	assert_int_equal(vmo_conn_bytes_sent(pr.srv), vmo_conn_bytes_received(pr.cli));
	pair_close(&pr);
}

struct blocked {
	struct vmo_conn *c;
	int rc;
	struct kb_errmsg err;
};

static void *blocked_reader(void *arg)
{
	struct blocked *b = arg;
	struct vmo_rec rec;

	b->rc = vmo_recv(b->c, &rec, &b->err);
	return NULL;
}

static void test_shutdown_unblocks_reader(void **state)
{
	struct blocked b = {.rc = 1};
	struct kb_errmsg err = {{0}};
	struct timespec ts = {0, 50 * 1000 * 1000}, limit;
	struct pair pr;
	pthread_t t;

	pair_open(&pr, 1, 0, true, false);
	b.c = pr.srv;
	assert_int_equal(pthread_create(&t, NULL, blocked_reader, &b), 0);
	nanosleep(&ts, NULL);
	vmo_conn_shutdown(pr.srv);
	vmo_conn_shutdown(pr.srv); /* idempotent */
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 30;
	assert_int_equal(pthread_timedjoin_np(t, NULL, &limit), 0);
	assert_int_equal(b.rc, KB_ECANCELED);
	assert_non_null(strstr(b.err.msg, "shut down"));
	assert_int_equal(vmo_send_empty(pr.srv, VMO_READY, &err), KB_ECANCELED);
	/* the peer sees the end of the stream */
	{
		struct vmo_rec rec;

		assert_int_equal(recv_code(pr.cli, &rec, &err), KB_ETRUNCATED);
		assert_non_null(strstr(err.msg, "the peer closed the stream"));
	}
	pair_close(&pr);
	vmo_conn_shutdown(NULL);
	vmo_conn_free(NULL);
}

/* A vanished peer is an error, not SIGPIPE (which would end this test program). */
static void test_peer_gone(void **state)
{
	static uint8_t page[VMO_PAGE_SIZE];
	struct kb_errmsg err = {{0}};
	struct pair pr;
	int rc;

	pair_open(&pr, 1, 0, true, false);
	vmo_conn_free(pr.srv);
	pr.srv = NULL;
	rc = vmo_send_pages(pr.cli, 0, 1, page, &err);
	assert_true(rc == -EPIPE || rc == -ECONNRESET);
	assert_non_null(strstr(err.msg, "sending a PAGES record"));
	assert_int_equal(vmo_send_go(pr.cli, 1, &err), KB_ESTATE);
	pair_close(&pr);
}

static void test_enomem(void **state)
{
	struct vmo_params p = params(2, true);
	uint8_t h[VMO_HELLO_SIZE], reply[VMO_REPLY_SIZE];

	for (int n = 0; n < 3; n++) {
		struct kb_errmsg err = {{0}};
		struct vmo_conn *c = NULL;
		uint32_t index = 0;
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		make_hello(h, &p, 1, 1, 1, 2);
		write_all(sv[0], h, sizeof(h));
		kb_heap_fail_after(n, 1);
		assert_int_equal(vmo_server_hello(sv[1], &p, &c, &index, &err), -ENOMEM);
		kb_heap_fail_reset();
		assert_null(c);
		assert_non_null(strstr(err.msg, "Cannot allocate memory"));
		/* the source is told */
		read_exact(sv[0], reply, sizeof(reply));
		assert_int_equal((int32_t)get32(reply + 12), -ENOMEM);
		close(sv[0]);
		close(sv[1]); /* still the caller's */
	}
}

/* ---- throughput ---- */

struct sink {
	struct vmo_conn *c;
	int records, rc;
	struct kb_errmsg err;
};

static void *sink_thread(void *arg)
{
	struct sink *s = arg;
	struct vmo_rec rec;

	for (int i = 0; i < s->records; i++) {
		s->rc = vmo_recv(s->c, &rec, &s->err);
		if (s->rc == 0 && (rec.type != VMO_PAGES || rec.u.pages.count != VMO_PAGES_MAX)) {
			s->rc = -1;
			kb_errmsg_setf(&s->err, "record %d is wrong", i);
		}
		if (s->rc)
			break;
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Opens a pair over loopback TCP (tcp) or a socketpair. */
static void pair_open_tcp(struct pair *pr, bool encrypt)
{
	struct hello_job cj = {.p = params(1, encrypt)},
			 sj = {.p = params(1, encrypt), .server = true};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pthread_t st;

	memset(pr, 0, sizeof(*pr));
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	cj.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(cj.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	sj.fd = accept(l, NULL, NULL);
	assert_true(sj.fd >= 0);
	close(l);
	assert_int_equal(pthread_create(&st, NULL, hello_thread, &sj), 0);
	hello_thread(&cj);
	assert_int_equal(pthread_join(st, NULL), 0);
	if (cj.rc || sj.rc)
		fail_msg("tcp hello: %s / %s", cj.err.msg, sj.err.msg);
	pr->cli = cj.conn;
	pr->srv = sj.conn;
	pr->cli_end = pr->srv_end = -1;
}

static void throughput(bool encrypt, bool tcp, int records)
{
	static uint8_t pages[VMO_PAGES_MAX * VMO_PAGE_SIZE];
	struct kb_errmsg err = {{0}};
	struct sink s = {.records = records};
	struct pair pr;
	pthread_t t;
	double t0, dt;

	fill(pages, sizeof(pages), 5);
	if (tcp)
		pair_open_tcp(&pr, encrypt);
	else
		pair_open(&pr, 1, 0, encrypt, false);
	s.c = pr.srv;
	assert_int_equal(pthread_create(&t, NULL, sink_thread, &s), 0);
	t0 = now_s();
	for (int i = 0; i < records; i++) {
		int rc = vmo_send_pages(pr.cli, (uint64_t)(i % 16) * VMO_PAGES_MAX, VMO_PAGES_MAX,
					pages, &err);

		if (rc) {
			vmo_conn_shutdown(pr.srv);
			fail_msg("send %d: %s", i, err.msg);
		}
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	dt = now_s() - t0;
	if (s.rc)
		fail_msg("receive: %d %s", s.rc, s.err.msg);
	printf("RESULT vmo_wire_%s_%s %.0f MB/s (%d records of 1 MiB in %.3f s)\n",
	       encrypt ? "aesgcm" : "crc32c", tcp ? "tcp" : "socketpair",
	       (double)records * VMO_PAGES_MAX * VMO_PAGE_SIZE / 1e6 / dt, records, dt);
	fflush(stdout);
	pair_close(&pr);
}

static void test_throughput(void **state)
{
	int n = getenv("KEEL_VMO_RECORDS") ? atoi(getenv("KEEL_VMO_RECORDS")) : 256;

	throughput(true, false, n);
	throughput(false, false, n);
	throughput(true, true, n);
	throughput(false, true, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_encrypted),
	    cmocka_unit_test(test_roundtrip_plain),
	    cmocka_unit_test(test_zero_one_stream),
	    cmocka_unit_test(test_wire_format),
	    cmocka_unit_test(test_flipped_bytes),
	    cmocka_unit_test(test_replay_and_reorder),
	    cmocka_unit_test(test_truncation_everywhere),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_decode_rules),
	    cmocka_unit_test(test_pages_refused_on_the_wire),
	    cmocka_unit_test(test_receive_order),
	    cmocka_unit_test(test_sender_and_receiver_threads),
	    cmocka_unit_test(test_shutdown_unblocks_reader),
	    cmocka_unit_test(test_peer_gone),
	    cmocka_unit_test(test_enomem),
	    cmocka_unit_test(test_throughput),
	};

	return cmocka_run_group_tests_name("vmo_wire", tests, NULL, NULL);
}
