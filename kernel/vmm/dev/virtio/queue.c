/*
 * Split virtqueue processing for the virtio devices.
 *
 * Happy path: the driver puts a chain's head in avail->ring and bumps avail->idx; the
 * device reads the index (acquire), takes the head, walks the descriptors (following at
 * most one indirect table) into a struct vmm_vq_chain of guest buffers already mapped to
 * host pointers, does the request, writes the used element and publishes used->idx
 * (release). Every byte the device writes into guest memory is marked in the VMM's dirty
 * bitmap.
 *
 * Failure modes: everything is checked before use and a bad ring yields KB_EGUEST with
 * nothing written to the guest; the device then sets DEVICE_NEEDS_RESET. Walks are bounded
 * by the queue size (or the indirect table size), so a loop ends as "chain too long".
 */
#include <string.h>

#include "kernel/vmm/dev/virtio/queue.h"

/* Reads a descriptor once: the compiler barrier keeps later uses on the local copy even
 * while the guest rewrites the table. */
static void read_desc(const struct vmm_vring_desc *src, struct vmm_vring_desc *d)
{
	memcpy(d, src, sizeof(*d));
	__asm__ __volatile__("" ::: "memory");
}

void vmm__vq_reset(struct vmm_vq *q, uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->max_size = max_size;
	q->size = max_size;
	q->msix_vector = VMM_VQ_NO_VECTOR;
}

int vmm__vq_check(const struct vmm_vq *q, struct vmm_mem *mem)
{
	uint64_t n = q->size;

	if (n == 0 || n > q->max_size || (n & (n - 1)) != 0)
		return KB_EGUEST;
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return KB_EGUEST;
	if (vmm_mem_ptr(mem, q->desc_gpa, 16 * n) == NULL ||
	    vmm_mem_ptr(mem, q->avail_gpa, 6 + 2 * n) == NULL ||
	    vmm_mem_ptr(mem, q->used_gpa, 6 + 8 * n) == NULL)
		return KB_EGUEST;
	return 0;
}

int vmm__vq_enable(struct vmm_vq *q, struct vmm_mem *mem)
{
	int rv = vmm__vq_check(q, mem);

	if (rv < 0)
		return rv;
	q->desc = vmm_mem_ptr(mem, q->desc_gpa, 16ull * q->size);
	q->avail = vmm_mem_ptr(mem, q->avail_gpa, 6 + 2ull * q->size);
	q->used = vmm_mem_ptr(mem, q->used_gpa, 6 + 8ull * q->size);
	q->pushed = 0;
	q->enabled = true;
	return 0;
}

bool vmm__vq_has_avail(const struct vmm_vq *q)
{
	return q->enabled && __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE) != q->last_avail;
}

static int add_seg(struct vmm_vq_chain *c, struct vmm_mem *mem, const struct vmm_vring_desc *d)
{
	bool wr = d->flags & VMM_VRING_DESC_F_WRITE;
	struct vmm_vq_seg *s;
	uint8_t *hva;

	if (!wr && c->nr_wr != 0)
		return KB_EGUEST; /* readable after writable */
	if (d->len == 0)
		return 0;
	if (c->nr_rd + c->nr_wr >= VMM_VQ_MAX_SEGS)
		return KB_EGUEST;
	hva = vmm_mem_ptr(mem, d->addr, d->len);
	if (hva == NULL)
		return KB_EGUEST;
	s = &c->seg[c->nr_rd + c->nr_wr];
	*s = (struct vmm_vq_seg){.hva = hva, .gpa = d->addr, .len = d->len};
	if (wr) {
		c->nr_wr++;
		c->wr_len += d->len;
	} else {
		c->nr_rd++;
		c->rd_len += d->len;
	}
	return 0;
}

int vmm__vq_pop(struct vmm_vq *q, struct vmm_mem *mem, bool indirect, struct vmm_vq_chain *c)
{
	const struct vmm_vring_desc *table = q->desc;
	unsigned tsize = q->size, budget = q->size, idx;
	bool in_table = false;
	uint16_t avail_idx, pending, head;

	if (!q->enabled)
		return 0;
	avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return KB_EGUEST;
	head = __atomic_load_n(&q->avail->ring[q->last_avail & (q->size - 1)], __ATOMIC_RELAXED);
	q->last_avail++;
	if (head >= q->size)
		return KB_EGUEST;

	c->head = head;
	c->nr_rd = c->nr_wr = 0;
	c->rd_len = c->wr_len = 0;
	idx = head;
	for (;;) {
		struct vmm_vring_desc d;
		int rv;

		if (budget-- == 0)
			return KB_EGUEST; /* a loop, or longer than the queue or table */
		read_desc(&table[idx], &d);
		if (d.flags & VMM_VRING_DESC_F_INDIRECT) {
			if (!indirect || in_table || (d.flags & VMM_VRING_DESC_F_NEXT) ||
			    d.len == 0 || d.len % sizeof(d) != 0 ||
			    d.len / sizeof(d) > VMM_VQ_MAX_SEGS)
				return KB_EGUEST;
			table = vmm_mem_ptr(mem, d.addr, d.len);
			if (table == NULL)
				return KB_EGUEST;
			tsize = budget = d.len / sizeof(d);
			idx = 0;
			in_table = true;
			continue;
		}
		rv = add_seg(c, mem, &d);
		if (rv < 0)
			return rv;
		if (!(d.flags & VMM_VRING_DESC_F_NEXT))
			return 1;
		idx = d.next;
		if (idx >= tsize)
			return KB_EGUEST;
	}
}

