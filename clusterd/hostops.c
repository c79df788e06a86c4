/*
 * Maintenance mode, the auth store and VMs' HA settings through the cluster
 * (docs/clusterd.md, "Maintenance mode and the auth store"; docs/ha-settings.md): the
 * leader's side of ClusterMaintenance, ClusterAuthSet and ClusterVmHa, and this host's
 * entry points, which run on the leader directly or are forwarded to it over the join port
 * (STEP_MAINTENANCE, STEP_AUTH_SET, STEP_VM_HA; joincli.c).
 *
 * Happy path on the leader: resolve and check the request against the state, submit one
 * HostSetMaintenance, AuthSet or VmSetHa, and answer when it was applied. Failure modes: an
 * unknown host or VM (KB_ENOTFOUND), a VM name two VMs carry (-EINVAL), a VM among its own
 * restart-after VMs or more than CD_RESTART_AFTER_MAX of them (-EINVAL), a blob that is
 * empty or over CD_AUTH_BLOB_MAX (-EINVAL, KB_ETOOBIG), a stale expect_version (-ESTALE,
 * also when another change commits first), a proposal that never commits (KB_ESTATE, "the
 * proposal failed").
 *
 * Threads: the loop thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "lib/heap.h"

struct hostop {
	cd_member_cb cb;
	void *arg;
	bool auth;
	bool vm_ha;
	char vm_name[CD_NAME_MAX + 1];
	uint64_t host; /* maintenance: the host; auth: the host that sets it */
	bool enter;
	uint64_t expect, at_ms;
};

static void on_applied(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	struct hostop *op = arg;
	Keel__Cluster__AuthDb a = KEEL__CLUSTER__AUTH_DB__INIT;
	const struct cd_host *h = cd_state_host(cd_fsm_state(&d->fsm), op->host);
	char msg[KB_ERRMSG_SIZE];

	if (status) {
		snprintf(msg, sizeof(msg), "the proposal failed: %s", raft_strerror(status));
		op->cb(d, op->arg, KB_ESTATE, msg, NULL);
	} else if (code) {
		op->cb(d, op->arg, code, reason ? reason : "refused", NULL);
	} else if (op->auth) {
		/* Applied means the store was at expect and is now one above it. */
		a.version = op->expect + 1;
		a.host = op->host;
		a.at_ms = op->at_ms;
		kb_log(d->log, KB_LOG_INFO,
		       "users and permissions: version %" PRIu64 " set by host %s", a.version,
		       h ? h->name : "?");
		op->cb(d, op->arg, 0, NULL, &a);
	} else if (op->vm_ha) {
		kb_log(d->log, KB_LOG_INFO, "VM %s: HA settings changed", op->vm_name);
		op->cb(d, op->arg, 0, NULL, NULL);
	} else {
		kb_log(d->log, KB_LOG_INFO, "host %s %s maintenance mode", h ? h->name : "?",
		       op->enter ? "entered" : "left");
		op->cb(d, op->arg, 0, NULL, NULL);
	}
	kb_free(op);
}

static int submit(struct cd_daemon *d, struct hostop *op, const Keel__Cluster__Command *c,
		  struct kb_errmsg *e)
{
	int rv = cd_submit(d, c, on_applied, op, e);

	if (rv)
		kb_free(op);
	return rv ? KB_ESTATE : 0;
}

static struct hostop *hostop_new(cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	struct hostop *op = kb_calloc(1, sizeof(*op));

	if (!op) {
		kb_errmsg_setf(e, "out of memory");
		return NULL;
	}
	op->cb = cb;
	op->arg = arg;
	return op;
}

/* The host named by text: a decimal id or a name; "" is asker. */
static const struct cd_host *find_host(const struct cd_state *s, uint64_t asker, const char *text)
{
	const struct cd_host *h = NULL;
	char *end;
	uint64_t id;

	if (!text || !text[0])
		return cd_state_host(s, asker);
	id = strtoull(text, &end, 10);
	if (*end == '\0' && id)
		h = cd_state_host(s, id);
	return h ? h : cd_state_host_by_name(s, text);
}

