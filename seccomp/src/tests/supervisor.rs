//! The `seccomp-log` supervisor's own filter, in the simulator.

use super::*;
use crate::supervisor::{self as sup, NOTIF_ID_VALID, NOTIF_RECV, NOTIF_SEND};

const EPOLL: u64 = 7;

fn verdict(nr: i64, args: [u64; 6]) -> Verdict {
    let prog = sup::compile(EPOLL as i32).unwrap();
    simulate(&prog, &SeccompData::new(nr, args))
}

#[test]
fn supervisor_rules_are_well_formed_and_allow_no_escape() {
    assert_well_formed("the supervisor", &sup::symbolic_rules());
    for nr in ESCAPES {
        let v = verdict(*nr, [0; 6]);
        assert_eq!(v.action(), Some(SECCOMP_RET_TRAP), "{nr}");
    }
}

#[test]
fn supervisor_serves_listeners_on_its_own_epoll_only_and_never_notifies_itself() {
    let prog = sup::compile(EPOLL as i32).unwrap();
    assert!(!crate::bpf::reads_instruction_pointer(&prog));
    // Its mismatch is a plain TRAP (reported, failed with ENOSYS): never USER_NOTIF, which
    // would stop the only thread that could answer.
    assert!(!prog.iter().any(|i| i.k == SECCOMP_RET_USER_NOTIF));
    for request in [NOTIF_RECV, NOTIF_ID_VALID, NOTIF_SEND] {
        for fd in [3, 40, 1000] {
            assert!(verdict(SYS_ioctl, [fd, request, 0, 0, 0, 0]).allows());
        }
    }
    let kvm_run = crate::ioctls::KVM_RUN();
    assert!(!verdict(SYS_ioctl, [3, kvm_run, 0, 0, 0, 0]).allows());
    assert!(verdict(SYS_epoll_wait, [EPOLL, 0, 16, u64::MAX, 0, 0]).allows());
    assert!(!verdict(SYS_epoll_wait, [EPOLL + 1, 0, 16, u64::MAX, 0, 0]).allows());
    for op in [EPOLL_CTL_ADD, EPOLL_CTL_DEL] {
        assert!(verdict(SYS_epoll_ctl, [EPOLL, op as u64, 9, 0, 0, 0]).allows());
        assert!(!verdict(SYS_epoll_ctl, [EPOLL + 1, op as u64, 9, 0, 0, 0]).allows());
    }
    assert!(!verdict(SYS_epoll_ctl, [EPOLL, EPOLL_CTL_MOD as u64, 9, 0, 0, 0]).allows());
    assert!(verdict(SYS_write, [2, 0, 10, 0, 0, 0]).allows());
    assert!(!verdict(SYS_write, [1, 0, 10, 0, 0, 0]).allows());
    assert!(!verdict(SYS_read, [EPOLL, 0, 8, 0, 0, 0]).allows());
}
