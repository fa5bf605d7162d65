//! The microvm VMM: builds a VM from a [`VmConfig`] and runs it to completion.
//!
//! Threads (see docs/architecture.md):
//! - the calling thread, renamed `vmm`, builds everything, spawns the vCPU threads,
//!   installs its own seccomp filter last and then waits in [`event_loop`];
//! - one `vcpu<N>` thread per vCPU runs the KVM_RUN loop in [`vcpu`], under its own filter;
//! - one `virtio-<kind><N>` thread per virtio device serves its queues ([`device_manager`]),
//!   under its own filter.
//!
//! Where to look: [`builder`] (VM set-up), [`vcpu`] (run loop and exit dispatch),
//! [`kernel`] (image loading), [`event_loop`] (main thread), [`exit`] (exit codes).

pub mod builder;
pub mod config;
pub mod device_manager;
pub mod error;
pub mod event_loop;
pub mod exit;
pub mod host_check;
pub mod kernel;
pub mod sandbox_check;
pub mod terminal;
pub mod timings;
pub mod vcpu;

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use seccomp::{FilterContext, ThreadKind};
use std::os::unix::thread::JoinHandleExt;

pub use config::{
    BootProtocol, DiskConfig, KernelSource, NetConfig, VmConfig, DEFAULT_CMDLINE, MAX_VCPUS,
};
pub use error::{Error, Result};
pub use exit::VmExit;
pub use seccomp;

/// How long stopping may take before microvm gives up on a vCPU thread.
const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(2);

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

    let vm = builder::build(cfg)?;
    log::info!(
        "booting {} ({:?}, entry {:#x}) with {} vCPU(s), {} MiB, seccomp {}",
        cfg.kernel.describe(),
        vm.kernel.format,
        vm.kernel.entry,
        cfg.cpus,
        cfg.memory_mib,
        cfg.seccomp
    );

    // Filters are compiled before any thread runs guest code.
    let vmm_filter = seccomp::compile(ThreadKind::Vmm, cfg.seccomp, &FilterContext::default())?;
    let ctl = vm.ctl.clone();
    let start = Arc::new(Barrier::new(vm.vcpus.len() + 1));
    let _terminal = terminal::RawTerminal::enter();
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("MICROVM_TEST_STACK_FILTER").is_some() {
        // Test only: an allow-all filter on the main thread before it spawns, which every
        // thread then inherits under its own; the sandbox check must refuse to run.
        let allow_all = seccomp::BpfProgram::from([seccompiler_allow_all()]);
        seccomp::install(&allow_all)?;
    }
    let mut handles = Vec::with_capacity(vm.vcpus.len());
    for v in vm.vcpus {
        let ctx = FilterContext {
            vcpu_fd: Some(v.fd.as_raw_fd()),
            ..Default::default()
        };
        let filter = seccomp::compile(ThreadKind::Vcpu, cfg.seccomp, &ctx)?;
        handles.push(vcpu::spawn(v, filter, start.clone(), ctl.clone())?);
    }

    // Device threads, also spawned by this (still unfiltered) thread, never by a vCPU.
    let mut device_threads = Vec::with_capacity(vm.virtio.len());
    for dev in vm.virtio {
        let filter = seccomp::compile(dev.kind(), cfg.seccomp, dev.filter_context())?;
        device_threads.push(device_manager::spawn(dev, filter)?);
    }

    #[cfg(feature = "test-hooks")]
    vcpu::test_hook::set_wake_fd(ctl.exit_evt.as_raw_fd());
    let events = event_loop::VmmEvents::new(ctl.clone(), vm.reset_evt, signals, vm.serial, true);
    let event_loop = event_loop::EventLoop::new(events)?;

    // INVARIANT: every thread has been spawned. The main thread's filter goes on last so
    // that no thread inherits it (filters stack), and before the guest runs.
    if let Some(filter) = vmm_filter {
        // Every other thread must carry exactly its own filter, and so must this one once
        // it is installed; otherwise the guest does not run.
        sandbox_check::check_other_threads()?;
        let own = sandbox_check::OwnStatus::open()?;
        seccomp::install(&filter)?;
        own.check()?;
    }
    timings::mark(timings::Phase::VcpusStarted);
    timings::mark_cpu();
    start.wait();

    let result = event_loop.run();
    timings::mark(timings::Phase::GuestExit);
    stop_vcpus(&ctl, handles);
    device_manager::stop(device_threads);
    result
}

/// Asks every vCPU thread to stop (flag + kick signal, repeated until it has left
/// KVM_RUN) and joins them.
fn stop_vcpus(ctl: &vcpu::VmControl, handles: Vec<vcpu::VcpuHandle>) {
    ctl.stop.store(true, Ordering::Release);
    let deadline = Instant::now() + VCPU_STOP_TIMEOUT;
    let sig = vmm_sys_util::signal::SIGRTMIN();
    // A kicked vCPU leaves KVM_RUN within microseconds: poll quickly at first, then back off.
    let mut pause = Duration::from_micros(20);
    loop {
        let mut running = 0;
        for h in handles
            .iter()
            .filter(|h| !h.finished.load(Ordering::Acquire))
        {
            running += 1;
            // SAFETY: the thread has not been joined, so its pthread_t is valid.
            unsafe { libc::pthread_kill(h.thread.as_pthread_t(), sig) };
        }
        if running == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
    for h in handles {
        if h.finished.load(Ordering::Acquire) {
            let _ = h.thread.join();
        } else {
            log::error!(
                "vcpu{} did not stop within {:?}; exiting anyway",
                h.index,
                VCPU_STOP_TIMEOUT
            );
        }
    }
}

/// A one-instruction BPF program: SECCOMP_RET_ALLOW (test hook only).
#[cfg(feature = "test-hooks")]
fn seccompiler_allow_all() -> seccomp::SockFilter {
    seccomp::SockFilter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0x7fff_0000, // SECCOMP_RET_ALLOW
    }
}
