/*
 * Tests for ft/ckpt.h, the FT secondary's checkpoint staging: the initial sync straight
 * into memory and two disk files, then checkpoints 1..3 applied whole (memory and disks
 * compared with a model that applies the same records in order, the state returned, the
 * stats); every refusal of docs/ft.md (out of order, numbers that do not follow, counts
 * and CRC that do not match, ranges beyond memory or a disk, types the secondary does not
 * take), each leaving memory, disks and the state as the previous checkpoint left them and
 * every later feed KB_ESTATE; a checkpoint cut short; the limits; out of memory and disk
 * write errors; a memfd-backed target; 1000 checkpoints with every allocation failing
 * after the first two (the staging buffers are reused); and the time to stage and apply a
 * checkpoint of 8 MiB of pages and 1 MiB of disk writes (printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ft/ckpt.h"
#include "kernel/vmm/vmm.h"
#include "lib/crc.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "lib/time.h"

#define PAGES	  64u
#define DISKS	  2u
#define DISK_SIZE (64u << 10)
#define PG	  VMO_PAGE_SIZE

/* Lowers a stage's limits (ft/ckpt.c, for tests). */
void ft__stage_limits(struct ft_stage *s, uint64_t pages, uint64_t disk, uint64_t state);

/* A target and a model of what it must hold. */
struct fix {
	struct ft_target t;
	struct ft_stage *s;
	uint8_t *mem;
	uint8_t exp_mem[PAGES * PG];	    /* what memory must hold now */
	uint8_t exp_disk[DISKS][DISK_SIZE]; /* what the disks must hold now */
	/* the open checkpoint, applied to the model at CKPT_END */
	uint8_t stg_mem[PAGES * PG];
	uint8_t stg_disk[DISKS][DISK_SIZE];
	uint8_t state[4096], applied_state[4096];
	size_t state_len, applied_len;
	uint64_t pages, disk_bytes;
};

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int temp_disk(void)
{
	char path[] = "/tmp/keel-ft-ckpt-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, DISK_SIZE), 0);
	return fd;
}

static struct fix *fix_new(void)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->mem = malloc(PAGES * PG);
	assert_non_null(f->mem);
	memset(f->mem, 0xee, PAGES * PG);
	memset(f->exp_mem, 0xee, PAGES * PG);
	f->t.mem = f->mem;
	f->t.pages = PAGES;
	f->t.vmem = NULL;
	f->t.nr_disks = DISKS;
	for (unsigned i = 0; i < DISKS; i++) {
		f->t.disk_fds[i] = temp_disk();
		f->t.disk_size[i] = DISK_SIZE;
	}
	assert_int_equal(ft_stage_create(&f->t, &f->s), 0);
	return f;
}

static void fix_free(struct fix *f)
{
	kb_heap_fail_reset();
	ft_stage_destroy(f->s);
	for (unsigned i = 0; i < DISKS; i++)
		close(f->t.disk_fds[i]);
	free(f->mem);
	free(f);
}

/* Memory, disks and the state are those of the model (the last applied checkpoint). */
static void check_target(struct fix *f)
{
	static uint8_t disk[DISK_SIZE];
	const uint8_t *st;
	size_t len = 99;

	assert_memory_equal(f->mem, f->exp_mem, PAGES * PG);
	for (unsigned i = 0; i < DISKS; i++) {
		assert_int_equal(pread(f->t.disk_fds[i], disk, DISK_SIZE, 0), DISK_SIZE);
		assert_memory_equal(disk, f->exp_disk[i], DISK_SIZE);
	}
	st = ft_stage_state(f->s, &len);
	assert_int_equal(len, f->applied_len);
	if (f->applied_len)
		assert_memory_equal(st, f->applied_state, len);
}

/* ---- records ---- */

static struct vmo_rec r_pages(uint64_t first, uint32_t count, const uint8_t *data)
{
	struct vmo_rec r = {.type = VMO_PAGES};

	r.u.pages.first = first;
	r.u.pages.count = count;
	r.u.pages.data = data;
	return r;
}

static struct vmo_rec r_zero(uint64_t first, uint32_t count)
{
	struct vmo_rec r = {.type = VMO_ZERO};

	r.u.pages.first = first;
	r.u.pages.count = count;
	return r;
}

static struct vmo_rec r_disk(uint32_t index, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct vmo_rec r = {.type = VMO_DISK};

	r.u.disk.index = index;
	r.u.disk.offset = offset;
	r.u.disk.data = data;
	r.u.disk.len = len;
	return r;
}

static struct vmo_rec r_state(const uint8_t *data, uint32_t len)
{
	struct vmo_rec r = {.type = VMO_STATE};

