//! One seccomp filter per microvm thread kind: rules as data, modes, compile, install, report.
//!
//! Usage: main calls [`install_violation_reporter`] once before spawning threads (and, for
//! [`Mode::Log`], [`start_supervisor`] first of all threads and [`close_registration`] after
//! the last filter went on); each thread
//! gets a program from [`compile`] (built by its parent, moved in) and calls [`install`] as the
//! first statement of its body, skipping it when [`compile`] returned `None` (`--seccomp false`).
//! Process-wide signal handlers (SIGRTMIN kick) must be registered before filters go in: no
//! filter allows `rt_sigaction`.
//!
//! Adding a kind: write `<kind>.rs` with its `SPEC` (see `vcpu.rs`), then add a variant and one
//! arm in [`ThreadKind::spec`] and the `mod` line below.

mod blk;
pub mod bpf;
pub mod check;
mod common;
mod compile;
pub mod docs;
pub mod fds;
mod install;
pub mod ioctls;
pub mod json;
mod logmode;
mod net;
mod report;
mod rng;
mod rule;
pub mod strace;
mod supervisor;
mod syscalls;
mod vcpu;
mod vmm;
pub mod waiter;

use std::fmt;
use std::str::FromStr;

pub use compile::BPF_MAX_INSNS;
pub use fds::FilterContext;
pub use install::{install, install_with_listener};
pub use json::{use_custom_filters, CustomFilters};
pub use logmode::summary as log_summary;
pub use report::{
    format_logged, format_violation, install_violation_reporter, Violation, EXIT_SECCOMP_VIOLATION,
};
pub use rule::{ArgCond, ArgRule, ErrnoRule, Ioctl, SyscallRule};
pub use seccompiler::{sock_filter as SockFilter, BpfProgram};
pub use supervisor::{
    close_registration, compile as supervisor_filter, register_listener, start_supervisor,
    symbolic_rules as supervisor_rules, THREAD_NAME as SUPERVISOR_THREAD,
};
pub use syscalls::{syscall_name, syscall_number};
pub use vmm::P_PIDFD;

/// Errors of this crate; each names the thread kind or thread it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules of a kind could not be lowered to BPF.
    #[error("compiling the {kind} filter: {detail}")]
    Compile {
        /// Thread kind.
        kind: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The program is over the kernel's per-filter instruction limit.
    #[error("the {kind} filter has {len} BPF instructions, over the kernel limit of 4096")]
    TooLarge {
        /// Thread kind.
        kind: &'static str,
        /// Program length.
        len: usize,
    },
    /// Installing the program on the calling thread failed.
    #[error("seccomp(SET_MODE_FILTER) for {thread}: {source}")]
    Install {
        /// Name of the calling thread.
        thread: String,
        /// seccompiler's error (empty program, prctl or seccomp failure).
        source: seccompiler::Error,
    },
    /// A prctl/seccomp call of [`install`] failed.
    #[error("{what} for {thread}: {source}")]
    InstallSys {
        /// Name of the calling thread.
        thread: String,
        /// The failing call.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A custom filter file (`--seccomp-filter`) is invalid.
    #[error("--seccomp-filter {path}: {detail}")]
    FilterFile {
        /// The file.
        path: String,
        /// What is wrong, with the JSON location.
        detail: String,
    },
    /// An empty or oversized program was passed to [`install`].
    #[error(
        "seccomp(SET_MODE_FILTER) for {thread}: program of {len} instructions (must be 1..=4096)"
    )]
    InstallTooLarge {
        /// Name of the calling thread.
        thread: String,
        /// Program length.
        len: usize,
    },
    /// The `seccomp-log` supervisor could not be started or reached.
    #[error("seccomp-log supervisor: {what}: {source}")]
    Supervisor {
        /// What failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SIGSYS handler could not be installed.
    #[error("installing the seccomp violation reporter (sigaction SIGSYS): {0}")]
    Reporter(std::io::Error),
    /// An unknown `--seccomp` value.
    #[error("invalid --seccomp value {0:?}: expected true, false or log")]
    ParseMode(String),
}

/// What a thread does, and so which filter it runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadKind {
    /// The main thread after setup: event loop, stdin, terminal, vCPU stop/join.
    Vmm,
    /// A vCPU thread: KVM_RUN loop and exit emulation.
    Vcpu,
    /// A virtio-blk device thread: its queue and its disk file.
    Blk,
    /// A virtio-net device thread: its rx/tx queues and its TAP.
    Net,
    /// The virtio-rng device thread: its queue and getrandom.
    Rng,
}

/// Static description of a thread kind; each kind file defines one as `SPEC`.
pub(crate) struct KindSpec {
    /// Short name used in CLI output, reports and error messages.
    pub(crate) name: &'static str,
    /// The kind's full rule list (common rules included), fds by role (symbolic).
    pub(crate) rules: fn() -> Vec<SyscallRule>,
    /// Argument-checked syscalls to test first, hottest first.
    pub(crate) hot: &'static [i64],
}

