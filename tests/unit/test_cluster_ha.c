/*
 * Tests for a VM's HA settings in clusterd (docs/ha-settings.md): applying VmSetHa (every
 * restart-after VM must be registered and listed once; the event "VM X: restart priority
 * P, restart after A, B"; a refusal changes nothing) and the wire of the request that asks
 * for it (ClusterVmHa in a ClusterRequest and in a JoinRequest's STEP_VM_HA).
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
#include "lib/heap.h"
#include "tests/unit/cluster_fsm_helpers.h"

#define UUID_D "11111111-2222-3333-4444-888888888888"

static Keel__Cluster__Command *set_ha(const char *uuid, int prio, char **after, size_t n,
				      uint64_t at_ms)
{
	static Keel__Cluster__Command c;
	static Keel__Cluster__VmSetHa m;
	static Keel__Cluster__HaSettings ha;

	keel__cluster__command__init(&c);
	keel__cluster__vm_set_ha__init(&m);
	keel__cluster__ha_settings__init(&ha);
	ha.priority = prio;
	ha.n_restart_after = n;
	ha.restart_after = after;
	m.uuid = (char *)uuid;
	m.ha = &ha;
	m.at_ms = at_ms;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA;
	c.vm_set_ha = &m;
	return &c;
}

static const struct cd_event *last_event(void)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	assert_true(cd_state_n_events(s) > 0);
	return cd_state_event_at(s, cd_state_n_events(s) - 1);
}

static void refused(Keel__Cluster__Command *c, int code)
{
	struct raft_buffer before = cf_snap(&cf_fsm);

	assert_int_equal(cf_apply1(c), code);
	assert_true(cf_same_as(&before));
	raft_free(before.base);
}

static void test_set_ha_event(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	char *after[] = {UUID_B};
	const struct cd_event *ev;

	(void)state;
	cf_populate();
	assert_int_equal(cf_apply1(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST,
					  after, 1, 123456)),
			 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->priority,
			 KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST);
	ev = last_event();
	assert_int_equal(ev->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_VM);
	assert_int_equal(ev->at_ms, 123456);
	assert_int_equal(ev->host, cd_state_vm(s, UUID_A)->owner);
	assert_string_equal(ev->vm, UUID_A);
	assert_non_null(strstr(ev->message, ": restart priority highest, restart after "));
	assert_non_null(strstr(ev->message, cd_state_vm(s, UUID_B)->name));

	/* No list: no "restart after" part; priority disabled is a priority like others. */
	assert_int_equal(cf_apply1(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED,
					  NULL, 0, 0)),
			 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->n_restart_after, 0);
	ev = last_event();
	assert_null(strstr(ev->message, "restart after"));
	assert_non_null(strstr(ev->message, "restart priority disabled"));
	assert_int_equal(ev->at_ms, 123456); /* 0: the latest event's time */
}

static void test_set_ha_refusals(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	char *unknown[] = {UUID_D};
	char *twice[] = {UUID_B, UUID_B};
	char *self[] = {UUID_A};
	char *many[17];

	(void)state;
	cf_populate();
	refused(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, unknown, 1, 0),
		KB_ENOTFOUND);
	refused(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, twice, 2, 0), -EINVAL);
	refused(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, self, 1, 0), -EINVAL);
	for (int i = 0; i < 17; i++)
		many[i] = UUID_B;
	refused(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, many, 17, 0), -EINVAL);
	refused(set_ha(UUID_D, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, NULL, 0, 0),
		KB_ENOTFOUND);
	refused(set_ha(UUID_A, 7, NULL, 0, 0), -EINVAL);
	assert_int_equal(cd_state_vm(s, UUID_A)->n_restart_after, 0);

	/* A dependency unregistered later stays listed (the planner ignores unknown ones). */
	{
		char *after[] = {UUID_B};

		assert_int_equal(
		    cf_apply1(
			set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, after, 1, 0)),
		    0);
		assert_int_equal(cf_apply1(cf_vm_unreg(UUID_B)), 0);
		assert_int_equal(cd_state_vm(s, UUID_A)->n_restart_after, 1);
		/* ...but cannot be named again. */
		refused(set_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH, after, 1, 0),
			KB_ENOTFOUND);
	}
}

