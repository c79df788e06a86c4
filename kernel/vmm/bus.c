/*
 * Port-I/O and MMIO buses: sorted ranges looked up by binary search on every exit.
 * Built before the vCPUs run and read-only afterwards, so lookups take no lock.
 */
#include <errno.h>
#include <string.h>

#include "kernel/vmm/vmm.h"
#include "lib/heap.h"

int vmm_bus_add(struct vmm_bus *b, uint64_t base, uint64_t len, const struct vmm_io_ops *ops,
		void *opaque)
{
	int i;

	if (len == 0 || base + len < base)
		return -EINVAL;
	for (i = 0; i < b->n; i++) {
		struct vmm_bus_range *r = &b->r[i];
		if (base < r->base + r->len && r->base < base + len)
			return KB_EEXIST;
		if (r->base > base)
			break;
	}
	if (b->n == b->cap) {
		int cap = b->cap ? b->cap * 2 : 16;
		struct vmm_bus_range *nr = kb_realloc(b->r, (size_t)cap * sizeof(*nr));
		if (nr == NULL)
			return -ENOMEM;
		b->r = nr;
		b->cap = cap;
	}
	memmove(&b->r[i + 1], &b->r[i], (size_t)(b->n - i) * sizeof(b->r[0]));
	b->r[i] = (struct vmm_bus_range){.base = base, .len = len, .ops = ops, .opaque = opaque};
	b->n++;
	return 0;
}

static struct vmm_bus_range *find(struct vmm_bus *b, uint64_t addr, unsigned len)
{
	int lo = 0, hi = b->n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		struct vmm_bus_range *r = &b->r[mid];
		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return len <= r->len - (addr - r->base) ? r : NULL;
	}
	return NULL;
}

bool vmm_bus_read(struct vmm_bus *b, uint64_t addr, void *data, unsigned len)
{
	struct vmm_bus_range *r = find(b, addr, len);

	if (r == NULL || r->ops->read == NULL) {
		memset(data, 0xff, len);
		return false;
	}
	r->ops->read(r->opaque, addr - r->base, data, len);
	return true;
}

bool vmm_bus_write(struct vmm_bus *b, uint64_t addr, const void *data, unsigned len)
{
	struct vmm_bus_range *r = find(b, addr, len);

	if (r == NULL || r->ops->write == NULL)
		return false;
	r->ops->write(r->opaque, addr - r->base, data, len);
	return true;
}

void vmm_bus_close(struct vmm_bus *b)
{
	kb_free(b->r);
	memset(b, 0, sizeof(*b));
}
