/*
 * The periodic workloads that need no device but the console and the agent: the console
 * counter ("kguest: counter N" every counter_ms), the heartbeat (an increasing sequence,
 * from 1, to the agent's heartbeat port every hb_ms) and the power-off timer
 * (exit_after_ms, counted from boot or from the run-time "set"). The counter and the
 * heartbeat fire once as soon as the main loop starts.
 */
#include "kguest.h"

static struct kg_timer counter_timer, hb_timer;
static uint64_t counter, hb_seq;
static uint64_t exit_at; /* TSC deadline, 0 = never */

static void restart(struct kg_timer *t, uint64_t period_ms, uint64_t now)
{
	if (t->period == kg_ms_to_tsc(period_ms))
		return;
	kg_timer_start(t, period_ms, now);
	t->next = now;
}

void kg_workload_init(uint64_t boot)
{
	uint64_t now = kg_rdtsc();

	restart(&counter_timer, kg_cfg.counter_ms, now);
	restart(&hb_timer, kg_agent_present() ? kg_cfg.hb_ms : 0, now);
	exit_at = kg_cfg.exit_after_ms ? boot + kg_ms_to_tsc(kg_cfg.exit_after_ms) : 0;
}

void kg_workload_config_changed(void)
{
	uint64_t now = kg_rdtsc();

	restart(&counter_timer, kg_cfg.counter_ms, now);
	restart(&hb_timer, kg_agent_present() ? kg_cfg.hb_ms : 0, now);
}

void kg_workload_exit_changed(void)
{
	exit_at = kg_cfg.exit_after_ms ? kg_rdtsc() + kg_ms_to_tsc(kg_cfg.exit_after_ms) : 0;
}

void kg_workload_poll(uint64_t now)
{
	if (kg_timer_due(&counter_timer, now))
		kg_printf("kguest: counter %lu\n", counter++);
	if (kg_timer_due(&hb_timer, now))
		kg_agent_heartbeat((uint32_t)++hb_seq);
	if (exit_at && now >= exit_at) {
		kg_printf("kguest: exit_after_ms reached, powering off\n");
		kg_agent_power(KGUEST_POWER_OFF);
	}
}

uint64_t kg_workload_counter(void)
{
	return counter;
}

uint64_t kg_workload_heartbeat(void)
{
	return hb_seq;
}

uint64_t kg_workload_next(void)
{
	uint64_t next = exit_at ? exit_at : UINT64_MAX;

	if (counter_timer.period)
		next = KG_MIN(next, counter_timer.next);
	if (hb_timer.period)
		next = KG_MIN(next, hb_timer.next);
	return next;
}
