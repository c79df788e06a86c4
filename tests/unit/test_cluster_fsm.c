/*
 * Tests for clusterd's state machine without Raft: every command's validation (the owner
 * rule above all: epochs only grow, owners must exist), batch semantics (each command
 * applied or refused on its own, in order; an undecodable batch refused whole), snapshot
 * round trips, and corrupted, truncated and oversized command batches and snapshots refused
 * without changing the state. Out-of-memory during apply and restore changes nothing.
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
#include "clusterd/fsm.h"
#include "clusterd/snapshot.h"
#include "lib/crc.h"
#include "lib/heap.h"

#define UUID_A	 "11111111-2222-3333-4444-555555555555"
#define UUID_B	 "11111111-2222-3333-4444-666666666666"
#define UUID_C	 "11111111-2222-3333-4444-777777777777"
#define CLUSTER1 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define CLUSTER2 "aaaaaaaa-bbbb-cccc-dddd-ffffffffffff"

static struct cd_fsm F;

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
	} u;
	Keel__Cluster__ClusterConfig cfg;
	Keel__Cluster__Host host;
	Keel__Cluster__Capacity cap;
	Keel__Cluster__Vm vm;
	Keel__Cluster__HaSettings ha;
	Keel__Cluster__Operation op;
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

static Keel__Cluster__Command *c_config(const char *name, const char *id, uint32_t timeout)
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

static Keel__Cluster__Command *c_host_add(uint64_t id, const char *name, const char *vmk0)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__host_add__init(&b->u.host_add);
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
	b->u.host_add.host = &b->host;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
	b->cmd.host_add = &b->u.host_add;
	return &b->cmd;
}

static Keel__Cluster__Command *c_host_update(uint64_t id, int state, uint64_t at)
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

static Keel__Cluster__Command *c_host_remove(uint64_t id)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__host_remove__init(&b->u.host_remove);
	b->u.host_remove.id = id;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE;
	b->cmd.host_remove = &b->u.host_remove;
	return &b->cmd;
}

static Keel__Cluster__Command *c_vm_reg(const char *uuid, const char *path, uint64_t owner,
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

static Keel__Cluster__Command *c_vm_unreg(const char *uuid)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_unregister__init(&b->u.vm_unregister);
	b->u.vm_unregister.uuid = (char *)uuid;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_UNREGISTER;
	b->cmd.vm_unregister = &b->u.vm_unregister;
	return &b->cmd;
}

static Keel__Cluster__Command *c_owner(const char *uuid, uint64_t owner, uint64_t epoch)
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

static Keel__Cluster__Command *c_power(const char *uuid, int power)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_set_power__init(&b->u.vm_set_power);
	b->u.vm_set_power.uuid = (char *)uuid;
	b->u.vm_set_power.desired = power;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER;
	b->cmd.vm_set_power = &b->u.vm_set_power;
	return &b->cmd;
}

static Keel__Cluster__Command *c_ha(const char *uuid, int prio, char **after, size_t n)
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

static Keel__Cluster__Command *c_ft(const char *uuid, int role, const char *peer)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__vm_set_ft__init(&b->u.vm_set_ft);
	b->u.vm_set_ft.uuid = (char *)uuid;
	b->u.vm_set_ft.role = role;
	b->u.vm_set_ft.peer = (char *)peer;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_FT;
	b->cmd.vm_set_ft = &b->u.vm_set_ft;
	return &b->cmd;
}

static Keel__Cluster__Command *c_op_begin(uint64_t id, const char *vm, uint64_t src, uint64_t dst,
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

static Keel__Cluster__Command *c_op_advance(uint64_t id, uint32_t phase)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__op_advance__init(&b->u.op_advance);
	b->u.op_advance.id = id;
	b->u.op_advance.phase = phase;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_ADVANCE;
	b->cmd.op_advance = &b->u.op_advance;
	return &b->cmd;
}

static Keel__Cluster__Command *c_op_end(uint64_t id)
{
	struct cmdbuf *b = cb_new();

	keel__cluster__op_end__init(&b->u.op_end);
	b->u.op_end.id = id;
	b->cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_OP_END;
	b->cmd.op_end = &b->u.op_end;
	return &b->cmd;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* Applies raw bytes as one entry; returns the FSM's result. */
static const struct cd_result *apply_bytes(const void *data, size_t len)
{
	struct raft_buffer buf = {.base = (void *)data, .len = len};
	void *result = NULL;

	assert_int_equal(cd_fsm_apply(&F.raft, &buf, &result), 0);
	assert_non_null(result);
	return result;
}

