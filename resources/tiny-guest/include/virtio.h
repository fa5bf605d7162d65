/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-mmio (version 2, virtio 1.x) drivers of the tiny guest, written
 * against docs/virtio-contract.md. Everything is polled: interrupts stay
 * off, a request is "published, notified, then the used ring is polled
 * with a bounded wait". Queues are split virtqueues of VQ_SIZE entries.
 */
#ifndef TINY_VIRTIO_H
#define TINY_VIRTIO_H

#include "tiny.h"
#include "x86.h"

/* MMIO registers (virtio 1.x 4.2.2) */
#define VIRTIO_MMIO_MAGIC		0x000	/* "virt" */
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEV_FEATURES	0x010
#define VIRTIO_MMIO_DEV_FEATURES_SEL	0x014
#define VIRTIO_MMIO_DRV_FEATURES	0x020
#define VIRTIO_MMIO_DRV_FEATURES_SEL	0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INT_STATUS		0x060
#define VIRTIO_MMIO_INT_ACK		0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LO	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HI	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LO	0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HI	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LO	0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HI	0x0a4
#define VIRTIO_MMIO_CONFIG_GEN		0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC_VALUE		0x74726976
#define VIRTIO_MMIO_VENDOR_MICROVM	0x4d564d4d	/* "MMVM" */

/* Status bits (2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE	0x01
#define VIRTIO_STATUS_DRIVER		0x02
#define VIRTIO_STATUS_DRIVER_OK		0x04
#define VIRTIO_STATUS_FEATURES_OK	0x08
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

#define VIRTIO_INT_USED_RING		0x1	/* InterruptStatus bits */
#define VIRTIO_INT_CONFIG		0x2

#define VIRTIO_F_VERSION_1		(1ULL << 32)

/* Device IDs */
#define VIRTIO_ID_NET			1
#define VIRTIO_ID_BLOCK			2
#define VIRTIO_ID_RNG			4

/* Block device (5.2) */
#define VIRTIO_BLK_F_SEG_MAX		(1ULL << 2)
#define VIRTIO_BLK_F_RO			(1ULL << 5)
#define VIRTIO_BLK_F_BLK_SIZE		(1ULL << 6)
#define VIRTIO_BLK_F_FLUSH		(1ULL << 9)
#define VIRTIO_BLK_T_IN			0
#define VIRTIO_BLK_T_OUT		1
#define VIRTIO_BLK_T_FLUSH		4
#define VIRTIO_BLK_T_GET_ID		8
#define VIRTIO_BLK_S_OK			0
#define VIRTIO_BLK_S_IOERR		1
#define VIRTIO_BLK_S_UNSUPP		2
#define VIRTIO_BLK_ID_BYTES		20
#define SECTOR_SIZE			512

/* Network device (5.1) */
#define VIRTIO_NET_F_MAC		(1ULL << 5)
#define VIRTIO_NET_HDR_SIZE		12	/* struct virtio_net_hdr_v1 */

/* Split virtqueue (2.7) */
#define VQ_SIZE			16
#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2	/* device writes (vs reads) */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[VQ_SIZE];
	uint16_t used_event;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[VQ_SIZE];
	uint16_t avail_event;
};

struct virtio_dev;

struct virtq {
	struct virtio_dev *dev;
	unsigned int index;		/* queue number on the device */
	struct virtq_desc *desc;	/* all three in one page of our BSS */
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t avail_idx;		/* next avail->idx we publish */
	uint16_t last_used;		/* used->idx we have consumed up to */
};

#define VIRTIO_MAX_DEVICES	19	/* IRQs 5..23, as the VMM allows */
#define VIRTIO_MAX_QUEUES	2	/* net: rx + tx */

struct virtio_dev {
	unsigned int index;		/* slot: position in ACPI / on the command line */
	uint64_t base, size;		/* MMIO window */
	unsigned int irq;
	uint32_t device_id;
	unsigned int nth;		/* N in blk<N>/net<N>/rng<N> */
	uint64_t dev_features;		/* offered by the device */
	uint64_t features;		/* accepted by us */
	unsigned int nqueues;
	struct virtq vq[VIRTIO_MAX_QUEUES];
};

