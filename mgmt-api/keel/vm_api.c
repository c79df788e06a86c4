/*
 * `keel vm` through hostd's API (--server): list, create, the power operations, register,
 * unregister and destroy.
 *
 * list is RetrieveInventory's VMs (in a cluster: every host's, those of other hosts with
 * their desired power only). The others call the method (CreateVm, PowerOnVm, ...), which
 * answers with a Task, and follow it to its end (task.c), then print the same line the
 * local command prints ("Powered on VM web01."). The API knows less than vmkernel's
 * socket: no vmx pid or uptime in the list; create's VmSpec has no kernel, initrd,
 * resource settings, read-only disks or chosen MACs — giving those with --server is a
 * usage error (exit 2) rather than a setting silently dropped. A power-on the cluster
 * placed on another host prints the task's result, which says where. register sends the
 * path as given, which must be absolute: it names a file on the host, not here.
 */
#include <inttypes.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

#define SPEC_LIST_MAX 16 /* hostd's limit of disks and NICs */

static const char *host_name(const Keel__Vim__Inventory *inv, const char *id)
{
	for (size_t i = 0; i < inv->n_hosts; i++)
		if (strcmp(inv->hosts[i]->id, id) == 0)
			return inv->hosts[i]->name;
	return id[0] ? id : "-";
}

int kc_vm_api_list(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME",	 "STATE", "MEMORY", "VCPUS",
					    "DATASTORE", "HOST",  "ID"};
	Keel__Vim__RetrieveInventoryRequest rq = KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
	Keel__Vim__Inventory *inv;
	ProtobufCMessage *m;
	struct kc_table t;
	int rc;

	rc = kc_api_call(ctx, call, "RetrieveInventory", &rq.base,
			 &keel__vim__inventory__descriptor, &m);
	if (rc)
		return rc;
	inv = (Keel__Vim__Inventory *)m;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "vms");
		for (size_t i = 0; i < inv->n_vms; i++) {
			kc_json_obj_begin(&j, NULL);
			kc_message_json_fields(&j, &inv->vms[i]->base, NULL);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 7, heads, "llrrlll");
	for (size_t i = 0; i < inv->n_vms; i++) {
		const Keel__Vim__VmObject *v = inv->vms[i];
		char mem[32] = "-", cpus[16] = "-";
		const char *state = v->power_state[0] ? v->power_state : v->desired_power;

		if (v->memory_mib)
			kc_fmt_bytes(v->memory_mib << 20, mem, sizeof(mem));
		if (v->vcpus)
			snprintf(cpus, sizeof(cpus), "%" PRIu32, v->vcpus);
		kc_table_add(&t, (const char *const[]){v->name, kc_fmt_power_state(state), mem,
						       cpus, v->datastore[0] ? v->datastore : "-",
						       host_name(inv, v->host), v->id});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* Looks the VM with id up in a fresh inventory; *inv to free (NULL if the call failed). */
static const Keel__Vim__VmObject *find_vm(struct kl_client *c, const char *id,
					  Keel__Vim__Inventory **inv)
{
	Keel__Vim__RetrieveInventoryRequest rq = KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
	struct kl_status st;
	ProtobufCMessage *m;

	*inv = NULL;
	if (kl_client_call(c, "RetrieveInventory", &rq.base, &keel__vim__inventory__descriptor, &m,
			   &st) != 0)
		return NULL;
	*inv = (Keel__Vim__Inventory *)m;
	for (size_t i = 0; i < (*inv)->n_vms; i++)
		if (strcmp((*inv)->vms[i]->id, id) == 0)
			return (*inv)->vms[i];
	return NULL;
}

struct created {
	const char *verb; /* "Created", "Registered" */
	const char *name; /* as given (create) */
	const char *path; /* as given (register) */
};

/* "Created VM web01 (uuid U) on datastore D.\nConfig file:       P" from the inventory,
 * or a shorter line when the VM cannot be looked up. */
static void created_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
			 size_t size)
{
	const struct created *cr = arg;
	Keel__Vim__Inventory *inv;
	const Keel__Vim__VmObject *v = find_vm(c, task->result, &inv);
	char name[256], a[1024], b[4200];

	if (!v) {
		snprintf(done, size, "%s VM %s (%s).", cr->verb,
			 kc_clean(cr->name ? cr->name : cr->path, name, sizeof(name)),
			 kc_clean(task->result, a, sizeof(a)));
	} else if (cr->path) {
		snprintf(done, size, "%s VM %s (uuid %s) from %s.", cr->verb,
			 kc_clean(v->name, name, sizeof(name)), kc_clean(v->uuid, a, sizeof(a)),
			 kc_clean(cr->path, b, sizeof(b)));
	} else {
		char ds[256];

		snprintf(done, size, "%s VM %s (uuid %s) on datastore %s.\n%-18s %s", cr->verb,
			 kc_clean(v->name, name, sizeof(name)), kc_clean(v->uuid, a, sizeof(a)),
			 kc_clean(v->datastore, ds, sizeof(ds)),
			 "Config file:", kc_clean(v->vmx_path, b, sizeof(b)));
	}
	if (inv)
		protobuf_c_message_free_unpacked(&inv->base, NULL);
}

