/*
 * Background lease observation: vmkernel watches every host's heartbeat record on each of
 * its shared datastores all the time, so that judging a lock holder's lease after a host
 * failure (kernel/vm/owner.c) starts from what was already observed instead of from
 * scratch (ha/lease.h, docs/leases.md).
 *
 * Happy path: one thread makes a pass every VMK_DS_LW_INTERVAL_MS. A pass lists
 * <datastore>/.keel-hb/ on every watched datastore and reads each record named there (and
 * each one already known, listed or not) with ha_hb_read(); every read is stamped with the
 * watcher's own monotonic clock when it returns and fed into that record's struct
 * ha_lease_observer. vmk_ds_lw_lookup() hands out a copy of one observer.
 *
 * Safety, the same rules as every other observer: expiry is only ever observed by this
 * host's own clock from actual reads. A read that fails (missing, torn, corrupt, another
 * host's id inside) is fed in as nothing, so it counts as no change. A new observer starts
 * as if it had just seen an advance (ha_lease_observer_init), so it never calls a lease
 * expired before it has watched for a whole lease time. Observation must be continuous: when
 * two successive read attempts of one record are more than VMK_DS_LW_GAP_MS apart (the
 * thread was not scheduled, a read blocked on a slow datastore) the observer starts over
 * as a new one, and a lookup whose last attempt is older than that is refused; a lookup
 * therefore never rests on a history with a hole in it longer than the gap. The gap is
 * shorter than a writer's beat interval (HA_HB_INTERVAL_MS), so a hole hides at most one
 * beat, and one beat always leaves a counter different from the one read before it: a
 * counter read equal on both sides of a hole means the record was not written in it.
 *
 * Failure modes: a datastore whose directory cannot be listed still has its known records
 * read (they fail and count as no change). A record neither listed nor readable for
 * VMK_DS_LW_FORGET_MS is forgotten; a later lookup then finds nothing and the caller
 * watches from scratch. A record that could not get memory for its observer stays unknown.
 * At most VMK_DS_LW_HOSTS_MAX records per datastore are watched. A thread stuck in a read
 * that never returns cannot be joined: destroying gives up after VMK_DS_LW_STOP_WAIT_MS
 * and the thread frees the watcher when it finishes.
 *
 * Threads: vmk_ds_lw_poll() by one thread at a time (the watcher's own once started);
 * vmk_ds_lw_lookup() and vmk_ds_lw_sync() from any thread. The watcher's lock is never held
 * across I/O, so a lookup never waits for a datastore.
 */
#ifndef VMK_DS_LEASEWATCH_H
#define VMK_DS_LEASEWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/hb.h"
#include "ha/lease.h"
#include "kernel/ds/datastore.h"
#include "lib/err.h"
#include "lib/log.h"

#define VMK_DS_LW_INTERVAL_MS  100   /* a pass over every record */
#define VMK_DS_LW_GAP_MS       200   /* longest hole allowed in an observer's history */
#define VMK_DS_LW_FORGET_MS    60000 /* unlisted and unreadable this long: forgotten */
#define VMK_DS_LW_HOSTS_MAX    1024  /* records watched per datastore */
#define VMK_DS_LW_STOP_WAIT_MS 2000  /* how long destroying waits for the thread */

/* The watcher's clock: monotonic nanoseconds. */
typedef uint64_t (*vmk_ds_lw_clock_cb)(void *arg);
/* Reads and validates the record at path, as ha_hb_read() does: 0 and *rec, or an error. */
typedef int (*vmk_ds_lw_read_cb)(void *arg, const char *path, struct ha_hb_record *rec);

struct vmk_ds_lw_config {
	uint64_t host_id;	  /* this host: its own record is not watched (0: none skipped) */
	struct kb_logger *log;	  /* borrowed; must outlive the watcher's thread */
	uint32_t interval_ms;	  /* between passes; VMK_DS_LW_INTERVAL_MS by default */
	uint32_t lease_ms;	  /* the observers' lease time; HA_LEASE_MS by default */
	uint32_t gap_ms;	  /* VMK_DS_LW_GAP_MS by default */
	vmk_ds_lw_clock_cb clock; /* NULL (default): kb_now_ns(), CLOCK_MONOTONIC */
	void *clock_arg;
	vmk_ds_lw_read_cb read; /* NULL (default): ha_hb_read() */
	void *read_arg;
};

/* One record's observation, as vmk_ds_lw_lookup() reports it. Times are the watcher's
 * clock. */
struct vmk_ds_lw_view {
	struct ha_lease_observer obs; /* counter, last change (or start) and seen flag */
	uint64_t since_ns;	      /* when this observer started (new, or after a gap) */
	uint64_t last_read_ns;	      /* when the last read attempt returned */
	uint64_t reads;		      /* successful reads since since_ns */
	uint64_t failures;	      /* failed reads since since_ns */
};

struct vmk_ds_lw; /* opaque */

/* Defaults: host id 0, no logger, the intervals above, HA_LEASE_MS, the real clock and
 * ha_hb_read(). */
void vmk_ds_lw_config_init(struct vmk_ds_lw_config *cfg);

/* Creates a watcher that watches no datastore yet and has no thread; cfg is copied.
 * Returns 0 and *out (destroyed with vmk_ds_lw_destroy()), -EINVAL for a missing logger or
 * a zero interval, lease or gap, or -ENOMEM. */
int vmk_ds_lw_create(const struct vmk_ds_lw_config *cfg, struct vmk_ds_lw **out);

/* Starts the watcher's thread, which polls every interval on absolute CLOCK_MONOTONIC
 * deadlines (a pass longer than the interval skips the deadlines it overran). Returns 0,
 * -EALREADY, or -errno from pthread_create. */
int vmk_ds_lw_start(struct vmk_ds_lw *lw);

/* Stops the thread (if started) and frees the watcher; see above for a stuck thread. */
void vmk_ds_lw_destroy(struct vmk_ds_lw *lw);

/* Makes the watched datastores match reg (borrowed, for the call): every shared datastore
 * by its path, nothing else. A datastore that leaves loses its observers at once; one that
 * (re)joins starts with none. No I/O. Returns 0 or -ENOMEM (the datastores that could be
 * added are). Any thread; the caller serialises its use of reg. */
int vmk_ds_lw_sync(struct vmk_ds_lw *lw, const struct vmk_ds_registry *reg);

/* One pass over every watched datastore (blocks on its I/O). Returns the number of read
 * attempts made. One thread at a time: tests drive it on a virtual clock, the watcher's
 * thread calls it once started. */
size_t vmk_ds_lw_poll(struct vmk_ds_lw *lw);

/* A copy of the observation of host_id's record on the datastore at ds_path (as given to
 * vmk_ds_lw_sync(), i.e. struct vmk_ds.path). Returns 0 and *out; KB_ENOTFOUND when that
 * datastore is not watched or the record is not known (yet, or any more); KB_ETIMEOUT when
 * the last read attempt of it returned more than the gap ago (the observation is not
 * current). Any thread; never blocks on I/O. */
int vmk_ds_lw_lookup(struct vmk_ds_lw *lw, const char *ds_path, uint64_t host_id,
		     struct vmk_ds_lw_view *out);

#endif
