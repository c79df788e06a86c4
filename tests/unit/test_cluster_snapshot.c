/*
 * Tests for clusterd's state machine without Raft: snapshot round trips, and corrupted,
 * truncated and oversized command batches and snapshots refused without changing the
 * state; inconsistent snapshots (join token records and events included) refused. Out-of-memory during apply and restore changes
 * nothing. Command validation is in test_cluster_fsm.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clusterd/codec.h"
#include "clusterd/fsm.h"
#include "clusterd/snapshot.h"
#include "lib/crc.h"
#include "lib/heap.h"
#include "tests/unit/cluster_fsm_helpers.h"

/* Restores a copy of data into cf_fsm; returns the code (the copy is freed either way). */
static int restore_copy(const void *data, size_t len)
{
	struct raft_buffer b = {.base = raft_malloc(len ? len : 1), .len = len};
	int rv;

	memcpy(b.base, data, len);
	rv = cd_fsm_restore(&cf_fsm.raft, &b);
	if (rv != 0)
		raft_free(b.base);
	return rv;
}

/* ---- batches ----------------------------------------------------------------------- */

static void test_batch_undecodable(void **state)
{
	Keel__Cluster__Command *cmds[2];
	struct kb_errmsg e = {{0}};
	const struct cd_result *r;
	struct raft_buffer good, before;
	uint8_t *big;
	uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};

	cf_populate();
	before = cf_snap(&cf_fsm);
	cmds[0] = cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	cmds[1] = cf_owner(UUID_A, 2, 9);
	assert_int_equal(cd_batch_encode(cmds, 2, &good, &e), 0);
	/* Every truncation of a good batch: refused whole, or (where the cut falls on a
	 * boundary and leaves a valid prefix) a shorter batch; never half a command. */
	for (size_t n = 1; n < good.len; n++) {
		r = cf_apply_bytes(good.base, n);
		if (r->status != 0) {
			assert_true(cf_same_as(&before));
			assert_true(r->reason[0] != '\0');
			assert_int_equal(r->n, 0);
		} else {
			/* The cut left a valid shorter batch: start again from before. */
			cd_fsm_close(&cf_fsm);
			cd_fsm_init(&cf_fsm);
			assert_int_equal(restore_copy(before.base, before.len), 0);
		}
	}
	raft_free(good.base);

	r = cf_apply_bytes(garbage, sizeof(garbage));
	assert_int_equal(r->status, KB_EPROTO);

	/* Oversized. */
	big = calloc(1, CD_BATCH_MAX_BYTES + 1);
	r = cf_apply_bytes(big, CD_BATCH_MAX_BYTES + 1);
	assert_int_equal(r->status, KB_ETOOBIG);
	free(big);

	/* Another format version. */
	{
		Keel__Cluster__CommandBatch b = KEEL__CLUSTER__COMMAND_BATCH__INIT;
		uint8_t out[256];
		size_t len;

		b.format_version = 2;
		b.n_commands = 1;
		b.commands = cmds;
		len = keel__cluster__command_batch__pack(&b, out);
		r = cf_apply_bytes(out, len);
		assert_int_equal(r->status, KB_EVERSION);
	}
	/* Too many commands. */
	{
		Keel__Cluster__Command *many[CD_BATCH_MAX_COMMANDS + 1];
		Keel__Cluster__Command empty = KEEL__CLUSTER__COMMAND__INIT;
		Keel__Cluster__CommandBatch b = KEEL__CLUSTER__COMMAND_BATCH__INIT;
		struct raft_buffer tmp;
		uint8_t *out;
		size_t len;

		for (unsigned i = 0; i <= CD_BATCH_MAX_COMMANDS; i++)
			many[i] = &empty;
		assert_int_equal(cd_batch_encode(many, CD_BATCH_MAX_COMMANDS + 1, &tmp, &e),
				 KB_ETOOBIG);
		b.format_version = 1;
		b.n_commands = CD_BATCH_MAX_COMMANDS + 1;
		b.commands = many;
		len = keel__cluster__command_batch__get_packed_size(&b);
		out = malloc(len);
		keel__cluster__command_batch__pack(&b, out);
		r = cf_apply_bytes(out, len);
		assert_int_equal(r->status, KB_ETOOBIG);
		free(out);
	}
	assert_true(cf_same_as(&before));
	raft_free(before.base);
}

/* ---- snapshots --------------------------------------------------------------------- */

