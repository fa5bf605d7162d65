// SPDX-License-Identifier: Apache-2.0
/*
 * Fault scenarios (docs/robustness.md): what the guest sees when the host
 * side of a device fails under it, and data the guest must not lose.
 *
 * - blk-fill: write the whole first disk in 64 KiB requests, then FLUSH and
 *   read sector 0 back. Statuses other than OK/IOERR FAIL; each IOERR is
 *   printed ("tiny: faults: write sector N: IOERR", the first 8). With
 *   tiny.faults.expect=ioerr the scenario FAILs unless it saw an IOERR.
 * - blk-shrink: read the whole disk (all OK), wait for one byte on the
 *   serial port (the host shrinks the image meanwhile), read it again and
 *   print "tiny: faults: read sector N: IOERR" for reads past the new end.
 * - crash: write sector n = 0, 1, ... with a numbered pattern, FLUSH after
 *   each and print "tiny: crash: flushed through block n"; the host kills
 *   microvm at a random moment and checks every printed block is on disk.
 * - unflushed: write 16 sectors WITHOUT a flush, print
 *   "tiny: unflushed: wrote 16 sectors without flush" and halt; the host
 *   stops microvm with SIGTERM and checks the sectors are in the file.
 * - net-gone: send frames on the first net device, wait for one byte on the
 *   serial port (the host deletes the TAP meanwhile), send more frames:
 *   every one must still complete.
 */
#include "virtio.h"

#define FILL_CHUNK	(64 * 1024)
#define FILL_SECTORS	(FILL_CHUNK / SECTOR_SIZE)
#define MAX_PRINTED	8

static uint8_t big_buf[FILL_CHUNK] __attribute__((aligned(4096)));
static struct virtio_dev devs[VIRTIO_MAX_DEVICES];

static struct virtio_dev *first_dev(struct boot_info *bi, uint32_t id,
				    const char *who)
{
	unsigned int n = virtio_probe(bi, devs);

	for (unsigned int i = 0; i < n; i++)
		if (devs[i].device_id == id)
			return &devs[i];
	fail("%s: no %s device", who, virtio_type_name(id));
}

static const char *status_name(int st)
{
	switch (st) {
	case VIRTIO_BLK_S_OK:
		return "OK";
	case VIRTIO_BLK_S_IOERR:
		return "IOERR";
	case VIRTIO_BLK_S_UNSUPP:
		return "UNSUPP";
	}
	return "?";
}

/*
 * Sector s of the fill pattern: "FILL" + le32 sector (the rest of the sector
 * is left as it is: every guest instruction may be emulated, keep it cheap).
 */
static void fill_sector(uint8_t *p, uint64_t s)
{
	memcpy(p, "FILL", 4);
	p[4] = (uint8_t)s;
	p[5] = (uint8_t)(s >> 8);
	p[6] = (uint8_t)(s >> 16);
	p[7] = (uint8_t)(s >> 24);
}

static struct virtio_dev *blk_open(struct boot_info *bi, const char *who,
				   uint64_t *cap)
{
	struct virtio_dev *d = first_dev(bi, VIRTIO_ID_BLOCK, who);

	blk_init(d);
	*cap = blk_capacity(d);
	if (*cap < 2)
		fail("%s: disk too small (%lu sectors)", who, *cap);
	return d;
}

