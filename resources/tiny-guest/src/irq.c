// SPDX-License-Identifier: Apache-2.0
/*
 * The shared IDT, local APIC and IOAPIC helpers of include/irq.h.
 *
 * Every gate starts as a FAIL stub ("push $vector; jmp irq_bad", 16 bytes
 * each), which hands the vector to irq_unexpected() on an aligned stack;
 * the spurious vector just returns. Scenarios install their own handlers
 * with idt_set_gate().
 */
#include "irq.h"
#include "tiny.h"
#include "x86.h"

#define LAPIC_LDR		0x0d0
#define LAPIC_DFR		0x0e0
#define LAPIC_SVR		0x0f0
#define LAPIC_LVT_LINT0		0x350
#define LVT_MASKED		(1u << 16)
#define SVR_ENABLE		0x100
#define DFR_FLAT		0xffffffffu

#define IOAPIC_BASE		0xfec00000ULL
#define IOAPIC_REGSEL		0x00
#define IOAPIC_WIN		0x10
#define IOAPIC_VER		0x01
#define IOAPIC_REDTBL(pin)	(0x10 + 2 * (pin))
#define REDTBL_LOGICAL		(1u << 11)
#define REDTBL_MASKED		(1u << 16)

#define PIC1_DATA		0x21
#define PIC2_DATA		0xa1

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;		/* 0x8e: present, DPL 0, 64-bit interrupt gate */
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
};

static struct idt_gate idt[256] __attribute__((aligned(16)));

extern const char irq_spurious_stub[], irq_bad_stubs[];

__asm__(
	"	.text\n"
	"	.globl	irq_spurious_stub\n"
	"irq_spurious_stub:\n"
	"	iretq\n"
	"irq_bad:\n"
	"	popq	%rdi\n"
	"	andq	$-16, %rsp\n"
	"	call	irq_unexpected\n"
	"	.balign	16\n"
	"	.globl	irq_bad_stubs\n"
	"irq_bad_stubs:\n"
	"	.set	irq_v, 0\n"
	"	.rept	256\n"
	"	.balign	16\n"
	"	pushq	$irq_v\n"
	"	jmp	irq_bad\n"
	"	.set	irq_v, irq_v + 1\n"
	"	.endr\n");

__attribute__((noreturn, used)) void irq_unexpected(uint64_t vector);

void irq_unexpected(uint64_t vector)
{
	fail("unexpected interrupt or exception, vector 0x%lx", vector);
}

void idt_set_gate(unsigned int v, const void *handler)
{
	uint64_t a = (uint64_t)handler;
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	idt[v] = (struct idt_gate){
		.off_lo = (uint16_t)a,
		.sel = cs,
		.type = 0x8e,
		.off_mid = (uint16_t)(a >> 16),
		.off_hi = (uint32_t)(a >> 32),
	};
}

void idt_init(void)
{
	for (unsigned int v = 0; v < 256; v++)
		idt_set_gate(v, irq_bad_stubs + 16 * v);
	idt_set_gate(SPURIOUS_VECTOR, irq_spurious_stub);
}

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint64_t)idt };

	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
}

void irq_cpu_init(void)
{
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
}

void lapic_set_logical_id(unsigned int cpu)
{
	if (cpu >= 8)
		fail("irq: flat logical destination for cpu %u (max 7)", cpu);
	mmio_write32(LAPIC_BASE + LAPIC_DFR, DFR_FLAT);
	mmio_write32(LAPIC_BASE + LAPIC_LDR, (1u << cpu) << 24);
}

static uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
	return mmio_read32(IOAPIC_BASE + IOAPIC_WIN);
}

static void ioapic_write(uint32_t reg, uint32_t val)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
	mmio_write32(IOAPIC_BASE + IOAPIC_WIN, val);
}

static void check_pin(unsigned int pin)
{
	unsigned int pins = ((ioapic_read(IOAPIC_VER) >> 16) & 0xff) + 1;

	if (pin >= pins)
		fail("irq: pin %u beyond the IOAPIC's %u pins", pin, pins);
}

void ioapic_route_physical(unsigned int pin, unsigned int vector,
			   uint32_t apic_id)
{
	check_pin(pin);
	ioapic_write(IOAPIC_REDTBL(pin) + 1, apic_id << 24);
	ioapic_write(IOAPIC_REDTBL(pin), vector);
}

void ioapic_route_logical(unsigned int pin, unsigned int vector, uint8_t cpus)
{
	check_pin(pin);
	ioapic_write(IOAPIC_REDTBL(pin) + 1, (uint32_t)cpus << 24);
	ioapic_write(IOAPIC_REDTBL(pin), REDTBL_LOGICAL | vector);
}

void ioapic_mask(unsigned int pin)
{
	check_pin(pin);
	ioapic_write(IOAPIC_REDTBL(pin), REDTBL_MASKED);
}
