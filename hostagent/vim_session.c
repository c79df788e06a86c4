/*
 * Sessions of the Vim API: Login, Logout, CurrentSession, and the check every other call
 * goes through (hd_vim_authorize). See hostagent/vim.h.
 *
 * Login runs in three steps: on the loop, the source's rate limit and a copy of the user's
 * hash; on a worker, the password check (one yescrypt hash; an unknown user is checked
 * against a fixed hash so both take as long); on the loop again, the outcome: a session
 * and the rate limiter's forgiveness, or one failure more for the source. The client is
 * told only "incorrect user name or password" (or when to try again); the log says why,
 * never with the password.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <openssl/crypto.h>

#include "hostagent/auth_cfg.h"
#include "hostagent/auth_sync.h"
#include "hostagent/vim.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/nodeid.h"
#include "lib/time.h"
#include "vim.pb-c.h"

#define EXPIRE_EVERY_MS 60000

/* ---- init ------------------------------------------------------------------------------ */

/* The root password for a new database: the file's first line, or a new random one
 * written to DIR/root-password (0600). */
static int root_password(struct hd_vim *v, const char *file, char *out, size_t size,
			 struct kb_errmsg *e)
{
	char path[PATH_MAX + 32];
	struct kb_buf b;
	int rv;

	if (file) {
		kb_buf_init(&b, 0);
		rv = kb_file_read_small(file, 4096, &b, e);
		if (rv == 0) {
			size_t n = 0;

			while (n < b.len && n + 1 < size && b.data[n] != '\n' && b.data[n] != '\r')
				n++;
			memcpy(out, b.data, n);
			out[n] = '\0';
			OPENSSL_cleanse(b.data, b.len);
		}
		kb_buf_close(&b);
		return rv;
	}
	{
		static const char alphabet[] =
		    "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
		uint8_t r[20];

		if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
			kb_errmsg_setf(e, "getrandom: %s", strerror(errno));
			return -EIO;
		}
		for (size_t i = 0; i < sizeof(r) && i + 1 < size; i++)
			out[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
		out[sizeof(r) < size ? sizeof(r) : size - 1] = '\0';
	}
	snprintf(path, sizeof(path), "%.4000s/root-password", v->state_dir);
	rv = kb_file_write_atomic(path, out, strlen(out), 0600, e);
	if (rv == KB_ENOTSYNCED)
		rv = 0;
	if (rv == 0)
		kb_log(v->log, KB_LOG_WARN, "new user database: root's password is in %s", path);
	return rv;
}

static void on_expire(uv_timer_t *t)
{
	struct hd_vim *v = t->data;
	size_t n = hostd_auth_sessions_expire(v->sessions, kb_now_ns());

	if (n)
		kb_log(v->log, KB_LOG_INFO, "%zu idle session%s expired", n, n == 1 ? "" : "s");
}

