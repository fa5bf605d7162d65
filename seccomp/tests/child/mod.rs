//! Running a closure in a forked child: filters cannot be removed and cargo runs tests as
//! threads of one process, so every test that installs a filter does it in a child.

use std::io::Read;
use std::os::fd::FromRawFd;

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// `_exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Forks; the child runs `f` with stderr redirected into a pipe and `_exit`s with its result
/// (101 if it unwinds). A 20 s alarm kills a hung child. Returns the status and child stderr.
pub fn in_child(f: impl FnOnce() -> i32) -> (Status, String) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fork has no memory-safety preconditions; the child only runs `f` and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: plain fd/alarm syscalls on fds this process owns.
        unsafe {
            libc::alarm(20);
            libc::dup2(fds[1], 2);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: fds[1] is ours and no longer needed in the parent.
    unsafe { libc::close(fds[1]) };
    // SAFETY: fds[0] is an open pipe end owned by nothing else.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut err = String::new();
    pipe.read_to_string(&mut err).unwrap();
    let mut status = 0;
    // SAFETY: pid is our child; status is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let status = if libc::WIFEXITED(status) {
        Status::Exited(libc::WEXITSTATUS(status))
    } else {
        Status::Signaled(libc::WTERMSIG(status))
    };
    (status, err)
}

/// Sets the calling thread's name (comm).
pub fn set_thread_name(name: &str) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) };
}

/// Writes `s` to fd 2 directly (std's stderr may be captured by the test harness).
pub fn say(s: &str) {
    // SAFETY: pointer and length describe `s`.
    unsafe { libc::write(2, s.as_ptr().cast(), s.len()) };
}

/// errno of the last failed libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
