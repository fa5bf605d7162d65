//! Test harness: a [`Driver`] (the transport driven through its registers, shared with the
//! fuzz targets) over real guest memory, with rings written here using virtio-queue's descriptor types. (The
//! crate's `mock::MockSplitQueue` places the used ring over the avail ring's entries for
//! our sizes, so it is not used.)

use virtio_bindings::virtio_mmio::*;
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::test_utils::Driver;
use super::{Mem, VirtioDevice};

/// Queue size used by the tests.
pub const QSIZE: u16 = 16;
/// Guest RAM of the tests: 1 MiB at 0.
pub const RAM: u64 = 0x10_0000;
/// Where queue `i`'s rings go.
pub fn ring_base(i: usize) -> GuestAddress {
    GuestAddress(0x1_0000 + i as u64 * 0x1000)
}
/// Offsets of the avail and used rings from a queue's ring base (descriptors at 0).
pub const AVAIL_OFF: u64 = 0x100;
pub const USED_OFF: u64 = 0x200;
/// Data buffers live from here.
pub const DATA: u64 = 0x4_0000;

/// A [`Driver`] over [`mem`] with every queue's rings at [`ring_base`].
pub struct Harness(pub Driver);

impl std::ops::Deref for Harness {
    type Target = Driver;
    fn deref(&self) -> &Driver {
        &self.0
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut Driver {
        &mut self.0
    }
}

pub fn mem() -> Mem {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap()
}

impl Harness {
    pub fn new(dev: Box<dyn VirtioDevice>) -> Harness {
        Harness(Driver::new(dev, mem(), "virtio-test0"))
    }

    /// Programs queue `q` at its ring base (size QSIZE, ready).
    pub fn setup_queue(&mut self, q: u32) -> bool {
        let base = ring_base(q as usize).0;
        self.program_queue(q, QSIZE, [base, base + AVAIL_OFF, base + USED_OFF])
    }

    /// The whole driver handshake with every queue set up; returns the final Status.
    pub fn init(&mut self) -> u32 {
        self.init_with(u64::MAX)
    }

    /// [`Harness::init`] accepting only the offered features in `wanted`.
    pub fn init_with(&mut self, wanted: u64) -> u32 {
        self.negotiate_only(wanted);
        let mut q = 0;
        while self.r_queue_max(q) != 0 {
            assert!(self.setup_queue(q), "queue {q} refused");
            q += 1;
        }
        self.driver_ok();
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

/// A clock the test moves by hand (nanoseconds), for rate limits.
pub fn manual_clock() -> (
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    super::throttle::Clock,
) {
    let now = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = now.clone();
    (
        now,
        Box::new(move || c.load(std::sync::atomic::Ordering::Relaxed)),
    )
}
