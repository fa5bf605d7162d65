//! Test harness: a transport over real guest memory, driven through its registers like a
//! driver would, with rings written here using virtio-queue's descriptor types. (The
//! crate's `mock::MockSplitQueue` places the used ring over the avail ring's entries for
//! our sizes, so it is not used.)

use virtio_bindings::virtio_config::*;
use virtio_bindings::virtio_mmio::*;
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::mmio::{MmioTransport, TransportFds};
use super::{Mem, VirtioDevice};
use crate::BusDevice;

/// Queue size used by the tests.
pub const QSIZE: u16 = 16;
/// Guest RAM of the tests: 1 MiB at 0.
pub const RAM: u64 = 0x10_0000;
/// Where queue `i`'s rings go.
pub fn ring_base(i: usize) -> GuestAddress {
    GuestAddress(0x1_0000 + i as u64 * 0x1000)
}
/// Offsets of the avail and used rings from a queue's ring base (descriptors at 0).
const AVAIL_OFF: u64 = 0x100;
const USED_OFF: u64 = 0x200;
/// Data buffers live from here.
pub const DATA: u64 = 0x4_0000;

pub struct Harness {
    pub mem: Mem,
    pub t: MmioTransport,
    pub irq: EventFd,
    pub state: EventFd,
}

pub fn mem() -> Mem {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap()
}

impl Harness {
    pub fn new(dev: Box<dyn VirtioDevice>) -> Harness {
        let mem = mem();
        let irq = EventFd::new(EFD_NONBLOCK).unwrap();
        let state = EventFd::new(EFD_NONBLOCK).unwrap();
        let n = dev.num_queues();
        let fds = TransportFds {
            irq: irq.try_clone().unwrap(),
            state_changed: state.try_clone().unwrap(),
            notify: (0..n)
                .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
                .collect(),
        };
        let t = MmioTransport::new(dev, mem.clone(), fds, "virtio-test0").unwrap();
        Harness { mem, t, irq, state }
    }

    pub fn w(&mut self, off: u32, v: u32) {
        self.t.write(u64::from(off), &v.to_le_bytes());
    }

    pub fn r(&mut self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.t.read(u64::from(off), &mut b);
        u32::from_le_bytes(b)
    }

    /// Lays out queue `q` with the mock and programs its registers (size QSIZE, ready).
    pub fn setup_queue(&mut self, q: u32) -> bool {
        let base = ring_base(q as usize).0;
        let addrs = [base, base + AVAIL_OFF, base + USED_OFF].map(GuestAddress);
        self.w(VIRTIO_MMIO_QUEUE_SEL, q);
        self.w(VIRTIO_MMIO_QUEUE_NUM, u32::from(QSIZE));
        for (lo, addr) in [
            (VIRTIO_MMIO_QUEUE_DESC_LOW, addrs[0]),
            (VIRTIO_MMIO_QUEUE_AVAIL_LOW, addrs[1]),
            (VIRTIO_MMIO_QUEUE_USED_LOW, addrs[2]),
        ] {
            self.w(lo, addr.0 as u32);
            self.w(lo + 4, (addr.0 >> 32) as u32);
        }
        self.w(VIRTIO_MMIO_QUEUE_READY, 1);
        self.r(VIRTIO_MMIO_QUEUE_READY) == 1
    }

    /// The whole driver handshake with every queue set up; returns the final Status.
    pub fn init(&mut self) -> u32 {
        self.w(VIRTIO_MMIO_STATUS, 0);
        self.w(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        self.w(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        );
        self.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        let lo = self.r(VIRTIO_MMIO_DEVICE_FEATURES);
        self.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        let hi = self.r(VIRTIO_MMIO_DEVICE_FEATURES);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES, lo);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES, hi);
        let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
        self.w(VIRTIO_MMIO_STATUS, s);
        let mut q = 0;
        while self.r_queue_max(q) != 0 {
            assert!(self.setup_queue(q), "queue {q} refused");
            q += 1;
        }
        self.w(VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
        self.r(VIRTIO_MMIO_STATUS)
    }

