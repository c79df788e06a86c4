/*
 * Tests for clusterd/ca.h: a CA created in a temporary directory and loaded again (files,
 * modes, the certificate's fields read back with OpenSSL), a host key and CSR, a host
 * certificate inspected field by field (names, host id, usages, serial, validity,
 * signature), the verify helper accepting it and refusing another CA's certificate, an
 * expired or not yet valid one, another host's, and tampered or malformed PEM (every byte
 * of the body changed in turn); bad arguments to issuing, a CSR with another kind of key,
 * and CA files that must not load. Last, real TLS 1.3 handshakes over a socketpair between
 * two hosts with mutual authentication against the CA: accepted with both hosts'
 * certificates, refused when either side presents a certificate of another CA.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "clusterd/ca.h"
#include "lib/err.h"
#include "lib/heap.h"

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/keel-ca-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir/name into out[PATH_MAX], made as a directory when mk. */
static char *sub(char *out, const char *name, int mk)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
	if (mk)
		assert_int_equal(mkdir(out, 0700), 0);
	return out;
}

/* The whole file, NUL-terminated, from malloc(). */
static char *slurp(const char *path)
{
	char *s = calloc(1, 65536);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_non_null(s);
	assert_true(fd >= 0);
	n = read(fd, s, 65535);
	assert_true(n > 0);
	close(fd);
	return s;
}

static X509 *pem_x509(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(x);
	return x;
}

static struct cd_ca *make_ca(const char *name, const char *cluster)
{
	char d[PATH_MAX];
	struct kb_errmsg err = {{0}};
	struct cd_ca *ca = NULL;

	sub(d, name, 1);
	if (cd_ca_create(d, cluster, &ca, &err) != 0)
		fail_msg("%s", err.msg);
	return ca;
}

/* Makes host name's key in dir/name and a certificate from ca; returns the PEM. */
static char *make_host(struct cd_ca *ca, const char *name, uint64_t id, const char *ip,
		       unsigned days)
{
	char d[PATH_MAX];
	struct kb_errmsg err = {{0}};
	char *csr = NULL, *crt = NULL;

	sub(d, name, 1);
	if (cd_host_key_create(d, name, &csr, &err) != 0)
		fail_msg("%s", err.msg);
	if (cd_ca_issue_host(ca, name, id, ip, csr, days, &crt, &err) != 0)
		fail_msg("%s", err.msg);
	kb_free(csr);
	return crt;
}

