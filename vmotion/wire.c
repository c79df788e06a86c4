/*
 * The vMotion stream (wire.h; the format is in docs/vmotion.md, "The stream").
 *
 * Happy path: the client sends its hello, the server checks it (the MAC, in constant time,
 * before any field is trusted) and answers; both derive an AES-256-GCM key and IV salt per
 * direction with HKDF-SHA256, then exchange records. A record is sealed straight from the
 * caller's iov into the conn's send buffer and written with one call; it is read with two
 * (the header, then payload and tag), opened in place and decoded. With encryption off the
 * payload is copied into the send buffer first and the CRC32C is computed over that copy,
 * so guest memory changing under the sender cannot produce a record that fails its check.
 *
 * Failure modes: a silent peer during the hello (KB_ETIMEOUT); a peer that does not prove
 * the key or names another migration, count or index (refused before any record is read);
 * a record that fails its tag or CRC (KB_ECHECKSUM: the sequence number in the nonce makes
 * a replayed or reordered record fail too); a length over VMO_REC_MAX (KB_ETOOBIG, before
 * reading it); a stream that ends (KB_ETRUNCATED); anything else malformed (KB_EPROTO).
 * After a failure that direction stays failed (KB_ESTATE): the conn is only good for
 * vmo_conn_free.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "lib/crc.h"
#include "lib/heap.h"
#include "vmotion/wire_int.h"

#define HDR_SIZE   8
#define TAG_SIZE   16
#define CRC_SIZE   4
#define NONCE_SIZE 16 /* the client's and the server's hello nonces */
#define MAC_SIZE   32
#define SALT_SIZE  VMO__SALT_SIZE
#define IV_SIZE	   12 /* IV salt, then the big-endian record sequence number */
#define HELLO_BODY (VMO_HELLO_SIZE - MAC_SIZE)
#define REPLY_BODY (VMO_REPLY_SIZE - MAC_SIZE)
#define BUF_SIZE   (HDR_SIZE + VMO_REC_MAX + TAG_SIZE)
#define SOCK_BUF   (4 << 20)

/* Hello offsets. */
#define H_VERSION	 8
#define H_FLAGS		 12
#define H_ID		 16
#define H_INDEX		 32
#define H_COUNT		 36
#define H_NONCE		 40
#define H_FLAG_ENCRYPTED 1u
#define H_FLAG_FT	 2u
/* Reply offsets. */
#define R_VERSION 8
#define R_STATUS  12
#define R_NONCE	  16

static const char reply_label[] = "keel-vmotion-reply"; /* no NUL on the wire */
static const char kdf_label[] = "keel-vmotion-1 ";

_Static_assert(HELLO_BODY == 56 && REPLY_BODY == 32, "hello layout");

static _Atomic unsigned int hello_timeout_ms = 10000;

void vmo_hello_timeout_set(unsigned int ms)
{
	atomic_store(&hello_timeout_ms, ms);
}

/* ---- socket I/O ---- */

/* Writes n bytes; restarts on EINTR and short writes; a vanished peer is -EPIPE, not a
 * signal. The socket is blocking, so EAGAIN means its send timeout (SO_SNDTIMEO, set by the
 * caller) passed with the peer taking nothing: KB_ETIMEOUT — a cut network must not hold
 * a sender forever. 0, -errno or KB_ETIMEOUT. */
static int write_all(int fd, const uint8_t *p, size_t n, _Atomic uint64_t *count)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return KB_ETIMEOUT;
			return -errno;
		}
		atomic_fetch_add_explicit(count, (uint64_t)w, memory_order_relaxed);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads up to n bytes, stopping early only at end of stream; *got says how many. The
 * socket is blocking, so EAGAIN means its receive timeout passed: KB_ETIMEOUT. 0, -errno
 * or KB_ETIMEOUT. */
static int read_all(int fd, uint8_t *p, size_t n, size_t *got, _Atomic uint64_t *count)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv(fd, p + off, n - off, MSG_WAITALL);

		if (r > 0) {
			atomic_fetch_add_explicit(count, (uint64_t)r, memory_order_relaxed);
			off += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		*got = off;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return KB_ETIMEOUT;
		return -errno;
	}
	*got = off;
	return 0;
}

