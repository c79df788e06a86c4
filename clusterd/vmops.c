/*
 * VMs through the cluster (docs/clusterd.md, "VMs through the cluster"): the leader's
 * answer to a host's ClusterVmRequest. vmkernel asks its clusterd before a power-on and
 * after a create, register, unregister, destroy, power-off or suspend; clusterd answers
 * here when it leads, and forwards over the join port (STEP_VM) when it follows.
 *
 * Rules (the requesting host is `host`, authenticated by its certificate when forwarded):
 *   REGISTER     not registered: VmRegister (owner host, epoch 1, desired off, restart
 *                priority medium); registered to host: no change (also when another
 *                registration by host, its reconciler's, commits while this one waits);
 *                to another: refused
 *   UNREGISTER   absent: no change; owned by another host: refused; else VmUnregister
 *   POWER_ON     must be registered and owned by host; VmSetPower(on) unless already;
 *                wanted_only (the reconciler's): refused (KB_ESTATE) unless desired on;
 *                a powered-off VM is placed first (below): elsewhere, it is given to that
 *                host as PLACE does, and the answer (after the commit) is KB_ESTATE "VM a
 *                placed on host3 by DRS (...): host3 powers it on", with the new owner and
 *                `placed`, so the asking vmkernel does not start it
 *   PLACE        (any member, before an operator's power-on; docs/drs.md, "Initial
 *                placement") a powered-off VM: its host is the destination when one is
 *                named (rules and capacity checked: ha_place_on), else with DRS partially
 *                or fully automated ha_place's choice, else (manual) its owner, refused
 *                only when that breaks a must rule, with ha_place's choice as a
 *                recommendation in the answer. A host that is not the owner, or a named
 *                one: EventAdd("VM a placed on host3 by DRS (...)"), VmChangeOwner(host,
 *                epoch + 1), VmSetPower(on), and that host's reconciler powers it on
 *                (`placed` in the answer). Else nothing is committed: the caller powers it
 *                on through vmkernel (POWER_ON). Admission control is checked first.
 *   POWER_OFF, SUSPEND
 *                owned by host: VmSetPower; otherwise no change
 *   START_FAILED owned by host: the HA engine notes host as a place the VM cannot start
 *                and moves it (cd_ha_start_failed); otherwise no change
 *   STARTED      owned by host: the HA engine counts it running (cd_ha_started), so VMs
 *                restarted after it may go
 *   MIGRATE_BEGIN   (any member) the VM desired on, no operation in flight on it, its owner
 *                and the destination connected, the destination another host not in
 *                maintenance: OpBegin(OP_MIGRATE, a random id, owner -> destination, epoch)
 *   MIGRATE_COMMIT  (the source, which owns the VM) VmChangeOwner(destination, epoch + 1,
 *                op): applied only while the migration is in flight (docs/vmotion.md)
 *   MIGRATE_ABORT   (any member) OpEnd(op, reason) while the migration is in flight; when
 *                it is not (switched over, or ended), no change
 *   MIGRATE_REPORT  (any member) EventAdd(kind migration) with the figures in error
 *   FT_*         ft_leader.c (docs/ft.md, "The cluster's part")
 * Every answer carries the VM's owner and epoch after the operation, and the operation in
 * flight on it; for the two last, they are how the caller learns which came first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clusterd/daemon.h"
#include "ha/place.h"
#include "lib/heap.h"

#define PLACEMENT_MAX 200 /* the words of a placement: an event's text, or a recommendation */

struct vmop {
	struct cd_daemon *d;
	uint64_t host;
	char uuid[CD_UUID_LEN + 1];
	cd_vmop_cb cb;
	void *arg;
	char placement[PLACEMENT_MAX]; /* for the answer (ClusterVmReply.placement) */
	bool placed;
	bool refuse_here; /* POWER_ON given to another host: the asking host must not start it */
	bool reg;	  /* a VmRegister: registered meanwhile to the same host is what was asked */
};

