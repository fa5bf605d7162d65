//! Issue 13 item 5: `--jail`, as root and unprivileged. While the tiny guest waits for
//! input, /proc of the jailed VMM (the waiter's only child) shows: a root holding nothing
//! but /proc, namespaces other than the test's, the requested uid/gid, no capability at
//! all, no new privileges, the rlimits, and PID 1 of its PID namespace. The VM then exits
//! with the guest's own code; bad jail options give one error line.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The tiny guest's wait-input scenario on 2 vCPUs with every thread filtered.
const WAIT_ARGS: &str =
    "--cpus 2 --seccomp true --cmdline 'console=ttyS0 reboot=k tiny.cpus=2 tiny.test=wait-input'";

/// Namespaces every jail makes new.
const NEW_NAMESPACES: [&str; 5] = ["mnt", "pid", "ipc", "uts", "net"];

/// What /proc says about the jailed VMM while the guest waits.
#[derive(Debug)]
struct Jailed {
    /// Names in `/proc/PID/root`, sorted.
    root: Vec<String>,
    /// `/proc/PID/status`.
    status: String,
    /// `/proc/PID/limits`.
    limits: String,
    /// `/proc/PID/cgroup`.
    cgroup: String,
    /// Namespaces (of `NEW_NAMESPACES` and "user") that differ from the test's.
    new_namespaces: Vec<&'static str>,
    /// `Seccomp:` of each of its threads.
    seccomp: Vec<String>,
}

impl Jailed {
    fn field(&self, name: &str) -> &str {
        self.status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in status:\n{}", self.status))
    }

    /// The checks every jail passes, whoever started it.
    fn assert_jailed(&self, uid: u32, gid: u32) {
        assert_eq!(self.root, ["proc"], "the jail's root: {self:#?}");
        for ns in NEW_NAMESPACES {
            assert!(self.new_namespaces.contains(&ns), "{ns} not new: {self:#?}");
        }
        assert_eq!(self.field("Uid:"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
        assert_eq!(self.field("Gid:"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
        for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(self.field(caps), "0000000000000000", "{caps}");
        }
        assert_eq!(self.field("NoNewPrivs:"), "1");
        assert!(
            self.field("NSpid:").ends_with("\t1"),
            "PID 1 of its own PID namespace: {}",
            self.field("NSpid:")
        );
        assert!(
            self.seccomp.len() >= 3 && self.seccomp.iter().all(|s| s == "2"),
            "every thread (vmm, 2 vCPUs, rng) filtered: {:?}",
            self.seccomp
        );
        let core = self.limit("Max core file size");
        assert_eq!(core, ["0", "0"], "{}", self.limits);
    }

    /// Soft and hard value of one `/proc/PID/limits` row.
    fn limit(&self, row: &str) -> Vec<&str> {
        let line = self
            .limits
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row}:\n{}", self.limits));
        line[row.len()..].split_whitespace().take(2).collect()
    }
}

/// The only child of the waiter `pid`, once it exists.
fn jailed_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let children: Vec<u32> = children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        if let [child] = children[..] {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "microvm {pid} has children {children:?}, not one jailed VMM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn namespace(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{ns}: {e}"))
}

fn inspect(pid: u32) -> Jailed {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
    };
    let mut root: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .expect("read /proc/PID/root")
        .map(|e| e.expect("root entry").file_name().to_string_lossy().into())
        .collect();
    root.sort();
    let new_namespaces = NEW_NAMESPACES
        .iter()
        .chain(&["user"])
        .copied()
        .filter(|ns| namespace("self", ns) != namespace(&pid.to_string(), ns))
        .collect();
    Jailed {
        root,
        status: read("status"),
        limits: read("limits"),
        cgroup: read("cgroup"),
        new_namespaces,
        seccomp: procfs::threads_of(pid)
            .into_iter()
            .map(|t| t.seccomp)
            .collect(),
    }
}