static void set_rcvtimeo(int fd, unsigned int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Blocking mode, big buffers, no Nagle delay (not every socket has each option: a Unix
 * socketpair in tests has no TCP_NODELAY), and the hello's receive timeout. */
static int prepare_socket(int fd, struct kb_errmsg *err)
{
	int flags = fcntl(fd, F_GETFL), one = 1, size = SOCK_BUF;

	if (flags < 0 || (flags & O_NONBLOCK && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)) {
		int rc = -errno;

		kb_errmsg_setf(err, "vmotion: socket %d: %s", fd, kb_strerror(rc));
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_rcvtimeo(fd, atomic_load(&hello_timeout_ms));
	return 0;
}

/* ---- crypto ---- */

static int hmac(const uint8_t *key, const uint8_t *data, size_t n, uint8_t mac[MAC_SIZE])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), key, VMO_KEY_SIZE, data, n, mac, &len) == NULL || len != MAC_SIZE)
		return -EIO;
	return 0;
}

/* The reply's MAC: HMAC(key, label ‖ the client's hello ‖ the reply's first 32 bytes). */
static int reply_mac(const uint8_t *key, const uint8_t hello[VMO_HELLO_SIZE],
		     const uint8_t reply[VMO_REPLY_SIZE], uint8_t mac[MAC_SIZE])
{
	uint8_t in[sizeof(reply_label) - 1 + VMO_HELLO_SIZE + REPLY_BODY];
	size_t n = sizeof(reply_label) - 1;

	memcpy(in, reply_label, n);
	memcpy(in + n, hello, VMO_HELLO_SIZE);
	memcpy(in + n + VMO_HELLO_SIZE, reply, REPLY_BODY);
	return hmac(key, in, sizeof(in), mac);
}

/* HKDF-SHA256(ikm = key, salt = cnonce ‖ snonce, info = label ‖ dir ‖ u32 index) into
 * out: 32 bytes of AES key, then the 4-byte IV salt. */
static int derive(const uint8_t *key, const uint8_t *cnonce, const uint8_t *snonce, char d,
		  uint32_t index, uint8_t out[VMO_KEY_SIZE + SALT_SIZE])
{
	uint8_t salt[2 * NONCE_SIZE], info[sizeof(kdf_label) - 1 + 1 + 4];
	size_t n = sizeof(kdf_label) - 1;
	EVP_KDF_CTX *kctx = NULL;
	EVP_KDF *kdf;
	OSSL_PARAM params[5];
	int rc = -EIO;

	memcpy(salt, cnonce, NONCE_SIZE);
	memcpy(salt + NONCE_SIZE, snonce, NONCE_SIZE);
	memcpy(info, kdf_label, n);
	info[n] = (uint8_t)d;
	put_le32(info + n + 1, index);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] =
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, VMO_KEY_SIZE);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof(salt));
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info));
	params[4] = OSSL_PARAM_construct_end();
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL)
		return -EIO;
	kctx = EVP_KDF_CTX_new(kdf);
	if (kctx != NULL && EVP_KDF_derive(kctx, out, VMO_KEY_SIZE + SALT_SIZE, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* Sets up one direction: derives its key and salt, keys the cipher once. */
static int dir_init(struct dir *dr, bool seal, const uint8_t *key, const uint8_t *cnonce,
		    const uint8_t *snonce, char d, uint32_t index)
{
	uint8_t km[VMO_KEY_SIZE + SALT_SIZE];
	int rc, ok;

	rc = derive(key, cnonce, snonce, d, index, km);
	if (rc)
		return rc;
	dr->ctx = EVP_CIPHER_CTX_new();
	if (dr->ctx == NULL) {
		OPENSSL_cleanse(km, sizeof(km));
		return -ENOMEM;
	}
	if (seal)
		ok = EVP_EncryptInit_ex(dr->ctx, EVP_aes_256_gcm(), NULL, km, NULL);
	else
		ok = EVP_DecryptInit_ex(dr->ctx, EVP_aes_256_gcm(), NULL, km, NULL);
	memcpy(dr->salt, km + VMO_KEY_SIZE, SALT_SIZE);
	OPENSSL_cleanse(km, sizeof(km));
	return ok == 1 ? 0 : -EIO;
}

static void make_iv(const struct dir *dr, uint8_t iv[IV_SIZE])
{
	memcpy(iv, dr->salt, SALT_SIZE);
	for (int i = 0; i < 8; i++)
		iv[SALT_SIZE + i] = (uint8_t)(dr->seq >> (56 - 8 * i));
}

/* Seals header sbuf[0..8) as AAD and the iov into sbuf + 8, the tag after it. */
static int seal(struct vmo_conn *c, const struct iovec *iov, int iovcnt, size_t len)
{
	EVP_CIPHER_CTX *ctx = c->tx.ctx;
	uint8_t iv[IV_SIZE], *out = c->sbuf + HDR_SIZE;
	int n;

	make_iv(&c->tx, iv);
	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, c->sbuf, HDR_SIZE) != 1)
		return -EIO;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		if (EVP_EncryptUpdate(ctx, out, &n, iov[i].iov_base, (int)iov[i].iov_len) != 1)
			return -EIO;
		out += n;
	}
	if (EVP_EncryptFinal_ex(ctx, out, &n) != 1)
		return -EIO;
	out += n;
	if ((size_t)(out - c->sbuf) != HDR_SIZE + len ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out) != 1)
		return -EIO;
	return 0;
}

