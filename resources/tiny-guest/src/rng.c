// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-rng driver (virtio 1.x 5.4) and the rng part of the "virtio"
 * scenario: read 32 bytes (the device may return fewer per request, so
 * ask again for the rest), print them in hex, FAIL if all are equal.
 */
#include "virtio.h"

#define RNG_BYTES	32
#define RNG_MAX_REQUESTS 64

static uint8_t rng_buf[RNG_BYTES] __attribute__((aligned(64)));

void rng_test(struct virtio_dev *d)
{
	char hex[2 * RNG_BYTES + 1];
	unsigned int got = 0, requests = 0, same = 1;

	virtio_init(d, 0, 1);
	memset(rng_buf, 0, sizeof(rng_buf));
	while (got < RNG_BYTES) {
		struct vbuf b = { rng_buf + got, RNG_BYTES - got,
				  VIRTQ_DESC_F_WRITE };
		uint32_t len = vq_run(&d->vq[0], &b, 1, "entropy request");

		if (len > RNG_BYTES - got)
			fail("rng%u: used length %u for a %u-byte buffer",
			     d->nth, len, RNG_BYTES - got);
		got += len;
		if (++requests == RNG_MAX_REQUESTS)
			fail("rng%u: only %u bytes after %u requests", d->nth,
			     got, requests);
	}
	for (unsigned int i = 0; i < RNG_BYTES; i++) {
		hex[2 * i] = "0123456789abcdef"[rng_buf[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[rng_buf[i] & 15];
		if (rng_buf[i] != rng_buf[0])
			same = 0;
	}
	hex[2 * RNG_BYTES] = '\0';
	tiny_print("rng%u: %u bytes: %s", d->nth, RNG_BYTES, hex);
	if (same)
		fail("rng%u: all %u bytes are 0x%02x", d->nth, RNG_BYTES,
		     rng_buf[0]);
}
