// SPDX-License-Identifier: Apache-2.0
/*
 * The "virtio" scenario: probe every device (from the ACPI DSDT, else the
 * virtio_mmio.device= entries of the command line) and run its driver's
 * test (blk.c, net.c, rng.c). Without devices it FAILs: asking for this
 * scenario without devices is a test mistake.
 */
#include "virtio.h"

static void scenario_virtio(struct boot_info *bi)
{
	static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
	unsigned int n = virtio_probe(bi, devs);

	if (!n)
		fail("virtio: no devices, neither in ACPI nor on the command line");
	for (unsigned int i = 0; i < n; i++) {
		switch (devs[i].device_id) {
		case VIRTIO_ID_BLOCK:
			blk_test(&devs[i]);
			break;
		case VIRTIO_ID_NET:
			net_test(&devs[i]);
			break;
		case VIRTIO_ID_RNG:
			rng_test(&devs[i]);
			break;
		default:
			fail("virtio: device %u: no driver for id %u", i,
			     devs[i].device_id);
		}
	}
}
DEFINE_SCENARIO("virtio", scenario_virtio);
