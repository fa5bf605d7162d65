// SPDX-License-Identifier: Apache-2.0
/*
 * ACPI tables, read the way Linux reads them (drivers/acpi/acpica/
 * tbxfroot.c, tbutils.c, tbfadt.c, arch/x86/kernel/acpi/boot.c): the RSDP
 * from boot_params.acpi_rsdp_addr (PVH: hvm_start_info.rsdp_paddr, which
 * pvh.c puts there) or else found on a 16-byte boundary in the first KiB of
 * the EBDA or in 0xe0000-0xfffff; then the XSDT, the FADT and its X_DSDT,
 * and the MADT. Every table must have its signature, a sane length, a zero
 * checksum and lie outside usable RAM (the OS would reuse it otherwise).
 *
 * When there is an RSDP, the MADT's CPUs are the ones smp.c starts and the
 * DSDT's virtio-mmio devices the ones virtio.c probes; the MADT must then
 * describe the same machine as the MP table.
 */
#include "acpi.h"
#include "bootparams.h"
#include "x86.h"

#define RSDP_SIGNATURE		"RSD PTR "
#define RSDP_V1_SIZE		20	/* what the first checksum covers */
#define RSDP_V2_SIZE		36	/* ... and the extended one */
#define RSDP_OEMID		9
#define RSDP_REVISION		15
#define RSDP_RSDT		16	/* u32 */
#define RSDP_LENGTH		20	/* u32 */
#define RSDP_XSDT		24	/* u64 */

#define BDA_EBDA_SEGMENT	0x40e
#define BIOS_AREA_START		0xe0000
#define BIOS_AREA_END		0x100000

/* Header of every table except the RSDP */
#define HDR_LENGTH		4
#define HDR_REVISION		8
#define HDR_OEMID		10
#define HDR_OEM_TABLE_ID	16

#define FADT_DSDT		40	/* u32 */
#define FADT_IAPC_BOOT_ARCH	109	/* u16 */
#define FADT_FLAGS		112	/* u32 */
#define FADT_X_DSDT		140	/* u64 */
#define FADT_X_DSDT_END		148	/* shortest FADT with an X_DSDT */
#define FADT_V6_SIZE		276	/* revision 6 (ACPI 6.0 and later) */
#define FADT_HW_REDUCED		(1u << 20)

#define MADT_LAPIC_ADDR		36	/* u32 */
#define MADT_FLAGS		40	/* u32, bit 0: PCAT_COMPAT (8259s) */
#define MADT_ENTRIES		44
#define MADT_LAPIC		0	/* Processor Local APIC, 8 bytes */
#define MADT_IOAPIC		1	/* 12 bytes */
#define MADT_ISO		2	/* Interrupt Source Override, 10 bytes */
#define MADT_LAPIC_NMI		4	/* 6 bytes */
#define MADT_LAPIC_ENABLED	1
#define MADT_ALL_CPUS		0xff	/* processor uid of an NMI for all */
#define IOAPIC_PINS		24	/* KVM's IOAPIC */

#define IOAPIC_REGSEL		0x00
#define IOAPIC_WINDOW		0x10

static struct acpi_info info;

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return sum;
}

