/*
 * Host liveness (liveness.h): the leader's judge of host states from network heartbeats
 * and datastore heartbeat counters, and a follower's isolation judge.
 *
 * Happy path: the leader tracks every host of the replicated state, feeds each accepted
 * heartbeat and each counter read, and judges hosts on a timer; a state that differs from
 * the replicated one becomes a HostUpdate. Failure modes: unknown hosts (KB_ENOTFOUND),
 * limits (KB_ETOOBIG) and out of memory (-ENOMEM) leave everything unchanged. Hosts are
 * kept in an array sorted by id (binary search; insertion moves at most 1024 entries).
 */
#include <errno.h>
#include <string.h>

#include "clusterd/liveness.h"
#include "lib/err.h"
#include "lib/heap.h"

static uint64_t age(uint64_t since_ms, uint64_t now_ms)
{
	return now_ms > since_ms ? now_ms - since_ms : 0;
}

/* Index of host, or of where it would be inserted; *found says which. */
static unsigned find(const struct cd_live *l, uint64_t host, bool *found)
{
	unsigned lo = 0, hi = l->n_hosts;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (l->hosts[mid].id < host)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < l->n_hosts && l->hosts[lo].id == host;
	return lo;
}

static struct cd_live_host *lookup(const struct cd_live *l, uint64_t host)
{
	bool found;
	unsigned i = find(l, host, &found);

	return found ? &l->hosts[i] : NULL;
}

int cd_live_init(struct cd_live *l, uint32_t failure_timeout_ms)
{
	memset(l, 0, sizeof(*l));
	if (failure_timeout_ms == 0)
		return -EINVAL;
	l->failure_timeout_ms = failure_timeout_ms;
	return 0;
}

void cd_live_close(struct cd_live *l)
{
	for (unsigned i = 0; i < l->n_hosts; i++)
		kb_free(l->hosts[i].ds);
	kb_free(l->hosts);
	memset(l, 0, sizeof(*l));
}

int cd_live_set_timeout(struct cd_live *l, uint32_t failure_timeout_ms)
{
	if (failure_timeout_ms == 0)
		return -EINVAL;
	l->failure_timeout_ms = failure_timeout_ms;
	return 0;
}

int cd_live_track(struct cd_live *l, uint64_t host, uint64_t now_ms)
{
	struct cd_live_host *h;
	bool found;
	unsigned i;

	if (host == 0)
		return -EINVAL;
	i = find(l, host, &found);
	if (found)
		return 0;
	if (l->n_hosts >= CD_LIVE_HOSTS_MAX)
		return KB_ETOOBIG;
	if (l->n_hosts == l->cap_hosts) {
		unsigned cap = l->cap_hosts ? l->cap_hosts * 2 : 16;
		struct cd_live_host *hosts;

		if (cap > CD_LIVE_HOSTS_MAX)
			cap = CD_LIVE_HOSTS_MAX;
		hosts = kb_realloc(l->hosts, cap * sizeof(*hosts));
		if (hosts == NULL)
			return -ENOMEM;
		l->hosts = hosts;
		l->cap_hosts = cap;
	}
	memmove(&l->hosts[i + 1], &l->hosts[i], (l->n_hosts - i) * sizeof(l->hosts[0]));
	l->n_hosts++;
	h = &l->hosts[i];
	memset(h, 0, sizeof(*h));
	h->id = host;
	h->tracked_ms = now_ms;
	h->last_net_ms = now_ms;
	return 0;
}

int cd_live_forget(struct cd_live *l, uint64_t host)
{
	bool found;
	unsigned i = find(l, host, &found);

	if (!found)
		return KB_ENOTFOUND;
	kb_free(l->hosts[i].ds);
	memmove(&l->hosts[i], &l->hosts[i + 1], (l->n_hosts - i - 1) * sizeof(l->hosts[0]));
	l->n_hosts--;
	return 0;
}

bool cd_live_tracked(const struct cd_live *l, uint64_t host)
{
	return lookup(l, host) != NULL;
}

int cd_live_net_beat(struct cd_live *l, uint64_t host, uint64_t now_ms, bool isolated)
{
	struct cd_live_host *h = lookup(l, host);

	if (h == NULL)
		return KB_ENOTFOUND;
	if (now_ms > h->last_net_ms)
		h->last_net_ms = now_ms;
	h->net_seen = true;
	h->isolated = isolated;
	return 0;
}

