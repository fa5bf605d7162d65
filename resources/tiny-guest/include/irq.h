/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Interrupts for the scenarios that take them (bench irqfd-roundtrip,
 * blk-inflight): one shared 256-gate IDT whose gates all FAIL naming their
 * vector until a scenario installs its handler, the local APIC (xAPIC MMIO)
 * and the IOAPIC routing of one pin.
 */
#ifndef TINY_IRQ_H
#define TINY_IRQ_H

#include <stdint.h>

#define SPURIOUS_VECTOR		0xff

#define LAPIC_BASE		0xfee00000ULL
#define LAPIC_EOI		0x0b0

/* Every gate to its FAIL stub, the spurious vector to a bare iretq. */
void idt_init(void);
/* Gate `vector` to `handler` (a 64-bit interrupt gate, DPL 0). */
void idt_set_gate(unsigned int vector, const void *handler);
/* lidt on this CPU (every CPU that takes interrupts). */
void idt_load(void);

/* The 8259 PICs and LINT0 masked, this CPU's local APIC enabled (on every
 * CPU that takes interrupts). */
void irq_cpu_init(void);
/* Flat logical destination: this CPU answers logical destination bit `cpu` (< 8). */
void lapic_set_logical_id(unsigned int cpu);
static inline void lapic_eoi(void)
{
	*(volatile uint32_t *)(LAPIC_BASE + LAPIC_EOI) = 0;
}

/* IOAPIC pin -> vector, fixed, edge, active high, physical destination apic id. */
void ioapic_route_physical(unsigned int pin, unsigned int vector,
			   uint32_t apic_id);
/* The same with a logical destination mask (every CPU in it takes it). */
void ioapic_route_logical(unsigned int pin, unsigned int vector,
			  uint8_t cpus);
void ioapic_mask(unsigned int pin);

#endif
