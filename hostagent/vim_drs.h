/*
 * Placement rules and DRS through the Vim API (docs/hostd.md, "Placement rules and DRS"):
 * ListClusterRules, AddClusterRule, RemoveClusterRule, GetDrsStatus, SetDrsConfig and
 * ApplyDrsRecommendations (a Task). Reading needs System.Read on the root, changing and
 * applying Host.Inventory.ManageCluster on the root. Handlers run on hostd's loop.
 */
#ifndef HD_VIM_DRS_H
#define HD_VIM_DRS_H

#include "hostagent/grpc.h"

void hd_vim_list_cluster_rules(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_add_cluster_rule(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_remove_cluster_rule(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_get_drs_status(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_set_drs_config(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_apply_drs_recommendations(struct hd_call *call, const ProtobufCMessage *req);

#endif
