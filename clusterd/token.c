/*
 * Join tokens (token.h): issuing, the strict decoder of their text, and the checks a
 * cluster and a joining host make.
 *
 * Happy path: the cluster issues a token, keeps its record and hands the text to the
 * operator; the joining host parses it and pins the CA the cluster presents with
 * cd_token_fingerprint_check(); the cluster redeems the token with cd_token_redeem() and
 * the record is marked used. Failure modes: malformed text is refused before anything
 * else looks at it; a wrong, spent or expired token is refused with its own code and a
 * message that never contains the secret.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "clusterd/ca.h"
#include "clusterd/token.h"

_Static_assert(CD_TOKEN_FP_SIZE == CD_FINGERPRINT_SIZE, "token fingerprints are ca.h's");

#define PREFIX_LEN (sizeof(CD_TOKEN_PREFIX) - 1)
#define B64_LEN(n) (((n)*4 + 2) / 3) /* unpadded base64 length of n bytes */
#define ID_LEN	   B64_LEN(CD_TOKEN_ID_SIZE)
#define SECRET_LEN B64_LEN(CD_TOKEN_SECRET_SIZE)
#define FP_LEN	   B64_LEN(CD_TOKEN_FP_SIZE)
#define SHORT_LEN  (PREFIX_LEN + ID_LEN + 1 + SECRET_LEN)
#define LONG_LEN   (SHORT_LEN + 1 + FP_LEN)

