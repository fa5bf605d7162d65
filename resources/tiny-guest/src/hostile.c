// SPDX-License-Identifier: Apache-2.0
/*
 * The "hostile" scenario: the driver misbehaves on purpose (H1..H8 of
 * docs/virtio-contract.md) against the first blk device, H7 against every
 * device, and checks that the device answers as the contract says and
 * keeps working: after each case a valid read of sector 0 must return
 * what it returned before (after H8 only once the device was reset).
 * Every wait is bounded; a request the device drops is reported, not
 * waited for forever.
 */
#include "virtio.h"

#define NO_STATUS	0xaa			/* status byte before a request */
#define FAR_AWAY	0xffffff000000ULL	/* H2: no RAM there */
#define H3_LEN		0xffffffffU
#define GUARD		0x5a
#define ETH_P_LOCAL	0x88b5			/* IEEE local experimental */

static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
static struct blk_hdr hdr __attribute__((aligned(16)));
static uint8_t st;
static uint8_t ref[SECTOR_SIZE] __attribute__((aligned(64)));
static uint8_t buf[4096] __attribute__((aligned(4096)));

/* The request's status byte as the device left it. */
static uint8_t status_byte(void)
{
	barrier();
	return *(volatile uint8_t *)&st;
}

/* Descriptor i of queue 0 of d. */
static void desc(struct virtio_dev *d, unsigned int i, const void *addr,
		 uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc *de = &d->vq[0].desc[i];

	de->addr = (uint64_t)addr;
	de->len = len;
	de->flags = flags;
	de->next = next;
}

/*
 * Header (flags hflags), data (addr, len, dflags), status byte: the usual
 * three descriptors 0 -> 1 -> 2, but every field under the caller's control.
 */
static void blk_chain(struct virtio_dev *d, uint32_t type, uint64_t sector,
		      uint16_t hflags, const void *addr, uint32_t len,
		      uint16_t dflags)
{
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	st = NO_STATUS;
	desc(d, 0, &hdr, sizeof(hdr), hflags | VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, addr, len, dflags | VIRTQ_DESC_F_NEXT, 2);
	desc(d, 2, &st, 1, VIRTQ_DESC_F_WRITE, 0);
}

/* A request that must complete with IOERR. */
static void expect_ioerr(struct virtio_dev *d, const char *what)
{
	vq_submit(&d->vq[0], what);
	if (status_byte() != VIRTIO_BLK_S_IOERR)
		fail("hostile: %s: status 0x%x, want 1 (IOERR)", what,
		     status_byte());
}

/* The device still serves a valid read of sector 0, same data as before. */
static void check_alive(struct virtio_dev *d, const char *after)
{
	static uint8_t sector[SECTOR_SIZE] __attribute__((aligned(64)));
	int s = blk_request(d, VIRTIO_BLK_T_IN, 0, sector, SECTOR_SIZE);

	if (s != VIRTIO_BLK_S_OK)
		fail("hostile: valid read after %s: status %d", after, s);
	if (memcmp(sector, ref, SECTOR_SIZE))
		fail("hostile: sector 0 reads differently after %s", after);
}

static void h1_loop(struct virtio_dev *d)
{
	uint32_t len;

	blk_chain(d, VIRTIO_BLK_T_IN, 0, 0, buf, SECTOR_SIZE,
		  VIRTQ_DESC_F_WRITE);
	d->vq[0].desc[2].flags |= VIRTQ_DESC_F_NEXT;	/* 2 -> 0: a loop */
	d->vq[0].desc[2].next = 0;
	len = vq_submit(&d->vq[0], "H1 loop");
	if (len != 0 || status_byte() != NO_STATUS)
		fail("hostile: H1 loop: used len %u, status 0x%x (want len 0, "
		     "status unwritten)", len, status_byte());
	check_alive(d, "H1");
	tiny_print("hostile: H1 loop: ok (used len 0, status not written)");
}

static void h2_outside_ram(struct virtio_dev *d)
{
	blk_chain(d, VIRTIO_BLK_T_IN, 0, 0, (const void *)FAR_AWAY,
		  SECTOR_SIZE, VIRTQ_DESC_F_WRITE);
	expect_ioerr(d, "H2 outside RAM");
	check_alive(d, "H2");
	tiny_print("hostile: H2 outside RAM: ok (data at 0x%lx: status 1)",
		   (uint64_t)FAR_AWAY);
}

