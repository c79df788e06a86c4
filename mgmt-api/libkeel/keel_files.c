/*
 * libkeel's file transfers (keel_files.h): one libcurl transfer per file, on a handle
 * duplicated from the client's so it has the same TLS trust.
 *
 * Download: GET; the write callback writes each piece to the caller's fd when the status
 * is 200, else keeps the first bytes of hostd's plain-text explanation. Upload: PUT with
 * the size as content-length; the read callback reads the caller's fd a buffer at a time
 * (libcurl's upload buffer), so the file is never held whole. Progress through
 * CURLOPT_XFERINFOFUNCTION. The URL's path components and the datastore name are
 * percent-encoded here (every byte but unreserved ones and '/'); hostd decodes them.
 *
 * Failure modes: as keel_files.h says; a local write or read error stops the transfer
 * (the callback returns short) and is reported with its errno.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/heap.h"
#include "mgmt-api/libkeel/keel_files.h"

#define ERRBODY_MAX    512
#define LOW_SPEED_TIME 60 /* seconds without a byte before a transfer is ended */

struct xfer {
	struct kl_client *c;
	CURL *curl;
	int fd;
	bool upload;
	uint64_t size; /* upload: bytes to send */
	uint64_t done; /* bytes written to fd, or read from it */
	int local_errno;
	bool short_read; /* fd ended before size bytes */
	kl_progress_cb progress;
	void *arg;
	bool stopped; /* progress asked to stop */
	char body[ERRBODY_MAX + 1];
	size_t body_len;
	char err[CURL_ERROR_SIZE];
};

static int set_status(struct kl_status *st, int code, enum kl_source src, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
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

/* Appends s percent-encoded to out (keeping '/' when slash_ok). false when it does not
 * fit. */
static bool encode(char *out, size_t size, const char *s, bool slash_ok)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = strlen(out);

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			    (ch >= '0' && ch <= '9') || strchr("-._~", ch) ||
			    (slash_ok && ch == '/');

		if (o + 4 >= size)
			return false;
		if (keep) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return true;
}

/* ---- libcurl callbacks ------------------------------------------------------------------ */

static size_t header_cb(char *b, size_t size, size_t n, void *arg)
{
	(void)b;
	(void)arg;
	return size * n;
}

static size_t write_cb(char *b, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, off = 0;
	long http = 0;

	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &http);
	if (http != 200 || x->upload) {
		size_t room = ERRBODY_MAX - x->body_len;

		memcpy(x->body + x->body_len, b, len < room ? len : room);
		x->body_len += len < room ? len : room;
		x->body[x->body_len] = '\0';
		return len;
	}
	while (off < len) {
		ssize_t w = write(x->fd, b + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			x->local_errno = w < 0 ? errno : EIO;
			return 0;
		}
		off += (size_t)w;
	}
	x->done += len;
	return len;
}

static size_t read_cb(char *b, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t want = size * n;
	ssize_t r;

	if (x->done >= x->size)
		return 0;
	if (want > x->size - x->done)
		want = (size_t)(x->size - x->done);
	do
		r = read(x->fd, b, want);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		x->local_errno = errno;
		return CURL_READFUNC_ABORT;
	}
	if (r == 0) {
		x->short_read = true;
		return CURL_READFUNC_ABORT;
	}
	x->done += (uint64_t)r;
	return (size_t)r;
}

static int xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = arg;
	long http = 0;
	int rc;

	if (!x->progress)
		return 0;
	if (x->upload) {
		rc = x->progress(x->arg, (uint64_t)ulnow, (uint64_t)ultotal);
	} else {
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &http);
		if (http != 200)
			return 0;
		rc = x->progress(x->arg, (uint64_t)dlnow, (uint64_t)dltotal);
	}
	if (rc)
		x->stopped = true;
	return rc ? 1 : 0;
}

/* ---- one transfer --------------------------------------------------------------------- */

static int http_code(long http)
{
	switch (http) {
	case 400:
	case 405:
		return KL_INVALID_ARGUMENT;
	case 401:
		return KL_UNAUTHENTICATED;
	case 403:
		return KL_PERMISSION_DENIED;
	case 404:
		return KL_NOT_FOUND;
	case 413:
	case 507:
		return KL_RESOURCE_EXHAUSTED;
	case 503:
		return KL_UNAVAILABLE;
	default:
		return KL_UNKNOWN;
	}
}

/* The status of a transfer that did not complete. */
static int transport_status(struct xfer *x, const char *url, CURLcode rc, struct kl_status *st)
{
	const char *why = x->err[0] ? x->err : curl_easy_strerror(rc);
	const char *seen = kl_client_seen_thumbprint(x->c);

	if (x->stopped)
		return set_status(st, KL_CANCELLED, KL_SRC_CLIENT, "the transfer was stopped");
	if (x->local_errno)
		return set_status(st, KL_INTERNAL, KL_SRC_CLIENT, "%s the local file: %s",
				  x->upload ? "reading" : "writing", strerror(x->local_errno));
	if (x->short_read)
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				  "the local file ended after %llu of %llu bytes",
				  (unsigned long long)x->done, (unsigned long long)x->size);
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
		if (rc != CURLE_SSL_CONNECT_ERROR || seen[0])
			return set_status(st, KL_UNAVAILABLE, KL_SRC_TLS,
					  "the certificate of %s is not trusted%s%s: %s", url,
					  seen[0] ? "; its thumbprint is " : "", seen, why);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		return set_status(st, KL_DEADLINE_EXCEEDED, KL_SRC_TRANSPORT,
				  "the transfer with %s stalled: %s", url, why);
	default:
		break;
	}
	return set_status(st, KL_UNAVAILABLE, KL_SRC_TRANSPORT, "transfer with %s failed: %s", url,
			  why);
}

