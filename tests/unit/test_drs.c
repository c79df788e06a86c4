/*
 * Tests for ha/drs.c: the imbalance measure and the threshold's targets, configuration
 * checks, balance moves (greedy, cost-aware: reduction per byte moved), anti-thrashing
 * holds, fixes of each rule kind with mandatory rules first, rules and reservations never
 * broken by a move, hosts that are not usable, the status summary, determinism and
 * allocation failures; then a deterministic simulation (KEEL_SEED=N replays) of 128 hosts
 * and 8,000 VMs with random sizes and rules, packed on a few hosts, balanced pass after
 * pass under a virtual clock and checked after every move.
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

#include "ha/drs.h"
#include "lib/heap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NOW  10000000ULL

static struct ha_place_host host(uint64_t id, uint32_t cpu, uint64_t mem)
{
	struct ha_place_host h = {.id = id, .cpu_mhz = cpu, .mem_mib = mem, .usable = true};
	return h;
}

static struct ha_place_vm vm(uint64_t id, uint64_t host_id, uint64_t mem)
{
	struct ha_place_vm v = {.id = id,
				.host = host_id,
				.powered_on = host_id != 0,
				.mem_mib = mem,
				.mem_size_mib = mem};
	return v;
}

static struct ha_drs_config config(uint32_t threshold)
{
	struct ha_drs_config cfg;

	ha_drs_config_init(&cfg);
	cfg.threshold = threshold;
	cfg.now_ms = NOW;
	return cfg;
}

static size_t recommend(const struct ha_cluster *c, const struct ha_drs_config *cfg,
			struct ha_drs_rec *recs, size_t cap)
{
	struct kb_errmsg err = {{0}};
	size_t n = 9999;
	int rv = ha_drs_recommend(c, cfg, recs, cap, &n, &err);

	if (rv != 0)
		fail_msg("ha_drs_recommend: %d %s", rv, err.msg);
	assert_true(n <= cap);
	return n;
}

static struct ha_drs_status status(const struct ha_cluster *c, const struct ha_drs_config *cfg)
{
	struct kb_errmsg err = {{0}};
	struct ha_drs_status st;
	int rv = ha_drs_status(c, cfg, &st, &err);

	if (rv != 0)
		fail_msg("ha_drs_status: %d %s", rv, err.msg);
	return st;
}

/* Applies recommendations to the VM array (ids are index + 1 in these tests). */
static void apply(struct ha_place_vm *v, const struct ha_drs_rec *recs, size_t n, uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[recs[i].vm - 1].host, recs[i].from);
		v[recs[i].vm - 1].host = recs[i].to;
		v[recs[i].vm - 1].last_moved_ms = now;
	}
}

/* Test binaries do not link libm. */
static double dabs(double x)
{
	return x < 0 ? -x : x;
}

static double dsqrt(double x)
{
	double r = x > 1 ? x : 1;

	if (x <= 0)
		return 0;
	for (int i = 0; i < 200; i++)
		r = (r + x / r) / 2;
	return r;
}

static double sq(double x)
{
	return x * x;
}

static void assert_near(double a, double b)
{
	if (dabs(a - b) > 1e-6)
		fail_msg("%.9f != %.9f", a, b);
}

static void test_targets_and_config(void **state)
{
	struct ha_place_host h[] = {host(1, 1000, 1000)};
	struct ha_cluster c = {h, 1, NULL, 0, NULL, 0};
	struct ha_drs_config cfg = config(3);
	struct ha_drs_rec recs[4];
	struct ha_drs_status st;
	struct kb_errmsg err;
	size_t n = 77;
	const struct {
		int field;
		uint64_t value;
		const char *msg;
	} bad[] = {
	    {0, 0, "migration threshold 0, expected 1..5"},
	    {0, 6, "migration threshold 6"},
	    {1, 3, "unknown automation level 3"},
	    {2, 24ULL * 3600 * 1000 + 1, "hold time 86400001 ms"},
	    {3, 0, "0 moves per pass, expected 1..4096"},
	    {3, HA_DRS_MOVES_MAX + 1, "4097 moves per pass"},
	};

	assert_near(ha_drs_target(1), 0.30);
	assert_near(ha_drs_target(2), 0.20);
	assert_near(ha_drs_target(3), 0.10);
	assert_near(ha_drs_target(4), 0.05);
	assert_near(ha_drs_target(5), 0.02);
	assert_true(ha_drs_target(0) < 0);
	assert_true(ha_drs_target(6) < 0);
	assert_int_equal(cfg.max_moves, HA_DRS_MOVES_DEFAULT);
	assert_int_equal(cfg.hold_ms, 300000);
	assert_int_equal(cfg.automation, HA_DRS_MANUAL);
	assert_string_equal(ha_drs_automation_str(HA_DRS_PARTIAL), "partially automated");
	assert_string_equal(ha_drs_reason_str(HA_DRS_BALANCE), "balance");

	for (size_t i = 0; i < N(bad); i++) {
		cfg = config(3);
		switch (bad[i].field) {
		case 0:
			cfg.threshold = (uint32_t)bad[i].value;
			break;
		case 1:
			cfg.automation = (enum ha_drs_automation)bad[i].value;
			break;
		case 2:
			cfg.hold_ms = bad[i].value;
			break;
		case 3:
			cfg.max_moves = (uint32_t)bad[i].value;
			break;
		}
		assert_int_equal(ha_drs_recommend(&c, &cfg, recs, 4, &n, &err), -EINVAL);
		assert_non_null(strstr(err.msg, bad[i].msg));
		assert_int_equal(n, 77);
		assert_int_equal(ha_drs_status(&c, &cfg, &st, &err), -EINVAL);
	}
	/* a malformed cluster is refused the same way */
	cfg = config(3);
	h[0].id = 0;
	assert_int_equal(ha_drs_recommend(&c, &cfg, recs, 4, &n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "id 0"));
	assert_int_equal(n, 77);
}

