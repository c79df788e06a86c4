/*
 * The QEMU side of the vMotion benchmark (tests/bench/vmotion_qemu.py): a multiboot (v1)
 * payload that QEMU's -kernel loader enters in 32-bit protected mode. It runs the memory
 * workloads of kguest (docs/kguest.md) so that QEMU's live migration can be measured on
 * the same guest behaviour as Keel's vMotion.
 *
 * Boot, at CPL0 (emulated on PVM hosts, about a thousand times slower than CPL3, so kept
 * short): mask both 8259 PICs, build an identity map of the first 4 GiB in 2 MiB pages
 * (present, writable, user-accessible), enter long mode, load the GDT, TSS and IDT and
 * iretq to CPL3 with RFLAGS = 0x3002 (IOPL 3, IF 0). Everything else runs at CPL3.
 *
 * Command line (multiboot cmdline, from -append; words separated by spaces or commas;
 * a word starting with '/' is the kernel path QEMU puts first and is skipped):
 *   fill=N       write every 8-byte word of the first N MiB of working memory once
 *                (word at address a = a ^ 0x6b67756573740000, as kguest's fill)
 *   dirty=R      dirty R MiB/s: one 8-byte store (an increasing generation number) at
 *                the start of each 4 KiB page in turn, cycling through the working set,
 *                paced with rdtsc; a backlog is capped at 50 ms of work (as kguest)
 *   ws=N         the working set of dirty=, in MiB
 *   tsc_khz=K    the TSC frequency (needed by dirty= and for the timings)
 *   report_ms=M  print "payload: dirtied <pages>" every M ms while dirtying (0 = never)
 *   idle         no workload (the default)
 * Working memory is [2 MiB, top of RAM); sizes beyond it are clamped to it.
 *
 * Console (COM1, lines ending in \n):
 *   payload: up mem=<MiB>M wm=<MiB>M tsc_khz=<k>
 *   payload: fill done <MiB> MiB in <ms> ms
 *   payload: ready                      the fill is done and the dirtier (if any) starts
 *   payload: dirtied <pages>            every report_ms while dirtying
 *   payload: error: <text>              bad command line (the payload then spins)
 *   payload: exception V err=E rip=R cr2=C   any CPU exception (the payload then halts)
 * After "ready" the payload never stops: it dirties or spins (pause) without touching
 * memory. hlt is CPL0-only, so an idle guest keeps one host CPU busy, as kguest's default
 * main loop does.
 *
 * Port I/O at CPL3: with IOPL 3 PVM usually emulates in/out itself; where it raises #GP
 * instead, the #GP handler executes the same `out %al,%dx` or `rep outsb` at CPL0 and
 * returns past it. Lines are written with one `rep outsb` each.
 *
 * Built by vmotion_qemu.py: `gcc -c` (a 64-bit object; the entry is .code32), `ld -N
 * -Ttext=0x100000` (one segment at 1 MiB, no headers loaded) and `objcopy -O elf32-i386`,
 * as QEMU's multiboot loader takes only ELF32 images. All symbols are below 2 MiB, so
 * 32-bit absolute addresses reach them from the 64-bit code.
 */

#define COM1		0x3f8
#define WM_BASE		0x200000	/* working memory starts at 2 MiB */
#define PTE_FLAGS	0x87		/* present, writable, user, 2 MiB page */
#define FILL_PATTERN	0x6b67756573740000
#define BACKLOG_MS	50
#define DIRTY_MAX	4096		/* pages per pass of the dirty loop */
#define RFLAGS_USER	0x3002		/* IOPL 3, IF 0, reserved bit 1 */
#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UDATA	0x1b
#define SEL_UCODE	0x23
#define SEL_TSS		0x28
#define LAPIC_EOI	0xfee000b0

	.text
	.code32
	.globl	_start
_start:
	jmp	entry
	.align	4
	/* multiboot header: must sit in the first 8 KiB of the file */
	.long	0x1BADB002
	.long	0x00000000
	.long	-(0x1BADB002 + 0x00000000)

