/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Offsets into struct boot_params (the "zero page") and its setup_header,
 * from Documentation/arch/x86/zero-page.rst and boot.rst. Accessed by
 * offset rather than through a huge packed struct.
 */
#ifndef TINY_BOOTPARAMS_H
#define TINY_BOOTPARAMS_H

#include <stdint.h>

#define BP_ACPI_RSDP_ADDR	0x070	/* u64, 0: not given */
#define BP_EXT_RAMDISK_IMAGE	0x0c0	/* u32, bits 63:32 */
#define BP_EXT_RAMDISK_SIZE	0x0c4	/* u32, bits 63:32 */
#define BP_EXT_CMD_LINE_PTR	0x0c8	/* u32, bits 63:32 */
#define BP_E820_ENTRIES		0x1e8	/* u8 */
#define BP_HDR			0x1f1	/* struct setup_header */
#define BP_HDR_MAGIC		0x202	/* u32 "HdrS" */
#define BP_TYPE_OF_LOADER	0x210	/* u8 */
#define BP_LOADFLAGS		0x211	/* u8 */
#define BP_RAMDISK_IMAGE	0x218	/* u32 */
#define BP_RAMDISK_SIZE		0x21c	/* u32 */
#define BP_CMD_LINE_PTR		0x228	/* u32 */
#define BP_CMDLINE_SIZE		0x238	/* u32 */
#define BP_E820_TABLE		0x2d0	/* struct boot_e820_entry[128] */

#define BP_E820_MAX		128
#define E820_ENTRY_SIZE		20	/* packed {u64 addr; u64 size; u32 type} */
#define E820_RAM		1
#define E820_RESERVED		2
#define E820_ACPI		3
#define E820_NVS		4
#define E820_UNUSABLE		5

#define SETUP_HDR_MAGIC		0x53726448	/* "HdrS" little endian */

static inline uint8_t bp_u8(const uint8_t *bp, unsigned int off)
{
	return bp[off];
}

/* Unaligned little-endian loads; the zero page is packed. */
static inline uint32_t bp_u32(const uint8_t *bp, unsigned int off)
{
	return bp[off] | bp[off + 1] << 8 | bp[off + 2] << 16 |
	       (uint32_t)bp[off + 3] << 24;
}

static inline uint64_t bp_u64(const uint8_t *bp, unsigned int off)
{
	return bp_u32(bp, off) | (uint64_t)bp_u32(bp, off + 4) << 32;
}

#endif
