/*
 * `keel vm power-on|power-off|reset|suspend|resume|destroy|unregister VM` and
 * `keel vm register VMX_PATH`: one request each, naming one VM.
 *
 * vmkernel answers with the VM as it is afterwards (VmkReply.vms[0]); the text output is
 * one line saying what happened, --json prints the whole reply. A refusal (no such VM, a
 * power-on that admission control turns down, a destroy of a running VM) is exit 1 with
 * vmkernel's message. Through hostd's API (--server) each is a task instead (vm_api.c);
 * --no-wait, which only means something there, is refused locally.
 *
 * power-on in a cluster (docs/drs.md, "Initial placement"): when this host's clusterd is
 * in a cluster that knows the VM, keel asks it first (ClusterVmRequest OP_PLACE, the VM by
 * name or uuid from the cluster's status, --host HOST as the destination). The cluster
 * either gives the VM to the host it chose (DRS partially or fully automated, or --host):
 * that host's reconciler powers it on, and keel waits for it when that host is this one;
 * or leaves it where it is registered (manual automation, or DRS chose its own host):
 * keel powers it on through vmkernel as outside a cluster, and prints DRS's
 * recommendation when there is one. The output names the host (--json: vm, uuid, host,
 * host_id, placed, placement, power_state, pid). A VM the cluster does not know, or a host
 * in no cluster, is powered on as before; --host then is an error. vmkernel's own power-on
 * (clusterd not reachable here, e.g. --cluster-socket none) may be placed on another host
 * all the same (VmkReply.placed_on): exit 0 with the placement's words, "VM n4 placed on
 * host3 by DRS (...): host3 powers it on." (--json as above, placed true, pid 0).
 */
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"

#define CLUSTER_SOCKET "/var/lib/keel/clusterd.sock" /* as `keel cluster` (cluster.c) */
#define START_WAIT_MS  60000 /* for this host's reconciler to start a VM placed here */
#define POLL_MS	       100
#define NOT_CLUSTER    (-1) /* power_on_cluster: go on as outside a cluster */
#define STAY	       (-2) /* power_on_cluster: power it on here, through vmkernel */

/* Where the cluster left a VM it did not move (STAY), for the output. */
struct stay {
	char host[256];
	uint64_t host_id;
	char text[512]; /* DRS's recommendation, or its placement here, or empty */
};

enum { O_CSOCK = 1, O_HOST }; /* O_CSOCK: the id kc_cluster_call reads */

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

/* ---- power-on in a cluster ------------------------------------------------------------ */

static void cluster_socket(const struct kc_ctx *ctx, const struct kc_call *call, char *out,
			   size_t size)
{
	const char *v = kc_opt(call, O_CSOCK), *env = getenv("KEEL_CLUSTER_SOCKET");
	char dir[PATH_MAX];

	if (v) {
		snprintf(out, size, "%s", v);
	} else if (strcmp(ctx->socket, KC_DEFAULT_SOCKET) != 0) {
		snprintf(dir, sizeof(dir), "%s", ctx->socket);
		snprintf(out, size, "%s/clusterd.sock", dirname(dir));
	} else if (env && env[0]) {
		snprintf(out, size, "%s", env);
	} else {
		snprintf(out, size, "%s", CLUSTER_SOCKET);
	}
}

static const Keel__Cluster__ClusterVmStatus *cluster_vm(const Keel__Cluster__ClusterStatus *s,
							const char *text)
{
	const Keel__Cluster__ClusterVmStatus *byname = NULL;

	if (strncmp(text, "vm-", 3) == 0 && strlen(text) == 39)
		text += 3;
	for (size_t i = 0; i < s->n_vms; i++) {
		if (strcmp(s->vms[i]->uuid, text) == 0)
			return s->vms[i];
		if (!byname && strcmp(s->vms[i]->name, text) == 0)
			byname = s->vms[i];
	}
	return byname;
}

static const Keel__Cluster__ClusterHostStatus *cluster_host(const Keel__Cluster__ClusterStatus *s,
							    const char *text)
{
	uint64_t id = 0;
	char *end;

	if (strncmp(text, "host-", 5) == 0)
		id = strtoull(text + 5, &end, 10);
	for (size_t i = 0; i < s->n_hosts; i++)
		if (s->hosts[i]->state != KEEL__CLUSTER__HOST_STATE__HOST_LEFT &&
		    (strcmp(s->hosts[i]->name, text) == 0 || (id && s->hosts[i]->id == id)))
			return s->hosts[i];
	return NULL;
}