static void test_snapshot_round_trip(void **state)
{
	struct cd_fsm g;
	struct raft_buffer *bufs, copy, again;
	unsigned n;
	char *after[] = {UUID_B};

	cf_populate();
	assert_int_equal(
	    cf_apply1(cf_ha(UUID_A, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH, after, 1)), 0);
	assert_int_equal(
	    cf_apply1(cf_ft(UUID_A, 0, KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY, 0, 0)), 0);
	assert_int_equal(cf_apply1(cf_ft(UUID_A, 1, KEEL__CLUSTER__FT_STATE__FT_STARTING, 3, 0)),
			 0);
	assert_int_equal(cf_apply1(cf_op_begin(4, UUID_B, 2, 3, 1)), 0);
	assert_int_equal(cd_fsm_snapshot(&cf_fsm.raft, &bufs, &n), 0);
	assert_int_equal(n, 1);
	copy.len = bufs[0].len;
	copy.base = raft_malloc(copy.len);
	memcpy(copy.base, bufs[0].base, copy.len);

	cd_fsm_init(&g);
	assert_int_equal(cd_fsm_restore(&g.raft, &copy), 0); /* takes copy.base */
	again = cf_snap(&g);
	assert_int_equal(again.len, bufs[0].len);
	assert_memory_equal(again.base, bufs[0].base, again.len);
	assert_int_equal(cd_fsm_state(&g)->applied, cd_fsm_state(&cf_fsm)->applied);
	assert_int_equal(cd_state_op(cd_fsm_state(&g), 4)->destination, 3);
	raft_free(again.base);
	cd_fsm_close(&g);
	raft_free(bufs[0].base);
	raft_free(bufs);
}

/* Join token records and a wrapped event ring survive a round trip, and a state restored
 * with its ring at another position still gives the same bytes, now and after the same
 * commands. */
static void test_snapshot_round_trip_tokens_events(void **state)
{
	Keel__Cluster__Command *cmds[64];
	struct raft_buffer snap, copy, again;
	const struct cd_state *s = cd_fsm_state(&cf_fsm), *gs;
	struct cd_fsm g;

	cf_populate();
	assert_int_equal(cf_apply1(cf_token_add(0x41, 0xa1, 2000, 1000)), 0);
	assert_int_equal(cf_apply1(cf_token_add(0x42, 0xa2, 3000, 1000)), 0);
	assert_int_equal(cf_apply1(cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1100)),
			 0);
	for (unsigned round = 0; round < 20; round++) {
		for (unsigned i = 0; i < 64; i++)
			cmds[i] = cf_event_add(round, UUID_C, "voter replaced", 2000 + round);
		assert_int_equal(cf_apply_n(cmds, 64)->n_applied, 64);
	}
	assert_int_equal(cd_state_n_events(s), CD_EVENTS_MAX);
	assert_true(s->ev_head != 0);
	snap = cf_snap(&cf_fsm);
	copy.len = snap.len;
	copy.base = raft_malloc(copy.len);
	memcpy(copy.base, snap.base, copy.len);

	cd_fsm_init(&g);
	assert_int_equal(cd_fsm_restore(&g.raft, &copy), 0); /* takes copy.base */
	gs = cd_fsm_state(&g);
	again = cf_snap(&g);
	assert_int_equal(again.len, snap.len);
	assert_memory_equal(again.base, snap.base, again.len);
	raft_free(again.base);
	assert_int_equal(gs->ev_head, 0);
	assert_int_equal(gs->next_event_seq, s->next_event_seq);
	assert_int_equal(cd_state_n_tokens(gs), 2);
	assert_true(cd_state_token_at(gs, 0)->rec.used);
	assert_int_equal(cd_state_token_at(gs, 0)->used_by, 4);
	assert_false(cd_state_token_at(gs, 1)->rec.used);
	assert_int_equal(cd_state_token_at(gs, 1)->rec.expires_s, 3000);
	for (unsigned i = 0; i < CD_EVENTS_MAX; i++) {
		const struct cd_event *a = cd_state_event_at(s, i), *b = cd_state_event_at(gs, i);

		assert_int_equal(a->seq, b->seq);
		assert_int_equal(a->at_ms, b->at_ms);
		assert_int_equal(a->kind, b->kind);
		assert_int_equal(a->host, b->host);
		assert_string_equal(a->vm, b->vm);
		assert_string_equal(a->message, b->message);
	}
	/* The same commands on both: the same bytes. */
	{
		Keel__Cluster__Command *more[3];
		struct raft_buffer b1, b2;
		struct kb_errmsg e = {{0}};
		void *result;

		more[0] = cf_host_join(5, "esx5", "198.18.0.5:7000", 0x42, 0xa2, 1200);
		more[1] = cf_event_add(0, "", "after the restore", 9000);
		more[2] = cf_host_update(5, KEEL__CLUSTER__HOST_STATE__HOST_FAILED, 9100);
		assert_int_equal(cd_batch_encode(more, 3, &b1, &e), 0);
		assert_int_equal(cd_fsm_apply(&cf_fsm.raft, &b1, &result), 0);
		assert_int_equal(((struct cd_result *)result)->n_applied, 3);
		assert_int_equal(cd_fsm_apply(&g.raft, &b1, &result), 0);
		assert_int_equal(((struct cd_result *)result)->n_applied, 3);
		raft_free(b1.base);
		b1 = cf_snap(&cf_fsm);
		b2 = cf_snap(&g);
		assert_int_equal(b1.len, b2.len);
		assert_memory_equal(b1.base, b2.base, b1.len);
		raft_free(b1.base);
		raft_free(b2.base);
	}
	cd_fsm_close(&g);
	raft_free(snap.base);
}

