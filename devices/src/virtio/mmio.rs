//! The virtio-mmio transport, version 2 (virtio 1.x register layout), one 4 KiB window per
//! device.
//!
//! Register accesses come from vCPU threads through the MMIO bus, via the transport's
//! [`MmioWindow`](super::window::MmioWindow): InterruptStatus, InterruptACK and a trapped
//! QueueNotify without this transport's lock (the device thread holds it while it serves
//! a queue), every other register under it. Queue notifications do not come from vCPUs:
//! KVM_IOEVENTFD turns a QueueNotify write into an eventfd the device thread polls, which
//! then calls [`MmioTransport::notify`] under the lock.

use std::os::fd::RawFd;
use std::sync::Arc;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

use super::window::Interrupt;
use super::{
    Mem, QueueError, RateLimitedLog, VirtioDevice, FEATURE_EVENT_IDX, FEATURE_VERSION_1,
    QUEUE_MAX_SIZE,
};
use crate::BusDevice;

/// MagicValue: "virt".
const MAGIC: u32 = 0x7472_6976;
/// Transport version 2: virtio 1.x ("modern").
const MMIO_VERSION: u32 = 2;

/// Eventfds connecting the transport to KVM and to the device thread.
pub struct TransportFds {
    /// Interrupt line (registered with KVM_IRQFD).
    pub irq: EventFd,
    /// Written on DRIVER_OK and on reset: the device thread re-reads the state.
    pub state_changed: EventFd,
    /// One per queue (the KVM_IOEVENTFD ones); a QueueNotify that traps anyway is
    /// forwarded to them.
    pub notify: Vec<EventFd>,
}

/// What the driver wrote to the layout registers of one queue; checked and handed to
/// the `Queue` only when it sets QueueReady (so a bad value is refused there, H6).
#[derive(Clone, Copy, Debug, Default)]
struct QueueRegs {
    size: u32,
    desc: u64,
    avail: u64,
    used: u64,
}

impl QueueRegs {
    fn new() -> Self {
        QueueRegs {
            size: u32::from(QUEUE_MAX_SIZE),
            ..Default::default()
        }
    }

    fn addr(&self, ring: Ring) -> u64 {
        match ring {
            Ring::Desc => self.desc,
            Ring::Avail => self.avail,
            Ring::Used => self.used,
        }
    }

    fn addr_mut(&mut self, ring: Ring) -> &mut u64 {
        match ring {
            Ring::Desc => &mut self.desc,
            Ring::Avail => &mut self.avail,
            Ring::Used => &mut self.used,
        }
    }
}

/// The three parts of a split virtqueue whose guest addresses the driver writes.
#[derive(Clone, Copy)]
enum Ring {
    Desc,
    Avail,
    Used,
}

/// The ring whose address register `offset` holds half of, and whether the high half.
fn ring_reg(offset: u32) -> Option<(Ring, bool)> {
    let ring = match offset {
        VIRTIO_MMIO_QUEUE_DESC_LOW | VIRTIO_MMIO_QUEUE_DESC_HIGH => Ring::Desc,
        VIRTIO_MMIO_QUEUE_AVAIL_LOW | VIRTIO_MMIO_QUEUE_AVAIL_HIGH => Ring::Avail,
        VIRTIO_MMIO_QUEUE_USED_LOW | VIRTIO_MMIO_QUEUE_USED_HIGH => Ring::Used,
        _ => return None,
    };
    let high = matches!(
        offset,
        VIRTIO_MMIO_QUEUE_DESC_HIGH | VIRTIO_MMIO_QUEUE_AVAIL_HIGH | VIRTIO_MMIO_QUEUE_USED_HIGH
    );
    Some((ring, high))
}

/// The low or high 32 bits of `v`.
fn half(v: u64, high: bool) -> u32 {
    if high {
        (v >> 32) as u32
    } else {
        v as u32
    }
}

/// Replaces the low or high 32 bits of `reg` with `v`.
fn set_half(reg: &mut u64, high: bool, v: u32) {
    *reg = if high {
        (*reg & 0xffff_ffff) | (u64::from(v) << 32)
    } else {
        (*reg & !0xffff_ffff) | u64::from(v)
    };
}

