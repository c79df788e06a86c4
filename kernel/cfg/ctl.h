/*
 * The host's config store inside vmkernel (ctl.c): one store per process, kept in
 * <state dir>/config.kar, its control requests (cfg_* in proto/vmk.proto), and the
 * settings vmkernel takes from it (etc/keel/advanced.conf).
 */
#ifndef VMK_CFG_CTL_H
#define VMK_CFG_CTL_H

#include <stdbool.h>

#include "kernel/cfg/cfg.h"
#include "kernel/core/host.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

/* Opens the store in h->state_dir (loading the archive: never fails on a bad one) and
 * applies advanced.conf. 0, or -ENOMEM / -ENAMETOOLONG. Called once, at start. */
int vmk_cfg_ctl_init(struct vmk_host *h, struct kb_errmsg *err);
/* Saves what is unsaved and closes the store. */
void vmk_cfg_ctl_close(struct vmk_host *h);
/* The host's store (NULL before init): borrowed; any thread. */
struct vmk_cfg *vmk_cfg_ctl_store(void);

/* Whether rq is a config store request. */
bool vmk_cfg_ctl_owns(const Keel__Vmk__VmkRequest *rq);
/* Serves a config store request into reply (fields freed by vmk_cfg_ctl_reply_free).
 * Thread-pool thread. */
int vmk_cfg_ctl_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq,
		       Keel__Vmk__VmkReply *reply, struct kb_errmsg *err);
void vmk_cfg_ctl_reply_free(Keel__Vmk__VmkReply *reply);

#endif
