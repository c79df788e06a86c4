/*
 * Contracts shared by the two files of `keel vm ft`: vm_ft.c (the command tree, the changes
 * and status through clusterd, the status table) and vm_ft_api.c (the same through hostd's
 * API, --server). Everything here runs in the keel process, single-threaded.
 */
#ifndef KEEL_VM_FT_INT_H
#define KEEL_VM_FT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.pb-c.h"
#include "mgmt-api/keel/keel.h"

#define OP_ENABLE   KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_ENABLE
#define OP_DISABLE  KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_DISABLE
#define OP_FAILOVER KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER
#define OP_RESTART  KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_RESTART_SECONDARY

enum { O_CSOCK = 1, O_SECONDARY }; /* --cluster-socket is 1, as kc_cluster_call reads it */

/* One VM's FT, as status shows it. */
struct ft_row {
	char name[128], uuid[64], state[24], primary[128], secondary[128], preferred[128];
	bool ids; /* primary_id, secondary_id, epoch, failover_epoch known (the cluster's view) */
	uint64_t primary_id, secondary_id, epoch, failover_epoch;
	uint64_t generation, since_ms;
	uint32_t failovers;
	/* the primary vmx's figures, when this host runs it */
	bool figures;
	char phase[32];
	uint32_t epoch_ms;
	uint64_t checkpoint, lag_us, last_pause_us, max_pause_us, last_ckpt_bytes, held_frames;
	uint64_t bytes;
};

/* vm_ft.c: rows as --json's object or as the aligned table on stdout; KC_EXIT_OK. */
int kc_vm_ft_print_rows(struct kc_ctx *ctx, const struct ft_row *rows, size_t n);

/* vm_ft_api.c: `keel vm ft status` through hostd's API (GetVmFt); the exit code. */
int kc_vm_ft_status_api(struct kc_ctx *ctx, const struct kc_call *call);
/* vm_ft_api.c: the change op (OP_ENABLE, ...) through hostd's API, its Task followed to its
 * end unless --no-wait; the exit code. */
int kc_vm_ft_change_api(struct kc_ctx *ctx, const struct kc_call *call, int op);

#endif
