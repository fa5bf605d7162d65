/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry points of the tiny guest.
 *
 * The protected-mode part of the image starts at KERNEL_LOAD_ADDR (1 MiB)
 * and is laid out like Linux's:
 *   +0x000  startup_32   32-bit entry (code32_start); unsupported, says so
 *   +0x100  kernel_info  boot protocol 2.15 "LToP" structure
 *   +0x200  startup_64   64-bit entry used by 64-bit boot loaders/VMMs
 *
 * startup_64 runs with RSI = &boot_params, interrupts off, paging on with
 * an identity map and flat segments; there is no stack, so set one up.
 *
 * pvh_start32 (between kernel_info and startup_64) is the Xen PVH entry,
 * announced by the XEN_ELFNOTE_PHYS32_ENTRY note below: 32-bit protected
 * mode, paging off, flat segments, EBX = &struct hvm_start_info. It enters
 * long mode with the static 1 GiB identity map in .data and joins the
 * 64-bit path, where pvh.c turns hvm_start_info into a boot_params view.
 */
#include "layout.h"

#define X86_CR0_PE	(1 << 0)
#define X86_CR0_PG	(1 << 31)
#define X86_CR4_PAE	(1 << 5)
#define MSR_EFER	0xc0000080
#define EFER_LME	(1 << 8)

	.section .head.text, "ax"
	.code32
	.globl startup_32
startup_32:
	/* Write a message to COM1 and stop: we need the 64-bit entry. */
	cli
	cld
	movl	$msg32, %esi
	movw	$0x3f8, %dx
1:	lodsb
	testb	%al, %al
	jz	2f
	outb	%al, %dx
	jmp	1b
2:	hlt
	jmp	2b

	.pushsection .rodata
msg32:
	.asciz	"tiny: FAIL: entered at the 32-bit entry, this image needs a 64-bit boot loader\n"
	.popsection

	/* struct kernel_info (Documentation/arch/x86/boot.rst, 2.15+) */
	.org	KERNEL_INFO_OFFSET
	.globl	kernel_info
kernel_info:
	.ascii	"LToP"			/* header */
	.long	kernel_info_end - kernel_info	/* size */
	.long	kernel_info_end - kernel_info	/* size_total */
	.long	0			/* setup_type_max: we read no setup_data */
kernel_info_end:

	/*
	 * Xen PVH entry (32-bit code before STARTUP_64_OFFSET, so that the
	 * forbidden-instruction check, which reads everything from
	 * startup_64 on as 64-bit code, does not misdecode it).
	 */
	.code32
	.globl	pvh_start32
pvh_start32:
	cli
	cld
	movl	%ebx, %esi		/* hvm_start_info, kept in esi */
	lgdt	gdt_desc		/* limit + low 32 bits of the base */
	movl	$GDT_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr4, %eax
	orl	$X86_CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pvh_pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(X86_CR0_PG | X86_CR0_PE), %eax
	movl	%eax, %cr0		/* long mode is active now */
	ljmpl	$GDT_CODE64, $pvh_start64

	.org	STARTUP_64_OFFSET
	.code64
	.globl	startup_64
startup_64:
	cli
	cld
	leaq	bsp_stack_top(%rip), %rsp
	movq	%rsi, %r12		/* boot_params, kept across bss clearing */
	xorl	%r13d, %r13d		/* not a PVH boot */
startup_common:

	/* Zero .bss (page tables, counters); the stacks need no clearing. */
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq

	/*
	 * Our own GDT with the same selectors as the boot loader's (CS 0x10,
	 * DS 0x18), so the loader's GDT memory may be reused. CS already
	 * holds GDT_CODE64 and its cached descriptor stays valid, so only the
	 * data segments are reloaded.
	 */
	lgdt	gdt_desc(%rip)
	movl	$GDT_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	movq	%r12, %rdi
	testl	%r13d, %r13d
	jz	1f
	call	pvh_boot_params		/* hvm_start_info -> boot_params view */
	movq	%rax, %rdi
1:	call	tiny_main
	jmp	halt_forever

/* 64-bit continuation of pvh_start32: RSI = hvm_start_info (32-bit). */
pvh_start64:
	leaq	bsp_stack_top(%rip), %rsp
	movl	%esi, %r12d		/* zero-extends */
	movl	$1, %r13d		/* a PVH boot */
	jmp	startup_common

/*
 * 64-bit entry of the application processors, jumped to by the trampoline
 * with CR3 = the BSP's page tables and our GDT loaded. Picks a per-CPU
 * stack with an atomic counter and calls ap_main(cpu index).
 */
	.text
	.globl	ap_start64
