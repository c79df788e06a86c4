/*
 * Tests for ha/place.c: capacity edges (exact fit, a reservation one MiB or MHz too big,
 * every host in maintenance, a VM larger than any host), the refusal messages, each rule
 * kind as mandatory and as preferential, migrations, the choice by balance and the
 * tie-break by host id, validation of the cluster, allocation failures, the check of one
 * named host (ha_place_on), and a seeded
 * comparison (KEEL_SEED=N replays) with a brute-force reference on random small clusters.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "ha/place.h"
#include "lib/heap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct ha_place_host host(uint64_t id, uint32_t cpu, uint64_t mem)
{
	struct ha_place_host h = {.id = id, .cpu_mhz = cpu, .mem_mib = mem, .usable = true};
	return h;
}

/* A VM using (and sized) mem MiB, powered on when it has a host. */
static struct ha_place_vm vm(uint64_t id, uint64_t host_id, uint64_t mem)
{
	struct ha_place_vm v = {.id = id,
				.host = host_id,
				.powered_on = host_id != 0,
				.mem_mib = mem,
				.mem_size_mib = mem};
	return v;
}

static struct ha_cluster cluster(const struct ha_place_host *h, size_t nh,
				 const struct ha_place_vm *v, size_t nv, const struct ha_rule *r,
				 size_t nr)
{
	struct ha_cluster c = {h, nh, v, nv, r, nr};
	return c;
}

static uint64_t place_ok(const struct ha_cluster *c, uint64_t id, unsigned flags)
{
	struct kb_errmsg err = {{0}};
	uint64_t h = 0;
	int rv = ha_place(c, id, flags, &h, &err);

	if (rv != 0)
		fail_msg("ha_place(%" PRIu64 ") = %d: %s", id, rv, err.msg);
	return h;
}

static void place_refused(const struct ha_cluster *c, uint64_t id, const char *want)
{
	struct kb_errmsg err = {{0}};
	uint64_t h = 12345;

	assert_int_equal(ha_place(c, id, 0, &h, &err), -ENOSPC);
	assert_int_equal(h, 12345); /* untouched */
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

/* The emptiest host wins; equal results go to the lower id. */
static void test_balance_and_tie(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 8192), host(2, 10000, 8192),
				    host(3, 10000, 8192)};
	struct ha_place_vm v[] = {vm(10, 1, 2048), vm(11, 2, 1024), vm(12, 3, 1024),
				  vm(20, 0, 512)};
	struct ha_cluster c = cluster(h, 3, v, 4, NULL, 0);

	assert_int_equal(place_ok(&c, 20, 0), 2); /* 2 and 3 tie: the lower id */
	v[1].mem_mib = 1536;
	assert_int_equal(place_ok(&c, 20, 0), 3);
	/* CPU counts too: host 3 is now the busiest by CPU */
	v[2].cpu_mhz = 9000;
	assert_int_equal(place_ok(&c, 20, 0), 2);
}

static void test_exact_fit(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 1024), vm(11, 2, 1024), vm(20, 0, 1024)};
	struct ha_cluster c = cluster(h, 2, v, 3, NULL, 0);

	v[0].mem_res_mib = 3072;
	v[1].mem_res_mib = 3072;
	v[0].cpu_res_mhz = 1000;
	v[1].cpu_res_mhz = 2000;
	v[2].mem_res_mib = 1024; /* exactly what is left on both */
	v[2].cpu_res_mhz = 3000; /* exactly what is left on host 1 */
	assert_int_equal(place_ok(&c, 20, 0), 1);
	v[2].cpu_res_mhz = 3001;
	place_refused(&c, 20, "CPU reservation 3001 MHz does not fit on 2 hosts");
	place_refused(&c, 20, "most unreserved 3000 MHz");
	v[2].cpu_res_mhz = 0;
	v[2].mem_res_mib = 1025;
	place_refused(&c, 20, "memory reservation 1025 MiB does not fit on 2 hosts");
	place_refused(&c, 20, "most unreserved 1024 MiB");
	/* a powered-off VM holds no reservation */
	v[0].powered_on = false;
	assert_int_equal(place_ok(&c, 20, 0), 1);
}

