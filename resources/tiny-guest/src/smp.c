// SPDX-License-Identifier: Apache-2.0
/*
 * Bring up the application processors listed in the MADT (or, without
 * ACPI, the MP table) with the
 * INIT / SIPI / SIPI sequence through the local APIC (xAPIC MMIO). Each AP
 * runs the real-mode trampoline from head.S at TRAMPOLINE_ADDR, reaches
 * ap_start64 in long mode and then ap_main() below.
 */
#include "tiny.h"
#include "x86.h"

#define LAPIC_BASE		0xfee00000ULL
#define LAPIC_ID		0x020	/* bits 31:24 */
#define LAPIC_SVR		0x0f0	/* spurious interrupt vector */
#define LAPIC_ICR_LO		0x300
#define LAPIC_ICR_HI		0x310	/* destination in bits 31:24 */
#define SVR_APIC_ENABLE		0x100
#define SVR_SPURIOUS_VECTOR	0xff
#define ICR_DM_INIT		0x500
#define ICR_DM_STARTUP		0x600
#define ICR_DELIVERY_PENDING	0x1000
#define ICR_LEVEL_ASSERT	0x4000

/*
 * Delays are counted in reads of port 0x80: one I/O exit each, about
 * 6.5 us on our slow hosts, about 1-2 us on fast ones.
 */
#define INIT_DELAY		1500		/* ~10 ms, like Linux */
#define SIPI_DELAY		30		/* ~200 us */
#define ICR_IDLE_LIMIT		1000
#define AP_WAIT_LIMIT		1000000		/* ~6.5 s here, >= 1 s anywhere */

extern const char trampoline_start[], trampoline_end[], trampoline_cr3[];

static volatile uint32_t cpus_online;
/* Which APIC ids reported in, to check them against the firmware's list. */
static volatile uint8_t apic_online[256];

static uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_write(uint32_t reg, uint32_t val)
{
	mmio_write32(LAPIC_BASE + reg, val);
}

uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

static void delay(unsigned int n)
{
	while (n--)
		io_delay();
}

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	for (int i = 0; i < ICR_IDLE_LIMIT; i++)
		if (!(lapic_read(LAPIC_ICR_LO) & ICR_DELIVERY_PENDING))
			break;
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr);	/* this write sends the IPI */
}

/* Print this CPU's line and check the VMM's per-vCPU CPUID. */
static void report_cpu(unsigned int index)
{
	uint32_t a, b, c, d, id = lapic_id(), cpuid_id;

	cpuid(1, &a, &b, &c, &d);
	cpuid_id = b >> 24;
	tiny_print("cpu %u online (apic id %u, cpuid apic id %u)", index, id,
		   cpuid_id);
	if (id != cpuid_id)
		fail("cpu %u: local apic id %u != cpuid apic id %u", index, id,
		     cpuid_id);
	apic_online[id & 0xff] = 1;
}

/* Work a scenario gives every AP once it is online; each returns at once
 * unless its scenario was chosen. */
static void ap_scenario(unsigned int index)
{
	storm_ap(index);
	inflight_ap(index);
}

/* C entry of every AP, on its own stack (head.S: ap_start64). */
void ap_main(unsigned int index);
void ap_main(unsigned int index)
{
	report_cpu(index);
	__asm__ volatile("lock incl %0" : "+m"(cpus_online) : : "memory");
	ap_scenario(index);
	halt_forever();
}

static void start_ap(uint32_t apic_id)
{
	send_ipi(apic_id, ICR_DM_INIT | ICR_LEVEL_ASSERT);
	delay(INIT_DELAY);
	for (int i = 0; i < 2; i++) {
		send_ipi(apic_id, ICR_DM_STARTUP | TRAMPOLINE_SIPI_VECTOR);
		delay(SIPI_DELAY);
	}
}

void smp_boot(const struct mp_cpus *cpus)
{
	size_t tsize = trampoline_end - trampoline_start;
	uint32_t bsp_id;
	uint64_t cr3 = read_cr3();
	unsigned int online;

	lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SVR_SPURIOUS_VECTOR);
	bsp_id = lapic_id();
	if (bsp_id != cpus->apic_id[cpus->bsp])
		fail("smp: BSP apic id %u, the firmware table says %u", bsp_id,
		     cpus->apic_id[cpus->bsp]);
	report_cpu(0);
	cpus_online = 1;

	if (cpus->count > 1) {
		if (!e820_is_usable(TRAMPOLINE_ADDR, tsize))
			fail("smp: trampoline at 0x%x is not in usable RAM",
			     TRAMPOLINE_ADDR);
		memcpy((void *)TRAMPOLINE_ADDR, trampoline_start, tsize);
		/* The trampoline loads CR3 in 32-bit mode: ours is < 4 GiB. */
		*(volatile uint32_t *)(TRAMPOLINE_ADDR +
				       (trampoline_cr3 - trampoline_start)) =
			(uint32_t)cr3;
		barrier();
		for (unsigned int i = 0; i < cpus->count; i++)
			if ((int)i != cpus->bsp)
				start_ap(cpus->apic_id[i]);
	}

	for (unsigned int t = 0; t < AP_WAIT_LIMIT; t++) {
		if (cpus_online >= cpus->count)
			break;
		io_delay();
	}
	online = cpus_online;
	tiny_print("smp: %u of %u cpus online", online, cpus->count);
	if (online != cpus->count)
		fail("smp: timeout waiting for %u cpus", cpus->count - online);
	/* As many came as were listed; now: exactly the listed ones. */
	for (unsigned int i = 0; i < cpus->count; i++)
		if (!apic_online[cpus->apic_id[i]])
			fail("smp: apic id %u is listed but did not come online",
			     cpus->apic_id[i]);
}
