/*
 * The config store on disk: <dir>/config.kar, the previous good one <dir>/config.kar.1,
 * and the events and status that say what happened to them.
 *
 * Saving (after every change of a persistent file, one save at a time):
 *   1. the tree is encoded under its lock (archive.c);
 *   2. <dir>/config.kar.tmp is created (O_EXCL, O_NOFOLLOW, 0600), written whole through the
 *      write hook, fsynced and closed;
 *   3. when config.kar is a good archive it is hard-linked as config.kar.1 (the old .1 goes);
 *   4. config.kar.tmp is renamed over config.kar and the directory fsynced.
 * A failure in 2 (ENOSPC, EFBIG, EIO, ...) removes the temporary file: config.kar and
 * config.kar.1 are as they were, the change stays in memory, the status and an event say so,
 * and the next change (or vmk_cfg_save) tries again. At every moment config.kar is a whole
 * archive (the old or the new one) and config.kar.1 the one before it.
 *
 * Loading (at create): config.kar, else — missing, torn, corrupt — config.kar.1, with a
 * warning event naming what was wrong; a bad config.kar is kept as config.kar.bad for
 * inspection and a good one written again at once from the previous archive. Both bad: an
 * error event and an empty store; nothing on disk is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/cfg/cfg_internal.h"
#include "lib/file.h"

void vmk__cfg_event(struct vmk_cfg *c, int level, const char *fmt, ...)
{
	struct vmk_cfg_event *e = &c->ev[c->ev_head++ % VMK_CFG_EVENTS];
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	e->time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	e->level = level;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	kb_log(c->log, level, "config store: %s", e->text);
}

static void path_of(const struct vmk_cfg *c, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", c->dir, name);
}

/* Reads and decodes one archive file. 0, or its error with the reason in err. */
static int read_archive(struct vmk_cfg *c, const char *name, struct kb_buf *buf,
			struct vmk_cfg_kar *k, struct kb_errmsg *err)
{
	char path[PATH_MAX];
	int rv;

	path_of(c, name, path, sizeof(path));
	kb_buf_init(buf, 0);
	rv = kb_file_read_small(path, VMK_CFG_ARCHIVE_MAX, buf, err);
	if (rv == -ENOENT) {
		kb_errmsg_setf(err, "missing");
		return rv;
	}
	if (rv < 0)
		return rv;
	rv = vmk_cfg_kar_decode(buf->data, buf->len, k, err);
	return rv;
}

static int adopt(struct vmk_cfg *c, const struct vmk_cfg_kar *k, size_t bytes, const char *from)
{
	int rv = vmk__cfg_replace(c, k, true);

	if (rv < 0)
		return rv;
	c->generation = c->pgen = k->generation;
	c->st.saved_generation = k->generation;
	c->st.archive_bytes = bytes;
	snprintf(c->st.loaded_from, sizeof(c->st.loaded_from), "%s", from);
	return 0;
}

