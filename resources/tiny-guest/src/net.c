// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-net driver (virtio 1.x 5.1) and the net part of the "virtio"
 * scenario: read the MAC, post rx buffers, send an ARP request "who-has
 * <tiny.net.peer> tell <tiny.net.ip>" to broadcast and wait (bounded) for
 * the peer's ARP reply. Other frames (IPv6 router solicitations, ...) are
 * counted and ignored.
 */
#include "virtio.h"

#define RX_QUEUE	0
#define TX_QUEUE	1
#define RX_BUFS		8
#define RX_BUF_SIZE	1536		/* >= 12-byte header + 1514 */
#define ARP_FRAME_LEN	60		/* 42 bytes of ARP, zero padded */
#define ARP_ATTEMPTS	3
#define ARP_WAIT_SLICES	100		/* per attempt, 1000 polls each */
#define ETH_P_ARP	0x0806
#define ETH_P_IP	0x0800

static uint8_t rx_bufs[RX_BUFS][RX_BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t tx_buf[VIRTIO_NET_HDR_SIZE + ARP_FRAME_LEN]
	__attribute__((aligned(64)));

/* Dotted quad from "tiny.<key>=" or the default; FAIL on garbage. */
void cmdline_ip(const char *key, const char *def, uint8_t ip[4])
{
	size_t len;
	const char *s = cmdline_param(key, &len);
	unsigned int part = 0, digits = 0, v = 0;
	size_t i;

	if (!s) {
		s = def;
		len = strlen(def);
	}
	for (i = 0; i <= len; i++) {	/* a '.' after the end */
		char c = i < len ? s[i] : '.';

		if (c >= '0' && c <= '9' && digits < 3) {
			v = v * 10 + (c - '0');
			digits++;
		} else if (c == '.' && digits && v <= 255 && part < 4) {
			ip[part++] = (uint8_t)v;
			v = digits = 0;
		} else {
			break;
		}
	}
	if (i <= len || part != 4)
		fail("bad IPv4 address in tiny.%s=%.*s", key, (int)len, s);
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Ethernet broadcast + ARP request (RFC 826) behind a zero net header. */
static void build_arp_request(const uint8_t mac[6], const uint8_t ip[4],
			      const uint8_t peer[4])
{
	uint8_t *f = tx_buf + VIRTIO_NET_HDR_SIZE;

	memset(tx_buf, 0, sizeof(tx_buf));
	memset(f, 0xff, 6);		/* destination: broadcast */
	memcpy(f + 6, mac, 6);		/* source */
	put_be16(f + 12, ETH_P_ARP);
	put_be16(f + 14, 1);		/* htype Ethernet */
	put_be16(f + 16, ETH_P_IP);	/* ptype IPv4 */
	f[18] = 6;			/* hlen */
	f[19] = 4;			/* plen */
	put_be16(f + 20, 1);		/* op request */
	memcpy(f + 22, mac, 6);		/* sender MAC */
	memcpy(f + 28, ip, 4);		/* sender IP */
	memset(f + 32, 0, 6);		/* target MAC: unknown */
	memcpy(f + 38, peer, 4);	/* target IP */
}

/* Is this frame an ARP reply from peer? Then copy the sender MAC. */
static int is_arp_reply(const uint8_t *f, uint32_t len, const uint8_t peer[4],
			uint8_t mac[6])
{
	if (len < 42 || be16(f + 12) != ETH_P_ARP || be16(f + 14) != 1 ||
	    be16(f + 16) != ETH_P_IP || f[18] != 6 || f[19] != 4 ||
	    be16(f + 20) != 2 || memcmp(f + 28, peer, 4))
		return 0;
	memcpy(mac, f + 22, 6);
	return 1;
}

void net_test(struct virtio_dev *d)
{
	struct virtq *rx = &d->vq[RX_QUEUE], *tx = &d->vq[TX_QUEUE];
	uint8_t mac[6], peer_mac[6], ip[4], peer[4];
	unsigned int sent = 0, received = 0, got_reply = 0;
	struct vbuf b;
	uint32_t gen;

	cmdline_ip("net.ip", "10.0.2.15", ip);
	cmdline_ip("net.peer", "10.0.2.1", peer);
	virtio_init(d, VIRTIO_NET_F_MAC, 2);
	if (!(d->features & VIRTIO_NET_F_MAC))
		fail("net%u: device does not offer VIRTIO_NET_F_MAC", d->nth);
	do {
		gen = virtio_config_gen(d);
		for (unsigned int i = 0; i < 6; i++)
			mac[i] = vio_config8(d, i);
	} while (gen != virtio_config_gen(d));
	tiny_print("net%u: mac %02x:%02x:%02x:%02x:%02x:%02x", d->nth, mac[0],
		   mac[1], mac[2], mac[3], mac[4], mac[5]);

	/* All rx buffers first, one descriptor each (descriptor i = buf i). */
	for (unsigned int i = 0; i < RX_BUFS; i++) {
		b = (struct vbuf){ rx_bufs[i], RX_BUF_SIZE, VIRTQ_DESC_F_WRITE };
		vq_chain(rx, i, &b, 1);
		vq_publish(rx, i);
	}
	vq_notify(rx);

	build_arp_request(mac, ip, peer);
	for (unsigned int a = 0; a < ARP_ATTEMPTS && !got_reply; a++) {
		b = (struct vbuf){ tx_buf, sizeof(tx_buf), 0 };
		vq_run(tx, &b, 1, "tx");
		sent++;
		for (unsigned int s = 0; s < ARP_WAIT_SLICES && !got_reply; s++) {
			uint32_t id, len;

			/* At most one frame per slice: a flood cannot hold us. */
			if (!vq_poll(rx, 1000, &id, &len)) {
				if (id >= RX_BUFS || len < VIRTIO_NET_HDR_SIZE ||
				    len > RX_BUF_SIZE)
					fail("net%u: rx used entry id %u len %u",
					     d->nth, id, len);
				received++;
				got_reply = is_arp_reply(rx_bufs[id] +
					VIRTIO_NET_HDR_SIZE,
					len - VIRTIO_NET_HDR_SIZE, peer, peer_mac);
				vq_publish(rx, id);	/* recycle */
				vq_notify(rx);
			}
		}
	}
	if (!got_reply)
		fail("net%u: no ARP reply from %u.%u.%u.%u after %u requests "
		     "(%u other frames received)", d->nth, peer[0], peer[1],
		     peer[2], peer[3], sent, received);
	tiny_print("net%u: arp reply: %u.%u.%u.%u is-at "
		   "%02x:%02x:%02x:%02x:%02x:%02x", d->nth, peer[0], peer[1],
		   peer[2], peer[3], peer_mac[0], peer_mac[1], peer_mac[2],
		   peer_mac[3], peer_mac[4], peer_mac[5]);
	tiny_print("net%u: sent %u frames, received %u frames", d->nth, sent,
		   received);
	virtio_reset(d);	/* stop the device using our rx buffers */
}
