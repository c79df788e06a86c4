/*
 * `keel lab up N`: makes, or completes, a lab of N hosts.
 *
 * Order: the record first (so `down` knows what may exist), the shared datastore, the lab
 * bridges, each host's namespace, uplinks, state directory and worlds file, the supervisor
 * (which starts every host's vmkernel, and with --no-worlds its clusterd and hostd too), then each host's configuration through its vmkernel once
 * it answers. Every step keeps what already exists, so `up` on a lab that is up changes
 * nothing, and `up` after a failure or a crash completes the lab. A failure stops `up`
 * with the reason; what was made stays listed in the record for `down`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/file.h"
#include "mgmt-api/keel/lab.h"

enum { O_DIR = 1, O_SIZE, O_ON_DISK, O_NO_WORLDS };

#define WAIT_MS 20000

static bool mounted_at(const char *path)
{
	char line[PATH_MAX * 2 + 64], dev[PATH_MAX], mnt[PATH_MAX];
	FILE *f = fopen("/proc/self/mounts", "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%4095s %4095s", dev, mnt) == 2 && strcmp(mnt, path) == 0)
			found = true;
	fclose(f);
	return found;
}

/* DIR/shared: a tmpfs mounted there, an ext4 image of shared_mib loop-mounted there, or a
 * plain directory. */
static int shared_make(struct kc_lab *lab, struct kb_errmsg *err)
{
	char dir[PATH_MAX], img[PATH_MAX + 8];
	struct stat st;
	int rc, fd;

	kc_lab_shared_dir(lab, dir, sizeof(dir));
	if (mkdir(dir, 0755) && errno != EEXIST) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", dir, kb_strerror(rc));
		return rc;
	}
	if ((!lab->shared_mib && !lab->shared_memory) || mounted_at(dir))
		return 0;
	if (!lab->shared_mib) {
		lab->shared_mounted = true;
		rc = kc_lab_save(lab, err);
		if (rc)
			return rc;
		if (mount("keel-lab-shared", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")) {
			rc = -errno;
			kb_errmsg_setf(err, "mount a tmpfs on %s: %s", dir, kb_strerror(rc));
			return rc;
		}
		return 0;
	}
	snprintf(img, sizeof(img), "%s.img", dir);
	if (stat(img, &st) < 0) {
		fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)(lab->shared_mib << 20)) < 0) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			unlink(img);
			kb_errmsg_setf(err, "%s: %s", img, kb_strerror(rc));
			return rc;
		}
		close(fd);
		{
			char *argv[] = {"mkfs.ext4", "-q", "-F", "-m", "0", img, NULL};

			rc = kc_lab_run(argv, err);
		}
		if (rc) {
			unlink(img);
			return rc < 0 ? rc : -EIO;
		}
	}
	lab->shared_mounted = true;
	rc = kc_lab_save(lab, err);
	if (rc)
		return rc;
	{
		char *argv[] = {"mount", "-o", "loop", img, dir, NULL};

		rc = kc_lab_run(argv, err);
	}
	return rc < 0 ? rc : rc ? -EIO : 0;
}

/* A new lab's id and prefix: the default lab is "keel"; others get a prefix no other lab
 * on this machine uses. */
static int new_identity(struct kc_lab *lab, struct kb_errmsg *err)
{
	for (int tries = 0; tries < 16; tries++) {
		char br[KC_LAB_NAME_MAX];
		uint16_t r;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
			kb_errmsg_setf(err, "getrandom: %s", strerror(errno));
			return -EIO;
		}
		snprintf(lab->id, sizeof(lab->id), "%04x", r);
		if (strcmp(lab->dir, KC_LAB_DEFAULT_DIR) == 0)
			snprintf(lab->prefix, sizeof(lab->prefix), "keel");
		else
			snprintf(lab->prefix, sizeof(lab->prefix), "k%s", lab->id);
		kc_lab_bridge(lab, 0, br);
		if (strcmp(lab->prefix, "keel") == 0 || !kc_lab_link_exists(br))
			return 0;
	}
	kb_errmsg_setf(err, "no free lab id");
	return -EEXIST;
}

void kc_lab_root_password_file(const struct kc_lab *lab, char *out, size_t size)
{
	snprintf(out, size, "%s/root-password", lab->dir);
}

/* DIR/root-password, made once: a random password for user root on every host's hostd. */
static int root_password_make(const struct kc_lab *lab, struct kb_errmsg *err)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char path[PATH_MAX], pw[24];
	uint8_t r[16];
	int rc;

	kc_lab_root_password_file(lab, path, sizeof(path));
	if (access(path, F_OK) == 0)
		return 0;
	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		kb_errmsg_setf(err, "getrandom: %s", strerror(errno));
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(r); i++)
		pw[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
	pw[sizeof(r)] = '\n';
	rc = kb_file_write_atomic(path, pw, sizeof(r) + 1, 0600, err);
	return rc == KB_ENOTSYNCED ? 0 : rc;
}

