/*
 * clusterd's replicated state in memory: the cluster config, hosts, VMs, operations in
 * flight, join token records and the most recent events, as the Raft log has built them.
 * Every host applies the same commands in the same order and so holds the same state; the
 * FSM (clusterd/fsm.h) is the only writer.
 *
 * Hosts are kept sorted by id, VMs by uuid, operations and token records by id, so lookups
 * are binary searches and a snapshot of equal states is byte-for-byte equal. Events sit in
 * a ring of the most recent CD_EVENTS_MAX, read oldest first. Pointers returned by the
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
#include "clusterd/token.h"

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
#define CD_TOKENS_MAX	     1024
#define CD_EVENTS_MAX	     1024 /* events kept; older ones are dropped */
#define CD_EVENT_MSG_MAX     255  /* bytes of an event's message */
#define CD_AUTH_BLOB_MAX     (1u << 20) /* bytes of hostd's auth store (AuthSet) */
#define CD_RULES_MAX	     256	/* placement rules */
#define CD_RULE_VMS_MAX	     64		/* VMs named by one rule */
#define CD_RULE_HOSTS_MAX    64		/* hosts in one rule's host group */

/* DRS settings (docs/drs.md, "In the cluster"): the defaults and ranges. */
#define CD_DRS_THRESHOLD_DEFAULT 3
#define CD_DRS_INTERVAL_DEFAULT	 60 /* s */
#define CD_DRS_INTERVAL_MIN	 10
#define CD_DRS_INTERVAL_MAX	 3600
#define CD_DRS_HOLD_DEFAULT	 300 /* s */
#define CD_DRS_HOLD_MAX		 86400
#define CD_DRS_MOVES_DEFAULT	 32
#define CD_DRS_MOVES_MAX	 4096

struct cd_drs_settings {
	int automation;	    /* KEEL__CLUSTER__DRS_AUTOMATION__DRS_* (never unspecified) */
	uint32_t threshold; /* 1..5 */
	uint32_t interval_s;
	uint32_t hold_s;
	uint32_t max_moves;
};

struct cd_config {
	bool set; /* false until the first SetConfig */
	char name[CD_NAME_MAX + 1];
	char cluster_id[CD_UUID_LEN + 1];
	uint32_t format_version;
	uint32_t failure_timeout_ms;
	int isolation_response;
	bool ha_disabled;
	uint32_t admission_failures; /* 0..CD_ADMISSION_FAILURES_MAX */
	uint32_t admission_percent;  /* 0..100; not with admission_failures */
	struct cd_drs_settings drs;  /* the defaults until set */
};

#define CD_ADMISSION_FAILURES_MAX 31
#define CD_VM_MEM_MAX		  1048576ull /* MiB, as a .vmx's memsize */
#define CD_VM_CPU_MAX		  10000000u  /* MHz, as sched.cpu.min */

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
	bool maintenance; /* in maintenance mode (HostSetMaintenance) */
};

/* A VM's FT (proto/cluster.proto Ft; docs/ft.md, "The cluster's part"). */
struct cd_ft {
	int state;	     /* KEEL__CLUSTER__FT_STATE__* */
	uint64_t secondary;  /* STARTING, PROTECTED: an existing host, not the owner; else 0 */
	uint64_t generation; /* grows by one with every VmSetFt */
	uint64_t preferred;  /* the operator's secondary host, or 0 */
	uint64_t since_ms;
	uint32_t failovers;
	uint64_t failover_epoch; /* the epoch of the last failover */
	bool test_failover;	 /* a test failover is under way (PROTECTED) */
};

/* FT is on for the VM (any state but NOT_PROTECTED). */
#define CD_FT_ON(vm) ((vm)->ft.state != KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED)
/* A secondary exists or is being made (STARTING or PROTECTED). */
#define CD_FT_PAIRED(vm)                                                                       \
	((vm)->ft.state == KEEL__CLUSTER__FT_STATE__FT_STARTING ||                             \
	 (vm)->ft.state == KEEL__CLUSTER__FT_STATE__FT_PROTECTED)

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
	struct cd_ft ft; /* all 0: FT never turned on */
	uint64_t mem_mib; /* what it needs to run: HA placement and admission control */
	uint32_t cpu_mhz; /* its CPU reservation */
	uint64_t last_moved_ms; /* when its owner last changed to another host; 0: never */
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

/* A join token record as the cluster keeps it: rec is what cd_token_check() judges
 * (clusterd/token.h); used_by is the host that joined with it. */
struct cd_join_token {
	struct cd_token_record rec;
	uint64_t used_by; /* 0 while unused */
};

struct cd_event {
	uint64_t seq;			    /* 1, 2, ...: never reused */
	uint64_t at_ms;			    /* proposer's wall clock, from the command */
	int kind;			    /* KEEL__CLUSTER__EVENT_KIND__* */
	uint64_t host;			    /* the host it concerns, or 0 */
	char vm[CD_UUID_LEN + 1];	    /* the VM it concerns, or "" */
	char message[CD_EVENT_MSG_MAX + 1]; /* printable UTF-8, no control characters */
};

