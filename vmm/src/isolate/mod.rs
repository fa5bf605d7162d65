//! `--isolate devices`: every virtio device in a process of its own (issue 13, item 4).
//!
//! The `vmm` thread forks one process per device ([`start`]) right after the VM is built
//! and its set-up helpers have ended, while it is still the only thread of the VMM and
//! before any device has touched guest data. A device process keeps only its own fds (its
//! disk or TAP, irqfd, queue ioeventfds, state, stop and timer fds, epoll instance and its
//! end of the proxy socket; guest RAM is a shared memfd mapping), enters its own sandbox
//! ([`child`]), installs its own seccomp filter, tells the VMM it is ready and serves: its
//! queues through the ioeventfds, its registers through the proxy socket (the
//! [`ProxyDevice`](devices::virtio::proxy::ProxyDevice) on the MMIO bus forwards them).
//!
//! The VMM watches each process's pidfd in its event loop ([`Reaper`]): a process that
//! dies is reaped, its device put into DEVICE_NEEDS_RESET and one warning line names it;
//! the VM carries on. At shutdown [`stop`] asks every process to stop through its stop
//! eventfd, waits up to [`STOP_TIMEOUT`](crate::threads::STOP_TIMEOUT), kills what is left
//! with SIGKILL and reaps everything.

mod child;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devices::virtio::proxy::{self, ProxyState};
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use vmm_sys_util::eventfd::EventFd;

use crate::device_manager::AttachedDevice;
use crate::error::{Error, Result};
use crate::exit::VmExit;
use crate::vcpu::VmControl;

/// First byte of the message a device process sends once, before it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Hello {
    /// Filter on, serving.
    Ready = 0,
    /// Its set-up failed (the rest of the message says why).
    SetupFailed = 1,
    /// Its seccomp filter could not be installed (the rest says why).
    FilterFailed = 2,
}

/// Longest hello message.
const HELLO_MAX: usize = 512;

/// One device process, as the VMM sees it.
pub struct DeviceProcess {
    name: String,
    pid: libc::pid_t,
    pidfd: OwnedFd,
    stop_evt: EventFd,
    state: Arc<ProxyState>,
    reaped: AtomicBool,
}

impl DeviceProcess {
    /// The device's name, e.g. `virtio-rng0` (the process's comm too).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Its pidfd (for the vmm filter).
    pub fn pidfd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    /// Its stop eventfd (for the vmm filter).
    pub fn stop_fd(&self) -> RawFd {
        self.stop_evt.as_raw_fd()
    }

    /// Reaps the process if it has ended (`block`: waits until it has); how it ended, once.
    fn reap(&self, block: bool) -> Option<Ended> {
        if self.reaped.load(Ordering::Acquire) {
            return None;
        }
        let ended = wait_pidfd(self.pidfd.as_raw_fd(), block)?;
        self.reaped.store(true, Ordering::Release);
        Some(ended)
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// exit(code).
    Exited(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exit code {code}"),
            Ended::Signal(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// waitid(P_PIDFD) for an ended child: None while it runs (or on error).
fn wait_pidfd(pidfd: RawFd, block: bool) -> Option<Ended> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: `info` is a valid out-pointer; P_PIDFD takes the pidfd as its id.
        let rc = unsafe {
            libc::waitid(
                seccomp::P_PIDFD as libc::idtype_t,
                pidfd as libc::id_t,
                &mut info,
                flags,
            )
        };
        if rc == 0 {
            break;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
    // SAFETY: waitid filled `info` for a child (or left it zeroed: si_pid 0).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => Ended::Exited(status),
        _ => Ended::Signal(status),
    })
}

/// Fails unless the calling thread is the only one of the process (fork is then safe).
fn check_single_threaded() -> Result<()> {
    let count = std::fs::read_dir("/proc/self/task").map(|d| d.count());
    match count {
        Ok(n) if n > 1 => Err(Error::DeviceProcess {
            device: "all devices".into(),
            detail: format!("the VMM has {n} threads; device processes are forked from one"),
        }),
        _ => Ok(()),
    }
}

/// A device process's seccomp listener (`--seccomp log`), sent with its hello, for the
/// VMM's supervisor ([`register_listeners`]).
pub struct Listener {
    name: String,
    pid: u32,
    fd: OwnedFd,
}

/// Forks a process for every device of `devices` (each with an `isolated` part), waits
/// until each has its filter on and serves, and returns them with the listeners they sent
/// (`--seccomp log`). Call while the calling thread is the only one. A device whose filter
/// could not go on is reported through `ctl` (the guest then does not run), as for a
/// device thread.
pub fn start(
    devices: Vec<AttachedDevice>,
    mode: seccomp::Mode,
    ctl: &VmControl,
) -> Result<(Arc<Vec<DeviceProcess>>, Vec<Listener>)> {
    check_single_threaded()?;
    let mut procs = Vec::with_capacity(devices.len());
    let mut hello_fds = Vec::with_capacity(devices.len());
    for dev in devices {
        hello_fds.push(dev.fds().proxy_vmm);
        procs.push(fork_one(dev, mode)?);
    }
    let mut listeners = Vec::new();
    for (p, fd) in procs.iter().zip(hello_fds) {
        let fd = fd.ok_or_else(|| not_isolated(&p.name))?;
        if let Some(fd) = wait_ready(p, fd, ctl)? {
            let (name, pid) = (p.name.clone(), p.pid as u32);
            listeners.push(Listener { name, pid, fd });
        }
    }
    Ok((Arc::new(procs), listeners))
}

/// Hands each device process's listener to the supervisor (`--seccomp log`: started once
/// the processes are forked, so that they are forked from a single thread).
pub fn register_listeners(listeners: Vec<Listener>) -> Result<()> {
    for l in listeners {
        seccomp::register_listener(l.fd, &l.name, l.pid)?;
    }
    Ok(())
}

fn not_isolated(name: &str) -> Error {
    Error::DeviceProcess {
        device: name.to_string(),
        detail: "not attached for a process (internal error)".into(),
    }
}

/// Forks the process of `dev`; in the parent, drops every fd of the device but its stop
/// eventfd (the proxy on the bus keeps the VMM's socket end).
fn fork_one(mut dev: AttachedDevice, mode: seccomp::Mode) -> Result<DeviceProcess> {
    let isolated = dev.isolated.take().ok_or_else(|| not_isolated(&dev.name))?;
    let name = dev.name.clone();
    let host = |what: &'static str| move |source: io::Error| Error::Host { what, source };
    let stop_evt = dev
        .stop_evt
        .try_clone()
        .map_err(host("cloning a stop eventfd"))?;
    // SAFETY: the caller's contract: this is the only thread, so the child's memory is
    // consistent (no lock is held by a thread that does not exist there).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::Host {
            what: "forking a device process",
            source: io::Error::last_os_error(),
        });
    }
    if pid == 0 {
        child::run(dev, isolated, mode);
    }
    // SAFETY: pidfd_open on our own child (a zombie still has its pid).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let source = io::Error::last_os_error();
        // SAFETY: our own child; reaped right after.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // SAFETY: as above; no status needed.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(Error::Host {
            what: "pidfd_open on a device process",
            source,
        });
    }
    // SAFETY: a fresh pidfd owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    log::info!("{name}: device process {pid}");
    // The child's fds are its own now: the VMM closes its copies (`dev`, `isolated.socket`).
    let state = isolated.state.clone();
    drop(isolated);
    drop(dev);
    Ok(DeviceProcess {
        name,
        pid,
        pidfd,
        stop_evt,
        state,
        reaped: AtomicBool::new(false),
    })
}

