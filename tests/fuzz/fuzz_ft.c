/*
 * Fuzz target: the FT secondary's checkpoint staging (ft/ckpt.h) fed records decoded from
 * arbitrary bytes.
 *
 * The input is a sequence of records: 1 byte type, u32 LE payload length, the payload
 * (a length beyond the input's end takes what is left). The type's low 7 bits are the
 * record type; with bit 7 set on a CKPT_END, its counts and state CRC are replaced by
 * those of what the stage holds, so mutated inputs reach the apply. Each record goes
 * through vmo_decode (stream 0 of 1, a guest of 16 pages: twice the target's, so the
 * stage's own range checks see pages past its end) and, when it decodes, to ft_stage_feed
 * over 8 pages of memory and two memfd disks of 8 KiB (the decoder allows 16).
 *
 * A model kept here applies the same records: during the sync at once, inside a
 * checkpoint to a pending copy that becomes the expectation only when CKPT_END returns
 * FT_FEED_APPLIED. After every feed, memory and both disks must equal the expectation
 * and the applied state the model's; after a refusal every later feed must be
 * KB_ESTATE. Any violation aborts.
 * Seeds: tests/integration/fuzz_smoke.sh writes a sync and two checkpoints.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ft/ckpt.h"
#include "lib/crc.h"
#include "lib/err.h"
#include "vmotion/wire.h"

#define PAGES	  8u
#define DECODE_PG 16u
#define DISKS	  2u
#define DISK_SIZE 8192u
#define PG	  VMO_PAGE_SIZE
#define STATE_CAP (256u << 10) /* the model's state; more fails the stage's lowered limit */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void ft__stage_limits(struct ft_stage *s, uint64_t pages, uint64_t disk, uint64_t state);

static struct ft_target target;
static uint8_t mem[PAGES * PG];
static int ready;

/* the model */
static uint8_t exp_mem[PAGES * PG], exp_disk[DISKS][DISK_SIZE];
static uint8_t pend_mem[PAGES * PG], pend_disk[DISKS][DISK_SIZE];
static uint8_t pend_state[STATE_CAP], app_state[STATE_CAP];
static size_t pend_len, app_len;
static uint64_t pend_pages, pend_disk_bytes;

