/*
 * VM placement and the working state shared with DRS (ha/place.h): validation of the
 * caller's cluster, per-host sums and normalized loads, the imbalance figure kept exactly
 * in integers, rule violations and their change under a move, and the choice of a host.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ha/place.h"
#include "lib/heap.h"

typedef unsigned __int128 u128;

enum why {
	WHY_FITS = 0,
	WHY_UNUSABLE,
	WHY_NO_CAPACITY,
	WHY_MEM_SIZE,
	WHY_CPU_SIZE,
	WHY_MEM_RES,
	WHY_CPU_RES,
	WHY_CURRENT,
	WHY_RULE,
	WHY_N
};

const char *ha_rule_str(enum ha_rule_kind kind, bool mandatory)
{
	switch (kind) {
	case HA_RULE_AFFINITY:
		return mandatory ? "must run together" : "should run together";
	case HA_RULE_ANTI_AFFINITY:
		return mandatory ? "must run apart" : "should run apart";
	case HA_RULE_HOST_AFFINITY:
		return mandatory ? "must run on the host group" : "should run on the host group";
	case HA_RULE_HOST_ANTI_AFFINITY:
		return mandatory ? "must not run on the host group"
				 : "should not run on the host group";
	}
	return "?";
}

static bool host_rule(enum ha_rule_kind k)
{
	return k == HA_RULE_HOST_AFFINITY || k == HA_RULE_HOST_ANTI_AFFINITY;
}

int32_t ha__host_index(const struct ha_cluster *c, uint64_t id)
{
	size_t lo = 0, hi = c->n_hosts;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->hosts[mid].id == id)
			return (int32_t)mid;
		if (c->hosts[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int32_t ha__vm_index(const struct ha_cluster *c, uint64_t id)
{
	size_t lo = 0, hi = c->n_vms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->vms[mid].id == id)
			return (int32_t)mid;
		if (c->vms[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int check_hosts(const struct ha_cluster *c, struct kb_errmsg *err)
{
	for (size_t i = 0; i < c->n_hosts; i++) {
		const struct ha_place_host *h = &c->hosts[i];

		if (h->id == 0) {
			kb_errmsg_setf(err, "host %zu: id 0", i);
			return -EINVAL;
		}
		if (i > 0 && h->id <= c->hosts[i - 1].id) {
			kb_errmsg_setf(
			    err, "host %" PRIu64 ": hosts must be sorted by id, no duplicates",
			    h->id);
			return -EINVAL;
		}
		if (h->mem_mib > HA_PLACE_HOST_MEM_MAX) {
			kb_errmsg_setf(err,
				       "host %" PRIu64 ": %" PRIu64 " MiB is more than %llu MiB",
				       h->id, h->mem_mib, HA_PLACE_HOST_MEM_MAX);
			return KB_ETOOBIG;
		}
	}
	return 0;
}

static int check_vms(const struct ha_cluster *c, struct kb_errmsg *err)
{
	for (size_t i = 0; i < c->n_vms; i++) {
		const struct ha_place_vm *v = &c->vms[i];

		if (v->id == 0) {
			kb_errmsg_setf(err, "VM %zu: id 0", i);
			return -EINVAL;
		}
		if (i > 0 && v->id <= c->vms[i - 1].id) {
			kb_errmsg_setf(
			    err, "VM %" PRIu64 ": VMs must be sorted by id, no duplicates", v->id);
			return -EINVAL;
		}
		if (v->host && ha__host_index(c, v->host) < 0) {
			kb_errmsg_setf(err, "VM %" PRIu64 ": unknown host %" PRIu64, v->id,
				       v->host);
			return -EINVAL;
		}
		if (v->mem_mib > HA_PLACE_VM_MEM_MAX || v->mem_res_mib > HA_PLACE_VM_MEM_MAX ||
		    v->mem_size_mib > HA_PLACE_VM_MEM_MAX) {
			kb_errmsg_setf(err,
				       "VM %" PRIu64 ": memory figures are limited to %llu MiB",
				       v->id, HA_PLACE_VM_MEM_MAX);
			return KB_ETOOBIG;
		}
		if (v->cpu_mhz > HA_PLACE_VM_CPU_MAX || v->cpu_res_mhz > HA_PLACE_VM_CPU_MAX) {
			kb_errmsg_setf(err, "VM %" PRIu64 ": CPU figures are limited to %u MHz",
				       v->id, HA_PLACE_VM_CPU_MAX);
			return KB_ETOOBIG;
		}
	}
	return 0;
}

/* stamp: n_vms entries, used to find a VM named twice by one rule. */
static int check_rule(const struct ha_cluster *c, size_t ri, uint32_t *stamp, struct kb_errmsg *err)
{
	const struct ha_rule *r = &c->rules[ri];

	if (r->id == 0) {
		kb_errmsg_setf(err, "rule %zu: id 0", ri);
		return -EINVAL;
	}
	for (size_t k = 0; k < ri; k++)
		if (c->rules[k].id == r->id) {
			kb_errmsg_setf(err, "rule %u: id used twice", r->id);
			return -EINVAL;
		}
	if (r->kind < HA_RULE_AFFINITY || r->kind > HA_RULE_HOST_ANTI_AFFINITY) {
		kb_errmsg_setf(err, "rule %u: unknown kind %d", r->id, (int)r->kind);
		return -EINVAL;
	}
	if (r->n_vms == 0 || !r->vms) {
		kb_errmsg_setf(err, "rule %u: names no VM", r->id);
		return -EINVAL;
	}
	if (r->n_vms > HA_PLACE_RULE_VMS_MAX) {
		kb_errmsg_setf(err, "rule %u: %zu VMs, at most %d", r->id, r->n_vms,
			       HA_PLACE_RULE_VMS_MAX);
		return KB_ETOOBIG;
	}
	for (size_t k = 0; k < r->n_vms; k++) {
		int32_t v = ha__vm_index(c, r->vms[k]);

		if (v < 0) {
			kb_errmsg_setf(err, "rule %u: unknown VM %" PRIu64, r->id, r->vms[k]);
			return -EINVAL;
		}
		if (stamp[v] == ri + 1) {
			kb_errmsg_setf(err, "rule %u: names VM %" PRIu64 " twice", r->id,
				       r->vms[k]);
			return -EINVAL;
		}
		stamp[v] = (uint32_t)ri + 1;
	}
	if (!host_rule(r->kind)) {
		if (r->n_hosts) {
			kb_errmsg_setf(err, "rule %u: a VM-VM rule has no host group", r->id);
			return -EINVAL;
		}
		return 0;
	}
	if (r->n_hosts == 0 || !r->hosts) {
		kb_errmsg_setf(err, "rule %u: empty host group", r->id);
		return -EINVAL;
	}
	if (r->n_hosts > c->n_hosts) {
		kb_errmsg_setf(err, "rule %u: %zu hosts in its group, the cluster has %zu", r->id,
			       r->n_hosts, c->n_hosts);
		return -EINVAL;
	}
	for (size_t k = 0; k < r->n_hosts; k++)
		if (ha__host_index(c, r->hosts[k]) < 0) {
			kb_errmsg_setf(err, "rule %u: unknown host %" PRIu64, r->id, r->hosts[k]);
			return -EINVAL;
		}
	return 0;
}

