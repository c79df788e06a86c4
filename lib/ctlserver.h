/*
 * A control-socket server on a libuv loop: the part vmkernel's and clusterd's control
 * sockets share.
 *
 * Happy path: kb_ctlserver_start() listens on a Unix stream socket (a stale path is
 * unlinked first, the socket is made mode 0600). Each client's bytes go through a
 * kb_frame_decoder (lib/frame.h) with the server's size limit; every complete frame is
 * handed to the request callback, which answers it now or later with kb_ctlclient_reply()
 * or kb_ctlclient_error(). One request per client is in flight at a time: the next frame
 * is handed over only once the reply to the previous one was written, so replies come back
 * in order.
 *
 * Failure modes: a frame above the size limit gets an error reply (packed by the daemon's
 * error callback, since each daemon has its own reply message) and the connection is
 * closed. A peer that goes away while a request is in flight is closed once the reply has
 * been handed in; a write error closes the client. kb_ctlserver_stop() closes every client.
 *
 * Threads: everything here runs on the loop thread, callbacks included. A daemon that does
 * the work elsewhere hands the result back to the loop (vmkernel uses uv_queue_work, whose
 * after-work callback runs on the loop) and replies from there.
 */
#ifndef KB_CTLSERVER_H
#define KB_CTLSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/list.h"

struct kb_ctlclient;

/* One complete request frame (the payload, without the length prefix). msg is borrowed for
 * the call only. c is borrowed: it stays valid until the close callback for it returns,
 * or longer for a holder of kb_ctlclient_ref(). The callback owes exactly one reply
 * (kb_ctlclient_reply, kb_ctlclient_error or kb_ctlclient_close); until then no further
 * frame is handed over. */
typedef void (*kb_ctlserver_request_cb)(void *arg, struct kb_ctlclient *c, const uint8_t *msg,
					size_t len);
/* Appends the daemon's error reply carrying code and msg to out (the payload only; out is
 * owned by the server, which adds the length prefix). 0, or a negative code, in which case
 * the client is closed without a reply. Runs on the loop thread. */
typedef int (*kb_ctlserver_error_cb)(void *arg, int code, const char *msg, struct kb_buf *out);
/* The server starts closing c (peer gone, protocol or write error, stop). Optional. After it
 * returns, replies to c are dropped, and c is freed once its handle is closed and no
 * reference from kb_ctlclient_ref() is left. */
typedef void (*kb_ctlserver_close_cb)(void *arg, struct kb_ctlclient *c);

struct kb_ctlserver_cbs {
	kb_ctlserver_request_cb request;
	kb_ctlserver_error_cb error;
	kb_ctlserver_close_cb close; /* may be NULL */
};

/* Caller-allocated; the fields are private. */
struct kb_ctlserver {
	uv_pipe_t pipe;
	uv_loop_t *loop;
	char *path;
	size_t max_frame;
	struct kb_ctlserver_cbs cbs;
	void *arg;
	struct kb_list clients;
	bool started;
};

/* Listens on path (mode 0600, a stale socket file unlinked first) on loop. Frames above
 * max_frame bytes are refused. cbs is copied; arg is passed to every callback and is
 * borrowed until kb_ctlserver_stop(). 0, -ENOMEM, or a libuv error (err says which path
 * and why). Loop thread only. */
int kb_ctlserver_start(struct kb_ctlserver *srv, uv_loop_t *loop, const char *path,
		       size_t max_frame, const struct kb_ctlserver_cbs *cbs, void *arg,
		       struct kb_errmsg *err);
/* Closes every client (close callbacks run), stops listening and unlinks the socket path.
 * The handles finish closing on the next loop turns; a client still owed a reply by a
 * holder of kb_ctlclient_ref() is freed when that holder lets go. A no-op after a failed
 * start or none (a failed start has already closed its handle). Loop thread only. */
void kb_ctlserver_stop(struct kb_ctlserver *srv);

/* A daemon that re-executes itself keeps its socket path answering across the exec:
 * kb_ctlserver_hand_over() stops accepting connections, leaves the path in place (a later
 * kb_ctlserver_stop() does not unlink it) and returns a duplicate of the listening socket
 * without FD_CLOEXEC, or -1 (nothing changed). The clients already connected are served
 * until kb_ctlserver_stop(); those that connect meanwhile wait in the socket's backlog for
 * the new image. That image passes the fd to kb_ctlserver_adopt(), which listens on it when
 * it is a listening Unix stream socket bound to path (FD_CLOEXEC again), and otherwise
 * closes it and starts afresh as kb_ctlserver_start() does. Loop thread only. */
int kb_ctlserver_hand_over(struct kb_ctlserver *srv);
int kb_ctlserver_adopt(struct kb_ctlserver *srv, uv_loop_t *loop, const char *path, int fd,
		       size_t max_frame, const struct kb_ctlserver_cbs *cbs, void *arg,
		       struct kb_errmsg *err);

/* Sends payload as one frame (the length prefix is added here; payload is copied, borrowed
 * for the call) and ends the client's request in flight. close_after closes the
 * connection once the frame is written; so does a peer that already went away. A reply to
 * a client that is closing is dropped. Out of memory or a write error closes the client.
 * Loop thread only. */
void kb_ctlclient_reply(struct kb_ctlclient *c, const void *payload, size_t len, bool close_after);
/* Same as kb_ctlclient_reply with the daemon's error reply (the server's error callback)
 * for code and msg. */
void kb_ctlclient_error(struct kb_ctlclient *c, int code, const char *msg, bool close_after);

/* Closes c without a reply (close callback runs); ends its request in flight. Loop
 * thread only. */
void kb_ctlclient_close(struct kb_ctlclient *c);

/* Keeps c allocated past its close callback, for a reply handed in later (from the loop
 * thread, after work done elsewhere). Every ref is paired with one kb_ctlclient_unref,
 * which may free c. Loop thread only. */
void kb_ctlclient_ref(struct kb_ctlclient *c);
void kb_ctlclient_unref(struct kb_ctlclient *c);

#endif
