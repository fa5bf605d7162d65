//! The fd pins of every kind, checked in the simulator against the fds a boot really has.

use super::*;

/// One VM's fds as microvm really numbered them (`--log-level debug` of a boot with a disk,
/// a TAP and rng), per thread kind: (role, fds).
#[rustfmt::skip]
fn world(kind: ThreadKind) -> FilterContext {
    let roles: &[(&'static str, &[i32])] = match kind {
        ThreadKind::Vmm => &[("epoll", &[45]), ("signalfd", &[3]), ("status", &[46]), ("exit", &[4]),
            ("reset", &[10]), ("poweroff", &[13]), ("irq:serial", &[9]), ("stop:virtio", &[7, 39, 42]), ("vm", &[6])],
        ThreadKind::Vcpu => &[("vcpu", &[36]), ("exit", &[4]), ("reset", &[11]), ("poweroff", &[14]),
            ("irq:serial", &[9]), ("irq:i8042", &[12]),
            ("notify:virtio", &[20, 17, 28, 29, 23, 25, 35, 32]), ("state:virtio", &[19, 27, 34])],
        ThreadKind::Blk => &[("disk", &[5]), ("epoll", &[38]), ("irq", &[15]), ("queue", &[16]),
            ("notify", &[17]), ("state", &[18]), ("stop", &[37])],
        ThreadKind::Net => &[("tap", &[6]), ("epoll", &[41]), ("irq", &[21]), ("queue", &[22, 24]),
            ("notify", &[23, 25]), ("state", &[26]), ("stop", &[40])],
        ThreadKind::Rng => &[("epoll", &[44]), ("irq", &[30]), ("queue", &[31]), ("notify", &[32]),
            ("state", &[33]), ("stop", &[43])],
    };
    roles.iter().fold(FilterContext::new(), |c, (r, fds)| c.with(r, fds.iter().copied()))
}

/// What issue 13 asks, written out by hand for [`world`]: the fds each kind may use with
/// each fd-taking call (every other fd, 0..=63 and a fresh 1000, must be refused).
#[rustfmt::skip]
#[allow(non_upper_case_globals)] // libc's SYS_* names in patterns
fn expected_fds(kind: ThreadKind, nr: i64) -> &'static [u64] {
    use ThreadKind::*;
    match (kind, nr) {
        (Vmm, SYS_read) => &[0, 3, 4, 10, 13, 46],
        (Blk, SYS_read) => &[16, 18, 37],
        (Net, SYS_read) => &[22, 24, 26, 40],
        (Net, SYS_readv | SYS_writev) => &[6],
        (Rng, SYS_read) => &[31, 33, 43],
        (Vmm, SYS_write) => &[1, 2, 4, 7, 9, 39, 42],
        (Vcpu, SYS_write) => &[1, 2, 4, 9, 11, 12, 14, 17, 19, 20, 23, 25, 27, 28, 29, 32, 34, 35],
        (Blk, SYS_write) => &[2, 15, 17],
        (Net, SYS_write) => &[2, 21, 23, 25],
        (Rng, SYS_write) => &[2, 30, 32],
        (Blk, SYS_pread64 | SYS_pwrite64 | SYS_fsync | SYS_fdatasync) => &[5],
        (Vmm, SYS_epoll_wait) => &[45],
        (Blk, SYS_epoll_wait) => &[38],
        (Net, SYS_epoll_wait) => &[41],
        (Rng, SYS_epoll_wait) => &[44],
        _ => &[],
    }
}

/// Calls that take an fd in arg 0.
const FD_CALLS: &[i64] = &[
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_fsync,
    SYS_fdatasync,
    SYS_lseek,
    SYS_ftruncate,
    SYS_fallocate,
    SYS_epoll_wait,
    SYS_epoll_pwait,
    SYS_sendfile,
    SYS_splice,
    SYS_fstat,
    SYS_sync_file_range,
    SYS_fchmod,
    SYS_fchown,
    SYS_flock,
];

/// Calls on paths (or the working directory): never allowed (an errno answer at most).
const PATH_CALLS: &[i64] = &[
    SYS_stat,
    SYS_lstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_access,
    SYS_faccessat,
    SYS_getcwd,
    SYS_chdir,
    SYS_readlink,
    SYS_readlinkat,
    SYS_openat,
    SYS_open,
    SYS_truncate,
    SYS_rename,
    SYS_mkdir,
    SYS_unlink,
    SYS_symlink,
    SYS_statfs,
];

