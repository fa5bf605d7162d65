// SPDX-License-Identifier: Apache-2.0
/*
 * The "blk-inflight" scenario: many virtio-blk requests in flight at once,
 * submitted by every CPU and completed by interrupt handlers, the way
 * Linux drives the device (issue 14).
 *
 * The first blk device gets one queue of QN entries. Every CPU (tiny.cpus,
 * the BSP and each AP) runs tiny.inflight.rounds rounds (default 64): it
 * fills `batch` chains (header, data, status) under the queue lock, makes
 * them available with one avail.idx update, notifies once, then waits with
 * interrupts on until every chain of its batch is completed and checks
 * status, used length and data. Requests mix reads of the host's pattern
 * region, writes of a per-round stamp to the slot's own area and read-backs
 * of the slot's previous write. A last round writes FINAL_STAMP everywhere
 * (the host test checks the file).
 *
 * Interrupts are taken like Linux's vm_interrupt(): read InterruptStatus,
 * write it to InterruptACK, and if the used-ring bit was set, drain the
 * used ring under the queue lock. tiny.inflight.irq=all (default) routes the
 * IOAPIC pin to every CPU (logical destination: all handlers race), =one to
 * the last CPU only (what Linux does).
 *
 * Then, with 2 or more CPUs, the feed phase: CPU 0 keeps FEED_DEPTH reads
 * of 16 MiB in flight by polling the used ring and making each completed
 * chain available again at once (a polling driver: the device never runs
 * dry), while CPU 1 reads InterruptStatus in a loop. A register read must
 * not wait for the device's I/O (a vCPU stuck in the VMM takes no NMI or
 * IPI): CPU 1 must get FEED_READS answers before the device has served
 * FEED_LIMIT reads.
 *
 * Disk layout (512-byte sectors, capacity >= DISK_SECTORS_MIN): sectors
 * [0, READ_SECTORS) hold word w of sector s = pattern(s, w), written by the
 * host; slot k (CPU c, request i: k = c * BATCH_MAX + i) owns the
 * SLOT_SECTORS sectors from WRITE_BASE + k * SLOT_SECTORS.
 *
 * Output: "tiny: blk-inflight: cpu <c>: <n> requests ok" per CPU, then
 * "tiny: blk-inflight: <cpus> cpus, <n> requests, up to <m> in flight,
 * <i> interrupts (<s> without the used-ring bit), irq <all|one>", then
 * "tiny: blk-inflight: feed: cpu 1 read InterruptStatus <n> times while
 * the device served <m> reads of 16 MiB".
 */
#include "irq.h"
#include "virtio.h"

#define QN			256
#define IRQ_VECTOR		0x41
#define MAX_IF_CPUS		4
#define BATCH_MAX		32
#define DESCS_PER_REQ		3
#define SLOT_SECTORS		4	/* a slot's area; reads of 1..4 sectors */
#define STRIDE			16	/* words filled and checked: 0, 16, ... */
#define READ_SECTORS		2048
#define WRITE_BASE		READ_SECTORS
#define DISK_SECTORS_MIN	(FEED_BYTES / SECTOR_SIZE)	/* > WRITE_BASE + NREQ * SLOT_SECTORS */
#define NREQ			(MAX_IF_CPUS * BATCH_MAX)
#define FINAL_STAMP		0xffffffffu
#define DEFAULT_ROUNDS		64
#define WAIT_LIMIT		2000000UL	/* polls (io_delay) per batch */
#define START_LIMIT		5000000UL
#define FEED_DEPTH		(QN / DESCS_PER_REQ)
#define FEED_BYTES		(16u << 20)	/* slow to serve, quick to make available */
#define FEED_BUF		0x3000000ULL	/* 48 MiB: every feed read lands here */
#define FEED_READS		100
#define FEED_LIMIT		100

enum req_kind { READ_PATTERN, WRITE_STAMP, READ_BACK };
enum req_state { FREE, INFLIGHT, DONE };

