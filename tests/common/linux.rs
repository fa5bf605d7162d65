//! Real-Linux scenario runs: Debian's stock cloud kernel with the scenario initramfs of
//! resources/make-linux-guest.sh (`mvtest=NAME`, results as `MVTEST key=value` lines), booted
//! by microvm under its default `--seccomp true`.
//!
//! A test writes a [`Session`]: a host-side shell script of microvm boots and checks (busybox
//! applets: `nc`, `sha256sum`, `dd` ...). Where this machine has VT-x/AMD-V, the script runs
//! here, in a private network namespace with its own `tap0`; elsewhere (our dev and CI hosts:
//! nested KVM without VT-x, where a real kernel cannot boot) it runs inside the nested host of
//! resources/nested-host.sh, one nested-host boot per session. Either way the script sees:
//!
//! - `$MICROVM`, `$GUEST` (the guest files, named as in resources/out/linux), `$WORK` (the
//!   test's scratch folder, shared both ways), `$RUN` (where disk images are used: RAM in the
//!   nested host, `$WORK` here; `stage F` / `unstage F` copy between the two);
//! - `tap0` at 10.0.2.1/24 (the guest takes 10.0.2.2);
//! - `boot NAME ARGS...`: one microvm run whose exit code, stdout and stderr come back as a
//!   [`Boot`]; `HOST ...` lines it prints come back as [`Outcome::host`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::host_has_hw_virt;

/// One guest boot's safety net inside a session (12-25 s each in the nested host).
pub const GUEST_TIMEOUT_S: u32 = 150;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs resources/make-linux-guest.sh once per test process and returns its output folder.
pub fn linux_guest() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = root().join("resources/out/linux");
        let status = Command::new(root().join("resources/make-linux-guest.sh"))
            .arg(&out)
            .status()
            .expect("run resources/make-linux-guest.sh");
        assert!(status.success(), "resources/make-linux-guest.sh failed");
        out
    })
}

/// Where the guests of a session run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// This machine, which has VT-x/AMD-V.
    Native,
    /// resources/nested-host.sh: QEMU TCG emulating AMD-V, in which KVM runs guests.
    Nested,
}

impl Host {
    /// Native where KVM runs guest code in hardware, the nested host otherwise.
    pub fn pick() -> Host {
        if host_has_hw_virt() {
            Host::Native
        } else {
            Host::Nested
        }
    }
}

/// One microvm run of a session.
#[derive(Debug, Default, Clone)]
pub struct Boot {
    /// microvm's exit code (143, or 137 if SIGTERM did not end it: stopped by the session's
    /// per-boot timeout).
    pub rc: i32,
    /// Wall seconds.
    pub secs: u64,
    /// The guest console (microvm's stdout), without carriage returns.
    pub stdout: String,
    /// microvm's stderr.
    pub stderr: String,
    /// Runs discarded after a guest triple fault or hang in KVM_RUN (`@@RETRY` line and output).
    pub retries: Vec<String>,
}

impl Boot {
    /// The value of `key` in the guest's `MVTEST` lines (the first line naming it).
    pub fn mv(&self, key: &str) -> Option<&str> {
        let pat = format!("{key}=");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("MVTEST "))
            .flat_map(str::split_whitespace)
            .find_map(|w| w.strip_prefix(pat.as_str()))
    }

    /// The value of `key` in the `MVTEST` line whose first word is `first` (e.g.
    /// `region=4`).
    pub fn mv_in(&self, first: &str, key: &str) -> Option<&str> {
        let pat = format!("{key}=");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("MVTEST "))
            .filter(|l| l.split_whitespace().next() == Some(first))
            .flat_map(str::split_whitespace)
            .find_map(|w| w.strip_prefix(pat.as_str()))
    }

    /// The guest's `MVTEST` lines, for assertion messages.
    pub fn results(&self) -> String {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("MVTEST "))
            .collect();
        lines.join("\n")
    }

    /// Output for assertion messages: the results, the console's last lines and stderr.
    pub fn describe(&self) -> String {
        let tail: Vec<&str> = self.stdout.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "exit {} after {} s ({} earlier run(s) discarded: guest triple fault or hang in KVM_RUN)\n--- MVTEST lines ---\n{}\n--- console (last 40 lines) ---\n{}\n--- microvm stderr ---\n{}",
            self.rc,
            self.secs,
            self.retries.len(),
            self.results(),
            tail.join("\n"),
            self.stderr
        )
    }

    /// Asserts a clean guest run: `end=... rc=0` and microvm's exit 0.
    pub fn assert_clean(&self, what: &str) {
        assert_eq!(
            self.mv("rc"),
            Some("0"),
            "{what}: scenario failed:\n{}",
            self.describe()
        );
        assert_eq!(
            self.rc,
            0,
            "{what}: microvm exit code:\n{}",
            self.describe()
        );
    }
}

