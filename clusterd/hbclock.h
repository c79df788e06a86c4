/*
 * Clock offsets in cluster health (docs/ntp.md, docs/liveness.md): each host reads its own
 * clock offset from its vmntpd's status file (DIR/vmntpd.status, kernel/ntp/main.c) once a
 * second and sends it in every BEAT; the leader keeps the last one of every host and
 * repeats them in its ACK peers, so every host's status shows them. A host is flagged
 * (ClusterHostStatus.clock_warn) when |offset| exceeds CD_CLOCK_WARN_MS.
 *
 * An offset is known only while vmntpd says chrony is synchronised and its status file is
 * fresh (written less than CD_CLOCK_STALE_MS ago); otherwise the host sends none.
 */
#ifndef CD_HBCLOCK_H
#define CD_HBCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define CD_CLOCK_WARN_MS   500	 /* the threshold of the warning */
#define CD_CLOCK_STALE_MS  10000 /* a status file older than this is ignored */
#define CD_CLOCK_PEERS_MAX 128	 /* ACKs carry peers' offsets up to this many hosts */

struct cd_daemon;

/* Reads DIR/vmntpd.status: true and *offset_us (clamped to +-1 day) when chrony is
 * synchronised and the file was written within CD_CLOCK_STALE_MS of now_wall_ns; false
 * otherwise (no vmntpd, not synchronised, stale, unreadable). Blocks on a small file
 * read; any thread. */
bool cd_clock_read(const char *state_dir, uint64_t now_wall_ns, int64_t *offset_us);

/* The last clock offset known for host id: this host's own, the leader's table of beats,
 * or a follower's copy of the leader's ACK. false when unknown. Loop thread. */
bool cd_hbnet_clock(struct cd_daemon *d, uint64_t id, int64_t *offset_us);

#endif
