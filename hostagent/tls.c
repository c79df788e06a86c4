/*
 * hostd's certificate and TLS context: see tls.h.
 *
 * The self-signed certificate is written key first, then certificate, each atomically, so
 * a crash in between leaves no certificate and the next start makes a new pair; a
 * certificate without a readable matching key is an error, never silently replaced.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "hostagent/tls.h"
#include "lib/file.h"

#define SELF_DAYS 3650

static const char *ssl_reason(char *buf, size_t size)
{
	unsigned long err = ERR_get_error();

	ERR_clear_error();
	if (!err)
		return "unknown OpenSSL error";
	ERR_error_string_n(err, buf, size);
	return buf;
}

int hd_tls_thumbprint(X509 *cert, char out[HD_THUMBPRINT_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
		return -EIO;
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
	return 0;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* PEM text of key or cert into out (caller closes). */
static int pem_key(EVP_PKEY *k, struct kb_buf *out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int rv = -EIO;

	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1 &&
	    (n = BIO_get_mem_data(b, &p)) > 0)
		rv = kb_buf_append(out, p, (size_t)n);
	BIO_free(b);
	return rv;
}

static int pem_cert(X509 *x, struct kb_buf *out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int rv = -EIO;

	if (b && PEM_write_bio_X509(b, x) == 1 && (n = BIO_get_mem_data(b, &p)) > 0)
		rv = kb_buf_append(out, p, (size_t)n);
	BIO_free(b);
	return rv;
}

/* Makes the self-signed pair: CN and a DNS name of the host name, plus localhost and
 * 127.0.0.1 so local clients can verify it by name. */
static int make_self_signed(const struct hd_tls_identity *id, struct kb_errmsg *e)
{
	char host[256] = "localhost", san[600], why[256];
	unsigned char serial[16];
	struct kb_buf kpem, cpem;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	BIGNUM *bn = NULL;
	int rv = -EIO;

	kb_buf_init(&kpem, 0);
	kb_buf_init(&cpem, 0);
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	key = EVP_EC_gen("P-256");
	x = X509_new();
	if (!key || !x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail_ssl;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	name = X509_get_subject_name(x);
	snprintf(san, sizeof(san), "DNS:%.250s,DNS:localhost,IP:127.0.0.1", host);
	if (!bn || X509_set_version(x, 2) != 1 ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), SELF_DAYS, 0, NULL) ||
	    X509_set_pubkey(x, key) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Keel", -1,
				       -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)host, -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || add_ext(x, NID_basic_constraints, "CA:TRUE") ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, NID_subject_alt_name, san) || X509_sign(x, key, EVP_sha256()) == 0)
		goto fail_ssl;
	if (pem_key(key, &kpem) < 0 || pem_cert(x, &cpem) < 0) {
		rv = -ENOMEM;
		kb_errmsg_setf(e, "self-signed certificate: out of memory");
		goto out;
	}
	rv = kb_file_write_atomic(id->key, kpem.data, kpem.len, 0600, e);
	if (rv == 0)
		rv = kb_file_write_atomic(id->crt, cpem.data, cpem.len, 0644, e);
	if (rv < 0)
		kb_errmsg_wrapf(e, "self-signed certificate");
	goto out;
fail_ssl:
	kb_errmsg_setf(e, "making the self-signed certificate: %s", ssl_reason(why, sizeof(why)));
out:
	/* The key's PEM text does not stay in freed memory. */
	if (kpem.data)
		OPENSSL_cleanse(kpem.data, kpem.cap);
	kb_buf_close(&kpem);
	kb_buf_close(&cpem);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(key);
	return rv;
}

static X509 *read_cert(const char *path, struct kb_errmsg *e)
{
	char why[256];
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f) {
		kb_errmsg_setf(e, "%s: %s", path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		kb_errmsg_setf(e, "%s: %s", path, ssl_reason(why, sizeof(why)));
	return x;
}

int hd_tls_identity_load(const char *dir, struct hd_tls_identity *id, struct kb_errmsg *e)
{
	X509 *x;
	int rv;

	memset(id, 0, sizeof(*id));
	snprintf(id->crt, sizeof(id->crt), "%.4000s/host.crt", dir);
	snprintf(id->key, sizeof(id->key), "%.4000s/host.key", dir);
	if (access(id->crt, F_OK) == 0 && access(id->key, F_OK) == 0) {
		id->clustered = true;
		snprintf(id->ca, sizeof(id->ca), "%.4000s/ca.crt", dir);
		if (access(id->ca, F_OK) != 0)
			id->ca[0] = '\0';
	} else {
		snprintf(id->crt, sizeof(id->crt), "%.4000s/hostd.crt", dir);
		snprintf(id->key, sizeof(id->key), "%.4000s/hostd.key", dir);
		if (access(id->crt, F_OK) != 0) {
			rv = make_self_signed(id, e);
			if (rv < 0)
				return rv;
		}
	}
	x = read_cert(id->crt, e);
	if (!x)
		return -EIO;
	rv = hd_tls_thumbprint(x, id->thumbprint);
	X509_free(x);
	if (rv < 0)
		kb_errmsg_setf(e, "%s: cannot compute the thumbprint", id->crt);
	return rv;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned inlen, void *arg)
{
	static const unsigned char h2[] = "\x02h2";
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *hd_tls_server_ctx(const struct hd_tls_identity *id, SSL_verify_cb verify_cb,
			   struct kb_errmsg *e)
{
	static const char ciphers12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
					"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
					"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char why[256];

	if (!ctx) {
		kb_errmsg_setf(e, "SSL_CTX_new: %s", ssl_reason(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, ciphers12) != 1)
		goto fail_ssl;
	if (SSL_CTX_use_certificate_chain_file(ctx, id->crt) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, id->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		kb_errmsg_setf(e, "certificate %s / key %s: %s", id->crt, id->key,
			       ssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (id->ca[0]) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(id->ca);

		if (!names || SSL_CTX_load_verify_locations(ctx, id->ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			kb_errmsg_setf(e, "CA %s: %s", id->ca, ssl_reason(why, sizeof(why)));
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_cb);
	SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	return ctx;
fail_ssl:
	kb_errmsg_setf(e, "TLS context: %s", ssl_reason(why, sizeof(why)));
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
