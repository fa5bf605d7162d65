// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-mmio transport of the tiny guest: finding devices in the ACPI
 * DSDT (acpi_dsdt.c) or else on the command line
 * (virtio_mmio.device=<size>@<base>:<irq>[:<id>], parsed like Linux's
 * drivers/virtio/virtio_mmio.c), the driver initialisation of virtio 1.x
 * 3.1.1 and polled split virtqueues.
 */
#include "virtio.h"
#include "acpi.h"

#define STATUS_RESET_LIMIT	100000	/* reads until Status is 0 again */
#define ISR_WAIT_LIMIT		100000	/* polls for InterruptStatus bit 0 */

/* One page per queue: descriptors at 0, avail at 0x100, used at 0x200. */
#define VQ_AVAIL_OFF		0x100
#define VQ_USED_OFF		0x200
static uint8_t vq_mem[VIRTIO_MAX_DEVICES][VIRTIO_MAX_QUEUES][4096]
	__attribute__((aligned(4096)));

const char *virtio_type_name(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:	return "net";
	case VIRTIO_ID_BLOCK:	return "blk";
	case VIRTIO_ID_RNG:	return "rng";
	default:		return "unknown";
	}
}

/* ---- command line ---------------------------------------------------- */

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

/*
 * Like the kernel's simple_strtoull(): base 0 picks 16 for "0x", 8 for a
 * leading 0, else 10. Returns the first character not consumed (== s if
 * there was no number).
 */
static const char *parse_num(const char *s, unsigned int base, uint64_t *v)
{
	*v = 0;
	if (base == 0) {
		base = 10;
		if (s[0] == '0') {
			base = 8;
			if ((s[1] == 'x' || s[1] == 'X') &&
			    digit_value(s[2]) < 16) {
				base = 16;
				s += 2;
			}
		}
	}
	for (; digit_value(*s) < (int)base; s++)
		*v = *v * base + digit_value(*s);
	return s;
}

/* The kernel's memparse(): a number with an optional K/M/G/T/P/E suffix. */
static const char *memparse(const char *s, uint64_t *v)
{
	static const char suffixes[] = "KMGTPE";

	s = parse_num(s, 0, v);
	for (unsigned int i = 0; suffixes[i]; i++)
		if ((*s | 0x20) == (suffixes[i] | 0x20)) {
			*v <<= 10 * (i + 1);
			return s + 1;
		}
	return s;
}

/* Kernel parameter names compare '-' and '_' as equal (parameq()). */
static int param_is(const char *tok, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || tok[n] != '=')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char a = tok[i] == '-' ? '_' : tok[i];

		if (a != name[i])
			return 0;
	}
	return 1;
}

/*
 * "<size>@<base>:<irq>[:<id>]" as vm_cmdline_set() takes it: memparse for
 * the size, then sscanf("@%lli:%u%n:%d%n"); nothing may follow, irq != 0.
 */
static int parse_device(const char *s, const char *end, struct virtio_dev *d)
{
	uint64_t irq, id;
	const char *p;

	s = memparse(s, &d->size);
	if (s >= end || *s++ != '@')
		return -1;
	p = parse_num(s, 0, &d->base);
	if (p == s || p >= end || *p++ != ':')
		return -1;
	s = parse_num(p, 10, &irq);
	if (s == p || !irq || irq > 0xffffffff)
		return -1;
	d->irq = (unsigned int)irq;
	if (s < end && *s == ':') {	/* optional platform device id */
		p = parse_num(s + 1, 10, &id);
		if (p != s + 1)
			s = p;
	}
	return s == end ? 0 : -1;
}

/* Every virtio_mmio.device= entry, in command line order. */
static unsigned int parse_cmdline(const char *p, struct virtio_dev *devs)
{
	static const char name[] = "virtio_mmio.device";
	unsigned int n = 0;

	while (p && *p) {
		const char *tok;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		tok = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		if (p - tok == 2 && tok[0] == '-' && tok[1] == '-')
			break;		/* the rest is for init */
		if (!param_is(tok, p - tok, name))
			continue;
		if (n == VIRTIO_MAX_DEVICES)
			fail("virtio: more than %u virtio_mmio.device= entries",
			     VIRTIO_MAX_DEVICES);
		memset(&devs[n], 0, sizeof(devs[n]));
		if (parse_device(tok + sizeof(name), p, &devs[n]))
			fail("virtio: bad entry %.*s", (int)(p - tok), tok);
		devs[n].index = n;
		n++;
	}
	return n;
}

