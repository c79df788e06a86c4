/*
 * virtio-blk request handling: the requests of the one virtqueue, done synchronously on
 * the vCPU thread that notified, with preadv/pwritev on the image.
 *
 * A request is a chain: a 16-byte readable header (type, reserved, sector), readable data
 * (OUT), writable data (IN, GET_ID) and a final writable status byte. Requests that do
 * not fit the device (misaligned length, past the end of the disk, write to a read-only
 * disk, unknown type, short header) complete with VIRTIO_BLK_S_IOERR or _UNSUPP; a chain
 * without room for the status byte is returned unused (length 0); a malformed ring or
 * chain sets DEVICE_NEEDS_RESET. Data read from the image into guest memory is marked
 * dirty.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kernel/vmm/dev/virtio/blk/blk.h"

/* Reads or writes a whole iovec array at off. A read past the end of the image returns
 * zeros (the image shrank under us). 0 or -errno. */
static int rw_full(int fd, bool write, struct iovec *iov, int cnt, off_t off)
{
	while (cnt > 0) {
		ssize_t n = write ? pwritev(fd, iov, cnt, off) : preadv(fd, iov, cnt, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (write)
				return -EIO;
			for (int i = 0; i < cnt; i++)
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			return 0;
		}
		off += n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static bool in_disk(const struct vmm_virtio_blk *b, uint64_t sector, uint64_t len)
{
	return len % VIRTIO_BLK_SECTOR == 0 && sector <= b->capacity &&
	       len / VIRTIO_BLK_SECTOR <= b->capacity - sector;
}

/* Does one request; returns its status and the bytes written before the status byte. */
static uint8_t do_request(struct vmm_virtio_blk *b, const struct vmm_vq_chain *c, uint32_t *written)
{
	struct vmm_virtio *v = &b->v;
	uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
	uint64_t in_len = c->wr_len - 1, sector;
	uint32_t type;
	int n, rv;

	*written = 0;
	if (vmm__vq_read(c, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	memcpy(&type, &hdr[0], 4);
	memcpy(&sector, &hdr[8], 8);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (!in_disk(b, sector, in_len))
			return VIRTIO_BLK_S_IOERR;
		n = vmm__vq_iov(c, true, 0, in_len, b->iov, VMM_VQ_MAX_SEGS);
		if (n < 0)
			return VIRTIO_BLK_S_IOERR;
		rv = rw_full(b->fd, false, b->iov, n, (off_t)(sector * VIRTIO_BLK_SECTOR));
		/* Whatever happened, the buffers may have been written. */
		vmm__vq_dirty(c, v->mem, 0, in_len);
		if (rv < 0)
			return VIRTIO_BLK_S_IOERR;
		*written = (uint32_t)in_len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT: {
		uint64_t len = c->rd_len - VIRTIO_BLK_HDR_SIZE;
		if (b->readonly || !in_disk(b, sector, len))
			return VIRTIO_BLK_S_IOERR;
		n = vmm__vq_iov(c, false, VIRTIO_BLK_HDR_SIZE, len, b->iov, VMM_VQ_MAX_SEGS);
		if (n < 0)
			return VIRTIO_BLK_S_IOERR;
		/* before the write: rw_full advances the iovec on a short write */
		const struct vmm_out_hook *h =
		    __atomic_load_n(&v->vm->out_hook, __ATOMIC_ACQUIRE);
		if (h != NULL && h->blk_write != NULL)
			h->blk_write(h->arg, b->index, sector * VIRTIO_BLK_SECTOR, b->iov, n);
		rv = rw_full(b->fd, true, b->iov, n, (off_t)(sector * VIRTIO_BLK_SECTOR));
		return rv < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (!b->readonly && fdatasync(b->fd) < 0)
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t len = in_len < VIRTIO_BLK_ID_BYTES ? in_len : VIRTIO_BLK_ID_BYTES;
		*written = (uint32_t)vmm__vq_write(c, v->mem, 0, b->id, len);
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

void vmm__blk_notify(struct vmm_virtio *v, unsigned q)
{
	struct vmm_virtio_blk *b = kb_container_of(v, struct vmm_virtio_blk, v);
	struct vmm_vq_chain *c = &b->chain;
	struct vmm_vq *vq = &v->vq[q];

	/* At most one queue's worth per notification: a guest that keeps adding requests
	 * from another vCPU does not hold this one forever, and notifies again. */
	for (unsigned i = 0; i < vq->size; i++) {
		uint32_t written;
		uint8_t status;
		int rv = vmm__virtio_pop(v, q, c);

		if (rv == 0)
			break;
		if (rv < 0) {
			vmm__virtio_fail(v, "queue %u: malformed descriptor chain", q);
			break;
		}
		b->nr_requests++;
		if (c->wr_len == 0) {
			b->nr_errors++;
			vmm__vq_push(vq, v->mem, c->head, 0); /* no room for a status byte */
			continue;
		}
		status = do_request(b, c, &written);
		if (status != VIRTIO_BLK_S_OK)
			b->nr_errors++;
		vmm__vq_write(c, v->mem, c->wr_len - 1, &status, 1);
		vmm__vq_push(vq, v->mem, c->head, written + 1);
	}
	vmm__virtio_signal(v, q);
}
