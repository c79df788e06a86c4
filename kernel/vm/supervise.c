/*
 * Supervision of vmx processes: the loop thread watches each running VM's pidfd. When a
 * vmx ends and no power operation asked for it (a guest power-off, a vmx crash, a
 * SIGKILL), the VM is marked powered off with the reason in its last event and the
 * vmkernel log; nothing else on the host is disturbed. When a power operation is ending
 * the vmx it is told through vm->cond and does the release itself.
 *
 * Re-adoption: every running VM has a pid record <state>/run/<uuid>.pid (pid, process start
 * time, taps). At start vmkernel checks each record against /proc (same pid, same start
 * time, a vmx for this VM) and the vmx's control socket, and adopts the VM as powered on;
 * a stale record is cleaned up and the VM is powered off with an event saying so.
 *
 * A re-adopted vmx's cluster ownership (host, epoch, lock) is read back from its command
 * line (--fence-*), which is exactly what it fences on.
 *
 * Migrations (migrate.c): a source vmx ends with status 4 once the destination runs the
 * guest ("migrated away": its lock is the destination's now, so it is never released
 * here), an incoming vmx with 5 when its migration failed. migrate.c waits for both
 * itself; the loop only reports them (an incoming VM is never powered off here).
 *
 * Pid record format (text, one "key value" per line): pid N / start T (field 22 of
 * /proc/PID/stat) / tap NAME (one line per NIC) / incoming 1 (the vmx of an incoming
 * migration). Replaced atomically (lib/file.h).
 *
 * An incoming migration does not survive vmkernel: the thread that would finish or undo it
 * is gone. At start, a record marked incoming (of a VM registered here, or of one that was
 * registered only for the migration and so is in no inventory) gets its vmx killed and its
 * taps, cgroup, sockets and record removed; the source keeps the VM (its stream breaks).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/vm/vm.h"
#include "kernel/vm/world.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/time.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long t = 0;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	if (p == NULL)
		return 0;
	/* after ")": field 3 (state) ... field 22 (starttime) */
	for (int field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p != NULL)
		t = strtoull(p + 1, NULL, 10);
	return t;
}

int vmk__pidfile_write(struct vmk_vm *vm)
{
	char path[PATH_MAX], text[80 + VMK_MAX_NICS * sizeof("tap \n") + sizeof(vm->taps)];
	struct kb_errmsg err = {{0}}; /* the caller reports the code only */
	size_t n;

	vmk_vm_pidfile_path(vm, path, sizeof(path));
	n = (size_t)snprintf(text, sizeof(text), "pid %d\nstart %llu\n%s", (int)vm->pid,
			     proc_start_time(vm->pid),
			     vm->power == VMK_INCOMING ? "incoming 1\n" : "");
	for (int i = 0; i < vm->nr_taps && n < sizeof(text); i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "tap %s\n", vm->taps[i]);
	if (n >= sizeof(text))
		return -EOVERFLOW; /* cannot happen: text has room for every tap */
	return kb_file_write_atomic(path, text, n, 0644, &err);
}

static void describe_exit(struct vmk_vm *vm, char *out, size_t size)
{
	char tail[160];

	vmk__vmx_log_tail(vm, tail, sizeof(tail));
	if (vm->own.fenced &&
	    (vm->exit_code == 3 || (vm->exit_code == INT_MIN && strstr(tail, "fenced") != NULL)))
		snprintf(out, size, "fenced: lost its lease or its lock moved (%s)", tail);
	else if (vm->exit_code == 0)
		snprintf(out, size, "guest powered off");
	else if (vm->exit_code == 4)
		snprintf(out, size, "migrated away: the guest runs on another host (%s)", tail);
	else if (vm->exit_code == 5)
		snprintf(out, size, "incoming migration failed: %s", tail);
	else if (vm->exit_code > 0)
		snprintf(out, size, "vmx stopped with status %d: %s", vm->exit_code, tail);
	else if (vm->exit_code == INT_MIN)
		snprintf(out, size, "vmx ended: %s", tail);
	else
		snprintf(out, size, "vmx killed by signal %d (%s)", -vm->exit_code,
			 strsignal(-vm->exit_code));
}

/* A poll handle and the pidfd it watches, which must outlive the handle's close. */
struct watch {
	uv_poll_t poll;
	int fd;
};

static void on_closed(uv_handle_t *h)
{
	struct watch *w = kb_container_of((uv_poll_t *)h, struct watch, poll);

	close(w->fd);
	kb_free(w);
}

