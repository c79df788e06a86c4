/*
 * libkeel's client: unary keel.vim.Vim calls over one libcurl easy handle.
 *
 * A call packs the request behind a gRPC prefix, POSTs it over HTTP/2 (ALPN h2, required)
 * with content-type application/grpc, te: trailers and the session token, collects the
 * body (refusing a message announced larger than 64 MiB as soon as its prefix arrives),
 * reads grpc-status and grpc-message from the header callback — libcurl hands trailers to
 * the same callback as headers — and unpacks the one message. Parsing is grpc_parse.c.
 *
 * Thumbprint pinning (the OpenSSL backend only): CURLOPT_SSL_VERIFYPEER and _VERIFYHOST
 * are off, so libcurl neither verifies nor checks the verification result; our
 * CURLOPT_SSL_CTX_FUNCTION then sets SSL_VERIFY_PEER on the SSL_CTX with a certificate
 * verify callback (SSL_CTX_set_cert_verify_callback) that replaces OpenSSL's chain check
 * by a comparison of the leaf certificate's SHA-256 with the pin. A mismatch fails the
 * handshake before any request byte is sent; the digest seen is kept for the message.
 * (CURLINFO_CERTINFO was not used: it is only available after the request went out.)
 *
 * Failure modes: no connection or a failed handshake → UNAVAILABLE with curl's message
 * (DEADLINE_EXCEEDED on a timeout); an untrusted certificate → UNAVAILABLE, source
 * KL_SRC_TLS, naming the thumbprints or the CA file; anything that is not a well-formed
 * gRPC response → INTERNAL, source KL_SRC_PROTOCOL.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/heap.h"
#include "mgmt-api/libkeel/grpc_parse.h"
#include "mgmt-api/libkeel/keel_client.h"
#include "mgmt-api/libkeel/keel_files.h"
#include "mgmt-api/libkeel/keel_int.h"

#define TOKEN_MAX	   256
#define METHOD_MAX	   64
#define CONNECT_TIMEOUT_MS 10000
#define SERVICE_PATH	   "/keel.vim.Vim/"

struct kl_client {
	CURL *curl;
	char *url; /* "https://host:port", no trailing '/' */
	char *ca_file;
	char *cert_file, *key_file; /* client certificate (mutual TLS), or NULL */
	uint64_t timeout_ms;	    /* opts.timeout_ms: the limit of each unary call */
	bool pinned;
	uint8_t pin[KL__SHA256_LEN];
	char pin_str[KL__THUMBPRINT_STR];
	char seen[KL__THUMBPRINT_STR]; /* last leaf digest seen while pinned */
	bool mismatch;		       /* the last handshake failed the pin */
	char *token;
	char curl_err[CURL_ERROR_SIZE];
	/* the call in progress */
	struct kl__grpc_resp resp;
	uint8_t *body;
	size_t body_len, body_cap;
	bool too_big, nomem;
	/* a streaming call in progress (kl_client_stream), else NULL */
	struct stream *stream;
};

/* A server-streaming call: each complete message of the body is unpacked and handed to
 * cb as soon as it has arrived; body holds only the bytes of an unfinished message. */
struct stream {
	const ProtobufCMessageDescriptor *desc;
	kl_stream_cb cb;
	void *arg;
	bool stopped;	/* cb asked to stop */
	bool bad;	/* a message that is not valid: the transfer was aborted */
	char err[256];	/* ... why */
	uint64_t count; /* messages delivered */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *kl_code_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(code_names) / sizeof(code_names[0])))
		return "?";
	return code_names[code];
}

