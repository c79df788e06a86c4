/*
 * A lab host's user worlds: the worlds file its vmkernel runs (`vmkernel --worlds FILE`),
 * so that clusterd, hostd and vmsyslogd run on every lab host as they run on a real one —
 * started, confined and restarted by vmkernel — and not as plain processes of the lab.
 *
 * DIR/hosts/hostK/worlds.conf (docs/worlds.md for the format) gives each daemon the
 * arguments the lab always gave it (clusterd's --host-name, hostd's root password file and
 * session idle timeout) and the confinement of the built-in set: its own cgroup with a
 * memory limit, no capabilities but hostd's net_bind_service, a seccomp allow-list, a
 * private /tmp with the host's state dir bound back and, through `bind`, the lab's shared
 * datastore and root password file, which a lab under /tmp would otherwise hide. They run
 * in the host's network namespace, where the supervisor starts vmkernel. `restart = always`
 * keeps the lab's rule that a daemon that ends for any reason comes back.
 *
 * keel-snmpd and vmntpd are not lab worlds: tests run their own in lab hosts, and each
 * allows one instance per state dir (docs/worlds.md).
 *
 * The file is rewritten by every `up` and `host-start` (vmkernel reads it when it starts).
 * <name>.out, where the lab kept each daemon's output, becomes a symbolic link to the
 * world's log <name>.log (vmsyslogd forwards the .log files).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/file.h"
#include "mgmt-api/keel/lab.h"

#define WORLDS_TEXT_MAX 4096

void kc_lab_worlds_file(const struct kc_lab *lab, int host, char *out, size_t size)
{
	snprintf(out, size, "%s/hosts/host%d/worlds.conf", lab->dir, host);
}

int kc_lab_ndaemons_started(const struct kc_lab *lab)
{
	return lab->worlds ? 1 : kc_lab_ndaemons;
}

/* <hdir>/<name>.out -> <name>.log. A plain .out left by a lab run without worlds becomes
 * the .log when there is none yet, so no output is lost. */
static int out_link(const char *hdir, const char *name, struct kb_errmsg *err)
{
	char out[PATH_MAX], log[PATH_MAX], target[64], have[64];
	struct stat st;
	ssize_t n;

	snprintf(out, sizeof(out), "%s/%s.out", hdir, name);
	snprintf(log, sizeof(log), "%s/%s.log", hdir, name);
	snprintf(target, sizeof(target), "%s.log", name);
	if (lstat(out, &st) == 0) {
		if (S_ISLNK(st.st_mode)) {
			n = readlink(out, have, sizeof(have) - 1);
			if (n > 0 && (size_t)n == strlen(target) &&
			    memcmp(have, target, (size_t)n) == 0)
				return 0;
			unlink(out);
		} else if (S_ISREG(st.st_mode) && access(log, F_OK) != 0) {
			if (rename(out, log) < 0)
				goto fail;
		} else {
			return 0; /* both exist: keep the old output where it is */
		}
	}
	if (symlink(target, out) < 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	kb_errmsg_setf(err, "%s: %s", out, strerror(errno));
	return -errno;
}

int kc_lab_worlds_write(const struct kc_lab *lab, int host, struct kb_errmsg *err)
{
	static const char *const logs[] = {"clusterd", "hostd"};
	char path[PATH_MAX], hdir[PATH_MAX], shared[PATH_MAX], pwf[PATH_MAX], idle[64] = "";
	char text[WORLDS_TEXT_MAX];
	const char *idle_s = getenv("KEEL_LAB_SESSION_IDLE_S");
	int n, rc;

	if (!lab->worlds)
		return 0;
	if (strpbrk(lab->dir, " \t\n")) {
		kb_errmsg_setf(err,
			       "%s: a lab directory with blanks cannot name its worlds' "
			       "files (use --no-worlds)",
			       lab->dir);
		return KB_ECONFIG;
	}
	if (idle_s && *idle_s) {
		if (strspn(idle_s, "0123456789") != strlen(idle_s) || strlen(idle_s) > 8) {
			kb_errmsg_setf(err,
				       "KEEL_LAB_SESSION_IDLE_S '%.20s' is not a number of "
				       "seconds",
				       idle_s);
			return KB_ECONFIG;
		}
		snprintf(idle, sizeof(idle), " --session-idle-timeout %s", idle_s);
	}
	kc_lab_host_dir(lab, host, hdir, sizeof(hdir));
	kc_lab_shared_dir(lab, shared, sizeof(shared));
	kc_lab_root_password_file(lab, pwf, sizeof(pwf));
	n = snprintf(text, sizeof(text),
		     "# The user worlds of lab host%d, written by keel lab up: docs/lab.md\n"
		     "[clusterd]\n"
		     "exec = {bin}/clusterd --state-dir {dir} --host-name host%d\n"
		     "mem_limit_mib = 1024\n"
		     "syscalls = @basic @file @net @aio\n"
		     "private_tmp = yes\n"
		     "bind = %s\n"
		     "restart = always\n"
		     "\n"
		     "[hostd]\n"
		     "exec = {bin}/hostd --state-dir {dir} --root-password-file %s%s\n"
		     "mem_limit_mib = 512\n"
		     "caps = net_bind_service\n"
		     "syscalls = @basic @file @net\n"
		     "private_tmp = yes\n"
		     "bind = %s %s\n"
		     "restart = always\n"
		     "\n"
		     "[vmsyslogd]\n"
		     "exec = {bin}/vmsyslogd --state-dir {dir}\n"
		     "cpu_limit_mhz = 500\n"
		     "mem_limit_mib = 128\n"
		     "syscalls = @basic @file @net\n"
		     "private_tmp = yes\n"
		     "read_only = /usr /etc\n"
		     "bind = %s\n",
		     host, host, shared, pwf, idle, shared, pwf, shared);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		kb_errmsg_setf(err, "host%d: the worlds file is too long", host);
		return -ENAMETOOLONG;
	}
	kc_lab_worlds_file(lab, host, path, sizeof(path));
	rc = kb_file_write_atomic(path, text, (size_t)n, 0644, err);
	if (rc && rc != KB_ENOTSYNCED)
		return rc;
	for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
		rc = out_link(hdir, logs[i], err);
		if (rc)
			return rc;
	}
	return 0;
}