impl ThreadKind {
    /// Every kind, in code order.
    const ALL: [ThreadKind; 5] = [
        ThreadKind::Vmm,
        ThreadKind::Vcpu,
        ThreadKind::Blk,
        ThreadKind::Net,
        ThreadKind::Rng,
    ];

    pub(crate) fn spec(&self) -> &'static KindSpec {
        match self {
            ThreadKind::Vmm => &vmm::SPEC,
            ThreadKind::Vcpu => &vcpu::SPEC,
            ThreadKind::Blk => &blk::SPEC,
            ThreadKind::Net => &net::SPEC,
            ThreadKind::Rng => &rng::SPEC,
        }
    }

    /// Short name: `"vmm"`, `"vcpu"`, `"blk"`, `"net"`, `"rng"`.
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// Every thread kind.
    pub fn all() -> &'static [ThreadKind] {
        &Self::ALL
    }

    /// Non-zero code carried in `SECCOMP_RET_DATA` of the Trap action (1-based index).
    pub(crate) fn code(&self) -> u16 {
        let idx = Self::ALL.iter().position(|k| k == self).unwrap_or(0);
        u16::try_from(idx + 1).unwrap_or(0)
    }

    /// The kind whose [`ThreadKind::code`] is `code`.
    pub(crate) fn from_code(code: u16) -> Option<ThreadKind> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--seccomp true|false|log`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `true`: a forbidden syscall traps (SIGSYS), is reported and ends the process.
    #[default]
    Kill,
    /// `false`: no filter at all.
    Off,
    /// `log`: a forbidden syscall notifies the `seccomp-log` supervisor, which reports it on
    /// stderr (once per thread and call) and lets the kernel run it so the VM keeps running;
    /// the kernel audit log (dmesg `audit: type=1326`) records it too.
    Log,
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "true" => Ok(Mode::Kill),
            "false" => Ok(Mode::Off),
            "log" => Ok(Mode::Log),
            other => Err(Error::ParseMode(other.to_string())),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Kill => "true",
            Mode::Off => "false",
            Mode::Log => "log",
        })
    }
}

/// The filter of `kind` as data, pinned to the fds of `ctx`: the custom one from
/// [`use_custom_filters`] if any, else the built-in one.
pub fn rules(kind: ThreadKind, ctx: &FilterContext) -> Vec<SyscallRule> {
    fds::resolve(&symbolic_rules(kind), ctx)
}

/// The filter of `kind` with fds by role (custom if any, else built-in), as printed.
pub fn symbolic_rules(kind: ThreadKind) -> Vec<SyscallRule> {
    json::custom_rules(kind).unwrap_or_else(|| builtin_symbolic_rules(kind))
}

/// The built-in filter of `kind`, pinned to the fds of `ctx`, in the order it is written
/// (common rules first).
pub fn builtin_rules(kind: ThreadKind, ctx: &FilterContext) -> Vec<SyscallRule> {
    fds::resolve(&builtin_symbolic_rules(kind), ctx)
}

/// The built-in filter of `kind` with fds by role (see [`fds`]).
pub fn builtin_symbolic_rules(kind: ThreadKind) -> Vec<SyscallRule> {
    (kind.spec().rules)()
}

/// Syscalls every kind answers with an errno instead of a trap.
pub fn errno_rules() -> Vec<ErrnoRule> {
    common::errno_rules()
}

/// The BPF program for `kind` in `mode`; `None` for [`Mode::Off`].
pub fn compile(
    kind: ThreadKind,
    mode: Mode,
    ctx: &FilterContext,
) -> Result<Option<BpfProgram>, Error> {
    if mode == Mode::Off {
        return Ok(None);
    }
    compile::build(kind, &rules(kind, ctx), mode).map(Some)
}

/// The BPF program of `rules` for `kind` in `mode` (Kill or Log), e.g. a filter read from a
/// file; [`Mode::Off`] compiles like Kill.
pub fn compile_rules(
    kind: ThreadKind,
    mode: Mode,
    rules: &[SyscallRule],
) -> Result<BpfProgram, Error> {
    let mode = if mode == Mode::Off { Mode::Kill } else { mode };
    compile::build(kind, rules, mode)
}

/// Instructions in the program of `kind` in `mode` (0 for [`Mode::Off`]).
pub fn bpf_len(kind: ThreadKind, mode: Mode, ctx: &FilterContext) -> Result<usize, Error> {
    Ok(compile(kind, mode, ctx)?.map_or(0, |p| p.len()))
}

/// A printable table of the filter of `kind`: name, number, argument conditions, reason, and
/// the program size in Kill mode (or the compile error).
pub fn describe(kind: ThreadKind, ctx: &FilterContext) -> String {
    use fmt::Write as _;
    let rules = symbolic_rules(kind);
    let len = match bpf_len(kind, Mode::Kill, ctx) {
        Ok(len) => format!("{len} BPF instructions"),
        Err(e) => format!("does not compile: {e}"),
    };
    let mut out = format!(
        "seccomp filter of thread kind {kind}: {} system calls, {len}\n  fds: {ctx}\n",
        rules.len()
    );
    for rule in &rules {
        let _ = writeln!(out, "  {rule}");
    }
    out
}

#[cfg(test)]
mod tests;
