/*
 * vmkernel's host object: everything the daemon owns, shared by kernel/core and
 * kernel/vm. One per process; created in main.c.
 *
 * Threads: the libuv loop thread runs the control server and the supervision of vmx
 * processes; requests run on libuv's thread pool (power operations block for
 * milliseconds to seconds), so every shared object below has its own lock.
 */
#ifndef VMK_HOST_H
#define VMK_HOST_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "lib/list.h"
#include "lib/log.h"

struct vmk_ds_registry;
struct vmk_res;
struct vmk_net;

struct vmk_host {
	char state_dir[PATH_MAX];
	char run_dir[PATH_MAX];	    /* vmx control and console sockets, pid records */
	char socket_path[PATH_MAX]; /* the control socket */
	char vmx_bin[PATH_MAX];	    /* the vmx executable */
	char kguest[PATH_MAX];	    /* the default kguest image */
	struct kb_logger *log;
	uint64_t started_ns;
	uint64_t host_id; /* from <state dir>/clusterd.id (lib/nodeid.h), shared with clusterd */
	char cluster_sock[PATH_MAX]; /* <state dir>/clusterd.sock (kernel/core/cluster.h) */
	int cluster_timeout_ms;	     /* how long clusterd may take to answer (0: 5 s) */
	int large_pages; /* Mem.AllocGuestLargePage (advanced.conf, default 1): vmx gets
			  * --large-pages; set by the config store's loop, read with atomics */

	uv_loop_t *loop;
	uv_async_t wake; /* the loop picks up queued supervision work */

	struct vmk_ds_registry *ds;
	struct vmk_res *res;
	struct vmk_net *net;

	pthread_mutex_t lock;	/* guards vms and the inventory file */
	struct kb_list vms;	/* struct vmk_vm, registration order */
	struct kb_list watch_q; /* VMs whose vmx the loop must start watching */
};

#endif