int cd_maint_leader(struct cd_daemon *d, uint64_t asker, const char *host, bool enter,
		    cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	Keel__Cluster__HostSetMaintenance m = KEEL__CLUSTER__HOST_SET_MAINTENANCE__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	const struct cd_host *h = find_host(cd_fsm_state(&d->fsm), asker, host);
	struct hostop *op;

	if (!h) {
		kb_errmsg_setf(e, "no such host in the cluster: %s",
			       host && host[0] ? host : "(the asking host)");
		return KB_ENOTFOUND;
	}
	op = hostop_new(cb, arg, e);
	if (!op)
		return -ENOMEM;
	op->host = h->id;
	op->enter = enter;
	m.host = h->id;
	m.enter = enter;
	m.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_SET_MAINTENANCE;
	c.host_set_maintenance = &m;
	return submit(d, op, &c, e);
}

int cd_auth_set_leader(struct cd_daemon *d, uint64_t asker, uint64_t expect, const void *blob,
		       size_t len, cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	Keel__Cluster__AuthSet a = KEEL__CLUSTER__AUTH_SET__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	struct hostop *op;
	int rv;

	a.blob.data = (uint8_t *)blob;
	a.blob.len = len;
	if ((rv = cd__check_auth_blob(&a.blob, e)))
		return rv;
	/* Stale already: say so without a proposal (the command checks again when applied). */
	if (expect != s->auth.version) {
		kb_errmsg_setf(e,
			       "the users changed meanwhile: the cluster holds version %" PRIu64
			       ", not %" PRIu64,
			       s->auth.version, expect);
		return -ESTALE;
	}
	op = hostop_new(cb, arg, e);
	if (!op)
		return -ENOMEM;
	op->auth = true;
	op->host = asker;
	op->expect = expect;
	op->at_ms = cd_now_ms();
	a.expect_version = expect;
	a.host = asker;
	a.at_ms = op->at_ms;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_AUTH_SET;
	c.auth_set = &a;
	return submit(d, op, &c, e);
}

/* The VM named by text: a uuid, else a name no other VM carries. NULL with *code
 * (KB_ENOTFOUND, or -EINVAL for no name or one two VMs carry) and e set. */
static const struct cd_vm *find_vm(const struct cd_state *s, const char *text, int *code,
				   struct kb_errmsg *e)
{
	const struct cd_vm *vm = text && text[0] ? cd_state_vm(s, text) : NULL, *found = NULL;
	unsigned n = cd_state_n_vms(s);

	if (vm)
		return vm;
	*code = -EINVAL;
	if (!text || !text[0]) {
		kb_errmsg_setf(e, "a VM is needed (name or uuid)");
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cd_vm *v = cd_state_vm_at(s, i);

		if (strcmp(v->name, text) != 0)
			continue;
		if (found) {
			kb_errmsg_setf(e, "two VMs are named %s: give the uuid", text);
			return NULL;
		}
		found = v;
	}
	if (!found) {
		kb_errmsg_setf(e, "no such VM in the cluster: %s", text);
		*code = KB_ENOTFOUND;
	}
	return found;
}