static void test_create_and_load(void **state)
{
	char d[PATH_MAX], p[PATH_MAX];
	uint8_t fp1[CD_FINGERPRINT_SIZE], fp2[CD_FINGERPRINT_SIZE], fp3[CD_FINGERPRINT_SIZE];
	struct kb_errmsg err = {{0}};
	struct cd_ca *ca = make_ca("c", "prod"), *again = NULL;
	struct stat st;
	char *crt, cn[128];
	X509 *x;
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	sub(d, "c", 0);
	assert_int_equal(stat(sub(p, "c/ca.key", 0), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	crt = slurp(sub(p, "c/ca.crt", 0));
	assert_string_equal(crt, cd_ca_cert_pem(ca));

	x = pem_x509(crt);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "Keel cluster CA prod");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_true(bc->ca);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	assert_true(X509_get_extension_flags(x) & EXFLAG_KUSAGE);
	assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	/* about ten years */
	{
		int days, secs;

		assert_int_equal(
		    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
		assert_true(days >= 3650 && days <= 3651);
	}
	X509_free(x);

	assert_int_equal(cd_ca_load(d, &again, &err), 0);
	assert_string_equal(cd_ca_cert_pem(again), crt);
	cd_ca_fingerprint(ca, fp1);
	cd_ca_fingerprint(again, fp2);
	assert_memory_equal(fp1, fp2, sizeof(fp1));
	assert_int_equal(cd_cert_fingerprint(crt, fp3, &err), 0);
	assert_memory_equal(fp1, fp3, sizeof(fp1));
	free(crt);

	/* a second CA in the same place is refused and changes nothing */
	assert_int_equal(cd_ca_create(d, "other", NULL, &err), KB_EEXIST);
	crt = slurp(sub(p, "c/ca.crt", 0));
	assert_string_equal(crt, cd_ca_cert_pem(ca));
	free(crt);
	assert_int_equal(cd_ca_create(d, "bad name", NULL, &err), -EINVAL);

	/* a long cluster name is cut to fit the CN */
	{
		struct cd_ca *l = make_ca(
		    "long", "a23456789012345678901234567890123456789012345678901234567890123");

		x = pem_x509(cd_ca_cert_pem(l));
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
		assert_int_equal(strlen(cn), 64);
		X509_free(x);
		cd_ca_destroy(l);
	}
	cd_ca_destroy(again);
	cd_ca_destroy(ca);
}

static void test_load_refused(void **state)
{
	char d[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	struct kb_errmsg err = {{0}};
	struct cd_ca *ca = make_ca("c", "prod"), *o = make_ca("o", "other"), *x = NULL;
	char *key;

	assert_int_equal(cd_ca_load(sub(d, "nothing", 1), &x, &err), -ENOENT);

	assert_int_equal(chmod(sub(p, "c/ca.key", 0), 0640), 0);
	assert_int_equal(cd_ca_load(sub(d, "c", 0), &x, &err), -EPERM);
	assert_non_null(strstr(err.msg, "ca.key"));
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(cd_ca_load(d, &x, &err), 0);
	cd_ca_destroy(x);
	x = NULL;

	/* another CA's key beside this certificate */
	key = slurp(sub(q, "o/ca.key", 0));
	assert_int_equal(unlink(p), 0);
	{
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, key, strlen(key)), (ssize_t)strlen(key));
		close(fd);
	}
	free(key);
	assert_int_equal(cd_ca_load(d, &x, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "does not match"));
	assert_null(x);

	/* a host certificate is not a CA */
	{
		char *crt = make_host(ca, "h1", 1, "10.0.0.1", 30);
		int fd = open(sub(q, "o/ca.crt", 0), O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, crt, strlen(crt)), (ssize_t)strlen(crt));
		close(fd);
		assert_int_equal(cd_ca_load(sub(d, "o", 0), &x, &err), KB_EPROTO);
		kb_free(crt);
	}
	cd_ca_destroy(o);
	cd_ca_destroy(ca);
}

