//! Source hashing on a consistent-hash ring, so a client keeps its server.
//!
//! Each server owns `VNODES_PER_WEIGHT * weight` points on a 64-bit ring; a
//! client's address hashes to a point and goes to the first server point at
//! or after it (wrapping). When that server is not eligible the walk goes on
//! to the next eligible one. Consequences an operator can rely on:
//!
//! - the same client reaches the same server for as long as it is usable;
//! - when one of N servers stops being usable only its own clients (about
//!   1/N of them) move, spread over the others; nobody else moves;
//! - when it comes back, exactly those clients return to it.
//!
//! Hashes are fixed functions of the server's index and the client's bytes
//! (FNV-1a then a splitmix64 finaliser), never `std`'s randomised hasher,
//! so the mapping is the same across restarts, reloads, workers and
//! platforms. IPv4-mapped IPv6 clients hash as their IPv4 address, so a
//! dual-stack listener does not split one client over two servers.

use std::net::IpAddr;

use super::{mix64, weight_of, Balancer, Candidate, ServerId, Tier, Tried};

/// Points per unit of weight. 160 (as ketama) keeps the load of equal
/// servers within a few percent of each other.
const VNODES_PER_WEIGHT: u64 = 160;

/// Upper bound on ring size (16 bytes per point, so 4 MiB), reached only
/// with huge weights; beyond it points are scaled down proportionally.
const MAX_RING_POINTS: u64 = 1 << 18;

/// Keeps server points and client points in unrelated parts of hash space.
const SERVER_SALT: u64 = 0x6e76_656c_6f78_5f73; // "nvelox_s"

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Debug)]
pub struct SourceHash {
    /// (point, server index), sorted by point.
    ring: Vec<(u64, usize)>,
    /// How many servers the ring was built for.
    servers: usize,
}

impl SourceHash {
    pub fn new(weights: &[u32]) -> SourceHash {
        SourceHash {
            ring: build_ring(weights.iter().copied()),
            servers: weights.len(),
        }
    }
}

fn build_ring(weights: impl Iterator<Item = u32> + Clone) -> Vec<(u64, usize)> {
    let units: u64 = weights.clone().map(|w| u64::from(w.max(1))).sum();
    let budget = units.saturating_mul(VNODES_PER_WEIGHT).min(MAX_RING_POINTS);
    let mut ring = Vec::new();
    for (index, w) in weights.enumerate() {
        let points = (u64::from(w.max(1)) * budget / units.max(1)).max(1);
        for replica in 0..points {
            ring.push((server_point(index, replica), index));
        }
    }
    ring.sort_unstable();
    ring
}

/// `mix64` is a bijection, so distinct (index, replica) pairs never collide.
fn server_point(index: usize, replica: u64) -> u64 {
    mix64((((index as u64) << 32) | (replica & 0xffff_ffff)) ^ SERVER_SALT)
}

/// FNV-1a over the address bytes, then a finaliser: FNV alone leaves the
/// high bits of short inputs poorly mixed, and the ring is ordered by them.
pub(crate) fn client_point(client: IpAddr) -> u64 {
    let mut h = FNV_OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    match client.to_canonical() {
        IpAddr::V4(v4) => eat(&v4.octets()),
        IpAddr::V6(v6) => eat(&v6.octets()),
    }
    mix64(h)
}

