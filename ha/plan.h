/*
 * HA restart planning and admission control: pure functions over the caller's view of
 * the cluster, so the leader's policy runs the same under a virtual clock in tests.
 *
 * Restart plan. When a host fails, the leader has a list of VMs to restart (struct
 * ha_plan_vm) and the survivors (struct ha_plan_host: capacity, what is already used,
 * power-ons in flight). ha_plan_place() chooses a host for every VM it can, in this order:
 *   1. priority, highest first; VMs with priority HA_PRIO_DISABLED are never placed;
 *   2. a VM whose restart-after VMs are not all running yet waits (HA_PLAN_WAITING), so
 *      dependencies come up first; a dependency that is not protected or unknown to the
 *      plan does not hold anything back;
 *   3. within a priority, by uuid, so the plan is the same on every leader;
 *   4. the host with the most free memory after the placement (spreading the restarts),
 *      among eligible hosts that fit the VM's memory and CPU reservation, are not in the
 *      VM's excluded set (hosts where its power-on already failed), hold no VM of the
 *      same anti-affinity group, and have fewer than HA_PLAN_INFLIGHT_MAX power-ons in
 *      flight; ties go to the lower host id.
 * Each placement is added to the host's usage before the next VM is looked at. A VM that
 * fits nowhere is HA_PLAN_NO_CAPACITY: it stays in the plan and is tried again on the
 * next round (capacity appears, a host comes back).
 *
 * Admission control keeps enough room for the configured failures: ha_admission_check()
 * answers whether the cluster, with one more VM, could still restart every protected VM
 * after losing its `failures` largest eligible hosts (policy HA_ADMIT_HOST_FAILURES), or
 * whether reservations stay within (100 - percent)% of CPU and memory (HA_ADMIT_PERCENT).
 * A refusal carries a message naming the policy and the figures.
 *
 * Not thread-safe per call; nothing is allocated but the caller's arrays are written.
 */
#ifndef HA_PLAN_H
#define HA_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HA_PLAN_INFLIGHT_MAX 64 /* power-ons in flight per host */
#define HA_PLAN_EXCLUDE_MAX  8	/* hosts a VM's power-on failed on, remembered */
#define HA_PLAN_AFTER_MAX    16 /* restart-after dependencies per VM */

enum ha_prio {
	HA_PRIO_DISABLED = 0,
	HA_PRIO_LOWEST,
	HA_PRIO_LOW,
	HA_PRIO_MEDIUM,
	HA_PRIO_HIGH,
	HA_PRIO_HIGHEST,
};

struct ha_plan_host {
	uint64_t id;	   /* never 0 */
	bool eligible;	   /* connected, not in maintenance mode, not the failed host */
	uint32_t cpu_mhz;  /* capacity */
	uint64_t mem_mib;
	uint32_t cpu_used; /* reserved by what runs there (and what was placed) */
	uint64_t mem_used;
	uint32_t inflight; /* power-ons in flight */
	/* anti-affinity groups of the VMs running there (0 entries: none) */
	const uint32_t *groups;
	size_t n_groups;
};

enum ha_plan_result {
	HA_PLAN_PLACED = 1,  /* host chosen */
	HA_PLAN_WAITING,     /* a restart-after dependency is not running yet */
	HA_PLAN_NO_CAPACITY, /* no eligible host fits it now */
	HA_PLAN_DISABLED,    /* restart priority "disabled": never restarted */
	HA_PLAN_RUNNING,     /* already running, or starting on its host: nothing to do */
};

struct ha_plan_vm {
	const char *uuid;
	enum ha_prio priority;
	uint32_t cpu_mhz; /* CPU reservation */
	uint64_t mem_mib; /* memory it needs to run */
	uint32_t group;	  /* anti-affinity group (0: none) */
	const char *after[HA_PLAN_AFTER_MAX]; /* uuids restarted before this one */
	size_t n_after;
	uint64_t exclude[HA_PLAN_EXCLUDE_MAX]; /* hosts not to try again */
	size_t n_exclude;
	bool running;  /* already running (a dependency others may wait for) */
	bool starting; /* has its host and is starting there: not placed, and not yet running
			* for the VMs restarted after it */
	/* out */
	enum ha_plan_result result;
	uint64_t host;
};

/*
 * Places vms[0..n_vms) that are not running onto hosts[0..n_hosts) as described above,
 * writing each VM's result and host and adding placed VMs to their hosts' usage, in
 * flight count and groups (groups are only read: a placed VM's group is remembered in
 * a local table for the rest of the call). vms is reordered (priority, then uuid).
 * Returns the number of VMs placed, or -EINVAL (a NULL uuid, a host id 0, more than
 * HA_PLAN_AFTER_MAX dependencies or HA_PLAN_EXCLUDE_MAX exclusions) with nothing written.
 */
int ha_plan_place(struct ha_plan_host *hosts, size_t n_hosts, struct ha_plan_vm *vms,
		  size_t n_vms);

const char *ha_plan_result_str(enum ha_plan_result r);

enum ha_admit_policy {
	HA_ADMIT_OFF = 0,
	HA_ADMIT_HOST_FAILURES, /* tolerate `failures` host failures */
	HA_ADMIT_PERCENT,	/* keep `percent` of CPU and memory free */
};

struct ha_admit {
	enum ha_admit_policy policy;
	uint32_t failures; /* HA_ADMIT_HOST_FAILURES: 1.. */
	uint32_t percent;  /* HA_ADMIT_PERCENT: 1..100 */
};

#define HA_ADMIT_MSG 256

/*
 * Would the cluster keep its failover capacity with one more protected VM reserving
 * cpu_mhz and mem_mib (0, 0: check the cluster as it is)? The used figures of the hosts
 * are the reservations of the protected VMs that run there. Returns 0 (admitted), or
 * -ENOSPC with msg filled ("admission control: ..."), or -EINVAL (a bad policy).
 */
int ha_admission_check(const struct ha_admit *a, const struct ha_plan_host *hosts,
		       size_t n_hosts, uint32_t cpu_mhz, uint64_t mem_mib, char msg[HA_ADMIT_MSG]);

#endif
