/*
 * Join tokens: single-use, expiring secrets that let a new host join the cluster.
 *
 * Text form (ASCII, no white space; base64url is RFC 4648 section 5 without padding, and
 * only its canonical form: unused low bits of the last character are zero):
 *
 *   K1.<id>.<secret>[.<ca>]
 *     "K1."    the format and its version (1)
 *     id       base64url of the 16-byte token id       (22 characters)
 *     secret   base64url of the 32-byte random secret  (43 characters)
 *     ca       base64url of the SHA-256 of the cluster CA certificate's DER (43 characters),
 *              optional: the joining host pins the CA with it before trusting anything the
 *              cluster says
 *
 * The cluster keeps a struct cd_token_record: the id, the expiry time and the SHA-256 of
 * the secret, never the secret itself, so records may be replicated and logged; a record
 * is marked used once a host has joined with it. Secrets are compared in constant time.
 *
 * No function here allocates, reads a file or blocks; any thread may call them.
 */
#ifndef CD_TOKEN_H
#define CD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define CD_TOKEN_PREFIX	     "K1."
#define CD_TOKEN_ID_SIZE     16
#define CD_TOKEN_SECRET_SIZE 32
#define CD_TOKEN_HASH_SIZE   32	 /* SHA-256 */
#define CD_TOKEN_FP_SIZE     32	 /* SHA-256, as CD_FINGERPRINT_SIZE of ca.h */
#define CD_TOKEN_TEXT_MAX    113 /* characters of the longest token */
#define CD_TOKEN_TEXT_SIZE   (CD_TOKEN_TEXT_MAX + 1)
#define CD_TOKEN_TTL_MAX     (30 * 24 * 3600) /* seconds */

/* A token as the joining host holds it (the secret included). Clear with
 * cd_token_clear() when done. */
struct cd_token {
	uint8_t id[CD_TOKEN_ID_SIZE];
	uint8_t secret[CD_TOKEN_SECRET_SIZE];
	bool has_ca_fingerprint;
	uint8_t ca_fingerprint[CD_TOKEN_FP_SIZE];
};

/* A token as the cluster keeps it. */
struct cd_token_record {
	uint8_t id[CD_TOKEN_ID_SIZE];
	uint64_t expires_s; /* seconds since the epoch; expired from this second on */
	uint8_t secret_hash[CD_TOKEN_HASH_SIZE];
	bool used;
};

/* Makes a new token valid for ttl_s seconds (1..CD_TOKEN_TTL_MAX) from now_s, carrying
 * ca_fingerprint (CD_TOKEN_FP_SIZE bytes; NULL: none). text (at least CD_TOKEN_TEXT_SIZE
 * bytes) receives the NUL-terminated token to hand to the operator, *record what the
 * cluster keeps. Errors: -EINVAL (ttl or time out of range), -EIO (no randomness). */
int cd_token_issue(uint64_t ttl_s, uint64_t now_s, const uint8_t *ca_fingerprint, char *text,
		   struct cd_token_record *record, struct kb_errmsg *err);

/* Decodes len bytes of untrusted text into *out, strictly: the prefix, the number of
 * parts, their lengths, the base64url alphabet and canonical form; nothing else (no white
 * space, no NUL) is allowed. Errors: KB_ETOOBIG (longer than CD_TOKEN_TEXT_MAX),
 * KB_EVERSION (another format version), KB_EPROTO (anything else malformed); *out is then
 * zeroed. */
int cd_token_parse(const char *text, size_t len, struct cd_token *out, struct kb_errmsg *err);

/* Decides whether token t may join against record (NULL: no record has t's id). Checks,
 * in this order, so that only a holder of the secret learns a token's state:
 *   KB_ENOTFOUND    record is NULL or for another id ("unknown join token");
 *   -EKEYREJECTED   the secret does not match;
 *   -EKEYREVOKED    the token was used already;
 *   -EKEYEXPIRED    now_s is at or past the expiry.
 * Returns 0 when the token is good; the record is not changed (see cd_token_redeem()). */
int cd_token_check(const struct cd_token_record *record, const struct cd_token *t, uint64_t now_s,
		   struct kb_errmsg *err);

/* cd_token_check(), then marks the record used: the one way a token is spent. */
int cd_token_redeem(struct cd_token_record *record, const struct cd_token *t, uint64_t now_s,
		    struct kb_errmsg *err);

/* Checks the CA certificate a cluster presents (untrusted PEM, NUL-terminated) against the
 * fingerprint token t carries. Errors: KB_ENOTFOUND (t carries no fingerprint: nothing to
 * pin), -EKEYREJECTED (another CA), and the errors of cd_cert_fingerprint(). */
int cd_token_fingerprint_check(const struct cd_token *t, const char *ca_crt_pem,
			       struct kb_errmsg *err);

/* Wipes a token's secret from memory. */
void cd_token_clear(struct cd_token *t);

#endif