/* Load = max(CPU, memory) share; imbalance = population standard deviation over the
 * usable hosts with capacity. */
static void test_measure(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000),
				    host(3, 10000, 10000), host(4, 10000, 0)};
	struct ha_place_vm v[] = {vm(1, 1, 2000), vm(2, 2, 1000), vm(3, 3, 9000), vm(4, 4, 10),
				  vm(5, 0, 5000)};
	struct ha_cluster c = {h, 4, v, 5, NULL, 0};
	struct ha_drs_config cfg = config(3);
	struct ha_drs_status st;

	v[1].cpu_mhz = 6000; /* host 2: max(0.6, 0.1) */
	h[2].usable = false; /* host 3 and its VM are out of the measure */
	st = status(&c, &cfg);
	assert_near(st.imbalance, 0.2); /* loads 0.2 and 0.6 */
	assert_int_equal(st.hosts, 2);
	assert_int_equal(st.vms, 4);
	assert_false(st.balanced);
	assert_near(st.target, 0.1);
	cfg.threshold = 2;
	st = status(&c, &cfg);
	assert_true(st.balanced); /* 0.2 <= 0.2 */

	h[2].usable = true; /* loads 0.2, 0.6, 0.9: mean 17/30 */
	st = status(&c, &cfg);
	assert_near(st.imbalance,
		    dsqrt((sq(0.2 - 17.0 / 30) + sq(0.6 - 17.0 / 30) + sq(0.9 - 17.0 / 30)) / 3));
	h[0].cpu_mhz = 0; /* unknown CPU: memory alone */
	v[0].cpu_mhz = 100000;
	st = status(&c, &cfg);
	assert_near(st.imbalance,
		    dsqrt((sq(0.2 - 17.0 / 30) + sq(0.6 - 17.0 / 30) + sq(0.9 - 17.0 / 30)) / 3));
}

static void test_balance(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000)};
	struct ha_place_vm v[8];
	struct ha_cluster c = {h, 2, v, 8, NULL, 0};
	struct ha_drs_config cfg = config(3);
	struct ha_drs_rec recs[16];
	size_t n;

	for (size_t i = 0; i < 8; i++)
		v[i] = vm(i + 1, 1, 1000); /* loads 0.8 and 0: imbalance 0.4 */
	n = recommend(&c, &cfg, recs, 16);
	assert_int_equal(n, 3); /* 0.3, 0.2, then 0.1: at the target */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(recs[i].vm, i + 1); /* equal moves: the lower id */
		assert_int_equal(recs[i].from, 1);
		assert_int_equal(recs[i].to, 2);
		assert_int_equal(recs[i].reason, HA_DRS_BALANCE);
		assert_int_equal(recs[i].priority, 3);
		assert_int_equal(recs[i].rule, 0);
		assert_int_equal(recs[i].bytes, 1000ULL << 20);
		assert_near(recs[i].imbalance_before, 0.4 - 0.1 * i);
		assert_near(recs[i].imbalance_after, 0.3 - 0.1 * i);
		assert_false(recs[i].automatic);
	}
	/* the cap on recommendations and on moves per pass */
	assert_int_equal(recommend(&c, &cfg, recs, 2), 2);
	cfg.max_moves = 1;
	assert_int_equal(recommend(&c, &cfg, recs, 16), 1);
	/* aggressive: all the way; fully automated */
	cfg = config(5);
	cfg.automation = HA_DRS_FULL;
	n = recommend(&c, &cfg, recs, 16);
	assert_int_equal(n, 4);
	assert_near(recs[3].imbalance_after, 0.0);
	assert_true(recs[0].automatic);
	apply(v, recs, n, NOW);
	assert_true(status(&c, &cfg).balanced);
	assert_int_equal(recommend(&c, &cfg, recs, 16), 0);
}