/// What a session printed.
#[derive(Debug)]
pub struct Outcome {
    /// Where it ran.
    pub on: Host,
    /// Every boot, by name.
    pub boots: BTreeMap<String, Boot>,
    /// The script's `HOST ...` lines, without the prefix.
    pub host: Vec<String>,
    /// Everything, for assertion messages.
    pub raw: String,
}

/// A session: one host-side script, run by [`Session::run`], cut into steps (see
/// [`Session::step`]).
pub struct Session {
    name: String,
    work: PathBuf,
    steps: Vec<String>,
}

/// The shell functions every session script starts with.
const PRELUDE: &str = include_str!("linux_prelude.sh");

/// Runs in a row that end with the nested host itself hung or dead (exit 124/125) and no
/// step finished, before the test fails. A run that finishes a step resets the count: CI
/// saw the host's kernel panic three times in one ten-boot session.
const NESTED_HOST_STALLS: u32 = 3;

/// Only one session at a time per test process: a nested host is two cores' worth of TCG.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

impl Session {
    /// A session with a fresh scratch folder (`$WORK`).
    pub fn new(name: &str) -> Session {
        let work = super::scratch(name);
        Session {
            name: name.to_string(),
            work,
            steps: vec![String::new()],
        }
    }

    /// The scratch folder, to put disk images in before [`Session::run`] and read them after.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// Appends a line of host-side shell to the current step.
    pub fn sh(&mut self, line: &str) -> &mut Self {
        let step = self.steps.last_mut().expect("a session has a step");
        step.push_str(line);
        step.push('\n');
        self
    }

    /// Starts a new step. When the nested host dies mid-session, the session runs again and
    /// skips the steps that finished (their output is kept in `$WORK/.steps`), so a step must
    /// not need anything a previous step left in `$RUN` (the nested host's RAM): begin it
    /// with `stage`.
    pub fn step(&mut self) -> &mut Self {
        if !self.steps.last().is_some_and(String::is_empty) {
            self.steps.push(String::new());
        }
        self
    }

    /// The script's steps, each wrapped so that a re-run skips it once done.
    fn body(&self) -> String {
        let mut body = String::new();
        for (i, step) in self.steps.iter().enumerate() {
            body += &format!(
                "if step_begin {i}; then\n{{\n:\n{step}}} > \"$WORK/.steps/{i}.part\"\nstep_end {i}\nfi\n"
            );
        }
        body
    }

    /// How many steps earlier runs finished.
    fn steps_done(&self) -> usize {
        (0..self.steps.len())
            .filter(|i| self.work.join(format!(".steps/{i}.out")).exists())
            .count()
    }

    /// The output so far of the step a dead nested host did not finish.
    fn unfinished_step(&self) -> String {
        (0..self.steps.len())
            .filter_map(|i| {
                std::fs::read_to_string(self.work.join(format!(".steps/{i}.part"))).ok()
            })
            .next()
            .unwrap_or_default()
    }

    /// Appends a boot of `kernel` (`bzImage-cloud` or `vmlinux-cloud`) with the scenario
    /// initramfs, `mvtest=SCENARIO` plus `cmdline_extra`, and `args` (e.g. `--cpus 2`).
    pub fn boot(
        &mut self,
        name: &str,
        kernel: &str,
        scenario: &str,
        cmdline_extra: &str,
        args: &str,
    ) -> &mut Self {
        // MVTEST_END=reboot ends every guest with `reboot -f` (an i8042 reset) instead of
        // an ACPI power-off: for trying the scenarios on a microvm without ACPI.
        let end = match std::env::var("MVTEST_END") {
            Ok(e) if e == "reboot" => " mvend=reboot",
            _ => "",
        };
        let line = format!(
            "boot {name} --kernel \"$GUEST/{kernel}\" --initramfs \"$GUEST/initramfs-cloud.cpio.gz\" \
             --memory 256 --log-level info {args} --cmdline 'console=ttyS0 reboot=k panic=1 pci=off mvtest={scenario} {cmdline_extra}{end}'"
        );
        self.sh(&line)
    }

