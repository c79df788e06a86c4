/*
 * keel-snmpd — the host's SNMP subagent (docs/snmp.md). Contracts shared by the files of
 * kernel/snmp/ and by `keel host snmp` and the unit tests, which link conf.c and mib.c
 * (libksnmp.a) without net-snmp.
 *
 * Happy path: the daemon reads etc/keel/snmp.conf from vmkernel's config store (conf.c),
 * polls vmkernel (host info, VM list) and clusterd (ClusterStatus, events) about once a
 * second (poll.c), turns what it saw into a sorted table of MIB values (mib.c: the
 * KEEL-MIB objects, their types and index encodings) and serves that table to snmpd over
 * AgentX (agent.c, net-snmp's agent library in subagent mode). Differences between two
 * polls and new cluster events become notifications (mib.c decides which, agent.c sends
 * them).
 *
 * Failure modes: an snmpd that goes away is pinged and reconnected by the agent library;
 * each loss and each reconnection is logged, counted and kept as an event in the status.
 * A vmkernel or clusterd that does not answer leaves the last values served, and the
 * status says why. A snmp.conf that does not parse is refused as a whole.
 *
 * Symbols shared between these files carry the ksnmp_ prefix.
 */
#ifndef KSNMP_H
#define KSNMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* ---- configuration (conf.c) ----------------------------------------------------------- */

#define KSNMP_CONF_PATH	     "etc/keel/snmp.conf" /* in vmkernel's config store */
#define KSNMP_SINKS_MAX	     8
#define KSNMP_HOST_MAX	     253
#define KSNMP_COMMUNITY_MAX  64
#define KSNMP_PATH_MAX	     1024
#define KSNMP_AGENTX_DEFAULT "/var/agentx/master"
#define KSNMP_DROPIN_DEFAULT "/etc/snmp/snmpd.conf.d/keel.conf"
#define KSNMP_TRAP_PORT	     162

struct ksnmp_sink {
	char host[KSNMP_HOST_MAX + 1]; /* a name or a dotted-quad IPv4 address */
	uint16_t port;
};

struct ksnmp_conf {
	bool enabled;
	char community[KSNMP_COMMUNITY_MAX + 1]; /* read-only community */
	size_t n_sinks;
	struct ksnmp_sink sinks[KSNMP_SINKS_MAX];
	char agentx_socket[KSNMP_PATH_MAX]; /* absolute path */
	char dropin[KSNMP_PATH_MAX];	    /* absolute path of the snmpd drop-in */
};

/* Defaults: disabled, community "public", no sinks, the default socket and drop-in. */
void ksnmp_conf_defaults(struct ksnmp_conf *c);
/* Parses snmp.conf (untrusted text): "key = value" lines, '#' comments, blank lines; keys
 * enabled (yes|no), community, trap_sink (repeatable), agentx_socket, dropin. 0, or
 * KB_ECONFIG with "line N: ..." in err. */
int ksnmp_conf_parse(const void *text, size_t len, struct ksnmp_conf *out, struct kb_errmsg *err);
/* "HOST[:PORT]" (port default 162): 0 and *out, or KB_ECONFIG with the reason in err. */
int ksnmp_sink_parse(const char *s, struct ksnmp_sink *out, struct kb_errmsg *err);
/* A community: 1..64 printable ASCII characters, no space, '#', quote or backslash. */
int ksnmp_community_check(const char *s, struct kb_errmsg *err);
/* An absolute path without control characters or spaces, shorter than KSNMP_PATH_MAX. */
int ksnmp_path_check(const char *what, const char *s, struct kb_errmsg *err);
/* Writes c as snmp.conf text that ksnmp_conf_parse reads back. 0 or -ENOMEM. */
int ksnmp_conf_render(const struct ksnmp_conf *c, struct kb_buf *out);
/* Writes the snmpd drop-in for c: AgentX master on c->agentx_socket, the read-only
 * community limited to the Keel subtree and the system group, one trap2sink per sink.
 * 0 or -ENOMEM. */
int ksnmp_dropin_render(const struct ksnmp_conf *c, struct kb_buf *out);

/* ---- the MIB (mib.c) ------------------------------------------------------------------- */

/* The Keel enterprise arc: 1.3.6.1.4.1.99999 is a PLACEHOLDER private enterprise number,
 * not assigned to the project by IANA (KEEL-MIB.txt and docs/snmp.md say so). */
#define KSNMP_ENTERPRISE 99999u
#define KSNMP_OID_MAX	 128

/* The prefix of every Keel object: 1.3.6.1.4.1.99999.1 (keelMIB). */
extern const uint32_t ksnmp_mib_root[];
extern const size_t ksnmp_mib_root_len;

