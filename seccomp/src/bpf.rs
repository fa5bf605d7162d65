//! A classic-BPF interpreter for seccomp programs: decide a syscall without installing the
//! filter, and count the instructions the kernel would execute to decide it.
//!
//! Supports exactly what seccompiler 0.5 emits (LD W ABS, ALU AND K, JEQ/JGT/JGE K, JA, RET K);
//! anything else is reported as [`Verdict::Invalid`].

use seccompiler::sock_filter;

pub(crate) const BPF_CLASS: u16 = 0x07;
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
pub(crate) const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
/// `BPF_LD | BPF_W (0x00) | BPF_ABS (0x20)`.
const LD_W_ABS: u16 = BPF_LD | 0x20;
const ALU_AND_K: u16 = BPF_ALU | 0x50;
pub(crate) const JMP_JA: u16 = BPF_JMP;
const JMP_JEQ_K: u16 = BPF_JMP | 0x10;
const JMP_JGT_K: u16 = BPF_JMP | 0x20;
const JMP_JGE_K: u16 = BPF_JMP | 0x30;

/// Byte offset of `instruction_pointer` (low half) in `struct seccomp_data`.
pub(crate) const OFFSET_IP_LO: u32 = 8;

/// Whether `prog` ever loads `seccomp_data.instruction_pointer` (either half): a filter
/// that does could allow a call by where it is made from, a bypass for any code that jumps
/// there. No microvm filter does (tested).
pub fn reads_instruction_pointer(prog: &[seccompiler::sock_filter]) -> bool {
    prog.iter()
        .any(|i| i.code == LD_W_ABS && (i.k == OFFSET_IP_LO || i.k == OFFSET_IP_LO + 4))
}

/// The instructions our programs use, for [`insn`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// `LD W ABS k`.
    LdAbs,
    /// `JEQ K`.
    Jeq,
    /// `JA k`.
    Ja,
    /// `RET K`.
    Ret,
}

/// One BPF instruction.
pub(crate) fn insn(op: Op, k: u32, jt: u8, jf: u8) -> sock_filter {
    let code = match op {
        Op::LdAbs => LD_W_ABS,
        Op::Jeq => JMP_JEQ_K,
        Op::Ja => JMP_JA,
        Op::Ret => BPF_RET,
    };
    sock_filter { code, jt, jf, k }
}

/// The x86_64 `AUDIT_ARCH` value the kernel reports for native syscalls.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// The kernel's `struct seccomp_data`, the input of a seccomp filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    /// System call number.
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the calling convention.
    pub arch: u32,
    /// Instruction pointer of the syscall.
    pub ip: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// A native x86_64 call of `nr` with `args`.
    pub fn new(nr: i64, args: [u64; 6]) -> Self {
        Self {
            nr: i32::try_from(nr).unwrap_or(-1),
            arch: AUDIT_ARCH_X86_64,
            ip: 0,
            args,
        }
    }

    /// The 32-bit word at byte `offset` of the struct (little endian), as `BPF_LD|BPF_ABS` sees it.
    fn word(&self, offset: u32) -> Option<u32> {
        let lo_hi = |v: u64, hi: bool| if hi { (v >> 32) as u32 } else { v as u32 };
        match offset {
            0 => Some(self.nr as u32),
            4 => Some(self.arch),
            8 | 12 => Some(lo_hi(self.ip, offset == 12)),
            16..=63 if offset.is_multiple_of(4) => {
                let rel = offset - 16;
                Some(lo_hi(self.args[(rel / 8) as usize], rel % 8 == 4))
            }
            _ => None,
        }
    }
}

/// The outcome of running a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The program returned this `SECCOMP_RET_*` value after `executed` instructions.
    Return {
        /// The full return value (action | data).
        value: u32,
        /// Instructions executed, including the RET.
        executed: usize,
    },
    /// The program is malformed at instruction `pc`.
    Invalid {
        /// Index of the offending instruction.
        pc: usize,
    },
}

