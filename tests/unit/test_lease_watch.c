/*
 * Tests for kernel/ds/leasewatch.h, the background lease watcher. Most run on a virtual
 * clock with injected reads: the records' files exist under a fresh directory in /tmp (the
 * watcher lists them), but what a read returns — a counter, another host's id, an error —
 * comes from a table the test controls. Covered: which records are watched (shared
 * datastores only, names of 16 lower-case hex digits, never the host's own), the lease
 * arithmetic of each observer to the nanosecond (a stopped record expires exactly a lease
 * after the read that first saw its counter; a moving one never does), a new observer that
 * never calls a lease expired before it has watched for a lease, failed reads counted as no
 * change, a hole in the reads longer than the gap restarting the observation and making a
 * lookup refuse, the registry followed, unlisted records forgotten, allocation failures,
 * and the real thread with real records. A seeded simulation (a writer that beats with
 * delays and stops, reads that fail, a watcher that stalls) checks that an expiry judged as
 * vmkernel does at power-on — the watcher's view plus a fresh read — never comes before a
 * lease after the writer's last write, and does come soon after a stop. It prints its seed;
 * KEEL_SEED=N replays a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ha/hb.h"
#include "ha/lease.h"
#include "kernel/ds/datastore.h"
#include "kernel/ds/leasewatch.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "lib/log.h"
#include "lib/time.h"

#define OWN   0x00000000000000aaull
#define HOSTA 0x1111111111111111ull
#define HOSTB 0x2222222222222222ull
#define HOSTC 0x3333333333333333ull
#define MS    ((uint64_t)KB_NSEC_PER_MSEC)
#define LEASE (HA_LEASE_MS * MS)
#define GAP   ((uint64_t)VMK_DS_LW_GAP_MS * MS)
#define T0    (10000 * MS) /* virtual time of the first pass */

static char top[PATH_MAX], state[PATH_MAX], shared[PATH_MAX], local[PATH_MAX];
static char logpath[PATH_MAX];
static struct vmk_ds_registry reg;
static struct kb_logger lg;
static int log_fd = -1;

/* ---- the virtual clock and the injected reads ---------------------------------------- */

static uint64_t vnow;

static uint64_t vclock(void *arg)
{
	(void)arg;
	return vnow;
}

struct fake {
	uint64_t id;
	uint64_t counter; /* what a read returns */
	uint64_t inside;  /* host id inside the record (0: id) */
	int err;	  /* non-zero: a read returns this */
	unsigned reads;
};

#define NFAKES 4
static struct fake fakes[NFAKES];
/* The simulation's writer: time of its last write, and of the last write a successful read
 * by the watcher has returned the counter of. */
static uint64_t sim_last_write, sim_seen_write;
static bool sim_judging; /* reads now are a judgement's own, not the watcher's */

static struct fake *fake_of(uint64_t id)
{
	for (int i = 0; i < NFAKES; i++)
		if (fakes[i].id == id)
			return &fakes[i];
	return NULL;
}

static int fake_read(void *arg, const char *path, struct ha_hb_record *rec)
{
	const char *name = strrchr(path, '/');
	struct fake *f = fake_of(strtoull(name ? name + 1 : path, NULL, 16));

	(void)arg;
	if (f == NULL)
		return -ENOENT;
	f->reads++;
	if (f->err)
		return f->err;
	rec->host_id = f->inside ? f->inside : f->id;
	rec->counter = f->counter;
	if (!sim_judging)
		sim_seen_write = sim_last_write;
	return 0;
}

/* ---- fixture ------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **unused)
{
	struct kb_errmsg e = {{0}};
	char tmpl[] = "/tmp/keel-lw-XXXXXX";

	if (mkdtemp(tmpl) == NULL || realpath(tmpl, top) == NULL)
		return -1;
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(shared, sizeof(shared), "%s/shared", top);
	snprintf(local, sizeof(local), "%s/local", top);
	snprintf(logpath, sizeof(logpath), "%s/test.log", top);
	if (mkdir(state, 0700) < 0 || mkdir(shared, 0755) < 0 || mkdir(local, 0755) < 0)
		return -1;
	log_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return -1;
	kb_log_init(&lg, "test", KB_LOG_DEBUG, log_fd);
	memset(fakes, 0, sizeof(fakes));
	vnow = T0;
	return vmk_ds_registry_init(&reg, state, &e);
}

static int teardown(void **unused)
{
	vmk_ds_registry_close(&reg);
	close(log_fd);
	return nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates (an empty file) or removes the record name on datastore dir. */
