//! Emulated devices of microvm and the bus that routes guest accesses to them.
//!
//! - [`bus`]: address-range dispatch for port I/O and MMIO exits.
//! - [`serial`]: the 8250 UART at 0x3f8 (COM1), backed by `vm-superio`.
//! - [`i8042`]: the keyboard controller and a PS/2 keyboard; guests reset the machine with it.
//! - [`cmos`]: a CMOS RTC for guests without ACPI, so rtc_cmos does not wait on it.
//! - [`acpi_pm`]: the ACPI sleep control/status registers, through which guests power off.
//! - [`virtio`]: the virtio-mmio transport and the block, net and rng devices.
//!
//! Devices are transport-free: they know nothing of KVM; interrupts leave through an
//! [`EventFdTrigger`] that the VMM registers with KVM_IRQFD.

pub mod acpi_pm;
pub mod bus;
pub mod cmos;
pub mod i8042;
pub mod serial;
pub mod virtio;

use vmm_sys_util::eventfd::EventFd;

pub use bus::{Bus, BusDevice, BusError, SharedBusDevice};

/// An interrupt or event line backed by an eventfd: triggering it writes 1 to the eventfd.
#[derive(Debug)]
pub struct EventFdTrigger(EventFd);

impl EventFdTrigger {
    /// Wraps an eventfd.
    pub fn new(evt: EventFd) -> Self {
        EventFdTrigger(evt)
    }
}

impl vm_superio::Trigger for EventFdTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}
