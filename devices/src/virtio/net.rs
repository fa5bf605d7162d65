//! virtio-net (device ID 1) on a TAP: queue 0 = rx, queue 1 = tx, no control queue.
//!
//! tx: each chain's device-readable buffers (virtio-net header + frame) are gathered into
//! one bounded buffer and written to the TAP. rx: while the guest has rx buffers, frames
//! are read from the TAP into them; when it has none, the device thread stops polling the
//! TAP until the guest notifies rx again (no busy loop, nothing queued on the host).
//! If the TAP fails (EBADFD, EIO, ...), both queues stop with one log line; the VM runs on.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};

use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_queue::{Queue, QueueT};
use vm_memory::Bytes;

use super::queue;
use super::tap::{Tap, VNET_HDR_LEN};
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
    buf: Vec<u8>,
}

impl Net {
    /// A device on `tap` with `mac`.
    pub fn new(tap: Tap, mac: [u8; 6]) -> Self {
        Net {
            tap,
            mac,
            rx_stalled: false,
            tap_failed: false,
            buf: vec![0; MAX_FRAME],
        }
    }

    fn tap_error(&mut self, log: &mut RateLimitedLog, what: &str, e: std::io::Error) {
        self.tap_failed = true;
        log.warn(format_args!(
            "TAP {}: {what} failed: {e}; rx and tx stopped",
            self.tap.name()
        ));
    }

    fn transmit(
        &mut self,
        q: &mut Queue,
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        while let Some(req) = queue::pop(q, mem)? {
            match req.descs {
                Err(e) => {
                    log.warn(format_args!("tx request {}: {e}", req.head));
                }
                Ok(descs) if !self.tap_failed => {
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
                        match self.tap.write(&self.buf[..len]) {
                            Ok(_) => {}
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                log.warn(format_args!("TAP full: frame dropped"));
                            }
                            Err(e) => self.tap_error(log, "write", e),
                        }
                    }
                }
                Ok(_) => {}
            }
            queue::complete(q, mem, req.head, 0)?;
            used = true;
        }
        Ok(used)
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
                self.rx_stalled = true;
                break;
            };
            let n = match self.tap.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    queue::undo_pop(q);
                    if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted {
                        self.tap_error(log, "read", e);
                    }
                    break;
                }
            };
            let written = match req.descs {
                Err(e) => {
                    log.warn(format_args!("rx buffer {}: {e}: frame dropped", req.head));
                    0
                }
                Ok(descs) => {
                    let frame = &self.buf[..n];
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
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.tap.as_raw_fd())
    }

    fn wants_host_fd(&self) -> bool {
        !self.rx_stalled && !self.tap_failed
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
mod tests {
    use std::os::fd::{FromRawFd, OwnedFd};

    use vm_memory::{Bytes, GuestAddress};

    use super::super::tap::Tap;
    use super::super::testutil::*;
    use super::*;
    use crate::BusDevice;

    /// A SOCK_SEQPACKET pair: one end is the device's "TAP", the other the host network.
    fn fake_tap() -> (Tap, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two fds into `fds`.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: both fds are fresh and owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        (Tap::from_fd(a, "fake0"), b)
    }

    #[test]
    fn tx_reaches_the_tap_and_rx_waits_for_buffers() {
        let (tap, peer) = fake_tap();
        let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
        h.init();
        let mut mac = [0u8; 6];
        h.t.read(0x100, &mut mac);
        assert_eq!(mac, [6, 0, 0, 0, 0, 1]);

        // tx: header + frame in two buffers.
        h.mem
            .write_slice(&[0u8; VNET_HDR_LEN], GuestAddress(DATA))
            .unwrap();
        h.mem
            .write_slice(b"frame-out", GuestAddress(DATA + 0x100))
            .unwrap();
        let mut tx = h.ring(TX);
        tx.add(&[(DATA, VNET_HDR_LEN as u32, false), (DATA + 0x100, 9, false)]);
        h.t.notify(TX);
        assert_eq!(h.used(TX).0, 1);
        let mut got = [0u8; 64];
        // SAFETY: reading into `got`.
        let n = unsafe { libc::read(peer.as_raw_fd(), got.as_mut_ptr().cast(), 64) };
        assert_eq!(n as usize, VNET_HDR_LEN + 9);
        assert_eq!(&got[VNET_HDR_LEN..n as usize], b"frame-out");

        // rx with no buffer: the device stops polling the TAP.
        let frame = [7u8; 40];
        // SAFETY: writing `frame`.
        unsafe { libc::write(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        h.t.host_fd_ready();
        assert!(
            h.t.wanted_host_fd().is_none(),
            "must not poll without rx buffers"
        );
        // The guest adds a buffer and notifies rx: the pending frame arrives.
        let mut rx = h.ring(RX);
        rx.add(&[(DATA + 0x1000, 2048, true)]);
        rx.add(&[(DATA + 0x2000, 2048, true)]);
        h.t.notify(RX);
        assert_eq!(h.used(RX), (1, vec![(0, 40)]));
        assert!(
            h.t.wanted_host_fd().is_some(),
            "a buffer is left: poll the TAP"
        );
    }

    #[test]
    fn a_failing_tap_stops_the_queues_not_the_vmm() {
        let (tap, peer) = fake_tap();
        drop(peer);
        let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
        h.init();
        let mut tx = h.ring(TX);
        tx.add(&[(DATA, 64, false)]);
        h.t.notify(TX);
        assert_eq!(h.used(TX).0, 1, "the frame is completed (dropped)");
        assert!(h.t.wanted_host_fd().is_none(), "TAP no longer polled");
    }
}
