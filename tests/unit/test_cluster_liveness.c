/*
 * Tests for clusterd/liveness.h on a virtual clock in ms, every threshold asserted one ms
 * before and at the boundary: connected -> unreachable at 350 ms -> failed at the failure
 * timeout without datastore records; partitioned while a datastore counter advances and
 * failed once it stops; a first read as baseline; failed -> connected on a beat and
 * failed -> partitioned on a counter alone; the grace after tracking; ages; limits and
 * out of memory; many hosts in random order; the follower's isolation judge.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clusterd/liveness.h"
#include "lib/err.h"
#include "lib/heap.h"

#define T	  1000 /* failure timeout */
#define H	  0x1234567890abcdefull
#define CONNECTED KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED
#define UNREACH	  KEEL__CLUSTER__HOST_STATE__HOST_UNREACHABLE
#define PARTED	  KEEL__CLUSTER__HOST_STATE__HOST_PARTITIONED
#define FAILED	  KEEL__CLUSTER__HOST_STATE__HOST_FAILED

static void setup_live(struct cd_live *l, uint64_t now)
{
	assert_int_equal(cd_live_init(l, T), 0);
	assert_int_equal(cd_live_track(l, H, now), 0);
}

#define JUDGE(l, t, want) assert_int_equal(cd_live_judge((l), H, (t)), (want))

static void test_connected_unreachable_failed(void **state)
{
	struct cd_live l;

	(void)state;
	setup_live(&l, 10000);
	assert_int_equal(cd_live_net_beat(&l, H, 10100, false), 0);
	JUDGE(&l, 10100, CONNECTED);
	JUDGE(&l, 10100 + CD_LIVE_UNREACHABLE_MS - 1, CONNECTED);
	JUDGE(&l, 10100 + CD_LIVE_UNREACHABLE_MS, UNREACH);
	JUDGE(&l, 10100 + T - 1, UNREACH);
	JUDGE(&l, 10100 + T, FAILED); /* no datastore record at all */
	JUDGE(&l, 10100 + 100 * T, FAILED);
	/* judging is pure: an earlier time still gives the earlier verdict */
	JUDGE(&l, 10100 + 349, CONNECTED);
	cd_live_close(&l);
}

static void test_grace_after_track(void **state)
{
	struct cd_live l;
	int64_t net, ds;

	(void)state;
	setup_live(&l, 5000);
	JUDGE(&l, 5000, CONNECTED);
	JUDGE(&l, 5349, CONNECTED);
	JUDGE(&l, 5350, UNREACH);
	JUDGE(&l, 5999, UNREACH);
	JUDGE(&l, 6000, FAILED);
	assert_int_equal(cd_live_ages(&l, H, 5500, &net, &ds), 0);
	assert_true(net == -1 && ds == -1);

	/* tracking again changes nothing: no second grace */
	assert_int_equal(cd_live_track(&l, H, 7000), 0);
	JUDGE(&l, 7000, FAILED);
	assert_true(cd_live_tracked(&l, H));

	/* forgotten and tracked again: a new grace */
	assert_int_equal(cd_live_forget(&l, H), 0);
	assert_false(cd_live_tracked(&l, H));
	assert_int_equal(cd_live_judge(&l, H, 7000),
			 KEEL__CLUSTER__HOST_STATE__HOST_STATE_UNSPECIFIED);
	assert_int_equal(cd_live_forget(&l, H), KB_ENOTFOUND);
	assert_int_equal(cd_live_track(&l, H, 7000), 0);
	JUDGE(&l, 7349, CONNECTED);
	JUDGE(&l, 7999, UNREACH);
	JUDGE(&l, 8000, FAILED);
	cd_live_close(&l);
}

