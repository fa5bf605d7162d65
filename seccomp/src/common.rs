//! Rules every glibc + Rust std thread needs, whatever its job.
//!
//! Found with `strace -f` on glibc 2.36 / Rust 1.95 test programs doing what our threads do
//! (malloc churn, std sync, thread exit, panic=abort with and without RUST_BACKTRACE) and on
//! microvm itself (`strace -f --decode-pids=comm -y`, a disk, a TAP and rng).
//!
//! Every fd-taking call a thread makes after its filter goes on is pinned to the fds the
//! thread owns, by role (see `fds.rs`): `read`/`write` list the kind's roles; nothing uses
//! readv/writev/preadv/pwritev, lseek, ftruncate or fallocate; `mmap` is anonymous and
//! private only (no fd at all).

use libc::c_int;

use crate::rule::{ArgCond, ArgRule, ErrnoRule, SyscallRule};

/// `PROT_EXEC` must be clear in `mmap`/`mprotect` prot: no new executable memory.
const NO_EXEC: ArgCond = ArgCond::masked_eq(2, libc::PROT_EXEC as u64, 0);

/// `mmap` flags: the mapping type (`MAP_TYPE` 0x0f), `MAP_FIXED` and `MAP_ANONYMOUS` must be
/// exactly `MAP_PRIVATE|MAP_ANONYMOUS`: no file (so no fd to pin), no shared mapping, no
/// replacing an existing mapping. `MAP_NORESERVE` (glibc arenas) and `MAP_STACK` may be set.
const ANON_PRIVATE: ArgCond = ArgCond::masked_eq(
    3,
    (0x0f | libc::MAP_FIXED | libc::MAP_ANONYMOUS) as u64,
    (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
);

/// What a kind reads and writes, by fd role (see `fds.rs`), hottest first.
pub(crate) struct Io<'a> {
    /// Roles `read` may be called on (none: no `read` rule at all).
    pub(crate) read: &'a [&'static str],
    /// Roles `write` may be called on, besides `stderr` (always last).
    pub(crate) write: &'a [&'static str],
}

/// futex commands ignoring `FUTEX_PRIVATE_FLAG` and `FUTEX_CLOCK_REALTIME`.
const FUTEX_OP_CMD: u64 = 0x7f;