/* Opens rbuf[8..8+len) in place with rbuf[0..8) as AAD and the tag after it. 0, -EIO, or
 * KB_ECHECKSUM when the tag does not verify. */
static int open_sealed(struct vmo_conn *c, size_t len)
{
	EVP_CIPHER_CTX *ctx = c->rx.ctx;
	uint8_t iv[IV_SIZE], *p = c->rbuf + HDR_SIZE;
	int n, fin;

	make_iv(&c->rx, iv);
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, c->rbuf, HDR_SIZE) != 1)
		return -EIO;
	if (len > 0 && EVP_DecryptUpdate(ctx, p, &n, p, (int)len) != 1)
		return -EIO;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, p + len) != 1)
		return -EIO;
	fin = EVP_DecryptFinal_ex(ctx, p + len, &n);
	return fin == 1 ? 0 : KB_ECHECKSUM;
}

/* ---- the hello ---- */

static int check_params(const struct vmo_params *p, struct kb_errmsg *err)
{
	if (p == NULL || p->count < 1 || p->count > VMO_MAX_STREAMS) {
		kb_errmsg_setf(err, "vmotion: a migration has 1..%d streams, not %u",
			       VMO_MAX_STREAMS, p ? p->count : 0);
		return -EINVAL;
	}
	return 0;
}

