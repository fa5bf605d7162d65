//! In-process tests: rules as data, and the compiled programs run in the BPF interpreter.
//! Tests that install filters live in `tests/` (each in a forked child).

use std::collections::HashSet;

use super::*;
use crate::bpf::{simulate, SeccompData, Verdict};
use libc::*;

/// The vCPU fd of [`FilterContext::example`] for the vcpu kind.
const VCPU_FD: i32 = 20;

/// The example context of `kind` (one disk, one TAP, rng).
fn ctx(kind: ThreadKind) -> FilterContext {
    let c = FilterContext::example(kind);
    if kind == ThreadKind::Vcpu {
        assert_eq!(c.get("vcpu"), [VCPU_FD]);
    }
    c
}

fn prog(kind: ThreadKind, mode: Mode) -> BpfProgram {
    compile(kind, mode, &ctx(kind)).unwrap().unwrap()
}

fn run(kind: ThreadKind, nr: i64, args: [u64; 6]) -> Verdict {
    simulate(&prog(kind, Mode::Kill), &SeccompData::new(nr, args))
}

fn allowed(kind: ThreadKind, nr: i64, args: [u64; 6]) -> bool {
    run(kind, nr, args).allows()
}

fn pid() -> u64 {
    u64::from(std::process::id())
}

/// Syscalls no thread kind may make, with any arguments.
const ESCAPES: &[i64] = &[
    SYS_execve,
    SYS_execveat,
    SYS_fork,
    SYS_vfork,
    SYS_clone,
    SYS_clone3,
    SYS_socket,
    SYS_socketpair,
    SYS_connect,
    SYS_bind,
    SYS_listen,
    SYS_accept4,
    SYS_open,
    SYS_creat,
    SYS_ptrace,
    SYS_process_vm_writev,
    SYS_process_vm_readv,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_io_uring_setup,
    SYS_kexec_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_unshare,
    SYS_setns,
    SYS_mount,
    SYS_keyctl,
    SYS_personality,
    SYS_rt_sigaction,
    SYS_kill,
    SYS_tkill,
    SYS_seccomp,
    SYS_pkey_mprotect,
    SYS_memfd_create,
    SYS_unlink,
    SYS_chmod,
];

#[test]
fn rules_are_well_formed() {
    for kind in ThreadKind::all() {
        let rules = rules(*kind, &ctx(*kind));
        let mut seen = HashSet::new();
        for rule in &rules {
            assert!(seen.insert(rule.nr), "{kind}: {} listed twice", rule.name);
            assert_eq!(
                syscall_name(rule.nr),
                Some(rule.name),
                "{kind}: wrong number"
            );
            assert!(
                !rule.reason.trim().is_empty(),
                "{kind}: {} has no reason",
                rule.name
            );
            if let ArgRule::Ioctls { requests, .. } = &rule.args {
                assert!(!requests.is_empty());
                assert!(requests
                    .iter()
                    .all(|r| !r.reason.is_empty() && !r.name.is_empty()));
            }
            if let ArgRule::Match(alts) = &rule.args {
                assert!(!alts.is_empty() && alts.iter().all(|c| !c.is_empty()));
            }
            assert!(!ESCAPES.contains(&rule.nr), "{kind} allows {}", rule.name);
        }
    }
}

#[test]
fn duplicate_rules_are_rejected_not_merged() {
    let mut rules = rules(ThreadKind::Vcpu, &ctx(ThreadKind::Vcpu));
    rules.push(SyscallRule::any("write", SYS_write, "again"));
    let err = compile::build(ThreadKind::Vcpu, &rules, Mode::Kill);
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.contains("compiling the vcpu filter") && msg.contains("write (1) is listed twice"),
        "{msg}"
    );
}

#[test]
fn every_rule_allows_its_syscall_and_escapes_are_trapped() {
    for kind in ThreadKind::all() {
        for rule in rules(*kind, &ctx(*kind))
            .iter()
            .filter(|r| r.args == ArgRule::Any)
        {
            assert!(allowed(*kind, rule.nr, [0; 6]), "{kind}: {}", rule.name);
        }
        for nr in ESCAPES {
            for args in [[0; 6], [u64::MAX; 6], [VCPU_FD as u64, 0xae80, 0, 0, 0, 0]] {
                let v = run(*kind, *nr, args);
                let trap = compile::trap_value(*kind);
                assert_eq!(
                    v,
                    Verdict::Return {
                        value: trap,
                        executed: v.executed().unwrap()
                    }
                );
            }
        }
    }
}