static void scenario_blk_fill(struct boot_info *bi)
{
	uint64_t cap, s;
	unsigned int ok = 0, ioerr = 0;
	size_t len;
	const char *expect = cmdline_param("faults.expect", &len);
	int want_ioerr = expect && len == 5 && !memcmp(expect, "ioerr", 5);
	struct virtio_dev *d = blk_open(bi, "faults", &cap);
	int st;

	tiny_print("faults: filling %lu sectors in %u-sector writes", cap,
		   FILL_SECTORS);
	for (s = 0; s < cap; s += FILL_SECTORS) {
		uint64_t n = cap - s < FILL_SECTORS ? cap - s : FILL_SECTORS;

		for (uint64_t i = 0; i < n; i++)
			fill_sector(big_buf + i * SECTOR_SIZE, s + i);
		st = blk_request(d, VIRTIO_BLK_T_OUT, s, big_buf,
				 (uint32_t)(n * SECTOR_SIZE));
		if (st == VIRTIO_BLK_S_OK) {
			ok++;
		} else if (st == VIRTIO_BLK_S_IOERR) {
			if (ioerr++ < MAX_PRINTED)
				tiny_print("faults: write sector %lu: IOERR", s);
		} else {
			fail("faults: write sector %lu: status %d", s, st);
		}
	}
	st = blk_request(d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	if (st != VIRTIO_BLK_S_OK && st != VIRTIO_BLK_S_IOERR)
		fail("faults: flush: status %d", st);
	tiny_print("faults: flush: %s", status_name(st));
	tiny_print("faults: %u writes ok, %u IOERR", ok, ioerr);
	/* The device still serves: sector 0 reads back what the first write put there. */
	memset(big_buf, 0, SECTOR_SIZE);
	st = blk_request(d, VIRTIO_BLK_T_IN, 0, big_buf, SECTOR_SIZE);
	if (st != VIRTIO_BLK_S_OK)
		fail("faults: read sector 0 after the writes: status %d", st);
	if (ok && memcmp(big_buf, "FILL\0\0\0\0", 8))
		fail("faults: sector 0 does not hold the fill pattern");
	tiny_print("faults: read sector 0 after the writes: OK");
	if (want_ioerr && !ioerr)
		fail("faults: expected IOERR from a failing host file, saw none");
}
DEFINE_SCENARIO("blk-fill", scenario_blk_fill);

/* Reads the whole disk; returns the IOERR count, printing the first few. */
static unsigned int read_all(struct virtio_dev *d, uint64_t cap, int print)
{
	unsigned int ioerr = 0;

	for (uint64_t s = 0; s < cap; s += FILL_SECTORS) {
		uint64_t n = cap - s < FILL_SECTORS ? cap - s : FILL_SECTORS;
		int st = blk_request(d, VIRTIO_BLK_T_IN, s, big_buf,
				     (uint32_t)(n * SECTOR_SIZE));

		if (st == VIRTIO_BLK_S_IOERR) {
			if (print && ioerr < MAX_PRINTED)
				tiny_print("faults: read sector %lu: IOERR", s);
			ioerr++;
		} else if (st != VIRTIO_BLK_S_OK) {
			fail("faults: read sector %lu: status %d", s, st);
		}
	}
	return ioerr;
}

static void scenario_blk_shrink(struct boot_info *bi)
{
	uint64_t cap;
	struct virtio_dev *d = blk_open(bi, "faults", &cap);
	unsigned int ioerr = read_all(d, cap, 1);

	if (ioerr)
		fail("faults: %u IOERR before the disk was shrunk", ioerr);
	tiny_print("faults: read %lu sectors: all OK; waiting for input", cap);
	tiny_print("faults: got input 0x%02x", serial_getc());
	ioerr = read_all(d, cap, 1);
	tiny_print("faults: after input: %u of %lu reads IOERR", ioerr,
		   (cap + FILL_SECTORS - 1) / FILL_SECTORS);
	if (!ioerr)
		fail("faults: expected IOERR reading past the shrunk file");
	/* Sector 0 is still inside the file: the device still serves. */
	if (blk_request(d, VIRTIO_BLK_T_IN, 0, big_buf, SECTOR_SIZE))
		fail("faults: read sector 0 after IOERR failed");
	tiny_print("faults: read sector 0 after IOERR: OK");
}
DEFINE_SCENARIO("blk-shrink", scenario_blk_shrink);

/* Block n (one sector): "CRASHBLK" + le64 n, then byte k = (n * 7 + k). */
static void crash_block(uint8_t *p, uint64_t n)
{
	for (unsigned int k = 0; k < SECTOR_SIZE; k++)
		p[k] = (uint8_t)(n * 7 + k);
	memcpy(p, "CRASHBLK", 8);
	for (unsigned int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(n >> (8 * i));
}

static void scenario_crash(struct boot_info *bi)
{
	uint64_t cap;
	struct virtio_dev *d = blk_open(bi, "crash", &cap);
	int st;

	tiny_print("crash: writing %lu blocks, a flush after each", cap);
	for (uint64_t n = 0; n < cap; n++) {
		crash_block(big_buf, n);
		st = blk_request(d, VIRTIO_BLK_T_OUT, n, big_buf, SECTOR_SIZE);
		if (st)
			fail("crash: write block %lu: status %d", n, st);
		st = blk_request(d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
		if (st)
			fail("crash: flush after block %lu: status %d", n, st);
		tiny_print("crash: flushed through block %lu", n);
	}
	tiny_print("crash: all %lu blocks flushed", cap);
}
DEFINE_SCENARIO("crash", scenario_crash);

#define UNFLUSHED_SECTORS	16

static void scenario_unflushed(struct boot_info *bi)
{
	uint64_t cap;
	struct virtio_dev *d = blk_open(bi, "unflushed", &cap);

	if (cap < UNFLUSHED_SECTORS)
		fail("unflushed: need %u sectors", UNFLUSHED_SECTORS);
	for (unsigned int s = 0; s < UNFLUSHED_SECTORS; s++) {
		for (unsigned int k = 0; k < SECTOR_SIZE; k++)
			big_buf[k] = (uint8_t)(s * 3 + k);
		memcpy(big_buf, "UNFLUSHED-SECTOR", 16);
		big_buf[16] = (uint8_t)s;
		if (blk_request(d, VIRTIO_BLK_T_OUT, s, big_buf, SECTOR_SIZE))
			fail("unflushed: write sector %u failed", s);
	}
	tiny_print("unflushed: wrote %u sectors without flush",
		   UNFLUSHED_SECTORS);
	tiny_print("halting forever");
	halt_forever();
}
DEFINE_SCENARIO("unflushed", scenario_unflushed);

#define NET_RX_BUFS	4
#define NET_FRAME_LEN	(VIRTIO_NET_HDR_SIZE + 60)
#define NET_BEFORE	20
#define NET_AFTER	200

static uint8_t net_rx[NET_RX_BUFS][1536] __attribute__((aligned(4096)));
static uint8_t net_tx[NET_FRAME_LEN] __attribute__((aligned(64)));

static void net_send(struct virtio_dev *d, unsigned int count)
{
	struct vbuf b = { net_tx, NET_FRAME_LEN, 0 };

	for (unsigned int i = 0; i < count; i++)
		vq_run(&d->vq[1], &b, 1, "tx");	/* FAILs if not completed */
}

static void scenario_net_gone(struct boot_info *bi)
{
	struct virtio_dev *d = first_dev(bi, VIRTIO_ID_NET, "net-gone");
	uint8_t *f = net_tx + VIRTIO_NET_HDR_SIZE;

	virtio_init(d, VIRTIO_NET_F_MAC, 2);
	for (unsigned int i = 0; i < NET_RX_BUFS; i++) {
		struct vbuf b = { net_rx[i], sizeof(net_rx[i]),
				  VIRTQ_DESC_F_WRITE };

		vq_chain(&d->vq[0], i, &b, 1);
		vq_publish(&d->vq[0], i);
	}
	vq_notify(&d->vq[0]);
	/* Broadcast, our MAC, local experimental EtherType 0x88b5. */
	memset(net_tx, 0, sizeof(net_tx));
	memset(f, 0xff, 6);
	for (unsigned int i = 0; i < 6; i++)
		f[6 + i] = vio_config8(d, i);
	f[12] = 0x88;
	f[13] = 0xb5;
	memcpy(f + 14, "microvm net-gone", 16);
	net_send(d, NET_BEFORE);
	tiny_print("net-gone: sent %u frames; waiting for input", NET_BEFORE);
	tiny_print("net-gone: got input 0x%02x", serial_getc());
	net_send(d, NET_AFTER);
	tiny_print("net-gone: sent %u more frames, all completed", NET_AFTER);
	virtio_reset(d);
}
DEFINE_SCENARIO("net-gone", scenario_net_gone);