/// Runs `sh -c script` (which execs microvm in the wait-input scenario), inspects the
/// jailed VMM while the guest waits, then lets the guest finish.
fn jailed_while_waiting(script: &str) -> (Jailed, Run) {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("tiny: waiting for input") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if rx.recv_timeout(BOOT_TIMEOUT).is_err() {
        let _ = child.kill();
        let run = wait_with_timeout(child, BOOT_TIMEOUT);
        panic!("the guest never waited for input:\n{}", run.describe());
    }
    let jailed = inspect(jailed_child(child.id()));
    let waiter = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .expect("the waiter's status");
    for field in [
        "Name:\tjail-waiter",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "Seccomp_filters:\t1",
    ] {
        assert!(waiter.contains(field), "the waiter: {field}:\n{waiter}");
    }
    let uid = jailed.field("Uid:").to_string();
    assert!(
        waiter
            .lines()
            .any(|l| l.strip_prefix("Uid:").map(str::trim) == Some(&uid)),
        "the waiter runs as the jail's uid {uid}:\n{waiter}"
    );
    let _ = child.stdin.as_mut().expect("stdin piped").write_all(b"x");
    let mut run = wait_with_timeout(child, BOOT_TIMEOUT);
    run.stdout = reader.join().unwrap_or_default();
    (jailed, run)
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_microvm")
}

#[test]
fn as_root_the_vmm_runs_as_nobody_with_nothing_but_proc() {
    let (jailed, run) = jailed_while_waiting(&format!(
        "MICROVM_TEST_JAIL_PROBE={PROBES} exec {} --jail {WAIT_ARGS}",
        bin()
    ));
    run.assert_pass();
    assert_eq!(
        probe(&run, "/etc/passwd"),
        "No such file or directory (os error 2)"
    );
    assert_eq!(probe(&run, "/proc/self/status"), "allowed");
    assert_eq!(
        probe(&run, "tcp:127.0.0.1:9"),
        "Network is unreachable (os error 101)"
    );
    assert!(run.stdout.contains("got input 0x78"), "{}", run.describe());
    jailed.assert_jailed(65534, 65534);
    assert!(
        !jailed.new_namespaces.contains(&"user"),
        "root needs no user namespace"
    );
    assert_eq!(jailed.limit("Max open files"), ["1024", "1024"]);
}

#[test]
fn jail_uid_gid_and_rlimits_are_the_given_ones() {
    let (jailed, run) = jailed_while_waiting(&format!(
        "exec {} --jail --jail-uid 4321 --jail-gid 4322 --jail-nofile 200 --jail-nproc 5000 \
         {WAIT_ARGS}",
        bin()
    ));
    run.assert_pass();
    jailed.assert_jailed(4321, 4322);
    assert_eq!(jailed.field("Groups:"), "");
    assert_eq!(jailed.limit("Max open files"), ["200", "200"]);
    assert_eq!(jailed.limit("Max processes"), ["5000", "5000"]);
}

/// Whether this host lets an unprivileged user create a user namespace.
fn user_namespaces_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(true)
        && std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
            .map(|s| s.trim() != "0")
            .unwrap_or(true)
}

/// As tests/unprivileged.rs: a private /dev with a /dev/kvm node of the host's device
/// numbers that group 4242 may open; microvm runs as nobody in that group.
fn unprivileged_script(args: &str) -> String {
    format!(
        "set -e; mount -t tmpfs -o mode=0755 none /dev; \
         mknod -m 0660 /dev/kvm c 10 232; chgrp 4242 /dev/kvm; \
         exec setpriv --reuid=65534 --regid=65534 --groups=4242 {} {args}",
        bin()
    )
}

#[test]
fn unprivileged_the_vmm_is_jailed_in_a_user_namespace() {
    if !user_namespaces_allowed() {
        eprintln!("SKIPPED: this host does not allow unprivileged user namespaces");
        return;
    }
    let script = unprivileged_script(&format!("--jail {WAIT_ARGS}"));
    let (jailed, run) = jailed_while_waiting(&format!(
        "exec unshare --mount --propagation private sh -c \"{}\"",
        script.replace('"', "\\\"")
    ));
    run.assert_pass();
    jailed.assert_jailed(65534, 65534);
    assert!(
        jailed.new_namespaces.contains(&"user"),
        "an unprivileged jail needs a user namespace: {jailed:#?}"
    );
}

/// As [`unprivileged_script`], but chrooted into a bind mount of `/`: the kernel refuses
/// a user namespace to a chrooted process (EPERM), as a host with user namespaces off
/// would, so `--jail` falls back to Landlock. `probe` goes to the test hook's
/// `MICROVM_TEST_JAIL_PROBE`.
fn chrooted_unprivileged_script(probe: &str, args: &str) -> String {
    format!(
        "set -e; mount -t tmpfs -o mode=0755 none /dev; \
         mknod -m 0660 /dev/kvm c 10 232; chgrp 4242 /dev/kvm; \
         root=$(mktemp -d); mount --rbind / \"$root\"; \
         MICROVM_TEST_JAIL_PROBE={probe} exec chroot \"$root\" \
         setpriv --reuid=65534 --regid=65534 --groups=4242 {} {args}",
        bin()
    )
}

