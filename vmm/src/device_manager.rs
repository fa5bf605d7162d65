//! virtio-mmio devices: opening their host resources, placing them, announcing them on the
//! kernel command line, wiring their eventfds to KVM, and running one thread per device.
//!
//! Order and placement follow docs/virtio-contract.md: every `--disk`, then every `--net`,
//! then rng; device `i` at `VIRTIO_MMIO_START + i * 4 KiB` with IRQ `VIRTIO_MMIO_IRQ_BASE + i`.
//!
//! Threads: `virtio-blk<N>`, `virtio-net<N>`, `virtio-rng<N>`, spawned by the `vmm` thread
//! before it installs its own filter. Each installs its own filter first thing, then runs an
//! event-manager loop over its queue ioeventfds, a state eventfd (DRIVER_OK / reset, written by
//! the transport on a vCPU thread), its TAP (net) and a stop eventfd (written at shutdown).

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arch::layout::{
    VIRTIO_MMIO_IRQ_BASE, VIRTIO_MMIO_MAX_DEVICES, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_START,
};
use devices::virtio::block::{Block, SECTOR_SIZE};
use devices::virtio::mmio::TransportFds;
use devices::virtio::net::{default_mac, Net};
use devices::virtio::rng::Rng;
use devices::virtio::tap::Tap;
use devices::virtio::{MmioTransport, VirtioDevice};
use devices::Bus;
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::{IoEventAddress, VmFd};
use seccomp::{FilterContext, ThreadKind};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::config::VmConfig;
use crate::error::{Error, Result};

/// Offset of QueueNotify in the register window.
const QUEUE_NOTIFY: u64 = 0x50;
/// How long stopping may take before microvm gives up on a device thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A device whose host side (file, TAP) is open, not yet placed.
pub struct OpenedDevice {
    kind: ThreadKind,
    name: String,
    device: Box<dyn VirtioDevice>,
    ctx: FilterContext,
}

