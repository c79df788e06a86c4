/*
 * libkeel's typed calls: one function per unary rpc of keel.vim.Vim (proto/vim.proto), and
 * the helpers built on calls: following a Task to its end (kl_task_wait) and the change
 * feed (kl_watch). Included by keel_client.h, the entry point.
 *
 * KL_VIM_CALLS is the list, one line per unary rpc in the .proto's order:
 *   X(Method, snake_name, RequestType, request_type, ReplyType, reply_type)
 * (types without the Keel__Vim__ prefix; the lower-case names are protoc-c's, so
 * keel__vim__<reply_type>__descriptor is the reply's descriptor). Each line declares
 *
 *   int kl_vim_<snake_name>(struct kl_client *c, const Keel__Vim__<RequestType> *req,
 *                           Keel__Vim__<ReplyType> **reply, struct kl_status *st);
 *
 * which is kl_client_call(c, "<Method>", ...): 0 and *reply (caller frees with
 * keel__vim__<reply_type>__free_unpacked(*reply, NULL)), or -code with st filled and
 * *reply NULL. kl_vim_login and kl_vim_login_by_certificate only return the Session; use
 * kl_client_login / kl_client_login_cert to keep its token in c. The streaming rpcs
 * (WaitForUpdates, Console) are not in the list: see kl_watch and kl_client_stream. A new
 * rpc is a new line here; tests/unit/test_libkeel_calls.c checks the list against
 * protoc-c's service descriptor.
 */
#ifndef KL_KEEL_CALLS_H
#define KL_KEEL_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "mgmt-api/libkeel/keel_client.h"

/* clang-format off */
#define KL_VIM_CALLS(X) \
	X(Login, login, LoginRequest, login_request, Session, session) \
	X(Logout, logout, LogoutRequest, logout_request, LogoutReply, logout_reply) \
	X(CurrentSession, current_session, CurrentSessionRequest, current_session_request, Session, session) \
	X(RetrieveInventory, retrieve_inventory, RetrieveInventoryRequest, retrieve_inventory_request, Inventory, inventory) \
	X(CreateVm, create_vm, CreateVmRequest, create_vm_request, Task, task) \
	X(RegisterVm, register_vm, RegisterVmRequest, register_vm_request, Task, task) \
	X(UnregisterVm, unregister_vm, VmRef, vm_ref, Task, task) \
	X(DestroyVm, destroy_vm, VmRef, vm_ref, Task, task) \
	X(ReconfigureVm, reconfigure_vm, ReconfigureVmRequest, reconfigure_vm_request, Task, task) \
	X(PowerOnVm, power_on_vm, VmRef, vm_ref, Task, task) \
	X(PowerOffVm, power_off_vm, VmRef, vm_ref, Task, task) \
	X(ResetVm, reset_vm, VmRef, vm_ref, Task, task) \
	X(SuspendVm, suspend_vm, VmRef, vm_ref, Task, task) \
	X(ResumeVm, resume_vm, VmRef, vm_ref, Task, task) \
	X(MigrateVm, migrate_vm, MigrateVmRequest, migrate_vm_request, Task, task) \
	X(ClusterCreate, cluster_create, ClusterCreateRequest, cluster_create_request, Task, task) \
	X(ClusterJoinToken, cluster_join_token, JoinTokenRequest, join_token_request, JoinTokenReply, join_token_reply) \
	X(ClusterJoin, cluster_join, ClusterJoinRequest, cluster_join_request, Task, task) \
	X(ClusterLeave, cluster_leave, ClusterLeaveRequest, cluster_leave_request, Task, task) \
	X(ClusterRemoveHost, cluster_remove_host, RemoveHostRequest, remove_host_request, Task, task) \
	X(ClusterGetStatus, cluster_get_status, ClusterStatusRequest, cluster_status_request, ClusterStatus, cluster_status) \
	X(ClusterEvents, cluster_events, EventsRequest, events_request, EventList, event_list) \
	X(GetHostConfig, get_host_config, HostConfigRequest, host_config_request, HostConfig, host_config) \
	X(ChangeVmknic, change_vmknic, VmknicChange, vmknic_change, Task, task) \
	X(ChangePortgroup, change_portgroup, PortgroupChange, portgroup_change, Task, task) \
	X(ChangeDatastore, change_datastore, DatastoreChange, datastore_change, Task, task) \
	X(SetMaintenance, set_maintenance, MaintenanceRequest, maintenance_request, Task, task) \
	X(WaitForTask, wait_for_task, WaitForTaskRequest, wait_for_task_request, Task, task) \
	X(ListTasks, list_tasks, ListTasksRequest, list_tasks_request, TaskList, task_list) \
	X(CancelTask, cancel_task, TaskRef, task_ref, Task, task) \
	X(ListUsers, list_users, Empty, empty, UserList, user_list) \
	X(ChangeUser, change_user, UserChange, user_change, Empty, empty) \
	X(ListRoles, list_roles, Empty, empty, RoleList, role_list) \
	X(ChangeRole, change_role, RoleChange, role_change, Empty, empty) \
	X(ListPermissions, list_permissions, Empty, empty, PermissionList, permission_list) \
	X(ChangePermission, change_permission, PermissionChange, permission_change, Empty, empty) \
	X(LoginByCertificate, login_by_certificate, LoginByCertificateRequest, login_by_certificate_request, Session, session) \
	X(GetHaConfig, get_ha_config, HaConfigRequest, ha_config_request, HaConfig, ha_config) \
	X(SetHaConfig, set_ha_config, HaConfigChange, ha_config_change, HaConfig, ha_config) \
	X(SetVmHa, set_vm_ha, VmHaChange, vm_ha_change, VmHaObject, vm_ha_object) \
	X(QueryPerf, query_perf, PerfRequest, perf_request, PerfReport, perf_report) \
	X(ListClusterRules, list_cluster_rules, ClusterRulesRequest, cluster_rules_request, ClusterRuleList, cluster_rule_list) \
	X(AddClusterRule, add_cluster_rule, AddClusterRuleRequest, add_cluster_rule_request, ClusterRuleList, cluster_rule_list) \
	X(RemoveClusterRule, remove_cluster_rule, RemoveClusterRuleRequest, remove_cluster_rule_request, ClusterRuleList, cluster_rule_list) \
	X(GetDrsStatus, get_drs_status, DrsStatusRequest, drs_status_request, DrsStatus, drs_status) \
	X(SetDrsConfig, set_drs_config, DrsConfigChange, drs_config_change, DrsStatus, drs_status) \
	X(ApplyDrsRecommendations, apply_drs_recommendations, ApplyDrsRequest, apply_drs_request, Task, task) \
	X(EnableVmFt, enable_vm_ft, VmFtRequest, vm_ft_request, Task, task) \
	X(DisableVmFt, disable_vm_ft, VmRef, vm_ref, Task, task) \
	X(FailoverVmFt, failover_vm_ft, VmRef, vm_ref, Task, task) \
	X(RestartVmFtSecondary, restart_vm_ft_secondary, VmFtRequest, vm_ft_request, Task, task) \
	X(GetVmFt, get_vm_ft, VmRef, vm_ref, VmFtInfo, vm_ft_info)
