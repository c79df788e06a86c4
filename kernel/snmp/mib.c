/*
 * KEEL-MIB (kernel/snmp/KEEL-MIB.txt) as data: what one poll saw (struct ksnmp_snapshot)
 * becomes a table of object instances sorted by OID, which the agent answers GET and
 * GETNEXT from; the step between two polls becomes notifications.
 *
 * Layout below keelMIB (1.3.6.1.4.1.99999.1; the enterprise number is a placeholder):
 *   .1.1.N.0        keelHost scalars            .1.5.N.0  keelHa scalars
 *   .1.2.1.C.<uuid> keelVmTable (index: uuid)   .1.6.N.0  keelAgent counters
 *   .1.3.N.0        keelCluster scalars         .1.7.N    notification objects
 *   .1.4.1.C.<name> keelClusterHostTable (index: host name)
 *   .2.0.N          notifications
 * String indexes are SMIv2 OCTET STRING indexes: the length, then one sub-id per byte.
 *
 * Nothing here touches the network or net-snmp; the unit tests drive it directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/snmp/ksnmp.h"
#include "lib/heap.h"

const uint32_t ksnmp_mib_root[] = {1, 3, 6, 1, 4, 1, KSNMP_ENTERPRISE, 1};
const size_t ksnmp_mib_root_len = sizeof(ksnmp_mib_root) / sizeof(ksnmp_mib_root[0]);

/* ---- enumerations --------------------------------------------------------------------- */

int ksnmp_host_state_from_cluster(int s)
{
	switch (s) {
	case 1:
		return KSNMP_HOST_CONNECTED;
	case 2:
		return KSNMP_HOST_UNREACHABLE;
	case 3:
		return KSNMP_HOST_PARTITIONED;
	case 4:
		return KSNMP_HOST_FAILED;
	case 5:
		return KSNMP_HOST_ISOLATED;
	case 6:
		return KSNMP_HOST_MAINTENANCE;
	case 7:
		return KSNMP_HOST_LEFT;
	default:
		return KSNMP_HOST_UNKNOWN;
	}
}

int ksnmp_power_from_string(const char *s)
{
	if (strcmp(s, "poweredOff") == 0)
		return KSNMP_POWER_OFF;
	if (strcmp(s, "poweredOn") == 0)
		return KSNMP_POWER_ON;
	if (strcmp(s, "suspended") == 0)
		return KSNMP_POWER_SUSPENDED;
	if (strcmp(s, "incoming") == 0)
		return KSNMP_POWER_INCOMING;
	return KSNMP_POWER_OTHER;
}

int ksnmp_power_from_cluster(int p)
{
	switch (p) {
	case 1:
		return KSNMP_POWER_OFF;
	case 2:
		return KSNMP_POWER_ON;
	case 3:
		return KSNMP_POWER_SUSPENDED;
	default:
		return KSNMP_POWER_OTHER;
	}
}

const char *ksnmp_host_state_name(int v)
{
	static const char *const names[] = {"?",	   "standalone", "connected", "unreachable",
					    "partitioned", "failed",	 "isolated",  "maintenance",
					    "left",	   "unknown"};
	return v >= 1 && v <= 9 ? names[v] : "?";
}

const char *ksnmp_power_name(int v)
{
	static const char *const names[] = {"?",	 "poweredOff", "poweredOn",
					    "suspended", "incoming",   "other"};
	return v >= 1 && v <= 5 ? names[v] : "?";
}

uint32_t ksnmp_ticks_from_ms(uint64_t ms)
{
	return (uint32_t)(ms / 10);
}