/* A snapshot around an arbitrary State message, with valid header and checksums. */
static struct raft_buffer wrap_state(const Keel__Cluster__State *st)
{
	size_t len = keel__cluster__state__get_packed_size(st);
	struct raft_buffer b = {.base = raft_malloc(CD_SNAPSHOT_HEADER_SIZE + len),
				.len = CD_SNAPSHOT_HEADER_SIZE + len};
	uint8_t *p = b.base;

	keel__cluster__state__pack(st, p + CD_SNAPSHOT_HEADER_SIZE);
	memcpy(p, CD_SNAPSHOT_MAGIC, 4);
	memset(p + 4, 0, 20);
	p[4] = CD_SNAPSHOT_VERSION;
	for (int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(len >> (8 * i));
	uint32_t c = kb_crc32c(0, p + CD_SNAPSHOT_HEADER_SIZE, len);
	for (int i = 0; i < 4; i++)
		p[16 + i] = (uint8_t)(c >> (8 * i));
	c = kb_crc32c(0, p, 20);
	for (int i = 0; i < 4; i++)
		p[20 + i] = (uint8_t)(c >> (8 * i));
	return b;
}

static void test_snapshot_corrupt(void **state)
{
	struct raft_buffer good, before;
	uint8_t *p;

	cf_populate();
	good = cf_snap(&cf_fsm);
	cd_fsm_close(&cf_fsm);
	cd_fsm_init(&cf_fsm);
	assert_int_equal(cf_apply1(cf_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = cf_snap(&cf_fsm);
	p = malloc(good.len);

	/* Every truncation. */
	for (size_t n = 0; n < good.len; n++)
		assert_int_equal(restore_copy(good.base, n), RAFT_MALFORMED);
	/* Every single-bit flip in the header, and a sample over the payload. */
	for (size_t i = 0; i < good.len; i += i < CD_SNAPSHOT_HEADER_SIZE ? 1 : 7) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(p, good.base, good.len);
			p[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(restore_copy(p, good.len), RAFT_MALFORMED);
		}
	}
	/* Trailing bytes. */
	{
		uint8_t *q = malloc(good.len + 1);

		memcpy(q, good.base, good.len);
		q[good.len] = 0;
		assert_int_equal(restore_copy(q, good.len + 1), RAFT_MALFORMED);
		free(q);
	}
	assert_true(cf_same_as(&before));
	/* Decoder codes. */
	{
		struct cd_state s;
		struct kb_errmsg e = {{0}};

		cd_state_init(&s);
		assert_int_equal(cd_snapshot_decode(good.base, 10, &s, &e), KB_ETRUNCATED);
		memcpy(p, good.base, good.len);
		p[30] ^= 1;
		assert_int_equal(cd_snapshot_decode(p, good.len, &s, &e), KB_ECHECKSUM);
		assert_int_equal(cd_snapshot_decode(good.base, good.len, &s, &e), 0);
		cd_state_close(&s);
	}
	free(p);
	raft_free(good.base);
	raft_free(before.base);
}

static void test_snapshot_oversized_and_versions(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	struct raft_buffer b;
	struct kb_errmsg e = {{0}};
	struct cd_state s;
	uint8_t *p;

	cd_state_init(&s);
	st.format_version = 1;
	b = wrap_state(&st);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), 0);
	cd_state_close(&s);
	/* Header claiming more than the limit. */
	p = b.base;
	p[8 + 3] = 0x40; /* 1 GiB */
	p[20] ^= 0xff;	 /* recompute the header CRC below */
	{
		uint32_t c = kb_crc32c(0, p, 20);

		for (int i = 0; i < 4; i++)
			p[20 + i] = (uint8_t)(c >> (8 * i));
	}
	cd_state_init(&s);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_ETOOBIG);
	/* Unknown header version. */
	raft_free(b.base);
	b = wrap_state(&st);
	p = b.base;
	p[4] = 2;
	{
		uint32_t c = kb_crc32c(0, p, 20);

		for (int i = 0; i < 4; i++)
			p[20 + i] = (uint8_t)(c >> (8 * i));
	}
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_EVERSION);
	raft_free(b.base);
	/* Unknown state version. */
	st.format_version = 9;
	b = wrap_state(&st);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_EVERSION);
	raft_free(b.base);
	cd_state_close(&s);
}

