//! Test support (feature `test-utils`, and devices' own tests): a transport over guest
//! memory, driven through its registers like a driver would. Used by the unit tests of
//! [`crate::virtio`] and by the fuzz targets (fuzz/). Failures to create its eventfds
//! panic: this is test code.

use virtio_bindings::virtio_config::*;
use virtio_bindings::virtio_mmio::*;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::mmio::{MmioTransport, TransportFds};
use super::{Mem, VirtioDevice};
use crate::BusDevice;

/// A transport with a device behind it, and the eventfds a device thread would poll.
pub struct Driver {
    /// The guest memory the transport and the rings use.
    pub mem: Mem,
    /// The transport under test.
    pub t: MmioTransport,
    /// Its interrupt eventfd.
    pub irq: EventFd,
    /// Its state-change eventfd (DRIVER_OK, reset).
    pub state: EventFd,
    /// The queues' notify eventfds.
    pub notify: Vec<EventFd>,
}

fn eventfd() -> EventFd {
    EventFd::new(EFD_NONBLOCK).expect("eventfd")
}

fn clone(e: &EventFd) -> EventFd {
    e.try_clone().expect("clone an eventfd")
}

impl Driver {
    /// `dev` behind a transport over `mem`; `name` prefixes the transport's log lines.
    pub fn new(dev: Box<dyn VirtioDevice>, mem: Mem, name: &str) -> Driver {
        let irq = eventfd();
        let state = eventfd();
        let notify: Vec<EventFd> = (0..dev.num_queues()).map(|_| eventfd()).collect();
        let fds = TransportFds {
            irq: clone(&irq),
            state_changed: clone(&state),
            notify: notify.iter().map(clone).collect(),
        };
        let t = MmioTransport::new(dev, mem.clone(), fds, name).expect("transport");
        Driver {
            mem,
            t,
            irq,
            state,
            notify,
        }
    }

    /// Writes register `off`.
    pub fn w(&mut self, off: u32, v: u32) {
        self.t.write(u64::from(off), &v.to_le_bytes());
    }

    /// Reads register `off`.
    pub fn r(&mut self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.t.read(u64::from(off), &mut b);
        u32::from_le_bytes(b)
    }

    /// Status handshake from a reset up to FEATURES_OK, accepting every offered feature.
    pub fn negotiate(&mut self) {
        self.negotiate_only(u64::MAX);
    }

    /// Status handshake from a reset up to FEATURES_OK, accepting the offered features
    /// that are in `wanted`.
    pub fn negotiate_only(&mut self, wanted: u64) {
        self.w(VIRTIO_MMIO_STATUS, 0);
        self.w(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        self.w(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        );
        for sel in 0..2 {
            self.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
            let f = self.r(VIRTIO_MMIO_DEVICE_FEATURES) & (wanted >> (32 * sel)) as u32;
            self.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
            self.w(VIRTIO_MMIO_DRIVER_FEATURES, f);
        }
        self.w(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
        );
    }

    /// Programs queue `q` with `size` and its descriptor, avail and used ring addresses
    /// (`rings`) and sets it ready; true if the transport took it.
    pub fn program_queue(&mut self, q: u32, size: u16, rings: [u64; 3]) -> bool {
        self.w(VIRTIO_MMIO_QUEUE_SEL, q);
        self.w(VIRTIO_MMIO_QUEUE_NUM, u32::from(size));
        let lows = [
            VIRTIO_MMIO_QUEUE_DESC_LOW,
            VIRTIO_MMIO_QUEUE_AVAIL_LOW,
            VIRTIO_MMIO_QUEUE_USED_LOW,
        ];
        for (lo, a) in lows.into_iter().zip(rings) {
            self.w(lo, a as u32);
            self.w(lo + 4, (a >> 32) as u32);
        }
        self.w(VIRTIO_MMIO_QUEUE_READY, 1);
        self.r(VIRTIO_MMIO_QUEUE_READY) == 1
    }

    /// Sets DRIVER_OK (on top of the negotiated status).
    pub fn driver_ok(&mut self) {
        let s = self.r(VIRTIO_MMIO_STATUS);
        self.w(VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
    }

    /// Empties the interrupt, state and notify eventfds.
    pub fn drain_events(&self) {
        let _ = self.irq.read();
        let _ = self.state.read();
        for n in &self.notify {
            let _ = n.read();
        }
    }
}
