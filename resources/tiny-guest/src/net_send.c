// SPDX-License-Identifier: Apache-2.0
/*
 * The "net-send" scenario (docs/devices.md, "Rate limits"): send
 * tiny.netsend.frames (default 64) full-size Ethernet frames (1514 bytes:
 * broadcast, our MAC, local experimental EtherType 0x88b5) on the first net
 * device, one at a time, each waited for. The host counts them on its TAP and
 * times the run: with --net ...,bw= it cannot end sooner than the limit
 * allows. No rx buffers are posted.
 *
 * Prints "tiny: net-send: <n> frames of 1514 bytes sent".
 */
#include "virtio.h"

#define FRAME_LEN	1514

static uint8_t frame[VIRTIO_NET_HDR_SIZE + FRAME_LEN] __attribute__((aligned(64)));
static struct virtio_dev devs[VIRTIO_MAX_DEVICES];

static void scenario_net_send(struct boot_info *bi)
{
	uint64_t frames = 64;
	uint8_t *f = frame + VIRTIO_NET_HDR_SIZE;
	struct virtio_dev *d = NULL;
	unsigned int n = virtio_probe(bi, devs);
	struct vbuf b = { frame, sizeof(frame), 0 };

	for (unsigned int i = 0; i < n && !d; i++)
		if (devs[i].device_id == VIRTIO_ID_NET)
			d = &devs[i];
	if (!d)
		fail("net-send: no net device");
	cmdline_param_u64("netsend.frames", &frames);
	virtio_init(d, VIRTIO_NET_F_MAC, 2);
	memset(frame, 0, sizeof(frame));
	memset(f, 0xff, 6);
	for (unsigned int i = 0; i < 6; i++)
		f[6 + i] = vio_config8(d, i);
	f[12] = 0x88;
	f[13] = 0xb5;
	memcpy(f + 14, "microvm net-send", 16);
	for (uint64_t i = 0; i < frames; i++)
		vq_run(&d->vq[1], &b, 1, "tx");	/* FAILs if not completed */
	tiny_print("net-send: %lu frames of %u bytes sent", frames, FRAME_LEN);
	virtio_reset(d);
}
DEFINE_SCENARIO("net-send", scenario_net_send);
