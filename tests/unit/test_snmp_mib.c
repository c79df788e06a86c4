/*
 * Tests for KEEL-MIB as data (kernel/snmp/mib.c): string index encoding and decoding,
 * OID order, the enumerations (host state, power state, TruthValue), TimeTicks and Gauge32
 * conversions; the instance table built from a snapshot (values, types, VM rows indexed by
 * uuid, cluster host rows by name, column-major order for GETNEXT, the end of the subtree);
 * the notifications of a step (host failed once, VM migrated, HA restart off a failed host,
 * VM power change, HA and FT events, none on the first poll); out-of-memory on the way.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/snmp/ksnmp.h"
#include "lib/heap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* keelMIB + rel, then the index: into o. */
static void oid_of(struct ksnmp_oid *o, const uint32_t *rel, size_t rlen, const char *index)
{
	memcpy(o->sub, ksnmp_mib_root, ksnmp_mib_root_len * sizeof(uint32_t));
	memcpy(o->sub + ksnmp_mib_root_len, rel, rlen * sizeof(uint32_t));
	o->len = ksnmp_mib_root_len + rlen;
	if (index)
		assert_int_equal(ksnmp_oid_add_string(o, index), 0);
	else
		o->sub[o->len++] = 0;
}

static void test_string_index(void **state)
{
	struct ksnmp_oid o = {.len = 0};
	char back[64];

	assert_int_equal(ksnmp_oid_add_string(&o, "db1"), 0);
	assert_int_equal(o.len, 4);
	assert_int_equal(o.sub[0], 3);
	assert_int_equal(o.sub[1], 'd');
	assert_int_equal(o.sub[2], 'b');
	assert_int_equal(o.sub[3], '1');
	assert_int_equal(ksnmp_oid_get_string(o.sub, o.len, back, sizeof(back)), 0);
	assert_string_equal(back, "db1");

	/* bytes above 127 stay one sub-id each (0..255) */
	o.len = 0;
	assert_int_equal(ksnmp_oid_add_string(&o, "\xc3\xa9"), 0);
	assert_int_equal(o.sub[0], 2);
	assert_int_equal(o.sub[1], 0xc3);
	assert_int_equal(o.sub[2], 0xa9);

	/* the empty string is just its length */
	o.len = 0;
	assert_int_equal(ksnmp_oid_add_string(&o, ""), 0);
	assert_int_equal(o.len, 1);
	assert_int_equal(o.sub[0], 0);

	/* decoding refuses a wrong length, a sub-id above 255, a NUL, a short buffer */
	uint32_t badlen[] = {4, 'a', 'b'};
	uint32_t big[] = {2, 'a', 256};
	uint32_t nul[] = {2, 'a', 0};
	uint32_t ok[] = {3, 'a', 'b', 'c'};
	assert_int_equal(ksnmp_oid_get_string(badlen, N(badlen), back, sizeof(back)), KB_EPROTO);
	assert_int_equal(ksnmp_oid_get_string(big, N(big), back, sizeof(back)), KB_EPROTO);
	assert_int_equal(ksnmp_oid_get_string(nul, N(nul), back, sizeof(back)), KB_EPROTO);
	assert_int_equal(ksnmp_oid_get_string(ok, N(ok), back, 3), KB_EPROTO);
	assert_int_equal(ksnmp_oid_get_string(ok, N(ok), back, 4), 0);
	assert_int_equal(ksnmp_oid_get_string(ok, 0, back, 4), KB_EPROTO);
}