int cd_live_ds_counter(struct cd_live *l, uint64_t host, uint32_t ds, uint64_t counter,
		       uint64_t now_ms)
{
	struct cd_live_host *h = lookup(l, host);
	struct cd_live_ds *d, *arr;

	if (h == NULL)
		return KB_ENOTFOUND;
	for (unsigned i = 0; i < h->n_ds; i++) {
		d = &h->ds[i];
		if (d->ds != ds)
			continue;
		if (counter != d->counter) {
			d->counter = counter;
			d->advanced = true;
			if (now_ms > d->last_advance_ms)
				d->last_advance_ms = now_ms;
		}
		return 0;
	}
	if (h->n_ds >= CD_LIVE_DS_MAX)
		return KB_ETOOBIG;
	arr = kb_realloc(h->ds, (h->n_ds + 1) * sizeof(*arr));
	if (arr == NULL)
		return -ENOMEM;
	h->ds = arr;
	/* the baseline: counted as advanced when the grace began, not now */
	h->ds[h->n_ds++] = (struct cd_live_ds){
	    .ds = ds, .counter = counter, .last_advance_ms = h->tracked_ms, .advanced = false};
	return 0;
}

/* The host's most recent datastore advance (its track time for baselines); false when
 * it has no datastore record. */
static bool ds_last(const struct cd_live_host *h, uint64_t *last_ms, bool advanced_only)
{
	bool any = false;

	for (unsigned i = 0; i < h->n_ds; i++) {
		const struct cd_live_ds *d = &h->ds[i];

		if (advanced_only && !d->advanced)
			continue;
		if (!any || d->last_advance_ms > *last_ms)
			*last_ms = d->last_advance_ms;
		any = true;
	}
	return any;
}

Keel__Cluster__HostState cd_live_judge(const struct cd_live *l, uint64_t host, uint64_t now_ms)
{
	const struct cd_live_host *h = lookup(l, host);
	uint64_t net_age, ds_ms = 0;

	if (h == NULL)
		return KEEL__CLUSTER__HOST_STATE__HOST_STATE_UNSPECIFIED;
	net_age = age(h->last_net_ms, now_ms);
	if (net_age >= l->failure_timeout_ms) {
		/* Partitioned only on proof of life after the network went quiet: a counter that
		 * moved within the failure timeout and well after the last network beat. A host
		 * that died at once has a last datastore advance close to its last beat (the
		 * reads lag the writes), and must not pass through "partitioned". */
		uint32_t margin = l->failure_timeout_ms / 2 < CD_LIVE_PROOF_MS
				      ? l->failure_timeout_ms / 2
				      : CD_LIVE_PROOF_MS;

		if (ds_last(h, &ds_ms, false) && age(ds_ms, now_ms) < l->failure_timeout_ms &&
		    ds_ms >= h->last_net_ms + margin)
			return KEEL__CLUSTER__HOST_STATE__HOST_PARTITIONED;
		return KEEL__CLUSTER__HOST_STATE__HOST_FAILED;
	}
	if (net_age >= CD_LIVE_UNREACHABLE_MS)
		return KEEL__CLUSTER__HOST_STATE__HOST_UNREACHABLE;
	return KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
}

static int64_t clamp_age(uint64_t a)
{
	return a > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)a;
}

int cd_live_ages(const struct cd_live *l, uint64_t host, uint64_t now_ms, int64_t *net_age_ms,
		 int64_t *ds_age_ms)
{
	const struct cd_live_host *h = lookup(l, host);
	int64_t net = -1, dsa = -1;
	uint64_t ds_ms = 0;

	if (h != NULL) {
		if (h->net_seen)
			net = clamp_age(age(h->last_net_ms, now_ms));
		if (ds_last(h, &ds_ms, true))
			dsa = clamp_age(age(ds_ms, now_ms));
	}
	if (net_age_ms != NULL)
		*net_age_ms = net;
	if (ds_age_ms != NULL)
		*ds_age_ms = dsa;
	return h != NULL ? 0 : KB_ENOTFOUND;
}

bool cd_live_isolated(const struct cd_live *l, uint64_t host)
{
	const struct cd_live_host *h = lookup(l, host);

	return h != NULL && h->isolated;
}

void cd_iso_init(struct cd_isolation *iso, uint64_t now_ms)
{
	iso->last_contact_ms = now_ms;
	iso->isolated = false;
	iso->since_ms = now_ms;
}

void cd_iso_contact(struct cd_isolation *iso, uint64_t now_ms)
{
	if (now_ms > iso->last_contact_ms)
		iso->last_contact_ms = now_ms;
}

bool cd_iso_isolated(struct cd_isolation *iso, uint64_t now_ms, uint32_t isolation_timeout_ms)
{
	bool isolated = age(iso->last_contact_ms, now_ms) >= isolation_timeout_ms;

	if (isolated != iso->isolated) {
		iso->isolated = isolated;
		iso->since_ms =
		    isolated ? iso->last_contact_ms + isolation_timeout_ms : iso->last_contact_ms;
	}
	return isolated;
}