entry:
	cli
	movl	%ebx, mbi_ptr
	movl	$kstack_top, %esp
	movb	$0xff, %al		/* mask every 8259 input */
	outb	%al, $0x21
	outb	%al, $0xa1

	/* PML4[0] -> PDPT; PDPT[0..3] -> the four page directories; PD entries map 2 MiB. */
	movl	$(pdpt + 7), pml4
	movl	$(pd + 7), pdpt
	movl	$(pd + 0x1007), pdpt + 8
	movl	$(pd + 0x2007), pdpt + 16
	movl	$(pd + 0x3007), pdpt + 24
	xorl	%ecx, %ecx
1:	movl	%ecx, %eax
	shll	$21, %eax
	orl	$PTE_FLAGS, %eax
	movl	%eax, pd(, %ecx, 8)
	movl	%ecx, %eax
	shrl	$11, %eax		/* bits 32+ of the address: entry >> 11 */
	movl	%eax, pd + 4(, %ecx, 8)
	incl	%ecx
	cmpl	$2048, %ecx
	jb	1b

	/* TSS descriptor base (the rest of the descriptor is static). */
	movl	$tss, %eax
	movw	%ax, gdt_tss + 2
	shrl	$16, %eax
	movb	%al, gdt_tss + 4
	movb	%ah, gdt_tss + 7
	movl	$kstack_top, tss + 4	/* rsp0 */

	/* IDT: vectors 0-31 to their stubs (16 bytes apart), the rest to irq_ignore. */
	xorl	%ecx, %ecx
2:	movl	$irq_ignore, %eax
	cmpl	$32, %ecx
	jae	3f
	movl	%ecx, %eax
	shll	$4, %eax
	addl	$trap_stubs, %eax
3:	movl	%ecx, %edx
	shll	$4, %edx
	movw	%ax, idt(%edx)
	movw	$SEL_KCODE, idt + 2(%edx)
	movw	$0x8e00, idt + 4(%edx)	/* present, DPL 0, 64-bit interrupt gate */
	shrl	$16, %eax
	movw	%ax, idt + 6(%edx)
	movl	$0, idt + 8(%edx)
	movl	$0, idt + 12(%edx)
	incl	%ecx
	cmpl	$256, %ecx
	jb	2b

	lgdt	gdt_desc
	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xc0000080, %ecx	/* EFER.LME */
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* PG, PE */
	movl	%eax, %cr0
	ljmp	$SEL_KCODE, $long_entry

	.code64
long_entry:
	movw	$SEL_KDATA, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	lidt	idt_desc
	movw	$SEL_TSS, %ax
	ltr	%ax
	pushq	$SEL_UDATA
	pushq	$ustack_top
	pushq	$RFLAGS_USER
	pushq	$SEL_UCODE
	pushq	$user_main
	iretq

/* ---- CPL0: exceptions and interrupts ---- */

/* Exception stubs, 16 bytes apart; vectors with a CPU error code skip the dummy push. */
.macro TRAP_STUB v
	.balign	16
	.if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
	.else
	pushq	$0
	.endif
	pushq	$\v
	jmp	trap_common
.endm

	.balign	16
trap_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	TRAP_STUB \v
.endr

/* Interrupts nobody asked for (the PICs are masked; this is only a safety net). */
	.balign	16
irq_ignore:
	pushq	%rax
	movl	$LAPIC_EOI, %eax
	movl	$0, (%rax)
	popq	%rax
	iretq

/*
 * Frame: vector, error code, then the CPU's rip, cs, rflags, rsp, ss. A #GP from CPL3 on
 * `out %al,%dx` or `rep outsb` is port I/O that PVM left to the guest: do it here.
 */
trap_common:
	cmpq	$13, (%rsp)
	jne	fatal
	testb	$3, 24(%rsp)
	jz	fatal
	pushq	%rax
	movq	24(%rsp), %rax		/* user rip */
	cmpb	$0xee, (%rax)		/* out %al, %dx */
	je	gp_out8
	cmpw	$0x6ef3, (%rax)		/* rep outsb */
	je	gp_outsb
	popq	%rax
	jmp	fatal
gp_out8:
	popq	%rax
	outb	%al, %dx
	addq	$1, 16(%rsp)
	addq	$16, %rsp
	iretq
gp_outsb:
	popq	%rax
	rep outsb
	addq	$2, 16(%rsp)
	addq	$16, %rsp
	iretq

