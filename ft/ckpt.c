/*
 * The FT secondary's checkpoint staging (ft/ckpt.h, docs/ft.md "The secondary's staging").
 *
 * Happy path: the initial sync (PAGES, ZERO, DISK and SYNC before the first CKPT) goes
 * straight into guest memory and the disk copies. Then each CKPT N opens a checkpoint whose
 * records are copied into staging buffers: the page operations in arrival order (a PAGES
 * record's data in one growable byte buffer, a ZERO range as its first page and count),
 * the disk writes in arrival order (index, offset, data in another byte buffer) and the
 * state bytes. CKPT_END N checks the number, the page count, the disk byte count, the state
 * length and its CRC-32C against what was staged, and only then applies: page operations
 * in order into guest memory, disk writes in order with pwrite, and the staged state
 * becomes the applied one (the two state buffers are swapped).
 *
 * Failure: anything out of order, out of range, over a limit or not matching CKPT_END
 * discards the open checkpoint before any of it reached memory or disks, and the stage is
 * failed (KB_ESTATE from then on). A disk write error during an apply also fails the
 * stage: the copy is then no longer valid, which ends FT.
 *
 * Memory: the staging buffers grow by doubling up to the FT_STAGE_* limits and are kept
 * between checkpoints, so a steady stream of checkpoints of similar size allocates
 * nothing.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ft/ckpt.h"
#include "kernel/vmm/vmm.h"
#include "lib/crc.h"
#include "lib/heap.h"
#include "lib/time.h"

#define BYTES_MIN	(64u << 10)
#define OPS_MIN		64u

/* One page operation of a checkpoint: PAGES (data at `at` in page_data) or ZERO. */
struct page_op {
	uint64_t first;
	uint32_t count;
	bool zero;
	size_t at;
};

/* One disk write of a checkpoint: data at `at` in disk_data. */
struct disk_op {
	uint32_t index;
	uint32_t len;
	uint64_t offset;
	size_t at;
};

struct ft_stage {
	struct ft_target t;
	bool failed;
	bool started; /* the first CKPT was seen: the sync is over */
	bool open;
	uint64_t cur; /* the open checkpoint's number */
	/* limits (FT_STAGE_* unless a test lowered them) */
	uint64_t max_pages, max_disk, max_state;

	/* the open checkpoint */
	struct page_op *pops;
	size_t npops, pops_cap;
	uint8_t *page_data;
	size_t page_len, page_cap;
	uint64_t pages; /* PAGES + ZERO pages staged */
	struct disk_op *dops;
	size_t ndops, dops_cap;
	uint8_t *disk_data;
	size_t disk_len, disk_cap;
	uint8_t *state;
	size_t state_len, state_cap;

	/* the last applied checkpoint's state */
	uint8_t *applied_state;
	size_t applied_len, applied_cap;

	struct ft_stage_stats st;
};

/* For tests: lowers the FT_STAGE_* limits of one stage (0 keeps a limit). */
void ft__stage_limits(struct ft_stage *s, uint64_t pages, uint64_t disk, uint64_t state);

static const char *type_name(enum vmo_type t)
{
	static const char *const names[] = {
	    [VMO_PAGES] = "PAGES", [VMO_ZERO] = "ZERO",	  [VMO_ROUND] = "ROUND",
	    [VMO_FINAL] = "FINAL", [VMO_STATE] = "STATE", [VMO_STATE_END] = "STATE_END",
	    [VMO_READY] = "READY", [VMO_GO] = "GO",	  [VMO_RESUMED] = "RESUMED",
	    [VMO_ABORT] = "ABORT", [VMO_SYNC] = "SYNC",	  [VMO_SYNCED] = "SYNCED",
	    [VMO_DISK] = "DISK",   [VMO_CKPT] = "CKPT",	  [VMO_CKPT_END] = "CKPT_END",
	    [VMO_ACK] = "ACK",
	};

	if ((int)t >= VMO_PAGES && (int)t <= VMO_ACK)
		return names[t];
	return "unknown";
}

