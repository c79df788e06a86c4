/*
 * virtio-blk: shared by the files of kernel/vmm/dev/virtio/blk only.
 */
#ifndef VMM_DEV_VIRTIO_BLK_H
#define VMM_DEV_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "kernel/vmm/dev/virtio/transport.h"

#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO	     (1ull << 5)
#define VIRTIO_BLK_F_FLUSH   (1ull << 9)

#define VIRTIO_BLK_SECTOR     512
#define VIRTIO_BLK_ID_BYTES   20
#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_SEG_MAX    (VIRTIO_BLK_QUEUE_SIZE - 2)
#define VIRTIO_BLK_CFG_SIZE   0x18 /* capacity, size_max, seg_max, geometry, blk_size */
#define VIRTIO_BLK_HDR_SIZE   16   /* le32 type, le32 reserved, le64 sector */

struct vmm_virtio_blk {
	struct vmm_virtio v; /* v.lock guards everything below but the constants */
	int fd;
	bool readonly;
	uint32_t index;	   /* the instance: virtio-blk0, 1, ... */
	uint64_t capacity; /* 512-byte sectors */
	char id[VIRTIO_BLK_ID_BYTES];
	char path[256];
	uint64_t nr_requests, nr_errors;
	struct vmm_vq_chain chain;
	struct iovec iov[VMM_VQ_MAX_SEGS];
};

/* request.c: runs every available request of queue q. Lock held; vCPU thread. */
void vmm__blk_notify(struct vmm_virtio *v, unsigned q);

/* state.c */
extern const struct vmm_dev_ops vmm__blk_dev_ops;

#endif
