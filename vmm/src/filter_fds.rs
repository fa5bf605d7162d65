//! Which fds each thread owns, by role: the one place that turns microvm's objects into the
//! [`FilterContext`] a thread's seccomp filter is pinned to (roles: `seccomp/src/fds.rs`).
//!
//! Every fd exists before the threads spawn. Where they come from:
//! - legacy devices ([`LegacyFds`], recorded by `builder::legacy_devices`): the serial and
//!   i8042 irqfds and the write ends of the reset and power-off eventfds, all written by
//!   vCPU threads (the vmm thread also raises the serial IRQ for console input);
//! - each virtio device ([`DeviceFds`], recorded by `device_manager::attach`): its irqfd,
//!   queue ioeventfds, the queue eventfd clones it writes to come back for a full ring, its
//!   state eventfd, and the clones vCPU threads write (QueueNotify, state changes);
//! - in test builds, the test hook's wake eventfds (`test_hook.rs`);
//! - each device thread's stop eventfd and epoll instance (`device_manager::attach`), and
//!   the rate-limit timerfds of a disk or net device with `bw=`/`ops=`
//!   (`device_manager::backends`);
//! - the vmm thread's event sources and epoll instance, `/proc/thread-self/status`.
//!
//! `builder::compile_filters` calls [`vcpu`] and [`device`], `vmm::run` calls [`vmm`] once
//! its event loop exists; each and logs each thread's map at debug level (`seccomp fds of THREAD: role=fd ...`),
//! which `microvm seccomp from-strace` reads back to replay a trace against the pins.

use std::os::fd::{AsRawFd, RawFd};

use seccomp::FilterContext;

/// The fds of the port-I/O devices that vCPU threads write.
#[derive(Clone, Debug, Default)]
pub struct LegacyFds {
    /// COM1's irqfd.
    pub serial_irq: RawFd,
    /// The i8042's irqfd.
    pub i8042_irq: RawFd,
    /// The i8042's clone of the reset eventfd.
    pub reset: RawFd,
    /// The ACPI PM registers' clone of the power-off eventfd (none with `--acpi off`).
    pub poweroff: Option<RawFd>,
}

/// The fds of one virtio device, recorded when it is attached.
#[derive(Clone, Debug, Default)]
pub struct DeviceFds {
    /// Role and fd of its host side (`disk`, `tap`), if any.
    pub host: Option<(&'static str, RawFd)>,
    /// Its irqfd (written by the device thread).
    pub irq: RawFd,
    /// Its queue ioeventfds (read by the device thread).
    pub queues: Vec<RawFd>,
    /// The transport's clones of the queue eventfds (written by the device thread to come
    /// back for requests left after a pass, and by a vCPU for a trapped QueueNotify).
    pub notify: Vec<RawFd>,
    /// The MMIO window's clones of the queue eventfds (vCPU, trapped QueueNotify).
    pub window_notify: Vec<RawFd>,
    /// Its state eventfd (read by the device thread).
    pub state: RawFd,
    /// The transport's clone of the state eventfd (written on a vCPU).
    pub state_trigger: RawFd,
    /// The device thread's clone of its stop eventfd.
    pub stop: RawFd,
    /// The device thread's epoll instance.
    pub epoll: RawFd,
    /// Its rate-limit timerfds (`bw=`/`ops=`; none without a limit).
    pub timers: Vec<RawFd>,
    /// Test builds: eventfds of subscribers added to the device's loop (the test hook).
    pub hook: Vec<RawFd>,
    /// `--isolate devices`: the device process's end of its proxy socket.
    pub proxy: Option<RawFd>,
    /// `--isolate devices`: the VMM's end (vCPU threads send register accesses on it).
    pub proxy_vmm: Option<RawFd>,
}

impl DeviceFds {
    /// Every fd a device process keeps (`--isolate devices`): all of the device's but the
    /// VMM's end of the proxy socket.
    pub fn process_fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = [
            self.irq,
            self.state,
            self.state_trigger,
            self.stop,
            self.epoll,
        ]
        .into_iter()
        .chain(self.host.map(|h| h.1))
        .chain(self.proxy)
        .chain(self.queues.iter().copied())
        .chain(self.notify.iter().copied())
        .chain(self.window_notify.iter().copied())
        .chain(self.timers.iter().copied())
        .chain(self.hook.iter().copied())
        .collect();
        fds.sort_unstable();
        fds.dedup();
        fds
    }
}