static int set_status(struct kl_status *st, int code, enum kl_source src, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills st; returns the value kl_client_call returns for it. */
static int set_status(struct kl_status *st, int code, enum kl_source src, const char *fmt, ...)
{
	va_list ap;

	st->code = code;
	st->source = src;
	va_start(ap, fmt);
	vsnprintf(st->message, sizeof(st->message), fmt, ap);
	va_end(ap);
	return -code;
}

static void status_ok(struct kl_status *st)
{
	st->code = KL_OK;
	st->source = KL_SRC_SERVER;
	st->message[0] = '\0';
}

/* ---- TLS pinning --------------------------------------------------------------------- */

static int verify_pin(X509_STORE_CTX *x, void *arg)
{
	struct kl_client *c = arg;
	X509 *cert = X509_STORE_CTX_get0_cert(x);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!cert || !X509_digest(cert, EVP_sha256(), md, &n) || n != KL__SHA256_LEN) {
		c->mismatch = true;
		snprintf(c->seen, sizeof(c->seen), "(none)");
		X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	kl__thumbprint_format(md, c->seen);
	if (memcmp(md, c->pin, KL__SHA256_LEN) != 0) {
		c->mismatch = true;
		X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	return 1;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *arg)
{
	SSL_CTX_set_cert_verify_callback(ssl_ctx, verify_pin, arg);
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
	return CURLE_OK;
}

/* ---- libcurl callbacks ---------------------------------------------------------------- */

static size_t header_cb(char *b, size_t size, size_t n, void *arg)
{
	struct kl_client *c = arg;

	kl__grpc_resp_line(&c->resp, b, size * n);
	return size * n;
}

static size_t stream_deliver(struct kl_client *c);

static size_t write_cb(char *b, size_t size, size_t n, void *arg)
{
	struct kl_client *c = arg;
	size_t len = size * n;
	uint32_t announced;

	if (c->body_len + len > KL__MSG_MAX + KL__PREFIX_LEN) {
		c->too_big = true;
		return 0;
	}
	if (c->body_len + len > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		uint8_t *nb;

		while (cap < c->body_len + len)
			cap *= 2;
		nb = kb_realloc(c->body, cap);
		if (!nb) {
			c->nomem = true;
			return 0;
		}
		c->body = nb;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, b, len);
	c->body_len += len;
	if (kl__grpc_body_announced(c->body, c->body_len, &announced) == 0 &&
	    announced > KL__MSG_MAX) {
		c->too_big = true;
		return 0;
	}
	if (c->stream)
		return stream_deliver(c) ? 0 : len;
	return len;
}

/* Hands every complete message at the start of c->body to the stream's callback and keeps
 * the rest. 0 to go on; 1 to abort the transfer (the callback asked to stop, a message is
 * not valid, one is too large). */
static size_t stream_deliver(struct kl_client *c)
{
	struct stream *sm = c->stream;
	size_t off = 0, msg_len, used;
	const uint8_t *msg;
	int rv;

	while ((rv = kl__grpc_stream_next(c->body + off, c->body_len - off, KL__MSG_MAX, &msg,
					  &msg_len, &used)) == 0) {
		ProtobufCMessage *m = protobuf_c_message_unpack(sm->desc, NULL, msg_len, msg);
		int stop;

		if (!m) {
			snprintf(sm->err, sizeof(sm->err),
				 "message %llu of the stream is not a valid %s",
				 (unsigned long long)sm->count + 1, sm->desc->name);
			sm->bad = true;
			return 1;
		}
		off += used;
		sm->count++;
		stop = sm->cb(m, sm->arg);
		protobuf_c_message_free_unpacked(m, NULL);
		if (stop) {
			sm->stopped = true;
			return 1;
		}
	}
	if (rv == -EMSGSIZE) {
		c->too_big = true;
		return 1;
	}
	if (rv != -EAGAIN) {
		snprintf(sm->err, sizeof(sm->err), "message %llu of the stream has flag %u%s",
			 (unsigned long long)sm->count + 1, c->body[off],
			 rv == -ENOTSUP ? " (compressed, not supported)" : "");
		sm->bad = true;
		return 1;
	}
	if (off) {
		memmove(c->body, c->body + off, c->body_len - off);
		c->body_len -= off;
	}
	return 0;
}

/* ---- open, destroy, token ----------------------------------------------------------- */

/* "https://HOST[:PORT][/]": a host made of printable characters without '/', '?', '#',
 * '@' or blanks. */
static bool url_ok(const char *url)
{
	const char *h = url + 8;
	size_t n;

	if (strncmp(url, "https://", 8) != 0)
		return false;
	n = strlen(h);
	if (n && h[n - 1] == '/')
		n--;
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (h[i] <= 0x20 || h[i] >= 0x7f || strchr("/?#@\\", h[i]))
			return false;
	return true;
}

int kl_client_open(const char *url, const struct kl_client_opts *opts, struct kl_client **out,
		   struct kl_status *st)
{
	struct kl_client_opts none = {0};
	struct kl_client *c;
	uint64_t cto;
	size_t n;

	*out = NULL;
	if (!opts)
		opts = &none;
	if (!url || !url_ok(url)) {
		set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
			   "bad server URL '%s': want https://HOST:PORT", url ? url : "");
		return -EINVAL;
	}
	if (opts->key_file && !opts->cert_file) {
		set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
			   "a client key file needs its certificate file");
		return -EINVAL;
	}
	if (opts->ca_file && opts->thumbprint) {
		set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
			   "give a CA file or a thumbprint, not both");
		return -EINVAL;
	}
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		set_status(st, KL_INTERNAL, KL_SRC_CLIENT, "libcurl could not start: %s",
			   curl_easy_strerror(global_rc));
		return -EIO;
	}
	c = kb_calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	if (opts->thumbprint) {
		if (kl__thumbprint_parse(opts->thumbprint, c->pin) != 0) {
			kb_free(c);
			set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				   "bad thumbprint '%s': want the SHA-256 as 64 hex digits "
				   "(pairs may be joined by ':')",
				   opts->thumbprint);
			return -EINVAL;
		}
		c->pinned = true;
		kl__thumbprint_format(c->pin, c->pin_str);
	}
	c->url = kb_strdup(url);
	if (!c->url)
		goto free_client;
	n = strlen(c->url);
	if (c->url[n - 1] == '/')
		c->url[n - 1] = '\0';
	if (opts->ca_file && !(c->ca_file = kb_strdup(opts->ca_file)))
		goto free_client;
	if (opts->cert_file && !(c->cert_file = kb_strdup(opts->cert_file)))
		goto free_client;
	if (opts->cert_file &&
	    !(c->key_file = kb_strdup(opts->key_file ? opts->key_file : opts->cert_file)))
		goto free_client;
	c->timeout_ms = opts->timeout_ms;
	c->curl = curl_easy_init();
	if (!c->curl)
		goto free_client;

	cto = opts->connect_timeout_ms ? opts->connect_timeout_ms : CONNECT_TIMEOUT_MS;
	if (opts->timeout_ms && opts->timeout_ms < cto)
		cto = opts->timeout_ms;
	curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "libkeel/1 grpc-c-libcurl");
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROXY, ""); /* never through $https_proxy */
	if (c->pinned) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
		curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_DATA, c);
	} else if (c->ca_file) {
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(c->curl, CURLOPT_CAPATH, NULL);
	}
	if (c->cert_file) {
		curl_easy_setopt(c->curl, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(c->curl, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c->curl, CURLOPT_SSLKEY, c->key_file);
		curl_easy_setopt(c->curl, CURLOPT_SSLKEYTYPE, "PEM");
	}
	*out = c;
	status_ok(st);
	return 0;

free_client:
	kl_client_destroy(c);
nomem:
	set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT, "out of memory");
	return -ENOMEM;
}