static void test_issue_fields(void **state)
{
	struct cd_ca *ca = make_ca("c", "prod");
	char *crt = make_host(ca, "esx-01", 42, "10.0.0.11", 365);
	char p[PATH_MAX], cn[128];
	struct kb_errmsg err = {{0}};
	X509 *x = pem_x509(crt), *cax = pem_x509(cd_ca_cert_pem(ca));
	GENERAL_NAMES *names;
	int n_dns = 0, n_ip = 0, n_uri = 0, days, secs;
	const ASN1_INTEGER *serial;
	EVP_PKEY *hostkey;
	struct stat st;
	uint64_t id = 0;
	FILE *f;

	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "esx-01");
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(cax)), 0);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(cax)), 1);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(X509_check_host(x, "esx-01", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.11", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.12", 0), 0);

	names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(names);
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const ASN1_STRING *s;

		switch (g->type) {
		case GEN_DNS:
			s = g->d.dNSName;
			assert_int_equal(ASN1_STRING_length(s), 6);
			assert_memory_equal(ASN1_STRING_get0_data(s), "esx-01", 6);
			n_dns++;
			break;
		case GEN_IPADD:
			s = g->d.iPAddress;
			assert_int_equal(ASN1_STRING_length(s), 4);
			assert_memory_equal(ASN1_STRING_get0_data(s), "\x0a\x00\x00\x0b", 4);
			n_ip++;
			break;
		case GEN_URI:
			s = g->d.uniformResourceIdentifier;
			assert_int_equal(ASN1_STRING_length(s), 16);
			assert_memory_equal(ASN1_STRING_get0_data(s), "urn:keel:host:42", 16);
			n_uri++;
			break;
		default:
			fail_msg("unexpected name type %d", g->type);
		}
	}
	GENERAL_NAMES_free(names);
	assert_int_equal(n_dns + 10 * n_ip + 100 * n_uri, 111);

	serial = X509_get0_serialNumber(x);
	assert_true(ASN1_STRING_length(serial) >= 14 && ASN1_STRING_length(serial) <= 17);
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
	assert_int_equal(days, 365);
	assert_int_equal(secs, CD_CERT_BACKDATE_S);

	/* the key stayed on the host: host.key (0600) matches the certificate */
	assert_int_equal(stat(sub(p, "esx-01/host.key", 0), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	f = fopen(p, "r");
	assert_non_null(f);
	hostkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(hostkey);
	assert_int_equal(X509_check_private_key(x, hostkey), 1);
	EVP_PKEY_free(hostkey);

	assert_int_equal(
	    cd_ca_verify_host_cert(cd_ca_cert_pem(ca), crt, 42, "esx-01", 0, &id, &err), 0);
	assert_int_equal(id, 42);
	assert_int_equal(cd_ca_verify_host_cert(cd_ca_cert_pem(ca), crt, 0, NULL, 0, NULL, &err),
			 0);
	assert_int_equal(cd_ca_verify_host_cert(cd_ca_cert_pem(ca), crt, 43, NULL, 0, NULL, &err),
			 -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "host 42"));
	assert_int_equal(
	    cd_ca_verify_host_cert(cd_ca_cert_pem(ca), crt, 0, "esx-02", 0, NULL, &err),
	    -EKEYREJECTED);
	/* the CA's own certificate is not a host certificate */
	assert_int_equal(
	    cd_ca_verify_host_cert(cd_ca_cert_pem(ca), cd_ca_cert_pem(ca), 0, NULL, 0, NULL, &err),
	    -EKEYREJECTED);

	/* two issues give two serial numbers */
	{
		char *csr = NULL, *crt2 = NULL;
		X509 *y;

		assert_int_equal(cd_host_key_create(sub(p, "esx-01", 0), "esx-01", &csr, &err), 0);
		assert_int_equal(
		    cd_ca_issue_host(ca, "esx-01", 42, "10.0.0.11", csr, 365, &crt2, &err), 0);
		y = pem_x509(crt2);
		assert_int_not_equal(
		    ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber(y)), 0);
		X509_free(y);
		kb_free(crt2);
		kb_free(csr);
	}
	X509_free(x);
	X509_free(cax);
	kb_free(crt);
	cd_ca_destroy(ca);
}

static void test_verify_refused(void **state)
{
	struct cd_ca *ca = make_ca("c", "prod"), *other = make_ca("o", "prod");
	char *mine = make_host(ca, "h1", 1, "10.0.0.1", 1);
	char *theirs = make_host(other, "h2", 2, "10.0.0.2", 30);
	const char *cap = cd_ca_cert_pem(ca);
	struct kb_errmsg err = {{0}};
	time_t now = time(NULL);

	assert_int_equal(cd_ca_verify_host_cert(cap, mine, 1, "h1", 0, NULL, &err), 0);
	/* another CA of the same name */
	assert_int_equal(cd_ca_verify_host_cert(cap, theirs, 0, NULL, 0, NULL, &err),
			 -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "certificate refused"));
	/* expired (a one-day certificate two days on) and not yet valid */
	assert_int_equal(cd_ca_verify_host_cert(cap, mine, 1, NULL, now + 2 * 86400, NULL, &err),
			 -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "expired"));
	assert_int_equal(
	    cd_ca_verify_host_cert(cap, mine, 1, NULL, now + 86400 - 3600 - 60, NULL, &err), 0);
	assert_int_equal(
	    cd_ca_verify_host_cert(cap, mine, 1, NULL, now - CD_CERT_BACKDATE_S - 60, NULL, &err),
	    -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "not yet valid"));
	/* the CA itself expired: eleven years on */
	assert_int_equal(
	    cd_ca_verify_host_cert(cap, mine, 1, NULL, now + 11 * 365 * 86400L, NULL, &err),
	    -EKEYREJECTED);
	kb_free(mine);
	kb_free(theirs);
	cd_ca_destroy(other);
	cd_ca_destroy(ca);
}

