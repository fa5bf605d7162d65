//! `microvm seccomp check`: the sandbox proves itself. For each thread kind, one forked
//! child per escape system call installs that kind's real filter (kill mode, no SIGSYS
//! handler) and tries the call; the parent records what stopped it (the kernel killed the
//! child by SIGSYS, or the filter answered an errno), and flags any call the filter let
//! through. The BPF simulator ([`crate::bpf`]) predicts the same decision, and the two must
//! agree.

use std::fmt;

use crate::bpf::{simulate, SeccompData};
use crate::{compile, BpfProgram, Error, FilterContext, Mode, ThreadKind};

/// An escape attempt: a system call no microvm thread may make, with harmless arguments.
#[derive(Debug, Clone, Copy)]
pub struct Escape {
    /// What is tried, e.g. "socket(AF_INET)".
    pub what: &'static str,
    /// System call number.
    pub nr: i64,
    /// Arguments; `PATH` / `PAGE` / `ARGV` placeholders are replaced in the child.
    pub args: [u64; 6],
}

const PATH: u64 = u64::MAX - 1;
const PAGE: u64 = u64::MAX - 2;
const ARGV: u64 = u64::MAX - 3;

const PROT_RX: u64 = (libc::PROT_READ | libc::PROT_EXEC) as u64;
const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;