static void record_file(const char *dir, const char *name, bool present)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, HA_HB_DIR);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%s/%s", dir, HA_HB_DIR, name);
	if (present) {
		int fd = open(p, O_WRONLY | O_CREAT, 0644);
		assert_true(fd >= 0);
		close(fd);
	} else {
		assert_int_equal(unlink(p), 0);
	}
}

static void host_file(const char *dir, uint64_t id, bool present)
{
	char name[32];

	snprintf(name, sizeof(name), "%016" PRIx64, id);
	record_file(dir, name, present);
}

static struct fake *add_fake(uint64_t id, uint64_t counter)
{
	for (int i = 0; i < NFAKES; i++)
		if (fakes[i].id == 0) {
			fakes[i] = (struct fake){.id = id, .counter = counter};
			host_file(shared, id, true);
			return &fakes[i];
		}
	fail_msg("too many fakes");
	return NULL;
}

static struct vmk_ds_lw *lw_open_virtual(void)
{
	struct vmk_ds_lw_config cfg;
	struct vmk_ds_lw *lw = NULL;

	vmk_ds_lw_config_init(&cfg);
	assert_int_equal(cfg.interval_ms, VMK_DS_LW_INTERVAL_MS);
	assert_int_equal(cfg.lease_ms, HA_LEASE_MS);
	assert_int_equal(cfg.gap_ms, VMK_DS_LW_GAP_MS);
	cfg.host_id = OWN;
	cfg.log = &lg;
	cfg.clock = vclock;
	cfg.read = fake_read;
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), 0);
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	return lw;
}

static void add_shared(void)
{
	struct kb_errmsg e = {{0}};

	assert_int_equal(vmk_ds_add(&reg, "s1", shared, true, &e), 0);
}

/* One pass at virtual time t (ns). */
static size_t poll_at(struct vmk_ds_lw *lw, uint64_t t)
{
	vnow = t;
	return vmk_ds_lw_poll(lw);
}

static struct vmk_ds_lw_view view_of(struct vmk_ds_lw *lw, uint64_t id)
{
	struct vmk_ds_lw_view v;

	assert_int_equal(vmk_ds_lw_lookup(lw, shared, id, &v), 0);
	return v;
}

static enum ha_lease_state state_of(struct vmk_ds_lw *lw, uint64_t id)
{
	struct vmk_ds_lw_view v = view_of(lw, id);

	return ha_lease_state(&v.obs, vnow);
}

static size_t log_count(const char *needle)
{
	char line[2048];
	size_t n = 0;
	FILE *f = fopen(logpath, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_bad_config(void **unused)
{
	struct vmk_ds_lw_config cfg;
	struct vmk_ds_lw *lw = NULL;

	vmk_ds_lw_config_init(&cfg);
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), -EINVAL); /* no logger */
	cfg.log = &lg;
	cfg.interval_ms = 0;
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), -EINVAL);
	cfg.interval_ms = 100;
	cfg.lease_ms = 0;
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), -EINVAL);
	cfg.lease_ms = 1000;
	cfg.gap_ms = 0;
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), -EINVAL);
	assert_null(lw);
	vmk_ds_lw_destroy(NULL);
}