/* The VM as this host's vmkernel has it: its power state and vmx pid. 0, or -1. */
static int local_state(struct kc_ctx *ctx, const char *uuid, char *state, size_t size,
		       uint32_t *pid)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	int found = -1;

	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &list;
	if (kc_rpc(ctx, &rq, &rp) != 0)
		return -1;
	for (size_t i = 0; i < rp->n_vms; i++)
		if (strcmp(rp->vms[i]->uuid, uuid) == 0) {
			snprintf(state, size, "%s", rp->vms[i]->power_state);
			*pid = rp->vms[i]->pid;
			found = 0;
		}
	kc_reply_free(rp);
	return found;
}

static void print_on(struct kc_ctx *ctx, const char *name, const char *uuid, const char *host,
		     uint64_t host_id, bool placed, const char *placement, const char *state,
		     uint32_t pid)
{
	char clean[256], text[512];

	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_str(&j, "vm", name);
		kc_json_str(&j, "uuid", uuid);
		kc_json_str(&j, "host", host);
		kc_json_u64(&j, "host_id", host_id);
		kc_json_bool(&j, "placed", placed);
		kc_json_str(&j, "placement", placement);
		kc_json_str(&j, "power_state", state);
		kc_json_u64(&j, "pid", pid);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return;
	}
	kc_clean(name, clean, sizeof(clean));
	if (pid)
		printf("Powered on VM %s on %s (vmx pid %" PRIu32 ").\n", clean, host, pid);
	else
		printf("Placed VM %s on %s: %s powers it on.\n", clean, host, host);
	if (placement[0])
		printf("%s.\n", kc_clean(placement, text, sizeof(text)));
}

/*
 * The cluster's part of a power-on (see the top of the file). KC_EXIT_* when it answered
 * (the outcome printed), NOT_CLUSTER when this host or the VM is not in a cluster and
 * vmkernel alone powers it on, STAY when the cluster leaves it on this host, where
 * vmkernel powers it on: *stay says where and what DRS had to say.
 */
static int power_on_cluster(struct kc_ctx *ctx, const struct kc_call *call, struct stay *stay)
{
	char *text = stay->text;
	size_t size = sizeof(stay->text);

	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *st = NULL, *rp = NULL;
	const Keel__Cluster__ClusterVmStatus *vm;
	const Keel__Cluster__ClusterVmReply *v;
	const char *want = kc_opt(call, O_HOST);
	char path[PATH_MAX], name[256], uuid[64], state[32] = "", owner[256];
	uint64_t dest = 0, epoch, self;
	uint32_t pid = 0;
	bool placed, was_on;
	int fd, rc;

	text[0] = '\0';
	cluster_socket(ctx, call, path, sizeof(path));
	fd = kb_unix_connect(path);
	if (fd < 0) {
		if (!want)
			return NOT_CLUSTER;
		return kc_fail(ctx, KC_EXIT_UNREACHABLE, fd,
			       "--host places a VM in a cluster: cannot reach clusterd at %s: %s",
			       path, strerror(-fd));
	}
	close(fd);
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rc = kc_cluster_call(ctx, call, &rq, &st);
	if (rc)
		return rc;
	if (!st->status || !st->status->name || !st->status->name[0] ||
	    !(vm = cluster_vm(st->status, call->pos[0]))) {
		bool member = st->status && st->status->name && st->status->name[0];

		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		if (!want)
			return NOT_CLUSTER;
		return member ? kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
					"VM %s is not registered in the cluster",
					kc_clean(call->pos[0], name, sizeof(name)))
			      : kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE,
					"--host places a VM in a cluster: this host is in none");
	}
	if (want) {
		const Keel__Cluster__ClusterHostStatus *h = cluster_host(st->status, want);

		if (!h) {
			keel__cluster__cluster_reply__free_unpacked(st, NULL);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "no host %s in the cluster", kc_clean(want, name, sizeof(name)));
		}
		dest = h->id;
	}
	snprintf(name, sizeof(name), "%s", vm->name);
	snprintf(uuid, sizeof(uuid), "%s", vm->uuid);
	epoch = vm->epoch;
	was_on = vm->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON;
	self = st->status->node_id;
	keel__cluster__cluster_reply__free_unpacked(st, NULL);

	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_PLACE;
	vr.uuid = uuid;
	vr.destination = dest;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rc = kc_cluster_call(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (!rp->vm) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return kc_fail(ctx, KC_EXIT_PROTO, KB_EPROTO, "clusterd answered without the VM");
	}
	v = rp->vm;
	/* Forwarded by a follower, the answer may lack placed: a new epoch tells the same. */
	placed = v->placed || (!was_on && v->epoch > epoch);
	snprintf(owner, sizeof(owner), "%s", v->owner_name && v->owner_name[0] ? v->owner_name : "?");
	snprintf(text, size, "%s", v->placement ? v->placement : "");
	if (placed) {
		uint64_t end = kb_now_ns() + (uint64_t)START_WAIT_MS * KB_NSEC_PER_MSEC;
		uint64_t to = v->owner;

		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		if (to == self) {
			/* Placed here: this host's reconciler starts it; follow it. */
			while (local_state(ctx, uuid, state, sizeof(state), &pid) != 0 ||
			       strcmp(state, "poweredOn") != 0 || pid == 0) {
				if (kb_now_ns() >= end)
					return kc_fail(ctx, KC_EXIT_FAILED, KB_ETIMEOUT,
						       "VM %s was placed on %s but did not power on "
						       "within %d s (keel cluster events says why)",
						       name, owner, START_WAIT_MS / 1000);
				kb_sleep_ns((uint64_t)POLL_MS * KB_NSEC_PER_MSEC);
			}
		}
		if (!text[0])
			snprintf(text, size, "VM %s placed on %s by the cluster", name, owner);
		print_on(ctx, name, uuid, owner, to, true, text, state, pid);
		return KC_EXIT_OK;
	}
	if (v->owner != self) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		if (was_on)
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE,
				       "VM %s is powered on already, on %s", name, owner);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE,
			       "VM %s is registered on %s: power it on there, or name a host "
			       "with --host",
			       name, owner);
	}
	snprintf(stay->host, sizeof(stay->host), "%s", owner);
	stay->host_id = self;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return STAY;
}

