/*
 * Every vCPU adds one to a shared counter with a locked add, from CPL3; vCPU 0 waits until
 * the count equals the vCPU count in the boot info, reports it and exits with code 0.
 */
#include "kernel/guest/abi.h"

#define COUNT_GPA 0x8000
#define NR_VCPUS_OFF 48 /* struct kguest_boot_info.nr_vcpus */

	.code64
	.text
	.globl _start
_start:
	movq %rsi, %r14            /* vCPU index */
	movl NR_VCPUS_OFF(%rdi), %r15d
	movq %rsp, %rbx
	pushq $KGUEST_SEL_UDATA
	pushq %rbx
	pushq $0x2
	pushq $KGUEST_SEL_UCODE
	leaq user(%rip), %rax
	pushq %rax
	iretq
user:
	lock incl COUNT_GPA
	testq %r14, %r14
	jnz 2f
1:	pause
	movl COUNT_GPA, %eax
	cmpl %r15d, %eax
	jne 1b
	outl %eax, $KGUEST_PORT_TEST_REPORT
	movb $0, %al
	outb %al, $KGUEST_PORT_TEST_EXIT
2:	pause
	jmp 2b