static void test_partitioned(void **state)
{
	struct cd_live l;
	uint64_t t, c = 100;

	(void)state;
	setup_live(&l, 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 0, c, 0), 0); /* baseline */
	assert_int_equal(cd_live_net_beat(&l, H, 100, false), 0);
	/* the network goes, the datastore heartbeat goes on every 250 ms */
	for (t = 250; t <= 3000; t += 250) {
		assert_int_equal(cd_live_ds_counter(&l, H, 0, ++c, t), 0);
		JUDGE(&l, t,
		      t - 100 < CD_LIVE_UNREACHABLE_MS ? CONNECTED
		      : t - 100 < T		       ? UNREACH
						       : PARTED);
	}
	/* last advance at 3000; the same counter read again is no advance */
	assert_int_equal(cd_live_ds_counter(&l, H, 0, c, 3500), 0);
	JUDGE(&l, 3000 + T - 1, PARTED);
	JUDGE(&l, 3000 + T, FAILED);

	/* failed -> partitioned on a counter alone, never unreachable or connected */
	assert_int_equal(cd_live_ds_counter(&l, H, 0, ++c, 5000), 0);
	JUDGE(&l, 5000, PARTED);
	JUDGE(&l, 5999, PARTED);
	JUDGE(&l, 6000, FAILED);

	/* failed -> connected on a network beat */
	assert_int_equal(cd_live_net_beat(&l, H, 6500, false), 0);
	JUDGE(&l, 6500, CONNECTED);
	JUDGE(&l, 6849, CONNECTED);
	JUDGE(&l, 6850, UNREACH);
	JUDGE(&l, 7499, UNREACH);
	JUDGE(&l, 7500, FAILED);
	cd_live_close(&l);
}

static void test_counter_rules(void **state)
{
	struct cd_live l;

	(void)state;
	/* a first read is a baseline: a dead host's stale record is no sign of life */
	setup_live(&l, 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 3, 77, 500), 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 3, 77, 900), 0);
	JUDGE(&l, 999, UNREACH);
	JUDGE(&l, 1000, FAILED);
	/* any change is an advance, a smaller value included */
	assert_int_equal(cd_live_ds_counter(&l, H, 3, 5, 1200), 0);
	JUDGE(&l, 1200, PARTED);
	JUDGE(&l, 2199, PARTED);
	JUDGE(&l, 2200, FAILED);

	/* two datastores: the most recent advance of either counts */
	assert_int_equal(cd_live_ds_counter(&l, H, 4, 1, 2300), 0); /* baseline */
	JUDGE(&l, 2300, FAILED);
	assert_int_equal(cd_live_ds_counter(&l, H, 4, 2, 2400), 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 3, 6, 2600), 0);
	JUDGE(&l, 3599, PARTED);
	JUDGE(&l, 3600, FAILED);

	/* a read stamped earlier than the last advance does not move it back */
	assert_int_equal(cd_live_ds_counter(&l, H, 3, 7, 2000), 0);
	JUDGE(&l, 3599, PARTED);
	JUDGE(&l, 3600, FAILED);

	assert_int_equal(cd_live_ds_counter(&l, 99, 0, 1, 0), KB_ENOTFOUND);
	assert_int_equal(cd_live_net_beat(&l, 99, 0, false), KB_ENOTFOUND);
	cd_live_close(&l);
}

/* A host killed outright: its last datastore advance is seen shortly after its last
 * network beat (reads lag writes). It goes from unreachable straight to failed: no proof
 * of life after the network went quiet, so never partitioned. */
static void test_killed_never_partitioned(void **state)
{
	struct cd_live l;

	(void)state;
	setup_live(&l, 1000);
	assert_int_equal(cd_live_ds_counter(&l, H, 0, 1, 0), 0); /* baseline */
	assert_int_equal(cd_live_net_beat(&l, H, 1000, false), 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 0, 2, 1150), 0); /* 150 ms after the beat */
	JUDGE(&l, 1999, UNREACH);
	JUDGE(&l, 2000, FAILED);
	JUDGE(&l, 2149, FAILED);
	/* an advance CD_LIVE_PROOF_MS after the last beat is proof of life */
	assert_int_equal(cd_live_ds_counter(&l, H, 0, 3, 1000 + CD_LIVE_PROOF_MS), 0);
	JUDGE(&l, 2200, PARTED);
	cd_live_close(&l);
}