fatal:
	movq	%rsp, %rbx
	movl	$line, %edi
	movl	$s_exc, %esi
	call	put_str
	movq	(%rbx), %rax
	call	put_dec
	movl	$s_err, %esi
	call	put_str
	movq	8(%rbx), %rax
	call	put_hex
	movl	$s_rip, %esi
	call	put_str
	movq	16(%rbx), %rax
	call	put_hex
	movl	$s_cr2, %esi
	call	put_str
	movq	%cr2, %rax
	call	put_hex
	call	put_line
4:	cli
	hlt
	jmp	4b

/* ---- CPL3 ---- */

user_main:
	call	parse_cmdline
	call	mem_init

	movl	$line, %edi
	movl	$s_up, %esi
	call	put_str
	movq	top, %rax
	shrq	$20, %rax
	call	put_dec
	movl	$s_wm, %esi
	call	put_str
	movq	wm_mib, %rax
	call	put_dec
	movl	$s_tsc, %esi
	call	put_str
	movq	tsc_khz, %rax
	call	put_dec
	call	put_line

	cmpq	$0, cmd_error
	jne	bad_cmdline
	cmpq	$0, dirty_mib_s
	je	5f
	cmpq	$0, tsc_khz
	je	no_tsc
	cmpq	$0, ws_pages
	je	no_ws
5:	cmpq	$0, fill_mib
	je	6f
	call	fill_run
6:	movl	$line, %edi
	movl	$s_ready, %esi
	call	put_str
	call	put_line
	cmpq	$0, dirty_mib_s
	je	idle_loop
	jmp	dirty_loop

idle_loop:
	pause
	jmp	idle_loop

no_tsc:
	movq	$s_need_tsc, cmd_error
	jmp	bad_cmdline
no_ws:
	movq	$s_need_ws, cmd_error
bad_cmdline:
	movl	$line, %edi
	movl	$s_error, %esi
	call	put_str
	movq	cmd_error, %rsi
	call	put_str
	movq	cmd_bad_at, %rsi
	testq	%rsi, %rsi
	jz	45f
	movl	$s_at, %esi
	call	put_str
	movq	cmd_bad_at, %rsi
	movl	$(line + 400), %ecx	/* the rest of the command line, truncated */
46:	movb	(%rsi), %al
	testb	%al, %al
	jz	47f
	cmpq	%rcx, %rdi
	jae	47f
	movb	%al, (%rdi)
	incq	%rsi
	incq	%rdi
	jmp	46b
47:	movb	$'\'', (%rdi)
	incq	%rdi
45:	call	put_line
	jmp	idle_loop

/* Top of RAM from the multiboot info (mem_upper, KiB above 1 MiB), and the clamps. */
mem_init:
	movl	mbi_ptr, %esi
	testl	$1, (%rsi)
	jz	7f
	movl	8(%rsi), %eax
	addq	$1024, %rax
	shlq	$10, %rax
	movl	$0xc0000000, %ecx	/* the identity map ends at 4 GiB; stay below the hole */
	cmpq	%rcx, %rax
	jbe	8f
	movq	%rcx, %rax
8:	movq	%rax, top
	subq	$WM_BASE, %rax
	jbe	7f
	shrq	$20, %rax
	movq	%rax, wm_mib
	movq	fill_mib, %rcx
	cmpq	%rax, %rcx
	jbe	9f
	movq	%rax, fill_mib
9:	movq	ws_mib, %rcx
	cmpq	%rax, %rcx
	jbe	10f
	movq	%rax, ws_mib
	movq	%rax, %rcx
10:	shlq	$8, %rcx		/* MiB -> 4 KiB pages */
	movq	%rcx, ws_pages
	ret
7:	movq	$s_no_mem, cmd_error
	movq	$0, fill_mib
	movq	$0, ws_pages
	ret

/* Fill: word at a = a ^ FILL_PATTERN over the first fill_mib MiB of working memory. */
fill_run:
	rdtsc
	shlq	$32, %rdx
	orq	%rax, %rdx
	movq	%rdx, %r12
	movq	$WM_BASE, %rdi
	movq	fill_mib, %rcx
	shlq	$20, %rcx
	addq	%rdi, %rcx
	movabsq	$FILL_PATTERN, %rdx
