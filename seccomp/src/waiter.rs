//! The `jail-waiter` process: under `--jail` (namespace variant) the parent that forks the
//! jailed VMM into its PID namespace and then only waits for it (vmm/src/jail/waiter.rs).
//! It holds no fd but stdio and a pidfd of the VMM, runs as the jail's uid without
//! capabilities and never sees guest data; its filter lets it wait for that one process,
//! forward the stop signals to it and exit. Not a thread kind: it is a process of its own,
//! filtered after the fork, so nothing stacks on the VMM's filters.

use crate::rule::{ArgCond, ArgRule, SyscallRule};
use crate::vmm::P_PIDFD;
use crate::{Error, FilterContext, Mode};

/// Its name (`PR_SET_NAME`): what `ps`, `strace -f --decode-pids=comm` and reports show.
pub const THREAD_NAME: &str = "jail-waiter";

/// The signals it forwards to the jailed VMM.
pub const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The waiter's filter, fds by role: the common rules (stderr for a report line), plus
/// waiting for and signalling the jailed VMM through its pidfd only.
pub fn symbolic_rules() -> Vec<SyscallRule> {
    let io = crate::common::Io {
        read: &[],
        write: &[],
    };
    let mut rules = crate::common::rules(&[], io);
    let forward = FORWARDED
        .iter()
        .map(|sig| vec![ArgCond::fd(0, "pidfd:jailed"), ArgCond::eq(1, *sig as u64)])
        .collect();
    rules.extend([
        SyscallRule::when(
            "waitid",
            libc::SYS_waitid,
            "has the jailed VMM exited (WNOHANG), by its pidfd only (P_PIDFD)",
            vec![ArgCond::eq(0, P_PIDFD), ArgCond::fd(1, "pidfd:jailed")],
        ),
        SyscallRule::new(
            "pidfd_send_signal",
            libc::SYS_pidfd_send_signal,
            "forwards SIGINT/SIGTERM/SIGHUP to the jailed VMM, by its pidfd only",
            ArgRule::Match(forward),
        ),
        SyscallRule::any(
            "rt_sigtimedwait",
            libc::SYS_rt_sigtimedwait,
            "sigwaitinfo: sleeps until SIGCHLD or a stop signal (all blocked)",
        ),
    ]);
    rules
}

/// The waiter's fds by role: stdio and `pidfd`, its pidfd of the jailed VMM.
pub fn context(pidfd: i32) -> FilterContext {
    FilterContext::new().with("pidfd:jailed", [pidfd])
}

/// The waiter's program, pinned to `pidfd`. A forbidden call traps (one report line, exit
/// 148) under `--seccomp true`; under `log` it runs and the kernel logs it (`SECCOMP_RET_LOG`,
/// dmesg `audit: type=1326`): the waiter has no supervisor. `None` for `--seccomp false`.
pub fn compile(pidfd: i32, mode: Mode) -> Result<Option<crate::BpfProgram>, Error> {
    let mismatch = match mode {
        Mode::Off => return Ok(None),
        Mode::Kill => libc::SECCOMP_RET_TRAP,
        Mode::Log => libc::SECCOMP_RET_LOG,
    };
    let rules = crate::fds::resolve(&symbolic_rules(), &context(pidfd));
    let hot = [libc::SYS_rt_sigtimedwait, libc::SYS_waitid];
    crate::compile::build_named(THREAD_NAME, &rules, mismatch, &hot).map(Some)
}