_Static_assert(LONG_LEN == CD_TOKEN_TEXT_MAX, "CD_TOKEN_TEXT_MAX is the longest token");

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Writes B64_LEN(n) characters (no NUL). */
static char *b64_encode(const uint8_t *src, size_t n, char *dst)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | src[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*dst++ = b64url[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		*dst++ = b64url[(acc << (6 - bits)) & 63];
	return dst;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes exactly B64_LEN(n) characters of src into n bytes; false on a character outside
 * the alphabet or non-zero unused bits in the last one. */
static bool b64_decode(const char *src, uint8_t *dst, size_t n)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t out = 0;

	for (size_t i = 0; i < B64_LEN(n); i++) {
		int v = b64_value(src[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[out++] = (uint8_t)(acc >> bits);
		}
		acc &= (1u << bits) - 1;
	}
	return out == n && acc == 0;
}

static int hash_secret(const uint8_t *secret, uint8_t out[CD_TOKEN_HASH_SIZE])
{
	unsigned int len = 0;

	if (EVP_Digest(secret, CD_TOKEN_SECRET_SIZE, out, &len, EVP_sha256(), NULL) != 1 ||
	    len != CD_TOKEN_HASH_SIZE)
		return -ENOMEM;
	return 0;
}

int cd_token_issue(uint64_t ttl_s, uint64_t now_s, const uint8_t *ca_fingerprint, char *text,
		   struct cd_token_record *record, struct kb_errmsg *err)
{
	struct cd_token_record r = {0};
	uint8_t secret[CD_TOKEN_SECRET_SIZE];
	char *p = text;
	int rv = 0;

	if (ttl_s < 1 || ttl_s > CD_TOKEN_TTL_MAX) {
		kb_errmsg_setf(err, "join token lifetime must be 1 to %d seconds",
			       CD_TOKEN_TTL_MAX);
		return -EINVAL;
	}
	if (now_s > UINT64_MAX - ttl_s) {
		kb_errmsg_setf(err, "join token: time out of range");
		return -EINVAL;
	}
	if (RAND_bytes(r.id, sizeof(r.id)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1) {
		kb_errmsg_setf(err, "join token: no random bytes");
		rv = -EIO;
		goto out;
	}
	if (hash_secret(secret, r.secret_hash) != 0) {
		kb_errmsg_setf(err, "join token: hashing the secret failed");
		rv = -ENOMEM;
		goto out;
	}
	r.expires_s = now_s + ttl_s;
	memcpy(p, CD_TOKEN_PREFIX, PREFIX_LEN);
	p = b64_encode(r.id, sizeof(r.id), p + PREFIX_LEN);
	*p++ = '.';
	p = b64_encode(secret, sizeof(secret), p);
	if (ca_fingerprint != NULL) {
		*p++ = '.';
		p = b64_encode(ca_fingerprint, CD_TOKEN_FP_SIZE, p);
	}
	*p = '\0';
	*record = r;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	return rv;
}

int cd_token_parse(const char *text, size_t len, struct cd_token *out, struct kb_errmsg *err)
{
	struct cd_token t = {0};
	const char *p;
	int rv = KB_EPROTO;

	memset(out, 0, sizeof(*out));
	if (len > CD_TOKEN_TEXT_MAX) {
		kb_errmsg_setf(err, "join token: longer than %d characters", CD_TOKEN_TEXT_MAX);
		return KB_ETOOBIG;
	}
	if (len < PREFIX_LEN || memcmp(text, CD_TOKEN_PREFIX, PREFIX_LEN) != 0) {
		size_t d = 1;

		while (d < len && d < 8 && text[d] >= '0' && text[d] <= '9')
			d++;
		if (d > 1 && d < len && text[0] == CD_TOKEN_PREFIX[0] && text[d] == '.') {
			kb_errmsg_setf(err,
				       "join token: unknown format version (this host "
				       "reads \"%s\" tokens)",
				       CD_TOKEN_PREFIX);
			return KB_EVERSION;
		}
		kb_errmsg_setf(err, "join token: does not start with \"%s\"", CD_TOKEN_PREFIX);
		return KB_EPROTO;
	}
	if (len != SHORT_LEN && len != LONG_LEN) {
		kb_errmsg_setf(err, "join token: must have %zu or %zu characters, not %zu",
			       SHORT_LEN, LONG_LEN, len);
		return KB_EPROTO;
	}
	p = text + PREFIX_LEN;
	if (p[ID_LEN] != '.' || !b64_decode(p, t.id, sizeof(t.id))) {
		kb_errmsg_setf(err, "join token: malformed token id");
		goto out;
	}
	p += ID_LEN + 1;
	if (!b64_decode(p, t.secret, sizeof(t.secret))) {
		kb_errmsg_setf(err, "join token: malformed secret");
		goto out;
	}
	p += SECRET_LEN;
	if (len == LONG_LEN) {
		if (*p != '.' || !b64_decode(p + 1, t.ca_fingerprint, sizeof(t.ca_fingerprint))) {
			kb_errmsg_setf(err, "join token: malformed CA fingerprint");
			goto out;
		}
		t.has_ca_fingerprint = true;
	}
	*out = t;
	rv = 0;
out:
	cd_token_clear(&t);
	return rv;
}

int cd_token_check(const struct cd_token_record *record, const struct cd_token *t, uint64_t now_s,
		   struct kb_errmsg *err)
{
	uint8_t hash[CD_TOKEN_HASH_SIZE];

	if (record == NULL || CRYPTO_memcmp(record->id, t->id, sizeof(t->id)) != 0) {
		kb_errmsg_setf(err, "unknown join token");
		return KB_ENOTFOUND;
	}
	if (hash_secret(t->secret, hash) != 0) {
		kb_errmsg_setf(err, "join token: hashing the secret failed");
		return -ENOMEM;
	}
	if (CRYPTO_memcmp(hash, record->secret_hash, sizeof(hash)) != 0) {
		kb_errmsg_setf(err, "join token refused: wrong secret");
		return -EKEYREJECTED;
	}
	if (record->used) {
		kb_errmsg_setf(err, "join token refused: already used");
		return -EKEYREVOKED;
	}
	if (now_s >= record->expires_s) {
		kb_errmsg_setf(err, "join token refused: expired %llu s ago",
			       (unsigned long long)(now_s - record->expires_s));
		return -EKEYEXPIRED;
	}
	return 0;
}

int cd_token_redeem(struct cd_token_record *record, const struct cd_token *t, uint64_t now_s,
		    struct kb_errmsg *err)
{
	int rv = cd_token_check(record, t, now_s, err);

	if (rv == 0)
		record->used = true;
	return rv;
}

int cd_token_fingerprint_check(const struct cd_token *t, const char *ca_crt_pem,
			       struct kb_errmsg *err)
{
	uint8_t fp[CD_FINGERPRINT_SIZE];
	int rv;

	if (!t->has_ca_fingerprint) {
		kb_errmsg_setf(err, "join token carries no CA fingerprint to pin");
		return KB_ENOTFOUND;
	}
	rv = cd_cert_fingerprint(ca_crt_pem, fp, err);
	if (rv != 0)
		return rv;
	if (CRYPTO_memcmp(fp, t->ca_fingerprint, sizeof(fp)) != 0) {
		kb_errmsg_setf(err, "the cluster's CA certificate is not the one the join token "
				    "names");
		return -EKEYREJECTED;
	}
	return 0;
}

void cd_token_clear(struct cd_token *t)
{
	OPENSSL_cleanse(t, sizeof(*t));
}
