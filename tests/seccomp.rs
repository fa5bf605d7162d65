//! Seccomp end to end: the test hook (a chosen thread makes a forbidden call) under every
//! mode, `microvm seccomp print`, `--seccomp-filter` round trip and errors, and
//! `microvm seccomp from-strace` on a real and a doctored strace log.
//!
//! The hook needs vmm's `test-hooks` feature, which `cargo test --workspace` turns on
//! through the test-hooks/ member (or `cargo test --features test-hooks`); `cargo build`
//! and `cargo bench` binaries never have it.

mod common;

use common::*;

const REPORT: &str = "made a forbidden system call: getppid (110)";

fn hook(thread: &str, seccomp: &str) -> Run {
    hook_with(thread, seccomp, &[])
}

/// [`hook`] with `extra` arguments first (e.g. `--seccomp-filter FILE`).
fn hook_with(thread: &str, seccomp: &str, extra: &[&str]) -> Run {
    let cmdline =
        format!("console=ttyS0 reboot=k tiny.test=seccomp-hook tiny.hook.thread={thread}");
    // virtio-rng on: the device-thread case needs it, the others ignore it.
    let mut args: Vec<&str> = extra.to_vec();
    args.extend([
        "--kernel",
        TINY_BZIMAGE,
        "--cpus",
        "2",
        "--seccomp",
        seccomp,
        "--rng",
        "on",
        "--cmdline",
        &cmdline,
    ]);
    run(&args)
}

fn check_hook(thread: &str, kind: &str) {
    let run = hook(thread, "true");
    assert_eq!(run.code(), 148, "{}", run.describe());
    let line = format!("microvm: seccomp: thread {thread} (kind {kind}) {REPORT}");
    let reports: Vec<&str> = run.stderr.lines().filter(|l| l.contains(REPORT)).collect();
    assert_eq!(reports.len(), 1, "{}", run.describe());
    assert!(reports[0].starts_with(&line), "{}", run.describe());
    assert!(
        reports[0].contains("rerun with --seccomp log"),
        "{}",
        run.describe()
    );

    // Log mode: the seccomp-log supervisor reports the call once, with the thread's name
    // and arguments, lets it run, and the guest goes on to PASS.
    let run = hook(thread, "log");
    run.assert_pass();
    let reports: Vec<&str> = run.stderr.lines().filter(|l| l.contains(REPORT)).collect();
    assert_eq!(reports.len(), 1, "{}", run.describe());
    assert!(reports[0].starts_with(&line), "{}", run.describe());
    assert!(reports[0].contains(" args [0x"), "{}", run.describe());
    assert!(
        reports[0].ends_with("allowed by --seccomp log (reported once per thread and call; the exit summary counts repeats)"),
        "{}",
        run.describe()
    );
    let summary = format!("thread {thread}: getppid (110) x1");
    assert!(run.stderr.contains(&summary), "{}", run.describe());

    let run = hook(thread, "false");
    run.assert_pass();
    assert!(!run.stderr.contains("seccomp"), "{}", run.describe());
}

#[test]
fn hook_on_the_vcpu_thread() {
    check_hook("vcpu0", "vcpu");
}

#[test]
fn hook_on_the_vmm_thread() {
    check_hook("vmm", "vmm");
}

#[test]
fn hook_on_a_device_thread() {
    check_hook("virtio-rng0", "rng");
}

