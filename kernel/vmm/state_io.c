/*
 * Buffered sequential reader and writer for VM state streams (see state_io.h).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kernel/vmm/state_io.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/heap.h"

int vmm__wr_init(struct vmm_wr *w, int fd, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->buf = kb_malloc(cap);
	if (w->buf == NULL)
		return -ENOMEM;
	w->cap = cap;
	return 0;
}

int vmm__wr_init_mem(struct vmm_wr *w, struct kb_buf *mem, size_t cap)
{
	int rv = vmm__wr_init(w, -1, cap);

	w->mem = mem;
	return rv;
}

void vmm__wr_close(struct vmm_wr *w)
{
	kb_free(w->buf);
	w->buf = NULL;
}

static int write_all(struct vmm_wr *w, const uint8_t *p, size_t n)
{
	int fd = w->fd;

	if (fd < 0)
		return kb_buf_append(w->mem, p, n);
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int vmm__wr_flush(struct vmm_wr *w)
{
	if (w->err == 0 && w->len > 0) {
		w->err = write_all(w, w->buf, w->len);
		w->len = 0;
	}
	return w->err;
}

void vmm__wr_put(struct vmm_wr *w, const void *p, size_t n)
{
	if (w->err != 0)
		return;
	w->total += n;
	if (n >= w->cap) {
		if (vmm__wr_flush(w) == 0)
			w->err = write_all(w, p, n);
		return;
	}
	if (w->len + n > w->cap)
		vmm__wr_flush(w);
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void vmm__wr_u32(struct vmm_wr *w, uint32_t v)
{
	vmm__wr_put(w, &v, sizeof(v));
}

void vmm__wr_u64(struct vmm_wr *w, uint64_t v)
{
	vmm__wr_put(w, &v, sizeof(v));
}

int vmm__rd_init(struct vmm_rd *r, int fd, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->buf = kb_malloc(cap);
	if (r->buf == NULL)
		return -ENOMEM;
	r->cap = cap;
	return 0;
}

void vmm__rd_init_mem(struct vmm_rd *r, const void *p, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->borrowed = true;
	r->buf = (uint8_t *)p;
	r->len = len;
	r->cap = len;
}

void vmm__rd_close(struct vmm_rd *r)
{
	if (!r->borrowed)
		kb_free(r->buf);
	r->buf = NULL;
}

static ssize_t read_some(int fd, void *p, size_t n)
{
	for (;;) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		return k < 0 ? -errno : k;
	}
}

int vmm__rd_get(struct vmm_rd *r, void *p, size_t n)
{
	uint8_t *dst = p;
	size_t want = n;

	if (r->err != 0)
		goto fail;
	while (n > 0) {
		if (r->off < r->len) {
			size_t k = r->len - r->off < n ? r->len - r->off : n;
			memcpy(dst, r->buf + r->off, k);
			r->off += k, dst += k, n -= k;
			continue;
		}
		ssize_t k;
		if (r->fd < 0) {
			k = 0;		  /* nothing past the buffer */
		} else if (n >= r->cap) { /* large reads go straight to the destination */
			k = read_some(r->fd, dst, n);
			if (k > 0) {
				dst += k, n -= (size_t)k;
				continue;
			}
		} else {
			k = read_some(r->fd, r->buf, r->cap);
			if (k > 0) {
				r->off = 0;
				r->len = (size_t)k;
				continue;
			}
		}
		r->err = k < 0 ? (int)k : KB_ETRUNCATED;
		goto fail;
	}
	r->total += want;
	return 0;
fail:
	memset(p, 0, want);
	return r->err;
}

uint32_t vmm__rd_u32(struct vmm_rd *r)
{
	uint32_t v;

	vmm__rd_get(r, &v, sizeof(v));
	return v;
}

uint64_t vmm__rd_u64(struct vmm_rd *r)
{
	uint64_t v;

	vmm__rd_get(r, &v, sizeof(v));
	return v;
}
