// SPDX-License-Identifier: Apache-2.0
/*
 * The `bench` scenario: tiny.test=bench tiny.bench=<kind>:<N> makes N exits
 * of one kind, then PASS. The guest keeps no clock: the bench (benches/)
 * times whole runs from outside and computes (t(N) - t(0)) / N.
 *
 *   none              no exit (the t(0) baseline; N is ignored)
 *   pio-read          inb from port 0x80 (no device: the VMM answers 0xff)
 *   pio-write         outb to port 0x80
 *   mmio-read         32-bit read of 0xc0000000 (unassigned, MMIO gap)
 *   mmio-write        32-bit write of 0xc0000000
 *   ioeventfd-notify  virtio QueueNotify (queue 0) of the first virtio-mmio
 *                     device (ACPI or command line) after DRIVER_OK: KVM signals the device's
 *                     ioeventfd, no exit to the VMM's user space
 *   rng-read          N bytes from the first virtio-rng, 4 KiB requests
 *   irqfd-roundtrip   N 16-byte requests to the first virtio-rng, each
 *                     waited for with "sti; hlt" until its interrupt
 *                     (IOAPIC -> vector 0x40) arrives; see bench_irq.c
 *   blk-{read,write}-{4k,64k}
 *                     N bytes sequentially from/to the first virtio-blk
 *                     in 4 KiB or 64 KiB requests (wrapping at its end)
 *
 * After PASS it writes port 0xf4 (QEMU's isa-debug-exit, if present, ends
 * QEMU there; microvm ignores it) and resets through the i8042.
 */
#include "tiny.h"
#include "x86.h"
#include "virtio.h"

#define BENCH_PORT		0x80
#define BENCH_MMIO		0xc0000000ULL
#define ISA_DEBUG_EXIT_PORT	0xf4

static uint8_t io_buf[64 * 1024] __attribute__((aligned(4096)));

static int is(const char *kind, size_t len, const char *name)
{
	return strlen(name) == len && !memcmp(kind, name, len);
}

/*
 * The first virtio-mmio device of type `id` (0: any), from ACPI or the
 * command line as virtio_find() sees them. Only magic and version are
 * checked, not microvm's vendor id as virtio_probe() does: QEMU's devices
 * serve these loops too.
 */
static struct virtio_dev *find_device(const struct boot_info *bi, uint32_t id)
{
	static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
	unsigned int n = virtio_find(bi, devs);

	for (unsigned int i = 0; i < n; i++) {
		struct virtio_dev *d = &devs[i];

		if (!d->base || d->base + 0x200 > 4 * GiB)
			fail("bench: device %u at 0x%lx is outside our map", i,
			     d->base);
		if (vio_read(d, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE ||
		    vio_read(d, VIRTIO_MMIO_VERSION) != 2)
			fail("bench: no virtio-mmio version 2 device at 0x%lx",
			     d->base);
		d->device_id = vio_read(d, VIRTIO_MMIO_DEVICE_ID);
		if (!id || d->device_id == id)
			return d;
	}
	fail("bench: no virtio-mmio device%s",
	     id == VIRTIO_ID_BLOCK ? " of type blk" :
	     id == VIRTIO_ID_RNG ? " of type rng" : "");
}

static void notify_loop(const struct boot_info *bi, uint64_t n)
{
	struct virtio_dev *d = find_device(bi, 0);

	virtio_init(d, VIRTIO_F_VERSION_1, 1);
	for (uint64_t i = 0; i < n; i++)
		vio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

static void rng_loop(const struct boot_info *bi, uint64_t bytes)
{
	struct virtio_dev *d = find_device(bi, VIRTIO_ID_RNG);
	uint64_t got = 0;

	virtio_init(d, VIRTIO_F_VERSION_1, 1);
	while (got < bytes) {
		struct vbuf b = { io_buf, 4096, VIRTQ_DESC_F_WRITE };
		uint32_t len = vq_run(&d->vq[0], &b, 1, "entropy request");

		if (!len || len > 4096)
			fail("bench: rng used length %u", len);
		got += len;
	}
}

static void blk_loop(const struct boot_info *bi, uint64_t bytes, uint32_t bs,
		     uint32_t type)
{
	struct virtio_dev *d = find_device(bi, VIRTIO_ID_BLOCK);
	uint64_t capacity, sector = 0;

	virtio_init(d, VIRTIO_F_VERSION_1, 1);
	capacity = vio_config32(d, 0) | (uint64_t)vio_config32(d, 4) << 32;
	if (capacity < 2 * (bs / 512))
		fail("bench: disk of %lu sectors is too small", capacity);
	for (uint64_t done = 0; done < bytes; done += bs) {
		int st;

		if (sector + bs / 512 > capacity)
			sector = 0;
		st = blk_request(d, type, sector, io_buf, bs);
		if (st)
			fail("bench: blk request at sector %lu: status %d",
			     sector, st);
		sector += bs / 512;
	}
}

static void scenario_bench(struct boot_info *bi)
{
	size_t len, klen = 0;
	const char *spec = cmdline_param("bench", &len);
	uint64_t n = 0;

	if (!spec)
		fail("bench: no tiny.bench=<kind>:<N>");
	while (klen < len && spec[klen] != ':')
		klen++;
	if (klen < len && parse_u64(spec + klen + 1, len - klen - 1, &n))
		fail("bench: bad count in tiny.bench=%.*s", (int)len, spec);

	if (is(spec, klen, "none"))
		n = 0;
	else if (is(spec, klen, "pio-read"))
		for (uint64_t i = 0; i < n; i++)
			(void)inb(BENCH_PORT);
	else if (is(spec, klen, "pio-write"))
		for (uint64_t i = 0; i < n; i++)
			outb(BENCH_PORT, 0);
	else if (is(spec, klen, "mmio-read"))
		for (uint64_t i = 0; i < n; i++)
			(void)mmio_read32(BENCH_MMIO);
	else if (is(spec, klen, "mmio-write"))
		for (uint64_t i = 0; i < n; i++)
			mmio_write32(BENCH_MMIO, 0);
	else if (is(spec, klen, "ioeventfd-notify"))
		notify_loop(bi, n);
	else if (is(spec, klen, "irqfd-roundtrip"))
		irq_roundtrip_loop(find_device(bi, VIRTIO_ID_RNG), n);
	else if (is(spec, klen, "rng-read"))
		rng_loop(bi, n);
	else if (is(spec, klen, "blk-read-4k"))
		blk_loop(bi, n, 4096, VIRTIO_BLK_T_IN);
	else if (is(spec, klen, "blk-read-64k"))
		blk_loop(bi, n, 65536, VIRTIO_BLK_T_IN);
	else if (is(spec, klen, "blk-write-4k"))
		blk_loop(bi, n, 4096, VIRTIO_BLK_T_OUT);
	else if (is(spec, klen, "blk-write-64k"))
		blk_loop(bi, n, 65536, VIRTIO_BLK_T_OUT);
	else
		fail("bench: unknown kind %.*s", (int)klen, spec);
	tiny_print("bench: %.*s x %lu done", (int)klen, spec, n);
	tiny_print("PASS");
	outb(ISA_DEBUG_EXIT_PORT, 0);
	reset_machine();
}
DEFINE_SCENARIO("bench", scenario_bench);
