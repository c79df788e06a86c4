/*
 * Tests for vmsyslogd's file following (kernel/syslog/tail.c), on real files in a temp
 * directory: the first set starts at the files' end, later files from their start; whole
 * lines only (a partial line waits for its newline); rotation by rename sends the rest of
 * the old file, then the new one; truncation starts again at 0; a file that appears later
 * is picked up; an overlong line is cut; inotify reports the directory's changes; places
 * saved and loaded across runs (a rewritten file starts at its end again).
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/syslog/tail.h"

struct got {
	char lines[64][256];
	char apps[64][64];
	int n;
	size_t last_len;
};

static void on_line(void *arg, const char *app, const char *line, size_t len)
{
	struct got *g = arg;

	assert_true(g->n < 64);
	snprintf(g->lines[g->n], sizeof(g->lines[0]), "%.*s", (int)len, line);
	snprintf(g->apps[g->n], sizeof(g->apps[0]), "%s", app);
	g->last_len = len;
	g->n++;
}

static void append(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

struct fixture {
	char dir[64];
	char a[128], b[128];
	struct vsl_tail t;
	struct got g;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/keel-tail-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->a, sizeof(f->a), "%s/vmkernel.log", f->dir);
	snprintf(f->b, sizeof(f->b), "%s/hostd.log", f->dir);
	assert_int_equal(vsl_tail_init(&f->t, on_line, &f->g), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vsl_tail_close(&f->t);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_follow(void **state)
{
	struct fixture *f = *state;
	struct vsl_tail_spec specs[] = {{f->a, "vmkernel"}, {f->b, "hostd"}};
	struct pollfd p = {.events = POLLIN};
	char rotated[160];

	append(f->a, "old line before the start\n");
	assert_int_equal(vsl_tail_set(&f->t, specs, 2, true), 0);
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 0); /* what was there is not sent again */

	append(f->a, "one\ntwo\r\nthr");
	p.fd = f->t.ifd;
	assert_int_equal(poll(&p, 1, 1000), 1); /* inotify saw the write */
	vsl_tail_events(&f->t);
	assert_int_equal(f->g.n, 2);
	assert_string_equal(f->g.lines[0], "one");
	assert_string_equal(f->g.lines[1], "two"); /* the CR goes */
	assert_string_equal(f->g.apps[1], "vmkernel");
	append(f->a, "ee\n\n");
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 3); /* empty lines are skipped */
	assert_string_equal(f->g.lines[2], "three");

	/* hostd.log did not exist at the start: read whole once it appears */
	append(f->b, "h1\nh2\n");
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 5);
	assert_string_equal(f->g.lines[3], "h1");
	assert_string_equal(f->g.apps[4], "hostd");

	/* rotation: the rest of the old file first, then the new one from its start */
	append(f->a, "last of old\n");
	snprintf(rotated, sizeof(rotated), "%s.1", f->a);
	assert_int_equal(rename(f->a, rotated), 0);
	append(f->a, "first of new\n");
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 7);
	assert_string_equal(f->g.lines[5], "last of old");
	assert_string_equal(f->g.lines[6], "first of new");
	assert_int_equal(f->t.rotations, 1);

	/* truncation: from 0 again */
	assert_int_equal(truncate(f->a, 0), 0);
	append(f->a, "after truncate\n");
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 8);
	assert_string_equal(f->g.lines[7], "after truncate");
	assert_int_equal(f->t.truncations, 1);

	/* a new set keeps the place of the files it keeps */
	struct vsl_tail_spec only_a[] = {{f->a, "vmkernel"}};
	assert_int_equal(vsl_tail_set(&f->t, only_a, 1, false), 0);
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 8);
	append(f->b, "not followed any more\n");
	append(f->a, "still followed\n");
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 9);
	assert_string_equal(f->g.lines[8], "still followed");
	assert_int_equal(f->t.lines, 9);
}

static void test_long_line(void **state)
{
	struct fixture *f = *state;
	struct vsl_tail_spec specs[] = {{f->a, "vmkernel"}};
	char *big = malloc(VSL_MSG_MAX + 101);

	assert_int_equal(vsl_tail_set(&f->t, specs, 1, false), 0);
	memset(big, 'x', VSL_MSG_MAX + 99);
	big[VSL_MSG_MAX + 99] = '\n';
	big[VSL_MSG_MAX + 100] = '\0';
	append(f->a, big);
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 2); /* cut at VSL_MSG_MAX, the rest is a line of its own */
	assert_int_equal(f->g.last_len, 99);
	free(big);
}

static void test_places(void **state)
{
	struct fixture *f = *state;
	struct vsl_tail_spec specs[] = {{f->a, "vmkernel"}, {f->b, "hostd"}};
	char pos[160];
	FILE *fp;

	snprintf(pos, sizeof(pos), "%s/places", f->dir);
	append(f->a, "before\n");
	append(f->b, "b before\n");
	assert_int_equal(vsl_tail_set(&f->t, specs, 2, true), 0);
	vsl_tail_poll(&f->t);
	append(f->a, "read\n");
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 1);
	assert_int_equal(vsl_tail_save(&f->t, pos), 0);
	vsl_tail_close(&f->t);

	/* written while nobody followed: a new run starts at the saved places */
	append(f->a, "while down\n");
	/* hostd.log rewritten (same inode, longer): the byte before its saved place changed,
	 * so it starts at its end, not in the middle of a line */
	assert_int_equal(truncate(f->b, 0), 0);
	append(f->b, "Xbefore and more\n");
	memset(&f->g, 0, sizeof(f->g));
	assert_int_equal(vsl_tail_init(&f->t, on_line, &f->g), 0);
	assert_int_equal(vsl_tail_load(&f->t, pos), 0);
	assert_int_equal(f->t.n_saved, 2);
	assert_int_equal(vsl_tail_set(&f->t, specs, 2, true), 0);
	vsl_tail_poll(&f->t);
	assert_int_equal(f->g.n, 1);
	assert_string_equal(f->g.lines[0], "while down");

	/* bad lines in the file are skipped; a missing file is no error */
	fp = fopen(pos, "w");
	assert_non_null(fp);
	fprintf(fp, "garbage\n1 2 -5 0a /x\n1 2 3 0a relative\n1 2 3 0a /ok\n");
	fclose(fp);
	vsl_tail_close(&f->t);
	assert_int_equal(vsl_tail_init(&f->t, on_line, &f->g), 0);
	assert_int_equal(vsl_tail_load(&f->t, pos), 0);
	assert_int_equal(f->t.n_saved, 1);
	assert_string_equal(f->t.saved[0].path, "/ok");
	unlink(pos);
	assert_int_equal(vsl_tail_load(&f->t, pos), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_places, setup, teardown),
	};

	return cmocka_run_group_tests_name("syslog_tail", tests, NULL, NULL);
}
