/*
 * `keel cert issue`: a client certificate for machine login (LoginByCertificate,
 * docs/hostd-certlogin.md), signed by the cluster CA of a host's state directory.
 *
 * Local by nature: it needs DIR/ca.key, the cluster CA's private key, which every cluster
 * member holds (clusterd writes it, 0600). The happy path: read DIR/ca.crt and DIR/ca.key
 * (the key must match the certificate), make an EC P-256 key, and a certificate for it:
 * version 3, a random 16-byte serial, subject CN=NAME, issuer the CA's subject, valid from
 * an hour ago for --days (default 365), basicConstraints CA:FALSE, keyUsage
 * digitalSignature, extendedKeyUsage clientAuth only (hostd refuses a certificate that is
 * also for servers: a host's), subject and authority key identifiers, signed with SHA-256.
 * PREFIX.key is written first (0600, refused if it exists), then PREFIX.crt (0644).
 *
 * Failure modes, each exit 1 with the reason: no CA in DIR (not in a cluster, or not
 * readable: run as root), a key that does not match, an existing output file, OpenSSL
 * failures. A bad NAME or --days is a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "mgmt-api/keel/keel.h"

enum { O_STATE_DIR = 1, O_NAME, O_OUT, O_DAYS };

#define DAYS_MAX     3650
#define BACKDATE_S   3600 /* tolerate clocks an hour behind */
#define SERIAL_BYTES 16

/* A user name as hostd takes it: 1..32 of [a-z0-9_.-], not starting with a digit, '.'
 * or '-'. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("_.-", s[i])))
			return false;
	return true;
}

/* OpenSSL's last error as text. */
static const char *ossl_err(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (!e)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static int load_ca(struct kc_ctx *ctx, const char *dir, X509 **crt, EVP_PKEY **key)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	f = fopen(path, "r");
	if (!f)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno,
			       "cannot read the cluster CA certificate %s: %s (is the host in a "
			       "cluster?)",
			       path, strerror(errno));
	*crt = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!*crt)
		return kc_fail(ctx, KC_EXIT_FAILED, -EINVAL, "%s is not a PEM certificate: %s",
			       path, ossl_err());
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	f = fopen(path, "r");
	if (!f)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno,
			       "cannot read the cluster CA key %s: %s (run as root on a cluster "
			       "member)",
			       path, strerror(errno));
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!*key)
		return kc_fail(ctx, KC_EXIT_FAILED, -EINVAL, "%s is not a PEM private key: %s",
			       path, ossl_err());
	if (X509_check_private_key(*crt, *key) != 1) {
		ERR_clear_error();
		return kc_fail(ctx, KC_EXIT_FAILED, -EINVAL,
			       "%s/ca.key does not belong to %s/ca.crt", dir, dir);
	}
	return KC_EXIT_OK;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* The certificate for key's public half, signed by the CA. NULL on an OpenSSL failure. */
static X509 *make_cert(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name, long days)
{
	unsigned char raw[SERIAL_BYTES];
	time_t now = time(NULL);
	X509 *x = X509_new();
	BIGNUM *bn = NULL;
	bool ok;

	if (!x || RAND_bytes(raw, sizeof(raw)) != 1)
		goto fail;
	raw[0] &= 0x7f; /* a positive serial */
	raw[0] |= 0x01; /* ... of full length */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
	     X509_set_version(x, X509_VERSION_3) == 1 && X509_set_pubkey(x, key) == 1 &&
	     X509_set_issuer_name(x, X509_get_subject_name(ca)) == 1 &&
	     X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
					(const unsigned char *)name, -1, -1, 0) == 1 &&
	     ASN1_TIME_set(X509_getm_notBefore(x), now - BACKDATE_S) &&
	     X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) &&
	     add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
	     add_ext(x, ca, NID_key_usage, "critical,digitalSignature") == 0 &&
	     add_ext(x, ca, NID_ext_key_usage, "clientAuth") == 0 &&
	     add_ext(x, ca, NID_subject_key_identifier, "hash") == 0 &&
	     add_ext(x, ca, NID_authority_key_identifier, "keyid:always") == 0 &&
	     X509_sign(x, ca_key, EVP_sha256()) > 0;
	BN_free(bn);
	if (ok)
		return x;
fail:
	X509_free(x);
	return NULL;
}

/* Writes a new file (refused if it exists) with mode, through PEM writer w. */
static int write_new(struct kc_ctx *ctx, const char *path, mode_t mode,
		     int (*w)(FILE *f, void *obj), void *obj)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno, "cannot create %s: %s", path,
			       strerror(errno));
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "cannot write %s", path);
	}
	ok = w(f, obj);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		unlink(path);
		return kc_fail(ctx, KC_EXIT_FAILED, -EIO, "cannot write %s", path);
	}
	return KC_EXIT_OK;
}

