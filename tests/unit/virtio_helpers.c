/*
 * Helpers shared by the PCI and virtio tests: a VM built by hand around a heap buffer of
 * guest RAM, and the guest driver's side (configuration cycles, MMIO, virtio initialisation,
 * rings in guest memory, notifications, device save and restore).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/dev/pci_internal.h"
#include "kernel/vmm/dev/virtio/blk/blk.h"
#include "kernel/vmm/dev/virtio/net/net.h"
#include "kernel/vmm/dev/virtio/transport.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "tests/unit/virtio_helpers.h"

const uint8_t vt_test_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static struct kb_logger quiet;

/* ---- a VM by hand --------------------------------------------------------------------- */

struct vmm_vm *vt_vm_new(void)
{
	struct vmm_vm *vm = calloc(1, sizeof(*vm));

	assert_non_null(vm);
	kb_log_init(&quiet, "test", KB_LOG_DEBUG, -1);
	vm->log = &quiet;
	vm->kvm_fd = vm->vm_fd = vm->epfd = vm->ev_wake = -1;
	kb_list_init(&vm->devs);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->mem.memfd = -1;
	vm->mem.size = RAM_SIZE;
	vm->mem.base = aligned_alloc(PAGE, RAM_SIZE);
	assert_non_null(vm->mem.base);
	memset(vm->mem.base, 0, RAM_SIZE);
	vm->mem.regions[0] =
	    (struct vmm_mem_region){.gpa = 0, .size = RAM_SIZE, .off = 0, .hva = vm->mem.base};
	vm->mem.nr_regions = 1;
	vm->mem.dirty_words = RAM_SIZE / PAGE / 64;
	vm->mem.dirty = calloc(vm->mem.dirty_words, sizeof(uint64_t));
	assert_non_null(vm->mem.dirty);
	assert_int_equal(vmm_pci_init(vm), 0);
	assert_non_null(vm->pci);
	return vm;
}

void vt_vm_free(struct vmm_vm *vm)
{
	struct kb_list *pos, *tmp;

	if (vm->epfd >= 0)
		vmm__event_close(vm);
	kb_list_for_each_safe(pos, tmp, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		kb_list_del(&d->link);
		d->ops->destroy(d->opaque);
		kb_free(d);
	}
	vmm_bus_close(&vm->pio);
	vmm_bus_close(&vm->mmio);
	free(vm->mem.dirty);
	free(vm->mem.base);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

struct vmm_dev *vt_find_dev(struct vmm_vm *vm, uint32_t id)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		if (d->id == id)
			return d;
	}
	fail_msg("no device 0x%x", id);
	return NULL;
}

uint8_t *vt_ram(struct vmm_vm *vm, uint64_t gpa)
{
	return vm->mem.base + gpa;
}

bool vt_page_dirty(struct vmm_vm *vm, uint64_t gpa)
{
	uint64_t p = gpa / PAGE;
	return (vm->mem.dirty[p / 64] >> (p % 64)) & 1;
}

unsigned vt_dirty_count(struct vmm_vm *vm)
{
	unsigned n = 0;
	for (uint64_t i = 0; i < vm->mem.dirty_words; i++)
		n += (unsigned)__builtin_popcountll(vm->mem.dirty[i]);
	return n;
}

void vt_dirty_clear(struct vmm_vm *vm)
{
	memset(vm->mem.dirty, 0, vm->mem.dirty_words * sizeof(uint64_t));
}

/* Every image made here is removed at exit, whatever the test did with it. */
static char made[256][64];
static int nr_made;

static void remove_made(void)
{
	for (int i = 0; i < nr_made; i++)
		unlink(made[i]);
}

char *vt_temp_image(uint64_t size)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/keel-virtio-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	if (nr_made == 0)
		atexit(remove_made);
	if (nr_made < 256)
		snprintf(made[nr_made++], sizeof(made[0]), "%s", path);
	return path;
}

/* ---- the guest's side: configuration cycles and MMIO ---------------------------------- */

