//! `--isolate devices`: a virtio-mmio window whose transport lives in another process.
//!
//! In the VMM, a [`ProxyDevice`] sits at the device's MMIO window on the bus. Every guest
//! read or write of a register becomes one fixed-size [`Request`] over a `SOCK_SEQPACKET`
//! socket to the device process, which answers each with one [`Reply`] ([`serve_one`]).
//! Queue notifications (KVM ioeventfds) and interrupts (irqfd) do not pass through here.
//!
//! A device process that is gone (EOF, ECONNRESET, EPIPE) or answers nonsense puts the
//! device into DEVICE_NEEDS_RESET for good ([`ProxyState`]): Status reads return
//! `VIRTIO_CONFIG_S_NEEDS_RESET`, every other read 0, and writes are dropped; the VM and its
//! other devices carry on.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_config::VIRTIO_CONFIG_S_NEEDS_RESET;
use virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::{BusDevice, SharedBusDevice};

/// Size of every message, both ways.
pub const MESSAGE_LEN: usize = 16;
/// Largest register access one message carries.
pub const MAX_ACCESS: usize = 8;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A guest read.
    Read = 1,
    /// A guest write.
    Write = 2,
}

impl Op {
    fn from_byte(b: u8) -> Option<Op> {
        match b {
            1 => Some(Op::Read),
            2 => Some(Op::Write),
            _ => None,
        }
    }
}

/// Why a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not exactly [`MESSAGE_LEN`] bytes.
    #[error("message of {0} bytes, expected 16")]
    Length(usize),
    /// An unknown operation byte.
    #[error("unknown operation {0}")]
    Op(u8),
    /// An access size other than 1, 2, 4 or 8.
    #[error("access of {0} bytes")]
    Size(u8),
    /// An access that does not fit in the window.
    #[error("access at {offset:#x} outside the {window:#x}-byte window")]
    Offset {
        /// Offset asked for.
        offset: u32,
        /// Size of the window.
        window: u64,
    },
    /// A reply that is not the answer to the request sent.
    #[error("reply does not match its request")]
    Mismatch,
    /// The device process reported that it refused the request.
    #[error("the device process refused the request")]
    Refused,
}

/// One register access, VMM to device process.
///
/// Wire format (16 bytes): op (1), len (1), 2 zero bytes, offset (u32 LE), data (8; the
/// written bytes, zero for a read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Read or write.
    pub op: Op,
    /// Offset in the window.
    pub offset: u32,
    /// Access size, 1..=8.
    pub len: u8,
    /// The bytes written (first `len`), zero for a read.
    pub data: [u8; MAX_ACCESS],
}

/// The answer to one [`Request`], device process to VMM.
///
/// Wire format (16 bytes): op (1, echoed), len (1, echoed), status (1: 0 done, 1 refused),
/// 1 zero byte, 4 zero bytes, data (8; the bytes read, zero for a write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The request's op.
    pub op: Op,
    /// The request's size.
    pub len: u8,
    /// False when the device process refused the request.
    pub ok: bool,
    /// The bytes read (first `len`).
    pub data: [u8; MAX_ACCESS],
}

fn valid_len(len: u8) -> bool {
    matches!(len, 1 | 2 | 4 | 8)
}

impl Request {
    /// A request for `op` of `data.len()` bytes at `offset`, or None if the access is not
    /// 1, 2, 4 or 8 bytes or its offset does not fit in 32 bits.
    pub fn new(op: Op, offset: u64, data: &[u8]) -> Option<Request> {
        let len = u8::try_from(data.len()).ok().filter(|&l| valid_len(l))?;
        let mut bytes = [0u8; MAX_ACCESS];
        if op == Op::Write {
            bytes[..data.len()].copy_from_slice(data);
        }
        Some(Request {
            op,
            offset: u32::try_from(offset).ok()?,
            len,
            data: bytes,
        })
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut m = [0u8; MESSAGE_LEN];
        m[0] = self.op as u8;
        m[1] = self.len;
        m[4..8].copy_from_slice(&self.offset.to_le_bytes());
        m[8..].copy_from_slice(&self.data);
        m
    }

