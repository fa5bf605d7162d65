// SPDX-License-Identifier: Apache-2.0
/*
 * The irqfd-roundtrip bench loop (tiny.bench=irqfd-roundtrip:<N>): the
 * only place where the tiny guest takes interrupts.
 *
 * Set-up: a 256-gate IDT (vector IRQ_VECTOR counts and EOIs, the spurious
 * vector 0xff just returns, every other vector FAILs naming itself), the
 * 8259 PICs and LINT0 masked (SeaBIOS leaves the PIT's IRQ 0 on), the
 * local APIC enabled and the device's IOAPIC pin routed to IRQ_VECTOR:
 * fixed, physical destination = our APIC id, edge, active high.
 *
 * Then N times: publish one 16-byte entropy request, notify, "sti; hlt;
 * cli" until the handler has run, check the used ring, write InterruptACK.
 * So one round trip is: the notify (ioeventfd), the device thread's
 * wake-up and work, its irqfd write, KVM's injection through the IOAPIC,
 * the guest's wake-up from HLT, the handler (EOI) and one MMIO exit for
 * the ACK. Interrupts are off again when the loop returns.
 */
#include "virtio.h"

#define IRQ_VECTOR		0x40
#define SPURIOUS_VECTOR		0xff
#define IRQ_BYTES		16

#define LAPIC_BASE		0xfee00000ULL
#define LAPIC_SVR		0x0f0
#define LAPIC_LVT_LINT0		0x350
#define LVT_MASKED		(1u << 16)
#define SVR_ENABLE		0x100

#define IOAPIC_BASE		0xfec00000ULL
#define IOAPIC_REGSEL		0x00
#define IOAPIC_WIN		0x10
#define IOAPIC_VER		0x01
#define IOAPIC_REDTBL(pin)	(0x10 + 2 * (pin))
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
static uint8_t irq_buf[IRQ_BYTES] __attribute__((aligned(64)));

/* Bumped by irq_count_stub; read with interrupts off or after "memory". */
volatile uint32_t irq_bench_count;

extern const char irq_count_stub[], irq_spurious_stub[], irq_bad_stubs[];

/*
 * irq_count_stub: the measured handler; only RAX is used (iretq restores
 * RFLAGS). irq_bad_stubs: 256 stubs of 16 bytes each, "push $vector; jmp
 * irq_bad", which hands the vector to irq_bench_bad() on an aligned stack.
 */
__asm__(
	"	.text\n"
	"	.globl	irq_count_stub\n"
	"irq_count_stub:\n"
	"	pushq	%rax\n"
	"	incl	irq_bench_count(%rip)\n"
	"	movl	$0xfee000b0, %eax\n"	/* LAPIC EOI */
	"	movl	$0, (%rax)\n"
	"	popq	%rax\n"
	"	iretq\n"
	"	.globl	irq_spurious_stub\n"
	"irq_spurious_stub:\n"
	"	iretq\n"
	"irq_bad:\n"
	"	popq	%rdi\n"
	"	andq	$-16, %rsp\n"
	"	call	irq_bench_bad\n"
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

__attribute__((noreturn, used)) void irq_bench_bad(uint64_t vector);

void irq_bench_bad(uint64_t vector)
{
	fail("bench: unexpected interrupt or exception, vector 0x%lx",
	     vector);
}

static void set_gate(unsigned int v, const void *handler, uint16_t cs)
{
	uint64_t a = (uint64_t)handler;

	idt[v] = (struct idt_gate){
		.off_lo = (uint16_t)a,
		.sel = cs,
		.type = 0x8e,
		.off_mid = (uint16_t)(a >> 16),
		.off_hi = (uint32_t)(a >> 32),
	};
}

static void idt_init(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint64_t)idt };
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (unsigned int v = 0; v < 256; v++)
		set_gate(v, irq_bad_stubs + 16 * v, cs);
	set_gate(IRQ_VECTOR, irq_count_stub, cs);
	set_gate(SPURIOUS_VECTOR, irq_spurious_stub, cs);
	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
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

/* Route IOAPIC pin `pin` to IRQ_VECTOR on this CPU (or mask it again). */
static void route_pin(unsigned int pin, int on)
{
	unsigned int pins = ((ioapic_read(IOAPIC_VER) >> 16) & 0xff) + 1;

	if (pin >= pins)
		fail("bench: irq %u beyond the IOAPIC's %u pins", pin, pins);
	ioapic_write(IOAPIC_REDTBL(pin) + 1, lapic_id() << 24);
	ioapic_write(IOAPIC_REDTBL(pin), on ? IRQ_VECTOR : REDTBL_MASKED);
}

void irq_roundtrip_loop(struct virtio_dev *d, uint64_t n)
{
	struct virtq *vq = &d->vq[0];
	struct vbuf b = { irq_buf, IRQ_BYTES, VIRTQ_DESC_F_WRITE };
	uint32_t id, len;

	if (!d->irq)
		fail("bench: virtio device at 0x%lx has no irq", d->base);
	virtio_init(d, VIRTIO_F_VERSION_1, 1);
	idt_init();
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
	route_pin(d->irq, 1);
	vq_chain(vq, 0, &b, 1);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t before = irq_bench_count;

		vq_publish(vq, 0);
		vq_notify(vq);
		/* sti's shadow covers hlt: an interrupt cannot slip between. */
		while (irq_bench_count == before)
			__asm__ volatile("sti; hlt; cli" : : : "memory");
		if (vq_poll(vq, 0, &id, &len))
			fail("bench: interrupt %lu before its used ring entry",
			     i);
		if (id != 0 || !len || len > IRQ_BYTES)
			fail("bench: used entry %u, length %u", id, len);
		vio_write(d, VIRTIO_MMIO_INT_ACK, VIRTIO_INT_USED_RING);
	}
	route_pin(d->irq, 0);
	if (irq_bench_count != n)
		fail("bench: %u interrupts for %lu requests", irq_bench_count,
		     n);
}
