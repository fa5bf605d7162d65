//! The sandbox checked from outside (issue 13): while a VM with a disk, a TAP and an rng
//! runs, every thread, every device process and the `--jail` waiter has its real seccomp
//! filter read back with
//! ptrace and run in the tests' own BPF interpreter (common/cbpf.rs). Each must carry
//! exactly one filter, and it must refuse each fd the thread does not own (per the fd map
//! microvm logs at debug level, itself checked against what /proc says the fds are), each
//! call on a path and each escape below. A test build that opens holes (the test hook's
//! `MICROVM_TEST_FILTER_HOLE`) must be caught, hole by hole.

mod common;
use common::cbpf::{decide, filters_of, Insn, Verdict};
use common::netns::Netns;
use common::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

/// Pointer-like arguments: any address; the filter never reads memory.
const P: u64 = 0x1000;
/// `AT_FDCWD`, sign-extended as glibc passes it, and as a 32-bit int.
const CWD: [u64; 2] = [(-100i64) as u64, 0xffff_ff9c];

/// Calls on an fd, with the fd's argument index and the other arguments.
#[rustfmt::skip]
const FD_CALLS: &[(&str, i64, usize, [u64; 6])] = &[
    ("read", libc::SYS_read, 0, [0, P, 8, 0, 0, 0]),
    ("write", libc::SYS_write, 0, [0, P, 8, 0, 0, 0]),
    ("readv", libc::SYS_readv, 0, [0, P, 1, 0, 0, 0]),
    ("writev", libc::SYS_writev, 0, [0, P, 1, 0, 0, 0]),
    ("pread64", libc::SYS_pread64, 0, [0, P, 8, 0, 0, 0]),
    ("pwrite64", libc::SYS_pwrite64, 0, [0, P, 8, 0, 0, 0]),
    ("preadv", libc::SYS_preadv, 0, [0, P, 1, 0, 0, 0]),
    ("pwritev", libc::SYS_pwritev, 0, [0, P, 1, 0, 0, 0]),
    ("preadv2", libc::SYS_preadv2, 0, [0, P, 1, 0, 0, 0]),
    ("pwritev2", libc::SYS_pwritev2, 0, [0, P, 1, 0, 0, 0]),
    ("fsync", libc::SYS_fsync, 0, [0; 6]),
    ("fdatasync", libc::SYS_fdatasync, 0, [0; 6]),
    ("ioctl KVM_RUN", libc::SYS_ioctl, 0, [0, 0xae80, 0, 0, 0, 0]),
    ("ioctl TUNSETIFF", libc::SYS_ioctl, 0, [0, 0x4004_54ca, P, 0, 0, 0]),
    ("ioctl FIONREAD", libc::SYS_ioctl, 0, [0, 0x541b, P, 0, 0, 0]),
    ("mmap MAP_SHARED", libc::SYS_mmap, 4, [0, 4096, 3, 1, 0, 0]),
    ("mmap MAP_PRIVATE", libc::SYS_mmap, 4, [0, 4096, 3, 2, 0, 0]),
    ("epoll_ctl as epfd", libc::SYS_epoll_ctl, 0, [0, 1, 0, P, 0, 0]),
    ("lseek", libc::SYS_lseek, 0, [0, 0, 1, 0, 0, 0]),
    ("ftruncate", libc::SYS_ftruncate, 0, [0; 6]),
    ("fallocate", libc::SYS_fallocate, 0, [0, 0, 0, 4096, 0, 0]),
    ("sendmsg", libc::SYS_sendmsg, 0, [0, P, 0, 0, 0, 0]),
    ("recvmsg", libc::SYS_recvmsg, 0, [0, P, 0, 0, 0, 0]),
    ("sendto", libc::SYS_sendto, 0, [0, P, 8, 0, 0, 0]),
    ("recvfrom", libc::SYS_recvfrom, 0, [0, P, 8, 0, 0, 0]),
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal, 0, [0, 15, 0, 0, 0, 0]),
    ("waitid(P_PIDFD)", libc::SYS_waitid, 1, [3, 0, P, 5, 0, 0]),
];