static void fill_reply(struct cd_daemon *d, const char *uuid, uint64_t host,
		       Keel__Cluster__ClusterVmReply *rp, char *owner_name, size_t size,
		       Keel__Cluster__Operation *op)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	const struct cd_vm *vm = cd_state_vm(s, uuid);
	const struct cd_host *h = vm ? cd_state_host(s, vm->owner) : NULL;
	const struct cd_op *o = vm ? cd_state_op_for_vm(s, uuid) : NULL;

	rp->member = true;
	rp->host_id = host;
	/* the commit index: the entry being answered is committed, and applied here, but
	 * libraft counts it in last_applied only once this callback has returned */
	rp->commit_index = d->raft.commit_index;
	rp->owner = vm ? vm->owner : 0;
	rp->epoch = vm ? vm->epoch : 0;
	snprintf(owner_name, size, "%s", h ? h->name : "");
	rp->owner_name = owner_name;
	if (o) {
		op->id = o->id;
		op->kind = o->kind;
		op->vm = (char *)vm->uuid;
		op->source = o->source;
		op->destination = o->destination;
		op->epoch = o->epoch;
		op->phase = o->phase;
		op->started_at_ms = o->started_at_ms;
		rp->op = op;
	}
}

static void answer_placed(struct cd_daemon *d, cd_vmop_cb cb, void *arg, const char *uuid,
			  uint64_t host, int code, const char *error, const char *placement,
			  bool placed)
{
	Keel__Cluster__ClusterVmReply rp = KEEL__CLUSTER__CLUSTER_VM_REPLY__INIT;
	Keel__Cluster__Operation op = KEEL__CLUSTER__OPERATION__INIT;
	char owner[CD_NAME_MAX + 1];

	fill_reply(d, uuid, host, &rp, owner, sizeof(owner), &op);
	rp.placement = (char *)(placement ? placement : "");
	rp.placed = placed;
	if (cb)
		cb(d, arg, code, error, &rp);
}

static void answer(struct cd_daemon *d, cd_vmop_cb cb, void *arg, const char *uuid,
		   uint64_t host, int code, const char *error)
{
	answer_placed(d, cb, arg, uuid, host, code, error, NULL, false);
}

void cd__vmop_answer(struct cd_daemon *d, cd_vmop_cb cb, void *arg, const char *uuid,
		     uint64_t host, int code, const char *error)
{
	answer(d, cb, arg, uuid, host, code, error);
}

static void on_done(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	struct vmop *op = arg;
	char msg[CD_REASON_MAX + PLACEMENT_MAX + 64] = "";
	bool placed = op->placed;

	if (code == KB_EEXIST && op->reg && !status) {
		/* Two registrations of the VM by its host crossed (a create's, and the host's
		 * reconciler adopting the VM it just saw): the first one committed it to that
		 * host, which is what the second asked for, as the check before proposing says. */
		const struct cd_vm *vm = cd_state_vm(cd_fsm_state(&d->fsm), op->uuid);

		if (vm && vm->owner == op->host)
			code = 0;
	}
	if (status) {
		snprintf(msg, sizeof(msg), "the cluster did not commit it: %s",
			 raft_strerror(status));
		code = KB_ESTATE;
		placed = false;
	} else if (code) {
		snprintf(msg, sizeof(msg), "%s", reason ? reason : "refused");
		placed = false;
	} else if (op->refuse_here) {
		/* vmkernel's power-on (hostd's PowerOnVm): the VM went to another host, which
		 * powers it on; the asking host is told why it does not. */
		const struct cd_state *s = cd_fsm_state(&d->fsm);
		const struct cd_vm *vm = cd_state_vm(s, op->uuid);
		const struct cd_host *h = vm ? cd_state_host(s, vm->owner) : NULL;

		if (vm && vm->owner != op->host) {
			snprintf(msg, sizeof(msg), "%s: %s powers it on", op->placement,
				 h ? h->name : "its new host");
			code = KB_ESTATE;
		}
	}
	answer_placed(d, op->cb, op->arg, op->uuid, op->host, code, code ? msg : NULL,
		      op->placement, placed);
	kb_free(op);
}

