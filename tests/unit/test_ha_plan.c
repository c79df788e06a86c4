/*
 * Tests for ha/plan.c: restart placement (priority order, spreading by free memory,
 * reservations, anti-affinity, exclusions after failed power-ons, restart-after
 * dependencies, in-flight bound, determinism whatever the input order) and admission
 * control (host failures and percentage policies, their messages, bad policies). A seeded
 * random check (KEEL_SEED=N replays) verifies that no placement ever overcommits a host.
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

#include "ha/plan.h"

static struct ha_plan_host host(uint64_t id, uint64_t mem, uint64_t used)
{
	struct ha_plan_host h = {
	    .id = id, .eligible = true, .cpu_mhz = 10000, .mem_mib = mem, .mem_used = used};
	return h;
}

static struct ha_plan_vm vm(const char *uuid, enum ha_prio p, uint64_t mem)
{
	struct ha_plan_vm v = {.uuid = uuid, .priority = p, .mem_mib = mem};
	return v;
}

static const struct ha_plan_vm *by_uuid(const struct ha_plan_vm *v, size_t n, const char *u)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].uuid, u) == 0)
			return &v[i];
	fail_msg("no VM %s", u);
	return NULL;
}

static void test_priority_and_spread(void **state)
{
	struct ha_plan_host h[] = {host(1, 4096, 0), host(2, 4096, 1024)};
	struct ha_plan_vm v[] = {vm("c", HA_PRIO_LOW, 1024), vm("a", HA_PRIO_HIGHEST, 1024),
				 vm("b", HA_PRIO_MEDIUM, 1024), vm("d", HA_PRIO_DISABLED, 16)};

	assert_int_equal(ha_plan_place(h, 2, v, 4), 3);
	/* sorted: highest priority first */
	assert_string_equal(v[0].uuid, "a");
	assert_string_equal(v[1].uuid, "b");
	assert_string_equal(v[2].uuid, "c");
	/* a goes to the emptier host 1; b then has 2048 free on 1 and 3072→2048 on 2: tie →
	 * lower id; c goes where most is left */
	assert_int_equal(by_uuid(v, 4, "a")->host, 1);
	assert_int_equal(by_uuid(v, 4, "b")->host, 1);
	assert_int_equal(by_uuid(v, 4, "c")->host, 2);
	assert_int_equal(by_uuid(v, 4, "d")->result, HA_PLAN_DISABLED);
	assert_int_equal(by_uuid(v, 4, "d")->host, 0);
	assert_int_equal(h[0].mem_used, 2048);
	assert_int_equal(h[1].mem_used, 2048);
	assert_int_equal(h[0].inflight, 2);
}