/* Records named by 16 lower-case hex digits on shared datastores, never our own. */
static void test_which_records(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_lw_view v;
	struct vmk_ds_lw *lw;

	add_shared();
	assert_int_equal(vmk_ds_add(&reg, "l1", local, false, &e), 0);
	add_fake(HOSTA, 5);
	add_fake(HOSTB, 9);
	add_fake(OWN, 3);
	add_fake(HOSTC, 1); /* readable, but listed only on l1 */
	host_file(shared, HOSTC, false);
	host_file(local, HOSTC, true);
	record_file(shared, "3333333333333333.tmp", true);
	record_file(shared, "333333333333333", true);
	record_file(shared, "33333333333333333", true);
	record_file(shared, "ABCDEFABCDEFABCD", true);
	record_file(shared, "0000000000000000", true);
	record_file(shared, "zzzzzzzzzzzzzzzz", true);

	lw = lw_open_virtual();
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), KB_ENOTFOUND); /* no pass yet */
	assert_int_equal(poll_at(lw, T0), 2);
	v = view_of(lw, HOSTA);
	assert_true(v.obs.seen);
	assert_int_equal(v.obs.counter, 5);
	assert_int_equal(v.obs.last_change_ns, T0);
	assert_int_equal(v.since_ns, T0);
	assert_int_equal(v.last_read_ns, T0);
	assert_int_equal(v.reads, 1);
	assert_int_equal(v.failures, 0);
	assert_int_equal(view_of(lw, HOSTB).obs.counter, 9);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, OWN, &v), KB_ENOTFOUND);
	assert_int_equal(fake_of(OWN)->reads, 0);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTC, &v), KB_ENOTFOUND);
	assert_int_equal(vmk_ds_lw_lookup(lw, local, HOSTC, &v), KB_ENOTFOUND);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, 0xabcdefabcdefabcdull, &v), KB_ENOTFOUND);
	assert_int_equal(fake_of(HOSTC)->reads, 0);
	assert_int_equal(log_count("lease watch: heartbeat records on"), 1);
	assert_int_equal(log_count("host 1111111111111111 watched"), 1);
	vmk_ds_lw_destroy(lw);
}

/* A moving record is always alive; a stopped one expires exactly a lease after the read
 * that first saw its last counter, and is alive again at its next change. */
static void test_lease_arithmetic(void **unused)
{
	struct vmk_ds_lw *lw;
	struct fake *a, *b;

	add_shared();
	a = add_fake(HOSTA, 1);
	b = add_fake(HOSTB, 40);
	lw = lw_open_virtual();
	for (uint64_t t = T0; t <= T0 + 2000 * MS; t += 100 * MS) {
		a->counter++;
		assert_int_equal(poll_at(lw, t), 2);
		assert_int_equal(view_of(lw, HOSTA).obs.last_change_ns, t);
		assert_int_equal(state_of(lw, HOSTA), HA_LEASE_ALIVE);
		assert_int_equal(view_of(lw, HOSTB).obs.last_change_ns, T0);
		assert_int_equal(state_of(lw, HOSTB),
				 t - T0 >= LEASE ? HA_LEASE_EXPIRED : HA_LEASE_ALIVE);
	}
	/* to the nanosecond, between passes */
	vnow = T0 + LEASE - 1;
	assert_int_equal(state_of(lw, HOSTB), HA_LEASE_ALIVE);
	vnow = T0 + 2000 * MS;
	struct vmk_ds_lw_view v = view_of(lw, HOSTB);
	assert_int_equal(ha_lease_age_ns(&v.obs, vnow), 2000 * MS);
	/* a change, even to a smaller value, is an advance */
	b->counter = 7;
	poll_at(lw, T0 + 2100 * MS);
	assert_int_equal(view_of(lw, HOSTB).obs.last_change_ns, T0 + 2100 * MS);
	assert_int_equal(view_of(lw, HOSTB).obs.counter, 7);
	assert_int_equal(state_of(lw, HOSTB), HA_LEASE_ALIVE);
	vmk_ds_lw_destroy(lw);
}

/* A record that appears already stopped is watched for a whole lease before it expires. */
static void test_new_observer_waits_a_lease(void **unused)
{
	struct vmk_ds_lw_view v;
	struct vmk_ds_lw *lw;
	uint64_t t;

	add_shared();
	add_fake(HOSTA, 1);
	lw = lw_open_virtual();
	for (t = T0; t < T0 + 5000 * MS; t += 100 * MS)
		poll_at(lw, t);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTB, &v), KB_ENOTFOUND);
	add_fake(HOSTB, 77); /* stopped long ago, we never saw it */
	const uint64_t found = t;
	for (; t <= found + 1500 * MS; t += 100 * MS) {
		poll_at(lw, t);
		v = view_of(lw, HOSTB);
		assert_int_equal(v.since_ns, found);
		assert_int_equal(ha_lease_state(&v.obs, t),
				 t - found >= LEASE ? HA_LEASE_EXPIRED : HA_LEASE_ALIVE);
	}
	vmk_ds_lw_destroy(lw);
}

/* Failed reads — an error, or another host's id inside — count as no change; a record
 * never read successfully expires a lease after it was first listed. */
