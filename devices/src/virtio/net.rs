//! virtio-net (device ID 1) on a TAP: queue 0 = rx, queue 1 = tx, no control queue.
//!
//! tx: each chain's device-readable buffers (virtio-net header + frame) are gathered into
//! one bounded buffer and written to the TAP. rx: while the guest has rx buffers, frames
//! are read from the TAP into them; when it has none, the device thread stops polling the
//! TAP until the guest notifies rx again (no busy loop, nothing queued on the host).
//! If the TAP fails (EBADFD, EIO, ...), both queues stop with one log line; the VM runs on.
//! A frame the TAP refuses (EINVAL, EMSGSIZE) is dropped and counted; the queues go on.
//!
//! Rate limits (`bw=`): tx and rx each get a bucket of Ethernet-frame bytes (the virtio-net
//! header does not count). A throttled tx chain stays in the ring; a received frame that
//! must wait is kept (one frame) and the TAP is not polled until the timer fires.
//!
//! Headers: no offload is offered, so the guest's virtio_net_hdr on tx is zeroed before the
//! host kernel sees it (a hostile gso_type/csum_start cannot reach the TAP's GSO paths), and
//! every rx header says num_buffers = 1 (the TAP writes only the first 10 bytes of it).

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};

use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_queue::{Queue, QueueT};
use vm_memory::Bytes;

use super::queue;
use super::tap::{Tap, VNET_HDR_LEN};
use super::throttle::{self, Throttle};
use super::{read_config_bytes, Mem, QueueError, RateLimitedLog, VirtioDevice, FEATURE_VERSION_1};

/// Index of the receive queue.
pub const RX: usize = 0;
/// Index of the transmit queue.
pub const TX: usize = 1;
/// Largest frame handled: header + 64 KiB (TAP offloads are off, so frames are <= MTU).
pub const MAX_FRAME: usize = VNET_HDR_LEN + 65_550;

/// The default MAC of net device `index`: locally administered, 06:00:00:00:00:<index+1>.
pub fn default_mac(index: usize) -> [u8; 6] {
    [
        0x06,
        0,
        0,
        0,
        (index >> 8) as u8,
        (index as u8).wrapping_add(1),
    ]
}

/// A virtio network device on a TAP.
pub struct Net {
    tap: Tap,
    mac: [u8; 6],
    /// The guest has no rx buffer: stop polling the TAP until it notifies rx.
    rx_stalled: bool,
    /// The TAP failed: both queues stopped.
    tap_failed: bool,
    /// Frames the TAP refused (EINVAL, EMSGSIZE) and that were dropped.
    tx_refused: u64,
    /// tx frames are gathered here.
    buf: Vec<u8>,
    /// rx frames are read here; one may wait here for its rx tokens.
    rx_buf: Vec<u8>,
    /// Length of the frame in `rx_buf` that waits for its rx tokens.
    rx_deferred: Option<usize>,
    rx_throttle: Option<Throttle>,
    tx_throttle: Option<Throttle>,
}

/// Ethernet bytes of a frame of `len` bytes with its virtio-net header.
fn frame_bytes(len: usize) -> u64 {
    len.saturating_sub(VNET_HDR_LEN) as u64
}

/// Offset of `num_buffers` in the 12-byte virtio 1.x net header.
const NUM_BUFFERS_OFFSET: usize = 10;

impl Net {
    /// A device on `tap` with `mac`.
    pub fn new(tap: Tap, mac: [u8; 6]) -> Self {
        Net {
            tap,
            mac,
            rx_stalled: false,
            tap_failed: false,
            tx_refused: 0,
            buf: vec![0; MAX_FRAME],
            rx_buf: vec![0; MAX_FRAME],
            rx_deferred: None,
            rx_throttle: None,
            tx_throttle: None,
        }
    }

    /// The same device with rx and/or tx rate-limited.
    pub fn with_throttles(mut self, rx: Option<Throttle>, tx: Option<Throttle>) -> Self {
        self.rx_throttle = rx;
        self.tx_throttle = tx;
        self
    }

    /// The throttles present, with the queue each holds back: rx, then tx.
    fn throttles(&self) -> impl Iterator<Item = (usize, &Throttle)> {
        [(RX, &self.rx_throttle), (TX, &self.tx_throttle)]
            .into_iter()
            .filter_map(|(q, t)| t.as_ref().map(|t| (q, t)))
    }

    fn tap_error(&mut self, log: &mut RateLimitedLog, what: &str, e: std::io::Error) {
        self.tap_failed = true;
        log.warn(format_args!(
            "TAP {}: {what} failed: {e}; rx and tx stopped",
            self.tap.name()
        ));
    }

