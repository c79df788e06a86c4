/*
 * Command handlers. Each one checks everything first and changes the state only at the
 * end, so a refused command leaves no trace; the handlers never read a clock or a random
 * source, so every host that applies the same log reaches the same state.
 *
 * The owner rule: a VM's (owner, epoch) changes only through VmChangeOwner and only to a
 * strictly higher epoch and an existing host that has not left. Nothing else touches
 * either field after registration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/apply.h"
#include "clusterd/codec.h"
#include "lib/heap.h"

#define HOST_LEFT KEEL__CLUSTER__HOST_STATE__HOST_LEFT
#define FT_NONE	  KEEL__CLUSTER__FT_ROLE__FT_NONE

static const struct cd_vm *vm_by_path(const struct cd_state *s, const char *path)
{
	for (unsigned i = 0; i < s->n_vms; i++)
		if (strcmp(s->vms[i].vmx_path, path) == 0)
			return &s->vms[i];
	return NULL;
}

static const struct cd_host *host_by_vmk0(const struct cd_state *s, const char *addr)
{
	for (unsigned i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i].vmk0, addr) == 0)
			return &s->hosts[i];
	return NULL;
}

static bool op_uses_host(const struct cd_state *s, uint64_t id)
{
	for (unsigned i = 0; i < s->n_ops; i++)
		if (s->ops[i].source == id || s->ops[i].destination == id)
			return true;
	return false;
}

static const struct cd_vm *ft_partner_of(const struct cd_state *s, const char *uuid)
{
	for (unsigned i = 0; i < s->n_vms; i++)
		if (s->vms[i].ft_role != FT_NONE && strcmp(s->vms[i].ft_peer, uuid) == 0)
			return &s->vms[i];
	return NULL;
}

/* The host a VM or operation may name: exists and has not left. */
static int live_host(const struct cd_state *s, uint64_t id, const char *what, struct kb_errmsg *e)
{
	const struct cd_host *h = cd_state_host(s, id);

	if (h == NULL) {
		kb_errmsg_setf(e, "%s host %llu does not exist", what, (unsigned long long)id);
		return KB_ENOTFOUND;
	}
	if (h->state == HOST_LEFT) {
		kb_errmsg_setf(e, "%s host %llu has left the cluster", what,
			       (unsigned long long)id);
		return KB_ESTATE;
	}
	return 0;
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

static int set_config(struct cd_state *s, const Keel__Cluster__SetConfig *c, struct kb_errmsg *e)
{
	struct cd_config cfg;
	int rv;

	if ((rv = cd__config_from_pb(c->config, &cfg, e)))
		return rv;
	if (s->config.set && strcmp(s->config.cluster_id, cfg.cluster_id) != 0) {
		kb_errmsg_setf(e, "the cluster id cannot change (%s)", s->config.cluster_id);
		return KB_ESTATE;
	}
	s->config = cfg;
	return 0;
}

static int host_add(struct cd_state *s, const Keel__Cluster__HostAdd *c, struct kb_errmsg *e)
{
	struct cd_host h;
	int rv;

	if ((rv = cd__host_from_pb(c->host, &h, e)))
		return rv;
	if (cd_state_host(s, h.id)) {
		kb_errmsg_setf(e, "host %llu already exists", (unsigned long long)h.id);
		return KB_EEXIST;
	}
	if (cd_state_host_by_name(s, h.name)) {
		kb_errmsg_setf(e, "a host named %s already exists", h.name);
		return KB_EEXIST;
	}
	if (host_by_vmk0(s, h.vmk0)) {
		kb_errmsg_setf(e, "a host with vmk0 %s already exists", h.vmk0);
		return KB_EEXIST;
	}
	if (s->n_hosts >= CD_HOSTS_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d hosts", CD_HOSTS_MAX);
		return KB_ETOOBIG;
	}
	if (cd__state_reserve(s, 1, 0, 0))
		return -ENOMEM;
	cd__state_host_insert(s, &h);
	return 0;
}

static int host_update(struct cd_state *s, const Keel__Cluster__HostUpdate *c, struct kb_errmsg *e)
{
	struct cd_host *h = cd__state_host_mut(s, c->id);
	int rv;

	if (h == NULL) {
		kb_errmsg_setf(e, "host %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	if ((rv = cd__host_state_check(c->state, e)))
		return rv;
	if (c->role < KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_UNSPECIFIED ||
	    c->role > KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE) {
		kb_errmsg_setf(e, "raft role %d is not valid", c->role);
		return -EINVAL;
	}
	if (h->state == HOST_LEFT) {
		kb_errmsg_setf(e, "host %llu has left the cluster", (unsigned long long)c->id);
		return KB_ESTATE;
	}
	if (h->state != (int)c->state)
		h->last_change_ms = c->at_ms;
	h->state = c->state;
	if (c->role != KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_UNSPECIFIED)
		h->role = c->role;
	return 0;
}

static int host_remove(struct cd_state *s, const Keel__Cluster__HostRemove *c, struct kb_errmsg *e)
{
	unsigned owned;

	if (cd_state_host(s, c->id) == NULL) {
		kb_errmsg_setf(e, "host %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	owned = cd_state_n_vms_owned(s, c->id);
	if (owned > 0) {
		kb_errmsg_setf(e, "host %llu still owns %u VMs", (unsigned long long)c->id, owned);
		return KB_ESTATE;
	}
	if (op_uses_host(s, c->id)) {
		kb_errmsg_setf(e, "host %llu takes part in an operation in flight",
			       (unsigned long long)c->id);
		return KB_ESTATE;
	}
	cd__state_host_remove(s, c->id);
	return 0;
}

static int vm_register(struct cd_state *s, const Keel__Cluster__VmRegister *c, struct kb_errmsg *e)
{
	struct cd_vm vm;
	int rv;

	if ((rv = cd__vm_from_pb(c->vm, &vm, e)))
		return rv;
	if (vm.ft_role != FT_NONE) {
		kb_errmsg_setf(e, "a VM is registered without FT; pair it with VmSetFt");
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
	if ((rv = live_host(s, vm.owner, "owner", e)))
		return rv;
	if (s->n_vms >= CD_VMS_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d VMs", CD_VMS_MAX);
		return KB_ETOOBIG;
	}
	if (cd__state_reserve(s, 0, 1, 0))
		return -ENOMEM;
	cd__state_vm_insert(s, &vm);
	return 0;
}

static int vm_unregister(struct cd_state *s, const Keel__Cluster__VmUnregister *c,
			 struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);

	if (vm == NULL)
		return vm_err(c->uuid);
	if (cd_state_op_for_vm(s, vm->uuid)) {
		kb_errmsg_setf(e, "VM %s has an operation in flight", vm->uuid);
		return KB_ESTATE;
	}
	if (vm->ft_role != FT_NONE || ft_partner_of(s, vm->uuid)) {
		kb_errmsg_setf(e, "VM %s is part of an FT pair", vm->uuid);
		return KB_ESTATE;
	}
	cd__state_vm_remove(s, c->uuid);
	return 0;
}

static int vm_set_power(struct cd_state *s, const Keel__Cluster__VmSetPower *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = cd__power_check(c->desired, e)))
		return rv;
	vm->desired_power = c->desired;
	return 0;
}

static int vm_set_ha(struct cd_state *s, const Keel__Cluster__VmSetHa *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e), tmp;
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	tmp = *vm;
	if ((rv = cd__ha_from_pb(c->ha, vm->uuid, &tmp, e)))
		return rv;
	*vm = tmp;
	return 0;
}

static int vm_set_ft(struct cd_state *s, const Keel__Cluster__VmSetFt *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = cd__ft_role_check(c->role, e)))
		return rv;
	if (c->role == FT_NONE) {
		if (c->peer != NULL && c->peer[0] != '\0') {
			kb_errmsg_setf(e, "FT peer set without an FT role");
			return -EINVAL;
		}
		vm->ft_role = FT_NONE;
		vm->ft_peer[0] = '\0';
		return 0;
	}
	if ((rv = cd__check_uuid(c->peer, "FT peer", e)))
		return rv;
	if (strcmp(c->peer, vm->uuid) == 0) {
		kb_errmsg_setf(e, "a VM cannot be its own FT peer");
		return -EINVAL;
	}
	if (cd_state_vm(s, c->peer) == NULL) {
		kb_errmsg_setf(e, "FT peer %s is not registered", c->peer);
		return KB_ENOTFOUND;
	}
	vm->ft_role = c->role;
	strcpy(vm->ft_peer, c->peer);
	return 0;
}