/* Register access; config space bytes go through mmio_read8. */
static inline uint32_t vio_read(const struct virtio_dev *d, uint32_t reg)
{
	return *(volatile uint32_t *)(d->base + reg);
}

static inline void vio_write(const struct virtio_dev *d, uint32_t reg,
			     uint32_t val)
{
	*(volatile uint32_t *)(d->base + reg) = val;
}

static inline uint8_t vio_config8(const struct virtio_dev *d, uint32_t off)
{
	return *(volatile uint8_t *)(d->base + VIRTIO_MMIO_CONFIG + off);
}

static inline uint32_t vio_config32(const struct virtio_dev *d, uint32_t off)
{
	return vio_read(d, VIRTIO_MMIO_CONFIG + off);
}

/* Full barrier between ring memory and MMIO (plain integer: locked add). */
static inline void vio_mb(void)
{
	__asm__ volatile("lock addl $0, (%%rsp)" : : : "memory", "cc");
}

/*
 * Wait limits, counted in polls of the used ring with one port 0x80 read
 * (an I/O exit) each: about 1-2 us on fast hosts, ~28 us where KVM
 * emulates the guest. A request that must complete, and one that must NOT
 * complete (the device thread answers a notify within microseconds).
 */
#define VIO_WAIT_DONE		500000	/* >= 0.5 s anywhere, ~14 s emulated */
#define VIO_WAIT_NONE		10000	/* >= 10 ms anywhere */

/* virtio.c: finding devices (ACPI or command line), transport, queues */
unsigned int virtio_find(const struct boot_info *bi, struct virtio_dev *devs);
void virtio_report_source(const struct boot_info *bi);
unsigned int virtio_probe(const struct boot_info *bi, struct virtio_dev *devs);
const char *virtio_type_name(uint32_t device_id);
void virtio_reset(struct virtio_dev *d);
void virtio_begin(struct virtio_dev *d, uint64_t wanted);  /* to FEATURES_OK */
int virtio_queue_setup(struct virtio_dev *d, unsigned int q, unsigned int num);
int virtio_queue_program(struct virtio_dev *d, unsigned int q,
			 unsigned int num, const void *desc,
			 const void *avail, const void *used);
void virtio_driver_ok(struct virtio_dev *d);
void virtio_init(struct virtio_dev *d, uint64_t wanted, unsigned int nqueues);
uint32_t virtio_config_gen(const struct virtio_dev *d);

/* One buffer of a descriptor chain. */
struct vbuf {
	const void *addr;
	uint32_t len;
	uint16_t flags;		/* 0 or VIRTQ_DESC_F_WRITE */
};

void vq_chain(struct virtq *vq, unsigned int head, const struct vbuf *b,
	      unsigned int n);
void vq_publish(struct virtq *vq, unsigned int head);
void vq_notify(struct virtq *vq);
int vq_poll(struct virtq *vq, unsigned long limit, uint32_t *id, uint32_t *len);
uint32_t vq_submit(struct virtq *vq, const char *what);
uint32_t vq_run(struct virtq *vq, const struct vbuf *b, unsigned int n,
		const char *what);

/* blk.c */
struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};
void blk_init(struct virtio_dev *d);
uint64_t blk_capacity(const struct virtio_dev *d);
int blk_request(struct virtio_dev *d, uint32_t type, uint64_t sector,
		void *buf, uint32_t len);
void blk_test(struct virtio_dev *d);

/* net.c, rng.c */
void net_test(struct virtio_dev *d);
void rng_test(struct virtio_dev *d);

/* bench_irq.c: the irqfd-roundtrip bench loop (the only IDT user) */
void irq_roundtrip_loop(struct virtio_dev *d, uint64_t n);

/* Dotted quad from "tiny.<key>=" (or def), big-endian bytes in ip[4]. */
void cmdline_ip(const char *key, const char *def, uint8_t ip[4]);

#endif
