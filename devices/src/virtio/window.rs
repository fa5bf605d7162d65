//! The part of a virtio-mmio window that vCPUs reach without the transport's lock.
//!
//! The device thread holds the transport's lock while it serves a queue, and a serve loop
//! lasts as long as the driver keeps making chains available, with disk or TAP I/O in it.
//! A vCPU waiting for that lock is stuck in the VMM, where it takes no interrupt, IPI or
//! NMI (issue 14: a Linux guest's vCPU in `vm_interrupt` never answered an NMI). So the
//! registers a driver touches while requests are in flight are served here without it:
//! InterruptStatus and InterruptACK from the shared [`Interrupt`], QueueNotify (when it
//! traps instead of hitting the ioeventfd) to the queue's eventfd. Every other register
//! locks the transport, as before.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_QUEUE_NOTIFY,
};
use vmm_sys_util::eventfd::EventFd;

use super::MmioTransport;
use crate::{BusDevice, SharedBusDevice};

/// InterruptStatus and the interrupt line, shared by the device thread (which raises) and
/// the vCPUs (which read and acknowledge).
pub struct Interrupt {
    status: AtomicU32,
    line: EventFd,
}

impl Interrupt {
    /// An interrupt on `line` (registered with KVM_IRQFD), InterruptStatus 0.
    pub fn new(line: EventFd) -> Self {
        Interrupt {
            status: AtomicU32::new(0),
            line,
        }
    }

    /// Sets `bit` in InterruptStatus, then signals the line. The caller published the used
    /// ring (or config) first; SeqCst orders that before the bit a vCPU reads.
    pub fn raise(&self, bit: u32) -> std::io::Result<()> {
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.line.write(1)
    }

    /// The InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clears the bits in `bits`, keeping any raised since they were read.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Device reset: no interrupt pending.
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }
}

/// A transport as the MMIO bus sees it.
pub struct MmioWindow {
    transport: Arc<Mutex<MmioTransport>>,
    interrupt: Arc<Interrupt>,
    notify: Vec<EventFd>,
}

impl MmioWindow {
    /// The window of `transport`; `notify` are its queues' eventfds, in queue order.
    pub fn new(transport: Arc<Mutex<MmioTransport>>, notify: Vec<EventFd>) -> Self {
        let interrupt = lock(&transport).interrupt();
        MmioWindow {
            transport,
            interrupt,
            notify,
        }
    }
}

fn lock(t: &Mutex<MmioTransport>) -> std::sync::MutexGuard<'_, MmioTransport> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// A 32-bit register value written at `offset`, if the access is one.
fn register_write(offset: u64, data: &[u8]) -> Option<(u32, u32)> {
    let offset = u32::try_from(offset).ok().filter(|o| o % 4 == 0)?;
    let bytes = <[u8; 4]>::try_from(data).ok()?;
    Some((offset, u32::from_le_bytes(bytes)))
}

impl SharedBusDevice for MmioWindow {
    fn read(&self, offset: u64, data: &mut [u8]) {
        if offset == u64::from(VIRTIO_MMIO_INTERRUPT_STATUS) && data.len() == 4 {
            data.copy_from_slice(&self.interrupt.status().to_le_bytes());
            return;
        }
        lock(&self.transport).read(offset, data);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        match register_write(offset, data) {
            Some((VIRTIO_MMIO_INTERRUPT_ACK, v)) => self.interrupt.ack(v),
            Some((VIRTIO_MMIO_QUEUE_NOTIFY, v)) => {
                // Normally KVM_IOEVENTFD catches this write; forward if it trapped.
                if let Some(evt) = self.notify.get(v as usize) {
                    let _ = evt.write(1);
                }
            }
            _ => lock(&self.transport).write(offset, data),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use virtio_bindings::virtio_mmio::*;

    use super::super::rng::Rng;
    use super::super::testutil::Harness;
    use super::*;

    fn read32(w: &MmioWindow, offset: u32) -> u32 {
        let mut b = [0u8; 4];
        w.read(u64::from(offset), &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn interrupt_status_and_ack_do_not_wait_for_the_transport_lock() {
        let h = Harness::new(Box::new(Rng::default())).0;
        let interrupt = h.t.interrupt();
        let transport = Arc::new(Mutex::new(h.t));
        let w = MmioWindow::new(transport.clone(), Vec::new());
        // The device thread serving a queue holds the lock for as long as it likes.
        let held = transport.lock().unwrap();
        interrupt.raise(VIRTIO_MMIO_INT_VRING).unwrap();
        assert_eq!(read32(&w, VIRTIO_MMIO_INTERRUPT_STATUS), 1);
        w.write(u64::from(VIRTIO_MMIO_INTERRUPT_ACK), &1u32.to_le_bytes());
        assert_eq!(read32(&w, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        assert_eq!(h.irq.read().unwrap(), 1, "one raise, one irqfd signal");
        drop(held);
        // Every other register still goes through the transport.
        assert_eq!(read32(&w, VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
        assert_eq!(read32(&w, VIRTIO_MMIO_DEVICE_ID), 4);
    }

    #[test]
    fn an_ack_keeps_bits_raised_after_the_read() {
        let evt = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let i = Interrupt::new(evt);
        i.raise(VIRTIO_MMIO_INT_VRING).unwrap();
        let seen = i.status();
        i.raise(VIRTIO_MMIO_INT_CONFIG).unwrap();
        i.ack(seen);
        assert_eq!(i.status(), VIRTIO_MMIO_INT_CONFIG);
        i.clear();
        assert_eq!(i.status(), 0);
    }
}
