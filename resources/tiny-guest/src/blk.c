// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-blk driver (virtio 1.x 5.2) and the blk part of the "virtio"
 * scenario: capacity, GET_ID, read sector 0, then write + flush + read
 * back sector 1 (or check that a read-only disk refuses the write).
 */
#include "virtio.h"

/* Features we accept if offered (VERSION_1 is added by virtio_begin). */
#define BLK_FEATURES	(VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_RO | \
			 VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH)
#define BLK_CFG_CAPACITY	0	/* le64, 512-byte sectors */
#define BLK_CFG_BLK_SIZE	20	/* u32 */

/* Request header and status byte of the synchronous requests. */
static struct blk_hdr req_hdr __attribute__((aligned(16)));
static uint8_t req_status;
static uint8_t sector_buf[2][SECTOR_SIZE] __attribute__((aligned(4096)));

void blk_init(struct virtio_dev *d)
{
	virtio_init(d, BLK_FEATURES, 1);
}

/* Capacity from config space, read consistently (ConfigGeneration). */
uint64_t blk_capacity(const struct virtio_dev *d)
{
	uint32_t gen;
	uint64_t cap;

	do {
		gen = virtio_config_gen(d);
		cap = vio_config32(d, BLK_CFG_CAPACITY) |
		      (uint64_t)vio_config32(d, BLK_CFG_CAPACITY + 4) << 32;
	} while (gen != virtio_config_gen(d));
	return cap;
}

/*
 * One request: header, optional data buffer (device-writable for IN and
 * GET_ID), status byte. Returns the status the device wrote; FAILs if the
 * device does not complete it or leaves the status byte unwritten.
 */
int blk_request(struct virtio_dev *d, uint32_t type, uint64_t sector,
		void *buf, uint32_t len)
{
	int writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct vbuf b[3];
	unsigned int n = 0;

	req_hdr.type = type;
	req_hdr.reserved = 0;
	req_hdr.sector = sector;
	req_status = 0xff;
	b[n++] = (struct vbuf){ &req_hdr, sizeof(req_hdr), 0 };
	if (len)
		b[n++] = (struct vbuf){ buf, len,
					writes ? VIRTQ_DESC_F_WRITE : 0 };
	b[n++] = (struct vbuf){ &req_status, 1, VIRTQ_DESC_F_WRITE };
	vq_run(&d->vq[0], b, n, "request");
	barrier();
	if (req_status == 0xff)
		fail("blk%u: request type %u sector %lu: status not written",
		     d->nth, type, sector);
	return *(volatile uint8_t *)&req_status;
}

static void printable(char *dst, const uint8_t *src, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '.';
	dst[n] = '\0';
}

static void expect_ok(struct virtio_dev *d, int st, const char *what)
{
	if (st != VIRTIO_BLK_S_OK)
		fail("blk%u: %s: status %d", d->nth, what, st);
}

/* Bytes 0..15 "TINY-WROTE-BLK<N>-", then byte k = k & 0xff. */
static void fill_pattern(uint8_t *p, unsigned int nth)
{
	for (unsigned int k = 0; k < SECTOR_SIZE; k++)
		p[k] = (uint8_t)k;
	memcpy(p, "TINY-WROTE-BLK", 14);
	p[14] = (uint8_t)('0' + nth % 10);
	p[15] = '-';
}

void blk_test(struct virtio_dev *d)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES + 1];
	char want_id[VIRTIO_BLK_ID_BYTES], text[VIRTIO_BLK_ID_BYTES + 1];
	uint64_t cap;
	int ro, st;

	blk_init(d);
	cap = blk_capacity(d);
	ro = !!(d->features & VIRTIO_BLK_F_RO);
	tiny_print("blk%u: capacity %lu sectors, features 0x%lx, ro %d", d->nth,
		   cap, d->dev_features, ro);
	if ((d->features & VIRTIO_BLK_F_BLK_SIZE) &&
	    vio_config32(d, BLK_CFG_BLK_SIZE) != SECTOR_SIZE)
		fail("blk%u: blk_size %u, want 512", d->nth,
		     vio_config32(d, BLK_CFG_BLK_SIZE));
	if (cap < 2)
		fail("blk%u: need at least 2 sectors for the test", d->nth);

	/* GET_ID: "microvm-blk<N>", NUL-padded to 20 bytes. */
	memset(id, 0, sizeof(id));
	expect_ok(d, blk_request(d, VIRTIO_BLK_T_GET_ID, 0, id,
				 VIRTIO_BLK_ID_BYTES), "GET_ID");
	printable(text, id, strlen((char *)id));
	tiny_print("blk%u: id \"%s\"", d->nth, text);
	memset(want_id, 0, sizeof(want_id));
	memcpy(want_id, "microvm-blk", 11);
	if (d->nth >= 10) {	/* at most 19 devices */
		want_id[11] = (char)('0' + d->nth / 10);
		want_id[12] = (char)('0' + d->nth % 10);
	} else {
		want_id[11] = (char)('0' + d->nth);
	}
	if (memcmp(id, want_id, VIRTIO_BLK_ID_BYTES))
		fail("blk%u: id \"%s\", want \"microvm-blk%u\"", d->nth, text,
		     d->nth);

	/* Sector 0 */
	expect_ok(d, blk_request(d, VIRTIO_BLK_T_IN, 0, sector_buf[0],
				 SECTOR_SIZE), "read sector 0");
	printable(text, sector_buf[0], 16);
	tiny_print("blk%u: sector 0 starts \"%s\"", d->nth, text);

	/* Sector 1: write the pattern, flush, read back. */
	fill_pattern(sector_buf[0], d->nth);
	if (ro) {
		uint8_t before[16];

		expect_ok(d, blk_request(d, VIRTIO_BLK_T_IN, 1, sector_buf[1],
					 SECTOR_SIZE), "read sector 1");
		memcpy(before, sector_buf[1], 16);
		st = blk_request(d, VIRTIO_BLK_T_OUT, 1, sector_buf[0],
				 SECTOR_SIZE);
		if (st != VIRTIO_BLK_S_IOERR)
			fail("blk%u: write to read-only disk: status %d, want 1",
			     d->nth, st);
		expect_ok(d, blk_request(d, VIRTIO_BLK_T_IN, 1, sector_buf[1],
					 SECTOR_SIZE), "read sector 1");
		if (memcmp(before, sector_buf[1], 16))
			fail("blk%u: read-only disk changed by refused write",
			     d->nth);
		tiny_print("blk%u: write refused on read-only disk (status %d)",
			   d->nth, st);
		return;
	}
	if (!(d->features & VIRTIO_BLK_F_FLUSH))
		fail("blk%u: device does not offer VIRTIO_BLK_F_FLUSH", d->nth);
	expect_ok(d, blk_request(d, VIRTIO_BLK_T_OUT, 1, sector_buf[0],
				 SECTOR_SIZE), "write sector 1");
	expect_ok(d, blk_request(d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), "flush");
	memset(sector_buf[1], 0, SECTOR_SIZE);
	expect_ok(d, blk_request(d, VIRTIO_BLK_T_IN, 1, sector_buf[1],
				 SECTOR_SIZE), "read sector 1");
	for (unsigned int k = 0; k < SECTOR_SIZE; k++)
		if (sector_buf[1][k] != sector_buf[0][k])
			fail("blk%u: sector 1 byte %u reads 0x%x, wrote 0x%x",
			     d->nth, k, sector_buf[1][k], sector_buf[0][k]);
	tiny_print("blk%u: write+flush+read-back ok", d->nth);
}
