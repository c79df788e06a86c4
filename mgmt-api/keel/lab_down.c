/*
 * `keel lab down`: removes a lab and everything it made, from its record alone.
 *
 * Order: the supervisor first (so nothing is restarted), then every process of every host
 * (SIGKILL: vmkernel, its worlds and the VMs' vmx alike, found by namespace and by command
 * line), the hosts' leftover cgroups (their VMs' and worlds'), the namespaces (which take the namespace ends of the uplinks
 * with them), the root ends of the uplinks, the bridges, the shared datastore's loop
 * mount, and last the lab directory. Every step tolerates what is already gone, so `down`
 * works after a crash, after a half-made `up`, and twice; with no lab at all it says so
 * and succeeds. A directory without a lab record is never removed.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mgmt-api/keel/lab.h"

enum { O_DIR = 1 };

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Kills the supervisor: the recorded one, and any other supervising this lab. */
static void supervisor_kill(const struct kc_lab *lab)
{
	pid_t pids[16];
	int n;

	if (kc_lab_supervisor_alive(lab))
		kill(lab->sup_pid, SIGKILL);
	n = kc_lab_supervisor_pids(lab->dir, pids, 16);
	for (int i = 0; i < n && i < 16; i++)
		kill(pids[i], SIGKILL);
}

static int down_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	struct kb_errmsg err = {{0}};
	static struct kc_lab lab;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int rc, lock, failures = 0;

	rc = kc_lab_dir_arg(ctx, call, O_DIR, dir, sizeof(dir));
	if (rc)
		return rc;
	if (access(dir, F_OK) != 0) {
		if (ctx->json)
			printf("{\"ok\":true,\"code\":0,\"removed\":false}\n");
		else
			printf("No lab at %s.\n", dir);
		return KC_EXIT_OK;
	}
	lock = kc_lab_lock(dir, &err);
	if (lock < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, lock, "%s", err.msg);
	rc = kc_lab_load(dir, &lab, &err);
	if (rc == -ENOENT) {
		snprintf(path, sizeof(path), "%s/lab.lock", dir);
		unlink(path);
		rmdir(dir); /* only if it held nothing else */
		close(lock);
		if (ctx->json)
			printf("{\"ok\":true,\"code\":0,\"removed\":false}\n");
		else
			printf("No lab at %s.\n", dir);
		return KC_EXIT_OK;
	}
	if (rc) {
		close(lock);
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s (remove the lab by hand)", err.msg);
	}
	kc_lab_log(&lab, "down: removing the lab");
	supervisor_kill(&lab);
	for (int k = 1; k <= lab.nhosts; k++)
		kc_lab_host_kill_all(&lab, k);
	for (int k = 1; k <= lab.nhosts; k++) {
		char ns[64];

		kc_lab_host_cgroups_clean(&lab, k);
		kc_lab_netns(&lab, k, ns, sizeof(ns));
		if (kc_lab_netns_exists(ns)) {
			char *argv[] = {"ip", "netns", "del", ns, NULL};

			if (kc_lab_run(argv, &err)) {
				fprintf(stderr, "keel: %s\n", err.msg);
				failures++;
			}
		}
		for (int nic = 0; nic < KC_LAB_NICS; nic++) {
			char veth[KC_LAB_NAME_MAX];

			kc_lab_veth(&lab, k, nic, veth);
			if (kc_lab_link_exists(veth)) {
				char *argv[] = {"ip", "link", "del", veth, NULL};

				if (kc_lab_run(argv, &err) && kc_lab_link_exists(veth)) {
					fprintf(stderr, "keel: %s\n", err.msg);
					failures++;
				}
			}
		}
	}
	for (int nic = 0; nic < KC_LAB_NICS; nic++) {
		char br[KC_LAB_NAME_MAX];

		kc_lab_bridge(&lab, nic, br);
		if (kc_lab_link_exists(br)) {
			char *argv[] = {"ip", "link", "del", br, NULL};

			if (kc_lab_run(argv, &err)) {
				fprintf(stderr, "keel: %s\n", err.msg);
				failures++;
			}
		}
	}
	/* The shared datastore's image, and the namespace files of the hosts' netstacks. */
	if (kc_lab_unmount_under(lab.dir)) {
		fprintf(stderr, "keel: mounts under %s could not be removed\n", lab.dir);
		failures++;
	}
	if (failures) {
		close(lock);
		return kc_fail(ctx, KC_EXIT_FAILED, -EIO,
			       "lab down: %d objects could not be removed; %s is kept", failures,
			       dir);
	}
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	close(lock);
	if (access(dir, F_OK) == 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -EBUSY, "lab down: %s could not be removed",
			       dir);
	if (ctx->json)
		printf("{\"ok\":true,\"code\":0,\"removed\":true}\n");
	else
		printf("Lab at %s removed.\n", dir);
	return KC_EXIT_OK;
}

static const struct kc_opt down_opts[] = {
    {"dir", "DIR", "the lab's directory (default " KC_LAB_DEFAULT_DIR ")", O_DIR, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_lab_down_cmd = {
    .name = "down",
    .summary = "Remove the lab: its processes, namespaces, bridges, mounts and directory.",
    .detail = "Works from the lab record alone, also after a crash; succeeds when there\n"
	      "is no lab.\n",
    .opts = down_opts,
    .run = down_run,
};
