/*
 * The namespaces of netstacks.
 *
 * defaultTcpipStack is the network namespace vmkernel runs in. Every other netstack is a
 * network namespace of its own, kept alive by a bind mount of its nsfs file on
 * <state dir>/netns/<name> (what `ip netns add` does under /run/netns). The files live in
 * the host's state dir, so several hosts on one machine (lab hosts, each with its own
 * state dir) never share a name, and the namespaces outlive a vmkernel restart along with
 * their interfaces. Processes that use a netstack (kernel/net/stack_socket.h) open the
 * file and setns() into it; they must share vmkernel's mount namespace to see the mount.
 *
 * A namespace is made on a short-lived thread: unshare(CLONE_NEWNET) changes only that
 * thread, which bind-mounts /proc/thread-self/ns/net on the file and ends. Work inside a
 * namespace (opening its rtnetlink socket, bringing loopback up) also runs on a thread
 * that setns()'d into it; a socket keeps the namespace it was made in, so the socket is
 * used afterwards from the calling thread. Removing unmounts (MNT_DETACH) and unlinks the
 * file; the namespace and the interfaces in it go when the last reference does.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/nsfs.h>

#include "kernel/net/net_internal.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

bool vmk__netstack_is_default(const char *name)
{
	return !name || !name[0] || strcmp(name, VMK_NET_DEFAULT_NETSTACK) == 0;
}

int vmk__netns_path(const char *dir, const char *name, char *out, size_t size)
{
	if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int vmk__netns_open(const char *path, int *out)
{
	struct statfs sfs;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatfs(fd, &sfs) < 0) {
		rv = -errno;
		goto err_fd;
	}
	if ((unsigned long)sfs.f_type != NSFS_MAGIC || ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		rv = KB_ENOTFOUND;
		goto err_fd;
	}
	*out = fd;
	return 0;

err_fd:
	close(fd);
	return rv;
}

struct ns_call {
	int nsfd; /* -1: unshare a new namespace */
	int (*fn)(void *arg);
	void *arg;
	int rv;
};

static void *ns_thread(void *p)
{
	struct ns_call *c = p;

	if (c->nsfd >= 0 ? setns(c->nsfd, CLONE_NEWNET) < 0 : unshare(CLONE_NEWNET) < 0)
		c->rv = -errno;
	else
		c->rv = c->fn(c->arg);
	return NULL;
}

static int run_thread(struct ns_call *c)
{
	pthread_t t;
	int rv;

	rv = pthread_create(&t, NULL, ns_thread, c);
	if (rv != 0)
		return -rv;
	pthread_join(t, NULL);
	return c->rv;
}

int vmk__netns_call(int nsfd, int (*fn)(void *arg), void *arg)
{
	struct ns_call c = {.nsfd = nsfd, .fn = fn, .arg = arg};

	return run_thread(&c);
}

static int bind_self(void *arg)
{
	const char *path = arg;
	char self[64];

	snprintf(self, sizeof(self), "/proc/self/task/%d/ns/net", (int)gettid());
	if (mount(self, path, NULL, MS_BIND, NULL) < 0)
		return -errno;
	return 0;
}

static int open_nl(void *arg)
{
	return vmk__nl_open(arg);
}

static int lo_up(int nsfd)
{
	struct vmk__nl nl;
	struct vmk__link l;
	int rv;

	rv = vmk__netns_call(nsfd, open_nl, &nl);
	if (rv < 0)
		return rv;
	rv = vmk__link_get(&nl, "lo", 0, &l);
	if (rv == 0 && !(l.flags & IFF_UP))
		rv = vmk__link_set_up(&nl, l.ifindex);
	vmk__nl_close(&nl);
	return rv;
}

int vmk__netns_ensure(const char *path, bool *created)
{
	struct ns_call c = {.nsfd = -1, .fn = bind_self, .arg = (void *)path};
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rv;

	*created = false;
	rv = vmk__netns_open(path, &fd);
	if (rv == -ENOENT || rv == KB_ENOTFOUND) {
		if (slash && (size_t)(slash - path) < sizeof(dir)) {
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return -errno;
		}
		fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
		if (fd < 0)
			return -errno;
		close(fd);
		rv = run_thread(&c);
		if (rv < 0)
			return rv;
		*created = true;
		rv = vmk__netns_open(path, &fd);
	}
	if (rv < 0)
		return rv;
	rv = lo_up(fd);
	close(fd);
	return rv;
}

int vmk__netns_remove(const char *path)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int vmk__stack_open(struct vmk_net *net, const char *name, bool ensure, struct vmk__stack *st,
		    struct kb_errmsg *err)
{
	char path[4096];
	bool created;
	int rv;

	memset(st, 0, sizeof(*st));
	st->nsfd = -1;
	st->own.fd = -1;
	if (vmk__netstack_is_default(name)) {
		st->nl = net->nl;
		return 0;
	}
	rv = vmk__netns_path(net->netns_dir, name, path, sizeof(path));
	if (rv == 0 && ensure)
		rv = vmk__netns_ensure(path, &created);
	if (rv == 0)
		rv = vmk__netns_open(path, &st->nsfd);
	if (rv == 0)
		rv = vmk__netns_call(st->nsfd, open_nl, &st->own);
	if (rv < 0) {
		kb_errmsg_setf(err, "netstack %s (namespace %s): %s", name, path,
			       rv == KB_ENOTFOUND ? "not a mounted network namespace"
						  : kb_strerror(rv));
		if (st->nsfd >= 0)
			close(st->nsfd);
		st->nsfd = -1;
		return rv;
	}
	st->nl = &st->own;
	return 0;
}

void vmk__stack_close(struct vmk__stack *st)
{
	if (st->nl == &st->own)
		vmk__nl_close(&st->own);
	if (st->nsfd >= 0)
		close(st->nsfd);
	st->nl = NULL;
	st->nsfd = -1;
}