int ft_stage_create(const struct ft_target *t, struct ft_stage **out)
{
	struct ft_stage *s;

	*out = NULL;
	if (t == NULL || t->mem == NULL || t->pages == 0 || t->nr_disks > VMO_DISK_MAX ||
	    t->pages > UINT64_MAX / VMO_PAGE_SIZE)
		return -EINVAL;
	s = kb_calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->t = *t;
	s->max_pages = FT_STAGE_PAGES_MAX;
	s->max_disk = FT_STAGE_DISK_MAX;
	s->max_state = FT_STAGE_STATE_MAX;
	*out = s;
	return 0;
}

void ft_stage_destroy(struct ft_stage *s)
{
	if (s == NULL)
		return;
	kb_free(s->pops);
	kb_free(s->page_data);
	kb_free(s->dops);
	kb_free(s->disk_data);
	kb_free(s->state);
	kb_free(s->applied_state);
	kb_free(s);
}

void ft__stage_limits(struct ft_stage *s, uint64_t pages, uint64_t disk, uint64_t state)
{
	if (pages)
		s->max_pages = pages;
	if (disk)
		s->max_disk = disk;
	if (state)
		s->max_state = state;
}

/* Makes room for need elements of size elem in *p (capacity *cap elements), doubling from
 * min. Kept afterwards: nothing shrinks. 0 or -ENOMEM (*p unchanged). */
static int grow(void **p, size_t *cap, size_t need, size_t elem, size_t min)
{
	size_t n = *cap ? *cap : min;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = kb_realloc(*p, n * elem);
	if (q == NULL)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int no_memory(struct kb_errmsg *err, const char *what)
{
	kb_errmsg_setf(err, "ft: no memory to stage %s", what);
	return -ENOMEM;
}

/* ---- writing guest memory and disk copies ----------------------------------------------- */

static void zero_pages(const struct ft_target *t, uint64_t first, uint32_t count)
{
	if (t->vmem != NULL &&
	    vmm_mem_zero(t->vmem, first * VMO_PAGE_SIZE, (uint64_t)count * VMO_PAGE_SIZE) == 0)
		return;
	memset(t->mem + first * VMO_PAGE_SIZE, 0, (size_t)count * VMO_PAGE_SIZE);
}

/* Writes whole pages of the sync with vmm_mem_put when the target is a VM's memory (on
 * 4 KiB pages the page cache takes them without clearing a page first), else through the
 * mapping. */
static int sync_pages(const struct ft_target *t, uint64_t first, const uint8_t *data,
		      uint32_t count, struct kb_errmsg *err)
{
	size_t len = (size_t)count * VMO_PAGE_SIZE;
	int rv;

	if (t->vmem == NULL) {
		memcpy(t->mem + first * VMO_PAGE_SIZE, data, len);
		return 0;
	}
	rv = vmm_mem_put(t->vmem, first * VMO_PAGE_SIZE, data, len);
	if (rv < 0)
		kb_errmsg_setf(err, "ft: writing %u pages at page %llu: %s", count,
			       (unsigned long long)first, kb_strerror(rv));
	return rv;
}

static int disk_write(const struct ft_target *t, uint32_t index, uint64_t offset,
		      const uint8_t *data, uint32_t len, struct kb_errmsg *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		    pwrite(t->disk_fds[index], data + done, len - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rv = n < 0 ? -errno : -EIO;

			kb_errmsg_setf(err, "ft: writing %u bytes at %llu of disk %u: %s", len,
				       (unsigned long long)offset, index, kb_strerror(rv));
			return rv;
		}
		done += (size_t)n;
	}
	return 0;
}

/* ---- checks ----------------------------------------------------------------------------- */

static int check_pages(const struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint64_t first = rec->u.pages.first, count = rec->u.pages.count;

	if (count == 0 || first >= s->t.pages || count > s->t.pages - first) {
		kb_errmsg_setf(err, "ft: %s pages %llu..+%llu beyond the guest's %llu pages",
			       type_name(rec->type), (unsigned long long)first,
			       (unsigned long long)count, (unsigned long long)s->t.pages);
		return KB_EPROTO;
	}
	if (rec->type == VMO_PAGES && rec->u.pages.data == NULL) {
		kb_errmsg_setf(err, "ft: PAGES without data");
		return KB_EPROTO;
	}
	return 0;
}

