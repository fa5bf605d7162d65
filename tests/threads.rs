//! While a VM runs, every thread is named and carries exactly its own seccomp filter.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;

use common::*;

/// PF_USER_WORKER: a kernel worker attached to a user process (KVM's NX huge page
/// recovery thread `kvm-nx-lpage-recovery` on kernels 6.13+). It never runs user code,
/// so seccomp means nothing for it; it inherits the creating thread's filter.
const PF_USER_WORKER: u64 = 0x4000;

/// (comm, Seccomp, Seccomp_filters) for every user thread of `pid`. Kernel workers are
/// left out after checking they are KVM's.
fn threads_of(pid: u32) -> Vec<(String, String, String)> {
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
        // Process-wide signals must be blocked on every thread (read from a signalfd by
        // the vmm thread): SIGHUP 1, SIGINT 2, SIGTERM 15, SIGWINCH 28.
        let blocked = u64::from_str_radix(&field("SigBlk:"), 16).unwrap_or(0);
        for sig in [1, 2, 15, 28] {
            assert_ne!(
                blocked & (1 << (sig - 1)),
                0,
                "{comm:?} does not block signal {sig}"
            );
        }
        out.push((
            comm.trim().to_string(),
            field("Seccomp:"),
            field("Seccomp_filters:"),
        ));
    }
    out.sort();
    out
}

/// Boots the `wait-input` scenario, inspects the threads while the guest waits, then
/// releases the guest with one byte on stdin.
fn inspect(cpus: u8, seccomp: &str) -> Vec<(String, String, String)> {
    let cmdline = format!("console=ttyS0 tiny.test=wait-input tiny.cpus={cpus}");
    let mut child = microvm()
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--cpus",
            &cpus.to_string(),
            "--seccomp",
            seccomp,
            "--rng",
            "off",
        ])
        .args(["--cmdline", &cmdline])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn microvm");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            if line.contains("tiny: waiting for input") {
                let _ = tx.send(None);
            }
        }
        let _ = tx.send(Some(all));
    });
    match rx.recv_timeout(BOOT_TIMEOUT) {
        Ok(None) => {}
        other => {
            let _ = child.kill();
            panic!("the guest never waited for input: {other:?}");
        }
    }
    let threads = threads_of(pid);
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"x")
        .expect("write stdin");
    let rest = rx
        .recv_timeout(BOOT_TIMEOUT)
        .ok()
        .flatten()
        .unwrap_or_default();
    let status = child.wait().expect("wait");
    assert!(
        rest.contains("tiny: got input 0x78"),
        "stdin must reach the guest:\n{rest}"
    );
    assert!(rest.contains("tiny: PASS"), "{rest}");
    assert_eq!(status.code(), Some(0));
    threads
}

fn expected_names(cpus: u8) -> Vec<String> {
    let mut names: Vec<String> = (0..cpus).map(|i| format!("vcpu{i}")).collect();
    names.push("vmm".into());
    names.sort();
    names
}

#[test]
fn every_thread_is_named_and_filtered_once_in_true_mode() {
    let threads = inspect(3, "true");
    let names: Vec<String> = threads.iter().map(|t| t.0.clone()).collect();
    assert_eq!(names, expected_names(3), "{threads:?}");
    for (name, mode, filters) in &threads {
        assert_eq!(
            mode, "2",
            "{name} must be in seccomp filter mode: {threads:?}"
        );
        assert_eq!(
            filters, "1",
            "{name} must carry exactly one filter: {threads:?}"
        );
    }
}

#[test]
fn every_thread_is_named_and_filtered_once_in_log_mode() {
    let threads = inspect(2, "log");
    let names: Vec<String> = threads.iter().map(|t| t.0.clone()).collect();
    assert_eq!(names, expected_names(2), "{threads:?}");
    for (name, mode, filters) in &threads {
        assert_eq!(
            (mode.as_str(), filters.as_str()),
            ("2", "1"),
            "{name}: {threads:?}"
        );
    }
}

#[test]
fn no_thread_is_filtered_in_false_mode() {
    let threads = inspect(2, "false");
    let names: Vec<String> = threads.iter().map(|t| t.0.clone()).collect();
    assert_eq!(names, expected_names(2), "{threads:?}");
    for (name, mode, filters) in &threads {
        assert_eq!(
            (mode.as_str(), filters.as_str()),
            ("0", "0"),
            "{name}: {threads:?}"
        );
    }
}

#[test]
fn a_stacked_filter_makes_microvm_refuse_to_run_the_guest() {
    // Test builds only: MICROVM_TEST_STACK_FILTER makes the main thread install an extra
    // filter before it spawns, so every thread carries two.
    let child = microvm()
        .args(["--kernel", TINY_BZIMAGE, "--cpus", "2", "--rng", "off"])
        .env("MICROVM_TEST_STACK_FILTER", "1")
        .spawn()
        .expect("spawn microvm");
    let run = wait_with_timeout(child, BOOT_TIMEOUT);
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        !run.stdout.contains("tiny:"),
        "the guest must not run:\n{}",
        run.describe()
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("microvm: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.describe());
    assert!(
        errors[0].contains("2 stacked seccomp filters")
            && errors[0].contains("refusing to run the guest"),
        "{}",
        run.describe()
    );
}