struct used_ring {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[QN];
	uint16_t avail_event;
};

struct avail_ring {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[QN];
	uint16_t used_event;
};

struct req {
	struct blk_hdr hdr;
	volatile uint8_t status;
	volatile uint8_t state;
	uint8_t kind;
	uint32_t sectors;
	uint32_t stamp;			/* WRITE_STAMP/READ_BACK */
	uint32_t last_stamp;		/* what the slot's area holds, 0: none */
	volatile uint32_t used_len;
};

static struct virtq_desc descs[QN] __attribute__((aligned(4096)));
static struct avail_ring avail __attribute__((aligned(4096)));
static struct used_ring used __attribute__((aligned(4096)));
static struct req reqs[NREQ];
static uint8_t bufs[NREQ][SLOT_SECTORS * SECTOR_SIZE]
	__attribute__((aligned(4096)));

static struct virtio_dev dev;
static volatile uint32_t qlock;
static uint16_t avail_idx, last_used;	/* under qlock */
static unsigned int ncpus, batch, max_inflight;
static uint64_t rounds = DEFAULT_ROUNDS;
static volatile uint32_t ready, go, finished, irqs, spurious;
static volatile uint32_t feed_on, feed_done, isr_reads;
static volatile uint32_t done_count[MAX_IF_CPUS];
/* First error seen by an interrupt handler (which must not print). */
static volatile uint32_t irq_error, irq_error_id, irq_error_state;

uint32_t inflight_pattern(uint64_t sector, uint32_t word);
uint32_t inflight_pattern(uint64_t sector, uint32_t word)
{
	return (uint32_t)((sector << 8) | word) * 2654435761u;
}

static uint32_t stamped(uint64_t sector, uint32_t word, uint32_t stamp)
{
	return inflight_pattern(sector, word) ^ stamp;
}

static void lock(void)
{
	uint32_t old;

	do {
		old = 1;
		__asm__ volatile("xchgl %0, %1" : "+r"(old), "+m"(qlock)
				 : : "memory");
	} while (old);
}

static void unlock(void)
{
	barrier();
	qlock = 0;
}

static void atomic_inc(volatile uint32_t *p)
{
	__asm__ volatile("lock incl %0" : "+m"(*p) : : "memory", "cc");
}

static int selected(void)
{
	size_t len;
	const char *name = cmdline_param("test", &len);

	return name && len == 12 && !memcmp(name, "blk-inflight", 12);
}

/* ---- interrupt side -------------------------------------------------- */

static void irq_record(uint32_t what, uint32_t id, uint32_t state)
{
	if (irq_error)
		return;
	irq_error_id = id;
	irq_error_state = state;
	barrier();
	irq_error = what;
}

/* Every used entry since the last drain; called with qlock held. */
static void drain_used(void)
{
	while (*(volatile uint16_t *)&used.idx != last_used) {
		struct virtq_used_elem *e;
		uint32_t id, k;

		vio_mb();	/* idx before the element */
		e = &used.ring[last_used % QN];
		id = e->id;
		k = id / DESCS_PER_REQ;
		last_used++;
		if (id % DESCS_PER_REQ || k >= NREQ) {
			irq_record(1, id, 0);
			continue;
		}
		if (reqs[k].state != INFLIGHT) {
			irq_record(2, id, reqs[k].state);
			continue;
		}
		reqs[k].used_len = e->len;
		barrier();
		reqs[k].state = DONE;
		done_count[k / BATCH_MAX]++;
	}
}

/* vm_interrupt(): InterruptStatus, InterruptACK, then the used ring. */
__attribute__((used)) void inflight_irq(void);
void inflight_irq(void)
{
	uint32_t isr = vio_read(&dev, VIRTIO_MMIO_INT_STATUS);

	vio_write(&dev, VIRTIO_MMIO_INT_ACK, isr);
	atomic_inc(&irqs);
	if (isr & VIRTIO_INT_USED_RING) {
		lock();
		drain_used();
		unlock();
	} else {
		atomic_inc(&spurious);
	}
	lapic_eoi();
}

