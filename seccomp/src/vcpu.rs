//! The `vcpu` thread: runs the KVM_RUN loop and emulates port-I/O/MMIO exits.
//!
//! Everything an exit needs beyond KVM_RUN goes through the mmapped `kvm_run` area (exit data,
//! `immediate_exit`) or through syscalls already in the common list: `write` (UART to fd 1,
//! logs to fd 2, interrupt and reset eventfds), `futex`/`sched_yield` (device locks, channels),
//! `rt_sigreturn` (the SIGRTMIN kick handler returns, KVM_RUN fails with EINTR). So the ioctls
//! are KVM_RUN (checked first), KVM_GET_REGS (read-only, to report RIP when KVM fails an
//! entry, hits an internal error or the guest triple-faults) and KVM_GET_MP_STATE
//! (read-only, once the VM stopped: was this vCPU ever started), pinned to the thread's own
//! vCPU fd.

use crate::common::Io;
use crate::ioctls::{KVM_GET_MP_STATE, KVM_GET_REGS, KVM_RUN};
use crate::rule::{ArgRule, Ioctl, SyscallRule};
use crate::KindSpec;

/// The vcpu kind: name, rules, and `ioctl` checked first (it is the per-exit syscall).
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "vcpu",
    rules,
    hot: &[libc::SYS_ioctl],
};

fn rules() -> Vec<SyscallRule> {
    let io = Io {
        // A vCPU reads nothing but the replies of isolated devices (`--isolate devices`, no
        // fd otherwise): the UART's input FIFO is memory, exits come through kvm_run.
        read: &["proxy:virtio"],
        // Console output first (one write per line), the register requests to isolated
        // devices, then the interrupt and event lines its exits trigger.
        write: &[
            "stdout",
            "proxy:virtio",
            "irq:serial",
            "state:virtio",
            "notify:virtio",
            "irq:i8042",
            "exit",
            "reset",
            "poweroff",
            "hook",
        ],
    };
    let mut rules = crate::common::rules(&[], io);
    rules.push(SyscallRule::new(
        "ioctl",
        libc::SYS_ioctl,
        "KVM_RUN (+ KVM_GET_REGS, KVM_GET_MP_STATE) on this thread's vCPU fd only",
        ArgRule::Ioctls {
            fd: Some("vcpu"),
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
                Ioctl {
                    name: "KVM_GET_MP_STATE",
                    request: KVM_GET_MP_STATE(),
                    reason: "after the VM stopped: did the guest ever start this vCPU",
                },
            ],
        },
    ));
    rules
}
