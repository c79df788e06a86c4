/*
 * `keel host config list|get|put|delete|backup|restore|status`: the host's config store
 * (docs/config-store.md) through vmkernel's control socket.
 *
 * list shows the files (path, mode, size, time of the last change, generation; logs are
 * marked memory-only); get prints a file or writes it to --output; put replaces a file with
 * a local one ("-": stdin); delete removes one; backup writes the store's archive to a local
 * file (atomically: OUT.tmp, fsync, rename) or stdout; restore uploads an archive, which
 * vmkernel checks whole before it replaces anything; status shows the generation, the last
 * save and its result, the archive's size and the store's recent events.
 *
 * A change that vmkernel keeps in memory but could not save (a full disk) succeeds with a
 * warning on stderr naming the reason; `status` shows it until a later save works.
 *
 * With --server (and the session of `keel login`), get, put, backup and restore go through
 * hostd's /host/<file> (docs/hostd-files.md): GET /host/<FILE>, PUT /host/<FILE>, and
 * GET/PUT /host/config.kar for the archive. Both are small (the store's limits), so keel
 * holds them in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>

#include "kernel/cfg/cfg.h" /* the store's limits (macros only: keel does not link it) */
#include "lib/buf.h"
#include "lib/file.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"
#include "mgmt-api/libkeel/keel_files.h"

enum { O_OUTPUT = 1, O_MODE };

static char *fmt_time(uint64_t ns, char *out, size_t size)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (ns == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(out, size, "-");
	else
		strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

/* Reads LOCAL ("-": stdin) whole, at most max bytes, into b. KC_EXIT_OK or the failure. */
static int read_local(struct kc_ctx *ctx, const char *local, size_t max, struct kb_buf *b)
{
	struct kb_errmsg err = {{0}};
	int rv;

	if (strcmp(local, "-") == 0) {
		uint8_t chunk[4096];
		ssize_t n;
		while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return kc_fail(ctx, KC_EXIT_FAILED, -errno, "reading stdin: %s",
					       strerror(errno));
			if (b->len + (size_t)n > max)
				return kc_fail(ctx, KC_EXIT_FAILED, KB_ETOOBIG,
					       "stdin holds more than %zu bytes", max);
			if (kb_buf_append(b, chunk, (size_t)n) < 0)
				return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
		}
		return KC_EXIT_OK;
	}
	rv = kb_file_read_small(local, max, b, &err);
	if (rv < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, rv, "%s", err.msg);
	return KC_EXIT_OK;
}

/* Writes data to LOCAL ("-" or NULL: stdout). */
static int write_local(struct kc_ctx *ctx, const char *local, const void *data, size_t len,
		       mode_t mode)
{
	struct kb_errmsg err = {{0}};
	int rv;

	if (local == NULL || strcmp(local, "-") == 0) {
		if (len && fwrite(data, 1, len, stdout) != len)
			return kc_fail(ctx, KC_EXIT_FAILED, -EIO, "writing stdout failed");
		fflush(stdout);
		return KC_EXIT_OK;
	}
	rv = kb_file_write_atomic(local, data, len, mode, &err);
	if (rv < 0 && rv != KB_ENOTSYNCED)
		return kc_fail(ctx, KC_EXIT_FAILED, rv, "%s", err.msg);
	return KC_EXIT_OK;
}

/* ---- through hostd's /host/ ------------------------------------------------------------- */