static void test_too_big(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 8000, 8192)};
	struct ha_place_vm v[] = {vm(20, 0, 8192)};
	struct ha_cluster c = cluster(h, 2, v, 1, NULL, 0);

	assert_int_equal(place_ok(&c, 20, 0), 2);
	v[0].mem_size_mib = 8193;
	place_refused(&c, 20, "2 hosts smaller than its 8193 MiB (largest 8192 MiB)");
	v[0].mem_size_mib = 1024;
	v[0].cpu_res_mhz = 8001;
	place_refused(&c, 20, "less than its 8001 MHz CPU reservation (largest 8000 MHz)");
	/* unknown CPU capacity: no CPU reservation fits */
	v[0].cpu_res_mhz = 1;
	h[0].cpu_mhz = h[1].cpu_mhz = 0;
	place_refused(&c, 20, "CPU reservation");
	v[0].cpu_res_mhz = 0;
	assert_int_equal(place_ok(&c, 20, 0), 2);
}

static void test_all_in_maintenance(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096)};
	struct ha_place_vm v[] = {vm(20, 0, 64)};
	struct ha_cluster c = cluster(h, 2, v, 1, NULL, 0);

	h[0].usable = h[1].usable = false;
	place_refused(&c, 20, "no host fits VM 20: 2 hosts not usable");
	h[1].usable = true;
	h[1].mem_mib = 0;
	place_refused(&c, 20, "1 host without known capacity");
	c.n_hosts = 0;
	place_refused(&c, 20, "the cluster has no hosts");
}

static void test_migrate(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 3000), vm(11, 2, 100)};
	struct ha_cluster c = cluster(h, 2, v, 2, NULL, 0);
	struct kb_errmsg err;
	uint64_t to;

	v[0].mem_res_mib = 4096; /* fills its host: its own reservation is not against it */
	assert_int_equal(place_ok(&c, 10, 0), 1);
	assert_int_equal(place_ok(&c, 10, HA_PLACE_MIGRATE), 2);
	v[1].mem_res_mib = 1;
	assert_int_equal(ha_place(&c, 10, HA_PLACE_MIGRATE, &to, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "1 host is its current host"));
	assert_non_null(strstr(err.msg, "memory reservation 4096 MiB does not fit on 1 host "));
	assert_int_equal(ha_place(&c, 99, 0, &to, &err), KB_ENOTFOUND);
}

static void test_vm_affinity(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096), host(3, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 3000), vm(11, 1, 100), vm(12, 0, 100), vm(20, 0, 100)};
	const uint64_t members[] = {10, 11, 12, 20};
	struct ha_rule r[] = {
	    {.id = 7, .kind = HA_RULE_AFFINITY, .mandatory = true, .vms = members, .n_vms = 4}};
	struct ha_cluster c = cluster(h, 3, v, 4, r, 1);

	/* host 1 is the busiest, but the rule keeps 20 with 10 and 11 */
	assert_int_equal(place_ok(&c, 20, 0), 1);
	r[0].mandatory = false;
	assert_int_equal(place_ok(&c, 20, 0), 1); /* preferred */
	v[0].mem_res_mib = 4000;
	v[3].mem_res_mib = 100;
	assert_int_equal(place_ok(&c, 20, 0), 2); /* preferred, but no room: elsewhere */
	r[0].mandatory = true;
	place_refused(&c, 20, "rule 7 (must run together) rules out 2 hosts");
	place_refused(&c, 20, "memory reservation 100 MiB does not fit on 1 host");
	/* the members are split 1:1 (a violation already): either side is no worse */
	v[0].mem_res_mib = 0;
	v[1].host = 3;
	assert_int_equal(place_ok(&c, 20, 0), 3);
	/* no member counted: anywhere */
	v[0].powered_on = v[1].powered_on = false;
	assert_int_equal(place_ok(&c, 20, 0), 1);
}

static void test_vm_anti_affinity(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096), host(3, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 3, 100), vm(11, 2, 100), vm(12, 1, 3000), vm(20, 0, 100)};
	const uint64_t members[] = {10, 11, 20};
	struct ha_rule r[] = {{.id = 8,
			       .kind = HA_RULE_ANTI_AFFINITY,
			       .mandatory = true,
			       .vms = members,
			       .n_vms = 3}};
	struct ha_cluster c = cluster(h, 3, v, 4, r, 1);

	assert_int_equal(place_ok(&c, 20, 0), 1); /* the busy host, the only one allowed */
	v[2].host = 3;				  /* now host 1 is free of members and load */
	assert_int_equal(place_ok(&c, 20, 0), 1);
	v[0].host = 1; /* members on 1 and 2: only 3 is left */
	assert_int_equal(place_ok(&c, 20, 0), 3);
	h[2].usable = false;
	place_refused(&c, 20, "rule 8 (must run apart) rules out 2 hosts");
	r[0].mandatory = false;
	v[0].mem_mib = 200;
	assert_int_equal(place_ok(&c, 20, 0), 2); /* less loaded than 1 */
}

