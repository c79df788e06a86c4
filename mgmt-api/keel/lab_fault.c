/*
 * The lab's fault tools, for tests and demos: host-kill, host-start, host-isolate and
 * host-heal, and the `keel lab` command table.
 *
 * host-kill marks the host killed in the record before it kills anything, so the
 * supervisor, which reads the record again before every restart, leaves it down; then
 * every process of the host (its daemons and the VMs' vmx) gets SIGKILL, as a power cut
 * would. host-start marks it up again and waits until its vmkernel answers. host-isolate
 * sets the root end of the host's management uplink down: vmnic0 loses its carrier and
 * the host's management network is cut while vMotion and FT links stay; host-heal sets it
 * up again. Both are remembered in the record, so `up` keeps an isolated host isolated.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mgmt-api/keel/lab.h"

enum { O_DIR = 1 };

#define START_WAIT_MS 20000

static void done(struct kc_ctx *ctx, const char *host, const char *action, int killed)
{
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "host", host);
		kc_json_str(&j, "action", action);
		if (killed >= 0)
			kc_json_i64(&j, "killed", killed);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else if (killed >= 0) {
		printf("Host %s killed (%d processes).\n", host, killed);
	} else {
		printf("Host %s %s.\n", host, action);
	}
}

static int fault_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *what = call->cmd->name;
	struct kb_errmsg err = {{0}};
	static struct kc_lab lab;
	int rc, lock, k, killed = -1;
	const char *action = "";

	rc = kc_lab_open(ctx, call, O_DIR, &lab, &lock);
	if (rc)
		return rc;
	if (kc_lab_parse_host(&lab, call->pos[0], &k)) {
		close(lock);
		return kc_usage(ctx, call, "no host '%s' in this lab (host1 to host%d)",
				call->pos[0], lab.nhosts);
	}
	if (strcmp(what, "host-kill") == 0) {
		lab.hosts[k].state = KC_LAB_HOST_KILLED;
		rc = kc_lab_save(&lab, &err);
		if (rc == 0) {
			struct timespec ts = {0, 150 * 1000 * 1000};

			killed = kc_lab_host_kill_all(&lab, k);
			/* A daemon the supervisor started just before it read the new record is
			 * visible after one of its ticks. */
			nanosleep(&ts, NULL);
			killed += kc_lab_host_kill_all(&lab, k);
			kc_lab_log(&lab, "host%d: killed on request (%d processes)", k, killed);
			action = "killed";
		}
	} else if (strcmp(what, "host-start") == 0) {
		lab.hosts[k].state = KC_LAB_HOST_UP;
		rc = kc_lab_save(&lab, &err);
		rc = rc ?: kc_lab_host_make(&lab, k, &err);
		if (rc == 0 && !kc_lab_supervisor_alive(&lab)) {
			rc = kc_lab_supervisor_start(&lab, &err);
			rc = rc ?: kc_lab_save(&lab, &err);
		}
		if (rc == 0)
			kc_lab_log(&lab, "host%d: started on request", k);
		rc = rc ?: kc_lab_host_wait(&lab, k, START_WAIT_MS, &err);
		action = "started";
	} else {
		bool isolate = strcmp(what, "host-isolate") == 0;

		lab.hosts[k].isolated = isolate;
		rc = kc_lab_save(&lab, &err);
		rc = rc ?: kc_lab_host_uplink(&lab, k, !isolate, &err);
		if (rc == 0)
			kc_lab_log(&lab, "host%d: management uplink %s", k,
				   isolate ? "cut" : "restored");
		action = isolate ? "isolated" : "healed";
	}
	close(lock);
	if (rc)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "lab %s host%d: %s", what, k, err.msg);
	{
		char name[16];

		snprintf(name, sizeof(name), "host%d", k);
		done(ctx, name, action, killed);
	}
	return KC_EXIT_OK;
}

static const struct kc_opt fault_opts[] = {
    {"dir", "DIR", "the lab's directory (default " KC_LAB_DEFAULT_DIR ")", O_DIR, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_lab_host_kill_cmd = {
    .name = "host-kill",
    .args = "HOST",
    .summary = "SIGKILL every process of a host (daemons and VMs); it stays down.",
    .detail = "HOST is host3 or 3. The supervisor does not restart a killed host;\n"
	      "'keel lab host-start HOST' brings it back.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = fault_opts,
    .run = fault_run,
};

const struct kc_cmd kc_lab_host_start_cmd = {
    .name = "host-start",
    .args = "HOST",
    .summary = "Start a killed host's daemons again and wait for its vmkernel.",
    .min_pos = 1,
    .max_pos = 1,
    .opts = fault_opts,
    .run = fault_run,
};

const struct kc_cmd kc_lab_host_isolate_cmd = {
    .name = "host-isolate",
    .args = "HOST",
    .summary = "Cut a host's management uplink (vmnic0 loses its link).",
    .min_pos = 1,
    .max_pos = 1,
    .opts = fault_opts,
    .run = fault_run,
};

const struct kc_cmd kc_lab_host_heal_cmd = {
    .name = "host-heal",
    .args = "HOST",
    .summary = "Restore a host's management uplink.",
    .min_pos = 1,
    .max_pos = 1,
    .opts = fault_opts,
    .run = fault_run,
};

static const struct kc_cmd *const lab_subs[] = {
    &kc_lab_up_cmd,	   &kc_lab_status_cmd,	   &kc_lab_down_cmd,
    &kc_lab_host_kill_cmd, &kc_lab_host_start_cmd, &kc_lab_host_isolate_cmd,
    &kc_lab_host_heal_cmd, &kc_lab_supervise_cmd,  NULL,
};

const struct kc_cmd kc_lab_cmd = {
    .name = "lab",
    .summary = "A cluster of nested hosts on this machine, and fault tools (runs locally).",
    .detail = "The lab is managed on this machine directly, not through vmkernel; it\n"
	      "needs root. Its state is under --dir (default " KC_LAB_DEFAULT_DIR ").\n"
	      "See docs/lab.md.\n",
    .subs = lab_subs,
};