/* GET /host/<name> into b (at most max bytes). KC_EXIT_OK or the failure reported. */
static int api_get(struct kc_ctx *ctx, const struct kc_call *call, const char *name, size_t max,
		   struct kb_buf *b)
{
	char url[KC_URL_MAX];
	struct kl_client *c;
	struct kl_status st;
	uint64_t bytes = 0;
	struct stat sb;
	int rc, fd;

	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	fd = memfd_create("keel-host-config", MFD_CLOEXEC);
	if (fd < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno, "memfd_create: %s", strerror(errno));
	rc = kc_api_open(ctx, call, &c);
	if (rc) {
		close(fd);
		return rc;
	}
	rc = kl_host_file_get(c, name, fd, NULL, NULL, &bytes, &st);
	kl_client_destroy(c);
	if (rc) {
		close(fd);
		return kc_api_fail(ctx, url, true, NULL, &st);
	}
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size > max) {
		close(fd);
		return kc_fail(ctx, KC_EXIT_PROTO, KB_ETOOBIG, "hostd sent more than %zu bytes",
			       max);
	}
	rc = kb_buf_reserve(b, (size_t)sb.st_size);
	if (rc == 0 && sb.st_size > 0 &&
	    pread(fd, b->data + b->len, (size_t)sb.st_size, 0) != (ssize_t)sb.st_size)
		rc = -EIO;
	close(fd);
	if (rc < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s", kb_strerror(rc));
	b->len += (size_t)sb.st_size;
	return KC_EXIT_OK;
}

struct put_src {
	const uint8_t *p;
	size_t len, off;
	char answer[1024];
	size_t alen;
};

static size_t put_read(char *b, size_t size, size_t n, void *arg)
{
	struct put_src *s = arg;
	size_t k = s->len - s->off < size * n ? s->len - s->off : size * n;

	memcpy(b, s->p + s->off, k);
	s->off += k;
	return k;
}

static size_t put_answer(char *b, size_t size, size_t n, void *arg)
{
	struct put_src *s = arg;
	size_t k = size * n;

	if (k > sizeof(s->answer) - 1 - s->alen)
		k = sizeof(s->answer) - 1 - s->alen;
	memcpy(s->answer + s->alen, b, k);
	s->alen += k;
	s->answer[s->alen] = '\0';
	return size * n;
}

/* PUT /host/<name> with len bytes of data. KC_EXIT_OK (*created: 201) or the failure. */
static int api_put(struct kc_ctx *ctx, const struct kc_call *call, const char *name,
		   const void *data, size_t len, bool *created)
{
	char url[KC_URL_MAX], target[KC_URL_MAX + 600], hdr[KC_TOKEN_MAX + 32],
	    err[CURL_ERROR_SIZE] = "";
	struct put_src src = {.p = data, .len = len};
	struct curl_slist *hdrs = NULL;
	struct kl_client *c;
	const char *base;
	char *esc = NULL;
	long http = 0;
	CURLcode cc;
	CURL *h;
	int rc;

	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	h = kl__client_dup_handle(c, &base);
	if (h != NULL)
		esc = curl_easy_escape(h, name, 0);
	if (h == NULL || esc == NULL) {
		if (h)
			curl_easy_cleanup(h);
		kl_client_destroy(c);
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
	}
	snprintf(target, sizeof(target), "%s/host/%s", base, esc);
	snprintf(hdr, sizeof(hdr), "x-keel-session: %s",
		 kl_client_token(c) ? kl_client_token(c) : "");
	hdrs = curl_slist_append(NULL, hdr);
	curl_easy_setopt(h, CURLOPT_URL, target);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, put_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &src);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, put_answer);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &src);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(ctx->timeout_ms ? ctx->timeout_ms : 0));
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	curl_free(esc);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	kl_client_destroy(c);
	while (src.alen && (src.answer[src.alen - 1] == '\n' || src.answer[src.alen - 1] == '\r'))
		src.answer[--src.alen] = '\0';
	if (cc != CURLE_OK)
		return kc_fail(ctx, KC_EXIT_UNREACHABLE, 0, "%s: %s", url,
			       err[0] ? err : curl_easy_strerror(cc));
	if (http == 401)
		return kc_fail(ctx, KC_EXIT_FAILED, 0,
			       "%s: %s; log in again: keel login --server %s", url,
			       src.alen ? src.answer : "not authenticated", url);
	if (http != 201 && http != 204)
		return kc_fail(ctx, KC_EXIT_FAILED, 0, "%s: HTTP %ld: %s", url, http,
			       src.alen ? src.answer : "no explanation");
	*created = http == 201;
	return KC_EXIT_OK;
}

