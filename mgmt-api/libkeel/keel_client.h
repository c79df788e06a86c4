/*
 * libkeel — a C client of keel.vim.Vim (proto/vim.proto), hostd's API, over libcurl.
 *
 * A client is one libcurl easy handle bound to one hostd ("https://A.B.C.D:8443"): every
 * call is a POST of /keel.vim.Vim/<Method> over HTTP/2 over TLS on the same connection
 * (libcurl keeps it open between calls). The happy path:
 *
 *     struct kl_client *c;  struct kl_status st;  Keel__Vim__Session *s;
 *     kl_client_open("https://198.18.0.1:8443", &opts, &c, &st);
 *     kl_client_login(c, "root", password, &s, &st);       // the token is kept in c
 *     kl_client_call(c, "RetrieveInventory", &req.base, &keel__vim__inventory__descriptor,
 *                    (ProtobufCMessage **)&inv, &st);
 *     protobuf_c_message_free_unpacked(&inv->base, NULL);
 *     kl_client_destroy(c);
 *
 * Trust: opts.ca_file verifies the chain and the host name (the cluster CA after a
 * cluster exists); opts.thumbprint pins the server's certificate by its SHA-256 instead
 * (hostd's self-signed certificate before a cluster): libcurl's own verification is off
 * and an OpenSSL verify callback installed through CURLOPT_SSL_CTX_FUNCTION compares the
 * leaf certificate's digest during the handshake, so nothing — a password least of all —
 * is sent to a server that does not match. Neither: the system's CA store.
 *
 * Failures arrive in struct kl_status: the gRPC code and message, and where the status
 * came from (the server, the connection, TLS verification, a malformed response, or the
 * client itself). Requires libcurl with the OpenSSL backend (Debian's libcurl4-openssl).
 *
 * Client certificates: opts.cert_file/key_file present a certificate in the handshake
 * (mutual TLS); kl_client_login_cert then opens a session as the user the certificate
 * names (LoginByCertificate, docs/hostd-certlogin.md).
 *
 * Beyond kl_client_call: keel_calls.h (included below) has one typed function per unary
 * rpc (kl_vim_power_on_vm, ...), kl_task_wait (follow a Task to its end) and kl_watch
 * (the change feed); kl_client_stream is the generic server-streaming call.
 *
 * Threads: a client is used by one thread at a time; different clients may be used
 * from different threads (curl_global_init runs once, under a pthread_once).
 */
#ifndef KL_KEEL_CLIENT_H
#define KL_KEEL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "vim.pb-c.h"

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum kl_code {
	KL_OK = 0,
	KL_CANCELLED = 1,
	KL_UNKNOWN = 2,
	KL_INVALID_ARGUMENT = 3,
	KL_DEADLINE_EXCEEDED = 4,
	KL_NOT_FOUND = 5,
	KL_ALREADY_EXISTS = 6,
	KL_PERMISSION_DENIED = 7,
	KL_RESOURCE_EXHAUSTED = 8,
	KL_FAILED_PRECONDITION = 9,
	KL_ABORTED = 10,
	KL_OUT_OF_RANGE = 11,
	KL_UNIMPLEMENTED = 12,
	KL_INTERNAL = 13,
	KL_UNAVAILABLE = 14,
	KL_DATA_LOSS = 15,
	KL_UNAUTHENTICATED = 16,
};

/* Where a status came from. */
enum kl_source {
	KL_SRC_SERVER = 0, /* grpc-status / grpc-message sent by hostd (or mapped from HTTP) */
	KL_SRC_TRANSPORT,  /* no answer: connect, TLS handshake, timeout (UNAVAILABLE or
			      DEADLINE_EXCEEDED, with curl's message) */
	KL_SRC_TLS,	   /* the server's certificate was not trusted (UNAVAILABLE) */
	KL_SRC_PROTOCOL,   /* an answer that is not a valid gRPC response (INTERNAL) */
	KL_SRC_CLIENT,	   /* refused before sending: bad argument, out of memory */
};

#define KL_STATUS_MSG 1024

struct kl_status {
	int code; /* enum kl_code */
	enum kl_source source;
	char message[KL_STATUS_MSG]; /* "" when OK; may hold bytes from the server */
};

struct kl_client_opts {
	const char *ca_file;	     /* PEM bundle to verify the server with, or NULL */
	const char *thumbprint;	     /* SHA-256 of the server's certificate (64 hex digits, pairs
				   optionally joined by ':'), or NULL; not with ca_file */
	uint64_t timeout_ms;	     /* limit of each unary call, connection included (0: none);
				not of streams */
	uint64_t connect_timeout_ms; /* limit of connecting (0: 10 s) */
	const char *cert_file;	     /* client certificate (PEM) for mutual TLS, or NULL */
	const char *key_file;	     /* its private key (PEM); NULL: in cert_file */
};