/* Runs one GET (upload false) or PUT of target ("/folder/...?dsName=..." or "/host/...").
 * 0 with *http the status, or -code. */
static int transfer(struct kl_client *c, const char *target, struct xfer *x, long *http,
		    struct kl_status *st)
{
	char url[3 * KL_FILE_PATH_MAX + 512], auth[320];
	struct curl_slist *hdrs = NULL, *h;
	const char *base;
	const char *token = kl_client_token(c);
	CURLcode crc;
	int rc = 0;

	x->c = c;
	x->curl = kl__client_dup_handle(c, &base);
	if (!x->curl)
		return set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT, "out of memory");
	snprintf(url, sizeof(url), "%s%s", base, target);
	hdrs = curl_slist_append(NULL, "Expect:");
	h = hdrs;
	if (h && token) {
		snprintf(auth, sizeof(auth), "x-keel-session: %s", token);
		h = curl_slist_append(hdrs, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	if (!h) {
		rc = set_status(st, KL_RESOURCE_EXHAUSTED, KL_SRC_CLIENT, "out of memory");
		goto out;
	}
	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->err);
	curl_easy_setopt(x->curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(x->curl, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, 0L);
	curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_TIME);
	curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "libkeel/1 files");
	if (x->upload) {
		curl_easy_setopt(x->curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->size);
		curl_easy_setopt(x->curl, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(x->curl, CURLOPT_READDATA, x);
	} else {
		curl_easy_setopt(x->curl, CURLOPT_HTTPGET, 1L);
	}
	crc = curl_easy_perform(x->curl);
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, http);
	if (crc != CURLE_OK)
		rc = transport_status(x, base, crc, st);
out:
	curl_easy_cleanup(x->curl);
	curl_slist_free_all(hdrs);
	return rc;
}

/* hostd's answer, when it is not a success, into st. */
static int answer_status(struct xfer *x, long http, struct kl_status *st)
{
	size_t n = x->body_len;

	while (n > 0 && (x->body[n - 1] == '\n' || x->body[n - 1] == '\r'))
		x->body[--n] = '\0';
	return set_status(st, http_code(http), KL_SRC_SERVER, "%s (HTTP %ld)",
			  n ? x->body : "hostd refused the transfer", http);
}

static void status_ok(struct kl_status *st)
{
	st->code = KL_OK;
	st->source = KL_SRC_SERVER;
	st->message[0] = '\0';
}

static int get(struct kl_client *c, const char *target, int fd, kl_progress_cb progress, void *arg,
	       uint64_t *bytes, struct kl_status *st)
{
	struct xfer x = {.fd = fd, .progress = progress, .arg = arg};
	long http = 0;
	int rc;

	if (bytes)
		*bytes = 0;
	rc = transfer(c, target, &x, &http, st);
	if (bytes)
		*bytes = x.done;
	if (rc)
		return rc;
	if (http != 200)
		return answer_status(&x, http, st);
	status_ok(st);
	return 0;
}

static bool path_ok(const char *p, struct kl_status *st)
{
	if (!p || !p[0] || strlen(p) > KL_FILE_PATH_MAX) {
		set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
			   "a datastore path of 1 to %d bytes is needed", KL_FILE_PATH_MAX);
		return false;
	}
	return true;
}

/* "/folder/<path>?dsName=<ds>" into out. */
static int folder_target(const char *ds, const char *path, char *out, size_t size,
			 struct kl_status *st)
{
	if (!ds || !ds[0])
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT, "a datastore is needed");
	if (!path_ok(path, st))
		return -st->code;
	snprintf(out, size, "/folder/");
	while (*path == '/')
		path++;
	if (!encode(out, size, path, true) || strlen(out) + 9 >= size)
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT, "the path is too long");
	strcat(out, "?dsName=");
	if (!encode(out, size, ds, false))
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				  "the datastore name is too long");
	return 0;
}

int kl_file_get(struct kl_client *c, const char *ds, const char *path, int fd,
		kl_progress_cb progress, void *arg, uint64_t *bytes, struct kl_status *st)
{
	char target[3 * KL_FILE_PATH_MAX + 256];
	int rc;

	if (bytes)
		*bytes = 0;
	rc = folder_target(ds, path, target, sizeof(target), st);
	if (rc)
		return rc;
	return get(c, target, fd, progress, arg, bytes, st);
}

int kl_host_file_get(struct kl_client *c, const char *name, int fd, kl_progress_cb progress,
		     void *arg, uint64_t *bytes, struct kl_status *st)
{
	char target[512] = "/host/";

	if (bytes)
		*bytes = 0;
	if (!name || !name[0] || !encode(target, sizeof(target), name, false))
		return set_status(st, KL_INVALID_ARGUMENT, KL_SRC_CLIENT,
				  "a host file name of 1 to 100 bytes is needed");
	return get(c, target, fd, progress, arg, bytes, st);
}

int kl_file_put(struct kl_client *c, const char *ds, const char *path, int fd, uint64_t size,
		kl_progress_cb progress, void *arg, bool *created, struct kl_status *st)
{
	char target[3 * KL_FILE_PATH_MAX + 256];
	struct xfer x = {.fd = fd, .upload = true, .size = size, .progress = progress, .arg = arg};
	long http = 0;
	int rc;

	if (created)
		*created = false;
	rc = folder_target(ds, path, target, sizeof(target), st);
	if (rc)
		return rc;
	rc = transfer(c, target, &x, &http, st);
	if (rc)
		return rc;
	if (http != 201 && http != 204)
		return answer_status(&x, http, st);
	if (created)
		*created = http == 201;
	status_ok(st);
	return 0;
}
