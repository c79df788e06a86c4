/*
 * Tests for ha/: heartbeat records (round trip, strict validation of torn, corrupt and
 * truncated records, a counter that only grows, O_DIRECT and O_DSYNC writers on a regular
 * directory and on tmpfs), lease observation and self-fencing under a virtual clock, the
 * VM lock rules over every combination of their inputs, the lock file, and a seeded
 * simulation of two hosts checking that no two hosts may ever run one VM at once
 * (KEEL_SEED=N replays a run).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ha/hb.h"
#include "ha/lease.h"
#include "ha/lock.h"
#include "lib/err.h"

#define MS 1000000ull /* ns per ms of the virtual clock */

static char dirs[2][64]; /* a directory on the root filesystem, one on tmpfs (if any) */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	snprintf(dirs[0], sizeof(dirs[0]), "/tmp/test_ha.XXXXXX");
	if (!mkdtemp(dirs[0]))
		return -1;
	snprintf(dirs[1], sizeof(dirs[1]), "/dev/shm/test_ha.XXXXXX");
	if (!mkdtemp(dirs[1]))
		dirs[1][0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < 2; i++)
		if (dirs[i][0])
			nftw(dirs[i], rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void put_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* ---- heartbeat records ---- */

static void test_hb_round_trip(void **state)
{
	struct ha_hb_record r = {.host_id = 0x1122334455667788ull, .counter = 42}, d;
	uint8_t buf[HA_HB_RECORD_SIZE + 16];

	ha_hb_encode(&r, buf);
	assert_memory_equal(buf, "KHB1", 4);
	assert_int_equal(ha_hb_decode(buf, HA_HB_RECORD_SIZE, &d), 0);
	assert_true(d.host_id == r.host_id && d.counter == 42);
	/* Longer input (a file that grew) decodes the first record only. */
	memset(buf + HA_HB_RECORD_SIZE, 0xee, 16);
	assert_int_equal(ha_hb_decode(buf, sizeof(buf), &d), 0);
}

static void test_hb_corruption(void **state)
{
	struct ha_hb_record r = {.host_id = 7, .counter = 1000}, d = {0, 0}, r2;
	uint8_t buf[HA_HB_RECORD_SIZE], bad[HA_HB_RECORD_SIZE], torn[HA_HB_RECORD_SIZE];

	ha_hb_encode(&r, buf);
	/* Every single-bit flip anywhere is caught, and never yields a value. */
	for (size_t i = 0; i < sizeof(buf); i++)
		for (int b = 0; b < 8; b++) {
			memcpy(bad, buf, sizeof(buf));
			bad[i] ^= (uint8_t)(1u << b);
			assert_true(ha_hb_decode(bad, sizeof(bad), &d) < 0);
			assert_true(d.host_id == 0 && d.counter == 0);
		}
	for (size_t n = 0; n < sizeof(buf); n += 37)
		assert_int_equal(ha_hb_decode(buf, n, &d), KB_ETRUNCATED);
	/* Torn: the first half of a newer record over an older one. */
	r2 = r;
	r2.counter = 1001;
	ha_hb_encode(&r2, torn);
	memcpy(torn + 256, buf + 256, 256);
	assert_int_equal(ha_hb_decode(torn, sizeof(torn), &d), KB_ECHECKSUM);
	memset(bad, 0, sizeof(bad));
	assert_int_equal(ha_hb_decode(bad, sizeof(bad), &d), KB_EPROTO);
	memcpy(bad, buf, sizeof(bad));
	bad[4] = 2;
	assert_int_equal(ha_hb_decode(bad, sizeof(bad), &d), KB_EVERSION);
	/* Valid CRC but a zero counter: still refused. */
	r2.counter = 0;
	ha_hb_encode(&r2, bad);
	assert_int_equal(ha_hb_decode(bad, sizeof(bad), &d), KB_EPROTO);
	assert_true(d.counter == 0);
}

static void hb_writer_in(const char *ds, unsigned opts, enum ha_io_mode want_io)
{
	char path[HA_HB_PATH_MAX];
	struct ha_hb_writer w;
	struct ha_hb_record rec;
	struct kb_errmsg err;
	uint8_t junk[100];
	uint64_t last = 0;

	assert_int_equal(ha_hb_path(ds, 0xabcull, path), 0);
	unlink(path);
	assert_int_equal(ha_hb_writer_open(&w, ds, 0xabc, opts, &err), 0);
	assert_string_equal(w.path, path);
	assert_non_null(strstr(path, "/.keel-hb/0000000000000abc"));
	print_message("%s: writer uses %s\n", ds, w.io == HA_IO_DIRECT ? "O_DIRECT" : "O_DSYNC");
	if (want_io)
		assert_int_equal(w.io, want_io);
	if (w.io == HA_IO_DIRECT)
		assert_true(fcntl(w.fd, F_GETFL) & O_DIRECT);
	else
		assert_false(fcntl(w.fd, F_GETFL) & O_DIRECT);
	assert_true(fcntl(w.fd, F_GETFL) & O_DSYNC);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(ha_hb_read(path, &rec, &err), 0);
		assert_true(rec.host_id == 0xabc && rec.counter > last);
		last = rec.counter;
		assert_int_equal(ha_hb_writer_beat(&w, &err), 0);
	}
	ha_hb_writer_close(&w);
	/* A restarted writer continues, never goes backwards. */
	assert_int_equal(ha_hb_writer_open(&w, ds, 0xabc, opts, &err), 0);
	assert_int_equal(ha_hb_read(path, &rec, &err), 0);
	assert_true(rec.counter == last + 2);
	ha_hb_writer_close(&w);
	/* Truncated and garbage files are errors, with the path in the message. */
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(ha_hb_read(path, &rec, &err), KB_ETRUNCATED);
	assert_non_null(strstr(err.msg, path));
	memset(junk, 'x', sizeof(junk));
	put_file(path, junk, sizeof(junk));
	assert_int_equal(ha_hb_read(path, &rec, &err), KB_ETRUNCATED);
	/* A writer over a damaged record starts again at 1: change, not order, is observed. */
	assert_int_equal(ha_hb_writer_open(&w, ds, 0xabc, opts, &err), 0);
	assert_int_equal(ha_hb_read(path, &rec, &err), 0);
	assert_true(rec.counter == 1);
	ha_hb_writer_close(&w);
	unlink(path);
	assert_int_equal(ha_hb_read(path, &rec, &err), -ENOENT);
}

