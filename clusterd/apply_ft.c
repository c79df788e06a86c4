/*
 * The FT command (VmSetFt) and what other commands do to a VM's FT (docs/ft.md, "The
 * cluster's part"). A VM's FT is one record on the VM: its state, the secondary's host and
 * a generation that grows with every change, so a request made on a stale view (the
 * pairing of an earlier secondary, a takeover after the primary was told to go on alone)
 * is refused instead of undoing a later decision.
 */
#include <errno.h>
#include <string.h>

#include "clusterd/apply_int.h"
#include "clusterd/codec.h"

#define FT_OFF	  KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define FT_NEEDS  KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define FT_START  KEEL__CLUSTER__FT_STATE__FT_STARTING
#define FT_PROT	  KEEL__CLUSTER__FT_STATE__FT_PROTECTED

const char *cd_ft_state_word(int state)
{
	switch (state) {
	case FT_NEEDS:
		return "needs secondary";
	case FT_START:
		return "starting";
	case FT_PROT:
		return "protected";
	default:
		return "not protected";
	}
}

/* The event text: the command's reason, or what changed. */
static void ft_event(struct cd_state *s, const struct cd_vm *vm, uint64_t at_ms,
		     const char *reason)
{
	if (reason && reason[0])
		cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_FT, at_ms, vm->owner,
				    vm->uuid, "%s", reason);
	else if (vm->ft.secondary)
		cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_FT, at_ms, vm->owner,
				    vm->uuid, "FT: VM %s %s, secondary on %s", vm->name,
				    cd_ft_state_word(vm->ft.state),
				    cd__apply_host_name(s, vm->ft.secondary));
	else
		cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_FT, at_ms, vm->owner,
				    vm->uuid, "FT: VM %s %s", vm->name,
				    cd_ft_state_word(vm->ft.state));
}

/* A printable reason, or NULL: the event keeps at most CD_EVENT_MSG_MAX bytes of it. */
static int check_reason(const char *r, struct kb_errmsg *e)
{
	for (const unsigned char *p = (const unsigned char *)r; p && *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			kb_errmsg_setf(e, "an FT reason holds a control character");
			return -EINVAL;
		}
	return 0;
}

