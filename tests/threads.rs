//! While a VM runs, every thread is named and carries exactly its own seccomp filter.

mod common;

use common::procfs::threads_while_waiting;
use common::*;

/// Boots the `wait-input` scenario and returns (name, Seccomp, Seccomp_filters) of every
/// thread while the guest waits, after checking the process-wide signals are blocked on
/// each (they are read from a signalfd by the vmm thread): SIGHUP 1, SIGINT 2, SIGTERM 15,
/// SIGWINCH 28.
fn inspect(cpus: u8, seccomp: &str) -> Vec<(String, String, String)> {
    let cmdline = format!("console=ttyS0 tiny.test=wait-input tiny.cpus={cpus}");
    let mut cmd = microvm();
    cmd.args([
        "--kernel",
        TINY_BZIMAGE,
        "--cpus",
        &cpus.to_string(),
        "--seccomp",
        seccomp,
    ])
    .args(["--rng", "off", "--cmdline", &cmdline]);
    let (threads, output, status) = threads_while_waiting(cmd);
    assert!(
        output.contains("tiny: got input 0x78"),
        "stdin must reach the guest:\n{output}"
    );
    assert!(output.contains("tiny: PASS"), "{output}");
    assert_eq!(status.code(), Some(0));
    for t in &threads {
        for sig in [1, 2, 15, 28] {
            assert_ne!(
                t.sigblk & (1 << (sig - 1)),
                0,
                "{} does not block signal {sig}",
                t.name
            );
        }
    }
    threads
        .into_iter()
        .map(|t| (t.name, t.seccomp, t.filters))
        .collect()
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

/// Log mode adds the `seccomp-log` supervisor, filtered once like every other thread.
#[test]
fn every_thread_is_named_and_filtered_once_in_log_mode() {
    let threads = inspect(2, "log");
    let names: Vec<String> = threads.iter().map(|t| t.0.clone()).collect();
    let mut want = expected_names(2);
    want.push("seccomp-log".into());
    want.sort();
    assert_eq!(names, want, "{threads:?}");
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

/// Boots two vCPUs and virtio-rng with a test-hook knob (vmm/src/test_hook.rs) set to
/// `value`, checks microvm exits `code` before the guest prints anything, and returns its
/// one error line.
fn boot_with_broken_sandbox(knob: &str, value: &str, code: i32) -> String {
    let child = microvm()
        .args(["--kernel", TINY_BZIMAGE, "--cpus", "2", "--rng", "on"])
        .env(knob, value)
        .spawn()
        .expect("spawn microvm");
    let run = wait_with_timeout(child, BOOT_TIMEOUT);
    assert_eq!(
        run.code(),
        code,
        "(needs the test hook: cargo test --workspace, or --features test-hooks)\n{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("tiny:"),
        "the guest must not run:\n{}",
        run.describe()
    );
    run.error_line().to_string()
}

#[test]
fn a_stacked_filter_makes_microvm_refuse_to_run_the_guest() {
    // MICROVM_TEST_STACK_FILTER makes the main thread install an extra filter before it
    // spawns, so every thread carries two.
    let error = boot_with_broken_sandbox("MICROVM_TEST_STACK_FILTER", "1", 1);
    assert!(
        error.contains("2 stacked seccomp filters") && error.contains("refusing to run the guest"),
        "{error}"
    );
}

/// MICROVM_TEST_REFUSED_FILTER=<thread> gives that thread a filter the kernel refuses:
/// microvm stops before the guest runs, exit 5, one error line naming the thread.
fn check_refused_filter(thread: &str) {
    let error = boot_with_broken_sandbox("MICROVM_TEST_REFUSED_FILTER", thread, 5);
    let want = format!("microvm: error: thread {thread} could not install its seccomp filter (");
    assert!(
        error.starts_with(&want) && error.ends_with("; the guest did not run"),
        "{error}"
    );
}

#[test]
fn a_vcpu_that_cannot_install_its_filter_stops_microvm_with_exit_5() {
    check_refused_filter("vcpu1");
}

#[test]
fn a_device_thread_that_cannot_install_its_filter_stops_microvm_with_exit_5() {
    check_refused_filter("virtio-rng0");
}

#[test]
fn only_the_fds_the_vm_needs_are_open_while_it_runs() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    // An fd leaked by whoever starts microvm (no CLOEXEC, number 7) must be closed.
    let leaked = std::fs::File::open("/etc/hostname").expect("open a file to leak");
    let leaked_fd = leaked.as_raw_fd();
    let mut cmd = microvm();
    cmd.args(["--kernel", TINY_BZIMAGE, "--cpus", "2", "--rng", "on"])
        .args(["--cmdline", "console=ttyS0 tiny.test=wait-input"]);
    // SAFETY: dup2 in the child before exec; async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(leaked_fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn microvm");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("tiny: waiting for input")),
        "the guest never waited for input"
    );
    let mut targets = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/pid/fd") {
        let entry = entry.expect("fd entry");
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        targets.push((
            entry.file_name().to_string_lossy().into_owned(),
            target.display().to_string(),
        ));
    }
    let _ = std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"x");
    let _ = child.wait();
    drop(leaked);
    // Every fd is stdio, KVM, or an anonymous kernel object (eventfd, signalfd, epoll):
    // no file (the leaked one, the kernel image) stays open, but the vmm thread's own
    // status file, kept while its filter (which pins `read` to that fd number) lives.
    let own_status = format!("/proc/{pid}/task/{pid}/status");
    for (fd, target) in &targets {
        let ok = matches!(fd.as_str(), "0" | "1" | "2")
            || target.starts_with("anon_inode:")
            || target == "/dev/kvm"
            || *target == own_status;
        assert!(ok, "unexpected fd {fd} -> {target}: {targets:?}");
    }
    assert!(
        !targets.iter().any(|(_, t)| t == "/etc/hostname"),
        "the inherited fd is still open: {targets:?}"
    );
}
