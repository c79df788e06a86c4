/*
 * The HA restart planner and admission control (ha/plan.h): placement by priority,
 * dependencies, reservations and anti-affinity; capacity kept for host failures.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/plan.h"

const char *ha_plan_result_str(enum ha_plan_result r)
{
	switch (r) {
	case HA_PLAN_PLACED:
		return "placed";
	case HA_PLAN_WAITING:
		return "waiting for restart-after VMs";
	case HA_PLAN_NO_CAPACITY:
		return "no host with capacity";
	case HA_PLAN_DISABLED:
		return "restart disabled";
	case HA_PLAN_RUNNING:
		return "running";
	}
	return "?";
}

static int vm_order(const void *a, const void *b)
{
	const struct ha_plan_vm *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return strcmp(x->uuid, y->uuid);
}

static const struct ha_plan_vm *find_vm(const struct ha_plan_vm *vms, size_t n, const char *uuid)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(vms[i].uuid, uuid) == 0)
			return &vms[i];
	return NULL;
}

/* A dependency holds the VM back while it is protected, known and not running. */
static bool deps_ready(const struct ha_plan_vm *vms, size_t n, const struct ha_plan_vm *vm)
{
	for (size_t i = 0; i < vm->n_after; i++) {
		const struct ha_plan_vm *d = vm->after[i] ? find_vm(vms, n, vm->after[i]) : NULL;

		if (d && d != vm && d->priority != HA_PRIO_DISABLED && !d->running)
			return false;
	}
	return true;
}

static bool excluded(const struct ha_plan_vm *vm, uint64_t host)
{
	for (size_t i = 0; i < vm->n_exclude; i++)
		if (vm->exclude[i] == host)
			return true;
	return false;
}

/* Does host h already hold a VM of group g: running there, or placed there earlier in
 * this call (vms[0..upto)). */
static bool group_taken(const struct ha_plan_host *h, const struct ha_plan_vm *vms, size_t upto,
			uint32_t g)
{
	if (g == 0)
		return false;
	for (size_t i = 0; i < h->n_groups; i++)
		if (h->groups[i] == g)
			return true;
	for (size_t i = 0; i < upto; i++)
		if (vms[i].result == HA_PLAN_PLACED && vms[i].host == h->id && vms[i].group == g)
			return true;
	return false;
}

static bool fits(const struct ha_plan_host *h, const struct ha_plan_vm *vm)
{
	if (!h->eligible || h->inflight >= HA_PLAN_INFLIGHT_MAX)
		return false;
	if (h->mem_used > h->mem_mib || vm->mem_mib > h->mem_mib - h->mem_used)
		return false;
	if (h->cpu_used > h->cpu_mhz || vm->cpu_mhz > h->cpu_mhz - h->cpu_used)
		return false;
	return true;
}

int ha_plan_place(struct ha_plan_host *hosts, size_t n_hosts, struct ha_plan_vm *vms,
		  size_t n_vms)
{
	int placed = 0;

	for (size_t i = 0; i < n_hosts; i++)
		if (hosts[i].id == 0)
			return -EINVAL;
	for (size_t i = 0; i < n_vms; i++)
		if (!vms[i].uuid || vms[i].n_after > HA_PLAN_AFTER_MAX ||
		    vms[i].n_exclude > HA_PLAN_EXCLUDE_MAX)
			return -EINVAL;

	if (n_vms > 1)
		qsort(vms, n_vms, sizeof(*vms), vm_order);
	for (size_t i = 0; i < n_vms; i++) {
		struct ha_plan_vm *vm = &vms[i];
		struct ha_plan_host *best = NULL;
		uint64_t best_free = 0;

		vm->host = 0;
		if (vm->running || vm->starting) {
			vm->result = HA_PLAN_RUNNING;
			continue;
		}
		if (vm->priority == HA_PRIO_DISABLED) {
			vm->result = HA_PLAN_DISABLED;
			continue;
		}
		if (!deps_ready(vms, n_vms, vm)) {
			vm->result = HA_PLAN_WAITING;
			continue;
		}
		for (size_t j = 0; j < n_hosts; j++) {
			struct ha_plan_host *h = &hosts[j];
			uint64_t free_after;

			if (!fits(h, vm) || excluded(vm, h->id) || group_taken(h, vms, i, vm->group))
				continue;
			free_after = h->mem_mib - h->mem_used - vm->mem_mib;
			if (!best || free_after > best_free ||
			    (free_after == best_free && h->id < best->id)) {
				best = h;
				best_free = free_after;
			}
		}
		if (!best) {
			vm->result = HA_PLAN_NO_CAPACITY;
			continue;
		}
		best->mem_used += vm->mem_mib;
		best->cpu_used += vm->cpu_mhz;
		best->inflight++;
		vm->host = best->id;
		vm->result = HA_PLAN_PLACED;
		placed++;
	}
	return placed;
}

