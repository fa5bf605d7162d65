//! Emulated devices of microvm and the bus that routes guest accesses to them.
//!
//! - [`bus`]: address-range dispatch for port I/O and MMIO exits.
//! - [`serial`]: the 8250 UART at 0x3f8 (COM1), backed by `vm-superio`.
//! - [`i8042`]: the keyboard controller, used by guests to reset the machine.
//! - [`virtio`]: the virtio-mmio transport and the block, net and rng devices.
//!
//! Devices are transport-free: they know nothing of KVM; interrupts leave through an
//! [`EventFdTrigger`] that the VMM registers with KVM_IRQFD.

pub mod bus;
pub mod i8042;
pub mod serial;
pub mod virtio;

use vmm_sys_util::eventfd::EventFd;

pub use bus::{Bus, BusDevice, BusError};

/// An interrupt or event line backed by an eventfd: triggering it writes 1 to the eventfd.
#[derive(Debug)]
pub struct EventFdTrigger(EventFd);

impl EventFdTrigger {
    /// Wraps an eventfd.
    pub fn new(evt: EventFd) -> Self {
        EventFdTrigger(evt)
    }

    /// The underlying eventfd, e.g. to register it with KVM_IRQFD or epoll.
    pub fn eventfd(&self) -> &EventFd {
        &self.0
    }
}

impl vm_superio::Trigger for EventFdTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}
