//! Deadlines from configured durations that never panic.
//!
//! `Instant + Duration` panics on overflow, and a duration from the
//! configuration file can be as large as `Duration::MAX`. Every deadline
//! built from a configured value goes through [`after`]. Validation bounds
//! the values too (`config/`); this is the runtime's own guarantee.
//! It does not own the timers themselves (the reactor's wheel).

use std::time::{Duration, Instant};

/// A deadline no process lives to see: what an overflowing one becomes,
/// and the longest period worth computing with.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, or a century from `now` when that does not fit in an
/// `Instant` (practically "never"). Never panics.
pub fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR_FUTURE.min(d)))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_duration_is_far_away_not_a_panic() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = after(now, Duration::MAX);
        assert!(
            far >= now + Duration::from_secs(365 * 24 * 3600),
            "{:?}",
            far - now
        );
        assert_eq!(after(now, Duration::ZERO), now);
        // Chained: a far deadline pushed again stays valid.
        assert!(after(far, Duration::MAX) >= far);
    }
}
