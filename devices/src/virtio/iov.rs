//! Host iovecs straight over guest buffers: a device hands them to readv/writev, and the
//! kernel copies between the host fd and guest RAM without a bounce buffer in between.

use std::marker::PhantomData;

use vm_memory::volatile_memory::PtrGuardMut;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use super::Mem;

/// Most segments one readv/writev takes (the kernel's UIO_MAXIOV).
pub const MAX_SEGMENTS: usize = 1024;

/// Why a guest buffer cannot be handed to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IovError {
    /// Part of the buffer is not guest RAM.
    #[error("a buffer is outside guest RAM")]
    OutsideRam,
    /// More host-contiguous pieces than one call takes.
    #[error("more than {MAX_SEGMENTS} segments")]
    TooManySegments,
}

/// iovecs over guest RAM and (for headers or an overflow area) the device's own buffers,
/// borrowed for `'a`. The guards keep every guest piece mapped while the value lives.
#[derive(Default)]
pub struct Iovecs<'a> {
    iovecs: Vec<libc::iovec>,
    guards: Vec<PtrGuardMut>,
    len: usize,
    host: PhantomData<&'a mut [u8]>,
}

impl<'a> Iovecs<'a> {
    /// Appends `len` bytes of guest memory at `addr`, one iovec per host-contiguous piece.
    pub fn push_guest(
        &mut self,
        mem: &Mem,
        addr: GuestAddress,
        len: usize,
    ) -> Result<(), IovError> {
        if len == 0 {
            return Ok(());
        }
        for slice in mem.get_slices(addr, len) {
            let slice = slice.map_err(|_| IovError::OutsideRam)?;
            let guard = slice.ptr_guard_mut();
            self.push(guard.as_ptr(), slice.len())?;
            self.guards.push(guard);
        }
        Ok(())
    }

    /// Appends one of the device's own buffers.
    pub fn push_host(&mut self, buf: &'a mut [u8]) -> Result<(), IovError> {
        self.push(buf.as_mut_ptr(), buf.len())
    }

    fn push(&mut self, ptr: *mut u8, len: usize) -> Result<(), IovError> {
        if self.iovecs.len() == MAX_SEGMENTS {
            return Err(IovError::TooManySegments);
        }
        self.iovecs.push(libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        });
        self.len += len;
        Ok(())
    }

    /// The iovecs, valid while `self` lives.
    pub fn as_slice(&self) -> &[libc::iovec] {
        &self.iovecs
    }

    /// Bytes covered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is covered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