static int check_rules(const struct ha_cluster *c, uint32_t *stamp, struct kb_errmsg *err)
{
	int rv;

	for (size_t i = 0; i < c->n_rules; i++)
		if ((rv = check_rule(c, i, stamp, err)) < 0)
			return rv;
	return 0;
}

static int check_sizes(const struct ha_cluster *c, struct kb_errmsg *err)
{
	if ((c->n_hosts && !c->hosts) || (c->n_vms && !c->vms) || (c->n_rules && !c->rules)) {
		kb_errmsg_setf(err, "cluster: an array is missing");
		return -EINVAL;
	}
	if (c->n_hosts > HA_PLACE_HOSTS_MAX || c->n_vms > HA_PLACE_VMS_MAX ||
	    c->n_rules > HA_PLACE_RULES_MAX) {
		kb_errmsg_setf(err, "cluster: %zu hosts, %zu VMs, %zu rules; at most %d, %d and %d",
			       c->n_hosts, c->n_vms, c->n_rules, HA_PLACE_HOSTS_MAX,
			       HA_PLACE_VMS_MAX, HA_PLACE_RULES_MAX);
		return KB_ETOOBIG;
	}
	return 0;
}

int ha_cluster_check(const struct ha_cluster *c, struct kb_errmsg *err)
{
	uint32_t *stamp;
	int rv;

	if ((rv = check_sizes(c, err)) < 0 || (rv = check_hosts(c, err)) < 0 ||
	    (rv = check_vms(c, err)) < 0)
		return rv;
	if (c->n_rules == 0)
		return 0;
	stamp = kb_calloc(c->n_vms ? c->n_vms : 1, sizeof(*stamp));
	if (!stamp) {
		kb_errmsg_setf(err, "cluster check: out of memory");
		return -ENOMEM;
	}
	rv = check_rules(c, stamp, err);
	kb_free(stamp);
	return rv;
}