    /// Decodes and checks a request for a window of `window` bytes.
    pub fn decode(m: &[u8], window: u64) -> Result<Request, MessageError> {
        let m: &[u8; MESSAGE_LEN] = m.try_into().map_err(|_| MessageError::Length(m.len()))?;
        let op = Op::from_byte(m[0]).ok_or(MessageError::Op(m[0]))?;
        let len = m[1];
        if !valid_len(len) {
            return Err(MessageError::Size(len));
        }
        let offset = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
        if u64::from(offset) + u64::from(len) > window {
            return Err(MessageError::Offset { offset, window });
        }
        let mut data = [0u8; MAX_ACCESS];
        data.copy_from_slice(&m[8..]);
        Ok(Request {
            op,
            offset,
            len,
            data,
        })
    }
}

impl Reply {
    /// The wire form.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut m = [0u8; MESSAGE_LEN];
        m[0] = self.op as u8;
        m[1] = self.len;
        m[2] = u8::from(!self.ok);
        m[8..].copy_from_slice(&self.data);
        m
    }

    /// Decodes a reply and checks it answers `req`: same op and size, status done, and no
    /// byte set beyond the access (or at all, for a write).
    pub fn decode_for(m: &[u8], req: &Request) -> Result<Reply, MessageError> {
        let m: &[u8; MESSAGE_LEN] = m.try_into().map_err(|_| MessageError::Length(m.len()))?;
        let op = Op::from_byte(m[0]).ok_or(MessageError::Op(m[0]))?;
        let used = if op == Op::Read { usize::from(m[1]) } else { 0 };
        let clean = m[3..8]
            .iter()
            .chain(&m[8 + used.min(MAX_ACCESS)..])
            .all(|&b| b == 0);
        if op != req.op || m[1] != req.len || !clean || m[2] > 1 {
            return Err(MessageError::Mismatch);
        }
        if m[2] != 0 {
            return Err(MessageError::Refused);
        }
        let mut data = [0u8; MAX_ACCESS];
        data.copy_from_slice(&m[8..]);
        Ok(Reply {
            op,
            len: m[1],
            ok: true,
            data,
        })
    }
}

