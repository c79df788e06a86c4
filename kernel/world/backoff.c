/*
 * Restart back-off of user worlds: the delay before a crashed world starts again doubles
 * with each crash of a series (1 s, 2 s, 4 s, ... up to 60 s by default), and a run that
 * lasted the stable time (a minute by default) ends the series, so a world that crashes
 * once a day always comes back after the first delay.
 */
#include "kernel/world/world.h"

uint64_t vmk_world_backoff_delay(const struct vmk_world_backoff *b, unsigned failures)
{
	uint64_t d = b->min_ms;

	if (failures == 0)
		return 0;
	for (unsigned i = 1; i < failures && d < b->max_ms; i++)
		d *= 2;
	return d < b->max_ms ? d : b->max_ms;
}

unsigned vmk_world_backoff_next(const struct vmk_world_backoff *b, unsigned failures,
				uint64_t ran_ms)
{
	if (ran_ms >= b->stable_ms)
		return 1;
	return failures < 1000 ? failures + 1 : failures;
}
