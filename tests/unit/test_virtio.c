/*
 * The PCI host bridge and the virtio-pci devices without KVM: a VM is built by hand
 * around a heap buffer of guest RAM, and the tests drive the devices through the port
 * and MMIO buses exactly as a guest driver would (configuration cycles on 0xCF8/0xCFC,
 * capability walk, virtio initialisation, rings in guest memory, notifications).
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

static struct kb_logger quiet;

/* ---- a VM by hand --------------------------------------------------------------------- */

static struct vmm_vm *vm_new(void)
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

static void vm_free(struct vmm_vm *vm)
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

static struct vmm_dev *find_dev(struct vmm_vm *vm, uint32_t id)
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

static uint8_t *ram(struct vmm_vm *vm, uint64_t gpa)
{
	return vm->mem.base + gpa;
}

static bool page_dirty(struct vmm_vm *vm, uint64_t gpa)
{
	uint64_t p = gpa / PAGE;
	return (vm->mem.dirty[p / 64] >> (p % 64)) & 1;
}

static unsigned dirty_count(struct vmm_vm *vm)
{
	unsigned n = 0;
	for (uint64_t i = 0; i < vm->mem.dirty_words; i++)
		n += (unsigned)__builtin_popcountll(vm->mem.dirty[i]);
	return n;
}

static void dirty_clear(struct vmm_vm *vm)
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

static char *temp_image(uint64_t size)
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

static uint32_t pci_rd(struct vmm_vm *vm, unsigned slot, unsigned reg, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;

	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc + (reg & 3), &v, len);
	return v;
}

static void pci_wr(struct vmm_vm *vm, unsigned slot, unsigned reg, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_write(&vm->pio, 0xcfc + (reg & 3), &v, len);
}

static uint64_t mr(struct vmm_vm *vm, uint64_t addr, unsigned len)
{
	uint64_t v = 0;
	vmm_bus_read(&vm->mmio, addr, &v, len);
	return v;
}

static void mw(struct vmm_vm *vm, uint64_t addr, uint64_t v, unsigned len)
{
	vmm_bus_write(&vm->mmio, addr, &v, len);
}

struct drv {
	struct vmm_vm *vm;
	unsigned slot;
	uint64_t bar0, common, isr, device, notify;
	uint32_t mult;
	unsigned window; /* PCI_CFG capability offset */
	unsigned msix;	 /* MSI-X capability offset */
};