/* The largest reduction per byte moved, not the largest reduction. */
static void test_cost_aware(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 100000), host(2, 10000, 100000)};
	struct ha_place_vm v[] = {vm(1, 1, 100), vm(2, 1, 100), vm(3, 1, 100)};
	struct ha_cluster c = {h, 2, v, 3, NULL, 0};
	struct ha_drs_config cfg = config(3);
	struct ha_drs_rec recs[8];
	size_t n;

	v[0].cpu_mhz = 3000;
	v[0].mem_size_mib = 2048;
	v[1].cpu_mhz = 3000;
	v[1].mem_size_mib = 16384;
	v[2].cpu_mhz = 2000;
	v[2].mem_size_mib = 1024;
	/* loads 0.8 / 0: moving VM 3 gives 0.6 / 0.2 for 1 GiB; VM 1 gives 0.5 / 0.3, more
	 * per move but less per byte; VM 2 the same as VM 1 for 8 times the bytes */
	n = recommend(&c, &cfg, recs, 8);
	assert_int_equal(n, 2);
	assert_int_equal(recs[0].vm, 3);
	assert_near(recs[0].imbalance_after, 0.2);
	assert_int_equal(recs[1].vm, 1); /* then 0.3 / 0.5 */
	assert_near(recs[1].imbalance_after, 0.1);
	assert_int_equal(recs[1].bytes, 2048ULL << 20);
}

static void test_hold(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000)};
	struct ha_place_vm v[] = {vm(1, 1, 1000), vm(2, 1, 1000), vm(3, 1, 1000), vm(4, 1, 1000)};
	struct ha_cluster c = {h, 2, v, 4, NULL, 0};
	struct ha_drs_config cfg = config(3);
	struct ha_drs_rec recs[8];

	v[0].last_moved_ms = NOW - 1000;	/* held */
	v[1].last_moved_ms = NOW - cfg.hold_ms; /* the hold just ended */
	assert_int_equal(recommend(&c, &cfg, recs, 8), 1);
	assert_int_equal(recs[0].vm, 2);
	v[1].last_moved_ms = NOW - cfg.hold_ms + 1;
	v[2].last_moved_ms = NOW + 5000; /* a time after now: held too */
	assert_int_equal(recommend(&c, &cfg, recs, 8), 1);
	assert_int_equal(recs[0].vm, 4);
	v[3].last_moved_ms = NOW - 1;
	assert_int_equal(recommend(&c, &cfg, recs, 8), 0);
	assert_int_equal(status(&c, &cfg).held, 4);
	cfg.hold_ms = 0;
	assert_int_equal(recommend(&c, &cfg, recs, 8), 1);
	assert_int_equal(recs[0].vm, 1);
}

/* Mandatory rules first, then preferential ones (within the target), then balance. */
static void test_fix_order(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000),
				    host(3, 10000, 10000)};
	struct ha_place_vm v[] = {vm(1, 1, 1000), vm(2, 1, 1000), vm(3, 2, 2000), vm(4, 3, 1000),
				  vm(5, 3, 1000)};
	const uint64_t apart[] = {1, 2}, together[] = {4, 3};
	const struct ha_rule r[] = {
	    {.id = 10, .kind = HA_RULE_ANTI_AFFINITY, .mandatory = true, .vms = apart, .n_vms = 2},
	    {.id = 11, .kind = HA_RULE_AFFINITY, .vms = together, .n_vms = 2},
	};
	struct ha_cluster c = {h, 3, v, 5, r, 2};
	struct ha_drs_config cfg = config(1);
	struct ha_drs_rec recs[8];
	struct ha_drs_status st;
	size_t n;

	st = status(&c, &cfg);
	assert_near(st.imbalance, 0.0); /* 0.2 everywhere: nothing to balance */
	assert_int_equal(st.mandatory_violated, 1);
	assert_int_equal(st.preferential_violated, 1);
	assert_int_equal(st.n_violations, 2);
	assert_int_equal(st.violations[0].rule, 10);
	assert_true(st.violations[0].mandatory);
	assert_int_equal(st.violations[0].vms, 1);
	assert_int_equal(st.violations[1].rule, 11);

	n = recommend(&c, &cfg, recs, 8);
	assert_int_equal(n, 2);
	assert_int_equal(recs[0].reason, HA_DRS_FIX_MANDATORY);
	assert_int_equal(recs[0].priority, 1);
	assert_int_equal(recs[0].rule, 10);
	assert_int_equal(recs[0].vm, 1); /* VM 1 and 2 to host 2 or 3 alike: lowest ids */
	assert_int_equal(recs[0].to, 2);
	assert_int_equal(recs[1].reason, HA_DRS_FIX_PREFERENTIAL);
	assert_int_equal(recs[1].priority, 2);
	assert_int_equal(recs[1].rule, 11);
	assert_int_equal(recs[1].vm, 4); /* to VM 3 (the cheaper of the two moves) */
	assert_int_equal(recs[1].to, 2);
	apply(v, recs, n, NOW);
	st = status(&c, &cfg);
	assert_int_equal(st.mandatory_violated + st.preferential_violated, 0);

	/* threshold 3: the preferential fix would leave 0.14 > 0.10: not made */
	v[0].host = 1;
	v[3].host = 3;
	cfg = config(3);
	n = recommend(&c, &cfg, recs, 8);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].rule, 10);
	apply(v, recs, n, NOW);
	st = status(&c, &cfg);
	assert_int_equal(st.mandatory_violated, 0);
	assert_int_equal(st.preferential_violated, 1);

	/* a held VM waits, even for a mandatory fix */
	v[0].host = 1;
	v[0].last_moved_ms = v[1].last_moved_ms = NOW - 1;
	assert_int_equal(recommend(&c, &cfg, recs, 8), 0);
}

