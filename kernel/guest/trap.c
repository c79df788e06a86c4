/*
 * Exceptions and the two interrupt vectors. start.S loads an IDT of 256 gates on every
 * vCPU; kg_trap_init fills gates 0-31, the APIC timer and the spurious vector from CPL3
 * (the IDT page is user-writable through the identity map, and CPL3 runs natively). A stub
 * pushes the vector and error code and calls kg_trap at CPL0, which reports the fault on
 * the console and to the agent and powers the VM off. Nothing here tries to recover: an
 * exception in kguest is a bug. (#GP from port I/O or hlt at CPL3 never gets here: start.S
 * emulates those.)
 */
#include "kguest.h"

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
};

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

#define GATE_INTR64  0x8e /* present, DPL0, 64-bit interrupt gate */
#define KG_IRQ_TIMER 0x20 /* IRQ_TIMER in start.S */
#define KG_SPURIOUS  0xff /* the APIC's spurious vector (SVR) */

extern struct idt_gate kg_idt[256];
extern const uint64_t kg_trap_stubs[32];
extern const char kg_irq_timer[], kg_irq_spurious[];

void kg_trap(struct trap_frame *f);

static void set_gate(int v, uint64_t a)
{
	kg_idt[v] = (struct idt_gate){
	    .off_lo = (uint16_t)a,
	    .sel = KGUEST_SEL_KCODE,
	    .type = GATE_INTR64,
	    .off_mid = (uint16_t)(a >> 16),
	    .off_hi = (uint32_t)(a >> 32),
	};
}

void kg_trap_init(void)
{
	for (int v = 0; v < 32; v++)
		set_gate(v, kg_trap_stubs[v]);
	set_gate(KG_IRQ_TIMER, (uintptr_t)kg_irq_timer);
	set_gate(KG_SPURIOUS, (uintptr_t)kg_irq_spurious);
}

void kg_trap(struct trap_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	kg_printf("kguest: exception %lu err=%lx rip=%lx cs=%lx rflags=%lx rsp=%lx cr2=%lx\n",
		  f->vector, f->error, f->rip, f->cs, f->rflags, f->rsp, cr2);
	kg_agent_printf("panic exception %lu rip=%lx cr2=%lx", f->vector, f->rip, cr2);
	kg_out8(KGUEST_PORT_AGENT + KGUEST_AGENT_POWER, KGUEST_POWER_OFF);
}