static int vm_change_owner(struct cd_state *s, const Keel__Cluster__VmChangeOwner *c,
			   struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = live_host(s, c->new_owner, "new owner", e)))
		return rv;
	if (c->new_epoch <= vm->epoch) {
		kb_errmsg_setf(e, "VM %s: epoch %llu is not above the current epoch %llu", vm->uuid,
			       (unsigned long long)c->new_epoch, (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	vm->owner = c->new_owner;
	vm->epoch = c->new_epoch;
	return 0;
}

static int op_begin(struct cd_state *s, const Keel__Cluster__OpBegin *c, struct kb_errmsg *e)
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
	if ((rv = live_host(s, op.destination, "destination", e)))
		return rv;
	if (op.source != 0 && cd_state_host(s, op.source) == NULL) {
		kb_errmsg_setf(e, "source host %llu does not exist", (unsigned long long)op.source);
		return KB_ENOTFOUND;
	}
	if (s->n_ops >= CD_OPS_MAX) {
		kb_errmsg_setf(e, "%d operations are already in flight", CD_OPS_MAX);
		return KB_ETOOBIG;
	}
	if (cd__state_reserve(s, 0, 0, 1))
		return -ENOMEM;
	cd__state_op_insert(s, &op);
	return 0;
}

static int op_advance(struct cd_state *s, const Keel__Cluster__OpAdvance *c, struct kb_errmsg *e)
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

static int op_end(struct cd_state *s, const Keel__Cluster__OpEnd *c, struct kb_errmsg *e)
{
	if (cd_state_op(s, c->id) == NULL) {
		kb_errmsg_setf(e, "operation %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	cd__state_op_remove(s, c->id);
	return 0;
}

int cd__command_apply(struct cd_state *s, const Keel__Cluster__Command *c, struct kb_errmsg *e)
{
	int rv;

	switch (c->cmd_case) {
	case KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG:
		rv = set_config(s, c->set_config, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_ADD:
		rv = host_add(s, c->host_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_UPDATE:
		rv = host_update(s, c->host_update, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE:
		rv = host_remove(s, c->host_remove, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER:
		rv = vm_register(s, c->vm_register, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_UNREGISTER:
		rv = vm_unregister(s, c->vm_unregister, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER:
		rv = vm_set_power(s, c->vm_set_power, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA:
		rv = vm_set_ha(s, c->vm_set_ha, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_FT:
		rv = vm_set_ft(s, c->vm_set_ft, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER:
		rv = vm_change_owner(s, c->vm_change_owner, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN:
		rv = op_begin(s, c->op_begin, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_ADVANCE:
		rv = op_advance(s, c->op_advance, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_END:
		rv = op_end(s, c->op_end, e);
		break;
	default:
		kb_errmsg_setf(e, "empty or unknown command");
		rv = -EINVAL;
		break;
	}
	if (rv == 0)
		s->applied++;
	return rv;
}

void cd__command_inserts(const Keel__Cluster__Command *c, unsigned *hosts, unsigned *vms,
			 unsigned *ops)
{
	*hosts += c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
	*vms += c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
	*ops += c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN;
}

static int cmp_path(const void *a, const void *b)
{
	const struct cd_vm *const *x = a, *const *y = b;

	return strcmp((*x)->vmx_path, (*y)->vmx_path);
}

/* Unique .vmx paths, by sorting: O(n log n) for the largest states. */
static int check_paths(const struct cd_state *s, struct kb_errmsg *e)
{
	const struct cd_vm **v;
	int rv = 0;

	if (s->n_vms < 2)
		return 0;
	v = kb_calloc(s->n_vms, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < s->n_vms; i++)
		v[i] = &s->vms[i];
	qsort(v, s->n_vms, sizeof(*v), cmp_path);
	for (unsigned i = 1; i < s->n_vms && rv == 0; i++) {
		if (strcmp(v[i]->vmx_path, v[i - 1]->vmx_path) == 0) {
			kb_errmsg_setf(e, "VM %s: path shared with another VM", v[i]->uuid);
			rv = KB_EPROTO;
		}
	}
	kb_free(v);
	return rv;
}

int cd__state_check(const struct cd_state *s, struct kb_errmsg *e)
{
	int rv;

	if (s->n_hosts > CD_HOSTS_MAX || s->n_vms > CD_VMS_MAX || s->n_ops > CD_OPS_MAX) {
		kb_errmsg_setf(e, "state exceeds the host, VM or operation limits");
		return KB_EPROTO;
	}
	for (unsigned i = 0; i < s->n_hosts; i++) {
		const struct cd_host *h = &s->hosts[i];

		if (i > 0 && h->id <= s->hosts[i - 1].id) {
			kb_errmsg_setf(e, "host %llu duplicated or out of order",
				       (unsigned long long)h->id);
			return KB_EPROTO;
		}
		if (cd_state_host_by_name(s, h->name) != h || host_by_vmk0(s, h->vmk0) != h) {
			kb_errmsg_setf(e, "host %llu: name or vmk0 shared with another host",
				       (unsigned long long)h->id);
			return KB_EPROTO;
		}
	}
	for (unsigned i = 0; i < s->n_vms; i++) {
		const struct cd_vm *vm = &s->vms[i];

		if (i > 0 && strcmp(vm->uuid, s->vms[i - 1].uuid) <= 0) {
			kb_errmsg_setf(e, "VM %s duplicated or out of order", vm->uuid);
			return KB_EPROTO;
		}
		if (cd_state_host(s, vm->owner) == NULL) {
			kb_errmsg_setf(e, "VM %s: owner %llu does not exist", vm->uuid,
				       (unsigned long long)vm->owner);
			return KB_EPROTO;
		}
		if (vm->ft_role != FT_NONE &&
		    (strcmp(vm->ft_peer, vm->uuid) == 0 || cd_state_vm(s, vm->ft_peer) == NULL)) {
			kb_errmsg_setf(e, "VM %s: FT peer %s does not exist", vm->uuid,
				       vm->ft_peer);
			return KB_EPROTO;
		}
	}
	if ((rv = check_paths(s, e)))
		return rv;
	for (unsigned i = 0; i < s->n_ops; i++) {
		const struct cd_op *op = &s->ops[i];

		if (i > 0 && op->id <= s->ops[i - 1].id) {
			kb_errmsg_setf(e, "operation %llu duplicated or out of order",
				       (unsigned long long)op->id);
			return KB_EPROTO;
		}
		if (cd_state_vm(s, op->vm) == NULL || cd_state_op_for_vm(s, op->vm) != op) {
			kb_errmsg_setf(e, "operation %llu: VM %s missing or busy twice",
				       (unsigned long long)op->id, op->vm);
			return KB_EPROTO;
		}
		if (cd_state_host(s, op->destination) == NULL ||
		    (op->source != 0 && cd_state_host(s, op->source) == NULL)) {
			kb_errmsg_setf(e, "operation %llu: a host does not exist",
				       (unsigned long long)op->id);
			return KB_EPROTO;
		}
	}
	return 0;
}
