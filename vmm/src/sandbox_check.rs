//! microvm checks its own sandbox before the guest runs: every thread of the process must
//! carry exactly one seccomp filter (its own). A thread without a filter, or with a stacked
//! one, means the spawn/install order is broken, and microvm refuses to run the guest.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// PF_USER_WORKER in /proc/<tid>/stat flags: a kernel worker attached to the process (KVM's
/// `kvm-nx-lpage-recovery` on Linux 6.13+), which never runs user code.
const PF_USER_WORKER: u64 = 0x4000;

/// How long the other threads get to install their filters.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The filter state of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadFilter {
    /// Thread id.
    pub tid: u32,
    /// Thread name (comm).
    pub name: String,
    /// `Seccomp:` (0 none, 2 filter).
    pub mode: u32,
    /// `Seccomp_filters:` (number of stacked filters).
    pub filters: u32,
}

/// Parses the fields we need from /proc/<tid>/status.
pub fn parse_status(tid: u32, status: &str) -> Option<ThreadFilter> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    Some(ThreadFilter {
        tid,
        name: field("Name:")?,
        mode: field("Seccomp:")?.parse().ok()?,
        filters: field("Seccomp_filters:")?.parse().ok()?,
    })
}

fn is_kernel_worker(tid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_USER_WORKER != 0)
}

/// The other user threads of this process and their filters.
fn other_threads() -> Result<Vec<ThreadFilter>> {
    // SAFETY: gettid has no arguments and cannot fail.
    let me = unsafe { libc::gettid() } as u32;
    let host = |source| Error::Host {
        what: "reading /proc/self/task",
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").map_err(host)? {
        let Ok(tid) = entry
            .map_err(host)?
            .file_name()
            .to_string_lossy()
            .parse::<u32>()
        else {
            continue;
        };
        if tid == me || is_kernel_worker(tid) {
            continue;
        }
        // A thread may exit between the listing and the read: skip it then.
        if let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) {
            if let Some(t) = parse_status(tid, &status) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// Why microvm refuses to run the guest after checking its threads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A thread runs without any filter.
    #[error("thread {name} (tid {tid}) has no seccomp filter; refusing to run the guest")]
    NoFilter {
        /// Thread name.
        name: String,
        /// Thread id.
        tid: u32,
    },
    /// A thread carries more than its own filter.
    #[error("thread {name} (tid {tid}) carries {filters} stacked seccomp filters instead of its own one; refusing to run the guest")]
    Stacked {
        /// Thread name.
        name: String,
        /// Thread id.
        tid: u32,
        /// Filters it carries.
        filters: u32,
    },
    /// The main thread's own status file could not be parsed.
    #[error("cannot parse /proc/thread-self/status; refusing to run the guest")]
    Unparsable,
}

/// Judges one thread: Ok when it carries exactly one filter.
pub fn judge(t: &ThreadFilter) -> std::result::Result<(), Refusal> {
    let (name, tid) = (t.name.clone(), t.tid);
    match (t.mode, t.filters) {
        (2, 1) => Ok(()),
        (_, 0) => Err(Refusal::NoFilter { name, tid }),
        (_, filters) => Err(Refusal::Stacked { name, tid, filters }),
    }
}

/// Waits until every other thread has installed its filter, then checks each carries
/// exactly one. Called by the main thread after spawning and before its own filter.
pub fn check_other_threads() -> Result<()> {
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    loop {
        let threads = other_threads()?;
        let pending: Vec<&ThreadFilter> = threads.iter().filter(|t| t.filters == 0).collect();
        if pending.is_empty() || Instant::now() >= deadline {
            for t in &threads {
                judge(t)?;
            }
            return Ok(());
        }
        // Threads install their filter within a few hundred µs of their spawn.
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The main thread's own status file, opened before its filter forbids opening files.
pub struct OwnStatus(File);

impl OwnStatus {
    /// Opens /proc/thread-self/status.
    pub fn open() -> Result<Self> {
        File::open("/proc/thread-self/status")
            .map(OwnStatus)
            .map_err(|source| Error::Host {
                what: "opening /proc/thread-self/status",
                source,
            })
    }

    /// The fd, which the vmm filter lets it read.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }

    /// After the main thread installed its filter: checks it carries exactly one. Plain
    /// `read`s from the start (the file was never read), no seek or stat: the vmm filter
    /// pins `read` to this fd and allows neither lseek nor statx. Keep `self` open for as
    /// long as the filter lives: while it is, no fd opened later (by any thread) can take
    /// the number the vmm filter lets the vmm thread read.
    pub fn check(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut len = 0;
        while len < buf.len() {
            match self.0.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Host {
                        what: "reading /proc/thread-self/status",
                        source,
                    })
                }
            }
        }
        let text = String::from_utf8_lossy(&buf[..len]);
        let me = parse_status(0, &text).ok_or(Refusal::Unparsable)?;
        Ok(judge(&me)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tvcpu0\nUmask:\t0022\nSeccomp:\t2\nSeccomp_filters:\t1\nSpeculation_Store_Bypass:\tx\n";

    #[test]
    fn parses_and_judges_status_files() {
        let t = parse_status(7, STATUS).unwrap();
        assert_eq!(
            t,
            ThreadFilter {
                tid: 7,
                name: "vcpu0".into(),
                mode: 2,
                filters: 1
            }
        );
        assert_eq!(judge(&t), Ok(()));
        let none = ThreadFilter {
            mode: 0,
            filters: 0,
            ..t.clone()
        };
        assert!(judge(&none)
            .unwrap_err()
            .to_string()
            .contains("has no seccomp filter"));
        let stacked = ThreadFilter { filters: 2, ..t };
        assert!(judge(&stacked)
            .unwrap_err()
            .to_string()
            .contains("2 stacked seccomp filters"));
        assert_eq!(parse_status(1, "Name:\tx\n"), None);
    }
}
