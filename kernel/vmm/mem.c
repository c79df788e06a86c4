/*
 * Guest memory: one memfd holding all guest RAM, mapped once into vmx, registered with KVM
 * as one or two memory slots around the MMIO hole below 4 GiB.
 *
 * The memfd lets the migration and FT code map the same pages, and lets save/restore read
 * and write guest memory without touching KVM. Pages are allocated on first touch; a
 * guest's untouched RAM costs nothing. The VMM's own writes are tracked in `dirty`, a bitmap
 * over memfd pages, because KVM's dirty log sees only vCPU writes.
 */
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

int vmm__mem_init(struct vmm_mem *m, uint64_t size, struct kb_errmsg *err)
{
	int rv;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (size == 0 || size % (2ull << 20) != 0) {
		kb_errmsg_setf(err, "memory size %llu is not a positive multiple of 2 MiB",
			       (unsigned long long)size);
		return KB_ECONFIG;
	}
	m->memfd = memfd_create("keel-guest-ram", MFD_CLOEXEC);
	if (m->memfd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "memfd_create: %s", kb_strerror(rv));
		return rv;
	}
	if (ftruncate(m->memfd, (off_t)size) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "sizing guest memory to %llu bytes: %s",
			       (unsigned long long)size, kb_strerror(rv));
		goto err_close;
	}
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->memfd, 0);
	if (m->base == MAP_FAILED) {
		rv = -errno;
		m->base = NULL;
		kb_errmsg_setf(err, "mapping guest memory: %s", kb_strerror(rv));
		goto err_close;
	}
	m->size = size;
	m->dirty_words = (size / VMM_PAGE_SIZE + 63) / 64;
	m->dirty = kb_calloc(m->dirty_words, sizeof(uint64_t));
	if (m->dirty == NULL) {
		rv = -ENOMEM;
		kb_errmsg_setf(err, "allocating the dirty bitmap");
		goto err_unmap;
	}

	uint64_t low = size < KGUEST_MMIO_HOLE ? size : KGUEST_MMIO_HOLE;
	m->regions[0] =
	    (struct vmm_mem_region){.gpa = 0, .size = low, .off = 0, .hva = m->base, .slot = 0};
	m->nr_regions = 1;
	if (size > low) {
		m->regions[1] = (struct vmm_mem_region){.gpa = KGUEST_HIGH_RAM,
							.size = size - low,
							.off = low,
							.hva = m->base + low,
							.slot = 1};
		m->nr_regions = 2;
	}
	return 0;

err_unmap:
	munmap(m->base, size);
	m->base = NULL;
err_close:
	close(m->memfd);
	m->memfd = -1;
	return rv;
}

int vmm__mem_register(struct vmm_mem *m, int vm_fd, uint32_t flags, struct kb_errmsg *err)
{
	for (int i = 0; i < m->nr_regions; i++) {
		struct vmm_mem_region *r = &m->regions[i];
		struct kvm_userspace_memory_region kr = {
		    .slot = r->slot,
		    .flags = flags,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0) {
			int rv = -errno;
			kb_errmsg_setf(err, "KVM_SET_USER_MEMORY_REGION slot %u: %s", r->slot,
				       kb_strerror(rv));
			return rv;
		}
	}
	return 0;
}

void vmm__mem_close(struct vmm_mem *m)
{
	kb_free(m->dirty);
	m->dirty = NULL;
	if (m->base != NULL)
		munmap(m->base, m->size);
	m->base = NULL;
	if (m->memfd >= 0)
		close(m->memfd);
	m->memfd = -1;
}

int vmm__mem_discard(struct vmm_mem *m)
{
	if (fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)m->size) < 0)
		return -errno;
	return 0;
}

static struct vmm_mem_region *region_of(struct vmm_mem *m, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < m->nr_regions; i++) {
		struct vmm_mem_region *r = &m->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r;
	}
	return NULL;
}

void *vmm_mem_ptr(struct vmm_mem *m, uint64_t gpa, uint64_t len)
{
	struct vmm_mem_region *r = region_of(m, gpa, len);

	return r != NULL ? r->hva + (gpa - r->gpa) : NULL;
}

void vmm_mem_dirty(struct vmm_mem *m, uint64_t gpa, uint64_t len)
{
	struct vmm_mem_region *r = region_of(m, gpa, len ? len : 1);

	if (r == NULL || m->dirty == NULL)
		return;
	uint64_t first = (r->off + gpa - r->gpa) / VMM_PAGE_SIZE;
	uint64_t last = (r->off + gpa - r->gpa + (len ? len : 1) - 1) / VMM_PAGE_SIZE;
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&m->dirty[p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
}

int vmm_mem_read(struct vmm_mem *m, uint64_t gpa, void *out, uint64_t len)
{
	void *p = vmm_mem_ptr(m, gpa, len);

	if (p == NULL)
		return KB_EGUEST;
	memcpy(out, p, len);
	return 0;
}

int vmm_mem_write(struct vmm_mem *m, uint64_t gpa, const void *in, uint64_t len)
{
	void *p = vmm_mem_ptr(m, gpa, len);

	if (p == NULL)
		return KB_EGUEST;
	memcpy(p, in, len);
	vmm_mem_dirty(m, gpa, len);
	return 0;
}

int vmm_mem_log_dirty(struct vmm_vm *vm, bool on, struct kb_errmsg *err)
{
	struct vmm_mem *m = &vm->mem;
	int rv;

	if (on) {
		for (uint64_t i = 0; i < m->dirty_words; i++)
			__atomic_store_n(&m->dirty[i], 0, __ATOMIC_RELAXED);
	}
	rv = vmm__mem_register(m, vm->vm_fd, on ? KVM_MEM_LOG_DIRTY_PAGES : 0, err);
	if (rv < 0)
		kb_errmsg_wrapf(err, "turning dirty logging %s", on ? "on" : "off");
	return rv;
}

int vmm_mem_fetch_dirty(struct vmm_vm *vm, uint64_t *out, struct kb_errmsg *err)
{
	struct vmm_mem *m = &vm->mem;
	uint64_t *bits = NULL;
	size_t cap = 0;
	int rv = 0;

	for (int i = 0; i < m->nr_regions; i++) {
		struct vmm_mem_region *r = &m->regions[i];
		uint64_t pages = r->size / VMM_PAGE_SIZE;
		size_t words = (size_t)((pages + 63) / 64);
		if (words > cap) {
			kb_free(bits);
			bits = kb_calloc(words, sizeof(uint64_t));
			if (bits == NULL) {
				kb_errmsg_setf(err, "allocating a dirty bitmap");
				return -ENOMEM;
			}
			cap = words;
		} else {
			memset(bits, 0, words * sizeof(uint64_t));
		}
		struct kvm_dirty_log log = {.slot = r->slot, .dirty_bitmap = bits};
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "KVM_GET_DIRTY_LOG slot %u: %s", r->slot,
				       kb_strerror(rv));
			break;
		}
		/* Regions start at 2 MiB multiples of the memfd: whole words. */
		uint64_t w0 = r->off / VMM_PAGE_SIZE / 64;
		for (size_t w = 0; w < words && w0 + w < m->dirty_words; w++)
			out[w0 + w] |= bits[w];
	}
	kb_free(bits);
	for (uint64_t w = 0; w < m->dirty_words; w++) {
		if (__atomic_load_n(&m->dirty[w], __ATOMIC_RELAXED) != 0)
			out[w] |= __atomic_exchange_n(&m->dirty[w], 0, __ATOMIC_RELAXED);
	}
	return rv;
}
