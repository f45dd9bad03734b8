//! One listener's access rules ([`AccessPlan`], from the configuration)
//! and their running state ([`ListenerAccess`]: the listener's token
//! bucket, the per-client table, refusal counts), shared by every event
//! loop through `Runtime`. Refusals are counted in per-loop cells
//! ([`PerLoop`]): each loop writes only its own, like every other counter
//! of the data path (see `metrics`).
//!
//! Order of checks for a new client: `ip_denylist`, then `ip_allowlist`
//! (no lock: immutable sets), then the per-client limits
//! (`max_connections_per_ip`, `ip_rate_limit`), then, for UDP, the
//! listener's `rate_limit` (TCP takes listener tokens before accepting).
//! A reload keeps a kept listener's `ListenerAccess`, so per-client
//! counters survive; the limits are read from the current plan at each
//! check. Does not own logging or counting by metrics families.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::bucket::{Rate, TokenBucket};
use super::ipset::IpSet;
use super::per_ip::{PerIpRefusal, PerIpTable};
use crate::metrics::PerLoop;

/// A listener's access keys, checked and resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessPlan {
    /// `ip_allowlist`: when set, only these clients.
    pub allow: Option<IpSet>,
    /// `ip_denylist`: never these clients (checked first).
    pub deny: IpSet,
    /// `rate_limit`: new TCP connections / UDP sessions per second for the
    /// whole listener.
    pub rate_limit: Option<Rate>,
    /// `ip_rate_limit`: per client, new connections / sessions (HTTP:
    /// requests) per second.
    pub ip_rate_limit: Option<Rate>,
    /// `max_connections_per_ip`: open TCP connections plus UDP sessions.
    pub max_connections_per_ip: Option<u32>,
    /// `ip_rate_limit` counts requests ([`ListenerAccess::take_request`]),
    /// not connections: `protocol: http` listeners.
    pub per_request: bool,
}

impl AccessPlan {
    /// Whether per-client state must be kept at all.
    pub fn tracks_sources(&self) -> bool {
        self.ip_rate_limit.is_some() || self.max_connections_per_ip.is_some()
    }
}

/// Why a client was refused; `label()` is the `reason` of the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    DenyList,
    NotAllowed,
    RateLimit,
    IpRateLimit,
    IpConnections,
}

impl Denied {
    pub const ALL: [Denied; 5] = [
        Denied::DenyList,
        Denied::NotAllowed,
        Denied::RateLimit,
        Denied::IpRateLimit,
        Denied::IpConnections,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Denied::DenyList => "ip_denylist",
            Denied::NotAllowed => "ip_allowlist",
            Denied::RateLimit => "rate_limit",
            Denied::IpRateLimit => "ip_rate_limit",
            Denied::IpConnections => "max_connections_per_ip",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Words for a log line.
    pub fn describe(self) -> &'static str {
        match self {
            Denied::DenyList => "in ip_denylist",
            Denied::NotAllowed => "not in ip_allowlist",
            Denied::RateLimit => "listener rate_limit reached",
            Denied::IpRateLimit => "ip_rate_limit reached",
            Denied::IpConnections => "max_connections_per_ip reached",
        }
    }
}

/// Whether `ip` passes the lists (no state, no lock).
pub fn check_lists(plan: &AccessPlan, ip: IpAddr) -> Result<(), Denied> {
    if plan.deny.contains(ip) {
        return Err(Denied::DenyList);
    }
    match &plan.allow {
        Some(allow) if !allow.contains(ip) => Err(Denied::NotAllowed),
        _ => Ok(()),
    }
}

/// What an admitted client holds: give it back with
/// [`ListenerAccess::release`] when the connection or session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The client counted in the per-client table (canonical), if tracked.
    pub counted: Option<IpAddr>,
}