int vmo_hello_check(const uint8_t hello[VMO_HELLO_SIZE], const struct vmo_params *p,
		    uint32_t *index, bool *encrypt, struct kb_errmsg *err)
{
	uint8_t mac[MAC_SIZE];
	uint32_t version, flags, idx, count;
	int rc;

	rc = check_params(p, err);
	if (rc)
		return rc;
	if (memcmp(hello, VMO_MAGIC, 8) != 0) {
		kb_errmsg_setf(err, "not a vMotion hello (wrong magic)");
		return KB_EPROTO;
	}
	version = get_le32(hello + H_VERSION);
	if (version != VMO_VERSION) {
		kb_errmsg_setf(err, "hello of version %u; this host speaks version %u", version,
			       VMO_VERSION);
		return KB_EVERSION;
	}
	if (hmac(p->key, hello, HELLO_BODY, mac)) {
		kb_errmsg_setf(err, "hello: HMAC-SHA256 failed");
		return -EIO;
	}
	rc = CRYPTO_memcmp(mac, hello + HELLO_BODY, MAC_SIZE);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (rc != 0) {
		kb_errmsg_setf(err, "hello does not prove the migration key (MAC mismatch)");
		return KB_ECHECKSUM;
	}
	flags = get_le32(hello + H_FLAGS);
	if (flags & ~(H_FLAG_ENCRYPTED | H_FLAG_FT)) {
		kb_errmsg_setf(err, "hello with unknown flags 0x%x", flags);
		return KB_EPROTO;
	}
	if (!(flags & H_FLAG_FT) != !p->ft) {
		kb_errmsg_setf(err, "%s hello to %s endpoint",
			       flags & H_FLAG_FT ? "an FT" : "a vMotion",
			       p->ft ? "an FT" : "a vMotion");
		return KB_EPROTO;
	}
	if (CRYPTO_memcmp(hello + H_ID, p->id, VMO_ID_SIZE) != 0) {
		kb_errmsg_setf(err, "hello names another migration id");
		return KB_ENOTFOUND;
	}
	idx = get_le32(hello + H_INDEX);
	count = get_le32(hello + H_COUNT);
	if (count != p->count) {
		kb_errmsg_setf(err, "hello claims %u streams; this migration has %u", count,
			       p->count);
		return KB_EPROTO;
	}
	if (idx >= count) {
		kb_errmsg_setf(err, "hello claims stream %u of %u", idx, count);
		return KB_EPROTO;
	}
	if (p->encrypt && !(flags & H_FLAG_ENCRYPTED)) {
		kb_errmsg_setf(
		    err, "stream %u: plain hello, but this migration requires encryption", idx);
		return KB_ENOTSUP;
	}
	*index = idx;
	*encrypt = flags & H_FLAG_ENCRYPTED;
	return 0;
}

int vmo_reply_check(const uint8_t reply[VMO_REPLY_SIZE], const uint8_t hello[VMO_HELLO_SIZE],
		    const struct vmo_params *p, struct kb_errmsg *err)
{
	uint8_t mac[MAC_SIZE];
	uint32_t version;
	int32_t status;
	bool proven;

	if (memcmp(reply, VMO_MAGIC, 8) != 0) {
		kb_errmsg_setf(err, "not a vMotion reply (wrong magic)");
		return KB_EPROTO;
	}
	version = get_le32(reply + R_VERSION);
	if (version != VMO_VERSION) {
		kb_errmsg_setf(err, "reply of version %u; this host speaks version %u", version,
			       VMO_VERSION);
		return KB_EVERSION;
	}
	if (reply_mac(p->key, hello, reply, mac)) {
		kb_errmsg_setf(err, "reply: HMAC-SHA256 failed");
		return -EIO;
	}
	proven = CRYPTO_memcmp(mac, reply + REPLY_BODY, MAC_SIZE) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	status = (int32_t)get_le32(reply + R_STATUS);
	if (status > 0) {
		kb_errmsg_setf(err, "the destination refused the hello with invalid status %d",
			       (int)status);
		return KB_EPROTO;
	}
	if (status < 0) {
		kb_errmsg_setf(err, "the destination refused the hello: %s%s",
			       kb_strerror((int)status),
			       proven ? "" : " (its reply does not prove the migration key)");
		return (int)status;
	}
	if (!proven) {
		kb_errmsg_setf(err, "the destination's reply does not prove the migration key");
		return KB_ECHECKSUM;
	}
	return 0;
}

/* Makes the conn for fd after a successful hello. On failure fd stays the caller's. */
static int conn_create(int fd, const struct vmo_params *p, uint32_t index, bool encrypt,
		       bool client, const uint8_t *cnonce, const uint8_t *snonce,
		       struct vmo_conn **out, struct kb_errmsg *err)
{
	struct vmo_conn *c;
	int rc = -ENOMEM;

