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
        // The process's first thread is renamed `vmm` with prctl; std still calls it main.
        let name = match thread.name() {
            Some("main") | None => "vmm",
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

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger with the given maximum level.
pub fn init(level: LevelFilter) {
    // Only fails if a logger is already set, which leaves that one in place.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