static void test_affinity_fix(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000),
				    host(3, 10000, 10000)};
	struct ha_place_vm v[] = {vm(1, 1, 1000), vm(2, 1, 1000), vm(3, 2, 1000), vm(4, 3, 500)};
	const uint64_t together[] = {1, 2, 3};
	const struct ha_rule r[] = {
	    {.id = 5, .kind = HA_RULE_AFFINITY, .mandatory = true, .vms = together, .n_vms = 3},
	};
	struct ha_cluster c = {h, 3, v, 4, r, 1};
	struct ha_drs_config cfg = config(1);
	struct ha_drs_rec recs[8];
	size_t n;

	/* no room for VM 3's reservation with the others: the rule stays violated */
	v[0].mem_res_mib = 9000;
	v[2].mem_res_mib = 1001;
	assert_int_equal(recommend(&c, &cfg, recs, 8), 0);
	assert_int_equal(status(&c, &cfg).violations[0].vms, 1);
	v[2].mem_res_mib = 1000; /* exactly fits */
	n = recommend(&c, &cfg, recs, 8);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].vm, 3);
	assert_int_equal(recs[0].to, 1);
	assert_int_equal(recs[0].rule, 5);
	apply(v, recs, n, NOW);
	/* together and busy (0.3 against 0.05 and 0): balance never splits them */
	cfg = config(5);
	assert_int_equal(recommend(&c, &cfg, recs, 8), 0);
	assert_int_equal(status(&c, &cfg).mandatory_violated, 0);
}

static void test_host_rule_fix(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000),
				    host(3, 10000, 10000)};
	struct ha_place_vm v[] = {vm(1, 1, 1000), vm(2, 2, 1000), vm(3, 2, 3000)};
	const uint64_t m1[] = {1}, m2[] = {2}, g1[] = {2}, g2[] = {2, 3};
	struct ha_rule r[] = {
	    {.id = 1,
	     .kind = HA_RULE_HOST_AFFINITY,
	     .mandatory = true,
	     .vms = m1,
	     .n_vms = 1,
	     .hosts = g1,
	     .n_hosts = 1},
	    {.id = 2,
	     .kind = HA_RULE_HOST_ANTI_AFFINITY,
	     .mandatory = true,
	     .vms = m2,
	     .n_vms = 1,
	     .hosts = g2,
	     .n_hosts = 2},
	};
	struct ha_cluster c = {h, 3, v, 3, r, 2};
	struct ha_drs_config cfg = config(5);
	struct ha_drs_rec recs[8];
	size_t n;

	n = recommend(&c, &cfg, recs, 8);
	assert_true(n >= 2);
	assert_int_equal(recs[0].reason, HA_DRS_FIX_MANDATORY);
	assert_int_equal(recs[1].reason, HA_DRS_FIX_MANDATORY);
	/* VM 1 to host 2 (its group), VM 2 to host 1 (out of its group), in the order of
	 * the better balance: VM 2 first (host 2 is the busy one) */
	assert_int_equal(recs[0].vm, 2);
	assert_int_equal(recs[0].to, 1);
	assert_int_equal(recs[1].vm, 1);
	assert_int_equal(recs[1].to, 2);
	for (size_t i = 2; i < n; i++)
		assert_int_equal(recs[i].reason, HA_DRS_BALANCE);
	apply(v, recs, n, NOW);
	assert_int_equal(v[0].host, 2);
	assert_int_equal(v[1].host, 1);

	/* bound by a rule, a busy VM stays; a preferential rule binds balance too */
	v[0].last_moved_ms = v[1].last_moved_ms = v[2].last_moved_ms = 0;
	v[0].host = 2;
	v[1].host = 1;
	v[2].host = 1; /* 0.4 / 0.1 / 0 */
	r[1].hosts = g1;
	r[1].n_hosts = 1;
	r[1].vms = (const uint64_t[]){3};
	r[1].kind = HA_RULE_HOST_AFFINITY;
	r[1].hosts = (const uint64_t[]){1};
	r[1].mandatory = false;
	n = recommend(&c, &cfg, recs, 8);
	for (size_t i = 0; i < n; i++)
		assert_true(recs[i].vm != 3 && recs[i].vm != 1);
	assert_int_equal(status(&c, &cfg).mandatory_violated, 0);
}