static void free_token(struct kl_client *c)
{
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		kb_free(c->token);
		c->token = NULL;
	}
}

void kl_client_destroy(struct kl_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free_token(c);
	kb_free(c->body);
	kb_free(c->ca_file);
	kb_free(c->cert_file);
	kb_free(c->key_file);
	kb_free(c->url);
	kb_free(c);
}

int kl_client_set_token(struct kl_client *c, const char *token)
{
	char *t;

	if (!token || !token[0]) {
		free_token(c);
		return 0;
	}
	if (strlen(token) > TOKEN_MAX)
		return -EINVAL;
	for (const char *p = token; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return -EINVAL;
	t = kb_strdup(token);
	if (!t)
		return -ENOMEM;
	free_token(c);
	c->token = t;
	return 0;
}

const char *kl_client_token(const struct kl_client *c)
{
	return c->token;
}

const char *kl_client_seen_thumbprint(const struct kl_client *c)
{
	return c->seen;
}

/* For keel_files.c (keel_files.h): the handle's options are the client's; the pin check
 * keeps writing into c (seen, mismatch). */
CURL *kl__client_dup_handle(struct kl_client *c, const char **url)
{
	*url = c->url;
	return curl_easy_duphandle(c->curl);
}

uint64_t kl__client_timeout_ms(const struct kl_client *c)
{
	return c->timeout_ms;
}

/* ---- calls ---------------------------------------------------------------------------- */

static bool method_ok(const char *m)
{
	size_t n = m ? strlen(m) : 0;

	if (n == 0 || n > METHOD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((m[i] >= 'A' && m[i] <= 'Z') || (m[i] >= 'a' && m[i] <= 'z') ||
		      (m[i] >= '0' && m[i] <= '9') || m[i] == '_'))
			return false;
	return true;
}

/* The status of a transfer libcurl could not complete. */
static int transport_status(struct kl_client *c, CURLcode rc, struct kl_status *st)
{
	const char *why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);

	if (c->nomem)
		return set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT, "out of memory");
	if (c->too_big)
		return set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_PROTOCOL,
				  "the response from %s is larger than %u MiB", c->url,
				  KL__MSG_MAX >> 20);
	if (c->mismatch)
		return set_status(st, KL_UNAVAILABLE, KL_SRC_TLS,
				  "the certificate of %s has thumbprint %s, but %s was "
				  "expected: refusing to talk to it",
				  c->url, c->seen, c->pin_str);
	switch (rc) {
	case CURLE_SSL_CERTPROBLEM:
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				  "cannot use the client certificate %s with key %s: %s",
				  c->cert_file ? c->cert_file : "-",
				  c->key_file ? c->key_file : "-", why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return set_status(st, KL_UNAVAILABLE, KL_SRC_TLS,
				  "cannot verify the certificate of %s with %s: %s", c->url,
				  c->ca_file ? c->ca_file : "the system's CAs", why);
	case CURLE_OPERATION_TIMEDOUT:
		return set_status(st, KL_DEADLINE_EXCEEDED, KL_SRC_TRANSPORT,
				  "no answer from %s in time: %s", c->url, why);
	default:
		return set_status(st, KL_UNAVAILABLE, KL_SRC_TRANSPORT, "cannot reach %s: %s",
				  c->url, why);
	}
}

