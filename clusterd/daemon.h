/*
 * The clusterd daemon: one libraft node per host, bound to the host's management VMkernel
 * adapter (vmk0), and the local control socket keel talks to. Contracts shared by
 * clusterd/node.c (the Raft life cycle), clusterd/ctl.c (the control socket) and
 * clusterd/main.c.
 *
 * Life cycle of the node: find vmk0 (retried until vmkernel has made it), then, when the
 * data directory was bootstrapped before (DIR/clusterd.bootstrapped exists), start Raft
 * on it; otherwise wait for `create`, which bootstraps a one-voter configuration, starts
 * Raft, waits to lead and proposes the cluster's config and this host. Leadership is
 * polled from a timer; a new leader issues a barrier before it acts. SIGTERM closes Raft,
 * then its io and transport, then the loop ends.
 *
 * Threads: everything runs on the daemon's one libuv loop.
 */
#ifndef CD_DAEMON_H
#define CD_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "clusterd/fsm.h"
#include "clusterd/rafttcp.h"
#include "ha/place.h"
#include "vmk.pb-c.h"
#include "lib/err.h"
#include "lib/log.h"

#define CD_DEFAULT_PORT 7000
/* The join port (TLS) is the Raft port + 1 on the same address; heartbeat datagrams use
 * the Raft port number over UDP. */
#define CD_JOIN_PORT_OFFSET 1

/* A member's files in the state directory besides the Raft data. */
#define CD_HOST_CERT_FILE   "host.crt"
#define CD_CLUSTER_KEY_FILE "cluster.key" /* 32 random bytes: heartbeat MACs */
#define CD_CLUSTER_KEY_SIZE 32

/* Raft timing (DEPENDENCIES.md: fast failover). */
#define CD_ELECTION_TIMEOUT_MS	       300
#define CD_HEARTBEAT_TIMEOUT_MS	       30
#define CD_CONNECT_RETRY_MS	       100
#define CD_INSTALL_SNAPSHOT_TIMEOUT_MS 10000

/* Where the node is in its life cycle. */
enum cd_phase {
	CD_PHASE_FIND_VMK0 = 0,	 /* vmk0 is not usable yet */
	CD_PHASE_UNBOOTSTRAPPED, /* waiting for create */
	CD_PHASE_RUNNING,	 /* Raft started */
	CD_PHASE_CLOSING,
};

struct cd_daemon;
struct cd_joinsrv;
struct cd_hbnet;
struct cd_ca;
struct cd_bench;
struct cd_reconciler;
struct cd_migrator;
struct cd_ha;
struct cd_ft_leader;
struct cd_ftd;
struct cd_vm;
struct cd_proposer;
struct cd_bench_result {
	unsigned count, failed;
	double p50_ms, p99_ms, max_ms, ops_s;
};
/* The end of one submitted command: status 0 or a libraft error (it was not committed, e.g.
 * RAFT_NOTLEADER, RAFT_CANCELED); then code 0 (applied) or its refusal with reason. */
typedef void (*cd_cmd_cb)(struct cd_daemon *d, void *arg, int status, int code,
			  const char *reason);
typedef void (*cd_bench_cb)(struct cd_daemon *d, void *arg, const struct cd_bench_result *r);
/* The end of a VM operation: code 0 and rp, or an error with its message (rp still says
 * who owns the VM when known). rp is borrowed for the call. */
typedef void (*cd_vmop_cb)(struct cd_daemon *d, void *arg, int code, const char *error,
			   const Keel__Cluster__ClusterVmReply *rp);
/* The end of a maintenance or auth-store request: code 0 or an error with its message.
 * auth (AuthSet applied: the store's version, host and time, without the blob) is borrowed
 * for the call; NULL otherwise. */
typedef void (*cd_member_cb)(struct cd_daemon *d, void *arg, int code, const char *error,
			     const Keel__Cluster__AuthDb *auth);
/* Called once when a create ends: code 0 (the batch was applied) or an error with e. */
typedef void (*cd_create_cb)(struct cd_daemon *d, void *arg, int code, const char *error);

/* What a client operation (join, join-token, leave, remove-host) brought back. */
/* A change of the cluster's settings (ClusterConfigSet): 0 / unspecified keeps a value. */
struct cd_cfg_change {
	uint32_t failure_timeout_ms;
	int isolation;
	int ha; /* KEEL__CLUSTER__CLUSTER_CONFIG_SET__HA_SWITCH__* */
	bool admission_set;
	uint32_t admission_failures, admission_percent;
};