static void test_hb_writer_modes(void **state)
{
	struct ha_hb_writer w;
	struct kb_errmsg err;

	/* Whatever the filesystem offers; O_DIRECT is refused by some, never required. */
	hb_writer_in(dirs[0], 0, 0);
	hb_writer_in(dirs[0], HA_IO_NO_DIRECT, HA_IO_DSYNC);
	if (dirs[1][0]) {
		hb_writer_in(dirs[1], 0, 0);
		hb_writer_in(dirs[1], HA_IO_NO_DIRECT, HA_IO_DSYNC);
	}
	assert_int_equal(ha_hb_writer_open(&w, dirs[0], 0, 0, &err), -EINVAL);
	assert_true(ha_hb_writer_open(&w, "/nonexistent/ds", 1, 0, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/ds"));
}

/* ---- lease observation and self-fencing (virtual clock) ---- */

static void test_lease_observer(void **state)
{
	struct ha_lease_observer o;
	uint64_t t = 5000 * MS;

	ha_lease_observer_init(&o, 0, t);
	assert_true(o.lease_ns == HA_LEASE_MS * MS);
	/* Never expired before the observer has watched for a whole lease. */
	assert_int_equal(ha_lease_state(&o, t + 999 * MS), HA_LEASE_ALIVE);
	assert_int_equal(ha_lease_state(&o, t + 1000 * MS), HA_LEASE_EXPIRED);
	/* Alive while advancing every 250 ms, for a long time. */
	for (uint64_t c = 1; c <= 100; c++) {
		assert_true(ha_lease_observe(&o, c, t));
		assert_int_equal(ha_lease_state(&o, t + 249 * MS), HA_LEASE_ALIVE);
		t += 250 * MS;
	}
	/* No advance: the same counter seen again does not renew. */
	t -= 250 * MS;
	assert_false(ha_lease_observe(&o, 100, t + 500 * MS));
	assert_int_equal(ha_lease_state(&o, t + 1000 * MS - 1), HA_LEASE_ALIVE);
	assert_int_equal(ha_lease_state(&o, t + 1000 * MS), HA_LEASE_EXPIRED);
	assert_true(ha_lease_age_ns(&o, t + 1234 * MS) == 1234 * MS);
	/* A smaller counter is a change, so an advance: the writer is alive. */
	assert_true(ha_lease_observe(&o, 3, t + 2000 * MS));
	assert_int_equal(ha_lease_state(&o, t + 2500 * MS), HA_LEASE_ALIVE);
	/* A clock reading earlier than the last advance counts as no time passed. */
	assert_true(ha_lease_age_ns(&o, t) == 0);
	assert_int_equal(ha_lease_state(&o, 0), HA_LEASE_ALIVE);
	/* Custom lease time. */
	ha_lease_observer_init(&o, 300, 0);
	ha_lease_observe(&o, 9, 10 * MS);
	assert_int_equal(ha_lease_state(&o, 309 * MS), HA_LEASE_ALIVE);
	assert_int_equal(ha_lease_state(&o, 310 * MS), HA_LEASE_EXPIRED);
	assert_string_equal(ha_lease_state_str(HA_LEASE_EXPIRED), "expired");
}

static void test_self_fence(void **state)
{
	uint64_t adv = 777 * MS;

	assert_false(ha_self_fence_due(adv, adv, 1000, 400));
	assert_false(ha_self_fence_due(adv, adv + 600 * MS - 1, 1000, 400));
	assert_true(ha_self_fence_due(adv, adv + 600 * MS, 1000, 400));
	assert_true(ha_self_fence_deadline_ns(adv, 1000, 400) == adv + 600 * MS);
	assert_true(ha_self_fence_deadline_ns(adv, HA_LEASE_MS, HA_SELF_FENCE_MARGIN_MS) <
		    adv + HA_LEASE_MS * MS);
	/* A margin as long as the lease fences at once. */
	assert_true(ha_self_fence_due(adv, adv, 1000, 1000));
	assert_true(ha_self_fence_due(adv, adv, 1000, 5000));
	assert_false(ha_self_fence_due(adv, adv + 999 * MS, 1000, 0));
	assert_true(ha_self_fence_due(adv, adv + 1000 * MS, 1000, 0));
}

/* ---- VM lock rules ---- */

enum { LOWER, EQUAL, HIGHER };

struct decide_row {
	enum ha_lock_state state;
	int epoch; /* the lock's epoch relative to the writer's */
	enum ha_lease_state lease;
	bool same_host;
	enum ha_lock_verdict want;
};

#define R  HA_LOCK_RELEASED
#define H  HA_LOCK_HELD
#define AL HA_LEASE_ALIVE
#define EX HA_LEASE_EXPIRED

static const struct decide_row decide_table[] = {
    {R, LOWER, AL, false, HA_LOCK_TAKE},
    {R, LOWER, AL, true, HA_LOCK_TAKE},
    {R, LOWER, EX, false, HA_LOCK_TAKE},
    {R, LOWER, EX, true, HA_LOCK_TAKE},
    {R, EQUAL, AL, false, HA_LOCK_REFUSE_CONFLICT},
    {R, EQUAL, AL, true, HA_LOCK_TAKE},
    {R, EQUAL, EX, false, HA_LOCK_REFUSE_CONFLICT},
    {R, EQUAL, EX, true, HA_LOCK_TAKE},
    {R, HIGHER, AL, false, HA_LOCK_REFUSE_STALE},
    {R, HIGHER, AL, true, HA_LOCK_REFUSE_STALE},
    {R, HIGHER, EX, false, HA_LOCK_REFUSE_STALE},
    {R, HIGHER, EX, true, HA_LOCK_REFUSE_STALE},
    {H, LOWER, AL, false, HA_LOCK_REFUSE_HELD},
    {H, LOWER, AL, true, HA_LOCK_TAKE},
    {H, LOWER, EX, false, HA_LOCK_TAKE},
    {H, LOWER, EX, true, HA_LOCK_TAKE},
    {H, EQUAL, AL, false, HA_LOCK_REFUSE_CONFLICT},
    {H, EQUAL, AL, true, HA_LOCK_OURS},
    {H, EQUAL, EX, false, HA_LOCK_REFUSE_CONFLICT},
    {H, EQUAL, EX, true, HA_LOCK_OURS},
    {H, HIGHER, AL, false, HA_LOCK_REFUSE_STALE},
    {H, HIGHER, AL, true, HA_LOCK_REFUSE_STALE},
    {H, HIGHER, EX, false, HA_LOCK_REFUSE_STALE},
    {H, HIGHER, EX, true, HA_LOCK_REFUSE_STALE},
};

#define NROWS (sizeof(decide_table) / sizeof(decide_table[0]))

static void test_lock_decide_table(void **state)
{
	const uint64_t me = 11, other = 22, e = 5;
	struct ha_lock top = {.seq = 1, .host_id = 22, .epoch = UINT64_MAX, .state = R};
	uint32_t covered = 0;

	assert_int_equal(NROWS, 2 * 3 * 2 * 2);
	for (size_t i = 0; i < NROWS; i++) {
		const struct decide_row *r = &decide_table[i];
		struct ha_lock lk = {.seq = 1, .state = r->state, .vm_uuid = "vm-1"};

		lk.host_id = r->same_host ? me : other;
		lk.epoch = r->epoch == LOWER ? e - 1 : r->epoch == EQUAL ? e : e + 1;
		if (ha_lock_decide(&lk, me, e, r->lease) != r->want)
			fail_msg("row %zu: %s, epoch %s, lease %s, %s host: got %s, want %s", i,
				 r->state == H ? "held" : "released",
				 r->epoch == LOWER   ? "lower"
				 : r->epoch == EQUAL ? "equal"
						     : "higher",
				 ha_lease_state_str(r->lease), r->same_host ? "same" : "other",
				 ha_lock_verdict_str(ha_lock_decide(&lk, me, e, r->lease)),
				 ha_lock_verdict_str(r->want));
		/* Each row is a distinct combination. */
		covered |= 1u << ((r->state == H) * 12 + r->epoch * 4 + (r->lease == EX) * 2 +
				  r->same_host);
	}
	assert_int_equal(covered, (1u << 24) - 1);
	/* No lock yet: anyone takes it, at any epoch. */
	assert_int_equal(ha_lock_decide(NULL, me, 0, HA_LEASE_ALIVE), HA_LOCK_TAKE);
	/* The extreme epochs. */
	assert_int_equal(ha_lock_decide(&top, me, UINT64_MAX - 1, EX), HA_LOCK_REFUSE_STALE);
	assert_int_equal(ha_lock_decide(&top, 22, UINT64_MAX, AL), HA_LOCK_TAKE);
}

static void test_lock_may_run(void **state)
{
	struct ha_lock lk = {.seq = 3, .host_id = 1, .epoch = 7, .state = H, .vm_uuid = "vm-a"};

	assert_true(ha_lock_may_run(&lk, "vm-a", 1, 7, 1, 7));
	assert_false(ha_lock_may_run(NULL, "vm-a", 1, 7, 1, 7));
	assert_false(ha_lock_may_run(&lk, "vm-b", 1, 7, 1, 7));
	assert_false(ha_lock_may_run(&lk, "vm-a", 2, 7, 2, 7)); /* lock names another host */
	assert_false(ha_lock_may_run(&lk, "vm-a", 1, 6, 1, 6)); /* lock at another epoch */
	assert_false(ha_lock_may_run(&lk, "vm-a", 1, 7, 2, 8)); /* cluster moved on */
	assert_false(ha_lock_may_run(&lk, "vm-a", 1, 7, 1, 8));
	lk.state = R;
	assert_false(ha_lock_may_run(&lk, "vm-a", 1, 7, 1, 7));
}

/* ---- the lock file ---- */

static enum ha_lease_state lease_of(void *arg, uint64_t host)
{
	return *(enum ha_lease_state *)arg;
}

static void lock_file_in(const char *dir, unsigned opts)
{
	char path[256];
	struct ha_lock lk, got;
	struct kb_errmsg err;
	enum ha_lease_state lease = HA_LEASE_ALIVE;
	uint8_t img[HA_LOCK_FILE_SIZE];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, HA_LOCK_NAME);
	unlink(path);
	assert_int_equal(ha_lock_read(path, &got, &err), KB_ENOTFOUND);
	/* Host 1 takes at epoch 1, idempotently. */
	assert_int_equal(ha_lock_acquire(path, "vm-x", 1, 1, lease_of, &lease, opts, &got, &err),
			 0);
	assert_true(got.host_id == 1 && got.epoch == 1 && got.state == H && got.seq == 1);
	assert_int_equal(ha_lock_acquire(path, "vm-x", 1, 1, lease_of, &lease, opts, &got, &err),
			 0);
	assert_true(got.seq == 1);
	/* Host 2 at a higher epoch: refused while host 1's lease is alive; nothing written. */
	assert_int_equal(ha_lock_acquire(path, "vm-x", 2, 2, lease_of, &lease, opts, &got, &err),
			 KB_ESTATE);
	assert_non_null(strstr(err.msg, "lease alive"));
	assert_int_equal(ha_lock_read(path, &lk, &err), 0);
	assert_true(lk.host_id == 1 && lk.seq == 1);
	/* Another VM's lock is never taken. */
	assert_int_equal(ha_lock_acquire(path, "vm-y", 1, 1, NULL, NULL, opts, &got, &err),
			 KB_ECONFIG);
	/* Release at the same epoch; only the holder may. */
	assert_int_equal(ha_lock_release(path, "vm-x", 2, 1, opts, &err), KB_ESTATE);
	assert_int_equal(ha_lock_release(path, "vm-x", 1, 1, opts, &err), 0);
	assert_int_equal(ha_lock_release(path, "vm-x", 1, 1, opts, &err), 0);
	assert_int_equal(ha_lock_read(path, &lk, &err), 0);
	assert_true(lk.state == R && lk.epoch == 1 && lk.seq == 2);
	/* Now host 2 takes over the released lock; host 1 at its old epoch is stale. */
	assert_int_equal(ha_lock_acquire(path, "vm-x", 2, 2, lease_of, &lease, opts, &got, &err),
			 0);
	assert_true(got.host_id == 2 && got.seq == 3);
	assert_int_equal(ha_lock_acquire(path, "vm-x", 1, 1, lease_of, &lease, opts, &got, &err),
			 KB_ESTATE);
	assert_non_null(strstr(err.msg, "higher epoch"));
	/* Host 2's lease expires: host 3 at epoch 3 takes. */
	lease = HA_LEASE_EXPIRED;
	assert_int_equal(ha_lock_acquire(path, "vm-x", 3, 3, lease_of, &lease, opts, &got, &err),
			 0);
	assert_true(got.host_id == 3 && got.seq == 4);

	/* A torn write of the newest slot: readers see the previous record. */
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(fread(img, 1, sizeof(img), f), sizeof(img));
	img[(got.seq & 1) * HA_LOCK_SLOT_SIZE + 300] ^= 0x40;
	rewind(f);
	assert_int_equal(fwrite(img, 1, sizeof(img), f), sizeof(img));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ha_lock_read(path, &lk, &err), 0);
	assert_true(lk.host_id == 2 && lk.seq == 3);
	/* Both slots damaged: corrupt, and nobody takes it. */
	img[(lk.seq & 1) * HA_LOCK_SLOT_SIZE + 8] ^= 0x01;
	put_file(path, img, sizeof(img));
	assert_int_equal(ha_lock_read(path, &lk, &err), KB_ECHECKSUM);
	assert_int_equal(ha_lock_acquire(path, "vm-x", 9, 9, lease_of, &lease, opts, &got, &err),
			 KB_ECHECKSUM);
	/* Truncated. */
	put_file(path, img, 700);
	assert_int_equal(ha_lock_read(path, &lk, &err), KB_ETRUNCATED);
	unlink(path);
}

