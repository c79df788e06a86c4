/*
 * Boot of Linux guests, without firmware: the VMM does what a boot loader and a BIOS would.
 *
 * Two image formats, told apart by their first bytes:
 *  - bzImage, through the 64-bit boot protocol (Documentation/x86/boot.rst): the setup
 *    header is checked ("HdrS", version >= 2.12, XLF_KERNEL_64), the protected-mode kernel
 *    is copied to pref_address (relocatable kernels, when it fits) or 1 MiB, a zero page
 *    (struct boot_params) gets the setup header, the e820 map, the command line and the
 *    initramfs, and vCPU 0 enters startup_64 (load address + 0x200) in long mode with RSI
 *    pointing at the zero page, identity page tables over the first 4 GiB, __BOOT_CS 0x10
 *    and __BOOT_DS 0x18, interrupts off.
 *  - an uncompressed vmlinux ELF with a XEN_ELFNOTE_PHYS32_ENTRY note, through the PVH
 *    ABI: PT_LOAD segments at their physical addresses, a struct hvm_start_info (version 1,
 *    with a memory map, the initramfs as module 0 and the command line), and vCPU 0 enters
 *    the note's address in 32-bit protected mode, paging off, EBX = start info.
 * Both get an Intel MultiProcessor Specification 1.4 table (one processor entry per vCPU,
 * ISA and PCI buses, the IOAPIC, ISA IRQs and PCI INTx routing, LINT0/LINT1) so the guest
 * finds its APs and interrupt routing without ACPI. Only vCPU 0 is set runnable: the others
 * wait in the in-kernel LAPIC for the INIT/SIPI sequence the guest sends.
 *
 * Guest-physical layout (low memory; guest memory is zero when this runs):
 *   0x00500  GDT (null, null, 64-bit code 0x10, data 0x18, 32-bit code 0x20)
 *   0x06000  PVH start info, module list, memory map
 *   0x07000  zero page (bzImage)
 *   0x09000  PML4, PDPT at 0xA000, 4 page directories at 0xB000-0xEFFF (bzImage)
 *   0x20000  command line
 *   0x9FC00-0xFFFFF  reserved in the e820 map; the MP table sits at 0xF0000
 *   kernel at pref_address or 1 MiB; initramfs at the top of RAM below 4 GiB
 *
 * Failure modes: every size and offset in the kernel and initramfs files is untrusted and
 * checked against the file and guest RAM; a truncated or foreign image gets a message
 * naming the problem and KB_ECONFIG; KVM refusing the register state gets -errno.
 */
#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/vmm.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

#define IMAGE_MAX (256ull << 20) /* largest kernel file accepted */

#define LX_GDT_GPA	 0x500ull
#define LX_PVH_GPA	 0x6000ull
#define LX_ZERO_PAGE_GPA 0x7000ull
#define LX_PT_GPA	 0x9000ull /* PML4; PDPT +0x1000; page directories +0x2000.. */
#define LX_PT_GIB	 4	   /* identity-mapped GiB */
#define LX_CMDLINE_GPA	 0x20000ull
#define LX_CMDLINE_MAX	 0x10000ull
#define LX_EBDA_START	 0x9fc00ull
#define LX_MPTABLE_GPA	 0xf0000ull
#define LX_MPTABLE_MAX	 0x10000ull
#define LX_HIGH_MEM	 0x100000ull /* 1 MiB */
#define LX_MIN_RAM	 (32ull << 20)
#define LX_IOAPIC_GPA	 0xfec00000ull
#define LX_LAPIC_GPA	 0xfee00000ull
#define LX_HIGH_RAM	 0x100000000ull

#define LX_SEL_CODE64 0x10 /* __BOOT_CS */
#define LX_SEL_DATA   0x18 /* __BOOT_DS */
#define LX_SEL_CODE32 0x20

#define E820_RAM      1
#define E820_RESERVED 2

#define SETUP_HDR_OFF	 0x1f1
#define SETUP_MAGIC	 0x53726448 /* "HdrS" */
#define BOOT_VERSION_MIN 0x020c
#define STARTUP_64_OFF	 0x200

#define PVH_NOTE_TYPE 18 /* XEN_ELFNOTE_PHYS32_ENTRY */
#define PVH_MAGIC     0x336ec578

