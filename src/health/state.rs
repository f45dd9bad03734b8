//! One server's health state (pure state machine).
//!
//! Owns: [`Health`], which turns probe results and
//! connection outcomes into a server state (up, down, probing) and reports
//! each change once as a [`Transition`] with a human reason, so the caller
//! logs exactly one line per change.
//!
//! Does not own: the probes themselves (`crate::health` runs them on timers),
//! connection counts, or the choice of server (`crate::balancer`). Nothing
//! here reads the clock: every input carries the caller's `now`.
//!
//! # The two checks
//!
//! **Active** (`health_check.active`): `fall` consecutive failed probes take
//! the server down, `rise` consecutive good probes bring it back. The
//! server starts **up**: at start nothing is known yet, and starting down
//! would refuse all traffic for `rise * interval` (20s by default) after
//! every start and every reload, which hurts more than a few connections
//! to a dead server that `retries` moves elsewhere anyway (nginx and
//! HAProxy without `init-state` make the same choice).
//!
//! **Passive** (`health_check.passive`): `max_fails` failed connections
//! (refused, timed out, reset before any byte, ICMP unreachable for UDP)
//! within a sliding `fail_timeout` window take the server down for
//! `fail_timeout`. Successes in between do not wipe the count, as in
//! nginx: a server failing a third of its connections should still be
//! taken out. When the time is up the server is **probing**: it accepts
//! exactly one trial connection ([`Health::is_usable`] then
//! [`Health::on_pick`]); success brings it up, failure sends it down for
//! another `fail_timeout`. A trial whose outcome is never reported (the
//! caller dropped the connection) is presumed lost after `fail_timeout`,
//! and another trial is allowed. `max_fails: 0` disables passive checks,
//! as in nginx.
//!
//! When both are configured, active checks win: a server the probes took
//! down ignores connection outcomes, and when the probes bring it back any
//! passive quarantine is forgotten (the probes just proved it healthy).
//! With neither configured the server is always up.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::clock::after;
use crate::config::HealthPlan;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Takes traffic.
    Up,
    /// Takes no traffic.
    Down,
    /// Passively marked down, quarantine over: takes one trial connection.
    Probing,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Up => "up",
            State::Down => "down",
            State::Probing => "probing",
        })
    }
}

/// Why the state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `fall` consecutive failed probes.
    ProbesFailed(u32),
    /// `rise` consecutive successful probes.
    ProbesSucceeded(u32),
    /// `max_fails` failed connections within `fail_timeout`.
    Failures {
        count: u32,
        within: Duration,
    },
    /// The passive quarantine of `fail_timeout` is over.
    TrialDue {
        after: Duration,
    },
    TrialSucceeded,
    TrialFailed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u32| if n == 1 { "" } else { "s" };
        match *self {
            Reason::ProbesFailed(n) => {
                write!(f, "{n} consecutive failed probe{}", plural(n))
            }
            Reason::ProbesSucceeded(n) => {
                write!(f, "{n} consecutive successful probe{}", plural(n))
            }
            Reason::Failures { count, within } => write!(
                f,
                "{count} failure{} within {}",
                plural(count),
                HumanDuration(within)
            ),
            Reason::TrialDue { after } => write!(
                f,
                "down for {}, allowing one trial connection",
                HumanDuration(after)
            ),
            Reason::TrialSucceeded => f.write_str("trial connection succeeded"),
            Reason::TrialFailed => f.write_str("trial connection failed"),
        }
    }
}

/// One state change, to be logged once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: Reason,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}: {}", self.from, self.to, self.reason)
    }
}

/// Durations the way the config file writes them (`10s`, `2m`, `500ms`).
struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 || secs == 0 {
            write!(f, "{}ms", d.as_millis())
        } else if secs % 3600 == 0 {
            write!(f, "{}h", secs / 3600)
        } else if secs % 60 == 0 {
            write!(f, "{}m", secs / 60)
        } else {
            write!(f, "{secs}s")
        }
    }
}

