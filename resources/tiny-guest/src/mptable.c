// SPDX-License-Identifier: Apache-2.0
/*
 * Intel MultiProcessor Specification 1.4 table: find the floating pointer
 * the way Linux does (16-byte steps in EBDA, last KiB of base memory and
 * the BIOS ROM area), validate the checksums and collect the processors.
 */
#include "tiny.h"

#define MPF_SIGNATURE	"_MP_"
#define MPC_SIGNATURE	"PCMP"
#define MPF_SIZE	16	/* floating pointer, in bytes (length == 1) */

/* Offsets in the floating pointer structure */
#define MPF_PHYSPTR	4	/* u32: config table address */
#define MPF_LENGTH	8	/* u8: in 16-byte units */
#define MPF_SPEC	9	/* u8: 1 or 4 */
#define MPF_FEATURE1	11	/* u8: nonzero = default configuration */

/* Offsets in the configuration table header */
#define MPC_LENGTH	4	/* u16: base table length */
#define MPC_SPEC	6	/* u8 */
#define MPC_COUNT	34	/* u16: number of entries */
#define MPC_LAPIC	36	/* u32: local APIC address */
#define MPC_EXT_LENGTH	40	/* u16 */
#define MPC_EXT_CSUM	42	/* u8 */
#define MPC_HEADER_SIZE	44

/* Entry types and sizes */
#define MP_PROCESSOR	0
#define MP_BUS		1
#define MP_IOAPIC	2
#define MP_INTSRC	3
#define MP_LINTSRC	4
#define MP_PROCESSOR_SIZE 20
#define MP_OTHER_SIZE	8
#define MP_PROC_APICID	1
#define MP_PROC_FLAGS	3
#define CPU_ENABLED	0x01
#define CPU_BOOTPROCESSOR 0x02
#define MP_BUS_TYPE	2	/* 6 chars, "ISA   " */
#define MP_IOAPIC_ID	1
#define MP_IOAPIC_FLAGS	3	/* bit 0: usable */
#define MP_IOAPIC_ADDR	4
#define MP_INT_TYPE	1	/* intsrc/lintsrc: 0 INT, 1 NMI, 3 ExtINT */
#define MP_INT_BUS	4
#define MP_INT_BUSIRQ	5
#define MP_INT_DSTPIN	7	/* IOAPIC pin, or LINT of a lintsrc */
#define MP_INT		0
#define MP_NMI		1

/* BIOS data area fields pointing at the EBDA / end of base memory */
#define BDA_EBDA_SEGMENT 0x40e	/* u16, real-mode segment */
#define BDA_BASE_MEM_KIB 0x413	/* u16 */

static uint16_t rd16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return sum;
}

static const uint8_t *scan(uint64_t base, uint64_t len)
{
	for (uint64_t a = base; a + MPF_SIZE <= base + len; a += 16) {
		const uint8_t *p = (const uint8_t *)a;

		if (!memcmp(p, MPF_SIGNATURE, 4) && p[MPF_LENGTH] == 1 &&
		    (p[MPF_SPEC] == 1 || p[MPF_SPEC] == 4) &&
		    !checksum(p, MPF_SIZE))
			return p;
	}
	return NULL;
}

static const uint8_t *find_mpf(void)
{
	uint64_t ebda = (uint64_t)rd16(phys_ptr(BDA_EBDA_SEGMENT)) << 4;
	uint64_t base_end = rd16(phys_ptr(BDA_BASE_MEM_KIB)) * KiB;
	const uint8_t *p = NULL;

	/* Garbage in the BDA (no BIOS) is tolerated: only sane values. */
	if (ebda >= 0x80000 && ebda < 0xa0000)
		p = scan(ebda, KiB);
	if (!p && base_end >= 0x80000 && base_end <= 0xa0000)
		p = scan(base_end - KiB, KiB);
	if (!p)
		p = scan(0x9fc00, KiB);		/* 639 KiB, like Linux */
	if (!p)
		p = scan(0xf0000, 0x10000);	/* BIOS ROM area */
	return p;
}

/*
 * Interrupt wiring: the IOAPIC, which pin each ISA IRQ goes to and which
 * LINT carries NMIs, for the comparison with the ACPI MADT.
 */
