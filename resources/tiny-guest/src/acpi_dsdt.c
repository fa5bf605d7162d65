// SPDX-License-Identifier: Apache-2.0
/*
 * The DSDT's devices, found by a byte-level scan of the AML rather than an
 * interpreter: every Device op (ExtOpPrefix 0x5b, DeviceOp 0x82, PkgLength,
 * NameString) and, inside its extent, the Name objects _HID (a string or an
 * EISA id), _UID (an integer) and _CRS (a resource template buffer). That
 * is all microvm writes, and all Linux needs to bind virtio_mmio
 * ("LNRO0005"), the 8250 ("PNP0501") and the i8042 ("PNP0303"). Encodings:
 * ACPI 6.5 chapter 20 (AML) and 6.4 (resource descriptors).
 */
#include "acpi.h"

#define AML_ZERO_OP		0x00
#define AML_ONE_OP		0x01
#define AML_ONES_OP		0xff
#define AML_NAME_OP		0x08
#define AML_BYTE_PREFIX		0x0a
#define AML_WORD_PREFIX		0x0b
#define AML_DWORD_PREFIX	0x0c
#define AML_STRING_PREFIX	0x0d
#define AML_QWORD_PREFIX	0x0e
#define AML_BUFFER_OP		0x11
#define AML_PACKAGE_OP		0x12
#define AML_EXT_OP_PREFIX	0x5b
#define AML_DEVICE_OP		0x82	/* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR		0x5c	/* '\' */
#define AML_PARENT_CHAR		0x5e	/* '^' */
#define AML_DUAL_NAME		0x2e
#define AML_MULTI_NAME		0x2f

/* Resource descriptors: small ones by type (bits 6:3), large by tag. */
#define RES_SMALL_IRQ		0x04
#define RES_SMALL_IO		0x08
#define RES_SMALL_END		0x0f
#define RES_MEM32_FIXED		0x86
#define RES_EXT_IRQ		0x89
#define EXT_IRQ_CONSUMER	0x01	/* Extended Interrupt flags */
#define EXT_IRQ_EDGE		0x02
#define EXT_IRQ_ACTIVE_LOW	0x04

#define VIRTIO_MMIO_HID		"LNRO0005"
#define COM1_HID		"PNP0501"
#define I8042_HID		"PNP0303"
#define MMIO_MIN_SIZE		0x200	/* registers + some config space */

/* One Device of the DSDT, as far as we read it. */
struct aml_device {
	char name[5];
	char hid[9];		/* "" if it has none */
	int has_uid;
	uint64_t uid;
	const uint8_t *crs;	/* resource template, NULL if none */
	uint32_t crs_len;
};

/* The resources of one _CRS that microvm uses. */
struct crs {
	unsigned int nmem, nio, nirq;
	uint32_t mem_base, mem_len;
	uint8_t mem_rw;
	uint16_t io_base[2];
	uint8_t io_len[2];
	uint32_t irq;
	uint8_t irq_flags;	/* as Extended Interrupt flags */
};

/* PkgLength at p: its encoded size (1-4 bytes), 0 if it overruns end. */
static unsigned int pkg_length(const uint8_t *p, const uint8_t *end,
			       uint32_t *len)
{
	unsigned int n = (p[0] >> 6) + 1;

	if (p + n > end)
		return 0;
	if (n == 1) {
		*len = p[0] & 0x3f;
		return 1;
	}
	*len = p[0] & 0x0f;
	for (unsigned int i = 1; i < n; i++)
		*len |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	return n;
}

/* ComputationalData integer at p: bytes used, 0 if it is none. */
static unsigned int aml_integer(const uint8_t *p, const uint8_t *end,
				uint64_t *v)
{
	static const uint8_t size[] = {
		[AML_BYTE_PREFIX] = 1, [AML_WORD_PREFIX] = 2,
		[AML_DWORD_PREFIX] = 4, [AML_QWORD_PREFIX] = 8,
	};
	unsigned int n;

	if (p >= end)
		return 0;
	if (p[0] == AML_ZERO_OP || p[0] == AML_ONE_OP || p[0] == AML_ONES_OP) {
		*v = p[0] == AML_ONES_OP ? ~0ULL : p[0];
		return 1;
	}
	if (p[0] >= ARRAY_SIZE(size) || !size[p[0]])
		return 0;
	n = size[p[0]];
	if (p + 1 + n > end)
		return 0;
	*v = 0;
	for (unsigned int i = n; i; i--)
		*v = *v << 8 | p[i];
	return 1 + n;
}