/* Turns the collected response into st and *reply. */
static int finish(struct kl_client *c, const char *method,
		  const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
		  struct kl_status *st)
{
	const struct kl__grpc_resp *r = &c->resp;
	long http = 0, version = 0;
	const uint8_t *msg;
	size_t msg_len;
	char err[256];
	int rc, code;

	curl_easy_getinfo(c->curl, CURLINFO_HTTP_VERSION, &version);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &http);
	if (version != CURL_HTTP_VERSION_2_0)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "%s did not answer over HTTP/2: not a gRPC server?", c->url);
	if (http != 200)
		return set_status(st, kl__grpc_status_from_http(http), KL_SRC_SERVER,
				  "%s answered %s with HTTP status %ld", c->url, method, http);
	if (!r->have_status)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "the answer of %s to %s carries no grpc-status", c->url, method);
	code = r->grpc_status;
	if (code < 0)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "the answer of %s to %s has a malformed grpc-status", c->url,
				  method);
	if (code > KL_UNAUTHENTICATED)
		code = KL_UNKNOWN;
	if (code != KL_OK)
		return set_status(st, code, KL_SRC_SERVER, "%s",
				  r->grpc_message[0] ? r->grpc_message : kl_code_name(code));
	if (!r->grpc_content)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "the answer of %s to %s is not application/grpc", c->url, method);
	rc = kl__grpc_body_parse(c->body, c->body_len, KL__MSG_MAX, &msg, &msg_len, err,
				 sizeof(err));
	if (rc)
		return set_status(st, rc == -EMSGSIZE ? KL_RESOURCE_EXHAUSTED : KL_INTERNAL,
				  KL_SRC_PROTOCOL, "%s: %s", method, err);
	*reply = protobuf_c_message_unpack(reply_desc, NULL, msg_len, msg);
	if (!*reply)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "%s: the answer is not a valid %s", method, reply_desc->name);
	status_ok(st);
	return 0;
}