int kc_vm_api_create(struct kc_ctx *ctx, const struct kc_call *call, const Keel__Vmk__VmSpec *spec)
{
	Keel__Vim__CreateVmRequest rq = KEEL__VIM__CREATE_VM_REQUEST__INIT;
	Keel__Vim__VmSpec vs = KEEL__VIM__VM_SPEC__INIT;
	uint64_t disks[SPEC_LIST_MAX];
	char *nics[SPEC_LIST_MAX];
	struct created cr = {.verb = "Created", .name = spec->name};

	if (spec->kernel[0] || spec->initrd[0])
		return kc_usage(ctx, call,
				"--kernel and --initrd are not available through hostd's API yet "
				"(the guest's boot files are the host's): run keel on the host");
	if (spec->resources)
		return kc_usage(ctx, call,
				"--cpu-*/--mem-* resource settings are not available through "
				"hostd's API yet: set them with keel vm reconfigure on the host");
	if (spec->n_disks > SPEC_LIST_MAX || spec->n_nics > SPEC_LIST_MAX)
		return kc_usage(ctx, call, "at most %d disks and %d NICs through hostd's API",
				SPEC_LIST_MAX, SPEC_LIST_MAX);
	for (size_t i = 0; i < spec->n_disks; i++) {
		if (spec->disks[i]->read_only)
			return kc_usage(ctx, call,
					"read-only disks (:ro) are not available through hostd's "
					"API yet");
		disks[i] = spec->disks[i]->size_mib;
	}
	for (size_t i = 0; i < spec->n_nics; i++) {
		if (spec->nics[i]->mac[0])
			return kc_usage(
			    ctx, call,
			    "a NIC's MAC (--nic PORTGROUP:MAC) is not available through "
			    "hostd's API yet: hostd generates it");
		nics[i] = spec->nics[i]->portgroup;
	}
	vs.name = spec->name;
	vs.vcpus = spec->numvcpus;
	vs.memory_mib = spec->memsize_mib;
	vs.guest_kind = spec->guest_kind;
	vs.cmdline = spec->cmdline;
	vs.n_disks_mib = spec->n_disks;
	vs.disks_mib = disks;
	vs.n_nics = spec->n_nics;
	vs.nics = nics;
	vs.datastore = spec->datastore;
	rq.spec = &vs;
	return kc_task_run(ctx, call, "CreateVm", &rq.base, created_text, &cr);
}

/* The outcome line made before the call ("Powered on VM web01."). */
static void fixed_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
		       size_t size)
{
	(void)c;
	(void)task;
	snprintf(done, size, "%s", (const char *)arg);
}

/* PowerOnVm's outcome: the line made before the call, or, when the cluster placed the VM
 * on another host (docs/drs.md, "Initial placement"), the task's result saying where:
 * "VM a placed on host3 by DRS (...): host3 powers it on." */
static void power_on_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
			  size_t size)
{
	char r[512];

	(void)c;
	if (task->result && strstr(task->result, " placed on "))
		snprintf(done, size, "%s.", kc_clean(task->result, r, sizeof(r)));
	else
		snprintf(done, size, "%s", (const char *)arg);
}

static const struct {
	const char *op, *method;
} methods[] = {
    {"power-on", "PowerOnVm"},	    {"power-off", "PowerOffVm"}, {"reset", "ResetVm"},
    {"suspend", "SuspendVm"},	    {"resume", "ResumeVm"},	 {"destroy", "DestroyVm"},
    {"unregister", "UnregisterVm"}, {"register", "RegisterVm"},
};

int kc_vm_api_op(struct kc_ctx *ctx, const struct kc_call *call, const char *op, const char *done)
{
	Keel__Vim__RegisterVmRequest reg = KEEL__VIM__REGISTER_VM_REQUEST__INIT;
	Keel__Vim__VmRef ref = KEEL__VIM__VM_REF__INIT;
	const char *method = NULL, *arg = call->pos[0];
	char text[512], name[256];

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(methods[i].op, op) == 0)
			method = methods[i].method;
	if (!method)
		return kc_usage(ctx, call, "'%s' does not work through hostd's API", call->path);
	if (strcmp(op, "register") == 0) {
		struct created cr = {.verb = done, .path = arg};

		if (arg[0] != '/')
			return kc_usage(ctx, call,
					"through hostd's API VMX_PATH must be absolute: it names "
					"a file on the host");
		reg.vmx_path = (char *)arg;
		return kc_task_run(ctx, call, method, &reg.base, created_text, &cr);
	}
	ref.vm = (char *)arg;
	snprintf(text, sizeof(text), "%s VM %s.", done, kc_clean(arg, name, sizeof(name)));
	return kc_task_run(ctx, call, method, &ref.base,
			   strcmp(op, "power-on") == 0 ? power_on_text : fixed_text, text);
}
