/*
 * vmkernel's power-on that the cluster places on another host (docs/drs.md, "Initial
 * placement"; kernel/vm/owner.c), against a fake clusterd that answers OP_POWER_ON as the
 * leader does after giving the VM away: KB_ESTATE with `placed`, the new owner and the
 * placement's words.
 *
 * A real vmkernel (build/bin/vmkernel in a network namespace of its own, state in a temp
 * dir, a shared datastore): an operator's power-on succeeds with VmkReply.placed_on,
 * placed_on_id and placement, starts nothing (the VM stays off, no lock, its last event is
 * the placement); the owner's reconciler's power-on (reconcile) gets the refusal naming
 * the other host, as before; without the placement's words or the owner's name the reply
 * still names the host; a refusal without `placed` is an error with no placement; every
 * other reply carries no placement. No vmx is ever started, so no /dev/kvm is needed.
 * The fake clusterd and the vmkernel are tests/unit/vmk_cluster_helpers.h's.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ha/lock.h"
#include "kernel/core/cluster.h"
#include "lib/err.h"
#include "tests/unit/vmk_cluster_helpers.h"
#include "vmk.pb-c.h"

#define OTHER_HOST 0x77u /* the host placement chose */

/* ---- the fake clusterd: one answer for OP_POWER_ON, acceptance for the rest ---------- */

/* The answer to every power-on from now on: a's code, error, owner and placement, as the
 * leader gives it (a member's reply at epoch 2). */
static void fk_answer(struct vc_answer a)
{
	a.member = true;
	a.epoch = 2;
	a.host_id = vc_vmk.host_id;
	vc_fake_set(VMK_CLUSTER_POWER_ON, a);
}

/* How many OP_POWER_ON requests the fake received; *wanted_only: of the last one. */
static int fk_power_ons(bool *wanted_only)
{
	int n = vc_fake_count(VMK_CLUSTER_POWER_ON);

	if (wanted_only && n > 0)
		*wanted_only = vc_fake_last(VMK_CLUSTER_POWER_ON).wanted_only;
	return n;
}

/* ---- the vmkernel's VMs ------------------------------------------------------------- */

/* Nothing started: the VM is off here and its lock was never taken. */
static void assert_nothing_started(const char *name)
{
	char lk[PATH_MAX];
	Keel__Vmk__VmkReply *rp = vc_vm_get(name);

	assert_int_equal(rp->code, 0);
	assert_int_equal(rp->n_vms, 1);
	assert_string_equal(rp->vms[0]->power_state, "poweredOff");
	assert_int_equal(rp->vms[0]->pid, 0);
	assert_string_equal(rp->placed_on, ""); /* only a power-on's reply says where */
	assert_int_equal(rp->placed_on_id, 0);
	assert_string_equal(rp->placement, "");
	vc_done(rp);
	snprintf(lk, sizeof(lk), "%s/%s/%s", vc_vmk.shared, name, HA_LOCK_NAME);
	assert_int_not_equal(access(lk, F_OK), 0);
}

static void create(const char *name)
{
	Keel__Vmk__VmkReply *rp = vc_vm_create(name, "shared1");

	if (rp->code != 0)
		fail_msg("create %s: %d %s", name, rp->code, rp->error);
	vc_done(rp);
}