/* The outcome of an API put or restore. */
static int api_changed(struct kc_ctx *ctx, const char *what, const char *path, size_t bytes,
		       bool created)
{
	char clean[1024];

	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		if (path)
			kc_json_str(&j, "path", path);
		kc_json_u64(&j, "bytes", bytes);
		kc_json_bool(&j, "created", created);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("%s%s%s (%zu bytes) through the API.\n", what, path ? " " : "",
		       path ? kc_clean(path, clean, sizeof(clean)) : "", bytes);
	}
	return KC_EXIT_OK;
}

static void json_status(struct kc_json *j, const Keel__Vmk__CfgStatus *st)
{
	kc_json_obj_begin(j, "status");
	if (st != NULL)
		kc_message_json_fields(j, &st->base, NULL);
	kc_json_obj_end(j);
}

/* After a change: the text line, or the JSON object; a warning when it was not saved. */
static int changed(struct kc_ctx *ctx, const Keel__Vmk__VmkReply *rp, const char *what,
		   const char *path, uint64_t bytes)
{
	const Keel__Vmk__CfgStatus *st = rp->cfg_status;
	bool saved = st != NULL && !st->dirty;
	char clean[KB_ERRMSG_SIZE];

	if (st != NULL && !saved)
		fprintf(stderr,
			"keel: warning: the change is kept in memory but could not be saved "
			"(%s); it is saved again at the next change\n",
			kc_clean(st->last_save_error, clean, sizeof(clean)));
	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		if (path != NULL)
			kc_json_str(&j, "path", path);
		kc_json_u64(&j, "bytes", bytes);
		kc_json_bool(&j, "saved", saved);
		json_status(&j, st);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("%s%s%s (%" PRIu64 " bytes); %s, generation %" PRIu64 ".\n", what,
		       path ? " " : "", path ? kc_clean(path, clean, sizeof(clean)) : "", bytes,
		       saved ? "saved" : "NOT saved", st ? st->generation : 0);
	}
	return KC_EXIT_OK;
}

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"PATH",	"MODE",	      "SIZE",
					    "MODIFIED", "GENERATION", "KEPT"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgList l = KEEL__VMK__VMK_CFG_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	l.prefix = (char *)(call->npos ? call->pos[0] : "");
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_LIST;
	req.cfg_list = &l;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "files");
		for (size_t i = 0; i < rp->n_cfg_files; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &rp->cfg_files[i]->base, NULL);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 6, heads, "llrlrl");
	for (size_t i = 0; i < rp->n_cfg_files; i++) {
		const Keel__Vmk__CfgFileInfo *f = rp->cfg_files[i];
		char mode[16], size[32], when[32], gen[32];
		snprintf(mode, sizeof(mode), "%04" PRIo32, f->mode);
		snprintf(size, sizeof(size), "%" PRIu64, f->size);
		snprintf(gen, sizeof(gen), "%" PRIu64, f->generation);
		kc_table_add(&t, (const char *const[]){f->path, mode, size,
						       fmt_time(f->mtime_ns, when, sizeof(when)),
						       gen, f->persistent ? "archived" : "memory"});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

static int get_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	const char *out = kc_opt(call, O_OUTPUT);
	bool to_file = out != NULL && strcmp(out, "-") != 0;
	Keel__Vmk__VmkReply *rp = NULL;
	const uint8_t *data;
	struct kb_buf b;
	size_t len;
	int rc;

	kb_buf_init(&b, 0);
	if (kc_api_wanted(ctx)) {
		rc = api_get(
		    ctx, call, call->pos[0],
		    VMK_CFG_LOG_MAX > VMK_CFG_FILE_MAX ? VMK_CFG_LOG_MAX : VMK_CFG_FILE_MAX, &b);
		data = b.data;
		len = b.len;
	} else {
		g.path = (char *)call->pos[0];
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
		req.cfg_get = &g;
		rc = kc_rpc(ctx, &req, &rp);
		data = rp ? rp->cfg_data.data : NULL;
		len = rp ? rp->cfg_data.len : 0;
	}
	if (rc)
		goto out;
	if (!ctx->json || to_file)
		rc = write_local(ctx, out, data, len, 0644);
	if (rc == KC_EXIT_OK && ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		if (rp != NULL && rp->n_cfg_files == 1)
			kc_message_json_fields(&j, &rp->cfg_files[0]->base, NULL);
		else
			kc_json_str(&j, "path", call->pos[0]);
		kc_json_u64(&j, "bytes", len);
		if (to_file)
			kc_json_str(&j, "local", out);
		else
			kc_json_strn(&j, "data", data ? (const void *)data : "", len);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	}
out:
	if (rp)
		kc_reply_free(rp);
	kb_buf_close(&b);
	return rc;
}