static void test_string_index_too_long(void **state)
{
	struct ksnmp_oid o = {.len = 10};
	char s[KSNMP_OID_MAX];

	memset(s, 'x', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(ksnmp_oid_add_string(&o, s), KB_ETOOBIG);
	assert_int_equal(o.len, 10);  /* unchanged */
	s[KSNMP_OID_MAX - 11] = '\0'; /* 10 + 1 + 117 = 128: fits exactly */
	assert_int_equal(ksnmp_oid_add_string(&o, s), 0);
	assert_int_equal(o.len, KSNMP_OID_MAX);
}

static void test_oid_order(void **state)
{
	uint32_t a[] = {1, 3, 6}, b[] = {1, 3, 6, 1}, c[] = {1, 3, 7}, d[] = {1, 3, 10};
	char out[64];

	assert_int_equal(ksnmp_oid_cmp(a, 3, a, 3), 0);
	assert_int_equal(ksnmp_oid_cmp(a, 3, b, 4), -1); /* a prefix comes first */
	assert_int_equal(ksnmp_oid_cmp(b, 4, a, 3), 1);
	assert_int_equal(ksnmp_oid_cmp(b, 4, c, 3), -1);
	assert_int_equal(ksnmp_oid_cmp(c, 3, d, 3), -1); /* numeric, not textual */
	ksnmp_oid_fmt(b, 4, out, sizeof(out));
	assert_string_equal(out, "1.3.6.1");
	assert_int_equal(ksnmp_mib_root_len, 8);
	ksnmp_oid_fmt(ksnmp_mib_root, ksnmp_mib_root_len, out, sizeof(out));
	assert_string_equal(out, "1.3.6.1.4.1.99999.1");
}

static void test_enums(void **state)
{
	/* proto/cluster.proto HostState 0..7 */
	static const int want[] = {KSNMP_HOST_UNKNOWN,	   KSNMP_HOST_CONNECTED,
				   KSNMP_HOST_UNREACHABLE, KSNMP_HOST_PARTITIONED,
				   KSNMP_HOST_FAILED,	   KSNMP_HOST_ISOLATED,
				   KSNMP_HOST_MAINTENANCE, KSNMP_HOST_LEFT};
	for (int i = 0; i < (int)N(want); i++)
		assert_int_equal(ksnmp_host_state_from_cluster(i), want[i]);
	assert_int_equal(ksnmp_host_state_from_cluster(99), KSNMP_HOST_UNKNOWN);
	assert_int_equal(KSNMP_HOST_STANDALONE, 1);
	assert_int_equal(KSNMP_HOST_FAILED, 5);
	assert_string_equal(ksnmp_host_state_name(KSNMP_HOST_FAILED), "failed");
	assert_string_equal(ksnmp_host_state_name(KSNMP_HOST_STANDALONE), "standalone");
	assert_string_equal(ksnmp_host_state_name(0), "?");

	assert_int_equal(ksnmp_power_from_string("poweredOff"), 1);
	assert_int_equal(ksnmp_power_from_string("poweredOn"), 2);
	assert_int_equal(ksnmp_power_from_string("suspended"), 3);
	assert_int_equal(ksnmp_power_from_string("incoming"), 4);
	assert_int_equal(ksnmp_power_from_string("PoweredOn"), 5);
	assert_int_equal(ksnmp_power_from_string(""), 5);
	assert_int_equal(ksnmp_power_from_cluster(0), KSNMP_POWER_OTHER);
	assert_int_equal(ksnmp_power_from_cluster(1), KSNMP_POWER_OFF);
	assert_int_equal(ksnmp_power_from_cluster(2), KSNMP_POWER_ON);
	assert_int_equal(ksnmp_power_from_cluster(3), KSNMP_POWER_SUSPENDED);
	assert_string_equal(ksnmp_power_name(KSNMP_POWER_ON), "poweredOn");
	assert_int_equal(KSNMP_TRUE, 1);
	assert_int_equal(KSNMP_FALSE, 2);
}

static void test_ticks_gauge(void **state)
{
	assert_int_equal(ksnmp_ticks_from_ms(0), 0);
	assert_int_equal(ksnmp_ticks_from_ms(1999), 199);
	assert_int_equal(ksnmp_ticks_from_ms(86400000), 8640000);
	/* wraps modulo 2^32 like every TimeTicks */
	assert_int_equal(ksnmp_ticks_from_ms((1ull << 32) * 10 + 50), 5);
	assert_int_equal(ksnmp_gauge(5), 5);
	assert_int_equal(ksnmp_gauge(UINT32_MAX), UINT32_MAX);
	assert_int_equal(ksnmp_gauge(1ull << 40), UINT32_MAX);
}

static struct ksnmp_vm vms2[2];
static struct ksnmp_chost hosts2[2];

static void fill(struct ksnmp_snapshot *s, bool cluster)
{
	memset(s, 0, sizeof(*s));
	memset(vms2, 0, sizeof(vms2));
	memset(hosts2, 0, sizeof(hosts2));
	s->host_ok = true;
	snprintf(s->hostname, sizeof(s->hostname), "esx1");
	snprintf(s->version, sizeof(s->version), "0.1");
	s->cpus = 8;
	s->cpu_mhz = 2400;
	s->mem_bytes = 16ull << 30;
	s->mem_used_bytes = 3ull << 20;
	s->uptime_ms = 12345;
	s->vms_registered = 2;
	s->vms_powered_on = 1;
	snprintf(vms2[0].uuid, sizeof(vms2[0].uuid), "b-uuid");
	snprintf(vms2[0].name, sizeof(vms2[0].name), "web1");
	vms2[0].power = KSNMP_POWER_ON;
	vms2[0].vcpus = 2;
	vms2[0].mem_mib = 48;
	vms2[0].uptime_ms = 5000;
	snprintf(vms2[0].host, sizeof(vms2[0].host), "esx1");
	snprintf(vms2[1].uuid, sizeof(vms2[1].uuid), "a-uuid");
	snprintf(vms2[1].name, sizeof(vms2[1].name), "db1");
	vms2[1].power = KSNMP_POWER_OFF;
	vms2[1].vcpus = 1;
	vms2[1].mem_mib = 32;
	snprintf(vms2[1].host, sizeof(vms2[1].host), "esx1");
	s->vms = vms2;
	s->n_vms = 2;
	if (!cluster)
		return;
	s->in_cluster = true;
	snprintf(s->cluster_name, sizeof(s->cluster_name), "prod");
	s->node_id = 11;
	s->leader_id = 22;
	snprintf(s->leader_name, sizeof(s->leader_name), "esx2");
	s->ha_enabled = true;
	s->failure_timeout_ms = 1000;
	hosts2[0].id = 11;
	snprintf(hosts2[0].name, sizeof(hosts2[0].name), "esx1");
	snprintf(hosts2[0].address, sizeof(hosts2[0].address), "198.18.0.11");
	hosts2[0].state = KSNMP_HOST_CONNECTED;
	hosts2[0].vms = 2;
	hosts2[1].id = 22;
	snprintf(hosts2[1].name, sizeof(hosts2[1].name), "esx2");
	hosts2[1].state = KSNMP_HOST_CONNECTED;
	s->hosts = hosts2;
	s->n_hosts = 2;
}

static const struct ksnmp_var *get(struct ksnmp_table *t, const uint32_t *rel, size_t rlen,
				   const char *index)
{
	struct ksnmp_oid o;
	oid_of(&o, rel, rlen, index);
	return ksnmp_table_get(t, o.sub, o.len);
}
#define GET(t, ix, ...) \
	get(t, (const uint32_t[]){__VA_ARGS__}, N(((const uint32_t[]){__VA_ARGS__})), ix)

static void test_build_standalone(void **state)
{
	struct ksnmp_counters c = {.polls = 7, .traps_sent = 3, .reconnects = 1};
	struct ksnmp_snapshot s;
	struct ksnmp_table t;
	const struct ksnmp_var *v;

	fill(&s, false);
	ksnmp_table_init(&t);
	assert_int_equal(ksnmp_mib_build(&s, &c, &t), 0);

	v = GET(&t, NULL, 1, 1, 1);
	assert_non_null(v);
	assert_int_equal(v->type, KSNMP_STRING);
	assert_string_equal(v->str, "esx1");
	v = GET(&t, NULL, 1, 1, 3);
	assert_int_equal(v->type, KSNMP_GAUGE32);
	assert_int_equal(v->num, 8);
	v = GET(&t, NULL, 1, 1, 6); /* MiB */
	assert_int_equal(v->num, 16384);
	v = GET(&t, NULL, 1, 1, 9);
	assert_int_equal(v->type, KSNMP_TIMETICKS);
	assert_int_equal(v->num, 1234);
	v = GET(&t, NULL, 1, 1, 10);
	assert_int_equal(v->type, KSNMP_INTEGER);
	assert_int_equal(v->num, KSNMP_HOST_STANDALONE);
	v = GET(&t, NULL, 1, 3, 1); /* keelClusterMember: false */
	assert_int_equal(v->num, KSNMP_FALSE);
	v = GET(&t, NULL, 1, 5, 1); /* keelHaEnabled: false out of a cluster */
	assert_int_equal(v->num, KSNMP_FALSE);
	v = GET(&t, NULL, 1, 6, 1);
	assert_int_equal(v->type, KSNMP_COUNTER32);
	assert_int_equal(v->num, 7);
	assert_int_equal(GET(&t, NULL, 1, 6, 3)->num, 1);
	assert_int_equal(GET(&t, NULL, 1, 6, 4)->num, 3);

	/* the VM rows, by uuid */
	v = GET(&t, "b-uuid", 1, 2, 1, 2);
	assert_non_null(v);
	assert_string_equal(v->str, "web1");
	assert_int_equal(GET(&t, "b-uuid", 1, 2, 1, 3)->num, KSNMP_POWER_ON);
	assert_int_equal(GET(&t, "b-uuid", 1, 2, 1, 4)->num, 2);
	assert_int_equal(GET(&t, "b-uuid", 1, 2, 1, 5)->num, 48);
	assert_string_equal(GET(&t, "b-uuid", 1, 2, 1, 6)->str, "esx1");
	assert_int_equal(GET(&t, "b-uuid", 1, 2, 1, 7)->type, KSNMP_TIMETICKS);
	assert_int_equal(GET(&t, "b-uuid", 1, 2, 1, 7)->num, 500);
	assert_int_equal(GET(&t, "a-uuid", 1, 2, 1, 3)->num, KSNMP_POWER_OFF);
	/* the index column is not served; no such row; no instance of a scalar without .0 */
	assert_null(GET(&t, "b-uuid", 1, 2, 1, 1));
	assert_null(GET(&t, "c-uuid", 1, 2, 1, 2));
	uint32_t bare[16];
	memcpy(bare, ksnmp_mib_root, ksnmp_mib_root_len * 4);
	bare[8] = 1, bare[9] = 1, bare[10] = 1;
	assert_null(ksnmp_table_get(&t, bare, 11));
	/* no cluster hosts */
	assert_null(GET(&t, "esx1", 1, 4, 1, 2));
	ksnmp_table_close(&t);
}

static void test_walk_order(void **state)
{
	struct ksnmp_counters c = {0};
	struct ksnmp_snapshot s;
	struct ksnmp_table t;
	const struct ksnmp_var *v, *prev = NULL;
	size_t n = 0;
	uint32_t start[] = {1, 3, 6, 1, 4, 1};

	fill(&s, true);
	ksnmp_table_init(&t);
	assert_int_equal(ksnmp_mib_build(&s, &c, &t), 0);
	/* from before the subtree: the first instance is keelHostName.0 */
	v = ksnmp_table_next(&t, start, N(start));
	assert_non_null(v);
	assert_string_equal(v->str, "esx1");
	/* a walk visits every instance once, in increasing order */
	for (v = ksnmp_table_next(&t, start, N(start)); v;
	     v = ksnmp_table_next(&t, v->oid.sub, v->oid.len)) {
		if (prev)
			assert_int_equal(
			    ksnmp_oid_cmp(prev->oid.sub, prev->oid.len, v->oid.sub, v->oid.len),
			    -1);
		prev = v;
		n++;
	}
	assert_int_equal(n, t.n);
	/* 12 host + 2x6 VM + 5 cluster + 2x5 host rows + 6 HA + 4 agent */
	assert_int_equal(t.n, 12 + 12 + 5 + 10 + 6 + 4);

	/* column-major: after the last name comes the first power state; rows sorted by the
	 * encoded index (length first), so a-uuid before b-uuid */
	v = GET(&t, "a-uuid", 1, 2, 1, 2);
	assert_string_equal(v->str, "db1");
	v = ksnmp_table_next(&t, v->oid.sub, v->oid.len);
	assert_string_equal(v->str, "web1");
	v = ksnmp_table_next(&t, v->oid.sub, v->oid.len);
	assert_int_equal(v->oid.sub[ksnmp_mib_root_len + 3], 3);
	assert_int_equal(v->num, KSNMP_POWER_OFF); /* db1's */

	/* GETNEXT from a partial OID inside a column lands on its first row */
	uint32_t col[16];
	memcpy(col, ksnmp_mib_root, ksnmp_mib_root_len * 4);
	col[8] = 1, col[9] = 2, col[10] = 1, col[11] = 4;
	v = ksnmp_table_next(&t, col, 12);
	assert_int_equal(v->num, 1); /* db1's vCPUs */

	/* cluster scalars and host rows */
	assert_int_equal(GET(&t, NULL, 1, 1, 10)->num, KSNMP_HOST_CONNECTED);
	assert_int_equal(GET(&t, NULL, 1, 3, 1)->num, KSNMP_TRUE);
	assert_string_equal(GET(&t, NULL, 1, 3, 2)->str, "prod");
	assert_string_equal(GET(&t, NULL, 1, 3, 3)->str, "esx2");
	assert_int_equal(GET(&t, NULL, 1, 3, 4)->num, 2);
	assert_int_equal(GET(&t, NULL, 1, 3, 5)->num, 2);
	assert_int_equal(GET(&t, "esx1", 1, 4, 1, 2)->num, KSNMP_HOST_CONNECTED);
	assert_int_equal(GET(&t, "esx1", 1, 4, 1, 4)->num, KSNMP_FALSE);
	assert_int_equal(GET(&t, "esx2", 1, 4, 1, 4)->num, KSNMP_TRUE);
	assert_string_equal(GET(&t, "esx1", 1, 4, 1, 5)->str, "198.18.0.11");
	assert_int_equal(GET(&t, NULL, 1, 5, 1)->num, KSNMP_TRUE);
	assert_int_equal(GET(&t, NULL, 1, 5, 2)->num, 1000);

	/* past the last instance: nothing */
	v = &t.vars[t.n - 1];
	assert_null(ksnmp_table_next(&t, v->oid.sub, v->oid.len));
	uint32_t after[] = {1, 3, 6, 1, 4, 1, KSNMP_ENTERPRISE, 2};
	assert_null(ksnmp_table_next(&t, after, N(after)));
	ksnmp_table_close(&t);

	/* this host's state follows the cluster: isolated wins */
	s.isolated = true;
	assert_int_equal(ksnmp_snapshot_host_state(&s), KSNMP_HOST_ISOLATED);
	s.isolated = false;
	hosts2[0].state = KSNMP_HOST_MAINTENANCE;
	assert_int_equal(ksnmp_snapshot_host_state(&s), KSNMP_HOST_MAINTENANCE);
	s.node_id = 99;
	assert_int_equal(ksnmp_snapshot_host_state(&s), KSNMP_HOST_UNKNOWN);
}

static void test_build_oom(void **state)
{
	struct ksnmp_counters c = {0};
	struct ksnmp_snapshot s;
	struct ksnmp_table t;
	int failures = 0;

	fill(&s, true);
	/* every allocation on the way fails once: -ENOMEM each time, and no leak (close) */
	for (int i = 0; i < 80; i++) {
		ksnmp_table_init(&t);
		kb_heap_fail_after(i, 1);
		int rv = ksnmp_mib_build(&s, &c, &t);
		kb_heap_fail_reset();
		if (rv != 0) {
			assert_int_equal(rv, -ENOMEM);
			failures++;
		}
		ksnmp_table_close(&t);
	}
	assert_true(failures > 10);
}

static bool has(const struct ksnmp_notice *n, size_t count, enum ksnmp_notif kind, const char *vm)
{
	for (size_t i = 0; i < count; i++)
		if (n[i].kind == kind && (vm == NULL || strcmp(n[i].vm, vm) == 0))
			return true;
	return false;
}

static void test_notices(void **state)
{
	static struct ksnmp_vm pv[2], cv[2];
	static struct ksnmp_chost ph[2], ch[2];
	struct ksnmp_snapshot prev, cur;
	struct ksnmp_notice *n = NULL;
	size_t count = 0;

	fill(&prev, true);
	memcpy(pv, vms2, sizeof(pv));
	memcpy(ph, hosts2, sizeof(ph));
	prev.vms = pv;
	prev.hosts = ph;
	fill(&cur, true);
	memcpy(cv, vms2, sizeof(cv));
	memcpy(ch, hosts2, sizeof(ch));
	cur.vms = cv;
	cur.hosts = ch;

	/* the first poll, and a step with no change: nothing */
	assert_int_equal(ksnmp_notices(NULL, &cur, &n, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), 0);
	assert_int_equal(count, 0);

	/* esx2 fails: keelHostFailed; web1 moves off it: keelHaRestart; db1 powered on here */
	ch[1].state = KSNMP_HOST_FAILED;
	snprintf(pv[0].host, sizeof(pv[0].host), "esx2");
	cv[1].power = KSNMP_POWER_ON;
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), 0);
	assert_int_equal(count, 3);
	assert_true(has(n, count, KSNMP_N_HOST_FAILED, NULL));
	assert_string_equal(n[0].host, "esx2");
	assert_non_null(strstr(n[0].message, "esx2 failed (was connected)"));
	assert_true(has(n, count, KSNMP_N_HA_RESTART, "web1"));
	assert_true(has(n, count, KSNMP_N_VM_POWER, "db1"));
	kb_free(n);
	n = NULL;
	count = 0;

	/* still failed on the next step: no second keelHostFailed */
	ph[1].state = KSNMP_HOST_FAILED;
	snprintf(pv[0].host, sizeof(pv[0].host), "esx1");
	pv[1].power = KSNMP_POWER_ON;
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), 0);
	assert_int_equal(count, 0);

	/* an owner change between two live hosts is a migration */
	ch[1].state = ph[1].state = KSNMP_HOST_CONNECTED;
	snprintf(cv[0].host, sizeof(cv[0].host), "esx2");
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(n[0].kind, KSNMP_N_VM_MIGRATED);
	assert_string_equal(n[0].vm, "web1");
	assert_non_null(strstr(n[0].message, "from esx1 to esx2"));
	kb_free(n);
	n = NULL;
	count = 0;
	snprintf(cv[0].host, sizeof(cv[0].host), "esx1");

	/* a power change of another host's VM (vcpus not known) is not ours to report */
	cv[1].vcpus = 0;
	cv[1].power = KSNMP_POWER_OFF;
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), 0);
	assert_int_equal(count, 0);
	cv[1].power = KSNMP_POWER_ON;

	/* events: EVENT_HA -> keelHaRestart, an FT failover message -> keelFtFailover; others
	 * (a note) nothing */
	struct ksnmp_event ev[3] = {
	    {.seq = 5, .kind = 8, .host = 22, .vm = "b-uuid", .message = "restart planned"},
	    {.seq = 6, .kind = 7, .host = 22, .message = "voter replaced"},
	    {.seq = 7, .kind = 7, .host = 11, .vm = "a-uuid", .message = "FT failover of db1"},
	};
	cur.events = ev;
	cur.n_events = 3;
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(n[0].kind, KSNMP_N_HA_RESTART);
	assert_string_equal(n[0].vm, "web1");
	assert_string_equal(n[0].host, "esx2");
	assert_string_equal(n[0].message, "restart planned");
	assert_int_equal(n[1].kind, KSNMP_N_FT_FAILOVER);
	assert_string_equal(n[1].vm, "db1");
	kb_free(n);
	n = NULL;
	count = 0;

	/* out of memory: -ENOMEM, what was there stays */
	kb_heap_fail_after(0, -1);
	assert_int_equal(ksnmp_notices(&prev, &cur, &n, &count), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(count, 0);
	assert_null(n);
}