/* Submits c, answered once applied; placement and placed go into the answer. */
static int propose_placed(struct cd_daemon *d, Keel__Cluster__Command *c, uint64_t host,
			  const char *uuid, const char *placement, bool placed, bool refuse_here,
			  cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	struct vmop *op = kb_calloc(1, sizeof(*op));
	int rv;

	if (!op) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	op->d = d;
	op->host = host;
	snprintf(op->uuid, sizeof(op->uuid), "%s", uuid);
	op->cb = cb;
	op->arg = arg;
	snprintf(op->placement, sizeof(op->placement), "%s", placement ? placement : "");
	op->placed = placed;
	op->refuse_here = refuse_here;
	op->reg = c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
	rv = cd_submit(d, c, on_done, op, e);
	if (rv)
		kb_free(op);
	return rv;
}

static int propose_one(struct cd_daemon *d, Keel__Cluster__Command *c, uint64_t host,
		       const char *uuid, cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	return propose_placed(d, c, host, uuid, NULL, false, false, cb, arg, e);
}

/* A reason for an event: printable ASCII, at most 160 bytes (what OpEnd accepts). */
static void clean_reason(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in && *in && n + 1 < size && n < 160; in++)
		out[n++] = *in >= 0x20 && *in <= 0x7e ? *in : '?';
	out[n] = '\0';
}

/* A destination for vm when the caller named none (ha/place.h): the cluster as the
 * replicated state has it (VMs numbered by their place in the registry, desired-on VMs
 * counted with their memory size and CPU reservation as demand and reservation), the
 * VM's own host left out. NULL with e set when none fits. */
static const struct cd_host *pick_destination(const struct cd_state *s, const struct cd_vm *vm,
					      struct kb_errmsg *e)
{
	const struct cd_host *best = NULL;
	struct cd_drs_model m;
	uint64_t host = 0;

	/* The placement rules take part (drs.c builds the model with them). */
	if (cd__drs_model_build(s, &m, e))
		return NULL;
	if (ha_place(&m.c, (uint64_t)(vm - cd_state_vm_at(s, 0)) + 1, HA_PLACE_MIGRATE, &host, e) ==
	    0)
		best = cd_state_host(s, host);
	else
		cd__drs_explain(s, e);
	cd__drs_model_free(&m);
	return best;
}

/* ---- initial placement (docs/drs.md, "Initial placement") ------------------------------ */

static const char *automation_words(int a)
{
	return a == KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL	 ? "fully automated"
	       : a == KEEL__CLUSTER__DRS_AUTOMATION__DRS_PARTIAL ? "partially automated"
								 : "manual";
}

/*
 * Where vm (registered, not on yet) powers on: dest when the operator named one (0: none),
 * else ha_place's choice with DRS partially or fully automated, else its owner. mem_mib /
 * cpu_mhz: its memory and CPU reservation now (0: the registry's). On success *target and
 * text: the event's words (*event true), or in manual mode the recommendation, or empty.
 * Errors: -EPERM
 * for a must rule, -ENOSPC when nothing fits, KB_ENOTFOUND, KB_ESTATE, -ENOMEM; e says why
 * with the VM's, rules' and hosts' names. Nothing is changed.
 */