static void test_lock_file(void **state)
{
	struct ha_lock lk = {.seq = 0, .host_id = 1, .epoch = 1, .state = H, .vm_uuid = "v"};
	struct kb_errmsg err;
	char path[256];

	lock_file_in(dirs[0], 0);
	lock_file_in(dirs[0], HA_IO_NO_DIRECT);
	if (dirs[1][0])
		lock_file_in(dirs[1], 0);
	snprintf(path, sizeof(path), "%s/bad.lock", dirs[0]);
	assert_int_equal(ha_lock_write(path, &lk, 0, &err), -EINVAL); /* seq 0 */
	lk.seq = 1;
	lk.vm_uuid[0] = '\0';
	assert_int_equal(ha_lock_write(path, &lk, 0, &err), -EINVAL);
}

static void test_lock_slot_validation(void **state)
{
	struct ha_lock lk = {.seq = 5, .host_id = 9, .epoch = 4, .state = H}, d;
	uint8_t s[HA_LOCK_SLOT_SIZE], bad[HA_LOCK_SLOT_SIZE];

	memset(lk.vm_uuid, 'a', HA_LOCK_UUID_MAX - 1);
	lk.vm_uuid[HA_LOCK_UUID_MAX - 1] = '\0';
	ha_lock_encode(&lk, s);
	assert_int_equal(ha_lock_decode_slot(s, sizeof(s), &d), 0);
	assert_string_equal(d.vm_uuid, lk.vm_uuid);
	assert_true(d.seq == 5 && d.host_id == 9 && d.epoch == 4 && d.state == H);
	for (size_t i = 0; i < sizeof(s); i++) {
		memcpy(bad, s, sizeof(s));
		bad[i] ^= 0x10;
		assert_true(ha_lock_decode_slot(bad, sizeof(bad), &d) < 0);
	}
	memset(bad, 0, sizeof(bad));
	assert_int_equal(ha_lock_decode_slot(bad, sizeof(bad), &d), KB_ENOTFOUND);
	assert_int_equal(ha_lock_decode_slot(s, 511, &d), KB_ETRUNCATED);
	lk.state = 3;
	ha_lock_encode(&lk, bad);
	assert_int_equal(ha_lock_decode_slot(bad, sizeof(bad), &d), KB_EPROTO);
}