	r.u.state.data = data;
	r.u.state.len = len;
	return r;
}

static struct vmo_rec r_num(enum vmo_type type, uint64_t n)
{
	struct vmo_rec r = {.type = type};

	if (type == VMO_SYNC || type == VMO_SYNCED)
		r.u.sync_seq = n;
	else
		r.u.ckpt = n;
	return r;
}

static struct vmo_rec r_end(uint64_t n, uint64_t pages, uint64_t disk, uint64_t slen, uint32_t crc)
{
	struct vmo_rec r = {.type = VMO_CKPT_END};

	r.u.ckpt_end.ckpt = n;
	r.u.ckpt_end.pages = pages;
	r.u.ckpt_end.disk_bytes = disk;
	r.u.ckpt_end.state_len = slen;
	r.u.ckpt_end.state_crc = crc;
	return r;
}

static int feed(struct fix *f, struct vmo_rec r, struct kb_errmsg *err)
{
	memset(err, 0, sizeof(*err));
	return ft_stage_feed(f->s, &r, err);
}

static void feed_ok(struct fix *f, struct vmo_rec r, int want)
{
	struct kb_errmsg err;
	int rc = feed(f, r, &err);

	if (rc != want)
		fail_msg("feed %d: %d (%s), want %d", (int)r.type, rc, err.msg, want);
}

static void feed_fails(struct fix *f, struct vmo_rec r, int want)
{
	struct kb_errmsg err;
	int rc = feed(f, r, &err);

	if (rc != want)
		fail_msg("feed %d: %d (%s), want %d", (int)r.type, rc, err.msg, want);
	assert_true(err.msg[0] != '\0');
}

/* ---- the model: records fed inside a checkpoint change the staged copy; CKPT_END moves
 * it into the expectation ---- */

static void open_ckpt(struct fix *f, uint64_t n)
{
	memcpy(f->stg_mem, f->exp_mem, sizeof(f->stg_mem));
	memcpy(f->stg_disk, f->exp_disk, sizeof(f->stg_disk));
	f->state_len = 0;
	f->pages = f->disk_bytes = 0;
	feed_ok(f, r_num(VMO_CKPT, n), FT_FEED_MORE);
	assert_true(ft_stage_open(f->s));
}

static void m_pages(struct fix *f, uint64_t first, uint32_t count, const uint8_t *data)
{
	feed_ok(f, r_pages(first, count, data), FT_FEED_MORE);
	memcpy(f->stg_mem + first * PG, data, (size_t)count * PG);
	f->pages += count;
}

static void m_zero(struct fix *f, uint64_t first, uint32_t count)
{
	feed_ok(f, r_zero(first, count), FT_FEED_MORE);
	memset(f->stg_mem + first * PG, 0, (size_t)count * PG);
	f->pages += count;
}

static void m_disk(struct fix *f, uint32_t index, uint64_t off, const uint8_t *data, uint32_t len)
{
	feed_ok(f, r_disk(index, off, data, len), FT_FEED_MORE);
	memcpy(f->stg_disk[index] + off, data, len);
	f->disk_bytes += len;
}

static void m_state(struct fix *f, const uint8_t *data, uint32_t len)
{
	feed_ok(f, r_state(data, len), FT_FEED_MORE);
	memcpy(f->state + f->state_len, data, len);
	f->state_len += len;
}

static struct vmo_rec good_end(struct fix *f, uint64_t n)
{
	return r_end(n, f->pages, f->disk_bytes, f->state_len,
		     kb_crc32c(0, f->state, f->state_len));
}

static void close_ckpt(struct fix *f, uint64_t n)
{
	feed_ok(f, good_end(f, n), FT_FEED_APPLIED);
	assert_false(ft_stage_open(f->s));
	memcpy(f->exp_mem, f->stg_mem, sizeof(f->exp_mem));
	memcpy(f->exp_disk, f->stg_disk, sizeof(f->exp_disk));
	memcpy(f->applied_state, f->state, f->state_len);
	f->applied_len = f->state_len;
	check_target(f);
}