/* Read and write of 4 GiB - 1 bytes starting at buf, sector 0. */
static void h3_absurd_length(struct virtio_dev *d)
{
	memset(buf, GUARD, sizeof(buf));
	blk_chain(d, VIRTIO_BLK_T_IN, 0, 0, buf, H3_LEN, VIRTQ_DESC_F_WRITE);
	expect_ioerr(d, "H3 absurd length (read)");
	for (unsigned int i = SECTOR_SIZE; i < sizeof(buf); i++)
		if (buf[i] != GUARD)
			fail("hostile: H3: device wrote byte %u of the buffer "
			     "past the first sector", i);
	blk_chain(d, VIRTIO_BLK_T_OUT, 0, 0, buf, H3_LEN, 0);
	expect_ioerr(d, "H3 absurd length (write)");
	check_alive(d, "H3");	/* sector 0 not overwritten */
	tiny_print("hostile: H3 absurd length: ok (len 0x%x: read status 1, "
		   "write status 1, memory and sector 0 untouched)", H3_LEN);
}

static void h4_wrong_direction(struct virtio_dev *d)
{
	blk_chain(d, VIRTIO_BLK_T_IN, 0, 0, buf, SECTOR_SIZE, 0);
	expect_ioerr(d, "H4 read into device-readable buffer");
	blk_chain(d, VIRTIO_BLK_T_IN, 0, VIRTQ_DESC_F_WRITE, buf, SECTOR_SIZE,
		  VIRTQ_DESC_F_WRITE);
	expect_ioerr(d, "H4 device-writable header");
	check_alive(d, "H4");
	tiny_print("hostile: H4 wrong direction: ok (read-only data buffer: "
		   "status 1, writable header: status 1)");
}

static void h5_out_of_range(struct virtio_dev *d)
{
	uint64_t cap = blk_capacity(d);

	blk_chain(d, VIRTIO_BLK_T_IN, cap, 0, buf, SECTOR_SIZE,
		  VIRTQ_DESC_F_WRITE);
	expect_ioerr(d, "H5 sector out of range");
	if (blk_capacity(d) != cap)
		fail("hostile: H5: capacity changed from %lu to %lu", cap,
		     blk_capacity(d));
	check_alive(d, "H5");
	tiny_print("hostile: H5 sector out of range: ok (sector %lu: status 1)",
		   cap);
}

static void h6_queue_size(struct virtio_dev *d)
{
	int ready;

	virtio_begin(d, d->features);
	ready = virtio_queue_setup(d, 0, 3);
	if (ready != 0)
		fail("hostile: H6: QueueNum 3 accepted (QueueReady %d)", ready);
	ready = virtio_queue_setup(d, 0, VQ_SIZE);
	if (ready != 1)
		fail("hostile: H6: QueueNum %u refused after QueueNum 3",
		     VQ_SIZE);
	virtio_driver_ok(d);
	check_alive(d, "H6");
	tiny_print("hostile: H6 queue size 3: ok (QueueReady 0, then 1 with "
		   "QueueNum %u)", VQ_SIZE);
}

/*
 * H7 on one device: queues ready but no DRIVER_OK yet; a valid request
 * notified now must not be served. After DRIVER_OK (and another notify)
 * it must be. The request: blk read, net tx of one frame, rng 16 bytes.
 */
