/*
 * Loading a VM state (format at the top of state.c). Three phases: read and check every
 * section (sizes, order, checksums, memory bounds) into memory, guest RAM straight into
 * place; then apply irqchip, PIT, vCPUs, devices and clock to KVM. If anything fails,
 * the VM is put back into its freshly loaded power-on state and the error says which
 * section and field were wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kernel/vmm/state.h"
#include "kernel/vmm/state_format.h"
#include "kernel/vmm/state_io.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/crc.h"
#include "lib/heap.h"

struct vcpu_img {
	const void *item[VMM_ITEM_EVENTS + 1];
	uint32_t len[VMM_ITEM_EVENTS + 1];
};

struct dev_img {
	struct vmm_dev *dev;
	const uint8_t *p;
	uint32_t len;
};

struct load {
	struct kb_buf sec_vm, sec_dev, sec_clock;
	struct kb_buf sec_vcpu[VMM_MAX_VCPUS];
	struct vcpu_img vcpu[VMM_MAX_VCPUS];
	struct dev_img *devs;
	uint32_t nr_devs;
};

static int read_section(struct vmm_rd *r, uint32_t want, struct kb_buf *out, const char *name,
			struct kb_errmsg *err)
{
	uint32_t type = vmm__rd_u32(r);
	uint32_t resv = vmm__rd_u32(r);
	uint64_t len = vmm__rd_u64(r);
	void *p;
	int rv;

	if (r->err) {
		kb_errmsg_setf(err, "%s section header: %s", name, kb_strerror(r->err));
		return r->err;
	}
	if (type != want || resv != 0) {
		kb_errmsg_setf(err, "expected the %s section, found type %u", name, type);
		return KB_EPROTO;
	}
	if (len > VMM_STATE_SECTION_MAX) {
		kb_errmsg_setf(err, "%s section of %llu bytes exceeds the limit", name,
			       (unsigned long long)len);
		return KB_ETOOBIG;
	}
	kb_buf_reset(out);
	rv = kb_buf_put_zero(out, (size_t)len, &p);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s section of %llu bytes: %s", name, (unsigned long long)len,
			       kb_strerror(rv));
		return rv;
	}
	vmm__rd_get(r, p, (size_t)len);
	uint32_t crc = vmm__rd_u32(r);
	if (r->err) {
		kb_errmsg_setf(err, "%s section: %s", name, kb_strerror(r->err));
		return r->err;
	}
	if (crc != kb_crc32c(0, out->data, out->len)) {
		kb_errmsg_setf(err, "%s section: checksum mismatch", name);
		return KB_ECHECKSUM;
	}
	return 0;
}

static int parse_vcpu(struct vmm_vm *vm, int id, struct load *ld, struct kb_errmsg *err)
{
	static const uint32_t fixed[] = {
	    [VMM_ITEM_MP_STATE] = sizeof(struct kvm_mp_state),
	    [VMM_ITEM_REGS] = sizeof(struct kvm_regs),
	    [VMM_ITEM_SREGS] = sizeof(struct kvm_sregs),
	    [VMM_ITEM_XSAVE] = sizeof(struct kvm_xsave),
	    [VMM_ITEM_XCRS] = sizeof(struct kvm_xcrs),
	    [VMM_ITEM_DEBUGREGS] = sizeof(struct kvm_debugregs),
	    [VMM_ITEM_LAPIC] = sizeof(struct kvm_lapic_state),
	    [VMM_ITEM_EVENTS] = sizeof(struct kvm_vcpu_events),
	};
	struct kb_reader r;
	struct vcpu_img *img = &ld->vcpu[id];

	kb_rd_init(&r, ld->sec_vcpu[id].data, ld->sec_vcpu[id].len);
	uint32_t got_id = kb_rd_u32(&r);
	if (r.err == 0 && got_id != (uint32_t)id) {
		kb_errmsg_setf(err, "vCPU section %d names vCPU %u", id, got_id);
		return KB_EPROTO;
	}
	for (uint32_t kind = VMM_ITEM_CPUID; kind <= VMM_ITEM_EVENTS; kind++) {
		uint32_t k = kb_rd_u32(&r), len = kb_rd_u32(&r);
		const void *p =
		    kb_rd_bytes(&r, len <= VMM_STATE_SECTION_MAX ? len : VMM_STATE_SECTION_MAX + 1);
		if (r.err) {
			kb_errmsg_setf(err, "vCPU %d: item %u truncated", id, kind);
			return KB_ETRUNCATED;
		}
		bool ok = k == kind;
		if (kind == VMM_ITEM_CPUID)
			ok = ok && len % sizeof(struct kvm_cpuid_entry2) == 0 &&
			     len / sizeof(struct kvm_cpuid_entry2) <= VMM_STATE_CPUID_MAX;
		else if (kind == VMM_ITEM_MSRS)
			ok = ok && len % sizeof(struct kvm_msr_entry) == 0 &&
			     len / sizeof(struct kvm_msr_entry) <= VMM_STATE_MSR_MAX;
		else
			ok = ok && len == fixed[kind];
		if (!ok) {
			kb_errmsg_setf(err, "vCPU %d: item %u has kind %u and %u bytes", id, kind,
				       k, len);
			return KB_EPROTO;
		}
		img->item[kind] = p;
		img->len[kind] = len;
	}
	if (kb_rd_left(&r) != 0) {
		kb_errmsg_setf(err, "vCPU %d: %zu trailing bytes", id, kb_rd_left(&r));
		return KB_EPROTO;
	}
	return 0;
}

static int parse_devices(struct vmm_vm *vm, struct load *ld, struct kb_errmsg *err)
{
	struct kb_reader r;
	struct kb_list *pos;
	uint32_t have = 0;

	kb_list_for_each(pos, &vm->devs) have++;
	kb_rd_init(&r, ld->sec_dev.data, ld->sec_dev.len);
	uint32_t n = kb_rd_u32(&r);
	if (r.err || n != have) {
		kb_errmsg_setf(err, "the state has %u devices, this VM has %u", n, have);
		return KB_EPROTO;
	}
	ld->devs = kb_calloc(n ? n : 1, sizeof(*ld->devs));
	if (ld->devs == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id = kb_rd_u32(&r), len = kb_rd_u32(&r);
		const uint8_t *p = kb_rd_bytes(&r, len);
		struct vmm_dev *dev = NULL;
		if (r.err) {
			kb_errmsg_setf(err, "device %u state truncated", i);
			return KB_ETRUNCATED;
		}
		kb_list_for_each(pos, &vm->devs)
		{
			struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
			if (d->id == id)
				dev = d;
		}
		for (uint32_t j = 0; dev != NULL && j < i; j++) {
			if (ld->devs[j].dev == dev)
				dev = NULL;
		}
		if (dev == NULL) {
			kb_errmsg_setf(
			    err, "state of device 0x%x, which this VM lacks or has twice", id);
			return KB_EPROTO;
		}
		ld->devs[i] = (struct dev_img){.dev = dev, .p = p, .len = len};
	}
	ld->nr_devs = n;
	if (kb_rd_left(&r) != 0) {
		kb_errmsg_setf(err, "devices section has trailing bytes");
		return KB_EPROTO;
	}
	return 0;
}

static int read_memory(struct vmm_vm *vm, struct vmm_rd *r, unsigned flags, struct kb_errmsg *err)
{
	struct vmm_mem *m = &vm->mem;
	uint64_t pages = m->size / VMM_PAGE_SIZE;
	uint32_t records = 0;

	uint32_t type = vmm__rd_u32(r), resv = vmm__rd_u32(r);
	uint64_t len = vmm__rd_u64(r);
	if (r->err || type != VMM_SEC_MEMORY || resv != 0 || len != 0) {
		kb_errmsg_setf(err, "expected the memory section");
		return r->err ? r->err : KB_EPROTO;
	}
	for (;;) {
		uint64_t first = vmm__rd_u64(r);
		uint32_t n = vmm__rd_u32(r);
		uint32_t crc = vmm__rd_u32(r);
		if (r->err) {
			kb_errmsg_setf(err, "memory record %u: %s", records, kb_strerror(r->err));
			return r->err;
		}
		if (first == UINT64_MAX && n == 0) {
			if (crc != records) {
				kb_errmsg_setf(err,
					       "memory section ends after %u records, expected %u",
					       records, crc);
				return KB_EPROTO;
			}
			return 0;
		}
		if (flags & VMM_STATE_NO_MEMORY) {
			kb_errmsg_setf(err, "the memory section of a migrated state must be empty");
			return KB_EPROTO;
		}
		if (n == 0 || n > VMM_STATE_RUN_MAX_PAGES || first >= pages || n > pages - first) {
			kb_errmsg_setf(err,
				       "memory record %u (page %llu, %u pages) is out of bounds",
				       records, (unsigned long long)first, n);
			return KB_EPROTO;
		}
		uint8_t *dst = m->base + first * VMM_PAGE_SIZE;
		if (vmm__rd_get(r, dst, n * VMM_PAGE_SIZE) < 0) {
			kb_errmsg_setf(err, "memory record %u: %s", records, kb_strerror(r->err));
			return r->err;
		}
		if (kb_crc32c(0, dst, n * VMM_PAGE_SIZE) != crc) {
			kb_errmsg_setf(err, "memory record %u (page %llu): checksum mismatch",
				       records, (unsigned long long)first);
			return KB_ECHECKSUM;
		}
		records++;
	}
}

#define KVM_SET(fd, req, ptr, what)                                             \
	do {                                                                    \
		if (ioctl((fd), (req), (ptr)) < 0) {                            \
			rv = -errno;                                            \
			kb_errmsg_setf(err, "%s: %s", (what), kb_strerror(rv)); \
			return rv;                                              \
		}                                                               \
	} while (0)

static int apply_vcpu(struct vmm_vcpu *c, struct vcpu_img *img, struct kb_errmsg *err)
{
	uint32_t ncpuid = img->len[VMM_ITEM_CPUID] / sizeof(struct kvm_cpuid_entry2);
	uint32_t nmsr = img->len[VMM_ITEM_MSRS] / sizeof(struct kvm_msr_entry);
	int rv;

	struct kvm_cpuid2 *cpuid =
	    kb_calloc(1, sizeof(*cpuid) + ncpuid * sizeof(struct kvm_cpuid_entry2));
	struct kvm_msrs *msrs = kb_calloc(1, sizeof(*msrs) + nmsr * sizeof(struct kvm_msr_entry));
	if (cpuid == NULL || msrs == NULL) {
		kb_free(cpuid);
		kb_free(msrs);
		return -ENOMEM;
	}
	cpuid->nent = ncpuid;
	memcpy(cpuid->entries, img->item[VMM_ITEM_CPUID], img->len[VMM_ITEM_CPUID]);
	msrs->nmsrs = nmsr;
	memcpy(msrs->entries, img->item[VMM_ITEM_MSRS], img->len[VMM_ITEM_MSRS]);
	rv = 0;
	if (ioctl(c->fd, KVM_SET_CPUID2, cpuid) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "vCPU %d KVM_SET_CPUID2: %s", c->id, kb_strerror(rv));
	}
	kb_free(cpuid);
	if (rv < 0) {
		kb_free(msrs);
		return rv;
	}
	/* The rest in the order of DEPENDENCIES.md, events last. */
	struct kvm_xsave xs;
	memcpy(&xs, img->item[VMM_ITEM_XSAVE], sizeof(xs));
	KVM_SET(c->fd, KVM_SET_MP_STATE, img->item[VMM_ITEM_MP_STATE], "KVM_SET_MP_STATE");
	KVM_SET(c->fd, KVM_SET_REGS, img->item[VMM_ITEM_REGS], "KVM_SET_REGS");
	KVM_SET(c->fd, KVM_SET_SREGS, img->item[VMM_ITEM_SREGS], "KVM_SET_SREGS");
	KVM_SET(c->fd, KVM_SET_XSAVE, &xs, "KVM_SET_XSAVE");
	KVM_SET(c->fd, KVM_SET_XCRS, img->item[VMM_ITEM_XCRS], "KVM_SET_XCRS");
	KVM_SET(c->fd, KVM_SET_DEBUGREGS, img->item[VMM_ITEM_DEBUGREGS], "KVM_SET_DEBUGREGS");
	KVM_SET(c->fd, KVM_SET_LAPIC, img->item[VMM_ITEM_LAPIC], "KVM_SET_LAPIC");
	{
		int k = ioctl(c->fd, KVM_SET_MSRS, msrs);
		kb_free(msrs);
		if (k != (int)nmsr) {
			kb_errmsg_setf(err, "vCPU %d KVM_SET_MSRS refused MSR %d", c->id, k);
			return KB_EKVM;
		}
	}
	KVM_SET(c->fd, KVM_SET_VCPU_EVENTS, img->item[VMM_ITEM_EVENTS], "KVM_SET_VCPU_EVENTS");
	return 0;
}

