//! Which servers get probed, at which address, and when: pure functions
//! over the plan and the caller's `now`.
//!
//! Owns: the probe address rule (the server's port, else
//! `health_check.active.port`, else the first port of the first listener
//! that uses the backend), the jitter that keeps probes from
//! synchronising, and the tiny PRNG behind it (no `rand` crate).
//! Does not own: sockets or timers (`mod.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::clock::{after, FAR_FUTURE};
use crate::config::{BackendId, Plan, ServerId};

/// One server with an active check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    pub backend: BackendId,
    pub server: ServerId,
    pub addr: SocketAddr,
}

/// A server that cannot be probed: it has no port, the check has no
/// `port:`, and no listener uses the backend (so it never takes traffic
/// either). Logged once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unprobeable {
    pub backend: BackendId,
    pub server: ServerId,
}

/// Every (backend, server) pair with an active check, with its address.
pub fn targets(plan: &Plan) -> (Vec<ProbeTarget>, Vec<Unprobeable>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (bi, b) in plan.backends.iter().enumerate() {
        let bi = BackendId(bi);
        let Some(active) = &b.health.active else {
            continue;
        };
        let listener_port = plan
            .listeners
            .iter()
            .find(|l| l.backend == Some(bi))
            .map(|l| l.bind.first_port);
        for (si, s) in b.servers.iter().enumerate() {
            match s.port.or(active.port).or(listener_port) {
                Some(port) => found.push(ProbeTarget {
                    backend: bi,
                    server: ServerId(si),
                    addr: SocketAddr::new(s.ip, port),
                }),
                None => skipped.push(Unprobeable {
                    backend: bi,
                    server: ServerId(si),
                }),
            }
        }
    }
    (found, skipped)
}

/// splitmix64: tiny, fast, good enough to spread probe times.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `[0, max]` (modulo bias is irrelevant here).
    pub fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        let r = self.next_u64();
        Duration::from_nanos(match nanos.checked_add(1) {
            Some(n) => r % n,
            None => r,
        })
    }
}

/// Jitter is at most this fraction of the interval (1/20 = 5%).
const JITTER_DIVISOR: u32 = 20;

/// When the first probe of a server runs: spread over the first interval,
/// so a backend of many servers does not probe them all at once at start,
/// but never later than one interval.
pub fn first_probe(now: Instant, interval: Duration, rng: &mut Prng) -> Instant {
    let interval = interval.min(FAR_FUTURE);
    after(now, rng.below(interval))
}

/// When the next probe runs after one that started at `started`: one
/// `interval` later, give or take up to 5% of it, and never in the past
/// (a probe that outlived its interval is followed at once, not twice).
pub fn next_probe(started: Instant, now: Instant, interval: Duration, rng: &mut Prng) -> Instant {
    // Longer than a century is "never"; capped, the jitter stays small
    // enough to add and subtract.
    let interval = interval.min(FAR_FUTURE);
    let span = interval / JITTER_DIVISOR;
    let jitter = rng.below(span * 2);
    let base = after(started, interval);
    let at = after(base, jitter).checked_sub(span).unwrap_or(base);
    at.max(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActiveCheck, CheckKind, HealthPlan};

    fn plan(yaml_ports: &[Option<u16>], check_port: Option<u16>, used: bool) -> Plan {
        let text = format!(
            "listeners:\n  - {{ name: l, bind: \"127.0.0.1:7000-7010\", default_backend: {} }}\n\
backends:\n  - name: other\n    servers: [\"127.0.0.1:1\"]\n  - name: b\n    servers: [{}]\n",
            if used { "b" } else { "other" },
            yaml_ports
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Some(p) => format!("\"10.0.0.{}:{p}\"", i + 1),
                    None => format!("\"10.0.0.{}\"", i + 1),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut plan = crate::config::load_str(&text, std::path::Path::new("test.yaml")).unwrap();
        plan.backends[1].health = HealthPlan {
            active: Some(ActiveCheck {
                kind: CheckKind::Tcp,
                port: check_port,
                path: "/".into(),
                send: Vec::new(),
                expect: Vec::new(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 1,
            }),
            passive: None,
        };
        plan
    }

    #[test]
    fn address_rule_server_port_then_check_port_then_listener_port() {
        let (t, skipped) = targets(&plan(&[Some(9000), None], None, true));
        assert!(skipped.is_empty());
        let addrs: Vec<String> = t.iter().map(|t| t.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:9000", "10.0.0.2:7000"]);
        assert!(t.iter().all(|t| t.backend == BackendId(1)));
        assert_eq!(t[1].server, ServerId(1));

        let (t, _) = targets(&plan(&[Some(9000), None], Some(8081), true));
        let addrs: Vec<String> = t.iter().map(|t| t.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:9000", "10.0.0.2:8081"]);
    }

    #[test]
    fn portless_server_of_an_unused_backend_is_not_probed() {
        let (t, skipped) = targets(&plan(&[Some(9000), None], None, false));
        assert_eq!(t.len(), 1);
        assert_eq!(
            skipped,
            [Unprobeable {
                backend: BackendId(1),
                server: ServerId(1)
            }]
        );
    }

    #[test]
    fn backends_without_active_checks_have_no_targets() {
        let mut p = plan(&[Some(9000)], None, true);
        p.backends[1].health.active = None;
        assert_eq!(targets(&p), (Vec::new(), Vec::new()));
    }

    #[test]
    fn jitter_stays_within_five_percent_and_varies() {
        let t0 = Instant::now();
        let interval = Duration::from_millis(1000);
        let mut rng = Prng::new(42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let at = next_probe(t0, t0, interval, &mut rng);
            let d = at - t0;
            assert!(
                d >= Duration::from_millis(950) && d <= Duration::from_millis(1050),
                "{d:?}"
            );
            seen.insert(d.as_millis());
        }
        assert!(seen.len() > 50, "jitter barely varies: {}", seen.len());
    }

    #[test]
    fn a_late_probe_is_followed_at_once_not_in_the_past() {
        let t0 = Instant::now();
        let mut rng = Prng::new(1);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(next_probe(t0, now, Duration::from_secs(1), &mut rng), now);
    }

    #[test]
    fn first_probes_spread_over_one_interval() {
        let t0 = Instant::now();
        let interval = Duration::from_millis(100);
        let mut rng = Prng::new(7);
        let times: Vec<Duration> = (0..200)
            .map(|_| first_probe(t0, interval, &mut rng) - t0)
            .collect();
        assert!(times.iter().all(|d| *d <= interval));
        assert!(times.iter().any(|d| *d < interval / 4));
        assert!(times.iter().any(|d| *d > interval * 3 / 4));
    }

    #[test]
    fn the_largest_interval_schedules_far_away_without_a_panic() {
        let t0 = Instant::now();
        let mut rng = Prng::new(3);
        for _ in 0..100 {
            assert!(rng.below(Duration::MAX) <= Duration::MAX);
            assert!(first_probe(t0, Duration::MAX, &mut rng) >= t0);
            let next = next_probe(t0, t0, Duration::MAX, &mut rng);
            assert!(next > t0 + Duration::from_secs(365 * 24 * 3600));
        }
    }

    #[test]
    fn prng_zero_span_is_zero() {
        let mut rng = Prng::new(0);
        assert_eq!(rng.below(Duration::ZERO), Duration::ZERO);
        assert_ne!(rng.next_u64(), rng.next_u64());
    }
}