int cd__apply_vm_set_ft(struct cd_state *s, const Keel__Cluster__VmSetFt *c, struct kb_errmsg *e)
{
	struct cd_vm *vm;
	uint64_t at = c->at_ms ? c->at_ms : cd__state_last_event_ms(s);
	int rv;

	if ((rv = cd__check_uuid(c->uuid, "VM uuid", e)))
		return rv;
	vm = cd__state_vm_mut(s, c->uuid);
	if (vm == NULL) {
		kb_errmsg_setf(e, "VM %s is not registered", c->uuid);
		return KB_ENOTFOUND;
	}
	if ((rv = cd__ft_state_check(c->state, e)) || (rv = check_reason(c->reason, e)))
		return rv;
	if (c->expect_generation != vm->ft.generation) {
		kb_errmsg_setf(e, "VM %s: FT changed meanwhile (generation %llu, not %llu)",
			       vm->uuid, (unsigned long long)vm->ft.generation,
			       (unsigned long long)c->expect_generation);
		return KB_ESTATE;
	}
	if (c->preferred && (rv = cd__apply_live_host(s, c->preferred, "FT secondary", e)))
		return rv;
	switch ((int)c->state) {
	case FT_OFF:
	case FT_NEEDS:
		if (c->secondary) {
			kb_errmsg_setf(e, "VM %s: no secondary in FT state %s", vm->uuid,
				       cd_ft_state_word(c->state));
			return -EINVAL;
		}
		if (c->new_epoch) {
			if (vm->ft.state != FT_PROT || c->state != FT_NEEDS) {
				kb_errmsg_setf(e, "VM %s: a failover needs a protected VM (it is %s)",
					       vm->uuid, cd_ft_state_word(vm->ft.state));
				return KB_ESTATE;
			}
			if (c->new_epoch <= vm->epoch) {
				kb_errmsg_setf(e, "VM %s: epoch %llu is not above the current epoch "
						  "%llu",
					       vm->uuid, (unsigned long long)c->new_epoch,
					       (unsigned long long)vm->epoch);
				return KB_ESTATE;
			}
			if ((rv = cd__apply_live_host(s, vm->ft.secondary, "new owner", e)))
				return rv;
		}
		break;
	case FT_START:
		if (c->secondary == 0) {
			kb_errmsg_setf(e, "VM %s: a secondary's host is required", vm->uuid);
			return -EINVAL;
		}
		if (vm->ft.state != FT_NEEDS || c->new_epoch) {
			kb_errmsg_setf(e, "VM %s: a secondary is chosen only when one is needed (FT is "
					  "%s)",
				       vm->uuid, cd_ft_state_word(vm->ft.state));
			return KB_ESTATE;
		}
		if ((rv = cd__apply_live_host(s, c->secondary, "FT secondary", e)))
			return rv;
		if (c->secondary == vm->owner) {
			kb_errmsg_setf(e, "VM %s: the secondary must be on another host than the "
					  "primary",
				       vm->uuid);
			return -EINVAL;
		}
		break;
	case FT_PROT:
		if (c->test_failover && vm->ft.state == FT_PROT && c->secondary == vm->ft.secondary &&
		    !c->new_epoch)
			break;
		if (c->test_failover || vm->ft.state != FT_START || c->secondary != vm->ft.secondary ||
		    c->new_epoch) {
			kb_errmsg_setf(e, "VM %s: protected only from starting with the same "
					  "secondary (FT is %s)",
				       vm->uuid, cd_ft_state_word(vm->ft.state));
			return KB_ESTATE;
		}
		break;
	default:
		break;
	}
	/* Checked: apply. */
	if (c->new_epoch) {
		uint64_t old_owner = vm->owner;
		const struct cd_op *op = cd_state_op_for_vm(s, vm->uuid);

		vm->owner = vm->ft.secondary;
		vm->epoch = c->new_epoch;
		vm->last_moved_ms = at;
		vm->ft.failovers++;
		vm->ft.failover_epoch = c->new_epoch;
		cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, at, vm->owner,
				    vm->uuid, "VM %s: owner %s -> %s, epoch %llu (FT failover)",
				    vm->name, cd__apply_host_name(s, old_owner),
				    cd__apply_host_name(s, vm->owner),
				    (unsigned long long)vm->epoch);
		if (op)
			cd__state_op_remove(s, op->id);
	}
	if (vm->ft.state != (int)c->state || c->test_failover)
		vm->ft.since_ms = at;
	vm->ft.state = c->state;
	vm->ft.secondary = c->secondary;
	vm->ft.preferred = c->state == FT_OFF ? 0 : c->preferred;
	vm->ft.test_failover = c->test_failover;
	vm->ft.generation++;
	ft_event(s, vm, at, c->reason);
	return 0;
}

void cd__apply_ft_unpair(struct cd_state *s, struct cd_vm *vm, const char *why)
{
	if (!CD_FT_PAIRED(vm))
		return;
	vm->ft.state = FT_NEEDS;
	vm->ft.secondary = 0;
	vm->ft.test_failover = false;
	vm->ft.generation++;
	vm->ft.since_ms = cd__state_last_event_ms(s);
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_FT, vm->ft.since_ms, vm->owner,
			    vm->uuid, "FT: VM %s needs a new secondary (%s)", vm->name, why);
}

void cd__apply_ft_host_gone(struct cd_state *s, uint64_t host)
{
	for (unsigned i = 0; i < s->n_vms; i++) {
		struct cd_vm *vm = &s->vms[i];

		if (vm->ft.secondary == host)
			cd__apply_ft_unpair(s, vm, "its secondary's host was removed");
		if (vm->ft.preferred == host)
			vm->ft.preferred = 0;
	}
}