	c = kb_calloc(1, sizeof(*c));
	if (c == NULL)
		goto err_msg;
	pthread_mutex_init(&c->tx_lock, NULL);
	c->fd = fd;
	c->index = index;
	c->count = p->count;
	c->guest_pages = p->guest_pages;
	c->encrypt = encrypt;
	c->client = client;
	c->ft = p->ft;
	c->sbuf = kb_malloc(BUF_SIZE);
	if (c->sbuf == NULL)
		goto err_free;
	c->rbuf = kb_malloc(BUF_SIZE);
	if (c->rbuf == NULL)
		goto err_free;
	if (encrypt) {
		rc = dir_init(&c->tx, true, p->key, cnonce, snonce, client ? 'c' : 's', index);
		if (rc == 0)
			rc = dir_init(&c->rx, false, p->key, cnonce, snonce, client ? 's' : 'c',
				      index);
		if (rc)
			goto err_free;
	}
	*out = c;
	return 0;

err_free:
	c->fd = -1;
	vmo_conn_free(c);
err_msg:
	kb_errmsg_setf(err, "stream %u: setting up the stream: %s", index, kb_strerror(rc));
	return rc;
}

int vmo_client_hello(int fd, const struct vmo_params *p, uint32_t index, struct vmo_conn **out,
		     struct kb_errmsg *err)
{
	uint8_t hello[VMO_HELLO_SIZE], reply[VMO_REPLY_SIZE];
	_Atomic uint64_t sent = 0, received = 0;
	struct vmo_conn *c;
	size_t got = 0;
	int rc;

	*out = NULL;
	rc = check_params(p, err);
	if (rc)
		return rc;
	if (index >= p->count) {
		kb_errmsg_setf(err, "vmotion: stream %u of %u", index, p->count);
		return -EINVAL;
	}
	memcpy(hello, VMO_MAGIC, 8);
	put_le32(hello + H_VERSION, VMO_VERSION);
	put_le32(hello + H_FLAGS, (p->encrypt ? H_FLAG_ENCRYPTED : 0) | (p->ft ? H_FLAG_FT : 0));
	memcpy(hello + H_ID, p->id, VMO_ID_SIZE);
	put_le32(hello + H_INDEX, index);
	put_le32(hello + H_COUNT, p->count);
	if (RAND_bytes(hello + H_NONCE, NONCE_SIZE) != 1 ||
	    hmac(p->key, hello, HELLO_BODY, hello + HELLO_BODY)) {
		kb_errmsg_setf(err, "stream %u: making the hello failed in OpenSSL", index);
		return -EIO;
	}
	rc = prepare_socket(fd, err);
	if (rc)
		return rc;
	rc = write_all(fd, hello, sizeof(hello), &sent);
	if (rc) {
		kb_errmsg_setf(err, "stream %u: sending the hello: %s", index, kb_strerror(rc));
		return rc;
	}
	rc = read_all(fd, reply, sizeof(reply), &got, &received);
	if (rc == KB_ETIMEOUT) {
		kb_errmsg_setf(err, "stream %u: no answer to the hello within %u ms", index,
			       atomic_load(&hello_timeout_ms));
		return rc;
	}
	if (rc) {
		kb_errmsg_setf(err, "stream %u: reading the reply: %s", index, kb_strerror(rc));
		return rc;
	}
	if (got < sizeof(reply)) {
		kb_errmsg_setf(err, "stream %u: the destination closed the stream %s", index,
			       got ? "inside its reply" : "without answering the hello");
		return KB_ETRUNCATED;
	}
	rc = vmo_reply_check(reply, hello, p, err);
	if (rc) {
		kb_errmsg_wrapf(err, "stream %u", index);
		return rc;
	}
	set_rcvtimeo(fd, 0);
	rc = conn_create(fd, p, index, p->encrypt, true, hello + H_NONCE, reply + R_NONCE, &c, err);
	if (rc)
		return rc;
	atomic_store(&c->sent, atomic_load(&sent));
	atomic_store(&c->received, atomic_load(&received));
	*out = c;
	return 0;
}

int vmo_server_hello(int fd, const struct vmo_params *p, struct vmo_conn **out, uint32_t *index,
		     struct kb_errmsg *err)
{
	uint8_t hello[VMO_HELLO_SIZE], reply[VMO_REPLY_SIZE];
	_Atomic uint64_t sent = 0, received = 0;
	struct vmo_conn *c = NULL;
	uint32_t idx = 0;
	bool encrypt = false;
	size_t got = 0;
	int rc, status;