/* Reservations at the destination must fit; hosts not usable give and take nothing. */
static void test_reservations_and_unusable(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000),
				    host(3, 10000, 10000), host(4, 10000, 10000)};
	struct ha_place_vm v[] = {vm(1, 1, 2000), vm(2, 1, 2000), vm(3, 1, 2000), vm(4, 2, 0),
				  vm(5, 3, 9000)};
	struct ha_cluster c = {h, 4, v, 5, NULL, 0};
	struct ha_drs_config cfg = config(5);
	struct ha_drs_rec recs[8];
	struct ha_drs_status st;
	size_t n;

	v[3].mem_res_mib = 9500; /* host 2: reservations nearly full, load 0 */
	v[0].mem_res_mib = v[1].mem_res_mib = 600;
	v[3].cpu_res_mhz = 9000;
	v[2].cpu_res_mhz = 1001;
	h[2].usable = false; /* in maintenance: its VM 5 stays, host 3 takes nothing */
	h[3].usable = false;
	assert_int_equal(recommend(&c, &cfg, recs, 8), 0);
	st = status(&c, &cfg);
	assert_int_equal(st.hosts, 2);
	assert_near(st.imbalance, 0.3);
	v[2].cpu_res_mhz = 1000; /* VM 3 now fits exactly */
	n = recommend(&c, &cfg, recs, 8);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].vm, 3);
	assert_int_equal(recs[0].to, 2);
	h[3].usable = true; /* an empty host: the others can go there */
	n = recommend(&c, &cfg, recs, 8);
	for (size_t i = 0; i < n; i++) {
		assert_true(recs[i].to == 2 || recs[i].to == 4);
		assert_true(recs[i].vm != 5);
	}
	/* overcommitted hosts are reported, never made worse */
	v[3].mem_res_mib = 20000;
	st = status(&c, &cfg);
	assert_int_equal(st.overcommitted, 1);
	n = recommend(&c, &cfg, recs, 8);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(recs[i].to, 4);
}

/* Random medium clusters: the same input gives the same recommendations. */
static void test_determinism(void **state)
{
	enum { NH = 32, NV = 1000, NR = 40 };
	static struct ha_place_host h[NH];
	static struct ha_place_vm v[NV];
	static uint64_t members[NR][4], groups[NR][4];
	static struct ha_rule r[NR];
	static struct ha_drs_rec a[64], b[64];
	struct ha_cluster c = {h, NH, v, NV, r, NR};
	struct ha_drs_config cfg = config(4);
	size_t na, nb;

	srand(7);
	for (size_t i = 0; i < NH; i++)
		h[i] = host(i + 1, 20000 + rand() % 20000, 65536 + rand() % 65536);
	for (size_t i = 0; i < NV; i++) {
		v[i] = vm(i + 1, 1 + rand() % (NH / 4), 256 + rand() % 4096);
		v[i].cpu_mhz = rand() % 2000;
	}
	for (size_t i = 0; i < NR; i++) {
		r[i] = (struct ha_rule){.id = 100 + i,
					.kind = 1 + i % 4,
					.mandatory = i % 3 == 0,
					.vms = members[i],
					.n_vms = 2 + rand() % 3};
		for (size_t k = 0; k < r[i].n_vms; k++)
			members[i][k] = 1 + (i * 4 + k) * 7 % NV;
		if (r[i].kind >= HA_RULE_HOST_AFFINITY) {
			r[i].hosts = groups[i];
			r[i].n_hosts = 4;
			for (size_t k = 0; k < 4; k++)
				groups[i][k] = 1 + (i + k * 8) % NH;
		}
	}
	cfg.max_moves = 64;
	na = recommend(&c, &cfg, a, 64);
	nb = recommend(&c, &cfg, b, 64);
	assert_int_equal(na, 64);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na * sizeof(a[0]));
}

/* Random small clusters, aggressive threshold, no hold from earlier passes: within one
 * pass no VM is moved twice, every move keeps reservations within capacity, and the
 * figures chain from one recommendation to the next. */