static int put_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgPut p = KEEL__VMK__VMK_CFG_PUT__INIT;
	const char *mode = kc_opt(call, O_MODE);
	Keel__Vmk__VmkReply *rp;
	struct kb_buf b;
	int rc;

	if (mode != NULL) {
		char *end;
		unsigned long m = strtoul(mode, &end, 8);
		if (!*mode || *end || m == 0 || m > 0777)
			return kc_usage(ctx, call, "bad --mode '%s': want octal from 1 to 0777",
					mode);
		p.mode = (uint32_t)m;
	}
	kb_buf_init(&b, 0);
	rc = read_local(ctx, call->pos[1], VMK_CFG_FILE_MAX, &b);
	if (rc) {
		kb_buf_close(&b);
		return rc;
	}
	if (kc_api_wanted(ctx)) {
		bool created = false;
		if (mode != NULL)
			rc = kc_usage(ctx, call, "--mode works through vmkernel's socket only");
		else
			rc = api_put(ctx, call, call->pos[0], b.data, b.len, &created);
		if (rc == KC_EXIT_OK)
			rc = api_changed(ctx, "Stored", call->pos[0], b.len, created);
		kb_buf_close(&b);
		return rc;
	}
	p.path = (char *)call->pos[0];
	p.data.data = b.data;
	p.data.len = b.len;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT;
	req.cfg_put = &p;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc == KC_EXIT_OK) {
		rc = changed(ctx, rp, "Stored", call->pos[0], b.len);
		kc_reply_free(rp);
	}
	kb_buf_close(&b);
	return rc;
}

static int delete_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgDelete d = KEEL__VMK__VMK_CFG_DELETE__INIT;
	Keel__Vmk__VmkReply *rp;
	int rc;

	d.path = (char *)call->pos[0];
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_DELETE;
	req.cfg_delete = &d;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	rc = changed(ctx, rp, "Deleted", call->pos[0], 0);
	kc_reply_free(rp);
	return rc;
}

static int backup_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgExport e = KEEL__VMK__VMK_CFG_EXPORT__INIT;
	const char *out = call->pos[0];
	bool to_stdout = strcmp(out, "-") == 0;
	Keel__Vmk__VmkReply *rp = NULL;
	const uint8_t *data;
	struct kb_buf b;
	size_t len;
	int rc;

	if (to_stdout && ctx->json)
		return kc_usage(ctx, call, "--json needs a file for OUT, not '-'");
	kb_buf_init(&b, 0);
	if (kc_api_wanted(ctx)) {
		rc = api_get(ctx, call, VMK_CFG_ARCHIVE, VMK_CFG_ARCHIVE_MAX, &b);
		data = b.data;
		len = b.len;
	} else {
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_EXPORT;
		req.cfg_export = &e;
		rc = kc_rpc(ctx, &req, &rp);
		data = rp ? rp->cfg_data.data : NULL;
		len = rp ? rp->cfg_data.len : 0;
	}
	if (rc == KC_EXIT_OK)
		rc = write_local(ctx, out, data, len, 0600);
	if (rc == KC_EXIT_OK && ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "local", out);
		kc_json_u64(&j, "bytes", len);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else if (rc == KC_EXIT_OK && !to_stdout) {
		char clean[1024];
		printf("Wrote the config archive to %s (%zu bytes).\n",
		       kc_clean(out, clean, sizeof(clean)), len);
	}
	if (rp)
		kc_reply_free(rp);
	kb_buf_close(&b);
	return rc;
}

