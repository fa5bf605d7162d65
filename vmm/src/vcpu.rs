//! vCPU threads: the KVM_RUN loop, exit dispatch to the device buses, and the kick that
//! stops a vCPU promptly.
//!
//! Stopping: the main thread sets [`VmControl::stop`] and sends SIGRTMIN to each vCPU
//! thread. The signal handler sets `kvm_run.immediate_exit` through a thread-local pointer,
//! so a signal that lands just before KVM_RUN still makes it return EINTR at once; the
//! loop then sees `stop` and leaves.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use devices::Bus;
use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Error, Result};
use crate::exit::VmExit;
use crate::threads::{self, FilteredThread, Gate};

/// State shared by the main thread and every vCPU thread.
pub struct VmControl {
    /// Set when the VM must stop; vCPU threads check it after every exit.
    pub stop: AtomicBool,
    exit: Mutex<Option<VmExit>>,
    /// Written when a vCPU reports a reason to stop; the main thread waits on it.
    pub exit_evt: EventFd,
    /// vCPUs the guest started (the boot vCPU, and every AP that left its wait-for-SIPI
    /// state), counted as the vCPU threads end.
    pub vcpus_started: AtomicU8,
    /// Spawned threads past their filter install (installed or failed), so that the main
    /// thread checks the sandbox once they all are instead of polling /proc.
    settled: Mutex<usize>,
    settled_cv: Condvar,
}

impl VmControl {
    /// New control block with its exit eventfd.
    pub fn new() -> Result<Self> {
        Ok(VmControl {
            stop: AtomicBool::new(false),
            vcpus_started: AtomicU8::new(0),
            exit: Mutex::new(None),
            settled: Mutex::new(0),
            settled_cv: Condvar::new(),
            exit_evt: EventFd::new(libc::EFD_NONBLOCK).map_err(|source| Error::Host {
                what: "creating the exit eventfd",
                source,
            })?,
        })
    }

    /// Records why the VM stops (the first reason wins) and wakes the main thread.
    pub fn report(&self, reason: VmExit) {
        let mut exit = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if exit.is_none() {
            *exit = Some(reason);
        }
        drop(exit);
        if let Err(e) = self.exit_evt.write(1) {
            log::error!("cannot wake the main thread: {e}");
        }
    }

    /// Records `reason` like [`VmControl::report`] and sets [`VmControl::stop`] at once:
    /// for a failure before the guest runs (a thread without its filter), so that no vCPU
    /// enters the guest.
    pub fn fail(&self, reason: VmExit) {
        self.stop.store(true, Ordering::Release);
        self.report(reason);
    }

    /// Called by a spawned thread once its filter install has succeeded or failed.
    pub fn filter_settled(&self) {
        *self.settled.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.settled_cv.notify_all();
    }

    /// Waits until `threads` spawned threads have called [`VmControl::filter_settled`],
    /// at most `timeout`.
    pub fn wait_filters_settled(&self, threads: usize, timeout: Duration) {
        let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        let _ = (self
            .settled_cv
            .wait_timeout_while(settled, timeout, |n| *n < threads))
        .unwrap_or_else(|p| p.into_inner());
    }