uint32_t ksnmp_gauge(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* ---- OIDs ------------------------------------------------------------------------------ */

int ksnmp_oid_add_string(struct ksnmp_oid *o, const char *s)
{
	size_t n = strlen(s);

	if (o->len + 1 + n > KSNMP_OID_MAX)
		return KB_ETOOBIG;
	o->sub[o->len++] = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		o->sub[o->len++] = (unsigned char)s[i];
	return 0;
}

int ksnmp_oid_get_string(const uint32_t *sub, size_t len, char *out, size_t size)
{
	if (len == 0 || sub[0] != len - 1 || len > size)
		return KB_EPROTO;
	for (size_t i = 1; i < len; i++) {
		if (sub[i] == 0 || sub[i] > 255)
			return KB_EPROTO;
		out[i - 1] = (char)sub[i];
	}
	out[len - 1] = '\0';
	return 0;
}

int ksnmp_oid_cmp(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return alen == blen ? 0 : alen < blen ? -1 : 1;
}

void ksnmp_oid_fmt(const uint32_t *sub, size_t len, char *out, size_t size)
{
	size_t w = 0;

	if (size)
		out[0] = '\0';
	for (size_t i = 0; i < len && w < size; i++) {
		int n = snprintf(out + w, size - w, "%s%u", i ? "." : "", sub[i]);
		if (n < 0)
			break;
		w += (size_t)n;
	}
}

/* ---- the table ------------------------------------------------------------------------- */

void ksnmp_table_init(struct ksnmp_table *t)
{
	memset(t, 0, sizeof(*t));
}

void ksnmp_table_close(struct ksnmp_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		kb_free(t->vars[i].str);
	kb_free(t->vars);
	memset(t, 0, sizeof(*t));
}

static int add(struct ksnmp_table *t, const uint32_t *rel, size_t rlen, const char *index,
	       struct ksnmp_var **out)
{
	struct ksnmp_var *v;
	int rv;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		void *p = kb_realloc(t->vars, cap * sizeof(*t->vars));
		if (p == NULL)
			return -ENOMEM;
		t->vars = p;
		t->cap = cap;
	}
	v = &t->vars[t->n];
	memset(v, 0, sizeof(*v));
	if (ksnmp_mib_root_len + rlen + 1 > KSNMP_OID_MAX)
		return KB_ETOOBIG;
	memcpy(v->oid.sub, ksnmp_mib_root, ksnmp_mib_root_len * sizeof(uint32_t));
	memcpy(v->oid.sub + ksnmp_mib_root_len, rel, rlen * sizeof(uint32_t));
	v->oid.len = ksnmp_mib_root_len + rlen;
	if (index == NULL) {
		v->oid.sub[v->oid.len++] = 0;
	} else {
		rv = ksnmp_oid_add_string(&v->oid, index);
		if (rv)
			return rv;
	}
	t->sorted = false;
	*out = v;
	return 0;
}

int ksnmp_table_add_num(struct ksnmp_table *t, const uint32_t *rel, size_t rlen, const char *index,
			enum ksnmp_type type, int64_t num)
{
	struct ksnmp_var *v;
	int rv = add(t, rel, rlen, index, &v);

	if (rv)
		return rv;
	v->type = type;
	v->num = num;
	t->n++;
	return 0;
}

int ksnmp_table_add_str(struct ksnmp_table *t, const uint32_t *rel, size_t rlen, const char *index,
			const char *s)
{
	struct ksnmp_var *v;
	int rv = add(t, rel, rlen, index, &v);

	if (rv)
		return rv;
	v->type = KSNMP_STRING;
	v->str = kb_strdup(s ? s : "");
	if (v->str == NULL)
		return -ENOMEM;
	t->n++;
	return 0;
}

static int var_cmp(const void *a, const void *b)
{
	const struct ksnmp_var *x = a, *y = b;
	return ksnmp_oid_cmp(x->oid.sub, x->oid.len, y->oid.sub, y->oid.len);
}

void ksnmp_table_sort(struct ksnmp_table *t)
{
	if (!t->sorted && t->n > 1)
		qsort(t->vars, t->n, sizeof(*t->vars), var_cmp);
	t->sorted = true;
}

