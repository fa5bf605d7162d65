//! Shared helpers of the fuzz targets: an input reader, small guest memories, rings written
//! from fuzz input, and (from `devices`' `test-utils`, shared with its unit tests) a virtio
//! transport driven through its registers like a driver would.
//!
//! Every size taken from the input is capped here or in the target, so no input can make a
//! target allocate more than a few MiB.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};

pub use devices::virtio::test_utils::Driver;
use devices::virtio::Mem;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Reads fixed-size values off the fuzz input; past the end everything reads as 0.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// True when the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// Guest RAM of the virtio targets: two regions with a hole between them, so buffers
/// that cross the hole or run off the end are exercised.
pub const RAM: [(u64, usize); 2] = [(0, 0x10_0000), (0x11_0000, 0x10_0000)];
/// End of the highest region.
pub const RAM_END: u64 = 0x21_0000;

/// A fresh, zeroed guest memory with the [`RAM`] layout.
pub fn guest_memory() -> Mem {
    let ranges: Vec<_> = RAM.iter().map(|&(a, l)| (GuestAddress(a), l)).collect();
    GuestMemoryMmap::<()>::from_ranges(&ranges).expect("guest memory")
}

/// An address the fuzzer can steer: mostly inside (or just around) RAM, sometimes raw.
pub fn addr(input: &mut Input) -> u64 {
    match input.u8() % 8 {
        0 => input.u64(),
        1 => RAM_END - u64::from(input.u16()),
        2 => 0x10_0000 - 0x800 + u64::from(input.u16() % 0x1000),
        _ => u64::from(input.u32()) % RAM_END,
    }
}

/// A memfd of `size` bytes whose first bytes are `content`.
pub fn memfd(name: &str, content: &[u8], size: u64) -> File {
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid NUL-terminated name and valid flags.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by memfd_create and nobody else owns it.
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(content).unwrap();
    f.set_len(size.max(content.len() as u64)).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f
}

/// Reopens `f` read-only (through /proc/self/fd), as microvm opens a read-only disk.
pub fn reopen_read_only(f: &File) -> File {
    use std::os::fd::AsRawFd;
    File::open(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("reopen read-only")
}

/// A connected non-blocking SOCK_SEQPACKET pair standing in for a TAP and its far end.
pub fn fake_tap() -> (devices::virtio::tap::Tap, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into `fds`, which has room for them.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (devices::virtio::tap::Tap::from_fd(a, "fuzz0"), b)
}

/// Drains everything readable on a non-blocking fd (the far end of a fake TAP, or an
/// eventfd), so nothing grows across iterations.
pub fn drain(fd: &OwnedFd) {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    for _ in 0..1024 {
        // SAFETY: reading at most buf.len() bytes into buf.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
    }
}

/// Where a queue's rings live.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

impl Layout {
    /// Programs queue `q` of `d` with this layout and sets it ready; true if the transport
    /// took it.
    pub fn setup(&self, d: &mut Driver, q: u32) -> bool {
        d.program_queue(q, self.size, [self.desc, self.avail, self.used])
    }

    /// A layout for queue `q` from the input: usually a valid power-of-two size with the
    /// rings at fixed, separate places; sometimes anything.
    pub fn from_input(input: &mut Input, q: u64) -> Layout {
        let sel = input.u8();
        let size = 1u16 << (sel % 9); // 1..=256
        let base = 0x1000 + q * 0x4000;
        let mut l = Layout {
            size,
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
        };
        if sel & 0x80 != 0 {
            // Odd sizes and addresses: overlapping rings, misaligned, outside RAM.
            l.size = input.u16();
            l.desc = addr(input);
            l.avail = addr(input);
            l.used = addr(input);
        }
        l
    }

    /// Writes the descriptor table and avail ring from the input. Descriptor addresses
    /// mostly point into the data area at 0x20000, where `data` bytes (headers, frames)
    /// are copied.
    pub fn fill(&self, mem: &Mem, input: &mut Input) {
        let n = u64::from(self.size.min(devices::virtio::QUEUE_MAX_SIZE));
        let count = u64::from(input.u8()).min(n);
        for i in 0..count {
            let kind = input.u8();
            let a = if kind & 1 == 0 {
                DATA + u64::from(input.u16()) * 8 % 0x8_0000
            } else {
                addr(input)
            };
            let len = match (kind >> 1) & 3 {
                0 => u32::from(input.u8()),
                1 => u32::from(input.u16()),
                2 => 16,
                _ => input.u32(),
            };
            let flags = input.u16() & 0x7; // NEXT, WRITE, INDIRECT
            let next = if kind & 0x80 != 0 {
                input.u16()
            } else {
                (i as u16 + 1) % self.size.max(1)
            };
            let mut d = [0u8; 16];
            d[0..8].copy_from_slice(&a.to_le_bytes());
            d[8..12].copy_from_slice(&len.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            d[14..16].copy_from_slice(&next.to_le_bytes());
            let _ = mem.write_slice(&d, GuestAddress(self.desc.wrapping_add(16 * i)));
        }
        self.publish(mem, input);
    }

    /// Appends avail entries from the input and moves avail.idx (to any value, sometimes).
    pub fn publish(&self, mem: &Mem, input: &mut Input) {
        let n = u64::from(self.size.min(devices::virtio::QUEUE_MAX_SIZE)).max(1);
        let old: u16 = mem
            .read_obj(GuestAddress(self.avail.wrapping_add(2)))
            .unwrap_or(0);
        let count = input.u8();
        let mut idx = old;
        for _ in 0..count.min(64) {
            let head = u16::from(input.u8());
            let slot = self.avail.wrapping_add(4 + 2 * (u64::from(idx) % n));
            let _ = mem.write_obj(head, GuestAddress(slot));
            idx = idx.wrapping_add(1);
        }
        if count & 0x80 != 0 {
            idx = input.u16();
        }
        let _ = mem.write_obj(idx, GuestAddress(self.avail.wrapping_add(2)));
    }
}

/// Start of the area where data buffers usually point.
pub const DATA: u64 = 0x2_0000;

/// Copies up to 64 KiB of input into the data area.
pub fn write_data(mem: &Mem, input: &mut Input) {
    let len = usize::from(input.u16());
    let bytes = input.bytes(len);
    let _ = mem.write_slice(bytes, GuestAddress(DATA));
}
