/*
 * vmkernel start-up: the state dir layout, one vmkernel per state dir (an flock on
 * <state>/vmkernel.lock), the log (<state>/vmkernel.log plus the in-memory ring), and the
 * subsystems in dependency order. The host id (<state>/clusterd.id, made at first start and
 * shared with clusterd) names the host's heartbeat records on shared datastores.
 *
 * State dir layout: vmkernel.sock, vmkernel.lock, vmkernel.log, clusterd.id (the host id),
 * inventory.conf (registered VMs), datastores.conf, network.conf, datastore1/ (the default
 * local datastore), run/ (vmx control and console sockets and pid records of running VMs).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/core/core.h"
#include "kernel/core/subsys.h"
#include "kernel/vm/vm.h"
#include "lib/nodeid.h"
#include "lib/time.h"

static struct kb_logger logger;
static int lock_fd = -1, log_fd = -1;

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int vmk_core_init(struct vmk_host *h, const char *state, int level, bool to_stderr,
		  struct kb_errmsg *err)
{
	char path[PATH_MAX];
	bool created;
	int rv;

	if (state[0] != '/') {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return -errno;
		snprintf(h->state_dir, sizeof(h->state_dir), "%s/%s", cwd, state);
	} else {
		snprintf(h->state_dir, sizeof(h->state_dir), "%s", state);
	}
	snprintf(h->run_dir, sizeof(h->run_dir), "%s/run", h->state_dir);
	snprintf(h->socket_path, sizeof(h->socket_path), "%s/vmkernel.sock", h->state_dir);
	snprintf(h->cluster_sock, sizeof(h->cluster_sock), "%s/clusterd.sock", h->state_dir);
	if (strlen(h->socket_path) >= 100) {
		kb_errmsg_setf(err, "state dir path too long for a Unix socket: %s", h->state_dir);
		return KB_ECONFIG;
	}
	rv = mkdir_p(h->state_dir, 0700);
	rv = rv ?: mkdir_p(h->run_dir, 0700);
	if (rv < 0) {
		kb_errmsg_setf(err, "creating %s: %s", h->state_dir, kb_strerror(rv));
		return rv;
	}
	snprintf(path, sizeof(path), "%s/vmkernel.lock", h->state_dir);
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "another vmkernel runs on %s (%s)", h->state_dir,
			       kb_strerror(rv));
		return rv;
	}
	snprintf(path, sizeof(path), "%s/vmkernel.log", h->state_dir);
	log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "opening %s: %s", path, kb_strerror(rv));
		return rv;
	}
	kb_log_init(&logger, "vmkernel", level, log_fd);
	if (to_stderr)
		kb_log_tee(&logger, 2);
	kb_log_init(&kb_log_default, "vmkernel", level, log_fd);
	h->log = &logger;
	h->started_ns = kb_now_ns();
	pthread_mutex_init(&h->lock, NULL);
	kb_list_init(&h->vms);
	kb_list_init(&h->watch_q);
	rv = kb_node_id_get(h->state_dir, &h->host_id, &created, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "host id");
		return rv;
	}
	kb_log(h->log, KB_LOG_INFO, "host id %016" PRIx64 "%s", h->host_id,
	       created ? " (new)" : "");
	if (access(h->vmx_bin, X_OK) < 0)
		kb_log(h->log, KB_LOG_WARN, "vmx binary %s is not executable: VMs cannot power on",
		       h->vmx_bin);

	rv = vmk_subsys_init(h, err);
	if (rv < 0)
		return rv;
	rv = vmk_vm_inventory_load(h);
	if (rv < 0) {
		kb_errmsg_setf(err, "loading the VM inventory: %s", kb_strerror(rv));
		return rv;
	}
	kb_log(h->log, KB_LOG_INFO, "vmkernel %s starting on %s", VMK_VERSION, h->state_dir);
	return 0;
}

void vmk_core_close(struct vmk_host *h)
{
	vmk_subsys_close(h);
	kb_log(h->log, KB_LOG_INFO, "vmkernel stopped");
	if (log_fd >= 0)
		close(log_fd);
	if (lock_fd >= 0)
		close(lock_fd);
}