/* An operator's power-on placed elsewhere: success, where, and nothing started here. */
static void test_placed_succeeds(void **unused)
{
	const char *words = "VM pl1 placed on esx3 by DRS (fully automated; registered on esx1)";
	bool wanted_only = true;

	create("pl1");
	fk_answer((struct vc_answer){.code = KB_ESTATE,
				     .error = "VM pl1 placed on esx3 by DRS (fully automated; "
					      "registered on esx1): esx3 powers it on",
				     .owner = OTHER_HOST,
				     .owner_name = "esx3",
				     .placed = true,
				     .placement = words});
	int n = fk_power_ons(NULL);
	Keel__Vmk__VmkReply *rp = vc_vm_power_on("pl1", false);
	if (rp->code != 0)
		fail_msg("placed power-on: %d %s", rp->code, rp->error);
	assert_int_equal(fk_power_ons(&wanted_only), n + 1);
	assert_false(wanted_only);
	assert_string_equal(rp->placed_on, "esx3");
	assert_int_equal(rp->placed_on_id, OTHER_HOST);
	assert_string_equal(rp->placement, words);
	assert_string_equal(rp->error, ""); /* the success carries no error text */
	assert_int_equal(rp->n_vms, 1);
	assert_string_equal(rp->vms[0]->name, "pl1");
	assert_string_equal(rp->vms[0]->power_state, "poweredOff");
	assert_string_equal(rp->vms[0]->last_event,
			    "VM pl1 placed on esx3 by DRS (fully automated; registered on esx1): "
			    "esx3 powers it on");
	vc_done(rp);
	assert_nothing_started("pl1");
}

/* The reconciler's power-on (reconcile) is refused as before, naming the other host. */
static void test_placed_reconcile_refused(void **unused)
{
	bool wanted_only = false;

	Keel__Vmk__VmkReply *rp = vc_vm_power_on("pl1", true);
	assert_true(fk_power_ons(&wanted_only) > 0);
	assert_true(wanted_only);
	assert_int_equal(rp->code, KB_ESTATE);
	assert_has(rp->error, "cannot power on VM pl1: VM pl1 placed on esx3 by DRS (fully "
			      "automated; registered on esx1): esx3 powers it on");
	assert_string_equal(rp->placed_on, "");
	assert_string_equal(rp->placement, "");
	vc_done(rp);
	assert_nothing_started("pl1");
}

/* Without the placement's words or the owner's name the reply still names the host. */
static void test_placed_without_words(void **unused)
{
	fk_answer((struct vc_answer){
	    .code = KB_ESTATE, .error = "placed", .owner = OTHER_HOST, .placed = true});
	Keel__Vmk__VmkReply *rp = vc_vm_power_on("pl1", false);
	if (rp->code != 0)
		fail_msg("placed power-on: %d %s", rp->code, rp->error);
	assert_string_equal(rp->placed_on, "host-119");
	assert_int_equal(rp->placed_on_id, OTHER_HOST);
	assert_string_equal(rp->placement, "VM pl1 placed on host-119 by the cluster");
	vc_done(rp);
	assert_nothing_started("pl1");
}

/* A refusal that is no placement stays an error with no placement in the reply. */
static void test_refused_not_placed(void **unused)
{
	fk_answer((struct vc_answer){.code = KB_ESTATE,
				     .error = "VM pl1 is owned by host esx2 (epoch 3)",
				     .owner = OTHER_HOST,
				     .owner_name = "esx2"});
	Keel__Vmk__VmkReply *rp = vc_vm_power_on("pl1", false);
	assert_int_equal(rp->code, KB_ESTATE);
	assert_has(rp->error, "VM pl1 is owned by host esx2");
	assert_string_equal(rp->placed_on, "");
	assert_int_equal(rp->placed_on_id, 0);
	assert_string_equal(rp->placement, "");
	vc_done(rp);
	assert_nothing_started("pl1");
}

static int setup(void **unused)
{
	if (vc_vmk_setup("vmkpl") < 0 || vc_vmk.host_id == OTHER_HOST)
		return -1;
	vc_fake_reset(&(struct vc_answer){.member = true,
					  .owner = vc_vmk.host_id,
					  .epoch = 1,
					  .host_id = vc_vmk.host_id,
					  .owner_name = "esx1"});
	return vc_fake_start(vc_vmk.cl_sock);
}

static int teardown(void **unused)
{
	vc_vmk_teardown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_placed_succeeds),
	    cmocka_unit_test(test_placed_reconcile_refused),
	    cmocka_unit_test(test_placed_without_words),
	    cmocka_unit_test(test_refused_not_placed),
	};
	return cmocka_run_group_tests_name("vmk_placed", tests, setup, teardown);
}