static int write_key(FILE *f, void *key)
{
	return PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
}

static int write_crt(FILE *f, void *x)
{
	return PEM_write_X509(f, x);
}

static int issue_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *dir = kc_opt(call, O_STATE_DIR), *name = kc_opt(call, O_NAME);
	const char *out = kc_opt(call, O_OUT), *days_s = kc_opt(call, O_DAYS);
	char key_path[4200], crt_path[4200], tp[100];
	unsigned char md[EVP_MAX_MD_SIZE];
	EVP_PKEY *ca_key = NULL, *key = NULL;
	X509 *ca = NULL, *x = NULL;
	unsigned int mdlen = 0;
	uint32_t days = 365;
	int rc;

	if (!dir || !name || !out)
		return kc_usage(ctx, call,
				"--state-dir DIR, --name NAME and --out PREFIX are "
				"required");
	if (!name_ok(name))
		return kc_usage(ctx, call,
				"bad --name '%s': a user name (1 to 32 of [a-z0-9_.-], starting "
				"with a letter or '_')",
				name);
	if (days_s && kc_parse_u32(days_s, 1, DAYS_MAX, &days) != 0)
		return kc_usage(ctx, call, "bad --days '%s': want 1 to %d", days_s, DAYS_MAX);
	if (!out[0] || strlen(out) > 4000)
		return kc_usage(ctx, call, "bad --out PREFIX");
	snprintf(key_path, sizeof(key_path), "%s.key", out);
	snprintf(crt_path, sizeof(crt_path), "%s.crt", out);
	rc = load_ca(ctx, dir, &ca, &ca_key);
	if (rc)
		goto out;
	key = EVP_EC_gen("P-256");
	if (!key) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, -EIO, "cannot make a P-256 key: %s", ossl_err());
		goto out;
	}
	x = make_cert(ca, ca_key, key, name, (long)days);
	if (!x) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, -EIO, "cannot make the certificate: %s",
			     ossl_err());
		goto out;
	}
	rc = write_new(ctx, key_path, 0600, write_key, key);
	if (rc)
		goto out;
	rc = write_new(ctx, crt_path, 0644, write_crt, x);
	if (rc) {
		unlink(key_path);
		goto out;
	}
	X509_digest(x, EVP_sha256(), md, &mdlen);
	for (unsigned i = 0; i < mdlen && 3 * i + 3 <= sizeof(tp); i++)
		snprintf(tp + 3 * i, sizeof(tp) - 3 * i, "%02X%s", md[i], i + 1 < mdlen ? ":" : "");
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "name", name);
		kc_json_str(&j, "certificate", crt_path);
		kc_json_str(&j, "key", key_path);
		kc_json_u64(&j, "days", days);
		kc_json_str(&j, "thumbprint", tp);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("Issued a client certificate for %s: %s (key %s), valid %u days\n", name,
		       crt_path, key_path, days);
		printf("thumbprint %s\n", tp);
	}
	rc = KC_EXIT_OK;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return rc;
}

static const struct kc_opt issue_opts[] = {
    {"state-dir", "DIR", "the host's state directory holding ca.crt and ca.key", O_STATE_DIR,
     false},
    {"name", "NAME", "the user the certificate logs in as (its subject CN)", O_NAME, false},
    {"out", "PREFIX", "write PREFIX.key (0600) and PREFIX.crt", O_OUT, false},
    {"days", "N", "validity in days (default 365, at most 3650)", O_DAYS, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd issue_cmd = {
    .name = "issue",
    .summary = "Issue a client certificate for machine login, signed by the cluster CA.",
    .detail = "Runs on a cluster member, as a user who can read DIR/ca.key. The certificate\n"
	      "(EC P-256, clientAuth, CN=NAME) lets a program log in as user NAME with\n"
	      "keel login --cert PREFIX.crt --key PREFIX.key (LoginByCertificate), on any host\n"
	      "of the cluster where that user exists. Existing files are not overwritten.\n"
	      "\n"
	      "Example:\n"
	      "  keel cert issue --state-dir /var/lib/keel --name backup --out /root/backup\n",
    .opts = issue_opts,
    .run = issue_run,
};

static const struct kc_cmd *const cert_subs[] = {&issue_cmd, NULL};

const struct kc_cmd kc_cert_cmd = {
    .name = "cert",
    .summary = "Client certificates for machine login (local: needs the cluster CA's key).",
    .subs = cert_subs,
};
