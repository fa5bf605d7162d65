//! What /proc says about a running microvm's threads.

/// PF_USER_WORKER: a kernel worker attached to a user process (KVM's NX huge page
/// recovery thread `kvm-nx-lpage-recovery` on kernels 6.13+). It never runs user code, so
/// seccomp means nothing for it; it inherits the creating thread's filter.
const PF_USER_WORKER: u64 = 0x4000;

/// One user thread: name, `Seccomp:`, `Seccomp_filters:` and the `SigBlk:` mask.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThreadInfo {
    /// comm.
    pub name: String,
    /// `Seccomp:` (0 none, 2 filter).
    pub seccomp: String,
    /// `Seccomp_filters:`.
    pub filters: String,
    /// `SigBlk:` as a bit mask (bit n-1 = signal n).
    pub sigblk: u64,
}

/// Every user thread of `pid`, sorted by name. Kernel workers are left out after
/// checking they are KVM's.
pub fn threads_of(pid: u32) -> Vec<ThreadInfo> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/pid/task") {
        let dir = entry.expect("task entry").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Field 9 (flags) counted after the parenthesised comm, which may hold spaces.
        let flags: u64 = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(6))
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        if flags & PF_USER_WORKER != 0 {
            assert!(
                comm.starts_with("kvm-"),
                "unexpected kernel worker {comm:?}"
            );
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push(ThreadInfo {
            name: comm.trim().to_string(),
            seccomp: field("Seccomp:"),
            filters: field("Seccomp_filters:"),
            sigblk: u64::from_str_radix(&field("SigBlk:"), 16).unwrap_or(0),
        });
    }
    out.sort();
    out
}

/// Runs `cmd` (a tiny guest in the `wait-input` scenario), takes [`threads_of`] while the
/// guest waits, releases it with one byte on stdin and returns the threads, everything
/// the guest printed and the exit status.
pub fn threads_while_waiting(
    mut cmd: std::process::Command,
) -> (Vec<ThreadInfo>, String, std::process::ExitStatus) {
    use std::io::{BufRead, BufReader, Write};

    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn microvm");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            if line.contains("tiny: waiting for input") {
                let _ = tx.send(None);
            }
        }
        let _ = tx.send(Some(all));
    });
    match rx.recv_timeout(super::BOOT_TIMEOUT) {
        Ok(None) => {}
        other => {
            let _ = child.kill();
            panic!("the guest never waited for input: {other:?}");
        }
    }
    let threads = threads_of(pid);
    let _ = child.stdin.as_mut().expect("stdin piped").write_all(b"x");
    let output = rx
        .recv_timeout(super::BOOT_TIMEOUT)
        .ok()
        .flatten()
        .unwrap_or_default();
    let status = child.wait().expect("wait for microvm");
    (threads, output, status)
}
