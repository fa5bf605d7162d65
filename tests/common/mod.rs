//! Helpers shared by the integration tests: run microvm with a time limit, capture what
//! it printed, and find the tiny guest images built by build.rs.
#![allow(dead_code)]

pub mod cbpf;
pub mod linux;
pub mod netns;
pub mod procfs;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The tiny guest as a bzImage.
pub const TINY_BZIMAGE: &str = env!("MICROVM_TINY_BZIMAGE");
/// The tiny guest as an ELF vmlinux.
pub const TINY_VMLINUX: &str = env!("MICROVM_TINY_VMLINUX");
/// Generous limit for one tiny-guest boot (the guest runs in KVM's emulator here).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// A microvm command with stdin closed and output captured.
pub fn microvm() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microvm"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What a finished run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code (panics if microvm died by a signal, with its output).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "microvm died by a signal: {:?}\n{}",
                self.status,
                self.describe()
            )
        })
    }

    /// Output for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// The one `microvm: error:` line on stderr (panics unless there is exactly one).
    pub fn error_line(&self) -> &str {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("microvm: error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "exactly one error line expected:\n{}",
            self.describe()
        );
        errors[0]
    }

    /// Asserts the guest's PASS report and a clean exit.
    pub fn assert_pass(&self) {
        assert!(
            self.stdout.contains("tiny: PASS") && !self.stdout.contains("tiny: FAIL"),
            "guest did not report PASS:\n{}",
            self.describe()
        );
        assert_eq!(self.code(), 0, "exit code:\n{}", self.describe());
    }
}

/// Runs a spawned child to completion, killing it after `timeout`.
/// stdout may have been taken by the caller already (it is then reported empty).
pub fn wait_with_timeout(mut child: Child, timeout: Duration) -> Run {
    let mut out: Box<dyn Read + Send> = match child.stdout.take() {
        Some(s) => Box::new(s),
        None => Box::new(std::io::empty()),
    };
    let mut err = child.stderr.take().expect("stderr piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait().expect("waitpid");
            let run = Run {
                status,
                stdout: t_out.join().unwrap_or_default(),
                stderr: t_err.join().unwrap_or_default(),
            };
            panic!(
                "microvm did not finish within {timeout:?}:\n{}",
                run.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Runs microvm with `args` and returns what happened.
pub fn run(args: &[&str]) -> Run {
    let child = microvm().args(args).spawn().expect("spawn microvm");
    wait_with_timeout(child, BOOT_TIMEOUT)
}

/// Boots `kernel` with the given vCPU count, seccomp mode and extra guest parameters, and
/// no virtio device (`--rng off`), so the guest sees exactly this command line.
pub fn boot(kernel: &str, cpus: u8, seccomp: &str, extra_cmdline: &str) -> Run {
    let cmdline = format!("console=ttyS0 reboot=k tiny.cpus={cpus} {extra_cmdline}");
    let cpus = cpus.to_string();
    run(&[
        "--kernel",
        kernel,
        "--cpus",
        &cpus,
        "--seccomp",
        seccomp,
        "--rng",
        "off",
        "--cmdline",
        cmdline.trim(),
    ])
}

/// A scratch directory unique to one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("microvm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `bytes` to `dir/name` and returns the path as a String.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write scratch file");
    p.display().to_string()
}

/// True when this host's CPU exposes VT-x or AMD-V, so KVM runs guest kernel code in
/// hardware; false on nested "PVM" hosts where KVM emulates it.
pub fn host_has_hw_virt() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The soak multiplier: `MICROVM_SOAK=n` runs the load and fault loops n times longer.
pub fn soak() -> u32 {
    std::env::var("MICROVM_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// Removes a scratch directory however the test ends.
pub struct DirGuard(pub std::path::PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sh -c script` in a private mount namespace (util-linux `unshare`), with
/// microvm's usual pipes: the script may mount over /dev without touching the host's.
pub fn run_in_mount_namespace(script: &str) -> Run {
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) must be installed");
    wait_with_timeout(child, BOOT_TIMEOUT)
}

/// Runs microvm with `args` where /dev is an empty tmpfs, so /dev/kvm does not exist.
pub fn run_without_dev_kvm(args: &str) -> Run {
    let bin = env!("CARGO_BIN_EXE_microvm");
    run_in_mount_namespace(&format!("mount -t tmpfs none /dev && exec {bin} {args}"))
}

/// Waits until `child`'s stdout prints a line containing `needle` (the rest of stdout is
/// drained in the background); panics with `what` after [`BOOT_TIMEOUT`].
pub fn wait_for_stdout_line(child: &mut Child, needle: &'static str, what: &str) {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("child stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(BOOT_TIMEOUT).expect(what);
}
