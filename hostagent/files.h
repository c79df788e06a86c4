/*
 * Datastore and host files over HTTPS (docs/hostd-files.md): GET, HEAD and PUT of
 * /folder/<path>?dsName=<datastore> and GET/HEAD of /host/<file> on hostd's HTTP/2 server,
 * beside the gRPC calls and on the same connections.
 *
 * The server hands a stream to this module when its :path starts with /folder/ or /host/
 * (hd__file_is_request); from then on the call belongs here: the module answers it with
 * plain HTTP (never gRPC), streams the body in both directions through HTTP/2 flow control,
 * and frees its state from the call's cancel callback, which the server runs when the
 * stream closes (the call is never marked completed). DATA of a file call is not consumed
 * by the server: the module gives the window back (nghttp2_session_consume) once the bytes
 * are on disk, so an upload never holds more than one stream window in memory.
 *
 * Threads: all on the server's loop; file I/O runs on libuv's thread pool.
 */
#ifndef HD_FILES_H
#define HD_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (docs/hostd-files.md, "Limits"). */
#define HD_FILE_CHUNK	   (64u << 10)		/* bytes read from disk per step of a download */
#define HD_FILE_PER_CONN   16			/* transfers at once on one connection */
#define HD_FILE_PER_SERVER 64			/* transfers at once in hostd */
#define HD_FILE_PUT_MAX	   (UINT64_C(64) << 30) /* bytes of one upload */
#define HD_FILE_PATH_MAX   4000			/* bytes of a decoded datastore path */

struct hd_call;

/* True when the call's :path names a file URL (/folder/... or /host/...). */
bool hd__file_is_request(const struct hd_call *call);
/* The request headers are complete: checks method, credentials, path and privilege and
 * answers a refusal at once, or starts the transfer (opening on the thread pool). */
void hd__file_headers_done(struct hd_call *call);
/* True while the call is a file transfer of this module (its DATA goes to
 * hd__file_data, which consumes the flow-control window itself). */
bool hd__file_owns(const struct hd_call *call);
/* A chunk of the request body (an upload). Copied; the window is given back once the
 * bytes are written, or at once when the body is being dropped. */
void hd__file_data(struct hd_call *call, const uint8_t *p, size_t n);
/* The client ended its request (END_STREAM). */
void hd__file_end_of_request(struct hd_call *call);

#endif