static int check_disk(const struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint32_t i = rec->u.disk.index, len = rec->u.disk.len;
	uint64_t off = rec->u.disk.offset;

	if (i >= s->t.nr_disks) {
		kb_errmsg_setf(err, "ft: DISK for disk %u, the secondary has %u", i, s->t.nr_disks);
		return KB_EPROTO;
	}
	if (len == 0 || rec->u.disk.data == NULL || off > s->t.disk_size[i] ||
	    len > s->t.disk_size[i] - off) {
		kb_errmsg_setf(
		    err, "ft: DISK of %u bytes at %llu past the end of disk %u (%llu bytes)", len,
		    (unsigned long long)off, i, (unsigned long long)s->t.disk_size[i]);
		return KB_EPROTO;
	}
	return 0;
}

/* ---- the sync --------------------------------------------------------------------------- */

static int sync_record(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	int rv;

	if (s->started) {
		kb_errmsg_setf(err, "ft: %s between checkpoints (after checkpoint %llu)",
			       type_name(rec->type), (unsigned long long)s->st.applied);
		return KB_EPROTO;
	}
	switch (rec->type) {
	case VMO_PAGES:
		rv = sync_pages(&s->t, rec->u.pages.first, rec->u.pages.data, rec->u.pages.count,
				err);
		if (rv < 0)
			return rv;
		s->st.sync_pages += rec->u.pages.count;
		return FT_FEED_MORE;
	case VMO_ZERO:
		zero_pages(&s->t, rec->u.pages.first, rec->u.pages.count);
		s->st.sync_pages += rec->u.pages.count;
		return FT_FEED_MORE;
	case VMO_DISK:
		rv = disk_write(&s->t, rec->u.disk.index, rec->u.disk.offset, rec->u.disk.data,
				rec->u.disk.len, err);
		if (rv < 0)
			return rv;
		s->st.sync_disk_bytes += rec->u.disk.len;
		return FT_FEED_MORE;
	default:
		return FT_FEED_SYNC;
	}
}

/* ---- staging ---------------------------------------------------------------------------- */

static int stage_pages(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint32_t count = rec->u.pages.count;
	size_t bytes = rec->type == VMO_PAGES ? (size_t)count * VMO_PAGE_SIZE : 0;
	struct page_op *op;

	if (s->pages + count > s->max_pages) {
		kb_errmsg_setf(err, "ft: checkpoint %llu stages more than %llu pages",
			       (unsigned long long)s->cur, (unsigned long long)s->max_pages);
		return KB_ETOOBIG;
	}
	if (grow((void **)&s->pops, &s->pops_cap, s->npops + 1, sizeof(*s->pops), OPS_MIN))
		return no_memory(err, "page operations");
	if (bytes && grow((void **)&s->page_data, &s->page_cap, s->page_len + bytes, 1, BYTES_MIN))
		return no_memory(err, "pages");
	op = &s->pops[s->npops++];
	op->first = rec->u.pages.first;
	op->count = count;
	op->zero = rec->type == VMO_ZERO;
	op->at = s->page_len;
	if (bytes) {
		memcpy(s->page_data + s->page_len, rec->u.pages.data, bytes);
		s->page_len += bytes;
	}
	s->pages += count;
	return FT_FEED_MORE;
}

static int stage_disk(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint32_t len = rec->u.disk.len;
	struct disk_op *op;

	if (s->disk_len + len > s->max_disk) {
		kb_errmsg_setf(err, "ft: checkpoint %llu stages more than %llu disk bytes",
			       (unsigned long long)s->cur, (unsigned long long)s->max_disk);
		return KB_ETOOBIG;
	}
	if (grow((void **)&s->dops, &s->dops_cap, s->ndops + 1, sizeof(*s->dops), OPS_MIN))
		return no_memory(err, "disk writes");
	if (grow((void **)&s->disk_data, &s->disk_cap, s->disk_len + len, 1, BYTES_MIN))
		return no_memory(err, "disk data");
	op = &s->dops[s->ndops++];
	op->index = rec->u.disk.index;
	op->offset = rec->u.disk.offset;
	op->len = len;
	op->at = s->disk_len;
	memcpy(s->disk_data + s->disk_len, rec->u.disk.data, len);
	s->disk_len += len;
	return FT_FEED_MORE;
}

