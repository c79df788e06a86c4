/*
 * Guest memory: one memfd holding all guest RAM, mapped once into vmx, registered with KVM
 * as one or two memory slots around the MMIO hole below 4 GiB.
 *
 * The memfd lets the migration and FT code map the same pages, and lets save/restore read
 * and write guest memory without touching KVM. The VMM's own writes are tracked in `dirty`,
 * a bitmap over memfd pages, because KVM's dirty log sees only vCPU writes.
 *
 * Backing (docs/vmx.md, "Large pages"): small pages (shmem, 4 KiB) are allocated on first
 * touch, and a guest's untouched RAM costs nothing. Large pages (--large-pages) come from
 * the host's pool of 2 MiB pages (hugetlbfs): the whole size is reserved from the pool when
 * the VM is created, so no later touch can fail, and pages are still taken on first touch.
 * A pool that cannot hold the VM leaves it on small pages. Large-page files know neither
 * SEEK_DATA nor write(2), and punching a hole would give the reservation back; the helpers
 * below (vmm_mem_next_data, vmm_mem_put, vmm_mem_zero) hide the difference.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26) /* log2(2 MiB) << MFD_HUGE_SHIFT */
#endif

#define PUNCH_MIN (2ull << 20) /* small pages: zeroed ranges from this size go back to the host */

/* Large pages: a memfd of 2 MiB pages, mapped with the whole size reserved from the pool.
 * Returns 0, or a negative errno with *why saying what the pool lacked. */
static int map_large(struct vmm_mem *m, uint64_t size, char *why, size_t whylen)
{
	int fd = memfd_create("keel-guest-ram", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	int rv;

	if (fd < 0) {
		rv = -errno;
		snprintf(why, whylen, "no large-page file: %s", kb_strerror(rv));
		return rv;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		rv = -errno;
		snprintf(why, whylen, "sizing the large-page file: %s", kb_strerror(rv));
		close(fd);
		return rv;
	}
	/* Without MAP_NORESERVE the mapping reserves every page it covers: ENOMEM now rather
	 * than SIGBUS at a guest's touch when the pool has run dry. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rv = -errno;
		snprintf(why, whylen, "the host's pool of 2 MiB pages cannot hold %llu MiB (%s)",
			 (unsigned long long)(size >> 20), kb_strerror(rv));
		close(fd);
		return rv;
	}
	m->memfd = fd;
	m->base = p;
	m->large = true;
	return 0;
}

int vmm__mem_init(struct vmm_mem *m, uint64_t size, bool large, struct kb_errmsg *err)
{
	int rv;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (size == 0 || size % (2ull << 20) != 0) {
		kb_errmsg_setf(err, "memory size %llu is not a positive multiple of 2 MiB",
			       (unsigned long long)size);
		return KB_ECONFIG;
	}
	if (large && map_large(m, size, m->small_why, sizeof(m->small_why)) == 0)
		goto mapped;
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
mapped:
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

/* Whether the 2 MiB page lp has been taken (is present in the mapping): 1, 0, or a
 * negative errno. mincore answers per 4 KiB page; the first of the large page tells. */
static int large_taken(struct vmm_mem *m, uint64_t lp)
{
	unsigned char in;

	if (mincore(m->base + lp * VMM_LARGE_PAGE, VMM_PAGE_SIZE, &in) < 0)
		return -errno;
	return in & 1;
}

int vmm_mem_next_data(struct vmm_mem *m, uint64_t off, uint64_t *start, uint64_t *end)
{
	*start = *end = m->size;
	if (off >= m->size)
		return 0;
	if (!m->large) {
		off_t data = lseek(m->memfd, (off_t)off, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: no data past off */
		off_t hole = lseek(m->memfd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > m->size)
			hole = (off_t)m->size;
		*start = (uint64_t)data;
		*end = (uint64_t)hole;
		return 0;
	}
	uint64_t lp = off / VMM_LARGE_PAGE, nr = m->size / VMM_LARGE_PAGE;
	int in = 0;

	while (lp < nr && (in = large_taken(m, lp)) == 0)
		lp++;
	if (in < 0)
		return in;
	if (lp == nr)
		return 0;
	*start = lp * VMM_LARGE_PAGE > off ? lp * VMM_LARGE_PAGE : off;
	while (++lp < nr && (in = large_taken(m, lp)) == 1)
		;
	if (in < 0)
		return in;
	*end = lp * VMM_LARGE_PAGE;
	return 0;
}

int vmm_mem_put(struct vmm_mem *m, uint64_t off, const void *data, size_t len)
{
	size_t done = 0;

	if (off > m->size || len > m->size - off)
		return -ERANGE;
	if (m->large) {
		memcpy(m->base + off, data, len);
		return 0;
	}
	/* the page cache takes whole pages without clearing them first, which a store
	 * through the mapping would (fault in a zeroed page, then overwrite it) */
	while (done < len) {
		ssize_t n = pwrite(m->memfd, (const uint8_t *)data + done, len - done,
				   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

int vmm_mem_zero(struct vmm_mem *m, uint64_t off, uint64_t len)
{
	if (off > m->size || len > m->size - off)
		return -ERANGE;
	if (!m->large) {
		if (len >= PUNCH_MIN && fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE |
						  FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
			return 0;
		memset(m->base + off, 0, len);
		return 0;
	}
	/* pages not taken yet are zero already; the reservation stays with the VM */
	while (len > 0) {
		uint64_t lp = off / VMM_LARGE_PAGE;
		uint64_t n = (lp + 1) * VMM_LARGE_PAGE - off;
		int in = large_taken(m, lp);

		if (in < 0)
			return in;
		if (n > len)
			n = len;
		if (in)
			memset(m->base + off, 0, n);
		off += n;
		len -= n;
	}
	return 0;
}

int vmm__mem_discard(struct vmm_mem *m)
{
	if (m->large)
		return vmm_mem_zero(m, 0, m->size);
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
