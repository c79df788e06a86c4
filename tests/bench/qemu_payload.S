/*
 * The QEMU side of the power-on benchmark: a multiboot (v1) payload that QEMU's -kernel
 * loader enters in 32-bit protected mode; it prints one console line on COM1, as kguest
 * does first thing, then halts. Built with `as --32` and `ld -m elf_i386`.
 */
	.text
	.code32
	.globl _start
_start:
	jmp entry
	.align 4
	/* multiboot header: must sit in the first 8 KiB of the file */
	.long 0x1BADB002
	.long 0x00000000
	.long -(0x1BADB002 + 0x00000000)
entry:
	movw $0x3f8, %dx
	leal msg, %esi
1:	movb (%esi), %al
	testb %al, %al
	jz 2f
	outb %al, %dx
	incl %esi
	jmp 1b
2:	cli
	hlt
	jmp 2b
msg:
	.asciz "kguest: up (qemu payload)\n"
