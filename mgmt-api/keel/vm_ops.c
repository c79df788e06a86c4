/*
 * `keel vm power-on|power-off|reset|suspend|resume|destroy|unregister VM` and
 * `keel vm register VMX_PATH`: one request each, naming one VM.
 *
 * vmkernel answers with the VM as it is afterwards (VmkReply.vms[0]); the text output is
 * one line saying what happened, --json prints the whole reply. A refusal (no such VM, a
 * power-on that admission control turns down, a destroy of a running VM) is exit 1 with
 * vmkernel's message. Through hostd's API (--server) each is a task instead (vm_api.c);
 * --no-wait, which only means something there, is refused locally.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

struct vm_op {
	const char *name;
	Keel__Vmk__VmkRequest__ReqCase req;
	const char *done; /* "Powered on", for "Powered on VM web01." */
};

static const struct vm_op ops[] = {
    {"power-on", KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON, "Powered on"},
    {"power-off", KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF, "Powered off"},
    {"reset", KEEL__VMK__VMK_REQUEST__REQ_VM_RESET, "Reset"},
    {"suspend", KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND, "Suspended"},
    {"resume", KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME, "Resumed"},
    {"destroy", KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY, "Destroyed"},
    {"unregister", KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER, "Unregistered"},
    {"register", KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER, "Registered"},
};

/* Every request message of these operations, one at a time. */
union op_msg {
	Keel__Vmk__VmkVmPowerOn power_on;
	Keel__Vmk__VmkVmPowerOff power_off;
	Keel__Vmk__VmkVmReset reset;
	Keel__Vmk__VmkVmSuspend suspend;
	Keel__Vmk__VmkVmResume resume;
	Keel__Vmk__VmkVmDestroy destroy;
	Keel__Vmk__VmkVmUnregister unregister;
	Keel__Vmk__VmkVmRegister reg;
};

/* Points req at m, filled for op with arg (the VM, or the .vmx path for register). */
static void build(const struct vm_op *op, char *arg, union op_msg *m, Keel__Vmk__VmkRequest *req)
{
	req->req_case = op->req;
	switch (op->req) {
	case KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON:
		keel__vmk__vmk_vm_power_on__init(&m->power_on);
		m->power_on.vm = arg;
		req->vm_power_on = &m->power_on;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF:
		keel__vmk__vmk_vm_power_off__init(&m->power_off);
		m->power_off.vm = arg;
		req->vm_power_off = &m->power_off;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RESET:
		keel__vmk__vmk_vm_reset__init(&m->reset);
		m->reset.vm = arg;
		req->vm_reset = &m->reset;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND:
		keel__vmk__vmk_vm_suspend__init(&m->suspend);
		m->suspend.vm = arg;
		req->vm_suspend = &m->suspend;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME:
		keel__vmk__vmk_vm_resume__init(&m->resume);
		m->resume.vm = arg;
		req->vm_resume = &m->resume;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY:
		keel__vmk__vmk_vm_destroy__init(&m->destroy);
		m->destroy.vm = arg;
		req->vm_destroy = &m->destroy;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER:
		keel__vmk__vmk_vm_unregister__init(&m->unregister);
		m->unregister.vm = arg;
		req->vm_unregister = &m->unregister;
		break;
	default:
		keel__vmk__vmk_vm_register__init(&m->reg);
		m->reg.vmx_path = arg;
		req->vm_register = &m->reg;
		break;
	}
}

static int op_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	const struct vm_op *op = NULL;
	char arg[PATH_MAX], name[256];
	Keel__Vmk__VmkReply *rp;
	union op_msg m;
	int rc;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, call->cmd->name) == 0)
			op = &ops[i];
	if (!op)
		return kc_usage(ctx, call, "no such operation");
	if (kc_api_wanted(ctx))
		return kc_vm_api_op(ctx, call, op->name, op->done);
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	snprintf(arg, sizeof(arg), "%s", call->pos[0]);
	/* vmkernel does not share our working directory: send an absolute path. */
	if (op->req == KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER &&
	    kc_abs_path(call->pos[0], arg, sizeof(arg)) != 0)
		return kc_usage(ctx, call, "path too long: %s", call->pos[0]);
	build(op, arg, &m, &req);
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VMS);
	} else if (rp->n_vms > 0) {
		const Keel__Vmk__VmInfo *vm = rp->vms[0];

		kc_clean(vm->name, name, sizeof(name));
		if (op->req == KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON && vm->pid)
			printf("%s VM %s (vmx pid %" PRIu32 ").\n", op->done, name, vm->pid);
		else if (op->req == KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER)
			printf("%s VM %s (uuid %s) from %s.\n", op->done, name, vm->uuid, arg);
		else
			printf("%s VM %s.\n", op->done, name);
	} else {
		printf("%s VM %s.\n", op->done, kc_clean(arg, name, sizeof(name)));
	}
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static const struct kc_opt op_opts[] = {
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

#define API_DETAIL                                                                             \
	"Through hostd's API (--server) the operation is a task: keel follows it to its end\n" \
	"(a progress line on a terminal), or prints its id with --no-wait.\n"

#define VM_OP(id, verb, text, more)              \
	const struct kc_cmd kc_vm_##id##_cmd = { \
	    .name = verb,                        \
	    .args = "VM",                        \
	    .summary = text,                     \
	    .detail = more API_DETAIL,           \
	    .min_pos = 1,                        \
	    .max_pos = 1,                        \
	    .opts = op_opts,                     \
	    .run = op_run,                       \
	    .api = true,                         \
	}

VM_OP(power_on, "power-on", "Power a VM on (admission control checks its reservations).", "");
VM_OP(power_off, "power-off", "Power a VM off at once, as pulling the plug would.", "");
VM_OP(reset, "reset", "Reset a powered-on VM, as pressing its reset button would.", "");
VM_OP(suspend, "suspend", "Suspend a VM: save its whole state on its datastore and stop it.", "");
VM_OP(resume, "resume", "Resume a suspended VM from its saved state.", "");
VM_OP(destroy, "destroy", "Destroy a powered-off VM: unregister it and delete its files.",
      "Its directory on the datastore, disks included, is deleted.\n");
VM_OP(unregister, "unregister", "Forget a powered-off VM, keeping its files on the datastore.",
      "Bring it back with 'keel vm register VMX_PATH'.\n");

const struct kc_cmd kc_vm_register_cmd = {
    .name = "register",
    .args = "VMX_PATH",
    .summary = "Register an existing VM from its .vmx file.",
    .detail = "A relative VMX_PATH is taken from the current directory; through hostd's API\n"
	      "(--server) it must be absolute, since it names a file on that host.\n" API_DETAIL,
    .min_pos = 1,
    .max_pos = 1,
    .opts = op_opts,
    .run = op_run,
    .api = true,
};