/* The index of the first instance >= oid (strictly > when after). */
static size_t lower_bound(struct ksnmp_table *t, const uint32_t *sub, size_t len, bool after)
{
	size_t lo = 0, hi = t->n;

	ksnmp_table_sort(t);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ksnmp_oid_cmp(t->vars[mid].oid.sub, t->vars[mid].oid.len, sub, len);
		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct ksnmp_var *ksnmp_table_get(struct ksnmp_table *t, const uint32_t *sub, size_t len)
{
	size_t i = lower_bound(t, sub, len, false);

	if (i < t->n && ksnmp_oid_cmp(t->vars[i].oid.sub, t->vars[i].oid.len, sub, len) == 0)
		return &t->vars[i];
	return NULL;
}

const struct ksnmp_var *ksnmp_table_next(struct ksnmp_table *t, const uint32_t *sub, size_t len)
{
	size_t i = lower_bound(t, sub, len, true);

	return i < t->n ? &t->vars[i] : NULL;
}

/* ---- the snapshot as MIB instances ------------------------------------------------------ */

void ksnmp_snapshot_close(struct ksnmp_snapshot *s)
{
	kb_free(s->hosts);
	kb_free(s->vms);
	kb_free(s->events);
	memset(s, 0, sizeof(*s));
}

int ksnmp_snapshot_host_state(const struct ksnmp_snapshot *s)
{
	if (!s->in_cluster)
		return KSNMP_HOST_STANDALONE;
	if (s->isolated)
		return KSNMP_HOST_ISOLATED;
	for (size_t i = 0; i < s->n_hosts; i++)
		if (s->hosts[i].id == s->node_id)
			return s->hosts[i].state;
	return KSNMP_HOST_UNKNOWN;
}

/* R(1, 1, 3): an OID below keelMIB as the (array, length) pair the table functions take */
#define R(...) \
	(const uint32_t[]){__VA_ARGS__}, sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t)

static int tv(bool b)
{
	return b ? KSNMP_TRUE : KSNMP_FALSE;
}

int ksnmp_mib_build(const struct ksnmp_snapshot *s, const struct ksnmp_counters *c,
		    struct ksnmp_table *t)
{
	uint32_t connected = 0;
	int rv = 0;

#define NUM(type, v, ...)                                                             \
	do {                                                                          \
		if (rv == 0)                                                          \
			rv = ksnmp_table_add_num(t, R(__VA_ARGS__), NULL, type, (v)); \
	} while (0)
#define STR(v, ...)                                                             \
	do {                                                                    \
		if (rv == 0)                                                    \
			rv = ksnmp_table_add_str(t, R(__VA_ARGS__), NULL, (v)); \
	} while (0)

