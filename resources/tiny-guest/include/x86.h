/* SPDX-License-Identifier: Apache-2.0 */
/* Thin wrappers around the few privileged x86 instructions we use. */
#ifndef TINY_X86_H
#define TINY_X86_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t val)
{
	__asm__ volatile("outb %0, %1" : : "a"(val), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t val;

	__asm__ volatile("inb %1, %0" : "=a"(val) : "Nd"(port));
	return val;
}

/* One read of the POST port: a cheap delay of one I/O exit. */
static inline void io_delay(void)
{
	inb(0x80);
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b,
			 uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid"
			 : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
			 : "a"(leaf), "c"(0));
}

static inline void write_cr3(uint64_t val)
{
	__asm__ volatile("mov %0, %%cr3" : : "r"(val) : "memory");
}

static inline uint64_t read_cr3(void)
{
	uint64_t val;

	__asm__ volatile("mov %%cr3, %0" : "=r"(val));
	return val;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t val)
{
	*(volatile uint32_t *)addr = val;
}

/* Compiler barrier: re-read memory written by other CPUs. */
#define barrier() __asm__ volatile("" : : : "memory")

#endif
