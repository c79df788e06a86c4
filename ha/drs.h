/*
 * DRS-style balancing: the cluster's imbalance, and the migrations that fix rules and
 * even the load out. Pure functions over the caller's view of the cluster (struct
 * ha_cluster, ha/place.h) and a time the caller gives: the leader runs a pass every
 * HA_DRS_PERIOD_MS, tests run the same passes under a virtual clock.
 *
 * Load and imbalance. A host's normalized load is the larger of its CPU demand / CPU
 * capacity and its memory demand / memory capacity (the sums over its counted VMs; a host
 * of unknown CPU capacity counts memory only). The imbalance is the population standard
 * deviation of the loads of the usable hosts (1.0 = 100% of a host's capacity). Figures
 * are kept in integers (millionths) so two leaders compute the same recommendations.
 *
 * Migration threshold, 1 (conservative) .. 5 (aggressive), maps to the target imbalance
 * (ha_drs_target): 0.30, 0.20, 0.10, 0.05, 0.02. A pass balances only while the imbalance
 * is above the target; rule fixes do not depend on it.
 *
 * A pass (ha_drs_recommend) chooses up to max_moves migrations, greedily, each computed
 * on the cluster as the previous ones leave it:
 *   1. fixes of mandatory rules (priority 1): the move that removes the most violation,
 *      adds no violation to any mandatory rule, then the fewest preferential violations
 *      added, the best balance afterwards;
 *   2. fixes of preferential rules (priority 2): removes preferential violation, adds none
 *      to any rule, and leaves the imbalance at most max(now, target);
 *   3. balance (priority 3) while above the target: among moves that break or worsen no
 *      rule and lower the imbalance, the one with the largest reduction per byte moved
 *      (its memory size); the candidates come from the most and least loaded hosts, and
 *      from every pair of hosts when those give none.
 * Every move keeps reservations within the destination's capacity (ha/place.h: fits).
 * Anti-thrashing: a VM that moved less than hold_ms ago (last_moved_ms), or earlier in
 * the pass, is not moved, even to fix a rule (the fix waits for the hold to end). VMs on
 * hosts that are not usable are neither moved nor counted in the imbalance. Ties go to the
 * lower VM id, then the lower host id.
 *
 * Automation (how the caller uses the recommendations): manual — recommendations only;
 * partial — initial placement automatic (ha_place), migrations recommended; full — the
 * recommendations are applied (struct ha_drs_rec.automatic).
 *
 * Not thread-safe per call on the same arrays (they are only read). Every call allocates
 * working memory with kb_calloc and frees it before returning (-ENOMEM when it cannot).
 */
#ifndef HA_DRS_H
#define HA_DRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/place.h"
#include "lib/err.h"

#define HA_DRS_PERIOD_MS	 60000	     /* between passes */
#define HA_DRS_HOLD_MS_DEFAULT	 (5 * 60000) /* anti-thrashing hold */
#define HA_DRS_MOVES_MAX	 4096	     /* recommendations per pass */
#define HA_DRS_MOVES_DEFAULT	 32
#define HA_DRS_THRESHOLD_DEFAULT 3
#define HA_DRS_STATUS_RULES	 64 /* violated rules listed by ha_drs_status */

enum ha_drs_automation {
	HA_DRS_MANUAL = 0,
	HA_DRS_PARTIAL,
	HA_DRS_FULL,
};

struct ha_drs_config {
	uint32_t threshold; /* 1..5 */
	enum ha_drs_automation automation;
	uint64_t hold_ms;   /* a VM moved this recently stays: 0..24 h */
	uint32_t max_moves; /* per pass: 1..HA_DRS_MOVES_MAX */
	uint64_t now_ms;    /* the caller's clock, the same as last_moved_ms */
};

/* threshold HA_DRS_THRESHOLD_DEFAULT, manual, hold HA_DRS_HOLD_MS_DEFAULT,
 * HA_DRS_MOVES_DEFAULT moves, now_ms 0. */
void ha_drs_config_init(struct ha_drs_config *cfg);

enum ha_drs_reason {
	HA_DRS_FIX_MANDATORY = 1, /* fixes a "must" rule */
	HA_DRS_FIX_PREFERENTIAL,  /* fixes a "should" rule */
	HA_DRS_BALANCE,		  /* lowers the imbalance */
};

struct ha_drs_rec {
	uint64_t vm;
	uint64_t from, to; /* host ids */
	enum ha_drs_reason reason;
	uint32_t priority;	 /* 1 (mandatory fix), 2 (preferential fix), 3 (balance) */
	uint32_t rule;		 /* the rule it fixes; 0 for balance */
	uint64_t bytes;		 /* memory size moved */
	double imbalance_before; /* before this move (after the previous ones) */
	double imbalance_after;	 /* expected after it */
	bool automatic;		 /* full automation: to be applied without an operator */
};

/*
 * One pass: writes up to min(cfg->max_moves, cap) recommendations to recs, in the order
 * they are to be applied (each assumes the previous ones were), and their number to *n.
 * Returns 0; -EINVAL (bad config, err says which field) or a cluster error
 * (ha_cluster_check); -ENOMEM. Nothing is written to recs or *n on error.
 */
int ha_drs_recommend(const struct ha_cluster *c, const struct ha_drs_config *cfg,
		     struct ha_drs_rec *recs, size_t cap, size_t *n, struct kb_errmsg *err);

struct ha_drs_violation {
	uint32_t rule;
	bool mandatory;
	uint32_t vms; /* VMs out of place */
};

struct ha_drs_status {
	double imbalance;	     /* now */
	double target;		     /* for the threshold */
	bool balanced;		     /* imbalance <= target */
	uint32_t hosts;		     /* hosts in the imbalance (usable, with capacity) */
	uint32_t vms;		     /* counted VMs (powered on, on a host) */
	uint32_t held;		     /* counted VMs within their hold time */
	uint32_t overcommitted;	     /* hosts whose reservations exceed their capacity */
	uint32_t mandatory_violated; /* rules violated, by kind of rule */
	uint32_t preferential_violated;
	struct ha_drs_violation violations[HA_DRS_STATUS_RULES]; /* the first of them, in
								  * rule order */
	size_t n_violations;
};

/* Fills *st for the cluster as it is. Returns 0, or as ha_drs_recommend. */
int ha_drs_status(const struct ha_cluster *c, const struct ha_drs_config *cfg,
		  struct ha_drs_status *st, struct kb_errmsg *err);

/* The target imbalance for a migration threshold 1..5; a negative number otherwise. */
double ha_drs_target(uint32_t threshold);

const char *ha_drs_reason_str(enum ha_drs_reason r);
const char *ha_drs_automation_str(enum ha_drs_automation a);

#endif
