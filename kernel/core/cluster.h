/*
 * vmkernel's client of clusterd's control socket, <state dir>/clusterd.sock: the VM
 * operations of this host go through the cluster (DESIGN.md section 4, docs/vmkernel.md
 * "In a cluster"). One blocking call per operation, on a thread-pool thread.
 *
 * Wire: one framed (lib/frame.h) ClusterRequest{vm = ClusterVmRequest} on a new
 * connection, answered by one ClusterReply{code, error, vm = ClusterVmReply}
 * (proto/cluster.proto).
 *
 * Outcomes:
 *   - no clusterd (the socket is absent or refuses connections) or a reply with
 *     vm.member false: the host is in no cluster; the call returns 0 with member false
 *     and vmkernel goes on alone, exactly as without a cluster;
 *   - clusterd refuses (code != 0): its code and its message;
 *   - clusterd does not answer within the timeout (VMK_CLUSTER_TIMEOUT_MS, whatever it
 *     is stuck in: connect, the reply's first byte or its last): KB_ETIMEOUT, "clusterd
 *     did not answer within 5 s" — never a silent fallback to standalone;
 *   - a reply that does not decode, or a connection closed without one: KB_EPROTO.
 */
#ifndef VMK_CLUSTER_H
#define VMK_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/core/host.h"
#include "lib/err.h"

#define VMK_CLUSTER_SOCK       "clusterd.sock"
#define VMK_CLUSTER_TIMEOUT_MS 5000
#define VMK_CLUSTER_REPLY_MAX  (64u << 10)

/* ClusterVmRequest.Op, same values. */
enum vmk_cluster_op {
	VMK_CLUSTER_REGISTER = 1,	/* after a create or register here */
	VMK_CLUSTER_UNREGISTER = 2,	/* after an unregister or destroy here */
	VMK_CLUSTER_POWER_ON = 3,	/* before starting the vmx: ownership and the epoch */
	VMK_CLUSTER_POWER_OFF = 4,	/* after an operator's power-off */
	VMK_CLUSTER_SUSPEND = 5,	/* after a suspend */
	VMK_CLUSTER_MIGRATE_COMMIT = 9, /* the source at "ready": the destination owns at E + 1 */
	VMK_CLUSTER_MIGRATE_ABORT = 10, /* ends the migration unless the switchover came first */
	/* Not a ClusterVmRequest.Op of its own: OP_POWER_ON with wanted_only, for a power-on
	 * the owner's reconciler asked for (refused once the cluster no longer wants it on). */
	VMK_CLUSTER_POWER_ON_WANTED = 103,
};

/* What clusterd answered (ClusterVmReply). */
/* What a VM needs to run, for the cluster's HA placement and admission control: its memory
 * size and CPU reservation (sent with OP_REGISTER and OP_POWER_ON). */
struct vmk_cluster_res {
	uint64_t mem_mib;
	uint32_t cpu_mhz;
};

struct vmk_cluster_vm {
	bool member;	  /* false: this host is in no cluster */
	uint64_t owner;	  /* the VM's owner after the operation (0: not registered) */
	uint64_t epoch;	  /* its ownership epoch */
	uint64_t host_id; /* this host's id as clusterd knows it */
	char owner_name[64];
	uint64_t op_id;		 /* the operation in flight on the VM after the request (0: none) */
	uint64_t op_destination; /* its destination host */
	/* VMK_CLUSTER_POWER_ON (docs/drs.md, "Initial placement"): placed: the cluster gave
	 * the VM to owner (owner_name) powered on, that host's reconciler powers it on (the
	 * call then fails KB_ESTATE; these fields, owner and owner_name are still set);
	 * placement: what placement decided, or "". */
	bool placed;
	char placement[256];
};

/* The migration fields of a ClusterVmRequest (VMK_CLUSTER_MIGRATE_COMMIT, _ABORT). */
struct vmk_cluster_mig {
	uint64_t op_id;	   /* the cluster's migration operation */
	const char *error; /* ABORT: why (NULL: none) */
};

const char *vmk_cluster_op_name(enum vmk_cluster_op op);

/* Asks clusterd at sock_path for op on VM uuid (name and vmx_path, absolute, for
 * VMK_CLUSTER_REGISTER; NULL otherwise), waiting at most timeout_ms (0:
 * VMK_CLUSTER_TIMEOUT_MS). Returns 0 with *out filled (out->member false: no cluster),
 * clusterd's code with its message in err when it refused, KB_ETIMEOUT, KB_EPROTO or
 * -errno. Blocks: call from a thread-pool thread, never the loop. No state is kept
 * between calls. */
int vmk_cluster_call(const char *sock_path, int timeout_ms, enum vmk_cluster_op op,
		     const char *uuid, const char *name, const char *vmx_path,
		     const struct vmk_cluster_res *res, struct vmk_cluster_vm *out,
		     struct kb_errmsg *err);

/* vmk_cluster_call() for a migration request (op VMK_CLUSTER_MIGRATE_COMMIT or
 * VMK_CLUSTER_MIGRATE_ABORT) carrying m's op_id and error; outcomes as vmk_cluster_call().
 * The reply's owner and epoch tell whether the switchover happened (docs/vmotion.md). */
int vmk_cluster_migrate_call(const char *sock_path, int timeout_ms, enum vmk_cluster_op op,
			     const char *uuid, const struct vmk_cluster_mig *m,
			     struct vmk_cluster_vm *out, struct kb_errmsg *err);

/* vmk_cluster_call() on h's socket (h->cluster_sock) and timeout. */
int vmk_cluster_vm(struct vmk_host *h, enum vmk_cluster_op op, const char *uuid, const char *name,
		   const char *vmx_path, const struct vmk_cluster_res *res,
		   struct vmk_cluster_vm *out, struct kb_errmsg *err);

/* vmk_cluster_migrate_call() on h's socket and timeout. */
int vmk_cluster_migrate(struct vmk_host *h, enum vmk_cluster_op op, const char *uuid,
			const struct vmk_cluster_mig *m, struct vmk_cluster_vm *out,
			struct kb_errmsg *err);

#endif