11:	movq	%rdi, %rax
	xorq	%rdx, %rax
	movq	%rax, (%rdi)
	addq	$8, %rdi
	cmpq	%rcx, %rdi
	jb	11b
	rdtsc
	shlq	$32, %rdx
	orq	%rax, %rdx
	subq	%r12, %rdx
	movq	%rdx, %r12
	movl	$line, %edi
	movl	$s_fill, %esi
	call	put_str
	movq	fill_mib, %rax
	call	put_dec
	movl	$s_fill_in, %esi
	call	put_str
	movq	%r12, %rax
	call	tsc_to_ms
	call	put_dec
	movl	$s_ms, %esi
	call	put_str
	call	put_line
	ret

/* rax = TSC ticks -> rax = ms (0 without tsc_khz). Clobbers rcx, rdx. */
tsc_to_ms:
	movq	tsc_khz, %rcx
	testq	%rcx, %rcx
	jz	12f
	xorl	%edx, %edx
	divq	%rcx
	ret
12:	xorl	%eax, %eax
	ret

/*
 * The dirtier, kguest's algorithm (kernel/guest/mem.c): acc grows by elapsed ticks x rate
 * (pages/s); a page is due per hz of acc; elapsed is capped at 100 ms and acc at BACKLOG_MS
 * of work; at most DIRTY_MAX pages per pass.
 * Registers: rbx hz, rbp next report, r12 last tsc, r13 acc, r14 cursor, r15 generation
 * (= pages dirtied so far).
 */
dirty_loop:
	movq	tsc_khz, %rbx
	imulq	$1000, %rbx
	movq	dirty_mib_s, %rax
	shlq	$8, %rax		/* MiB/s -> pages/s */
	movq	%rax, rate
	movq	tsc_khz, %rcx
	imulq	$BACKLOG_MS, %rcx	/* ticks in BACKLOG_MS */
	mulq	%rcx
	movq	%rax, acc_cap
	movq	tsc_khz, %rax
	imulq	$100, %rax		/* ticks in 100 ms */
	movq	%rax, elapsed_cap
	movq	report_ms, %rax
	mulq	tsc_khz
	movq	%rax, report_ticks
	rdtsc
	shlq	$32, %rdx
	orq	%rax, %rdx
	movq	%rdx, %r12
	movq	%rdx, %rbp
	addq	report_ticks, %rbp
	xorl	%r13d, %r13d
	xorl	%r14d, %r14d
	xorl	%r15d, %r15d
13:	rdtsc
	shlq	$32, %rdx
	orq	%rax, %rdx
	movq	%rdx, %rsi		/* now */
	movq	%rdx, %rax
	subq	%r12, %rax		/* elapsed */
	movq	%rsi, %r12
	cmpq	elapsed_cap, %rax	/* a pause (or a migration) counts as 100 ms at most */
	jbe	14f
	movq	elapsed_cap, %rax
14:	mulq	rate			/* elapsed * rate */
	addq	%rax, %r13
	movq	acc_cap, %rax
	cmpq	%rax, %r13
	jbe	15f
	movq	%rax, %r13
15:	movq	%r13, %rax
	xorl	%edx, %edx
	divq	%rbx			/* rax = pages due */
	cmpq	$DIRTY_MAX, %rax
	jbe	16f
	movq	$DIRTY_MAX, %rax
16:	movq	%rax, %rcx
	imulq	%rbx, %rax
	subq	%rax, %r13
	movq	ws_pages, %rsi
	movq	$WM_BASE, %rdi
	testq	%rcx, %rcx
	jz	18f
17:	incq	%r15
	movq	%r14, %rax
	shlq	$12, %rax
	movq	%r15, (%rdi, %rax)
	incq	%r14
	cmpq	%rsi, %r14
	jb	19f
	xorl	%r14d, %r14d
19:	decq	%rcx
	jnz	17b
18:	cmpq	$0, report_ticks
	je	20f
	cmpq	%rbp, %r12
	jb	20f
	addq	report_ticks, %rbp
	cmpq	%rbp, %r12		/* fell behind (paused, migrated): restart from now */
	jb	21f
	movq	%r12, %rbp
	addq	report_ticks, %rbp
