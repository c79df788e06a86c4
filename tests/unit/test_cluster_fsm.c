/*
 * Tests for clusterd's state machine without Raft: every command's validation (the owner
 * rule above all: epochs only grow, owners must exist; join tokens spent once), the events
 * applied commands make, and batch semantics (each command applied or refused on its own,
 * in order). Undecodable batches, snapshots and out-of-memory are in
 * test_cluster_snapshot.c; rules and DRS settings in test_cluster_rules.c; FT in
 * test_cluster_ft.c.
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
#include "clusterd/snapshot.h"
#include "ha/drs.h"
#include "lib/heap.h"
#include "tests/unit/cluster_fsm_helpers.h"

#define TTL_MAX (30 * 24 * 3600)

static const struct cd_event *last_event(void)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	assert_true(cd_state_n_events(s) > 0);
	return cd_state_event_at(s, cd_state_n_events(s) - 1);
}

static const struct cd_join_token *token(uint8_t id)
{
	uint8_t key[CD_TOKEN_ID_SIZE];

	memset(key, id, sizeof(key));
	return cd_state_token(cd_fsm_state(&cf_fsm), key);
}

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
	Keel__Cluster__Ft ft = KEEL__CLUSTER__FT__INIT;
	ft.state = KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY;
	c = cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	c->vm_register->vm->ft = &ft; /* FT is turned on after registration */
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
	/* A change of owner without the operation (an HA restart) ends it: its epoch is
	 * stale from then on. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 2)), 0);
	assert_int_equal(cd_state_n_ops(s), 0);
	assert_int_equal(cf_apply1(cf_op_end(1)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_host_remove(1)), 0);
}

/* vMotion's rules (docs/vmotion.md): the switchover is one VmChangeOwner naming the
 * migration, applied only while it is in flight and only from its start; an abort
 * (OpEnd) and a switchover race in the log and the first wins. */
static void test_migration(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	cf_populate(); /* A on host 1 at epoch 1, B on host 2 */
	/* a migration goes from the owner to another host */
	assert_int_equal(cf_apply1(cf_op_begin(7, UUID_A, 2, 3, 1)), -EINVAL);
	assert_int_equal(cf_apply1(cf_op_begin(7, UUID_A, 1, 1, 1)), -EINVAL);
	assert_int_equal(cf_apply1(cf_op_begin(7, UUID_A, 1, 2, 1)), 0);
	assert_non_null(strstr(last_event()->message, "migration of VM"));
	/* switchover refused unless it is this migration, from its start, at epoch + 1 */
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 2, 2, 8)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 3, 2, 7)), KB_ESTATE); /* other host */
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 2, 3, 7)), KB_ESTATE); /* epoch + 2 */
	assert_int_equal(cf_apply1(cf_owner_op(UUID_B, 2, 2, 7)), KB_ESTATE); /* other VM */
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 1);
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 2, 2, 7)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 2);
	assert_null(cd_state_op(s, 7)); /* the switchover ended it */
	assert_non_null(strstr(last_event()->message, "(migrated)"));
	/* an abort that comes after the switchover changes nothing */
	assert_int_equal(cf_apply1(cf_op_end_reason(7, "cancelled")), KB_ENOTFOUND);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	/* and a switchover after an abort is refused: the VM stays where it ran */
	assert_int_equal(cf_apply1(cf_op_begin(9, UUID_A, 2, 3, 2)), 0);
	assert_int_equal(cf_apply1(cf_op_end_reason(9, "bad\nreason")), -EINVAL);
	assert_int_equal(cf_apply1(cf_op_end_reason(9, "destination host3 went away")), 0);
	assert_non_null(strstr(last_event()->message, "ended: destination host3 went away"));
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 3, 3, 9)), KB_ENOTFOUND);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 2);
	/* an HA restart while a migration is in flight ends the migration; its switchover
	 * can then never apply */
	assert_int_equal(cf_apply1(cf_op_begin(10, UUID_A, 2, 3, 2)), 0);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 1, 3)), 0);
	assert_null(cd_state_op(s, 10));
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 3, 3, 10)), KB_ESTATE); /* epoch 3 not above 3 */
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 3, 4, 10)), KB_ENOTFOUND);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 1);
	/* both orders of a racing abort and switchover in one batch: the first wins */
	assert_int_equal(cf_apply1(cf_op_begin(11, UUID_A, 1, 2, 3)), 0);
	{
		Keel__Cluster__Command *cmds[] = {cf_owner_op(UUID_A, 2, 4, 11),
						  cf_op_end_reason(11, "cancelled")};
		const struct cd_result *r = cf_apply_n(cmds, 2);

		assert_int_equal(r->n, 2);
		assert_int_equal(r->cmds[0].code, 0);
		assert_int_equal(r->cmds[1].code, KB_ENOTFOUND);
	}
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	assert_int_equal(cf_apply1(cf_op_begin(12, UUID_A, 2, 1, 4)), 0);
	{
		Keel__Cluster__Command *cmds[] = {cf_op_end_reason(12, "cancelled"),
						  cf_owner_op(UUID_A, 1, 5, 12)};
		const struct cd_result *r = cf_apply_n(cmds, 2);

		assert_int_equal(r->cmds[0].code, 0);
		assert_int_equal(r->cmds[1].code, KB_ENOTFOUND);
	}
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 4);
}

