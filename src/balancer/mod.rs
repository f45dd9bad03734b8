//! Load-balancing algorithms behind the `Balancer` trait (pure).
//!
//! Owns: the choice of one server for a new connection or UDP session,
//! given the caller's view of every server ([`Candidate`]), the client
//! address and the servers already tried for this connection ([`Tried`]).
//!
//! Does not own: health (see `crate::health::state::Health`), connection counts or
//! `max_connections` (the caller folds those into `Candidate::usable` and
//! `Candidate::active`), retries (the caller loops, adding each failed
//! server to `Tried`). Nothing here touches a socket or reads the clock.
//!
//! Eligibility, shared by every algorithm: a server is eligible when it is
//! usable and not in `tried`. Backup servers are eligible only when no
//! primary server is eligible, so a connection whose primaries all failed
//! to connect falls over to the backups on its next retry.

mod least_conn;
pub mod maglev;
mod random;
mod round_robin;
mod source_hash;

use std::net::IpAddr;

use crate::config::BalanceKind;
pub use crate::config::ServerId;

pub use least_conn::LeastConn;
pub use maglev::{Maglev, MaglevTable, Member};
pub use random::Random;
pub use round_robin::RoundRobin;
pub use source_hash::SourceHash;

/// The caller's view of one server at pick time. The index of a candidate
/// in the slice passed to [`Balancer::pick`] is its [`ServerId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Configured weight (>= 1; a 0 is treated as 1 rather than trusted).
    pub weight: u32,
    pub backup: bool,
    /// Up, below its `max_connections` and not excluded by the caller.
    pub usable: bool,
    /// Connections (or UDP sessions) currently open to this server.
    pub active: u32,
}

/// Servers already tried for one connection. Ids below 64 live in a bitset
/// so the common case never allocates; larger ids spill into a vector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tried {
    low: u64,
    high: Vec<usize>,
}

impl Tried {
    pub fn new() -> Tried {
        Tried::default()
    }

    pub fn insert(&mut self, id: ServerId) {
        if id.0 < 64 {
            self.low |= 1u64 << id.0;
        } else if !self.high.contains(&id.0) {
            self.high.push(id.0);
        }
    }

    pub fn remove(&mut self, id: ServerId) {
        if id.0 < 64 {
            self.low &= !(1u64 << id.0);
        } else {
            self.high.retain(|&h| h != id.0);
        }
    }

    pub fn contains(&self, id: ServerId) -> bool {
        if id.0 < 64 {
            self.low & (1u64 << id.0) != 0
        } else {
            self.high.contains(&id.0)
        }
    }

    pub fn len(&self) -> usize {
        self.low.count_ones() as usize + self.high.len()
    }

    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_empty()
    }

    pub fn clear(&mut self) {
        self.low = 0;
        self.high.clear();
    }
}

/// Chooses a server for a new connection.
pub trait Balancer: Send {
    /// Returns an eligible server (usable, not in `tried`, a backup only when
    /// no primary is eligible), or `None` when nothing is eligible.
    fn pick(&mut self, servers: &[Candidate], client: IpAddr, tried: &Tried) -> Option<ServerId>;
}

/// Builds the balancer for one backend. `servers` are the configured
/// addresses and weights in server order (used by algorithms that
/// precompute: the hash ring, the Maglev table); `seed` feeds the random
/// algorithm's PRNG.
pub fn new_balancer(kind: BalanceKind, servers: &[Member], seed: u64) -> Box<dyn Balancer> {
    match kind {
        BalanceKind::RoundRobin => Box::new(RoundRobin::new()),
        BalanceKind::LeastConn => Box::new(LeastConn::new()),
        BalanceKind::Random => Box::new(Random::new(seed)),
        BalanceKind::SourceHash => {
            let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
            Box::new(SourceHash::new(&weights))
        }
        BalanceKind::Maglev => Box::new(Maglev::new(servers)),
    }
}

/// Which tier of servers a pick may choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tier {
    backup: bool,
}