/// The context of a vCPU thread: its own vCPU fd, console output, the legacy lines, every
/// device's QueueNotify and state eventfds, the exit eventfd, and (test builds) the test
/// hook's wake eventfds.
pub fn vcpu<'a>(
    vcpu_fd: RawFd,
    exit: RawFd,
    legacy: &LegacyFds,
    devices: impl IntoIterator<Item = &'a DeviceFds>,
    hook: &[RawFd],
) -> FilterContext {
    let mut ctx = FilterContext::new()
        .with("hook", hook.iter().copied())
        .with("vcpu", [vcpu_fd])
        .with("exit", [exit])
        .with("irq:serial", [legacy.serial_irq])
        .with("irq:i8042", [legacy.i8042_irq])
        .with("reset", [legacy.reset])
        .with("poweroff", legacy.poweroff);
    for d in devices {
        // An isolated device's eventfds are its process's: the vCPU only sends requests.
        if let Some(fd) = d.proxy_vmm {
            ctx.add("proxy:virtio", [fd]);
            continue;
        }
        ctx.add("state:virtio", [d.state_trigger]);
        ctx.add(
            "notify:virtio",
            d.window_notify.iter().chain(&d.notify).copied(),
        );
    }
    ctx
}

/// The context of a device thread: its host fd, its eventfds, its stop eventfd and epoll.
pub fn device(dev: &DeviceFds) -> FilterContext {
    let mut ctx = FilterContext::new()
        .with("epoll", [dev.epoll])
        .with("hook", dev.hook.iter().copied())
        .with("irq", [dev.irq])
        .with("queue", dev.queues.iter().copied())
        .with("notify", dev.notify.iter().copied())
        .with("state", [dev.state])
        .with("stop", [dev.stop])
        .with("timer", dev.timers.iter().copied());
    if let Some((role, fd)) = dev.host {
        ctx.add(role, [fd]);
    }
    ctx
}

/// The context of a device process (`--isolate devices`): a device thread's, its proxy
/// socket end, and its window's eventfds (state trigger, trapped-QueueNotify clones), which
/// a vCPU writes under threads.
pub fn device_process(dev: &DeviceFds) -> FilterContext {
    device(dev).with("proxy", dev.proxy).with(
        "window",
        std::iter::once(dev.state_trigger).chain(dev.window_notify.iter().copied()),
    )
}

/// The vmm thread's event sources and what it writes.
pub struct VmmFds {
    /// Its epoll instance.
    pub epoll: RawFd,
    /// The exit eventfd (read; written when it records a reset/power-off).
    pub exit: RawFd,
    /// The reset eventfd it reads.
    pub reset: RawFd,
    /// The power-off eventfd it reads.
    pub poweroff: RawFd,
    /// The stop-signal signalfd.
    pub signalfd: RawFd,
    /// /proc/thread-self/status, read once by the sandbox self-check.
    pub status: Option<RawFd>,
    /// COM1's irqfd: console input raises it.
    pub serial_irq: RawFd,
    /// Every device thread's (or process's) stop eventfd.
    pub stops: Vec<RawFd>,
    /// `--isolate devices`: every device process's pidfd.
    pub pidfds: Vec<RawFd>,
    /// Test builds: eventfds of subscribers added to its loop (the test hook).
    pub hook: Vec<RawFd>,
    /// The VM fd (KVM_REINJECT_CONTROL once the guest runs).
    pub vm: RawFd,
}

/// The context of the vmm thread.
pub fn vmm(f: &VmmFds) -> FilterContext {
    FilterContext::new()
        .with("epoll", [f.epoll])
        .with("exit", [f.exit])
        .with("reset", [f.reset])
        .with("poweroff", [f.poweroff])
        .with("signalfd", [f.signalfd])
        .with("status", f.status)
        .with("irq:serial", [f.serial_irq])
        .with("stop:virtio", f.stops.iter().copied())
        .with("pidfd:virtio", f.pidfds.iter().copied())
        .with("hook", f.hook.iter().copied())
        .with("vm", [f.vm])
}

/// Logs `thread`'s fd map (read back by `microvm seccomp from-strace`).
pub fn log(thread: &str, ctx: &FilterContext) {
    log::debug!("seccomp fds of {thread}: {ctx}");
}

/// The fd the next fd this thread creates gets (the lowest free one), for objects that do
/// not expose their fd (event-manager's epoll instance). Valid while no other thread
/// creates fds, as when the main thread spawns: filtered threads cannot create any.
pub fn next_fd() -> std::io::Result<RawFd> {
    // An eventfd, not a file: no path needed (tests run microvm where /dev/null is absent).
    let probe = vmm_sys_util::eventfd::EventFd::new(libc::EFD_CLOEXEC)?;
    Ok(probe.as_raw_fd())
}

/// Checks that `fd` is an epoll instance (when /proc is there to say so).
pub fn check_epoll(fd: RawFd, what: &str) -> std::io::Result<RawFd> {
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(target) if target.as_os_str() != "anon_inode:[eventpoll]" => {
            Err(std::io::Error::other(format!(
                "{what}: fd {fd} is {}, not the epoll instance microvm expected",
                target.display()
            )))
        }
        _ => Ok(fd),
    }
}