#[test]
fn argument_conditions() {
    let rw = u64::try_from(PROT_READ | PROT_WRITE).unwrap();
    let exec = u64::try_from(PROT_EXEC).unwrap();
    let flags = |f: c_int| u64::from(f as u32);
    for kind in ThreadKind::all().iter().copied() {
        let ok = |nr, args| assert!(allowed(kind, nr, args), "{kind}: {nr} {args:x?}");
        let no = |nr, args| assert!(!allowed(kind, nr, args), "{kind}: {nr} {args:x?}");
        ok(SYS_mmap, [0, 4096, rw, 0x22, u64::MAX, 0]);
        no(SYS_mmap, [0, 4096, rw | exec, 0x22, u64::MAX, 0]);
        ok(SYS_mprotect, [0, 4096, rw, 0, 0, 0]);
        no(SYS_mprotect, [0, 4096, exec, 0, 0, 0]);
        let ro_open = [flags(AT_FDCWD), 0, flags(O_RDONLY | O_CLOEXEC), 0, 0, 0];
        assert_eq!(
            run(kind, SYS_openat, ro_open).errno(),
            Some(EACCES),
            "{kind}"
        );
        for bad in [
            O_WRONLY,
            O_RDWR,
            O_RDONLY | O_CREAT,
            O_RDONLY | O_TRUNC,
            O_WRONLY | O_APPEND,
        ] {
            no(SYS_openat, [flags(AT_FDCWD), 0, flags(bad), 0, 0, 0]);
        }
        ok(SYS_fcntl, [3, flags(F_GETFD), 0, 0, 0, 0]);
        no(SYS_fcntl, [3, flags(F_SETFL), 0, 0, 0, 0]);
        ok(SYS_madvise, [0, 4096, flags(MADV_DONTNEED), 0, 0, 0]);
        no(SYS_madvise, [0, 4096, flags(MADV_HWPOISON), 0, 0, 0]);
        for op in [128, 129, 137, 265, 393, 0, 1] {
            ok(SYS_futex, [0, op, 0, 0, 0, 0]);
        }
        for op in [
            FUTEX_REQUEUE,
            FUTEX_CMP_REQUEUE,
            FUTEX_WAKE_OP,
            FUTEX_LOCK_PI,
            FUTEX_FD,
        ] {
            no(SYS_futex, [0, flags(op | FUTEX_PRIVATE_FLAG), 0, 0, 0, 0]);
        }
        ok(SYS_tgkill, [pid(), 1234, flags(SIGABRT), 0, 0, 0]);
        no(SYS_tgkill, [pid() + 1, 1234, flags(SIGABRT), 0, 0, 0]);
        no(SYS_tgkill, [pid(), 1234, flags(SIGKILL), 0, 0, 0]);
        ok(SYS_prctl, [flags(PR_GET_NAME), 0, 0, 0, 0, 0]);
        no(SYS_prctl, [flags(PR_SET_NAME), 0, 0, 0, 0, 0]);
        no(
            SYS_ioctl,
            [VCPU_FD as u64, ioctls::KVM_SET_REGS(), 0, 0, 0, 0],
        );
    }
    let rtmin = u64::try_from(SIGRTMIN()).unwrap();
    assert!(allowed(
        ThreadKind::Vmm,
        SYS_tgkill,
        [pid(), 1, rtmin, 0, 0, 0]
    ));
    assert!(!allowed(
        ThreadKind::Vcpu,
        SYS_tgkill,
        [pid(), 1, rtmin, 0, 0, 0]
    ));
    assert!(allowed(
        ThreadKind::Vmm,
        SYS_ioctl,
        [0, ioctls::TCSETS, 0, 0, 0, 0]
    ));
    assert!(!allowed(
        ThreadKind::Vmm,
        SYS_ioctl,
        [1, ioctls::TCSETS, 0, 0, 0, 0]
    ));
    assert!(!allowed(
        ThreadKind::Vmm,
        SYS_ioctl,
        [0, 0x5412, 0, 0, 0, 0]
    )); // TIOCSTI
    assert!(!allowed(
        ThreadKind::Vmm,
        SYS_ioctl,
        [VCPU_FD as u64, 0xae80, 0, 0, 0, 0]
    ));
    assert!(!allowed(ThreadKind::Vcpu, SYS_epoll_wait, [0; 6]));
    let get_regs = [VCPU_FD as u64, ioctls::KVM_GET_REGS(), 0, 0, 0, 0];
    assert!(allowed(ThreadKind::Vcpu, SYS_ioctl, get_regs));
    assert!(!allowed(ThreadKind::Vmm, SYS_ioctl, get_regs));
}