/* A batch: the refused VmSetHa does not keep the next one from applying. */
static void test_set_ha_in_batch(void **state)
{
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	Keel__Cluster__Command a = KEEL__CLUSTER__COMMAND__INIT, *cmds[2];
	Keel__Cluster__VmSetHa m = KEEL__CLUSTER__VM_SET_HA__INIT;
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	char *unknown[] = {UUID_D};
	const struct cd_result *r;

	(void)state;
	cf_populate();
	ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW;
	ha.n_restart_after = 1;
	ha.restart_after = unknown;
	m.uuid = UUID_A;
	m.ha = &ha;
	a.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA;
	a.vm_set_ha = &m;
	cmds[0] = &a;
	cmds[1] = set_ha(UUID_B, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOWEST, NULL, 0, 0);
	r = cf_apply_n(cmds, 2);
	assert_non_null(r);
	assert_int_equal(cd_state_vm(s, UUID_B)->priority,
			 KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOWEST);
	assert_int_not_equal(cd_state_vm(s, UUID_A)->priority,
			     KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW);
}

/* The control request and its forwarded form keep every field. */
static void test_request_codec(void **state)
{
	Keel__Cluster__ClusterVmHa vh = KEEL__CLUSTER__CLUSTER_VM_HA__INIT;
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__JoinRequest jr = KEEL__CLUSTER__JOIN_REQUEST__INIT;
	Keel__Cluster__ClusterRequest *rq2;
	Keel__Cluster__JoinRequest *jr2;
	char *after[] = {"db", UUID_B};
	uint8_t buf[512];
	size_t n;

	(void)state;
	vh.vm = "web";
	vh.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH;
	vh.set_priority = true;
	vh.set_after = true;
	vh.n_restart_after = 2;
	vh.restart_after = after;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM_HA;
	rq.vm_ha = &vh;
	n = keel__cluster__cluster_request__get_packed_size(&rq);
	assert_true(n < sizeof(buf));
	keel__cluster__cluster_request__pack(&rq, buf);
	rq2 = keel__cluster__cluster_request__unpack(NULL, n, buf);
	assert_non_null(rq2);
	assert_int_equal(rq2->req_case, KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM_HA);
	assert_string_equal(rq2->vm_ha->vm, "web");
	assert_int_equal(rq2->vm_ha->priority, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH);
	assert_true(rq2->vm_ha->set_priority && rq2->vm_ha->set_after);
	assert_int_equal(rq2->vm_ha->n_restart_after, 2);
	assert_string_equal(rq2->vm_ha->restart_after[1], UUID_B);
	keel__cluster__cluster_request__free_unpacked(rq2, NULL);

	/* "Clear the list": set_after with no entries survives the wire. */
	vh.n_restart_after = 0;
	vh.set_priority = false;
	jr.step = KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM_HA;
	jr.vm_ha = &vh;
	n = keel__cluster__join_request__get_packed_size(&jr);
	keel__cluster__join_request__pack(&jr, buf);
	jr2 = keel__cluster__join_request__unpack(NULL, n, buf);
	assert_non_null(jr2);
	assert_int_equal(jr2->step, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_VM_HA);
	assert_non_null(jr2->vm_ha);
	assert_true(jr2->vm_ha->set_after);
	assert_false(jr2->vm_ha->set_priority);
	assert_int_equal(jr2->vm_ha->n_restart_after, 0);
	keel__cluster__join_request__free_unpacked(jr2, NULL);

	/* Truncated bytes do not decode. */
	assert_null(keel__cluster__join_request__unpack(NULL, n - 3, buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_set_ha_event, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_set_ha_refusals, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_set_ha_in_batch, cf_setup, cf_teardown),
	    cmocka_unit_test(test_request_codec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
