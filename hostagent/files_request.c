/*
 * A file request's checks (files.c, docs/hostd-files.md), on the loop: the method, the
 * URL (/folder/<path>?dsName=<ds>, decoded and checked component by component, or
 * /host/<file> from the list of host files and the config store's names), the caller
 * (a session token, or Basic authentication whose password is checked on a worker with
 * the login rate limit), the privilege on the datastore or the host, the declared length
 * and the transfer limits.
 *
 * Failure modes: each check that fails answers at once with its status and one line of
 * text (400, 401, 403, 404, 405, 413, 503) and nothing is opened; a refused login counts
 * against the peer's address.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hostagent/files_int.h"
#include "kernel/cfg/cfg.h" /* the store's archive name (macros only) */
#include "lib/heap.h"
#include "lib/time.h"

/* The host files served (read-only) from hostd's state directory. Never keys, passwords,
 * the user database or sockets. */
static const char *const host_files[] = {
    "inventory.conf", "network.conf", "vmkernel.log", "vmkernel.out",
    "hostd.log",      "hostd.out",    "clusterd.log", "clusterd.out",
};

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
		hd__xfer_refuse(f, 400, "%s", why);
		return false;
	}
	if ((bad = path_problem(f->rel))) {
		hd__xfer_refuse(f, 400, "bad datastore path: %s", bad);
		return false;
	}
	for (const char *a = q ? q + 1 : NULL; a && *a;) {
		const char *e = strchrnul(a, '&');

		if (strncmp(a, "dsName=", 7) == 0) {
			kb_free(ds);
			ds = pct_decode(a + 7, (size_t)(e - a - 7), &why);
			if (!ds) {
				hd__xfer_refuse(f, 400, "dsName: %s", why);
				return false;
			}
		}
		a = *e ? e + 1 : e;
	}
	if (!ds || !ds[0]) {
		kb_free(ds);
		hd__xfer_refuse(f, 400,
				"the datastore is missing: add ?dsName=<datastore> to the URL");
		return false;
	}
	snprintf(f->ds, sizeof(f->ds), "ds-%s", ds);
	if (strlen(ds) + 3 > HOSTD_AUTH_ENTITY_MAX || !hostd_auth_entity_valid(f->ds)) {
		kb_free(ds);
		hd__xfer_refuse(f, 400, "bad datastore name (want 1 or more of [A-Za-z0-9_.:-])");
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
		hd__xfer_refuse(f, 400, "%s", why);
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
	hd__xfer_refuse(
	    f, 404,
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
		hd__xfer_refuse(f, 401, "too many failed logins from %s: try again in %llu s",
				f->source,
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
		hd__xfer_refuse(f, 401, "incorrect user name or password");
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
	hd__xfer_start_work(f, hd__xfer_auth_work);
	if (f->wstatus) {
		OPENSSL_cleanse(f->password, sizeof(f->password));
		hd__xfer_refuse(f, 503, "cannot check the password now");
		return -1;
	}
	return 1;
}

/* The caller's user into f->user: the session of x-keel-session, else Basic
 * authentication. 0 when known, 1 while the password is being checked, -1 after
 * answering 401. */
int hd__xfer_authenticate(struct xfer *f, struct hd_call *call)
{
	struct hostd_auth_session_info info;
	const char *token = hd_call_header(call, HD_SESSION_HEADER);
	const char *basic = hd_call_header(call, "authorization");

	if (!token && basic && strncasecmp(basic, "Basic ", 6) == 0)
		return basic_auth(f, basic);
	if (!token) {
		hd__xfer_refuse(f, 401,
				"log in first: send the session token as the %s header, or a user "
				"and password with Basic authentication",
				HD_SESSION_HEADER);
		return -1;
	}
	if (hostd_auth_session_lookup(f->v->sessions, token, kb_now_ns(), &info) != 0) {
		hd__xfer_refuse(f, 401, "the session has expired or does not exist");
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
	hd__xfer_refuse(f, 403, "user %s lacks privilege %s on %s", f->user, priv, path[n - 1]);
	return false;
}

/* The config store: its logs are read with System.Read; etc/keel/network.conf is the
 * host's networking (Host.Config.Network); every other file, and the archive (the whole
 * configuration), takes both Host.Config.Network and Host.Config.Storage, and the user
 * database and the archive Authorization.ModifyUsers too. */
static bool authorize_store(struct xfer *f)
{
	if (strncmp(f->rel, "var/log/", 8) == 0 && f->kind != K_PUT)
		return authorize(f, "System.Read");
	if (strcmp(f->rel, "etc/keel/network.conf") == 0)
		return authorize(f, "Host.Config.Network");
	/* The users' password hashes: the user database, and the archive holding it (a
	 * restore also replaces the users) */
	if ((f->archive || strcmp(f->rel, VMK_CFG_AUTH) == 0) &&
	    !authorize(f, "Authorization.ModifyUsers"))
		return false;
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

bool hd__xfer_check_method(struct xfer *f, const char *method)
{
	if (strcmp(method, "GET") == 0)
		f->kind = K_GET;
	else if (strcmp(method, "HEAD") == 0)
		f->kind = K_HEAD;
	else if (strcmp(method, "PUT") == 0)
		f->kind = K_PUT;
	else {
		f->kind = K_GET;
		hd__xfer_refuse(f, 405, "method %.16s is not allowed on files: GET, HEAD or PUT",
				method);
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
		hd__xfer_refuse(
		    f, 403, "%s cannot be replaced over HTTPS; change it through the API", f->rel);
		return false;
	}
	/* hostd's user database (hostagent/auth_cfg.h): hostd is its only writer. */
	if (f->store && !f->archive && f->kind == K_PUT &&
	    strcmp(f->rel, VMK_CFG_AUTH) == 0) {
		hd__xfer_refuse(f, 403,
				"%s cannot be put: users are changed through the API (keel user, "
				"keel role, keel perm)",
				f->rel);
		return false;
	}
	if (f->store ? !authorize_store(f)
		     : !authorize(f, f->host		? "System.Read"
				     : f->kind == K_PUT ? "Datastore.FileManagement"
							: "Datastore.Browse"))
		return false;
	if (f->store && f->kind == K_PUT && (cl = hd_call_header(call, "content-length")) &&
	    strtoull(cl, NULL, 10) > hd__xfer_store_limit(f)) {
		hd__xfer_refuse(f, 413, "%s takes at most %" PRIu64 " bytes", f->rel,
				hd__xfer_store_limit(f));
		return false;
	}
	if (f->kind == K_PUT && (cl = hd_call_header(call, "content-length"))) {
		char *end;

		errno = 0;
		f->declared = strtoull(cl, &end, 10);
		if (!*cl || *end || errno || *cl == '-') {
			hd__xfer_refuse(f, 400, "bad content-length");
			return false;
		}
		f->have_len = true;
		if (f->declared > HD_FILE_PUT_MAX) {
			hd__xfer_refuse(f, 413, "an upload has at most %" PRIu64 " bytes",
					HD_FILE_PUT_MAX);
			return false;
		}
	}
	if (conn_transfers(call->conn) > HD_FILE_PER_CONN || hd__file_nxfers > HD_FILE_PER_SERVER) {
		hd__xfer_refuse(f, 503,
				"too many file transfers at once (%u per connection, %u in all)",
				HD_FILE_PER_CONN, HD_FILE_PER_SERVER);
		return false;
	}
	return true;
}

/* The user is known: the rest of the checks, then the open on a worker. */
void hd__xfer_authenticated(struct xfer *f)
{
	if (!check(f, f->call, hd_call_header(f->call, ":path")))
		return;
	f->phase = P_OPENING;
	hd__xfer_start_work(f, hd__xfer_open_work);
	if (f->wstatus)
		hd__xfer_refuse(f, f->wstatus, "%s", f->wtext);
}

/* Basic authentication's password was checked. */
void hd__xfer_auth_checked(struct xfer *f)
{
	uint64_t now = kb_now_ns();

	if (!f->auth_ok) {
		int locked = hostd_auth_ratelimit_fail(f->v->rl, f->source, now);

		kb_log(f->v->log, KB_LOG_WARN, "%s: file request as %s refused: %s%s", f->peer,
		       f->user, f->known ? "wrong password" : "no such user",
		       locked ? "; further attempts from there refused for a while" : "");
		f->user[0] = '\0';
		hd__xfer_refuse(f, 401, "incorrect user name or password");
		return;
	}
	hostd_auth_ratelimit_success(f->v->rl, f->source);
	if (f->call)
		hd__xfer_authenticated(f);
}
