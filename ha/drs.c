/*
 * DRS-style balancing (ha/drs.h): the imbalance measure, the threshold's target, and the
 * greedy pass that fixes mandatory rules, then preferential ones, then balances the
 * load, one move at a time on the working state of ha/place.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ha/drs.h"
#include "lib/heap.h"

typedef unsigned __int128 u128;

/* Target imbalance per threshold, in millionths. */
static const uint64_t target_ppm[6] = {0, 300000, 200000, 100000, 50000, 20000};

#define HOLD_MAX_MS (24ULL * 3600 * 1000)

/* Balance candidates: the `src` most loaded hosts against the `dst` least loaded, then
 * wider, then every pair. */
static const uint32_t widen[][2] = {{2, 4}, {8, 16}, {UINT32_MAX, UINT32_MAX}};

double ha_drs_target(uint32_t threshold)
{
	if (threshold < 1 || threshold > 5)
		return -1.0;
	return (double)target_ppm[threshold] / (double)HA__LOAD_ONE;
}

const char *ha_drs_reason_str(enum ha_drs_reason r)
{
	switch (r) {
	case HA_DRS_FIX_MANDATORY:
		return "fix mandatory rule";
	case HA_DRS_FIX_PREFERENTIAL:
		return "fix preferential rule";
	case HA_DRS_BALANCE:
		return "balance";
	}
	return "?";
}

const char *ha_drs_automation_str(enum ha_drs_automation a)
{
	switch (a) {
	case HA_DRS_MANUAL:
		return "manual";
	case HA_DRS_PARTIAL:
		return "partially automated";
	case HA_DRS_FULL:
		return "fully automated";
	}
	return "?";
}

void ha_drs_config_init(struct ha_drs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->threshold = HA_DRS_THRESHOLD_DEFAULT;
	cfg->automation = HA_DRS_MANUAL;
	cfg->hold_ms = HA_DRS_HOLD_MS_DEFAULT;
	cfg->max_moves = HA_DRS_MOVES_DEFAULT;
}

static int check_config(const struct ha_drs_config *cfg, struct kb_errmsg *err)
{
	if (cfg->threshold < 1 || cfg->threshold > 5) {
		kb_errmsg_setf(err, "DRS: migration threshold %u, expected 1..5", cfg->threshold);
		return -EINVAL;
	}
	if (cfg->automation != HA_DRS_MANUAL && cfg->automation != HA_DRS_PARTIAL &&
	    cfg->automation != HA_DRS_FULL) {
		kb_errmsg_setf(err, "DRS: unknown automation level %d", (int)cfg->automation);
		return -EINVAL;
	}
	if (cfg->hold_ms > HOLD_MAX_MS) {
		kb_errmsg_setf(err, "DRS: hold time %" PRIu64 " ms, at most %llu", cfg->hold_ms,
			       HOLD_MAX_MS);
		return -EINVAL;
	}
	if (cfg->max_moves < 1 || cfg->max_moves > HA_DRS_MOVES_MAX) {
		kb_errmsg_setf(err, "DRS: %u moves per pass, expected 1..%d", cfg->max_moves,
			       HA_DRS_MOVES_MAX);
		return -EINVAL;
	}
	return 0;
}

static bool held(const struct ha_place_vm *vm, const struct ha_drs_config *cfg)
{
	if (vm->last_moved_ms == 0)
		return false;
	if (vm->last_moved_ms > cfg->now_ms) /* moved "later" than now: hold it */
		return true;
	return cfg->now_ms - vm->last_moved_ms < cfg->hold_ms;
}

struct pass {
	struct ha__ws w;
	const struct ha_drs_config *cfg;
	bool *frozen;	/* per VM: held, or moved earlier in this pass */
	uint32_t *seen; /* per VM: last round it was looked at (fix phases) */
	uint32_t round;
	uint32_t *order; /* balanced host indexes, most loaded first */
	u128 target;	 /* n^2 * target^2: compared with the variance figure */
};

/* A move and what it does. */
struct cand {
	int32_t v, to;
	int hard, soft; /* change of violations, summed over the VM's rules */
	uint32_t rule;	/* index of the rule it fixes most */
	u128 var;	/* variance figure afterwards */
	u128 gain;	/* balance: variance figure removed */
	uint64_t cost;	/* MiB moved */
};