/// Signals a thread may send itself or its siblings with `tgkill`, besides `SIGABRT`.
pub(crate) type Signals<'a> = &'a [(c_int, &'static str)];

/// The rules shared by every thread kind. `signals` lists extra `tgkill` signals the kind
/// sends; `io` the fds it reads and writes.
#[rustfmt::skip]
pub(crate) fn rules(signals: Signals<'_>, io: Io<'_>) -> Vec<SyscallRule> {
    use libc::*;
    let futex_ops = [FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET]
        .iter()
        .map(|op| vec![ArgCond::masked_eq(1, FUTEX_OP_CMD, *op as u64)])
        .collect();
    // tgkill(tgid, tid, sig): only to threads of this process (glibc passes getpid()).
    let pid = u64::from(std::process::id());
    let kill_sigs = std::iter::once(SIGABRT)
        .chain(signals.iter().map(|(sig, _)| *sig))
        .map(|sig| vec![ArgCond::eq(0, pid), ArgCond::eq(2, sig as u64)])
        .collect();
    let mut rules = Vec::new();
    if !io.read.is_empty() {
        rules.push(SyscallRule::on_fds("read", SYS_read, "only the fds this thread reads (eventfds, signalfd, stdin, TAP)", 0, io.read));
    }
    let writes: Vec<&'static str> = io.write.iter().copied().chain(["stderr"]).collect();
    rules.push(SyscallRule::on_fds("write", SYS_write,
        "only the fds this thread writes (eventfds, irqfds, TAP, console); stderr: logs and the SIGSYS report", 0, &writes));
    rules.extend(UNCONDITIONAL
        .iter()
        .map(|(name, nr, reason)| SyscallRule::any(name, *nr, reason)));
    let when = SyscallRule::when;
    rules.extend([
        when("fcntl", SYS_fcntl, "F_GETFD only: Rust debug builds check an fd is open when an OwnedFd drops",
            vec![ArgCond::eq(1, F_GETFD as u64)]),
        when("mmap", SYS_mmap, "anonymous private memory without PROT_EXEC: malloc of large blocks and arenas (MAP_NORESERVE)",
            vec![ANON_PRIVATE, NO_EXEC]),
        when("mprotect", SYS_mprotect, "no PROT_EXEC: glibc grows non-main malloc arenas (PROT_READ|PROT_WRITE)",
            vec![NO_EXEC]),
        when("madvise", SYS_madvise, "MADV_DONTNEED only: malloc trim and thread exit release memory",
            vec![ArgCond::eq(2, MADV_DONTNEED as u64)]),
        when("prctl", SYS_prctl, "PR_GET_NAME only: the SIGSYS reporter names the thread",
            vec![ArgCond::eq(0, PR_GET_NAME as u64)]),
        SyscallRule::new("futex", SYS_futex, "WAIT/WAKE(_BITSET) only: std Mutex/RwLock/Condvar/mpsc, glibc locks, pthread_join (op 265)",
            ArgRule::Match(futex_ops)),
        SyscallRule::new("tgkill", SYS_tgkill, "own process only; SIGABRT from abort() after a panic, plus the kind's signals",
            ArgRule::Match(kill_sigs)),
    ]);
    rules
}

/// Syscalls every kind answers with an errno instead of a trap (no thread opens files once
/// filtered; these calls come from glibc at unpredictable times and tolerate the error).
pub(crate) fn errno_rules() -> Vec<ErrnoRule> {
    vec![ErrnoRule {
        name: "openat",
        nr: libc::SYS_openat,
        errno: libc::EACCES,
        errno_name: "EACCES",
        reason: "glibc free() may open /proc/sys/vm/overcommit_memory on any thread and then assumes the default; Rust backtraces (RUST_BACKTRACE) read /proc/self/maps and degrade",
    }, ErrnoRule {
        name: "readlink",
        nr: libc::SYS_readlink,
        errno: libc::EACCES,
        errno_name: "EACCES",
        reason: "a panic's backtrace (RUST_BACKTRACE) resolves /proc/self/exe; without it the panic still ends by SIGABRT",
    }, ErrnoRule {
        name: "getcwd",
        nr: libc::SYS_getcwd,
        errno: libc::EACCES,
        errno_name: "EACCES",
        reason: "a panic's backtrace (RUST_BACKTRACE) shortens paths relative to the working directory; without it, it prints them whole",
    }]
}

/// Allowed with any arguments: name, number, reason.
#[rustfmt::skip]
const UNCONDITIONAL: &[(&str, i64, &str)] = &[
    ("close", libc::SYS_close, "dropping fds (eventfds, terminal) at shutdown"),
    ("munmap", libc::SYS_munmap, "free() of mmapped blocks; thread exit unmaps the alternate signal stack"),
    ("mremap", libc::SYS_mremap, "realloc() of mmapped blocks; cannot add PROT_EXEC"),
    ("brk", libc::SYS_brk, "malloc on the main arena"),
    ("sched_yield", libc::SYS_sched_yield, "std mpmc channel and spin-wait backoff"),
    ("clock_gettime", libc::SYS_clock_gettime, "Instant/SystemTime when the vDSO falls back to the syscall"),
    ("clock_nanosleep", libc::SYS_clock_nanosleep, "std::thread::sleep"),
    ("getrandom", libc::SYS_getrandom, "the first std HashMap of a thread seeds RandomState"),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask, "thread exit, pthread_kill and abort() block/unblock signals"),
    ("rt_sigreturn", libc::SYS_rt_sigreturn, "return from signal handlers (vCPU kick)"),
    ("sigaltstack", libc::SYS_sigaltstack, "Rust std removes the alternate signal stack at thread exit"),
    ("gettid", libc::SYS_gettid, "Rust panic message prints the thread id; glibc abort()/raise()"),
    ("getpid", libc::SYS_getpid, "glibc pthread_kill/raise/abort: tgkill(getpid(), tid, sig)"),
    ("restart_syscall", libc::SYS_restart_syscall, "the kernel restarts an interrupted sleep (clock_nanosleep, futex) after SIGSTOP/SIGCONT"),
    ("exit", libc::SYS_exit, "thread exit"),
    ("exit_group", libc::SYS_exit_group, "process exit, and the SIGSYS reporter's _exit()"),
];
