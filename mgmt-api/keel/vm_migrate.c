/*
 * `keel vm migrate VM [--to HOST]`: vMotion of a running VM (docs/vmotion.md).
 *
 * Locally the request goes to clusterd's socket: ClusterVmRequest OP_MIGRATE_BEGIN (the
 * leader picks the destination when --to is not given), then clusterd's status is read
 * every POLL_MS until the VM's migration is no longer in flight. Meanwhile, when this host
 * is the source, vmkernel's VmkVmMigrateStatus gives the progress (phase, round, bytes,
 * bandwidth, dirty rate), printed on stderr when it is a terminal. The outcome is read
 * from the cluster, never guessed: the VM owned by the destination is a success (with the
 * figures the source reported as an event), anything else a failure with the reason the
 * migration's end event gives. --no-wait returns once the migration began.
 *
 * Through hostd's API (--server) it is MigrateVm, a Task followed to its end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"

#define POLL_MS	       200
#define PROGRESS_MS    500
#define WAIT_MAX_S     3600
#define SEEN_WAIT_MS   5000 /* for this host's replica to show the migration */

enum { O_CSOCK = 1, O_TO };

static int status_of(struct kc_ctx *ctx, const struct kc_call *call,
		     Keel__Cluster__ClusterReply **out)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	int rc;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rc = kc_cluster_call(ctx, call, &rq, out);
	if (rc == 0 && (!(*out)->status || !(*out)->status->name || !(*out)->status->name[0])) {
		keel__cluster__cluster_reply__free_unpacked(*out, NULL);
		*out = NULL;
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE, "this host is not in a cluster");
	}
	return rc;
}

static const Keel__Cluster__ClusterVmStatus *find_vm(const Keel__Cluster__ClusterStatus *s,
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

static const Keel__Cluster__ClusterHostStatus *find_host(const Keel__Cluster__ClusterStatus *s,
							 const char *text)
{
	uint64_t id = 0;
	char *end;

	if (strncmp(text, "host-", 5) == 0)
		id = strtoull(text + 5, &end, 10);
	for (size_t i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i]->name, text) == 0 || (id && s->hosts[i]->id == id))
			return s->hosts[i];
	return NULL;
}

/* The newest event's seq (0: none). */
static uint64_t last_seq(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t seq = 0;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	if (kc_cluster_call(ctx, call, &rq, &rp) != 0)
		return 0;
	for (size_t i = 0; i < rp->n_events; i++)
		if (rp->events[i]->seq > seq)
			seq = rp->events[i]->seq;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return seq;
}

/* The text of the last migration event about VM uuid after seq since, or "". */
static void migration_event(struct kc_ctx *ctx, const struct kc_call *call, uint64_t since,
			    const char *uuid, const char *prefix, char *out, size_t size)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	out[0] = '\0';
	er.since = since;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	if (kc_cluster_call(ctx, call, &rq, &rp) != 0)
		return;
	for (size_t i = 0; i < rp->n_events; i++) {
		const Keel__Cluster__Event *ev = rp->events[i];

		if (ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION && ev->vm &&
		    strcmp(ev->vm, uuid) == 0 && ev->message && strstr(ev->message, prefix))
			snprintf(out, size, "%s", ev->message);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

/* One progress line from this host's vmkernel when it is the source. */
static void progress(struct kc_ctx *ctx, const char *uuid, bool tty)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmMigrateStatus ms = KEEL__VMK__VMK_VM_MIGRATE_STATUS__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	const Keel__Vmk__VmkMigrateInfo *f;
	struct kb_errmsg e = {{0}};
	int code = 0;

	if (!tty || ctx->json || access(ctx->socket, F_OK) != 0)
		return;
	if (!ctx->tr && kc_transport_local_create(ctx->socket, 5000, &ctx->tr) != 0)
		return;
	ms.vm = (char *)uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_MIGRATE_STATUS;
	rq.vm_migrate_status = &ms;
	if (ctx->tr->call(ctx->tr, &rq, &rp, &code, &e) != 0 || !rp)
		return;
	f = rp->code == 0 ? rp->migrate : NULL;
	if (f && f->phase)
		fprintf(stderr,
			"\r  %-10s round %-3u %8.1f MiB sent  %7.1f MiB/s  dirty %7.1f MiB/s  "
			"est. downtime %.1f ms   ",
			f->phase, f->round, (double)f->bytes_sent / (1 << 20),
			(double)f->bandwidth / (1 << 20), (double)f->dirty_rate / (1 << 20),
			(double)f->est_downtime_us / 1000.0);
	kc_reply_free(rp);
}

