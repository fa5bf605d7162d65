// SPDX-License-Identifier: Apache-2.0
/*
 * The Xen PVH boot path: head.S enters here (64-bit, on the BSP stack, .bss
 * cleared) with the physical address of struct hvm_start_info that the VMM
 * passed in EBX. We translate it into the few boot_params fields the rest
 * of the guest reads (setup header magic, type_of_loader, command line,
 * initramfs, e820 map), so bootparams.c checks both boot paths alike.
 *
 * hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h):
 *   0 magic 0x336ec578, 4 version, 8 flags, 12 nr_modules,
 *   16 modlist_paddr, 24 cmdline_paddr, 32 rsdp_paddr,
 *   40 memmap_paddr, 48 memmap_entries (version >= 1)
 * hvm_modlist_entry: 0 paddr, 8 size, 16 cmdline_paddr, 24 reserved
 * hvm_memmap_table_entry: 0 addr, 8 size, 16 type (e820 types), 20 reserved
 */
#include "tiny.h"
#include "bootparams.h"

#define HVM_START_MAGIC		0x336ec578
#define HVM_MODLIST_SIZE	32
#define HVM_MEMMAP_SIZE		24

static uint8_t pvh_zero_page[4096] __attribute__((aligned(4096)));
static int pvh_entry_used;

int pvh_booted(void)
{
	return pvh_entry_used;
}

static void put32(uint8_t *p, unsigned int off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, unsigned int off, uint64_t v)
{
	put32(p, off, (uint32_t)v);
	put32(p, off + 4, (uint32_t)(v >> 32));
}

uint8_t *pvh_boot_params(const uint8_t *si);
uint8_t *pvh_boot_params(const uint8_t *si)
{
	uint8_t *bp = pvh_zero_page;
	uint32_t version, nr_modules, entries = 0;
	uint64_t cmdline, memmap = 0;

	serial_init();
	if ((uint64_t)si + 56 > 1 * GiB)
		fail("pvh: hvm_start_info at 0x%lx is above the boot map",
		     (uint64_t)si);
	if (bp_u32(si, 0) != HVM_START_MAGIC)
		fail("pvh: bad hvm_start_info magic 0x%x at 0x%lx",
		     bp_u32(si, 0), (uint64_t)si);
	version = bp_u32(si, 4);
	nr_modules = bp_u32(si, 12);
	cmdline = bp_u64(si, 24);
	if (version >= 1) {
		memmap = bp_u64(si, 40);
		entries = bp_u32(si, 48);
	}
	tiny_print("boot: PVH entry, hvm_start_info at 0x%lx (version %u, %u memmap entries, %u modules)",
		   (uint64_t)si, version, entries, nr_modules);
	if (!memmap || !entries)
		fail("pvh: no memory map in hvm_start_info (version %u)",
		     version);
	if (entries > BP_E820_MAX)
		fail("pvh: %u memmap entries, at most %u fit", entries,
		     BP_E820_MAX);
	if (memmap + entries * HVM_MEMMAP_SIZE > 1 * GiB)
		fail("pvh: memmap at 0x%lx is above the boot map", memmap);

	put32(bp, BP_HDR_MAGIC, SETUP_HDR_MAGIC);
	bp[BP_TYPE_OF_LOADER] = 0xff;
	put32(bp, BP_CMD_LINE_PTR, (uint32_t)cmdline);
	put32(bp, BP_EXT_CMD_LINE_PTR, (uint32_t)(cmdline >> 32));
	put32(bp, BP_CMDLINE_SIZE, CMDLINE_MAX);
	for (uint32_t i = 0; i < entries; i++) {
		const uint8_t *e = (const uint8_t *)(memmap + i * HVM_MEMMAP_SIZE);
		unsigned int off = BP_E820_TABLE + i * E820_ENTRY_SIZE;

		put64(bp, off, bp_u64(e, 0));
		put64(bp, off + 8, bp_u64(e, 8));
		put32(bp, off + 16, bp_u32(e, 16));
	}
	bp[BP_E820_ENTRIES] = (uint8_t)entries;
	/* rsdp_paddr goes where boot_params has acpi_rsdp_addr, for acpi.c. */
	put64(bp, BP_ACPI_RSDP_ADDR, bp_u64(si, 32));
	pvh_entry_used = 1;
	if (nr_modules) {
		const uint8_t *m = (const uint8_t *)bp_u64(si, 16);
		uint64_t addr = bp_u64(m, 0), size = bp_u64(m, 8);

		put32(bp, BP_RAMDISK_IMAGE, (uint32_t)addr);
		put32(bp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(addr >> 32));
		put32(bp, BP_RAMDISK_SIZE, (uint32_t)size);
		put32(bp, BP_EXT_RAMDISK_SIZE, (uint32_t)(size >> 32));
	}
	return bp;
}
