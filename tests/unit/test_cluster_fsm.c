/*
 * Tests for clusterd's state machine without Raft: every command's validation (the owner
 * rule above all: epochs only grow, owners must exist) and batch semantics (each command
 * applied or refused on its own, in order). Undecodable batches, snapshots and
 * out-of-memory are in test_cluster_snapshot.c.
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

#include "clusterd/fsm.h"
#include "tests/unit/cluster_fsm_helpers.h"

/* ---- commands ---------------------------------------------------------------------- */

static void test_config(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	assert_false(s->config.set);
	assert_int_equal(cf_apply1(cf_config("bad name", CLUSTER1, 1000)), -EINVAL);
	assert_int_equal(cf_apply1(cf_config("prod", "not-a-uuid", 1000)), -EINVAL);
	assert_int_equal(cf_apply1(cf_config("prod", CLUSTER1, 10)), -EINVAL);
	assert_false(s->config.set);
	assert_int_equal(cf_apply1(cf_config("prod", CLUSTER1, 1000)), 0);
	assert_true(s->config.set);
	assert_string_equal(s->config.name, "prod");
	assert_int_equal(cf_apply1(cf_config("renamed", CLUSTER1, 2000)), 0);
	assert_string_equal(s->config.name, "renamed");
	assert_int_equal(s->config.failure_timeout_ms, 2000);
	assert_int_equal(cf_apply1(cf_config("renamed", CLUSTER2, 2000)), KB_ESTATE);
	assert_string_equal(s->config.cluster_id, CLUSTER1);
}

static void test_host_add(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *c;

	assert_int_equal(cf_apply1(cf_host_add(1, "esx1", "198.18.0.1:7000")), 0);
	assert_int_equal(cf_apply1(cf_host_add(1, "esx9", "198.18.0.9:7000")), KB_EEXIST);
	assert_int_equal(cf_apply1(cf_host_add(2, "esx1", "198.18.0.9:7000")), KB_EEXIST);
	assert_int_equal(cf_apply1(cf_host_add(2, "esx2", "198.18.0.1:7000")), KB_EEXIST);
	assert_int_equal(cf_apply1(cf_host_add(0, "esx2", "198.18.0.2:7000")), -EINVAL);
	const char *bad[] = {"",
			     "198.18.0.2",
			     "198.18.0.256:7000",
			     "198.18.0:7000",
			     "198.18.0.02:7000",
			     "198.18.0.2:0",
			     "198.18.0.2:65536",
			     "host:7000",
			     "198.18.0.2:70x",
			     "[::1]:7000"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cf_apply1(cf_host_add(2, "esx2", bad[i])), -EINVAL);
	c = cf_host_add(2, "esx2", "198.18.0.2:7000");
	c->host_add->host->state = 0;
	assert_int_equal(cf_apply1(c), -EINVAL);
	c = cf_host_add(2, "esx2", "198.18.0.2:7000");
	c->host_add->host->vmk2 = "nope";
	assert_int_equal(cf_apply1(c), -EINVAL);
	c = cf_host_add(2, "esx2", "198.18.0.2:7000");
	c->host_add->host = NULL;
	assert_int_equal(cf_apply1(c), -EINVAL);
	assert_int_equal(cd_state_n_hosts(s), 1);
	/* Sorted by id whatever the order of arrival. */
	assert_int_equal(cf_apply1(cf_host_add(9, "esx9", "198.18.0.9:7000")), 0);
	assert_int_equal(cf_apply1(cf_host_add(5, "esx5", "198.18.0.5:7000")), 0);
	assert_int_equal(cd_state_host_at(s, 0)->id, 1);
	assert_int_equal(cd_state_host_at(s, 1)->id, 5);
	assert_int_equal(cd_state_host_at(s, 2)->id, 9);
	assert_string_equal(cd_state_host(s, 5)->vmk0, "198.18.0.5:7000");
	assert_string_equal(cd_state_host(s, 5)->vmk1, "198.19.0.1:8000");
	assert_int_equal(cd_state_host(s, 5)->mem_mib, 4096);
	assert_ptr_equal(cd_state_host_by_name(s, "esx9"), cd_state_host(s, 9));
	assert_null(cd_state_host(s, 4));
}