/// The running state of one listener's rules.
#[derive(Debug)]
pub struct ListenerAccess {
    listener_bucket: Mutex<Option<TokenBucket>>,
    sources: Mutex<PerIpTable>,
    /// Refusals by reason ([`Denied::index`]), one cell per event loop.
    denied: PerLoop<{ Denied::ALL.len() }>,
}

impl ListenerAccess {
    /// `tracked_sources`: capacity of the per-client table (memory is only
    /// used for sources actually seen); `loops`: event loops, one cell of
    /// refusal counters each.
    pub fn new(tracked_sources: usize, loops: usize) -> ListenerAccess {
        ListenerAccess {
            listener_bucket: Mutex::new(None),
            sources: Mutex::new(PerIpTable::new(tracked_sources)),
            denied: PerLoop::new(loops),
        }
    }

    fn sources(&self) -> MutexGuard<'_, PerIpTable> {
        // A panic while holding the lock cannot leave the table
        // inconsistent in a way that matters more than losing it.
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refusals so far, by reason, summed over the loops.
    pub fn denied_count(&self, why: Denied) -> u64 {
        self.denied.sum(why.index())
    }

    /// Counts a refusal on event loop `lp` (the caller logs, rate-limited).
    /// Only loop `lp` may count in its cell (see [`PerLoop::add`]).
    pub fn count(&self, lp: usize, why: Denied) {
        self.denied.add(lp, why.index(), 1);
    }

    /// Every check for a new TCP connection or UDP session from `ip`:
    /// lists, per-client limits, and (`listener_rate`) the listener's
    /// `rate_limit` (UDP; TCP takes those tokens before accepting with
    /// [`take_listener_tokens`](Self::take_listener_tokens)). Counts a
    /// refusal in the cell of `lp`, the event loop calling.
    pub fn admit(
        &self,
        lp: usize,
        plan: &AccessPlan,
        ip: IpAddr,
        now: Instant,
        listener_rate: bool,
    ) -> Result<Admitted, Denied> {
        let ip = ip.to_canonical();
        let r = self.admit_uncounted(plan, ip, now, listener_rate);
        if let Err(why) = r {
            self.count(lp, why);
        }
        r
    }

    fn admit_uncounted(
        &self,
        plan: &AccessPlan,
        ip: IpAddr,
        now: Instant,
        listener_rate: bool,
    ) -> Result<Admitted, Denied> {
        check_lists(plan, ip)?;
        let mut counted = None;
        if plan.tracks_sources() {
            let mut t = self.sources();
            let rate = plan.ip_rate_limit.filter(|_| !plan.per_request);
            t.admit(ip, now, rate, plan.max_connections_per_ip)
                .map_err(|r| match r {
                    PerIpRefusal::Rate => Denied::IpRateLimit,
                    PerIpRefusal::Connections => Denied::IpConnections,
                })?;
            counted = Some(ip);
        }
        if listener_rate
            && plan.rate_limit.is_some()
            && self.take_listener_tokens(plan, now, 1) == 0
        {
            if let Some(ip) = counted {
                self.sources().release(ip);
            }
            return Err(Denied::RateLimit);
        }
        Ok(Admitted { counted })
    }

