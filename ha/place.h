/*
 * VM placement: the best host for one VM, and the rule checks shared with DRS (ha/drs.h).
 * Pure functions over the caller's view of the cluster (struct ha_cluster, filled by the
 * leader from the replicated state), so the policy runs the same under a virtual clock in
 * tests and on every leader: no I/O, no clock, no randomness.
 *
 * The model.
 *   - Hosts: id, CPU MHz and memory MiB capacity, and whether new placements may go there
 *     (usable: connected, not in maintenance mode, not excluded by the operator).
 *   - VMs: id, the host they are registered on, powered on or not, CPU and memory demand
 *     (what they use now), CPU and memory reservations (what they are promised), memory
 *     size (what a migration has to copy) and when they last moved (caller's clock, ms).
 *     Only powered-on VMs on a host are *counted*: they load their host, hold their
 *     reservations there and take part in rules.
 *   - Rules, each mandatory ("must": hard, never broken by a placement or a move) or
 *     preferential ("should": soft, placement prefers hosts that keep it, DRS fixes it
 *     when it can, violations are reported):
 *       HA_RULE_AFFINITY       the VMs run together on one host;
 *       HA_RULE_ANTI_AFFINITY  the VMs run on different hosts;
 *       HA_RULE_HOST_AFFINITY  the VMs run on hosts of the rule's host group;
 *       HA_RULE_HOST_ANTI_AFFINITY  the VMs run on hosts outside the host group.
 *     A rule's violation is the number of its counted VMs out of place: for affinity, the
 *     VMs not on the host that holds most of them; for anti-affinity, the VMs sharing a
 *     host with an earlier one; for the host rules, the VMs on a wrong host.
 *
 * Placement (ha_place): a host fits a VM when it is usable, has capacity (memory > 0),
 * the VM's memory size and CPU reservation are within its capacity, the reservations
 * already held there plus the VM's stay within capacity, and no mandatory rule gets more
 * violated. Among the hosts that fit, the choice is, in order: fewest new violations of
 * preferential rules; the smallest imbalance of the cluster afterwards (ha/drs.h: the
 * standard deviation of the hosts' normalized load); the lowest host id. When nothing
 * fits, the refusal names what failed and on how many hosts.
 *
 * Not thread-safe per call on the same arrays (they are only read). Every call allocates
 * working memory with kb_calloc and frees it before returning (-ENOMEM when it cannot).
 */
#ifndef HA_PLACE_H
#define HA_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define HA_PLACE_HOSTS_MAX    4096	   /* hosts in a cluster */
#define HA_PLACE_VMS_MAX      65536	   /* VMs in a cluster */
#define HA_PLACE_RULES_MAX    1024	   /* rules in a cluster */
#define HA_PLACE_RULE_VMS_MAX 1024	   /* VMs named by one rule */
#define HA_PLACE_VM_MEM_MAX   (1ULL << 25) /* MiB (32 TiB): size, demand, reservation */
#define HA_PLACE_VM_CPU_MAX   (1U << 22)   /* MHz: demand, reservation of one VM */
#define HA_PLACE_HOST_MEM_MAX (1ULL << 40) /* MiB of one host */

struct ha_place_host {
	uint64_t id;	  /* never 0; hosts[] is sorted by id, ascending, no duplicates */
	const char *name; /* the caller's; not read (messages name hosts by id) */
	uint32_t cpu_mhz; /* capacity; 0: unknown (CPU then plays no part in the load and
			   * no CPU reservation fits) */
	uint64_t mem_mib; /* capacity; 0: nothing is placed here */
	bool usable;	  /* connected, not in maintenance mode, not excluded */
};

struct ha_place_vm {
	uint64_t id;		/* never 0; vms[] is sorted by id, ascending, no duplicates */
	uint64_t host;		/* host id it is registered on; 0: none */
	bool powered_on;	/* counted when powered on and on a host */
	uint32_t cpu_mhz;	/* CPU demand */
	uint64_t mem_mib;	/* memory demand */
	uint32_t cpu_res_mhz;	/* CPU reservation */
	uint64_t mem_res_mib;	/* memory reservation */
	uint64_t mem_size_mib;	/* memory size: what a migration copies (the move's cost) */
	uint64_t last_moved_ms; /* when it last changed host, caller's clock; 0: never */
};

enum ha_rule_kind {
	HA_RULE_AFFINITY = 1,	    /* VM-VM: keep together */
	HA_RULE_ANTI_AFFINITY,	    /* VM-VM: keep apart */
	HA_RULE_HOST_AFFINITY,	    /* VM-host: run on a host of the group */
	HA_RULE_HOST_ANTI_AFFINITY, /* VM-host: do not run on a host of the group */
};

struct ha_rule {
	uint32_t id; /* never 0, unique: named in messages and recommendations */
	enum ha_rule_kind kind;
	bool mandatory;	     /* "must" (hard); false: "should" (soft) */
	const uint64_t *vms; /* VM ids, 1..HA_PLACE_RULE_VMS_MAX, no duplicates */
	size_t n_vms;
	const uint64_t *hosts; /* host group (host rules only, 1..n_hosts ids); else none */
	size_t n_hosts;
};

/* The caller's view of the cluster. Borrowed for the duration of each call. */
struct ha_cluster {
	const struct ha_place_host *hosts;
	size_t n_hosts;
	const struct ha_place_vm *vms;
	size_t n_vms;
	const struct ha_rule *rules;
	size_t n_rules;
};

#define HA_PLACE_MIGRATE 0x1 /* the VM's current host is not a candidate */

