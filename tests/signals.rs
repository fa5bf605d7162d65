//! SIGTERM, SIGINT and SIGHUP stop the VM in order: vCPU threads stopped, a documented
//! exit code (128 + signal), no error line. Closed stdin changes nothing for the guest.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;

use common::*;

/// Boots the tiny guest on 2 vCPUs (plus `args`) into its halt loop, sends it `signal` and
/// returns how it ended.
fn halt_then_signal(args: &[&str], signal: libc::c_int) -> Run {
    let mut child = microvm()
        .args(["--kernel", TINY_BZIMAGE, "--cpus", "2"])
        .args(args)
        .args(["--cmdline", "console=ttyS0 tiny.test=halt"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn microvm");
    wait_for_stdout_line(
        &mut child,
        "tiny: halting forever",
        "the guest never reached its halt loop",
    );
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0);
    wait_with_timeout(child, BOOT_TIMEOUT)
}

fn stop_with(signal: libc::c_int, expected: i32) {
    let run = halt_then_signal(&[], signal);
    assert_eq!(run.code(), expected, "{}", run.describe());
    assert!(
        !run.stderr.contains("error"),
        "an orderly stop is not an error:\n{}",
        run.describe()
    );
}

/// A VM stopped from outside says where each vCPU was (info level): what a user who kills a
/// hung guest needs first.
#[test]
fn a_stopped_vm_says_where_each_vcpu_was() {
    let run = halt_then_signal(&["--log-level", "info"], libc::SIGTERM);
    assert_eq!(run.code(), 143, "{}", run.describe());
    for vcpu in ["vcpu0", "vcpu1"] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("{vcpu}: stopped ")))
            .unwrap_or_else(|| panic!("no stop line for {vcpu}:\n{}", run.describe()));
        assert!(
            line.contains(" at RIP 0x") && line.contains(", interrupts o"),
            "{line}"
        );
    }
}

#[test]
fn sigterm_stops_the_vm_with_143() {
    stop_with(libc::SIGTERM, 143);
}

#[test]
fn sigint_stops_the_vm_with_130() {
    stop_with(libc::SIGINT, 130);
}

#[test]
fn sighup_stops_the_vm_with_129() {
    stop_with(libc::SIGHUP, 129);
}

/// Issue 13: a microvm stopped and continued (SIGSTOP/SIGCONT, as a shell's Ctrl-Z / fg)
/// while it boots and while it waits survives under `--seccomp true`: sleeps interrupted by
/// the stop come back through restart_syscall, which every filter allows.
#[test]
fn sigstop_and_sigcont_are_survived_under_seccomp() {
    let mut child = microvm()
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--cpus",
            "2",
            "--seccomp",
            "true",
            "--cmdline",
            "console=ttyS0 tiny.test=halt",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn microvm");
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("tiny: halting forever") {
                let _ = tx.send(());
            }
        }
    });
    let stop_cont = |times: u32| {
        for _ in 0..times {
            // SAFETY: signals to our own child process.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            std::thread::sleep(std::time::Duration::from_millis(5));
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    stop_cont(20);
    rx.recv_timeout(BOOT_TIMEOUT)
        .expect("the guest never reached its halt loop");
    stop_cont(20);
    // SAFETY: as above; an orderly stop, during which the vmm thread sleeps (stop loop).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    stop_cont(5);
    let run = wait_with_timeout(child, BOOT_TIMEOUT);
    assert_eq!(run.code(), 143, "{}", run.describe());
    assert!(!run.stderr.contains("forbidden"), "{}", run.describe());
}