int hd_vim_init(struct hd_vim *v, uv_loop_t *loop, struct kb_logger *log, const char *state_dir,
		const char *root_password_file, struct kb_errmsg *e)
{
	char pw[HOSTD_AUTH_PASSWORD_MAX + 2];
	enum hd_auth_cfg_from from;
	int rv;

	memset(v, 0, sizeof(*v));
	v->loop = loop;
	v->log = log;
	snprintf(v->state_dir, sizeof(v->state_dir), "%s", state_dir);
	snprintf(v->auth_path, sizeof(v->auth_path), "%.4000s/auth.db", state_dir);
	snprintf(v->vmk_sock, sizeof(v->vmk_sock), "%.4000s/vmkernel.sock", state_dir);
	snprintf(v->cd_sock, sizeof(v->cd_sock), "%.4000s/clusterd.sock", state_dir);
	rv = kb_node_id(state_dir, &v->host_id, e);
	if (rv)
		return rv;
	rv = hd_auth_cfg_load(v, &v->db, &from, e);
	if (rv == 0 && !v->db) {
		rv = root_password(v, root_password_file, pw, sizeof(pw), e);
		if (rv == 0)
			rv = hostd_auth_db_create(&v->db);
		if (rv == 0)
			rv = hostd_auth_db_bootstrap(v->db, pw, e);
		OPENSSL_cleanse(pw, sizeof(pw));
		if (rv == 0)
			kb_log(log, KB_LOG_INFO, "user database %s made with user root",
			       HD_AUTH_CFG_PATH);
	}
	if (rv)
		return rv;
	rv = hd_auth_cfg_start(v, from, e);
	if (rv)
		return rv;
	/* An unknown user's login is checked against this, so it costs as long as a known
	 * user's: the timing does not tell which names exist. */
	{
		uint8_t r[24];
		char junk[64];

		if (getrandom(r, sizeof(r), 0) != sizeof(r))
			memset(r, 0x5a, sizeof(r));
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(junk + 2 * i, 3, "%02x", r[i]);
		rv = hostd_auth_password_hash(junk, v->dummy_hash, e);
		if (rv)
			return rv;
	}
	rv = hostd_auth_sessions_create(&v->sessions, NULL);
	if (rv == 0)
		rv = hostd_auth_ratelimit_create(&v->rl, NULL);
	if (rv) {
		kb_errmsg_setf(e, "out of memory");
		return rv;
	}
	uv_timer_init(loop, &v->expire_timer);
	v->expire_timer.data = v;
	uv_timer_start(&v->expire_timer, on_expire, EXPIRE_EVERY_MS, EXPIRE_EVERY_MS);
	uv_unref((uv_handle_t *)&v->expire_timer);
	if (hd_auth_sync_start(v)) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int hd_vim_session_idle_set(struct hd_vim *v, unsigned seconds)
{
	struct hostd_auth_sessions_config cfg = {.idle_timeout_ns = seconds * 1000000000ull};
	struct hostd_auth_sessions *s;
	int rv = hostd_auth_sessions_create(&s, &cfg);

	if (rv)
		return rv;
	hostd_auth_sessions_destroy(v->sessions);
	v->sessions = s;
	return 0;
}

void hd_vim_auth_db_replace(struct hd_vim *v, struct hostd_auth_db *db)
{
	struct hostd_auth_db *old = v->db;
	size_t dropped = 0;

	for (size_t i = 0; i < hostd_auth_user_count(old); i++) {
		const struct hostd_auth_user *u = hostd_auth_user_at(old, i);
		const struct hostd_auth_user *now = hostd_auth_user_get(db, u->name);

		if (!now || strcmp(now->hash, u->hash) != 0)
			dropped += hostd_auth_session_drop_user(v->sessions, u->name);
	}
	v->db = db;
	hostd_auth_db_destroy(old);
	if (dropped)
		kb_log(v->log, KB_LOG_INFO, "%zu session%s ended: user removed or password changed",
		       dropped, dropped == 1 ? "" : "s");
}

void hd_vim_close(struct hd_vim *v)
{
	hd_auth_sync_stop(v);
	hd_auth_cfg_stop(v);
	if (v->sessions)
		uv_close((uv_handle_t *)&v->expire_timer, NULL);
	hostd_auth_ratelimit_destroy(v->rl);
	hostd_auth_sessions_destroy(v->sessions);
	hostd_auth_db_destroy(v->db);
	v->rl = NULL;
	v->sessions = NULL;
	v->db = NULL;
}

/* ---- authorization ------------------------------------------------------------------------ */

/* The address part of "A.B.C.D:port" (rate limits count per address, not per port). */
static void source_of(struct hd_call *call, char *out, size_t size)
{
	const char *p = hd_call_peer(call);
	const char *colon = p ? strrchr(p, ':') : NULL;
	size_t n = colon ? (size_t)(colon - p) : (p ? strlen(p) : 0);

	if (n >= size)
		n = size - 1;
	memcpy(out, p ? p : "", n);
	out[n] = '\0';
}

const char *hd_vim_authorize(struct hd_call *call, const char *const *path, size_t n,
			     const char *privilege)
{
	struct hd_vim *v = hd_call_server_data(call);
	const char *token = hd_call_header(call, HD_SESSION_HEADER);
	static struct hostd_auth_session_info info; /* loop thread only */

	if (!token) {
		hd_call_error(call, HD_UNAUTHENTICATED, "log in first (no %s header)",
			      HD_SESSION_HEADER);
		return NULL;
	}
	if (hostd_auth_session_lookup(v->sessions, token, kb_now_ns(), &info) != 0) {
		hd_call_error(call, HD_UNAUTHENTICATED,
			      "the session has expired or does not exist");
		return NULL;
	}
	if (privilege && !hostd_auth_check(v->db, info.user, path, n, privilege)) {
		kb_log(v->log, KB_LOG_INFO, "%s: user %s lacks %s on %s",
		       hd_call_method(call)->name, info.user, privilege, path[n - 1]);
		hd_call_error(call, HD_PERMISSION_DENIED, "user %s lacks privilege %s on %s",
			      info.user, privilege, path[n - 1]);
		return NULL;
	}
	return info.user;
}

/* ---- Login ------------------------------------------------------------------------------ */

struct login {
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call; /* NULL once the client went away */
	char user[HOSTD_AUTH_NAME_MAX + 1];
	char password[HOSTD_AUTH_PASSWORD_MAX + 1];
	char hash[HOSTD_AUTH_HASH_MAX];
	char source[HOSTD_AUTH_SOURCE_MAX];
	bool known, ok;
};

static void login_cancel(struct hd_call *call, void *arg)
{
	struct login *l = arg;

	(void)call;
	l->call = NULL;
}

static void login_work(uv_work_t *w)
{
	struct login *l = w->data;

	l->ok = hostd_auth_password_verify(l->known ? l->hash : l->v->dummy_hash, l->password) &&
		l->known;
	OPENSSL_cleanse(l->password, sizeof(l->password));
}

static void login_done(uv_work_t *w, int status)
{
	struct login *l = w->data;
	struct hd_vim *v = l->v;
	Keel__Vim__Session s = KEEL__VIM__SESSION__INIT;
	struct hostd_auth_session_info info;
	char token[HOSTD_AUTH_TOKEN_LEN + 1];
	uint64_t now = kb_now_ns();
	int rv;

	if (!l->call) {
		kb_free(l);
		return;
	}
	hd_call_on_cancel(l->call, NULL, NULL);
	if (status || !l->ok) {
		int locked = hostd_auth_ratelimit_fail(v->rl, l->source, now);

		kb_log(v->log, KB_LOG_WARN, "login of %s from %s failed: %s%s", l->user, l->source,
		       l->known ? "wrong password" : "no such user",
		       locked ? "; further attempts from there refused for a while" : "");
		hd_call_error(l->call, HD_UNAUTHENTICATED, "incorrect user name or password");
		kb_free(l);
		return;
	}
	hostd_auth_ratelimit_success(v->rl, l->source);
	rv = hostd_auth_session_open(v->sessions, l->user, l->source, now, kb_wall_ns() / 1000000u,
				     token, &info);
	if (rv) {
		hd_call_error(l->call, HD_RESOURCE_EXHAUSTED, "cannot open a session: %s",
			      hostd_auth_strerror(rv));
		kb_free(l);
		return;
	}
	kb_log(v->log, KB_LOG_INFO, "user %s logged in from %s (session %s)", l->user, l->source,
	       info.key);
	s.token = token;
	s.user = l->user;
	s.created_ms = info.created_wall_ms;
	s.idle_timeout_s = info.idle_timeout_ns / 1000000000u;
	hd_call_reply(l->call, &s.base);
	OPENSSL_cleanse(token, sizeof(token));
	kb_free(l);
}

void hd_vim_login(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__LoginRequest *rq = (const Keel__Vim__LoginRequest *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const struct hostd_auth_user *u;
	uint64_t retry = 0;
	struct login *l;

	l = kb_calloc(1, sizeof(*l));
	if (!l) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	source_of(call, l->source, sizeof(l->source));
	if (hostd_auth_ratelimit_check(v->rl, l->source, kb_now_ns(), &retry) != 0) {
		kb_log(v->log, KB_LOG_WARN, "login of %s from %s refused: too many failures",
		       rq->user ? rq->user : "", l->source);
		hd_call_error(call, HD_UNAUTHENTICATED,
			      "too many failed logins from %s: try again in %llu s", l->source,
			      (unsigned long long)((retry + 999999999u) / 1000000000u));
		kb_free(l);
		return;
	}
	if (!rq->user || !rq->password || strlen(rq->user) > HOSTD_AUTH_NAME_MAX ||
	    strlen(rq->password) > HOSTD_AUTH_PASSWORD_MAX) {
		hostd_auth_ratelimit_fail(v->rl, l->source, kb_now_ns());
		hd_call_error(call, HD_UNAUTHENTICATED, "incorrect user name or password");
		kb_free(l);
		return;
	}
	snprintf(l->user, sizeof(l->user), "%s", rq->user);
	snprintf(l->password, sizeof(l->password), "%s", rq->password);
	u = hostd_auth_user_get(v->db, l->user);
	l->known = u != NULL;
	if (u)
		snprintf(l->hash, sizeof(l->hash), "%s", u->hash);
	l->v = v;
	l->call = call;
	l->work.data = l;
	hd_call_on_cancel(call, login_cancel, l);
	if (uv_queue_work(v->loop, &l->work, login_work, login_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		OPENSSL_cleanse(l->password, sizeof(l->password));
		kb_free(l);
		hd_call_error(call, HD_UNAVAILABLE, "cannot check the password now");
	}
}

/* ---- Logout, CurrentSession -------------------------------------------------------------- */

void hd_vim_logout(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	Keel__Vim__LogoutReply rp = KEEL__VIM__LOGOUT_REPLY__INIT;
	const char *token = hd_call_header(call, HD_SESSION_HEADER);
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	const char *user = hd_vim_authorize(call, root, 1, NULL);

	(void)req;
	if (!user)
		return;
	kb_log(v->log, KB_LOG_INFO, "user %s logged out", user);
	hostd_auth_session_logout(v->sessions, token);
	hd_call_reply(call, &rp.base);
}

void hd_vim_current_session(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	Keel__Vim__Session s = KEEL__VIM__SESSION__INIT;
	const char *token = hd_call_header(call, HD_SESSION_HEADER);
	struct hostd_auth_session_info info;
	char *privs[64];
	size_t np = 0;
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};

	(void)req;
	if (!hd_vim_authorize(call, root, 1, NULL))
		return;
	hostd_auth_session_lookup(v->sessions, token, kb_now_ns(), &info);
	for (size_t i = 0; i < hostd_auth_priv_count() && np < 64; i++)
		if (hostd_auth_check(v->db, info.user, root, 1, hostd_auth_priv_name(i)))
			privs[np++] = (char *)hostd_auth_priv_name(i);
	s.token = "";
	s.user = info.user;
	s.created_ms = info.created_wall_ms;
	s.idle_timeout_s = info.idle_timeout_ns / 1000000000u;
	s.n_privileges_root = np;
	s.privileges_root = privs;
	hd_call_reply(call, &s.base);
}

/* ---- a session for an already authenticated user (LoginByCertificate) ---------------------- */

void hd_vim_session_start(struct hd_call *call, const char *user, const char *how)
{
	struct hd_vim *v = hd_call_server_data(call);
	Keel__Vim__Session s = KEEL__VIM__SESSION__INIT;
	struct hostd_auth_session_info info;
	char token[HOSTD_AUTH_TOKEN_LEN + 1], source[HOSTD_AUTH_SOURCE_MAX];
	int rv;

	source_of(call, source, sizeof(source));
	rv = hostd_auth_session_open(v->sessions, user, source, kb_now_ns(),
				     kb_wall_ns() / 1000000u, token, &info);
	if (rv) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "cannot open a session: %s",
			      hostd_auth_strerror(rv));
		return;
	}
	kb_log(v->log, KB_LOG_INFO, "user %s logged in from %s (session %s)%s", user, source,
	       info.key, how ? how : "");
	s.token = token;
	s.user = (char *)user;
	s.created_ms = info.created_wall_ms;
	s.idle_timeout_s = info.idle_timeout_ns / 1000000000u;
	hd_call_reply(call, &s.base);
	OPENSSL_cleanse(token, sizeof(token));
}