void vmm__vq_unpop(struct vmm_vq *q)
{
	q->last_avail--;
}

void vmm__vq_push(struct vmm_vq *q, struct vmm_mem *mem, uint16_t head, uint32_t len)
{
	uint16_t slot = q->used_idx & (q->size - 1);
	struct vmm_vring_used_elem e = {.id = head, .len = len};

	memcpy(&q->used->ring[slot], &e, sizeof(e));
	vmm_mem_dirty(mem, q->used_gpa + 4 + 8ull * slot, sizeof(e));
	q->used_idx++;
	__atomic_store_n(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
	vmm_mem_dirty(mem, q->used_gpa + 2, 2);
	q->pushed++;
}

bool vmm__vq_need_signal(struct vmm_vq *q)
{
	if (q->pushed == 0 || !q->enabled)
		return false;
	q->pushed = 0;
	/* The driver sets NO_INTERRUPT, then checks used->idx; the device publishes used->idx,
	 * then checks the flag. A full fence on both sides keeps one of them from missing the
	 * other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !(__atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED) &
		 VMM_VRING_AVAIL_F_NO_INTERRUPT);
}

/* ---- chain streams ------------------------------------------------------------------ */

static const struct vmm_vq_seg *stream(const struct vmm_vq_chain *c, bool writable, unsigned *n)
{
	*n = writable ? c->nr_wr : c->nr_rd;
	return writable ? &c->seg[c->nr_rd] : c->seg;
}

/* Calls fn on each piece of [off, off+len) of a stream; returns the bytes covered. */
typedef void (*piece_cb)(const struct vmm_vq_seg *s, uint64_t soff, uint64_t n, uint64_t done,
			 void *arg);

static uint64_t walk(const struct vmm_vq_chain *c, bool writable, uint64_t off, uint64_t len,
		     piece_cb fn, void *arg)
{
	unsigned n;
	const struct vmm_vq_seg *s = stream(c, writable, &n);
	uint64_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		uint64_t chunk;
		if (off >= s[i].len) {
			off -= s[i].len;
			continue;
		}
		chunk = s[i].len - off;
		if (chunk > len - done)
			chunk = len - done;
		fn(&s[i], off, chunk, done, arg);
		done += chunk;
		off = 0;
	}
	return done;
}

struct copy_arg {
	uint8_t *buf;
	struct vmm_mem *mem;
};

static void read_piece(const struct vmm_vq_seg *s, uint64_t soff, uint64_t n, uint64_t done,
		       void *arg)
{
	struct copy_arg *a = arg;

	memcpy(a->buf + done, s->hva + soff, n);
}

static void write_piece(const struct vmm_vq_seg *s, uint64_t soff, uint64_t n, uint64_t done,
			void *arg)
{
	struct copy_arg *a = arg;

	memcpy(s->hva + soff, a->buf + done, n);
	vmm_mem_dirty(a->mem, s->gpa + soff, n);
}

static void dirty_piece(const struct vmm_vq_seg *s, uint64_t soff, uint64_t n, uint64_t done,
			void *arg)
{
	vmm_mem_dirty(arg, s->gpa + soff, n);
}

uint64_t vmm__vq_read(const struct vmm_vq_chain *c, uint64_t off, void *buf, uint64_t len)
{
	struct copy_arg a = {.buf = buf};

	return walk(c, false, off, len, read_piece, &a);
}

uint64_t vmm__vq_write(const struct vmm_vq_chain *c, struct vmm_mem *mem, uint64_t off,
		       const void *buf, uint64_t len)
{
	struct copy_arg a = {.buf = (uint8_t *)buf, .mem = mem};

	return walk(c, true, off, len, write_piece, &a);
}

void vmm__vq_dirty(const struct vmm_vq_chain *c, struct vmm_mem *mem, uint64_t off, uint64_t len)
{
	walk(c, true, off, len, dirty_piece, mem);
}

struct iov_arg {
	struct iovec *iov;
	int max;
	int n;
};

static void iov_piece(const struct vmm_vq_seg *s, uint64_t soff, uint64_t n, uint64_t done,
		      void *arg)
{
	struct iov_arg *a = arg;

	if (a->n < a->max)
		a->iov[a->n] = (struct iovec){.iov_base = s->hva + soff, .iov_len = n};
	a->n++;
}

int vmm__vq_iov(const struct vmm_vq_chain *c, bool writable, uint64_t off, uint64_t len,
		struct iovec *iov, int max)
{
	struct iov_arg a = {.iov = iov, .max = max};

	if (walk(c, writable, off, len, iov_piece, &a) != len || a.n > max)
		return -1;
	return a.n;
}
