//! `--isolate devices` (issue 13, item 4): every virtio device in a process of its own,
//! with the tiny guest: the guest is served as with device threads, the processes exist
//! with the device's name, sandboxed and filtered, a killed one leaves the VM running, and
//! none is left when microvm ends.

mod common;
use common::netns::Netns;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A 64 KiB raw image whose sector 0 starts with `head`.
fn image(dir: &std::path::Path, name: &str, head: &[u8]) -> String {
    let mut bytes = vec![0u8; 64 * 1024];
    bytes[..head.len()].copy_from_slice(head);
    write_file(dir, name, &bytes)
}

#[test]
fn isolated_blk_and_rng_serve_the_guest() {
    let dir = scratch("isolate-blk");
    let _guard = DirGuard(dir.clone());
    let rw = image(&dir, "rw.img", b"ISOLATED-DISK0-SECTOR0");
    let d = format!("path={rw}");
    let r = run(&[
        "--kernel",
        TINY_BZIMAGE,
        "--isolate",
        "devices",
        "--disk",
        &d,
        "--rng",
        "on",
        "--cmdline",
        "console=ttyS0 reboot=k tiny.test=virtio",
    ]);
    r.assert_pass();
    for want in [
        "tiny: blk0: sector 0 starts \"ISOLATED-DISK0-S\"",
        "tiny: blk0: write+flush+read-back ok",
        "tiny: rng0: 32 bytes: ",
    ] {
        assert!(r.stdout.contains(want), "no {want:?}:\n{}", r.describe());
    }
    // The guest's write went through the device process to the host file.
    let after = std::fs::read(&rw).unwrap();
    assert_eq!(&after[512..528], b"TINY-WROTE-BLK0-");
    assert!(!r.stderr.contains("warning"), "{}", r.describe());
}

#[test]
fn isolated_net_gets_an_arp_reply_from_the_tap() {
    let ns = Netns::new("isolate");
    let tap_mac = ns
        .exec(&["cat", "/sys/class/net/tap0/address"])
        .trim()
        .to_string();
    let child = ns
        .microvm()
        .args(["--kernel", TINY_BZIMAGE, "--isolate", "devices"])
        .args(["--net", "tap=tap0", "--rng", "on"])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=virtio"])
        .spawn()
        .expect("spawn microvm in the namespace");
    let r = wait_with_timeout(child, BOOT_TIMEOUT);
    r.assert_pass();
    let want = format!("tiny: net0: arp reply: 10.0.2.1 is-at {tap_mac}");
    assert!(r.stdout.contains(&want), "want {want:?}:\n{}", r.describe());
}

/// A running microvm in the `wait-input` scenario, its stdout drained in the background.
struct Waiting {
    child: Child,
    stdout: std::sync::mpsc::Receiver<String>,
}

fn start_waiting(mut cmd: std::process::Command) -> Waiting {
    let mut child = cmd.stdin(Stdio::piped()).spawn().expect("spawn microvm");
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("tiny: waiting for input") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        let _ = tx.send(all);
    });
    if ready_rx.recv_timeout(BOOT_TIMEOUT).is_err() {
        let _ = child.kill();
        panic!("the guest never waited for input");
    }
    Waiting { child, stdout: rx }
}

impl Waiting {
    /// Releases the guest and returns its run.
    fn finish(mut self) -> Run {
        let _ = self.child.stdin.as_mut().expect("stdin").write_all(b"x");
        let stdout = self.stdout.recv_timeout(BOOT_TIMEOUT).unwrap_or_default();
        let mut r = wait_with_timeout(self.child, BOOT_TIMEOUT);
        r.stdout = stdout;
        r
    }
}

/// `--isolate devices` with a scratch disk and rng (plus `extra`), the tiny guest waiting
/// for input; the guard removes the disk.
fn waiting_with_disk_and_rng(name: &str, extra: &[&str]) -> (DirGuard, Waiting) {
    let dir = scratch(name);
    let guard = DirGuard(dir.clone());
    let disk = format!("path={}", image(&dir, "w.img", b"W"));
    let mut cmd = microvm();
    cmd.args(["--kernel", TINY_BZIMAGE, "--isolate", "devices"])
        .args(extra)
        .args(["--disk", &disk, "--rng", "on"])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=wait-input"]);
    (guard, start_waiting(cmd))
}

