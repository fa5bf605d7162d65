//! virtio devices end to end with the tiny guest, under `--seccomp true` (the default):
//! blk (writable + read-only), rng, net (TAP in a private network namespace), the hostile
//! scenario H1..H8, and the device threads' names and filters.

mod common;
use common::netns::Netns;
use common::procfs::threads_while_waiting;
use common::*;

const SECTOR0: &[u8] = b"MICROVM-DISK0-SECTOR0 written by the host test";

/// A 64 KiB raw image whose sector 0 starts with `head`.
fn image(dir: &std::path::Path, name: &str, head: &[u8]) -> String {
    let mut bytes = vec![0u8; 64 * 1024];
    bytes[..head.len()].copy_from_slice(head);
    write_file(dir, name, &bytes)
}

fn boot_tiny(test: &str, args: &[&str]) -> Run {
    let cmdline = format!("console=ttyS0 reboot=k tiny.test={test}");
    let mut all = vec!["--kernel", TINY_BZIMAGE, "--cmdline", &cmdline];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn blk_and_rng_serve_the_guest() {
    let dir = scratch("virtio-blk");
    let rw = image(&dir, "rw.img", SECTOR0);
    let ro = image(&dir, "ro.img", b"READ-ONLY-DISK");
    let ro_before = std::fs::read(&ro).unwrap();
    let (d0, d1) = (format!("path={rw}"), format!("path={ro},readonly=on"));
    let r = boot_tiny("virtio", &["--disk", &d0, "--disk", &d1, "--rng", "on"]);
    r.assert_pass();
    let out = &r.stdout;
    assert!(
        out.contains("tiny: blk0: sector 0 starts \"MICROVM-DISK0-SE\""),
        "{}",
        r.describe()
    );
    assert!(
        out.contains("tiny: blk0: write+flush+read-back ok"),
        "{}",
        r.describe()
    );
    assert!(
        out.contains("tiny: blk1: capacity 128 sectors"),
        "{}",
        r.describe()
    );
    assert!(
        out.contains("tiny: blk1: id \"microvm-blk1\""),
        "{}",
        r.describe()
    );
    assert!(
        out.contains("tiny: blk1: write refused on read-only disk (status 1)"),
        "{}",
        r.describe()
    );
    // The guest's sector 1 pattern reached the host file; the read-only file is intact.
    let rw_after = std::fs::read(&rw).unwrap();
    assert_eq!(rw_after.len(), 64 * 1024, "the image must not grow");
    assert_eq!(&rw_after[512..528], b"TINY-WROTE-BLK0-");
    for k in 16..512 {
        assert_eq!(rw_after[512 + k], (k & 0xff) as u8, "sector 1 byte {k}");
    }
    assert_eq!(
        std::fs::read(&ro).unwrap(),
        ro_before,
        "read-only disk changed"
    );
    // rng: 32 bytes, not all equal.
    let hex = out
        .lines()
        .find_map(|l| l.strip_prefix("tiny: rng0: 32 bytes: "))
        .unwrap_or_else(|| panic!("no rng line:\n{}", r.describe()));
    assert_eq!(hex.trim().len(), 64);
    let first = &hex[..2];
    assert!((0..32).any(|i| &hex[2 * i..2 * i + 2] != first), "{hex}");
}

#[test]
fn hostile_guest_input_is_survived() {
    let dir = scratch("virtio-hostile");
    let disk = image(&dir, "h.img", SECTOR0);
    let before = std::fs::read(&disk).unwrap();
    let d = format!("path={disk}");
    let r = boot_tiny("hostile", &["--disk", &d]);
    r.assert_pass();
    for k in 1..=8 {
        let tag = format!("tiny: hostile: H{k} ");
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&tag) && l.contains(": ok (")),
            "H{k} missing:\n{}",
            r.describe()
        );
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    assert!(
        r.stderr.contains("virtio-blk0: "),
        "no device log line:\n{}",
        r.describe()
    );
    let lines = r
        .stderr
        .lines()
        .filter(|l| l.contains("virtio-blk0: "))
        .count();
    assert!(
        lines <= 20,
        "the device log must be rate-limited:\n{}",
        r.stderr
    );
    let after = std::fs::read(&disk).unwrap();
    assert_eq!(after.len(), before.len(), "the host file must not grow");
}

