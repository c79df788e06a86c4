/*
 * Internals shared by the files of hostd's file transfers (docs/hostd-files.md): files.c
 * (the transfer on the loop, the response, the entry points of files.h), files_request.c
 * (the checks of a request) and files_work.c (the work on the thread pool). Not for the
 * rest of hostd, which uses files.h.
 *
 * A struct xfer is one transfer, bound to its call (one HTTP/2 stream) through the call's
 * cancel callback. The loop thread owns it, except while busy: then a worker or an fs
 * request uses it, and nothing else touches it until after_work or the fs callback.
 */
#ifndef HD_FILES_INT_H
#define HD_FILES_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "hostagent/files.h"
#include "hostagent/internal.h"
#include "hostagent/vim.h"
#include "lib/buf.h"

#define FOLDER_PREFIX "/folder/"
#define HOST_PREFIX   "/host/"
#define TEXT_MAX      512

enum kind { K_GET, K_HEAD, K_PUT };
enum phase { P_AUTH, P_OPENING, P_STREAMING, P_FINISHING, P_DONE };

struct xfer {
	struct hd_call *call; /* NULL once the stream is gone */
	struct hd_vim *v;
	uv_loop_t *loop;
	enum kind kind;
	enum phase phase;
	bool host;     /* /host/<file> */
	bool store;    /* /host/<file> is a file of the config store, or its archive */
	bool archive;  /* /host/config.kar: the config store's whole archive */
	bool busy;     /* a worker or fs request uses this */
	bool ended;    /* the client ended its request */
	bool answered; /* the response HEADERS were submitted */
	bool dropping; /* the request body is dropped (the upload was refused) */
	bool failed;   /* a download failed mid-stream: reset the stream */
	bool tmp_made; /* the temporary file exists */
	bool have_len; /* content-length was given */
	int status;    /* HTTP status answered, 0 before */
	uint64_t started_ns;
	char peer[64], user[HOSTD_AUTH_NAME_MAX + 1], shown[256];
	char ds[HOSTD_AUTH_ENTITY_MAX + 1];
	char *rel;		  /* decoded path below the datastore, or the host file's name */
	char base[256], tmp[300]; /* upload: the target's name and the temporary file's */
	int dirfd, fd;
	uint64_t size;	     /* download: bytes to send */
	uint64_t declared;   /* upload: content-length */
	uint64_t received;   /* upload: body bytes arrived */
	uint64_t done;	     /* bytes sent or written */
	uint64_t unconsumed; /* upload: window not given back yet */
	char *text;	     /* the body of a refusal */
	size_t text_len, text_off;
	uint8_t *rbuf; /* download: one chunk */
	size_t rlen, roff;
	uint64_t rpos;
	struct kb_buf pend, wbuf; /* upload: arriving, being written */
	uv_work_t work;
	uv_fs_t fs;
	/* Outcome of a worker: 0, or the HTTP status to answer with wtext. */
	int wstatus;
	char wtext[TEXT_MAX];
	int stored; /* upload: 201 or 204 once renamed into place */
	/* Basic authentication, checked on a worker. */
	char source[HOSTD_AUTH_SOURCE_MAX];
	char hash[HOSTD_AUTH_HASH_MAX];
	char password[HOSTD_AUTH_PASSWORD_MAX + 1];
	bool known, auth_ok;
};

/* Live transfers in this process; loop thread only (files.c). */
extern unsigned hd__file_nxfers;

/* ---- on the loop (files.c) ----------------------------------------------------------------- */

/* Answers with status and a one-line text body; an upload's body is dropped from now on.
 * Does nothing once answered. Inside nghttp2 callbacks the outer loop sends the answer;
 * elsewhere the caller flushes the connection. */
void hd__xfer_refuse(struct xfer *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Runs cb on the thread pool with f busy; the outcome is handled on the loop when it is
 * done. When it cannot be queued, f->wstatus says so at once (500). */
void hd__xfer_start_work(struct xfer *f, uv_work_cb cb);

/* ---- the request (files_request.c) ---------------------------------------------------- */

/* The method into f->kind; false after answering 405. */
bool hd__xfer_check_method(struct xfer *f, const char *method);
/* The caller's user into f->user: the session of x-keel-session, else Basic
 * authentication. 0 when known, 1 while the password is being checked, -1 after
 * answering 401. */
int hd__xfer_authenticate(struct xfer *f, struct hd_call *call);
/* The user is known: the rest of the checks, then the open on a worker. */
void hd__xfer_authenticated(struct xfer *f);
/* Basic authentication's password was checked (the worker's outcome in f->auth_ok). */
void hd__xfer_auth_checked(struct xfer *f);

/* ---- on the thread pool (files_work.c) ------------------------------------------------ */

/* A worker's refusal: the status and text into f->wstatus and f->wtext. */
void hd__xfer_wfail(struct xfer *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The most bytes a PUT of f to the config store may carry. */
uint64_t hd__xfer_store_limit(const struct xfer *f);
/* The work callbacks (w->data is the transfer): open what the request names (a GET or
 * HEAD of the store reads it whole; a PUT of the store opens nothing), check the password,
 * write the pending chunk, fsync and rename into place, remove the temporary file, hand a
 * PUT's body to the config store. */
void hd__xfer_open_work(uv_work_t *w);
void hd__xfer_auth_work(uv_work_t *w);
void hd__xfer_write_work(uv_work_t *w);
void hd__xfer_finish_work(uv_work_t *w);
void hd__xfer_discard_work(uv_work_t *w);
void hd__xfer_store_write_work(uv_work_t *w);

#endif
