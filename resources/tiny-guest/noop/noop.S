/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The do-nothing guest of the start-up figures (benches/bench): an ELF whose Xen PVH entry
 * (XEN_ELFNOTE_PHYS32_ENTRY, 32-bit protected mode, paging off) writes "noop\n" to COM1
 * and stops the VM at once, the way each VMM offers:
 *   - the i8042 reset command (0xfe to port 0x64): microvm, Firecracker;
 *   - isa-debug-exit at port 0xf4: QEMU (-device isa-debug-exit,iobase=0xf4,iosize=4).
 * It needs no MP table, ACPI table, boot_params or memory map, so it boots the same under
 * any firmware or VMM that loads a PVH ELF. Each port write is one exit; nothing else is.
 */
	.code32
	.section .text, "ax"
	.globl	noop_start
noop_start:
	cli
	movw	$0x3f8, %dx
	movb	$'n', %al
	outb	%al, %dx
	movb	$'o', %al
	outb	%al, %dx
	outb	%al, %dx
	movb	$'p', %al
	outb	%al, %dx
	movb	$'\n', %al
	outb	%al, %dx
	movb	$0xfe, %al
	outb	%al, $0x64
	xorb	%al, %al
	outb	%al, $0xf4
1:	hlt
	jmp	1b

	.pushsection .note.Xen, "a", @note
	.balign	4
	.long	4			/* namesz: "Xen\0" */
	.long	4			/* descsz */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.long	noop_start
	.popsection

	.section .note.GNU-stack, "", @progbits
