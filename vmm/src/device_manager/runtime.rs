//! The device runtime: one thread per virtio device (`virtio-blk<N>`, `virtio-net<N>`,
//! `virtio-rng<N>`), spawned through [`crate::threads`] by the `vmm` thread before it
//! installs its own filter. Each installs its own filter first thing, then runs an
//! event-manager loop over its queue ioeventfds, a state eventfd (DRIVER_OK / reset,
//! written by the transport on a vCPU thread), its TAP (net), its rate-limit timerfds
//! (`bw=`/`ops=`), a stop eventfd (written at shutdown) and whatever else was added to the
//! device ([`AttachedDevice::add_subscriber`]).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use devices::virtio::MmioTransport;
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::eventfd::EventFd;

use super::wiring::Subscriber;
use super::AttachedDevice;
use crate::error::Result;
use crate::threads::{self, FilteredThread};
use crate::vcpu::VmControl;

const STATE: u32 = 1000;
const STOP: u32 = 1001;
const HOST: u32 = 1002;
/// Rate-limit timer `i` of the device: `TIMER + i`.
const TIMER: u32 = 1100;

/// The device thread's event subscriber.
struct Worker {
    transport: Arc<Mutex<MmioTransport>>,
    queue_evts: Vec<EventFd>,
    state_evt: EventFd,
    stop_evt: EventFd,
    stop: Arc<AtomicBool>,
    host_fd: Option<RawFd>,
    host_watched: bool,
    /// Rate-limit timerfds, watched always (they fire only when armed).
    timer_fds: Vec<RawFd>,
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
        for (i, fd) in self.timer_fds.iter().enumerate() {
            add(*fd, TIMER + i as u32);
        }
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
            t if t >= TIMER => self.lock().timer_fired((t - TIMER) as usize),
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
    thread: FilteredThread,
    stop_evt: EventFd,
}

impl DeviceThread {
    /// The stop eventfd the vmm thread writes (for its filter).
    pub fn stop_fd(&self) -> RawFd {
        self.stop_evt.as_raw_fd()
    }
}

/// A device's event loop with every subscriber registered (on the calling, unfiltered
/// thread), ready to serve: on its thread ([`spawn`]) or in its process (`crate::isolate`).
pub(crate) struct DeviceLoop {
    name: String,
    manager: EventManager<Subscriber>,
    stop: Arc<AtomicBool>,
}

impl DeviceLoop {
    /// The loop of `dev`, and the stop eventfd the vmm thread writes to end it.
    pub(crate) fn new(dev: AttachedDevice) -> (DeviceLoop, EventFd) {
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            transport: dev.transport,
            queue_evts: dev.queue_evts,
            state_evt: dev.state_evt,
            stop_evt: dev.worker_stop,
            stop: stop.clone(),
            host_fd: dev.host_fd,
            host_watched: false,
            timer_fds: dev.fds.timers.clone(),
        };
        // The epoll instance was created in `wiring::attach`, so that its filter could pin
        // its epoll fd; every fd is registered here, before any filter.
        let mut manager: EventManager<Subscriber> = dev.manager;
        manager.add_subscriber(Box::new(worker));
        for extra in dev.extra {
            manager.add_subscriber(extra);
        }
        let lp = DeviceLoop {
            name: dev.name,
            manager,
            stop,
        };
        (lp, dev.stop_evt)
    }

    /// Adds `subscriber` to the loop (registered now).
    pub(crate) fn add(&mut self, subscriber: Subscriber) {
        self.manager.add_subscriber(subscriber);
    }

    /// The flag that ends [`DeviceLoop::run`] once set.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Serves the device until it is stopped or the loop fails.
    pub(crate) fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) {
            if let Err(e) = self.manager.run() {
                log::error!("{}: event loop failed: {e}; device stopped", self.name);
                break;
            }
        }
    }
}

/// Spawns the thread of `dev` through [`threads::spawn_filtered`]: it installs `filter`
/// (if any) before anything else, then serves the device until [`stop`].
pub fn spawn(
    dev: AttachedDevice,
    filter: Option<seccomp::BpfProgram>,
    ctl: Arc<VmControl>,
) -> Result<DeviceThread> {
    let name = dev.name.clone();
    let (lp, stop_evt) = DeviceLoop::new(dev);
    let thread = threads::spawn_filtered(name, filter, ctl, move || lp.run())?;
    Ok(DeviceThread { thread, stop_evt })
}

/// Stops every device thread and joins it (after the vCPUs have stopped).
pub fn stop(devices: Vec<DeviceThread>) {
    for d in &devices {
        if let Err(e) = d.stop_evt.write(1) {
            log::error!("cannot stop {}: {e}", d.thread.name());
        }
    }
    threads::stop_and_join(devices.into_iter().map(|d| d.thread).collect(), None);
}
