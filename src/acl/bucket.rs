//! A token bucket with the time passed in: `rate` tokens a second, at most
//! `burst` saved up. Used for `rate_limit` (per listener) and
//! `ip_rate_limit` (per client address).
//!
//! The rate and burst are passed to each call rather than stored, so a
//! reload can change them without losing what a bucket holds. Owns the
//! arithmetic only; not where buckets live (`per_ip.rs`, `access.rs`).

use std::time::Instant;

/// `{ connections_per_second | requests_per_second, burst }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second (> 0).
    pub per_second: f64,
    /// Most tokens held (>= 1); a fresh bucket starts full.
    pub burst: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(rate.burst.max(1)),
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        // A clock that went backwards (it cannot with Instant, but a caller
        // may pass an older `now`) adds nothing.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let cap = f64::from(rate.burst.max(1));
        self.tokens = (self.tokens + elapsed * rate.per_second).min(cap);
        if now > self.last {
            self.last = now;
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, rate: Rate, now: Instant) -> bool {
        self.take_up_to(rate, now, 1) == 1
    }

    /// Takes as many whole tokens as there are, up to `want`.
    pub fn take_up_to(&mut self, rate: Rate, now: Instant, want: usize) -> usize {
        self.refill(rate, now);
        let whole = self.tokens.floor().max(0.0);
        let n = (want as f64).min(whole);
        self.tokens -= n;
        n as usize
    }

    /// Returns tokens taken but not used (an accept batch that ended early).
    pub fn give_back(&mut self, rate: Rate, n: usize) {
        self.tokens = (self.tokens + n as f64).min(f64::from(rate.burst.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const R: Rate = Rate {
        per_second: 10.0,
        burst: 5,
    };

    #[test]
    fn starts_full_then_refills_at_the_rate_up_to_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(R, t0);
        assert_eq!(b.take_up_to(R, t0, 100), 5);
        assert!(!b.try_take(R, t0));
        // 10/s: one token per 100 ms.
        assert!(!b.try_take(R, t0 + Duration::from_millis(99)));
        assert!(b.try_take(R, t0 + Duration::from_millis(100)));
        assert!(!b.try_take(R, t0 + Duration::from_millis(150)));
        assert_eq!(b.take_up_to(R, t0 + Duration::from_millis(450), 10), 3);
        // A long pause saves at most `burst`.
        assert_eq!(b.take_up_to(R, t0 + Duration::from_secs(60), 100), 5);
        // Over a simulated second at a steady pace: exactly the rate.
        let start = t0 + Duration::from_secs(60);
        let got: usize = (1..=1000)
            .map(|ms| b.take_up_to(R, start + Duration::from_millis(ms), 1))
            .sum();
        assert!((9..=10).contains(&got), "{got}");
    }

    #[test]
    fn older_now_and_give_back_are_safe() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut b = TokenBucket::new(R, later);
        assert_eq!(b.take_up_to(R, later, 5), 5);
        assert_eq!(b.take_up_to(R, t0, 5), 0);
        b.give_back(R, 3);
        assert_eq!(b.take_up_to(R, later, 5), 3);
        b.give_back(R, 1000);
        assert_eq!(b.take_up_to(R, later, 100), 5);
        // Fractional rates work (one token every 2 s).
        let slow = Rate {
            per_second: 0.5,
            burst: 1,
        };
        let mut b = TokenBucket::new(slow, t0);
        assert!(b.try_take(slow, t0));
        assert!(!b.try_take(slow, t0 + Duration::from_millis(1999)));
        assert!(b.try_take(slow, t0 + Duration::from_millis(2000)));
    }
}
