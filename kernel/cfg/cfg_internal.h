/*
 * The config store's insides, shared by store.c (the tree) and persist.c (the archive on
 * disk, the status and the events). Not for use outside kernel/cfg.
 */
#ifndef VMK_CFG_INTERNAL_H
#define VMK_CFG_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "kernel/cfg/cfg.h"

struct vmk__cfg_file {
	char path[VMK_CFG_PATH_MAX + 1];
	uint8_t *data; /* kb_malloc'ed, len bytes (NULL when empty) */
	size_t len;
	uint32_t mode;
	uint64_t mtime_ns, generation;
};

struct vmk_cfg {
	struct vmk_cfg_config cfg;
	char dir[PATH_MAX]; /* "" when memory only */
	struct kb_logger *log;

	pthread_mutex_t lock;	     /* guards everything below but what save_lock guards */
	struct vmk__cfg_file *files; /* sorted by path */
	size_t n, cap;
	uint64_t generation;	  /* bumped by every change */
	uint64_t pgen;		  /* the generation of the last change of a persistent file */
	struct vmk_cfg_status st; /* its tree figures are filled in by vmk_cfg_status */
	size_t ev_head;		  /* events written; ring index is head % VMK_CFG_EVENTS */
	struct vmk_cfg_event ev[VMK_CFG_EVENTS];

	pthread_mutex_t save_lock; /* one save at a time; taken before lock */
	bool main_good;		   /* config.kar is a good archive (may become config.kar.1) */
	bool resave;		   /* write config.kar even if the tree did not change */
};

/* Records an event (and logs it). Called with c->lock held. */
void vmk__cfg_event(struct vmk_cfg *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Loads the archive from c->dir into the empty tree (at create). */
void vmk__cfg_load(struct vmk_cfg *c);
/* Writes the tree's persistent files as config.kar, if the tree is newer than what was
 * saved. Takes save_lock, then lock to encode. 0 or the failure (also in the status). */
int vmk__cfg_persist(struct vmk_cfg *c, struct kb_errmsg *err);
/* Encodes the tree's persistent files as an archive into out. Called with c->lock held. */
int vmk__cfg_encode(struct vmk_cfg *c, struct kb_buf *out);
/* Replaces the tree's persistent files with k's. Called with c->lock held; k's entries
 * are already checked. 0 or -ENOMEM (then the tree is unchanged). */
int vmk__cfg_replace(struct vmk_cfg *c, const struct vmk_cfg_kar *k, bool keep_mtime);

#endif
