/*
 * Datastore and host files over HTTPS: GET/HEAD/PUT /folder/<path>?dsName=<ds> and
 * GET/HEAD /host/<file> (docs/hostd-files.md).
 *
 * Happy path of a download: the headers arrive → the method, the session (x-keel-session)
 * and the path are checked and the privilege looked up, on the loop → on a worker, the
 * datastore's root is asked of vmkernel and the file opened beneath it with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: no "..", no symlink out of the datastore) →
 * HEADERS(200, content-length) and an nghttp2 data provider that hands out one
 * HD_FILE_CHUNK at a time, read with uv_fs_read; while a chunk is being read the provider
 * defers, and it is only asked for more when the client's window and the connection's
 * write backlog allow, so a client that stops reading stops the reading too.
 *
 * Happy path of an upload: the same checks → on a worker, the target's directory opened
 * beneath the root and a temporary file ".<name>.<random>.keel-upload" made in it (O_EXCL,
 * 0644) → each DATA chunk is appended to a pending buffer; a worker writes the buffer
 * while the next one fills, and only then is the flow-control window given back
 * (nghttp2_session_consume), so at most one stream window (1 MiB) is held → at END_STREAM
 * a worker fsyncs the file, renames it over the target and fsyncs the directory → 201
 * (new) or 204 (replaced).
 *
 * Failure modes, each a plain-text body with one line: 400 bad path, query, or body
 * length; 401 no or unknown session (WWW-Authenticate); 403 missing privilege, a path that
 * leads out of the datastore, a host file written; 404 no such datastore or file; 405
 * other methods; 413 upload too large; 503 too many transfers or vmkernel unreachable;
 * 507 disk full. A download that fails mid-stream is reset (RST_STREAM). An upload cut by
 * the client (reset, disconnect) or refused leaves the target as it was: the temporary
 * file is removed. The call is never completed in call.c's sense: the state here is freed
 * from the cancel callback the server runs when the stream closes; while a worker still
 * uses it, it is freed when the worker is done. One log line per transfer.
 *
 * /host/ also serves the host's config store (docs/config-store.md), through vmkernel's
 * socket: /host/etc/..., /host/var/log/..., /host/var/patch/... are its files and
 * /host/config.kar its whole archive. Both are small and bounded (VMK_CFG_FILE_MAX,
 * VMK_CFG_ARCHIVE_MAX), so they move through memory: a GET asks vmkernel on a worker
 * (cfg_get, cfg_export) and sends the bytes it got; a PUT collects the body (giving the
 * window back at once; 413 past the limit) and at END_STREAM a worker hands it to
 * vmkernel (cfg_put, or cfg_import, which checks the whole archive before anything
 * changes): 201 (a new file) or 204. vmkernel's refusals map to 400 (bad path, contents
 * or archive), 404, 413 (a limit of the store) or 500; no answer is 503.
 *
 * This file holds the transfer's life on the loop: the response (HEADERS, the body's
 * provider, refusals), the steps between workers and the entry points the server calls.
 * files_request.c checks a request (URL, credentials, privileges, limits); files_work.c
 * holds what runs on the thread pool (opening beneath the datastore's root, writing,
 * renaming into place, the config store's requests to vmkernel). files_int.h is the
 * transfer's state they share.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostagent/files_int.h"
#include "lib/heap.h"
#include "lib/time.h"

unsigned hd__file_nxfers; /* live transfers in this process; loop thread only */

static void on_cancel(struct hd_call *call, void *arg);
static void advance(struct xfer *f);

bool hd__file_is_request(const struct hd_call *call)
{
	const char *p = hd_call_header(call, ":path");

	return p && (strncmp(p, FOLDER_PREFIX, sizeof(FOLDER_PREFIX) - 1) == 0 ||
		     strncmp(p, HOST_PREFIX, sizeof(HOST_PREFIX) - 1) == 0);
}

bool hd__file_owns(const struct hd_call *call)
{
	return call->cancel_cb == on_cancel && !call->cancelled;
}

/* ---- the response ---------------------------------------------------------------------- */

static ssize_t read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
		       uint32_t *flags, nghttp2_data_source *src, void *arg);

/* Submits the response HEADERS: status, content-length, and the body's provider when body.
 * Inside nghttp2 callbacks the outer loop sends them; elsewhere the caller flushes, as the
 * last thing it does (the flush may close the stream and free f). */
