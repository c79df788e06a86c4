/*
 * The config store's tree: files kept sorted by path in one array (a few hundred at
 * most), looked up by binary search under the store's lock. A change builds its new
 * contents before taking the lock, checks every limit under it, and then cannot fail, so a
 * refused change leaves the tree as it was. Persistent changes are then saved (persist.c)
 * and the change callback runs, both without the tree's lock.
 *
 * Paths: etc/..., var/patch/... (persistent) and var/log/... (memory only, each a ring of
 * its last VMK_CFG_LOG_MAX bytes cut at a line start).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernel/cfg/cfg_internal.h"
#include "lib/heap.h"

#define KAR_FIXED     40 /* header and trailer (archive.c) */
#define KAR_PER_ENTRY 24

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool vmk_cfg_path_is_log(const char *path)
{
	return strncmp(path, "var/log/", 8) == 0;
}

bool vmk_cfg_path_valid(const char *path, struct kb_errmsg *err)
{
	struct kb_errmsg dummy;
	size_t len = strlen(path), comp = 0, depth = 0;

	if (err == NULL)
		err = &dummy;
	if (len == 0 || len > VMK_CFG_PATH_MAX) {
		kb_errmsg_setf(err, "a path has 1 to %d bytes", VMK_CFG_PATH_MAX);
		return false;
	}
	if (strncmp(path, "etc/", 4) != 0 && strncmp(path, "var/log/", 8) != 0 &&
	    strncmp(path, "var/patch/", 10) != 0) {
		kb_errmsg_setf(err, "\"%s\": files live under etc/, var/log/ or var/patch/", path);
		return false;
	}
	for (const char *p = path;; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '/' || ch == '\0') {
			if (comp == 0) {
				kb_errmsg_setf(err, "\"%s\": empty path component", path);
				return false;
			}
			if (++depth > VMK_CFG_DEPTH_MAX) {
				kb_errmsg_setf(err, "\"%s\": more than %d components", path,
					       VMK_CFG_DEPTH_MAX);
				return false;
			}
			comp = 0;
			if (ch == '\0')
				break;
			continue;
		}
		if (comp == 0 && ch == '.') {
			kb_errmsg_setf(err, "\"%s\": a component may not start with '.'", path);
			return false;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("._+@-", ch) != NULL)) {
			kb_errmsg_setf(err, "\"%.64s\": character %#x not allowed in a path", path,
				       ch);
			return false;
		}
		comp++;
	}
	if (depth < 2 || (vmk_cfg_path_is_log(path) && depth < 3) ||
	    (strncmp(path, "var/patch/", 10) == 0 && depth < 3)) {
		kb_errmsg_setf(err, "\"%s\": names a directory, not a file", path);
		return false;
	}
	return true;
}

/* The index of path, or where it would go (*found false). Called with the lock held. */
static size_t find(const struct vmk_cfg *c, const char *path, bool *found)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(c->files[mid].path, path);
		if (d == 0) {
			*found = true;
			return mid;
		}
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* Bytes the archive would take with path (new or replaced) holding len bytes. */
static size_t archive_size(const struct vmk_cfg *c, const char *path, size_t len)
{
	size_t total = KAR_FIXED;

	for (size_t i = 0; i < c->n; i++) {
		const struct vmk__cfg_file *f = &c->files[i];
		if (vmk_cfg_path_is_log(f->path) || strcmp(f->path, path) == 0)
			continue;
		total += KAR_PER_ENTRY + strlen(f->path) + f->len;
	}
	return total + KAR_PER_ENTRY + strlen(path) + len;
}

static size_t count_logs(const struct vmk_cfg *c)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n; i++)
		n += vmk_cfg_path_is_log(c->files[i].path);
	return n;
}

/* The part of a log of len bytes to keep: its last VMK_CFG_LOG_MAX bytes, from the first
 * line start in them (when there is one). */