/* The sync: pages 0..7, pages 8..15 zeroed, a write on each disk, SYNC. */
static void do_sync(struct fix *f)
{
	static uint8_t data[8 * PG], d0[4096], d1[1024];

	fill(data, sizeof(data), 1);
	fill(d0, sizeof(d0), 2);
	fill(d1, sizeof(d1), 3);
	feed_ok(f, r_pages(0, 8, data), FT_FEED_MORE);
	feed_ok(f, r_zero(8, 8), FT_FEED_MORE);
	feed_ok(f, r_disk(0, 0, d0, sizeof(d0)), FT_FEED_MORE);
	feed_ok(f, r_disk(1, DISK_SIZE - sizeof(d1), d1, sizeof(d1)), FT_FEED_MORE);
	feed_ok(f, r_num(VMO_SYNC, 77), FT_FEED_SYNC);
	memcpy(f->exp_mem, data, sizeof(data));
	memset(f->exp_mem + 8 * PG, 0, 8 * PG);
	memcpy(f->exp_disk[0], d0, sizeof(d0));
	memcpy(f->exp_disk[1] + DISK_SIZE - sizeof(d1), d1, sizeof(d1));
	check_target(f);
	assert_false(ft_stage_open(f->s));
}

/* Checkpoint n with overlapping page and disk operations, whose order matters. */
static void do_ckpt(struct fix *f, uint64_t n)
{
	static uint8_t data[4 * PG], d[8192], st[3000];

	fill(data, sizeof(data), 100 + (unsigned)n);
	fill(d, sizeof(d), 200 + (unsigned)n);
	fill(st, sizeof(st), 300 + (unsigned)n);
	open_ckpt(f, n);
	m_pages(f, 20 + n, 4, data);
	m_zero(f, 21 + n, 2);		  /* zeroes two of the pages just sent */
	m_pages(f, 22 + n, 1, data + PG); /* and one comes back */
	m_zero(f, 0, 1);
	m_disk(f, 0, 512 * n, d, 4096);
	m_disk(f, 0, 512 * n + 1024, d + 4096, 2048); /* overlaps the one before */
	m_disk(f, 1, 0, d, 8192);
	m_state(f, st, 1000);
	m_state(f, st + 1000, 1000 + (uint32_t)n);
	/* nothing applied before CKPT_END */
	check_target(f);
	close_ckpt(f, n);
}

/* ---- tests ---- */