    fn r_queue_max(&mut self, q: u32) -> u32 {
        self.w(VIRTIO_MMIO_QUEUE_SEL, q);
        self.r(VIRTIO_MMIO_QUEUE_NUM_MAX)
    }

    /// A writer for queue `q`'s descriptors and avail ring (fresh: descriptor 0, avail 0,
    /// so call it after (re-)initialising the queue).
    pub fn ring(&self, q: usize) -> Ring {
        Ring {
            mem: self.mem.clone(),
            base: ring_base(q),
            next_desc: 0,
            avail: 0,
        }
    }

    /// Used ring of queue `q`: (idx, entries).
    pub fn used(&self, q: usize) -> (u16, Vec<(u32, u32)>) {
        use vm_memory::Bytes;
        let used = ring_base(q).0 + USED_OFF;
        let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
        let entries = (0..idx.min(QSIZE))
            .map(|i| {
                let e = used + 4 + 8 * u64::from(i);
                let id: u32 = self.mem.read_obj(GuestAddress(e)).unwrap();
                let len: u32 = self.mem.read_obj(GuestAddress(e + 4)).unwrap();
                (id, len)
            })
            .collect();
        (idx, entries)
    }
}

/// Writes descriptors and avail entries of one queue laid out like `MockSplitQueue`.
pub struct Ring {
    mem: Mem,
    base: GuestAddress,
    next_desc: u16,
    avail: u16,
}

/// One descriptor to add: (address, length, device-writable).
pub type D = (u64, u32, bool);

impl Ring {
    fn avail_addr(&self) -> u64 {
        self.base.0 + AVAIL_OFF
    }

    /// Stores a raw descriptor at `index`.
    pub fn store(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        use vm_memory::Bytes;
        let d = RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next));
        self.mem
            .write_obj(d, GuestAddress(self.base.0 + 16 * u64::from(index)))
            .unwrap();
    }

    /// Adds a chain of `descs`; returns its head index.
    pub fn add(&mut self, descs: &[D]) -> u16 {
        let head = self.next_desc;
        for (i, (addr, len, writable)) in descs.iter().enumerate() {
            let idx = self.next_desc;
            self.next_desc += 1;
            let mut flags = if *writable { VRING_DESC_F_WRITE_U16 } else { 0 };
            if i + 1 < descs.len() {
                flags |= VRING_DESC_F_NEXT_U16;
            }
            self.store(idx, *addr, *len, flags, idx + 1);
        }
        self.publish(head);
        head
    }

    /// Puts `head` in the avail ring and bumps avail.idx.
    pub fn publish(&mut self, head: u16) {
        self.push_avail(head);
        self.set_avail_idx(self.avail);
    }

    /// Writes an avail ring slot without publishing it.
    pub fn push_avail(&mut self, head: u16) {
        use vm_memory::Bytes;
        let slot = self.avail_addr() + 4 + 2 * u64::from(self.avail % QSIZE);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail = self.avail.wrapping_add(1);
    }

    /// Sets avail.idx to any value (H8).
    pub fn set_avail_idx(&self, idx: u16) {
        use vm_memory::Bytes;
        self.mem
            .write_obj(idx, GuestAddress(self.avail_addr() + 2))
            .unwrap();
    }

    /// Reserves descriptor indexes for hand-made chains.
    pub fn take_desc(&mut self) -> u16 {
        let i = self.next_desc;
        self.next_desc += 1;
        i
    }
}

const VRING_DESC_F_WRITE_U16: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const VRING_DESC_F_NEXT_U16: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
/// VRING_DESC_F_NEXT as the flags field.
pub const F_NEXT: u16 = VRING_DESC_F_NEXT_U16;
/// VRING_DESC_F_WRITE as the flags field.
pub const F_WRITE: u16 = VRING_DESC_F_WRITE_U16;
