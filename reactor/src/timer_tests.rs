//! Unit and property tests of the timer wheel (a sibling file to keep
//! `timer.rs` short).

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn fires_in_deadline_order_and_not_early() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    w.insert(t0 + ms(30), 3);
    w.insert(t0 + ms(10), 1);
    w.insert(t0 + ms(20), 2);
    let mut out = Vec::new();
    w.expire(t0 + ms(9), &mut out);
    assert!(out.is_empty());
    assert_eq!(w.next_deadline(), Some(t0 + ms(10)));
    w.expire(t0 + ms(25), &mut out);
    assert_eq!(out, vec![1, 2]);
    w.expire(t0 + ms(30), &mut out);
    assert_eq!(out, vec![1, 2, 3]);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn sub_millisecond_deadline_rounds_up() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    w.insert(t0 + Duration::from_micros(1500), ());
    let mut out = Vec::new();
    w.expire(t0 + ms(1), &mut out);
    assert!(out.is_empty());
    w.expire(t0 + ms(2), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn cancel_is_exact_and_stale_keys_are_ignored() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    let a = w.insert(t0 + ms(5), "a");
    let b = w.insert(t0 + ms(5), "b");
    assert_eq!(w.cancel(a), Some("a"));
    assert_eq!(w.cancel(a), None);
    let mut out = Vec::new();
    w.expire(t0 + ms(5), &mut out);
    assert_eq!(out, vec!["b"]);
    assert_eq!(w.cancel(b), None, "fired timer cannot be cancelled");
    // The freed slab slot is reused; the old key must not cancel the new timer.
    let c = w.insert(t0 + ms(50), "c");
    assert_eq!(w.cancel(a), None);
    assert_eq!(w.cancel(c), Some("c"));
}

#[test]
fn far_future_timers_wait_their_turn() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    // Same slot as 5 ms, several turns later.
    w.insert(t0 + ms(5 + 3 * 1024), "far");
    w.insert(t0 + ms(5), "near");
    w.insert(t0 + Duration::from_secs(3600), "hour");
    let mut out = Vec::new();
    w.expire(t0 + ms(5), &mut out);
    assert_eq!(out, vec!["near"]);
    assert!(w.next_deadline().unwrap() > t0 + ms(5));
    w.expire(t0 + ms(4 + 3 * 1024), &mut out);
    assert_eq!(out, vec!["near"]);
    w.expire(t0 + ms(5 + 3 * 1024), &mut out);
    assert_eq!(out, vec!["near", "far"]);
    w.expire(t0 + Duration::from_secs(3599), &mut out);
    assert_eq!(out.len(), 2);
    w.expire(t0 + Duration::from_secs(3600), &mut out);
    assert_eq!(out, vec!["near", "far", "hour"]);
}

#[test]
fn past_deadline_fires_on_next_expire() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    let mut out = Vec::new();
    w.expire(t0 + ms(100), &mut out);
    w.insert(t0 + ms(10), 1);
    w.expire(t0 + ms(101), &mut out);
    assert_eq!(out, vec![1]);
}

#[test]
fn many_timers_stay_ordered() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    let mut seed = 12345u64;
    for _ in 0..5000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let d = (seed >> 33) % 5000;
        w.insert(t0 + ms(d), d);
    }
    let mut out = Vec::new();
    let mut now = t0;
    while !w.is_empty() {
        now += ms(7);
        w.expire(now, &mut out);
    }
    assert_eq!(out.len(), 5000);
    // Within each 7 ms step order is by deadline; across steps it is monotone.
    assert!(out.windows(2).all(|p| p[0] <= p[1]));
}

/// Bug: `next_deadline` walked every entry beyond one wheel turn on every
/// wakeup (and `expire` rescanned them at every turn), so an idle loop with
/// 10,000 connections paid 10,000 entry visits per wakeup. Entries may be
/// touched a bounded number of times in their life, not once per wakeup.
#[test]
fn idle_wakeups_do_not_walk_far_future_timers() {
    const TIMERS: u64 = 10_000;
    const WAKEUPS: u64 = 3_000;
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    for i in 0..TIMERS {
        // The default idle_timeout (300 s), spread over a few seconds.
        w.insert(t0 + Duration::from_secs(300) + ms(i % 5_000), i);
    }
    let mut out = Vec::new();
    for step in 1..=WAKEUPS {
        let now = t0 + ms(step);
        assert!(w.next_deadline().is_some());
        w.expire(now, &mut out);
    }
    assert!(out.is_empty());
    // The old wheel: TIMERS visits per next_deadline alone (30 M here).
    assert!(
        w.visited() <= TIMERS,
        "{} entry visits for {WAKEUPS} idle wakeups with {TIMERS} far timers",
        w.visited()
    );
    // Firing them all costs a bounded number of moves per entry.
    w.expire(t0 + Duration::from_secs(306), &mut out);
    assert_eq!(out.len(), TIMERS as usize);
    assert!(w.visited() <= TIMERS * LEVELS as u64, "{}", w.visited());
}