static void test_tampered_pem(void **state)
{
	struct cd_ca *ca = make_ca("c", "prod");
	char *crt = make_host(ca, "h1", 7, "10.0.0.7", 30);
	const char *cap = cd_ca_cert_pem(ca);
	struct kb_errmsg err = {{0}};
	size_t len = strlen(crt), body = strchr(crt, '\n') - crt + 1;
	size_t end = strstr(crt, "-----END") - crt;
	char *t = malloc(CD_PEM_MAX + 2), *csr = NULL, *out = NULL;
	char p[PATH_MAX];
	int rv;

	assert_non_null(t);
	/* every character of the base64 body changed in turn */
	for (size_t i = body; i < end; i++) {
		if (crt[i] == '\n')
			continue;
		memcpy(t, crt, len + 1);
		t[i] = crt[i] == 'A' ? 'B' : 'A';
		rv = cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err);
		if (rv == 0)
			fail_msg("tampered at %zu accepted", i);
		assert_true(rv == KB_EPROTO || rv == -EKEYREJECTED);
		assert_true(err.msg[0] != '\0');
	}
	/* trailing bytes, two blocks, leading text, a header, another label, too long */
	snprintf(t, CD_PEM_MAX + 2, "%sx\n", crt);
	assert_int_equal(cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err), KB_EPROTO);
	snprintf(t, CD_PEM_MAX + 2, "%s%s", crt, crt);
	assert_int_equal(cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err), KB_EPROTO);
	snprintf(t, CD_PEM_MAX + 2, "hello\n%s", crt);
	assert_int_equal(cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err), KB_EPROTO);
	snprintf(t, CD_PEM_MAX + 2, " \n\t%s\n\n", crt);
	assert_int_equal(cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err), 0);
	snprintf(t, CD_PEM_MAX + 2, "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n%s",
		 crt + body);
	assert_int_equal(cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err), KB_EPROTO);
	assert_int_equal(cd_host_key_create(sub(p, "h2", 1), "h2", &csr, &err), 0);
	assert_int_equal(cd_ca_verify_host_cert(cap, csr, 7, NULL, 0, NULL, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "CERTIFICATE REQUEST"));
	memset(t, ' ', CD_PEM_MAX + 1);
	memcpy(t, crt, len);
	t[CD_PEM_MAX + 1] = '\0';
	assert_int_equal(cd_ca_verify_host_cert(cap, t, 7, NULL, 0, NULL, &err), KB_ETOOBIG);
	assert_int_equal(cd_ca_verify_host_cert(cap, "", 7, NULL, 0, NULL, &err), KB_EPROTO);
	assert_int_equal(cd_ca_verify_host_cert(crt, crt, 7, NULL, 0, NULL, &err), -EKEYREJECTED);

	/* a tampered CSR is not signed: its signature does not verify or it does not decode */
	{
		size_t clen = strlen(csr), cbody = strchr(csr, '\n') - csr + 1;
		size_t cend = strstr(csr, "-----END") - csr;

		for (size_t i = cbody; i < cend; i += 3) {
			if (csr[i] == '\n')
				continue;
			memcpy(t, csr, clen + 1);
			t[i] = csr[i] == 'A' ? 'B' : 'A';
			rv = cd_ca_issue_host(ca, "h2", 8, "10.0.0.8", t, 30, &out, &err);
			if (rv == 0)
				fail_msg("tampered CSR at %zu accepted", i);
			assert_int_equal(rv, KB_EPROTO);
		}
	}
	kb_free(csr);
	free(t);
	kb_free(crt);
	cd_ca_destroy(ca);
}

