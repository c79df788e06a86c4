/*
 * The cluster CA and host certificates (ca.h) on OpenSSL 3.0's EVP and X509 APIs.
 *
 * Happy path: cd_ca_create() makes a P-256 key and a self-signed CA certificate and writes
 * both; cd_host_key_create() makes a host key and a CSR on the joining host; the cluster
 * runs cd_ca_issue_host() over that CSR; both sides check what they hold with
 * cd_ca_verify_host_cert().
 *
 * Failure modes: untrusted PEM that does not decode is refused by decode_pem() before
 * OpenSSL parses any DER; an OpenSSL failure is reported with OpenSSL's own reason and
 * its error queue is cleared, so no stale error leaks to the next caller on this thread.
 * A failed create or issue leaves nothing behind but, at worst, an unused DIR/ca.key.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "clusterd/ca.h"
#include "clusterd/codec.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"

#define CA_CN_PREFIX "Keel cluster CA "
#define CN_MAX	     64 /* ub-common-name */
#define SERIAL_BYTES 16
#define KEY_FILE_MAX 8192
#define ID_TEXT_MAX  20 /* digits of UINT64_MAX */

struct cd_ca {
	EVP_PKEY *key;
	X509 *cert;
	char *pem; /* the certificate, NUL-terminated, from kb_malloc() */
	uint8_t fingerprint[CD_FINGERPRINT_SIZE];
};

/* Sets err to "what: <OpenSSL's reason>", clears OpenSSL's error queue, returns code. */
static int ossl_fail(struct kb_errmsg *err, int code, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256];

	if (e != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
		kb_errmsg_setf(err, "%s: %s", what, reason);
	} else {
		kb_errmsg_setf(err, "%s", what);
	}
	ERR_clear_error();
	return code;
}

/* ---- the checked decoder of PEM texts ----------------------------------------------- */

/* Base64 has more than one text for the same bytes (the unused bits of the last group,
 * line lengths), so the block of n bytes at text must be exactly what OpenSSL writes for
 * der: one text per certificate, and a change to the text is a change to the DER. The
 * final newline may be missing. */
static int check_canonical(const char *text, size_t n, const char *label, const unsigned char *der,
			   long der_len, struct kb_errmsg *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *canon;
	long len;
	int rv = KB_EPROTO;

	if (bio == NULL || PEM_write_bio(bio, label, "", der, der_len) <= 0) {
		rv = ossl_fail(err, -ENOMEM, label);
		goto out;
	}
	len = BIO_get_mem_data(bio, &canon);
	if (len > 0 && ((size_t)len == n || ((size_t)len == n + 1 && canon[n] == '\n')) &&
	    memcmp(canon, text, n) == 0)
		rv = 0;
	else
		kb_errmsg_setf(err, "%s: PEM text is not in canonical form", label);
out:
	BIO_free(bio);
	return rv;
}

/* Decodes pem (NUL-terminated, untrusted) into the DER bytes of its one PEM block, which
 * must be labelled label and have no headers. *der is OpenSSL's: free with OPENSSL_free().
 * Refuses more than CD_PEM_MAX bytes, anything but white space before "-----BEGIN" or
 * after the block, a second block, and a block not in canonical form. */