/* ---- two hosts on a virtual clock ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1Dull;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

enum scenario { STOPS, HANGS, PARTITION, NSCENARIOS };

#define NVM	6
#define POLL_MS 250 /* vmx reads of record and lock; host B's reads of A's record */
#define END_MS	8000
#define HOST_A	1
#define HOST_B	2
#define EPOCH_A 4
#define EPOCH_B 5

struct sim_vm {
	struct ha_lock lock; /* the lock file on the shared datastore */
	/* A's vmx */
	bool a_run, a_fenced;
	unsigned a_phase;
	uint64_t a_seen, a_adv_ms;
	/* B */
	bool b_run;
	uint64_t b_took_ms;
};

struct sim_result {
	int violations;
	bool b_took_all, b_took_any, a_fenced_any;
	uint64_t last_beat_ms, max_take_ms;
};

/* One run: host A's vmkernel beats every ~250 ms and A's vmx runs NVM VMs. In STOPS the
 * vmkernel stops beating for good while the vmx processes go on (a hung vmkernel); in
 * HANGS it stops and resumes; in PARTITION it keeps beating. Host B watches A's record and
 * takes each VM's lock when the rules allow: after expiry by its clock, or at every read
 * in PARTITION (the worst a confused cluster could ask of it). */
static void sim_run(enum scenario sc, uint32_t margin_ms, struct sim_result *res)
{
	struct sim_vm vm[NVM];
	struct ha_lease_observer obs;
	uint64_t counter = 1, next_beat = rnd_below(POLL_MS);
	uint64_t stop_at = 500 + rnd_below(4000), hang_for = rnd_below(3000);
	unsigned b_phase = rnd_below(POLL_MS);

	memset(res, 0, sizeof(*res));
	ha_lease_observer_init(&obs, HA_LEASE_MS, 0);
	for (int i = 0; i < NVM; i++) {
		memset(&vm[i], 0, sizeof(vm[i]));
		vm[i].lock = (struct ha_lock){
		    .seq = 1, .host_id = HOST_A, .epoch = EPOCH_A, .state = HA_LOCK_HELD};
		snprintf(vm[i].lock.vm_uuid, sizeof(vm[i].lock.vm_uuid), "vm-%d", i);
		vm[i].a_run = true;
		vm[i].a_phase = rnd_below(POLL_MS);
		vm[i].a_seen = counter;
	}
	for (uint64_t t = 0; t < END_MS; t++) {
		uint64_t now = t * MS;
		bool beating =
		    sc == PARTITION || t < stop_at || (sc == HANGS && t >= stop_at + hang_for);

		/* A's vmkernel. */
		if (t == next_beat) {
			if (beating) {
				counter++;
				res->last_beat_ms = t;
			}
			next_beat = t + POLL_MS + rnd_below(20);
		}
		/* A's vmx for each VM: reads every POLL_MS, its fence deadline is a timer. */
		for (int i = 0; i < NVM; i++) {
			struct sim_vm *v = &vm[i];
			if (t % POLL_MS == v->a_phase) {
				if (counter != v->a_seen) {
					v->a_seen = counter;
					v->a_adv_ms = t;
				}
				if (!ha_lock_may_run(&v->lock, v->lock.vm_uuid, HOST_A, EPOCH_A,
						     HOST_A, EPOCH_A))
					v->a_run = false;
			}
			if (ha_self_fence_due(v->a_adv_ms * MS, now, HA_LEASE_MS, margin_ms)) {
				v->a_fenced = v->a_fenced || v->a_run;
				v->a_run = false; /* final */
			}
		}
		/* B reads A's record and, where the rules allow, takes the VM. */
		if (t % POLL_MS == b_phase) {
			ha_lease_observe(&obs, counter, now);
			for (int i = 0; i < NVM; i++) {
				struct sim_vm *v = &vm[i];
				enum ha_lease_state ls = ha_lease_state(&obs, now);
				if (v->b_run || (sc != PARTITION && ls != HA_LEASE_EXPIRED))
					continue;
				if (ha_lock_decide(&v->lock, HOST_B, EPOCH_B, ls) != HA_LOCK_TAKE)
					continue;
				v->lock.seq++;
				v->lock.host_id = HOST_B;
				v->lock.epoch = EPOCH_B;
				v->lock.state = HA_LOCK_HELD;
				v->b_run = ha_lock_may_run(&v->lock, v->lock.vm_uuid, HOST_B,
							   EPOCH_B, HOST_B, EPOCH_B);
				v->b_took_ms = t;
			}
		}
		for (int i = 0; i < NVM; i++)
			if (vm[i].a_run && vm[i].b_run)
				res->violations++;
	}
	res->b_took_all = true;
	for (int i = 0; i < NVM; i++) {
		res->b_took_all = res->b_took_all && vm[i].b_run;
		res->b_took_any = res->b_took_any || vm[i].b_run;
		res->a_fenced_any = res->a_fenced_any || vm[i].a_fenced;
		if (vm[i].b_run && vm[i].b_took_ms > res->max_take_ms)
			res->max_take_ms = vm[i].b_took_ms;
	}
}

