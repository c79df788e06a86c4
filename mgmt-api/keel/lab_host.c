/*
 * One lab host: its network namespace and uplinks, its daemons, and the configuration its
 * vmkernel is given. In a lab with worlds (the default) the lab starts vmkernel alone, with
 * the host's worlds file (lab_worlds.c), and vmkernel runs clusterd and hostd as its user
 * worlds; with --no-worlds the lab starts all three itself.
 *
 * Host K's namespace holds vmnic0 (management), vmnic1 (vMotion) and vmnic2 (FT), each a
 * veth whose other end, <prefix>-hKnN, is a port of the lab bridge of that role in the
 * root namespace. The root side carries no address and no IPv6, so lab traffic never
 * leaves the lab bridges. Each step checks what exists first, so making a host twice
 * changes nothing and a half-made host is completed.
 *
 * Through its vmkernel the host gets vSwitch0 (vmnic0; "Management Network", "VM
 * Network"), vSwitch1 (vmnic1; "VMotion"), vSwitch2 (vmnic2; "FT Logging"), the shared
 * datastore shared1, and, when its vmkernel has VMkernel adapters, vmk0 (Management),
 * vmk1 (VMotion, netstack vmotion) and vmk2 (FaultToleranceLogging).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/time.h"
#include "mgmt-api/keel/lab.h"

/* vmkernel, with the host's worlds file when the lab runs the other daemons as its user
 * worlds. buf holds the state directory and the worlds file's path. */
static void vmkernel_argv(const struct kc_lab *lab, int host, char **argv, char *buf, size_t size)
{
	size_t n;

	kc_lab_host_dir(lab, host, buf, size / 2);
	argv[0] = (char *)lab->vmkernel;
	argv[1] = "--state-dir";
	argv[2] = buf;
	argv[3] = NULL;
	if (lab->worlds) {
		n = strlen(buf) + 1;
		kc_lab_worlds_file(lab, host, buf + n, size - n);
		argv[3] = "--worlds";
		argv[4] = buf + n;
		argv[5] = NULL;
	}
}

/* The path of daemon name in vmkernel's directory into out. */
static void sibling(const struct kc_lab *lab, const char *name, char *out, size_t size)
{
	const char *slash = strrchr(lab->vmkernel, '/');

	if (slash)
		snprintf(out, size, "%.*s/%s", (int)(slash - lab->vmkernel), lab->vmkernel, name);
	else
		snprintf(out, size, "%s", name);
}

/* clusterd, beside vmkernel's binary; it waits by itself until vmkernel has made vmk0.
 * buf holds the state directory, the binary's path and the host's name, one after the
 * other. */
static void clusterd_argv(const struct kc_lab *lab, int host, char **argv, char *buf, size_t size)
{
	size_t n;
	char *p;

	kc_lab_host_dir(lab, host, buf, size / 2);
	n = strlen(buf) + 1;
	p = buf + n;
	sibling(lab, "clusterd", p, size - n);
	n += strlen(p) + 1;
	snprintf(buf + n, size - n, "host%d", host);
	argv[0] = p;
	argv[1] = "--state-dir";
	argv[2] = buf;
	argv[3] = "--host-name";
	argv[4] = buf + n;
	argv[5] = NULL;
}

/* hostd, beside vmkernel's binary, with the lab's root password for a new user database
 * and, when KEEL_LAB_SESSION_IDLE_S is set, its session idle timeout in seconds.
 * buf holds the state directory, the binary's path and the password file's path. */
static void hostd_argv(const struct kc_lab *lab, int host, char **argv, char *buf, size_t size)
{
	size_t n;
	char *p;

	kc_lab_host_dir(lab, host, buf, size / 3);
	n = strlen(buf) + 1;
	p = buf + n;
	sibling(lab, "hostd", p, size - n);
	n += strlen(p) + 1;
	kc_lab_root_password_file(lab, buf + n, size - n);
	argv[0] = p;
	argv[1] = "--state-dir";
	argv[2] = buf;
	argv[3] = "--root-password-file";
	argv[4] = buf + n;
	argv[5] = NULL;
	if (getenv("KEEL_LAB_SESSION_IDLE_S") && *getenv("KEEL_LAB_SESSION_IDLE_S")) {
		argv[5] = "--session-idle-timeout";
		argv[6] = getenv("KEEL_LAB_SESSION_IDLE_S");
		argv[7] = NULL;
	}
}