static uint64_t cost_of(const struct ha_place_vm *vm)
{
	return vm->mem_size_mib ? vm->mem_size_mib : 1;
}

static bool movable(const struct pass *p, uint32_t v)
{
	int32_t h = p->w.vm_host[v];

	return h >= 0 && p->w.c->hosts[h].usable && !p->frozen[v];
}

/* Sums the rule changes of moving VM v to `to` into c. False when the move would add
 * violation to any mandatory rule, or (strict) to any rule at all. */
static bool rule_deltas(struct pass *p, uint32_t v, int32_t to, bool strict, bool hard_fix,
			struct cand *c)
{
	struct ha__ws *w = &p->w;
	int best = 0;

	c->hard = c->soft = 0;
	c->rule = UINT32_MAX;
	for (uint32_t i = w->v_off[v]; i < w->v_off[v + 1]; i++) {
		uint32_t r = w->v_rule[i];
		bool mand = w->c->rules[r].mandatory;
		int d = ha__rule_delta(w, r, v, w->vm_host[v], to);

		if (d > 0 && (mand || strict))
			return false;
		if (mand)
			c->hard += d;
		else
			c->soft += d;
		if (d < best && mand == hard_fix) {
			best = d;
			c->rule = r;
		}
	}
	return true;
}

/* Is a better than b? Fix phases: less violation, then less of the other kind, then the
 * lower variance, the cheaper move, the lower VM id, the lower host id. */
static bool fix_better(const struct pass *p, const struct cand *a, const struct cand *b,
		       bool hard_fix)
{
	const struct ha_cluster *c = p->w.c;

	if (b->v < 0)
		return true;
	if (hard_fix && a->hard != b->hard)
		return a->hard < b->hard;
	if (a->soft != b->soft)
		return a->soft < b->soft;
	if (a->var != b->var)
		return a->var < b->var;
	if (a->cost != b->cost)
		return a->cost < b->cost;
	if (a->v != b->v)
		return c->vms[a->v].id < c->vms[b->v].id;
	return a->to < b->to;
}

/* Balance: the larger reduction per MiB, then the lower variance, VM id, host. */
static bool bal_better(const struct pass *p, const struct cand *a, const struct cand *b)
{
	u128 x, y;

	if (b->v < 0)
		return true;
	x = a->gain * b->cost;
	y = b->gain * a->cost;
	if (x != y)
		return x > y;
	if (a->var != b->var)
		return a->var < b->var;
	if (a->v != b->v)
		return p->w.c->vms[a->v].id < p->w.c->vms[b->v].id;
	return a->to < b->to;
}

/* The best fix of a violated rule of the given kind (mandatory or preferential). */
static void best_fix(struct pass *p, bool hard_fix, u128 var_now, struct cand *best)
{
	struct ha__ws *w = &p->w;
	u128 cap = var_now > p->target ? var_now : p->target;

	best->v = -1;
	p->round++;
	for (uint32_t r = 0; r < w->nr; r++) {
		if (w->c->rules[r].mandatory != hard_fix || ha__rule_violation(w, r) == 0)
			continue;
		for (uint32_t i = w->r_off[r]; i < w->r_off[r + 1]; i++) {
			uint32_t v = w->r_vm[i];

			if (!movable(p, v) || p->seen[v] == p->round)
				continue;
			p->seen[v] = p->round;
			for (uint32_t h = 0; h < w->nh; h++) {
				struct cand c = {.v = (int32_t)v, .to = (int32_t)h};

				if ((int32_t)h == w->vm_host[v] || !ha__fits(w, v, h, NULL) ||
				    !rule_deltas(p, v, (int32_t)h, !hard_fix, hard_fix, &c))
					continue;
				if ((hard_fix ? c.hard : c.soft) >= 0)
					continue;
				c.var = ha__var_after(w, v, w->vm_host[v], (int32_t)h);
				if (!hard_fix && c.var > cap)
					continue;
				c.cost = cost_of(&w->c->vms[v]);
				if (fix_better(p, &c, best, hard_fix))
					*best = c;
			}
		}
	}
}