static int place(const struct cd_state *s, const struct cd_vm *vm, uint64_t dest,
		 uint64_t mem_mib, uint32_t cpu_mhz, uint64_t *target, char *text, size_t size,
		 bool *event, struct kb_errmsg *e)
{
	const struct cd_host *owner = cd_state_host(s, vm->owner), *to;
	uint64_t vid = (uint64_t)(vm - cd_state_vm_at(s, 0)) + 1, best = 0;
	struct cd_drs_settings st;
	struct kb_errmsg ignored = {{0}};
	struct cd_drs_model m;
	int rv;

	text[0] = '\0';
	*event = false;
	cd_state_drs_settings(s, &st);
	to = dest ? cd_state_host(s, dest) : NULL;
	if (dest && (!to || to->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT)) {
		kb_errmsg_setf(e, "host %" PRIu64 " is not in the cluster", dest);
		return KB_ENOTFOUND;
	}
	if ((rv = cd__drs_model_build(s, &m, e)))
		return rv;
	if (mem_mib) {
		struct ha_place_vm *mv = &m.vms[vid - 1];

		mv->mem_mib = mv->mem_res_mib = mv->mem_size_mib = mem_mib;
		mv->cpu_mhz = mv->cpu_res_mhz = cpu_mhz;
	}
	if (dest) {
		rv = ha_place_on(&m.c, vid, dest, e);
		if (rv) {
			cd__drs_explain(s, e);
			kb_errmsg_wrapf(e, "VM %s cannot power on on %s", vm->name, to->name);
			goto out;
		}
		*target = dest;
		*event = true;
		snprintf(text, size, "VM %s placed on %s by the operator (DRS %s)", vm->name,
			 to->name, automation_words(st.automation));
	} else if (st.automation == KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL) {
		/* Where it is registered, unless that breaks a must rule; capacity is vmkernel's
		 * admission as before. ha_place's choice is only a recommendation. */
		rv = ha_place_on(&m.c, vid, vm->owner, e);
		if (rv == -EPERM) {
			cd__drs_explain(s, e);
			kb_errmsg_wrapf(e, "VM %s cannot power on on %s", vm->name,
					owner ? owner->name : "?");
			goto out;
		}
		if (rv == -ENOMEM)
			goto out;
		rv = 0;
		*target = vm->owner;
		if (ha_place(&m.c, vid, 0, &best, &ignored) == 0 && best != vm->owner &&
		    (to = cd_state_host(s, best)) != NULL)
			snprintf(text, size,
				 "DRS recommends %s for VM %s (manual automation: it powers on on "
				 "%s, where it is registered)",
				 to->name, vm->name, owner ? owner->name : "?");
	} else {
		rv = ha_place(&m.c, vid, 0, target, e);
		if (rv) {
			cd__drs_explain(s, e);
			kb_errmsg_wrapf(e, "DRS placement");
			goto out;
		}
		to = cd_state_host(s, *target);
		*event = true;
		snprintf(text, size, "VM %s placed on %s by DRS (%s; registered on %s)", vm->name,
			 to ? to->name : "?", automation_words(st.automation),
			 owner ? owner->name : "?");
	}
out:
	cd__drs_model_free(&m);
	return rv;
}

/* Gives vm to host `to` powered on: EventAdd(text), VmChangeOwner(to, epoch + 1) and
 * VmSetPower(on), submitted together (one entry, applied in this order); answered once the
 * last one applied, with the VM's owner then (refuse_here: KB_ESTATE when that is not the
 * asking host, saying where it went). */
