/*
 * Helpers shared by the cluster state machine tests: command builders, applying commands
 * and batches to a state machine without Raft, and snapshots of its state.
 */
#ifndef TEST_CLUSTER_FSM_HELPERS_H
#define TEST_CLUSTER_FSM_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clusterd/fsm.h"

#define UUID_A	 "11111111-2222-3333-4444-555555555555"
#define UUID_B	 "11111111-2222-3333-4444-666666666666"
#define UUID_C	 "11111111-2222-3333-4444-777777777777"
#define CLUSTER1 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define CLUSTER2 "aaaaaaaa-bbbb-cccc-dddd-ffffffffffff"

/* The state machine under test (cf_setup initializes it, cf_teardown closes it). */
extern struct cd_fsm cf_fsm;

/* Command builders: messages live in static storage (eight at a time) until reused. */
Keel__Cluster__Command *cf_config(const char *name, const char *id, uint32_t timeout);
Keel__Cluster__Command *cf_host_add(uint64_t id, const char *name, const char *vmk0);
Keel__Cluster__Command *cf_host_update(uint64_t id, int state, uint64_t at);
Keel__Cluster__Command *cf_host_remove(uint64_t id);
Keel__Cluster__Command *cf_vm_reg(const char *uuid, const char *path, uint64_t owner,
				  uint64_t epoch);
Keel__Cluster__Command *cf_vm_unreg(const char *uuid);
Keel__Cluster__Command *cf_owner(const char *uuid, uint64_t owner, uint64_t epoch);
Keel__Cluster__Command *cf_power(const char *uuid, int power);
Keel__Cluster__Command *cf_ha(const char *uuid, int prio, char **after, size_t n);
/* VmSetFt: expect_generation gen, the new state, its secondary, a failover's new epoch. */
Keel__Cluster__Command *cf_ft(const char *uuid, uint64_t gen, int state, uint64_t secondary,
			      uint64_t new_epoch);
Keel__Cluster__Command *cf_op_begin(uint64_t id, const char *vm, uint64_t src, uint64_t dst,
				    uint64_t epoch);
Keel__Cluster__Command *cf_op_advance(uint64_t id, uint32_t phase);
Keel__Cluster__Command *cf_op_end(uint64_t id);
/* A migration's switchover (VmChangeOwner with op) and an OpEnd with a reason. */
Keel__Cluster__Command *cf_owner_op(const char *uuid, uint64_t owner, uint64_t epoch, uint64_t op);
Keel__Cluster__Command *cf_op_end_reason(uint64_t id, const char *reason);
/* A join token record whose id and secret hash are the bytes id and hash repeated. */
Keel__Cluster__Command *cf_token_add(uint8_t id, uint8_t hash, uint64_t expires_s, uint64_t at_s);
/* HostJoin of host (id, name, vmk0; as cf_host_add) with token id and secret hash bytes
 * repeated as in cf_token_add. */
Keel__Cluster__Command *cf_host_join(uint64_t id, const char *name, const char *vmk0, uint8_t token,
				     uint8_t hash, uint64_t at_s);
Keel__Cluster__Command *cf_event_add(uint64_t host, const char *vm, const char *message,
				     uint64_t at_ms);

/* RuleSet of a rule (vms: uuids; hosts: the host group) and RuleRemove. */
Keel__Cluster__Command *cf_rule_set(const char *name, int kind, bool mandatory, char **vms,
				    size_t n_vms, uint64_t *hosts, size_t n_hosts, uint64_t at_ms);
Keel__Cluster__Command *cf_rule_remove(const char *name, uint64_t at_ms);
/* SetConfig as cf_config, with DRS settings. */
Keel__Cluster__Command *cf_config_drs(const char *name, const char *id, uint32_t timeout,
				      int automation, uint32_t threshold, uint32_t interval_s,
				      uint32_t hold_s, uint32_t max_moves);

/* Applies raw bytes to cf_fsm as one entry; returns the FSM's result. */
const struct cd_result *cf_apply_bytes(const void *data, size_t len);
/* Encodes n commands as one batch and applies it to cf_fsm. */
const struct cd_result *cf_apply_n(Keel__Cluster__Command *const *cmds, unsigned n);
/* Applies one command to cf_fsm; returns its code. */
int cf_apply1(Keel__Cluster__Command *c);
/* The state's snapshot bytes (caller frees with raft_free). */
struct raft_buffer cf_snap(const struct cd_fsm *f);
/* True when cf_fsm's snapshot equals b. */
bool cf_same_as(const struct raft_buffer *b);
/* Applies c, expects refusal with code (a failure names the caller's line), and that
 * nothing changed. */
void cf_refused_at(Keel__Cluster__Command *c, int code, int line);
#define cf_refused(c, code) cf_refused_at(c, code, __LINE__)
/* Expects cf_fsm's event at index i to be (kind, at_ms, host, vm, message). */
void cf_expect_event(unsigned i, int kind, uint64_t at_ms, uint64_t host, const char *vm,
		     const char *message);
/* A small populated cluster: config, hosts 1..3, VMs A (owner 1) and B (owner 2). */
void cf_populate(void);
/* cmocka setup and teardown for cf_fsm. */
int cf_setup(void **state);
int cf_teardown(void **state);

#endif