static void test_empty_command(void **state)
{
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;

	assert_int_equal(cf_apply1(&c), -EINVAL);
	assert_int_equal(cd_fsm_state(&cf_fsm)->applied, 0);
}

/* ---- join tokens ------------------------------------------------------------------ */

static void test_token_add(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *c;
	uint8_t short_id[15] = {0};

	cf_populate();
	assert_int_equal(cf_apply1(cf_token_add(0x20, 0xaa, 1000 + 3600, 1000)), 0);
	assert_int_equal(cf_apply1(cf_token_add(0x10, 0xbb, 1000 + TTL_MAX, 1000)), 0);
	assert_int_equal(cd_state_n_tokens(s), 2);
	/* Sorted by id. */
	assert_int_equal(cd_state_token_at(s, 0)->rec.id[0], 0x10);
	assert_int_equal(cd_state_token_at(s, 1)->rec.id[0], 0x20);
	assert_null(cd_state_token_at(s, 2));
	assert_non_null(token(0x20));
	assert_int_equal(token(0x20)->rec.expires_s, 4600);
	assert_int_equal(token(0x20)->rec.secret_hash[31], 0xaa);
	assert_false(token(0x20)->rec.used);
	assert_int_equal(token(0x20)->used_by, 0);
	assert_null(token(0x30));

	/* Field rules; refusals change nothing. */
	cf_refused(cf_token_add(0x20, 0xcc, 5000, 1000), KB_EEXIST);
	cf_refused(cf_token_add(0x30, 0xcc, 1000, 1000), -EINVAL);		  /* expires at at_s */
	cf_refused(cf_token_add(0x30, 0xcc, 999, 1000), -EINVAL);		  /* before */
	cf_refused(cf_token_add(0x30, 0xcc, 1001 + TTL_MAX, 1000), -EINVAL); /* over 30 days */
	c = cf_token_add(0x30, 0xcc, 5000, 1000);
	c->token_add->token->used = true;
	c->token_add->token->used_by = 1;
	cf_refused(c, -EINVAL);
	c = cf_token_add(0x30, 0xcc, 5000, 1000);
	c->token_add->token->used_by = 1;
	cf_refused(c, -EINVAL);
	c = cf_token_add(0x30, 0xcc, 5000, 1000);
	c->token_add->token->id.data = short_id;
	c->token_add->token->id.len = sizeof(short_id);
	cf_refused(c, -EINVAL);
	c = cf_token_add(0x30, 0xcc, 5000, 1000);
	c->token_add->token->secret_hash.len = 31;
	cf_refused(c, -EINVAL);
	c = cf_token_add(0x30, 0xcc, 5000, 1000);
	c->token_add->token = NULL;
	cf_refused(c, -EINVAL);
	/* A refused TokenAdd late enough to expire 0x20 prunes nothing. */
	cf_refused(cf_token_add(0x20, 0xcc, 5000, 4600 + TTL_MAX), -EINVAL);
	assert_non_null(token(0x20));
	assert_int_equal(cd_state_n_tokens(s), 2);
	/* TokenAdd adds no event. */
	assert_int_equal(last_event()->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_VM);
}

