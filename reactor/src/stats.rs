//! `LoopStats`: what one event loop records about its own wakeups, for
//! finding where latency tails come from.
//!
//! Per wakeup (one return of `epoll_wait` and the work until the next
//! call): how long the loop stayed awake, and how many readiness events
//! the poll returned, each into a histogram of power-of-two buckets; and
//! how many tokens were re-queued because a budget ran out.
//!
//! # Cost
//!
//! One extra clock read per wakeup (the loop reads the clock before the
//! next poll anyway to compute its timeout, and reuses that reading) and
//! a handful of plain stores. Every cell has a single writer, the loop's
//! own thread: it does a `Relaxed` load and a `Relaxed` store (no `lock`
//! prefix), and the struct is cache-line aligned so no other loop's
//! writes share its lines. Readers (a metrics scrape on another thread)
//! use `Relaxed` loads: each cell is exact, a snapshot of several cells
//! may be a few wakeups apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of [`LoopStats::wakeup_ns`]: bucket 0 holds 0 ns, bucket `i >= 1`
/// holds `(2^(i-2), 2^(i-1)]` ns, the last one everything above
/// `2^(WAKEUP_BUCKETS-3)` ns (~1.07 s).
pub const WAKEUP_BUCKETS: usize = 33;
/// Buckets of [`LoopStats::events`]: bucket 0 holds 0 events, bucket
/// `i >= 1` holds `(2^(i-2), 2^(i-1)]`, the last one everything above 1,024.
pub const EVENT_BUCKETS: usize = 13;

/// The bucket of `v` in a histogram of `n` power-of-two buckets: 0 for 0,
/// `i` for `2^(i-2) < v <= 2^(i-1)` (1 for 1, 2 for 2, 3 for 3..=4, 4 for
/// 5..=8, ...), the last bucket for anything larger.
pub fn bucket(v: u64, n: usize) -> usize {
    let i = if v == 0 {
        0
    } else {
        (u64::BITS - (v - 1).leading_zeros()) as usize + 1
    };
    i.min(n.saturating_sub(1))
}

/// The inclusive upper bound of bucket `i` (`None`: the last bucket,
/// unbounded). Bucket 0's bound is 0.
pub fn bucket_le(i: usize, n: usize) -> Option<u64> {
    if i + 1 >= n {
        None
    } else if i == 0 {
        Some(0)
    } else {
        Some(1u64 << (i - 1))
    }
}

/// A single-writer counter: only the owning loop writes it.
#[derive(Default)]
struct Cell(AtomicU64);

impl Cell {
    #[inline]
    fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One loop's wakeup figures. Shared (`Arc`) between the loop, which
/// writes them, and whoever reads them (a metrics scrape).
#[repr(align(128))]
pub struct LoopStats {
    wakeup_buckets: [Cell; WAKEUP_BUCKETS],
    wakeup_ns_sum: Cell,
    event_buckets: [Cell; EVENT_BUCKETS],
    events_sum: Cell,
    requeues: Cell,
}

/// A copy of one loop's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopSnapshot {
    /// Per bucket (not cumulative), see [`WAKEUP_BUCKETS`].
    pub wakeup_buckets: Vec<u64>,
    pub wakeup_ns_sum: u64,
    /// Per bucket (not cumulative), see [`EVENT_BUCKETS`].
    pub event_buckets: Vec<u64>,
    pub events_sum: u64,
    pub requeues: u64,
}

impl LoopSnapshot {
    /// Wakeups recorded (the histograms' count).
    pub fn wakeups(&self) -> u64 {
        self.wakeup_buckets
            .iter()
            .fold(0, |a, b| a.wrapping_add(*b))
    }
}

impl Default for LoopStats {
    fn default() -> Self {
        LoopStats::new()
    }
}

impl LoopStats {
    pub fn new() -> LoopStats {
        LoopStats {
            wakeup_buckets: std::array::from_fn(|_| Cell::default()),
            wakeup_ns_sum: Cell::default(),
            event_buckets: std::array::from_fn(|_| Cell::default()),
            events_sum: Cell::default(),
            requeues: Cell::default(),
        }
    }

