//! vCPU threads: the KVM_RUN loop, exit dispatch to the device buses, and the kick that
//! stops a vCPU promptly.
//!
//! Stopping: the main thread sets [`VmControl::stop`] and sends SIGRTMIN to each vCPU
//! thread. The signal handler sets `kvm_run.immediate_exit` through a thread-local pointer,
//! so a signal that lands just before KVM_RUN still makes it return EINTR at once; the
//! loop then sees `stop` and leaves.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;

use devices::Bus;
use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Error, Result};
use crate::exit::VmExit;

/// State shared by the main thread and every vCPU thread.
pub struct VmControl {
    /// Set when the VM must stop; vCPU threads check it after every exit.
    pub stop: AtomicBool,
    exit: Mutex<Option<VmExit>>,
    /// Written when a vCPU reports a reason to stop; the main thread waits on it.
    pub exit_evt: EventFd,
}

impl VmControl {
    /// New control block with its exit eventfd.
    pub fn new() -> Result<Self> {
        Ok(VmControl {
            stop: AtomicBool::new(false),
            exit: Mutex::new(None),
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

    /// The recorded reason, if any. The `vmm` thread polls it after every event, which is
    /// also where the test hook (feature `test-hooks`) runs its vmm-side request.
    pub fn exit_reason(&self) -> Option<VmExit> {
        #[cfg(feature = "test-hooks")]
        test_hook::on_vmm_wakeup();
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
    /// Port-I/O bus.
    pub pio: Arc<Bus>,
    /// MMIO bus.
    pub mmio: Arc<Bus>,
}

/// What to do after an exit.
enum Next {
    Continue,
    Stop(VmExit),
    InternalError,
}

impl Vcpu {
    /// Runs the guest until the VM stops or this vCPU fails. Returns why this vCPU stopped
    /// on its own (None when it was asked to stop).
    fn run(&mut self, ctl: &VmControl) -> Option<VmExit> {
        KVM_RUN_PTR.with(|p| p.set(self.fd.get_kvm_run() as *mut kvm_run));
        crate::timings::mark(crate::timings::Phase::FirstKvmRun);
        let reason = loop {
            if ctl.stop.load(Ordering::Acquire) {
                break None;
            }
            let next = match self.fd.run() {
                Ok(exit) => handle_exit(self.index, &self.pio, &self.mmio, exit),
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
        reason
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
fn handle_exit(index: u8, pio: &Bus, mmio: &Bus, exit: VcpuExit) -> Next {
    match exit {
        #[cfg(feature = "test-hooks")]
        VcpuExit::IoIn(test_hook::PORT, data) => {
            data.fill(test_hook::status());
            Next::Continue
        }
        #[cfg(feature = "test-hooks")]
        VcpuExit::IoOut(test_hook::PORT, data) => {
            test_hook::request(index, data);
            Next::Continue
        }
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
        VcpuExit::Shutdown => Next::Stop(VmExit::TripleFault { vcpu: index }),
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

/// A running vCPU thread.
pub struct VcpuHandle {
    /// vCPU index.
    pub index: u8,
    /// The thread.
    pub thread: JoinHandle<()>,
    /// Set by the thread when it leaves its loop.
    pub finished: Arc<AtomicBool>,
}

/// Spawns the thread `vcpu<N>`. It installs `filter` (if any) first, waits on `start`,
/// then runs the guest.
pub fn spawn(
    mut vcpu: Vcpu,
    filter: Option<seccomp::BpfProgram>,
    start: Arc<Barrier>,
    ctl: Arc<VmControl>,
) -> Result<VcpuHandle> {
    let index = vcpu.index;
    let name = format!("vcpu{index}");
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // INVARIANT: the filter goes on before this thread touches anything the guest
            // controls (its first KVM_RUN).
            if let Some(filter) = filter {
                if let Err(e) = seccomp::install(&filter) {
                    ctl.report(VmExit::KvmFailure {
                        vcpu: index,
                        detail: format!("cannot install the vcpu seccomp filter: {e}"),
                    });
                    start.wait();
                    done.store(true, Ordering::Release);
                    return;
                }
            }
            start.wait();
            if let Some(reason) = vcpu.run(&ctl) {
                ctl.report(reason);
            }
            done.store(true, Ordering::Release);
        })
        .map_err(|source| Error::Spawn { name, source })?;
    Ok(VcpuHandle {
        index,
        thread,
        finished,
    })
}

/// Test-only hook device on port 0x510 (cargo feature `test-hooks`): the tiny guest's
/// `seccomp-hook` scenario makes a chosen thread attempt a forbidden system call
/// (`getppid`), so the tests can check what each `--seccomp` mode does end to end.
#[cfg(feature = "test-hooks")]
pub mod test_hook {
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

    /// The port.
    pub const PORT: u16 = 0x510;
    /// Guest writes this: the writing vCPU thread makes the call itself.
    const SELF: u8 = 1;
    /// Guest writes this: the vmm thread makes the call when it next wakes up.
    const VMM: u8 = 2;
    /// Guest writes this: the next virtio device thread to wake up (on the guest's next
    /// queue notify) makes the call.
    const DEVICE: u8 = 3;
    /// Status bits the guest reads back.
    const VMM_DID: u8 = 1;
    const DEVICE_DID: u8 = 2;

    static VMM_PENDING: AtomicBool = AtomicBool::new(false);
    static DEVICE_PENDING: AtomicBool = AtomicBool::new(false);
    static VMM_DONE: AtomicU8 = AtomicU8::new(0);
    static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

    /// The eventfd that wakes the vmm thread (its exit eventfd).
    pub fn set_wake_fd(fd: RawFd) {
        WAKE_FD.store(fd, Ordering::Release);
    }

    /// What the guest reads: bit 0 once the vmm thread made its call, bit 1 once a device
    /// thread did.
    pub(crate) fn status() -> u8 {
        VMM_DONE.load(Ordering::Acquire)
    }

    /// A guest write on vCPU `index`.
    pub(crate) fn request(index: u8, data: &[u8]) {
        match data.first().copied() {
            Some(SELF) => forbidden_call(&format!("vcpu{index}")),
            Some(VMM) => {
                VMM_PENDING.store(true, Ordering::Release);
                let fd = WAKE_FD.load(Ordering::Acquire);
                // SAFETY: writes 8 bytes from a local u64 to the exit eventfd (or fails on -1).
                unsafe { libc::write(fd, (&1u64 as *const u64).cast(), 8) };
            }
            Some(DEVICE) => DEVICE_PENDING.store(true, Ordering::Release),
            other => log::warn!("test hook: unknown request {other:?}"),
        }
    }

    /// Runs a pending vmm-side request; called on the vmm thread.
    pub(crate) fn on_vmm_wakeup() {
        if VMM_PENDING.swap(false, Ordering::AcqRel) {
            forbidden_call("vmm");
            VMM_DONE.fetch_or(VMM_DID, Ordering::AcqRel);
        }
    }

    /// Runs a pending device-side request; called by each device thread after it woke up.
    pub(crate) fn on_device_wakeup(thread: &str) {
        if DEVICE_PENDING.swap(false, Ordering::AcqRel) {
            forbidden_call(thread);
            VMM_DONE.fetch_or(DEVICE_DID, Ordering::AcqRel);
        }
    }

    fn forbidden_call(thread: &str) {
        log::info!("test hook: {thread} calls getppid, which no filter allows");
        // SAFETY: getppid has no arguments and no side effects.
        let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
        log::info!("test hook: getppid returned {ppid} on {thread}");
    }
}