struct cd_client_result {
	int code;
	char error[KB_ERRMSG_SIZE];
	char token[128];
	uint64_t token_expires_s;
	bool joined; /* a join succeeded: Raft runs and waits to be added */
};
typedef void (*cd_client_cb)(struct cd_daemon *d, void *arg, const struct cd_client_result *r);

struct cd_daemon {
	uv_loop_t *loop;
	struct kb_logger *log;
	char state_dir[PATH_MAX];
	char raft_dir[PATH_MAX];
	char socket_path[PATH_MAX];
	uint16_t port;
	uint64_t id;	  /* this node's Raft server id, from DIR/clusterd.id */
	char address[32]; /* vmk0's "A.B.C.D:port" */
	char hostname[CD_NAME_MAX + 1];

	enum cd_phase phase;
	bool raft_inited; /* raft_init succeeded: close through raft_close */
	struct raft raft;
	struct raft_io io;
	struct cd_raft_io io_wrap; /* libraft 0.15's stale-tail fix (docs/clusterd.md) */
	struct raft_tracer tracer; /* libraft's and raft_uv's messages into the log (trace) */
	struct cd_rafttcp transport; /* libraft TCP with bounded timeouts (rafttcp.h) */
	struct cd_fsm fsm;

	uv_timer_t find_timer; /* retries the vmk0 lookup */
	uv_timer_t poll_timer; /* watches raft_state()/raft_leader() */
	unsigned find_tries;
	int last_state;
	raft_id last_leader;
	bool barrier_pending, barrier_done; /* this leadership's barrier */
	unsigned snapshot_threshold, threshold_ticks; /* re-sized every second from the state */
	struct raft_barrier barrier;

	/* The create in progress, if any. */
	bool creating, create_proposed;
	char create_name[CD_NAME_MAX + 1];
	cd_create_cb create_cb;
	void *create_arg;
	struct raft_apply create_req;
	uv_timer_t create_timer; /* bounds the wait to lead */

	void (*closed_cb)(struct cd_daemon *d); /* after cd_node_close */
	int fatal; /* Raft could not start: the loop was stopped, main exits with an error */

	/* Membership (members.c): one Raft configuration change at a time. */
	bool change_pending;
	struct raft_change change;
	uint64_t change_id;
	int change_role; /* RAFT_VOTER/STANDBY/SPARE, or -1: a removal, -2: an add */
	bool role_update_pending;
	struct raft_apply role_req;

	/* Cluster identity once a member (create or join): CA, key, join port, heartbeats. */
	struct cd_ca *ca;
	uint8_t cluster_key[CD_CLUSTER_KEY_SIZE];
	bool have_cluster_key;
	struct cd_joinsrv *jsrv;
	struct cd_hbnet *hb;

	/* The client operation in progress (joincli.c), if any. */
	bool client_busy;
	cd_client_cb client_cb;
	void *client_arg;

	struct cd_bench *bench; /* bench.c: a commit benchmark in progress */
	struct cd_reconciler *rec; /* reconcile.c */
	struct cd_migrator *mig;   /* migrate.c: the migrations this host takes part in */
	struct cd_ha *ha;	   /* ha.c: the HA engine (acts while this node leads) */
	struct cd_ft_leader *ft_leader; /* ft_leader.c: FT decisions (while this node leads) */
	struct cd_ftd *ft;		/* ft.c: this host's FT primaries and secondaries */
	struct cd_proposer *prop;  /* propose.c: batches submitted commands */

	/* After a leave: main wipes the membership files and restarts clusterd. */
	bool wipe_on_exit, reexec;
	bool ctl_handed_over; /* ctl_fd: the listening control socket for the next image */
	int ctl_fd;
	uv_timer_t leave_timer;
};

/* ---- the node (node.c) ------------------------------------------------------------------ */

/* Sets d up on loop: reads or creates DIR/clusterd.id, makes DIR/raft, starts looking for
 * vmk0 (and then starts Raft if the directory was bootstrapped). d is caller-allocated and
 * must stay put until closed_cb. 0 or -errno / Keel code with e set. */
