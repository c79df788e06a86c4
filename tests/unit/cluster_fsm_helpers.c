/*
 * Helpers shared by the cluster state machine tests (see cluster_fsm_helpers.h).
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

#include "clusterd/codec.h"
#include "clusterd/snapshot.h"
#include "lib/heap.h"
#include "tests/unit/cluster_fsm_helpers.h"

struct cd_fsm cf_fsm;

/* ---- command builders (messages live in static storage until the next call) ---------- */

struct cmdbuf {
	Keel__Cluster__Command cmd;
	union {
		Keel__Cluster__SetConfig set_config;
		Keel__Cluster__HostAdd host_add;
		Keel__Cluster__HostUpdate host_update;
		Keel__Cluster__HostRemove host_remove;
		Keel__Cluster__VmRegister vm_register;
		Keel__Cluster__VmUnregister vm_unregister;
		Keel__Cluster__VmSetPower vm_set_power;
		Keel__Cluster__VmSetHa vm_set_ha;
		Keel__Cluster__VmSetFt vm_set_ft;
		Keel__Cluster__VmChangeOwner vm_change_owner;
		Keel__Cluster__OpBegin op_begin;
		Keel__Cluster__OpAdvance op_advance;
		Keel__Cluster__OpEnd op_end;
		Keel__Cluster__TokenAdd token_add;
		Keel__Cluster__HostJoin host_join;
		Keel__Cluster__EventAdd event_add;
	} u;
	Keel__Cluster__ClusterConfig cfg;
	Keel__Cluster__Host host;
	Keel__Cluster__Capacity cap;
	Keel__Cluster__Vm vm;
	Keel__Cluster__HaSettings ha;
	Keel__Cluster__Operation op;
	Keel__Cluster__JoinTokenRecord token;
	Keel__Cluster__Event event;
	uint8_t token_id[CD_TOKEN_ID_SIZE];
	uint8_t hash[CD_TOKEN_HASH_SIZE];
};

static struct cmdbuf cbs[8];
static unsigned cb_next;

static struct cmdbuf *cb_new(void)
{
	struct cmdbuf *b = &cbs[cb_next++ % 8];

	memset(b, 0, sizeof(*b));
	keel__cluster__command__init(&b->cmd);
	return b;
}

Keel__Cluster__Command *cf_config(const char *name, const char *id, uint32_t timeout)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__set_config__init(&b->u.set_config);
	keel__cluster__cluster_config__init(&b->cfg);
	b->cfg.name = (char *)name;
	b->cfg.cluster_id = (char *)id;
	b->cfg.format_version = 1;
	b->cfg.failure_timeout_ms = timeout;
	b->cfg.isolation_response = KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF;
	b->u.set_config.config = &b->cfg;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	b->cmd.set_config = &b->u.set_config;
	return &b->cmd;
}

/* A connected voter with a vmk1 address and some capacity, in b->host. */
static void fill_host(struct cmdbuf *b, uint64_t id, const char *name, const char *vmk0)
{
	keel__cluster__host__init(&b->host);
	keel__cluster__capacity__init(&b->cap);
	b->host.id = id;
	b->host.name = (char *)name;
	b->host.vmk0 = (char *)vmk0;
	b->host.vmk1 = "198.19.0.1:8000";
	b->cap.cpu_mhz = 2000;
	b->cap.mem_mib = 4096;
	b->host.capacity = &b->cap;
	b->host.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	b->host.role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
}

Keel__Cluster__Command *cf_host_add(uint64_t id, const char *name, const char *vmk0)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__host_add__init(&b->u.host_add);
	fill_host(b, id, name, vmk0);
	b->u.host_add.host = &b->host;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
	b->cmd.host_add = &b->u.host_add;
	return &b->cmd;
}

Keel__Cluster__Command *cf_host_update(uint64_t id, int state, uint64_t at)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__host_update__init(&b->u.host_update);
	b->u.host_update.id = id;
	b->u.host_update.state = state;
	b->u.host_update.at_ms = at;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_UPDATE;
	b->cmd.host_update = &b->u.host_update;
	return &b->cmd;
}

Keel__Cluster__Command *cf_host_remove(uint64_t id)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__host_remove__init(&b->u.host_remove);
	b->u.host_remove.id = id;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE;
	b->cmd.host_remove = &b->u.host_remove;
	return &b->cmd;
}

