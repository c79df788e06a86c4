/*
 * Sockets on VMkernel adapters, for the host's daemons (clusterd, vMotion, FT).
 *
 * A service finds "its" adapter by tag, the way ESXi's services do: clusterd uses the
 * adapter tagged Management (vmk0 by convention), migration the one tagged VMotion, FT
 * logging FaultToleranceLogging. vmk_net_tagged_socket() reads <state dir>/network.conf
 * (with kernel/net's strict parser), takes the first adapter carrying the tag in
 * configuration order, and returns a socket created inside that adapter's netstack and
 * bound to its address. The socket keeps its namespace for its whole life, so the caller
 * uses it from any thread like any other socket.
 *
 * The netstack defaultTcpipStack is the namespace the caller runs in: a daemon of a host
 * runs in the namespace of that host's vmkernel. Other netstacks are entered through their
 * namespace file <state dir>/netns/<name>, a bind mount vmkernel made; the caller must be
 * root (CAP_SYS_ADMIN for setns) and share vmkernel's mount namespace (start it with
 * `nsenter --net=...`, not `ip netns exec`, which gives a process mounts of its own).
 *
 * Independent of vmkernel's internals: it needs no running vmkernel and no struct vmk_net,
 * only the state dir. Thread-safe: each call works on its own short-lived thread.
 */
#ifndef VMK_NET_STACK_SOCKET_H
#define VMK_NET_STACK_SOCKET_H

#include <stdint.h>
#include <netinet/in.h>

#include "lib/err.h"

/* The adapter that carries a tag. */
struct vmk_net_tagged {
	char vmknic[16];	 /* "vmk1" */
	char netstack[32];	 /* "vmotion", "defaultTcpipStack" */
	struct sockaddr_in addr; /* its address, port 0 */
	uint8_t prefix;
};

/* Finds the first adapter of <state_dir>/network.conf carrying tag (Management, VMotion,
 * FaultToleranceLogging, Provisioning, vSAN, Replication; any case). 0; KB_ENOTFOUND when
 * none does; KB_ECONFIG for an unknown tag or a malformed file; -errno (-ENOENT: no
 * network.conf). */
int vmk_net_tagged_lookup(const char *state_dir, const char *tag, struct vmk_net_tagged *out,
			  struct kb_errmsg *err);

/* Creates a socket of type (SOCK_STREAM, SOCK_DGRAM; SOCK_CLOEXEC is added) in the netstack
 * of the adapter carrying tag, bound to the adapter's address and port (0: any free port;
 * a given port gets SO_REUSEADDR). Returns the descriptor (caller closes it) with the bound
 * address in *bound when not NULL, or an error as vmk_net_tagged_lookup() and -errno of
 * setns/socket/bind (KB_ENOTFOUND also when the netstack's namespace is not mounted). */
int vmk_net_tagged_socket(const char *state_dir, const char *tag, int type, uint16_t port,
			  struct sockaddr_in *bound, struct kb_errmsg *err);

/* Every adapter of <state_dir>/network.conf carrying tag, in configuration order: up to
 * max of them into out, their number (all of them, even past max) into *n. 0 (also when
 * none carries it: *n is 0); errors as vmk_net_tagged_lookup() otherwise. */
int vmk_net_tagged_list(const char *state_dir, const char *tag, struct vmk_net_tagged *out,
			size_t max, size_t *n, struct kb_errmsg *err);

/* As vmk_net_tagged_socket(), on the adapter t (from vmk_net_tagged_lookup() or _list()):
 * a socket created in t's netstack, bound to t's address and port. */
int vmk_net_adapter_socket(const char *state_dir, const struct vmk_net_tagged *t, int type,
			   uint16_t port, struct sockaddr_in *bound, struct kb_errmsg *err);

#endif