struct kl_client;

/* "OK", "UNAUTHENTICATED", ...; "UNKNOWN(n)" style codes give "?" . Static strings. */
const char *kl_code_name(int code);

/*
 * Makes a client for url ("https://HOST:PORT", no path). opts may be NULL (system CAs, no
 * timeout); its strings are copied. Connects lazily, on the first call. 0 and *out (caller
 * frees with kl_client_destroy); or -EINVAL (not an https URL, a malformed thumbprint,
 * both ca_file and thumbprint, key_file without cert_file), -ENOMEM, -EIO (libcurl could
 * not be initialised), with st filled (source KL_SRC_CLIENT). The certificate files are
 * read at the first call: one that cannot be used fails that call with INVALID_ARGUMENT
 * (source KL_SRC_CLIENT) naming them.
 */
int kl_client_open(const char *url, const struct kl_client_opts *opts, struct kl_client **out,
		   struct kl_status *st);
/* Closes the connection and frees c (NULL is fine). */
void kl_client_destroy(struct kl_client *c);

/* Sets the session token sent as x-keel-session on every call (copied); NULL or "" stops
 * sending one. 0, -EINVAL (a character not allowed in a header value, or > 256 bytes),
 * -ENOMEM. */
int kl_client_set_token(struct kl_client *c, const char *token);
/* The token in use, or NULL. Borrowed until the next set_token/login/logout/destroy. */
const char *kl_client_token(const struct kl_client *c);

/*
 * One unary call: POST /keel.vim.Vim/<method> with req packed in a gRPC message, and the
 * answer unpacked with reply_desc. Returns 0 when the status is OK, with *reply (caller
 * frees with protobuf_c_message_free_unpacked(*reply, NULL)); otherwise -code (a negated
 * enum kl_code), *reply NULL and st says what happened. st is filled either way.
 * A response message over 64 MiB is refused (RESOURCE_EXHAUSTED, KL_SRC_PROTOCOL).
 */
int kl_client_call(struct kl_client *c, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
		   struct kl_status *st);

/*
 * A message of a stream, handed to a kl_stream_cb: borrowed until the callback returns
 * (libkeel frees it then). Return 0 to go on, nonzero to stop the stream.
 */
typedef int (*kl_stream_cb)(const ProtobufCMessage *msg, void *arg);

/*
 * One server-streaming call (WaitForUpdates, Console): POST /keel.vim.Vim/<method> with
 * req; every message of the answer is unpacked with reply_desc and handed to cb as soon as
 * it has arrived, on the calling thread. Returns 0 when the server ended the stream with
 * OK, or when cb returned nonzero (then the transfer is aborted, which resets the stream;
 * the client stays usable, connecting again if needed); otherwise -code with st as kl_client_call (a message that does
 * not unpack, a compressed one, or a stream that ends inside a message: INTERNAL,
 * KL_SRC_PROTOCOL). opts.timeout_ms does not bound a stream; connecting is bounded still.
 */
int kl_client_stream(struct kl_client *c, const char *method, const ProtobufCMessage *req,
		     const ProtobufCMessageDescriptor *reply_desc, kl_stream_cb cb, void *arg,
		     struct kl_status *st);

/*
 * Login(user, password): on success the token is kept in c for the next calls, and
 * *session (may be NULL if not wanted; caller frees with keel__vim__session__free_unpacked
 * (s, NULL)) holds the session. Returns as kl_client_call.
 */
int kl_client_login(struct kl_client *c, const char *user, const char *password,
		    Keel__Vim__Session **session, struct kl_status *st);
/*
 * LoginByCertificate: a session for the user named by the subject CN of the client
 * certificate c was opened with (opts.cert_file; without one: INVALID_ARGUMENT, nothing
 * sent). The token is kept in c and *session given as by kl_client_login. hostd answers
 * UNAUTHENTICATED when the certificate was not issued by the cluster CA, is not for client
 * authentication, or names no user there.
 */
int kl_client_login_cert(struct kl_client *c, Keel__Vim__Session **session, struct kl_status *st);
/* Logout of the current session; the token is forgotten whatever the answer. Returns as
 * kl_client_call. */
int kl_client_logout(struct kl_client *c, struct kl_status *st);

/* The thumbprint of the certificate the server presented on the last handshake with a
 * pinned thumbprint ("AB:CD:..."), or "" if none was seen. Borrowed from c. */
const char *kl_client_seen_thumbprint(const struct kl_client *c);

#include "mgmt-api/libkeel/keel_calls.h"

#endif