static size_t log_keep_from(const uint8_t *p, size_t len)
{
	size_t from;
	const uint8_t *nl;

	if (len <= VMK_CFG_LOG_MAX)
		return 0;
	from = len - VMK_CFG_LOG_MAX;
	if (from > 0 && p[from - 1] == '\n')
		return from;
	nl = memchr(p + from, '\n', len - from);
	return nl != NULL && (size_t)(nl - p) + 1 < len ? (size_t)(nl - p) + 1 : from;
}

/* Makes room for one more file at index i. Called with the lock held. */
static int insert_at(struct vmk_cfg *c, size_t i, const char *path)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct vmk__cfg_file *nf = kb_realloc(c->files, cap * sizeof(*nf));
		if (nf == NULL)
			return -ENOMEM;
		c->files = nf;
		c->cap = cap;
	}
	memmove(&c->files[i + 1], &c->files[i], (c->n - i) * sizeof(*c->files));
	memset(&c->files[i], 0, sizeof(c->files[i]));
	snprintf(c->files[i].path, sizeof(c->files[i].path), "%s", path);
	c->n++;
	return 0;
}

static void changed(struct vmk_cfg *c, const char *path)
{
	if (c->cfg.change_cb != NULL)
		c->cfg.change_cb(c->cfg.change_arg, path);
}

/* After a persistent change: saves, and says whether it reached the disk. */
static void save_after(struct vmk_cfg *c, bool *saved)
{
	struct kb_errmsg err = {{0}};
	int rv = vmk__cfg_persist(c, &err);

	if (saved != NULL)
		*saved = rv == 0;
}

int vmk_cfg_put(struct vmk_cfg *c, const char *path, const void *data, size_t len, uint32_t mode,
		bool *saved, struct kb_errmsg *err)
{
	bool log = vmk_cfg_path_is_log(path), found;
	uint8_t *copy = NULL;
	size_t from = 0, i;
	int rv;

	if (saved != NULL)
		*saved = false;
	if (!vmk_cfg_path_valid(path, err))
		return KB_ECONFIG;
	if (log)
		from = log_keep_from(data, len);
	else if (len > VMK_CFG_FILE_MAX) {
		kb_errmsg_setf(err, "%s: %zu bytes, at most %u allowed per file", path, len,
			       VMK_CFG_FILE_MAX);
		return KB_ETOOBIG;
	}
	rv = vmk_cfg_contents_check(path, data, len, err);
	if (rv < 0)
		return rv;
	if (len - from > 0) {
		copy = kb_malloc(len - from);
		if (copy == NULL) {
			kb_errmsg_setf(err, "%s: out of memory", path);
			return -ENOMEM;
		}
		memcpy(copy, (const uint8_t *)data + from, len - from);
	}
	pthread_mutex_lock(&c->lock);
	i = find(c, path, &found);
	if (!found && c->n >= VMK_CFG_FILES_MAX) {
		kb_errmsg_setf(err, "%s: the store holds %d files, no more allowed", path,
			       VMK_CFG_FILES_MAX);
		rv = KB_ETOOBIG;
	} else if (!found && log && count_logs(c) >= VMK_CFG_LOGS_MAX) {
		kb_errmsg_setf(err, "%s: %d logs already, no more allowed", path, VMK_CFG_LOGS_MAX);
		rv = KB_ETOOBIG;
	} else if (!log && archive_size(c, path, len) > VMK_CFG_ARCHIVE_MAX) {
		kb_errmsg_setf(err, "%s: the archive would pass its limit of %u bytes", path,
			       VMK_CFG_ARCHIVE_MAX);
		rv = KB_ETOOBIG;
	} else if (!found && (rv = insert_at(c, i, path)) < 0) {
		kb_errmsg_setf(err, "%s: out of memory", path);
	}
	if (rv < 0) {
		pthread_mutex_unlock(&c->lock);
		kb_free(copy);
		return rv;
	}
	kb_free(c->files[i].data);
	c->files[i].data = copy;
	c->files[i].len = len - from;
	c->files[i].mode = (mode & 0777) ? (mode & 0777) : 0644;
	c->files[i].mtime_ns = realtime_ns();
	c->files[i].generation = ++c->generation;
	if (!log)
		c->pgen = c->generation;
	pthread_mutex_unlock(&c->lock);
	if (!log)
		save_after(c, saved);
	else if (saved != NULL)
		*saved = true;
	changed(c, path);
	return 0;
}