static void test_token_prune_and_limit(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	assert_int_equal(cf_apply1(cf_token_add(1, 1, 100, 0)), 0);
	assert_int_equal(cf_apply1(cf_token_add(2, 2, 200, 0)), 0);
	assert_int_equal(cf_apply1(cf_token_add(3, 3, 300, 0)), 0);
	/* At 200, tokens 1 and 2 are expired (expired from their second on) and dropped;
	 * token 2's id is free again. */
	assert_int_equal(cf_apply1(cf_token_add(2, 9, 400, 200)), 0);
	assert_int_equal(cd_state_n_tokens(s), 2);
	assert_null(token(1));
	assert_int_equal(token(2)->rec.secret_hash[0], 9);
	assert_int_equal(token(2)->rec.expires_s, 400);
	assert_non_null(token(3));

	/* The limit counts the records left after pruning. */
	cd_fsm_close(&cf_fsm);
	cd_fsm_init(&cf_fsm);
	for (unsigned i = 0; i < CD_TOKENS_MAX; i++) {
		Keel__Cluster__Command *c = cf_token_add(0, 0, i < 10 ? 50 : 5000, 0);

		c->token_add->token->id.data[0] = (uint8_t)(i >> 8);
		c->token_add->token->id.data[1] = (uint8_t)i;
		assert_int_equal(cf_apply1(c), 0);
	}
	assert_int_equal(cd_state_n_tokens(s), CD_TOKENS_MAX);
	cf_refused(cf_token_add(0xff, 1, 1000, 10), KB_ETOOBIG);
	assert_int_equal(cd_state_n_tokens(s), CD_TOKENS_MAX);
	/* At 50, ten records have expired: room again. */
	assert_int_equal(cf_apply1(cf_token_add(0xff, 1, 1000, 50)), 0);
	assert_int_equal(cd_state_n_tokens(s), CD_TOKENS_MAX - 9);
	for (unsigned i = 1; i < cd_state_n_tokens(s); i++)
		assert_true(memcmp(cd_state_token_at(s, i - 1)->rec.id,
				   cd_state_token_at(s, i)->rec.id, CD_TOKEN_ID_SIZE) < 0);
}

static void test_host_join(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *c;
	const struct cd_event *ev;
	uint64_t seq;

	cf_populate();
	assert_int_equal(cf_apply1(cf_token_add(0x41, 0xa1, 2000, 1000)), 0);
	assert_int_equal(cf_apply1(cf_token_add(0x42, 0xa2, 1500, 1000)), 0);
	assert_int_equal(cf_apply1(cf_token_add(0x43, 0xa3, 1200, 1000)), 0);
	seq = s->next_event_seq;

	/* Token checks, in cd_token_check()'s order. */
	cf_refused(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x99, 0xa1, 1100), KB_ENOTFOUND);
	cf_refused(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa2, 1100), -EKEYREJECTED);
	cf_refused(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x43, 0xa3, 1200), -EKEYEXPIRED);
	cf_refused(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x43, 0xa3, 5000), -EKEYEXPIRED);
	c = cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1100);
	c->host_join->token_id.len = 15;
	cf_refused(c, -EINVAL);
	c = cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1100);
	c->host_join->secret_hash.len = 0;
	cf_refused(c, -EINVAL);
	/* HostAdd's rules: a refused host leaves the token unused. */
	cf_refused(cf_host_join(1, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1100), KB_EEXIST);
	cf_refused(cf_host_join(4, "esx1", "198.18.0.4:7000", 0x41, 0xa1, 1100), KB_EEXIST);
	cf_refused(cf_host_join(4, "esx4", "198.18.0.1:7000", 0x41, 0xa1, 1100), KB_EEXIST);
	cf_refused(cf_host_join(4, "bad name", "198.18.0.4:7000", 0x41, 0xa1, 1100), -EINVAL);
	c = cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1100);
	c->host_join->host = NULL;
	cf_refused(c, -EINVAL);
	assert_false(token(0x41)->rec.used);
	assert_int_equal(s->next_event_seq, seq);

	/* Joined at 1300: the host is added, the token spent, token 0x43 (expired at 1200)
	 * dropped, in one step. */
	assert_int_equal(cf_apply1(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1300)),
			 0);
	assert_non_null(cd_state_host(s, 4));
	assert_true(token(0x41)->rec.used);
	assert_int_equal(token(0x41)->used_by, 4);
	assert_null(token(0x43));
	assert_non_null(token(0x42));
	ev = last_event();
	assert_int_equal(ev->seq, seq);
	assert_int_equal(ev->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED);
	assert_int_equal(ev->at_ms, 1300000);
	assert_int_equal(ev->host, 4);
	assert_string_equal(ev->vm, "");
	assert_string_equal(ev->message, "host esx4 (4) joined at vmk0 198.18.0.4:7000");

	/* Single use, whatever the host; the secret is checked before the used flag. */
	cf_refused(cf_host_join(5, "esx5", "198.18.0.5:7000", 0x41, 0xa1, 1400), -EKEYREVOKED);
	cf_refused(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1400), -EKEYREVOKED);
	cf_refused(cf_host_join(5, "esx5", "198.18.0.5:7000", 0x41, 0xa2, 1400), -EKEYREJECTED);
	/* The spent record stays until it expires; the host may leave and the record keeps
	 * who used it. */
	assert_int_equal(cf_apply1(cf_host_remove(4)), 0);
	assert_int_equal(token(0x41)->used_by, 4);
	assert_int_equal(cf_apply1(cf_token_add(0x44, 0xa4, 3000, 2000)), 0);
	assert_null(token(0x41));
	assert_null(token(0x42));
}

