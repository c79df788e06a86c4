/*
 * Host liveness: the leader's judge of each host's state from its two heartbeats, and a
 * follower's judge of its own isolation (DESIGN.md section 4, docs/liveness.md).
 *
 * The leader feeds struct cd_live every network heartbeat it accepts (hbwire.h) and every
 * datastore heartbeat counter it reads (ha/hb.h), each stamped with its own monotonic
 * clock in ms, and asks cd_live_judge() for a host's state:
 *
 *   net age < CD_LIVE_UNREACHABLE_MS            connected
 *   CD_LIVE_UNREACHABLE_MS <= net age < T       unreachable
 *   net age >= T, a datastore counter of the
 *     host changed less than T ago, and at least
 *     CD_LIVE_PROOF_MS after the last network
 *     beat (capped at T/2)                       partitioned
 *   net age >= T, none did (or no record)       failed
 *
 * with T the failure timeout. The net age is the time since the last network heartbeat,
 * or since cd_live_track() when none arrived yet: a host starts as just seen, so nobody
 * is judged before the leader has watched it for a whole failure timeout (a new leader,
 * a joining host). Datastore observation follows ha/lease.h — any change of a counter is
 * an advance, timed by the observer's clock, a failed read is not fed in — with one
 * difference: the first counter read for a (host, datastore) is a baseline, not an
 * advance, and the record counts as advanced at the host's track time. So a dead host
 * whose stale record the new leader reads for the first time is not taken for a live one.
 *
 * Consequences: a failed host stays failed until a network heartbeat arrives (connected
 * at once); a datastore counter that advances again alone makes it partitioned, never
 * unreachable or connected. Judging is a pure function of the recorded times, so it does
 * not matter how often or when the caller judges. With T <= CD_LIVE_UNREACHABLE_MS there
 * is no unreachable phase.
 *
 * No clock is read here; the same code runs under a virtual clock in tests. Times that go
 * backwards count as no time elapsed. Not thread-safe per object: the leader's loop
 * thread owns it.
 */
#ifndef CD_LIVENESS_H
#define CD_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.pb-c.h"

#define CD_LIVE_UNREACHABLE_MS 350 /* 3 missed beats of 100 ms, plus slack */
#define CD_LIVE_PROOF_MS \
	400		       /* a datastore advance this long after the last network
				       beat proves a silent host alive (capped at half the
				       failure timeout) */
#define CD_LIVE_HOSTS_MAX 1024 /* as the replicated state's host limit */
#define CD_LIVE_DS_MAX	  64   /* datastores watched per host */

struct cd_live_ds {
	uint32_t ds;		  /* caller's datastore id */
	uint64_t counter;	  /* last counter read */
	uint64_t last_advance_ms; /* when it last changed (the host's track time at first) */
	bool advanced;		  /* a change was seen (not only the baseline) */
};

struct cd_live_host {
	uint64_t id;
	uint64_t tracked_ms;  /* cd_live_track() time: the start of the grace */
	uint64_t last_net_ms; /* last network heartbeat, tracked_ms before the first */
	bool net_seen;	      /* a network heartbeat arrived since tracking */
	bool isolated;	      /* the last heartbeat's isolated flag */
	unsigned n_ds;
	struct cd_live_ds *ds; /* unordered, n_ds entries */
};

struct cd_live {
	uint32_t failure_timeout_ms;
	unsigned n_hosts, cap_hosts;
	struct cd_live_host *hosts; /* sorted by id */
};

/* Sets up an empty judge with failure timeout failure_timeout_ms (> 0; the cluster
 * config's). 0, or -EINVAL. Allocates nothing; release with cd_live_close(). */
int cd_live_init(struct cd_live *l, uint32_t failure_timeout_ms);

/* Frees everything; l may be initialised again. */
void cd_live_close(struct cd_live *l);

/* Changes the failure timeout (> 0) for every later judgement. 0, or -EINVAL. */
int cd_live_set_timeout(struct cd_live *l, uint32_t failure_timeout_ms);