static int op_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	const struct vm_op *op = NULL;
	char arg[PATH_MAX], name[256];
	Keel__Vmk__VmkReply *rp;
	struct stay stay = {"", 0, ""};
	bool here = false;
	union op_msg m;
	int rc;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, call->cmd->name) == 0)
			op = &ops[i];
	if (!op)
		return kc_usage(ctx, call, "no such operation");
	if (kc_api_wanted(ctx)) {
		if (kc_has(call, O_HOST) || kc_has(call, O_CSOCK))
			return kc_usage(ctx, call,
					"--host and --cluster-socket work locally only (hostd's "
					"PowerOnVm places the VM by DRS)");
		return kc_vm_api_op(ctx, call, op->name, op->done);
	}
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	if (op->req == KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON) {
		rc = power_on_cluster(ctx, call, &stay);
		if (rc != NOT_CLUSTER && rc != STAY)
			return rc;
		here = rc == STAY;
	}
	snprintf(arg, sizeof(arg), "%s", call->pos[0]);
	/* vmkernel does not share our working directory: send an absolute path. */
	if (op->req == KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER &&
	    kc_abs_path(call->pos[0], arg, sizeof(arg)) != 0)
		return kc_usage(ctx, call, "path too long: %s", call->pos[0]);
	build(op, arg, &m, &req);
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (op->req == KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON && rp->placed_on &&
	    rp->placed_on[0] && rp->n_vms > 0) {
		/* vmkernel's own power-on, placed on another host by the cluster: its words */
		const Keel__Vmk__VmInfo *vm = rp->vms[0];
		const char *placement = rp->placement ? rp->placement : "";
		char text[512], host[256];

		if (ctx->json)
			print_on(ctx, vm->name, vm->uuid, rp->placed_on, rp->placed_on_id, true,
				 placement, "", 0);
		else if (placement[0])
			printf("%s: %s powers it on.\n", kc_clean(placement, text, sizeof(text)),
			       kc_clean(rp->placed_on, host, sizeof(host)));
		else
			printf("Placed VM %s on %s: %s powers it on.\n",
			       kc_clean(vm->name, name, sizeof(name)),
			       kc_clean(rp->placed_on, host, sizeof(host)), host);
	} else if (here && rp->n_vms > 0) {
		const Keel__Vmk__VmInfo *vm = rp->vms[0];

		print_on(ctx, vm->name, vm->uuid, stay.host, stay.host_id, false, stay.text,
			 vm->power_state, vm->pid);
	} else if (ctx->json) {
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

static const struct kc_opt power_on_opts[] = {
    {"host", "HOST", "in a cluster: power it on on HOST (name or host-ID), rules checked", O_HOST,
     false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_vm_power_on_cmd = {
    .name = "power-on",
    .args = "VM",
    .summary = "Power a VM on (admission control checks its reservations).",
    .detail =
	"In a cluster the cluster chooses the host (docs/drs.md, \"Initial placement\"): with\n"
	"DRS partially or fully automated, the host that keeps the placement rules and evens\n"
	"the load out, whichever host the VM is registered on; there that host's cluster\n"
	"daemon powers it on. With DRS manual the VM powers on where it is registered, unless\n"
	"that breaks a must rule, and DRS's recommendation is printed. --host HOST places it on\n"
	"HOST (the rules and its capacity are checked). The output names the host.\n" API_DETAIL,
    .min_pos = 1,
    .max_pos = 1,
    .opts = power_on_opts,
    .run = op_run,
    .api = true,
};
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
