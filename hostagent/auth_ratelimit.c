/*
 * The login rate limiter: after max_failures failed logins from one source within
 * window_ns, that source is refused for lockout_ns, before its password is even hashed.
 * A successful login forgets the source's failures. The window slides: each source keeps
 * the times of its last max_failures failures (at most 16), and the oldest of them
 * falling out of the window makes room for one more try.
 *
 * Memory is bounded: at most capacity sources are remembered, in a hash table (chained,
 * FNV-1a over the source string) threaded on a least-recently-seen list; when full, the
 * least recently seen source is forgotten. An attacker cycling through more than capacity
 * addresses can thus make the limiter forget an address, but no single address gets more
 * than max_failures tries per window, and memory does not grow.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/heap.h"
#include "lib/list.h"
#include "hostagent/auth_int.h"

#define DEFAULT_FAILURES 5
#define DEFAULT_WINDOW	 (60ull * 1000000000)
#define DEFAULT_LOCKOUT	 (60ull * 1000000000)
#define DEFAULT_CAPACITY 4096
#define FAILURES_MAX	 16

struct source {
	char name[HOSTD_AUTH_SOURCE_MAX];
	struct source *next_hash;
	struct kb_list lru;	      /* most recently seen at the head */
	unsigned failures;	      /* entries in times */
	uint64_t times[FAILURES_MAX]; /* of the recent failures, oldest first */
	uint64_t locked_until;	      /* 0: not locked */
};

struct hostd_auth_ratelimit {
	struct hostd_auth_ratelimit_config cfg;
	struct source **buckets;
	size_t nbuckets; /* a power of two */
	struct kb_list lru;
	size_t n;
};

int hostd_auth_ratelimit_create(struct hostd_auth_ratelimit **out,
				const struct hostd_auth_ratelimit_config *cfg)
{
	struct hostd_auth_ratelimit *rl = kb_calloc(1, sizeof(*rl));

	if (!rl)
		return -ENOMEM;
	if (cfg)
		rl->cfg = *cfg;
	if (!rl->cfg.max_failures)
		rl->cfg.max_failures = DEFAULT_FAILURES;
	if (rl->cfg.max_failures > FAILURES_MAX)
		rl->cfg.max_failures = FAILURES_MAX;
	if (!rl->cfg.window_ns)
		rl->cfg.window_ns = DEFAULT_WINDOW;
	if (!rl->cfg.lockout_ns)
		rl->cfg.lockout_ns = DEFAULT_LOCKOUT;
	if (!rl->cfg.capacity)
		rl->cfg.capacity = DEFAULT_CAPACITY;
	rl->nbuckets = 16;
	while (rl->nbuckets < rl->cfg.capacity)
		rl->nbuckets *= 2;
	rl->buckets = kb_calloc(rl->nbuckets, sizeof(*rl->buckets));
	if (!rl->buckets) {
		kb_free(rl);
		return -ENOMEM;
	}
	kb_list_init(&rl->lru);
	*out = rl;
	return 0;
}

void hostd_auth_ratelimit_destroy(struct hostd_auth_ratelimit *rl)
{
	struct kb_list *pos, *tmp;

	if (!rl)
		return;
	kb_list_for_each_safe(pos, tmp, &rl->lru)
	{
		kb_free(kb_list_entry(pos, struct source, lru));
	}
	kb_free(rl->buckets);
	kb_free(rl);
}

static size_t bucket_of(const struct hostd_auth_ratelimit *rl, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)(h & (rl->nbuckets - 1));
}

/* The source's entry (moved to the LRU head), or NULL. name is already truncated. */
static struct source *find(struct hostd_auth_ratelimit *rl, const char *name)
{
	for (struct source *e = rl->buckets[bucket_of(rl, name)]; e; e = e->next_hash)
		if (strcmp(e->name, name) == 0) {
			kb_list_del(&e->lru);
			kb_list_add(&rl->lru, &e->lru);
			return e;
		}
	return NULL;
}

static void forget(struct hostd_auth_ratelimit *rl, struct source *e)
{
	struct source **pp = &rl->buckets[bucket_of(rl, e->name)];

	while (*pp != e)
		pp = &(*pp)->next_hash;
	*pp = e->next_hash;
	kb_list_del(&e->lru);
	kb_free(e);
	rl->n--;
}

static void truncated(char out[HOSTD_AUTH_SOURCE_MAX], const char *source)
{
	snprintf(out, HOSTD_AUTH_SOURCE_MAX, "%s", source ? source : "");
}

int hostd_auth_ratelimit_check(struct hostd_auth_ratelimit *rl, const char *source, uint64_t now_ns,
			       uint64_t *retry_ns)
{
	char name[HOSTD_AUTH_SOURCE_MAX];
	struct source *e;

	truncated(name, source);
	e = find(rl, name);
	if (!e || !e->locked_until)
		return 0;
	if (now_ns >= e->locked_until) {
		/* The lockout is over; the source starts afresh. */
		forget(rl, e);
		return 0;
	}
	if (retry_ns)
		*retry_ns = e->locked_until - now_ns;
	return HOSTD_AUTH_ELOCKED;
}

int hostd_auth_ratelimit_fail(struct hostd_auth_ratelimit *rl, const char *source, uint64_t now_ns)
{
	char name[HOSTD_AUTH_SOURCE_MAX];
	struct source *e;

	truncated(name, source);
	e = find(rl, name);
	if (!e) {
		if (rl->n >= rl->cfg.capacity)
			forget(rl, kb_list_entry(rl->lru.prev, struct source, lru));
		e = kb_calloc(1, sizeof(*e));
		if (!e)
			return 0;
		strcpy(e->name, name);
		e->next_hash = rl->buckets[bucket_of(rl, name)];
		rl->buckets[bucket_of(rl, name)] = e;
		kb_list_add(&rl->lru, &e->lru);
		rl->n++;
	}
	if (e->locked_until && now_ns < e->locked_until)
		return 0; /* already locked: the caller should not have tried */
	e->locked_until = 0;
	/* Forget failures that left the window. */
	while (e->failures && now_ns - e->times[0] >= rl->cfg.window_ns) {
		memmove(&e->times[0], &e->times[1], (e->failures - 1) * sizeof(e->times[0]));
		e->failures--;
	}
	e->times[e->failures++] = now_ns;
	if (e->failures < rl->cfg.max_failures)
		return 0;
	e->failures = 0;
	e->locked_until = now_ns + rl->cfg.lockout_ns;
	if (!e->locked_until)
		e->locked_until = 1;
	return 1;
}

void hostd_auth_ratelimit_success(struct hostd_auth_ratelimit *rl, const char *source)
{
	char name[HOSTD_AUTH_SOURCE_MAX];
	struct source *e;

	truncated(name, source);
	e = find(rl, name);
	if (e)
		forget(rl, e);
}

size_t hostd_auth_ratelimit_size(const struct hostd_auth_ratelimit *rl)
{
	return rl->n;
}
