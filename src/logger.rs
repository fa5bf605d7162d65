//! A small stderr logger: `microvm[<thread>]: <level>: <message>`, one write per line so
//! lines from different threads do not interleave.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let thread = std::thread::current();
        // The process's first thread is renamed `vmm` with prctl (until then it is named
        // after the executable), or like its device in a device process (`virtio-blk0`,
        // --isolate devices); std still calls it main.
        let first;
        let name = match thread.name() {
            Some("main") | None => {
                first = first_thread_name().filter(|n| n.starts_with("virtio-"));
                first.as_deref().unwrap_or("vmm")
            }
            Some(n) => n,
        };
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let line = format!("microvm[{name}]: {level}: {}\n", record.args());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The calling thread's comm (PR_GET_NAME, which every filter allows), if readable.
fn first_thread_name() -> Option<String> {
    let mut buf = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `buf`.
    if unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr()) } != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..len]).ok().map(str::to_string)
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger with the given maximum level.
pub fn init(level: LevelFilter) {
    // Only fails if a logger is already set, which leaves that one in place.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
