/*
 * The host's heartbeat records on its shared datastores (ha/hb.h; docs/leases.md): one
 * writer thread per shared datastore, each rewriting <datastore>/.keel-hb/<host id> every
 * HA_HB_INTERVAL_MS. The record is the host's lease on every VM it owns, so it must keep
 * advancing while vmkernel lives, however busy its loop and thread pool are, and stop when
 * vmkernel dies or hangs as a whole.
 *
 * Each writer has a thread of its own because every beat is one synchronous write
 * (O_DIRECT | O_DSYNC) that blocks for as long as the storage does; a slow datastore
 * delays only its own record. Beats follow absolute CLOCK_MONOTONIC deadlines
 * (clock_nanosleep with TIMER_ABSTIME), so the rate does not drift with the time a write
 * takes; deadlines missed during a slow write are skipped, not made up in a burst.
 *
 * Failure modes: a beat that fails (or a record that cannot be opened, e.g. a share not
 * mounted yet) is logged, rate-limited, and tried again at the next deadline with the file
 * reopened; the counter never goes backwards. A writer stuck in a write that never returns
 * cannot be joined: stopping it gives up waiting after VMK_DS_HB_STOP_WAIT_MS and lets it
 * finish on its own.
 *
 * Threads: a set is used by one thread at a time (the caller serialises, as for the
 * registry), except vmk_ds_hb_status(), which any thread may call.
 */
#ifndef VMK_DS_HEARTBEAT_H
#define VMK_DS_HEARTBEAT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/ds/datastore.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"

#define VMK_DS_HB_STOP_WAIT_MS 2000  /* how long stopping waits for a writer's thread */
#define VMK_DS_HB_LOG_EVERY_MS 10000 /* at most one line per writer per this about failures */

struct vmk_ds_hb_config {
	uint64_t host_id;      /* non-zero: the host's id (lib/nodeid.h) */
	struct kb_logger *log; /* borrowed; must outlive every writer thread */
	uint32_t interval_ms;  /* between beats; HA_HB_INTERVAL_MS by default */
	unsigned io_opts;      /* ha_hb_writer_open() options: 0 or HA_IO_NO_DIRECT */
};

/* One writer's state, as vmk_ds_hb_status() reports it. */
struct vmk_ds_hb_status {
	char name[VMK_DS_NAME_MAX + 1];
	char path[VMK_DS_PATH_MAX + 1];	 /* the datastore's directory */
	uint64_t counter;		 /* last counter written; 0 before the first beat */
	uint64_t beats;			 /* successful writes since the writer started */
	uint64_t failures;		 /* failed opens and writes since the writer started */
	uint64_t late;			 /* deadlines skipped because a write took too long */
	int last_err;			 /* 0 when the last attempt succeeded, else its error */
	char last_error[KB_ERRMSG_SIZE]; /* message of the last failure ("" if none yet) */
};

struct vmk_ds_hb_set {
	struct vmk_ds_hb_config cfg;
	pthread_mutex_t lock;	/* guards writers (the list, not each writer's status) */
	struct kb_list writers; /* struct vmk_ds_hb (heartbeat.c), registry order */
};

/* Defaults: host id 0 (the caller sets it), no logger, HA_HB_INTERVAL_MS, io_opts 0. */
void vmk_ds_hb_config_init(struct vmk_ds_hb_config *cfg);

/* Sets up a caller-allocated, empty set; cfg is copied. -EINVAL for a zero host id or
 * interval or a missing logger. Close with vmk_ds_hb_set_close(). */
int vmk_ds_hb_set_init(struct vmk_ds_hb_set *set, const struct vmk_ds_hb_config *cfg);

/* Stops every writer (all are asked at once, then waited for) and frees the set. The
 * records stay on disk and stop advancing. */
void vmk_ds_hb_set_close(struct vmk_ds_hb_set *set);

/* Makes the set match reg (borrowed, for the call): a writer for every shared datastore,
 * none for anything else. Writers of datastores that left reg, became local or moved are
 * stopped (before this returns, unless one is stuck in I/O: see above); new ones are
 * started, each opening its record on its own thread. Returns 0, or -errno/-ENOMEM when a
 * thread could not be started (err says for which datastore; the others are started). */
int vmk_ds_hb_sync(struct vmk_ds_hb_set *set, const struct vmk_ds_registry *reg,
		   struct kb_errmsg *err);

/* A copy of every writer's status, in registry order. On success *out (n entries, possibly
 * 0 and NULL) is the caller's, freed with kb_free(). 0 or -ENOMEM. Any thread. */
int vmk_ds_hb_status(struct vmk_ds_hb_set *set, struct vmk_ds_hb_status **out, size_t *n);

#endif