uint32_t vt_pci_rd(struct vmm_vm *vm, unsigned slot, unsigned reg, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;

	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc + (reg & 3), &v, len);
	return v;
}

void vt_pci_wr(struct vmm_vm *vm, unsigned slot, unsigned reg, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_write(&vm->pio, 0xcfc + (reg & 3), &v, len);
}

uint64_t vt_mr(struct vmm_vm *vm, uint64_t addr, unsigned len)
{
	uint64_t v = 0;
	vmm_bus_read(&vm->mmio, addr, &v, len);
	return v;
}

void vt_mw(struct vmm_vm *vm, uint64_t addr, uint64_t v, unsigned len)
{
	vmm_bus_write(&vm->mmio, addr, &v, len);
}

void vt_drv_probe(struct vt_drv *d, struct vmm_vm *vm, unsigned slot)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	d->slot = slot;
	assert_int_equal(vt_pci_rd(vm, slot, VMM_PCI_VENDOR_ID, 2), 0x1af4);
	vt_pci_wr(vm, slot, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM | VMM_PCI_CMD_MASTER, 2);
	d->bar0 = vt_pci_rd(vm, slot, VMM_PCI_BAR0, 4) & ~0xfull;
	for (unsigned c = vt_pci_rd(vm, slot, VMM_PCI_CAP_PTR, 1); c != 0;
	     c = vt_pci_rd(vm, slot, c + 1, 1)) {
		unsigned id = vt_pci_rd(vm, slot, c, 1);
		if (id == VMM_PCI_CAP_ID_MSIX) {
			d->msix = c;
			continue;
		}
		assert_int_equal(id, VMM_PCI_CAP_ID_VENDOR);
		assert_int_equal(vt_pci_rd(vm, slot, c + 4, 1), 0); /* BAR 0 */
		uint64_t addr = d->bar0 + vt_pci_rd(vm, slot, c + 8, 4);
		switch (vt_pci_rd(vm, slot, c + 3, 1)) {
		case VIRTIO_PCI_CAP_COMMON:
			d->common = addr;
			break;
		case VIRTIO_PCI_CAP_NOTIFY:
			d->notify = addr;
			d->mult = vt_pci_rd(vm, slot, c + 16, 4);
			break;
		case VIRTIO_PCI_CAP_ISR:
			d->isr = addr;
			break;
		case VIRTIO_PCI_CAP_DEVICE:
			d->device = addr;
			break;
		case VIRTIO_PCI_CAP_PCI_CFG:
			d->window = c;
			break;
		default:
			fail_msg("unknown virtio capability");
		}
	}
	assert_true(d->common && d->notify && d->isr && d->device && d->window && d->msix);
}

uint8_t vt_drv_status(struct vt_drv *d)
{
	return (uint8_t)vt_mr(d->vm, d->common + 0x14, 1);
}