static void test_unreadable_is_no_change(void **unused)
{
	struct vmk_ds_lw_view v;
	struct vmk_ds_lw *lw;
	struct fake *a, *c;

	add_shared();
	a = add_fake(HOSTA, 5);
	c = add_fake(HOSTC, 1);
	c->err = KB_ECHECKSUM;
	lw = lw_open_virtual();
	poll_at(lw, T0);
	a->err = KB_ECHECKSUM;
	for (int i = 1; i <= 4; i++) {
		a->counter++; /* not seen: the reads fail */
		poll_at(lw, T0 + (uint64_t)i * 100 * MS);
	}
	a->err = 0;
	a->inside = HOSTB; /* a record naming another host is no read of this one */
	for (int i = 5; i <= 10; i++)
		poll_at(lw, T0 + (uint64_t)i * 100 * MS);
	v = view_of(lw, HOSTA);
	assert_int_equal(v.obs.counter, 5);
	assert_int_equal(v.obs.last_change_ns, T0);
	assert_int_equal(v.reads, 1);
	assert_int_equal(v.failures, 10);
	assert_int_equal(v.last_read_ns, T0 + 1000 * MS);
	assert_int_equal(ha_lease_state(&v.obs, vnow), HA_LEASE_EXPIRED);

	v = view_of(lw, HOSTC);
	assert_false(v.obs.seen);
	assert_int_equal(v.obs.last_change_ns, T0);
	assert_int_equal(v.failures, 11);
	assert_int_equal(ha_lease_state(&v.obs, vnow), HA_LEASE_EXPIRED);

	a->inside = 0; /* readable again, with the counter moved on */
	poll_at(lw, T0 + 1100 * MS);
	v = view_of(lw, HOSTA);
	assert_int_equal(v.obs.counter, 9);
	assert_int_equal(v.obs.last_change_ns, T0 + 1100 * MS);
	assert_int_equal(ha_lease_state(&v.obs, vnow), HA_LEASE_ALIVE);
	vmk_ds_lw_destroy(lw);
}

/* A hole in the reads longer than the gap: lookups refuse until the next read, which
 * starts the observation over; a hole of exactly the gap is no hole. */
static void test_gap(void **unused)
{
	struct vmk_ds_lw_view v;
	struct vmk_ds_lw *lw;

	add_shared();
	add_fake(HOSTA, 5);
	lw = lw_open_virtual();
	poll_at(lw, T0);
	poll_at(lw, T0 + GAP);
	poll_at(lw, T0 + 2 * GAP);
	v = view_of(lw, HOSTA);
	assert_int_equal(v.since_ns, T0);
	assert_int_equal(v.reads, 3);
	for (uint64_t t = T0 + 3 * GAP; t <= T0 + 1200 * MS; t += 100 * MS)
		poll_at(lw, t);
	assert_int_equal(state_of(lw, HOSTA), HA_LEASE_EXPIRED);

	const uint64_t last = vnow;
	vnow = last + GAP;
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), 0);
	vnow = last + GAP + 1;
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), KB_ETIMEOUT);
	assert_int_equal(v.last_read_ns, last); /* still filled in, for the log */

	poll_at(lw, last + GAP + 1);
	v = view_of(lw, HOSTA);
	assert_int_equal(v.since_ns, last + GAP + 1);
	assert_int_equal(v.obs.last_change_ns, last + GAP + 1);
	assert_int_equal(v.reads, 1);
	assert_int_equal(v.failures, 0);
	assert_int_equal(ha_lease_state(&v.obs, vnow), HA_LEASE_ALIVE);
	assert_int_equal(log_count("its observation starts over"), 1);
	vmk_ds_lw_destroy(lw);
}

/* Datastores follow the registry: removed, a datastore's observers go; added back, it
 * starts from nothing. */