/// Every way `prog` (the `kind` filter pinned to [`world`]) departs from the pins issue 13
/// asks for, in words; empty when it holds.
fn pin_violations(kind: ThreadKind, prog: &BpfProgram) -> Vec<String> {
    let mut out = Vec::new();
    let allows = |nr: i64, args: [u64; 6]| simulate(prog, &SeccompData::new(nr, args)).allows();
    let fds: Vec<u64> = (0..64).chain([1000, u64::from(u32::MAX)]).collect();
    for &nr in FD_CALLS {
        let want = expected_fds(kind, nr);
        for &fd in &fds {
            let got = allows(nr, [fd, 0x1000, 8, 0, 0, 0]);
            if got != want.contains(&fd) {
                out.push(format!(
                    "{kind}: {} on fd {fd}: allowed={got}",
                    syscall_name(nr).unwrap_or("?")
                ));
            }
        }
    }
    for &nr in PATH_CALLS {
        for args in [
            [AT_FDCWD as u64, 0x1000, 0x1000, 0, 0, 0],
            [0x1000, 0x1000, 0, 0, 0, 0],
        ] {
            if allows(nr, args) {
                out.push(format!(
                    "{kind}: path call {} allowed",
                    syscall_name(nr).unwrap_or("?")
                ));
            }
        }
    }
    // ioctl: KVM_RUN on the own vCPU fd only; terminal ioctls on stdin of vmm only;
    // KVM_REINJECT_CONTROL and KVM_SET_PMU_EVENT_FILTER on the VM fd (6) of vmm only.
    let kvm_run = ioctls::KVM_RUN();
    for &fd in &fds {
        let want_run = kind == ThreadKind::Vcpu && fd == 36;
        if allows(SYS_ioctl, [fd, kvm_run, 0, 0, 0, 0]) != want_run {
            out.push(format!("{kind}: KVM_RUN on fd {fd}"));
        }
        let want_tty = kind == ThreadKind::Vmm && fd == 0;
        if allows(SYS_ioctl, [fd, ioctls::TCGETS, 0x1000, 0, 0, 0]) != want_tty {
            out.push(format!("{kind}: TCGETS on fd {fd}"));
        }
        let want_vm = kind == ThreadKind::Vmm && fd == 6;
        for (name, request) in [
            ("KVM_REINJECT_CONTROL", ioctls::KVM_REINJECT_CONTROL()),
            (
                "KVM_SET_PMU_EVENT_FILTER",
                ioctls::KVM_SET_PMU_EVENT_FILTER(),
            ),
        ] {
            if allows(SYS_ioctl, [fd, request, 0x1000, 0, 0, 0]) != want_vm {
                out.push(format!("{kind}: {name} on fd {fd}"));
            }
        }
        // epoll_ctl(own epoll, ADD, fd): vmm on stdin, net on its TAP, nothing else.
        for ep in [38u64, 41, 44, 45] {
            let want = matches!(
                (kind, ep, fd),
                (ThreadKind::Vmm, 45, 0) | (ThreadKind::Net, 41, 6)
            );
            if allows(SYS_epoll_ctl, [ep, 1, fd, 0x1000, 0, 0]) != want {
                out.push(format!("{kind}: epoll_ctl({ep}, ADD, {fd})"));
            }
        }
        // mmap of a file, shared or private: never; anonymous private: always.
        let (ro, shared, private) = (PROT_READ as u64, MAP_SHARED as u64, MAP_PRIVATE as u64);
        for flags in [
            shared,
            private,
            shared | MAP_ANONYMOUS as u64,
            private | MAP_FIXED as u64 | MAP_ANONYMOUS as u64,
        ] {
            if allows(SYS_mmap, [0, 4096, ro, flags, fd, 0]) {
                out.push(format!("{kind}: mmap flags {flags:#x} fd {fd}"));
            }
        }
    }
    let anon = (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE) as u64;
    if !allows(SYS_mmap, [0, 1 << 27, 0, anon, u64::MAX, 0]) {
        out.push(format!("{kind}: malloc's arena mmap refused"));
    }
    if !allows(SYS_restart_syscall, [0; 6]) {
        out.push(format!("{kind}: restart_syscall refused"));
    }
    out
}

#[test]
fn every_fd_taking_call_is_pinned_to_the_threads_own_fds() {
    for kind in ThreadKind::all() {
        let prog = compile(*kind, Mode::Kill, &world(*kind)).unwrap().unwrap();
        let v = pin_violations(*kind, &prog);
        assert!(v.is_empty(), "{}", v.join("\n"));
    }
}

#[test]
fn a_filter_with_one_pin_removed_is_caught() {
    // The hole: blk's pwrite64 on any fd (the pin of issue 13 removed).
    let mut holed = builtin_symbolic_rules(ThreadKind::Blk);
    let pwrite = holed.iter_mut().find(|r| r.nr == SYS_pwrite64).unwrap();
    pwrite.args = ArgRule::Any;
    let rules = fds::resolve(&holed, &world(ThreadKind::Blk));
    let prog = compile::build(ThreadKind::Blk, &rules, Mode::Kill).unwrap();
    let v = pin_violations(ThreadKind::Blk, &prog);
    assert!(
        !v.is_empty() && v.iter().all(|l| l.contains("pwrite64")),
        "{v:#?}"
    );
    // And a vCPU that may write the disk (fd 5) is caught too.
    let mut holed = builtin_symbolic_rules(ThreadKind::Vcpu);
    let write = holed.iter_mut().find(|r| r.nr == SYS_write).unwrap();
    if let ArgRule::Match(alts) = &mut write.args {
        alts.push(vec![ArgCond::eq(0, 5)]);
    }
    let rules = fds::resolve(&holed, &world(ThreadKind::Vcpu));
    let prog = compile::build(ThreadKind::Vcpu, &rules, Mode::Kill).unwrap();
    assert_eq!(
        pin_violations(ThreadKind::Vcpu, &prog),
        ["vcpu: write on fd 5: allowed=true"]
    );
}
