/*
 * Tests for clusterd's state machine without Raft: placement rules (RuleSet, RuleRemove and
 * what VmUnregister and HostRemove do to them), the DRS settings, when a VM last moved, and
 * the rule check of a move.
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

/* ---- placement rules, DRS settings, when a VM last moved ------------------------------ */

#define ANTI	  KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY
#define HOST_AFF  KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY
#define EV_CONFIG KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG

static void test_rule_set_and_remove(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	char *ab[] = {UUID_A, UUID_B}, *aa[] = {UUID_A, UUID_A}, *ac[] = {UUID_A, UUID_C};
	char *many[CD_RULE_VMS_MAX + 1];
	uint64_t g3[] = {3}, g99[] = {99}, g0[] = {0};
	char name[16];
	unsigned n;

	cf_populate();
	/* Refusals: the rule's own fields, then what it names. */
	cf_refused(cf_rule_set("apart", 0, true, ab, 2, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("apart", 9, true, ab, 2, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("bad name", ANTI, true, ab, 2, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("", ANTI, true, ab, 2, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("apart", ANTI, true, ab, 1, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("apart", ANTI, true, aa, 2, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("apart", ANTI, true, ab, 2, g3, 1, 1000), -EINVAL);
	cf_refused(cf_rule_set("apart", ANTI, true, ac, 2, NULL, 0, 1000), KB_ENOTFOUND);
	cf_refused(cf_rule_set("pin", HOST_AFF, true, ab, 2, NULL, 0, 1000), -EINVAL);
	cf_refused(cf_rule_set("pin", HOST_AFF, true, ab, 2, g0, 1, 1000), -EINVAL);
	cf_refused(cf_rule_set("pin", HOST_AFF, true, ab, 2, g99, 1, 1000), KB_ENOTFOUND);
	for (int i = 0; i <= CD_RULE_VMS_MAX; i++)
		many[i] = UUID_A;
	cf_refused(cf_rule_set("big", ANTI, true, many, CD_RULE_VMS_MAX + 1, NULL, 0, 1000),
		KB_ETOOBIG);
	assert_int_equal(cd_state_n_rules(s), 0);

	n = cd_state_n_events(s);
	assert_int_equal(cf_apply1(cf_rule_set("apart", ANTI, true, ab, 2, NULL, 0, 2000)), 0);
	assert_int_equal(cd_state_n_rules(s), 1);
	assert_true(cd_state_rule(s, "apart")->mandatory);
	assert_int_equal(cd_state_rule(s, "apart")->n_vms, 2);
	assert_string_equal(cd_state_rule(s, "apart")->vms[1], UUID_B);
	cf_expect_event(n, EV_CONFIG, 2000, 0, "", "rule apart added: 2 VMs must run apart");
	/* The same name replaces it. */
	assert_int_equal(cf_apply1(cf_rule_set("apart", ANTI, false, ab, 2, NULL, 0, 2500)), 0);
	assert_int_equal(cd_state_n_rules(s), 1);
	assert_false(cd_state_rule(s, "apart")->mandatory);
	cf_expect_event(n + 1, EV_CONFIG, 2500, 0, "", "rule apart replaced: 2 VMs should run apart");
	assert_int_equal(cf_apply1(cf_rule_set("pin", HOST_AFF, true, ab, 2, g3, 1, 3000)), 0);
	cf_expect_event(n + 2, EV_CONFIG, 3000, 0, "",
		     "rule pin added: 2 VMs must run on the host group (1 hosts)");
	/* Sorted by name. */
	assert_string_equal(cd_state_rule_at(s, 0)->name, "apart");
	assert_string_equal(cd_state_rule_at(s, 1)->name, "pin");
	cf_refused(cf_rule_remove("nope", 4000), KB_ENOTFOUND);
	cf_refused(cf_rule_remove("bad name", 4000), -EINVAL);
	assert_int_equal(cf_apply1(cf_rule_remove("apart", 4000)), 0);
	cf_expect_event(n + 3, EV_CONFIG, 4000, 0, "", "rule apart removed");
	assert_null(cd_state_rule(s, "apart"));
	assert_int_equal(cd_state_n_rules(s), 1);
	/* The limit: CD_RULES_MAX rules; replacing one is still allowed at the limit. */
	for (int i = 1; i < CD_RULES_MAX; i++) {
		snprintf(name, sizeof(name), "r%03d", i);
		assert_int_equal(cf_apply1(cf_rule_set(name, ANTI, false, ab, 2, NULL, 0, 5000)),
				 0);
	}
	assert_int_equal(cd_state_n_rules(s), CD_RULES_MAX);
	cf_refused(cf_rule_set("one-more", ANTI, false, ab, 2, NULL, 0, 6000), KB_ETOOBIG);
	assert_int_equal(cf_apply1(cf_rule_set("r001", ANTI, true, ab, 2, NULL, 0, 6000)), 0);
	assert_true(cd_state_rule(s, "r001")->mandatory);
}

/* An unregistered VM leaves its rules, a removed host its host groups; a rule left with too
 * few VMs or no host goes, with an event. */
static void test_rule_cleanup(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	char *abc[] = {UUID_A, UUID_B, UUID_C}, *b[] = {UUID_B};
	uint64_t g23[] = {2, 3};
	unsigned n;

	cf_populate();
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1)), 0);
	assert_int_equal(cf_apply1(cf_rule_set("apart", ANTI, true, abc, 3, NULL, 0, 1000)), 0);
	assert_int_equal(cf_apply1(cf_rule_set("pin", HOST_AFF, false, b, 1, g23, 2, 1000)), 0);
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_C)), 0);
	assert_int_equal(cd_state_rule(s, "apart")->n_vms, 2);
	assert_string_equal(cd_state_rule(s, "apart")->vms[0], UUID_A);
	assert_string_equal(cd_state_rule(s, "apart")->vms[1], UUID_B);
	/* Host 3 owns nothing: removed, and dropped from the host group. */
	assert_int_equal(cf_apply1(cf_host_remove(3)), 0);
	assert_int_equal(cd_state_rule(s, "pin")->n_hosts, 1);
	assert_int_equal(cd_state_rule(s, "pin")->hosts[0], 2);
	/* A VM-VM rule of one VM is no rule: removed. */
	n = cd_state_n_events(s);
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_A)), 0);
	assert_null(cd_state_rule(s, "apart"));
	cf_expect_event(n + 1, EV_CONFIG, cd_state_event_at(s, n)->at_ms, 0, UUID_A,
		     "rule apart removed: too few of its VMs are registered");
	assert_non_null(cd_state_rule(s, "pin"));
	/* The last VM of a host rule goes: so does the rule. */
	assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), 0);
	assert_int_equal(cd_state_n_rules(s), 0);
}