/*
 * The virtio-mmio windows, in slot order: from the ACPI DSDT when there is
 * an RSDP (what a stock distribution kernel uses), else from the command
 * line. Command-line entries next to ACPI are ignored, as Linux would bind
 * only one of the two (and microvm writes none with ACPI on).
 */
unsigned int virtio_find(const struct boot_info *bi, struct virtio_dev *devs)
{
	const struct acpi_dsdt *dsdt;

	_Static_assert(ACPI_MAX_MMIO <= VIRTIO_MAX_DEVICES, "device slots");
	if (!bi->acpi)
		return parse_cmdline(bi->cmdline, devs);
	dsdt = &bi->acpi->dsdt;
	for (unsigned int i = 0; i < dsdt->nmmio; i++) {
		memset(&devs[i], 0, sizeof(devs[i]));
		devs[i].index = i;
		devs[i].base = dsdt->mmio[i].base;
		devs[i].size = dsdt->mmio[i].size;
		devs[i].irq = dsdt->mmio[i].irq;
	}
	return dsdt->nmmio;
}

/* The "devices from ...: N" line, once at boot. */
void virtio_report_source(const struct boot_info *bi)
{
	static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
	unsigned int n = virtio_find(bi, devs);

	if (bi->acpi && parse_cmdline(bi->cmdline, devs))
		tiny_print("virtio: the command line's virtio_mmio.device= entries are ignored: ACPI is there");
	tiny_print("devices from %s: %u",
		   bi->acpi ? "ACPI DSDT" : "command line", n);
}

/*
 * Find the devices, check their identity registers and print one line
 * each. Returns the number of devices.
 */
unsigned int virtio_probe(const struct boot_info *bi, struct virtio_dev *devs)
{
	unsigned int n = virtio_find(bi, devs);
	unsigned int count[5] = { 0 };

	for (unsigned int i = 0; i < n; i++) {
		struct virtio_dev *d = &devs[i];
		uint32_t v;

		if (d->size < VIRTIO_MMIO_CONFIG + 8 ||
		    d->base + d->size > 4 * GiB || d->base + d->size < d->base)
			fail("virtio: device %u: window 0x%lx@0x%lx not usable",
			     i, d->size, d->base);
		v = vio_read(d, VIRTIO_MMIO_MAGIC);
		if (v != VIRTIO_MMIO_MAGIC_VALUE)
			fail("virtio: device %u at 0x%lx: magic 0x%x", i,
			     d->base, v);
		v = vio_read(d, VIRTIO_MMIO_VERSION);
		if (v != 2)
			fail("virtio: device %u at 0x%lx: version %u, want 2",
			     i, d->base, v);
		v = vio_read(d, VIRTIO_MMIO_VENDOR_ID);
		if (v != VIRTIO_MMIO_VENDOR_MICROVM)
			fail("virtio: device %u at 0x%lx: vendor 0x%x", i,
			     d->base, v);
		d->device_id = vio_read(d, VIRTIO_MMIO_DEVICE_ID);
		tiny_print("virtio: device %u at 0x%lx irq %u: id %u (%s)", i,
			   d->base, d->irq, d->device_id,
			   virtio_type_name(d->device_id));
		if (d->device_id < ARRAY_SIZE(count))
			d->nth = count[d->device_id]++;
	}
	return n;
}

/* ---- initialisation (3.1.1) ------------------------------------------ */

static uint32_t status(const struct virtio_dev *d)
{
	return vio_read(d, VIRTIO_MMIO_STATUS);
}

/* Write 0 to Status and wait until it reads back 0 (4.2.3.1). */
void virtio_reset(struct virtio_dev *d)
{
	vio_write(d, VIRTIO_MMIO_STATUS, 0);
	for (unsigned int i = 0; status(d); i++) {
		if (i == STATUS_RESET_LIMIT)
			fail("%s%u: Status 0x%x after reset", virtio_type_name(
			     d->device_id), d->nth, status(d));
		io_delay();
	}
}