/* The end of a stream the server closed: its status, and no message cut short. */
static int finish_stream(struct kl_client *c, const char *method, struct kl_status *st)
{
	const struct kl__grpc_resp *r = &c->resp;
	long http = 0, version = 0;
	int code;

	curl_easy_getinfo(c->curl, CURLINFO_HTTP_VERSION, &version);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &http);
	if (version != CURL_HTTP_VERSION_2_0)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "%s did not answer over HTTP/2: not a gRPC server?", c->url);
	if (http != 200)
		return set_status(st, kl__grpc_status_from_http(http), KL_SRC_SERVER,
				  "%s answered %s with HTTP status %ld", c->url, method, http);
	if (!r->have_status || r->grpc_status < 0)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "the stream of %s from %s ended without a valid grpc-status",
				  method, c->url);
	code = r->grpc_status > KL_UNAUTHENTICATED ? KL_UNKNOWN : r->grpc_status;
	if (code != KL_OK)
		return set_status(st, code, KL_SRC_SERVER, "%s",
				  r->grpc_message[0] ? r->grpc_message : kl_code_name(code));
	if (c->body_len)
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "%s: the stream ends inside a message", method);
	status_ok(st);
	return 0;
}

/* One request: method with req, answered as one message (sm NULL: into *reply) or as a
 * stream handed to sm's callback. */
static int perform(struct kl_client *c, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
		   struct stream *sm, struct kl_status *st)
{
	char url[512], auth[TOKEN_MAX + 32];
	struct curl_slist *hdrs = NULL, *h;
	size_t len, total;
	uint8_t *buf;
	CURLcode crc;
	int rc;

	if (reply)
		*reply = NULL;
	if (!method_ok(method))
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT, "bad method name '%s'",
				  method ? method : "");
	len = protobuf_c_message_get_packed_size(req);
	if (len > KL__MSG_MAX)
		return set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT,
				  "%s: the request has %zu bytes (at most %u)", method, len,
				  KL__MSG_MAX);
	total = KL__PREFIX_LEN + len;
	buf = kb_malloc(total);
	if (!buf)
		return set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT, "out of memory");
	kl__grpc_prefix(buf, (uint32_t)len);
	protobuf_c_message_pack(req, buf + KL__PREFIX_LEN);
	snprintf(url, sizeof(url), "%s" SERVICE_PATH "%s", c->url, method);

	hdrs = curl_slist_append(NULL, "content-type: application/grpc");
	h = hdrs ? curl_slist_append(hdrs, "te: trailers") : NULL;
	if (h && c->token) {
		snprintf(auth, sizeof(auth), "x-keel-session: %s", c->token);
		h = curl_slist_append(hdrs, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	if (!h) {
		curl_slist_free_all(hdrs);
		rc = set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT, "out of memory");
		goto free_buf;
	}

	kl__grpc_resp_init(&c->resp);
	c->body_len = 0;
	c->too_big = c->nomem = c->mismatch = false;
	c->seen[0] = c->curl_err[0] = '\0';
	c->stream = sm;
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, buf);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)total);
	if (sm) /* a stream lasts as long as the caller wants it */
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 0L);
	crc = curl_easy_perform(c->curl);
	/* libcurl keeps neither after the transfer; clear them so a later call cannot
	 * resend a freed body. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	if (sm)
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	c->stream = NULL;
	if (sm && sm->stopped) {
		status_ok(st);
		rc = 0;
	} else if (sm && sm->bad) {
		rc = set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL, "%s: %s", method, sm->err);
	} else if (crc != CURLE_OK) {
		rc = transport_status(c, crc, st);
	} else if (sm) {
		rc = finish_stream(c, method, st);
	} else {
		rc = finish(c, method, reply_desc, reply, st);
	}
	if (c->body_cap > (1u << 20)) { /* do not keep a large buffer between calls */
		kb_free(c->body);
		c->body = NULL;
		c->body_cap = 0;
	}
	c->body_len = 0;
	curl_slist_free_all(hdrs);
