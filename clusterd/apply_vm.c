/*
 * The VM and operation commands: VmRegister, VmUnregister, VmSetPower, VmSetHa, VmSetFt,
 * VmChangeOwner (the owner rule, and a migration's switchover), OpBegin, OpAdvance and
 * OpEnd. The rules every handler keeps are in apply.c's header.
 *
 * Failure modes: a refusal with e saying why and the state unchanged (the codes are in
 * apply.h); -ENOMEM only when the caller did not reserve room for the VM or operation.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clusterd/apply_int.h"
#include "clusterd/codec.h"

static const struct cd_vm *vm_by_path(const struct cd_state *s, const char *path)
{
	for (unsigned i = 0; i < s->n_vms; i++)
		if (strcmp(s->vms[i].vmx_path, path) == 0)
			return &s->vms[i];
	return NULL;
}

static struct cd_vm *find_vm(struct cd_state *s, const char *uuid, struct kb_errmsg *e)
{
	struct cd_vm *vm;

	if (cd__check_uuid(uuid, "VM uuid", e))
		return NULL;
	vm = cd__state_vm_mut(s, uuid);
	if (vm == NULL)
		kb_errmsg_setf(e, "VM %s is not registered", uuid);
	return vm;
}

/* find_vm's error code: -EINVAL for a malformed uuid, else KB_ENOTFOUND. */
static int vm_err(const char *uuid)
{
	struct kb_errmsg scratch;

	return cd__check_uuid(uuid, "", &scratch) ? -EINVAL : KB_ENOTFOUND;
}

int cd__apply_vm_register(struct cd_state *s, const Keel__Cluster__VmRegister *c,
			  struct kb_errmsg *e)
{
	struct cd_vm vm;
	int rv;

	if ((rv = cd__vm_from_pb(c->vm, &vm, e)))
		return rv;
	if (CD_FT_ON(&vm) || vm.ft.generation) {
		kb_errmsg_setf(e, "a VM is registered without FT; turn it on with VmSetFt");
		return -EINVAL;
	}
	if (cd_state_vm(s, vm.uuid)) {
		kb_errmsg_setf(e, "VM %s is already registered", vm.uuid);
		return KB_EEXIST;
	}
	if (vm_by_path(s, vm.vmx_path)) {
		kb_errmsg_setf(e, "a VM with path %s is already registered", vm.vmx_path);
		return KB_EEXIST;
	}
	if ((rv = cd__apply_live_host(s, vm.owner, "owner", e)))
		return rv;
	if (s->n_vms >= CD_VMS_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d VMs", CD_VMS_MAX);
		return KB_ETOOBIG;
	}
	if (cd__state_reserve(s, 0, 1, 0))
		return -ENOMEM;
	cd__state_vm_insert(s, &vm);
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, cd__state_last_event_ms(s),
			    vm.owner, vm.uuid, "VM %s registered on host %s, epoch %llu", vm.name,
			    cd__apply_host_name(s, vm.owner), (unsigned long long)vm.epoch);
	return 0;
}

int cd__apply_vm_unregister(struct cd_state *s, const Keel__Cluster__VmUnregister *c,
			    struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e), old;

	if (vm == NULL)
		return vm_err(c->uuid);
	if (cd_state_op_for_vm(s, vm->uuid)) {
		kb_errmsg_setf(e, "VM %s has an operation in flight", vm->uuid);
		return KB_ESTATE;
	}
	old = *vm;
	cd__state_vm_remove(s, c->uuid);
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, cd__state_last_event_ms(s),
			    old.owner, old.uuid, "VM %s unregistered from host %s", old.name,
			    cd__apply_host_name(s, old.owner));
	cd__apply_rules_drop(s, old.uuid, 0);
	return 0;
}

int cd__apply_vm_set_power(struct cd_state *s, const Keel__Cluster__VmSetPower *c,
			   struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = cd__power_check(c->desired, e)))
		return rv;
	if (c->mem_mib > CD_VM_MEM_MAX || c->cpu_mhz > CD_VM_CPU_MAX) {
		kb_errmsg_setf(e, "VM %s: %llu MiB / %u MHz is out of range", vm->uuid,
			       (unsigned long long)c->mem_mib, c->cpu_mhz);
		return -EINVAL;
	}
	vm->desired_power = c->desired;
	if (c->desired != KEEL__CLUSTER__POWER_STATE__POWER_ON)
		cd__apply_ft_unpair(s, vm, "it is no longer wanted on");
	if (c->mem_mib) {
		vm->mem_mib = c->mem_mib;
		vm->cpu_mhz = c->cpu_mhz;
	}
	return 0;
}