/* Last NameSeg of the NameString at p: bytes used, 0 if it is none. */
static unsigned int name_string(const uint8_t *p, const uint8_t *end,
				char out[5])
{
	const uint8_t *s = p;
	unsigned int segs = 1;

	while (s < end && (*s == AML_ROOT_CHAR || *s == AML_PARENT_CHAR))
		s++;
	if (s < end && *s == AML_DUAL_NAME) {
		segs = 2;
		s++;
	} else if (s + 1 < end && *s == AML_MULTI_NAME) {
		segs = s[1];
		s += 2;
	}
	if (!segs || s + 4 * segs > end)
		return 0;
	s += 4 * (segs - 1);
	for (unsigned int i = 0; i < 4; i++) {
		if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (i && s[i] >= '0' && s[i] <= '9')))
			return 0;
		out[i] = (char)s[i];
	}
	out[4] = '\0';
	return (unsigned int)(s + 4 - p);
}

/* A compressed EISA id ("PNP0501" is 0x41 0xd0 0x05 0x01) as text. */
static void eisa_id(const uint8_t *b, char out[9])
{
	static const char hex[] = "0123456789ABCDEF";

	out[0] = (char)('@' + ((b[0] >> 2) & 0x1f));
	out[1] = (char)('@' + (((b[0] & 3) << 3) | b[1] >> 5));
	out[2] = (char)('@' + (b[1] & 0x1f));
	out[3] = hex[b[2] >> 4];
	out[4] = hex[b[2] & 15];
	out[5] = hex[b[3] >> 4];
	out[6] = hex[b[3] & 15];
	out[7] = '\0';
}

/* _HID's value at p: a string of up to 8 characters or an EISA id. */
static void read_hid(const uint8_t *p, const uint8_t *end, struct aml_device *d)
{
	if (p + 5 <= end && p[0] == AML_DWORD_PREFIX) {
		eisa_id(p + 1, d->hid);
		return;
	}
	if (p < end && p[0] == AML_STRING_PREFIX) {
		unsigned int n = 0;

		for (p++; p < end && *p && n < 8; p++)
			d->hid[n++] = (char)*p;
		d->hid[n] = '\0';
		if (p < end && !*p)
			return;
	}
	fail("acpi: DSDT %s: _HID is neither a string nor an EISA id",
	     d->name);
}

/* _CRS's value at p: Buffer op, PkgLength, size, the template. */
static void read_crs(const uint8_t *p, const uint8_t *end, struct aml_device *d)
{
	const uint8_t *pkg_end;
	uint32_t len;
	uint64_t size;
	unsigned int n, m;

	if (p >= end || p[0] != AML_BUFFER_OP)
		fail("acpi: DSDT %s: _CRS is not a buffer", d->name);
	n = pkg_length(p + 1, end, &len);
	pkg_end = p + 1 + len;
	if (!n || pkg_end > end)
		fail("acpi: DSDT %s: _CRS buffer overruns its device", d->name);
	m = aml_integer(p + 1 + n, pkg_end, &size);
	if (!m || p + 1 + n + m + size != pkg_end)
		fail("acpi: DSDT %s: _CRS buffer size does not match its PkgLength",
		     d->name);
	d->crs = p + 1 + n + m;
	d->crs_len = (uint32_t)size;
}

/*
 * The Device whose op is at p: its name and the _HID, _UID and _CRS Name
 * objects inside its extent. Returns the end of the extent, or NULL if
 * these bytes only look like a Device op.
 */
static const uint8_t *read_device(const uint8_t *p, const uint8_t *end,
				  struct aml_device *d)
{
	const uint8_t *body, *dev_end;
	uint32_t len;
	unsigned int n = pkg_length(p + 2, end, &len), m;

	if (!n || p + 2 + len > end)
		return NULL;
	dev_end = p + 2 + len;
	m = name_string(p + 2 + n, dev_end, d->name);
	if (!m)
		return NULL;
	body = p + 2 + n + m;
	d->hid[0] = '\0';
	d->has_uid = 0;
	d->crs = NULL;
	for (const uint8_t *q = body; q + 5 < dev_end; q++) {
		if (q[0] != AML_NAME_OP)
			continue;
		if (!memcmp(q + 1, "_HID", 4))
			read_hid(q + 5, dev_end, d);
		else if (!memcmp(q + 1, "_UID", 4))
			d->has_uid = aml_integer(q + 5, dev_end, &d->uid) > 0;
		else if (!memcmp(q + 1, "_CRS", 4))
			read_crs(q + 5, dev_end, d);
	}
	return dev_end;
}

