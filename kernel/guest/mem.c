/*
 * Working memory and the memory workloads. Working memory is all RAM after the image: from
 * image_end to the top of low RAM, then the RAM above 4 GiB; an offset into it maps to an
 * address through those two ranges. The working set is its first
 * max(dirty_ws_mib, fill_mib) MiB.
 *
 *  - fill (fill_mib): writes every 8-byte word of the first fill_mib MiB once, with the
 *    pattern address ^ FILL_PATTERN, so all of it is touched and nonzero.
 *  - dirty (dirty_mib_s over dirty_ws_mib): writes one word (an increasing generation
 *    number) at the start of each 4 KiB page in turn, cycling through the set, paced by
 *    the TSC; a backlog (after a pause or a migration) is capped at BACKLOG_MS.
 *  - checksum: 64-bit FNV-1a over the little-endian words of a range (lib.c), reported as
 *    "csum <hex>" to the agent and on the console.
 *
 * Fill and checksum run as jobs in slices of at most SLICE_MS per poll, so the heartbeat
 * and the agent keep going while gigabytes are touched; a checksum waits for a running
 * fill to finish.
 */
#include "kguest.h"

#define FILL_PATTERN	0x6b67756573740000ull /* "\0\0tseugk" */
#define CHUNK		(256 * 1024ull)
#define SLICE_MS	2
#define BACKLOG_MS	50
#define DIRTY_MAX	4096	    /* pages per poll */
#define DIRTY_MAX_MIB_S (1ul << 20) /* keeps the pacing arithmetic far from overflow */

extern char __image_end[];

struct range {
	uint64_t base;
	uint64_t len;
};

struct job {
	bool active;
	uint64_t pos, end; /* offsets in working memory */
	uint64_t start_tsc;
	uint64_t hash;
};

static struct range ranges[2];
static uint64_t total;
static struct job fill, csum;
static unsigned csum_waiters; /* requests answered when the running checksum ends */

static uint64_t dirty_rate; /* pages per second */
static uint64_t dirty_pages;
static uint64_t dirty_cursor, dirty_acc, dirty_last, dirty_gen;
static uint64_t dirtied;

/* The address of offset off, and how many bytes from there are contiguous. */
static uint64_t *at(uint64_t off, uint64_t *contig)
{
	if (off < ranges[0].len) {
		*contig = ranges[0].len - off;
		return (uint64_t *)(uintptr_t)(ranges[0].base + off);
	}
	off -= ranges[0].len;
	*contig = ranges[1].len - off;
	return (uint64_t *)(uintptr_t)(ranges[1].base + off);
}

static uint64_t mib_bytes(uint64_t mib)
{
	return mib > total / KG_MIB ? total : mib * KG_MIB;
}

static void job_start(struct job *j, uint64_t bytes)
{
	j->active = true;
	j->pos = 0;
	j->end = bytes & ~7ull;
	j->start_tsc = kg_rdtsc();
	j->hash = KG_FNV_INIT;
}

void kg_mem_init(const struct kguest_boot_info *bi)
{
	uint64_t base = KG_MAX(bi->image_end, (uintptr_t)__image_end);

	base = (base + KG_PAGE_SIZE - 1) & ~(KG_PAGE_SIZE - 1);
	ranges[0].base = base;
	ranges[0].len = bi->mem_low > base ? (bi->mem_low - base) & ~(KG_PAGE_SIZE - 1) : 0;
	ranges[1].base = KGUEST_HIGH_RAM;
	ranges[1].len = bi->mem_high & ~(KG_PAGE_SIZE - 1);
	total = ranges[0].len + ranges[1].len;
	kg_mem_config_changed();
	kg_mem_fill_changed();
}

void kg_mem_config_changed(void)
{
	uint64_t ws = mib_bytes(kg_cfg.dirty_ws_mib);

	if (kg_cfg.dirty_ws_mib > total / KG_MIB || kg_cfg.fill_mib > total / KG_MIB)
		kg_printf("kguest: working memory is only %lu MiB\n", total / KG_MIB);
	if (ws / KG_PAGE_SIZE != dirty_pages)
		dirty_cursor = 0;
	dirty_pages = ws / KG_PAGE_SIZE;
	dirty_rate = KG_MIN(kg_cfg.dirty_mib_s, DIRTY_MAX_MIB_S) * (KG_MIB / KG_PAGE_SIZE);
	dirty_acc = 0;
	dirty_last = kg_rdtsc();
}