static uint64_t seed_from_env(void)
{
	const char *s = getenv("KEEL_SEED");
	struct timespec ts;

	if (s && *s)
		return strtoull(s, NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
}

static void test_sim_two_hosts(void **state)
{
	uint64_t seed = seed_from_env();
	struct sim_result r;
	int moved = 0;

	print_message("test_sim_two_hosts: seed %" PRIu64 " (replay with KEEL_SEED=%" PRIu64 ")\n",
		      seed, seed);
	rng = seed ? seed : 1;
	for (int i = 0; i < 300; i++) {
		enum scenario sc = (enum scenario)(i % NSCENARIOS);
		sim_run(sc, HA_SELF_FENCE_MARGIN_MS, &r);
		if (r.violations)
			fail_msg("seed %" PRIu64 " run %d scenario %d: two hosts ran one VM", seed,
				 i, sc);
		switch (sc) {
		case STOPS:
			/* B takes every VM once the lease has expired by its own clock. */
			if (!r.b_took_all || !r.a_fenced_any ||
			    r.max_take_ms < r.last_beat_ms + HA_LEASE_MS ||
			    r.max_take_ms > r.last_beat_ms + HA_LEASE_MS + 2 * POLL_MS)
				fail_msg("seed %" PRIu64 " run %d: takeover at %" PRIu64
					 " ms, last beat %" PRIu64 " ms",
					 seed, i, r.max_take_ms, r.last_beat_ms);
			break;
		case HANGS:
			/* Either the hang was short and nothing moved, or A fenced first. */
			if (r.b_took_any && !r.a_fenced_any)
				fail_msg("seed %" PRIu64 " run %d: B took without A fencing", seed,
					 i);
			moved += r.b_took_any;
			break;
		case PARTITION:
			if (r.b_took_any || r.a_fenced_any)
				fail_msg("seed %" PRIu64 " run %d: VM moved while A beats", seed,
					 i);
			break;
		default:
			break;
		}
	}
	assert_true(moved > 0);
}

/* The invariant check has teeth: without a self-fence margin, some schedules let B start
 * before A's vmx has stopped. */
static void test_sim_needs_margin(void **state)
{
	struct sim_result r;
	int bad = 0;

	rng = 12345;
	for (int i = 0; i < 200; i++) {
		sim_run(STOPS, 0, &r);
		bad += r.violations > 0;
	}
	assert_true(bad > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hb_round_trip),    cmocka_unit_test(test_hb_corruption),
	    cmocka_unit_test(test_hb_writer_modes),  cmocka_unit_test(test_lease_observer),
	    cmocka_unit_test(test_self_fence),	     cmocka_unit_test(test_lock_decide_table),
	    cmocka_unit_test(test_lock_may_run),     cmocka_unit_test(test_lock_slot_validation),
	    cmocka_unit_test(test_lock_file),	     cmocka_unit_test(test_sim_two_hosts),
	    cmocka_unit_test(test_sim_needs_margin),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