static void test_create_refusals(void **state)
{
	(void)state;
	uint8_t mem[PG];
	struct ft_target t = {.mem = mem, .pages = 1};
	struct ft_stage *s = (struct ft_stage *)&t;

	t.pages = 0;
	assert_int_equal(ft_stage_create(&t, &s), -EINVAL);
	assert_null(s);
	t.pages = 1;
	t.nr_disks = VMO_DISK_MAX + 1;
	assert_int_equal(ft_stage_create(&t, &s), -EINVAL);
	t.nr_disks = 0;
	t.mem = NULL;
	assert_int_equal(ft_stage_create(&t, &s), -EINVAL);
	t.mem = mem;
	kb_heap_fail_after(0, 1);
	assert_int_equal(ft_stage_create(&t, &s), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(ft_stage_create(&t, &s), 0);
	assert_non_null(s);
	ft_stage_destroy(s);
	ft_stage_destroy(NULL);
}

static void test_sync_then_checkpoints(void **state)
{
	(void)state;
	struct fix *f = fix_new();
	struct ft_stage_stats st;
	const uint8_t *p;
	size_t len = 5;

	p = ft_stage_state(f->s, &len);
	assert_null(p);
	assert_int_equal(len, 0);
	do_sync(f);
	ft_stage_stats(f->s, &st);
	assert_int_equal(st.applied, 0);
	assert_int_equal(st.sync_pages, 16);
	assert_int_equal(st.sync_disk_bytes, 4096 + 1024);
	/* a second SYNC during the sync is answered too */
	feed_ok(f, r_num(VMO_SYNC, 78), FT_FEED_SYNC);

	for (uint64_t n = 1; n <= 3; n++)
		do_ckpt(f, n);
	ft_stage_stats(f->s, &st);
	assert_int_equal(st.applied, 3);
	assert_int_equal(st.sync_pages, 16);
	assert_int_equal(st.ckpt_pages, 3 * 8);
	assert_int_equal(st.ckpt_disk_bytes, 3 * (4096 + 2048 + 8192));
	assert_int_equal(st.last_pages, 8);
	assert_int_equal(st.last_disk_bytes, 4096 + 2048 + 8192);
	assert_int_equal(st.last_state_len, 2003);

	/* a checkpoint with nothing in it applies and keeps no state */
	open_ckpt(f, 4);
	close_ckpt(f, 4);
	ft_stage_stats(f->s, &st);
	assert_int_equal(st.applied, 4);
	assert_int_equal(st.last_pages, 0);
	assert_int_equal(st.last_state_len, 0);
	fix_free(f);
}

/* ---- refusals: each leaves checkpoint 1 whole and the stage failed ---- */

enum where {
	IN_CKPT2,    /* checkpoint 2 open with pages, disk writes and state staged */
	AFTER_CKPT1, /* checkpoint 1 applied, nothing open */
	IN_SYNC,     /* during the sync (checkpoint 1 not yet) */
};

struct refusal {
	const char *name;
	enum where where;
	int code;
	struct vmo_rec (*rec)(struct fix *f);
};

static uint8_t bad_data[2 * PG];

static struct vmo_rec end_number(struct fix *f)
{
	struct vmo_rec r = good_end(f, 2);

	r.u.ckpt_end.ckpt = 3;
	return r;
}

static struct vmo_rec end_pages(struct fix *f)
{
	struct vmo_rec r = good_end(f, 2);

	r.u.ckpt_end.pages++;
	return r;
}

static struct vmo_rec end_disk(struct fix *f)
{
	struct vmo_rec r = good_end(f, 2);

	r.u.ckpt_end.disk_bytes -= 512;
	return r;
}

static struct vmo_rec end_state_len(struct fix *f)
{
	struct vmo_rec r = good_end(f, 2);

	r.u.ckpt_end.state_len = 0;
	return r;
}

static struct vmo_rec end_crc(struct fix *f)
{
	struct vmo_rec r = good_end(f, 2);

	r.u.ckpt_end.state_crc ^= 1;
	return r;
}

static struct vmo_rec end_no_ckpt(struct fix *f)
{
	(void)f;
	return r_end(2, 0, 0, 0, 0);
}

static struct vmo_rec ckpt_inside(struct fix *f)
{
	(void)f;
	return r_num(VMO_CKPT, 3);
}

static struct vmo_rec ckpt_same(struct fix *f)
{
	(void)f;
	return r_num(VMO_CKPT, 1);
}

static struct vmo_rec ckpt_skip(struct fix *f)
{
	(void)f;
	return r_num(VMO_CKPT, 3);
}

static struct vmo_rec ckpt_zero(struct fix *f)
{
	(void)f;
	return r_num(VMO_CKPT, 0);
}

static struct vmo_rec ckpt_first_2(struct fix *f)
{
	(void)f;
	return r_num(VMO_CKPT, 2);
}

static struct vmo_rec sync_rec(struct fix *f)
{
	(void)f;
	return r_num(VMO_SYNC, 5);
}

static struct vmo_rec state_rec(struct fix *f)
{
	(void)f;
	return r_state(bad_data, 100);
}

static struct vmo_rec pages_beyond(struct fix *f)
{
	(void)f;
	return r_pages(PAGES - 1, 2, bad_data);
}

static struct vmo_rec pages_far(struct fix *f)
{
	(void)f;
	return r_pages(UINT64_MAX, 1, bad_data);
}

static struct vmo_rec zero_beyond(struct fix *f)
{
	(void)f;
	return r_zero(PAGES, 1);
}

static struct vmo_rec pages_ok(struct fix *f)
{
	(void)f;
	return r_pages(3, 2, bad_data);
}

static struct vmo_rec zero_ok(struct fix *f)
{
	(void)f;
	return r_zero(3, 1);
}

static struct vmo_rec disk_ok(struct fix *f)
{
	(void)f;
	return r_disk(1, 512, bad_data, 512);
}

static struct vmo_rec disk_index(struct fix *f)
{
	(void)f;
	return r_disk(DISKS, 0, bad_data, 512);
}

static struct vmo_rec disk_past_end(struct fix *f)
{
	(void)f;
	return r_disk(0, DISK_SIZE - 512, bad_data, 1024);
}

static struct vmo_rec disk_far(struct fix *f)
{
	(void)f;
	return r_disk(1, UINT64_MAX - 511, bad_data, 1024);
}

#define TYPE_REC(name, t)                         \
	static struct vmo_rec name(struct fix *f) \
	{                                         \
		(void)f;                          \
		return r_num(t, 2);               \
	}
TYPE_REC(t_abort, VMO_ABORT)
TYPE_REC(t_ready, VMO_READY)
TYPE_REC(t_go, VMO_GO)
TYPE_REC(t_final, VMO_FINAL)
TYPE_REC(t_ack, VMO_ACK)
TYPE_REC(t_synced, VMO_SYNCED)
TYPE_REC(t_round, VMO_ROUND)
TYPE_REC(t_state_end, VMO_STATE_END)
TYPE_REC(t_resumed, VMO_RESUMED)
TYPE_REC(t_unknown, (enum vmo_type)99)

static const struct refusal refusals[] = {
    {"CKPT_END with another number", IN_CKPT2, KB_EPROTO, end_number},
    {"CKPT_END counting other pages", IN_CKPT2, KB_EPROTO, end_pages},
    {"CKPT_END counting other disk bytes", IN_CKPT2, KB_EPROTO, end_disk},
    {"CKPT_END counting another state length", IN_CKPT2, KB_EPROTO, end_state_len},
    {"CKPT_END with another state CRC", IN_CKPT2, KB_ECHECKSUM, end_crc},
    {"CKPT inside a checkpoint", IN_CKPT2, KB_EPROTO, ckpt_inside},
    {"SYNC inside a checkpoint", IN_CKPT2, KB_EPROTO, sync_rec},
    {"PAGES beyond the guest", IN_CKPT2, KB_EPROTO, pages_beyond},
    {"PAGES far beyond the guest", IN_CKPT2, KB_EPROTO, pages_far},
    {"ZERO beyond the guest", IN_CKPT2, KB_EPROTO, zero_beyond},
    {"DISK for a disk the secondary lacks", IN_CKPT2, KB_EPROTO, disk_index},
    {"DISK past the disk's end", IN_CKPT2, KB_EPROTO, disk_past_end},
    {"DISK at an offset that wraps", IN_CKPT2, KB_EPROTO, disk_far},
    {"ABORT", IN_CKPT2, KB_EPROTO, t_abort},
    {"READY", IN_CKPT2, KB_EPROTO, t_ready},
    {"GO", IN_CKPT2, KB_EPROTO, t_go},
    {"FINAL", IN_CKPT2, KB_EPROTO, t_final},
    {"ACK", IN_CKPT2, KB_EPROTO, t_ack},
    {"SYNCED", IN_CKPT2, KB_EPROTO, t_synced},
    {"ROUND", IN_CKPT2, KB_EPROTO, t_round},
    {"STATE_END", IN_CKPT2, KB_EPROTO, t_state_end},
    {"RESUMED", IN_CKPT2, KB_EPROTO, t_resumed},
    {"an unknown type", IN_CKPT2, KB_EPROTO, t_unknown},
    {"CKPT_END without CKPT", AFTER_CKPT1, KB_EPROTO, end_no_ckpt},
    {"CKPT repeating the last number", AFTER_CKPT1, KB_EPROTO, ckpt_same},
    {"CKPT skipping a number", AFTER_CKPT1, KB_EPROTO, ckpt_skip},
    {"STATE outside a checkpoint", AFTER_CKPT1, KB_EPROTO, state_rec},
    {"PAGES between checkpoints", AFTER_CKPT1, KB_EPROTO, pages_ok},
    {"ZERO between checkpoints", AFTER_CKPT1, KB_EPROTO, zero_ok},
    {"DISK between checkpoints", AFTER_CKPT1, KB_EPROTO, disk_ok},
    {"SYNC between checkpoints", AFTER_CKPT1, KB_EPROTO, sync_rec},
    {"the first CKPT numbered 0", IN_SYNC, KB_EPROTO, ckpt_zero},
    {"the first CKPT numbered 2", IN_SYNC, KB_EPROTO, ckpt_first_2},
    {"STATE during the sync", IN_SYNC, KB_EPROTO, state_rec},
    {"CKPT_END during the sync", IN_SYNC, KB_EPROTO, end_no_ckpt},
    {"PAGES beyond the guest during the sync", IN_SYNC, KB_EPROTO, pages_beyond},
    {"DISK past the end during the sync", IN_SYNC, KB_EPROTO, disk_past_end},
    {"DISK for a missing disk during the sync", IN_SYNC, KB_EPROTO, disk_index},
    {"ABORT during the sync", IN_SYNC, KB_EPROTO, t_abort},
};

static void test_refusals(void **state)
{
	(void)state;
	static uint8_t data[2 * PG], d[1024], st[500];

	fill(bad_data, sizeof(bad_data), 999);
	fill(data, sizeof(data), 11);
	fill(d, sizeof(d), 12);
	fill(st, sizeof(st), 13);
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *rf = &refusals[i];
		struct fix *f = fix_new();
		struct kb_errmsg err;
		struct ft_stage_stats before, after;
		struct vmo_rec r;
		int rc;

		print_message("refusal: %s\n", rf->name);
		do_sync(f);
		if (rf->where != IN_SYNC)
			do_ckpt(f, 1);
		if (rf->where == IN_CKPT2) {
			open_ckpt(f, 2);
			m_pages(f, 30, 2, data);
			m_zero(f, 1, 3);
			m_disk(f, 0, 0, d, sizeof(d));
			m_disk(f, 1, 1024, d, 512);
			m_state(f, st, sizeof(st));
		}
		ft_stage_stats(f->s, &before);
		r = rf->rec(f);
		rc = feed(f, r, &err);
		if (rc != rf->code)
			fail_msg("%s: %d (%s), want %d", rf->name, rc, err.msg, rf->code);
		assert_true(err.msg[0] != '\0');
		/* nothing of the open checkpoint (or the refused record) reached the target */
		check_target(f);
		assert_false(ft_stage_open(f->s));
		ft_stage_stats(f->s, &after);
		assert_memory_equal(&before, &after, sizeof(before));
		/* and the stage takes nothing more, not even what would have been right */
		feed_fails(f, r_num(VMO_CKPT, 2), KB_ESTATE);
		feed_fails(f, good_end(f, 2), KB_ESTATE);
		feed_fails(f, r_num(VMO_SYNC, 1), KB_ESTATE);
		feed_fails(f, r_pages(0, 1, data), KB_ESTATE);
		check_target(f);
		fix_free(f);
	}
}

