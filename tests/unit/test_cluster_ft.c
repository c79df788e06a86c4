/*
 * Tests for the FT command of clusterd's state machine (VmSetFt, docs/ft.md "The cluster's
 * part"): the generation refuses stale requests, only the allowed changes of state apply,
 * a failover is an owner change at a higher epoch, and what other commands do to a paired
 * VM (an owner change, a power-off, a removed secondary host). Refusals change nothing; the
 * FT record survives a snapshot.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clusterd/daemon.h"
#include "clusterd/fsm.h"
#include "lib/heap.h"
#include "tests/unit/cluster_fsm_helpers.h"

#define OFF   KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define NEEDS KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define START KEEL__CLUSTER__FT_STATE__FT_STARTING
#define PROT  KEEL__CLUSTER__FT_STATE__FT_PROTECTED


static const struct cd_vm *vm_a(void)
{
	return cd_state_vm(cd_fsm_state(&cf_fsm), UUID_A);
}

static const struct cd_event *last_event(void)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	assert_true(cd_state_n_events(s) > 0);
	return cd_state_event_at(s, cd_state_n_events(s) - 1);
}

/* VM A (owner 1) protected by a secondary on host 2: generation 3. */
static void protect_a(void)
{
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 0, NEEDS, 0, 0)), 0);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 1, START, 2, 0)), 0);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 2, PROT, 2, 0)), 0);
	assert_int_equal(vm_a()->ft.state, PROT);
	assert_int_equal(vm_a()->ft.generation, 3);
}

static void test_ft_pairing(void **state)
{
	cf_populate();
	assert_int_equal(vm_a()->ft.state, OFF);
	/* Only from NEEDS_SECONDARY to STARTING, only STARTING to PROTECTED. */
	cf_refused(cf_ft(UUID_A, 0, START, 2, 0), KB_ESTATE);
	cf_refused(cf_ft(UUID_A, 0, PROT, 2, 0), KB_ESTATE);
	cf_refused(cf_ft(UUID_C, 0, NEEDS, 0, 0), KB_ENOTFOUND);
	cf_refused(cf_ft(UUID_A, 0, 9, 0, 0), -EINVAL);
	cf_refused(cf_ft(UUID_A, 0, NEEDS, 2, 0), -EINVAL); /* a secondary without a pairing */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 0, NEEDS, 0, 0)), 0);
	assert_int_equal(last_event()->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_FT);
	assert_non_null(strstr(last_event()->message, "needs secondary"));
	/* Stale generation, the owner as secondary, a host that does not exist. */
	cf_refused(cf_ft(UUID_A, 0, START, 2, 0), KB_ESTATE);
	cf_refused(cf_ft(UUID_A, 1, START, 1, 0), -EINVAL);
	cf_refused(cf_ft(UUID_A, 1, START, 42, 0), KB_ENOTFOUND);
	cf_refused(cf_ft(UUID_A, 1, START, 0, 0), -EINVAL);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 1, START, 2, 0)), 0);
	assert_int_equal(vm_a()->ft.secondary, 2);
	assert_non_null(strstr(last_event()->message, "secondary on esx2"));
	cf_refused(cf_ft(UUID_A, 2, PROT, 3, 0), KB_ESTATE); /* another secondary */
	cf_refused(cf_ft(UUID_A, 2, START, 3, 0), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 2, PROT, 2, 0)), 0);
	assert_int_equal(vm_a()->ft.state, PROT);
	/* The secondary lost: back to NEEDS_SECONDARY; the old generation is spent. */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 3, NEEDS, 0, 0)), 0);
	assert_int_equal(vm_a()->ft.secondary, 0);
	cf_refused(cf_ft(UUID_A, 3, NEEDS, 0, 5), KB_ESTATE); /* a takeover on the lost pairing */
	cf_refused(cf_ft(UUID_A, 4, NEEDS, 0, 5), KB_ESTATE); /* a failover needs PROTECTED */
	/* FT off. */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 4, OFF, 0, 0)), 0);
	assert_int_equal(vm_a()->ft.state, OFF);
	assert_int_equal(vm_a()->ft.generation, 5);
	assert_int_equal(vm_a()->owner, 1);
}