/// What a jailed VMM reaches: a file by path, /proc/self, and TCP (in the test's own
/// network namespace, where nothing listens and loopback is down).
const PROBES: &str = "/etc/passwd,/proc/self/status,tcp:127.0.0.1:9";

fn probe<'a>(run: &'a Run, what: &str) -> &'a str {
    let prefix = format!("microvm: test hook: probe {what}: ");
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no probe of {what}:\n{}", run.describe()))
}

#[test]
fn without_user_namespaces_the_jail_is_landlock() {
    let run = run_in_mount_namespace(&format!(
        "exec unshare --net sh -c '{}'",
        chrooted_unprivileged_script(PROBES, "--jail --seccomp true")
    ));
    run.assert_pass();
    assert!(
        run.stderr
            .contains("no user namespace here (unshare: Operation not permitted")
            && run.stderr.contains("confined by Landlock instead"),
        "{}",
        run.describe()
    );
    assert_eq!(
        probe(&run, "/etc/passwd"),
        "Permission denied (os error 13)"
    );
    assert_eq!(
        probe(&run, "tcp:127.0.0.1:9"),
        "Permission denied (os error 13)"
    );
    assert_eq!(probe(&run, "/proc/self/status"), "allowed");
    // Device processes forked inside it fall back to the same domain.
    let isolated = run_in_mount_namespace(&chrooted_unprivileged_script(
        "/etc/passwd",
        "--jail --isolate devices --rng on --cmdline 'console=ttyS0 reboot=k tiny.test=virtio'",
    ));
    isolated.assert_pass();
    assert!(
        isolated.stdout.contains("rng0: 32 bytes"),
        "{}",
        isolated.describe()
    );
    // The same caller without --jail reaches the file, and TCP gets as far as routing.
    let free = run_in_mount_namespace(&format!(
        "exec unshare --net sh -c '{}'",
        chrooted_unprivileged_script(PROBES, "--seccomp true")
    ));
    free.assert_pass();
    assert_eq!(probe(&free, "/etc/passwd"), "allowed");
    assert_eq!(
        probe(&free, "tcp:127.0.0.1:9"),
        "Network is unreachable (os error 101)"
    );
}

#[test]
fn unprivileged_a_foreign_uid_is_one_clear_error() {
    let run = run_in_mount_namespace(&unprivileged_script("--jail --jail-uid 0"));
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        run.error_line()
            .contains("an unprivileged caller can only run as itself: --jail-uid 0"),
        "{}",
        run.describe()
    );
}

/// microvm under `--jail` (its waiter), once the tiny guest halts for good.
fn jailed_and_halted() -> std::process::Child {
    let mut child = microvm()
        .args(["--jail", "--cmdline", "console=ttyS0 tiny.test=halt"])
        .spawn()
        .expect("spawn microvm");
    wait_for_stdout_line(
        &mut child,
        "tiny: halting forever",
        "the guest never reached its halt loop",
    );
    child
}

#[test]
fn sigterm_reaches_the_jailed_vmm() {
    let child = jailed_and_halted();
    // SAFETY: sending a signal to our own child process (the waiter, which forwards it).
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let run = wait_with_timeout(child, BOOT_TIMEOUT);
    assert_eq!(run.code(), 143, "{}", run.describe());
    assert!(!run.stderr.contains("error"), "{}", run.describe());
}

#[test]
fn jail_options_without_jail_are_a_usage_error() {
    let run = run(&["--jail-uid", "5"]);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(run.stderr.contains("--jail"), "{}", run.describe());
    let run = common::run(&["--jail", "--jail-memory-max", "64M"]);
    assert_eq!(run.code(), 2, "{}", run.describe());
    assert!(run.stderr.contains("--jail-cgroup"), "{}", run.describe());
}

