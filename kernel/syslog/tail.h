/*
 * Following log files (tail.c): the lines appended to a set of files, found through
 * inotify and a periodic look, across rotation and truncation.
 */
#ifndef VSL_TAIL_H
#define VSL_TAIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/syslog/vsl.h"

/* One whole line (without its newline; len > 0) of the file whose APP-NAME is app. Both
 * are borrowed for the call. */
typedef void (*vsl_line_cb)(void *arg, const char *app, const char *line, size_t len);

struct vsl_tail_spec {
	const char *path; /* absolute */
	const char *app;  /* APP-NAME of its lines */
};

struct vsl_tail_file {
	char path[PATH_MAX];
	char app[VSL_APP_MAX + 1];
	int fd; /* -1 while the file does not exist */
	dev_t dev;
	ino_t ino;
	off_t off;	/* read up to here */
	char last_byte; /* the byte at off - 1 */
	bool from_end;	/* start at the end when first opened */
	char *part;	/* a line without its newline yet: VSL_MSG_MAX bytes */
	size_t plen;
	uint64_t lines;
};

/* A place saved by an earlier run (vsl_tail_load). */
struct vsl_tail_pos {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	off_t off;
	unsigned char last_byte;
};

struct vsl_tail {
	vsl_line_cb cb;
	void *arg;
	struct vsl_tail_pos *saved; /* from vsl_tail_load, used by files opened from_end */
	size_t n_saved;
	bool moved; /* a place changed since the last vsl_tail_save */
	int ifd;    /* inotify: readable when a watched directory changed */
	struct vsl_tail_file *files;
	size_t n;
	uint64_t lines, rotations, truncations;
};

/* 0 or -errno (inotify). Close with vsl_tail_close. */
int vsl_tail_init(struct vsl_tail *t, vsl_line_cb cb, void *arg);
void vsl_tail_close(struct vsl_tail *t);
/* Follows exactly these files from now on. Files already followed keep their place; new
 * ones start at their end when from_end (the daemon's first set), else at their start.
 * 0 or -ENOMEM (nothing changed). */
int vsl_tail_set(struct vsl_tail *t, const struct vsl_tail_spec *specs, size_t n, bool from_end);
/* Reads what every file gained since the last look, calling the callback per line. */
void vsl_tail_poll(struct vsl_tail *t);
/* Empties the inotify queue (t->ifd readable), then vsl_tail_poll. */
void vsl_tail_events(struct vsl_tail *t);

/*
 * Places across restarts. vsl_tail_save writes, when a place changed since the last save,
 * one line per open file — "<dev> <ino> <offset> <last byte, hex> <path>" — to path
 * atomically (lib/file.h). vsl_tail_load reads such a file (untrusted: bad lines are
 * skipped) before the first vsl_tail_set: a file that would start at its end starts at its
 * saved place instead when it is the same file (device and inode), at least that long, and
 * its byte before the place is the one saved; so lines written while the daemon was down
 * are sent. 0 or -errno (a missing file is 0).
 */
int vsl_tail_save(struct vsl_tail *t, const char *path);
int vsl_tail_load(struct vsl_tail *t, const char *path);

#endif