#[test]
fn kvm_run_is_pinned_to_the_vcpu_fd_and_decided_first() {
    let kvm_run = |fd: u64| SeccompData::new(SYS_ioctl, [fd, ioctls::KVM_RUN(), 0, 0, 0, 0]);
    let pinned = prog(ThreadKind::Vcpu, Mode::Kill);
    let v = simulate(&pinned, &kvm_run(VCPU_FD as u64));
    // LD arch, JEQ arch, LD nr, JEQ ioctl (folded: jumps straight into the rule), LD arg1,
    // JEQ, LD arg0, JEQ, RET.
    assert_eq!(
        v,
        Verdict::Return {
            value: SECCOMP_RET_ALLOW,
            executed: 9
        }
    );
    assert!(!simulate(&pinned, &kvm_run(VCPU_FD as u64 + 1)).allows());
    assert!(!simulate(&pinned, &kvm_run((1 << 32) | 8)).allows());

    // A thread without a vCPU fd gets no ioctl at all (a role without fds grants nothing).
    let none = compile(ThreadKind::Vcpu, Mode::Kill, &FilterContext::default())
        .unwrap()
        .unwrap();
    assert!(!simulate(&none, &kvm_run(VCPU_FD as u64)).allows());
    // A replay without an fd map takes every fd condition as true.
    let any_fd = compile(ThreadKind::Vcpu, Mode::Kill, &FilterContext::unpinned())
        .unwrap()
        .unwrap();
    let v = simulate(&any_fd, &kvm_run(99));
    assert_eq!(
        v,
        Verdict::Return {
            value: SECCOMP_RET_ALLOW,
            executed: 7
        }
    );

    // seccompiler's own ascending order tests the 8 syscalls below 16 first (one folded JEQ
    // each, two before the fold; three to skip write's long fd list, too far for a fold).
    let rules = rules(ThreadKind::Vcpu, &ctx(ThreadKind::Vcpu));
    let plain = compile::build_ordered(ThreadKind::Vcpu, &rules, Mode::Kill, &[]).unwrap();
    let v = simulate(&plain, &kvm_run(VCPU_FD as u64));
    assert_eq!(
        v,
        Verdict::Return {
            value: SECCOMP_RET_ALLOW,
            executed: 25
        }
    );
    assert_eq!(plain.len(), pinned.len());
}

#[test]
fn reordering_keeps_every_decision() {
    let rules = rules(ThreadKind::Vcpu, &ctx(ThreadKind::Vcpu));
    let plain = compile::build_ordered(ThreadKind::Vcpu, &rules, Mode::Kill, &[]).unwrap();
    let hot = prog(ThreadKind::Vcpu, Mode::Kill);
    let values = [
        0,
        1,
        2,
        4,
        6,
        7,
        8,
        0x22,
        0x80,
        0x89,
        0x109,
        0xae80,
        0x5401,
        u64::MAX,
    ];
    for nr in 0..=462 {
        for (i, v) in values.iter().enumerate() {
            let args = [VCPU_FD as u64, *v, values[(i + 3) % values.len()], 0, 0, *v];
            let d = SeccompData::new(nr, args);
            assert_eq!(
                simulate(&plain, &d).action(),
                simulate(&hot, &d).action(),
                "{nr} {args:x?}"
            );
        }
    }
}

#[test]
fn folding_jump_trampolines_keeps_every_decision_and_saves_instructions() {
    let values = [
        0,
        1,
        2,
        4,
        6,
        7,
        8,
        0x22,
        0x80,
        0x89,
        0x109,
        0xae80,
        0x5401,
        u64::MAX,
    ];
    for kind in ThreadKind::all() {
        for mode in [Mode::Kill, Mode::Log] {
            let folded = prog(*kind, mode);
            // Undo the fold: seccompiler's `Jxx k, 0, 1; JA; JA` shape everywhere.
            let mut unfolded = folded.clone();
            for pc in 0..unfolded.len().saturating_sub(2) {
                let (c, a, b) = (&unfolded[pc], &unfolded[pc + 1], &unfolded[pc + 2]);
                let cond = c.code & 0x07 == 0x05 && c.code & 0xf0 != 0;
                if cond
                    && a.code == 0x05
                    && b.code == 0x05
                    && u32::from(c.jt) == 1 + a.k
                    && u32::from(c.jf) == 2 + b.k
                {
                    unfolded[pc].jt = 0;
                    unfolded[pc].jf = 1;
                }
            }
            assert_ne!(folded, unfolded, "{kind}: nothing was folded");
            let mut saved = 0usize;
            for nr in 0..=462 {
                for (i, v) in values.iter().enumerate() {
                    let args = [VCPU_FD as u64, *v, values[(i + 3) % values.len()], 0, 0, *v];
                    let d = SeccompData::new(nr, args);
                    let (f, u) = (simulate(&folded, &d), simulate(&unfolded, &d));
                    assert_eq!(f.action(), u.action(), "{kind} {mode} {nr} {args:x?}");
                    saved += u.executed().unwrap_or(0) - f.executed().unwrap_or(0);
                }
            }
            assert!(saved > 0, "{kind} {mode}: the fold saved nothing");
        }
    }
}