int cd_node_init(struct cd_daemon *d, uv_loop_t *loop, struct kb_logger *log, const char *state_dir,
		 uint16_t port, struct kb_errmsg *e);
/* Stops the node: raft_close, then io and transport; cb runs on the loop when all its
 * handles are closed. */
void cd_node_close(struct cd_daemon *d, void (*cb)(struct cd_daemon *d));

/* Creates a cluster named name with this node as its only voter. cb runs once, from the
 * loop, when the config and this host were applied or the create failed. Errors returned
 * directly (cb not called): KB_ESTATE (already bootstrapped, vmk0 not found yet, a create
 * in progress), -EINVAL (bad name), or a libraft failure; e says why. */
int cd_node_create(struct cd_daemon *d, const char *name, cd_create_cb cb, void *arg,
		   struct kb_errmsg *e);
/* Abandons the callback of a create or client operation in progress (its client went
 * away). */
void cd_node_create_forget(struct cd_daemon *d, void *arg);

/* Proposes one batch of commands (encoded with cd_batch_encode, padded to 8 bytes: see
 * "Entry padding" in docs/clusterd.md). req lives until cb. 0 or an error with e set. */
int cd_node_propose(struct cd_daemon *d, struct raft_apply *req,
		    Keel__Cluster__Command *const *cmds, unsigned n, raft_apply_cb cb,
		    struct kb_errmsg *e);
/* ---- the proposer (propose.c) ----------------------------------------------------------- */

/* Queues one command (packed now: cmd may go away) for the next entry; commands submitted
 * in the same loop iteration share entries. cb runs once from the loop, also when the
 * command is refused or never committed. 0, or KB_ESTATE (Raft not running) / -ENOMEM. */
int cd_submit(struct cd_daemon *d, const Keel__Cluster__Command *cmd, cd_cmd_cb cb, void *arg,
	      struct kb_errmsg *e);
int cd_proposer_init(struct cd_daemon *d);
/* Fails queued commands (RAFT_CANCELED) and stops proposing; before raft_close. */
void cd_proposer_close(struct cd_daemon *d);
/* After the loop has ended. */
void cd_proposer_free(struct cd_daemon *d);
void cd_proposer_stats(struct cd_daemon *d, uint64_t *entries, uint64_t *commands);

/* Whether this node is the leader and has applied its barrier (may act on the state). */
bool cd_node_is_ready_leader(struct cd_daemon *d);
/* The leader's join address "A.B.C.D:port" into out (size >= 32): 0, or KB_ESTATE when
 * no leader is known. */
int cd_node_leader_join_addr(struct cd_daemon *d, char *out, size_t size);
/* Loads the CA, the cluster key and starts the join port and heartbeats of a member.
 * Called when Raft starts on a node that has the files. */
int cd_node_member_start(struct cd_daemon *d, struct kb_errmsg *e);
/* Wall clock in ms for proposals. */
uint64_t cd_now_ms(void);
/* This host's CPU (count x MHz) and memory, for its Host record. */
void cd_host_capacity(uint32_t *cpu_mhz, uint64_t *mem_mib);
/* After a successful join wrote the membership files: marks the node bootstrapped,
 * starts Raft without bootstrapping (the leader adds it) and the member services. */
int cd_node_joined(struct cd_daemon *d, struct kb_errmsg *e);

/* ---- membership (members.c) -------------------------------------------------------------- */

/* One step of the leader's membership work: adds hosts of the state to the Raft
 * configuration, removes servers that left the state, and keeps 3 voters (5 from 7 hosts
 * on) among live hosts, the rest standbys. Called from the poll timer on a ready leader. */
void cd_members_tick(struct cd_daemon *d);

/* ---- the join port (joinsrv.c) ------------------------------------------------------------ */

/* Starts the join port on vmk0's address, port + CD_JOIN_PORT_OFFSET. 0 or an error. */
int cd_joinsrv_start(struct cd_daemon *d, struct kb_errmsg *e);
/* Stops accepting and ends the thread; requests still inside Raft complete later. */
void cd_joinsrv_stop(struct cd_daemon *d);

/* ---- client operations (joincli.c) ------------------------------------------------------ */

/* Joins the cluster of the member at address with token. The node must be unbootstrapped
 * with vmk0 found. cb runs once from the loop. Errors returned directly (cb not called):
 * KB_ESTATE (a member already, an operation in progress, no vmk0), KB_EPROTO (a bad
 * token or address). */