ap_start64:
	movl	$GDT_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$1, %eax
	lock xaddl %eax, ap_next_index(%rip)	/* eax = our index, 1.. */
	cmpl	$MAX_CPUS, %eax
	jae	halt_forever			/* no stack for us */
	movl	%eax, %edi
	shlq	$12, %rax			/* * AP_STACK_SIZE */
	leaq	ap_stacks(%rip), %rsp
	addq	%rax, %rsp			/* top of slot index-1 */
	call	ap_main
	/* fall through */

	.globl	halt_forever
halt_forever:
	cli
1:	hlt
	jmp	1b

#if AP_STACK_SIZE != (1 << 12)
#error "ap_start64 assumes 4 KiB AP stacks"
#endif

/*
 * Real-mode trampoline for the APs. It is assembled here (linked into the
 * kernel image) and copied by smp.c to TRAMPOLINE_ADDR before the SIPIs.
 * It runs at that address with CS = TRAMPOLINE_ADDR >> 4 and IP = 0, so
 * every reference to its own labels is written relative to
 * trampoline_start: "x - trampoline_start" as a segment offset and
 * TRAMP(x) as a linear address. References to the kernel (gdt,
 * ap_start64) are ordinary absolute addresses.
 */
#define TRAMP(x)	(TRAMPOLINE_ADDR + (x) - trampoline_start)

	.section .rodata
	.balign	16
	.globl	trampoline_start
trampoline_start:
	.code16
	cli
	cld
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	tramp_gdt_desc - trampoline_start
	movl	%cr0, %eax
	orl	$X86_CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$GDT_CODE32, $TRAMP(tramp_32)

	.code32
tramp_32:
	movl	$GDT_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr4, %eax
	orl	$X86_CR4_PAE, %eax
	movl	%eax, %cr4
	movl	TRAMP(trampoline_cr3), %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$X86_CR0_PG, %eax
	movl	%eax, %cr0		/* long mode is active now */
	ljmpl	$GDT_CODE64, $TRAMP(tramp_64)

	.code64
tramp_64:
	movabsq	$ap_start64, %rax
	jmp	*%rax

	.balign	4
tramp_gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt			/* the kernel's GDT, below 4 GiB */
	.globl	trampoline_cr3
trampoline_cr3:
	.long	0			/* filled in by smp.c */
	.globl	trampoline_end
trampoline_end:

/* The GDT, shared by the BSP and the APs (the CPU writes accessed bits). */
	.data
	.balign	16
gdt:
	.quad	0			/* null */
	.quad	0x00cf9b000000ffff	/* 0x08: 32-bit code, flat */
	.quad	0x00af9b000000ffff	/* 0x10: 64-bit code */
	.quad	0x00cf93000000ffff	/* 0x18: data, flat */
gdt_end:
gdt_desc:
	.word	gdt_end - gdt - 1
	.quad	gdt

	.balign	4
ap_next_index:
	.long	1			/* the BSP is cpu 0 */

/*
 * Identity map of the first 1 GiB (2 MiB pages) for the PVH entry, which
 * starts with paging off. In .data, not .bss: startup_common clears .bss
 * while these tables are live. paging_init() replaces them.
 */
	.balign	4096
pvh_pml4:
	.quad	pvh_pdpt + 0x3		/* present, writable */
	.fill	511, 8, 0
pvh_pdpt:
	.quad	pvh_pd + 0x3
	.fill	511, 8, 0
pvh_pd:
	.set	pvh_i, 0
	.rept	512
	.quad	(pvh_i << 21) | 0x83	/* present, writable, 2 MiB */
	.set	pvh_i, pvh_i + 1
	.endr

/*
 * XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point. The descriptor is
 * 8 bytes like Linux's (QEMU reads a 64-bit value, linux-loader the low
 * 32 bits); 4-byte alignment keeps the name padding what readers expect.
 */
	.pushsection .note.Xen, "a", @note
	.balign	4
	.long	4			/* namesz: "Xen\0" */
	.long	8			/* descsz */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.quad	pvh_start32
	.popsection

/* Stacks are not zeroed, so they live in a NOLOAD section after .bss. */
	.section .stack, "aw", @nobits
	.balign	4096
	.globl	ap_stacks
ap_stacks:
	.skip	AP_STACK_SIZE * (MAX_CPUS - 1)
	.skip	BSP_STACK_SIZE
bsp_stack_top:

	.section .note.GNU-stack, "", @progbits
