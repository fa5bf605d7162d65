//! Token buckets for device I/O rate limits (`--disk ...,bw=,ops=`, `--net ...,bw=`), as
//! Firecracker's: a bucket of `size` tokens that refills at `size` tokens per `refill_ns`,
//! starts full, and may hold a one-time burst on top.
//!
//! Pure logic: every method takes the current time in nanoseconds from a monotonic origin of
//! the caller's choosing, so tests drive the clock by hand. (Not to be confused with
//! [`super::ratelimit`], which limits *log lines*.)
//!
//! Rules:
//! - A bucket of size 0 (or refill time 0) is unlimited: everything is admitted at once.
//! - A request is admitted when the bucket (plus what is left of the burst) holds
//!   `min(request, size)` tokens, and then takes the tokens it needs: the burst first.
//! - A request larger than the bucket could never be admitted by "wait until it fits"; it is
//!   admitted once the bucket is full, takes everything, and the rest becomes *debt*, which
//!   the refill repays before the next request is admitted. So large requests still make
//!   progress and the long-run rate still holds (Firecracker admits them too, with a
//!   reduced-size rule; debt keeps the rate exact).
//! - Refill is exact: the fractional remainder of a refill is carried to the next one.

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// One bucket of tokens (bytes or operations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    size: u64,
    refill_ns: u64,
    burst: u64,
    budget: u64,
    debt: u64,
    /// Refill progress below one token, in units of tokens * ns / refill_ns.
    frac: u128,
    last_ns: u64,
}

impl TokenBucket {
    /// A bucket of `size` tokens refilled in `refill_ns`, with a one-time `burst`; full at
    /// time `now_ns`. `size == 0` or `refill_ns == 0`: unlimited.
    pub fn new(size: u64, refill_ns: u64, burst: u64, now_ns: u64) -> Self {
        TokenBucket {
            size,
            refill_ns,
            burst,
            budget: size,
            debt: 0,
            frac: 0,
            last_ns: now_ns,
        }
    }

    /// `rate` tokens per second (a bucket holding one second's worth), no burst.
    pub fn per_second(rate: u64, now_ns: u64) -> Self {
        Self::new(rate, NS_PER_SEC, 0, now_ns)
    }

    /// Whether this bucket limits anything.
    pub fn is_limited(&self) -> bool {
        self.size != 0 && self.refill_ns != 0
    }

    /// Tokens available now (budget plus burst), after refilling up to `now_ns`.
    pub fn available(&mut self, now_ns: u64) -> u64 {
        self.refill(now_ns);
        self.budget.saturating_add(self.burst)
    }

    /// Adds the tokens earned since the last refill: debt first, then the budget (up to
    /// `size`). A clock that goes backwards earns nothing.
    fn refill(&mut self, now_ns: u64) {
        if !self.is_limited() {
            return;
        }
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        let acc = u128::from(elapsed) * u128::from(self.size) + self.frac;
        let earned = acc / u128::from(self.refill_ns);
        self.frac = acc % u128::from(self.refill_ns);
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        let repaid = earned.min(self.debt);
        self.debt -= repaid;
        self.budget = self.budget.saturating_add(earned - repaid).min(self.size);
        if self.budget == self.size {
            // Full: nothing more is owed to it.
            self.frac = 0;
        }
    }

    /// Tokens that must be in the bucket before `tokens` is admitted.
    fn needed(&self, tokens: u64) -> u64 {
        tokens.min(self.size)
    }