static void test_host_update_remove(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	cf_populate();
	assert_int_equal(cf_apply1(cf_host_update(7, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 5)),
			 KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_host_update(2, 99, 5)), -EINVAL);
	assert_int_equal(cf_apply1(cf_host_update(2, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 5)),
			 0);
	assert_int_equal(cd_state_host(s, 2)->state, KEEL__CLUSTER__HOST_STATE__HOST_FAILED);
	assert_int_equal(cd_state_host(s, 2)->last_change_ms, 5);
	/* Host 2 owns VM B: not removable until B moves. */
	assert_int_equal(cf_apply1(cf_host_remove(2)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_owner(UUID_B, 3, 2)), 0);
	assert_int_equal(cf_apply1(cf_host_remove(2)), 0);
	assert_null(cd_state_host(s, 2));
	assert_int_equal(cf_apply1(cf_host_remove(2)), KB_ENOTFOUND);
	/* A host that left is final: no update, not an owner. */
	assert_int_equal(cf_apply1(cf_host_update(3, KEEL__CLUSTER__HOST_STATE__HOST_LEFT, 6)), 0);
	assert_int_equal(cf_apply1(cf_host_update(3, KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED, 7)),
			 KB_ESTATE);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 3, 2)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 3, 1)),
			 KB_ESTATE);
}

static void test_vm_register(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *c;

	cf_populate();
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_A, "/vmfs/volumes/ds1/x/x.vmx", 1, 1)),
			 KB_EEXIST);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/a/a.vmx", 1, 1)),
			 KB_EEXIST);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 42, 1)),
			 KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 0, 1)), -EINVAL);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 0)), -EINVAL);
	assert_int_equal(cf_apply1(cf_vm_reg("11111111-2222-3333-4444-55555555555X",
					     "/vmfs/volumes/ds1/c/c.vmx", 1, 1)),
			 -EINVAL);
	assert_int_equal(cf_apply1(cf_vm_reg("11111111-2222-3333-4444-AAAAAAAAAAAA",
					     "/vmfs/volumes/ds1/c/c.vmx", 1, 1)),
			 -EINVAL);
	const char *bad[] = {"relative/c.vmx", "/vmfs/volumes/ds1/c/c.txt",
			     "/vmfs/volumes/ds1/../c.vmx", "/vmfs//c.vmx", "/vmfs/\x01.vmx"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, bad[i], 1, 1)), -EINVAL);
	c = cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	c->vm_register->vm->ft_role = KEEL__CLUSTER__FT_ROLE__FT_PRIMARY;
	c->vm_register->vm->ft_peer = UUID_A;
	assert_int_equal(cf_apply1(c), -EINVAL);
	c = cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	c->vm_register->vm->desired_power = 0;
	assert_int_equal(cf_apply1(c), -EINVAL);
	assert_int_equal(cd_state_n_vms(s), 2);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 7)), 0);
	assert_int_equal(cd_state_vm(s, UUID_C)->epoch, 7);
	assert_int_equal(cd_state_n_vms_owned(s, 1), 2);
}

static void test_change_owner_epochs_only_grow(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	cf_populate();
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 1)), KB_ESTATE); /* equal */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 0)), KB_ESTATE); /* lower */
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 1);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 5)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 5);
	/* A stale change (an old leader's proposal arriving late) is refused. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 1, 4)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 1, 5)), KB_ESTATE);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	/* The new owner must exist; the VM must exist. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 42, 6)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_owner(UUID_C, 1, 6)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_owner("nope", 1, 6)), -EINVAL);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 5);
	/* Same owner at a higher epoch (a restart in place) is a change too. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 6)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 6);
}

static void test_vm_settings(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	char *after[] = {UUID_B};
	char *self[] = {UUID_A};
	char *bad[] = {"x"};
	char *many[17];

	cf_populate();
	assert_int_equal(cf_apply1(cf_power(UUID_A, KEEL__CLUSTER__POWER_STATE__POWER_OFF)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->desired_power,
			 KEEL__CLUSTER__POWER_STATE__POWER_OFF);
	assert_int_equal(cf_apply1(cf_power(UUID_A, 0)), -EINVAL);
	assert_int_equal(cf_apply1(cf_power(UUID_C, KEEL__CLUSTER__POWER_STATE__POWER_ON)),
			 KB_ENOTFOUND);

	assert_int_equal(
	    cf_apply1(cf_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH, after, 1)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->priority,
			 KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH);
	assert_int_equal(cd_state_vm(s, UUID_A)->n_restart_after, 1);
	assert_string_equal(cd_state_vm(s, UUID_A)->restart_after[0], UUID_B);
	assert_int_equal(cf_apply1(cf_ha(UUID_A, 0, NULL, 0)), -EINVAL);
	assert_int_equal(
	    cf_apply1(cf_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, self, 1)),
	    -EINVAL);
	assert_int_equal(
	    cf_apply1(cf_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, bad, 1)),
	    -EINVAL);
	for (int i = 0; i < 17; i++)
		many[i] = UUID_B;
	assert_int_equal(
	    cf_apply1(cf_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, many, 17)),
	    -EINVAL);
	assert_int_equal(cd_state_vm(s, UUID_A)->priority,
			 KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH);

	/* FT: the peer must exist and not be the VM itself; paired VMs stay registered. */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_C)),
			 KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_A)),
			 -EINVAL);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_NONE, UUID_B)),
			 -EINVAL);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 7, UUID_B)), -EINVAL);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_B)), 0);
	assert_int_equal(cf_apply1(cf_ft(UUID_B, KEEL__CLUSTER__FT_ROLE__FT_SECONDARY, UUID_A)), 0);
	assert_string_equal(cd_state_vm(s, UUID_B)->ft_peer, UUID_A);
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_ft(UUID_B, KEEL__CLUSTER__FT_ROLE__FT_NONE, "")), 0);
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), KB_ESTATE); /* A still names B */
	assert_int_equal(cf_apply1(cf_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_NONE, NULL)), 0);
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), 0);
	assert_null(cd_state_vm(s, UUID_B));
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), KB_ENOTFOUND);
}