static void test_capacity_and_reservations(void **state)
{
	struct ha_plan_host h[] = {host(1, 2048, 1024), host(2, 8192, 0)};
	struct ha_plan_vm v[] = {vm("big", HA_PRIO_HIGH, 8192), vm("huge", HA_PRIO_HIGH, 9000),
				 vm("cpu", HA_PRIO_LOW, 16)};

	h[1].eligible = false; /* in maintenance: only host 1 */
	v[2].cpu_mhz = 20000;  /* more CPU reserved than any host has */
	assert_int_equal(ha_plan_place(h, 2, v, 3), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(v[i].result, HA_PLAN_NO_CAPACITY);

	/* the host comes back: big fits there, huge still nowhere */
	h[1].eligible = true;
	for (size_t i = 0; i < 3; i++)
		v[i].result = 0;
	assert_int_equal(ha_plan_place(h, 2, v, 3), 1);
	assert_int_equal(by_uuid(v, 3, "big")->host, 2);
	assert_int_equal(by_uuid(v, 3, "huge")->result, HA_PLAN_NO_CAPACITY);
	assert_int_equal(by_uuid(v, 3, "cpu")->result, HA_PLAN_NO_CAPACITY);
}

static void test_anti_affinity(void **state)
{
	const uint32_t g7[] = {7};
	struct ha_plan_host h[] = {host(1, 8192, 0), host(2, 8192, 0), host(3, 8192, 0)};
	struct ha_plan_vm v[] = {vm("a", HA_PRIO_MEDIUM, 64), vm("b", HA_PRIO_MEDIUM, 64),
				 vm("c", HA_PRIO_MEDIUM, 64)};

	h[2].groups = g7; /* host 3 already runs a member of group 7 */
	h[2].n_groups = 1;
	h[0].mem_mib = 100000; /* host 1 would win every time without the rule */
	for (size_t i = 0; i < 3; i++)
		v[i].group = 7;
	assert_int_equal(ha_plan_place(h, 3, v, 3), 2);
	assert_int_equal(by_uuid(v, 3, "a")->host, 1);
	assert_int_equal(by_uuid(v, 3, "b")->host, 2);
	assert_int_equal(by_uuid(v, 3, "c")->result, HA_PLAN_NO_CAPACITY);
}

static void test_exclusions(void **state)
{
	struct ha_plan_host h[] = {host(1, 8192, 0), host(2, 1024, 0)};
	struct ha_plan_vm v[] = {vm("a", HA_PRIO_MEDIUM, 512)};

	v[0].exclude[0] = 1; /* its power-on failed there */
	v[0].n_exclude = 1;
	assert_int_equal(ha_plan_place(h, 2, v, 1), 1);
	assert_int_equal(v[0].host, 2);
	v[0].exclude[1] = 2;
	v[0].n_exclude = 2;
	assert_int_equal(ha_plan_place(h, 2, v, 1), 0);
	assert_int_equal(v[0].result, HA_PLAN_NO_CAPACITY);
	v[0].n_exclude = HA_PLAN_EXCLUDE_MAX + 1;
	assert_int_equal(ha_plan_place(h, 2, v, 1), -EINVAL);
}

static void test_restart_after(void **state)
{
	struct ha_plan_host h[] = {host(1, 8192, 0)};
	struct ha_plan_vm v[] = {vm("app", HA_PRIO_HIGHEST, 64), vm("db", HA_PRIO_LOW, 64),
				 vm("web", HA_PRIO_HIGH, 64), vm("off", HA_PRIO_DISABLED, 64)};

	v[0].after[0] = "db"; /* app waits for db even though it has the higher priority */
	v[0].n_after = 1;
	v[2].after[0] = "off";	  /* a disabled dependency holds nothing back */
	v[2].after[1] = "nobody"; /* neither does one outside the plan */
	v[2].n_after = 2;
	assert_int_equal(ha_plan_place(h, 1, v, 4), 2);
	assert_int_equal(by_uuid(v, 4, "app")->result, HA_PLAN_WAITING);
	assert_int_equal(by_uuid(v, 4, "db")->result, HA_PLAN_PLACED);
	assert_int_equal(by_uuid(v, 4, "web")->result, HA_PLAN_PLACED);

	/* next round: db runs now, app goes */
	for (size_t i = 0; i < 4; i++) {
		if (v[i].result == HA_PLAN_PLACED)
			v[i].running = true;
		v[i].result = 0;
	}
	assert_int_equal(ha_plan_place(h, 1, v, 4), 1);
	assert_int_equal(by_uuid(v, 4, "app")->result, HA_PLAN_PLACED);
	assert_int_equal(by_uuid(v, 4, "db")->result, HA_PLAN_RUNNING);
}

/* A VM starting on the host HA gave it is not placed again, and the VMs restarted after it
 * wait until it runs. */
static void test_starting(void **state)
{
	struct ha_plan_host h[] = {host(1, 8192, 0), host(2, 8192, 0)};
	struct ha_plan_vm v[] = {vm("db", HA_PRIO_HIGH, 64), vm("app", HA_PRIO_MEDIUM, 64)};

	v[0].starting = true;
	v[1].after[0] = "db";
	v[1].n_after = 1;
	assert_int_equal(ha_plan_place(h, 2, v, 2), 0);
	assert_int_equal(by_uuid(v, 2, "db")->result, HA_PLAN_RUNNING);
	assert_int_equal(by_uuid(v, 2, "db")->host, 0);
	assert_int_equal(by_uuid(v, 2, "app")->result, HA_PLAN_WAITING);
	assert_int_equal(h[0].inflight + h[1].inflight, 0);
}

static void test_inflight_bound(void **state)
{
	enum { N = HA_PLAN_INFLIGHT_MAX + 10 };
	struct ha_plan_host h[] = {host(1, 1 << 20, 0)};
	static struct ha_plan_vm v[N];
	static char names[N][16];

	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "vm%03zu", i);
		v[i] = vm(names[i], HA_PRIO_MEDIUM, 16);
	}
	assert_int_equal(ha_plan_place(h, 1, v, N), HA_PLAN_INFLIGHT_MAX);
	assert_int_equal(h[0].inflight, HA_PLAN_INFLIGHT_MAX);
	assert_int_equal(v[N - 1].result, HA_PLAN_NO_CAPACITY);
}