/* ---- events ----------------------------------------------------------------------- */

static void test_event_add(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *c;
	const struct cd_event *ev;
	char long_msg[CD_EVENT_MSG_MAX + 2];

	assert_int_equal(s->next_event_seq, 1);
	assert_int_equal(cd_state_n_events(s), 0);
	assert_null(cd_state_event_at(s, 0));
	c = cf_event_add(77, UUID_A, "voter esx3 replaced by esx4", 5000);
	c->event_add->event->kind = KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_REMOVED;
	c->event_add->event->seq = 999;
	assert_int_equal(cf_apply1(c), 0);
	ev = last_event();
	assert_int_equal(ev->seq, 1);
	assert_int_equal(ev->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE);
	assert_int_equal(ev->at_ms, 5000);
	assert_int_equal(ev->host, 77); /* any host id */
	assert_string_equal(ev->vm, UUID_A);
	assert_string_equal(ev->message, "voter esx3 replaced by esx4");
	assert_int_equal(s->next_event_seq, 2);
	assert_int_equal(
	    cf_apply1(cf_event_add(0, "", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", 6000)), 0);
	assert_int_equal(cf_apply1(cf_event_add(0, NULL, "no vm", 7000)), 0);
	assert_string_equal(last_event()->vm, "");

	memset(long_msg, 'x', sizeof(long_msg));
	long_msg[CD_EVENT_MSG_MAX] = '\0';
	assert_int_equal(cf_apply1(cf_event_add(0, "", long_msg, 8000)), 0);
	assert_int_equal(strlen(last_event()->message), CD_EVENT_MSG_MAX);
	long_msg[CD_EVENT_MSG_MAX] = 'x';
	long_msg[CD_EVENT_MSG_MAX + 1] = '\0';
	cf_refused(cf_event_add(0, "", long_msg, 8000), -EINVAL);
	const char *bad[] = {"",
			     "line\nbreak",
			     "tab\there",
			     "del\x7f",
			     "c1 \xc2\x85",
			     "bare \xff",
			     "cut \xc3",
			     "overlong \xc0\xaf",
			     "surrogate \xed\xa0\x80",
			     "too high \xf4\x90\x80\x80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cf_refused(cf_event_add(0, "", bad[i], 8000), -EINVAL);
	cf_refused(cf_event_add(0, "not-a-uuid", "hello", 8000), -EINVAL);
	c = cf_event_add(0, "", "hello", 8000);
	c->event_add->event = NULL;
	cf_refused(c, -EINVAL);
	c = cf_event_add(0, "", "hello", 8000);
	c->event_add->event->message = NULL;
	cf_refused(c, -EINVAL);
	assert_int_equal(cd_state_n_events(s), 4);
	assert_int_equal(s->applied, 4);
}

static void test_events_from_commands(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *c;

	assert_int_equal(cf_apply1(cf_config("prod", CLUSTER1, 1000)), 0);
	c = cf_host_add(1, "esx1", "198.18.0.1:7000");
	c->host_add->host->last_change_ms = 1500;
	assert_int_equal(cf_apply1(c), 0);
	assert_int_equal(cf_apply1(cf_host_add(2, "esx2", "198.18.0.2:7000")), 0);
	c = cf_config("prod", CLUSTER1, 2000);
	c->set_config->config->isolation_response =
	    KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_LEAVE_POWERED_ON;
	assert_int_equal(cf_apply1(c), 0);
	/* State and role changed by one command: two events. */
	c = cf_host_update(2, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 3000);
	c->host_update->role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE;
	assert_int_equal(cf_apply1(c), 0);
	/* Role alone; then nothing changes: no event. */
	c = cf_host_update(2, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 3100);
	c->host_update->role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
	assert_int_equal(cf_apply1(c), 0);
	assert_int_equal(cf_apply1(cf_host_update(2, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 3200)),
			 0);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_A, "/vmfs/volumes/ds1/a/a.vmx", 1, 1)), 0);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 2)), 0);
	assert_int_equal(cf_apply1(cf_power(UUID_A, KEEL__CLUSTER__POWER_STATE__POWER_OFF)), 0);
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_A)), 0);
	c = cf_host_remove(1);
	c->host_remove->at_ms = 4000;
	assert_int_equal(cf_apply1(c), 0);
	/* Refused commands add nothing. */
	assert_int_equal(cf_apply1(cf_host_remove(1)), KB_ENOTFOUND);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 3)), KB_ENOTFOUND);

	assert_int_equal(cd_state_n_events(s), 11);
	assert_int_equal(s->next_event_seq, 12);
	cf_expect_event(0, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG, 0, 0, "",
		     "cluster prod configured: failure timeout 1000 ms, isolation response power "
		     "off, HA on");
	cf_expect_event(1, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED, 1500, 1, "",
		     "host esx1 (1) added at vmk0 198.18.0.1:7000");
	/* No time in the command or the record: the latest event's. */
	cf_expect_event(2, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED, 1500, 2, "",
		     "host esx2 (2) added at vmk0 198.18.0.2:7000");
	cf_expect_event(3, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG, 1500, 0, "",
		     "cluster prod configured: failure timeout 2000 ms, isolation response leave "
		     "powered on, HA on");
	cf_expect_event(4, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE, 3000, 2, "",
		     "host esx2: connected -> failed");
	cf_expect_event(5, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ROLE, 3000, 2, "",
		     "host esx2: raft role voter -> spare");
	cf_expect_event(6, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ROLE, 3100, 2, "",
		     "host esx2: raft role spare -> voter");
	cf_expect_event(7, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, 3100, 1, UUID_A,
		     "VM web 1 registered on host esx1, epoch 1");
	cf_expect_event(8, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, 3100, 2, UUID_A,
		     "VM web 1: owner esx1 -> esx2, epoch 2");
	cf_expect_event(9, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, 3100, 2, UUID_A,
		     "VM web 1 unregistered from host esx2");
	cf_expect_event(10, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_REMOVED, 4000, 1, "",
		     "host esx1 (1) removed");
	/* Events after a seq. */
	assert_int_equal(cd_state_events_since(s, 0), 0);
	assert_int_equal(cd_state_events_since(s, 4), 4);
	assert_int_equal(cd_state_event_at(s, cd_state_events_since(s, 4))->seq, 5);
	assert_int_equal(cd_state_events_since(s, 11), 11);
	assert_int_equal(cd_state_events_since(s, 1000), 11);
}