/* A CSR for a key of another type, made with OpenSSL directly. */
static char *csr_for(const char *type, const char *param)
{
	EVP_PKEY *k = param ? EVP_PKEY_Q_keygen(NULL, NULL, type, param)
			    : EVP_PKEY_Q_keygen(NULL, NULL, type);
	X509_REQ *r = X509_REQ_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	assert_non_null(k);
	X509_REQ_set_pubkey(r, k);
	assert_true(X509_REQ_sign(r, k, param ? EVP_sha256() : NULL) > 0);
	PEM_write_bio_X509_REQ(b, r);
	n = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)n);
	BIO_free(b);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
	return s;
}

static void test_issue_refused(void **state)
{
	struct cd_ca *ca = make_ca("c", "prod");
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX], *csr = NULL, *out = NULL;
	char *p384 = csr_for("EC", "P-384"), *ed = csr_for("ED25519", NULL);

	assert_int_equal(cd_host_key_create(sub(p, "h", 1), "h", &csr, &err), 0);
	assert_int_equal(cd_ca_issue_host(ca, "h", 0, "10.0.0.1", csr, 30, &out, &err), -EINVAL);
	assert_int_equal(cd_ca_issue_host(ca, "h h", 1, "10.0.0.1", csr, 30, &out, &err), -EINVAL);
	assert_int_equal(cd_ca_issue_host(ca, "h,DNS:x", 1, "10.0.0.1", csr, 30, &out, &err),
			 -EINVAL);
	assert_int_equal(cd_ca_issue_host(ca, "", 1, "10.0.0.1", csr, 30, &out, &err), -EINVAL);
	static const char *bad_ips[] = {"10.0.0.256", "10.0.0.1:7000", "10.0.0", "::1",
					"010.0.0.1",  "10.0.0.1 ",     "",	 "10.0.0.1,DNS:x"};
	for (size_t i = 0; i < sizeof(bad_ips) / sizeof(bad_ips[0]); i++)
		assert_int_equal(cd_ca_issue_host(ca, "h", 1, bad_ips[i], csr, 30, &out, &err),
				 -EINVAL);
	assert_int_equal(cd_ca_issue_host(ca, "h", 1, NULL, csr, 30, &out, &err), -EINVAL);
	assert_int_equal(cd_ca_issue_host(ca, "h", 1, "10.0.0.1", csr, 0, &out, &err), -EINVAL);
	assert_int_equal(
	    cd_ca_issue_host(ca, "h", 1, "10.0.0.1", csr, CD_HOST_DAYS_MAX + 1, &out, &err),
	    -EINVAL);
	assert_int_equal(cd_ca_issue_host(ca, "h", 1, "10.0.0.1", p384, 30, &out, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "P-256"));
	assert_int_equal(cd_ca_issue_host(ca, "h", 1, "10.0.0.1", ed, 30, &out, &err), KB_EPROTO);
	assert_int_equal(
	    cd_ca_issue_host(ca, "h", 1, "10.0.0.1", cd_ca_cert_pem(ca), 30, &out, &err),
	    KB_EPROTO);
	assert_null(out);
	assert_int_equal(cd_ca_issue_host(ca, "h", UINT64_MAX, "10.0.0.1", csr, 30, &out, &err), 0);
	{
		uint64_t id = 0;

		assert_int_equal(
		    cd_ca_verify_host_cert(cd_ca_cert_pem(ca), out, UINT64_MAX, "h", 0, &id, &err),
		    0);
		assert_true(id == UINT64_MAX);
	}
	kb_free(out);
	kb_free(csr);
	free(p384);
	free(ed);
	cd_ca_destroy(ca);
}

/* ---- TLS 1.3 between two hosts ------------------------------------------------------ */

static SSL_CTX *host_ctx(const char *host, const char *cert_pem, const char *ca_pem)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	char key[PATH_MAX], kp[PATH_MAX];
	X509 *cert = pem_x509(cert_pem), *ca = pem_x509(ca_pem);

	assert_non_null(ctx);
	snprintf(kp, sizeof(kp), "%s/host.key", host);
	sub(key, kp, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
	assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_check_private_key(ctx), 1);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	X509_free(cert);
	X509_free(ca);
	return ctx;
}

