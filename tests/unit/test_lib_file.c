/*
 * Tests for lib/file.h. Atomic writes: a new file, a replaced one, the mode, a stale or
 * symlinked temporary, a symlink at the path itself, and failures before and during the
 * write (the temporary name taken by a directory, a rename onto a directory, a missing
 * directory, a name too long, a write cut short by RLIMIT_FSIZE) that leave the old file
 * as it was and no temporary behind. Bounded reads: exact limits, appending, refusal of
 * a symlink, a directory and a FIFO (without blocking), a missing file, a file larger
 * than fstat says (/proc), the buffer's own limit and out-of-memory, each leaving the
 * buffer at its previous length. Every test works in its own temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/heap.h"

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/keel-file-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir/name into out[PATH_MAX]. */
static char *at(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
	return out;
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Asserts that path is a regular file holding exactly text. */
static void assert_contents(const char *path, const char *text)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, (ssize_t)strlen(text));
	assert_memory_equal(buf, text, (size_t)n);
}

/* Asserts that dir holds exactly the n names given (no temporaries left). */
static void assert_entries(const char *const *names, int n)
{
	char p[PATH_MAX];
	int count = 0;
	FILE *ls;

	snprintf(p, sizeof(p), "ls -A '%s'", dir);
	ls = popen(p, "r");
	assert_non_null(ls);
	while (fgets(p, sizeof(p), ls) != NULL) {
		bool known = false;
		p[strcspn(p, "\n")] = 0;
		for (int i = 0; i < n; i++)
			known = known || strcmp(p, names[i]) == 0;
		if (!known)
			fail_msg("unexpected entry %s", p);
		count++;
	}
	pclose(ls);
	assert_int_equal(count, n);
}

/* ---- kb_file_write_atomic ------------------------------------------------------------- */

static void test_write_new_and_replace(void **state)
{
	static const char *const only[] = {"a.conf"};
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX], tmp[PATH_MAX], cwd[PATH_MAX];
	struct stat st;
	mode_t old = umask(022);

	at(p, "a.conf");
	assert_int_equal(kb_file_write_atomic(p, "one\n", 4, 0640, &err), 0);
	assert_contents(p, "one\n");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_entries(only, 1);

	/* Replacing: new contents, new mode (less the umask), still no temporary. */
	assert_int_equal(kb_file_write_atomic(p, "two\n", 4, 0666, &err), 0);
	assert_contents(p, "two\n");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_entries(only, 1);

	/* Empty contents. */
	assert_int_equal(kb_file_write_atomic(p, NULL, 0, 0600, &err), 0);
	assert_contents(p, "");

	/* A stale temporary from a crash is replaced. */
	put(at(tmp, "a.conf.tmp"), "stale");
	assert_int_equal(kb_file_write_atomic(p, "three\n", 6, 0600, &err), 0);
	assert_contents(p, "three\n");
	assert_entries(only, 1);

	/* A relative path: the directory to fsync is ".". */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	assert_int_equal(kb_file_write_atomic("a.conf", "four\n", 5, 0600, &err), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_contents(p, "four\n");
	umask(old);
}

static void test_write_symlinks(void **state)
{
	static const char *const after[] = {"a.conf", "target"};
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX], tmp[PATH_MAX], target[PATH_MAX];
	struct stat st;

	at(p, "a.conf");
	at(tmp, "a.conf.tmp");
	put(at(target, "target"), "target");

	/* A symlink as the temporary is removed, not followed. */
	assert_int_equal(symlink(target, tmp), 0);
	assert_int_equal(kb_file_write_atomic(p, "new", 3, 0600, &err), 0);
	assert_contents(p, "new");
	assert_contents(target, "target");
	assert_entries(after, 2);

	/* A symlink at the path itself is replaced by the new file; its target is untouched. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(kb_file_write_atomic(p, "newer", 5, 0600, &err), 0);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_contents(p, "newer");
	assert_contents(target, "target");
	assert_entries(after, 2);
}

static void test_write_failures_change_nothing(void **state)
{
	static const char *const with_tmp_dir[] = {"a.conf", "a.conf.tmp"};
	static const char *const only[] = {"a.conf", "sub"};
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX], tmp[PATH_MAX], sub[PATH_MAX], q[PATH_MAX];
	char *name;
	int rc;

	at(p, "a.conf");
	at(tmp, "a.conf.tmp");
	assert_int_equal(kb_file_write_atomic(p, "old", 3, 0600, &err), 0);

	/* The temporary name is taken by a directory: refused before anything is written. */
	assert_int_equal(mkdir(tmp, 0700), 0);
	rc = kb_file_write_atomic(p, "new", 3, 0600, &err);
	assert_true(rc < 0);
	assert_non_null(strstr(err.msg, "a.conf.tmp: "));
	assert_contents(p, "old");
	assert_entries(with_tmp_dir, 2);
	assert_int_equal(rmdir(tmp), 0);

	/* The rename fails (the path is a non-empty directory): the temporary is removed. */
	at(sub, "sub");
	assert_int_equal(mkdir(sub, 0700), 0);
	put(at(q, "sub/keep"), "keep");
	memset(&err, 0, sizeof(err));
	rc = kb_file_write_atomic(sub, "new", 3, 0600, &err);
	assert_true(rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST);
	assert_non_null(strstr(err.msg, "sub.tmp: write: "));
	assert_contents(q, "keep");
	assert_entries(only, 2);

	/* The directory does not exist. */
	assert_int_equal(kb_file_write_atomic(at(q, "none/a.conf"), "x", 1, 0600, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "none/a.conf.tmp: "));
	assert_entries(only, 2);

	/* A path whose temporary would not fit PATH_MAX. */
	name = malloc(PATH_MAX);
	memset(name, 'x', PATH_MAX - 3);
	name[0] = '/';
	name[PATH_MAX - 3] = 0;
	assert_int_equal(kb_file_write_atomic(name, "x", 1, 0600, &err), -ENAMETOOLONG);
	assert_int_equal(strncmp(err.msg, "/xxx", 4), 0);
	free(name);
	assert_contents(p, "old");
}

