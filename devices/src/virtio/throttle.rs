//! The host side of a device rate limit: a [`Limiter`] (token buckets), the clock it reads
//! and a timerfd that wakes the device thread when the tokens it waits for are there.
//!
//! A throttled queue is not served further: its chains stay in the avail ring (nothing is
//! dropped, nothing is completed early), the device does not re-notify itself, and the
//! timerfd, always in the device thread's epoll set, fires when the next request fits.
//! The timerfd is created on the main thread, before any filter: the device thread only
//! arms it (timerfd_settime) and reads it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::token_bucket::Limiter;

/// Nanoseconds from a fixed origin, never going backwards.
pub type Clock = Box<dyn Fn() -> u64 + Send>;

/// The monotonic clock (`Instant`), counted from the moment this is called.
pub fn monotonic_clock() -> Clock {
    let origin = Instant::now();
    Box::new(move || u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// A non-blocking CLOCK_MONOTONIC timerfd, armed one-shot.
#[derive(Debug)]
pub struct Timer {
    fd: OwnedFd,
    armed: bool,
}

impl Timer {
    /// Creates the timerfd (TFD_NONBLOCK | TFD_CLOEXEC), disarmed.
    pub fn new() -> std::io::Result<Timer> {
        // SAFETY: timerfd_create takes no pointers; the result is checked below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, armed: false })
    }

    /// Arms the timer to fire once, `ns` nanoseconds from now (at least 1 ns: 0 would
    /// disarm it).
    pub fn arm(&mut self, ns: u64) -> std::io::Result<()> {
        let ns = ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: timerfd_settime reads `spec`, which lives for the call; no old value.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.armed = true;
        Ok(())
    }

    /// Whether the timer was armed and has not been [`Timer::clear`]ed since.
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Reads the expiration count (nothing to read is fine) and forgets the arming.
    pub fn clear(&mut self) {
        let mut count = 0u64;
        // SAFETY: reads at most 8 bytes into `count`, which lives for the call.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        self.armed = false;
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One rate-limited direction of a device (a disk's requests, a net device's tx or rx).
pub struct Throttle {
    limiter: Limiter,
    clock: Clock,
    timer: Timer,
    blocked: bool,
}

impl Throttle {
    /// `limiter` on `clock`, waking through `timer`.
    pub fn new(limiter: Limiter, clock: Clock, timer: Timer) -> Self {
        Throttle {
            limiter,
            clock,
            timer,
            blocked: false,
        }
    }

    /// Admits one operation of `bytes`. When refused, the direction is blocked and the
    /// timer armed for when the operation fits. If the timer cannot be armed the operation
    /// is admitted (a guest must never wait forever on a broken limit) and an error
    /// returned for the log.
    pub fn admit(&mut self, bytes: u64) -> Result<bool, std::io::Error> {
        match self.limiter.admit(bytes, (self.clock)()) {
            Ok(()) => {
                self.blocked = false;
                Ok(true)
            }
            Err(wait) => match self.timer.arm(wait) {
                Ok(()) => {
                    self.blocked = true;
                    Ok(false)
                }
                Err(e) => {
                    self.blocked = false;
                    Err(e)
                }
            },
        }
    }

    /// Whether the last operation was refused (the queue waits for the timer).
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// The timer fired: clears it; returns whether the direction was blocked (and so
    /// should be served again).
    pub fn fired(&mut self) -> bool {
        self.timer.clear();
        std::mem::take(&mut self.blocked)
    }

    /// Forgets a block (device reset); the buckets keep their tokens.
    pub fn reset(&mut self) {
        self.blocked = false;
    }

    /// The timerfd, for the device thread's epoll set.
    pub fn timer_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// Whether the timer is armed (tests).
    pub fn timer_armed(&self) -> bool {
        self.timer.is_armed()
    }
}

/// [`Throttle::admit`] on an optional throttle (none: unlimited), logging an arming
/// failure on `log`.
pub fn admit(throttle: &mut Option<Throttle>, bytes: u64, log: &mut super::RateLimitedLog) -> bool {
    let Some(t) = throttle else {
        return true;
    };
    t.admit(bytes).unwrap_or_else(|e| {
        log.warn(format_args!(
            "cannot arm the rate-limit timer ({e}): request served unthrottled"
        ));
        true
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::testutil::manual_clock;
    use super::*;

    #[test]
    fn a_refused_operation_arms_the_timer_and_blocks_until_it_fires() {
        let (now, clock) = manual_clock();
        let mut t = Throttle::new(Limiter::new(0, 2, 0), clock, Timer::new().unwrap());
        assert!(t.admit(0).unwrap());
        assert!(t.admit(0).unwrap());
        assert!(!t.timer_armed());
        assert!(!t.admit(0).unwrap(), "two ops per second");
        assert!(t.blocked() && t.timer_armed());
        now.store(500_000_000, Ordering::Relaxed);
        assert!(t.fired(), "it was blocked: serve again");
        assert!(!t.blocked() && !t.timer_armed());
        assert!(t.admit(0).unwrap());
        assert!(!t.fired(), "a spurious fire serves nothing");
    }

    #[test]
    fn the_timerfd_fires_after_the_wait() {
        let mut timer = Timer::new().unwrap();
        timer.arm(1_000_000).unwrap();
        let mut pfd = libc::pollfd {
            fd: timer.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one pollfd that lives for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 5_000) };
        assert_eq!(n, 1, "fired within 5 s");
        timer.clear();
        // SAFETY: as above, without waiting.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert_eq!(n, 0, "read: no longer readable");
    }
}
