/*
 * Lease observation and self-fencing.
 *
 * A host's heartbeat record (ha/hb.h) is its lease on every VM it owns. Expiry is
 * observed, never computed across clocks: an observer feeds each counter it reads,
 * stamped with its own monotonic clock, into a struct ha_lease_observer, and calls the
 * lease expired when the counter has not changed for the lease time by that clock. No
 * time written by another host is ever compared with a local one.
 *
 * Any change of the counter counts as an advance, a smaller value included: the writer
 * never moves it backwards (it continues from the value on disk across restarts), but if
 * a record is recreated the observation is about change, not order, and a host that is
 * writing is alive. A read that fails (missing, torn or corrupt record) is simply not fed
 * in: it is no change, so a record that stays unreadable expires like a stopped one.
 *
 * An observer starts as if it had just seen an advance: a host is never called expired
 * before the observer has watched it for a whole lease time.
 *
 * Everything here is pure arithmetic on the caller's timestamps: no clock is read, so the
 * same code runs under a virtual clock in tests. Not thread-safe per object.
 */
#ifndef HA_LEASE_H
#define HA_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define HA_LEASE_MS		1000 /* default lease time */
#define HA_SELF_FENCE_MARGIN_MS 400  /* default self-fence margin, see ha_self_fence_due */

enum ha_lease_state {
	HA_LEASE_ALIVE = 1,
	HA_LEASE_EXPIRED,
};

struct ha_lease_observer {
	uint64_t lease_ns;
	uint64_t counter;	 /* last counter seen (valid when seen) */
	uint64_t last_change_ns; /* observer's time of the last advance (or of init) */
	bool seen;		 /* a counter has been fed in */
};

/* Sets up an observer of one host with lease_ms (0: HA_LEASE_MS) at the observer's
 * monotonic time now_ns. */
void ha_lease_observer_init(struct ha_lease_observer *o, uint32_t lease_ms, uint64_t now_ns);

/* Feeds one successful read of the host's counter, made at now_ns. Returns true when it
 * is an advance (the first value seen, or any value different from the last). */
bool ha_lease_observe(struct ha_lease_observer *o, uint64_t counter, uint64_t now_ns);

/* The lease's state at now_ns: HA_LEASE_EXPIRED exactly when now_ns - last advance >=
 * lease time, HA_LEASE_ALIVE before. A now_ns earlier than the last advance counts as no
 * time elapsed. */
enum ha_lease_state ha_lease_state(const struct ha_lease_observer *o, uint64_t now_ns);

/* Time since the last advance at now_ns (0 if now_ns is earlier). */
uint64_t ha_lease_age_ns(const struct ha_lease_observer *o, uint64_t now_ns);

const char *ha_lease_state_str(enum ha_lease_state s);

/* Self-fencing of a vmx. last_advance_ns is the vmx's own monotonic time at which it
 * started the first read that returned its host's current counter; now_ns the same
 * clock. Returns true when guest execution must stop: no advance for lease - margin
 * (true at once when margin_ms >= lease_ms).
 *
 * Why it stops before any other host may take over: the vmx reads the record every R ms,
 * so it sees an advance at most R after the write; any other observer sees it no earlier
 * than the write. The vmx therefore stops at most R + (lease - margin) after the last
 * write, another host calls the lease expired no earlier than lease after it. Safe when
 * margin > R + the time to stop the vCPUs; the defaults (R = 250, margin = 400) leave
 * 150 ms. The vmx checks at its deadline (ha_self_fence_deadline_ns), not only when it
 * reads. A fence is final: resuming goes through the full start check again. */
bool ha_self_fence_due(uint64_t last_advance_ns, uint64_t now_ns, uint32_t lease_ms,
		       uint32_t margin_ms);

/* The first now_ns at which ha_self_fence_due() is true. */
uint64_t ha_self_fence_deadline_ns(uint64_t last_advance_ns, uint32_t lease_ms, uint32_t margin_ms);

#endif