static int decode_pem(const char *pem, const char *label, unsigned char **der, long *der_len,
		      struct kb_errmsg *err)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long len = 0;
	size_t n, i = 0;
	char rest[64];
	int got, rv = KB_EPROTO;
	BIO *bio;

	if (pem == NULL) {
		kb_errmsg_setf(err, "%s: missing", label);
		return -EINVAL;
	}
	n = strnlen(pem, CD_PEM_MAX + 1);
	if (n > CD_PEM_MAX) {
		kb_errmsg_setf(err, "%s: more than %d bytes of PEM", label, CD_PEM_MAX);
		return KB_ETOOBIG;
	}
	while (i < n && isspace((unsigned char)pem[i]))
		i++;
	if (strncmp(pem + i, "-----BEGIN ", 11) != 0) {
		kb_errmsg_setf(err, "%s: not a PEM text (no \"-----BEGIN\" line first)", label);
		return KB_EPROTO;
	}
	bio = BIO_new_mem_buf(pem + i, (int)(n - i));
	if (bio == NULL)
		return ossl_fail(err, -ENOMEM, label);
	if (PEM_read_bio(bio, &name, &header, &data, &len) != 1) {
		rv = ossl_fail(err, KB_EPROTO, "PEM");
		kb_errmsg_wrapf(err, "%s", label);
		goto out_bio;
	}
	if (strcmp(name, label) != 0) {
		kb_errmsg_setf(err, "%s: found a PEM block of type \"%.64s\"", label, name);
		goto out_data;
	}
	if (header[0] != '\0') {
		kb_errmsg_setf(err, "%s: PEM headers are not allowed (encrypted key?)", label);
		goto out_data;
	}
	if ((rv = check_canonical(pem + i, (size_t)(n - i) - BIO_pending(bio), name, data, len,
				  err)) != 0)
		goto out_data;
	rv = KB_EPROTO;
	while ((got = BIO_read(bio, rest, sizeof(rest))) > 0) {
		for (int j = 0; j < got; j++) {
			if (!isspace((unsigned char)rest[j])) {
				kb_errmsg_setf(err, "%s: trailing bytes after the PEM block",
					       label);
				goto out_data;
			}
		}
	}
	if (len <= 0) {
		kb_errmsg_setf(err, "%s: empty PEM block", label);
		goto out_data;
	}
	*der = data;
	*der_len = len;
	data = NULL;
	rv = 0;
out_data:
	OPENSSL_clear_free(data, len > 0 ? (size_t)len : 0);
	OPENSSL_free(name);
	OPENSSL_free(header);
out_bio:
	BIO_free(bio);
	ERR_clear_error();
	return rv;
}

static int decode_x509(const char *pem, const char *what, X509 **out, struct kb_errmsg *err)
{
	unsigned char *der;
	const unsigned char *p;
	long len;
	int rv = decode_pem(pem, "CERTIFICATE", &der, &len, err);

	if (rv != 0) {
		kb_errmsg_wrapf(err, "%s", what);
		return rv;
	}
	p = der;
	*out = d2i_X509(NULL, &p, len);
	if (*out == NULL || p != der + len) {
		X509_free(*out);
		*out = NULL;
		rv = ossl_fail(err, KB_EPROTO, "certificate does not decode");
		kb_errmsg_wrapf(err, "%s", what);
	}
	OPENSSL_free(der);
	return rv;
}

static int decode_req(const char *pem, X509_REQ **out, struct kb_errmsg *err)
{
	unsigned char *der;
	const unsigned char *p;
	long len;
	int rv = decode_pem(pem, "CERTIFICATE REQUEST", &der, &len, err);

	if (rv != 0)
		return rv;
	p = der;
	*out = d2i_X509_REQ(NULL, &p, len);
	if (*out == NULL || p != der + len) {
		X509_REQ_free(*out);
		*out = NULL;
		rv = ossl_fail(err, KB_EPROTO, "certificate request does not decode");
	}
	OPENSSL_free(der);
	return rv;
}

static int decode_key(const char *pem, EVP_PKEY **out, struct kb_errmsg *err)
{
	unsigned char *der;
	const unsigned char *p;
	long len;
	int rv = decode_pem(pem, "PRIVATE KEY", &der, &len, err);

	if (rv != 0)
		return rv;
	p = der;
	*out = d2i_AutoPrivateKey(NULL, &p, len);
	if (*out == NULL || p != der + len) {
		EVP_PKEY_free(*out);
		*out = NULL;
		rv = ossl_fail(err, KB_EPROTO, "private key does not decode");
	}
	OPENSSL_clear_free(der, (size_t)len);
	return rv;
}

/* ---- helpers ------------------------------------------------------------------------ */

static bool is_p256(EVP_PKEY *k)
{
	char group[64];

	if (k == NULL || !EVP_PKEY_is_a(k, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					   NULL) != 1) {
		ERR_clear_error();
		return false;
	}
	return strcmp(group, SN_X9_62_prime256v1) == 0;
}