/* Value types, as SMIv2 names them. */
enum ksnmp_type {
	KSNMP_INTEGER,	 /* INTEGER / enumerations / TruthValue */
	KSNMP_STRING,	 /* DisplayString */
	KSNMP_COUNTER32, /* wraps at 2^32 */
	KSNMP_GAUGE32,	 /* capped at 2^32 - 1 */
	KSNMP_TIMETICKS, /* hundredths of a second, wraps at 2^32 */
	KSNMP_COUNTER64,
};

struct ksnmp_oid {
	uint32_t sub[KSNMP_OID_MAX];
	size_t len;
};

/* One object instance. */
struct ksnmp_var {
	struct ksnmp_oid oid;
	enum ksnmp_type type;
	int64_t num; /* INTEGER, counters, gauges, ticks */
	char *str;   /* DisplayString (owned by the table) */
};

/* The MIB's values at one moment: instances sorted by OID. */
struct ksnmp_table {
	struct ksnmp_var *vars;
	size_t n, cap;
	bool sorted;
};

/* Enumerations of KEEL-MIB (KeelHostState, KeelPowerState, TruthValue). */
enum ksnmp_host_state {
	KSNMP_HOST_STANDALONE = 1,
	KSNMP_HOST_CONNECTED = 2,
	KSNMP_HOST_UNREACHABLE = 3,
	KSNMP_HOST_PARTITIONED = 4,
	KSNMP_HOST_FAILED = 5,
	KSNMP_HOST_ISOLATED = 6,
	KSNMP_HOST_MAINTENANCE = 7,
	KSNMP_HOST_LEFT = 8,
	KSNMP_HOST_UNKNOWN = 9,
};
enum ksnmp_power {
	KSNMP_POWER_OFF = 1,
	KSNMP_POWER_ON = 2,
	KSNMP_POWER_SUSPENDED = 3,
	KSNMP_POWER_INCOMING = 4,
	KSNMP_POWER_OTHER = 5,
};
#define KSNMP_TRUE  1
#define KSNMP_FALSE 2

/* The cluster's HostState (proto/cluster.proto, 0..7) as KeelHostState. */
int ksnmp_host_state_from_cluster(int cluster_state);
/* vmkernel's power state string ("poweredOn", ...) as KeelPowerState. */
int ksnmp_power_from_string(const char *s);
/* The cluster's desired PowerState (proto/cluster.proto, 0..3) as KeelPowerState. */
int ksnmp_power_from_cluster(int power);
const char *ksnmp_host_state_name(int v);
const char *ksnmp_power_name(int v);
/* Milliseconds as TimeTicks (hundredths of a second, modulo 2^32). */
uint32_t ksnmp_ticks_from_ms(uint64_t ms);
/* A Gauge32 value: v capped at 2^32 - 1. */
uint32_t ksnmp_gauge(uint64_t v);

/* Appends a string index to o: its length, then one sub-identifier per byte (SMIv2
 * "OCTET STRING" index, not IMPLIED). 0, or KB_ETOOBIG when o would pass KSNMP_OID_MAX. */
int ksnmp_oid_add_string(struct ksnmp_oid *o, const char *s);
/* Takes a string index back from sub[0..len): 0 and out (NUL-terminated), or KB_EPROTO
 * when the length does not match or a byte is above 255 or is NUL. */
int ksnmp_oid_get_string(const uint32_t *sub, size_t len, char *out, size_t size);
/* -1, 0, 1 like strcmp, in SNMP's lexicographic order. */
int ksnmp_oid_cmp(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen);
/* "1.3.6.1..." into out. */
void ksnmp_oid_fmt(const uint32_t *sub, size_t len, char *out, size_t size);

void ksnmp_table_init(struct ksnmp_table *t);
void ksnmp_table_close(struct ksnmp_table *t);
/* Adds one instance: the object's OID below keelMIB (rel), then an optional string index
 * (NULL: none; for scalars the ".0" is added). 0, -ENOMEM or KB_ETOOBIG. */
int ksnmp_table_add_num(struct ksnmp_table *t, const uint32_t *rel, size_t rlen, const char *index,
			enum ksnmp_type type, int64_t v);
int ksnmp_table_add_str(struct ksnmp_table *t, const uint32_t *rel, size_t rlen, const char *index,
			const char *v);