21:	movl	$line, %edi
	movl	$s_dirtied, %esi
	call	put_str
	movq	%r15, %rax
	call	put_dec
	call	put_line
20:	pause
	jmp	13b

/* ---- Strings, numbers, console (callable at CPL0 and CPL3) ---- */

/* Appends the NUL-terminated string at rsi at rdi; rdi advances. Clobbers rax, rsi. */
put_str:
	movb	(%rsi), %al
	testb	%al, %al
	jz	22f
	movb	%al, (%rdi)
	incq	%rsi
	incq	%rdi
	jmp	put_str
22:	ret

/* Appends rax in decimal at rdi. Clobbers rax, rcx, rdx, rsi. */
put_dec:
	movq	%rsp, %rsi
	subq	$32, %rsp
	movl	$10, %ecx
23:	xorl	%edx, %edx
	divq	%rcx
	addb	$'0', %dl
	decq	%rsi
	movb	%dl, (%rsi)
	testq	%rax, %rax
	jnz	23b
24:	movb	(%rsi), %al
	movb	%al, (%rdi)
	incq	%rdi
	incq	%rsi
	leaq	32(%rsp), %rax
	cmpq	%rax, %rsi
	jb	24b
	addq	$32, %rsp
	ret

/* Appends rax as 16 hex digits at rdi. Clobbers rax, rcx, rdx. */
put_hex:
	movl	$16, %ecx
25:	rolq	$4, %rax
	movl	%eax, %edx
	andl	$15, %edx
	cmpb	$10, %dl
	jb	26f
	addb	$('a' - '0' - 10), %dl
26:	addb	$'0', %dl
	movb	%dl, (%rdi)
	incq	%rdi
	decl	%ecx
	jnz	25b
	ret

/* Ends the line at rdi with \n and writes line..rdi to COM1 with one rep outsb. */
put_line:
	movb	$'\n', (%rdi)
	incq	%rdi
	movq	%rdi, %rcx
	movl	$line, %esi
	subq	%rsi, %rcx
	movw	$COM1, %dx
	rep outsb
	ret

/* ---- Command line ---- */

/* Returns in rax the value of the decimal number at rsi (rsi advances), cmd_error on none. */
parse_num:
	xorl	%eax, %eax
	xorl	%ecx, %ecx
27:	movzbl	(%rsi), %edx
	subl	$'0', %edx
	cmpl	$9, %edx
	ja	28f
	imulq	$10, %rax
	addq	%rdx, %rax
	incq	%rsi
	incl	%ecx
	jmp	27b
28:	testl	%ecx, %ecx
	jnz	29f
	movq	$s_bad_num, cmd_error
29:	ret

/* If the word at rsi starts with the NUL-terminated key at rdi, ZF=1 and rsi is past it. */
match_key:
	pushq	%rsi
30:	movb	(%rdi), %al
	testb	%al, %al
	jz	31f
	cmpb	%al, (%rsi)
	jne	32f
	incq	%rsi
	incq	%rdi
	jmp	30b
31:	addq	$8, %rsp		/* matched: keep the advanced rsi */
	xorl	%eax, %eax		/* ZF=1 */
	ret
32:	popq	%rsi
	testq	%rsp, %rsp		/* ZF=0 */
	ret

parse_cmdline:
	movl	mbi_ptr, %esi
	testl	$4, (%rsi)
	jz	40f
	movl	16(%rsi), %esi
33:	movb	(%rsi), %al		/* skip separators */
	testb	%al, %al
	jz	40f
	cmpb	$' ', %al
	je	34f
	cmpb	$',', %al
	je	34f
	cmpb	$'/', %al		/* the kernel path */
	je	35f
	movq	%rsi, %rbx		/* start of the word, for the error message */
	movl	$k_fill, %edi
	call	match_key
	jnz	36f
	call	parse_num
	movq	%rax, fill_mib
	jmp	38f
36:	movl	$k_dirty, %edi
	call	match_key
	jnz	37f
	call	parse_num
	movq	%rax, dirty_mib_s
	jmp	38f
37:	movl	$k_ws, %edi
	call	match_key
	jnz	41f
	call	parse_num
	movq	%rax, ws_mib
	jmp	38f
