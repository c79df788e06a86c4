/*
 * Unix stream sockets for the local control sockets.
 *
 * kb_unix_listen() replaces a stale socket file left by a process that died, but never
 * steals a path from a live listener: when bind finds the path taken it probes it with a
 * non-blocking connect, and only a socket file nobody accepts on (ECONNREFUSED) is
 * unlinked. A live listener, or a path that is not a socket, gives -EADDRINUSE.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/frame.h"

static int unix_addr(const char *path, struct sockaddr_un *sa, socklen_t *salen)
{
	size_t n = strlen(path);

	if (n == 0)
		return -EINVAL;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n + 1);
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/* 0 when path is gone or was a stale socket and has been unlinked; -EADDRINUSE when
 * something live (or not a socket) holds it; -errno otherwise. */
static int unlink_if_stale(const char *path, const struct sockaddr_un *sa, socklen_t salen)
{
	struct stat st;
	int fd, rc, err;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sa, salen);
	err = errno;
	close(fd);
	if (rc == 0 || err == EAGAIN) /* accepted, or a live listener with a full backlog */
		return -EADDRINUSE;
	if (err == ENOENT)
		return 0;
	if (err != ECONNREFUSED)
		return -err;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int kb_unix_listen(const char *path, int backlog)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int fd, rc;

	rc = unix_addr(path, &sa, &salen);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno != EADDRINUSE) {
			rc = -errno;
			goto close_fd;
		}
		rc = unlink_if_stale(path, &sa, salen);
		if (rc)
			goto close_fd;
		if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
			rc = -errno;
			goto close_fd;
		}
	}
	if (listen(fd, backlog) < 0) {
		rc = -errno;
		goto unlink_path;
	}
	return fd;

unlink_path:
	unlink(path);
close_fd:
	close(fd);
	return rc;
}

int kb_unix_connect(const char *path)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int fd, rc;

	rc = unix_addr(path, &sa, &salen);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno == EINTR)
			continue;
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}