static void test_ages(void **state)
{
	struct cd_live l;
	int64_t net, ds;

	(void)state;
	setup_live(&l, 1000);
	assert_int_equal(cd_live_net_beat(&l, H, 1100, true), 0);
	assert_true(cd_live_isolated(&l, H));
	assert_int_equal(cd_live_ds_counter(&l, H, 0, 1, 1100), 0);
	assert_int_equal(cd_live_ages(&l, H, 1250, &net, &ds), 0);
	assert_true(net == 150);
	assert_true(ds == -1); /* a baseline only */
	assert_int_equal(cd_live_ds_counter(&l, H, 0, 2, 1300), 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 1, 1, 1350), 0);
	assert_int_equal(cd_live_ds_counter(&l, H, 1, 2, 1400), 0);
	assert_int_equal(cd_live_ages(&l, H, 1450, &net, &ds), 0);
	assert_true(net == 350);
	assert_true(ds == 50); /* the most recent advance, on datastore 1 */
	assert_int_equal(cd_live_net_beat(&l, H, 1500, false), 0);
	assert_false(cd_live_isolated(&l, H));
	assert_int_equal(cd_live_ages(&l, H, 1400, &net, NULL), 0); /* time before: 0 */
	assert_true(net == 0);
	assert_int_equal(cd_live_ages(&l, H, 1501, NULL, &ds), 0);
	assert_true(ds == 101);
	assert_int_equal(cd_live_ages(&l, 5, 1501, &net, &ds), KB_ENOTFOUND);
	assert_true(net == -1 && ds == -1);
	assert_false(cd_live_isolated(&l, 5));
	cd_live_close(&l);
}

static void test_short_timeout(void **state)
{
	struct cd_live l;

	(void)state;
	assert_int_equal(cd_live_init(&l, 0), -EINVAL);
	setup_live(&l, 0);
	assert_int_equal(cd_live_set_timeout(&l, 0), -EINVAL);
	assert_int_equal(cd_live_set_timeout(&l, 300), 0); /* no unreachable phase */
	JUDGE(&l, 299, CONNECTED);
	JUDGE(&l, 300, FAILED);
	assert_int_equal(cd_live_set_timeout(&l, 5000), 0);
	JUDGE(&l, 4999, UNREACH);
	JUDGE(&l, 5000, FAILED);
	cd_live_close(&l);
}

static void test_limits_and_oom(void **state)
{
	struct cd_live l;
	int rv;
	unsigned n;

	(void)state;
	assert_int_equal(cd_live_init(&l, T), 0);
	assert_int_equal(cd_live_track(&l, 0, 0), -EINVAL);
	for (uint64_t id = 1; id <= CD_LIVE_HOSTS_MAX; id++)
		assert_int_equal(cd_live_track(&l, id, 0), 0);
	assert_int_equal(cd_live_track(&l, CD_LIVE_HOSTS_MAX + 1, 0), KB_ETOOBIG);
	assert_int_equal(cd_live_track(&l, 7, 0), 0); /* already tracked */
	for (uint32_t ds = 0; ds < CD_LIVE_DS_MAX; ds++)
		assert_int_equal(cd_live_ds_counter(&l, 7, ds, 1, 0), 0);
	assert_int_equal(cd_live_ds_counter(&l, 7, CD_LIVE_DS_MAX, 1, 0), KB_ETOOBIG);
	assert_int_equal(cd_live_ds_counter(&l, 7, 0, 2, 10), 0); /* known datastores go on */
	cd_live_close(&l);

	/* out of memory changes nothing; then it succeeds */
	assert_int_equal(cd_live_init(&l, T), 0);
	for (n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = cd_live_track(&l, H, 0);
		if (rv == 0)
			rv = cd_live_ds_counter(&l, H, 1, 1, 0);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_true(l.n_hosts == 0 || l.hosts[0].n_ds == 0);
		cd_live_close(&l);
		assert_int_equal(cd_live_init(&l, T), 0);
	}
	assert_int_equal(n, 2);
	JUDGE(&l, 999, UNREACH);
	cd_live_close(&l);
}

