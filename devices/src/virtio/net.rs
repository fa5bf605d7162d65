//! virtio-net (device ID 1) on a TAP: queue 0 = rx, queue 1 = tx, no control queue.
//!
//! tx: each chain's device-readable buffers (virtio-net header + frame, at most MAX_FRAME
//! bytes) go to the TAP in one writev, straight from guest RAM but for the header, which
//! is the device's own. rx: while the guest has rx buffers, each frame is read from the TAP
//! in one readv straight into a buffer chain (a scratch area after it catches what does not
//! fit, so a short buffer truncates the frame and never fails the read); when it has none,
//! the device thread stops polling the TAP until the guest notifies rx again (no busy loop,
//! nothing queued on the host). No bounce copy either way.
//! If the TAP fails (EBADFD, EIO, ...), both queues stop with one log line; the VM runs on.
//! A frame the TAP refuses (EINVAL, EMSGSIZE) is dropped and counted; the queues go on.
//!
//! Rate limits (`bw=`): tx and rx each get a bucket of Ethernet-frame bytes (the virtio-net
//! header does not count). A throttled tx chain stays in the ring; a received frame that
//! must wait is kept in its buffer, not yet used (one frame), and the TAP is not polled
//! until the timer fires.
//!
//! Headers: with tx offloads offered (`offload=on`, the default: checksum and TSO, see
//! [`super::net_hdr`]) and negotiated, the guest's tx header is copied, checked against
//! the negotiated features and the frame's length, and only then given to the TAP; a
//! header that fails is dropped with its frame and counted. Without them (`offload=off`,
//! or a driver that takes none) the header is zeroed before the host kernel sees it, so
//! no guest value reaches the TAP's checksum and GSO paths. Every rx header says
//! num_buffers = 1 (the TAP writes only the first 10 bytes of it); the TAP's own offloads
//! stay off, so the host sends the guest only whole, checksummed frames of up to the MTU.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};

use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes};

use super::iov::Iovecs;
use super::net_hdr::{self, TX_OFFLOADS};
use super::queue::{self, Desc};
use super::tap::{Tap, VNET_HDR_LEN};
use super::throttle::{self, Throttle};
use super::{read_config_bytes, Mem, QueueError, RateLimitedLog, VirtioDevice, FEATURE_VERSION_1};

