/*
 * `keel host worlds [restart NAME]`: the host's user worlds (docs/worlds.md), the service
 * daemons vmkernel starts and supervises when it runs with --worlds.
 *
 * Without arguments it lists every world: name, state, pid, restarts, uptime, CPU time and
 * memory from its cgroup, and its last exit; --long adds the confinement (capabilities
 * kept, seccomp action and list size, private mounts), the cgroup and the last event.
 * `restart NAME` asks vmkernel to restart one world now (SIGTERM to a running one, which
 * starts again once it has exited) and prints the list. --json prints
 * {"ok":true,"code":0,"worlds":[WorldInfo...]} with every field of proto/vmk.proto's
 * WorldInfo. A vmkernel without --worlds answers with an empty list.
 */
#include <inttypes.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

enum { O_LONG = 1 };

static const struct kc_opt worlds_opts[] = {
    {"long", NULL, "also show capabilities, seccomp, mounts, cgroup and the last event", O_LONG,
     false},
    {NULL, NULL, NULL, 0, false},
};

static void print_json(const Keel__Vmk__VmkReply *rp)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", true);
	kc_json_i64(&j, "code", 0);
	kc_json_arr_begin(&j, "worlds");
	for (size_t i = 0; i < rp->n_worlds; i++) {
		kc_json_obj_begin(&j, NULL);
		kc_message_json_fields(&j, &rp->worlds[i]->base, NULL);
		kc_json_obj_end(&j);
	}
	kc_json_arr_end(&j);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

static char *fmt_cpu(uint64_t ns, char *out, size_t size)
{
	snprintf(out, size, "%.2fs", (double)ns / 1e9);
	return out;
}

static int print_table(struct kc_ctx *ctx, const Keel__Vmk__VmkReply *rp, bool lng)
{
	static const char *const heads[] = {"WORLD",  "STATE", "PID",	 "RESTARTS",
					    "UPTIME", "CPU",   "MEMORY", "LAST EXIT"};
	struct kc_table t;
	int rc;

	if (rp->n_worlds == 0) {
		printf("No user worlds (vmkernel runs without --worlds).\n");
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 8, heads, "llrrrrrl");
	for (size_t i = 0; i < rp->n_worlds; i++) {
		const Keel__Vmk__WorldInfo *w = rp->worlds[i];
		char pid[16] = "-", restarts[16], up[32], cpu[32], mem[32], state[48];

		if (w->pid)
			snprintf(pid, sizeof(pid), "%" PRIu32, w->pid);
		snprintf(restarts, sizeof(restarts), "%" PRIu32, w->restarts);
		if (strcmp(w->state, "backoff") == 0)
			snprintf(state, sizeof(state), "backoff %.1fs",
				 (double)w->backoff_ms / 1e3);
		else
			snprintf(state, sizeof(state), "%s", w->state);
		kc_table_add(&t,
			     (const char *const[]){
				 w->name, state, pid, restarts,
				 kc_fmt_duration_ms(w->uptime_ms, up, sizeof(up)),
				 w->cgroup[0] ? fmt_cpu(w->cpu_ns, cpu, sizeof(cpu)) : "-",
				 w->cgroup[0] ? kc_fmt_bytes(w->mem_bytes, mem, sizeof(mem)) : "-",
				 w->last_exit[0] ? w->last_exit : "-"});
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	if (!lng || rc != KC_EXIT_OK)
		return rc;
	for (size_t i = 0; i < rp->n_worlds; i++) {
		const Keel__Vmk__WorldInfo *w = rp->worlds[i];
		char caps[512] = "none";
		size_t o = 0;

		for (size_t c = 0; c < w->n_caps && o < sizeof(caps); c++)
			o += (size_t)snprintf(caps + o, sizeof(caps) - o, "%s%s", c ? "," : "",
					      w->caps[c]);
		printf("\n");
		kc_kv(stdout, "World", "%s", w->name);
		kc_kv(stdout, "  program", "%s", w->program);
		kc_kv(stdout, "  capabilities", "%s", caps);
		kc_kv(stdout, "  seccomp", "%s, %" PRIu32 " system calls allowed", w->seccomp,
		      w->syscalls);
		kc_kv(stdout, "  private mounts", "%s", w->private_mounts ? "yes" : "no");
		kc_kv(stdout, "  cgroup", "%s", w->cgroup[0] ? w->cgroup : "-");
		kc_kv(stdout, "  last event", "%s", w->last_event[0] ? w->last_event : "-");
	}
	return KC_EXIT_OK;
}

static int worlds_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkWorldList list = KEEL__VMK__VMK_WORLD_LIST__INIT;
	Keel__Vmk__VmkWorldRestart restart = KEEL__VMK__VMK_WORLD_RESTART__INIT;
	Keel__Vmk__VmkReply *rp;
	bool restarting = false;
	int rc;

	if (call->npos == 0) {
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_WORLD_LIST;
		req.world_list = &list;
	} else if (strcmp(call->pos[0], "restart") == 0 && call->npos == 2) {
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_WORLD_RESTART;
		restart.name = (char *)call->pos[1];
		req.world_restart = &restart;
		restarting = true;
	} else if (strcmp(call->pos[0], "restart") == 0) {
		return kc_usage(ctx, call, "restart needs the name of one world");
	} else {
		return kc_usage(ctx, call, "unknown action '%s' (want: restart NAME)",
				call->pos[0]);
	}
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		print_json(rp);
	} else {
		if (restarting)
			printf("World %s restarting.\n", call->pos[1]);
		rc = print_table(ctx, rp, kc_has(call, O_LONG));
	}
	kc_reply_free(rp);
	return rc;
}

const struct kc_cmd kc_host_worlds_cmd = {
    .name = "worlds",
    .args = "[restart NAME]",
    .summary = "The host's user worlds (service daemons under vmkernel): list, restart.",
    .detail = "Without arguments: every world vmkernel supervises (vmkernel --worlds) with\n"
	      "its state, pid, restarts, uptime, CPU time and memory of its cgroup, and its\n"
	      "last exit. `restart NAME` restarts one world now. See docs/worlds.md.",
    .min_pos = 0,
    .max_pos = 2,
    .opts = worlds_opts,
    .run = worlds_run,
};