/* Sorts the table (done once after the last add; lookups sort it when needed). */
void ksnmp_table_sort(struct ksnmp_table *t);
/* The instance with exactly this OID, or NULL. */
const struct ksnmp_var *ksnmp_table_get(struct ksnmp_table *t, const uint32_t *sub, size_t len);
/* The first instance whose OID is after this one (GETNEXT), or NULL at the end. */
const struct ksnmp_var *ksnmp_table_next(struct ksnmp_table *t, const uint32_t *sub, size_t len);

/* ---- what one poll saw (filled by poll.c, mapped by mib.c) ----------------------------- */

#define KSNMP_NAME_MAX 256

struct ksnmp_vm {
	char uuid[64];
	char name[KSNMP_NAME_MAX];
	int power;	/* KeelPowerState */
	uint32_t vcpus; /* 0: not known here (a VM of another host) */
	uint64_t mem_mib;
	char host[KSNMP_NAME_MAX]; /* the host that runs (or owns) it */
	uint64_t uptime_ms;	   /* since power-on; 0 when off or not known */
};

struct ksnmp_chost {
	uint64_t id;
	char name[KSNMP_NAME_MAX];
	char address[64];
	int state; /* KeelHostState */
	uint32_t vms;
	bool maintenance;
};

/* One cluster event that may become a notification. */
struct ksnmp_event {
	uint64_t seq;
	int kind; /* proto/cluster.proto EventKind */
	uint64_t host;
	char vm[64];
	char message[256];
};

struct ksnmp_snapshot {
	/* this host (vmkernel) */
	bool host_ok;
	char hostname[KSNMP_NAME_MAX];
	char version[64];
	uint32_t cpus, cpu_mhz, cpu_used_mhz;
	uint64_t mem_bytes, mem_used_bytes, mem_reserved_bytes;
	uint64_t uptime_ms;
	uint32_t vms_registered, vms_powered_on;
	/* the cluster (clusterd), when the host is in one */
	bool in_cluster;
	char cluster_name[KSNMP_NAME_MAX];
	uint64_t node_id, leader_id;
	char leader_name[KSNMP_NAME_MAX];
	bool isolated, ha_enabled;
	uint32_t failure_timeout_ms, admission_failures;
	struct ksnmp_chost *hosts;
	size_t n_hosts;
	/* VMs: this host's from vmkernel, then the cluster's other ones */
	struct ksnmp_vm *vms;
	size_t n_vms;
	/* events since the previous poll */
	struct ksnmp_event *events;
	size_t n_events;
};

/* The agent's own counters, served under keelAgent. */
struct ksnmp_counters {
	uint64_t polls, poll_errors, reconnects, traps_sent, ha_events, migrations;
};

void ksnmp_snapshot_close(struct ksnmp_snapshot *s);
/* This host's KeelHostState: standalone out of a cluster, isolated when the host lost the
 * cluster, else its own entry's state. */
int ksnmp_snapshot_host_state(const struct ksnmp_snapshot *s);

/* Fills t with every Keel object instance for s and c (t initialised by the caller).
 * 0, -ENOMEM or KB_ETOOBIG. */
int ksnmp_mib_build(const struct ksnmp_snapshot *s, const struct ksnmp_counters *c,
		    struct ksnmp_table *t);

/* Notifications (KEEL-MIB keelNotifications). */
enum ksnmp_notif {
	KSNMP_N_HOST_FAILED = 1,
	KSNMP_N_HA_RESTART = 2,
	KSNMP_N_FT_FAILOVER = 3,
	KSNMP_N_VM_MIGRATED = 4,
	KSNMP_N_VM_POWER = 5,
};

struct ksnmp_notice {
	enum ksnmp_notif kind;
	char host[KSNMP_NAME_MAX]; /* keelNotifHostName */
	char vm[KSNMP_NAME_MAX];   /* keelNotifVmName */
	int power;		   /* keelVmPowerState, for KSNMP_N_VM_POWER */
	char message[256];	   /* keelNotifMessage */
};

/* The notifications that the step from prev to cur calls for: a cluster host whose state
 * became failed, a VM of this host whose power state changed, a VM whose owner changed
 * (migrated; an owner change off a failed host is an HA restart instead), and cur's new
 * events (EVENT_HA: HA restart; a message naming FT failover: FT failover). prev NULL (the
 * first poll): none. Appends to *out / *n (caller frees *out with kb_free). 0 or -ENOMEM. */
int ksnmp_notices(const struct ksnmp_snapshot *prev, const struct ksnmp_snapshot *cur,
		  struct ksnmp_notice **out, size_t *n);
/* The notification's OID below keelMIB: 2.0.kind. */
void ksnmp_notice_oid(enum ksnmp_notif kind, struct ksnmp_oid *out);
const char *ksnmp_notice_name(enum ksnmp_notif kind);

#endif