/* Runs a handshake and one message each way; 0 when both ends succeed. */
static int tls_pair(SSL_CTX *cctx, SSL_CTX *sctx, const char *server_name, long *cverify,
		    long *sverify)
{
	int sv[2], cdone = 0, sdone = 0, rv = -1;
	SSL *c, *s;
	char buf[8];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c = SSL_new(cctx);
	s = SSL_new(sctx);
	SSL_set_fd(c, sv[0]);
	SSL_set_fd(s, sv[1]);
	assert_int_equal(SSL_set1_host(c, server_name), 1);
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone) {
			int r = SSL_connect(c), e = SSL_get_error(c, r);

			if (r == 1)
				cdone = 1;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				goto out;
		}
		if (!sdone) {
			int r = SSL_accept(s), e = SSL_get_error(s, r);

			if (r == 1)
				sdone = 1;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				goto out;
		}
	}
	if (!cdone || !sdone)
		goto out;
	assert_int_equal(SSL_version(c), TLS1_3_VERSION);
	assert_int_equal(SSL_write(c, "ping", 4), 4);
	assert_int_equal(SSL_read(s, buf, sizeof(buf)), 4);
	assert_int_equal(SSL_write(s, "pong", 4), 4);
	assert_int_equal(SSL_read(c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	/* each end can name its peer */
	{
		X509 *peer = SSL_get1_peer_certificate(s);

		assert_non_null(peer);
		assert_int_equal(X509_check_host(peer, "h1", 0, 0, NULL), 1);
		X509_free(peer);
	}
	rv = 0;
out:
	*cverify = SSL_get_verify_result(c);
	*sverify = SSL_get_verify_result(s);
	SSL_free(c);
	SSL_free(s);
	close(sv[0]);
	close(sv[1]);
	ERR_clear_error();
	return rv;
}

static void test_tls_mutual(void **state)
{
	struct cd_ca *ca = make_ca("c", "prod"), *other = make_ca("o", "prod");
	char *c1 = make_host(ca, "h1", 1, "10.0.0.1", 30);
	char *c2 = make_host(ca, "h2", 2, "10.0.0.2", 30);
	char *c3 = make_host(other, "h3", 3, "10.0.0.3", 30);
	SSL_CTX *h1 = host_ctx("h1", c1, cd_ca_cert_pem(ca));
	SSL_CTX *h2 = host_ctx("h2", c2, cd_ca_cert_pem(ca));
	/* h3 is of another cluster but trusts ours, so only our side refuses it */
	SSL_CTX *h3 = host_ctx("h3", c3, cd_ca_cert_pem(ca));
	long cv, sv;

	assert_int_equal(tls_pair(h1, h2, "h2", &cv, &sv), 0);
	assert_int_equal(cv, X509_V_OK);
	assert_int_equal(sv, X509_V_OK);
	/* a client of another CA: the server refuses it */
	assert_int_equal(tls_pair(h3, h2, "h2", &cv, &sv), -1);
	assert_int_not_equal(sv, X509_V_OK);
	/* a server of another CA: the client refuses it */
	assert_int_equal(tls_pair(h1, h3, "h3", &cv, &sv), -1);
	assert_int_not_equal(cv, X509_V_OK);
	/* the right CA but another host's name */
	assert_int_equal(tls_pair(h1, h2, "h9", &cv, &sv), -1);
	assert_int_equal(cv, X509_V_ERR_HOSTNAME_MISMATCH);

	SSL_CTX_free(h1);
	SSL_CTX_free(h2);
	SSL_CTX_free(h3);
	kb_free(c1);
	kb_free(c2);
	kb_free(c3);
	cd_ca_destroy(ca);
	cd_ca_destroy(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_and_load, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_load_refused, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_issue_fields, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_verify_refused, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_tampered_pem, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_issue_refused, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_tls_mutual, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
