/*
 * The VM methods of keel.vim.Vim: CreateVm, RegisterVm, UnregisterVm, DestroyVm,
 * ReconfigureVm, PowerOnVm, PowerOffVm, ResetVm, SuspendVm, ResumeVm and MigrateVm
 * (docs/hostd.md, "Tasks and VM operations").
 *
 * Each answers with a Task (hostagent/vim_tasks.h) as soon as the caller is authorized;
 * the operation then runs as one vmkernel request on a libuv worker and ends the task.
 * Refusals of the call itself are gRPC statuses (UNAUTHENTICATED, PERMISSION_DENIED,
 * INVALID_ARGUMENT); everything after it — a VM that is not here, vmkernel's refusals,
 * vmkernel not answering — is the task's error text.
 *
 * Threads: the handlers run on the loop; only the vmkernel/clusterd requests run on
 * workers.
 */
#ifndef HD_VIM_VM_H
#define HD_VIM_VM_H

#include "hostagent/grpc.h"

void hd_vim_create_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_register_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_unregister_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_destroy_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_reconfigure_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_power_on_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_power_off_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_reset_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_suspend_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_resume_vm(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_migrate_vm(struct hd_call *call, const ProtobufCMessage *req);

#endif