static void test_follows_registry(void **unused)
{
	struct kb_errmsg e = {{0}};
	struct vmk_ds_lw_view v;
	struct vmk_ds_lw *lw;

	add_fake(HOSTA, 5);
	lw = lw_open_virtual();
	assert_int_equal(poll_at(lw, T0), 0); /* nothing registered yet */
	add_shared();
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	assert_int_equal(poll_at(lw, T0 + 100 * MS), 1);
	assert_int_equal(view_of(lw, HOSTA).since_ns, T0 + 100 * MS);
	assert_int_equal(vmk_ds_remove(&reg, "s1", 0, &e), 0);
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), KB_ENOTFOUND);
	assert_int_equal(poll_at(lw, T0 + 200 * MS), 0);
	assert_int_equal(vmk_ds_add(&reg, "s1", shared, false, &e), 0); /* local now */
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	assert_int_equal(poll_at(lw, T0 + 300 * MS), 0);
	assert_int_equal(vmk_ds_remove(&reg, "s1", 0, &e), 0);
	add_shared();
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0); /* idempotent */
	assert_int_equal(poll_at(lw, T0 + 5000 * MS), 1);
	assert_int_equal(view_of(lw, HOSTA).since_ns, T0 + 5000 * MS);
	assert_int_equal(log_count("no longer watched"), 1);
	vmk_ds_lw_destroy(lw);
}

/* A record removed from the directory is still read (and fails: no change) until it has
 * been gone for VMK_DS_LW_FORGET_MS; one that stays listed is never forgotten. */
static void test_forget(void **unused)
{
	struct vmk_ds_lw_view v;
	struct vmk_ds_lw *lw;
	uint64_t t = T0;

	add_shared();
	add_fake(HOSTA, 5);
	add_fake(HOSTB, 6)->err = -EIO;
	lw = lw_open_virtual();
	poll_at(lw, t);
	host_file(shared, HOSTA, false);
	fake_of(HOSTA)->err = -ENOENT;
	const uint64_t last_ok = t;
	for (t += 100 * MS; t < last_ok + VMK_DS_LW_FORGET_MS * MS; t += 100 * MS) {
		assert_int_equal(poll_at(lw, t), 2);
		v = view_of(lw, HOSTA);
		assert_int_equal(v.obs.last_change_ns, last_ok);
	}
	assert_int_equal(poll_at(lw, t), 2); /* the last read of A: it is forgotten */
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), KB_ENOTFOUND);
	assert_int_equal(poll_at(lw, t + 100 * MS), 1);
	v = view_of(lw, HOSTB);
	assert_int_equal(v.since_ns, T0);
	assert_false(v.obs.seen);
	assert_int_equal(log_count("forgotten"), 1);
	/* back again: a new observer */
	host_file(shared, HOSTA, true);
	fake_of(HOSTA)->err = 0;
	assert_int_equal(poll_at(lw, t + 200 * MS), 2);
	assert_int_equal(view_of(lw, HOSTA).since_ns, t + 200 * MS);
	vmk_ds_lw_destroy(lw);
}

/* Out of memory: creating and syncing fail cleanly; a pass that cannot allocate leaves the
 * records unknown (or un-updated), and later passes recover. */
static void test_oom(void **unused)
{
	struct vmk_ds_lw_config cfg;
	struct vmk_ds_lw *lw = NULL;
	struct vmk_ds_lw_view v;

	add_shared();
	add_fake(HOSTA, 5);
	add_fake(HOSTB, 6);
	vmk_ds_lw_config_init(&cfg);
	cfg.log = &lg;
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), -ENOMEM);
	kb_heap_fail_reset();
	assert_null(lw);
	cfg.clock = vclock;
	cfg.read = fake_read;
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), 0);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(poll_at(lw, T0), 0);
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	for (int n = 0; n < 6; n++) {
		kb_heap_fail_after(n, -1);
		poll_at(lw, T0 + (uint64_t)n * 10 * MS);
		kb_heap_fail_reset();
	}
	poll_at(lw, T0 + 100 * MS);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), 0);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTB, &v), 0);
	assert_int_equal(v.obs.counter, 6);
	vmk_ds_lw_destroy(lw);
}

