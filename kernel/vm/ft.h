/*
 * FT, vmkernel's part (kernel/vm/ft.c; docs/ft.md "vmkernel's part"): the secondary's
 * start on this host, the primary's start, status, stop and the takeover.
 */
#ifndef VMK_FT_H
#define VMK_FT_H

#include "kernel/core/host.h"
#include "kernel/vm/vm.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

/* One of the vm_ft_* requests: fills rp->ft (freed by vmk_vm_ft_reply_free()) and *vm with
 * the VM it was about (for the reply's VmInfo). Any thread. */
int vmk_vm_ft_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq, Keel__Vmk__VmkReply *rp,
		     struct vmk_vm **vm, struct kb_errmsg *err);
void vmk_vm_ft_reply_free(Keel__Vmk__VmkReply *rp);

#endif