#[test]
fn modes_set_the_mismatch_action() {
    let socket = SeccompData::new(SYS_socket, [1, 1, 0, 0, 0, 0]);
    for kind in ThreadKind::all() {
        let kill = simulate(&prog(*kind, Mode::Kill), &socket);
        assert_eq!(kill.action(), Some(SECCOMP_RET_TRAP));
        let Verdict::Return { value, .. } = kill else {
            panic!("{kill:?}")
        };
        let code = u16::try_from(value & SECCOMP_RET_DATA).unwrap();
        assert_eq!(
            ThreadKind::from_code(code),
            Some(*kind),
            "kind code in SECCOMP_RET_DATA"
        );
        // Log mode notifies the supervisor, from any instruction pointer: no call is
        // allowed by where it is made from (the old re-issue gadget's bypass).
        let log_prog = prog(*kind, Mode::Log);
        assert!(!crate::bpf::reads_instruction_pointer(&log_prog), "{kind}");
        assert!(!crate::bpf::reads_instruction_pointer(&prog(
            *kind,
            Mode::Kill
        )));
        for ip in [0, 0x7f00_1234_5678, u64::MAX] {
            let from = SeccompData { ip, ..socket };
            let log = simulate(&log_prog, &from);
            assert_eq!(log.action(), Some(SECCOMP_RET_USER_NOTIF), "{kind} {ip:#x}");
        }
        // openat is answered with EACCES in both modes, from any instruction pointer.
        let openat = SeccompData::new(SYS_openat, [AT_FDCWD as u64, 0x1000, 0, 0, 0, 0]);
        for mode in [Mode::Kill, Mode::Log] {
            assert_eq!(simulate(&prog(*kind, mode), &openat).errno(), Some(EACCES));
        }
        assert!(compile(*kind, Mode::Off, &ctx(*kind)).unwrap().is_none());
        assert_eq!(bpf_len(*kind, Mode::Off, &ctx(*kind)).unwrap(), 0);
        let len = bpf_len(*kind, Mode::Kill, &ctx(*kind)).unwrap();
        assert!(len > 0 && len < BPF_MAX_INSNS, "{kind}: {len}");
        // A foreign architecture (i386 int 0x80) kills the process outright.
        let i386 = SeccompData {
            arch: 0x4000_0003,
            ..SeccompData::new(SYS_write, [0; 6])
        };
        assert_eq!(
            simulate(&prog(*kind, Mode::Log), &i386).action(),
            Some(SECCOMP_RET_KILL_PROCESS)
        );
    }
}

#[test]
fn mode_parses_and_displays() {
    for (s, m) in [
        ("true", Mode::Kill),
        ("false", Mode::Off),
        ("log", Mode::Log),
    ] {
        assert_eq!(s.parse::<Mode>().unwrap(), m);
        assert_eq!(m.to_string(), s);
    }
    let err = "yes".parse::<Mode>().unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid --seccomp value \"yes\": expected true, false or log"
    );
}

#[test]
fn kinds_have_names_and_codes() {
    let names: Vec<_> = ThreadKind::all().iter().map(|k| k.name()).collect();
    assert_eq!(names, ["vmm", "vcpu", "blk", "net", "rng"]);
    for kind in ThreadKind::all() {
        assert_eq!(ThreadKind::from_code(kind.code()), Some(*kind));
    }
    assert_eq!(ThreadKind::from_code(0), None);
    let text = describe(ThreadKind::Vcpu, &ctx(ThreadKind::Vcpu));
    assert!(
        text.contains("fd in {vcpu} and request in {KVM_RUN (0xae80), KVM_GET_REGS (0x8090ae81), KVM_GET_MP_STATE (0x8004ae98)}"),
        "{text}"
    );
    assert!(text.contains("BPF instructions"), "{text}");
}

/// Each call listed once, under its own name, with a reason, and no escape among them.
fn assert_well_formed(what: &str, rules: &[SyscallRule]) {
    let mut seen = HashSet::new();
    for rule in rules {
        assert!(seen.insert(rule.nr), "{what}: {} listed twice", rule.name);
        assert_eq!(syscall_name(rule.nr), Some(rule.name));
        let reason = &rule.reason;
        assert!(
            !reason.trim().is_empty(),
            "{what}: {} has no reason",
            rule.name
        );
        assert!(!ESCAPES.contains(&rule.nr), "{what} allows {}", rule.name);
    }
}

mod pins;
mod supervisor;
mod waiter;
