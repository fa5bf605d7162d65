//! `--timings`: phase timestamps of one run, in microseconds since `main` started.
//!
//! Each phase is recorded once (the first mark wins) as a relaxed atomic store of the time
//! elapsed since [`start`]; nothing allocates, and the vCPU thread marks only once, before
//! its first KVM_RUN, so the exit path pays nothing. [`report`] formats them at exit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The phases, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The command line is parsed.
    Args,
    /// /dev/kvm opened, VM created with its irqchip and PIT.
    KvmSetup,
    /// Guest RAM allocated and registered.
    Memory,
    /// Kernel, initramfs, command line and boot structures written.
    KernelLoad,
    /// Every thread spawned and the `vmm` filter installed; the guest is released.
    VcpusStarted,
    /// The first vCPU thread enters KVM_RUN.
    FirstKvmRun,
    /// The VM stopped (the event loop returned).
    GuestExit,
    /// Every vCPU and device thread stopped and joined.
    ThreadsJoined,
    /// The VM's resources released (or left to process exit), terminal restored: the last
    /// mark before `main` returns.
    Teardown,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 9] = [
        Phase::Args,
        Phase::KvmSetup,
        Phase::Memory,
        Phase::KernelLoad,
        Phase::VcpusStarted,
        Phase::FirstKvmRun,
        Phase::GuestExit,
        Phase::ThreadsJoined,
        Phase::Teardown,
    ];

    /// The name printed by [`report`].
    pub fn name(self) -> &'static str {
        match self {
            Phase::Args => "args",
            Phase::KvmSetup => "kvm_setup",
            Phase::Memory => "memory",
            Phase::KernelLoad => "kernel_load",
            Phase::VcpusStarted => "vcpus_started",
            Phase::FirstKvmRun => "first_kvm_run",
            Phase::GuestExit => "guest_exit",
            Phase::ThreadsJoined => "threads_joined",
            Phase::Teardown => "teardown",
        }
    }
}

static T0: OnceLock<Instant> = OnceLock::new();
/// Nanoseconds since T0 + 1 per phase (0 = not reached).
static MARKS: [AtomicU64; Phase::ALL.len()] = [const { AtomicU64::new(0) }; Phase::ALL.len()];
/// Process CPU time (user + sys, ns + 1) when the guest was released.
static CPU_AT_START: AtomicU64 = AtomicU64::new(0);

/// Sets the time origin; call first thing in `main`.
pub fn start() {
    let _ = T0.get_or_init(Instant::now);
}

/// Records `phase` now, unless it was recorded already.
pub fn mark(phase: Phase) {
    if let Some(t0) = T0.get() {
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        let _ = MARKS[phase as usize].compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Records the process's CPU time (all threads, user + sys) so far: called by the `vmm`
/// thread when it releases the vCPUs, which is the VMM's CPU cost up to the first KVM_RUN.
pub fn mark_cpu() {
    if T0.get().is_none() {
        return;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
        let ns = (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64);
        CPU_AT_START.store(ns.saturating_add(1), Ordering::Relaxed);
    }
}

/// One line: `microvm: timings (us since main): args=12 kvm_setup=345 ... cpu_at_start=678`;
/// a phase that was not reached prints `-`.
pub fn report() -> String {
    let mut out = String::from("microvm: timings (us since main):");
    for phase in Phase::ALL {
        match MARKS[phase as usize].load(Ordering::Relaxed) {
            0 => out.push_str(&format!(" {}=-", phase.name())),
            ns => out.push_str(&format!(" {}={}", phase.name(), (ns - 1) / 1000)),
        }
    }
    match CPU_AT_START.load(Ordering::Relaxed) {
        0 => out.push_str(" cpu_at_start=-"),
        ns => out.push_str(&format!(" cpu_at_start={}", (ns - 1) / 1000)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_first_wins_and_reported_in_order() {
        start();
        mark(Phase::Args);
        let first = MARKS[Phase::Args as usize].load(Ordering::Relaxed);
        mark(Phase::Args);
        assert_eq!(first, MARKS[Phase::Args as usize].load(Ordering::Relaxed));
        mark_cpu();
        let r = report();
        let names: Vec<&str> = r
            .split_whitespace()
            .skip(5)
            .filter_map(|kv| kv.split('=').next())
            .collect();
        assert_eq!(
            names,
            [
                "args",
                "kvm_setup",
                "memory",
                "kernel_load",
                "vcpus_started",
                "first_kvm_run",
                "guest_exit",
                "threads_joined",
                "teardown",
                "cpu_at_start"
            ]
        );
        assert!(!r.contains("cpu_at_start=-"), "{r}");
    }
}