#[test]
fn next_deadline_is_exact_for_near_timers_and_never_late_for_far_ones() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    w.insert(t0 + Duration::from_secs(300), "idle");
    let first = w.next_deadline().unwrap();
    assert!(first <= t0 + Duration::from_secs(300));
    // Follow next_deadline like the event loop does: it fires on time.
    let mut out = Vec::new();
    let mut wakes = 0;
    while out.is_empty() {
        let at = w.next_deadline().unwrap();
        assert!(at <= t0 + Duration::from_secs(300), "would oversleep");
        w.expire(at, &mut out);
        wakes += 1;
        assert!(
            wakes <= LEVELS,
            "a far timer costs at most one wake per level"
        );
    }
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn extreme_durations_never_panic_nor_fire() {
    let t0 = Instant::now();
    let mut w = TimerWheel::new(t0);
    let never = w.insert_after(t0, Duration::MAX, "max");
    w.insert_after(t0, Duration::from_secs(u64::MAX), "u64 secs");
    w.insert_after(t0, Duration::from_millis(u64::MAX), "u64 ms");
    if let Some(at) = t0.checked_add(Duration::from_secs(100 * 365 * 86_400)) {
        w.insert(at, "century");
    }
    let soon = w.insert_after(t0, ms(5), "soon");
    let mut out = Vec::new();
    let d = w.next_deadline().unwrap();
    assert!(d <= t0 + ms(5));
    w.expire(t0 + ms(5), &mut out);
    assert_eq!(out, vec!["soon"]);
    assert_eq!(w.cancel(soon), None);
    // Decades later, nothing else is due, and the wheel still answers.
    for years in [1u64, 10, 50] {
        if let Some(now) = t0.checked_add(Duration::from_secs(years * 365 * 86_400)) {
            w.expire(now, &mut out);
            assert_eq!(out, vec!["soon"]);
            let next = w.next_deadline().unwrap();
            assert!(next > now && next <= now + Duration::from_secs(86_401));
        }
    }
    assert_eq!(w.cancel(never), Some("max"));
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// Insert a timer `after` µs from now.
        Insert(u64),
        /// Cancel the n-th timer inserted so far (modulo the count).
        Cancel(usize),
        /// Move the clock forward by this many µs and expire.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..5_000).prop_map(Op::Insert),
            2 => (0u64..20_000_000).prop_map(Op::Insert),
            1 => (0u64..u64::MAX).prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Cancel),
            3 => (0u64..3_000).prop_map(Op::Advance),
            2 => (0u64..5_000_000).prop_map(Op::Advance),
            1 => (0u64..100_000_000_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a naive list of (deadline tick, id): never early, never
        /// lost, fired in deadline order, cancel removes exactly one timer,
        /// and next_deadline never lets the loop sleep past a due timer.
        #[test]
        fn behaves_like_a_sorted_list(ops in proptest::collection::vec(op(), 1..200)) {
            let t0 = Instant::now();
            let mut w = TimerWheel::new(t0);
            let mut now_us: u64 = 0;
            let mut keys: Vec<TimerKey> = Vec::new();
            // id -> deadline tick (ms since t0, rounded up); None once fired/cancelled.
            let mut pending: Vec<Option<u64>> = Vec::new();
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(after_us) => {
                        let now = t0 + Duration::from_micros(now_us);
                        let key = w.insert_after(now, Duration::from_micros(after_us), pending.len());
                        let tick = now_us.saturating_add(after_us).div_ceil(1000);
                        keys.push(key);
                        pending.push(Some(tick));
                    }
                    Op::Cancel(n) if !keys.is_empty() => {
                        let id = n % keys.len();
                        let got = w.cancel(keys[id]);
                        prop_assert_eq!(got, pending[id].map(|_| id));
                        pending[id] = None;
                    }
                    Op::Cancel(_) => {}
                    Op::Advance(us) => {
                        let earliest = pending.iter().flatten().min().copied();
                        if let (Some(next), Some(e)) = (w.next_deadline(), earliest) {
                            prop_assert!(next <= t0 + Duration::from_millis(e), "sleeps past a timer");
                        }
                        prop_assert_eq!(w.next_deadline().is_none(), earliest.is_none());
                        now_us += us;
                        let now_ms = now_us / 1000;
                        out.clear();
                        w.expire(t0 + Duration::from_micros(now_us), &mut out);
                        let mut last = 0;
                        for &id in &out {
                            let tick = pending[id].take();
                            prop_assert!(tick.is_some(), "fired twice or after cancel");
                            let tick = tick.unwrap_or(0);
                            prop_assert!(tick <= now_ms, "fired early");
                            prop_assert!(tick >= last, "out of order");
                            last = tick;
                        }
                        let lost = pending.iter().flatten().filter(|&&t| t <= now_ms).count();
                        prop_assert_eq!(lost, 0, "due timers not fired");
                    }
                }
                prop_assert_eq!(w.len(), pending.iter().flatten().count());
            }
        }
    }
}