/// Calls naming a path; the first argument is the directory fd where the call has one
/// (tried with AT_FDCWD both ways), a path pointer otherwise.
#[rustfmt::skip]
const PATH_CALLS: &[(&str, i64, bool)] = &[
    ("open", libc::SYS_open, false),
    ("creat", libc::SYS_creat, false),
    ("openat", libc::SYS_openat, true),
    ("openat2", libc::SYS_openat2, true),
    ("stat", libc::SYS_stat, false),
    ("lstat", libc::SYS_lstat, false),
    ("newfstatat", libc::SYS_newfstatat, true),
    ("statx", libc::SYS_statx, true),
    ("statfs", libc::SYS_statfs, false),
    ("access", libc::SYS_access, false),
    ("faccessat", libc::SYS_faccessat, true),
    ("faccessat2", libc::SYS_faccessat2, true),
    ("readlink", libc::SYS_readlink, false),
    ("readlinkat", libc::SYS_readlinkat, true),
    ("getcwd", libc::SYS_getcwd, false),
    ("chdir", libc::SYS_chdir, false),
    ("mkdir", libc::SYS_mkdir, false),
    ("mkdirat", libc::SYS_mkdirat, true),
    ("rmdir", libc::SYS_rmdir, false),
    ("unlink", libc::SYS_unlink, false),
    ("unlinkat", libc::SYS_unlinkat, true),
    ("rename", libc::SYS_rename, false),
    ("renameat2", libc::SYS_renameat2, true),
    ("link", libc::SYS_link, false),
    ("linkat", libc::SYS_linkat, true),
    ("symlink", libc::SYS_symlink, false),
    ("chmod", libc::SYS_chmod, false),
    ("fchmodat", libc::SYS_fchmodat, true),
    ("chown", libc::SYS_chown, false),
    ("fchownat", libc::SYS_fchownat, true),
    ("truncate", libc::SYS_truncate, false),
    ("mknodat", libc::SYS_mknodat, true),
    ("utimensat", libc::SYS_utimensat, true),
    ("inotify_add_watch", libc::SYS_inotify_add_watch, false),
    ("name_to_handle_at", libc::SYS_name_to_handle_at, true),
    ("execve", libc::SYS_execve, false),
    ("execveat", libc::SYS_execveat, true),
    ("chroot", libc::SYS_chroot, false),
    ("mount", libc::SYS_mount, false),
    ("umount2", libc::SYS_umount2, false),
    ("pivot_root", libc::SYS_pivot_root, false),
    ("swapon", libc::SYS_swapon, false),
];

