/*
 * Worlds (kernel/vm/spawn.c, supervise.c): the processes vmkernel starts and watches.
 */
#ifndef VMK_WORLD_H
#define VMK_WORLD_H

#include <sys/types.h>

#include "kernel/vm/vm.h"

struct vmk_world_hooks {
	/* Called in the parent after fork, before the child may exec: place it in its
	 * cgroup. A failure kills the child and fails the spawn. */
	int (*attach)(void *arg, pid_t pid, struct kb_errmsg *err);
	void *arg;
};

int vmk__pidfd_open(pid_t pid);
/* Forks and execs argv[0] for vm, sets vm->pid, pidfd and child. */
int vmk__world_spawn(struct vmk_vm *vm, char *const argv[], const struct vmk_world_hooks *hooks,
		     struct kb_errmsg *err);
/* Waits until the VM's vmx answers on its control socket, or fails if it exits. */
int vmk__vmx_wait_ready(struct vmk_vm *vm, int timeout_ms, struct kb_errmsg *err);
/* The last line of the VM's vmx.log. */
void vmk__vmx_log_tail(const struct vmk_vm *vm, char *out, size_t size);

#endif