static const char *priority_word(int p)
{
	switch (p) {
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED:
		return "disabled";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOWEST:
		return "lowest";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW:
		return "low";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH:
		return "high";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST:
		return "highest";
	default:
		return "medium";
	}
}

/* Every restart-after VM must exist, once; then "VM X: restart priority P, restart after
 * A, B" (names; the list is cut at the event's size). */
int cd__apply_vm_set_ha(struct cd_state *s, const Keel__Cluster__VmSetHa *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e), tmp;
	char after[CD_EVENT_MSG_MAX + 1] = "";
	size_t off = 0;
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	tmp = *vm;
	if ((rv = cd__ha_from_pb(c->ha, vm->uuid, &tmp, e)))
		return rv;
	for (unsigned i = 0; i < tmp.n_restart_after; i++) {
		const struct cd_vm *dep = cd_state_vm(s, tmp.restart_after[i]);

		if (dep == NULL) {
			kb_errmsg_setf(e, "VM %s: restart-after VM %s is not registered", vm->uuid,
				       tmp.restart_after[i]);
			return KB_ENOTFOUND;
		}
		for (unsigned j = 0; j < i; j++)
			if (strcmp(tmp.restart_after[j], tmp.restart_after[i]) == 0) {
				kb_errmsg_setf(e, "VM %s: restart-after VM %s is listed twice",
					       vm->uuid, dep->name);
				return -EINVAL;
			}
		if (off < sizeof(after))
			off += (size_t)snprintf(after + off, sizeof(after) - off, "%s%s",
						i ? ", " : ", restart after ", dep->name);
	}
	*vm = tmp;
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM,
			    c->at_ms ? c->at_ms : cd__state_last_event_ms(s), vm->owner, vm->uuid,
			    "VM %s: restart priority %s%s", vm->name, priority_word(vm->priority),
			    after);
	return 0;
}

/* A migration's switchover (c->op set): the operation must be the VM's migration from its
 * owner at its epoch to the new owner at the next epoch. */
