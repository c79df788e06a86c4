/*
 * Sockets on the VMkernel adapter that carries a tag, in its netstack (stack_socket.h has
 * the contract). The configuration is read with the same parser vmkernel uses; a
 * netstack other than defaultTcpipStack is entered by a thread made for the call
 * (netns.c), which creates and binds the socket there and ends; the socket stays in that
 * namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel/net/net_internal.h"
#include "kernel/net/stack_socket.h"

int vmk_net_tagged_lookup(const char *state_dir, const char *tag, struct vmk_net_tagged *out,
			  struct kb_errmsg *err)
{
	struct vmk__net_conf *c;
	struct kb_errmsg scratch;
	char path[PATH_MAX];
	uint32_t bit;
	size_t i;
	int rv;

	err = err ? err : &scratch;
	memset(out, 0, sizeof(*out));
	rv = vmk__tag_parse(tag, &bit, err);
	if (rv < 0)
		return rv;
	if ((size_t)snprintf(path, sizeof(path), "%s/" VMK_NET_CONF_FILE, state_dir) >=
	    sizeof(path)) {
		kb_errmsg_setf(err, "%s: path too long", state_dir);
		return -ENAMETOOLONG;
	}
	rv = vmk__conf_load(path, &c, err);
	if (rv < 0)
		return rv;
	rv = KB_ENOTFOUND;
	for (i = 0; i < c->n_vmknics; i++) {
		const struct vmk__vmknic *v = &c->vmknics[i];

		if (!(v->tags & bit))
			continue;
		snprintf(out->vmknic, sizeof(out->vmknic), "%s", v->name);
		snprintf(out->netstack, sizeof(out->netstack), "%s", v->netstack);
		out->addr.sin_family = AF_INET;
		out->addr.sin_addr.s_addr = v->ip;
		out->prefix = v->prefix;
		rv = 0;
		break;
	}
	if (rv < 0)
		kb_errmsg_setf(err, "no VMkernel adapter carries the tag %s",
			       vmk__tag_names[__builtin_ctz(bit)]);
	vmk__conf_free(c);
	return rv;
}

struct make_socket {
	int type;
	struct sockaddr_in addr;
	int fd;
};

static int make_socket(void *arg)
{
	struct make_socket *m = arg;
	socklen_t len = sizeof(m->addr);
	int one = 1, rv, fd;

	fd = socket(AF_INET, m->type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (m->addr.sin_port && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err_fd;
	if (bind(fd, (struct sockaddr *)&m->addr, sizeof(m->addr)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&m->addr, &len) < 0)
		goto err_fd;
	m->fd = fd;
	return 0;

err_fd:
	rv = -errno;
	close(fd);
	return rv;
}

int vmk_net_tagged_socket(const char *state_dir, const char *tag, int type, uint16_t port,
			  struct sockaddr_in *bound, struct kb_errmsg *err)
{
	struct make_socket m = {.type = type, .fd = -1};
	struct vmk_net_tagged t;
	struct kb_errmsg scratch;
	char path[PATH_MAX], a[16];
	int nsfd, rv;

	err = err ? err : &scratch;
	rv = vmk_net_tagged_lookup(state_dir, tag, &t, err);
	if (rv < 0)
		return rv;
	m.addr = t.addr;
	m.addr.sin_port = htons(port);
	if (vmk__netstack_is_default(t.netstack)) {
		rv = make_socket(&m);
	} else {
		if ((size_t)snprintf(path, sizeof(path), "%s/" VMK_NET_NETNS_DIR "/%s", state_dir,
				     t.netstack) >= sizeof(path)) {
			kb_errmsg_setf(err, "%s: path too long", state_dir);
			return -ENAMETOOLONG;
		}
		rv = vmk__netns_open(path, &nsfd);
		if (rv < 0) {
			kb_errmsg_setf(err,
				       "netstack %s of %s: %s: %s (is this process in vmkernel's "
				       "mount namespace?)",
				       t.netstack, t.vmknic, path,
				       rv == KB_ENOTFOUND ? "not a mounted network namespace"
							  : kb_strerror(rv));
			return rv;
		}
		rv = vmk__netns_call(nsfd, make_socket, &m);
		close(nsfd);
	}
	if (rv < 0) {
		kb_errmsg_setf(err, "socket on %s (%s:%u, netstack %s): %s", t.vmknic,
			       vmk__ipv4_format(t.addr.sin_addr.s_addr, a), port, t.netstack,
			       kb_strerror(rv));
		return rv;
	}
	if (bound)
		*bound = m.addr;
	return m.fd;
}

int vmk_net_tagged_list(const char *state_dir, const char *tag, struct vmk_net_tagged *out,
			size_t max, size_t *n, struct kb_errmsg *err)
{
	struct vmk__net_conf *c;
	struct kb_errmsg scratch;
	char path[PATH_MAX];
	uint32_t bit;
	int rv;

	err = err ? err : &scratch;
	*n = 0;
	rv = vmk__tag_parse(tag, &bit, err);
	if (rv < 0)
		return rv;
	if ((size_t)snprintf(path, sizeof(path), "%s/" VMK_NET_CONF_FILE, state_dir) >=
	    sizeof(path)) {
		kb_errmsg_setf(err, "%s: path too long", state_dir);
		return -ENAMETOOLONG;
	}
	rv = vmk__conf_load(path, &c, err);
	if (rv < 0)
		return rv;
	for (size_t i = 0; i < c->n_vmknics; i++) {
		const struct vmk__vmknic *v = &c->vmknics[i];

		if (!(v->tags & bit))
			continue;
		if (*n < max) {
			struct vmk_net_tagged *t = &out[*n];
			memset(t, 0, sizeof(*t));
			snprintf(t->vmknic, sizeof(t->vmknic), "%s", v->name);
			snprintf(t->netstack, sizeof(t->netstack), "%s", v->netstack);
			t->addr.sin_family = AF_INET;
			t->addr.sin_addr.s_addr = v->ip;
			t->prefix = v->prefix;
		}
		(*n)++;
	}
	vmk__conf_free(c);
	return 0;
}

int vmk_net_adapter_socket(const char *state_dir, const struct vmk_net_tagged *t, int type,
			   uint16_t port, struct sockaddr_in *bound, struct kb_errmsg *err)
{
	struct make_socket m = {.type = type, .fd = -1};
	struct kb_errmsg scratch;
	char path[PATH_MAX], a[16];
	int nsfd, rv;

	err = err ? err : &scratch;
	m.addr = t->addr;
	m.addr.sin_port = htons(port);
	if (vmk__netstack_is_default(t->netstack)) {
		rv = make_socket(&m);
	} else {
		if ((size_t)snprintf(path, sizeof(path), "%s/" VMK_NET_NETNS_DIR "/%s", state_dir,
				     t->netstack) >= sizeof(path)) {
			kb_errmsg_setf(err, "%s: path too long", state_dir);
			return -ENAMETOOLONG;
		}
		rv = vmk__netns_open(path, &nsfd);
		if (rv < 0) {
			kb_errmsg_setf(err, "netstack %s of %s: %s: %s", t->netstack, t->vmknic,
				       path,
				       rv == KB_ENOTFOUND ? "not a mounted network namespace"
							  : kb_strerror(rv));
			return rv;
		}
		rv = vmk__netns_call(nsfd, make_socket, &m);
		close(nsfd);
	}
	if (rv < 0) {
		kb_errmsg_setf(err, "socket on %s (%s:%u, netstack %s): %s", t->vmknic,
			       vmk__ipv4_format(t->addr.sin_addr.s_addr, a), port, t->netstack,
			       kb_strerror(rv));
		return rv;
	}
	if (bound)
		*bound = m.addr;
	return m.fd;
}