static void test_bad_input(void **state)
{
	struct ha_plan_host h[] = {host(0, 1024, 0)};
	struct ha_plan_vm v[] = {vm("a", HA_PRIO_MEDIUM, 16)};

	assert_int_equal(ha_plan_place(h, 1, v, 1), -EINVAL);
	assert_int_equal(v[0].result, 0);
	h[0].id = 1;
	v[0].uuid = NULL;
	assert_int_equal(ha_plan_place(h, 1, v, 1), -EINVAL);
	assert_int_equal(ha_plan_place(h, 1, NULL, 0), 0);
}

/* Random clusters: placements never overcommit, never land on an ineligible or excluded
 * host, never put two VMs of a group together, and do not depend on the input order. */
static void test_random(void **state)
{
	const char *env = getenv("KEEL_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);

	printf("# test_random seed %u (KEEL_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (int round = 0; round < 300; round++) {
		struct ha_plan_host h[8], h2[8];
		struct ha_plan_vm v[40], v2[40];
		char names[40][8];
		size_t nh = 1 + rand() % 8, nv = rand() % 40;

		for (size_t i = 0; i < nh; i++) {
			h[i] = host(i + 1, 256 + rand() % 4096, 0);
			h[i].mem_used = rand() % 512;
			h[i].cpu_mhz = rand() % 8000;
			h[i].eligible = rand() % 5 != 0;
		}
		for (size_t i = 0; i < nv; i++) {
			snprintf(names[i], sizeof(names[i]), "v%02zu", i);
			v[i] = vm(names[i], rand() % 6, 16 + rand() % 1024);
			v[i].cpu_mhz = rand() % 2000;
			v[i].group = rand() % 4;
			if (rand() % 3 == 0)
				v[i].exclude[v[i].n_exclude++] = 1 + rand() % nh;
		}
		memcpy(h2, h, sizeof(h));
		memcpy(v2, v, sizeof(v));
		for (size_t i = nv; i > 1; i--) { /* shuffle the copy */
			size_t j = rand() % i;
			struct ha_plan_vm t = v2[i - 1];
			v2[i - 1] = v2[j];
			v2[j] = t;
		}
		int n1 = ha_plan_place(h, nh, v, nv);
		int n2 = ha_plan_place(h2, nh, v2, nv);
		assert_true(n1 >= 0);
		assert_int_equal(n1, n2);
		for (size_t i = 0; i < nv; i++) {
			assert_string_equal(v[i].uuid, v2[i].uuid);
			assert_int_equal(v[i].host, v2[i].host);
			if (v[i].result != HA_PLAN_PLACED)
				continue;
			const struct ha_plan_host *p = NULL;
			for (size_t j = 0; j < nh; j++)
				if (h[j].id == v[i].host)
					p = &h[j];
			assert_non_null(p);
			assert_true(p->eligible);
			for (size_t k = 0; k < v[i].n_exclude; k++)
				assert_true(v[i].exclude[k] != p->id);
			for (size_t k = 0; k < i; k++)
				if (v[i].group && v[k].result == HA_PLAN_PLACED &&
				    v[k].host == p->id)
					assert_true(v[k].group != v[i].group);
		}
		for (size_t j = 0; j < nh; j++) {
			assert_true(h[j].mem_used <= h[j].mem_mib || h[j].inflight == 0);
			if (h[j].inflight)
				assert_true(h[j].cpu_used <= h[j].cpu_mhz);
		}
	}
}

static void test_admission_host_failures(void **state)
{
	struct ha_plan_host h[] = {host(1, 8192, 2048), host(2, 4096, 1024), host(3, 4096, 0)};
	struct ha_admit a = {.policy = HA_ADMIT_HOST_FAILURES, .failures = 1};
	char msg[HA_ADMIT_MSG];

	for (size_t i = 0; i < 3; i++)
		h[i].cpu_mhz = 0; /* unknown CPU: memory alone decides */
	/* losing the largest host (8192) leaves 8192; 3072 used */
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 5120, msg), 0);
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 5121, msg), -ENOSPC);
	assert_non_null(strstr(msg, "after 1 host failure"));
	assert_non_null(strstr(msg, "8192 MiB"));

	a.failures = 2; /* 4096 left */
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 1024, msg), 0);
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 1025, msg), -ENOSPC);

	a.failures = 3;
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 0, msg), -ENOSPC);
	assert_non_null(strstr(msg, "needs more than 3 eligible hosts"));

	/* a host in maintenance gives no capacity but its VMs still count */
	a.failures = 1;
	h[0].eligible = false;
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 1024, msg), 0);
	assert_int_equal(ha_admission_check(&a, h, 3, 0, 1025, msg), -ENOSPC);

	/* CPU counts when known */
	h[0].eligible = true;
	for (size_t i = 0; i < 3; i++)
		h[i].cpu_mhz = 3000;
	h[0].cpu_used = 5000;
	assert_int_equal(ha_admission_check(&a, h, 3, 1000, 16, msg), 0);
	assert_int_equal(ha_admission_check(&a, h, 3, 1001, 16, msg), -ENOSPC);
}