    /// Nanoseconds from `now_ns` until `tokens` can be admitted (0: now).
    pub fn wait_ns(&mut self, tokens: u64, now_ns: u64) -> u64 {
        self.refill(now_ns);
        if !self.is_limited() {
            return 0;
        }
        let have = self.budget.saturating_add(self.burst);
        let missing = u128::from(self.debt) + u128::from(self.needed(tokens).saturating_sub(have));
        if missing == 0 {
            return 0;
        }
        // Earning `missing` tokens needs acc >= missing * refill_ns; acc grows by `size`
        // per ns on top of `frac`.
        let target = missing * u128::from(self.refill_ns) - self.frac;
        let ns = target.div_ceil(u128::from(self.size));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Whether `tokens` can be admitted at `now_ns`, without taking them.
    pub fn can_consume(&mut self, tokens: u64, now_ns: u64) -> bool {
        self.wait_ns(tokens, now_ns) == 0
    }

    /// Takes `tokens` if they can be admitted at `now_ns` (see the module rules); false, and
    /// nothing taken, otherwise.
    pub fn consume(&mut self, tokens: u64, now_ns: u64) -> bool {
        if !self.can_consume(tokens, now_ns) {
            return false;
        }
        if !self.is_limited() {
            return true;
        }
        let from_burst = tokens.min(self.burst);
        self.burst -= from_burst;
        let rest = tokens - from_burst;
        let from_budget = rest.min(self.budget);
        self.budget -= from_budget;
        self.debt = self.debt.saturating_add(rest - from_budget);
        true
    }
}

/// The limits of one direction of a device: bytes and operations per second; either bucket
/// may be unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limiter {
    bytes: TokenBucket,
    ops: TokenBucket,
}

impl Limiter {
    /// `bytes_per_sec` and `ops_per_sec` (0: that one unlimited), full at `now_ns`.
    pub fn new(bytes_per_sec: u64, ops_per_sec: u64, now_ns: u64) -> Self {
        Limiter {
            bytes: TokenBucket::per_second(bytes_per_sec, now_ns),
            ops: TokenBucket::per_second(ops_per_sec, now_ns),
        }
    }

    /// From two buckets.
    pub fn from_buckets(bytes: TokenBucket, ops: TokenBucket) -> Self {
        Limiter { bytes, ops }
    }