	*out = NULL;
	rc = check_params(p, err);
	if (rc)
		return rc;
	rc = prepare_socket(fd, err);
	if (rc)
		return rc;
	rc = read_all(fd, hello, sizeof(hello), &got, &received);
	if (rc == KB_ETIMEOUT) {
		kb_errmsg_setf(err, "no hello within %u ms", atomic_load(&hello_timeout_ms));
		return rc;
	}
	if (rc) {
		kb_errmsg_setf(err, "reading the hello: %s", kb_strerror(rc));
		return rc;
	}
	if (got < sizeof(hello)) {
		kb_errmsg_setf(err,
			       "the source closed the stream after %zu of the hello's %d bytes",
			       got, VMO_HELLO_SIZE);
		return KB_ETRUNCATED;
	}
	if (memcmp(hello, VMO_MAGIC, 8) != 0) {
		kb_errmsg_setf(err, "not a vMotion hello (wrong magic): not answered");
		return KB_EPROTO;
	}
	status = vmo_hello_check(hello, p, &idx, &encrypt, err);
	memcpy(reply, VMO_MAGIC, 8);
	put_le32(reply + R_VERSION, VMO_VERSION);
	if (RAND_bytes(reply + R_NONCE, NONCE_SIZE) != 1) {
		kb_errmsg_setf(err, "making the reply failed in OpenSSL");
		return -EIO;
	}
	if (status == 0) /* a conn that cannot be made is refused like a bad hello */
		status = conn_create(fd, p, idx, encrypt, false, hello + H_NONCE, reply + R_NONCE,
				     &c, err);
	put_le32(reply + R_STATUS, (uint32_t)status);
	rc = reply_mac(p->key, hello, reply, reply + REPLY_BODY);
	if (rc == 0)
		rc = write_all(fd, reply, sizeof(reply), &sent);
	if (status)
		return status; /* the refusal's message is the one to keep */
	if (rc) {
		kb_errmsg_setf(err, "stream %u: answering the hello: %s", idx, kb_strerror(rc));
		c->fd = -1; /* still the caller's */
		vmo_conn_free(c);
		return rc;
	}
	set_rcvtimeo(fd, 0);
	atomic_store(&c->sent, atomic_load(&sent));
	atomic_store(&c->received, atomic_load(&received));
	*out = c;
	*index = idx;
	return 0;
}

static int send_locked(struct vmo_conn *c, enum vmo_type type, const struct iovec *iov, int iovcnt,
		       struct kb_errmsg *err)
{
	size_t len = 0, total;
	int rc;

	if (c->tx.failed) {
		kb_errmsg_setf(err, "stream %u: an earlier send failed", c->index);
		return KB_ESTATE;
	}
	if ((int)type < VMO_PAGES || (int)type > VMO_ACK || iovcnt < 0 ||
	    (iovcnt > 0 && iov == NULL)) {
		kb_errmsg_setf(err, "stream %u: record type %d with %d buffers", c->index,
			       (int)type, iovcnt);
		return -EINVAL;
	}
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > VMO_REC_MAX || len + iov[i].iov_len > VMO_REC_MAX) {
			kb_errmsg_setf(err, "stream %u: %s record exceeds %u bytes", c->index,
				       vmo__type_name(type), VMO_REC_MAX);
			return KB_ETOOBIG;
		}
		len += iov[i].iov_len;
	}
	c->sbuf[0] = (uint8_t)type;
	c->sbuf[1] = 0;
	c->sbuf[2] = 0;
	c->sbuf[3] = 0;
	put_le32(c->sbuf + 4, (uint32_t)len);
	if (c->encrypt) {
		rc = seal(c, iov, iovcnt, len);
		if (rc) {
			c->tx.failed = true;
			kb_errmsg_setf(err, "stream %u: AES-GCM failed", c->index);
			return rc;
		}
		total = HDR_SIZE + len + TAG_SIZE;
	} else {
		uint8_t *p = c->sbuf + HDR_SIZE;

		for (int i = 0; i < iovcnt; i++) {
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
			p += iov[i].iov_len;
		}
		put_le32(p, kb_crc32c(0, c->sbuf, HDR_SIZE + len));
		total = HDR_SIZE + len + CRC_SIZE;
	}
	rc = write_all(c->fd, c->sbuf, total, &c->sent);
	c->tx.seq++;
	if (rc) {
		c->tx.failed = true;
		if (atomic_load(&c->shut))
			rc = KB_ECANCELED;
		kb_errmsg_setf(err, "stream %u: sending a %s record: %s", c->index,
			       vmo__type_name(type),
			       rc == KB_ECANCELED ? "the stream was shut down" : kb_strerror(rc));
		return rc;
	}
	return 0;
}