static int vmkernel_path(struct kc_lab *lab, struct kb_errmsg *err)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0) {
		kb_errmsg_setf(err, "cannot find the keel binary: %s", strerror(errno));
		return -EIO;
	}
	self[n] = '\0';
	snprintf(lab->vmkernel, sizeof(lab->vmkernel), "%s/vmkernel", dirname(self));
	if (access(lab->vmkernel, X_OK) != 0) {
		kb_errmsg_setf(err, "no vmkernel beside keel (%s)", lab->vmkernel);
		return -ENOENT;
	}
	return 0;
}

/* Whether dir may become a lab: it has a record, or holds nothing but the lock. */
static bool usable_dir(const char *dir)
{
	char path[PATH_MAX + 16];
	struct dirent *e;
	bool empty = true;
	DIR *d;

	snprintf(path, sizeof(path), "%s/lab.conf", dir);
	if (access(path, F_OK) == 0)
		return true;
	d = opendir(dir);
	if (!d)
		return false;
	while (empty && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, "lab.lock"))
			empty = false;
	closedir(d);
	return empty;
}

static void print_up(struct kc_ctx *ctx, const struct kc_lab *lab, bool vmknics)
{
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "dir", lab->dir);
		kc_json_str(&j, "id", lab->id);
		kc_json_str(&j, "prefix", lab->prefix);
		kc_json_bool(&j, "vmknics", vmknics);
		kc_json_bool(&j, "worlds", lab->worlds);
		{
			char pwf[PATH_MAX];

			kc_lab_root_password_file(lab, pwf, sizeof(pwf));
			kc_json_str(&j, "root_password_file", pwf);
		}
		kc_json_arr_begin(&j, "hosts");
		for (int k = 1; k <= lab->nhosts; k++) {
			char buf[PATH_MAX];

			kc_json_obj_begin(&j, NULL);
			snprintf(buf, sizeof(buf), "host%d", k);
			kc_json_str(&j, "name", buf);
			kc_lab_netns(lab, k, buf, sizeof(buf));
			kc_json_str(&j, "netns", buf);
			kc_lab_socket(lab, k, buf, sizeof(buf));
			kc_json_str(&j, "socket", buf);
			kc_lab_vmk_addr(k, 0, buf, sizeof(buf));
			kc_json_str(&j, "vmk0", buf);
			kc_json_obj_end(&j);
		}
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return;
	}
	printf("Lab up at %s: %d hosts, id %s.\n", lab->dir, lab->nhosts, lab->id);
	for (int k = 1; k <= lab->nhosts; k++) {
		char sock[PATH_MAX];

		kc_lab_socket(lab, k, sock, sizeof(sock));
		printf("  host%d  keel --socket %s\n", k, sock);
	}
	if (!vmknics)
		printf("(This vmkernel has no VMkernel adapters: vmk0-vmk2 were not made.)\n");
	if (lab->worlds)
		printf("clusterd, hostd and vmsyslogd run as each vmkernel's user worlds "
		       "(keel host worlds).\n");
	else
		printf("clusterd and hostd run as plain processes of the lab (--no-worlds).\n");
	printf("API: hostd on every host at https://<vmk0>:8443 (gRPC), user root, password in "
	       "%s/root-password.\n",
	       lab->dir);
}