    /// Whether either bucket limits anything.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_limited() || self.ops.is_limited()
    }

    /// Admits one operation of `bytes` at `now_ns`: Ok with both buckets charged, or
    /// Err(nanoseconds to wait) with neither charged.
    pub fn admit(&mut self, bytes: u64, now_ns: u64) -> Result<(), u64> {
        let wait = self
            .bytes
            .wait_ns(bytes, now_ns)
            .max(self.ops.wait_ns(1, now_ns));
        if wait > 0 {
            return Err(wait);
        }
        let (b, o) = (
            self.bytes.consume(bytes, now_ns),
            self.ops.consume(1, now_ns),
        );
        debug_assert!(b && o, "both buckets said the operation fits");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn consume_until_empty_then_refill_over_time() {
        let mut b = TokenBucket::new(1000, 1000 * MS, 0, 0);
        assert!(b.consume(600, 0));
        assert!(b.consume(400, 0));
        assert!(!b.consume(1, 0), "empty");
        assert_eq!(b.wait_ns(1, 0), MS, "one token per ms");
        assert!(!b.consume(100, 99 * MS));
        assert!(b.consume(100, 100 * MS));
        assert_eq!(b.available(100 * MS), 0);
        // Never more than the size, however long it waits.
        assert_eq!(b.available(100_000 * MS), 1000);
    }

    #[test]
    fn partial_refill_carries_the_fraction() {
        // 3 tokens per 10 ns: 1 token per 3.33 ns.
        let mut b = TokenBucket::new(3, 10, 0, 0);
        assert!(b.consume(3, 0));
        assert_eq!(b.available(3), 0, "0.9 of a token");
        assert_eq!(b.available(4), 1, "1.2 tokens");
        assert_eq!(b.available(7), 2, "2.1 tokens: the fraction was kept");
        assert!(b.consume(2, 7));
        assert_eq!(b.wait_ns(1, 7), 3, "0.1 carried: 0.9 more = 3 ns");
        assert_eq!(b.available(10), 1);
    }

    #[test]
    fn zero_is_unlimited() {
        for mut b in [
            TokenBucket::new(0, NS_PER_SEC, 0, 0),
            TokenBucket::new(5, 0, 0, 0),
        ] {
            assert!(!b.is_limited());
            for _ in 0..1000 {
                assert!(b.consume(u64::MAX, 0));
            }
            assert_eq!(b.wait_ns(u64::MAX, 0), 0);
        }
        let mut l = Limiter::new(0, 0, 0);
        assert!(!l.is_limited());
        assert_eq!(l.admit(u64::MAX, 0), Ok(()));
    }

    #[test]
    fn a_request_larger_than_the_bucket_waits_for_a_full_bucket_then_owes_the_rest() {
        let mut b = TokenBucket::per_second(1000, 0);
        assert!(b.consume(10, 0));
        assert!(!b.consume(2500, 0), "not full yet");
        assert_eq!(b.wait_ns(2500, 0), 10 * MS, "until full again");
        assert!(b.consume(2500, 10 * MS), "full: admitted");
        // 1500 tokens of debt: 1.5 s before anything, then 1 token per ms.
        assert!(!b.consume(1, 1500 * MS), "10 tokens of debt left");
        assert_eq!(b.wait_ns(1, 1500 * MS), 11 * MS);
        assert!(b.consume(1, 1511 * MS));
        // Long-run rate: 2511 tokens in 1.511 s of a 1000/s bucket that started with 1000.
    }

    #[test]
    fn huge_requests_keep_making_progress_at_the_rate() {
        let mut b = TokenBucket::per_second(1 << 20, 0);
        let mut now = 0;
        let mut done = 0u64;
        for _ in 0..5 {
            let wait = b.wait_ns(4 << 20, now);
            now += wait;
            assert!(b.consume(4 << 20, now));
            done += 4 << 20;
        }
        // 20 MiB at 1 MiB/s with 1 MiB up front: admitted after 16 s (the last one's debt
        // is paid after).
        assert_eq!(done, 20 << 20);
        assert_eq!(now, 16 * NS_PER_SEC);
    }

    #[test]
    fn one_time_burst_is_spent_first_and_never_refilled() {
        let mut b = TokenBucket::new(100, 100 * MS, 500, 0);
        assert_eq!(b.available(0), 600);
        assert!(b.consume(550, 0), "burst + part of the budget");
        assert_eq!(b.available(0), 50);
        assert_eq!(
            b.available(10_000 * MS),
            100,
            "the burst does not come back"
        );
    }

    #[test]
    fn a_clock_going_backwards_earns_nothing() {
        let mut b = TokenBucket::per_second(1000, 5 * NS_PER_SEC);
        assert!(b.consume(1000, 5 * NS_PER_SEC));
        assert_eq!(b.available(NS_PER_SEC), 0);
        assert_eq!(b.available(5 * NS_PER_SEC + MS), 1);
    }

    #[test]
    fn limiter_charges_both_buckets_or_neither() {
        let mut l = Limiter::new(1000, 2, 0);
        assert!(l.is_limited());
        assert_eq!(l.admit(400, 0), Ok(()));
        assert_eq!(l.admit(400, 0), Ok(()));
        // Ops exhausted: 0.5 s for one more op; the bytes were not charged.
        assert_eq!(l.admit(100, 0), Err(500 * MS));
        assert_eq!(l.admit(100, 500 * MS), Ok(()));
        // Bytes are now the limit: 100 left + 500 earned = 600 < 700.
        // 600 bytes left < 700 (100 ms) and no op left (500 ms): the longer wait.
        assert_eq!(l.admit(700, 500 * MS), Err(500 * MS));
        assert_eq!(l.admit(700, 1000 * MS), Ok(()));
        // Bytes alone: 300 + 400 earned = 700 < 1000 at 1.4 s; ops are there.
        assert_eq!(l.admit(1000, 1400 * MS), Err(300 * MS));
    }

    #[test]
    fn long_run_rate_holds() {
        // 1 MiB/s, 64 KiB requests as fast as admitted, for 10 simulated seconds.
        let mut l = Limiter::new(1 << 20, 0, 0);
        let (mut now, mut bytes) = (0u64, 0u64);
        while now < 10 * NS_PER_SEC {
            match l.admit(64 << 10, now) {
                Ok(()) => bytes += 64 << 10,
                Err(wait) => now += wait,
            }
        }
        // The initial full bucket plus 10 s of refill, within one request.
        assert!(bytes <= 11 << 20, "{bytes}");
        assert!(bytes >= (11 << 20) - (64 << 10), "{bytes}");
    }
}