static void test_host_rules(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096), host(3, 4000, 4096),
				    host(4, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 2, 2000), vm(11, 3, 1000), vm(20, 0, 100)};
	const uint64_t members[] = {20}, group[] = {2, 3};
	struct ha_rule r[] = {{.id = 9,
			       .kind = HA_RULE_HOST_AFFINITY,
			       .mandatory = true,
			       .vms = members,
			       .n_vms = 1,
			       .hosts = group,
			       .n_hosts = 2}};
	struct ha_cluster c = cluster(h, 4, v, 3, r, 1);

	assert_int_equal(place_ok(&c, 20, 0), 3); /* in the group, the less loaded */
	r[0].mandatory = false;
	assert_int_equal(place_ok(&c, 20, 0), 3);
	h[2].usable = false;
	assert_int_equal(place_ok(&c, 20, 0), 2);
	h[1].usable = false;
	assert_int_equal(place_ok(&c, 20, 0), 1); /* a preference only */
	r[0].mandatory = true;
	place_refused(&c, 20, "rule 9 (must run on the host group) rules out 2 hosts");

	h[1].usable = h[2].usable = true;
	r[0].kind = HA_RULE_HOST_ANTI_AFFINITY;
	assert_int_equal(place_ok(&c, 20, 0), 1);
	h[0].usable = false;
	assert_int_equal(place_ok(&c, 20, 0), 4);
	h[3].usable = false;
	place_refused(&c, 20, "rule 9 (must not run on the host group) rules out 2 hosts");
	r[0].mandatory = false;
	assert_int_equal(place_ok(&c, 20, 0), 3);
}

/* A rule kept is worth more than balance; among rules, each counts. */
static void test_soft_before_balance(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 3000), vm(20, 0, 100), vm(21, 2, 10)};
	const uint64_t m1[] = {10, 20}, m2[] = {20, 21};
	struct ha_rule r[] = {
	    {.id = 1, .kind = HA_RULE_AFFINITY, .vms = m1, .n_vms = 2},
	    {.id = 2, .kind = HA_RULE_ANTI_AFFINITY, .vms = m2, .n_vms = 2},
	};
	struct ha_cluster c = cluster(h, 2, v, 3, r, 2);

	assert_int_equal(place_ok(&c, 20, 0), 1);
	r[1].kind = HA_RULE_AFFINITY; /* one rule for each host: balance decides */
	assert_int_equal(place_ok(&c, 20, 0), 2);
}

static void expect_invalid(const struct ha_cluster *c, int code, const char *want)
{
	struct kb_errmsg err = {{0}};
	uint64_t h = 0;

	assert_int_equal(ha_cluster_check(c, &err), code);
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
	memset(&err, 0, sizeof(err));
	assert_int_equal(ha_place(c, 20, 0, &h, &err), code);
	assert_non_null(strstr(err.msg, want));
	assert_int_equal(h, 0);
}

