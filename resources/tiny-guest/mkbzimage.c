// SPDX-License-Identifier: Apache-2.0
/*
 * mkbzimage: wrap the tiny guest into a bzImage (Linux x86 boot protocol,
 * Documentation/arch/x86/boot.rst, version 2.15).
 *
 *   mkbzimage <tiny-vmlinux (ELF)> <tiny.bin (objcopy -O binary)> <output>
 *
 * Output: one boot sector plus SETUP_SECTS setup sectors holding the
 * setup_header at 0x1f1, followed by the flat protected-mode part, which
 * the boot loader puts at code32_start (1 MiB). There is no real-mode
 * code: 64-bit boot loaders jump to load address + 0x200; the 16-bit
 * entries just halt and the image says it needs a 64-bit boot loader.
 *
 * The ELF is only read to check its layout and to size init_size (which
 * includes .bss and the stacks).
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

#define SECTOR_SIZE		512
#define SETUP_SECTS		1	/* the header ends at 0x26c */
#define SETUP_SIZE		((1 + SETUP_SECTS) * SECTOR_SIZE)

/* setup_header fields, as offsets in the image (boot.rst) */
#define HDR_SETUP_SECTS		0x1f1	/* u8 */
#define HDR_SYSSIZE		0x1f4	/* u32, 16-byte units */
#define HDR_VID_MODE		0x1fa	/* u16 */
#define HDR_BOOT_FLAG		0x1fe	/* u16 */
#define HDR_JUMP		0x200	/* 2 bytes: jmp short */
#define HDR_HEADER		0x202	/* u32 "HdrS" */
#define HDR_VERSION		0x206	/* u16 */
#define HDR_KERNEL_VERSION	0x20e	/* u16, string offset - 0x200 */
#define HDR_LOADFLAGS		0x211	/* u8 */
#define HDR_CODE32_START	0x214	/* u32 */
#define HDR_INITRD_ADDR_MAX	0x22c	/* u32 */
#define HDR_KERNEL_ALIGNMENT	0x230	/* u32 */
#define HDR_RELOCATABLE_KERNEL	0x234	/* u8 */
#define HDR_MIN_ALIGNMENT	0x235	/* u8, log2 */
#define HDR_XLOADFLAGS		0x236	/* u16 */
#define HDR_CMDLINE_SIZE	0x238	/* u32 */
#define HDR_PREF_ADDRESS	0x258	/* u64 */
#define HDR_INIT_SIZE		0x260	/* u32 */
#define HDR_KERNEL_INFO_OFFSET	0x268	/* u32 */
#define HDR_END			0x26c

/* Where we put the 16-bit stub and strings, after the header. */
#define REAL_MODE_STUB		0x270
#define VERSION_STRING		0x280
#define NOTICE_STRING		0x2a0

#define BOOT_FLAG		0xaa55
#define HDRS_MAGIC		"HdrS"
#define BOOT_PROTOCOL_VERSION	0x020f
#define VID_MODE_NORMAL		0xffff
#define LOADED_HIGH		0x01	/* protected-mode part at 1 MiB */
#define XLF_KERNEL_64		0x0001	/* has the 64-bit entry at +0x200 */
#define INITRD_ADDR_MAX		0x7fffffff
#define KERNEL_ALIGNMENT	0x1000
#define MIN_ALIGNMENT_LOG2	12
#define PAGE_SIZE		0x1000

/* x86 opcodes of the 16-bit halt stub */
#define OP_CLI			0xfa
#define OP_HLT			0xf4
#define OP_JMP_SHORT		0xeb
#define JMP_SHORT_LEN		2

static const char notice[] =
	"This is the tiny guest of microvm. It has no real-mode code: "
	"this image needs a 64-bit boot loader (64-bit entry at load "
	"address + 0x200).\r\n";
static const char version[] = "tiny-guest 1.0";

_Static_assert(4 + sizeof(notice) <= HDR_SETUP_SECTS, "notice too long");
_Static_assert(REAL_MODE_STUB >= HDR_END && VERSION_STRING >= REAL_MODE_STUB + 4 &&
	       NOTICE_STRING >= VERSION_STRING + sizeof(version) &&
	       NOTICE_STRING + sizeof(notice) <= SETUP_SIZE, "setup layout");

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "mkbzimage: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static void put8(uint8_t *p, unsigned int off, uint8_t v)
{
	p[off] = v;
}

static void put16(uint8_t *p, unsigned int off, uint16_t v)
{
	p[off] = v & 0xff;
	p[off + 1] = v >> 8;
}

static void put32(uint8_t *p, unsigned int off, uint32_t v)
{
	put16(p, off, v & 0xffff);
	put16(p, off + 2, v >> 16);
}

static void put64(uint8_t *p, unsigned int off, uint64_t v)
{
	put32(p, off, v & 0xffffffff);
	put32(p, off + 4, v >> 32);
}

static uint8_t *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET))
		die("cannot read %s", path);
	buf = malloc(len ? len : 1);
	if (!buf || fread(buf, 1, len, f) != (size_t)len)
		die("cannot read %s", path);
	fclose(f);
	*size = len;
	return buf;
}

