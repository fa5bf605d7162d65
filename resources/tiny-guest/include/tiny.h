/* SPDX-License-Identifier: Apache-2.0 */
/* Common declarations of the tiny guest. */
#ifndef TINY_H
#define TINY_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "layout.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define KiB		((uint64_t)1024)
#define MiB		(1024 * KiB)
#define GiB		(1024 * MiB)

/*
 * Pointer to a fixed physical address (identity mapped). Going through an
 * empty asm hides the constant from gcc, which otherwise warns about
 * accesses near address 0 (the BIOS data area) as out of bounds.
 */
static inline const uint8_t *phys_ptr(uint64_t addr)
{
	__asm__("" : "+r"(addr));
	return (const uint8_t *)addr;
}

/* Linker script symbols: the whole image, 0x100000 .. end of stacks. */
extern char _start[], _end[];

/* lib.c: what gcc may call, plus small string helpers */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int parse_u64(const char *s, size_t len, uint64_t *out);
char *append_num(char *p, unsigned int v);

/* serial.c: output is one line per call, prefixed with "tiny: " */
void serial_init(void);
void tiny_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tiny_vprint(const char *fmt, va_list ap);
__attribute__((noreturn, format(printf, 1, 2)))
void fail(const char *fmt, ...);
int serial_getc(void);	/* blocks until a byte arrives */

/* main.c */
__attribute__((noreturn)) void reset_machine(void);
__attribute__((noreturn)) void halt_forever(void);

/* bootparams.c */
struct acpi_info;
struct boot_info {
	uint8_t *boot_params;	/* the zero page */
	const char *cmdline;
	uint64_t usable_ram;	/* sum of e820 RAM entries, bytes */
	const struct acpi_info *acpi;	/* NULL: no RSDP (acpi.h) */
};
void bootparams_check(struct boot_info *bi);
int e820_is_usable(uint64_t addr, uint64_t size);
/* Does any byte of [addr, addr + size) lie in usable RAM? */
int e820_overlaps_usable(uint64_t addr, uint64_t size);
/* Value of "tiny.<key>=" on the command line, NULL if absent. */
const char *cmdline_param(const char *key, size_t *len);
int cmdline_param_u64(const char *key, uint64_t *val);

/*
 * The processors and interrupt wiring a firmware table describes: filled
 * from the MP table (mptable.c) and from the ACPI MADT (acpi.c), so the two
 * can be compared field by field.
 */
#define ISA_IRQS	16
struct mp_cpus {
	unsigned int count;
	uint8_t apic_id[MAX_CPUS];
	int bsp;		/* index of the boot processor's entry */
	uint32_t lapic_addr;
	unsigned int nioapics;
	uint8_t ioapic_id;	/* of the (first) IOAPIC */
	uint32_t ioapic_addr;
	uint8_t isa_pin[ISA_IRQS];	/* IOAPIC pin of ISA IRQ n, 0xff: none */
	uint8_t nmi_lint;	/* LINT pin of the NMI, 0xff: none */
};
void mptable_scan(struct mp_cpus *cpus);

/* pvh.c: 1 when we came in through the PVH entry */
int pvh_booted(void);

/* paging.c */
void paging_init(void);

/* smp.c */
uint32_t lapic_id(void);
void smp_boot(const struct mp_cpus *cpus);
/* Run by every AP after it came online, then it halts; each returns at once
 * unless its scenario was chosen (storm.c, blk_inflight.c). */
void storm_ap(unsigned int index);
void inflight_ap(unsigned int index);

/*
 * Scenarios, selected with tiny.test=<name>. Each one is a struct placed in
 * the .scenarios section by DEFINE_SCENARIO, so a new scenario is just a new
 * C file. run() is called after all common checks; if it returns, the guest
 * prints PASS and resets the machine.
 */
struct scenario {
	const char *name;
	void (*run)(struct boot_info *bi);
};

#define DEFINE_SCENARIO(sname, fn)					\
	static const struct scenario scenario_##fn			\
	__attribute__((used, section(".scenarios"), aligned(8))) =	\
		{ .name = sname, .run = fn }

#endif
