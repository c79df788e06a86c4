/*
 * Lease observation and self-fencing (see lease.h): a host's lease is alive while its
 * counter keeps changing by the observer's own clock. Pure functions of the caller's
 * timestamps, so they run unchanged under a virtual clock.
 */
#include "ha/lease.h"
#include "lib/time.h"

void ha_lease_observer_init(struct ha_lease_observer *o, uint32_t lease_ms, uint64_t now_ns)
{
	o->lease_ns = (uint64_t)(lease_ms ? lease_ms : HA_LEASE_MS) * KB_NSEC_PER_MSEC;
	o->counter = 0;
	o->last_change_ns = now_ns;
	o->seen = false;
}

bool ha_lease_observe(struct ha_lease_observer *o, uint64_t counter, uint64_t now_ns)
{
	if (o->seen && counter == o->counter)
		return false;
	o->seen = true;
	o->counter = counter;
	if (now_ns > o->last_change_ns)
		o->last_change_ns = now_ns;
	return true;
}

uint64_t ha_lease_age_ns(const struct ha_lease_observer *o, uint64_t now_ns)
{
	return now_ns > o->last_change_ns ? now_ns - o->last_change_ns : 0;
}

enum ha_lease_state ha_lease_state(const struct ha_lease_observer *o, uint64_t now_ns)
{
	return ha_lease_age_ns(o, now_ns) >= o->lease_ns ? HA_LEASE_EXPIRED : HA_LEASE_ALIVE;
}

const char *ha_lease_state_str(enum ha_lease_state s)
{
	switch (s) {
	case HA_LEASE_ALIVE:
		return "alive";
	case HA_LEASE_EXPIRED:
		return "expired";
	}
	return "unknown";
}

uint64_t ha_self_fence_deadline_ns(uint64_t last_advance_ns, uint32_t lease_ms, uint32_t margin_ms)
{
	uint64_t window = margin_ms >= lease_ms ? 0 : (uint64_t)(lease_ms - margin_ms);

	return last_advance_ns + window * KB_NSEC_PER_MSEC;
}

bool ha_self_fence_due(uint64_t last_advance_ns, uint64_t now_ns, uint32_t lease_ms,
		       uint32_t margin_ms)
{
	return now_ns >= ha_self_fence_deadline_ns(last_advance_ns, lease_ms, margin_ms);
}
