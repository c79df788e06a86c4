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
#include "lib/err.h"
#include "lib/log.h"

#define CD_DEFAULT_PORT 7000

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
/* Called once when a create ends: code 0 (the batch was applied) or an error with e. */
typedef void (*cd_create_cb)(struct cd_daemon *d, void *arg, int code, const char *error);

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
	struct raft_uv_transport transport;
	struct cd_fsm fsm;

	uv_timer_t find_timer; /* retries the vmk0 lookup */
	uv_timer_t poll_timer; /* watches raft_state()/raft_leader() */
	unsigned find_tries;
	int last_state;
	raft_id last_leader;
	bool barrier_pending, barrier_done; /* this leadership's barrier */
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
/* Abandons the callback of a create in progress (its client went away). */
void cd_node_create_forget(struct cd_daemon *d, void *arg);

/* "follower", "leader", ... or the phase when Raft is not running. */
const char *cd_node_state_name(const struct cd_daemon *d);
/* The Raft role (KEEL__CLUSTER__RAFT_ROLE__*) of server id in the current configuration,
 * 0 when it is not in it or Raft is not running. */
int cd_node_role_of(struct cd_daemon *d, uint64_t id);

/* ---- the control socket (ctl.c) --------------------------------------------------------- */

/* Listens on d->socket_path (mode 0600). 0 or a libuv error with e set. */
int cd_ctl_start(struct cd_daemon *d, struct kb_errmsg *e);
/* Stops listening and closes every client; unlinks the socket. */
void cd_ctl_stop(struct cd_daemon *d);

#endif