/* The real thread with real records, the real clock and ha_hb_read(). */
static void test_thread(void **unused)
{
	struct vmk_ds_lw_config cfg;
	struct kb_errmsg e = {{0}};
	struct ha_hb_writer a, b;
	struct vmk_ds_lw *lw = NULL;
	struct vmk_ds_lw_view v;

	add_shared();
	assert_int_equal(ha_hb_writer_open(&a, shared, HOSTA, HA_IO_NO_DIRECT, &e), 0);
	assert_int_equal(ha_hb_writer_open(&b, shared, HOSTB, HA_IO_NO_DIRECT, &e), 0);
	ha_hb_writer_close(&b); /* one beat, then nothing */
	vmk_ds_lw_config_init(&cfg);
	cfg.host_id = OWN;
	cfg.log = &lg;
	cfg.interval_ms = 20;
	assert_int_equal(vmk_ds_lw_create(&cfg, &lw), 0);
	assert_int_equal(vmk_ds_lw_sync(lw, &reg), 0);
	const uint64_t t0 = kb_now_ns();
	assert_int_equal(vmk_ds_lw_start(lw), 0);
	assert_int_equal(vmk_ds_lw_start(lw), -EALREADY);
	for (int i = 0; i < 25; i++) {
		assert_int_equal(ha_hb_writer_beat(&a, &e), 0);
		kb_sleep_ns(20 * MS);
	}
	kb_sleep_ns(60 * MS);
	uint64_t now = kb_now_ns();
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTA, &v), 0);
	assert_true(v.obs.seen);
	assert_int_equal(v.obs.counter, a.rec.counter);
	assert_true(v.reads >= 5);
	assert_true(now - v.last_read_ns <= GAP);
	assert_int_equal(vmk_ds_lw_lookup(lw, shared, HOSTB, &v), 0);
	assert_true(v.obs.seen);
	assert_int_equal(v.obs.counter, 1);
	assert_true(v.obs.last_change_ns >= t0);
	assert_true(v.obs.last_change_ns - t0 < 200 * MS);
	ha_hb_writer_close(&a);
	now = kb_now_ns();
	vmk_ds_lw_destroy(lw);
	assert_true(kb_now_ns() - now < 500 * MS);
}

/* ---- seeded simulation --------------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t rnd_ms(uint64_t lo, uint64_t hi)
{
	return (lo + rnd() % (hi - lo + 1)) * MS;
}

static uint64_t seed_of(void)
{
	const char *s = getenv("KEEL_SEED");
	struct timespec ts;

	if (s && *s)
		return strtoull(s, NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
}

/* The simulated writer of HOSTA: beats on 250 ms deadlines, each write landing 0..150 ms
 * late, until stop_ns. */
struct sim_writer {
	uint64_t next_deadline, land; /* the pending write lands at land */
	uint64_t counter, last_write;
	uint64_t stop_ns;
};

static void sim_writer_run(struct sim_writer *w, uint64_t t)
{
	while (w->land <= t && w->land < w->stop_ns) {
		w->counter++;
		w->last_write = w->land;
		sim_last_write = w->last_write;
		fake_of(HOSTA)->counter = w->counter;
		w->next_deadline += HA_HB_INTERVAL_MS * MS;
		w->land = w->next_deadline + rnd_ms(0, 150);
		if (w->land < w->last_write)
			w->land = w->last_write;
	}
}

/* Judges HOSTA's lease at vnow as vmkernel does at power-on (kernel/vm/owner.c): start from
 * the watcher's view when it is current, take a fresh read, feed it, and ask the observer
 * with lease + margin. Returns the state; *from_view says whether the view was used,
 * *read_ok whether the fresh read succeeded. */
static enum ha_lease_state sim_judge(struct vmk_ds_lw *lw, uint64_t lease_ns, bool *from_view,
				     bool *read_ok)
{
	struct ha_lease_observer o;
	struct vmk_ds_lw_view v;
	struct ha_hb_record rec;
	char path[HA_HB_PATH_MAX];

	ha_lease_observer_init(&o, (uint32_t)(lease_ns / MS), vnow);
	*from_view = vmk_ds_lw_lookup(lw, shared, HOSTA, &v) == 0 && vnow - v.last_read_ns <= GAP;
	if (*from_view) {
		o.counter = v.obs.counter;
		o.seen = v.obs.seen;
		o.last_change_ns = v.obs.last_change_ns;
	}
	assert_int_equal(ha_hb_path(shared, HOSTA, path), 0);
	sim_judging = true;
	*read_ok = fake_read(NULL, path, &rec) == 0;
	sim_judging = false;
	if (*read_ok)
		ha_lease_observe(&o, rec.counter, vnow);
	return ha_lease_state(&o, vnow);
}

