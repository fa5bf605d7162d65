//! A log rate limit per device: at most [`LINES_PER_WINDOW`] lines per second, then one
//! "suppressed N messages" line when the next window opens. A hostile guest cannot flood
//! the host's stderr.

use std::time::{Duration, Instant};

/// Lines allowed per window.
pub const LINES_PER_WINDOW: u32 = 5;
/// Length of a window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Rate-limited warnings, prefixed with the device name (e.g. `virtio-blk0`).
#[derive(Debug)]
pub struct RateLimitedLog {
    name: String,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    /// A limiter for the device `name`.
    pub fn new(name: impl Into<String>) -> Self {
        RateLimitedLog {
            name: name.into(),
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// The device name used as prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logs a warning unless this window is full. Returns true if the line was printed.
    pub fn warn(&mut self, msg: std::fmt::Arguments<'_>) -> bool {
        let now = Instant::now();
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if fresh {
            if self.suppressed > 0 {
                log::warn!("{}: suppressed {} messages", self.name, self.suppressed);
                self.suppressed = 0;
            }
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= LINES_PER_WINDOW {
            self.suppressed += 1;
            return false;
        }
        self.in_window += 1;
        log::warn!("{}: {}", self.name, msg);
        true
    }

    /// Messages suppressed in the current window so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_few_lines_per_window() {
        let mut log = RateLimitedLog::new("virtio-test0");
        let printed = (0..100)
            .filter(|i| log.warn(format_args!("message {i}")))
            .count();
        assert_eq!(printed, LINES_PER_WINDOW as usize);
        assert_eq!(log.suppressed(), 100 - u64::from(LINES_PER_WINDOW));
        log.window_start = log.window_start.map(|s| s - WINDOW);
        assert!(log.warn(format_args!("next window")));
        assert_eq!(log.suppressed(), 0);
    }
}
