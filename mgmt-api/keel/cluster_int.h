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

/* ---- `keel cluster rule` and `keel cluster drs` (cluster_drs.c, cluster_drs_api.c) ------
 * cluster_drs.c checks the options of both paths and prints what clusterd's ClusterDrsStatus
 * carries; cluster_drs_api.c asks hostd's API (--server) and hands its answers, turned into
 * a ClusterDrsStatus, to the same printers, so the text and --json are the same. */

/* One recommended move of `drs apply` and what became of it. */
struct kc_drs_move {
	const Keel__Cluster__DrsRecommendation *rec; /* borrowed from the status it came from */
	bool begun, done;
	uint64_t owner;	  /* after the migration ended */
	char result[256]; /* "moved", "begun", "not begun (...)", "failed (...)", ... */
};

/* cluster_drs.c: the words of clusterd's RuleKind and DrsAutomation values ("affinity", ...,
 * "manual", "partially", "fully"; "?" for another value) and back (0 for another word). */
const char *kc_drs_kind_word(int kind);
int kc_drs_kind_value(const char *word);
const char *kc_drs_automation_word(int automation);
int kc_drs_automation_value(const char *word);
/* cluster_drs.c: the printers of the local commands (rule list, drs status, drs recommend,
 * drs apply) as text or --json; each returns the command's exit code (print_moves:
 * KC_EXIT_FAILED when a move did not happen). */
int kc_drs_print_rules(struct kc_ctx *ctx, const Keel__Cluster__ClusterDrsStatus *st);
int kc_drs_print_status(struct kc_ctx *ctx, const Keel__Cluster__ClusterDrsStatus *st);
int kc_drs_print_recs(struct kc_ctx *ctx, const Keel__Cluster__ClusterDrsStatus *st);
int kc_drs_print_moves(struct kc_ctx *ctx, const struct kc_drs_move *mv, size_t n);
/* cluster_drs.c: the moves of `drs apply` out of st's recommendations (every one with all,
 * else those of the VMs named in call->pos, by name, uuid or "vm-<uuid>") into mv (room for
 * st->n_recommendations, zeroed); KC_EXIT_OK and *n, or "DRS recommends no move of VM x"
 * reported (exit 1). */
int kc_drs_select(struct kc_ctx *ctx, const struct kc_call *call,
		  const Keel__Cluster__ClusterDrsStatus *st, bool all, struct kc_drs_move *mv,
		  size_t *n);

/* cluster_drs_api.c: the same commands through hostd's API, after cluster_drs.c checked the
 * options (the requests are clusterd's, as the local path would send them). Each reports its
 * failure (hostd's message: an unknown VM, a missing privilege, ...) and returns the exit
 * code. */
int kc_drs_api_rules(struct kc_ctx *ctx, const struct kc_call *call);
int kc_drs_api_rule_add(struct kc_ctx *ctx, const struct kc_call *call,
			const Keel__Cluster__ClusterRuleRequest *rr);
int kc_drs_api_rule_remove(struct kc_ctx *ctx, const struct kc_call *call, const char *name);
/* status (recommend false) or recommend (true): GetDrsStatus. */
int kc_drs_api_status(struct kc_ctx *ctx, const struct kc_call *call, bool recommend);
int kc_drs_api_set(struct kc_ctx *ctx, const struct kc_call *call,
		   const Keel__Cluster__ClusterConfigSet *cs);
/* ApplyDrsRecommendations: the moves chosen as kc_drs_select does, one Task followed to its
 * end (at most wait_s for each group of parallel moves) with progress, then the moves'
 * table; no_wait: the task id (--json: the Task) printed at once. */
int kc_drs_api_apply(struct kc_ctx *ctx, const struct kc_call *call, bool all, uint32_t parallel,
		     uint32_t wait_s, bool no_wait);

#endif
