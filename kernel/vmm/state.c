/*
 * The VM state module: one versioned, size-limited, checksummed format for everything a
 * suspend, a migration or an FT checkpoint carries. Used on files (suspend/resume) and on
 * streams (it never seeks).
 *
 * Format (all integers little-endian; full description in docs/vm-state.md):
 *   header   "KEELVMS\0", u32 version (1), u32 header length (40), u64 memory size,
 *            u32 vCPU count, u32 flags (0), u32 reserved (0), u32 CRC-32C of bytes 0..35
 *   sections u32 type, u32 reserved (0), u64 length, payload, u32 CRC-32C of payload
 *            in this order: VM (irqchip and PIT), VCPU x count, DEVICES, CLOCK, MEMORY, END.
 *            MEMORY's length field is 0: its payload is a run of records
 *              u64 first page (of guest RAM, in memfd order), u32 page count (1..256),
 *              u32 CRC-32C of the data, then count * 4096 bytes
 *            ended by a record with first page 2^64-1 and count 0 whose CRC field holds
 *            the number of records; pages not listed are zero.
 *   VCPU payload: u32 vCPU id, then items {u32 kind, u32 length, bytes} in save order:
 *            CPUID, MP_STATE, REGS, SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC, MSRS, VCPU_EVENTS.
 *   DEVICES payload: u32 count, then {u32 device id, u32 length, device state}.
 * Limits: any section but MEMORY at most 4 MiB; every fixed KVM structure must have its
 * exact size; the memory size and vCPU count must match the receiving VM.
 *
 * Restore order (DEPENDENCIES.md): irqchip and PIT, then per vCPU CPUID, MP_STATE, REGS,
 * SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC, MSRs, VCPU_EVENTS last, then devices, then the
 * KVM clock just before resume. Nothing is applied to KVM or the devices until the whole
 * stream has been read and checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kernel/vmm/state.h"
#include "kernel/vmm/state_format.h"
#include "kernel/vmm/state_io.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/crc.h"
#include "lib/heap.h"

/* ---- saving ---------------------------------------------------------------------------- */

static int put_item(struct kb_buf *b, uint32_t kind, const void *p, uint32_t len)
{
	int rv = kb_buf_put_u32(b, kind);

	rv = rv ?: kb_buf_put_u32(b, len);
	return rv ?: kb_buf_append(b, p, len);
}

static void put_section(struct vmm_wr *w, uint32_t type, const struct kb_buf *b)
{
	vmm__wr_u32(w, type);
	vmm__wr_u32(w, 0);
	vmm__wr_u64(w, b->len);
	vmm__wr_put(w, b->data, b->len);
	vmm__wr_u32(w, kb_crc32c(0, b->data, b->len));
}

#define KVM_GET(fd, req, ptr, what)                                             \
	do {                                                                    \
		if (ioctl((fd), (req), (ptr)) < 0) {                            \
			rv = -errno;                                            \
			kb_errmsg_setf(err, "%s: %s", (what), kb_strerror(rv)); \
			goto out;                                               \
		}                                                               \
	} while (0)