/* A stream that ends inside checkpoint 2 leaves checkpoint 1 whole. */
static void test_truncated_checkpoint(void **state)
{
	(void)state;
	static uint8_t data[4 * PG], d[4096], st[100];
	struct fix *f = fix_new();
	struct ft_stage_stats ss;

	fill(data, sizeof(data), 21);
	fill(d, sizeof(d), 22);
	fill(st, sizeof(st), 23);
	do_sync(f);
	do_ckpt(f, 1);
	open_ckpt(f, 2);
	m_pages(f, 0, 4, data);
	m_zero(f, 10, 20);
	m_disk(f, 0, 0, d, sizeof(d));
	m_disk(f, 1, 0, d, sizeof(d));
	m_state(f, st, sizeof(st));
	/* no CKPT_END: the receiver stops feeding */
	assert_true(ft_stage_open(f->s));
	check_target(f);
	ft_stage_stats(f->s, &ss);
	assert_int_equal(ss.applied, 1);
	assert_int_equal(ss.last_state_len, f->applied_len);
	fix_free(f);
}

static void test_limits(void **state)
{
	(void)state;
	static uint8_t d[4096], st[4096];
	uint64_t big = FT_STAGE_PAGES_MAX + 16;
	struct ft_target t = {.pages = big};
	struct ft_stage *s;
	struct kb_errmsg err = {{0}};
	struct vmo_rec r;

	/* the page limit at its real size: ZERO ranges stage no data, and nothing is applied,
	 * so the guest's memory is only reserved */
	t.mem = mmap(NULL, big * PG, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(t.mem != MAP_FAILED);
	assert_int_equal(ft_stage_create(&t, &s), 0);
	r = r_num(VMO_CKPT, 1);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_zero(0, FT_STAGE_PAGES_MAX - 1);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_zero(FT_STAGE_PAGES_MAX, 1);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE); /* exactly the limit */
	r = r_zero(FT_STAGE_PAGES_MAX + 1, 1);
	assert_int_equal(ft_stage_feed(s, &r, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "pages"));
	r = r_end(1, FT_STAGE_PAGES_MAX, 0, 0, 0);
	assert_int_equal(ft_stage_feed(s, &r, &err), KB_ESTATE);
	ft_stage_destroy(s);
	munmap(t.mem, big * PG);

	/* disk data and state over lowered limits */
	fill(d, sizeof(d), 31);
	fill(st, sizeof(st), 32);
	for (int which = 0; which < 2; which++) {
		struct fix *f = fix_new();

		ft__stage_limits(f->s, 0, 16384, 4000);
		do_sync(f);
		do_ckpt(f, 1); /* within both limits */
		open_ckpt(f, 2);
		if (which == 0) {
			m_disk(f, 0, 0, d, 4096);
			m_disk(f, 1, 0, d, 4096);
			m_disk(f, 1, 8192, d, 4096);
			m_disk(f, 0, 8192, d, 4096); /* exactly the limit */
			feed_fails(f, r_disk(1, 4096, d, 512), KB_ETOOBIG);
		} else {
			m_state(f, st, 3000);
			m_state(f, st, 1000); /* exactly the limit */
			feed_fails(f, r_state(st, 1), KB_ETOOBIG);
		}
		check_target(f);
		feed_fails(f, good_end(f, 2), KB_ESTATE);
		fix_free(f);
	}
}

