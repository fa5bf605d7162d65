//! Faults, nothing lost (docs/robustness.md): a failing disk file answers IOERR and the
//! VMM runs on; blocks the guest saw flushed survive SIGKILL at random moments; SIGTERM and
//! SIGINT flush what the guest wrote without FLUSH; stdin at EOF or closed changes nothing;
//! a TAP deleted under a running VM stops that device's queues with one log line.
//!
//! `MICROVM_SOAK=<n>` multiplies the number of SIGKILL runs by n.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::*;

fn cmdline(test: &str) -> String {
    format!("console=ttyS0 reboot=k tiny.test={test}")
}

/// Collects a child's stdout lines; `marker` lines are also sent as they arrive.
struct Lines {
    rx: mpsc::Receiver<Option<String>>,
    all: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Lines {
    fn new(child: &mut Child) -> Lines {
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let all = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let all2 = all.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                {
                    let mut a = all2.lock().unwrap();
                    a.push_str(&line);
                    a.push('\n');
                }
                let _ = tx.send(Some(line));
            }
            let _ = tx.send(None);
        });
        Lines { rx, all }
    }

    /// Waits for a line containing `needle`; panics (after killing `child`) otherwise.
    fn wait_for(&self, child: &mut Child, needle: &str) -> String {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Some(l)) if l.contains(needle) => return l,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("never saw {needle:?}:\n{}", self.text());
                }
            }
        }
    }

    /// Waits until stdout closed, then returns everything.
    fn finish(&self) -> String {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while let Ok(Some(_)) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {}
        self.text()
    }

    fn text(&self) -> String {
        self.all.lock().unwrap().clone()
    }
}

// ---- a failing host file ------------------------------------------------------------------

#[test]
fn a_full_host_filesystem_answers_ioerr_and_the_vmm_runs_on() {
    let dir = scratch("faults-enospc");
    let _guard = DirGuard(dir.clone());
    // A 256 KiB tmpfs, mounted only inside a private mount namespace (it disappears with
    // microvm), holding a sparse 2 MiB image: writes past ~256 KiB fail with ENOSPC.
    let script = r#"mount -t tmpfs -o size=256k microvm-faults "$0" || exit 97
truncate -s 2M "$0/disk.img" || exit 98
exec "$1" --kernel "$2" --disk "path=$0/disk.img" --rng off --cmdline "$3""#;
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(&dir)
        .args([
            env!("CARGO_BIN_EXE_microvm"),
            TINY_BZIMAGE,
            &format!("{} tiny.faults.expect=ioerr", cmdline("blk-fill")),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    if matches!(r.status.code(), Some(97 | 98)) || r.stderr.contains("unshare:") {
        panic!(
            "FAULT TEST CANNOT RUN: a private mount namespace with a tmpfs needs CAP_SYS_ADMIN \
             (run the tests as root); it refuses to pass without testing:\n{}",
            r.describe()
        );
    }
    r.assert_pass();
    let ioerr_lines = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("tiny: faults: write sector ") && l.ends_with(": IOERR"))
        .count();
    assert!(ioerr_lines >= 1, "no IOERR seen:\n{}", r.describe());
    let (ok, ioerr) = r
        .stdout
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("tiny: faults: ")?;
            let (ok, rest) = rest.split_once(" writes ok, ")?;
            let ioerr = rest.strip_suffix(" IOERR")?;
            Some((ok.parse::<u32>().ok()?, ioerr.parse::<u32>().ok()?))
        })
        .unwrap_or_else(|| panic!("no summary line:\n{}", r.describe()));
    // 2 MiB in 64 KiB writes: 32 requests, the first ones fit in the tmpfs.
    assert_eq!(ok + ioerr, 32, "{}", r.describe());
    assert!(
        ok >= 1 && ioerr >= 20,
        "ok {ok}, ioerr {ioerr}:\n{}",
        r.describe()
    );
    assert!(
        r.stdout
            .contains("tiny: faults: read sector 0 after the writes: OK"),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    // Logged (rate-limited, docs/devices.md), never more than one line per failed request.
    let dev_lines = r
        .stderr
        .lines()
        .filter(|l| l.contains("virtio-blk0"))
        .count();
    assert!(
        (1..=ioerr as usize + 1).contains(&dev_lines),
        "IOERR is logged, at most once per request:\n{}",
        r.stderr
    );
}

