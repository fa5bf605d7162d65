//! virtio devices on the virtio-mmio transport (virtio 1.x, split virtqueues).
//!
//! The binding contract with the guest is docs/virtio-contract.md.
//!
//! - [`mmio`]: the transport's registers (run on vCPU threads); it owns the queues and the
//!   device behind one `Mutex`, shared with the device's own thread which serves the queues.
//! - [`window`]: what the MMIO bus holds; it answers InterruptStatus/InterruptACK (and a
//!   trapped QueueNotify) without that `Mutex`, so a vCPU never waits for a serve loop there.
//! - [`queue`]: taking chains off a queue and walking them with hard bounds.
//! - [`block`], [`net`] (+ [`tap`], [`net_hdr`]), [`rng`]: the devices.
//! - [`ratelimit`]: per-device log rate limit for guest-triggered messages.
//! - [`token_bucket`] and [`throttle`]: optional I/O rate limits (bytes/s, ops/s) of blk
//!   and net, with the timerfd that resumes a throttled queue.

pub mod block;
pub mod iov;
pub mod mmio;
pub mod net;
pub mod net_hdr;
pub mod proxy;
pub mod queue;
pub mod ratelimit;
pub mod rng;
pub mod tap;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
#[cfg(test)]
mod testutil;
pub mod throttle;
pub mod token_bucket;
pub mod window;

use std::os::fd::RawFd;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

pub use mmio::MmioTransport;
pub use ratelimit::RateLimitedLog;
pub use window::{Interrupt, MmioWindow};

/// Guest memory as devices see it.
pub type Mem = GuestMemoryMmap;

/// QueueNumMax of every queue.
pub const QUEUE_MAX_SIZE: u16 = 256;
/// VendorID register: "MMVM" little-endian.
pub const VENDOR_ID: u32 = 0x4d56_4d4d;
/// VIRTIO_F_VERSION_1 as a feature mask.
pub const FEATURE_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
/// VIRTIO_RING_F_EVENT_IDX as a feature mask: offered by the transport for every device
/// (notification suppression both ways: `used_event` and `avail_event`).
pub const FEATURE_EVENT_IDX: u64 = 1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// Why a queue cannot be served any more until the driver resets the device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// avail.idx moved by more than the queue size (contract H8).
    #[error("avail.idx jumped by more than the queue size")]
    AvailIndex,
    /// The rings cannot be read or written (addresses changed or outside RAM).
    #[error("the rings are not accessible: {0}")]
    Rings(String),
}

/// A virtio device behind the mmio transport. Methods run on the device's thread, except
/// the config accessors and [`VirtioDevice::reset`], which run on a vCPU thread; both hold
/// the transport's lock.
pub trait VirtioDevice: Send {
    /// virtio device ID (net 1, blk 2, rng 4).
    fn device_type(&self) -> u32;
    /// Features offered, VIRTIO_F_VERSION_1 included.
    fn features(&self) -> u64;
    /// Number of queues.
    fn num_queues(&self) -> usize;
    /// Reads device config space at `offset`; bytes past the end read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves queue `index` after a notification; true when used entries were added.
    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError>;
    /// Whether serving queue `index` takes every available chain (a request queue), so
    /// chains still available after a bounded pass mean more work. False for a queue of
    /// buffers the device keeps until host data arrives (net rx).
    fn consumes_queue(&self, _index: usize) -> bool {
        true
    }
    /// The driver set FEATURES_OK and the transport accepted `features` (a subset of
    /// [`VirtioDevice::features`] plus the transport's). Reset clears them: after
    /// [`VirtioDevice::reset`] nothing is negotiated until this is called again.
    fn ack_features(&mut self, _features: u64) {}
    /// The driver reset the device (Status = 0).
    fn reset(&mut self) {}
    /// microvm is stopping (guest exit or a stop signal): make what the guest wrote durable
    /// (a disk fsyncs its file). Ok(true) when something was flushed. Runs on the device
    /// thread, under its filter.
    fn flush_on_stop(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }
    /// A host fd the device thread should poll while [`VirtioDevice::wants_host_fd`] is true
    /// (the TAP of a net device).
    fn host_fd(&self) -> Option<RawFd> {
        None
    }
    /// Whether the host fd should be polled now (e.g. rx buffers are available).
    fn wants_host_fd(&self) -> bool {
        false
    }
    /// The host fd is readable; true when used entries were added.
    fn process_host_fd(
        &mut self,
        _queues: &mut [Queue],
        _mem: &Mem,
        _log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        Ok(false)
    }
    /// The rate-limit timerfds the device thread always polls (none without a limit).
    fn timer_fds(&self) -> Vec<RawFd> {
        Vec::new()
    }
    /// Whether queue `index` waits for a rate-limit timer: chains left in it are not more
    /// work until the timer fires.
    fn throttled(&self, _index: usize) -> bool {
        false
    }
    /// Timer `timer` (an index into [`VirtioDevice::timer_fds`]) fired; returns the queue
    /// to serve again, if one was throttled.
    fn timer_fired(&mut self, _timer: usize) -> Option<usize> {
        None
    }
}

/// Copies `src` into config-space read `data` at `offset`; outside `src` reads as 0.
pub(crate) fn read_config_bytes(src: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if start >= src.len() {
        return;
    }
    let n = data.len().min(src.len() - start);
    data[..n].copy_from_slice(&src[start..start + n]);
}