/* Out of memory while staging: the checkpoint is refused whole, with -ENOMEM. */
static void test_enomem(void **state)
{
	(void)state;
	static uint8_t data[PG], d[512], st[10];
	struct fix *f = fix_new();

	do_sync(f);
	do_ckpt(f, 1);
	/* checkpoint 1's buffers hold these; a bigger checkpoint 2 must grow them */
	open_ckpt(f, 2);
	m_state(f, st, sizeof(st));
	m_disk(f, 0, 0, d, sizeof(d));
	kb_heap_fail_after(0, -1);
	for (int i = 0; i < 10; i++)
		m_pages(f, (uint64_t)i, 1, data); /* fits in the buffers already there */
	feed_fails(f, r_pages(0, 64, f->mem), -ENOMEM);
	kb_heap_fail_reset();
	check_target(f);
	feed_fails(f, r_num(VMO_CKPT, 3), KB_ESTATE);
	fix_free(f);
}

/* A disk write error: during the sync it is the feed's error; during an apply too, and
 * the stage is failed (the copy is no longer valid). */
static void test_disk_errors(void **state)
{
	(void)state;
	static uint8_t d[512];
	struct fix *f = fix_new();
	struct kb_errmsg err;
	struct ft_target t = f->t;
	struct ft_stage *s;
	struct vmo_rec r;
	char path[] = "/tmp/keel-ft-ckpt-XXXXXX";
	int w = mkstemp(path);

	/* disk 1 open read-only */
	assert_true(w >= 0);
	assert_int_equal(ftruncate(w, DISK_SIZE), 0);
	t.disk_fds[1] = open(path, O_RDONLY);
	assert_true(t.disk_fds[1] >= 0);
	unlink(path);
	close(w);
	assert_int_equal(ft_stage_create(&t, &s), 0);
	r = r_disk(1, 0, d, sizeof(d));
	memset(&err, 0, sizeof(err));
	assert_int_equal(ft_stage_feed(s, &r, &err), -EBADF);
	assert_non_null(strstr(err.msg, "disk 1"));
	assert_int_equal(ft_stage_feed(s, &r, &err), KB_ESTATE);
	ft_stage_destroy(s);

	assert_int_equal(ft_stage_create(&t, &s), 0);
	r = r_num(VMO_CKPT, 1);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_disk(0, 0, d, sizeof(d));
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_disk(1, 0, d, sizeof(d));
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_end(1, 0, 1024, 0, 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(ft_stage_feed(s, &r, &err), -EBADF);
	assert_non_null(strstr(err.msg, "checkpoint 1"));
	r = r_num(VMO_CKPT, 2);
	assert_int_equal(ft_stage_feed(s, &r, &err), KB_ESTATE);
	ft_stage_destroy(s);
	close(t.disk_fds[1]);
	fix_free(f);
}

/* A target whose memory is a shared mapping of a memfd: the sync writes through the memfd
 * and large ZERO ranges punch holes; the mapping sees both. */
static void test_memfd_target(void **state)
{
	(void)state;
	const uint64_t pages = 2048;
	static uint8_t data[16 * PG];
	struct vmm_mem vmem = {.size = pages * PG};
	struct ft_target t = {.pages = pages, .vmem = &vmem};
	struct ft_stage *s;
	struct kb_errmsg err = {{0}};
	struct vmo_rec r;

	fill(data, sizeof(data), 41);
	vmem.memfd = memfd_create("ft-ckpt-test", MFD_CLOEXEC);
	assert_true(vmem.memfd >= 0);
	assert_int_equal(ftruncate(vmem.memfd, (off_t)(pages * PG)), 0);
	t.mem = vmem.base =
	    mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, vmem.memfd, 0);
	assert_true(t.mem != MAP_FAILED);
	memset(t.mem, 0x5a, pages * PG);
	assert_int_equal(ft_stage_create(&t, &s), 0);

	r = r_pages(0, 16, data);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_zero(16, 1024);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	assert_memory_equal(t.mem, data, sizeof(data));
	for (uint64_t i = 16 * PG; i < 1040 * PG; i += 512)
		assert_int_equal(t.mem[i], 0);
	assert_int_equal(t.mem[1040 * PG], 0x5a);

	r = r_num(VMO_CKPT, 1);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_zero(0, 600);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	r = r_pages(100, 1, data);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
	assert_int_equal(t.mem[0], data[0]); /* staged only */
	r = r_end(1, 601, 0, 0, 0);
	assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_APPLIED);
	assert_int_equal(t.mem[0], 0);
	assert_int_equal(t.mem[599 * PG + 7], 0);
	assert_memory_equal(t.mem + 100 * PG, data, PG);
	assert_int_equal(t.mem[2047 * PG], 0x5a);

	ft_stage_destroy(s);
	munmap(t.mem, pages * PG);
	close(vmem.memfd);
}

