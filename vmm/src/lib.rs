//! The microvm VMM: builds a VM from a [`VmConfig`] and runs it to completion.
//!
//! Threads (see docs/architecture.md):
//! - the calling thread, renamed `vmm`, builds everything, spawns the vCPU threads,
//!   installs its own seccomp filter last and then waits in [`event_loop`];
//! - one `vcpu<N>` thread per vCPU runs the KVM_RUN loop in [`vcpu`], under its own filter;
//! - one `virtio-<kind><N>` thread per virtio device serves its queues ([`device_manager`]),
//!   under its own filter; with `--isolate devices`, one process per device instead, forked
//!   while the `vmm` thread is still the only thread ([`isolate`]);
//! - under `--seccomp log` only, the `seccomp-log` supervisor (spawned first of all, see
//!   `seccomp::start_supervisor`) reports every forbidden call and lets it run.
//!
//! Both kinds are spawned, filtered and stopped through [`threads`].
//!
//! Where to look: [`builder`] (VM set-up), [`vcpu`] (run loop and exit dispatch),
//! [`kernel`] (image loading), [`event_loop`] (main thread), [`exit`] (exit codes),
//! `test_hook` (test builds only: the hook device on port 0x510).

pub mod builder;
pub mod config;
pub mod device_manager;
pub mod error;
pub mod event_loop;
pub mod exit;
pub mod filter_fds;
pub mod grace;
pub mod host_check;
pub mod isolate;
pub mod jail;
pub mod kernel;
pub mod memory;
pub mod sandbox_check;
pub mod terminal;
#[cfg(feature = "test-hooks")]
pub mod test_hook;
pub mod threads;
pub mod timings;
pub mod vcpu;

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use config::{
    BootProtocol, DiskConfig, Isolate, JailConfig, KernelSource, NetConfig, RateLimit, VmConfig,
    DEFAULT_CMDLINE, MAX_VCPUS,
};
pub use error::{Error, Result};
pub use exit::VmExit;
pub use seccomp;

/// Closes every file descriptor above stderr that microvm inherited from whoever started
/// it: no thread should hold an fd it does not need when its filter goes on. Call first
/// thing in `main`, before microvm opens anything itself.
pub fn close_inherited_fds() {
    // SAFETY: close_range(3, ~0, 0) only closes descriptors; nothing in this process uses
    // one yet. On kernels before 5.9 it fails with ENOSYS and nothing is closed.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

/// Names the calling thread (what `ps -T`, `strace --decode-pids=comm` and audit show).
pub fn set_thread_name(name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
    }
}