/// Ways out of the sandbox that need no fd of the thread's own (or are tried on every fd:
/// `true`, the fd as the first argument).
#[rustfmt::skip]
const ESCAPES: &[(&str, i64, bool, [u64; 6])] = &[
    ("fork", libc::SYS_fork, false, [0; 6]),
    ("vfork", libc::SYS_vfork, false, [0; 6]),
    ("clone(SIGCHLD)", libc::SYS_clone, false, [17, 0, 0, 0, 0, 0]),
    ("clone(a thread)", libc::SYS_clone, false, [0x3d_0f00, P, 0, 0, 0, 0]),
    ("clone3", libc::SYS_clone3, false, [P, 88, 0, 0, 0, 0]),
    ("socket(AF_INET)", libc::SYS_socket, false, [2, 1, 0, 0, 0, 0]),
    ("socket(AF_UNIX)", libc::SYS_socket, false, [1, 5, 0, 0, 0, 0]),
    ("socket(AF_NETLINK)", libc::SYS_socket, false, [16, 3, 0, 0, 0, 0]),
    ("socket(AF_PACKET)", libc::SYS_socket, false, [17, 3, 0, 0, 0, 0]),
    ("socketpair", libc::SYS_socketpair, false, [1, 5, 0, P, 0, 0]),
    ("connect", libc::SYS_connect, true, [0, P, 16, 0, 0, 0]),
    ("bind", libc::SYS_bind, true, [0, P, 16, 0, 0, 0]),
    ("listen", libc::SYS_listen, true, [0, 1, 0, 0, 0, 0]),
    ("accept4", libc::SYS_accept4, true, [0, 0, 0, 0, 0, 0]),
    ("dup", libc::SYS_dup, true, [0; 6]),
    ("dup2", libc::SYS_dup2, true, [0, 900, 0, 0, 0, 0]),
    ("dup3", libc::SYS_dup3, true, [0, 900, 0, 0, 0, 0]),
    ("fchdir", libc::SYS_fchdir, true, [0; 6]),
    ("pidfd_getfd", libc::SYS_pidfd_getfd, true, [0, 0, 0, 0, 0, 0]),
    ("pidfd_open(1)", libc::SYS_pidfd_open, false, [1, 0, 0, 0, 0, 0]),
    ("ptrace(PTRACE_ATTACH, 1)", libc::SYS_ptrace, false, [16, 1, 0, 0, 0, 0]),
    ("process_vm_readv(1)", libc::SYS_process_vm_readv, false, [1, P, 1, P, 1, 0]),
    ("process_vm_writev(1)", libc::SYS_process_vm_writev, false, [1, P, 1, P, 1, 0]),
    ("kill(1, SIGKILL)", libc::SYS_kill, false, [1, 9, 0, 0, 0, 0]),
    ("tgkill(1, 1, SIGKILL)", libc::SYS_tgkill, false, [1, 1, 9, 0, 0, 0]),
    ("mprotect(PROT_EXEC)", libc::SYS_mprotect, false, [P, 4096, 5, 0, 0, 0]),
    ("pkey_mprotect(PROT_EXEC)", libc::SYS_pkey_mprotect, false, [P, 4096, 5, 0, 0, 0]),
    ("mmap(PROT_EXEC, anonymous)", libc::SYS_mmap, false, [0, 4096, 5, 0x22, u64::MAX, 0]),
    ("mmap(MAP_SHARED, anonymous)", libc::SYS_mmap, false, [0, 4096, 3, 0x21, u64::MAX, 0]),
    ("memfd_create", libc::SYS_memfd_create, false, [P, 0, 0, 0, 0, 0]),
    ("userfaultfd", libc::SYS_userfaultfd, false, [0; 6]),
    ("bpf", libc::SYS_bpf, false, [5, P, 72, 0, 0, 0]),
    ("perf_event_open", libc::SYS_perf_event_open, false, [P, 0, u64::MAX, u64::MAX, 0, 0]),
    ("io_uring_setup", libc::SYS_io_uring_setup, false, [8, P, 0, 0, 0, 0]),
    ("setns", libc::SYS_setns, true, [0; 6]),
    ("unshare(CLONE_NEWUSER)", libc::SYS_unshare, false, [0x1000_0000, 0, 0, 0, 0, 0]),
    ("seccomp(SET_MODE_FILTER)", libc::SYS_seccomp, false, [1, 0, P, 0, 0, 0]),
    ("init_module", libc::SYS_init_module, false, [P, 8, P, 0, 0, 0]),
    ("finit_module", libc::SYS_finit_module, true, [0, P, 0, 0, 0, 0]),
    ("kexec_load", libc::SYS_kexec_load, false, [0; 6]),
    ("keyctl", libc::SYS_keyctl, false, [0; 6]),
    ("add_key", libc::SYS_add_key, false, [P, P, P, 8, 0, 0]),
    ("setuid(0)", libc::SYS_setuid, false, [0; 6]),
    ("setresuid(0)", libc::SYS_setresuid, false, [0; 6]),
    ("capset", libc::SYS_capset, false, [P, P, 0, 0, 0, 0]),
    ("personality", libc::SYS_personality, false, [0x0004_0000, 0, 0, 0, 0, 0]),
    ("iopl(3)", libc::SYS_iopl, false, [3, 0, 0, 0, 0, 0]),
    ("ioperm", libc::SYS_ioperm, false, [0, 0x400, 1, 0, 0, 0]),
    ("modify_ldt", libc::SYS_modify_ldt, false, [1, P, 16, 0, 0, 0]),
    ("reboot", libc::SYS_reboot, false, [0xfee1_dead, 0x2812_1969, 0x4321_fedc, 0, 0, 0]),
    ("sethostname", libc::SYS_sethostname, false, [P, 4, 0, 0, 0, 0]),
    ("settimeofday", libc::SYS_settimeofday, false, [P, 0, 0, 0, 0, 0]),
    ("clock_settime", libc::SYS_clock_settime, false, [0, P, 0, 0, 0, 0]),
    ("syslog", libc::SYS_syslog, false, [3, P, 64, 0, 0, 0]),
];