static void test_event_ring_wraps(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command *cmds[100];
	const struct cd_result *r;
	unsigned total = CD_EVENTS_MAX + 250;

	/* In batches of 100 notes: the first 250 events are dropped, oldest first. */
	for (unsigned done = 0; done < total;) {
		unsigned n = total - done < 100 ? total - done : 100;

		/* The builders reuse eight messages, so times repeat; only seqs matter here. */
		for (unsigned i = 0; i < n; i++)
			cmds[i] = cf_event_add(0, "", "note", done + i + 1);
		r = cf_apply_n(cmds, n);
		assert_int_equal(r->n_applied, n);
		done += n;
	}
	assert_int_equal(cd_state_n_events(s), CD_EVENTS_MAX);
	assert_int_equal(s->next_event_seq, total + 1);
	for (unsigned i = 0; i < CD_EVENTS_MAX; i++)
		assert_int_equal(cd_state_event_at(s, i)->seq, 251 + i);
	assert_null(cd_state_event_at(s, CD_EVENTS_MAX));
	assert_int_equal(cd_state_events_since(s, 0), 0);
	assert_int_equal(cd_state_events_since(s, 250), 0);
	assert_int_equal(cd_state_events_since(s, 251), 1);
	assert_int_equal(cd_state_events_since(s, 1000), 1000 - 250);
	assert_int_equal(cd_state_events_since(s, total), CD_EVENTS_MAX);
	assert_int_equal(last_event()->seq, total);
}

