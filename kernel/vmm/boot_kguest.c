/*
 * Boot of ELF guests (kguest and the test payloads) directly in 64-bit mode.
 *
 * The VMM loads the PT_LOAD segments at their physical addresses, builds the GDT, the TSS
 * and identity page tables (2 MiB pages, user-accessible), writes the boot info and puts
 * every vCPU at the entry point in long mode at CPL0, per kernel/guest/abi.h. The ELF is
 * untrusted input: every header field is checked against the file and guest RAM.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

#define IMAGE_MAX    (64u << 20)
#define PT_PDE_FLAGS 0x87ull /* present, writable, user, 2 MiB page */
#define PT_DIR_FLAGS 0x07ull /* present, writable, user */

int vmm__read_file(const char *path, uint64_t max, uint8_t **out, uint64_t *len,
		   struct kb_errmsg *err)
{
	struct stat st;
	uint8_t *buf;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "opening %s: %s", path, kb_strerror(rv));
		return rv;
	}
	if (fstat(fd, &st) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rv));
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		rv = KB_ETOOBIG;
		kb_errmsg_setf(err, "%s: %lld bytes is larger than the limit of %llu", path,
			       (long long)st.st_size, (unsigned long long)max);
		goto out_close;
	}
	buf = kb_malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rv = -ENOMEM;
		goto out_close;
	}
	for (off_t done = 0; done < st.st_size;) {
		ssize_t n = pread(fd, buf + done, (size_t)(st.st_size - done), done);
		if (n <= 0) {
			rv = n < 0 ? -errno : KB_ETRUNCATED;
			kb_errmsg_setf(err, "reading %s: %s", path, kb_strerror(rv));
			kb_free(buf);
			goto out_close;
		}
		done += n;
	}
	*out = buf;
	*len = (uint64_t)st.st_size;
	rv = 0;
out_close:
	close(fd);
	return rv;
}

static int load_elf(struct vmm_vm *vm, const uint8_t *img, uint64_t len, uint64_t *entry,
		    uint64_t *end, struct kb_errmsg *err)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	uint64_t low_top = vm->mem.regions[0].size;
	bool entry_ok = false;

	*end = KGUEST_LOAD_MIN;
	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC) {
		kb_errmsg_setf(err, "not a static x86-64 ELF executable");
		return KB_ECONFIG;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > 64 ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		kb_errmsg_setf(err, "ELF program headers out of bounds");
		return KB_ECONFIG;
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr phdr; /* copied out: e_phoff need not be aligned */
		const Elf64_Phdr *p = &phdr;
		memcpy(&phdr, img + eh->e_phoff + (size_t)i * sizeof(phdr), sizeof(phdr));
		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > len ||
		    p->p_filesz > len - p->p_offset || p->p_paddr < KGUEST_LOAD_MIN ||
		    p->p_paddr > low_top || p->p_memsz > low_top - p->p_paddr) {
			kb_errmsg_setf(err,
				       "ELF segment %d (paddr 0x%llx, %llu bytes) does not fit "
				       "guest RAM above 1 MiB",
				       i, (unsigned long long)p->p_paddr,
				       (unsigned long long)p->p_memsz);
			return KB_ECONFIG;
		}
		uint8_t *dst = vmm_mem_ptr(&vm->mem, p->p_paddr, p->p_memsz);
		memcpy(dst, img + p->p_offset, p->p_filesz);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		vmm_mem_dirty(&vm->mem, p->p_paddr, p->p_memsz);
		if (eh->e_entry >= p->p_vaddr && eh->e_entry - p->p_vaddr < p->p_memsz &&
		    (p->p_flags & PF_X))
			entry_ok = true;
		uint64_t seg_end = (p->p_paddr + p->p_memsz + 4095) & ~4095ull;
		if (seg_end > *end)
			*end = seg_end;
	}
	if (!entry_ok) {
		kb_errmsg_setf(err, "ELF entry 0x%llx is not in an executable segment",
			       (unsigned long long)eh->e_entry);
		return KB_ECONFIG;
	}
	*entry = eh->e_entry;
	return 0;
}

