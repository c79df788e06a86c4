/*
 * clusterd's Raft transport (docs/clusterd.md, "Transport"): libraft's TCP transport for
 * listening, and connections of its own that notice a dead path in about a second.
 *
 * libraft sends each message down one TCP connection per peer and reconnects only when a
 * write fails. A path that drops packets (a cut link, an isolated host) fails no write:
 * the kernel retransmits with backoff (0.2, 0.4, ... 3.2 s apart), so once the path heals
 * the peer hears again only at the next retransmission, seconds later, and a connection
 * attempt made meanwhile waits on SYN retransmissions the same way. In those seconds the
 * leader may lose its quorum and every host its leader. So this transport:
 *
 * - connects itself (libraft's handshake: u64 protocol 1, u64 server id, u64 address
 *   size padded to 8, the address NUL-padded; all little-endian) with TCP_NODELAY and
 *   TCP_USER_TIMEOUT set before connecting: data (or a SYN) unacknowledged for
 *   CD_RAFT_TCP_USER_TIMEOUT_MS aborts the connection, libraft's write fails and it
 *   connects again after its retry delay. Not shorter: on a loaded machine the kernel's
 *   packet processing (ksoftirqd) can hold acknowledgements back for over a second, and
 *   1 s made healthy connections fail over and over;
 * - gives a connection attempt CD_RAFT_TCP_CONNECT_MS: after that, unless its socket has
 *   connected meanwhile (the loop may have stalled), it is closed and reported failed
 *   (libraft tries again), so a SYN lost in a cut is resent soon after the path heals
 *   rather than after TCP's doubling delays;
 * - sets TCP keepalive (idle 5 s, 1 s apart, 3 probes) on accepted connections, which
 *   libraft only reads: one whose peer vanished is closed in ~8 s instead of never.
 *
 * Listening and accepting are libraft's (raft_uv_tcp), unchanged.
 */
#ifndef CD_RAFTTCP_H
#define CD_RAFTTCP_H

#include <stdbool.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "lib/list.h"

#define CD_RAFT_TCP_USER_TIMEOUT_MS 3000
#define CD_RAFT_TCP_CONNECT_MS	    1000

struct cd_rafttcp {
	struct raft_uv_transport io;  /* what raft_uv_init is given */
	struct raft_uv_transport tcp; /* libraft's TCP transport: listening */
	uv_loop_t *loop;
	raft_id id;
	char address[64];
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	struct kb_list attempts; /* connection attempts in flight */
	bool closing, tcp_closed;
};

/* Sets up t on loop: 0 or a RAFT_* code. */
int cd_rafttcp_init(struct cd_rafttcp *t, uv_loop_t *loop);
/* Releases what cd_rafttcp_init made, once libraft has closed the transport. */
void cd_rafttcp_close(struct cd_rafttcp *t);

#endif