#[derive(Clone, Debug)]
struct Active {
    rise: u32,
    fall: u32,
    up: bool,
    successes: u32,
    failures: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Counting failures.
    Clear,
    /// Down until `until`.
    Quarantined { until: Instant },
    /// Quarantine over; `trial_since` is when the trial connection was handed out.
    Probing { trial_since: Option<Instant> },
}

#[derive(Clone, Debug)]
struct Passive {
    max_fails: u32,
    fail_timeout: Duration,
    /// Failure times within the last `fail_timeout`, oldest first.
    failures: VecDeque<Instant>,
    phase: Phase,
}

impl Passive {
    /// The phase with an expired quarantine already turned into probing.
    fn phase_at(&self, now: Instant) -> Phase {
        match self.phase {
            Phase::Quarantined { until } if now >= until => Phase::Probing { trial_since: None },
            phase => phase,
        }
    }

    fn trial_free(&self, trial_since: Option<Instant>, now: Instant) -> bool {
        trial_since.map_or(true, |t| now >= after(t, self.fail_timeout))
    }

    fn quarantine(&mut self, now: Instant) {
        self.failures.clear();
        self.phase = Phase::Quarantined {
            until: after(now, self.fail_timeout),
        };
    }

    fn reset(&mut self) {
        self.failures.clear();
        self.phase = Phase::Clear;
    }
}

/// Health of one server.
#[derive(Clone, Debug)]
pub struct Health {
    active: Option<Active>,
    passive: Option<Passive>,
    /// The state last reported (or initial); what `state()` returns.
    state: State,
}

impl Health {
    pub fn new(plan: &HealthPlan) -> Health {
        let active = plan.active.as_ref().map(|a| Active {
            // 0 would mean "change state without evidence"; the config
            // should reject it, and here it counts as 1.
            rise: a.rise.max(1),
            fall: a.fall.max(1),
            up: true,
            successes: 0,
            failures: 0,
        });
        let passive = plan
            .passive
            .as_ref()
            .filter(|p| p.max_fails > 0)
            .map(|p| Passive {
                max_fails: p.max_fails,
                fail_timeout: p.fail_timeout,
                failures: VecDeque::new(),
                phase: Phase::Clear,
            });
        Health {
            active,
            passive,
            state: State::Up,
        }
    }

    /// The state as of the last call that took a `now` (an expired
    /// quarantine shows as `Down` until then; [`Health::poll`] at
    /// [`Health::next_deadline`] keeps it current).
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a new connection may be sent here at `now`. In the probing
    /// state this is true only while the single trial is still available;
    /// call [`Health::on_pick`] when the server is actually chosen.
    pub fn is_usable(&self, now: Instant) -> bool {
        if !self.active_up() {
            return false;
        }
        match &self.passive {
            None => true,
            Some(p) => match p.phase_at(now) {
                Phase::Clear => true,
                Phase::Quarantined { .. } => false,
                Phase::Probing { trial_since } => p.trial_free(trial_since, now),
            },
        }
    }

    /// In the rotation a consistent-hash table is built over: up, or
    /// probing (its clients stay mapped to it while the trial decides).
    /// Unlike [`is_usable`](Self::is_usable), this does not flip while a
    /// trial connection is out, so tables are not rebuilt per connection.
    pub fn in_rotation(&self, now: Instant) -> bool {
        self.active_up()
            && !matches!(
                self.passive.as_ref().map(|p| p.phase_at(now)),
                Some(Phase::Quarantined { .. })
            )
    }

    /// The server was chosen for a connection: in the probing state this
    /// hands out the trial, so it is not usable again until the outcome
    /// arrives (or the trial is presumed lost).
    pub fn on_pick(&mut self, now: Instant) -> Option<Transition> {
        let due = self.advance(now);
        if self.active_up() {
            if let Some(p) = &mut self.passive {
                if let Phase::Probing { trial_since } = p.phase {
                    if p.trial_free(trial_since, now) {
                        p.phase = Phase::Probing {
                            trial_since: Some(now),
                        };
                    }
                }
            }
        }
        due
    }