#[test]
fn print_lists_every_kind_with_counts() {
    let out = run(&["seccomp", "print"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    for kind in vmm::seccomp::ThreadKind::all() {
        let head = format!("thread kind {kind}: ");
        assert!(out.stdout.contains(&head), "{}", out.describe());
    }
    assert!(out.stdout.contains("ioctl KVM_RUN "), "{}", out.describe());
    assert!(
        out.stdout.contains("KVM_RUN (0xae80)"),
        "{}",
        out.describe()
    );
    let bad = run(&["seccomp", "print", "--thread", "gpu"]);
    assert_eq!(bad.code(), 1, "{}", bad.describe());
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.describe());
}

/// The compiled programs, as `print` inspects them: no log-mode filter (nor the
/// supervisor's, nor the jail waiter's) decides anything by instruction pointer, so nothing
/// bypasses the report.
#[test]
fn print_shows_no_log_filter_reads_the_instruction_pointer() {
    let out = run(&["seccomp", "print"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    let clean = "the program never reads the instruction pointer";
    let kinds = vmm::seccomp::ThreadKind::all().len();
    assert_eq!(
        out.stdout.matches(clean).count(),
        kinds + 2,
        "{}",
        out.describe()
    );
    assert!(!out.stdout.contains("WARNING"), "{}", out.describe());
    let sup = run(&["seccomp", "print", "--thread", "seccomp-log"]);
    assert_eq!(sup.code(), 0, "{}", sup.describe());
    assert!(
        sup.stdout
            .starts_with("thread seccomp-log (--seccomp log only): "),
        "{}",
        sup.describe()
    );
    assert!(
        sup.stdout.contains("SECCOMP_IOCTL_NOTIF_SEND"),
        "{}",
        sup.describe()
    );
    let waiter = run(&["seccomp", "print", "--thread", "jail-waiter"]);
    assert_eq!(waiter.code(), 0, "{}", waiter.describe());
    assert!(
        waiter.stdout.starts_with("thread jail-waiter (--jail only")
            && waiter.stdout.contains("pidfd_send_signal")
            && !waiter.stdout.contains("seccomp-log"),
        "{}",
        waiter.describe()
    );
    assert!(
        sup.stdout.contains("never USER_NOTIF"),
        "{}",
        sup.describe()
    );
}

#[test]
fn printed_json_filters_boot_the_guest() {
    let out = run(&["seccomp", "print", "--format", "json"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    let dir = scratch("seccomp-json");
    let file = write_file(&dir, "filters.json", out.stdout.as_bytes());
    let cmdline = "console=ttyS0 reboot=k tiny.cpus=2";
    let booted = run(&[
        "--seccomp-filter",
        &file,
        "--kernel",
        TINY_BZIMAGE,
        "--cpus",
        "2",
        "--cmdline",
        cmdline,
    ]);
    booted.assert_pass();
    assert!(!booted.stderr.contains("seccomp"), "{}", booted.describe());
}

/// `--seccomp-filter` filters under `--seccomp log` notify the supervisor like the built-in
/// ones: the hook's call on a vCPU is reported with the thread's name and the guest passes.
#[test]
fn printed_json_filters_report_in_log_mode() {
    let out = run(&["seccomp", "print", "--format", "json"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    let dir = scratch("seccomp-json-log");
    let file = write_file(&dir, "filters.json", out.stdout.as_bytes());
    let run = hook_with("vcpu0", "log", &["--seccomp-filter", &file]);
    run.assert_pass();
    let line = format!("microvm: seccomp: thread vcpu0 (kind vcpu) {REPORT} args [0x");
    let reports: Vec<&str> = run.stderr.lines().filter(|l| l.contains(REPORT)).collect();
    assert_eq!(reports.len(), 1, "{}", run.describe());
    assert!(reports[0].starts_with(&line), "{}", run.describe());
    assert!(
        run.stderr.contains("thread vcpu0: getppid (110) x1"),
        "{}",
        run.describe()
    );
}

#[test]
fn bad_filter_files_get_one_error_line() {
    let dir = scratch("seccomp-bad");
    let cases = [
        (
            "malformed",
            "{\"vcpu\": {\"filter\": [",
            "malformed JSON at line 1",
        ),
        ("kind", "{\"gpu\": {}}", "unknown thread kind \"gpu\""),
        (
            "syscall",
            r#"{"vcpu": {"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "nosuch"}]}}"#,
            "unknown system call name \"nosuch\"",
        ),
    ];
    for (name, text, want) in cases {
        let file = write_file(&dir, name, text.as_bytes());
        let out = run(&["--seccomp-filter", &file]);
        assert_eq!(out.code(), 1, "{name}: {}", out.describe());
        assert_eq!(out.stderr.lines().count(), 1, "{name}: {}", out.describe());
        assert!(out.stderr.contains(want), "{name}: {}", out.describe());
    }
}

/// Records `strace -f --decode-pids=comm` of a tiny-guest boot; None if strace cannot run.
/// `--log-level debug` and `-s 1024`: the fd maps microvm logs are in the trace, whole.
fn record_trace(dir: &std::path::Path) -> Option<String> {
    let trace = dir.join("trace.txt");
    let status = std::process::Command::new("strace")
        .args(["-f", "--decode-pids=comm", "-s", "1024", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_microvm"))
        .args([
            "--kernel",
            TINY_BZIMAGE,
            "--cpus",
            "2",
            "--log-level",
            "debug",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => std::fs::read_to_string(trace).ok(),
        other => {
            eprintln!("skipped: strace could not trace microvm ({other:?})");
            None
        }
    }
}

#[test]
fn from_strace_real_boot_blocks_nothing_and_doctored_log_exactly_the_injected() {
    let dir = scratch("seccomp-strace");
    let Some(trace) = record_trace(&dir) else {
        return;
    };
    let file = write_file(&dir, "real.txt", trace.as_bytes());
    let out = run(&["seccomp", "from-strace", &file]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(
        out.stdout
            .contains("summary: 0 distinct blocked call(s), 0 in total"),
        "{}",
        out.describe()
    );
    for thread in ["vmm", "vcpu0", "vcpu1"] {
        assert!(
            out.stdout.contains(&format!("thread {thread} (tid ")),
            "{}",
            out.describe()
        );
    }
    // Replayed against the fd pins (the maps were in the trace).
    assert!(
        !out.stdout.contains("fd pins not checked"),
        "{}",
        out.describe()
    );

    // Inject three forbidden calls after the filters went on (at the end of the trace).
    let tid_of = |name: &str| {
        trace
            .lines()
            .find_map(|l| {
                let (tid, rest) = l.split_once('<')?;
                rest.starts_with(&format!("{name}>"))
                    .then(|| tid.to_string())
            })
            .unwrap_or_default()
    };
    let (vmm_tid, vcpu_tid) = (tid_of("vmm"), tid_of("vcpu0"));
    let injected = format!(
        "{vcpu_tid}<vcpu0> socket(AF_INET, SOCK_STREAM, 0) = 7\n\
         {vcpu_tid}<vcpu0> ioctl(9, KVM_SET_REGS, 0x7ffc) = 0\n\
         {vcpu_tid}<vcpu0> read(4, \"\", 8) = 8\n\
         {vmm_tid}<vmm> mprotect(0x7f0000, 4096, PROT_READ|PROT_EXEC) = 0\n\
         {vmm_tid}<vmm> mprotect(0x7f0000, 4096, PROT_READ|PROT_EXEC) = 0\n"
    );
    let doctored = trace.replacen(
        &format!("{vcpu_tid}<vcpu0> +++ exited"),
        &format!("{injected}{vcpu_tid}<vcpu0> +++ exited"),
        1,
    );
    assert_ne!(doctored, trace, "the trace has no exit line for vcpu0");
    let file = write_file(&dir, "doctored.txt", doctored.as_bytes());
    let out = run(&["seccomp", "from-strace", &file]);
    assert_eq!(out.code(), 1, "{}", out.describe());
    let blocked: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("BLOCKED"))
        .collect();
    assert_eq!(blocked.len(), 4, "{}", out.describe());
    assert!(
        blocked[0].contains("mprotect (10)") && blocked[0].contains("x2"),
        "{blocked:?}"
    );
    assert!(blocked[1].contains("ioctl (16)"), "{blocked:?}");
    // A vCPU reads no fd at all: the pinned replay blocks this one.
    assert!(blocked[2].contains("read (0)"), "{blocked:?}");
    assert!(blocked[3].contains("socket (41)"), "{blocked:?}");
    // The filter file it prints allows the doctored trace.
    let json = out
        .stdout
        .split_once("(seccompiler JSON, for --seccomp-filter) ---\n")
        .map(|(_, j)| j.to_string())
        .unwrap_or_default();
    let filters = vmm::seccomp::CustomFilters::parse(&json).expect("valid JSON filters");
    assert!(filters.kinds.len() >= 2);
}

#[test]
fn seccomp_check_proves_every_kind_stops_every_escape() {
    let run = run(&["seccomp", "check"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    for kind in ["vmm", "vcpu", "blk", "net", "rng"] {
        let n = vmm::seccomp::check::ESCAPES.len();
        let line = format!("thread kind {kind}: {n} of {n} escape calls stopped");
        assert!(
            run.stdout.contains(&line),
            "missing '{line}':\n{}",
            run.describe()
        );
    }
    // One line per kind and escape, each saying what stopped it.
    let attempts = run.stdout.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(
        attempts,
        5 * vmm::seccomp::check::ESCAPES.len(),
        "{}",
        run.describe()
    );
    // The fd escapes (issue 13) are among them.
    for what in [
        "write(a fresh fd 1000)",
        "lseek(stderr, 0, SEEK_CUR)",
        "statx(/etc/passwd)",
    ] {
        assert!(run.stdout.contains(what), "{what}: {}", run.describe());
    }
    assert!(run
        .stdout
        .lines()
        .filter(|l| l.starts_with("  "))
        .all(|l| l.contains("stopped:")));
    assert!(run
        .stdout
        .contains("socket(AF_INET, SOCK_STREAM)       stopped: trapped (SIGSYS)"));
    assert!(run.stdout.contains(
        "openat(/etc/passwd, O_RDONLY)      stopped: the filter answered Permission denied"
    ));
}