static int up_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	struct kb_errmsg err = {{0}};
	static struct kc_lab lab;
	const char *size = kc_opt(call, O_SIZE);
	bool no_worlds = kc_has(call, O_NO_WORLDS), on_disk = kc_has(call, O_ON_DISK);
	char dir[PATH_MAX], path[PATH_MAX + 16];
	uint64_t mib = 0;
	bool vmknics = true;
	uint32_t n;
	int rc, lock;

	if (kc_parse_u32(call->pos[0], 1, KC_LAB_MAX_HOSTS, &n))
		return kc_usage(ctx, call, "bad host count '%s': want 1 to %d", call->pos[0],
				KC_LAB_MAX_HOSTS);
	if (size && kc_parse_mib(size, 16, 16ull << 20, &mib))
		return kc_usage(ctx, call, "bad --shared-datastore-size '%s': want 16M to 16T",
				size);
	if (size && on_disk)
		return kc_usage(ctx, call, "--shared-datastore-size and --shared-datastore-on-disk "
					   "are two different datastores: give one");
	rc = kc_lab_dir_arg(ctx, call, O_DIR, dir, sizeof(dir));
	if (rc)
		return rc;
	lock = kc_lab_lock(dir, &err);
	if (lock < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, lock, "%s", err.msg);
	rc = kc_lab_load(dir, &lab, &err);
	if (rc == -ENOENT) {
		if (!usable_dir(dir)) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, -EEXIST,
				     "%s holds files but no lab record: not making a lab there",
				     dir);
			goto out;
		}
		memset(&lab, 0, sizeof(lab));
		snprintf(lab.dir, sizeof(lab.dir), "%s", dir);
		rc = new_identity(&lab, &err);
		rc = rc ?: vmkernel_path(&lab, &err);
		lab.shared_mib = mib;
		lab.shared_memory = !mib && !on_disk;
		lab.worlds = !no_worlds;
	} else if (rc == 0 && no_worlds && lab.worlds) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, -EEXIST,
			     "lab up: the lab at %s runs its daemons as user worlds; --no-worlds "
			     "needs a new lab ('keel lab down' first)",
			     dir);
		goto out;
	} else if (rc == 0 && ((mib && mib != lab.shared_mib) ||
			       (on_disk && (lab.shared_mib || lab.shared_memory)))) {
		fprintf(stderr, "keel: the shared datastore exists; --shared-datastore-%s is "
				"ignored\n",
			mib ? "size" : "on-disk");
	}
	if (rc)
		goto fail;
	if ((int)n > lab.nhosts)
		lab.nhosts = (int)n;
	for (int k = 1; k <= lab.nhosts; k++)
		lab.hosts[k].state = KC_LAB_HOST_UP;
	snprintf(path, sizeof(path), "%s/hosts", dir);
	if (mkdir(path, 0755) && errno != EEXIST) {
		rc = -errno;
		kb_errmsg_setf(&err, "%s: %s", path, kb_strerror(rc));
		goto fail;
	}
	rc = kc_lab_save(&lab, &err);
	rc = rc ?: root_password_make(&lab, &err);
	rc = rc ?: shared_make(&lab, &err);
	rc = rc ?: kc_lab_bridges_make(&lab, &err);
	for (int k = 1; k <= lab.nhosts && rc == 0; k++)
		rc = kc_lab_host_make(&lab, k, &err);
	if (rc)
		goto fail;
	if (!kc_lab_supervisor_alive(&lab)) {
		rc = kc_lab_supervisor_start(&lab, &err);
		rc = rc ?: kc_lab_save(&lab, &err);
		if (rc)
			goto fail;
	}
	kc_lab_log(&lab, "up: %d hosts", lab.nhosts);
	for (int k = 1; k <= lab.nhosts && rc == 0; k++) {
		bool v = true;

		rc = kc_lab_host_wait(&lab, k, WAIT_MS, &err);
		rc = rc ?: kc_lab_host_configure(&lab, k, &v, &err);
		vmknics = vmknics && v;
	}
	if (rc)
		goto fail;
	print_up(ctx, &lab, vmknics);
	rc = KC_EXIT_OK;
	goto out;
fail:
	kc_lab_log(&lab, "up failed: %s", err.msg);
	rc = kc_fail(ctx, KC_EXIT_FAILED, rc, "lab up: %s", err.msg);
out:
	close(lock);
	return rc;
}

static const struct kc_opt up_opts[] = {
    {"dir", "DIR", "the lab's directory (default " KC_LAB_DEFAULT_DIR ")", O_DIR, false},
    {"shared-datastore-size", "SIZE",
     "make the shared datastore an ext4 image of SIZE (512M, 2G), loop-mounted; default: "
     "a tmpfs (in memory)",
     O_SIZE, false},
    {"shared-datastore-on-disk", NULL,
     "make the shared datastore a plain directory on DIR's filesystem; default: a tmpfs",
     O_ON_DISK, false},
    {"no-worlds", NULL,
     "start clusterd and hostd as plain processes of the lab, not as vmkernel's user "
     "worlds (for debugging; chosen when the lab is made)",
     O_NO_WORLDS, false},
    {NULL, NULL, NULL, 0, false},
};

const struct kc_cmd kc_lab_up_cmd = {
    .name = "up",
    .args = "N",
    .summary = "Make (or complete) a lab of N nested hosts on this machine.",
    .detail = "Hosts are host1..hostN, each a network namespace with uplinks vmnic0-2 on\n"
	      "the lab bridges, its own vmkernel (supervised), vSwitch0-2, vmk0-2 and the\n"
	      "shared datastore shared1 (DIR/shared, a tmpfs unless told otherwise: its\n"
	      "synchronous heartbeat writes then wait for no disk). Each vmkernel runs\n"
	      "clusterd, hostd and vmsyslogd as its user worlds (confined; keel host\n"
	      "worlds), unless --no-worlds.\n"
	      "Running it again keeps what is up and remakes what is missing. See\n"
	      "docs/lab.md.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = up_opts,
    .run = up_run,
};