static void submit(struct xfer *f, int status, uint64_t length, const char *ctype, bool body)
{
	char st[8], len[24];
	nghttp2_nv nva[5];
	nghttp2_data_provider prd = {.source = {.ptr = f->call}, .read_callback = read_cb};
	size_t n = 0;

#define NV(k, val)                                                                            \
	nva[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(val), sizeof(k) - 1, strlen(val), \
				NGHTTP2_NV_FLAG_NONE}
	snprintf(st, sizeof(st), "%d", status);
	snprintf(len, sizeof(len), "%" PRIu64, length);
	NV(":status", st);
	if (status != 204)
		NV("content-length", len);
	if (ctype)
		NV("content-type", ctype);
	if (status == 401)
		NV("www-authenticate", "Basic realm=\"hostd\", charset=\"UTF-8\"");
	if (status == 405)
		NV("allow", "GET, HEAD, PUT");
#undef NV
	f->answered = true;
	f->status = status;
	if (f->kind == K_HEAD)
		body = false; /* the headers of a GET, without its body */
	if (!f->ended)
		f->call->early = true; /* RST_STREAM(NO_ERROR) once the answer is out */
	if (nghttp2_submit_response(f->call->conn->h2, f->call->stream_id, nva, n,
				    body ? &prd : NULL) != 0)
		nghttp2_submit_rst_stream(f->call->conn->h2, NGHTTP2_FLAG_NONE, f->call->stream_id,
					  NGHTTP2_INTERNAL_ERROR);
}

/* Gives n bytes of flow-control window back to the client. */
static void give_back(struct xfer *f, uint64_t n)
{
	if (n > f->unconsumed)
		n = f->unconsumed; /* given back already when the stream went */
	if (!n)
		return;
	if (f->call)
		nghttp2_session_consume(f->call->conn->h2, f->call->stream_id, (size_t)n);
	f->unconsumed -= n;
}

/* Answers with status and a one-line text body; an upload's body is dropped from now on.
 * Does nothing once answered. */

void hd__xfer_refuse(struct xfer *f, int status, const char *fmt, ...)
{
	char text[TEXT_MAX];
	va_list ap;
	int n;

	if (f->answered || !f->call)
		return;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(text) - 2)
		n = sizeof(text) - 2;
	text[n++] = '\n';
	text[n] = '\0';
	f->text = kb_strdup(text);
	f->text_len = f->text ? (size_t)n : 0;
	f->dropping = true;
	give_back(f, f->pend.len);
	kb_buf_reset(&f->pend);
	submit(f, status, f->text_len, "text/plain; charset=utf-8", f->text_len > 0);
}

