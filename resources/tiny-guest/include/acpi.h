/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the tiny guest reads from the ACPI tables (ACPI 6.5): RSDP -> XSDT
 * -> MADT (CPUs, IOAPIC, overrides, NMI) and FADT -> DSDT (virtio-mmio
 * devices, COM1, i8042, \_S5_). The DSDT is scanned byte by byte for the
 * few objects microvm writes, without an AML interpreter.
 */
#ifndef TINY_ACPI_H
#define TINY_ACPI_H

#include "tiny.h"

#define ACPI_MAX_MMIO		19	/* as many as VIRTIO_MAX_DEVICES */
#define ACPI_HDR_SIZE		36	/* struct acpi_table_header */
#define ACPI_NO_PIN		0xff	/* isa_pin[]/nmi_lint: not described */

/* A virtio-mmio device of the DSDT ("LNRO0005"). */
struct acpi_mmio {
	uint64_t base, size;
	unsigned int irq;	/* GSI = IOAPIC pin */
};

/* What the DSDT scan found besides the virtio-mmio devices. */
struct acpi_dsdt {
	unsigned int nmmio;
	struct acpi_mmio mmio[ACPI_MAX_MMIO];
	int com1, i8042, s5;	/* found (with the expected resources) */
};

struct acpi_info {
	uint64_t rsdp;
	struct mp_cpus cpus;	/* enabled local APICs; bsp = our own */
	struct acpi_dsdt dsdt;
};

/* acpi.c: NULL when there is no RSDP anywhere (FAILs on broken tables). */
const struct acpi_info *acpi_scan(const uint8_t *boot_params);
/* FAIL unless the MADT and the MP table describe the same machine. */
void acpi_check_mptable(const struct acpi_info *ai, const struct mp_cpus *mp);

/* acpi_dsdt.c: scan the AML body (after the header) of the DSDT. */
void dsdt_scan(const uint8_t *aml, uint32_t len, struct acpi_dsdt *out);

/* Little-endian loads from firmware tables (any alignment). */
static inline uint16_t le16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static inline uint32_t le32(const uint8_t *p)
{
	return le16(p) | (uint32_t)le16(p + 2) << 16;
}

static inline uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

#endif