static int path_in(char *out, const char *dir, const char *name, struct kb_errmsg *err)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || n >= PATH_MAX) {
		kb_errmsg_setf(err, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Copies what bio holds into a NUL-terminated kb_malloc() string. */
static int bio_to_string(BIO *bio, char **out, struct kb_errmsg *err)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	char *s;

	if (len <= 0) {
		kb_errmsg_setf(err, "PEM encoding produced nothing");
		return -ENOMEM;
	}
	s = kb_malloc((size_t)len + 1);
	if (s == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	*out = s;
	return 0;
}

static void free_secret(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		kb_free(s);
	}
}

static int x509_to_pem(X509 *x, char **out, struct kb_errmsg *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rv;

	if (bio == NULL)
		return ossl_fail(err, -ENOMEM, "PEM encoding");
	if (PEM_write_bio_X509(bio, x) != 1)
		rv = ossl_fail(err, -ENOMEM, "PEM encoding");
	else
		rv = bio_to_string(bio, out, err);
	BIO_free(bio);
	return rv;
}

static int key_to_pem(EVP_PKEY *k, char **out, struct kb_errmsg *err)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	int rv;

	if (bio == NULL)
		return ossl_fail(err, -ENOMEM, "PEM encoding of the key");
	if (PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1)
		rv = ossl_fail(err, -ENOMEM, "PEM encoding of the key");
	else
		rv = bio_to_string(bio, out, err);
	BIO_free(bio);
	return rv;
}

static int new_key(EVP_PKEY **out, struct kb_errmsg *err)
{
	*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (*out == NULL)
		return ossl_fail(err, -ENOMEM, "making a P-256 key");
	return 0;
}

/* A random positive 128-bit serial number, never 0. */
static int set_serial(X509 *x, struct kb_errmsg *err)
{
	unsigned char raw[SERIAL_BYTES];
	BIGNUM *bn = NULL;
	int rv = 0;

	do {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return ossl_fail(err, -EIO, "random serial number");
	} while (raw[0] == 0 && memcmp(raw, raw + 1, sizeof(raw) - 1) == 0);
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		rv = ossl_fail(err, -ENOMEM, "serial number");
	BN_free(bn);
	return rv;
}

static int set_validity(X509 *x, long days, struct kb_errmsg *err)
{
	time_t now = time(NULL);

	if (ASN1_TIME_set(X509_getm_notBefore(x), now - CD_CERT_BACKDATE_S) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) == NULL)
		return ossl_fail(err, -ENOMEM, "validity");
	return 0;
}

static int set_cn(X509_NAME *n, const char *cn, struct kb_errmsg *err)
{
	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1)
		return ossl_fail(err, -ENOMEM, "subject name");
	return 0;
}

/* Adds extension nid with OpenSSL's configuration syntax value (from trusted text only). */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, struct kb_errmsg *err)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return ossl_fail(err, -ENOMEM, OBJ_nid2sn(nid));
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return ossl_fail(err, -ENOMEM, OBJ_nid2sn(nid));
	return 0;
}

static int sign(X509 *x, EVP_PKEY *key, struct kb_errmsg *err)
{
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		return ossl_fail(err, -ENOMEM, "signing the certificate");
	return 0;
}

/* Builds a struct cd_ca from the PEM texts of its key (trusted, our own file) and its
 * certificate. */
static int ca_from_pem(const char *key_pem, const char *cert_pem, struct cd_ca **out,
		       struct kb_errmsg *err)
{
	struct cd_ca *ca = kb_calloc(1, sizeof(*ca));
	unsigned int md_len = 0;
	int rv;