/* Starts watching host (id != 0) as just seen at now_ms. Tracking a host already tracked
 * changes nothing and returns 0. Errors: -EINVAL (id 0), KB_ETOOBIG (CD_LIVE_HOSTS_MAX
 * hosts already), -ENOMEM. */
int cd_live_track(struct cd_live *l, uint64_t host, uint64_t now_ms);

/* Stops watching host and drops what was recorded for it. 0, or KB_ENOTFOUND. */
int cd_live_forget(struct cd_live *l, uint64_t host);

bool cd_live_tracked(const struct cd_live *l, uint64_t host);

/* Records a network heartbeat from host received at now_ms (after cd_hb_decode() and the
 * replay rule accepted it), with its isolated flag. 0, or KB_ENOTFOUND. */
int cd_live_net_beat(struct cd_live *l, uint64_t host, uint64_t now_ms, bool isolated);

/* Records one successful read, made at now_ms, of host's heartbeat counter on the
 * datastore the caller numbers ds (ids must stay stable while the host is tracked). The
 * first read for (host, ds) is the baseline; any later different value is an advance.
 * Errors: KB_ENOTFOUND (host not tracked), KB_ETOOBIG (CD_LIVE_DS_MAX datastores already
 * for this host), -ENOMEM. */
int cd_live_ds_counter(struct cd_live *l, uint64_t host, uint32_t ds, uint64_t counter,
		       uint64_t now_ms);

/* The host's state at now_ms by the rules above: KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED,
 * _HOST_UNREACHABLE, _HOST_PARTITIONED or _HOST_FAILED; _HOST_STATE_UNSPECIFIED for a host
 * that is not tracked. */
Keel__Cluster__HostState cd_live_judge(const struct cd_live *l, uint64_t host, uint64_t now_ms);

/* The ages at now_ms, as HeartbeatPeer carries them: *net_age_ms since the last network
 * heartbeat, *ds_age_ms since the most recent datastore counter advance of the host (over
 * its datastores); -1 when none was seen since tracking (the grace and a baseline read
 * are not reported as ages). Either pointer may be NULL. 0, or KB_ENOTFOUND (both -1). */
int cd_live_ages(const struct cd_live *l, uint64_t host, uint64_t now_ms, int64_t *net_age_ms,
		 int64_t *ds_age_ms);

/* The isolated flag of the host's last network heartbeat (false before the first, or for
 * a host not tracked). */
bool cd_live_isolated(const struct cd_live *l, uint64_t host);

/*
 * A follower's isolation judge. A host is isolated when it has had no contact with a
 * leader (an ACK accepted from it, or Raft knowing a leader) for the isolation timeout,
 * by its own monotonic clock; it starts as just contacted. cd_iso_isolated() also keeps
 * since when the current verdict holds, so the caller can log each transition once:
 *
 *	bool was = iso.isolated;
 *	if (cd_iso_isolated(&iso, now, timeout) != was)
 *		log("isolated: %d since %llu", iso.isolated, iso.since_ms);
 *
 * Pure arithmetic on the caller's times; not thread-safe per object.
 */
struct cd_isolation {
	uint64_t last_contact_ms; /* last contact, or init time */
	bool isolated;		  /* verdict of the last cd_iso_isolated() */
	uint64_t since_ms;	  /* when that verdict began: last contact + timeout when it
				     became isolated; when it ended, the last contact known
				     at the judgement that saw it end */
};

void cd_iso_init(struct cd_isolation *iso, uint64_t now_ms);

/* Records contact with a leader at now_ms. The verdict changes at the next
 * cd_iso_isolated(). */
void cd_iso_contact(struct cd_isolation *iso, uint64_t now_ms);

/* True exactly when now_ms - last contact >= isolation_timeout_ms; updates isolated and
 * since_ms. */
bool cd_iso_isolated(struct cd_isolation *iso, uint64_t now_ms, uint32_t isolation_timeout_ms);

#endif