int cd_node_join(struct cd_daemon *d, const char *address, const char *token, cd_client_cb cb,
		 void *arg, struct kb_errmsg *e);
/* Member requests forwarded to the leader over the join port with this host's
 * certificate: step is KEEL__CLUSTER__JOIN_REQUEST__STEP__STEP_TOKEN (ttl_s),
 * STEP_LEAVE or STEP_REMOVE_HOST (host). */
int cd_node_member_request(struct cd_daemon *d, int step, uint32_t ttl_s, const char *host,
			   cd_client_cb cb, void *arg, struct kb_errmsg *e);

/* ---- VMs through the cluster (vmops.c, reconcile.c) -------------------------------------- */

/* The leader's handling of host's VM operation. Returns 0 and calls cb once (possibly
 * before returning), or an error with e set (cb not called). */
int cd_vmop_leader(struct cd_daemon *d, uint64_t host, const Keel__Cluster__ClusterVmRequest *rq,
		   cd_vmop_cb cb, void *arg, struct kb_errmsg *e);
/* This host's VM operation: on the leader directly, else forwarded over the join port.
 * cb runs once from the loop; an answer that never comes ends with KB_ETIMEOUT. */
int cd_node_vm_request(struct cd_daemon *d, const Keel__Cluster__ClusterVmRequest *rq,
		       cd_vmop_cb cb, void *arg, struct kb_errmsg *e);
/* The reconciler: every second, runs what the state says this host owns through the local
 * vmkernel (register, power on) and registers in the cluster what vmkernel runs unknown to
 * it; see docs/clusterd.md. */
int cd_reconcile_start(struct cd_daemon *d, struct kb_errmsg *e);
/* One request on a connected vmkernel control socket fd and its reply (NULL when the
 * socket failed or the reply does not decode). Blocks: worker threads only. */
Keel__Vmk__VmkReply *cd_vmk_call(int fd, const Keel__Vmk__VmkRequest *rq);
/* The same on a new connection to the socket at sock (NULL when it could not be asked). */
Keel__Vmk__VmkReply *cd_vmk_ask(const char *sock, const Keel__Vmk__VmkRequest *rq);
/* Why a request failed, into buf: the reply's error, its code's text, or "WHAT: vmkernel
 * did not answer" when there is no reply. */
void cd_vmk_errtext(char *buf, size_t size, const Keel__Vmk__VmkReply *rp, const char *what);
void cd_reconcile_stop(struct cd_daemon *d);

/* ---- HA (ha.c, docs/ha.md) --------------------------------------------------------------- */
/* The HA engine: every 100 ms on the ready leader with HA on, gives the protected VMs of
 * failed hosts (and the released ones of partitioned or maintenance hosts) a new owner at
 * a higher epoch, placed by ha/plan.h. Loop thread. */
int cd_ha_start(struct cd_daemon *d, struct kb_errmsg *e);
void cd_ha_stop(struct cd_daemon *d);
/* Admission control for powering vm on with mem_mib / cpu_mhz reserved (leader, loop
 * thread): 0, or -ENOSPC with e saying which policy refuses and the figures. */
int cd_ha_admit(struct cd_daemon *d, const struct cd_vm *vm, uint64_t mem_mib, uint32_t cpu_mhz,
		struct kb_errmsg *e);
/* The owner host could not power vm on (error says why; leader, loop thread): an HA event,
 * and host is excluded for this VM so the next tick places it elsewhere (docs/ha.md). */
void cd_ha_start_failed(struct cd_daemon *d, const struct cd_vm *vm, uint64_t host,
			const char *error);
/* The owner powered vm on (leader, loop thread): a VM HA moved counts as running again
 * for the VMs restarted after it. */
void cd_ha_started(struct cd_daemon *d, const struct cd_vm *vm);
/* A protected FT VM whose secondary's host is connected and not in maintenance mode: the
 * FT failover moves it (ft.c), HA leaves it alone. */
bool cd_ha_ft_takes_it(const struct cd_state *s, const struct cd_vm *vm);

/* ---- placement rules and DRS (drs.c, docs/drs.md "In the cluster") ----------------------- */

/* The replicated state as ha/place.h's model: hosts by id, VM i of the state as id i + 1,
 * rule i as id i + 1. Build allocates (kb_calloc; -ENOMEM), free releases. */