	if (s->host_ok) {
		STR(s->hostname, 1, 1, 1);
		STR(s->version, 1, 1, 2);
		NUM(KSNMP_GAUGE32, s->cpus, 1, 1, 3);
		NUM(KSNMP_GAUGE32, s->cpu_mhz, 1, 1, 4);
		NUM(KSNMP_GAUGE32, s->cpu_used_mhz, 1, 1, 5);
		NUM(KSNMP_GAUGE32, ksnmp_gauge(s->mem_bytes >> 20), 1, 1, 6);
		NUM(KSNMP_GAUGE32, ksnmp_gauge(s->mem_used_bytes >> 20), 1, 1, 7);
		NUM(KSNMP_GAUGE32, ksnmp_gauge(s->mem_reserved_bytes >> 20), 1, 1, 8);
		NUM(KSNMP_TIMETICKS, ksnmp_ticks_from_ms(s->uptime_ms), 1, 1, 9);
		NUM(KSNMP_INTEGER, ksnmp_snapshot_host_state(s), 1, 1, 10);
		NUM(KSNMP_GAUGE32, s->vms_registered, 1, 1, 11);
		NUM(KSNMP_GAUGE32, s->vms_powered_on, 1, 1, 12);
	}
	for (size_t i = 0; rv == 0 && i < s->n_vms; i++) {
		const struct ksnmp_vm *v = &s->vms[i];
		const char *ix = v->uuid;
		rv = ksnmp_table_add_str(t, R(1, 2, 1, 2), ix, v->name);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 2, 1, 3), ix, KSNMP_INTEGER, v->power);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 2, 1, 4), ix, KSNMP_GAUGE32, v->vcpus);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 2, 1, 5), ix, KSNMP_GAUGE32,
						 ksnmp_gauge(v->mem_mib));
		if (rv == 0)
			rv = ksnmp_table_add_str(t, R(1, 2, 1, 6), ix, v->host);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 2, 1, 7), ix, KSNMP_TIMETICKS,
						 ksnmp_ticks_from_ms(v->uptime_ms));
	}
	for (size_t i = 0; i < s->n_hosts; i++)
		connected += s->hosts[i].state == KSNMP_HOST_CONNECTED;
	NUM(KSNMP_INTEGER, tv(s->in_cluster), 1, 3, 1);
	STR(s->cluster_name, 1, 3, 2);
	STR(s->leader_name, 1, 3, 3);
	NUM(KSNMP_GAUGE32, s->n_hosts, 1, 3, 4);
	NUM(KSNMP_GAUGE32, connected, 1, 3, 5);
	for (size_t i = 0; rv == 0 && i < s->n_hosts; i++) {
		const struct ksnmp_chost *h = &s->hosts[i];
		const char *ix = h->name;
		rv = ksnmp_table_add_num(t, R(1, 4, 1, 2), ix, KSNMP_INTEGER, h->state);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 4, 1, 3), ix, KSNMP_GAUGE32, h->vms);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 4, 1, 4), ix, KSNMP_INTEGER,
						 tv(h->id == s->leader_id));
		if (rv == 0)
			rv = ksnmp_table_add_str(t, R(1, 4, 1, 5), ix, h->address);
		if (rv == 0)
			rv = ksnmp_table_add_num(t, R(1, 4, 1, 6), ix, KSNMP_INTEGER,
						 tv(h->maintenance));
	}
	NUM(KSNMP_INTEGER, tv(s->in_cluster && s->ha_enabled), 1, 5, 1);
	NUM(KSNMP_GAUGE32, s->failure_timeout_ms, 1, 5, 2);
	NUM(KSNMP_GAUGE32, s->admission_failures, 1, 5, 3);
	NUM(KSNMP_COUNTER32, (uint32_t)c->ha_events, 1, 5, 4);
	NUM(KSNMP_COUNTER32, (uint32_t)c->migrations, 1, 5, 5);
	NUM(KSNMP_GAUGE32, 0, 1, 5, 6); /* keelFtProtectedVms: FT is not there yet */
	NUM(KSNMP_COUNTER32, (uint32_t)c->polls, 1, 6, 1);
	NUM(KSNMP_COUNTER32, (uint32_t)c->poll_errors, 1, 6, 2);
	NUM(KSNMP_COUNTER32, (uint32_t)c->reconnects, 1, 6, 3);
	NUM(KSNMP_COUNTER32, (uint32_t)c->traps_sent, 1, 6, 4);
#undef NUM
#undef STR
	if (rv == 0)
		ksnmp_table_sort(t);
	return rv;
}

/* ---- notifications ---------------------------------------------------------------------- */

const char *ksnmp_notice_name(enum ksnmp_notif kind)
{
	switch (kind) {
	case KSNMP_N_HOST_FAILED:
		return "keelHostFailed";
	case KSNMP_N_HA_RESTART:
		return "keelHaRestart";
	case KSNMP_N_FT_FAILOVER:
		return "keelFtFailover";
	case KSNMP_N_VM_MIGRATED:
		return "keelVmMigrated";
	case KSNMP_N_VM_POWER:
		return "keelVmPowerChanged";
	}
	return "?";
}

void ksnmp_notice_oid(enum ksnmp_notif kind, struct ksnmp_oid *out)
{
	memcpy(out->sub, ksnmp_mib_root, ksnmp_mib_root_len * sizeof(uint32_t));
	out->len = ksnmp_mib_root_len;
	out->sub[out->len++] = 2;
	out->sub[out->len++] = 0;
	out->sub[out->len++] = (uint32_t)kind;
}

static int push(struct ksnmp_notice **out, size_t *n, enum ksnmp_notif kind, const char *host,
		const char *vm, int power, const char *msg)
{
	struct ksnmp_notice *p = kb_realloc(*out, (*n + 1) * sizeof(**out));

	if (p == NULL)
		return -ENOMEM;
	*out = p;
	p = &p[(*n)++];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->power = power;
	snprintf(p->host, sizeof(p->host), "%s", host ? host : "");
	snprintf(p->vm, sizeof(p->vm), "%s", vm ? vm : "");
	snprintf(p->message, sizeof(p->message), "%s", msg ? msg : "");
	return 0;
}

