// SPDX-License-Identifier: Apache-2.0
/*
 * The "blk-until-dead" scenario (tests/isolate.rs): the host kills the blk
 * device's process mid-I/O, and the guest must learn it from the device.
 *
 * For i = 1, 2, ...: write sector i ("DEAD" + le32 i, then "TAIL" + le32 i
 * in bytes 504..511), then FLUSH; "tiny: blk-until-dead: flushed <i>" every
 * 8 flushes. Each request is waited for in bounded polls of the used ring,
 * reading Status between them: once it shows DEVICE_NEEDS_RESET, prints
 * "tiny: blk-until-dead: needs reset after <n> flushed writes" (n: the last
 * i whose flush completed) and ends. FAILs if a request fails, if the device
 * answers neither way, or if tiny.blkdead.max writes (default: the disk's
 * capacity) all complete.
 */
#include "virtio.h"

/* Polls of 1000 rounds between two Status reads, before giving up. */
#define STATUS_ROUNDS	100000

static uint8_t sector[SECTOR_SIZE] __attribute__((aligned(512)));
static struct blk_hdr hdr;
static volatile uint8_t req_status;
static struct virtio_dev devs[VIRTIO_MAX_DEVICES];

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

/* One request; 1 once Status says the device needs a reset. */
static int request(struct virtio_dev *d, uint32_t type, uint64_t s)
{
	struct virtq *vq = &d->vq[0];
	struct vbuf b[3];
	unsigned int n = 0;
	uint32_t id, len;

	hdr = (struct blk_hdr){ .type = type, .sector = s };
	req_status = 0xff;
	b[n++] = (struct vbuf){ &hdr, sizeof(hdr), 0 };
	if (type == VIRTIO_BLK_T_OUT)
		b[n++] = (struct vbuf){ sector, SECTOR_SIZE, 0 };
	b[n++] = (struct vbuf){ (const void *)&req_status, 1,
				VIRTQ_DESC_F_WRITE };
	vq_chain(vq, 0, b, n);
	vq_publish(vq, 0);
	vq_notify(vq);
	for (unsigned int r = 0; r < STATUS_ROUNDS; r++) {
		if (!vq_poll(vq, 1000, &id, &len)) {
			vio_write(d, VIRTIO_MMIO_INT_ACK,
				  vio_read(d, VIRTIO_MMIO_INT_STATUS));
			if (req_status != VIRTIO_BLK_S_OK)
				fail("blk-until-dead: type %u sector %lu: status %u",
				     type, s, req_status);
			return 0;
		}
		if (vio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET)
			return 1;
	}
	fail("blk-until-dead: type %u sector %lu: no answer, Status 0x%x", type,
	     s, vio_read(d, VIRTIO_MMIO_STATUS));
	return 0;
}

static void scenario_blk_until_dead(struct boot_info *bi)
{
	struct virtio_dev *d = NULL;
	unsigned int n = virtio_probe(bi, devs);
	uint64_t max, flushed = 0;

	for (unsigned int i = 0; i < n && !d; i++)
		if (devs[i].device_id == VIRTIO_ID_BLOCK)
			d = &devs[i];
	if (!d)
		fail("blk-until-dead: no blk device");
	blk_init(d);
	max = blk_capacity(d) - 1;
	cmdline_param_u64("blkdead.max", &max);
	for (uint64_t i = 1; i <= max; i++) {
		memset(sector, (int)(i & 0xff), sizeof(sector));
		memcpy(sector, "DEAD", 4);
		put_le32(sector + 4, (uint32_t)i);
		memcpy(sector + 504, "TAIL", 4);
		put_le32(sector + 508, (uint32_t)i);
		if (request(d, VIRTIO_BLK_T_OUT, i) ||
		    request(d, VIRTIO_BLK_T_FLUSH, 0)) {
			tiny_print("blk-until-dead: needs reset after %lu flushed writes",
				   flushed);
			return;
		}
		flushed = i;
		if (i % 8 == 0)
			tiny_print("blk-until-dead: flushed %lu", i);
	}
	fail("blk-until-dead: %lu writes and the device is still there", max);
}
DEFINE_SCENARIO("blk-until-dead", scenario_blk_until_dead);