struct lx_e820 {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

#define LX_E820_MAX 8

/* What the image loaders leave for the common part. */
struct lx_boot {
	uint64_t entry;
	uint64_t kernel_end;  /* the initramfs must start at or above this */
	uint64_t initrd_max;  /* last byte address the initramfs may use + 1 */
	uint64_t cmdline_max; /* bytes, including the NUL */
	uint64_t initrd_gpa;
	uint64_t initrd_size;
	bool pvh;
};

/* ---- memory map ------------------------------------------------------------------- */

static int build_e820(const struct vmm_vm *vm, struct lx_e820 *e)
{
	const struct vmm_mem *m = &vm->mem;
	int n = 0;

	e[n++] = (struct lx_e820){0, LX_EBDA_START, E820_RAM};
	e[n++] = (struct lx_e820){LX_EBDA_START, LX_HIGH_MEM - LX_EBDA_START, E820_RESERVED};
	e[n++] = (struct lx_e820){LX_HIGH_MEM, m->regions[0].size - LX_HIGH_MEM, E820_RAM};
	e[n++] = (struct lx_e820){LX_IOAPIC_GPA, LX_HIGH_RAM - LX_IOAPIC_GPA, E820_RESERVED};
	for (int i = 1; i < m->nr_regions; i++)
		e[n++] = (struct lx_e820){m->regions[i].gpa, m->regions[i].size, E820_RAM};
	return n;
}

/* ---- MP table (Intel MultiProcessor Specification 1.4) ------------------------------ */

struct mpf_intel {	       /* floating pointer structure, 16 bytes, in the BIOS area */
	char signature[4];     /* "_MP_" */
	uint32_t physptr;      /* configuration table */
	uint8_t length;	       /* in 16-byte units: 1 */
	uint8_t specification; /* 4 = version 1.4 */
	uint8_t checksum;
	uint8_t feature1; /* 0: a configuration table is present */
	uint8_t feature2;
	uint8_t feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_table {	   /* configuration table header, 44 bytes */
	char signature[4]; /* "PCMP" */
	uint16_t length;   /* header and base entries */
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu { /* entry type 0 */
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag; /* bit 0 enabled, bit 1 bootstrap processor */
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus { /* entry type 1 */
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic { /* entry type 2 */
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags; /* bit 0 enabled */
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc { /* entry types 3 (I/O interrupt) and 4 (local interrupt) */
	uint8_t type;
	uint8_t irqtype;  /* 0 INT, 1 NMI, 2 SMI, 3 ExtINT */
	uint16_t irqflag; /* bits 0-1 polarity, 2-3 trigger; 0 = conforms to the bus */
	uint8_t srcbus;
	uint8_t srcbusirq; /* ISA: the IRQ; PCI: (slot << 2) | (pin - 1) */
	uint8_t dstapic;   /* IOAPIC id; 0xff for local entries: every LAPIC */
	uint8_t dstirq;	   /* IOAPIC pin or LINTn */
} __attribute__((packed));

#define MP_BUS_PCI	  0
#define MP_BUS_ISA	  1
#define MP_IRQ_INT	  0
#define MP_IRQ_NMI	  1
#define MP_IRQ_EXTINT	  3
#define MP_IRQ_LEVEL_LOW  0x000f /* active low, level triggered */
#define MP_APIC_VERSION	  0x14
#define MP_IOAPIC_VERSION 0x11

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

static void cpuid_sig(const struct vmm_vm *vm, uint32_t *sig, uint32_t *features)
{
	*sig = 0x600;
	*features = 0x201; /* FPU, APIC */
	if (vm->cpuid == NULL)
		return;
	for (uint32_t i = 0; i < vm->cpuid->nent; i++) {
		if (vm->cpuid->entries[i].function == 1) {
			*sig = vm->cpuid->entries[i].eax;
			*features = vm->cpuid->entries[i].edx;
			return;
		}
	}
}

/* Appends one entry to the table being built; false when it would not fit. */
static bool mp_put(uint8_t *buf, size_t *off, const void *ent, size_t len)
{
	if (*off + len > LX_MPTABLE_MAX)
		return false;
	memcpy(buf + *off, ent, len);
	*off += len;
	return true;
}

static int write_mptable(struct vmm_vm *vm, struct kb_errmsg *err)
{
	struct vmm_pci_route routes[VMM_PCI_NR_SLOTS];
	uint8_t ioapic_id = (uint8_t)vm->nr_vcpus;
	uint32_t sig, features;
	size_t off = sizeof(struct mpf_intel) + sizeof(struct mpc_table);
	uint16_t count = 0;
	uint8_t *buf;
	bool ok = true;
	int nr_routes = 0;

	buf = kb_calloc(1, LX_MPTABLE_MAX);
	if (buf == NULL)
		return -ENOMEM;
	cpuid_sig(vm, &sig, &features);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct mpc_cpu c = {.type = 0,
				    .apicid = (uint8_t)i,
				    .apicver = MP_APIC_VERSION,
				    .cpuflag = (uint8_t)(1 | (i == 0 ? 2 : 0)),
				    .cpufeature = sig,
				    .featureflag = features};
		ok = ok && mp_put(buf, &off, &c, sizeof(c));
		count++;
	}
	struct mpc_bus pci = {.type = 1, .busid = MP_BUS_PCI, .bustype = "PCI   "};
	struct mpc_bus isa = {.type = 1, .busid = MP_BUS_ISA, .bustype = "ISA   "};
	ok = ok && mp_put(buf, &off, &pci, sizeof(pci)) && mp_put(buf, &off, &isa, sizeof(isa));
	struct mpc_ioapic io = {.type = 2,
				.apicid = ioapic_id,
				.apicver = MP_IOAPIC_VERSION,
				.flags = 1,
				.apicaddr = (uint32_t)LX_IOAPIC_GPA};
	ok = ok && mp_put(buf, &off, &io, sizeof(io));
	count += 3;

	if (vm->pci != NULL)
		nr_routes = vmm_pci_routes(vm->pci, routes, VMM_PCI_NR_SLOTS);
	/* ISA IRQs, identity-mapped to IOAPIC pins as KVM's default GSI routing does (the
	 * in-kernel PIT raises GSI 0, which reaches IOAPIC pin 0, not pin 2 as on PC
	 * chipsets); IRQ2 (the cascade) has no pin, and the GSIs the PCI bridge routes INTx
	 * to (5, 9, 10, 11) are left to the PCI entries so they stay level-triggered. */
	for (uint8_t irq = 0; irq < 16; irq++) {
		if (irq == 2 || irq == 5 || irq == 9 || irq == 10 || irq == 11)
			continue;
		struct mpc_intsrc s = {.type = 3,
				       .irqtype = MP_IRQ_INT,
				       .irqflag = 0,
				       .srcbus = MP_BUS_ISA,
				       .srcbusirq = irq,
				       .dstapic = ioapic_id,
				       .dstirq = irq};
		ok = ok && mp_put(buf, &off, &s, sizeof(s));
		count++;
	}
	for (int i = 0; i < nr_routes; i++) {
		if (routes[i].pin < 1 || routes[i].pin > 4 || routes[i].slot >= 32 ||
		    routes[i].gsi >= 24)
			continue;
		struct mpc_intsrc s = {.type = 3,
				       .irqtype = MP_IRQ_INT,
				       .irqflag = MP_IRQ_LEVEL_LOW,
				       .srcbus = MP_BUS_PCI,
				       .srcbusirq =
					   (uint8_t)((routes[i].slot << 2) | (routes[i].pin - 1)),
				       .dstapic = ioapic_id,
				       .dstirq = (uint8_t)routes[i].gsi};
		ok = ok && mp_put(buf, &off, &s, sizeof(s));
		count++;
	}
	struct mpc_intsrc lint0 = {.type = 4,
				   .irqtype = MP_IRQ_EXTINT,
				   .srcbus = MP_BUS_ISA,
				   .dstapic = 0xff,
				   .dstirq = 0};
	struct mpc_intsrc lint1 = {
	    .type = 4, .irqtype = MP_IRQ_NMI, .srcbus = MP_BUS_ISA, .dstapic = 0xff, .dstirq = 1};
	ok = ok && mp_put(buf, &off, &lint0, sizeof(lint0)) &&
	     mp_put(buf, &off, &lint1, sizeof(lint1));
	count += 2;
	if (!ok) {
		kb_free(buf);
		kb_errmsg_setf(err, "MP table for %d vCPUs does not fit in 64 KiB", vm->nr_vcpus);
		return KB_ETOOBIG;
	}

	struct mpc_table t = {
	    .signature = {'P', 'C', 'M', 'P'},
	    .length = (uint16_t)(off - sizeof(struct mpf_intel)),
	    .spec = 4,
	    .oem = {'K', 'E', 'E', 'L', ' ', ' ', ' ', ' '},
	    .productid = {'v', 'm', 'x', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '},
	    .oemcount = count,
	    .lapic = (uint32_t)LX_LAPIC_GPA};
	memcpy(buf + sizeof(struct mpf_intel), &t, sizeof(t));
	buf[sizeof(struct mpf_intel) + offsetof(struct mpc_table, checksum)] =
	    mp_checksum(buf + sizeof(struct mpf_intel), off - sizeof(struct mpf_intel));

	struct mpf_intel f = {.signature = {'_', 'M', 'P', '_'},
			      .physptr = (uint32_t)(LX_MPTABLE_GPA + sizeof(struct mpf_intel)),
			      .length = 1,
			      .specification = 4};
	memcpy(buf, &f, sizeof(f));
	buf[offsetof(struct mpf_intel, checksum)] = mp_checksum(buf, sizeof(f));

	int rv = vmm_mem_write(&vm->mem, LX_MPTABLE_GPA, buf, off);
	kb_free(buf);
	if (rv < 0)
		kb_errmsg_setf(err, "guest RAM does not cover the MP table at 0x%llx",
			       (unsigned long long)LX_MPTABLE_GPA);
	return rv;
}

/* ---- bzImage ---------------------------------------------------------------------- */

static int load_bzimage(struct vmm_vm *vm, const uint8_t *img, uint64_t len,
			struct setup_header *hdr, struct lx_boot *lb, struct kb_errmsg *err)
{
	uint64_t low_top = vm->mem.regions[0].size;
	uint64_t hdr_end, setup_size, load, need, span;
	uint32_t magic;
	uint16_t version;

	if (len < SETUP_HDR_OFF + sizeof(*hdr)) {
		kb_errmsg_setf(err, "%llu bytes is too short for a bzImage",
			       (unsigned long long)len);
		return KB_ECONFIG;
	}
	memcpy(&magic, img + 0x202, sizeof(magic));
	memcpy(&version, img + 0x206, sizeof(version));
	if (magic != SETUP_MAGIC) {
		kb_errmsg_setf(err, "not a bzImage (no \"HdrS\" setup header) nor an ELF vmlinux");
		return KB_ECONFIG;
	}
	if (version < BOOT_VERSION_MIN) {
		kb_errmsg_setf(err, "boot protocol %u.%02u is older than 2.12", version >> 8,
			       version & 0xff);
		return KB_ECONFIG;
	}
	/* The header ends where the jump at 0x200 lands: 0x202 + its 8-bit displacement. */
	hdr_end = 0x202 + (uint64_t)img[0x201];
	if (hdr_end > SETUP_HDR_OFF + sizeof(*hdr))
		hdr_end = SETUP_HDR_OFF + sizeof(*hdr);
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr, img + SETUP_HDR_OFF, hdr_end - SETUP_HDR_OFF);
	if (!(hdr->xloadflags & XLF_KERNEL_64)) {
		kb_errmsg_setf(err, "the kernel has no 64-bit entry point (XLF_KERNEL_64 unset)");
		return KB_ECONFIG;
	}
	setup_size = ((uint64_t)(hdr->setup_sects ? hdr->setup_sects : 4) + 1) * 512;
	if (setup_size >= len) {
		kb_errmsg_setf(err, "setup code (%llu bytes) is not followed by a kernel",
			       (unsigned long long)setup_size);
		return KB_ECONFIG;
	}
	span = len - setup_size; /* protected-mode kernel in the file */
	if (span < (uint64_t)hdr->syssize * 16) {
		kb_errmsg_setf(err, "truncated bzImage: %llu bytes of kernel, the header says %llu",
			       (unsigned long long)span, (unsigned long long)hdr->syssize * 16);
		return KB_ECONFIG;
	}
	need = hdr->init_size > span ? hdr->init_size : span;

	/* Relocatable kernels go to pref_address when they fit, others to 1 MiB (from where
	 * a non-relocatable kernel moves itself to pref_address). */
	load = LX_HIGH_MEM;
	if (hdr->relocatable_kernel && hdr->pref_address >= LX_HIGH_MEM &&
	    hdr->pref_address < low_top && need <= low_top - hdr->pref_address)
		load = hdr->pref_address;
	/* The decompressor works from max(load, pref_address) for init_size bytes. */
	uint64_t base = load;
	if (hdr->pref_address > base && hdr->pref_address < LX_HIGH_RAM)
		base = hdr->pref_address;
	if (base >= low_top || need > low_top - base || span > low_top - load) {
		kb_errmsg_setf(err,
			       "the kernel needs %llu MiB from 0x%llx; guest RAM below the "
			       "MMIO hole ends at 0x%llx",
			       (unsigned long long)(need >> 20), (unsigned long long)base,
			       (unsigned long long)low_top);
		return KB_ECONFIG;
	}
	if (vmm_mem_write(&vm->mem, load, img + setup_size, span) < 0) {
		kb_errmsg_setf(err, "cannot copy the kernel to 0x%llx", (unsigned long long)load);
		return KB_ECONFIG;
	}
	hdr->code32_start = (uint32_t)load;
	lb->entry = load + STARTUP_64_OFF;
	lb->kernel_end = (base + need + 4095) & ~4095ull;
	lb->initrd_max = (uint64_t)hdr->initrd_addr_max + 1;
	lb->cmdline_max = hdr->cmdline_size ? (uint64_t)hdr->cmdline_size + 1 : 256;
	if (lb->cmdline_max > LX_CMDLINE_MAX)
		lb->cmdline_max = LX_CMDLINE_MAX;
	return 0;
}

static int write_zero_page(struct vmm_vm *vm, const struct setup_header *hdr,
			   const struct lx_boot *lb, const struct lx_e820 *e, int ne)
{
	struct boot_params *bp = kb_calloc(1, sizeof(*bp));
	int rv;

	if (bp == NULL)
		return -ENOMEM;
	memcpy(&bp->hdr, hdr, sizeof(*hdr));
	bp->hdr.type_of_loader = 0xff;
	bp->hdr.loadflags = (uint8_t)((hdr->loadflags | CAN_USE_HEAP) & ~(1u << 5) /* QUIET */);
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.cmd_line_ptr = (uint32_t)LX_CMDLINE_GPA;
	bp->hdr.ramdisk_image = (uint32_t)lb->initrd_gpa;
	bp->hdr.ramdisk_size = (uint32_t)lb->initrd_size;
	bp->hdr.vid_mode = 0xffff; /* "normal" */
	bp->e820_entries = (uint8_t)ne;
	for (int i = 0; i < ne; i++) {
		bp->e820_table[i].addr = e[i].addr;
		bp->e820_table[i].size = e[i].size;
		bp->e820_table[i].type = e[i].type;
	}
	rv = vmm_mem_write(&vm->mem, LX_ZERO_PAGE_GPA, bp, sizeof(*bp));
	kb_free(bp);
	return rv;
}

/* ---- PVH -------------------------------------------------------------------------- */

struct hvm_start_info {
	uint32_t magic; /* PVH_MAGIC */
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* Finds the PHYS32_ENTRY note in the PT_NOTE segments; 0 if there is none. */
static uint64_t pvh_entry(const uint8_t *img, uint64_t len, const Elf64_Phdr *ph, int phnum)
{
	for (int i = 0; i < phnum; i++) {
		if (ph[i].p_type != PT_NOTE || ph[i].p_offset > len ||
		    ph[i].p_filesz > len - ph[i].p_offset)
			continue;
		const uint8_t *p = img + ph[i].p_offset;
		uint64_t left = ph[i].p_filesz;
		while (left >= sizeof(Elf64_Nhdr)) {
			Elf64_Nhdr nh;
			memcpy(&nh, p, sizeof(nh));
			uint64_t name_sz = ((uint64_t)nh.n_namesz + 3) & ~3ull;
			uint64_t desc_sz = ((uint64_t)nh.n_descsz + 3) & ~3ull;
			if (name_sz + desc_sz > left - sizeof(nh))
				break;
			const uint8_t *name = p + sizeof(nh), *desc = name + name_sz;
			if (nh.n_type == PVH_NOTE_TYPE && nh.n_namesz == 4 &&
			    memcmp(name, "Xen", 4) == 0 && (nh.n_descsz == 4 || nh.n_descsz == 8)) {
				uint64_t v = 0;
				memcpy(&v, desc, nh.n_descsz);
				return v;
			}
			p += sizeof(nh) + name_sz + desc_sz;
			left -= sizeof(nh) + name_sz + desc_sz;
		}
	}
	return 0;
}

static int load_pvh(struct vmm_vm *vm, const uint8_t *img, uint64_t len, struct lx_boot *lb,
		    struct kb_errmsg *err)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	uint64_t low_top = vm->mem.regions[0].size, end = LX_HIGH_MEM;
	bool entry_ok = false;

	if (len < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64) {
		kb_errmsg_setf(err, "not an x86-64 ELF vmlinux");
		return KB_ECONFIG;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > 64 ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		kb_errmsg_setf(err, "ELF program headers out of bounds");
		return KB_ECONFIG;
	}
	Elf64_Phdr ph[64]; /* copied out: e_phoff need not be aligned */
	memcpy(ph, img + eh->e_phoff, (size_t)eh->e_phnum * sizeof(Elf64_Phdr));
	uint64_t entry = pvh_entry(img, len, ph, eh->e_phnum);
	if (entry == 0) {
		kb_errmsg_setf(err, "the vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
		return KB_ECONFIG;
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > len ||
		    p->p_filesz > len - p->p_offset) {
			kb_errmsg_setf(err, "ELF segment %d lies outside the file (truncated?)", i);
			return KB_ECONFIG;
		}
		if (p->p_paddr < LX_HIGH_MEM || p->p_paddr >= low_top ||
		    p->p_memsz > low_top - p->p_paddr) {
			kb_errmsg_setf(err,
				       "ELF segment %d (paddr 0x%llx, %llu bytes) does not fit "
				       "guest RAM between 1 MiB and 0x%llx",
				       i, (unsigned long long)p->p_paddr,
				       (unsigned long long)p->p_memsz, (unsigned long long)low_top);
			return KB_ECONFIG;
		}
		uint8_t *dst = vmm_mem_ptr(&vm->mem, p->p_paddr, p->p_memsz);
		memcpy(dst, img + p->p_offset, p->p_filesz);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		vmm_mem_dirty(&vm->mem, p->p_paddr, p->p_memsz);
		if (entry >= p->p_paddr && entry - p->p_paddr < p->p_filesz)
			entry_ok = true;
		uint64_t seg_end = (p->p_paddr + p->p_memsz + 4095) & ~4095ull;
		if (seg_end > end)
			end = seg_end;
	}
	if (!entry_ok || entry >= LX_HIGH_RAM) {
		kb_errmsg_setf(err, "PVH entry 0x%llx is not inside a loaded segment",
			       (unsigned long long)entry);
		return KB_ECONFIG;
	}
	lb->entry = entry;
	lb->kernel_end = end;
	lb->initrd_max = LX_HIGH_RAM;
	lb->cmdline_max = 2048; /* COMMAND_LINE_SIZE on x86 */
	lb->pvh = true;
	return 0;
}

static int write_pvh_info(struct vmm_vm *vm, const struct lx_boot *lb, const struct lx_e820 *e,
			  int ne)
{
	struct {
		struct hvm_start_info si;
		struct hvm_modlist_entry mod;
		struct hvm_memmap_table_entry map[LX_E820_MAX];
	} b;

	memset(&b, 0, sizeof(b));
	b.si.magic = PVH_MAGIC;
	b.si.version = 1;
	b.si.cmdline_paddr = LX_CMDLINE_GPA;
	b.si.memmap_paddr = LX_PVH_GPA + offsetof(__typeof__(b), map);
	b.si.memmap_entries = (uint32_t)ne;
	if (lb->initrd_size > 0) {
		b.si.nr_modules = 1;
		b.si.modlist_paddr = LX_PVH_GPA + offsetof(__typeof__(b), mod);
		b.mod.paddr = lb->initrd_gpa;
		b.mod.size = lb->initrd_size;
	}
	for (int i = 0; i < ne; i++) {
		b.map[i].addr = e[i].addr;
		b.map[i].size = e[i].size;
		b.map[i].type = e[i].type;
	}
	return vmm_mem_write(&vm->mem, LX_PVH_GPA, &b, sizeof(b));
}

/* ---- common: initramfs, command line, page tables, vCPU state -------------------- */

static int load_initrd(struct vmm_vm *vm, struct lx_boot *lb, struct kb_errmsg *err)
{
	uint64_t top = vm->mem.regions[0].size, len;
	uint8_t *buf;
	int rv;

	lb->initrd_gpa = lb->initrd_size = 0;
	if (vm->cfg.initrd == NULL)
		return 0;
	if (lb->initrd_max < top)
		top = lb->initrd_max;
	top &= ~4095ull;
	rv = vmm__read_file(vm->cfg.initrd, top, &buf, &len, err);
	if (rv < 0)
		return rv;
	if (len == 0) {
		kb_errmsg_setf(err, "initramfs %s is empty", vm->cfg.initrd);
		kb_free(buf);
		return KB_ECONFIG;
	}
	if (len > top || ((top - len) & ~4095ull) < lb->kernel_end) {
		kb_errmsg_setf(err,
			       "initramfs %s (%llu bytes) does not fit in guest RAM between "
			       "the kernel (ends 0x%llx) and 0x%llx",
			       vm->cfg.initrd, (unsigned long long)len,
			       (unsigned long long)lb->kernel_end, (unsigned long long)top);
		kb_free(buf);
		return KB_ECONFIG;
	}
	lb->initrd_gpa = (top - len) & ~4095ull;
	lb->initrd_size = len;
	rv = vmm_mem_write(&vm->mem, lb->initrd_gpa, buf, len);
	kb_free(buf);
	return rv;
}

static int write_cmdline(struct vmm_vm *vm, const struct lx_boot *lb, struct kb_errmsg *err)
{
	const char *cl = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	size_t n = strlen(cl);

	if (n + 1 > lb->cmdline_max) {
		kb_errmsg_setf(err, "command line of %zu bytes exceeds the kernel's limit of %llu",
			       n, (unsigned long long)lb->cmdline_max - 1);
		return KB_ECONFIG;
	}
	return vmm_mem_write(&vm->mem, LX_CMDLINE_GPA, cl, n + 1);
}

/* GDT and identity page tables for the first LX_PT_GIB GiB with 2 MiB pages. */
static int write_tables(struct vmm_vm *vm)
{
	static const uint64_t gdt[5] = {
	    0,
	    0,
	    0x00af9b000000ffffull, /* 0x10: 64-bit code */
	    0x00cf93000000ffffull, /* 0x18: data */
	    0x00cf9b000000ffffull, /* 0x20: 32-bit code */
	};
	uint64_t pt[(2 + LX_PT_GIB) * 512];
	int rv;

	rv = vmm_mem_write(&vm->mem, LX_GDT_GPA, gdt, sizeof(gdt));
	if (rv < 0)
		return rv;
	memset(pt, 0, sizeof(pt));
	pt[0] = (LX_PT_GPA + 0x1000) | 0x3;
	for (uint64_t g = 0; g < LX_PT_GIB; g++) {
		pt[512 + g] = (LX_PT_GPA + 0x2000 + g * 0x1000) | 0x3;
		for (uint64_t j = 0; j < 512; j++)
			pt[1024 + g * 512 + j] = ((g << 30) | (j << 21)) | 0x83;
	}
	return vmm_mem_write(&vm->mem, LX_PT_GPA, pt, sizeof(pt));
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l, bool db)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->l = l;
	s->db = db;
	s->g = 1;
}

static int set_bsp(struct vmm_vcpu *vcpu, const struct lx_boot *lb, struct kb_errmsg *err)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	int rv;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sr) < 0)
		goto fail;
	if (lb->pvh)
		flat_seg(&sr.cs, LX_SEL_CODE32, 11, false, true);
	else
		flat_seg(&sr.cs, LX_SEL_CODE64, 11, true, false);
	flat_seg(&sr.ds, LX_SEL_DATA, 3, false, true);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.limit = 0xffff;
	sr.tr.type = 11;
	sr.tr.present = 1;
	memset(&sr.ldt, 0, sizeof(sr.ldt));
	sr.ldt.limit = 0xffff;
	sr.ldt.type = 2;
	sr.ldt.present = 1;
	sr.gdt.base = LX_GDT_GPA;
	sr.gdt.limit = 5 * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	if (lb->pvh) {
		sr.cr0 = 0x11; /* ET PE: protected mode, paging off */
		sr.cr3 = 0;
		sr.cr4 = 0;
		sr.efer = 0;
	} else {
		sr.cr0 = 0x80050033ull; /* PG WP NE ET MP PE */
		sr.cr3 = LX_PT_GPA;
		sr.cr4 = 0x20;	 /* PAE */
		sr.efer = 0xd00; /* NXE LMA LME */
	}
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sr) < 0)
		goto fail;

	memset(&regs, 0, sizeof(regs));
	regs.rip = lb->entry;
	regs.rflags = 2; /* interrupts off */
	if (lb->pvh)
		regs.rbx = LX_PVH_GPA;
	else
		regs.rsi = LX_ZERO_PAGE_GPA;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		goto fail;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		goto fail;
	return 0;
