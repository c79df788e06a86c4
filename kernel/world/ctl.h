/*
 * The user worlds' control requests inside vmkernel (ctl.c): world_list and world_restart
 * (proto/vmk.proto), answered from the supervisor set with vmk_worlds_set_current().
 */
#ifndef VMK_WORLD_CTL_H
#define VMK_WORLD_CTL_H

#include <stdbool.h>

#include "lib/err.h"
#include "vmk.pb-c.h"

/* Whether rq is a world request. */
bool vmk_world_ctl_owns(const Keel__Vmk__VmkRequest *rq);
/* Serves a world request into reply (reply->worlds, freed by vmk_world_ctl_reply_free).
 * 0, KB_ENOTFOUND (restart of an unknown world), KB_ESTATE, -ENOMEM. Thread-pool thread. */
int vmk_world_ctl_handle(const Keel__Vmk__VmkRequest *rq, Keel__Vmk__VmkReply *reply,
			 struct kb_errmsg *err);
/* Frees what vmk_world_ctl_handle put into reply; other fields are left alone. */
void vmk_world_ctl_reply_free(Keel__Vmk__VmkReply *reply);

#endif
