//! Token-bucket rate limits hold end to end, under `--seccomp true`: the tiny guest's
//! `blk-read` scenario reads a whole disk one request at a time and checks every sector
//! (`--disk ...,bw=,ops=`); `net-send` sends full-size frames that the host counts on its
//! TAP (`--net ...,bw=`, tx). With a limit a run cannot end sooner than the limit allows (a
//! lower bound: each bucket starts full with one second's worth, then refills at the rate,
//! from when microvm opens the device, before the guest boots).

mod common;
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::*;

/// A raw image of `bytes` whose sector s holds "RATE" + le32 s at 0 and "TAIL" + le32 s at
/// 504 (what the guest checks).
fn image(dir: &std::path::Path, bytes: usize) -> String {
    let mut img = vec![0u8; bytes];
    for (s, sector) in img.chunks_mut(512).enumerate() {
        let n = (s as u32).to_le_bytes();
        sector[..4].copy_from_slice(b"RATE");
        sector[4..8].copy_from_slice(&n);
        sector[504..508].copy_from_slice(b"TAIL");
        sector[508..512].copy_from_slice(&n);
    }
    write_file(dir, "rate.img", &img)
}

/// Boots `blk-read` on `disk` (a `--disk` value) with requests of `kib` KiB; returns the
/// run and its wall time.
fn read_disk(disk: &str, kib: u32) -> (Run, Duration) {
    let cmdline = format!("console=ttyS0 reboot=k tiny.test=blk-read tiny.blkread.kib={kib}");
    let start = Instant::now();
    let r = run(&[
        "--kernel",
        TINY_BZIMAGE,
        "--cmdline",
        &cmdline,
        "--rng",
        "off",
        "--disk",
        disk,
    ]);
    (r, start.elapsed())
}

fn assert_read(r: &Run, want: &str) {
    r.assert_pass();
    assert!(r.stdout.contains(want), "want {want:?}:\n{}", r.describe());
}

#[test]
fn disk_bytes_and_ops_limits_hold() {
    let dir = scratch("rate-limit");
    let _guard = DirGuard(dir.clone());
    // Small enough for a guest whose every instruction may be emulated (about 1 s
    // unlimited here), limited enough that the bound is several times that.
    let path = image(&dir, 1 << 20);
    let (r, free) = read_disk(&format!("path={path}"), 64);
    assert_read(
        &r,
        "tiny: blk-read: 2048 sectors in 16 requests of 64 KiB: ok",
    );

    // 1 MiB at 256 KiB/s: the first 256 KiB is the full bucket, the other 768 KiB take 3 s.
    let (r, limited) = read_disk(&format!("path={path},bw=256K"), 64);
    assert_read(
        &r,
        "tiny: blk-read: 2048 sectors in 16 requests of 64 KiB: ok",
    );
    eprintln!("blk-read of 1 MiB: unlimited {free:?}, bw=256K {limited:?}");
    assert!(
        limited >= Duration::from_secs(3),
        "1 MiB through a 256 KiB/s limit in {limited:?} (unlimited: {free:?})"
    );

    // 64 requests of 16 KiB at 20 requests/s: 20 up front, 44 more take 2.2 s.
    let (r, ops) = read_disk(&format!("path={path},ops=20"), 16);
    assert_read(
        &r,
        "tiny: blk-read: 2048 sectors in 64 requests of 16 KiB: ok",
    );
    eprintln!("blk-read of 1 MiB in 16 KiB requests: ops=20 {ops:?}");
    assert!(
        ops >= Duration::from_millis(2200),
        "64 requests through a 20/s limit in {ops:?} (unlimited, 64 KiB: {free:?})"
    );
}