#[test]
fn an_image_shrunk_under_the_vm_answers_ioerr() {
    let dir = scratch("faults-shrink");
    let _guard = DirGuard(dir.clone());
    let img = write_file(&dir, "shrink.img", &vec![0u8; 1024 * 1024]);
    let mut child = microvm()
        .args(["--kernel", TINY_BZIMAGE, "--rng", "off"])
        .args(["--disk", &format!("path={img}")])
        .args(["--cmdline", &cmdline("blk-shrink")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn microvm");
    let lines = Lines::new(&mut child);
    lines.wait_for(&mut child, "tiny: faults: read 2048 sectors: all OK");
    // 1 MiB -> 256 KiB: reads of sectors 512.. now run past the end of the file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(256 * 1024)
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"s").unwrap();
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    let out = lines.finish();
    let r = Run { stdout: out, ..r };
    r.assert_pass();
    assert!(
        r.stdout
            .contains("tiny: faults: after input: 12 of 16 reads IOERR"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("tiny: faults: read sector 512: IOERR"),
        "{}",
        r.describe()
    );
    assert_eq!(
        std::fs::metadata(&img).unwrap().len(),
        256 * 1024,
        "reads never grow the file"
    );
}

// ---- crash consistency --------------------------------------------------------------------

/// A small xorshift generator seeded from the clock (the seed is printed).
fn rng_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Block n as the `crash` scenario writes it.
fn crash_block(n: u64) -> Vec<u8> {
    let mut b: Vec<u8> = (0..512u64).map(|k| (n * 7 + k) as u8).collect();
    b[..8].copy_from_slice(b"CRASHBLK");
    b[8..16].copy_from_slice(&n.to_le_bytes());
    b
}

#[test]
fn flushed_blocks_survive_sigkill_at_random_moments() {
    const BLOCKS: usize = 2048; // a 1 MiB image, one block per sector
    let runs = 4 * soak();
    let mut seed = rng_seed();
    eprintln!("crash: seed {seed:#x}, {runs} runs");
    let dir = scratch("faults-crash");
    let _guard = DirGuard(dir.clone());
    for run in 0..runs {
        let img = write_file(&dir, &format!("crash{run}.img"), &vec![0u8; BLOCKS * 512]);
        let mut child = microvm()
            .args(["--kernel", TINY_BZIMAGE, "--rng", "off"])
            .args(["--disk", &format!("path={img}")])
            .args(["--cmdline", &cmdline("crash")])
            .spawn()
            .expect("spawn microvm");
        let lines = Lines::new(&mut child);
        lines.wait_for(&mut child, "tiny: crash: flushed through block");
        let delay = Duration::from_millis(next(&mut seed) % 800);
        std::thread::sleep(delay);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let status = child.wait().expect("wait");
        let out = lines.finish();
        let last = out
            .lines()
            .filter_map(|l| l.strip_prefix("tiny: crash: flushed through block "))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .max()
            .expect("at least one flushed line");
        let finished = out.contains("tiny: crash: all 2048 blocks flushed");
        assert!(
            status.signal() == Some(libc::SIGKILL) || (finished && status.code() == Some(0)),
            "run {run}: {status:?}\n{out}"
        );
        let disk = std::fs::read(&img).unwrap();
        assert_eq!(disk.len(), BLOCKS * 512, "the image must not grow");
        for n in 0..=last {
            let at = n as usize * 512;
            assert!(
                disk[at..at + 512] == crash_block(n)[..],
                "run {run} (killed after {delay:?}): block {n} was reported flushed (through \
                 {last}) but is not on disk"
            );
        }
        eprintln!(
            "crash: run {run}: SIGKILL after {delay:?}: blocks 0..={last} flushed and on disk{}",
            if finished {
                " (guest had finished)"
            } else {
                ""
            }
        );
    }
}

// ---- stop signals flush the disk ----------------------------------------------------------

fn unflushed_stop(signal: libc::c_int, expected: i32) {
    let dir = scratch(&format!("faults-unflushed-{signal}"));
    let _guard = DirGuard(dir.clone());
    let img = write_file(&dir, "u.img", &vec![0u8; 64 * 1024]);
    let mut child = microvm()
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--rng",
            "off",
            "--log-level",
            "info",
        ])
        .args(["--disk", &format!("path={img}")])
        .args(["--cmdline", &cmdline("unflushed")])
        .spawn()
        .expect("spawn microvm");
    let lines = Lines::new(&mut child);
    lines.wait_for(&mut child, "tiny: halting forever");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    let r = Run {
        stdout: lines.finish(),
        ..r
    };
    assert_eq!(r.code(), expected, "{}", r.describe());
    assert!(
        r.stdout
            .contains("tiny: unflushed: wrote 16 sectors without flush"),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("virtio-blk0: flushed on stop"),
        "the device thread must fsync the disk when it stops:\n{}",
        r.describe()
    );
    assert!(!r.stderr.contains("error"), "{}", r.describe());
    let disk = std::fs::read(&img).unwrap();
    for s in 0..16usize {
        let sec = &disk[s * 512..(s + 1) * 512];
        assert_eq!(&sec[..16], b"UNFLUSHED-SECTOR", "sector {s}");
        assert_eq!(sec[16], s as u8, "sector {s}");
        for (k, &b) in sec.iter().enumerate().skip(17) {
            assert_eq!(b, (s * 3 + k) as u8, "sector {s} byte {k}");
        }
    }
}

