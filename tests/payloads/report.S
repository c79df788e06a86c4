/*
 * Reports 1, 2, 3, its vCPU index, and the boot info magic's low half on the test port,
 * then drops to CPL3 with IOPL=3 and reports 0xC93 from there, then exits with code 7.
 */
#include "kernel/guest/abi.h"

	.code64
	.text
	.globl _start
_start:
	movl $1, %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	movl $2, %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	movl $3, %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	movl %esi, %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	movl (%rdi), %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	/* iretq to CPL3: SS, RSP, RFLAGS (IOPL=3), CS, RIP */
	pushq $KGUEST_SEL_UDATA
	pushq $0x9000
	pushq $0x3002
	pushq $KGUEST_SEL_UCODE
	leaq user(%rip), %rax
	pushq %rax
	iretq
user:
	movl $0xc93, %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	movb $7, %al
	outb %al, $KGUEST_PORT_TEST_EXIT
1:	jmp 1b