uint64_t vt_drv_host_features(struct vt_drv *d)
{
	vt_mw(d->vm, d->common + 0x00, 0, 4);
	uint64_t lo = vt_mr(d->vm, d->common + 0x04, 4);
	vt_mw(d->vm, d->common + 0x00, 1, 4);
	uint64_t hi = vt_mr(d->vm, d->common + 0x04, 4);
	return hi << 32 | lo;
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether it was kept. */
bool vt_drv_init(struct vt_drv *d, uint64_t features)
{
	vt_mw(d->vm, d->common + 0x14, 0, 1);
	assert_int_equal(vt_drv_status(d), 0);
	vt_mw(d->vm, d->common + 0x14, VIRTIO_S_ACKNOWLEDGE, 1);
	vt_mw(d->vm, d->common + 0x14, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER, 1);
	vt_mw(d->vm, d->common + 0x08, 0, 4);
	vt_mw(d->vm, d->common + 0x0c, (uint32_t)features, 4);
	vt_mw(d->vm, d->common + 0x08, 1, 4);
	vt_mw(d->vm, d->common + 0x0c, (uint32_t)(features >> 32), 4);
	vt_mw(d->vm, d->common + 0x14,
	      VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK, 1);
	return (vt_drv_status(d) & VIRTIO_S_FEATURES_OK) != 0;
}

void vt_drv_ok(struct vt_drv *d)
{
	vt_mw(d->vm, d->common + 0x14,
	      VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK,
	      1);
	assert_true(vt_drv_status(d) & VIRTIO_S_DRIVER_OK);
}

void vt_gq_setup_at(struct vt_drv *d, struct vt_gq *g, unsigned q, uint16_t size, uint64_t desc,
		    uint64_t avail, uint64_t used)
{
	struct vmm_vm *vm = d->vm;

	*g = (struct vt_gq){
	    .d = d, .q = q, .size = size, .desc = desc, .avail = avail, .used = used};
	vt_mw(vm, d->common + 0x16, q, 2);
	vt_mw(vm, d->common + 0x18, size, 2);
	vt_mw(vm, d->common + 0x20, (uint32_t)desc, 4);
	vt_mw(vm, d->common + 0x24, desc >> 32, 4);
	vt_mw(vm, d->common + 0x28, (uint32_t)avail, 4);
	vt_mw(vm, d->common + 0x2c, avail >> 32, 4);
	vt_mw(vm, d->common + 0x30, used, 8);
	vt_mw(vm, d->common + 0x1c, 1, 2);
}

void vt_gq_setup(struct vt_drv *d, struct vt_gq *g, unsigned q, uint16_t size, uint64_t base)
{
	memset(vt_ram(d->vm, base), 0, 0x3000);
	vt_gq_setup_at(d, g, q, size, base, base + 0x1000, base + 0x2000);
	assert_int_equal(vt_mr(d->vm, d->common + 0x1c, 2), 1);
}

void vt_gq_desc(struct vt_gq *g, unsigned idx, uint64_t addr, uint32_t len, uint16_t flags,
		uint16_t next)
{
	struct vmm_vring_desc dsc = {.addr = addr, .len = len, .flags = flags, .next = next};
	memcpy(vt_ram(g->d->vm, g->desc + 16ull * idx), &dsc, sizeof(dsc));
}

void vt_gq_put(struct vt_gq *g, uint16_t head)
{
	uint8_t *a = vt_ram(g->d->vm, g->avail);
	memcpy(a + 4 + 2 * (g->next_avail % g->size), &head, 2);
	g->next_avail++;
	__atomic_store_n((uint16_t *)(a + 2), g->next_avail, __ATOMIC_RELEASE);
}

void vt_gq_kick(struct vt_gq *g)
{
	vt_mw(g->d->vm, g->d->notify + (uint64_t)g->q * g->d->mult, g->q, 2);
}

uint16_t vt_gq_used_idx(struct vt_gq *g)
{
	return __atomic_load_n((uint16_t *)vt_ram(g->d->vm, g->used + 2), __ATOMIC_ACQUIRE);
}

bool vt_gq_get(struct vt_gq *g, uint32_t *id, uint32_t *len)
{
	struct vmm_vring_used_elem e;

	if (vt_gq_used_idx(g) == g->last_used)
		return false;
	memcpy(&e, vt_ram(g->d->vm, g->used + 4 + 8ull * (g->last_used % g->size)), sizeof(e));
	g->last_used++;
	*id = e.id;
	*len = e.len;
	return true;
}

void vt_blk_setup(struct vt_blkfx *f, bool readonly, uint64_t features)
{
	struct kb_errmsg err = {{0}};

	f->vm = vt_vm_new();
	snprintf(f->img, sizeof(f->img), "%s", vt_temp_image(1 << 20));
	assert_int_equal(vmm_virtio_blk_create(f->vm, f->img, readonly, &err), 0);
	f->img_fd = open(f->img, O_RDWR);
	assert_true(f->img_fd >= 0);
	vt_drv_probe(&f->d, f->vm, 1);
	assert_true(vt_drv_init(&f->d, features));
	vt_gq_setup(&f->d, &f->g, 0, 16, Q0_BASE);
	vt_drv_ok(&f->d);
}

void vt_blk_teardown(struct vt_blkfx *f)
{
	close(f->img_fd);
	unlink(f->img);
	vt_vm_free(f->vm);
}

/* Submits header + optional data + status as a direct chain at descriptors 0..2. */
static void blk_submit(struct vt_gq *g, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		       bool dev_writes)
{
	uint8_t hdr[16] = {0};

	memcpy(&hdr[0], &type, 4);
	memcpy(&hdr[8], &sector, 8);
	memcpy(vt_ram(g->d->vm, HDR_GPA), hdr, 16);
	*vt_ram(g->d->vm, STATUS_GPA) = 0xee;
	if (len != 0) {
		vt_gq_desc(g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
		vt_gq_desc(g, 1, data, len,
			   VMM_VRING_DESC_F_NEXT | (dev_writes ? VMM_VRING_DESC_F_WRITE : 0), 2);
		vt_gq_desc(g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	} else {
		vt_gq_desc(g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 2);
		vt_gq_desc(g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	}
	vt_gq_put(g, 0);
	vt_gq_kick(g);
}

/* Submits and returns the status byte; checks the used element. */
uint8_t vt_blk_do(struct vt_gq *g, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		  bool dev_writes, uint32_t *used_len)
{
	uint32_t id, ulen;

	blk_submit(g, type, sector, data, len, dev_writes);
	assert_true(vt_gq_get(g, &id, &ulen));
	assert_int_equal(id, 0);
	if (used_len != NULL)
		*used_len = ulen;
	return *vt_ram(g->d->vm, STATUS_GPA);
}

/* ---- save and restore ----------------------------------------------------------------- */

void vt_save_dev(struct vmm_vm *vm, uint32_t id, struct kb_buf *out)
{
	struct vmm_dev *d = vt_find_dev(vm, id);
	kb_buf_init(out, 0);
	assert_int_equal(d->ops->save(d->opaque, out), 0);
}

int vt_restore_dev(struct vmm_vm *vm, uint32_t id, const void *p, size_t len)
{
	struct vmm_dev *d = vt_find_dev(vm, id);
	struct kb_reader r;
	kb_rd_init(&r, p, len);
	int rv = d->ops->restore(d->opaque, &r);
	if (rv == 0)
		assert_int_equal(kb_rd_left(&r), 0);
	return rv;
}

/* Restoring every strict prefix of rec fails and leaves the saved bytes unchanged. */
void vt_check_truncations(struct vmm_vm *vm, uint32_t id, const struct kb_buf *rec)
{
	struct kb_buf before, after;

	vt_save_dev(vm, id, &before);
	for (size_t n = 0; n < rec->len; n++) {
		assert_int_not_equal(vt_restore_dev(vm, id, rec->data, n), 0);
		vt_save_dev(vm, id, &after);
		assert_int_equal(after.len, before.len);
		assert_memory_equal(after.data, before.data, before.len);
		kb_buf_close(&after);
	}
	kb_buf_close(&before);
}

/* Flips bytes of rec one at a time; a restore that fails must leave the device as it was. */
void vt_check_corruptions(struct vmm_vm *vm, uint32_t id, const struct kb_buf *rec)
{
	struct kb_buf before, after;
	uint8_t *copy = malloc(rec->len);
	unsigned refused = 0;

	vt_save_dev(vm, id, &before);
	for (size_t i = 0; i < rec->len; i++) {
		memcpy(copy, rec->data, rec->len);
		copy[i] ^= 0xa5;
		if (vt_restore_dev(vm, id, copy, rec->len) == 0) {
			/* Accepted (a writable field): put the original back. */
			assert_int_equal(vt_restore_dev(vm, id, before.data, before.len), 0);
			continue;
		}
		refused++;
		vt_save_dev(vm, id, &after);
		assert_memory_equal(after.data, before.data, before.len);
		kb_buf_close(&after);
	}
	assert_true(refused > 0);
	free(copy);
	kb_buf_close(&before);
}