const struct kc_lab_daemon kc_lab_daemons[] = {
    {"vmkernel", vmkernel_argv},
    {"clusterd", clusterd_argv},
    {"hostd", hostd_argv},
};
const int kc_lab_ndaemons = sizeof(kc_lab_daemons) / sizeof(kc_lab_daemons[0]);

static int ip(struct kb_errmsg *err, const char *a0, const char *a1, const char *a2, const char *a3,
	      const char *a4, const char *a5, const char *a6, const char *a7, const char *a8)
{
	const char *argv[] = {"ip", a0, a1, a2, a3, a4, a5, a6, a7, a8, NULL};

	return kc_lab_run((char *const *)argv, err);
}

/* Turns IPv6 off on a root-side lab interface: no router solicitations, no DAD. */
static void no_ipv6(const char *link)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", link);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0) {
			/* best effort: IPv6 may be off or absent */
		}
		close(fd);
	}
}

int kc_lab_bridges_make(const struct kc_lab *lab, struct kb_errmsg *err)
{
	for (int nic = 0; nic < KC_LAB_NICS; nic++) {
		char br[KC_LAB_NAME_MAX];
		int rc;

		kc_lab_bridge(lab, nic, br);
		if (!kc_lab_link_exists(br)) {
			rc = ip(err, "link", "add", br, "type", "bridge", NULL, NULL, NULL, NULL);
			if (rc)
				return rc < 0 ? rc : -EIO;
		}
		no_ipv6(br);
		rc = ip(err, "link", "set", br, "up", NULL, NULL, NULL, NULL, NULL);
		if (rc)
			return rc < 0 ? rc : -EIO;
	}
	return 0;
}