static const struct cd_result *apply_n(Keel__Cluster__Command *const *cmds, unsigned n)
{
	struct kb_errmsg e = {{0}};
	struct raft_buffer buf;
	const struct cd_result *r;

	assert_int_equal(cd_batch_encode(cmds, n, &buf, &e), 0);
	r = apply_bytes(buf.base, buf.len);
	raft_free(buf.base);
	return r;
}

/* Applies one command; returns its code. */
static int apply1(Keel__Cluster__Command *c)
{
	const struct cd_result *r = apply_n(&c, 1);

	assert_int_equal(r->status, 0);
	assert_int_equal(r->n, 1);
	if (r->cmds[0].code != 0)
		assert_true(r->cmds[0].reason[0] != '\0');
	return r->cmds[0].code;
}

/* The state's snapshot bytes (caller frees with raft_free). */
static struct raft_buffer snap(const struct cd_fsm *f)
{
	struct kb_errmsg e = {{0}};
	struct raft_buffer b;

	assert_int_equal(cd_snapshot_encode(&f->state, &b, &e), 0);
	return b;
}

static bool same_as(const struct raft_buffer *b)
{
	struct raft_buffer now = snap(&F);
	bool same = now.len == b->len && memcmp(now.base, b->base, b->len) == 0;

	raft_free(now.base);
	return same;
}

/* A small populated cluster: config, hosts 1..3, VMs A (owner 1) and B (owner 2). */
static void populate(void)
{
	assert_int_equal(apply1(c_config("prod", CLUSTER1, 1000)), 0);
	assert_int_equal(apply1(c_host_add(1, "esx1", "198.18.0.1:7000")), 0);
	assert_int_equal(apply1(c_host_add(2, "esx2", "198.18.0.2:7000")), 0);
	assert_int_equal(apply1(c_host_add(3, "esx3", "198.18.0.3:7000")), 0);
	assert_int_equal(apply1(c_vm_reg(UUID_A, "/vmfs/volumes/ds1/a/a.vmx", 1, 1)), 0);
	assert_int_equal(apply1(c_vm_reg(UUID_B, "/vmfs/volumes/ds1/b/b.vmx", 2, 1)), 0);
}

static int setup(void **state)
{
	cd_fsm_init(&F);
	return 0;
}

static int teardown(void **state)
{
	kb_heap_fail_reset();
	cd_fsm_close(&F);
	return 0;
}

/* ---- commands ---------------------------------------------------------------------- */

static void test_config(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);

	assert_false(s->config.set);
	assert_int_equal(apply1(c_config("bad name", CLUSTER1, 1000)), -EINVAL);
	assert_int_equal(apply1(c_config("prod", "not-a-uuid", 1000)), -EINVAL);
	assert_int_equal(apply1(c_config("prod", CLUSTER1, 10)), -EINVAL);
	assert_false(s->config.set);
	assert_int_equal(apply1(c_config("prod", CLUSTER1, 1000)), 0);
	assert_true(s->config.set);
	assert_string_equal(s->config.name, "prod");
	assert_int_equal(apply1(c_config("renamed", CLUSTER1, 2000)), 0);
	assert_string_equal(s->config.name, "renamed");
	assert_int_equal(s->config.failure_timeout_ms, 2000);
	assert_int_equal(apply1(c_config("renamed", CLUSTER2, 2000)), KB_ESTATE);
	assert_string_equal(s->config.cluster_id, CLUSTER1);
}