/// A thread to check: its process, id and name.
#[derive(Debug)]
struct Task {
    pid: u32,
    tid: i32,
    name: String,
}

/// The user threads of `pid` and of each process it forked (its device processes).
fn tasks(pid: u32) -> Vec<Task> {
    let mut procs = vec![pid];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let kids = std::fs::read_to_string(t.expect("task").path().join("children"));
        procs.extend(
            kids.unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    let mut out = Vec::new();
    for p in procs {
        for t in std::fs::read_dir(format!("/proc/{p}/task")).expect("task dir") {
            let dir = t.expect("task").path();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let flags: u64 = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(6))
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            // PF_USER_WORKER: KVM's kernel workers run no user code (see common/procfs.rs).
            if flags & 0x4000 != 0 {
                continue;
            }
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let tid = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok());
            out.push(Task {
                pid: p,
                tid: tid.expect("a numeric task id"),
                name: name.trim().to_string(),
            });
        }
    }
    out
}

/// `pid`'s open fds and what each is (`readlink /proc/PID/fd/N`).
fn fd_table(pid: u32) -> BTreeMap<u64, String> {
    let mut fds = BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fd dir") {
        let e = e.expect("fd entry");
        if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            fds.insert(fd, target.display().to_string());
        }
    }
    fds
}

/// Each thread's fds by the map microvm logs (`seccomp fds of NAME: role=fd,fd ...`).
fn owned_fds(stderr: &str) -> BTreeMap<String, Vec<u64>> {
    let mut maps = BTreeMap::new();
    for line in stderr.lines() {
        let Some((_, rest)) = line.split_once("seccomp fds of ") else {
            continue;
        };
        let Some((name, map)) = rest.split_once(": ") else {
            continue;
        };
        let fds = map
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .flat_map(|(_, list)| list.split(','))
            .filter_map(|fd| fd.parse().ok())
            .collect();
        maps.insert(name.to_string(), fds);
    }
    maps
}

/// What one thread's filter lets through that it must not: one line per call.
fn holes(
    name: &str,
    prog: &[Insn],
    open: &BTreeMap<u64, String>,
    own: &[u64],
    tried: &mut usize,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |what: String, nr: i64, args: [u64; 6]| {
        *tried += 1;
        if let Verdict::Passes(ret) = decide(prog, nr, args) {
            found.push(format!("{name}: {what} passes ({ret:#x})"));
        }
    };
    let fresh = open.keys().max().map_or(3, |m| m + 1);
    let foreign: Vec<u64> = open
        .keys()
        .copied()
        .filter(|fd| !own.contains(fd))
        .chain([fresh, 1000])
        .collect();
    for &fd in &foreign {
        let what = open.get(&fd).map_or("not open", String::as_str);
        for &(call, nr, at, mut args) in FD_CALLS {
            args[at] = fd;
            check(format!("{call} on fd {fd} ({what})"), nr, args);
        }
    }
    for &(call, nr, has_dirfd) in PATH_CALLS {
        let dirfds: Vec<u64> = if has_dirfd {
            CWD.iter().copied().chain(own.iter().copied()).collect()
        } else {
            vec![P]
        };
        for d in dirfds {
            check(format!("{call}({d:#x}, a path)"), nr, [d, P, P, 0, 0, 0]);
        }
    }
    let every_fd: Vec<u64> = open.keys().copied().chain([fresh]).collect();
    for &(call, nr, on_fds, args) in ESCAPES {
        if on_fds {
            for &fd in &every_fd {
                let mut a = args;
                a[0] = fd;
                check(format!("{call} on fd {fd}"), nr, a);
            }
        } else {
            check(call.to_string(), nr, args);
        }
    }
    found
}

/// A VM whose tiny guest waits for a byte on stdin, its stderr kept in a file.
struct Running {
    child: Child,
    stderr: std::path::PathBuf,
    _dir: DirGuard,
}

