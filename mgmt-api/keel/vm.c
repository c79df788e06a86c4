/*
 * `keel vm`: the noun, and its read-only commands `list` and `info`.
 *
 * list prints one row per registered VM (name, state, memory, vCPUs, datastore, vmx pid,
 * uptime); info prints everything vmkernel knows about one VM, its configuration
 * included. list also works through hostd's API (vm_api.c). Both ask vmkernel (vm_list, vm_get) and fail with its error text when it
 * refuses, e.g. for a VM that does not exist. The state-changing commands live in
 * vm_ops.c, vm_create.c and console.c.
 */
#include <inttypes.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME",	 "STATE", "MEMORY", "VCPUS",
					    "DATASTORE", "PID",	  "UPTIME"};
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	struct kc_table t;
	int rc;

	if (kc_api_wanted(ctx))
		return kc_vm_api_list(ctx, call);
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	req.vm_list = &list;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VMS);
		kc_reply_free(rp);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 7, heads, "llrrlrr");
	for (size_t i = 0; i < rp->n_vms; i++) {
		const Keel__Vmk__VmInfo *vm = rp->vms[i];
		const Keel__Vmk__VmSpec *spec = vm->spec;
		char mem[32] = "-", cpus[16] = "-", pid[16] = "-", up[32];
		bool on = strcmp(vm->power_state, "poweredOn") == 0;

		if (spec && spec->memsize_mib)
			kc_fmt_bytes((uint64_t)spec->memsize_mib << 20, mem, sizeof(mem));
		if (spec && spec->numvcpus)
			snprintf(cpus, sizeof(cpus), "%" PRIu32, spec->numvcpus);
		if (on && vm->pid)
			snprintf(pid, sizeof(pid), "%" PRIu32, vm->pid);
		kc_fmt_duration_ms(on ? vm->powered_on_ms : 0, up, sizeof(up));
		kc_table_add(&t, (const char *const[]){
				     vm->name, kc_fmt_power_state(vm->power_state), mem, cpus,
				     vm->datastore[0] ? vm->datastore : "-", pid, up});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	kc_reply_free(rp);
	return rc;
}

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List the registered VMs.",
    .detail = "Through hostd's API (--server): the VMs of RetrieveInventory, with their host\n"
	      "(every host's in a cluster), without vmx pid or uptime.\n",
    .run = list_run,
    .api = true,
};

static void print_spec(const Keel__Vmk__VmSpec *s)
{
	const Keel__Vmk__Resources *r = s->resources;
	char b[64];

	kc_kv(stdout, "Guest", "%s", s->guest_kind[0] ? s->guest_kind : "kguest");
	kc_kv(stdout, "Memory", "%s", kc_fmt_bytes((uint64_t)s->memsize_mib << 20, b, sizeof(b)));
	kc_kv(stdout, "vCPUs", "%" PRIu32, s->numvcpus);
	if (s->kernel[0])
		kc_kv(stdout, "Kernel", "%s", s->kernel);
	if (s->initrd[0])
		kc_kv(stdout, "Initrd", "%s", s->initrd);
	if (s->cmdline[0])
		kc_kv(stdout, "Command line", "%s", s->cmdline);
	for (size_t i = 0; i < s->n_disks; i++) {
		const Keel__Vmk__DiskSpec *d = s->disks[i];

		/* size_mib is what a new disk is created with; 0 for an existing image */
		char size[40] = "";

		if (d->size_mib)
			snprintf(size, sizeof(size), "  %s",
				 kc_fmt_bytes(d->size_mib << 20, b, sizeof(b)));
		kc_kv(stdout, i == 0 ? "Disks" : "", "%s%s%s", d->file[0] ? d->file : "-", size,
		      d->read_only ? "  read-only" : "");
	}
	for (size_t i = 0; i < s->n_nics; i++) {
		const Keel__Vmk__NicSpec *n = s->nics[i];

		kc_kv(stdout, i == 0 ? "NICs" : "", "%s  %s", n->portgroup,
		      n->mac[0] ? n->mac : "(MAC generated)");
	}
	if (!r)
		return;
	kc_kv(stdout, "CPU shares", "%s", r->cpu_shares[0] ? r->cpu_shares : "normal");
	kc_kv(stdout, "CPU reservation", "%s", kc_fmt_mhz(r->cpu_reservation_mhz, b, sizeof(b)));
	kc_kv(stdout, "CPU limit", "%s",
	      r->cpu_limit_mhz ? kc_fmt_mhz(r->cpu_limit_mhz, b, sizeof(b)) : "unlimited");
	kc_kv(stdout, "Mem reservation", "%s",
	      kc_fmt_bytes((uint64_t)r->mem_reservation_mib << 20, b, sizeof(b)));
	kc_kv(stdout, "Mem limit", "%s",
	      r->mem_limit_mib ? kc_fmt_bytes((uint64_t)r->mem_limit_mib << 20, b, sizeof(b))
			       : "the VM's memory size");
}

