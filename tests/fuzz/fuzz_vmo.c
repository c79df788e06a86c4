/*
 * Fuzz target: the vMotion stream's decoders (vmotion/wire.h) on arbitrary bytes.
 *
 * An input whose first byte is below 0x40 is a record: that byte is the type (valid or
 * not), the next byte the stream (count = high nibble + 1, index = low nibble % count),
 * the next 8 bytes the guest's size in pages (u64 LE), the rest the payload for
 * vmo_decode. A record that decodes must keep every rule of wire.h: its exact size, its
 * pages inside one chunk of this stream and below the guest's size, the state on stream 0,
 * an ABORT's negative code and text, a DISK's index, offset and length (FT records decode
 * here too: vmo_decode does not know the mode; vmo_recv refuses a type out of its mode).
 *
 * Any other input is a hello, under key 00 01 .. 1f, id 40 41 .. 4f and 4 streams: its
 * first 88 bytes for vmo_hello_check as they are (accepted only when its MAC verifies) and
 * re-signed (the MAC verifies, so the field checks behind it see the input: only they may
 * refuse it), and its first 64 bytes as the server's reply to a fixed hello for
 * vmo_reply_check (accepted only with status 0 and a MAC that verifies).
 * Seeds: one valid record of each type and a valid hello (tests/integration/fuzz_smoke.sh
 * writes them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/err.h"
#include "vmotion/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmo_params params = {.count = 4, .encrypt = true, .guest_pages = 1 << 18};
static uint8_t fixed_hello[VMO_HELLO_SIZE];
static int ready;

static void __attribute__((noreturn)) fail(const char *what)
{
	fprintf(stderr, "fuzz_vmo: %s\n", what);
	abort();
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void mac(const uint8_t *d, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), params.key, VMO_KEY_SIZE, d, n, out, &len) == NULL || len != 32)
		fail("HMAC-SHA256 failed");
}

static void setup(void)
{
	for (int i = 0; i < VMO_KEY_SIZE; i++)
		params.key[i] = (uint8_t)i;
	for (int i = 0; i < VMO_ID_SIZE; i++)
		params.id[i] = (uint8_t)(0x40 + i);
	memcpy(fixed_hello, VMO_MAGIC, 8);
	fixed_hello[8] = 1;  /* version */
	fixed_hello[12] = 1; /* encrypted */
	memcpy(fixed_hello + 16, params.id, VMO_ID_SIZE);
	fixed_hello[32] = 2; /* index */
	fixed_hello[36] = 4; /* count */
	memset(fixed_hello + 40, 0x5a, 16);
	mac(fixed_hello, 56, fixed_hello + 56);
	ready = 1;
}

/* A decoded record must keep the rules. */
static void check_record(const struct vmo_rec *r, const uint8_t *p, uint32_t len, uint32_t index,
			 uint32_t count, uint64_t gp)
{
	switch ((int)r->type) {
	case VMO_PAGES:
	case VMO_ZERO: {
		uint64_t first = r->u.pages.first, n = r->u.pages.count;

		if (n < 1 || n > (r->type == VMO_PAGES ? VMO_PAGES_MAX : VMO_ZERO_MAX))
			fail("accepted a page count out of range");
		if (first >= gp || n > gp - first)
			fail("accepted pages beyond the guest");
		if (vmo_stream_of(first, count) != index)
			fail("accepted pages of another stream");
		if ((r->type == VMO_PAGES || count > 1) &&
		    first / VMO_PAGES_MAX != (first + n - 1) / VMO_PAGES_MAX)
			fail("accepted pages across a chunk");
		if (r->type == VMO_PAGES &&
		    (len != 16 + n * VMO_PAGE_SIZE || r->u.pages.data != p + 16))
			fail("accepted PAGES of the wrong size");
		if (r->type == VMO_ZERO && (len != 16 || r->u.pages.data != NULL))
			fail("accepted ZERO of the wrong size");
		if (le32(p + 12) != 0)
			fail("accepted a reserved field not zero");
		break;
	}
	case VMO_ROUND:
	case VMO_STATE_END:
		if (len != 16)
			fail("accepted ROUND or STATE_END of the wrong size");
		break;
	case VMO_FINAL:
	case VMO_GO:
		if (len != 8)
			fail("accepted FINAL or GO of the wrong size");
		break;
	case VMO_STATE:
		if (index != 0 || len == 0 || r->u.state.len != len || r->u.state.data != p)
			fail("accepted a bad STATE");
		break;
	case VMO_READY:
	case VMO_RESUMED:
		if (len != 0)
			fail("accepted a non-empty READY or RESUMED");
		break;
	case VMO_SYNC:
	case VMO_SYNCED:
	case VMO_CKPT:
	case VMO_ACK:
		if (len != 8)
			fail("accepted SYNC, SYNCED, CKPT or ACK of the wrong size");
		break;
	case VMO_DISK:
		if (len < 16 + 512 || len > 16 + VMO_DISK_DATA_MAX || r->u.disk.len != len - 16 ||
		    r->u.disk.len % 512 != 0 || r->u.disk.index >= VMO_DISK_MAX ||
		    r->u.disk.offset % 512 != 0 || r->u.disk.data != p + 16 || le32(p + 4) != 0)
			fail("accepted a bad DISK");
		break;
	case VMO_CKPT_END:
		if (len != 40)
			fail("accepted CKPT_END of the wrong size");
		break;
	case VMO_ABORT:
		if (r->u.abort.code >= 0 || strlen(r->u.abort.text) > VMO_ABORT_TEXT_MAX ||
		    len != 8 + strlen(r->u.abort.text) ||
		    memcmp(r->u.abort.text, p + 8, len - 8) != 0)
			fail("accepted a bad ABORT");
		break;
	default:
		fail("accepted an unknown type");
	}
	if ((r->type == VMO_STATE || r->type == VMO_STATE_END) && index != 0)
		fail("accepted the state on a stream other than 0");
}