/* clang-format on */

#define KL__VIM_CALL_DECLARE(M, name, Rq, rq, Rp, rp)                      \
	int kl_vim_##name(struct kl_client *c, const Keel__Vim__##Rq *req, \
			  Keel__Vim__##Rp **reply, struct kl_status *st);
KL_VIM_CALLS(KL__VIM_CALL_DECLARE)

/* The list as data (for tests and tools): method name, request and reply descriptors. */
struct kl_vim_call_info {
	const char *method;
	const ProtobufCMessageDescriptor *input, *output;
};
extern const struct kl_vim_call_info kl_vim_calls[];
extern const size_t kl_vim_calls_count;

/* ---- tasks ----------------------------------------------------------------------------- */

/* Whether a task's state is final: success, error or cancelled. */
bool kl_task_ended(const Keel__Vim__Task *task);

/* Called by kl_task_wait with each state of the task that is not final yet (task borrowed
 * until the callback returns). Return 0 to go on waiting, nonzero to stop. */
typedef int (*kl_task_progress_cb)(const Keel__Vim__Task *task, void *arg);

/*
 * Follows task_id to a final state with WaitForTask, in slices of at most a second when
 * progress_cb is given (so it is called about once a second) and a minute otherwise, each
 * slice also shorter than the client's timeout_ms. timeout_ms bounds the whole wait (0:
 * none). 0 when the task ended (in any final state: look at (*final_task)->state);
 * -KL_DEADLINE_EXCEEDED (source KL_SRC_CLIENT) when timeout_ms passed first or
 * -KL_CANCELLED (KL_SRC_CLIENT) when progress_cb asked to stop — the task goes on in
 * hostd then; or a call's failure as kl_client_call (NOT_FOUND for an unknown id). In
 * every case *final_task is the last state received (caller frees with
 * keel__vim__task__free_unpacked), or NULL when none was.
 */
int kl_task_wait(struct kl_client *c, const char *task_id, uint64_t timeout_ms,
		 kl_task_progress_cb progress_cb, void *arg, Keel__Vim__Task **final_task,
		 struct kl_status *st);

/* ---- the change feed ----------------------------------------------------------------------- */

/* Called by kl_watch with each Update (borrowed until the callback returns). Return 0 for
 * more, nonzero to stop. */
typedef int (*kl_watch_cb)(const Keel__Vim__Update *update, void *arg);

/*
 * WaitForUpdates(since_version): hands every Update to cb as it arrives (docs/hostd.md,
 * "Change feed": first what changed after since_version — everything with 0 — then each
 * change as it happens; a version hostd cannot resume from starts with a reset, an Update
 * with no object, removed true and version 0). Resume with the version of the last Update
 * received. Blocks until cb returns nonzero (0 returned, the stream closed) or the stream
 * ends (hostd's status: 0 for OK, else -code), or fails as kl_client_stream.
 */
int kl_watch(struct kl_client *c, uint64_t since_version, kl_watch_cb cb, void *arg,
	     struct kl_status *st);

#endif