static void test_notice_oid(void **state)
{
	struct ksnmp_oid o;
	char s[128];

	ksnmp_notice_oid(KSNMP_N_HOST_FAILED, &o);
	ksnmp_oid_fmt(o.sub, o.len, s, sizeof(s));
	assert_string_equal(s, "1.3.6.1.4.1.99999.1.2.0.1");
	ksnmp_notice_oid(KSNMP_N_VM_POWER, &o);
	ksnmp_oid_fmt(o.sub, o.len, s, sizeof(s));
	assert_string_equal(s, "1.3.6.1.4.1.99999.1.2.0.5");
	assert_string_equal(ksnmp_notice_name(KSNMP_N_HA_RESTART), "keelHaRestart");
	assert_string_equal(ksnmp_notice_name(KSNMP_N_FT_FAILOVER), "keelFtFailover");
	assert_string_equal(ksnmp_notice_name(KSNMP_N_VM_MIGRATED), "keelVmMigrated");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_string_index), cmocka_unit_test(test_string_index_too_long),
	    cmocka_unit_test(test_oid_order),	 cmocka_unit_test(test_enums),
	    cmocka_unit_test(test_ticks_gauge),	 cmocka_unit_test(test_build_standalone),
	    cmocka_unit_test(test_walk_order),	 cmocka_unit_test(test_build_oom),
	    cmocka_unit_test(test_notices),	 cmocka_unit_test(test_notice_oid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