41:	movl	$k_tsc, %edi
	call	match_key
	jnz	42f
	call	parse_num
	movq	%rax, tsc_khz
	jmp	38f
42:	movl	$k_report, %edi
	call	match_key
	jnz	43f
	call	parse_num
	movq	%rax, report_ms
	jmp	38f
43:	movl	$k_idle, %edi
	call	match_key
	jz	38f
	jmp	39f
38:	cmpq	$0, cmd_error		/* parse_num found no number */
	jne	44f
	movb	(%rsi), %al		/* a value must end at a separator */
	testb	%al, %al
	jz	40f
	cmpb	$' ', %al
	je	33b
	cmpb	$',', %al
	je	33b
39:	movq	$s_bad_word, cmd_error
44:	movq	%rbx, cmd_bad_at
	ret
34:	incq	%rsi
	jmp	33b
35:	incq	%rsi			/* skip to the end of the word */
	movb	(%rsi), %al
	testb	%al, %al
	jz	40f
	cmpb	$' ', %al
	jne	35b
	jmp	33b
40:	ret

/* ---- Data ---- */

	.section .rodata
s_up:		.asciz	"payload: up mem="
s_wm:		.asciz	"M wm="
s_tsc:		.asciz	"M tsc_khz="
s_fill:		.asciz	"payload: fill done "
s_fill_in:	.asciz	" MiB in "
s_ms:		.asciz	" ms"
s_ready:	.asciz	"payload: ready"
s_dirtied:	.asciz	"payload: dirtied "
s_error:	.asciz	"payload: error: "
s_need_tsc:	.asciz	"dirty= needs tsc_khz="
s_need_ws:	.asciz	"dirty= needs ws= (MiB, at least 1)"
s_no_mem:	.asciz	"no usable memory size in the multiboot info"
s_bad_num:	.asciz	"a key needs a decimal number"
s_bad_word:	.asciz	"unknown word (keys: fill= dirty= ws= tsc_khz= report_ms= idle)"
s_at:		.asciz	" at '"
s_exc:		.asciz	"payload: exception "
s_err:		.asciz	" err="
s_rip:		.asciz	" rip="
s_cr2:		.asciz	" cr2="
k_fill:		.asciz	"fill="
k_dirty:	.asciz	"dirty="
k_ws:		.asciz	"ws="
k_tsc:		.asciz	"tsc_khz="
k_report:	.asciz	"report_ms="
k_idle:		.asciz	"idle"

/* Everything below is in .data (zero in the file) so no loader has to clear a .bss. */
	.data
	.balign	8
gdt:
	.quad	0
	.quad	0x00209a0000000000	/* 0x08 kernel code, 64-bit */
	.quad	0x00cf92000000ffff	/* 0x10 kernel data */
	.quad	0x00cff2000000ffff	/* 0x18 user data */
	.quad	0x0020fa0000000000	/* 0x20 user code, 64-bit */
gdt_tss:
	.quad	0x0000890000000067	/* 0x28 TSS, base filled at boot */
	.quad	0
gdt_end:
	.balign	8
	.word	0, 0, 0
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt
	.long	0
	.balign	8
	.word	0, 0, 0
idt_desc:
	.word	256 * 16 - 1
	.long	idt
	.long	0

	.balign	8
mbi_ptr:	.quad	0
top:		.quad	0
wm_mib:		.quad	0
fill_mib:	.quad	0
dirty_mib_s:	.quad	0
ws_mib:		.quad	0
ws_pages:	.quad	0
tsc_khz:	.quad	0
report_ms:	.quad	100
rate:		.quad	0
acc_cap:	.quad	0
report_ticks:	.quad	0
elapsed_cap:	.quad	0
cmd_error:	.quad	0
cmd_bad_at:	.quad	0

	.balign	16
tss:	.fill	104, 1, 0
line:	.fill	512, 1, 0

	.balign	4096
pml4:	.fill	4096, 1, 0
pdpt:	.fill	4096, 1, 0
pd:	.fill	4 * 4096, 1, 0
idt:	.fill	256 * 16, 1, 0
	.balign	16
kstack:	.fill	16384, 1, 0
kstack_top:
ustack:	.fill	16384, 1, 0
ustack_top:

	.section .note.GNU-stack, "", @progbits
