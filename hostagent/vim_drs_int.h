/*
 * Internals shared by the files of hostd's placement rules and DRS (docs/hostd.md,
 * "Placement rules and DRS"): vim_drs.c (the rule and DRS calls, and asking clusterd) and
 * vim_drs_apply.c (ApplyDrsRecommendations, a Task). Not for the rest of hostd, which uses
 * vim_drs.h.
 *
 * Threads: the hd__drs_* functions run on libuv's workers; a struct asker is used by one
 * thread at a time (its request's worker step, then the loop).
 */
#ifndef HD_VIM_DRS_INT_H
#define HD_VIM_DRS_INT_H

#include "cluster.pb-c.h"
#include "hostagent/vim.h"

#define NAME_LEN 128
#define MANAGE	 "Host.Inventory.ManageCluster"

/* One request's link to clusterd, and how its last question went. */
struct asker {
	struct hd_vim *v;
	enum hd_status status; /* HD_OK, or the error's */
	char error[KB_ERRMSG_SIZE];
};

/* Sets a's status to st and its error to the text. */
void hd__drs_set_error(struct asker *a, enum hd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One request to clusterd: its reply (caller frees with
 * keel__cluster__cluster_reply__free_unpacked), or NULL with a's error set. */
Keel__Cluster__ClusterReply *hd__drs_ask(struct asker *a, const Keel__Cluster__ClusterRequest *rq);
/* A rule list (drs_op 0) or a DRS view: the reply, which carries drs (caller frees as
 * hd__drs_ask's), or NULL with a's error set. */
Keel__Cluster__ClusterReply *hd__drs_ask_view(struct asker *a, int drs_op);
/* "vm-<uuid>" -> the uuid clusterd takes; anything else as it is (t borrowed). */
const char *hd__drs_vm_text(const char *t);

#endif