Keel__Cluster__Command *cf_vm_reg(const char *uuid, const char *path, uint64_t owner,
				  uint64_t epoch)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_register__init(&b->u.vm_register);
	keel__cluster__vm__init(&b->vm);
	keel__cluster__ha_settings__init(&b->ha);
	b->vm.uuid = (char *)uuid;
	b->vm.name = "web 1";
	b->vm.vmx_path = (char *)path;
	b->vm.owner = owner;
	b->vm.epoch = epoch;
	b->vm.desired_power = KEEL__CLUSTER__POWER_STATE__POWER_ON;
	b->ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_MEDIUM;
	b->vm.ha = &b->ha;
	b->u.vm_register.vm = &b->vm;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
	b->cmd.vm_register = &b->u.vm_register;
	return &b->cmd;
}

Keel__Cluster__Command *cf_vm_unreg(const char *uuid)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_unregister__init(&b->u.vm_unregister);
	b->u.vm_unregister.uuid = (char *)uuid;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_UNREGISTER;
	b->cmd.vm_unregister = &b->u.vm_unregister;
	return &b->cmd;
}

Keel__Cluster__Command *cf_owner(const char *uuid, uint64_t owner, uint64_t epoch)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_change_owner__init(&b->u.vm_change_owner);
	b->u.vm_change_owner.uuid = (char *)uuid;
	b->u.vm_change_owner.new_owner = owner;
	b->u.vm_change_owner.new_epoch = epoch;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER;
	b->cmd.vm_change_owner = &b->u.vm_change_owner;
	return &b->cmd;
}

Keel__Cluster__Command *cf_owner_op(const char *uuid, uint64_t owner, uint64_t epoch, uint64_t op)
{
	Keel__Cluster__Command *c = cf_owner(uuid, owner, epoch);

	c->vm_change_owner->op = op;
	return c;
}

Keel__Cluster__Command *cf_op_end_reason(uint64_t id, const char *reason)
{
	Keel__Cluster__Command *c = cf_op_end(id);

	c->op_end->reason = (char *)reason;
	return c;
}

Keel__Cluster__Command *cf_power(const char *uuid, int power)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_set_power__init(&b->u.vm_set_power);
	b->u.vm_set_power.uuid = (char *)uuid;
	b->u.vm_set_power.desired = power;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER;
	b->cmd.vm_set_power = &b->u.vm_set_power;
	return &b->cmd;
}

Keel__Cluster__Command *cf_ha(const char *uuid, int prio, char **after, size_t n)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_set_ha__init(&b->u.vm_set_ha);
	keel__cluster__ha_settings__init(&b->ha);
	b->ha.priority = prio;
	b->ha.restart_after = after;
	b->ha.n_restart_after = n;
	b->u.vm_set_ha.uuid = (char *)uuid;
	b->u.vm_set_ha.ha = &b->ha;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA;
	b->cmd.vm_set_ha = &b->u.vm_set_ha;
	return &b->cmd;
}

Keel__Cluster__Command *cf_ft(const char *uuid, uint64_t gen, int state, uint64_t secondary,
			      uint64_t new_epoch)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_set_ft__init(&b->u.vm_set_ft);
	b->u.vm_set_ft.uuid = (char *)uuid;
	b->u.vm_set_ft.expect_generation = gen;
	b->u.vm_set_ft.state = state;
	b->u.vm_set_ft.secondary = secondary;
	b->u.vm_set_ft.new_epoch = new_epoch;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_FT;
	b->cmd.vm_set_ft = &b->u.vm_set_ft;
	return &b->cmd;
}

Keel__Cluster__Command *cf_op_begin(uint64_t id, const char *vm, uint64_t src, uint64_t dst,
				    uint64_t epoch)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__op_begin__init(&b->u.op_begin);
	keel__cluster__operation__init(&b->op);
	b->op.id = id;
	b->op.kind = KEEL__CLUSTER__OP_KIND__OP_MIGRATE;
	b->op.vm = (char *)vm;
	b->op.source = src;
	b->op.destination = dst;
	b->op.epoch = epoch;
	b->op.started_at_ms = 1000;
	b->u.op_begin.op = &b->op;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN;
	b->cmd.op_begin = &b->u.op_begin;
	return &b->cmd;
}

Keel__Cluster__Command *cf_op_advance(uint64_t id, uint32_t phase)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__op_advance__init(&b->u.op_advance);
	b->u.op_advance.id = id;
	b->u.op_advance.phase = phase;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_ADVANCE;
	b->cmd.op_advance = &b->u.op_advance;
	return &b->cmd;
}