fail:
	rv = -errno;
	kb_errmsg_setf(err, "setting vCPU 0 entry state: %s", kb_strerror(rv));
	return rv;
}

static int set_mp_states(struct vmm_vm *vm, struct kb_errmsg *err)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_mp_state mp = {.mp_state = i == 0 ? KVM_MP_STATE_RUNNABLE
							     : KVM_MP_STATE_UNINITIALIZED};
		if (ioctl(vm->vcpus[i].fd, KVM_SET_MP_STATE, &mp) < 0) {
			int rv = -errno;
			kb_errmsg_setf(err, "setting vCPU %d MP state: %s", i, kb_strerror(rv));
			return rv;
		}
	}
	return 0;
}

int vmm__boot_linux(struct vmm_vm *vm, struct kb_errmsg *err)
{
	struct setup_header hdr;
	struct lx_boot lb;
	struct lx_e820 e820[LX_E820_MAX];
	uint8_t *img = NULL;
	uint64_t len;
	int ne, rv;

	memset(&lb, 0, sizeof(lb));
	if (vm->nr_vcpus > 254) {
		kb_errmsg_setf(err, "Linux guests support at most 254 vCPUs");
		return KB_ECONFIG;
	}
	if (vm->mem.nr_regions < 1 || vm->mem.regions[0].gpa != 0 ||
	    vm->mem.regions[0].size < LX_MIN_RAM) {
		kb_errmsg_setf(err, "a Linux guest needs at least %llu MiB of memory",
			       (unsigned long long)(LX_MIN_RAM >> 20));
		return KB_ECONFIG;
	}
	rv = vmm__read_file(vm->cfg.kernel, IMAGE_MAX, &img, &len, err);
	if (rv < 0)
		return rv;
	if (len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0)
		rv = load_pvh(vm, img, len, &lb, err);
	else
		rv = load_bzimage(vm, img, len, &hdr, &lb, err);
	kb_free(img);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "%s", vm->cfg.kernel);
		return rv;
	}
	rv = load_initrd(vm, &lb, err);
	if (rv < 0)
		return rv;
	rv = write_cmdline(vm, &lb, err);
	if (rv < 0)
		return rv;
	ne = build_e820(vm, e820);
	rv = lb.pvh ? write_pvh_info(vm, &lb, e820, ne) : write_zero_page(vm, &hdr, &lb, e820, ne);
	if (rv == 0)
		rv = write_tables(vm);
	if (rv < 0) {
		kb_errmsg_setf(err, "writing the boot tables: %s", kb_strerror(rv));
		return rv;
	}
	rv = write_mptable(vm, err);
	if (rv < 0)
		return rv;
	rv = set_bsp(&vm->vcpus[0], &lb, err);
	if (rv < 0)
		return rv;
	rv = set_mp_states(vm, err);
	if (rv < 0)
		return rv;
	kb_log(vm->log, KB_LOG_INFO,
	       "Linux %s: entry 0x%llx, kernel ends 0x%llx, initramfs %llu bytes at 0x%llx",
	       lb.pvh ? "PVH" : "bzImage", (unsigned long long)lb.entry,
	       (unsigned long long)lb.kernel_end, (unsigned long long)lb.initrd_size,
	       (unsigned long long)lb.initrd_gpa);
	return 0;
}

int vmm__boot_linux_devices(struct vmm_vm *vm, struct kb_errmsg *err)
{
	/* The MP table lists the PCI functions' INTx routes, known only once the devices
	 * from the command line exist: rewrite it before the first instruction runs. */
	return write_mptable(vm, err);
}