struct cd_drs_model {
	struct ha_place_host *hosts;
	struct ha_place_vm *vms;
	struct ha_rule *rules;
	uint64_t *members; /* the rules' VM ids and host groups */
	struct ha_cluster c;
};
int cd__drs_model_build(const struct cd_state *s, struct cd_drs_model *m, struct kb_errmsg *e);
void cd__drs_model_free(struct cd_drs_model *m);
/* Rewrites a message of ha/place.h or ha/drs.h about the model so that it names VMs and
 * rules ("VM 3", "rule 2 (") by their names in the state. */
void cd__drs_explain(const struct cd_state *s, struct kb_errmsg *e);
/* The HA planner's anti-affinity groups (ha/plan.h): groups[i] (n_vms entries, zeroed by
 * the caller) := 1 + the index of the first mandatory anti-affinity rule naming VM i. */
void cd__drs_anti_groups(const struct cd_state *s, uint32_t *groups);
/* Whether moving vm to host `to` breaks (raises the violation of) a mandatory rule: 0, or
 * -EPERM with e naming the rule. */
int cd_drs_check_move(const struct cd_state *s, const struct cd_vm *vm, uint64_t to,
		      struct kb_errmsg *e);
/* The rules (op OP_UNSPECIFIED), or with them the DRS status (OP_STATUS) and also the
 * recommendations (OP_RECOMMEND), from this host's replica. *out: caller frees with
 * cd_drs_view_free. KB_ESTATE outside a cluster, -ENOMEM. */
int cd_drs_view(struct cd_daemon *d, int op, Keel__Cluster__ClusterDrsStatus **out,
		struct kb_errmsg *e);
void cd_drs_view_free(Keel__Cluster__ClusterDrsStatus *st);
/* RuleSet / RuleRemove (rq borrowed for the call), and the DRS settings of cs, committed by
 * this host when it is the ready leader; cb runs once from the loop (auth NULL). Errors
 * returned directly (cb not called): -EINVAL, KB_ENOTFOUND, KB_ETOOBIG, KB_ESTATE (not in a
 * cluster, or not the leader: e names the leader's address), -ENOMEM. */
int cd_drs_rule_request(struct cd_daemon *d, const Keel__Cluster__ClusterRuleRequest *rq,
			cd_member_cb cb, void *arg, struct kb_errmsg *e);
bool cd_drs_config_wanted(const Keel__Cluster__ClusterConfigSet *cs);
int cd_drs_config_set(struct cd_daemon *d, const Keel__Cluster__ClusterConfigSet *cs,
		      cd_member_cb cb, void *arg, struct kb_errmsg *e);
/* The leader's periodic pass (a 1 s timer that acts every DRS interval on the ready
 * leader). Started with the control socket, stopped with it. */
int cd_drs_start(struct cd_daemon *d, struct kb_errmsg *e);
void cd_drs_stop(struct cd_daemon *d);

/* ---- commit benchmark (bench.c) --------------------------------------------------------- */

int cd_bench_start(struct cd_daemon *d, unsigned count, unsigned window, cd_bench_cb cb,
		   void *arg, struct kb_errmsg *e);
void cd_bench_forget(struct cd_daemon *d, void *arg);

/* Changes the cluster's failure timeout (ms, 0: unchanged) and isolation response
 * (KEEL__CLUSTER__ISOLATION_RESPONSE__*, 0: unchanged) through the leader. */
int cd_node_config_set(struct cd_daemon *d, const struct cd_cfg_change *c, cd_client_cb cb,
		       void *arg, struct kb_errmsg *e);

/* ---- maintenance mode and the auth store (hostops.c) -------------------------------------- */

/* The leader's handling of a request of host asker: HostSetMaintenance of the host named
 * host (name or decimal id; "" or NULL: asker), or AuthSet of len bytes of blob (borrowed
 * for the call) from expect_version. Returns 0 and calls cb once from the loop after the
 * command was applied or refused, or an error with e set (cb not called): KB_ENOTFOUND,
 * -EINVAL, KB_ETOOBIG, -ESTALE, KB_ESTATE, -ENOMEM. */
int cd_maint_leader(struct cd_daemon *d, uint64_t asker, const char *host, bool enter,
		    cd_member_cb cb, void *arg, struct kb_errmsg *e);
