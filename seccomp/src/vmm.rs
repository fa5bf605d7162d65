//! The `vmm` thread: the main thread after setup, running the event loop.
//!
//! It waits in epoll_wait on eventfds (vCPU exit/reset), a signalfd (SIGTERM/SIGINT) and stdin;
//! reads them; feeds stdin bytes to the UART (which writes an interrupt eventfd); kicks vCPU
//! threads with SIGRTMIN and joins them; restores the terminal; closes fds; exits.
//! INVARIANT: it spawns no thread and opens no file once filtered, so no clone/clone3/rseq/
//! set_robust_list and no writable openat.

use crate::ioctls::{TCGETS, TCSETS, TCSETSF, TCSETSW};
use crate::rule::{ArgRule, Ioctl, SyscallRule};
use crate::{FilterContext, KindSpec};

/// The vmm kind: name, rules; no argument-checked syscall is hot here (epoll_wait, read and
/// write are unconditional, so the kernel's action cache skips the filter for them).
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "vmm",
    rules,
    hot: &[],
};

fn rules(_ctx: &FilterContext) -> Vec<SyscallRule> {
    let kick = [(
        libc::SIGRTMIN(),
        "kick vCPU threads out of KVM_RUN (pthread_kill)",
    )];
    let mut rules = crate::common::rules(&kick);
    let tty = |name, request, reason| Ioctl {
        name,
        request,
        reason,
    };
    rules.extend([
        SyscallRule::any(
            "epoll_wait",
            libc::SYS_epoll_wait,
            "the event loop (glibc epoll_wait)",
        ),
        SyscallRule::any(
            "epoll_ctl",
            libc::SYS_epoll_ctl,
            "drop an fd from the loop (stdin EOF, closed eventfd)",
        ),
        SyscallRule::new(
            "ioctl",
            libc::SYS_ioctl,
            "terminal attributes of stdin (fd 0) only",
            ArgRule::Ioctls {
                fd: Some(libc::STDIN_FILENO),
                requests: vec![
                    tty("TCGETS", TCGETS, "tcgetattr/isatty; tcsetattr reads back"),
                    tty("TCSETS", TCSETS, "restore the terminal: tcsetattr(TCSANOW)"),
                    tty("TCSETSW", TCSETSW, "tcsetattr(TCSADRAIN)"),
                    tty("TCSETSF", TCSETSF, "tcsetattr(TCSAFLUSH)"),
                ],
            },
        ),
    ]);
    rules
}