int vmk_cfg_append(struct vmk_cfg *c, const char *path, const void *data, size_t len,
		   struct kb_errmsg *err)
{
	struct vmk__cfg_file *f;
	uint8_t *joined;
	size_t i, total, from;
	bool found;
	int rv = 0;

	if (!vmk_cfg_path_valid(path, err))
		return KB_ECONFIG;
	if (!vmk_cfg_path_is_log(path)) {
		kb_errmsg_setf(err, "%s: only logs (var/log/) can be appended to", path);
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&c->lock);
	i = find(c, path, &found);
	if (!found) {
		if (c->n >= VMK_CFG_FILES_MAX || count_logs(c) >= VMK_CFG_LOGS_MAX) {
			kb_errmsg_setf(err, "%s: no room for another log", path);
			rv = KB_ETOOBIG;
		} else if ((rv = insert_at(c, i, path)) < 0) {
			kb_errmsg_setf(err, "%s: out of memory", path);
		}
		if (rv < 0)
			goto out;
		c->files[i].mode = 0644;
	}
	f = &c->files[i];
	total = f->len + len;
	joined = kb_malloc(total ? total : 1);
	if (joined == NULL) {
		if (!found) {
			memmove(&c->files[i], &c->files[i + 1], (c->n - i - 1) * sizeof(*f));
			c->n--;
		}
		kb_errmsg_setf(err, "%s: out of memory", path);
		rv = -ENOMEM;
		goto out;
	}
	if (f->len)
		memcpy(joined, f->data, f->len);
	if (len)
		memcpy(joined + f->len, data, len);
	from = log_keep_from(joined, total);
	memmove(joined, joined + from, total - from);
	kb_free(f->data);
	f->data = joined;
	f->len = total - from;
	f->mtime_ns = realtime_ns();
	f->generation = ++c->generation;
out:
	pthread_mutex_unlock(&c->lock);
	if (rv == 0)
		changed(c, path);
	return rv;
}

int vmk_cfg_delete(struct vmk_cfg *c, const char *path, bool *saved, struct kb_errmsg *err)
{
	bool found;
	size_t i;

	if (saved != NULL)
		*saved = false;
	if (!vmk_cfg_path_valid(path, err))
		return KB_ECONFIG;
	pthread_mutex_lock(&c->lock);
	i = find(c, path, &found);
	if (!found) {
		pthread_mutex_unlock(&c->lock);
		kb_errmsg_setf(err, "%s: no such file in the config store", path);
		return KB_ENOTFOUND;
	}
	kb_free(c->files[i].data);
	memmove(&c->files[i], &c->files[i + 1], (c->n - i - 1) * sizeof(*c->files));
	c->n--;
	c->generation++;
	if (!vmk_cfg_path_is_log(path))
		c->pgen = c->generation;
	pthread_mutex_unlock(&c->lock);
	if (!vmk_cfg_path_is_log(path))
		save_after(c, saved);
	else if (saved != NULL)
		*saved = true;
	changed(c, path);
	return 0;
}

static void stat_of(const struct vmk__cfg_file *f, struct vmk_cfg_stat *st)
{
	snprintf(st->path, sizeof(st->path), "%s", f->path);
	st->mode = f->mode;
	st->size = f->len;
	st->mtime_ns = f->mtime_ns;
	st->generation = f->generation;
	st->persistent = !vmk_cfg_path_is_log(f->path);
}

int vmk_cfg_get(struct vmk_cfg *c, const char *path, struct kb_buf *out, struct vmk_cfg_stat *st,
		struct kb_errmsg *err)
{
	bool found;
	size_t i;
	int rv = 0;

