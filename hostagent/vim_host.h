/*
 * The host configuration methods of keel.vim.Vim: GetHostConfig, ChangeVmknic,
 * ChangePortgroup, ChangeDatastore and SetMaintenance (vim_host.c), and the VM console
 * stream, Console (vim_console.c). docs/hostd-host.md.
 *
 * GetHostConfig answers at once from vmkernel (vmknics, portgroups, datastores) and the
 * maintenance flag (clusterd's when the host is in a cluster, else DIR/maintenance). The
 * Change* methods and SetMaintenance answer with a Task (hostagent/vim_tasks.h) whose
 * error is vmkernel's or clusterd's text when they refuse. Console streams the end of a
 * VM's console log and, with follow, what the VM writes after it.
 *
 * Threads: the handlers run on the loop; vmkernel and clusterd are asked on workers.
 */
#ifndef HD_VIM_HOST_H
#define HD_VIM_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include "hostagent/grpc.h"
#include "lib/err.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define HD_HOST_TAGS_MAX 16 /* tags of one vmknic in a ChangeVmknic */

/* One vmkernel request of a vmknic change. tag is borrowed from the wanted Vmknic. */
enum hd_vmknic_step_kind {
	HD_VMKNIC_ADD,	      /* vmknic_add of the whole wanted adapter */
	HD_VMKNIC_SET_IP,     /* vmknic_set_ip (keeping the adapter's gateway) */
	HD_VMKNIC_SET_MTU,    /* vmknic_set_mtu */
	HD_VMKNIC_TAG_ADD,    /* vmknic_tag_add of tag */
	HD_VMKNIC_TAG_REMOVE, /* vmknic_tag_remove of tag (borrowed from cur) */
};

struct hd_vmknic_step {
	enum hd_vmknic_step_kind kind;
	const char *tag;
};

#define HD_VMKNIC_STEPS_MAX (3 + 2 * HD_HOST_TAGS_MAX)

/*
 * Plans the vmkernel requests that turn the adapter cur (vmkernel's, NULL when there is
 * none by want's name) into want: without cur, one HD_VMKNIC_ADD; with cur, the
 * difference: HD_VMKNIC_SET_IP when want->ipv4 is set and differs from cur's
 * "address/prefix", HD_VMKNIC_SET_MTU when want->mtu is set and differs, then a
 * HD_VMKNIC_TAG_REMOVE for each of cur's tags not in want->tags and a HD_VMKNIC_TAG_ADD for
 * each wanted tag cur lacks (want->tags is the whole set). An empty portgroup or netstack
 * keeps cur's; another one is refused (an adapter is moved by removing and adding it).
 * Pure: no I/O, any thread.
 *
 * 0 with steps[0..*n) filled (*n may be 0: nothing to change), or -EINVAL with the reason
 * in why (a move, more than HD_HOST_TAGS_MAX tags, a tag named twice), or -ENOSPC when max
 * steps do not suffice. Pointers in steps are borrowed from cur and want.
 */
int hd_vmknic_plan(const Keel__Vmk__VmknicInfo *cur, const Keel__Vim__Vmknic *want,
		   struct hd_vmknic_step *steps, size_t max, size_t *n, char *why, size_t why_size);

/*
 * The standalone maintenance flag in state_dir/maintenance ("1\n" in maintenance; no file
 * or anything else: not). Blocking file I/O: workers only. hd_host_maintenance_get
 * returns the flag (false when the file cannot be read); hd_host_maintenance_set writes
 * it atomically (lib/file.h) and returns 0 or -errno with e set.
 */
bool hd_host_maintenance_get(const char *state_dir);
int hd_host_maintenance_set(const char *state_dir, bool enter, struct kb_errmsg *e);

/* Handlers. GetHostConfig needs System.Read on {root, host-<id>}; ChangeVmknic and
 * ChangePortgroup Host.Config.Network, ChangeDatastore Host.Config.Storage,
 * SetMaintenance Host.Config.Maintenance, there too; Console
 * VirtualMachine.Interact.ConsoleInteract on {root, host-<id>, vm-<uuid>}. */
void hd_vim_get_host_config(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_change_vmknic(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_change_portgroup(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_change_datastore(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_set_maintenance(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_console(struct hd_call *call, const ProtobufCMessage *req);

#endif
