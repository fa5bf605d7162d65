//! SIGTERM, SIGINT and SIGHUP stop the VM in order: vCPU threads stopped, a documented
//! exit code (128 + signal), no error line. Closed stdin changes nothing for the guest.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;

use common::*;

fn stop_with(signal: libc::c_int, expected: i32) {
    let mut child = microvm()
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--cpus",
            "2",
            "--cmdline",
            "console=ttyS0 tiny.test=halt",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn microvm");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("tiny: halting forever") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(BOOT_TIMEOUT)
        .expect("the guest never reached its halt loop");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let run = wait_with_timeout(child, BOOT_TIMEOUT);
    assert_eq!(run.code(), expected, "{}", run.describe());
    assert!(
        !run.stderr.contains("error"),
        "an orderly stop is not an error:\n{}",
        run.describe()
    );
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