static void test_host_add(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);
	Keel__Cluster__Command *c;

	assert_int_equal(apply1(c_host_add(1, "esx1", "198.18.0.1:7000")), 0);
	assert_int_equal(apply1(c_host_add(1, "esx9", "198.18.0.9:7000")), KB_EEXIST);
	assert_int_equal(apply1(c_host_add(2, "esx1", "198.18.0.9:7000")), KB_EEXIST);
	assert_int_equal(apply1(c_host_add(2, "esx2", "198.18.0.1:7000")), KB_EEXIST);
	assert_int_equal(apply1(c_host_add(0, "esx2", "198.18.0.2:7000")), -EINVAL);
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
		assert_int_equal(apply1(c_host_add(2, "esx2", bad[i])), -EINVAL);
	c = c_host_add(2, "esx2", "198.18.0.2:7000");
	c->host_add->host->state = 0;
	assert_int_equal(apply1(c), -EINVAL);
	c = c_host_add(2, "esx2", "198.18.0.2:7000");
	c->host_add->host->vmk2 = "nope";
	assert_int_equal(apply1(c), -EINVAL);
	c = c_host_add(2, "esx2", "198.18.0.2:7000");
	c->host_add->host = NULL;
	assert_int_equal(apply1(c), -EINVAL);
	assert_int_equal(cd_state_n_hosts(s), 1);
	/* Sorted by id whatever the order of arrival. */
	assert_int_equal(apply1(c_host_add(9, "esx9", "198.18.0.9:7000")), 0);
	assert_int_equal(apply1(c_host_add(5, "esx5", "198.18.0.5:7000")), 0);
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
	const struct cd_state *s = cd_fsm_state(&F);

	populate();
	assert_int_equal(apply1(c_host_update(7, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 5)),
			 KB_ENOTFOUND);
	assert_int_equal(apply1(c_host_update(2, 99, 5)), -EINVAL);
	assert_int_equal(apply1(c_host_update(2, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 5)), 0);
	assert_int_equal(cd_state_host(s, 2)->state, KEEL__CLUSTER__HOST_STATE__HOST_FAILED);
	assert_int_equal(cd_state_host(s, 2)->last_change_ms, 5);
	/* Host 2 owns VM B: not removable until B moves. */
	assert_int_equal(apply1(c_host_remove(2)), KB_ESTATE);
	assert_int_equal(apply1(c_owner(UUID_B, 3, 2)), 0);
	assert_int_equal(apply1(c_host_remove(2)), 0);
	assert_null(cd_state_host(s, 2));
	assert_int_equal(apply1(c_host_remove(2)), KB_ENOTFOUND);
	/* A host that left is final: no update, not an owner. */
	assert_int_equal(apply1(c_host_update(3, KEEL__CLUSTER__HOST_STATE__HOST_LEFT, 6)), 0);
	assert_int_equal(apply1(c_host_update(3, KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED, 7)),
			 KB_ESTATE);
	assert_int_equal(apply1(c_owner(UUID_A, 3, 2)), KB_ESTATE);
	assert_int_equal(apply1(c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 3, 1)), KB_ESTATE);
}

static void test_vm_register(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);
	Keel__Cluster__Command *c;

	populate();
	assert_int_equal(apply1(c_vm_reg(UUID_A, "/vmfs/volumes/ds1/x/x.vmx", 1, 1)), KB_EEXIST);
	assert_int_equal(apply1(c_vm_reg(UUID_C, "/vmfs/volumes/ds1/a/a.vmx", 1, 1)), KB_EEXIST);
	assert_int_equal(apply1(c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 42, 1)),
			 KB_ENOTFOUND);
	assert_int_equal(apply1(c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 0, 1)), -EINVAL);
	assert_int_equal(apply1(c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 0)), -EINVAL);
	assert_int_equal(apply1(c_vm_reg("11111111-2222-3333-4444-55555555555X",
					 "/vmfs/volumes/ds1/c/c.vmx", 1, 1)),
			 -EINVAL);
	assert_int_equal(apply1(c_vm_reg("11111111-2222-3333-4444-AAAAAAAAAAAA",
					 "/vmfs/volumes/ds1/c/c.vmx", 1, 1)),
			 -EINVAL);
	const char *bad[] = {"relative/c.vmx", "/vmfs/volumes/ds1/c/c.txt",
			     "/vmfs/volumes/ds1/../c.vmx", "/vmfs//c.vmx", "/vmfs/\x01.vmx"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(apply1(c_vm_reg(UUID_C, bad[i], 1, 1)), -EINVAL);
	c = c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	c->vm_register->vm->ft_role = KEEL__CLUSTER__FT_ROLE__FT_PRIMARY;
	c->vm_register->vm->ft_peer = UUID_A;
	assert_int_equal(apply1(c), -EINVAL);
	c = c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	c->vm_register->vm->desired_power = 0;
	assert_int_equal(apply1(c), -EINVAL);
	assert_int_equal(cd_state_n_vms(s), 2);
	assert_int_equal(apply1(c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 7)), 0);
	assert_int_equal(cd_state_vm(s, UUID_C)->epoch, 7);
	assert_int_equal(cd_state_n_vms_owned(s, 1), 2);
}