int kc_lab_host_make(const struct kc_lab *lab, int host, struct kb_errmsg *err)
{
	char ns[64], dir[PATH_MAX];
	int rc;

	kc_lab_host_dir(lab, host, dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", dir, kb_strerror(rc));
		return rc;
	}
	rc = kc_lab_worlds_write(lab, host, err);
	if (rc) {
		kb_errmsg_wrapf(err, "host%d", host);
		return rc;
	}
	kc_lab_netns(lab, host, ns, sizeof(ns));
	if (!kc_lab_netns_ino(ns)) {
		rc = ip(err, "netns", "add", ns, NULL, NULL, NULL, NULL, NULL, NULL);
		if (rc)
			return rc < 0 ? rc : -EIO;
	}
	rc = ip(err, "-n", ns, "link", "set", "lo", "up", NULL, NULL, NULL);
	for (int nic = 0; nic < KC_LAB_NICS && rc == 0; nic++) {
		char veth[KC_LAB_NAME_MAX], br[KC_LAB_NAME_MAX], vmnic[16];

		kc_lab_veth(lab, host, nic, veth);
		kc_lab_bridge(lab, nic, br);
		snprintf(vmnic, sizeof(vmnic), "vmnic%d", nic);
		if (!kc_lab_link_exists(veth)) {
			struct kb_errmsg ignored;

			/* A namespace end without its root end is half of a broken pair. */
			ip(&ignored, "-n", ns, "link", "del", vmnic, NULL, NULL, NULL, NULL);
			rc = ip(err, "link", "add", veth, "type", "veth", "peer", "name", vmnic,
				NULL);
			rc = rc
				 ?: ip(err, "link", "set", vmnic, "netns", ns, NULL, NULL, NULL,
				       NULL);
			if (rc)
				break;
		}
		no_ipv6(veth);
		rc = ip(err, "link", "set", veth, "master", br, NULL, NULL, NULL, NULL);
		if (rc == 0 && !lab->hosts[host].isolated)
			rc = ip(err, "link", "set", veth, "up", NULL, NULL, NULL, NULL, NULL);
		else if (rc == 0)
			rc = ip(err, "link", "set", veth, "down", NULL, NULL, NULL, NULL, NULL);
		rc = rc ?: ip(err, "-n", ns, "link", "set", vmnic, "up", NULL, NULL, NULL);
	}
	if (rc) {
		kb_errmsg_wrapf(err, "host%d", host);
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

int kc_lab_host_uplink(const struct kc_lab *lab, int host, bool up, struct kb_errmsg *err)
{
	char veth[KC_LAB_NAME_MAX];
	int rc;

	kc_lab_veth(lab, host, 0, veth);
	rc = ip(err, "link", "set", veth, up ? "up" : "down", NULL, NULL, NULL, NULL, NULL);
	return rc < 0 ? rc : rc ? -EIO : 0;
}

pid_t kc_lab_daemon_start(const struct kc_lab *lab, int host, const struct kc_lab_daemon *d,
			  struct kb_errmsg *err)
{
	char ns[64], path[PATH_MAX], out[PATH_MAX + 32], buf[PATH_MAX];
	char *argv[16];
	int nsfd, rc;
	pid_t pid;

	kc_lab_netns(lab, host, ns, sizeof(ns));
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "host%d: namespace %s: %s", host, ns, kb_strerror(rc));
		return rc;
	}
	kc_lab_host_dir(lab, host, path, sizeof(path));
	snprintf(out, sizeof(out), "%s/%s.out", path, d->name);
	d->argv(lab, host, argv, buf, sizeof(buf));
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(nsfd);
		kb_errmsg_setf(err, "host%d: fork: %s", host, kb_strerror(rc));
		return rc;
	}
	if (pid == 0) {
		sigset_t none;
		int fd;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (setns(nsfd, CLONE_NEWNET) < 0)
			_exit(126);
		setsid();
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		closefrom(3);
		execv(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(nsfd);
	return pid;
}

int kc_lab_call(const struct kc_lab *lab, int host, uint64_t timeout_ms, Keel__Vmk__VmkRequest *req,
		Keel__Vmk__VmkReply **reply, struct kb_errmsg *err)
{
	struct kc_transport *t;
	char sock[PATH_MAX];
	int rc, code = 0;

	*reply = NULL;
	kc_lab_socket(lab, host, sock, sizeof(sock));
	rc = kc_transport_local_create(sock, timeout_ms, &t);
	if (rc) {
		kb_errmsg_setf(err, "%s", kb_strerror(rc));
		return rc;
	}
	rc = t->call(t, req, reply, &code, err);
	t->destroy(t);
	if (rc)
		return code ? code : -EIO;
	if ((*reply)->code) {
		rc = (*reply)->code;
		kb_errmsg_setf(err, "%s",
			       (*reply)->error && (*reply)->error[0] ? (*reply)->error
								     : kb_strerror(rc));
		kc_reply_free(*reply);
		*reply = NULL;
	}
	return rc;
}

int kc_lab_host_wait(const struct kc_lab *lab, int host, uint64_t timeout_ms, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkHostInfo hi = KEEL__VMK__VMK_HOST_INFO__INIT;
	uint64_t end = kb_now_ns() + timeout_ms * 1000000ull;
	struct timespec ts = {0, 50 * 1000 * 1000};

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO;
	req.host_info = &hi;
	for (;;) {
		Keel__Vmk__VmkReply *rp;

		if (kc_lab_call(lab, host, 1000, &req, &rp, err) == 0) {
			kc_reply_free(rp);
			return 0;
		}
		if (kb_now_ns() > end)
			break;
		nanosleep(&ts, NULL);
	}
	kb_errmsg_wrapf(err, "host%d: vmkernel did not answer within %llu ms", host,
			(unsigned long long)timeout_ms);
	return KB_ETIMEOUT;
}