/* hostd's users, roles and permissions (AuthSet): a blob clusterd does not interpret. */
struct cd_auth {
	uint64_t version; /* 0: never set; then 1, 2, ... */
	uint8_t *blob;	  /* len bytes (1..CD_AUTH_BLOB_MAX) when version > 0 */
	size_t len, cap;
	uint64_t host;	/* the host that set it */
	uint64_t at_ms; /* proposer's wall clock */
};

/* A placement rule (RuleSet): VMs by uuid, the host group (host rules) by id. */
struct cd_rule {
	char name[CD_NAME_MAX + 1];
	int kind; /* KEEL__CLUSTER__RULE_KIND__* */
	bool mandatory;
	unsigned n_vms;
	char vms[CD_RULE_VMS_MAX][CD_UUID_LEN + 1];
	unsigned n_hosts;
	uint64_t hosts[CD_RULE_HOSTS_MAX];
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
	/* Fixed arrays of CD_TOKENS_MAX and CD_EVENTS_MAX, allocated together by the first
	 * cd__state_reserve() (NULL until then), so no command fails for memory half-way. */
	struct cd_join_token *tokens; /* sorted by id */
	unsigned n_tokens;
	struct cd_event *events; /* ring: the oldest at ev_head */
	unsigned n_events, ev_head;
	uint64_t next_event_seq; /* seq of the next event; >= 1 */
	struct cd_auth auth;
	struct cd_rule *rules; /* sorted by name */
	unsigned n_rules, cap_rules;
};

/* Initialises an empty state (no config, hosts, VMs, operations, tokens or events; the next
 * event seq is 1). Never fails: the token and event arrays come with the first
 * cd__state_reserve(). */
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
/* Placement rules, sorted by name; NULL when absent. */
const struct cd_rule *cd_state_rule(const struct cd_state *s, const char *name);
unsigned cd_state_n_rules(const struct cd_state *s);
const struct cd_rule *cd_state_rule_at(const struct cd_state *s, unsigned i);
/* The DRS settings in force: the config's, or the defaults before the first SetConfig. */
void cd_state_drs_settings(const struct cd_state *s, struct cd_drs_settings *out);
/* Fills the default DRS settings. */
void cd_drs_settings_default(struct cd_drs_settings *out);
/* The number of VMs a host owns. */
unsigned cd_state_n_vms_owned(const struct cd_state *s, uint64_t host);

/* Join token records, sorted by id (memcmp order). id is CD_TOKEN_ID_SIZE bytes; NULL when
 * absent. Expired records stay until a TokenAdd or HostJoin drops them. */
const struct cd_join_token *cd_state_token(const struct cd_state *s, const uint8_t *id);
unsigned cd_state_n_tokens(const struct cd_state *s);
const struct cd_join_token *cd_state_token_at(const struct cd_state *s, unsigned i);

/* Events, oldest first (increasing seq): i < cd_state_n_events() (at most CD_EVENTS_MAX).
 * cd_state_events_since() is the index of the first event with seq > since, or
 * cd_state_n_events() when there is none: events i.. are the ones a client holding since
 * has not seen. The seq the next event will get is s->next_event_seq. */
unsigned cd_state_n_events(const struct cd_state *s);
const struct cd_event *cd_state_event_at(const struct cd_state *s, unsigned i);
unsigned cd_state_events_since(const struct cd_state *s, uint64_t since);

/* ---- internal to clusterd ------------------------------------------------------------ */

/* Makes room for that many more hosts, VMs and operations, so the inserts that follow
 * cannot fail for memory, and allocates the token and event arrays if not done yet (any
 * command may add an event), and keeps room for one more rule (a RuleSet). 0 or -ENOMEM
 * (nothing visible changed). */
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
/* Inserts a token record in sorted place; the caller has checked that the id is unused,
 * that n_tokens < CD_TOKENS_MAX, and reserved. */
void cd__state_token_insert(struct cd_state *s, const struct cd_join_token *t);
struct cd_join_token *cd__state_token_mut(struct cd_state *s, const uint8_t *id);
/* Drops every token record with expires_s <= now_s; the rest keep their order. */
void cd__state_tokens_prune(struct cd_state *s, uint64_t now_s);
/* The number of records cd__state_tokens_prune(s, now_s) would keep. */
unsigned cd__state_tokens_live(const struct cd_state *s, uint64_t now_s);
/* Appends an event numbered s->next_event_seq (seq in ev is ignored), dropping the oldest
 * when CD_EVENTS_MAX are kept. The caller has reserved. */
void cd__state_event_push(struct cd_state *s, const struct cd_event *ev);
/* at_ms of the newest event, or 0: the time of events whose command carries none. */
uint64_t cd__state_last_event_ms(const struct cd_state *s);
/* Makes s->auth.blob hold at least len bytes, so an AuthSet cannot fail for memory once
 * applying has begun. 0 or -ENOMEM (the blob is unchanged). */
int cd__state_auth_reserve(struct cd_state *s, size_t len);
/* Inserts or replaces (same name) a rule in sorted place; cd__state_reserve() keeps room
 * for one more rule. Removes a rule by name (absent: nothing). */
void cd__state_rule_put(struct cd_state *s, const struct cd_rule *r);
void cd__state_rule_remove(struct cd_state *s, const char *name);
/* Exchanges the contents of two states. */
void cd__state_swap(struct cd_state *a, struct cd_state *b);

#endif