/*
 * Chooses a host for VM vm_id (one of c->vms; powered off for an initial placement, or
 * running for a migration without a destination: with HA_PLACE_MIGRATE its current host
 * is left out). A counted VM is first taken off its host, so its own load, reservations
 * and rule membership there do not count against it. On success writes the host id to
 * *host and returns 0. Returns -ENOSPC when no host fits, with err naming the VM and, for
 * each reason, how many hosts it ruled out ("not usable", "memory reservation: needs N
 * MiB, at most M free", "rule 7 (must run apart)", ...); -EINVAL or KB_ETOOBIG for a
 * malformed cluster (ha_cluster_check), KB_ENOTFOUND for an unknown VM; -ENOMEM.
 * *host is written only on success.
 */
int ha_place(const struct ha_cluster *c, uint64_t vm_id, unsigned flags, uint64_t *host,
	     struct kb_errmsg *err);

/*
 * Whether VM vm_id may be placed on host `host` (an operator's choice, or the VM's own host
 * when nothing chooses for it): the checks of ha_place for that one host, the VM taken off
 * its host first. Returns 0 when it fits; -EPERM when a mandatory rule would get more
 * violated, -ENOSPC for any other reason (not usable, no capacity, too small, reservations),
 * with err saying why as ha_place does ("VM 20 does not fit there: rule 7 (must run apart)
 * rules out 1 host"); KB_ENOTFOUND for an unknown VM or host; -EINVAL or KB_ETOOBIG for a
 * malformed cluster; -ENOMEM.
 */
int ha_place_on(const struct ha_cluster *c, uint64_t vm_id, uint64_t host, struct kb_errmsg *err);

/*
 * Validates the cluster: ids non-zero, sorted and unique; every VM's host and every id a
 * rule names exists; rule kinds and shapes; the limits above (KB_ETOOBIG). Returns 0, or
 * the error with err naming the offending object. Allocates nothing.
 */
int ha_cluster_check(const struct ha_cluster *c, struct kb_errmsg *err);

/* "must run together", "should run apart", ...: a rule in words, for messages. */
const char *ha_rule_str(enum ha_rule_kind kind, bool mandatory);

/* ---- Shared with ha/drs.c only: the working state both build from a cluster. ---- */

/* One host's share of the imbalance, in millionths of its capacity. */
#define HA__LOAD_ONE 1000000ULL
#define HA__LOAD_MAX (1ULL << 32)

struct ha__ws {
	const struct ha_cluster *c;
	uint32_t nh, nv, nr;
	int32_t *vm_host;  /* host index of each counted VM, -1 for the others */
	uint64_t *cpu_res; /* per host: reservations and demand of its counted VMs */
	uint64_t *mem_res;
	uint64_t *cpu_dem;
	uint64_t *mem_dem;
	uint64_t *load;		  /* per host: normalized load (HA__LOAD_ONE = 100%) */
	bool *balanced;		  /* per host: usable with capacity, so part of the imbalance */
	uint32_t n_bal;		  /* hosts part of the imbalance */
	unsigned __int128 s1, s2; /* sum of their loads, and of the squares */
	uint32_t *r_off;	  /* rule r names VM indexes r_vm[r_off[r] .. r_off[r + 1]) */
	uint32_t *r_vm;
	uint32_t *v_off; /* VM v is named by rules v_rule[v_off[v] .. v_off[v + 1]) */
	uint32_t *v_rule;
	uint64_t *r_bits; /* host group of rule r as a bitmap of host indexes */
	uint32_t words;	  /* 64-bit words per bitmap */
	int32_t *count;	  /* nh counters, all 0 between uses */
	int32_t *h_head;  /* per host: first counted VM; -1: none */
	int32_t *v_next;  /* per VM: next counted VM on its host, and previous */
	int32_t *v_prev;
};

int ha__ws_init(struct ha__ws *w, const struct ha_cluster *c, struct kb_errmsg *err);
void ha__ws_close(struct ha__ws *w);
/* Index of an id in the sorted arrays, or -1. */
int32_t ha__host_index(const struct ha_cluster *c, uint64_t id);
int32_t ha__vm_index(const struct ha_cluster *c, uint64_t id);
/* Normalized load of host h with the given demand. */
uint64_t ha__load(const struct ha__ws *w, uint32_t h, uint64_t cpu_dem, uint64_t mem_dem);
/* n * s2 - s1^2 = n^2 * variance: the imbalance compared without rounding. */
unsigned __int128 ha__var_num(uint32_t n, unsigned __int128 s1, unsigned __int128 s2);
/* Standard deviation of the loads (1.0 = 100% of capacity) from the above. */
double ha__imbalance(uint32_t n, unsigned __int128 num);
/* The variance figure if VM v (counted on `from`, or -1) were on `to` (or -1). */
unsigned __int128 ha__var_after(const struct ha__ws *w, uint32_t v, int32_t from, int32_t to);
/* Whether host h can take VM v (usable, capacity, reservations); hard rules not checked.
 * On failure *why says which check failed (enum in place.c), when why is not NULL. */
bool ha__fits(const struct ha__ws *w, uint32_t v, uint32_t h, int *why);
/* Change of rule r's violation if VM v moved from `from` to `to` (-1: not counted). */
int ha__rule_delta(struct ha__ws *w, uint32_t r, uint32_t v, int32_t from, int32_t to);
/* Rule r's violation now. */
uint32_t ha__rule_violation(struct ha__ws *w, uint32_t r);
/* Moves VM v (counted or not) to host `to` (-1: uncounts it), updating every figure. */
void ha__ws_move(struct ha__ws *w, uint32_t v, int32_t to);

#endif