/// Index of the receive queue.
pub const RX: usize = 0;
/// Index of the transmit queue.
pub const TX: usize = 1;
/// Largest frame handled: header + 64 KiB + an Ethernet header (a TSO frame of the guest's;
/// rx frames are at most the MTU, the TAP's offloads being off).
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
    /// Offer the tx offloads ([`TX_OFFLOADS`]).
    offload: bool,
    /// The tx offloads the driver accepted (0 until FEATURES_OK, and after a reset).
    tx_offloads: u64,
    /// Frames dropped because their header failed [`net_hdr::check_tx`].
    tx_bad_headers: u64,
    /// Where an rx frame's bytes beyond its buffer chain go (and a dropped frame's).
    rx_scratch: Vec<u8>,
    /// A received frame waiting for its rx tokens: (chain head, bytes written, frame bytes).
    rx_held: Option<(u16, usize, usize)>,
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
    /// A device on `tap` with `mac`, offering the tx offloads.
    pub fn new(tap: Tap, mac: [u8; 6]) -> Self {
        Net {
            tap,
            mac,
            rx_stalled: false,
            tap_failed: false,
            tx_refused: 0,
            offload: true,
            tx_offloads: 0,
            tx_bad_headers: 0,
            rx_scratch: vec![0; MAX_FRAME],
            rx_held: None,
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

    /// The same device offering the tx offloads (`offload=on`) or not (`offload=off`).
    pub fn with_tx_offload(mut self, offload: bool) -> Self {
        self.offload = offload;
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

    /// The header the TAP gets for a frame of `total` bytes (header included): the guest's,
    /// checked, when tx offloads were negotiated; zeroes otherwise (nothing in the guest's
    /// is meaningful then, and none of it reaches the host kernel).
    fn tx_header(
        &mut self,
        head: u16,
        descs: &[Desc],
        total: usize,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Option<[u8; VNET_HDR_LEN]> {
        let mut hdr = [0u8; VNET_HDR_LEN];
        if self.tx_offloads == 0 {
            return Some(hdr);
        }
        if !read_readable(descs, mem, &mut hdr) {
            log.warn(format_args!(
                "tx request {head}: header outside RAM: frame dropped"
            ));
            return None;
        }
        match net_hdr::check_tx(hdr, total - VNET_HDR_LEN, self.tx_offloads) {
            Ok(hdr) => Some(hdr),
            Err(e) => {
                self.tx_bad_headers += 1;
                log.warn(format_args!(
                    "tx request {head}: header refused ({e}): frame dropped ({} so far)",
                    self.tx_bad_headers
                ));
                None
            }
        }
    }

    /// Writes one frame of `total` bytes to the TAP: the device's copy of the header
    /// ([`Net::tx_header`]), then the chain's readable bytes after the header, straight
    /// from guest RAM.
    fn send(
        &mut self,
        head: u16,
        descs: &[Desc],
        total: usize,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) {
        let Some(mut hdr) = self.tx_header(head, descs, total, mem, log) else {
            return;
        };
        let mut iov = Iovecs::default();
        let mut skip = VNET_HDR_LEN;
        let mut built = iov.push_host(&mut hdr);
        for d in descs.iter().filter(|d| !d.writable) {
            let n = d.len as usize;
            let s = skip.min(n);
            skip -= s;
            if built.is_ok() && n > s {
                built = match d.addr.checked_add(s as u64) {
                    Some(addr) => iov.push_guest(mem, addr, n - s),
                    None => Err(super::iov::IovError::OutsideRam),
                };
            }
        }
        if let Err(e) = built {
            log.warn(format_args!("tx request {head}: {e}: frame dropped"));
            return;
        }
        let len = iov.len();
        match self.tap.writev(&iov) {
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
                    if (VNET_HDR_LEN..=MAX_FRAME).contains(&total) {
                        self.send(req.head, &descs, total, mem, log);
                    } else {
                        log.warn(format_args!("tx request {}: bad frame dropped", req.head));
                    }
                }
                Ok(_) => {}
            }
            queue::complete(q, mem, req.head, 0)?;
            used = true;
        }
        Ok(used)
    }

    /// Reads one frame from the TAP into `chain`'s writable buffers (the rest, if any, into
    /// the scratch area), num_buffers set to 1: Some((bytes written to the chain, frame
    /// bytes)); None when the TAP has none (or failed). A chain outside RAM, or an Err
    /// chain, gets nothing: the frame is read into the scratch area and dropped.
    fn read_frame(
        &mut self,
        head: u16,
        chain: Option<&[Desc]>,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Option<(usize, usize)> {
        let mut iov = Iovecs::default();
        let mut room = 0;
        if let Some(descs) = chain {
            for d in descs.iter().filter(|d| d.writable) {
                let n = (d.len as usize).min(MAX_FRAME - room);
                if let Err(e) = iov.push_guest(mem, d.addr, n) {
                    log.warn(format_args!("rx buffer {head}: {e}: frame dropped"));
                    iov = Iovecs::default();
                    room = 0;
                    break;
                }
                room += n;
            }
        }
        // Never short: what the chain cannot take lands here.
        let _ = iov.push_host(&mut self.rx_scratch);
        let n = match self.tap.readv(&iov) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted {
                    self.tap_error(log, "read", e);
                }
                return None;
            }
        };
        drop(iov);
        let written = n.min(room);
        if written < n && room > 0 {
            log.warn(format_args!("rx buffer {head} too small: frame truncated"));
        }
        if let (Some(descs), true) = (chain, written >= VNET_HDR_LEN) {
            let one = 1u16.to_le_bytes();
            write_at(descs, mem, NUM_BUFFERS_OFFSET, &one);
        }
        Some((written, n))
    }

    fn receive(
        &mut self,
        q: &mut Queue,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        if let Some((head, written, n)) = self.rx_held {
            if !throttle::admit(&mut self.rx_throttle, frame_bytes(n), log) {
                return Ok(false);
            }
            self.rx_held = None;
            queue::complete(q, mem, head, written as u32)?;
            used = true;
        }
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
            let chain = req.descs.as_ref().ok().map(Vec::as_slice);
            if let Err(e) = &req.descs {
                log.warn(format_args!("rx buffer {}: {e}: frame dropped", req.head));
            }
            let Some((written, n)) = self.read_frame(req.head, chain, mem, log) else {
                queue::undo_pop(q);
                break;
            };
            if !throttle::admit(&mut self.rx_throttle, frame_bytes(n), log) {
                // The frame waits in its buffer, not yet used, for the rx timer.
                self.rx_held = Some((req.head, written, n));
                break;
            }
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
        let offloads = if self.offload { TX_OFFLOADS } else { 0 };
        FEATURE_VERSION_1 | 1 << VIRTIO_NET_F_MAC | offloads
    }

    fn ack_features(&mut self, features: u64) {
        self.tx_offloads = features & TX_OFFLOADS;
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
        self.tx_offloads = 0;
        self.rx_held = None;
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
        !self.rx_stalled && !self.tap_failed && self.rx_held.is_none()
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

/// Fills `buf` from the start of `descs`' readable buffers; false if they are shorter or
/// a part is outside RAM.
fn read_readable(descs: &[Desc], mem: &Mem, buf: &mut [u8]) -> bool {
    let mut done = 0;
    for d in descs.iter().filter(|d| !d.writable) {
        if done == buf.len() {
            break;
        }
        let n = (d.len as usize).min(buf.len() - done);
        if mem.read_slice(&mut buf[done..done + n], d.addr).is_err() {
            return false;
        }
        done += n;
    }
    done == buf.len()
}

/// Writes `bytes` at byte `offset` of `descs`' writable buffers (what fits).
fn write_at(descs: &[Desc], mem: &Mem, offset: usize, bytes: &[u8]) {
    let end = offset + bytes.len();
    queue::fill_writable(descs, end, |addr, from, len| {
        // The part of [from, from + len) that overlaps [offset, end).
        let (lo, hi) = (from.max(offset), (from + len).min(end));
        if lo < hi {
            let at = addr.checked_add((lo - from) as u64);
            if at.is_none_or(|a| {
                mem.write_slice(&bytes[lo - offset..hi - offset], a)
                    .is_err()
            }) {
                return 0;
            }
        }
        len
    });
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