extern const char inflight_irq_stub[];
__asm__(
	"	.text\n"
	"	.globl	inflight_irq_stub\n"
	"inflight_irq_stub:\n"		/* RSP is 16-byte aligned - 40 */
	"	pushq	%rax\n	pushq	%rcx\n	pushq	%rdx\n"
	"	pushq	%rsi\n	pushq	%rdi\n	pushq	%r8\n"
	"	pushq	%r9\n	pushq	%r10\n	pushq	%r11\n"
	"	call	inflight_irq\n"
	"	popq	%r11\n	popq	%r10\n	popq	%r9\n"
	"	popq	%r8\n	popq	%rdi\n	popq	%rsi\n"
	"	popq	%rdx\n	popq	%rcx\n	popq	%rax\n"
	"	iretq\n");

/* ---- submitting side ------------------------------------------------- */

static uint64_t slot_sector(unsigned int k)
{
	return WRITE_BASE + (uint64_t)k * SLOT_SECTORS;
}

/* Next request of slot k in round r (rnd: the CPU's generator). */
static void prepare(unsigned int k, uint64_t r, uint32_t *rnd)
{
	struct req *q = &reqs[k];
	uint32_t words = SLOT_SECTORS * SECTOR_SIZE / 4, *p = (uint32_t *)bufs[k];

	*rnd = *rnd * 1103515245u + 12345u;
	q->sectors = 1 + (*rnd >> 16) % SLOT_SECTORS;
	q->kind = (uint8_t)((r + k) % 3);
	if (r == rounds)		/* the last round: FINAL_STAMP everywhere */
		q->kind = WRITE_STAMP, q->sectors = SLOT_SECTORS;
	if (q->kind == READ_BACK && !q->last_stamp)
		q->kind = READ_PATTERN;
	q->hdr.reserved = 0;
	q->hdr.type = q->kind == WRITE_STAMP ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	if (q->kind == READ_PATTERN) {
		q->hdr.sector = (*rnd >> 4) % (READ_SECTORS - SLOT_SECTORS);
	} else {
		q->hdr.sector = slot_sector(k);
		q->sectors = SLOT_SECTORS;
	}
	q->stamp = r == rounds ? FINAL_STAMP : (uint32_t)(r + 1);
	for (uint32_t w = 0; w < words; w += STRIDE)
		p[w] = q->kind == WRITE_STAMP ?
			stamped(q->hdr.sector + w / 128, w % 128, q->stamp) :
			0xdeadbeef;
	q->status = 0xff;
	q->used_len = 0;
	q->state = INFLIGHT;
}

static void chain(unsigned int k)
{
	struct req *q = &reqs[k];
	struct virtq_desc *d = &descs[k * DESCS_PER_REQ];
	uint16_t head = (uint16_t)(k * DESCS_PER_REQ);

	d[0] = (struct virtq_desc){ (uint64_t)&q->hdr, sizeof(q->hdr),
				    VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1) };
	d[1] = (struct virtq_desc){ (uint64_t)bufs[k], q->sectors * SECTOR_SIZE,
				    VIRTQ_DESC_F_NEXT |
				    (q->kind == WRITE_STAMP ? 0 : VIRTQ_DESC_F_WRITE),
				    (uint16_t)(head + 2) };
	d[2] = (struct virtq_desc){ (uint64_t)&q->status, 1,
				    VIRTQ_DESC_F_WRITE, 0 };
}