#[test]
fn net_gets_an_arp_reply_from_the_tap() {
    let ns = Netns::new("virtio");
    let tap_mac = ns
        .exec(&["cat", "/sys/class/net/tap0/address"])
        .trim()
        .to_string();
    let child = ns
        .microvm()
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--net",
            "tap=tap0",
            "--rng",
            "off",
        ])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=virtio"])
        .spawn()
        .expect("spawn microvm in the namespace");
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    r.assert_pass();
    assert!(
        r.stdout.contains("tiny: net0: mac 06:00:00:00:00:01"),
        "{}",
        r.describe()
    );
    let want = format!("tiny: net0: arp reply: 10.0.2.1 is-at {tap_mac}");
    assert!(r.stdout.contains(&want), "want {want:?}:\n{}", r.describe());
}

#[test]
fn device_threads_are_named_and_filtered_once() {
    let ns = Netns::new("virtio");
    let dir = scratch("virtio-threads");
    let disk = image(&dir, "t.img", SECTOR0);
    let d = format!("path={disk}");
    let mut cmd = ns.microvm();
    cmd.args([
        "--kernel",
        TINY_BZIMAGE,
        "--disk",
        &d,
        "--net",
        "tap=tap0",
        "--rng",
        "on",
    ])
    .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=wait-input"]);
    let (threads, _, status) = threads_while_waiting(cmd);
    assert_eq!(status.code(), Some(0), "{threads:?}");
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    for want in ["virtio-blk0", "virtio-net0", "virtio-rng0", "vcpu0", "vmm"] {
        assert!(names.contains(&want), "no thread {want}: {threads:?}");
    }
    for t in &threads {
        assert_eq!(
            (t.seccomp.as_str(), t.filters.as_str()),
            ("2", "1"),
            "{} must carry exactly its own filter: {threads:?}",
            t.name
        );
    }
}

#[test]
fn bad_device_flags_are_one_line_errors() {
    let dir = scratch("virtio-errors");
    let odd = write_file(&dir, "odd.img", &[0u8; 700]);
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--disk", "file=x"], 2, "unknown key"),
        (&["--disk", "readonly=on"], 2, "missing path"),
        (&["--net", "tap=t0,mac=zz:00:00:00:00:01"], 2, "mac="),
        (&["--rng", "maybe"], 2, "maybe"),
        (&["--disk", "path=/nonexistent/disk.img"], 1, "cannot open"),
        (&["--disk", &format!("path={odd}")], 1, "multiple of 512"),
    ];
    for (args, code, needle) in cases {
        let r = run(args);
        assert_eq!(r.code(), code, "{args:?}:\n{}", r.describe());
        assert!(r.stderr.contains(needle), "{args:?}:\n{}", r.describe());
        assert!(
            !r.stderr.contains("panicked"),
            "{args:?}:\n{}",
            r.describe()
        );
    }
}

/// Issue 13: with every fd-taking call pinned to the fds its thread owns, a boot that uses
/// a disk, a TAP and rng makes no forbidden call, under `--seccomp true` (exit 0, PASS) and
/// `--seccomp log` (nothing reported); `--log-level debug` prints each thread's fd map.
#[test]
fn disk_tap_and_rng_boot_with_pinned_fds_and_no_violation() {
    let ns = Netns::new("virtio-pins");
    let dir = scratch("virtio-pins");
    let disk = image(&dir, "p.img", SECTOR0);
    let d = format!("path={disk}");
    for mode in ["true", "log"] {
        let child = ns
            .microvm()
            .args([
                "--kernel",
                TINY_BZIMAGE,
                "--disk",
                &d,
                "--net",
                "tap=tap0",
                "--rng",
                "on",
                "--seccomp",
                mode,
                "--log-level",
                "debug",
            ])
            .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=virtio"])
            .spawn()
            .expect("spawn microvm in the namespace");
        let r = wait_with_timeout(child, BOOT_TIMEOUT);
        r.assert_pass();
        assert!(!r.stderr.contains("forbidden"), "{mode}: {}", r.describe());
        assert!(
            !r.stderr.contains("seccomp log summary"),
            "{mode}: {}",
            r.describe()
        );
        for thread in ["vmm", "vcpu0", "virtio-blk0", "virtio-net0", "virtio-rng0"] {
            assert!(
                r.stderr.contains(&format!("seccomp fds of {thread}: ")),
                "{mode}: no fd map for {thread}: {}",
                r.describe()
            );
        }
        assert!(r.stderr.contains(" disk="), "{}", r.describe());
        assert!(r.stderr.contains(" tap="), "{}", r.describe());
    }
}