/* 1000 checkpoints of the same shape after the first one allocate nothing: every
 * allocation fails from then on, and all of them apply. */
static void test_no_growth(void **state)
{
	(void)state;
	static uint8_t data[8 * PG], d[8192], st[3000];
	struct fix *f = fix_new();
	struct ft_stage_stats ss;

	do_sync(f);
	for (uint64_t n = 1; n <= 1000; n++) {
		fill(data, sizeof(data), (unsigned)n);
		fill(d, sizeof(d), (unsigned)n * 7);
		fill(st, sizeof(st), (unsigned)n * 13);
		open_ckpt(f, n);
		m_pages(f, n % 50, 8, data);
		m_zero(f, (n + 3) % 60, 4);
		m_disk(f, (uint32_t)(n % 2), (n % 100) * 512, d, 8192);
		m_state(f, st, 2000 + (uint32_t)(n % 2) * 1000);
		feed_ok(f, good_end(f, n), FT_FEED_APPLIED);
		memcpy(f->exp_mem, f->stg_mem, sizeof(f->exp_mem));
		memcpy(f->exp_disk, f->stg_disk, sizeof(f->exp_disk));
		memcpy(f->applied_state, f->state, f->state_len);
		f->applied_len = f->state_len;
		if (n == 2)
			kb_heap_fail_after(0, -1); /* both state buffers have their size now */
		if (n % 250 == 0)
			check_target(f);
	}
	kb_heap_fail_reset();
	check_target(f);
	ft_stage_stats(f->s, &ss);
	assert_int_equal(ss.applied, 1000);
	assert_int_equal(ss.ckpt_pages, 12000);
	assert_int_equal(ss.ckpt_disk_bytes, 8192000);
	fix_free(f);
}