int cd_auth_set_leader(struct cd_daemon *d, uint64_t asker, uint64_t expect, const void *blob,
		       size_t len, cd_member_cb cb, void *arg, struct kb_errmsg *e);
/* This host's request: on the leader directly, else forwarded over the join port. Errors
 * as above, and KB_ESTATE when this host is in no cluster. */
int cd_node_maintenance(struct cd_daemon *d, const char *host, bool enter, cd_member_cb cb,
			void *arg, struct kb_errmsg *e);
int cd_node_auth_set(struct cd_daemon *d, uint64_t expect, const void *blob, size_t len,
		     cd_member_cb cb, void *arg, struct kb_errmsg *e);
/* A VM's HA settings (ClusterVmHa, borrowed for the call): on the leader, VmSetHa of the VM
 * and restart-after VMs named (names or uuids), what is not set kept; cb as above (auth
 * NULL). Errors: KB_ENOTFOUND (an unknown VM), -EINVAL (no VM, an ambiguous name, the VM
 * after itself, a VM twice, more than CD_RESTART_AFTER_MAX, a priority out of range),
 * KB_ESTATE, -ENOMEM. cd_node_vm_ha: this host's request, on the leader or forwarded
 * (STEP_VM_HA), and KB_ESTATE in no cluster. Loop thread. */
int cd_vm_ha_leader(struct cd_daemon *d, const Keel__Cluster__ClusterVmHa *rq, cd_member_cb cb,
		    void *arg, struct kb_errmsg *e);
int cd_node_vm_ha(struct cd_daemon *d, const Keel__Cluster__ClusterVmHa *rq, cd_member_cb cb,
		  void *arg, struct kb_errmsg *e);
/* Forwards STEP_VM_HA (rq: copied) to the leader on a worker (joincli.c); cb runs once from
 * the loop. 0 or -ENOMEM. */
int cd__forward_vm_ha(struct cd_daemon *d, const Keel__Cluster__ClusterVmHa *rq,
		      cd_member_cb cb, void *arg, struct kb_errmsg *e);
/* Forwards STEP_MAINTENANCE (host, enter) or STEP_AUTH_SET (expect, blob: copied) to the
 * leader on a worker (joincli.c); cb runs once from the loop. 0 or -ENOMEM. */
int cd__forward(struct cd_daemon *d, int step, const char *host, bool enter, uint64_t expect,
		const void *blob, size_t len, cd_member_cb cb, void *arg, struct kb_errmsg *e);

/* Forwards STEP_DRS (a rule change, or DRS settings: rq copied) to the leader on a worker
 * (joincli.c); cb runs once from the loop. 0 or -ENOMEM. */
int cd__forward_drs(struct cd_daemon *d, const Keel__Cluster__ClusterRuleRequest *rule,
		    const Keel__Cluster__ClusterConfigSet *cs, cd_member_cb cb, void *arg,
		    struct kb_errmsg *e);
/* One request to another member's join port, on a worker (blocking): TLS with this host's
 * certificate, the server's certificate checked to be host expect_id's, one JoinRequest and
 * its JoinReply (*out, caller frees). 0 or an error with e set: -ECONNREFUSED, -EKEYREJECTED
 * (not that host), -EIO, KB_EPROTO, KB_ECONFIG. */
int cd__peer_call(const char *state_dir, const char *address, uint64_t expect_id,
		  const Keel__Cluster__JoinRequest *rq, Keel__Cluster__JoinReply **out,
		  struct kb_errmsg *e);

/* ---- migrations (migrate.c, docs/vmotion.md "The cluster's part") ------------------------- */

/* Starts and stops the migrator: every 100 ms it starts driving the migrations this host is
 * the source of (the destination's STEP_MIGRATE_PREPARE, then vmkernel's VmkVmMigrateOut,
 * an abort when that fails) and watches the ones it receives (the commit given to the
 * incoming vmx when the source is gone, a cancel when the migration was aborted). */
int cd_migrate_start(struct cd_daemon *d, struct kb_errmsg *e);
void cd_migrate_stop(struct cd_daemon *d);
/* The destination's side of STEP_MIGRATE_PREPARE from host peer: waits (at most ~3 s) for the
 * operation to be in this host's replica, checks it names peer as source and this host as
 * destination, asks vmkernel VmkVmMigrateIn, and calls cb once from the loop with the
 * endpoints or an error. 0 (cb will run) or an error with e set (cb will not). Loop thread. */
