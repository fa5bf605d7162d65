//! BPF instructions each thread kind's filter executes before it allows its hottest system
//! calls, from the seccomp crate's own BPF simulator (the filters are deterministic, so one
//! simulation is the figure).

use vmm::seccomp::bpf::{simulate, SeccompData};
use vmm::seccomp::{compile, FilterContext, Mode, ThreadKind};

/// `KVM_RUN` = `_IO(KVMIO, 0x80)`.
const KVM_RUN: u64 = 0xAE80;
/// The first fd `ctx` gives the first of `roles` it has (the filters pin fds by role; the
/// numbers come from `FilterContext::example`).
fn fd(ctx: &FilterContext, roles: &[&str]) -> u64 {
    roles
        .iter()
        .find_map(|r| ctx.get(r).first().copied())
        .map_or(u64::MAX, |fd| u64::from(fd as u32))
}

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

fn calls(kind: ThreadKind, ctx: &FilterContext) -> Vec<(&'static str, i64, [u64; 6])> {
    let (rd, wr, ep) = (
        fd(ctx, &["queue", "exit"]),
        fd(ctx, &["irq", "stop:virtio"]),
        fd(ctx, &["epoll"]),
    );
    match kind {
        ThreadKind::Vcpu => vec![(
            "ioctl(vcpu_fd, KVM_RUN)",
            libc::SYS_ioctl,
            [fd(ctx, &["vcpu"]), KVM_RUN, 0, 0, 0, 0],
        )],
        _ => vec![
            ("read(eventfd, 8)", libc::SYS_read, [rd, 0, 8, 0, 0, 0]),
            ("write(eventfd, 8)", libc::SYS_write, [wr, 0, 8, 0, 0, 0]),
            (
                "epoll_wait",
                libc::SYS_epoll_wait,
                [ep, 0, 8, u64::MAX, 0, 0],
            ),
            (
                "epoll_pwait",
                libc::SYS_epoll_pwait,
                [ep, 0, 8, u64::MAX, 0, 8],
            ),
        ],
    }
}

/// The counts for every thread kind, in [`ThreadKind::all`] order.
pub fn counts() -> Vec<Count> {
    let mut out = Vec::new();
    for &kind in ThreadKind::all() {
        let ctx = FilterContext::example(kind);
        let prog = compile(kind, Mode::Kill, &ctx);
        for (call, nr, args) in calls(kind, &ctx) {
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