    /// Runs the script on [`Host::pick`]'s host, within `timeout`, and parses what it printed.
    /// Panics with the whole output when the host fails or the script exits non-zero.
    pub fn run(&self, timeout: Duration) -> Outcome {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let guest = linux_guest();
        let host = Host::pick();
        let secs = timeout.as_secs();
        let mut script = String::from("set -u\n");
        let mut cmd = match host {
            Host::Native => {
                let bb = busybox_applets();
                script += &format!(
                    "export PATH='{}':\"$PATH\"\nMICROVM='{}'; GUEST='{}'; WORK='{}'; RUN=\"$WORK\"\n\
                     ip link set lo up; ip tuntap add dev tap0 mode tap; ip addr add 10.0.2.1/24 dev tap0; ip link set tap0 up\n",
                    bb.display(),
                    env!("CARGO_BIN_EXE_microvm"),
                    guest.display(),
                    self.work.display()
                );
                let mut c = Command::new("timeout");
                c.args(["-s", "KILL", &secs.to_string(), "unshare", "--net", "sh"]);
                c.arg(self.work.join("session.sh"));
                c
            }
            Host::Nested => {
                script += "MICROVM=/bin/microvm; GUEST=/guest; WORK=/share; RUN=/tmp\n";
                let mut c = Command::new(root().join("resources/nested-host.sh"));
                c.args(["run", "--timeout", &secs.to_string(), "--share"])
                    .arg(&self.work)
                    .args(["--microvm", env!("CARGO_BIN_EXE_microvm")]);
                for f in ["bzImage-cloud", "vmlinux-cloud", "initramfs-cloud.cpio.gz"] {
                    c.arg("--file")
                        .arg(format!("{}:/guest/{f}", guest.join(f).display()));
                }
                c.args(["--", "sh", "/share/session.sh"]);
                c
            }
        };
        script += &format!(
            "GUEST_TIMEOUT={GUEST_TIMEOUT_S}\n{PRELUDE}\n{}",
            self.body()
        );
        std::fs::write(self.work.join("session.sh"), script).expect("write session.sh");
        eprintln!(
            "{}: running on {}",
            self.name,
            match host {
                Host::Native =>
                    "this host (VT-x/AMD-V: microvm runs directly, in a private network namespace)",
                Host::Nested => "the nested host (resources/nested-host.sh: no VT-x/AMD-V here)",
            }
        );
        let t0 = Instant::now();
        // The nested host's own time-out starts once it holds the machine-wide lock, which
        // other callers (another checkout's tests) may hold for a while.
        let mut stalls = 0;
        let (code, raw) = loop {
            let before = self.steps_done();
            let (code, raw) = run_group(&mut cmd, 2 * timeout + Duration::from_secs(300));
            // 124/125: the nested host itself hung or died (its own kernel: a soft lockup or
            // a panic under TCG's emulated SVM, such as "stack guard page was hit" on a vCPU
            // thread, printed in `raw`), not a result of the session. The session runs again
            // from its first unfinished step, until NESTED_HOST_STALLS runs in a row finish
            // none, or three times the session's time is spent.
            if host == Host::Nested && matches!(code, Some(124 | 125)) {
                let done = self.steps_done();
                stalls = if done > before { 0 } else { stalls + 1 };
                if stalls < NESTED_HOST_STALLS && t0.elapsed() < 3 * timeout {
                    eprintln!(
                        "{}: the nested host failed (exit {code:?}) with {done} of {} steps done; \
                         running the rest again:\n{raw}\n--- the unfinished step so far ---\n{}",
                        self.name,
                        self.steps.len(),
                        self.unfinished_step()
                    );
                    continue;
                }
            }
            break (code, raw);
        };
        eprintln!("{}: session took {:.0?}", self.name, t0.elapsed());
        assert_eq!(code, Some(0), "{}: the session failed:\n{raw}", self.name);
        let out = parse(host, raw);
        // A retried boot now and then is the nested host; on half the boots it is us (and a
        // boot that fails all its runs fails its test anyway).
        let retried = out.boots.values().filter(|b| !b.retries.is_empty()).count();
        assert!(
            retried <= (out.boots.len() / 2).max(1),
            "{}: {retried} of {} boots triple-faulted or hung and were run again: too many to blame \
             the nested host\n{}",
            self.name,
            out.boots.len(),
            out.raw
        );
        out
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

/// A folder of busybox applet links (for native sessions: the script uses busybox's `nc`).
fn busybox_applets() -> PathBuf {
    let dir = root().join("resources/out/busybox-bin");
    if !dir.join("nc").exists() {
        std::fs::create_dir_all(&dir).expect("create busybox-bin");
        let ok = Command::new("busybox")
            .args(["--install", "-s"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "busybox (package busybox-static) is needed: run resources/install-deps.sh"
        );
    }
    dir
}

/// Runs `cmd` in its own process group, killing the whole group after `limit`; returns the
/// exit code and stdout followed by stderr.
fn run_group(cmd: &mut Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn the session");
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout piped")));
    let err = reader(Box::new(child.stderr.take().expect("stderr piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waitpid") {
            break Some(s);
        }
        if Instant::now() > deadline {
            // The group: nested-host.sh, its QEMU, or the native script's microvm runs.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!(
        "{}\n--- stderr ---\n{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    match status {
        Some(s) => (s.code(), text),
        None => (None, format!("KILLED after {limit:?}\n{text}")),
    }
}

/// Splits a session's output into boots and `HOST` lines.
fn parse(host: Host, raw: String) -> Outcome {
    let mut boots: BTreeMap<String, Boot> = BTreeMap::new();
    let mut hosts = Vec::new();
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("@@BOOT ") {
            let mut w = rest.split_whitespace();
            let name = w.next().unwrap_or_default().to_string();
            let b = boots.entry(name).or_default();
            for kv in w {
                if let Some(v) = kv.strip_prefix("rc=") {
                    b.rc = v.parse().unwrap_or(-1);
                } else if let Some(v) = kv.strip_prefix("secs=") {
                    b.secs = v.parse().unwrap_or(0);
                }
            }
        } else if let Some(rest) = line.strip_prefix("@@OUT ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let b = boots.entry(name.to_string()).or_default();
            b.stdout.push_str(text);
            b.stdout.push('\n');
        } else if let Some(rest) = line.strip_prefix("@@ERR ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let b = boots.entry(name.to_string()).or_default();
            b.stderr.push_str(text);
            b.stderr.push('\n');
        } else if let Some(rest) = line.strip_prefix("@@RETRY ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            let b = boots.entry(name.to_string()).or_default();
            b.retries.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("@@RETRYLOG ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some(r) = boots.get_mut(name).and_then(|b| b.retries.last_mut()) {
                r.push_str("\n    ");
                r.push_str(text);
            }
        } else if let Some(rest) = line.strip_prefix("HOST ") {
            hosts.push(rest.to_string());
        }
    }
    for (name, b) in &boots {
        eprintln!("  boot {name}: exit {} in {} s", b.rc, b.secs);
        for r in &b.retries {
            // Straight to fd 2, not eprintln!: libtest shows captured output only for failed
            // tests, and a retry must be seen in a passing run too.
            let _ = writeln!(
                std::io::stderr(),
                "boot {name}: RETRIED (guest triple fault or hang in KVM_RUN): {r}"
            );
        }
    }
    Outcome {
        on: host,
        boots,
        host: hosts,
        raw,
    }
}

impl Outcome {
    /// The boot called `name` (panics with the whole output if it did not run).
    pub fn boot(&self, name: &str) -> &Boot {
        self.boots
            .get(name)
            .unwrap_or_else(|| panic!("boot {name} did not run:\n{}", self.raw))
    }

    /// The value of `key` in the `HOST` line starting with `tag`.
    pub fn host_value(&self, tag: &str, key: &str) -> Option<String> {
        let pat = format!("{key}=");
        self.host
            .iter()
            .filter(|l| l.split_whitespace().next() == Some(tag))
            .flat_map(|l| l.split_whitespace())
            .find_map(|w| w.strip_prefix(pat.as_str()).map(str::to_string))
    }
}

/// sha256 of a file's bytes, with coreutils' sha256sum.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Deterministic pseudo-random bytes (xorshift64*), for images made on the test's side.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// A tool from e2fsprogs (mke2fs, debugfs), which live in /usr/sbin.
pub fn e2fs_tool(name: &str) -> Command {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Command::new(p);
        }
    }
    panic!("{name} not found: install e2fsprogs (resources/install-deps.sh)");
}