Keel__Cluster__Command *cf_op_end(uint64_t id)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__op_end__init(&b->u.op_end);
	b->u.op_end.id = id;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_END;
	b->cmd.op_end = &b->u.op_end;
	return &b->cmd;
}

Keel__Cluster__Command *cf_token_add(uint8_t id, uint8_t hash, uint64_t expires_s, uint64_t at_s)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__token_add__init(&b->u.token_add);
	keel__cluster__join_token_record__init(&b->token);
	memset(b->token_id, id, sizeof(b->token_id));
	memset(b->hash, hash, sizeof(b->hash));
	b->token.id.data = b->token_id;
	b->token.id.len = sizeof(b->token_id);
	b->token.secret_hash.data = b->hash;
	b->token.secret_hash.len = sizeof(b->hash);
	b->token.expires_s = expires_s;
	b->u.token_add.token = &b->token;
	b->u.token_add.at_s = at_s;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_TOKEN_ADD;
	b->cmd.token_add = &b->u.token_add;
	return &b->cmd;
}

Keel__Cluster__Command *cf_host_join(uint64_t id, const char *name, const char *vmk0, uint8_t token,
				     uint8_t hash, uint64_t at_s)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__host_join__init(&b->u.host_join);
	fill_host(b, id, name, vmk0);
	memset(b->token_id, token, sizeof(b->token_id));
	memset(b->hash, hash, sizeof(b->hash));
	b->u.host_join.host = &b->host;
	b->u.host_join.token_id.data = b->token_id;
	b->u.host_join.token_id.len = sizeof(b->token_id);
	b->u.host_join.secret_hash.data = b->hash;
	b->u.host_join.secret_hash.len = sizeof(b->hash);
	b->u.host_join.at_s = at_s;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_JOIN;
	b->cmd.host_join = &b->u.host_join;
	return &b->cmd;
}

Keel__Cluster__Command *cf_event_add(uint64_t host, const char *vm, const char *message,
				     uint64_t at_ms)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__event_add__init(&b->u.event_add);
	keel__cluster__event__init(&b->event);
	b->event.host = host;
	b->event.vm = (char *)vm;
	b->event.message = (char *)message;
	b->event.at_ms = at_ms;
	b->u.event_add.event = &b->event;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
	b->cmd.event_add = &b->u.event_add;
	return &b->cmd;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* Applies raw bytes as one entry; returns the FSM's result. */
const struct cd_result *cf_apply_bytes(const void *data, size_t len)
{
	struct raft_buffer buf = {.base = (void *)data, .len = len};
	void *result = NULL;

	assert_int_equal(cd_fsm_apply(&cf_fsm.raft, &buf, &result), 0);
	assert_non_null(result);
	return result;
}

const struct cd_result *cf_apply_n(Keel__Cluster__Command *const *cmds, unsigned n)
{
	struct kb_errmsg e = {{0}};
	struct raft_buffer buf;
	const struct cd_result *r;

	assert_int_equal(cd_batch_encode(cmds, n, &buf, &e), 0);
	r = cf_apply_bytes(buf.base, buf.len);
	raft_free(buf.base);
	return r;
}

/* Applies one command; returns its code. */
int cf_apply1(Keel__Cluster__Command *c)
{
	const struct cd_result *r = cf_apply_n(&c, 1);

	assert_int_equal(r->status, 0);
	assert_int_equal(r->n, 1);
	if (r->cmds[0].code != 0)
		assert_true(r->cmds[0].reason[0] != '\0');
	return r->cmds[0].code;
}

/* The state's snapshot bytes (caller frees with raft_free). */
struct raft_buffer cf_snap(const struct cd_fsm *f)
{
	struct kb_errmsg e = {{0}};
	struct raft_buffer b;

	assert_int_equal(cd_snapshot_encode(&f->state, &b, &e), 0);
	return b;
}

bool cf_same_as(const struct raft_buffer *b)
{
	struct raft_buffer now = cf_snap(&cf_fsm);
	bool same = now.len == b->len && memcmp(now.base, b->base, b->len) == 0;

	raft_free(now.base);
	return same;
}

/* A small populated cluster: config, hosts 1..3, VMs A (owner 1) and B (owner 2). */
void cf_refused_at(Keel__Cluster__Command *c, int code, int line)
{
	struct raft_buffer before = cf_snap(&cf_fsm);
	int got = cf_apply1(c);

	if (got != code)
		fail_msg("line %d: %d, not %d", line, got, code);
	assert_true(cf_same_as(&before));
	raft_free(before.base);
}

