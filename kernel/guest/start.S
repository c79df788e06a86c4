/*
 * kguest entry: the few instructions that run at CPL0, and the exception stubs.
 *
 * The VMM enters _start on every vCPU in 64-bit mode at CPL0 (abi.h). CPL0 code is emulated
 * on PVM hosts, about a thousand times slower than CPL3, so the boot path here is short:
 * load the IDT (its gates are filled later from CPL3, trap.c), and on vCPU 0 point TSS.rsp0
 * at the boot stack and iretq to kg_main at CPL3 with IOPL=3 and interrupts off. Other vCPUs
 * halt with interrupts off, which costs the host nothing.
 *
 * Port I/O from CPL3: PVM runs guest user mode on the hardware with IOPL=0 and IF=1 (the
 * guest's RFLAGS are virtual), so in/out at CPL3 always leave the CPU. With the guest's
 * IOPL=3, PVM normally emulates the instruction itself (about 50 µs each under vmx); where it
 * raises #GP instead, the #GP stub below emulates it: for a fault from CPL3 on in/out
 * (8/32-bit, port in DX) or rep insb/outsb it executes the same instruction at CPL0 with the
 * user's registers, steps over it and returns (a similar cost). Either way kguest moves
 * strings with rep insb/outsb, one emulation for a whole line. As the hardware runs user
 * mode with IF=1, the BSP masks both 8259 PICs before leaving CPL0; the I/O APIC is masked
 * from reset and the local APIC timer is only armed while kguest sleeps (hlt at CPL3,
 * emulated below).
 *
 * Any other exception enters a stub (vectors 0-31) that pushes the vector and an error
 * code and calls kg_trap (trap.c) at CPL0, which reports and powers the VM off.
 */
#include "abi.h"

#define USER_STACK_SIZE 65536
#define LAPIC_BASE      0xfee00000
#define IRQ_TIMER       0x20 /* must match KG_IRQ_TIMER in trap.c */
#define RFLAGS_USER     0x3002 /* IOPL=3, IF=0, reserved bit 1 */

	.section .text.entry, "ax"
	.code64
	.globl	_start
	.type	_start, @function
_start:
	lidt	idt_desc(%rip)
	testq	%rsi, %rsi
	jnz	ap_park

	movb	$0xff, %al		/* mask every 8259 input */
	outb	%al, $0x21
	outb	%al, $0xa1
	movq	$KGUEST_BOOT_STACK_TOP, %rax
	movq	%rax, KGUEST_TSS_GPA + 4
	pushq	$KGUEST_SEL_UDATA
	pushq	$user_stack_top
	pushq	$RFLAGS_USER
	pushq	$KGUEST_SEL_UCODE
	pushq	$user_entry
	iretq			/* RDI (boot info) and RSI (vCPU) pass through */

ap_park:
	cli
1:	hlt
	jmp	1b

/* CPL3 from here: RSP is 16-byte aligned, so the call leaves kg_main ABI-aligned. */
user_entry:
	xorl	%ebp, %ebp
	call	kg_main
2:	pause
	jmp	2b
	.size	_start, . - _start

/* Exception stubs, 16 bytes apart; vectors with a CPU error code skip the dummy push. */
	.text
.macro TRAP_STUB v
	.balign	16
trap_\v:
	.if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
	.else
	pushq	$0
	.endif
	pushq	$\v
	jmp	trap_common
.endm

.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	TRAP_STUB \v
.endr

/*
 * #GP: emulate port I/O from CPL3 (see the top of this file). Stack on entry: error code,
 * rip, cs, rflags, rsp, ss; r8 is saved while the opcode at the user's rip is decoded.
 */
	.balign	16
trap_13:
	testb	$3, 16(%rsp)
	jz	gp_fatal
	pushq	%r8
	movq	16(%rsp), %r8
	cmpw	$0x6ef3, (%r8)		/* rep outsb */
	je	gp_outsb
	cmpb	$0xec, (%r8)		/* in %dx, %al */
	je	gp_in8
	cmpb	$0xef, (%r8)		/* out %eax, %dx */
	je	gp_out32
	cmpb	$0xed, (%r8)		/* in %dx, %eax */
	je	gp_in32
	cmpb	$0xee, (%r8)		/* out %al, %dx */
	je	gp_out8
	cmpw	$0x6cf3, (%r8)		/* rep insb */
	je	gp_insb
	cmpb	$0xf4, (%r8)		/* hlt: sleep, see below */
	je	gp_hlt
	popq	%r8
gp_fatal:
	pushq	$13
	jmp	trap_common
gp_in8:
	inb	%dx, %al
	jmp	gp_step1
gp_out32:
	outl	%eax, %dx
	jmp	gp_step1
gp_in32:
	inl	%dx, %eax
	jmp	gp_step1
gp_out8:
	outb	%al, %dx
gp_step1:
	addq	$1, 16(%rsp)
	popq	%r8
	addq	$8, %rsp
	iretq
gp_insb:
	rep insb
	jmp	gp_step2
gp_outsb:
	rep outsb
gp_step2:
	addq	$2, 16(%rsp)
	popq	%r8
	addq	$8, %rsp
	iretq

/*
 * hlt from CPL3 (kg_sleep_ns): sleep for EAX nanoseconds on the local APIC timer (divide by
 * 1; KVM's APIC timer counts nanoseconds). The timer is periodic while it is armed, so a
 * tick taken between sti and hlt (PVM does not keep the sti shadow) only delays the wake
 * by one period; it is masked again before returning. The APIC is enabled on first use.
 */
gp_hlt:
	pushq	%r9
	movl	$LAPIC_BASE, %r9d
	cmpb	$0, apic_on(%rip)
	jne	1f
	movl	$0x1ff, 0xf0(%r9)	/* SVR: enabled, spurious vector 0xff */
	movl	$0xb, 0x3e0(%r9)	/* timer divide by 1 */
	movb	$1, apic_on(%rip)
1:	movl	$(0x20000 | IRQ_TIMER), 0x320(%r9)	/* LVT timer: periodic */
	movl	%eax, 0x380(%r9)	/* initial count */
	sti
	hlt
	cli
	movl	$(0x10000 | IRQ_TIMER), 0x320(%r9)	/* masked */
	popq	%r9
	jmp	gp_step1

/* The APIC timer interrupt only ends a sleep; the spurious vector needs no EOI. */
	.balign	16
	.globl	kg_irq_timer
kg_irq_timer:
	pushq	%rax
	movl	$(LAPIC_BASE + 0xb0), %eax
	movl	$0, (%rax)		/* EOI */
	popq	%rax
	iretq

	.balign	16
	.globl	kg_irq_spurious
kg_irq_spurious:
	iretq

/* Frame for kg_trap: r15 .. rax, vector, error, then the CPU's rip, cs, rflags, rsp, ss. */
trap_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	kg_trap
3:	cli
	hlt
	jmp	3b

	.section .rodata
	.balign	8
	.globl	kg_trap_stubs
kg_trap_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad	trap_\v
.endr

	.data
	.balign	16
	.word	0, 0, 0
idt_desc:
	.word	256 * 16 - 1
	.quad	kg_idt

apic_on:
	.byte	0

	.bss
	.balign	4096
	.globl	kg_idt
kg_idt:
	.skip	256 * 16
	.balign	16
user_stack:
	.skip	USER_STACK_SIZE
user_stack_top:

	.section .note.GNU-stack, "", @progbits
