/*
 * Tests for the Unix socket helpers in lib/frame.h: listen/connect/accept with a frame
 * each way, close-on-exec, replacing a stale socket file, refusing to take a live or
 * non-socket path, and bad paths. Each test works in its own temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/frame.h"

struct tmp {
	char dir[64];
	char sock[PATH_MAX];
};

static int setup_dir(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/keel-unix-XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	snprintf(t->sock, sizeof(t->sock), "%s/ctl.sock", t->dir);
	*state = t;
	return 0;
}

static int teardown_dir(void **state)
{
	struct tmp *t = *state;

	unlink(t->sock);
	rmdir(t->dir);
	free(t);
	return 0;
}

static void assert_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	assert_true(flags >= 0);
	assert_true(flags & FD_CLOEXEC);
}

static void test_roundtrip(void **state)
{
	struct tmp *t = *state;
	int lfd, cfd, sfd;
	struct kb_buf b;
	struct stat st;

	lfd = kb_unix_listen(t->sock, 8);
	assert_true(lfd >= 0);
	assert_cloexec(lfd);
	assert_int_equal(stat(t->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	cfd = kb_unix_connect(t->sock);
	assert_true(cfd >= 0);
	assert_cloexec(cfd);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(sfd >= 0);

	kb_buf_init(&b, 0);
	assert_int_equal(kb_frame_send(cfd, "ping", 4), 0);
	assert_int_equal(kb_frame_recv(sfd, &b, 16), 0);
	assert_memory_equal(b.data, "ping", 4);
	assert_int_equal(kb_frame_send(sfd, "pong!", 5), 0);
	assert_int_equal(kb_frame_recv(cfd, &b, 16), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "pong!", 5);
	close(cfd);
	assert_int_equal(kb_frame_recv(sfd, &b, 16), -EPIPE);
	kb_buf_close(&b);
	close(sfd);
	close(lfd);
}

static void test_stale_path_replaced(void **state)
{
	struct tmp *t = *state;
	int lfd, cfd;

	/* A listener that went away without unlinking leaves a stale socket file. */
	lfd = kb_unix_listen(t->sock, 1);
	assert_true(lfd >= 0);
	close(lfd);
	assert_int_equal(access(t->sock, F_OK), 0);
	assert_int_equal(kb_unix_connect(t->sock), -ECONNREFUSED);

	lfd = kb_unix_listen(t->sock, 1);
	assert_true(lfd >= 0);
	cfd = kb_unix_connect(t->sock);
	assert_true(cfd >= 0);
	close(cfd);
	close(lfd);
}

static void test_live_path_kept(void **state)
{
	struct tmp *t = *state;
	int lfd, cfd, sfd;

	lfd = kb_unix_listen(t->sock, 1);
	assert_true(lfd >= 0);
	assert_int_equal(kb_unix_listen(t->sock, 1), -EADDRINUSE);
	/* The first listener still owns the path. */
	cfd = kb_unix_connect(t->sock);
	assert_true(cfd >= 0);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(sfd >= 0);
	close(sfd);
	close(cfd);
	close(lfd);
}

static void test_not_a_socket_kept(void **state)
{
	struct tmp *t = *state;
	int fd = open(t->sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(kb_unix_listen(t->sock, 1), -EADDRINUSE);
	assert_int_equal(access(t->sock, F_OK), 0);
}

static void test_bad_paths(void **state)
{
	struct tmp *t = *state;
	char long_path[200];

	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(kb_unix_listen(long_path, 1), -ENAMETOOLONG);
	assert_int_equal(kb_unix_connect(long_path), -ENAMETOOLONG);
	assert_int_equal(kb_unix_listen("", 1), -EINVAL);
	assert_int_equal(kb_unix_connect(t->sock), -ENOENT);
	assert_int_equal(kb_unix_listen("/nonexistent-keel-dir/ctl.sock", 1), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_roundtrip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_stale_path_replaced, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_live_path_kept, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_not_a_socket_kept, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_bad_paths, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests_name("lib_unix", tests, NULL, NULL);
}