int vmo_send(struct vmo_conn *c, enum vmo_type type, const struct iovec *iov, int iovcnt,
	     struct kb_errmsg *err)
{
	int rc;

	pthread_mutex_lock(&c->tx_lock);
	rc = send_locked(c, type, iov, iovcnt, err);
	pthread_mutex_unlock(&c->tx_lock);
	return rc;
}

/* Which peer may send a type: the source (client) or the destination (server), in vMotion
 * mode or in FT mode (docs/ft.md). */
static bool from_source(int type, bool ft)
{
	if (ft)
		return type == VMO_PAGES || type == VMO_ZERO || type == VMO_STATE ||
		       type == VMO_ABORT || type == VMO_SYNC || type == VMO_DISK ||
		       type == VMO_CKPT || type == VMO_CKPT_END;
	return type >= VMO_PAGES && type <= VMO_SYNC && type != VMO_READY && type != VMO_RESUMED;
}

static bool from_destination(int type, bool ft)
{
	if (ft)
		return type == VMO_ABORT || type == VMO_SYNCED || type == VMO_ACK;
	return type == VMO_READY || type == VMO_RESUMED || type == VMO_ABORT || type == VMO_SYNCED;
}

/* The receive order on the destination: after FINAL only the state (stream 0) and
 * control records; the state only after FINAL and before STATE_END, whose length must be
 * that of the STATE records before it. */
static int check_order(struct vmo_conn *c, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	int t = (int)rec->type;

	switch (t) {
	case VMO_PAGES:
	case VMO_ZERO:
	case VMO_ROUND:
	case VMO_FINAL:
	case VMO_SYNC:
		if (c->final_seen)
			return vmo__bad_field(t, c->index, "after FINAL", err);
		if (t == VMO_FINAL)
			c->final_seen = true;
		return 0;
	case VMO_STATE:
	case VMO_STATE_END:
		if (!c->final_seen)
			return vmo__bad_field(t, c->index, "before FINAL", err);
		if (c->state_end_seen)
			return vmo__bad_field(t, c->index, "after STATE_END", err);
		if (t == VMO_STATE) {
			c->state_bytes += rec->u.state.len;
			return 0;
		}
		if (rec->u.state_end.length != c->state_bytes) {
			kb_errmsg_setf(
			    err, "stream %u: STATE_END announces %llu bytes of state; %llu came",
			    c->index, (unsigned long long)rec->u.state_end.length,
			    (unsigned long long)c->state_bytes);
			return KB_EPROTO;
		}
		c->state_end_seen = true;
		return 0;
	default:
		return 0;
	}
}

