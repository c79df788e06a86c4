/*
 * Constants of the VM state format shared by the writer (state.c) and the reader
 * (state_load.c). The format itself is described at the top of state.c and in
 * docs/vm-state.md.
 */
#ifndef VMM_STATE_FORMAT_H
#define VMM_STATE_FORMAT_H

#define VMM_STATE_MAGIC "KEELVMS" /* 8 bytes with the NUL */
#define VMM_STATE_VERSION 1
#define VMM_STATE_HEADER_LEN 40
#define VMM_STATE_SECTION_MAX (4u << 20) /* any section but MEMORY */
#define VMM_STATE_RUN_MAX_PAGES 256      /* pages in one memory record */
#define VMM_STATE_MSR_MAX 64
#define VMM_STATE_CPUID_MAX 256
#define VMM_STATE_IO_BUF (1u << 20)

enum vmm_state_section {
	VMM_SEC_VM = 1,
	VMM_SEC_VCPU = 2,
	VMM_SEC_DEVICES = 3,
	VMM_SEC_CLOCK = 4,
	VMM_SEC_MEMORY = 5,
	VMM_SEC_END = 6,
};

/* Items of a VCPU section, in save order. */
enum vmm_state_item {
	VMM_ITEM_CPUID = 1,
	VMM_ITEM_MP_STATE,
	VMM_ITEM_REGS,
	VMM_ITEM_SREGS,
	VMM_ITEM_XSAVE,
	VMM_ITEM_XCRS,
	VMM_ITEM_DEBUGREGS,
	VMM_ITEM_LAPIC,
	VMM_ITEM_MSRS,
	VMM_ITEM_EVENTS, /* last */
};

#endif
