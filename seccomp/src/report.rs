//! The SIGSYS violation reporter for `--seccomp true` and `--seccomp log`.
//!
//! A forbidden syscall makes the kernel send SIGSYS (`SECCOMP_RET_TRAP`) to the calling thread.
//! The handler runs on that thread, under its filter, so it only uses syscalls every filter
//! allows: `prctl(PR_GET_NAME)` for the thread name, `write(2)` and `exit_group`. It does not
//! allocate or lock: the line is formatted with `core::fmt` into a stack buffer.
//!
//! Kill mode (`true`): print the line, `_exit(148)`. Log mode: the filtered threads notify the
//! `seccomp-log` supervisor instead (see `supervisor.rs`), which formats its lines with
//! [`format_logged`]; only the supervisor's own filter still traps. Its violation is printed
//! the first time this (thread, syscall[, ioctl request]) is seen and is **not** performed:
//! the handler puts `-ENOSYS` in the interrupted context's RAX (nothing may run a forbidden
//! call on its behalf, and it cannot notify itself).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::{Error, Mode, ThreadKind};

/// Exit status of the process after a seccomp violation in Kill mode.
///
/// 148 is Firecracker's `BadSyscall` code. It cannot be confused with a death by signal in a
/// shell (128 + 20 = SIGTSTP, which stops a process but never kills it), nor with a real SIGSYS
/// death (159), which is what an arch mismatch (`KILL_PROCESS`) gives.
pub const EXIT_SECCOMP_VIOLATION: i32 = 148;

/// `si_code` of a SIGSYS raised by seccomp.
const SYS_SECCOMP: i32 = 1;

/// The SIGSYS fields of `siginfo_t` on x86_64 (`_sigsys` in the kernel's union).
#[repr(C)]
struct SigsysInfo {
    _signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: u64,
    syscall: i32,
    _arch: u32,
}

/// What a trapped syscall was, decoded from siginfo + ucontext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation<'a> {
    /// Thread name (comm), e.g. `vcpu0`.
    pub thread: &'a str,
    /// Thread kind, if the filter carries our kind code.
    pub kind: Option<ThreadKind>,
    /// System call number.
    pub nr: i64,
    /// Arguments from rdi, rsi, rdx, r10, r8, r9.
    pub args: [u64; 6],
    /// Address of the instruction after the `syscall` (`si_call_addr`).
    pub ip: u64,
}

/// A fixed-size, non-allocating `fmt::Write` sink; output past the end is cut.
pub(crate) struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> std::fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats the one-line report of Kill mode (without allocating).
pub fn format_violation(v: &Violation<'_>, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    format_head(v, out)?;
    writeln!(out, "; microvm exits with status {EXIT_SECCOMP_VIOLATION}; rerun with --seccomp log to list every violation (dmesg: audit type=1326)")
}

/// Formats the one-line report of Log mode (without allocating); `note` says what happens.
pub fn format_logged(
    v: &Violation<'_>,
    note: &str,
    out: &mut impl std::fmt::Write,
) -> std::fmt::Result {
    format_head(v, out)?;
    writeln!(out, "; {note}")
}

fn format_head(v: &Violation<'_>, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let kind = v.kind.map_or("?", |k| k.name());
    let name = crate::syscall_name(v.nr).unwrap_or("unknown");
    write!(
        out,
        "microvm: seccomp: thread {} (kind {kind}) made a forbidden system call: {name} ({})",
        v.thread, v.nr
    )?;
    let a = v.args;
    write!(
        out,
        " args [{:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}]",
        a[0], a[1], a[2], a[3], a[4], a[5]
    )?;
    write!(out, " at ip {:#x}", v.ip)
}

/// The mode the handler serves: [`HANDLER_NONE`], [`HANDLER_KILL`] or [`HANDLER_LOG`]
/// (an atomic, so the signal handler can read it).
static HANDLER_MODE: AtomicU8 = AtomicU8::new(HANDLER_NONE);
const HANDLER_NONE: u8 = 0;
const HANDLER_KILL: u8 = 1;
const HANDLER_LOG: u8 = 2;

/// Reads the calling thread's name (comm) into `buf`; `"?"` if that fails.
pub(crate) fn thread_name(buf: &mut [u8; 16]) -> &str {
    // SAFETY: PR_GET_NAME writes at most 16 bytes (NUL included) into the 16-byte buffer.
    let rc = unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr(), 0, 0, 0) };
    if rc != 0 {
        return "?";
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..len]).unwrap_or("?")
}

/// Writes all of `bytes` to fd 2, ignoring errors (nothing else can be done in a handler).
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live `bytes` slice.
        let n = unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => bytes = &bytes[n..],
            _ => return,
        }
    }
}