/* Reads and opens one record into rbuf; *type and *len describe it. */
static int recv_record(struct vmo_conn *c, int *type, uint32_t *len, struct kb_errmsg *err)
{
	size_t trailer = c->encrypt ? TAG_SIZE : CRC_SIZE, got = 0;
	uint8_t *h = c->rbuf;
	int rc;

	rc = read_all(c->fd, h, HDR_SIZE, &got, &c->received);
	if (rc == 0 && got == 0) {
		if (atomic_load(&c->shut)) {
			kb_errmsg_setf(err, "stream %u: the stream was shut down", c->index);
			return KB_ECANCELED;
		}
		kb_errmsg_setf(err, "stream %u: the peer closed the stream", c->index);
		return KB_ETRUNCATED;
	}
	if (rc == 0 && got < HDR_SIZE) {
		kb_errmsg_setf(err, "stream %u: the stream ended inside a record header", c->index);
		return KB_ETRUNCATED;
	}
	if (rc)
		goto err_read;
	*type = h[0];
	*len = get_le32(h + 4);
	if (*len > VMO_REC_MAX) {
		kb_errmsg_setf(err, "stream %u: record of %u bytes exceeds %u", c->index, *len,
			       VMO_REC_MAX);
		return KB_ETOOBIG;
	}
	rc = read_all(c->fd, h + HDR_SIZE, *len + trailer, &got, &c->received);
	if (rc)
		goto err_read;
	if (got < *len + trailer) {
		kb_errmsg_setf(err, "stream %u: the stream ended inside a record of %u bytes",
			       c->index, *len);
		return KB_ETRUNCATED;
	}
	if (c->encrypt) {
		rc = open_sealed(c, *len);
		if (rc == -EIO) {
			kb_errmsg_setf(err, "stream %u: AES-GCM failed", c->index);
			return rc;
		}
	} else {
		rc = kb_crc32c(0, h, HDR_SIZE + *len) == get_le32(h + HDR_SIZE + *len)
			 ? 0
			 : KB_ECHECKSUM;
	}
	if (rc) {
		kb_errmsg_setf(err,
			       "stream %u: record %llu does not verify (%s mismatch: corrupted, "
			       "replayed or reordered)",
			       c->index, (unsigned long long)c->rx.seq, c->encrypt ? "tag" : "CRC");
		return rc;
	}
	c->rx.seq++;
	if (h[1] != 0 || h[2] != 0 || h[3] != 0) {
		kb_errmsg_setf(err, "stream %u: record header with flags or reserved bits set",
			       c->index);
		return KB_EPROTO;
	}
	return 0;

err_read:
	if (atomic_load(&c->shut)) {
		kb_errmsg_setf(err, "stream %u: the stream was shut down", c->index);
		return KB_ECANCELED;
	}
	kb_errmsg_setf(err, "stream %u: reading a record: %s", c->index, kb_strerror(rc));
	return rc;
}

int vmo_recv(struct vmo_conn *c, struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint32_t len = 0;
	int type = 0, rc;

	if (c->rx.failed) {
		kb_errmsg_setf(err, "stream %u: an earlier receive failed", c->index);
		return KB_ESTATE;
	}
	rc = recv_record(c, &type, &len, err);
	if (rc)
		goto err_failed;
	if (c->client ? !from_destination(type, c->ft) : !from_source(type, c->ft)) {
		kb_errmsg_setf(err, "stream %u: a %s record (type %d) from the %s", c->index,
			       vmo__type_name(type), type,
			       c->ft ? (c->client ? "secondary" : "primary")
				     : (c->client ? "destination" : "source"));
		rc = KB_EPROTO;
		goto err_failed;
	}
	rc = vmo_decode((enum vmo_type)type, c->rbuf + HDR_SIZE, len, c->index, c->count,
			c->guest_pages, rec, err);
	if (rc == 0 && !c->client && !c->ft)
		rc = check_order(c, rec, err);
	if (rc)
		goto err_failed;
	return 0;

err_failed:
	c->rx.failed = true;
	return rc;
}

uint64_t vmo_conn_bytes_sent(const struct vmo_conn *c)
{
	return atomic_load_explicit(&c->sent, memory_order_relaxed);
}

uint64_t vmo_conn_bytes_received(const struct vmo_conn *c)
{
	return atomic_load_explicit(&c->received, memory_order_relaxed);
}

uint32_t vmo_conn_index(const struct vmo_conn *c)
{
	return c->index;
}

int vmo_conn_fd(const struct vmo_conn *c)
{
	return c->fd;
}

void vmo_conn_shutdown(struct vmo_conn *c)
{
	if (c != NULL && !atomic_exchange(&c->shut, true))
		shutdown(c->fd, SHUT_RDWR);
}

void vmo_conn_free(struct vmo_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	EVP_CIPHER_CTX_free(c->tx.ctx); /* wipes the key schedule */
	EVP_CIPHER_CTX_free(c->rx.ctx);
	kb_free(c->sbuf);
	kb_free(c->rbuf);
	pthread_mutex_destroy(&c->tx_lock);
	OPENSSL_cleanse(c, sizeof(*c));
	kb_free(c);
}
