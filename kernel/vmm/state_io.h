/*
 * Sequential buffered I/O over a file descriptor for the state module (state_io.c): works
 * on files, pipes and sockets, never seeks. Errors are sticky: check err once at the end.
 */
#ifndef VMM_STATE_IO_H
#define VMM_STATE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kb_buf;

struct vmm_wr {
	int fd;		    /* -1: into mem */
	struct kb_buf *mem; /* borrowed; flushes append to it */
	uint8_t *buf;
	size_t len;
	size_t cap;
	uint64_t total; /* bytes written so far */
	int err;
};

int vmm__wr_init(struct vmm_wr *w, int fd, size_t cap);
/* A writer that appends to mem (borrowed) instead of writing to an fd. */
int vmm__wr_init_mem(struct vmm_wr *w, struct kb_buf *mem, size_t cap);
void vmm__wr_close(struct vmm_wr *w);
void vmm__wr_put(struct vmm_wr *w, const void *p, size_t n);
void vmm__wr_u32(struct vmm_wr *w, uint32_t v);
void vmm__wr_u64(struct vmm_wr *w, uint64_t v);
/* Writes buffered bytes to the fd. */
int vmm__wr_flush(struct vmm_wr *w);

struct vmm_rd {
	int fd;	       /* -1: only the bytes in buf */
	bool borrowed; /* buf is the caller's */
	uint8_t *buf;
	size_t off;
	size_t len;
	size_t cap;
	uint64_t total; /* bytes consumed so far */
	int err;	/* KB_ETRUNCATED on a short stream, -errno on read errors */
};

int vmm__rd_init(struct vmm_rd *r, int fd, size_t cap);
/* A reader over len bytes at p (borrowed); reading past them is KB_ETRUNCATED. */
void vmm__rd_init_mem(struct vmm_rd *r, const void *p, size_t len);
void vmm__rd_close(struct vmm_rd *r);
/* Fills p with exactly n bytes or sets err (and zero-fills p). */
int vmm__rd_get(struct vmm_rd *r, void *p, size_t n);
uint32_t vmm__rd_u32(struct vmm_rd *r);
uint64_t vmm__rd_u64(struct vmm_rd *r);

#endif
