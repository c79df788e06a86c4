/*
 * VM monitoring (kernel/vm/monitor.c): resets a VM whose guest heartbeat stops while its
 * vmx runs, within the VM's vmMonitoring.* settings.
 */
#ifndef VMK_MONITOR_H
#define VMK_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/core/host.h"
#include "kernel/vm/vmxfile.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

struct vmk_vm;
struct vmk_monitor;

/* Starts the monitoring thread of host h (after the inventory is loaded). 0 and *out
 * (stopped and freed with vmk_monitor_stop), or -errno with err set. */
int vmk_monitor_start(struct vmk_host *h, struct vmk_monitor **out, struct kb_errmsg *err);
/* Stops the thread (waits for a round in progress, including a reset it started) and frees
 * m. NULL is fine. */
void vmk_monitor_stop(struct vmk_monitor *m);

/* Sets a VM's monitoring and writes its .vmx (any power state; any thread; takes
 * vm->lock). timeout_s, max_resets 0: the defaults. KB_ECONFIG for a value out of range,
 * or the .vmx write's error; nothing changes on error. */
int vmk_vm_monitor_set(struct vmk_vm *vm, bool enabled, uint32_t timeout_s, uint32_t max_resets,
		       struct kb_errmsg *err);
/* Fills out (strings static) from vm; caller holds vm->lock. */
void vmk_vm_monitor_info(struct vmk_vm *vm, Keel__Vmk__VmMonitorInfo *out);

/* The effective settings (defaults applied). */
uint32_t vmk_vm_monitor_timeout_s(const struct vmk_vmx *cfg);
uint32_t vmk_vm_monitor_max_resets(const struct vmk_vmx *cfg);

#endif