fn start(ns: &Netns, tag: &str, extra: &[&str], hole: Option<&str>) -> Running {
    let dir = scratch(tag);
    let guard = DirGuard(dir.clone());
    let disk = write_file(&dir, "d.img", &vec![0u8; 64 * 1024]);
    let stderr = dir.join("stderr");
    let mut cmd = ns.microvm();
    cmd.args(["--kernel", TINY_BZIMAGE, "--log-level", "debug"])
        .args([
            "--disk",
            &format!("path={disk}"),
            "--net",
            "tap=tap0",
            "--rng",
            "on",
        ])
        .args(extra)
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=wait-input"])
        .stdin(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    if let Some(h) = hole {
        cmd.env("MICROVM_TEST_FILTER_HOLE", h);
    }
    let mut child = cmd.spawn().expect("spawn microvm");
    let out = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(out).lines();
    let waiting = lines.any(|l| l.is_ok_and(|l| l.contains("tiny: waiting for input")));
    if !waiting {
        let _ = child.kill();
        panic!(
            "the guest never waited for input:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    }
    // Drain the console so the guest never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    Running {
        child,
        stderr,
        _dir: guard,
    }
}

/// A test that fails before [`Running::finish`] must not leave its VM running (with
/// `--jail`, killing the waiter takes the jailed VMM with it).
impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    /// Every thread's and device process's holes, plus any thread not carrying exactly one
    /// filter or an fd map that contradicts /proc.
    fn holes(&self) -> (Vec<String>, Vec<String>) {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let maps = owned_fds(&stderr);
        let mut names = Vec::new();
        let mut found = Vec::new();
        for t in tasks(self.child.id()) {
            let filters = filters_of(t.tid)
                .unwrap_or_else(|e| panic!("{}: reading its filters back: {e}", t.name));
            assert_eq!(
                filters.len(),
                1,
                "{} carries {} filters",
                t.name,
                filters.len()
            );
            let open = fd_table(t.pid);
            let own = maps
                .get(&t.name)
                .unwrap_or_else(|| panic!("no fd map logged for {}:\n{stderr}", t.name));
            check_map(&t.name, own, &open);
            assert_uses_its_own(&t.name, &filters[0], &open);
            let mut tried = 0;
            found.extend(holes(&t.name, &filters[0], &open, own, &mut tried));
            // Every fd call on at least two foreign fds (one never opened, fd 1000), every
            // path call and every escape: hundreds.
            let least = 2 * FD_CALLS.len() + PATH_CALLS.len() + ESCAPES.len();
            assert!(tried >= least, "{}: only {tried} calls tried", t.name);
            eprintln!(
                "{}: {tried} calls tried on {} open fds, {} its own",
                t.name,
                open.len(),
                own.len()
            );
            names.push(t.name);
        }
        names.sort();
        (names, found)
    }

    /// Releases the guest; microvm must then exit 0.
    fn finish(mut self) {
        let _ = self.child.stdin.as_mut().expect("stdin").write_all(b"x");
        let deadline = std::time::Instant::now() + BOOT_TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waitpid") {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "microvm:\n{stderr}");
    }
}

/// /dev/net/tun, as /proc names it: `/net/tun` for a jailed VMM, whose /dev is a mount
/// the reader's root cannot reach once the jail has detached the old root.
fn is_tun(what: &str) -> bool {
    what == "/dev/net/tun" || what == "/net/tun"
}

/// The fds /proc can name must be in the right thread's map: the disk only in the blk
/// device's, the TAP only in the net device's, a vCPU's KVM fd only in that vCPU's.
fn check_map(name: &str, own: &[u64], open: &BTreeMap<u64, String>) {
    for fd in own {
        let Some(what) = open.get(fd) else { continue };
        let owner_ok = if what.ends_with("/d.img") {
            name == "virtio-blk0"
        } else if is_tun(what) {
            name == "virtio-net0"
        } else if let Some(n) = what.strip_prefix("anon_inode:kvm-vcpu:") {
            name == format!("vcpu{n}")
        } else {
            true
        };
        assert!(
            owner_ok,
            "{name}'s fd map has fd {fd} ({what}), which is not its own"
        );
    }
}

/// The other way round: the calls a thread is there for pass on its own fds (so a filter
/// or interpreter that refuses everything cannot pass this test).
fn assert_uses_its_own(name: &str, prog: &[Insn], open: &BTreeMap<u64, String>) {
    let passes = |nr: i64, args: [u64; 6]| matches!(decide(prog, nr, args), Verdict::Passes(_));
    let mut checked = 0;
    for (&fd, what) in open {
        let ok = if name == "virtio-blk0" && what.ends_with("/d.img") {
            [libc::SYS_pread64, libc::SYS_preadv]
                .iter()
                .any(|&nr| passes(nr, [fd, P, 1, 0, 0, 0]))
        } else if name == "virtio-net0" && is_tun(what) {
            [libc::SYS_read, libc::SYS_readv]
                .iter()
                .any(|&nr| passes(nr, [fd, P, 1, 0, 0, 0]))
        } else if what == &format!("anon_inode:kvm-vcpu:{}", name.trim_start_matches("vcpu")) {
            passes(libc::SYS_ioctl, [fd, 0xae80, 0, 0, 0, 0])
        } else if name == "jail-waiter" && what == "anon_inode:[pidfd]" {
            passes(libc::SYS_waitid, [3, fd, P, 5, 0, 0])
                && passes(libc::SYS_pidfd_send_signal, [fd, 15, 0, 0, 0, 0])
        } else {
            continue;
        };
        assert!(
            ok,
            "{name}: its filter refuses its own work on fd {fd} ({what})"
        );
        checked += 1;
    }
    let has_work = ["vcpu", "virtio-blk", "virtio-net", "jail-waiter"];
    if has_work.iter().any(|p| name.starts_with(p)) {
        assert_eq!(checked, 1, "{name}: its own fd not found in {open:#?}");
    }
}

/// Boots a VM with `extra` in its own network namespace (`tag`), checks that exactly the
/// threads `names` (sorted) are there, every one without a hole, then lets it finish.
fn assert_no_holes(tag: &str, extra: &[&str], names: &[&str]) {
    let ns = Netns::new(tag);
    let vm = start(&ns, tag, extra, None);
    let (seen, found) = vm.holes();
    assert_eq!(seen, names);
    assert!(
        found.is_empty(),
        "{} holes:\n{}",
        found.len(),
        found.join("\n")
    );
    vm.finish();
}

#[test]
fn every_thread_refuses_foreign_fds_paths_and_escapes() {
    let names = [
        "vcpu0",
        "vcpu1",
        "virtio-blk0",
        "virtio-net0",
        "virtio-rng0",
        "vmm",
    ];
    assert_no_holes("outside", &["--cpus", "2"], &names);
}

/// Under `--jail` the waiter outside the jail is checked too (its pidfd of the jailed
/// VMM is the only fd it may use), next to every thread of the jailed VMM.
#[test]
fn the_jail_waiter_and_the_jailed_threads_refuse_foreign_fds_paths_and_escapes() {
    let names = [
        "jail-waiter",
        "vcpu0",
        "virtio-blk0",
        "virtio-net0",
        "virtio-rng0",
        "vmm",
    ];
    assert_no_holes("outside-jail", &["--jail"], &names);
}

#[test]
fn every_device_process_refuses_foreign_fds_paths_and_escapes() {
    let names = ["vcpu0", "virtio-blk0", "virtio-net0", "virtio-rng0", "vmm"];
    assert_no_holes("outside-iso", &["--isolate", "devices"], &names);
}

#[test]
fn a_filter_with_holes_is_caught_hole_by_hole() {
    let ns = Netns::new("outside-hole");
    let hole = "virtio-blk0:openat,vcpu0:write";
    let vm = start(&ns, "outside-hole", &[], Some(hole));
    let (_, found) = vm.holes();
    vm.finish();
    let blk: Vec<&String> = found
        .iter()
        .filter(|h| h.starts_with("virtio-blk0:"))
        .collect();
    assert!(
        !blk.is_empty() && blk.iter().all(|h| h.contains("openat(")),
        "{found:#?}"
    );
    let vcpu: Vec<&String> = found.iter().filter(|h| h.starts_with("vcpu0:")).collect();
    assert!(
        vcpu.iter()
            .any(|h| h.contains("write on fd") && h.contains("d.img")),
        "{found:#?}"
    );
    assert!(
        vcpu.iter().all(|h| h.contains(": write on fd")),
        "{found:#?}"
    );
    assert_eq!(blk.len() + vcpu.len(), found.len(), "{found:#?}");
}
