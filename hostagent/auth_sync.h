/*
 * Replication of hostd's users, roles and permissions through clusterd
 * (docs/hostd-auth.md, "Replication"). The blob replicated is the auth store's text
 * (hostd_auth_db_encode); the cluster keeps it with a version that grows by one on each
 * change (AuthSet, compare-and-set on the version).
 *
 * A change made through the API is pushed with ClusterAuthSet(expect_version = the
 * version this host last applied); a stale push is refused by the cluster, the cluster's
 * store is adopted and the caller is told to retry. Every second the cluster's store is
 * read (ClusterAuthGet from the local clusterd); a store this host has not applied
 * replaces the live database (sessions of users that are gone, or whose password changed,
 * end), is written to DIR/auth.db and remembered in DIR/auth.version. A cluster with no
 * store yet gets this host's (the first host to push wins). Outside a cluster nothing is
 * sent and changes stay local.
 *
 * Threads: every function runs on the loop; clusterd is called on the thread pool.
 */
#ifndef HD_AUTH_SYNC_H
#define HD_AUTH_SYNC_H

#include <stddef.h>
#include <stdint.h>

struct hd_vim;

#define HD_AUTH_SYNC_TICK_MS 1000
#define HD_AUTH_VERSION_FILE "auth.version"

/* The end of a push: 0 (replicated, or clusterd could not be reached: then the change is
 * local and is pushed again later), -ESTALE (another host changed the store first: the
 * cluster's store has been applied, the change is gone), or -ECANCELED (hostd is
 * stopping: free what the push carried and touch nothing else). */
typedef void (*hd_auth_push_cb)(struct hd_vim *v, void *arg, int rv);

/* Reads DIR/auth.version and starts the 1 s timer. 0 or -ENOMEM. */
int hd_auth_sync_start(struct hd_vim *v);
/* Stops the timer; pushes not yet answered are answered -ECANCELED, also the one on the
 * thread pool when it comes back. */
void hd_auth_sync_stop(struct hd_vim *v);

/* Pushes len bytes of text (the encoded database after a local change; copied) to the
 * cluster. Returns 1 when this host is in no cluster (nothing is sent; cb is not called),
 * 0 when cb will be called once from the loop, or -ENOMEM. cb may be NULL (a database
 * taken from the config store: nobody waits; once pushed the copy is written). */
int hd_auth_sync_push(struct hd_vim *v, const void *text, size_t len, hd_auth_push_cb cb,
		      void *arg);

/* The text of DIR/auth.version for the store applied now: "VERSION HOST AT_MS\n" (all 0
 * before any), into out (size >= 64). Written after DIR/auth.db, never before it. */
void hd_auth_sync_version_text(struct hd_vim *v, char *out, size_t size);

#endif