impl Balancer for SourceHash {
    fn pick(&mut self, servers: &[Candidate], client: IpAddr, tried: &Tried) -> Option<ServerId> {
        let tier = Tier::select(servers, tried)?;
        if servers.len() != self.servers {
            // The caller's view no longer matches what we were built with:
            // rebuild from what it shows rather than hash onto servers that
            // do not exist or never reach new ones.
            self.ring = build_ring(servers.iter().map(weight_of));
            self.servers = servers.len();
        }
        let start = self
            .ring
            .partition_point(|&(p, _)| p < client_point(client));
        let len = self.ring.len();
        (0..len)
            .map(|step| self.ring[(start + step) % len].1)
            .find(|&i| tier.admits(servers, tried, i))
            .map(ServerId)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::net::Ipv6Addr;

    fn pick(b: &mut SourceHash, servers: &[Candidate], n: u32) -> usize {
        match b.pick(servers, client(n), &Tried::new()) {
            Some(ServerId(i)) => i,
            None => panic!("no server for client {n}"),
        }
    }

    #[test]
    fn hashes_are_pinned() {
        // Changing these moves every client of every deployment on upgrade;
        // if this fails on purpose, say so in the changelog.
        // Values computed independently (Python) from the documented recipe:
        // FNV-1a over 10.0.0.1's octets, then the splitmix64 finaliser.
        assert_eq!(client_point(client(1)), 0xe7a7_7091_5e3a_6bb4);
        assert_eq!(server_point(0, 0), 0x9ec5_1fc2_04c8_c9a4);
        assert_eq!(server_point(2, 7), 0x4fba_3d57_6930_6d45);
    }

    #[test]
    fn same_client_same_server_across_instances() {
        let servers = [up(1), up(1), up(1), up(1)];
        let mut a = SourceHash::new(&[1, 1, 1, 1]);
        let mut b = SourceHash::new(&[1, 1, 1, 1]);
        for n in 0..1000 {
            let first = pick(&mut a, &servers, n);
            assert_eq!(pick(&mut a, &servers, n), first);
            assert_eq!(pick(&mut b, &servers, n), first);
        }
    }

    #[test]
    fn clients_spread_over_servers() {
        let servers = [up(1); 5];
        let mut b = SourceHash::new(&[1; 5]);
        let mut counts = [0usize; 5];
        for n in 0..10_000 {
            counts[pick(&mut b, &servers, n)] += 1;
        }
        for &c in &counts {
            assert!((1_500..=2_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn weights_scale_share() {
        let servers = [up(1), up(3)];
        let mut b = SourceHash::new(&[1, 3]);
        let light = (0..10_000)
            .filter(|&n| pick(&mut b, &servers, n) == 0)
            .count();
        assert!((2_000..=3_000).contains(&light), "{light}");
    }

    #[test]
    fn removing_one_of_five_moves_only_its_clients() {
        let mut servers = [up(1); 5];
        let mut b = SourceHash::new(&[1; 5]);
        let before: Vec<usize> = (0..10_000).map(|n| pick(&mut b, &servers, n)).collect();
        servers[2].usable = false;
        let after: Vec<usize> = (0..10_000).map(|n| pick(&mut b, &servers, n)).collect();
        let mut moved = 0;
        let mut landed = [0usize; 5];
        for (&was, &now) in before.iter().zip(&after) {
            if was == now {
                continue;
            }
            moved += 1;
            assert_eq!(was, 2, "a client of surviving server {was} moved to {now}");
            landed[now] += 1;
        }
        assert!((1_500..=2_500).contains(&moved), "{moved} moved");
        assert_eq!(moved, before.iter().filter(|&&s| s == 2).count());
        // Its clients spread over all survivors rather than piling on one.
        for (i, &l) in landed.iter().enumerate() {
            if i != 2 {
                assert!(l > moved / 8, "{landed:?}");
            }
        }
        // Back in service: everybody is where they started.
        servers[2].usable = true;
        let again: Vec<usize> = (0..10_000).map(|n| pick(&mut b, &servers, n)).collect();
        assert_eq!(again, before);
    }

    #[test]
    fn tried_server_walks_to_next_on_ring() {
        let servers = [up(1); 3];
        let mut b = SourceHash::new(&[1; 3]);
        let first = pick(&mut b, &servers, 77);
        let mut tried = Tried::new();
        tried.insert(ServerId(first));
        let second = b.pick(&servers, client(77), &tried);
        assert!(second.is_some_and(|s| s.0 != first));
        // The fallback is stable too.
        assert_eq!(b.pick(&servers, client(77), &tried), second);
    }

    #[test]
    fn ipv4_mapped_ipv6_hashes_as_ipv4() {
        let v4 = client(0x0102_0304);
        let mapped = match v4 {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            IpAddr::V6(a) => IpAddr::V6(a),
        };
        assert_eq!(client_point(v4), client_point(mapped));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_ne!(client_point(v4), client_point(other));
    }

    #[test]
    fn ring_size_is_bounded_for_huge_weights() {
        let b = SourceHash::new(&[u32::MAX, 1, u32::MAX]);
        assert!(b.ring.len() as u64 <= MAX_RING_POINTS + 3);
        // Even a relatively tiny server keeps a point.
        assert!(b.ring.iter().any(|&(_, s)| s == 1));
    }
}