/* Well-formed snapshots whose content breaks an invariant. */
static void test_snapshot_inconsistent(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	Keel__Cluster__Host h[2], *hp[2] = {&h[0], &h[1]};
	Keel__Cluster__Vm v[2], *vp[2] = {&v[0], &v[1]};
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	Keel__Cluster__Operation o = KEEL__CLUSTER__OPERATION__INIT, *op = &o;
	struct raft_buffer b, before;

	assert_int_equal(cf_apply1(cf_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = cf_snap(&cf_fsm);
	ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW;
	for (int i = 0; i < 2; i++) {
		keel__cluster__host__init(&h[i]);
		h[i].id = (uint64_t)i + 1;
		h[i].name = i ? "esx2" : "esx1";
		h[i].vmk0 = i ? "198.18.0.2:7000" : "198.18.0.1:7000";
		h[i].state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
		h[i].role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
		keel__cluster__vm__init(&v[i]);
		v[i].uuid = i ? UUID_B : UUID_A;
		v[i].name = "vm";
		v[i].vmx_path = i ? "/ds/b.vmx" : "/ds/a.vmx";
		v[i].owner = 1;
		v[i].epoch = 1;
		v[i].desired_power = KEEL__CLUSTER__POWER_STATE__POWER_ON;
		v[i].ha = &ha;
	}
	o.id = 1;
	o.kind = KEEL__CLUSTER__OP_KIND__OP_RESTART;
	o.vm = UUID_A;
	o.destination = 2;
	o.epoch = 1;
	st.format_version = 1;
	st.hosts = hp;
	st.n_hosts = 2;
	st.vms = vp;
	st.n_vms = 2;
	st.ops = &op;
	st.n_ops = 1;

	/* The consistent one restores. */
	b = wrap_state(&st);
	assert_int_equal(restore_copy(b.base, b.len), 0);
	raft_free(b.base);
	assert_int_equal(cd_state_n_vms(cd_fsm_state(&cf_fsm)), 2);
	cd_fsm_close(&cf_fsm);
	cd_fsm_init(&cf_fsm);
	assert_int_equal(cf_apply1(cf_host_add(7, "other", "198.18.0.7:7000")), 0);

#define REFUSED(mutate, undo)                                                  \
	do {                                                                   \
		mutate;                                                        \
		b = wrap_state(&st);                                           \
		assert_int_equal(restore_copy(b.base, b.len), RAFT_MALFORMED); \
		raft_free(b.base);                                             \
		assert_true(cf_same_as(&before));                              \
		undo;                                                          \
	} while (0)

	REFUSED(v[1].owner = 9, v[1].owner = 1);	 /* owner missing */
	REFUSED(h[1].id = 1, h[1].id = 2);		 /* duplicate host id */
	REFUSED(h[1].name = "esx1", h[1].name = "esx2"); /* duplicate name */
	REFUSED(h[1].vmk0 = h[0].vmk0, h[1].vmk0 = "198.18.0.2:7000");
	REFUSED(v[1].uuid = UUID_A, v[1].uuid = UUID_B); /* duplicate uuid */
	REFUSED(v[1].vmx_path = "/ds/a.vmx", v[1].vmx_path = "/ds/b.vmx");
	REFUSED((hp[0] = &h[1], hp[1] = &h[0]), (hp[0] = &h[0], hp[1] = &h[1])); /* order */
	REFUSED(v[0].epoch = 0, v[0].epoch = 1);
	REFUSED(o.destination = 5, o.destination = 2); /* op host missing */
	REFUSED(o.vm = UUID_C, o.vm = UUID_A);	       /* op VM missing */
	Keel__Cluster__Ft ft = KEEL__CLUSTER__FT__INIT;
	ft.state = KEEL__CLUSTER__FT_STATE__FT_PROTECTED;
	ft.secondary = 7;
	REFUSED(v[0].ft = &ft, v[0].ft = NULL); /* FT secondary host missing */
	ft.secondary = 0;
	REFUSED(v[0].ft = &ft, v[0].ft = NULL); /* protected without a secondary */
	REFUSED(h[0].vmk0 = "localhost:1", h[0].vmk0 = "198.18.0.1:7000");
	REFUSED(v[0].ha = NULL, v[0].ha = &ha);
#undef REFUSED
	raft_free(before.base);
}

/* Well-formed snapshots whose join token records or events are not valid. */
static void test_snapshot_inconsistent_tokens_events(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	Keel__Cluster__JoinTokenRecord t[2], *tp[2] = {&t[0], &t[1]};
	Keel__Cluster__Event ev[2], *ep[2] = {&ev[0], &ev[1]};
	uint8_t ids[2][CD_TOKEN_ID_SIZE], hashes[2][CD_TOKEN_HASH_SIZE];
	struct raft_buffer b, before;
	const struct cd_state *s = cd_fsm_state(&cf_fsm);

	assert_int_equal(cf_apply1(cf_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = cf_snap(&cf_fsm);
	for (int i = 0; i < 2; i++) {
		keel__cluster__join_token_record__init(&t[i]);
		memset(ids[i], 0x10 * (i + 1), CD_TOKEN_ID_SIZE);
		memset(hashes[i], 0xa0 + i, CD_TOKEN_HASH_SIZE);
		t[i].id.data = ids[i];
		t[i].id.len = CD_TOKEN_ID_SIZE;
		t[i].secret_hash.data = hashes[i];
		t[i].secret_hash.len = CD_TOKEN_HASH_SIZE;
		t[i].expires_s = 5000;
		keel__cluster__event__init(&ev[i]);
		ev[i].seq = (uint64_t)i + 3;
		ev[i].at_ms = 100;
		ev[i].kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE;
		ev[i].message = "note";
	}
	t[1].used = true;
	t[1].used_by = 42; /* a host that has left since */
	ev[1].vm = UUID_A;
	st.format_version = 1;
	st.tokens = tp;
	st.n_tokens = 2;
	st.events = ep;
	st.n_events = 2;
	st.next_event_seq = 9;

	/* The consistent one restores. */
	b = wrap_state(&st);
	assert_int_equal(restore_copy(b.base, b.len), 0);
	raft_free(b.base);
	assert_int_equal(cd_state_n_tokens(s), 2);
	assert_int_equal(cd_state_n_events(s), 2);
	assert_int_equal(cd_state_event_at(s, 1)->seq, 4);
	assert_string_equal(cd_state_event_at(s, 1)->vm, UUID_A);
	assert_int_equal(s->next_event_seq, 9);
	cd_fsm_close(&cf_fsm);
	cd_fsm_init(&cf_fsm);
	assert_int_equal(cf_apply1(cf_host_add(7, "other", "198.18.0.7:7000")), 0);

#define REFUSED(mutate, undo)                                                  \
	do {                                                                   \
		mutate;                                                        \
		b = wrap_state(&st);                                           \
		assert_int_equal(restore_copy(b.base, b.len), RAFT_MALFORMED); \
		raft_free(b.base);                                             \
		assert_true(cf_same_as(&before));                              \
		undo;                                                          \
	} while (0)

	REFUSED((tp[0] = &t[1], tp[1] = &t[0]), (tp[0] = &t[0], tp[1] = &t[1])); /* order */
	REFUSED(tp[1] = &t[0], tp[1] = &t[1]);					 /* duplicate id */
	REFUSED(t[0].id.len = 15, t[0].id.len = CD_TOKEN_ID_SIZE);
	REFUSED(t[0].secret_hash.len = 33, t[0].secret_hash.len = CD_TOKEN_HASH_SIZE);
	REFUSED(t[0].used_by = 3, t[0].used_by = 0);  /* used_by without used */
	REFUSED(t[1].used_by = 0, t[1].used_by = 42); /* used without used_by */
	REFUSED(ev[1].seq = 3, ev[1].seq = 4);	      /* duplicate seq */
	REFUSED((ep[0] = &ev[1], ep[1] = &ev[0]), (ep[0] = &ev[0], ep[1] = &ev[1]));
	REFUSED(ev[0].seq = 0, ev[0].seq = 3);
	REFUSED(st.next_event_seq = 4, st.next_event_seq = 9); /* not above the last seq */
	REFUSED(st.next_event_seq = 0, st.next_event_seq = 9);
	REFUSED(ev[0].kind = 0, ev[0].kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE);
	REFUSED(ev[0].kind = KEEL__CLUSTER__EVENT_KIND__EVENT_FT + 1,
		ev[0].kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE);
	REFUSED(ev[0].message = "", ev[0].message = "note");
	REFUSED(ev[0].message = "two\nlines", ev[0].message = "note");
	REFUSED(ev[0].message = "bad \xc3(", ev[0].message = "note");
	REFUSED(ev[0].vm = "nope", ev[0].vm = "");
#undef REFUSED
	raft_free(before.base);

	/* A snapshot from before events (next_event_seq absent, no events): events start at
	 * 1. */
	st.n_events = 0;
	st.next_event_seq = 0;
	b = wrap_state(&st);
	assert_int_equal(restore_copy(b.base, b.len), 0);
	raft_free(b.base);
	assert_int_equal(s->next_event_seq, 1);
	assert_int_equal(cf_apply1(cf_event_add(0, "", "first", 1)), 0);
	assert_int_equal(cd_state_event_at(s, 0)->seq, 1);
}

/* More records than the limits: refused before anything is converted. */
static void test_snapshot_token_event_limits(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	Keel__Cluster__JoinTokenRecord tr = KEEL__CLUSTER__JOIN_TOKEN_RECORD__INIT;
	Keel__Cluster__Event **ep = calloc(CD_EVENTS_MAX + 1, sizeof(*ep));
	Keel__Cluster__JoinTokenRecord **tp = calloc(CD_TOKENS_MAX + 1, sizeof(*tp));
	struct kb_errmsg e = {{0}};
	struct raft_buffer b;
	struct cd_state s;

	ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE;
	ev.message = "x";
	for (unsigned i = 0; i <= CD_EVENTS_MAX; i++)
		ep[i] = &ev;
	for (unsigned i = 0; i <= CD_TOKENS_MAX; i++)
		tp[i] = &tr;
	st.format_version = 1;
	st.next_event_seq = 1;
	st.events = ep;
	st.n_events = CD_EVENTS_MAX + 1;
	b = wrap_state(&st);
	cd_state_init(&s);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_ETOOBIG);
	raft_free(b.base);
	st.n_events = 0;
	st.tokens = tp;
	st.n_tokens = CD_TOKENS_MAX + 1;
	b = wrap_state(&st);
	assert_int_equal(cd_snapshot_decode(b.base, b.len, &s, &e), KB_ETOOBIG);
	raft_free(b.base);
	cd_state_close(&s);
	free(ep);
	free(tp);
}

/* ---- out of memory ----------------------------------------------------------------- */

static void test_apply_oom_changes_nothing(void **state)
{
	Keel__Cluster__Command *cmds[3];
	struct kb_errmsg e = {{0}};
	struct raft_buffer buf, before;
	void *result;
	int rv;

	cf_populate();
	cmds[0] = cf_vm_reg(UUID_C, "/vmfs/volumes/ds1/c/c.vmx", 1, 1);
	cmds[1] = cf_host_add(4, "esx4", "198.18.0.4:7000");
	cmds[2] = cf_owner(UUID_A, 2, 2);
	assert_int_equal(cd_batch_encode(cmds, 3, &buf, &e), 0);
	before = cf_snap(&cf_fsm);
	/* Fail the n-th allocation for growing n until apply goes through. */
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = cd_fsm_apply(&cf_fsm.raft, &buf, &result);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, RAFT_NOMEM);
		assert_true(cf_same_as(&before));
		assert_true(n < 100);
	}
	assert_int_equal(((struct cd_result *)result)->n_applied, 3);
	raft_free(buf.base);
	raft_free(before.base);
}

/* The first entry on a fresh state allocates the token array and the event ring: failing
 * any allocation leaves the state empty, and the retry applies everything once. */
static void test_first_apply_oom_changes_nothing(void **state)
{
	Keel__Cluster__Command *cmds[4];
	struct kb_errmsg e = {{0}};
	struct raft_buffer buf, before;
	const struct cd_state *s = cd_fsm_state(&cf_fsm);
	void *result;
	int rv;

	cmds[0] = cf_config("prod", CLUSTER1, 1000);
	cmds[1] = cf_token_add(0x41, 0xa1, 2000, 1000);
	cmds[2] = cf_host_join(4, "esx4", "198.18.0.4:7000", 0x41, 0xa1, 1100);
	cmds[3] = cf_event_add(4, "", "joined", 1100);
	assert_int_equal(cd_batch_encode(cmds, 4, &buf, &e), 0);
	before = cf_snap(&cf_fsm);
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = cd_fsm_apply(&cf_fsm.raft, &buf, &result);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, RAFT_NOMEM);
		assert_true(cf_same_as(&before));
		assert_true(n < 100);
	}
	assert_int_equal(((struct cd_result *)result)->n_applied, 4);
	assert_int_equal(cd_state_n_events(s), 3);
	assert_int_equal(s->next_event_seq, 4);
	assert_int_equal(cd_state_token_at(s, 0)->used_by, 4);
	raft_free(buf.base);
	raft_free(before.base);
}