void vmk__cfg_load(struct vmk_cfg *c)
{
	struct kb_errmsg e1 = {{0}}, e2 = {{0}};
	struct kb_buf b1, b2;
	struct vmk_cfg_kar k1 = {0}, k2 = {0};
	char bad[PATH_MAX], main_path[PATH_MAX];
	int r1, r2;

	if (c->dir[0] == '\0') {
		snprintf(c->st.loaded_from, sizeof(c->st.loaded_from), "none (memory only)");
		return;
	}
	pthread_mutex_lock(&c->lock);
	r1 = read_archive(c, VMK_CFG_ARCHIVE, &b1, &k1, &e1);
	if (r1 == 0 && (r1 = adopt(c, &k1, b1.len, VMK_CFG_ARCHIVE)) < 0)
		kb_errmsg_setf(&e1, "%s", kb_strerror(r1));
	if (r1 == 0) {
		c->main_good = true;
		vmk__cfg_event(c, KB_LOG_INFO, "loaded %s: %u files, generation %llu",
			       VMK_CFG_ARCHIVE, k1.n, (unsigned long long)k1.generation);
		goto out;
	}
	r2 = read_archive(c, VMK_CFG_ARCHIVE ".1", &b2, &k2, &e2);
	if (r2 == 0 && (r2 = adopt(c, &k2, b2.len, VMK_CFG_ARCHIVE ".1")) < 0)
		kb_errmsg_setf(&e2, "%s", kb_strerror(r2));
	if (r1 != -ENOENT) {
		path_of(c, VMK_CFG_ARCHIVE, main_path, sizeof(main_path));
		path_of(c, VMK_CFG_ARCHIVE ".bad", bad, sizeof(bad));
		if (rename(main_path, bad) < 0)
			kb_log(c->log, KB_LOG_WARN, "config store: keeping %s as %s: %s", main_path,
			       bad, strerror(errno));
	}
	if (r2 == 0) {
		vmk__cfg_event(c, KB_LOG_WARN,
			       "%s is bad (%s): using the previous good archive %s (%u files, "
			       "generation %llu)%s",
			       VMK_CFG_ARCHIVE, e1.msg, VMK_CFG_ARCHIVE ".1", k2.n,
			       (unsigned long long)k2.generation,
			       r1 != -ENOENT ? "; the bad one is kept as config.kar.bad" : "");
		c->resave = true; /* config.kar is written again from it */
	} else if (r1 == -ENOENT && r2 == -ENOENT) {
		snprintf(c->st.loaded_from, sizeof(c->st.loaded_from), "none (new)");
		vmk__cfg_event(c, KB_LOG_INFO, "no archive in %s: a new, empty config store",
			       c->dir);
	} else {
		snprintf(c->st.loaded_from, sizeof(c->st.loaded_from), "none (both bad)");
		vmk__cfg_event(c, KB_LOG_ERROR,
			       "%s is bad (%s) and %s is bad (%s): starting with an EMPTY config "
			       "store; the host's saved configuration is not in use",
			       VMK_CFG_ARCHIVE, e1.msg, VMK_CFG_ARCHIVE ".1", e2.msg);
	}
	kb_buf_close(&b2);
	vmk_cfg_kar_free(&k2);
out:
	kb_buf_close(&b1);
	vmk_cfg_kar_free(&k1);
	pthread_mutex_unlock(&c->lock);
	if (c->resave) {
		struct kb_errmsg err = {{0}};
		vmk__cfg_persist(c, &err);
	}
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rv = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* Steps 2-4 of a save (see the top of the file). Called with save_lock held. */
static int write_archive(struct vmk_cfg *c, const struct kb_buf *b, struct kb_errmsg *err)
{
	char tmp[PATH_MAX], main_path[PATH_MAX], prev[PATH_MAX];
	size_t off = 0;
	int fd, rv = 0;

	path_of(c, VMK_CFG_ARCHIVE ".tmp", tmp, sizeof(tmp));
	path_of(c, VMK_CFG_ARCHIVE, main_path, sizeof(main_path));
	path_of(c, VMK_CFG_ARCHIVE ".1", prev, sizeof(prev));
	if (unlink(tmp) < 0 && errno != ENOENT) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rv));
		return rv;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rv));
		return rv;
	}
	while (off < b->len && rv == 0) {
		ssize_t n = c->cfg.write_fn ? c->cfg.write_fn(fd, b->data + off, b->len - off)
					    : write(fd, b->data + off, b->len - off);
		if (n < 0 && errno != EINTR)
			rv = -errno;
		else if (n == 0)
			rv = -EIO;
		else if (n > 0)
			off += (size_t)n;
	}
	if (rv == 0 && fsync(fd) < 0)
		rv = -errno;
	if (close(fd) < 0 && rv == 0)
		rv = -errno;
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: write: %s", tmp, kb_strerror(rv));
		unlink(tmp);
		return rv;
	}
	if (c->main_good) {
		if ((unlink(prev) < 0 && errno != ENOENT) || link(main_path, prev) < 0)
			kb_log(c->log, KB_LOG_WARN,
			       "config store: keeping the previous archive as %s: %s", prev,
			       strerror(errno));
	}
	if (rename(tmp, main_path) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: rename: %s", tmp, kb_strerror(rv));
		unlink(tmp);
		return rv;
	}
	c->main_good = true;
	rv = fsync_dir(c->dir);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: fsync of the directory: %s", c->dir, kb_strerror(rv));
		return KB_ENOTSYNCED;
	}
	return 0;
}