static void on_exit_event(uv_poll_t *p, int status, int events)
{
	struct vmk_vm *vm = p->data;
	siginfo_t si;
	int code = INT_MIN;

	memset(&si, 0, sizeof(si));
	if (vm->child &&
	    syscall(SYS_waitid, P_PIDFD, vm->pidfd, &si, WEXITED | WNOHANG, NULL) == 0 &&
	    si.si_pid != 0)
		code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
	uv_poll_stop(p);
	uv_close((uv_handle_t *)p, on_closed);

	pthread_mutex_lock(&vm->lock);
	vm->pidfd = -1; /* closed with the handle (on_closed) */
	vm->poll = NULL;
	vm->exit_code = code;
	vm->exited = true;
	pthread_cond_broadcast(&vm->cond);
	if (!vm->expect_exit && vm->power == VMK_POWERED_ON) {
		char event[256];
		describe_exit(vm, event, sizeof(event));
		kb_log(vm->host->log, code == 0 ? KB_LOG_INFO : KB_LOG_WARN, "VM %s: %s",
		       vm->cfg.name, event);
		if (code == 4) /* the lock names the destination at a higher epoch now */
			memset(&vm->own, 0, sizeof(vm->own));
		vmk__owner_after_exit(vm);
		vmk__vm_release(vm, VMK_POWERED_OFF, event);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vmk__supervise_stop_all(struct vmk_host *h)
{
	struct kb_list *pos;

	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);
		pthread_mutex_lock(&vm->lock);
		if (vm->poll != NULL) {
			uv_poll_stop(vm->poll);
			uv_close((uv_handle_t *)vm->poll, on_closed);
			vm->poll = NULL;
			vm->pidfd = -1; /* the vmx keeps running; the next vmkernel adopts it */
		}
		pthread_mutex_unlock(&vm->lock);
	}
	pthread_mutex_unlock(&h->lock);
}

void vmk__supervise_watch(struct vmk_vm *vm)
{
	struct vmk_host *h = vm->host;

	pthread_mutex_lock(&h->lock);
	kb_list_add_tail(&h->watch_q, &vm->watch_link);
	pthread_mutex_unlock(&h->lock);
	uv_async_send(&h->wake);
}

void vmk__supervise_run_queue(struct vmk_host *h)
{
	for (;;) {
		struct vmk_vm *vm = NULL;
		pthread_mutex_lock(&h->lock);
		if (!kb_list_empty(&h->watch_q)) {
			vm = kb_list_entry(h->watch_q.next, struct vmk_vm, watch_link);
			kb_list_del(&vm->watch_link);
		}
		pthread_mutex_unlock(&h->lock);
		if (vm == NULL)
			return;
		pthread_mutex_lock(&vm->lock);
		struct watch *w = kb_calloc(1, sizeof(*w));
		if (w != NULL && vm->pidfd >= 0 && uv_poll_init(h->loop, &w->poll, vm->pidfd) == 0) {
			w->fd = vm->pidfd;
			w->poll.data = vm;
			vm->poll = &w->poll;
			uv_poll_start(&w->poll, UV_READABLE, on_exit_event);
		} else {
			kb_free(w);
			kb_log(h->log, KB_LOG_ERROR, "VM %s: cannot watch its vmx", vm->cfg.name);
		}
		pthread_mutex_unlock(&vm->lock);
	}
}