static void test_many_hosts(void **state)
{
	struct cd_live l;
	uint64_t ids[CD_LIVE_HOSTS_MAX], x = 88172645463325252ull;

	(void)state;
	assert_int_equal(cd_live_init(&l, T), 0);
	for (unsigned i = 0; i < CD_LIVE_HOSTS_MAX; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		ids[i] = x | 1;
		assert_int_equal(cd_live_track(&l, ids[i], 0), 0);
	}
	for (unsigned i = 1; i < l.n_hosts; i++)
		assert_true(l.hosts[i - 1].id < l.hosts[i].id);
	/* even-indexed hosts beat at 900, every third one writes its datastore */
	for (unsigned i = 0; i < CD_LIVE_HOSTS_MAX; i++) {
		if (i % 2 == 0)
			assert_int_equal(cd_live_net_beat(&l, ids[i], 900, false), 0);
		if (i % 3 == 0) {
			assert_int_equal(cd_live_ds_counter(&l, ids[i], 0, 1, 0), 0);
			assert_int_equal(cd_live_ds_counter(&l, ids[i], 0, 2, 800), 0);
		}
	}
	for (unsigned i = 0; i < CD_LIVE_HOSTS_MAX; i++) {
		Keel__Cluster__HostState want = i % 2 == 0   ? CONNECTED
						: i % 3 == 0 ? PARTED
							     : FAILED;

		assert_int_equal(cd_live_judge(&l, ids[i], 1000), want);
	}
	/* forget half; the rest are still found */
	for (unsigned i = 0; i < CD_LIVE_HOSTS_MAX; i += 2)
		assert_int_equal(cd_live_forget(&l, ids[i]), 0);
	assert_int_equal(l.n_hosts, CD_LIVE_HOSTS_MAX / 2);
	for (unsigned i = 1; i < CD_LIVE_HOSTS_MAX; i += 2)
		assert_int_equal(cd_live_judge(&l, ids[i], 1000), i % 3 == 0 ? PARTED : FAILED);
	cd_live_close(&l);
}

static void test_isolation(void **state)
{
	struct cd_isolation iso;

	(void)state;
	cd_iso_init(&iso, 100);
	assert_false(cd_iso_isolated(&iso, 1099, 1000));
	assert_true(iso.since_ms == 100);
	assert_true(cd_iso_isolated(&iso, 1100, 1000));
	assert_true(iso.isolated && iso.since_ms == 1100);
	/* judged late: the transition time is still exact */
	assert_true(cd_iso_isolated(&iso, 1700, 1000));
	assert_true(iso.since_ms == 1100);

	cd_iso_contact(&iso, 1800);
	assert_false(cd_iso_isolated(&iso, 1800, 1000));
	assert_true(!iso.isolated && iso.since_ms == 1800);
	cd_iso_contact(&iso, 1500); /* earlier: ignored */
	cd_iso_contact(&iso, 2000);
	assert_false(cd_iso_isolated(&iso, 2999, 1000));
	assert_true(iso.since_ms == 1800); /* no transition */
	assert_true(cd_iso_isolated(&iso, 3000, 1000));
	assert_true(iso.since_ms == 3000);
	/* a shorter timeout applies at once */
	cd_iso_contact(&iso, 4000);
	assert_false(cd_iso_isolated(&iso, 4199, 200));
	assert_true(cd_iso_isolated(&iso, 4200, 200));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connected_unreachable_failed),
	    cmocka_unit_test(test_grace_after_track),
	    cmocka_unit_test(test_partitioned),
	    cmocka_unit_test(test_counter_rules),
	    cmocka_unit_test(test_killed_never_partitioned),
	    cmocka_unit_test(test_ages),
	    cmocka_unit_test(test_short_timeout),
	    cmocka_unit_test(test_limits_and_oom),
	    cmocka_unit_test(test_many_hosts),
	    cmocka_unit_test(test_isolation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
