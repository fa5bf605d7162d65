//! Installing a program on the calling thread.
//!
//! We call seccomp(2) ourselves rather than `seccompiler::apply_filter`, which always passes
//! flags 0: `SECCOMP_FILTER_FLAG_LOG` makes the kernel also write TRAP and ERRNO decisions to
//! the audit log (dmesg `audit: type=1326`), so `--seccomp true` and `--seccomp log` both keep
//! the audit path working (kernel rule since v4.14/4.18, commit 326bee02: KILL and LOG actions
//! are always logged, TRAP/ERRNO/TRACE/USER_NOTIF only for filters loaded with this flag).
//! Under `--seccomp log` we also pass `SECCOMP_FILTER_FLAG_NEW_LISTENER` and hand the listener
//! to the `seccomp-log` supervisor (see `supervisor.rs`).

use std::os::fd::{FromRawFd, OwnedFd};

use seccompiler::BpfProgram;

use crate::compile::BPF_MAX_INSNS;
use crate::report::thread_name;
use crate::Error;

/// `SECCOMP_SET_MODE_FILTER` (seccomp(2) operation).
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// `SECCOMP_FILTER_FLAG_LOG` (kernel 4.14+).
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;

/// Installs `prog` on the calling thread only (no TSYNC), after setting NO_NEW_PRIVS, with
/// `SECCOMP_FILTER_FLAG_LOG` (retried without it on kernels that refuse the flag).
///
/// While the `seccomp-log` supervisor takes registrations (`--seccomp log`, see
/// [`crate::start_supervisor`]) the filter is loaded with a listener
/// (`SECCOMP_FILTER_FLAG_NEW_LISTENER`), which goes to the supervisor with the thread's name.
///
/// Filters cannot be removed and are inherited by threads spawned afterwards. An empty or
/// oversized program is an error, as is any prctl/seccomp failure; nothing panics.
pub fn install(prog: &BpfProgram) -> Result<(), Error> {
    // Taken before the filter goes on: see `supervisor::registrar`.
    let Some(tx) = crate::supervisor::registrar() else {
        return install_flags(prog, 0).map(drop);
    };
    let fd = install_flags(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    // SAFETY: with NEW_LISTENER a successful seccomp(2) returns a new fd we now own.
    let listener = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::supervisor::hand_over(&tx, listener)
}

/// [`install`] with a listener (`SECCOMP_FILTER_FLAG_NEW_LISTENER`) for the caller to hand
/// on, whether or not this process's supervisor takes registrations: a device process
/// (`--isolate devices`) under `--seccomp log` sends it to the VMM, whose supervisor serves
/// it ([`crate::register_listener`]).
pub fn install_with_listener(prog: &BpfProgram) -> Result<OwnedFd, Error> {
    let fd = install_flags(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    // SAFETY: with NEW_LISTENER a successful seccomp(2) returns a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// [`install`] with `extra` flags besides `SECCOMP_FILTER_FLAG_LOG`; returns seccomp(2)'s
/// result (the listener fd with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, else 0).
pub(crate) fn install_flags(prog: &BpfProgram, extra: libc::c_ulong) -> Result<i32, Error> {
    let current = || {
        let mut buf = [0u8; 16];
        thread_name(&mut buf).to_string()
    };
    let fail = |what: &'static str| Error::InstallSys {
        thread: current(),
        what,
        source: std::io::Error::last_os_error(),
    };
    if prog.is_empty() || prog.len() > BPF_MAX_INSNS {
        return Err(Error::InstallTooLarge {
            thread: current(),
            len: prog.len(),
        });
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(fail("prctl(PR_SET_NO_NEW_PRIVS)"));
    }
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).unwrap_or(u16::MAX),
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    for flags in [SECCOMP_FILTER_FLAG_LOG | extra, extra] {
        // SAFETY: `fprog` points to `prog`, which outlives the call; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc >= 0 {
            return i32::try_from(rc).map_err(|_| fail("seccomp(SECCOMP_SET_MODE_FILTER) result"));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            break;
        }
    }
    Err(fail("seccomp(SECCOMP_SET_MODE_FILTER)"))
}