int vmk__vmx_wait_exit(struct vmk_vm *vm, int timeout_ms)
{
	uint64_t deadline = kb_now_ns() + (uint64_t)timeout_ms * KB_NSEC_PER_MSEC;

	while (!vm->exited && vm->pidfd >= 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t now = kb_now_ns();
		if (now >= deadline)
			return KB_ETIMEOUT;
		uint64_t abs =
		    (uint64_t)ts.tv_sec * KB_NSEC_PER_SEC + (uint64_t)ts.tv_nsec + (deadline - now);
		ts.tv_sec = (time_t)(abs / KB_NSEC_PER_SEC);
		ts.tv_nsec = (long)(abs % KB_NSEC_PER_SEC);
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	return 0;
}

/* Kills the process behind pfd and waits (at most 2 s) until it is gone. */
static void kill_wait(int pfd)
{
	struct pollfd p = {.fd = pfd, .events = POLLIN};

	syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
	poll(&p, 1, 2000);
}

/* Re-adoption of one VM at start; vm->lock not needed yet (the loop is not running).
 * orphan: a VM of no inventory, whose record is acted on only when marked incoming. */
static void adopt(struct vmk_host *h, struct vmk_vm *vm, bool orphan)
{
	char path[PATH_MAX], key[16], val[PATH_MAX], ctl[PATH_MAX];
	unsigned long long start = 0;
	bool incoming = false;
	pid_t pid = 0;
	FILE *f;

	vmk_vm_pidfile_path(vm, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fscanf(f, "%15s %4095s", key, val) == 2) {
		if (strcmp(key, "pid") == 0)
			pid = (pid_t)atoi(val);
		else if (strcmp(key, "start") == 0)
			start = strtoull(val, NULL, 10);
		else if (strcmp(key, "incoming") == 0)
			incoming = true;
		else if (strcmp(key, "tap") == 0 && vm->nr_taps < VMK_MAX_NICS)
			snprintf(vm->taps[vm->nr_taps++], sizeof(vm->taps[0]), "%.15s", val);
	}
	fclose(f);
	if (orphan && !incoming)
		return;

	int pfd = pid > 0 ? vmk__pidfd_open(pid) : -ESRCH;
	bool same = pfd >= 0 && start != 0 && proc_start_time(pid) == start;
	vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
	if (same) {
		char cmd[8192];
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, cmd, sizeof(cmd) - 1) : -1;
		if (fd >= 0)
			close(fd);
		same = false;
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(cmd + i) + 1) {
			cmd[n] = '\0';
			if (strcmp(cmd + i, ctl) == 0)
				same = true;
		}
		/* the cluster ownership it runs at: --fence-host H --fence-epoch E ... */
		if (same && !incoming)
			vmk__owner_from_cmdline(vm, cmd, (size_t)n);
	}
	if (incoming) {
		/* nothing here can finish or undo its migration any more */
		if (same) {
			kb_log(h->log, KB_LOG_WARN,
			       "VM %s: an incoming migration was under way when vmkernel stopped: "
			       "ending its vmx (pid %d)",
			       vm->cfg.name, (int)pid);
			kill_wait(pfd);
		}
		if (pfd >= 0)
			close(pfd);
		vm->pidfd = -1;
		vm->pid = 0;
		vm->power = VMK_POWERED_ON; /* so release cleans up what the record names */
		vmk__vm_release(vm, VMK_POWERED_OFF,
				"incoming migration ended: vmkernel stopped during it");
		unlink(ctl);
		vmk_vm_console_path(vm, path, sizeof(path));
		unlink(path);
		kb_log(h->log, KB_LOG_WARN, "VM %s: %s%s", vm->cfg.name, vm->last_event,
		       orphan ? " (it was registered here only for the migration)" : "");
		return;
	}
	if (same) {
		vm->pid = pid;
		vm->pidfd = pfd;
		vm->child = false;
		struct kb_errmsg err = {{0}};
		if (vmk__vmx_wait_ready(vm, 2000, &err) == 0) {
			vm->power = VMK_POWERED_ON;
			vm->powered_on_ns = kb_now_ns();
			snprintf(vm->last_event, sizeof(vm->last_event),
				 "re-adopted running vmx (pid %d) at vmkernel start", (int)pid);
			kb_log(h->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, vm->last_event);
			vmk__supervise_watch(vm);
			return;
		}
		kb_log(h->log, KB_LOG_WARN, "VM %s: vmx pid %d does not answer (%s): killing it",
		       vm->cfg.name, (int)pid, err.msg);
		syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
	}
	if (pfd >= 0)
		close(pfd);
	vm->pidfd = -1;
	vm->pid = 0;
	vm->power = VMK_POWERED_ON; /* so release cleans up what the record names */
	vmk__vm_release(vm, VMK_POWERED_OFF, "vmx was gone when vmkernel started");
	kb_log(h->log, KB_LOG_WARN, "VM %s: %s", vm->cfg.name, vm->last_event);
	vmk__owner_release_orphan(vm);
}

/* Pid records of VMs in no inventory: those of incoming migrations (the VM registered only
 * for it) are ended; others are left alone. */
static void adopt_orphans(struct vmk_host *h)
{
	DIR *d = opendir(h->run_dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		struct vmk_vm *vm;

		if (n <= 4 || n - 4 > VMK_UUID_LEN || strcmp(e->d_name + n - 4, ".pid") != 0)
			continue;
		vm = vmk__vm_alloc(h);
		if (vm == NULL)
			break;
		snprintf(vm->cfg.uuid, sizeof(vm->cfg.uuid), "%.*s", (int)(n - 4), e->d_name);
		snprintf(vm->cfg.name, sizeof(vm->cfg.name), "%s", vm->cfg.uuid);
		if (vmk_vm_find(h, vm->cfg.uuid) == NULL)
			adopt(h, vm, true);
		vmk__vm_free(vm);
	}
	closedir(d);
}

void vmk_vm_adopt_all(struct vmk_host *h)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &h->vms) adopt(h, kb_list_entry(pos, struct vmk_vm, link), false);
	adopt_orphans(h);
}
