/*
 * virtio-blk device: creation from a raw image, its configuration space and its place on
 * the PCI bus. Requests are in request.c, saved state in state.c.
 *
 * Offered: VERSION_1, INDIRECT_DESC, SEG_MAX (queue size - 2), FLUSH, and RO for a
 * read-only image. One request queue of 256 entries. The GET_ID serial is the image's
 * file name, cut to 20 bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/vmm/devices.h"
#include "kernel/vmm/dev/virtio/blk/blk.h"
#include "lib/heap.h"

static void blk_cfg_read(struct vmm_virtio *v, unsigned off, void *data, unsigned len)
{
	struct vmm_virtio_blk *b = kb_container_of(v, struct vmm_virtio_blk, v);
	uint8_t img[VIRTIO_BLK_CFG_SIZE] = {0};
	uint32_t seg_max = VIRTIO_BLK_SEG_MAX;

	memcpy(&img[0x00], &b->capacity, 8);
	memcpy(&img[0x0c], &seg_max, 4);
	memcpy(data, &img[off], len);
}

static const struct vmm_virtio_ops blk_ops = {
    .notify = vmm__blk_notify,
    .cfg_read = blk_cfg_read,
    .start = NULL, /* requests made available before DRIVER_OK wait for a notify */
};

static int image_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return -errno;
		return 0;
	}
	return -EINVAL;
}

int vmm_virtio_blk_create(struct vmm_vm *vm, const char *path, bool readonly, struct kb_errmsg *err)
{
	struct vmm_virtio_blk *b;
	const char *base;
	uint32_t inst;
	uint64_t size = 0;
	char name[16];
	int rv;

	if (vm->pci == NULL) {
		kb_errmsg_setf(err, "virtio-blk %s: no PCI bus", path);
		return KB_ESTATE;
	}
	b = kb_calloc(1, sizeof(*b));
	if (b == NULL) {
		kb_errmsg_setf(err, "virtio-blk %s: out of memory", path);
		return -ENOMEM;
	}
	b->readonly = readonly;
	snprintf(b->path, sizeof(b->path), "%s", path);
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	/* The serial is zero-padded, not NUL-terminated when 20 bytes long. */
	memcpy(b->id, base, strnlen(base, sizeof(b->id)));

	b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "virtio-blk: opening %s: %s", path, kb_strerror(rv));
		goto err_free;
	}
	rv = image_size(b->fd, &size);
	if (rv < 0) {
		kb_errmsg_setf(err, "virtio-blk: %s: not a usable image: %s", path,
			       kb_strerror(rv));
		goto err_close;
	}
	b->capacity = size / VIRTIO_BLK_SECTOR;
	if (b->capacity == 0) {
		rv = KB_ECONFIG;
		kb_errmsg_setf(err, "virtio-blk: %s is smaller than one sector", path);
		goto err_close;
	}

	inst = vmm__virtio_instance(vm, VMM_DEV_VIRTIO_BLK);
	b->index = inst;
	snprintf(name, sizeof(name), "virtio-blk%u", inst);
	rv = vmm__virtio_init(
	    &b->v, vm, VIRTIO_ID_BLOCK, 0x010000 /* storage, SCSI */, 1, VIRTIO_BLK_QUEUE_SIZE,
	    VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH | (readonly ? VIRTIO_BLK_F_RO : 0),
	    VIRTIO_BLK_CFG_SIZE, &blk_ops, name);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: transport setup: %s", name, kb_strerror(rv));
		goto err_close;
	}
	rv = vmm_dev_register(vm, VMM_DEV_ID(VMM_DEV_VIRTIO_BLK, inst), &vmm__blk_dev_ops, b);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: registering: %s", name, kb_strerror(rv));
		goto err_transport;
	}
	/* From here the device list owns b. */
	rv = vmm__virtio_register(&b->v);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: placing on the PCI bus: %s", name, kb_strerror(rv));
		return rv;
	}
	kb_log(b->v.log, KB_LOG_INFO, "%s: %s, %llu sectors%s, PCI slot %u, BAR 0x%llx, GSI %u",
	       name, path, (unsigned long long)b->capacity, readonly ? ", read-only" : "",
	       b->v.pci.slot, (unsigned long long)b->v.pci.bar[VIRTIO_BAR].addr, b->v.pci.gsi);
	return 0;

err_transport:
	vmm__virtio_close(&b->v);
err_close:
	close(b->fd);
err_free:
	kb_free(b);
	return rv;
}