uint64_t ha__load(const struct ha__ws *w, uint32_t h, uint64_t cpu_dem, uint64_t mem_dem)
{
	const struct ha_place_host *ho = &w->c->hosts[h];
	uint64_t l = 0, lc;

	if (ho->mem_mib)
		l = mem_dem * HA__LOAD_ONE / ho->mem_mib;
	if (ho->cpu_mhz) {
		lc = cpu_dem * HA__LOAD_ONE / ho->cpu_mhz;
		if (lc > l)
			l = lc;
	}
	return l > HA__LOAD_MAX ? HA__LOAD_MAX : l;
}

u128 ha__var_num(uint32_t n, u128 s1, u128 s2)
{
	u128 a = (u128)n * s2, b = s1 * s1;

	return a > b ? a - b : 0;
}

/* Integer square root, rounded down (bit by bit: no libm, the same on every host). */
static uint64_t isqrt(u128 x)
{
	u128 r = 0, bit = (u128)1 << 126;

	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return (uint64_t)r;
}

double ha__imbalance(uint32_t n, u128 num)
{
	if (n == 0)
		return 0.0;
	return (double)isqrt(num) / n / (double)HA__LOAD_ONE;
}

u128 ha__var_after(const struct ha__ws *w, uint32_t v, int32_t from, int32_t to)
{
	const struct ha_place_vm *vm = &w->c->vms[v];
	u128 s1 = w->s1, s2 = w->s2;

	if (from == to)
		return ha__var_num(w->n_bal, s1, s2);
	if (from >= 0 && w->balanced[from]) {
		uint64_t o = w->load[from];
		uint64_t n = ha__load(w, from, w->cpu_dem[from] - vm->cpu_mhz,
				      w->mem_dem[from] - vm->mem_mib);

		s1 = s1 - o + n;
		s2 = s2 - (u128)o * o + (u128)n * n;
	}
	if (to >= 0 && w->balanced[to]) {
		uint64_t o = w->load[to];
		uint64_t n =
		    ha__load(w, to, w->cpu_dem[to] + vm->cpu_mhz, w->mem_dem[to] + vm->mem_mib);

		s1 = s1 - o + n;
		s2 = s2 - (u128)o * o + (u128)n * n;
	}
	return ha__var_num(w->n_bal, s1, s2);
}

bool ha__fits(const struct ha__ws *w, uint32_t v, uint32_t h, int *why)
{
	const struct ha_place_vm *vm = &w->c->vms[v];
	const struct ha_place_host *ho = &w->c->hosts[h];
	int r = WHY_FITS;

	if (!ho->usable)
		r = WHY_UNUSABLE;
	else if (ho->mem_mib == 0)
		r = WHY_NO_CAPACITY;
	else if (vm->mem_size_mib > ho->mem_mib || vm->mem_res_mib > ho->mem_mib)
		r = WHY_MEM_SIZE;
	else if (vm->cpu_res_mhz > ho->cpu_mhz)
		r = WHY_CPU_SIZE;
	else if (w->mem_res[h] + vm->mem_res_mib > ho->mem_mib)
		r = WHY_MEM_RES;
	else if (w->cpu_res[h] + vm->cpu_res_mhz > ho->cpu_mhz)
		r = WHY_CPU_RES;
	if (why)
		*why = r;
	return r == WHY_FITS;
}

