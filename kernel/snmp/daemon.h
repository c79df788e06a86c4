/*
 * keel-snmpd's daemon parts: polling vmkernel and clusterd (poll.c) and the AgentX side
 * (agent.c). These link net-snmp and the generated protobuf code; keel and the unit tests
 * use only ksnmp.h's conf.c and mib.c.
 */
#ifndef KSNMP_DAEMON_H
#define KSNMP_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/snmp/ksnmp.h"
#include "lib/log.h"

/* ---- poll.c: one look at the host (any thread; blocking, each request at most 3 s) ---- */

/* Host info and VM list from vmkernel at sock into s (host_ok, the host fields, this
 * host's VMs). 0, or a negative code with err set. */
int ksnmp__poll_vmk(const char *sock, struct ksnmp_snapshot *s, struct kb_errmsg *err);
#define KSNMP_EVENTS_UNSEEN UINT64_MAX /* *since before the first look at the events */

/* ClusterStatus from clusterd at sock: when the host is in a cluster sets in_cluster, the
 * hosts, the leader, HA settings, and adds the cluster's VMs that s does not hold yet (VMs
 * of other hosts; this host's VMs take the owner's name as their host). Then the events
 * after *since, kept in s->events; the first call (*since KSNMP_EVENTS_UNSEEN) keeps none
 * and only moves *since to the last event there is (0 for none).
 * A clusterd that does not run is not an error: in_cluster stays false and 0 is returned.
 * 0, or a negative code with err set. */
int ksnmp__poll_cluster(const char *sock, struct ksnmp_snapshot *s, uint64_t *since,
			struct kb_errmsg *err);
/* KSNMP_CONF_PATH from vmkernel's config store: 0 with *found, text appended to out and
 * *generation; or a negative code with err set. */
int ksnmp__fetch_conf(const char *sock, bool *found, struct kb_buf *out, uint64_t *generation,
		      struct kb_errmsg *err);

/* ---- agent.c: net-snmp's agent library as an AgentX subagent (the main thread only) ---- */

struct ksnmp_agent_status {
	bool connected;
	uint64_t connected_since_ns, lost_ns; /* CLOCK_REALTIME; 0: never */
	uint64_t connects, reconnects, traps_sent, requests;
};

/* Event from the agent library (connected, lost): level KB_LOG_*. */
typedef void (*ksnmp_agent_event_cb)(void *arg, int level, const char *text);

/* Starts the subagent: AgentX to agentx_socket, pinged every ping_s seconds (a lost master
 * is tried again at that interval), the keelMIB subtree registered. table is borrowed: the
 * agent answers from it until ksnmp__agent_stop; the caller swaps its contents only on the
 * main thread between two ksnmp__agent_run calls. 0 or a negative code. */
int ksnmp__agent_start(const char *agentx_socket, int ping_s, struct ksnmp_table *table,
		       ksnmp_agent_event_cb cb, void *arg, struct kb_logger *log);
/* Serves requests for up to timeout_ms. */
void ksnmp__agent_run(int timeout_ms);
/* Sends one notification through the master (queued by net-snmp when not connected: it is
 * then counted as not sent). true when handed to a connected master. */
bool ksnmp__agent_notify(const struct ksnmp_notice *n, uint32_t uptime_ticks);
void ksnmp__agent_status(struct ksnmp_agent_status *out);
void ksnmp__agent_stop(void);

#endif
