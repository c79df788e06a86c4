/*
 * FT through the Vim API (docs/ft.md, "The API"): EnableVmFt, DisableVmFt, FailoverVmFt,
 * RestartVmFtSecondary (each a Task) and GetVmFt.
 *
 * The cluster keeps a VM's FT in its replicated state; these handlers ask this host's
 * clusterd to change it (ClusterVmRequest OP_FT_*) and follow the cluster status until the
 * change is done. GetVmFt needs System.Read on the VM, the others
 * VirtualMachine.Config.Settings on the VM. Outside a cluster every call is
 * FAILED_PRECONDITION.
 *
 * Threads: the handlers run on hostd's loop; clusterd and vmkernel are asked on libuv's
 * workers.
 */
#ifndef HD_VIM_FT_H
#define HD_VIM_FT_H

#include "hostagent/grpc.h"

void hd_vim_enable_vm_ft(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_disable_vm_ft(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_failover_vm_ft(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_restart_vm_ft_secondary(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_get_vm_ft(struct hd_call *call, const ProtobufCMessage *req);

#endif
