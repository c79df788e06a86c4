/*
 * Starting a VM's world: fork and exec one vmx in its own session (so it outlives a
 * vmkernel restart and a signal to vmkernel's process group), with its output appended
 * to vmx.log in the VM directory, placed in the VM's cgroup before it runs a single
 * instruction of its own, and watched through a pidfd.
 *
 * The child waits on a pipe until the parent has moved it into its cgroup, then execs.
 * Between fork and exec the child calls only async-signal-safe functions. A migration's
 * destination vmx inherits its listening sockets (vm->inherit_fds): they are close-on-exec
 * in vmkernel, so no other child ever gets them, and only this child clears the flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/vm/vm.h"
#include "kernel/vm/world.h"
#include "lib/time.h"

int vmk__pidfd_open(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

static void tail_of(const char *path, char *out, size_t size)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;

	out[0] = '\0';
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
	n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	char *last = strrchr(buf, '\n');
	snprintf(out, size, "%s", last ? last + 1 : buf);
}

void vmk__vmx_log_tail(const struct vmk_vm *vm, char *out, size_t size)
{
	char path[PATH_MAX];

	vmk_vm_file_path(vm, "vmx.log", path, sizeof(path));
	tail_of(path, out, size);
}

int vmk__world_spawn(struct vmk_vm *vm, char *const argv[], const struct vmk_world_hooks *hooks,
		     struct kb_errmsg *err)
{
	char log_path[PATH_MAX];
	int gate[2], logfd, nullfd, rv;
	pid_t pid;

	vmk_vm_file_path(vm, "vmx.log", log_path, sizeof(log_path));
	logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "opening %s: %s", log_path, kb_strerror(rv));
		return rv;
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0 || pipe2(gate, O_CLOEXEC) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "preparing the vmx process: %s", kb_strerror(rv));
		goto out_fds;
	}
	pid = fork();
	if (pid < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "fork: %s", kb_strerror(rv));
		close(gate[0]);
		close(gate[1]);
		goto out_fds;
	}
	if (pid == 0) {
		char go;
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		close(gate[1]);
		for (int i = 0; i < vm->nr_inherit_fds; i++)
			if (fcntl(vm->inherit_fds[i], F_SETFD, 0) < 0)
				_exit(125);
		if (read(gate[0], &go, 1) != 1)
			_exit(126); /* the parent gave up on us */
		execv(argv[0], argv);
		_exit(127);
	}
	close(gate[0]);
	rv = hooks && hooks->attach ? hooks->attach(hooks->arg, pid, err) : 0;
	if (rv < 0) {
		close(gate[1]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out_fds;
	}
	if (write(gate[1], "g", 1) != 1) {
		/* cannot happen short of the child dying; the wait below reports it */
	}
	close(gate[1]);
	int pfd = vmk__pidfd_open(pid);
	if (pfd < 0) {
		rv = pfd;
		kb_errmsg_setf(err, "pidfd_open: %s", kb_strerror(rv));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out_fds;
	}
	vm->pid = pid;
	vm->pidfd = pfd;
	vm->child = true;
	rv = 0;
out_fds:
	if (nullfd >= 0)
		close(nullfd);
	close(logfd);
	return rv;
}

int vmk__vmx_wait_ready(struct vmk_vm *vm, int timeout_ms, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxStatus st = KEEL__VMK__VMX_STATUS__INIT;
	uint64_t deadline = kb_now_ns() + (uint64_t)timeout_ms * KB_NSEC_PER_MSEC;
	char ctl[PATH_MAX];

	vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_STATUS;
	rq.status = &st;
	for (;;) {
		struct pollfd p = {.fd = vm->pidfd, .events = POLLIN};
		if (poll(&p, 1, 0) == 1) {
			char tail[200];
			vmk__vmx_log_tail(vm, tail, sizeof(tail));
			kb_errmsg_setf(err, "vmx exited while starting: %s", tail);
			return KB_ESTATE;
		}
		Keel__Vmk__VmxReply *rp = NULL;
		struct kb_errmsg e2 = {{0}};
		if (access(ctl, F_OK) == 0 && vmk_vmx_call(ctl, &rq, &rp, 1000, &e2) == 0) {
			keel__vmk__vmx_reply__free_unpacked(rp, NULL);
			return 0;
		}
		if (rp != NULL)
			keel__vmk__vmx_reply__free_unpacked(rp, NULL);
		if (kb_now_ns() > deadline) {
			kb_errmsg_setf(err, "vmx did not open its control socket in %d ms",
				       timeout_ms);
			return KB_ETIMEOUT;
		}
		kb_sleep_ns(2 * KB_NSEC_PER_MSEC);
	}
}