static void note_wiring(const uint8_t *e, struct mp_cpus *cpus, int *isa_bus)
{
	switch (e[0]) {
	case MP_BUS:
		if (!memcmp(e + MP_BUS_TYPE, "ISA   ", 6))
			*isa_bus = e[1];
		break;
	case MP_IOAPIC:
		if (!(e[MP_IOAPIC_FLAGS] & 1))
			break;
		if (!cpus->nioapics++) {
			cpus->ioapic_id = e[MP_IOAPIC_ID];
			cpus->ioapic_addr = rd32(e + MP_IOAPIC_ADDR);
		}
		break;
	case MP_INTSRC:
		if (e[MP_INT_TYPE] == MP_INT && e[MP_INT_BUS] == *isa_bus &&
		    e[MP_INT_BUSIRQ] < ISA_IRQS)
			cpus->isa_pin[e[MP_INT_BUSIRQ]] = e[MP_INT_DSTPIN];
		break;
	case MP_LINTSRC:
		if (e[MP_INT_TYPE] == MP_NMI)
			cpus->nmi_lint = e[MP_INT_DSTPIN];
		break;
	}
}

void mptable_scan(struct mp_cpus *cpus)
{
	const uint8_t *mpf = find_mpf(), *mpc, *e, *end;
	char ids[MAX_CPUS * 4 + 1], *p = ids;
	uint64_t want;
	unsigned int len, count;
	int isa_bus = -1;

	if (!mpf)
		fail("mptable: no MP floating pointer found");
	if (mpf[MPF_FEATURE1])
		fail("mptable: default configuration %u not supported",
		     mpf[MPF_FEATURE1]);
	mpc = (const uint8_t *)(uint64_t)rd32(mpf + MPF_PHYSPTR);
	if (!mpc || memcmp(mpc, MPC_SIGNATURE, 4))
		fail("mptable: no \"PCMP\" config table at 0x%lx",
		     (uint64_t)mpc);
	len = rd16(mpc + MPC_LENGTH);
	if (len < MPC_HEADER_SIZE || checksum(mpc, len))
		fail("mptable: bad config table checksum or length %u", len);
	if (rd16(mpc + MPC_EXT_LENGTH) &&
	    (uint8_t)(checksum(mpc + len, rd16(mpc + MPC_EXT_LENGTH)) +
		      mpc[MPC_EXT_CSUM]))
		fail("mptable: bad extended table checksum");
	count = rd16(mpc + MPC_COUNT);
	tiny_print("mptable: at 0x%lx, config table at 0x%lx, %u entries",
		   (uint64_t)mpf, (uint64_t)mpc, count);

	memset(cpus, 0, sizeof(*cpus));
	memset(cpus->isa_pin, 0xff, sizeof(cpus->isa_pin));
	cpus->nmi_lint = 0xff;
	cpus->bsp = -1;
	cpus->lapic_addr = rd32(mpc + MPC_LAPIC);
	end = mpc + len;
	e = mpc + MPC_HEADER_SIZE;
	for (unsigned int i = 0; i < count; i++) {
		unsigned int size = e[0] == MP_PROCESSOR ? MP_PROCESSOR_SIZE
							 : MP_OTHER_SIZE;

		if (e[0] > MP_LINTSRC)
			fail("mptable: unknown entry type %u", e[0]);
		if (e + size > end)
			fail("mptable: entries overrun the table");
		if (e[0] == MP_PROCESSOR && (e[MP_PROC_FLAGS] & CPU_ENABLED)) {
			if (cpus->count == MAX_CPUS)
				fail("mptable: more than %u cpus", MAX_CPUS);
			if (e[MP_PROC_FLAGS] & CPU_BOOTPROCESSOR)
				cpus->bsp = cpus->count;
			cpus->apic_id[cpus->count++] = e[MP_PROC_APICID];
			p = append_num(p, e[MP_PROC_APICID]);
		}
		note_wiring(e, cpus, &isa_bus);
		e += size;
	}
	*p = '\0';
	tiny_print("mptable: %u cpus, apic ids%s", cpus->count, ids);
	if (cpus->bsp < 0)
		fail("mptable: no processor flagged as BSP");
	if (cmdline_param_u64("cpus", &want) && want != cpus->count)
		fail("mptable: %u cpus listed, tiny.cpus=%lu", cpus->count,
		     want);
}