static void crs_irq(struct crs *r, uint32_t irq, uint8_t flags)
{
	r->nirq++;
	r->irq = irq;
	r->irq_flags = flags;
}

/* One descriptor at p of size bytes (the end tag is handled outside). */
static void crs_item(const uint8_t *p, unsigned int size, struct crs *r)
{
	unsigned int small = p[0] & 0x80 ? 0 : (p[0] >> 3) & 0x0f;

	if (p[0] == RES_MEM32_FIXED && size == 12) {
		r->nmem++;
		r->mem_rw = p[3];
		r->mem_base = le32(p + 4);
		r->mem_len = le32(p + 8);
	} else if (p[0] == RES_EXT_IRQ && size >= 9 && p[4] == 1) {
		crs_irq(r, le32(p + 5), p[3]);
	} else if (small == RES_SMALL_IO && size == 8) {
		if (r->nio < 2) {
			r->io_base[r->nio] = le16(p + 2);
			r->io_len[r->nio] = p[7];
		}
		r->nio++;
	} else if (small == RES_SMALL_IRQ && size >= 3 && le16(p + 1)) {
		/* IRQ descriptor: mask; info byte bit 0 edge, bit 3 low. */
		unsigned int irq = 0, info = size > 3 ? p[3] : 1;

		while (!(le16(p + 1) & 1u << irq))
			irq++;
		crs_irq(r, irq, EXT_IRQ_CONSUMER | (info & 1 ? EXT_IRQ_EDGE : 0) |
				(info & 8 ? EXT_IRQ_ACTIVE_LOW : 0));
	}
}

/* Walk a resource template up to its end tag (whose checksum must hold). */
static void parse_crs(const struct aml_device *d, struct crs *r)
{
	const uint8_t *p = d->crs, *end = d->crs + d->crs_len;

	memset(r, 0, sizeof(*r));
	if (!p)
		fail("acpi: DSDT %s (%s): no _CRS", d->name, d->hid);
	while (p < end) {
		unsigned int size = p[0] & 0x80 ? (p + 3 <= end ? 3u + le16(p + 1) : 0u)
						: 1u + (p[0] & 7);

		if (!size || p + size > end)
			fail("acpi: DSDT %s: _CRS descriptor 0x%02x at +%u overruns it",
			     d->name, p[0], (unsigned int)(p - d->crs));
		if (!(p[0] & 0x80) && (p[0] >> 3) == RES_SMALL_END) {
			uint8_t sum = 0;

			for (const uint8_t *q = d->crs; q < p + size; q++)
				sum += *q;
			if (size != 2 || (p[1] && sum))
				fail("acpi: DSDT %s: bad _CRS end tag", d->name);
			return;
		}
		crs_item(p, size, r);
		p += size;
	}
	fail("acpi: DSDT %s: _CRS has no end tag", d->name);
}

static const char *irq_mode(uint8_t flags)
{
	return flags & EXT_IRQ_EDGE
		? (flags & EXT_IRQ_ACTIVE_LOW ? "edge, active low" : "edge, active high")
		: (flags & EXT_IRQ_ACTIVE_LOW ? "level, active low" : "level, active high");
}

/* A virtio-mmio device: one window, one interrupt, _UID = its position. */
static void add_mmio(const struct aml_device *d, struct acpi_dsdt *out)
{
	unsigned int i = out->nmmio;
	struct crs r;

	parse_crs(d, &r);
	if (r.nmem != 1 || r.nirq != 1 || r.nio)
		fail("acpi: DSDT %s: %u windows, %u interrupts, %u port ranges; want 1, 1, 0",
		     d->name, r.nmem, r.nirq, r.nio);
	if (!d->has_uid || d->uid != i)
		fail("acpi: DSDT %s: virtio-mmio device %u has _UID %ld", d->name,
		     i, d->has_uid ? (int64_t)d->uid : -1L);
	if (r.mem_len < MMIO_MIN_SIZE || !(r.irq_flags & EXT_IRQ_CONSUMER))
		fail("acpi: DSDT %s: window of 0x%x bytes, interrupt flags 0x%x",
		     d->name, r.mem_len, r.irq_flags);
	if (i == ACPI_MAX_MMIO)
		fail("acpi: DSDT: more than %u virtio-mmio devices", ACPI_MAX_MMIO);
	tiny_print("acpi: DSDT %s: %s uid %u, mem 0x%x+0x%x (%s), irq %u (%s)",
		   d->name, d->hid, i, r.mem_base, r.mem_len,
		   r.mem_rw ? "rw" : "ro", r.irq, irq_mode(r.irq_flags));
	out->mmio[i].base = r.mem_base;
	out->mmio[i].size = r.mem_len;
	out->mmio[i].irq = r.irq;
	out->nmmio++;
}

