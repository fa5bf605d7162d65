/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory layout and boot-protocol constants shared by the guest (C and
 * assembly), the linker script users and the host tool mkbzimage.c.
 * Only plain #defines here so that every one of them can include it.
 */
#ifndef TINY_LAYOUT_H
#define TINY_LAYOUT_H

/* Physical (== virtual) address of the protected-mode part of the image. */
#define KERNEL_LOAD_ADDR	0x100000

/* Offsets inside the protected-mode part (see src/head.S). */
#define STARTUP_32_OFFSET	0x000	/* 32-bit entry (code32_start) */
#define KERNEL_INFO_OFFSET	0x100	/* struct kernel_info, protocol 2.15 */
#define STARTUP_64_OFFSET	0x200	/* 64-bit entry, fixed by the protocol */

/* Real-mode AP trampoline: copied here, started with SIPI vector 0x10. */
#define TRAMPOLINE_ADDR		0x10000
#define TRAMPOLINE_SIPI_VECTOR	(TRAMPOLINE_ADDR >> 12)

/* Stacks: the BSP has a bigger one, every AP gets AP_STACK_SIZE. */
#define BSP_STACK_SIZE		0x4000
#define AP_STACK_SIZE		0x1000
#define MAX_CPUS		64

/* Selectors of our GDT; same layout as Linux's boot GDT (boot.rst). */
#define GDT_CODE32		0x08
#define GDT_CODE64		0x10	/* __BOOT_CS */
#define GDT_DATA		0x18	/* __BOOT_DS */

/* Longest command line we accept (setup_header.cmdline_size). */
#define CMDLINE_MAX		2047

#endif
