//! Placing virtio devices: each in its virtio-mmio slot on the MMIO bus, described on the
//! kernel command line when the guest has no ACPI, with its IRQ (irqfd) and queue-notify
//! (ioeventfd) eventfds registered with KVM.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use arch::layout::{VIRTIO_MMIO_IRQ_BASE, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_START};
use devices::virtio::mmio::TransportFds;
use devices::virtio::proxy::{self, ProxyDevice, ProxyState};
use devices::virtio::{MmioTransport, MmioWindow};
use devices::Bus;
use event_manager::{EventManager, MutEventSubscriber};
use kvm_ioctls::{IoEventAddress, VmFd};
use seccomp::ThreadKind;
use virtio_bindings::virtio_mmio::VIRTIO_MMIO_QUEUE_NOTIFY;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::OpenedDevice;
use crate::error::{Error, Result};
use crate::filter_fds::{self, DeviceFds};

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

/// Something else the device's thread serves in its event loop, next to the device.
pub type Subscriber = Box<dyn MutEventSubscriber + Send>;

/// A device on the MMIO bus with its eventfds registered with KVM.
pub struct AttachedDevice {
    pub(crate) kind: ThreadKind,
    pub(crate) name: String,
    pub(crate) fds: DeviceFds,
    pub(crate) transport: Arc<Mutex<MmioTransport>>,
    pub(crate) queue_evts: Vec<EventFd>,
    pub(crate) state_evt: EventFd,
    pub(crate) host_fd: Option<RawFd>,
    pub(crate) extra: Vec<Subscriber>,
    /// The stop eventfd the vmm thread writes, and the device thread's clone of it.
    pub(crate) stop_evt: EventFd,
    pub(crate) worker_stop: EventFd,
    /// The device thread's event loop, created here so its epoll fd is known to the filter.
    pub(crate) manager: EventManager<Subscriber>,
    /// `--isolate devices`: what the device process serves and how it is reached.
    pub(crate) isolated: Option<Isolated>,
}

/// The device-process side of an isolated device (`--isolate devices`): its MMIO window
/// (the proxy on the bus forwards every register access to it) and its proxy socket end.
pub struct Isolated {
    /// The window the device process performs register accesses on.
    pub window: Arc<MmioWindow>,
    /// The device process's end of the proxy socket.
    pub socket: std::os::fd::OwnedFd,
    /// Shared with the proxy on the bus: set when the process is gone.
    pub state: Arc<ProxyState>,
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

    /// Its fds, for the filters (its own thread's and the vCPUs', see [`filter_fds`]).
    pub fn fds(&self) -> &DeviceFds {
        &self.fds
    }

    /// Test builds: an eventfd a subscriber added to this device's loop reads (its filter
    /// lets the device thread read it).
    pub fn add_hook_fd(&mut self, fd: RawFd) {
        self.fds.hook.push(fd);
    }

    /// Adds `subscriber` to the event loop of the device's thread (registered on the
    /// spawning thread, served on the device's).
    pub fn add_subscriber(&mut self, subscriber: Subscriber) {
        self.extra.push(subscriber);
    }
}

fn host(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Host { what, source }
}

/// Places `devices` on `bus` and registers their irqfd and ioeventfds with KVM. With
/// `isolate`, each window on the bus is a [`ProxyDevice`] to the device's future process.
pub fn attach(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    bus: &mut Bus,
    devices: Vec<OpenedDevice>,
    isolate: bool,
) -> Result<Vec<AttachedDevice>> {
    devices
        .into_iter()
        .enumerate()
        .map(|(i, dev)| attach_one(vm, mem, bus, i, dev, isolate))
        .collect()
}