static void record(const uint8_t *data, size_t size)
{
	struct kb_errmsg err = {{0}};
	struct vmo_rec rec;
	uint32_t count, index, len;
	uint64_t gp;
	int rv;

	if (size < 10 || size - 10 > VMO_REC_MAX + 1)
		return;
	count = (uint32_t)(data[1] >> 4) + 1;
	index = (data[1] & 15u) % count;
	gp = le64(data + 2);
	len = (uint32_t)(size - 10);
	rv = vmo_decode((enum vmo_type)data[0], data + 10, len, index, count, gp, &rec, &err);
	if (rv > 0)
		fail("decode returned a positive code");
	if (rv != 0) {
		if (err.msg[0] == '\0')
			fail("a refused record gave no message");
		if (rv != KB_EPROTO && rv != KB_ETOOBIG)
			fail("a refused record gave an unexpected code");
		return;
	}
	if ((int)rec.type != data[0])
		fail("decode changed the type");
	check_record(&rec, data + 10, len, index, count, gp);
}

static void hello(const uint8_t *h, int is_signed)
{
	struct kb_errmsg err = {{0}};
	uint32_t index = 99;
	bool enc = false;
	uint8_t m[32];
	int rv = vmo_hello_check(h, &params, &index, &enc, &err);

	if (rv > 0)
		fail("hello check returned a positive code");
	if (rv != 0) {
		if (err.msg[0] == '\0')
			fail("a refused hello gave no message");
		if (is_signed && rv == KB_ECHECKSUM)
			fail("a correctly signed hello failed the MAC");
		if (index != 99)
			fail("a refused hello set the index");
		return;
	}
	mac(h, 56, m);
	if (memcmp(m, h + 56, 32) != 0)
		fail("accepted a hello whose MAC does not verify");
	if (memcmp(h, VMO_MAGIC, 8) != 0 || le32(h + 8) != VMO_VERSION ||
	    memcmp(h + 16, params.id, VMO_ID_SIZE) != 0 || le32(h + 36) != params.count ||
	    index != le32(h + 32) || index >= params.count || !enc || le32(h + 12) != 1)
		fail("accepted a hello with a wrong field");
}

static void reply(const uint8_t *r)
{
	struct kb_errmsg err = {{0}};
	uint8_t in[18 + VMO_HELLO_SIZE + 32], m[32];
	int rv = vmo_reply_check(r, fixed_hello, &params, &err);

	if (rv > 0)
		fail("reply check returned a positive code");
	if (rv != 0) {
		if (err.msg[0] == '\0')
			fail("a refused reply gave no message");
		return;
	}
	memcpy(in, "keel-vmotion-reply", 18);
	memcpy(in + 18, fixed_hello, VMO_HELLO_SIZE);
	memcpy(in + 18 + VMO_HELLO_SIZE, r, 32);
	mac(in, sizeof(in), m);
	if (memcmp(m, r + 32, 32) != 0 || le32(r + 12) != 0 || memcmp(r, VMO_MAGIC, 8) != 0)
		fail("accepted a reply that does not prove the key");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h[VMO_HELLO_SIZE], r[VMO_REPLY_SIZE];

	if (!ready)
		setup();
	if (size > 0 && data[0] < 0x40) {
		record(data, size);
		return 0;
	}
	/* short inputs are padded with zeros: the checks see every length */
	memset(h, 0, sizeof(h));
	memcpy(h, data, size < sizeof(h) ? size : sizeof(h));
	hello(h, 0);
	mac(h, 56, h + 56);
	hello(h, 1);
	memset(r, 0, sizeof(r));
	memcpy(r, data, size < sizeof(r) ? size : sizeof(r));
	reply(r);
	return 0;
}