typedef void (*cd_migrate_prepared_cb)(struct cd_daemon *d, void *arg, int code, const char *error,
				       char *const *endpoints, size_t n);
int cd_migrate_prepare(struct cd_daemon *d, uint64_t peer, const Keel__Cluster__MigratePrepare *rq,
		       cd_migrate_prepared_cb cb, void *arg, struct kb_errmsg *e);

/* ---- heartbeats and liveness (hbnet.c) ---------------------------------------------------- */

int cd_hbnet_start(struct cd_daemon *d, struct kb_errmsg *e);
void cd_hbnet_stop(struct cd_daemon *d);
/* Leader's view of host id: ages in ms (-1 unknown). */
void cd_hbnet_ages(struct cd_daemon *d, uint64_t id, int64_t *net_ms, int64_t *ds_ms);
/* The leader's view of how long host id has been silent: its network heartbeat age, or,
 * for the host this one heard as leader before it led and has not heard since, the time
 * since that host's last ACK (-1 unknown). FT's takeover waits on it (ft_leader.c). */
int64_t cd_hbnet_silence(struct cd_daemon *d, uint64_t id);
/* Whether this host judges itself isolated, and since when it last heard a leader. */
bool cd_hbnet_isolated(struct cd_daemon *d, int64_t *contact_age_ms);

/* "follower", "leader", ... or the phase when Raft is not running. */
const char *cd_node_state_name(const struct cd_daemon *d);
/* The Raft role (KEEL__CLUSTER__RAFT_ROLE__*) of server id in the current configuration,
 * 0 when it is not in it or Raft is not running. */
int cd_node_role_of(struct cd_daemon *d, uint64_t id);

/* ---- the control socket (ctl.c) --------------------------------------------------------- */

/* Listens on d->socket_path (mode 0600). 0 or a libuv error with e set. */
int cd_ctl_start(struct cd_daemon *d, struct kb_errmsg *e);
/* Stops listening and closes every client; unlinks the socket (not after a hand-over). */
void cd_ctl_stop(struct cd_daemon *d);
/* Before a re-exec: stops accepting and keeps the socket path and the listening socket
 * (d->ctl_fd, which main puts in the environment as CD_CTL_FD_ENV just before the exec,
 * for the next image's cd_ctl_start), so a client that connects meanwhile waits instead of
 * finding no socket. */
#define CD_CTL_FD_ENV "KEEL_CLUSTERD_CTL_FD"
void cd_ctl_hand_over(struct cd_daemon *d);

/* ---- FT (ft_leader.c, ft.c; docs/ft.md "The cluster's part") ------------------------------ */

/* The leader grants a secondary's takeover when the primary's host sent no network
 * heartbeat for this long (2.5 beats), or is not connected. */
#define CD_FT_PRIMARY_SILENT_MS 250

/* The leader's answer to OP_FT_* (vmops.c hands them over; loop thread). */
int cd_ft_vmop(struct cd_daemon *d, uint64_t host, const Keel__Cluster__ClusterVmRequest *rq,
	       cd_vmop_cb cb, void *arg, struct kb_errmsg *e);
/* The leader's FT tick: failovers of failed primaries, secondaries lost with their host,
 * the choice of a secondary's host. */
int cd_ft_leader_start(struct cd_daemon *d, struct kb_errmsg *e);
void cd_ft_leader_stop(struct cd_daemon *d);
/* This host's FT driver: pairings of the VMs it owns, the takeovers and the ends of the
 * secondaries it keeps. */
int cd_ft_start(struct cd_daemon *d, struct kb_errmsg *e);
void cd_ft_stop(struct cd_daemon *d);
/* STEP_FT_PREPARE from peer (the VM's owner): checks the pairing in this host's replica
 * (waiting a moment for it), starts the secondary through vmkernel; cb gets its endpoint. */
int cd_ft_prepare(struct cd_daemon *d, uint64_t peer, const Keel__Cluster__FtPrepare *rq,
		  cd_migrate_prepared_cb cb, void *arg, struct kb_errmsg *e);
/* vmops.c's answer to a VM request (the VM's owner, epoch, operation after it). */
void cd__vmop_answer(struct cd_daemon *d, cd_vmop_cb cb, void *arg, const char *uuid,
		     uint64_t host, int code, const char *error);

#endif
