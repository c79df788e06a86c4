/*
 * Contracts shared by the files of `keel cluster` that talk to clusterd: cluster.c (the
 * command tree, the call to clusterd, membership) and cluster_status.c (status, events,
 * config). Everything here runs in the keel process, single-threaded.
 */
#ifndef KEEL_CLUSTER_INT_H
#define KEEL_CLUSTER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.pb-c.h"
#include "mgmt-api/keel/keel.h"

/* The option ids of these commands; --cluster-socket is 1, as kc_cluster_call reads it. */
enum {
	O_CSOCK = 1,
	O_TOKEN,
	O_TTL,
	O_SINCE,
	O_LIMIT,
	O_COUNT,
	O_WINDOW,
	O_FTIMEOUT,
	O_ISORESP,
	O_HA,
	O_ADM_FAIL,
	O_ADM_PCT,
	O_ADM_OFF,
};

/* cluster.c: whether to go through hostd's API: KC_EXIT_OK and *api, or a usage error for
 * --cluster-socket, which has no meaning there. */
int kc_cluster_through_api(struct kc_ctx *ctx, const struct kc_call *call, bool *api);
/* cluster.c: v (NULL: 0) as a number of at most max into *out; KC_EXIT_OK, or a usage
 * error naming what. */
int kc_cluster_parse_u64_opt(struct kc_ctx *ctx, const char *v, const char *what, uint64_t max,
			     uint64_t *out);

/* cluster_status.c: sends rq to clusterd and prints the status its reply carries; the
 * exit code. */
int kc_cluster_run_request(struct kc_ctx *ctx, const struct kc_call *call,
			   const Keel__Cluster__ClusterRequest *rq);
/* cluster_status.c: `keel cluster status`, `events`, `config`. */
extern const struct kc_cmd kc_cluster_status_cmd, kc_cluster_events_cmd, kc_cluster_config_cmd;

#endif