static int restore_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgImport im = KEEL__VMK__VMK_CFG_IMPORT__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kb_buf b;
	int rc;

	kb_buf_init(&b, 0);
	rc = read_local(ctx, call->pos[0], VMK_CFG_ARCHIVE_MAX, &b);
	if (rc) {
		kb_buf_close(&b);
		return rc;
	}
	if (kc_api_wanted(ctx)) {
		bool created = false;
		rc = api_put(ctx, call, VMK_CFG_ARCHIVE, b.data, b.len, &created);
		if (rc == KC_EXIT_OK)
			rc = api_changed(ctx, "Restored the config archive", NULL, b.len, false);
		kb_buf_close(&b);
		return rc;
	}
	im.archive.data = b.data;
	im.archive.len = b.len;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_IMPORT;
	req.cfg_import = &im;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc == KC_EXIT_OK) {
		rc = changed(ctx, rp, "Restored the config archive", NULL, b.len);
		kc_reply_free(rp);
	}
	kb_buf_close(&b);
	return rc;
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgStatus s = KEEL__VMK__VMK_CFG_STATUS__INIT;
	const Keel__Vmk__CfgStatus *st;
	Keel__Vmk__VmkReply *rp;
	char a[64], b[64];
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_STATUS;
	req.cfg_status = &s;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	st = rp->cfg_status;
	if (st == NULL) {
		rc = kc_fail(ctx, KC_EXIT_PROTO, 0, "vmkernel's reply carries no store status");
	} else if (ctx->json) {
		struct kc_json j;
		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_message_json_fields(&j, &st->base, NULL);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		kc_kv(stdout, "Directory", "%s", st->dir[0] ? st->dir : "- (memory only)");
		kc_kv(stdout, "Loaded from", "%s", st->loaded_from);
		kc_kv(stdout, "Generation", "%" PRIu64 " (archive holds %" PRIu64 ")%s",
		      st->generation, st->saved_generation, st->dirty ? ", NOT SAVED" : "");
		kc_kv(stdout, "Files", "%" PRIu32 " (%s)", st->files,
		      kc_fmt_bytes(st->bytes, a, sizeof(a)));
		kc_kv(stdout, "Archive", "%" PRIu64 " bytes", st->archive_bytes);
		kc_kv(stdout, "Last save", "%s: %s", fmt_time(st->last_save_ns, b, sizeof(b)),
		      st->last_save_ns == 0	? "none yet"
		      : st->last_save_code == 0 ? "ok"
						: st->last_save_error);
		kc_kv(stdout, "Saves", "%" PRIu64 " (%" PRIu64 " failed)", st->saves,
		      st->save_failures);
		printf("\nEvents:\n");
		for (size_t i = 0; i < st->n_events; i++) {
			char line[1024];
			printf("  %s %-5s %s\n", fmt_time(st->events[i]->time_ns, a, sizeof(a)),
			       st->events[i]->level,
			       kc_clean(st->events[i]->text, line, sizeof(line)));
		}
	}
	kc_reply_free(rp);
	return rc;
}

