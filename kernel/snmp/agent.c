/*
 * keel-snmpd's AgentX side: net-snmp's agent library in subagent mode (docs/snmp.md).
 *
 * Happy path: ksnmp__agent_start() sets the subagent role, the master's socket and the
 * ping interval, registers one handler for the whole keelMIB subtree and connects. The
 * handler answers GET and GETNEXT from the table of instances the daemon built from its
 * last poll (mib.c); everything under keelMIB is read-only. Notifications go to the master
 * (send_v2trap), which sends them on to its trap sinks.
 *
 * Failure modes: a master that goes away (snmpd stopped or restarted) is noticed when the
 * connection closes or a ping goes unanswered; the library then tries to open the session
 * again every ping interval and registers the subtree anew. The library's callbacks for
 * both transitions update the status here and report an event to the daemon.
 *
 * Threads: net-snmp is not thread-safe; everything here runs on the daemon's main thread.
 */
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>
#include <net-snmp/agent/agent_callbacks.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "kernel/snmp/daemon.h"
#include "lib/time.h"

static struct ksnmp_table *served;
static struct ksnmp_agent_status status;
static ksnmp_agent_event_cb event_cb;
static void *event_arg;
static struct kb_logger *logger;

static u_char asn_type(enum ksnmp_type t)
{
	switch (t) {
	case KSNMP_INTEGER:
		return ASN_INTEGER;
	case KSNMP_STRING:
		return ASN_OCTET_STR;
	case KSNMP_COUNTER32:
		return ASN_COUNTER;
	case KSNMP_GAUGE32:
		return ASN_GAUGE;
	case KSNMP_TIMETICKS:
		return ASN_TIMETICKS;
	case KSNMP_COUNTER64:
		return ASN_COUNTER64;
	}
	return ASN_NULL;
}

static void set_value(netsnmp_variable_list *vb, const struct ksnmp_var *v)
{
	if (v->type == KSNMP_STRING) {
		snmp_set_var_typed_value(vb, ASN_OCTET_STR, v->str, strlen(v->str));
	} else if (v->type == KSNMP_COUNTER64) {
		struct counter64 c = {.high = (u_long)((uint64_t)v->num >> 32),
				      .low = (u_long)((uint64_t)v->num & 0xffffffffu)};
		snmp_set_var_typed_value(vb, ASN_COUNTER64, &c, sizeof(c));
	} else if (v->type == KSNMP_INTEGER) {
		long l = (long)v->num;
		snmp_set_var_typed_value(vb, ASN_INTEGER, &l, sizeof(l));
	} else {
		u_long u = (u_long)(uint32_t)v->num;
		snmp_set_var_typed_value(vb, asn_type(v->type), &u, sizeof(u));
	}
}

/* One handler for the subtree: GET is an exact match in the table, GETNEXT the first
 * instance after the OID asked (the agent moves on past our subtree when there is none). */
static int handler(netsnmp_mib_handler *h, netsnmp_handler_registration *reg,
		   netsnmp_agent_request_info *reqinfo, netsnmp_request_info *requests)
{
	uint32_t sub[KSNMP_OID_MAX];

	status.requests++;
	for (netsnmp_request_info *r = requests; r; r = r->next) {
		netsnmp_variable_list *vb = r->requestvb;
		const struct ksnmp_var *v = NULL;
		size_t n = vb->name_length > KSNMP_OID_MAX ? KSNMP_OID_MAX : vb->name_length;

		if (r->processed)
			continue;
		for (size_t i = 0; i < n; i++)
			sub[i] = (uint32_t)vb->name[i];
		switch (reqinfo->mode) {
		case MODE_GET:
			v = served ? ksnmp_table_get(served, sub, n) : NULL;
			if (v == NULL || vb->name_length > KSNMP_OID_MAX)
				netsnmp_set_request_error(reqinfo, r, SNMP_NOSUCHINSTANCE);
			else
				set_value(vb, v);
			break;
		case MODE_GETNEXT:
			v = served ? ksnmp_table_next(served, sub, n) : NULL;
			if (v == NULL) {
				/* nothing after it here: the agent asks the next subtree */
				continue;
			} else {
				oid o[KSNMP_OID_MAX];
				for (size_t i = 0; i < v->oid.len; i++)
					o[i] = v->oid.sub[i];
				snmp_set_var_objid(vb, o, v->oid.len);
				set_value(vb, v);
			}
			break;
		default:
			netsnmp_set_request_error(reqinfo, r, SNMP_ERR_NOTWRITABLE);
			break;
		}
	}
	return SNMP_ERR_NOERROR;
}

static int on_index_start(int major, int minor, void *server, void *client)
{
	status.connected = true;
	status.connected_since_ns = kb_wall_ns();
	if (status.connects++ > 0) {
		status.reconnects++;
		if (event_cb)
			event_cb(event_arg, KB_LOG_WARN,
				 "AgentX master reached again: keelMIB registered anew");
	} else if (event_cb) {
		event_cb(event_arg, KB_LOG_INFO, "connected to the AgentX master");
	}
	return 0;
}

