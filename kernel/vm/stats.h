/*
 * Host monitoring (kernel/vm/stats.c, stats_parse.c): one sample of every world — each
 * powered-on VM's vmx, vmkernel itself, and the host's services found through the flock
 * on their lock files in the state dir — with CPU used and ready time, memory, VM exits,
 * network and disk rates (docs/top.md).
 *
 * Rates are deltas against the previous sample vmkernel kept of the same world (the same
 * pid with the same start time), over the time between the two. A world without a usable
 * previous sample (none, older than VMK_STATS_STALE_MS, or younger than
 * VMK_STATS_MIN_MS) is sampled twice within the request, window_ms apart.
 *
 * The parsers and the rate math below are pure, for the unit tests.
 */
#ifndef VMK_STATS_H
#define VMK_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/core/host.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

#define VMK_STATS_WINDOW_MS	500 /* VmkPerf.window_ms 0 */
#define VMK_STATS_WINDOW_MIN_MS 100
#define VMK_STATS_WINDOW_MAX_MS 5000
#define VMK_STATS_MIN_MS	100   /* a previous sample younger than this is not used */
#define VMK_STATS_STALE_MS	60000 /* nor one older than this */

/*
 * Answers VmkPerf: fills rp->perf (allocated; freed by vmk_stats_reply_free()). Blocks for
 * up to window_ms plus one stats call per VM (thread-pool thread). 0, KB_ECONFIG (bad
 * window), KB_ENOTFOUND / KB_ESTATE (the VM named is unknown or not running), -ENOMEM; err
 * says why. A world that vanishes between its two samples is left out; a part of a world
 * that cannot be read (a vmx that does not answer) is named in its error field.
 */
int vmk_stats_perf(struct vmk_host *h, const Keel__Vmk__VmkPerf *rq, Keel__Vmk__VmkReply *rp,
		   struct kb_errmsg *err);
/* Frees what vmk_stats_perf() put in rp (nothing if it put nothing). */
void vmk_stats_reply_free(Keel__Vmk__VmkReply *rp);

/* ---- parsers (stats_parse.c): 0, or -EINVAL when the text is not of that form ---------- */

/* /proc/PID/task/TID/schedstat: "<run ns> <wait ns> <timeslices>". */
int vmk_stats_parse_schedstat(const char *text, uint64_t *run_ns, uint64_t *wait_ns);
/* One "KEY VALUE" or "KEY: VALUE" line of a keyed file (cgroup cpu.stat, memory.stat,
 * /proc/PID/io): the value of key. -ENOENT when key is absent. */
int vmk_stats_parse_keyed(const char *text, const char *key, uint64_t *out);
/* A file holding one decimal number (memory.current, a sysfs counter). */
int vmk_stats_parse_u64(const char *text, uint64_t *out);
/* /proc/PID/stat: field 22 (start time in ticks), after the command in parentheses. */
int vmk_stats_parse_start(const char *text, uint64_t *start);
/* /proc/PID/statm: the resident pages (second field). */
int vmk_stats_parse_statm_rss(const char *text, uint64_t *pages);
/* /proc/locks: the pid holding a lock on the file (dev major:minor, inode); -ENOENT when
 * no line names it. */
int vmk_stats_parse_lock_holder(const char *text, unsigned major, unsigned minor, uint64_t ino,
				pid_t *pid);

/* /proc/net/dev (the reader's network namespace, unlike sysfs, which shows the mounter's):
 * the counters of interface ifname; -ENOENT when it is not listed. */
struct vmk_stats_netdev {
	uint64_t rx_bytes, rx_packets, tx_bytes, tx_packets;
};
int vmk_stats_parse_netdev(const char *text, const char *ifname, struct vmk_stats_netdev *out);

/* ---- rate math ---------------------------------------------------------------------------- */

/* Events per second from two readings of a counter dt_ns apart; 0 when dt_ns is 0 or the
 * counter went backwards (reset). */
double vmk_stats_rate(uint64_t prev, uint64_t cur, uint64_t dt_ns);
/* Percent of one CPU that a nanosecond counter advanced over dt_ns (same rules). */
double vmk_stats_pct(uint64_t prev_ns, uint64_t cur_ns, uint64_t dt_ns);
/* Whether a thread name is a vCPU's ("vcpuN"), with N in *id. */
bool vmk_stats_vcpu_thread(const char *comm, uint32_t *id);

#endif