/* Sum of the k largest capacities of eligible hosts (mem or CPU), without allocating:
 * each round takes the largest (value, index) pair below the previous round's. */
static uint64_t largest_sum(const struct ha_plan_host *hosts, size_t n, size_t k, bool mem)
{
	uint64_t s = 0, pv = UINT64_MAX;
	size_t pi = SIZE_MAX;

	for (size_t r = 0; r < k; r++) {
		bool found = false;
		uint64_t bv = 0;
		size_t bi = 0;

		for (size_t i = 0; i < n; i++) {
			uint64_t v = mem ? hosts[i].mem_mib : hosts[i].cpu_mhz;

			if (!hosts[i].eligible || v > pv || (v == pv && i >= pi))
				continue;
			if (!found || v > bv || (v == bv && i > bi)) {
				found = true;
				bv = v;
				bi = i;
			}
		}
		if (!found)
			break;
		s += bv;
		pv = bv;
		pi = bi;
	}
	return s;
}

int ha_admission_check(const struct ha_admit *a, const struct ha_plan_host *hosts,
		       size_t n_hosts, uint32_t cpu_mhz, uint64_t mem_mib, char msg[HA_ADMIT_MSG])
{
	uint64_t cap_cpu = 0, cap_mem = 0, use_cpu = cpu_mhz, use_mem = mem_mib;
	size_t n = 0;

	msg[0] = '\0';
	switch (a->policy) {
	case HA_ADMIT_OFF:
		return 0;
	case HA_ADMIT_HOST_FAILURES:
		if (a->failures == 0)
			return -EINVAL;
		break;
	case HA_ADMIT_PERCENT:
		if (a->percent == 0 || a->percent > 100)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	for (size_t i = 0; i < n_hosts; i++) {
		use_cpu += hosts[i].cpu_used;
		use_mem += hosts[i].mem_used;
		if (!hosts[i].eligible)
			continue;
		cap_cpu += hosts[i].cpu_mhz;
		cap_mem += hosts[i].mem_mib;
		n++;
	}

	if (a->policy == HA_ADMIT_PERCENT) {
		uint64_t lim_cpu = cap_cpu * (100 - a->percent) / 100;
		uint64_t lim_mem = cap_mem * (100 - a->percent) / 100;

		if (use_mem > lim_mem || (cap_cpu && use_cpu > lim_cpu)) {
			snprintf(msg, HA_ADMIT_MSG,
				 "admission control: %u%% of the cluster is reserved for failover; "
				 "reservations would be %" PRIu64 " MiB of %" PRIu64
				 " MiB usable and %" PRIu64 " MHz of %" PRIu64 " MHz",
				 a->percent, use_mem, lim_mem, use_cpu, lim_cpu);
			return -ENOSPC;
		}
		return 0;
	}

	if (n <= a->failures) {
		snprintf(msg, HA_ADMIT_MSG,
			 "admission control: tolerating %u host failure%s needs more than %u "
			 "eligible hosts; the cluster has %zu",
			 a->failures, a->failures == 1 ? "" : "s", a->failures, n);
		return -ENOSPC;
	}
	{
		uint64_t left_cpu = cap_cpu - largest_sum(hosts, n_hosts, a->failures, false);
		uint64_t left_mem = cap_mem - largest_sum(hosts, n_hosts, a->failures, true);

		if (use_mem > left_mem || (cap_cpu && use_cpu > left_cpu)) {
			snprintf(msg, HA_ADMIT_MSG,
				 "admission control: after %u host failure%s the cluster keeps %" PRIu64
				 " MiB and %" PRIu64 " MHz; protected VMs would need %" PRIu64
				 " MiB and %" PRIu64 " MHz",
				 a->failures, a->failures == 1 ? "" : "s", left_mem, left_cpu,
				 use_mem, use_cpu);
			return -ENOSPC;
		}
	}
	return 0;
}