static void drv_probe(struct drv *d, struct vmm_vm *vm, unsigned slot)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	d->slot = slot;
	assert_int_equal(pci_rd(vm, slot, VMM_PCI_VENDOR_ID, 2), 0x1af4);
	pci_wr(vm, slot, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM | VMM_PCI_CMD_MASTER, 2);
	d->bar0 = pci_rd(vm, slot, VMM_PCI_BAR0, 4) & ~0xfull;
	for (unsigned c = pci_rd(vm, slot, VMM_PCI_CAP_PTR, 1); c != 0;
	     c = pci_rd(vm, slot, c + 1, 1)) {
		unsigned id = pci_rd(vm, slot, c, 1);
		if (id == VMM_PCI_CAP_ID_MSIX) {
			d->msix = c;
			continue;
		}
		assert_int_equal(id, VMM_PCI_CAP_ID_VENDOR);
		assert_int_equal(pci_rd(vm, slot, c + 4, 1), 0); /* BAR 0 */
		uint64_t addr = d->bar0 + pci_rd(vm, slot, c + 8, 4);
		switch (pci_rd(vm, slot, c + 3, 1)) {
		case VIRTIO_PCI_CAP_COMMON:
			d->common = addr;
			break;
		case VIRTIO_PCI_CAP_NOTIFY:
			d->notify = addr;
			d->mult = pci_rd(vm, slot, c + 16, 4);
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

static uint8_t drv_status(struct drv *d)
{
	return (uint8_t)mr(d->vm, d->common + 0x14, 1);
}

static uint64_t drv_host_features(struct drv *d)
{
	mw(d->vm, d->common + 0x00, 0, 4);
	uint64_t lo = mr(d->vm, d->common + 0x04, 4);
	mw(d->vm, d->common + 0x00, 1, 4);
	uint64_t hi = mr(d->vm, d->common + 0x04, 4);
	return hi << 32 | lo;
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether it was kept. */
static bool drv_init(struct drv *d, uint64_t features)
{
	mw(d->vm, d->common + 0x14, 0, 1);
	assert_int_equal(drv_status(d), 0);
	mw(d->vm, d->common + 0x14, VIRTIO_S_ACKNOWLEDGE, 1);
	mw(d->vm, d->common + 0x14, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER, 1);
	mw(d->vm, d->common + 0x08, 0, 4);
	mw(d->vm, d->common + 0x0c, (uint32_t)features, 4);
	mw(d->vm, d->common + 0x08, 1, 4);
	mw(d->vm, d->common + 0x0c, (uint32_t)(features >> 32), 4);
	mw(d->vm, d->common + 0x14, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK,
	   1);
	return (drv_status(d) & VIRTIO_S_FEATURES_OK) != 0;
}

static void drv_ok(struct drv *d)
{
	mw(d->vm, d->common + 0x14,
	   VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK, 1);
	assert_true(drv_status(d) & VIRTIO_S_DRIVER_OK);
}

struct gq {
	struct drv *d;
	unsigned q;
	uint16_t size, next_avail, last_used;
	uint64_t desc, avail, used;
};

static void gq_setup_at(struct drv *d, struct gq *g, unsigned q, uint16_t size, uint64_t desc,
			uint64_t avail, uint64_t used)
{
	struct vmm_vm *vm = d->vm;

	*g = (struct gq){.d = d, .q = q, .size = size, .desc = desc, .avail = avail, .used = used};
	mw(vm, d->common + 0x16, q, 2);
	mw(vm, d->common + 0x18, size, 2);
	mw(vm, d->common + 0x20, (uint32_t)desc, 4);
	mw(vm, d->common + 0x24, desc >> 32, 4);
	mw(vm, d->common + 0x28, (uint32_t)avail, 4);
	mw(vm, d->common + 0x2c, avail >> 32, 4);
	mw(vm, d->common + 0x30, used, 8);
	mw(vm, d->common + 0x1c, 1, 2);
}

static void gq_setup(struct drv *d, struct gq *g, unsigned q, uint16_t size, uint64_t base)
{
	memset(ram(d->vm, base), 0, 0x3000);
	gq_setup_at(d, g, q, size, base, base + 0x1000, base + 0x2000);
	assert_int_equal(mr(d->vm, d->common + 0x1c, 2), 1);
}

static void gq_desc(struct gq *g, unsigned idx, uint64_t addr, uint32_t len, uint16_t flags,
		    uint16_t next)
{
	struct vmm_vring_desc dsc = {.addr = addr, .len = len, .flags = flags, .next = next};
	memcpy(ram(g->d->vm, g->desc + 16ull * idx), &dsc, sizeof(dsc));
}

static void gq_put(struct gq *g, uint16_t head)
{
	uint8_t *a = ram(g->d->vm, g->avail);
	memcpy(a + 4 + 2 * (g->next_avail % g->size), &head, 2);
	g->next_avail++;
	__atomic_store_n((uint16_t *)(a + 2), g->next_avail, __ATOMIC_RELEASE);
}

static void gq_kick(struct gq *g)
{
	mw(g->d->vm, g->d->notify + (uint64_t)g->q * g->d->mult, g->q, 2);
}

static uint16_t gq_used_idx(struct gq *g)
{
	return __atomic_load_n((uint16_t *)ram(g->d->vm, g->used + 2), __ATOMIC_ACQUIRE);
}

static bool gq_get(struct gq *g, uint32_t *id, uint32_t *len)
{
	struct vmm_vring_used_elem e;

	if (gq_used_idx(g) == g->last_used)
		return false;
	memcpy(&e, ram(g->d->vm, g->used + 4 + 8ull * (g->last_used % g->size)), sizeof(e));
	g->last_used++;
	*id = e.id;
	*len = e.len;
	return true;
}

/* ---- PCI ------------------------------------------------------------------------------ */

static void test_pci_host_bridge_and_absent_slots(void **state)
{
	struct vmm_vm *vm = vm_new();
	uint32_t a = 0x80000000u, v;

	assert_int_equal(pci_rd(vm, 0, VMM_PCI_VENDOR_ID, 4), 0x0d578086);
	assert_int_equal(pci_rd(vm, 0, VMM_PCI_DEVICE_ID, 2), 0x0d57);
	assert_int_equal(pci_rd(vm, 0, 0x0b, 1), 0x06); /* class: bridge */
	assert_int_equal(pci_rd(vm, 0, 0x0a, 1), 0x00); /* subclass: host */
	assert_int_equal(pci_rd(vm, 0, VMM_PCI_INT_PIN, 1), 0);
	assert_int_equal(pci_rd(vm, 1, 0, 4), 0xffffffff); /* empty slot */
	assert_int_equal(pci_rd(vm, 31, 0, 2), 0xffff);

	/* The address latch reads back (Linux's type-1 probe). */
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	v = 0;
	vmm_bus_read(&vm->pio, 0xcf8, &v, 4);
	assert_int_equal(v, 0x80000000u);
	/* Enable bit clear, another bus, another function: all ones. */
	a = 0x00000000u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	a = 0x80010000u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	a = 0x80000100u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	vmm_bus_read(&vm->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	/* A byte write to 0xCFB does not change the latch. */
	a = 0x80000000u;
	vmm_bus_write(&vm->pio, 0xcf8, &a, 4);
	uint8_t one = 1;
	vmm_bus_write(&vm->pio, 0xcfb, &one, 1);
	vmm_bus_read(&vm->pio, 0xcf8, &v, 4);
	assert_int_equal(v, 0x80000000u);
	/* The bridge's read-only registers stay. */
	pci_wr(vm, 0, VMM_PCI_VENDOR_ID, 0x12345678, 4);
	assert_int_equal(pci_rd(vm, 0, VMM_PCI_VENDOR_ID, 4), 0x0d578086);
	vm_free(vm);
}

static void test_pci_function_config_space(void **state)
{
	struct vmm_vm *vm = vm_new();
	struct kb_errmsg err = {{0}};
	uint32_t bar;

	assert_int_equal(vmm_virtio_blk_create(vm, temp_image(1 << 20), false, &err), 0);
	unlink(temp_image(0)); /* the static name: the image stays open */

	assert_int_equal(pci_rd(vm, 1, VMM_PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(pci_rd(vm, 1, 0, 4), 0x10421af4);
	/* 1- and 2-byte reads at every byte offset of the dword */
	assert_int_equal(pci_rd(vm, 1, 1, 1), 0x1a);
	assert_int_equal(pci_rd(vm, 1, 3, 1), 0x10);
	assert_int_equal(pci_rd(vm, 1, 1, 2), 0x421a);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_REVISION, 1), 1);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_REVISION, 4) >> 8, 0x010000);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_SUBSYS_VENDOR, 2), 0x1af4);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_SUBSYS_ID, 2), 0x1100);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_INT_PIN, 1), 1);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_INT_LINE, 1), 5);
	assert_true(pci_rd(vm, 1, VMM_PCI_STATUS, 2) & VMM_PCI_STATUS_CAP_LIST);

	/* BAR 0: the assigned address; sizing; writes of other addresses ignored. */
	bar = pci_rd(vm, 1, VMM_PCI_BAR0, 4);
	assert_int_equal(bar, (uint32_t)VMM_PCI_MMIO_BASE);
	pci_wr(vm, 1, VMM_PCI_BAR0, 0xffffffff, 4);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_BAR0, 4), (uint32_t) ~(VIRTIO_BAR_SIZE - 1));
	pci_wr(vm, 1, VMM_PCI_BAR0, bar, 4);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_BAR0, 4), bar);
	pci_wr(vm, 1, VMM_PCI_BAR0, 0xd0000000, 4);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_BAR0, 4), bar);
	for (unsigned i = 1; i < 6; i++) {
		pci_wr(vm, 1, VMM_PCI_BAR0 + 4 * i, 0xffffffff, 4);
		assert_int_equal(pci_rd(vm, 1, VMM_PCI_BAR0 + 4 * i, 4), 0);
	}
	pci_wr(vm, 1, VMM_PCI_ROM, 0xfffff800, 4);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_ROM, 4), 0);

	/* Command: only the defined bits stick; status and ids are read-only. */
	pci_wr(vm, 1, VMM_PCI_COMMAND, 0xffff, 2);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_COMMAND, 2), 0x0547);
	pci_wr(vm, 1, VMM_PCI_STATUS, 0xffff, 2);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_STATUS, 2), VMM_PCI_STATUS_CAP_LIST);
	pci_wr(vm, 1, VMM_PCI_INT_LINE, 11, 1);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_INT_LINE, 1), 11);
	pci_wr(vm, 1, VMM_PCI_INT_PIN, 3, 1);
	assert_int_equal(pci_rd(vm, 1, VMM_PCI_INT_PIN, 1), 1);

	/* With memory decoding off the BAR reads as all ones and ignores writes. */
	pci_wr(vm, 1, VMM_PCI_COMMAND, 0, 2);
	assert_int_equal(mr(vm, bar + VIRTIO_COMMON_OFF + 0x12, 2), 0xffff);
	pci_wr(vm, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM, 2);
	assert_int_equal(mr(vm, bar + VIRTIO_COMMON_OFF + 0x12, 2), 1); /* num_queues */

	/* Capabilities: MSI-X and the five virtio structures. */
	struct drv d;
	drv_probe(&d, vm, 1);
	assert_int_equal(d.common, bar + VIRTIO_COMMON_OFF);
	assert_int_equal(d.isr, bar + VIRTIO_ISR_OFF);
	assert_int_equal(d.device, bar + VIRTIO_DEVICE_OFF);
	assert_int_equal(d.notify, bar + VIRTIO_NOTIFY_OFF);
	assert_int_equal(d.mult, VIRTIO_NOTIFY_MULT);
	assert_int_equal(d.msix, 0x40); /* the layout docs/virtio.md gives */
	assert_int_equal(d.window, 0x90);
	assert_int_equal(pci_rd(vm, 1, d.msix + 2, 2), 1); /* 2 vectors */
	assert_int_equal(pci_rd(vm, 1, d.msix + 4, 4), VIRTIO_MSIX_TABLE_OFF);
	assert_int_equal(pci_rd(vm, 1, d.msix + 8, 4), VIRTIO_MSIX_PBA_OFF);

	/* The configuration access window reads the common configuration. */
	pci_wr(vm, 1, d.window + 4, 0, 1);
	pci_wr(vm, 1, d.window + 8, VIRTIO_COMMON_OFF + 0x12, 4);
	pci_wr(vm, 1, d.window + 12, 2, 4);
	assert_int_equal(pci_rd(vm, 1, d.window + 16, 2), 1);
	/* ... and writes through it (queue_select = 5, read back directly). */
	pci_wr(vm, 1, d.window + 8, VIRTIO_COMMON_OFF + 0x16, 4);
	pci_wr(vm, 1, d.window + 16, 5, 2);
	assert_int_equal(mr(vm, d.common + 0x16, 2), 5);
	vm_free(vm);
}

