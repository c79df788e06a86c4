/*
 * Tests for lib/nodeid.h: a first call makes <dir>/clusterd.id ("<decimal>\n", mode 0600)
 * and later calls return the same id; an id written by older code is read as it is;
 * damaged files (empty, zero, junk, too long, overflowing) are refused and left alone; a
 * symbolic link is refused; a missing directory fails cleanly; and creators racing in
 * separate processes (fork, released together) all end with the same id and leave no
 * temporary file behind. Every test works in its own temporary directory.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/nodeid.h"

#define RACERS 8
#define ROUNDS 40

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/keel-nodeid-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *id_path(char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, KB_NODE_ID_FILE);
	return out;
}

static void put(const char *text)
{
	char path[PATH_MAX];
	FILE *f = fopen(id_path(path), "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void slurp(char *out, size_t size)
{
	char path[PATH_MAX];
	FILE *f = fopen(id_path(path), "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* Number of directory entries other than "." and "..". */
static int entries(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	int n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

static void test_create_then_read(void **state)
{
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX], text[64], want[64];
	uint64_t a = 0, b = 0;
	bool created = false;
	struct stat st;

	assert_int_equal(kb_node_id_get(dir, &a, &created, &e), 0);
	assert_true(created);
	assert_true(a != 0);
	assert_int_equal(stat(id_path(path), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	slurp(text, sizeof(text));
	snprintf(want, sizeof(want), "%" PRIu64 "\n", a);
	assert_string_equal(text, want);
	assert_int_equal(entries(dir), 1); /* no temporary left */

	assert_int_equal(kb_node_id_get(dir, &b, &created, &e), 0);
	assert_false(created);
	assert_true(a == b);
	assert_int_equal(kb_node_id(dir, &b, &e), 0);
	assert_true(a == b);
}

static void test_existing_file(void **state)
{
	struct kb_errmsg e = {{0}};
	uint64_t id = 0;

	put("18446744073709551615\n"); /* UINT64_MAX, as an older clusterd may have written */
	assert_int_equal(kb_node_id(dir, &id, &e), 0);
	assert_true(id == UINT64_MAX);
	put("42"); /* no newline */
	assert_int_equal(kb_node_id(dir, &id, &e), 0);
	assert_true(id == 42);
}

static void test_damaged_files(void **state)
{
	static const char *bad[] = {
	    "",	     "\n",     "0\n",	"00\n",
	    "abc\n", "12a\n",  " 12\n", "+12\n",
	    "-1\n",  "12\n\n", "1 2\n", "18446744073709551616\n", /* UINT64_MAX + 1 */
	};
	struct kb_errmsg e = {{0}};
	char text[64];
	uint64_t id = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(bad[i]);
		assert_int_equal(kb_node_id(dir, &id, &e), KB_ECONFIG);
		assert_non_null(strstr(e.msg, "not a node id"));
		assert_true(id == 7);
		slurp(text, sizeof(text));
		assert_string_equal(text, bad[i]); /* never replaced */
	}
	put("123456789012345678901234567890123456789\n");
	assert_int_equal(kb_node_id(dir, &id, &e), KB_ETOOBIG);
	assert_true(id == 7);
}

static void test_symlink_and_missing_dir(void **state)
{
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX], target[PATH_MAX], missing[PATH_MAX];
	uint64_t id = 0;

	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	assert_int_equal(symlink(target, id_path(path)), 0);
	assert_int_equal(kb_node_id(dir, &id, &e), -ELOOP);
	assert_int_equal(access(target, F_OK), -1); /* nothing made through the link */

	snprintf(missing, sizeof(missing), "%s/no/such", dir);
	assert_true(kb_node_id(missing, &id, &e) == -ENOENT);
	assert_non_null(strstr(e.msg, missing));
}

/* RACERS processes wait on a pipe, then all call kb_node_id() at once; each writes its
 * result (id, and whether it made the file) to another pipe. */
static void race_once(void)
{
	int go[2], res[2];
	pid_t pids[RACERS];
	uint64_t ids[RACERS][2], file_id, creators = 0;
	char text[64];

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(res), 0);
	for (int i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct kb_errmsg e = {{0}};
			uint64_t id[2] = {0, 0};
			bool created = false;
			char c;

			close(go[1]);
			close(res[0]);
			if (read(go[0], &c, 1) != 0) /* released by the parent's close */
				_exit(2);
			if (kb_node_id_get(dir, &id[0], &created, &e) != 0)
				_exit(3);
			id[1] = created;
			_exit(write(res[1], id, sizeof(id)) == sizeof(id) ? 0 : 4);
		}
	}
	close(go[0]);
	close(res[1]);
	close(go[1]); /* go */
	for (int i = 0; i < RACERS; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	for (int i = 0; i < RACERS; i++)
		assert_int_equal(read(res[0], ids[i], sizeof(ids[i])), sizeof(ids[i]));
	close(res[0]);
	slurp(text, sizeof(text));
	file_id = strtoull(text, NULL, 10);
	for (int i = 0; i < RACERS; i++) {
		assert_true(ids[i][0] == file_id);
		creators += ids[i][1];
	}
	assert_true(creators == 1);	   /* exactly one made the file; the others read it */
	assert_int_equal(entries(dir), 1); /* only clusterd.id: no temporary left */
}

static void test_concurrent_creators(void **state)
{
	char path[PATH_MAX];

	for (int r = 0; r < ROUNDS; r++) {
		race_once();
		assert_int_equal(unlink(id_path(path)), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_then_read, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_existing_file, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_damaged_files, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_symlink_and_missing_dir, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_concurrent_creators, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