static bool in_group(const struct ha__ws *w, uint32_t r, int32_t h)
{
	const uint64_t *b = &w->r_bits[(size_t)r * w->words];

	return h >= 0 && (b[h / 64] >> (h % 64)) & 1;
}

/* Violation of a VM-VM rule with the counted members other than `skip` where they are,
 * and `skip` on host x (-1: not counted). Uses and clears w->count. */
static uint32_t vmvm_violation(struct ha__ws *w, uint32_t r, uint32_t skip, int32_t x)
{
	uint32_t p = 0, max = 0, distinct = 0, viol;
	enum ha_rule_kind kind = w->c->rules[r].kind;

	for (uint32_t i = w->r_off[r]; i < w->r_off[r + 1]; i++) {
		uint32_t u = w->r_vm[i];
		int32_t h = w->vm_host[u];

		if (u == skip || h < 0)
			continue;
		p++;
		if (++w->count[h] == 1)
			distinct++;
		if ((uint32_t)w->count[h] > max)
			max = w->count[h];
	}
	if (x >= 0) {
		p++;
		if (w->count[x] == 0)
			distinct++;
		if ((uint32_t)w->count[x] + 1 > max)
			max = w->count[x] + 1;
	}
	viol = kind == HA_RULE_AFFINITY ? p - max : p - distinct;
	for (uint32_t i = w->r_off[r]; i < w->r_off[r + 1]; i++) {
		int32_t h = w->vm_host[w->r_vm[i]];

		if (h >= 0)
			w->count[h] = 0;
	}
	return viol;
}

static int host_term(const struct ha__ws *w, uint32_t r, int32_t x)
{
	if (x < 0)
		return 0;
	return in_group(w, r, x) != (w->c->rules[r].kind == HA_RULE_HOST_AFFINITY);
}

int ha__rule_delta(struct ha__ws *w, uint32_t r, uint32_t v, int32_t from, int32_t to)
{
	if (from == to)
		return 0;
	if (host_rule(w->c->rules[r].kind))
		return host_term(w, r, to) - host_term(w, r, from);
	return (int)vmvm_violation(w, r, v, to) - (int)vmvm_violation(w, r, v, from);
}

uint32_t ha__rule_violation(struct ha__ws *w, uint32_t r)
{
	uint32_t viol = 0;

	if (!host_rule(w->c->rules[r].kind))
		return vmvm_violation(w, r, UINT32_MAX, -1);
	for (uint32_t i = w->r_off[r]; i < w->r_off[r + 1]; i++)
		viol += host_term(w, r, w->vm_host[w->r_vm[i]]);
	return viol;
}

static void set_load(struct ha__ws *w, uint32_t h)
{
	uint64_t o = w->load[h], n;

	if (!w->balanced[h])
		return;
	n = ha__load(w, h, w->cpu_dem[h], w->mem_dem[h]);
	w->s1 = w->s1 - o + n;
	w->s2 = w->s2 - (u128)o * o + (u128)n * n;
	w->load[h] = n;
}