impl Tier {
    /// The tier to pick from, or `None` when no server at all is eligible.
    pub(crate) fn select(servers: &[Candidate], tried: &Tried) -> Option<Tier> {
        let open = |backup: bool| {
            servers
                .iter()
                .enumerate()
                .any(|(i, c)| c.backup == backup && c.usable && !tried.contains(ServerId(i)))
        };
        if open(false) {
            Some(Tier { backup: false })
        } else if open(true) {
            Some(Tier { backup: true })
        } else {
            None
        }
    }

    pub(crate) fn admits(self, servers: &[Candidate], tried: &Tried, index: usize) -> bool {
        match servers.get(index) {
            Some(c) => c.usable && c.backup == self.backup && !tried.contains(ServerId(index)),
            None => false,
        }
    }
}

/// Weight as the algorithms use it: the config forbids 0, but a 0 here
/// would divide by zero or starve a server, so it counts as 1.
pub(crate) fn weight_of(c: &Candidate) -> u32 {
    c.weight.max(1)
}

/// splitmix64 finaliser: a cheap, well-mixed, platform-independent hash step.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Candidate;
    use std::net::{IpAddr, Ipv4Addr};

    pub fn up(weight: u32) -> Candidate {
        Candidate {
            weight,
            backup: false,
            usable: true,
            active: 0,
        }
    }

    pub fn down(weight: u32) -> Candidate {
        Candidate {
            usable: false,
            ..up(weight)
        }
    }

    pub fn backup(weight: u32) -> Candidate {
        Candidate {
            backup: true,
            ..up(weight)
        }
    }

    pub fn client(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    const ALL: [BalanceKind; 5] = [
        BalanceKind::RoundRobin,
        BalanceKind::LeastConn,
        BalanceKind::Random,
        BalanceKind::SourceHash,
        BalanceKind::Maglev,
    ];

    fn each(weights: &[u32]) -> Vec<(BalanceKind, Box<dyn Balancer>)> {
        let members: Vec<Member> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Member {
                label: format!("10.0.{}.{}:80", i / 256, i % 256),
                weight,
            })
            .collect();
        ALL.iter()
            .map(|&k| match k {
                // The full-size table takes long to build in a debug build;
                // the pick logic is the same at any prime size.
                BalanceKind::Maglev => (k, Box::new(Maglev::with_size(&members, 251)) as _),
                _ => (k, new_balancer(k, &members, 42)),
            })
            .collect()
    }

    #[test]
    fn tried_small_and_large_ids() {
        let mut t = Tried::new();
        assert!(t.is_empty());
        for id in [0, 5, 63, 64, 1000] {
            assert!(!t.contains(ServerId(id)));
            t.insert(ServerId(id));
            assert!(t.contains(ServerId(id)));
        }
        t.insert(ServerId(1000));
        t.insert(ServerId(5));
        assert_eq!(t.len(), 5);
        assert!(!t.contains(ServerId(1)));
        assert!(!t.contains(ServerId(65)));
        t.clear();
        assert!(t.is_empty());
        assert!(!t.contains(ServerId(1000)));
    }

    #[test]
    fn never_returns_unusable_or_tried() {
        let servers = [up(1), down(5), up(2), up(1), down(1), up(3)];
        let mut tried = Tried::new();
        tried.insert(ServerId(2));
        tried.insert(ServerId(5));
        for (kind, mut b) in each(&[1, 5, 2, 1, 1, 3]) {
            for n in 0..500 {
                let got = b.pick(&servers, client(n), &tried);
                assert!(
                    matches!(got, Some(ServerId(0)) | Some(ServerId(3))),
                    "{kind:?} picked {got:?}"
                );
            }
        }
    }

    #[test]
    fn none_when_nothing_eligible() {
        let servers = [down(1), up(1), backup(1), down(1)];
        let mut tried = Tried::new();
        tried.insert(ServerId(1));
        tried.insert(ServerId(2));
        for (kind, mut b) in each(&[1, 1, 1, 1]) {
            assert_eq!(b.pick(&servers, client(7), &tried), None, "{kind:?}");
            assert_eq!(b.pick(&[], client(7), &Tried::new()), None, "{kind:?}");
            let all_down = [down(1), down(2)];
            assert_eq!(
                b.pick(&all_down, client(7), &Tried::new()),
                None,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn backup_only_when_no_primary_eligible() {
        let weights = [1, 1, 1, 1];
        for (kind, mut b) in each(&weights) {
            // Primaries available: backups are never chosen.
            let servers = [backup(1), up(1), down(1), backup(1)];
            for n in 0..200 {
                assert_eq!(
                    b.pick(&servers, client(n), &Tried::new()),
                    Some(ServerId(1)),
                    "{kind:?}"
                );
            }
            // The only primary failed for this connection: a backup is next.
            let mut tried = Tried::new();
            tried.insert(ServerId(1));
            for n in 0..200 {
                let got = b.pick(&servers, client(n), &tried);
                assert!(
                    matches!(got, Some(ServerId(0)) | Some(ServerId(3))),
                    "{kind:?} picked {got:?}"
                );
            }
            // No primary usable at all: backups serve.
            let servers = [backup(1), down(1), down(1), backup(1)];
            let mut seen = [false; 4];
            for n in 0..200 {
                match b.pick(&servers, client(n), &Tried::new()) {
                    Some(ServerId(i)) => seen[i] = true,
                    None => panic!("{kind:?} found nothing"),
                }
            }
            assert!(seen[0] && seen[3] && !seen[1] && !seen[2], "{kind:?}");
        }
    }

    #[test]
    fn retry_loop_visits_every_eligible_server_once() {
        let servers = [up(1), up(3), down(1), up(2), backup(1)];
        for (kind, mut b) in each(&[1, 3, 1, 2, 1]) {
            let mut tried = Tried::new();
            let mut order = Vec::new();
            while let Some(id) = b.pick(&servers, client(9), &tried) {
                assert!(!tried.contains(id), "{kind:?} repeated {id:?}");
                tried.insert(id);
                order.push(id.0);
                assert!(order.len() <= 4, "{kind:?} did not stop");
            }
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 3, 4], "{kind:?}");
            assert_eq!(order.last(), Some(&4), "{kind:?}: backup must come last");
        }
    }

    /// The eligibility rule written out the slow, obvious way.
    fn eligible_reference(servers: &[Candidate], tried: &Tried) -> Vec<usize> {
        let open = |backup: bool| -> Vec<usize> {
            (0..servers.len())
                .filter(|&i| {
                    let c = servers[i];
                    c.usable && c.backup == backup && !tried.contains(ServerId(i))
                })
                .collect()
        };
        let primaries = open(false);
        if primaries.is_empty() {
            open(true)
        } else {
            primaries
        }
    }

    proptest::proptest! {
        #[test]
        fn every_pick_obeys_the_eligibility_rule(
            raw in proptest::collection::vec(
                (1u32..6, proptest::bool::ANY, proptest::bool::ANY, 0u32..20, proptest::bool::ANY),
                0..70,
            ),
            clients in proptest::collection::vec(proptest::num::u32::ANY, 1..8),
        ) {
            let servers: Vec<Candidate> = raw
                .iter()
                .map(|&(weight, backup, usable, active, _)| Candidate { weight, backup, usable, active })
                .collect();
            let mut tried = Tried::new();
            for (i, r) in raw.iter().enumerate() {
                if r.4 {
                    tried.insert(ServerId(i));
                }
            }
            let weights: Vec<u32> = servers.iter().map(|c| c.weight).collect();
            let allowed = eligible_reference(&servers, &tried);
            for (kind, mut b) in each(&weights) {
                for &n in &clients {
                    let got = b.pick(&servers, client(n), &tried);
                    match got {
                        Some(ServerId(i)) => proptest::prop_assert!(
                            allowed.contains(&i),
                            "{:?} picked {} outside {:?}", kind, i, allowed
                        ),
                        None => proptest::prop_assert!(
                            allowed.is_empty(),
                            "{:?} found nothing among {:?}", kind, allowed
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn candidates_beyond_configured_weights_are_handled() {
        // A caller whose slice is longer than the weights it built with
        // still gets a server, never a panic.
        let servers = [down(1), up(1), up(1)];
        for (kind, mut b) in each(&[1]) {
            for n in 0..50 {
                let got = b.pick(&servers, client(n), &Tried::new());
                assert!(
                    matches!(got, Some(ServerId(1)) | Some(ServerId(2))),
                    "{kind:?} picked {got:?}"
                );
            }
        }
    }
}
