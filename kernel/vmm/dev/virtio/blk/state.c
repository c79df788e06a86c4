/*
 * Saved state of a virtio-blk device, and its reset and destroy.
 *
 * Format (little-endian), version 1:
 *
 *   u32 magic     "VBLK" (0x4b4c4256)
 *   u16 version   1
 *   u16 reserved  0
 *   transport     the virtio transport state (kernel/vmm/dev/virtio/state.c)
 *   u64 capacity  disk size in 512-byte sectors
 *   u8  readonly  0 or 1
 *
 * Requests complete before the notifying vCPU returns, so nothing is in flight at a save.
 * Restore refuses a record whose disk differs in size or writability from this device's
 * (the guest has both cached), along with anything vmm__virtio_parse refuses, and changes
 * nothing then. A restored device is live at once: it only acts on notifications.
 */
#include <errno.h>
#include <unistd.h>

#include "kernel/vmm/dev/virtio/blk/blk.h"
#include "lib/heap.h"

#define BLK_STATE_MAGIC	  0x4b4c4256u
#define BLK_STATE_VERSION 1

static int blk_save(void *opaque, struct kb_buf *out)
{
	struct vmm_virtio_blk *b = opaque;
	struct kb_buf rec;
	int rv = 0;

	kb_buf_init(&rec, 0);
	rv |= kb_buf_put_u32(&rec, BLK_STATE_MAGIC);
	rv |= kb_buf_put_u16(&rec, BLK_STATE_VERSION);
	rv |= kb_buf_put_u16(&rec, 0);
	if (rv == 0) {
		pthread_mutex_lock(&b->v.lock);
		rv = vmm__virtio_save(&b->v, &rec);
		pthread_mutex_unlock(&b->v.lock);
	}
	rv |= kb_buf_put_u64(&rec, b->capacity);
	rv |= kb_buf_put_u8(&rec, b->readonly);
	rv = rv != 0 ? -ENOMEM : kb_buf_append(out, rec.data, rec.len);
	kb_buf_close(&rec);
	return rv;
}

static int blk_restore(void *opaque, struct kb_reader *in)
{
	struct vmm_virtio_blk *b = opaque;
	struct vmm_virtio_state *st;
	uint32_t magic = kb_rd_u32(in);
	uint16_t version = kb_rd_u16(in), reserved = kb_rd_u16(in);
	uint64_t capacity;
	uint8_t readonly;
	int rv;

	if (in->err)
		return in->err;
	if (magic != BLK_STATE_MAGIC || reserved != 0)
		return KB_EPROTO;
	if (version != BLK_STATE_VERSION)
		return KB_EVERSION;
	st = kb_malloc(sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	rv = vmm__virtio_parse(&b->v, in, st);
	capacity = kb_rd_u64(in);
	readonly = kb_rd_u8(in);
	if (rv == 0 && in->err)
		rv = in->err;
	if (rv == 0 && (capacity != b->capacity || readonly != b->readonly)) {
		kb_log(b->v.log, KB_LOG_ERROR,
		       "%s restore: saved disk has %llu sectors%s, this one %llu%s", b->v.name,
		       (unsigned long long)capacity, readonly ? " (read-only)" : "",
		       (unsigned long long)b->capacity, b->readonly ? " (read-only)" : "");
		rv = KB_EPROTO;
	}
	if (rv == 0) {
		pthread_mutex_lock(&b->v.lock);
		vmm__virtio_apply(&b->v, st);
		pthread_mutex_unlock(&b->v.lock);
	}
	kb_free(st);
	return rv;
}

static void blk_reset(void *opaque)
{
	struct vmm_virtio_blk *b = opaque;

	pthread_mutex_lock(&b->v.lock);
	vmm__virtio_reset(&b->v);
	pthread_mutex_unlock(&b->v.lock);
}

static void blk_destroy(void *opaque)
{
	struct vmm_virtio_blk *b = opaque;

	if (b->fd >= 0)
		close(b->fd);
	vmm__virtio_close(&b->v);
	kb_free(b);
}

const struct vmm_dev_ops vmm__blk_dev_ops = {
    .name = "virtio-blk",
    .save = blk_save,
    .restore = blk_restore,
    .reset = blk_reset,
    .destroy = blk_destroy,
};