static void test_ft_failover(void **state)
{
	cf_populate();
	protect_a();
	cf_refused(cf_ft(UUID_A, 3, NEEDS, 0, 1), KB_ESTATE); /* epoch not above 1 */
	cf_refused(cf_ft(UUID_A, 3, START, 3, 2), KB_ESTATE); /* a failover ends in NEEDS */
	cf_refused(cf_ft(UUID_A, 2, NEEDS, 0, 2), KB_ESTATE); /* stale */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 3, NEEDS, 0, 2)), 0);
	assert_int_equal(vm_a()->owner, 2);
	assert_int_equal(vm_a()->epoch, 2);
	assert_int_equal(vm_a()->ft.state, NEEDS);
	assert_int_equal(vm_a()->ft.secondary, 0);
	assert_int_equal(vm_a()->ft.failovers, 1);
	assert_int_equal(vm_a()->ft.failover_epoch, 2);
	assert_int_equal(cd_state_n_vms_owned(cd_fsm_state(&cf_fsm), 2), 2);
	/* Re-protection on a third host from the new owner. */
	cf_refused(cf_ft(UUID_A, 4, START, 2, 0), -EINVAL); /* its own host now */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 4, START, 3, 0)), 0);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 5, PROT, 3, 0)), 0);
}

static Keel__Cluster__Command *test_failover(uint64_t gen, uint64_t secondary)
{
	Keel__Cluster__Command *c = cf_ft(UUID_A, gen, PROT, secondary, 0);

	c->vm_set_ft->test_failover = true;
	return c;
}

static void test_ft_test_failover(void **state)
{
	cf_populate();
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 0, NEEDS, 0, 0)), 0);
	cf_refused(test_failover(1, 0), KB_ESTATE); /* not protected */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 1, START, 2, 0)), 0);
	cf_refused(test_failover(2, 2), KB_ESTATE); /* starting */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 2, PROT, 2, 0)), 0);
	cf_refused(test_failover(3, 3), KB_ESTATE); /* another secondary */
	assert_int_equal(cf_apply1(test_failover(3, 2)), 0);
	assert_true(vm_a()->ft.test_failover);
	assert_int_equal(vm_a()->ft.state, PROT);
	assert_int_equal(vm_a()->owner, 1);
	/* the takeover ends it */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 4, NEEDS, 0, 2)), 0);
	assert_false(vm_a()->ft.test_failover);
	assert_int_equal(vm_a()->owner, 2);
}

static void test_ft_unpaired_by_others(void **state)
{
	cf_populate();
	protect_a();
	/* An owner change (HA, a placement) ends the pairing. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 3, 2)), 0);
	assert_int_equal(vm_a()->ft.state, NEEDS);
	assert_int_equal(vm_a()->ft.secondary, 0);
	assert_int_equal(vm_a()->ft.generation, 4);
	assert_int_equal(last_event()->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_FT);
	/* A power-off too. */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 4, START, 1, 0)), 0);
	assert_int_equal(cf_apply1(cf_power(UUID_A, KEEL__CLUSTER__POWER_STATE__POWER_OFF)), 0);
	assert_int_equal(vm_a()->ft.state, NEEDS);
	assert_int_equal(vm_a()->ft.generation, 6);
	/* A removed secondary host. */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 6, START, 2, 0)), 0);
	cf_refused(cf_host_remove(2), KB_ESTATE); /* it still owns B */
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), 0);
	assert_int_equal(cf_apply1(cf_host_remove(2)), 0);
	assert_int_equal(vm_a()->ft.state, NEEDS);
	assert_int_equal(vm_a()->ft.secondary, 0);
	/* A VM with FT on unregisters. */
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_A)), 0);
}

static void test_ft_snapshot(void **state)
{
	struct cd_fsm g;
	struct raft_buffer b, copy;

	cf_populate();
	protect_a();
	b = cf_snap(&cf_fsm);
	copy.len = b.len;
	copy.base = raft_malloc(b.len);
	memcpy(copy.base, b.base, b.len);
	cd_fsm_init(&g);
	assert_int_equal(cd_fsm_restore(&g.raft, &copy), 0);
	const struct cd_vm *v = cd_state_vm(cd_fsm_state(&g), UUID_A);
	assert_int_equal(v->ft.state, PROT);
	assert_int_equal(v->ft.secondary, 2);
	assert_int_equal(v->ft.generation, 3);
	cd_fsm_close(&g);
	raft_free(b.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ft_pairing, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_ft_failover, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_ft_test_failover, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_ft_unpaired_by_others, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_ft_snapshot, cf_setup, cf_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