/// Builds and runs the VM on the calling thread, which becomes the `vmm` thread.
/// Returns why the VM stopped; the caller maps it to an exit code.
pub fn run(cfg: &VmConfig) -> Result<VmExit> {
    set_thread_name("vmm");
    // Process-wide set-up, before any thread exists so that every thread inherits it.
    seccomp::install_violation_reporter(cfg.seccomp)?;
    vmm_sys_util::signal::register_signal_handler(
        vmm_sys_util::signal::SIGRTMIN(),
        vcpu::kick_handler,
    )
    .map_err(|e| Error::Host {
        what: "registering the vCPU kick handler",
        source: std::io::Error::from_raw_os_error(e.errno()),
    })?;
    let signals = event_loop::block_stop_signals()?;
    // The host's files and /dev/kvm are opened first; `--jail` then takes everything else
    // away (returning only in the jailed child) before any guest data is read.
    let inputs = builder::open_inputs(cfg)?;
    if let Some(jail_cfg) = &cfg.jail {
        jail::enter(jail_cfg, cfg.seccomp)?;
    }
    // `--seccomp log`: the supervisor that reports every forbidden call is the first thread
    // (it inherits the blocked stop signals and the jail; every later filter hands it a
    // listener). With `--isolate devices` it starts once the device processes are forked.
    let log = cfg.seccomp == seccomp::Mode::Log;
    if log && cfg.isolate != Isolate::Devices {
        seccomp::start_supervisor()?;
    }
    // Every filter is compiled here, before any thread runs guest code.
    let mut vm = builder::build(cfg, inputs)?;
    log::info!(
        "booting {} ({:?}, {} entry) with {} vCPU(s), {} MiB, ACPI {}, seccomp {}",
        cfg.kernel.describe(),
        vm.kernel.format,
        vm.boot,
        cfg.cpus,
        cfg.memory_mib,
        if cfg.acpi { "on" } else { "off" },
        cfg.seccomp
    );

    let ctl = vm.ctl.clone();
    // `--isolate devices`: the device processes are forked now, from this thread alone (no
    // other thread exists yet), before any device touched guest data.
    let procs = if cfg.isolate == Isolate::Devices {
        let (procs, listeners) = isolate::start(std::mem::take(&mut vm.virtio), cfg.seccomp, &ctl)?;
        if log {
            seccomp::start_supervisor()?;
            isolate::register_listeners(listeners)?;
        }
        vm.vmm_subscribers
            .push(Box::new(isolate::Reaper::new(procs.clone())));
        procs
    } else {
        Arc::default()
    };
    let gate = Arc::new(threads::Gate::default());
    let _terminal = terminal::RawTerminal::enter();
    let buses = vcpu::Buses {
        pio: Arc::new(vm.pio),
        mmio: Arc::new(vm.mmio),
    };
    let (reset, poweroff, signalfd) = (
        vm.reset_evt.as_raw_fd(),
        vm.poweroff_evt.as_raw_fd(),
        signals.as_raw_fd(),
    );
    let events = event_loop::VmmEvents::new(
        ctl.clone(),
        vm.reset_evt,
        vm.poweroff_evt,
        signals,
        vm.serial,
        true,
    );
    // The vmm thread's epoll fd is found by probing the next free fd number, so it is made
    // before any vCPU or device thread exists: under `--seccomp log` each of them creates
    // a listener fd while it installs its filter, which could take that number.
    let host = |what: &'static str| move |source: std::io::Error| Error::Host { what, source };
    let epoll = filter_fds::next_fd().map_err(host("probing the next fd"))?;
    let event_loop = event_loop::EventLoop::new(events, vm.vmm_subscribers)?;
    let epoll = filter_fds::check_epoll(epoll, "vmm").map_err(host("finding the epoll fd"))?;

    let spawned = spawn_threads(vm.vcpus, vm.virtio, &buses, &mut vm.filters, &gate, &ctl)?;

    let vmm_fds = filter_fds::VmmFds {
        epoll,
        exit: ctl.exit_evt.as_raw_fd(),
        reset,
        poweroff,
        signalfd,
        status: None,
        serial_irq: vm.legacy_fds.serial_irq,
        stops: (spawned.devices.iter().map(|d| d.stop_fd()))
            .chain(procs.iter().map(|p| p.stop_fd()))
            .collect(),
        pidfds: procs.iter().map(|p| p.pidfd()).collect(),
        hook: vm.hook_fds.clone(),
        vm: vm.fd.as_raw_fd(),
    };

    // INVARIANT: every thread has been spawned. The main thread's filter goes on last so
    // that no thread inherits it (filters stack), and before the guest runs.
    // The status fd stays open (and so its number taken) until the VM ends.
    let _own_status = if cfg.seccomp != seccomp::Mode::Off {
        let threads = spawned.vcpus.len() + spawned.devices.len();
        let installed = install_own_filter(cfg.seccomp, vmm_fds, &ctl, threads);
        // Also when it failed before its install: no registration is left open.
        seccomp::close_registration();
        Some(installed?)
    } else {
        None
    };
    timings::mark(timings::Phase::VcpusStarted);
    timings::mark_cpu();
    gate.open();
    // Once the guest is released, off its critical path: the grace periods the set-up
    // left (see there); the event loop starts ~5 ms later (or ~15-20 with `--pit on`).
    if cfg.pit {
        if let Err(e) = grace::discard_lost_pit_ticks(&vm.fd) {
            log::warn!("{e}: the PIT keeps replaying lost ticks (a slower teardown, nothing else)");
        }
    }
    if let Err(e) = grace::end_setup_grace_period(&vm.fd) {
        log::debug!("{e}: a guest that ends within ~15 ms waits for its teardown");
    }

    let result = event_loop.run();
    timings::mark(timings::Phase::GuestExit);
    stop_threads(&ctl, spawned);
    isolate::stop(&procs);
    timings::mark(timings::Phase::ThreadsJoined);
    if let Ok(exit) = &result {
        warn_unstarted_vcpus(cfg, exit, ctl.vcpus_started.load(Ordering::Acquire));
    }
    result
}

