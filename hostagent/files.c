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
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hostagent/files.h"
#include "hostagent/internal.h"
#include "hostagent/vim.h"
#include "kernel/cfg/cfg.h" /* the store's limits and archive name (macros only) */
#include "lib/buf.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmk.pb-c.h"

#define FOLDER_PREFIX "/folder/"
#define HOST_PREFIX   "/host/"
#define TEXT_MAX      512
#define DS_REPLY_MAX  (16u << 20)
#define CFG_REPLY_MAX (1u << 20)

/* The host files served (read-only) from hostd's state directory. Never keys, passwords,
 * the user database or sockets. */
static const char *const host_files[] = {
    "inventory.conf", "network.conf", "vmkernel.log", "vmkernel.out",
    "hostd.log",      "hostd.out",    "clusterd.log", "clusterd.out",
};

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

static unsigned nxfers; /* live transfers in this process; loop thread only */

static void on_cancel(struct hd_call *call, void *arg);
static void advance(struct xfer *f);
static void auth_checked(struct xfer *f);
static void start_work(struct xfer *f, uv_work_cb cb);

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
static void refuse(struct xfer *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(struct xfer *f, int status, const char *fmt, ...)
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
	nxfers--;
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

/* ---- workers ----------------------------------------------------------------------------- */

static void wfail(struct xfer *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wfail(struct xfer *f, int status, const char *fmt, ...)
{
	va_list ap;

	f->wstatus = status;
	va_start(ap, fmt);
	vsnprintf(f->wtext, sizeof(f->wtext), fmt, ap);
	va_end(ap);
}

static int open_beneath(int root, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .mode = mode,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, root, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* The HTTP status and text of a failed open of what (a path on ds). */
static void open_failed(struct xfer *f, int err, const char *what)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
		wfail(f, 404, "%s does not exist on datastore %s", what, f->ds);
		break;
	case -EXDEV:
	case -ELOOP:
		wfail(f, 403, "%s leads outside datastore %s: refused", what, f->ds);
		break;
	case -EACCES:
	case -EPERM:
		wfail(f, 403, "%s on datastore %s: %s", what, f->ds, strerror(-err));
		break;
	case -ENAMETOOLONG:
		wfail(f, 400, "%s: name too long", what);
		break;
	default:
		wfail(f, 500, "%s on datastore %s: %s", what, f->ds, strerror(-err));
	}
}

/* The root directory of datastore f->ds, asked of vmkernel, opened into *out. */
static int open_datastore(struct xfer *f, int *out)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreList dl = KEEL__VMK__VMK_DATASTORE_LIST__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	size_t len = 0;
	uint8_t *p;
	int fd = -1;

	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST;
	rq.datastore_list = &dl;
	p = hd_backend_call(f->v->vmk_sock, &rq.base, 30, DS_REPLY_MAX, &len);
	if (p)
		rp = keel__vmk__vmk_reply__unpack(NULL, len, p);
	kb_free(p);
	if (!rp || rp->code) {
		wfail(f, 503, "cannot list the datastores: %s",
		      rp ? rp->error : "vmkernel does not answer");
		goto out;
	}
	for (size_t i = 0; i < rp->n_datastores; i++) {
		if (strcmp(rp->datastores[i]->name, f->ds) != 0)
			continue;
		fd = open(rp->datastores[i]->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			wfail(f, 500, "datastore %s: %s: %s", f->ds, rp->datastores[i]->path,
			      strerror(errno));
		goto out;
	}
	wfail(f, 404, "this host has no datastore %s", f->ds);
out:
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	*out = fd;
	return fd < 0 ? -1 : 0;
}

/* ---- the config store: vmkernel's cfg_* requests, on workers --------------------------- */

/* The most bytes a PUT of f may carry. */
static uint64_t store_limit(const struct xfer *f)
{
	return f->archive ? VMK_CFG_ARCHIVE_MAX : VMK_CFG_FILE_MAX;
}

/* One request to vmkernel: its reply (caller frees), or NULL after wfail. */
static Keel__Vmk__VmkReply *store_ask(struct xfer *f, const Keel__Vmk__VmkRequest *rq)
{
	Keel__Vmk__VmkReply *rp = NULL;
	size_t len = 0;
	uint8_t *p = hd_backend_call(f->v->vmk_sock, &rq->base, 30, CFG_REPLY_MAX, &len);

	if (p)
		rp = keel__vmk__vmk_reply__unpack(NULL, len, p);
	kb_free(p);
	if (!rp)
		wfail(f, 503, "the config store: vmkernel does not answer");
	return rp;
}

/* The HTTP status of a refusal by the store. */
static int store_status(int code)
{
	switch (code) {
	case KB_ECONFIG:
	case KB_EPROTO:
	case KB_ECHECKSUM:
	case KB_EVERSION:
	case KB_ETRUNCATED:
		return 400;
	case KB_ENOTFOUND:
		return 404;
	case KB_ETOOBIG:
		return 413;
	default:
		return 500;
	}
}

/* A GET or HEAD: the file (or the archive) into f->rbuf, all of it. */
static void store_read(struct xfer *f)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	Keel__Vmk__VmkCfgExport e = KEEL__VMK__VMK_CFG_EXPORT__INIT;
	Keel__Vmk__VmkReply *rp;

	if (f->archive) {
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_EXPORT;
		rq.cfg_export = &e;
	} else {
		g.path = f->rel;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
		rq.cfg_get = &g;
	}
	rp = store_ask(f, &rq);
	if (!rp)
		return;
	if (rp->code) {
		wfail(f, store_status(rp->code), "%s", rp->error);
	} else if (rp->cfg_data.len && !(f->rbuf = kb_malloc(rp->cfg_data.len))) {
		wfail(f, 500, "out of memory");
	} else {
		if (rp->cfg_data.len)
			memcpy(f->rbuf, rp->cfg_data.data, rp->cfg_data.len);
		f->size = f->rlen = f->rpos = rp->cfg_data.len;
		f->roff = 0;
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* Whether the store holds f->rel now (for 201 or 204). */
static bool store_has(struct xfer *f)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgList l = KEEL__VMK__VMK_CFG_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	bool has = false;

	l.prefix = f->rel;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_LIST;
	rq.cfg_list = &l;
	rp = store_ask(f, &rq);
	if (!rp)
		return false;
	for (size_t i = 0; i < rp->n_cfg_files && !rp->code; i++)
		has = has || strcmp(rp->cfg_files[i]->path, f->rel) == 0;
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return has;
}

/* A PUT's whole body (in f->wbuf) goes to the store: cfg_put, or cfg_import. */
static void store_write_work(uv_work_t *w)
{
	struct xfer *f = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgPut put = KEEL__VMK__VMK_CFG_PUT__INIT;
	Keel__Vmk__VmkCfgImport im = KEEL__VMK__VMK_CFG_IMPORT__INIT;
	Keel__Vmk__VmkReply *rp;
	bool existed = true;

	if (f->archive) {
		im.archive.data = f->wbuf.data;
		im.archive.len = f->wbuf.len;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_IMPORT;
		rq.cfg_import = &im;
	} else {
		existed = store_has(f);
		if (f->wstatus)
			return;
		put.path = f->rel;
		put.data.data = f->wbuf.data;
		put.data.len = f->wbuf.len;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT;
		rq.cfg_put = &put;
	}
	rp = store_ask(f, &rq);
	if (!rp)
		return;
	if (rp->code) {
		wfail(f, store_status(rp->code), "%s", rp->error);
	} else {
		f->done = f->wbuf.len;
		f->stored = existed ? 204 : 201;
		if (rp->cfg_status && rp->cfg_status->dirty)
			kb_log(f->v->log, KB_LOG_WARN,
			       "%s: %s is in the config store but not saved to disk yet: %s",
			       f->peer, f->shown, rp->cfg_status->last_save_error);
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* A PUT to the store: what arrived joins the body (the window goes back at once: the body
 * is bounded), and at the end the body goes to vmkernel. */
static void store_collect(struct xfer *f)
{
	if (f->pend.len) {
		uint64_t n = f->pend.len;

		if (f->wbuf.len + n > store_limit(f)) {
			refuse(f, 413, "%s takes at most %" PRIu64 " bytes", f->rel,
			       store_limit(f));
			return;
		}
		if (kb_buf_append(&f->wbuf, f->pend.data, n) != 0) {
			refuse(f, 503, "out of memory");
			return;
		}
		kb_buf_reset(&f->pend);
		give_back(f, n);
	}
	if (!f->ended)
		return;
	if (f->have_len && f->received != f->declared) {
		refuse(f, 400, "the body has %" PRIu64 " bytes but content-length says %" PRIu64,
		       f->received, f->declared);
		return;
	}
	f->phase = P_FINISHING;
	start_work(f, store_write_work);
}

/* Opens the file to send: regular files only (O_NONBLOCK so a FIFO cannot hang us). */
static void open_for_read(struct xfer *f, int root)
{
	struct stat st;
	int fd;

	if (f->host)
		fd = openat(root, f->rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	else
		fd = open_beneath(root, f->rel, O_RDONLY | O_NONBLOCK, 0);
	if (f->host && fd < 0)
		fd = -errno;
	if (fd < 0) {
		if (f->host)
			wfail(f, fd == -ENOENT ? 404 : 500, "host file %s: %s", f->rel,
			      fd == -ENOENT ? "not present on this host" : strerror(-fd));
		else
			open_failed(f, fd, f->rel);
		return;
	}
	if (fstat(fd, &st) != 0) {
		wfail(f, 500, "%s: %s", f->rel, strerror(errno));
		close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		wfail(f, 400, "%s is %s, not a file", f->rel,
		      S_ISDIR(st.st_mode) ? "a directory" : "something else");
		close(fd);
		return;
	}
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
}

/* Opens the target's directory and makes the temporary file in it. */
static void open_for_write(struct xfer *f, int root)
{
	char *slash = strrchr(f->rel, '/');
	uint8_t r[8];
	struct stat st;
	int dfd;

	snprintf(f->base, sizeof(f->base), "%s", slash ? slash + 1 : f->rel);
	if (slash) {
		*slash = '\0';
		dfd = open_beneath(root, f->rel, O_RDONLY | O_DIRECTORY, 0);
		*slash = '/';
	} else {
		dfd = open_beneath(root, ".", O_RDONLY | O_DIRECTORY, 0);
	}
	if (dfd < 0) {
		open_failed(f, dfd, "the directory of the path");
		return;
	}
	if (fstatat(dfd, f->base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		wfail(f, 400, "%s is a directory", f->rel);
		close(dfd);
		return;
	}
	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		memset(r, 0, sizeof(r));
	snprintf(f->tmp, sizeof(f->tmp), ".%s.%02x%02x%02x%02x%02x%02x%02x%02x.keel-upload",
		 f->base, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	f->fd = openat(dfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		open_failed(f, -errno, f->rel);
		close(dfd);
		return;
	}
	f->dirfd = dfd;
	f->tmp_made = true;
}

static void open_work(uv_work_t *w)
{
	struct xfer *f = w->data;
	int root;

	if (f->store) {
		if (f->kind != K_PUT)
			store_read(f);
		return; /* a PUT collects its body first */
	}
	if (f->host) {
		root = open(f->v->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (root < 0) {
			wfail(f, 500, "state directory: %s", strerror(errno));
			return;
		}
	} else if (open_datastore(f, &root) < 0) {
		return;
	}
	if (f->kind == K_PUT)
		open_for_write(f, root);
	else
		open_for_read(f, root);
	close(root);
}

static void auth_work(uv_work_t *w)
{
	struct xfer *f = w->data;

	f->auth_ok =
	    hostd_auth_password_verify(f->known ? f->hash : f->v->dummy_hash, f->password) &&
	    f->known;
	OPENSSL_cleanse(f->password, sizeof(f->password));
}

static int full_status(int err)
{
	return err == -ENOSPC || err == -EDQUOT ? 507 : 500;
}

static void write_work(uv_work_t *w)
{
	struct xfer *f = w->data;
	size_t off = 0;

	while (off < f->wbuf.len) {
		ssize_t n =
		    pwrite(f->fd, f->wbuf.data + off, f->wbuf.len - off, (off_t)(f->done + off));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;

			wfail(f, full_status(err), "writing %s on datastore %s: %s", f->rel, f->ds,
			      err == -ENOSPC ? "no space left on the datastore" : strerror(-err));
			break;
		}
		off += (size_t)n;
	}
	f->done += off;
}

static void finish_work(uv_work_t *w)
{
	struct xfer *f = w->data;
	struct stat st;
	bool existed;

	if (fsync(f->fd) != 0) {
		wfail(f, full_status(-errno), "storing %s on datastore %s: %s", f->rel, f->ds,
		      strerror(errno));
		return;
	}
	existed = fstatat(f->dirfd, f->base, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat(f->dirfd, f->tmp, f->dirfd, f->base) != 0) {
		wfail(f, errno == EISDIR ? 400 : full_status(-errno),
		      "storing %s on datastore %s: %s", f->rel, f->ds, strerror(errno));
		return;
	}
	f->tmp_made = false;
	fsync(f->dirfd);
	f->stored = existed ? 204 : 201;
}

static void discard_work(uv_work_t *w)
{
	struct xfer *f = w->data;

	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	unlinkat(f->dirfd, f->tmp, 0);
	f->tmp_made = false;
}

/* ---- steps on the loop ------------------------------------------------------------------ */

static void after_work(uv_work_t *w, int status);

static void start_work(struct xfer *f, uv_work_cb cb)
{
	f->wstatus = 0;
	f->wtext[0] = '\0';
	f->work.data = f;
	f->busy = true;
	if (uv_queue_work(f->loop, &f->work, cb, after_work) != 0) {
		f->busy = false;
		f->failed = true;
		wfail(f, 500, "cannot queue file work");
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

/* The next thing to do, when nothing is in flight. */
static void advance(struct xfer *f)
{
	if (f->busy)
		return;
	if (f->tmp_made && (!f->call || f->dropping)) {
		start_work(f, discard_work);
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
		start_work(f, write_work);
		return;
	}
	if (f->ended) {
		if (f->have_len && f->received != f->declared) {
			refuse(f, 400,
			       "the body has %" PRIu64 " bytes but content-length says %" PRIu64,
			       f->received, f->declared);
			advance(f);
			return;
		}
		f->phase = P_FINISHING;
		start_work(f, finish_work);
	}
}

static void opened(struct xfer *f)
{
	if (f->wstatus) {
		refuse(f, f->wstatus, "%s", f->wtext);
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
		wfail(f, 500, "the work was cancelled");
	if (wrote) {
		uint64_t n = f->wbuf.len;

		kb_buf_reset(&f->wbuf);
		give_back(f, n);
	}
	if (f->phase == P_AUTH) {
		auth_checked(f); /* the outcome counts even when the client is gone */
	} else if (f->call) {
		if (f->phase == P_OPENING)
			opened(f);
		else if (f->wstatus)
			refuse(f, f->wstatus, "%s", f->wtext);
		else if (f->phase == P_FINISHING && !f->answered) {
			f->phase = P_DONE;
			submit(f, f->stored, 0, NULL, false);
		}
	}
	advance(f); /* may free f when the stream is gone (then c is NULL) */
	if (c)
		hd__conn_flush(c); /* last: may free f */
}

/* ---- the request ------------------------------------------------------------------------- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes %XX escapes of s[0..n) into a new string. NULL with *why on a bad escape, an
 * escaped NUL, or more than HD_FILE_PATH_MAX bytes. Caller frees. */
static char *pct_decode(const char *s, size_t n, const char **why)
{
	char *out;
	size_t o = 0;

	if (n > 3 * HD_FILE_PATH_MAX) {
		*why = "the path is too long";
		return NULL;
	}
	out = kb_malloc(n + 1);
	if (!out) {
		*why = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n) {
			*why = "a bad %-escape in the URL";
			goto fail;
		}
		hi = hexval(s[i + 1]);
		lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			*why = hi == 0 && lo == 0 ? "NUL in the URL" : "a bad %-escape in the URL";
			goto fail;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	if (o > HD_FILE_PATH_MAX) {
		*why = "the path is too long";
		goto fail;
	}
	return out;
fail:
	kb_free(out);
	return NULL;
}

/* Why path (decoded, below a datastore) is refused, or NULL. */
static const char *path_problem(const char *path)
{
	const char *p = path;

	if (!*p)
		return "the path is empty";
	for (const char *q = p; *q; q++) {
		if (*q == '\\')
			return "backslashes are not allowed in a path";
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return "control characters are not allowed in a path";
	}
	while (*p) {
		const char *e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);

		if (n == 0)
			return "empty path components (\"//\", a leading or trailing \"/\") are not allowed";
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return "\".\" and \"..\" are not allowed in a path";
		if (n > 255)
			return "a path component is longer than 255 bytes";
		if (!*e)
			break;
		p = e + 1;
		if (!*p)
			return "empty path components (\"//\", a leading or trailing \"/\") are not allowed";
	}
	return NULL;
}

/* Splits "/folder/<path>?<query>" into f->rel and f->ds. false after refusing. */
static bool parse_folder(struct xfer *f, const char *url)
{
	const char *p = url + sizeof(FOLDER_PREFIX) - 1;
	const char *q = strchr(p, '?');
	const char *why = NULL, *bad;
	char *ds = NULL;

	f->rel = pct_decode(p, q ? (size_t)(q - p) : strlen(p), &why);
	if (!f->rel) {
		refuse(f, 400, "%s", why);
		return false;
	}
	if ((bad = path_problem(f->rel))) {
		refuse(f, 400, "bad datastore path: %s", bad);
		return false;
	}
	for (const char *a = q ? q + 1 : NULL; a && *a;) {
		const char *e = strchrnul(a, '&');

		if (strncmp(a, "dsName=", 7) == 0) {
			kb_free(ds);
			ds = pct_decode(a + 7, (size_t)(e - a - 7), &why);
			if (!ds) {
				refuse(f, 400, "dsName: %s", why);
				return false;
			}
		}
		a = *e ? e + 1 : e;
	}
	if (!ds || !ds[0]) {
		kb_free(ds);
		refuse(f, 400, "the datastore is missing: add ?dsName=<datastore> to the URL");
		return false;
	}
	snprintf(f->ds, sizeof(f->ds), "ds-%s", ds);
	if (strlen(ds) + 3 > HOSTD_AUTH_ENTITY_MAX || !hostd_auth_entity_valid(f->ds)) {
		kb_free(ds);
		refuse(f, 400, "bad datastore name (want 1 or more of [A-Za-z0-9_.:-])");
		return false;
	}
	snprintf(f->ds, sizeof(f->ds), "%s", ds);
	kb_free(ds);
	return true;
}

/* "/host/<file>" into f->rel. false after refusing. */
static bool parse_host(struct xfer *f, const char *url)
{
	const char *p = url + sizeof(HOST_PREFIX) - 1;
	const char *q = strchr(p, '?');
	const char *why = NULL;

	f->rel = pct_decode(p, q ? (size_t)(q - p) : strlen(p), &why);
	if (!f->rel) {
		refuse(f, 400, "%s", why);
		return false;
	}
	for (size_t i = 0; i < sizeof(host_files) / sizeof(host_files[0]); i++)
		if (strcmp(f->rel, host_files[i]) == 0)
			return true;
	if (strcmp(f->rel, VMK_CFG_ARCHIVE) == 0) {
		f->store = f->archive = true;
		return true;
	}
	if ((strncmp(f->rel, "etc/", 4) == 0 || strncmp(f->rel, "var/", 4) == 0) &&
	    !path_problem(f->rel)) {
		f->store = true; /* vmkernel checks the rest of the name */
		return true;
	}
	refuse(f, 404,
	       "%.200s is not a host file served over HTTPS (inventory.conf, network.conf, "
	       "vmkernel.log, the daemons' logs, config.kar and the config store's etc/, "
	       "var/log/ and var/patch/ files are)",
	       path_problem(f->rel) ? "that name" : f->rel);
	return false;
}

/* The address part of the peer "A.B.C.D:port" (login failures count per address). */
static void source_of(struct xfer *f)
{
	const char *colon = strrchr(f->peer, ':');
	size_t n = colon ? (size_t)(colon - f->peer) : strlen(f->peer);

	if (n >= sizeof(f->source))
		n = sizeof(f->source) - 1;
	memcpy(f->source, f->peer, n);
	f->source[n] = '\0';
}

/* "Authorization: Basic base64(user:password)": the rate limit, then the password on a
 * worker (as Login). 1 when the worker was started, -1 after refusing. */
static int basic_auth(struct xfer *f, const char *value)
{
	const struct hostd_auth_user *u;
	unsigned char dec[3 * 128 + 4];
	uint64_t retry = 0;
	size_t len = strlen(value + 6), pad = 0;
	char *colon;
	int n;

	source_of(f);
	if (hostd_auth_ratelimit_check(f->v->rl, f->source, kb_now_ns(), &retry) != 0) {
		kb_log(f->v->log, KB_LOG_WARN, "%s: file request refused: too many failed logins",
		       f->peer);
		refuse(f, 401, "too many failed logins from %s: try again in %llu s", f->source,
		       (unsigned long long)((retry + 999999999u) / 1000000000u));
		return -1;
	}
	n = len <= 4 * 128 && len % 4 == 0
		? EVP_DecodeBlock(dec, (const unsigned char *)value + 6, (int)len)
		: -1;
	while (len > 0 && value[6 + len - 1] == '=' && pad < 2) {
		len--;
		pad++;
	}
	if (n >= 0)
		n -= (int)pad;
	if (n > 0)
		dec[n] = '\0';
	colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
	if (!colon || memchr(dec, '\0', (size_t)n) || colon - (char *)dec > HOSTD_AUTH_NAME_MAX ||
	    strlen(colon + 1) > HOSTD_AUTH_PASSWORD_MAX) {
		OPENSSL_cleanse(dec, sizeof(dec));
		hostd_auth_ratelimit_fail(f->v->rl, f->source, kb_now_ns());
		refuse(f, 401, "incorrect user name or password");
		return -1;
	}
	*colon = '\0';
	snprintf(f->user, sizeof(f->user), "%s", (char *)dec);
	snprintf(f->password, sizeof(f->password), "%s", colon + 1);
	OPENSSL_cleanse(dec, sizeof(dec));
	u = hostd_auth_user_get(f->v->db, f->user);
	f->known = u != NULL;
	if (u)
		snprintf(f->hash, sizeof(f->hash), "%s", u->hash);
	f->phase = P_AUTH;
	start_work(f, auth_work);
	if (f->wstatus) {
		OPENSSL_cleanse(f->password, sizeof(f->password));
		refuse(f, 503, "cannot check the password now");
		return -1;
	}
	return 1;
}

/* The caller's user into f->user: the session of x-keel-session, else Basic
 * authentication. 0 when known, 1 while the password is being checked, -1 after
 * answering 401. */
static int authenticate(struct xfer *f, struct hd_call *call)
{
	struct hostd_auth_session_info info;
	const char *token = hd_call_header(call, HD_SESSION_HEADER);
	const char *basic = hd_call_header(call, "authorization");

	if (!token && basic && strncasecmp(basic, "Basic ", 6) == 0)
		return basic_auth(f, basic);
	if (!token) {
		refuse(f, 401,
		       "log in first: send the session token as the %s header, or a user "
		       "and password with Basic authentication",
		       HD_SESSION_HEADER);
		return -1;
	}
	if (hostd_auth_session_lookup(f->v->sessions, token, kb_now_ns(), &info) != 0) {
		refuse(f, 401, "the session has expired or does not exist");
		return -1;
	}
	snprintf(f->user, sizeof(f->user), "%s", info.user);
	return 0;
}

static bool authorize(struct xfer *f, const char *priv)
{
	char host[40], ds[HOSTD_AUTH_ENTITY_MAX + 8];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, ds};
	size_t n = f->host ? 2 : 3;

	snprintf(host, sizeof(host), "host-%" PRIu64, f->v->host_id);
	snprintf(ds, sizeof(ds), "ds-%s", f->ds);
	if (hostd_auth_check(f->v->db, f->user, path, n, priv))
		return true;
	kb_log(f->v->log, KB_LOG_INFO, "%s: file %s: user %s lacks %s on %s", f->peer, f->shown,
	       f->user, priv, path[n - 1]);
	refuse(f, 403, "user %s lacks privilege %s on %s", f->user, priv, path[n - 1]);
	return false;
}

/* The config store: its logs are read with System.Read; etc/keel/network.conf is the
 * host's networking (Host.Config.Network); every other file, and the archive (the whole
 * configuration), takes both Host.Config.Network and Host.Config.Storage. */
static bool authorize_store(struct xfer *f)
{
	if (strncmp(f->rel, "var/log/", 8) == 0 && f->kind != K_PUT)
		return authorize(f, "System.Read");
	if (strcmp(f->rel, "etc/keel/network.conf") == 0)
		return authorize(f, "Host.Config.Network");
	return authorize(f, "Host.Config.Network") && authorize(f, "Host.Config.Storage");
}

static unsigned conn_transfers(struct hd_conn *c)
{
	struct kb_list *pos;
	unsigned n = 0;

	kb_list_for_each(pos, &c->calls)
	{
		if (hd__file_owns(kb_list_entry(pos, struct hd_call, link)))
			n++;
	}
	return n;
}

static bool check_method(struct xfer *f, const char *method)
{
	if (strcmp(method, "GET") == 0)
		f->kind = K_GET;
	else if (strcmp(method, "HEAD") == 0)
		f->kind = K_HEAD;
	else if (strcmp(method, "PUT") == 0)
		f->kind = K_PUT;
	else {
		f->kind = K_GET;
		refuse(f, 405, "method %.16s is not allowed on files: GET, HEAD or PUT", method);
		return false;
	}
	return true;
}

/* Checks the request of an authenticated user; false after refusing it. */
static bool check(struct xfer *f, struct hd_call *call, const char *url)
{
	const char *cl;

	if (f->host ? !parse_host(f, url) : !parse_folder(f, url))
		return false;
	if (f->host && !f->store && f->kind == K_PUT) {
		refuse(f, 403, "%s cannot be replaced over HTTPS; change it through the API",
		       f->rel);
		return false;
	}
	if (f->store ? !authorize_store(f)
		     : !authorize(f, f->host		? "System.Read"
				     : f->kind == K_PUT ? "Datastore.FileManagement"
							: "Datastore.Browse"))
		return false;
	if (f->store && f->kind == K_PUT && (cl = hd_call_header(call, "content-length")) &&
	    strtoull(cl, NULL, 10) > store_limit(f)) {
		refuse(f, 413, "%s takes at most %" PRIu64 " bytes", f->rel, store_limit(f));
		return false;
	}
	if (f->kind == K_PUT && (cl = hd_call_header(call, "content-length"))) {
		char *end;

		errno = 0;
		f->declared = strtoull(cl, &end, 10);
		if (!*cl || *end || errno || *cl == '-') {
			refuse(f, 400, "bad content-length");
			return false;
		}
		f->have_len = true;
		if (f->declared > HD_FILE_PUT_MAX) {
			refuse(f, 413, "an upload has at most %" PRIu64 " bytes", HD_FILE_PUT_MAX);
			return false;
		}
	}
	if (conn_transfers(call->conn) > HD_FILE_PER_CONN || nxfers > HD_FILE_PER_SERVER) {
		refuse(f, 503, "too many file transfers at once (%u per connection, %u in all)",
		       HD_FILE_PER_CONN, HD_FILE_PER_SERVER);
		return false;
	}
	return true;
}

/* The user is known: the rest of the checks, then the open on a worker. */
static void authenticated(struct xfer *f)
{
	if (!check(f, f->call, hd_call_header(f->call, ":path")))
		return;
	f->phase = P_OPENING;
	start_work(f, open_work);
	if (f->wstatus)
		refuse(f, f->wstatus, "%s", f->wtext);
}

/* Basic authentication's password was checked. */
static void auth_checked(struct xfer *f)
{
	uint64_t now = kb_now_ns();

	if (!f->auth_ok) {
		int locked = hostd_auth_ratelimit_fail(f->v->rl, f->source, now);

		kb_log(f->v->log, KB_LOG_WARN, "%s: file request as %s refused: %s%s", f->peer,
		       f->user, f->known ? "wrong password" : "no such user",
		       locked ? "; further attempts from there refused for a while" : "");
		f->user[0] = '\0';
		refuse(f, 401, "incorrect user name or password");
		return;
	}
	hostd_auth_ratelimit_success(f->v->rl, f->source);
	if (f->call)
		authenticated(f);
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
	nxfers++;
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
	if (!check_method(f, method ? method : ""))
		return;
	if (authenticate(f, call) == 0)
		authenticated(f);
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
			refuse(f, 400, "the body is longer than content-length (%" PRIu64 " bytes)",
			       f->declared);
		else
			refuse(f, 413, "an upload has at most %" PRIu64 " bytes", HD_FILE_PUT_MAX);
		give_back(f, n);
		advance(f);
		return;
	}
	if (kb_buf_append(&f->pend, p, n) != 0) {
		give_back(f, n);
		refuse(f, 503, "out of memory");
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
