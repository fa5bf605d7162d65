//! The microvm VMM: builds a VM from a [`VmConfig`] and runs it to completion.
//!
//! Threads (see docs/architecture.md):
//! - the calling thread, renamed `vmm`, builds everything, spawns the vCPU threads,
//!   installs its own seccomp filter last and then waits in [`event_loop`];
//! - one `vcpu<N>` thread per vCPU runs the KVM_RUN loop in [`vcpu`], under its own filter.
//!
//! Where to look: [`builder`] (VM set-up), [`vcpu`] (run loop and exit dispatch),
//! [`kernel`] (image loading), [`event_loop`] (main thread), [`exit`] (exit codes).

pub mod builder;
pub mod config;
pub mod error;
pub mod event_loop;
pub mod exit;
pub mod kernel;
pub mod terminal;
pub mod vcpu;

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use seccomp::{FilterContext, ThreadKind};
use std::os::unix::thread::JoinHandleExt;

pub use config::{KernelSource, VmConfig, DEFAULT_CMDLINE, MAX_VCPUS};
pub use error::{Error, Result};
pub use exit::VmExit;
pub use seccomp;

/// How long stopping may take before microvm gives up on a vCPU thread.
const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(2);

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
    let mut handles = Vec::with_capacity(vm.vcpus.len());
    for v in vm.vcpus {
        let ctx = FilterContext {
            vcpu_fd: Some(v.fd.as_raw_fd()),
        };
        let filter = seccomp::compile(ThreadKind::Vcpu, cfg.seccomp, &ctx)?;
        handles.push(vcpu::spawn(v, filter, start.clone(), ctl.clone())?);
    }

    let events = event_loop::VmmEvents::new(ctl.clone(), vm.reset_evt, signals, vm.serial, true);
    let event_loop = event_loop::EventLoop::new(events)?;

    // INVARIANT: every thread has been spawned. The main thread's filter goes on last so
    // that no thread inherits it (filters stack), and before the guest runs.
    if let Some(filter) = vmm_filter {
        seccomp::install(&filter)?;
    }
    start.wait();

    let result = event_loop.run();
    stop_vcpus(&ctl, handles);
    result
}

/// Asks every vCPU thread to stop (flag + kick signal, repeated until it has left
/// KVM_RUN) and joins them.
fn stop_vcpus(ctl: &vcpu::VmControl, handles: Vec<vcpu::VcpuHandle>) {
    ctl.stop.store(true, Ordering::Release);
    let deadline = Instant::now() + VCPU_STOP_TIMEOUT;
    let sig = vmm_sys_util::signal::SIGRTMIN();
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
        std::thread::sleep(Duration::from_millis(1));
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