/// The escape list of issue "the sandbox proves itself".
pub const ESCAPES: &[Escape] = &[
    Escape {
        what: "execve(/bin/true)",
        nr: libc::SYS_execve,
        args: [PATH, ARGV, 0, 0, 0, 0],
    },
    Escape {
        what: "execveat(/bin/true)",
        nr: libc::SYS_execveat,
        args: [libc::AT_FDCWD as u64, PATH, ARGV, 0, 0, 0],
    },
    Escape {
        what: "fork()",
        nr: libc::SYS_fork,
        args: [0; 6],
    },
    Escape {
        what: "vfork()",
        nr: libc::SYS_vfork,
        args: [0; 6],
    },
    Escape {
        what: "clone(SIGCHLD) (a process)",
        nr: libc::SYS_clone,
        args: [libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "clone3()",
        nr: libc::SYS_clone3,
        args: [0; 6],
    },
    Escape {
        what: "socket(AF_INET, SOCK_STREAM)",
        nr: libc::SYS_socket,
        args: [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
    },
    Escape {
        what: "connect()",
        nr: libc::SYS_connect,
        args: [u64::MAX, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "bind()",
        nr: libc::SYS_bind,
        args: [u64::MAX, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "open(/etc/passwd, O_RDONLY)",
        nr: libc::SYS_open,
        args: [PATH, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "openat(/etc/passwd, O_RDONLY)",
        nr: libc::SYS_openat,
        args: [libc::AT_FDCWD as u64, PATH, 0, 0, 0, 0],
    },
    Escape {
        what: "openat(/etc/passwd, O_WRONLY)",
        nr: libc::SYS_openat,
        args: [libc::AT_FDCWD as u64, PATH, libc::O_WRONLY as u64, 0, 0, 0],
    },
    Escape {
        what: "ptrace(PTRACE_TRACEME)",
        nr: libc::SYS_ptrace,
        args: [libc::PTRACE_TRACEME as u64, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "process_vm_writev()",
        nr: libc::SYS_process_vm_writev,
        args: [1, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "mprotect(PROT_READ|PROT_EXEC)",
        nr: libc::SYS_mprotect,
        args: [PAGE, 4096, PROT_RX, 0, 0, 0],
    },
    Escape {
        what: "mmap(PROT_READ|PROT_EXEC)",
        nr: libc::SYS_mmap,
        args: [0, 4096, PROT_RX, ANON, u64::MAX, 0],
    },
    Escape {
        what: "bpf(BPF_MAP_CREATE)",
        nr: libc::SYS_bpf,
        args: [0; 6],
    },
    Escape {
        what: "perf_event_open()",
        nr: libc::SYS_perf_event_open,
        args: [0, 0, u64::MAX, u64::MAX, 0, 0],
    },
    Escape {
        what: "userfaultfd()",
        nr: libc::SYS_userfaultfd,
        args: [0; 6],
    },
    Escape {
        what: "io_uring_setup()",
        nr: libc::SYS_io_uring_setup,
        args: [1, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "kexec_load()",
        nr: libc::SYS_kexec_load,
        args: [0; 6],
    },
    Escape {
        what: "init_module()",
        nr: libc::SYS_init_module,
        args: [0; 6],
    },
    Escape {
        what: "unshare(CLONE_NEWUSER)",
        nr: libc::SYS_unshare,
        args: [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "setns()",
        nr: libc::SYS_setns,
        args: [u64::MAX, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "mount()",
        nr: libc::SYS_mount,
        args: [0; 6],
    },
    Escape {
        what: "keyctl(KEYCTL_GET_KEYRING_ID)",
        nr: libc::SYS_keyctl,
        args: [0, u64::MAX, 0, 0, 0, 0],
    },
    Escape {
        what: "personality(PER_LINUX32)",
        nr: libc::SYS_personality,
        args: [8, 0, 0, 0, 0, 0],
    },
    // fd pins: calls on fds the thread does not own, or that no thread makes at all.
    Escape {
        what: "write(a fresh fd 1000)",
        nr: libc::SYS_write,
        args: [1000, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "read(a fresh fd 1000)",
        nr: libc::SYS_read,
        args: [1000, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "pwrite64(a fresh fd 1000)",
        nr: libc::SYS_pwrite64,
        args: [1000, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "writev(stderr)",
        nr: libc::SYS_writev,
        args: [2, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "lseek(stderr, 0, SEEK_CUR)",
        nr: libc::SYS_lseek,
        args: [2, 0, libc::SEEK_CUR as u64, 0, 0, 0],
    },
    Escape {
        what: "ftruncate(stderr, 0)",
        nr: libc::SYS_ftruncate,
        args: [2, 0, 0, 0, 0, 0],
    },
    Escape {
        what: "fallocate(stderr)",
        nr: libc::SYS_fallocate,
        args: [2, 0, 0, 4096, 0, 0],
    },
    Escape {
        what: "mmap(MAP_SHARED, stderr)",
        nr: libc::SYS_mmap,
        args: [
            0,
            4096,
            libc::PROT_READ as u64,
            libc::MAP_SHARED as u64,
            2,
            0,
        ],
    },
    Escape {
        what: "statx(/etc/passwd)",
        nr: libc::SYS_statx,
        args: [libc::AT_FDCWD as u64, PATH, 0, 0x7ff, PAGE, 0],
    },
    Escape {
        what: "newfstatat(/etc/passwd)",
        nr: libc::SYS_newfstatat,
        args: [libc::AT_FDCWD as u64, PATH, PAGE, 0, 0, 0],
    },
    Escape {
        what: "ioctl(stderr, TIOCSTI)",
        nr: libc::SYS_ioctl,
        args: [2, 0x5412, PAGE, 0, 0, 0],
    },
];

/// What happened to one escape attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The child died by SIGSYS: the filter trapped the call.
    KilledBySigsys,
    /// The call returned this errno, decided by the filter.
    FilterErrno(i32),
    /// The filter allowed it (the kernel then returned this value / errno).
    GotThrough(String),
    /// Simulator and kernel disagree, or the child ended otherwise: a bug to look at.
    Inconsistent(String),
}

impl Outcome {
    /// True when the filter stopped the call.
    pub fn stopped(&self) -> bool {
        matches!(self, Outcome::KilledBySigsys | Outcome::FilterErrno(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::KilledBySigsys => write!(f, "stopped: trapped (SIGSYS)"),
            Outcome::FilterErrno(e) => write!(
                f,
                "stopped: the filter answered {}",
                std::io::Error::from_raw_os_error(*e)
            ),
            Outcome::GotThrough(how) => write!(f, "GOT THROUGH the filter ({how})"),
            Outcome::Inconsistent(how) => write!(f, "INCONSISTENT: {how}"),
        }
    }
}

/// Checks every escape against `kind`'s built-in filter, pinned to the fds of
/// [`FilterContext::example`].
pub fn check_kind(kind: ThreadKind) -> Result<Vec<(Escape, Outcome)>, Error> {
    let prog = compile(kind, Mode::Kill, &FilterContext::example(kind))?.unwrap_or_default();
    Ok(check_program(&prog))
}

/// Checks every escape against a compiled kill-mode program.
pub fn check_program(prog: &BpfProgram) -> Vec<(Escape, Outcome)> {
    ESCAPES.iter().map(|e| (*e, try_escape(prog, e))).collect()
}

fn try_escape(prog: &BpfProgram, e: &Escape) -> Outcome {
    let predicted = simulate(prog, &SeccompData::new(e.nr, e.args));
    let real = run_in_child(prog, e);
    match (predicted.allows(), predicted.errno(), real) {
        (false, None, Ok(ChildEnd::Signal(libc::SIGSYS))) => Outcome::KilledBySigsys,
        (false, Some(p), Ok(ChildEnd::Returned(-1, errno))) if p == errno => {
            Outcome::FilterErrno(errno)
        }
        (true, _, Ok(ChildEnd::Returned(ret, errno))) => Outcome::GotThrough(if ret < 0 {
            format!(
                "the kernel then refused it: {}",
                std::io::Error::from_raw_os_error(errno)
            )
        } else {
            format!("returned {ret}")
        }),
        (true, _, Ok(ChildEnd::Replaced)) => Outcome::GotThrough("the exec succeeded".into()),
        (_, _, Ok(end)) => {
            Outcome::Inconsistent(format!("simulator said {predicted:?}, the child {end:?}"))
        }
        (_, _, Err(err)) => Outcome::Inconsistent(format!("cannot run the child: {err}")),
    }
}

/// How the child ended.
#[derive(Debug)]
enum ChildEnd {
    /// The call returned (value, errno).
    Returned(i64, i32),
    /// The child was killed by this signal.
    Signal(i32),
    /// It exited without reporting: an exec replaced it.
    Replaced,
}

fn run_in_child(prog: &BpfProgram, e: &Escape) -> std::io::Result<ChildEnd> {
    let path = c"/etc/passwd";
    let exe = c"/bin/true";
    let argv: [*const libc::c_char; 2] = [exe.as_ptr(), std::ptr::null()];
    // SAFETY: an anonymous private page for mprotect; unmapped by the parent below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let is_exec = e.nr == libc::SYS_execve || e.nr == libc::SYS_execveat;
    let args = e.args.map(|a| match a {
        PATH if is_exec => exe.as_ptr() as u64,
        PATH => path.as_ptr() as u64,
        PAGE => page as u64,
        ARGV => argv.as_ptr() as u64,
        a => a,
    });
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two pipe ends.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the child only makes async-signal-safe calls (prctl/seccomp via `install`,
    // the raw system call, write, _exit) before it exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: closing the read end in the child; the write end becomes fd 2, the one fd
        // every filter lets a thread write (stderr).
        unsafe {
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
        }
        if crate::install(prog).is_err() {
            // SAFETY: ending the child.
            unsafe { libc::_exit(120) };
        }
        // SAFETY: the escape's own arguments; every pointer is valid in this child.
        let ret =
            unsafe { libc::syscall(e.nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
        if ret == 0
            && matches!(
                e.nr,
                libc::SYS_fork | libc::SYS_vfork | libc::SYS_clone | libc::SYS_clone3
            )
        {
            // A new process that got through: end it at once.
            // SAFETY: ending the grandchild.
            unsafe { libc::_exit(0) };
        }
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let mut msg = [0u8; 12];
        msg[..8].copy_from_slice(&(ret as i64).to_le_bytes());
        msg[8..].copy_from_slice(&errno.to_le_bytes());
        // SAFETY: writing 12 bytes from a valid buffer, then ending the child.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing the write end in the parent.
    unsafe { libc::close(fds[1]) };
    let result = if pid < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        let mut msg = [0u8; 12];
        // SAFETY: reading at most 12 bytes into `msg`.
        let n = unsafe { libc::read(fds[0], msg.as_mut_ptr().cast(), msg.len()) };
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        Ok(if libc::WIFSIGNALED(status) {
            ChildEnd::Signal(libc::WTERMSIG(status))
        } else if n == 12 {
            let ret = i64::from_le_bytes(msg[..8].try_into().unwrap_or_default());
            let errno = i32::from_le_bytes(msg[8..].try_into().unwrap_or_default());
            ChildEnd::Returned(ret, errno)
        } else {
            ChildEnd::Replaced
        })
    };
    // SAFETY: closing our pipe end and unmapping the page mapped above.
    unsafe {
        libc::close(fds[0]);
        libc::munmap(page, 4096);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile_rules, rules, SyscallRule};

    #[test]
    fn every_escape_is_stopped_for_every_kind() {
        for kind in ThreadKind::all() {
            for (e, outcome) in check_kind(*kind).unwrap() {
                assert!(outcome.stopped(), "{kind}: {}: {outcome}", e.what);
            }
        }
    }

    #[test]
    fn a_filter_that_allows_socket_is_caught() {
        let mut r = rules(ThreadKind::Vcpu, &FilterContext::example(ThreadKind::Vcpu));
        r.push(SyscallRule::new(
            "socket",
            libc::SYS_socket,
            "test: a hole",
            crate::ArgRule::Any,
        ));
        let prog = compile_rules(ThreadKind::Vcpu, Mode::Kill, &r).unwrap();
        let results = check_program(&prog);
        let through: Vec<&str> = results
            .iter()
            .filter(|(_, o)| !o.stopped())
            .map(|(e, _)| e.what)
            .collect();
        assert_eq!(through, ["socket(AF_INET, SOCK_STREAM)"]);
        let socket = results
            .iter()
            .find(|(e, _)| e.nr == libc::SYS_socket)
            .unwrap();
        assert!(
            matches!(&socket.1, Outcome::GotThrough(how) if how.starts_with("returned ")),
            "{:?}",
            socket.1
        );
    }
}
