/*
 * The event thread: one epoll loop for device file descriptors (tap, console clients).
 * Callbacks run on this thread; devices serialise against vCPU threads themselves.
 * An eventfd (ev_wake) stops the loop.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

struct ev_entry {
	int fd;
	vmm_event_cb cb;
	void *arg;
	struct ev_entry *next; /* all entries, freed at close */
};


int vmm_event_add(struct vmm_vm *vm, int fd, uint32_t events, vmm_event_cb cb, void *arg)
{
	struct ev_entry *e;
	struct epoll_event ev = {.events = events};

	if (vm->epfd < 0)
		return -EBADF;
	e = kb_calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->fd = fd;
	e->cb = cb;
	e->arg = arg;
	ev.data.ptr = e;
	if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int rv = -errno;
		kb_free(e);
		return rv;
	}
	pthread_mutex_lock(&vm->ev_lock);
	e->next = vm->ev_all;
	vm->ev_all = e;
	pthread_mutex_unlock(&vm->ev_lock);
	return 0;
}

int vmm_event_del(struct vmm_vm *vm, int fd)
{
	struct ev_entry *e;

	if (vm->epfd < 0)
		return -EBADF;
	if (epoll_ctl(vm->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
		return -errno;
	pthread_mutex_lock(&vm->ev_lock);
	for (e = vm->ev_all; e != NULL; e = e->next) {
		if (e->fd == fd)
			e->cb = NULL; /* stale events for it are ignored */
	}
	pthread_mutex_unlock(&vm->ev_lock);
	return 0;
}

static void *ev_thread(void *arg)
{
	struct vmm_vm *vm = arg;
	struct epoll_event evs[32];

	for (;;) {
		int n = epoll_wait(vm->epfd, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			kb_log(vm->log, KB_LOG_ERROR, "event loop: epoll_wait: %s",
			       kb_strerror(-errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct ev_entry *e = evs[i].data.ptr;
			if (e == NULL)
				return NULL; /* the wake eventfd */
			if (e->cb != NULL)
				e->cb(e->arg, e->fd, evs[i].events);
		}
	}
}

int vmm__event_init(struct vmm_vm *vm)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int rv;

	pthread_mutex_init(&vm->ev_lock, NULL);
	vm->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (vm->epfd < 0)
		return -errno;
	vm->ev_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->ev_wake < 0) {
		rv = -errno;
		goto err_ep;
	}
	if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, vm->ev_wake, &ev) < 0) {
		rv = -errno;
		goto err_wake;
	}
	rv = -pthread_create(&vm->ev_thread, NULL, ev_thread, vm);
	if (rv < 0)
		goto err_wake;
	vm->ev_started = true;
	return 0;

err_wake:
	close(vm->ev_wake);
	vm->ev_wake = -1;
err_ep:
	close(vm->epfd);
	vm->epfd = -1;
	return rv;
}

void vmm__event_close(struct vmm_vm *vm)
{
	struct ev_entry *e, *next;

	if (vm->ev_started) {
		uint64_t one = 1;
		if (write(vm->ev_wake, &one, sizeof(one)) < 0)
			kb_log(vm->log, KB_LOG_WARN, "event loop: wake: %s", kb_strerror(-errno));
		pthread_join(vm->ev_thread, NULL);
		vm->ev_started = false;
	}
	if (vm->ev_wake >= 0)
		close(vm->ev_wake);
	if (vm->epfd >= 0)
		close(vm->epfd);
	vm->ev_wake = vm->epfd = -1;
	pthread_mutex_lock(&vm->ev_lock);
	for (e = vm->ev_all; e != NULL; e = next) {
		next = e->next;
		kb_free(e);
	}
	vm->ev_all = NULL;
	pthread_mutex_unlock(&vm->ev_lock);
}
