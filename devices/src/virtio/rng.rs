//! virtio-rng (device ID 4): fills every device-writable buffer with `getrandom` bytes.

use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use super::queue;
use super::{Mem, QueueError, RateLimitedLog, VirtioDevice, FEATURE_VERSION_1};

/// Most bytes served per request, whatever the guest's buffers add up to.
pub const MAX_PER_REQUEST: usize = 64 * 1024;

/// The entropy device.
pub struct Rng {
    buf: Vec<u8>,
}

impl Default for Rng {
    fn default() -> Self {
        Rng { buf: vec![0; 4096] }
    }
}

impl Rng {
    /// Fills `len` bytes at `addr` with random bytes; returns how many were written.
    fn fill(&mut self, mem: &Mem, addr: GuestAddress, len: usize) -> usize {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.buf.len());
            let chunk = &mut self.buf[..n];
            // SAFETY: getrandom writes at most `n` bytes into `chunk`, which is `n` bytes long.
            let got = unsafe { libc::getrandom(chunk.as_mut_ptr().cast(), n, 0) };
            let Ok(got) = usize::try_from(got) else {
                break;
            };
            if got == 0
                || mem
                    .write_slice(&chunk[..got], GuestAddress(addr.0 + done as u64))
                    .is_err()
            {
                break;
            }
            done += got;
        }
        done
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        virtio_bindings::virtio_ids::VIRTIO_ID_RNG
    }

    fn features(&self) -> u64 {
        FEATURE_VERSION_1
    }

    fn num_queues(&self) -> usize {
        1
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &Mem,
        log: &mut RateLimitedLog,
    ) -> Result<bool, QueueError> {
        queue::serve(queues, index, mem, |req| match &req.descs {
            Err(e) => {
                log.warn(format_args!("request {}: {e}", req.head));
                0
            }
            Ok(descs) => {
                let written = queue::fill_writable(descs, MAX_PER_REQUEST, |addr, _, len| {
                    self.fill(mem, addr, len)
                });
                written as u32
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::{Bytes, GuestAddress};

    use super::super::testutil::*;
    use super::Rng;

    #[test]
    fn fills_writable_buffers_and_skips_bad_ones() {
        let mut h = Harness::new(Box::new(Rng::default()));
        h.init();
        let mut ring = h.ring(0);
        ring.add(&[(DATA, 64, true)]);
        ring.add(&[(0xffff_ff00_0000, 64, true)]);
        ring.add(&[(DATA + 0x100, 16, false)]);
        h.t.notify(0);
        let (idx, used) = h.used(0);
        assert_eq!(idx, 3);
        assert_eq!(used.iter().map(|e| e.1).collect::<Vec<_>>(), [64, 0, 0]);
        let mut got = [0u8; 64];
        h.mem.read_slice(&mut got, GuestAddress(DATA)).unwrap();
        assert!(got.iter().any(|&b| b != got[0]), "{got:?}");
    }
}