static void test_restore_oom_changes_nothing(void **state)
{
	struct raft_buffer good, before;
	int rv;

	cf_populate();
	good = cf_snap(&cf_fsm);
	cd_fsm_close(&cf_fsm);
	cd_fsm_init(&cf_fsm);
	assert_int_equal(cf_apply1(cf_host_add(7, "other", "198.18.0.7:7000")), 0);
	before = cf_snap(&cf_fsm);
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = restore_copy(good.base, good.len);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, RAFT_NOMEM);
		assert_true(cf_same_as(&before));
		assert_true(n < 200);
	}
	assert_true(cf_same_as(&good));
	raft_free(good.base);
	raft_free(before.base);
}

static void test_snapshot_threshold(void **state)
{
	assert_int_equal(cd_fsm_snapshot_threshold(&cf_fsm), CD_SNAPSHOT_THRESHOLD_MIN);
	cf_populate();
	assert_int_equal(cd_fsm_snapshot_threshold(&cf_fsm), CD_SNAPSHOT_THRESHOLD_MIN);
	cf_fsm.state.n_vms = 5000; /* only the counts matter */
	assert_true(cd_fsm_snapshot_threshold(&cf_fsm) > CD_SNAPSHOT_THRESHOLD_MIN);
	cf_fsm.state.n_vms = 60000;
	assert_int_equal(cd_fsm_snapshot_threshold(&cf_fsm), CD_SNAPSHOT_THRESHOLD_MAX);
	cf_fsm.state.n_vms = 2;
}

