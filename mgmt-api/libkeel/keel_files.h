/*
 * libkeel's file transfers: datastore files and host files over HTTPS from hostd
 * (docs/hostd-files.md), streamed through libcurl on the trust settings and the session of
 * a struct kl_client (keel_client.h).
 *
 *     kl_client_open(url, &opts, &c, &st);  kl_client_login(c, "root", pw, NULL, &st);
 *     kl_file_put(c, "datastore1", "web01/disk.img", fd, size, NULL, NULL, &created, &st);
 *     kl_file_get(c, "datastore1", "web01/web01.vmx", out_fd, NULL, NULL, &bytes, &st);
 *     kl_host_file_get(c, "vmkernel.log", out_fd, NULL, NULL, &bytes, &st);
 *
 * Each transfer is one request (GET or PUT /folder/<path>?dsName=<ds>, GET /host/<file>)
 * over HTTP/2 on a connection of its own, with the client's TLS trust (CA file or pinned
 * thumbprint), its session token (x-keel-session) and its connect timeout; there is no
 * overall time limit (a file may be large), but a transfer that moves no byte for 60 s is
 * ended. Bytes go straight between the file descriptor and the connection, a buffer at a
 * time: nothing holds the whole file.
 *
 * Failures arrive in struct kl_status as for the unary calls: an HTTP status from hostd is
 * mapped to a code (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 400 and 405
 * INVALID_ARGUMENT, 413 and 507 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, others UNKNOWN) with
 * hostd's one-line explanation as the message (source KL_SRC_SERVER); no connection or an
 * untrusted certificate as for the calls (KL_SRC_TRANSPORT, KL_SRC_TLS); a local read or
 * write failure or a bad argument is KL_SRC_CLIENT; a progress callback that asked to stop
 * is CANCELLED.
 *
 * Threads: like the client: one thread at a time per client.
 */
#ifndef KL_KEEL_FILES_H
#define KL_KEEL_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "mgmt-api/libkeel/keel_client.h"

#define KL_FILE_PATH_MAX 4000 /* bytes of a datastore path (hostd's limit) */

/* Progress of a transfer: done bytes of total (0 when not known yet). Return 0 to go on,
 * anything else to stop (the transfer then fails with CANCELLED). Called from inside the
 * transfer, a few times a second and at the end. */
typedef int (*kl_progress_cb)(void *arg, uint64_t done, uint64_t total);

/*
 * Downloads the file path (relative to the datastore's root, '/'-separated) of datastore
 * ds into fd (written from its current position; borrowed). progress may be NULL. 0 with
 * *bytes (may be NULL) the bytes written, or -code (a negated enum kl_code) with st set;
 * what was written before a failure stays in fd.
 */
int kl_file_get(struct kl_client *c, const char *ds, const char *path, int fd,
		kl_progress_cb progress, void *arg, uint64_t *bytes, struct kl_status *st);

/*
 * Uploads size bytes read from fd (from its current position; borrowed) as the file path
 * of datastore ds, replacing it whole when it exists (hostd stores it under a temporary
 * name and renames it at the end: a failed upload leaves the old file). The directory
 * must exist. 0 with *created (may be NULL) true when the file is new, or -code with st.
 */
int kl_file_put(struct kl_client *c, const char *ds, const char *path, int fd, uint64_t size,
		kl_progress_cb progress, void *arg, bool *created, struct kl_status *st);

/* Downloads the host file name ("vmkernel.log", "network.conf", ...; docs/hostd-files.md
 * lists them) into fd. Returns as kl_file_get. */
int kl_host_file_get(struct kl_client *c, const char *name, int fd, kl_progress_cb progress,
		     void *arg, uint64_t *bytes, struct kl_status *st);

/* ---- internal: keel_client.c gives keel_files.c what it needs of a client ------------- */

/* A new easy handle with c's options (TLS trust or pin, connect timeout, no proxy, HTTP/2)
 * and *url the server's base URL (borrowed from c). NULL when out of memory. Caller
 * cleans the handle up with curl_easy_cleanup; c must outlive it. */
CURL *kl__client_dup_handle(struct kl_client *c, const char **url);

#endif
