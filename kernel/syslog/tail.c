/*
 * Following log files: new lines of a set of files, through inotify, across rotation and
 * truncation.
 *
 * Happy path: every file's directory is watched with inotify; any event there (and a
 * periodic call, which catches what inotify cannot say, e.g. a directory that appeared
 * later) makes vsl_tail_poll() look at every file: read what was appended since the last
 * look, cut it into lines and hand each whole line to the callback.
 *
 * Rotation (the path now names another file, or none): the rest of the old file is read to
 * its end first, then the new one from its start. Truncation (the file is shorter than what
 * was read, or the byte before the place read up to changed: truncated and written again
 * between two looks): reading starts again at 0. A file that does not exist yet is opened when it
 * appears, from its start. The files known when the daemon starts are read from their end
 * (what was there before is not sent again). A line longer than VSL_MSG_MAX is cut there;
 * a last line without its newline waits for it.
 *
 * Threads: one thread (the daemon's loop) owns a struct vsl_tail.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "kernel/syslog/tail.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"

int vsl_tail_init(struct vsl_tail *t, vsl_line_cb cb, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	t->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return t->ifd < 0 ? -errno : 0;
}

void vsl_tail_close(struct vsl_tail *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->files[i].fd >= 0)
			close(t->files[i].fd);
		kb_free(t->files[i].part);
	}
	kb_free(t->files);
	kb_free(t->saved);
	if (t->ifd >= 0)
		close(t->ifd);
	memset(t, 0, sizeof(*t));
	t->ifd = -1;
}

static void watch_dir(struct vsl_tail *t, const char *path)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	/* inotify gives an existing watch's descriptor again, so this is idempotent. */
	inotify_add_watch(t->ifd, dirname(dir),
			  IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
			      IN_CLOSE_WRITE | IN_ONLYDIR);
}

int vsl_tail_set(struct vsl_tail *t, const struct vsl_tail_spec *specs, size_t n, bool from_end)
{
	struct vsl_tail_file *files = n ? kb_calloc(n, sizeof(*files)) : NULL;

	if (n && files == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct vsl_tail_file *f = &files[i], *old = NULL;
		for (size_t j = 0; j < t->n; j++)
			if (t->files[j].fd != -2 && strcmp(t->files[j].path, specs[i].path) == 0)
				old = &t->files[j];
		if (old != NULL) {
			*f = *old;
			old->fd = -2; /* moved */
			old->part = NULL;
		} else {
			f->fd = -1;
			f->from_end = from_end;
			snprintf(f->path, sizeof(f->path), "%s", specs[i].path);
		}
		snprintf(f->app, sizeof(f->app), "%s", specs[i].app);
		if (f->part == NULL && (f->part = kb_malloc(VSL_MSG_MAX)) == NULL) {
			for (size_t k = 0; k <= i; k++)
				kb_free(files[k].part);
			kb_free(files);
			return -ENOMEM; /* the moved files' fds leak only on this path */
		}
		watch_dir(t, f->path);
	}
	for (size_t j = 0; j < t->n; j++) {
		if (t->files[j].fd >= 0)
			close(t->files[j].fd);
		kb_free(t->files[j].part);
	}
	kb_free(t->files);
	t->files = files;
	t->n = n;
	return 0;
}

