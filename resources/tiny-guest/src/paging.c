// SPDX-License-Identifier: Apache-2.0
/*
 * Our own identity map of the low 4 GiB with 2 MiB pages. The boot loader
 * only promises 1 GiB, and the local APIC (0xfee00000) is above that.
 * 3-4 GiB is the 32-bit MMIO hole, mapped uncached.
 */
#include "tiny.h"
#include "x86.h"

#define PTE_PRESENT	(1ULL << 0)
#define PTE_RW		(1ULL << 1)
#define PTE_PWT		(1ULL << 3)
#define PTE_PCD		(1ULL << 4)
#define PTE_PS		(1ULL << 7)	/* 2 MiB page in a PD entry */
#define ENTRIES		512
#define MAPPED_GIB	4
#define MMIO_GIB	3		/* the 4th GiB: uncached */

static uint64_t pml4[ENTRIES] __attribute__((aligned(4096)));
static uint64_t pdpt[ENTRIES] __attribute__((aligned(4096)));
static uint64_t pd[MAPPED_GIB][ENTRIES] __attribute__((aligned(4096)));

void paging_init(void)
{
	/* Tables are in .bss (zeroed by head.S) and identity mapped. */
	pml4[0] = (uint64_t)pdpt | PTE_PRESENT | PTE_RW;
	for (int g = 0; g < MAPPED_GIB; g++) {
		uint64_t flags = PTE_PRESENT | PTE_RW | PTE_PS;

		if (g == MMIO_GIB)
			flags |= PTE_PCD | PTE_PWT;
		pdpt[g] = (uint64_t)pd[g] | PTE_PRESENT | PTE_RW;
		for (int i = 0; i < ENTRIES; i++)
			pd[g][i] = ((uint64_t)g * GiB + (uint64_t)i * 2 * MiB) | flags;
	}
	write_cr3((uint64_t)pml4);
}
