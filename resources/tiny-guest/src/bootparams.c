// SPDX-License-Identifier: Apache-2.0
/*
 * Checks of what the boot loader handed us in struct boot_params: the
 * setup header, the command line, the e820 memory map and the initramfs.
 */
#include "tiny.h"
#include "bootparams.h"

static const uint8_t *bp;	/* boot_params, set by bootparams_check() */
static const char *cmdline;

static const char *e820_type_name(uint32_t type)
{
	switch (type) {
	case E820_RAM:		return "usable";
	case E820_RESERVED:	return "reserved";
	case E820_ACPI:		return "ACPI data";
	case E820_NVS:		return "ACPI NVS";
	case E820_UNUSABLE:	return "unusable";
	default:		return "unknown type";
	}
}

static unsigned int e820_count(void)
{
	return bp_u8(bp, BP_E820_ENTRIES);
}

static void e820_entry(unsigned int i, uint64_t *addr, uint64_t *size,
		       uint32_t *type)
{
	unsigned int off = BP_E820_TABLE + i * E820_ENTRY_SIZE;

	*addr = bp_u64(bp, off);
	*size = bp_u64(bp, off + 8);
	*type = bp_u32(bp, off + 16);
}

/*
 * Is [addr, addr + size) covered by usable RAM? The range may span
 * several adjacent usable entries; the table need not be sorted.
 */
int e820_is_usable(uint64_t addr, uint64_t size)
{
	uint64_t end = addr + size;

	if (end < addr)
		return 0;
	while (addr < end) {
		uint64_t next = addr;

		for (unsigned int i = 0; i < e820_count(); i++) {
			uint64_t a, s;
			uint32_t t;

			e820_entry(i, &a, &s, &t);
			if (t == E820_RAM && a <= addr && addr < a + s)
				next = a + s;
		}
		if (next == addr)
			return 0;
		addr = next;
	}
	return 1;
}

int e820_overlaps_usable(uint64_t addr, uint64_t size)
{
	for (unsigned int i = 0; i < e820_count(); i++) {
		uint64_t a, s;
		uint32_t t;

		e820_entry(i, &a, &s, &t);
		if (t == E820_RAM && a < addr + size && addr < a + s)
			return 1;
	}
	return 0;
}

/* Value of "tiny.<key>=<value>" (whitespace separated), NULL if absent. */
const char *cmdline_param(const char *key, size_t *len)
{
	size_t klen = strlen(key);
	const char *p = cmdline;

	while (p && *p) {
		const char *tok;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		tok = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		if ((size_t)(p - tok) > 5 + klen && !memcmp(tok, "tiny.", 5) &&
		    !memcmp(tok + 5, key, klen) && tok[5 + klen] == '=') {
			*len = p - (tok + 6 + klen);
			return tok + 6 + klen;
		}
	}
	return NULL;
}

/* 1 if present and numeric, 0 if absent, FAIL if present but garbage. */
int cmdline_param_u64(const char *key, uint64_t *val)
{
	size_t len;
	const char *s = cmdline_param(key, &len);

	if (!s)
		return 0;
	if (parse_u64(s, len, val))
		fail("bad number in tiny.%s=%.*s", key, (int)len, s);
	return 1;
}

static void check_cmdline(void)
{
	uint64_t ptr = bp_u32(bp, BP_CMD_LINE_PTR) |
		       (uint64_t)bp_u32(bp, BP_EXT_CMD_LINE_PTR) << 32;

	if (!ptr)
		fail("no command line (cmd_line_ptr is 0)");
	if (ptr + CMDLINE_MAX >= 4 * GiB)
		fail("command line at 0x%lx is above our 4 GiB map", ptr);
	cmdline = (const char *)ptr;
	tiny_print("cmdline: %.*s", CMDLINE_MAX, cmdline);
}

static uint64_t check_e820(void)
{
	uint64_t total = 0;
	unsigned int n = e820_count();

	if (n > BP_E820_MAX)
		fail("e820: %u entries, at most %u fit", n, BP_E820_MAX);
	for (unsigned int i = 0; i < n; i++) {
		uint64_t addr, size;
		uint32_t type;

		e820_entry(i, &addr, &size, &type);
		tiny_print("e820: [mem 0x%016lx-0x%016lx] %s", addr,
			   addr + size - 1, e820_type_name(type));
		if (type == E820_RAM)
			total += size;
	}
	tiny_print("e820: %u entries, usable RAM %lu KiB", n, total / KiB);
	if (!total)
		fail("e820: no usable RAM");
	return total;
}

static void check_mem_size(uint64_t total)
{
	uint64_t mib;

	if (!cmdline_param_u64("mem", &mib))
		return;
	/* The first MiB has reserved holes (EBDA, VGA, BIOS), allow 1 MiB. */
	if (total > mib * MiB || total + MiB < mib * MiB)
		fail("e820: usable RAM %lu KiB does not match tiny.mem=%lu MiB",
		     total / KiB, mib);
}

static void check_initramfs(void)
{
	uint64_t addr = bp_u32(bp, BP_RAMDISK_IMAGE) |
			(uint64_t)bp_u32(bp, BP_EXT_RAMDISK_IMAGE) << 32;
	uint64_t size = bp_u32(bp, BP_RAMDISK_SIZE) |
			(uint64_t)bp_u32(bp, BP_EXT_RAMDISK_SIZE) << 32;
	char start[17];
	unsigned int i;

	if (!size) {
		tiny_print("initramfs: none");
		return;
	}
	if (!e820_is_usable(addr, size))
		fail("initramfs at 0x%lx (%lu bytes) is not in usable RAM",
		     addr, size);
	if (addr + 16 > 4 * GiB)
		fail("initramfs at 0x%lx is above our 4 GiB map", addr);
	for (i = 0; i < 16 && i < size; i++) {
		char c = ((const char *)addr)[i];

		start[i] = (c >= 0x20 && c < 0x7f) ? c : '.';
	}
	start[i] = '\0';
	tiny_print("initramfs: %lu bytes at 0x%lx, starts \"%s\"", size, addr,
		   start);
}

void bootparams_check(struct boot_info *bi)
{
	bp = bi->boot_params;
	if (bp_u32(bp, BP_HDR_MAGIC) != SETUP_HDR_MAGIC)
		fail("boot_params: no \"HdrS\" magic in the setup header");
	if (!bp_u8(bp, BP_TYPE_OF_LOADER))
		fail("boot_params: type_of_loader is 0");
	check_cmdline();
	bi->cmdline = cmdline;
	bi->usable_ram = check_e820();
	if (!e820_is_usable(KERNEL_LOAD_ADDR, _end - _start))
		fail("e820: our image [0x%lx-0x%lx) is not in usable RAM",
		     (uint64_t)KERNEL_LOAD_ADDR, (uint64_t)_end);
	if (!e820_is_usable((uint64_t)bp & ~0xfffULL, 0x1000))
		fail("e820: boot_params page at 0x%lx is not in usable RAM",
		     (uint64_t)bp);
	check_mem_size(bi->usable_ram);
	check_initramfs();
}
