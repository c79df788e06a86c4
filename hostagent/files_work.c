/*
 * A file transfer's work on libuv's thread pool (files.c, docs/hostd-files.md): the
 * datastore's root asked of vmkernel and the file opened beneath it with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), the host file opened in the state directory,
 * an upload's temporary file made, written, fsynced and renamed into place (or removed),
 * the password of Basic authentication checked, and the config store's files and archive
 * read from and written to vmkernel.
 *
 * A worker touches only its transfer and reports through f->wstatus and f->wtext (the
 * HTTP status and text to refuse with; wfail), which the loop reads in after_work.
 * Failure modes: 400 (not a file, a directory), 403 (outside the datastore, no
 * permission), 404 (no such datastore or file), 413 (a limit of the store), 503
 * (vmkernel does not answer), 507 (disk full), else 500.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "hostagent/files_int.h"
#include "kernel/cfg/cfg.h" /* the store's limits (macros only) */
#include "lib/heap.h"
#include "vmk.pb-c.h"

#define DS_REPLY_MAX  (16u << 20)
#define CFG_REPLY_MAX (1u << 20)

/* ---- workers ----------------------------------------------------------------------------- */

void hd__xfer_wfail(struct xfer *f, int status, const char *fmt, ...)
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
		hd__xfer_wfail(f, 404, "%s does not exist on datastore %s", what, f->ds);
		break;
	case -EXDEV:
	case -ELOOP:
		hd__xfer_wfail(f, 403, "%s leads outside datastore %s: refused", what, f->ds);
		break;
	case -EACCES:
	case -EPERM:
		hd__xfer_wfail(f, 403, "%s on datastore %s: %s", what, f->ds, strerror(-err));
		break;
	case -ENAMETOOLONG:
		hd__xfer_wfail(f, 400, "%s: name too long", what);
		break;
	default:
		hd__xfer_wfail(f, 500, "%s on datastore %s: %s", what, f->ds, strerror(-err));
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
		hd__xfer_wfail(f, 503, "cannot list the datastores: %s",
			       rp ? rp->error : "vmkernel does not answer");
		goto out;
	}
	for (size_t i = 0; i < rp->n_datastores; i++) {
		if (strcmp(rp->datastores[i]->name, f->ds) != 0)
			continue;
		fd = open(rp->datastores[i]->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			hd__xfer_wfail(f, 500, "datastore %s: %s: %s", f->ds,
				       rp->datastores[i]->path, strerror(errno));
		goto out;
	}
	hd__xfer_wfail(f, 404, "this host has no datastore %s", f->ds);
out:
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	*out = fd;
	return fd < 0 ? -1 : 0;
}

/* ---- the config store: vmkernel's cfg_* requests, on workers --------------------------- */

/* The most bytes a PUT of f may carry. */
uint64_t hd__xfer_store_limit(const struct xfer *f)
{
	return f->archive ? VMK_CFG_ARCHIVE_MAX : VMK_CFG_FILE_MAX;
}

/* One request to vmkernel: its reply (caller frees), or NULL after hd__xfer_wfail. */
static Keel__Vmk__VmkReply *store_ask(struct xfer *f, const Keel__Vmk__VmkRequest *rq)
{
	Keel__Vmk__VmkReply *rp = NULL;
	size_t len = 0;
	uint8_t *p = hd_backend_call(f->v->vmk_sock, &rq->base, 30, CFG_REPLY_MAX, &len);

	if (p)
		rp = keel__vmk__vmk_reply__unpack(NULL, len, p);
	kb_free(p);
	if (!rp)
		hd__xfer_wfail(f, 503, "the config store: vmkernel does not answer");
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
		hd__xfer_wfail(f, store_status(rp->code), "%s", rp->error);
	} else if (rp->cfg_data.len && !(f->rbuf = kb_malloc(rp->cfg_data.len))) {
		hd__xfer_wfail(f, 500, "out of memory");
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
void hd__xfer_store_write_work(uv_work_t *w)
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
		hd__xfer_wfail(f, store_status(rp->code), "%s", rp->error);
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
			hd__xfer_wfail(f, fd == -ENOENT ? 404 : 500, "host file %s: %s", f->rel,
				       fd == -ENOENT ? "not present on this host" : strerror(-fd));
		else
			open_failed(f, fd, f->rel);
		return;
	}
	if (fstat(fd, &st) != 0) {
		hd__xfer_wfail(f, 500, "%s: %s", f->rel, strerror(errno));
		close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		hd__xfer_wfail(f, 400, "%s is %s, not a file", f->rel,
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
		hd__xfer_wfail(f, 400, "%s is a directory", f->rel);
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

void hd__xfer_open_work(uv_work_t *w)
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
			hd__xfer_wfail(f, 500, "state directory: %s", strerror(errno));
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

void hd__xfer_auth_work(uv_work_t *w)
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

void hd__xfer_write_work(uv_work_t *w)
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

			hd__xfer_wfail(
			    f, full_status(err), "writing %s on datastore %s: %s", f->rel, f->ds,
			    err == -ENOSPC ? "no space left on the datastore" : strerror(-err));
			break;
		}
		off += (size_t)n;
	}
	f->done += off;
}

void hd__xfer_finish_work(uv_work_t *w)
{
	struct xfer *f = w->data;
	struct stat st;
	bool existed;

	if (fsync(f->fd) != 0) {
		hd__xfer_wfail(f, full_status(-errno), "storing %s on datastore %s: %s", f->rel,
			       f->ds, strerror(errno));
		return;
	}
	existed = fstatat(f->dirfd, f->base, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat(f->dirfd, f->tmp, f->dirfd, f->base) != 0) {
		hd__xfer_wfail(f, errno == EISDIR ? 400 : full_status(-errno),
			       "storing %s on datastore %s: %s", f->rel, f->ds, strerror(errno));
		return;
	}
	f->tmp_made = false;
	fsync(f->dirfd);
	f->stored = existed ? 204 : 201;
}

void hd__xfer_discard_work(uv_work_t *w)
{
	struct xfer *f = w->data;

	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	unlinkat(f->dirfd, f->tmp, 0);
	f->tmp_made = false;
}