/* Figures (printed, not asserted): staging and applying checkpoints of 2048 dirty pages,
 * 1 MiB of disk writes and 64 KiB of state into a 16 MiB guest. */
static void test_figures(void **state)
{
	(void)state;
	const uint64_t pages = 4096, dirty = 2048, rounds = 20;
	const uint32_t disk_len = VMO_DISK_DATA_MAX, state_len = 64u << 10;
	struct ft_target t = {.pages = pages, .nr_disks = 1};
	uint8_t *src = malloc(dirty * PG), *st = malloc(state_len);
	struct kb_errmsg err = {{0}};
	struct ft_stage_stats ss;
	uint64_t stage_ns = 0, apply_ns = 0;
	struct ft_stage *s;
	struct vmo_rec r;

	assert_non_null(src);
	assert_non_null(st);
	t.mem = calloc(pages, PG);
	assert_non_null(t.mem);
	t.disk_fds[0] = temp_disk();
	assert_int_equal(ftruncate(t.disk_fds[0], 2 * disk_len), 0);
	t.disk_size[0] = 2 * disk_len;
	assert_int_equal(ft_stage_create(&t, &s), 0);
	for (uint64_t n = 1; n <= rounds; n++) {
		uint64_t t0;

		fill(src, dirty * PG, (unsigned)n);
		fill(st, state_len, (unsigned)n + 1000);
		r = r_num(VMO_CKPT, n);
		assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
		t0 = kb_now_ns();
		for (uint64_t p = 0; p < dirty; p += VMO_PAGES_MAX) {
			/* every other chunk, as a scattered dirty set */
			r = r_pages(2 * p, VMO_PAGES_MAX, src + p * PG);
			assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
		}
		r = r_disk(0, (n % 2) * disk_len, src, disk_len);
		assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
		r = r_state(st, state_len);
		assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_MORE);
		stage_ns += kb_now_ns() - t0;
		r = r_end(n, dirty, disk_len, state_len, kb_crc32c(0, st, state_len));
		assert_int_equal(ft_stage_feed(s, &r, &err), FT_FEED_APPLIED);
		ft_stage_stats(s, &ss);
		apply_ns += ss.last_apply_ns;
	}
	assert_int_equal(ss.applied, rounds);
	assert_memory_equal(t.mem + 2 * VMO_PAGES_MAX * PG, src + VMO_PAGES_MAX * PG,
			    VMO_PAGES_MAX * PG);
	print_message("RESULT ft_ckpt_stage_8MiB_pages_1MiB_disk %.2f ms\n",
		      (double)stage_ns / (double)rounds / 1e6);
	print_message("RESULT ft_ckpt_apply_8MiB_pages_1MiB_disk %.2f ms\n",
		      (double)apply_ns / (double)rounds / 1e6);
	ft_stage_destroy(s);
	close(t.disk_fds[0]);
	free(t.mem);
	free(src);
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_refusals), cmocka_unit_test(test_sync_then_checkpoints),
	    cmocka_unit_test(test_refusals),	    cmocka_unit_test(test_truncated_checkpoint),
	    cmocka_unit_test(test_limits),	    cmocka_unit_test(test_enomem),
	    cmocka_unit_test(test_disk_errors),	    cmocka_unit_test(test_memfd_target),
	    cmocka_unit_test(test_no_growth),	    cmocka_unit_test(test_figures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
