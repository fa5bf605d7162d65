//! virtio-blk (device ID 2) on a raw image file: IN, OUT, FLUSH, GET_ID.
//!
//! Every request is checked before the host file is touched: the chain shape (header
//! device-readable, data in the right direction, a 1-byte device-writable status last), the
//! buffers inside guest RAM, and the sector range inside the file. The file never grows.
//! A read-only disk is opened O_RDONLY and refuses OUT with IOERR.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

use virtio_bindings::virtio_blk::*;
use virtio_queue::Queue;
use vm_memory::{Address, Bytes, GuestMemoryBackend};

use super::queue::{self, Desc, Request, Served};
use super::throttle::{self, Throttle};
use super::{read_config_bytes, Mem, QueueError, RateLimitedLog, VirtioDevice, FEATURE_VERSION_1};

/// Sector size of the virtio-blk protocol.
pub const SECTOR_SIZE: u64 = 512;

/// Takes an open-file-description lock on a whole disk image: shared for a read-only disk,
/// exclusive otherwise, as Cloud Hypervisor does. A second VM on the same image, or the same
/// image given twice, then fails here (EAGAIN) instead of corrupting it. The lock lasts as
/// long as the file stays open.
pub fn lock_image(file: &File, read_only: bool) -> std::io::Result<()> {
    // SAFETY: an all-zero flock is a valid value; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = if read_only {
        libc::F_RDLCK
    } else {
        libc::F_WRLCK
    } as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start = l_len = 0: the whole file, however it grows.
    // SAFETY: F_OFD_SETLK reads the flock we own; the fd is open for `file`'s lifetime.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
/// seg_max in config space: most data descriptors per request.
pub const SEG_MAX: u32 = 254;
/// size_max in config space: most bytes per data descriptor.
const SIZE_MAX: u32 = 64 * 1024;
/// Request header: type, reserved, sector.
const HEADER_LEN: u32 = 16;

/// A virtio block device backed by an open image file.
pub struct Block {
    file: File,
    read_only: bool,
    capacity: u64,
    id: [u8; VIRTIO_BLK_ID_BYTES as usize],
    /// `bw=` / `ops=`: requests wait for their tokens.
    throttle: Option<Throttle>,
}

/// Bytes a request moves, for the `bw=` limit: its data buffers (all but the header and
/// the status byte; IN/OUT are what count). A chain that could not be walked moves none.
fn request_bytes(req: &Request) -> u64 {
    match &req.descs {
        Ok(descs) if descs.len() > 2 => descs[1..descs.len() - 1]
            .iter()
            .map(|d| u64::from(d.len))
            .sum(),
        _ => 0,
    }
}

impl Block {
    /// Disk number `index` on `file` (opened read-only when `read_only`), whose size is
    /// `size` bytes (a multiple of 512).
    pub fn new(index: usize, file: File, size: u64, read_only: bool) -> Self {
        let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        let name = format!("microvm-blk{index}");
        let n = name.len().min(id.len());
        id[..n].copy_from_slice(&name.as_bytes()[..n]);
        Block {
            file,
            read_only,
            capacity: size / SECTOR_SIZE,
            id,
            throttle: None,
        }
    }

    /// The same disk with its requests rate-limited by `throttle`.
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Serves one walked request (or reports why it cannot); returns the used length.
    fn serve_one(&mut self, mem: &Mem, req: &Request, log: &mut RateLimitedLog) -> u32 {
        let descs = match &req.descs {
            Ok(descs) => descs,
            Err(e) => {
                log.warn(format_args!(
                    "request {}: {e}: completed without status",
                    req.head
                ));
                return 0;
            }
        };
        match self.handle(mem, descs) {
            Ok((status, written)) => {
                if status != VIRTIO_BLK_S_OK as u8 {
                    log.warn(format_args!("request {}: status {status}", req.head));
                }
                written
            }
            Err(why) => {
                log.warn(format_args!(
                    "request {}: {why}: completed without status",
                    req.head
                ));
                0
            }
        }
    }