int cd_vm_ha_leader(struct cd_daemon *d, const Keel__Cluster__ClusterVmHa *rq, cd_member_cb cb,
		    void *arg, struct kb_errmsg *e)
{
	Keel__Cluster__VmSetHa m = KEEL__CLUSTER__VM_SET_HA__INIT;
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	char *after[CD_RESTART_AFTER_MAX];
	const struct cd_vm *vm;
	struct hostop *op;
	int code;
	size_t n;

	if (!rq) {
		kb_errmsg_setf(e, "a VM HA request needs its VM");
		return -EINVAL;
	}
	vm = find_vm(s, rq->vm, &code, e);
	if (!vm)
		return code;
	if (rq->set_priority &&
	    (rq->priority < KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED ||
	     rq->priority > KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST)) {
		kb_errmsg_setf(e, "VM %s: restart priority %d is out of range", vm->name,
			       (int)rq->priority);
		return -EINVAL;
	}
	n = rq->set_after ? rq->n_restart_after : vm->n_restart_after;
	if (n > CD_RESTART_AFTER_MAX) {
		kb_errmsg_setf(e, "VM %s: %zu restart-after VMs, at most %d", vm->name, n,
			       CD_RESTART_AFTER_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cd_vm *dep;

		if (!rq->set_after) {
			after[i] = (char *)vm->restart_after[i];
			continue;
		}
		dep = find_vm(s, rq->restart_after[i], &code, e);
		if (!dep) {
			kb_errmsg_wrapf(e, "VM %s: restart after", vm->name);
			return code;
		}
		if (dep == vm) {
			kb_errmsg_setf(e, "VM %s cannot restart after itself", vm->name);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(after[j], dep->uuid) == 0) {
				kb_errmsg_setf(e, "VM %s: restart-after VM %s is given twice",
					       vm->name, dep->name);
				return -EINVAL;
			}
		after[i] = (char *)dep->uuid;
	}
	op = hostop_new(cb, arg, e);
	if (!op)
		return -ENOMEM;
	op->vm_ha = true;
	snprintf(op->vm_name, sizeof(op->vm_name), "%s", vm->name);
	op->host = vm->owner;
	ha.priority = rq->set_priority ? rq->priority
				       : (Keel__Cluster__RestartPriority)(vm->priority
						 ? vm->priority
						 : KEEL__CLUSTER__RESTART_PRIORITY__RESTART_MEDIUM);
	ha.n_restart_after = n;
	ha.restart_after = after;
	m.uuid = (char *)vm->uuid;
	m.ha = &ha;
	m.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA;
	c.vm_set_ha = &m;
	return submit(d, op, &c, e);
}

static int member_check(struct cd_daemon *d, struct kb_errmsg *e)
{
	if (d->phase != CD_PHASE_RUNNING || !d->ca) {
		kb_errmsg_setf(e, "this host is not in a cluster");
		return KB_ESTATE;
	}
	return 0;
}

int cd_node_maintenance(struct cd_daemon *d, const char *host, bool enter, cd_member_cb cb,
			void *arg, struct kb_errmsg *e)
{
	int rv = member_check(d, e);

	if (rv)
		return rv;
	if (host && strlen(host) > CD_NAME_MAX) {
		kb_errmsg_setf(e, "host name of %zu characters exceeds %d", strlen(host),
			       CD_NAME_MAX);
		return -EINVAL;
	}
	if (cd_node_is_ready_leader(d))
		return cd_maint_leader(d, d->id, host, enter, cb, arg, e);
	return cd__forward(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_MAINTENANCE, host, enter, 0,
			   NULL, 0, cb, arg, e);
}

int cd_node_auth_set(struct cd_daemon *d, uint64_t expect, const void *blob, size_t len,
		     cd_member_cb cb, void *arg, struct kb_errmsg *e)
{
	ProtobufCBinaryData b = {len, (uint8_t *)blob};
	int rv = member_check(d, e);

	if (rv)
		return rv;
	if ((rv = cd__check_auth_blob(&b, e)))
		return rv;
	if (cd_node_is_ready_leader(d))
		return cd_auth_set_leader(d, d->id, expect, blob, len, cb, arg, e);
	return cd__forward(d, KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_AUTH_SET, NULL, false, expect,
			   blob, len, cb, arg, e);
}

int cd_node_vm_ha(struct cd_daemon *d, const Keel__Cluster__ClusterVmHa *rq, cd_member_cb cb,
		  void *arg, struct kb_errmsg *e)
{
	int rv = member_check(d, e);

	if (rv)
		return rv;
	if (!rq || !rq->vm || !rq->vm[0]) {
		kb_errmsg_setf(e, "a VM is needed (name or uuid)");
		return -EINVAL;
	}
	if (rq->n_restart_after > CD_RESTART_AFTER_MAX) {
		kb_errmsg_setf(e, "%zu restart-after VMs, at most %d", rq->n_restart_after,
			       CD_RESTART_AFTER_MAX);
		return -EINVAL;
	}
	if (cd_node_is_ready_leader(d))
		return cd_vm_ha_leader(d, rq, cb, arg, e);
	return cd__forward_vm_ha(d, rq, cb, arg, e);
}