/* The whole batch of CPU c in round r: chains, one idx update, one notify. */
static void submit(unsigned int c, uint64_t r, uint32_t *rnd)
{
	for (unsigned int i = 0; i < batch; i++) {
		prepare(c * BATCH_MAX + i, r, rnd);
		chain(c * BATCH_MAX + i);
	}
	lock();
	for (unsigned int i = 0; i < batch; i++)
		avail.ring[avail_idx++ % QN] =
			(uint16_t)((c * BATCH_MAX + i) * DESCS_PER_REQ);
	vio_mb();		/* descriptors and ring entries before idx */
	avail.idx = avail_idx;
	if ((uint16_t)(avail_idx - last_used) > max_inflight)
		max_inflight = (uint16_t)(avail_idx - last_used);
	unlock();
	vio_mb();		/* idx before the notify */
	vio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

static void check_irq_error(void)
{
	static const char *const what[] = { "", "not a head we made available",
					    "completed while not in flight" };

	if (irq_error)
		fail("blk-inflight: used entry id %u: %s (state %u)",
		     irq_error_id, what[irq_error < 3 ? irq_error : 0],
		     irq_error_state);
}

/* Let pending interrupts in for one I/O exit (sti's shadow covers the inb). */
static void irq_window(void)
{
	__asm__ volatile("sti; inb $0x80, %%al; cli" : : : "memory", "rax");
}

/* Wait with interrupts on until CPU c's batch of round r is completed. */
static void wait_batch(unsigned int c, uint64_t r, uint32_t target)
{
	for (unsigned long t = 0; done_count[c] != target; t++) {
		check_irq_error();
		if (t == WAIT_LIMIT)
			fail("blk-inflight: cpu %u round %lu: %u of %u completed "
			     "(avail.idx %u, used.idx %u, drained to %u, "
			     "InterruptStatus 0x%x, %u interrupts)", c, r,
			     done_count[c] - (target - batch), batch, avail.idx,
			     *(volatile uint16_t *)&used.idx, last_used,
			     vio_read(&dev, VIRTIO_MMIO_INT_STATUS), irqs);
		irq_window();
	}
	check_irq_error();
}

static void verify(unsigned int c, unsigned int k, uint64_t r)
{
	struct req *q = &reqs[k];
	const uint32_t *p = (const uint32_t *)bufs[k];
	uint32_t want_len = q->kind == WRITE_STAMP ? 1 :
			    q->sectors * SECTOR_SIZE + 1;

	if (q->status != VIRTIO_BLK_S_OK)
		fail("blk-inflight: cpu %u round %lu slot %u: status %u", c, r,
		     k, q->status);
	if (q->used_len != want_len)
		fail("blk-inflight: cpu %u round %lu slot %u: used len %u, "
		     "want %u", c, r, k, q->used_len, want_len);
	if (q->kind == WRITE_STAMP) {
		q->last_stamp = q->stamp;
		return;
	}
	for (uint32_t w = 0; w < q->sectors * SECTOR_SIZE / 4; w += STRIDE) {
		uint64_t s = q->hdr.sector + w / 128;
		uint32_t want = q->kind == READ_PATTERN ?
			inflight_pattern(s, w % 128) :
			stamped(s, w % 128, q->last_stamp);

		if (p[w] != want)
			fail("blk-inflight: cpu %u round %lu slot %u: sector "
			     "%lu word %u is 0x%x, want 0x%x", c, r, k, s,
			     w % 128, p[w], want);
	}
}

/* This CPU takes the device interrupt as logical destination bit c. */
static void irq_cpu_join(unsigned int c)
{
	idt_load();
	irq_cpu_init();
	lapic_set_logical_id(c);
}

/* Every round of CPU c, then the final stamp round. */
static void run_cpu(unsigned int c)
{
	uint32_t rnd = 0x12345678u + c, target = 0;

	for (uint64_t r = 0; r <= rounds; r++) {
		submit(c, r, &rnd);
		target += batch;
		wait_batch(c, r, target);
		for (unsigned int i = 0; i < batch; i++) {
			verify(c, c * BATCH_MAX + i, r);
			reqs[c * BATCH_MAX + i].state = FREE;
		}
	}
	tiny_print("blk-inflight: cpu %u: %lu requests ok", c,
		   (rounds + 1) * batch);
	atomic_inc(&finished);
	/* Keep handling interrupts (irq=one) until every CPU is done. */
	for (unsigned long t = 0; finished < ncpus; t++) {
		if (t == START_LIMIT * 4)
			fail("blk-inflight: cpu %u: %u of %u cpus finished", c,
			     finished, ncpus);
		irq_window();
	}
}

/* ---- feed phase ------------------------------------------------------ */

/* CPU 1: InterruptStatus reads, counted, while CPU 0 feeds the device. */
static void feed_reader(void)
{
	for (unsigned long t = 0; !feed_on; t++) {
		if (t == START_LIMIT * 4)
			fail("blk-inflight: feed: cpu 0 never started");
		io_delay();
	}
	while (!feed_done) {
		(void)vio_read(&dev, VIRTIO_MMIO_INT_STATUS);
		atomic_inc(&isr_reads);
	}
}

/* Chain k of the feed: a read of FEED_BYTES from sector 0 into FEED_BUF. */
static void feed_chain(unsigned int k)
{
	struct req *q = &reqs[k];
	struct virtq_desc *d = &descs[k * DESCS_PER_REQ];
	uint16_t head = (uint16_t)(k * DESCS_PER_REQ);

	q->hdr = (struct blk_hdr){ VIRTIO_BLK_T_IN, 0, 0 };
	q->status = 0xff;
	d[0] = (struct virtq_desc){ (uint64_t)&q->hdr, sizeof(q->hdr),
				    VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1) };
	d[1] = (struct virtq_desc){ FEED_BUF, FEED_BYTES,
				    VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
				    (uint16_t)(head + 2) };
	d[2] = (struct virtq_desc){ (uint64_t)&q->status, 1,
				    VIRTQ_DESC_F_WRITE, 0 };
}