static void test_change_owner_epochs_only_grow(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);

	populate();
	assert_int_equal(apply1(c_owner(UUID_A, 2, 1)), KB_ESTATE); /* equal */
	assert_int_equal(apply1(c_owner(UUID_A, 2, 0)), KB_ESTATE); /* lower */
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 1);
	assert_int_equal(apply1(c_owner(UUID_A, 2, 5)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 5);
	/* A stale change (an old leader's proposal arriving late) is refused. */
	assert_int_equal(apply1(c_owner(UUID_A, 1, 4)), KB_ESTATE);
	assert_int_equal(apply1(c_owner(UUID_A, 1, 5)), KB_ESTATE);
	assert_int_equal(cd_state_vm(s, UUID_A)->owner, 2);
	/* The new owner must exist; the VM must exist. */
	assert_int_equal(apply1(c_owner(UUID_A, 42, 6)), KB_ENOTFOUND);
	assert_int_equal(apply1(c_owner(UUID_C, 1, 6)), KB_ENOTFOUND);
	assert_int_equal(apply1(c_owner("nope", 1, 6)), -EINVAL);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 5);
	/* Same owner at a higher epoch (a restart in place) is a change too. */
	assert_int_equal(apply1(c_owner(UUID_A, 2, 6)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->epoch, 6);
}

static void test_vm_settings(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);
	char *after[] = {UUID_B};
	char *self[] = {UUID_A};
	char *bad[] = {"x"};
	char *many[17];

	populate();
	assert_int_equal(apply1(c_power(UUID_A, KEEL__CLUSTER__POWER_STATE__POWER_OFF)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->desired_power,
			 KEEL__CLUSTER__POWER_STATE__POWER_OFF);
	assert_int_equal(apply1(c_power(UUID_A, 0)), -EINVAL);
	assert_int_equal(apply1(c_power(UUID_C, KEEL__CLUSTER__POWER_STATE__POWER_ON)),
			 KB_ENOTFOUND);

	assert_int_equal(
	    apply1(c_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH, after, 1)), 0);
	assert_int_equal(cd_state_vm(s, UUID_A)->priority,
			 KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH);
	assert_int_equal(cd_state_vm(s, UUID_A)->n_restart_after, 1);
	assert_string_equal(cd_state_vm(s, UUID_A)->restart_after[0], UUID_B);
	assert_int_equal(apply1(c_ha(UUID_A, 0, NULL, 0)), -EINVAL);
	assert_int_equal(
	    apply1(c_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, self, 1)), -EINVAL);
	assert_int_equal(apply1(c_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, bad, 1)),
			 -EINVAL);
	for (int i = 0; i < 17; i++)
		many[i] = UUID_B;
	assert_int_equal(
	    apply1(c_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW, many, 17)), -EINVAL);
	assert_int_equal(cd_state_vm(s, UUID_A)->priority,
			 KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH);

	/* FT: the peer must exist and not be the VM itself; paired VMs stay registered. */
	assert_int_equal(apply1(c_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_C)),
			 KB_ENOTFOUND);
	assert_int_equal(apply1(c_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_A)), -EINVAL);
	assert_int_equal(apply1(c_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_NONE, UUID_B)), -EINVAL);
	assert_int_equal(apply1(c_ft(UUID_A, 7, UUID_B)), -EINVAL);
	assert_int_equal(apply1(c_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_B)), 0);
	assert_int_equal(apply1(c_ft(UUID_B, KEEL__CLUSTER__FT_ROLE__FT_SECONDARY, UUID_A)), 0);
	assert_string_equal(cd_state_vm(s, UUID_B)->ft_peer, UUID_A);
	assert_int_equal(apply1(c_vm_unreg(UUID_B)), KB_ESTATE);
	assert_int_equal(apply1(c_ft(UUID_B, KEEL__CLUSTER__FT_ROLE__FT_NONE, "")), 0);
	assert_int_equal(apply1(c_vm_unreg(UUID_B)), KB_ESTATE); /* A still names B */
	assert_int_equal(apply1(c_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_NONE, NULL)), 0);
	assert_int_equal(apply1(c_vm_unreg(UUID_B)), 0);
	assert_null(cd_state_vm(s, UUID_B));
	assert_int_equal(apply1(c_vm_unreg(UUID_B)), KB_ENOTFOUND);
}

