/*
 * `keel lab status`: what the lab's record says and what this machine shows of it.
 *
 * For each host: its state (up, or killed on purpose), its namespace, each daemon's pid,
 * whether vmkernel answers, its VM counts (from vmkernel's host info), its addresses
 * (vmkernel's VMkernel adapters when it has them, else the planned ones) and its uplinks'
 * root ends (down while the host is isolated), and in a lab with worlds vmkernel's user
 * worlds (state, pid, restarts, cgroup). Then the lab bridges and the supervisor.
 * Reads only; takes no lock, so it answers while another command works on the lab.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mgmt-api/keel/lab.h"

enum { O_DIR = 1 };

#define STATUS_CALL_MS 1000

struct host_view {
	char netns[64];
	bool netns_ok;
	pid_t pids[4];
	bool answers;
	uint32_t vms, vms_on;
	Keel__Vmk__VmkReply *vmknics; /* NULL when not known */
	Keel__Vmk__VmkReply *worlds;  /* vmkernel's user worlds; NULL when not known */
	char uplink[KC_LAB_NICS][KC_LAB_NAME_MAX], uplink_state[KC_LAB_NICS][16];
};

static void look(const struct kc_lab *lab, int k, struct host_view *v)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkHostInfo hi = KEEL__VMK__VMK_HOST_INFO__INIT;
	Keel__Vmk__VmkVmknicList vl = KEEL__VMK__VMK_VMKNIC_LIST__INIT;
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmkReply *rp;

	memset(v, 0, sizeof(*v));
	kc_lab_netns(lab, k, v->netns, sizeof(v->netns));
	v->netns_ok = kc_lab_netns_ino(v->netns) != 0;
	for (int d = 0; d < kc_lab_ndaemons && d < 4; d++)
		v->pids[d] = kc_lab_daemon_pid(lab, k, kc_lab_daemons[d].name);
	for (int nic = 0; nic < KC_LAB_NICS; nic++) {
		kc_lab_veth(lab, k, nic, v->uplink[nic]);
		kc_lab_link_state(v->uplink[nic], v->uplink_state[nic],
				  sizeof(v->uplink_state[nic]));
		if (!v->uplink_state[nic][0])
			snprintf(v->uplink_state[nic], sizeof(v->uplink_state[nic]), "missing");
	}
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO;
	req.host_info = &hi;
	if (kc_lab_call(lab, k, STATUS_CALL_MS, &req, &rp, &err) == 0) {
		v->answers = true;
		if (rp->host) {
			v->vms = rp->host->vms_registered;
			v->vms_on = rp->host->vms_powered_on;
		}
		kc_reply_free(rp);
		req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_LIST;
		req.vmknic_list = &vl;
		if (kc_lab_call(lab, k, STATUS_CALL_MS, &req, &rp, &err) == 0)
			v->vmknics = rp;
		if (lab->worlds) {
			Keel__Vmk__VmkWorldList wl = KEEL__VMK__VMK_WORLD_LIST__INIT;

			req.req_case = KEEL__VMK__VMK_REQUEST__REQ_WORLD_LIST;
			req.world_list = &wl;
			if (kc_lab_call(lab, k, STATUS_CALL_MS, &req, &rp, &err) == 0)
				v->worlds = rp;
		}
	}
}

