/*
 * The host's in-memory config store (docs/config-store.md): a tree of named files — the
 * host's configuration under etc/, staged patches under var/patch/, logs under var/log/ —
 * each with its contents, mode, mtime and the store generation of its last change.
 *
 * Persistence: every change is written as one archive, <dir>/config.kar (format in
 * archive.c), by writing <dir>/config.kar.tmp, fsyncing it, keeping the previous good
 * archive as <dir>/config.kar.1 (a hard link), renaming the new one into place and fsyncing
 * the directory. At create the store loads config.kar; when it is missing, torn or corrupt
 * it falls back to config.kar.1 and records an event saying so; when both are bad it
 * starts empty with an error event. Files under var/log/ are kept in memory only (each a
 * ring of at most VMK_CFG_LOG_MAX bytes) and never archived: they are lost when vmkernel
 * stops, unless also sent to syslog.
 *
 * A failed save (a full disk: ENOSPC, EFBIG, EIO) leaves the previous archive intact and the
 * change in memory; the failure is in the status and the events, and the next change
 * saves again (so does vmk_cfg_save()).
 *
 * Threads: every function may be called from any thread; one mutex guards the tree, a
 * second one serialises saves. The change callback runs on the thread that made the change,
 * with no lock held.
 */
#ifndef VMK_CFG_H
#define VMK_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"

/* Limits (docs/config-store.md). The archive must fit one control request of vmkernel's
 * socket (256 KiB) for an import, so the persistent part of the store is bounded by it. */
#define VMK_CFG_PATH_MAX    255		 /* bytes of a path */
#define VMK_CFG_DEPTH_MAX   8		 /* components of a path */
#define VMK_CFG_FILE_MAX    (64u << 10)	 /* bytes of one persistent file */
#define VMK_CFG_ARCHIVE_MAX (224u << 10) /* bytes of the whole archive */
#define VMK_CFG_FILES_MAX   512		 /* files in the store (logs included) */
#define VMK_CFG_LOG_MAX	    (64u << 10)	 /* bytes kept of one log (a ring) */
#define VMK_CFG_LOGS_MAX    32		 /* log files */
#define VMK_CFG_EVENTS	    16		 /* events kept for the status */
#define VMK_CFG_EVENT_MAX   256		 /* bytes of one event's text */

#define VMK_CFG_ARCHIVE	 "config.kar"
#define VMK_CFG_ADVANCED "etc/keel/advanced.conf"
#define VMK_CFG_AUTH	 "etc/keel/auth.db" /* hostd's users (hostagent/auth_cfg.h) */

struct vmk_cfg;

/* Called after a change of path (put, append, delete, or each path an import changed). */
typedef void (*vmk_cfg_change_cb)(void *arg, const char *path);
/* Replaces write(2) for the archive's temporary file (tests inject ENOSPC with it). Returns
 * bytes written or -1 with errno set, as write(2). */
typedef ssize_t (*vmk_cfg_write_cb)(int fd, const void *buf, size_t len);

struct vmk_cfg_config {
	const char *dir;       /* where config.kar lives; NULL: memory only (borrowed) */
	struct kb_logger *log; /* borrowed; NULL: kb_log_default */
	vmk_cfg_change_cb change_cb;
	void *change_arg;
	vmk_cfg_write_cb write_fn; /* NULL: write(2) */
};

/* One file as listed. */
struct vmk_cfg_stat {
	char path[VMK_CFG_PATH_MAX + 1];
	uint32_t mode;
	uint64_t size;
	uint64_t mtime_ns;   /* CLOCK_REALTIME */
	uint64_t generation; /* the store's generation when it last changed */
	bool persistent;     /* false for var/log/ files */
};

struct vmk_cfg_event {
	uint64_t time_ns; /* CLOCK_REALTIME */
	int level;	  /* KB_LOG_ERROR, KB_LOG_WARN or KB_LOG_INFO */
	char text[VMK_CFG_EVENT_MAX];
};

struct vmk_cfg_status {
	uint64_t generation;	   /* of the tree; 0 for a new empty store */
	uint64_t saved_generation; /* the generation config.kar holds */
	uint32_t files;
	uint64_t bytes;		/* of all files, logs included */
	uint64_t archive_bytes; /* of config.kar as last written or loaded */
	uint64_t last_save_ns;	/* CLOCK_REALTIME of the last save attempt, 0: none */
	int last_save_code;	/* 0 or the negative code of the last attempt */
	char last_save_error[KB_ERRMSG_SIZE];
	uint64_t saves, save_failures;
	bool dirty;	      /* changes not in config.kar yet */
	char loaded_from[64]; /* "config.kar", "config.kar.1", "none (new)", "none (both bad)" */
	char dir[4096];	      /* "" when memory only */
	size_t n_events;      /* oldest first */
	struct vmk_cfg_event events[VMK_CFG_EVENTS];
};

/* Makes a store and loads it from cfg->dir (which must exist). A missing, torn or corrupt
 * archive is not an error (see above): it is recorded as an event. 0 and *out (caller
 * destroys with vmk_cfg_destroy), or -ENOMEM. */
int vmk_cfg_create(const struct vmk_cfg_config *cfg, struct vmk_cfg **out, struct kb_errmsg *err);
/* Saves once more if changes are unsaved, then frees the store. */
void vmk_cfg_destroy(struct vmk_cfg *c);

/* Whether path is a valid store path: 1 to VMK_CFG_PATH_MAX bytes, under etc/, var/log/ or
 * var/patch/, components of [A-Za-z0-9._+@-] not starting with '.', no empty component, at
 * most VMK_CFG_DEPTH_MAX components. On false err says why (err may be NULL). */
bool vmk_cfg_path_valid(const char *path, struct kb_errmsg *err);
/* Whether path is kept in memory only (var/log/). */
bool vmk_cfg_path_is_log(const char *path);

