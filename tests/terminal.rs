//! With a terminal on stdin, microvm puts it in raw mode while the guest runs (so keys
//! reach the guest one by one) and restores it afterwards.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc;

use common::*;

fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: termios is plain data, overwritten by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer.
    let rc = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) };
    assert_eq!(rc, 0, "tcgetattr");
    t
}

#[test]
fn a_terminal_is_raw_while_the_guest_runs_and_restored_after() {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds; the other pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: fresh fds owned by this test.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let before = termios(&slave);
    assert_ne!(
        before.c_lflag & libc::ICANON,
        0,
        "a new pty starts in canonical mode"
    );

    let mut child = microvm()
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--cmdline",
            "console=ttyS0 tiny.test=wait-input",
        ])
        .stdin(Stdio::from(slave.try_clone().expect("dup slave")))
        .spawn()
        .expect("spawn microvm");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let waiting = rx
        .iter()
        .take_while(|l| !l.contains("tiny: waiting for input"))
        .count();
    let during = termios(&slave);
    assert_eq!(
        during.c_lflag & (libc::ICANON | libc::ECHO),
        0,
        "raw mode while running ({waiting} lines before)"
    );

    // One key, no newline: only a raw terminal passes it on at once.
    // SAFETY: writing one byte from a valid buffer to the master fd.
    let written = unsafe { libc::write(master.as_raw_fd(), b"q".as_ptr().cast(), 1) };
    assert_eq!(written, 1);
    let rest: Vec<String> = rx.iter().collect();
    let status = child.wait().expect("wait");
    assert!(
        rest.iter().any(|l| l.contains("tiny: got input 0x71")),
        "{rest:?}"
    );
    assert_eq!(status.code(), Some(0));

    let after = termios(&slave);
    assert_eq!(
        (after.c_lflag, after.c_iflag, after.c_oflag, after.c_cflag),
        (
            before.c_lflag,
            before.c_iflag,
            before.c_oflag,
            before.c_cflag
        ),
        "terminal settings restored"
    );
}
