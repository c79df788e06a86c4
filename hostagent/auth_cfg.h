/*
 * hostd's users, roles and permissions in vmkernel's config store (docs/hostd-auth.md,
 * "Where the database lives"; docs/config-store.md, "Users and roles").
 *
 * The database's text (hostd_auth_db_encode) is the store's file etc/keel/auth.db (0600),
 * so it is in config.kar with the rest of the host's configuration. DIR/auth.db is a
 * derived copy, written after every change; hostd reads it only when vmkernel does not
 * answer at its start, or when it holds changes the store has not taken yet (DIR/
 * auth.pending says so).
 *
 * Happy path of a change: the database is changed on the loop and encoded; the text is put
 * into the store on a worker (one put at a time, in the order of the changes); then the
 * caller replicates it and writes the copy. Failure modes: vmkernel does not answer (the
 * change is kept: the caller is told HD_AUTH_CFG_QUEUED, writes the copy with DIR/
 * auth.pending, and the live database is put again every HD_AUTH_CFG_RETRY_MS until
 * vmkernel takes it); vmkernel refuses the put (the store's archive is full, ...: the live
 * database goes back to the last text the store took, this change and every one queued
 * behind it are refused with vmkernel's reason).
 *
 * Threads: the loop, except hd_auth_cfg_load and hd_auth_cfg_start (hostd's start, before
 * the loop runs: they block on vmkernel's socket for at most a few seconds).
 */
#ifndef HD_AUTH_CFG_H
#define HD_AUTH_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "hostagent/auth.h"
#include "kernel/cfg/cfg.h"
#include "lib/err.h"

struct hd_vim;

#define HD_AUTH_CFG_PATH     VMK_CFG_AUTH
#define HD_AUTH_CFG_MODE     0600
#define HD_AUTH_CFG_MAX	     VMK_CFG_FILE_MAX /* the store's limit of one file */
#define HD_AUTH_CFG_RETRY_MS 2000
#define HD_AUTH_PENDING_FILE "auth.pending"

/* A put's end for the caller: the change is in the store. */
#define HD_AUTH_CFG_STORED 0
/* vmkernel did not answer: the change is kept and put when it answers. */
#define HD_AUTH_CFG_QUEUED 1

/* Where the database came from at start. */
enum hd_auth_cfg_from {
	HD_AUTH_FROM_STORE,	     /* the store's etc/keel/auth.db */
	HD_AUTH_FROM_COPY,	     /* DIR/auth.db: vmkernel did not answer */
	HD_AUTH_FROM_COPY_PENDING,   /* DIR/auth.db with DIR/auth.pending: newer than the store */
	HD_AUTH_FROM_COPY_TAKEN_IN,  /* DIR/auth.db: the store has none (a host from before) */
	HD_AUTH_FROM_COPY_STORE_BAD, /* DIR/auth.db: the store's does not decode */
	HD_AUTH_FROM_NEW,	     /* nothing anywhere: bootstrap root */
	HD_AUTH_FROM_NEW_STORE_BAD,  /* the store's does not decode and there is no copy */
};

/* What was found at start. store_rv: 0 (vmkernel answered with the file), KB_ENOTFOUND
 * (answered without it), anything else (did not answer). copy_rv: 0 (DIR/auth.db read),
 * -ENOENT (none), another error (unreadable). Buffers borrowed. */
struct hd_auth_cfg_found {
	int store_rv;
	const void *store;
	size_t store_len;
	int copy_rv;
	const void *copy;
	size_t copy_len;
	bool pending; /* DIR/auth.pending exists */
};

/* Pure: where the database comes from (table in docs/hostd-auth.md). 0 with *from and
 * *db (decoded, caller destroys; NULL for HD_AUTH_FROM_NEW*: bootstrap one), or an error
 * with e set when the only database there is does not decode (a copy that does not
 * decode while the store has none or does not answer; hostd does not start, as before
 * the store). When the store's text does not decode, *store_error (size KB_ERRMSG_SIZE,
 * may be NULL) says why. */
int hd_auth_cfg_choose(const struct hd_auth_cfg_found *in, struct hostd_auth_db **db,
		       enum hd_auth_cfg_from *from, char *store_error, struct kb_errmsg *e);
/* Whether the database must be put into the store after start from `from`. */
bool hd_auth_cfg_from_needs_put(enum hd_auth_cfg_from from);
const char *hd_auth_cfg_from_name(enum hd_auth_cfg_from from);

/* Pure: 0 when len bytes fit the store's file limit, else KB_ETOOBIG with e set ("the user
 * database would exceed 64 KiB"). */
int hd_auth_cfg_size_check(size_t len, struct kb_errmsg *e);

/* At start, blocking: reads the store's etc/keel/auth.db (over v->vmk_sock), DIR/auth.db
 * and DIR/auth.pending, chooses (above) and logs where the database comes from. 0 with
 * *db (NULL: bootstrap one) and *from, or an error with e set. */
int hd_auth_cfg_load(struct hd_vim *v, struct hostd_auth_db **db, enum hd_auth_cfg_from *from,
		     struct kb_errmsg *e);
/* At start, blocking, with v->db set: puts it into the store when `from` needs it (vmkernel
 * not answering is not an error: the put is retried on a timer), writes DIR/auth.db when
 * it differs, and starts the retry timer. 0, -ENOMEM, or the copy's write error. */
int hd_auth_cfg_start(struct hd_vim *v, enum hd_auth_cfg_from from, struct kb_errmsg *e);
void hd_auth_cfg_stop(struct hd_vim *v);

/* The end of a put: HD_AUTH_CFG_STORED, HD_AUTH_CFG_QUEUED, -ECANCELED (hostd is
 * stopping: free what arg holds, touch nothing else) or another negative code with msg
 * (the change was refused; the live database was put back to the store's). */
typedef void (*hd_auth_cfg_cb)(struct hd_vim *v, void *arg, int rv, const char *msg);

/* Puts len bytes of text (the live database, encoded after a change; copied) into the
 * store, after the puts queued before it. keep: the text must not be rolled back (a
 * database adopted from the cluster): when vmkernel refuses it, it stays live and is put
 * again later. cb is called once, from the loop (maybe before this returns). 0 or
 * -ENOMEM (cb not called). */
int hd_auth_cfg_put(struct hd_vim *v, const void *text, size_t len, bool keep, hd_auth_cfg_cb cb,
		    void *arg);
/* Whether the store lacks the live database (vmkernel did not answer). */
bool hd_auth_cfg_pending(struct hd_vim *v);
/* Whether puts are queued or in flight (a read from the cluster must not replace the
 * database under them). */
bool hd_auth_cfg_busy(struct hd_vim *v);
/* Puts the live database back to the text of the last put asked for (or loaded at start):
 * undoes a change refused before its put (too large). 0, or -ENOMEM / the decoder's
 * error (the change then stays live, and is put with the next one). */
int hd_auth_cfg_undo(struct hd_vim *v);

#endif
