/*
 * clusterd's replicated state in memory: the cluster config, hosts, VMs and operations in
 * flight, as the Raft log has built them. Every host applies the same commands in the same
 * order and so holds the same state; the FSM (clusterd/fsm.h) is the only writer.
 *
 * Hosts are kept sorted by id, VMs by uuid and operations by id, so lookups are binary
 * searches and a snapshot of equal states is byte-for-byte equal. Pointers returned by the
 * getters are borrowed: valid until the next change of the state (the next applied entry
 * or restored snapshot). Not thread-safe: the daemon reads the state on its loop thread,
 * the thread that applies entries.
 *
 * Enum fields hold the values of proto/cluster.proto (KEEL__CLUSTER__*).
 */
#ifndef CD_STATE_H
#define CD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.pb-c.h"

/* Format version of the state schema and of the command batches. */
#define CD_FORMAT_VERSION 1

/* Limits. Anything larger is refused by the decoders and by the commands. */
#define CD_NAME_MAX	     63	  /* host, VM and cluster names */
#define CD_UUID_LEN	     36	  /* canonical lower-case text form */
#define CD_ADDR_MAX	     21	  /* "255.255.255.255:65535" */
#define CD_PATH_MAX	     1023 /* datastore path of a .vmx */
#define CD_RESTART_AFTER_MAX 16
#define CD_HOSTS_MAX	     1024
#define CD_VMS_MAX	     65536
#define CD_OPS_MAX	     4096

struct cd_config {
	bool set; /* false until the first SetConfig */
	char name[CD_NAME_MAX + 1];
	char cluster_id[CD_UUID_LEN + 1];
	uint32_t format_version;
	uint32_t failure_timeout_ms;
	int isolation_response;
};

struct cd_host {
	uint64_t id; /* Raft server id, never 0 */
	char name[CD_NAME_MAX + 1];
	char vmk0[CD_ADDR_MAX + 1]; /* required */
	char vmk1[CD_ADDR_MAX + 1]; /* "" when absent */
	char vmk2[CD_ADDR_MAX + 1];
	uint32_t cpu_mhz;
	uint64_t mem_mib;
	int state; /* KEEL__CLUSTER__HOST_STATE__* */
	int role;  /* KEEL__CLUSTER__RAFT_ROLE__* */
	uint64_t last_change_ms;
};

struct cd_vm {
	char uuid[CD_UUID_LEN + 1];
	char name[CD_NAME_MAX + 1];
	char vmx_path[CD_PATH_MAX + 1];
	uint64_t owner; /* an existing host */
	uint64_t epoch; /* >= 1; only grows */
	int desired_power;
	int priority;
	unsigned n_restart_after;
	char restart_after[CD_RESTART_AFTER_MAX][CD_UUID_LEN + 1];
	int ft_role;
	char ft_peer[CD_UUID_LEN + 1]; /* an existing VM when ft_role is not FT_NONE */
};

struct cd_op {
	uint64_t id;
	int kind;
	char vm[CD_UUID_LEN + 1];
	uint64_t source; /* 0 or an existing host */
	uint64_t destination;
	uint64_t epoch;
	uint32_t phase;
	uint64_t started_at_ms;
};

struct cd_state {
	struct cd_config config;
	struct cd_host *hosts;
	unsigned n_hosts, cap_hosts;
	struct cd_vm *vms;
	unsigned n_vms, cap_vms;
	struct cd_op *ops;
	unsigned n_ops, cap_ops;
	uint64_t applied; /* commands applied (not refused) since the cluster began */
};

/* Initialises an empty state (no config, no hosts, VMs or operations). Never fails. */
void cd_state_init(struct cd_state *s);
/* Frees what the state holds; it may be initialised again. */
void cd_state_close(struct cd_state *s);

/* Lookups: NULL when absent. Borrowed until the next change of the state. */
const struct cd_host *cd_state_host(const struct cd_state *s, uint64_t id);
const struct cd_host *cd_state_host_by_name(const struct cd_state *s, const char *name);
const struct cd_vm *cd_state_vm(const struct cd_state *s, const char *uuid);
const struct cd_op *cd_state_op(const struct cd_state *s, uint64_t id);
/* The operation in flight on a VM, or NULL. */
const struct cd_op *cd_state_op_for_vm(const struct cd_state *s, const char *uuid);

/* Iteration in sorted order: i < cd_state_n_*(). */
unsigned cd_state_n_hosts(const struct cd_state *s);
const struct cd_host *cd_state_host_at(const struct cd_state *s, unsigned i);
unsigned cd_state_n_vms(const struct cd_state *s);
const struct cd_vm *cd_state_vm_at(const struct cd_state *s, unsigned i);
unsigned cd_state_n_ops(const struct cd_state *s);
const struct cd_op *cd_state_op_at(const struct cd_state *s, unsigned i);
/* The number of VMs a host owns. */
unsigned cd_state_n_vms_owned(const struct cd_state *s, uint64_t host);

/* ---- internal to clusterd ------------------------------------------------------------ */

/* Makes room for that many more hosts, VMs and operations, so the inserts that follow
 * cannot fail for memory. 0 or -ENOMEM (nothing changed). */
int cd__state_reserve(struct cd_state *s, unsigned hosts, unsigned vms, unsigned ops);
/* Inserts in sorted place. The caller has checked uniqueness and limits and reserved room
 * with cd__state_reserve(). */
void cd__state_host_insert(struct cd_state *s, const struct cd_host *h);
void cd__state_vm_insert(struct cd_state *s, const struct cd_vm *vm);
void cd__state_op_insert(struct cd_state *s, const struct cd_op *op);
/* Mutable lookups for the command handlers. */
struct cd_host *cd__state_host_mut(struct cd_state *s, uint64_t id);
struct cd_vm *cd__state_vm_mut(struct cd_state *s, const char *uuid);
struct cd_op *cd__state_op_mut(struct cd_state *s, uint64_t id);
/* Removals of an existing element. */
void cd__state_host_remove(struct cd_state *s, uint64_t id);
void cd__state_vm_remove(struct cd_state *s, const char *uuid);
void cd__state_op_remove(struct cd_state *s, uint64_t id);
/* Exchanges the contents of two states. */
void cd__state_swap(struct cd_state *a, struct cd_state *b);

#endif