static void test_operations(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);

	populate();
	assert_int_equal(apply1(c_op_begin(0, UUID_A, 1, 2, 1)), -EINVAL);
	assert_int_equal(apply1(c_op_begin(1, UUID_C, 1, 2, 1)), KB_ENOTFOUND);
	assert_int_equal(apply1(c_op_begin(1, UUID_A, 1, 42, 1)), KB_ENOTFOUND);
	assert_int_equal(apply1(c_op_begin(1, UUID_A, 42, 2, 1)), KB_ENOTFOUND);
	assert_int_equal(apply1(c_op_begin(1, UUID_A, 2, 2, 1)), -EINVAL);
	assert_int_equal(apply1(c_op_begin(1, UUID_A, 1, 2, 2)), KB_ESTATE); /* wrong epoch */
	assert_int_equal(apply1(c_op_begin(1, UUID_A, 1, 2, 1)), 0);
	assert_int_equal(apply1(c_op_begin(1, UUID_B, 2, 3, 1)), KB_EEXIST);
	assert_int_equal(apply1(c_op_begin(2, UUID_A, 1, 3, 1)), KB_ESTATE); /* VM busy */
	assert_non_null(cd_state_op_for_vm(s, UUID_A));
	/* Hosts and VMs in an operation stay. */
	assert_int_equal(apply1(c_vm_unreg(UUID_A)), KB_ESTATE);
	assert_int_equal(apply1(c_owner(UUID_B, 3, 2)), 0);
	assert_int_equal(apply1(c_host_remove(2)), KB_ESTATE);
	/* Phases only grow. */
	assert_int_equal(apply1(c_op_advance(1, 0)), KB_ESTATE);
	assert_int_equal(apply1(c_op_advance(1, 2)), 0);
	assert_int_equal(apply1(c_op_advance(1, 1)), KB_ESTATE);
	assert_int_equal(apply1(c_op_advance(9, 3)), KB_ENOTFOUND);
	assert_int_equal(cd_state_op(s, 1)->phase, 2);
	/* The switchover of a migration: owner at E+1, then the end. */
	assert_int_equal(apply1(c_owner(UUID_A, 2, 2)), 0);
	assert_int_equal(apply1(c_op_end(1)), 0);
	assert_int_equal(apply1(c_op_end(1)), KB_ENOTFOUND);
	assert_int_equal(cd_state_n_ops(s), 0);
	assert_int_equal(apply1(c_host_remove(1)), 0);
}

static void test_empty_command(void **state)
{
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;

	assert_int_equal(apply1(&c), -EINVAL);
	assert_int_equal(cd_fsm_state(&F)->applied, 0);
}

/* Restores a copy of data into F; returns the code (the copy is freed either way). */
static int restore_copy(const void *data, size_t len)
{
	struct raft_buffer b = {.base = raft_malloc(len ? len : 1), .len = len};
	int rv;

	memcpy(b.base, data, len);
	rv = cd_fsm_restore(&F.raft, &b);
	if (rv != 0)
		raft_free(b.base);
	return rv;
}

/* ---- batches ----------------------------------------------------------------------- */

static void test_batch_each_command_on_its_own(void **state)
{
	const struct cd_state *s = cd_fsm_state(&F);
	Keel__Cluster__Command *cmds[4];
	const struct cd_result *r;

	populate();
	/* In order: the third command sees the first; the bad one in the middle is refused
	 * alone. */
	cmds[0] = c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	cmds[1] = c_owner(UUID_A, 2, 1); /* epoch does not grow */
	cmds[2] = c_owner(UUID_C, 3, 2);
	cmds[3] = c_host_add(1, "dup", "198.18.0.77:7000");
	r = apply_n(cmds, 4);
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
	r = apply_n(NULL, 0);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->n, 0);
}