/* Printable copy of a signature or OEM id, for messages. */
static const char *text(const uint8_t *p, unsigned int n, char *buf)
{
	for (unsigned int i = 0; i < n; i++)
		buf[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
	buf[n] = '\0';
	return buf;
}

/* What acpi_tb_validate_rsdp() accepts: signature, both checksums. */
static int rsdp_valid(const uint8_t *p)
{
	if (p[0] != 'R' || memcmp(p, RSDP_SIGNATURE, 8) ||
	    checksum(p, RSDP_V1_SIZE))
		return 0;
	return p[RSDP_REVISION] < 2 || !checksum(p, RSDP_V2_SIZE);
}

static uint64_t rsdp_scan(uint64_t base, uint64_t end)
{
	for (uint64_t a = base; a + RSDP_V2_SIZE <= end; a += 16)
		if (rsdp_valid(phys_ptr(a)))
			return a;
	return 0;
}

/* Linux's acpi_find_root_pointer(): EBDA first, then the BIOS area. */
static uint64_t rsdp_search(void)
{
	const uint8_t *bda = phys_ptr(BDA_EBDA_SEGMENT);
	uint64_t ebda = (uint64_t)le16(bda) << 4, found = 0;

	if (ebda > 0x400 && ebda < 0xa0000)
		found = rsdp_scan(ebda, ebda + KiB);
	return found ? found : rsdp_scan(BIOS_AREA_START, BIOS_AREA_END);
}

/*
 * The RSDP the boot loader gave us, which must be valid, or else the one
 * a scan finds (0: none). A given one must also be the one a scan finds
 * if the scan finds any: two different RSDPs would be a VMM bug.
 */
static uint64_t find_rsdp(const uint8_t *bp)
{
	const char *field = pvh_booted() ? "hvm_start_info.rsdp_paddr"
					 : "boot_params.acpi_rsdp_addr";
	uint64_t given = bp_u64(bp, BP_ACPI_RSDP_ADDR);
	uint64_t found = rsdp_search();

	if (!given) {
		if (found)
			tiny_print("acpi: RSDP at 0x%lx (found by scanning; %s is 0)",
				   found, field);
		else
			tiny_print("acpi: no RSDP (%s is 0, none in the EBDA or 0xe0000-0xfffff)",
				   field);
		return found;
	}
	if (given + RSDP_V2_SIZE > 4 * GiB || !rsdp_valid(phys_ptr(given)))
		fail("acpi: %s 0x%lx: no valid RSDP there", field, given);
	if (found && found != given)
		fail("acpi: %s is 0x%lx, but a scan finds an RSDP at 0x%lx",
		     field, given, found);
	tiny_print("acpi: RSDP at 0x%lx (from %s%s)", given, field,
		   found ? ", the scan finds it too" : "");
	return given;
}

/*
 * The table at addr, checked like acpi_tb_verify_temp_table(): inside our
 * 4 GiB map, signature sig (any if NULL), length, checksum; and reserved
 * in the e820 map. Prints one line per table.
 */
static const uint8_t *table_at(uint64_t addr, const char *sig)
{
	char s[5], oem[7], id[9];
	const uint8_t *t;
	uint32_t len;

	if (!addr || addr + ACPI_HDR_SIZE > 4 * GiB)
		fail("acpi: %s address 0x%lx is not in our 4 GiB map",
		     sig ? sig : "table", addr);
	t = phys_ptr(addr);
	text(t, 4, s);
	if (sig && memcmp(t, sig, 4))
		fail("acpi: table at 0x%lx is \"%s\", want %s", addr, s, sig);
	len = le32(t + HDR_LENGTH);
	if (len < ACPI_HDR_SIZE || addr + len > 4 * GiB)
		fail("acpi: %s at 0x%lx: bad length %u", s, addr, len);
	if (checksum(t, len))
		fail("acpi: %s at 0x%lx: bad checksum (%u bytes sum to 0x%02x)",
		     s, addr, len, checksum(t, len));
	if (e820_overlaps_usable(addr, len))
		fail("acpi: %s at 0x%lx (%u bytes) is in usable e820 RAM", s,
		     addr, len);
	tiny_print("acpi: %s at 0x%lx, %u bytes, revision %u, OEM \"%s\" \"%s\"",
		   s, addr, len, t[HDR_REVISION], text(t + HDR_OEMID, 6, oem),
		   text(t + HDR_OEM_TABLE_ID, 8, id));
	return t;
}

/* RSDP fields; returns the XSDT address. We need revision 2 (XSDT). */
static uint64_t check_rsdp(uint64_t addr)
{
	const uint8_t *r = phys_ptr(addr);
	char oem[7];
	uint32_t len = le32(r + RSDP_LENGTH);
	uint64_t xsdt = le64(r + RSDP_XSDT);

	tiny_print("acpi: RSDP revision %u, OEM \"%s\", length %u, RSDT 0x%x, XSDT 0x%lx",
		   r[RSDP_REVISION], text(r + RSDP_OEMID, 6, oem), len,
		   le32(r + RSDP_RSDT), xsdt);
	if (r[RSDP_REVISION] < 2)
		fail("acpi: RSDP revision %u has no XSDT, want 2",
		     r[RSDP_REVISION]);
	if (len < RSDP_V2_SIZE)
		fail("acpi: RSDP length %u < %u", len, RSDP_V2_SIZE);
	if (!xsdt)
		fail("acpi: RSDP has no XSDT address");
	if (e820_overlaps_usable(addr, len))
		fail("acpi: RSDP at 0x%lx is in usable e820 RAM", addr);
	if (le32(r + RSDP_RSDT))	/* optional; if there, it must be valid */
		table_at(le32(r + RSDP_RSDT), "RSDT");
	return xsdt;
}

/* The XSDT's FADT and MADT; FAIL if either is missing or twice there. */
static void walk_xsdt(uint64_t addr, const uint8_t **fadt,
		      const uint8_t **madt)
{
	const uint8_t *x = table_at(addr, "XSDT");
	uint32_t len = le32(x + HDR_LENGTH);

	if ((len - ACPI_HDR_SIZE) % 8)
		fail("acpi: XSDT length %u is not a header plus 8-byte entries",
		     len);
	*fadt = *madt = NULL;
	for (uint32_t off = ACPI_HDR_SIZE; off < len; off += 8) {
		const uint8_t *t = table_at(le64(x + off), NULL);
		const uint8_t **slot = !memcmp(t, "FACP", 4) ? fadt :
				       !memcmp(t, "APIC", 4) ? madt : NULL;

		if (slot && *slot)
			fail("acpi: XSDT lists two %.*s tables", 4,
			     (const char *)t);
		if (slot)
			*slot = t;
	}
	if (!*fadt || !*madt)
		fail("acpi: XSDT has no %s", !*fadt ? "FADT (FACP)"
						    : "MADT (APIC)");
}

/* FADT checks; returns the DSDT address (X_DSDT). */
static uint64_t check_fadt(const uint8_t *f)
{
	uint32_t len = le32(f + HDR_LENGTH), flags;
	uint64_t dsdt, x_dsdt;

	if (len < FADT_X_DSDT_END)
		fail("acpi: FADT of %u bytes has no X_DSDT", len);
	if (f[HDR_REVISION] >= 6 && len < FADT_V6_SIZE)
		fail("acpi: FADT revision %u but only %u bytes, want %u",
		     f[HDR_REVISION], len, FADT_V6_SIZE);
	flags = le32(f + FADT_FLAGS);
	dsdt = le32(f + FADT_DSDT);
	x_dsdt = le64(f + FADT_X_DSDT);
	tiny_print("acpi: FADT: flags 0x%x, IAPC_BOOT_ARCH 0x%x, DSDT 0x%lx, X_DSDT 0x%lx",
		   flags, le16(f + FADT_IAPC_BOOT_ARCH), dsdt, x_dsdt);
	/* Without it Linux expects PM1 registers, a PM timer and an SCI. */
	if (!(flags & FADT_HW_REDUCED))
		fail("acpi: FADT is not hardware-reduced (flags 0x%x)", flags);
	if (!x_dsdt)
		fail("acpi: FADT has no X_DSDT");
	if (dsdt && dsdt != x_dsdt)	/* Linux warns and takes X_DSDT */
		fail("acpi: FADT DSDT 0x%lx != X_DSDT 0x%lx", dsdt, x_dsdt);
	return x_dsdt;
}

/* FAIL unless the MADT structure at e has at least len bytes. */
static void need(const uint8_t *e, unsigned int len, const char *what)
{
	if (e[1] < len)
		fail("acpi: MADT: %s structure of %u bytes, want %u", what,
		     e[1], len);
}

static void madt_lapic(const uint8_t *e, struct mp_cpus *c, uint8_t *uids)
{
	need(e, 8, "local APIC");
	if (!(le32(e + 4) & MADT_LAPIC_ENABLED))
		return;		/* Linux counts it as a disabled CPU */
	if (c->count == MAX_CPUS)
		fail("acpi: MADT: more than %u enabled cpus", MAX_CPUS);
	for (unsigned int i = 0; i < c->count; i++)
		if (uids[i] == e[2] || c->apic_id[i] == e[3])
			fail("acpi: MADT: cpu uid %u / apic id %u listed twice",
			     e[2], e[3]);
	uids[c->count] = e[2];
	c->apic_id[c->count++] = e[3];
}

static void madt_ioapic(const uint8_t *e, struct mp_cpus *c)
{
	need(e, 12, "IOAPIC");
	if (c->nioapics++)
		return;
	c->ioapic_id = e[2];
	c->ioapic_addr = le32(e + 4);
	if (le32(e + 8))
		fail("acpi: MADT: the IOAPIC starts at GSI %u, want 0",
		     le32(e + 8));
}

/* ISA IRQ source -> GSI; microvm's devices use no other bus. */
static void madt_override(const uint8_t *e, struct mp_cpus *c)
{
	uint32_t gsi;

	need(e, 10, "interrupt source override");
	gsi = le32(e + 4);
	if (e[2] != 0 || e[3] >= ISA_IRQS || gsi >= IOAPIC_PINS)
		fail("acpi: MADT: override bus %u irq %u -> GSI %u", e[2],
		     e[3], gsi);
	if (c->isa_pin[e[3]] != ACPI_NO_PIN)
		fail("acpi: MADT: two overrides for ISA IRQ %u", e[3]);
	c->isa_pin[e[3]] = (uint8_t)gsi;
}

static void madt_nmi(const uint8_t *e, struct mp_cpus *c, uint8_t *nmi_uid)
{
	need(e, 6, "local APIC NMI");
	if (e[5] > 1)
		fail("acpi: MADT: NMI on LINT%u", e[5]);
	c->nmi_lint = e[5];
	*nmi_uid = e[2];
}

/* The MADT as a struct mp_cpus; bsp is the entry of our own APIC id. */
static void parse_madt(const uint8_t *m, struct mp_cpus *c)
{
	uint32_t len = le32(m + HDR_LENGTH);
	uint8_t uids[MAX_CPUS], nmi_uid = 0;
	unsigned int overrides = 0;
	char ids[MAX_CPUS * 4 + 1], *p = ids;

	if (len < MADT_ENTRIES)
		fail("acpi: MADT of %u bytes", len);
	memset(c, 0, sizeof(*c));
	memset(c->isa_pin, ACPI_NO_PIN, sizeof(c->isa_pin));
	c->nmi_lint = ACPI_NO_PIN;
	c->bsp = -1;
	c->lapic_addr = le32(m + MADT_LAPIC_ADDR);
	for (uint32_t off = MADT_ENTRIES; off < len; off += m[off + 1]) {
		const uint8_t *e = m + off;

		if (off + 2 > len || e[1] < 2 || off + e[1] > len)
			fail("acpi: MADT: structure at offset %u overruns the table",
			     off);
		switch (e[0]) {
		case MADT_LAPIC:
			madt_lapic(e, c, uids);
			break;
		case MADT_IOAPIC:
			madt_ioapic(e, c);
			break;
		case MADT_ISO:
			madt_override(e, c);
			overrides++;
			break;
		case MADT_LAPIC_NMI:
			madt_nmi(e, c, &nmi_uid);
			break;
		}	/* others (x2APIC, ...) are not microvm's */
	}
	for (unsigned int i = 0; i < c->count; i++) {
		p = append_num(p, c->apic_id[i]);
		if (c->apic_id[i] == lapic_id())
			c->bsp = (int)i;
	}
	*p = '\0';
	tiny_print("acpi: MADT: local APIC 0x%x, flags 0x%x, %u cpus, apic ids%s; IOAPIC %u at 0x%x; %u overrides; NMI on LINT%u",
		   c->lapic_addr, le32(m + MADT_FLAGS), c->count, ids,
		   c->ioapic_id, c->ioapic_addr, overrides, c->nmi_lint);
	if (!c->count || c->bsp < 0)
		fail("acpi: MADT does not list our apic id %u", lapic_id());
	if (c->nioapics != 1)
		fail("acpi: MADT lists %u IOAPICs, want 1", c->nioapics);
	if (c->nmi_lint != ACPI_NO_PIN && nmi_uid != MADT_ALL_CPUS)
		fail("acpi: MADT: NMI for cpu uid %u only", nmi_uid);
	/* Without an override, ISA IRQ n is GSI n (ACPI 6.5, 5.2.12.5). */
	for (unsigned int irq = 0; irq < ISA_IRQS; irq++)
		if (c->isa_pin[irq] == ACPI_NO_PIN)
			c->isa_pin[irq] = (uint8_t)irq;
}

/* The IOAPIC's own ID register (bits 27:24 of register 0). */
static unsigned int ioapic_hw_id(uint32_t addr)
{
	mmio_write32(addr + IOAPIC_REGSEL, 0);
	return mmio_read32(addr + IOAPIC_WINDOW) >> 24 & 0xf;
}

void acpi_check_mptable(const struct acpi_info *ai, const struct mp_cpus *mp)
{
	const struct mp_cpus *c = &ai->cpus;

	if (c->count != mp->count)
		fail("acpi: MADT lists %u cpus, the MP table %u", c->count,
		     mp->count);
	for (unsigned int i = 0; i < c->count; i++)
		if (c->apic_id[i] != mp->apic_id[i])
			fail("acpi: cpu %u: MADT apic id %u, MP table %u", i,
			     c->apic_id[i], mp->apic_id[i]);
	if (c->apic_id[c->bsp] != mp->apic_id[mp->bsp])
		fail("acpi: boot cpu: MADT apic id %u, MP table %u",
		     c->apic_id[c->bsp], mp->apic_id[mp->bsp]);
	if (c->lapic_addr != mp->lapic_addr)
		fail("acpi: local APIC at 0x%x in the MADT, 0x%x in the MP table",
		     c->lapic_addr, mp->lapic_addr);
	if (mp->nioapics != 1 || c->ioapic_addr != mp->ioapic_addr)
		fail("acpi: IOAPIC at 0x%x in the MADT, MP table: %u at 0x%x",
		     c->ioapic_addr, mp->nioapics, mp->ioapic_addr);
	for (unsigned int irq = 0; irq < ISA_IRQS; irq++)
		if (mp->isa_pin[irq] != ACPI_NO_PIN &&
		    mp->isa_pin[irq] != c->isa_pin[irq])
			fail("acpi: ISA IRQ %u: GSI %u in the MADT, pin %u in the MP table",
			     irq, c->isa_pin[irq], mp->isa_pin[irq]);
	if (mp->nmi_lint != c->nmi_lint)
		fail("acpi: NMI on LINT%u in the MADT, LINT%u in the MP table",
		     c->nmi_lint, mp->nmi_lint);
	/*
	 * IOAPIC ids only name the IOAPIC to the OS (64-bit Linux never
	 * reprograms it), so a difference is reported, not failed.
	 */
	tiny_print("acpi: MADT agrees with the MP table (IOAPIC id %u in the MADT, %u in the MP table, %u in its ID register)",
		   c->ioapic_id, mp->ioapic_id, ioapic_hw_id(c->ioapic_addr));
}

const struct acpi_info *acpi_scan(const uint8_t *boot_params)
{
	const uint8_t *fadt, *madt, *dsdt;
	uint64_t want;

	info.rsdp = find_rsdp(boot_params);
	if (!info.rsdp)
		return NULL;
	walk_xsdt(check_rsdp(info.rsdp), &fadt, &madt);
	parse_madt(madt, &info.cpus);
	if (cmdline_param_u64("cpus", &want) && want != info.cpus.count)
		fail("acpi: MADT lists %u cpus, tiny.cpus=%lu", info.cpus.count,
		     want);
	dsdt = table_at(check_fadt(fadt), "DSDT");
	dsdt_scan(dsdt + ACPI_HDR_SIZE, le32(dsdt + HDR_LENGTH) - ACPI_HDR_SIZE,
		  &info.dsdt);
	return &info;
}