static int on_index_stop(int major, int minor, void *server, void *client)
{
	if (!status.connected)
		return 0;
	status.connected = false;
	status.lost_ns = kb_wall_ns();
	if (event_cb)
		event_cb(event_arg, KB_LOG_WARN,
			 "AgentX master lost (snmpd stopped or restarted?); trying again");
	return 0;
}

int ksnmp__agent_start(const char *agentx_socket, int ping_s, struct ksnmp_table *table,
		       ksnmp_agent_event_cb cb, void *arg, struct kb_logger *log)
{
	oid root[KSNMP_OID_MAX];
	netsnmp_handler_registration *reg;

	served = table;
	event_cb = cb;
	event_arg = arg;
	logger = log;
	for (size_t i = 0; i < ksnmp_mib_root_len; i++)
		root[i] = ksnmp_mib_root[i];

	/* numeric OIDs only: no MIB files to load (and no noise about missing ones) */
	setenv("MIBS", "", 1);
	snmp_enable_stderrlog();
	/* a master that cannot be reached is reported once, by the daemon */
	netsnmp_ds_set_boolean(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_NO_CONNECTION_WARNINGS,
			       1);
	netsnmp_ds_set_boolean(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_ROLE, 1);
	netsnmp_ds_set_string(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_X_SOCKET, agentx_socket);
	netsnmp_ds_set_int(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL,
			   ping_s);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_ALARM_DONT_USE_SIG, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
	snmp_register_callback(SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_INDEX_START,
			       on_index_start, NULL);
	snmp_register_callback(SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_INDEX_STOP, on_index_stop,
			       NULL);
	if (init_agent("keel-snmpd") != 0)
		return KB_ESTATE;
	netsnmp_ds_set_int(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL,
			   ping_s);
	reg = netsnmp_create_handler_registration("keelMIB", handler, root, ksnmp_mib_root_len,
						  HANDLER_CAN_RONLY);
	if (reg == NULL || netsnmp_register_handler(reg) != MIB_REGISTERED_OK)
		return KB_ESTATE;
	init_snmp("keel-snmpd");
	/* init_snmp() puts the configuration default (15 s) back: ours again */
	netsnmp_ds_set_int(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL,
			   ping_s);
	return 0;
}

void ksnmp__agent_run(int timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int numfds = 0, block = 0, count;
	fd_set fds;

	FD_ZERO(&fds);
	snmp_select_info(&numfds, &fds, &tv, &block);
	count = select(numfds, &fds, NULL, NULL, &tv);
	if (count > 0)
		snmp_read(&fds);
	else if (count == 0)
		snmp_timeout();
	run_alarms();
	netsnmp_check_outstanding_agent_requests();
}

bool ksnmp__agent_notify(const struct ksnmp_notice *n, uint32_t uptime_ticks)
{
	static const oid trap_oid[] = {1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0};
	static const oid uptime_oid[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
	netsnmp_variable_list *vars = NULL;
	struct ksnmp_oid no;
	oid o[KSNMP_OID_MAX], obj[KSNMP_OID_MAX];
	size_t base = ksnmp_mib_root_len;

	if (!status.connected)
		return false;
	ksnmp_notice_oid(n->kind, &no);
	for (size_t i = 0; i < no.len; i++)
		o[i] = no.sub[i];
	for (size_t i = 0; i < base; i++)
		obj[i] = ksnmp_mib_root[i];
	u_long up = uptime_ticks;
	snmp_varlist_add_variable(&vars, uptime_oid, OID_LENGTH(uptime_oid), ASN_TIMETICKS, &up,
				  sizeof(up));
	snmp_varlist_add_variable(&vars, trap_oid, OID_LENGTH(trap_oid), ASN_OBJECT_ID, o,
				  no.len * sizeof(oid));
	/* keelNotifHostName.0, keelNotifVmName.0, keelNotifMessage.0 (keelMIB.1.7.N.0) */
	const char *vals[] = {n->host, n->vm, n->message};
	for (size_t i = 0; i < 3; i++) {
		obj[base] = 1;
		obj[base + 1] = 7;
		obj[base + 2] = i + 1;
		obj[base + 3] = 0;
		snmp_varlist_add_variable(&vars, obj, base + 4, ASN_OCTET_STR, vals[i],
					  strlen(vals[i]));
	}
	if (n->kind == KSNMP_N_VM_POWER) {
		/* keelVmPowerState as a plain value: keelMIB.1.7.4.0 (keelNotifPowerState) */
		long p = n->power;
		obj[base + 2] = 4;
		snmp_varlist_add_variable(&vars, obj, base + 4, ASN_INTEGER, &p, sizeof(p));
	}
	send_v2trap(vars);
	snmp_free_varbind(vars);
	status.traps_sent++;
	return true;
}

void ksnmp__agent_status(struct ksnmp_agent_status *out)
{
	*out = status;
}

void ksnmp__agent_stop(void)
{
	snmp_shutdown("keel-snmpd");
	served = NULL;
}
