//! Lowering a kind's rules to one BPF program.
//!
//! seccompiler emits `arch check (3) | LD nr | one segment per syscall, ascending | RET mismatch`,
//! a linear chain where a syscall that does not match an entry costs 1 + (number of rules of
//! that entry, or 1) instructions. We keep seccompiler's code but move the segments of the kind's
//! `hot` syscalls (vcpu: ioctl) right after `LD nr`, so the per-exit KVM_RUN check runs first.
//! Segments are position independent: every jump stays inside its segment or falls through to
//! the next one, and the accumulator still holds the syscall number whenever a segment falls
//! through (it is only reloaded with an argument once the number matched). We check both.
//!
//! Then every `RET mismatch` becomes a jump to one shared *tail* that replaces the final
//! `RET mismatch`:
//!
//! ```text
//! tail: LD nr
//!       JEQ openat ? RET ERRNO(EACCES)          (the errno rules of common.rs)
//!       RET TRAP | kind code                    (--seccomp true)
//!       RET USER_NOTIF                          (--seccomp log: the supervisor reports it)
//! ```
//!
//! So a per-syscall errno answer (which seccompiler's single mismatch action cannot express)
//! costs nothing on allowed paths, and an unconditionally allowed syscall still never loads
//! anything but the number (the kernel's action cache keeps skipping the filter for it).
//! No log-mode tail looks at the instruction pointer: nothing is allowed by where it comes
//! from (see `supervisor.rs`).

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use crate::bpf::{insn, is_load_nr, is_ret, jumps_in_bounds, Op};
use crate::rule::{ErrnoRule, SyscallRule};
use crate::{Error, Mode, ThreadKind};

/// The kernel's limit on instructions per filter (`BPF_MAXINSNS`).
pub const BPF_MAX_INSNS: usize = 4096;

/// Instructions of seccompiler's prologue: arch check (3) + `LD nr` (1).
const PROLOGUE: usize = 4;

/// The mismatch action, with the kind's code in `SECCOMP_RET_DATA` for `Trap` so the SIGSYS
/// reporter can name the kind (the kernel passes the data as `si_errno`).
pub(crate) fn trap_value(kind: ThreadKind) -> u32 {
    libc::SECCOMP_RET_TRAP | u32::from(kind.code())
}

/// Compiles `rules` for `kind` in `mode` (Kill or Log): anything else traps (Kill) or
/// notifies the `seccomp-log` supervisor (Log); the errno rules answer with an errno.
pub(crate) fn build(
    kind: ThreadKind,
    rules: &[SyscallRule],
    mode: Mode,
) -> Result<BpfProgram, Error> {
    let hot: Vec<i64> = kind
        .spec()
        .hot
        .iter()
        .chain(EVENT_LOOP_HOT)
        .copied()
        .collect();
    build_ordered(kind, rules, mode, &hot)
}

/// The action of a call no rule allows, for `kind` in `mode`.
pub(crate) fn mismatch_value(kind: ThreadKind, mode: Mode) -> u32 {
    match mode {
        Mode::Log => libc::SECCOMP_RET_USER_NOTIF,
        Mode::Kill | Mode::Off => trap_value(kind),
    }
}

/// Checked right after each kind's own hot syscalls, where a kind allows them: the event-loop
/// wait of the vmm and device threads. (read/write have the lowest numbers and come first in
/// seccompiler's ascending chain anyway.) With the kernel's action cache (5.11+) an
/// unconditional rule costs nothing; this ordering is for older kernels and for kinds that
/// put arguments on these calls.
const EVENT_LOOP_HOT: &[i64] = &[libc::SYS_epoll_wait, libc::SYS_epoll_pwait];

/// [`build`] with an explicit list of syscalls to check first (tests compare orders).
pub(crate) fn build_ordered(
    kind: ThreadKind,
    rules: &[SyscallRule],
    mode: Mode,
    hot: &[i64],
) -> Result<BpfProgram, Error> {
    build_named(kind.name(), rules, mismatch_value(kind, mode), hot)
}