/// Opens every device of `cfg` in contract order. User errors (unreadable file, bad size,
/// TAP that cannot be opened) are reported here, before KVM is touched.
pub fn open_devices(cfg: &VmConfig) -> Result<Vec<OpenedDevice>> {
    let mut out = Vec::new();
    for (i, disk) in cfg.disks.iter().enumerate() {
        let err = |reason: String| Error::Disk {
            path: disk.path.clone(),
            reason,
        };
        let file = File::options()
            .read(true)
            .write(!disk.read_only)
            .open(&disk.path)
            .map_err(|e| err(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| err(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(err("not a regular file (raw images only)".into()));
        }
        let size = meta.len();
        if size == 0 || size % SECTOR_SIZE != 0 {
            return Err(err(format!(
                "size {size} bytes is not a non-zero multiple of 512"
            )));
        }
        let ctx = FilterContext {
            disk_fd: Some(file.as_raw_fd()),
            ..Default::default()
        };
        out.push(OpenedDevice {
            kind: ThreadKind::Blk,
            name: format!("virtio-blk{i}"),
            device: Box::new(Block::new(i, file, size, disk.read_only)),
            ctx,
        });
    }
    for (i, net) in cfg.nets.iter().enumerate() {
        let tap = Tap::open(&net.tap).map_err(|e| Error::Net {
            tap: net.tap.clone(),
            reason: e.to_string(),
        })?;
        let ctx = FilterContext {
            tap_fd: Some(tap.as_raw_fd()),
            ..Default::default()
        };
        out.push(OpenedDevice {
            kind: ThreadKind::Net,
            name: format!("virtio-net{i}"),
            device: Box::new(Net::new(tap, net.mac.unwrap_or_else(|| default_mac(i)))),
            ctx,
        });
    }
    if cfg.rng {
        out.push(OpenedDevice {
            kind: ThreadKind::Rng,
            name: "virtio-rng0".into(),
            device: Box::new(Rng::default()),
            ctx: FilterContext::default(),
        });
    }
    if out.len() > VIRTIO_MMIO_MAX_DEVICES as usize {
        return Err(Error::Device(format!(
            "{} virtio devices requested; at most {VIRTIO_MMIO_MAX_DEVICES} fit",
            out.len()
        )));
    }
    Ok(out)
}

/// Base address and IRQ of device slot `i`.
pub fn slot(i: usize) -> (u64, u32) {
    (
        VIRTIO_MMIO_START + i as u64 * VIRTIO_MMIO_SIZE,
        VIRTIO_MMIO_IRQ_BASE + i as u32,
    )
}

/// `cmdline` followed by one `virtio_mmio.device=4K@0x<addr>:<irq>` per device.
pub fn cmdline_with_devices(cmdline: &str, count: usize) -> String {
    let mut out = cmdline.trim_end().to_string();
    for i in 0..count {
        let (addr, irq) = slot(i);
        out.push_str(&format!(" virtio_mmio.device=4K@{addr:#x}:{irq}"));
    }
    out
}

/// A device on the MMIO bus with its eventfds registered with KVM.
pub struct AttachedDevice {
    kind: ThreadKind,
    name: String,
    ctx: FilterContext,
    transport: Arc<Mutex<MmioTransport>>,
    queue_evts: Vec<EventFd>,
    state_evt: EventFd,
    host_fd: Option<RawFd>,
}

impl AttachedDevice {
    /// Thread name, e.g. `virtio-blk0`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Filter kind of its thread.
    pub fn kind(&self) -> ThreadKind {
        self.kind
    }

    /// What its filter may pin (disk fd, TAP fd).
    pub fn filter_context(&self) -> &FilterContext {
        &self.ctx
    }
}

/// Places `devices` on `bus` and registers their irqfd and ioeventfds with KVM.
pub fn attach(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    bus: &mut Bus,
    devices: Vec<OpenedDevice>,
) -> Result<Vec<AttachedDevice>> {
    let host = |what: &'static str| move |source: std::io::Error| Error::Host { what, source };
    let mut out = Vec::with_capacity(devices.len());
    for (i, dev) in devices.into_iter().enumerate() {
        let (base, irq) = slot(i);
        let irq_evt =
            EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a virtio IRQ eventfd"))?;
        vm.register_irqfd(&irq_evt, irq)
            .map_err(|source| Error::Kvm {
                name: "KVM_IRQFD (virtio device)",
                source,
            })?;
        let mut queue_evts = Vec::new();
        let mut notify = Vec::new();
        for q in 0..dev.device.num_queues() {
            let evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a queue eventfd"))?;
            vm.register_ioevent(&evt, &IoEventAddress::Mmio(base + QUEUE_NOTIFY), q as u32)
                .map_err(|source| Error::Kvm {
                    name: "KVM_IOEVENTFD (virtio QueueNotify)",
                    source,
                })?;
            notify.push(evt.try_clone().map_err(host("cloning a queue eventfd"))?);
            queue_evts.push(evt);
        }
        let state_evt =
            EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a device state eventfd"))?;
        let fds = TransportFds {
            irq: irq_evt,
            state_changed: state_evt
                .try_clone()
                .map_err(host("cloning a state eventfd"))?,
            notify,
        };
        let host_fd = dev.device.host_fd();
        let transport = MmioTransport::new(dev.device, mem.clone(), fds, &dev.name)
            .map_err(|e| Error::Device(format!("{}: {e}", dev.name)))?;
        let transport = Arc::new(Mutex::new(transport));
        bus.insert(transport.clone(), base, VIRTIO_MMIO_SIZE)
            .map_err(|e| Error::Device(format!("{}: {e}", dev.name)))?;
        log::info!("{} at {base:#x}, IRQ {irq}", dev.name);
        out.push(AttachedDevice {
            kind: dev.kind,
            name: dev.name,
            ctx: dev.ctx,
            transport,
            queue_evts,
            state_evt,
            host_fd,
        });
    }
    Ok(out)
}

const STATE: u32 = 1000;
const STOP: u32 = 1001;
const HOST: u32 = 1002;

/// The device thread's event subscriber.
struct Worker {
    transport: Arc<Mutex<MmioTransport>>,
    queue_evts: Vec<EventFd>,
    state_evt: EventFd,
    stop_evt: EventFd,
    stop: Arc<AtomicBool>,
    host_fd: Option<RawFd>,
    host_watched: bool,
}

impl Worker {
    fn lock(&self) -> std::sync::MutexGuard<'_, MmioTransport> {
        self.transport.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Polls the host fd (TAP) exactly while the device wants it.
    fn sync_host_fd(&mut self, ops: &mut EventOps) {
        let Some(fd) = self.host_fd else {
            return;
        };
        let want = self.lock().wanted_host_fd().is_some();
        if want == self.host_watched {
            return;
        }
        let ev = Events::with_data_raw(fd, HOST, EventSet::IN);
        let res = if want { ops.add(ev) } else { ops.remove(ev) };
        match res {
            Ok(()) => self.host_watched = want,
            Err(e) => log::warn!("cannot (un)watch the TAP fd {fd}: {e:?}"),
        }
    }
}

impl MutEventSubscriber for Worker {
    fn init(&mut self, ops: &mut EventOps) {
        let mut add = |fd: RawFd, data: u32| {
            if let Err(e) = ops.add(Events::with_data_raw(fd, data, EventSet::IN)) {
                log::error!("cannot watch fd {fd}: {e:?}");
            }
        };
        for (i, evt) in self.queue_evts.iter().enumerate() {
            add(evt.as_raw_fd(), i as u32);
        }
        add(self.state_evt.as_raw_fd(), STATE);
        add(self.stop_evt.as_raw_fd(), STOP);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            STATE => {
                let _ = self.state_evt.read();
            }
            STOP => {
                let _ = self.stop_evt.read();
                // Before the thread ends: what the guest wrote without FLUSH is synced.
                self.lock().stop_device();
                self.stop.store(true, Ordering::Release);
            }
            HOST => self.lock().host_fd_ready(),
            q => {
                if let Some(evt) = self.queue_evts.get(q as usize) {
                    let _ = evt.read();
                    self.lock().notify(q as usize);
                }
            }
        }
        self.sync_host_fd(ops);
    }
}

/// A running device thread.
pub struct DeviceThread {
    name: String,
    thread: JoinHandle<()>,
    stop_evt: EventFd,
}

/// Spawns the thread of `dev`. It installs `filter` (if any) before anything else, then
/// serves the device until [`stop`].
pub fn spawn(dev: AttachedDevice, filter: Option<seccomp::BpfProgram>) -> Result<DeviceThread> {
    let host = |what: &'static str| move |source: std::io::Error| Error::Host { what, source };
    let stop_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a stop eventfd"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        transport: dev.transport,
        queue_evts: dev.queue_evts,
        state_evt: dev.state_evt,
        stop_evt: stop_evt
            .try_clone()
            .map_err(host("cloning a stop eventfd"))?,
        stop: stop.clone(),
        host_fd: dev.host_fd,
        host_watched: false,
    };
    // The epoll instance is created here, on the unfiltered main thread.
    let mut manager: EventManager<Worker> =
        EventManager::new().map_err(|e| Error::EventLoop(format!("{}: {e:?}", dev.name)))?;
    manager.add_subscriber(worker);
    let name = dev.name.clone();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // INVARIANT: the filter goes on before this thread handles any guest request.
            if let Some(filter) = filter {
                if let Err(e) = seccomp::install(&filter) {
                    eprintln!("microvm: error: {name}: cannot install its seccomp filter: {e}");
                    std::process::exit(crate::exit::EXIT_ERROR);
                }
            }
            while !stop.load(Ordering::Acquire) {
                if let Err(e) = manager.run() {
                    log::error!("{name}: event loop failed: {e:?}; device stopped");
                    break;
                }
                #[cfg(feature = "test-hooks")]
                crate::vcpu::test_hook::on_device_wakeup(&name);
            }
        })
        .map_err(|source| Error::Spawn {
            name: dev.name.clone(),
            source,
        })?;
    Ok(DeviceThread {
        name: dev.name,
        thread,
        stop_evt,
    })
}

/// Stops every device thread and joins it (after the vCPUs have stopped).
pub fn stop(threads: Vec<DeviceThread>) {
    for t in &threads {
        if let Err(e) = t.stop_evt.write(1) {
            log::error!("cannot stop {}: {e}", t.name);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for t in threads {
        while !t.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if t.thread.is_finished() {
            let _ = t.thread.join();
        } else {
            log::error!(
                "{} did not stop within {STOP_TIMEOUT:?}; exiting anyway",
                t.name
            );
        }
    }
}
