/*
 * Split virtqueues (virtio 1.x, section 2.7) as seen from the device. Internal to the
 * virtio devices of kernel/vmm/dev/virtio.
 *
 * All of a queue's state is guarded by its device's mutex. Rings live in guest memory
 * and the guest may change them at any time: every index and descriptor is read once,
 * then checked, and nothing the guest wrote is trusted twice.
 */
#ifndef VMM_DEV_VIRTIO_QUEUE_H
#define VMM_DEV_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "kernel/vmm/vmm.h"

#define VMM_VQ_MAX_SIZE	 32768 /* the split ring's limit */
#define VMM_VQ_MAX_SEGS	 512   /* buffers in one chain, indirect ones included */
#define VMM_VQ_NO_VECTOR 0xffff

#define VMM_VRING_DESC_F_NEXT	       1
#define VMM_VRING_DESC_F_WRITE	       2
#define VMM_VRING_DESC_F_INDIRECT      4
#define VMM_VRING_AVAIL_F_NO_INTERRUPT 1

/* Ring layouts in guest memory (little-endian, as is the host). */
struct vmm_vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vmm_vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct vmm_vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vmm_vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vmm_vring_used_elem ring[];
};

struct vmm_vq {
	uint16_t max_size; /* what the device offers */
	uint16_t size;	   /* what the driver chose (power of two <= max_size) */
	bool enabled;
	uint16_t msix_vector;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail; /* next avail ring entry the device takes */
	uint16_t used_idx;   /* the device's copy of used->idx */
	unsigned pushed;     /* used entries since the last interrupt decision */
	/* host views of the rings, set while enabled */
	struct vmm_vring_desc *desc;
	struct vmm_vring_avail *avail;
	struct vmm_vring_used *used;
};

/* One segment of a chain: guest buffer [gpa, gpa+len) mapped at hva. */
struct vmm_vq_seg {
	uint8_t *hva;
	uint64_t gpa;
	uint32_t len;
};

/* A descriptor chain taken from the avail ring: readable (driver-to-device) segments
 * first, then writable ones. Each kind is read or written as one byte stream. */
struct vmm_vq_chain {
	uint16_t head;
	unsigned nr_rd, nr_wr;
	uint64_t rd_len, wr_len;
	struct vmm_vq_seg seg[VMM_VQ_MAX_SEGS];
};

/* Power-on state: size = max_size, disabled, no vector, no addresses. */
void vmm__vq_reset(struct vmm_vq *q, uint16_t max_size);

/* Checks what enabling needs: size a power of two <= max_size, rings aligned (16, 2, 4)
 * and wholly inside guest RAM. 0 or KB_EGUEST. */
int vmm__vq_check(const struct vmm_vq *q, struct vmm_mem *mem);

/* vmm__vq_check, then maps the rings and marks the queue enabled. Indices are kept (0
 * after a reset; the saved values after a restore). 0 or KB_EGUEST. */
int vmm__vq_enable(struct vmm_vq *q, struct vmm_mem *mem);

/* True when the driver has made chains available that the device has not taken. A ring
 * whose avail index is more than size entries ahead is reported as malformed by
 * vmm__vq_pop, so this returns true for it too. */
bool vmm__vq_has_avail(const struct vmm_vq *q);

/*
 * Takes the next available chain into c. Returns 1, 0 when none is available, or
 * KB_EGUEST for a malformed ring or chain: a head or next index out of range, a loop or a
 * chain longer than the queue (or VMM_VQ_MAX_SEGS), a buffer not wholly in guest RAM, a
 * readable buffer after a writable one, or an indirect descriptor that is not allowed
 * (indirect false, nested, combined with NEXT, or a table of bad size). After KB_EGUEST
 * the chain is consumed; the device should stop using the queue (DEVICE_NEEDS_RESET).
 */
int vmm__vq_pop(struct vmm_vq *q, struct vmm_mem *mem, bool indirect, struct vmm_vq_chain *c);

/* Gives back the chain just popped, untouched, so the next pop returns it again. */
void vmm__vq_unpop(struct vmm_vq *q);

/* Returns chain head to the driver with len bytes written, marking the used ring entry
 * and index dirty. */
void vmm__vq_push(struct vmm_vq *q, struct vmm_mem *mem, uint16_t head, uint32_t len);

/* After pushes: whether the driver wants a used-buffer notification (it has not set
 * VRING_AVAIL_F_NO_INTERRUPT). Resets the push count; false when nothing was pushed. */
bool vmm__vq_need_signal(struct vmm_vq *q);

/* Copies up to len bytes from offset off of the chain's readable stream into buf.
 * Returns the bytes copied (fewer at the end of the stream). */
uint64_t vmm__vq_read(const struct vmm_vq_chain *c, uint64_t off, void *buf, uint64_t len);

/* Copies up to len bytes of buf to offset off of the writable stream and marks them
 * dirty. Returns the bytes copied. */
uint64_t vmm__vq_write(const struct vmm_vq_chain *c, struct vmm_mem *mem, uint64_t off,
		       const void *buf, uint64_t len);

/* Describes [off, off+len) of the readable (writable = false) or writable stream as at
 * most max iovecs. Returns the number used, or -1 when the range does not fit in max
 * entries or passes the end of the stream. */
int vmm__vq_iov(const struct vmm_vq_chain *c, bool writable, uint64_t off, uint64_t len,
		struct iovec *iov, int max);

/* Marks [off, off+len) of the writable stream dirty (after writing it through iovecs). */
void vmm__vq_dirty(const struct vmm_vq_chain *c, struct vmm_mem *mem, uint64_t off, uint64_t len);

#endif