extern "C" fn handle_sigsys(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ucontext: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler; SigsysInfo mirrors
    // the x86_64 layout of its first fields and SIGSYS fills the `_sigsys` member.
    let si = unsafe { &*(info as *const SigsysInfo) };
    let mut line = StackBuf::<512>::new();
    if si.code != SYS_SECCOMP || ucontext.is_null() {
        let _ = writeln!(
            line,
            "microvm: received SIGSYS (si_code {}) not raised by seccomp",
            si.code
        );
        write_stderr(line.as_bytes());
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(128 + libc::SIGSYS) };
    }
    // SAFETY: non-null ucontext of an SA_SIGINFO handler points to the interrupted context.
    let regs = unsafe { (*(ucontext as *const libc::ucontext_t)).uc_mcontext.gregs };
    let reg = |r: libc::c_int| regs[r as usize] as u64;
    let mut name = [0u8; 16];
    let v = Violation {
        thread: thread_name(&mut name),
        kind: u16::try_from(si.errno).ok().and_then(ThreadKind::from_code),
        nr: i64::from(si.syscall),
        args: [
            reg(libc::REG_RDI),
            reg(libc::REG_RSI),
            reg(libc::REG_RDX),
            reg(libc::REG_R10),
            reg(libc::REG_R8),
            reg(libc::REG_R9),
        ],
        ip: si.call_addr,
    };
    if HANDLER_MODE.load(Ordering::Relaxed) == HANDLER_LOG {
        // SAFETY: the kernel's ucontext is ours to modify; rt_sigreturn restores it.
        let gregs = unsafe { &mut (*(ucontext as *mut libc::ucontext_t)).uc_mcontext.gregs };
        let (exit, note) = log_plan(&v);
        if crate::logmode::record(&v) {
            let _ = format_logged(&v, note, &mut line);
            write_stderr(line.as_bytes());
        }
        if exit {
            // SAFETY: _exit (exit_group) is async-signal-safe and allowed by every filter.
            unsafe { libc::_exit(EXIT_SECCOMP_VIOLATION) };
        }
        gregs[libc::REG_RAX as usize] = -i64::from(libc::ENOSYS);
        return;
    }
    let _ = format_violation(&v, &mut line);
    write_stderr(line.as_bytes());
    // SAFETY: _exit (exit_group) is async-signal-safe and allowed by every filter.
    unsafe { libc::_exit(EXIT_SECCOMP_VIOLATION) };
}

/// Log mode, a trap (so on the supervisor, whose filter alone traps): whether microvm must
/// exit, and the note for the report line. The call itself never runs.
fn log_plan(v: &Violation<'_>) -> (bool, &'static str) {
    if v.nr == libc::SYS_rt_sigreturn {
        return (
            true,
            "rt_sigreturn cannot be failed from a signal handler: microvm exits with status 148",
        );
    }
    (false, "NOT run: a forbidden call of the seccomp-log supervisor itself fails with ENOSYS (nothing may run it on its behalf)")
}

/// Installs the process-wide reporter for `mode`. Call once from main before spawning threads.
///
/// Kill and Log: a SIGSYS handler (SA_SIGINFO | SA_ONSTACK, all signals blocked while it runs)
/// that prints one line naming thread, kind, syscall and arguments; Kill then exits the process
/// with [`EXIT_SECCOMP_VIOLATION`], Log (where only the `seccomp-log` supervisor traps) fails
/// the call with `ENOSYS` and lets the thread continue (see [`crate::log_summary`]).
/// Off: nothing.
pub fn install_violation_reporter(mode: Mode) -> Result<(), Error> {
    match mode {
        Mode::Off => Ok(()),
        Mode::Kill | Mode::Log => {
            HANDLER_MODE.store(
                if mode == Mode::Log {
                    HANDLER_LOG
                } else {
                    HANDLER_KILL
                },
                Ordering::Relaxed,
            );
            // SAFETY: an all-zero sigaction is a valid starting value.
            let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
            act.sa_sigaction = handle_sigsys as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: sa_mask is a valid sigset_t owned by `act`.
            unsafe { libc::sigfillset(&mut act.sa_mask) };
            // SAFETY: `act` is fully initialised; the old action is not requested.
            let rc = unsafe { libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut()) };
            if rc != 0 {
                return Err(Error::Reporter(std::io::Error::last_os_error()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ThreadKind;

    #[test]
    fn violation_line_format() {
        let v = Violation {
            thread: "vcpu0",
            kind: Some(ThreadKind::Vcpu),
            nr: libc::SYS_socket,
            args: [2, 1, 0, 0, 0, 0],
            ip: 0x7f00_1234,
        };
        let mut buf = StackBuf::<512>::new();
        format_violation(&v, &mut buf).unwrap();
        let line = std::str::from_utf8(buf.as_bytes()).unwrap();
        assert_eq!(
            line,
            "microvm: seccomp: thread vcpu0 (kind vcpu) made a forbidden system call: socket (41) \
             args [0x2, 0x1, 0x0, 0x0, 0x0, 0x0] at ip 0x7f001234; microvm exits with status 148; \
             rerun with --seccomp log to list every violation (dmesg: audit type=1326)\n"
        );
        let mut tiny = StackBuf::<16>::new();
        format_violation(&v, &mut tiny).unwrap();
        assert_eq!(tiny.as_bytes(), b"microvm: seccomp");
    }
}