    /// Serves one request; returns (status to write, bytes written to guest buffers), or
    /// `Err(reason)` when no status byte can be written at all.
    fn handle(&mut self, mem: &Mem, descs: &[Desc]) -> Result<(u8, u32), &'static str> {
        let (status, rest) = descs.split_last().ok_or("empty chain")?;
        if !status.writable || status.len < 1 {
            return Err("last descriptor is not a device-writable status byte");
        }
        let result = self.execute(mem, rest);
        let (code, written) = match result {
            Ok(written) => (VIRTIO_BLK_S_OK as u8, written),
            Err(code) => (code, 0),
        };
        if mem.write_obj(code, status.addr).is_err() {
            return Err("status byte outside RAM");
        }
        Ok((code, written.saturating_add(1)))
    }

    /// Executes the request described by header + data; Ok(bytes written to the guest).
    fn execute(&mut self, mem: &Mem, descs: &[Desc]) -> Result<u32, u8> {
        const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
        let (header, data) = descs.split_first().ok_or(IOERR)?;
        if header.writable || header.len < HEADER_LEN {
            return Err(IOERR);
        }
        let kind: u32 = mem.read_obj(header.addr).map_err(|_| IOERR)?;
        let sector: u64 = mem
            .read_obj(header.addr.checked_add(8).ok_or(IOERR)?)
            .map_err(|_| IOERR)?;
        if data.len() > SEG_MAX as usize || !data.iter().all(|d| d.in_ram(mem)) {
            return Err(IOERR);
        }
        let total: u64 = data.iter().map(|d| u64::from(d.len)).sum();
        match kind {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
                let writing = kind == VIRTIO_BLK_T_OUT;
                // IN fills device-writable buffers; OUT reads device-readable ones.
                if data.iter().any(|d| d.writable == writing) || (writing && self.read_only) {
                    return Err(IOERR);
                }
                let start = sector.checked_mul(SECTOR_SIZE).ok_or(IOERR)?;
                let end = start.checked_add(total).ok_or(IOERR)?;
                if end > self.capacity * SECTOR_SIZE {
                    return Err(IOERR);
                }
                let mut offset = start;
                for d in data {
                    self.transfer(mem, d, offset, writing).map_err(|_| IOERR)?;
                    offset += u64::from(d.len);
                }
                Ok(if writing { 0 } else { total as u32 })
            }
            VIRTIO_BLK_T_FLUSH => {
                if !self.read_only {
                    self.file.sync_data().map_err(|_| IOERR)?;
                }
                Ok(0)
            }
            VIRTIO_BLK_T_GET_ID => {
                let d = data.first().filter(|d| d.writable).ok_or(IOERR)?;
                let n = (d.len as usize).min(self.id.len());
                mem.write_slice(&self.id[..n], d.addr).map_err(|_| IOERR)?;
                Ok(n as u32)
            }
            _ => Err(VIRTIO_BLK_S_UNSUPP as u8),
        }
    }

    /// Moves one buffer between guest memory and the file at `offset`, straight on guest
    /// memory: pread64/pwrite64 on each host-contiguous part of it, no bounce copy. The
    /// caller checked the buffer is in RAM and the range inside the file.
    fn transfer(&mut self, mem: &Mem, d: &Desc, offset: u64, to_file: bool) -> std::io::Result<()> {
        let mut at = offset;
        for slice in mem.get_slices(d.addr, d.len as usize) {
            let slice = slice.map_err(std::io::Error::other)?;
            let guard = slice.ptr_guard_mut();
            let part = Part {
                fd: self.file.as_raw_fd(),
                ptr: guard.as_ptr(),
                len: slice.len(),
                offset: at,
            };
            part.transfer(to_file)?;
            at += slice.len() as u64;
        }
        Ok(())
    }
}

/// One host-contiguous piece of a guest buffer and where it goes in the file.
struct Part {
    fd: RawFd,
    ptr: *mut u8,
    len: usize,
    offset: u64,
}

impl Part {
    /// The whole piece from (`to_file`: to) the file, across short transfers; EOF before the
    /// end is an error (the file never shrinks under a VM, its lock says so).
    fn transfer(&self, to_file: bool) -> std::io::Result<()> {
        let mut done = 0usize;
        while done < self.len {
            let at = i64::try_from(self.offset + done as u64).map_err(std::io::Error::other)?;
            // `ptr..ptr+len` is guest RAM mapped by the guest memory the caller holds for the
            // whole call (its slice guard is alive); the guest may touch it meanwhile, which
            // is its own business, as with any device DMA into its buffers.
            // SAFETY: the kernel copies into or out of valid, mapped memory (above).
            let rc = unsafe {
                let buf = self.ptr.add(done).cast();
                if to_file {
                    libc::pwrite64(self.fd, buf, self.len - done, at)
                } else {
                    libc::pread64(self.fd, buf, self.len - done, at)
                }
            };
            match rc {
                n if n > 0 => done += n as usize,
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let mut f = FEATURE_VERSION_1
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH;
        if self.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        }
        f
    }

    fn num_queues(&self) -> usize {
        1
    }

    fn flush_on_stop(&mut self) -> std::io::Result<bool> {
        if self.read_only {
            return Ok(false);
        }
        // Writes the guest never flushed still reach the disk when microvm stops.
        self.file.sync_data().map(|()| true)
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut cfg = [0u8; 24];
        cfg[0..8].copy_from_slice(&self.capacity.to_le_bytes());
        cfg[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        cfg[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        cfg[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        read_config_bytes(&cfg, offset, data);
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        queue::serve_while(queues, index, mem, |req| {
            if !throttle::admit(&mut self.throttle, request_bytes(req), log) {
                return Served::Later;
            }
            Served::Used(self.serve_one(mem, req, log))
        })
    }

    fn reset(&mut self) {
        if let Some(t) = &mut self.throttle {
            t.reset();
        }
    }

    fn timer_fds(&self) -> Vec<RawFd> {
        self.throttle.iter().map(Throttle::timer_fd).collect()
    }

    fn throttled(&self, _index: usize) -> bool {
        self.throttle.as_ref().is_some_and(Throttle::blocked)
    }

    fn timer_fired(&mut self, _timer: usize) -> Option<usize> {
        let t = self.throttle.as_mut()?;
        t.fired().then_some(0)
    }
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
