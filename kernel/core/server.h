/*
 * vmkernel's control server (server.c) and request dispatch (dispatch.c).
 */
#ifndef VMK_SERVER_H
#define VMK_SERVER_H

#include "kernel/core/host.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

/* Listens on h->socket_path (mode 0600) on h->loop. */
int vmk_server_start(struct vmk_host *h, struct kb_errmsg *err);
void vmk_server_stop(struct vmk_host *h);

/* Handles one request and packs the reply into out. Runs on a thread-pool thread. */
void vmk_dispatch(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq, struct kb_buf *out);

#endif