    /// Advances time alone (an expired quarantine becomes probing). Call
    /// it at [`Health::next_deadline`] to report that change promptly.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        self.advance(now)
    }

    /// When the state will change by itself, if it will.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.active_up() {
            return None;
        }
        let p = self.passive.as_ref()?;
        match p.phase {
            Phase::Clear | Phase::Probing { trial_since: None } => None,
            Phase::Quarantined { until } => Some(until),
            Phase::Probing {
                trial_since: Some(t),
            } => Some(after(t, p.fail_timeout)),
        }
    }

    /// Result of one active probe. Ignored when no active check is configured.
    pub fn on_probe_result(&mut self, ok: bool, now: Instant) -> Option<Transition> {
        let due = self.advance(now);
        let Some(a) = &mut self.active else {
            return due;
        };
        let reason = if ok {
            a.failures = 0;
            a.successes = a.successes.saturating_add(1);
            if a.up || a.successes < a.rise {
                return due;
            }
            a.up = true;
            Reason::ProbesSucceeded(a.successes)
        } else {
            a.successes = 0;
            a.failures = a.failures.saturating_add(1);
            if !a.up || a.failures < a.fall {
                return due;
            }
            a.up = false;
            Reason::ProbesFailed(a.failures)
        };
        // Either way the probes now speak for the server: a quarantine
        // started before they took it down, or still running when they
        // bring it back, no longer describes it.
        if let Some(p) = &mut self.passive {
            p.reset();
        }
        merge(due, self.commit(reason))
    }

    /// A connection to the server failed: refused, timed out, reset before
    /// any byte, or (UDP) ICMP unreachable.
    pub fn on_failure(&mut self, now: Instant) -> Option<Transition> {
        let due = self.advance(now);
        if !self.active_up() {
            return due;
        }
        let Some(p) = &mut self.passive else {
            return due;
        };
        let reason = match p.phase {
            // Late outcomes of connections made before the quarantine.
            Phase::Quarantined { .. } => return due,
            Phase::Probing { .. } => {
                p.quarantine(now);
                Reason::TrialFailed
            }
            Phase::Clear => {
                while p
                    .failures
                    .front()
                    .is_some_and(|&t| now.saturating_duration_since(t) >= p.fail_timeout)
                {
                    p.failures.pop_front();
                }
                p.failures.push_back(now);
                let count = p.failures.len();
                if count < p.max_fails as usize {
                    return due;
                }
                p.quarantine(now);
                Reason::Failures {
                    count: p.max_fails,
                    within: p.fail_timeout,
                }
            }
        };
        merge(due, self.commit(reason))
    }

    /// A connection to the server succeeded (connected, or for UDP a reply
    /// arrived). Ends a probing period; otherwise changes nothing.
    pub fn on_success(&mut self, now: Instant) -> Option<Transition> {
        let due = self.advance(now);
        if !self.active_up() {
            return due;
        }
        let Some(p) = &mut self.passive else {
            return due;
        };
        if !matches!(p.phase, Phase::Probing { .. }) {
            return due;
        }
        p.reset();
        merge(due, self.commit(Reason::TrialSucceeded))
    }

    fn active_up(&self) -> bool {
        self.active.as_ref().map_or(true, |a| a.up)
    }

    fn derived_state(&self) -> State {
        if !self.active_up() {
            return State::Down;
        }
        match self.passive.as_ref().map(|p| p.phase) {
            None | Some(Phase::Clear) => State::Up,
            Some(Phase::Quarantined { .. }) => State::Down,
            Some(Phase::Probing { .. }) => State::Probing,
        }
    }

    /// Turns an expired quarantine into probing.
    fn advance(&mut self, now: Instant) -> Option<Transition> {
        let p = self.passive.as_mut()?;
        let phase = p.phase_at(now);
        if phase == p.phase {
            return None;
        }
        p.phase = phase;
        let after = p.fail_timeout;
        self.commit(Reason::TrialDue { after })
    }

    /// Records the derived state; a transition if it changed.
    fn commit(&mut self, reason: Reason) -> Option<Transition> {
        let to = self.derived_state();
        let from = std::mem::replace(&mut self.state, to);
        (from != to).then_some(Transition { from, to, reason })
    }
}