/* Reset, ACKNOWLEDGE, DRIVER, feature negotiation up to FEATURES_OK. */
void virtio_begin(struct virtio_dev *d, uint64_t wanted)
{
	const char *t = virtio_type_name(d->device_id);
	uint32_t s;

	virtio_reset(d);
	vio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	vio_write(d, VIRTIO_MMIO_STATUS,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vio_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 0);
	d->dev_features = vio_read(d, VIRTIO_MMIO_DEV_FEATURES);
	vio_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 1);
	d->dev_features |= (uint64_t)vio_read(d, VIRTIO_MMIO_DEV_FEATURES) << 32;
	if (!(d->dev_features & VIRTIO_F_VERSION_1))
		fail("%s%u: device does not offer VIRTIO_F_VERSION_1 "
		     "(features 0x%lx)", t, d->nth, d->dev_features);
	d->features = (wanted & d->dev_features) | VIRTIO_F_VERSION_1;
	vio_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 0);
	vio_write(d, VIRTIO_MMIO_DRV_FEATURES, (uint32_t)d->features);
	vio_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 1);
	vio_write(d, VIRTIO_MMIO_DRV_FEATURES, (uint32_t)(d->features >> 32));
	s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	    VIRTIO_STATUS_FEATURES_OK;
	vio_write(d, VIRTIO_MMIO_STATUS, s);
	if (status(d) != s)
		fail("%s%u: FEATURES_OK refused for features 0x%lx (Status 0x%x)",
		     t, d->nth, d->features, status(d));
}

/*
 * Queue q with num entries; returns what QueueReady reads back (1 if the
 * device took the queue). The ring page is zeroed and the indices reset.
 */
int virtio_queue_setup(struct virtio_dev *d, unsigned int q, unsigned int num)
{
	const char *t = virtio_type_name(d->device_id);
	struct virtq *vq = &d->vq[q];
	uint8_t *mem = vq_mem[d->index][q];
	uint32_t max;

	vio_write(d, VIRTIO_MMIO_QUEUE_SEL, q);
	if (vio_read(d, VIRTIO_MMIO_QUEUE_READY))
		fail("%s%u: queue %u ready before setup", t, d->nth, q);
	max = vio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max < VQ_SIZE)
		fail("%s%u: queue %u: QueueNumMax %u < %u", t, d->nth, q, max,
		     VQ_SIZE);
	memset(mem, 0, 4096);
	vq->dev = d;
	vq->index = q;
	vq->desc = (struct virtq_desc *)mem;
	vq->avail = (struct virtq_avail *)(mem + VQ_AVAIL_OFF);
	vq->used = (struct virtq_used *)(mem + VQ_USED_OFF);
	vq->avail_idx = vq->last_used = 0;
	return virtio_queue_program(d, q, num, vq->desc, vq->avail, vq->used);
}

/*
 * Program queue q (selected here) with num entries and the three rings
 * (below 4 GiB), then QueueReady = 1; returns what QueueReady reads back.
 */
int virtio_queue_program(struct virtio_dev *d, unsigned int q,
			 unsigned int num, const void *desc,
			 const void *avail, const void *used)
{
	vio_write(d, VIRTIO_MMIO_QUEUE_SEL, q);
	vio_write(d, VIRTIO_MMIO_QUEUE_NUM, num);
	vio_write(d, VIRTIO_MMIO_QUEUE_DESC_LO, (uint32_t)(uint64_t)desc);
	vio_write(d, VIRTIO_MMIO_QUEUE_DESC_HI, 0);
	vio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LO, (uint32_t)(uint64_t)avail);
	vio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HI, 0);
	vio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LO, (uint32_t)(uint64_t)used);
	vio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HI, 0);
	vio_mb();
	vio_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return (int)vio_read(d, VIRTIO_MMIO_QUEUE_READY);
}

void virtio_driver_ok(struct virtio_dev *d)
{
	uint32_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;

	vio_write(d, VIRTIO_MMIO_STATUS, s);
	if (status(d) != s)
		fail("%s%u: Status 0x%x after DRIVER_OK",
		     virtio_type_name(d->device_id), d->nth, status(d));
}