/// Places `dev` in slot `i`.
fn attach_one(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    bus: &mut Bus,
    i: usize,
    dev: OpenedDevice,
    isolate: bool,
) -> Result<AttachedDevice> {
    let (base, irq) = slot(i);
    let irq_evt =
        EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a virtio IRQ eventfd"))?;
    vm.register_irqfd(&irq_evt, irq)
        .map_err(|source| Error::Kvm {
            name: "KVM_IRQFD (virtio device)",
            source,
        })?;
    let queue_evts = queue_eventfds(vm, base, dev.device.num_queues())?;
    let state_evt =
        EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a device state eventfd"))?;
    let fds = TransportFds {
        irq: irq_evt,
        state_changed: state_evt
            .try_clone()
            .map_err(host("cloning a state eventfd"))?,
        notify: clone_all(&queue_evts)?,
    };
    let host_fd = dev.device.host_fd();
    let timer_fds = dev.device.timer_fds();
    let window_notify = clone_all(&queue_evts)?;
    // The stop eventfd and the event loop's epoll instance exist before any thread, so
    // the device thread's filter can pin them.
    let stop_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a stop eventfd"))?;
    let worker_stop = stop_evt
        .try_clone()
        .map_err(host("cloning a stop eventfd"))?;
    let epoll = filter_fds::next_fd().map_err(host("probing the next fd"))?;
    let manager = EventManager::new().map_err(|source| Error::EventLoop {
        thread: dev.name.clone(),
        source,
    })?;
    let epoll = filter_fds::check_epoll(epoll, &dev.name).map_err(host("finding the epoll fd"))?;
    let dev_fds = DeviceFds {
        host: dev.host,
        irq: fds.irq.as_raw_fd(),
        queues: queue_evts.iter().map(AsRawFd::as_raw_fd).collect(),
        notify: fds.notify.iter().map(AsRawFd::as_raw_fd).collect(),
        window_notify: window_notify.iter().map(AsRawFd::as_raw_fd).collect(),
        state: state_evt.as_raw_fd(),
        state_trigger: fds.state_changed.as_raw_fd(),
        stop: worker_stop.as_raw_fd(),
        epoll,
        timers: timer_fds,
        hook: Vec::new(),
        proxy: None,
        proxy_vmm: None,
    };
    let transport =
        MmioTransport::new(dev.device, mem.clone(), fds, &dev.name).map_err(|source| {
            Error::Transport {
                device: dev.name.clone(),
                source,
            }
        })?;
    let transport = Arc::new(Mutex::new(transport));
    // vCPUs reach InterruptStatus/ACK through the window without the transport's lock,
    // which the device thread holds while it serves a queue.
    let window = Arc::new(MmioWindow::new(transport.clone(), window_notify));
    let bus_err = |source| Error::Bus {
        device: dev.name.clone(),
        source,
    };
    let mut dev_fds = dev_fds;
    let isolated = if isolate {
        let (vmm_end, socket) = proxy::socket_pair().map_err(host("creating a proxy socket"))?;
        let state = Arc::new(ProxyState::default());
        let proxy = ProxyDevice::new(&dev.name, vmm_end, state.clone());
        dev_fds.proxy = Some(socket.as_raw_fd());
        dev_fds.proxy_vmm = Some(proxy.socket_fd());
        bus.insert(Arc::new(Mutex::new(proxy)), base, VIRTIO_MMIO_SIZE)
            .map_err(bus_err)?;
        Some(Isolated {
            window,
            socket,
            state,
        })
    } else {
        bus.insert_shared(window, base, VIRTIO_MMIO_SIZE)
            .map_err(bus_err)?;
        None
    };
    log::info!("{} at {base:#x}, IRQ {irq}", dev.name);
    Ok(AttachedDevice {
        kind: dev.kind,
        name: dev.name,
        fds: dev_fds,
        transport,
        queue_evts,
        state_evt,
        host_fd,
        extra: Vec::new(),
        stop_evt,
        worker_stop,
        manager,
        isolated,
    })
}

/// One eventfd per queue, each registered with KVM as an ioeventfd on QueueNotify at
/// `base` with the queue's index as the datamatch.
fn queue_eventfds(vm: &VmFd, base: u64, queues: usize) -> Result<Vec<EventFd>> {
    let notify = IoEventAddress::Mmio(base + u64::from(VIRTIO_MMIO_QUEUE_NOTIFY));
    (0..queues)
        .map(|q| {
            let evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a queue eventfd"))?;
            vm.register_ioevent(&evt, &notify, q as u32)
                .map_err(|source| Error::Kvm {
                    name: "KVM_IOEVENTFD (virtio QueueNotify)",
                    source,
                })?;
            Ok(evt)
        })
        .collect()
}

fn clone_all(evts: &[EventFd]) -> Result<Vec<EventFd>> {
    evts.iter()
        .map(EventFd::try_clone)
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(host("cloning a queue eventfd"))
}