/* ---- maintenance mode and the auth store ---------------------------------------------- */

static Keel__Cluster__HostSetMaintenance maint_msg;
static Keel__Cluster__AuthSet auth_msg;
static Keel__Cluster__Command maint_cmd, auth_cmd;

static Keel__Cluster__Command *maint(uint64_t host, bool enter, uint64_t at_ms)
{
	keel__cluster__host_set_maintenance__init(&maint_msg);
	keel__cluster__command__init(&maint_cmd);
	maint_msg.host = host;
	maint_msg.enter = enter;
	maint_msg.at_ms = at_ms;
	maint_cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_SET_MAINTENANCE;
	maint_cmd.host_set_maintenance = &maint_msg;
	return &maint_cmd;
}

/* An AuthSet of len bytes from blob (borrowed until applied). */
static Keel__Cluster__Command *auth(uint64_t expect, const void *blob, size_t len,
				    uint64_t host, uint64_t at_ms)
{
	keel__cluster__auth_set__init(&auth_msg);
	keel__cluster__command__init(&auth_cmd);
	auth_msg.expect_version = expect;
	auth_msg.blob.data = (uint8_t *)blob;
	auth_msg.blob.len = len;
	auth_msg.host = host;
	auth_msg.at_ms = at_ms;
	auth_cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_AUTH_SET;
	auth_cmd.auth_set = &auth_msg;
	return &auth_cmd;
}

/* Restores cf_fsm's snapshot into a fresh FSM g (closed by the caller). */
static void restore_into(struct cd_fsm *g)
{
	struct raft_buffer b = cf_snap(&cf_fsm);

	cd_fsm_init(g);
	assert_int_equal(cd_fsm_restore(&g->raft, &b), 0); /* takes b.base */
}

static void test_host_maintenance(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	unsigned n;
	struct cd_fsm g;

	cf_populate();
	cf_refused(maint(99, true, 1000), KB_ENOTFOUND);
	assert_false(cd_state_host(s, 2)->maintenance);
	assert_int_equal(cf_apply1(maint(2, true, 5000)), 0);
	assert_true(cd_state_host(s, 2)->maintenance);
	assert_false(cd_state_host(s, 1)->maintenance);
	n = cd_state_n_events(s);
	cf_expect_event(n - 1, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE, 5000, 2, "",
		     "host esx2 entered maintenance mode");
	/* Entering again changes nothing visible: applied, no event. */
	assert_int_equal(cf_apply1(maint(2, true, 6000)), 0);
	assert_int_equal(cd_state_n_events(s), n);
	/* Carried by the snapshot. */
	restore_into(&g);
	assert_true(cd_state_host(cd_fsm_state(&g), 2)->maintenance);
	assert_false(cd_state_host(cd_fsm_state(&g), 3)->maintenance);
	cd_fsm_close(&g);
	assert_int_equal(cf_apply1(maint(2, false, 7000)), 0);
	assert_false(cd_state_host(s, 2)->maintenance);
	cf_expect_event(n, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE, 7000, 2, "",
		     "host esx2 left maintenance mode");
	/* A host that has left cannot enter it. */
	assert_int_equal(cf_apply1(cf_host_update(3, KEEL__CLUSTER__HOST_STATE__HOST_LEFT, 8000)),
			 0);
	cf_refused(maint(3, true, 9000), KB_ESTATE);
}