/// A virtio device behind its mmio register window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: Mem,
    queues: Vec<Queue>,
    regs: Vec<QueueRegs>,
    /// Queues stopped after H8 until the driver resets the device.
    broken: Vec<bool>,
    interrupt: Arc<Interrupt>,
    state_changed: EventFd,
    notify: Vec<EventFd>,
    log: RateLimitedLog,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    config_generation: u32,
}

impl MmioTransport {
    /// Wraps `device`; `name` (e.g. `virtio-blk0`) prefixes its log lines.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: Mem,
        fds: TransportFds,
        name: &str,
    ) -> Result<Self, virtio_queue::Error> {
        let queues = (0..device.num_queues())
            .map(|_| Queue::new(QUEUE_MAX_SIZE))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MmioTransport {
            broken: vec![false; queues.len()],
            regs: vec![QueueRegs::new(); queues.len()],
            queues,
            device,
            mem,
            interrupt: Arc::new(Interrupt::new(fds.irq)),
            state_changed: fds.state_changed,
            notify: fds.notify,
            log: RateLimitedLog::new(name),
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
        })
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt.status()
    }

    /// InterruptStatus and the interrupt line, for the window that serves them lock-free.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// True once the driver set DRIVER_OK (and until it resets the device).
    pub fn driver_ok(&self) -> bool {
        self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
    }

    /// The device's host fd (TAP) to poll now, if any.
    pub fn wanted_host_fd(&self) -> Option<RawFd> {
        let live = self.driver_ok() && self.status & VIRTIO_CONFIG_S_NEEDS_RESET == 0;
        self.device
            .host_fd()
            .filter(|_| live && self.device.wants_host_fd())
    }

    /// Device thread: queue `index` was notified.
    pub fn notify(&mut self, index: usize) {
        if index >= self.queues.len() {
            return;
        }
        if !self.driver_ok() {
            self.log.warn(format_args!(
                "queue {index} notified before DRIVER_OK: ignored"
            ));
            return;
        }
        if self.broken[index] || !self.queues[index].ready() {
            self.log.warn(format_args!(
                "queue {index} notified while not usable: ignored"
            ));
            return;
        }
        let result = self
            .device
            .process_queue(index, &mut self.queues, &self.mem, &mut self.log);
        self.after_processing(Some(index), result);
        // A pass serves at most one ring's worth: if the driver kept adding requests, come
        // back for them after the device thread has looked at its other events (stop).
        // (`after_processing` has re-armed the driver's notifications first: avail_event.)
        if !self.broken[index]
            && self.device.consumes_queue(index)
            && !self.device.throttled(index)
            && super::queue::has_pending(&self.queues[index], &self.mem)
        {
            if let Some(evt) = self.notify.get(index) {
                let _ = evt.write(1);
            }
        }
    }

    /// Device thread: rate-limit timer `timer` fired; serves the queue it held back (if the
    /// device is still live: a reset meanwhile leaves nothing to serve).
    pub fn timer_fired(&mut self, timer: usize) {
        let Some(index) = self.device.timer_fired(timer) else {
            return;
        };
        let live = self.driver_ok() && self.status & VIRTIO_CONFIG_S_NEEDS_RESET == 0;
        if live && index < self.queues.len() && self.queues[index].ready() {
            self.notify(index);
        }
    }

    /// Device thread: microvm is stopping; flush the device's host side (a disk's file).
    /// Logs the outcome (info when flushed, error when the flush failed).
    pub fn stop_device(&mut self) {
        match self.device.flush_on_stop() {
            Ok(true) => log::info!("{}: flushed on stop", self.log.name()),
            Ok(false) => {}
            Err(e) => log::error!("{}: flush on stop failed: {e}", self.log.name()),
        }
    }

    /// Device thread: the device's host fd is readable.
    pub fn host_fd_ready(&mut self) {
        if self.wanted_host_fd().is_none() {
            return;
        }
        let result = self
            .device
            .process_host_fd(&mut self.queues, &self.mem, &mut self.log);
        self.after_processing(None, result);
    }

    fn after_processing(&mut self, index: Option<usize>, result: Result<bool, QueueError>) {
        let result = result.and_then(|used| self.rearm_notifications().map(|()| used));
        match result {
            Ok(true) => {
                if self.interrupt_due() {
                    self.raise(VIRTIO_MMIO_INT_VRING);
                }
            }
            Ok(false) => {}
            Err(e) => {
                // H8: stop the queue, ask for a reset, tell the driver.
                self.log
                    .warn(format_args!("{e}: queue stopped, device needs reset"));
                match index {
                    Some(i) => self.broken[i] = true,
                    None => self.broken.iter_mut().for_each(|b| *b = true),
                }
                self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                self.config_generation = self.config_generation.wrapping_add(1);
                self.raise(VIRTIO_MMIO_INT_CONFIG);
            }
        }
    }

    /// Every ready queue asks the driver to notify it of what it adds next: with EVENT_IDX
    /// `avail_event` = the next entry to take, otherwise the NO_NOTIFY flag clear (it is never
    /// set). A driver with EVENT_IDX only kicks when it passes `avail_event`.
    fn rearm_notifications(&mut self) -> Result<(), QueueError> {
        if !self.event_idx() {
            return Ok(()); // NO_NOTIFY is never set: nothing to re-arm
        }
        for (i, q) in self.queues.iter_mut().enumerate() {
            if q.ready() && !self.broken[i] {
                super::queue::rearm(q, &self.mem)?;
            }
        }
        Ok(())
    }

    /// Whether the used entries just added call for an interrupt: always without EVENT_IDX;
    /// with it, when some queue's used index passed the driver's `used_event`.
    fn interrupt_due(&mut self) -> bool {
        if !self.event_idx() {
            return true;
        }
        let mut due = false;
        for q in self.queues.iter_mut().filter(|q| q.ready()) {
            // A queue whose used_event cannot be read: interrupt, as without EVENT_IDX.
            due |= q.needs_notification(&self.mem).unwrap_or(true);
        }
        due
    }

    /// Whether the driver negotiated EVENT_IDX.
    fn event_idx(&self) -> bool {
        self.driver_features & FEATURE_EVENT_IDX != 0
    }

    /// The features offered: the device's, plus the transport's EVENT_IDX.
    fn offered(&self) -> u64 {
        self.device.features() | FEATURE_EVENT_IDX
    }

    fn raise(&mut self, bit: u32) {
        if let Err(e) = self.interrupt.raise(bit) {
            self.log
                .warn(format_args!("cannot raise the interrupt: {e}"));
        }
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.regs.iter_mut().for_each(|r| *r = QueueRegs::new());
        self.broken.iter_mut().for_each(|b| *b = false);
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.status = 0;
        self.interrupt.clear();
        self.device.reset();
        self.wake_device_thread();
    }

    fn wake_device_thread(&mut self) {
        if let Err(e) = self.state_changed.write(1) {
            self.log
                .warn(format_args!("cannot wake the device thread: {e}"));
        }
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut new = value & !VIRTIO_CONFIG_S_NEEDS_RESET;
        let added = new & !self.status;
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            let offered = self.offered();
            if self.driver_features & FEATURE_VERSION_1 == 0 || self.driver_features & !offered != 0
            {
                self.log.warn(format_args!(
                    "FEATURES_OK refused: driver features {:#x}, offered {offered:#x}",
                    self.driver_features
                ));
                new &= !VIRTIO_CONFIG_S_FEATURES_OK;
            } else {
                self.device.ack_features(self.driver_features);
            }
        }
        if added & VIRTIO_CONFIG_S_DRIVER_OK != 0 && new & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            self.log
                .warn(format_args!("DRIVER_OK without FEATURES_OK: refused"));
            new &= !VIRTIO_CONFIG_S_DRIVER_OK;
        }
        self.status = new | (self.status & VIRTIO_CONFIG_S_NEEDS_RESET);
        if new & added & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.wake_device_thread();
        }
    }

    /// QueueReady = 1: the size must be a power of two within QueueNumMax (H6) and the
    /// rings must lie in RAM, aligned; otherwise the queue stays not ready.
    fn set_queue_ready(&mut self, ready: bool) {
        let sel = self.queue_sel as usize;
        let event_idx = self.event_idx();
        let (Some(q), Some(r)) = (self.queues.get_mut(sel), self.regs.get(sel)) else {
            return;
        };
        if !ready {
            q.set_ready(false);
            return;
        }
        let problem = match check_layout(r, &self.mem) {
            Err(p) => Some(p),
            Ok(size) => {
                let set = q
                    .try_set_size(size)
                    .and_then(|_| q.try_set_desc_table_address(GuestAddress(r.desc)))
                    .and_then(|_| q.try_set_avail_ring_address(GuestAddress(r.avail)))
                    .and_then(|_| q.try_set_used_ring_address(GuestAddress(r.used)));
                set.err().map(|e| e.to_string())
            }
        };
        match problem {
            None => {
                q.set_event_idx(event_idx);
                q.set_ready(true);
            }
            Some(p) => {
                self.log.warn(format_args!("queue {sel} refused: {p}"));
            }
        }
    }

    fn read_register(&self, offset: u32) -> u32 {
        let queue = self.queues.get(self.queue_sel as usize);
        let regs = self.regs.get(self.queue_sel as usize);
        match offset {
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => super::VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                sel @ 0..=1 => half(self.offered(), sel == 1),
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_NUM => regs.map_or(0, |r| r.size),
            VIRTIO_MMIO_QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            VIRTIO_MMIO_STATUS => self.status,
            VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            other => match (ring_reg(other), regs) {
                (Some((ring, high)), Some(r)) => half(r.addr(ring), high),
                _ => 0,
            },
        }
    }

    fn write_register(&mut self, offset: u32, v: u32) {
        match offset {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => {
                let ok = self.status & VIRTIO_CONFIG_S_DRIVER != 0
                    && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
                if let (true, sel @ 0..=1) = (ok, self.driver_features_sel) {
                    set_half(&mut self.driver_features, sel == 1, v);
                }
            }
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM => self.queue_reg(offset, |r| r.size = v),
            VIRTIO_MMIO_QUEUE_READY => self.set_queue_ready(v == 1),
            VIRTIO_MMIO_QUEUE_NOTIFY => {
                // Normally KVM_IOEVENTFD catches this write; forward if it trapped.
                if let Some(evt) = self.notify.get(v as usize) {
                    let _ = evt.write(1);
                }
            }
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(v),
            VIRTIO_MMIO_STATUS => self.set_status(v),
            other => match ring_reg(other) {
                Some((ring, high)) => {
                    self.queue_reg(other, |r| set_half(r.addr_mut(ring), high, v))
                }
                None => {
                    self.log
                        .warn(format_args!("write {v:#x} to register {offset:#x} ignored"));
                }
            },
        }
    }

    /// Applies a queue layout write, unless the selected queue is ready or absent.
    fn queue_reg(&mut self, offset: u32, set: impl FnOnce(&mut QueueRegs)) {
        let sel = self.queue_sel as usize;
        let ready = self.queues.get(sel).map(|q| q.ready());
        match (ready, self.regs.get_mut(sel)) {
            (Some(false), Some(r)) => set(r),
            _ => {
                self.log.warn(format_args!(
                    "queue register write at {offset:#x} to a ready or absent queue ignored"
                ));
            }
        }
    }
}

