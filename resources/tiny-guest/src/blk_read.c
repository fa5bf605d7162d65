// SPDX-License-Identifier: Apache-2.0
/*
 * The "blk-read" scenario (docs/devices.md, "Rate limits"): read the whole
 * first blk disk front to back in requests of tiny.blkread.kib KiB (1..64,
 * default 64), one at a time, and check every sector holds what the host
 * wrote: bytes 0..7 "RATE" + le32 sector, bytes 504..511 "TAIL" + le32
 * sector (both ends: the whole sector was copied, and cheaply checked where
 * every guest instruction may be emulated). The host times the run: with
 * --disk ...,bw=/ops= it cannot end sooner than the limit allows.
 *
 * Prints "tiny: blk-read: reading <sectors> sectors" first, then
 * "tiny: blk-read: <sectors> sectors in <n> requests of <k> KiB: ok".
 */
#include "virtio.h"

#define MAX_KIB		64

static uint8_t buf[MAX_KIB * KiB] __attribute__((aligned(4096)));
static struct virtio_dev devs[VIRTIO_MAX_DEVICES];

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_sector(const uint8_t *p, uint64_t s)
{
	if (memcmp(p, "RATE", 4) || le32(p + 4) != (uint32_t)s ||
	    memcmp(p + 504, "TAIL", 4) || le32(p + 508) != (uint32_t)s)
		fail("blk-read: sector %lu does not hold its pattern", s);
}

static void scenario_blk_read(struct boot_info *bi)
{
	uint64_t kib = MAX_KIB, cap, s, requests = 0;
	struct virtio_dev *d = NULL;
	unsigned int n = virtio_probe(bi, devs);

	for (unsigned int i = 0; i < n && !d; i++)
		if (devs[i].device_id == VIRTIO_ID_BLOCK)
			d = &devs[i];
	if (!d)
		fail("blk-read: no blk device");
	cmdline_param_u64("blkread.kib", &kib);
	if (!kib || kib > MAX_KIB)
		fail("blk-read: tiny.blkread.kib=%lu: 1 to %u", kib, MAX_KIB);
	blk_init(d);
	cap = blk_capacity(d);
	tiny_print("blk-read: reading %lu sectors", cap);
	for (s = 0; s < cap; s += kib * 2) {
		uint64_t k = cap - s < kib * 2 ? cap - s : kib * 2;
		int st = blk_request(d, VIRTIO_BLK_T_IN, s, buf,
				     (uint32_t)(k * SECTOR_SIZE));

		if (st != VIRTIO_BLK_S_OK)
			fail("blk-read: read sector %lu: status %d", s, st);
		for (uint64_t i = 0; i < k; i++)
			check_sector(buf + i * SECTOR_SIZE, s + i);
		requests++;
	}
	tiny_print("blk-read: %lu sectors in %lu requests of %lu KiB: ok", cap,
		   requests, kib);
}
DEFINE_SCENARIO("blk-read", scenario_blk_read);