static const struct ksnmp_chost *host_by_id(const struct ksnmp_snapshot *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_hosts; i++)
		if (s->hosts[i].id == id)
			return &s->hosts[i];
	return NULL;
}

static const struct ksnmp_chost *host_by_name(const struct ksnmp_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i].name, name) == 0)
			return &s->hosts[i];
	return NULL;
}

static const struct ksnmp_vm *vm_by_uuid(const struct ksnmp_snapshot *s, const char *uuid)
{
	for (size_t i = 0; i < s->n_vms; i++)
		if (strcmp(s->vms[i].uuid, uuid) == 0)
			return &s->vms[i];
	return NULL;
}

/* EventKind values of proto/cluster.proto used here. */
#define EV_HA 8

static bool mentions_ft(const char *m)
{
	return strstr(m, "FT failover") != NULL || strstr(m, "ft failover") != NULL;
}

int ksnmp_notices(const struct ksnmp_snapshot *prev, const struct ksnmp_snapshot *cur,
		  struct ksnmp_notice **out, size_t *n)
{
	char msg[256];
	int rv = 0;

	if (prev == NULL)
		return 0;
	/* hosts that became failed */
	for (size_t i = 0; rv == 0 && i < cur->n_hosts; i++) {
		const struct ksnmp_chost *h = &cur->hosts[i], *was = host_by_id(prev, h->id);
		if (h->state != KSNMP_HOST_FAILED || (was && was->state == KSNMP_HOST_FAILED))
			continue;
		snprintf(msg, sizeof(msg), "host %s failed (was %s)", h->name,
			 was ? ksnmp_host_state_name(was->state) : "not known");
		rv = push(out, n, KSNMP_N_HOST_FAILED, h->name, NULL, 0, msg);
	}
	for (size_t i = 0; rv == 0 && i < cur->n_vms; i++) {
		const struct ksnmp_vm *v = &cur->vms[i], *was = vm_by_uuid(prev, v->uuid);
		if (was == NULL)
			continue;
		if (strcmp(was->host, v->host) != 0 && was->host[0] && v->host[0]) {
			/* owner changed: off a failed host it is an HA restart */
			const struct ksnmp_chost *old = host_by_name(cur, was->host);
			bool failed = old && old->state == KSNMP_HOST_FAILED;
			snprintf(msg, sizeof(msg), "VM %s moved from %s to %s%s", v->name,
				 was->host, v->host, failed ? " (HA restart)" : "");
			rv = push(out, n, failed ? KSNMP_N_HA_RESTART : KSNMP_N_VM_MIGRATED,
				  v->host, v->name, v->power, msg);
		} else if (was->power != v->power && v->vcpus != 0 &&
			   strcmp(v->host, cur->hostname) == 0) {
			snprintf(msg, sizeof(msg), "VM %s: %s -> %s", v->name,
				 ksnmp_power_name(was->power), ksnmp_power_name(v->power));
			rv = push(out, n, KSNMP_N_VM_POWER, v->host, v->name, v->power, msg);
		}
	}
	for (size_t i = 0; rv == 0 && i < cur->n_events; i++) {
		const struct ksnmp_event *e = &cur->events[i];
		const struct ksnmp_chost *h = host_by_id(cur, e->host);
		const struct ksnmp_vm *v = e->vm[0] ? vm_by_uuid(cur, e->vm) : NULL;
		if (mentions_ft(e->message))
			rv = push(out, n, KSNMP_N_FT_FAILOVER, h ? h->name : "",
				  v ? v->name : e->vm, v ? v->power : 0, e->message);
		else if (e->kind == EV_HA)
			rv = push(out, n, KSNMP_N_HA_RESTART, h ? h->name : "", v ? v->name : e->vm,
				  v ? v->power : 0, e->message);
	}
	return rv;
}