static void test_pci_bar_and_gsi_assignment(void **state)
{
	struct vmm_vm *vm = vm_new();
	struct kb_errmsg err = {{0}};
	struct vmm_pci_route routes[8];
	static const uint32_t gsis[] = {5, 9, 10, 11, 5, 9};
	char *img = temp_image(4096);

	for (int i = 0; i < 6; i++)
		assert_int_equal(vmm_virtio_blk_create(vm, img, true, &err), 0);
	unlink(img);
	assert_int_equal(vmm_pci_routes(vm->pci, routes, 8), 6);
	for (unsigned s = 1; s <= 6; s++) {
		uint32_t bar = pci_rd(vm, s, VMM_PCI_BAR0, 4);
		assert_int_equal(bar, VMM_PCI_MMIO_BASE + (s - 1) * VIRTIO_BAR_SIZE);
		assert_int_equal(pci_rd(vm, s, VMM_PCI_INT_LINE, 1), gsis[s - 1]);
		assert_int_equal(routes[s - 1].slot, s);
		assert_int_equal(routes[s - 1].pin, 1);
		assert_int_equal(routes[s - 1].gsi, gsis[s - 1]);
	}
	/* Device ids are per type instance numbers. */
	find_dev(vm, VMM_DEV_ID(VMM_DEV_VIRTIO_BLK, 5));
	find_dev(vm, VMM_DEV_ID(VMM_DEV_PCI, 0));
	vm_free(vm);
}

/* ---- virtio-blk ----------------------------------------------------------------------- */

struct blkfx {
	struct vmm_vm *vm;
	struct drv d;
	struct gq g;
	char img[64];
	int img_fd;
};

static void blk_setup(struct blkfx *f, bool readonly, uint64_t features)
{
	struct kb_errmsg err = {{0}};

	f->vm = vm_new();
	snprintf(f->img, sizeof(f->img), "%s", temp_image(1 << 20));
	assert_int_equal(vmm_virtio_blk_create(f->vm, f->img, readonly, &err), 0);
	f->img_fd = open(f->img, O_RDWR);
	assert_true(f->img_fd >= 0);
	drv_probe(&f->d, f->vm, 1);
	assert_true(drv_init(&f->d, features));
	gq_setup(&f->d, &f->g, 0, 16, Q0_BASE);
	drv_ok(&f->d);
}

static void blk_teardown(struct blkfx *f)
{
	close(f->img_fd);
	unlink(f->img);
	vm_free(f->vm);
}

/* Submits header + optional data + status as a direct chain at descriptors 0..2. */
static void blk_submit(struct gq *g, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		       bool dev_writes)
{
	uint8_t hdr[16] = {0};

	memcpy(&hdr[0], &type, 4);
	memcpy(&hdr[8], &sector, 8);
	memcpy(ram(g->d->vm, HDR_GPA), hdr, 16);
	*ram(g->d->vm, STATUS_GPA) = 0xee;
	if (len != 0) {
		gq_desc(g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
		gq_desc(g, 1, data, len,
			VMM_VRING_DESC_F_NEXT | (dev_writes ? VMM_VRING_DESC_F_WRITE : 0), 2);
		gq_desc(g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	} else {
		gq_desc(g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 2);
		gq_desc(g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	}
	gq_put(g, 0);
	gq_kick(g);
}

/* Submits and returns the status byte; checks the used element. */
static uint8_t blk_do(struct gq *g, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		      bool dev_writes, uint32_t *used_len)
{
	uint32_t id, ulen;

	blk_submit(g, type, sector, data, len, dev_writes);
	assert_true(gq_get(g, &id, &ulen));
	assert_int_equal(id, 0);
	if (used_len != NULL)
		*used_len = ulen;
	return *ram(g->d->vm, STATUS_GPA);
}

static void test_blk_write_then_read(void **state)
{
	struct blkfx f;
	uint8_t buf[8192];
	uint32_t ulen;

	blk_setup(&f, false, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX);
	/* Device configuration: capacity and seg_max. */
	assert_int_equal(mr(f.vm, f.d.device + 0, 8), (1 << 20) / 512);
	assert_int_equal(mr(f.vm, f.d.device + 12, 4), VIRTIO_BLK_SEG_MAX);
	uint64_t host = drv_host_features(&f.d);
	assert_true(host & VIRTIO_F_VERSION_1);
	assert_true(host & VIRTIO_F_INDIRECT_DESC);
	assert_true(host & VIRTIO_BLK_F_FLUSH);
	assert_false(host & VIRTIO_BLK_F_RO);

	for (unsigned i = 0; i < sizeof(buf); i++)
		ram(f.vm, DATA_GPA)[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_OUT, 8, DATA_GPA, 8192, false, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1);
	assert_int_equal(pread(f.img_fd, buf, sizeof(buf), 8 * 512), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, ram(f.vm, DATA_GPA), sizeof(buf));

	/* INTx: ISR bit 0 and the GSI raised; reading the ISR lowers it. */
	struct vmm_pci_func *fn = f.vm->pci->slots[1];
	assert_true(fn->intx_out);
	assert_int_equal(f.vm->pci->gsi_refs[5], 1);
	assert_true(pci_rd(f.vm, 1, VMM_PCI_STATUS, 2) & VMM_PCI_STATUS_INTX);
	assert_int_equal(mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);
	assert_false(fn->intx_out);
	assert_int_equal(f.vm->pci->gsi_refs[5], 0);
	assert_int_equal(mr(f.vm, f.d.isr, 1), 0);

	/* Read back into another buffer: the data, and the pages written, dirty. */
	dirty_clear(f.vm);
	memset(ram(f.vm, DATA2_GPA), 0, sizeof(buf));
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_IN, 8, DATA2_GPA, 8192, true, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 8192 + 1);
	assert_memory_equal(ram(f.vm, DATA2_GPA), ram(f.vm, DATA_GPA), sizeof(buf));
	assert_true(page_dirty(f.vm, DATA2_GPA));
	assert_true(page_dirty(f.vm, DATA2_GPA + 4096));
	assert_true(page_dirty(f.vm, STATUS_GPA));
	assert_true(page_dirty(f.vm, f.g.used));
	assert_false(page_dirty(f.vm, DATA_GPA));
	assert_int_equal(dirty_count(f.vm), 4); /* data x2, status, used */

	/* INTx disabled in the command register: the line stays low. */
	pci_wr(f.vm, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM | VMM_PCI_CMD_INTX_DISABLE, 2);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &ulen), VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1);
	assert_false(fn->intx_out);
	pci_wr(f.vm, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM, 2);
	assert_true(fn->intx_out);
	assert_int_equal(mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);

	/* GET_ID: the image's file name. */
	memset(ram(f.vm, DATA_GPA), 0xaa, 64);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 64, true, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 21);
	assert_memory_equal(ram(f.vm, DATA_GPA), strrchr(f.img, '/') + 1,
			    strlen(strrchr(f.img, '/') + 1));
	assert_int_equal(ram(f.vm, DATA_GPA)[20], 0xaa);

	/* Past the end, a partial sector, an unknown type. */
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_IN, 2047, DATA_GPA, 1024, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_OUT, 2047, DATA_GPA, 512, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 100, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_OUT, ~0ull, DATA_GPA, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(&f.g, 77, 0, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(drv_status(&f.d) & VIRTIO_S_NEEDS_RESET, 0);
	blk_teardown(&f);
}

