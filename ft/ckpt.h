/*
 * The FT secondary's side of the checkpoint stream (docs/ft.md): records decoded by
 * vmo_recv on an FT conn are fed here one by one. Before the first CKPT they are the
 * initial sync and go straight to guest memory and the disk copies; from CKPT to CKPT_END
 * they are staged in memory, and only a CKPT_END whose number, counts and state CRC match
 * what was staged applies the checkpoint — pages into guest memory, disk writes in order
 * into the disk copies, the state kept for the takeover. Anything malformed, out of order
 * or over the limits fails with nothing of the open checkpoint applied, and the stage
 * takes nothing more (FT is over; the last applied checkpoint stays whole).
 *
 * Single-threaded: one receiver thread feeds a stage; ft_stage_state/applied may be read
 * by another thread only while no feed runs (the secondary's lock).
 */
#ifndef FT_CKPT_H
#define FT_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "vmotion/wire.h"

#define FT_STAGE_PAGES_MAX (262144u)  /* 1 GiB of pages staged in one checkpoint */
#define FT_STAGE_DISK_MAX  (256u << 20) /* disk data bytes in one checkpoint */
#define FT_STAGE_STATE_MAX (64u << 20)  /* state bytes in one checkpoint */

struct vmm_mem;

/* Where checkpoints are applied: the secondary's guest memory and disk copies. */
struct ft_target {
	uint8_t *mem;	/* guest memory, memfd page order (docs/vm-state.md) */
	uint64_t pages; /* its size in 4 KiB pages */
	struct vmm_mem *vmem; /* the VM's memory (mem is its mapping): pages are written and
			       * cleared with vmm_mem_put/vmm_mem_zero; NULL: through mem only */
	uint32_t nr_disks;
	int disk_fds[VMO_DISK_MAX];	   /* open for writing */
	uint64_t disk_size[VMO_DISK_MAX]; /* bytes; a write must end at or before */
};

struct ft_stage;

/* Counters for status and tests. */
struct ft_stage_stats {
	uint64_t applied;	      /* the last applied checkpoint's number, 0: none yet */
	uint64_t sync_pages;	      /* pages of the initial sync written */
	uint64_t sync_disk_bytes;     /* disk bytes of the initial sync written */
	uint64_t ckpt_pages;	      /* pages applied by checkpoints, in all */
	uint64_t ckpt_disk_bytes;     /* disk bytes applied by checkpoints, in all */
	uint64_t last_pages;	      /* pages of the last applied checkpoint */
	uint64_t last_disk_bytes;     /* disk bytes of the last applied checkpoint */
	uint64_t last_state_len;      /* state bytes of the last applied checkpoint */
	uint64_t last_apply_ns;	      /* how long applying the last one took */
};

/* t is copied. 0, -ENOMEM or -EINVAL (t->pages 0, nr_disks > VMO_DISK_MAX). */
int ft_stage_create(const struct ft_target *t, struct ft_stage **out);
void ft_stage_destroy(struct ft_stage *s);

enum ft_feed {
	FT_FEED_MORE = 0,    /* taken; feed the next record */
	FT_FEED_APPLIED = 1, /* a CKPT_END applied its checkpoint: acknowledge it */
	FT_FEED_SYNC = 2,    /* a SYNC outside a checkpoint: answer SYNCED(rec->u.sync_seq) */
};

/* Feeds one record. FT_FEED_* or a negative code with err set: KB_EPROTO (out of order,
 * a number that does not follow, a page or disk write out of range, a record type the
 * secondary does not take — ABORT included: the caller handles ABORT before feeding),
 * KB_ECHECKSUM (CKPT_END's state CRC), KB_ETOOBIG (over a FT_STAGE_* limit), -ENOMEM, or
 * -errno of a disk write. After an error every later feed is KB_ESTATE. */
int ft_stage_feed(struct ft_stage *s, const struct vmo_rec *rec, struct kb_errmsg *err);

/* The VM state (without memory) of the last applied checkpoint; NULL and 0 before the
 * first. Valid until the next feed. */
const uint8_t *ft_stage_state(const struct ft_stage *s, size_t *len);
/* Whether a checkpoint is open (CKPT seen, CKPT_END not yet). */
bool ft_stage_open(const struct ft_stage *s);
void ft_stage_stats(const struct ft_stage *s, struct ft_stage_stats *st);

#endif