/* The outcome line made before the call ("Migrated VM web01."). */
static void fixed_text(struct kl_client *c, const Keel__Vim__Task *task, void *arg, char *done,
		       size_t size)
{
	(void)c;
	(void)task;
	snprintf(done, size, "%s", (const char *)arg);
}

static int migrate_api(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__MigrateVmRequest rq = KEEL__VIM__MIGRATE_VM_REQUEST__INIT;
	char text[512], name[256];

	if (kc_has(call, O_CSOCK))
		return kc_usage(ctx, call, "--cluster-socket does not apply through hostd's API");
	rq.vm = (char *)call->pos[0];
	rq.to_host = (char *)(kc_opt(call, O_TO) ? kc_opt(call, O_TO) : "");
	snprintf(text, sizeof(text), "Migrated VM %s.", kc_clean(call->pos[0], name, sizeof(name)));
	return kc_task_run(ctx, call, "MigrateVm", &rq.base, fixed_text, text);
}

static int migrate_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *st = NULL, *rp = NULL;
	const Keel__Cluster__ClusterVmStatus *vm;
	const Keel__Cluster__ClusterHostStatus *to = NULL;
	char uuid[40], name[128], from[128], dst_name[128], report[300], why[300];
	uint64_t op_id, dst, self, since, until, next_progress = 0, seen_by;
	bool tty = isatty(2), seen = false;
	int rc;

	if (kc_api_wanted(ctx))
		return migrate_api(ctx, call);
	rc = status_of(ctx, call, &st);
	if (rc)
		return rc;
	vm = find_vm(st->status, call->pos[0]);
	if (!vm) {
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND, "no such VM in the cluster: %s",
			       call->pos[0]);
	}
	if (kc_opt(call, O_TO)) {
		to = find_host(st->status, kc_opt(call, O_TO));
		if (!to) {
			keel__cluster__cluster_reply__free_unpacked(st, NULL);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "no such host in the cluster: %s", kc_opt(call, O_TO));
		}
	}
	snprintf(uuid, sizeof(uuid), "%s", vm->uuid);
	snprintf(name, sizeof(name), "%s", vm->name);
	snprintf(from, sizeof(from), "%s", vm->owner_name);
	self = st->status->node_id;
	vr.op = KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_MIGRATE_BEGIN;
	vr.uuid = uuid;
	vr.destination = to ? to->id : 0;
	keel__cluster__cluster_reply__free_unpacked(st, NULL);
	since = last_seq(ctx, call);
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	rc = kc_cluster_call(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (!rp->vm || !rp->vm->op) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_EPROTO,
			       "clusterd began no migration of VM %s", name);
	}
	op_id = rp->vm->op->id;
	dst = rp->vm->op->destination;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	dst_name[0] = '\0';
	if (kc_has(call, KC_O_NO_WAIT)) {
		if (ctx->json)
			printf("{\"ok\":true,\"code\":0,\"vm\":\"%s\",\"operation\":%" PRIu64 "}\n",
			       uuid, op_id);
		else
			printf("Migration %" PRIu64 " of VM %s began.\n", op_id, name);
		return KC_EXIT_OK;
	}
	if (tty && !ctx->json)
		fprintf(stderr, "Migrating VM %s from %s (operation %" PRIu64 ")...\n", name, from,
			op_id);
	until = kb_now_ns() + (uint64_t)WAIT_MAX_S * KB_NSEC_PER_SEC;
	/* this host's replica may apply the migration's start a moment after the leader did */
	seen_by = kb_now_ns() + (uint64_t)SEEN_WAIT_MS * KB_NSEC_PER_MSEC;
	for (;;) {
		rc = status_of(ctx, call, &st);
		if (rc)
			return rc;
		vm = find_vm(st->status, uuid);
		for (size_t i = 0; i < st->status->n_hosts; i++)
			if (st->status->hosts[i]->id == dst)
				snprintf(dst_name, sizeof(dst_name), "%s", st->status->hosts[i]->name);
		if (vm && vm->migration == op_id)
			seen = true;
		else if (seen || !vm || vm->owner == dst || kb_now_ns() > seen_by)
			break;
		if (vm->owner == self && kb_now_ns() >= next_progress) {
			progress(ctx, uuid, tty);
			next_progress = kb_now_ns() + (uint64_t)PROGRESS_MS * KB_NSEC_PER_MSEC;
		}
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		st = NULL;
		if (kb_now_ns() > until)
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ETIMEOUT,
				       "migration %" PRIu64 " of VM %s still runs after %d s; "
				       "keel cluster status shows it",
				       op_id, name, WAIT_MAX_S);
		kb_sleep_ns((uint64_t)POLL_MS * KB_NSEC_PER_MSEC);
	}
	if (tty && !ctx->json)
		fprintf(stderr, "\n");
	/* The switchover is the one way the migration ends without an end event: an owner
	 * change by HA (which may even pick the destination) ends it with one. */
	migration_event(ctx, call, since, uuid, " ended", why, sizeof(why));
	if (!vm || vm->owner != dst || why[0]) {
		char where[160] = "";

		if (vm)
			snprintf(where, sizeof(where), "; it runs on %s (epoch %" PRIu64 ")",
				 vm->owner_name, vm->epoch);
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ECANCELED, "VM %s was not migrated: %s%s",
			       name, why[0] ? why : "the migration ended without a switchover",
			       where);
	}
	{
		uint64_t epoch = vm->epoch;

		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		/* the source reports the figures right after the switchover */
		for (int i = 0; i < 20; i++) {
			migration_event(ctx, call, since, uuid, " migrated to ", report,
					sizeof(report));
			if (report[0])
				break;
			kb_sleep_ns(100 * KB_NSEC_PER_MSEC);
		}
		if (ctx->json) {
			struct kc_json j;

			kc_json_init(&j, stdout);
			kc_json_obj_begin(&j, NULL);
			kc_json_bool(&j, "ok", true);
			kc_json_i64(&j, "code", 0);
			kc_json_str(&j, "vm", name);
			kc_json_str(&j, "uuid", uuid);
			kc_json_str(&j, "from", from);
			kc_json_str(&j, "to", dst_name);
			kc_json_u64(&j, "epoch", epoch);
			kc_json_u64(&j, "operation", op_id);
			kc_json_str(&j, "report", report);
			kc_json_obj_end(&j);
			kc_json_finish(&j);
		} else {
			printf("Migrated VM %s from %s to %s (epoch %" PRIu64 ")%s%s\n", name, from,
			       dst_name, epoch, report[0] ? ": " : ".",
			       report[0] ? strchr(report, ':') ? strchr(report, ':') + 2 : report
					 : "");
		}
	}
	return KC_EXIT_OK;
}

static const struct kc_opt migrate_opts[] = {
    {"to", "HOST", "the destination host (name); without it the cluster picks one", O_TO, false},
    {"no-wait", NULL, "return once the migration began (through the API: print the task id)",
     KC_O_NO_WAIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_vm_migrate_cmd = {
    .name = "migrate",
    .args = "VM",
    .summary = "Move a running VM to another host while it runs (vMotion).",
    .detail = "VM: its name or uuid. The guest pauses only for the switchover. Without --to the\n"
	      "cluster picks a connected host with room for it. Progress is shown on a\n"
	      "terminal when this host runs the VM. Any failure before the switchover leaves\n"
	      "the VM running where it was; the error says why.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = migrate_opts,
    .run = migrate_run,
    .api = true,
};