static void test_batch_undecodable(void **state)
{
	Keel__Cluster__Command *cmds[2];
	struct kb_errmsg e = {{0}};
	const struct cd_result *r;
	struct raft_buffer good, before;
	uint8_t *big;
	uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};

	populate();
	before = snap(&F);
	cmds[0] = c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	cmds[1] = c_owner(UUID_A, 2, 9);
	assert_int_equal(cd_batch_encode(cmds, 2, &good, &e), 0);
	/* Every truncation of a good batch: refused whole, or (where the cut falls on a
	 * boundary and leaves a valid prefix) a shorter batch; never half a command. */
	for (size_t n = 1; n < good.len; n++) {
		r = apply_bytes(good.base, n);
		if (r->status != 0) {
			assert_true(same_as(&before));
			assert_true(r->reason[0] != '\0');
			assert_int_equal(r->n, 0);
		} else {
			/* The cut left a valid shorter batch: start again from before. */
			cd_fsm_close(&F);
			cd_fsm_init(&F);
			assert_int_equal(restore_copy(before.base, before.len), 0);
		}
	}
	raft_free(good.base);

	r = apply_bytes(garbage, sizeof(garbage));
	assert_int_equal(r->status, KB_EPROTO);

	/* Oversized. */
	big = calloc(1, CD_BATCH_MAX_BYTES + 1);
	r = apply_bytes(big, CD_BATCH_MAX_BYTES + 1);
	assert_int_equal(r->status, KB_ETOOBIG);
	free(big);

	/* Another format version. */
	{
		Keel__Cluster__CommandBatch b = KEEL__CLUSTER__COMMAND_BATCH__INIT;
		uint8_t out[256];
		size_t len;

		b.format_version = 2;
		b.n_commands = 1;
		b.commands = cmds;
		len = keel__cluster__command_batch__pack(&b, out);
		r = apply_bytes(out, len);
		assert_int_equal(r->status, KB_EVERSION);
	}
	/* Too many commands. */
	{
		Keel__Cluster__Command *many[CD_BATCH_MAX_COMMANDS + 1];
		Keel__Cluster__Command empty = KEEL__CLUSTER__COMMAND__INIT;
		Keel__Cluster__CommandBatch b = KEEL__CLUSTER__COMMAND_BATCH__INIT;
		struct raft_buffer tmp;
		uint8_t *out;
		size_t len;

		for (unsigned i = 0; i <= CD_BATCH_MAX_COMMANDS; i++)
			many[i] = &empty;
		assert_int_equal(cd_batch_encode(many, CD_BATCH_MAX_COMMANDS + 1, &tmp, &e),
				 KB_ETOOBIG);
		b.format_version = 1;
		b.n_commands = CD_BATCH_MAX_COMMANDS + 1;
		b.commands = many;
		len = keel__cluster__command_batch__get_packed_size(&b);
		out = malloc(len);
		keel__cluster__command_batch__pack(&b, out);
		r = apply_bytes(out, len);
		assert_int_equal(r->status, KB_ETOOBIG);
		free(out);
	}
	assert_true(same_as(&before));
	raft_free(before.base);
}

/* ---- snapshots --------------------------------------------------------------------- */

static void test_snapshot_round_trip(void **state)
{
	struct cd_fsm g;
	struct raft_buffer *bufs, copy, again;
	unsigned n;
	char *after[] = {UUID_B};

	populate();
	assert_int_equal(
	    apply1(c_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH, after, 1)), 0);
	assert_int_equal(apply1(c_ft(UUID_A, KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, UUID_B)), 0);
	assert_int_equal(apply1(c_op_begin(4, UUID_B, 2, 3, 1)), 0);
	assert_int_equal(cd_fsm_snapshot(&F.raft, &bufs, &n), 0);
	assert_int_equal(n, 1);
	copy.len = bufs[0].len;
	copy.base = raft_malloc(copy.len);
	memcpy(copy.base, bufs[0].base, copy.len);

	cd_fsm_init(&g);
	assert_int_equal(cd_fsm_restore(&g.raft, &copy), 0); /* takes copy.base */
	again = snap(&g);
	assert_int_equal(again.len, bufs[0].len);
	assert_memory_equal(again.base, bufs[0].base, again.len);
	assert_int_equal(cd_fsm_state(&g)->applied, cd_fsm_state(&F)->applied);
	assert_int_equal(cd_state_op(cd_fsm_state(&g), 4)->destination, 3);
	raft_free(again.base);
	cd_fsm_close(&g);
	raft_free(bufs[0].base);
	raft_free(bufs);
}

/* A snapshot around an arbitrary State message, with valid header and checksums. */
static struct raft_buffer wrap_state(const Keel__Cluster__State *st)
{
	size_t len = keel__cluster__state__get_packed_size(st);
	struct raft_buffer b = {.base = raft_malloc(CD_SNAPSHOT_HEADER_SIZE + len),
				.len = CD_SNAPSHOT_HEADER_SIZE + len};
	uint8_t *p = b.base;

