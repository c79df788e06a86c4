/*
 * The method table of keel.vim.Vim: one entry per rpc of proto/vim.proto, in its order.
 *
 * A NULL handler answers UNIMPLEMENTED "<Method> is not implemented yet" (after the
 * request decoded). Implementing a method is a one-line change here: put the handler's
 * name in place of NULL (and declare it in the component's header). The unit test
 * test_hostd_methods checks this table against the descriptor protoc-c generated from
 * vim.proto (names, input types) and the streaming flags against the .proto text.
 */
#include <string.h>

#include "hostagent/grpc.h"
#include "hostagent/vim.h"
#include "hostagent/vim_feed.h"
#include "hostagent/vim_ft.h"
#include "hostagent/vim_host.h"
#include "hostagent/vim_perf.h"
#include "hostagent/vim_tasks.h"
#include "hostagent/vim_vm.h"
#include "hostagent/vim_cluster.h"
#include "hostagent/vim_drs.h"
#include "hostagent/vim_users.h"
#include "vim.pb-c.h"

const struct hd_method hd_vim_methods[] = {
    /* name, input, handler, server_streaming */
    {"Login", &keel__vim__login_request__descriptor, hd_vim_login, false},
    {"Logout", &keel__vim__logout_request__descriptor, hd_vim_logout, false},
    {"CurrentSession", &keel__vim__current_session_request__descriptor, hd_vim_current_session,
     false},
    {"RetrieveInventory", &keel__vim__retrieve_inventory_request__descriptor,
     hd_vim_retrieve_inventory, false},
    {"WaitForUpdates", &keel__vim__wait_for_updates_request__descriptor, hd_vim_wait_for_updates,
     true},
    {"CreateVm", &keel__vim__create_vm_request__descriptor, hd_vim_create_vm, false},
    {"RegisterVm", &keel__vim__register_vm_request__descriptor, hd_vim_register_vm, false},
    {"UnregisterVm", &keel__vim__vm_ref__descriptor, hd_vim_unregister_vm, false},
    {"DestroyVm", &keel__vim__vm_ref__descriptor, hd_vim_destroy_vm, false},
    {"ReconfigureVm", &keel__vim__reconfigure_vm_request__descriptor, hd_vim_reconfigure_vm, false},
    {"PowerOnVm", &keel__vim__vm_ref__descriptor, hd_vim_power_on_vm, false},
    {"PowerOffVm", &keel__vim__vm_ref__descriptor, hd_vim_power_off_vm, false},
    {"ResetVm", &keel__vim__vm_ref__descriptor, hd_vim_reset_vm, false},
    {"SuspendVm", &keel__vim__vm_ref__descriptor, hd_vim_suspend_vm, false},
    {"ResumeVm", &keel__vim__vm_ref__descriptor, hd_vim_resume_vm, false},
    {"MigrateVm", &keel__vim__migrate_vm_request__descriptor, hd_vim_migrate_vm, false},
    {"Console", &keel__vim__console_request__descriptor, hd_vim_console, true},
    {"ClusterCreate", &keel__vim__cluster_create_request__descriptor, hd_vim_cluster_create, false},
    {"ClusterJoinToken", &keel__vim__join_token_request__descriptor, hd_vim_cluster_join_token,
     false},
    {"ClusterJoin", &keel__vim__cluster_join_request__descriptor, hd_vim_cluster_join, false},
    {"ClusterLeave", &keel__vim__cluster_leave_request__descriptor, hd_vim_cluster_leave, false},
    {"ClusterRemoveHost", &keel__vim__remove_host_request__descriptor, hd_vim_cluster_remove_host,
     false},
    {"ClusterGetStatus", &keel__vim__cluster_status_request__descriptor, hd_vim_cluster_get_status,
     false},
    {"ClusterEvents", &keel__vim__events_request__descriptor, hd_vim_cluster_events, false},
    {"GetHostConfig", &keel__vim__host_config_request__descriptor, hd_vim_get_host_config, false},
    {"ChangeVmknic", &keel__vim__vmknic_change__descriptor, hd_vim_change_vmknic, false},
    {"ChangePortgroup", &keel__vim__portgroup_change__descriptor, hd_vim_change_portgroup, false},
    {"ChangeDatastore", &keel__vim__datastore_change__descriptor, hd_vim_change_datastore, false},
    {"SetMaintenance", &keel__vim__maintenance_request__descriptor, hd_vim_set_maintenance, false},
    {"WaitForTask", &keel__vim__wait_for_task_request__descriptor, hd_vim_wait_for_task, false},
    {"ListTasks", &keel__vim__list_tasks_request__descriptor, hd_vim_list_tasks, false},
    {"CancelTask", &keel__vim__task_ref__descriptor, hd_vim_cancel_task, false},
    {"ListUsers", &keel__vim__empty__descriptor, hd_vim_list_users, false},
    {"ChangeUser", &keel__vim__user_change__descriptor, hd_vim_change_user, false},
    {"ListRoles", &keel__vim__empty__descriptor, hd_vim_list_roles, false},
    {"ChangeRole", &keel__vim__role_change__descriptor, hd_vim_change_role, false},
    {"ListPermissions", &keel__vim__empty__descriptor, hd_vim_list_permissions, false},
    {"ChangePermission", &keel__vim__permission_change__descriptor, hd_vim_change_permission,
     false},
    {"LoginByCertificate", &keel__vim__login_by_certificate_request__descriptor,
     hd_vim_login_by_certificate, false},
    {"GetHaConfig", &keel__vim__ha_config_request__descriptor, hd_vim_get_ha_config, false},
    {"SetHaConfig", &keel__vim__ha_config_change__descriptor, hd_vim_set_ha_config, false},
    {"SetVmHa", &keel__vim__vm_ha_change__descriptor, hd_vim_set_vm_ha, false},
    {"QueryPerf", &keel__vim__perf_request__descriptor, hd_vim_query_perf, false},
    {"ListClusterRules", &keel__vim__cluster_rules_request__descriptor,
     hd_vim_list_cluster_rules, false},
    {"AddClusterRule", &keel__vim__add_cluster_rule_request__descriptor, hd_vim_add_cluster_rule,
     false},
    {"RemoveClusterRule", &keel__vim__remove_cluster_rule_request__descriptor,
     hd_vim_remove_cluster_rule, false},
    {"GetDrsStatus", &keel__vim__drs_status_request__descriptor, hd_vim_get_drs_status, false},
    {"SetDrsConfig", &keel__vim__drs_config_change__descriptor, hd_vim_set_drs_config, false},
    {"ApplyDrsRecommendations", &keel__vim__apply_drs_request__descriptor,
     hd_vim_apply_drs_recommendations, false},
    {"EnableVmFt", &keel__vim__vm_ft_request__descriptor, hd_vim_enable_vm_ft, false},
    {"DisableVmFt", &keel__vim__vm_ref__descriptor, hd_vim_disable_vm_ft, false},
    {"FailoverVmFt", &keel__vim__vm_ref__descriptor, hd_vim_failover_vm_ft, false},
    {"RestartVmFtSecondary", &keel__vim__vm_ft_request__descriptor,
     hd_vim_restart_vm_ft_secondary, false},
    {"GetVmFt", &keel__vim__vm_ref__descriptor, hd_vim_get_vm_ft, false},
};

const size_t hd_vim_methods_count = sizeof(hd_vim_methods) / sizeof(hd_vim_methods[0]);

const struct hd_method *hd_method_find(const struct hd_method *table, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}