static int stage_state(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint32_t len = rec->u.state.len;

	if (!s->open) {
		kb_errmsg_setf(err, "ft: STATE outside a checkpoint");
		return KB_EPROTO;
	}
	if (len == 0 || rec->u.state.data == NULL) {
		kb_errmsg_setf(err, "ft: an empty STATE record");
		return KB_EPROTO;
	}
	if (s->state_len + len > s->max_state) {
		kb_errmsg_setf(err, "ft: checkpoint %llu stages more than %llu state bytes",
			       (unsigned long long)s->cur, (unsigned long long)s->max_state);
		return KB_ETOOBIG;
	}
	if (grow((void **)&s->state, &s->state_cap, s->state_len + len, 1, BYTES_MIN))
		return no_memory(err, "the state");
	memcpy(s->state + s->state_len, rec->u.state.data, len);
	s->state_len += len;
	return FT_FEED_MORE;
}

static void discard(struct ft_stage *s)
{
	s->open = false;
	s->npops = 0;
	s->page_len = 0;
	s->pages = 0;
	s->ndops = 0;
	s->disk_len = 0;
	s->state_len = 0;
}

static int ckpt_begin(struct ft_stage *s, uint64_t n, struct kb_errmsg *err)
{
	if (s->open) {
		kb_errmsg_setf(err, "ft: CKPT %llu inside checkpoint %llu", (unsigned long long)n,
			       (unsigned long long)s->cur);
		return KB_EPROTO;
	}
	if (n != s->st.applied + 1) {
		kb_errmsg_setf(err, "ft: CKPT %llu does not follow checkpoint %llu",
			       (unsigned long long)n, (unsigned long long)s->st.applied);
		return KB_EPROTO;
	}
	discard(s);
	s->open = true;
	s->started = true;
	s->cur = n;
	return FT_FEED_MORE;
}

