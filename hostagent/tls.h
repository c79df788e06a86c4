/*
 * hostd's TLS identity and context (docs/hostd.md, "TLS").
 *
 * The certificate in use: DIR/host.crt with DIR/host.key when the host is in a cluster
 * (clusterd writes them, signed by the cluster CA DIR/ca.crt); otherwise a self-signed EC
 * P-256 certificate made once into DIR/hostd.crt and DIR/hostd.key (key mode 0600) and
 * reused on every start. Its thumbprint is the SHA-256 of its DER form as upper-case hex
 * pairs joined by ':' (as ESXi and `openssl x509 -fingerprint -sha256` print it).
 *
 * The context speaks TLS 1.2 and 1.3 with AEAD ciphers only, selects ALPN "h2" (a client
 * offering ALPN without h2 is refused), and requests but does not require a client
 * certificate, verified against DIR/ca.crt when it exists.
 *
 * Called on the main thread before the loop runs; files are read and written with
 * blocking I/O.
 */
#ifndef HD_TLS_H
#define HD_TLS_H

#include <stdbool.h>
#include <openssl/ssl.h>

#include "lib/err.h"

#define HD_THUMBPRINT_SIZE (32 * 3) /* "AB:...:EF" plus NUL */

struct hd_tls_identity {
	char crt[4200];
	char key[4200];
	char ca[4200];	/* "" when the host is not in a cluster */
	bool clustered; /* host.crt/host.key in use */
	char thumbprint[HD_THUMBPRINT_SIZE];
};

/* Finds the certificate to use under state_dir, making the self-signed one when needed.
 * 0, or a negative code with e set (unreadable or invalid files, no space). */
int hd_tls_identity_load(const char *state_dir, struct hd_tls_identity *id, struct kb_errmsg *e);

/* Writes cert's thumbprint into out (HD_THUMBPRINT_SIZE bytes). 0 or -EIO. */
int hd_tls_thumbprint(X509 *cert, char out[HD_THUMBPRINT_SIZE]);

/* The server context for id: caller frees with SSL_CTX_free(). verify_cb is installed as
 * the client-certificate verify callback (it decides what an unverified certificate
 * means). NULL with e set on failure. */
SSL_CTX *hd_tls_server_ctx(const struct hd_tls_identity *id, SSL_verify_cb verify_cb,
			   struct kb_errmsg *e);

#endif