void ha__ws_move(struct ha__ws *w, uint32_t v, int32_t to)
{
	const struct ha_place_vm *vm = &w->c->vms[v];
	int32_t from = w->vm_host[v];

	if (from == to)
		return;
	if (from >= 0) {
		if (w->v_prev[v] >= 0)
			w->v_next[w->v_prev[v]] = w->v_next[v];
		else
			w->h_head[from] = w->v_next[v];
		if (w->v_next[v] >= 0)
			w->v_prev[w->v_next[v]] = w->v_prev[v];
		w->cpu_res[from] -= vm->cpu_res_mhz;
		w->mem_res[from] -= vm->mem_res_mib;
		w->cpu_dem[from] -= vm->cpu_mhz;
		w->mem_dem[from] -= vm->mem_mib;
		set_load(w, (uint32_t)from);
	}
	w->vm_host[v] = to;
	w->v_next[v] = w->v_prev[v] = -1;
	if (to < 0)
		return;
	w->v_next[v] = w->h_head[to];
	if (w->h_head[to] >= 0)
		w->v_prev[w->h_head[to]] = (int32_t)v;
	w->h_head[to] = (int32_t)v;
	w->cpu_res[to] += vm->cpu_res_mhz;
	w->mem_res[to] += vm->mem_res_mib;
	w->cpu_dem[to] += vm->cpu_mhz;
	w->mem_dem[to] += vm->mem_mib;
	set_load(w, (uint32_t)to);
}

void ha__ws_close(struct ha__ws *w)
{
	kb_free(w->vm_host);
	kb_free(w->cpu_res);
	kb_free(w->mem_res);
	kb_free(w->cpu_dem);
	kb_free(w->mem_dem);
	kb_free(w->load);
	kb_free(w->balanced);
	kb_free(w->r_off);
	kb_free(w->r_vm);
	kb_free(w->v_off);
	kb_free(w->v_rule);
	kb_free(w->r_bits);
	kb_free(w->count);
	kb_free(w->h_head);
	kb_free(w->v_next);
	kb_free(w->v_prev);
	memset(w, 0, sizeof(*w));
}

static int ws_alloc(struct ha__ws *w, size_t members, size_t bits)
{
	size_t nh = w->nh + 1, nv = w->nv + 1; /* +1: never a zero-sized allocation */

	w->vm_host = kb_calloc(nv, sizeof(*w->vm_host));
	w->cpu_res = kb_calloc(nh, sizeof(*w->cpu_res));
	w->mem_res = kb_calloc(nh, sizeof(*w->mem_res));
	w->cpu_dem = kb_calloc(nh, sizeof(*w->cpu_dem));
	w->mem_dem = kb_calloc(nh, sizeof(*w->mem_dem));
	w->load = kb_calloc(nh, sizeof(*w->load));
	w->balanced = kb_calloc(nh, sizeof(*w->balanced));
	w->r_off = kb_calloc(w->nr + 1, sizeof(*w->r_off));
	w->r_vm = kb_calloc(members + 1, sizeof(*w->r_vm));
	w->v_off = kb_calloc(nv, sizeof(*w->v_off));
	w->v_rule = kb_calloc(members + 1, sizeof(*w->v_rule));
	w->r_bits = kb_calloc(bits + 1, sizeof(*w->r_bits));
	w->count = kb_calloc(nh, sizeof(*w->count));
	w->h_head = kb_calloc(nh, sizeof(*w->h_head));
	w->v_next = kb_calloc(nv, sizeof(*w->v_next));
	w->v_prev = kb_calloc(nv, sizeof(*w->v_prev));
	if (!w->vm_host || !w->cpu_res || !w->mem_res || !w->cpu_dem || !w->mem_dem || !w->load ||
	    !w->balanced || !w->r_off || !w->r_vm || !w->v_off || !w->v_rule || !w->r_bits ||
	    !w->count || !w->h_head || !w->v_next || !w->v_prev)
		return -ENOMEM;
	return 0;
}