/// A connected `SOCK_SEQPACKET` pair (close-on-exec): (VMM end, device process end).
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for the two fds socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message (plain `write`: the socket keeps message boundaries), retrying EINTR.
pub fn send(fd: RawFd, m: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: `m` is valid for `m.len()` bytes.
        let n = unsafe { libc::write(fd, m.as_ptr().cast(), m.len()) };
        if n >= 0 {
            return if n as usize == m.len() {
                Ok(())
            } else {
                Err(io::Error::from(io::ErrorKind::WriteZero))
            };
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A proxy socket end, for vmm-sys-util's SCM_RIGHTS helpers.
struct Scm(RawFd);

impl ScmSocket for Scm {
    fn socket_fd(&self) -> RawFd {
        self.0
    }
}

/// Sends one message `m` carrying the fd `passed` (SCM_RIGHTS), retrying EINTR.
pub fn send_with_fd(fd: RawFd, m: &[u8], passed: RawFd) -> io::Result<()> {
    loop {
        match Scm(fd).send_with_fd(m, passed) {
            Ok(n) if n == m.len() => return Ok(()),
            Ok(_) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Err(e) if e.errno() == libc::EINTR => {}
            Err(e) => return Err(io::Error::from_raw_os_error(e.errno())),
        }
    }
}

/// [`recv`] of a message that may carry one fd (SCM_RIGHTS), which is returned owned.
pub fn recv_with_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    loop {
        match Scm(fd).recv_with_fd(buf) {
            Ok((n, file)) => return Ok((n, file.map(OwnedFd::from))),
            Err(e) if e.errno() == libc::EINTR => {}
            Err(e) => return Err(io::Error::from_raw_os_error(e.errno())),
        }
    }
}

/// Receives one message into `buf` (plain `read`), retrying EINTR; 0 means the peer is
/// gone. A message longer than `buf` is cut to it (and so fails to decode).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether a device's process still serves it; shared by its [`ProxyDevice`] and whoever
/// watches the process.
#[derive(Debug, Default)]
pub struct ProxyState {
    dead: AtomicBool,
}

impl ProxyState {
    /// Marks the device as needing a reset; true if it was live until now.
    pub fn mark_dead(&self) -> bool {
        !self.dead.swap(true, Ordering::AcqRel)
    }

    /// True once the device process is gone or misbehaved.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }
}

/// The VMM side of an isolated device: the bus device at its MMIO window.
pub struct ProxyDevice {
    name: String,
    socket: OwnedFd,
    state: Arc<ProxyState>,
}

impl ProxyDevice {
    /// The proxy of device `name` over `socket` (the VMM end of [`socket_pair`]).
    pub fn new(name: &str, socket: OwnedFd, state: Arc<ProxyState>) -> Self {
        ProxyDevice {
            name: name.to_string(),
            socket,
            state,
        }
    }

    /// The socket's fd (for the vCPU filters).
    pub fn socket_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Sends `req` and waits for its reply; None (and the device marked dead) if the
    /// process is gone or the reply is not an answer to it.
    fn transact(&self, req: &Request) -> Option<Reply> {
        if self.state.is_dead() {
            return None;
        }
        let fd = self.socket.as_raw_fd();
        let mut buf = [0u8; MESSAGE_LEN + 1];
        let got = send(fd, &req.encode()).and_then(|()| recv(fd, &mut buf));
        let reply = match got {
            // EOF: the process ended (its death is reported by whoever reaps it).
            Ok(0) => None,
            Ok(n) => match Reply::decode_for(&buf[..n], req) {
                Ok(r) => return Some(r),
                Err(MessageError::Refused) => {
                    log::debug!("{}: request {req:?} refused", self.name);
                    return None;
                }
                Err(e) => {
                    if self.state.mark_dead() {
                        log::warn!(
                            "{}: device process sent a bad reply ({e}); device needs reset",
                            self.name
                        );
                    }
                    return None;
                }
            },
            // ECONNRESET / EPIPE: gone, as above.
            Err(_) => None,
        };
        self.state.mark_dead();
        reply
    }
}

/// What a dead device answers to a read: NEEDS_RESET in Status, 0 everywhere else.
pub fn dead_read(offset: u64, data: &mut [u8]) {
    data.fill(0);
    if offset == u64::from(VIRTIO_MMIO_STATUS) && data.len() == 4 {
        data.copy_from_slice(&VIRTIO_CONFIG_S_NEEDS_RESET.to_le_bytes());
    }
}

impl BusDevice for ProxyDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let reply = Request::new(Op::Read, offset, data).and_then(|r| self.transact(&r));
        match reply {
            Some(r) => data.copy_from_slice(&r.data[..data.len()]),
            None if self.state.is_dead() => dead_read(offset, data),
            None => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(req) = Request::new(Op::Write, offset, data) {
            let _ = self.transact(&req);
        }
    }
}

/// What [`serve_one`] found on the socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// One request answered (or refused, when it did not decode).
    Answered,
    /// The VMM end is closed.
    Closed,
}

/// Device process: reads one request from `fd`, performs it on `window` (a window of
/// `size` bytes) and sends the reply. A request that does not decode is refused, not
/// performed.
pub fn serve_one(window: &dyn SharedBusDevice, size: u64, fd: RawFd) -> io::Result<Served> {
    let mut buf = [0u8; MESSAGE_LEN + 1];
    let n = recv(fd, &mut buf)?;
    if n == 0 {
        return Ok(Served::Closed);
    }
    let reply = match Request::decode(&buf[..n], size) {
        Ok(req) => perform(window, &req),
        Err(e) => {
            log::warn!("proxy request refused: {e}");
            let op = Op::from_byte(buf[0]).unwrap_or(Op::Read);
            Reply {
                op,
                len: buf[1],
                ok: false,
                data: [0; MAX_ACCESS],
            }
        }
    };
    send(fd, &reply.encode())?;
    Ok(Served::Answered)
}

/// Performs a decoded request on `window`.
pub fn perform(window: &dyn SharedBusDevice, req: &Request) -> Reply {
    let len = usize::from(req.len);
    let mut data = [0u8; MAX_ACCESS];
    match req.op {
        Op::Read => window.read(u64::from(req.offset), &mut data[..len]),
        Op::Write => window.write(u64::from(req.offset), &req.data[..len]),
    }
    Reply {
        op: req.op,
        len: req.len,
        ok: true,
        data,
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