	keel__cluster__state__pack(st, p + CD_SNAPSHOT_HEADER_SIZE);
	memcpy(p, CD_SNAPSHOT_MAGIC, 4);
	memset(p + 4, 0, 20);
	p[4] = CD_SNAPSHOT_VERSION;
	for (int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(len >> (8 * i));
	uint32_t c = kb_crc32c(0, p + CD_SNAPSHOT_HEADER_SIZE, len);
	for (int i = 0; i < 4; i++)
		p[16 + i] = (uint8_t)(c >> (8 * i));
	c = kb_crc32c(0, p, 20);
	for (int i = 0; i < 4; i++)
		p[20 + i] = (uint8_t)(c >> (8 * i));
	return b;
}

static void test_snapshot_corrupt(void **state)
{
	struct raft_buffer good, before;
	uint8_t *p;

	populate();
	good = snap(&F);
	cd_fsm_close(&F);
	cd_fsm_init(&F);
	assert_int_equal(apply1(c_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = snap(&F);
	p = malloc(good.len);

	/* Every truncation. */
	for (size_t n = 0; n < good.len; n++)
		assert_int_equal(restore_copy(good.base, n), RAFT_MALFORMED);
	/* Every single-bit flip in the header, and a sample over the payload. */
	for (size_t i = 0; i < good.len; i += i < CD_SNAPSHOT_HEADER_SIZE ? 1 : 7) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(p, good.base, good.len);
			p[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(restore_copy(p, good.len), RAFT_MALFORMED);
		}
	}
	/* Trailing bytes. */
	{
		uint8_t *q = malloc(good.len + 1);

		memcpy(q, good.base, good.len);
		q[good.len] = 0;
		assert_int_equal(restore_copy(q, good.len + 1), RAFT_MALFORMED);
		free(q);
	}
	assert_true(same_as(&before));
	/* Decoder codes. */
	{
		struct cd_state s;
		struct kb_errmsg e = {{0}};

		cd_state_init(&s);
		assert_int_equal(cd_snapshot_decode(good.base, 10, &s, &e), KB_ETRUNCATED);
		memcpy(p, good.base, good.len);
		p[30] ^= 1;
		assert_int_equal(cd_snapshot_decode(p, good.len, &s, &e), KB_ECHECKSUM);
		assert_int_equal(cd_snapshot_decode(good.base, good.len, &s, &e), 0);
		cd_state_close(&s);
	}
	free(p);
	raft_free(good.base);
	raft_free(before.base);
}

static void test_snapshot_oversized_and_versions(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	struct raft_buffer b;
	struct kb_errmsg e = {{0}};
	struct cd_state s;
	uint8_t *p;

	cd_state_init(&s);
	st.format_version = 1;
	b = wrap_state(&st);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), 0);
	cd_state_close(&s);
	/* Header claiming more than the limit. */
	p = b.base;
	p[8 + 3] = 0x40; /* 1 GiB */
	p[20] ^= 0xff;	 /* recompute the header CRC below */
	{
		uint32_t c = kb_crc32c(0, p, 20);

		for (int i = 0; i < 4; i++)
			p[20 + i] = (uint8_t)(c >> (8 * i));
	}
	cd_state_init(&s);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_ETOOBIG);
	/* Unknown header version. */
	raft_free(b.base);
	b = wrap_state(&st);
	p = b.base;
	p[4] = 2;
	{
		uint32_t c = kb_crc32c(0, p, 20);

		for (int i = 0; i < 4; i++)
			p[20 + i] = (uint8_t)(c >> (8 * i));
	}
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_EVERSION);
	raft_free(b.base);
	/* Unknown state version. */
	st.format_version = 9;
	b = wrap_state(&st);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_EVERSION);
	raft_free(b.base);
	cd_state_close(&s);
}