/* The rule indexes both ways: members of each rule, rules of each VM (counting sort). */
static void ws_index_rules(struct ha__ws *w)
{
	const struct ha_cluster *c = w->c;
	uint32_t k = 0;

	for (uint32_t r = 0; r < w->nr; r++) {
		const struct ha_rule *ru = &c->rules[r];

		w->r_off[r] = k;
		for (size_t i = 0; i < ru->n_vms; i++) {
			uint32_t v = (uint32_t)ha__vm_index(c, ru->vms[i]);

			w->r_vm[k++] = v;
			w->v_off[v + 1]++;
		}
		for (size_t i = 0; host_rule(ru->kind) && i < ru->n_hosts; i++) {
			int32_t h = ha__host_index(c, ru->hosts[i]);

			w->r_bits[(size_t)r * w->words + h / 64] |= 1ULL << (h % 64);
		}
	}
	w->r_off[w->nr] = k;
	for (uint32_t v = 0; v < w->nv; v++)
		w->v_off[v + 1] += w->v_off[v];
	/* Fill in rule order, using v_next as the per-VM cursor (reset below). */
	for (uint32_t v = 0; v < w->nv; v++)
		w->v_next[v] = (int32_t)w->v_off[v];
	for (uint32_t r = 0; r < w->nr; r++)
		for (uint32_t i = w->r_off[r]; i < w->r_off[r + 1]; i++)
			w->v_rule[w->v_next[w->r_vm[i]]++] = r;
}

int ha__ws_init(struct ha__ws *w, const struct ha_cluster *c, struct kb_errmsg *err)
{
	size_t members = 0;
	int rv;

	memset(w, 0, sizeof(*w));
	if ((rv = ha_cluster_check(c, err)) < 0)
		return rv;
	w->c = c;
	w->nh = (uint32_t)c->n_hosts;
	w->nv = (uint32_t)c->n_vms;
	w->nr = (uint32_t)c->n_rules;
	w->words = (w->nh + 63) / 64;
	for (size_t r = 0; r < c->n_rules; r++)
		members += c->rules[r].n_vms;
	if (ws_alloc(w, members, (size_t)w->nr * w->words) < 0) {
		ha__ws_close(w);
		kb_errmsg_setf(err, "placement: out of memory");
		return -ENOMEM;
	}
	ws_index_rules(w);
	for (uint32_t h = 0; h < w->nh; h++) {
		w->h_head[h] = -1;
		w->balanced[h] = c->hosts[h].usable && c->hosts[h].mem_mib > 0;
		w->n_bal += w->balanced[h];
	}
	for (uint32_t v = 0; v < w->nv; v++) {
		w->vm_host[v] = -1;
		w->v_next[v] = w->v_prev[v] = -1;
	}
	for (uint32_t v = 0; v < w->nv; v++)
		if (c->vms[v].powered_on && c->vms[v].host)
			ha__ws_move(w, v, ha__host_index(c, c->vms[v].host));
	return 0;
}

/* ---- ha_place ---- */

struct refusal {
	uint32_t n[WHY_N];
	uint64_t most_free_mem, most_free_cpu; /* among hosts short of reservations */
	uint64_t biggest_mem, biggest_cpu;     /* among hosts too small */
	const struct ha_rule *rule;	       /* the first hard rule that ruled a host out */
	uint32_t rule_hosts;		       /* hosts ruled out by that rule */
};

static void note(struct refusal *f, const struct ha__ws *w, uint32_t h, int why,
		 const struct ha_rule *rule)
{
	const struct ha_place_host *ho = &w->c->hosts[h];

	f->n[why]++;
	switch (why) {
	case WHY_MEM_SIZE:
		if (ho->mem_mib > f->biggest_mem)
			f->biggest_mem = ho->mem_mib;
		break;
	case WHY_CPU_SIZE:
		if (ho->cpu_mhz > f->biggest_cpu)
			f->biggest_cpu = ho->cpu_mhz;
		break;
	case WHY_MEM_RES:
		if (ho->mem_mib > w->mem_res[h] && ho->mem_mib - w->mem_res[h] > f->most_free_mem)
			f->most_free_mem = ho->mem_mib - w->mem_res[h];
		break;
	case WHY_CPU_RES:
		if (ho->cpu_mhz > w->cpu_res[h] && ho->cpu_mhz - w->cpu_res[h] > f->most_free_cpu)
			f->most_free_cpu = ho->cpu_mhz - w->cpu_res[h];
		break;
	case WHY_RULE:
		if (!f->rule)
			f->rule = rule;
		if (f->rule == rule)
			f->rule_hosts++;
		break;
	}
}