/* The whole sequence: features, nqueues queues of VQ_SIZE, DRIVER_OK. */
void virtio_init(struct virtio_dev *d, uint64_t wanted, unsigned int nqueues)
{
	virtio_begin(d, wanted);
	d->nqueues = nqueues;
	for (unsigned int q = 0; q < nqueues; q++)
		if (virtio_queue_setup(d, q, VQ_SIZE) != 1)
			fail("%s%u: queue %u refused (QueueReady reads 0)",
			     virtio_type_name(d->device_id), d->nth, q);
	virtio_driver_ok(d);
}

uint32_t virtio_config_gen(const struct virtio_dev *d)
{
	return vio_read(d, VIRTIO_MMIO_CONFIG_GEN);
}

/* ---- split virtqueues (2.7) ------------------------------------------ */

/* Descriptors head..head+n-1 as one chain of the buffers b[0..n-1]. */
void vq_chain(struct virtq *vq, unsigned int head, const struct vbuf *b,
	      unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		struct virtq_desc *desc = &vq->desc[head + i];

		desc->addr = (uint64_t)b[i].addr;
		desc->len = b[i].len;
		desc->flags = b[i].flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
		desc->next = i + 1 < n ? head + i + 1 : 0;
	}
}

/* Put a chain head into the avail ring and move avail->idx on. */
void vq_publish(struct virtq *vq, unsigned int head)
{
	vq->avail->ring[vq->avail_idx % VQ_SIZE] = head;
	vio_mb();		/* descriptors and ring entry before idx */
	vq->avail->idx = ++vq->avail_idx;
	vio_mb();		/* idx before the notify */
}

void vq_notify(struct virtq *vq)
{
	vio_write(vq->dev, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);
}

/* Wait (bounded) for the next used entry: 0 (id, len set) or -1. */
int vq_poll(struct virtq *vq, unsigned long limit, uint32_t *id, uint32_t *len)
{
	for (unsigned long i = 0; i <= limit; i++) {
		barrier();
		if (*(volatile uint16_t *)&vq->used->idx != vq->last_used) {
			struct virtq_used_elem *e;

			vio_mb();	/* idx before the element */
			e = &vq->used->ring[vq->last_used % VQ_SIZE];
			*id = e->id;
			*len = e->len;
			vq->last_used++;
			return 0;
		}
		if (i < limit)
			io_delay();
	}
	return -1;
}

/*
 * One synchronous request whose chain starts at descriptor 0 (already
 * filled in): publish, notify, wait for its used entry, check that the
 * device raised InterruptStatus bit 0 and acknowledge it. Returns the used
 * length; FAILs (naming "what") when the device does not answer.
 */
uint32_t vq_submit(struct virtq *vq, const char *what)
{
	struct virtio_dev *d = vq->dev;
	const char *t = virtio_type_name(d->device_id);
	uint32_t id, len, isr = 0;

	vq_publish(vq, 0);
	vq_notify(vq);
	if (vq_poll(vq, VIO_WAIT_DONE, &id, &len))
		fail("%s%u: %s: no used ring entry (timeout; Status 0x%x)", t,
		     d->nth, what, status(d));
	if (id != 0)
		fail("%s%u: %s: used entry for descriptor %u, want 0", t,
		     d->nth, what, id);
	for (unsigned int i = 0; i < ISR_WAIT_LIMIT; i++) {
		isr = vio_read(d, VIRTIO_MMIO_INT_STATUS);
		if (isr & VIRTIO_INT_USED_RING)
			break;
		io_delay();
	}
	if (!(isr & VIRTIO_INT_USED_RING))
		fail("%s%u: %s: InterruptStatus 0x%x, used ring bit not set", t,
		     d->nth, what, isr);
	vio_write(d, VIRTIO_MMIO_INT_ACK, VIRTIO_INT_USED_RING);
	return len;
}

/* vq_submit() of the chain b[0..n-1]. */
uint32_t vq_run(struct virtq *vq, const struct vbuf *b, unsigned int n,
		const char *what)
{
	vq_chain(vq, 0, b, n);
	return vq_submit(vq, what);
}