	if (!vmk_cfg_path_valid(path, err))
		return KB_ECONFIG;
	pthread_mutex_lock(&c->lock);
	i = find(c, path, &found);
	if (!found) {
		kb_errmsg_setf(err, "%s: no such file in the config store", path);
		rv = KB_ENOTFOUND;
	} else {
		if (st != NULL)
			stat_of(&c->files[i], st);
		if (c->files[i].len)
			rv = kb_buf_append(out, c->files[i].data, c->files[i].len);
		if (rv < 0)
			kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rv));
	}
	pthread_mutex_unlock(&c->lock);
	return rv;
}

int vmk_cfg_list(struct vmk_cfg *c, const char *prefix, struct vmk_cfg_stat **out, size_t *n)
{
	size_t plen = prefix ? strlen(prefix) : 0, k = 0;

	pthread_mutex_lock(&c->lock);
	*out = kb_calloc(c->n ? c->n : 1, sizeof(**out));
	if (*out == NULL) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n; i++)
		if (plen == 0 || strncmp(c->files[i].path, prefix, plen) == 0)
			stat_of(&c->files[i], &(*out)[k++]);
	pthread_mutex_unlock(&c->lock);
	*n = k;
	return 0;
}

/* The persistent files as archive entries borrowing the tree's data. Called with the lock
 * held; the caller frees *out with kb_free() before letting go of the lock. */
static int entries_of(struct vmk_cfg *c, struct vmk_cfg_kar_entry **out, uint32_t *n)
{
	uint32_t k = 0;

	*out = kb_calloc(c->n ? c->n : 1, sizeof(**out));
	if (*out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		const struct vmk__cfg_file *f = &c->files[i];
		struct vmk_cfg_kar_entry *e = &(*out)[k];
		if (vmk_cfg_path_is_log(f->path))
			continue;
		snprintf(e->path, sizeof(e->path), "%s", f->path);
		e->mode = f->mode;
		e->mtime_ns = f->mtime_ns;
		e->generation = f->generation;
		e->data = f->data;
		e->len = (uint32_t)f->len;
		k++;
	}
	*n = k;
	return 0;
}

int vmk__cfg_encode(struct vmk_cfg *c, struct kb_buf *out)
{
	struct vmk_cfg_kar_entry *e;
	uint32_t n;
	int rv = entries_of(c, &e, &n);

	if (rv < 0)
		return rv;
	rv = vmk_cfg_kar_encode(c->generation, realtime_ns(), e, n, out);
	kb_free(e);
	return rv;
}

int vmk_cfg_export(struct vmk_cfg *c, struct kb_buf *out, struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&c->lock);
	rv = vmk__cfg_encode(c, out);
	pthread_mutex_unlock(&c->lock);
	if (rv < 0)
		kb_errmsg_setf(err, "exporting the config archive: %s", kb_strerror(rv));
	return rv;
}

int vmk__cfg_replace(struct vmk_cfg *c, const struct vmk_cfg_kar *k, bool keep_mtime)
{
	size_t logs = count_logs(c), n = 0;
	struct vmk__cfg_file *nf;
	uint64_t now = realtime_ns();
	int rv = 0;

	if (logs + k->n > VMK_CFG_FILES_MAX)
		return KB_ETOOBIG;
	nf = kb_calloc(logs + k->n ? logs + k->n : 1, sizeof(*nf));
	if (nf == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < k->n && rv == 0; i++) {
		const struct vmk_cfg_kar_entry *e = &k->entries[i];
		struct vmk__cfg_file *f = &nf[n++];
		snprintf(f->path, sizeof(f->path), "%s", e->path);
		f->len = e->len;
		f->mode = e->mode ? e->mode : 0644;
		f->mtime_ns = keep_mtime ? e->mtime_ns : now;
		f->generation = keep_mtime ? e->generation : c->generation + 1;
		if (e->len) {
			f->data = kb_malloc(e->len);
			if (f->data == NULL)
				rv = -ENOMEM;
			else
				memcpy(f->data, e->data, e->len);
		}
	}
	if (rv < 0) {
		for (size_t i = 0; i < n; i++)
			kb_free(nf[i].data);
		kb_free(nf);
		return rv;
	}
	/* The logs move over as they are; the archive's entries are sorted, so merge. */
	for (size_t i = 0; i < c->n; i++) {
		if (vmk_cfg_path_is_log(c->files[i].path))
			nf[n++] = c->files[i];
		else
			kb_free(c->files[i].data);
	}
	for (size_t i = 1; i < n; i++) {
		struct vmk__cfg_file t = nf[i];
		size_t j = i;
		while (j > 0 && strcmp(nf[j - 1].path, t.path) > 0) {
			nf[j] = nf[j - 1];
			j--;
		}
		nf[j] = t;
	}
	kb_free(c->files);
	c->files = nf;
	c->n = n;
	c->cap = n ? n : 1;
	return 0;
}