static void test_vm_last_moved(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	cf_populate();
	assert_int_equal(cd_state_vm(s, UUID_A)->last_moved_ms, 0);
	assert_int_equal(cf_apply1(cf_event_add(0, "", "tick", 5000)), 0);
	/* Same owner at a higher epoch (a restart in place): not a move. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 1, 2)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->last_moved_ms, 0);
	/* A new owner: the time of its event. */
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 2, 3)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->last_moved_ms, 5000);
	/* A migration's switchover: its start, when later than the latest event. */
	assert_int_equal(cf_apply1(cf_op_begin(7, UUID_A, 2, 3, 3)), 0);
	cf_fsm.state.ops[0].started_at_ms = 9000;
	assert_int_equal(cf_apply1(cf_owner_op(UUID_A, 3, 4, 7)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 3);
	assert_int_equal(cd_state_vm(s, UUID_A)->last_moved_ms, 9000);
	assert_int_equal(cd_state_vm(s, UUID_B)->last_moved_ms, 0);
}

static void test_drs_settings(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	struct cd_drs_settings d;
	unsigned n;

	/* Before any config, and with a config that carries none: the defaults. */
	cd_state_drs_settings(s, &d);
	assert_int_equal(d.automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL);
	cf_populate();
	cd_state_drs_settings(s, &d);
	assert_int_equal(d.automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL);
	assert_int_equal(d.threshold, 3);
	assert_int_equal(d.interval_s, 60);
	assert_int_equal(d.hold_s, 300);
	assert_int_equal(d.max_moves, 32);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 0, 3, 60, 300, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 4, 3, 60, 300, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 0, 60, 300, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 6, 60, 300, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 3, 9, 300, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 3, 3601, 300, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 3, 60, 86401, 32), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 3, 60, 300, 0), -EINVAL);
	cf_refused(cf_config_drs("prod", CLUSTER1, 1000, 3, 3, 60, 300, 4097), -EINVAL);
	n = cd_state_n_events(s);
	assert_int_equal(
	    cf_apply1(cf_config_drs("prod", CLUSTER1, 1000, KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL,
				    5, 10, 0, 4096)),
	    0);
	cd_state_drs_settings(s, &d);
	assert_int_equal(d.automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL);
	assert_int_equal(d.threshold, 5);
	assert_int_equal(d.interval_s, 10);
	assert_int_equal(d.hold_s, 0);
	assert_int_equal(d.max_moves, 4096);
	assert_int_equal(cd_state_n_events(s), n + 2);
	assert_string_equal(cd_state_event_at(s, n + 1)->message,
			    "DRS: fully automated, migration threshold 5, every 10 s, hold 0 s, at "
			    "most 4096 moves a pass");
	/* A SetConfig without DRS settings (another setting changed) keeps them. */
	n = cd_state_n_events(s);
	assert_int_equal(cf_apply1(cf_config("prod", CLUSTER1, 2000)), 0);
	assert_int_equal(cd_state_n_events(s), n + 1);
	cd_state_drs_settings(s, &d);
	assert_int_equal(d.automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL);
	assert_int_equal(d.threshold, 5);
	assert_int_equal(s->config.failure_timeout_ms, 2000);
}

