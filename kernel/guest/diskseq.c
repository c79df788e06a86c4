/*
 * The disk sequence (disk_seq=1): numbered records written to the virtio disk every
 * disk_ms, continuing across runs of the VM, so a test can check that writes persist.
 *
 * On-disk format (little-endian, 512-byte sectors; docs/kguest.md):
 *   sector 0, header:  u64 magic "KGDSEQH1", u32 version 1, u32 sector size 512,
 *                      u64 last (number of the last record written, 0 = none),
 *                      u64 slots (record sectors in use), u64 runs (times the sequence
 *                      was started), zeros, u64 checksum at byte 504
 *   sector 1 + (n - 1) % slots, record n (n >= 1):
 *                      u64 magic "KGDSEQR1", u64 n, u64 run, 60 u64 fill words
 *                      (n * 0x9e3779b97f4a7c15 ^ i), u64 checksum at byte 504
 * The checksum is FNV-1a over the first 63 words. Each tick writes record last+1 and
 * then the header; after a crash between the two, the record is simply written again.
 * A header that is missing or fails its checks starts the sequence at 1.
 */
#include "kguest.h"

#define HDR_MAGIC   0x314851455344474bull /* "KGDSEQH1" */
#define REC_MAGIC   0x315251455344474bull /* "KGDSEQR1" */
#define HDR_VERSION 1
#define FILL_MULT   0x9e3779b97f4a7c15ull
#define PRINT_EVERY 10

struct hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t sector_size;
	uint64_t last;
	uint64_t slots;
	uint64_t runs;
	uint64_t zero[58];
	uint64_t csum;
};

struct rec {
	uint64_t magic;
	uint64_t seq;
	uint64_t run;
	uint64_t fill[60];
	uint64_t csum;
};

_Static_assert(sizeof(struct hdr) == KG_SECTOR, "header is one sector");
_Static_assert(sizeof(struct rec) == KG_SECTOR, "record is one sector");

static bool started, failed;
static uint64_t last, slots, run;
static struct kg_timer timer;
static struct hdr hdr __attribute__((aligned(64)));
static struct rec rec __attribute__((aligned(64)));

static uint64_t sector_csum(const void *s)
{
	return kg_fnv1a_words(KG_FNV_INIT, s, KG_SECTOR / 8 - 1);
}

static int start(void)
{
	int rc;

	if (kg_blk_capacity() < 2) {
		kg_printf("kguest: disk too small for the sequence\n");
		return KG_ENOSPC;
	}
	slots = kg_blk_capacity() - 1;
	rc = kg_blk_read(0, &hdr, 1);
	if (rc)
		return rc;
	if (hdr.magic == HDR_MAGIC && hdr.version == HDR_VERSION && hdr.csum == sector_csum(&hdr)) {
		last = hdr.last;
		run = hdr.runs + 1;
		kg_printf("kguest: disk seq header last=%lu runs=%lu\n", hdr.last, hdr.runs);
	} else {
		last = 0;
		run = 1;
		kg_printf("kguest: disk seq header empty, starting at 1\n");
	}
	return 0;
}

static int write_next(bool force_print)
{
	uint64_t n = last + 1;
	int rc;

	rec.magic = REC_MAGIC;
	rec.seq = n;
	rec.run = run;
	for (uint64_t i = 0; i < KG_ARRAY_SIZE(rec.fill); i++)
		rec.fill[i] = (n * FILL_MULT) ^ i;
	rec.csum = sector_csum(&rec);
	rc = kg_blk_write(1 + (n - 1) % slots, &rec, 1);
	if (rc)
		return rc;

	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = HDR_MAGIC;
	hdr.version = HDR_VERSION;
	hdr.sector_size = KG_SECTOR;
	hdr.last = n;
	hdr.slots = slots;
	hdr.runs = run;
	hdr.csum = sector_csum(&hdr);
	rc = kg_blk_write(0, &hdr, 1);
	if (!rc && kg_cfg.disk_flush) {
		rc = kg_blk_flush();
		if (rc == KG_ENOTSUP)
			rc = 0;
	}
	if (rc)
		return rc;
	if (force_print || n % PRINT_EVERY == 0)
		kg_printf("kguest: disk seq %lu\n", n);
	last = n;
	return 0;
}

void kg_diskseq_poll(uint64_t now)
{
	int rc;

	if (!kg_cfg.disk_seq || failed || !kg_blk_present())
		return;
	if (!started) {
		rc = start();
		if (rc) {
			kg_printf("kguest: disk seq failed to start: %d\n", rc);
			failed = true;
			return;
		}
		started = true;
		kg_timer_start(&timer, kg_cfg.disk_ms ? kg_cfg.disk_ms : 1, now);
		/* The first record after a (re)start is always printed. */
		rc = write_next(true);
	} else if (kg_timer_due(&timer, now)) {
		rc = write_next(false);
	} else {
		return;
	}
	if (rc) {
		kg_printf("kguest: disk seq write failed: %d\n", rc);
		failed = true;
	}
}

void kg_diskseq_config_changed(void)
{
	if (!kg_cfg.disk_seq) {
		started = false;
		return;
	}
	failed = false;
	if (started)
		kg_timer_start(&timer, kg_cfg.disk_ms ? kg_cfg.disk_ms : 1, kg_rdtsc());
}

uint64_t kg_diskseq_last(void)
{
	return last;
}

uint64_t kg_diskseq_next(uint64_t now)
{
	if (!kg_cfg.disk_seq || failed || !kg_blk_present())
		return UINT64_MAX;
	return started ? timer.next : now;
}