    /// A request on an HTTP connection from `ip`: a token of its
    /// `ip_rate_limit` (HTTP answers 429 when there is none). Counts a
    /// refusal in the cell of `lp`, the event loop calling.
    pub fn take_request(
        &self,
        lp: usize,
        plan: &AccessPlan,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Denied> {
        let Some(rate) = plan.ip_rate_limit else {
            return Ok(());
        };
        if self.sources().take_request(ip.to_canonical(), now, rate) {
            Ok(())
        } else {
            self.count(lp, Denied::IpRateLimit);
            Err(Denied::IpRateLimit)
        }
    }

    /// A connection or session admitted by [`admit`](Self::admit) ended.
    pub fn release(&self, admitted: Admitted) {
        if let Some(ip) = admitted.counted {
            self.sources().release(ip);
        }
    }

    /// Up to `want` tokens of the listener's `rate_limit` (all of `want`
    /// when it has none).
    pub fn take_listener_tokens(&self, plan: &AccessPlan, now: Instant, want: usize) -> usize {
        let Some(rate) = plan.rate_limit else {
            return want;
        };
        let mut b = self
            .listener_bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        b.get_or_insert_with(|| TokenBucket::new(rate, now))
            .take_up_to(rate, now, want)
    }

    /// Tokens taken by [`take_listener_tokens`](Self::take_listener_tokens)
    /// but not used.
    pub fn give_back_listener_tokens(&self, plan: &AccessPlan, n: usize) {
        let Some(rate) = plan.rate_limit else { return };
        if n == 0 {
            return;
        }
        let mut b = self
            .listener_bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(b) = b.as_mut() {
            b.give_back(rate, n);
        }
    }

    /// Sources in the per-client table.
    pub fn tracked_sources(&self) -> usize {
        self.sources().len()
    }

    /// Open connections and sessions counted for `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.sources().open(ip.to_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipset::parse_cidr;
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(entries: &[&str]) -> IpSet {
        IpSet::from_ranges(entries.iter().map(|e| parse_cidr(e).unwrap()).collect())
    }

    #[test]
    fn deny_wins_over_allow_and_mapped_clients_match_v4_entries() {
        let plan = AccessPlan {
            allow: Some(set(&["127.0.0.0/8", "::1"])),
            deny: set(&["127.0.0.3"]),
            ..AccessPlan::default()
        };
        let a = ListenerAccess::new(16, 1);
        let now = Instant::now();
        assert!(a.admit(0, &plan, ip("127.0.0.2"), now, true).is_ok());
        assert!(a.admit(0, &plan, ip("::ffff:127.0.0.2"), now, true).is_ok());
        assert!(a.admit(0, &plan, ip("::1"), now, true).is_ok());
        assert_eq!(
            a.admit(0, &plan, ip("127.0.0.3"), now, true),
            Err(Denied::DenyList)
        );
        assert_eq!(
            a.admit(0, &plan, ip("::ffff:127.0.0.3"), now, true),
            Err(Denied::DenyList)
        );
        assert_eq!(
            a.admit(0, &plan, ip("10.0.0.1"), now, true),
            Err(Denied::NotAllowed)
        );
        assert_eq!(
            a.admit(0, &plan, ip("::2"), now, true),
            Err(Denied::NotAllowed)
        );
        assert_eq!(a.denied_count(Denied::DenyList), 2);
        assert_eq!(a.denied_count(Denied::NotAllowed), 2);
        // Lists only: nothing tracked.
        assert_eq!(a.tracked_sources(), 0);
    }

    #[test]
    fn each_loop_counts_its_refusals_in_its_own_cell_and_the_sum_is_exact() {
        let plan = AccessPlan {
            deny: set(&["10.0.0.0/8"]),
            ip_rate_limit: Some(Rate {
                per_second: 1.0,
                burst: 1,
            }),
            per_request: true,
            ..AccessPlan::default()
        };
        let a = std::sync::Arc::new(ListenerAccess::new(16, 3));
        let now = Instant::now();
        // Loops 0 and 2 refuse at the same time, each writing its own cell.
        let workers: Vec<_> = [0usize, 2]
            .into_iter()
            .map(|lp| {
                let (a, plan) = (std::sync::Arc::clone(&a), plan.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let r = a.admit(lp, &plan, ip("10.1.2.3"), now, false);
                        assert_eq!(r, Err(Denied::DenyList));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let deny = Denied::DenyList.index();
        assert_eq!(a.denied.of_loop(0, deny), 20_000);
        assert_eq!(a.denied.of_loop(1, deny), 0);
        assert_eq!(a.denied.of_loop(2, deny), 20_000);
        assert_eq!(a.denied_count(Denied::DenyList), 40_000);
        // HTTP requests over the per-client rate are counted per loop too.
        assert_eq!(a.take_request(1, &plan, ip("127.0.0.1"), now), Ok(()));
        assert_eq!(
            a.take_request(1, &plan, ip("127.0.0.1"), now),
            Err(Denied::IpRateLimit)
        );
        assert_eq!(a.denied.of_loop(1, Denied::IpRateLimit.index()), 1);
        assert_eq!(a.denied_count(Denied::IpRateLimit), 1);
        assert_eq!(a.denied_count(Denied::NotAllowed), 0);
    }

    #[test]
    fn per_ip_limits_and_release() {
        let plan = AccessPlan {
            max_connections_per_ip: Some(2),
            ..AccessPlan::default()
        };
        let a = ListenerAccess::new(16, 1);
        let now = Instant::now();
        let x = a.admit(0, &plan, ip("::ffff:10.0.0.1"), now, true).unwrap();
        assert_eq!(x.counted, Some(ip("10.0.0.1")));
        let y = a.admit(0, &plan, ip("10.0.0.1"), now, true).unwrap();
        assert_eq!(
            a.admit(0, &plan, ip("10.0.0.1"), now, true),
            Err(Denied::IpConnections)
        );
        assert!(a.admit(0, &plan, ip("10.0.0.2"), now, true).is_ok());
        a.release(x);
        assert_eq!(a.open_from(ip("10.0.0.1")), 1);
        assert!(a.admit(0, &plan, ip("10.0.0.1"), now, true).is_ok());
        a.release(y);
        assert_eq!(a.denied_count(Denied::IpConnections), 1);
    }

    #[test]
    fn listener_rate_for_udp_and_tcp_tokens() {
        let plan = AccessPlan {
            rate_limit: Some(Rate {
                per_second: 10.0,
                burst: 2,
            }),
            max_connections_per_ip: Some(100),
            ..AccessPlan::default()
        };
        let a = ListenerAccess::new(16, 1);
        let t0 = Instant::now();
        assert!(a.admit(0, &plan, ip("10.0.0.1"), t0, true).is_ok());
        assert!(a.admit(0, &plan, ip("10.0.0.2"), t0, true).is_ok());
        assert_eq!(
            a.admit(0, &plan, ip("10.0.0.3"), t0, true),
            Err(Denied::RateLimit)
        );
        // The refused session is not left counted against its source.
        assert_eq!(a.open_from(ip("10.0.0.3")), 0);
        // TCP: tokens before accepting, unused ones given back.
        let later = t0 + Duration::from_millis(300);
        assert_eq!(a.take_listener_tokens(&plan, later, 64), 2);
        a.give_back_listener_tokens(&plan, 1);
        assert_eq!(a.take_listener_tokens(&plan, later, 64), 1);
        // `listener_rate: false` (TCP after accept) skips the bucket.
        assert!(a.admit(0, &plan, ip("10.0.0.4"), later, false).is_ok());
        // HTTP: ip_rate_limit counts requests, not connections.
        let http = AccessPlan {
            ip_rate_limit: Some(Rate {
                per_second: 1.0,
                burst: 2,
            }),
            max_connections_per_ip: Some(10),
            per_request: true,
            ..AccessPlan::default()
        };
        for _ in 0..5 {
            assert!(a.admit(0, &http, ip("10.0.0.9"), later, false).is_ok());
        }
        assert_eq!(a.take_request(0, &http, ip("10.0.0.9"), later), Ok(()));
        assert_eq!(
            a.take_request(0, &http, ip("::ffff:10.0.0.9"), later),
            Ok(())
        );
        assert_eq!(
            a.take_request(0, &http, ip("10.0.0.9"), later),
            Err(Denied::IpRateLimit)
        );
        assert_eq!(a.take_request(0, &plan, ip("10.0.0.9"), later), Ok(()));
        // No rate_limit: everything asked for.
        assert_eq!(
            a.take_listener_tokens(&AccessPlan::default(), later, 64),
            64
        );
    }
}