/* Checks CKPT_END against what was staged, then applies. */
static int ckpt_end(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	uint64_t t0 = kb_now_ns();
	uint32_t crc;
	uint8_t *sw;
	size_t swcap;
	int rv;

	if (!s->open) {
		kb_errmsg_setf(err, "ft: CKPT_END %llu without CKPT",
			       (unsigned long long)rec->u.ckpt_end.ckpt);
		return KB_EPROTO;
	}
	if (rec->u.ckpt_end.ckpt != s->cur) {
		kb_errmsg_setf(err, "ft: CKPT_END %llu for open checkpoint %llu",
			       (unsigned long long)rec->u.ckpt_end.ckpt,
			       (unsigned long long)s->cur);
		return KB_EPROTO;
	}
	if (rec->u.ckpt_end.pages != s->pages) {
		kb_errmsg_setf(err, "ft: checkpoint %llu: CKPT_END counts %llu pages, %llu staged",
			       (unsigned long long)s->cur,
			       (unsigned long long)rec->u.ckpt_end.pages,
			       (unsigned long long)s->pages);
		return KB_EPROTO;
	}
	if (rec->u.ckpt_end.disk_bytes != s->disk_len) {
		kb_errmsg_setf(err,
			       "ft: checkpoint %llu: CKPT_END counts %llu disk bytes, %zu staged",
			       (unsigned long long)s->cur,
			       (unsigned long long)rec->u.ckpt_end.disk_bytes, s->disk_len);
		return KB_EPROTO;
	}
	if (rec->u.ckpt_end.state_len != s->state_len) {
		kb_errmsg_setf(err,
			       "ft: checkpoint %llu: CKPT_END counts %llu state bytes, %zu staged",
			       (unsigned long long)s->cur,
			       (unsigned long long)rec->u.ckpt_end.state_len, s->state_len);
		return KB_EPROTO;
	}
	crc = kb_crc32c(0, s->state, s->state_len);
	if (crc != rec->u.ckpt_end.state_crc) {
		kb_errmsg_setf(err, "ft: checkpoint %llu: state CRC %08x, CKPT_END says %08x",
			       (unsigned long long)s->cur, crc, rec->u.ckpt_end.state_crc);
		return KB_ECHECKSUM;
	}

	/* apply: nothing below depends on the input any more */
	for (size_t i = 0; i < s->npops; i++) {
		const struct page_op *op = &s->pops[i];

		if (op->zero)
			zero_pages(&s->t, op->first, op->count);
		else
			memcpy(s->t.mem + op->first * VMO_PAGE_SIZE, s->page_data + op->at,
			       (size_t)op->count * VMO_PAGE_SIZE);
	}
	for (size_t i = 0; i < s->ndops; i++) {
		const struct disk_op *op = &s->dops[i];

		rv = disk_write(&s->t, op->index, op->offset, s->disk_data + op->at, op->len, err);
		if (rv < 0) {
			kb_errmsg_wrapf(err, "applying checkpoint %llu",
					(unsigned long long)s->cur);
			return rv;
		}
	}
	sw = s->applied_state;
	swcap = s->applied_cap;
	s->applied_state = s->state;
	s->applied_cap = s->state_cap;
	s->applied_len = s->state_len;
	s->state = sw;
	s->state_cap = swcap;

	s->st.applied = s->cur;
	s->st.ckpt_pages += s->pages;
	s->st.ckpt_disk_bytes += s->disk_len;
	s->st.last_pages = s->pages;
	s->st.last_disk_bytes = s->disk_len;
	s->st.last_state_len = s->applied_len;
	discard(s);
	s->st.last_apply_ns = kb_now_ns() - t0;
	return FT_FEED_APPLIED;
}

/* ---- feeding ---------------------------------------------------------------------------- */

static int feed(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	int rv;

	switch (rec->type) {
	case VMO_PAGES:
	case VMO_ZERO:
		rv = check_pages(s, rec, err);
		if (rv < 0)
			return rv;
		return s->open ? stage_pages(s, rec, err) : sync_record(s, rec, err);
	case VMO_DISK:
		rv = check_disk(s, rec, err);
		if (rv < 0)
			return rv;
		return s->open ? stage_disk(s, rec, err) : sync_record(s, rec, err);
	case VMO_STATE:
		return stage_state(s, rec, err);
	case VMO_SYNC:
		if (s->open) {
			kb_errmsg_setf(err, "ft: SYNC inside checkpoint %llu",
				       (unsigned long long)s->cur);
			return KB_EPROTO;
		}
		return sync_record(s, rec, err);
	case VMO_CKPT:
		return ckpt_begin(s, rec->u.ckpt, err);
	case VMO_CKPT_END:
		return ckpt_end(s, rec, err);
	default:
		kb_errmsg_setf(err, "ft: a %s record (type %d) is not for the secondary's stage",
			       type_name(rec->type), (int)rec->type);
		return KB_EPROTO;
	}
}

int ft_stage_feed(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err)
{
	int rv;

	if (s->failed) {
		kb_errmsg_setf(err, "ft: the stage failed earlier (last applied checkpoint %llu)",
			       (unsigned long long)s->st.applied);
		return KB_ESTATE;
	}
	rv = feed(s, rec, err);
	if (rv < 0) {
		s->failed = true;
		discard(s);
	}
	return rv;
}

const uint8_t *ft_stage_state(const struct ft_stage *s, size_t *len)
{
	if (s->st.applied == 0) {
		*len = 0;
		return NULL;
	}
	*len = s->applied_len;
	return s->applied_state;
}

bool ft_stage_open(const struct ft_stage *s)
{
	return s->open;
}

void ft_stage_stats(const struct ft_stage *s, struct ft_stage_stats *st)
{
	*st = s->st;
}