static void json_host(struct kc_json *j, const struct kc_lab *lab, int k, const struct host_view *v)
{
	char buf[64];

	kc_json_obj_begin(j, NULL);
	snprintf(buf, sizeof(buf), "host%d", k);
	kc_json_str(j, "name", buf);
	kc_json_str(j, "state", lab->hosts[k].state == KC_LAB_HOST_UP ? "up" : "killed");
	kc_json_bool(j, "isolated", lab->hosts[k].isolated);
	kc_json_str(j, "netns", v->netns);
	kc_json_bool(j, "netns_present", v->netns_ok);
	kc_json_arr_begin(j, "daemons");
	for (int d = 0; d < kc_lab_ndaemons && d < 4; d++) {
		kc_json_obj_begin(j, NULL);
		kc_json_str(j, "name", kc_lab_daemons[d].name);
		kc_json_i64(j, "pid", v->pids[d]);
		kc_json_bool(j, "running", v->pids[d] > 0);
		kc_json_bool(j, "world", d >= kc_lab_ndaemons_started(lab));
		kc_json_obj_end(j);
	}
	kc_json_arr_end(j);
	kc_json_arr_begin(j, "worlds");
	for (size_t i = 0; v->worlds && i < v->worlds->n_worlds; i++) {
		const Keel__Vmk__WorldInfo *w = v->worlds->worlds[i];

		kc_json_obj_begin(j, NULL);
		kc_json_str(j, "name", w->name);
		kc_json_str(j, "state", w->state);
		kc_json_i64(j, "pid", w->pid);
		kc_json_u64(j, "restarts", w->restarts);
		kc_json_str(j, "cgroup", w->cgroup);
		kc_json_str(j, "last_exit", w->last_exit);
		kc_json_obj_end(j);
	}
	kc_json_arr_end(j);
	kc_json_bool(j, "vmkernel_answers", v->answers);
	kc_json_u64(j, "vms_registered", v->vms);
	kc_json_u64(j, "vms_powered_on", v->vms_on);
	kc_json_arr_begin(j, "addresses");
	if (v->vmknics) {
		for (size_t i = 0; i < v->vmknics->n_vmknics; i++) {
			const Keel__Vmk__VmknicInfo *n = v->vmknics->vmknics[i];

			kc_json_obj_begin(j, NULL);
			kc_json_str(j, "vmknic", n->name);
			snprintf(buf, sizeof(buf), "%s/%" PRIu32, n->ipv4, n->prefix);
			kc_json_str(j, "ipv4", buf);
			kc_json_str(j, "netstack", n->netstack);
			kc_json_str(j, "portgroup", n->portgroup);
			kc_json_str(j, "state", n->state);
			kc_json_obj_end(j);
		}
	} else {
		for (int i = 0; i < KC_LAB_NICS; i++) {
			kc_json_obj_begin(j, NULL);
			snprintf(buf, sizeof(buf), "vmk%d", i);
			kc_json_str(j, "vmknic", buf);
			kc_lab_vmk_addr(k, i, buf, sizeof(buf));
			kc_json_str(j, "ipv4", buf);
			kc_json_str(j, "state", "planned");
			kc_json_obj_end(j);
		}
	}
	kc_json_arr_end(j);
	kc_json_arr_begin(j, "uplinks");
	for (int nic = 0; nic < KC_LAB_NICS; nic++) {
		kc_json_obj_begin(j, NULL);
		snprintf(buf, sizeof(buf), "vmnic%d", nic);
		kc_json_str(j, "nic", buf);
		kc_json_str(j, "root_end", v->uplink[nic]);
		kc_json_str(j, "state", v->uplink_state[nic]);
		kc_json_obj_end(j);
	}
	kc_json_arr_end(j);
	kc_json_obj_end(j);
}