static void emit(struct vsl_tail *t, struct vsl_tail_file *f, const char *p, size_t n)
{
	while (n && (p[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;
	f->lines++;
	t->lines++;
	t->cb(t->arg, f->app, p, n);
}

/* Reads f from f->off to its end, handing whole lines over. */
static void read_new(struct vsl_tail *t, struct vsl_tail_file *f)
{
	char buf[65536];
	ssize_t r;

	while ((r = pread(f->fd, buf, sizeof(buf), f->off)) > 0) {
		const char *p = buf, *end = buf + r;
		f->off += r;
		t->moved = true;
		f->last_byte = buf[r - 1];
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			size_t room = VSL_MSG_MAX - f->plen;
			size_t take = n < room ? n : room;
			memcpy(f->part + f->plen, p, take);
			f->plen += take;
			if (nl != NULL || f->plen == VSL_MSG_MAX) {
				emit(t, f, f->part, f->plen);
				f->plen = 0;
			}
			p += take + (nl != NULL && take == n ? 1 : 0);
		}
	}
}

static void reopen(struct vsl_tail *t, struct vsl_tail_file *f)
{
	struct stat st;

	f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (f->fd < 0)
		return;
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(f->fd);
		f->fd = -1;
		return;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->off = f->from_end ? st.st_size : 0;
	for (size_t i = 0; f->from_end && i < t->n_saved; i++) {
		const struct vsl_tail_pos *p = &t->saved[i];
		char c;
		if (strcmp(p->path, f->path) == 0 && p->dev == st.st_dev && p->ino == st.st_ino &&
		    p->off <= st.st_size && p->off > 0 && pread(f->fd, &c, 1, p->off - 1) == 1 &&
		    (unsigned char)c == p->last_byte)
			f->off = p->off;
	}
	if (f->off > 0 && pread(f->fd, &f->last_byte, 1, f->off - 1) != 1)
		f->off = 0;
	t->moved = true;
	f->from_end = false;
	f->plen = 0;
}

/* Whether the byte before f->off is no longer the one read there: the file was truncated
 * and written past the old place between two looks. */
static bool rewritten(const struct vsl_tail_file *f)
{
	char c;

	return f->off > 0 && pread(f->fd, &c, 1, f->off - 1) == 1 && c != f->last_byte;
}

void vsl_tail_poll(struct vsl_tail *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct vsl_tail_file *f = &t->files[i];
		struct stat st, cur;

		if (f->fd < 0) {
			reopen(t, f);
			if (f->fd < 0) {
				f->from_end = false; /* a file made later is read whole */
				continue;
			}
		} else if (stat(f->path, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
			/* Rotated or removed: finish the old file, then start on the new one. */
			read_new(t, f);
			if (f->plen) {
				emit(t, f, f->part, f->plen);
				f->plen = 0;
			}
			close(f->fd);
			f->fd = -1;
			t->rotations++;
			reopen(t, f);
			if (f->fd < 0)
				continue;
		}
		if (fstat(f->fd, &cur) == 0 && (cur.st_size < f->off || rewritten(f))) {
			f->off = 0; /* truncated */
			f->plen = 0;
			t->truncations++;
		}
		read_new(t, f);
	}
}

void vsl_tail_events(struct vsl_tail *t)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(t->ifd, buf, sizeof(buf)) > 0) {
		/* The events only say "look again"; vsl_tail_poll checks every file. */
	}
	vsl_tail_poll(t);
}

int vsl_tail_save(struct vsl_tail *t, const char *path)
{
	struct kb_errmsg err = {{0}};
	char line[PATH_MAX + 128];
	struct kb_buf b;
	int rv = 0;

	if (!t->moved)
		return 0;
	kb_buf_init(&b, 0);
	for (size_t i = 0; rv == 0 && i < t->n; i++) {
		const struct vsl_tail_file *f = &t->files[i];
		if (f->fd < 0 || strchr(f->path, '\n') != NULL)
			continue;
		int n = snprintf(line, sizeof(line), "%llu %llu %lld %02x %s\n",
				 (unsigned long long)f->dev, (unsigned long long)f->ino,
				 (long long)f->off, (unsigned char)f->last_byte, f->path);
		rv = kb_buf_append(&b, line, (size_t)n);
	}
	if (rv == 0)
		rv = kb_file_write_atomic(path, b.data ? (const void *)b.data : "", b.len, 0600,
					  &err);
	if (rv == KB_ENOTSYNCED)
		rv = 0;
	if (rv == 0)
		t->moved = false;
	kb_buf_close(&b);
	return rv;
}

int vsl_tail_load(struct vsl_tail *t, const char *path)
{
	char line[PATH_MAX + 128];
	FILE *fp = fopen(path, "re");
	size_t cap = 0;

	if (fp == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), fp) != NULL) {
		unsigned long long dev, ino;
		long long off;
		unsigned byte;
		int at = 0;
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%llu %llu %lld %2x %n", &dev, &ino, &off, &byte, &at) != 4 ||
		    at == 0 || line[at] != '/' || off < 0 || strlen(line + at) >= PATH_MAX)
			continue;
		if (t->n_saved == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct vsl_tail_pos *n = kb_realloc(t->saved, ncap * sizeof(*n));
			if (n == NULL)
				break;
			t->saved = n;
			cap = ncap;
		}
		struct vsl_tail_pos *p = &t->saved[t->n_saved++];
		snprintf(p->path, sizeof(p->path), "%s", line + at);
		p->dev = (dev_t)dev;
		p->ino = (ino_t)ino;
		p->off = (off_t)off;
		p->last_byte = (unsigned char)byte;
	}
	fclose(fp);
	return 0;
}
