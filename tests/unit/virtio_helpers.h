/*
 * Helpers shared by the PCI and virtio tests: a VM built by hand around a heap buffer of
 * guest RAM (no KVM), and the guest driver's side of the PCI bus and of virtio-pci.
 */
#ifndef TEST_VIRTIO_HELPERS_H
#define TEST_VIRTIO_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/vmm/vmm.h"
#include "lib/buf.h"

#define RAM_SIZE (4ull << 20)
#define PAGE	 4096ull

/* Guest-physical layout the test driver uses. */
#define Q0_BASE	     0x10000ull /* desc, avail (+0x1000), used (+0x2000) */
#define Q1_BASE	     0x20000ull
#define HDR_GPA	     0x100000ull
#define STATUS_GPA   0x100800ull
#define DATA_GPA     0x200000ull
#define DATA2_GPA    0x280000ull
#define INDIRECT_GPA 0x300000ull

/* The MAC the network tests give their devices. */
extern const uint8_t vt_test_mac[6];

/* ---- a VM by hand --------------------------------------------------------------------- */

/* A VM with RAM_SIZE of zeroed guest RAM, a dirty bitmap and the PCI host bridge; asserts
 * on failure. Free with vt_vm_free(), which also destroys its devices. */
struct vmm_vm *vt_vm_new(void);
void vt_vm_free(struct vmm_vm *vm);
/* The device with this id; fails the test when there is none. */
struct vmm_dev *vt_find_dev(struct vmm_vm *vm, uint32_t id);
/* The host address of guest-physical gpa. */
uint8_t *vt_ram(struct vmm_vm *vm, uint64_t gpa);
bool vt_page_dirty(struct vmm_vm *vm, uint64_t gpa);
unsigned vt_dirty_count(struct vmm_vm *vm);
void vt_dirty_clear(struct vmm_vm *vm);
/* A temp image of size bytes (static buffer); every image made is removed at exit. */
char *vt_temp_image(uint64_t size);

/* ---- the guest's side: configuration cycles and MMIO ---------------------------------- */

uint32_t vt_pci_rd(struct vmm_vm *vm, unsigned slot, unsigned reg, unsigned len);
void vt_pci_wr(struct vmm_vm *vm, unsigned slot, unsigned reg, uint32_t v, unsigned len);
uint64_t vt_mr(struct vmm_vm *vm, uint64_t addr, unsigned len);
void vt_mw(struct vmm_vm *vm, uint64_t addr, uint64_t v, unsigned len);

/* A virtio-pci function as the guest driver sees it. */
struct vt_drv {
	struct vmm_vm *vm;
	unsigned slot;
	uint64_t bar0, common, isr, device, notify;
	uint32_t mult;
	unsigned window; /* PCI_CFG capability offset */
	unsigned msix;	 /* MSI-X capability offset */
};

/* Enables decoding and walks the capabilities of the virtio function in slot. */
void vt_drv_probe(struct vt_drv *d, struct vmm_vm *vm, unsigned slot);
uint8_t vt_drv_status(struct vt_drv *d);
uint64_t vt_drv_host_features(struct vt_drv *d);
/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether it was kept. */
bool vt_drv_init(struct vt_drv *d, uint64_t features);
/* Sets DRIVER_OK; asserts it sticks. */
void vt_drv_ok(struct vt_drv *d);

/* A virtqueue in guest memory, driven from the guest's side. */
struct vt_gq {
	struct vt_drv *d;
	unsigned q;
	uint16_t size, next_avail, last_used;
	uint64_t desc, avail, used;
};

void vt_gq_setup_at(struct vt_drv *d, struct vt_gq *g, unsigned q, uint16_t size, uint64_t desc,
		    uint64_t avail, uint64_t used);
/* Queue q with its rings at base (desc), base + 0x1000 (avail), base + 0x2000 (used). */
void vt_gq_setup(struct vt_drv *d, struct vt_gq *g, unsigned q, uint16_t size, uint64_t base);
void vt_gq_desc(struct vt_gq *g, unsigned idx, uint64_t addr, uint32_t len, uint16_t flags,
		uint16_t next);
void vt_gq_put(struct vt_gq *g, uint16_t head);
void vt_gq_kick(struct vt_gq *g);
uint16_t vt_gq_used_idx(struct vt_gq *g);
/* Takes the next used element; false when there is none. */
bool vt_gq_get(struct vt_gq *g, uint32_t *id, uint32_t *len);

/* ---- virtio-blk ----------------------------------------------------------------------- */

/* A VM with one virtio-blk device in slot 1 on a 1 MiB temp image, queue 0 set up. */
struct vt_blkfx {
	struct vmm_vm *vm;
	struct vt_drv d;
	struct vt_gq g;
	char img[64];
	int img_fd;
};

void vt_blk_setup(struct vt_blkfx *f, bool readonly, uint64_t features);
void vt_blk_teardown(struct vt_blkfx *f);
/* Submits header + optional data + status as a direct chain at descriptors 0..2 and returns
 * the status byte; checks the used element. */
uint8_t vt_blk_do(struct vt_gq *g, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		  bool dev_writes, uint32_t *used_len);

/* ---- save and restore ----------------------------------------------------------------- */

/* Saves device id into out (initialised here; caller closes it with kb_buf_close()). */
void vt_save_dev(struct vmm_vm *vm, uint32_t id, struct kb_buf *out);
/* Restores device id from p; on success the record must be consumed whole. */
int vt_restore_dev(struct vmm_vm *vm, uint32_t id, const void *p, size_t len);
/* Restoring every strict prefix of rec fails and leaves the saved bytes unchanged. */
void vt_check_truncations(struct vmm_vm *vm, uint32_t id, const struct kb_buf *rec);
/* Flips bytes of rec one at a time; a restore that fails must leave the device as it was. */
void vt_check_corruptions(struct vmm_vm *vm, uint32_t id, const struct kb_buf *rec);

#endif