int vmk__cfg_persist(struct vmk_cfg *c, struct kb_errmsg *err)
{
	struct kb_buf b;
	uint64_t gen;
	int rv;

	if (c->dir[0] == '\0')
		return 0;
	kb_buf_init(&b, 0);
	pthread_mutex_lock(&c->save_lock);
	pthread_mutex_lock(&c->lock);
	if (c->pgen == c->st.saved_generation && !c->resave) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->save_lock);
		return 0;
	}
	gen = c->pgen;
	rv = vmk__cfg_encode(c, &b);
	pthread_mutex_unlock(&c->lock);
	if (rv < 0)
		kb_errmsg_setf(err, "encoding the archive: %s", kb_strerror(rv));
	else
		rv = write_archive(c, &b, err);

	pthread_mutex_lock(&c->lock);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->st.last_save_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (rv == 0 || rv == KB_ENOTSYNCED) {
		if (c->st.last_save_code != 0 && c->st.last_save_code != KB_ENOTSYNCED)
			vmk__cfg_event(c, KB_LOG_INFO,
				       "%s saved again (generation %llu) after %llu failed saves",
				       VMK_CFG_ARCHIVE, (unsigned long long)gen,
				       (unsigned long long)c->st.save_failures);
		c->st.saved_generation = gen;
		c->resave = false;
		c->st.archive_bytes = b.len;
		c->st.saves++;
	} else {
		c->st.save_failures++;
		vmk__cfg_event(c, KB_LOG_ERROR,
			       "saving %s failed (%s): the previous archive is untouched, the "
			       "change is kept in memory and saved again at the next change",
			       VMK_CFG_ARCHIVE, err->msg);
	}
	if (rv == KB_ENOTSYNCED)
		vmk__cfg_event(c, KB_LOG_WARN, "%s", err->msg);
	c->st.last_save_code = rv;
	snprintf(c->st.last_save_error, sizeof(c->st.last_save_error), "%s",
		 rv < 0 ? err->msg : "");
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->save_lock);
	kb_buf_close(&b);
	return rv == KB_ENOTSYNCED ? 0 : rv;
}

int vmk_cfg_save(struct vmk_cfg *c, struct kb_errmsg *err)
{
	return vmk__cfg_persist(c, err);
}

void vmk_cfg_status(struct vmk_cfg *c, struct vmk_cfg_status *out)
{
	size_t first, n;

	pthread_mutex_lock(&c->lock);
	*out = c->st;
	out->generation = c->generation;
	out->files = (uint32_t)c->n;
	out->bytes = 0;
	for (size_t i = 0; i < c->n; i++)
		out->bytes += c->files[i].len;
	out->dirty = c->dir[0] != '\0' && (c->pgen != c->st.saved_generation || c->resave);
	snprintf(out->dir, sizeof(out->dir), "%s", c->dir);
	n = c->ev_head < VMK_CFG_EVENTS ? c->ev_head : VMK_CFG_EVENTS;
	first = c->ev_head - n;
	for (size_t i = 0; i < n; i++)
		out->events[i] = c->ev[(first + i) % VMK_CFG_EVENTS];
	out->n_events = n;
	pthread_mutex_unlock(&c->lock);
}