/*
 * Check the ELF layout the bzImage relies on and return the end of the
 * loaded image in memory (including .bss) and in the file (filesz).
 */
static void check_elf(const char *path, uint64_t *mem_end,
		      uint64_t *file_end)
{
	size_t size;
	uint8_t *elf = read_file(path, &size);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
	uint64_t lowest = UINT64_MAX;

	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC)
		die("%s: not an x86_64 ELF executable", path);
	if (eh->e_entry != KERNEL_LOAD_ADDR + STARTUP_64_OFFSET)
		die("%s: entry point is not load address + 0x200", path);
	if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size)
		die("%s: truncated program headers", path);
	*mem_end = *file_end = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *ph = (Elf64_Phdr *)(elf + eh->e_phoff) + i;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_paddr != ph->p_vaddr)
			die("%s: PT_LOAD with p_paddr != p_vaddr", path);
		if (ph->p_paddr < lowest)
			lowest = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > *mem_end)
			*mem_end = ph->p_paddr + ph->p_memsz;
		if (ph->p_filesz && ph->p_paddr + ph->p_filesz > *file_end)
			*file_end = ph->p_paddr + ph->p_filesz;
	}
	if (lowest != KERNEL_LOAD_ADDR)
		die("%s: lowest PT_LOAD is not at the load address", path);
	free(elf);
}

int main(int argc, char **argv)
{
	uint8_t setup[SETUP_SIZE] = { 0 };
	uint64_t mem_end, file_end, init_size;
	size_t bin_size;
	uint8_t *bin;
	FILE *out;

	if (argc != 4) {
		fprintf(stderr, "usage: mkbzimage <vmlinux> <bin> <bzImage>\n");
		return 2;
	}
	check_elf(argv[1], &mem_end, &file_end);
	bin = read_file(argv[2], &bin_size);
	if (bin_size != file_end - KERNEL_LOAD_ADDR)
		die("%s: size does not match the ELF's loaded file size",
		    argv[2]);
	init_size = (mem_end - KERNEL_LOAD_ADDR + PAGE_SIZE - 1) &
		    ~(uint64_t)(PAGE_SIZE - 1);

	/* Boot sector: a halt stub for anyone who boots it, and a notice. */
	put8(setup, 0, OP_CLI);
	put8(setup, 1, OP_HLT);
	put8(setup, 2, OP_JMP_SHORT);
	put8(setup, 3, (uint8_t)-3);		/* back to the hlt */
	memcpy(setup + 4, notice, sizeof(notice));

	put8(setup, HDR_SETUP_SECTS, SETUP_SECTS);
	put32(setup, HDR_SYSSIZE, (bin_size + 15) / 16);
	put16(setup, HDR_VID_MODE, VID_MODE_NORMAL);
	put16(setup, HDR_BOOT_FLAG, BOOT_FLAG);
	/* 16-bit setup entry (setup segment + 0x200): jump to a halt stub. */
	put8(setup, HDR_JUMP, OP_JMP_SHORT);
	put8(setup, HDR_JUMP + 1, REAL_MODE_STUB - (HDR_JUMP + JMP_SHORT_LEN));
	memcpy(setup + HDR_HEADER, HDRS_MAGIC, 4);
	put16(setup, HDR_VERSION, BOOT_PROTOCOL_VERSION);
	put16(setup, HDR_KERNEL_VERSION, VERSION_STRING - 0x200);
	put8(setup, HDR_LOADFLAGS, LOADED_HIGH);
	put32(setup, HDR_CODE32_START, KERNEL_LOAD_ADDR);
	put32(setup, HDR_INITRD_ADDR_MAX, INITRD_ADDR_MAX);
	put32(setup, HDR_KERNEL_ALIGNMENT, KERNEL_ALIGNMENT);
	put8(setup, HDR_RELOCATABLE_KERNEL, 0);
	put8(setup, HDR_MIN_ALIGNMENT, MIN_ALIGNMENT_LOG2);
	put16(setup, HDR_XLOADFLAGS, XLF_KERNEL_64);
	put32(setup, HDR_CMDLINE_SIZE, CMDLINE_MAX);
	put64(setup, HDR_PREF_ADDRESS, KERNEL_LOAD_ADDR);
	put32(setup, HDR_INIT_SIZE, init_size);
	put32(setup, HDR_KERNEL_INFO_OFFSET, KERNEL_INFO_OFFSET);

	put8(setup, REAL_MODE_STUB, OP_CLI);
	put8(setup, REAL_MODE_STUB + 1, OP_HLT);
	put8(setup, REAL_MODE_STUB + 2, OP_JMP_SHORT);
	put8(setup, REAL_MODE_STUB + 3, (uint8_t)-3);
	memcpy(setup + VERSION_STRING, version, sizeof(version));
	memcpy(setup + NOTICE_STRING, notice, sizeof(notice));

	out = fopen(argv[3], "wb");
	if (!out || fwrite(setup, 1, sizeof(setup), out) != sizeof(setup) ||
	    fwrite(bin, 1, bin_size, out) != bin_size || fclose(out))
		die("cannot write %s", argv[3]);
	free(bin);
	return 0;
}
