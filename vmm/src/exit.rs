//! Why a VM stopped, and the process exit code each reason maps to.
//!
//! The contract (also printed by `microvm --help` and in docs/architecture.md):
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | the guest reset, powered off or shut the machine down |
//! | 1    | bad input or a set-up error (one error line on stderr) |
//! | 2    | bad command-line usage |
//! | 3    | the guest triple-faulted (KVM_EXIT_SHUTDOWN) |
//! | 4    | KVM could not run the guest (internal/emulation error, failed entry, unexpected exit) |
//! | 5    | a thread could not install its seccomp filter; the guest did not run (one error line) |
//! | 129, 130, 143 | stopped by SIGHUP / SIGINT / SIGTERM |
//! | seccomp::EXIT_SECCOMP_VIOLATION | a thread made a forbidden system call under `--seccomp true` |

use std::fmt;

/// Exit code: the guest reset or shut down.
pub const EXIT_OK: i32 = 0;
/// Exit code: bad input or a set-up failure.
pub const EXIT_ERROR: i32 = 1;
/// RIP of a vCPU after reset (with CS base 0xffff0000: the reset vector).
const RESET_RIP: u64 = 0xfff0;

/// Exit code: the guest triple-faulted.
pub const EXIT_TRIPLE_FAULT: i32 = 3;
/// Exit code: KVM could not run the guest.
pub const EXIT_KVM_ERROR: i32 = 4;
/// Exit code: a thread could not install its seccomp filter.
pub const EXIT_FILTER_INSTALL: i32 = 5;

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest asked for a reset through the i8042 controller.
    Reset,
    /// The guest powered off through the ACPI sleep control register (S5).
    PowerOff,
    /// A vCPU reported a KVM system event (shutdown or reset).
    SystemEvent {
        /// vCPU index.
        vcpu: u8,
        /// KVM_SYSTEM_EVENT_* type.
        kind: u32,
    },
    /// A vCPU triple-faulted (KVM_EXIT_SHUTDOWN).
    TripleFault {
        /// vCPU index.
        vcpu: u8,
        /// Its RIP and RSP at the fault, when KVM_GET_REGS could read them.
        at: Option<(u64, u64)>,
    },
    /// KVM could not run a vCPU; `detail` says why in plain words.
    KvmFailure {
        /// vCPU index.
        vcpu: u8,
        /// Human-readable description including the KVM exit and its data.
        detail: String,
    },
    /// A thread could not install its seccomp filter, so microvm stopped before the guest
    /// ran.
    FilterInstall {
        /// The thread, e.g. `vcpu1` or `virtio-rng0`.
        thread: String,
        /// What install reported.
        detail: String,
    },
    /// A host signal asked microvm to stop.
    Signal(i32),
}

impl VmExit {
    /// The process exit code for this reason.
    pub fn exit_code(&self) -> i32 {
        match self {
            VmExit::Reset | VmExit::PowerOff => EXIT_OK,
            VmExit::SystemEvent { kind, .. } => {
                // KVM_SYSTEM_EVENT_CRASH is a guest crash, not an orderly stop.
                if *kind == kvm_bindings::KVM_SYSTEM_EVENT_CRASH {
                    EXIT_KVM_ERROR
                } else {
                    EXIT_OK
                }
            }
            VmExit::TripleFault { .. } => EXIT_TRIPLE_FAULT,
            VmExit::KvmFailure { .. } => EXIT_KVM_ERROR,
            VmExit::FilterInstall { .. } => EXIT_FILTER_INSTALL,
            VmExit::Signal(sig) => 128 + sig,
        }
    }

    /// True when the stop is an error the user should be told about.
    pub fn is_error(&self) -> bool {
        self.exit_code() != EXIT_OK && !matches!(self, VmExit::Signal(_))
    }
}

impl fmt::Display for VmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmExit::Reset => write!(f, "the guest reset the machine (i8042 reset)"),
            VmExit::PowerOff => write!(f, "the guest powered off (ACPI S5)"),
            VmExit::SystemEvent { vcpu, kind } => {
                let what = match *kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => "shutdown",
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => "reset",
                    kvm_bindings::KVM_SYSTEM_EVENT_CRASH => "crash",
                    _ => "unknown event",
                };
                write!(f, "vcpu{vcpu}: the guest requested a {what} (KVM_EXIT_SYSTEM_EVENT type {kind})")
            }
            VmExit::TripleFault { vcpu, at } => {
                write!(
                    f,
                    "vcpu{vcpu}: the guest triple-faulted (KVM_EXIT_SHUTDOWN): it hit an exception it could not handle"
                )?;
                match at {
                    // AMD's KVM re-initialises the vCPU on a shutdown intercept.
                    Some((RESET_RIP, _)) => write!(
                        f,
                        " (its registers were reset by KVM, as on AMD hosts: where it faulted is lost)"
                    ),
                    Some((rip, rsp)) => write!(
                        f,
                        " at RIP {rip:#x}, RSP {rsp:#x} (look RIP up in the kernel's System.map)"
                    ),
                    None => Ok(()),
                }
            }
            VmExit::KvmFailure { vcpu, detail } => write!(f, "vcpu{vcpu}: {detail}"),
            VmExit::FilterInstall { thread, detail } => write!(
                f,
                "thread {thread} could not install its seccomp filter ({detail}); the guest did not run"
            ),
            VmExit::Signal(sig) => write!(f, "stopped by host signal {}", signal_name(*sig)),
        }
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_class() {
        assert_eq!(VmExit::Reset.exit_code(), 0);
        assert_eq!(VmExit::TripleFault { vcpu: 0, at: None }.exit_code(), 3);
        let kvm = VmExit::KvmFailure {
            vcpu: 1,
            detail: "x".into(),
        };
        assert_eq!(kvm.exit_code(), 4);
        assert!(kvm.is_error());
        assert_eq!(VmExit::Signal(libc::SIGTERM).exit_code(), 143);
        assert!(!VmExit::Signal(libc::SIGINT).is_error());
        let crash = VmExit::SystemEvent {
            vcpu: 0,
            kind: kvm_bindings::KVM_SYSTEM_EVENT_CRASH,
        };
        assert_eq!(crash.exit_code(), 4);
        let install = VmExit::FilterInstall {
            thread: "vcpu1".into(),
            detail: "x".into(),
        };
        assert_eq!(install.exit_code(), 5);
        assert!(install.is_error());
    }

    #[test]
    fn messages_name_the_vcpu_and_the_exit() {
        let m = VmExit::TripleFault { vcpu: 2, at: None }.to_string();
        assert!(
            m.starts_with("vcpu2:") && m.contains("KVM_EXIT_SHUTDOWN"),
            "{m}"
        );
        let m = VmExit::TripleFault {
            vcpu: 1,
            at: Some((0xffff_ffff_8100_0000, 0x1000)),
        }
        .to_string();
        assert!(m.contains("at RIP 0xffffffff81000000, RSP 0x1000"), "{m}");
    }
}