	if (ca == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	if ((rv = decode_key(key_pem, &ca->key, err)) != 0) {
		kb_errmsg_wrapf(err, CD_CA_KEY_FILE);
		goto fail;
	}
	if ((rv = decode_x509(cert_pem, CD_CA_CERT_FILE, &ca->cert, err)) != 0)
		goto fail;
	rv = KB_EPROTO;
	if (!is_p256(ca->key)) {
		kb_errmsg_setf(err, "%s: not an EC P-256 key", CD_CA_KEY_FILE);
		goto fail;
	}
	if (X509_check_ca(ca->cert) != 1) {
		kb_errmsg_setf(err, "%s: not a CA certificate", CD_CA_CERT_FILE);
		goto fail;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ossl_fail(err, rv, CD_CA_KEY_FILE " does not match " CD_CA_CERT_FILE);
		goto fail;
	}
	if (X509_digest(ca->cert, EVP_sha256(), ca->fingerprint, &md_len) != 1 ||
	    md_len != CD_FINGERPRINT_SIZE) {
		rv = ossl_fail(err, -ENOMEM, "CA fingerprint");
		goto fail;
	}
	if ((rv = x509_to_pem(ca->cert, &ca->pem, err)) != 0)
		goto fail;
	*out = ca;
	return 0;
fail:
	cd_ca_destroy(ca);
	return rv;
}

/* ---- the CA ------------------------------------------------------------------------- */

static int make_ca_cert(EVP_PKEY *key, const char *cluster_name, X509 **out, struct kb_errmsg *err)
{
	char cn[CN_MAX + 1];
	X509 *x = X509_new();
	int rv;

	if (x == NULL)
		return ossl_fail(err, -ENOMEM, "CA certificate");
	/* The CN is a label for people; the fingerprint is what identifies the CA. A long
	 * cluster name is cut to fit the 64 characters a CN may have. */
	snprintf(cn, sizeof(cn), "%s%s", CA_CN_PREFIX, cluster_name);
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_pubkey(x, key) != 1) {
		rv = ossl_fail(err, -ENOMEM, "CA certificate");
		goto fail;
	}
	if ((rv = set_serial(x, err)) || (rv = set_validity(x, CD_CA_DAYS, err)) ||
	    (rv = set_cn(X509_get_subject_name(x), cn, err)))
		goto fail;
	if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1) {
		rv = ossl_fail(err, -ENOMEM, "CA certificate");
		goto fail;
	}
	if ((rv = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err)) ||
	    (rv = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", err)) ||
	    (rv = add_ext(x, x, NID_subject_key_identifier, "hash", err)) ||
	    (rv = add_ext(x, x, NID_authority_key_identifier, "keyid:always", err)) ||
	    (rv = sign(x, key, err)))
		goto fail;
	*out = x;
	return 0;
fail:
	X509_free(x);
	return rv;
}

int cd_ca_create(const char *dir, const char *cluster_name, struct cd_ca **out,
		 struct kb_errmsg *err)
{
	char key_path[PATH_MAX], crt_path[PATH_MAX];
	char *key_pem = NULL, *crt_pem = NULL;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	struct stat st;
	int rv;

	if ((rv = cd__check_name(cluster_name, "cluster name", err)) ||
	    (rv = path_in(key_path, dir, CD_CA_KEY_FILE, err)) ||
	    (rv = path_in(crt_path, dir, CD_CA_CERT_FILE, err)))
		return rv;
	if (lstat(crt_path, &st) == 0) {
		kb_errmsg_setf(err, "%s: a cluster CA exists already", crt_path);
		return KB_EEXIST;
	}
	if (errno != ENOENT) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", crt_path, kb_strerror(rv));
		return rv;
	}
	if ((rv = new_key(&key, err)) || (rv = make_ca_cert(key, cluster_name, &x, err)) ||
	    (rv = key_to_pem(key, &key_pem, err)) || (rv = x509_to_pem(x, &crt_pem, err)))
		goto out;
	rv = kb_file_write_atomic(key_path, key_pem, strlen(key_pem), 0600, err);
	if (rv != 0 && rv != KB_ENOTSYNCED)
		goto out;
	rv = kb_file_write_atomic(crt_path, crt_pem, strlen(crt_pem), 0644, err);
	if (rv != 0 && rv != KB_ENOTSYNCED)
		goto out;
	if (out != NULL) {
		int lrv = ca_from_pem(key_pem, crt_pem, out, err);

		if (lrv != 0)
			rv = lrv;
	}