    /// Records one wakeup: awake for `awake`, `events` readiness events.
    /// Only the owning loop may call this.
    #[inline]
    pub fn record_wakeup(&self, awake: Duration, events: usize) {
        let ns = u64::try_from(awake.as_nanos()).unwrap_or(u64::MAX);
        self.wakeup_buckets[bucket(ns, WAKEUP_BUCKETS)].add(1);
        self.wakeup_ns_sum.add(ns);
        self.event_buckets[bucket(events as u64, EVENT_BUCKETS)].add(1);
        self.events_sum.add(events as u64);
    }

    /// Records `n` re-queued tokens. Only the owning loop may call this.
    #[inline]
    pub fn record_requeues(&self, n: usize) {
        if n > 0 {
            self.requeues.add(n as u64);
        }
    }

    pub fn snapshot(&self) -> LoopSnapshot {
        LoopSnapshot {
            wakeup_buckets: self.wakeup_buckets.iter().map(Cell::get).collect(),
            wakeup_ns_sum: self.wakeup_ns_sum.get(),
            event_buckets: self.event_buckets.iter().map(Cell::get).collect(),
            events_sum: self.events_sum.get(),
            requeues: self.requeues.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_power_of_two_buckets_with_inclusive_upper_bounds() {
        let n = 8;
        let cases = [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 3),
            (5, 4),
            (8, 4),
            (9, 5),
            (32, 6),
            (33, 7),
            (64, 7),
            (65, 7),
            (u64::MAX, 7),
        ];
        for (v, want) in cases {
            assert_eq!(bucket(v, n), want, "value {v}");
            if let Some(le) = bucket_le(want, n) {
                assert!(v <= le, "{v} above its bucket's bound {le}");
            }
            if want >= 1 {
                if let Some(below) = bucket_le(want - 1, n) {
                    assert!(v > below, "{v} belongs to a lower bucket (<= {below})");
                }
            }
        }
        assert_eq!(bucket_le(0, n), Some(0));
        assert_eq!(bucket_le(1, n), Some(1));
        assert_eq!(bucket_le(6, n), Some(32));
        assert_eq!(bucket_le(7, n), None);
    }

    #[test]
    fn every_value_has_exactly_one_bucket_and_the_bounds_grow() {
        for n in [2, EVENT_BUCKETS, WAKEUP_BUCKETS] {
            let mut last = None;
            for i in 0..n {
                let le = bucket_le(i, n);
                if let (Some(a), Some(b)) = (last, le) {
                    assert!(b > a);
                }
                if let Some(b) = le {
                    assert_eq!(bucket(b, n), i);
                }
                last = le;
            }
            for v in 0..5000u64 {
                let i = bucket(v, n);
                assert!(i < n);
                assert!(bucket_le(i, n).is_none_or(|le| v <= le));
            }
        }
    }

    #[test]
    fn a_wakeup_is_counted_once_in_each_histogram_and_in_the_sums() {
        let s = LoopStats::new();
        s.record_wakeup(Duration::from_micros(3), 5);
        s.record_wakeup(Duration::from_secs(5), 0);
        s.record_wakeup(Duration::ZERO, 2000);
        s.record_requeues(0);
        s.record_requeues(3);
        let snap = s.snapshot();
        assert_eq!(snap.wakeups(), 3);
        assert_eq!(snap.event_buckets.iter().sum::<u64>(), 3);
        assert_eq!(snap.wakeup_ns_sum, 3_000 + 5_000_000_000);
        assert_eq!(snap.events_sum, 2005);
        assert_eq!(snap.requeues, 3);
        assert_eq!(snap.wakeup_buckets[bucket(3_000, WAKEUP_BUCKETS)], 1);
        assert_eq!(
            snap.wakeup_buckets[WAKEUP_BUCKETS - 1],
            1,
            "5 s is beyond the last bound"
        );
        assert_eq!(snap.wakeup_buckets[0], 1);
        assert_eq!(
            snap.event_buckets[EVENT_BUCKETS - 1],
            1,
            "2000 events: the open bucket"
        );
        assert_eq!(snap.event_buckets[bucket(5, EVENT_BUCKETS)], 1);
        assert_eq!(snap.event_buckets[0], 1);
        assert_eq!(std::mem::align_of::<LoopStats>(), 128);
    }
}