static void print_vm(const Keel__Vmk__VmInfo *vm)
{
	bool on = strcmp(vm->power_state, "poweredOn") == 0;
	char b[64];

	kc_kv(stdout, "Name", "%s", vm->name);
	kc_kv(stdout, "UUID", "%s", vm->uuid);
	kc_kv(stdout, "State", "%s", kc_fmt_power_state(vm->power_state));
	if (vm->last_event[0])
		kc_kv(stdout, "Last event", "%s", vm->last_event);
	if (on) {
		kc_kv(stdout, "vmx PID", "%" PRIu32, vm->pid);
		kc_kv(stdout, "Uptime", "%s", kc_fmt_duration_ms(vm->powered_on_ms, b, sizeof(b)));
	}
	kc_kv(stdout, "Datastore", "%s", vm->datastore);
	kc_kv(stdout, "Config file", "%s", vm->vmx_path);
	if (vm->spec)
		print_spec(vm->spec);
	if (vm->console_socket[0])
		kc_kv(stdout, "Console socket", "%s", vm->console_socket);
	if (vm->console_log[0])
		kc_kv(stdout, "Console log", "%s", vm->console_log);
}

static int info_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;
	Keel__Vmk__VmkReply *rp;
	int rc;

	get.vm = (char *)call->pos[0];
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	req.vm_get = &get;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VMS);
	} else if (rp->n_vms == 0) {
		rc = kc_fail(ctx, KC_EXIT_PROTO, 0, "vmkernel's reply names no VM");
	} else {
		print_vm(rp->vms[0]);
	}
	kc_reply_free(rp);
	return rc;
}

static const struct kc_cmd info_cmd = {
    .name = "info",
    .args = "VM",
    .summary = "Show a VM's state and configuration.",
    .min_pos = 1,
    .max_pos = 1,
    .run = info_run,
};

extern const struct kc_cmd kc_vm_ft_cmd; /* vm_ft.c */

static const struct kc_cmd *const vm_subs[] = {
    &kc_vm_create_cmd,
    &list_cmd,
    &info_cmd,
    &kc_vm_power_on_cmd,
    &kc_vm_power_off_cmd,
    &kc_vm_reset_cmd,
    &kc_vm_suspend_cmd,
    &kc_vm_resume_cmd,
    &kc_vm_console_cmd,
    &kc_vm_reconfigure_cmd,
    &kc_vm_monitor_cmd,
    &kc_vm_migrate_cmd,
    &kc_vm_ft_cmd,
    &kc_vm_register_cmd,
    &kc_vm_unregister_cmd,
    &kc_vm_destroy_cmd,
    NULL,
};

const struct kc_cmd kc_vm_cmd = {
    .name = "vm",
    .summary = "Virtual machines: create, power, console, reconfigure, destroy.",
    .detail = "A VM is named by its name or its uuid.\n",
    .subs = vm_subs,
};