static void test_once_per_pass(void **state)
{
	const char *env = getenv("KEEL_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
	unsigned total = 0;

	printf("# test_once_per_pass seed %u (KEEL_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (int round = 0; round < 300; round++) {
		struct ha_place_host h[5];
		struct ha_place_vm v[12];
		struct ha_drs_rec recs[64];
		uint64_t mem_res[5] = {0};
		size_t nh = 2 + rand() % 4, nv = 1 + rand() % 12, n;
		struct ha_cluster c = {h, nh, v, nv, NULL, 0};
		struct ha_drs_config cfg = config(5);

		cfg.hold_ms = 0;
		cfg.max_moves = 64;
		for (size_t j = 0; j < nh; j++)
			h[j] = host(j + 1, 1000 + rand() % 9000, 1000 + rand() % 9000);
		for (size_t i = 0; i < nv; i++) {
			v[i] = vm(i + 1, 1 + rand() % nh, rand() % 3000);
			v[i].cpu_mhz = rand() % 3000;
			v[i].mem_size_mib = 1 + rand() % 4096;
			if (rand() % 3 == 0 &&
			    mem_res[v[i].host - 1] + 500 <= h[v[i].host - 1].mem_mib) {
				v[i].mem_res_mib = 500;
				mem_res[v[i].host - 1] += 500;
			}
		}
		n = recommend(&c, &cfg, recs, 64);
		total += n;
		for (size_t i = 0; i < n; i++) {
			for (size_t k = 0; k < i; k++)
				assert_true(recs[k].vm != recs[i].vm);
			assert_true(recs[i].imbalance_after < recs[i].imbalance_before);
			if (i > 0)
				assert_near(recs[i].imbalance_before, recs[i - 1].imbalance_after);
			mem_res[recs[i].from - 1] -= v[recs[i].vm - 1].mem_res_mib;
			mem_res[recs[i].to - 1] += v[recs[i].vm - 1].mem_res_mib;
			assert_true(mem_res[recs[i].to - 1] <= h[recs[i].to - 1].mem_mib);
		}
	}
	assert_true(total > 300);
}

static void test_enomem(void **state)
{
	struct ha_place_host h[] = {host(1, 10000, 10000), host(2, 10000, 10000)};
	struct ha_place_vm v[] = {vm(1, 1, 3000), vm(2, 1, 3000)};
	const uint64_t m[] = {1, 2};
	const struct ha_rule r[] = {{.id = 1, .kind = HA_RULE_ANTI_AFFINITY, .vms = m, .n_vms = 2}};
	struct ha_cluster c = {h, 2, v, 2, r, 1};
	struct ha_drs_config cfg = config(3);
	struct ha_drs_rec recs[4];
	struct ha_drs_status st;
	struct kb_errmsg err;
	int fails = 0;

	for (int k = 0;; k++) {
		size_t n = 99;
		int rv, rs;

		kb_heap_fail_after(k, 1);
		rv = ha_drs_recommend(&c, &cfg, recs, 4, &n, &err);
		kb_heap_fail_reset();
		kb_heap_fail_after(k, 1);
		rs = ha_drs_status(&c, &cfg, &st, &err);
		kb_heap_fail_reset();
		if (rv == 0) {
			assert_int_equal(rs, 0);
			assert_int_equal(n, 1);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
		assert_int_equal(rs, -ENOMEM);
		assert_int_equal(n, 99);
		fails++;
	}
	assert_true(fails > 10);
}

/* ---- the simulation ---- */

enum {
	SIM_HOSTS = 128,
	SIM_PACKED = 24, /* hosts the VMs start on */
	SIM_VMS = 8000,
	SIM_RULES = 240,
	SIM_MAX_MOVES = 256,
};

struct sim {
	struct ha_place_host h[SIM_HOSTS];
	struct ha_place_vm v[SIM_VMS];
	struct ha_rule r[SIM_RULES];
	uint64_t members[SIM_RULES][8];
	uint64_t groups[SIM_RULES][24];
	uint32_t hard_rule[SIM_VMS]; /* index + 1 of the mandatory rule naming the VM */
	uint64_t mem_res[SIM_HOSTS], cpu_res[SIM_HOSTS];
	struct ha_drs_rec recs[SIM_MAX_MOVES];
};

#ifdef __SANITIZE_ADDRESS__
#define SIM_CPU_BOUND 30.0
#else
#define SIM_CPU_BOUND 3.0
#endif

static uint64_t rng_state;

/* xorshift64*: the same sequence on every machine for a seed. */
static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (rng_state * 2685821657736338717ULL) % n;
}

/* Rule violation from its definition (VM ids are index + 1, host ids index + 1). */
static unsigned sim_violation(const struct sim *s, const struct ha_rule *r)
{
	unsigned per_host[SIM_HOSTS] = {0}, p = 0, max = 0, distinct = 0, viol = 0;

	for (size_t i = 0; i < r->n_vms; i++) {
		const struct ha_place_vm *u = &s->v[r->vms[i] - 1];
		bool in = false;

		if (!u->powered_on || !u->host)
			continue;
		p++;
		if (per_host[u->host - 1]++ == 0)
			distinct++;
		if (per_host[u->host - 1] > max)
			max = per_host[u->host - 1];
		for (size_t k = 0; k < r->n_hosts; k++)
			in |= r->hosts[k] == u->host;
		if (r->kind == HA_RULE_HOST_AFFINITY)
			viol += !in;
		else if (r->kind == HA_RULE_HOST_ANTI_AFFINITY)
			viol += in;
	}
	if (r->kind == HA_RULE_AFFINITY)
		return p - max;
	if (r->kind == HA_RULE_ANTI_AFFINITY)
		return p - distinct;
	return viol;
}

static unsigned sim_hard_violations(const struct sim *s)
{
	unsigned n = 0;

	for (size_t i = 0; i < SIM_RULES; i++)
		if (s->r[i].mandatory)
			n += sim_violation(s, &s->r[i]);
	return n;
}

/* Standard deviation of the loads, in floating point, as a cross-check. */
static double sim_imbalance(const struct sim *s)
{
	double load[SIM_HOSTS] = {0}, mean = 0, var = 0;
	double cpu[SIM_HOSTS] = {0}, mem[SIM_HOSTS] = {0};
	unsigned n = 0;

	for (size_t i = 0; i < SIM_VMS; i++)
		if (s->v[i].powered_on && s->v[i].host) {
			cpu[s->v[i].host - 1] += s->v[i].cpu_mhz;
			mem[s->v[i].host - 1] += s->v[i].mem_mib;
		}
	for (size_t j = 0; j < SIM_HOSTS; j++) {
		if (!s->h[j].usable)
			continue;
		load[j] = cpu[j] / s->h[j].cpu_mhz;
		if (mem[j] / s->h[j].mem_mib > load[j])
			load[j] = mem[j] / s->h[j].mem_mib;
		mean += load[j];
		n++;
	}
	mean /= n;
	for (size_t j = 0; j < SIM_HOSTS; j++)
		if (s->h[j].usable)
			var += (load[j] - mean) * (load[j] - mean);
	return dsqrt(var / n);
}

static void sim_rule(struct sim *s, size_t i, enum ha_rule_kind kind, bool mandatory)
{
	struct ha_rule *r = &s->r[i];
	size_t k = 2 + rnd(kind == HA_RULE_AFFINITY ? 2 : 6);

	*r = (struct ha_rule){
	    .id = 1000 + i, .kind = kind, .mandatory = mandatory, .vms = s->members[i]};
	while (r->n_vms < k) {
		uint64_t id = 1 + rnd(SIM_VMS);
		bool dup = false;

		for (size_t m = 0; m < r->n_vms; m++)
			dup |= s->members[i][m] == id;
		/* one mandatory rule per VM, so mandatory rules never contradict each other;
		 * VMs kept together have no reservation, so a host always has room for them */
		if (dup || (mandatory && s->hard_rule[id - 1]))
			continue;
		if (mandatory && kind == HA_RULE_AFFINITY)
			s->v[id - 1].mem_res_mib = s->v[id - 1].cpu_res_mhz = 0;
		if (mandatory)
			s->hard_rule[id - 1] = (uint32_t)i + 1;
		s->members[i][r->n_vms++] = id;
	}
	if (kind == HA_RULE_HOST_AFFINITY || kind == HA_RULE_HOST_ANTI_AFFINITY) {
		r->hosts = s->groups[i];
		r->n_hosts = 8 + rnd(17);
		for (size_t m = 0; m < r->n_hosts; m++) /* distinct: a random stride */
			s->groups[i][m] = 1 + (i * 37 + m * 5) % SIM_HOSTS;
	}
}

static void sim_build(struct sim *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t j = 0; j < SIM_HOSTS; j++)
		s->h[j] = host(j + 1, 20000 + 1000 * rnd(41), 1024 * (128 + rnd(385)));
	for (size_t i = 0; i < SIM_VMS; i++) {
		struct ha_place_vm *v = &s->v[i];

		*v = vm(i + 1, 0, 0);
		v->mem_size_mib = 512 * (1 + rnd(16));
		v->mem_mib = v->mem_size_mib * (30 + rnd(71)) / 100;
		v->cpu_mhz = 50 + rnd(951);
		if (rnd(8) == 0) {
			v->mem_res_mib = v->mem_size_mib / 2;
			v->cpu_res_mhz = 200 + rnd(801);
		}
	}
	for (size_t i = 0; i < SIM_RULES; i++) {
		enum ha_rule_kind kind = 1 + i % 4;

		sim_rule(s, i, kind, i < SIM_RULES * 2 / 3);
	}
	/* packed on the first hosts, reservations respected */
	for (size_t i = 0; i < SIM_VMS; i++) {
		struct ha_place_vm *v = &s->v[i];
		size_t j = rnd(SIM_PACKED), tries = 0;

		while (s->mem_res[j] + v->mem_res_mib > s->h[j].mem_mib ||
		       s->cpu_res[j] + v->cpu_res_mhz > s->h[j].cpu_mhz) {
			j = (j + 1) % SIM_PACKED;
			assert_true(++tries < SIM_PACKED);
		}
		v->host = j + 1;
		v->powered_on = true;
		s->mem_res[j] += v->mem_res_mib;
		s->cpu_res[j] += v->cpu_res_mhz;
	}
}