static void __attribute__((noreturn)) fail(const char *what)
{
	fprintf(stderr, "fuzz_ft: %s\n", what);
	abort();
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void setup(void)
{
	target.mem = mem;
	target.pages = PAGES;
	target.vmem = NULL;
	target.nr_disks = DISKS;
	for (unsigned i = 0; i < DISKS; i++) {
		target.disk_fds[i] = memfd_create("fuzz-ft-disk", MFD_CLOEXEC);
		if (target.disk_fds[i] < 0 || ftruncate(target.disk_fds[i], DISK_SIZE) != 0)
			fail("memfd for a disk");
		target.disk_size[i] = DISK_SIZE;
	}
	ready = 1;
}

/* Memory and disks equal the expectation. */
static void check(const char *when)
{
	static uint8_t disk[DISK_SIZE];

	if (memcmp(mem, exp_mem, sizeof(mem)) != 0) {
		fprintf(stderr, "fuzz_ft: memory differs %s\n", when);
		abort();
	}
	for (unsigned i = 0; i < DISKS; i++) {
		if (pread(target.disk_fds[i], disk, DISK_SIZE, 0) != DISK_SIZE)
			fail("reading a disk back");
		if (memcmp(disk, exp_disk[i], DISK_SIZE) != 0) {
			fprintf(stderr, "fuzz_ft: disk %u differs %s\n", i, when);
			abort();
		}
	}
}

/* Applies an accepted PAGES, ZERO or DISK to m/d. */
static void model(const struct vmo_rec *r, uint8_t *m, uint8_t (*d)[DISK_SIZE])
{
	switch (r->type) {
	case VMO_PAGES:
		memcpy(m + r->u.pages.first * PG, r->u.pages.data, (size_t)r->u.pages.count * PG);
		break;
	case VMO_ZERO:
		memset(m + r->u.pages.first * PG, 0, (size_t)r->u.pages.count * PG);
		break;
	case VMO_DISK:
		memcpy(d[r->u.disk.index] + r->u.disk.offset, r->u.disk.data, r->u.disk.len);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t payload[VMO_REC_MAX];
	struct ft_stage *s;
	bool failed = false, started = false;
	uint64_t last = 0, open_n = 0;
	size_t at = 0;

	if (!ready)
		setup();
	memset(mem, 0, sizeof(mem));
	memset(exp_mem, 0, sizeof(exp_mem));
	memset(exp_disk, 0, sizeof(exp_disk));
	for (unsigned i = 0; i < DISKS; i++)
		if (pwrite(target.disk_fds[i], exp_disk[i], DISK_SIZE, 0) != DISK_SIZE)
			fail("clearing a disk");
	app_len = pend_len = 0;
	if (ft_stage_create(&target, &s) != 0)
		fail("ft_stage_create");
	ft__stage_limits(s, 64, 64 << 10, STATE_CAP);

	while (at + 5 <= size) {
		struct kb_errmsg err = {{0}};
		struct vmo_rec rec;
		uint8_t tb = data[at];
		uint32_t len = le32(data + at + 1);
		int type = tb & 0x7f, rv;

		at += 5;
		if (len > size - at)
			len = (uint32_t)(size - at);
		if (len > VMO_REC_MAX)
			len = VMO_REC_MAX;
		memcpy(payload, data + at, len);
		at += len;
		if ((tb & 0x80) && type == VMO_CKPT_END && len == 40) {
			put_le64(payload + 8, pend_pages);
			put_le64(payload + 16, pend_disk_bytes);
			put_le64(payload + 24, pend_len);
			put_le32(payload + 32, kb_crc32c(0, pend_state, pend_len));
		}
		if (vmo_decode((enum vmo_type)type, payload, len, 0, 1, DECODE_PG, &rec, &err) != 0)
			continue;
		memset(&err, 0, sizeof(err));
		rv = ft_stage_feed(s, &rec, &err);
		if (failed) {
			if (rv != KB_ESTATE)
				fail("a feed after a refusal was not KB_ESTATE");
			check("after a refusal");
			continue;
		}
		if (rv < 0) {
			if (err.msg[0] == '\0')
				fail("a refusal without a message");
			if (rv != KB_EPROTO && rv != KB_ECHECKSUM && rv != KB_ETOOBIG)
				fail("an unexpected refusal code");
			if (ft_stage_open(s))
				fail("a checkpoint still open after a refusal");
			failed = true;
			check("after a refused record");
			continue;
		}
		switch (rv) {
		case FT_FEED_MORE:
			if (rec.type == VMO_CKPT) {
				if (rec.u.ckpt != last + 1)
					fail("a CKPT taken whose number does not follow");
				started = true;
				open_n = rec.u.ckpt;
				memcpy(pend_mem, exp_mem, sizeof(mem));
				memcpy(pend_disk, exp_disk, sizeof(exp_disk));
				pend_len = 0;
				pend_pages = pend_disk_bytes = 0;
			} else if (rec.type == VMO_STATE) {
				if (!ft_stage_open(s) || pend_len + rec.u.state.len > STATE_CAP)
					fail(
					    "a STATE taken outside a checkpoint or over the limit");
				memcpy(pend_state + pend_len, rec.u.state.data, rec.u.state.len);
				pend_len += rec.u.state.len;
			} else if (rec.type == VMO_PAGES || rec.type == VMO_ZERO ||
				   rec.type == VMO_DISK) {
				if (ft_stage_open(s) && rec.type == VMO_DISK)
					pend_disk_bytes += rec.u.disk.len;
				else if (ft_stage_open(s))
					pend_pages += rec.u.pages.count;
				if (ft_stage_open(s))
					model(&rec, pend_mem, pend_disk);
				else if (started)
					fail("a sync record taken between checkpoints");
				else
					model(&rec, exp_mem, exp_disk);
			} else {
				fail("an unexpected record taken");
			}
			break;
		case FT_FEED_SYNC:
			if (rec.type != VMO_SYNC || started)
				fail("FT_FEED_SYNC for something other than a SYNC of the sync");
			break;
		case FT_FEED_APPLIED: {
			struct ft_stage_stats st;
			const uint8_t *p;
			size_t n;

			if (rec.type != VMO_CKPT_END || !started)
				fail("FT_FEED_APPLIED for something other than a CKPT_END");
			if (rec.u.ckpt_end.pages != pend_pages ||
			    rec.u.ckpt_end.disk_bytes != pend_disk_bytes ||
			    rec.u.ckpt_end.state_len != pend_len ||
			    rec.u.ckpt_end.state_crc != kb_crc32c(0, pend_state, pend_len))
				fail("applied a CKPT_END whose counts or CRC do not match");
			memcpy(exp_mem, pend_mem, sizeof(mem));
			memcpy(exp_disk, pend_disk, sizeof(exp_disk));
			memcpy(app_state, pend_state, pend_len);
			app_len = pend_len;
			p = ft_stage_state(s, &n);
			if (n != app_len || (n && memcmp(p, app_state, n) != 0))
				fail("the applied state differs");
			ft_stage_stats(s, &st);
			if (rec.u.ckpt_end.ckpt != open_n || st.applied != open_n ||
			    ft_stage_open(s))
				fail("the stats or the open flag after an apply");
			pend_pages = pend_disk_bytes = 0;
			last = open_n;
			break;
		}
		default:
			fail("an unknown feed result");
		}
		check("after an accepted record");
	}
	ft_stage_destroy(s);
	return 0;
}