static void build_tables(struct vmm_vm *vm, uint64_t image_end)
{
	struct vmm_mem *m = &vm->mem;
	uint64_t top = KGUEST_HIGH_RAM;

	if (m->nr_regions > 1)
		top = m->regions[1].gpa + m->regions[1].size;

	/* GDT: null, kernel code, kernel data, user data, user code, TSS (two slots). */
	uint64_t gdt[7] = {
	    0,
	    0x00af9a000000ffffull,
	    0x00cf92000000ffffull,
	    0x00cff2000000ffffull,
	    0x00affa000000ffffull,
	    0,
	    0,
	};
	uint64_t tss = KGUEST_TSS_GPA, limit = 104 + 8192;
	gdt[5] = (limit & 0xffff) | ((tss & 0xffffff) << 16) | (0x89ull << 40) |
		 (((limit >> 16) & 0xf) << 48) | (((tss >> 24) & 0xff) << 56);
	gdt[6] = tss >> 32;
	vmm_mem_write(m, KGUEST_GDT_GPA, gdt, sizeof(gdt));

	/* TSS with an I/O permission bitmap that allows every port to CPL3. */
	static uint8_t tssb[104 + 8192 + 1];
	uint16_t iomap = 104;
	memset(tssb, 0, sizeof(tssb));
	memcpy(&tssb[102], &iomap, sizeof(iomap));
	tssb[sizeof(tssb) - 1] = 0xff;
	vmm_mem_write(m, KGUEST_TSS_GPA, tssb, sizeof(tssb));

	/* Identity map [0, top) with 2 MiB pages: PML4, PDPT(s), one PD per GiB. */
	uint64_t gib = (top + (1ull << 30) - 1) >> 30;
	uint64_t npdpt = (gib + 511) / 512;
	uint64_t *pml4 = vmm_mem_ptr(m, KGUEST_PT_GPA, 4096);
	uint64_t pdpt_gpa = KGUEST_PT_GPA + 4096;
	uint64_t pd_gpa = pdpt_gpa + npdpt * 4096;
	memset(pml4, 0, 4096);
	for (uint64_t i = 0; i < npdpt; i++)
		pml4[i] = (pdpt_gpa + i * 4096) | PT_DIR_FLAGS;
	for (uint64_t g = 0; g < gib; g++) {
		uint64_t *pdpt = vmm_mem_ptr(m, pdpt_gpa + (g / 512) * 4096, 4096);
		uint64_t *pd = vmm_mem_ptr(m, pd_gpa + g * 4096, 4096);
		pdpt[g % 512] = (pd_gpa + g * 4096) | PT_DIR_FLAGS;
		for (uint64_t j = 0; j < 512; j++)
			pd[j] = ((g << 30) + (j << 21)) | PT_PDE_FLAGS;
	}
	vmm_mem_dirty(m, KGUEST_PT_GPA, pd_gpa + gib * 4096 - KGUEST_PT_GPA);

	struct kguest_boot_info *bi = vmm_mem_ptr(m, KGUEST_BOOT_INFO_GPA, sizeof(*bi));
	memset(bi, 0, sizeof(*bi));
	bi->magic = KGUEST_BOOT_MAGIC;
	bi->version = KGUEST_BOOT_VERSION;
	bi->size = sizeof(*bi);
	bi->mem_low = m->regions[0].size;
	bi->mem_high = m->nr_regions > 1 ? m->regions[1].size : 0;
	bi->tsc_khz = vm->tsc_khz;
	bi->image_end = image_end;
	bi->nr_vcpus = (uint32_t)vm->nr_vcpus;
	const char *cl = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	size_t cl_len = strnlen(cl, KGUEST_CMDLINE_MAX - 1);
	memcpy(bi->cmdline, cl, cl_len);
	bi->cmdline_len = (uint32_t)cl_len;
	vmm_mem_dirty(m, KGUEST_BOOT_INFO_GPA, sizeof(*bi));
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = (uint8_t)(sel & 3);
	s->s = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
	s->g = 1;
}

static int set_entry(struct vmm_vcpu *vcpu, uint64_t entry, struct kb_errmsg *err)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	int rv;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sr) < 0)
		goto fail;
	seg(&sr.cs, KGUEST_SEL_KCODE, 11, true);
	seg(&sr.ds, KGUEST_SEL_KDATA, 3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.base = KGUEST_TSS_GPA;
	sr.tr.limit = 104 + 8192;
	sr.tr.selector = KGUEST_SEL_TSS;
	sr.tr.type = 11; /* busy 64-bit TSS */
	sr.tr.present = 1;
	memset(&sr.ldt, 0, sizeof(sr.ldt));
	sr.ldt.type = 2;
	sr.ldt.unusable = 1;
	sr.gdt.base = KGUEST_GDT_GPA;
	sr.gdt.limit = 7 * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = 0x80050033ull; /* PG WP NE ET MP PE */
	sr.cr3 = KGUEST_PT_GPA;
	sr.cr4 = 0x620;	 /* OSXMMEXCPT OSFXSR PAE */
	sr.efer = 0xd01; /* NXE LMA LME SCE */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sr) < 0)
		goto fail;

	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rdi = KGUEST_BOOT_INFO_GPA;
	regs.rsi = (uint64_t)vcpu->id;
	regs.rsp = KGUEST_BOOT_STACK_TOP - 4096ull * (uint64_t)vcpu->id;
	regs.rflags = 2;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		goto fail;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		goto fail;

	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		goto fail;
	return 0;
fail:
	rv = -errno;
	kb_errmsg_setf(err, "setting vCPU %d entry state: %s", vcpu->id, kb_strerror(rv));
	return rv;
}

int vmm__boot_kguest(struct vmm_vm *vm, struct kb_errmsg *err)
{
	uint8_t *img = NULL;
	uint64_t len, entry, end, top;
	int rv;

	if (vm->nr_vcpus > KGUEST_MAX_VCPUS) {
		kb_errmsg_setf(err, "kguest supports at most %d vCPUs", KGUEST_MAX_VCPUS);
		return KB_ECONFIG;
	}
	top = vm->mem.nr_regions > 1 ? vm->mem.regions[1].gpa + vm->mem.regions[1].size
				     : KGUEST_HIGH_RAM;
	uint64_t gib = (top + (1ull << 30) - 1) >> 30;
	if (KGUEST_PT_GPA + (2 + (gib + 511) / 512 + gib) * 4096 > KGUEST_PT_MAX) {
		kb_errmsg_setf(err, "guest memory too large for kguest's page tables");
		return KB_ECONFIG;
	}
	if (vm->mem.regions[0].size < (4u << 20)) {
		kb_errmsg_setf(err, "kguest needs at least 4 MiB of memory");
		return KB_ECONFIG;
	}
	rv = vmm__read_file(vm->cfg.kernel, IMAGE_MAX, &img, &len, err);
	if (rv < 0)
		return rv;
	rv = load_elf(vm, img, len, &entry, &end, err);
	kb_free(img);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "%s", vm->cfg.kernel);
		return rv;
	}
	build_tables(vm, end);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		rv = set_entry(&vm->vcpus[i], entry, err);
		if (rv < 0)
			return rv;
	}
	return 0;
}