static void test_auth_set_cas(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	const struct cd_result *r;
	Keel__Cluster__Command *cmds[2];
	Keel__Cluster__AuthSet second;
	Keel__Cluster__Command c2 = KEEL__CLUSTER__COMMAND__INIT;

	cf_populate();
	assert_int_equal(s->auth.version, 0);
	/* Nothing set yet: only expect_version 0 applies. */
	cf_refused(auth(1, "one", 3, 1, 1000), -ESTALE);
	cf_refused(auth(0, "", 0, 1, 1000), -EINVAL);
	assert_int_equal(cf_apply1(auth(0, "one", 3, 1, 2000)), 0);
	assert_int_equal(s->auth.version, 1);
	assert_int_equal(s->auth.len, 3);
	assert_memory_equal(s->auth.blob, "one", 3);
	assert_int_equal(s->auth.host, 1);
	assert_int_equal(s->auth.at_ms, 2000);
	cf_expect_event(cd_state_n_events(s) - 1, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG, 2000,
		     1, "", "users and permissions changed by host esx1 (version 1)");
	/* A second host that also saw nothing loses; the reason says why. */
	cf_refused(auth(0, "two", 3, 2, 2100), -ESTALE);
	assert_int_equal(cd_fsm_state(&cf_fsm)->auth.version, 1);
	cf_refused(auth(2, "two", 3, 2, 2100), -ESTALE);
	/* Versions grow by one per applied set. */
	assert_int_equal(cf_apply1(auth(1, "second", 6, 2, 3000)), 0);
	assert_int_equal(s->auth.version, 2);
	assert_int_equal(s->auth.len, 6);
	assert_memory_equal(s->auth.blob, "second", 6);
	assert_int_equal(s->auth.host, 2);
	/* Two sets from the same version in one batch: the first wins, the second is stale. */
	cmds[0] = auth(2, "third", 5, 3, 4000);
	second = auth_msg;
	second.blob.data = (uint8_t *)"fourth";
	second.blob.len = 6;
	second.host = 1;
	c2.cmd_case = KEEL__CLUSTER__COMMAND__CMD_AUTH_SET;
	c2.auth_set = &second;
	cmds[1] = &c2;
	r = cf_apply_n(cmds, 2);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->cmds[0].code, 0);
	assert_int_equal(r->cmds[1].code, -ESTALE);
	assert_non_null(strstr(r->cmds[1].reason, "version 3"));
	assert_int_equal(s->auth.version, 3);
	assert_memory_equal(s->auth.blob, "third", 5);
}

static void test_auth_set_limit_and_snapshot(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	uint8_t *big = malloc(CD_AUTH_BLOB_MAX + 1);
	struct cd_state bad;
	struct raft_buffer b;
	struct kb_errmsg e = {{0}};
	struct cd_fsm g;

	assert_non_null(big);
	for (size_t i = 0; i <= CD_AUTH_BLOB_MAX; i++)
		big[i] = (uint8_t)(i * 7);
	cf_populate();
	cf_refused(auth(0, big, CD_AUTH_BLOB_MAX + 1, 1, 1000), KB_ETOOBIG);
	assert_int_equal(s->auth.version, 0);
	/* Exactly the limit is accepted (the batch limit leaves room for it). */
	assert_int_equal(cf_apply1(auth(0, big, CD_AUTH_BLOB_MAX, 1, 1000)), 0);
	assert_int_equal(s->auth.version, 1);
	assert_int_equal(s->auth.len, CD_AUTH_BLOB_MAX);
	assert_memory_equal(s->auth.blob, big, CD_AUTH_BLOB_MAX);
	/* A smaller blob afterwards replaces it whole. */
	assert_int_equal(cf_apply1(auth(1, "small", 5, 2, 2000)), 0);
	assert_int_equal(s->auth.len, 5);
	/* The snapshot carries it: a restored FSM holds the same store and the same bytes. */
	restore_into(&g);
	assert_int_equal(cd_fsm_state(&g)->auth.version, 2);
	assert_int_equal(cd_fsm_state(&g)->auth.len, 5);
	assert_memory_equal(cd_fsm_state(&g)->auth.blob, "small", 5);
	assert_int_equal(cd_fsm_state(&g)->auth.host, 2);
	assert_int_equal(cd_fsm_state(&g)->auth.at_ms, 2000);
	b = cf_snap(&g);
	assert_true(cf_same_as(&b));
	raft_free(b.base);
	cd_fsm_close(&g);
	/* A snapshot whose store has a version but no bytes is refused. */
	cd_state_init(&bad);
	bad.auth.version = 4;
	assert_int_equal(cd_snapshot_encode(&bad, &b, &e), 0);
	cd_state_close(&bad);
	cd_state_init(&bad);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &bad, &e), KB_EPROTO);
	assert_non_null(strstr(e.msg, "auth"));
	raft_free(b.base);
	free(big);
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
	    cmocka_unit_test_setup_teardown(test_migration, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_empty_command, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_batch_each_command_on_its_own, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_token_add, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_token_prune_and_limit, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_host_join, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_event_add, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_events_from_commands, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_event_ring_wraps, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_host_maintenance, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_auth_set_cas, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_auth_set_limit_and_snapshot, cf_setup,
					    cf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