static int check_switchover(const struct cd_state *s, const struct cd_vm *vm,
			    const Keel__Cluster__VmChangeOwner *c, struct kb_errmsg *e)
{
	const struct cd_op *op = cd_state_op(s, c->op);

	if (op == NULL) {
		kb_errmsg_setf(e, "VM %s: migration %llu is not in flight (ended or aborted)",
			       vm->uuid, (unsigned long long)c->op);
		return KB_ENOTFOUND;
	}
	if (op->kind != KEEL__CLUSTER__OP_KIND__OP_MIGRATE || strcmp(op->vm, vm->uuid) != 0 ||
	    op->destination != c->new_owner) {
		kb_errmsg_setf(e, "operation %llu is not the migration of VM %s to host %llu",
			       (unsigned long long)c->op, vm->uuid,
			       (unsigned long long)c->new_owner);
		return KB_ESTATE;
	}
	if (op->source != vm->owner || op->epoch != vm->epoch || c->new_epoch != vm->epoch + 1) {
		kb_errmsg_setf(e,
			       "VM %s: migration %llu started from host %llu at epoch %llu, the VM "
			       "is now on host %llu at epoch %llu",
			       vm->uuid, (unsigned long long)c->op, (unsigned long long)op->source,
			       (unsigned long long)op->epoch, (unsigned long long)vm->owner,
			       (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	return 0;
}

int cd__apply_vm_change_owner(struct cd_state *s, const Keel__Cluster__VmChangeOwner *c,
			      struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	const struct cd_op *op;
	uint64_t old_owner;
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = cd__apply_live_host(s, c->new_owner, "new owner", e)))
		return rv;
	if (c->new_epoch <= vm->epoch) {
		kb_errmsg_setf(e, "VM %s: epoch %llu is not above the current epoch %llu", vm->uuid,
			       (unsigned long long)c->new_epoch, (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	if (c->op && (rv = check_switchover(s, vm, c, e)))
		return rv;
	old_owner = vm->owner;
	if (c->new_owner != old_owner) {
		/* The command carries no time: its event's, or its migration's start if later. */
		const struct cd_op *mig = c->op ? cd_state_op(s, c->op) : NULL;
		uint64_t at = cd__state_last_event_ms(s);

		if (mig && mig->started_at_ms > at)
			at = mig->started_at_ms;
		vm->last_moved_ms = at;
	}
	vm->owner = c->new_owner;
	vm->epoch = c->new_epoch;
	/* Host names, not ids: two names and the VM's fit the message limit. */
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, cd__state_last_event_ms(s),
			    vm->owner, vm->uuid, "VM %s: owner %s -> %s, epoch %llu%s", vm->name,
			    cd__apply_host_name(s, old_owner), cd__apply_host_name(s, vm->owner),
			    (unsigned long long)vm->epoch, c->op ? " (migrated)" : "");
	cd__apply_ft_unpair(s, vm, "its owner changed");
	op = cd_state_op_for_vm(s, vm->uuid);
	if (op) {
		uint64_t id = op->id;

		if (!c->op && op->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE)
			cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION,
					    cd__state_last_event_ms(s), op->source, vm->uuid,
					    "migration of VM %s to %s ended: the VM changed owner",
					    vm->name, cd__apply_host_name(s, op->destination));
		cd__state_op_remove(s, id);
	}
	return 0;
}

int cd__apply_op_begin(struct cd_state *s, const Keel__Cluster__OpBegin *c, struct kb_errmsg *e)
{
	const struct cd_vm *vm;
	struct cd_op op;
	int rv;

	if ((rv = cd__op_from_pb(c->op, &op, e)))
		return rv;
	if (cd_state_op(s, op.id)) {
		kb_errmsg_setf(e, "operation %llu already exists", (unsigned long long)op.id);
		return KB_EEXIST;
	}
	vm = cd_state_vm(s, op.vm);
	if (vm == NULL) {
		kb_errmsg_setf(e, "VM %s is not registered", op.vm);
		return KB_ENOTFOUND;
	}
	if (cd_state_op_for_vm(s, op.vm)) {
		kb_errmsg_setf(e, "VM %s already has an operation in flight", op.vm);
		return KB_ESTATE;
	}
	if (op.epoch != vm->epoch) {
		kb_errmsg_setf(e, "operation epoch %llu is not the VM's epoch %llu",
			       (unsigned long long)op.epoch, (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	if ((rv = cd__apply_live_host(s, op.destination, "destination", e)))
		return rv;
	if (op.source != 0 && cd_state_host(s, op.source) == NULL) {
		kb_errmsg_setf(e, "source host %llu does not exist", (unsigned long long)op.source);
		return KB_ENOTFOUND;
	}
	if (s->n_ops >= CD_OPS_MAX) {
		kb_errmsg_setf(e, "%d operations are already in flight", CD_OPS_MAX);
		return KB_ETOOBIG;
	}
	if (op.kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE &&
	    (op.source != vm->owner || op.destination == vm->owner)) {
		kb_errmsg_setf(e, "a migration of VM %s must go from its owner to another host",
			       vm->name);
		return -EINVAL;
	}
	if (cd__state_reserve(s, 0, 0, 1))
		return -ENOMEM;
	cd__state_op_insert(s, &op);
	if (op.kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE)
		cd__apply_add_event(
		    s, KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION, cd__state_last_event_ms(s),
		    op.source, vm->uuid, "migration of VM %s from %s to %s began", vm->name,
		    cd__apply_host_name(s, op.source), cd__apply_host_name(s, op.destination));
	return 0;
}

int cd__apply_op_advance(struct cd_state *s, const Keel__Cluster__OpAdvance *c, struct kb_errmsg *e)
{
	struct cd_op *op = cd__state_op_mut(s, c->id);

	if (op == NULL) {
		kb_errmsg_setf(e, "operation %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	if (c->phase <= op->phase) {
		kb_errmsg_setf(e, "operation %llu: phase %u is not above the current phase %u",
			       (unsigned long long)c->id, c->phase, op->phase);
		return KB_ESTATE;
	}
	op->phase = c->phase;
	return 0;
}

#define OP_REASON_MAX 160 /* bytes of an OpEnd reason: it goes into an event */

int cd__apply_op_end(struct cd_state *s, const Keel__Cluster__OpEnd *c, struct kb_errmsg *e)
{
	const struct cd_op *op = cd_state_op(s, c->id);
	const struct cd_vm *vm;

	if (op == NULL) {
		kb_errmsg_setf(e, "operation %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	if (c->reason && strlen(c->reason) > OP_REASON_MAX) {
		kb_errmsg_setf(e, "operation %llu: the reason is over %d bytes",
			       (unsigned long long)c->id, OP_REASON_MAX);
		return -EINVAL;
	}
	for (const char *r = c->reason; r && *r; r++) {
		if (*r < 0x20 || *r > 0x7e) {
			kb_errmsg_setf(e, "operation %llu: the reason is not printable ASCII",
				       (unsigned long long)c->id);
			return -EINVAL;
		}
	}
	vm = cd_state_vm(s, op->vm);
	if (op->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE && vm)
		cd__apply_add_event(
		    s, KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION, cd__state_last_event_ms(s),
		    op->source, op->vm, "migration of VM %s to %s ended%s%s", vm->name,
		    cd__apply_host_name(s, op->destination), c->reason && c->reason[0] ? ": " : "",
		    c->reason ? c->reason : "");
	cd__state_op_remove(s, c->id);
	return 0;
}