/* COM1 or the i8042: the ports and the ISA interrupt Linux must use. */
static int check_ports(const struct aml_device *d, const uint16_t *base,
		       const uint8_t *len, unsigned int nio, uint32_t irq)
{
	struct crs r;

	parse_crs(d, &r);
	if (r.nio != nio || r.nirq != 1 || r.irq != irq || r.nmem)
		fail("acpi: DSDT %s (%s): %u port ranges, %u interrupts (irq %u); want %u, 1 (irq %u)",
		     d->name, d->hid, r.nio, r.nirq, r.irq, nio, irq);
	for (unsigned int i = 0; i < nio; i++)
		if (r.io_base[i] != base[i] || r.io_len[i] != len[i])
			fail("acpi: DSDT %s (%s): ports 0x%x+%u, want 0x%x+%u",
			     d->name, d->hid, r.io_base[i], r.io_len[i],
			     base[i], len[i]);
	if (nio == 1)
		tiny_print("acpi: DSDT %s: %s, io 0x%x+%u, irq %u (%s)", d->name,
			   d->hid, base[0], len[0], irq, irq_mode(r.irq_flags));
	else
		tiny_print("acpi: DSDT %s: %s, io 0x%x+%u and 0x%x+%u, irq %u (%s)",
			   d->name, d->hid, base[0], len[0], base[1], len[1],
			   irq, irq_mode(r.irq_flags));
	return 1;
}

static void classify(const struct aml_device *d, struct acpi_dsdt *out)
{
	static const uint16_t com1_io[] = { 0x3f8 }, i8042_io[] = { 0x60, 0x64 };
	static const uint8_t com1_len[] = { 8 }, i8042_len[] = { 1, 1 };

	if (!strcmp(d->hid, VIRTIO_MMIO_HID))
		add_mmio(d, out);
	else if (!strcmp(d->hid, COM1_HID))
		out->com1 = check_ports(d, com1_io, com1_len, 1, 4);
	else if (!strcmp(d->hid, I8042_HID))
		out->i8042 = check_ports(d, i8042_io, i8042_len, 2, 1);
	else
		tiny_print("acpi: DSDT %s: _HID \"%s\", not a device we know",
			   d->name, d->hid);
}

/* Name(\_S5_, Package() { SLP_TYP, ... }): 1 if there, SLP_TYP printed. */
static int find_s5(const uint8_t *p, const uint8_t *end)
{
	for (; p + 7 < end; p++) {
		uint32_t len;
		uint64_t typ;
		unsigned int n;

		if (memcmp(p, "_S5_", 4) || p[4] != AML_PACKAGE_OP)
			continue;
		n = pkg_length(p + 5, end, &len);
		if (!n || p + 5 + len > end || p[5 + n] < 1 ||
		    !aml_integer(p + 6 + n, p + 5 + len, &typ))
			fail("acpi: DSDT: \\_S5_ is not a package of integers");
		tiny_print("acpi: DSDT \\_S5_: SLP_TYP %lu", typ);
		return 1;
	}
	return 0;
}

void dsdt_scan(const uint8_t *aml, uint32_t len, struct acpi_dsdt *out)
{
	const uint8_t *end = aml + len;

	memset(out, 0, sizeof(*out));
	for (const uint8_t *p = aml; p + 3 < end; p++) {
		struct aml_device d;
		const uint8_t *dev_end;

		if (p[0] != AML_EXT_OP_PREFIX || p[1] != AML_DEVICE_OP)
			continue;
		dev_end = read_device(p, end, &d);
		if (!dev_end)
			continue;
		classify(&d, out);
		p = dev_end - 1;	/* microvm's devices do not nest */
	}
	out->s5 = find_s5(aml, end);
	tiny_print("acpi: DSDT: %u virtio-mmio devices, COM1 %s, i8042 %s, \\_S5_ %s",
		   out->nmmio, out->com1 ? "yes" : "no",
		   out->i8042 ? "yes" : "no", out->s5 ? "yes" : "no");
	if (!out->com1 || !out->i8042 || !out->s5)
		fail("acpi: DSDT lacks %s", !out->com1 ? "COM1 (PNP0501)" :
		     !out->i8042 ? "the i8042 (PNP0303)" : "\\_S5_");
}