/* ---- placement rules, DRS settings, last moved -------------------------------------------- */

/* Rules, DRS settings and a VM's last move survive a round trip byte for byte. */
static void test_snapshot_rules_drs(void **state)
{
	char *ab[] = {UUID_A, UUID_B}, *a[] = {UUID_A};
	uint64_t g[] = {2, 3};
	struct raft_buffer snap, again;
	const struct cd_state *gs;
	struct cd_drs_settings d;
	struct cd_fsm g2;

	cf_populate();
	assert_int_equal(
	    cf_apply1(cf_config_drs("prod", CLUSTER1, 1000,
				    KEEL__CLUSTER__DRS_AUTOMATION__DRS_PARTIAL, 4, 120, 30, 7)),
	    0);
	assert_int_equal(
	    cf_apply1(cf_rule_set("apart", KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY, true, ab,
				  2, NULL, 0, 1000)),
	    0);
	assert_int_equal(
	    cf_apply1(cf_rule_set("pin", KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY, false,
				  a, 1, g, 2, 1000)),
	    0);
	assert_int_equal(cf_apply1(cf_event_add(0, "", "tick", 4242)), 0);
	assert_int_equal(cf_apply1(cf_owner(UUID_A, 3, 2)), 0);
	snap = cf_snap(&cf_fsm);
	cd_fsm_init(&g2);
	assert_int_equal(restore_copy(snap.base, snap.len), 0);
	assert_int_equal(cd_fsm_restore(&g2.raft, &snap), 0); /* takes snap.base */
	gs = cd_fsm_state(&g2);
	again = cf_snap(&g2);
	assert_true(cf_same_as(&again));
	raft_free(again.base);
	assert_int_equal(cd_state_n_rules(gs), 2);
	assert_true(cd_state_rule(gs, "apart")->mandatory);
	assert_int_equal(cd_state_rule(gs, "pin")->kind,
			 KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY);
	assert_int_equal(cd_state_rule(gs, "pin")->n_hosts, 2);
	assert_int_equal(cd_state_rule(gs, "pin")->hosts[1], 3);
	assert_int_equal(cd_state_vm(gs, UUID_A)->last_moved_ms, 4242);
	cd_state_drs_settings(gs, &d);
	assert_int_equal(d.automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_PARTIAL);
	assert_int_equal(d.threshold, 4);
	assert_int_equal(d.interval_s, 120);
	assert_int_equal(d.hold_s, 30);
	assert_int_equal(d.max_moves, 7);
	/* The restored state takes a new rule like the original (room was kept). */
	assert_int_equal(cd_fsm_state(&cf_fsm)->n_rules, 2);
	assert_int_equal(cf_apply1(cf_rule_set("more", KEEL__CLUSTER__RULE_KIND__RULE_AFFINITY,
					       false, ab, 2, NULL, 0, 1000)),
			 0);
	cd_fsm_close(&g2);
}

