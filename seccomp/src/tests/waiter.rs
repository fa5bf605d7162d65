//! The `--jail` waiter's filter, in the simulator.

use super::*;
use crate::waiter;

const PIDFD: u64 = 5;

fn verdict(mode: Mode, nr: i64, args: [u64; 6]) -> Verdict {
    let prog = waiter::compile(PIDFD as i32, mode).unwrap().unwrap();
    simulate(&prog, &SeccompData::new(nr, args))
}

#[test]
fn waiter_rules_are_well_formed_and_allow_no_escape() {
    assert_well_formed("the waiter", &waiter::symbolic_rules());
    for nr in ESCAPES
        .iter()
        .chain(&[SYS_kill, SYS_wait4, SYS_read, SYS_ioctl])
    {
        assert_eq!(
            verdict(Mode::Kill, *nr, [0; 6]).action(),
            Some(SECCOMP_RET_TRAP),
            "{nr}"
        );
        assert_eq!(
            verdict(Mode::Log, *nr, [0; 6]).action(),
            Some(SECCOMP_RET_LOG),
            "{nr}"
        );
    }
    assert!(waiter::compile(PIDFD as i32, Mode::Off).unwrap().is_none());
}

#[test]
fn waiter_waits_for_and_signals_the_jailed_vmm_by_its_pidfd_only() {
    let v = |nr, args| verdict(Mode::Kill, nr, args);
    let wexited = (WEXITED | WNOHANG) as u64;
    assert!(v(SYS_waitid, [crate::P_PIDFD, PIDFD, 0, wexited, 0, 0]).allows());
    assert!(!v(SYS_waitid, [crate::P_PIDFD, PIDFD + 1, 0, wexited, 0, 0]).allows());
    // P_ALL / P_PID: any child, or any pid.
    assert!(!v(SYS_waitid, [0, PIDFD, 0, wexited, 0, 0]).allows());
    assert!(!v(SYS_waitid, [1, 1, 0, wexited, 0, 0]).allows());
    for sig in waiter::FORWARDED {
        assert!(v(SYS_pidfd_send_signal, [PIDFD, sig as u64, 0, 0, 0, 0]).allows());
        assert!(!v(SYS_pidfd_send_signal, [PIDFD + 1, sig as u64, 0, 0, 0, 0]).allows());
    }
    assert!(!v(SYS_pidfd_send_signal, [PIDFD, SIGKILL as u64, 0, 0, 0, 0]).allows());
    assert!(v(SYS_rt_sigtimedwait, [0, 0, 0, 8, 0, 0]).allows());
    assert!(v(SYS_write, [2, 0, 10, 0, 0, 0]).allows());
    assert!(!v(SYS_write, [1, 0, 10, 0, 0, 0]).allows());
    assert!(v(SYS_exit_group, [148, 0, 0, 0, 0, 0]).allows());
}
