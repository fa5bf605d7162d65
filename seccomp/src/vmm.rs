//! The `vmm` thread: the main thread after setup, running the event loop.
//!
//! It waits in epoll_wait on eventfds (vCPU exit/reset), a signalfd (SIGTERM/SIGINT) and stdin;
//! reads them; feeds stdin bytes to the UART (which writes an interrupt eventfd); kicks vCPU
//! threads with SIGRTMIN and joins them; restores the terminal; closes fds; exits.
//! INVARIANT: it spawns no thread and opens no file once filtered, so no clone/clone3/rseq/
//! set_robust_list and no writable openat.

use crate::common::Io;
use crate::ioctls::{
    KVM_REINJECT_CONTROL, KVM_SET_PMU_EVENT_FILTER, TCGETS, TCSETS, TCSETSF, TCSETSW,
};
use crate::rule::{ArgCond, ArgRule, SyscallRule};
use crate::KindSpec;

/// waitid's idtype for a pidfd (linux/wait.h).
pub const P_PIDFD: u64 = 3;

/// The vmm kind: name, rules; nothing is hot here (epoll_wait comes first anyway).
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "vmm",
    rules,
    hot: &[],
};

fn rules() -> Vec<SyscallRule> {
    let kick = [(
        libc::SIGRTMIN(),
        "kick vCPU threads out of KVM_RUN (pthread_kill)",
    )];
    let io = Io {
        // The event loop's sources; `status` once, for the sandbox self-check.
        read: &[
            "exit", "reset", "poweroff", "signalfd", "stdin", "status", "hook",
        ],
        // Stop the device threads; console input raises the serial IRQ; a reset/power-off
        // is reported through the exit eventfd; std flushes stdout at exit.
        write: &["stop:virtio", "irq:serial", "exit", "stdout"],
    };
    let mut rules = crate::common::rules(&kick, io);
    rules.extend([
        SyscallRule::when(
            "waitid",
            libc::SYS_waitid,
            "--isolate devices: reap a device process, by its pidfd only (P_PIDFD)",
            vec![ArgCond::eq(0, P_PIDFD), ArgCond::fd(1, "pidfd:virtio")],
        ),
        SyscallRule::when(
            "pidfd_send_signal",
            libc::SYS_pidfd_send_signal,
            "--isolate devices: SIGKILL a device process that did not stop in time, by its pidfd",
            vec![
                ArgCond::fd(0, "pidfd:virtio"),
                ArgCond::eq(1, libc::SIGKILL as u64),
            ],
        ),
        SyscallRule::on_fds(
            "epoll_wait",
            libc::SYS_epoll_wait,
            "the event loop (glibc epoll_wait), on its own epoll instance",
            0,
            &["epoll"],
        ),
        SyscallRule::when(
            "epoll_ctl",
            libc::SYS_epoll_ctl,
            "its own epoll instance, stdin only: stop watching stdin at EOF",
            vec![ArgCond::fd(0, "epoll"), ArgCond::fd(2, "stdin")],
        ),
        SyscallRule::new(
            "ioctl",
            libc::SYS_ioctl,
            "terminal attributes of stdin (fd 0): TCGETS (tcgetattr, isatty), TCSETS/TCSETSW/\
             TCSETSF (tcsetattr, restoring the terminal); on the VM fd, once each right after \
             the guest is released (off the boot's critical path): KVM_REINJECT_CONTROL (PIT \
             lost ticks discarded, --pit on) and KVM_SET_PMU_EVENT_FILTER (the empty deny \
             list, to end the set-up's grace period before teardown)",
            ArgRule::Match(
                [TCGETS, TCSETS, TCSETSW, TCSETSF]
                    .iter()
                    .map(|&request| vec![ArgCond::fd(0, "stdin"), ArgCond::eq(1, request)])
                    .chain(
                        [KVM_REINJECT_CONTROL(), KVM_SET_PMU_EVENT_FILTER()]
                            .map(|request| vec![ArgCond::fd(0, "vm"), ArgCond::eq(1, request)]),
                    )
                    .collect(),
            ),
        ),
    ]);
    rules
}