static ssize_t read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
		       uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct hd_call *call = src->ptr;
	struct xfer *f;
	size_t n;

	(void)h2;
	(void)id;
	(void)arg;
	if (!call || call->cancelled || call->cancel_cb != on_cancel)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	f = call->cancel_arg;
	if (f->text || f->dropping) {
		n = f->text_len - f->text_off;
		n = n < length ? n : length;
		if (n)
			memcpy(buf, f->text + f->text_off, n);
		f->text_off += n;
		if (f->text_off == f->text_len)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (f->roff < f->rlen) {
		n = f->rlen - f->roff;
		n = n < length ? n : length;
		memcpy(buf, f->rbuf + f->roff, n);
		f->roff += n;
		f->done += n;
		if (f->done == f->size)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (f->done == f->size) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	if (f->failed)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	if (!f->busy)
		advance(f);
	return f->failed ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : NGHTTP2_ERR_DEFERRED;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void xfer_free(struct xfer *f)
{
	static const char *const kinds[] = {"GET", "HEAD", "PUT"};
	double secs = (double)(kb_now_ns() - f->started_ns) / 1e9;
	bool short_get = f->kind == K_GET && f->status == 200 && f->done < f->size;
	char answer[32] = "no answer (the client went)";

	if (f->status)
		snprintf(answer, sizeof(answer), "HTTP %d", f->status);

	kb_log(f->v->log, KB_LOG_INFO, "%s: file %s %s by %s: %s, %" PRIu64 " bytes in %.2f s%s",
	       f->peer, kinds[f->kind], f->shown, f->user[0] ? f->user : "-", answer,
	       f->kind == K_PUT ? f->received : f->done, secs,
	       short_get						  ? " (cut short)"
	       : f->kind == K_PUT && f->status != 201 && f->status != 204 ? " (not stored)"
									  : "");
	if (f->fd >= 0)
		close(f->fd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	kb_buf_close(&f->pend);
	kb_buf_close(&f->wbuf);
	kb_free(f->rbuf);
	kb_free(f->text);
	kb_free(f->rel);
	kb_free(f);
	hd__file_nxfers--;
}

static void on_cancel(struct hd_call *call, void *arg)
{
	struct xfer *f = arg;

	(void)call;
	/* The stream is gone: what it received but we did not write goes back to the
	 * connection's window now, while the session still exists. */
	give_back(f, f->unconsumed);
	f->call = NULL;
	advance(f);
}

/* ---- steps on the loop ------------------------------------------------------------------ */

static void after_work(uv_work_t *w, int status);

void hd__xfer_start_work(struct xfer *f, uv_work_cb cb)
{
	f->wstatus = 0;
	f->wtext[0] = '\0';
	f->work.data = f;
	f->busy = true;
	if (uv_queue_work(f->loop, &f->work, cb, after_work) != 0) {
		f->busy = false;
		f->failed = true;
		hd__xfer_wfail(f, 500, "cannot queue file work");
	}
}

static void on_read(uv_fs_t *req)
{
	struct xfer *f = req->data;
	ssize_t r = req->result;
	struct hd_conn *c;

	uv_fs_req_cleanup(req);
	f->busy = false;
	if (!f->call) {
		advance(f);
		return;
	}
	c = f->call->conn;
	if (r <= 0) {
		kb_log(f->v->log, KB_LOG_WARN, "%s: reading %s: %s", f->peer, f->shown,
		       r < 0 ? uv_strerror((int)r) : "the file became shorter");
		f->failed = true;
	} else {
		f->rlen = (size_t)r;
		f->roff = 0;
		f->rpos += (uint64_t)r;
	}
	nghttp2_session_resume_data(c->h2, f->call->stream_id);
	hd__conn_flush(c); /* last: may free f */
}

/* A PUT to the store: what arrived joins the body (the window goes back at once: the body
 * is bounded), and at the end the body goes to vmkernel. */
static void store_collect(struct xfer *f)
{
	if (f->pend.len) {
		uint64_t n = f->pend.len;

		if (f->wbuf.len + n > hd__xfer_store_limit(f)) {
			hd__xfer_refuse(f, 413, "%s takes at most %" PRIu64 " bytes", f->rel,
					hd__xfer_store_limit(f));
			return;
		}
		if (kb_buf_append(&f->wbuf, f->pend.data, n) != 0) {
			hd__xfer_refuse(f, 503, "out of memory");
			return;
		}
		kb_buf_reset(&f->pend);
		give_back(f, n);
	}
	if (!f->ended)
		return;
	if (f->have_len && f->received != f->declared) {
		hd__xfer_refuse(f, 400,
				"the body has %" PRIu64 " bytes but content-length says %" PRIu64,
				f->received, f->declared);
		return;
	}
	f->phase = P_FINISHING;
	hd__xfer_start_work(f, hd__xfer_store_write_work);
}

/* The next thing to do, when nothing is in flight. */
static void advance(struct xfer *f)
{
	if (f->busy)
		return;
	if (f->tmp_made && (!f->call || f->dropping)) {
		hd__xfer_start_work(f, hd__xfer_discard_work);
		return;
	}
	if (!f->call) {
		xfer_free(f);
		return;
	}
	if (f->phase != P_STREAMING)
		return;
	if (f->kind == K_GET) {
		uint64_t left = f->size - f->rpos;
		uv_buf_t b;

		if (f->failed || f->roff < f->rlen || left == 0)
			return; /* a chunk is still being sent, or all was read */
		if (!f->rbuf && !(f->rbuf = kb_malloc(HD_FILE_CHUNK))) {
			f->failed = true;
			return;
		}
		b = uv_buf_init((char *)f->rbuf,
				left < HD_FILE_CHUNK ? (unsigned)left : HD_FILE_CHUNK);
		f->fs.data = f;
		f->busy = true;
		if (uv_fs_read(f->loop, &f->fs, f->fd, &b, 1, (int64_t)f->rpos, on_read) != 0) {
			f->busy = false;
			f->failed = true;
		}
		return;
	}
	if (f->kind != K_PUT || f->dropping)
		return;
	if (f->store) {
		store_collect(f);
		return;
	}
	if (f->pend.len) {
		struct kb_buf t = f->wbuf;

		f->wbuf = f->pend;
		f->pend = t;
		kb_buf_reset(&f->pend);
		hd__xfer_start_work(f, hd__xfer_write_work);
		return;
	}
	if (f->ended) {
		if (f->have_len && f->received != f->declared) {
			hd__xfer_refuse(f, 400,
					"the body has %" PRIu64
					" bytes but content-length says %" PRIu64,
					f->received, f->declared);
			advance(f);
			return;
		}
		f->phase = P_FINISHING;
		hd__xfer_start_work(f, hd__xfer_finish_work);
	}
}

static void opened(struct xfer *f)
{
	if (f->wstatus) {
		hd__xfer_refuse(f, f->wstatus, "%s", f->wtext);
		return;
	}
	f->phase = P_STREAMING;
	if (f->kind == K_PUT)
		return;
	submit(f, 200, f->size, "application/octet-stream", f->kind == K_GET);
	if (f->kind == K_HEAD)
		f->phase = P_DONE;
}

static void after_work(uv_work_t *w, int status)
{
	struct xfer *f = w->data;
	struct hd_conn *c = f->call ? f->call->conn : NULL;
	bool wrote = f->phase == P_STREAMING && f->kind == K_PUT;

	f->busy = false;
	if (status == UV_ECANCELED && !f->wstatus)
		hd__xfer_wfail(f, 500, "the work was cancelled");
	if (wrote) {
		uint64_t n = f->wbuf.len;

		kb_buf_reset(&f->wbuf);
		give_back(f, n);
	}
	if (f->phase == P_AUTH) {
		hd__xfer_auth_checked(f); /* the outcome counts even when the client is gone */
	} else if (f->call) {
		if (f->phase == P_OPENING)
			opened(f);
		else if (f->wstatus)
			hd__xfer_refuse(f, f->wstatus, "%s", f->wtext);
		else if (f->phase == P_FINISHING && !f->answered) {
			f->phase = P_DONE;
			submit(f, f->stored, 0, NULL, false);
		}
	}
	advance(f); /* may free f when the stream is gone (then c is NULL) */
	if (c)
		hd__conn_flush(c); /* last: may free f */
}

void hd__file_headers_done(struct hd_call *call)
{
	const char *method = hd_call_header(call, ":method");
	const char *url = hd_call_header(call, ":path");
	struct xfer *f = kb_calloc(1, sizeof(*f));

	if (!f) {
		nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
					  NGHTTP2_INTERNAL_ERROR);
		return;
	}
	hd__file_nxfers++;
	f->call = call;
	f->v = hd_call_server_data(call);
	f->loop = call->conn->srv->loop;
	f->fd = f->dirfd = -1;
	f->started_ns = kb_now_ns();
	f->phase = P_OPENING;
	f->host = strncmp(url, HOST_PREFIX, sizeof(HOST_PREFIX) - 1) == 0;
	kb_buf_init(&f->pend, 0);
	kb_buf_init(&f->wbuf, 0);
	snprintf(f->peer, sizeof(f->peer), "%s", hd_call_peer(call));
	snprintf(f->shown, sizeof(f->shown), "%s", url);
	for (char *s = f->shown; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	call->dispatched = true; /* so that the stream's close runs on_cancel */
	hd_call_on_cancel(call, on_cancel, f);
	if (!hd__xfer_check_method(f, method ? method : ""))
		return;
	if (hd__xfer_authenticate(f, call) == 0)
		hd__xfer_authenticated(f);
}

void hd__file_data(struct hd_call *call, const uint8_t *p, size_t n)
{
	struct xfer *f = call->cancel_arg;

	if (f->kind != K_PUT || f->dropping || f->answered || f->phase > P_STREAMING) {
		nghttp2_session_consume(call->conn->h2, call->stream_id, n);
		return;
	}
	f->received += n;
	f->unconsumed += n;
	if (f->received > (f->have_len ? f->declared : HD_FILE_PUT_MAX)) {
		if (f->have_len)
			hd__xfer_refuse(
			    f, 400, "the body is longer than content-length (%" PRIu64 " bytes)",
			    f->declared);
		else
			hd__xfer_refuse(f, 413, "an upload has at most %" PRIu64 " bytes",
					HD_FILE_PUT_MAX);
		give_back(f, n);
		advance(f);
		return;
	}
	if (kb_buf_append(&f->pend, p, n) != 0) {
		give_back(f, n);
		hd__xfer_refuse(f, 503, "out of memory");
		advance(f);
		return;
	}
	advance(f);
}

void hd__file_end_of_request(struct hd_call *call)
{
	struct xfer *f = call->cancel_arg;

	f->ended = true;
	advance(f);
}
