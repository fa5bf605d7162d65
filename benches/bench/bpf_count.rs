//! BPF instructions each thread kind's filter executes before it allows its hottest system
//! calls, from the seccomp crate's own BPF simulator (the filters are deterministic, so one
//! simulation is the figure).

use vmm::seccomp::bpf::{simulate, SeccompData};
use vmm::seccomp::{compile, FilterContext, Mode, ThreadKind};

/// `KVM_RUN` = `_IO(KVMIO, 0x80)`.
const KVM_RUN: u64 = 0xAE80;
/// fd numbers the filters are compiled for (any number works; the simulation uses them).
const VCPU_FD: i32 = 10;
const DISK_FD: i32 = 11;
const TAP_FD: i32 = 12;
const EVENT_FD: u64 = 13;

/// One count: thread kind, the call (as written in the table), and the instructions the
/// filter runs before ALLOW (or why there is no number).
pub struct Count {
    /// Thread kind name (vcpu, vmm, rng, ...).
    pub kind: &'static str,
    /// The system call and its arguments, in words.
    pub call: &'static str,
    /// Instructions executed up to and including the RET ALLOW, or why not.
    pub insns: Result<usize, String>,
}

fn calls(kind: ThreadKind) -> Vec<(&'static str, i64, [u64; 6])> {
    let rw = |fd| {
        vec![
            ("read(eventfd, 8)", libc::SYS_read, [fd, 0, 8, 0, 0, 0]),
            ("write(eventfd, 8)", libc::SYS_write, [fd, 0, 8, 0, 0, 0]),
            (
                "epoll_wait",
                libc::SYS_epoll_wait,
                [fd, 0, 8, u64::MAX, 0, 0],
            ),
            (
                "epoll_pwait",
                libc::SYS_epoll_pwait,
                [fd, 0, 8, u64::MAX, 0, 8],
            ),
        ]
    };
    match kind {
        ThreadKind::Vcpu => vec![(
            "ioctl(vcpu_fd, KVM_RUN)",
            libc::SYS_ioctl,
            [VCPU_FD as u64, KVM_RUN, 0, 0, 0, 0],
        )],
        _ => rw(EVENT_FD),
    }
}

/// The counts for every thread kind, in [`ThreadKind::all`] order.
pub fn counts() -> Vec<Count> {
    let ctx = FilterContext {
        vcpu_fd: Some(VCPU_FD),
        disk_fd: Some(DISK_FD),
        tap_fd: Some(TAP_FD),
    };
    let mut out = Vec::new();
    for &kind in ThreadKind::all() {
        let prog = compile(kind, Mode::Kill, &ctx);
        for (call, nr, args) in calls(kind) {
            let insns = match &prog {
                Err(e) => Err(format!("the filter does not compile: {e}")),
                Ok(None) => Err("no filter".into()),
                Ok(Some(p)) => {
                    let verdict = simulate(p, &SeccompData::new(nr, args));
                    match verdict.executed() {
                        Some(n) if verdict.allows() => Ok(n),
                        Some(_) => Err("not allowed by this kind's filter".into()),
                        None => Err("the simulator rejected the program".into()),
                    }
                }
            };
            out.push(Count {
                kind: kind.name(),
                call,
                insns,
            });
        }
    }
    out
}