#[test]
fn a_missing_cgroup_is_one_clear_error() {
    let run = run(&["--jail", "--jail-cgroup", "/nonexistent/microvm"]);
    assert_eq!(run.code(), 1, "{}", run.describe());
    let line = run.error_line();
    assert!(
        line.contains("jail: cgroup /nonexistent/microvm: writing")
            && line.contains("cgroup.procs (not a cgroup v2 directory)"),
        "{}",
        run.describe()
    );
}

/// The host's cgroup v2 mount point, if any.
fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split_whitespace().nth(4).map(Into::into))?
    })
}

#[test]
fn the_jailed_vmm_is_in_the_given_cgroup() {
    let Some(mount) = cgroup2_mount() else {
        eprintln!("SKIPPED: no cgroup v2 mount on this host");
        return;
    };
    let name = format!("microvm-jail-test-{}", std::process::id());
    let dir = mount.join(&name);
    std::fs::create_dir(&dir).expect("create a test cgroup (run the tests as root)");
    let controllers =
        std::fs::read_to_string(mount.join("cgroup.subtree_control")).unwrap_or_default();
    let pids = if controllers.split_whitespace().any(|c| c == "pids") {
        "--jail-pids-max 64"
    } else {
        ""
    };
    let (jailed, run) = jailed_while_waiting(&format!(
        "exec {} --jail --jail-cgroup {} {pids} {WAIT_ARGS}",
        bin(),
        dir.display()
    ));
    let _ = std::fs::remove_dir(&dir);
    run.assert_pass();
    assert!(
        jailed
            .cgroup
            .lines()
            .any(|l| l.starts_with("0::/") && l.ends_with(&format!("/{name}"))),
        "{}",
        jailed.cgroup
    );
}

/// Disk images are opened before the jail and served from their fds inside it, where no
/// path to them exists: the guest reads, writes and flushes its disk as without `--jail`.
#[test]
fn disks_opened_before_the_jail_are_served_inside_it() {
    let dir = scratch("jail-blk");
    let _guard = DirGuard(dir.clone());
    let mut bytes = vec![0u8; 64 * 1024];
    let head = b"MICROVM-DISK0-SECTOR0 in a jail";
    bytes[..head.len()].copy_from_slice(head);
    let rw = write_file(&dir, "rw.img", &bytes);
    let ro = write_file(&dir, "ro.img", &bytes);
    let (d0, d1) = (format!("path={rw}"), format!("path={ro},readonly=on"));
    let run = run(&[
        "--jail",
        "--disk",
        &d0,
        "--disk",
        &d1,
        "--cmdline",
        "console=ttyS0 reboot=k tiny.test=virtio",
    ]);
    run.assert_pass();
    for line in [
        "tiny: blk0: sector 0 starts \"MICROVM-DISK0-SE\"",
        "tiny: blk0: write+flush+read-back ok",
        "tiny: blk1: write refused on read-only disk (status 1)",
    ] {
        assert!(run.stdout.contains(line), "{line}:\n{}", run.describe());
    }
}

#[test]
fn under_seccomp_log_the_jailed_vmm_reports_a_violation_and_runs_on() {
    let mut cmd = microvm();
    cmd.args(["--jail", "--seccomp", "log", "--rng", "on"])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=virtio"])
        .env("MICROVM_TEST_FILTER_DENY", "virtio-rng0:getrandom");
    let run = wait_with_timeout(cmd.spawn().expect("spawn microvm"), BOOT_TIMEOUT);
    run.assert_pass();
    let reports: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("allowed by --seccomp log"))
        .collect();
    assert!(
        matches!(reports[..], [r] if r.starts_with("microvm: seccomp: thread virtio-rng0 (kind rng)")
            && r.contains("getrandom")),
        "one report, from the rng thread inside the jail:\n{}",
        run.describe()
    );
}

/// The jailed VMM dies with its waiter (PR_SET_PDEATHSIG, set after the uid change that
/// would clear it): a waiter killed by SIGKILL leaves no VM behind.
#[test]
fn a_killed_waiter_takes_the_jailed_vmm_with_it() {
    let mut child = jailed_and_halted();
    let jailed = jailed_child(child.id());
    child.kill().expect("SIGKILL the waiter");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{jailed}")).exists() {
        if Instant::now() > deadline {
            // SAFETY: a signal to the process this test started (through its waiter).
            unsafe { libc::kill(jailed as libc::pid_t, libc::SIGKILL) };
            panic!("the jailed VMM {jailed} outlived its waiter");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
