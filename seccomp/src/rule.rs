//! The filter as data: one [`SyscallRule`] per allowed system call, with argument conditions.
//!
//! Rules are plain values so they can be printed (`describe`), tested (duplicates, reasons) and
//! only then lowered to seccompiler's IR.

use std::fmt;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// A system call that is not allowed but answered with an errno instead of a trap, because
/// glibc tolerates the error and calls it at unpredictable times from any thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrnoRule {
    /// x86_64 name.
    pub name: &'static str,
    /// x86_64 number.
    pub nr: i64,
    /// The errno returned.
    pub errno: i32,
    /// Its name, e.g. `"EACCES"`.
    pub errno_name: &'static str,
    /// Who calls it and why the error is harmless (one line).
    pub reason: &'static str,
}

/// One allowed ioctl request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ioctl {
    /// Request name, e.g. `"KVM_RUN"`.
    pub name: &'static str,
    /// Request number (compared as the 32-bit `cmd` argument).
    pub request: u64,
    /// Why the thread needs it.
    pub reason: &'static str,
}

/// One condition on a system call argument.
///
/// Every condition compares the low 32 bits of the argument (`Dword`): all arguments we check are
/// C `int`/`unsigned int` in the kernel (fds, ioctl cmd, flags, signal numbers, futex op), or a
/// flag bit in the low word (`mmap`/`mprotect` prot), so the upper half is ignored by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgCond {
    /// Argument index, 0..=5.
    pub index: u8,
    /// Comparison.
    pub op: SeccompCmpOp,
    /// Value compared against (after masking for `MaskedEq`); ignored while `fd` is set.
    pub value: u64,
    /// A symbolic fd (a role of [`crate::fds`], e.g. `"disk"`): the value is the fd the
    /// thread holds in that role, filled in by [`crate::fds::resolve`] when the filter of a
    /// thread is built (one alternative per fd of the role; none if the thread has none).
    pub fd: Option<&'static str>,
}

impl ArgCond {
    /// `args[index] == value`.
    pub const fn eq(index: u8, value: u64) -> Self {
        Self {
            index,
            op: SeccompCmpOp::Eq,
            value,
            fd: None,
        }
    }

    /// `args[index] == ` an fd the thread holds in `role` (see [`crate::fds`]).
    pub const fn fd(index: u8, role: &'static str) -> Self {
        Self {
            index,
            op: SeccompCmpOp::Eq,
            value: 0,
            fd: Some(role),
        }
    }

    /// `args[index] & mask == value`.
    pub const fn masked_eq(index: u8, mask: u64, value: u64) -> Self {
        Self {
            index,
            op: SeccompCmpOp::MaskedEq(mask),
            value,
            fd: None,
        }
    }
}

/// Argument restrictions of a [`SyscallRule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgRule {
    /// Any arguments.
    Any,
    /// `ioctl` restricted to these requests (arg 1), and to the fds of one role (arg 0)
    /// when `fd` is set.
    Ioctls {
        /// The role (see [`crate::fds`]) whose fds the requests may be made on.
        fd: Option<&'static str>,
        /// Allowed requests; the first one is checked first.
        requests: Vec<Ioctl>,
    },
    /// Allowed if ALL conditions of ANY inner list hold (an OR of ANDs).
    Match(Vec<Vec<ArgCond>>),
}

/// One allowed system call of a thread kind's filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallRule {
    /// x86_64 name.
    pub name: &'static str,
    /// x86_64 number.
    pub nr: i64,
    /// Who needs it and why (one line).
    pub reason: &'static str,
    /// Argument restrictions.
    pub args: ArgRule,
}

impl SyscallRule {
    /// A rule allowing `nr` with any arguments.
    pub fn any(name: &'static str, nr: i64, reason: &'static str) -> Self {
        Self::new(name, nr, reason, ArgRule::Any)
    }

    /// A rule allowing `nr` when its arguments satisfy `args`.
    pub fn new(name: &'static str, nr: i64, reason: &'static str, args: ArgRule) -> Self {
        Self {
            name,
            nr,
            reason,
            args,
        }
    }

    /// A rule allowing `nr` when all `conds` hold.
    pub fn when(name: &'static str, nr: i64, reason: &'static str, conds: Vec<ArgCond>) -> Self {
        Self::new(name, nr, reason, ArgRule::Match(vec![conds]))
    }