static void h7_device(struct virtio_dev *d)
{
	static uint8_t frame[VIRTIO_NET_HDR_SIZE + 60];
	const char *t = virtio_type_name(d->device_id);
	unsigned int q = d->device_id == VIRTIO_ID_NET ? 1 : 0;
	unsigned int nq = d->device_id == VIRTIO_ID_NET ? 2 : 1;
	struct virtq *vq = &d->vq[q];
	uint32_t id, len;
	struct vbuf b[3];
	unsigned int n = 0;

	virtio_begin(d, 0);
	for (unsigned int i = 0; i < nq; i++)
		if (virtio_queue_setup(d, i, VQ_SIZE) != 1)
			fail("hostile: H7: %s%u queue %u refused", t, d->nth, i);
	if (d->device_id == VIRTIO_ID_BLOCK) {
		hdr = (struct blk_hdr){ VIRTIO_BLK_T_IN, 0, 0 };
		st = NO_STATUS;
		b[n++] = (struct vbuf){ &hdr, sizeof(hdr), 0 };
		b[n++] = (struct vbuf){ buf, SECTOR_SIZE, VIRTQ_DESC_F_WRITE };
		b[n++] = (struct vbuf){ &st, 1, VIRTQ_DESC_F_WRITE };
	} else if (d->device_id == VIRTIO_ID_NET) {
		/* broadcast, from a local MAC "\x02tiny\0", local ethertype */
		memset(frame, 0, sizeof(frame));
		memset(frame + VIRTIO_NET_HDR_SIZE, 0xff, 6);
		memcpy(frame + VIRTIO_NET_HDR_SIZE + 6, "\x02tiny", 6);
		frame[VIRTIO_NET_HDR_SIZE + 12] = ETH_P_LOCAL >> 8;
		frame[VIRTIO_NET_HDR_SIZE + 13] = ETH_P_LOCAL & 0xff;
		b[n++] = (struct vbuf){ frame, sizeof(frame), 0 };
	} else {
		b[n++] = (struct vbuf){ buf, 16, VIRTQ_DESC_F_WRITE };
	}
	vq_chain(vq, 0, b, n);
	vq_publish(vq, 0);
	vq_notify(vq);
	if (!vq_poll(vq, VIO_WAIT_NONE, &id, &len))
		fail("hostile: H7: %s%u served a request before DRIVER_OK", t,
		     d->nth);
	virtio_driver_ok(d);
	vq_notify(vq);
	if (vq_poll(vq, VIO_WAIT_DONE, &id, &len))
		fail("hostile: H7: %s%u: no used entry after DRIVER_OK "
		     "(Status 0x%x)", t, d->nth, vio_read(d, VIRTIO_MMIO_STATUS));
	vio_write(d, VIRTIO_MMIO_INT_ACK, VIRTIO_INT_USED_RING);
	if (d->device_id == VIRTIO_ID_BLOCK && status_byte() != VIRTIO_BLK_S_OK)
		fail("hostile: H7: %s%u: status 0x%x after DRIVER_OK", t, d->nth,
		     status_byte());
	tiny_print("hostile: H7 notify before DRIVER_OK: ok (%s%u: ignored, "
		   "served after DRIVER_OK)", t, d->nth);
}

static void h8_avail_jump(struct virtio_dev *d)
{
	struct virtq *vq = &d->vq[0];
	uint32_t s = 0, isr = 0;

	blk_chain(d, VIRTIO_BLK_T_IN, 0, 0, buf, SECTOR_SIZE,
		  VIRTQ_DESC_F_WRITE);
	for (unsigned int i = 0; i < VQ_SIZE; i++)
		vq->avail->ring[i] = 0;
	vio_mb();
	vq->avail_idx += VQ_SIZE + 1;	/* more than the queue holds */
	vq->avail->idx = vq->avail_idx;
	vio_mb();
	vq_notify(vq);
	for (unsigned long i = 0; i < VIO_WAIT_DONE; i++) {
		s = vio_read(d, VIRTIO_MMIO_STATUS);
		isr = vio_read(d, VIRTIO_MMIO_INT_STATUS);
		if ((s & VIRTIO_STATUS_NEEDS_RESET) && (isr & VIRTIO_INT_CONFIG))
			break;
		io_delay();
	}
	if (!(s & VIRTIO_STATUS_NEEDS_RESET) || !(isr & VIRTIO_INT_CONFIG))
		fail("hostile: H8: Status 0x%x, InterruptStatus 0x%x (want "
		     "DEVICE_NEEDS_RESET and a config interrupt)", s, isr);
	vio_write(d, VIRTIO_MMIO_INT_ACK, isr);
	if (*(volatile uint16_t *)&vq->used->idx != vq->last_used)
		fail("hostile: H8: device used buffers of a broken avail ring");
	blk_init(d);		/* reset and initialise again */
	check_alive(d, "H8 and a reset");
	tiny_print("hostile: H8 avail index jump: ok (Status 0x%x, "
		   "InterruptStatus 0x%x, works after reset)", s, isr);
}

static void scenario_hostile(struct boot_info *bi)
{
	unsigned int n = virtio_probe(bi, devs);
	struct virtio_dev *d = NULL;

	for (unsigned int i = 0; i < n && !d; i++)
		if (devs[i].device_id == VIRTIO_ID_BLOCK)
			d = &devs[i];
	if (!d)
		fail("hostile: no virtio-blk device");
	blk_init(d);
	if (blk_request(d, VIRTIO_BLK_T_IN, 0, ref, SECTOR_SIZE))
		fail("hostile: reading sector 0 failed before any test");

	h1_loop(d);
	h2_outside_ram(d);
	h3_absurd_length(d);
	h4_wrong_direction(d);
	h5_out_of_range(d);
	h6_queue_size(d);
	for (unsigned int i = 0; i < n; i++) {
		h7_device(&devs[i]);
		if (&devs[i] == d)
			check_alive(d, "H7");
		else
			virtio_reset(&devs[i]);
	}
	h8_avail_jump(d);
}
DEFINE_SCENARIO("hostile", scenario_hostile);
