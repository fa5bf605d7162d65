//! A TAP interface opened through /dev/net/tun, with a virtio-net header on every frame
//! (IFF_VNET_HDR, 12-byte header), every offload off and non-blocking I/O. Opened on the
//! main thread before any filter goes on; the net thread only reads and writes it.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// TUNSETIFF = _IOW('T', 202, int).
pub const TUNSETIFF: u64 = 0x4004_54ca;
/// TUNSETVNETHDRSZ = _IOW('T', 216, int).
pub const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;
/// TUNSETOFFLOAD = _IOW('T', 208, unsigned int).
pub const TUNSETOFFLOAD: u64 = 0x4004_54d0;
/// Size of struct virtio_net_hdr_v1 (what the contract puts in front of every frame).
pub const VNET_HDR_LEN: usize = 12;

/// Errors opening a TAP.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name does not fit IFNAMSIZ or holds a NUL.
    #[error("invalid TAP name {0:?}: 1 to 15 bytes, no NUL")]
    Name(String),
    /// /dev/net/tun could not be opened.
    #[error("cannot open /dev/net/tun: {0}")]
    Open(std::io::Error),
    /// An ioctl failed.
    #[error("TAP {name}: {ioctl} failed: {source}")]
    Ioctl {
        /// Interface name.
        name: String,
        /// ioctl name.
        ioctl: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// An open TAP (or, in tests, any packet fd standing in for one).
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

impl Tap {
    /// Attaches to the TAP interface `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) and turns
    /// its offloads off. A persistent TAP keeps the offloads its last user set (Firecracker
    /// sets checksum and TSO); with them on, the host would send GSO frames of up to 64 KiB
    /// with partial checksums, which a guest that negotiated no offload cannot take.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(TapError::Name(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
        let ioctl_err = |ioctl| {
            let source = std::io::Error::last_os_error();
            TapError::Ioctl {
                name: name.to_string(),
                ioctl,
                source,
            }
        };
        // SAFETY: TUNSETIFF reads and writes one ifreq, which lives for the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut ifr) } < 0 {
            return Err(ioctl_err("TUNSETIFF"));
        }
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int, which lives for the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETVNETHDRSZ as _, &hdr_len) } < 0 {
            return Err(ioctl_err("TUNSETVNETHDRSZ"));
        }
        // SAFETY: TUNSETOFFLOAD takes its flags by value (0: no offload); no memory is passed.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD as _, 0 as libc::c_ulong) } < 0 {
            return Err(ioctl_err("TUNSETOFFLOAD"));
        }
        Ok(Tap {
            fd: file.into(),
            name: name.to_string(),
        })
    }

    /// Wraps an fd that behaves like a TAP (one frame per read/write, non-blocking).
    pub fn from_fd(fd: OwnedFd, name: &str) -> Tap {
        Tap {
            fd,
            name: name.to_string(),
        }
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame (virtio-net header + Ethernet frame) into the pieces of `iov`.
    pub fn readv(&self, iov: &super::iov::Iovecs) -> std::io::Result<usize> {
        let v = iov.as_slice();
        // SAFETY: every iovec covers memory `iov` keeps mapped and writable for the call;
        // at most MAX_SEGMENTS (UIO_MAXIOV) of them.
        let n = unsafe { libc::readv(self.fd.as_raw_fd(), v.as_ptr(), v.len() as libc::c_int) };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    }

    /// Writes one frame (virtio-net header + Ethernet frame) from the pieces of `iov`.
    pub fn writev(&self, iov: &super::iov::Iovecs) -> std::io::Result<usize> {
        let v = iov.as_slice();
        // SAFETY: every iovec covers memory `iov` keeps mapped for the call; at most
        // MAX_SEGMENTS (UIO_MAXIOV) of them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), v.as_ptr(), v.len() as libc::c_int) };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
#[path = "tap_tests.rs"]
mod tests;