    /// A rule allowing `nr` when argument `index` is an fd of one of `roles` (an OR, in
    /// this order: put the hottest first).
    pub fn on_fds(
        name: &'static str,
        nr: i64,
        reason: &'static str,
        index: u8,
        roles: &[&'static str],
    ) -> Self {
        let alts = roles.iter().map(|r| vec![ArgCond::fd(index, r)]).collect();
        Self::new(name, nr, reason, ArgRule::Match(alts))
    }

    /// Whether any condition names an fd role.
    pub fn has_fd_roles(&self) -> bool {
        match &self.args {
            ArgRule::Any => false,
            ArgRule::Ioctls { fd, .. } => fd.is_some(),
            ArgRule::Match(alts) => alts.iter().flatten().any(|c| c.fd.is_some()),
        }
    }

    /// Lowers the argument restrictions to seccompiler rules (empty = unconditional). The
    /// rule must be resolved ([`crate::fds::resolve`]): no fd role left.
    pub(crate) fn to_seccomp(&self) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
        if self.has_fd_roles() {
            return Err(seccompiler::BackendError::EmptyRule);
        }
        let lower = |conds: &[ArgCond]| -> Result<SeccompRule, seccompiler::BackendError> {
            let conds = conds
                .iter()
                .map(|c| {
                    SeccompCondition::new(c.index, SeccompCmpArgLen::Dword, c.op.clone(), c.value)
                })
                .collect::<Result<Vec<_>, _>>()?;
            SeccompRule::new(conds)
        };
        match &self.args {
            ArgRule::Any => Ok(Vec::new()),
            ArgRule::Ioctls { requests, .. } => requests
                .iter()
                .map(|ioctl| {
                    // seccompiler evaluates a rule's conditions last-to-first: put the request
                    // last so a wrong request is rejected after a single load.
                    lower(&[ArgCond::eq(1, ioctl.request)])
                })
                .collect(),
            ArgRule::Match(alternatives) => alternatives.iter().map(|conds| lower(conds)).collect(),
        }
    }
}

/// Formats one condition like `arg2 & 0x4 == 0x0`.
fn fmt_cond(f: &mut fmt::Formatter<'_>, c: &ArgCond) -> fmt::Result {
    let i = c.index;
    let v = c.value;
    if let Some(role) = c.fd {
        return write!(f, "arg{i} == fd:{role}");
    }
    match &c.op {
        SeccompCmpOp::Eq => write!(f, "arg{i} == {v:#x}"),
        SeccompCmpOp::Ne => write!(f, "arg{i} != {v:#x}"),
        SeccompCmpOp::Lt => write!(f, "arg{i} < {v:#x}"),
        SeccompCmpOp::Le => write!(f, "arg{i} <= {v:#x}"),
        SeccompCmpOp::Gt => write!(f, "arg{i} > {v:#x}"),
        SeccompCmpOp::Ge => write!(f, "arg{i} >= {v:#x}"),
        SeccompCmpOp::MaskedEq(m) => write!(f, "arg{i} & {m:#x} == {v:#x}"),
    }
}

impl fmt::Display for ArgRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgRule::Any => f.write_str("any arguments"),
            ArgRule::Ioctls { fd, requests } => {
                if let Some(role) = fd {
                    write!(f, "fd in {{{role}}} and ")?;
                }
                f.write_str("request in {")?;
                for (i, r) in requests.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{} ({:#x})", r.name, r.request)?;
                }
                f.write_str("}")
            }
            ArgRule::Match(alternatives) => {
                if let Some((index, roles)) = fd_set(alternatives) {
                    return write!(f, "arg{index} in {{{}}}", roles.join(", "));
                }
                for (i, conds) in alternatives.iter().enumerate() {
                    f.write_str(if i == 0 { "(" } else { " or (" })?;
                    for (j, c) in conds.iter().enumerate() {
                        if j > 0 {
                            f.write_str(" and ")?;
                        }
                        fmt_cond(f, c)?;
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

/// `Some((index, roles))` when every alternative is the single condition `arg[index] ==
/// fd:role` on the same argument: printed as `fd in {a, b}`.
pub(crate) fn fd_set(alternatives: &[Vec<ArgCond>]) -> Option<(u8, Vec<&'static str>)> {
    let index = alternatives.first()?.first()?.index;
    let roles = alternatives
        .iter()
        .map(|a| match a.as_slice() {
            [c] if c.index == index && c.op == SeccompCmpOp::Eq => c.fd,
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((index, roles))
}

impl fmt::Display for SyscallRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<16} {:>3}  {}  -- {}",
            self.name, self.nr, self.args, self.reason
        )?;
        if let ArgRule::Ioctls { requests, .. } = &self.args {
            for r in requests {
                write!(f, "\n{:<22}{}: {}", "", r.name, r.reason)?;
            }
        }
        Ok(())
    }
}
