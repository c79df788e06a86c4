/*
 * The cluster's certificate authority and the hosts' certificates.
 *
 * Creating a cluster makes a CA: an EC P-256 key and a self-signed certificate, kept as PEM
 * files in the creating host's state directory. Every host has its own P-256 key, made on
 * the host and never sent anywhere; it sends a certificate signing request (CSR), and the
 * CA answers with a host certificate that names the host three ways (CN and DNS name = host
 * name, IP = vmk0 address, URI "urn:keel:host:<id>" = Raft id). Hosts authenticate each other
 * with these certificates in mutual TLS 1.3, trusting only the cluster CA.
 *
 * Every PEM text that comes from elsewhere (a CSR, a certificate, a CA certificate) goes
 * through one checked decoder: at most CD_PEM_MAX bytes, exactly one PEM block of the
 * expected type with nothing but white space around it, no PEM headers, the text exactly
 * as OpenSSL writes it for its bytes (one text per certificate), and DER that decodes
 * whole. The formats are described in docs/clusterd.md, "Certificates and join
 * tokens".
 *
 * Errors are 0 or negative; err (required) says why. Functions that take a directory
 * block on the file system and belong off an event loop. OpenSSL allocates for itself;
 * buffers handed to the caller come from kb_malloc(). Any thread may call these functions;
 * a struct cd_ca may be shared by threads for issuing once loaded.
 */
#ifndef CD_CA_H
#define CD_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/err.h"

#define CD_PEM_MAX	    16384 /* largest PEM text accepted from elsewhere */
#define CD_CA_KEY_FILE	    "ca.key"
#define CD_CA_CERT_FILE	    "ca.crt"
#define CD_HOST_KEY_FILE    "host.key"
#define CD_CA_DAYS	    3650 /* CA certificate validity */
#define CD_HOST_DAYS_MAX    3650 /* longest host certificate validity */
#define CD_CERT_BACKDATE_S  3600 /* notBefore is this far before issuing: clock skew */
#define CD_FINGERPRINT_SIZE 32	 /* SHA-256 */
#define CD_HOST_URI_PREFIX  "urn:keel:host:"

struct cd_ca;

/* Makes a new cluster CA for the cluster called cluster_name (cd__check_name() rules) in
 * the existing directory dir: DIR/ca.key (PKCS#8 PEM, mode 0600) and DIR/ca.crt (PEM),
 * each written with kb_file_write_atomic(), the key first. The certificate is what makes
 * a CA: a key without a certificate (a crash in between) is replaced.
 * On success, when out is not NULL, *out is the loaded CA, which the caller frees with
 * cd_ca_destroy().
 * Errors: KB_EEXIST (DIR/ca.crt exists; nothing changed), -EINVAL (a bad name), -ENOMEM,
 * -errno from writing. KB_ENOTSYNCED: both files are written (and *out is set as on
 * success) but the directory could not be synced, so they may not survive a crash. */
int cd_ca_create(const char *dir, const char *cluster_name, struct cd_ca **out,
		 struct kb_errmsg *err);

/* Loads the CA of dir. The key file must not be readable or writable by group or others
 * and must match the certificate, which must be a CA certificate. The caller frees *out
 * with cd_ca_destroy().
 * Errors: -ENOENT (no CA here), -EPERM (key file open to others), KB_EPROTO (a file that
 * does not decode, or a key that does not match), KB_ETOOBIG, -ENOMEM, -errno. */
int cd_ca_load(const char *dir, struct cd_ca **out, struct kb_errmsg *err);

/* Frees a CA; NULL is allowed. */
void cd_ca_destroy(struct cd_ca *ca);

/* The CA certificate as PEM text (NUL-terminated), borrowed from ca: what a joining host
 * is given and pins. */
const char *cd_ca_cert_pem(const struct cd_ca *ca);

/* The SHA-256 of the CA certificate's DER encoding (what a join token carries). */
void cd_ca_fingerprint(const struct cd_ca *ca, uint8_t out[CD_FINGERPRINT_SIZE]);

/* Issues a certificate for host host_name (cd__check_name() rules) with Raft id host_id
 * (not 0) and vmk0 address ipv4 ("A.B.C.D"), for the public key of csr_pem (untrusted
 * PEM, "CERTIFICATE REQUEST"; its signature must verify, its key must be EC P-256; its
 * subject and extensions are ignored). Valid from now - CD_CERT_BACKDATE_S for days days
 * (1..CD_HOST_DAYS_MAX). On success *cert_pem is a NUL-terminated PEM text from
 * kb_malloc() that the caller frees with kb_free().
 * Errors: -EINVAL (a bad argument), KB_EPROTO (a CSR that does not decode or verify, or
 * has another kind of key), KB_ETOOBIG, -ENOMEM. */
int cd_ca_issue_host(const struct cd_ca *ca, const char *host_name, uint64_t host_id,
		     const char *ipv4, const char *csr_pem, unsigned days, char **cert_pem,
		     struct kb_errmsg *err);

/* Makes this host's key, DIR/host.key (PKCS#8 PEM, mode 0600, written atomically and
 * replacing any earlier one), and a CSR for it with CN = host_name, signed by the key.
 * On success *csr_pem is a NUL-terminated PEM text from kb_malloc() that the caller frees
 * with kb_free(). Errors: -EINVAL (a bad name), -ENOMEM, -errno. KB_ENOTSYNCED: the key
 * is written and *csr_pem set as on success, but the directory could not be synced. */
int cd_host_key_create(const char *dir, const char *host_name, char **csr_pem,
		       struct kb_errmsg *err);

/* Checks a host certificate (untrusted PEM) against the CA certificate ca_crt_pem (PEM):
 * it chains to that CA alone, is valid at time at (0: now), is not a CA, has the
 * serverAuth and clientAuth extended key usages, and carries exactly one host id URI.
 * When host_id is not 0 that id must be the one; when host_name is not NULL the
 * certificate must name it as DNS name. On success, when id_out is not NULL, *id_out is
 * the certificate's host id.
 * Errors: KB_EPROTO (either text does not decode, or the certificate has no or a malformed
 * host id), KB_ETOOBIG, -EKEYREJECTED (the chain, a time, a usage or a name is wrong; err
 * says which), -ENOMEM. */
int cd_ca_verify_host_cert(const char *ca_crt_pem, const char *cert_pem, uint64_t host_id,
			   const char *host_name, time_t at, uint64_t *id_out,
			   struct kb_errmsg *err);

/* The SHA-256 of the DER encoding of certificate cert_pem (untrusted PEM).
 * Errors: KB_EPROTO, KB_ETOOBIG, -ENOMEM. */
int cd_cert_fingerprint(const char *cert_pem, uint8_t out[CD_FINGERPRINT_SIZE],
			struct kb_errmsg *err);

#endif