static void test_validation(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 100), vm(20, 0, 100)};
	uint64_t members[] = {10, 20}, group[] = {2};
	struct ha_rule r[] = {{.id = 5, .kind = HA_RULE_ANTI_AFFINITY, .vms = members, .n_vms = 2}};
	struct ha_cluster c = cluster(h, 2, v, 2, r, 1);
	struct kb_errmsg err;

	assert_int_equal(ha_cluster_check(&c, &err), 0);
	h[1].id = 1;
	expect_invalid(&c, -EINVAL, "host 1: hosts must be sorted by id");
	h[1].id = 0;
	expect_invalid(&c, -EINVAL, "host 1: id 0");
	h[1].id = 2;
	h[1].mem_mib = HA_PLACE_HOST_MEM_MAX + 1;
	expect_invalid(&c, KB_ETOOBIG, "host 2: ");
	h[1].mem_mib = 4096;
	v[0].host = 3;
	expect_invalid(&c, -EINVAL, "VM 10: unknown host 3");
	v[0].host = 1;
	v[1].id = 10;
	expect_invalid(&c, -EINVAL, "VM 10: VMs must be sorted by id");
	v[1].id = 20;
	v[1].mem_res_mib = HA_PLACE_VM_MEM_MAX + 1;
	expect_invalid(&c, KB_ETOOBIG, "VM 20: memory figures are limited");
	v[1].mem_res_mib = 0;
	v[1].cpu_mhz = HA_PLACE_VM_CPU_MAX + 1;
	expect_invalid(&c, KB_ETOOBIG, "VM 20: CPU figures are limited");
	v[1].cpu_mhz = 0;

	members[1] = 30;
	expect_invalid(&c, -EINVAL, "rule 5: unknown VM 30");
	members[1] = 10;
	expect_invalid(&c, -EINVAL, "rule 5: names VM 10 twice");
	members[1] = 20;
	r[0].n_vms = 0;
	expect_invalid(&c, -EINVAL, "rule 5: names no VM");
	r[0].n_vms = HA_PLACE_RULE_VMS_MAX + 1;
	expect_invalid(&c, KB_ETOOBIG, "rule 5: 1025 VMs");
	r[0].n_vms = 2;
	r[0].kind = 0;
	expect_invalid(&c, -EINVAL, "rule 5: unknown kind 0");
	r[0].kind = HA_RULE_ANTI_AFFINITY;
	r[0].hosts = group;
	r[0].n_hosts = 1;
	expect_invalid(&c, -EINVAL, "rule 5: a VM-VM rule has no host group");
	r[0].kind = HA_RULE_HOST_AFFINITY;
	assert_int_equal(ha_cluster_check(&c, &err), 0);
	group[0] = 3;
	expect_invalid(&c, -EINVAL, "rule 5: unknown host 3");
	r[0].n_hosts = 0;
	expect_invalid(&c, -EINVAL, "rule 5: empty host group");
	r[0].n_hosts = 1;
	group[0] = 2;
	r[0].id = 0;
	expect_invalid(&c, -EINVAL, "rule 0: id 0");
	r[0].id = 5;

	c.n_rules = HA_PLACE_RULES_MAX + 1;
	expect_invalid(&c, KB_ETOOBIG, "1025 rules; at most");
	c.n_rules = 1;
	c.vms = NULL;
	expect_invalid(&c, -EINVAL, "an array is missing");
}

static void test_duplicate_rule_ids(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096)};
	struct ha_place_vm v[] = {vm(20, 0, 100)};
	const uint64_t m[] = {20};
	struct ha_rule r[] = {{.id = 3, .kind = HA_RULE_AFFINITY, .vms = m, .n_vms = 1},
			      {.id = 3, .kind = HA_RULE_AFFINITY, .vms = m, .n_vms = 1}};
	struct ha_cluster c = cluster(h, 1, v, 1, r, 2);

	expect_invalid(&c, -EINVAL, "rule 3: id used twice");
}

static void test_enomem(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 100), vm(20, 0, 100)};
	const uint64_t m[] = {10, 20};
	struct ha_rule r[] = {{.id = 1, .kind = HA_RULE_ANTI_AFFINITY, .vms = m, .n_vms = 2}};
	struct ha_cluster c = cluster(h, 2, v, 2, r, 1);
	struct kb_errmsg err;
	int fails = 0;

	/* every allocation fails once in turn; each failure is reported, nothing written */
	for (int n = 0;; n++) {
		uint64_t to = 0;
		int rv;

		kb_heap_fail_after(n, 1);
		rv = ha_place(&c, 20, 0, &to, &err);
		kb_heap_fail_reset();
		if (rv == 0) {
			assert_int_equal(to, 2);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
		assert_int_equal(to, 0);
		fails++;
	}
	assert_true(fails > 10);
}