static size_t add(char *b, size_t o, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t add(char *b, size_t o, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o >= cap)
		return o;
	va_start(ap, fmt);
	n = vsnprintf(b + o, cap - o, fmt, ap);
	va_end(ap);
	return n < 0 ? o : o + (size_t)n;
}

#define HOSTS(n) (n), (n) == 1 ? "" : "s"

/* The message of a refusal; one_host: of ha_place_on (the one host the caller named). */
static void refuse(struct kb_errmsg *err, const struct ha__ws *w, const struct ha_place_vm *vm,
		   const struct refusal *f, bool one_host)
{
	char b[KB_ERRMSG_SIZE];
	const char *sep = "";
	size_t o = 0;

	if (one_host)
		o = add(b, o, sizeof(b), "VM %" PRIu64 " does not fit there:", vm->id);
	else
		o = add(b, o, sizeof(b), "no host fits VM %" PRIu64 ":", vm->id);
	if (w->nh == 0)
		o = add(b, o, sizeof(b), " the cluster has no hosts");
	if (f->n[WHY_UNUSABLE]) {
		o = add(b, o, sizeof(b),
			" %u host%s not usable (disconnected, in maintenance or "
			"excluded)",
			HOSTS(f->n[WHY_UNUSABLE]));
		sep = ";";
	}
	if (f->n[WHY_CURRENT]) {
		o = add(b, o, sizeof(b), "%s 1 host is its current host", sep);
		sep = ";";
	}
	if (f->n[WHY_NO_CAPACITY]) {
		o = add(b, o, sizeof(b), "%s %u host%s without known capacity", sep,
			HOSTS(f->n[WHY_NO_CAPACITY]));
		sep = ";";
	}
	if (f->n[WHY_MEM_SIZE]) {
		o = add(b, o, sizeof(b),
			"%s %u host%s smaller than its %" PRIu64 " MiB (largest %" PRIu64 " MiB)",
			sep, HOSTS(f->n[WHY_MEM_SIZE]),
			vm->mem_size_mib > vm->mem_res_mib ? vm->mem_size_mib : vm->mem_res_mib,
			f->biggest_mem);
		sep = ";";
	}
	if (f->n[WHY_CPU_SIZE]) {
		o = add(b, o, sizeof(b),
			"%s %u host%s with less than its %u MHz CPU reservation "
			"(largest %" PRIu64 " MHz)",
			sep, HOSTS(f->n[WHY_CPU_SIZE]), vm->cpu_res_mhz, f->biggest_cpu);
		sep = ";";
	}
	if (f->n[WHY_MEM_RES]) {
		o = add(b, o, sizeof(b),
			"%s memory reservation %" PRIu64 " MiB does not fit on %u "
			"host%s (most unreserved %" PRIu64 " MiB)",
			sep, vm->mem_res_mib, HOSTS(f->n[WHY_MEM_RES]), f->most_free_mem);
		sep = ";";
	}
	if (f->n[WHY_CPU_RES]) {
		o = add(b, o, sizeof(b),
			"%s CPU reservation %u MHz does not fit on %u host%s "
			"(most unreserved %" PRIu64 " MHz)",
			sep, vm->cpu_res_mhz, HOSTS(f->n[WHY_CPU_RES]), f->most_free_cpu);
		sep = ";";
	}
	if (f->n[WHY_RULE]) {
		o = add(b, o, sizeof(b), "%s rule %u (%s) rules out %u host%s", sep, f->rule->id,
			ha_rule_str(f->rule->kind, true), HOSTS(f->rule_hosts));
		if (f->n[WHY_RULE] > f->rule_hosts)
			o = add(b, o, sizeof(b), ", other rules %u more",
				f->n[WHY_RULE] - f->rule_hosts);
	}
	kb_errmsg_setf(err, "%s", b);
}

/* The first mandatory rule of VM v that placing it on h would break more, or NULL. */
static const struct ha_rule *hard_conflict(struct ha__ws *w, uint32_t v, uint32_t h)
{
	for (uint32_t i = w->v_off[v]; i < w->v_off[v + 1]; i++) {
		uint32_t r = w->v_rule[i];

		if (w->c->rules[r].mandatory && ha__rule_delta(w, r, v, -1, (int32_t)h) > 0)
			return &w->c->rules[r];
	}
	return NULL;
}

