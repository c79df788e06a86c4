/*
 * The kguest boot and device ABI, shared by the VMM (kernel/vmm) and kguest
 * (kernel/guest) and the test payloads (tests/payloads). Documented in docs/kguest.md.
 *
 * Entry: the VMM loads the guest's ELF PT_LOAD segments at their physical addresses and
 * enters e_entry on every vCPU in 64-bit long mode at CPL0 with interrupts off:
 *   RDI = KGUEST_BOOT_INFO_GPA, RSI = vCPU index, RSP = KGUEST_BOOT_STACK_TOP - 4096 * index
 *   CS = KGUEST_SEL_KCODE, DS/ES/SS = KGUEST_SEL_KDATA, TR = KGUEST_SEL_TSS
 *   CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = LME|LMA|NXE|SCE
 * Paging: identity map of [0, max(4 GiB, top of RAM)) with 2 MiB pages, present, writable,
 * user-accessible, so CPL3 code reaches RAM and the PCI MMIO hole. Ports: the TSS carries an
 * I/O permission bitmap that opens every port to CPL3 (PVM, this machine's KVM, drops IOPL
 * on the way to CPL3, but honours the bitmap). The GDT and TSS (104 bytes + 8 KiB bitmap +
 * 1) are built by the VMM at the addresses below; the guest may write TSS.rsp0 (offset 4)
 * before dropping to CPL3.
 */
#ifndef KGUEST_ABI_H
#define KGUEST_ABI_H

/* Guest-physical layout (low memory). */
#define KGUEST_GDT_GPA	      0x1000
#define KGUEST_TSS_GPA	      0x2000
#define KGUEST_BOOT_INFO_GPA  0x5000
#define KGUEST_BOOT_STACK_TOP 0x10000  /* vCPU i gets [top - 4096*(i+1), top - 4096*i) */
#define KGUEST_PT_GPA	      0x20000  /* PML4, then PDPT, then page directories */
#define KGUEST_PT_MAX	      0x80000  /* page tables end below this */
#define KGUEST_LOAD_MIN	      0x100000 /* images load at or above 1 MiB */
#define KGUEST_MAX_VCPUS      8

/* GDT selectors. */
#define KGUEST_SEL_KCODE 0x08
#define KGUEST_SEL_KDATA 0x10
#define KGUEST_SEL_UDATA 0x1b /* 0x18 | RPL3 */
#define KGUEST_SEL_UCODE 0x23 /* 0x20 | RPL3 */
#define KGUEST_SEL_TSS	 0x28

/* Memory map: RAM [0, min(size, HOLE)) and, above that, [4 GiB, 4 GiB + rest). */
#define KGUEST_MMIO_HOLE 0xC0000000ull
#define KGUEST_HIGH_RAM	 0x100000000ull

#define KGUEST_BOOT_MAGIC   0x544f4f4254534755ull /* "UGSTBOOT" little-endian */
#define KGUEST_BOOT_VERSION 1
#define KGUEST_CMDLINE_MAX  2048

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Written by the VMM at KGUEST_BOOT_INFO_GPA before entry. */
struct kguest_boot_info {
	uint64_t magic;	    /* KGUEST_BOOT_MAGIC */
	uint32_t version;   /* KGUEST_BOOT_VERSION */
	uint32_t size;	    /* sizeof(struct kguest_boot_info) */
	uint64_t mem_low;   /* bytes of RAM from GPA 0 */
	uint64_t mem_high;  /* bytes of RAM from KGUEST_HIGH_RAM */
	uint64_t tsc_khz;   /* guest TSC frequency */
	uint64_t image_end; /* first free GPA after the loaded image, page aligned */
	uint32_t nr_vcpus;
	uint32_t cmdline_len;		  /* without the NUL */
	char cmdline[KGUEST_CMDLINE_MAX]; /* NUL-terminated */
};
#endif

/*
 * The agent channel: a small port-I/O device (all ports little-endian).
 *   +0  out32  heartbeat: the guest writes an increasing sequence number
 *   +4  out8   power request: KGUEST_POWER_OFF or KGUEST_POWER_RESET
 *   +8  out8   message byte guest->host; '\n' ends a message line (max 256 bytes)
 *   +9  in8    message byte host->guest; 0 when nothing is pending; lines end in '\n'
 *   +12 in32   KGUEST_AGENT_MAGIC (device present)
 */
#define KGUEST_PORT_AGENT      0x510
#define KGUEST_AGENT_NPORTS    16
#define KGUEST_AGENT_HEARTBEAT 0
#define KGUEST_AGENT_POWER     4
#define KGUEST_AGENT_MSG_OUT   8
#define KGUEST_AGENT_MSG_IN    9
#define KGUEST_AGENT_ID	       12
#define KGUEST_AGENT_MAGIC     0x4b414731u /* "1GAK" */
#define KGUEST_AGENT_MSG_MAX   256
#define KGUEST_POWER_OFF       1
#define KGUEST_POWER_RESET     2

/*
 * The test port for ucall-style payloads (registered only when the VMM runs tests):
 *   0xF4 out32  report a value to the test
 *   0xF8 out8   end the run with this exit code (the VM stops)
 */
#define KGUEST_PORT_TEST_REPORT 0xF4
#define KGUEST_PORT_TEST_EXIT	0xF8

/* COM1, a 16550 UART. */
#define KGUEST_PORT_COM1 0x3F8

#endif
