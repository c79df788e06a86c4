/*
 * Split virtqueues (virtio 1.x section 2.7) driven by polling. Descriptors come from a
 * free list threaded through desc[].next; a chain's head index keys the caller's cookie.
 * The driver writes descriptors and the avail ring entry before the avail index (x86
 * keeps stores in order, so a compiler barrier suffices), and fences before reading the
 * used ring's NO_NOTIFY flag. Completed chains are read after the used index.
 */
#include "kguest.h"

#define USED_F_NO_NOTIFY 1

void kg_vq_init(struct kg_vq *vq, uint16_t index, uint16_t size, uint64_t notify_addr)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vq->size = size;
	vq->notify_addr = notify_addr;
	for (uint16_t i = 0; i < size; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->nr_free = size;
}

int kg_vq_add(struct kg_vq *vq, const struct kg_vq_buf *bufs, int n, uint64_t cookie)
{
	if (n <= 0 || n > vq->nr_free)
		return KG_ENOSPC;
	uint16_t head = vq->free_head, i = head;
	for (int k = 0; k < n; k++) {
		struct kg_vq_desc *d = &vq->desc[i];
		d->addr = (uintptr_t)bufs[k].addr;
		d->len = bufs[k].len;
		d->flags = (uint16_t)((bufs[k].device_writes ? KG_VQ_DESC_F_WRITE : 0) |
				      (k + 1 < n ? KG_VQ_DESC_F_NEXT : 0));
		i = d->next;
	}
	vq->free_head = i;
	vq->nr_free = (uint16_t)(vq->nr_free - n);
	vq->cookie[head] = cookie;
	vq->avail.ring[vq->avail_idx & (vq->size - 1)] = head;
	kg_barrier();
	vq->avail_idx++;
	*(volatile uint16_t *)&vq->avail.idx = vq->avail_idx;
	return 0;
}

void kg_vq_kick(struct kg_vq *vq)
{
	kg_mb();
	if (!(*(volatile uint16_t *)&vq->used.flags & USED_F_NO_NOTIFY))
		kg_mmio_write16(vq->notify_addr, vq->index);
}

bool kg_vq_pop(struct kg_vq *vq, uint64_t *cookie, uint32_t *len)
{
	uint16_t used = *(volatile uint16_t *)&vq->used.idx;

	if (used == vq->last_used)
		return false;
	kg_barrier();
	uint16_t slot = vq->last_used & (vq->size - 1);
	uint32_t head = vq->used.ring[slot].id;
	uint32_t n = vq->used.ring[slot].len;
	vq->last_used++;
	if (head >= vq->size)
		return false; /* a device bug; nothing sane to free */
	uint16_t i = (uint16_t)head, count = 1;
	while ((vq->desc[i].flags & KG_VQ_DESC_F_NEXT) && count < vq->size) {
		i = vq->desc[i].next;
		count++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)head;
	vq->nr_free = (uint16_t)(vq->nr_free + count);
	*cookie = vq->cookie[head];
	*len = n;
	return true;
}