static void test_blk_readonly_and_indirect(void **state)
{
	struct blkfx f;
	uint32_t id, len;

	blk_setup(&f, true, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_RO);
	assert_true(drv_host_features(&f.d) & VIRTIO_BLK_F_RO);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);

	/* A read through an indirect table of four descriptors, data split in two. */
	assert_int_equal(pwrite(f.img_fd, "0123456789abcdef", 16, 512), 16);
	uint8_t hdr[16] = {0};
	uint64_t sector = 1;
	memcpy(&hdr[8], &sector, 8);
	memcpy(ram(f.vm, HDR_GPA), hdr, 16);
	struct vmm_vring_desc t[4] = {
	    {HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1},
	    {DATA_GPA, 8, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 2},
	    {DATA2_GPA, 504, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 3},
	    {STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0},
	};
	memcpy(ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	gq_desc(&f.g, 5, INDIRECT_GPA, sizeof(t), VMM_VRING_DESC_F_INDIRECT, 0);
	gq_put(&f.g, 5);
	gq_kick(&f.g);
	assert_true(gq_get(&f.g, &id, &len));
	assert_int_equal(id, 5);
	assert_int_equal(len, 513);
	assert_int_equal(*ram(f.vm, STATUS_GPA), VIRTIO_BLK_S_OK);
	assert_memory_equal(ram(f.vm, DATA_GPA), "01234567", 8);
	assert_memory_equal(ram(f.vm, DATA2_GPA), "89abcdef", 8);
	blk_teardown(&f);
}

static void test_features_and_status(void **state)
{
	struct blkfx f;

	blk_setup(&f, false, VIRTIO_F_VERSION_1);
	/* Without VERSION_1, or with a bit not offered, FEATURES_OK does not stick. */
	assert_false(drv_init(&f.d, VIRTIO_BLK_F_FLUSH));
	assert_false(drv_init(&f.d, VIRTIO_F_VERSION_1 | (1ull << 40)));
	assert_false(drv_init(&f.d, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_RO)); /* not read-only */
	/* DRIVER_OK without FEATURES_OK is dropped too. */
	mw(f.vm, f.d.common + 0x14, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_DRIVER_OK, 1);
	assert_int_equal(drv_status(&f.d), VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	assert_true(drv_init(&f.d, VIRTIO_F_VERSION_1));
	/* Features are fixed after FEATURES_OK. */
	mw(f.vm, f.d.common + 0x08, 0, 4);
	mw(f.vm, f.d.common + 0x0c, 0xffffffff, 4);
	assert_int_equal(mr(f.vm, f.d.common + 0x0c, 4), 0);
	/* Queue sizes: powers of two up to the maximum, else ignored. */
	mw(f.vm, f.d.common + 0x16, 0, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x18, 2), VIRTIO_BLK_QUEUE_SIZE);
	mw(f.vm, f.d.common + 0x18, 12, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x18, 2), VIRTIO_BLK_QUEUE_SIZE);
	mw(f.vm, f.d.common + 0x18, 512, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x18, 2), VIRTIO_BLK_QUEUE_SIZE);
	mw(f.vm, f.d.common + 0x18, 8, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x18, 2), 8);
	/* A queue that does not exist reads as size 0 and ignores writes. */
	mw(f.vm, f.d.common + 0x16, 3, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x18, 2), 0);
	mw(f.vm, f.d.common + 0x1c, 1, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x1c, 2), 0);
	/* Vectors past the MSI-X table read back as NO_VECTOR. */
	mw(f.vm, f.d.common + 0x10, 7, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x10, 2), 0xffff);
	mw(f.vm, f.d.common + 0x10, 1, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x10, 2), 1);
	blk_teardown(&f);
}