/// The vCPU and device threads.
struct Spawned {
    vcpus: Vec<threads::FilteredThread>,
    devices: Vec<device_manager::DeviceThread>,
}

/// Spawns every vCPU thread (held at `gate`), then every device thread, each with its
/// filter from `filters`, from this (still unfiltered) thread: never from a vCPU.
fn spawn_threads(
    vcpus: Vec<vcpu::Vcpu>,
    virtio: Vec<device_manager::AttachedDevice>,
    buses: &vcpu::Buses,
    filters: &mut threads::Filters,
    gate: &Arc<threads::Gate>,
    ctl: &Arc<vcpu::VmControl>,
) -> Result<Spawned> {
    let mut spawned = Spawned {
        vcpus: Vec::with_capacity(vcpus.len()),
        devices: Vec::with_capacity(virtio.len()),
    };
    for v in vcpus {
        let filter = filters.take(&v.thread_name());
        let thread = vcpu::spawn(v, buses.clone(), filter, gate.clone(), ctl.clone())?;
        spawned.vcpus.push(thread);
    }
    for dev in virtio {
        let filter = filters.take(dev.name());
        spawned
            .devices
            .push(device_manager::spawn(dev, filter, ctl.clone())?);
    }
    Ok(spawned)
}

/// Waits until the `threads` spawned threads are past their filter install, checks every
/// other thread carries exactly its own filter (or has ended because it could not install
/// it), compiles this thread's (pinned to `fds` and the status file it reads
/// back), installs it and checks it carries exactly that one; otherwise the guest does not
/// run. Returns the status file, to be kept open while the filter lives.
fn install_own_filter(
    mode: seccomp::Mode,
    fds: filter_fds::VmmFds,
    ctl: &vcpu::VmControl,
    threads: usize,
) -> Result<sandbox_check::OwnStatus> {
    // Then one pass over /proc normally finds every filter on; it still polls if not.
    ctl.wait_filters_settled(threads, sandbox_check::INSTALL_TIMEOUT);
    sandbox_check::check_other_threads()?;
    let mut own = sandbox_check::OwnStatus::open()?;
    let ctx = filter_fds::vmm(&filter_fds::VmmFds {
        status: Some(own.as_raw_fd()),
        ..fds
    });
    filter_fds::log("vmm", &ctx);
    if let Some(filter) = seccomp::compile(seccomp::ThreadKind::Vmm, mode, &ctx)? {
        let installed = seccomp::install(&filter);
        // The last filter of the process is on: the `seccomp-log` supervisor starts serving
        // now, before this thread could make a forbidden call it would wait on.
        seccomp::close_registration();
        installed?;
    }
    own.check()?;
    Ok(own)
}

/// Stops the vCPUs (stop flag, then SIGRTMIN kicks until they have left KVM_RUN), then the
/// device threads, and joins them all.
fn stop_threads(ctl: &vcpu::VmControl, spawned: Spawned) {
    ctl.stop.store(true, Ordering::Release);
    threads::stop_and_join(spawned.vcpus, Some(vmm_sys_util::signal::SIGRTMIN()));
    device_manager::stop(spawned.devices);
}

/// One line when the guest ran to an orderly end without starting every vCPU: its kernel
/// did not find them in what microvm described.
fn warn_unstarted_vcpus(cfg: &VmConfig, exit: &VmExit, started: u8) {
    if started >= cfg.cpus || exit.is_error() {
        return;
    }
    let hint = if cfg.acpi {
        "its kernel finds CPUs in the ACPI MADT (CONFIG_ACPI) or, with --acpi off, the MP table (CONFIG_X86_MPPARSE)"
    } else {
        "with --acpi off its kernel must read the MP table (CONFIG_X86_MPPARSE); try --acpi on"
    };
    log::warn!("the guest started {started} of {} vCPUs: {hint}", cfg.cpus);
}