static void test_sim(void **unused)
{
	const uint64_t seed = seed_of();
	const uint64_t lease = (HA_LEASE_MS + HA_HB_INTERVAL_MS) * MS; /* as owner.c */
	uint64_t judged = 0, expired = 0, from_view = 0, late_max = 0;

	print_message("test_sim: seed %" PRIu64 " (replay with KEEL_SEED=%" PRIu64 ")\n", seed,
		      seed);
	rng = seed ? seed : 1;
	add_shared();
	add_fake(HOSTA, 1);
	for (int run = 0; run < 150; run++) {
		struct vmk_ds_lw *lw = lw_open_virtual();
		struct fake *f = fake_of(HOSTA);
		const unsigned fail_pct = (unsigned)(rnd() % 4) * 20; /* 0, 20, 40, 60 % */
		const bool stalls = rnd() % 2;
		uint64_t start = T0 + (uint64_t)run * 100000 * MS, next_poll = start;
		struct sim_writer w = {.next_deadline = start - rnd_ms(0, 249),
				       .counter = 1 + rnd() % 1000};
		bool stopped_seen = false;

		w.land = w.next_deadline;
		w.last_write = start - 1000 * MS;
		sim_last_write = sim_seen_write = w.last_write;
		w.stop_ns = rnd() % 4 == 0 ? UINT64_MAX : start + rnd_ms(0, 8000);
		f->counter = w.counter;
		for (vnow = start; vnow < start + 12000 * MS; vnow += 10 * MS) {
			sim_writer_run(&w, vnow);
			f->err = rnd() % 100 < fail_pct ? KB_ECHECKSUM : 0;
			if (vnow >= next_poll) {
				vmk_ds_lw_poll(lw);
				next_poll = vnow + 100 * MS;
				if (stalls && rnd() % 30 == 0)
					next_poll +=
					    rnd_ms(50, 900); /* the thread was not scheduled */
			}
			if (rnd() % 5 != 0)
				continue;
			bool fv, rok;
			enum ha_lease_state s = sim_judge(lw, lease, &fv, &rok);
			judged++;
			from_view += fv;
			if (s != HA_LEASE_EXPIRED)
				continue;
			expired++;
			/* Safety: never before a whole lease after the last write that a read
			 * this judgement rests on (the watcher's, or its own) has shown; with no
			 * failed reads, after the last write at all. (A record that cannot be
			 * read counts as unchanged: docs/leases.md.) */
			uint64_t w_ref = fail_pct == 0 || rok ? w.last_write : sim_seen_write;
			if (vnow < w_ref + lease)
				fail_msg("seed %" PRIu64 " run %d: expired at %" PRIu64
					 " ms, last write %s at %" PRIu64 " ms (lease %" PRIu64 ")",
					 seed, run, (vnow - start) / MS,
					 fail_pct == 0 ? "" : "read", (w_ref - start) / MS,
					 lease / MS);
			if (!stopped_seen && w.stop_ns != UINT64_MAX && vnow >= w.stop_ns) {
				stopped_seen = true;
				/* Promptness: with reads that work and a watcher that keeps up, a
				 * writer that stopped is called expired about a lease after its
				 * last write (the watcher's read interval and how often this loop
				 * judges added), not a lease after the judgement started. */
				uint64_t late = vnow - (w.last_write + lease);
				if (fail_pct == 0 && !stalls) {
					if (late > 600 * MS)
						fail_msg("seed %" PRIu64 " run %d: expired %" PRIu64
							 " ms after lease + last write",
							 seed, run, late / MS);
					if (late > late_max)
						late_max = late;
				}
			}
		}
		/* Liveness: without stalls, a stopped writer is called expired by the end of
		 * the run. (With them, each hole restarts the watch: later, never wrong.) */
		if (w.stop_ns != UINT64_MAX && !stalls && !stopped_seen)
			fail_msg("seed %" PRIu64 " run %d: writer stopped at %" PRIu64
				 " ms, never called expired",
				 seed, run, (w.stop_ns - start) / MS);
		vmk_ds_lw_destroy(lw);
	}
	print_message("test_sim: %" PRIu64 " judgements, %" PRIu64
		      " from the watcher's view, %" PRIu64
		      " expired; worst first expiry of a stopped writer %" PRIu64
		      " ms after lease + last write (reads working, no stalls)\n",
		      judged, from_view, expired, late_max / MS);
	assert_true(from_view > judged / 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_which_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_arithmetic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_observer_waits_a_lease, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_is_no_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_follows_registry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sim, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
