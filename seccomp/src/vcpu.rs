//! The `vcpu` thread: runs the KVM_RUN loop and emulates port-I/O/MMIO exits.
//!
//! Everything an exit needs beyond KVM_RUN goes through the mmapped `kvm_run` area (exit data,
//! `immediate_exit`) or through syscalls already in the common list: `write` (UART to fd 1,
//! logs to fd 2, interrupt and reset eventfds), `futex`/`sched_yield` (device locks, channels),
//! `rt_sigreturn` (the SIGRTMIN kick handler returns, KVM_RUN fails with EINTR). So the ioctls
//! are KVM_RUN (checked first) and KVM_GET_REGS (read-only, to report RIP when KVM fails an
//! entry or hits an internal error), pinned to the thread's own vCPU fd when it is known.

use crate::ioctls::{KVM_GET_REGS, KVM_RUN};
use crate::rule::{ArgRule, Ioctl, SyscallRule};
use crate::{FilterContext, KindSpec};

/// The vcpu kind: name, rules, and `ioctl` checked first (it is the per-exit syscall).
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "vcpu",
    rules,
    hot: &[libc::SYS_ioctl],
};

fn rules(ctx: &FilterContext) -> Vec<SyscallRule> {
    let mut rules = crate::common::rules(&[]);
    rules.push(SyscallRule::new(
        "ioctl",
        libc::SYS_ioctl,
        "KVM_RUN (+ KVM_GET_REGS) on this thread's vCPU fd only",
        ArgRule::Ioctls {
            fd: ctx.vcpu_fd,
            requests: vec![
                Ioctl {
                    name: "KVM_RUN",
                    request: KVM_RUN(),
                    reason: "enter the guest; every exit comes back here",
                },
                Ioctl {
                    name: "KVM_GET_REGS",
                    request: KVM_GET_REGS(),
                    reason: "read RIP for the report of a failed entry / internal error",
                },
            ],
        },
    ));
    rules
}