void kg_mem_fill_changed(void)
{
	if (kg_cfg.fill_mib)
		job_start(&fill, mib_bytes(kg_cfg.fill_mib));
}

void kg_mem_csum_start(uint64_t mib)
{
	if (!mib)
		mib = KG_MAX(kg_cfg.dirty_ws_mib, kg_cfg.fill_mib);
	/* A request for another range restarts the job; every waiter gets its result. */
	if (!csum.active || csum.end != (mib_bytes(mib) & ~7ull))
		job_start(&csum, mib_bytes(mib));
	csum_waiters++;
}

uint64_t kg_mem_dirtied(void)
{
	return dirtied;
}

static void fill_chunk(uint64_t *p, uint64_t words)
{
	uint64_t a = (uintptr_t)p;

	for (uint64_t i = 0; i < words; i++)
		p[i] = (a + i * 8) ^ FILL_PATTERN;
}

/* Advances a job by up to SLICE_MS; returns true when it has just finished. */
static bool job_run(struct job *j, bool is_fill)
{
	uint64_t stop = kg_rdtsc() + kg_ms_to_tsc(SLICE_MS);

	while (j->pos < j->end) {
		uint64_t contig;
		uint64_t *p = at(j->pos, &contig);
		uint64_t n = KG_MIN(KG_MIN(contig, CHUNK), j->end - j->pos);
		if (is_fill)
			fill_chunk(p, n / 8);
		else
			j->hash = kg_fnv1a_words(j->hash, p, n / 8);
		j->pos += n;
		if (kg_rdtsc() > stop)
			break;
	}
	if (j->pos < j->end)
		return false;
	j->active = false;
	return true;
}

static void dirty_run(uint64_t now)
{
	uint64_t hz = kg_tsc_khz * 1000;
	uint64_t elapsed = KG_MIN(now - dirty_last, hz / 10);

	dirty_last = now;
	if (!dirty_rate || !dirty_pages)
		return;
	dirty_acc = KG_MIN(dirty_acc + elapsed * dirty_rate, dirty_rate * (hz / 1000) * BACKLOG_MS);
	uint64_t n = KG_MIN(dirty_acc / hz, DIRTY_MAX);
	dirty_acc -= n * hz;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t contig;
		volatile uint64_t *p = at(dirty_cursor * KG_PAGE_SIZE, &contig);
		*p = ++dirty_gen;
		if (++dirty_cursor == dirty_pages)
			dirty_cursor = 0;
	}
	dirtied += n;
}

void kg_mem_poll(uint64_t now)
{
	dirty_run(now);
	if (fill.active && job_run(&fill, true)) {
		uint64_t ms = kg_tsc_to_ms(kg_rdtsc() - fill.start_tsc);
		kg_printf("kguest: fill done %lu MiB in %lu ms\n", fill.end / KG_MIB, ms);
		kg_agent_printf("fill %lu %lu", fill.end / KG_MIB, ms);
	} else if (!fill.active && csum.active && job_run(&csum, false)) {
		kg_printf("kguest: csum %016lx over %lu MiB in %lu ms\n", csum.hash,
			  csum.end / KG_MIB, kg_tsc_to_ms(kg_rdtsc() - csum.start_tsc));
		for (; csum_waiters; csum_waiters--)
			kg_agent_printf("csum %016lx", csum.hash);
	}
}

uint64_t kg_mem_next(uint64_t now)
{
	uint64_t hz = kg_tsc_khz * 1000;

	if (fill.active || csum.active)
		return now;
	if (!dirty_rate || !dirty_pages)
		return UINT64_MAX;
	/* dirty_acc grows by dirty_rate per tick and a page is due when it reaches hz; pages
	 * are dirtied in batches of at least a millisecond, so sleeps stay long. */
	uint64_t page = dirty_acc >= hz ? 0 : (hz - dirty_acc + dirty_rate - 1) / dirty_rate;
	return dirty_last + KG_MAX(page, kg_ms_to_tsc(1));
}