/// The children of `pid` (every thread's), with their comm.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let list = std::fs::read_to_string(task.unwrap().path().join("children")).unwrap();
        for c in list
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            out.push((c, comm.trim().to_string()));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn status_field(pid: u32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn ns_of(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn device_processes_are_named_sandboxed_filtered_and_reaped() {
    let ns = Netns::new("isolate-procs");
    let dir = scratch("isolate-procs");
    let _guard = DirGuard(dir.clone());
    let disk = image(&dir, "p.img", b"P");
    let d = format!("path={disk}");
    let mut cmd = ns.microvm();
    cmd.args(["--kernel", TINY_BZIMAGE, "--isolate", "devices"])
        .args(["--disk", &d, "--net", "tap=tap0", "--rng", "on"])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=wait-input"]);
    let w = start_waiting(cmd);
    let pid = w.child.id();
    let kids = children(pid);
    let names: Vec<&str> = kids.iter().map(|k| k.1.as_str()).collect();
    assert_eq!(
        names,
        ["virtio-blk0", "virtio-net0", "virtio-rng0"],
        "{kids:?}"
    );
    // No device thread is left in the VMM.
    let threads = common::procfs::threads_of(pid);
    assert!(
        threads.iter().all(|t| !t.name.starts_with("virtio-")),
        "{threads:?}"
    );
    for (c, name) in &kids {
        let field = |f| status_field(*c, f);
        assert_eq!(field("Seccomp:"), "2", "{name} is filtered");
        assert_eq!(
            field("Seccomp_filters:"),
            "1",
            "{name} has exactly its own filter"
        );
        assert_eq!(field("NoNewPrivs:"), "1", "{name}");
        assert_eq!(field("CapEff:"), "0000000000000000", "{name}");
        assert_eq!(field("CapBnd:"), "0000000000000000", "{name}");
        for space in ["mnt", "net", "ipc", "uts"] {
            assert_ne!(
                ns_of(*c, space),
                ns_of(pid, space),
                "{name}: {space} namespace"
            );
        }
        // Its fds: stderr plus the device's own (a dozen or so), never the VMM's dozens.
        let fds = std::fs::read_dir(format!("/proc/{c}/fd")).unwrap().count();
        assert!(fds <= 16, "{name} holds {fds} fds");
        let root: Vec<_> = std::fs::read_dir(format!("/proc/{c}/root"))
            .map(|d| d.filter_map(|e| e.ok()).collect())
            .unwrap_or_default();
        assert!(root.is_empty(), "{name}'s root is not empty: {root:?}");
    }
    let r = w.finish();
    assert!(r.stdout.contains("tiny: PASS"), "{}", r.describe());
    assert_eq!(r.code(), 0, "{}", r.describe());
    for (c, name) in &kids {
        assert!(wait_gone(*c), "{name} ({c}) outlived microvm");
    }
}

#[test]
fn a_killed_device_process_needs_reset_and_the_vm_carries_on() {
    let (_guard, w) = waiting_with_disk_and_rng("isolate-kill", &[]);
    let kids = children(w.child.id());
    let (rng, _) = kids
        .iter()
        .find(|k| k.1 == "virtio-rng0")
        .unwrap_or_else(|| panic!("no virtio-rng0 process: {kids:?}"));
    // SAFETY: a signal to a process this test found as microvm's child.
    assert_eq!(unsafe { libc::kill(*rng as i32, libc::SIGKILL) }, 0);
    // Reaped by microvm (not left a zombie) while the guest runs.
    assert!(wait_gone(*rng), "virtio-rng0 was not reaped");
    let blk = kids.iter().find(|k| k.1 == "virtio-blk0").expect("blk");
    assert!(std::path::Path::new(&format!("/proc/{}", blk.0)).exists());
    let r = w.finish();
    assert!(r.stdout.contains("tiny: PASS"), "{}", r.describe());
    assert_eq!(r.code(), 0, "exit code unchanged:\n{}", r.describe());
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("virtio-rng0"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line names the dead device:\n{}",
        r.describe()
    );
    assert!(
        lines[0].ends_with("virtio-rng0: device process died (signal 9); device needs reset"),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("virtio-blk0"), "{}", r.describe());
    assert!(wait_gone(blk.0), "virtio-blk0 outlived microvm");
}

/// The writes the blk-until-dead guest made before its device died.
const MID_IO_SECTORS: usize = 8192;

#[test]
fn a_blk_process_killed_mid_io_fails_in_the_guest_and_keeps_flushed_data() {
    let dir = scratch("isolate-mid-io");
    let _guard = DirGuard(dir.clone());
    let disk = write_file(&dir, "m.img", &vec![0u8; MID_IO_SECTORS * 512]);
    let d = format!("path={disk}");
    let mut cmd = microvm();
    cmd.args([
        "--kernel",
        TINY_BZIMAGE,
        "--isolate",
        "devices",
        "--rng",
        "off",
    ])
    .args(["--disk", &d])
    .args([
        "--cmdline",
        "console=ttyS0 reboot=k tiny.test=blk-until-dead",
    ]);
    let mut child = cmd.spawn().expect("spawn microvm");
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Some writes flushed, more in flight: then the device process dies.
    let mut stdout = String::new();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while !stdout.contains("blk-until-dead: flushed 32\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => stdout += &(line + "\n"),
            Err(_) => {
                let _ = child.kill();
                panic!("the guest never flushed 32 writes:\n{stdout}");
            }
        }
    }
    let kids = children(child.id());
    let (blk, _) = kids
        .iter()
        .find(|k| k.1 == "virtio-blk0")
        .unwrap_or_else(|| panic!("no virtio-blk0 process: {kids:?}"));
    // SAFETY: a signal to a process this test found as microvm's child.
    assert_eq!(unsafe { libc::kill(*blk as i32, libc::SIGKILL) }, 0);
    let mut r = wait_with_timeout(child, BOOT_TIMEOUT);
    stdout.extend(rx.try_iter().map(|l| l + "\n"));
    r.stdout = stdout;
    // The guest saw the device fail (DEVICE_NEEDS_RESET), and the VM ran on to its end.
    let flushed: usize = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tiny: blk-until-dead: needs reset after "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the guest never saw its device need a reset:\n{}",
                r.describe()
            )
        });
    assert!(flushed >= 32, "{}", r.describe());
    assert!(r.stdout.contains("tiny: PASS"), "{}", r.describe());
    assert_eq!(r.code(), 0, "{}", r.describe());
    assert!(
        r.stderr
            .contains("virtio-blk0: device process died (signal 9); device needs reset"),
        "{}",
        r.describe()
    );
    // Every write whose flush completed is in the image, whole.
    let image = std::fs::read(&disk).expect("read the image");
    for i in 1..=flushed {
        let s = &image[i * 512..(i + 1) * 512];
        let n = (i as u32).to_le_bytes();
        let whole = s[..4] == *b"DEAD"
            && s[4..8] == n
            && s[504..508] == *b"TAIL"
            && s[508..512] == n
            && s[8..504].iter().all(|&b| b == (i & 0xff) as u8);
        assert!(
            whole,
            "sector {i} of {flushed} flushed writes is not intact"
        );
    }
}