static int apply(struct vmm_vm *vm, struct load *ld, struct kb_errmsg *err)
{
	const uint8_t *p = ld->sec_vm.data;
	int rv;

	if (ld->sec_vm.len != 3 * sizeof(struct kvm_irqchip) + sizeof(struct kvm_pit_state2)) {
		kb_errmsg_setf(err, "VM section has %zu bytes", ld->sec_vm.len);
		return KB_EPROTO;
	}
	if (ld->sec_clock.len != sizeof(struct kvm_clock_data)) {
		kb_errmsg_setf(err, "clock section has %zu bytes", ld->sec_clock.len);
		return KB_EPROTO;
	}
	for (int i = 0; i < 3; i++) {
		struct kvm_irqchip chip;
		memcpy(&chip, p + i * sizeof(chip), sizeof(chip));
		if (chip.chip_id != (uint32_t)i) {
			kb_errmsg_setf(err, "irqchip %d names chip %u", i, chip.chip_id);
			return KB_EPROTO;
		}
		KVM_SET(vm->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP");
	}
	struct kvm_pit_state2 pit;
	memcpy(&pit, p + 3 * sizeof(struct kvm_irqchip), sizeof(pit));
	KVM_SET(vm->vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
	for (int i = 0; i < vm->nr_vcpus; i++) {
		rv = apply_vcpu(&vm->vcpus[i], &ld->vcpu[i], err);
		if (rv < 0)
			return rv;
	}
	for (uint32_t i = 0; i < ld->nr_devs; i++) {
		struct dev_img *d = &ld->devs[i];
		struct kb_reader r;
		kb_rd_init(&r, d->p, d->len);
		rv = d->dev->ops->restore(d->dev->opaque, &r);
		if (rv == 0 && kb_rd_left(&r) != 0)
			rv = KB_EPROTO;
		if (rv < 0) {
			kb_errmsg_setf(err, "device %s: %s", d->dev->ops->name, kb_strerror(rv));
			return rv;
		}
	}
	struct kvm_clock_data clock;
	memcpy(&clock, ld->sec_clock.data, sizeof(clock));
	clock.flags = 0;
	KVM_SET(vm->vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
	for (int i = 0; i < vm->nr_vcpus; i++)
		(void)ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0); /* EINVAL without kvmclock */
	return 0;
}

static int read_header(struct vmm_vm *vm, struct vmm_rd *r, struct kb_errmsg *err)
{
	uint8_t h[VMM_STATE_HEADER_LEN];
	uint32_t version, hlen, vcpus, crc;
	uint64_t mem;

	if (vmm__rd_get(r, h, sizeof(h)) < 0) {
		kb_errmsg_setf(err, "state header: %s", kb_strerror(r->err));
		return r->err;
	}
	if (memcmp(h, VMM_STATE_MAGIC, 8) != 0) {
		kb_errmsg_setf(err, "not a Keel VM state (bad magic)");
		return KB_EPROTO;
	}
	memcpy(&version, h + 8, 4);
	memcpy(&hlen, h + 12, 4);
	memcpy(&mem, h + 16, 8);
	memcpy(&vcpus, h + 24, 4);
	memcpy(&crc, h + 36, 4);
	if (crc != kb_crc32c(0, h, 36)) {
		kb_errmsg_setf(err, "state header: checksum mismatch");
		return KB_ECHECKSUM;
	}
	if (version != VMM_STATE_VERSION || hlen != VMM_STATE_HEADER_LEN) {
		kb_errmsg_setf(err, "state format version %u is not supported (this vmx reads %d)",
			       version, VMM_STATE_VERSION);
		return KB_EVERSION;
	}
	if (mem != vm->mem.size || vcpus != (uint32_t)vm->nr_vcpus) {
		kb_errmsg_setf(err,
			       "state is of a VM with %llu MiB and %u vCPUs; this one has "
			       "%llu MiB and %d",
			       (unsigned long long)(mem >> 20), vcpus,
			       (unsigned long long)(vm->mem.size >> 20), vm->nr_vcpus);
		return KB_ECONFIG;
	}
	return 0;
}

static int load(struct vmm_vm *vm, struct vmm_rd *r, struct load *ld, unsigned flags,
		struct kb_errmsg *err)
{
	char name[32];
	int rv;

	rv = read_header(vm, r, err);
	if (rv < 0)
		return rv;
	rv = read_section(r, VMM_SEC_VM, &ld->sec_vm, "VM", err);
	for (int i = 0; rv == 0 && i < vm->nr_vcpus; i++) {
		snprintf(name, sizeof(name), "vCPU %d", i);
		rv = read_section(r, VMM_SEC_VCPU, &ld->sec_vcpu[i], name, err);
		rv = rv ?: parse_vcpu(vm, i, ld, err);
	}
	rv = rv ?: read_section(r, VMM_SEC_DEVICES, &ld->sec_dev, "devices", err);
	rv = rv ?: parse_devices(vm, ld, err);
	rv = rv ?: read_section(r, VMM_SEC_CLOCK, &ld->sec_clock, "clock", err);
	if (rv < 0)
		return rv;
	if (!(flags & VMM_STATE_NO_MEMORY)) {
		rv = vmm__mem_discard(&vm->mem);
		if (rv < 0) {
			kb_errmsg_setf(err, "clearing guest memory: %s", kb_strerror(rv));
			return rv;
		}
	}
	rv = read_memory(vm, r, flags, err);
	if (rv < 0)
		return rv;
	struct kb_buf end;
	kb_buf_init(&end, 64);
	rv = read_section(r, VMM_SEC_END, &end, "end", err);
	uint32_t sections = 0;
	if (rv == 0 && end.len == 4)
		memcpy(&sections, end.data, 4);
	kb_buf_close(&end);
	if (rv == 0 && sections != (uint32_t)vm->nr_vcpus + 4) {
		kb_errmsg_setf(err, "end section counts %u sections", sections);
		rv = KB_EPROTO;
	}
	return rv ?: apply(vm, ld, err);
}

static int load_from(struct vmm_vm *vm, struct vmm_rd *r, unsigned flags, struct kb_errmsg *err)
{
	struct load *ld;
	int rv;

	pthread_mutex_lock(&vm->lock);
	bool fresh = vm->state == VMM_STATE_CREATED && !vm->vcpus[0].created;
	pthread_mutex_unlock(&vm->lock);
	if (!fresh) {
		kb_errmsg_setf(err, "a state can be loaded only into a VM that has not run");
		return KB_ESTATE;
	}
	ld = kb_calloc(1, sizeof(*ld));
	if (ld == NULL)
		return -ENOMEM;
	kb_buf_init(&ld->sec_vm, VMM_STATE_SECTION_MAX);
	kb_buf_init(&ld->sec_dev, VMM_STATE_SECTION_MAX);
	kb_buf_init(&ld->sec_clock, VMM_STATE_SECTION_MAX);
	for (int i = 0; i < vm->nr_vcpus; i++)
		kb_buf_init(&ld->sec_vcpu[i], VMM_STATE_SECTION_MAX);

	rv = load(vm, r, ld, flags, err);
	if (rv < 0) {
		/* Put the VM back to power-on state: nothing of the bad state remains. */
		struct kb_errmsg e2 = {{0}};
		struct kb_list *pos;
		kb_list_for_each(pos, &vm->devs)
		{
			struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
			if (d->ops->reset != NULL)
				d->ops->reset(d->opaque);
		}
		if (vmm__mem_discard(&vm->mem) < 0 || vmm__load_guest(vm, &e2) < 0)
			kb_log(vm->log, KB_LOG_ERROR, "could not return to power-on state: %s",
			       e2.msg);
	} else {
		pthread_mutex_lock(&vm->lock);
		vm->state = VMM_STATE_PAUSED;
		vm->restored = true;
		pthread_mutex_unlock(&vm->lock);
	}
	for (int i = 0; i < vm->nr_vcpus; i++)
		kb_buf_close(&ld->sec_vcpu[i]);
	kb_buf_close(&ld->sec_vm);
	kb_buf_close(&ld->sec_dev);
	kb_buf_close(&ld->sec_clock);
	kb_free(ld->devs);
	kb_free(ld);
	return rv;
}

int vmm_state_load(struct vmm_vm *vm, int fd, struct kb_errmsg *err)
{
	struct vmm_rd r;
	int rv = vmm__rd_init(&r, fd, VMM_STATE_IO_BUF);

	if (rv < 0)
		return rv;
	rv = load_from(vm, &r, 0, err);
	vmm__rd_close(&r);
	return rv;
}

int vmm_state_load_buf(struct vmm_vm *vm, const void *p, size_t len, unsigned flags,
		       struct kb_errmsg *err)
{
	struct vmm_rd r;
	int rv;

	vmm__rd_init_mem(&r, p, len);
	rv = load_from(vm, &r, flags, err);
	if (rv == 0 && r.off != r.len) {
		/* the state was applied; trailing bytes mean the sender and we disagree */
		kb_log(vm->log, KB_LOG_WARN, "%zu bytes after the end section ignored",
		       r.len - r.off);
	}
	vmm__rd_close(&r);
	return rv;
}

int vmm_state_save_file(struct vmm_vm *vm, const char *path, struct kb_errmsg *err)
{
	char tmp[4096];
	bool was_running;
	int fd, rv;

	pthread_mutex_lock(&vm->lock);
	was_running = vm->state == VMM_STATE_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	rv = vmm_vm_pause(vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "pausing the VM: %s", kb_strerror(rv));
		return rv;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "creating %s: %s", tmp, kb_strerror(rv));
		goto out;
	}
	rv = vmm_state_save(vm, fd, err);
	if (rv == 0 && fsync(fd) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "fsync %s: %s", tmp, kb_strerror(rv));
	}
	close(fd);
	if (rv == 0 && rename(tmp, path) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "renaming to %s: %s", path, kb_strerror(rv));
	}
	if (rv < 0)
		unlink(tmp);
out:
	if (was_running)
		vmm_vm_resume(vm);
	return rv;
}

int vmm_state_restore_file(struct vmm_vm *vm, const char *path, struct kb_errmsg *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rv;

	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "opening %s: %s", path, kb_strerror(rv));
		return rv;
	}
	rv = vmm_state_load(vm, fd, err);
	if (rv == 0) {
		char extra;
		if (read(fd, &extra, 1) > 0)
			kb_log(vm->log, KB_LOG_WARN, "%s: bytes after the end section ignored",
			       path);
	}
	close(fd);
	return rv;
}