/// Compiles `rules` for the filter called `name`: hot syscalls first, then the rest, then
/// the tail (errno rules, then `RET final_action`).
pub(crate) fn build_named(
    name: &'static str,
    rules: &[SyscallRule],
    final_action: u32,
    hot: &[i64],
) -> Result<BpfProgram, Error> {
    let mismatch = SeccompAction::Trap;
    let fail = |detail: String| Error::Compile { kind: name, detail };
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for rule in rules {
        let lowered = rule
            .to_seccomp()
            .map_err(|e| fail(format!("{}: {e}", rule.name)))?;
        if map.insert(rule.nr, lowered).is_some() {
            return Err(fail(format!("{} ({}) is listed twice", rule.name, rule.nr)));
        }
    }
    let mismatch_value = u32::from(mismatch.clone());
    let lower = |map: BTreeMap<i64, Vec<SeccompRule>>| -> Result<BpfProgram, Error> {
        let filter = SeccompFilter::new(
            map,
            mismatch.clone(),
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .map_err(|e| fail(e.to_string()))?;
        BpfProgram::try_from(filter).map_err(|e| fail(e.to_string()))
    };
    let mut hot_segments = Vec::new();
    for nr in hot {
        let Some(entry) = map.remove(nr) else {
            continue;
        };
        let prog = lower(BTreeMap::from([(*nr, entry)]))?;
        let tail_ok = prog.len() > PROLOGUE + 1
            && is_load_nr(&prog[PROLOGUE - 1])
            && prog.last().is_some_and(|i| is_ret(i, mismatch_value));
        let segment = prog.get(PROLOGUE..prog.len() - 1).unwrap_or_default();
        if !tail_ok || !jumps_in_bounds(segment, true) {
            return Err(fail(format!(
                "unexpected seccompiler layout for syscall {nr}"
            )));
        }
        hot_segments.push(segment.to_vec());
    }
    let rest = lower(map)?;
    if rest.len() < PROLOGUE || !is_load_nr(&rest[PROLOGUE - 1]) {
        return Err(fail("unexpected seccompiler prologue".into()));
    }
    let mut prog = rest[..PROLOGUE].to_vec();
    hot_segments.into_iter().for_each(|s| prog.extend(s));
    prog.extend_from_slice(&rest[PROLOGUE..]);
    // The final `RET mismatch` becomes the tail; every other one jumps there.
    if !prog.last().is_some_and(|i| is_ret(i, mismatch_value)) {
        return Err(fail("unexpected seccompiler epilogue".into()));
    }
    prog.pop();
    let tail_at = prog.len();
    for (pc, insn) in prog.iter_mut().enumerate().skip(PROLOGUE) {
        if is_ret(insn, mismatch_value) {
            let off = u32::try_from(tail_at - pc - 1).map_err(|e| fail(e.to_string()))?;
            *insn = crate::bpf::insn(Op::Ja, off, 0, 0);
        }
    }
    prog.extend(tail(final_action, &crate::common::errno_rules()));
    if prog.len() > BPF_MAX_INSNS {
        return Err(Error::TooLarge {
            kind: name,
            len: prog.len(),
        });
    }
    if !jumps_in_bounds(&prog, false) {
        return Err(fail("a jump leaves the program".into()));
    }
    fold_jump_trampolines(&mut prog);
    Ok(prog)
}

/// seccompiler emits every check as `Jxx k, 0, 1; JA match; JA mismatch`. Pointing the
/// conditional jump straight at the two targets saves one executed instruction on every
/// path through such a check (KVM_RUN: 10 -> 9). The `JA`s stay, since other jumps may
/// land on them; decisions are unchanged (tested against the unfolded program).
pub(crate) fn fold_jump_trampolines(prog: &mut [seccompiler::sock_filter]) {
    use crate::bpf::{BPF_CLASS, BPF_JMP, JMP_JA};
    let is_ja = |i: &seccompiler::sock_filter| i.code == JMP_JA;
    for pc in 0..prog.len().saturating_sub(2) {
        let (cond, on_match, on_mismatch) = (&prog[pc], &prog[pc + 1], &prog[pc + 2]);
        let conditional = cond.code & BPF_CLASS == BPF_JMP && cond.code & 0xf0 != 0;
        if !(conditional && cond.jt == 0 && cond.jf == 1 && is_ja(on_match) && is_ja(on_mismatch)) {
            continue;
        }
        // Offsets are relative to pc + 1: the first JA is there, the second one further.
        let jt = 1 + u64::from(on_match.k);
        let jf = 2 + u64::from(on_mismatch.k);
        if let (Ok(jt), Ok(jf)) = (u8::try_from(jt), u8::try_from(jf)) {
            prog[pc].jt = jt;
            prog[pc].jf = jf;
        }
    }
}

/// The shared tail every mismatch jumps to (see the module docs).
fn tail(final_action: u32, errno_rules: &[ErrnoRule]) -> Vec<seccompiler::sock_filter> {
    let mut t = vec![insn(Op::LdAbs, 0, 0, 0)];
    for rule in errno_rules {
        t.push(insn(Op::Jeq, rule.nr as u32, 0, 1));
        t.push(insn(
            Op::Ret,
            libc::SECCOMP_RET_ERRNO | (rule.errno as u32 & libc::SECCOMP_RET_DATA),
            0,
            0,
        ));
    }
    t.push(insn(Op::Ret, final_action, 0, 0));
    t
}