static int save_vm(struct vmm_vm *vm, struct kb_buf *b, struct kb_errmsg *err)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	int rv = 0;

	for (uint32_t id = 0; id < 3; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		KVM_GET(vm->vm_fd, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP");
		rv = kb_buf_append(b, &chip, sizeof(chip));
		if (rv < 0)
			goto out;
	}
	KVM_GET(vm->vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
	rv = kb_buf_append(b, &pit, sizeof(pit));
out:
	return rv;
}

static int save_vcpu(struct vmm_vcpu *c, struct kb_buf *b, struct kb_errmsg *err)
{
	struct vmm_vm *vm = c->vm;
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xs = NULL;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[VMM_STATE_MSR_MAX];
	} msrs;
	uint32_t idx[VMM_STATE_MSR_MAX];
	int rv, n;

	struct kvm_cpuid2 *cpuid = kb_calloc(1, sizeof(*cpuid) + 256 * sizeof(cpuid->entries[0]));
	xs = kb_calloc(1, sizeof(*xs));
	if (cpuid == NULL || xs == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	cpuid->nent = 256;
	KVM_GET(c->fd, KVM_GET_CPUID2, cpuid, "KVM_GET_CPUID2");
	KVM_GET(c->fd, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
	KVM_GET(c->fd, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	KVM_GET(c->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	KVM_GET(c->fd, KVM_GET_XSAVE, xs, "KVM_GET_XSAVE");
	KVM_GET(c->fd, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
	KVM_GET(c->fd, KVM_GET_DEBUGREGS, &dregs, "KVM_GET_DEBUGREGS");
	KVM_GET(c->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
	n = vmm__msr_list(vm, idx, VMM_STATE_MSR_MAX);
	if (n < 0) {
		rv = n;
		kb_errmsg_setf(err, "KVM_GET_MSR_INDEX_LIST: %s", kb_strerror(rv));
		goto out;
	}
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = (uint32_t)n;
	for (int i = 0; i < n; i++)
		msrs.e[i].index = idx[i];
	rv = ioctl(c->fd, KVM_GET_MSRS, &msrs);
	if (rv != n) {
		rv = rv < 0 ? -errno : KB_EKVM;
		kb_errmsg_setf(err, "KVM_GET_MSRS on vCPU %d: %s", c->id, kb_strerror(rv));
		goto out;
	}
	KVM_GET(c->fd, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS");

	rv = kb_buf_put_u32(b, (uint32_t)c->id);
	rv = rv
		 ?: put_item(b, VMM_ITEM_CPUID, cpuid->entries,
			     cpuid->nent * (uint32_t)sizeof(cpuid->entries[0]));
	rv = rv ?: put_item(b, VMM_ITEM_MP_STATE, &mp, sizeof(mp));
	rv = rv ?: put_item(b, VMM_ITEM_REGS, &regs, sizeof(regs));
	rv = rv ?: put_item(b, VMM_ITEM_SREGS, &sregs, sizeof(sregs));
	rv = rv ?: put_item(b, VMM_ITEM_XSAVE, xs, sizeof(*xs));
	rv = rv ?: put_item(b, VMM_ITEM_XCRS, &xcrs, sizeof(xcrs));
	rv = rv ?: put_item(b, VMM_ITEM_DEBUGREGS, &dregs, sizeof(dregs));
	rv = rv ?: put_item(b, VMM_ITEM_LAPIC, &lapic, sizeof(lapic));
	rv = rv ?: put_item(b, VMM_ITEM_MSRS, msrs.e, (uint32_t)n * (uint32_t)sizeof(msrs.e[0]));
	rv = rv ?: put_item(b, VMM_ITEM_EVENTS, &ev, sizeof(ev));
out:
	kb_free(cpuid);
	kb_free(xs);
	return rv;
}

static int save_devices(struct vmm_vm *vm, struct kb_buf *b, struct kb_errmsg *err)
{
	struct kb_list *pos;
	uint32_t count = 0;
	int rv;

	kb_list_for_each(pos, &vm->devs) count++;
	rv = kb_buf_put_u32(b, count);
	kb_list_for_each(pos, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		size_t at;
		if (rv < 0)
			break;
		rv = kb_buf_put_u32(b, d->id);
		rv = rv ?: kb_buf_put_u32(b, 0);
		at = b->len;
		rv = rv ?: d->ops->save(d->opaque, b);
		if (rv < 0) {
			kb_errmsg_setf(err, "saving device %s: %s", d->ops->name, kb_strerror(rv));
			return rv;
		}
		uint32_t len = (uint32_t)(b->len - at);
		memcpy(b->data + at - 4, &len, 4);
	}
	return rv;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < VMM_PAGE_SIZE / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}

static void put_run(struct vmm_wr *w, const uint8_t *base, uint64_t first, uint32_t n,
		    uint32_t *records)
{
	const uint8_t *p = base + first * VMM_PAGE_SIZE;

	vmm__wr_u64(w, first);
	vmm__wr_u32(w, n);
	vmm__wr_u32(w, kb_crc32c(0, p, n * VMM_PAGE_SIZE));
	vmm__wr_put(w, p, n * VMM_PAGE_SIZE);
	(*records)++;
}

/* Sends every non-zero page of guest RAM; pages never taken are skipped unread. */
static void save_memory(struct vmm_vm *vm, struct vmm_wr *w)
{
	struct vmm_mem *m = &vm->mem;
	uint64_t pages = m->size / VMM_PAGE_SIZE;
	uint32_t records = 0;
	uint64_t off = 0, data, hole;

	vmm__wr_u32(w, VMM_SEC_MEMORY);
	vmm__wr_u32(w, 0);
	vmm__wr_u64(w, 0);
	while (off < m->size && w->err == 0) {
		if (vmm_mem_next_data(m, off, &data, &hole) < 0 || data >= m->size)
			break; /* no data past off */
		uint64_t first = data / VMM_PAGE_SIZE;
		uint64_t end = (hole + VMM_PAGE_SIZE - 1) / VMM_PAGE_SIZE;
		if (end > pages)
			end = pages;
		uint64_t run = 0;
		uint32_t n = 0;
		for (uint64_t pg = first; pg < end; pg++) {
			if (page_is_zero(m->base + pg * VMM_PAGE_SIZE)) {
				if (n > 0)
					put_run(w, m->base, run, n, &records);
				n = 0;
				continue;
			}
			if (n == 0)
				run = pg;
			if (++n == VMM_STATE_RUN_MAX_PAGES) {
				put_run(w, m->base, run, n, &records);
				n = 0;
			}
		}
		if (n > 0)
			put_run(w, m->base, run, n, &records);
		off = hole;
	}
	vmm__wr_u64(w, UINT64_MAX);
	vmm__wr_u32(w, 0);
	vmm__wr_u32(w, records);
}

/* An empty memory section: no records, then the end record. */
static void save_no_memory(struct vmm_wr *w)
{
	vmm__wr_u32(w, VMM_SEC_MEMORY);
	vmm__wr_u32(w, 0);
	vmm__wr_u64(w, 0);
	vmm__wr_u64(w, UINT64_MAX);
	vmm__wr_u32(w, 0);
	vmm__wr_u32(w, 0);
}

static int save_to(struct vmm_vm *vm, struct vmm_wr *w, unsigned flags, struct kb_errmsg *err)
{
	struct kb_buf b;
	uint8_t hdr[VMM_STATE_HEADER_LEN] = {0};
	struct kvm_clock_data clock = {0};
	int rv, sections = 0;

	pthread_mutex_lock(&vm->lock);
	bool stable = vm->state == VMM_STATE_PAUSED || vm->state == VMM_STATE_CREATED;
	pthread_mutex_unlock(&vm->lock);
	if (!stable) {
		kb_errmsg_setf(err, "the VM must be paused to save its state");
		return KB_ESTATE;
	}
	kb_buf_init(&b, VMM_STATE_SECTION_MAX);

	memcpy(hdr, VMM_STATE_MAGIC, 8);
	uint32_t v32 = VMM_STATE_VERSION;
	memcpy(hdr + 8, &v32, 4);
	v32 = VMM_STATE_HEADER_LEN;
	memcpy(hdr + 12, &v32, 4);
	memcpy(hdr + 16, &vm->mem.size, 8);
	v32 = (uint32_t)vm->nr_vcpus;
	memcpy(hdr + 24, &v32, 4);
	v32 = kb_crc32c(0, hdr, 36);
	memcpy(hdr + 36, &v32, 4);
	vmm__wr_put(w, hdr, sizeof(hdr));

	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "KVM_GET_CLOCK: %s", kb_strerror(rv));
		goto out;
	}
	rv = save_vm(vm, &b, err);
	if (rv < 0)
		goto out;
	put_section(w, VMM_SEC_VM, &b);
	sections++;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		kb_buf_reset(&b);
		rv = save_vcpu(&vm->vcpus[i], &b, err);
		if (rv < 0)
			goto out;
		put_section(w, VMM_SEC_VCPU, &b);
		sections++;
	}
	kb_buf_reset(&b);
	rv = save_devices(vm, &b, err);
	if (rv < 0)
		goto out;
	put_section(w, VMM_SEC_DEVICES, &b);
	kb_buf_reset(&b);
	rv = kb_buf_append(&b, &clock, sizeof(clock));
	if (rv < 0)
		goto out;
	put_section(w, VMM_SEC_CLOCK, &b);
	if (flags & VMM_STATE_NO_MEMORY)
		save_no_memory(w);
	else
		save_memory(vm, w);
	sections += 3;
	kb_buf_reset(&b);
	kb_buf_put_u32(&b, (uint32_t)sections);
	put_section(w, VMM_SEC_END, &b);
	rv = vmm__wr_flush(w);
	if (rv < 0)
		kb_errmsg_setf(err, "writing the state: %s", kb_strerror(rv));
out:
	if (rv < 0 && err->msg[0] == '\0')
		kb_errmsg_setf(err, "%s", kb_strerror(rv));
	kb_buf_close(&b);
	return rv;
}

int vmm_state_save(struct vmm_vm *vm, int fd, struct kb_errmsg *err)
{
	struct vmm_wr w;
	int rv = vmm__wr_init(&w, fd, VMM_STATE_IO_BUF);

	if (rv < 0)
		return rv;
	rv = save_to(vm, &w, 0, err);
	vmm__wr_close(&w);
	return rv;
}

int vmm_state_save_buf(struct vmm_vm *vm, struct kb_buf *out, unsigned flags, struct kb_errmsg *err)
{
	struct vmm_wr w;
	int rv = vmm__wr_init_mem(&w, out, 64u << 10);

	if (rv < 0)
		return rv;
	rv = save_to(vm, &w, flags, err);
	vmm__wr_close(&w);
	return rv;
}
