/*
 * The change feed: hostd's versioned cache of the inventory's objects and WaitForUpdates
 * (docs/hostd.md, "Change feed").
 *
 * Every object (host, VM, datastore, network, cluster, task) has the version of its last
 * change. Versions come from one counter per hostd process; they grow with every change
 * and never repeat within a process. The first version of a process is its start time in
 * microseconds plus one, so a version from an earlier hostd is below every version of this
 * one and WaitForUpdates can tell that such a client must start over.
 *
 * Sources of changes: the inventory (gathered on a worker by vim_inventory.c, by a poller
 * every HD_FEED_POLL_MS while a WaitForUpdates stream is open, and by every
 * RetrieveInventory), compared with the cache object by object on their packed bytes; and
 * the task manager's observer hook, at once.
 *
 * Threads: everything here runs on the loop thread.
 */
#ifndef HD_VIM_FEED_H
#define HD_VIM_FEED_H

#include <stdbool.h>
#include <stdint.h>

#include "hostagent/grpc.h"
#include "hostagent/vim.h"
#include "vim.pb-c.h"

#define HD_FEED_POLL_MS	       200  /* inventory poll while a stream is open */
#define HD_FEED_TOMBSTONES_MAX 4096 /* removed objects remembered for resuming clients */

/* ---- gathering the inventory (vim_inventory.c) ------------------------------------------ */

/* A gathered inventory, borrowed by the callback for its duration. inv is NULL on failure
 * with status and error set; cluster_ok is false when clusterd did not answer (the hosts
 * are then this host alone and there is no cluster object). The callback may change the
 * version fields of inv's objects and inv->version. */
struct hd_inv_result {
	Keel__Vim__Inventory *inv;
	bool cluster_ok;
	enum hd_status status;
	const char *error;
};
typedef void (*hd_inv_cb)(struct hd_vim *v, struct hd_inv_result *r, void *arg);

/* Gathers clusterd's and vmkernel's view on a worker and calls cb once on the loop, never
 * from inside this call. 0, or -ENOMEM / a libuv error (cb will not run). */
int hd_inv_gather(struct hd_vim *v, hd_inv_cb cb, void *arg);

/* ---- the feed ---------------------------------------------------------------------------- */

struct hd_feed;

/* hostd's feed (one per struct hd_vim, made on first use, observing hd_vim_tasks(v));
 * NULL when out of memory. It lives as long as the process. */
struct hd_feed *hd_vim_feed(struct hd_vim *v);

/* Compares a gathered inventory with the cache: changed and new objects get a new version,
 * objects of the inventory's kinds that are no longer there are removed; open streams are
 * sent the changes. Fills in the version of every object of inv and inv->version (the
 * feed's version). When clusterd did not answer but the cache holds a cluster, nothing
 * changes (the versions are filled from the cache): a clusterd restart is not the cluster
 * vanishing. */
void hd_feed_apply(struct hd_feed *f, Keel__Vim__Inventory *inv, bool cluster_ok);

/* The feed's version: that of its last change. */
uint64_t hd_feed_version(const struct hd_feed *f);

/* WaitForUpdates (System.View on root): the changes after since_version, then every
 * change as it happens, until the client goes away. */
void hd_vim_wait_for_updates(struct hd_call *call, const ProtobufCMessage *req);

#endif
