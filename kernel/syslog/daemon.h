/*
 * vmsyslogd's daemon state (main.c) and its control socket (ctl.c). Everything here is
 * owned by the loop thread; remotes are internally locked (vsl.h).
 */
#ifndef VSL_DAEMON_H
#define VSL_DAEMON_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "kernel/syslog/tail.h"
#include "kernel/syslog/vsl.h"
#include "lib/ctlserver.h"
#include "lib/log.h"

#define VSL_EVENTS    32
#define VSL_EVENT_MAX 512
#define VSL_VMS_MAX   1024

struct vsl_event {
	uint64_t time_ns;
	int level;
	char text[VSL_EVENT_MAX];
};

struct vsl_daemon {
	char state_dir[PATH_MAX];
	char vmk_socket[PATH_MAX];
	char ctl_socket[PATH_MAX];
	char hostname[VSL_HOSTNAME_MAX + 1];
	uint64_t poll_ms; /* how often the config store is asked */
	uint64_t started_ns;
	struct kb_logger *log;
	uv_loop_t *loop;

	/* the configuration in force */
	struct vsl_conf conf;
	uint64_t conf_generation;
	char conf_error[KB_ERRMSG_SIZE];
	uint64_t conf_checked_ns;
	bool fetching;
	struct vsl_remote *remotes[VSL_REMOTES_MAX];
	size_t n_remotes;

	struct vsl_tail tail;
	uint64_t inventory_mtime_ns;
	uint64_t test_seq;

	/* events: written from remotes' threads too */
	pthread_mutex_t ev_mu;
	struct vsl_event events[VSL_EVENTS];
	unsigned ev_head; /* total events; index is head % VSL_EVENTS */
};

/* Records an event (and logs it). Any thread. */
void vsl__event(struct vsl_daemon *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Formats one message and queues it for every remote. Loop thread. */
void vsl__send_all(struct vsl_daemon *d, const struct vsl_msg_fields *f);

/* The control socket: <state dir>/vmsyslogd.sock. 0 or a libuv error (err says why). */
int vsl__ctl_start(struct vsl_daemon *d, struct kb_errmsg *err);
void vsl__ctl_stop(void);

#endif
