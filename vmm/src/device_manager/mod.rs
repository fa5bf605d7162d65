//! virtio-mmio devices, in three steps, one file each:
//!
//! 1. [`backends`]: open each device's host side (disk file, TAP) from the configuration,
//!    before KVM is touched, so a user's mistake is reported first;
//! 2. [`wiring`]: place each device in its virtio-mmio slot on the MMIO bus, describe it on
//!    the kernel command line (`--acpi off`), and register its IRQ and queue-notify
//!    eventfds with KVM;
//! 3. [`runtime`]: one thread per device (spawned through [`crate::threads`]) running an
//!    event loop over those eventfds until microvm stops.
//!
//! Order and placement follow docs/virtio-contract.md: every `--disk`, then every `--net`,
//! then rng; device `i` at `VIRTIO_MMIO_START + i * 4 KiB` with IRQ `VIRTIO_MMIO_IRQ_BASE + i`.

pub mod backends;
pub mod runtime;
pub mod wiring;

pub use backends::{open_devices, OpenedDevice};
pub(crate) use runtime::DeviceLoop;
pub use runtime::{spawn, stop, DeviceThread};
pub use wiring::{attach, cmdline_with_devices, slot, AttachedDevice, Isolated};