static double cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_simulation(void **state)
{
	const char *env = getenv("KEEL_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
	struct sim *s = calloc(1, sizeof(*s));
	struct ha_cluster c;
	struct ha_drs_config cfg = config(4);
	double prev, start, spent = 0, target = ha_drs_target(4);
	unsigned passes = 0, moves = 0, fixes = 0, soft_fixes = 0, hard_start;
	uint64_t bytes = 0;
	bool hard_clean = false;

	assert_non_null(s);
	printf("# test_simulation seed %u (KEEL_SEED=%u replays)\n", seed, seed);
	rng_state = 0x9e3779b97f4a7c15ULL ^ seed;
	sim_build(s);
	c = (struct ha_cluster){s->h, SIM_HOSTS, s->v, SIM_VMS, s->r, SIM_RULES};
	cfg.automation = HA_DRS_FULL;
	cfg.max_moves = SIM_MAX_MOVES;
	cfg.now_ms = 1000000;

	start = cpu_seconds();
	struct ha_drs_status st = status(&c, &cfg);
	spent += cpu_seconds() - start;
	prev = st.imbalance;
	hard_start = sim_hard_violations(s);
	assert_near(prev, sim_imbalance(s));
	printf("# start: imbalance %.4f, target %.4f, %u mandatory and %u preferential rules "
	       "violated (%u VMs out of place by mandatory rules)\n",
	       prev, target, st.mandatory_violated, st.preferential_violated, hard_start);
	assert_true(prev > 0.5);
	assert_true(hard_start > 0);

	for (;;) {
		size_t n;

		start = cpu_seconds();
		n = recommend(&c, &cfg, s->recs, SIM_MAX_MOVES);
		spent += cpu_seconds() - start;
		if (n == 0)
			break;
		passes++;
		assert_true(passes < 500);
		for (size_t i = 0; i < n; i++) {
			const struct ha_drs_rec *rec = &s->recs[i];
			struct ha_place_vm *v = &s->v[rec->vm - 1];
			uint32_t hr = s->hard_rule[rec->vm - 1];
			unsigned before = hr ? sim_violation(s, &s->r[hr - 1]) : 0;

			/* anti-thrashing: not moved within the hold time (nor twice a pass) */
			assert_true(v->last_moved_ms == 0 ||
				    cfg.now_ms - v->last_moved_ms >= cfg.hold_ms);
			assert_int_equal(v->host, rec->from);
			assert_true(rec->automatic);
			if (i > 0)
				assert_near(rec->imbalance_before, s->recs[i - 1].imbalance_after);
			s->mem_res[rec->from - 1] -= v->mem_res_mib;
			s->cpu_res[rec->from - 1] -= v->cpu_res_mhz;
			s->mem_res[rec->to - 1] += v->mem_res_mib;
			s->cpu_res[rec->to - 1] += v->cpu_res_mhz;
			v->host = rec->to;
			v->last_moved_ms = cfg.now_ms;
			/* no reservation overcommitted; the VM's mandatory rule no worse, and
			 * once every mandatory rule held, every one still holds */
			assert_true(s->mem_res[rec->to - 1] <= s->h[rec->to - 1].mem_mib);
			assert_true(s->cpu_res[rec->to - 1] <= s->h[rec->to - 1].cpu_mhz);
			if (hr) {
				unsigned after = sim_violation(s, &s->r[hr - 1]);

				assert_true(after <= before);
				if (rec->reason == HA_DRS_FIX_MANDATORY)
					assert_true(after < before);
				if (hard_clean)
					assert_int_equal(after, 0);
			}
			fixes += rec->reason == HA_DRS_FIX_MANDATORY;
			soft_fixes += rec->reason == HA_DRS_FIX_PREFERENTIAL;
			bytes += rec->bytes;
			moves++;
		}
		start = cpu_seconds();
		st = status(&c, &cfg);
		spent += cpu_seconds() - start;
		assert_near(st.imbalance, s->recs[n - 1].imbalance_after);
		assert_true(dabs(st.imbalance - sim_imbalance(s)) < 1e-5);
		assert_int_equal(st.overcommitted, 0);
		assert_int_equal(st.mandatory_violated == 0, sim_hard_violations(s) == 0);
		if (st.mandatory_violated == 0)
			hard_clean = true;
		/* each pass lowers the imbalance while it is above the target; once at the
		 * target, fixes of preferential rules keep it there */
		if (prev > target)
			assert_true(st.imbalance < prev);
		else
			assert_true(st.imbalance <= target);
		printf("# pass %u at %" PRIu64 " s: %zu moves, imbalance %.4f, violated rules %u "
		       "mandatory %u preferential\n",
		       passes, cfg.now_ms / 1000, n, st.imbalance, st.mandatory_violated,
		       st.preferential_violated);
		prev = st.imbalance;
		cfg.now_ms += HA_DRS_PERIOD_MS;
	}
	st = status(&c, &cfg);
	printf("# end after %u passes: %u moves (%u mandatory fixes, %u preferential), %.1f GiB "
	       "moved, imbalance %.4f <= %.4f, %u preferential rules violated\n",
	       passes, moves, fixes, soft_fixes, bytes / 1073741824.0, st.imbalance, target,
	       st.preferential_violated);
	printf("# DRS CPU time: %.3f s for %u passes (%.1f ms a pass)\n", spent, passes + 1,
	       spent * 1000 / (passes + 1));
	/* CPU time, not wall time: other load on the machine does not count. About 0.4 s
	 * here; the bound only catches a change of complexity. */
	assert_true(spent < SIM_CPU_BOUND);
	assert_true(st.balanced);
	assert_true(st.imbalance <= target);
	assert_int_equal(st.mandatory_violated, 0);
	assert_int_equal(sim_hard_violations(s), 0);
	assert_true(fixes >= hard_start);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_targets_and_config),
	    cmocka_unit_test(test_measure),
	    cmocka_unit_test(test_balance),
	    cmocka_unit_test(test_cost_aware),
	    cmocka_unit_test(test_hold),
	    cmocka_unit_test(test_fix_order),
	    cmocka_unit_test(test_affinity_fix),
	    cmocka_unit_test(test_host_rule_fix),
	    cmocka_unit_test(test_reservations_and_unusable),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_once_per_pass),
	    cmocka_unit_test(test_enomem),
	    cmocka_unit_test(test_simulation),
	};

	return cmocka_run_group_tests_name("ha_drs", tests, NULL, NULL);
}