/* ha_place_on: the checks of one named host, each refusal with its code and message. */
static void place_on_refused(const struct ha_cluster *c, uint64_t id, uint64_t h, int code,
			     const char *want)
{
	struct kb_errmsg err = {{0}};

	assert_int_equal(ha_place_on(c, id, h, &err), code);
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static void test_place_on(void **state)
{
	struct ha_place_host h[] = {host(1, 4000, 4096), host(2, 4000, 4096), host(3, 4000, 4096)};
	struct ha_place_vm v[] = {vm(10, 1, 100), vm(11, 2, 3000), vm(20, 0, 1000)};
	const uint64_t apart[] = {10, 20}, pinned[] = {20}, group[] = {3};
	struct ha_rule r[] = {{.id = 4,
			       .kind = HA_RULE_ANTI_AFFINITY,
			       .mandatory = true,
			       .vms = apart,
			       .n_vms = 2},
			      {.id = 5,
			       .kind = HA_RULE_HOST_AFFINITY,
			       .mandatory = false,
			       .vms = pinned,
			       .n_vms = 1,
			       .hosts = group,
			       .n_hosts = 1}};
	struct ha_cluster c = cluster(h, 3, v, 3, r, 2);
	struct kb_errmsg err = {{0}};

	(void)state;
	/* a preferential rule does not refuse; a mandatory one does, with -EPERM */
	assert_int_equal(ha_place_on(&c, 20, 2, &err), 0);
	assert_int_equal(ha_place_on(&c, 20, 3, &err), 0);
	place_on_refused(&c, 20, 1, -EPERM,
			 "VM 20 does not fit there: rule 4 (must run apart) rules out 1 host");
	r[1].mandatory = true;
	place_on_refused(&c, 20, 2, -EPERM, "rule 5 (must run on the host group) rules out 1 host");
	assert_int_equal(ha_place_on(&c, 20, 3, &err), 0);
	/* the rest is -ENOSPC: reservations (exact fit, then one MiB too many), usability */
	v[2].mem_res_mib = 4096;
	assert_int_equal(ha_place_on(&c, 20, 3, &err), 0);
	v[2].mem_res_mib = 4097;
	place_on_refused(&c, 20, 3, -ENOSPC, "smaller than its 4097 MiB");
	v[2].mem_res_mib = 1000;
	v[1].host = 3;
	v[1].mem_res_mib = 3500;
	place_on_refused(&c, 20, 3, -ENOSPC,
			 "memory reservation 1000 MiB does not fit on 1 host (most unreserved "
			 "596 MiB)");
	v[1].host = 2;
	h[2].usable = false;
	place_on_refused(&c, 20, 3, -ENOSPC, "1 host not usable");
	h[2].usable = true;
	/* a counted VM is taken off its host first: its own load does not count against it */
	v[2].host = 3;
	v[2].powered_on = true;
	v[2].mem_res_mib = 4096;
	assert_int_equal(ha_place_on(&c, 20, 3, &err), 0);
	/* unknown VM or host; a malformed cluster */
	place_on_refused(&c, 21, 3, KB_ENOTFOUND, "no VM 21");
	place_on_refused(&c, 20, 7, KB_ENOTFOUND, "no host 7");
	h[1].id = 1;
	place_on_refused(&c, 20, 3, -EINVAL, "");
	h[1].id = 2;
	/* every allocation failing in turn */
	for (int n = 0;; n++) {
		int rv;

		kb_heap_fail_after(n, 1);
		rv = ha_place_on(&c, 20, 3, &err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
	}
}

/* ---- brute-force reference ---- */

/* Violation of rule r with VM `who` (index) on host `where` (0: not counted) and every
 * other VM where c says, computed from the rule's definition. */
static unsigned ref_violation(const struct ha_cluster *c, const struct ha_rule *r, size_t who,
			      uint64_t where)
{
	uint64_t at[64];
	size_t p = 0;
	unsigned viol = 0;

	for (size_t i = 0; i < r->n_vms; i++) {
		for (size_t k = 0; k < c->n_vms; k++) {
			const struct ha_place_vm *u = &c->vms[k];
			uint64_t h = k == who ? where : (u->powered_on ? u->host : 0);

			if (u->id != r->vms[i] || h == 0)
				continue;
			at[p++] = h;
		}
	}
	if (r->kind == HA_RULE_HOST_AFFINITY || r->kind == HA_RULE_HOST_ANTI_AFFINITY) {
		for (size_t i = 0; i < p; i++) {
			bool in = false;

			for (size_t k = 0; k < r->n_hosts; k++)
				in |= r->hosts[k] == at[i];
			viol += in != (r->kind == HA_RULE_HOST_AFFINITY);
		}
		return viol;
	}
	if (r->kind == HA_RULE_AFFINITY) {
		unsigned best = 0;

		for (size_t i = 0; i < p; i++) {
			unsigned same = 0;

			for (size_t k = 0; k < p; k++)
				same += at[k] == at[i];
			if (same > best)
				best = same;
		}
		return (unsigned)p - best;
	}
	for (size_t i = 0; i < p; i++) /* anti-affinity: those sharing with an earlier one */
		for (size_t k = 0; k < i; k++)
			if (at[k] == at[i]) {
				viol++;
				break;
			}
	return viol;
}

static bool names(const struct ha_rule *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_vms; i++)
		if (r->vms[i] == id)
			return true;
	return false;
}

/* n * sum(l^2) - sum(l)^2 over usable hosts with memory, `who` on `where`. */
static unsigned __int128 ref_var(const struct ha_cluster *c, size_t who, uint64_t where)
{
	unsigned __int128 s1 = 0, s2 = 0;
	unsigned n = 0;

	for (size_t j = 0; j < c->n_hosts; j++) {
		const struct ha_place_host *h = &c->hosts[j];
		uint64_t cpu = 0, mem = 0, l = 0;

		if (!h->usable || !h->mem_mib)
			continue;
		for (size_t k = 0; k < c->n_vms; k++) {
			const struct ha_place_vm *u = &c->vms[k];
			uint64_t at = k == who ? where : (u->powered_on ? u->host : 0);

			if (at == h->id) {
				cpu += u->cpu_mhz;
				mem += u->mem_mib;
			}
		}
		l = mem * 1000000 / h->mem_mib;
		if (h->cpu_mhz && cpu * 1000000 / h->cpu_mhz > l)
			l = cpu * 1000000 / h->cpu_mhz;
		n++;
		s1 += l;
		s2 += (unsigned __int128)l * l;
	}
	return n * s2 - s1 * s1;
}

/* The host the rules of ha/place.h choose, or 0. */
static uint64_t ref_place(const struct ha_cluster *c, size_t who, unsigned flags)
{
	const struct ha_place_vm *vm = &c->vms[who];
	uint64_t best = 0;
	unsigned best_soft = 0;
	unsigned __int128 best_var = 0;

	for (size_t j = 0; j < c->n_hosts; j++) {
		const struct ha_place_host *h = &c->hosts[j];
		uint64_t cpu_res = 0, mem_res = 0;
		unsigned soft = 0;
		bool ok = true;
		unsigned __int128 var;

		if (!h->usable || !h->mem_mib || ((flags & HA_PLACE_MIGRATE) && h->id == vm->host))
			continue;
		for (size_t k = 0; k < c->n_vms; k++)
			if (k != who && c->vms[k].powered_on && c->vms[k].host == h->id) {
				cpu_res += c->vms[k].cpu_res_mhz;
				mem_res += c->vms[k].mem_res_mib;
			}
		if (vm->mem_size_mib > h->mem_mib || mem_res + vm->mem_res_mib > h->mem_mib ||
		    cpu_res + vm->cpu_res_mhz > h->cpu_mhz)
			continue;
		for (size_t r = 0; r < c->n_rules && ok; r++) {
			const struct ha_rule *ru = &c->rules[r];
			unsigned before, after;

			if (!names(ru, vm->id))
				continue;
			before = ref_violation(c, ru, who, 0);
			after = ref_violation(c, ru, who, h->id);
			if (ru->mandatory && after > before)
				ok = false;
			else if (!ru->mandatory)
				soft += after - before;
		}
		if (!ok)
			continue;
		var = ref_var(c, who, h->id);
		if (!best || soft < best_soft || (soft == best_soft && var < best_var)) {
			best = h->id;
			best_soft = soft;
			best_var = var;
		}
	}
	return best;
}

static void test_bruteforce(void **state)
{
	const char *env = getenv("KEEL_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
	unsigned placed = 0, refused = 0;

	printf("# test_bruteforce seed %u (KEEL_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (int round = 0; round < 500; round++) {
		struct ha_place_host h[6];
		struct ha_place_vm v[14];
		uint64_t members[4][6], group[4][6];
		struct ha_rule r[4];
		size_t nh = 1 + rand() % 6, nv = 1 + rand() % 14, nr = rand() % 5;
		struct ha_cluster c;
		size_t who = rand() % nv;
		unsigned flags = rand() % 3 == 0 ? HA_PLACE_MIGRATE : 0;
		struct kb_errmsg err;
		uint64_t got = 0, want;
		int rv;

		for (size_t i = 0; i < nh; i++) {
			h[i] = host(10 + i * (1 + rand() % 3), 1000 + rand() % 8000,
				    1024 + rand() % 8192);
			if (i > 0 && h[i].id <= h[i - 1].id)
				h[i].id = h[i - 1].id + 1;
			h[i].usable = rand() % 6 != 0;
			if (rand() % 10 == 0)
				h[i].cpu_mhz = 0;
		}
		for (size_t i = 0; i < nv; i++) {
			v[i] = vm(100 + i, rand() % 4 ? h[rand() % nh].id : 0, 64 + rand() % 3000);
			v[i].powered_on = v[i].host && rand() % 5 != 0;
			v[i].cpu_mhz = rand() % 3000;
			v[i].mem_size_mib = v[i].mem_mib + rand() % 2048;
			if (rand() % 3 == 0) {
				v[i].mem_res_mib = rand() % (v[i].mem_size_mib + 1);
				v[i].cpu_res_mhz = rand() % 2000;
			}
		}
		for (size_t i = 0; i < nr; i++) {
			size_t k = 1 + rand() % (nv < 6 ? nv : 6), g = 1 + rand() % nh, first;

			r[i] = (struct ha_rule){.id = 1 + i,
						.kind = 1 + rand() % 4,
						.mandatory = rand() % 2,
						.vms = members[i],
						.n_vms = k};
			first = rand() % nv; /* k distinct VMs, consecutive from a random one */
			for (size_t m = 0; m < k; m++)
				members[i][m] = v[(first + m) % nv].id;
			if (r[i].kind == HA_RULE_HOST_AFFINITY ||
			    r[i].kind == HA_RULE_HOST_ANTI_AFFINITY) {
				first = rand() % nh;
				for (size_t m = 0; m < g; m++)
					group[i][m] = h[(first + m) % nh].id;
				r[i].hosts = group[i];
				r[i].n_hosts = g;
			}
		}
		c = cluster(h, nh, v, nv, r, nr);
		want = ref_place(&c, who, flags);
		rv = ha_place(&c, v[who].id, flags, &got, &err);
		if (want == 0) {
			if (rv != -ENOSPC)
				fail_msg("round %d: reference refuses, ha_place %d host %" PRIu64,
					 round, rv, got);
			refused++;
		} else {
			if (rv != 0 || got != want)
				fail_msg("round %d: reference host %" PRIu64
					 ", ha_place %d host %" PRIu64 " (%s)",
					 round, want, rv, got, rv ? err.msg : "");
			placed++;
		}
	}
	printf("# %u placed, %u refused, all as the reference\n", placed, refused);
	assert_true(placed > 100);
	assert_true(refused > 10);
}

/* Same input, same answer, whatever was called before. */
static void test_determinism(void **state)
{
	enum { NH = 64, NV = 2000 };
	static struct ha_place_host h[NH];
	static struct ha_place_vm v[NV];
	struct ha_cluster c = cluster(h, NH, v, NV, NULL, 0);
	uint64_t first[20];

	srand(42);
	for (size_t i = 0; i < NH; i++)
		h[i] = host(1 + i, 20000 + rand() % 20000, 65536 + rand() % 65536);
	for (size_t i = 0; i < NV; i++) {
		v[i] = vm(1 + i, rand() % 10 ? h[rand() % NH].id : 0, 256 + rand() % 4096);
		v[i].cpu_mhz = rand() % 2000;
	}
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < 20; i++) {
			const struct ha_place_vm *x = &v[i * 97];
			uint64_t got = place_ok(&c, x->id, pass == 2 ? HA_PLACE_MIGRATE : 0);

			if (pass == 0)
				first[i] = got;
			else if (pass == 1)
				assert_int_equal(got, first[i]);
			else if (x->powered_on)
				assert_true(got != x->host);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_balance_and_tie),
	    cmocka_unit_test(test_exact_fit),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_all_in_maintenance),
	    cmocka_unit_test(test_migrate),
	    cmocka_unit_test(test_vm_affinity),
	    cmocka_unit_test(test_vm_anti_affinity),
	    cmocka_unit_test(test_host_rules),
	    cmocka_unit_test(test_soft_before_balance),
	    cmocka_unit_test(test_validation),
	    cmocka_unit_test(test_duplicate_rule_ids),
	    cmocka_unit_test(test_enomem),
	    cmocka_unit_test(test_place_on),
	    cmocka_unit_test(test_bruteforce),
	    cmocka_unit_test(test_determinism),
	};

	return cmocka_run_group_tests_name("ha_place", tests, NULL, NULL);
}