/// Stop and flush still work while a request waits for its tokens: SIGTERM ends the VM
/// with 143 at once, the disk thread flushes on stop, no error.
#[test]
fn a_stop_signal_while_throttled_flushes_and_exits_at_once() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("rate-limit-stop");
    let _guard = DirGuard(dir.clone());
    let path = image(&dir, 1 << 20);
    // bw=1K: the first 64 KiB read is admitted on the full bucket and leaves 63 s of debt,
    // so the second waits for its timer.
    let disk = format!("path={path},bw=1K");
    let mut child = microvm()
        .args(["--kernel", TINY_BZIMAGE, "--rng", "off", "--disk", &disk])
        .args(["--log-level", "info"])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=blk-read"])
        .spawn()
        .expect("spawn microvm");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while !rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("the guest never started reading")
        .contains("tiny: blk-read: reading 2048 sectors")
    {}
    // Well inside the guest's own wait (>= 0.5 s) for the throttled second request.
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    let took = signalled.elapsed();
    assert_eq!(r.code(), 143, "{}", r.describe());
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert!(
        r.stderr.contains("virtio-blk0: flushed on stop"),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("error"), "{}", r.describe());
}

#[test]
fn bad_rate_values_are_one_line_errors() {
    let cases: [(&[&str], &str); 5] = [
        (&["--disk", "path=/x.img,bw=fast"], "bw=\"fast\""),
        (&["--disk", "path=/x.img,ops=1.5"], "ops=\"1.5\""),
        (&["--disk", "path=/x.img,bw=-1M"], "bw=\"-1M\""),
        (&["--disk", "path=/x.img,bw=99999999999999G"], "too large"),
        (&["--net", "tap=t0,bw=1T"], "bw=\"1T\""),
    ];
    for (args, needle) in cases {
        let r = run(args);
        assert_eq!(r.code(), 2, "{args:?}:\n{}", r.describe());
        let errors: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            errors.len(),
            1,
            "{args:?}: one error line:\n{}",
            r.describe()
        );
        assert!(errors[0].contains(needle), "{args:?}:\n{}", r.describe());
        assert!(
            !r.stderr.contains("panicked"),
            "{args:?}:\n{}",
            r.describe()
        );
    }
}

/// Boots `net-send` of `frames` frames on `tap0` of `ns` with `net` as the `--net` value;
/// returns the run, its wall time and the frames tap0 received meanwhile.
fn send_frames(ns: &Netns, net: &str, frames: u32) -> (Run, Duration, u64) {
    let count = || -> u64 {
        let s = ns.exec(&["cat", "/sys/class/net/tap0/statistics/rx_packets"]);
        s.trim().parse().expect("rx_packets")
    };
    let before = count();
    let cmdline = format!("console=ttyS0 reboot=k tiny.test=net-send tiny.netsend.frames={frames}");
    let start = Instant::now();
    let child = ns
        .microvm()
        .args(["--kernel", TINY_BZIMAGE, "--rng", "off", "--net", net])
        .args(["--cmdline", &cmdline])
        .spawn()
        .expect("spawn microvm in the namespace");
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    let took = start.elapsed();
    (r, took, count() - before)
}

#[test]
fn net_tx_bytes_limit_holds() {
    let ns = Netns::new("rate");
    let want = "tiny: net-send: 120 frames of 1514 bytes sent";
    let (r, free, got) = send_frames(&ns, "tap=tap0", 120);
    assert_read(&r, want);
    assert!(got >= 120, "tap0 received {got} frames:\n{}", r.describe());
    // 120 frames of 1514 bytes = 181680 bytes at 64 KiB/s: 65536 up front, the other
    // 116144 take 1.77 s.
    let (r, limited, got) = send_frames(&ns, "tap=tap0,bw=64K", 120);
    assert_read(&r, want);
    assert!(got >= 120, "tap0 received {got} frames:\n{}", r.describe());
    eprintln!("net-send of 120 frames: unlimited {free:?}, bw=64K {limited:?}");
    assert!(
        limited >= Duration::from_millis(1770),
        "181680 bytes through a 64 KiB/s limit in {limited:?} (unlimited: {free:?})"
    );
}
