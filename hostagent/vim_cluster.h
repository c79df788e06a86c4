/*
 * The cluster through the Vim API (docs/hostd.md, "Users and the cluster through the
 * API"): ClusterGetStatus, ClusterEvents, ClusterJoinToken, and the tasks ClusterCreate,
 * ClusterJoin, ClusterLeave, ClusterRemoveHost.
 *
 * Each is one ClusterRequest to clusterd's control socket (DIR/clusterd.sock), sent and
 * answered on a worker thread. Reads need System.Read on the root entity, the rest
 * Host.Inventory.ManageCluster. clusterd unreachable: UNAVAILABLE; clusterd refusing:
 * FAILED_PRECONDITION with its message (or, for the four tasks, the task ends in error
 * with it). A task's request without its name, address and token, or host:
 * INVALID_ARGUMENT, and no task.
 *
 * Threads: handlers run on the loop, as every handler (hostagent/grpc.h).
 */
#ifndef HD_VIM_CLUSTER_H
#define HD_VIM_CLUSTER_H

#include "hostagent/grpc.h"

void hd_vim_cluster_get_status(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cluster_events(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cluster_join_token(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cluster_create(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cluster_join(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cluster_leave(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cluster_remove_host(struct hd_call *call, const ProtobufCMessage *req);

#endif