static void test_admission_percent(void **state)
{
	struct ha_plan_host h[] = {host(1, 1000, 400), host(2, 1000, 0)};
	struct ha_admit a = {.policy = HA_ADMIT_PERCENT, .percent = 25};
	char msg[HA_ADMIT_MSG];

	h[0].cpu_mhz = h[1].cpu_mhz = 0;
	assert_int_equal(ha_admission_check(&a, h, 2, 0, 1100, msg), 0);
	assert_int_equal(ha_admission_check(&a, h, 2, 0, 1101, msg), -ENOSPC);
	assert_non_null(strstr(msg, "25% of the cluster"));

	a.percent = 0;
	assert_int_equal(ha_admission_check(&a, h, 2, 0, 0, msg), -EINVAL);
	a.percent = 101;
	assert_int_equal(ha_admission_check(&a, h, 2, 0, 0, msg), -EINVAL);
	a.policy = HA_ADMIT_OFF;
	assert_int_equal(ha_admission_check(&a, h, 2, 0, 1 << 30, msg), 0);
	a.policy = HA_ADMIT_HOST_FAILURES;
	a.failures = 0;
	assert_int_equal(ha_admission_check(&a, h, 2, 0, 0, msg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_priority_and_spread),
	    cmocka_unit_test(test_capacity_and_reservations),
	    cmocka_unit_test(test_anti_affinity),
	    cmocka_unit_test(test_exclusions),
	    cmocka_unit_test(test_restart_after),
	    cmocka_unit_test(test_starting),
	    cmocka_unit_test(test_inflight_bound),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_admission_host_failures),
	    cmocka_unit_test(test_admission_percent),
	};

	return cmocka_run_group_tests_name("ha_plan", tests, NULL, NULL);
}
