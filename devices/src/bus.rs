//! A bus maps guest address ranges (port I/O or MMIO) to devices.
//!
//! The bus is built once on the main thread and then shared read-only by every vCPU thread
//! (`Arc<Bus>`); each device sits behind its own `Mutex`, so two vCPUs touching different
//! devices never contend. A [`SharedBusDevice`] does its own locking instead, so that some of
//! its registers can be answered without waiting for a lock another thread holds (the
//! virtio-mmio window: InterruptStatus must not wait for the device thread's I/O).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device that answers guest reads and writes in the range it was inserted at.
pub trait BusDevice: Send {
    /// Guest read of `data.len()` bytes at `offset` from the device's base.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest write of `data` at `offset` from the device's base.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device that synchronizes itself: the bus calls it without taking any lock.
pub trait SharedBusDevice: Send + Sync {
    /// Guest read of `data.len()` bytes at `offset` from the device's base.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Guest write of `data` at `offset` from the device's base.
    fn write(&self, offset: u64, data: &[u8]);
}

/// Errors building a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range is empty or wraps around the address space.
    #[error("invalid bus range: base {base:#x}, length {len:#x}")]
    InvalidRange {
        /// Base address.
        base: u64,
        /// Length.
        len: u64,
    },
    /// The new range overlaps a device already on the bus.
    #[error("bus range {base:#x}+{len:#x} overlaps an existing device at {other:#x}")]
    Overlap {
        /// Base address of the new range.
        base: u64,
        /// Length of the new range.
        len: u64,
        /// Base address of the device it overlaps.
        other: u64,
    },
}

enum Device {
    Locked(Arc<Mutex<dyn BusDevice>>),
    Shared(Arc<dyn SharedBusDevice>),
}

struct Entry {
    len: u64,
    device: Device,
}

/// Address-range dispatch to devices.
#[derive(Default)]
pub struct Bus {
    // Keyed by base address.
    entries: BTreeMap<u64, Entry>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `device` at `[base, base + len)`; every access locks it.
    pub fn insert(
        &mut self,
        device: Arc<Mutex<dyn BusDevice>>,
        base: u64,
        len: u64,
    ) -> Result<(), BusError> {
        self.insert_entry(Device::Locked(device), base, len)
    }

    /// Places a self-synchronizing `device` at `[base, base + len)`.
    pub fn insert_shared(
        &mut self,
        device: Arc<dyn SharedBusDevice>,
        base: u64,
        len: u64,
    ) -> Result<(), BusError> {
        self.insert_entry(Device::Shared(device), base, len)
    }

    fn insert_entry(&mut self, device: Device, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        // The closest device starting at or below the new range's last byte is the only
        // candidate for an overlap.
        if let Some((&other, entry)) = self.entries.range(..end).next_back() {
            if other + entry.len > base {
                return Err(BusError::Overlap { base, len, other });
            }
        }
        self.entries.insert(base, Entry { len, device });
        Ok(())
    }

    /// The device whose range holds `[addr, addr + size)`, and the offset of `addr` in it.
    fn resolve(&self, addr: u64, size: usize) -> Option<(&Entry, u64)> {
        let (&base, entry) = self.entries.range(..=addr).next_back()?;
        let offset = addr - base;
        let end = offset.checked_add(size as u64)?;
        (end <= entry.len).then_some((entry, offset))
    }

    /// Dispatches a guest read. Returns false (and leaves `data` alone) if no device
    /// covers the whole access.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((entry, offset)) => {
                match &entry.device {
                    Device::Locked(d) => lock(d).read(offset, data),
                    Device::Shared(d) => d.read(offset, data),
                }
                true
            }
            None => false,
        }
    }

    /// Dispatches a guest write. Returns false if no device covers the whole access.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((entry, offset)) => {
                match &entry.device {
                    Device::Locked(d) => lock(d).write(offset, data),
                    Device::Shared(d) => d.write(offset, data),
                }
                true
            }
            None => false,
        }
    }
}

/// Locks a device. A poisoned lock (a panic while it was held) cannot happen with
/// `panic = "abort"`, but if it does the device state is still usable for emulation.
fn lock<'a>(
    device: &'a Mutex<dyn BusDevice + 'static>,
) -> std::sync::MutexGuard<'a, dyn BusDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8 + 0x10);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_range_and_offset() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::new();
        bus.insert(dev.clone(), 0x3f8, 8).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fd, &mut b));
        assert_eq!(b[0], 0x15);
        assert!(bus.write(0x3f8, b"A"));
        assert_eq!(dev.lock().unwrap().writes, vec![(0, vec![b'A'])]);
    }

    struct Shared(std::sync::atomic::AtomicU8);

    impl SharedBusDevice for Shared {
        fn read(&self, _: u64, data: &mut [u8]) {
            data.fill(self.0.load(std::sync::atomic::Ordering::Relaxed));
        }
        fn write(&self, _: u64, data: &[u8]) {
            self.0.store(data[0], std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn shared_devices_are_called_without_a_bus_lock() {
        let mut bus = Bus::new();
        let dev = Arc::new(Shared(std::sync::atomic::AtomicU8::new(0)));
        bus.insert_shared(dev.clone(), 0x1000, 0x10).unwrap();
        assert!(bus
            .insert(Arc::new(Mutex::new(Recorder::default())), 0x100f, 1)
            .is_err());
        assert!(bus.write(0x1004, &[7]));
        let mut b = [0u8; 2];
        assert!(bus.read(0x100e, &mut b));
        assert_eq!(b, [7, 7]);
        assert!(!bus.read(0x100f, &mut b), "straddles the end");
    }

    #[test]
    fn unknown_and_straddling_accesses_are_refused() {
        let mut bus = Bus::new();
        bus.insert(Arc::new(Mutex::new(Recorder::default())), 0x60, 5)
            .unwrap();
        let mut b = [0xaa_u8; 2];
        assert!(!bus.read(0x80, &mut b[..1]));
        assert!(!bus.read(0x5f, &mut b[..1]));
        // Starts inside, ends outside.
        assert!(!bus.read(0x64, &mut b));
        assert_eq!(b, [0xaa, 0xaa]);
        assert!(!bus.read(u64::MAX, &mut b));
    }

    #[test]
    fn overlaps_and_empty_ranges_are_rejected() {
        let mut bus = Bus::new();
        let d = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(d(), 0x100, 0x10).unwrap();
        assert_eq!(
            bus.insert(d(), 0x108, 0x10),
            Err(BusError::Overlap {
                base: 0x108,
                len: 0x10,
                other: 0x100
            })
        );
        assert!(bus.insert(d(), 0xf8, 0x9).is_err());
        assert!(bus.insert(d(), 0xf8, 0x8).is_ok());
        assert!(bus.insert(d(), 0x110, 0x1).is_ok());
        assert!(bus.insert(d(), 0x200, 0).is_err());
        assert!(bus.insert(d(), u64::MAX, 2).is_err());
    }
}