/// Waits for the hello of `p` on the VMM end `fd` of its proxy socket; returns the
/// listener it carries under `--seccomp log`.
fn wait_ready(p: &DeviceProcess, fd: RawFd, ctl: &VmControl) -> Result<Option<OwnedFd>> {
    let mut buf = [0u8; HELLO_MAX];
    let (n, listener) = proxy::recv_with_fd(fd, &mut buf).map_err(|source| Error::Host {
        what: "waiting for a device process",
        source,
    })?;
    let text = String::from_utf8_lossy(buf.get(1..n).unwrap_or_default()).into_owned();
    let fail = |detail: String| Error::DeviceProcess {
        device: p.name.clone(),
        detail,
    };
    match buf[0] {
        _ if n == 0 => {
            let ended = p.reap(true).map_or("?".into(), |e| e.to_string());
            Err(fail(format!("ended before it served ({ended})")))
        }
        b if b == Hello::Ready as u8 && n == 1 => Ok(listener),
        b if b == Hello::FilterFailed as u8 => {
            ctl.fail(VmExit::FilterInstall {
                thread: p.name.clone(),
                detail: text,
            });
            Ok(None)
        }
        b if b == Hello::SetupFailed as u8 => Err(fail(text)),
        _ => Err(fail("sent a bad hello".into())),
    }
}

/// The `vmm` thread's watch on the device processes: a process that ends while the VM
/// runs is reaped and its device needs a reset (one warning line).
pub struct Reaper {
    procs: Arc<Vec<DeviceProcess>>,
}

impl Reaper {
    /// Watches every process of `procs`.
    pub fn new(procs: Arc<Vec<DeviceProcess>>) -> Self {
        Reaper { procs }
    }
}

impl MutEventSubscriber for Reaper {
    fn init(&mut self, ops: &mut EventOps) {
        for (i, p) in self.procs.iter().enumerate() {
            // Edge-triggered: a pidfd stays readable once the process has ended.
            let set = EventSet::IN | EventSet::EDGE_TRIGGERED;
            if let Err(e) = ops.add(Events::with_data_raw(p.pidfd(), i as u32, set)) {
                log::error!("cannot watch the process of {}: {e:?}", p.name);
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let Some(p) = self.procs.get(events.data() as usize) else {
            return;
        };
        if let Some(ended) = p.reap(false) {
            p.state.mark_dead();
            log::warn!(
                "{}: device process died ({ended}); device needs reset",
                p.name
            );
        }
    }
}

/// Stops every device process still running (its stop eventfd), waits for each up to
/// [`crate::threads::STOP_TIMEOUT`], SIGKILLs what is left and reaps them all.
pub fn stop(procs: &[DeviceProcess]) {
    for p in procs.iter().filter(|p| !p.reaped.load(Ordering::Acquire)) {
        if let Err(e) = p.stop_evt.write(1) {
            log::error!("cannot stop {}: {e}", p.name);
        }
    }
    let deadline = Instant::now() + crate::threads::STOP_TIMEOUT;
    let mut pause = Duration::from_micros(50);
    loop {
        let running = procs
            .iter()
            .filter(|p| {
                let _ = p.reap(false);
                !p.reaped.load(Ordering::Acquire)
            })
            .count();
        if running == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
    for p in procs.iter().filter(|p| !p.reaped.load(Ordering::Acquire)) {
        log::error!(
            "{} did not stop within {:?}; killed",
            p.name,
            crate::threads::STOP_TIMEOUT
        );
        // SAFETY: a signal to our own, not yet reaped, child through its pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                p.pidfd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        let _ = p.reap(true);
    }
}

#[cfg(test)]
mod tests;
