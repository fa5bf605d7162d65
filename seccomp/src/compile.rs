//! Lowering a kind's rules to one BPF program.
//!
//! seccompiler emits `arch check (3) | LD nr | one segment per syscall, ascending | RET mismatch`,
//! a linear chain where a syscall that does not match an entry costs 1 + (number of rules of
//! that entry, or 1) instructions. We keep seccompiler's code but move the segments of the kind's
//! `hot` syscalls (vcpu: ioctl) right after `LD nr`, so the per-exit KVM_RUN check runs first.
//! Segments are position independent: every jump stays inside its segment or falls through to
//! the next one, and the accumulator still holds the syscall number whenever a segment falls
//! through (it is only reloaded with an argument once the number matched). We check both.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use crate::bpf::{is_load_nr, is_ret, jumps_in_bounds};
use crate::rule::SyscallRule;
use crate::{Error, ThreadKind};

/// The kernel's limit on instructions per filter (`BPF_MAXINSNS`).
pub const BPF_MAX_INSNS: usize = 4096;

/// Instructions of seccompiler's prologue: arch check (3) + `LD nr` (1).
const PROLOGUE: usize = 4;

/// The mismatch action, with the kind's code in `SECCOMP_RET_DATA` for `Trap` so the SIGSYS
/// reporter can name the kind (the kernel passes the data as `si_errno`).
pub(crate) fn trap_value(kind: ThreadKind) -> u32 {
    libc::SECCOMP_RET_TRAP | u32::from(kind.code())
}

/// Compiles `rules` for `kind` with `mismatch` (Trap or Log) as the action for anything else.
pub(crate) fn build(
    kind: ThreadKind,
    rules: &[SyscallRule],
    mismatch: SeccompAction,
) -> Result<BpfProgram, Error> {
    build_ordered(kind, rules, mismatch, kind.spec().hot)
}

/// [`build`] with an explicit list of syscalls to check first (tests compare orders).
pub(crate) fn build_ordered(
    kind: ThreadKind,
    rules: &[SyscallRule],
    mismatch: SeccompAction,
    hot: &[i64],
) -> Result<BpfProgram, Error> {
    let name = kind.name();
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
    if mismatch == SeccompAction::Trap {
        let trap = trap_value(kind);
        for insn in prog.iter_mut().filter(|i| is_ret(i, mismatch_value)) {
            insn.k = trap;
        }
    }
    if prog.len() > BPF_MAX_INSNS {
        return Err(Error::TooLarge {
            kind: name,
            len: prog.len(),
        });
    }
    if !jumps_in_bounds(&prog, false) {
        return Err(fail("a jump leaves the program".into()));
    }
    Ok(prog)
}