/// `--seccomp log` reaches device processes too: each sends its filter's listener to the
/// VMM's supervisor with its hello. The test hook makes `getrandom`, which the rng device
/// calls for every request, a forbidden call of `virtio-rng0`: reported once, with the
/// process's name, counted in the summary, and let run, so the guest still gets its bytes.
#[test]
fn log_mode_reports_a_device_process_violation_and_lets_it_run() {
    let mut cmd = microvm();
    cmd.args([
        "--kernel",
        TINY_BZIMAGE,
        "--isolate",
        "devices",
        "--seccomp",
        "log",
    ])
    .args([
        "--rng",
        "on",
        "--cmdline",
        "console=ttyS0 reboot=k tiny.test=virtio",
    ])
    .env("MICROVM_TEST_FILTER_DENY", "virtio-rng0:getrandom");
    let r = wait_with_timeout(cmd.spawn().expect("spawn microvm"), BOOT_TIMEOUT);
    r.assert_pass();
    let reports: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("allowed by --seccomp log"))
        .collect();
    assert_eq!(reports.len(), 1, "{}", r.describe());
    assert!(
        reports[0].starts_with("microvm: seccomp: thread virtio-rng0 (kind rng)")
            && reports[0].contains("getrandom"),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("thread virtio-rng0: getrandom (318) x"),
        "{}",
        r.describe()
    );
    assert!(r.stdout.contains("rng"), "{}", r.describe());
}