/* Well-formed snapshots whose content breaks an invariant. */
static void test_snapshot_inconsistent(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	Keel__Cluster__Host h[2], *hp[2] = {&h[0], &h[1]};
	Keel__Cluster__Vm v[2], *vp[2] = {&v[0], &v[1]};
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	Keel__Cluster__Operation o = KEEL__CLUSTER__OPERATION__INIT, *op = &o;
	struct raft_buffer b, before;

	assert_int_equal(apply1(c_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = snap(&F);
	ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW;
	for (int i = 0; i < 2; i++) {
		keel__cluster__host__init(&h[i]);
		h[i].id = (uint64_t)i + 1;
		h[i].name = i ? "esx2" : "esx1";
		h[i].vmk0 = i ? "198.18.0.2:7000" : "198.18.0.1:7000";
		h[i].state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
		h[i].role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
		keel__cluster__vm__init(&v[i]);
		v[i].uuid = i ? UUID_B : UUID_A;
		v[i].name = "vm";
		v[i].vmx_path = i ? "/ds/b.vmx" : "/ds/a.vmx";
		v[i].owner = 1;
		v[i].epoch = 1;
		v[i].desired_power = KEEL__CLUSTER__POWER_STATE__POWER_ON;
		v[i].ha = &ha;
	}
	o.id = 1;
	o.kind = KEEL__CLUSTER__OP_KIND__OP_RESTART;
	o.vm = UUID_A;
	o.destination = 2;
	o.epoch = 1;
	st.format_version = 1;
	st.hosts = hp;
	st.n_hosts = 2;
	st.vms = vp;
	st.n_vms = 2;
	st.ops = &op;
	st.n_ops = 1;

	/* The consistent one restores. */
	b = wrap_state(&st);
	assert_int_equal(restore_copy(b.base, b.len), 0);
	raft_free(b.base);
	assert_int_equal(cd_state_n_vms(cd_fsm_state(&F)), 2);
	cd_fsm_close(&F);
	cd_fsm_init(&F);
	assert_int_equal(apply1(c_host_add(7, "other", "198.18.0.7:7000")), 0);

#define REFUSED(mutate, undo)                                                  \
	do {                                                                   \
		mutate;                                                        \
		b = wrap_state(&st);                                           \
		assert_int_equal(restore_copy(b.base, b.len), RAFT_MALFORMED); \
		raft_free(b.base);                                             \
		assert_true(same_as(&before));                                 \
		undo;                                                          \
	} while (0)

	REFUSED(v[1].owner = 9, v[1].owner = 1);	 /* owner missing */
	REFUSED(h[1].id = 1, h[1].id = 2);		 /* duplicate host id */
	REFUSED(h[1].name = "esx1", h[1].name = "esx2"); /* duplicate name */
	REFUSED(h[1].vmk0 = h[0].vmk0, h[1].vmk0 = "198.18.0.2:7000");
	REFUSED(v[1].uuid = UUID_A, v[1].uuid = UUID_B); /* duplicate uuid */
	REFUSED(v[1].vmx_path = "/ds/a.vmx", v[1].vmx_path = "/ds/b.vmx");
	REFUSED((hp[0] = &h[1], hp[1] = &h[0]), (hp[0] = &h[0], hp[1] = &h[1])); /* order */
	REFUSED(v[0].epoch = 0, v[0].epoch = 1);
	REFUSED(o.destination = 5, o.destination = 2); /* op host missing */
	REFUSED(o.vm = UUID_C, o.vm = UUID_A);	       /* op VM missing */
	REFUSED((v[0].ft_role = KEEL__CLUSTER__FT_ROLE__FT_PRIMARY, v[0].ft_peer = UUID_C),
		(v[0].ft_role = 0, v[0].ft_peer = "")); /* FT peer missing */
	REFUSED(h[0].vmk0 = "localhost:1", h[0].vmk0 = "198.18.0.1:7000");
	REFUSED(v[0].ha = NULL, v[0].ha = &ha);
#undef REFUSED
	raft_free(before.base);
}

/* ---- out of memory ----------------------------------------------------------------- */

static void test_apply_oom_changes_nothing(void **state)
{
	Keel__Cluster__Command *cmds[3];
	struct kb_errmsg e = {{0}};
	struct raft_buffer buf, before;
	void *result;
	int rv;

	populate();
	cmds[0] = c_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	cmds[1] = c_host_add(4, "esx4", "198.18.0.4:7000");
	cmds[2] = c_owner(UUID_A, 2, 2);
	assert_int_equal(cd_batch_encode(cmds, 3, &buf, &e), 0);
	before = snap(&F);
	/* Fail the n-th allocation for growing n until apply goes through. */
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = cd_fsm_apply(&F.raft, &buf, &result);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, RAFT_NOMEM);
		assert_true(same_as(&before));
		assert_true(n < 100);
	}
	assert_int_equal(((struct cd_result *)result)->n_applied, 3);
	raft_free(buf.base);
	raft_free(before.base);
}

static void test_restore_oom_changes_nothing(void **state)
{
	struct raft_buffer good, before;
	int rv;

	populate();
	good = snap(&F);
	cd_fsm_close(&F);
	cd_fsm_init(&F);
	assert_int_equal(apply1(c_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = snap(&F);
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = restore_copy(good.base, good.len);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, RAFT_NOMEM);
		assert_true(same_as(&before));
		assert_true(n < 200);
	}
	assert_true(same_as(&good));
	raft_free(good.base);
	raft_free(before.base);
}

static void test_snapshot_threshold(void **state)
{
	assert_int_equal(cd_fsm_snapshot_threshold(&F), CD_SNAPSHOT_THRESHOLD_MIN);
	populate();
	assert_int_equal(cd_fsm_snapshot_threshold(&F), CD_SNAPSHOT_THRESHOLD_MIN);
	F.state.n_vms = 5000; /* only the counts matter */
	assert_true(cd_fsm_snapshot_threshold(&F) > CD_SNAPSHOT_THRESHOLD_MIN);
	F.state.n_vms = 60000;
	assert_int_equal(cd_fsm_snapshot_threshold(&F), CD_SNAPSHOT_THRESHOLD_MAX);
	F.state.n_vms = 2;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_add, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_update_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vm_register, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_change_owner_epochs_only_grow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vm_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_operations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_each_command_on_its_own, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_undecodable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_oversized_and_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_inconsistent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_oom_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_oom_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_threshold, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