int vmk_cfg_import(struct vmk_cfg *c, const void *archive, size_t len, bool *saved,
		   struct kb_errmsg *err)
{
	struct vmk_cfg_kar k;
	struct vmk_cfg_stat *old = NULL;
	size_t n_old = 0;
	int rv;

	if (saved != NULL)
		*saved = false;
	rv = vmk_cfg_kar_decode(archive, len, &k, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "archive refused, nothing changed");
		return rv;
	}
	rv = vmk_cfg_list(c, NULL, &old, &n_old);
	if (rv < 0) {
		vmk_cfg_kar_free(&k);
		kb_errmsg_setf(err, "out of memory");
		return rv;
	}
	pthread_mutex_lock(&c->lock);
	rv = vmk__cfg_replace(c, &k, false);
	if (rv == 0) {
		c->pgen = ++c->generation;
		vmk__cfg_event(c, KB_LOG_INFO, "archive imported: %u files (generation %llu)", k.n,
			       (unsigned long long)c->generation);
	}
	pthread_mutex_unlock(&c->lock);
	if (rv < 0) {
		kb_errmsg_setf(err, "importing the archive: %s; nothing changed", kb_strerror(rv));
		goto out;
	}
	save_after(c, saved);
	for (size_t i = 0; i < n_old; i++)
		if (old[i].persistent)
			changed(c, old[i].path);
	for (uint32_t i = 0; i < k.n; i++) {
		bool was = false;
		for (size_t j = 0; j < n_old && !was; j++)
			was = strcmp(old[j].path, k.entries[i].path) == 0;
		if (!was)
			changed(c, k.entries[i].path);
	}
out:
	kb_free(old);
	vmk_cfg_kar_free(&k);
	return rv;
}

int vmk_cfg_create(const struct vmk_cfg_config *cfg, struct vmk_cfg **out, struct kb_errmsg *err)
{
	struct vmk_cfg *c = kb_calloc(1, sizeof(*c));

	if (c == NULL) {
		kb_errmsg_setf(err, "config store: out of memory");
		return -ENOMEM;
	}
	c->cfg = *cfg;
	c->log = cfg->log ? cfg->log : &kb_log_default;
	if (cfg->dir != NULL && strlen(cfg->dir) + 16 >= sizeof(c->dir)) {
		kb_errmsg_setf(err, "config store: directory path too long");
		kb_free(c);
		return -ENAMETOOLONG;
	}
	snprintf(c->dir, sizeof(c->dir), "%s", cfg->dir ? cfg->dir : "");
	c->cfg.dir = NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->save_lock, NULL);
	vmk__cfg_load(c);
	*out = c;
	return 0;
}

void vmk_cfg_destroy(struct vmk_cfg *c)
{
	struct kb_errmsg err = {{0}};

	if (c == NULL)
		return;
	vmk__cfg_persist(c, &err);
	for (size_t i = 0; i < c->n; i++)
		kb_free(c->files[i].data);
	kb_free(c->files);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->save_lock);
	kb_free(c);
}
