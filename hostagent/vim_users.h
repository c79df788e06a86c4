/*
 * Users, roles and permissions through the Vim API (docs/hostd.md, "Users and the cluster
 * through the API"): ListUsers, ChangeUser, ListRoles, ChangeRole, ListPermissions,
 * ChangePermission.
 *
 * Lists need System.Read on the root entity; changes need Authorization.ModifyUsers,
 * Authorization.ModifyRoles or Authorization.ModifyPermissions there. Every change is
 * applied to the database on the loop, then the database is encoded on the loop and
 * written to DIR/auth.db on a worker; the call is answered once the file is written.
 * A new password is hashed on a worker first (tens of milliseconds). Removing a user or
 * changing its password ends all of its sessions.
 *
 * Threads: handlers run on the loop, as every handler (hostagent/grpc.h).
 */
#ifndef HD_VIM_USERS_H
#define HD_VIM_USERS_H

#include "hostagent/grpc.h"

void hd_vim_list_users(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_change_user(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_list_roles(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_change_role(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_list_permissions(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_change_permission(struct hd_call *call, const ProtobufCMessage *req);

#endif