/// One call reports at most one transition: the net change, with the
/// reason of the last step. A change undone within the same call
/// (probing, then straight back down) is no change.
fn merge(first: Option<Transition>, second: Option<Transition>) -> Option<Transition> {
    match (first, second) {
        (None, t) | (t, None) => t,
        (Some(a), Some(b)) => (a.from != b.to).then_some(Transition {
            from: a.from,
            to: b.to,
            reason: b.reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActiveCheck, CheckKind, PassiveCheck, ServerId};

    fn active(rise: u32, fall: u32) -> ActiveCheck {
        ActiveCheck {
            kind: CheckKind::Tcp,
            port: None,
            path: "/".into(),
            send: Vec::new(),
            expect: Vec::new(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            rise,
            fall,
        }
    }

    fn passive(max_fails: u32, fail_timeout_secs: u64) -> PassiveCheck {
        PassiveCheck {
            max_fails,
            fail_timeout: Duration::from_secs(fail_timeout_secs),
        }
    }

    fn plan(a: Option<ActiveCheck>, p: Option<PassiveCheck>) -> HealthPlan {
        HealthPlan {
            active: a,
            passive: p,
        }
    }

    /// A fake clock: a fixed base plus offsets in milliseconds.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now())
        }
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn change(from: State, to: State, reason: Reason) -> Option<Transition> {
        Some(Transition { from, to, reason })
    }

    #[test]
    fn no_checks_means_always_up() {
        let t = Clock::new();
        let mut h = Health::new(&HealthPlan::default());
        for i in 0..100 {
            assert_eq!(h.on_failure(t.at(i)), None);
            assert_eq!(h.on_probe_result(false, t.at(i)), None);
        }
        assert_eq!(h.on_pick(t.at(200)), None);
        assert_eq!(h.state(), State::Up);
        assert!(h.is_usable(t.at(200)));
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn the_largest_fail_timeout_quarantines_for_ever_without_a_panic() {
        let t = Clock::new();
        let mut p = passive(1, 0);
        p.fail_timeout = Duration::MAX;
        let mut a = active(1, 1);
        a.interval = Duration::MAX;
        a.timeout = Duration::MAX;
        let mut h = Health::new(&plan(None, Some(p.clone())));
        assert!(h.on_failure(t.at(0)).is_some());
        assert_eq!(h.state(), State::Down);
        assert!(!h.is_usable(t.at(1_000_000_000)));
        assert!(h.next_deadline().is_some_and(|d| d > t.at(1_000_000_000)));
        // The same with active checks configured alongside.
        let mut h = Health::new(&plan(Some(a), Some(p)));
        assert_eq!(
            h.on_probe_result(false, t.at(1)).map(|c| c.to),
            Some(State::Down)
        );
        assert!(h.on_probe_result(true, t.at(2)).is_some());
        assert!(h.is_usable(t.at(3)));
        h.on_pick(t.at(3));
        h.on_success(t.at(4));
        h.on_failure(t.at(5));
        assert!(!h.is_usable(t.at(6)));
    }

    #[test]
    fn starts_up_with_checks_configured() {
        let t = Clock::new();
        let h = Health::new(&plan(Some(active(2, 3)), Some(passive(3, 10))));
        assert_eq!(h.state(), State::Up);
        assert!(h.is_usable(t.at(0)));
    }

    #[test]
    fn active_fall_then_rise() {
        let t = Clock::new();
        let mut h = Health::new(&plan(Some(active(2, 3)), None));
        assert_eq!(h.on_probe_result(false, t.at(0)), None);
        assert_eq!(h.on_probe_result(false, t.at(10)), None);
        assert!(h.is_usable(t.at(15)));
        assert_eq!(
            h.on_probe_result(false, t.at(20)),
            change(State::Up, State::Down, Reason::ProbesFailed(3))
        );
        assert!(!h.is_usable(t.at(25)));
        // Further failures report nothing new.
        assert_eq!(h.on_probe_result(false, t.at(30)), None);
        assert_eq!(h.on_probe_result(true, t.at(40)), None);
        assert_eq!(h.state(), State::Down);
        assert_eq!(
            h.on_probe_result(true, t.at(50)),
            change(State::Down, State::Up, Reason::ProbesSucceeded(2))
        );
        assert!(h.is_usable(t.at(55)));
        assert_eq!(h.on_probe_result(true, t.at(60)), None);
    }

    #[test]
    fn active_counts_must_be_consecutive() {
        let t = Clock::new();
        let mut h = Health::new(&plan(Some(active(2, 3)), None));
        for i in 0..20 {
            // fail, fail, ok: never three in a row.
            let ok = i % 3 == 2;
            assert_eq!(h.on_probe_result(ok, t.at(i * 10)), None);
        }
        assert_eq!(h.state(), State::Up);
        for i in 0..3 {
            h.on_probe_result(false, t.at(1000 + i));
        }
        assert_eq!(h.state(), State::Down);
        for i in 0..10 {
            // ok, fail: never two good in a row.
            let ok = i % 2 == 0;
            assert_eq!(h.on_probe_result(ok, t.at(2000 + i * 10)), None);
        }
        assert_eq!(h.state(), State::Down);
    }

    #[test]
    fn rise_and_fall_of_one() {
        let t = Clock::new();
        let mut h = Health::new(&plan(Some(active(1, 1)), None));
        assert_eq!(
            h.on_probe_result(false, t.at(0)),
            change(State::Up, State::Down, Reason::ProbesFailed(1))
        );
        assert_eq!(
            h.on_probe_result(true, t.at(1)),
            change(State::Down, State::Up, Reason::ProbesSucceeded(1))
        );
        // Zero from a config is treated as one, not as "flap on nothing".
        let mut h = Health::new(&plan(Some(active(0, 0)), None));
        assert_eq!(h.on_probe_result(true, t.at(0)), None);
        assert!(h.on_probe_result(false, t.at(1)).is_some());
    }

    #[test]
    fn passive_failures_within_window_mark_down() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(3, 10))));
        assert_eq!(h.on_failure(t.at(0)), None);
        assert_eq!(h.on_failure(t.at(4_000)), None);
        assert_eq!(
            h.on_failure(t.at(9_999)),
            change(
                State::Up,
                State::Down,
                Reason::Failures {
                    count: 3,
                    within: Duration::from_secs(10)
                }
            )
        );
        assert!(!h.is_usable(t.at(10_000)));
        assert_eq!(h.next_deadline(), Some(t.at(19_999)));
    }

    #[test]
    fn failures_spread_wider_than_window_do_not() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(3, 10))));
        // One failure every 5s: at most two ever fall within 10s.
        for i in 0..20 {
            assert_eq!(h.on_failure(t.at(i * 5_000)), None, "failure {i}");
        }
        assert_eq!(h.state(), State::Up);
        // A failure exactly fail_timeout after another is outside its window.
        let mut h = Health::new(&plan(None, Some(passive(2, 10))));
        assert_eq!(h.on_failure(t.at(0)), None);
        assert_eq!(h.on_failure(t.at(10_000)), None);
        assert!(h.on_failure(t.at(10_001)).is_some());
    }

    #[test]
    fn successes_do_not_forgive_failures_in_window() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(3, 10))));
        for i in 0..2 {
            assert_eq!(h.on_failure(t.at(i * 100)), None);
            assert_eq!(h.on_success(t.at(i * 100 + 50)), None);
        }
        assert!(h.on_failure(t.at(300)).is_some());
        assert_eq!(h.state(), State::Down);
    }

    #[test]
    fn quarantine_then_one_trial_then_up() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(1, 10))));
        assert!(h.on_failure(t.at(0)).is_some());
        assert!(!h.is_usable(t.at(9_999)));
        assert_eq!(h.poll(t.at(9_999)), None);
        // Time is up: usable for exactly one connection.
        assert!(h.is_usable(t.at(10_000)));
        assert_eq!(h.state(), State::Down, "not yet told the time");
        assert_eq!(
            h.on_pick(t.at(10_000)),
            change(
                State::Down,
                State::Probing,
                Reason::TrialDue {
                    after: Duration::from_secs(10)
                }
            )
        );
        assert_eq!(h.state(), State::Probing);
        assert!(!h.is_usable(t.at(10_001)));
        assert_eq!(h.on_pick(t.at(10_001)), None);
        assert_eq!(
            h.on_success(t.at(10_050)),
            change(State::Probing, State::Up, Reason::TrialSucceeded)
        );
        assert!(h.is_usable(t.at(10_051)));
        assert_eq!(h.next_deadline(), None);
        // The old failures are gone: it takes max_fails new ones.
        assert!(h.on_failure(t.at(10_100)).is_some());
    }

    #[test]
    fn failed_trial_means_another_full_quarantine() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(2, 10))));
        h.on_failure(t.at(0));
        assert!(h.on_failure(t.at(1)).is_some());
        assert!(h.poll(t.at(10_001)).is_some());
        assert_eq!(h.state(), State::Probing);
        assert_eq!(h.on_pick(t.at(10_002)), None);
        assert_eq!(
            h.on_failure(t.at(10_500)),
            change(State::Probing, State::Down, Reason::TrialFailed)
        );
        assert_eq!(h.next_deadline(), Some(t.at(20_500)));
        assert!(!h.is_usable(t.at(20_499)));
        assert!(h.is_usable(t.at(20_500)));
    }

    #[test]
    fn poll_reports_quarantine_end_once() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(1, 5))));
        h.on_failure(t.at(0));
        let deadline = h.next_deadline();
        assert_eq!(deadline, Some(t.at(5_000)));
        assert!(h.poll(t.at(5_000)).is_some());
        assert_eq!(h.poll(t.at(6_000)), None);
        // Probing without a trial out: nothing scheduled.
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn lost_trial_is_replaced_after_fail_timeout() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(1, 10))));
        h.on_failure(t.at(0));
        h.on_pick(t.at(10_000));
        assert!(!h.is_usable(t.at(19_999)));
        assert_eq!(h.next_deadline(), Some(t.at(20_000)));
        assert!(h.is_usable(t.at(20_000)));
        assert_eq!(h.on_pick(t.at(20_000)), None);
        assert!(!h.is_usable(t.at(20_001)));
        assert_eq!(h.state(), State::Probing);
    }

    #[test]
    fn late_outcomes_during_quarantine_are_ignored() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(1, 10))));
        h.on_failure(t.at(0));
        assert_eq!(h.on_success(t.at(100)), None);
        assert_eq!(h.on_failure(t.at(200)), None);
        // Neither ended nor extended the quarantine.
        assert_eq!(h.next_deadline(), Some(t.at(10_000)));
        assert_eq!(h.state(), State::Down);
    }

    #[test]
    fn outcome_after_unreported_expiry_is_net_change() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(1, 10))));
        h.on_failure(t.at(0));
        // Expired, nobody polled, a connection succeeds: straight to up.
        assert_eq!(
            h.on_success(t.at(11_000)),
            change(State::Down, State::Up, Reason::TrialSucceeded)
        );
        h.on_failure(t.at(12_000));
        // Expired, nobody polled, a failure: down before, down after, a
        // fresh quarantine from now.
        assert_eq!(h.on_failure(t.at(23_000)), None);
        assert_eq!(h.state(), State::Down);
        assert_eq!(h.next_deadline(), Some(t.at(33_000)));
    }

    #[test]
    fn zero_max_fails_disables_passive() {
        let t = Clock::new();
        let mut h = Health::new(&plan(None, Some(passive(0, 10))));
        for i in 0..10 {
            assert_eq!(h.on_failure(t.at(i)), None);
        }
        assert!(h.is_usable(t.at(10)));
    }

    #[test]
    fn active_down_overrides_passive() {
        let t = Clock::new();
        let mut h = Health::new(&plan(Some(active(2, 2)), Some(passive(1, 10))));
        h.on_probe_result(false, t.at(0));
        assert!(h.on_probe_result(false, t.at(1)).is_some());
        // Connection outcomes of a server the probes hold down are ignored.
        assert_eq!(h.on_failure(t.at(2)), None);
        assert_eq!(h.on_success(t.at(3)), None);
        assert!(!h.is_usable(t.at(50_000)));
        assert_eq!(h.next_deadline(), None);
        assert_eq!(h.on_pick(t.at(50_000)), None);
        h.on_probe_result(true, t.at(50_001));
        assert_eq!(
            h.on_probe_result(true, t.at(50_002)),
            change(State::Down, State::Up, Reason::ProbesSucceeded(2))
        );
    }

    #[test]
    fn probes_rising_end_passive_quarantine() {
        let t = Clock::new();
        let mut h = Health::new(&plan(Some(active(1, 1)), Some(passive(1, 60))));
        assert!(h.on_failure(t.at(0)).is_some());
        // Probes that merely keep passing do not lift the quarantine...
        assert_eq!(h.on_probe_result(true, t.at(1_000)), None);
        assert!(!h.is_usable(t.at(1_001)));
        // ...but a fall and rise does: the probes have the last word.
        assert_eq!(h.on_probe_result(false, t.at(2_000)), None, "already down");
        assert_eq!(
            h.on_probe_result(true, t.at(3_000)),
            change(State::Down, State::Up, Reason::ProbesSucceeded(1))
        );
        assert!(h.is_usable(t.at(3_001)));
    }

    #[test]
    fn probes_failing_while_probing() {
        let t = Clock::new();
        let mut h = Health::new(&plan(Some(active(2, 1)), Some(passive(1, 10))));
        h.on_failure(t.at(0));
        h.poll(t.at(10_000));
        assert_eq!(h.state(), State::Probing);
        assert_eq!(
            h.on_probe_result(false, t.at(10_500)),
            change(State::Probing, State::Down, Reason::ProbesFailed(1))
        );
    }

    #[test]
    fn huge_fail_timeout_does_not_panic() {
        let t = Clock::new();
        let mut h = Health::new(&HealthPlan {
            active: None,
            passive: Some(PassiveCheck {
                max_fails: 1,
                fail_timeout: Duration::MAX,
            }),
        });
        assert!(h.on_failure(t.at(0)).is_some());
        assert!(!h.is_usable(t.at(1_000_000)));
        assert!(h.next_deadline().is_some());
    }

    #[test]
    fn messages_read_well() {
        let down = Transition {
            from: State::Up,
            to: State::Down,
            reason: Reason::Failures {
                count: 3,
                within: Duration::from_secs(10),
            },
        };
        assert_eq!(down.to_string(), "up -> down: 3 failures within 10s");
        let cases = [
            (Reason::ProbesFailed(3), "3 consecutive failed probes"),
            (Reason::ProbesFailed(1), "1 consecutive failed probe"),
            (
                Reason::ProbesSucceeded(2),
                "2 consecutive successful probes",
            ),
            (Reason::TrialSucceeded, "trial connection succeeded"),
            (Reason::TrialFailed, "trial connection failed"),
            (
                Reason::TrialDue {
                    after: Duration::from_secs(120),
                },
                "down for 2m, allowing one trial connection",
            ),
            (
                Reason::Failures {
                    count: 1,
                    within: Duration::from_millis(1500),
                },
                "1 failure within 1500ms",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
        assert_eq!(ServerId(3).to_string(), "server #3");
    }
}