/* A snapshot written before rules and DRS existed (config without drs, no rules) restores
 * with the default settings; rules that name missing VMs or hosts, repeat a name, come out
 * of order or have a bad shape are refused and change nothing. */
static void test_snapshot_rules_inconsistent(void **state)
{
	Keel__Cluster__State st = KEEL__CLUSTER__STATE__INIT;
	Keel__Cluster__ClusterConfig cfg = KEEL__CLUSTER__CLUSTER_CONFIG__INIT;
	Keel__Cluster__Host h = KEEL__CLUSTER__HOST__INIT, *hp = &h;
	Keel__Cluster__Vm v[2], *vp[2] = {&v[0], &v[1]};
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	Keel__Cluster__Rule r[2], *rp[2] = {&r[0], &r[1]};
	char *ab[] = {UUID_A, UUID_B}, *ac[] = {UUID_A, UUID_C};
	uint64_t g1[] = {1}, g9[] = {9};
	struct cd_drs_settings d;
	struct raft_buffer b, before;

	cfg.name = "old";
	cfg.cluster_id = CLUSTER1;
	cfg.format_version = 1;
	cfg.failure_timeout_ms = 1000;
	cfg.isolation_response = KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF;
	h.id = 1;
	h.name = "esx1";
	h.vmk0 = "198.18.0.1:7000";
	h.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	h.role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
	ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW;
	for (int i = 0; i < 2; i++) {
		keel__cluster__vm__init(&v[i]);
		v[i].uuid = i ? UUID_B : UUID_A;
		v[i].name = "vm";
		v[i].vmx_path = i ? "/ds/b.vmx" : "/ds/a.vmx";
		v[i].owner = 1;
		v[i].epoch = 1;
		v[i].desired_power = KEEL__CLUSTER__POWER_STATE__POWER_ON;
		v[i].ha = &ha;
		keel__cluster__rule__init(&r[i]);
		r[i].name = i ? "r2" : "r1";
		r[i].kind = KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY;
		r[i].vms = ab;
		r[i].n_vms = 2;
	}
	st.format_version = 1;
	st.config = &cfg;
	st.hosts = &hp;
	st.n_hosts = 1;
	st.vms = vp;
	st.n_vms = 2;
	st.next_event_seq = 1;
	/* The old form. */
	b = wrap_state(&st);
	assert_int_equal(restore_copy(b.base, b.len), 0);
	raft_free(b.base);
	cd_state_drs_settings(cd_fsm_state(&cf_fsm), &d);
	assert_int_equal(d.automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL);
	assert_int_equal(d.threshold, 3);
	assert_int_equal(d.hold_s, 300);
	/* Two good rules restore. */
	st.rules = rp;
	st.n_rules = 2;
	b = wrap_state(&st);
	assert_int_equal(restore_copy(b.base, b.len), 0);
	raft_free(b.base);
	assert_int_equal(cd_state_n_rules(cd_fsm_state(&cf_fsm)), 2);
	before = cf_snap(&cf_fsm);
	/* Each bad variant: refused, state as before. */
	for (int k = 0; k < 7; k++) {
		r[0].name = "r1";
		r[1].name = "r2";
		r[1].vms = ab;
		r[1].n_vms = 2;
		r[1].kind = KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY;
		r[1].hosts = NULL;
		r[1].n_hosts = 0;
		switch (k) {
		case 0:
			r[1].vms = ac; /* a VM that is not there */
			break;
		case 1:
			r[1].name = "r1"; /* a name twice */
			break;
		case 2:
			r[0].name = "r3"; /* out of order */
			break;
		case 3:
			r[1].kind = KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY;
			r[1].hosts = g9; /* a host that is not there */
			r[1].n_hosts = 1;
			break;
		case 4:
			r[1].hosts = g1; /* a host group on a VM-VM rule */
			r[1].n_hosts = 1;
			break;
		case 5:
			r[1].n_vms = 1; /* one VM in a VM-VM rule */
			break;
		default:
			r[1].kind = 0;
			break;
		}
		b = wrap_state(&st);
		assert_int_equal(restore_copy(b.base, b.len), RAFT_MALFORMED);
		raft_free(b.base);
		assert_true(cf_same_as(&before));
	}
	raft_free(before.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_batch_undecodable, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_round_trip, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_corrupt, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_oversized_and_versions, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_inconsistent, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_apply_oom_changes_nothing, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_restore_oom_changes_nothing, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_threshold, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_round_trip_tokens_events, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_inconsistent_tokens_events, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_token_event_limits, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_rules_drs, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_rules_inconsistent, cf_setup,
					    cf_teardown),
	    cmocka_unit_test_setup_teardown(test_first_apply_oom_changes_nothing, cf_setup,
					    cf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
