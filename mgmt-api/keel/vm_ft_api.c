/*
 * `keel vm ft enable|disable|status|failover|restart-secondary` through hostd's API
 * (--server); the local path through clusterd is vm_ft.c (docs/ft.md).
 *
 * The changes are EnableVmFt, DisableVmFt, FailoverVmFt and RestartVmFtSecondary, each a
 * Task followed to its end (task.c); status is GetVmFt, for every VM with FT on
 * (RetrieveInventory) when no VM is named, printed as vm_ft.c prints the cluster's view.
 * A hostd without these methods answers UNIMPLEMENTED, which is reported as such; every
 * other failure is reported as every API failure (api.c). --cluster-socket has no meaning
 * here and is a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/heap.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/keel/vm_ft_int.h"
#include "mgmt-api/libkeel/keel_client.h"

static int api_unimplemented(struct kc_ctx *ctx, const char *url, const char *method,
			     const struct kl_status *st)
{
	return kc_fail(ctx, KC_EXIT_FAILED, st->code,
		       "hostd at %s does not offer %s (%s): FT through the API needs a hostd that "
		       "has it; on a cluster member, keel vm ft without --server asks clusterd",
		       url, method, st->message);
}

static int api_failed(struct kc_ctx *ctx, const char *url, const char *method,
		      const struct kl_status *st)
{
	if (st->source == KL_SRC_SERVER && st->code == KL_UNIMPLEMENTED)
		return api_unimplemented(ctx, url, method, st);
	return kc_api_fail(ctx, url, true, NULL, st);
}

/* The host named by id ("host-N") in inv, or id itself; "" stays "". */
static const char *api_host_name(const Keel__Vim__Inventory *inv, const char *id)
{
	for (size_t i = 0; inv && id[0] && i < inv->n_hosts; i++)
		if (strcmp(inv->hosts[i]->id, id) == 0 && inv->hosts[i]->name[0])
			return inv->hosts[i]->name;
	return id;
}

static Keel__Vim__Inventory *api_inventory(struct kl_client *c)
{
	Keel__Vim__RetrieveInventoryRequest rq = KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	struct kl_status st;

	if (kl_client_call(c, "RetrieveInventory", &rq.base, &keel__vim__inventory__descriptor, &m,
			   &st) != 0)
		return NULL;
	return (Keel__Vim__Inventory *)m;
}

/* GetVmFt(vm) on c: 0 and *out (caller frees), or the kl status in st. */
static int api_get(struct kl_client *c, const char *vm, Keel__Vim__VmFtInfo **out,
		   struct kl_status *st)
{
	Keel__Vim__VmRef rq = KEEL__VIM__VM_REF__INIT;
	ProtobufCMessage *m = NULL;
	int rc;

	rq.vm = (char *)vm;
	rc = kl_client_call(c, "GetVmFt", &rq.base, &keel__vim__vm_ft_info__descriptor, &m, st);
	*out = rc ? NULL : (Keel__Vim__VmFtInfo *)m;
	return rc;
}

static void row_from_api(struct ft_row *r, const Keel__Vim__VmFtInfo *f,
			 const Keel__Vim__Inventory *inv)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", f->name);
	snprintf(r->uuid, sizeof(r->uuid), "%s", strncmp(f->vm, "vm-", 3) == 0 ? f->vm + 3 : f->vm);
	snprintf(r->state, sizeof(r->state), "%s", f->state[0] ? f->state : "not protected");
	snprintf(r->primary, sizeof(r->primary), "%s",
		 f->primary_host[0] ? api_host_name(inv, f->primary_host) : "-");
	snprintf(r->secondary, sizeof(r->secondary), "%s", api_host_name(inv, f->secondary_host));
	r->generation = f->generation;
	r->failovers = f->failovers;
	r->since_ms = f->since_ms;
	if (f->figures) {
		r->figures = true;
		snprintf(r->phase, sizeof(r->phase), "%s", f->phase);
		r->checkpoint = f->checkpoint;
		r->epoch_ms = f->epoch_ms;
		r->lag_us = f->lag_us;
		r->last_pause_us = f->last_pause_us;
		r->max_pause_us = f->max_pause_us;
		r->last_ckpt_bytes = f->last_ckpt_bytes;
		r->held_frames = f->held_frames;
		r->bytes = f->bytes;
	}
}

int kc_vm_ft_status_api(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__Inventory *inv = NULL;
	Keel__Vim__VmFtInfo *f;
	struct ft_row *rows = NULL;
	char url[KC_URL_MAX];
	struct kl_client *c;
	struct kl_status st;
	size_t n = 0;
	int rc;

	if (kc_has(call, O_CSOCK))
		return kc_usage(ctx, call, "--cluster-socket does not apply through hostd's API");
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	kc_api_server(ctx, call, url, sizeof(url));
	inv = api_inventory(c);
	if (call->npos == 1) {
		rows = kb_calloc(1, sizeof(*rows));
		if (!rows) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
			goto out;
		}
		if (api_get(c, call->pos[0], &f, &st) != 0) {
			rc = api_failed(ctx, url, "GetVmFt", &st);
			goto out;
		}
		row_from_api(&rows[n++], f, inv);
		protobuf_c_message_free_unpacked(&f->base, NULL);
	} else {
		if (!inv) {
			Keel__Vim__RetrieveInventoryRequest rq =
			    KEEL__VIM__RETRIEVE_INVENTORY_REQUEST__INIT;
			ProtobufCMessage *m = NULL;

			if (kl_client_call(c, "RetrieveInventory", &rq.base,
					   &keel__vim__inventory__descriptor, &m, &st) != 0) {
				rc = kc_api_fail(ctx, url, true, NULL, &st);
				goto out;
			}
			inv = (Keel__Vim__Inventory *)m;
		}
		rows = kb_calloc(inv->n_vms ? inv->n_vms : 1, sizeof(*rows));
		if (!rows) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < inv->n_vms; i++) {
			if (!inv->vms[i]->ft_state[0])
				continue;
			if (api_get(c, inv->vms[i]->id, &f, &st) != 0) {
				rc = api_failed(ctx, url, "GetVmFt", &st);
				goto out;
			}
			row_from_api(&rows[n++], f, inv);
			protobuf_c_message_free_unpacked(&f->base, NULL);
		}
	}
	rc = kc_vm_ft_print_rows(ctx, rows, n);