#[test]
fn sigterm_flushes_what_the_guest_wrote_without_flush() {
    unflushed_stop(libc::SIGTERM, 143);
}

#[test]
fn sigint_flushes_what_the_guest_wrote_without_flush() {
    unflushed_stop(libc::SIGINT, 130);
}

#[test]
fn stdin_at_eof_or_closed_changes_nothing_for_the_guest() {
    let dir = scratch("faults-stdin");
    let _guard = DirGuard(dir.clone());
    for closed in [false, true] {
        let img = write_file(&dir, "s.img", &vec![0u8; 256 * 1024]);
        let mut cmd = microvm();
        cmd.args(["--kernel", TINY_BZIMAGE, "--rng", "on"])
            .args(["--disk", &format!("path={img}")])
            .args(["--cmdline", &cmdline("blk-fill")]);
        if closed {
            // SAFETY: only async-signal-safe close(2) between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::close(0);
                    Ok(())
                });
            }
        }
        let r = wait_with_timeout(cmd.spawn().expect("spawn"), BOOT_TIMEOUT);
        r.assert_pass();
        assert!(
            r.stdout.contains("tiny: faults: 4 writes ok, 0 IOERR"),
            "stdin closed={closed}:\n{}",
            r.describe()
        );
        assert!(
            r.stderr.trim().is_empty(),
            "closed={closed}:\n{}",
            r.describe()
        );
    }
}

// ---- a TAP deleted under a running VM -----------------------------------------------------

#[test]
fn a_deleted_tap_stops_its_queues_not_the_vmm() {
    let ns = Netns::new("faults");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_microvm")])
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--net",
            "tap=tap0",
            "--rng",
            "off",
        ])
        .args(["--cmdline", &cmdline("net-gone")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn microvm in the namespace");
    let lines = Lines::new(&mut child);
    lines.wait_for(
        &mut child,
        "tiny: net-gone: sent 20 frames; waiting for input",
    );
    ns.exec(&["ip", "link", "del", "tap0"]);
    let _ = child.stdin.as_mut().unwrap().write_all(b"d");
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    let r = Run {
        stdout: lines.finish(),
        ..r
    };
    r.assert_pass();
    assert!(
        r.stdout
            .contains("tiny: net-gone: sent 200 more frames, all completed"),
        "{}",
        r.describe()
    );
    let dev: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("virtio-net0"))
        .collect();
    assert_eq!(
        dev.len(),
        1,
        "exactly one log line naming the device:\n{}",
        r.stderr
    );
    assert!(
        dev[0].contains("TAP tap0") && dev[0].contains("failed") && dev[0].contains("stopped"),
        "the line names the TAP and the error: {}",
        dev[0]
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.describe());
}

#[test]
fn closed_std_fds_never_turn_a_disk_image_into_stderr() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("closed-std-fds");
    let image = write_file(&dir, "disk.img", &[0u8; 64 * 1024]);
    let disk = format!("path={image}");
    let mut cmd = microvm();
    // Without fds 0-2, the kernel memfd, the image or /dev/kvm would become stdout/stderr and
    // get the guest's console and microvm's log lines. Rust's runtime opens /dev/null on
    // closed standard fds before main; this checks that it stays that way.
    cmd.args(["--disk", &disk, "--log-level", "info", "--rng", "off"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe close() calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for fd in 0..3 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn microvm");
    let deadline = std::time::Instant::now() + BOOT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "microvm did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let after = std::fs::read(&image).unwrap();
    assert!(after.iter().all(|&b| b == 0), "the image was written to");
}
