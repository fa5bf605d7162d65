//! Runs one VMM process through the small C launcher (benches/bench/launcher.c) and
//! collects what the bench needs: start, first guest serial byte and exit timestamps
//! (CLOCK_MONOTONIC), exit status, peak RSS and CPU times of the VMM process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// CLOCK_MONOTONIC in nanoseconds, the clock the launcher uses too.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Compiles the launcher (once) into `dir` with the system C compiler.
pub fn build_launcher(dir: &Path) -> Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/bench/launcher.c");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join("microvm-bench-launcher");
    for extra in [&["-static"][..], &[][..]] {
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .args(extra)
            .stderr(Stdio::null())
            .status()
            .context("running cc to build the launcher (install gcc)")?;
        if status.success() {
            return Ok(out);
        }
    }
    bail!("cc could not build {}", src.display())
}

/// What one process run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Right before the launcher forked the VMM.
    pub t_start_ns: u64,
    /// When the guest's first `tiny: ` line (or the do-nothing guest's `noop`) reached us
    /// (None: never).
    pub t_first_ns: Option<u64>,
    /// Right after wait4 returned.
    pub t_exit_ns: u64,
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// ru_maxrss of the VMM process, KiB.
    pub maxrss_kib: u64,
    /// User CPU time of the VMM process (all threads), µs.
    pub utime_us: u64,
    /// System CPU time of the VMM process (all threads), µs.
    pub stime_us: u64,
    /// The VMM's stdout (the guest's serial output).
    pub stdout: String,
    /// The VMM's stderr.
    pub stderr: String,
}

impl RunResult {
    /// Wall time from exec to exit, ms.
    pub fn wall_ms(&self) -> f64 {
        (self.t_exit_ns.saturating_sub(self.t_start_ns)) as f64 / 1e6
    }

    /// Wall time from exec to the guest's first serial byte, ms.
    pub fn first_byte_ms(&self) -> Option<f64> {
        self.t_first_ns
            .map(|t| t.saturating_sub(self.t_start_ns) as f64 / 1e6)
    }

    /// The last lines of the output, for error messages.
    pub fn tail(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(6)..].join("\n")
        };
        format!(
            "exit {:?}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.exit_code,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

static RUN_ID: AtomicU64 = AtomicU64::new(0);

/// Runs `program args` under the launcher, killing it after `timeout`.
pub fn run(
    launcher: &Path,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<RunResult> {
    let id = RUN_ID.fetch_add(1, Ordering::Relaxed);
    let result_file =
        std::env::temp_dir().join(format!("microvm-bench-{}-{id}.result", std::process::id()));
    let _ = std::fs::remove_file(&result_file);
    let mut child = Command::new(launcher)
        .arg(&result_file)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", launcher.display()))?;
    let pid = child.id() as i32;
    let mut out = child.stdout.take().context("stdout pipe")?;
    let mut err = child.stderr.take().context("stderr pipe")?;
    let t_out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut first = None;
        let mut chunk = [0u8; 4096];
        while let Ok(n) = out.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let marked = |m: &[u8]| buf.windows(m.len()).any(|w| w == m);
            if first.is_none() && (marked(b"tiny: ") || marked(b"noop\n")) {
                first = Some(now_ns());
            }
        }
        (String::from_utf8_lossy(&buf).into_owned(), first)
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        if child.try_wait().context("waitpid")?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) on the launcher's own process group (it called setpgid).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (stdout, t_first_ns) = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    if timed_out {
        let _ = std::fs::remove_file(&result_file);
        let tail: Vec<&str> = stdout.lines().rev().take(4).collect();
        bail!("timed out after {timeout:?}; last output: {:?}", tail);
    }
    let line = std::fs::read_to_string(&result_file).with_context(|| {
        format!(
            "launcher result {} (stderr: {stderr})",
            result_file.display()
        )
    })?;
    let _ = std::fs::remove_file(&result_file);
    let v: Vec<i64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("launcher result {line:?}"))?;
    if v.len() != 6 {
        bail!("launcher result {line:?}: want 6 numbers");
    }
    let status = v[2] as i32;
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(RunResult {
        t_start_ns: v[0] as u64,
        t_first_ns,
        t_exit_ns: v[1] as u64,
        exit_code,
        maxrss_kib: v[3] as u64,
        utime_us: v[4] as u64,
        stime_us: v[5] as u64,
        stdout,
        stderr,
    })
}