    /// Writes the first `len` bytes of the buffer (header + frame) to the TAP.
    fn send(&mut self, len: usize, log: &mut RateLimitedLog) {
        match self.tap.write(&self.buf[..len]) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                log.warn(format_args!("TAP full: frame dropped"));
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EMSGSIZE)) => {
                self.tx_refused += 1;
                log.warn(format_args!(
                    "TAP refused a {len}-byte frame ({e}): dropped ({} so far)",
                    self.tx_refused
                ));
            }
            Err(e) => self.tap_error(log, "write", e),
        }
    }

    fn transmit(
        &mut self,
        q: &mut Queue,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        // One ring's worth per pass, like queue::serve.
        for _ in 0..q.size() {
            let Some(req) = queue::pop(q, mem)? else {
                break;
            };
            match req.descs {
                Err(e) => {
                    log.warn(format_args!("tx request {}: {e}", req.head));
                }
                Ok(descs) if !self.tap_failed => {
                    let readable = descs.iter().filter(|d| !d.writable);
                    let total = readable
                        .map(|d| d.len as usize)
                        .fold(0, usize::saturating_add);
                    if !throttle::admit(&mut self.tx_throttle, frame_bytes(total), log) {
                        queue::undo_pop(q);
                        break;
                    }
                    let mut len = 0usize;
                    let mut ok = true;
                    for d in descs.iter().filter(|d| !d.writable) {
                        let n = d.len as usize;
                        if n > self.buf.len() - len
                            || mem.read_slice(&mut self.buf[len..len + n], d.addr).is_err()
                        {
                            ok = false;
                            break;
                        }
                        len += n;
                    }
                    if !ok || len < VNET_HDR_LEN {
                        log.warn(format_args!("tx request {}: bad frame dropped", req.head));
                    } else {
                        // No offload was negotiated: nothing in the header is meaningful.
                        self.buf[..VNET_HDR_LEN].fill(0);
                        self.send(len, log);
                    }
                }
                Ok(_) => {}
            }
            queue::complete(q, mem, req.head, 0)?;
            used = true;
        }
        Ok(used)
    }

    /// Reads one frame from the TAP into `rx_buf`, num_buffers set to 1; None when there
    /// is none (or the TAP failed).
    fn read_frame(&mut self, log: &mut RateLimitedLog) -> Option<usize> {
        match self.tap.read(&mut self.rx_buf) {
            Ok(n) => {
                if n >= VNET_HDR_LEN {
                    self.rx_buf[NUM_BUFFERS_OFFSET..VNET_HDR_LEN]
                        .copy_from_slice(&1u16.to_le_bytes());
                }
                Some(n)
            }
            Err(e) => {
                if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted {
                    self.tap_error(log, "read", e);
                }
                None
            }
        }
    }

    fn receive(
        &mut self,
        q: &mut Queue,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        while !self.tap_failed {
            let Some(req) = queue::pop(q, mem)? else {
                // Out of rx buffers: ask for a kick at the next one, then look once more, so
                // a buffer added before the request (which the driver need not kick for
                // under EVENT_IDX) is not left waiting.
                if queue::rearm(q, mem)? {
                    continue;
                }
                self.rx_stalled = true;
                break;
            };
            let n = match self.rx_deferred.take() {
                Some(n) => n,
                None => match self.read_frame(log) {
                    Some(n) => n,
                    None => {
                        queue::undo_pop(q);
                        break;
                    }
                },
            };
            if !throttle::admit(&mut self.rx_throttle, frame_bytes(n), log) {
                // The frame waits in rx_buf, the buffer in the ring, for the rx timer.
                self.rx_deferred = Some(n);
                queue::undo_pop(q);
                break;
            }
            let written = match req.descs {
                Err(e) => {
                    log.warn(format_args!("rx buffer {}: {e}: frame dropped", req.head));
                    0
                }
                Ok(descs) => {
                    let frame = &self.rx_buf[..n];
                    let written = queue::fill_writable(&descs, n, |addr, from, len| {
                        if mem.write_slice(&frame[from..from + len], addr).is_err() {
                            log.warn(format_args!("rx buffer {} outside RAM", req.head));
                            return 0;
                        }
                        len
                    });
                    if written < n {
                        log.warn(format_args!(
                            "rx buffer {} too small: frame truncated",
                            req.head
                        ));
                    }
                    written
                }
            };
            queue::complete(q, mem, req.head, written as u32)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        virtio_bindings::virtio_ids::VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        FEATURE_VERSION_1 | 1 << VIRTIO_NET_F_MAC
    }

    fn num_queues(&self) -> usize {
        2
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.mac, offset, data);
    }

    fn consumes_queue(&self, index: usize) -> bool {
        index != RX
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        match (index, queues.get_mut(index)) {
            (TX, Some(q)) => self.transmit(q, mem, log),
            (RX, Some(q)) => {
                // New rx buffers: read what the TAP holds now, and poll it again.
                self.rx_stalled = false;
                self.receive(q, mem, log)
            }
            _ => Ok(false),
        }
    }

    fn reset(&mut self) {
        self.rx_stalled = false;
        self.rx_deferred = None;
        for t in [&mut self.rx_throttle, &mut self.tx_throttle]
            .into_iter()
            .flatten()
        {
            t.reset();
        }
    }

    fn timer_fds(&self) -> Vec<RawFd> {
        self.throttles().map(|(_, t)| t.timer_fd()).collect()
    }

    fn throttled(&self, index: usize) -> bool {
        self.throttles().any(|(q, t)| q == index && t.blocked())
    }

    fn timer_fired(&mut self, timer: usize) -> Option<usize> {
        let (queue, _) = self.throttles().nth(timer)?;
        let t = match queue {
            RX => self.rx_throttle.as_mut(),
            _ => self.tx_throttle.as_mut(),
        }?;
        t.fired().then_some(queue)
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.tap.as_raw_fd())
    }

    fn wants_host_fd(&self) -> bool {
        // A frame waiting for rx tokens: the rx timer, not the TAP, says when to go on.
        !self.rx_stalled && !self.tap_failed && self.rx_deferred.is_none()
    }

    fn process_host_fd(
        &mut self,
        queues: &mut [Queue],
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        match queues.get_mut(RX) {
            Some(q) if q.ready() => self.receive(q, mem, log),
            _ => {
                self.rx_stalled = true;
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