static void text_host(struct kc_table *t, const struct kc_lab *lab, int k,
		      const struct host_view *v)
{
	char name[16], pid[16], vms[32], addr[32], state[24], worlds[32];
	size_t nw = v->worlds ? v->worlds->n_worlds : 0, up = 0;

	snprintf(name, sizeof(name), "host%d", k);
	snprintf(state, sizeof(state), "%s%s",
		 lab->hosts[k].state == KC_LAB_HOST_UP ? "up" : "killed",
		 lab->hosts[k].isolated ? ",isolated" : "");
	if (v->pids[0])
		snprintf(pid, sizeof(pid), "%d", (int)v->pids[0]);
	else
		snprintf(pid, sizeof(pid), "down");
	if (v->answers)
		snprintf(vms, sizeof(vms), "%" PRIu32 " (%" PRIu32 " on)", v->vms, v->vms_on);
	else
		snprintf(vms, sizeof(vms), "-");
	if (v->vmknics && v->vmknics->n_vmknics)
		snprintf(addr, sizeof(addr), "%s/%" PRIu32, v->vmknics->vmknics[0]->ipv4,
			 v->vmknics->vmknics[0]->prefix);
	else
		kc_lab_vmk_addr(k, 0, addr, sizeof(addr));
	for (size_t i = 0; i < nw; i++)
		up += strcmp(v->worlds->worlds[i]->state, "running") == 0;
	if (!lab->worlds)
		snprintf(worlds, sizeof(worlds), "off");
	else if (!v->worlds)
		snprintf(worlds, sizeof(worlds), "-");
	else
		snprintf(worlds, sizeof(worlds), "%zu/%zu running", up, nw);
	kc_table_add(t, (const char *const[]){name, state, v->netns_ok ? v->netns : "missing", pid,
					      v->answers ? "yes" : "no", addr, v->uplink_state[0],
					      vms, worlds});
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"HOST",	   "STATE",   "NAMESPACE",
					    "VMKERNEL",	   "ANSWERS", "VMK0",
					    "MGMT UPLINK", "VMS",     "WORLDS"};
	struct kb_errmsg err = {{0}};
	static struct kc_lab lab;
	static struct host_view views[KC_LAB_MAX_HOSTS + 1];
	char dir[PATH_MAX], br[KC_LAB_NICS][KC_LAB_NAME_MAX], brs[KC_LAB_NICS][16];
	bool sup;
	int rc;

	rc = kc_lab_dir_arg(ctx, call, O_DIR, dir, sizeof(dir));
	if (rc)
		return rc;
	rc = kc_lab_load(dir, &lab, &err);
	if (rc == -ENOENT)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "no lab at %s (run 'keel lab up')", dir);
	if (rc)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s", err.msg);
	sup = kc_lab_supervisor_alive(&lab);
	for (int nic = 0; nic < KC_LAB_NICS; nic++) {
		kc_lab_bridge(&lab, nic, br[nic]);
		snprintf(brs[nic], sizeof(brs[nic]), "%s",
			 !kc_lab_link_exists(br[nic])	 ? "missing"
			 : kc_lab_link_admin_up(br[nic]) ? "up"
							 : "down");
	}
	for (int k = 1; k <= lab.nhosts; k++)
		look(&lab, k, &views[k]);
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "dir", lab.dir);
		kc_json_str(&j, "id", lab.id);
		kc_json_str(&j, "prefix", lab.prefix);
		kc_json_obj_begin(&j, "supervisor");
		kc_json_i64(&j, "pid", sup ? lab.sup_pid : 0);
		kc_json_bool(&j, "running", sup);
		kc_json_obj_end(&j);
		kc_json_str(&j, "shared_datastore",
			    lab.shared_mib      ? "image"
			    : lab.shared_memory ? "memory"
						: "directory");
		kc_json_u64(&j, "shared_datastore_mib", lab.shared_mib);
		kc_json_bool(&j, "worlds", lab.worlds);
		kc_json_arr_begin(&j, "bridges");
		for (int nic = 0; nic < KC_LAB_NICS; nic++) {
			kc_json_obj_begin(&j, NULL);
			kc_json_str(&j, "name", br[nic]);
			kc_json_str(&j, "state", brs[nic]);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_arr_begin(&j, "hosts");
		for (int k = 1; k <= lab.nhosts; k++)
			json_host(&j, &lab, k, &views[k]);
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		rc = KC_EXIT_OK;
	} else {
		struct kc_table t;

		printf("Lab %s (id %s), %d hosts; supervisor ", lab.dir, lab.id, lab.nhosts);
		if (sup)
			printf("pid %d\n", (int)lab.sup_pid);
		else
			printf("not running\n");
		printf("Bridges: %s %s, %s %s, %s %s\n\n", br[0], brs[0], br[1], brs[1], br[2],
		       brs[2]);
		kc_table_init(&t, 9, heads, "lllllllll");
		for (int k = 1; k <= lab.nhosts; k++)
			text_host(&t, &lab, k, &views[k]);
		rc = kc_table_print(&t, ctx, stdout);
		kc_table_close(&t);
	}
	for (int k = 1; k <= lab.nhosts; k++) {
		if (views[k].vmknics)
			kc_reply_free(views[k].vmknics);
		if (views[k].worlds)
			kc_reply_free(views[k].worlds);
	}
	return rc;
}

static const struct kc_opt status_opts[] = {
    {"dir", "DIR", "the lab's directory (default " KC_LAB_DEFAULT_DIR ")", O_DIR, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_lab_status_cmd = {
    .name = "status",
    .summary = "Show the lab's hosts, daemons, addresses, VMs and bridges.",
    .opts = status_opts,
    .run = status_run,
};