static int give(struct cd_daemon *d, uint64_t host, const struct cd_vm *vm, uint64_t to,
		uint64_t mem_mib, uint32_t cpu_mhz, const char *text, bool refuse_here,
		cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	Keel__Cluster__Command c1 = KEEL__CLUSTER__COMMAND__INIT, c2 = KEEL__CLUSTER__COMMAND__INIT,
			       c3 = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__EventAdd ea = KEEL__CLUSTER__EVENT_ADD__INIT;
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	Keel__Cluster__VmChangeOwner co = KEEL__CLUSTER__VM_CHANGE_OWNER__INIT;
	Keel__Cluster__VmSetPower sp = KEEL__CLUSTER__VM_SET_POWER__INIT;
	int rv;

	ev.at_ms = cd_now_ms();
	ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE;
	ev.host = to;
	ev.vm = (char *)vm->uuid;
	ev.message = (char *)text;
	ea.event = &ev;
	c1.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
	c1.event_add = &ea;
	co.uuid = (char *)vm->uuid;
	co.new_owner = to;
	co.new_epoch = vm->epoch + 1;
	c2.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER;
	c2.vm_change_owner = &co;
	sp.uuid = (char *)vm->uuid;
	sp.desired = KEEL__CLUSTER__POWER_STATE__POWER_ON;
	sp.mem_mib = mem_mib;
	sp.cpu_mhz = mem_mib ? cpu_mhz : 0;
	c3.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER;
	c3.vm_set_power = &sp;
	/* Packed at once: the three share the loop iteration, so one entry, in this order. */
	if ((rv = cd_submit(d, &c1, NULL, NULL, e)) || (rv = cd_submit(d, &c2, NULL, NULL, e)))
		return rv;
	kb_log(d->log, KB_LOG_INFO, "%s, epoch %" PRIu64, text, vm->epoch + 1);
	return propose_placed(d, &c3, host, vm->uuid, text, true, refuse_here, cb, arg, e);
}

/* The three migration requests (see the top of the file). 1: answered already. */
static int migrate_cmd(struct cd_daemon *d, uint64_t host, const Keel__Cluster__ClusterVmRequest *rq,
		       const struct cd_vm *vm, Keel__Cluster__Command *c,
		       Keel__Cluster__OpBegin *ob, Keel__Cluster__Operation *op,
		       Keel__Cluster__VmChangeOwner *co, Keel__Cluster__OpEnd *oe,
		       Keel__Cluster__EventAdd *ea, Keel__Cluster__Event *ev, char *reason,
		       size_t reason_size, struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	const struct cd_op *cur;
	const struct cd_host *src, *dst;

	if (!vm) {
		kb_errmsg_setf(e, "VM %s is not registered in the cluster", rq->uuid ? rq->uuid : "");
		return KB_ENOTFOUND;
	}
	cur = cd_state_op_for_vm(s, vm->uuid);
	switch (rq->op) {
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN:
		src = cd_state_host(s, vm->owner);
		dst = rq->destination ? cd_state_host(s, rq->destination) : pick_destination(s, vm, e);
		if (!rq->destination && !dst)
			return KB_ENOTFOUND;
		if (cur) {
			kb_errmsg_setf(e, "VM %s already has an operation in flight (%" PRIu64 ")",
				       vm->name, cur->id);
			return KB_ESTATE;
		}
		if (vm->desired_power != KEEL__CLUSTER__POWER_STATE__POWER_ON) {
			kb_errmsg_setf(e, "VM %s is not powered on: only a running VM migrates "
					  "(power it on where it should run)",
				       vm->name);
			return KB_ESTATE;
		}
		if (CD_FT_ON(vm)) {
			kb_errmsg_setf(e, "VM %s is protected by FT: turn FT off to migrate it "
					  "(keel vm ft disable)",
				       vm->name);
			return KB_ESTATE;
		}
		if (!dst || dst->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT) {
			kb_errmsg_setf(e, "destination host %" PRIu64 " is not in the cluster",
				       rq->destination);
			return KB_ENOTFOUND;
		}
		if (dst->id == vm->owner) {
			kb_errmsg_setf(e, "VM %s already runs on %s", vm->name, dst->name);
			return KB_EEXIST;
		}
		if (dst->state != KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED) {
			kb_errmsg_setf(e, "destination %s is not connected", dst->name);
			return KB_ESTATE;
		}
		if (dst->maintenance) {
			kb_errmsg_setf(e, "destination %s is in maintenance mode", dst->name);
			return KB_ESTATE;
		}
		if (rq->destination && cd_drs_check_move(s, vm, dst->id, e))
			return -EPERM;
		if (!src || src->state != KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED) {
			kb_errmsg_setf(e, "VM %s's host %s is not connected", vm->name,
				       src ? src->name : "?");
			return KB_ESTATE;
		}
		do {
			if (getrandom(&op->id, sizeof(op->id), 0) != sizeof(op->id)) {
				kb_errmsg_setf(e, "getrandom: %s", kb_strerror(-errno));
				return -errno;
			}
		} while (op->id == 0 || cd_state_op(s, op->id));
		op->kind = KEEL__CLUSTER__OP_KIND__OP_MIGRATE;
		op->vm = (char *)vm->uuid;
		op->source = vm->owner;
		op->destination = dst->id;
		op->epoch = vm->epoch;
		op->started_at_ms = cd_now_ms();
		ob->op = op;
		c->cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN;
		c->op_begin = ob;
		return 0;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_COMMIT:
		if (vm->owner != host) {
			kb_errmsg_setf(e, "VM %s is owned by another host: only the source commits "
					  "its migration",
				       vm->name);
			return -EPERM;
		}
		if (!cur || cur->id != rq->op_id || cur->kind != KEEL__CLUSTER__OP_KIND__OP_MIGRATE) {
			kb_errmsg_setf(e, "migration %" PRIu64 " of VM %s is not in flight",
				       rq->op_id, vm->name);
			return KB_ENOTFOUND;
		}
		co->uuid = (char *)vm->uuid;
		co->new_owner = cur->destination;
		co->new_epoch = vm->epoch + 1;
		co->op = cur->id;
		c->cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER;
		c->vm_change_owner = co;
		return 0;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_ABORT:
		if (!cur || cur->id != rq->op_id)
			return 1; /* switched over or ended: the answer tells which */
		clean_reason(rq->error, reason, reason_size);
		oe->id = cur->id;
		oe->reason = reason;
		c->cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_END;
		c->op_end = oe;
		return 0;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_REPORT:
		clean_reason(rq->error, reason, reason_size);
		if (!reason[0]) {
			kb_errmsg_setf(e, "a migration report needs its text");
			return -EINVAL;
		}
		ev->at_ms = cd_now_ms();
		ev->kind = KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION;
		ev->host = host;
		ev->vm = (char *)vm->uuid;
		ev->message = reason;
		ea->event = ev;
		c->cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
		c->event_add = ea;
		return 0;
	default:
		kb_errmsg_setf(e, "unknown VM operation %d", rq->op);
		return KB_EPROTO;
	}
}