/* Replaces (or creates) path with len bytes of data (copied); mode & 0777 (0: 0644). A log
 * keeps only its last VMK_CFG_LOG_MAX bytes (from a line start). Checks: path, sizes, and
 * the contents of files the store knows (advanced.conf, network.conf, auth.db). Then saves the archive; a failed
 * save does not fail the put (the change stays in memory; see above) — *saved (may be NULL)
 * says whether it reached the disk. Errors: KB_ECONFIG (bad path or contents), KB_ETOOBIG,
 * -ENOMEM; nothing changes then. */
int vmk_cfg_put(struct vmk_cfg *c, const char *path, const void *data, size_t len, uint32_t mode,
		bool *saved, struct kb_errmsg *err);
/* Appends to a log (var/log/ only; made when missing), dropping its oldest lines past
 * VMK_CFG_LOG_MAX. KB_ECONFIG for another path. */
int vmk_cfg_append(struct vmk_cfg *c, const char *path, const void *data, size_t len,
		   struct kb_errmsg *err);
/* Removes path, and saves. KB_ENOTFOUND when missing. */
int vmk_cfg_delete(struct vmk_cfg *c, const char *path, bool *saved, struct kb_errmsg *err);
/* A copy of path's contents appended to out (set up by the caller), and its stat into st
 * (may be NULL). KB_ENOTFOUND, KB_ECONFIG (bad path), or out's errors. */
int vmk_cfg_get(struct vmk_cfg *c, const char *path, struct kb_buf *out, struct vmk_cfg_stat *st,
		struct kb_errmsg *err);
/* Every file, sorted by path, whose path starts with prefix (NULL or "": all). *out is
 * caller-freed with kb_free(). 0 or -ENOMEM. */
int vmk_cfg_list(struct vmk_cfg *c, const char *prefix, struct vmk_cfg_stat **out, size_t *n);

/* The persistent files as one archive (the format of config.kar), appended to out. */
int vmk_cfg_export(struct vmk_cfg *c, struct kb_buf *out, struct kb_errmsg *err);
/* Replaces every persistent file with those of archive (logs are kept). The whole archive
 * is decoded and every file checked first; on any error nothing changes. Then saves. */
int vmk_cfg_import(struct vmk_cfg *c, const void *archive, size_t len, bool *saved,
		   struct kb_errmsg *err);
/* Saves now when changes are unsaved (a retry after a failure). 0, or the save's error. */
int vmk_cfg_save(struct vmk_cfg *c, struct kb_errmsg *err);
void vmk_cfg_status(struct vmk_cfg *c, struct vmk_cfg_status *out);

/* ---- the archive format (archive.c) ----------------------------------------------------- */

struct vmk_cfg_kar_entry {
	char path[VMK_CFG_PATH_MAX + 1];
	uint32_t mode;
	uint64_t mtime_ns, generation;
	const uint8_t *data; /* borrowed from the decoded bytes */
	uint32_t len;
};

struct vmk_cfg_kar {
	uint64_t generation, written_ns;
	uint32_t n;
	struct vmk_cfg_kar_entry *entries; /* kb_malloc'ed; vmk_cfg_kar_free */
};

/* Decodes len bytes (untrusted; at most VMK_CFG_ARCHIVE_MAX) into out, whose entries point
 * into p. Every field is checked (docs/config-store.md); entries must be in strictly
 * ascending path order. 0, or KB_ETRUNCATED (shorter than its header and trailer says),
 * KB_EPROTO (bad magic or structure), KB_EVERSION, KB_ECHECKSUM, KB_ETOOBIG, KB_ECONFIG (a
 * bad path or file contents), -ENOMEM; err says what and where. */
int vmk_cfg_kar_decode(const void *p, size_t len, struct vmk_cfg_kar *out, struct kb_errmsg *err);
void vmk_cfg_kar_free(struct vmk_cfg_kar *k);
/* Encodes n entries (already sorted and checked) into out. 0, -ENOMEM or KB_ETOOBIG. */
int vmk_cfg_kar_encode(uint64_t generation, uint64_t written_ns, const struct vmk_cfg_kar_entry *e,
		       uint32_t n, struct kb_buf *out);

/* ---- advanced settings (advanced.c) ------------------------------------------------------
 * etc/keel/advanced.conf: "key = value" lines, '#' comments, blank lines. Known keys only. */

#define VMK_CFG_MIGRATE_STREAMS_MAX 8

struct vmk_cfg_advanced {
	int log_level;	     /* Misc.LogLevel: KB_LOG_*, -1 when not set */
	int migrate_encrypt; /* Migrate.Encrypt: 1 or 0, -1 when not set */
	int migrate_streams; /* Migrate.StreamsPerAdapter: 1..8, 0 when not set */
	int large_pages;     /* Mem.AllocGuestLargePage: 1 or 0, -1 when not set */
};

/* Parses the text (untrusted) into out. 0 or KB_ECONFIG with "line N: ..." in err. */
int vmk_cfg_advanced_parse(const void *text, size_t len, struct vmk_cfg_advanced *out,
			   struct kb_errmsg *err);
/* Checks the contents of a file the store knows (advanced.conf, network.conf, auth.db);
 * others pass. */
int vmk_cfg_contents_check(const char *path, const void *data, size_t len, struct kb_errmsg *err);
/* hostd's user database (VMK_CFG_AUTH, written by hostd only): 0 when it starts with
 * "keel-auth 1", ends with a newline, holds printable ASCII lines only, user root and root's
 * Admin permission on the root entity; else KB_ECONFIG with err set. hostd decodes it
 * strictly itself. */
int vmk_cfg_auth_check(const void *data, size_t len, struct kb_errmsg *err);

#endif