static void feed_publish(uint16_t head)
{
	avail.ring[avail_idx++ % QN] = head;
	vio_mb();
	avail.idx = avail_idx;
	vio_mb();
}

/* Next used entry of the feed (polled, bounded); checks it. */
static uint16_t feed_reap(unsigned long served)
{
	struct virtq_used_elem *e;
	uint32_t id;

	for (unsigned long t = 0; *(volatile uint16_t *)&used.idx == last_used;
	     t++) {
		if (t == WAIT_LIMIT)
			fail("blk-inflight: feed: read %lu not completed", served);
		io_delay();
	}
	vio_mb();
	e = &used.ring[last_used++ % QN];
	id = e->id;
	if (id % DESCS_PER_REQ || id / DESCS_PER_REQ >= FEED_DEPTH ||
	    e->len != FEED_BYTES + 1 ||
	    reqs[id / DESCS_PER_REQ].status != VIRTIO_BLK_S_OK)
		fail("blk-inflight: feed: used entry id %u len %u", id, e->len);
	return (uint16_t)id;
}

/* CPU 0: keep FEED_DEPTH reads in flight until CPU 1 got its answers. */
static void feed(void)
{
	unsigned long served = 0;
	uint32_t reads;

	if (!e820_is_usable(FEED_BUF, FEED_BYTES))
		fail("blk-inflight: feed: 0x%lx not usable RAM (needs 80 MiB)",
		     (uint64_t)FEED_BUF);
	ioapic_mask(dev.irq);	/* polled from here on */
	lock();
	for (unsigned int k = 0; k < FEED_DEPTH; k++) {
		feed_chain(k);
		feed_publish((uint16_t)(k * DESCS_PER_REQ));
	}
	vio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	feed_on = 1;
	while (isr_reads < FEED_READS && served < FEED_LIMIT) {
		uint16_t head = feed_reap(served++);

		reqs[head / DESCS_PER_REQ].status = 0xff;
		feed_publish(head);
		vio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	}
	reads = isr_reads;
	feed_done = 1;
	for (unsigned int k = 0; k < FEED_DEPTH; k++)
		(void)feed_reap(served);
	unlock();
	if (reads < FEED_READS)
		fail("blk-inflight: feed: cpu 1's InterruptStatus reads wait for "
		     "the device: %u of %u answered while it served %lu reads "
		     "of 16 MiB", reads, FEED_READS, served);
	tiny_print("blk-inflight: feed: cpu 1 read InterruptStatus %u times "
		   "while the device served %lu reads of 16 MiB", reads, served);
}