static int by_load(const void *a, const void *b, void *arg)
{
	const struct ha__ws *w = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (w->load[x] != w->load[y])
		return w->load[x] > w->load[y] ? -1 : 1;
	return x < y ? -1 : 1;
}

/* The best balance move from the `ns` most loaded hosts to the `nd` least loaded. The
 * source's side of the figures is computed once per VM, the rule checks only for a move
 * that would be the best so far. */
static void best_balance(struct pass *p, uint32_t ns, uint32_t nd, u128 var_now, struct cand *best)
{
	struct ha__ws *w = &p->w;
	uint32_t n = w->n_bal;

	best->v = -1;
	if (ns > n)
		ns = n;
	if (nd > n)
		nd = n;
	for (uint32_t si = 0; si < ns; si++) {
		uint32_t s = p->order[si];

		for (int32_t v = w->h_head[s]; v >= 0; v = w->v_next[v]) {
			const struct ha_place_vm *vm = &w->c->vms[v];
			uint64_t lo = w->load[s], ln;
			u128 s1, s2;

			if (p->frozen[v])
				continue;
			ln = ha__load(w, s, w->cpu_dem[s] - vm->cpu_mhz,
				      w->mem_dem[s] - vm->mem_mib);
			s1 = w->s1 - lo + ln;
			s2 = w->s2 - (u128)lo * lo + (u128)ln * ln;
			for (uint32_t di = n - nd; di < n; di++) {
				uint32_t d = p->order[di];
				struct cand c = {.v = v, .to = (int32_t)d};
				uint64_t dl = w->load[d], dn;

				if (d == s || !ha__fits(w, (uint32_t)v, d, NULL))
					continue;
				dn = ha__load(w, d, w->cpu_dem[d] + vm->cpu_mhz,
					      w->mem_dem[d] + vm->mem_mib);
				c.var = ha__var_num(n, s1 - dl + dn,
						    s2 - (u128)dl * dl + (u128)dn * dn);
				if (c.var >= var_now)
					continue;
				c.gain = var_now - c.var;
				c.cost = cost_of(vm);
				if (!bal_better(p, &c, best) ||
				    !rule_deltas(p, (uint32_t)v, (int32_t)d, true, false, &c))
					continue;
				*best = c;
			}
		}
	}
}

static void record(struct pass *p, const struct cand *c, enum ha_drs_reason reason,
		   struct ha_drs_rec *rec)
{
	struct ha__ws *w = &p->w;
	const struct ha_place_vm *vm = &w->c->vms[c->v];

	memset(rec, 0, sizeof(*rec));
	rec->vm = vm->id;
	rec->from = w->c->hosts[w->vm_host[c->v]].id;
	rec->to = w->c->hosts[c->to].id;
	rec->reason = reason;
	rec->priority = (uint32_t)reason;
	rec->rule = reason != HA_DRS_BALANCE && c->rule != UINT32_MAX ? w->c->rules[c->rule].id : 0;
	rec->bytes = vm->mem_size_mib << 20;
	rec->imbalance_before = ha__imbalance(w->n_bal, ha__var_num(w->n_bal, w->s1, w->s2));
	rec->imbalance_after = ha__imbalance(w->n_bal, c->var);
	rec->automatic = p->cfg->automation == HA_DRS_FULL;
	ha__ws_move(w, (uint32_t)c->v, c->to);
	p->frozen[c->v] = true;
}

static void pass_close(struct pass *p)
{
	kb_free(p->frozen);
	kb_free(p->seen);
	kb_free(p->order);
	ha__ws_close(&p->w);
}

static int pass_init(struct pass *p, const struct ha_cluster *c, const struct ha_drs_config *cfg,
		     struct kb_errmsg *err)
{
	uint64_t t;
	int rv;