static const struct kc_opt get_opts[] = {
    {"output", "LOCAL", "write the file to LOCAL (atomically) instead of stdout", O_OUTPUT, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt put_opts[] = {
    {"mode", "OCTAL", "the file's mode in the store (default 0644)", O_MODE, false},
    {NULL, NULL, NULL, 0, false},
};

#define FILE_DETAIL                                                                        \
	"FILE is a path in the store: etc/... (configuration), var/patch/... (staged\n"    \
	"patches), var/log/... (logs: memory only, never archived). Components are made\n" \
	"of letters, digits and ._+@- and do not start with '.'.\n"

const struct kc_cmd kc_host_config_list_cmd = {
    .name = "list",
    .args = "[PREFIX]",
    .summary = "List the files of the host's config store.",
    .max_pos = 1,
    .run = list_run,
};

const struct kc_cmd kc_host_config_get_cmd = {
    .name = "get",
    .args = "FILE",
    .summary = "Print a file of the config store (or write it to --output); --server works.",
    .detail = FILE_DETAIL,
    .min_pos = 1,
    .max_pos = 1,
    .opts = get_opts,
    .run = get_run,
    .api = true,
};

const struct kc_cmd kc_host_config_put_cmd = {
    .name = "put",
    .args = "FILE LOCAL",
    .summary = "Replace a file of the config store with LOCAL ('-': stdin); --server works.",
    .detail = FILE_DETAIL "etc/keel/advanced.conf is checked before it is stored (known keys:\n"
			  "Misc.LogLevel) and applied at once.\n",
    .min_pos = 2,
    .max_pos = 2,
    .opts = put_opts,
    .run = put_run,
    .api = true,
};

const struct kc_cmd kc_host_config_delete_cmd = {
    .name = "delete",
    .args = "FILE",
    .summary = "Remove a file from the config store.",
    .detail = FILE_DETAIL,
    .min_pos = 1,
    .max_pos = 1,
    .run = delete_run,
};

const struct kc_cmd kc_host_config_backup_cmd = {
    .name = "backup",
    .args = "OUT",
    .summary = "Download the config store's archive to OUT ('-': stdout); --server works.",
    .detail = "The archive holds every file but the logs; `restore` puts it back.\n",
    .min_pos = 1,
    .max_pos = 1,
    .run = backup_run,
    .api = true,
};

const struct kc_cmd kc_host_config_restore_cmd = {
    .name = "restore",
    .args = "IN",
    .summary = "Replace the config store's files with archive IN ('-': stdin); --server works.",
    .detail = "The whole archive is checked first; a damaged one changes nothing. Logs are\n"
	      "kept.\n",
    .min_pos = 1,
    .max_pos = 1,
    .run = restore_run,
    .api = true,
};

const struct kc_cmd kc_host_config_status_cmd = {
    .name = "status",
    .summary = "Show the config store's generation, last save and recent events.",
    .run = status_run,
};

int kc_store_get(struct kc_ctx *ctx, const char *path, bool *found, struct kb_buf *b,
		 uint64_t *generation)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmkReply *rp = NULL;
	int rc, code = 0;

	*found = false;
	*generation = 0;
	if (!ctx->tr) {
		rc = kc_transport_local_create(ctx->socket, ctx->timeout_ms, &ctx->tr);
		if (rc)
			return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s", kb_strerror(rc));
	}
	g.path = (char *)path;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
	req.cfg_get = &g;
	rc = ctx->tr->call(ctx->tr, &req, &rp, &code, &err);
	if (rc != KC_EXIT_OK)
		return kc_fail(ctx, rc, code, "%s", err.msg);
	if (rp->code == KB_ENOTFOUND) {
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	if (rp->code != 0) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, rp->code, "%s",
			     rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		kc_reply_free(rp);
		return rc;
	}
	*found = true;
	*generation = rp->n_cfg_files ? rp->cfg_files[0]->generation : 0;
	rc = kb_buf_append(b, rp->cfg_data.data, rp->cfg_data.len);
	kc_reply_free(rp);
	return rc ? kc_fail(ctx, KC_EXIT_FAILED, rc, "out of memory") : KC_EXIT_OK;
}
