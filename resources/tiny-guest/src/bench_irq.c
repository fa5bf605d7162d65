// SPDX-License-Identifier: Apache-2.0
/*
 * The irqfd-roundtrip bench loop (tiny.bench=irqfd-roundtrip:<N>): the
 * first place where the tiny guest took interrupts (helpers: irq.c).
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
#include "irq.h"
#include "virtio.h"

#define IRQ_VECTOR		0x40
#define IRQ_BYTES		16

static uint8_t irq_buf[IRQ_BYTES] __attribute__((aligned(64)));

/* Bumped by irq_count_stub; read with interrupts off or after "memory". */
volatile uint32_t irq_bench_count;

extern const char irq_count_stub[];

/* The measured handler; only RAX is used (iretq restores RFLAGS). */
__asm__(
	"	.text\n"
	"	.globl	irq_count_stub\n"
	"irq_count_stub:\n"
	"	pushq	%rax\n"
	"	incl	irq_bench_count(%rip)\n"
	"	movl	$0xfee000b0, %eax\n"	/* LAPIC EOI */
	"	movl	$0, (%rax)\n"
	"	popq	%rax\n"
	"	iretq\n");

void irq_roundtrip_loop(struct virtio_dev *d, uint64_t n)
{
	struct virtq *vq = &d->vq[0];
	struct vbuf b = { irq_buf, IRQ_BYTES, VIRTQ_DESC_F_WRITE };
	uint32_t id, len;

	if (!d->irq)
		fail("bench: virtio device at 0x%lx has no irq", d->base);
	virtio_init(d, VIRTIO_F_VERSION_1, 1);
	idt_init();
	idt_set_gate(IRQ_VECTOR, irq_count_stub);
	idt_load();
	irq_cpu_init();
	ioapic_route_physical(d->irq, IRQ_VECTOR, lapic_id());
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
	ioapic_mask(d->irq);
	if (irq_bench_count != n)
		fail("bench: %u interrupts for %lu requests", irq_bench_count,
		     n);
}