/// `--jail` and `--isolate devices` together: the jailed VMM (the waiter's one child, as
/// nobody, without capabilities) forks its device processes, and each still builds its
/// own sandbox inside the jail: a user namespace of its own and new mount, network, IPC
/// and UTS namespaces besides the jail's, an empty root, one filter.
#[test]
fn inside_the_jail_each_device_process_builds_its_own_sandbox() {
    let (_guard, w) = waiting_with_disk_and_rng("isolate-jail", &["--jail"]);
    let jailed = match children(w.child.id())[..] {
        [(pid, _)] => pid,
        ref other => panic!("the waiter has children {other:?}, not one jailed VMM"),
    };
    let kids = children(jailed);
    let names: Vec<&str> = kids.iter().map(|k| k.1.as_str()).collect();
    assert_eq!(names, ["virtio-blk0", "virtio-rng0"], "{kids:?}");
    for (c, name) in &kids {
        let field = |f| status_field(*c, f);
        assert_eq!(field("Seccomp_filters:"), "1", "{name}");
        assert_eq!(field("CapEff:"), "0000000000000000", "{name}");
        for space in ["user", "mnt", "net", "ipc", "uts"] {
            assert_ne!(ns_of(*c, space), ns_of(jailed, space), "{name}: {space}");
        }
        let root = std::fs::read_dir(format!("/proc/{c}/root")).map(|d| d.count());
        assert_eq!(root.ok(), Some(0), "{name}'s root is not empty");
    }
    let r = w.finish();
    assert!(r.stdout.contains("tiny: PASS"), "{}", r.describe());
    assert_eq!(r.code(), 0, "{}", r.describe());
}

#[test]
fn an_unknown_isolation_is_a_usage_error() {
    let r = run(&["--isolate", "processes"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr.contains("expected threads or devices"),
        "{}",
        r.describe()
    );
}

/// Unprivileged (nobody, with only group access to a /dev/kvm node in a private mount
/// namespace, as tests/unprivileged.rs), each device process enters a user namespace of
/// its own besides the others.
#[test]
fn unprivileged_device_processes_get_their_own_user_namespace() {
    let allowed = |file: &str| std::fs::read_to_string(file).map_or(true, |s| s.trim() != "0");
    if !allowed("/proc/sys/user/max_user_namespaces")
        || !allowed("/proc/sys/kernel/unprivileged_userns_clone")
    {
        eprintln!("SKIPPED: this host does not allow unprivileged user namespaces");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_microvm");
    let script = format!(
        "set -e; mount -t tmpfs -o mode=0755 none /dev; \
         mknod -m 0660 /dev/kvm c 10 232; chgrp 4242 /dev/kvm; \
         exec setpriv --reuid=65534 --regid=65534 --groups=4242 --no-new-privs \
           {bin} --kernel {TINY_BZIMAGE} --isolate devices --rng on \
           --cmdline 'console=ttyS0 reboot=k tiny.test=wait-input'"
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let w = start_waiting(cmd);
    let pid = w.child.id();
    let kids = children(pid);
    assert_eq!(kids.len(), 1, "{kids:?}");
    let (rng, name) = &kids[0];
    assert_eq!(name, "virtio-rng0");
    assert_ne!(ns_of(*rng, "user"), ns_of(pid, "user"), "no user namespace");
    assert_eq!(status_field(*rng, "Seccomp:"), "2");
    assert_eq!(status_field(*rng, "CapEff:"), "0000000000000000");
    let r = w.finish();
    assert!(r.stdout.contains("tiny: PASS"), "{}", r.describe());
    assert_eq!(r.code(), 0, "{}", r.describe());
    assert!(wait_gone(*rng), "virtio-rng0 outlived microvm");
}