int cd_vmop_leader(struct cd_daemon *d, uint64_t host, const Keel__Cluster__ClusterVmRequest *rq,
		   cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	const char *uuid = rq->uuid ? rq->uuid : "";
	const struct cd_vm *vm = cd_state_vm(s, uuid);
	const struct cd_host *owner = vm ? cd_state_host(s, vm->owner) : NULL;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__Vm pv = KEEL__CLUSTER__VM__INIT;
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	Keel__Cluster__VmRegister reg = KEEL__CLUSTER__VM_REGISTER__INIT;
	Keel__Cluster__VmUnregister unreg = KEEL__CLUSTER__VM_UNREGISTER__INIT;
	Keel__Cluster__VmSetPower sp = KEEL__CLUSTER__VM_SET_POWER__INIT;
	Keel__Cluster__OpBegin ob = KEEL__CLUSTER__OP_BEGIN__INIT;
	Keel__Cluster__Operation op = KEEL__CLUSTER__OPERATION__INIT;
	Keel__Cluster__VmChangeOwner co = KEEL__CLUSTER__VM_CHANGE_OWNER__INIT;
	Keel__Cluster__OpEnd oe = KEEL__CLUSTER__OP_END__INIT;
	Keel__Cluster__EventAdd ea = KEEL__CLUSTER__EVENT_ADD__INIT;
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	char reason[168], placement[PLACEMENT_MAX] = "";
	uint64_t target = 0;
	bool event = false;
	int want, rv;

	if (!cd_node_is_ready_leader(d)) {
		kb_errmsg_setf(e, "not the leader");
		return KB_ESTATE;
	}
	if (!cd_state_host(s, host)) {
		kb_errmsg_setf(e, "host %" PRIu64 " is not in the cluster", host);
		return -EPERM;
	}
	switch (rq->op) {
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_REGISTER:
		if (vm && vm->owner == host) {
			answer(d, cb, arg, uuid, host, 0, NULL);
			return 0;
		}
		if (vm) {
			kb_errmsg_setf(e, "VM %s is registered on host %s", vm->name,
				       owner ? owner->name : "?");
			return KB_EEXIST;
		}
		pv.uuid = (char *)uuid;
		pv.name = rq->name ? rq->name : "";
		pv.vmx_path = rq->vmx_path ? rq->vmx_path : "";
		pv.owner = host;
		pv.epoch = 1;
		pv.desired_power = KEEL__CLUSTER__POWER_STATE__POWER_OFF;
		ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_MEDIUM;
		pv.ha = &ha;
		pv.mem_mib = rq->mem_mib;
		pv.cpu_mhz = rq->cpu_mhz;
		reg.vm = &pv;
		c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
		c.vm_register = &reg;
		break;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_UNREGISTER:
		if (!vm) {
			answer(d, cb, arg, uuid, host, 0, NULL);
			return 0;
		}
		if (vm->owner != host) {
			kb_errmsg_setf(e, "VM %s is owned by host %s: only its owner unregisters it",
				       vm->name, owner ? owner->name : "?");
			return -EPERM;
		}
		unreg.uuid = (char *)uuid;
		c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_UNREGISTER;
		c.vm_unregister = &unreg;
		break;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_POWER_ON:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_POWER_OFF:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_SUSPEND:
		want = rq->op == KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_POWER_ON
			   ? KEEL__CLUSTER__POWER_STATE__POWER_ON
		       : rq->op == KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_POWER_OFF
			   ? KEEL__CLUSTER__POWER_STATE__POWER_OFF
			   : KEEL__CLUSTER__POWER_STATE__POWER_SUSPENDED;
		if (want == KEEL__CLUSTER__POWER_STATE__POWER_ON) {
			if (!vm) {
				kb_errmsg_setf(e, "VM %s is not registered in the cluster", uuid);
				return KB_ENOTFOUND;
			}
			if (vm->owner != host) {
				kb_errmsg_setf(e, "VM %s is owned by host %s (epoch %" PRIu64 ")",
					       vm->name, owner ? owner->name : "?", vm->epoch);
				return -EPERM;
			}
			if (rq->wanted_only && vm->desired_power != want) {
				kb_errmsg_setf(e, "the cluster no longer wants VM %s on", vm->name);
				return KB_ESTATE;
			}
			/* a VM that is not on yet must fit the failover capacity kept free
			 * (one already wanted on — an HA restart, a reconcile — is counted) */
			if (vm->desired_power != want &&
			    (rv = cd_ha_admit(d, vm, rq->mem_mib ? rq->mem_mib : vm->mem_mib,
					      rq->mem_mib ? rq->cpu_mhz : vm->cpu_mhz, e)))
				return rv;
			/* ...and a powered-off one is placed: by DRS, or here unless a must rule
			 * forbids it (a suspended one resumes where its state was saved) */
			if (vm->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_OFF) {
				if (cd_state_op_for_vm(s, uuid)) {
					kb_errmsg_setf(e, "VM %s has an operation in flight", vm->name);
					return KB_ESTATE;
				}
				rv = place(s, vm, 0, rq->mem_mib, rq->cpu_mhz, &target, placement,
					   sizeof(placement), &event, e);
				if (rv)
					return rv;
				if (target != vm->owner)
					return give(d, host, vm, target, rq->mem_mib, rq->cpu_mhz,
						    placement, true, cb, arg, e);
			}
		}
		if (!vm || vm->owner != host || vm->desired_power == want) {
			answer(d, cb, arg, uuid, host, 0, NULL);
			return 0;
		}
		sp.uuid = (char *)uuid;
		sp.desired = want;
		if (want == KEEL__CLUSTER__POWER_STATE__POWER_ON) {
			sp.mem_mib = rq->mem_mib;
			sp.cpu_mhz = rq->mem_mib ? rq->cpu_mhz : 0;
		}
		c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER;
		c.vm_set_power = &sp;
		if (want == KEEL__CLUSTER__POWER_STATE__POWER_ON && placement[0]) {
			/* placed here by DRS: the event says so; a recommendation is only told */
			if (event) {
				Keel__Cluster__Command ce = KEEL__CLUSTER__COMMAND__INIT;

				ev.at_ms = cd_now_ms();
				ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE;
				ev.host = host;
				ev.vm = (char *)vm->uuid;
				ev.message = placement;
				ea.event = &ev;
				ce.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
				ce.event_add = &ea;
				if ((rv = cd_submit(d, &ce, NULL, NULL, e)))
					return rv;
			}
			return propose_placed(d, &c, host, uuid, placement, false, false, cb, arg,
					      e);
		}
		break;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_PLACE:
		if (!vm) {
			kb_errmsg_setf(e, "VM %s is not registered in the cluster", uuid);
			return KB_ENOTFOUND;
		}
		if (vm->desired_power != KEEL__CLUSTER__POWER_STATE__POWER_OFF) {
			/* on already, or suspended (it resumes where it was): nothing to place */
			answer(d, cb, arg, uuid, host, 0, NULL);
			return 0;
		}
		if (cd_state_op_for_vm(s, uuid)) {
			kb_errmsg_setf(e, "VM %s has an operation in flight", vm->name);
			return KB_ESTATE;
		}
		if ((rv = cd_ha_admit(d, vm, vm->mem_mib, vm->cpu_mhz, e)))
			return rv;
		rv = place(s, vm, rq->destination, 0, 0, &target, placement, sizeof(placement),
			   &event, e);
		if (rv)
			return rv;
		if (target != vm->owner || rq->destination) {
			const struct cd_host *th = cd_state_host(s, target);

			if (!th || th->state != KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED ||
			    th->maintenance) {
				kb_errmsg_setf(e, "%s is not connected or is in maintenance mode",
					       th ? th->name : "the host");
				return KB_ESTATE;
			}
			return give(d, host, vm, target, 0, 0, placement, false, cb, arg, e);
		}
		answer_placed(d, cb, arg, uuid, host, 0, NULL, placement, false);
		return 0;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_START_FAILED:
		if (!vm || vm->owner != host) {
			answer(d, cb, arg, uuid, host, 0, NULL); /* moved meanwhile: nothing to do */
			return 0;
		}
		cd_ha_start_failed(d, vm, host, rq->error ? rq->error : "");
		answer(d, cb, arg, uuid, host, 0, NULL);
		return 0;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_STARTED:
		if (vm && vm->owner == host)
			cd_ha_started(d, vm);
		answer(d, cb, arg, uuid, host, 0, NULL);
		return 0;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_COMMIT:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_ABORT:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_REPORT:
		rv = migrate_cmd(d, host, rq, vm, &c, &ob, &op, &co, &oe, &ea, &ev, reason,
				 sizeof(reason), e);
		if (rv < 0)
			return rv;
		if (rv == 1) {
			answer(d, cb, arg, uuid, host, 0, NULL);
			return 0;
		}
		break;
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_ENABLE:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_DISABLE:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_RESTART_SECONDARY:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_PROTECTED:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_LOST:
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_TAKEOVER:
		return cd_ft_vmop(d, host, rq, cb, arg, e);
	default:
		kb_errmsg_setf(e, "unknown VM operation %d", rq->op);
		return KB_EPROTO;
	}
	return propose_one(d, &c, host, uuid, cb, arg, e);
}