free_buf:
	explicit_bzero(buf, total); /* it may hold a password */
	kb_free(buf);
	return rc;
}

int kl_client_call(struct kl_client *c, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
		   struct kl_status *st)
{
	return perform(c, method, req, reply_desc, reply, NULL, st);
}

int kl_client_stream(struct kl_client *c, const char *method, const ProtobufCMessage *req,
		     const ProtobufCMessageDescriptor *reply_desc, kl_stream_cb cb, void *arg,
		     struct kl_status *st)
{
	struct stream sm = {.desc = reply_desc, .cb = cb, .arg = arg};

	if (!cb || !reply_desc)
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				  "a stream needs a reply type and a callback");
	return perform(c, method, req, reply_desc, NULL, &sm, st);
}

/* Keeps the token of a Session just received (m, owned) and hands it out or frees it. */
static int keep_session(struct kl_client *c, const char *method, ProtobufCMessage *m,
			Keel__Vim__Session **session, struct kl_status *st)
{
	Keel__Vim__Session *s = (Keel__Vim__Session *)m;
	int rc = kl_client_set_token(c, s->token);

	if (rc) {
		keel__vim__session__free_unpacked(s, NULL);
		if (rc == -ENOMEM)
			return set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT,
					  "out of memory");
		return set_status(st, KL_INTERNAL, KL_SRC_PROTOCOL,
				  "%s: the server's token is not a valid header value", method);
	}
	if (session)
		*session = s;
	else
		keel__vim__session__free_unpacked(s, NULL);
	return 0;
}

int kl_client_login(struct kl_client *c, const char *user, const char *password,
		    Keel__Vim__Session **session, struct kl_status *st)
{
	Keel__Vim__LoginRequest rq = KEEL__VIM__LOGIN_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc;

	if (session)
		*session = NULL;
	rq.user = (char *)user;
	rq.password = (char *)password;
	free_token(c);
	rc = kl_client_call(c, "Login", &rq.base, &keel__vim__session__descriptor, &m, st);
	if (rc)
		return rc;
	return keep_session(c, "Login", m, session, st);
}

int kl_client_login_cert(struct kl_client *c, Keel__Vim__Session **session, struct kl_status *st)
{
	Keel__Vim__LoginByCertificateRequest rq = KEEL__VIM__LOGIN_BY_CERTIFICATE_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc;

	if (session)
		*session = NULL;
	if (!c->cert_file)
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				  "a certificate login needs a client certificate "
				  "(kl_client_opts.cert_file)");
	free_token(c);
	rc = kl_client_call(c, "LoginByCertificate", &rq.base, &keel__vim__session__descriptor, &m,
			    st);
	if (rc)
		return rc;
	return keep_session(c, "LoginByCertificate", m, session, st);
}

int kl_client_logout(struct kl_client *c, struct kl_status *st)
{
	Keel__Vim__LogoutRequest rq = KEEL__VIM__LOGOUT_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc;

	rc = kl_client_call(c, "Logout", &rq.base, &keel__vim__logout_reply__descriptor, &m, st);
	if (rc == 0)
		protobuf_c_message_free_unpacked(m, NULL);
	free_token(c);
	return rc;
}
