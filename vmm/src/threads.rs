//! One way to run a thread under its own seccomp filter, for vCPUs and virtio devices
//! alike (and the seam for running a device in a process of its own later):
//!
//! - [`spawn_filtered`] names the thread, installs its filter first thing, before the
//!   thread touches anything the guest controls, and only then runs its body. A thread
//!   that cannot install its filter runs nothing: it reports
//!   [`VmExit::FilterInstall`](crate::exit::VmExit::FilterInstall) through [`VmControl`]
//!   (which also stops the VM, so the guest does not run) and ends; the `vmm` thread then
//!   stops, joins and restores the terminal as for any other stop reason.
//! - [`stop_and_join`] waits, up to [`STOP_TIMEOUT`], for threads that were asked to stop,
//!   nudging each with a signal meanwhile if asked to, and joins those that ended.
//! - [`Gate`] holds threads (the vCPUs) until the `vmm` thread lets the guest run.
//! - [`helper`] runs one step of the VM's set-up beside the builder, on a short-lived,
//!   unfiltered thread that has ended before any thread gets its filter.
//!
//! Every such thread is spawned by the `vmm` thread before it installs its own filter, so
//! no filter is inherited (see docs/architecture.md, "Nothing stacks").

use std::collections::BTreeMap;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use seccomp::BpfProgram;

use crate::error::{Error, Result};
use crate::exit::VmExit;
use crate::vcpu::VmControl;

/// How long stopping may take before microvm gives up on a thread and exits anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Every thread's compiled filter, by thread name (`vmm`, `vcpu0`, `virtio-rng0`, ...).
/// Compiled on the `vmm` thread before any thread is spawned; empty under
/// `--seccomp false`.
#[derive(Default)]
pub struct Filters {
    by_thread: BTreeMap<String, BpfProgram>,
}

impl Filters {
    /// Records the filter of `thread` (nothing when `filter` is None).
    pub fn insert(&mut self, thread: String, filter: Option<BpfProgram>) {
        if let Some(filter) = filter {
            self.by_thread.insert(thread, filter);
        }
    }

    /// Takes the filter of `thread`, to hand it to the thread.
    pub fn take(&mut self, thread: &str) -> Option<BpfProgram> {
        self.by_thread.remove(thread)
    }

    /// The filter of `thread`, to change before it is handed over.
    pub fn get_mut(&mut self, thread: &str) -> Option<&mut BpfProgram> {
        self.by_thread.get_mut(thread)
    }

    /// The threads that have a filter.
    pub fn names(&self) -> Vec<String> {
        self.by_thread.keys().cloned().collect()
    }
}

/// A thread spawned by [`spawn_filtered`].
pub struct FilteredThread {
    name: String,
    handle: JoinHandle<()>,
    finished: Arc<AtomicBool>,
}

impl FilteredThread {
    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

/// Spawns the thread `name`: it installs `filter` (if any) first, then runs `body`. If the
/// install fails, `body` never runs: the thread reports the failure through `ctl`, which
/// stops the VM, and ends.
pub fn spawn_filtered<F>(
    name: String,
    filter: Option<BpfProgram>,
    ctl: Arc<VmControl>,
    body: F,
) -> Result<FilteredThread>
where
    F: FnOnce() + Send + 'static,
{
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let thread_name = name.clone();
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // INVARIANT: the filter goes on before the body touches anything the guest
            // controls.
            let installed = filter.map_or(Ok(()), |f| seccomp::install(&f));
            ctl.filter_settled();
            match installed {
                Ok(()) => body(),
                Err(e) => ctl.fail(VmExit::FilterInstall {
                    thread: thread_name,
                    detail: e.to_string(),
                }),
            }
            done.store(true, Ordering::Release);
        })
        .map_err(|source| Error::Spawn {
            name: name.clone(),
            source,
        })?;
    Ok(FilteredThread {
        name,
        handle,
        finished,
    })
}

/// Waits until every thread of `threads` has ended, at most [`STOP_TIMEOUT`], and joins
/// them. The caller has asked them to stop; with `kick`, each thread still running is sent
/// that signal on every round (a vCPU inside KVM_RUN leaves it only when signalled).
pub fn stop_and_join(threads: Vec<FilteredThread>, kick: Option<libc::c_int>) {
    let deadline = Instant::now() + STOP_TIMEOUT;
    // A kicked vCPU leaves KVM_RUN within microseconds: poll quickly at first, then back off.
    let mut pause = Duration::from_micros(20);
    loop {
        let running: Vec<&FilteredThread> = threads.iter().filter(|t| !t.is_finished()).collect();
        if let Some(sig) = kick {
            for t in &running {
                // SAFETY: the thread has not been joined, so its pthread_t is valid.
                unsafe { libc::pthread_kill(t.handle.as_pthread_t(), sig) };
            }
        }
        if running.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
    for t in threads {
        if t.is_finished() {
            let _ = t.handle.join();
        } else {
            log::error!(
                "{} did not stop within {STOP_TIMEOUT:?}; exiting anyway",
                t.name
            );
        }
    }
}

/// Holds threads until the `vmm` thread opens it, once.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Blocks until [`Gate::open`] was called.
    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Lets every waiting thread, and every later one, through.
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program the kernel refuses: a misaligned load (seccomp allows only aligned loads
    /// inside `struct seccomp_data`).
    fn refused() -> BpfProgram {
        vec![
            seccomp::SockFilter {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: 1,
            },
            seccomp::SockFilter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ALLOW,
            },
        ]
    }

    #[test]
    fn a_refused_filter_is_reported_and_the_body_never_runs() {
        let ctl = Arc::new(VmControl::new().unwrap());
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let t = spawn_filtered("refused0".into(), Some(refused()), ctl.clone(), move || {
            flag.store(true, Ordering::Release)
        })
        .unwrap();
        stop_and_join(vec![t], None);
        assert!(!ran.load(Ordering::Acquire));
        assert!(ctl.stop.load(Ordering::Acquire));
        match ctl.exit_reason() {
            Some(VmExit::FilterInstall { thread, detail }) => {
                assert_eq!(thread, "refused0");
                assert!(detail.contains("Invalid argument"), "{detail}");
            }
            other => panic!("unexpected exit reason {other:?}"),
        }
    }

    #[test]
    fn without_a_filter_the_body_runs_and_the_gate_lets_it_through() {
        let ctl = Arc::new(VmControl::new().unwrap());
        let gate = Arc::new(Gate::default());
        let ran = Arc::new(AtomicBool::new(false));
        let (flag, held) = (ran.clone(), gate.clone());
        let t = spawn_filtered("plain0".into(), None, ctl.clone(), move || {
            held.wait();
            flag.store(true, Ordering::Release)
        })
        .unwrap();
        assert_eq!(t.name(), "plain0");
        gate.open();
        stop_and_join(vec![t], None);
        assert!(ran.load(Ordering::Acquire));
        assert_eq!(ctl.exit_reason(), None);
    }
}