/* The rule check of a migration with a destination (clusterd/drs.c) and the model the
 * placement modules get: rules by index, VMs by index + 1. */
static void test_rule_check_move(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	char *ab[] = {UUID_A, UUID_B}, *c[] = {UUID_C};
	uint64_t g1[] = {1};
	struct kb_errmsg e = {{0}};
	struct cd_drs_model m;
	struct ha_drs_config cfg;
	struct ha_drs_rec recs[8];
	char name[128];
	size_t n = 0;

	cf_populate();
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1)), 0);
	for (int i = 0; i < 3; i++)
		cf_fsm.state.vms[i].mem_mib = 1024;
	for (int i = 0; i < 3; i++)
		cf_fsm.state.hosts[i].mem_mib = 16384;
	assert_int_equal(cf_apply1(cf_rule_set("apart", ANTI, true, ab, 2, NULL, 0, 1000)), 0);
	assert_int_equal(cf_apply1(cf_rule_set("pin", HOST_AFF, true, c, 1, g1, 1, 1000)), 0);
	/* A powered-off VM is not counted: nothing to break. */
	assert_int_equal(cf_apply1(cf_power(UUID_B, KEEL__CLUSTER__POWER_STATE__POWER_OFF)), 0);
	assert_int_equal(cd_drs_check_move(s, cd_state_vm(s, UUID_A), 2, &e), 0);
	assert_int_equal(cf_apply1(cf_power(UUID_A, KEEL__CLUSTER__POWER_STATE__POWER_ON)), 0);
	assert_int_equal(cf_apply1(cf_power(UUID_B, KEEL__CLUSTER__POWER_STATE__POWER_ON)), 0);
	assert_int_equal(cf_apply1(cf_power(UUID_C, KEEL__CLUSTER__POWER_STATE__POWER_ON)), 0);
	assert_int_equal(cd_drs_check_move(s, cd_state_vm(s, UUID_A), 2, &e), -EPERM);
	assert_non_null(strstr(e.msg, "rule apart (must run apart)"));
	assert_int_equal(cd_drs_check_move(s, cd_state_vm(s, UUID_A), 3, &e), 0);
	assert_int_equal(cd_drs_check_move(s, cd_state_vm(s, UUID_C), 2, &e), -EPERM);
	assert_non_null(strstr(e.msg, "rule pin (must run on the host group)"));
	/* A preferential rule does not refuse. */
	assert_int_equal(cf_apply1(cf_rule_set("apart", ANTI, false, ab, 2, NULL, 0, 1000)), 0);
	assert_int_equal(cd_drs_check_move(s, cd_state_vm(s, UUID_A), 2, &e), 0);
	/* The model: A and C on host 1, B on host 2; a broken must rule is fixed first. */
	assert_int_equal(cf_apply1(cf_rule_set("apart", ANTI, true, ab, 2, NULL, 0, 1000)), 0);
	assert_int_equal(cf_apply1(cf_owner(UUID_B, 1, 2)), 0);
	assert_int_equal(cd__drs_model_build(s, &m, &e), 0);
	assert_int_equal(m.c.n_hosts, 3);
	assert_int_equal(m.c.n_vms, 3);
	assert_int_equal(m.c.n_rules, 2);
	assert_int_equal(ha_cluster_check(&m.c, &e), 0);
	ha_drs_config_init(&cfg);
	assert_int_equal(ha_drs_recommend(&m.c, &cfg, recs, 8, &n, &e), 0);
	assert_true(n >= 1);
	assert_int_equal(recs[0].reason, HA_DRS_FIX_MANDATORY);
	assert_string_equal(cd_state_rule_at(s, recs[0].rule - 1)->name, "apart");
	assert_true(recs[0].vm == 1 || recs[0].vm == 2); /* A or B, never the pinned C */
	assert_int_equal(recs[0].from, 1);
	assert_int_equal(recs[0].bytes, 1024ull << 20);
	cd__drs_model_free(&m);
	/* The modules' messages name VMs and rules by model id; the operator sees names. */
	kb_errmsg_setf(&e, "no host fits VM 3: rule 2 (must run on the host group) rules out 2 "
			   "hosts; VM 9 and rule 7 (x) stay; VM 31");
	cd__drs_explain(s, &e);
	snprintf(name, sizeof(name), "VM %s: rule pin (", cd_state_vm_at(s, 2)->name);
	assert_non_null(strstr(e.msg, name));
	assert_non_null(strstr(e.msg, "rules out 2 hosts; VM 9 and rule 7 (x) stay; VM 31"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rule_set_and_remove, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_rule_cleanup, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_vm_last_moved, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_drs_settings, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_rule_check_move, cf_setup, cf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