/* Called by every AP once it is online (smp.c). */
void inflight_ap(unsigned int index)
{
	if (!selected())
		return;
	irq_cpu_join(index);
	atomic_inc(&ready);
	for (unsigned long t = 0; !go; t++) {
		if (t == START_LIMIT)
			fail("blk-inflight: cpu %u: the BSP never started", index);
		io_delay();
	}
	if (index < ncpus)
		run_cpu(index);
	if (index == 1)
		feed_reader();
}

static void setup(struct boot_info *bi, int irq_all)
{
	static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
	unsigned int n = virtio_probe(bi, devs), i;
	uint64_t cap;

	for (i = 0; i < n && devs[i].device_id != VIRTIO_ID_BLOCK; i++)
		;
	if (i == n)
		fail("blk-inflight: no blk device");
	dev = devs[i];
	virtio_begin(&dev, VIRTIO_F_VERSION_1);
	if (virtio_queue_program(&dev, 0, QN, descs, &avail, &used) != 1)
		fail("blk-inflight: queue of %u entries refused", QN);
	virtio_driver_ok(&dev);
	cap = blk_capacity(&dev);
	if (cap < DISK_SECTORS_MIN)
		fail("blk-inflight: capacity %lu sectors < %u", cap,
		     DISK_SECTORS_MIN);
	idt_init();
	idt_set_gate(IRQ_VECTOR, inflight_irq_stub);
	irq_cpu_join(0);
	for (unsigned long t = 0; ready < ncpus - 1; t++) {
		if (t == START_LIMIT)
			fail("blk-inflight: %u of %u APs ready", ready,
			     ncpus - 1);
		io_delay();
	}
	if (irq_all)
		ioapic_route_logical(dev.irq, IRQ_VECTOR,
				     (uint8_t)((1u << ncpus) - 1));
	else
		ioapic_route_logical(dev.irq, IRQ_VECTOR,
				     (uint8_t)(1u << (ncpus - 1)));
}

static void scenario_inflight(struct boot_info *bi)
{
	uint64_t cpus = 0;
	size_t len;
	const char *mode = cmdline_param("inflight.irq", &len);
	int irq_all = !mode || (len == 3 && !memcmp(mode, "all", 3));

	if (mode && !irq_all && !(len == 3 && !memcmp(mode, "one", 3)))
		fail("blk-inflight: tiny.inflight.irq=%.*s (all or one)",
		     (int)len, mode);
	if (!cmdline_param_u64("cpus", &cpus) || !cpus || cpus > MAX_IF_CPUS)
		fail("blk-inflight: needs tiny.cpus=<1..%u>", MAX_IF_CPUS);
	cmdline_param_u64("inflight.rounds", &rounds);
	ncpus = (unsigned int)cpus;
	batch = QN / DESCS_PER_REQ / ncpus;
	if (batch > BATCH_MAX)
		batch = BATCH_MAX;
	setup(bi, irq_all);
	barrier();
	go = 1;
	run_cpu(0);
	lock();		/* the used ring is quiet: nothing may be left */
	if (*(volatile uint16_t *)&used.idx != avail_idx)
		fail("blk-inflight: used.idx %u, avail.idx %u at the end",
		     used.idx, avail_idx);
	unlock();
	tiny_print("blk-inflight: %u cpus, %lu requests, up to %u in flight, "
		   "%u interrupts (%u without the used-ring bit), irq %s",
		   ncpus, (rounds + 1) * batch * ncpus, max_inflight, irqs,
		   spurious, irq_all ? "all" : "one");
	if (ncpus >= 2)
		feed();
	ioapic_mask(dev.irq);
}
DEFINE_SCENARIO("blk-inflight", scenario_inflight);
