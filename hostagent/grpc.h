/*
 * hostd's dispatch API: how a handler of a keel.vim.Vim method receives a call and
 * answers it (docs/hostd.md, "Dispatch").
 *
 * The server decodes the request (exactly one message of the method's input type; a body
 * that does not decode is answered INVALID_ARGUMENT before any handler runs) and calls the
 * method's handler on the loop thread. The handler answers at once or later, with exactly
 * one of:
 *
 *   hd_call_reply(call, msg)                    unary: one message, then status OK;
 *   hd_call_send(call, msg) ... hd_call_finish  server streaming: messages, then a status;
 *   hd_call_error(call, status, text)           a gRPC status without (more) messages.
 *
 * Threads: everything here runs on, and may only be called from, the server's loop thread.
 * Work elsewhere hands its result back with uv_async_send (STYLE.md) before answering.
 *
 * Ownership of a call (struct hd_call is opaque and owned by the server):
 *   - The handler borrows the call, and the request message, from the moment it is called
 *     until the first of: (a) it completes the call (hd_call_reply, hd_call_finish,
 *     hd_call_error — whatever they return), or (b) its cancel callback returns.
 *     After that it must not touch either pointer again.
 *   - The cancel callback runs when the client goes away before the call was completed
 *     (RST_STREAM, connection closed, server stopping). It must drop every reference to the
 *     call and may not call hd_call_* on it (they would return -ECANCELED).
 *   - A handler that returns without completing the call must first register a cancel
 *     callback with hd_call_on_cancel(); if it did not, the server completes the call with
 *     INTERNAL at once, so a forgotten callback is a failed call, never a use-after-free.
 *   - Messages passed to hd_call_reply/hd_call_send are borrowed for the duration of the
 *     call: they are serialized before it returns and the caller keeps ownership.
 *
 * Flow control: messages are queued per call and written as the client's HTTP/2 window
 * allows. The queue of a call holds at most HD_CALL_SENDQ_MAX bytes; past it,
 * hd_call_send returns -ENOBUFS and queues nothing. The handler then waits for its drain
 * callback (hd_call_on_drain), which runs when the queue fell below half, or gives up
 * with hd_call_error(call, HD_RESOURCE_EXHAUSTED, ...).
 */
#ifndef HD_GRPC_H
#define HD_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <openssl/x509.h>
#include <protobuf-c/protobuf-c.h>

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum hd_status {
	HD_OK = 0,
	HD_CANCELLED = 1,
	HD_UNKNOWN = 2,
	HD_INVALID_ARGUMENT = 3,
	HD_DEADLINE_EXCEEDED = 4,
	HD_NOT_FOUND = 5,
	HD_ALREADY_EXISTS = 6,
	HD_PERMISSION_DENIED = 7,
	HD_RESOURCE_EXHAUSTED = 8,
	HD_FAILED_PRECONDITION = 9,
	HD_ABORTED = 10,
	HD_OUT_OF_RANGE = 11,
	HD_UNIMPLEMENTED = 12,
	HD_INTERNAL = 13,
	HD_UNAVAILABLE = 14,
	HD_DATA_LOSS = 15,
	HD_UNAUTHENTICATED = 16,
};

#define HD_CALL_SENDQ_MAX (1u << 20) /* bytes queued per call before hd_call_send refuses */

struct hd_call;

/* A method handler: req is the decoded request (borrowed, see ownership above). */
typedef void (*hd_handler_cb)(struct hd_call *call, const ProtobufCMessage *req);
/* The client went away before the call was completed; arg as registered. */
typedef void (*hd_cancel_cb)(struct hd_call *call, void *arg);
/* The send queue fell below half of HD_CALL_SENDQ_MAX after an -ENOBUFS. */
typedef void (*hd_drain_cb)(struct hd_call *call, void *arg);

/* One entry of the method table (hostagent/methods.c). */
struct hd_method {
	const char *name;			 /* "RetrieveInventory": the path's last part */
	const ProtobufCMessageDescriptor *input; /* the request's type */
	hd_handler_cb handler;			 /* NULL: answers UNIMPLEMENTED */
	bool server_streaming;			 /* "returns (stream X)" in vim.proto */
};

/* The method table of keel.vim.Vim, one entry per rpc of proto/vim.proto. */
extern const struct hd_method hd_vim_methods[];
extern const size_t hd_vim_methods_count;

/* Finds a method by name (the part after "/keel.vim.Vim/"); NULL when unknown. */
const struct hd_method *hd_method_find(const struct hd_method *table, size_t n, const char *name);

/*
 * Answering. Each returns 0, or:
 *   -ECANCELED  the client went away (only seen from inside a cancel callback: after it
 *               the call is gone);
 *   KB_ESTATE   the call was already completed;
 *   KB_ETOOBIG  msg packs to more than HD_WIRE_MSG_MAX (hd_call_reply then completes the
 *               call with RESOURCE_EXHAUSTED; hd_call_send queues nothing);
 *   -ENOBUFS    hd_call_send only: the send queue is full (see flow control above);
 *   -ENOMEM     out of memory (the completing calls then answer INTERNAL if they can).
 * Whatever hd_call_reply, hd_call_finish and hd_call_error return, the call is completed
 * and no longer the handler's.
 */
int hd_call_reply(struct hd_call *call, const ProtobufCMessage *msg);
int hd_call_send(struct hd_call *call, const ProtobufCMessage *msg);
/* Ends the call with status (HD_OK after a stream) and text (may be NULL; sent
 * percent-encoded in grpc-message, cut to HD_WIRE_TEXT_MAX bytes). */
int hd_call_finish(struct hd_call *call, enum hd_status status, const char *text);
/* hd_call_finish with printf-style text. */
int hd_call_error(struct hd_call *call, enum hd_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Registers the cancel callback (replaces an earlier one; cb NULL removes it). */
void hd_call_on_cancel(struct hd_call *call, hd_cancel_cb cb, void *arg);
/* Registers the drain callback (replaces an earlier one; cb NULL removes it). */
void hd_call_on_drain(struct hd_call *call, hd_drain_cb cb, void *arg);

/*
 * What the handler may read about the call; every pointer is borrowed like the call.
 */
/* The method being called. */
const struct hd_method *hd_call_method(const struct hd_call *call);
/* A request header (metadata) by lower-case name, e.g. "x-keel-session"; NULL if absent.
 * With repeated headers, the first. */
const char *hd_call_header(const struct hd_call *call, const char *name);
/* The client's address, and the same as text "A.B.C.D:port" / "[v6]:port". */
const struct sockaddr_storage *hd_call_peer_addr(const struct hd_call *call);
const char *hd_call_peer(const struct hd_call *call);
/* The client's certificate when it sent one that verified against the cluster CA
 * (DIR/ca.crt); NULL otherwise (no certificate, or not verified). */
X509 *hd_call_peer_cert(const struct hd_call *call);
/* The pointer given as hd_server_config.data, for the handlers' shared state. */
void *hd_call_server_data(const struct hd_call *call);

#endif