/* A write cut short (EFBIG under RLIMIT_FSIZE): the old file stays, no temporary is left. */
static void test_write_short_write(void **state)
{
	static const char *const only[] = {"a.conf"};
	struct kb_errmsg err = {{0}};
	struct rlimit old, small;
	char p[PATH_MAX];
	size_t len = 1 << 20;
	char *big = malloc(len);
	void (*prev)(int);

	memset(big, 'b', len);
	at(p, "a.conf");
	assert_int_equal(kb_file_write_atomic(p, "old", 3, 0600, &err), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 4096;
	prev = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	assert_int_equal(kb_file_write_atomic(p, big, len, 0600, &err), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	assert_non_null(strstr(err.msg, "a.conf.tmp: write: "));
	assert_contents(p, "old");
	assert_entries(only, 1);
	free(big);
}

/* ---- kb_file_read_small --------------------------------------------------------------- */

static void test_read_limits(void **state)
{
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX];
	struct kb_buf b;

	at(p, "f");
	put(p, "0123456789");
	kb_buf_init(&b, 0);

	/* Exactly max bytes is fine; the bytes are appended to what the buffer holds. */
	assert_int_equal(kb_buf_append(&b, "head:", 5), 0);
	assert_int_equal(kb_file_read_small(p, 10, &b, &err), 0);
	assert_int_equal(b.len, 15);
	assert_memory_equal(b.data, "head:0123456789", 15);

	/* One byte over: refused before reading, the buffer keeps its length. */
	assert_int_equal(kb_file_read_small(p, 9, &b, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "/f: file is 10 bytes, at most 9 allowed"));
	assert_int_equal(b.len, 15);

	/* An empty file. */
	put(p, "");
	kb_buf_reset(&b);
	assert_int_equal(kb_file_read_small(p, 0, &b, &err), 0);
	assert_int_equal(b.len, 0);
	kb_buf_close(&b);

	/* The buffer's own limit. */
	put(p, "0123456789");
	kb_buf_init(&b, 4);
	assert_int_equal(kb_file_read_small(p, 100, &b, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "/f: "));
	assert_int_equal(b.len, 0);
	kb_buf_close(&b);
}

static void test_read_refusals(void **state)
{
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX], link[PATH_MAX];
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_buf_append(&b, "keep", 4), 0);

	/* A symlink, even to a good file. */
	put(at(p, "f"), "data");
	assert_int_equal(symlink(p, at(link, "link")), 0);
	assert_int_equal(kb_file_read_small(link, 100, &b, &err), -ELOOP);
	assert_non_null(strstr(err.msg, "/link: is a symbolic link"));
	assert_int_equal(b.len, 4);

	/* A directory and a FIFO with no writer: refused, and the open does not block. */
	assert_int_equal(kb_file_read_small(dir, 100, &b, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, ": not a regular file"));
	assert_int_equal(mkfifo(at(p, "fifo"), 0600), 0);
	assert_int_equal(kb_file_read_small(p, 100, &b, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "/fifo: not a regular file"));
	assert_int_equal(kb_file_read_small("/dev/null", 100, &b, &err), KB_ECONFIG);
	assert_int_equal(b.len, 4);

	/* Missing. */
	assert_int_equal(kb_file_read_small(at(p, "none"), 100, &b, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/none: "));
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "keep", 4);
	kb_buf_close(&b);
}

/* /proc files say 0 bytes: the buffer grows as they are read, and max still holds. */
static void test_read_larger_than_stat(void **state)
{
	struct kb_errmsg err = {{0}};
	struct kb_buf b;

	kb_buf_init(&b, 0);
	assert_int_equal(kb_file_read_small("/proc/self/status", 1 << 20, &b, &err), 0);
	assert_true(b.len > 64);
	assert_memory_equal(b.data, "Name:", 5);
	kb_buf_reset(&b);
	assert_int_equal(kb_file_read_small("/proc/self/status", 64, &b, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "/proc/self/status: file grew past 64 bytes"));
	assert_int_equal(b.len, 0);
	kb_buf_close(&b);
}

static void test_read_oom(void **state)
{
	struct kb_errmsg err = {{0}};
	char p[PATH_MAX];
	struct kb_buf b;

	put(at(p, "f"), "0123456789");
	kb_buf_init(&b, 0);
	kb_heap_fail_after(0, 1);
	assert_int_equal(kb_file_read_small(p, 100, &b, &err), -ENOMEM);
	kb_heap_fail_reset();
	assert_non_null(strstr(err.msg, "/f: out of memory"));
	assert_int_equal(b.len, 0);
	assert_int_equal(kb_file_read_small(p, 100, &b, &err), 0);
	assert_int_equal(b.len, 10);
	kb_buf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_new_and_replace, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_write_symlinks, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_write_failures_change_nothing, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_write_short_write, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_read_limits, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_read_refusals, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_read_larger_than_stat, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_read_oom, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