    /// The recorded reason, if any.
    pub fn exit_reason(&self) -> Option<VmExit> {
        self.exit.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

thread_local! {
    /// This thread's kvm_run mapping, for the kick signal handler.
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal handler (SIGRTMIN). It only sets `immediate_exit`: async-signal-safe.
pub extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let ptr = KVM_RUN_PTR.with(Cell::get);
    if !ptr.is_null() {
        // SAFETY: the pointer is set by this thread's vCPU loop to its own live kvm_run
        // mapping and cleared before the mapping goes away; a volatile byte store is
        // async-signal-safe.
        unsafe { std::ptr::addr_of_mut!((*ptr).immediate_exit).write_volatile(1) };
    }
}

/// A vCPU ready to run on its own thread.
pub struct Vcpu {
    /// Index, also the APIC ID.
    pub index: u8,
    /// The KVM vCPU.
    pub fd: VcpuFd,
}

/// The device buses every vCPU dispatches its exits to, shared read-only.
#[derive(Clone)]
pub struct Buses {
    /// Port-I/O bus.
    pub pio: Arc<Bus>,
    /// MMIO bus.
    pub mmio: Arc<Bus>,
}

/// RFLAGS.IF: maskable interrupts enabled.
const RFLAGS_IF: u64 = 1 << 9;

/// What to do after an exit.
enum Next {
    Continue,
    Stop(VmExit),
    InternalError,
}

impl Vcpu {
    /// Its thread's name, `vcpu<N>`.
    pub fn thread_name(&self) -> String {
        format!("vcpu{}", self.index)
    }

    /// Runs the guest until the VM stops or this vCPU fails. Returns why this vCPU stopped
    /// on its own (None when it was asked to stop).
    fn run(&mut self, buses: &Buses, ctl: &VmControl) -> Option<VmExit> {
        KVM_RUN_PTR.with(|p| p.set(self.fd.get_kvm_run() as *mut kvm_run));
        crate::timings::mark(crate::timings::Phase::FirstKvmRun);
        let reason = loop {
            if ctl.stop.load(Ordering::Acquire) {
                break None;
            }
            let next = match self.fd.run() {
                Ok(VcpuExit::Shutdown) => Next::Stop(VmExit::TripleFault {
                    vcpu: self.index,
                    at: self.fd.get_regs().ok().map(|r| (r.rip, r.rsp)),
                }),
                Ok(exit) => handle_exit(self.index, buses, exit),
                Err(e) => match e.errno() {
                    // Kicked: clear the flag the handler set and look at `stop`.
                    libc::EINTR => {
                        self.fd.set_kvm_immediate_exit(0);
                        Next::Continue
                    }
                    // An AP receiving INIT/SIPI, or a transient condition: run again.
                    libc::EAGAIN => Next::Continue,
                    _ => Next::Stop(VmExit::KvmFailure {
                        vcpu: self.index,
                        detail: format!("KVM_RUN failed: {e}"),
                    }),
                },
            };
            match next {
                Next::Continue => {}
                Next::Stop(reason) => break Some(reason),
                Next::InternalError => break Some(self.internal_error()),
            }
        };
        KVM_RUN_PTR.with(|p| p.set(std::ptr::null_mut()));
        if reason.is_none() {
            self.log_where_stopped();
        }
        if self.was_started() {
            ctl.vcpus_started.fetch_add(1, Ordering::AcqRel);
        }
        reason
    }

    /// Says at info level where a vCPU asked to stop left the guest: with a hung guest
    /// killed by SIGTERM, whether each vCPU was halted or running, where, and with
    /// interrupts on or off.
    fn log_where_stopped(&self) {
        let Ok(regs) = self.fd.get_regs() else {
            return;
        };
        let state = match self.fd.get_mp_state().map(|s| s.mp_state) {
            Ok(kvm_bindings::KVM_MP_STATE_RUNNABLE) => "runnable",
            Ok(kvm_bindings::KVM_MP_STATE_HALTED) => "halted",
            Ok(kvm_bindings::KVM_MP_STATE_UNINITIALIZED) => "never started",
            Ok(kvm_bindings::KVM_MP_STATE_INIT_RECEIVED) => "waiting for SIPI",
            _ => "in an unknown state",
        };
        let interrupts = if regs.rflags & RFLAGS_IF != 0 {
            "on"
        } else {
            "off"
        };
        log::info!(
            "vcpu{}: stopped {state} at RIP {:#x}, RSP {:#x}, interrupts {interrupts}",
            self.index,
            regs.rip,
            regs.rsp
        );
    }

    /// Whether the guest ever started this vCPU: the boot vCPU always; an AP once it left
    /// KVM_MP_STATE_UNINITIALIZED (the guest sent it INIT/SIPI). Asked after the run loop,
    /// when this thread is out of KVM_RUN.
    fn was_started(&self) -> bool {
        self.index == 0
            || self.fd.get_mp_state().map_or(true, |s| {
                s.mp_state != kvm_bindings::KVM_MP_STATE_UNINITIALIZED
            })
    }

    /// Describes a KVM_EXIT_INTERNAL_ERROR in plain words.
    fn internal_error(&mut self) -> VmExit {
        let rip = self.fd.get_regs().map(|r| r.rip).ok();
        let run = self.fd.get_kvm_run();
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active
        // member of the union.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let suberror = internal.suberror;
        let ndata = (internal.ndata as usize).min(internal.data.len());
        let data: Vec<String> = internal.data[..ndata]
            .iter()
            .map(|d| format!("{d:#x}"))
            .collect();
        let rip = rip.map_or_else(|| "unknown".to_string(), |r| format!("{r:#x}"));
        let detail = match suberror {
            kvm_bindings::KVM_INTERNAL_ERROR_EMULATION => {
                // SAFETY: for an emulation failure KVM fills the `emulation_failure` member.
                let emu = unsafe { run.__bindgen_anon_1.emulation_failure };
                let bytes = if emu.flags & u64::from(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
                    // SAFETY: the flag says the instruction-bytes member is filled in.
                    let insn = unsafe { emu.__bindgen_anon_1.__bindgen_anon_1 };
                    let n = (insn.insn_size as usize).min(insn.insn_bytes.len());
                    let hex: Vec<String> =
                        insn.insn_bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
                    format!(", instruction bytes {}", hex.join(" "))
                } else {
                    String::new()
                };
                format!(
                    "KVM could not emulate a guest instruction (KVM_EXIT_INTERNAL_ERROR, suberror 1: emulation failure) at RIP {rip}{bytes}. \
                     On hosts without hardware virtualization (VT-x/AMD-V), KVM runs guest kernel code in its instruction emulator, which does not support every instruction"
                )
            }
            kvm_bindings::KVM_INTERNAL_ERROR_SIMUL_EX => format!(
                "KVM hit an exception while delivering another one (KVM_EXIT_INTERNAL_ERROR, suberror 2: simultaneous exceptions) at RIP {rip}; data [{}]",
                data.join(", ")
            ),
            kvm_bindings::KVM_INTERNAL_ERROR_DELIVERY_EV => format!(
                "KVM could not deliver an event to the guest (KVM_EXIT_INTERNAL_ERROR, suberror 3: delivery event) at RIP {rip}; data [{}]",
                data.join(", ")
            ),
            other => format!(
                "KVM reported an internal error (KVM_EXIT_INTERNAL_ERROR, suberror {other}) at RIP {rip}; data [{}]",
                data.join(", ")
            ),
        };
        VmExit::KvmFailure {
            vcpu: self.index,
            detail,
        }
    }
}

/// Dispatches one exit. PIO/MMIO go to the buses; unknown addresses read as all-ones
/// (an empty bus) and are logged at debug level.
fn handle_exit(index: u8, buses: &Buses, exit: VcpuExit) -> Next {
    let (pio, mmio) = (&buses.pio, &buses.mmio);
    match exit {
        VcpuExit::IoIn(port, data) => {
            if !pio.read(u64::from(port), data) {
                data.fill(0xff);
                log::debug!("vcpu{index}: read from unknown port {port:#x}");
            }
            Next::Continue
        }
        VcpuExit::IoOut(port, data) => {
            if !pio.write(u64::from(port), data) {
                log::debug!("vcpu{index}: write {data:x?} to unknown port {port:#x}");
            }
            Next::Continue
        }
        VcpuExit::MmioRead(addr, data) => {
            if !mmio.read(addr, data) {
                data.fill(0xff);
                log::debug!("vcpu{index}: read from unknown MMIO address {addr:#x}");
            }
            Next::Continue
        }
        VcpuExit::MmioWrite(addr, data) => {
            if !mmio.write(addr, data) {
                log::debug!("vcpu{index}: write {data:x?} to unknown MMIO address {addr:#x}");
            }
            Next::Continue
        }
        // With the in-kernel irqchip these are handled by KVM; if one arrives anyway,
        // running again is the right answer.
        VcpuExit::Hlt | VcpuExit::Intr | VcpuExit::IrqWindowOpen => Next::Continue,
        VcpuExit::SystemEvent(kind, _) => Next::Stop(VmExit::SystemEvent { vcpu: index, kind }),
        VcpuExit::FailEntry(reason, cpu) => Next::Stop(VmExit::KvmFailure {
            vcpu: index,
            detail: format!(
                "KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware entry failure reason {reason:#x} on host CPU {cpu})"
            ),
        }),
        VcpuExit::InternalError => Next::InternalError,
        other => Next::Stop(VmExit::KvmFailure {
            vcpu: index,
            detail: format!("unexpected KVM exit {other:?}"),
        }),
    }
}

/// Spawns the thread `vcpu<N>` through [`threads::spawn_filtered`]: it installs `filter`
/// (if any) first, waits at `gate`, then runs the guest.
pub fn spawn(
    mut vcpu: Vcpu,
    buses: Buses,
    filter: Option<seccomp::BpfProgram>,
    gate: Arc<Gate>,
    ctl: Arc<VmControl>,
) -> Result<FilteredThread> {
    let run_ctl = ctl.clone();
    threads::spawn_filtered(vcpu.thread_name(), filter, ctl, move || {
        gate.wait();
        if let Some(reason) = vcpu.run(&buses, &run_ctl) {
            run_ctl.report(reason);
        }
    })
}