out:
	free_secret(key_pem);
	kb_free(crt_pem);
	X509_free(x);
	EVP_PKEY_free(key);
	if (rv != 0 && rv != KB_ENOTSYNCED)
		kb_errmsg_wrapf(err, "creating the cluster CA in %s", dir);
	return rv;
}

static int read_text(const char *path, size_t max, char **out, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, 0);
	rv = kb_file_read_small(path, max, &b, err);
	if (rv == 0)
		rv = kb_buf_put_u8(&b, 0);
	if (rv != 0) {
		if (b.data != NULL)
			OPENSSL_cleanse(b.data, b.cap);
		kb_buf_close(&b);
		if (rv == -ENOMEM)
			kb_errmsg_setf(err, "%s: out of memory", path);
		return rv;
	}
	*out = (char *)b.data;
	return 0;
}

int cd_ca_load(const char *dir, struct cd_ca **out, struct kb_errmsg *err)
{
	char key_path[PATH_MAX], crt_path[PATH_MAX];
	char *key_pem = NULL, *crt_pem = NULL;
	struct stat st;
	int rv;

	if ((rv = path_in(key_path, dir, CD_CA_KEY_FILE, err)) ||
	    (rv = path_in(crt_path, dir, CD_CA_CERT_FILE, err)))
		return rv;
	if (lstat(key_path, &st) != 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", key_path, kb_strerror(rv));
		return rv;
	}
	if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
		kb_errmsg_setf(err, "%s: mode %04o lets others read or write the CA key", key_path,
			       (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if ((rv = read_text(key_path, KEY_FILE_MAX, &key_pem, err)) ||
	    (rv = read_text(crt_path, CD_PEM_MAX, &crt_pem, err)))
		goto out;
	rv = ca_from_pem(key_pem, crt_pem, out, err);
	if (rv != 0)
		kb_errmsg_wrapf(err, "%s", dir);
out:
	free_secret(key_pem);
	kb_free(crt_pem);
	return rv;
}

void cd_ca_destroy(struct cd_ca *ca)
{
	if (ca == NULL)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	kb_free(ca->pem);
	kb_free(ca);
}

const char *cd_ca_cert_pem(const struct cd_ca *ca)
{
	return ca->pem;
}

void cd_ca_fingerprint(const struct cd_ca *ca, uint8_t out[CD_FINGERPRINT_SIZE])
{
	memcpy(out, ca->fingerprint, CD_FINGERPRINT_SIZE);
}

/* ---- host certificates -------------------------------------------------------------- */

static int make_host_cert(const struct cd_ca *ca, const char *host_name, uint64_t host_id,
			  const char *ip, EVP_PKEY *pub, unsigned days, X509 **out,
			  struct kb_errmsg *err)
{
	char san[CD_NAME_MAX + INET_ADDRSTRLEN + sizeof(CD_HOST_URI_PREFIX) + ID_TEXT_MAX + 32];
	X509 *x = X509_new();
	int rv;

	if (x == NULL)
		return ossl_fail(err, -ENOMEM, "host certificate");
	snprintf(san, sizeof(san), "DNS:%s,IP:%s,URI:%s%llu", host_name, ip, CD_HOST_URI_PREFIX,
		 (unsigned long long)host_id);
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_pubkey(x, pub) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1) {
		rv = ossl_fail(err, -ENOMEM, "host certificate");
		goto fail;
	}
	if ((rv = set_serial(x, err)) || (rv = set_validity(x, days, err)) ||
	    (rv = set_cn(X509_get_subject_name(x), host_name, err)) ||
	    (rv = add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE", err)) ||
	    (rv = add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature", err)) ||
	    (rv = add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth", err)) ||
	    (rv = add_ext(x, ca->cert, NID_subject_alt_name, san, err)) ||
	    (rv = add_ext(x, ca->cert, NID_subject_key_identifier, "hash", err)) ||
	    (rv = add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always", err)) ||
	    (rv = sign(x, ca->key, err)))
		goto fail;
	*out = x;
	return 0;
fail:
	X509_free(x);
	return rv;
}

int cd_ca_issue_host(const struct cd_ca *ca, const char *host_name, uint64_t host_id,
		     const char *ipv4, const char *csr_pem, unsigned days, char **cert_pem,
		     struct kb_errmsg *err)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a;
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	X509 *x = NULL;
	int rv;

	if ((rv = cd__check_name(host_name, "host name", err)) != 0)
		goto out;
	rv = -EINVAL;
	if (host_id == 0) {
		kb_errmsg_setf(err, "host id 0 is not valid");
		goto out;
	}
	if (ipv4 == NULL || strnlen(ipv4, INET_ADDRSTRLEN) >= INET_ADDRSTRLEN ||
	    inet_pton(AF_INET, ipv4, &a) != 1 || inet_ntop(AF_INET, &a, ip, sizeof(ip)) == NULL) {
		kb_errmsg_setf(err, "vmk0 address must be an IPv4 address A.B.C.D");
		goto out;
	}
	if (days < 1 || days > CD_HOST_DAYS_MAX) {
		kb_errmsg_setf(err, "validity must be 1 to %d days", CD_HOST_DAYS_MAX);
		goto out;
	}
	if ((rv = decode_req(csr_pem, &req, err)) != 0)
		goto out;
	rv = KB_EPROTO;
	pub = X509_REQ_get0_pubkey(req);
	if (!is_p256(pub)) {
		kb_errmsg_setf(err, "certificate request: the key is not EC P-256");
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		ossl_fail(err, rv, "certificate request: signature does not verify");
		goto out;
	}
	if ((rv = make_host_cert(ca, host_name, host_id, ip, pub, days, &x, err)) == 0)
		rv = x509_to_pem(x, cert_pem, err);
out:
	X509_free(x);
	X509_REQ_free(req);
	ERR_clear_error();
	if (rv != 0)
		kb_errmsg_wrapf(err, "issuing a certificate for host %llu",
				(unsigned long long)host_id);
	return rv;
}

static int make_csr(EVP_PKEY *key, const char *host_name, char **out, struct kb_errmsg *err)
{
	X509_REQ *req = X509_REQ_new();
	BIO *bio = NULL;
	int rv;

	if (req == NULL)
		return ossl_fail(err, -ENOMEM, "certificate request");
	if ((rv = set_cn(X509_REQ_get_subject_name(req), host_name, err)) != 0)
		goto out;
	rv = -ENOMEM;
	if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509_REQ(bio, req) != 1) {
		ossl_fail(err, rv, "certificate request");
		goto out;
	}
	rv = bio_to_string(bio, out, err);
out:
	BIO_free(bio);
	X509_REQ_free(req);
	return rv;
}

int cd_host_key_create(const char *dir, const char *host_name, char **csr_pem,
		       struct kb_errmsg *err)
{
	char key_path[PATH_MAX];
	char *key_pem = NULL, *csr = NULL;
	EVP_PKEY *key = NULL;
	int rv;

	if ((rv = cd__check_name(host_name, "host name", err)) ||
	    (rv = path_in(key_path, dir, CD_HOST_KEY_FILE, err)))
		return rv;
	if ((rv = new_key(&key, err)) || (rv = make_csr(key, host_name, &csr, err)) ||
	    (rv = key_to_pem(key, &key_pem, err)))
		goto out;
	rv = kb_file_write_atomic(key_path, key_pem, strlen(key_pem), 0600, err);
	if (rv == 0 || rv == KB_ENOTSYNCED) {
		*csr_pem = csr;
		csr = NULL;
	}
out:
	free_secret(key_pem);
	kb_free(csr);
	EVP_PKEY_free(key);
	if (rv != 0 && rv != KB_ENOTSYNCED)
		kb_errmsg_wrapf(err, "making the host key in %s", dir);
	return rv;
}

/* ---- checking a host certificate ---------------------------------------------------- */

/* Finds the one host id URI among the subject alternative names. */
static int cert_host_id(X509 *x, uint64_t *id, struct kb_errmsg *err)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const size_t plen = strlen(CD_HOST_URI_PREFIX);
	int found = 0;

	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const unsigned char *s;
		uint64_t v = 0;
		int len;

		if (g->type != GEN_URI)
			continue;
		s = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len < 0 || (size_t)len <= plen || memcmp(s, CD_HOST_URI_PREFIX, plen) != 0)
			continue;
		found++;
		if ((size_t)len - plen > ID_TEXT_MAX || s[plen] == '0')
			goto bad;
		for (size_t j = plen; j < (size_t)len; j++) {
			if (s[j] < '0' || s[j] > '9' || v > (UINT64_MAX - (s[j] - '0')) / 10)
				goto bad;
			v = v * 10 + (uint64_t)(s[j] - '0');
		}
		*id = v;
	}
	GENERAL_NAMES_free(names);
	ERR_clear_error();
	if (found != 1) {
		kb_errmsg_setf(err, "certificate carries %s host id",
			       found ? "more than one" : "no");
		return KB_EPROTO;
	}
	return 0;
bad:
	GENERAL_NAMES_free(names);
	kb_errmsg_setf(err, "certificate carries a malformed host id");
	return KB_EPROTO;
}