out:
	kb_free(rows);
	if (inv)
		protobuf_c_message_free_unpacked(&inv->base, NULL);
	kl_client_destroy(c);
	return rc;
}

/* What the text outcome of a change through the API says. */
struct api_op {
	int op;
	const char *vm; /* as given */
	uint64_t start_ns;
	char from[128]; /* failover: the primary's host before */
};

static void api_done(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
		     size_t size)
{
	struct api_op *o = arg;
	double s = (double)(kb_now_ns() - o->start_ns) / 1e9; /* to the task's end */
	Keel__Vim__Inventory *inv;
	Keel__Vim__VmFtInfo *f = NULL;
	struct kl_status st;
	char name[128], a[128], b[128];

	(void)task;
	inv = api_inventory(c);
	kc_clean(o->vm, name, sizeof(name));
	if (o->op != OP_DISABLE && api_get(c, o->vm, &f, &st) == 0 && f->name[0])
		kc_clean(f->name, name, sizeof(name));
	switch (o->op) {
	case OP_DISABLE:
		snprintf(done, size, "FT turned off for VM %s.", name);
		break;
	case OP_FAILOVER:
		kc_clean(api_host_name(inv, o->from), a, sizeof(a));
		kc_clean(f ? api_host_name(inv, f->primary_host) : "", b, sizeof(b));
		snprintf(done, size, "VM %s failed over%s%s to %s (test failover) in %.0f ms", name,
			 a[0] ? " from " : "", a, b[0] ? b : "its secondary's host", s * 1000);
		break;
	default:
		kc_clean(f ? api_host_name(inv, f->secondary_host) : "", b, sizeof(b));
		snprintf(done, size, "VM %s protected: secondary on %s (%.1f s)", name,
			 b[0] ? b : "?", s);
		break;
	}
	if (f)
		protobuf_c_message_free_unpacked(&f->base, NULL);
	if (inv)
		protobuf_c_message_free_unpacked(&inv->base, NULL);
}

/* A change through the API: the method's Task followed to its end, as kc_task_run does,
 * with a hostd that lacks the method said so. */
int kc_vm_ft_change_api(struct kc_ctx *ctx, const struct kc_call *call, int op)
{
	Keel__Vim__VmFtRequest fr = KEEL__VIM__VM_FT_REQUEST__INIT;
	Keel__Vim__VmRef ref = KEEL__VIM__VM_REF__INIT;
	struct api_op o = {.op = op, .vm = call->pos[0]};
	const ProtobufCMessage *req = &ref.base;
	Keel__Vim__Task *task = NULL;
	char url[KC_URL_MAX], done[1024] = "";
	const char *method;
	struct kl_client *c;
	struct kl_status st;
	ProtobufCMessage *m;
	int rc;

	if (kc_has(call, O_CSOCK))
		return kc_usage(ctx, call, "--cluster-socket does not apply through hostd's API");
	ref.vm = (char *)call->pos[0];
	fr.vm = (char *)call->pos[0];
	fr.secondary_host = (char *)(kc_opt(call, O_SECONDARY) ? kc_opt(call, O_SECONDARY) : "");
	switch (op) {
	case OP_ENABLE:
		method = "EnableVmFt";
		req = &fr.base;
		break;
	case OP_RESTART:
		method = "RestartVmFtSecondary";
		req = &fr.base;
		break;
	case OP_DISABLE:
		method = "DisableVmFt";
		break;
	default:
		method = "FailoverVmFt";
		break;
	}
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	kc_api_server(ctx, call, url, sizeof(url));
	if (op == OP_FAILOVER && !kc_has(call, KC_O_NO_WAIT)) {
		Keel__Vim__VmFtInfo *f;

		if (api_get(c, call->pos[0], &f, &st) != 0) {
			rc = api_failed(ctx, url, "GetVmFt", &st);
			goto close_client;
		}
		snprintf(o.from, sizeof(o.from), "%s", f->primary_host);
		protobuf_c_message_free_unpacked(&f->base, NULL);
	}
	o.start_ns = kb_now_ns();
	if (kl_client_call(c, method, req, &keel__vim__task__descriptor, &m, &st) != 0) {
		rc = api_failed(ctx, url, method, &st);
		goto close_client;
	}
	task = (Keel__Vim__Task *)m;
	if (kc_has(call, KC_O_NO_WAIT)) {
		if (ctx->json)
			kc_api_json(&task->base, NULL);
		else
			printf("%s\n", task->id);
		rc = KC_EXIT_OK;
		goto free_task;
	}
	rc = kc_task_follow(ctx, c, url, &task);
	if (rc)
		goto free_task;
	if (strcmp(task->state, "success") == 0 && !ctx->json)
		api_done(c, task, &o, done, sizeof(done));
	rc = kc_task_outcome(ctx, task, done[0] ? done : NULL);
free_task:
	keel__vim__task__free_unpacked(task, NULL);
close_client:
	kl_client_destroy(c);
	return rc;
}
