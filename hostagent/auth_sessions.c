/*
 * Sessions: what a successful Login opens and every later call presents.
 *
 * A session is found by its token, 32 bytes from getrandom(2) written as 64 hex digits.
 * Lookup compares the presented token with every live one in constant time, so neither
 * the answer's timing nor the table's order says how much of a guess was right; the table
 * is small (max_total, 1024 by default), so the linear scan costs microseconds. A session
 * dies when it has been idle longer than idle_timeout_ns (each lookup refreshes it), on
 * logout, or when terminated by its public key, a separate random id that listings show
 * instead of the token. Sessions live in memory only: a restarted hostd forgets them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "lib/heap.h"
#include "hostagent/auth_int.h"

#define DEFAULT_IDLE_NS	     (30ull * 60 * 1000000000)
#define DEFAULT_MAX_PER_USER 64
#define DEFAULT_MAX_TOTAL    1024

struct session {
	char token[HOSTD_AUTH_TOKEN_LEN + 1];
	struct hostd_auth_session_info info;
};

struct hostd_auth_sessions {
	struct hostd_auth_sessions_config cfg;
	struct session *v; /* oldest first */
	size_t n;
};

int hostd_auth_sessions_create(struct hostd_auth_sessions **out,
			       const struct hostd_auth_sessions_config *cfg)
{
	struct hostd_auth_sessions *s = kb_calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	if (cfg)
		s->cfg = *cfg;
	if (!s->cfg.idle_timeout_ns)
		s->cfg.idle_timeout_ns = DEFAULT_IDLE_NS;
	if (!s->cfg.max_per_user)
		s->cfg.max_per_user = DEFAULT_MAX_PER_USER;
	if (!s->cfg.max_total)
		s->cfg.max_total = DEFAULT_MAX_TOTAL;
	s->v = kb_calloc(s->cfg.max_total, sizeof(*s->v));
	if (!s->v) {
		kb_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void hostd_auth_sessions_destroy(struct hostd_auth_sessions *s)
{
	if (!s)
		return;
	explicit_bzero(s->v, s->cfg.max_total * sizeof(*s->v));
	kb_free(s->v);
	kb_free(s);
}

/* n random bytes as 2n hex digits and a NUL. 0 or -EIO. */
static int random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[32];
	size_t got = 0;

	if (n > sizeof(b))
		return -EINVAL;
	while (got < n) {
		ssize_t r = getrandom(b + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		got += (size_t)r;
	}
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = 0;
	explicit_bzero(b, sizeof(b));
	return 0;
}

static bool expired(const struct hostd_auth_sessions *s, const struct session *e, uint64_t now)
{
	return now >= e->info.last_used_ns && now - e->info.last_used_ns >= s->cfg.idle_timeout_ns;
}

static void drop(struct hostd_auth_sessions *s, size_t i)
{
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
	s->n--;
	explicit_bzero(&s->v[s->n], sizeof(s->v[0]));
}

size_t hostd_auth_sessions_expire(struct hostd_auth_sessions *s, uint64_t now_ns)
{
	size_t dropped = 0;

	for (size_t i = s->n; i-- > 0;)
		if (expired(s, &s->v[i], now_ns)) {
			drop(s, i);
			dropped++;
		}
	return dropped;
}

int hostd_auth_session_open(struct hostd_auth_sessions *s, const char *user, const char *source,
			    uint64_t now_ns, uint64_t wall_ms, char token[HOSTD_AUTH_TOKEN_LEN + 1],
			    struct hostd_auth_session_info *info)
{
	struct session *e;
	unsigned mine = 0;
	int rv;

	hostd_auth_sessions_expire(s, now_ns);
	for (size_t i = 0; i < s->n; i++)
		mine += strcmp(s->v[i].info.user, user) == 0;
	if (mine >= s->cfg.max_per_user || s->n >= s->cfg.max_total)
		return HOSTD_AUTH_ELIMIT;
	e = &s->v[s->n];
	memset(e, 0, sizeof(*e));
	rv = random_hex(e->token, HOSTD_AUTH_TOKEN_LEN / 2);
	if (rv == 0)
		rv = random_hex(e->info.key, HOSTD_AUTH_SESSION_KEY_LEN / 2);
	if (rv) {
		explicit_bzero(e, sizeof(*e));
		return rv;
	}
	snprintf(e->info.user, sizeof(e->info.user), "%s", user);
	snprintf(e->info.source, sizeof(e->info.source), "%s", source ? source : "");
	e->info.created_ns = now_ns;
	e->info.last_used_ns = now_ns;
	e->info.created_wall_ms = wall_ms;
	e->info.idle_timeout_ns = s->cfg.idle_timeout_ns;
	s->n++;
	memcpy(token, e->token, sizeof(e->token));
	if (info)
		*info = e->info;
	return 0;
}

/* Index of the session with token, or -1; touches every live token the same way. */
static int find_token(const struct hostd_auth_sessions *s, const char *token)
{
	int found = -1;

	if (strlen(token) != HOSTD_AUTH_TOKEN_LEN)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		if (CRYPTO_memcmp(s->v[i].token, token, HOSTD_AUTH_TOKEN_LEN) == 0)
			found = (int)i;
	return found;
}

int hostd_auth_session_lookup(struct hostd_auth_sessions *s, const char *token, uint64_t now_ns,
			      struct hostd_auth_session_info *info)
{
	int i = find_token(s, token);

	if (i < 0)
		return HOSTD_AUTH_ESESSION;
	if (expired(s, &s->v[i], now_ns)) {
		drop(s, (size_t)i);
		return HOSTD_AUTH_ESESSION;
	}
	if (now_ns > s->v[i].info.last_used_ns)
		s->v[i].info.last_used_ns = now_ns;
	if (info)
		*info = s->v[i].info;
	return 0;
}

int hostd_auth_session_logout(struct hostd_auth_sessions *s, const char *token)
{
	int i = find_token(s, token);

	if (i < 0)
		return HOSTD_AUTH_ESESSION;
	drop(s, (size_t)i);
	return 0;
}

int hostd_auth_session_terminate(struct hostd_auth_sessions *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].info.key, key) == 0) {
			drop(s, i);
			return 0;
		}
	return HOSTD_AUTH_ESESSION;
}

size_t hostd_auth_session_drop_user(struct hostd_auth_sessions *s, const char *user)
{
	size_t dropped = 0;

	for (size_t i = s->n; i-- > 0;)
		if (strcmp(s->v[i].info.user, user) == 0) {
			drop(s, i);
			dropped++;
		}
	return dropped;
}

size_t hostd_auth_session_list(const struct hostd_auth_sessions *s, uint64_t now_ns,
			       struct hostd_auth_session_info *out, size_t max)
{
	size_t live = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (expired(s, &s->v[i], now_ns))
			continue;
		if (live < max)
			out[live] = s->v[i].info;
		live++;
	}
	return live;
}