static int check_chain(X509 *ca, X509 *x, time_t at, struct kb_errmsg *err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	int rv = -ENOMEM;

	if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(ctx, store, x, NULL) != 1) {
		ossl_fail(err, rv, "certificate check");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	if (at != 0)
		X509_VERIFY_PARAM_set_time(param, at);
	if (X509_verify_cert(ctx) != 1) {
		kb_errmsg_setf(err, "certificate refused: %s",
			       X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		rv = -EKEYREJECTED;
		goto out;
	}
	rv = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return rv;
}

int cd_ca_verify_host_cert(const char *ca_crt_pem, const char *cert_pem, uint64_t host_id,
			   const char *host_name, time_t at, uint64_t *id_out,
			   struct kb_errmsg *err)
{
	const uint32_t both = XKU_SSL_SERVER | XKU_SSL_CLIENT;
	X509 *ca = NULL, *x = NULL;
	uint64_t id = 0;
	int rv;

	if ((rv = decode_x509(ca_crt_pem, "CA certificate", &ca, err)) ||
	    (rv = decode_x509(cert_pem, "host certificate", &x, err)) ||
	    (rv = check_chain(ca, x, at, err)))
		goto out;
	rv = -EKEYREJECTED;
	if (X509_check_ca(x) != 0) {
		kb_errmsg_setf(err, "certificate refused: a CA certificate is not a host's");
		goto out;
	}
	if (!(X509_get_extension_flags(x) & EXFLAG_XKUSAGE) ||
	    (X509_get_extended_key_usage(x) & both) != both) {
		kb_errmsg_setf(err, "certificate refused: not for both TLS server and client");
		goto out;
	}
	if ((rv = cert_host_id(x, &id, err)) != 0)
		goto out;
	rv = -EKEYREJECTED;
	if (host_id != 0 && id != host_id) {
		kb_errmsg_setf(err, "certificate refused: it is host %llu's, not host %llu's",
			       (unsigned long long)id, (unsigned long long)host_id);
		goto out;
	}
	if (host_name != NULL &&
	    X509_check_host(x, host_name, strlen(host_name),
			    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
			    NULL) != 1) {
		kb_errmsg_setf(err, "certificate refused: it does not name host \"%.64s\"",
			       host_name);
		goto out;
	}
	if (id_out != NULL)
		*id_out = id;
	rv = 0;
out:
	X509_free(x);
	X509_free(ca);
	ERR_clear_error();
	return rv;
}

int cd_cert_fingerprint(const char *cert_pem, uint8_t out[CD_FINGERPRINT_SIZE],
			struct kb_errmsg *err)
{
	unsigned int len = 0;
	X509 *x;
	int rv = decode_x509(cert_pem, "certificate", &x, err);

	if (rv != 0)
		return rv;
	if (X509_digest(x, EVP_sha256(), out, &len) != 1 || len != CD_FINGERPRINT_SIZE)
		rv = ossl_fail(err, -ENOMEM, "certificate fingerprint");
	X509_free(x);
	return rv;
}
