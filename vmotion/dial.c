/*
 * Connecting a vMotion or FT stream (wire.h): the endpoint "IP:PORT" (numeric only), a TCP
 * connection with a connect and a send timeout, and moving the calling thread into the
 * vMotion netstack's network namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vmotion/wire.h"

static int parse_endpoint(const char *ep, struct sockaddr_storage *sa, socklen_t *len,
			  struct kb_errmsg *err)
{
	char host[64];
	const char *colon = strrchr(ep, ':');
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;

	if (colon == NULL || colon == ep || (size_t)(colon - ep) >= sizeof(host) ||
	    colon[1] == '\0') {
		kb_errmsg_setf(err, "endpoint '%s' is not IP:PORT", ep);
		return KB_ECONFIG;
	}
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [IPv6]:PORT */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
		kb_errmsg_setf(err, "endpoint '%s' is not a numeric IP:PORT", ep);
		return KB_ECONFIG;
	}
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* Joins to the network namespace at path: this thread only. */
int vmo_enter_netns(const char *path, struct kb_errmsg *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rv = 0;

	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "opening network namespace %s: %s", path, kb_strerror(rv));
		return rv;
	}
	if (setns(fd, CLONE_NEWNET) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "entering network namespace %s: %s", path, kb_strerror(rv));
	}
	close(fd);
	return rv;
}

int vmo_endpoint_check(const char *endpoint, struct kb_errmsg *err)
{
	struct sockaddr_storage sa;
	socklen_t len;

	return parse_endpoint(endpoint, &sa, &len, err);
}

static void set_ms(int fd, int opt, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	(void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

int vmo_dial(const char *endpoint, unsigned connect_ms, unsigned send_ms, int *out,
	     struct kb_errmsg *err)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd, rv, one = 1;

	*out = -1;
	rv = parse_endpoint(endpoint, &sa, &len, err);
	if (rv < 0)
		return rv;
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "socket: %s", kb_strerror(rv));
		return rv;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_ms(fd, SO_SNDTIMEO, connect_ms);
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		rv = errno == EINPROGRESS ? KB_ETIMEOUT : -errno;
		kb_errmsg_setf(err, "connecting to %s: %s", endpoint, kb_strerror(rv));
		close(fd);
		return rv;
	}
	set_ms(fd, SO_SNDTIMEO, send_ms);
	*out = fd;
	return 0;
}
