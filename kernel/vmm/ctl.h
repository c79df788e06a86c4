/*
 * The vmx control loop (ctl.c): serves the control socket (proto/vmk.proto, framed per
 * lib/frame.h), handles reset requests from the guest, and returns when the VM stops or
 * the process is told to terminate.
 */
#ifndef VMM_CTL_H
#define VMM_CTL_H

#include "kernel/vmm/vmm.h"

/* listen_fd: the control socket (-1 for none), borrowed. Runs on the calling thread
 * until the VM is stopped or SIGTERM/SIGINT arrives (which powers the VM off). */
int vmm_ctl_run(struct vmm_vm *vm, int listen_fd);

#endif