void cf_expect_event(unsigned i, int kind, uint64_t at_ms, uint64_t host, const char *vm,
		     const char *message)
{
	const struct cd_event *ev = cd_state_event_at(cd_fsm_state(&cf_fsm), i);

	assert_non_null(ev);
	assert_int_equal(ev->seq, i + 1);
	assert_int_equal(ev->kind, kind);
	assert_int_equal(ev->at_ms, at_ms);
	assert_int_equal(ev->host, host);
	assert_string_equal(ev->vm, vm);
	assert_string_equal(ev->message, message);
}

void cf_populate(void)
{
	assert_int_equal(cf_apply1(cf_config("prod", CLUSTER1, 1000)), 0);
	assert_int_equal(cf_apply1(cf_host_add(1, "esx1", "198.18.0.1:7000")), 0);
	assert_int_equal(cf_apply1(cf_host_add(2, "esx2", "198.18.0.2:7000")), 0);
	assert_int_equal(cf_apply1(cf_host_add(3, "esx3", "198.18.0.3:7000")), 0);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_A, "/vmfs/volumes/ds1/a/a.vmx", 1, 1)), 0);
	assert_int_equal(cf_apply1(cf_vm_reg(UUID_B, "/vmfs/volumes/ds1/b/b.vmx", 2, 1)), 0);
}

int cf_setup(void **state)
{
	cd_fsm_init(&cf_fsm);
	return 0;
}

int cf_teardown(void **state)
{
	kb_heap_fail_reset();
	cd_fsm_close(&cf_fsm);
	return 0;
}

/* ---- placement rules and DRS settings (their own storage, eight at a time) -------------- */

struct rulebuf {
	Keel__Cluster__Command cmd;
	Keel__Cluster__RuleSet set;
	Keel__Cluster__RuleRemove remove;
	Keel__Cluster__Rule rule;
	Keel__Cluster__SetConfig set_config;
	Keel__Cluster__ClusterConfig cfg;
	Keel__Cluster__DrsSettings drs;
};

static struct rulebuf rbs[8];
static unsigned rb_next;

static struct rulebuf *rb_new(void)
{
	struct rulebuf *b = &rbs[rb_next++ % 8];

	memset(b, 0, sizeof(*b));
	keel__cluster__command__init(&b->cmd);
	return b;
}

Keel__Cluster__Command *cf_rule_set(const char *name, int kind, bool mandatory, char **vms,
				    size_t n_vms, uint64_t *hosts, size_t n_hosts, uint64_t at_ms)
{
	struct rulebuf *b = rb_new();

	keel__cluster__rule_set__init(&b->set);
	keel__cluster__rule__init(&b->rule);
	b->rule.name = (char *)name;
	b->rule.kind = kind;
	b->rule.mandatory = mandatory;
	b->rule.vms = vms;
	b->rule.n_vms = n_vms;
	b->rule.hosts = hosts;
	b->rule.n_hosts = n_hosts;
	b->set.rule = &b->rule;
	b->set.at_ms = at_ms;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_RULE_SET;
	b->cmd.rule_set = &b->set;
	return &b->cmd;
}

Keel__Cluster__Command *cf_rule_remove(const char *name, uint64_t at_ms)
{
	struct rulebuf *b = rb_new();

	keel__cluster__rule_remove__init(&b->remove);
	b->remove.name = (char *)name;
	b->remove.at_ms = at_ms;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_RULE_REMOVE;
	b->cmd.rule_remove = &b->remove;
	return &b->cmd;
}

Keel__Cluster__Command *cf_config_drs(const char *name, const char *id, uint32_t timeout,
				      int automation, uint32_t threshold, uint32_t interval_s,
				      uint32_t hold_s, uint32_t max_moves)
{
	struct rulebuf *b = rb_new();

	keel__cluster__set_config__init(&b->set_config);
	keel__cluster__cluster_config__init(&b->cfg);
	keel__cluster__drs_settings__init(&b->drs);
	b->cfg.name = (char *)name;
	b->cfg.cluster_id = (char *)id;
	b->cfg.format_version = 1;
	b->cfg.failure_timeout_ms = timeout;
	b->cfg.isolation_response = KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF;
	b->drs.automation = automation;
	b->drs.threshold = threshold;
	b->drs.interval_s = interval_s;
	b->drs.hold_s = hold_s;
	b->drs.max_moves = max_moves;
	b->cfg.drs = &b->drs;
	b->set_config.config = &b->cfg;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	b->cmd.set_config = &b->set_config;
	return &b->cmd;
}