/// Checks what the driver wrote for a queue: the size (H6), then that the three rings are
/// in RAM and aligned as virtio 1.x requires. Returns the size.
fn check_layout(r: &QueueRegs, mem: &Mem) -> Result<u16, String> {
    let size = u16::try_from(r.size)
        .ok()
        .filter(|s| s.is_power_of_two() && *s <= QUEUE_MAX_SIZE)
        .ok_or_else(|| {
            format!(
                "queue size {} is not a power of two up to {QUEUE_MAX_SIZE}",
                r.size
            )
        })?;
    let n = usize::from(size);
    let ok = |addr: u64, align: u64, len: usize| {
        addr.is_multiple_of(align) && mem.check_range(GuestAddress(addr), len)
    };
    if ok(r.desc, 16, 16 * n) && ok(r.avail, 2, 6 + 2 * n) && ok(r.used, 4, 6 + 8 * n) {
        Ok(size)
    } else {
        Err(format!(
            "rings outside RAM or misaligned (desc {:#x}, avail {:#x}, used {:#x})",
            r.desc, r.avail, r.used
        ))
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            self.device
                .read_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            data.fill(0);
            self.log.warn(format_args!(
                "{}-byte read at register {offset:#x}: registers are 32-bit",
                data.len()
            ));
            return;
        }
        data.copy_from_slice(&self.read_register(offset as u32).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            // No device has writable config fields.
            self.log
                .warn(format_args!("config write at {offset:#x} ignored"));
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            self.log.warn(format_args!(
                "{}-byte write at register {offset:#x}: registers are 32-bit",
                data.len()
            ));
            return;
        };
        if !offset.is_multiple_of(4) {
            return;
        }
        self.write_register(offset as u32, u32::from_le_bytes(bytes));
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;
