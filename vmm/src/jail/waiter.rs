//! The jail's waiter: the parent left outside the new PID namespace once the jailed VMM is
//! forked into it. It forwards the stop signals to the VMM and exits with its exit code,
//! under a seccomp filter of its own (`seccomp::waiter`): wait and signal through a pidfd
//! of the VMM only.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use seccomp::waiter::{FORWARDED, THREAD_NAME};

use super::{drop_privileges, Ids};
use crate::exit::{EXIT_ERROR, EXIT_FILTER_INSTALL};

/// The parent's whole remaining life: keeps no fd above stderr but a pidfd of `child`,
/// takes the jail's uid/gid without capabilities, names itself `jail-waiter`, installs
/// its filter (none for `--seccomp false`), then forwards SIGINT/SIGTERM/SIGHUP to the VMM
/// and exits with its exit code (128 + signal if a signal killed it). It never touches
/// guest data.
pub(super) fn wait_and_exit(child: libc::pid_t, ids: Ids, mode: seccomp::Mode) -> ! {
    // SAFETY: the parent never returns into code that uses the fds it closes: it only
    // waits below and then exits the process.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let pidfd = open_pidfd(child).unwrap_or_else(|e| give_up(child, "opening its pidfd", e));
    if let Err(e) = drop_privileges(ids) {
        // Best effort: the VMM runs already; the waiter still only waits.
        log::warn!("the jail's waiter keeps its privileges: {e}");
    }
    name_process();
    let set = signal_set(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD]);
    // SAFETY: valid set pointer; the old mask is not needed. The stop signals are already
    // blocked (event_loop::block_stop_signals); SIGCHLD joins them so that it is waited for.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    install_filter(child, &pidfd, mode);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
    loop {
        match exited(raw) {
            Ok(Some(code)) => exit(code),
            Ok(None) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => exit(EXIT_ERROR),
        }
        // SAFETY: valid set pointer; no siginfo is requested.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if FORWARDED.contains(&sig) {
            // SAFETY: `raw` is this process's pidfd of its child; no siginfo is passed.
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, raw, sig, 0usize, 0u32) };
        }
    }
}

fn open_pidfd(child: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh fd nothing else owns (it fits an int: the kernel's fd type).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `jail-waiter`, as `ps` and `strace -f --decode-pids=comm` show it (best effort).
fn name_process() {
    let name = std::ffi::CString::new(THREAD_NAME).expect("no NUL in the name");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// The waiter's filter; if it cannot go on, the VMM is killed and the process exits 5 with
/// one error line (an unfiltered waiter is not what `--jail` promises).
fn install_filter(child: libc::pid_t, pidfd: &OwnedFd, mode: seccomp::Mode) {
    let raw = std::os::fd::AsRawFd::as_raw_fd(pidfd);
    log::debug!(
        "seccomp fds of {THREAD_NAME}: {}",
        seccomp::waiter::context(raw)
    );
    let installed = seccomp::waiter::compile(raw, mode)
        .and_then(|prog| prog.map_or(Ok(()), |p| seccomp::install(&p)));
    if let Err(e) = installed {
        log::error!("jail: the {THREAD_NAME} could not install its seccomp filter: {e}");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child, libc::SIGKILL) };
        exit(EXIT_FILTER_INSTALL);
    }
}

/// The exit code of the VMM behind `pidfd` once it has exited, `None` while it runs.
fn exited(pidfd: i32) -> io::Result<Option<i32>> {
    // SAFETY: an all-zero siginfo_t is valid storage for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG;
    // SAFETY: `info` is a valid out-pointer; `pidfd` is this process's pidfd of its child.
    let rc = unsafe { libc::waitid(libc::P_PIDFD, pidfd as libc::id_t, &mut info, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` for a child-state change (or left it zero: no change).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((pid != 0).then(|| exit_code(info.si_code, status)))
}

/// The shell's convention: the exit code, or 128 + the signal that killed the process.
fn exit_code(code: libc::c_int, status: libc::c_int) -> i32 {
    match code {
        libc::CLD_EXITED => status,
        libc::CLD_KILLED | libc::CLD_DUMPED => 128 + status,
        _ => EXIT_ERROR,
    }
}

/// Ends the process now (exit_group: no atexit handler, nothing flushed: it wrote nothing).
fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Before the filter: the VMM must not run on without a waiter that forwards signals.
fn give_up(child: libc::pid_t, what: &str, e: io::Error) -> ! {
    log::error!("jail: the {THREAD_NAME}: {what}: {e}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    exit(EXIT_ERROR)
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is valid storage; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: `set` is initialised; `s` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(libc::CLD_EXITED, 0), 0);
        assert_eq!(exit_code(libc::CLD_EXITED, 3), 3);
        assert_eq!(
            exit_code(libc::CLD_KILLED, libc::SIGKILL),
            128 + libc::SIGKILL
        );
        assert_eq!(
            exit_code(libc::CLD_DUMPED, libc::SIGABRT),
            128 + libc::SIGABRT
        );
    }
}