/* Each malformed ring ends in DEVICE_NEEDS_RESET with nothing written; a reset recovers. */
static void expect_needs_reset(struct blkfx *f, int line)
{
	if (!(drv_status(&f->d) & VIRTIO_S_NEEDS_RESET))
		fail_msg("case at line %d: device did not ask for a reset", line);
	assert_int_equal(gq_used_idx(&f->g), f->g.last_used);
	assert_int_equal(mr(f->vm, f->d.isr, 1), VIRTIO_ISR_CONFIG);
	/* Notifications are ignored until the reset. */
	gq_kick(&f->g);
	assert_int_equal(gq_used_idx(&f->g), f->g.last_used);
	assert_true(drv_init(&f->d, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(drv_status(&f->d) & VIRTIO_S_NEEDS_RESET, 0);
	gq_setup(&f->d, &f->g, 0, 16, Q0_BASE);
	drv_ok(&f->d);
	assert_int_equal(blk_do(&f->g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mr(f->vm, f->d.isr, 1), VIRTIO_ISR_QUEUE);
}

static void chain_and_kick(struct blkfx *f, uint16_t head)
{
	dirty_clear(f->vm);
	gq_put(&f->g, head);
	gq_kick(&f->g);
	assert_int_equal(dirty_count(f->vm), 0);
}

static void test_malformed_chains(void **state)
{
	struct blkfx f;

	blk_setup(&f, false, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);

	/* A buffer outside guest RAM. */
	gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.g, 1, RAM_SIZE + 4096, 512, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 2);
	gq_desc(&f.g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* A buffer crossing the end of RAM, and one whose end wraps around. */
	gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.g, 1, RAM_SIZE - 256, 512, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 2);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.g, 1, ~0ull - 100, 0xffffffff, VMM_VRING_DESC_F_WRITE | VMM_VRING_DESC_F_NEXT,
		2);
	gq_desc(&f.g, 2, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* A loop: 0 -> 1 -> 0. */
	gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.g, 1, STATUS_GPA, 1, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* next out of range, head out of range. */
	gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 16);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	chain_and_kick(&f, 16);
	expect_needs_reset(&f, __LINE__);

	/* A chain as long as the queue is fine... (16 descriptors, 15 of them 1-byte writes) */
	gq_desc(&f.g, 0, HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1);
	for (uint16_t i = 1; i < 16; i++)
		gq_desc(&f.g, i, STATUS_GPA + i, 1,
			VMM_VRING_DESC_F_WRITE | (i < 15 ? VMM_VRING_DESC_F_NEXT : 0), i + 1);
	memset(ram(f.vm, HDR_GPA), 0, 16);
	*(uint32_t *)ram(f.vm, HDR_GPA) = VIRTIO_BLK_T_FLUSH;
	gq_put(&f.g, 0);
	gq_kick(&f.g);
	uint32_t id, len;
	assert_true(gq_get(&f.g, &id, &len));
	assert_int_equal(drv_status(&f.d) & VIRTIO_S_NEEDS_RESET, 0);
	assert_int_equal(mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);

	/* ... an avail index more than a queue ahead is not. */
	uint16_t bogus = f.g.next_avail + 17;
	*(uint16_t *)ram(f.vm, f.g.avail + 2) = bogus;
	gq_kick(&f.g);
	expect_needs_reset(&f, __LINE__);

	/* Readable after writable. */
	gq_desc(&f.g, 0, STATUS_GPA, 1, VMM_VRING_DESC_F_NEXT | VMM_VRING_DESC_F_WRITE, 1);
	gq_desc(&f.g, 1, HDR_GPA, 16, 0, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* Indirect: nested, with NEXT, bad size, outside RAM, loop inside the table, and
	 * longer than VMM_VQ_MAX_SEGS. */
	struct vmm_vring_desc t[2] = {
	    {HDR_GPA, 16, VMM_VRING_DESC_F_NEXT, 1},
	    {INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0},
	};
	memcpy(ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT | VMM_VRING_DESC_F_NEXT, 1);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	gq_desc(&f.g, 0, INDIRECT_GPA, 33, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	gq_desc(&f.g, 0, RAM_SIZE - 16, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	t[1] = (struct vmm_vring_desc){STATUS_GPA, 1,
				       VMM_VRING_DESC_F_WRITE | VMM_VRING_DESC_F_NEXT, 0};
	memcpy(ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);
	gq_desc(&f.g, 0, INDIRECT_GPA, 16 * (VMM_VQ_MAX_SEGS + 1), VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* Indirect descriptors the driver did not negotiate. */
	assert_true(drv_init(&f.d, VIRTIO_F_VERSION_1));
	gq_setup(&f.d, &f.g, 0, 16, Q0_BASE);
	drv_ok(&f.d);
	t[1] = (struct vmm_vring_desc){STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0};
	memcpy(ram(f.vm, INDIRECT_GPA), t, sizeof(t));
	gq_desc(&f.g, 0, INDIRECT_GPA, 32, VMM_VRING_DESC_F_INDIRECT, 0);
	chain_and_kick(&f, 0);
	expect_needs_reset(&f, __LINE__);

	/* Rings outside RAM or misaligned when the queue is enabled. */
	assert_true(drv_init(&f.d, VIRTIO_F_VERSION_1));
	gq_setup_at(&f.d, &f.g, 0, 16, RAM_SIZE - 128, Q0_BASE + 0x1000, Q0_BASE + 0x2000);
	assert_true(drv_status(&f.d) & VIRTIO_S_NEEDS_RESET);
	assert_int_equal(mr(f.vm, f.d.common + 0x1c, 2), 0);
	assert_true(drv_init(&f.d, VIRTIO_F_VERSION_1));
	gq_setup_at(&f.d, &f.g, 0, 16, Q0_BASE + 8, Q0_BASE + 0x1000, Q0_BASE + 0x2000);
	assert_true(drv_status(&f.d) & VIRTIO_S_NEEDS_RESET);

	/* A chain without a status byte is returned unused; the device goes on. */
	assert_true(drv_init(&f.d, VIRTIO_F_VERSION_1));
	gq_setup(&f.d, &f.g, 0, 16, Q0_BASE);
	drv_ok(&f.d);
	gq_desc(&f.g, 0, HDR_GPA, 16, 0, 0);
	gq_put(&f.g, 0);
	gq_kick(&f.g);
	assert_true(gq_get(&f.g, &id, &len));
	assert_int_equal(len, 0);
	assert_int_equal(drv_status(&f.d) & VIRTIO_S_NEEDS_RESET, 0);
	/* A short header is an I/O error. */
	gq_desc(&f.g, 0, HDR_GPA, 8, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.g, 1, STATUS_GPA, 1, VMM_VRING_DESC_F_WRITE, 0);
	gq_put(&f.g, 0);
	gq_kick(&f.g);
	assert_true(gq_get(&f.g, &id, &len));
	assert_int_equal(*ram(f.vm, STATUS_GPA), VIRTIO_BLK_S_IOERR);
	blk_teardown(&f);
}

static void test_msix(void **state)
{
	struct blkfx f;
	struct vmm_pci_func *fn;

	blk_setup(&f, false, VIRTIO_F_VERSION_1);
	fn = f.vm->pci->slots[1];
	uint64_t table = f.d.bar0 + VIRTIO_MSIX_TABLE_OFF, pba = f.d.bar0 + VIRTIO_MSIX_PBA_OFF;

	/* Entries start masked; only the mask bit of vector control sticks. */
	assert_int_equal(mr(f.vm, table + 12, 4), 1);
	mw(f.vm, table + 0, 0xfee00003, 4);
	mw(f.vm, table + 8, 0x4041, 4);
	mw(f.vm, table + 16, 0xfee00000ull, 8);
	mw(f.vm, table + 24, 0x4042ull | (1ull << 32), 8);
	assert_int_equal(mr(f.vm, table + 0, 4), 0xfee00000);
	assert_int_equal(mr(f.vm, table + 8, 4), 0x4041);
	assert_int_equal(mr(f.vm, table + 24, 4), 0x4042);
	mw(f.vm, table + 28, 0xfffffffe, 4);
	assert_int_equal(mr(f.vm, table + 28, 4), 0);

	/* Enable MSI-X with the function masked; route queue 0 to vector 1. */
	pci_wr(f.vm, 1, f.d.msix + 2, VMM_PCI_MSIX_CTRL_ENABLE | VMM_PCI_MSIX_CTRL_MASK, 2);
	assert_int_equal(pci_rd(f.vm, 1, f.d.msix + 2, 2),
			 VMM_PCI_MSIX_CTRL_ENABLE | VMM_PCI_MSIX_CTRL_MASK | 1);
	mw(f.vm, f.d.common + 0x16, 0, 2);
	mw(f.vm, f.d.common + 0x1a, 1, 2);
	assert_int_equal(mr(f.vm, f.d.common + 0x1a, 2), 1);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	/* No ISR, no INTx with MSI-X on: the vector is pending while masked. */
	assert_false(fn->intx_out);
	assert_int_equal(mr(f.vm, f.d.isr, 1), 0);
	assert_int_equal(mr(f.vm, pba, 8), 2);
	/* Unmasking the function sends it (the irqchip refuses here: vm_fd is -1). */
	pci_wr(f.vm, 1, f.d.msix + 2, VMM_PCI_MSIX_CTRL_ENABLE, 2);
	assert_int_equal(mr(f.vm, pba, 8), 0);
	/* A masked vector pends; unmasking it sends it. */
	mw(f.vm, table + 28, 1, 4);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mr(f.vm, pba, 4), 2);
	mw(f.vm, table + 28, 0, 4);
	assert_int_equal(mr(f.vm, pba, 4), 0);
	/* The PBA is read-only. */
	mw(f.vm, pba, 0xff, 4);
	assert_int_equal(mr(f.vm, pba, 4), 0);
	/* A queue without a vector signals nothing. */
	mw(f.vm, f.d.common + 0x1a, 0xffff, 2);
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mr(f.vm, pba, 4), 0);
	blk_teardown(&f);
}

/* ---- save and restore ----------------------------------------------------------------- */

static void save_dev(struct vmm_vm *vm, uint32_t id, struct kb_buf *out)
{
	struct vmm_dev *d = find_dev(vm, id);
	kb_buf_init(out, 0);
	assert_int_equal(d->ops->save(d->opaque, out), 0);
}

static int restore_dev(struct vmm_vm *vm, uint32_t id, const void *p, size_t len)
{
	struct vmm_dev *d = find_dev(vm, id);
	struct kb_reader r;
	kb_rd_init(&r, p, len);
	int rv = d->ops->restore(d->opaque, &r);
	if (rv == 0)
		assert_int_equal(kb_rd_left(&r), 0);
	return rv;
}

/* Restoring every strict prefix of rec fails and leaves the saved bytes unchanged. */
static void check_truncations(struct vmm_vm *vm, uint32_t id, const struct kb_buf *rec)
{
	struct kb_buf before, after;

	save_dev(vm, id, &before);
	for (size_t n = 0; n < rec->len; n++) {
		assert_int_not_equal(restore_dev(vm, id, rec->data, n), 0);
		save_dev(vm, id, &after);
		assert_int_equal(after.len, before.len);
		assert_memory_equal(after.data, before.data, before.len);
		kb_buf_close(&after);
	}
	kb_buf_close(&before);
}

/* Flips bytes of rec one at a time; a restore that fails must leave the device as it was. */
static void check_corruptions(struct vmm_vm *vm, uint32_t id, const struct kb_buf *rec)
{
	struct kb_buf before, after;
	uint8_t *copy = malloc(rec->len);
	unsigned refused = 0;

	save_dev(vm, id, &before);
	for (size_t i = 0; i < rec->len; i++) {
		memcpy(copy, rec->data, rec->len);
		copy[i] ^= 0xa5;
		if (restore_dev(vm, id, copy, rec->len) == 0) {
			/* Accepted (a writable field): put the original back. */
			assert_int_equal(restore_dev(vm, id, before.data, before.len), 0);
			continue;
		}
		refused++;
		save_dev(vm, id, &after);
		assert_memory_equal(after.data, before.data, before.len);
		kb_buf_close(&after);
	}
	assert_true(refused > 0);
	free(copy);
	kb_buf_close(&before);
}

static void test_blk_save_restore(void **state)
{
	struct blkfx f;
	struct kb_buf pci_rec, blk_rec, pci2, blk2;
	uint32_t blk_id = VMM_DEV_ID(VMM_DEV_VIRTIO_BLK, 0), pci_id = VMM_DEV_ID(VMM_DEV_PCI, 0);
	struct kb_errmsg err = {{0}};

	blk_setup(&f, false, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_FLUSH);
	pci_wr(f.vm, 1, f.d.msix + 2, VMM_PCI_MSIX_CTRL_MASK, 2); /* a writable bit */
	mw(f.vm, f.d.bar0 + VIRTIO_MSIX_TABLE_OFF + 8, 0x55, 4);
	memcpy(ram(f.vm, DATA_GPA), "saved-and-restored", 18);
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    blk_do(&f.g, VIRTIO_BLK_T_OUT, (uint64_t)i, DATA_GPA, 512, false, NULL),
		    VIRTIO_BLK_S_OK);
	/* Leave the ISR set (INTx asserted) across the save. */
	save_dev(f.vm, pci_id, &pci_rec);
	save_dev(f.vm, blk_id, &blk_rec);

	/* A fresh VM on the same image with a copy of guest memory. */
	struct vmm_vm *vm2 = vm_new();
	assert_int_equal(vmm_virtio_blk_create(vm2, f.img, false, &err), 0);
	memcpy(vm2->mem.base, f.vm->mem.base, RAM_SIZE);
	assert_int_equal(restore_dev(vm2, pci_id, pci_rec.data, pci_rec.len), 0);
	assert_int_equal(restore_dev(vm2, blk_id, blk_rec.data, blk_rec.len), 0);
	save_dev(vm2, pci_id, &pci2);
	save_dev(vm2, blk_id, &blk2);
	assert_int_equal(pci2.len, pci_rec.len);
	assert_memory_equal(pci2.data, pci_rec.data, pci_rec.len);
	assert_int_equal(blk2.len, blk_rec.len);
	assert_memory_equal(blk2.data, blk_rec.data, blk_rec.len);
	assert_true(vm2->pci->slots[1]->intx_out); /* the line is driven again */

	/* Both VMs carry on identically from here. */
	struct drv d2 = f.d;
	struct gq g2 = f.g;
	d2.vm = vm2;
	g2.d = &d2;
	assert_int_equal(mr(vm2, d2.common + 0x14, 1), drv_status(&f.d));
	assert_int_equal(pci_rd(vm2, 1, f.d.msix + 2, 2), pci_rd(f.vm, 1, f.d.msix + 2, 2));
	assert_int_equal(blk_do(&f.g, VIRTIO_BLK_T_IN, 3, DATA2_GPA, 512, true, NULL), 0);
	assert_int_equal(blk_do(&g2, VIRTIO_BLK_T_IN, 3, DATA2_GPA, 512, true, NULL), 0);
	assert_int_equal(gq_used_idx(&g2), 6);
	assert_memory_equal(ram(vm2, 0), ram(f.vm, 0), RAM_SIZE);
	assert_memory_equal(ram(vm2, DATA2_GPA), "saved-and-restored", 18);

	/* Bad records change nothing. */
	check_truncations(vm2, blk_id, &blk_rec);
	check_truncations(vm2, pci_id, &pci_rec);
	check_corruptions(vm2, blk_id, &blk_rec);
	check_corruptions(vm2, pci_id, &pci_rec);

	/* Specific refusals: a queue size that is not a power of two, rings outside RAM,
	 * another disk size. Offsets: header 8, transport fields 24, queue 0 at 32. */
	uint8_t *copy = malloc(blk_rec.len);
	memcpy(copy, blk_rec.data, blk_rec.len);
	copy[32] = 12;
	assert_int_equal(restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EPROTO);
	memcpy(copy, blk_rec.data, blk_rec.len);
	uint64_t far = RAM_SIZE;
	memcpy(&copy[32 + 10], &far, 8);
	assert_int_equal(restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EPROTO);
	memcpy(copy, blk_rec.data, blk_rec.len);
	copy[blk_rec.len - 9] ^= 1;
	assert_int_equal(restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EPROTO);
	memcpy(copy, blk_rec.data, blk_rec.len);
	copy[4] = 2; /* version */
	assert_int_equal(restore_dev(vm2, blk_id, copy, blk_rec.len), KB_EVERSION);
	free(copy);

	/* Reset returns both to power-on state. */
	find_dev(vm2, pci_id)->ops->reset(vm2->pci);
	find_dev(vm2, blk_id)->ops->reset(find_dev(vm2, blk_id)->opaque);
	assert_int_equal(mr(vm2, d2.common + 0x14, 1), 0xff); /* decoding off after reset */
	assert_int_equal(pci_rd(vm2, 1, VMM_PCI_COMMAND, 2), 0);
	pci_wr(vm2, 1, VMM_PCI_COMMAND, VMM_PCI_CMD_MEM, 2);
	assert_int_equal(mr(vm2, d2.common + 0x14, 1), 0);
	assert_false(vm2->pci->slots[1]->intx_out);
	assert_int_equal(vm2->pci->gsi_refs[5], 0);

	kb_buf_close(&pci_rec);
	kb_buf_close(&blk_rec);
	kb_buf_close(&pci2);
	kb_buf_close(&blk2);
	vm_free(vm2);
	blk_teardown(&f);
}

/* ---- virtio-net ----------------------------------------------------------------------- */

struct netfx {
	struct vmm_vm *vm;
	struct vmm_virtio_net *n;
	int peer; /* the host side of the backend */
	struct drv d;
	struct gq rx, tx;
};

static const uint8_t test_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void net_setup(struct netfx *f, bool start)
{
	struct kb_errmsg err = {{0}};
	int sv[2];

	f->vm = vm_new();
	assert_int_equal(vmm__event_init(f->vm), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	f->peer = sv[1];
	assert_int_equal(vmm__virtio_net_create_fd(f->vm, sv[0], test_mac, &f->n, &err), 0);
	drv_probe(&f->d, f->vm, 1);
	assert_int_equal(pci_rd(f->vm, 1, VMM_PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(pci_rd(f->vm, 1, 0x0b, 1), 0x02);
	if (!start)
		return;
	assert_true(drv_init(&f->d, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS));
	gq_setup(&f->d, &f->rx, VIRTIO_NET_RXQ, 16, Q0_BASE);
	gq_setup(&f->d, &f->tx, VIRTIO_NET_TXQ, 16, Q1_BASE);
	drv_ok(&f->d);
}

static void net_teardown(struct netfx *f)
{
	close(f->peer);
	vm_free(f->vm);
}

/* Posts RX buffer i (2 KiB at DATA_GPA + i * 2 KiB) as descriptor i. */
static void post_rx(struct netfx *f, uint16_t i, uint32_t len)
{
	gq_desc(&f->rx, i, DATA_GPA + 2048ull * i, len, VMM_VRING_DESC_F_WRITE, 0);
	gq_put(&f->rx, i);
}

static bool wait_used(struct gq *g, uint16_t idx)
{
	uint64_t end = kb_now_ns() + 2 * KB_NSEC_PER_SEC;

	while (gq_used_idx(g) != idx) {
		if (kb_now_ns() > end)
			return false;
		usleep(1000);
	}
	return true;
}

static void send_frame(int fd, const char *payload, size_t len)
{
	uint8_t pkt[12 + 14 + 256] = {0};

	pkt[2] = 0x77; /* a header field the device must not pass on */
	memset(pkt + 12, 0xff, 6);
	memcpy(pkt + 12 + 6, test_mac, 6);
	memcpy(pkt + 12 + 14, payload, len);
	assert_int_equal(send(fd, pkt, 12 + 14 + len, 0), (ssize_t)(12 + 14 + len));
}

static void test_net_tx_rx(void **state)
{
	struct netfx f;
	uint8_t buf[2048];
	uint32_t id, len;

	net_setup(&f, true);
	for (int i = 0; i < 6; i++)
		assert_int_equal(mr(f.vm, f.d.device + (uint64_t)i, 1), test_mac[i]);
	assert_int_equal(mr(f.vm, f.d.device + 6, 2), VIRTIO_NET_S_LINK_UP);

	/* TX: header (guest's, ignored) + frame split across two buffers. */
	memset(ram(f.vm, HDR_GPA), 0x33, 12);
	memcpy(ram(f.vm, DATA_GPA), "\x01\x02\x03\x04\x05\x06\x52\x54\x00\x12\x34\x56\x08\x00", 14);
	memcpy(ram(f.vm, DATA_GPA + 14), "hello, wire", 11);
	gq_desc(&f.tx, 0, HDR_GPA, 12, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.tx, 1, DATA_GPA, 25, 0, 0);
	gq_put(&f.tx, 0);
	gq_kick(&f.tx);
	assert_true(gq_get(&f.tx, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	ssize_t n = recv(f.peer, buf, sizeof(buf), 0);
	assert_int_equal(n, 12 + 25);
	assert_memory_equal(buf, (uint8_t[12]){0}, 12);
	assert_memory_equal(buf + 12, ram(f.vm, DATA_GPA), 25);
	/* A frame without a full header and Ethernet header is dropped, still returned. */
	gq_desc(&f.tx, 0, HDR_GPA, 20, 0, 0);
	gq_put(&f.tx, 0);
	gq_kick(&f.tx);
	assert_true(gq_get(&f.tx, &id, &len));
	assert_int_equal(recv(f.peer, buf, sizeof(buf), 0), -1);
	assert_int_equal(f.n->tx_frames, 1);
	assert_int_equal(f.n->tx_dropped, 1);

	/* RX on the event thread into a posted buffer: fresh header, frame, dirty pages. */
	dirty_clear(f.vm);
	post_rx(&f, 0, 2048);
	gq_kick(&f.rx);
	send_frame(f.peer, "ping", 4);
	assert_true(wait_used(&f.rx, 1));
	assert_true(gq_get(&f.rx, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 12 + 14 + 4);
	uint8_t want_hdr[12] = {0};
	want_hdr[10] = 1; /* num_buffers */
	assert_memory_equal(ram(f.vm, DATA_GPA), want_hdr, 12);
	assert_memory_equal(ram(f.vm, DATA_GPA + 12 + 14), "ping", 4);
	assert_true(page_dirty(f.vm, DATA_GPA));
	assert_true(page_dirty(f.vm, f.rx.used));
	assert_int_equal(dirty_count(f.vm), 2);

	/* No buffer posted: the frame waits in the backend until the guest posts one and
	 * notifies; the delivery happens on the notifying thread. */
	send_frame(f.peer, "late", 4);
	usleep(20000);
	assert_int_equal(gq_used_idx(&f.rx), 1);
	assert_true(f.n->rx_stalled);
	post_rx(&f, 1, 2048);
	gq_kick(&f.rx);
	assert_int_equal(gq_used_idx(&f.rx), 2);
	assert_true(gq_get(&f.rx, &id, &len));
	assert_int_equal(id, 1);
	assert_memory_equal(ram(f.vm, DATA_GPA + 2048 + 26), "late", 4);

	/* A buffer too small for the frame is kept; the frame is dropped. */
	post_rx(&f, 2, 30);
	gq_kick(&f.rx);
	send_frame(f.peer, "0123456789", 10);
	send_frame(f.peer, "ok", 2);
	assert_true(wait_used(&f.rx, 3));
	assert_true(gq_get(&f.rx, &id, &len));
	assert_int_equal(id, 2);
	assert_int_equal(len, 28);
	assert_int_equal(f.n->rx_dropped, 1);

	/* Paused: nothing is written into guest memory until unpaused. */
	struct vmm_dev *dev = find_dev(f.vm, VMM_DEV_ID(VMM_DEV_VIRTIO_NET, 0));
	dev->ops->pause(dev->opaque, true);
	post_rx(&f, 3, 2048);
	gq_kick(&f.rx);
	dirty_clear(f.vm);
	send_frame(f.peer, "held", 4);
	usleep(20000);
	assert_int_equal(gq_used_idx(&f.rx), 3);
	assert_int_equal(dirty_count(f.vm), 0);
	dev->ops->pause(dev->opaque, false);
	assert_int_equal(gq_used_idx(&f.rx), 4);
	assert_memory_equal(ram(f.vm, DATA_GPA + 3 * 2048 + 26), "held", 4);

	/* INTx carried the notifications; the ISR says so. */
	assert_int_equal(mr(f.vm, f.d.isr, 1), VIRTIO_ISR_QUEUE);
	/* A malformed RX chain sets NEEDS_RESET; frames stay in the backend. */
	gq_desc(&f.rx, 4, RAM_SIZE, 2048, VMM_VRING_DESC_F_WRITE, 0);
	gq_put(&f.rx, 4);
	gq_kick(&f.rx);
	send_frame(f.peer, "lost", 4);
	usleep(20000);
	assert_true(drv_status(&f.d) & VIRTIO_S_NEEDS_RESET);
	net_teardown(&f);
}

static void test_net_start_and_save_restore(void **state)
{
	struct netfx f;
	struct kb_buf rec, rec2;
	uint32_t id = VMM_DEV_ID(VMM_DEV_VIRTIO_NET, 0), used_id, len;
	uint8_t *mem = malloc(RAM_SIZE);
	uint8_t buf[256];

	net_setup(&f, false);
	/* Buffers and frames made available before DRIVER_OK move at DRIVER_OK. */
	assert_true(drv_init(&f.d, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC));
	gq_setup(&f.d, &f.rx, VIRTIO_NET_RXQ, 16, Q0_BASE);
	gq_setup(&f.d, &f.tx, VIRTIO_NET_TXQ, 16, Q1_BASE);
	post_rx(&f, 0, 2048);
	post_rx(&f, 1, 2048);
	gq_kick(&f.rx);
	send_frame(f.peer, "early", 5);
	usleep(20000);
	assert_int_equal(gq_used_idx(&f.rx), 0);
	drv_ok(&f.d);
	assert_int_equal(gq_used_idx(&f.rx), 1);

	/* Save with one RX buffer still posted (the event thread runs one VM per process:
	 * the first VM goes before the second comes). */
	struct vmm_dev *dev = find_dev(f.vm, id);
	dev->ops->pause(dev->opaque, true);
	save_dev(f.vm, id, &rec);
	memcpy(mem, f.vm->mem.base, RAM_SIZE);
	struct netfx g = f;
	net_teardown(&f);

	/* A fresh device on a new backend with the same memory. */
	net_setup(&f, false);
	memcpy(f.vm->mem.base, mem, RAM_SIZE);
	f.rx.d = f.tx.d = &f.d;
	f.rx.next_avail = g.rx.next_avail;
	f.rx.last_used = g.rx.last_used;
	dev = find_dev(f.vm, id);
	dev->ops->pause(dev->opaque, true);
	assert_int_equal(restore_dev(f.vm, id, rec.data, rec.len), 0);
	save_dev(f.vm, id, &rec2);
	assert_int_equal(rec2.len, rec.len);
	assert_memory_equal(rec2.data, rec.data, rec.len);
	assert_int_equal(drv_status(&f.d), VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER |
					       VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK);

	/* Restored while paused: a frame waits until the core unpauses the device. */
	send_frame(f.peer, "after", 5);
	usleep(20000);
	assert_int_equal(gq_used_idx(&f.rx), 1);
	dev->ops->pause(dev->opaque, false);
	assert_int_equal(gq_used_idx(&f.rx), 2);
	assert_true(gq_get(&f.rx, &used_id, &len));
	assert_true(gq_get(&f.rx, &used_id, &len));
	assert_int_equal(used_id, 1);
	assert_memory_equal(ram(f.vm, DATA_GPA + 2048 + 26), "after", 5);
	/* TX goes on where the saved ring left off. */
	memcpy(ram(f.vm, DATA_GPA + 8192),
	       "\x01\x02\x03\x04\x05\x06\x52\x54\x00\x12\x34\x56\x08\x00", 14);
	gq_desc(&f.tx, 0, HDR_GPA, 12, VMM_VRING_DESC_F_NEXT, 1);
	gq_desc(&f.tx, 1, DATA_GPA + 8192, 14, 0, 0);
	gq_put(&f.tx, 0);
	gq_kick(&f.tx);
	assert_true(gq_get(&f.tx, &used_id, &len));
	assert_int_equal(recv(f.peer, buf, sizeof(buf), 0), 26);

	/* Bad records change nothing: truncations, flipped bytes, another MAC. */
	check_truncations(f.vm, id, &rec);
	check_corruptions(f.vm, id, &rec);
	uint8_t *copy = malloc(rec.len);
	memcpy(copy, rec.data, rec.len);
	copy[rec.len - 3] ^= 1; /* last MAC byte */
	assert_int_equal(restore_dev(f.vm, id, copy, rec.len), KB_EPROTO);
	free(copy);

	kb_buf_close(&rec);
	kb_buf_close(&rec2);
	free(mem);
	net_teardown(&f);
}

static void test_create_errors(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm = vm_new();
	char *img;
	int rv;

	assert_int_equal(vmm_virtio_blk_create(vm, "/nonexistent/disk.img", false, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/disk.img"));
	img = temp_image(100);
	assert_int_equal(vmm_virtio_blk_create(vm, img, false, &err), KB_ECONFIG);
	unlink(img);
	assert_int_equal(vmm_virtio_net_create(vm, "", test_mac, &err), KB_ECONFIG);
	assert_int_equal(vmm_virtio_net_create(vm, "a-name-far-too-long-for-linux", test_mac, &err),
			 KB_ECONFIG);
	assert_int_equal(vmm_pci_init(vm), KB_ESTATE);

	/* Allocation failures: each step fails cleanly, then creation succeeds. */
	img = temp_image(1 << 20);
	for (int n = 0;; n++) {
		kb_heap_fail_after(n, 1);
		rv = vmm_virtio_blk_create(vm, img, false, &err);
		kb_heap_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_true(n < 10);
	}
	unlink(img);
	vm_free(vm);

	/* The same for a network device (the backend fd is closed on every failure). */
	vm = vm_new();
	assert_int_equal(vmm__event_init(vm), 0);
	for (int n = 0;; n++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
		kb_heap_fail_after(n, 1);
		rv = vmm__virtio_net_create_fd(vm, sv[0], test_mac, NULL, &err);
		kb_heap_fail_reset();
		close(sv[1]);
		if (rv == 0)
			break;
		assert_int_equal(rv, -ENOMEM);
		assert_true(n < 10);
	}
	vm_free(vm);

	/* No bridge: devices refuse. */
	vm = calloc(1, sizeof(*vm));
	kb_list_init(&vm->devs);
	assert_int_equal(vmm_virtio_blk_create(vm, "/dev/null", false, &err), KB_ESTATE);
	free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pci_host_bridge_and_absent_slots),
	    cmocka_unit_test(test_pci_function_config_space),
	    cmocka_unit_test(test_pci_bar_and_gsi_assignment),
	    cmocka_unit_test(test_blk_write_then_read),
	    cmocka_unit_test(test_blk_readonly_and_indirect),
	    cmocka_unit_test(test_features_and_status),
	    cmocka_unit_test(test_malformed_chains),
	    cmocka_unit_test(test_msix),
	    cmocka_unit_test(test_blk_save_restore),
	    cmocka_unit_test(test_net_tx_rx),
	    cmocka_unit_test(test_net_start_and_save_restore),
	    cmocka_unit_test(test_create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
