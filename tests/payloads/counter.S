/*
 * Counts forever at CPL3: r12 holds the count and every iteration mirrors it to
 * COUNTER_GPA, with r13 = r12 * 3 mirrored beside it. A restored VM whose registers were
 * not carried over breaks the invariant mem[1] == 3 * mem[0] or restarts from zero.
 * Reports 0xC0C0 once it is at CPL3.
 */
#include "kernel/guest/abi.h"

#define COUNTER_GPA 0x8000

	.code64
	.text
	.globl _start
_start:
	pushq $KGUEST_SEL_UDATA
	pushq $0x9000
	pushq $0x2
	pushq $KGUEST_SEL_UCODE
	leaq user(%rip), %rax
	pushq %rax
	iretq
user:
	movl $0xc0c0, %eax
	outl %eax, $KGUEST_PORT_TEST_REPORT
	xorq %r12, %r12
	xorq %r13, %r13
1:	incq %r12
	addq $3, %r13
	movq %r12, COUNTER_GPA
	movq %r13, COUNTER_GPA + 8
	jmp 1b
