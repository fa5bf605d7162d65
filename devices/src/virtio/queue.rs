//! Taking requests off a virtqueue, with every guest-controlled quantity bounded.
//!
//! The avail and used rings are handled by `virtio-queue` (`QueueT::iter`, `add_used`).
//! Descriptor chains are walked here with the crate's `Descriptor` type rather than its
//! `DescriptorChain` iterator, because that iterator ends a chain *silently* (after
//! queue-size descriptors, or at 4 GiB of buffers), and the contract needs to tell a loop
//! (H1: no status) from an absurd length (H3: IOERR in the status byte). The walk is bounded
//! by the queue size as well.

use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend};

use super::{Mem, QueueError};

/// One buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes, as the guest wrote it (not trusted).
    pub len: u32,
    /// Device-writable (VRING_DESC_F_WRITE).
    pub writable: bool,
}

impl Desc {
    /// True when `[addr, addr + len)` is guest RAM.
    pub fn in_ram(&self, mem: &Mem) -> bool {
        self.len == 0 || mem.check_range(self.addr, self.len as usize)
    }
}

/// Why a chain could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// More descriptors than the queue has: the chain loops (H1).
    #[error("descriptor chain loops or is longer than the queue")]
    Loop,
    /// A `next` (or the head) is not an index of the table.
    #[error("descriptor index {0} is outside the table")]
    BadIndex(u16),
    /// The descriptor table cannot be read.
    #[error("descriptor table unreadable")]
    Unreadable,
    /// Indirect descriptors were not offered.
    #[error("indirect descriptor, a feature not offered")]
    Indirect,
}

/// A request taken off the avail ring: its head index and, if it could be walked, its
/// buffers.
pub struct Request {
    /// Head descriptor index, for the used ring.
    pub head: u16,
    /// The buffers in chain order.
    pub descs: Result<Vec<Desc>, ChainError>,
}

/// Takes the next request off `queue`. `Err` when avail.idx moved by more than the queue
/// size (H8), `Ok(None)` when the ring is empty.
pub fn pop(queue: &mut Queue, mem: &Mem) -> Result<Option<Request>, QueueError> {
    let desc_table = GuestAddress(queue.desc_table());
    let size = queue.size();
    let chain = match queue.iter(mem) {
        Ok(mut iter) => iter.next(),
        Err(virtio_queue::Error::InvalidAvailRingIndex) => return Err(QueueError::AvailIndex),
        Err(e) => return Err(QueueError::Rings(e.to_string())),
    };
    Ok(chain.map(|chain| {
        let head = chain.head_index();
        Request {
            head,
            descs: walk(mem, desc_table, size, head),
        }
    }))
}

/// Whether the driver made requests available that the device has not taken yet.
pub fn has_pending(queue: &Queue, mem: &Mem) -> bool {
    queue
        .avail_idx(mem, std::sync::atomic::Ordering::Acquire)
        .is_ok_and(|avail| avail.0 != queue.next_avail())
}

/// Asks the driver to notify the next request it adds (EVENT_IDX: `avail_event` = the next
/// entry to take); true if requests arrived meanwhile (then serve them: no kick may come).
pub fn rearm(queue: &mut Queue, mem: &Mem) -> Result<bool, QueueError> {
    queue
        .enable_notification(mem)
        .map_err(|e| QueueError::Rings(e.to_string()))
}

/// Puts a request back at the head of the avail ring (nothing could be done with it yet).
pub fn undo_pop(queue: &mut Queue) {
    queue.go_to_previous_position();
}

/// Adds `head` to the used ring with `len` bytes written.
pub fn complete(queue: &mut Queue, mem: &Mem, head: u16, len: u32) -> Result<(), QueueError> {
    queue
        .add_used(mem, head, len)
        .map_err(|e| QueueError::Rings(e.to_string()))
}

/// Serves the available requests of queue `index`, at most one ring's worth (the queue size)
/// per call: `handle` gets each request and returns the number of bytes it wrote into the
/// request's buffers, which goes to the used ring. Returns whether anything was used (an
/// interrupt is due); a missing queue serves nothing. The bound keeps a guest that keeps
/// refilling the ring from holding the device thread (and the transport lock) forever: the
/// transport re-queues a notification when requests remain ([`has_pending`]).
pub fn serve(
    queues: &mut [Queue],
    index: usize,
    mem: &Mem,
    mut handle: impl FnMut(&Request) -> u32,
) -> Result<bool, QueueError> {
    serve_while(queues, index, mem, |req| Served::Used(handle(req)))
}

/// What a handler of [`serve_while`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Served: this many bytes were written into its buffers.
    Used(u32),
    /// Not now (rate limit): it goes back to the head of the avail ring and the pass ends.
    Later,
}

/// [`serve`], with a handler that may leave a request for later ([`Served::Later`]).
pub fn serve_while(
    queues: &mut [Queue],
    index: usize,
    mem: &Mem,
    mut handle: impl FnMut(&Request) -> Served,
) -> Result<bool, QueueError> {
    let Some(q) = queues.get_mut(index) else {
        return Ok(false);
    };
    let mut used = false;
    for _ in 0..q.size() {
        let Some(req) = pop(q, mem)? else { break };
        match handle(&req) {
            Served::Used(len) => {
                complete(q, mem, req.head, len)?;
                used = true;
            }
            Served::Later => {
                undo_pop(q);
                break;
            }
        }
    }
    Ok(used)
}

/// Fills a chain's device-writable descriptors in order with at most `limit` bytes:
/// `copy(addr, offset, len)` writes `len` bytes (from `offset` of the data) at guest `addr`
/// and returns how many it wrote; a short copy ends the fill. Returns the bytes written.
pub fn fill_writable(
    descs: &[Desc],
    limit: usize,
    mut copy: impl FnMut(GuestAddress, usize, usize) -> usize,
) -> usize {
    let mut written = 0usize;
    for d in descs.iter().filter(|d| d.writable) {
        let want = (d.len as usize).min(limit - written);
        if want == 0 {
            break;
        }
        let got = copy(d.addr, written, want);
        written += got;
        if got < want {
            break;
        }
    }
    written
}

/// Walks the chain starting at `head` in a table of `size` descriptors.
pub fn walk(mem: &Mem, table: GuestAddress, size: u16, head: u16) -> Result<Vec<Desc>, ChainError> {
    let mut out = Vec::new();
    let mut index = head;
    for _ in 0..size {
        if index >= size {
            return Err(ChainError::BadIndex(index));
        }
        let addr = table
            .checked_add(u64::from(index) * 16)
            .ok_or(ChainError::Unreadable)?;
        let d: Descriptor = mem.read_obj(addr).map_err(|_| ChainError::Unreadable)?;
        let flags = u32::from(d.flags());
        if flags & VRING_DESC_F_INDIRECT != 0 {
            return Err(ChainError::Indirect);
        }
        out.push(Desc {
            addr: d.addr(),
            len: d.len(),
            writable: flags & VRING_DESC_F_WRITE != 0,
        });
        if flags & VRING_DESC_F_NEXT == 0 {
            return Ok(out);
        }
        index = d.next();
    }
    Err(ChainError::Loop)
}