impl Verdict {
    /// The `SECCOMP_RET_ACTION_FULL` part of the return value, if any.
    pub fn action(&self) -> Option<u32> {
        match self {
            Verdict::Return { value, .. } => Some(value & libc::SECCOMP_RET_ACTION_FULL),
            Verdict::Invalid { .. } => None,
        }
    }

    /// The errno of a `SECCOMP_RET_ERRNO` answer.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Verdict::Return { value, .. }
                if value & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_ERRNO =>
            {
                Some((value & libc::SECCOMP_RET_DATA) as i32)
            }
            _ => None,
        }
    }

    /// Whether the kernel would run the syscall (`ALLOW` or `LOG`).
    pub fn allows(&self) -> bool {
        matches!(
            self.action(),
            Some(libc::SECCOMP_RET_ALLOW) | Some(libc::SECCOMP_RET_LOG)
        )
    }

    /// The number of instructions executed, if the program returned.
    pub fn executed(&self) -> Option<usize> {
        match self {
            Verdict::Return { executed, .. } => Some(*executed),
            Verdict::Invalid { .. } => None,
        }
    }
}

/// Runs `prog` on `data` like the kernel's seccomp BPF interpreter.
pub fn simulate(prog: &[sock_filter], data: &SeccompData) -> Verdict {
    simulate_loads(prog, data).0
}

/// [`simulate`], also returning a bit mask of the arguments the program loaded (bit i =
/// `args[i]`): a decision that did not load an argument does not depend on it.
pub fn simulate_loads(prog: &[sock_filter], data: &SeccompData) -> (Verdict, u8) {
    let mut loaded = 0u8;
    let verdict = run(prog, data, &mut loaded);
    (verdict, loaded)
}

fn run(prog: &[sock_filter], data: &SeccompData, loaded: &mut u8) -> Verdict {
    let (mut pc, mut acc, mut executed) = (0usize, 0u32, 0usize);
    while let Some(insn) = prog.get(pc) {
        executed += 1;
        let jump = |cond: bool| pc + 1 + usize::from(if cond { insn.jt } else { insn.jf });
        pc = match insn.code {
            LD_W_ABS => match data.word(insn.k) {
                Some(word) => {
                    if (16..64).contains(&insn.k) {
                        *loaded |= 1 << ((insn.k - 16) / 8);
                    }
                    acc = word;
                    pc + 1
                }
                None => return Verdict::Invalid { pc },
            },
            ALU_AND_K => {
                acc &= insn.k;
                pc + 1
            }
            JMP_JA => pc + 1 + insn.k as usize,
            JMP_JEQ_K => jump(acc == insn.k),
            JMP_JGT_K => jump(acc > insn.k),
            JMP_JGE_K => jump(acc >= insn.k),
            code if code & BPF_CLASS == BPF_RET => {
                return Verdict::Return {
                    value: insn.k,
                    executed,
                }
            }
            _ => return Verdict::Invalid { pc },
        };
    }
    Verdict::Invalid { pc }
}

/// Checks that every jump of `prog` lands inside `prog` (or exactly at its end when `tail_ok`,
/// i.e. `prog` is a segment that falls through to the next one).
pub(crate) fn jumps_in_bounds(prog: &[sock_filter], tail_ok: bool) -> bool {
    let end = if tail_ok { prog.len() } else { prog.len() - 1 };
    prog.iter().enumerate().all(|(pc, insn)| {
        if insn.code & BPF_CLASS != BPF_JMP {
            return true;
        }
        let targets = if insn.code == JMP_JA {
            [insn.k as usize, insn.k as usize]
        } else {
            [usize::from(insn.jt), usize::from(insn.jf)]
        };
        targets.iter().all(|off| pc + 1 + off <= end)
    })
}

/// Whether `insn` is `RET <value>`.
pub(crate) fn is_ret(insn: &sock_filter, value: u32) -> bool {
    insn.code == BPF_RET && insn.k == value
}

/// Whether `insn` loads the syscall number (`LD W ABS [0]`).
pub(crate) fn is_load_nr(insn: &sock_filter) -> bool {
    insn.code == LD_W_ABS && insn.k == 0
}