static void test_operations(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	cf_populate();
	assert_int_equal(cf_apply1(cf_op_begin(0, UUID_A, 1, 2, 1)), -EINVAL);
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_C, 1, 2, 1)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_A, 1, 42, 1)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_A, 42, 2, 1)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_A, 2, 2, 1)), -EINVAL);
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_A, 1, 2, 2)), KB_ESTATE); /* wrong epoch */
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_A, 1, 2, 1)), 0);
	assert_int_equal(cf_apply1(cf_op_begin(1, UUID_B, 2, 3, 1)), KB_EEXIST);
	assert_int_equal(cf_apply1(cf_op_begin(2, UUID_A, 1, 3, 1)), KB_ESTATE); /* VM busy */
	assert_non_null(cd_state_op_for_vm(s, UUID_A));
	/* Hosts and VMs in an operation stay. */
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_A)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_owner(UUID_B, 3, 2)), 0);
	assert_int_equal(cf_apply1(cf_host_remove(2)), KB_ESTATE);
	/* Phases only grow. */
	assert_int_equal(cf_apply1(cf_op_advance(1, 0)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_op_advance(1, 2)), 0);
	assert_int_equal(cf_apply1(cf_op_advance(1, 1)), KB_ESTATE);
	assert_int_equal(cf_apply1(cf_op_advance(9, 3)), KB_ENOTFOUND);
	assert_int_equal(cd_state_op(s, 1)->phase, 2);
	/* The switchover of a migration: owner at E+1, then the end. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 2)), 0);
	assert_int_equal(cf_apply1(cf_op_end(1)), 0);
	assert_int_equal(cf_apply1(cf_op_end(1)), KB_ENOTFOUND);
	assert_int_equal(cd_state_n_ops(s), 0);
	assert_int_equal(cf_apply1(cf_host_remove(1)), 0);
}

static void test_empty_command(void **state)
{
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;

	assert_int_equal(cf_apply1(&c), -EINVAL);
	assert_int_equal(cd_fsm_state(&cf_fsm)->applied, 0);
}

/* ---- batches ----------------------------------------------------------------------- */

static void test_batch_each_command_on_its_own(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *cmds[4];
	const struct cd_result *r;

	cf_populate();
	/* In order: the third command sees the first; the bad one in the middle is refused
	 * alone. */
	cmds[0] = cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	cmds[1] = cf_owner(UUID_A, 2, 1); /* epoch does not grow */
	cmds[2] = cf_owner(UUID_C, 3, 2);
	cmds[3] = cf_host_add(1, "dup", "198.18.0.77:7000");
	r = cf_apply_n(cmds, 4);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->n, 4);
	assert_int_equal(r->n_applied, 2);
	assert_int_equal(r->cmds[0].code, 0);
	assert_int_equal(r->cmds[1].code, KB_ESTATE);
	assert_non_null(strstr(r->cmds[1].reason, "epoch"));
	assert_int_equal(r->cmds[2].code, 0);
	assert_int_equal(r->cmds[3].code, KB_EEXIST);
	assert_int_equal(cd_state_vm(s, UUID_C)->owner, 3);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 1);
	/* Empty batch. */
	r = cf_apply_n(NULL, 0);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_host_add, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_host_update_remove, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_vm_register, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_change_owner_epochs_only_grow, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_vm_settings, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_operations, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_empty_command, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_batch_each_command_on_its_own, cf_setup,
					    cf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
