/*
 * vmkernel start-up and shutdown (core.c), host information (hostinfo.c).
 */
#ifndef VMK_CORE_H
#define VMK_CORE_H

#include <stdbool.h>

#include "kernel/core/host.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

#define VMK_VERSION "0.1.0"

/* Prepares h for state dir `state`: directories, the single-instance lock, the log,
 * datastores, resources, networking and the VM inventory. */
int vmk_core_init(struct vmk_host *h, const char *state, int level, bool to_stderr,
		  struct kb_errmsg *err);
void vmk_core_close(struct vmk_host *h);

/* Fills a HostInfo. Any thread. */
void vmk_host_info(struct vmk_host *h, Keel__Vmk__HostInfo *out, char *hostname, size_t size);

#endif
