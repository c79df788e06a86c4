/*
 * LoginByCertificate: machine login by TLS client certificate (docs/hostd-certlogin.md).
 *
 * A program that holds a certificate issued by the cluster CA (`keel cert issue`) opens a
 * session without a password. The happy path: the TLS handshake verified the client's
 * certificate against DIR/ca.crt (hd_call_peer_cert returns it only then), the certificate
 * is a client's (clientAuth extended key usage, no serverAuth: a host certificate is not a
 * user's, nor is a CA), its subject CN names an existing local user, and the source is not
 * locked out by the login rate limiter; then a session opens exactly as after a password
 * Login (hd_vim_session_start: the same table, limits and log line), with the
 * certificate's SHA-256 thumbprint added to the log line.
 *
 * Failure modes, all UNAUTHENTICATED and each counted as a failed login of the source: no
 * certificate or one that did not verify ("no trusted client certificate"), a certificate
 * that is not for client authentication, no usable CN, a CN that names no user (the
 * message names the CN). The log says which, with the thumbprint when there is one.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hostagent/vim.h"
#include "lib/time.h"
#include "vim.pb-c.h"

#define THUMB_LEN (32 * 3) /* "AB:CD:...:EF" + NUL */

/* The certificate's SHA-256 as upper-case hex pairs joined by ':'. */
static void thumbprint(X509 *x, char out[THUMB_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (!X509_digest(x, EVP_sha256(), md, &n) || n != 32) {
		snprintf(out, THUMB_LEN, "(unknown)");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 3 * i, THUMB_LEN - 3 * i, "%02X%s", md[i], i + 1 < n ? ":" : "");
}

/* The subject's one CN as a NUL-free string into out: 0, or -1 (none, several, too long,
 * or bytes that are not printable ASCII). */
static int subject_cn(X509 *x, char *out, size_t size)
{
	X509_NAME *name = X509_get_subject_name(x);
	int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	const ASN1_STRING *s;
	const unsigned char *d;
	int len;

	if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return -1;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	d = s ? ASN1_STRING_get0_data(s) : NULL;
	len = s ? ASN1_STRING_length(s) : 0;
	if (!d || len <= 0 || (size_t)len >= size)
		return -1;
	for (int k = 0; k < len; k++)
		if (d[k] <= 0x20 || d[k] >= 0x7f)
			return -1;
	memcpy(out, d, (size_t)len);
	out[len] = '\0';
	return 0;
}

/* Refuses the call: one failure more for the source, the reason in the log. */
static void refuse(struct hd_call *call, const char *source, const char *why, const char *tp,
		   const char *msg)
{
	struct hd_vim *v = hd_call_server_data(call);
	int locked = hostd_auth_ratelimit_fail(v->rl, source, kb_now_ns());

	kb_log(v->log, KB_LOG_WARN, "certificate login from %s failed: %s%s%s%s", source, why,
	       tp ? " (certificate " : "", tp ? tp : "", tp ? ")" : "");
	if (locked)
		kb_log(v->log, KB_LOG_WARN, "further logins from %s refused for a while", source);
	hd_call_error(call, HD_UNAUTHENTICATED, "%s", msg);
}

void hd_vim_login_by_certificate(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	char source[HOSTD_AUTH_SOURCE_MAX], cn[HOSTD_AUTH_NAME_MAX + 1], tp[THUMB_LEN];
	char how[THUMB_LEN + 64];
	const char *peer = hd_call_peer(call), *colon;
	X509 *x = hd_call_peer_cert(call);
	uint64_t retry = 0;
	uint32_t xku;
	size_t n;

	(void)req;
	/* The address without the port, as Login counts failures. */
	colon = peer ? strrchr(peer, ':') : NULL;
	n = colon ? (size_t)(colon - peer) : (peer ? strlen(peer) : 0);
	if (n >= sizeof(source))
		n = sizeof(source) - 1;
	memcpy(source, peer ? peer : "", n);
	source[n] = '\0';

	if (hostd_auth_ratelimit_check(v->rl, source, kb_now_ns(), &retry) != 0) {
		kb_log(v->log, KB_LOG_WARN, "certificate login from %s refused: too many failures",
		       source);
		hd_call_error(call, HD_UNAUTHENTICATED,
			      "too many failed logins from %s: try again in %llu s", source,
			      (unsigned long long)((retry + 999999999u) / 1000000000u));
		return;
	}
	if (!x) {
		refuse(call, source, "no client certificate verified by the cluster CA", NULL,
		       "no trusted client certificate");
		return;
	}
	thumbprint(x, tp);
	xku = (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) ? X509_get_extended_key_usage(x) : 0;
	if (X509_check_ca(x) != 0 || !(xku & XKU_SSL_CLIENT) || (xku & XKU_SSL_SERVER)) {
		refuse(call, source, "not a client certificate", tp,
		       "the client certificate is not for client authentication (clientAuth "
		       "only)");
		return;
	}
	if (subject_cn(x, cn, sizeof(cn)) != 0) {
		refuse(call, source, "no usable subject CN", tp,
		       "the client certificate's subject names no user (one CN wanted)");
		return;
	}
	if (!hostd_auth_user_get(v->db, cn)) {
		snprintf(how, sizeof(how),
			 "the client certificate names user \"%s\", which does not exist here", cn);
		refuse(call, source, "no such user", tp, how);
		return;
	}
	snprintf(how, sizeof(how), " by certificate %s", tp);
	hd_vim_session_start(call, cn, how);
}