	memset(p, 0, sizeof(*p));
	if ((rv = check_config(cfg, err)) < 0)
		return rv;
	if ((rv = ha__ws_init(&p->w, c, err)) < 0)
		return rv;
	p->cfg = cfg;
	p->frozen = kb_calloc(p->w.nv + 1, sizeof(*p->frozen));
	p->seen = kb_calloc(p->w.nv + 1, sizeof(*p->seen));
	p->order = kb_calloc(p->w.nh + 1, sizeof(*p->order));
	if (!p->frozen || !p->seen || !p->order) {
		pass_close(p);
		kb_errmsg_setf(err, "DRS: out of memory");
		return -ENOMEM;
	}
	for (uint32_t v = 0; v < p->w.nv; v++)
		p->frozen[v] = held(&c->vms[v], cfg);
	t = target_ppm[cfg->threshold];
	p->target = (u128)p->w.n_bal * p->w.n_bal * t * t;
	return 0;
}

static void sort_hosts(struct pass *p)
{
	uint32_t k = 0;

	for (uint32_t h = 0; h < p->w.nh; h++)
		if (p->w.balanced[h])
			p->order[k++] = h;
	qsort_r(p->order, k, sizeof(*p->order), by_load, &p->w);
}

int ha_drs_recommend(const struct ha_cluster *c, const struct ha_drs_config *cfg,
		     struct ha_drs_rec *recs, size_t cap, size_t *n, struct kb_errmsg *err)
{
	size_t max = cfg->max_moves < cap ? cfg->max_moves : cap, k = 0;
	struct pass p;
	struct cand best;
	int rv;

	if ((rv = pass_init(&p, c, cfg, err)) < 0)
		return rv;
	/* 1. mandatory rules, 2. preferential rules */
	for (int phase = 0; phase < 2; phase++) {
		bool hard = phase == 0;

		while (k < max) {
			best_fix(&p, hard, ha__var_num(p.w.n_bal, p.w.s1, p.w.s2), &best);
			if (best.v < 0)
				break;
			record(&p, &best, hard ? HA_DRS_FIX_MANDATORY : HA_DRS_FIX_PREFERENTIAL,
			       &recs[k++]);
		}
	}
	/* 3. balance */
	while (k < max) {
		u128 var_now = ha__var_num(p.w.n_bal, p.w.s1, p.w.s2);

		if (var_now <= p.target)
			break;
		sort_hosts(&p);
		best.v = -1;
		for (size_t i = 0; i < sizeof(widen) / sizeof(widen[0]) && best.v < 0; i++)
			best_balance(&p, widen[i][0], widen[i][1], var_now, &best);
		if (best.v < 0)
			break;
		record(&p, &best, HA_DRS_BALANCE, &recs[k++]);
	}
	*n = k;
	pass_close(&p);
	return 0;
}

int ha_drs_status(const struct ha_cluster *c, const struct ha_drs_config *cfg,
		  struct ha_drs_status *st, struct kb_errmsg *err)
{
	struct pass p;
	u128 var;
	int rv;

	if ((rv = pass_init(&p, c, cfg, err)) < 0)
		return rv;
	memset(st, 0, sizeof(*st));
	var = ha__var_num(p.w.n_bal, p.w.s1, p.w.s2);
	st->imbalance = ha__imbalance(p.w.n_bal, var);
	st->target = ha_drs_target(cfg->threshold);
	st->balanced = var <= p.target;
	st->hosts = p.w.n_bal;
	for (uint32_t v = 0; v < p.w.nv; v++) {
		if (p.w.vm_host[v] < 0)
			continue;
		st->vms++;
		st->held += held(&c->vms[v], cfg);
	}
	for (uint32_t h = 0; h < p.w.nh; h++)
		st->overcommitted +=
		    p.w.mem_res[h] > c->hosts[h].mem_mib || p.w.cpu_res[h] > c->hosts[h].cpu_mhz;
	for (uint32_t r = 0; r < p.w.nr; r++) {
		uint32_t viol = ha__rule_violation(&p.w, r);
		bool mand = c->rules[r].mandatory;

		if (viol == 0)
			continue;
		if (mand)
			st->mandatory_violated++;
		else
			st->preferential_violated++;
		if (st->n_violations < HA_DRS_STATUS_RULES)
			st->violations[st->n_violations++] = (struct ha_drs_violation){
			    .rule = c->rules[r].id, .mandatory = mand, .vms = viol};
	}
	pass_close(&p);
	return 0;
}