static int soft_delta(struct ha__ws *w, uint32_t v, uint32_t h)
{
	int d = 0;

	for (uint32_t i = w->v_off[v]; i < w->v_off[v + 1]; i++) {
		uint32_t r = w->v_rule[i];

		if (!w->c->rules[r].mandatory)
			d += ha__rule_delta(w, r, v, -1, (int32_t)h);
	}
	return d;
}

int ha_place(const struct ha_cluster *c, uint64_t vm_id, unsigned flags, uint64_t *host,
	     struct kb_errmsg *err)
{
	struct refusal f = {{0}};
	struct ha__ws w;
	int32_t vi, cur, best = -1;
	int best_soft = 0, rv;
	u128 best_var = 0;

	if ((rv = ha__ws_init(&w, c, err)) < 0)
		return rv;
	vi = ha__vm_index(c, vm_id);
	if (vi < 0) {
		kb_errmsg_setf(err, "placement: no VM %" PRIu64, vm_id);
		rv = KB_ENOTFOUND;
		goto out_ws;
	}
	cur = c->vms[vi].host ? ha__host_index(c, c->vms[vi].host) : -1;
	ha__ws_move(&w, (uint32_t)vi, -1);
	for (uint32_t h = 0; h < w.nh; h++) {
		const struct ha_rule *rule = NULL;
		int why = WHY_FITS, soft;
		u128 var;

		if ((flags & HA_PLACE_MIGRATE) && (int32_t)h == cur)
			why = WHY_CURRENT;
		else if (ha__fits(&w, (uint32_t)vi, h, &why) &&
			 (rule = hard_conflict(&w, (uint32_t)vi, h)) != NULL)
			why = WHY_RULE;
		if (why != WHY_FITS) {
			note(&f, &w, h, why, rule);
			continue;
		}
		soft = soft_delta(&w, (uint32_t)vi, h);
		var = ha__var_after(&w, (uint32_t)vi, -1, (int32_t)h);
		/* hosts come in id order: a tie keeps the lower id */
		if (best < 0 || soft < best_soft || (soft == best_soft && var < best_var)) {
			best = (int32_t)h;
			best_soft = soft;
			best_var = var;
		}
	}
	if (best < 0) {
		refuse(err, &w, &c->vms[vi], &f, false);
		rv = -ENOSPC;
		goto out_ws;
	}
	*host = c->hosts[best].id;
	rv = 0;
out_ws:
	ha__ws_close(&w);
	return rv;
}

int ha_place_on(const struct ha_cluster *c, uint64_t vm_id, uint64_t host, struct kb_errmsg *err)
{
	const struct ha_rule *rule = NULL;
	struct refusal f = {{0}};
	struct ha__ws w;
	int32_t vi, h;
	int why = WHY_FITS, rv;

	if ((rv = ha__ws_init(&w, c, err)) < 0)
		return rv;
	vi = ha__vm_index(c, vm_id);
	h = ha__host_index(c, host);
	if (vi < 0 || h < 0) {
		if (vi < 0)
			kb_errmsg_setf(err, "placement: no VM %" PRIu64, vm_id);
		else
			kb_errmsg_setf(err, "placement: no host %" PRIu64, host);
		rv = KB_ENOTFOUND;
		goto out_ws;
	}
	ha__ws_move(&w, (uint32_t)vi, -1);
	if (ha__fits(&w, (uint32_t)vi, (uint32_t)h, &why) &&
	    (rule = hard_conflict(&w, (uint32_t)vi, (uint32_t)h)) != NULL)
		why = WHY_RULE;
	rv = 0;
	if (why != WHY_FITS) {
		note(&f, &w, (uint32_t)h, why, rule);
		refuse(err, &w, &c->vms[vi], &f, true);
		rv = why == WHY_RULE ? -EPERM : -ENOSPC;
	}
out_ws:
	ha__ws_close(&w);
	return rv;
}
